//! Bad input changes nothing: answers, runbooks and parameters are checked before any world,
//! journal or lock file is created; an answers id that names no hard stop is refused; runbook
//! string fields take only strings; demo worlds started together get their own directories;
//! nothing is left behind at exit (journal lock notes; keystone-manage's error file is checked
//! through the real driver in tests/keystone_manage.rs).
//!
//! The real binary, each command in its own temp directory, as in tests/cli.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;
use support::bin::{BIN, Finished, Spawned, spawn_captured};

const DEADLINE: Duration = Duration::from_secs(90);

type Run = Finished;

fn spawn(cwd: &Path, args: &[&str], out: &Path) -> Spawned {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (o, e) = (out.join(format!("{n}.out")), out.join(format!("{n}.err")));
    spawn_captured(
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1"),
        &format!("cutover {}", args.join(" ")),
        &o,
        &e,
    )
}

fn wait(mut run: Spawned, what: String) -> Run {
    run.what = what;
    run.finish(DEADLINE)
}

/// `cutover ARGS` run in `cwd` (output kept outside it, so `cwd` holds only what cutover made).
fn cutover_in(cwd: &Path, args: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    wait(
        spawn(cwd, args, out.path()),
        format!("cutover {}", args.join(" ")),
    )
}

/// Every path under `dir` (relative), sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn crate_path(rel: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
}

/// Answers files that must be refused, each with what the error must say.
const BAD_ANSWERS: &[(&str, &str)] = &[
    ("mixed-pool: yes\n", "must be confirm, decline or mark-done"),
    ("- mixed-pool\n- confirm\n", "answers.yaml"),
    ("mixed-pol: confirm\n", "valid ids"),
    ("mixed-pool@node9: confirm\n", "no node `node9`"),
];

#[test]
fn demo_with_bad_answers_or_params_exits_2_and_creates_nothing() {
    for (text, says) in BAD_ANSWERS {
        let cwd = tempfile::tempdir().unwrap();
        fs::write(cwd.path().join("answers.yaml"), text).unwrap();
        let r = cutover_in(
            cwd.path(),
            &["demo", "--headless", "--answers", "answers.yaml"],
        )
        .expect(2);
        assert!(r.stderr.contains(says), "{text:?}: {}", r.stderr);
        assert_eq!(
            tree(cwd.path()),
            vec![PathBuf::from("answers.yaml")],
            "{text:?}: bad answers must create nothing"
        );
    }
    for args in [
        &["demo", "--headless", "--param", "key_strategy=both"][..],
        &["demo", "--headless", "--param", "nope"][..],
        &["demo", "--headless", "--nodes", "0"][..],
    ] {
        let cwd = tempfile::tempdir().unwrap();
        cutover_in(cwd.path(), args).expect(2);
        assert!(tree(cwd.path()).is_empty(), "{args:?} created something");
    }
}

#[test]
fn answers_ids_list_the_valid_ones() {
    let cwd = tempfile::tempdir().unwrap();
    fs::write(cwd.path().join("answers.yaml"), "mixed-pol: confirm\n").unwrap();
    let r = cutover_in(
        cwd.path(),
        &["demo", "--headless", "--answers", "answers.yaml"],
    )
    .expect(2);
    for id in [
        "mixed-pool",
        "pool-capacity",
        "pool-breach",
        "drift",
        "in-doubt",
        "unknown-host-key",
        "jws-payload-readable",
        "rollback-start",
    ] {
        assert!(r.stderr.contains(id), "{id} not listed: {}", r.stderr);
    }
    assert!(r.stderr.contains("`mixed-pol`"), "{}", r.stderr);
}

