//! Load balancers: the `LoadBalancer` seam, and what cutover does with it — drain a node, hold
//! it out, re-add it once a health check passed — written against the trait, not against one
//! product. HAProxy's runtime API (`haproxy`) is the first implementation; the demo world's
//! stand-in speaks the same API and is reached through it. The pool guard (`guard`) watches
//! through the same trait.
//!
//! State is always read back from every instance, never assumed: a reload without a
//! server-state file silently undoes a drain.

mod fleet;
pub mod guard;
pub mod haproxy;
mod swap;

use super::{DResult, Done, DriverError};
use crate::engine::facts::*;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

/// One change of one node's server on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub node: String,
    pub to: AdminState,
}

impl Change {
    pub fn new(node: &str, to: AdminState) -> Change {
        Change {
            node: node.to_string(),
            to,
        }
    }
}

/// What one instance showed around a batch of changes applied in the same request.
#[derive(Debug, Clone)]
pub struct Around {
    /// When the answer came.
    pub at: DateTime<Utc>,
    /// How long the request took.
    pub took_ms: u64,
    /// Before the batch, per node the instance knows: (node, status text, shown out of the
    /// pool).
    pub before: Vec<(String, String, bool)>,
    /// After the batch: the nodes held out of the pool (see `LbServer::out_of_pool`).
    pub held_out_after: BTreeSet<String>,
    /// What the instance said about a change it did not take.
    pub complaint: Option<String>,
}

/// One load-balancer instance: what cutover reads and changes on it.
pub trait LoadBalancer: Send + Sync {
    /// The instance's name in the inventory.
    fn name(&self) -> &str;

    /// A row for every node of the inventory (admin state, health, sessions, status text),
    /// read in one request.
    fn read(&self) -> impl Future<Output = DResult<Vec<LbServer>>> + Send;

    /// Apply several changes in ONE request, in order (a halves swap: "A ready + B drain").
    fn apply(&self, changes: &[Change]) -> impl Future<Output = DResult<()>> + Send;

    /// Set one node's server.
    fn set(&self, node: &str, to: AdminState) -> impl Future<Output = DResult<()>> + Send {
        async move { self.apply(&[Change::new(node, to)]).await }
    }

    /// Read, apply the changes, read again, in one request (the pool guard's pass: detection
    /// and revert in one round trip).
    fn apply_between_reads(
        &self,
        changes: &[Change],
    ) -> impl Future<Output = DResult<Around>> + Send;

    /// How the instance would come through a reload. Never fails: what cannot be read is
    /// unknown, with the reason.
    fn reload_facts(&self) -> impl Future<Output = ReloadFacts> + Send;
}

/// Read every instance: rows for every node, and the instances that failed.
pub async fn read_all<L: LoadBalancer>(lbs: &[L]) -> (Vec<LbServer>, Vec<String>) {
    // A reloading HAProxy hands its admin socket to the new process: a read in that gap is
    // refused for some milliseconds. Retried briefly, so a reload is not mistaken for a
    // dead load balancer (the pool guard and the gates then see what the reload did).
    let results = futures::future::join_all(lbs.iter().map(|lb| async move {
        let mut tries = 0;
        loop {
            match lb.read().await {
                Err(_) if tries < 3 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                other => return other,
            }
        }
    }))
    .await;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(mut v) => rows.append(&mut v),
            Err(e) => errors.push(e.msg),
        }
    }
    (rows, errors)
}

/// Set the node's server state on every instance, in inventory order. A failure names the
/// instances already changed, so the operator knows where the node stands.
async fn set_everywhere<L: LoadBalancer>(lbs: &[L], node: &str, to: AdminState) -> DResult<()> {
    let mut done: Vec<&str> = Vec::new();
    for lb in lbs {
        if let Err(mut e) = lb.set(node, to).await {
            if !done.is_empty() {
                e.msg.push_str(&format!(
                    " ({node} is already `{}` on {})",
                    to.as_str(),
                    done.join(", ")
                ));
            }
            return Err(e);
        }
        done.push(lb.name());
    }
    Ok(())
}

/// The last read, its errors, and per round the instances set (with what they showed).
type Held = (Vec<LbServer>, Vec<String>, Vec<Vec<String>>);

/// Read every instance and set `maint` wherever the node is not held out, until the read
/// shows it out everywhere (a reload or another operator can undo it between the command and
/// the read: a few rounds).
async fn maint_until_it_holds<L: LoadBalancer>(lbs: &[L], node: &str) -> DResult<Held> {
    let mut rounds: Vec<Vec<String>> = Vec::new();
    loop {
        let (rows, errors) = read_all(lbs).await;
        let undone: Vec<(&L, &LbServer)> = lbs
            .iter()
            .filter_map(|lb| {
                rows.iter()
                    .find(|r| r.lb == lb.name() && r.node == node && !r.out_of_pool())
                    .map(|r| (lb, r))
            })
            .collect();
        if undone.is_empty() || !errors.is_empty() || rounds.len() == 4 {
            return Ok((rows, errors, rounds));
        }
        let mut set = Vec::new();
        for (lb, r) in undone {
            lb.set(node, AdminState::Maint).await?;
            set.push(format!("{} (was {})", lb.name(), r.seen()));
        }
        rounds.push(set);
    }
}

fn lb_observation(rows: &[LbServer], errors: &[String]) -> Observation {
    Observation {
        lb: Some(rows.to_vec()),
        lb_errors: errors.to_vec(),
        lb_read_at: Some(chrono::Utc::now()),
        ..Default::default()
    }
}

