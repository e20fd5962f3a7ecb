//! Supervision of one node's Keystone: start, restart on request, the injected faults, stop.

use super::api::{NodeApp, router};
use super::config::{Refusal, load_config};
use super::identity::Shared;
use super::log::{log_line, log_refusal};
use super::run::{RunFiles, write_atomic};
use crate::world::info::WorldNode;
use anyhow::Context as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long a restart keeps the node down after acknowledging it.
const RESTART_PAUSE: Duration = Duration::from_millis(700);

/// A listener that tells its owner when it is dropped, i.e. when the port stops accepting.
struct ClosingListener {
    inner: TcpListener,
    _closed: oneshot::Sender<()>,
}

impl axum::serve::Listener for ClosingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        axum::serve::Listener::accept(&mut self.inner).await
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A node that is serving.
struct Running {
    provider: &'static str,
    stop: Option<oneshot::Sender<()>>,
    closed: Option<oneshot::Receiver<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stop accepting connections (in-flight requests may finish) and wait until the listener
    /// is closed.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait_closed().await;
    }

    /// Die at once, as a killed process does, and wait until the port refuses connections.
    async fn kill(mut self) {
        self.task.abort();
        self.wait_closed().await;
    }

    async fn wait_closed(&mut self) {
        if let Some(closed) = self.closed.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The serve future only waits for in-flight connections once the listener is gone.
        self.task.abort();
    }
}

/// Start the stand-in of `node` and the task that watches for restart requests and faults.
/// Fails only when the node's port is taken.
pub async fn start_node(
    node: WorldNode,
    shared: Arc<Shared>,
    files_watch: &crate::world::watch::Watch,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let files = RunFiles::of(&node);
    // What the supervisor looks for: a restart or start request, the `stop` fault.
    let wake = files_watch.files(&[&files.restart_req, &files.start_req, &files.stopped]);
    // Requests left over from a world that died mid-restart: this start is that restart.
    let _ = std::fs::remove_file(&files.restart_req);
    let _ = std::fs::remove_file(&files.start_req);
    let running = if files.stopped.exists() {
        // A stopped Keystone stays dead across world restarts until started; the port must
        // still be ours to take then.
        let _ = std::fs::remove_file(&files.provider);
        drop(bind(node.port, false).await?);
        None
    } else {
        start(&node, &shared, &files, true).await?
    };
    Ok(tokio::spawn(supervise(
        node, shared, files, wake, stop, running,
    )))
}

/// Start Keystone: refuse as the injected fault or the configuration says, else listen.
/// Records the outcome in `run/start.result` and `run/provider`. `Err` only when the port is
/// taken at the world's start.
async fn start(
    node: &WorldNode,
    shared: &Arc<Shared>,
    files: &RunFiles,
    initial: bool,
) -> anyhow::Result<Option<Running>> {
    let _ = std::fs::remove_file(&files.start_stderr);
    let outcome = if files.break_restart.exists() {
        let msg = format!(
            "InjectedFault: break-restart is in effect on {} ({} exists): Keystone refuses to start. Clear it with `cutover world fault DIR fix-restart {}`",
            node.name,
            files.break_restart.display(),
            node.name
        );
        let refusal = Refusal::Other(msg);
        log_refusal(node, &refusal);
        Err(refusal)
    } else {
        match serve(node, shared, initial).await {
            Ok(outcome) => outcome,
            Err(e) if initial => return Err(e),
            Err(e) => {
                let refusal = Refusal::Other(format!("OSError: {e:#}"));
                log_refusal(node, &refusal);
                Err(refusal)
            }
        }
    };
    match outcome {
        Ok(running) => {
            let _ = write_atomic(&files.provider, &format!("{}\n", running.provider));
            let _ = write_atomic(&files.start_result, &format!("ok {}\n", running.provider));
            Ok(Some(running))
        }
        Err(msg) => {
            let _ = std::fs::remove_file(&files.provider);
            let _ = write_atomic(&files.start_result, &format!("failed: {msg}\n"));
            if initial {
                // Still make sure the port is ours to take once the cause is fixed.
                drop(bind(node.port, false).await?);
            }
            Ok(None)
        }
    }
}