#[test]
fn run_and_resume_refuse_unknown_answer_ids_before_touching_the_journal() {
    let cwd = tempfile::tempdir().unwrap();
    let world = cwd.path().join("w");
    cutover_in(cwd.path(), &["world", "create", &s(&world), "--nodes", "2"]).expect(0);
    let inv = s(&world.join("inventory.yaml"));
    let j = cwd.path().join("j.jsonl");
    let typo = cwd.path().join("typo.yaml");
    fs::write(&typo, "mixed-pool: confirm\nretire-old-key: confirm\n").unwrap();
    let r = cutover_in(
        cwd.path(),
        &[
            "run",
            &crate_path("runbooks/fernet-to-jws.yaml"),
            "-i",
            &inv,
            "--headless",
            "--answers",
            &s(&typo),
            "--journal",
            &s(&j),
        ],
    )
    .expect(2);
    assert!(r.stderr.contains("retire-old-key"), "{}", r.stderr);
    assert!(!j.exists(), "a journal was created for refused answers");
    let by_node = cwd.path().join("node.yaml");
    fs::write(&by_node, "mixed-pool@node3: confirm\n").unwrap();
    cutover_in(
        cwd.path(),
        &[
            "run",
            &crate_path("runbooks/fernet-to-jws.yaml"),
            "-i",
            &inv,
            "--headless",
            "--answers",
            &s(&by_node),
            "--journal",
            &s(&j),
        ],
    )
    .expect(2);
    assert!(!j.exists());

    // A run paused at its first hard stop leaves no journal lock note when it exits.
    cutover_in(
        cwd.path(),
        &[
            "run",
            &crate_path("runbooks/fernet-to-jws.yaml"),
            "-i",
            &inv,
            "--headless",
            "--journal",
            &s(&j),
        ],
    )
    .expect(3);
    assert!(!cutover::journal::lock_path(&j).exists(), "lock note left");
    let before = fs::read(&j).unwrap();
    // A torn tail would be trimmed by a resume that opened the journal: it must stay as it is.
    let mut torn = before.clone();
    torn.extend_from_slice(b"{\"seq\":");
    fs::write(&j, &torn).unwrap();
    let r = cutover_in(
        cwd.path(),
        &["resume", &s(&j), "--headless", "--answers", &s(&typo)],
    )
    .expect(2);
    assert!(r.stderr.contains("retire-old-key"), "{}", r.stderr);
    assert_eq!(fs::read(&j).unwrap(), torn, "resume changed the journal");
    // The same ids of a shipped runbook and per node are accepted.
    let ok = cwd.path().join("ok.yaml");
    fs::write(
        &ok,
        "mixed-pool@node2: decline\nretire-old-keys: confirm\njws-payload-readable: decline\n",
    )
    .unwrap();
    let r = cutover_in(
        cwd.path(),
        &["resume", &s(&j), "--headless", "--answers", &s(&ok)],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[test]
fn runbook_strings_must_be_strings() {
    let flagship = fs::read_to_string(crate_path("runbooks/fernet-to-jws.yaml")).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("title: ", "title: 42 #"),
        ("target_provider: jws", "target_provider: true"),
        ("id: ", "id: 7 #"),
        ("default: per-node", "default: 3.5"),
        ("title: ", "title: ~ #"),
    ] {
        assert!(flagship.contains(from), "{from}");
        let text = flagship.replacen(from, to, 1);
        let path = cwd.path().join("rb.yaml");
        fs::write(&path, &text).unwrap();
        let r = cutover_in(cwd.path(), &["check", "rb.yaml"]).expect(2);
        let line = text[..text.find(to).unwrap()].matches('\n').count() + 1;
        assert!(
            r.stderr.contains(&format!("rb.yaml:{line}:")),
            "{to}: no line:column: {}",
            r.stderr
        );
        assert!(r.stderr.contains("a string"), "{to}: {}", r.stderr);
    }
    // Quoted, the same values are strings.
    fs::write(
        cwd.path().join("rb.yaml"),
        flagship.replacen("title: ", "title: \"42\" #", 1),
    )
    .unwrap();
    cutover_in(cwd.path(), &["check", "rb.yaml"]).expect(0);
}

#[test]
fn demos_started_together_get_their_own_worlds() {
    let cwd = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let args = ["demo", "--headless", "--nodes", "1"];
    let a = spawn(cwd.path(), &args, out.path());
    let b = spawn(cwd.path(), &args, out.path());
    let a = wait(a, "first demo".into());
    let b = wait(b, "second demo".into());
    assert_eq!(a.code, 3, "{}", a.stderr);
    assert_eq!(b.code, 3, "{}", b.stderr);
    let worlds: Vec<_> = fs::read_dir(cwd.path().join("cutover-demo"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(worlds.len(), 2, "{worlds:?}");
    // Each run's journal lock note went with its process.
    let locks: Vec<PathBuf> = tree(cwd.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.lock"))
        .collect();
    assert!(locks.is_empty(), "lock notes left at exit: {locks:?}");
}
