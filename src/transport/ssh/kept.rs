//! A kept shell over SSH: one `sh` per connection on a session channel of its own, speaking
//! [`crate::transport::kept`]'s protocol. A new session runs the login shell, and bash started by
//! sshd sources `~/.bashrc` even for `bash -c`: with pyenv, conda or a banner there, every exec
//! pays for it (150 ms a command on the lab's root account). The kept shell pays it once.

use crate::transport::kept::{Kept, Request};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use std::time::Duration;

/// An open channel whose remote end is `sh` reading requests from its stdin.
pub(super) struct KeptShell {
    rd: ChannelReadHalf,
    wr: ChannelWriteHalf<Msg>,
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
        let mut req = Request::new(line);
        if self.wr.data(req.line.as_bytes()).await.is_err() {
            return Kept::Unusable;
        }
        let answered = tokio::time::timeout(timeout, async {
            while !req.done() {
                match self.rd.wait().await {
                    Some(ChannelMsg::Data { data }) => req.stdout(&data),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => req.stderr(&data),
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
                if req.out_of_frame() {
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
            Ok(true) => req.answer(),
        }
    }

    pub(super) async fn close(self) {
        let _ = self.wr.close().await;
    }
}
