//! HAProxy through its runtime API: the first `LoadBalancer`. One instance is reached over a
//! UNIX admin socket on this machine or on a host reached over SSH (`socat` there), or over a
//! TCP admin socket (`stats socket ipv4@…`). The demo world's HAProxy stand-in speaks the same
//! text protocol and is reached the same way.

pub mod config;
pub mod parse;

pub use config::reload_facts;
pub use parse::*;

use super::{Around, Change, LoadBalancer};
use crate::drivers::{DResult, DriverError, Fleet, reach_key};
use crate::engine::facts::{AdminState, LbServer, ReloadFacts};
use crate::inventory::{self, Reach};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One HAProxy instance of the inventory, over the fleet's connections.
pub struct Haproxy<'a> {
    fleet: &'a Fleet,
    lb: &'a inventory::LoadBalancer,
}

impl<'a> Haproxy<'a> {
    pub fn new(fleet: &'a Fleet, lb: &'a inventory::LoadBalancer) -> Haproxy<'a> {
        Haproxy { fleet, lb }
    }

    /// One request (one or several `;`-separated commands) and its whole answer.
    pub async fn request(&self, cmd: &str) -> DResult<String> {
        let lb = self.lb;
        let timeout = Duration::from_secs(10);
        let answer = if let Some(addr) = &lb.address {
            tcp_request(addr, cmd, timeout).await.map_err(|e| {
                DriverError::new(
                    format!("{}: {e}", lb.name),
                    format!(
                        "check that {addr} is HAProxy's admin socket (stats socket ... level admin)"
                    ),
                )
            })?
        } else {
            let reach = lb.reach.clone().unwrap_or(Reach::Local);
            let t = self.fleet.reach(&reach_key(&reach), &reach).await?;
            let socket = lb.socket.clone().unwrap_or_default();
            t.socket_request(&socket, cmd, lb.sudo, timeout)
                .await
                .map_err(|e| {
                    let mut d = DriverError::from(e);
                    d.msg = format!("{}: {}", lb.name, d.msg);
                    d.next = format!(
                        "check that {} exists and is HAProxy's admin socket (stats socket ... level admin){}",
                        socket.display(),
                        if lb.sudo {
                            ""
                        } else {
                            "; set sudo: true if it needs root"
                        }
                    );
                    d
                })?
        };
        Ok(answer)
    }

    /// (node, server) for every node of the inventory.
    fn servers(&self) -> Vec<(String, String)> {
        self.fleet
            .inv
            .nodes
            .iter()
            .map(|n| (n.name.clone(), self.lb.server_for(&n.name)))
            .collect()
    }

    fn set_command(&self, c: &Change) -> String {
        set_state(
            &self.lb.backend,
            &self.lb.server_for(&c.node),
            c.to.as_str(),
        )
    }
}

