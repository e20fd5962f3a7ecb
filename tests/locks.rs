//! One writer per fleet: the journal's lock on the file's identity (symlink refused, hard link
//! meets the same lock), the fleet lock on every node (a second run, a copy of a journal, a
//! second inventory naming the same nodes are refused before any change), `cutover unlock`,
//! and what a completed run leaves behind (nothing).
//!
//! Every test makes its own demo world in a temp dir (`cutover::world::create`, as tests/cli.rs
//! does) and runs the real binary from the crate root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cutover::world::{WorldInfo, WorldSpec};
use serde_json::Value;

mod support;
use support::bin::{BIN, Finished, Spawned, output_files, spawn_captured};

const ANSWERS: &str = "runbooks/demo-answers.yaml";
const RUNBOOK: &str = "runbooks/fernet-to-jws.yaml";
const DEADLINE: Duration = Duration::from_secs(90);

type Run = Finished;

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

type Running = Spawned;

fn spawn(scratch: &Path, args: &[&str]) -> Running {
    let (out, err) = output_files(scratch);
    spawn_captured(
        Command::new(BIN)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1"),
        &format!("cutover {}", args.join(" ")),
        &out,
        &err,
    )
}

struct World {
    tmp: tempfile::TempDir,
    info: WorldInfo,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let info = cutover::world::create(&tmp.path().join("w"), &WorldSpec { nodes: 3, lbs: 1 })
            .expect("create a demo world");
        World { tmp, info }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn run(&self, args: &[&str]) -> Run {
        spawn(self.tmp.path(), args).finish(DEADLINE)
    }
    fn spawn(&self, args: &[&str]) -> Running {
        spawn(self.tmp.path(), args)
    }
    fn inventory(&self) -> String {
        s(&self.info.inventory_path)
    }
    /// A headless demo that pauses at the first hard stop (no answers): the run keeps its
    /// fleet lock, its process is gone.
    fn paused_demo(&self, journal: &Path) {
        let (dir, j) = (s(&self.info.dir), s(journal));
        self.run(&["demo", "--headless", "--world", &dir, "--journal", &j])
            .expect(3);
    }
    /// Every node's keystone.conf, in node order.
    fn confs(&self) -> Vec<String> {
        self.info
            .nodes
            .iter()
            .map(|n| fs::read_to_string(&n.keystone_conf).unwrap())
            .collect()
    }
    fn providers(&self) -> Vec<String> {
        self.confs()
            .iter()
            .map(|c| {
                c.lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("provider"))
                    .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim().to_string()))
                    .next_back()
                    .unwrap_or_default()
            })
            .collect()
    }
    /// Every `fleet.lock` file under the world, with its JSON.
    fn fleet_locks(&self) -> Vec<(PathBuf, Value)> {
        let mut out = Vec::new();
        walk(&self.info.dir, &mut |p| {
            if p.file_name().is_some_and(|n| n == "fleet.lock") {
                let v = serde_json::from_str(&fs::read_to_string(p).unwrap())
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
                out.push((p.to_path_buf(), v));
            }
        });
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let ft = fs::symlink_metadata(&p).unwrap().file_type();
        if ft.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn verify(w: &World, j: &Path) {
    let r = w.run(&["journal", "verify", &s(j)]).expect(0);
    assert!(r.stdout.contains("intact"), "{}", r.all());
}

fn run_id(j: &Path) -> String {
    let first: Value =
        serde_json::from_str(fs::read_to_string(j).unwrap().lines().next().unwrap()).unwrap();
    first["run"].as_str().unwrap().to_string()
}

/// (a) One journal named through a symlink and through its real path: the symlink is refused
/// before anything changes (with the real path in the message), the real path is the one
/// writer; a hard link meets the same lock.
#[test]
fn a_symlink_is_refused_and_a_hard_link_meets_the_same_lock() {
    let w = World::new();
    let j = w.path("j.jsonl");
    w.paused_demo(&j);
    let (confs, journal) = (w.confs(), fs::read(&j).unwrap());
    let link = w.path("link.jsonl");
    std::os::unix::fs::symlink(&j, &link).unwrap();
    let real = fs::canonicalize(&j).unwrap();

    let refused = w
        .run(&["resume", &s(&link), "--headless", "--answers", ANSWERS])
        .expect(2);
    assert!(
        refused.stderr.contains(&format!(
            "open the journal by its real path: {}",
            real.display()
        )),
        "{}",
        refused.all()
    );
    assert_eq!(
        w.confs(),
        confs,
        "the refused resume changed a keystone.conf"
    );
    assert_eq!(
        fs::read(&j).unwrap(),
        journal,
        "the refused resume wrote the journal"
    );

    // A hard link is the same file: while a writer holds it (here this test), a resume through
    // the other name is refused, naming the holder.
    let hard = w.path("hard.jsonl");
    fs::hard_link(&j, &hard).unwrap();
    let held = fs::File::open(&j).unwrap();
    assert!(fs4::fs_std::FileExt::try_lock_exclusive(&held).unwrap());
    let refused = w
        .run(&["resume", &s(&hard), "--headless", "--answers", ANSWERS])
        .expect(4);
    assert!(
        refused.stderr.contains("locked by another writer")
            && refused
                .stderr
                .contains(&format!("pid {}", std::process::id())),
        "{}",
        refused.all()
    );
    assert_eq!(w.confs(), confs);
    assert_eq!(fs::read(&j).unwrap(), journal);
    drop(held);

    // Both names at once: exactly one writer, the real path; the run completes once.
    let by_link = w.spawn(&["resume", &s(&link), "--headless", "--answers", ANSWERS]);
    let by_path = w.spawn(&["resume", &s(&j), "--headless", "--answers", ANSWERS]);
    by_link.finish(DEADLINE).expect(2);
    by_path.finish(DEADLINE).expect(0);
    assert_eq!(w.providers(), vec!["jws"; 3]);
    verify(&w, &j);
    let text = fs::read_to_string(&j).unwrap();
    assert_eq!(text.matches("\"kind\":\"run_completed\"").count(), 1);
    assert_eq!(text.matches("\"kind\":\"run_resumed\"").count(), 1);
    assert!(
        !PathBuf::from(format!("{}.lock", real.display())).exists(),
        "the journal's holder note is removed at exit"
    );
}

/// (b) Two copies of one journal resumed at once: the copy is refused by the fleet lock,
/// naming the holder; the original is the one writer.
#[test]
fn two_copies_of_a_journal_resumed_at_once_one_is_refused() {
    let w = World::new();
    let j = w.path("j.jsonl");
    w.paused_demo(&j);
    let copy = w.path("copy.jsonl");
    fs::copy(&j, &copy).unwrap();
    let copied = fs::read(&copy).unwrap();
    let rid = run_id(&j);

    let a = w.spawn(&["resume", &s(&j), "--headless", "--answers", ANSWERS]);
    let b = w.spawn(&["resume", &s(&copy), "--headless", "--answers", ANSWERS]);
    let (a, b) = (a.finish(DEADLINE), b.finish(DEADLINE));
    // Whichever reached the first node's lock first is the one writer; the other is refused
    // by the fleet lock before any change, naming the holder (the original journal, or the
    // copy if the copy got there first).
    let (winner, loser, loser_journal, loser_bytes, winner_journal) = match (a.code, b.code) {
        (0, 4) => (a, b, &copy, copied.clone(), &j),
        (4, 0) => (b, a, &j, fs::read(&copy).unwrap(), &copy),
        _ => panic!(
            "exactly one resume must complete and the other be refused (4)\n--- {}\n{}\n--- {}\n{}",
            a.what,
            a.all(),
            b.what,
            b.all()
        ),
    };
    let _ = winner;
    assert!(
        loser.stderr.contains("the fleet is locked by another run")
            && loser.stderr.contains(&format!("run {rid}"))
            && loser
                .stderr
                .contains(&s(&fs::canonicalize(winner_journal).unwrap()))
            && loser.stderr.contains(" since "),
        "{}",
        loser.all()
    );
    if loser_journal == &copy {
        assert_eq!(
            fs::read(&copy).unwrap(),
            loser_bytes,
            "the refused copy was written"
        );
    } else {
        // The original was refused: it holds exactly what the copy started from.
        assert_eq!(
            fs::read(&j).unwrap(),
            copied,
            "the refused original was written"
        );
    }
    assert_eq!(w.providers(), vec!["jws"; 3]);
    verify(&w, winner_journal);
    assert!(w.fleet_locks().is_empty(), "{:?}", w.fleet_locks());
}

/// (c) A second inventory naming the same nodes (another cluster name): its run is refused
/// before any change, naming who holds the fleet and since when.
#[test]
fn a_second_inventory_naming_the_same_nodes_is_refused() {
    let w = World::new();
    let j1 = w.path("first.jsonl");
    w.paused_demo(&j1);
    let rid = run_id(&j1);
    let locks = w.fleet_locks();
    assert_eq!(locks.len(), 3, "a lock on every node: {locks:?}");
    for (path, v) in &locks {
        for field in ["run_id", "who", "bastion", "pid", "journal", "since"] {
            assert!(
                !v[field].is_null(),
                "{} has no {field}: {v}",
                path.display()
            );
        }
        assert_eq!(v["run_id"], rid.as_str());
    }

    let inv2 = w.path("inventory-copy.yaml");
    let text = fs::read_to_string(&w.info.inventory_path).unwrap();
    fs::write(&inv2, text.replace("cluster: demo", "cluster: demo-copy")).unwrap();
    let confs = w.confs();
    let j2 = w.path("second.jsonl");
    let r = w
        .run(&[
            "run",
            RUNBOOK,
            "-i",
            &s(&inv2),
            "--headless",
            "--answers",
            ANSWERS,
            "--journal",
            &s(&j2),
        ])
        .expect(4);
    let who = locks[0].1["who"].as_str().unwrap();
    let since = locks[0].1["since"].as_str().unwrap();
    assert!(
        r.stderr.contains("the fleet is locked by another run")
            && r.stderr.contains(&format!("run {rid}"))
            && r.stderr.contains(who)
            && r.stderr.contains(&format!("since {since}"))
            && r.stderr.contains("nothing was changed"),
        "{}",
        r.all()
    );
    assert_eq!(w.confs(), confs, "the refused run changed a keystone.conf");
    assert!(!j2.exists(), "the refused run left a journal");
    assert_eq!(w.fleet_locks(), locks, "the refused run touched the locks");
}

/// (d) `cutover unlock` breaks a stale lock (its holder's pid is gone) deliberately, records it
/// in a journal, and the next run proceeds.
#[test]
fn unlock_breaks_a_stale_lock_and_the_next_run_proceeds() {
    let w = World::new();
    let j1 = w.path("first.jsonl");
    w.paused_demo(&j1);
    let rid = run_id(&j1);
    assert_eq!(w.fleet_locks().len(), 3);
    let inv = w.inventory();

    // Not deliberate (no --yes-i-checked, no terminal): nothing removed.
    let r = w.run(&["unlock", "-i", &inv]).expect(2);
    assert!(r.stdout.contains(&rid), "shows who holds it: {}", r.all());
    assert_eq!(w.fleet_locks().len(), 3);
    // Another run's id: nothing of this one removed.
    w.run(&[
        "unlock",
        "-i",
        &inv,
        "--run",
        "someone-else",
        "--yes-i-checked",
    ])
    .expect(0);
    assert_eq!(w.fleet_locks().len(), 3);

    let log = w.path("unlock.jsonl");
    let r = w
        .run(&[
            "unlock",
            "-i",
            &inv,
            "--run",
            &rid,
            "--yes-i-checked",
            "--journal",
            &s(&log),
        ])
        .expect(0);
    assert!(r.stdout.contains("broke the lock of run"), "{}", r.all());
    assert!(w.fleet_locks().is_empty());
    verify(&w, &log);
    let rec: Value = serde_json::from_str(fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(rec["kind"], "fleet_unlocked");
    assert_eq!(rec["data"]["locks"].as_array().unwrap().len(), 3);
    assert_eq!(rec["data"]["locks"][0]["holder"]["run_id"], rid.as_str());

    let j2 = w.path("second.jsonl");
    w.run(&[
        "run",
        RUNBOOK,
        "-i",
        &inv,
        "--headless",
        "--answers",
        ANSWERS,
        "--journal",
        &s(&j2),
    ])
    .expect(0);
    assert_eq!(w.providers(), vec!["jws"; 3]);
    assert!(w.fleet_locks().is_empty());
}

/// (e) A run holds its lock while paused and gives it back when it completes: nothing is left
/// on the nodes nor beside the journal.
#[test]
fn a_completed_run_leaves_no_lock_behind() {
    let w = World::new();
    let j = w.path("j.jsonl");
    w.paused_demo(&j);
    assert_eq!(w.fleet_locks().len(), 3, "a paused run keeps its lock");
    w.run(&["resume", &s(&j), "--headless", "--answers", ANSWERS])
        .expect(0);
    assert_eq!(w.providers(), vec!["jws"; 3]);
    assert!(w.fleet_locks().is_empty(), "{:?}", w.fleet_locks());
    let leftovers: Vec<_> = fs::read_dir(w.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
