//! Key material: fingerprints (never the keys themselves leave memory) and native ES256 keypairs.

mod copy;
mod fernet;
mod jws;

pub use copy::SourceKeys;

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::drivers::{DResult, Done, Fleet};
use crate::engine::action::Keys;

impl Fleet {
    pub(in crate::drivers) async fn run_keys(&self, spec: &Keys) -> DResult<Done> {
        match spec {
            Keys::CreateKeypair { node, keygen } => self.create_keypair(node, *keygen).await,
            Keys::CreateSharedKeypair {
                origin,
                nodes,
                keygen,
            } => self.create_shared_keypair(origin, nodes, *keygen).await,
            Keys::InstallKeys { node, public } => self.install_keys(node, *public).await,
            Keys::PublishStagedKeys { node, from } => self.publish_staged(node, from).await,
            Keys::RemoveRetiredKeys { node, nodes } => self.remove_retired(node, nodes).await,
            Keys::RotateFernet { node } => self.rotate_fernet(node).await,
            Keys::SyncFernet { node, from } => self.sync_fernet(node, from).await,
            Keys::DistributePublicKeys { node, from } => self.distribute(node, from).await,
        }
    }
}

/// Why key material could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no `{0}` block")]
    NoBegin(String),
    #[error("no `{0}`")]
    NoEnd(String),
    #[error("bad PEM body: {0}")]
    Body(#[from] base64::DecodeError),
    #[error("not a P-256 PKCS#8 key: {0}")]
    NotP256(p256::pkcs8::Error),
    #[error("encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: p256::pkcs8::spki::Error,
    },
    #[error("encode private key: {0}")]
    EncodePrivate(p256::pkcs8::Error),
}

/// `SHA256:<base64>` of a public key's SubjectPublicKeyInfo DER, from its PEM text.
pub fn public_fingerprint(pem_text: &str) -> Result<String, KeyError> {
    let der = pem_der(pem_text, "PUBLIC KEY")?;
    Ok(fingerprint_der(&der))
}

pub fn fingerprint_der(der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(der))
    )
}

/// A short, file-name-safe tag for a fingerprint (for naming published public keys).
pub fn fingerprint_tag(fp: &str) -> String {
    fp.trim_start_matches("SHA256:")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect()
}

fn pem_der(text: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| KeyError::NoBegin(begin.clone()))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| KeyError::NoEnd(end.clone()))?
        + start;
    let b64: String = text[start..stop].split_whitespace().collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

/// The fingerprint of the public half of a PKCS#8 private key (P-256), derived in memory.
pub fn private_fingerprint(pem_text: &str) -> Result<String, KeyError> {
    use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let sk = p256::SecretKey::from_pkcs8_pem(pem_text).map_err(KeyError::NotP256)?;
    let der = sk
        .public_key()
        .to_public_key_der()
        .map_err(|source| KeyError::Encode {
            what: "public key",
            source,
        })?;
    Ok(fingerprint_der(der.as_bytes()))
}

/// A fresh ES256 keypair as (private PKCS#8 PEM, public SPKI PEM). The private half is zeroized
/// when dropped.
pub fn generate_es256() -> Result<(Secret, String), KeyError> {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let private = sk
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(KeyError::EncodePrivate)?;
    let public = sk
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|source| KeyError::Encode {
            what: "public key",
            source,
        })?;
    Ok((Secret::from(private.as_bytes().to_vec()), public))
}

/// Key bytes (a private key, a Fernet key): wiped when dropped (`zeroize`), never printed.
pub struct Secret(pub Zeroizing<Vec<u8>>);

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// sha256 over a Fernet repository listing (`sha256sum` lines of its key files): equal
/// repositories give equal fingerprints; the keys themselves are never read here.
pub fn fernet_repo_fingerprint(sha256sum_lines: &[(String, String)]) -> String {
    let mut v: Vec<&(String, String)> = sha256sum_lines.iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, digest) in v {
        h.update(name.as_bytes());
        h.update(b" ");
        h.update(digest.as_bytes());
        h.update(b"\n");
    }
    fingerprint_der(&h.finalize())
}

