//! SSH transport on russh: one connection per host for the whole run, a new channel per command.
//!
//! It reads ssh_config as `ssh` does (Host alias → HostName, Port, User, IdentityFile,
//! UserKnownHostsFile, ProxyJump), checks host keys against known_hosts files (hashed and
//! `[host]:port` entries included) and refuses to go on when a key is unknown or has changed, and
//! authenticates in OpenSSH's order: agent identities, then identity files (a passphrase is asked
//! for through a callback, once per key file and one prompt at a time, and wiped after use; the
//! decrypted key stays in memory for reconnects and other hosts, as an agent would hold it).
//!
//! A dropped connection is re-established once, transparently, before a command is sent; a command
//! that was already sent is never re-sent (it might not be idempotent).

mod config;
mod known_hosts;

pub use config::{DEFAULT_CONNECT_TIMEOUT, Hop, parse_jump};
pub use known_hosts::{HostKeyStatus, fingerprint, host_port_name};

use super::{ExecOpts, ExecOutput, MAX_OUTPUT, TransportError, shell_quote};
use crate::inventory::{SshDefaults, SshTarget};
use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, MethodKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Asks for an encrypted identity file's passphrase (the path is shown to the operator), and
/// holds what was unlocked with it. Clones share one keyring: a key file is asked for once for
/// all the hosts that use it, one prompt at a time, and a file given up on is not asked again.
#[derive(Clone)]
pub struct PassphrasePrompt {
    ask: AskFn,
    ring: Arc<Keyring>,
}

/// The question itself: `None` skips that key. The answer is used once and wiped.
type AskFn = Arc<dyn Fn(&Path) -> Option<Zeroizing<String>> + Send + Sync>;

#[derive(Default)]
struct Keyring {
    /// Held from the first question about a file to its last: never two prompts at once.
    turn: tokio::sync::Mutex<()>,
    /// Keys decrypted during this session, by file (not by host). Memory only.
    unlocked: StdMutex<HashMap<PathBuf, Arc<PrivateKey>>>,
    /// Files not to be asked for again, and why.
    refused: StdMutex<HashMap<PathBuf, String>>,
    /// Files whose passphrase was wrong every time, with the message for the operator.
    failed: StdMutex<Vec<String>>,
    /// Set once the terminal is no longer a plain terminal (the UI has it).
    closed: std::sync::atomic::AtomicBool,
}

impl PassphrasePrompt {
    pub fn new(ask: impl Fn(&Path) -> Option<Zeroizing<String>> + Send + Sync + 'static) -> Self {
        PassphrasePrompt {
            ask: Arc::new(ask),
            ring: Arc::default(),
        }
    }

    /// Ask directly (no keyring): for a key that is not an SSH identity.
    pub fn ask(&self, path: &Path) -> Option<Zeroizing<String>> {
        (self.ask)(path)
    }

    /// Never ask again: the terminal now belongs to something else. A key that still needs a
    /// passphrase then fails with advice to load it into ssh-agent.
    pub fn close(&self) {
        self.ring
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The key files given up on after wrong passphrases, each with what the operator should do.
    pub fn failures(&self) -> Vec<String> {
        self.ring.failed.lock().unwrap().clone()
    }

    /// The decrypted key at `path` (`text` is the file), asking for its passphrase at most
    /// `PASSPHRASE_ATTEMPTS` times for the whole session.
    async fn unlock(&self, path: &Path, text: &str) -> Result<Arc<PrivateKey>, String> {
        let id = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let _turn = self.ring.turn.lock().await;
        if let Some(k) = self.ring.unlocked.lock().unwrap().get(&id) {
            return Ok(k.clone());
        }
        if let Some(why) = self.ring.refused.lock().unwrap().get(&id) {
            return Err(why.clone());
        }
        let shown = path.display();
        if self.ring.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(format!(
                "encrypted, and its passphrase cannot be asked for while the UI has the terminal: load it into ssh-agent (ssh-add {shown}), then resume"
            ));
        }
        let refuse = |why: String| {
            self.ring
                .refused
                .lock()
                .unwrap()
                .insert(id.clone(), why.clone());
            why
        };
        for _ in 0..PASSPHRASE_ATTEMPTS {
            let ask = self.ask.clone();
            let owned = path.to_path_buf();
            let answer = tokio::task::spawn_blocking(move || ask(&owned))
                .await
                .map_err(|e| format!("passphrase prompt failed ({e})"))?;
            let Some(pass) = answer else {
                return Err(refuse("encrypted, no passphrase given".into()));
            };
            let text = Zeroizing::new(text.to_string());
            let decoded = tokio::task::spawn_blocking(move || {
                russh::keys::decode_secret_key(&text, Some(pass.as_str())).ok()
            })
            .await
            .map_err(|e| format!("decrypting failed ({e})"))?;
            if let Some(k) = decoded {
                let k = Arc::new(k);
                self.ring
                    .unlocked
                    .lock()
                    .unwrap()
                    .insert(id.clone(), k.clone());
                return Ok(k);
            }
        }
        let msg = format!(
            "wrong passphrase for {shown} three times; load it into ssh-agent (ssh-add {shown}) or check it"
        );
        self.ring.failed.lock().unwrap().push(msg.clone());
        Err(refuse(msg))
    }
}