/// Append `<unix epoch ms> restart` to `run/restarts.log` (one write, so lines never mix).
fn note_restart(files: &RunFiles) {
    let line = format!("{} restart\n", chrono::Utc::now().timestamp_millis());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.restarts_log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

async fn supervise(
    node: WorldNode,
    shared: Arc<Shared>,
    files: RunFiles,
    wake: crate::world::watch::Wake,
    mut stop: watch::Receiver<bool>,
    mut running: Option<Running>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = wake.wait() => {}
        }
        let restart = files.restart_req.exists();
        let start_asked = !restart && files.start_req.exists();
        if !restart && !start_asked {
            if files.stopped.exists()
                && let Some(r) = running.take()
            {
                // The process dies: no log line, as a killed process writes none.
                let _ = std::fs::remove_file(&files.provider);
                r.kill().await;
            }
            continue;
        }
        if restart {
            note_restart(&files);
            log_line(
                &node.log_file,
                "INFO",
                "keystone.server",
                "Restart requested: stopping the API",
            );
            let _ = std::fs::remove_file(&files.provider);
            if let Some(r) = running.take() {
                r.stop().await;
            }
            // A restart starts a stopped Keystone too, as `systemctl restart` does.
            let _ = std::fs::remove_file(&files.stopped);
            // The acknowledgement the restart script waits for.
            let _ = std::fs::remove_file(&files.restart_req);
        } else {
            let _ = std::fs::remove_file(&files.start_req);
            let _ = std::fs::remove_file(&files.stopped);
            if let Some(r) = &running {
                // Already running: starting it is a no-op, as `systemctl start` is.
                let _ = write_atomic(&files.start_result, &format!("ok {}\n", r.provider));
                continue;
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(files.slow().unwrap_or(RESTART_PAUSE)) => {}
        }
        // Only a world that stopped makes this fail, and then nobody is left to tell.
        running = start(&node, &shared, &files, false).await.unwrap_or(None);
    }
    let _ = std::fs::remove_file(&files.provider);
    if let Some(r) = running.take() {
        r.stop().await;
    }
}

async fn bind(port: u16, retry: bool) -> anyhow::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) if retry && tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("port 127.0.0.1:{port} is busy (is this world already running?)")
                });
            }
        }
    }
}

/// Read the configuration and serve it. `Ok(Err(reason))` when Keystone would refuse to start
/// (the reason is logged, as Keystone logs it); `Err` when the port cannot be bound.
async fn serve(
    node: &WorldNode,
    shared: &Arc<Shared>,
    initial: bool,
) -> anyhow::Result<Result<Running, Refusal>> {
    let conf = match load_config(&node.keystone_conf) {
        Ok(c) => c,
        Err(refusal) => {
            log_refusal(node, &refusal);
            return Ok(Err(refusal));
        }
    };
    let listener = bind(node.port, !initial).await?;
    log_line(
        &node.log_file,
        "INFO",
        "keystone.server",
        &format!(
            "Starting Keystone on 127.0.0.1:{} with token provider {} (expiration {} s)",
            node.port,
            conf.provider.name(),
            conf.expiration
        ),
    );
    let provider = conf.provider.name();
    let app = Arc::new(NodeApp {
        node: node.clone(),
        shared: shared.clone(),
        conf,
    });
    let (closed_tx, closed) = oneshot::channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let listener = ClosingListener {
        inner: listener,
        _closed: closed_tx,
    };
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let task = tokio::spawn(async move {
        let _ = server.await;
    });
    Ok(Ok(Running {
        provider,
        stop: Some(stop),
        closed: Some(closed),
        task,
    }))
}
