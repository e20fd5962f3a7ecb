//! The local transport: `sh -c` on this machine. Used by the demo world and for nodes that are
//! the machine cutover runs on.
//!
//! Each command runs in a process group of its own, out of the terminal's reach: when the
//! operator's SSH session drops, the hangup goes to the terminal's foreground group (and the
//! shell sends it on to its jobs), and a restart half done must not die with it. cutover itself
//! still ends the command when its own timeout passes, or when it stops waiting for it: the
//! whole group is killed then, not only `sh`. (A process group, not a new session: a command
//! run through `sudo -n` keeps its controlling terminal for sudoers' `requiretty`.)
//!
//! Reads ([`LocalTransport::read`]) run in kept shells ([`super::kept`]): `sh` processes started
//! once, each in a process group of its own, that run one read after another. A read then costs a
//! fork of a small shell rather than a spawn from cutover's own (much larger, threaded) process.
//! As many shells are kept as reads ran at once; a shell that breaks or times out is killed with
//! its group and the read runs as an ordinary command.

use super::command::{ExecOpts, ExecOutput, MAX_OUTPUT, TransportError};
use super::kept::{Kept, Request};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, Default)]
pub struct LocalTransport {
    /// Idle kept shells for reads.
    kept: Arc<Mutex<Vec<KeptShell>>>,
}

/// At most this many idle kept shells stay (more only while that many reads run at once).
const MAX_KEPT: usize = 128;

impl LocalTransport {
    pub fn new() -> Self {
        LocalTransport::default()
    }

