//! Copying public keys between nodes in as few round trips as they can take: each source key
//! read once per phase (however many nodes it is copied to), and all of a node's new keys
//! written, and the node read back, in one exec.

use crate::drivers::{DResult, DriverError, Fleet, keys};
use crate::engine::facts::NodeFacts;
use crate::inventory::name_path;
use crate::transport::shell_quote;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a public key read from its node is copied without reading it again. The keys
/// actions of this session forget a node's keys whenever they change them; this bounds what a
/// change made by hand during a pause could leave stale (and keys-everywhere compares every
/// copy with its node's private key before any flip).
const FRESH: Duration = Duration::from_secs(120);

/// A public key as read on its node, to be copied to others.
#[derive(Debug, Clone)]
pub struct SourceKey {
    pub pem: String,
    pub fingerprint: String,
    read_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<SourceKey>>>;

/// Public keys read on their nodes, per node and kind (installed `<node>.pem`, or the one
/// staged for the next rotation). One slot each, so that the copies running at once to every
/// node wait for one read instead of each making its own.
#[derive(Debug, Default)]
pub struct SourceKeys {
    slots: std::sync::Mutex<HashMap<(String, bool), Slot>>,
}

impl SourceKeys {
    fn slot(&self, node: &str, staged: bool) -> Slot {
        self.slots
            .lock()
            .expect("source keys")
            .entry((node.to_string(), staged))
            .or_default()
            .clone()
    }

