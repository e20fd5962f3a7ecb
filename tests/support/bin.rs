//! Running the real `cutover` binary: with a deadline, output captured to files (no pipe can
//! fill up), and processes that are stopped when a test ends early.

use std::fs;
use std::path::{Path, PathBuf};
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

/// A process started by [`spawn_captured`]: stdin empty, stdout and stderr going to files.
pub struct Spawned {
    pub child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
    pub what: String,
    pub started: Instant,
}

/// Starts `cmd` with stdin empty and stdout/stderr written to `out`/`err` (created here; no
/// pipe can fill up). Panics, naming `what`, if it cannot be started.
pub fn spawn_captured(cmd: &mut Command, what: &str, out: &Path, err: &Path) -> Spawned {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(out).unwrap())
        .stderr(fs::File::create(err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    Spawned {
        child,
        out: out.to_path_buf(),
        err: err.to_path_buf(),
        what: what.to_string(),
        started: Instant::now(),
    }
}

impl Spawned {
    /// Waits (polling every `poll`) until the process exits or has run for `deadline` since it
    /// started; then it is killed and reaped, and the status is `None`.
    pub fn wait_until(&mut self, deadline: Duration, poll: Duration) -> Option<ExitStatus> {
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if self.started.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(poll);
        }
    }

    /// Both output files as they are now.
    pub fn output(&self) -> (String, String) {
        (
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default(),
        )
    }

    /// Waits for the process to finish; panics with its output if it outlives `deadline` (a
    /// hang fails the test instead of blocking it).
    pub fn finish(mut self, deadline: Duration) -> Finished {
        let status = self.wait_until(deadline, Duration::from_millis(20));
        let (stdout, stderr) = self.output();
        let Some(status) = status else {
            panic!(
                "`{}` did not finish within {deadline:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                self.what
            );
        };
        Finished {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            what: self.what,
        }
    }
}

/// A command that finished: its exit code (-1 for a signal death), output and what it was.
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Finished {
    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect(self, code: i32) -> Finished {
        assert_eq!(
            self.code, code,
            "`{}` exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `cmd` to the end as [`spawn_captured`] and [`Spawned::finish`] do.
pub fn run_to_end(
    cmd: &mut Command,
    what: &str,
    out: &Path,
    err: &Path,
    deadline: Duration,
) -> Finished {
    spawn_captured(cmd, what, out, err).finish(deadline)
}

/// Runs `cmd` as [`spawn_captured`] does, polling every `poll`; killed (and reaped) if it
/// outlives `deadline`, which the returned status (`None`) says instead of panicking.
pub fn run_captured(
    cmd: &mut Command,
    what: &str,
    out: &Path,
    err: &Path,
    deadline: Duration,
    poll: Duration,
) -> Captured {
    let mut run = spawn_captured(cmd, what, out, err);
    let status = run.wait_until(deadline, poll);
    let (stdout, stderr) = run.output();
    Captured {
        status,
        stdout,
        stderr,
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

/// Two new file names in `scratch` for a command's stdout and stderr (`cmd-N.stdout`,
/// `cmd-N.stderr`, N counting up within the test binary).
pub fn output_files(scratch: &Path) -> (PathBuf, PathBuf) {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    (
        scratch.join(format!("cmd-{n}.stdout")),
        scratch.join(format!("cmd-{n}.stderr")),
    )
}
