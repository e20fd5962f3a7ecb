//! Fault injection in the demo world: each fault behaves as the real service does.
//!
//! Worlds are served in-process with the `cutover::world` API, faults injected with
//! `cutover::world::fault::inject` (or the built binary), and effects observed the way an
//! independent observer would: raw admin-socket text, TCP connects, HTTP, and the files the
//! stand-ins write. Every wait polls against a deadline; nothing sleeps blindly.

use cutover::world::fault::{self, Fault, FaultError};
use cutover::world::{self, WorldInfo, WorldNode, WorldSpec};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn new_world(spec: &WorldSpec) -> (tempfile::TempDir, WorldInfo) {
    let tmp = tempfile::tempdir().unwrap();
    let info = world::create(&tmp.path().join("w"), spec).unwrap();
    (tmp, info)
}

/// Inject off the async workers: `inject` blocks while it waits for the effect.
async fn inject(info: &WorldInfo, fault: Fault) -> anyhow::Result<String> {
    let dir = info.dir.clone();
    tokio::task::spawn_blocking(move || fault::inject(&dir, &fault))
        .await
        .unwrap()
}

/// Poll `probe` until it returns true or `secs` pass.
async fn wait_for<F, Fut>(secs: u64, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn listens(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

async fn api_up(node: &WorldNode) -> bool {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    matches!(client.get(format!("{}/v3", node.keystone_url)).send().await,
        Ok(r) if r.status() == reqwest::StatusCode::OK)
}

/// One runtime-API exchange over the admin socket.
async fn cli(sock: &Path, cmd: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// `show stat` rows keyed by svname, each a column-name → value map.
async fn stat(sock: &Path) -> HashMap<String, HashMap<String, String>> {
    let csv = cli(sock, "show stat").await;
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: HashMap<String, String> = header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect();
            (row["svname"].clone(), row)
        })
        .collect()
}

async fn status(sock: &Path, server: &str) -> String {
    stat(sock).await[server]["status"].clone()
}

/// `srv_admin_state` per server in a server-state file (or `show servers state`) text.
fn admin_states(text: &str) -> HashMap<String, String> {
    text.lines()
        .skip(2)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[3].to_string(), f[6].to_string())
        })
        .collect()
}

