//! The embedded demo world: Keystone nodes and HAProxy instances that the real cutover drivers
//! talk to without knowing they are simulated.
//!
//! Everything a driver touches is real: files on disk (keystone.conf, Fernet and JWS key
//! repositories, logs, a restart script), HTTP on loopback ports (one Keystone stand-in per
//! node), and HAProxy's runtime-API text over a UNIX socket (plus a TCP frontend that really
//! proxies connections). Only the processes behind them are stand-ins living in this process.
//!
//! # Lifecycle
//! - [`create`] lays out a new world directory and picks its ports; [`load`] reads it back;
//!   [`create_or_load`] does whichever applies.
//! - [`start`] brings up the stand-ins on the recorded ports and returns a [`WorldHandle`];
//!   [`WorldHandle::shutdown`] (or dropping the handle) stops them again. A world can be started
//!   again later: key repositories, configs, the HAProxy runtime state file and the logs persist.
//!
//! # Layout of a world directory
//! ```text
//! DIR/world.json            this WorldInfo
//! DIR/inventory.yaml        a cutover inventory for the world (demo_world: DIR)
//! DIR/clouds.yaml           cloud `demo` (admin password, mode 0600)
//! DIR/trusts.json           seeded trusts served at GET /v3/OS-TRUST/trusts
//! DIR/nodeK/etc/keystone/   keystone.conf, fernet-keys/{0,1,2}, jws-keys/{private,public}/
//! DIR/world.lock            held (flock) by the process serving the world: how `fault` knows
//! DIR/nodeK/log/keystone.log
//! DIR/nodeK/bin/keystone-restart
//! DIR/nodeK/run/restart.req     present while a restart is requested
//! DIR/nodeK/run/start.req       present while a start is requested (the `start` fault)
//! DIR/nodeK/run/start.result    outcome of the last start: `ok PROVIDER` or `failed: REASON`
//! DIR/nodeK/run/start.stderr    what a failed start printed before it died (bad option values)
//! DIR/nodeK/run/provider        the provider the node is running; absent while it is down
//! DIR/nodeK/run/restarts.log    `<unix epoch ms> restart`, one line per restart begun
//! DIR/nodeK/run/break-restart   fault: every start fails while present
//! DIR/nodeK/run/slow-restart    fault: seconds a start takes before the node listens
//! DIR/nodeK/run/stopped         fault: the Keystone process is dead while present
//! DIR/haproxy-K.sock        runtime API (admin level; also `@world reload`, see [`fault`])
//! DIR/haproxy-K.state       persisted runtime state (HAProxy's server-state-file format)
//! DIR/haproxy-K.cfg         the instance's configuration, as Debian's HAProxy would run it
//!                           (no server-state-file: a reload loses MAINT); the inventory's
//!                           `config:`, read by cutover's probes, not by the stand-in
//! DIR/haproxy-K.down        fault: the instance answers nothing while present
//! ```
//! `run/provider` and `run/restarts.log` are for observers that must not take cutover's word
//! for it (a test's own sampler, a person watching a rehearsal): they are written by the
//! stand-in itself, at the moment things happen, from what it actually runs.
//!
//! # Restart protocol
//! `bin/keystone-restart` creates `run/restart.req` and waits (≤ 10 s) until the stand-in deletes
//! it. The stand-in notes the restart in `run/restarts.log`, stops listening, deletes the file
//! (the acknowledgement), waits a moment, re-reads keystone.conf and the keys, and listens again
//! — or stays down, logging why, when the configuration cannot start (as Keystone does with
//! `provider = jws` and no private.pem). Either way it writes the outcome to `run/start.result`,
//! which the script waits for: it exits 0 once Keystone listens, 1 with Keystone's reason on
//! stderr when it does not (as `systemctl restart` of a unit that fails to start does). A
//! boolean option Keystone reads at start with a value oslo.config refuses (`[DEFAULT] debug =
//! notabool`, `[cache] enabled = maybe`) fails the start as Keystone 30 does: deprecation
//! warnings, then argparse's one line or a CRITICAL line and a Traceback in the log; the script
//! then prints only the warnings (`run/start.stderr`), and the reason is in the log.
//!
//! # Faults
//! [`fault`] breaks a running world the way real services break in a change window (HAProxy
//! reloaded without its state file, another operator, an unreachable instance, a Keystone that
//! will not restart, restarts slowly or dies), over the admin socket and the files above, so it
//! works whichever process serves the world.

