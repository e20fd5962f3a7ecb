//! The flagship with `strategy: halves` on a demo world made by `cutover world create` (5
//! nodes, 2 load balancers), headless, watched by an observer that takes no word of cutover's:
//! every ~20 ms each instance's `show stat` over its admin socket (tests/support/world.rs
//! show_stat), each node's keystone.conf `[token] provider` and the provider its Keystone
//! stand-in runs (`run/provider`), and each node's `run/restarts.log`.
//!
//! - A passing run: no instance ever pools nodes of two providers; no node is flipped or
//!   restarted while it is in the pool on any instance; every instance always has a server UP
//!   (both halves are never out at once); at the end every node runs jws and is UP everywhere;
//!   the swap's outcome carries the measured swap gap.
//! - The swap's capacity gate failing: half A's only node stops answering before the swap;
//!   the run stops at a `pool-capacity` hard stop before any swap, half B still serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutover::world::WorldInfo;

mod support;
use support::bin::{BIN, Captured, cutover as cutover_in_crate, run_captured, text};
use support::journal::records;
use support::world::{
    Observer, Served, admin_writes, nodes_listen, pool_status, restart_times, serve, statuses_of,
};

const DEADLINE: Duration = Duration::from_secs(240);
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
const ANSWERS: &str = "runbooks/demo-answers.yaml";

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `[token] provider` as keystone.conf says it (None: not set, Keystone's default fernet).
fn conf_provider(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut in_token = false;
    let mut found = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_token = l == "[token]";
        } else if in_token
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "provider"
        {
            found = Some(v.trim().to_string());
        }
    }
    found
}

/// One look: (instance, node) → status, node → (conf provider, running provider).
#[derive(Debug, Clone)]
struct Sample {
    at: u64,
    status: BTreeMap<(String, String), String>,
    conf: BTreeMap<String, String>,
    running: BTreeMap<String, String>,
}

impl Sample {
    fn statuses(&self, node: &str) -> Vec<&str> {
        statuses_of(&self.status, node)
    }
}

fn sample(info: &WorldInfo) -> Option<Sample> {
    let status = pool_status(info)?;
    let mut conf = BTreeMap::new();
    let mut running = BTreeMap::new();
    for n in &info.nodes {
        conf.insert(
            n.name.clone(),
            conf_provider(&n.keystone_conf).unwrap_or_else(|| "fernet".into()),
        );
        running.insert(n.name.clone(), support::world::provider(n));
    }
    Some(Sample {
        at: epoch_ms(),
        status,
        conf,
        running,
    })
}

/// A world made by `cutover world create DIR --nodes N --lbs 2`, served by its own
/// `cutover world serve`.
fn world(tmp: &Path, nodes: usize) -> (WorldInfo, Served) {
    let dir = tmp.join("w");
    let n = nodes.to_string();
    let out = cutover_in_crate(&[
        "world",
        "create",
        dir.to_str().unwrap(),
        "--nodes",
        &n,
        "--lbs",
        "2",
    ]);
    assert!(out.status.success(), "world create: {}", text(&out));
    let info = cutover::world::load(&dir).unwrap();
    assert_eq!((info.nodes.len(), info.lbs.len()), (nodes, 2));
    let served = serve(&dir, || nodes_listen(&info));
    (info, served)
}

/// `cutover ARGS` headless from the crate root, output to files beside the journal.
fn cutover(journal: &Path, what: &str, args: &[&str]) -> Captured {
    let scratch = journal.parent().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    let run = run_captured(
        &mut cmd,
        what,
        &scratch.join(format!("{what}.stdout")),
        &scratch.join(format!("{what}.stderr")),
        DEADLINE,
        Duration::from_millis(50),
    );
    assert!(run.status.is_some(), "{what} hung:\n{}", run.all());
    run
}

fn run_halves(info: &WorldInfo, journal: &Path, answers: &Path) -> Captured {
    cutover(
        journal,
        "run",
        &[
            "run",
            "fernet-to-jws",
            "--headless",
            "-i",
            info.inventory_path.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--answers",
            answers.to_str().unwrap(),
            "--param",
            "strategy=halves",
        ],
    )
}

fn verify(journal: &Path) {
    let out = cutover_in_crate(&["journal", "verify", journal.to_str().unwrap()]);
    assert!(out.status.success(), "journal verify: {}", text(&out));
}