/// Run the node's restart script as an operator (or the local transport) would.
async fn run_restart(node: &WorldNode) -> std::process::Output {
    tokio::process::Command::new("sh")
        .arg(&node.restart)
        .output()
        .await
        .unwrap()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn restart_lines(node: &WorldNode) -> Vec<u64> {
    read(&node.run_dir.join("restarts.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (ms, word) = l.split_once(' ').expect("`<ms> restart`");
            assert_eq!(word, "restart", "{l}");
            ms.parse().expect("epoch ms")
        })
        .collect()
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn node_fault(name: &str, node: &str) -> Fault {
    Fault::parse(name, &[node.to_string()]).unwrap()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hap_reload_loses_runtime_state_on_that_instance_only() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 3, lbs: 2 });
    let handle = world::start(&info).await.unwrap();
    let (lb1, lb2) = (&info.lbs[0], &info.lbs[1]);
    for lb in [lb1, lb2] {
        cli(&lb.socket, "set server keystone_api/ks2 state maint").await;
        assert_eq!(status(&lb.socket, "ks2").await, "MAINT");
    }
    // Some traffic, so that the counters have something to lose.
    for _ in 0..3 {
        let _ = tokio::net::TcpStream::connect(("127.0.0.1", lb1.frontend_port)).await;
    }
    wait_for(5, "frontend sessions counted", || async {
        stat(&lb1.socket).await["FRONTEND"]["stot"] == "3"
    })
    .await;
    // node3's Keystone dies: after the reload its server starts up-but-unproven, then falls.
    inject(&info, node_fault("stop", "node3")).await.unwrap();

    let line = inject(
        &info,
        Fault::HapReload {
            lb: Some("haproxy-1".into()),
        },
    )
    .await
    .unwrap();
    assert!(
        line.starts_with("haproxy-1: reloaded without a server-state file")
            && line.contains("ks2 maint -> ready"),
        "{line}"
    );
    let st = stat(&lb1.socket).await;
    for s in ["ks1", "ks2", "ks3"] {
        assert_eq!(st[s]["status"], "UP 1/3", "{s} right after the reload");
        assert_eq!(st[s]["check_status"], "INI");
        assert_eq!(st[s]["stot"], "0");
    }
    assert_eq!(
        st["FRONTEND"]["stot"], "0",
        "a new process counts from zero"
    );
    let state = admin_states(&read(&lb1.state_file).unwrap());
    assert!(
        state.values().all(|a| a == "0"),
        "state file rewritten: {state:?}"
    );
    assert_eq!(
        status(&lb2.socket, "ks2").await,
        "MAINT",
        "the instance that was not reloaded keeps its state"
    );

    // One passed check proves ks2; ks3 (Keystone stopped) goes DOWN at its first failed one.
    wait_for(4, "ks2 UP and ks3 DOWN on haproxy-1", || async {
        let st = stat(&lb1.socket).await;
        st["ks2"]["status"] == "UP" && st["ks3"]["status"] == "DOWN"
    })
    .await;
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_ready_as_another_operator_on_every_instance() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 2, lbs: 2 });
    let handle = world::start(&info).await.unwrap();
    for lb in &info.lbs {
        cli(&lb.socket, "set server keystone_api/ks1 state maint").await;
    }
    let line = inject(
        &info,
        Fault::SetReady {
            node: "node1".into(),
            lb: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        line,
        "haproxy-1: sent `set server keystone_api/ks1 state ready` (node1 back in the pool); \
         haproxy-2: sent `set server keystone_api/ks1 state ready` (node1 back in the pool)"
    );
    for lb in &info.lbs {
        assert_eq!(status(&lb.socket, "ks1").await, "UP 1/3");
        assert_eq!(
            admin_states(&cli(&lb.socket, "show servers state").await)["ks1"],
            "0"
        );
    }
    for lb in &info.lbs {
        wait_for(4, "ks1 UP after a passed check", || async {
            status(&lb.socket, "ks1").await == "UP"
        })
        .await;
    }
    // A node the instance has no server for is bad input.
    let err = inject(
        &info,
        Fault::SetReady {
            node: "node9".into(),
            lb: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<FaultError>(),
            Some(FaultError::Invalid(_))
        ),
        "{err:#}"
    );
    assert!(
        err.to_string()
            .contains("no node `node9` (its nodes: node1, node2)")
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_down_refuses_everything_until_lb_up() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 2, lbs: 2 });
    let handle = world::start(&info).await.unwrap();
    let (lb1, lb2) = (&info.lbs[0], &info.lbs[1]);
    cli(&lb1.socket, "set server keystone_api/ks2 state drain").await;
    // A connection held through the frontend when the instance goes away.
    let mut held = tokio::net::TcpStream::connect(("127.0.0.1", lb1.frontend_port))
        .await
        .unwrap();

    let line = inject(
        &info,
        Fault::LbDown {
            lb: Some("haproxy-1".into()),
        },
    )
    .await
    .unwrap();
    assert!(line.starts_with("haproxy-1: down"), "{line}");
    assert!(info.dir.join("haproxy-1.down").exists());
    assert!(
        std::os::unix::net::UnixStream::connect(&lb1.socket).is_err(),
        "admin socket refuses"
    );
    assert!(!listens(lb1.frontend_port).await, "frontend refuses");
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(3), held.read(&mut buf))
        .await
        .expect("the held connection is closed, not left hanging");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(
        status(&lb2.socket, "ks1").await,
        "UP",
        "the other instance serves on"
    );
    // Faults that need the socket say it is down and how to bring it back.
    let err = inject(
        &info,
        Fault::HapReload {
            lb: Some("haproxy-1".into()),
        },
    )
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("haproxy-1 is down") && msg.contains("lb-up haproxy-1"),
        "{msg}"
    );

    let line = inject(&info, Fault::LbUp { lb: None }).await.unwrap();
    assert!(line.starts_with("haproxy-1: up again"), "{line}");
    assert!(line.contains("haproxy-2: was not down"), "{line}");
    assert_eq!(
        status(&lb1.socket, "ks2").await,
        "DRAIN",
        "an unreachable instance keeps its runtime state"
    );
    assert!(listens(lb1.frontend_port).await);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_restart_keeps_the_node_down_until_fix_restart() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 2, lbs: 1 });
    let handle = world::start(&info).await.unwrap();
    let node = &info.nodes[1];
    let line = inject(&info, node_fault("break-restart", "node2"))
        .await
        .unwrap();
    assert!(line.contains("restarts now fail"), "{line}");
    assert!(
        api_up(node).await,
        "a running Keystone runs on until restarted"
    );

    let out = run_restart(node).await;
    assert_eq!(out.status.code(), Some(1), "the restart script fails");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keystone on node2 failed to start: InjectedFault: break-restart"),
        "{stderr}"
    );
    let log = read(&node.log_file).unwrap();
    assert!(
        log.lines()
            .any(|l| l
                .contains("CRITICAL keystone [-] Unhandled error: InjectedFault: break-restart")),
        "{log}"
    );
    assert!(!listens(node.port).await, "the node stays down");
    assert!(!node.run_dir.join("provider").exists());
    wait_for(6, "ks2 DOWN", || async {
        status(&info.lbs[0].socket, "ks2").await == "DOWN"
    })
    .await;

    let line = inject(&info, node_fault("fix-restart", "node2"))
        .await
        .unwrap();
    assert!(line.contains("restarts work again"), "{line}");
    let out = run_restart(node).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        api_up(node).await,
        "the script returns once Keystone listens"
    );
    assert_eq!(
        read(&node.run_dir.join("provider")).as_deref(),
        Some("fernet\n")
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_restart_delays_listening() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 1, lbs: 0 });
    let handle = world::start(&info).await.unwrap();
    let node = &info.nodes[0];
    inject(
        &info,
        Fault::SlowRestart {
            node: "node1".into(),
            secs: 2,
        },
    )
    .await
    .unwrap();

    let script = tokio::spawn({
        let node = node.clone();
        async move { run_restart(&node).await }
    });
    // From the moment the restart began (its restarts.log line) to the first accepted connect.
    wait_for(5, "the restart to begin", || async {
        restart_lines(node).len() == 1
    })
    .await;
    let began = restart_lines(node)[0];
    wait_for(3, "the port to close", || async {
        !listens(node.port).await
    })
    .await;
    wait_for(6, "the port to listen again", || async {
        listens(node.port).await
    })
    .await;
    let took = epoch_ms() - began;
    assert!(
        (1900..3500).contains(&took),
        "listening again after {took} ms"
    );
    assert!(script.await.unwrap().status.success());

    // 0 clears it: back to the usual sub-second restart.
    inject(
        &info,
        Fault::SlowRestart {
            node: "node1".into(),
            secs: 0,
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert!(run_restart(node).await.status.success());
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_the_keystone_process() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 2, lbs: 1 });
    let handle = world::start(&info).await.unwrap();
    let node = &info.nodes[0];
    let sock = &info.lbs[0].socket;

    let line = inject(&info, node_fault("stop", "node1")).await.unwrap();
    assert!(line.starts_with("node1: Keystone stopped"), "{line}");
    assert!(!listens(node.port).await, "its port refuses connections");
    assert!(!node.run_dir.join("provider").exists());
    // HAProxy notices as it does for any dead server: after `fall` failed checks.
    wait_for(6, "ks1 DOWN", || async {
        status(sock, "ks1").await == "DOWN"
    })
    .await;

    let line = inject(&info, node_fault("start", "node1")).await.unwrap();
    assert_eq!(
        line,
        format!(
            "node1: Keystone started (provider fernet, listening on 127.0.0.1:{})",
            node.port
        )
    );
    assert!(api_up(node).await);
    assert_eq!(
        read(&node.run_dir.join("provider")).as_deref(),
        Some("fernet\n")
    );
    wait_for(5, "ks1 UP again", || async {
        status(sock, "ks1").await == "UP"
    })
    .await;
    assert!(
        restart_lines(node).is_empty(),
        "a stop and start are not restarts"
    );

    // A stopped node comes back with a restart too, as `systemctl restart` starts it.
    inject(&info, node_fault("stop", "node1")).await.unwrap();
    assert!(run_restart(node).await.status.success());
    assert!(api_up(node).await);
    handle.shutdown().await;
}