pub mod fault;
mod haproxy;
mod ini;
mod keystone;
mod layout;
pub use layout::relocate_busy_ports;
mod tokens;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The shape of a new world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldSpec {
    /// Keystone nodes (`node1`, `node2`, ...).
    pub nodes: usize,
    /// HAProxy instances (`haproxy-1`, ...) fronting every node.
    pub lbs: usize,
}

impl Default for WorldSpec {
    fn default() -> Self {
        WorldSpec { nodes: 3, lbs: 1 }
    }
}

/// Everything known about a world, persisted as `DIR/world.json`. All paths are absolute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldInfo {
    /// Format version of world.json.
    pub version: u32,
    pub dir: PathBuf,
    pub cluster: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub nodes: Vec<WorldNode>,
    pub lbs: Vec<WorldLb>,
    pub inventory_path: PathBuf,
    pub clouds_path: PathBuf,
    pub trusts_path: PathBuf,
    /// The cloud name in clouds.yaml.
    pub cloud: String,
    /// Identity of the one user the stand-ins know (`admin` in domain `Default`).
    pub admin_user_id: String,
    pub admin_project_id: String,
}

/// One Keystone node of the world.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldNode {
    /// `node1`, `node2`, ...
    pub name: String,
    /// Loopback port of this node's Keystone API.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub keystone_url: String,
    /// `DIR/nodeK`.
    pub dir: PathBuf,
    pub keystone_conf: PathBuf,
    pub fernet_repo: PathBuf,
    pub jws_private_repo: PathBuf,
    pub jws_public_repo: PathBuf,
    pub log_file: PathBuf,
    pub run_dir: PathBuf,
    /// The restart script (`DIR/nodeK/bin/keystone-restart`).
    pub restart: PathBuf,
}

impl WorldNode {
    /// The file whose existence asks the stand-in to restart.
    pub fn restart_request(&self) -> PathBuf {
        self.run_dir.join("restart.req")
    }
}

/// One HAProxy instance of the world.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldLb {
    /// `haproxy-1`, ...
    pub name: String,
    /// Admin socket (`DIR/haproxy-K.sock`).
    pub socket: PathBuf,
    /// Runtime state file (`DIR/haproxy-K.state`).
    pub state_file: PathBuf,
    /// The configuration this instance runs (`DIR/haproxy-K.cfg`), named as `config:` in the
    /// inventory. Absent in worlds made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Loopback port of the frontend.
    pub frontend_port: u16,
    /// `http://127.0.0.1:PORT`.
    pub frontend_url: String,
    /// Backend (and listen proxy) name: `keystone_api`.
    pub backend: String,
    pub servers: Vec<WorldServer>,
}

/// A server line of a backend: which node it points at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldServer {
    /// `ks1`, `ks2`, ...
    pub name: String,
    /// The node's name (`node1`, ...).
    pub node: String,
    /// The node's Keystone port.
    pub port: u16,
}

impl WorldInfo {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&WorldNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The cutover inventory this world wrote.
    pub fn inventory(&self) -> anyhow::Result<crate::inventory::Inventory> {
        Ok(crate::inventory::Inventory::load(&self.inventory_path)?)
    }

    /// The Keystone URL clients should use: the first load balancer's frontend, or the first
    /// node when the world has no load balancer.
    pub fn public_url(&self) -> String {
        match self.lbs.first() {
            Some(lb) => lb.frontend_url.clone(),
            None => self.nodes[0].keystone_url.clone(),
        }
    }
}

/// Current format version of world.json.
pub const WORLD_VERSION: u32 = 1;