// ----- keystone-manage -----

/// Where keystone-manage is looked for after the PATH and the login shell's PATH, in order:
/// distribution packages, pip installs, venvs under /opt, kolla's venv, and OpenStack-Ansible's
/// venvs (the newest version first).
pub const KEYSTONE_MANAGE_PLACES: &[&str] = &[
    "/usr/bin/keystone-manage",
    "/usr/local/bin/keystone-manage",
    "/opt/*/bin/keystone-manage",
    "/opt/*/venv*/bin/keystone-manage",
    "/var/lib/kolla/venv/bin/keystone-manage",
    "/openstack/venvs/keystone-*/bin/keystone-manage",
];

/// The exit status of [`keystone_manage_script`] when keystone-manage is not found (or the
/// inventory's `keystone_manage:` is not an executable file).
pub const KEYSTONE_MANAGE_NOT_FOUND: i32 = 127;

/// The line [`keystone_manage_script`] prints before anything else: which keystone-manage runs.
const KEYSTONE_MANAGE_MARK: &str = "==keystone-manage ";

/// Find keystone-manage (`explicit`, the inventory's `keystone_manage:`, or else the PATH, the
/// login shell's PATH (`bash -lc 'command -v keystone-manage'`) and `places`), say which one on
/// stdout, and run `create_jws_keypair` with it in `staging` (mode 0700): it writes
/// private.pem and public.pem into the current directory. The private key is made 0600 and the
/// public key printed. Not found: exit [`KEYSTONE_MANAGE_NOT_FOUND`] with where it looked on
/// stderr, nothing created. Failed: its stderr (the last 200 lines) on stderr, and nothing left
/// behind (no keystone-manage.err, no half keypair, the staging directory removed if empty).
pub fn keystone_manage_script(
    staging: &str,
    conf: &str,
    user: &str,
    group: &str,
    explicit: Option<&str>,
    places: &[&str],
) -> String {
    use crate::transport::shell_quote;
    let find = match explicit {
        Some(path) => format!(
            r#"if found {p}; then km={p}; else echo "keystone-manage: "{p}" (keystone_manage: in the inventory) is not an executable file on $(uname -n)" >&2; exit {nf}; fi"#,
            p = shell_quote(path),
            nf = KEYSTONE_MANAGE_NOT_FOUND
        ),
        None => {
            // Globs stay unquoted; of several matches (OpenStack-Ansible keeps a venv per
            // version) the newest version comes first.
            let globs: Vec<String> = places
                .iter()
                .map(|place| {
                    if place.contains('*') {
                        format!(r#"$(ls -d {place} 2>/dev/null | {{ sort -rV 2>/dev/null || sort -r; }})"#)
                    } else {
                        place.to_string()
                    }
                })
                .collect();
            format!(
                r#"login=$(command -v bash >/dev/null 2>&1 && bash -lc 'command -v keystone-manage' </dev/null 2>/dev/null | tail -n 1 || true)
for c in "$(command -v keystone-manage 2>/dev/null || true)" "$login" {globs}; do
  if [ -n "$c" ] && found "$c"; then km=$c; break; fi
done
if [ -z "$km" ]; then echo "keystone-manage not found on $(uname -n): looked on the PATH ($PATH), the login shell's PATH, {list}" >&2; exit {nf}; fi"#,
                globs = globs.join(" "),
                list = places.join(", "),
                nf = KEYSTONE_MANAGE_NOT_FOUND
            )
        }
    };
    format!(
        r#"set -e; umask 077; s={s}; km=
found() {{ [ -f "$1" ] && [ -x "$1" ]; }}
{find}
echo "{mark}$km"
gone() {{ rm -f -- "$s/private.pem" "$s/public.pem" "$s/keystone-manage.err"; rmdir -- "$s" 2>/dev/null || true; }}
mkdir -p -- "$s"; chmod 700 -- "$s"; cd -- "$s"
rm -f private.pem public.pem keystone-manage.err
if ! "$km" --config-file {c} create_jws_keypair --force --keystone-user {u} --keystone-group {g} >/dev/null 2>keystone-manage.err; then
  tail -n 200 keystone-manage.err >&2; cd /; gone; exit 1
fi
if [ ! -f private.pem ] || [ ! -f public.pem ]; then
  echo "$km create_jws_keypair exited 0 but wrote no private.pem and public.pem in $s" >&2; cd /; gone; exit 1
fi
rm -f keystone-manage.err; chmod 600 private.pem; cat public.pem
"#,
        s = shell_quote(staging),
        c = shell_quote(conf),
        u = shell_quote(user),
        g = shell_quote(group),
        mark = KEYSTONE_MANAGE_MARK,
    )
}

/// [`keystone_manage_script`]'s stdout: which keystone-manage ran, and the rest (the public
/// key, on success).
pub fn keystone_manage_output(stdout: &str) -> (Option<String>, String) {
    match stdout.split_once('\n') {
        Some((first, rest)) if first.starts_with(KEYSTONE_MANAGE_MARK) => (
            Some(first[KEYSTONE_MANAGE_MARK.len()..].trim().to_string()),
            rest.to_string(),
        ),
        _ => (None, stdout.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_and_its_public_half_have_one_fingerprint() {
        let (private, public) = generate_es256().unwrap();
        let text = String::from_utf8(private.0.to_vec()).unwrap();
        assert_eq!(
            private_fingerprint(&text).unwrap(),
            public_fingerprint(&public).unwrap()
        );
        assert!(
            private_fingerprint("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn generated_keys_fingerprint_consistently() {
        let (private, public) = generate_es256().unwrap();
        let text = String::from_utf8(private.0.to_vec()).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        let fp = public_fingerprint(&public).unwrap();
        assert!(fp.starts_with("SHA256:"));
        assert_eq!(public_fingerprint(&public).unwrap(), fp);
        let (_, other) = generate_es256().unwrap();
        assert_ne!(public_fingerprint(&other).unwrap(), fp);
        assert!(format!("{private:?}").contains("bytes"));
        assert!(!format!("{private:?}").contains("BEGIN"));
    }

    /// `sh -c SCRIPT` with PATH set to `path` (and the system's directories, for the tools).
    fn sh(script: &str, path: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{path}:/usr/bin:/bin"))
            .output()
            .unwrap()
    }

    /// A fake keystone-manage: `body` runs with create_jws_keypair's arguments.
    fn fake(dir: &std::path::Path, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("keystone-manage");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    fn s(p: &std::path::Path) -> String {
        p.display().to_string()
    }

    const WRITES_A_KEYPAIR: &str = r#"echo "$@" > args
printf -- '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' > private.pem
printf -- '-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n' > public.pem
echo 'EventletDeprecationWarning: Eventlet is deprecated' >&2"#;

    #[test]
    fn keystone_manage_is_found_in_a_venv_and_runs_in_the_staging_directory() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let staging = d.path().join("jws-keys/.cutover-staging");
        std::fs::create_dir_all(d.path().join("jws-keys")).unwrap();
        let km = fake(&d.path().join("opt/keystone/venv-30/bin"), WRITES_A_KEYPAIR);
        let places = [
            format!("{}/usr/bin/keystone-manage", s(d.path())),
            format!("{}/opt/*/bin/keystone-manage", s(d.path())),
            format!("{}/opt/*/venv*/bin/keystone-manage", s(d.path())),
        ];
        let places: Vec<&str> = places.iter().map(String::as_str).collect();
        let script = keystone_manage_script(
            &s(&staging),
            "/etc/keystone/keystone.conf",
            "keystone",
            "keystone",
            None,
            &places,
        );
        let out = sh(&script, &s(&d.path().join("empty")));
        assert!(out.status.success(), "{out:?}");
        let (which, public) = keystone_manage_output(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(which.as_deref(), Some(km.as_str()));
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
        let args = std::fs::read_to_string(staging.join("args")).unwrap();
        assert_eq!(
            args.trim(),
            "--config-file /etc/keystone/keystone.conf create_jws_keypair --force --keystone-user keystone --keystone-group keystone"
        );
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&staging), 0o700);
        assert_eq!(mode(&staging.join("private.pem")), 0o600);
        assert!(!staging.join("keystone-manage.err").exists());

        // The PATH comes first.
        let first = fake(&d.path().join("bin"), WRITES_A_KEYPAIR);
        let out = sh(&script, &s(&d.path().join("bin")));
        assert!(out.status.success(), "{out:?}");
        let (which, _) = keystone_manage_output(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(which.as_deref(), Some(first.as_str()));
    }

    #[test]
    fn the_newest_venv_of_several_is_taken() {
        let d = tempfile::tempdir().unwrap();
        let venvs = d.path().join("openstack/venvs");
        for v in ["9.0.0", "30.0.0", "29.0.1"] {
            fake(&venvs.join(format!("keystone-{v}/bin")), WRITES_A_KEYPAIR);
        }
        let place = format!("{}/keystone-*/bin/keystone-manage", s(&venvs));
        let script = keystone_manage_script(
            &s(&d.path().join(".cutover-staging")),
            "/k.conf",
            "k",
            "k",
            None,
            &[place.as_str()],
        );
        let out = sh(&script, "/nonexistent");
        assert!(out.status.success(), "{out:?}");
        let (which, _) = keystone_manage_output(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            which,
            Some(format!("{}/keystone-30.0.0/bin/keystone-manage", s(&venvs)))
        );
    }

    #[test]
    fn keystone_manage_not_found_says_where_it_looked_and_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let staging = d.path().join(".cutover-staging");
        let places = [format!("{}/opt/*/bin/keystone-manage", s(d.path()))];
        let places: Vec<&str> = places.iter().map(String::as_str).collect();
        let script = keystone_manage_script(&s(&staging), "/k.conf", "k", "k", None, &places);
        let out = sh(&script, &s(&d.path().join("empty")));
        assert_eq!(out.status.code(), Some(KEYSTONE_MANAGE_NOT_FOUND));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("keystone-manage not found on")
                && err.contains("the login shell's PATH")
                && err.contains(&format!("{}/opt/*/bin/keystone-manage", s(d.path()))),
            "{err}"
        );
        assert!(!staging.exists());

        // Named in the inventory but not there: the same status, naming it.
        let script = keystone_manage_script(
            &s(&staging),
            "/k.conf",
            "k",
            "k",
            Some("/nonexistent/keystone-manage"),
            &places,
        );
        let out = sh(&script, "/nonexistent");
        assert_eq!(out.status.code(), Some(KEYSTONE_MANAGE_NOT_FOUND));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("/nonexistent/keystone-manage"),
            "{out:?}"
        );
        assert!(!staging.exists());
    }

    #[test]
    fn a_failed_keystone_manage_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let staging = d.path().join(".cutover-staging");
        let km = fake(
            &d.path().join("bin"),
            "echo 'half' > private.pem\necho 'EventletDeprecationWarning: Eventlet is deprecated' >&2\necho 'CRITICAL keystone [-] Unhandled error: argument --keystone-user: invalid' >&2\nexit 2",
        );
        let script = keystone_manage_script(&s(&staging), "/k.conf", "k", "k", Some(&km), &[]);
        let out = sh(&script, "/nonexistent");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("CRITICAL keystone"), "{err}");
        assert!(
            err.contains("EventletDeprecationWarning"),
            "all of it: {err}"
        );
        assert!(!staging.exists(), "the staging directory is removed");
        let (which, _) = keystone_manage_output(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(which.as_deref(), Some(km.as_str()));

        // A staging directory that holds something else stays, without our files.
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("other"), "x").unwrap();
        let out = sh(&script, "/nonexistent");
        assert_eq!(out.status.code(), Some(1));
        let left: Vec<String> = std::fs::read_dir(&staging)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["other".to_string()]);
    }
}
