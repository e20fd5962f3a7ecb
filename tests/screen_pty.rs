//! The screen through a pseudo-terminal, as an operator on a bastion sees it: the real
//! `cutover demo` in a pty of a given size and locale, its output parsed by a terminal emulator
//! (vt100) and kept raw as well (to check which bytes reached the terminal).
//!
//! - at 80×24 a HARD STOP keeps the node names and their load-balancer state in view; `?`,
//!   Esc and the quit question work over it; quitting there pauses (exit 3) with nothing
//!   answered;
//! - under LANG=C / LC_ALL=C (and with `--ascii` in a UTF-8 locale) nothing but ASCII reaches the
//!   terminal: ASCII state symbols, `+-|=` borders, no box-drawing characters.
//!
//! Every wait is bounded and polls the screen; a failed wait prints the last screen.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::journal::{kinds, records};
use support::pty::{Tui, command};

/// `cutover ARGS` in a pty of `cols`×`rows` under a UTF-8 locale (`LANG=C.UTF-8`, no `LC_ALL`
/// or `LC_CTYPE`), with `env` on top.
fn spawn(args: &[&str], env: &[(&str, &str)], cols: u16, rows: u16) -> Tui {
    let mut cmd = command(args);
    cmd.env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Tui::spawn(cmd, cols, rows)
}

fn journal_kinds(journal: &Path) -> Vec<String> {
    kinds(&records(journal))
}

/// A demo on a fresh world in a temporary directory.
fn demo(dir: &Path, extra: &[&str], env: &[(&str, &str)], cols: u16, rows: u16) -> Tui {
    let world = dir.join("world");
    let journal = dir.join("demo.journal.jsonl");
    let mut args = vec![
        "demo",
        "--world",
        world.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    spawn(&args, env, cols, rows)
}

/// The screen's row that starts with a node's name.
fn node_row<'a>(screen: &'a str, node: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{node} ")))
}

/// The screen's rows above the HARD STOP box's top border.
fn above_box(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .take_while(|l| !l.contains("HARD STOP  "))
        .collect()
}

#[test]
fn hard_stop_at_80x24_keeps_the_fleet_in_view() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("demo.journal.jsonl");
    let mut ui = demo(tmp.path(), &[], &[], 80, 24);
    let long = Duration::from_secs(30);

    // The first hard stop: every node listed above the box, in the pool on the load balancer.
    let s = ui.wait_for("the first hard stop", long, |s| {
        s.contains("HARD STOP  jws-payload-readable")
    });
    let above = above_box(&s).join("\n");
    assert!(
        above.contains("POOL: consistent fernet"),
        "{}",
        ui.framed(&s)
    );
    for node in ["node1", "node2", "node3"] {
        let row = node_row(&above, node)
            .unwrap_or_else(|| panic!("no row for {node} above the box:\n{}", ui.framed(&s)));
        assert!(row.contains(" UP "), "{node} is UP: `{row}`");
        assert!(row.contains("fernet"), "{node}'s provider: `{row}`");
    }
    // Its text does not all fit: it says so.
    assert!(s.contains("more line"), "{}", ui.framed(&s));

    // On to the next stop: node1 flipped and out of the pool (MAINT), the others serving.
    ui.send("Y");
    let s = ui.wait_for("the mixed-pool hard stop for node1", long, |s| {
        s.contains("HARD STOP  mixed-pool") && s.contains("Re-adding node1")
    });
    let above = above_box(&s).join("\n");
    for (node, lb, provider) in [
        ("node1", "MAINT", "jws"),
        ("node2", "UP", "fernet"),
        ("node3", "UP", "fernet"),
    ] {
        let row = node_row(&above, node)
            .unwrap_or_else(|| panic!("no row for {node} above the box:\n{}", ui.framed(&s)));
        assert!(
            row.contains(&format!(" {lb} ")) && row.contains(provider),
            "{node}: {lb} {provider} in `{row}`"
        );
        assert!(row.contains("201"), "{node}'s last direct token: `{row}`");
    }

    // ? opens help over the box; Esc closes it and does not decline.
    ui.send("?");
    ui.wait_for("help", long, |s| {
        s.contains("close a popup (never declines)")
    });
    ui.send("\x1b");
    let s = ui.wait_for("help closed", long, |s| {
        !s.contains("never declines") && s.contains("HARD STOP  mixed-pool")
    });
    assert!(s.contains("q quit (safe here)"), "{}", ui.framed(&s));
    ui.send("\x1b");
    // q asks, saying the run waits at the hard stop; the nodes stay in view.
    ui.send("q");
    let s = ui.wait_for("the quit question", long, |s| {
        s.contains("waiting at the HARD STOP mixed-pool")
    });
    assert!(s.contains("Quitting here is safe"), "{}", ui.framed(&s));
    for node in ["node1", "node2", "node3"] {
        assert!(node_row(&s, node).is_some(), "{}", ui.framed(&s));
    }
    // n stays (it does not decline at the box behind); q and y quit: paused, exit 3.
    ui.send("n");
    ui.wait_for("the question closed", long, |s| {
        !s.contains("Quitting here is safe") && s.contains("HARD STOP  mixed-pool")
    });
    ui.send("q");
    ui.wait_for("the quit question again", long, |s| {
        s.contains("Quitting here is safe")
    });
    ui.send("y");
    let code = ui.wait_exit(Duration::from_secs(15));
    assert_eq!(code, 3, "paused at a hard stop");
    let kinds = journal_kinds(&journal);
    let answers: Vec<&String> = kinds
        .iter()
        .filter(|k| k.starts_with("hard_stop_confirmed") || k.starts_with("hard_stop_declined"))
        .collect();
    assert_eq!(
        answers.len(),
        1,
        "only the first stop was answered (Esc and n in the question answer nothing): {kinds:?}"
    );
    assert!(answers[0].starts_with("hard_stop_confirmed"), "{kinds:?}");
}