/// A pool breach repaired: maint wherever the node is not held out, read back.
pub async fn maint<L: LoadBalancer>(lbs: &[L], node: &str) -> DResult<Done> {
    let start = Instant::now();
    let (rows, errors, rounds) = maint_until_it_holds(lbs, node).await?;
    let obs = lb_observation(&rows, &errors);
    let still: Vec<String> = rows
        .iter()
        .filter(|r| r.node == node && !r.out_of_pool())
        .map(|r| format!("{} {}", r.lb, r.seen()))
        .chain(errors)
        .collect();
    if !still.is_empty() {
        return Ok(Done::fail(
            format!("{node} is still in the pool: {}", still.join(", ")),
            format!("set {node} to maint by hand on those instances (set server BACKEND/SERVER state maint), then resume"),
        )
        .with(obs));
    }
    Ok(Done::ok(
        match rounds.first() {
            None => format!("{node} is in maint on every load balancer"),
            Some(set) => format!(
                "{node} set back to maint on {} in {} ms{}",
                set.join(", "),
                start.elapsed().as_millis(),
                if rounds.len() > 1 {
                    format!(" (undone again meanwhile: {} rounds)", rounds.len())
                } else {
                    String::new()
                }
            ),
        },
        obs,
    ))
}

/// Drain: `drain` everywhere, wait (up to `timeout_secs`) for the node's sessions to reach 0,
/// then `maint` everywhere, held until a read shows it out on every instance.
pub async fn drain<L: LoadBalancer>(lbs: &[L], node: &str, timeout_secs: u64) -> DResult<Done> {
    if lbs.is_empty() {
        return Ok(Done::ok(
            "no load balancers in the inventory",
            Observation::default(),
        ));
    }
    set_everywhere(lbs, node, AdminState::Drain).await?;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let mut forced = false;
    loop {
        let (rows, errors) = read_all(lbs).await;
        if !errors.is_empty() {
            return Err(DriverError::new(
                errors.join("; "),
                "check the admin sockets, then resume",
            ));
        }
        let sessions: u64 = rows
            .iter()
            .filter(|r| r.node == node)
            .map(|r| r.sessions)
            .sum();
        if sessions == 0 {
            break;
        }
        if Instant::now() >= deadline {
            forced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    set_everywhere(lbs, node, AdminState::Maint).await?;
    // The guard only watches once the drain is done: the drain holds until the read shows
    // maint everywhere.
    let (rows, errors, rounds) = maint_until_it_holds(lbs, node).await?;
    let retries = rounds.len();
    let mine: Vec<&LbServer> = rows.iter().filter(|r| r.node == node).collect();
    let obs = lb_observation(&rows, &errors);
    if !errors.is_empty() || mine.iter().any(|r| !r.out_of_pool()) {
        return Ok(Done::fail(
            format!(
                "{node}: maint did not take on every instance: {}",
                mine.iter()
                    .map(|r| format!("{} {}", r.lb, r.status))
                    .chain(errors)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "check each HAProxy instance (show servers state), then resume",
        )
        .with(obs));
    }
    Ok(Done::ok(
        format!(
            "{node} in maint on {} load balancer(s){}{}",
            mine.len(),
            if retries > 0 {
                format!(" (maint undone on an instance meanwhile, set again {retries}×)")
            } else {
                String::new()
            },
            if forced {
                format!(" (sessions did not reach 0 within {timeout_secs}s; forced)")
            } else {
                ", sessions drained to 0".into()
            }
        ),
        obs,
    ))
}

/// Re-add: `ready` on every instance (after any guard revert in progress: `order`, the
/// guard's lock), then wait until a health check passed on every one. HAProxy's `UP 1/3`
/// right after the command is "no check has run yet", not proof: the row must be `Up` at full
/// health (or without health checks).
pub async fn ready<L: LoadBalancer>(
    lbs: &[L],
    node: &str,
    timeout_secs: u64,
    order: &tokio::sync::Mutex<()>,
) -> DResult<Done> {
    if lbs.is_empty() {
        return Ok(Done::ok(
            "no load balancers in the inventory",
            Observation::default(),
        ));
    }
    {
        let _order = order.lock().await;
        set_everywhere(lbs, node, AdminState::Ready).await?;
    }
    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(timeout_secs);
    let mut first_seen: Option<String> = None;
    loop {
        let (rows, errors) = read_all(lbs).await;
        let mine: Vec<&LbServer> = rows.iter().filter(|r| r.node == node).collect();
        if first_seen.is_none() && !mine.is_empty() {
            first_seen = Some(
                mine.iter()
                    .map(|r| format!("{} {}", r.lb, r.status))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        let all_up = errors.is_empty() && !mine.is_empty() && mine.iter().all(|r| r.checked_up());
        if all_up || Instant::now() >= deadline {
            let summary = mine
                .iter()
                .map(|r| format!("{} {}", r.lb, r.status))
                .collect::<Vec<_>>()
                .join(", ");
            let obs = lb_observation(&rows, &errors);
            let waited = sent.elapsed().as_millis();
            return Ok(if all_up {
                Done::ok(
                    format!(
                        "{node} ready, health-checked UP after {waited} ms: {summary} (right after `ready`: {})",
                        first_seen.unwrap_or_default()
                    ),
                    obs,
                )
            } else {
                Done::fail(
                    format!(
                        "{node} has no passed health check everywhere after {timeout_secs}s: {summary}{}",
                        if errors.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", errors.join("; "))
                        }
                    ),
                    format!("{node}'s health check fails on some instance: check GET /v3 on it and its keystone log. It may already take traffic on the instances that show it UP; to take it out, set it to maint by hand (set server BACKEND/SERVER state maint) on every instance, then resume"),
                )
                .with(obs)
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// How often a re-add reads the load balancers until the node's health check passed: the
/// next node's drain waits for that read, and each read is one admin-socket request per
/// instance (1-3 ms), so it is read often.
const READY_POLL: Duration = Duration::from_millis(25);
