//! The shipped rolling-restart runbook on a demo world made by `cutover world create` (3 nodes,
//! 2 load balancers), headless, watched by an observer that takes no word of cutover's: every
//! 20 ms, each instance's `show stat` over its admin socket (plain text over a UNIX socket,
//! parsed here, as tests/fault_sweep.rs samples it), and each node's `run/restarts.log`, which
//! the world's Keystone stand-in writes itself the moment a restart begins.
//!
//! - A passing run: no node restarts while it is in the pool on any instance (the last sample
//!   before its restart began, at most 300 ms earlier, and every sample in its first 300 ms show
//!   it MAINT on every instance), never two nodes out at once, every node restarted once, in
//!   order, and every node UP on every instance at the end.
//! - A check that cannot pass (a `check_body` no body holds): the run halts at node1's check,
//!   node1 stays MAINT on every instance, no other node was touched, and the error says what
//!   came back, where, and what to do next.

use std::collections::BTreeMap;
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

const DEADLINE: Duration = Duration::from_secs(180);
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// At most this long before a restart began the observer must have seen its node out of every
/// pool (and for this long after).
const OUT_BEFORE_MS: u64 = 300;

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One look at every instance: (instance, node) → status; complete (every instance read,
/// every node on it) or None.
#[derive(Debug, Clone)]
struct Sample {
    at: u64,
    status: BTreeMap<(String, String), String>,
}

impl Sample {
    fn statuses(&self, node: &str) -> Vec<&str> {
        statuses_of(&self.status, node)
    }
}

fn sample(info: &WorldInfo) -> Option<Sample> {
    let status = pool_status(info)?;
    Some(Sample {
        at: epoch_ms(),
        status,
    })
}

/// A world made by `cutover world create DIR --lbs 2` (its default 3 nodes), served by its own
/// `cutover world serve`.
fn world(tmp: &Path) -> (WorldInfo, Served) {
    let dir = tmp.join("w");
    let out = cutover_in_crate(&["world", "create", dir.to_str().unwrap(), "--lbs", "2"]);
    assert!(out.status.success(), "world create: {}", text(&out));
    let info = cutover::world::load(&dir).unwrap();
    assert_eq!((info.nodes.len(), info.lbs.len()), (3, 2));
    let served = serve(&dir, || nodes_listen(&info));
    (info, served)
}

/// `cutover run rolling-restart` headless on the world, with `params`.
fn run(info: &WorldInfo, journal: &Path, params: &[&str]) -> Captured {
    let scratch = journal.parent().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "rolling-restart", "--headless", "-i"])
        .arg(&info.inventory_path)
        .arg("--journal")
        .arg(journal)
        .current_dir(scratch)
        .env("NO_COLOR", "1");
    for p in params {
        cmd.args(["--param", p]);
    }
    let run = run_captured(
        &mut cmd,
        "cutover run rolling-restart",
        &scratch.join("run.stdout"),
        &scratch.join("run.stderr"),
        DEADLINE,
        Duration::from_millis(50),
    );
    assert!(run.status.is_some(), "the run hung:\n{}", run.all());
    run
}

fn verify(journal: &Path) {
    let out = cutover_in_crate(&["journal", "verify", journal.to_str().unwrap()]);
    assert!(out.status.success(), "journal verify: {}", text(&out));
}