/// Create a new world in `dir`, which must be absent or empty. Picks free loopback ports now
/// (bind 127.0.0.1:0, note, release) and records them in `DIR/world.json`.
pub fn create(dir: &Path, spec: &WorldSpec) -> anyhow::Result<WorldInfo> {
    layout::create(dir, spec)
}

/// Read an existing world from `DIR/world.json`.
pub fn load(dir: &Path) -> anyhow::Result<WorldInfo> {
    let path = dir.join("world.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let info: WorldInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a world description", path.display()))?;
    if info.version != WORLD_VERSION {
        bail!(
            "{} has format version {}, this cutover understands {WORLD_VERSION}",
            path.display(),
            info.version
        );
    }
    let here =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    if here != info.dir {
        bail!(
            "{} describes a world at {}, not {} (was the directory moved? create a new world)",
            path.display(),
            info.dir.display(),
            here.display()
        );
    }
    Ok(info)
}

/// [`load`] the world in `dir` if it has a world.json, else [`create`] one.
pub fn create_or_load(dir: &Path, spec: &WorldSpec) -> anyhow::Result<WorldInfo> {
    if dir.join("world.json").exists() {
        load(dir)
    } else {
        create(dir, spec)
    }
}

/// A running world. Dropping it aborts every stand-in; [`WorldHandle::shutdown`] stops them
/// gracefully and waits until their ports and sockets are released.
pub struct WorldHandle {
    info: WorldInfo,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// `DIR/world.lock`, locked while this handle serves the world (see [`is_served`]).
    _lock: Option<std::fs::File>,
}

impl WorldHandle {
    /// The world being served.
    pub fn info(&self) -> &WorldInfo {
        &self.info
    }

    /// Stop every stand-in and wait (briefly) until listeners and sockets are closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.remove_live_files();
    }

    /// What only a served world has: admin sockets, and the providers nodes run.
    fn remove_live_files(&self) {
        for lb in &self.info.lbs {
            let _ = std::fs::remove_file(&lb.socket);
        }
        for node in &self.info.nodes {
            let _ = std::fs::remove_file(node.run_dir.join("provider"));
        }
    }
}

impl Drop for WorldHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
        if !self.tasks.is_empty() {
            self.remove_live_files();
        }
    }
}

/// Whether some process (this one included) serves the world: it holds `DIR/world.lock`.
/// A lock rather than a pid file or a socket probe: it dies with its process, and it answers
/// for worlds whose instances are down or that have no load balancer at all.
pub fn is_served(info: &WorldInfo) -> bool {
    let Ok(f) = std::fs::File::open(info.dir.join("world.lock")) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

/// Take `DIR/world.lock` for the serving process. None if it cannot be had (a world served
/// elsewhere on other ports, a read-only directory): serving does not depend on it.
fn lock_world(dir: &Path) -> Option<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("world.lock"))
        .ok()?;
    f.try_lock().ok()?;
    Some(f)
}

/// Start every stand-in of `info` on its recorded port. Fails, naming the port or socket, when
/// one is already taken. A node whose configuration cannot start stays down (and says why in its
/// log) without failing the world.
pub async fn start(info: &WorldInfo) -> anyhow::Result<WorldHandle> {
    let (stop, stop_rx) = watch::channel(false);
    let mut handle = WorldHandle {
        info: info.clone(),
        stop,
        tasks: Vec::new(),
        _lock: None,
    };
    let shared = Arc::new(keystone::Shared::load(info)?);
    for node in &info.nodes {
        let task = keystone::start_node(node.clone(), shared.clone(), stop_rx.clone())
            .await
            .with_context(|| format!("cannot start the Keystone stand-in of {}", node.name))?;
        handle.tasks.push(task);
    }
    for lb in &info.lbs {
        let tasks = haproxy::start_lb(lb.clone(), stop_rx.clone())
            .await
            .with_context(|| format!("cannot start the HAProxy stand-in {}", lb.name))?;
        handle.tasks.extend(tasks);
    }
    // Last: a second start of a served world fails above, naming the busy port.
    handle._lock = lock_world(&info.dir);
    Ok(handle)
}
