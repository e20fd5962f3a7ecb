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

mod auth;
mod config;
mod exec;
mod host_key;
mod kept;
mod known_hosts;
mod passphrase;
mod session;

pub use config::{DEFAULT_CONNECT_TIMEOUT, Hop, parse_jump};
pub use known_hosts::{HostKeyStatus, fingerprint, host_port_name};
pub use passphrase::PassphrasePrompt;
pub use session::{CONNECTION_REFUSED, KEEPALIVE_INTERVAL};

use crate::inventory::{SshDefaults, SshTarget};
use crate::transport::command::{ExecOpts, ExecOutput, TransportError, shell_quote};
use exec::{ChannelError, Finished, first_words, run_channel};
use host_key::Client;
use russh::client::Handle;
use session::{Live, disconnect};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// The server refused a direct-streamlocal channel that a command then reached: not asked
    /// again.
    no_streamlocal: AtomicBool,
    /// Idle kept shells for reads ([`SshTransport::read`]): one is started for each read that
    /// finds none idle, up to [`MAX_KEPT`] alive on the connection.
    kept: std::sync::Mutex<Vec<kept::KeptShell>>,
    /// Kept shells alive on the connection (idle or running a read).
    kept_alive: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("label", &self.inner.label)
            .field("hops", &self.inner.hops)
            .finish_non_exhaustive()
    }
}

/// Kept shells at most on one connection. Each is a session channel, and sshd allows 10 per
/// connection by default (`MaxSessions`): the rest stay for actions, each on a channel of its
/// own, and for admin-socket channels.
const MAX_KEPT: usize = 4;