/// The http.check outcomes the journal recorded: (node, ok, summary).
fn check_outcomes(journal: &Path) -> Vec<(String, bool, String)> {
    let recs = records(journal);
    let checks: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r["kind"] == "intent" && r["data"]["action"] == "http.check")
        .collect();
    let mut out = Vec::new();
    for r in recs.iter().filter(|r| r["kind"] == "outcome") {
        let d = &r["data"];
        if checks
            .iter()
            .any(|c| c["data"]["id"] == d["id"] && c["data"]["op"] == d["op"])
        {
            out.push((
                d["node"].as_str().unwrap_or_default().to_string(),
                d["ok"].as_bool().unwrap(),
                d["summary"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

#[test]
fn node_by_node_never_restarted_in_the_pool_and_all_back_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (info, _served) = world(tmp.path());
    let journal = tmp.path().join("run.jsonl");
    let observer = Observer::start(&info, SAMPLE_EVERY, sample);
    // The check from each node itself (curl over its transport), with a body it must hold.
    let run = run(
        &info,
        &journal,
        &["check_from=node", "check_body=v3.14", "restart_timeout=30s"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let samples = observer.finish();
    assert_eq!(run.code(), Some(0), "{}", run.all());
    verify(&journal);
    assert!(samples.len() > 50, "only {} samples", samples.len());

    // Every node restarted once, node by node.
    let restarts = restart_times(&info);
    let firsts: Vec<u64> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| {
            let at = &restarts[*n];
            assert_eq!(at.len(), 1, "{n} restarts: {at:?}");
            at[0]
        })
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");

    // None while pooled: the observer's last look before each restart began (at most
    // OUT_BEFORE_MS earlier) shows the node MAINT on every instance, and so do its looks in the
    // first OUT_BEFORE_MS of the restart.
    for (node, at) in &restarts {
        let t = at[0];
        let last = samples
            .iter()
            .rfind(|s| s.at <= t)
            .unwrap_or_else(|| panic!("{node}: no sample before its restart at {t}"));
        assert!(
            t - last.at <= OUT_BEFORE_MS,
            "{node}: the last sample before its restart is {} ms old",
            t - last.at
        );
        let during: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at >= t && s.at <= t + OUT_BEFORE_MS)
            .collect();
        assert!(!during.is_empty(), "{node}: no sample while it restarted");
        for s in &during {
            assert_eq!(
                s.statuses(node),
                ["MAINT", "MAINT"],
                "{node} restarted at {t}; at {} it was not out of every pool",
                s.at
            );
        }
        // Before it: the last state each instance itself logged for the node before the
        // restart began is maint; and the sampler's last look agrees, unless that maint was
        // written after the look (drain, maint, the gate's read and the restart can all fall
        // inside one 20 ms sampling interval).
        let writes = admin_writes(&info);
        for (i, (lb, w)) in writes.iter().enumerate() {
            let last_write = w
                .iter()
                .rfind(|(at, n, _)| n == node && *at <= t)
                .unwrap_or_else(|| panic!("{node}: {lb} logged no state for it before {t}"));
            assert_eq!(
                last_write.2, "maint",
                "{node} restarted at {t}; {lb} last set it {} at {}",
                last_write.2, last_write.0
            );
            let statuses = last.statuses(node);
            let seen = statuses[i];
            assert!(
                seen == "MAINT" || last_write.0 >= last.at,
                "{node}: the sampler saw {seen} on {lb} at {}, after its maint at {}",
                last.at,
                last_write.0
            );
        }
    }

    // Never two nodes out of the pool at once.
    for s in &samples {
        let out: Vec<&str> = ["node1", "node2", "node3"]
            .into_iter()
            .filter(|n| s.statuses(n).contains(&"MAINT"))
            .collect();
        assert!(out.len() <= 1, "at {}: {out:?} out at once: {s:?}", s.at);
    }

    // All back: UP on every instance, as the observer reads it now.
    let end = sample(&info).expect("every instance answers show stat");
    for n in ["node1", "node2", "node3"] {
        assert_eq!(end.statuses(n), ["UP", "UP"], "{n} at the end: {end:?}");
    }

    // The checks ran: before any restart from every node, then after each restart.
    let checks = check_outcomes(&journal);
    assert_eq!(checks.len(), 6, "{checks:?}");
    for (node, ok, summary) in &checks {
        assert!(ok, "{node}: {summary}");
        assert!(
            summary.contains(&format!("{node}: GET http://127.0.0.1:"))
                && summary.contains(&format!("/v3 from {node}: 200")),
            "{summary}"
        );
    }
    assert!(
        checks[3..]
            .iter()
            .all(|(_, _, s)| s.ends_with(": 200, body contains \"v3.14\"")),
        "{checks:?}"
    );
}

#[test]
fn a_check_that_cannot_pass_halts_with_the_node_out_of_the_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let (info, _served) = world(tmp.path());
    let journal = tmp.path().join("run.jsonl");
    let node1_port = info.node("node1").unwrap().port;
    let run = run(&info, &journal, &["check_body=no-such-text-in-any-body"]);
    assert_eq!(run.code(), Some(4), "halted, exit 4:\n{}", run.all());
    verify(&journal);

    // The observer's view: node1 drained and restarted, still out of the pool everywhere; the
    // others untouched and serving.
    let end = sample(&info).expect("every instance answers show stat");
    assert_eq!(end.statuses("node1"), ["MAINT", "MAINT"], "{end:?}");
    for n in ["node2", "node3"] {
        assert_eq!(end.statuses(n), ["UP", "UP"], "{n}: {end:?}");
    }
    let restarts = restart_times(&info);
    assert_eq!(restarts["node1"].len(), 1, "{restarts:?}");
    assert!(
        restarts["node2"].is_empty() && restarts["node3"].is_empty(),
        "{restarts:?}"
    );

    // What happened, where, and what next: in the output and in the journal.
    let what = format!(
        "node1: GET http://127.0.0.1:{node1_port}/v3 from the bastion: answered 200, but the body does not contain \"no-such-text-in-any-body\"; body: «"
    );
    let out = format!("{}{}", run.stdout, run.stderr);
    assert!(out.contains(&what), "{what}\n{}", run.all());
    assert!(
        out.contains("node1 stays out of the pool if this step took it out")
            && out.contains("then resume to check again"),
        "{}",
        run.all()
    );
    let checks = check_outcomes(&journal);
    let failed: Vec<_> = checks.iter().filter(|(_, ok, _)| !ok).collect();
    assert_eq!(failed.len(), 1, "{checks:?}");
    assert_eq!(failed[0].0, "node1");
    assert!(failed[0].2.starts_with(&what), "{}", failed[0].2);
    // The check before any restart passed on every node (it does not look at the body).
    assert_eq!(
        checks.iter().filter(|(_, ok, _)| *ok).count(),
        3,
        "{checks:?}"
    );
}
