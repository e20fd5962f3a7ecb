//! What is neither a node's service nor its keys nor a load balancer: probes (and the probe that
//! waits for a re-added node's passed health check), a wait, accepting a host key.

use super::{DResult, Done, DriverError, Fleet};
use crate::engine::action::Misc;
use crate::engine::facts::*;
use std::path::Path;
use std::time::{Duration, Instant};

impl Fleet {
    pub(in crate::drivers) async fn run_misc(&self, spec: &Misc) -> DResult<Done> {
        match spec {
            Misc::Probe {
                nodes,
                lb,
                tokens,
                providers,
                kept,
                until_up: Some(node),
            } => {
                let deadline =
                    Instant::now() + Duration::from_secs(crate::engine::action::UNTIL_UP_SECS);
                loop {
                    let done = self.probe(nodes, *lb, tokens, providers, *kept).await?;
                    let up = done.observed.lb.as_ref().is_some_and(|rows| {
                        let mine: Vec<&LbServer> =
                            rows.iter().filter(|r| &r.node == node).collect();
                        !mine.is_empty() && mine.iter().all(|r| r.checked_up())
                    });
                    if up || !done.observed.lb_errors.is_empty() || Instant::now() >= deadline {
                        return Ok(done);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Misc::Probe {
                nodes,
                lb,
                tokens,
                providers,
                kept,
                ..
            } => self.probe(nodes, *lb, tokens, providers, *kept).await,
            Misc::Wait { secs } => {
                tokio::time::sleep(Duration::from_secs(*secs)).await;
                Ok(Done::ok(format!("waited {secs}s"), Observation::default()))
            }
            Misc::AcceptHostKey {
                host,
                port,
                key_openssh,
                known_hosts,
            } => {
                crate::transport::ssh::accept_host_key(
                    Path::new(known_hosts),
                    host,
                    *port,
                    key_openssh,
                )
                .map_err(|e| {
                    DriverError::new(
                        format!("cannot append to {known_hosts}: {e}"),
                        "check the file's permissions",
                    )
                })?;
                // Forget any failed connection so the next use reconnects with the new key.
                self.conns.lock().expect("connection map").clear();
                Ok(Done::ok(
                    format!("added {host}:{port} to {known_hosts}"),
                    Observation::default(),
                ))
            }
        }
    }
}