/// The nodes taking traffic on `lb` in a sample (status UP, `UP 1/3` included).
fn serving<'s>(s: &'s Sample, lb: &str) -> Vec<&'s str> {
    s.status
        .iter()
        .filter(|((l, _), st)| l == lb && st.starts_with("UP"))
        .map(|((_, n), _)| n.as_str())
        .collect()
}

#[test]
fn halves_never_mix_the_pool_and_end_all_jws_and_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (info, _served) = world(tmp.path(), 5);
    let journal = tmp.path().join("run.jsonl");
    let names: Vec<String> = info.nodes.iter().map(|n| n.name.clone()).collect();
    let (a, b) = (&names[..2], &names[2..]);
    let observer = Observer::start(&info, SAMPLE_EVERY, sample);
    let run = run_halves(&info, &journal, Path::new(ANSWERS));
    std::thread::sleep(Duration::from_millis(200));
    let samples = observer.finish();
    assert_eq!(run.code(), Some(0), "{}", run.all());
    verify(&journal);
    assert!(samples.len() > 50, "only {} samples", samples.len());
    let lbs: Vec<String> = info.lbs.iter().map(|l| l.name.clone()).collect();

    for s in &samples {
        for lb in &lbs {
            let up = serving(s, lb);
            // Never a mixed pool: every server taking traffic runs one provider.
            let providers: BTreeSet<&str> = up.iter().map(|n| s.running[*n].as_str()).collect();
            assert!(
                providers.len() <= 1,
                "at {} {lb} pools {:?} running {providers:?}: {s:?}",
                s.at,
                up
            );
            // Both halves never out at once: something serves on every instance.
            assert!(!up.is_empty(), "at {} nothing serves on {lb}: {s:?}", s.at);
        }
    }

    // The state each instance itself logged last for `n` at or before `t` (its admin log,
    // written by the stand-in after each change): drain, maint and the gate's read can fall
    // inside one 20 ms sampling interval, so a sample can predate the maint the gate read.
    let writes = admin_writes(&info);
    let maint_by = |n: &str, t: u64| {
        writes.values().all(|w| {
            w.iter()
                .rfind(|(at, node, _)| node == n && *at <= t)
                .is_some_and(|(_, _, state)| state == "maint")
        })
    };
    let maint_between = |n: &str, from: u64, to: u64| {
        writes.values().all(|w| {
            w.iter()
                .any(|(at, node, state)| node == n && *at >= from && *at <= to && state == "maint")
        })
    };

    // No node flipped while pooled: in the sample its keystone.conf first reads jws it is
    // MAINT on every instance, and in the one before too (or its maint came after that one).
    for n in &names {
        let i = samples
            .iter()
            .position(|s| s.conf[n] == "jws")
            .unwrap_or_else(|| panic!("{n} never read jws"));
        assert!(i > 0, "{n} read jws from the first sample");
        assert_eq!(
            samples[i].statuses(n),
            ["MAINT", "MAINT"],
            "{n} flipped at about {}; it was not out of every pool: {:?}",
            samples[i].at,
            samples[i]
        );
        let before = &samples[i - 1];
        assert!(
            before.statuses(n) == ["MAINT", "MAINT"] || maint_between(n, before.at, samples[i].at),
            "{n} flipped at about {}; it was not out of every pool before: {before:?}",
            samples[i].at
        );
    }

    // No node restarted while pooled: the last sample before its restart (at most 300 ms
    // earlier) shows it MAINT everywhere. Every node restarted once; half A before half B.
    let restarts = restart_times(&info);
    for n in &names {
        let at = &restarts[n];
        assert_eq!(at.len(), 1, "{n} restarts: {at:?}");
        let last = samples
            .iter()
            .rfind(|s| s.at <= at[0])
            .unwrap_or_else(|| panic!("{n}: no sample before its restart"));
        assert!(at[0] - last.at <= 300, "{n}: last sample too old");
        assert!(
            maint_by(n, at[0]),
            "{n}: not maint everywhere when its restart began"
        );
        assert!(
            last.statuses(n) == ["MAINT", "MAINT"] || maint_between(n, last.at, at[0]),
            "{n}: {last:?}"
        );
    }
    let a_last = a.iter().map(|n| restarts[n][0]).max().unwrap();
    let b_first = b.iter().map(|n| restarts[n][0]).min().unwrap();
    assert!(a_last < b_first, "half A restarted after half B began");

    // The swap happened: a sample with only A serving on every instance.
    assert!(
        samples.iter().any(|s| lbs.iter().all(|lb| {
            let up = serving(s, lb);
            !up.is_empty() && up.iter().all(|n| a.iter().any(|x| x == n))
        })),
        "the observer never saw half A alone in the pool"
    );

    // The end: all jws, all UP everywhere.
    let end = sample(&info).expect("every instance answers show stat");
    for n in &names {
        assert_eq!(end.statuses(n), ["UP", "UP"], "{n}: {end:?}");
        assert_eq!(end.conf[n], "jws", "{n}");
        assert_eq!(end.running[n], "jws", "{n}");
    }

    // The swap's outcome: one op, the gap measured in ms and said.
    let recs = records(&journal);
    let swap = recs
        .iter()
        .find(|r| r["kind"] == "intent" && r["data"]["action"] == "lb.swap")
        .expect("an lb.swap intent");
    let outcome = recs
        .iter()
        .find(|r| r["kind"] == "outcome" && r["data"]["id"] == swap["data"]["id"])
        .expect("its outcome");
    assert_eq!(outcome["data"]["ok"], true, "{outcome}");
    assert!(
        outcome["data"]["observed"]["swap_gap_ms"].is_u64(),
        "{outcome}"
    );
    let summary = outcome["data"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("swap gap") && summary.contains(" ms"),
        "{summary}"
    );
    // No mixed-pool hard stop was ever raised: cutover saw no mixed pool either.
    assert!(
        !recs
            .iter()
            .any(|r| r["kind"] == "hard_stop_raised" && r["data"]["id"] == "mixed-pool"),
        "a mixed-pool hard stop in a halves run"
    );
    // The swap hard stop was raised and answered before it.
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "hard_stop_raised" && r["data"]["id"] == "halves-swap"),
        "no halves-swap hard stop"
    );
}

