//! Running the real `cutover` binary: with a deadline, output captured to files (no pipe can
//! fill up), and processes that are stopped when a test ends early.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cutover");

/// The binary under test (for call sites that want a function).
pub fn bin() -> &'static str {
    BIN
}

/// `cutover ARGS` from the crate root, stdin empty, output collected in memory.
pub fn cutover(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("run cutover")
}

/// Both streams of an [`Output`], labelled, for an assertion's message.
pub fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What a process run by [`run_captured`] left: its exit status (`None`: it outlived the
/// deadline and was killed) and both streams.
pub struct Captured {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// The exit code (`None`: killed at the deadline or by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Exit code and both streams, labelled, for an assertion's message.
    pub fn all(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` with stdin empty and stdout/stderr written to `out`/`err` (created here), polling
/// every `poll` until it exits; killed (and reaped) if it outlives `deadline`. Panics, naming
/// `what`, if it cannot be started.
pub fn run_captured(
    cmd: &mut Command,
    what: &str,
    out: &Path,
    err: &Path,
    deadline: Duration,
    poll: Duration,
) -> Captured {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(out).unwrap())
        .stderr(fs::File::create(err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(poll);
    };
    Captured {
        status,
        stdout: fs::read_to_string(out).unwrap_or_default(),
        stderr: fs::read_to_string(err).unwrap_or_default(),
    }
}

/// A child process killed (and reaped) when dropped, if it is still running.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
