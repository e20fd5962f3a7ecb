//! Signed hard-stop confirmations: OpenSSH's SSHSIG format, made by ssh-agent or an identity file,
//! checked against an `allowed_signers` file as `ssh-keygen -Y verify` and git use.
//!
//! The hash chain proves that nothing was damaged, cut or reordered by accident, but it has no
//! secret in it: someone who edits a confirmation and recomputes every hash after it produces a
//! journal that verifies. A signature made with the operator's SSH key when they confirmed is what
//! a forger cannot recompute.
//!
//! # What is signed
//! The runtime signs each `hard_stop_confirmed` record just before sealing it, when its place in
//! the chain is known. The signed message ([`message`]) names the journal hash at that point (the
//! record's `prev`: the hash of everything before it, including the hard stop that was shown) and
//! binds the confirmation itself (seq, time, run, actor and a sha256 of its `data` without the
//! signature), so neither a different history nor a different `who` keeps the signature valid.
//! The signature goes into the record's `data.signature`; an unsigned confirmation has
//! `"signature": null` and an `unsigned_reason`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::record::{Entry, Record, format_time};

/// The SSHSIG namespace of journal signatures (`ssh-keygen -Y verify -n`).
pub const NAMESPACE: &str = "cutover-journal@cutover";

/// The first line of every signed message; names the message format's version.
pub const MESSAGE_HEADER: &str = "cutover journal confirmation v1";

/// The kind of record that is signed.
pub const SIGNED_KIND: &str = "hard_stop_confirmed";

/// The exact bytes signed for a confirmation record at `seq` after `prev`.
///
/// ```text
/// cutover journal confirmation v1
/// prev <64 hex: the journal hash before this record>
/// seq <n>
/// time "<the record's time>"
/// run "<run id>"
/// actor "<actor>"
/// data-sha256 <64 hex: sha256 of the record's data, keys sorted, without signature fields>
/// ```
///
/// Strings are JSON-quoted so that no value can forge a line.
pub fn message(run: &str, seq: u64, time: &str, actor: &str, prev: &str, data: &Value) -> Vec<u8> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let data_sha = hex::encode(Sha256::digest(canonical(&unsigned_data(data)).as_bytes()));
    format!(
        "{MESSAGE_HEADER}\nprev {prev}\nseq {seq}\ntime {}\nrun {}\nactor {}\ndata-sha256 {data_sha}\n",
        q(time),
        q(run),
        q(actor)
    )
    .into_bytes()
}

/// The signed message of a stored record.
pub fn message_of(r: &Record) -> Vec<u8> {
    message(
        &r.run,
        r.seq,
        &format_time(&r.time),
        &r.actor,
        &r.prev,
        &r.data,
    )
}

/// `data` without the fields the signature adds.
fn unsigned_data(data: &Value) -> Value {
    let mut d = data.clone();
    if let Some(m) = d.as_object_mut() {
        m.remove("signature");
        m.remove("unsigned_reason");
    }
    d
}

/// JSON with object keys sorted at every level: one text for one value, whatever order a map
/// kept its keys in.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap_or_default(),
                        canonical(&m[k])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Who signs confirmations: a key held by ssh-agent, or an identity file decrypted before the UI
/// started.
pub enum Signer {
    Agent { socket: PathBuf, key: PublicKey },
    File { key: Box<PrivateKey>, path: PathBuf },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.describe())
    }
}

impl Signer {
    /// The signer for a run: `--sign-key FILE` if given (a passphrase asked through `prompt`),
    /// else the first key of the ssh-agent at `SSH_AUTH_SOCK`. `Ok(None)`: no agent, or an agent
    /// without keys; confirmations are then recorded unsigned. An identity file that cannot be
    /// read or decrypted is an error: the operator asked for signatures.
    pub fn from_options(
        sign_key: Option<&Path>,
        prompt: &dyn Fn(&Path) -> Option<zeroize::Zeroizing<String>>,
    ) -> Result<Option<Signer>, String> {
        if let Some(path) = sign_key {
            let key = PrivateKey::read_openssh_file(path)
                .map_err(|e| format!("--sign-key {}: {e}", path.display()))?;
            let key = if key.is_encrypted() {
                let pass = prompt(path).ok_or_else(|| {
                    format!(
                        "--sign-key {}: the key is encrypted and no passphrase was given",
                        path.display()
                    )
                })?;
                key.decrypt(pass.as_bytes())
                    .map_err(|e| format!("--sign-key {}: cannot decrypt: {e}", path.display()))?
            } else {
                key
            };
            return Ok(Some(Signer::File {
                key: Box::new(key),
                path: path.to_path_buf(),
            }));
        }
        let Some(socket) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let socket = PathBuf::from(socket);
        let keys = agent_identities(&socket)
            .map_err(|e| format!("ssh-agent at {}: {e}", socket.display()))?;
        Ok(keys
            .into_iter()
            .next()
            .map(|key| Signer::Agent { socket, key }))
    }