/// Whether connecting to `target` might ask for a passphrase: one of its hops names an identity
/// file that exists and is encrypted (ssh-agent may still hold it).
pub fn may_ask_passphrase(target: &SshTarget, defaults: Option<&SshDefaults>) -> bool {
    let Ok(hops) = resolve_hops(target, defaults) else {
        return false;
    };
    hops.iter().flat_map(|h| &h.identity_files).any(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| {
            matches!(
                russh::keys::decode_secret_key(&t, None),
                Err(russh::keys::Error::KeyIsEncrypted)
            )
        })
    })
}

/// How often a keepalive is sent when the server has been silent; three unanswered ones drop the
/// connection (the next command then reconnects).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// How many times a wrong passphrase may be typed for one key, as ssh allows.
const PASSPHRASE_ATTEMPTS: usize = 3;

/// An SSH connection to one host. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct SshTransport {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    hops: Vec<Hop>,
    prompt: Option<PassphrasePrompt>,
    live: tokio::sync::Mutex<Option<Live>>,
}

struct Live {
    handle: Arc<Handle<Client>>,
    /// Jump-host sessions carrying the tunnel; kept alive as long as the target session.
    jumps: Vec<Arc<Handle<Client>>>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("label", &self.inner.label)
            .field("hops", &self.inner.hops)
            .finish_non_exhaustive()
    }
}

/// The command line actually sent when `sudo` is asked for: `sudo -n sh -c '<cmd>'`.
/// `-n` never prompts, so a missing sudoers rule fails at once and says so.
pub fn sudo_command(cmd: &str) -> String {
    format!("sudo -n sh -c {}", shell_quote(cmd))
}

/// Record a host key in a known_hosts file (`[host]:port` form when port != 22), creating the file
/// with mode 0600 if needed. `key_openssh` is `TransportError::HostKeyUnknown::key_openssh`.
pub fn accept_host_key(
    known_hosts: &Path,
    host: &str,
    port: u16,
    key_openssh: &str,
) -> std::io::Result<()> {
    known_hosts::append_entry(known_hosts, host, port, key_openssh)
}

/// The hops a target resolves to (jump hosts first, the target last), as `connect` would use them.
pub fn resolve_hops(
    target: &SshTarget,
    defaults: Option<&SshDefaults>,
) -> Result<Vec<Hop>, TransportError> {
    config::resolve(target, defaults).map_err(|msg| TransportError::Connect {
        host: target.host().to_string(),
        msg,
    })
}

/// The known_hosts file a newly accepted key for `target` belongs in: the inventory's
/// `ssh.known_hosts` when set, else the config's first UserKnownHostsFile (~/.ssh/known_hosts).
pub fn known_hosts_for(
    target: &SshTarget,
    defaults: Option<&SshDefaults>,
) -> Result<PathBuf, TransportError> {
    let hops = resolve_hops(target, defaults)?;
    Ok(config::primary_known_hosts(hops.last().expect("at least the target hop")).to_path_buf())
}

impl SshTransport {
    /// Resolve the target through ssh_config and connect (host key checked, authenticated).
    pub async fn connect(
        target: &SshTarget,
        defaults: Option<&SshDefaults>,
        prompt: Option<PassphrasePrompt>,
    ) -> Result<SshTransport, TransportError> {
        let hops = resolve_hops(target, defaults)?;
        let label = match target {
            SshTarget::Alias(a) => a.clone(),
            SshTarget::Explicit(e) => match e.port {
                Some(p) if p != 22 => format!("{}:{p}", e.host),
                _ => e.host.clone(),
            },
        };
        let t = SshTransport {
            inner: Arc::new(Inner {
                label,
                hops,
                prompt,
                live: tokio::sync::Mutex::new(None),
            }),
        };
        let live = t.open().await?;
        *t.inner.live.lock().await = Some(live);
        Ok(t)
    }

    /// The host as the inventory names it (alias, or host[:port]).
    pub fn label(&self) -> String {
        self.inner.label.clone()
    }

    /// The resolved hops (jump hosts first).
    pub fn hops(&self) -> &[Hop] {
        &self.inner.hops
    }

