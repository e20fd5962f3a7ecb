//! The real binary in a pseudo-terminal of a given size (expectrl), its output parsed by a
//! terminal emulator (vt100) and kept raw as well. Every wait is bounded and polls; a failed
//! wait prints the last screen.

use std::io::{ErrorKind, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::process::unix::{Signal, WaitStatus};
use expectrl::session::OsSession;

use super::bin::BIN;

/// `cutover` from the crate root with `TERM=xterm-256color` and `NO_COLOR` unset: the command
/// a test adds its arguments and environment to before [`Tui::spawn`].
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR");
    cmd
}

/// A program in a pseudo-terminal, the screen it has drawn so far and every byte it wrote;
/// killed when dropped if still running (a failed test must not leave the UI running).
pub struct Tui {
    pub p: OsSession,
    pub vt: vt100::Parser,
    /// Every byte the program wrote.
    pub raw: Vec<u8>,
    pub cols: u16,
    /// The program closed its side of the pty.
    pub eof: bool,
}

impl Tui {
    /// Starts `cmd` in a pty of `cols`×`rows`.
    pub fn spawn(cmd: Command, cols: u16, rows: u16) -> Tui {
        let mut p = expectrl::Session::spawn(cmd).expect("spawn cutover in a pty");
        p.get_process_mut()
            .set_window_size(cols, rows)
            .expect("set the pty's size");
        Tui {
            p,
            vt: vt100::Parser::new(rows, cols, 0),
            raw: Vec::new(),
            cols,
            eof: false,
        }
    }

    /// Feeds whatever the program wrote to the emulator (and `raw`), without blocking.
    pub fn pump(&mut self) {
        let mut buf = [0u8; 65536];
        while !self.eof {
            match self.p.try_read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.vt.process(&buf[..n]);
                    self.raw.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // EIO: the child closed its side of the pty (it exited).
                Err(_) => self.eof = true,
            }
        }
    }

    /// The screen's text as the emulator has it now.
    pub fn screen(&self) -> String {
        self.vt.screen().contents()
    }

    /// Everything the program wrote, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// `s` between two rules as wide as the terminal, for a failure message.
    pub fn framed(&self, s: &str) -> String {
        framed(s, self.cols)
    }

    /// Polls the screen until `pred` holds on a whole frame; panics with the last screen after
    /// `timeout` or when the program has exited. A frame can arrive in several reads of the pty:
    /// a screen that matches is looked at again after a short pause (when nothing more came, it
    /// is whole), so a frame caught half drawn is not what the caller asserts on.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            let s = self.screen();
            if pred(&s) {
                std::thread::sleep(Duration::from_millis(30));
                let before = self.raw.len();
                self.pump();
                if self.raw.len() == before || self.eof {
                    return s;
                }
                let settled = self.screen();
                if pred(&settled) {
                    return settled;
                }
            }
            if Instant::now() > deadline || self.eof {
                let why = if self.eof {
                    "the program exited"
                } else {
                    "timed out"
                };
                panic!(
                    "waiting for {what}: {why} after {timeout:?}; last screen:\n{}",
                    self.framed(&s)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        self.p.write_all(keys.as_bytes()).expect("write to the pty");
        self.p.flush().expect("flush the pty");
    }

    /// Waits for the program to exit (draining the pty meanwhile) and returns its exit code;
    /// panics with the last screen if it is killed by a signal or outlives `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            match self.p.get_process().status() {
                Ok(WaitStatus::Exited(_, code)) => return code,
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    panic!(
                        "cutover was killed by {sig:?}; last screen:\n{}",
                        self.framed(&self.screen())
                    )
                }
                _ => {}
            }
            if Instant::now() > deadline {
                panic!(
                    "cutover did not exit within {timeout:?}; last screen:\n{}",
                    self.framed(&self.screen())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        if matches!(self.p.get_process().is_alive(), Ok(true)) {
            let _ = self.p.get_process_mut().kill(Signal::SIGKILL);
        }
    }
}

/// `s` between two ASCII rules `cols` wide.
pub fn framed(s: &str, cols: u16) -> String {
    let rule = "-".repeat(cols as usize);
    format!("{rule}\n{s}\n{rule}")
}
