//! What the drivers last read on each node, kept for the session to save round trips: where its
//! key repositories are and its keystone.conf as last read.
//!
//! Nothing here is trusted blindly. A facts read runs its key-repository reads at the remembered
//! paths in the same exec that reads keystone.conf, and reads again at the right paths when the
//! conf says otherwise; `set_provider` writes only if keystone.conf's digest on the node still
//! matches the text it edited. Remembering saves an exec per read, never a check.
//!
//! A node's last token is kept too, as proof of what its Keystone serves ([`Proof`]): which
//! provider a Keystone serves is what its keystone.conf said when it loaded it, and whether it
//! validates its own tokens follows from that conf and its key files. While both are as they
//! were before the token was issued (their stamp, read again), a probe is answered from it.

use crate::engine::facts::TokenCheck;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A node's key repositories (its keystone.conf's settings, or the inventory's overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPaths {
    pub fernet: String,
    pub private: String,
    pub public: String,
}

/// What was last read on one node.
#[derive(Debug, Clone)]
pub struct NodeConf {
    pub paths: RepoPaths,
    /// keystone.conf as it was read (the exact text).
    pub conf: String,
    /// The stamp of the key files at `paths` (names, inodes, sizes, modes, owners, times) and
    /// what reading them printed then: while the stamp is the same, so is what they hold.
    pub keys: Option<(String, String)>,
}

impl NodeConf {
    /// The stamp this read printed, if it kept one (a read of repositories that had moved
    /// keeps none when keystone.conf changed between its two execs).
    pub fn stamp(&self) -> Option<&str> {
        let (stamp, _) = self.keys.as_ref()?;
        (!stamp.is_empty()).then_some(stamp.as_str())
    }
}

/// Per node, what was last read there (see the module's note).
#[derive(Debug, Default)]
pub struct Known {
    nodes: std::sync::Mutex<HashMap<String, NodeConf>>,
    proofs: std::sync::Mutex<HashMap<String, Proof>>,
}

/// A token a node issued (and validated, when asked), with the stamp of its keystone.conf and
/// key files read before the token was asked for, and its keystone.conf then naming the
/// provider the token came from.
#[derive(Debug, Clone)]
struct Proof {
    stamp: String,
    check: TokenCheck,
    at: DateTime<Utc>,
}

/// A stamp's keystone.conf line (its first after the `openssl` line): path, inode, size,
/// mode, owner, modification and change times.
pub fn conf_line(stamp: &str) -> Option<&str> {
    let rest = stamp.strip_prefix("openssl\n").unwrap_or(stamp);
    rest.lines()
        .next()
        .filter(|l| !l.is_empty() && *l != "openssl")
}

impl Known {
    pub fn get(&self, node: &str) -> Option<NodeConf> {
        self.nodes.lock().expect("known nodes").get(node).cloned()
    }

    /// The stamp `node`'s last read printed (its keystone.conf and key files), if that read
    /// kept one.
    pub fn stamp(&self, node: &str) -> Option<String> {
        self.get(node)?.stamp().map(str::to_string)
    }

    pub fn put(&self, node: &str, paths: RepoPaths, conf: String, keys: Option<(String, String)>) {
        self.nodes
            .lock()
            .expect("known nodes")
            .insert(node.to_string(), NodeConf { paths, conf, keys });
    }

    /// keystone.conf was written: the next read of it comes from the node.
    pub fn forget_conf(&self, node: &str) {
        self.nodes.lock().expect("known nodes").remove(node);
    }

    /// keystone.conf was written and read back as `conf` (its repositories stay where they
    /// were), after the node's `stamp` was read, when it was. That stamp becomes the last read's
    /// if the key files are as that read left them (only keystone.conf's line differs); else
    /// the key files' stamp is dropped and the next read reads them whole.
    pub fn update_conf(&self, node: &str, conf: String, stamp: Option<String>) {
        if let Some(k) = self.nodes.lock().expect("known nodes").get_mut(node) {
            k.conf = conf;
            if let Some(now) = stamp {
                let keep = k.keys.as_ref().is_some_and(|(was, _)| {
                    super::api::only_conf_changed(&now, was) || now == *was
                });
                k.keys = if keep {
                    k.keys.take().map(|(_, facts)| (now, facts))
                } else {
                    None
                };
            }
        }
    }

