//! Opening a session: TCP (or a tunnel through the previous jump host), the host key checked,
//! the user authenticated; and closing it again.

use super::auth::authenticate;
use super::config::Hop;
use super::host_key::Client;
use super::known_hosts;
use super::passphrase::PassphrasePrompt;
use crate::transport::command::TransportError;
use russh::Disconnect;
use russh::client::{self, Handle};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

/// How often a keepalive is sent when the server has been silent; three unanswered ones drop the
/// connection (the next command then reconnects).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// A connected session to the last hop.
pub(super) struct Live {
    pub(super) handle: Arc<Handle<Client>>,
    /// Jump-host sessions carrying the tunnel; kept alive as long as the target session.
    jumps: Vec<Arc<Handle<Client>>>,
}

/// Connect every hop in turn, each through the previous one.
pub(super) async fn open(
    hops: &[Hop],
    prompt: Option<&PassphrasePrompt>,
) -> Result<Live, TransportError> {
    let mut jumps: Vec<Arc<Handle<Client>>> = Vec::new();
    let n = hops.len();
    for (i, hop) in hops.iter().enumerate() {
        let via = jumps.last().cloned();
        let handle = match open_hop(hop, via.as_deref(), prompt).await {
            Ok(h) => h,
            Err(e) => {
                for j in jumps.into_iter().rev() {
                    let _ = j.disconnect(Disconnect::ByApplication, "", "en").await;
                }
                return Err(if i + 1 < n { via_jump(e, hop) } else { e });
            }
        };
        jumps.push(Arc::new(handle));
    }
    let handle = jumps.pop().expect("at least one hop");
    Ok(Live { handle, jumps })
}

async fn open_hop(
    hop: &Hop,
    via: Option<&Handle<Client>>,
    prompt: Option<&PassphrasePrompt>,
) -> Result<Handle<Client>, TransportError> {
    let who = format!("{} ({}@{}:{})", hop.name, hop.user, hop.host, hop.port);
    let connect_err = |msg: String| TransportError::Connect {
        host: who.clone(),
        msg,
    };
    let verdict = Arc::new(StdMutex::new(None));
    let handler = Client {
        name: hop.name.clone(),
        host: hop.host.clone(),
        port: hop.port,
        known_hosts: hop.known_hosts.clone(),
        verdict: verdict.clone(),
    };
    let config = Arc::new(client_config(hop));
    let deadline = hop.connect_timeout;
    let attempt = async {
        match via {
            None => {
                let tcp = tokio::net::TcpStream::connect((hop.host.as_str(), hop.port))
                    .await
                    .map_err(|e| connect_err(tcp_error(&e, &hop.host, hop.port)))?;
                let _ = tcp.set_nodelay(true);
                client::connect_stream(config, tcp, handler).await
            }
            Some(prev) => {
                let ch = prev
                    .channel_open_direct_tcpip(hop.host.clone(), hop.port as u32, "127.0.0.1", 0)
                    .await
                    .map_err(|e| {
                        connect_err(format!("the jump host could not open a tunnel: {e}"))
                    })?;
                client::connect_stream(config, ch.into_stream(), handler).await
            }
        }
        .map_err(|e| {
            verdict
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| connect_err(e.to_string()))
        })
    };
    let mut handle = match tokio::time::timeout(deadline, attempt).await {
        Ok(r) => r?,
        Err(_) => {
            // A host-key verdict reached just before the deadline still wins.
            if let Some(v) = verdict.lock().unwrap().take() {
                return Err(v);
            }
            return Err(TransportError::Timeout {
                host: who,
                what: "connect".into(),
                secs: deadline.as_secs().max(1),
            });
        }
    };
    authenticate(&mut handle, hop, &who, prompt).await?;
    Ok(handle)
}

/// How a refused TCP connection is reported (`TransportError::Connect`'s message starts with
/// it), so that callers can tell "nothing listens there" from other connect failures.
pub const CONNECTION_REFUSED: &str = "connection refused";

/// A failed TCP connect in words: a refusal names the address and port and what it means.
fn tcp_error(e: &std::io::Error, host: &str, port: u16) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => format!(
            "{CONNECTION_REFUSED}: nothing listens on {host} port {port} (is sshd running there, on that port?)"
        ),
        _ => e.to_string(),
    }
}

fn via_jump(e: TransportError, hop: &Hop) -> TransportError {
    match e {
        TransportError::Connect { host, msg } => TransportError::Connect {
            host,
            msg: format!("(jump host {}) {msg}", hop.name),
        },
        other => other,
    }
}

pub(super) async fn disconnect(live: Live) {
    let _ = live
        .handle
        .disconnect(Disconnect::ByApplication, "", "en")
        .await;
    for j in live.jumps.into_iter().rev() {
        let _ = j.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

fn client_config(hop: &Hop) -> client::Config {
    let mut preferred = russh::Preferred::default();
    // Ask first for the key types known_hosts already holds for this host, as OpenSSH does, so
    // a host recorded by its ECDSA key is not reported as changed for offering Ed25519 first.
    let known = known_hosts::known_algorithms(&hop.known_hosts, &hop.host, hop.port);
    if !known.is_empty() {
        let family = |a: &russh::keys::Algorithm| match a {
            russh::keys::Algorithm::Rsa { .. } => "rsa".to_string(),
            other => other.as_str().to_string(),
        };
        let known_families: Vec<String> = known.iter().map(family).collect();
        let (mut first, rest): (Vec<_>, Vec<_>) = preferred
            .key
            .iter()
            .cloned()
            .partition(|a| known_families.contains(&family(a)));
        first.extend(rest);
        preferred.key = first.into();
    }
    client::Config {
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: 3,
        nodelay: true,
        preferred,
        ..Default::default()
    }
}
