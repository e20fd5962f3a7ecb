//! A dropped SSH session is a pause, not a failure.
//!
//! The real `cutover` runs in a pseudo-terminal of its own (it leads the pty's session, as a
//! login shell's job would lead its process group) against a demo world served by a separate
//! `cutover world serve`, with node1's restart slowed down. While node1's restart is in flight
//! the terminal hangs up the way an SSH disconnect does: the pty's master is closed (the kernel
//! hangs up the terminal and signals the session leader) and SIGHUP goes to the process group
//! (what the shell does for its jobs when its terminal hangs up).
//!
//! Then observers that do not take cutover's word for it: the world's own `run/restarts.log`
//! and `run/provider` (written by the stand-in as things happen), node1 answering HTTP, and the
//! journal read as JSON lines. The restart completed, the run paused saying the terminal hung up
//! (not halted, no signal death), and exactly one headless resume completes the run.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::bin::{bin, cutover, text};
use support::journal::{kinds, records};
use support::world::{answers, restart_in_flight, restarts, served_world};

const COLS: u16 = 100;
const ROWS: u16 = 30;
/// Seconds node1's restart takes (the world's slow-restart fault): the window to hang up in.
const SLOW: &str = "6";

/// The binary in a pseudo-terminal it controls, and the screen it drew (vt100).
struct Pty {
    /// The master side; `None` once the terminal hung up.
    master: Option<std::fs::File>,
    child: Child,
    vt: vt100::Parser,
    status: Option<std::process::ExitStatus>,
}

impl Pty {
    fn spawn(args: &[&str]) -> Pty {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        Pty::spawn_command(cmd)
    }

    /// `cmd` in a new pty: it leads the pty's session and its process group.
    fn spawn_command(mut cmd: Command) -> Pty {
        let ws = nix::pty::Winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&ws, None).expect("openpty");
        // openpty's descriptors are inherited across exec unless marked: a master left open in
        // the child would keep the terminal alive after the test closes its own copy.
        for fd in [pty.master.as_fd(), pty.slave.as_fd()] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .expect("FD_CLOEXEC");
        }
        let slave: OwnedFd = pty.slave;
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A session of its own with the pty as its controlling terminal: cutover leads
                // the session and its process group, as a login shell's foreground job would.
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn cutover in a pty");
        drop(slave);
        let master = std::fs::File::from(pty.master);
        let flags = nix::fcntl::fcntl(master.as_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(master.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
        Pty {
            master: Some(master),
            child,
            vt: vt100::Parser::new(ROWS, COLS, 0),
            status: None,
        }
    }

    /// Feed what the program wrote to the emulator, without blocking.
    fn pump(&mut self) {
        let mut buf = [0u8; 65536];
        while let Some(m) = self.master.as_mut() {
            match m.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.vt.process(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock: nothing more now; EIO: the program closed its side.
                Err(_) => break,
            }
        }
    }

    fn screen(&self) -> String {
        self.vt.screen().contents()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Poll until `pred` holds; panic after `timeout` with the last screen and the journal.
    fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        journal: &Path,
        mut pred: impl FnMut(&mut Pty) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if pred(self) {
                return;
            }
            let gone = self.exited();
            if Instant::now() > deadline || gone.is_some() {
                panic!(
                    "waiting for {what}: {} after {timeout:?}; last screen:\n{}\njournal kinds: {:?}",
                    match gone {
                        Some(s) => format!("cutover exited ({s})"),
                        None => "timed out".into(),
                    },
                    self.screen(),
                    kinds(&records(journal))
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, keys: &str) {
        let m = self.master.as_mut().expect("the terminal is still there");
        m.write_all(keys.as_bytes()).unwrap();
        m.flush().unwrap();
    }

    /// The SSH connection drops: sshd closes the pty's master (the kernel hangs the terminal up
    /// and sends SIGHUP to the session leader), and the login shell, hung up, sends SIGHUP to
    /// the process group of its job.
    fn hang_up(&mut self) {
        self.pump();
        drop(self.master.take());
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGHUP);
    }

    fn wait_exit(&mut self, timeout: Duration, journal: &Path) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if let Some(s) = self.exited() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "cutover did not exit within {timeout:?} of the hangup; journal kinds: {:?}",
                kinds(&records(journal))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// After the hangup: node1's restart completed, the journal says the terminal hung up and the
/// run paused, nothing halted, no signal death; then one headless resume completes the run.
fn check_paused_then_resume(
    status: std::process::ExitStatus,
    journal: &Path,
    info: &cutover::world::WorldInfo,
) {
    let node1 = &info.nodes[0];
    let recs = records(journal);
    let ks = kinds(&recs);
    let all = std::fs::read_to_string(journal).unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "exit code after the hangup (3: paused); journal kinds: {ks:?}"
    );
    // The world's own account: the restart begun once, and Keystone runs (run/provider is
    // present only while it listens) on the provider the run flipped it to.
    assert_eq!(restarts(node1), 1, "node1 restarted exactly once");
    let provider = std::fs::read_to_string(node1.run_dir.join("provider")).unwrap_or_default();
    assert_eq!(
        provider.trim(),
        "jws",
        "node1 is up on jws after its restart"
    );
    assert!(answers(node1), "node1 answers GET /v3");
    // The journal's account.
    let restart_outcome = recs
        .iter()
        .find(|r| {
            r["kind"] == "outcome" && r["node"] == "node1" && {
                let id = &r["data"]["id"];
                recs.iter().any(|i| {
                    i["kind"] == "intent"
                        && i["data"]["id"] == *id
                        && i["data"]["action"] == "service.restart"
                })
            }
        })
        .unwrap_or_else(|| panic!("no outcome for node1's restart: {ks:?}"));
    assert_eq!(
        restart_outcome["data"]["ok"], true,
        "the restart succeeded: {restart_outcome}"
    );
    assert!(
        !ks.iter().any(|k| k == "run_halted"),
        "the run halted: {ks:?}\n{all}"
    );
    assert!(
        !all.contains("exited 137") && !all.contains("killed by"),
        "a child died of a signal:\n{all}"
    );
    let hangup = recs
        .iter()
        .find(|r| r["kind"] == "pause_requested")
        .unwrap_or_else(|| panic!("no pause_requested: {ks:?}"));
    assert_eq!(hangup["data"]["cause"], "terminal_hangup", "{hangup}");
    let paused: Vec<&serde_json::Value> =
        recs.iter().filter(|r| r["kind"] == "run_paused").collect();
    assert_eq!(paused.len(), 1, "one pause: {ks:?}");
    assert_eq!(
        paused[0]["data"]["reason"], "the terminal hung up",
        "{}",
        paused[0]
    );
    assert_eq!(ks.last().map(String::as_str), Some("run_paused"), "{ks:?}");
    // The pause came after the restart's outcome: the action in flight finished first.
    let at = |r: &serde_json::Value| r["seq"].as_u64().unwrap();
    assert!(at(paused[0]) > at(restart_outcome));

    // One resume completes the run: no second pause from a stale request.
    let answers = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
    let out = cutover(&[
        "resume",
        journal.to_str().unwrap(),
        "--headless",
        "--answers",
        answers.to_str().unwrap(),
    ]);
    let ks = kinds(&records(journal));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the resume completes: {}\nkinds: {ks:?}",
        text(&out)
    );
    assert_eq!(
        ks.iter().filter(|k| *k == "run_paused").count(),
        1,
        "{ks:?}"
    );
    assert_eq!(
        ks.iter().filter(|k| *k == "run_resumed").count(),
        1,
        "{ks:?}"
    );
    assert_eq!(
        ks.last().map(String::as_str),
        Some("run_completed"),
        "{ks:?}"
    );
    assert_eq!(restarts(node1), 1, "the resume did not restart node1 again");
    let out = cutover(&["journal", "verify", journal.to_str().unwrap()]);
    assert!(out.status.success(), "journal verify: {}", text(&out));
}

