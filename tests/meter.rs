//! The client-impact meter against the demo world, checked by an independent client loop: the
//! test's own reqwest loop (not the meter's code) runs through the same HAProxy frontend at the
//! same rate while the nodes are flipped from Fernet to JWS, and the two must count the same
//! failures (within 10 %); the meter must keep to its rate.

mod support;

use cutover::meter::{self, Frontend, MeterConfig};
use cutover::world::{WorldInfo, WorldNode};
use std::time::{Duration, Instant};
use support::bin::{cutover, text};
use support::world::{install_jws_keypair, nodes_listen, serve};

const RATE: f64 = 10.0;
const OLD_TOKENS: usize = 3;

/// A two-node world behind one HAProxy, served by its own `cutover world serve`.
fn world(tmp: &std::path::Path) -> (support::world::Served, WorldInfo) {
    let dir = tmp.join("world");
    let out = cutover(&[
        "world",
        "create",
        dir.to_str().unwrap(),
        "--nodes",
        "2",
        "--lbs",
        "1",
    ]);
    assert!(out.status.success(), "world create: {}", text(&out));
    let info = cutover::world::load(&dir).unwrap();
    let served = serve(&dir, || nodes_listen(&info));
    (served, info)
}

/// Give every node its own JWS keypair and every node every public key (as a key distribution
/// step does), so that any node validates any node's JWS tokens once it runs jws.
fn distribute_jws_keys(info: &WorldInfo) {
    let all: Vec<&WorldNode> = info.nodes.iter().collect();
    for node in &info.nodes {
        install_jws_keypair(node, &all);
    }
}

/// Flip a node's provider in its keystone.conf and restart it with its own restart script.
async fn flip(node: &WorldNode, provider: &str) {
    let conf = std::fs::read_to_string(&node.keystone_conf).unwrap();
    assert!(conf.contains("\nprovider = fernet\n"));
    std::fs::write(
        &node.keystone_conf,
        conf.replace(
            "\nprovider = fernet\n",
            &format!("\nprovider = {provider}\n"),
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new("sh")
        .arg(&node.restart)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "restart of {}: {}",
        node.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let running = std::fs::read_to_string(node.run_dir.join("provider")).unwrap();
    assert_eq!(running.trim(), provider);
}

/// What the independent loop counted.
#[derive(Debug, Default)]
struct Own {
    requests: u64,
    failures: u64,
    old_failures: u64,
}

/// The test's own client: the same pattern as a client that re-authenticates (issue, validate
/// the new token, validate one of the tokens issued first), over its own keep-alive
/// connection, through the frontend, until `stop` is set.
async fn own_loop(url: String, password: String, stop: tokio::sync::watch::Receiver<bool>) -> Own {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(meter::DEFAULT_TIMEOUT)
        .build()
        .unwrap();
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}
    }});
    let issue = || async {
        match http
            .post(format!("{url}/v3/auth/tokens"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().as_u16() == 201 => {
                let t = r
                    .headers()
                    .get("x-subject-token")
                    .map(|v| v.to_str().unwrap().to_string());
                let _ = r.bytes().await;
                t
            }
            Ok(r) => {
                let _ = r.bytes().await;
                None
            }
            Err(_) => None,
        }
    };
    let validate = |t: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            match http
                .get(format!("{url}/v3/auth/tokens"))
                .header("X-Auth-Token", &t)
                .header("X-Subject-Token", &t)
                .send()
                .await
            {
                Ok(r) => {
                    let ok = r.status().as_u16() == 200;
                    let _ = r.bytes().await;
                    ok
                }
                Err(_) => false,
            }
        }
    };
    let mut own = Own::default();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut old = Vec::new();
    let mut step = 0usize;
    let mut fresh: Option<String> = None;
    while !*stop.borrow() {
        ticks.tick().await;
        own.requests += 1;
        if own.requests as usize <= OLD_TOKENS {
            match issue().await {
                Some(t) => old.push(t),
                None => own.failures += 1,
            }
            continue;
        }
        match step % 3 {
            0 => {
                fresh = issue().await;
                if fresh.is_none() {
                    own.failures += 1;
                }
                step += 1;
            }
            1 => {
                match fresh.clone() {
                    Some(t) => {
                        if !validate(t).await {
                            own.failures += 1;
                        }
                    }
                    None => own.requests -= 1,
                }
                step += 1;
                if fresh.is_none() {
                    continue;
                }
            }
            _ => {
                let t = old[(step / 3) % old.len()].clone();
                if !validate(t).await {
                    own.failures += 1;
                    own.old_failures += 1;
                }
                step += 1;
            }
        }
    }
    own
}