    /// The signer's public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Signer::Agent { key, .. } => key.clone(),
            Signer::File { key, .. } => key.public_key().clone(),
        }
    }

    /// For a person: key type, SHA256 fingerprint and where it is held.
    pub fn describe(&self) -> String {
        let k = self.public_key();
        let place = match self {
            Signer::Agent { .. } => "ssh-agent".to_string(),
            Signer::File { path, .. } => path.display().to_string(),
        };
        format!(
            "{} {} ({place})",
            k.algorithm().as_str(),
            k.fingerprint(HashAlg::Sha256)
        )
    }

    /// An SSHSIG over `msg` in [`NAMESPACE`], SHA-512 as `ssh-keygen -Y sign` does.
    pub fn sign(&self, msg: &[u8]) -> Result<SshSig, String> {
        match self {
            Signer::File { key, .. } => key
                .sign(NAMESPACE, HashAlg::Sha512, msg)
                .map_err(|e| format!("signing failed: {e}")),
            Signer::Agent { socket, key } => {
                let data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, msg)
                    .map_err(|e| e.to_string())?;
                let blob = key.to_bytes().map_err(|e| e.to_string())?;
                // SSH_AGENT_RSA_SHA2_512: SSHSIG does not allow SHA-1 RSA signatures.
                let flags = if matches!(key.algorithm(), ssh_key::Algorithm::Rsa { .. }) {
                    4
                } else {
                    0
                };
                let sig = agent_sign(socket, &blob, &data, flags)
                    .map_err(|e| format!("ssh-agent at {}: {e}", socket.display()))?;
                let sig = ssh_key::Signature::try_from(sig.as_slice())
                    .map_err(|e| format!("ssh-agent returned an unreadable signature: {e}"))?;
                SshSig::new(key.key_data().clone(), NAMESPACE, HashAlg::Sha512, sig)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Signs a confirmation entry about to be sealed at `seq` after `prev` (the writer calls this
/// when both are known). Other kinds are left alone. Without a signer, or when signing fails, the
/// confirmation is recorded unsigned with the reason: a missing signature must never block a
/// person's decision at a hard stop.
pub fn sign_entry(signer: Option<&Signer>, entry: &mut Entry, seq: u64, prev: &str) {
    if entry.kind != SIGNED_KIND {
        return;
    }
    let Some(obj) = entry.data.as_object_mut() else {
        return;
    };
    obj.remove("signature");
    obj.remove("unsigned_reason");
    let time = format_time(&chrono::SubsecRound::trunc_subsecs(entry.time, 6));
    let msg = message(&entry.run, seq, &time, &entry.actor, prev, &entry.data);
    let signed = match signer {
        None => Err("no ssh-agent key (SSH_AUTH_SOCK) and no --sign-key".to_string()),
        Some(s) => s.sign(&msg).and_then(|sig| {
            let pem = sig.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;
            let key = s.public_key();
            Ok(json!({
                "format": "sshsig",
                "namespace": NAMESPACE,
                "message": MESSAGE_HEADER,
                "public_key": key.to_openssh().unwrap_or_default(),
                "fingerprint": key.fingerprint(HashAlg::Sha256).to_string(),
                "armored": pem,
            }))
        }),
    };
    let Some(obj) = entry.data.as_object_mut() else {
        return;
    };
    match signed {
        Ok(sig) => {
            obj.insert("signature".into(), sig);
        }
        Err(reason) => {
            obj.insert("signature".into(), Value::Null);
            obj.insert("unsigned_reason".into(), Value::String(reason));
        }
    }
}

/// The SSH fingerprint a confirmation record was signed with, or `None` when it is unsigned.
pub fn signer_of(data: &Value) -> Option<String> {
    let s = data.get("signature")?;
    s.get("armored")?;
    Some(
        s.get("fingerprint")
            .and_then(Value::as_str)
            .unwrap_or("unknown key")
            .to_string(),
    )
}

/// One line of an allowed_signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    pub principals: String,
    pub key: PublicKey,
    /// `namespaces="…"`, when the line restricts them.
    pub namespaces: Option<Vec<String>>,
}

/// Parses an allowed_signers file (`principal[,principal] [options] keytype base64 [comment]`,
/// `#` comments), as `ssh-keygen -Y verify` reads it.
pub fn parse_allowed_signers(text: &str) -> Result<Vec<AllowedSigner>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let tokens = split_quoted(line);
        let at = tokens
            .iter()
            .position(|t| is_key_type(t))
            .filter(|&p| p >= 1 && p + 1 < tokens.len())
            .ok_or_else(|| {
                format!(
                    "line {}: expected `principals [options] keytype base64`",
                    i + 1
                )
            })?;
        let key = PublicKey::from_openssh(&format!("{} {}", tokens[at], tokens[at + 1]))
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        let mut namespaces = None;
        for opt in tokens[1..at].iter().flat_map(|t| split_options(t)) {
            if let Some(v) = opt.strip_prefix("namespaces=") {
                namespaces = Some(v.trim_matches('"').split(',').map(str::to_string).collect());
            }
        }
        out.push(AllowedSigner {
            principals: tokens[0].clone(),
            key,
            namespaces,
        });
    }
    Ok(out)
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-sha2-") || t.starts_with("sk-")
}

