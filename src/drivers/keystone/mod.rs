//! Keystone: its configuration and its API (tokens, validation, trusts).

pub mod api;
pub mod conf;
pub mod known;

use super::{DResult, Done, DriverError, Fleet};
use crate::engine::action::Keystone;
use crate::engine::facts::*;
use crate::inventory::credentials::Scope;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Whether Keystone refused an unscoped token read where a project token may pass: the issue
/// refused as a bad request or forbidden, or the validation forbidden. (401 on the issue is
/// the credentials themselves, the same for both scopes.)
fn refuses_unscoped(t: &TokenCheck) -> bool {
    t.unscoped && (matches!(t.issue_status, 400 | 403) || t.validate_status == Some(403))
}

impl Fleet {
    pub(in crate::drivers) async fn run_keystone(&self, spec: &Keystone) -> DResult<Done> {
        match spec {
            Keystone::SetProvider { node, provider } => self.set_provider(node, provider).await,
            Keystone::IssueToken { node, expect } => {
                // The node's stamp as last read (set_provider reads it with what it writes):
                // read before this token, which, if it agrees with the conf read with that
                // stamp, is the node's proof for the probes that follow (see `known::Proof`).
                let stamp = self.known.stamp(node);
                let t = self
                    .proving(node, stamp.as_deref(), self.token_check(node))
                    .await;
                let mut obs = Observation::default();
                obs.tokens.insert(node.clone(), t.clone());
                if t.format.as_str() == expect && t.validated() {
                    Ok(Done::ok(format!("{node}: {}", t.short()), obs))
                } else {
                    Ok(Done::fail(
                        format!("{node}: expected a {expect} token that validates, got {}", t.short()),
                        format!("{node} stays out of the pool. Read its keystone log; fix and resume, or set its provider back and restart it"),
                    )
                    .with(obs))
                }
            }
            Keystone::ValidateMatrix { nodes, expect } => self.matrix(nodes, expect).await,
            Keystone::ListTrusts { node } => self.list_trusts(node).await,
        }
    }

    /// Set `[token] provider` in one exec: keystone.conf as last read (a gate read it right
    /// before) is edited here, and the node writes it only if the file still has that text (its
    /// sha256), after a backup beside it, keeping mode and owner, then prints it back. A conf
    /// changed since it was read comes back instead, and is edited again.
    pub(in crate::drivers) async fn set_provider(
        &self,
        node: &str,
        provider: &str,
    ) -> DResult<Done> {
        let n = self.node(node)?;
        let conf = n.keystone_conf.clone();
        let not_utf8 = || {
            DriverError::new(
                format!("{node}: {} is not UTF-8", conf.display()),
                "check the file",
            )
        };
        let (mut text, mut fresh) = match self.known.get(node) {
            Some(k) => (k.conf, false),
            None => {
                let t = self.node_transport(node).await?;
                let bytes = t.read_file(&conf, n.sudo).await?;
                (String::from_utf8(bytes).map_err(|_| not_utf8())?, true)
            }
        };
        let mut obs = Observation::default();
        obs.flipped.insert(node.to_string(), provider.to_string());
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let backup = format!("{}.cutover-{stamp}", conf.display());
        for _ in 0..3 {
            let before = conf::get(&text, "token", "provider")
                .unwrap_or_else(|| crate::provider::Provider::keystone_default().to_string());
            let new = conf::set_provider(&text, provider);
            if new == text {
                if fresh {
                    return Ok(Done::ok(
                        format!("{node}: [token] provider already {provider}"),
                        obs,
                    ));
                }
                // Nothing to write, as last read: make sure of it on the node.
                let t = self.node_transport(node).await?;
                let bytes = t.read_file(&conf, n.sudo).await?;
                text = String::from_utf8(bytes).map_err(|_| not_utf8())?;
                fresh = true;
                continue;
            }
            // Where its repositories are known, the node's stamp comes back with what was
            // written (read before it is printed back): its last read then covers the new text,
            // and the token check after the restart can be its proof (see `known::Proof`).
            let mark = known::marker("stamp");
            let after = self.known.get(node).map(|k| {
                api::stamp_then_marker(
                    &conf.display().to_string(),
                    &k.paths.fernet,
                    &k.paths.private,
                    &k.paths.public,
                    &mark,
                )
            });
            let script = api::set_provider_script(
                &conf.display().to_string(),
                &backup,
                &api::sha256_hex(text.as_bytes()),
                new.as_bytes(),
                after.as_deref(),
            );
            let t = self.node_transport(node).await?;
            let out = {
                let _permit = self.limit.acquire().await.expect("semaphore open");
                t.exec(
                    &script,
                    crate::transport::ExecOpts {
                        stdin: Some(new.as_bytes().to_vec()),
                        timeout: Duration::from_secs(30),
                        sudo: n.sudo,
                    },
                )
                .await?
            };
            match out.status {
                0 => {}
                api::CONF_CHANGED => {
                    // Changed since it was read: edit what is there now.
                    text = String::from_utf8(out.stdout).map_err(|_| not_utf8())?;
                    fresh = true;
                    continue;
                }
                _ => {
                    return Err(DriverError::new(
                        format!(
                            "{node}: cannot set the provider in {}: {}",
                            conf.display(),
                            out.last_line()
                        ),
                        format!(
                            "check permissions (sudo: true in the inventory?); if a backup was made it is {backup}"
                        ),
                    ));
                }
            }
            // Read back: what is on disk is what counts.
            let printed = out.stdout_str();
            let (stamp, check) = match after
                .as_ref()
                .and_then(|_| known::split_at_marker(&printed, &mark))
            {
                Some((stamp, check)) => (Some(stamp.to_string()), check.to_string()),
                None => (None, printed.clone()),
            };
            let now = conf::get(&check, "token", "provider");
            if now.as_deref() != Some(provider) {
                self.known.forget_conf(node);
                return Err(DriverError::new(
                    format!(
                        "{node}: wrote {} but it reads provider = {:?}",
                        conf.display(),
                        now
                    ),
                    "inspect the file; the backup is beside it",
                ));
            }
            self.known.update_conf(node, check, stamp);
            return Ok(Done::ok(
                format!("{node}: [token] provider {before} → {provider} (backup {backup})"),
                obs,
            ));
        }
        Err(DriverError::new(
            format!(
                "{node}: {} kept changing while cutover edited it",
                conf.display()
            ),
            "find what else writes keystone.conf (config management?), stop it, then resume",
        ))
    }

