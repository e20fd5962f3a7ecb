//! Why a host could not be reached, and what the operator does about it.

use super::Fleet;
use crate::engine::facts::*;
use crate::inventory::{Node, Reach};
use crate::transport::{TransportError, shell_quote};

/// Which way reaching a host failed, when it did: an error while connecting (host key, TCP,
/// login), not one of a command on a host that was reached.
pub fn reach_failure(e: &TransportError) -> Option<ReachFailure> {
    match e {
        TransportError::HostKeyChanged { .. } => Some(ReachFailure::HostKeyChanged),
        TransportError::HostKeyUnknown { .. } => Some(ReachFailure::HostKeyUnknown),
        TransportError::Auth { .. } => Some(ReachFailure::AuthFailed),
        TransportError::Timeout { what, .. } if what == "connect" => Some(ReachFailure::Timeout),
        TransportError::Connect { msg, .. }
            if msg.contains(crate::transport::ssh::CONNECTION_REFUSED) =>
        {
            Some(ReachFailure::ConnectionRefused)
        }
        TransportError::Connect { .. } => Some(ReachFailure::ConnectFailed),
        _ => None,
    }
}

impl Fleet {
    /// Why `node` could not be reached, from the transport's error: where (the alias, and the
    /// address and port after ssh_config), why and what to do. None when the host was reached
    /// (a command failed or timed out, a channel was lost) or is not reached over SSH.
    pub fn unreachable(&self, node: &Node, e: &TransportError) -> Option<Unreachable> {
        let Reach::Ssh(target) = &node.reach else {
            return None;
        };
        let defaults = self.inv.ssh.as_ref();
        let kind = reach_failure(e)?;
        let alias = target.host().to_string();
        let hop = crate::transport::ssh::resolve_hops(target, defaults)
            .ok()
            .and_then(|h| h.last().cloned());
        let (mut host, mut port) = hop
            .as_ref()
            .map(|h| (h.host.clone(), h.port))
            .unwrap_or_else(|| (alias.clone(), 22));
        let keep_in = crate::transport::ssh::known_hosts_for(target, defaults)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| self.known_hosts_file());
        let (known_hosts, fingerprint) = match e {
            TransportError::HostKeyChanged {
                fingerprint,
                known_hosts,
                ..
            } => (Some(known_hosts.clone()), Some(fingerprint.clone())),
            TransportError::HostKeyUnknown {
                host: h,
                port: p,
                fingerprint,
                ..
            } => {
                // The host that offered the key (a jump host's, when that is the one).
                host = h.clone();
                port = *p;
                (Some(keep_in.clone()), Some(fingerprint.clone()))
            }
            _ => (None, None),
        };
        let q = |s: &str| shell_quote(s);
        let recorded = crate::transport::ssh::host_port_name(&host, port);
        let keyscan = format!(
            "ssh-keyscan{} {} >> {}",
            if port == 22 {
                String::new()
            } else {
                format!(" -p {port}")
            },
            q(&host),
            q(known_hosts.as_deref().unwrap_or(&keep_in))
        );
        let host_print = "on the host itself: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub";
        let ssh_once = {
            let mut c = String::from("ssh");
            if let Some(cfg) = defaults.and_then(|d| d.config.as_ref()) {
                c.push_str(&format!(" -F {}", q(&cfg.display().to_string())));
            }
            c.push_str(&format!(" -o UserKnownHostsFile={}", q(&keep_in)));
            match target {
                crate::inventory::SshTarget::Alias(a) => c.push_str(&format!(" {}", q(a))),
                crate::inventory::SshTarget::Explicit(x) => {
                    if port != 22 {
                        c.push_str(&format!(" -p {port}"));
                    }
                    match &x.user {
                        Some(u) => c.push_str(&format!(" {}", q(&format!("{u}@{}", x.host)))),
                        None => c.push_str(&format!(" {}", q(&x.host))),
                    }
                }
            }
            c.push_str(" true");
            c
        };
        let fp = fingerprint.clone().unwrap_or_default();
        let next = match kind {
            ReachFailure::HostKeyChanged => format!(
                "find out why {host} port {port} now presents another key (reinstalled? another machine on that address?) and compare {fp} with the host's own ({host_print}); only if the change is expected, remove the old entry (ssh-keygen -R {} -f {}) and accept the new key ({keyscan})",
                q(&recorded),
                q(known_hosts.as_deref().unwrap_or(&keep_in)),
            ),
            ReachFailure::HostKeyUnknown => format!(
                "compare {fp} with the host's own key ({host_print}); if they match, accept it: {keyscan} (or connect once and answer yes: {ssh_once}); `cutover run` asks for it at hard stop unknown-host-key"
            ),
            ReachFailure::ConnectionRefused => format!(
                "nothing accepts SSH connections at {host} port {port}: start sshd on {alias} (systemctl start ssh) or correct the port in the inventory or ssh_config"
            ),
            ReachFailure::AuthFailed => format!(
                "check ssh-agent (ssh-add -l) or the IdentityFile for {alias}, and that the user may log in there ({ssh_once})"
            ),
            ReachFailure::Timeout => format!(
                "check that {host} port {port} can be reached from here (host up, routing, firewall), or raise ssh.connect_timeout_secs"
            ),
            ReachFailure::ConnectFailed => {
                format!("check the host name and the network path to {alias} ({ssh_once})")
            }
        };
        // Said once: where is in the line around it (`<kind> at HOST port PORT (ssh alias A)`).
        let reason = match e {
            TransportError::HostKeyChanged { host: shown, .. } => {
                let jump = if shown.contains(&recorded) {
                    String::new()
                } else {
                    format!(" (on the way: {shown})")
                };
                if shown.contains("@revoked") {
                    format!(
                        "its host key {fp} is marked @revoked in {}{jump}",
                        known_hosts.as_deref().unwrap_or_default()
                    )
                } else {
                    format!(
                        "its host key has CHANGED: it now presents {fp}, and {} holds another key for {recorded}{jump}",
                        known_hosts.as_deref().unwrap_or_default()
                    )
                }
            }
            TransportError::HostKeyUnknown { .. } => {
                format!("no known_hosts file holds a key for {recorded}; it presents {fp}")
            }
            TransportError::Connect { msg, .. } if kind == ReachFailure::ConnectionRefused => {
                let jump = msg
                    .strip_prefix("(jump host ")
                    .and_then(|m| m.split_once(')'))
                    .map(|(j, _)| format!(" (at jump host {j})"))
                    .unwrap_or_default();
                format!("nothing listens there (is sshd running, on that port?){jump}")
            }
            TransportError::Timeout { secs, .. } => format!("no answer within {secs}s"),
            TransportError::Connect { msg, .. } | TransportError::Auth { msg, .. } => msg.clone(),
            other => other.to_string(),
        };
        Some(Unreachable {
            kind,
            alias,
            host,
            port,
            known_hosts,
            fingerprint,
            reason,
            next,
        })
    }
}
