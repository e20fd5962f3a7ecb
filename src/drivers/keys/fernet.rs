//! Fernet keys: rotate on one node, copy one node's repository to another.

use crate::drivers::keystone::api;
use crate::drivers::keystone::conf;
use crate::drivers::{DResult, Done, DriverError, Fleet, keys};
use crate::engine::facts::*;
use crate::transport::shell_quote;
use std::path::Path;
use std::time::Duration;

impl Fleet {
    pub(in crate::drivers) async fn rotate_fernet(&self, node: &str) -> DResult<Done> {
        let n = self.node(node)?;
        let facts = self.node_facts(node).await?;
        let conf = self
            .exec(
                node,
                &format!(
                    "cat -- {}",
                    shell_quote(&n.keystone_conf.display().to_string())
                ),
                Duration::from_secs(20),
            )
            .await?;
        let max = conf::get(&conf.stdout_str(), "fernet_tokens", "max_active_keys")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(3);
        let script = match n.keygen {
            crate::inventory::KeyGen::KeystoneManage => format!(
                "keystone-manage --config-file {} fernet_rotate --keystone-user {} --keystone-group {}",
                shell_quote(&n.keystone_conf.display().to_string()),
                shell_quote(&n.keystone_user),
                shell_quote(&n.keystone_group)
            ),
            crate::inventory::KeyGen::Native => api::fernet_rotate_script(
                &facts.fernet.repo,
                max,
                &n.keystone_user,
                &n.keystone_group,
            ),
        };
        let out = self.exec(node, &script, Duration::from_secs(60)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{node}: fernet rotation failed: {}", out.last_line()),
                format!(
                    "inspect {} on {node}; nothing else changed",
                    facts.fernet.repo
                ),
            ));
        }
        let after = self.node_facts(node).await?;
        let keys = after.fernet.keys;
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!("{node}: Fernet keys rotated ({keys} keys, max_active_keys {max})"),
            obs,
        ))
    }

    pub(in crate::drivers) async fn sync_fernet(&self, node: &str, from: &str) -> DResult<Done> {
        let src = self.node_facts(from).await?;
        let out = self
            .exec(
                from,
                &api::fernet_dump_script(&src.fernet.repo),
                Duration::from_secs(30),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{from}: cannot read its Fernet repository: {}",
                    out.last_line()
                ),
                "check permissions (sudo: true?)",
            ));
        }
        // Key bytes: in memory only, wiped when dropped.
        let keys_in = keys::Secret::from(out.stdout);
        let parsed = api::parse_fernet_dump(&keys_in.0).map_err(|e| {
            DriverError::new(
                format!("{from}: its Fernet repository could not be read: {e}"),
                format!(
                    "check the files in {} on {from}, then resume",
                    src.fernet.repo
                ),
            )
        })?;
        if parsed.is_empty() {
            return Err(DriverError::new(
                format!("{from}: its Fernet repository is empty"),
                "refusing to empty the other nodes' repositories",
            ));
        }
        let n = self.node(node)?;
        let dst = self.node_facts(node).await?;
        let t = self.node_transport(node).await?;
        let repo = dst.fernet.repo.trim_end_matches('/').to_string();
        for (name, bytes) in &parsed {
            t.write_file(
                &Path::new(&repo).join(name),
                &bytes.0,
                0o600,
                Some((&n.keystone_user, &n.keystone_group)),
                n.sudo,
            )
            .await?;
        }
        let keep: Vec<String> = parsed.iter().map(|(n, _)| shell_quote(n)).collect();
        let script = format!(
            "cd -- {} && for k in *; do case \" $(printf '%s ' {}) \" in *\" $k \"*) ;; *) rm -f -- \"$k\";; esac; done",
            shell_quote(&repo),
            keep.join(" ")
        );
        let out = self.exec(node, &script, Duration::from_secs(30)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: pruning old Fernet keys failed: {}",
                    out.last_line()
                ),
                "inspect the repository",
            ));
        }
        let after = self.node_facts(node).await?;
        let same = after.fernet.fingerprint == src.fernet.fingerprint;
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        if !same {
            return Ok(Done::fail(
                format!("{node}: after sync its Fernet repository still differs from {from}'s"),
                "compare the repositories by hand (sha256sum), then resume",
            )
            .with(obs));
        }
        Ok(Done::ok(
            format!(
                "{node}: Fernet repository identical to {from}'s ({} keys)",
                parsed.len()
            ),
            obs,
        ))
    }
}