/// The command line sent for `cmd`: as it is, or through [`sudo_command`].
fn command_line(cmd: &str, sudo: bool) -> String {
    if sudo {
        sudo_command(cmd)
    } else {
        cmd.to_string()
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
    config::resolve(target, defaults).map_err(|e| TransportError::Connect {
        host: target.host().to_string(),
        msg: e.to_string(),
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
                no_streamlocal: AtomicBool::new(false),
                kept: std::sync::Mutex::new(Vec::new()),
                kept_alive: std::sync::atomic::AtomicUsize::new(0),
            }),
        };
        let live = session::open(&t.inner.hops, t.inner.prompt.as_ref()).await?;
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
        let line = command_line(cmd, opts.sudo);
        let start = Instant::now();
        let channel = self.session_channel().await?;
        let host = self.label();
        let timeout = opts.timeout;
        match run_channel(channel, line, opts.stdin, timeout).await {
            Ok(Finished {
                status,
                signal,
                stdout,
                stderr,
            }) => Ok(ExecOutput {
                status,
                signal,
                stdout,
                stderr,
                duration: start.elapsed(),
            }),
            Err(ChannelError::TimedOut) => Err(self.command_timed_out(cmd, timeout)),
            Err(e) => Err(TransportError::Io {
                host,
                msg: e.to_string(),
            }),
        }
    }

    /// Run a read (no stdin) in one of the connection's kept shells: an idle one, else a new
    /// one (the login shell and its rc files once, then kept), so a read costs no new session.
    /// Reads at once get a kept shell each, up to [`MAX_KEPT`] on the connection; past that, or
    /// when a kept shell cannot be started or breaks, the read runs as [`exec`] runs it (reads
    /// are safe to run again). A timeout is a timeout either way, and closes that kept shell.
    ///
    /// [`exec`]: SshTransport::exec
    pub async fn read(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        debug_assert!(opts.stdin.is_none(), "a read takes no stdin");
        let start = Instant::now();
        if let Some(mut shell) = self.take_kept().await {
            let ran = shell.run(&command_line(cmd, opts.sudo), opts.timeout).await;
            match ran.output(start.elapsed()) {
                Ok(out) => {
                    self.inner.kept.lock().expect("kept shells").push(shell);
                    return Ok(out);
                }
                Err(crate::transport::kept::Kept::TimedOut) => {
                    self.kept_gone();
                    return Err(self.command_timed_out(cmd, opts.timeout));
                }
                Err(_) => {
                    // A broken kept shell most often means a lost connection: the idle ones
                    // went with it. They are started again as reads need them.
                    let idle = std::mem::take(&mut *self.inner.kept.lock().expect("kept shells"));
                    for s in std::iter::once(shell).chain(idle) {
                        self.kept_gone();
                        s.close().await;
                    }
                }
            }
        }
        self.exec(cmd, opts).await
    }

    /// An idle kept shell, or a new one while fewer than [`MAX_KEPT`] are alive.
    async fn take_kept(&self) -> Option<kept::KeptShell> {
        use std::sync::atomic::Ordering;
        if let Some(shell) = self.inner.kept.lock().expect("kept shells").pop() {
            return Some(shell);
        }
        let alive = &self.inner.kept_alive;
        alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_KEPT).then_some(n + 1)
            })
            .ok()?;
        let started = self.start_kept().await;
        if started.is_none() {
            self.kept_gone();
        }
        started
    }

    /// A kept shell was dropped or closed.
    fn kept_gone(&self) {
        self.inner
            .kept_alive
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// `cmd` ran out of `timeout` on this host (on a channel of its own or in the kept shell).
    fn command_timed_out(&self, cmd: &str, timeout: Duration) -> TransportError {
        TransportError::Timeout {
            host: self.label(),
            what: format!("command `{}`", first_words(cmd)),
            secs: timeout.as_secs().max(1),
        }
    }

    /// A new kept shell on the live connection (reconnecting once if it went away).
    async fn start_kept(&self) -> Option<kept::KeptShell> {
        kept::KeptShell::start(self.session_channel().await.ok()?).await
    }

    /// A new session channel on the live connection; if the connection went away between
    /// commands (nothing was sent yet), one reconnect first.
    async fn session_channel(&self) -> Result<russh::Channel<russh::client::Msg>, TransportError> {
        let handle = self.handle().await?;
        match handle.channel_open_session().await {
            Ok(c) => Ok(c),
            Err(first) => self
                .reconnect_after(&handle, first)
                .await?
                .channel_open_session()
                .await
                .map_err(|e| self.io(format!("cannot open a channel: {e}"))),
        }
    }

    /// [`SshTransport::reconnect`] after `first` failed on `failed`, the error saying both.
    async fn reconnect_after(
        &self,
        failed: &Arc<Handle<Client>>,
        first: russh::Error,
    ) -> Result<Arc<Handle<Client>>, TransportError> {
        self.reconnect(failed).await.map_err(|e| match e {
            TransportError::Connect { host, msg } => TransportError::Connect {
                host,
                msg: format!("connection lost ({first}); reconnecting failed: {msg}"),
            },
            other => other,
        })
    }

    /// Send `request` to a UNIX stream socket on the host through the connection itself (the
    /// `direct-streamlocal@openssh.com` channel `ssh -L local:/remote.sock` uses: no shell, no
    /// `socat`, one round trip) and read until the socket closes. `Ok(None)` when the server
    /// would not open the channel (forwarding disabled: `AllowStreamLocalForwarding no`,
    /// `DisableForwarding yes`, or the socket could not be connected as the login user): the
    /// caller then runs a command instead, and calls [`SshTransport::streamlocal_refused`]
    /// when that command reached the socket. (OpenSSH answers "connect failed" both to a
    /// forwarding it does not allow and to a socket that is not there, so only the fallback
    /// can tell.)
    pub async fn streamlocal_request(
        &self,
        socket: &Path,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, TransportError> {
        if self.inner.no_streamlocal.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let path = socket.to_string_lossy().into_owned();
        let timed_out = || TransportError::Timeout {
            host: self.label(),
            what: format!("a request to {}", socket.display()),
            secs: timeout.as_secs().max(1),
        };
        let refused = |e: &russh::Error| matches!(e, russh::Error::ChannelOpenFailure(_));
        let handle = self.handle().await?;
        let open = |h: Arc<Handle<Client>>, path: String| async move {
            tokio::time::timeout_at(deadline, h.channel_open_direct_streamlocal(path)).await
        };
        let channel = match open(handle.clone(), path.clone()).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(c)) => c,
            Ok(Err(e)) if refused(&e) => return Ok(None),
            Ok(Err(first)) => {
                // The connection went away between requests. Nothing was sent: reconnect once.
                match open(self.reconnect_after(&handle, first).await?, path).await {
                    Err(_) => return Err(timed_out()),
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) if refused(&e) => return Ok(None),
                    Ok(Err(e)) => return Err(self.io(format!("cannot open a channel: {e}"))),
                }
            }
        };
        let (mut rd, wr) = channel.split();
        let answer = tokio::time::timeout_at(deadline, async {
            wr.data(request)
                .await
                .map_err(|e| self.io(format!("cannot send to {}: {e}", socket.display())))?;
            let _ = wr.eof().await;
            let mut answer = Vec::new();
            while let Some(msg) = rd.wait().await {
                match msg {
                    russh::ChannelMsg::Data { data } => exec::push_bounded(&mut answer, &data),
                    russh::ChannelMsg::Eof | russh::ChannelMsg::Close => break,
                    _ => {}
                }
            }
            Ok(answer)
        })
        .await;
        let _ = wr.close().await;
        answer.map_err(|_| timed_out())?.map(Some)
    }

    /// The socket was reached by a command where a direct-streamlocal channel was refused: the
    /// server does not forward for this login, so it is not asked again on this transport.
    pub fn streamlocal_refused(&self) {
        self.inner.no_streamlocal.store(true, Ordering::Relaxed);
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
        let live = session::open(&self.inner.hops, self.inner.prompt.as_ref()).await?;
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
        let live = session::open(&self.inner.hops, self.inner.prompt.as_ref()).await?;
        let h = live.handle.clone();
        *guard = Some(live);
        Ok(h)
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
}
