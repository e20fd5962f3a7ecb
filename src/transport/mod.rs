//! How cutover reaches a host: a local shell (the demo world, or a bastion that is itself the
//! node) or SSH (russh). Everything above this layer speaks in commands, files and admin sockets;
//! only this layer knows how bytes get there.
//!
//! `command`: what every transport speaks (options, output, [`TransportError`], quoting);
//! `local`: a local shell; `ssh/`: russh (`config` ssh_config, `known_hosts`, `host_key` the
//! check, `passphrase`, `auth`, `session` connecting through jump hosts, `exec` one command on a
//! channel; `mod` the connection that reconnects).

mod command;
mod kept;
pub mod local;
pub mod ssh;

pub use command::{
    ExecOpts, ExecOutput, MAX_OUTPUT, TransportError, receive_stdin, redact, shell_quote,
    signal_name,
};

use std::path::Path;
use std::time::Duration;

/// One host's transport. An enum rather than a trait object: there are exactly two ways to reach
/// a host, and async methods stay plain.
#[derive(Clone)]
pub enum Transport {
    Local(local::LocalTransport),
    Ssh(ssh::SshTransport),
}

impl Transport {
    pub fn host(&self) -> String {
        match self {
            Transport::Local(_) => "localhost".into(),
            Transport::Ssh(s) => s.label(),
        }
    }

    /// Run a shell command line on the host (`sh -c` semantics).
    pub async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        match self {
            Transport::Local(t) => t.exec(cmd, opts).await,
            Transport::Ssh(t) => t.exec(cmd, opts).await,
        }
    }

    /// Run a command that only reads (no stdin) in a kept shell ([`kept`]): over SSH the
    /// connection's when it is free (no new session per read), locally a free one of the pool;
    /// else as [`Transport::exec`].
    pub async fn read(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        match self {
            Transport::Local(t) => t.read(cmd, opts).await,
            Transport::Ssh(t) => t.read(cmd, opts).await,
        }
    }

    /// Send one request line to a UNIX stream socket on the host and read the reply until the
    /// peer closes (HAProxy's runtime API in non-interactive mode answers and closes).
    pub async fn socket_request(
        &self,
        socket: &Path,
        request: &str,
        sudo: bool,
        timeout: Duration,
    ) -> Result<String, TransportError> {
        match self {
            Transport::Local(t) => t.socket_request(socket, request, timeout).await,
            Transport::Ssh(t) => {
                let mut line = request.to_string();
                if !line.ends_with('\n') {
                    line.push('\n');
                }
                // Through the connection itself where the server allows it and the login user
                // may connect (no sudo asked for); else `socat` on the host.
                let mut tried_channel = false;
                if !sudo {
                    match t
                        .streamlocal_request(socket, line.as_bytes(), timeout)
                        .await?
                    {
                        Some(answer) => return Ok(String::from_utf8_lossy(&answer).into_owned()),
                        None => tried_channel = true,
                    }
                }
                let cmd = format!(
                    "socat -t 5 stdio UNIX-CONNECT:{}",
                    shell_quote(&socket.to_string_lossy())
                );
                let out = t
                    .exec(
                        &cmd,
                        ExecOpts {
                            stdin: Some(line.into_bytes()),
                            timeout,
                            sudo,
                        },
                    )
                    .await?;
                if out.status != 0 {
                    return Err(TransportError::Io {
                        host: t.label(),
                        msg: format!(
                            "socat to {} {}: {}",
                            socket.display(),
                            out.exit_text(),
                            out.last_line()
                        ),
                    });
                }
                if tried_channel {
                    t.streamlocal_refused();
                }
                Ok(out.stdout_str())
            }
        }
    }

    /// Read a whole file (a read: in a kept shell when one is free). The bytes stay in memory;
    /// callers fingerprint key material and drop it.
    pub async fn read_file(&self, path: &Path, sudo: bool) -> Result<Vec<u8>, TransportError> {
        let out = self
            .read(
                &format!("cat -- {}", shell_quote(&path.to_string_lossy())),
                ExecOpts {
                    sudo,
                    ..Default::default()
                },
            )
            .await?;
        if out.status != 0 {
            return Err(TransportError::Io {
                host: self.host(),
                msg: format!("cannot read {}: {}", path.display(), out.last_line()),
            });
        }
        Ok(out.stdout)
    }

    /// Write a file atomically (temp file in the same directory, then rename), streaming the
    /// content over stdin so it never appears on a command line. Mode and owner are set before the
    /// rename, so the file is never visible with looser permissions.
    pub async fn write_file(
        &self,
        path: &Path,
        content: &[u8],
        mode: u32,
        owner: Option<(&str, &str)>,
        sudo: bool,
    ) -> Result<(), TransportError> {
        let p = shell_quote(&path.to_string_lossy());
        let chown = match owner {
            Some((u, g)) => format!(" && chown {}:{} \"$tmp\"", shell_quote(u), shell_quote(g)),
            None => String::new(),
        };
        let cmd = format!(
            "set -e; umask 077; tmp=$(mktemp {p}.cutover.XXXXXX); trap 'rm -f \"$tmp\"' EXIT; {}; chmod {mode:o} \"$tmp\"{chown}; mv -f \"$tmp\" {p}; trap - EXIT",
            receive_stdin("\"$tmp\"", content)
        );
        let out = self
            .exec(
                &cmd,
                ExecOpts {
                    stdin: Some(content.to_vec()),
                    sudo,
                    ..Default::default()
                },
            )
            .await?;
        if out.status != 0 {
            return Err(TransportError::Io {
                host: self.host(),
                msg: format!("cannot write {}: {}", path.display(), out.last_line()),
            });
        }
        Ok(())
    }
}
