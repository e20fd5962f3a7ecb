//! JWS keypairs: create, stage, install, publish, distribute, retire.

use crate::drivers::keystone::api;
use crate::drivers::service::log;
use crate::drivers::{DResult, Done, DriverError, Fleet, keys};
use crate::engine::facts::*;
use crate::inventory::name_path;
use crate::transport::shell_quote;
use std::path::Path;
use std::time::Duration;

impl Fleet {
    pub(in crate::drivers) fn repos(&self, facts: &NodeFacts) -> (String, String) {
        (
            facts.jws.private_repo.clone(),
            facts.jws.public_repo.clone(),
        )
    }

    pub(in crate::drivers) async fn create_keypair(
        &self,
        node: &str,
        keygen: crate::inventory::KeyGen,
    ) -> DResult<Done> {
        let facts = self.node_facts(node).await?;
        let (private, _) = self.repos(&facts);
        let staging = api::staging_dir(&private);
        let (fp, with) = match keygen {
            crate::inventory::KeyGen::KeystoneManage => {
                let (km, public) = self.keystone_manage(node, &staging).await?;
                let fp = keys::public_fingerprint(&public).map_err(|e| {
                    DriverError::new(format!("{node}: {e}"), format!("check {km}'s output"))
                })?;
                (fp, format!(" by {km}"))
            }
            crate::inventory::KeyGen::Native => {
                let (private_pem, public_pem) =
                    keys::generate_es256().map_err(|e| {
                        DriverError::new(
                            format!("{node}: generating an ES256 keypair failed: {e}"),
                            "resume to try again; if it persists, set keygen: keystone-manage for this node",
                        )
                    })?;
                self.stage(node, &staging, &private_pem.0, &public_pem)
                    .await?;
                let fp = keys::public_fingerprint(&public_pem).map_err(|e| {
                    DriverError::new(
                        format!("{node}: the generated public key is unreadable: {e}"),
                        "resume to generate it again",
                    )
                })?;
                (fp, String::new())
            }
        };
        let mut obs = Observation::default();
        obs.keys.insert(node.to_string(), fp.clone());
        Ok(Done::ok(
            format!(
                "{node}: keypair staged in {staging}{with} ({})",
                short_fp(&fp)
            ),
            obs,
        ))
    }

    /// Run `keystone-manage create_jws_keypair` on `node` in `staging` (one exec that first finds
    /// it: the inventory's `keystone_manage:`, else the PATH, the login shell's PATH and the
    /// usual places, see `keys::KEYSTONE_MANAGE_PLACES`). Returns which keystone-manage ran and
    /// the public key; private.pem stays in `staging`. A failure leaves nothing in `staging`.
    pub(in crate::drivers) async fn keystone_manage(
        &self,
        node: &str,
        staging: &str,
    ) -> DResult<(String, String)> {
        let n = self.node(node)?;
        let explicit = n.keystone_manage.as_ref().map(|p| p.display().to_string());
        let script = keys::keystone_manage_script(
            staging,
            &n.keystone_conf.display().to_string(),
            &n.keystone_user,
            &n.keystone_group,
            explicit.as_deref(),
            keys::KEYSTONE_MANAGE_PLACES,
        );
        let out = self.exec(node, &script, Duration::from_secs(120)).await?;
        let (km, public) = keys::keystone_manage_output(&out.stdout_str());
        if out.status == keys::KEYSTONE_MANAGE_NOT_FOUND && km.is_none() {
            let fix = if explicit.is_some() {
                format!("correct keystone_manage: for {node} in the inventory")
            } else {
                format!(
                    "name it in the inventory (keystone_manage: /path/to/keystone-manage for {node})"
                )
            };
            return Err(DriverError::new(
                format!("{node}: {}", out.last_line()),
                format!(
                    "{fix}, or set keygen: native for {node} to generate the keypair inside cutover; then resume"
                ),
            ));
        }
        let km = km.unwrap_or_else(|| "keystone-manage".into());
        if out.status != 0 {
            let why = log::pick(&out.stderr_str(), log::MAX_LINES)
                .reason
                .unwrap_or_else(|| out.last_line());
            return Err(DriverError::new(
                format!(
                    "{node}: `{km} create_jws_keypair` {}: {why}",
                    out.exit_text()
                ),
                format!(
                    "run `{km} create_jws_keypair --keystone-user {} --keystone-group {}` by hand on {node} to see why (or set keygen: native for {node}); then resume",
                    n.keystone_user, n.keystone_group
                ),
            ));
        }
        Ok((km, public))
    }

