//! One command on its own channel: stdin streamed, stdout and stderr collected (bounded), the
//! exit status or signal, and a deadline.

use crate::transport::command::MAX_OUTPUT;
use russh::ChannelMsg;
use russh::client;
use std::sync::Arc;
use std::time::Duration;

/// What a command that ran to its end left.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) status: i32,
    pub(super) signal: Option<i32>,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

/// Why a command did not run to its end. The caller tells a timeout from the others; the
/// others are reported as they read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ChannelError {
    /// The deadline passed first (the command was sent SIGKILL and its channel closed).
    #[error("timed out")]
    TimedOut,
    #[error("cannot start the command: {0}")]
    Start(russh::Error),
    #[error("the server refused to run the command")]
    Refused,
    #[error("the channel closed without an exit status (connection lost?)")]
    NoExitStatus,
}

/// Run one command on a fresh channel: stdin is written by its own task while stdout/stderr are
/// read, so a command that echoes its input cannot dead-lock against flow control.
/// [`ChannelError::TimedOut`] when `timeout` passed first: the remote command is then sent SIGKILL and its channel closed.
/// Best effort: OpenSSH refuses signal requests for root logins (no privilege-separated session
/// child), and a closed channel only ends a command that writes or reads; callers that run
/// something that may hang should bound it on the host too (`timeout N cmd`).
pub(super) async fn run_channel(
    channel: russh::Channel<client::Msg>,
    line: String,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Finished, ChannelError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (mut rd, wr) = channel.split();
    let wr = Arc::new(wr);
    let started = tokio::time::timeout_at(deadline, wr.exec(true, line.into_bytes())).await;
    match started {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ChannelError::Start(e)),
        Err(_) => {
            let _ = wr.close().await;
            return Err(ChannelError::TimedOut);
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
        return Err(ChannelError::TimedOut);
    }
    let _ = writer.await;
    match status {
        Some(status) => Ok(Finished {
            status,
            signal,
            stdout,
            stderr,
        }),
        None if refused => Err(ChannelError::Refused),
        None => Err(ChannelError::NoExitStatus),
    }
}

pub(super) fn push_bounded(buf: &mut Vec<u8>, data: &[u8]) {
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

pub(super) fn first_words(cmd: &str) -> String {
    let one_line = cmd.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(60).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_bounded() {
        let mut b = vec![0u8; MAX_OUTPUT - 2];
        push_bounded(&mut b, b"abcdef");
        assert_eq!(b.len(), MAX_OUTPUT);
        assert_eq!(&b[MAX_OUTPUT - 2..], b"ab");
    }
}
