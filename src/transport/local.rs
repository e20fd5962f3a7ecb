//! The local transport: `sh -c` on this machine. Used by the demo world and for nodes that are
//! the machine cutover runs on.

use super::{ExecOpts, ExecOutput, MAX_OUTPUT, TransportError};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, Default)]
pub struct LocalTransport;

impl LocalTransport {
    pub fn new() -> Self {
        LocalTransport
    }

    pub async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        let start = Instant::now();
        let is_root = nix::unistd::geteuid().is_root();
        let mut command = if opts.sudo && !is_root {
            let mut c = tokio::process::Command::new("sudo");
            c.args(["-n", "sh", "-c", cmd]);
            c
        } else {
            let mut c = tokio::process::Command::new("sh");
            c.args(["-c", cmd]);
            c
        };
        command
            .stdin(if opts.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| io("spawn sh", e))?;
        if let Some(input) = opts.stdin {
            let mut stdin = child.stdin.take().expect("piped stdin");
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            });
        }
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let run = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (r1, r2) = tokio::join!(
                read_bounded(&mut stdout, &mut out),
                read_bounded(&mut stderr, &mut err)
            );
            r1.map_err(|e| io("read stdout", e))?;
            r2.map_err(|e| io("read stderr", e))?;
            let status = child.wait().await.map_err(|e| io("wait", e))?;
            Ok::<_, TransportError>((status, out, err))
        };
        match tokio::time::timeout(opts.timeout, run).await {
            Ok(r) => {
                let (status, stdout, stderr) = r?;
                Ok(ExecOutput {
                    status: status.code().unwrap_or(128 + 9),
                    stdout,
                    stderr,
                    duration: start.elapsed(),
                })
            }
            Err(_) => Err(TransportError::Timeout {
                host: "localhost".into(),
                what: format!("command `{}`", first_words(cmd)),
                secs: opts.timeout.as_secs(),
            }),
        }
    }

    pub async fn socket_request(
        &self,
        socket: &Path,
        request: &str,
        timeout: Duration,
    ) -> Result<String, TransportError> {
        let run = async {
            let mut s = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| io(&format!("connect {}", socket.display()), e))?;
            let mut line = request.to_string();
            if !line.ends_with('\n') {
                line.push('\n');
            }
            s.write_all(line.as_bytes())
                .await
                .map_err(|e| io("write", e))?;
            let mut out = Vec::new();
            read_bounded(&mut s, &mut out)
                .await
                .map_err(|e| io("read", e))?;
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Timeout {
                    host: "localhost".into(),
                    what: format!("request to {}", socket.display()),
                    secs: timeout.as_secs(),
                })
            })
    }
}

async fn read_bounded<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() < MAX_OUTPUT {
            let take = n.min(MAX_OUTPUT - buf.len());
            buf.extend_from_slice(&chunk[..take]);
        }
    }
}

fn io(what: &str, e: std::io::Error) -> TransportError {
    TransportError::Io {
        host: "localhost".into(),
        msg: format!("{what}: {e}"),
    }
}

fn first_words(cmd: &str) -> String {
    let s: String = cmd.chars().take(60).collect();
    if cmd.len() > 60 { format!("{s}…") } else { s }
}
