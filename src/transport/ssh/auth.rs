//! User authentication in OpenSSH's order: agent identities, then identity files (asking for a
//! passphrase when one is encrypted). A refusal lists everything tried.

use super::config::{self, Hop};
use super::host_key::Client;
use super::known_hosts::fingerprint;
use super::passphrase::PassphrasePrompt;
use crate::transport::command::TransportError;
use anyhow::{anyhow, bail};
use russh::MethodKind;
use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Agent identities first, then identity files, as OpenSSH does.
pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    hop: &Hop,
    who: &str,
    prompt: Option<&PassphrasePrompt>,
) -> Result<(), TransportError> {
    let mut tried: Vec<String> = Vec::new();
    let mut offered: Vec<PublicKey> = Vec::new();
    let mut server_methods: Option<String> = None;
    let auth_err = |tried: &[String], methods: &Option<String>| {
        let mut msg = format!("as user `{}`; ", hop.user);
        if tried.is_empty() {
            msg.push_str("no identities to try (no ssh-agent, no identity file)");
        } else {
            msg.push_str("tried: ");
            msg.push_str(&tried.join("; "));
        }
        if let Some(m) = methods {
            msg.push_str(&format!(" (server accepts: {m})"));
        }
        TransportError::Auth {
            host: who.to_string(),
            msg,
        }
    };
    let rsa_hash = |h: Option<Option<HashAlg>>| match h {
        Some(Some(alg)) => Some(alg),
        Some(None) => None,
        None => Some(HashAlg::Sha256),
    };
    let rsa_hash = rsa_hash(handle.best_supported_rsa_hash().await.ok().flatten());

    // 1. ssh-agent.
    let agent_sock = match &hop.agent {
        config::Agent::Env => std::env::var_os("SSH_AUTH_SOCK"),
        config::Agent::Off => None,
        config::Agent::Socket(p) => Some(p.clone().into_os_string()),
    };
    match agent_sock {
        Some(sock) if !sock.is_empty() => match AgentClient::connect_uds(&sock).await {
            Ok(mut agent) => match agent.request_identities().await {
                Ok(ids) => {
                    for id in ids {
                        let AgentIdentity::PublicKey { key, comment } = id else {
                            continue;
                        };
                        let what = format!("agent key {} {}", fingerprint(&key), comment.trim());
                        let hash = if key.algorithm().is_rsa() {
                            rsa_hash
                        } else {
                            None
                        };
                        offered.push(key.clone());
                        match handle
                            .authenticate_publickey_with(&hop.user, key, hash, &mut agent)
                            .await
                        {
                            Ok(r) if r.success() => return Ok(()),
                            Ok(russh::client::AuthResult::Failure {
                                remaining_methods, ..
                            }) => {
                                tried.push(format!("{} refused", what.trim()));
                                server_methods = Some(methods(&remaining_methods));
                                if !remaining_methods.contains(&MethodKind::PublicKey) {
                                    return Err(auth_err(&tried, &server_methods));
                                }
                            }
                            Ok(_) => tried.push(format!("{} refused", what.trim())),
                            Err(e) => tried.push(format!("{}: agent error {e}", what.trim())),
                        }
                    }
                }
                Err(e) => tried.push(format!("ssh-agent at {}: {e}", Path::new(&sock).display())),
            },
            Err(e) => tried.push(format!(
                "ssh-agent at {}: unreachable ({e})",
                Path::new(&sock).display()
            )),
        },
        _ => {}
    }

    // 2. Identity files.
    for path in &hop.identity_files {
        if !path.exists() {
            if hop.identity_explicit {
                tried.push(format!("{}: no such file", path.display()));
            }
            continue;
        }
        let key = match load_identity(path, prompt).await {
            Ok(k) => k,
            Err(why) => {
                tried.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        if offered
            .iter()
            .any(|k| k.key_data() == key.public_key().key_data())
        {
            // Already offered through the agent.
            continue;
        }
        offered.push(key.public_key().clone());
        let hash = if key.algorithm().is_rsa() {
            rsa_hash
        } else {
            None
        };
        let alg = PrivateKeyWithHashAlg::new(key.clone(), hash).algorithm();
        match handle
            .authenticate_publickey(&hop.user, PrivateKeyWithHashAlg::new(key, hash))
            .await
        {
            Ok(r) if r.success() => return Ok(()),
            Ok(russh::client::AuthResult::Failure {
                remaining_methods, ..
            }) => {
                tried.push(format!("{} ({alg}) refused", path.display()));
                server_methods = Some(methods(&remaining_methods));
                if !remaining_methods.contains(&MethodKind::PublicKey) {
                    break;
                }
            }
            Ok(_) => tried.push(format!("{} ({alg}) refused", path.display())),
            Err(e) => {
                tried.push(format!("{} ({alg}): {e}", path.display()));
                break;
            }
        }
    }
    Err(auth_err(&tried, &server_methods))
}

/// Read an identity file, asking for its passphrase if it is encrypted (once per file for
/// the session: the prompt's keyring holds what was decrypted).
async fn load_identity(
    path: &Path,
    prompt: Option<&PassphrasePrompt>,
) -> anyhow::Result<Arc<PrivateKey>> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| anyhow!("unreadable ({e})"))?);
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => return Ok(Arc::new(k)),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => bail!("cannot be read as a private key ({e})"),
    }
    let Some(prompt) = prompt else {
        bail!("encrypted, and no passphrase prompt is available");
    };
    prompt.unlock(path, &text).await
}

fn methods(set: &russh::MethodSet) -> String {
    set.iter().map(<&str>::from).collect::<Vec<_>>().join(",")
}
