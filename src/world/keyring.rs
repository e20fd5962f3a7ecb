//! What keeps the demo world's Keystone stand-ins from costing more per request as the fleet
//! grows: a node's public keys parsed once while its repository's files stay the same (a
//! 64-node fleet puts 64 keys in every repository, read on every validation), and which key
//! signed a token (so validating it verifies one signature, not up to one per key).
//!
//! Neither changes an answer: the repository is still listed on every validation (a key added,
//! replaced or removed counts at once), and a token still validates exactly when one of the
//! node's current keys verifies its signature.

use p256::ecdsa::VerifyingKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What identifies a file's content without reading it: name, inode, size, modification time.
type FileStamp = (std::ffi::OsString, u64, u64, Option<SystemTime>);

/// A repository's keys as last parsed, with the stamps of the files they came from.
type Parsed = (Vec<FileStamp>, Arc<Vec<VerifyingKey>>);

/// Each public repository's keys as last parsed.
#[derive(Default)]
pub struct PublicKeys {
    repos: Mutex<HashMap<PathBuf, Parsed>>,
}

impl PublicKeys {
    /// Every P-256 public key in `repo`, as [`read_public_keys`] reads them: parsed again
    /// only when a file was added, removed or rewritten since the last call.
    pub fn keys(&self, repo: &Path) -> Arc<Vec<VerifyingKey>> {
        let Some(stamps) = stamps(repo) else {
            return Arc::new(Vec::new());
        };
        if let Some((seen, keys)) = self.repos.lock().expect("public keys").get(repo)
            && *seen == stamps
        {
            return keys.clone();
        }
        let keys = Arc::new(read_public_keys(repo));
        self.repos
            .lock()
            .expect("public keys")
            .insert(repo.to_path_buf(), (stamps, keys.clone()));
        keys
    }
}

fn stamps(repo: &Path) -> Option<Vec<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<FileStamp> = std::fs::read_dir(repo)
        .ok()?
        .flatten()
        .map(|e| {
            let m = std::fs::metadata(e.path()).ok();
            (
                e.file_name(),
                m.as_ref().map(|m| m.ino()).unwrap_or(0),
                m.as_ref().map(|m| m.len()).unwrap_or(0),
                m.and_then(|m| m.modified().ok()),
            )
        })
        .collect();
    v.sort();
    Some(v)
}

/// Which key signed which token (by the token's sha256), remembered at issue and at each
/// validation. Bounded: forgotten wholesale past `SIGNERS_MAX` tokens.
#[derive(Default)]
pub struct Signers {
    map: Mutex<HashMap<[u8; 32], VerifyingKey>>,
}

const SIGNERS_MAX: usize = 100_000;

fn token_id(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

impl Signers {
    pub fn remember(&self, token: &str, key: &VerifyingKey) {
        let mut map = self.map.lock().expect("signers");
        if map.len() >= SIGNERS_MAX {
            map.clear();
        }
        map.insert(token_id(token), *key);
    }

    /// The key that signed `token`, if it is one of `keys`.
    pub fn among<'k>(&self, token: &str, keys: &'k [VerifyingKey]) -> Option<&'k VerifyingKey> {
        let k = *self.map.lock().expect("signers").get(&token_id(token))?;
        keys.iter().find(|c| **c == k)
    }
}

/// Every P-256 public key (SubjectPublicKeyInfo PEM) in the public repository. Files that are
/// not such keys are skipped, as Keystone skips keys it cannot use.
pub fn read_public_keys(repo: &Path) -> Vec<VerifyingKey> {
    use p256::pkcs8::DecodePublicKey as _;
    let Ok(entries) = std::fs::read_dir(repo) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|pem| VerifyingKey::from_public_key_pem(&pem).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn key() -> (p256::SecretKey, String) {
        let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = sk.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        (sk, pem)
    }

    #[test]
    fn a_repository_is_parsed_again_exactly_when_its_files_change() {
        let d = tempfile::tempdir().unwrap();
        let cache = PublicKeys::default();
        assert!(cache.keys(&d.path().join("missing")).is_empty());
        let (_, a) = key();
        std::fs::write(d.path().join("a.pem"), &a).unwrap();
        let first = cache.keys(d.path());
        assert_eq!(first.len(), 1);
        assert!(
            Arc::ptr_eq(&first, &cache.keys(d.path())),
            "unchanged: kept"
        );
        // Added.
        let (_, b) = key();
        std::fs::write(d.path().join("b.pem"), &b).unwrap();
        assert_eq!(cache.keys(d.path()).len(), 2);
        // Replaced under the same name by a rename (another inode).
        let (_, c) = key();
        std::fs::write(d.path().join("b.new"), &c).unwrap();
        std::fs::rename(d.path().join("b.new"), d.path().join("b.pem")).unwrap();
        let now = cache.keys(d.path());
        let want = read_public_keys(d.path());
        assert_eq!(*now, want);
        // Removed.
        std::fs::remove_file(d.path().join("a.pem")).unwrap();
        assert_eq!(cache.keys(d.path()).len(), 1);
    }

    #[test]
    fn a_remembered_signer_counts_only_among_the_keys_given() {
        let (sk, _) = key();
        let (other, _) = key();
        let vk = p256::ecdsa::VerifyingKey::from(p256::ecdsa::SigningKey::from(sk));
        let ok = p256::ecdsa::VerifyingKey::from(p256::ecdsa::SigningKey::from(other));
        let s = Signers::default();
        assert!(s.among("t", &[vk]).is_none());
        s.remember("t", &vk);
        assert_eq!(s.among("t", &[ok, vk]), Some(&vk));
        assert!(s.among("t", &[ok]).is_none());
        assert!(s.among("u", &[vk]).is_none());
    }
}
