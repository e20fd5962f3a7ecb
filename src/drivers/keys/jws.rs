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
    pub(in crate::drivers) async fn create_keypair(
        &self,
        node: &str,
        keygen: crate::inventory::KeyGen,
    ) -> DResult<Done> {
        let staging = api::staging_dir(&self.repo_paths(node).await?.private);
        self.source_keys.forget(node);
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

    /// Put a keypair into `staging` (created 0700 if missing) in one exec: private.pem (0600)
    /// from stdin, never on a command line; public.pem (0644) in the script. Each file is
    /// written beside its name and renamed into place. A failure leaves no half keypair.
    pub(in crate::drivers) async fn stage(
        &self,
        node: &str,
        staging: &str,
        private_pem: &[u8],
        public_pem: &str,
    ) -> DResult<()> {
        let n = self.node(node)?;
        let t = self.node_transport(node).await?;
        let script = format!(
            r#"set -e; umask 077; s={s}
mkdir -p -- "$s"
{receive}; chmod 600 -- "$s/private.pem.cutover-new"
printf '%s' {public} > "$s/public.pem.cutover-new"; chmod 644 -- "$s/public.pem.cutover-new"
mv -f -- "$s/private.pem.cutover-new" "$s/private.pem"
mv -f -- "$s/public.pem.cutover-new" "$s/public.pem"
"#,
            s = shell_quote(staging),
            public = shell_quote(public_pem),
            receive =
                crate::transport::receive_stdin("\"$s/private.pem.cutover-new\"", private_pem),
        );
        let _permit = self.limit.acquire().await.expect("semaphore open");
        let out = t
            .exec(
                &script,
                crate::transport::ExecOpts {
                    stdin: Some(private_pem.to_vec()),
                    timeout: Duration::from_secs(30),
                    sudo: n.sudo,
                },
            )
            .await;
        drop(_permit);
        let failed = match out {
            Ok(o) if o.status == 0 => return Ok(()),
            Ok(o) => DriverError::new(
                format!(
                    "{node}: cannot stage a keypair in {staging}: {}",
                    o.last_line()
                ),
                "check permissions (sudo: true?)",
            ),
            Err(e) => e.into(),
        };
        // No half keypair left behind: a later keys step starts from nothing.
        self.unstage(node, staging).await;
        Err(failed)
    }

    /// Remove a keypair from `staging` and the directory if that leaves it empty (best effort:
    /// the failure being reported matters more).
    pub(in crate::drivers) async fn unstage(&self, node: &str, staging: &str) {
        let s = shell_quote(staging);
        let _ = self
            .exec(
                node,
                &format!(
                    "rm -f -- {s}/private.pem {s}/public.pem {s}/private.pem.cutover-new {s}/public.pem.cutover-new {s}/keystone-manage.err; rmdir -- {s} 2>/dev/null || true"
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
                let staging = api::staging_dir(&self.repo_paths(origin).await?.private);
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
        // Every node at once (each one exec); the first failure is reported.
        let staged = futures::future::join_all(nodes.iter().map(|node| {
            let (private_pem, public_pem) = (&private_pem, &public_pem);
            async move {
                self.source_keys.forget(node);
                let staging = api::staging_dir(&self.repo_paths(node).await?.private);
                self.stage(node, &staging, &private_pem.0, public_pem).await
            }
        }))
        .await;
        for (node, r) in nodes.iter().zip(staged) {
            r?;
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

    /// Move the staged keypair into place and read the node back, in one exec.
    pub(in crate::drivers) async fn install_keys(&self, node: &str, public: bool) -> DResult<Done> {
        let n = self.node(node)?;
        let paths = self.repo_paths(node).await?;
        let staging = api::staging_dir(&paths.private);
        let public_file = name_path(Path::new(&paths.public), node, ".pem")?;
        let script = api::install_script(
            &staging,
            &paths.private,
            &paths.public,
            &public_file.to_string_lossy(),
            &n.keystone_user,
            &n.keystone_group,
            public,
        );
        self.source_keys.forget(node);
        let (ran, after) = self.node_facts_after(node, Some(&script)).await?;
        let ran = ran.expect("a change was run");
        if ran.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: installing the JWS keys failed: {}",
                    ran.last_line()
                ),
                "check that the staging directory still holds the keypair (re-run the keys step) and the repositories are writable",
            ));
        }
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

    pub(in crate::drivers) async fn remove_retired(
        &self,
        node: &str,
        nodes: &[String],
    ) -> DResult<Done> {
        let mut live = std::collections::BTreeSet::new();
        let read = futures::future::join_all(nodes.iter().map(|m| self.node_facts(m))).await;
        for (m, f) in nodes.iter().zip(read) {
            match f?.jws.private_fingerprint {
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
        self.source_keys.forget(node);
        let (ran, after) = self
            .node_facts_after(
                node,
                Some(&format!(
                    "set -e; mkdir -p -- {a}; chmod 700 -- {a}; mv -- {files} {a}/",
                    a = shell_quote(&attic)
                )),
            )
            .await?;
        let ran = ran.expect("a change was run");
        if ran.status != 0 {
            return Err(DriverError::new(
                format!("{node}: moving retired keys failed: {}", ran.last_line()),
                "check permissions on the public repository",
            ));
        }
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
