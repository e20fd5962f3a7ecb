//! End to end through a pseudo-terminal: the real `cutover` binary runs the whole flagship on a
//! fresh demo world in its terminal UI at 100×30, driven by keys as an operator would, its screen
//! parsed by a terminal emulator (vt100). Then the world on disk and the journal are checked.
//!
//! Every wait is bounded and polls the screen; a failed wait prints the last screen.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::pty::{Tui, command};

const COLS: u16 = 100;
const ROWS: u16 = 30;

fn framed(s: &str) -> String {
    support::pty::framed(s, COLS)
}

/// The elapsed clock in the header (`T+00:00:07`), which the UI redraws every second.
fn clock(screen: &str) -> Option<String> {
    let i = screen.find("T+")?;
    Some(screen[i..].chars().take(10).collect())
}

fn hard_stop_on_screen(s: &str, id: &str, title: &str) -> bool {
    s.contains("HARD STOP") && s.contains(id) && s.contains(title)
}

fn journal_kinds(journal: &Path) -> Vec<String> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("kind")?.as_str().map(str::to_string))
        .collect()
}

#[test]
fn demo_runs_to_completion_through_a_pty() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    let journal = tmp.path().join("demo.journal.jsonl");
    let mut ui = Tui::spawn(
        command(&[
            "demo",
            "--world",
            world.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
        ]),
        COLS,
        ROWS,
    );
    let long = Duration::from_secs(20);

    // 1. The first hard stop. Enter and a lowercase y are swallowed: it stays on screen (we
    //    watch the header's clock tick twice, at least a second of redraws after the keys) and
    //    nothing is confirmed in the journal.
    let s = ui.wait_for("the first hard stop (jws-payload-readable)", long, |s| {
        hard_stop_on_screen(s, "jws-payload-readable", "signed, not encrypted")
    });
    assert!(
        s.contains("Shift+Y"),
        "the hard stop names its key:\n{}",
        framed(&s)
    );
    ui.send("\r");
    ui.send("y");
    let t0 = clock(&ui.screen());
    let mut seen = t0.clone();
    for tick in 0..2 {
        ui.wait_for(&format!("clock tick {tick} at the hard stop"), long, |s| {
            let c = clock(s);
            c.is_some() && c != seen
        });
        seen = clock(&ui.screen());
    }
    let s = ui.screen();
    assert!(
        hard_stop_on_screen(&s, "jws-payload-readable", "signed, not encrypted"),
        "Enter or y went past the hard stop:\n{}",
        framed(&s)
    );
    assert!(
        !journal_kinds(&journal)
            .iter()
            .any(|k| k.starts_with("hard_stop_confirmed") || k.starts_with("hard_stop_declined")),
        "Enter or y answered the hard stop in the journal"
    );

    // 2. Shift+Y through the three hard stops: the payload warning, then mixed-pool as node1 and
    //    node2 rejoin beside Fernet nodes (node3 rejoins into an all-JWS pool: no stop).
    ui.send("Y");
    for node in ["node1", "node2"] {
        let title = format!("Re-adding {node} mixes providers");
        ui.wait_for(&format!("the mixed-pool hard stop for {node}"), long, |s| {
            hard_stop_on_screen(s, "mixed-pool", &title)
        });
        ui.send("Y");
    }
    let s = ui.wait_for("COMPLETED", long, |s| {
        s.contains("COMPLETED") && !s.contains("HARD STOP")
    });
    assert!(s.contains("POOL: consistent jws"), "{}", framed(&s));

    // 3. q quits; the run completed, so the exit code is 0 and the terminal is given back.
    ui.send("q");
    let code = ui.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "exit code; last screen:\n{}", framed(&ui.screen()));
    assert!(
        !ui.vt.screen().alternate_screen(),
        "left the alternate screen"
    );

    // 4. The world on disk: every node on jws, every node holding its private key, mode 0600.
    let mut nodes = 0;
    for entry in std::fs::read_dir(&world).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("node") || !dir.is_dir() {
            continue;
        }
        nodes += 1;
        let conf = std::fs::read_to_string(dir.join("etc/keystone/keystone.conf")).unwrap();
        assert!(
            conf.lines().any(|l| l.trim() == "provider = jws"),
            "{name}: keystone.conf has no `provider = jws`"
        );
        let pem = dir.join("etc/keystone/jws-keys/private/private.pem");
        let meta =
            std::fs::metadata(&pem).unwrap_or_else(|e| panic!("{name}: {}: {e}", pem.display()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{name}: private.pem mode"
        );
    }
    assert_eq!(nodes, 3, "the demo world has three nodes");

    // 5. The journal's hash chain is intact.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["journal", "verify", journal.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "journal verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds = journal_kinds(&journal);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.starts_with("hard_stop_confirmed"))
            .count(),
        3,
        "three hard stops confirmed: {kinds:?}"
    );
    eprintln!("e2e demo through a pty: {:?}", started.elapsed());
}
