//! Ctrl-C and SIGTERM in a headless run are the operator's `q`, not a crash.
//!
//! The real `cutover run --headless` against a demo world served by a separate `cutover world
//! serve`, with node1's restart slowed down. While node1's restart is in flight the test sends
//! SIGINT to cutover (what Ctrl-C in its terminal, or `kill -INT`, does).
//!
//! One SIGINT: cutover says it pauses after the action in flight, the restart completes (seen
//! by observers that do not take cutover's word for it: the world's own `run/restarts.log` and
//! `run/provider`, node1 answering HTTP), the journal records the operator's pause after the
//! restart's outcome, cutover exits 3, and one headless resume completes the run.
//!
//! Two SIGINTs: the second stops cutover at once (a SIGINT death, as without a handler), the
//! restart's intent is left without an outcome, and the resume asks about that in-doubt action
//! (hard stop `in-doubt`); answered mark-done (the world says the restart happened), the run
//! completes without restarting node1 again.
//!
//! And `cutover world serve` keeps serving through a hangup and stops on SIGTERM.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod support;
use support::bin::{Reaped, bin, cutover, text};
use support::journal::{has_outcome, kinds, records, restart_id};
use support::world::{answers, provider, restart_in_flight, restarts, served_world};

/// Seconds node1's restart takes (the world's slow-restart fault): the window to signal in.
const SLOW: &str = "6";

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).expect("send the signal");
}

/// `cutover run --headless` of the flagship on the served world, output to files.
struct HeadlessRun {
    child: Reaped,
    stdout: PathBuf,
    stderr: PathBuf,
    journal: PathBuf,
}

