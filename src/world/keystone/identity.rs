//! The one user every node of a world knows (`admin` in domain `Default`), read from the
//! world's clouds.yaml at start.

use crate::world::info::WorldInfo;
use anyhow::Context as _;
use serde_json::Value;
use std::path::PathBuf;

/// What every node of a world shares: the one user it knows, read from clouds.yaml at start.
pub struct Shared {
    pub(super) username: String,
    /// Held in memory only; never logged.
    pub(super) password: String,
    pub(super) user_domain: String,
    pub(super) project_name: String,
    pub(super) project_domain: String,
    pub(super) admin_user_id: String,
    pub(super) admin_project_id: String,
    pub(super) trusts_path: PathBuf,
    /// The world's shared token cache, when it has one (`world create --token-cache`); a node
    /// uses it only if its keystone.conf enables `[cache]`.
    pub(super) cache: Option<std::sync::Arc<crate::world::token_cache::TokenCache>>,
    /// Each node's public keys, parsed once while its repository's files stay the same.
    pub(super) public_keys: crate::world::keyring::PublicKeys,
    /// Which key signed which JWS token (issued here or validated before).
    pub(super) signers: crate::world::keyring::Signers,
}

impl Shared {
    pub fn load(info: &WorldInfo) -> anyhow::Result<Shared> {
        let creds = crate::inventory::credentials::resolve(
            Some(&info.cloud),
            Some(&info.clouds_path),
            &|_| None,
        )
        .map_err(anyhow::Error::msg)
        .context("the demo world reads its admin password from clouds.yaml")?;
        Ok(Shared {
            username: creds.username,
            password: creds.password,
            user_domain: creds.user_domain,
            project_name: creds.project_name,
            project_domain: creds.project_domain,
            admin_user_id: info.admin_user_id.clone(),
            admin_project_id: info.admin_project_id.clone(),
            trusts_path: info.trusts_path.clone(),
            cache: info
                .token_cache
                .map(|_| std::sync::Arc::new(Default::default())),
            public_keys: Default::default(),
            signers: Default::default(),
        })
    }

    /// The shared token cache, for the task that flushes it on request.
    pub fn token_cache(&self) -> Option<std::sync::Arc<crate::world::token_cache::TokenCache>> {
        self.cache.clone()
    }

    pub(super) fn domain_matches(expected_name: &str, domain: &Value) -> bool {
        domain.get("id").and_then(Value::as_str) == Some("default")
            || domain
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(expected_name))
    }
}
