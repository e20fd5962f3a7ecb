//! Client impact on the demo world, measured by cutover's meter during a real run and checked by
//! observers that take no word of cutover's:
//!
//! - the test's own client loop (its own reqwest code, not the meter's) through each HAProxy
//!   frontend, with the meter's pattern (issue, validate the new token, validate an old one) at
//!   the meter's rate, while `cutover run fernet-to-jws --headless` rolls a 3-node, 2-frontend
//!   world: the journal's counts agree with it within 10% (or a few requests), and every
//!   failure either saw falls inside a mixed window the journal reports (±1 s);
//! - the nodes' own request logs (the world's Keystone stand-ins write each request, with the
//!   frontend it came through and the client's user agent): no meter request reaches a node
//!   except through a frontend, never more than the configured rate per frontend, none after
//!   cutover exits;
//! - each instance's `show stat` over its admin socket: no request at any frontend after exit.

mod support;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use cutover::world::WorldInfo;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use support::bin::{BIN, cutover, text};
use support::world::{Served, nodes_listen, serve};

/// The meter's rate in this test, and the independent loop's.
const RATE: f64 = 10.0;
const OLD_TOKENS: usize = 3;

fn world(tmp: &Path) -> (WorldInfo, Served) {
    let dir = tmp.join("w");
    let out = cutover(&["world", "create", dir.to_str().unwrap(), "--lbs", "2"]);
    assert!(out.status.success(), "world create: {}", text(&out));
    let info = cutover::world::load(&dir).unwrap();
    assert_eq!((info.nodes.len(), info.lbs.len()), (3, 2));
    let served = serve(&dir, || nodes_listen(&info));
    (info, served)
}

/// One request of the independent loop.
#[derive(Debug, Clone)]
struct Req {
    sent: DateTime<Utc>,
    /// 0 issue, 1 validate the newest token, 2 validate an old token.
    kind: u8,
    /// HTTP status, 0 for no answer.
    status: u16,
}

impl Req {
    /// Keystone refused it (401, 404): what a mixed pool does. A timeout or an error on a
    /// loaded machine is no mixed pool's doing.
    fn refused(&self) -> bool {
        matches!(self.status, 401 | 404)
    }
}

/// The test's own client: issue, validate the new token, validate one of the tokens issued
/// first, through `url`, at [`RATE`], until `stop`.
async fn own_loop(
    url: String,
    password: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Req> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}
    }});
    let mut log = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut old: Vec<String> = Vec::new();
    let mut fresh: Option<String> = None;
    let mut n = 0usize;
    while !*stop.borrow() {
        ticks.tick().await;
        let sent = Utc::now();
        let kind = if old.len() < OLD_TOKENS && n < OLD_TOKENS {
            0
        } else {
            match n % 3 {
                0 => 0,
                1 if fresh.is_some() => 1,
                _ => 2,
            }
        };
        n += 1;
        let (status, token) = if kind == 0 {
            match http
                .post(format!("{url}/v3/auth/tokens"))
                .json(&body)
                .send()
                .await
            {
                Ok(r) => {
                    let t = r
                        .headers()
                        .get("x-subject-token")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let s = r.status().as_u16();
                    (if r.bytes().await.is_ok() { s } else { 0 }, t)
                }
                Err(_) => (0, None),
            }
        } else {
            let t = if kind == 1 {
                fresh.clone().unwrap()
            } else {
                old[n % old.len()].clone()
            };
            match http
                .get(format!("{url}/v3/auth/tokens"))
                .header("X-Auth-Token", &t)
                .header("X-Subject-Token", &t)
                .send()
                .await
            {
                Ok(r) => {
                    let s = r.status().as_u16();
                    (if r.bytes().await.is_ok() { s } else { 0 }, None)
                }
                Err(_) => (0, None),
            }
        };
        if kind == 0 && status == 201 {
            if n <= OLD_TOKENS {
                old.push(token.clone().unwrap());
            } else {
                fresh = token;
            }
        }
        log.push(Req { sent, kind, status });
    }
    log
}

