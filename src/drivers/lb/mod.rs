//! Load balancers.

pub mod guard;
pub mod haproxy;

use super::{DResult, Done, DriverError, Fleet, reach_key};
use crate::drivers::keystone::api as keystone;
use crate::engine::facts::*;
use crate::inventory::{LoadBalancer, Reach};
use std::time::{Duration, Instant};

impl Fleet {
    /// Read every load-balancer instance: rows for every node, and the instances that failed.
    pub async fn read_lbs(&self) -> (Vec<LbServer>, Vec<String>) {
        // A reloading HAProxy hands its admin socket to the new process: a read in that gap is
        // refused for some milliseconds. Retried briefly, so a reload is not mistaken for a
        // dead load balancer (the pool guard and the gates then see what the reload did).
        let results = futures::future::join_all(self.inv.load_balancers.iter().map(|lb| async {
            let mut tries = 0;
            loop {
                match self.read_lb(lb).await {
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

    /// How every instance would come through a reload, read from its configuration file.
    pub async fn read_reload_facts(&self) -> std::collections::BTreeMap<String, ReloadFacts> {
        futures::future::join_all(
            self.inv
                .load_balancers
                .iter()
                .map(|lb| async { (lb.name.clone(), self.lb_reload_facts(lb).await) }),
        )
        .await
        .into_iter()
        .collect()
    }

    /// Read one instance's configuration over its host's transport and parse what a reload
    /// does. Never fails: what cannot be read is reported as unknown, with the reason.
    pub(in crate::drivers) async fn lb_reload_facts(&self, lb: &LoadBalancer) -> ReloadFacts {
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
        let t = match self.reach(&reach_key(&reach), &reach).await {
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
                let mut f = haproxy::reload_facts(&String::from_utf8_lossy(&bytes), &lb.backend);
                f.config = Some(shown);
                f
            }
            Err(e) => ReloadFacts::unknown(Some(shown), e.to_string()),
        }
    }

    pub(in crate::drivers) fn lb_servers(&self, lb: &LoadBalancer) -> Vec<(String, String)> {
        self.inv
            .nodes
            .iter()
            .map(|n| (n.name.clone(), lb.server_for(&n.name)))
            .collect()
    }

    pub async fn lb_request(&self, lb: &LoadBalancer, cmd: &str) -> DResult<String> {
        let timeout = Duration::from_secs(10);
        let answer = if let Some(addr) = &lb.address {
            keystone::tcp_request(addr, cmd, timeout)
                .await
                .map_err(|e| DriverError::new(format!("{}: {e}", lb.name), format!("check that {addr} is HAProxy's admin socket (stats socket ... level admin)")))?
        } else {
            let reach = lb.reach.clone().unwrap_or(Reach::Local);
            let t = self.reach(&reach_key(&reach), &reach).await?;
            let socket = lb.socket.clone().unwrap_or_default();
            t.socket_request(&socket, cmd, lb.sudo, timeout).await.map_err(|e| {
                let mut d = DriverError::from(e);
                d.msg = format!("{}: {}", lb.name, d.msg);
                d.next = format!(
                    "check that {} exists and is HAProxy's admin socket (stats socket ... level admin){}",
                    socket.display(),
                    if lb.sudo { "" } else { "; set sudo: true if it needs root" }
                );
                d
            })?
        };
        Ok(answer)
    }

    /// One instance's rows, in one round trip: the runtime API runs `;`-separated commands in
    /// order on one connection (over SSH, one `socat` instead of two).
    pub(in crate::drivers) async fn read_lb(&self, lb: &LoadBalancer) -> DResult<Vec<LbServer>> {
        let answer = self
            .lb_request(lb, &format!("show servers state {}; show stat", lb.backend))
            .await?;
        let haproxy::Answer { state, stat, .. } = haproxy::split_answer(&answer);
        let state = haproxy::parse_servers_state(state).map_err(|e| {
            DriverError::new(
                format!("{}: {e}", lb.name),
                "check the backend name in the inventory",
            )
        })?;
        let stat = haproxy::parse_stat(stat).map_err(|e| {
            DriverError::new(
                format!("{}: {e}", lb.name),
                "check the admin socket's level (admin)",
            )
        })?;
        haproxy::rows(&lb.name, &lb.backend, &self.lb_servers(lb), &state, &stat).map_err(|e| {
            DriverError::new(
                e,
                "fix the server names in the inventory (load_balancers[].servers)",
            )
        })
    }

    /// Set the node's server state on one instance; HAProxy answers nothing when it took.
    pub(in crate::drivers) async fn set_on(
        &self,
        lb: &LoadBalancer,
        node: &str,
        state: &str,
    ) -> DResult<()> {
        let server = lb.server_for(node);
        let answer = self
            .lb_request(lb, &haproxy::set_state(&lb.backend, &server, state))
            .await?;
        if !answer.trim().is_empty() {
            return Err(DriverError::new(
                format!(
                    "{}: `set server {}/{server} state {state}` answered: {}",
                    lb.name,
                    lb.backend,
                    answer.trim()
                ),
                "check the backend and server names in the inventory, then resume",
            ));
        }
        Ok(())
    }

    /// Set the node's server state on every instance, in inventory order. A failure names the
    /// instances already changed, so the operator knows where the node stands.
    pub(in crate::drivers) async fn set_lb_state(&self, node: &str, state: &str) -> DResult<()> {
        let mut done: Vec<&str> = Vec::new();
        for lb in &self.inv.load_balancers {
            if let Err(mut e) = self.set_on(lb, node, state).await {
                if !done.is_empty() {
                    e.msg.push_str(&format!(
                        " ({node} is already `{state}` on {})",
                        done.join(", ")
                    ));
                }
                return Err(e);
            }
            done.push(&lb.name);
        }
        Ok(())
    }

    /// Read every instance and set `maint` wherever the node is not in forced maint, until the
    /// read shows it out everywhere (a reload or another operator can undo it between the
    /// command and the read: a few rounds). Returns the last read, and per round the instances
    /// it had to set (with what they showed).
    pub(in crate::drivers) async fn maint_until_it_holds(
        &self,
        node: &str,
    ) -> DResult<(Vec<LbServer>, Vec<String>, Vec<Vec<String>>)> {
        let mut rounds: Vec<Vec<String>> = Vec::new();
        loop {
            let (rows, errors) = self.read_lbs().await;
            let undone: Vec<(&LoadBalancer, &LbServer)> = self
                .inv
                .load_balancers
                .iter()
                .filter_map(|lb| {
                    rows.iter()
                        .find(|r| r.lb == lb.name && r.node == node && !r.out_of_pool())
                        .map(|r| (lb, r))
                })
                .collect();
            if undone.is_empty() || !errors.is_empty() || rounds.len() == 4 {
                return Ok((rows, errors, rounds));
            }
            let mut set = Vec::new();
            for (lb, r) in undone {
                self.set_on(lb, node, "maint").await?;
                set.push(format!("{} (was {})", lb.name, r.seen()));
            }
            rounds.push(set);
        }
    }

    /// A pool breach repaired: maint wherever the node is not in maint, read back.
    pub(in crate::drivers) async fn lb_maint(&self, node: &str) -> DResult<Done> {
        let start = Instant::now();
        let (rows, errors, rounds) = self.maint_until_it_holds(node).await?;
        let obs = Observation {
            lb: Some(rows.clone()),
            lb_errors: errors.clone(),
            lb_read_at: Some(chrono::Utc::now()),
            ..Default::default()
        };
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

    pub(in crate::drivers) async fn lb_drain(
        &self,
        node: &str,
        timeout_secs: u64,
    ) -> DResult<Done> {
        if self.inv.load_balancers.is_empty() {
            return Ok(Done::ok(
                "no load balancers in the inventory",
                Observation::default(),
            ));
        }
        self.set_lb_state(node, "drain").await?;
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        let mut forced = false;
        loop {
            let (rows, errors) = self.read_lbs().await;
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
        self.set_lb_state(node, "maint").await?;
        // The guard only watches once the drain is done: the drain holds until the read shows
        // maint everywhere.
        let (rows, errors, rounds) = self.maint_until_it_holds(node).await?;
        let retries = rounds.len();
        let mine: Vec<&LbServer> = rows.iter().filter(|r| r.node == node).collect();
        let obs = Observation {
            lb: Some(rows.clone()),
            lb_errors: errors.clone(),
            lb_read_at: Some(chrono::Utc::now()),
            ..Default::default()
        };
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

    /// Re-add: `ready` on every instance (after any guard revert in progress: the guard's lock),
    /// then wait until a health check passed on every one. `UP 1/3` right after the command is
    /// HAProxy's "no check has run yet", not proof: it must read `UP 2/3` or `UP` (or `no check`
    /// for a server without health checks).
    pub(in crate::drivers) async fn lb_ready(
        &self,
        node: &str,
        timeout_secs: u64,
    ) -> DResult<Done> {
        if self.inv.load_balancers.is_empty() {
            return Ok(Done::ok(
                "no load balancers in the inventory",
                Observation::default(),
            ));
        }
        {
            let _order = self.guard.order.lock().await;
            self.set_lb_state(node, "ready").await?;
        }
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs(timeout_secs);
        let mut first_seen: Option<String> = None;
        loop {
            let (rows, errors) = self.read_lbs().await;
            let mine: Vec<&LbServer> = rows.iter().filter(|r| r.node == node).collect();
            if first_seen.is_none() && !mine.is_empty() {
                first_seen = Some(
                    mine.iter()
                        .map(|r| format!("{} {}", r.lb, r.status))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            let all_up =
                errors.is_empty() && !mine.is_empty() && mine.iter().all(|r| r.checked_up());
            if all_up || Instant::now() >= deadline {
                let summary = mine
                    .iter()
                    .map(|r| format!("{} {}", r.lb, r.status))
                    .collect::<Vec<_>>()
                    .join(", ");
                let obs = Observation {
                    lb: Some(rows.clone()),
                    lb_errors: errors.clone(),
                    lb_read_at: Some(chrono::Utc::now()),
                    ..Default::default()
                };
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
                        format!("{node} has no passed health check everywhere after {timeout_secs}s: {summary}{}", if errors.is_empty() { String::new() } else { format!("; {}", errors.join("; ")) }),
                        format!("{node}'s health check fails on some instance: check GET /v3 on it and its keystone log. It may already take traffic on the instances that show it UP; to take it out, set it to maint by hand (set server BACKEND/SERVER state maint) on every instance, then resume"),
                    )
                    .with(obs)
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