    /// `node`'s key material changed (or may have): its keys are read again when next copied.
    pub fn forget(&self, node: &str) {
        self.slots
            .lock()
            .expect("source keys")
            .retain(|(n, _), _| n != node);
    }
}

/// One exec that writes `files` (name, PEM text) into the public repository `public`, each
/// renamed into place whole (written first into a directory beside the repository: never a
/// partial key, and nothing but keys in the repository, which Keystone reads every file of),
/// mode 0644 and owned by `user:group`. Public keys only: they travel in the script.
pub fn write_public_script(
    public: &str,
    user: &str,
    group: &str,
    files: &[(String, String)],
) -> String {
    let mut s = format!(
        r#"set -e; u={u}; o={o}; g={g}
[ -d "$u" ] || {{ echo "no public key repository $u" >&2; exit 1; }}
p="${{u%/}}"; p="${{p%/*}}"; [ -n "$p" ] || p=/
d=$(mktemp -d "$p/.cutover-incoming.XXXXXX")
trap 'rm -rf -- "$d"' EXIT
"#,
        u = shell_quote(public),
        o = shell_quote(user),
        g = shell_quote(group),
    );
    for (name, pem) in files {
        s.push_str(&format!(
            "printf '%s' {} > \"$d\"/{}\n",
            shell_quote(pem),
            shell_quote(name)
        ));
    }
    if !files.is_empty() {
        s.push_str(
            "chmod 644 -- \"$d\"/*\nchown -- \"$o:$g\" \"$d\"/*\nmv -f -- \"$d\"/* \"$u\"/\n",
        );
    }
    s.push_str("rmdir -- \"$d\"; trap - EXIT\n");
    s
}

impl Fleet {
    /// `m`'s public key (installed as `<m>.pem` in its public repository, or `staged` for the
    /// next rotation), read on `m` at most once per phase.
    pub(in crate::drivers) async fn source_key(&self, m: &str, staged: bool) -> DResult<SourceKey> {
        let slot = self.source_keys.slot(m, staged);
        let mut slot = slot.lock().await;
        if let Some(k) = slot.as_ref()
            && k.read_at.elapsed() < FRESH
        {
            return Ok(k.clone());
        }
        let paths = self.repo_paths(m).await?;
        let src = if staged {
            Path::new(&crate::drivers::keystone::api::staging_dir(&paths.private))
                .join("public.pem")
        } else {
            name_path(Path::new(&paths.public), m, ".pem")?
        };
        let t = self.node_transport(m).await?;
        let pem = t.read_file(&src, self.node(m)?.sudo).await.map_err(|e| {
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
        let pem = String::from_utf8_lossy(&pem).into_owned();
        let fingerprint = keys::public_fingerprint(&pem).map_err(|e| {
            DriverError::new(
                format!("{m}: {} is not a public key: {e}", src.display()),
                "re-run the keys step",
            )
        })?;
        let k = SourceKey {
            pem,
            fingerprint,
            read_at: Instant::now(),
        };
        *slot = Some(k.clone());
        Ok(k)
    }

    /// Copy the public keys of `from` into `node`'s public repository: each node's installed
    /// `<m>.pem`, or (`staged`) the next key waiting in its staging directory, written as
    /// `<m>.<fingerprint tag>.pem` beside the current ones. The sources are read at once (each
    /// at most once per phase), then one exec on `node` writes them all and reads it back.
    /// Returns the names written and the node's facts afterwards, which must show every key.
    pub(in crate::drivers) async fn copy_public_keys(
        &self,
        node: &str,
        from: &[String],
        staged: bool,
    ) -> DResult<(Vec<String>, NodeFacts)> {
        let n = self.node(node)?;
        let paths = self.repo_paths(node).await?;
        let read = futures::future::join_all(from.iter().map(|m| self.source_key(m, staged))).await;
        let mut files = Vec::new();
        let mut prints = Vec::new();
        for (m, k) in from.iter().zip(read) {
            let k = k?;
            let suffix = if staged {
                format!(".{}.pem", keys::fingerprint_tag(&k.fingerprint))
            } else {
                ".pem".to_string()
            };
            // Checked as a name (letters, digits, `.`, `_`, `-`) before it reaches a path.
            name_path(Path::new(&paths.public), m, &suffix)?;
            files.push((format!("{m}{suffix}"), k.pem));
            prints.push((format!("{m}{suffix}"), k.fingerprint));
        }
        let script =
            write_public_script(&paths.public, &n.keystone_user, &n.keystone_group, &files);
        let (ran, after) = self.node_facts_after(node, Some(&script)).await?;
        let ran = ran.expect("a change was run");
        if ran.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: writing public keys into {} failed: {}",
                    paths.public,
                    ran.last_line()
                ),
                "check that the public repository exists and is writable (sudo: true?), then resume",
            ));
        }
        let missing: Vec<String> = prints
            .iter()
            .filter(|(_, fp)| !after.jws.has_public(fp))
            .map(|(name, fp)| format!("{name} ({})", crate::engine::facts::short_fp(fp)))
            .collect();
        if !missing.is_empty() {
            return Err(DriverError::new(
                format!(
                    "{node}: written, but {} does not hold {} when read back",
                    paths.public,
                    missing.join(", ")
                ),
                "inspect the public repository on the node, then resume",
            ));
        }
        Ok((files.into_iter().map(|(name, _)| name).collect(), after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    }

    #[test]
    fn every_key_lands_whole_and_nothing_else_is_left() {
        let d = tempfile::tempdir().unwrap();
        let public = d.path().join("public");
        std::fs::create_dir(&public).unwrap();
        std::fs::write(public.join("old.pem"), "old").unwrap();
        let (_, a) = keys::generate_es256().unwrap();
        let (_, b) = keys::generate_es256().unwrap();
        // A name with a quote in the content: quoting holds.
        let files = vec![
            ("n1.pem".to_string(), a.clone()),
            ("n2.pem".to_string(), format!("{b}# it's\n")),
        ];
        let id = |flag: &str| {
            let out = std::process::Command::new("id").arg(flag).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let (user, group) = (id("-un"), id("-gn"));
        let out = sh(&write_public_script(
            &public.display().to_string(),
            &user,
            &group,
            &files,
        ));
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read_to_string(public.join("n1.pem")).unwrap(), a);
        assert_eq!(
            std::fs::read_to_string(public.join("n2.pem")).unwrap(),
            format!("{b}# it's\n")
        );
        assert_eq!(
            std::fs::read_to_string(public.join("old.pem")).unwrap(),
            "old"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(public.join("n1.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        // The incoming directory beside the repository is gone.
        let left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["public".to_string()]);

        // No repository: an error that names it, nothing written anywhere.
        let gone = d.path().join("missing");
        let out = sh(&write_public_script(
            &gone.display().to_string(),
            &user,
            &group,
            &files,
        ));
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no public key repository"));
        assert!(!gone.exists());
    }
}
