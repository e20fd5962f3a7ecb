//! A kept shell: one `sh` per connection that runs reads one after another, so a read costs a
//! few bytes on an open channel instead of a new session. A new session runs the login shell,
//! and bash started by sshd sources `~/.bashrc` even for `bash -c`: with pyenv, conda or a
//! banner there, every exec pays for it (150 ms a command on the lab's root account). The kept
//! shell pays it once.
//!
//! Each request is one line the shell reads from its stdin:
//! `( eval 'CMD' ) </dev/null; printf '\nMARK %s\n' "$?"; printf '\nMARK\n' >&2`, with a
//! fresh random MARK. The command runs in a subshell with no stdin (so it cannot read the
//! requests behind it, and nothing it sets or changes outlives it), and the answer is what
//! came on stdout and stderr before MARK. Anything unexpected (the shell gone, a marker cut
//! short, too much output) drops the kept shell; the caller then runs the command on a new
//! channel as before, which is safe because only reads come here.

use super::exec::push_bounded;
use crate::transport::command::{MAX_OUTPUT, shell_quote};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use std::time::Duration;

/// An open channel whose remote end is `sh` reading requests from its stdin.
pub(super) struct KeptShell {
    rd: ChannelReadHalf,
    wr: ChannelWriteHalf<Msg>,
}

/// What a request to the kept shell came to.
pub(super) enum Kept {
    /// The command ran: its exit status, stdout and stderr (each bounded).
    Ran {
        status: i32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// The deadline passed first; the shell was closed (it may still be running the command).
    TimedOut,
    /// The shell could not be used (gone, refused, output out of frame): run it elsewhere.
    Unusable,
}

impl KeptShell {
    /// Start `sh` on `channel` (a new session channel of the connection).
    pub(super) async fn start(channel: russh::Channel<Msg>) -> Option<KeptShell> {
        let (rd, wr) = channel.split();
        // `exec`: the login shell (and its rc files, once) gives way to a plain sh.
        wr.exec(true, "exec sh".as_bytes().to_vec()).await.ok()?;
        Some(KeptShell { rd, wr })
    }

    /// Run `line` (a shell command line, already wrapped for sudo if asked) and collect its
    /// answer by `timeout`.
    pub(super) async fn run(&mut self, line: &str, timeout: Duration) -> Kept {
        let mark = format!("__cutover_{}__", uuid::Uuid::new_v4().simple());
        let request = format!(
            "( eval {} ) </dev/null; printf '\\n%s %s\\n' {mark} \"$?\"; printf '\\n%s\\n' {mark} >&2\n",
            shell_quote(line)
        );
        if self.wr.data(request.as_bytes()).await.is_err() {
            return Kept::Unusable;
        }
        let out_mark = format!("\n{mark} ");
        let err_mark = format!("\n{mark}\n");
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut status: Option<(usize, i32)> = None;
        let mut err_end: Option<usize> = None;
        let answered = tokio::time::timeout(timeout, async {
            while status.is_none() || err_end.is_none() {
                match self.rd.wait().await {
                    Some(ChannelMsg::Data { data }) => {
                        stdout.extend_from_slice(&data);
                        if status.is_none() {
                            status = exit_status(&stdout, &out_mark);
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        stderr.extend_from_slice(&data);
                        if err_end.is_none() {
                            err_end = find(&stderr, err_mark.as_bytes());
                        }
                    }
                    Some(
                        ChannelMsg::Eof
                        | ChannelMsg::Close
                        | ChannelMsg::ExitStatus { .. }
                        | ChannelMsg::ExitSignal { .. }
                        | ChannelMsg::Failure,
                    )
                    | None => return false,
                    Some(_) => {}
                }
                // Far more than a read prints: out of frame; a new channel bounds it.
                if stdout.len() > MAX_OUTPUT + 4096 || stderr.len() > MAX_OUTPUT + 4096 {
                    return false;
                }
            }
            true
        })
        .await;
        match answered {
            Err(_) => {
                let _ = self.wr.close().await;
                Kept::TimedOut
            }
            Ok(false) => Kept::Unusable,
            Ok(true) => {
                let ((out_end, status), err_end) = (status.expect("seen"), err_end.expect("seen"));
                let mut out = Vec::new();
                push_bounded(&mut out, &stdout[..out_end]);
                let mut err = Vec::new();
                push_bounded(&mut err, &stderr[..err_end]);
                Kept::Ran {
                    status,
                    stdout: out,
                    stderr: err,
                }
            }
        }
    }

    pub(super) async fn close(self) {
        let _ = self.wr.close().await;
    }
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The end of the command's stdout and its exit status, once `\nMARK STATUS\n` has come.
fn exit_status(stdout: &[u8], out_mark: &str) -> Option<(usize, i32)> {
    let at = find(stdout, out_mark.as_bytes())?;
    let rest = &stdout[at + out_mark.len()..];
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let status = std::str::from_utf8(&rest[..nl]).ok()?.trim().parse().ok()?;
    Some((at, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_ends_the_output_and_only_a_whole_one_counts() {
        let m = "\n__cutover_x__ ";
        assert_eq!(exit_status(b"hello\n\n__cutover_x__ 3\n", m), Some((6, 3)));
        assert_eq!(exit_status(b"\n__cutover_x__ 0\n", m), Some((0, 0)));
        // Not yet whole: wait for more.
        assert_eq!(exit_status(b"hello\n\n__cutover_x__ 1", m), None);
        assert_eq!(exit_status(b"hello\n\n__cutover_", m), None);
    }
}