/// `cutover run` of the flagship in its own pty on the served world in `dir`: the first hard
/// stop confirmed, then the terminal hangs up while node1's restart is in flight; the exit
/// status once it has exited.
fn hang_up_the_ui_during_node1s_restart(
    dir: &Path,
    journal: &Path,
    info: &cutover::world::WorldInfo,
) -> std::process::ExitStatus {
    let inventory = dir.join("inventory.yaml");
    let mut ui = Pty::spawn(&[
        "run",
        "runbooks/fernet-to-jws.yaml",
        "-i",
        inventory.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let long = Duration::from_secs(60);
    ui.wait_until("the first hard stop", long, journal, |p| {
        let s = p.screen();
        s.contains("HARD STOP") && s.contains("jws-payload-readable")
    });
    ui.send("Y");
    ui.wait_until("node1's restart in flight", long, journal, |_| {
        restart_in_flight(journal, &info.nodes[0])
    });
    ui.hang_up();
    ui.wait_exit(Duration::from_secs(60), journal)
}

#[test]
fn a_hangup_during_a_local_restart_in_the_ui_pauses_and_one_resume_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _serve, info) = served_world(tmp.path(), SLOW);
    let journal = tmp.path().join("run.jsonl");
    // The restart takes SLOW seconds; the run waits for it, then pauses and exits.
    let status = hang_up_the_ui_during_node1s_restart(&dir, &journal, &info);
    check_paused_then_resume(status, &journal, &info);
}

