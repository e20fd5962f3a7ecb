//! The embedded demo world, exercised over real HTTP, a real UNIX socket and real files.
//! Every wait polls against a deadline; nothing sleeps blindly.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cutover::inventory::{Inventory, KeyGen, Reach};
use cutover::world::{self, WorldInfo, WorldNode, WorldSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn new_world(spec: &WorldSpec) -> (tempfile::TempDir, WorldInfo) {
    let tmp = tempfile::tempdir().unwrap();
    let info = world::create(&tmp.path().join("w"), spec).unwrap();
    (tmp, info)
}

fn admin_password(info: &WorldInfo) -> String {
    let doc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&info.clouds_path).unwrap()).unwrap();
    doc["clouds"]["demo"]["auth"]["password"]
        .as_str()
        .unwrap()
        .to_string()
}

fn auth_body(password: &str) -> Value {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}
    }})
}

/// Issue a token directly at `url`; returns (status, token).
async fn issue(url: &str, password: &str) -> (StatusCode, Option<String>) {
    let resp = client()
        .post(format!("{url}/v3/auth/tokens"))
        .json(&auth_body(password))
        .send()
        .await
        .unwrap();
    let token = resp
        .headers()
        .get("x-subject-token")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status(), token)
}

async fn validate(url: &str, auth: &str, subject: &str) -> StatusCode {
    client()
        .get(format!("{url}/v3/auth/tokens"))
        .header("X-Auth-Token", auth)
        .header("X-Subject-Token", subject)
        .send()
        .await
        .unwrap()
        .status()
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

async fn api_up(url: &str) -> bool {
    matches!(client().get(format!("{url}/v3")).send().await, Ok(r) if r.status() == StatusCode::OK)
}

async fn port_closed(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

/// Run the node's restart script as an operator (or the local transport) would.
async fn run_restart(node: &WorldNode) -> std::process::Output {
    tokio::process::Command::new("sh")
        .arg(&node.restart)
        .output()
        .await
        .unwrap()
}

/// Restart the node; the script must succeed (Keystone listens again).
async fn restart(node: &WorldNode) {
    let out = run_restart(node).await;
    assert!(
        out.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn set_provider(node: &WorldNode, provider: &str) {
    let conf = std::fs::read_to_string(&node.keystone_conf).unwrap();
    let mut found = false;
    let conf: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("provider = ") {
                found = true;
                format!("provider = {provider}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(found);
    std::fs::write(&node.keystone_conf, conf).unwrap();
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

/// `show servers state` lines keyed by srv_name, as whitespace-split fields.
async fn servers_state(sock: &Path) -> HashMap<String, Vec<String>> {
    let out = cli(sock, "show servers state keystone_api").await;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("# be_id be_name srv_id srv_name")
    );
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            (f[3].clone(), f)
        })
        .collect()
}

#[test]
fn layout_inventory_and_files() {
    let (_tmp, info) = new_world(&WorldSpec::default());
    let dir = &info.dir;
    assert!(dir.is_absolute());
    assert_eq!(world::load(dir).unwrap(), info);
    assert_eq!(
        world::create_or_load(dir, &WorldSpec::default()).unwrap(),
        info
    );
    let err = world::create(dir, &WorldSpec::default()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");

    // The inventory is a cutover inventory for this world.
    let inv = Inventory::load(&info.inventory_path).unwrap();
    assert_eq!(inv.cluster, "demo");
    assert_eq!(inv.demo_world.as_deref(), Some(dir.as_path()));
    assert_eq!(inv.nodes.len(), 3);
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    for (n, wn) in inv.nodes.iter().zip(&info.nodes) {
        assert_eq!(n.name, wn.name);
        assert_eq!(n.reach, Reach::Local);
        assert_eq!(n.keystone_url, format!("http://127.0.0.1:{}", wn.port));
        assert_eq!(
            n.keystone_conf,
            dir.join(&n.name).join("etc/keystone/keystone.conf")
        );
        assert_eq!(n.restart, wn.restart.display().to_string());
        assert_eq!(n.log_file.as_ref(), Some(&wn.log_file));
        assert_eq!(n.keystone_user, user);
        assert!(!n.sudo);
        assert_eq!(n.keygen, KeyGen::Native);
    }
    let lb = &inv.load_balancers[0];
    assert_eq!(lb.name, "haproxy-1");
    assert_eq!(lb.backend, "keystone_api");
    assert_eq!(lb.socket.as_ref(), Some(&dir.join("haproxy-1.sock")));
    assert_eq!(lb.server_for("node2"), "ks2");
    assert_eq!(inv.credentials.cloud.as_deref(), Some("demo"));

    // Credentials resolve through the crate's own clouds.yaml reader.
    let creds =
        cutover::inventory::credentials::resolve(Some("demo"), Some(&info.clouds_path), &|_| None)
            .unwrap();
    assert_eq!(creds.password.len(), 20);
    let clouds = std::fs::read_to_string(&info.clouds_path).unwrap();
    assert!(clouds.contains(&format!(
        "auth_url: http://127.0.0.1:{}/v3",
        info.lbs[0].frontend_port
    )));

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&info.clouds_path), 0o600);
    let keys0: Vec<String> = (0..3)
        .map(|i| std::fs::read_to_string(info.nodes[0].fernet_repo.join(i.to_string())).unwrap())
        .collect();
    for node in &info.nodes {
        assert_eq!(mode(&node.fernet_repo), 0o700);
        assert_eq!(mode(&node.jws_private_repo), 0o700);
        assert_eq!(mode(&node.jws_public_repo), 0o755);
        assert_eq!(mode(&node.restart) & 0o111, 0o111);
        for (i, expected) in keys0.iter().enumerate() {
            let key = node.fernet_repo.join(i.to_string());
            assert_eq!(mode(&key), 0o600);
            let text = std::fs::read_to_string(&key).unwrap();
            assert_eq!(&text, expected);
            assert_eq!(
                base64::engine::general_purpose::URL_SAFE
                    .decode(text.trim())
                    .unwrap()
                    .len(),
                32
            );
        }
        assert_eq!(
            std::fs::read_dir(&node.jws_private_repo).unwrap().count(),
            0
        );
        let conf = std::fs::read_to_string(&node.keystone_conf).unwrap();
        for line in [
            "[DEFAULT]".to_string(),
            "provider = fernet".into(),
            "expiration = 3600".into(),
            "#allow_expired_window = 172800".into(),
            "max_active_keys = 3".into(),
            format!("key_repository = {}/", node.fernet_repo.display()),
            format!(
                "jws_private_key_repository = {}",
                node.jws_private_repo.display()
            ),
            format!(
                "jws_public_key_repository = {}",
                node.jws_public_repo.display()
            ),
        ] {
            assert!(conf.lines().any(|l| l == line), "{line} missing");
        }
        assert!(conf.contains("[fernet_receipts]"));
    }
    let trusts: Value =
        serde_json::from_str(&std::fs::read_to_string(&info.trusts_path).unwrap()).unwrap();
    assert_eq!(trusts["trusts"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_fernet_then_jws() {
    let (_tmp, info) = new_world(&WorldSpec::default());
    let handle = world::start(&info).await.unwrap();
    let password = admin_password(&info);
    let [n1, n2, _n3] = [&info.nodes[0], &info.nodes[1], &info.nodes[2]];

    for node in &info.nodes {
        let v: Value = client()
            .get(format!("{}/v3", node.keystone_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["version"]["id"], "v3.14");
        assert_eq!(v["version"]["status"], "stable");
    }

    // A Fernet token from node1 validates on node2: same keys.
    let (status, fernet) = issue(&n1.keystone_url, &password).await;
    assert_eq!(status, StatusCode::CREATED);
    let fernet = fernet.unwrap();
    assert!(fernet.starts_with("gAAAAA"));
    assert_eq!(
        validate(&n2.keystone_url, &fernet, &fernet).await,
        StatusCode::OK
    );
    let body: Value = client()
        .get(format!("{}/v3/auth/tokens", n2.keystone_url))
        .header("X-Auth-Token", &fernet)
        .header("X-Subject-Token", &fernet)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token"]["user"]["name"], "admin");
    assert_eq!(
        body["token"]["project"]["id"],
        info.admin_project_id.as_str()
    );
    assert_eq!(body["token"]["methods"], json!(["password"]));
    assert!(body["token"]["catalog"].is_array());
    let head = client()
        .head(format!("{}/v3/auth/tokens", n2.keystone_url))
        .header("X-Auth-Token", &fernet)
        .header("X-Subject-Token", &fernet)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);

    // Wrong password: 401 with Keystone's error body.
    let resp = client()
        .post(format!("{}/v3/auth/tokens", n1.keystone_url))
        .json(&auth_body("not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], 401);
    assert_eq!(err["error"]["title"], "Unauthorized");

    // Trusts need a valid token.
    let trusts = client()
        .get(format!("{}/v3/OS-TRUST/trusts", n1.keystone_url))
        .header("X-Auth-Token", &fernet)
        .send()
        .await
        .unwrap();
    assert_eq!(trusts.status(), StatusCode::OK);
    let trusts: Value = trusts.json().await.unwrap();
    assert_eq!(trusts["trusts"].as_array().unwrap().len(), 2);
    let anon = client()
        .get(format!("{}/v3/OS-TRUST/trusts", n1.keystone_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);

    // Flip node1 to jws with a keypair generated here (as cutover's native keygen would).
    support::world::install_jws_keypair(n1, &[n1]);
    set_provider(n1, "jws");
    restart(n1).await;
    assert!(!n1.restart_request().exists(), "the stand-in acknowledged");
    wait_for(5, "node1 back up as jws", || api_up(&n1.keystone_url)).await;

    let (status, jws) = issue(&n1.keystone_url, &password).await;
    assert_eq!(status, StatusCode::CREATED);
    let jws = jws.unwrap();
    assert!(jws.starts_with("eyJ"));
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jws.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header, json!({"alg": "ES256", "typ": "JWT"}));
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jws.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], info.admin_user_id.as_str());
    assert_eq!(
        claims["openstack_project_id"],
        info.admin_project_id.as_str()
    );
    assert_eq!(validate(&n1.keystone_url, &jws, &jws).await, StatusCode::OK);

    // Tokens of the other provider are refused exactly as Keystone refuses them.
    assert_eq!(
        validate(&n1.keystone_url, &jws, &fernet).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        validate(&n1.keystone_url, &fernet, &jws).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        validate(&n2.keystone_url, &fernet, &jws).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        validate(&n2.keystone_url, &jws, &fernet).await,
        StatusCode::UNAUTHORIZED
    );

    // The log names requests and provider changes, never tokens or the password.
    let log = std::fs::read_to_string(&n1.log_file).unwrap();
    assert!(log.contains("token provider jws"), "{log}");
    assert!(
        log.contains("\"POST /v3/auth/tokens\" status: 201"),
        "{log}"
    );
    assert!(!log.contains(&jws) && !log.contains(&fernet) && !log.contains(&password));

    handle.shutdown().await;
    for node in &info.nodes {
        assert!(port_closed(node.port).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jws_without_keys_stays_down_until_fixed() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 2, lbs: 1 });
    let handle = world::start(&info).await.unwrap();
    let node = &info.nodes[1];
    let sock = &info.lbs[0].socket;

    set_provider(node, "jws");
    // The restart script fails, with Keystone's reason, as `systemctl restart` of a unit that
    // does not start does.
    let out = run_restart(node).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keystone on node2 failed to start: SystemExit:")
            && stderr.contains("private.pem does not exist"),
        "{stderr}"
    );
    wait_for(5, "the refusal in keystone.log", || async {
        std::fs::read_to_string(&node.log_file)
            .unwrap()
            .contains("private.pem does not exist")
    })
    .await;
    let log = std::fs::read_to_string(&node.log_file).unwrap();
    assert!(
        log.contains("CRITICAL keystone [-] Unhandled error:"),
        "{log}"
    );
    assert!(
        port_closed(node.port).await,
        "a node that cannot start stays down"
    );
    // HAProxy notices after `fall` failed checks.
    wait_for(5, "ks2 DOWN", || async {
        stat(sock).await["ks2"]["status"] == "DOWN"
    })
    .await;
    assert_eq!(servers_state(sock).await["ks2"][5], "0");

    // Fixing the config and restarting again brings it back.
    set_provider(node, "fernet");
    restart(node).await;
    wait_for(5, "node2 back up", || api_up(&node.keystone_url)).await;
    wait_for(5, "ks2 UP", || async {
        stat(sock).await["ks2"]["status"] == "UP"
    })
    .await;
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_runtime_api_and_frontend() {
    let (_tmp, info) = new_world(&WorldSpec::default());
    let handle = world::start(&info).await.unwrap();
    let lb = &info.lbs[0];
    let sock = &lb.socket;
    assert_eq!(
        std::fs::metadata(sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let st = stat(sock).await;
    for s in ["ks1", "ks2", "ks3"] {
        assert_eq!(st[s]["status"], "UP", "fresh world starts UP");
        assert_eq!(st[s]["check_status"], "L7OK");
    }
    assert_eq!(st["FRONTEND"]["status"], "OPEN");
    assert_eq!(st["BACKEND"]["status"], "UP");

    assert_eq!(
        cli(sock, "set server keystone_api/ks2 state maint").await,
        "\n"
    );
    let state = servers_state(sock).await;
    let admin: u32 = state["ks2"][6].parse().unwrap();
    assert_eq!(admin & 0x01, 0x01);
    assert_eq!(state["ks2"][5], "0");
    assert_eq!(state["ks1"][6], "0");
    assert_eq!(state["ks1"][5], "2");
    assert_eq!(stat(sock).await["ks2"]["status"], "MAINT");
    assert_eq!(
        cli(sock, "set server keystone_api/ks9 state drain")
            .await
            .trim(),
        "No such server."
    );
    assert_eq!(
        cli(sock, "set server nope/ks1 state drain").await.trim(),
        "No such backend."
    );
    assert!(cli(sock, "help").await.contains("show servers state"));
    assert!(cli(sock, "bogus").await.starts_with("Unknown command"));
    // Several commands on one line.
    let out = cli(
        sock,
        "set server keystone_api/ks3 state drain; show servers state",
    )
    .await;
    assert!(out.starts_with("\n1\n# be_id"), "{out:?}");
    assert_eq!(stat(sock).await["ks3"]["status"], "DRAIN");
    assert_eq!(
        cli(sock, "set server keystone_api/ks3 state ready").await,
        "\n"
    );

    // The frontend proxies HTTP to ready servers only.
    for _ in 0..4 {
        let v: Value = client()
            .get(format!("{}/v3", lb.frontend_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["version"]["id"], "v3.14");
    }
    let st = stat(sock).await;
    assert_eq!(st["ks2"]["stot"], "0", "no traffic to a server in maint");
    assert_eq!(st["FRONTEND"]["stot"], "4");
    let total: u64 = ["ks1", "ks3"]
        .iter()
        .map(|s| st[*s]["stot"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 4);

    // A held connection is a session on the server it went to.
    let held = tokio::net::TcpStream::connect(("127.0.0.1", lb.frontend_port))
        .await
        .unwrap();
    wait_for(5, "scur to rise", || async {
        let st = stat(sock).await;
        st["FRONTEND"]["scur"] == "1" && st["BACKEND"]["scur"] == "1"
    })
    .await;
    drop(held);
    wait_for(5, "scur to fall", || async {
        stat(sock).await["BACKEND"]["scur"] == "0"
    })
    .await;

    // With every server out, the frontend closes connections.
    cli(
        sock,
        "set server keystone_api/ks1 state maint;set server keystone_api/ks3 state maint",
    )
    .await;
    assert!(
        client()
            .get(format!("{}/v3", lb.frontend_url))
            .send()
            .await
            .is_err()
    );
    assert_eq!(stat(sock).await["BACKEND"]["status"], "DOWN");
    handle.shutdown().await;
    assert!(!sock.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_state_survives_a_world_restart() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 3, lbs: 2 });
    let handle = world::start(&info).await.unwrap();
    let (lb1, lb2) = (&info.lbs[0], &info.lbs[1]);

    // Ports are ours while running: a second start names the busy port.
    let err = world::start(&info).await.err().unwrap();
    assert!(
        format!("{err:#}").contains(&info.nodes[0].port.to_string()),
        "{err:#}"
    );

    cli(&lb1.socket, "set server keystone_api/ks1 state drain").await;
    cli(&lb1.socket, "set server keystone_api/ks2 state maint").await;
    assert_eq!(
        stat(&lb2.socket).await["ks2"]["status"],
        "UP",
        "instances are independent"
    );
    handle.shutdown().await;
    assert!(lb1.state_file.exists());

    let info = world::load(&info.dir).unwrap();
    let handle = world::start(&info).await.unwrap();
    let state = servers_state(&lb1.socket).await;
    assert_eq!(state["ks1"][6], "8");
    assert_eq!(state["ks2"][6], "1");
    assert_eq!(state["ks3"][6], "0");
    let st = stat(&lb1.socket).await;
    assert_eq!(st["ks1"]["status"], "DRAIN");
    assert_eq!(st["ks2"]["status"], "MAINT");
    assert_eq!(st["ks3"]["status"], "UP");
    assert_eq!(servers_state(&lb2.socket).await["ks2"][6], "0");
    // Everything else came back too.
    for node in &info.nodes {
        assert!(api_up(&node.keystone_url).await);
    }
    drop(handle);
}

/// The frontend balances each HTTP request, as HAProxy's `mode http` with `balance roundrobin`
/// does, over the servers that are `ready` and UP (`UP 1/3` included): also the requests of one
/// kept-alive client connection. A server in maint, in drain or DOWN gets no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_round_robins_requests_over_ready_up_servers() {
    let (_tmp, info) = new_world(&WorldSpec { nodes: 5, lbs: 1 });
    let handle = world::start(&info).await.unwrap();
    let lb = &info.lbs[0];
    let sock = &lb.socket;
    cli(sock, "set server keystone_api/ks2 state maint").await;
    cli(sock, "set server keystone_api/ks3 state drain").await;
    // ks4's Keystone dies: its checks fail until it is DOWN.
    let dir = info.dir.clone();
    tokio::task::spawn_blocking(move || {
        let stop = world::fault::Fault::parse("stop", &["node4".to_string()]).unwrap();
        world::fault::inject(&dir, &stop).unwrap()
    })
    .await
    .unwrap();
    wait_for(10, "ks4 DOWN", || async {
        stat(sock).await["ks4"]["status"].starts_with("DOWN")
    })
    .await;
    // Back from maint, before any check passed: `UP 1/3` takes traffic.
    cli(sock, "set server keystone_api/ks5 state maint").await;
    cli(sock, "set server keystone_api/ks5 state ready").await;
    let st = stat(sock).await;
    assert_eq!(st["ks5"]["status"], "UP 1/3");
    let fe_before: u64 = st["FRONTEND"]["stot"].parse().unwrap();

    // One client, one kept-alive connection (raw HTTP/1.1, so that nothing opens a second
    // one): which node answered, by the port in the version document's self link.
    let port_to_node: HashMap<u16, &str> = info
        .nodes
        .iter()
        .map(|n| (n.port, n.name.as_str()))
        .collect();
    let conn = tokio::net::TcpStream::connect(("127.0.0.1", lb.frontend_port))
        .await
        .unwrap();
    let mut conn = tokio::io::BufReader::new(conn);
    let mut answered: HashMap<&str, usize> = HashMap::new();
    let mut order = Vec::new();
    for _ in 0..20 {
        let (status, body) = http_on(&mut conn, "/v3").await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let href = v["version"]["links"][0]["href"].as_str().unwrap();
        let port: u16 = href
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/v3/")
            .parse()
            .unwrap();
        let node = port_to_node[&port];
        *answered.entry(node).or_default() += 1;
        order.push(node);
    }
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert_eq!(answered.get("node1"), Some(&10), "{answered:?}");
    assert_eq!(answered.get("node5"), Some(&10), "{answered:?}");
    assert!(
        order.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates: {order:?}"
    );
    let st = stat(sock).await;
    let fe_after: u64 = st["FRONTEND"]["stot"].parse().unwrap();
    assert_eq!(fe_after - fe_before, 1, "all 20 requests on one connection");
    for s in ["ks2", "ks3", "ks4"] {
        assert_eq!(st[s]["stot"], "0", "{s} got a request");
    }
    // No request in flight: no server holds a session.
    assert_eq!(st["BACKEND"]["scur"], "0");

    // With no usable server left, a request on the kept-alive connection gets HAProxy's 503.
    cli(
        sock,
        "set server keystone_api/ks1 state maint;set server keystone_api/ks5 state maint",
    )
    .await;
    let (status, body) = http_on(&mut conn, "/v3").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("No server is available"), "{body}");
    handle.shutdown().await;
}

/// `world create --token-cache SECONDS`: one cache for every node, as Keystone's with a shared
/// memcached behaves. An entry is stored on issue and on validation, keyed by the token, read
/// before the provider, for its lifetime; `flush-cache` empties it. keystone.conf says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_token_cache_validates_across_providers_until_flushed_or_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let info = world::create_with(
        &tmp.path().join("w"),
        &WorldSpec { nodes: 2, lbs: 0 },
        &world::WorldOptions {
            token_cache: Some(2),
        },
    )
    .unwrap();
    assert_eq!(info.token_cache, Some(2));
    let (n1, n2) = (&info.nodes[0], &info.nodes[1]);
    let conf = std::fs::read_to_string(&n1.keystone_conf).unwrap();
    assert!(
        conf.contains("\n[cache]\n")
            && conf.contains("\nenabled = true\n")
            && conf.contains("\nexpiration_time = 2\n")
            && conf.contains("\nmemcache_servers = "),
        "{conf}"
    );
    // node2 runs jws (keys of its own; its public repo does not know Fernet, of course).
    support::world::install_jws_keypair(n2, &[n2]);
    set_provider(n2, "jws");
    let handle = world::start(&info).await.unwrap();
    wait_for(5, "both nodes up", || async {
        api_up(&n1.keystone_url).await && api_up(&n2.keystone_url).await
    })
    .await;
    let password = admin_password(&info);
    let flush = || {
        let dir = info.dir.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let f = world::fault::Fault::parse("flush-cache", &[]).unwrap();
                world::fault::inject(&dir, &f).unwrap()
            })
            .await
            .unwrap()
        }
    };

    // Cached on issue: a Fernet token validates on the JWS node, and a JWS token on the
    // Fernet node, as subject and as own token.
    let (_, fernet) = issue(&n1.keystone_url, &password).await;
    let fernet = fernet.unwrap();
    let (_, jws) = issue(&n2.keystone_url, &password).await;
    let jws = jws.unwrap();
    assert_eq!(
        validate(&n2.keystone_url, &fernet, &fernet).await,
        StatusCode::OK
    );
    assert_eq!(validate(&n1.keystone_url, &jws, &jws).await, StatusCode::OK);

    // A flush ends that at once: each node asks its own provider again.
    let line = flush().await;
    assert!(
        line.starts_with("token cache flushed: 2 entries gone"),
        "{line}"
    );
    assert_eq!(
        validate(&n2.keystone_url, &fernet, &fernet).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        validate(&n1.keystone_url, &jws, &jws).await,
        StatusCode::UNAUTHORIZED
    );
    // Validated where its own provider runs, it is cached again, for one lifetime.
    assert_eq!(
        validate(&n1.keystone_url, &fernet, &fernet).await,
        StatusCode::OK
    );
    assert_eq!(
        validate(&n2.keystone_url, &fernet, &fernet).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        validate(&n2.keystone_url, &fernet, &fernet).await,
        StatusCode::UNAUTHORIZED
    );
    handle.shutdown().await;

    // Without the flag nothing changes: no [cache], no flush-cache.
    let plain = world::create(&tmp.path().join("p"), &WorldSpec { nodes: 1, lbs: 0 }).unwrap();
    assert_eq!(plain.token_cache, None);
    let conf = std::fs::read_to_string(&plain.nodes[0].keystone_conf).unwrap();
    assert!(!conf.contains("[cache]"), "{conf}");
    let handle = world::start(&plain).await.unwrap();
    let dir = plain.dir.clone();
    let err = tokio::task::spawn_blocking(move || {
        let f = world::fault::Fault::parse("flush-cache", &[]).unwrap();
        world::fault::inject(&dir, &f).unwrap_err().to_string()
    })
    .await
    .unwrap();
    assert!(
        err.contains("has no shared token cache") && err.contains("--token-cache"),
        "{err}"
    );
    handle.shutdown().await;
}

/// One GET on a kept-alive HTTP/1.1 connection: the status and the body (by Content-Length).
async fn http_on(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    path: &str,
) -> (u16, String) {
    use tokio::io::AsyncBufReadExt as _;
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}