/// Install a fresh ES256 keypair on `node`, as cutover's native keygen would.
fn install_jws_keys(node: &WorldNode) {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let private = node.jws_private_repo.join("private.pem");
    std::fs::write(
        &private,
        sk.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        node.jws_public_repo.join(format!("{}.pem", node.name)),
        sk.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
}

fn set_provider(node: &WorldNode, provider: &str) {
    let conf = std::fs::read_to_string(&node.keystone_conf).unwrap();
    assert!(conf.contains("\nprovider = fernet\n") || conf.contains("\nprovider = jws\n"));
    let conf = conf
        .replace(
            "\nprovider = fernet\n",
            &format!("\nprovider = {provider}\n"),
        )
        .replace("\nprovider = jws\n", &format!("\nprovider = {provider}\n"));
    std::fs::write(&node.keystone_conf, conf).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_file_and_restarts_log_follow_restarts() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 2, lbs: 0 });
    let handle = world::start(&info).await.unwrap();
    for n in &info.nodes {
        assert_eq!(
            read(&n.run_dir.join("provider")).as_deref(),
            Some("fernet\n")
        );
        assert!(restart_lines(n).is_empty());
    }
    let node = &info.nodes[0];
    let provider = node.run_dir.join("provider");
    install_jws_keys(node);
    set_provider(node, "jws");

    // Sample the provider file while the restart runs, as an independent observer would.
    let before = epoch_ms();
    let script = tokio::spawn({
        let node = node.clone();
        async move { run_restart(&node).await }
    });
    let mut seen = Vec::new();
    while !script.is_finished() {
        let now = read(&provider);
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(script.await.unwrap().status.success());
    let after = epoch_ms();
    seen.push(read(&provider));
    seen.dedup();
    assert_eq!(
        seen,
        vec![Some("fernet\n".into()), None, Some("jws\n".into())],
        "running fernet, down (no file), running jws"
    );
    let lines = restart_lines(node);
    assert_eq!(lines.len(), 1);
    assert!(
        (before..=after).contains(&lines[0]),
        "{before} <= {} <= {after}",
        lines[0]
    );

    // Back to fernet: one more line, and the file follows.
    set_provider(node, "fernet");
    assert!(run_restart(node).await.status.success());
    assert_eq!(read(&provider).as_deref(), Some("fernet\n"));
    let lines = restart_lines(node);
    assert_eq!(lines.len(), 2);
    assert!(lines[1] >= lines[0]);
    assert!(restart_lines(&info.nodes[1]).is_empty());

    handle.shutdown().await;
    assert!(
        !provider.exists(),
        "a world that is not served runs nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI

async fn cutover(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_hap_reload_against_a_served_world() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 2, lbs: 1 });
    let handle = world::start(&info).await.unwrap();
    let sock = &info.lbs[0].socket;
    cli(sock, "set server keystone_api/ks1 state maint").await;
    let dir = info.dir.display().to_string();

    let out = cutover(&["world", "fault", &dir, "hap-reload"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("haproxy-1: reloaded without a server-state file")
            && stdout.contains("ks1 maint -> ready"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(status(sock, "ks1").await, "UP 1/3");

    // Unknown node: bad input, exit 2.
    let out = cutover(&["world", "fault", &dir, "stop", "node7"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node `node7`"));

    // A world nobody serves: exit 1, with advice.
    handle.shutdown().await;
    let out = cutover(&["world", "fault", &dir, "stop", "node1"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not running")
            && stderr.contains(&format!("cutover world serve {dir}"))
            && stderr.contains(&format!("{dir}/inventory.yaml")),
        "{stderr}"
    );
    assert!(
        !info.nodes[0].run_dir.join("stopped").exists(),
        "nothing injected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_unknown_fault_exits_2_listing_the_faults() {
    let out = cutover(&["world", "fault", "/nonexistent-world", "explode"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown fault `explode`"), "{stderr}");
    for name in [
        "hap-reload",
        "set-ready",
        "lb-down",
        "break-restart",
        "slow-restart",
        "stop",
    ] {
        assert!(stderr.contains(name), "{name} not listed: {stderr}");
    }
    let help = cutover(&["world", "fault", "--help"]).await;
    assert!(String::from_utf8_lossy(&help.stdout).contains("slow-restart NODE SECS"));
}