#[test]
fn the_swap_stops_when_half_a_cannot_carry_the_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let (info, _served) = world(tmp.path(), 3);
    let journal = tmp.path().join("run.jsonl");
    // First: up to the swap's hard stop (not answered here: the run pauses there).
    let answers = tmp.path().join("answers.yaml");
    std::fs::write(&answers, "jws-payload-readable: confirm\n").unwrap();
    let run = run_halves(&info, &journal, &answers);
    assert_eq!(run.code(), Some(3), "paused at the swap:\n{}", run.all());
    assert!(run.all().contains("halves-swap"), "{}", run.all());
    // Half A (node1) stops answering; then the swap is confirmed.
    let dir = tmp.path().join("w");
    let out = cutover_in_crate(&["world", "fault", dir.to_str().unwrap(), "stop", "node1"]);
    assert!(out.status.success(), "fault: {}", text(&out));
    // The resume sees node1 down (drift, confirmed), then the swap is confirmed.
    let answers = tmp.path().join("answers-resume.yaml");
    std::fs::write(
        &answers,
        "jws-payload-readable: confirm\nhalves-swap: confirm\ndrift: confirm\n",
    )
    .unwrap();
    let resumed = cutover(
        &journal,
        "resume",
        &[
            "resume",
            journal.to_str().unwrap(),
            "--headless",
            "--answers",
            answers.to_str().unwrap(),
        ],
    );
    assert_eq!(resumed.code(), Some(3), "{}", resumed.all());
    verify(&journal);
    let recs = records(&journal);
    let stop = recs
        .iter()
        .rfind(|r| r["kind"] == "hard_stop_raised")
        .expect("a hard stop");
    assert_eq!(stop["data"]["id"], "pool-capacity", "{stop}");
    let title = stop["data"]["title"].as_str().unwrap();
    assert!(
        title.contains("half B") && title.contains("no server"),
        "{title}"
    );
    assert!(
        !recs
            .iter()
            .any(|r| r["kind"] == "intent" && r["data"]["action"] == "lb.swap"),
        "the swap ran"
    );
    // The observer's view: half B still serves everywhere, half A still out.
    let end = sample(&info).expect("every instance answers show stat");
    assert_eq!(end.statuses("node1"), ["MAINT", "MAINT"], "{end:?}");
    for n in ["node2", "node3"] {
        assert_eq!(end.statuses(n), ["UP", "UP"], "{n}: {end:?}");
        assert_eq!(end.conf[n], "fernet", "{n}");
    }
}
