//! known_hosts handling as OpenSSH does it: plain, wildcard (`*`, `?`), negated (`!`),
//! `[host]:port` and hashed (`|1|salt|hash`, HMAC-SHA1) host patterns, `@revoked` markers.
//!
//! russh ships a known_hosts checker, but it gives up on the whole file at the first entry it
//! cannot parse and knows neither wildcards, negations nor markers; a file that `ssh` accepts must
//! be accepted here too, so the matching is done here on top of ssh-key's line parser.

use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::ssh_key::{self, HashAlg, PublicKey};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What the known_hosts files say about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// A (non-revoked) entry for this host holds exactly this key.
    Known,
    /// The host has entries, but none holds this key (or the key is marked `@revoked`).
    /// `file` is the first file that names the host.
    Changed { file: PathBuf, revoked: bool },
    /// No file names the host.
    Unknown,
}

/// The SHA256 fingerprint of a key as OpenSSH prints it: `SHA256:` + unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The name a host is recorded under: `host` on port 22, `[host]:port` otherwise.
pub fn host_port_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Entries of one file that concern `host:port`, skipping lines that do not parse (as ssh does).
fn matching_entries(path: &Path, host: &str, port: u16) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let name = host_port_name(host, port);
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            // ssh-key's parser splits on single spaces; OpenSSH accepts any blank run.
            let normalized = line.split_whitespace().collect::<Vec<_>>().join(" ");
            normalized.parse::<Entry>().ok()
        })
        .filter(|e| patterns_match(e.host_patterns(), &name))
        .collect()
}

/// Which key algorithms the files record for this host (to prefer them during key exchange, as
/// OpenSSH does, so a host known by its ECDSA key is not asked for its Ed25519 key).
pub fn known_algorithms(files: &[PathBuf], host: &str, port: u16) -> Vec<ssh_key::Algorithm> {
    let mut out = Vec::new();
    for f in files {
        for e in matching_entries(f, host, port) {
            if e.marker().is_none() && !out.contains(&e.public_key().algorithm()) {
                out.push(e.public_key().algorithm());
            }
        }
    }
    out
}

/// Check `key` for `host:port` against `files`, in order.
pub fn check(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    let mut first_file: Option<PathBuf> = None;
    let mut known = false;
    let mut revoked = false;
    for f in files {
        let entries = matching_entries(f, host, port);
        if !entries.is_empty() && first_file.is_none() {
            first_file = Some(f.clone());
        }
        for e in entries {
            let same = e.public_key().key_data() == key.key_data();
            match e.marker() {
                Some(Marker::Revoked) if same => revoked = true,
                Some(_) => {}
                None if same => known = true,
                None => {}
            }
        }
    }
    match (revoked, known, first_file) {
        (true, _, f) => HostKeyStatus::Changed {
            file: f.unwrap_or_default(),
            revoked: true,
        },
        (false, true, _) => HostKeyStatus::Known,
        (false, false, Some(file)) => HostKeyStatus::Changed {
            file,
            revoked: false,
        },
        (false, false, None) => HostKeyStatus::Unknown,
    }
}

/// Append `name key` to a known_hosts file, creating it (mode 0600) and its directory if needed.
pub fn append_entry(path: &Path, host: &str, port: u16, key_openssh: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = key_openssh.trim();
    // Refuse anything that is not one OpenSSH public key line: known_hosts is security-relevant.
    let parsed = PublicKey::from_openssh(key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad key: {e}")))?;
    let key_line = parsed
        .to_openssh()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad key: {e}")))?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        line.push('\n');
    }
    line.push_str(&host_port_name(host, port));
    line.push(' ');
    line.push_str(&key_line);
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

fn patterns_match(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => hmac_sha1(salt, name.as_bytes()) == *hash,
        HostPatterns::Patterns(list) => {
            let mut matched = false;
            for p in list {
                if let Some(neg) = p.strip_prefix('!') {
                    if glob(neg, name) {
                        return false;
                    }
                } else if glob(p, name) {
                    matched = true;
                }
            }
            matched
        }
    }
}

/// OpenSSH's pattern match: `*` any run, `?` one character, case-insensitive.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// HMAC-SHA1, for hashed known_hosts names only (the one place OpenSSH still uses SHA-1; no
/// crate in this build exposes it, and it is short).
fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Vec::with_capacity(64 + msg.len());
    inner.extend(k.iter().map(|b| b ^ 0x36));
    inner.extend_from_slice(msg);
    let ih = sha1(&inner);
    let mut outer = Vec::with_capacity(84);
    outer.extend(k.iter().map(|b| b ^ 0x5c));
    outer.extend_from_slice(&ih);
    sha1(&outer)
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_and_hmac_vectors() {
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        // RFC 2202 test case 2.
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn globs_and_negation() {
        assert!(glob("*.example.org", "a.example.org"));
        assert!(glob("[127.0.0.1]:22?2", "[127.0.0.1]:2222"));
        assert!(!glob("*.example.org", "example.org"));
        let p = HostPatterns::Patterns(vec!["*.lab".into(), "!bad.lab".into()]);
        assert!(patterns_match(&p, "good.lab"));
        assert!(!patterns_match(&p, "bad.lab"));
    }

    #[test]
    fn hashed_entry_from_russh_tests() {
        // Taken from russh's own known_hosts test: |1|O33E...= hashes "example.com".
        let e: Entry = "|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF"
            .parse()
            .unwrap();
        assert!(patterns_match(e.host_patterns(), "example.com"));
        assert!(!patterns_match(e.host_patterns(), "example.org"));
    }
}