    /// Run a command that only reads (no stdin) in a kept shell: a free one, or a new one. One
    /// that breaks is dropped (its group killed) and the command runs as [`LocalTransport::exec`]
    /// runs it; so do reads that need sudo.
    pub async fn read(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        if opts.stdin.is_some() || (opts.sudo && !nix::unistd::geteuid().is_root()) {
            return self.exec(cmd, opts).await;
        }
        let start = Instant::now();
        let idle = self.kept.lock().expect("kept shells").pop();
        if let Some(mut shell) = idle.or_else(KeptShell::start) {
            match shell.run(cmd, opts.timeout).await.output(start.elapsed()) {
                Ok(out) => {
                    let mut kept = self.kept.lock().expect("kept shells");
                    if kept.len() < MAX_KEPT {
                        kept.push(shell);
                    }
                    return Ok(out);
                }
                Err(Kept::TimedOut) => {
                    return Err(TransportError::Timeout {
                        host: "localhost".into(),
                        what: format!("command `{}`", first_words(cmd)),
                        secs: opts.timeout.as_secs(),
                    });
                }
                Err(_) => {}
            }
        }
        self.exec(cmd, opts).await
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
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| io("spawn sh", e))?;
        // Until the command has been waited for, leaving this function (a timeout, an error, the
        // caller giving up) kills its whole group.
        let mut group = GroupKill(child.id().map(|id| nix::unistd::Pid::from_raw(id as i32)));
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
                // Done: what it left running in its group (a daemon it started) is its business.
                group.0 = None;
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal();
                Ok(ExecOutput {
                    status: status.code().or(signal.map(|s| 128 + s)).unwrap_or(128 + 9),
                    signal,
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

/// A local `sh` kept open for reads, in a process group of its own (killed with it when the
/// shell is dropped: a read timed out or cancelled, or cutover done with it).
struct KeptShell {
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    _child: tokio::process::Child,
    _group: GroupKill,
}

impl std::fmt::Debug for KeptShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptShell")
    }
}

impl KeptShell {
    fn start() -> Option<KeptShell> {
        let mut child = tokio::process::Command::new("sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let group = GroupKill(child.id().map(|id| nix::unistd::Pid::from_raw(id as i32)));
        Some(KeptShell {
            stdin: child.stdin.take()?,
            stdout: child.stdout.take()?,
            stderr: child.stderr.take()?,
            _child: child,
            _group: group,
        })
    }

    /// Run `cmd` and collect its answer by `timeout` (then the shell is to be dropped).
    async fn run(&mut self, cmd: &str, timeout: Duration) -> Kept {
        let mut req = Request::new(cmd);
        let answered = tokio::time::timeout(timeout, async {
            if self.stdin.write_all(req.line.as_bytes()).await.is_err() {
                return false;
            }
            let (mut out, mut err) = ([0u8; 8192], [0u8; 8192]);
            while !req.done() {
                tokio::select! {
                    r = self.stdout.read(&mut out) => match r {
                        Ok(n) if n > 0 => req.stdout(&out[..n]),
                        _ => return false,
                    },
                    r = self.stderr.read(&mut err) => match r {
                        Ok(n) if n > 0 => req.stderr(&err[..n]),
                        _ => return false,
                    },
                }
                if req.out_of_frame() {
                    return false;
                }
            }
            true
        })
        .await;
        match answered {
            Err(_) => Kept::TimedOut,
            Ok(false) => Kept::Unusable,
            Ok(true) => req.answer(),
        }
    }
}

/// Kills a command's process group when dropped, unless the command was waited for.
struct GroupKill(Option<nix::unistd::Pid>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(secs: u64) -> ExecOpts {
        ExecOpts {
            timeout: Duration::from_secs(secs),
            ..Default::default()
        }
    }

    /// Field 5 of /proc/PID/stat: the process group (after the command name in parentheses).
    fn pgrp_of(stat: &str) -> i32 {
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split_whitespace().nth(2).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn a_command_runs_in_a_process_group_of_its_own() {
        let out = LocalTransport::new()
            .exec("echo $$; cat /proc/$$/stat", opts(10))
            .await
            .unwrap();
        let text = out.stdout_str();
        let (pid, stat) = text.split_once('\n').unwrap();
        let pid: i32 = pid.trim().parse().unwrap();
        let pgrp = pgrp_of(stat);
        assert_eq!(pgrp, pid, "the command leads its own group");
        let ours = pgrp_of(&std::fs::read_to_string("/proc/self/stat").unwrap());
        assert_ne!(pgrp, ours, "not in cutover's (the terminal's) group");
    }

    #[tokio::test]
    async fn a_signal_death_is_reported_as_the_signal() {
        let t = LocalTransport::new();
        let out = t.exec("kill -HUP $$; sleep 5", opts(10)).await.unwrap();
        assert_eq!(out.signal, Some(1));
        assert_eq!(out.status, 129);
        assert_eq!(out.exit_text(), "killed by SIGHUP");
        let out = t.exec("kill -KILL $$", opts(10)).await.unwrap();
        assert_eq!(out.exit_text(), "killed by SIGKILL");
        let out = t.exec("exit 137", opts(10)).await.unwrap();
        assert_eq!((out.signal, out.exit_text().as_str()), (None, "exited 137"));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_and_a_finished_command_leaves_its_daemons() {
        let t = LocalTransport::new();
        timed_out_leaves_no_child(async |cmd| t.exec(cmd, opts(1)).await).await;
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");

        // A command that finished is not chased: what it started in the background stays.
        let cmd = format!("sleep 60 >/dev/null 2>&1 & echo $! > {}", pidfile.display());
        let out = LocalTransport::new().exec(&cmd, opts(10)).await.unwrap();
        assert_eq!(out.status, 0);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!gone_within(pid, Duration::from_millis(300)).await);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    /// A read in a kept shell answers as an exec does (stdout, stderr, status; no stdin; nothing
    /// set by one read seen by the next), reuses its shell, and a shell in its own process group.
    #[tokio::test]
    async fn a_read_answers_as_an_exec_and_reuses_its_shell() {
        let t = LocalTransport::new();
        for cmd in [
            "echo out; echo err >&2; exit 3",
            "printf 'no newline'",
            "cat; echo read-nothing",
            "X=1; export Y=2; cd /; echo \"$X$Y\"",
            "echo \"[$X$Y]\" \"$(pwd)\"",
            "true",
        ] {
            let exec = t.exec(cmd, opts(10)).await.unwrap();
            let read = t.read(cmd, opts(10)).await.unwrap();
            assert_eq!(
                (
                    read.status,
                    read.stdout_str(),
                    String::from_utf8_lossy(&read.stderr)
                ),
                (
                    exec.status,
                    exec.stdout_str(),
                    String::from_utf8_lossy(&exec.stderr)
                ),
                "{cmd}"
            );
        }
        assert_eq!(t.kept.lock().unwrap().len(), 1, "one shell served them all");
        let shell = t.read("echo $$", opts(10)).await.unwrap();
        let again = t.read("echo $$", opts(10)).await.unwrap();
        assert_eq!(shell.stdout_str(), again.stdout_str());
        let pid: i32 = shell.stdout_str().trim().parse().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert_eq!(pgrp_of(&stat), pid, "the kept shell leads its own group");
    }

    /// Reads at once each get a shell; a read that times out kills its shell's whole group and
    /// the next read gets a new shell; a read that kills its shell runs again as an exec.
    #[tokio::test]
    async fn reads_at_once_timeouts_and_a_broken_shell() {
        let t = LocalTransport::new();
        let (a, b) = tokio::join!(
            t.read("sleep 0.3; echo a", opts(10)),
            t.read("sleep 0.3; echo b", opts(10))
        );
        assert_eq!(
            (a.unwrap().stdout_str(), b.unwrap().stdout_str()),
            ("a\n".into(), "b\n".into())
        );
        assert_eq!(t.kept.lock().unwrap().len(), 2);

        timed_out_leaves_no_child(async |cmd| t.read(cmd, opts(1)).await).await;
        assert_eq!(
            t.kept.lock().unwrap().len(),
            1,
            "the timed-out shell is not kept"
        );

        // The shell killed under the read: the read is run again as an exec (whose own sh the
        // command kills in turn), and the pool has one shell fewer.
        let out = t.read("kill -9 $$; echo survived", opts(10)).await.unwrap();
        assert!(out.status == 0 || out.status == 137, "{out:?}");
        assert_eq!(
            t.read("echo ok", opts(10)).await.unwrap().stdout_str(),
            "ok\n"
        );
    }

    /// `run` given a command that starts a grandchild and waits for it times out, and the
    /// grandchild (which outlives sh unless its whole group is killed) is gone soon after.
    async fn timed_out_leaves_no_child(
        run: impl AsyncFnOnce(&str) -> Result<ExecOutput, TransportError>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = format!(
            "sleep 60 >/dev/null 2>&1 & echo $! > {}; wait",
            pidfile.display()
        );
        let err = run(&cmd).await.unwrap_err();
        assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            gone_within(pid, Duration::from_secs(5)).await,
            "the grandchild {pid} survived the timeout"
        );
    }

    /// The process is gone (or a zombie waiting for its new parent) within `within`.
    async fn gone_within(pid: i32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let dead = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(stat) => stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
            };
            if dead {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
