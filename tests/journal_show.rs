//! `cutover journal show` through the binary: whole lines in a pipe, lines cut to the width on a
//! terminal (with a hint), and a damaged journal shown up to its damage while verify fails.
//!
//! In a test binary of its own: spawning a process copies the parent's descriptors until the
//! child execs, and a journal lock another test of tests/journal.rs held at that moment would
//! seem held a moment longer.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cutover::journal::{Entry, Journal};
use serde_json::json;

/// A journal of `n` notes (`record 1` …) and, last, `extra`: written through one handle.
fn journal(n: usize, extra: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let t0: DateTime<Utc> = "2026-11-29T02:31:07.123456Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let mut entries: Vec<Entry> = (0..n)
        .map(|i| {
            Entry::new(
                t0 + chrono::Duration::seconds(i as i64),
                "run-1",
                "alice@bastion1",
                "note",
                json!({ "message": format!("record {}", i + 1) }),
            )
        })
        .collect();
    if let Some(m) = extra {
        entries.push(Entry::new(
            t0 + chrono::Duration::seconds(n as i64),
            "run-1",
            "alice@bastion1",
            "note",
            json!({ "message": m }),
        ));
    }
    Journal::create(&path)
        .unwrap()
        .append_batch(entries)
        .unwrap();
    (dir, path)
}

fn cutover(args: &[&str], journal: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .arg(journal)
        .output()
        .unwrap()
}

#[test]
fn in_a_pipe_lines_are_whole_and_a_damaged_journal_shows_up_to_k() {
    let long = format!("a long note {} that ends here", "y".repeat(200));
    let (_dir, path) = journal(4, Some(&long));
    let out = cutover(&["journal", "show"], &path);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(&long), "{stdout}");
    assert!(out.stderr.is_empty(), "no hint in a pipe: {:?}", out.stderr);
    // Damage at seq 3.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let bad = lines[2].replace("record 3", "record 3?");
    lines[2] = &bad;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = cutover(&["journal", "show"], &path);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout.starts_with("DAMAGED JOURNAL: the hash chain breaks at seq 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("record 2") && !stdout.contains("record 3"),
        "{stdout}"
    );
    assert!(stderr.contains("breaks at seq 3"), "{stderr}");
    let md = cutover(&["journal", "show", "--format", "markdown"], &path);
    assert_eq!(md.status.code(), Some(0), "{md:?}");
    assert!(String::from_utf8_lossy(&md.stdout).contains("> **DAMAGED JOURNAL"));
    let json = cutover(&["journal", "show", "--format", "json"], &path);
    assert_eq!(String::from_utf8_lossy(&json.stdout).lines().count(), 2);
    let verify = cutover(&["journal", "verify"], &path);
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
}

/// On a terminal, `journal show` cuts its lines to the terminal's width and says how to see them
/// whole.
#[test]
fn on_a_terminal_lines_are_cut_to_its_width_with_a_hint() {
    let long = format!("a long note {} that ends here", "z".repeat(150));
    let (_dir, path) = journal(3, Some(&long));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(["journal", "show"]).arg(&path);
    let mut p = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    p.get_process_mut().set_window_size(72, 40).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    loop {
        match p.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !matches!(p.get_process().is_alive(), Ok(true)) {
                    // Drain what is left, then stop.
                    while let Ok(n) = p.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        out.extend_from_slice(&buf[..n]);
                    }
                    break;
                }
                assert!(Instant::now() < deadline, "journal show hung");
                std::thread::sleep(Duration::from_millis(20));
            }
            // EIO: the child closed its side of the pty.
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&out);
    let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 5, "4 records and the hint:\n{text}");
    for r in &rows[..4] {
        assert!(r.chars().count() <= 72, "{r:?} is wider than the terminal");
    }
    assert!(
        rows[3].ends_with('…') && !text.contains("ends here"),
        "{text}"
    );
    assert!(
        rows[4].starts_with("(lines cut at 72 columns: `cutover journal show ")
            && rows[4].contains("| less -S"),
        "{text}"
    );
}
