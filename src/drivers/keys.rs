//! Key material: fingerprints (never the keys themselves leave memory) and native ES256 keypairs.

use base64::Engine;
use sha2::{Digest, Sha256};

/// `SHA256:<base64>` of a public key's SubjectPublicKeyInfo DER, from its PEM text.
pub fn public_fingerprint(pem_text: &str) -> Result<String, String> {
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

fn pem_der(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no `{begin}` block"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| format!("no `{end}`"))?
        + start;
    let b64: String = text[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("bad PEM body: {e}"))
}

/// The fingerprint of the public half of a PKCS#8 private key (P-256), derived in memory.
pub fn private_fingerprint(pem_text: &str) -> Result<String, String> {
    use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let sk = p256::SecretKey::from_pkcs8_pem(pem_text)
        .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))?;
    let der = sk
        .public_key()
        .to_public_key_der()
        .map_err(|e| format!("encode public key: {e}"))?;
    Ok(fingerprint_der(der.as_bytes()))
}

/// A fresh ES256 keypair as (private PKCS#8 PEM, public SPKI PEM). The private half is zeroized
/// when dropped.
pub fn generate_es256() -> Result<(zeroize_string::Secret, String), String> {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let private = sk
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("encode private key: {e}"))?;
    let public = sk
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("encode public key: {e}"))?;
    Ok((zeroize_string::Secret(private.as_bytes().to_vec()), public))
}

pub mod zeroize_string {
    /// Bytes that are wiped when dropped and never printed.
    pub struct Secret(pub Vec<u8>);
    impl Drop for Secret {
        fn drop(&mut self) {
            for b in self.0.iter_mut() {
                // Volatile so the wipe is not optimised away.
                unsafe { std::ptr::write_volatile(b, 0) };
            }
        }
    }
    impl std::fmt::Debug for Secret {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Secret(<{} bytes>)", self.0.len())
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_and_its_public_half_have_one_fingerprint() {
        let (private, public) = generate_es256().unwrap();
        let text = String::from_utf8(private.0.clone()).unwrap();
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
        let text = String::from_utf8(private.0.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        let fp = public_fingerprint(&public).unwrap();
        assert!(fp.starts_with("SHA256:"));
        assert_eq!(public_fingerprint(&public).unwrap(), fp);
        let (_, other) = generate_es256().unwrap();
        assert_ne!(public_fingerprint(&other).unwrap(), fp);
        assert!(format!("{private:?}").contains("bytes"));
        assert!(!format!("{private:?}").contains("BEGIN"));
    }
}
