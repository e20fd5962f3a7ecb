//! The proof of the pool guard: a fault sweep with an independent observer.
//!
//! For journal positions K over the rolling step of a complete flagship run (demo world, 3
//! nodes, 2 load balancers), each run gets a fresh world served by this test process; cutover
//! runs headless in its own process; when its journal reaches K lines the test injects a fault
//! (`hap-reload` of every instance: MAINT lost, as a real HAProxy reload without a server-state
//! file; or `set-ready` of the node in turn: another operator). The test's own sampler reads,
//! every 20 ms, each instance's `show stat` over its admin socket (plain text over a UNIX socket,
//! parsed here) and each node's files (keystone.conf, `run/provider`, `run/restarts.log`). It
//! takes no word of cutover's, except the journal's record of a confirmed mixed-pool hard stop,
//! which is the operator's consent the invariant allows for.
//!
//! The invariants checked on the samples:
//! - no node whose keystone.conf or running provider is the new one takes traffic (UP on some
//!   instance) alongside a node still on the old one for longer than 1 s, unless a mixed-pool
//!   hard stop for that node was confirmed before;
//! - no provider flip or restart starts on a node that had been in a pool (not MAINT on some
//!   instance) for 300 ms before it: cutover's last read before the action would have seen it
//!   (the bug this guards against read 1.2-1.8 s before the flip);
//! - a node in MAINT when the fault hit and put back by it returns to MAINT within 1 s;
//! - every run completes (the breach hard stops answered), the fleet ends consistent, and the
//!   journal verifies.
//!
//! CI runs 30 positions spread over the rolling step for each fault; `FAULT_SWEEP=full` runs every
//! position (tests/fault-sweep.sh).

mod support;
use support::world::show_stat;

use cutover::world::{self, WorldInfo, WorldSpec};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under test, copied once (beside it, in the target directory): a sweep takes
/// minutes, and a rebuild meanwhile (another cargo command on the same target directory) must
/// not swap it under the runs. Copies of test processes that are gone are removed.
fn bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_cutover"));
        let dir = built.parent().unwrap().join("sweep-bin");
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.trim_start_matches("cutover-");
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let copy = dir.join(format!("cutover-{}", std::process::id()));
        std::fs::copy(built, &copy).unwrap();
        copy
    })
}
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
const MAX_MIXED_MS: u64 = 1000;
const STALE_READ_MS: u64 = 300;

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// The independent observer

/// One look at the world: per (lb, node) the `show stat` status; per node the provider in
/// keystone.conf and the one it runs.
#[derive(Debug, Clone)]
struct Sample {
    at: u64,
    status: BTreeMap<(String, String), String>,
    conf: BTreeMap<String, String>,
    running: BTreeMap<String, Option<String>>,
}

impl Sample {
    fn takes_traffic(&self, node: &str) -> bool {
        self.status
            .iter()
            .any(|((_, n), s)| n == node && s.starts_with("UP"))
    }
    fn out_of_maint(&self, node: &str) -> bool {
        self.status
            .iter()
            .any(|((_, n), s)| n == node && s != "MAINT")
    }
    fn changed(&self, node: &str, target: &str) -> bool {
        self.conf.get(node).map(String::as_str) == Some(target)
            || self.running.get(node).and_then(|r| r.as_deref()) == Some(target)
    }
}

fn conf_provider(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.trim_matches(['[', ']']).to_string();
        } else if section == "token"
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == "provider"
        {
            return v.trim().to_string();
        }
    }
    "fernet".into()
}

