//! russh's callback side of a connection: the server's host key checked against known_hosts.

use super::known_hosts::{self, HostKeyStatus, fingerprint, host_port_name};
use crate::transport::command::TransportError;
use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};

/// russh's callback side: checks the server's host key against known_hosts and records why a
/// key was refused (russh itself only says "unknown key").
pub(super) struct Client {
    pub(super) name: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) known_hosts: Vec<PathBuf>,
    pub(super) verdict: Arc<StdMutex<Option<TransportError>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                *self.verdict.lock().unwrap() = Some(TransportError::Connect {
                    host: self.name.clone(),
                    msg:
                        "the server presented a host certificate; only plain host keys are checked"
                            .into(),
                });
                return Ok(false);
            }
        };
        let fp = fingerprint(key);
        let shown = if self.name == self.host {
            host_port_name(&self.host, self.port)
        } else {
            format!("{} ({})", self.name, host_port_name(&self.host, self.port))
        };
        match known_hosts::check(&self.known_hosts, &self.host, self.port, key) {
            HostKeyStatus::Known => Ok(true),
            HostKeyStatus::Changed { file, revoked } => {
                *self.verdict.lock().unwrap() = Some(TransportError::HostKeyChanged {
                    host: if revoked {
                        format!("{shown} (key is marked @revoked)")
                    } else {
                        shown
                    },
                    fingerprint: fp,
                    known_hosts: file.display().to_string(),
                });
                Ok(false)
            }
            HostKeyStatus::Unknown => {
                let key_openssh = PublicKey::new(key.key_data().clone(), "")
                    .to_openssh()
                    .unwrap_or_default();
                *self.verdict.lock().unwrap() = Some(TransportError::HostKeyUnknown {
                    host: self.host.clone(),
                    port: self.port,
                    fingerprint: fp,
                    key_openssh,
                });
                Ok(false)
            }
        }
    }
}