    /// Keep `check`, a token `node` issued at `at`, as its proof, if it is one: `stamp` was read
    /// on the node before the token was asked for, the keystone.conf last read there is the one
    /// that stamp covers (same conf line), and it names the provider the token came from. A
    /// token that failed, or that disagrees with the conf (edited since the last restart), is
    /// no proof, and the node's last one is dropped: its next probe asks it again.
    pub fn prove(&self, node: &str, stamp: &str, check: &TokenCheck, at: DateTime<Utc>) {
        let agrees = self.get(node).is_some_and(|k| {
            let same_conf = match (k.keys.as_ref(), conf_line(stamp)) {
                (Some((was, _)), Some(now)) => conf_line(was) == Some(now),
                _ => false,
            };
            let configured = super::conf::token_settings(&k.conf).provider;
            same_conf
                && check.issue_status == 201
                && check.error.is_none()
                && check.kept_since.is_none()
                && check
                    .format
                    .provider()
                    .is_some_and(|p| p.as_str() == configured)
        });
        let mut proofs = self.proofs.lock().expect("known proofs");
        if agrees {
            let proof = Proof {
                stamp: stamp.to_string(),
                check: check.clone(),
                at,
            };
            proofs.insert(node.to_string(), proof);
        } else {
            proofs.remove(node);
        }
    }

    /// `node` is being restarted (by cutover): its next probe asks it again.
    pub fn drop_proof(&self, node: &str) {
        self.proofs.lock().expect("known proofs").remove(node);
    }

    /// The token `node` last proved itself with, for a probe that reads its stamp as `stamp`
    /// now: kept for the provider it serves while its keystone.conf's stamp line is the same;
    /// for a validated token (`validated`) only while every file of the stamp is the same and
    /// the token validated. Marked with when it was issued ([`TokenCheck::kept_since`]).
    pub fn proof(&self, node: &str, stamp: &str, validated: bool) -> Option<TokenCheck> {
        let proofs = self.proofs.lock().expect("known proofs");
        let p = proofs.get(node)?;
        let holds = if validated {
            p.check.validated() && p.stamp == stamp
        } else {
            conf_line(&p.stamp).is_some() && conf_line(&p.stamp) == conf_line(stamp)
        };
        holds.then(|| TokenCheck {
            kept_since: Some(p.at),
            ..p.check.clone()
        })
    }
}

/// A marker line no file on a node contains: a fixed prefix and a fresh random number.
pub fn marker(what: &str) -> String {
    format!("==cutover-{what}-{:016x}", rand::random::<u64>())
}

