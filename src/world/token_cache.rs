//! The world's shared token cache (`cutover world create --token-cache SECONDS`): what one
//! memcached shared by every Keystone node is to a kolla-ansible or OpenStack-Ansible cluster.
//!
//! It behaves as Keystone 30 with `[cache] enabled = true` does (measured, see
//! KEYSTONE-NOTES.md): an entry is keyed by the token id alone, stored when a node issues the
//! token (`[token] cache_on_issue` or `caching`) and when a node's provider validates it
//! (`[token] caching`), and read before the provider: a node that finds the entry never asks
//! its own provider, so a JWS token validates on a Fernet node (and the other way round) for
//! the entry's lifetime (`[token] cache_time`, else `[cache] expiration_time`, else 600 s). A hit
//! does not extend the lifetime. Which of this a node does is read from its own keystone.conf
//! at start (see `keystone::config`); the cache itself only stores.
//!
//! The cache lives in the process that serves the world. It is emptied by the `flush-cache`
//! fault (as `echo flush_all | nc memcached 11211` empties memcached), through a request file
//! `DIR/token-cache.flush` that the serving process deletes once the cache is empty, and when
//! the world stops (memcached restarting). Restarting a Keystone node does not empty it.
//! Entries hold what a validation answers, never the token: keys are SHA-256 digests.

use super::tokens::TokenData;
use sha2::Digest as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keystone's default cache lifetime (`[cache] expiration_time`).
pub const DEFAULT_LIFETIME_SECS: u64 = 600;

/// The shared cache: token digest → what validating it answered, until when.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (TokenData, Instant)>>,
}

fn key(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (TokenData, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `token`, if there is one that has not expired at `now`.
    pub fn get(&self, token: &str, now: Instant) -> Option<TokenData> {
        let mut entries = self.lock();
        let k = key(token);
        match entries.get(&k) {
            Some((data, until)) if *until > now => Some(data.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Store (or replace) the entry for `token` for `lifetime` from `now`.
    pub fn put(&self, token: &str, data: &TokenData, lifetime: Duration, now: Instant) {
        let mut entries = self.lock();
        // Expired entries go as new ones come, as memcached evicts them.
        entries.retain(|_, (_, until)| *until > now);
        entries.insert(key(token), (data.clone(), now + lifetime));
    }

    /// Empty the cache; returns how many live entries it held.
    pub fn flush(&self, now: Instant) -> usize {
        let mut entries = self.lock();
        let live = entries.values().filter(|(_, until)| *until > now).count();
        entries.clear();
        live
    }
}

/// The file whose existence asks the serving process to empty the cache (`DIR/token-cache.flush`).
pub fn flush_request(dir: &Path) -> PathBuf {
    dir.join("token-cache.flush")
}

/// Empty the cache whenever the flush request appears (`wake` says when it may have); the
/// answer (how many entries went) is written into the request file before it is deleted, which
/// acknowledges it.
pub(crate) async fn flush_loop(
    cache: std::sync::Arc<TokenCache>,
    request: PathBuf,
    wake: super::watch::Wake,
) {
    loop {
        if request.exists() {
            let n = cache.flush(Instant::now());
            let _ = std::fs::write(&request, format!("{n}\n"));
            let _ = std::fs::rename(&request, request.with_extension("flushed"));
        }
        wake.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(user: &str) -> TokenData {
        let now = chrono::Utc::now();
        TokenData {
            user_id: user.into(),
            project_id: None,
            methods: vec!["password".into()],
            audit_ids: vec!["a".into()],
            issued_at: now,
            expires_at: now + chrono::Duration::hours(1),
        }
    }

    #[test]
    fn entries_live_for_their_lifetime_and_a_flush_ends_them() {
        let c = TokenCache::default();
        let t0 = Instant::now();
        c.put("tok-a", &data("u1"), Duration::from_secs(60), t0);
        let hit = c.get("tok-a", t0 + Duration::from_secs(55)).unwrap();
        assert_eq!(hit.user_id, "u1");
        assert_eq!(c.get("tok-b", t0), None, "keyed by the token id");
        assert_eq!(c.get("tok-a", t0 + Duration::from_secs(61)), None);
        // A hit does not extend it; a new store does.
        c.put("tok-a", &data("u1"), Duration::from_secs(60), t0);
        assert!(c.get("tok-a", t0 + Duration::from_secs(30)).is_some());
        c.put(
            "tok-a",
            &data("u1"),
            Duration::from_secs(60),
            t0 + Duration::from_secs(30),
        );
        assert!(c.get("tok-a", t0 + Duration::from_secs(80)).is_some());
        c.put("tok-c", &data("u1"), Duration::from_secs(60), t0);
        assert_eq!(
            c.flush(t0 + Duration::from_secs(70)),
            1,
            "tok-c had expired"
        );
        assert_eq!(c.get("tok-a", t0 + Duration::from_secs(71)), None);
    }
}