fn sample(info: &WorldInfo) -> Sample {
    let mut status = BTreeMap::new();
    for lb in &info.lbs {
        if let Some(rows) = show_stat(&lb.socket, &lb.backend) {
            for s in &lb.servers {
                if let Some(st) = rows.get(&s.name) {
                    status.insert((lb.name.clone(), s.node.clone()), st.clone());
                }
            }
        }
    }
    let mut conf = BTreeMap::new();
    let mut running = BTreeMap::new();
    for n in &info.nodes {
        conf.insert(n.name.clone(), conf_provider(&n.keystone_conf));
        running.insert(
            n.name.clone(),
            std::fs::read_to_string(n.run_dir.join("provider"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    Sample {
        at: epoch_ms(),
        status,
        conf,
        running,
    }
}

fn restarts(info: &WorldInfo) -> Vec<(String, u64)> {
    let mut v = Vec::new();
    for n in &info.nodes {
        let text = std::fs::read_to_string(n.run_dir.join("restarts.log")).unwrap_or_default();
        for line in text.lines() {
            if let Some(ms) = line.split_whitespace().next().and_then(|t| t.parse().ok()) {
                v.push((n.name.clone(), ms));
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// One run

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    HapReload,
    SetReady,
}

struct Report {
    k: usize,
    pooled_at_start_ms: u64,
    breaches_seen: usize,
    longest_breach_ms: u64,
    journal_breaches: usize,
}

fn journal_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn rfc3339_ms(v: &Value) -> u64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .map(|t| t.timestamp_millis() as u64)
        .unwrap_or(u64::MAX)
}

fn answers(dir: &Path) -> PathBuf {
    let p = dir.join("answers.yaml");
    std::fs::write(
        &p,
        "jws-payload-readable: confirm\nmixed-pool: confirm\npool-breach: confirm\n",
    )
    .unwrap();
    p
}

/// A fresh world served by this process, and the cutover command that runs the flagship on it.
fn fresh_world(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, WorldInfo, world::WorldHandle) {
    let tmp = tempfile::tempdir().unwrap();
    let info = world::create(&tmp.path().join("w"), &WorldSpec { nodes: 3, lbs: 2 }).unwrap();
    let handle = rt.block_on(world::start(&info)).unwrap();
    // The cutover process must use these stand-ins, not start its own.
    std::fs::write(info.dir.join("serve.pid"), std::process::id().to_string()).unwrap();
    (tmp, info, handle)
}

fn cutover_run(info: &WorldInfo, dir: &Path, journal: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(["run", "runbooks/fernet-to-jws.yaml", "-i"])
        .arg(&info.inventory_path)
        .args(["--headless", "--answers"])
        .arg(answers(dir))
        .arg("--journal")
        .arg(journal)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// The journal line range of the rolling step in a complete run: first drain to last ready.
fn rolling_range(rt: &tokio::runtime::Runtime) -> (usize, usize) {
    let (tmp, info, handle) = fresh_world(rt);
    let journal = tmp.path().join("ref.jsonl");
    let out = cutover_run(&info, tmp.path(), &journal).output().unwrap();
    assert!(
        out.status.success(),
        "the reference run failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    rt.block_on(handle.shutdown());
    let recs = journal_records(&journal);
    let first = recs
        .iter()
        .position(|r| r["kind"] == "intent" && r["data"]["action"] == "lb.drain")
        .unwrap();
    let last = recs
        .iter()
        .rposition(|r| r["kind"] == "outcome" && r["step"] == "rolling")
        .unwrap();
    // Positions are line counts: "the journal has reached K lines".
    (first + 1, last + 1)
}

fn run_one(rt: &tokio::runtime::Runtime, kind: Kind, k: usize) -> Report {
    let (tmp, info, handle) = fresh_world(rt);
    if std::env::var("FAULT_SWEEP_K").is_ok() {
        println!("K={k}: world and journal kept in {}", tmp.path().display());
    }
    let tmp = if std::env::var("FAULT_SWEEP_K").is_ok() {
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    let tmp_path = info.dir.parent().unwrap().to_path_buf();
    let journal = tmp_path.join("run.jsonl");
    let mut child = cutover_run(&info, &tmp_path, &journal).spawn().unwrap();

    // The sampler.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler = {
        let (stop, samples, info) = (stop.clone(), samples.clone(), info.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let s = sample(&info);
                samples.lock().unwrap().push(s);
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };

    // Inject when the journal reaches K lines.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut fault_at = None;
    while Instant::now() < deadline {
        let recs = journal_records(&journal);
        if recs.len() >= k {
            let fault = match kind {
                Kind::HapReload => world::fault::Fault::HapReload { lb: None },
                Kind::SetReady => {
                    let node = recs[..k]
                        .iter()
                        .rev()
                        .find(|r| r["step"] == "rolling" && r["node"].is_string())
                        .and_then(|r| r["node"].as_str())
                        .unwrap_or("node1")
                        .to_string();
                    world::fault::Fault::SetReady { node, lb: None }
                }
            };
            let at = epoch_ms();
            world::fault::inject(&info.dir, &fault).unwrap();
            fault_at = Some(at);
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let fault_at = fault_at.unwrap_or_else(|| panic!("K={k}: the journal never reached {k} lines"));

    let out = child.wait_with_output().unwrap();
    // Health checks settle after the last ready; keep sampling a moment.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{kind:?} at K={k}: cutover exited {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = Command::new(bin())
        .args(["journal", "verify"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{kind:?} at K={k}: journal verify failed"
    );

    let samples = samples.lock().unwrap().clone();
    let recs = journal_records(&journal);
    let ctx = format!("{kind:?} at K={k}");
    let pooled_at_start_ms = check_invariants(&ctx, &info, &samples, &recs);
    let (breaches_seen, longest_breach_ms) = breaches_after(&ctx, &info, &samples, fault_at);
    let last = samples.last().unwrap();
    for n in &info.nodes {
        assert_eq!(last.conf[&n.name], "jws", "{ctx}: {} keystone.conf", n.name);
        assert_eq!(
            last.running[&n.name].as_deref(),
            Some("jws"),
            "{ctx}: {} runs",
            n.name
        );
        assert!(
            last.takes_traffic(&n.name),
            "{ctx}: {} back in the pool",
            n.name
        );
    }
    rt.block_on(handle.shutdown());
    drop(tmp);
    Report {
        k,
        pooled_at_start_ms,
        breaches_seen,
        longest_breach_ms,
        journal_breaches: recs.iter().filter(|r| r["kind"] == "pool_breach").count(),
    }
}

/// The mixed-pool and stale-read invariants over one run's samples.
/// Returns the longest time a node had been in a pool when a flip or restart of it started.
fn check_invariants(ctx: &str, info: &WorldInfo, samples: &[Sample], recs: &[Value]) -> u64 {
    let consent: BTreeMap<String, u64> = recs
        .iter()
        .filter(|r| r["kind"] == "hard_stop_confirmed" && r["data"]["id"] == "mixed-pool")
        .filter_map(|r| Some((r["node"].as_str()?.to_string(), rfc3339_ms(&r["time"]))))
        .collect();
    let nodes: Vec<String> = info.nodes.iter().map(|n| n.name.clone()).collect();
    // 1. A changed node in a pool with an unchanged one, without consent: at most 1 s.
    let mut since: BTreeMap<&str, u64> = BTreeMap::new();
    for s in samples {
        let unchanged_pooled = nodes
            .iter()
            .any(|n| s.takes_traffic(n) && !s.changed(n, "jws"));
        for n in &nodes {
            let bad = unchanged_pooled
                && s.takes_traffic(n)
                && s.changed(n, "jws")
                && consent.get(n).is_none_or(|t| *t > s.at);
            if bad {
                let start = *since.entry(n).or_insert(s.at);
                assert!(
                    s.at - start <= MAX_MIXED_MS,
                    "{ctx}: {n} (changed) took traffic beside an old-provider node for {} ms without consent; sample {s:?}",
                    s.at - start
                );
            } else {
                since.remove(n.as_str());
            }
        }
    }
    // 2. No flip or restart starts on a node that had been in a pool for STALE_READ_MS before:
    //    cutover's pool read right before the action would have seen it. A restart's start is
    //    the node's own record; a flip's is its intent (the conf write itself lands a few ms
    //    after, later still on a loaded machine).
    let mut starts: Vec<(String, u64, &str)> = restarts(info)
        .into_iter()
        .map(|(n, t)| (n, t, "restart"))
        .collect();
    for r in recs {
        if r["kind"] == "intent" && r["data"]["action"] == "keystone.set_provider" {
            starts.push((
                r["node"].as_str().unwrap_or_default().to_string(),
                rfc3339_ms(&r["time"]),
                "flip",
            ));
        }
    }
    let mut worst = 0;
    for (n, t, what) in starts {
        // The stretch of samples right before t in which n was out of maint somewhere.
        let before: Vec<&Sample> = samples.iter().filter(|s| s.at < t).collect();
        let stretch = before
            .iter()
            .rev()
            .take_while(|s| s.out_of_maint(&n))
            .last()
            .map(|first| t - first.at)
            .unwrap_or(0);
        // (a node never drained, e.g. before the rolling step, has no stretch that ends)
        let drained_before = before.iter().any(|s| !s.out_of_maint(&n));
        if drained_before {
            worst = worst.max(stretch);
            assert!(
                stretch < STALE_READ_MS,
                "{ctx}: {what} of {n} at {t} while it had been in a pool for {stretch} ms: {:?}",
                before.last()
            );
        }
    }
    worst
}

/// Nodes in MAINT on an instance when the fault hit and put back by it: how long until MAINT
/// again (the guard's revert, as seen from outside). Returns (stretches, longest ms).
fn breaches_after(ctx: &str, info: &WorldInfo, samples: &[Sample], fault_at: u64) -> (usize, u64) {
    let Some(before) = samples.iter().rev().find(|s| s.at <= fault_at) else {
        return (0, 0);
    };
    let mut count = 0;
    let mut longest = 0;
    for lb in &info.lbs {
        for srv in &lb.servers {
            let key = (lb.name.clone(), srv.node.clone());
            if before.status.get(&key).map(String::as_str) != Some("MAINT") {
                continue;
            }
            let after: Vec<&Sample> = samples.iter().filter(|s| s.at > fault_at).collect();
            let Some(i) = after
                .iter()
                .position(|s| s.status.get(&key).is_some_and(|st| st != "MAINT"))
            else {
                continue;
            };
            // Back in maint (the revert), or re-added on purpose by cutover later: only a
            // stretch that ends in MAINT is a breach that was reverted.
            if let Some(j) = after[i..]
                .iter()
                .position(|s| s.status.get(&key).map(String::as_str) == Some("MAINT"))
            {
                let ms = after[i + j].at - after[i].at;
                assert!(
                    ms <= MAX_MIXED_MS,
                    "{ctx}: {} stayed out of maint on {} for {ms} ms after the fault",
                    srv.node,
                    lb.name
                );
                count += 1;
                longest = longest.max(ms);
            }
        }
    }
    (count, longest)
}

/// `n` positions spread evenly over [a, b] (every position when n covers it).
fn spread(a: usize, b: usize, n: usize) -> Vec<usize> {
    let len = b - a + 1;
    if n >= len {
        return (a..=b).collect();
    }
    (0..n).map(|i| a + i * (len - 1) / (n - 1)).collect()
}

fn sweep(kind: Kind) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (a, b) = rolling_range(&rt);
    let full = std::env::var("FAULT_SWEEP").is_ok_and(|v| v == "full");
    // FAULT_SWEEP_K=88,90 reruns given positions (and keeps their world and journal).
    let only: Option<Vec<usize>> = std::env::var("FAULT_SWEEP_K")
        .ok()
        .map(|v| v.split(',').filter_map(|k| k.trim().parse().ok()).collect());
    let positions = if let Some(only) = only {
        only
    } else if full {
        (a..=b).collect()
    } else {
        spread(a, b, 30)
    };
    // Runs mostly wait (health checks, restarts): a few at once, each on its own world.
    let jobs: usize = std::env::var("FAULT_SWEEP_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let queue = Mutex::new(positions.clone().into_iter());
    let reports = Mutex::new(Vec::<Report>::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let Some(k) = queue.lock().unwrap().next() else {
                        return;
                    };
                    let r = run_one(&rt, kind, k);
                    reports.lock().unwrap().push(r);
                }
            });
        }
    });
    let reports = reports.into_inner().unwrap();
    assert_eq!(
        reports.len(),
        positions.len(),
        "a position's run failed (see above)"
    );
    let seen: usize = reports.iter().map(|r| r.breaches_seen).sum();
    let journaled: usize = reports.iter().map(|r| r.journal_breaches).sum();
    let longest = reports.iter().max_by_key(|r| r.longest_breach_ms).unwrap();
    let stale = reports
        .iter()
        .map(|r| r.pooled_at_start_ms)
        .max()
        .unwrap_or(0);
    println!(
        "fault sweep {kind:?}: {} positions (journal lines {a}..={b}{}), breaches seen by the sampler {seen}, pool_breach events journaled {journaled}, longest breach before revert {} ms (K={}), longest a node had been pooled when its flip or restart started {stale} ms, {:.1} s",
        reports.len(),
        if full { ", every position" } else { ", spread" },
        longest.longest_breach_ms,
        longest.k,
        started.elapsed().as_secs_f64()
    );
    assert!(
        seen > 0 && journaled > 0,
        "the faults never put a drained node back: the sweep did not attack anything"
    );
}

#[test]
fn fault_sweep_hap_reload() {
    sweep(Kind::HapReload);
}

#[test]
fn fault_sweep_set_ready() {
    sweep(Kind::SetReady);
}

// ---------------------------------------------------------------------------------------------
// kill -9 and resume, with the guard running

/// The last resume's drift lines and how many actions it found in doubt.
fn last_resume(journal: &Path) -> (Vec<String>, usize) {
    let recs = journal_records(journal);
    let r = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "run_resumed")
        .expect("a run_resumed record");
    let drift = r["data"]["drift"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let in_doubt = r["data"]["in_doubt"].as_array().map_or(0, |a| a.len());
    (drift, in_doubt)
}

/// The process dies (kill -9) at 20 points spread over a complete run. Meanwhile one real
/// outside change happens: node3's Fernet repository is tampered with. The resume must raise
/// exactly that as drift and nothing else (no false drift from cutover's own half-done actions,
/// restarts in flight, health checks settling); a second resume without an answer raises it
/// again; with the tamper undone and the drift confirmed, a third resume completes, with a
/// consistent fleet and a journal that verifies.
#[test]
fn kill_9_and_resume_at_20_points_raises_only_real_drift() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    // The whole run, from the first outcome (facts known) to the last intent.
    let (tmp, info, handle) = fresh_world(&rt);
    let reference = tmp.path().join("ref.jsonl");
    let out = cutover_run(&info, tmp.path(), &reference).output().unwrap();
    assert!(out.status.success());
    rt.block_on(handle.shutdown());
    let recs = journal_records(&reference);
    let first = recs.iter().position(|r| r["kind"] == "outcome").unwrap() + 1;
    // (up to the last intent: what follows its outcome is written in one batch to the end)
    let last = recs.iter().rposition(|r| r["kind"] == "intent").unwrap() + 1;
    let mut in_doubt_seen = 0;
    for k in spread(first, last, 20) {
        let (tmp, info, handle) = fresh_world(&rt);
        let journal = tmp.path().join("run.jsonl");
        let mut child = cutover_run(&info, tmp.path(), &journal).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while journal_records(&journal).len() < k {
            assert!(
                Instant::now() < deadline,
                "K={k}: journal never reached {k}"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "K={k}: ended before the kill"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // The one outside change.
        let key = info.nodes[2].fernet_repo.join("0");
        let original = std::fs::read(&key).unwrap();
        std::fs::write(&key, b"tampered-while-nobody-watched=").unwrap();

        let resume = |answers: &str| {
            let a = tmp.path().join("resume-answers.yaml");
            std::fs::write(&a, answers).unwrap();
            Command::new(bin())
                .args(["resume"])
                .arg(&journal)
                .args(["--headless", "--answers"])
                .arg(&a)
                .output()
                .unwrap()
        };
        let base = "jws-payload-readable: confirm\nmixed-pool: confirm\npool-breach: confirm\nin-doubt: confirm\n";
        let out = resume(base);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(3),
            "K={k}: expected a pause at drift\n{text}"
        );
        let (drift, in_doubt) = last_resume(&journal);
        let drift: Vec<&str> = drift.iter().map(String::as_str).collect();
        assert_eq!(
            drift,
            vec!["node3: the Fernet repository changed"],
            "K={k}: drift must be exactly the outside change\n{text}"
        );
        in_doubt_seen += in_doubt;
        // (the client-impact meter's last summary may follow: it is written as the run stops)
        assert!(
            journal_records(&journal)
                .iter()
                .rfind(|r| r["kind"] != "client_impact")
                .is_some_and(|r| r["kind"] == "hard_stop_raised" && r["data"]["id"] == "drift"),
            "K={k}: the drift waits for a person"
        );
        // Resumed again without an answer for it, the drift is still raised: a second
        // resume must not take the changed fleet as the new normal.
        let out = resume(base);
        assert_eq!(
            out.status.code(),
            Some(3),
            "K={k}: the second resume skipped the drift"
        );
        let (again, _) = last_resume(&journal);
        assert!(
            again
                .iter()
                .any(|d| d == "node3: the Fernet repository changed"),
            "K={k}: {again:?}"
        );
        // Undo the tamper; confirm the drift; the run completes.
        std::fs::write(&key, &original).unwrap();
        let out = resume(&format!("{base}drift: confirm\n"));
        assert!(
            out.status.success(),
            "K={k}: the second resume did not complete:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let verify = Command::new(bin())
            .args(["journal", "verify"])
            .arg(&journal)
            .output()
            .unwrap();
        assert!(verify.status.success(), "K={k}: journal verify");
        let s = sample(&info);
        for n in &info.nodes {
            assert_eq!(s.conf[&n.name], "jws", "K={k}: {}", n.name);
            assert_eq!(
                s.running[&n.name].as_deref(),
                Some("jws"),
                "K={k}: {}",
                n.name
            );
        }
        rt.block_on(handle.shutdown());
    }
    println!(
        "kill -9 at 20 points (journal lines {first}..={last}): drift was exactly the one outside change every time; {in_doubt_seen} actions were in doubt at the kills; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
