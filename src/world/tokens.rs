//! Token formats of the Keystone stand-in: real Fernet tokens and real ES256 compact JWS tokens.
//!
//! The Fernet payload is a small JSON document rather than Keystone's msgpack, but the token is
//! a genuine Fernet token (version byte 0x80, so it starts `gAAAAA`) that only holders of the
//! repository's keys can open. The JWS token is what Keystone's `jws` provider issues: header
//! `{"alg":"ES256","typ":"JWT"}`, the `sub`/`iat`/`exp`/`openstack_*` claims, signed with the
//! node's `private.pem` and checked against every key of the public repository.
//!
//! Nothing here logs; callers must not log token strings or key material either.

use anyhow::anyhow;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use fernet::Fernet;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a token says, whatever its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenData {
    pub user_id: String,
    pub project_id: Option<String>,
    pub methods: Vec<String>,
    pub audit_ids: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused. Keystone answers all of these the same way (token not found), so
/// the distinction only serves tests and messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not of this provider's format")]
    Malformed,
    #[error("no key of the repository opens or verifies the token")]
    NoMatchingKey,
    #[error("the token has expired")]
    Expired,
}

/// Keystone's timestamp format: `2024-05-01T12:00:00.000000Z`.
pub fn keystone_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A fresh audit id as Keystone makes them: urlsafe base64 of 16 random bytes, unpadded.
pub fn new_audit_id() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Fernet

/// The JSON payload sealed inside a Fernet token.
#[derive(Serialize, Deserialize)]
struct FernetPayload {
    user_id: String,
    project_id: Option<String>,
    methods: Vec<String>,
    issued_at: String,
    expires_at: String,
    audit_id: String,
}

/// The keys of a Fernet repository, highest index (the primary) first. Files whose name is not
/// a number are ignored, as Keystone does; a file that is not a valid key is an error.
pub fn read_fernet_keys(repo: &Path) -> anyhow::Result<Vec<(u32, Fernet)>> {
    let entries = std::fs::read_dir(repo)
        .map_err(|e| anyhow!("cannot read key repository {}: {e}", repo.display()))?;
    let mut keys = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path())
            .map_err(|e| anyhow!("cannot read key {}: {e}", entry.path().display()))?;
        let key = Fernet::new(text.trim())
            .ok_or_else(|| anyhow!("{} is not a valid Fernet key", entry.path().display()))?;
        keys.push((index, key));
    }
    keys.sort_by_key(|k| std::cmp::Reverse(k.0));
    Ok(keys)
}

/// Seal `data` with `primary` (the repository's highest-numbered key).
pub fn fernet_issue(primary: &Fernet, data: &TokenData) -> String {
    let payload = FernetPayload {
        user_id: data.user_id.clone(),
        project_id: data.project_id.clone(),
        methods: data.methods.clone(),
        issued_at: keystone_time(data.issued_at),
        expires_at: keystone_time(data.expires_at),
        audit_id: data.audit_ids.first().cloned().unwrap_or_default(),
    };
    let json = serde_json::to_vec(&payload).expect("payload serializes");
    primary.encrypt(&json)
}

/// Open `token` with any key of the repository and check that it has not expired at `now`.
pub fn fernet_validate(
    keys: &[(u32, Fernet)],
    token: &str,
    now: DateTime<Utc>,
) -> Result<TokenData, TokenError> {
    if !token.starts_with("gAAAAA") {
        return Err(TokenError::Malformed);
    }
    let plain = keys
        .iter()
        .find_map(|(_, k)| k.decrypt(token).ok())
        .ok_or(TokenError::NoMatchingKey)?;
    let p: FernetPayload = serde_json::from_slice(&plain).map_err(|_| TokenError::Malformed)?;
    let expires_at = parse_time(&p.expires_at).ok_or(TokenError::Malformed)?;
    let issued_at = parse_time(&p.issued_at).ok_or(TokenError::Malformed)?;
    if expires_at <= now {
        return Err(TokenError::Expired);
    }
    Ok(TokenData {
        user_id: p.user_id,
        project_id: p.project_id,
        methods: p.methods,
        audit_ids: vec![p.audit_id],
        issued_at,
        expires_at,
    })
}

// ---------------------------------------------------------------------------------------------
// JWS

/// The compact-JWS header Keystone's jws provider writes.
pub const JWS_HEADER: &str = r#"{"alg":"ES256","typ":"JWT"}"#;

#[derive(Serialize, Deserialize)]
struct JwsHeader {
    alg: String,
}

#[derive(Serialize, Deserialize)]
struct JwsClaims {
    sub: String,
    iat: i64,
    exp: i64,
    openstack_methods: Vec<String>,
    openstack_audit_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    openstack_project_id: Option<String>,
}

/// Load a P-256 private key from a PEM file: PKCS#8 (`BEGIN PRIVATE KEY`, what
/// `keystone-manage create_jws_keypair` writes) or SEC1 (`BEGIN EC PRIVATE KEY`).
pub fn load_private_key(path: &Path) -> anyhow::Result<SigningKey> {
    use p256::pkcs8::DecodePrivateKey as _;
    let pem = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    if let Ok(k) = SigningKey::from_pkcs8_pem(&pem) {
        return Ok(k);
    }
    p256::SecretKey::from_sec1_pem(&pem)
        .map(SigningKey::from)
        .map_err(|_| anyhow!("{} is not a P-256 private key in PEM form", path.display()))
}