impl HeadlessRun {
    fn start(tmp: &Path, dir: &Path) -> HeadlessRun {
        let journal = tmp.join("run.jsonl");
        let stdout = tmp.join("run.stdout");
        let stderr = tmp.join("run.stderr");
        let answers = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
        let child = Command::new(bin())
            .args(["run", "runbooks/fernet-to-jws.yaml", "-i"])
            .arg(dir.join("inventory.yaml"))
            .arg("--journal")
            .arg(&journal)
            .args(["--headless", "--answers"])
            .arg(&answers)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("cutover run --headless");
        HeadlessRun {
            child: Reaped(child),
            stdout,
            stderr,
            journal,
        }
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}\n--- journal kinds\n{:?}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            kinds(&records(&self.journal))
        )
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_until(&mut self, what: &str, within: Duration, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + within;
        while !cond() {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                panic!("cutover ended ({s}) before {what}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "cutover did not exit within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A headless resume of `journal` with the demo answers plus `extra` answer lines.
fn resume(tmp: &Path, journal: &Path, extra: &str) -> std::process::Output {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
    let answers = tmp.join("resume-answers.yaml");
    std::fs::write(
        &answers,
        format!("{}{extra}", std::fs::read_to_string(demo).unwrap()),
    )
    .unwrap();
    cutover(&[
        "resume",
        journal.to_str().unwrap(),
        "--headless",
        "--answers",
        answers.to_str().unwrap(),
    ])
}

/// The flagship headless on a new served world (in `tmp`) with node1's restarts slowed,
/// returned once node1's restart is in flight.
fn headless_during_node1s_restart(tmp: &Path) -> (Reaped, cutover::world::WorldInfo, HeadlessRun) {
    let (dir, serve, info) = served_world(tmp, SLOW);
    let mut run = HeadlessRun::start(tmp, &dir);
    let journal = run.journal.clone();
    run.wait_until("node1's restart in flight", Duration::from_secs(60), || {
        restart_in_flight(&journal, &info.nodes[0])
    });
    (serve, info, run)
}

#[test]
fn ctrl_c_during_a_restart_pauses_after_it_and_one_resume_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_serve, info, mut run) = headless_during_node1s_restart(tmp.path());
    let node1 = &info.nodes[0];
    let journal = run.journal.clone();
    signal(&run.child.0, Signal::SIGINT);
    // The restart takes SLOW seconds; the run waits for it, then pauses and exits.
    let status = run.wait_exit(Duration::from_secs(60));
    let out = run.output();
    assert_eq!(status.code(), Some(3), "exit 3 (paused): {status}\n{out}");
    assert!(
        run.stderr()
            .contains("pausing after the action in flight (Ctrl-C again to stop now)"),
        "{out}"
    );
    assert!(
        run.stderr()
            .contains("paused. continue with: cutover resume"),
        "{out}"
    );

    // The world's own account: the restart began once and Keystone runs on the provider the
    // run flipped it to.
    assert_eq!(restarts(node1), 1, "node1 restarted exactly once");
    assert_eq!(
        provider(node1),
        "jws",
        "node1 is up on jws after its restart"
    );
    assert!(answers(node1), "node1 answers GET /v3");

    // The journal's account: the restart's outcome (ok), then the operator's pause.
    let recs = records(&journal);
    let ks = kinds(&recs);
    let id = restart_id(&recs, "node1").expect("node1's restart intent");
    let outcome = recs
        .iter()
        .find(|r| r["kind"] == "outcome" && r["data"]["id"] == id)
        .unwrap_or_else(|| panic!("no outcome for node1's restart: {ks:?}"));
    assert_eq!(outcome["data"]["ok"], true, "{outcome}");
    let requested = recs
        .iter()
        .find(|r| r["kind"] == "pause_requested")
        .unwrap_or_else(|| panic!("no pause_requested: {ks:?}"));
    // The operator's own request (no other cause recorded).
    assert!(requested["data"].get("cause").is_none(), "{requested}");
    let paused: Vec<&serde_json::Value> =
        recs.iter().filter(|r| r["kind"] == "run_paused").collect();
    assert_eq!(paused.len(), 1, "one pause: {ks:?}");
    assert_eq!(paused[0]["data"]["reason"], "paused by the operator");
    let seq = |r: &serde_json::Value| r["seq"].as_u64().unwrap();
    assert!(seq(requested) < seq(outcome), "asked while the restart ran");
    assert!(seq(paused[0]) > seq(outcome), "paused after the restart");
    assert_eq!(ks.last().map(String::as_str), Some("run_paused"), "{ks:?}");
    assert!(!ks.iter().any(|k| k == "run_halted"), "{ks:?}");

    // One resume completes the run, without restarting node1 again.
    let out = resume(tmp.path(), &journal, "");
    let ks = kinds(&records(&journal));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the resume completes: {}\nkinds: {ks:?}",
        text(&out)
    );
    assert_eq!(ks.iter().filter(|k| *k == "run_resumed").count(), 1);
    assert_eq!(ks.iter().filter(|k| *k == "run_paused").count(), 1);
    assert_eq!(ks.last().map(String::as_str), Some("run_completed"));
    assert_eq!(restarts(node1), 1, "the resume did not restart node1 again");
    let out = cutover(&["journal", "verify", journal.to_str().unwrap()]);
    assert!(out.status.success(), "journal verify: {}", text(&out));
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_the_resume_asks_about_the_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (_serve, info, mut run) = headless_during_node1s_restart(tmp.path());
    let node1 = &info.nodes[0];
    let journal = run.journal.clone();
    signal(&run.child.0, Signal::SIGINT);
    run.wait_until("the pause request", Duration::from_secs(10), || {
        kinds(&records(&journal))
            .iter()
            .any(|k| k == "pause_requested")
    });
    signal(&run.child.0, Signal::SIGINT);
    let second = Instant::now();
    let status = run.wait_exit(Duration::from_secs(10));
    let out = run.output();
    // At once, as a SIGINT without a handler would: not after the restart's SLOW seconds.
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "took {:?}",
        second.elapsed()
    );
    assert_eq!(
        status.signal(),
        Some(Signal::SIGINT as i32),
        "{status}\n{out}"
    );
    assert!(run.stderr().contains("again: stopping now"), "{out}");
    let recs = records(&journal);
    let id = restart_id(&recs, "node1").expect("node1's restart intent");
    assert!(
        !has_outcome(&recs, &id),
        "the restart's outcome was journaled: {out}"
    );
    assert!(
        !kinds(&recs).iter().any(|k| k == "run_paused"),
        "no pause journaled: {out}"
    );

    // The restart was not killed with cutover (its own process group): the world finishes it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(provider(node1) == "jws" && answers(node1)) {
        assert!(
            Instant::now() < deadline,
            "node1's restart did not complete after cutover stopped (provider {:?})",
            provider(node1)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(restarts(node1), 1);

    // Without an answer for it, the resume stops at the in-doubt restart.
    let out = resume(tmp.path(), &journal, "");
    let recs = records(&journal);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let resumed = recs
        .iter()
        .rfind(|r| r["kind"] == "run_resumed")
        .unwrap_or_else(|| panic!("no run_resumed: {}", text(&out)));
    assert_eq!(
        resumed["data"]["in_doubt"],
        serde_json::json!([id]),
        "{resumed}"
    );
    let raised = recs
        .iter()
        .rfind(|r| r["kind"] == "hard_stop_raised")
        .expect("a hard stop");
    assert_eq!(raised["data"]["id"], "in-doubt", "{raised}");
    assert_eq!(restarts(node1), 1, "nothing redone without an answer");

    // The world says the restart happened: marked done, the run completes without a second
    // restart.
    let out = resume(tmp.path(), &journal, "in-doubt: mark-done\n");
    let recs = records(&journal);
    let ks = kinds(&recs);
    assert_eq!(out.status.code(), Some(0), "{}\nkinds: {ks:?}", text(&out));
    let resolved = recs
        .iter()
        .find(|r| r["kind"] == "in_doubt_resolved")
        .unwrap_or_else(|| panic!("no in_doubt_resolved: {ks:?}"));
    assert_eq!(resolved["data"]["id"], id);
    assert_eq!(resolved["data"]["choice"], "mark-done");
    assert_eq!(ks.last().map(String::as_str), Some("run_completed"));
    assert_eq!(restarts(node1), 1, "node1 was not restarted again");
    let out = cutover(&["journal", "verify", journal.to_str().unwrap()]);
    assert!(out.status.success(), "journal verify: {}", text(&out));
}

