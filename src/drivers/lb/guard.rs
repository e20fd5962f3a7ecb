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

use super::{Change, LoadBalancer};
use crate::drivers::{DResult, Fleet};
use crate::engine::events::Breach;
use crate::engine::facts::AdminState;
use crate::inventory::GuardMode;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
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
    ///
    /// Enforcing, a pass is ONE request per instance: `show stat; set server B/S state maint
    /// (each guarded node); show servers state B`. HAProxy runs them in order, microseconds
    /// apart: the first shows whether a node was back in, the sets put it out again (a no-op
    /// for a node still in maint), the last proves it. Detection and revert cost one round
    /// trip, which over SSH on a busy host is what takes time. Every pass opens a new
    /// connection on purpose: a CLI session kept open would talk to the process from before a
    /// reload, which still shows MAINT.
    pub async fn guard_pass(&self, mode: GuardMode, mem: &mut GuardMemory) -> Vec<Breach> {
        if self.inv.load_balancers.is_empty() || self.guarded().is_empty() {
            return vec![];
        }
        let _order = self.guard.order.lock().await;
        // Read under the lock: a node re-added since the last pass is no longer guarded.
        let nodes = self.guarded();
        let lbs = self.load_balancers();
        let passes =
            futures::future::join_all(lbs.iter().map(|lb| self.guard_instance(lb, &nodes, mode)))
                .await;
        let mut out = Vec::new();
        for (lb, pass) in lbs.iter().zip(passes) {
            // An instance that cannot be read is the gates' to report (they fail on it).
            let Ok(pass) = pass else { continue };
            for (node, seen, now_out) in pass.nodes {
                let key = (node.clone(), lb.name().to_string());
                let Some(seen) = seen else {
                    mem.last_out.insert(key.clone(), pass.at);
                    mem.reported.remove(&key);
                    continue;
                };
                let already = mem.reported.contains(&key);
                let reverted_ms = (mode == GuardMode::Enforce && now_out).then_some(pass.took_ms);
                let error = (mode == GuardMode::Enforce && !now_out).then(|| {
                    pass.complaint.clone().unwrap_or_else(|| {
                        format!("{node} still not in maint after `set server ... state maint`")
                    })
                });
                let last_out_at = mem.last_out.get(&key).copied().filter(|t| *t <= pass.at);
                if reverted_ms.is_some() {
                    mem.last_out.insert(key.clone(), Utc::now());
                    mem.reported.remove(&key);
                } else {
                    // Alert, or a revert that did not take: reported once until it is out.
                    mem.reported.insert(key.clone());
                    if already {
                        continue;
                    }
                }
                out.push(Breach {
                    node,
                    lb: lb.name().to_string(),
                    seen,
                    at: pass.at,
                    last_out_at,
                    reverted_ms,
                    source: "guard".into(),
                    cause: None,
                    error,
                });
            }
        }
        out
    }

    /// One instance, one request (see `guard_pass`).
    async fn guard_instance<L: LoadBalancer>(
        &self,
        lb: &L,
        nodes: &BTreeSet<String>,
        mode: GuardMode,
    ) -> DResult<InstancePass> {
        let changes: Vec<Change> = if mode == GuardMode::Enforce {
            nodes
                .iter()
                .map(|n| Change::new(n, AdminState::Maint))
                .collect()
        } else {
            vec![]
        };
        let around = lb.apply_between_reads(&changes).await?;
        let out = around
            .before
            .iter()
            .filter(|(n, ..)| nodes.contains(n))
            .map(|(n, status, shown_out)| {
                (
                    n.clone(),
                    (!shown_out).then(|| status.clone()),
                    around.held_out_after.contains(n),
                )
            })
            .collect();
        Ok(InstancePass {
            at: around.at,
            took_ms: around.took_ms,
            complaint: around.complaint,
            nodes: out,
        })
    }
}

/// What one request to one instance showed: per guarded node, what the instance showed if it
/// was back in the pool, and whether it is in forced maint after the pass.
struct InstancePass {
    at: DateTime<Utc>,
    took_ms: u64,
    complaint: Option<String>,
    nodes: Vec<(String, Option<String>, bool)>,
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