/// The sum of every server's session total over every instance (a request through a frontend
/// is a session on the server it went to), from `show stat` over the admin sockets.
fn server_sessions(info: &WorldInfo) -> u64 {
    let mut total = 0;
    for lb in &info.lbs {
        let mut s = UnixStream::connect(&lb.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"show stat\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let (sv, stot) = (col("svname"), col("stot"));
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() > stot && f[sv] != "FRONTEND" && f[sv] != "BACKEND" {
                total += f[stot].parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// A request a node logged: when, through which frontend (none: sent to the node directly),
/// and by whom.
#[derive(Debug)]
struct Logged {
    at: DateTime<Utc>,
    /// Answered 401 or 404.
    refused: bool,
    via: Option<String>,
    agent: String,
}

fn node_requests(info: &WorldInfo) -> Vec<Logged> {
    let mut out = Vec::new();
    for n in &info.nodes {
        let log = std::fs::read_to_string(&n.log_file).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("request_processing")) {
            let Some(stamp) = line.get(..23) else {
                continue;
            };
            let Ok(naive) = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.3f") else {
                continue;
            };
            let at = Local
                .from_local_datetime(&naive)
                .single()
                .unwrap()
                .with_timezone(&Utc);
            let via = line
                .split(" via: ")
                .nth(1)
                .map(|v| v.split_whitespace().next().unwrap_or_default().to_string());
            let agent = line
                .split(" agent: \"")
                .nth(1)
                .map(|a| a.trim_end_matches('"').to_string())
                .unwrap_or_default();
            let refused = line.contains("status: 401") || line.contains("status: 404");
            out.push(Logged {
                at,
                refused,
                via,
                agent,
            });
        }
    }
    out
}

fn close(a: u64, b: u64) -> bool {
    let (hi, lo) = (a.max(b), a.min(b));
    hi - lo <= (hi / 10).max(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_meter_agrees_with_an_independent_loop_stays_in_the_mixed_windows_and_stops_with_the_run()
 {
    let tmp = tempfile::tempdir().unwrap();
    let (info, _served) = world(tmp.path());
    // node2's restart takes 3 s: the mixed window (node1 on jws beside node3 on fernet) lasts
    // long enough for both clients to meet it whatever their interleaving.
    let dir = tmp.path().join("w");
    let out = cutover(&[
        "world",
        "fault",
        dir.to_str().unwrap(),
        "slow-restart",
        "node2",
        "3",
    ]);
    assert!(out.status.success(), "world fault: {}", text(&out));
    let creds = cutover::inventory::credentials::resolve(
        Some(&info.cloud),
        Some(&info.clouds_path),
        &|_| None,
    )
    .unwrap();
    // The independent loops, one per frontend, from before the run to after it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loops: Vec<_> = info
        .lbs
        .iter()
        .map(|lb| {
            tokio::spawn(own_loop(
                lb.frontend_url.clone(),
                creds.password.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let journal = tmp.path().join("run.jsonl");
    let answers = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new(BIN)
            .args(["run", "fernet-to-jws", "--headless", "-i"])
            .arg(&info.inventory_path)
            .arg("--journal")
            .arg(&journal)
            .arg("--answers")
            .arg(&answers)
            .args(["--meter-rate", &RATE.to_string()])
            .current_dir(tmp.path())
            .env("NO_COLOR", "1")
            .output(),
    )
    .await
    .expect("the run finished in time")
    .unwrap();
    let exited = Utc::now();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("client-impact meter on: 2 frontends"),
        "{said}"
    );

    // The meter stopped with the run: no request at any frontend once the own loops stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    let mut own: Vec<Vec<Req>> = Vec::new();
    for l in loops {
        own.push(l.await.unwrap());
    }
    let settled = server_sessions(&info);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server_sessions(&info),
        settled,
        "requests reached a frontend after cutover exited"
    );

    // The journal, folded as replay and report fold it.
    let read = cutover::journal::read(&journal).unwrap();
    let state = cutover::runtime::fold(&read.records).unwrap();
    let impact = &state.impact;
    assert!(impact.measured, "no client_impact in the journal");
    let last = impact.last.as_ref().unwrap();
    assert_eq!(last.reason, cutover::engine::impact::ImpactReason::Final);
    let windows = &impact.mixed_windows;
    assert!(!windows.is_empty(), "a rolling run has a mixed window");
    assert!(windows.iter().all(|w| w.end.is_some()), "{windows:?}");
    let in_window = |at: DateTime<Utc>| {
        windows.iter().any(|w| {
            at >= w.start - chrono::Duration::seconds(1)
                && at <= w.end.unwrap() + chrono::Duration::seconds(1)
        })
    };
    let meter_started = last.meter_started;
    let meter_ended = meter_started + chrono::Duration::milliseconds(last.elapsed_ms as i64);

    // The independent loop, over the meter's lifetime: its fresh failures fall in the windows,
    // and agree with the meter's counts.
    let during: Vec<&Req> = own
        .iter()
        .flatten()
        .filter(|r| r.sent >= meter_started && r.sent <= meter_ended)
        .collect();
    let fresh_failed: Vec<&&Req> = during
        .iter()
        .filter(|r| r.kind != 2 && r.refused())
        .collect();
    assert!(!fresh_failed.is_empty(), "the own loop saw no refusal");
    for r in &fresh_failed {
        assert!(
            in_window(r.sent),
            "the own loop's refusal at {} is outside the mixed windows {windows:?}",
            r.sent
        );
    }
    let t = &last.total;
    let meter_fresh_refused = t.validate_new.refused + t.validate_new.crossed + t.issue.refused;
    let own_fresh = fresh_failed.len() as u64;
    assert!(meter_fresh_refused > 0, "the meter saw no failure: {t:?}");
    // Both clients saw the window refuse fresh tokens. Their refusal counts are not compared:
    // they share each frontend's round robin, so whether a client's validation lands on the
    // other provider's server depends on how the two interleave (measured: 2 against 9 in one
    // run, equal in the next), on a window of 1-3 s. The exact check of the meter's refusals is
    // the nodes' own logs, below; the request and validation counts agree within 10%.
    assert!(
        own_fresh > 0,
        "the own loop saw no failure in the mixed window"
    );
    let own_validations = during.iter().filter(|r| r.kind == 1).count() as u64;
    assert!(
        close(t.validate_new.total(), own_validations),
        "validations of fresh tokens: meter {}, own loop {own_validations}",
        t.validate_new.total()
    );
    assert!(
        close(t.requests(), during.len() as u64),
        "requests: meter {}, own loop {}",
        t.requests(),
        during.len()
    );
    // The meter's refusals all came while clients met the mixed pool (under its `mixed`
    // label), but for a fresh token refused after the window closed (crossed); and its
    // failing seconds are in the windows.
    for (phase, c) in impact.phases() {
        if phase != "mixed" {
            assert_eq!(
                c.issue.refused + c.validate_new.refused,
                0,
                "refusals under {phase}: {c:?}"
            );
        }
    }
    if t.fresh_failures() == t.issue.refused + t.validate_new.refused {
        for p in &impact.series {
            if p.fresh_failures > 0 {
                assert!(
                    in_window(p.at) || in_window(p.at + chrono::Duration::seconds(1)),
                    "the meter's failures at {} are outside the mixed windows {windows:?}",
                    p.at
                );
            }
        }
    }
    let in_windows: u64 = windows.iter().map(|w| w.failures).sum();
    assert!(in_windows > 0, "{windows:?}");

    // The nodes' own logs: every meter request came through a frontend, at most the rate per
    // frontend, none after cutover exited.
    let logged = node_requests(&info);
    let meter_reqs: Vec<&Logged> = logged
        .iter()
        .filter(|l| l.agent.starts_with("cutover-meter/"))
        .collect();
    assert!(
        close(
            meter_reqs.len() as u64,
            t.requests() - t.issue.error - t.validate_new.error
        ),
        "the nodes logged {} meter requests, the meter counted {}",
        meter_reqs.len(),
        t.requests()
    );
    // What the nodes answered the meter agrees with what the meter counted (a request in flight
    // as the meter stopped may be in one and not the other).
    let node_refused = meter_reqs.iter().filter(|l| l.refused).count() as u64;
    let meter_refused =
        t.validate_new.refused + t.validate_new.crossed + t.validate_old.refused + t.issue.refused;
    assert!(
        node_refused.abs_diff(meter_refused) <= 2,
        "the nodes refused {node_refused} meter requests, the meter counted {meter_refused}"
    );
    for l in &meter_reqs {
        assert!(
            l.via.is_some(),
            "a meter request reached a node directly: {l:?}"
        );
        assert!(
            l.at <= exited + chrono::Duration::milliseconds(200),
            "a meter request at {} after cutover exited at {exited}",
            l.at
        );
    }
    let mut per_second: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for l in &meter_reqs {
        *per_second
            .entry((l.via.clone().unwrap(), l.at.timestamp()))
            .or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    assert!(
        busiest as f64 <= RATE + 2.0,
        "a frontend saw {busiest} meter requests in one second (rate {RATE}): {per_second:?}"
    );
    for lb in &info.lbs {
        let n = meter_reqs
            .iter()
            .filter(|l| l.via.as_deref() == Some(lb.name.as_str()))
            .count() as f64;
        let secs = last.elapsed_ms as f64 / 1000.0;
        assert!(
            n <= RATE * secs + 2.0,
            "{}: {n} meter requests in {secs} s at {RATE}/s",
            lb.name
        );
    }

    // The journal says it, and so do show and the report.
    let show = cutover(&["journal", "show", journal.to_str().unwrap()]);
    assert!(text(&show).contains("client impact ("), "{}", text(&show));
}