#[test]
fn the_meter_agrees_with_an_independent_client_and_keeps_to_its_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let (_served, info) = world(tmp.path());
    let inv = info.inventory().unwrap();
    let lb = &inv.load_balancers[0];
    // The world's inventory names the frontend.
    let frontend_url = lb
        .frontend_url
        .clone()
        .expect("the world names its frontend");
    assert_eq!(frontend_url, info.lbs[0].frontend_url);
    let creds = cutover::inventory::credentials::resolve(
        Some(&info.cloud),
        Some(&info.clouds_path),
        &|_| None,
    )
    .unwrap();
    let password = creds.password.clone();
    distribute_jws_keys(&info);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config = MeterConfig::new(
            vec![Frontend {
                name: lb.name.clone(),
                url: format!("{frontend_url}/v3"),
            }],
            creds,
        );
        config.rate = RATE;
        config.old_tokens = OLD_TOKENS;
        config.phase = "before".into();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let handle = meter::start(config).unwrap();
        let own = tokio::spawn(own_loop(frontend_url.clone(), password, stop_rx));

        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = handle.snapshot();
        assert_eq!(before.old_tokens[&lb.name], OLD_TOKENS);
        assert_eq!(before.total.failures(), 0, "{before:?}");
        assert!(before.total.validate_new.validated > 0 && before.total.validate_old.validated > 0);

        // node2 then node1 flips to jws, each restarted as cutover would (the frontend sends
        // a restarting node's requests to the other).
        handle.set_phase("flip");
        flip(&info.nodes[1], "jws").await;
        flip(&info.nodes[0], "jws").await;
        handle.set_phase("after");
        tokio::time::sleep(Duration::from_secs(15)).await;

        stop_tx.send(true).unwrap();
        let snap = handle.stop();
        let elapsed = started.elapsed().as_secs_f64();
        let own = own.await.unwrap();

        // What the meter counted, per phase: old tokens die with the flip, fresh tokens live.
        let after = &snap.phases["after"].total;
        assert!(after.validate_old.refused > 0, "{snap:?}");
        assert_eq!(after.validate_old.validated, 0, "{snap:?}");
        assert_eq!(after.issue.failures(), 0, "{snap:?}");
        assert!(after.validate_new.validated > 0, "{snap:?}");
        assert_eq!(snap.frontends[&lb.name], snap.total);
        assert_eq!(snap.phase, "after");
        let series_requests: u64 = snap.series.iter().map(|s| s.requests).sum();
        assert_eq!(series_requests, snap.total.requests());

        // The two agree on failures within 10 %.
        let (m, o) = (snap.total.failures(), own.failures);
        eprintln!(
            "meter: {} requests, {m} failures ({} old); own loop: {} requests, {o} failures ({} old)",
            snap.total.requests(),
            snap.total.validate_old.failures(),
            own.requests,
            own.old_failures
        );
        assert!(m >= 20, "a flip that fails nothing proves nothing: {m}");
        assert!(
            m.abs_diff(o) as f64 <= 0.1 * m.max(o) as f64,
            "meter {m} vs own loop {o} failures"
        );

        // Never more than the rate (one request per tick, the first at once), and not far
        // below it on loopback.
        let allowed = (RATE * elapsed).floor() as u64 + 1;
        let requests = snap.total.requests();
        assert!(requests <= allowed, "{requests} requests in {elapsed:.1}s at {RATE}/s");
        assert!(
            requests as f64 >= 0.7 * RATE * elapsed,
            "{requests} requests in {elapsed:.1}s at {RATE}/s"
        );
        // Stopped means stopped: the nodes' own logs see no more token requests.
        let logged = || {
            info.nodes
                .iter()
                .map(|n| {
                    std::fs::read_to_string(&n.log_file)
                        .unwrap()
                        .matches("/v3/auth/tokens")
                        .count()
                })
                .sum::<usize>()
        };
        let at_stop = logged();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(logged(), at_stop, "requests after the meter stopped");
    });
}

/// A two-node world, node2 already on jws (a mixed pool from the start), served in-process.
async fn mixed_world(
    tmp: &std::path::Path,
    token_cache: Option<u64>,
) -> (cutover::world::WorldHandle, WorldInfo) {
    let info = cutover::world::create_with(
        &tmp.join("w"),
        &cutover::world::WorldSpec { nodes: 2, lbs: 1 },
        &cutover::world::WorldOptions { token_cache },
    )
    .unwrap();
    distribute_jws_keys(&info);
    let conf = std::fs::read_to_string(&info.nodes[1].keystone_conf).unwrap();
    std::fs::write(
        &info.nodes[1].keystone_conf,
        conf.replace("\nprovider = fernet\n", "\nprovider = jws\n"),
    )
    .unwrap();
    let handle = cutover::world::start(&info).await.unwrap();
    (handle, info)
}

/// Run a meter alone through the world's frontend for `secs`.
async fn meter_alone(info: &WorldInfo, secs: u64) -> cutover::meter::MeterSnapshot {
    let inv = info.inventory().unwrap();
    let creds = cutover::inventory::credentials::resolve(
        Some(&info.cloud),
        Some(&info.clouds_path),
        &|_| None,
    )
    .unwrap();
    let lb = &inv.load_balancers[0];
    let mut config = MeterConfig::new(
        vec![Frontend {
            name: lb.name.clone(),
            url: lb.frontend_url.clone().unwrap(),
        }],
        creds,
    );
    config.rate = RATE;
    config.phase = "mixed".into();
    let handle = meter::start(config).unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    handle.stop()
}

/// In a mixed pool behind round robin, a client that issues and then validates always lands
/// on the other provider: every validation of a fresh token fails (as measured on the lab, 17
/// of 17). With a shared token cache, every one passes: the token was cached on issue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_mixed_pool_fresh_tokens_fail_unless_a_shared_cache_holds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (handle, info) = mixed_world(tmp.path(), None).await;
    let s = meter_alone(&info, 3).await;
    let fresh = s.phases["mixed"].total.validate_new;
    assert_eq!(s.total.issue.failures(), 0, "{s:?}");
    assert!(fresh.total() >= 5, "{s:?}");
    assert_eq!(
        fresh.refused,
        fresh.total(),
        "every fresh validation refused: {s:?}"
    );
    handle.shutdown().await;

    let tmp = tempfile::tempdir().unwrap();
    let (handle, info) = mixed_world(tmp.path(), Some(600)).await;
    let s = meter_alone(&info, 3).await;
    let t = s.phases["mixed"].total;
    assert_eq!(t.issue.failures(), 0, "{s:?}");
    assert!(t.validate_new.validated >= 5, "{s:?}");
    assert_eq!(t.validate_new.failures(), 0, "cached on issue: {s:?}");
    assert_eq!(t.validate_old.failures(), 0, "cached on issue: {s:?}");
    handle.shutdown().await;
}