    /// Issue a token directly at the node and validate it there, scoped to the credentials'
    /// project as clients' tokens are: a node's proof before its re-add. Only its shape
    /// survives.
    pub async fn token_check(&self, node: &str) -> TokenCheck {
        self.token_at(node, true, Scope::Project).await
    }

    /// A probe's token read at the node: issued, and validated there when `validate`, asking
    /// for an unscoped token (which provider the node serves and whether it validates its own
    /// tokens is all a probe judges; Keystone answers it in about half the time). Where
    /// Keystone refuses unscoped tokens to these credentials (a policy that lets only admins
    /// validate: 403; a deployment that refuses the scope: 400), the read is made with a
    /// project token, and so is every later one of this run.
    pub async fn token_read(&self, node: &str, validate: bool) -> TokenCheck {
        if !self.unscoped_refused.load(Ordering::Relaxed) {
            let t = self.token_at(node, validate, Scope::Unscoped).await;
            if !refuses_unscoped(&t) {
                return t;
            }
            self.unscoped_refused.store(true, Ordering::Relaxed);
        }
        self.token_at(node, validate, Scope::Project).await
    }

    async fn token_at(&self, node: &str, validate: bool, scope: Scope) -> TokenCheck {
        let url = match self.node(node) {
            Ok(n) => n.keystone_url.clone(),
            Err(e) => {
                return TokenCheck {
                    node: node.into(),
                    error: Some(e.msg),
                    ..Default::default()
                };
            }
        };
        match self.creds() {
            Ok(c) if validate => api::issue_and_validate(&self.http, node, &url, c, scope).await,
            Ok(c) => api::issue_only(&self.http, node, &url, c, scope).await,
            Err(e) => TokenCheck {
                node: node.into(),
                error: Some(e.msg),
                ..Default::default()
            },
        }
    }

    pub(in crate::drivers) async fn matrix(&self, nodes: &[String], expect: &str) -> DResult<Done> {
        let c = self.creds()?;
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| self.node(n).map(|x| x.keystone_url.clone()))
            .collect::<DResult<_>>()?;
        let m = api::matrix(&self.http, nodes, &urls, c).await;
        let ok = m.all_ok() && m.formats.iter().all(|f| f.as_str() == expect);
        let n = nodes.len();
        let good = m
            .cells
            .iter()
            .flatten()
            .filter(|c| **c == Some(200))
            .count();
        let obs = Observation {
            matrix: Some(m.clone()),
            ..Default::default()
        };
        if ok {
            Ok(Done::ok(
                format!("{good}/{} validations green, every token {expect}", n * n),
                obs,
            ))
        } else {
            Ok(Done::fail(
                format!("validation matrix: {good}/{} green; formats {}", n * n, m.formats.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")),
                "a node that refuses another's tokens lacks its public key or runs another provider: check keys and providers, then resume",
            )
            .with(obs))
        }
    }

    pub(in crate::drivers) async fn list_trusts(&self, node: &str) -> DResult<Done> {
        let c = self.creds()?;
        let url = self.node(node)?.keystone_url.clone();
        let t = api::list_trusts(&self.http, &url, c).await.map_err(|e| {
            DriverError::new(
                format!("{node}: listing trusts failed: {e}"),
                "check the credentials (admin) and that the node answers",
            )
        })?;
        let summary = format!(
            "{} trust(s); tokens issued before a node flips die on that node: consumers that cached a token must re-authenticate",
            t.count
        );
        Ok(Done::ok(
            summary,
            Observation {
                trusts: Some(t),
                ..Default::default()
            },
        ))
    }
}
