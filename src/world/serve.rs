//! Serving a world: the stand-ins running on their recorded ports, the handle that stops them,
//! and `DIR/world.lock`, which tells other processes that the world is served.

use super::info::WorldInfo;
use super::{haproxy, keystone};
use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running world. Dropping it aborts every stand-in; [`WorldHandle::shutdown`] stops them
/// gracefully and waits until their ports and sockets are released.
pub struct WorldHandle {
    info: WorldInfo,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// `DIR/world.lock`, locked while this handle serves the world (see [`is_served`]).
    _lock: Option<std::fs::File>,
    /// The world's ports, claimed while it is served (see [`super::layout::claim_ports`]).
    _ports: Vec<std::fs::File>,
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
        _ports: super::layout::claim_ports(
            info.nodes
                .iter()
                .map(|n| n.port)
                .chain(info.lbs.iter().map(|l| l.frontend_port)),
        )?,
    };
    let shared = Arc::new(keystone::Shared::load(info)?);
    // One watch over every stand-in's control files (see `watch`): an idle world sleeps.
    let (watch, reader) = super::watch::Watch::start();
    handle.tasks.extend(reader);
    if let Some(cache) = shared.token_cache() {
        let request = super::token_cache::flush_request(&info.dir);
        // A flush asked for while the world was down has nothing left to flush.
        let _ = std::fs::remove_file(&request);
        let mut stop = stop_rx.clone();
        let wake = watch.files(&[&request]);
        handle.tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = super::token_cache::flush_loop(cache, request, wake) => {}
            }
        }));
    }
    for node in &info.nodes {
        let task = keystone::start_node(node.clone(), shared.clone(), &watch, stop_rx.clone())
            .await
            .with_context(|| format!("cannot start the Keystone stand-in of {}", node.name))?;
        handle.tasks.push(task);
    }
    for lb in &info.lbs {
        let tasks = haproxy::start_lb(lb.clone(), &watch, stop_rx.clone())
            .await
            .with_context(|| format!("cannot start the HAProxy stand-in {}", lb.name))?;
        handle.tasks.extend(tasks);
    }
    // Last: a second start of a served world fails above, naming the busy port.
    handle._lock = lock_world(&info.dir);
    Ok(handle)
}
