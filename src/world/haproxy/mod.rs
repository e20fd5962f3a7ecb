//! The HAProxy stand-in: one instance per load balancer of the world.
//!
//! Each instance has
//! - an admin socket speaking the runtime API (non-interactive: one line of `;`-separated
//!   commands in, the answers out, close; `prompt` switches to interactive mode),
//! - HTTP health checks of every server (`option httpchk GET /v3`, `check inter 1s rise 2
//!   fall 3`),
//! - an HTTP frontend (`mode http`, `balance roundrobin`) that sends each request, also on a
//!   kept-alive connection, to the next server that is UP (`UP 1/3` included) and `ready` —
//!   never to one in maint, drain or DOWN — counting sessions per server (what a drain waits
//!   for); its URL is the load balancer's `frontend_url` in the world's inventory,
//! - its runtime admin state persisted to a server-state file on every change and loaded at
//!   start, so a restarted world keeps drained and maintained servers out of rotation.
//!
//! `show stat`'s `status` column reads as HAProxy 2.6 prints it, because operators (and cutover)
//! read meaning into the suffix: `UP` only at full check health; `UP n/m` while up below it —
//! right after `set server ... state ready` from maint it reads `UP 1/3` (no check has passed
//! yet; the first that passes makes it `UP`), after failed checks it is on its way down;
//! `DOWN n/m` while coming back; `DRAIN` / `DRAIN n/m` as UP; `MAINT`.
//!
//! # Faults (see [`super::fault`])
//! Real instances get reloaded and fall over during change windows; the stand-in can be made to
//! do both from outside the process that serves it:
//! - `@world reload` on the admin socket, a private command cutover's drivers never send, does
//!   what `haproxy -sf` without a server-state file does: a new process with the configured
//!   state (every server `ready`, health = rise, so `UP 1/3` until its next check), counters at
//!   zero, checks re-armed a full interval later, and the state file rewritten to match.
//!   Connections of the old process run on but no longer count.
//! - While `DIR/haproxy-K.down` exists the instance is unreachable: its admin socket and frontend
//!   stop listening (connections are refused, open ones dropped). Its runtime state and health
//!   checks carry on; removing the file makes it listen again. A file rather than a command,
//!   so that bringing it back does not need the socket that is down.
//!
//! The command parser and the text it prints are kept apart from the sockets ([`LbState`]), so
//! they can be tested without I/O.

mod admin;
mod check;
mod frontend;
mod instance;
mod runtime_api;
mod server;
mod stats;

pub use check::HEALTH_CHECK_AGENT;

use super::info::WorldLb;
use crate::world::watch::Wake;
use admin::{admin_loop, bind_admin_socket};
use anyhow::Context as _;
use check::{check_loop, http_check};
use frontend::frontend_loop;
use instance::Lb;
use runtime_api::LbState;
use server::{FALL, RISE};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Run `fut` until it ends or the world stops.
fn spawn_until_stop<F>(mut stop: watch::Receiver<bool>, fut: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            _ = fut => {}
        }
    })
}

/// The file whose existence makes an instance unreachable (`DIR/haproxy-K.down`).
pub fn down_file(lb: &WorldLb) -> std::path::PathBuf {
    lb.socket.with_extension("down")
}

/// Start an instance: admin socket, frontend, health checks. Fails naming the socket or port
/// when either is taken.
pub async fn start_lb(
    lb: WorldLb,
    files_watch: &crate::world::watch::Watch,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let listeners = bind_listeners(&lb).await?;

    let now = Instant::now();
    let mut state = LbState::new(&lb, now);
    if let Ok(text) = std::fs::read_to_string(&lb.state_file) {
        state.apply_state_file(&text, now);
    }
    // A fresh world should not wait for `rise`: servers whose first check passes start UP.
    let first = futures::future::join_all(state.servers.iter().map(|s| http_check(s.port))).await;
    for (s, (status, ms)) in state.servers.iter_mut().zip(first) {
        s.check = status;
        s.check_duration_ms = ms;
        if status.passed() {
            s.health = RISE + FALL - 1;
            s.set_up(true, now);
        } else {
            s.chkfail += 1;
        }
    }
    let lb = Arc::new(Lb {
        info: lb,
        state: Mutex::new(state),
        reloads: watch::Sender::new(0),
    });
    lb.save(&lb.lock());

    let mut tasks = Vec::new();
    for idx in 0..lb.info.servers.len() {
        tasks.push(spawn_until_stop(stop.clone(), check_loop(lb.clone(), idx)));
    }
    let wake = files_watch.files(&[&down_file(&lb.info)]);
    tasks.push(spawn_until_stop(
        stop,
        listen_loop(lb, Some(listeners), wake),
    ));
    Ok(tasks)
}

/// The admin socket and the frontend of an instance.
struct Listeners {
    admin: UnixListener,
    frontend: TcpListener,
}

async fn bind_listeners(lb: &WorldLb) -> anyhow::Result<Listeners> {
    let admin = bind_admin_socket(&lb.socket)?;
    let frontend = TcpListener::bind(("127.0.0.1", lb.frontend_port))
        .await
        .with_context(|| {
            format!(
                "port 127.0.0.1:{} (frontend of {}) is busy (is this world already running?)",
                lb.frontend_port, lb.name
            )
        })?;
    Ok(Listeners { admin, frontend })
}

/// Serve the admin socket and the frontend, except while the down file exists: then nothing
/// listens (connections are refused and open ones dropped) until it is removed. `wake` says
/// when the down file may have come or gone.
async fn listen_loop(lb: Arc<Lb>, mut listeners: Option<Listeners>, wake: Wake) {
    let down = down_file(&lb.info);
    loop {
        if down.exists() {
            // Dropping the listeners (and the connection tasks below) is the instance going away.
            listeners = None;
            wake.wait().await;
            continue;
        }
        let l = match listeners.take() {
            Some(l) => l,
            None => match bind_listeners(&lb.info).await {
                Ok(l) => l,
                Err(_) => {
                    // Someone else holds the port or socket; keep trying, as a restarting
                    // haproxy service would.
                    tokio::time::sleep(crate::world::watch::POLL).await;
                    continue;
                }
            },
        };
        tokio::select! {
            _ = admin_loop(lb.clone(), &l.admin) => {}
            _ = frontend_loop(lb.clone(), &l.frontend) => {}
            _ = wait_until_exists(&down, &wake) => {}
        }
        listeners = Some(l);
    }
}

async fn wait_until_exists(path: &Path, wake: &Wake) {
    while !path.exists() {
        wake.wait().await;
    }
}
