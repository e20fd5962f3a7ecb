//! The signals a headless session watches, and what it does when its terminal goes away.

use anyhow::{Context, Result};
use std::path::Path;

/// A signal a headless session acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The terminal hung up (a dropped SSH session).
    HangUp,
    /// Ctrl-C, or SIGTERM (`kill`, a service manager): the operator's request to stop.
    Signal(nix::sys::signal::Signal),
}

/// The signals a headless session watches. Once watched, none of them kills cutover by itself:
/// the session decides (pause after the action in flight; a second SIGINT/SIGTERM stops now).
pub(super) struct Signals {
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn watch() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?,
            int: signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?,
        })
    }

    pub(super) async fn recv(&mut self) -> Stop {
        use nix::sys::signal::Signal as S;
        tokio::select! {
            _ = self.hup.recv() => Stop::HangUp,
            _ = self.int.recv() => Stop::Signal(S::SIGINT),
            _ = self.term.recv() => Stop::Signal(S::SIGTERM),
        }
    }
}

/// How a signal is named to the operator.
pub(super) fn signal_name(sig: nix::sys::signal::Signal) -> &'static str {
    match sig {
        nix::sys::signal::Signal::SIGINT => "Ctrl-C (SIGINT)",
        other => other.as_str(),
    }
}

/// A second SIGINT/SIGTERM: stop now, as the signal would have without a handler. The action
/// in flight (a local child runs in a process group of its own) is left to finish or not; its
/// intent is in the journal without an outcome, and the resume asks about it (in doubt).
pub(super) fn die_of(sig: nix::sys::signal::Signal, journal: &Path) -> ! {
    eprintln!(
        "cutover: {} again: stopping now; an action in flight is left in doubt (`cutover resume {}` asks about it)",
        signal_name(sig),
        journal.display()
    );
    // SAFETY: restoring a signal's default disposition; no handler code of ours runs.
    unsafe {
        let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl);
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), sig);
    // Not reached unless the signal is blocked: exit as a shell reports a signal death.
    std::process::exit(128 + sig as i32)
}

/// The terminal went away: point stdin, stdout and stderr that are terminals at /dev/null, so
/// that what is still written (a progress line, the closing advice) goes nowhere instead of
/// failing with EIO (a failed `println!` panics). Output into a pipe or socket goes the same way:
/// what read it (`| tee run.log`) was in the session that hung up and got the hangup too, and a
/// write into its closed pipe would kill cutover (SIGPIPE) mid-action. Output redirected to a
/// file is left alone. Idempotent.
pub fn detach_from_terminal() {
    use std::os::fd::{AsFd, BorrowedFd};
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    // A terminal that hung up answers every ioctl, isatty's too, with EIO.
    fn terminal(fd: BorrowedFd) -> bool {
        matches!(
            nix::unistd::isatty(fd),
            Ok(true) | Err(nix::errno::Errno::EIO)
        )
    }
    fn pipe_or_socket(fd: BorrowedFd) -> bool {
        use nix::sys::stat::SFlag;
        nix::sys::stat::fstat(fd).is_ok_and(|st| {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
        })
    }
    let away = |fd: BorrowedFd| terminal(fd) || pipe_or_socket(fd);
    if terminal(std::io::stdin().as_fd()) {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    if away(std::io::stdout().as_fd()) {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if away(std::io::stderr().as_fd()) {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
