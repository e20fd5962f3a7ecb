//! Probes: what every node, load balancer and direct token shows right now.

use super::{DResult, Done, DriverError, Fleet, keys};
use crate::drivers::keystone::api;
use crate::drivers::keystone::conf;
use crate::engine::facts::*;
use crate::inventory::Reach;
use crate::transport::shell_quote;
use std::path::Path;
use std::time::Duration;

impl Fleet {
    /// Read nodes, load balancers and direct tokens, concurrently. A node with an unknown SSH
    /// host key makes this an error (the run turns it into hard stop `unknown-host-key`);
    /// every other unreachable node is a fact (`NodeFacts::unreachable`), for the gates.
    pub async fn probe(&self, nodes: &[String], lb: bool, tokens: &[String]) -> DResult<Done> {
        let (done, unknown_host) = self.observe(nodes, lb, tokens).await;
        // An unknown host key must reach the operator as a hard stop, not as a fact.
        match unknown_host {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// What `probe` reads, never failing as a whole: each node that cannot be reached is
    /// reported as unreachable (with why, where and what to do), and its Keystone is still
    /// asked over HTTP. Also returns the unknown-host-key error of the first such node (in the
    /// order given), for `probe` to raise.
    pub async fn observe(
        &self,
        nodes: &[String],
        lb: bool,
        tokens: &[String],
    ) -> (Done, Option<DriverError>) {
        let facts = futures::future::join_all(nodes.iter().map(|n| async move {
            match self.node_facts(n).await {
                Ok(f) => (n.clone(), f, None),
                Err(e) => {
                    let (f, unknown) = self.facts_after_error(n, e).await;
                    (n.clone(), f, unknown)
                }
            }
        }));
        let lbs = async {
            if lb {
                let read = self.read_lbs().await;
                Some((read, chrono::Utc::now()))
            } else {
                None
            }
        };
        let toks = futures::future::join_all(
            tokens
                .iter()
                .map(|n| async move { (n.clone(), self.token_check(n).await) }),
        );
        // How each instance would come through a reload: read by full probes only (the load
        // balancers and nodes: preflight, verify), not by the lean pool reads before each
        // guarded action, and concurrently with the rest, so it never delays a pool read.
        let reload = async {
            if lb && !nodes.is_empty() {
                self.read_reload_facts().await
            } else {
                Default::default()
            }
        };
        let (facts, lbs, toks, reload) = tokio::join!(facts, lbs, toks, reload);
        let mut obs = Observation {
            lb_reload: reload,
            ..Default::default()
        };
        let mut unknown_host: Option<DriverError> = None;
        for (n, f, unknown) in facts {
            obs.nodes.insert(n, f);
            if unknown_host.is_none() {
                unknown_host = unknown;
            }
        }
        if let Some(((rows, errors), at)) = lbs {
            obs.lb = Some(rows);
            obs.lb_errors = errors;
            obs.lb_read_at = Some(at);
        }
        for (n, t) in toks {
            obs.tokens.insert(n, t);
        }
        let errors: Vec<String> = obs
            .nodes
            .iter()
            .filter_map(|(n, f)| f.error.as_ref().map(|e| format!("{n}: {e}")))
            .collect();
        let mut parts = Vec::new();
        if !nodes.is_empty() {
            parts.push(format!("{} nodes read", nodes.len() - errors.len()));
        }
        if let Some(rows) = &obs.lb {
            parts.push(format!("{} lb rows", rows.len()));
        }
        parts.extend(reload_summary(&obs.lb_reload));
        if !tokens.is_empty() {
            parts.push(format!(
                "tokens: {}",
                obs.tokens
                    .iter()
                    .map(|(n, t)| format!("{n} {}", t.format.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !errors.is_empty() || !obs.lb_errors.is_empty() {
            parts.push(format!(
                "problems: {}",
                errors
                    .iter()
                    .chain(obs.lb_errors.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        (Done::ok(parts.join("; "), obs), unknown_host)
    }

    /// A node's facts when reading it failed: unreachable (and why) when the failure was
    /// reaching it, else the error; its Keystone is asked over HTTP either way, so a node that
    /// cannot be read is never shown as a service that is down. The error comes back when it
    /// is an unknown host key.
    pub(in crate::drivers) async fn facts_after_error(
        &self,
        name: &str,
        e: DriverError,
    ) -> (NodeFacts, Option<DriverError>) {
        let Ok(n) = self.node(name) else {
            return (
                NodeFacts {
                    error: Some(e.msg),
                    ..Default::default()
                },
                None,
            );
        };
        let reach = e.transport.as_deref().and_then(|t| self.unreachable(n, t));
        let unknown = reach
            .as_ref()
            .is_some_and(|u| u.kind == ReachFailure::HostKeyUnknown);
        let mut f = match reach {
            Some(u) => NodeFacts::unreachable(u),
            None => NodeFacts {
                error: Some(e.msg.clone()),
                ..Default::default()
            },
        };
        let svc = api::service_check(&self.http, &n.keystone_url).await;
        f.service_up = svc.up;
        f.service_status = svc.status;
        f.service_detail = svc.detail;
        (f, unknown.then_some(e))
    }

    pub async fn node_facts(&self, name: &str) -> DResult<NodeFacts> {
        let n = self.node(name)?;
        let conf_path = n.keystone_conf.display().to_string();
        let out = self
            .exec(
                name,
                &format!("cat -- {}", shell_quote(&conf_path)),
                Duration::from_secs(20),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{name}: cannot read {conf_path}: {}", out.last_line()),
                format!(
                    "check keystone_conf for {name} in the inventory (and sudo: true if it needs root)"
                ),
            ));
        }
        let conf = out.stdout_str();
        let s = conf::token_settings(&conf);
        let path_or = |o: &Option<std::path::PathBuf>, d: &str| {
            o.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| d.to_string())
        };
        let fernet = path_or(&n.fernet_repo, &s.fernet_repo);
        let private = path_or(&n.jws_private_repo, &s.jws_private_repo);
        let public = path_or(&n.jws_public_repo, &s.jws_public_repo);
        let script = api::facts_script(&fernet, &private, &public);
        let svc = api::service_check(&self.http, &n.keystone_url).await;
        let out = self.exec(name, &script, Duration::from_secs(30)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{name}: reading key repositories failed: {}",
                    out.last_line()
                ),
                "check permissions on the key repositories (sudo: true in the inventory if needed)",
            ));
        }
        let mut f = api::parse_facts(&out.stdout_str(), &fernet, &private, &public);
        if f.jws.no_openssl && f.jws.private_present {
            f.jws.private_fingerprint = self
                .private_fingerprint_without_openssl(name, &private)
                .await;
        }
        f.provider = Some(s.provider);
        f.expiration = s.expiration;
        f.allow_expired_window = s.allow_expired_window;
        f.receipts_repo = s.receipts_repo;
        f.service_up = svc.up;
        f.service_status = svc.status;
        f.service_detail = svc.detail;
        Ok(f)
    }

    /// Without `openssl` on the node, private.pem's public half can only be derived by reading
    /// the key. That is done only on this machine (the local transport), where nothing travels;
    /// over SSH the key stays on its node and the gate says what to install.
    pub(in crate::drivers) async fn private_fingerprint_without_openssl(
        &self,
        node: &str,
        private_repo: &str,
    ) -> Option<String> {
        let n = self.node(node).ok()?;
        if !matches!(n.reach, Reach::Local) {
            return None;
        }
        let t = self.node_transport(node).await.ok()?;
        let bytes = keys::Secret::from(
            t.read_file(&Path::new(private_repo).join("private.pem"), n.sudo)
                .await
                .ok()?,
        );
        keys::private_fingerprint(std::str::from_utf8(&bytes.0).ok()?).ok()
    }
}

/// The probe every `probe` subcommand and resume uses: every node, every LB, every direct token.
/// A node that cannot be reached (an unknown or changed host key included) is in the
/// observation as unreachable, with where and why; the others are read as usual.
pub async fn full_probe(fleet: &Fleet, tokens: bool) -> DResult<Observation> {
    let nodes = fleet.inv.node_names();
    let toks = if tokens { nodes.clone() } else { vec![] };
    let lb = !fleet.inv.load_balancers.is_empty();
    Ok(fleet.observe(&nodes, lb, &toks).await.0.observed)
}
        f.cache = Some(conf::cache_settings(&conf));