/// Sign `data` into a compact JWS.
pub fn jws_issue(key: &SigningKey, data: &TokenData) -> String {
    let claims = JwsClaims {
        sub: data.user_id.clone(),
        iat: data.issued_at.timestamp(),
        exp: data.expires_at.timestamp(),
        openstack_methods: data.methods.clone(),
        openstack_audit_ids: data.audit_ids.clone(),
        openstack_project_id: data.project_id.clone(),
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(JWS_HEADER),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"))
    );
    let sig: Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// Verify `token` against every public key and check `exp` at `now`. With `signers`, the key
/// it remembers for this token (when it is one of `public_keys`) is tried first and the one that
/// verified is remembered: the same answer, one verification instead of up to one per key.
pub fn jws_validate(
    public_keys: &[VerifyingKey],
    token: &str,
    now: DateTime<Utc>,
    signers: Option<&crate::world::keyring::Signers>,
) -> Result<TokenData, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: JwsHeader =
        serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "ES256" {
        return Err(TokenError::Malformed);
    }
    let sig = Signature::from_slice(&decode(s)?).map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + c.len()];
    let verifies = |k: &&VerifyingKey| k.verify(signing_input.as_bytes(), &sig).is_ok();
    let hinted = signers
        .and_then(|s| s.among(token, public_keys))
        .filter(verifies);
    if hinted.is_none() {
        let signer = public_keys
            .iter()
            .find(verifies)
            .ok_or(TokenError::NoMatchingKey)?;
        if let Some(s) = signers {
            s.remember(token, signer);
        }
    }
    let claims: JwsClaims =
        serde_json::from_slice(&decode(c)?).map_err(|_| TokenError::Malformed)?;
    let at = |secs: i64| {
        Utc.timestamp_opt(secs, 0)
            .single()
            .ok_or(TokenError::Malformed)
    };
    let expires_at = at(claims.exp)?;
    if expires_at <= now {
        return Err(TokenError::Expired);
    }
    Ok(TokenData {
        user_id: claims.sub,
        project_id: claims.openstack_project_id,
        methods: claims.openstack_methods,
        audit_ids: claims.openstack_audit_ids,
        issued_at: at(claims.iat)?,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn data(now: DateTime<Utc>) -> TokenData {
        TokenData {
            user_id: "u1".into(),
            project_id: Some("p1".into()),
            methods: vec!["password".into()],
            audit_ids: vec![new_audit_id()],
            issued_at: now,
            expires_at: now + Duration::seconds(3600),
        }
    }

    #[test]
    fn fernet_roundtrip_rotation_and_expiry() {
        let now = Utc::now();
        let k0 = Fernet::new(&Fernet::generate_key()).unwrap();
        let k1 = Fernet::new(&Fernet::generate_key()).unwrap();
        let d = data(now);
        let t = fernet_issue(&k1, &d);
        assert!(t.starts_with("gAAAAA"));
        let keys = vec![(1, k1.clone()), (0, k0.clone())];
        let got = fernet_validate(&keys, &t, now).unwrap();
        assert_eq!(got.user_id, "u1");
        assert_eq!(got.audit_ids, d.audit_ids);
        // A repository without the signing key refuses it.
        assert_eq!(
            fernet_validate(&[(0, k0)], &t, now),
            Err(TokenError::NoMatchingKey)
        );
        assert_eq!(
            fernet_validate(&keys, &t, now + Duration::seconds(3601)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            fernet_validate(&keys, "eyJhbGciOi.x.y", now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn jws_roundtrip_any_public_key_and_expiry() {
        let now = Utc::now();
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let other = SigningKey::random(&mut rand::rngs::OsRng);
        let t = jws_issue(&sk, &data(now));
        assert!(t.starts_with("eyJ"));
        let header = URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, JWS_HEADER.as_bytes());
        let pubs = vec![*other.verifying_key(), *sk.verifying_key()];
        let got = jws_validate(&pubs, &t, now, None).unwrap();
        assert_eq!(got.project_id.as_deref(), Some("p1"));
        assert_eq!(
            jws_validate(&pubs[..1], &t, now, None),
            Err(TokenError::NoMatchingKey)
        );
        assert_eq!(
            jws_validate(&pubs, &t, now + Duration::seconds(7200), None),
            Err(TokenError::Expired)
        );
        let fernet = fernet_issue(&Fernet::new(&Fernet::generate_key()).unwrap(), &data(now));
        assert_eq!(
            jws_validate(&pubs, &fernet, now, None),
            Err(TokenError::Malformed)
        );
        // Remembering the signer changes no answer: found among all the keys, then tried
        // first; gone from the keys given, the token is refused as before.
        let signers = crate::world::keyring::Signers::default();
        assert!(signers.among(&t, &pubs).is_none());
        assert_eq!(jws_validate(&pubs, &t, now, Some(&signers)), Ok(got));
        assert_eq!(signers.among(&t, &pubs), Some(sk.verifying_key()));
        assert!(jws_validate(&pubs, &t, now, Some(&signers)).is_ok());
        assert_eq!(
            jws_validate(&pubs[..1], &t, now, Some(&signers)),
            Err(TokenError::NoMatchingKey)
        );
        assert_eq!(
            jws_validate(&pubs, &t, now + Duration::seconds(7200), Some(&signers)),
            Err(TokenError::Expired)
        );
    }
}