/// What reached the terminal, checked as bytes: nothing above 127.
fn assert_ascii_bytes(ui: &Tui, what: &str) {
    let odd: Vec<(usize, u8)> = ui
        .raw
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, b)| *b >= 0x80)
        .take(8)
        .collect();
    assert!(
        odd.is_empty(),
        "{what}: bytes above 127 reached the terminal at {odd:?}; screen:\n{}",
        ui.framed(&ui.screen())
    );
}

fn ascii_run(env: &[(&str, &str)], extra: &[&str], what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut ui = demo(tmp.path(), extra, env, 80, 24);
    let long = Duration::from_secs(30);
    let s = ui.wait_for("the first hard stop", long, |s| {
        s.contains("HARD STOP  jws-payload-readable")
    });
    // The box in `+=|` and the node table's rule in `-`; no box-drawing character anywhere.
    assert!(
        s.contains("+ HARD STOP  jws-payload-readable ="),
        "{what}:\n{}",
        ui.framed(&s)
    );
    assert!(s.contains("Nodes (3) ---"), "{what}:\n{}", ui.framed(&s));
    assert!(
        !s.chars().any(|c| ('\u{2500}'..='\u{257f}').contains(&c)),
        "{what}: box drawing on screen:\n{}",
        ui.framed(&s)
    );
    // No JWS key yet on any node: `x`, not `✗`.
    for node in ["node1", "node2", "node3"] {
        let row = node_row(&s, node).unwrap();
        assert!(row.contains(" x 0/3 "), "{what}: `{row}`");
    }
    // Past the stop the steps show: done `+`, running `*` (or the next stop's `#`), pending `.`.
    ui.send("Y");
    let s = ui.wait_for("steps in ASCII", long, |s| {
        s.contains(" + Preflight") && s.contains(" . Close")
    });
    assert!(
        s.contains(" * JWS keys")
            || s.contains(" + JWS keys")
            || s.contains(" * Rolling")
            || s.contains(" # Rolling"),
        "{what}: a running step:\n{}",
        ui.framed(&s)
    );
    assert_ascii_bytes(&ui, what);
    // q quits at once between actions, or asks first: answer y if it asks.
    ui.send("q");
    let deadline = Instant::now() + long;
    while Instant::now() < deadline {
        ui.pump();
        if ui.eof || ui.screen().contains("Quit") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !ui.eof {
        ui.send("y");
    }
    let _ = ui.wait_exit(Duration::from_secs(30));
    assert_ascii_bytes(&ui, what);
}

#[test]
fn lang_c_draws_ascii_only() {
    ascii_run(&[("LANG", "C"), ("LC_ALL", "C")], &[], "LANG=C LC_ALL=C");
}

#[test]
fn ascii_flag_in_a_utf8_locale() {
    ascii_run(&[("LANG", "C.UTF-8")], &["--ascii"], "--ascii");
}