    /// Run `cmd` (`sh -c` semantics on the remote) on a new channel. stdin, when given, is
    /// streamed and followed by EOF; without it the command sees EOF at once.
    pub async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        let line = if opts.sudo {
            sudo_command(cmd)
        } else {
            cmd.to_string()
        };
        let start = Instant::now();
        let handle = self.handle().await?;
        let channel = match handle.channel_open_session().await {
            Ok(c) => c,
            Err(first) => {
                // The connection went away between commands. Nothing was sent: reconnect once.
                let handle = self.reconnect(&handle).await.map_err(|e| match e {
                    TransportError::Connect { host, msg } => TransportError::Connect {
                        host,
                        msg: format!("connection lost ({first}); reconnecting failed: {msg}"),
                    },
                    other => other,
                })?;
                handle
                    .channel_open_session()
                    .await
                    .map_err(|e| self.io(format!("cannot open a channel: {e}")))?
            }
        };
        let host = self.label();
        let timeout = opts.timeout;
        match run_channel(channel, line, opts.stdin, timeout).await {
            Ok(Some((status, signal, stdout, stderr))) => Ok(ExecOutput {
                status,
                signal,
                stdout,
                stderr,
                duration: start.elapsed(),
            }),
            Err(msg) => Err(TransportError::Io { host, msg }),
            Ok(None) => Err(TransportError::Timeout {
                host,
                what: format!("command `{}`", first_words(cmd)),
                secs: timeout.as_secs().max(1),
            }),
        }
    }

    /// Close the connection (and any jump-host sessions). Later `exec` calls reconnect.
    pub async fn close(&self) {
        if let Some(live) = self.inner.live.lock().await.take() {
            disconnect(live).await;
        }
    }

    fn io(&self, msg: String) -> TransportError {
        TransportError::Io {
            host: self.label(),
            msg,
        }
    }

    /// The live session, reconnecting first if it was closed.
    async fn handle(&self) -> Result<Arc<Handle<Client>>, TransportError> {
        let mut guard = self.inner.live.lock().await;
        if let Some(live) = guard.as_ref()
            && !live.handle.is_closed()
        {
            return Ok(live.handle.clone());
        }
        if let Some(old) = guard.take() {
            disconnect(old).await;
        }
        let live = self.open().await?;
        let h = live.handle.clone();
        *guard = Some(live);
        Ok(h)
    }

    /// Replace `failed` with a new session unless another task already did.
    async fn reconnect(
        &self,
        failed: &Arc<Handle<Client>>,
    ) -> Result<Arc<Handle<Client>>, TransportError> {
        let mut guard = self.inner.live.lock().await;
        if let Some(live) = guard.as_ref()
            && !Arc::ptr_eq(&live.handle, failed)
            && !live.handle.is_closed()
        {
            return Ok(live.handle.clone());
        }
        if let Some(old) = guard.take() {
            disconnect(old).await;
        }
        let live = self.open().await?;
        let h = live.handle.clone();
        *guard = Some(live);
        Ok(h)
    }

    /// Connect every hop in turn, each through the previous one.
    async fn open(&self) -> Result<Live, TransportError> {
        let mut jumps: Vec<Arc<Handle<Client>>> = Vec::new();
        let n = self.inner.hops.len();
        for (i, hop) in self.inner.hops.iter().enumerate() {
            let via = jumps.last().cloned();
            let handle = match self.open_hop(hop, via.as_deref()).await {
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
        &self,
        hop: &Hop,
        via: Option<&Handle<Client>>,
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
                        .channel_open_direct_tcpip(
                            hop.host.clone(),
                            hop.port as u32,
                            "127.0.0.1",
                            0,
                        )
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
        self.authenticate(&mut handle, hop, &who).await?;
        Ok(handle)
    }

    /// Agent identities first, then identity files, as OpenSSH does.
    async fn authenticate(
        &self,
        handle: &mut Handle<Client>,
        hop: &Hop,
        who: &str,
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
                            let what =
                                format!("agent key {} {}", fingerprint(&key), comment.trim());
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
                                    remaining_methods,
                                    ..
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
                    Err(e) => {
                        tried.push(format!("ssh-agent at {}: {e}", Path::new(&sock).display()))
                    }
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
            let key = match self.load_identity(path).await {
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
    async fn load_identity(&self, path: &Path) -> Result<Arc<PrivateKey>, String> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("unreadable ({e})"))?);
        match russh::keys::decode_secret_key(&text, None) {
            Ok(k) => return Ok(Arc::new(k)),
            Err(russh::keys::Error::KeyIsEncrypted) => {}
            Err(e) => return Err(format!("cannot be read as a private key ({e})")),
        }
        let Some(prompt) = self.inner.prompt.clone() else {
            return Err("encrypted, and no passphrase prompt is available".into());
        };
        prompt.unlock(path, &text).await
    }
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

fn methods(set: &russh::MethodSet) -> String {
    set.iter().map(<&str>::from).collect::<Vec<_>>().join(",")
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

async fn disconnect(live: Live) {
    let _ = live
        .handle
        .disconnect(Disconnect::ByApplication, "", "en")
        .await;
    for j in live.jumps.into_iter().rev() {
        let _ = j.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

fn first_words(cmd: &str) -> String {
    let one_line = cmd.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(60).collect::<String>())
    } else {
        one_line
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

/// Run one command on a fresh channel: stdin is written by its own task while stdout/stderr are
/// read, so a command that echoes its input cannot dead-lock against flow control. `Ok(None)`
/// when `timeout` passed first: the remote command is then sent SIGKILL and its channel closed.
/// Best effort: OpenSSH refuses signal requests for root logins (no privilege-separated session
/// child), and a closed channel only ends a command that writes or reads; callers that run
/// something that may hang should bound it on the host too (`timeout N cmd`).
async fn run_channel(
    channel: russh::Channel<client::Msg>,
    line: String,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Option<(i32, Option<i32>, Vec<u8>, Vec<u8>)>, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (mut rd, wr) = channel.split();
    let wr = Arc::new(wr);
    let started = tokio::time::timeout_at(deadline, wr.exec(true, line.into_bytes())).await;
    match started {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("cannot start the command: {e}")),
        Err(_) => {
            let _ = wr.close().await;
            return Ok(None);
        }
    }
    let w = wr.clone();
    let writer = tokio::spawn(async move {
        if let Some(data) = stdin {
            // A command that exits without reading its input closes the channel; that is not
            // an error of the transport.
            let _ = w.data(std::io::Cursor::new(data)).await;
        }
        let _ = w.eof().await;
    });
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut status: Option<i32> = None;
    let mut signal: Option<i32> = None;
    let mut refused = false;
    let finished = tokio::time::timeout_at(deadline, async {
        while let Some(msg) = rd.wait().await {
            match msg {
                ChannelMsg::Data { data } => push_bounded(&mut stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => push_bounded(&mut stderr, &data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status as i32),
                ChannelMsg::ExitSignal {
                    signal_name,
                    error_message,
                    ..
                } => {
                    signal = Some(signal_number(&signal_name));
                    status = Some(128 + signal_number(&signal_name));
                    if !error_message.is_empty() {
                        push_bounded(&mut stderr, error_message.as_bytes());
                    }
                }
                ChannelMsg::Failure => refused = true,
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    })
    .await;
    if finished.is_err() {
        writer.abort();
        let _ = wr.signal(russh::Sig::KILL).await;
        let _ = wr.close().await;
        return Ok(None);
    }
    let _ = writer.await;
    match status {
        Some(s) => Ok(Some((s, signal, stdout, stderr))),
        None if refused => Err("the server refused to run the command".into()),
        None => Err("the channel closed without an exit status (connection lost?)".into()),
    }
}

fn push_bounded(buf: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_OUTPUT.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

fn signal_number(sig: &russh::Sig) -> i32 {
    use russh::Sig::*;
    match sig {
        ABRT => 6,
        ALRM => 14,
        FPE => 8,
        HUP => 1,
        ILL => 4,
        INT => 2,
        KILL => 9,
        PIPE => 13,
        QUIT => 3,
        SEGV => 11,
        TERM => 15,
        USR1 => 10,
        _ => 0,
    }
}

/// russh's callback side: checks the server's host key against known_hosts and records why a
/// key was refused (russh itself only says "unknown key").
struct Client {
    name: String,
    host: String,
    port: u16,
    known_hosts: Vec<PathBuf>,
    verdict: Arc<StdMutex<Option<TransportError>>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_wraps_and_quotes() {
        assert_eq!(
            sudo_command("cat /etc/keystone/keystone.conf"),
            "sudo -n sh -c 'cat /etc/keystone/keystone.conf'"
        );
        assert_eq!(
            sudo_command("echo 'a b' | wc -c"),
            "sudo -n sh -c 'echo '\\''a b'\\'' | wc -c'"
        );
    }

    #[test]
    fn output_is_bounded() {
        let mut b = vec![0u8; MAX_OUTPUT - 2];
        push_bounded(&mut b, b"abcdef");
        assert_eq!(b.len(), MAX_OUTPUT);
        assert_eq!(&b[MAX_OUTPUT - 2..], b"ab");
    }
}