#[test]
fn a_hangup_during_a_local_restart_headless_pauses_and_one_resume_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _serve, info) = served_world(tmp.path(), SLOW);
    let journal = tmp.path().join("run.jsonl");
    let inventory = dir.join("inventory.yaml");
    let answers = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
    let mut run = Pty::spawn(&[
        "run",
        "runbooks/fernet-to-jws.yaml",
        "-i",
        inventory.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--headless",
        "--answers",
        answers.to_str().unwrap(),
    ]);
    run.wait_until(
        "node1's restart in flight",
        Duration::from_secs(60),
        &journal,
        |_| restart_in_flight(&journal, &info.nodes[0]),
    );
    run.hang_up();
    let status = run.wait_exit(Duration::from_secs(60), &journal);
    check_paused_then_resume(status, &journal, &info);
}

/// `cutover run --headless … | cat`, as an operator pipes it through `tee`: the hangup kills
/// the reader of the pipe too (same job), and a write into the closed pipe must not kill
/// cutover mid-action (SIGPIPE). The job's shell dies with the hangup; a subshell that ignores
/// it records cutover's exit code.
#[test]
fn a_hangup_with_output_piped_to_a_reader_that_dies_still_pauses() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _serve, info) = served_world(tmp.path(), SLOW);
    let journal = tmp.path().join("run.jsonl");
    let inventory = dir.join("inventory.yaml");
    let answers = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
    let exit_file = tmp.path().join("exit");
    let mut job = Command::new("sh");
    job.arg("-c")
        .arg(r#"( trap '' HUP; "$@"; echo $? > "$EXIT_FILE" ) | cat"#)
        .arg("job")
        .arg(bin())
        .args([
            "run",
            "runbooks/fernet-to-jws.yaml",
            "-i",
            inventory.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
            "--headless",
            "--answers",
            answers.to_str().unwrap(),
        ])
        .env("EXIT_FILE", &exit_file);
    let mut run = Pty::spawn_command(job);
    run.wait_until(
        "node1's restart in flight",
        Duration::from_secs(60),
        &journal,
        |_| restart_in_flight(&journal, &info.nodes[0]),
    );
    run.hang_up();
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Ok(t) = std::fs::read_to_string(&exit_file)
            && t.ends_with('\n')
        {
            break t.trim().parse::<i32>().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "cutover did not exit within 60 s of the hangup; journal kinds: {:?}",
            kinds(&records(&journal))
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        code,
        3,
        "cutover's exit code (141: killed by SIGPIPE); journal kinds: {:?}",
        kinds(&records(&journal))
    );
    check_paused_then_resume(std::process::ExitStatus::from_raw(3 << 8), &journal, &info);
}

/// The restart in flight when the terminal hangs up fails on its own (Keystone refuses to
/// start): the run halts, exit 4, with the service's reason, not a signal. The pause request
/// the hangup left ends with that halt: once the cause is fixed, one resume completes the run
/// without pausing again (the stale request used to pause it once more).
#[test]
fn a_restart_that_fails_after_the_hangup_halts_and_the_resume_is_not_paused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _serve, info) = served_world(tmp.path(), SLOW);
    let d = dir.to_str().unwrap();
    let out = cutover(&["world", "fault", d, "break-restart", "node1"]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = tmp.path().join("run.jsonl");
    let status = hang_up_the_ui_during_node1s_restart(&dir, &journal, &info);
    let recs = records(&journal);
    let ks = kinds(&recs);
    let all = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(status.code(), Some(4), "halted; kinds: {ks:?}");
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "pause_requested" && r["data"]["cause"] == "terminal_hangup"),
        "{ks:?}"
    );
    let halt = recs
        .iter()
        .find(|r| r["kind"] == "run_halted")
        .unwrap_or_else(|| panic!("no halt: {ks:?}"));
    let reason = halt["data"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("InjectedFault") || reason.contains("refuses to start"),
        "the halt names the service's own reason: {reason}"
    );
    assert!(
        !all.contains("exited 137") && !all.contains("killed by"),
        "a child died of a signal:\n{all}"
    );
    assert!(!ks.iter().any(|k| k == "run_paused"), "{ks:?}");

    // Fixed, one resume completes: the hangup's request does not pause it.
    let out = cutover(&["world", "fault", d, "fix-restart", "node1"]);
    assert!(out.status.success(), "{}", text(&out));
    let answers = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/demo-answers.yaml");
    let out = cutover(&[
        "resume",
        journal.to_str().unwrap(),
        "--headless",
        "--answers",
        answers.to_str().unwrap(),
    ]);
    let ks = kinds(&records(&journal));
    assert_eq!(
        out.status.code(),
        Some(0),
        "one resume completes: {}\nkinds: {ks:?}",
        text(&out)
    );
    assert!(!ks.iter().any(|k| k == "run_paused"), "{ks:?}");
    assert_eq!(
        ks.iter().filter(|k| *k == "run_resumed").count(),
        1,
        "{ks:?}"
    );
    assert_eq!(
        ks.last().map(String::as_str),
        Some("run_completed"),
        "{ks:?}"
    );
}
