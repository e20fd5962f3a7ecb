//! Journals written by an earlier cutover (tests/fixtures/journals/main-2edb051/, schema 1: no
//! plan in `run_started`) still verify, fold to the same state, replay to their last event and,
//! the paused one, resume to completion; a journal whose recorded plan this cutover would compile
//! differently is refused before anything happens.
//!
//! `expected/` holds what the cutover that wrote them printed for `journal show` (markdown and
//! text), generated with that binary before the schema changed.

mod support;

use cutover::engine::recorded::plan_sha256;
use cutover::engine::state::{RunStatus, StepStatus};
use cutover::journal::{self, Entry, Journal};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::bin::{BIN, text};
use support::pty::{self, Tui};

const JOURNALS: [&str; 2] = ["done", "paused"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journals/main-2edb051")
}

fn journal_of(name: &str) -> PathBuf {
    fixtures().join(format!("{name}.jsonl"))
}

/// `cutover ARGS` under the locale the expected output was printed in.
fn cutover(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cutover")
}

/// A journal copy as cutover writes them: 0600.
fn private(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn every_old_journal_verifies() {
    for name in JOURNALS {
        let j = journal_of(name);
        let out = cutover(&["journal", "verify", j.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("hash chain verified"),
            "{name}: {}",
            text(&out)
        );
    }
}

/// `journal show` prints, byte for byte, what the cutover that wrote the journals printed.
#[test]
fn journal_show_prints_what_the_old_cutover_printed() {
    for name in JOURNALS {
        let j = journal_of(name);
        for format in ["markdown", "text"] {
            let out = cutover(&["journal", "show", "--format", format, j.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {format}: {}",
                text(&out)
            );
            let expected =
                fs::read_to_string(fixtures().join(format!("expected/{name}.{format}"))).unwrap();
            let got = String::from_utf8(out.stdout).unwrap();
            if got != expected {
                let first = got
                    .lines()
                    .zip(expected.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(got.lines().count().min(expected.lines().count()));
                panic!(
                    "{name} {format}: differs from line {}:\n  now:      {:?}\n  expected: {:?}",
                    first + 1,
                    got.lines().nth(first),
                    expected.lines().nth(first)
                );
            }
        }
    }
}

/// The fold of an old journal: the plan upcast from the recorded runbook (compiled once, as it
/// is read), and the state the run ended in.
#[test]
fn old_journals_fold_to_the_state_they_ended_in() {
    for name in JOURNALS {
        let read = journal::read(&journal_of(name)).unwrap();
        let rs_data = &read.records[0].data;
        assert_eq!(rs_data["schema"], 1, "{name}: a journal of schema 1");
        assert!(rs_data.get("plan").is_none(), "{name}: it records no plan");
        let state = cutover::runtime::fold(&read.records).unwrap();
        let run = state.run.as_ref().unwrap();
        assert!(state.plan.len() > 20, "{name}: {} ops", state.plan.len());
        assert_eq!(*state.plan, run.plan);
        assert_eq!(run.plan_sha256, plan_sha256(&state.plan));
        assert_eq!(
            cutover::engine::recorded::check_resumable(run),
            Ok(()),
            "{name}: this cutover compiles the recorded runbook into the same plan"
        );
        assert_eq!(state.events, read.records.len() as u64);
        match name {
            "done" => {
                assert_eq!(state.status, RunStatus::Completed);
                assert_eq!(state.cursor, state.plan.len());
                assert!(state.steps.iter().all(|s| s.status == StepStatus::Done));
                assert!(state.all_flipped());
                let answered: Vec<String> = state
                    .confirmations
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect();
                assert_eq!(
                    answered,
                    ["jws-payload-readable", "mixed-pool", "mixed-pool"]
                );
            }
            _ => {
                assert_eq!(
                    state.status,
                    RunStatus::Paused {
                        reason: "hard stop `mixed-pool` declined by root@vm".into()
                    }
                );
                let op = state.current_op().unwrap();
                assert_eq!(op.step, "rolling");
                assert_eq!(op.node.as_deref(), Some("node1"));
                assert_eq!(
                    state.nodes["node1"].running_provider().as_deref(),
                    Some("jws")
                );
                assert_eq!(
                    state.nodes["node2"].running_provider().as_deref(),
                    Some("fernet")
                );
            }
        }
        assert!(state.confirmations.iter().all(|(_, who)| who == "root@vm"));
    }
}

/// Every `who` in the old journals reads into the typed `Who` and is written back as the same
/// JSON (a new record of the same event holds the same bytes).
#[test]
fn every_who_reads_and_writes_back_the_same() {
    let mut seen = 0;
    for name in JOURNALS {
        for r in journal::read(&journal_of(name)).unwrap().records {
            let Some(who) = r.data.get("who") else {
                continue;
            };
            let event = cutover::engine::recorded::read_event(&r.kind, &r.data).unwrap();
            assert_eq!(&event.data()["who"], who, "{name} seq {}", r.seq);
            seen += 1;
        }
    }
    // run_started ×2, three confirmations in done, one confirmation and one decline in paused.
    assert_eq!(seen, 7);
}

/// `cutover replay` in a terminal reaches each old journal's last event.
#[test]
fn replay_reaches_the_last_event() {
    for (name, end) in [("done", "COMPLETED"), ("paused", "PAUSED")] {
        let j = journal_of(name);
        let n = journal::read(&j).unwrap().records.len();
        let mut ui = Tui::spawn(pty::command(&["replay", j.to_str().unwrap()]), 120, 40);
        ui.wait_for("the replay", Duration::from_secs(20), |s| {
            s.contains("REPLAY")
        });
        ui.send("G");
        let want = format!("event {n}/{n}");
        let s = ui.wait_for(&want, Duration::from_secs(20), |s| {
            s.lines().next().is_some_and(|l| l.contains(&want))
        });
        assert!(s.lines().next().unwrap().contains(end), "{name}:\n{s}");
        ui.send("q");
        assert_eq!(ui.wait_exit(Duration::from_secs(10)), 0, "{name}");
    }
}

/// The run's world as it was at the pause, where the journal says it is, with the journal
/// copied beside it (the journal and the world name their absolute paths).
fn restore_paused() -> PathBuf {
    let root = Path::new("/tmp/cutover-fixture-main");
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).unwrap();
    let tar = Command::new("tar")
        .arg("xzf")
        .arg(fixtures().join("paused-world.tar.gz"))
        .arg("-C")
        .arg(root)
        .status()
        .unwrap();
    assert!(tar.success());
    let j = root.join("paused.jsonl");
    fs::copy(journal_of("paused"), &j).unwrap();
    private(&j);
    j
}

/// The fleet lock the paused run left names its journal file (`dev:inode`), the bastion and the
/// process: a restored copy is another file, maybe on another host. Make the locks say what
/// they said of the original, about this restored journal on this host, held by a process
/// that has ended, as after the real pause.
fn lock_names(journal: &Path) {
    let meta = fs::metadata(journal).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let host = nix::sys::utsname::uname()
        .unwrap()
        .nodename()
        .to_string_lossy()
        .into_owned();
    for node in ["node1", "node2", "node3"] {
        let f = journal
            .parent()
            .unwrap()
            .join(format!("paused/{node}/var/lib/cutover/fleet.lock"));
        let mut holder: Value = serde_json::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(holder["journal"], journal.to_str().unwrap(), "{node}");
        holder["journal_id"] = format!("{}:{}", meta.dev(), meta.ino()).into();
        holder["bastion"] = host.clone().into();
        holder["pid"] = pid.into();
        fs::write(&f, holder.to_string()).unwrap();
    }
}

/// `[token] provider` of a keystone.conf, read here rather than through cutover.
fn token_provider(conf: &Path) -> Option<String> {
    let text = fs::read_to_string(conf).unwrap();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if section == "token"
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "provider"
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

/// The paused run resumes with the shipped answers and completes: every node on jws.
#[test]
fn the_paused_journal_resumes_to_completion() {
    let j = restore_paused();
    lock_names(&j);
    let before = fs::read(&j).unwrap();
    let conf = |n: &str| {
        j.parent()
            .unwrap()
            .join(format!("paused/{n}/etc/keystone/keystone.conf"))
    };
    assert_eq!(token_provider(&conf("node2")).as_deref(), Some("fernet"));
    let out = Command::new(BIN)
        .args(["resume", j.to_str().unwrap(), "--headless", "--answers"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml"))
        .current_dir(j.parent().unwrap())
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for n in ["node1", "node2", "node3"] {
        assert_eq!(token_provider(&conf(n)).as_deref(), Some("jws"), "{n}");
    }
    // Appended to, never rewritten; still intact.
    let after = fs::read(&j).unwrap();
    assert!(after.starts_with(&before));
    let report = journal::verify(&j);
    assert!(report.ok(), "{report:?}");
    let kinds: Vec<String> = journal::read(&j)
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(kinds.contains(&"run_resumed".to_string()));
    assert_eq!(kinds.last().map(String::as_str), Some("run_completed"));
    let _ = fs::remove_dir_all("/tmp/cutover-fixture-main");
}

/// A journal whose recorded plan this cutover would compile differently is refused (exit 4),
/// naming the first op that differs and the cutover that started it, before any lock, world
/// or probe: the paused journal, its `run_started` rewritten as a schema-2 cutover "0.0.9"
/// would have recorded it with one gate planned differently (the chain recomputed).
#[test]
fn a_plan_this_cutover_compiles_differently_is_refused() {
    let read = journal::read(&journal_of("paused")).unwrap();
    let state = cutover::runtime::fold(&read.records).unwrap();
    let mut plan = serde_json::to_value(&state.plan).unwrap();
    let i = state
        .plan
        .iter()
        .position(|o| o.step == "rolling" && o.node.as_deref() == Some("node2"))
        .unwrap();
    plan[i]["step"] = "verify".into();
    let plan_ops: Vec<cutover::engine::plan::Op> = serde_json::from_value(plan.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("changed.jsonl");
    let mut w = Journal::create(&j).unwrap();
    w.append_batch(
        read.records
            .into_iter()
            .map(|r| {
                let mut data = r.data;
                if r.kind == "run_started" {
                    data["schema"] = 2.into();
                    data["plan"] = plan.clone();
                    data["plan_sha256"] = plan_sha256(&plan_ops).into();
                    data["compiled_by"] = "cutover 0.0.9".into();
                }
                Entry {
                    time: r.time,
                    run: r.run,
                    actor: r.actor,
                    kind: r.kind,
                    step: r.step,
                    node: r.node,
                    data,
                }
            })
            .collect(),
    )
    .unwrap();
    drop(w);
    let before = fs::read(&j).unwrap();
    let out = cutover(&[
        "resume",
        j.to_str().unwrap(),
        "--headless",
        "--answers",
        "runbooks/demo-answers.yaml",
    ]);
    let err = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(err.contains(&j.display().to_string()), "{err}");
    assert!(
        err.contains(&format!(
            "op {i}: the journal's plan has gate `pool-capacity` (step `verify`, node2), this cutover plans gate `pool-capacity` (step `rolling`, node2)"
        )),
        "names the op and what differs: {err}"
    );
    assert!(
        err.contains(
            "Finish the run with cutover 0.0.9, the version that started it, or start a new run"
        ),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(fs::read(&j).unwrap(), before, "the journal is untouched");
}