/// An options token split at the commas outside double quotes.
fn split_options(t: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in t.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().expect("never empty").push(c);
    }
    out
}

/// Whitespace-separated tokens; double quotes keep spaces and commas inside one token.
fn split_quoted(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What [`check_signatures`] found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SignatureReport {
    /// Confirmation records in the journal.
    pub confirmations: usize,
    /// Of which carry a signature.
    pub signed: usize,
    /// With allowed signers: signatures that verified, with the principals of their key.
    pub verified: Vec<(u64, String)>,
    /// With allowed signers: (seq, why) of every signature that is bad or by an unknown key.
    pub bad: Vec<(u64, String)>,
}

/// Counts the signed confirmations and, given allowed signers, verifies every signature.
pub fn check_signatures(records: &[Record], allowed: Option<&[AllowedSigner]>) -> SignatureReport {
    let mut rep = SignatureReport::default();
    for r in records.iter().filter(|r| r.kind == SIGNED_KIND) {
        rep.confirmations += 1;
        let armored = r
            .data
            .get("signature")
            .and_then(|s| s.get("armored"))
            .and_then(Value::as_str);
        if armored.is_some() {
            rep.signed += 1;
        }
        let Some(allowed) = allowed else { continue };
        match verify_record(r, armored, allowed) {
            Ok(principals) => rep.verified.push((r.seq, principals)),
            Err(why) => rep.bad.push((r.seq, why)),
        }
    }
    rep
}

fn verify_record(
    r: &Record,
    armored: Option<&str>,
    allowed: &[AllowedSigner],
) -> Result<String, String> {
    let armored = armored.ok_or_else(|| "the confirmation is unsigned".to_string())?;
    let sig = SshSig::from_pem(armored).map_err(|e| format!("unreadable signature: {e}"))?;
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "signature namespace {:?}, not {NAMESPACE:?}",
            sig.namespace()
        ));
    }
    let key = PublicKey::from(sig.public_key().clone());
    let fp = key.fingerprint(HashAlg::Sha256);
    let signer = allowed
        .iter()
        .find(|a| {
            a.key.key_data() == sig.public_key()
                && a.namespaces
                    .as_ref()
                    .is_none_or(|ns| ns.iter().any(|n| n == NAMESPACE))
        })
        .ok_or_else(|| format!("signed by {fp}, which is not an allowed signer"))?;
    key.verify(NAMESPACE, &message_of(r), &sig).map_err(|e| {
        format!("the signature by {fp} does not match the record or the journal before it ({e})")
    })?;
    Ok(signer.principals.clone())
}