    pub(in crate::drivers) async fn stage(
        &self,
        node: &str,
        staging: &str,
        private_pem: &[u8],
        public_pem: &str,
    ) -> DResult<()> {
        let n = self.node(node)?;
        let t = self.node_transport(node).await?;
        let out = self
            .exec(
                node,
                &format!("umask 077 && mkdir -p -- {}", shell_quote(staging)),
                Duration::from_secs(20),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{node}: cannot create {staging}: {}", out.last_line()),
                "check permissions (sudo: true?)",
            ));
        }
        let written = async {
            t.write_file(
                &Path::new(staging).join("private.pem"),
                private_pem,
                0o600,
                None,
                n.sudo,
            )
            .await?;
            t.write_file(
                &Path::new(staging).join("public.pem"),
                public_pem.as_bytes(),
                0o644,
                None,
                n.sudo,
            )
            .await
        }
        .await;
        if let Err(e) = written {
            // No half keypair left behind: a later keys step starts from nothing.
            self.unstage(node, staging).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Remove a keypair from `staging` and the directory if that leaves it empty (best effort:
    /// the failure being reported matters more).
    pub(in crate::drivers) async fn unstage(&self, node: &str, staging: &str) {
        let s = shell_quote(staging);
        let _ = self
            .exec(
                node,
                &format!(
                    "rm -f -- {s}/private.pem {s}/public.pem {s}/keystone-manage.err; rmdir -- {s} 2>/dev/null || true"
                ),
                Duration::from_secs(20),
            )
            .await;
    }

    pub(in crate::drivers) async fn create_shared_keypair(
        &self,
        origin: &str,
        nodes: &[String],
        keygen: crate::inventory::KeyGen,
    ) -> DResult<Done> {
        let (private_pem, public_pem, with) = match keygen {
            crate::inventory::KeyGen::Native => {
                let (p, q) = keys::generate_es256().map_err(|e| {
                    DriverError::new(
                        format!("generating the shared ES256 keypair failed: {e}"),
                        "resume to try again; if it persists, use keygen: keystone-manage",
                    )
                })?;
                (p, q, String::new())
            }
            crate::inventory::KeyGen::KeystoneManage => {
                let facts = self.node_facts(origin).await?;
                let staging = api::staging_dir(&facts.jws.private_repo);
                let (km, public) = self.keystone_manage(origin, &staging).await?;
                let n = self.node(origin)?;
                let t = self.node_transport(origin).await?;
                let private = t
                    .read_file(&Path::new(&staging).join("private.pem"), n.sudo)
                    .await;
                if !nodes.iter().any(|m| m == origin) || private.is_err() {
                    // Staged again below only on the nodes that take it.
                    self.unstage(origin, &staging).await;
                }
                (
                    keys::Secret::from(private?),
                    public,
                    format!(" by {km} on {origin}"),
                )
            }
        };
        let fp = keys::public_fingerprint(&public_pem).map_err(|e| {
            DriverError::new(
                format!("{origin}: the shared public key is unreadable: {e}"),
                "resume to generate the shared keypair again",
            )
        })?;
        let mut obs = Observation::default();
        for node in nodes {
            let facts = self.node_facts(node).await?;
            let staging = api::staging_dir(&facts.jws.private_repo);
            self.stage(node, &staging, &private_pem.0, &public_pem)
                .await?;
            obs.keys.insert(node.clone(), fp.clone());
        }
        Ok(Done::ok(
            format!(
                "one keypair ({}{with}) staged on {}",
                short_fp(&fp),
                nodes.join(", ")
            ),
            obs,
        ))
    }

    pub(in crate::drivers) async fn install_keys(&self, node: &str, public: bool) -> DResult<Done> {
        let n = self.node(node)?;
        let facts = self.node_facts(node).await?;
        let (private, public_repo) = self.repos(&facts);
        let staging = api::staging_dir(&private);
        let public_file = name_path(Path::new(&public_repo), node, ".pem")?;
        let script = api::install_script(
            &staging,
            &private,
            &public_repo,
            &public_file.to_string_lossy(),
            &n.keystone_user,
            &n.keystone_group,
            public,
        );
        let out = self.exec(node, &script, Duration::from_secs(60)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: installing the JWS keys failed: {}",
                    out.last_line()
                ),
                "check that the staging directory still holds the keypair (re-run the keys step) and the repositories are writable",
            ));
        }
        let after = self.node_facts(node).await?;
        let fp = after.jws.private_fingerprint.clone().ok_or_else(|| {
            DriverError::new(
                format!("{node}: private.pem installed but unreadable as a key"),
                "inspect the private repository",
            )
        })?;
        let mut obs = Observation::default();
        obs.keys.insert(node.to_string(), fp.clone());
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: private.pem (0600, {}) and {node}.pem installed ({})",
                n.keystone_user,
                short_fp(&fp)
            ),
            obs,
        ))
    }

    pub(in crate::drivers) async fn publish_staged(
        &self,
        node: &str,
        from: &[String],
    ) -> DResult<Done> {
        let (names, after) = self.copy_public_keys(node, from, true).await?;
        let count = after.jws.public.len();
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: published {} ({count} keys accepted now)",
                names.join(", ")
            ),
            obs,
        ))
    }

    /// Copy the public keys of `from` into `node`'s public repository: each node's installed
    /// `<m>.pem`, or (`staged`) the next key waiting in its staging directory, written as
    /// `<m>.<fingerprint tag>.pem` beside the current ones. Returns the names written and the
    /// node's facts afterwards.
    pub(in crate::drivers) async fn copy_public_keys(
        &self,
        node: &str,
        from: &[String],
        staged: bool,
    ) -> DResult<(Vec<String>, NodeFacts)> {
        let n = self.node(node)?;
        let facts = self.node_facts(node).await?;
        let t = self.node_transport(node).await?;
        let mut names = Vec::new();
        for m in from {
            let mf = self.node_facts(m).await?;
            let src = if staged {
                Path::new(&api::staging_dir(&mf.jws.private_repo)).join("public.pem")
            } else {
                name_path(Path::new(&mf.jws.public_repo), m, ".pem")?
            };
            let mt = self.node_transport(m).await?;
            let pem = mt.read_file(&src, self.node(m)?.sudo).await.map_err(|e| {
                DriverError::new(
                    format!("{m}: cannot read its public key {}: {e}", src.display()),
                    if staged {
                        "create the new keypairs first (keystone.create_jws_keypair), then resume"
                            .to_string()
                    } else {
                        format!("install {m}'s keys first (keys step), then resume")
                    },
                )
            })?;
            let fp = keys::public_fingerprint(&String::from_utf8_lossy(&pem)).map_err(|e| {
                DriverError::new(
                    format!("{m}: {} is not a public key: {e}", src.display()),
                    "re-run the keys step",
                )
            })?;
            let suffix = if staged {
                format!(".{}.pem", keys::fingerprint_tag(&fp))
            } else {
                ".pem".to_string()
            };
            let dst = name_path(Path::new(&facts.jws.public_repo), m, &suffix)?;
            let name = format!("{m}{suffix}");
            t.write_file(
                &dst,
                &pem,
                0o644,
                Some((&n.keystone_user, &n.keystone_group)),
                n.sudo,
            )
            .await?;
            names.push(name);
        }
        Ok((names, self.node_facts(node).await?))
    }

    pub(in crate::drivers) async fn remove_retired(
        &self,
        node: &str,
        nodes: &[String],
    ) -> DResult<Done> {
        let mut live = std::collections::BTreeSet::new();
        for m in nodes {
            let f = self.node_facts(m).await?;
            match f.jws.private_fingerprint {
                Some(fp) => {
                    live.insert(fp);
                }
                None => {
                    return Err(DriverError::new(
                        format!(
                            "{m} has no readable private.pem: cannot tell which public keys are retired"
                        ),
                        format!("fix {m}'s JWS keys first; nothing was removed"),
                    ));
                }
            }
        }
        let facts = self.node_facts(node).await?;
        let retired: Vec<String> = facts
            .jws
            .public
            .iter()
            .filter(|p| !live.contains(&p.fingerprint))
            .map(|p| p.file.clone())
            .collect();
        if retired.is_empty() {
            return Ok(Done::ok(
                format!("{node}: no retired public keys"),
                Observation::default(),
            ));
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let public = facts.jws.public_repo.trim_end_matches('/').to_string();
        let attic = format!(
            "{}/.cutover-retired-{stamp}",
            Path::new(&public)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let files = retired
            .iter()
            .map(|f| shell_quote(&format!("{public}/{f}")))
            .collect::<Vec<_>>()
            .join(" ");
        let out = self
            .exec(
                node,
                &format!(
                    "set -e; mkdir -p -- {a}; chmod 700 -- {a}; mv -- {files} {a}/",
                    a = shell_quote(&attic)
                ),
                Duration::from_secs(30),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{node}: moving retired keys failed: {}", out.last_line()),
                "check permissions on the public repository",
            ));
        }
        let after = self.node_facts(node).await?;
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: moved {} to {attic} (tokens signed by them no longer validate)",
                retired.join(", ")
            ),
            obs,
        ))
    }

    pub(in crate::drivers) async fn distribute(
        &self,
        node: &str,
        from: &[String],
    ) -> DResult<Done> {
        let (_, after) = self.copy_public_keys(node, from, false).await?;
        let count = after.jws.public.len();
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: public keys of {} installed ({count} keys in its public repository)",
                from.join(", ")
            ),
            obs,
        ))
    }
}