#[test]
fn world_serve_keeps_serving_through_a_hangup_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (_dir, mut serve, info) = served_world(tmp.path(), SLOW);
    signal(&serve.0, Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        serve.0.try_wait().unwrap().is_none(),
        "world serve ended on SIGHUP"
    );
    for n in &info.nodes {
        assert!(answers(n), "{} answers after the hangup", n.name);
    }
    signal(&serve.0, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = serve.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "world serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        !answers(&info.nodes[0]),
        "node1 still answers after SIGTERM"
    );
}

/// A headless resume watches SIGHUP, SIGINT and SIGTERM from before its fresh probe: one
/// arriving while the probe reads the fleet ends the session at once and cleanly (no signal
/// death), saying so, with nothing journaled; the run stays paused and keeps its fleet lock (a
/// later resume takes it back and completes).
#[test]
fn a_signal_during_the_resumes_probe_stops_cleanly_before_resuming() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("world");
    let info =
        cutover::world::create(&dir, &cutover::world::WorldSpec { nodes: 2, lbs: 1 }).unwrap();
    let journal = tmp.path().join("run.jsonl");
    // No answer for the first hard stop: the run pauses there (exit 3).
    let partial = tmp.path().join("partial.yaml");
    std::fs::write(&partial, "mixed-pool: confirm\n").unwrap();
    let out = cutover(&[
        "run",
        "runbooks/fernet-to-jws.yaml",
        "-i",
        info.inventory_path.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--headless",
        "--answers",
        partial.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let inv = cutover::inventory::Inventory::load(&info.inventory_path).unwrap();
    let locks = || -> Vec<String> {
        inv.nodes
            .iter()
            .filter_map(|n| {
                std::fs::read_to_string(cutover::runtime::fleet_lock::lock_file(n)).ok()
            })
            .collect()
    };
    assert_eq!(locks().len(), 2, "the paused run holds its fleet");

    // The probe hashes every Fernet key with sha256sum (the fleet lock does not): a stand-in
    // first on the PATH says the probe has begun and takes its time while `slow` exists.
    let probing = tmp.path().join("probing");
    let slow = tmp.path().join("slow");
    let path = slow_stand_in(tmp.path(), "sha256sum", &probing, &slow, 20);
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");

    for (sig, said) in [
        (Signal::SIGHUP, "the terminal hung up"),
        (Signal::SIGINT, "Ctrl-C (SIGINT)"),
        (Signal::SIGTERM, "SIGTERM"),
    ] {
        let _ = std::fs::remove_file(&probing);
        let before = std::fs::read(&journal).unwrap();
        let err = tmp.path().join("resume.stderr");
        let child = Command::new(bin())
            .args([
                "resume",
                journal.to_str().unwrap(),
                "--headless",
                "--answers",
            ])
            .arg(&demo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let mut child = Reaped(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !probing.exists() {
            assert!(
                child.0.try_wait().unwrap().is_none(),
                "the resume ended before its probe: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "the probe never began");
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(&child.0, sig);
        let sent = Instant::now();
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "{sig}: the resume did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        // At once (not after the probe's 20 s), and not a signal death.
        assert!(sent.elapsed() < Duration::from_secs(5), "{sig}: {stderr}");
        assert_eq!(status.code(), Some(3), "{sig}: {status}\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "cutover: {said} during the fresh probe: stopped before resuming; nothing was changed or journaled"
            )),
            "{sig}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            before,
            "{sig}: the journal changed"
        );
        assert_eq!(locks().len(), 2, "{sig}: the run lost its fleet lock");
    }

    // The run is as it was: a resume takes its lock back and completes.
    std::fs::remove_file(&slow).unwrap();
    let out = Command::new(bin())
        .args([
            "resume",
            journal.to_str().unwrap(),
            "--headless",
            "--answers",
        ])
        .arg(&demo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", &path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(locks().is_empty(), "the completed run gave its lock back");
}

/// A signal while a new run takes its fleet lock (after the lock on a node, before
/// `run_started` is journaled) does not kill cutover between the two: the run starts, pauses at
/// once (exit 3) holding its fleet, and one resume completes it. Before, cutover died of the
/// signal there, leaving locks for a journal that had no run in it.
#[test]
fn a_signal_while_the_fleet_lock_is_taken_pauses_the_new_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("world");
    let info =
        cutover::world::create(&dir, &cutover::world::WorldSpec { nodes: 2, lbs: 1 }).unwrap();
    let inv = cutover::inventory::Inventory::load(&info.inventory_path).unwrap();
    let journal = tmp.path().join("run.jsonl");
    // The lock is given its name with ln(1): a stand-in first on the PATH says the lock is being
    // taken and holds it there while `slow` exists.
    let locking = tmp.path().join("locking");
    let slow = tmp.path().join("slow");
    let path = slow_stand_in(tmp.path(), "ln", &locking, &slow, 3);
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
    let err = tmp.path().join("run.stderr");
    let child = Command::new(bin())
        .args(["run", "fernet-to-jws", "-i"])
        .arg(&info.inventory_path)
        .arg("--journal")
        .arg(&journal)
        .args(["--headless", "--answers"])
        .arg(&demo)
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !locking.exists() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the run ended before taking its lock: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child.0, Signal::SIGINT);
    std::fs::remove_file(&slow).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the run did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(
        (status.code(), status.signal()),
        (Some(3), None),
        "{status}\n{stderr}"
    );
    let k = kinds(&records(&journal));
    assert_eq!(k.first().map(String::as_str), Some("run_started"), "{k:?}");
    assert_eq!(k.last().map(String::as_str), Some("run_paused"), "{k:?}");
    let run_id = records(&journal)[0]["run"].as_str().unwrap().to_string();
    for n in &inv.nodes {
        let lock = std::fs::read_to_string(cutover::runtime::fleet_lock::lock_file(n))
            .unwrap_or_else(|e| panic!("{}: no fleet lock ({e})\n{stderr}", n.name));
        assert!(lock.contains(&run_id), "{}: {lock}", n.name);
    }
    // One resume completes the run and gives the fleet back.
    let out = Command::new(bin())
        .arg("resume")
        .arg(&journal)
        .args(["--headless", "--answers"])
        .arg(&demo)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for n in &inv.nodes {
        assert!(
            !cutover::runtime::fleet_lock::lock_file(n).exists(),
            "{}: the completed run left its lock",
            n.name
        );
    }
}

/// A stand-in for `command`, first on the returned PATH: while `slow` exists it creates
/// `begun` and sleeps `secs` seconds before running the real command (which it always does).
/// `slow` is created here; the test removes it to let later calls through at once.
fn slow_stand_in(dir: &Path, command: &str, begun: &Path, slow: &Path, secs: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let fakes = dir.join("bin");
    std::fs::create_dir_all(&fakes).unwrap();
    let fake = fakes.join(command);
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ -e '{slow}' ]; then : > '{begun}'; sleep {secs}; fi\nPATH=${{PATH#*:}} exec {command} \"$@\"\n",
            slow = slow.display(),
            begun = begun.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(slow, "").unwrap();
    format!(
        "{}:{}",
        fakes.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