// --- a minimal, synchronous ssh-agent client (the two requests this needs) ---

const AGENTC_REQUEST_IDENTITIES: u8 = 11;
const AGENT_IDENTITIES_ANSWER: u8 = 12;
const AGENTC_SIGN_REQUEST: u8 = 13;
const AGENT_SIGN_RESPONSE: u8 = 14;

fn agent_call(socket: &Path, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    // An agent that asks for confirmation (ssh-add -c) may take a while; not forever.
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = (request.len() as u32).to_be_bytes().to_vec();
    buf.extend_from_slice(request);
    s.write_all(&buf)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 256 * 1024 {
        return Err(std::io::Error::other("agent reply too long"));
    }
    let mut reply = vec![0u8; len];
    s.read_exact(&mut reply)?;
    Ok(reply)
}

fn put_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

fn take_u32(b: &mut &[u8]) -> Result<u32, String> {
    if b.len() < 4 {
        return Err("short agent reply".into());
    }
    let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    *b = &b[4..];
    Ok(v)
}

fn take_string<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = take_u32(b)? as usize;
    if b.len() < n {
        return Err("short agent reply".into());
    }
    let (s, rest) = b.split_at(n);
    *b = rest;
    Ok(s)
}

/// The agent's keys that this build can use, in the agent's order.
fn agent_identities(socket: &Path) -> Result<Vec<PublicKey>, String> {
    let reply = agent_call(socket, &[AGENTC_REQUEST_IDENTITIES]).map_err(|e| e.to_string())?;
    let mut b = reply.as_slice();
    if b.first() != Some(&AGENT_IDENTITIES_ANSWER) {
        return Err("the agent refused to list its keys".into());
    }
    b = &b[1..];
    let n = take_u32(&mut b)?;
    let mut keys = Vec::new();
    for _ in 0..n {
        let blob = take_string(&mut b)?;
        let _comment = take_string(&mut b)?;
        // Certificates and key types this build does not know are skipped.
        if let Ok(k) = PublicKey::from_bytes(blob) {
            keys.push(k);
        }
    }
    Ok(keys)
}

fn agent_sign(socket: &Path, key_blob: &[u8], data: &[u8], flags: u32) -> Result<Vec<u8>, String> {
    let mut req = vec![AGENTC_SIGN_REQUEST];
    put_string(&mut req, key_blob);
    put_string(&mut req, data);
    req.extend_from_slice(&flags.to_be_bytes());
    let reply = agent_call(socket, &req).map_err(|e| e.to_string())?;
    let mut b = reply.as_slice();
    if b.first() != Some(&AGENT_SIGN_RESPONSE) {
        return Err("the agent refused to sign (key removed, or confirmation denied)".into());
    }
    b = &b[1..];
    Ok(take_string(&mut b)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": null}});
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn message_ignores_signature_fields_but_not_who() {
        let d = json!({"id": "x", "who": {"user": "alice"}});
        let mut signed = d.clone();
        signed["signature"] = json!({"armored": "…"});
        let m = |d: &Value| message("r", 3, "t", "a", "p", d);
        assert_eq!(m(&d), m(&signed));
        assert_ne!(m(&d), m(&json!({"id": "x", "who": {"user": "mallory"}})));
        assert!(
            String::from_utf8(m(&d))
                .unwrap()
                .starts_with("cutover journal confirmation v1\nprev p\nseq 3\n")
        );
    }

    #[test]
    fn allowed_signers_lines_with_options() {
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtvck5gdgnJ1IqoPHVEfFeoUCTmj/ocUQf6ERAXTYxL";
        let text = format!(
            "# team\nalice@example.org {k} alice\nbob,carol namespaces=\"git,cutover-journal@cutover\" {k}\n"
        );
        let a = parse_allowed_signers(&text).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].principals, "alice@example.org");
        assert_eq!(
            a[1].namespaces.as_deref(),
            Some(&["git".to_string(), NAMESPACE.to_string()][..])
        );
        assert!(parse_allowed_signers("alice\n").is_err());
    }
}
