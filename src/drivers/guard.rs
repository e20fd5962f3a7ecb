//! The pool guard: between cutover's own reads, it watches every node cutover took out of the
//! pool on every load-balancer instance, and puts it back in maintenance the moment one shows it
//! in the pool again. A point check before an action cannot see what happens after it: an
//! HAProxy reload without a server-state file (config management does it several times a day)
//! or another operator's `set server ... state ready` puts a drained server back within
//! milliseconds, while cutover is flipping or restarting it.
//!
//! The guard owns no rule: it only reads, reverts (in `enforce` mode) and reports. The engine
//! journals each report as a `pool_breach` and raises the hard stop. Its reads go over the
//! connections the fleet already holds; `lb.ready` takes the same lock before it sends `ready`,
//! so a revert can never land after a deliberate re-add.

use super::{DResult, DriverError, Fleet};
use crate::engine::events::Breach;
use crate::engine::facts::LbServer;
use crate::inventory::{GuardMode, LoadBalancer};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// At most this long between two reads of a guarded node (the bound is 500 ms; a read
/// of every instance takes a few ms locally and tens of ms over SSH).
pub const GUARD_INTERVAL: Duration = Duration::from_millis(200);

/// What the session and the drivers share with the guard.
#[derive(Default)]
pub struct GuardShared {
    nodes: std::sync::Mutex<BTreeSet<String>>,
    /// Orders a revert against a deliberate `ready` (see the module doc).
    pub(super) order: tokio::sync::Mutex<()>,
}

/// What the guard remembers between passes.
#[derive(Default)]
pub struct GuardMemory {
    /// (node, lb) → the last read that showed it out of the pool.
    last_out: HashMap<(String, String), DateTime<Utc>>,
    /// (node, lb) already reported and still in (alert mode, or a revert that failed).
    reported: HashSet<(String, String)>,
}

impl Fleet {
    /// The nodes to keep out of the pool (the engine's `guarded`, after every journal write).
    pub fn set_guarded(&self, nodes: &BTreeSet<String>) {
        let mut g = self.guard.nodes.lock().unwrap_or_else(|e| e.into_inner());
        if *g != *nodes {
            *g = nodes.clone();
        }
    }

    pub fn guarded(&self) -> BTreeSet<String> {
        self.guard
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One pass over every instance: every guarded node seen in a pool is reported, and set
    /// back to maint first when enforcing.
    pub async fn guard_pass(&self, mode: GuardMode, mem: &mut GuardMemory) -> Vec<Breach> {
        if self.inv.load_balancers.is_empty() || self.guarded().is_empty() {
            return vec![];
        }
        let _order = self.guard.order.lock().await;
        // Read under the lock: a node re-added since the last pass is no longer guarded.
        let nodes = self.guarded();
        let reads = futures::future::join_all(
            self.inv
                .load_balancers
                .iter()
                .map(|lb| async move { (lb, self.read_lb(lb).await, Utc::now()) }),
        )
        .await;
        let mut out = Vec::new();
        for (lb, rows, at) in reads {
            // An instance that cannot be read is the gates' to report (they fail on it).
            let Ok(rows) = rows else { continue };
            for r in rows.iter().filter(|r| nodes.contains(&r.node)) {
                let key = (r.node.clone(), lb.name.clone());
                if r.out_of_pool() {
                    mem.last_out.insert(key.clone(), at);
                    mem.reported.remove(&key);
                    continue;
                }
                if mem.reported.contains(&key) {
                    continue;
                }
                let (reverted_ms, error) = match mode {
                    GuardMode::Enforce => match self.revert(lb, r).await {
                        Ok(ms) => (Some(ms), None),
                        Err(e) => (None, Some(e.msg)),
                    },
                    GuardMode::Alert => (None, None),
                };
                if reverted_ms.is_some() {
                    mem.last_out.insert(key.clone(), Utc::now());
                } else {
                    mem.reported.insert(key.clone());
                }
                out.push(Breach {
                    node: r.node.clone(),
                    lb: lb.name.clone(),
                    seen: r.seen(),
                    at,
                    last_out_at: mem.last_out.get(&key).copied().filter(|t| *t <= at),
                    reverted_ms,
                    source: "guard".into(),
                    cause: None,
                    error,
                });
            }
        }
        out
    }

    /// Set the server back to maint on this instance and read it back: ms until it shows it.
    async fn revert(&self, lb: &LoadBalancer, row: &LbServer) -> DResult<u64> {
        let start = Instant::now();
        self.set_on(lb, &row.node, "maint").await?;
        let rows = self.read_lb(lb).await?;
        if rows.iter().any(|r| r.node == row.node && r.out_of_pool()) {
            Ok(start.elapsed().as_millis() as u64)
        } else {
            Err(DriverError::new(
                format!(
                    "{}: {} still not in maint after `set server ... state maint`",
                    lb.name, row.node
                ),
                "set it to maint by hand on that instance",
            ))
        }
    }
}

/// Run the guard until the returned handle is dropped or aborted: a pass every
/// `GUARD_INTERVAL`, each breach sent to the session.
pub fn spawn(
    fleet: Arc<Fleet>,
    mode: GuardMode,
    tx: mpsc::UnboundedSender<Breach>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut mem = GuardMemory::default();
        let mut tick = tokio::time::interval(GUARD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for b in fleet.guard_pass(mode, &mut mem).await {
                if tx.send(b).is_err() {
                    return;
                }
            }
        }
    })
}
