//! A demo world in a temp dir, served by its own `cutover world serve`, and what its stand-ins
//! write under each node's `run/` (observed directly, not through cutover).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cutover::world::{WorldInfo, WorldNode};

use super::bin::{BIN, Reaped, cutover, text};
use super::journal::{has_outcome, records, restart_id};

/// `cutover world serve DIR` in its own process, output discarded.
pub fn spawn_serve(dir: &Path) -> Child {
    Command::new(BIN)
        .args(["world", "serve", dir.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cutover world serve")
}

/// A new two-node world (`TMP/world`) served by its own process, node1's restarts slowed to
/// `slow` seconds. Served once the slow-restart fault is injected (the fault command needs the
/// serving process); panics if that takes more than 30 s.
pub fn served_world(tmp: &Path, slow: &str) -> (PathBuf, Reaped, WorldInfo) {
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
    let serve = Reaped(spawn_serve(&dir));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cutover(&[
            "world",
            "fault",
            dir.to_str().unwrap(),
            "slow-restart",
            "node1",
            slow,
        ]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the world was not served within 30 s: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let info = cutover::world::load(&dir).unwrap();
    (dir, serve, info)
}

/// Restarts begun on a node, from the stand-in's own `run/restarts.log`.
pub fn restarts(node: &WorldNode) -> usize {
    std::fs::read_to_string(node.run_dir.join("restarts.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(" restart"))
        .count()
}

/// The provider a node's Keystone runs with, from the stand-in's `run/provider` (present only
/// while it listens).
pub fn provider(node: &WorldNode) -> String {
    std::fs::read_to_string(node.run_dir.join("provider"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// GET /v3 on a node answers 200 (plain HTTP over loopback, no client library).
pub fn answers(node: &WorldNode) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", node.port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /v3 HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")
}

/// node1's restart has begun (intent journaled, the stand-in noted it) and has not finished.
pub fn restart_in_flight(journal: &Path, node1: &WorldNode) -> bool {
    let recs = records(journal);
    restart_id(&recs, "node1").is_some_and(|id| !has_outcome(&recs, &id)) && restarts(node1) == 1
}

/// `cutover world serve DIR`, stopped on drop the way an operator stops it (SIGTERM), then
/// reaped.
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// Serves the world in `dir` from its own `cutover world serve` (output discarded); returns once
/// its `serve.pid` exists and `up()` holds, and panics if that takes more than 20 s.
pub fn serve(dir: &Path, up: impl Fn() -> bool) -> Served {
    let served = Served(spawn_serve(dir));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(dir.join("serve.pid").exists() && up()) {
        assert!(Instant::now() < deadline, "the world did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    served
}

/// Every node of `info` accepts a TCP connection on its Keystone port.
pub fn nodes_listen(info: &WorldInfo) -> bool {
    info.nodes
        .iter()
        .all(|n| std::net::TcpStream::connect(("127.0.0.1", n.port)).is_ok())
}

/// `show stat` over an instance's admin socket, parsed by column name: server name → status, for
/// `backend`. The tests' own observer of the load balancers, never cutover's code.
pub fn show_stat(socket: &Path, backend: &str) -> Option<BTreeMap<String, String>> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"show stat\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, st) = (col("pxname")?, col("svname")?, col("status")?);
    let mut out = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() > st && f[px] == backend && f[sv] != "BACKEND" && f[sv] != "FRONTEND" {
            out.insert(f[sv].to_string(), f[st].to_string());
        }
    }
    Some(out)
}

/// Give `node` a fresh ES256 keypair as cutover's native keygen would: `private.pem` (0600) in
/// its private repository, and its public key as `NODE.pem` in the public repository of every
/// node of `publish_to` (itself included only if listed).
pub fn install_jws_keypair(node: &WorldNode, publish_to: &[&WorldNode]) {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    use std::os::unix::fs::PermissionsExt as _;
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let private = node.jws_private_repo.join("private.pem");
    std::fs::write(
        &private,
        sk.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = sk.public_key().to_public_key_pem(LineEnding::LF).unwrap();
    for other in publish_to {
        std::fs::write(
            other.jws_public_repo.join(format!("{}.pem", node.name)),
            &public,
        )
        .unwrap();
    }
}

/// The moments (unix ms) each node's restarts began, from the stand-in's own log
/// (`run/restarts.log`), never from cutover.
pub fn restart_times(info: &WorldInfo) -> BTreeMap<String, Vec<u64>> {
    info.nodes
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(n.run_dir.join("restarts.log")).unwrap_or_default();
            let at = text
                .lines()
                .filter(|l| l.ends_with(" restart"))
                .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                .collect();
            (n.name.clone(), at)
        })
        .collect()
}

/// Every admin-state write of each instance, from its own `haproxy-K.admin.log` (written by
/// the stand-in after each change): instance → [(unix epoch ms, node, state)], in order.
pub fn admin_writes(info: &WorldInfo) -> BTreeMap<String, Vec<(u64, String, String)>> {
    info.lbs
        .iter()
        .map(|lb| {
            let text = std::fs::read_to_string(lb.state_file.with_extension("admin.log"))
                .unwrap_or_default();
            let mut writes = Vec::new();
            for line in text.lines() {
                let Some((at, cmds)) = line.split_once(' ') else {
                    continue;
                };
                let Ok(at) = at.parse::<u64>() else { continue };
                for cmd in cmds.split(';') {
                    let w: Vec<&str> = cmd.split_whitespace().collect();
                    if let ["set", "server", target, "state", state] = w[..] {
                        let server = target.rsplit('/').next().unwrap_or(target);
                        let node = lb
                            .servers
                            .iter()
                            .find(|s| s.name == server)
                            .map_or(server, |s| s.node.as_str());
                        writes.push((at, node.to_string(), state.to_string()));
                    }
                }
            }
            (lb.name.clone(), writes)
        })
        .collect()
}

/// An independent observer: a thread that takes `sample` of the world every `every` until
/// finished, keeping every sample it got (a read that failed is skipped).
pub struct Observer<S> {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    samples: std::sync::Arc<std::sync::Mutex<Vec<S>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S: Send + 'static> Observer<S> {
    pub fn start(
        info: &WorldInfo,
        every: Duration,
        sample: fn(&WorldInfo) -> Option<S>,
    ) -> Observer<S> {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples, info) = (stop.clone(), samples.clone(), info.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(s) = sample(&info) {
                        samples.lock().unwrap().push(s);
                    }
                    std::thread::sleep(every);
                }
            })
        };
        Observer {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Stop sampling; every sample taken, in order.
    pub fn finish(mut self) -> Vec<S> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// Every server's `show stat` status on every instance of the world, keyed by (instance,
/// node), read over the admin sockets (None when one read failed).
pub fn pool_status(info: &WorldInfo) -> Option<BTreeMap<(String, String), String>> {
    let mut status = BTreeMap::new();
    for lb in &info.lbs {
        let rows = show_stat(&lb.socket, &lb.backend)?;
        for s in &lb.servers {
            status.insert(
                (lb.name.clone(), s.node.clone()),
                rows.get(&s.name)?.clone(),
            );
        }
    }
    Some(status)
}

/// One node's statuses in a [`pool_status`] map, instance by instance.
pub fn statuses_of<'a>(status: &'a BTreeMap<(String, String), String>, node: &str) -> Vec<&'a str> {
    status
        .iter()
        .filter(|((_, n), _)| n == node)
        .map(|(_, s)| s.as_str())
        .collect()
}
