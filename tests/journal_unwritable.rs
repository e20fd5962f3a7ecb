//! A journal that cannot be written any more (its file system full) stops the run loudly: the
//! operator is told which journal, the OS error and what to do next, and cutover exits 1 (the
//! README's "any other error"), in the UI as headless. Nothing after the journal's last record
//! runs, and what is on disk still verifies.
//!
//! The journal lives on a small tmpfs mounted for the test (root only: as root, chmod would not
//! stop a write); each test unmounts it when done, also when it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;
use support::bin::{BIN, cutover, text};
use support::pty::{Tui, command};

const ANSWERS: &str = "runbooks/demo-answers.yaml";

/// A tmpfs of `size` mounted at `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "these tests mount a small tmpfs and need root: mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Writes a file until the file system is full (ENOSPC).
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// What the operator must read: the journal, the OS error, and the way on. The record that
/// does not fit may be cut short in the file's last page (a short write) or find no room at all.
fn assert_says_why(out: &str, journal: &Path) {
    let j = journal.display().to_string();
    let full = format!("cannot write the journal {j}: No space left on device (os error 28)\n");
    let short = format!("cannot write the journal {j}: short write: ");
    assert!(
        out.contains(&full)
            || (out.contains(&short)
                && out.contains("(no room left: a full file system or quota?)\n")),
        "names the journal and the OS error:\n{out}"
    );
    assert!(
        out.contains(&format!("cutover resume {j}")),
        "says how to go on:\n{out}"
    );
}

/// The journal on disk is intact up to its last good record (a failed append is cut back).
fn assert_verifies(journal: &Path) {
    let v = cutover(&["journal", "verify", journal.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[test]
fn headless_a_full_disk_stops_the_run_with_exit_1_naming_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    // Room for run_started and a few records, not for the whole run (its journal is ~150 kB).
    let fs = Tmpfs::mount(&tmp.path().join("small"), "64k");
    let journal = fs.0.join("demo.jsonl");
    let world = tmp.path().join("world");
    let out = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--headless", "--answers", ANSWERS, "--world"])
        .arg(&world)
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "exit code:\n{all}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("completed:"),
        "the run went on without its journal:\n{all}"
    );
    assert_says_why(&String::from_utf8_lossy(&out.stderr), &journal);
    assert_verifies(&journal);
}

#[test]
fn in_the_ui_a_confirmation_that_cannot_be_journaled_stops_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&tmp.path().join("small"), "1m");
    let journal = fs.0.join("demo.jsonl");
    let world = tmp.path().join("world");
    // Without the meter: its summaries would land at times of their own, and whether the
    // confirmation still fits in the journal's last page (tmpfs allocates by page) would vary.
    let mut ui = Tui::spawn(
        command(&[
            "demo",
            "--meter",
            "off",
            "--world",
            world.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
        ]),
        100,
        30,
    );
    ui.wait_for("the first hard stop", Duration::from_secs(30), |s| {
        s.contains("HARD STOP") && s.contains("jws-payload-readable")
    });
    // The disk fills up while the operator reads the hard stop; then they confirm it.
    let filler = fs.fill();
    ui.send("Y");
    let code = ui.wait_exit(Duration::from_secs(20));
    let out = ui.text();
    assert_eq!(
        code,
        1,
        "exit code; last screen:\n{}",
        ui.framed(&ui.screen())
    );
    assert!(
        !ui.vt.screen().alternate_screen(),
        "the terminal is given back"
    );
    // The message is printed after the screen is restored: it stays on the terminal.
    assert_says_why(&out.replace("\r\n", "\n"), &journal);
    std::fs::remove_file(filler).unwrap();
    // The confirmation either found no room (it is not in the journal) or still fit in the
    // journal's last page (tmpfs allocates by page) and what followed it did not: either way
    // nothing it allowed ran, as the nodes' own files show: the next step would create the JWS
    // keys, and no node holds any.
    let records = std::fs::read_to_string(&journal).unwrap();
    let confirmed = records.contains("\"kind\":\"hard_stop_confirmed\"");
    let info = cutover::world::load(&world).unwrap();
    for n in &info.nodes {
        let keys: Vec<_> = std::fs::read_dir(&n.jws_private_repo)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            keys.is_empty(),
            "{}: JWS keys were created after a confirmation that could not be journaled ({}): {keys:?}",
            n.name,
            if confirmed {
                "it fit, what followed did not"
            } else {
                "it found no room"
            }
        );
    }
    assert_verifies(&journal);
}
