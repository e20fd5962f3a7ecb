//! Keystone: its configuration and its API (tokens, validation, trusts).

pub mod api;
pub mod conf;

use super::{DResult, Done, DriverError, Fleet};
use crate::engine::action::Keystone;
use crate::engine::facts::*;
use crate::transport::shell_quote;
use std::time::Duration;

impl Fleet {
    pub(in crate::drivers) async fn run_keystone(&self, spec: &Keystone) -> DResult<Done> {
        match spec {
            Keystone::SetProvider { node, provider } => self.set_provider(node, provider).await,
            Keystone::IssueToken { node, expect } => {
                let t = self.token_check(node).await;
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

    pub(in crate::drivers) async fn set_provider(
        &self,
        node: &str,
        provider: &str,
    ) -> DResult<Done> {
        let n = self.node(node)?;
        let t = self.node_transport(node).await?;
        let conf = n.keystone_conf.clone();
        let text = String::from_utf8(t.read_file(&conf, n.sudo).await?).map_err(|_| {
            DriverError::new(
                format!("{node}: {} is not UTF-8", conf.display()),
                "check the file",
            )
        })?;
        let before = conf::get(&text, "token", "provider")
            .unwrap_or_else(|| crate::provider::Provider::keystone_default().to_string());
        let mut obs = Observation::default();
        obs.flipped.insert(node.to_string(), provider.to_string());
        let new = conf::set_provider(&text, provider);
        if new == text {
            return Ok(Done::ok(
                format!("{node}: [token] provider already {provider}"),
                obs,
            ));
        }
        let c = shell_quote(&conf.display().to_string());
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let out = self
            .exec(
                node,
                &format!("cp -p -- {c} {c}.cutover-{stamp} && stat -c '%a %U %G' -- {c}"),
                Duration::from_secs(20),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: cannot back up {}: {}",
                    conf.display(),
                    out.last_line()
                ),
                "check permissions (sudo: true in the inventory?)",
            ));
        }
        let st = out.stdout_str();
        let f: Vec<&str> = st.split_whitespace().collect();
        let mode = f
            .first()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o640);
        let owner = (
            f.get(1).copied().unwrap_or("root"),
            f.get(2).copied().unwrap_or("root"),
        );
        t.write_file(&conf, new.as_bytes(), mode, Some(owner), n.sudo)
            .await?;
        // Read back: what is on disk is what counts.
        let check = String::from_utf8_lossy(&t.read_file(&conf, n.sudo).await?).into_owned();
        let now = conf::get(&check, "token", "provider");
        if now.as_deref() != Some(provider) {
            return Err(DriverError::new(
                format!(
                    "{node}: wrote {} but it reads provider = {:?}",
                    conf.display(),
                    now
                ),
                "inspect the file; the backup is beside it",
            ));
        }
        Ok(Done::ok(
            format!(
                "{node}: [token] provider {before} → {provider} (backup {}.cutover-{stamp})",
                conf.display()
            ),
            obs,
        ))
    }

    /// Issue a token directly at the node and validate it there. Only its shape survives.
    pub async fn token_check(&self, node: &str) -> TokenCheck {
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
            Ok(c) => api::issue_and_validate(&self.http, node, &url, c).await,
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