/// `out` split at the line `marker` (which the script printed after a newline of its own): what
/// came before (without that added newline) and what came after the marker's line.
pub fn split_at_marker<'a>(out: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let needle = format!("\n{marker}");
    let at = out.find(&needle)?;
    let rest = &out[at + needle.len()..];
    let rest = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
    Some((&out[..at], rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_splits_at_its_marker_only() {
        let m = marker("conf");
        assert!(m.starts_with("==cutover-conf-"));
        assert_ne!(m, marker("conf"));
        // A conf that ends without a newline, and one that mentions a marker of another run.
        let out = format!("[token]\nprovider = fernet\n==cutover-conf-0\n{m}\n==fernet\n");
        let (conf, rest) = split_at_marker(&out, &m).unwrap();
        assert_eq!(conf, "[token]\nprovider = fernet\n==cutover-conf-0");
        assert_eq!(rest, "==fernet\n");
        let out = format!("a\n\n{m} 3\nb\n");
        assert_eq!(split_at_marker(&out, &m), Some(("a\n", "b\n")));
        assert_eq!(split_at_marker("no marker", &m), None);
    }

    #[test]
    fn forgetting_a_conf_forgets_the_node() {
        let k = Known::default();
        let p = RepoPaths {
            fernet: "/f".into(),
            private: "/p".into(),
            public: "/u".into(),
        };
        k.put("n1", p.clone(), "x".into(), None);
        assert_eq!(k.get("n1").unwrap().paths, p);
        k.update_conf("n1", "y".into(), None);
        assert_eq!(k.get("n1").unwrap().conf, "y");
        k.forget_conf("n1");
        assert!(k.get("n1").is_none());
        k.update_conf("n1", "z".into(), None);
        assert!(k.get("n1").is_none());
    }

    fn paths() -> RepoPaths {
        RepoPaths {
            fernet: "/f".into(),
            private: "/p".into(),
            public: "/u".into(),
        }
    }

    /// A stamp as a node prints it: openssl, the conf's line, then the key files' lines.
    fn stamp(conf_ctime: &str, keys: &str) -> String {
        format!(
            "openssl\n/etc/keystone/keystone.conf 42 900 640 0:0 2026-12-02 16:00:00.1 {conf_ctime}\n/u/n1.pem 7 180 644 0:0 {keys}"
        )
    }

    /// n1 read once: its conf names jws; the stamp read with it.
    fn read_as_jws() -> (Known, String) {
        let k = Known::default();
        let was = stamp("c1", "k1");
        k.put(
            "n1",
            paths(),
            "[token]\nprovider = jws\n".into(),
            Some((was.clone(), String::new())),
        );
        (k, was)
    }

    fn token(format: crate::engine::facts::TokenFormat, validated: bool) -> TokenCheck {
        TokenCheck {
            node: "n1".into(),
            format,
            issue_status: 201,
            validate_status: validated.then_some(200),
            latency_ms: 40,
            ..Default::default()
        }
    }

    #[test]
    fn a_token_that_agrees_with_the_conf_stands_while_the_files_it_covers_are_unchanged() {
        use crate::engine::facts::TokenFormat;
        let (k, was) = read_as_jws();
        let at = Utc::now();
        k.prove("n1", &was, &token(TokenFormat::Jws, true), at);
        // Nothing changed: it stands for both reads, marked with when it was issued.
        let kept = k
            .proof("n1", &was, true)
            .expect("kept for a validated read");
        assert_eq!(kept.kept_since, Some(at));
        assert!(kept.validated());
        assert!(k.proof("n1", &was, false).is_some());
        // A key file changed: the provider still stands, the validation does not.
        let keys_changed = stamp("c1", "k2");
        assert!(k.proof("n1", &keys_changed, true).is_none());
        assert_eq!(
            k.proof("n1", &keys_changed, false).map(|t| t.format),
            Some(TokenFormat::Jws)
        );
        // keystone.conf changed (written, even back to the same text): asked again.
        assert!(k.proof("n1", &stamp("c2", "k1"), false).is_none());
        // A kept token is never kept again as a new proof of its own.
        k.prove("n1", &was, &kept, Utc::now());
        assert!(k.proof("n1", &was, false).is_none());
        // Restarted by cutover: asked again.
        k.prove("n1", &was, &token(TokenFormat::Jws, true), at);
        k.drop_proof("n1");
        assert!(k.proof("n1", &was, false).is_none());
    }

    #[test]
    fn a_token_that_disagrees_with_the_conf_or_a_conf_read_apart_from_its_stamp_is_no_proof() {
        use crate::engine::facts::TokenFormat;
        let (k, was) = read_as_jws();
        // The conf says jws, the Keystone still issues Fernet (not restarted since the edit).
        k.prove("n1", &was, &token(TokenFormat::Fernet, true), Utc::now());
        assert!(k.proof("n1", &was, false).is_none());
        // A proof that held is dropped by a token that disagrees.
        k.prove("n1", &was, &token(TokenFormat::Jws, true), Utc::now());
        assert!(k.proof("n1", &was, false).is_some());
        k.prove("n1", &was, &token(TokenFormat::Fernet, false), Utc::now());
        assert!(k.proof("n1", &was, false).is_none());
        // A failed issue is no proof.
        let failed = TokenCheck {
            issue_status: 401,
            error: Some("credentials refused".into()),
            ..token(TokenFormat::None, false)
        };
        k.prove("n1", &was, &failed, Utc::now());
        assert!(k.proof("n1", &was, false).is_none());
        // keystone.conf as written by cutover, its stamp not read since: the stamp read before
        // the token is not the one this conf text came with, so nothing is proved.
        k.update_conf("n1", "[token]\nprovider = fernet\n".into(), None);
        let now = stamp("c2", "k1");
        k.prove("n1", &now, &token(TokenFormat::Fernet, true), Utc::now());
        assert!(k.proof("n1", &now, false).is_none());
        // Never read on this node: no proof either.
        k.prove("n2", &now, &token(TokenFormat::Fernet, true), Utc::now());
        assert!(k.proof("n2", &now, false).is_none());
        assert_eq!(conf_line(&now), now.lines().nth(1));
        assert_eq!(conf_line("openssl"), None);
    }
}