impl LoadBalancer for Haproxy<'_> {
    fn name(&self) -> &str {
        &self.lb.name
    }

    /// One round trip: the runtime API runs `;`-separated commands in order on one
    /// connection (over SSH, one `socat` instead of two).
    async fn read(&self) -> DResult<Vec<LbServer>> {
        let lb = self.lb;
        let answer = self
            .request(&format!("show servers state {}; show stat", lb.backend))
            .await?;
        let Answer { state, stat, .. } = split_answer(&answer);
        let state = parse_servers_state(state).map_err(|e| {
            DriverError::new(
                format!("{}: {e}", lb.name),
                "check the backend name in the inventory",
            )
        })?;
        let stat = parse_stat(stat).map_err(|e| {
            DriverError::new(
                format!("{}: {e}", lb.name),
                "check the admin socket's level (admin)",
            )
        })?;
        rows(&lb.name, &lb.backend, &self.servers(), &state, &stat).map_err(|e| {
            DriverError::new(
                e,
                "fix the server names in the inventory (load_balancers[].servers)",
            )
        })
    }

    /// Every `set server` in one request; HAProxy answers nothing to one that took.
    async fn apply(&self, changes: &[Change]) -> DResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let cmd = changes
            .iter()
            .map(|c| self.set_command(c))
            .collect::<Vec<_>>()
            .join("; ");
        let answer = self.request(&cmd).await?;
        if !answer.trim().is_empty() {
            return Err(DriverError::new(
                format!("{}: `{cmd}` answered: {}", self.lb.name, answer.trim()),
                "check the backend and server names in the inventory, then resume",
            ));
        }
        Ok(())
    }

    /// `show stat; set server … (each change); show servers state B`: HAProxy runs them in
    /// order, microseconds apart.
    async fn apply_between_reads(&self, changes: &[Change]) -> DResult<Around> {
        let lb = self.lb;
        let mut cmd = String::from("show stat");
        for c in changes {
            cmd.push_str("; ");
            cmd.push_str(&self.set_command(c));
        }
        cmd.push_str(&format!("; show servers state {}", lb.backend));
        let start = Instant::now();
        let answer = self.request(&cmd).await?;
        let at = chrono::Utc::now();
        let took_ms = start.elapsed().as_millis() as u64;
        let bad = |e: String| DriverError::new(format!("{}: {e}", lb.name), "");
        let parts = split_answer(&answer);
        let stat = parse_stat(parts.stat).map_err(bad)?;
        let state = parse_servers_state(parts.state).map_err(bad)?;
        let mut before = Vec::new();
        let mut held_out_after = BTreeSet::new();
        for (node, server) in self.servers() {
            if let Some(row) = stat.get(&(lb.backend.clone(), server.clone())) {
                before.push((
                    node.clone(),
                    row.status.clone(),
                    row.status.starts_with("MAINT"),
                ));
            }
            let held = state.iter().any(|s| {
                s.backend == lb.backend
                    && s.server == server
                    && admin_of(s.admin_bits) == AdminState::Maint
                    && held_of(s.admin_bits)
            });
            if held {
                held_out_after.insert(node);
            }
        }
        Ok(Around {
            at,
            took_ms,
            before,
            held_out_after,
            complaint: Some(parts.other).filter(|s| !s.is_empty()),
        })
    }

    /// Read the instance's configuration over its host's transport and parse what a reload
    /// does. Never fails: what cannot be read is reported as unknown, with the reason.
    async fn reload_facts(&self) -> ReloadFacts {
        let lb = self.lb;
        let Some(path) = &lb.config else {
            return ReloadFacts::unknown(None, "config not named in the inventory");
        };
        let shown = path.display().to_string();
        let reach = match (&lb.reach, &lb.address) {
            (Some(r), _) => r.clone(),
            // A TCP admin socket says nothing about which host holds the file.
            (None, Some(_)) => {
                return ReloadFacts::unknown(
                    Some(shown),
                    "config not readable: `address:` without `reach:` does not say which host holds it",
                );
            }
            (None, None) => Reach::Local,
        };
        let t = match self.fleet.reach(&reach_key(&reach), &reach).await {
            Ok(t) => t,
            Err(e) => {
                return ReloadFacts::unknown(
                    Some(shown.clone()),
                    format!("cannot read {shown}: {}", e.msg),
                );
            }
        };
        match t.read_file(path, lb.sudo).await {
            Ok(bytes) => {
                let mut f = reload_facts(&String::from_utf8_lossy(&bytes), &lb.backend);
                f.config = Some(shown);
                f
            }
            Err(e) => ReloadFacts::unknown(Some(shown), e.to_string()),
        }
    }
}

/// Why a request over TCP failed.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("connect {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{addr} did not answer within {secs}s")]
    Timeout { addr: String, secs: u64 },
}

/// One request line to an HAProxy admin socket over TCP (`stats socket ipv4@...`).
pub async fn tcp_request(addr: &str, cmd: &str, timeout: Duration) -> Result<String, TcpError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let run = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| TcpError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| TcpError::Timeout {
            addr: addr.to_string(),
            secs: timeout.as_secs(),
        })?
}
