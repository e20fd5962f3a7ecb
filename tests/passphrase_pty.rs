//! Secrets typed at the terminal stay hidden: the real `cutover` binary in a pseudo-terminal,
//! two inventory nodes (two Host aliases on one real sshd on 127.0.0.1) sharing one encrypted
//! ed25519 identity file, no ssh-agent. The file's passphrase is asked for once, never echoed,
//! before the UI starts; three wrong answers end the run with an error before anything is
//! written, and the UI never starts.
//!
//! Needs /usr/sbin/sshd and ssh-keygen: a missing one FAILS the test, it never skips.

use expectrl::session::OsSession;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const PASSPHRASE: &str = "tiger-lily-42";
/// Switching to the alternate screen: the UI has started.
const ALT_SCREEN: &str = "\x1b[?1049h";

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keygen(path: &Path, passphrase: &str) {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "cutover-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path));
}

fn whoami() -> String {
    run(Command::new("id").arg("-un")).trim().to_string()
}

/// One sshd on 127.0.0.1 accepting `authorized`, killed on drop (as tests/ssh.rs starts it).
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    fn start(authorized: &Path) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "THIS TEST CANNOT RUN: no {SSHD}. Install openssh-server and openssh-client"
        );
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd must exist for sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "");
        std::fs::copy(authorized.with_extension("pub"), d.join("authorized_keys")).unwrap();
        for attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nLogLevel VERBOSE\n",
                d = d.display()
            );
            std::fs::write(d.join("sshd_config"), conf).unwrap();
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("cannot start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
                    if attempt < 4 && log.contains("Address already in use") {
                        break;
                    }
                    panic!("sshd exited ({status}):\n{log}");
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let mut banner = [0u8; 7];
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0" {
                        return Sshd { dir, port, child };
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start");
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An sshd, an encrypted key it accepts, an ssh_config naming it twice (`node1`, `node2`, both
/// with that one identity file), and an inventory of those two nodes.
struct Fleet {
    dir: tempfile::TempDir,
    _sshd: Sshd,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("id_enc"), PASSPHRASE);
        let sshd = Sshd::start(&d.join("id_enc"));
        let known_hosts = d.join("known_hosts");
        let host_key = std::fs::read_to_string(sshd.dir.path().join("host_ed25519.pub")).unwrap();
        cutover::transport::ssh::accept_host_key(&known_hosts, "127.0.0.1", sshd.port, &host_key)
            .unwrap();
        let mut config = String::new();
        let mut nodes = String::new();
        for n in ["node1", "node2"] {
            config.push_str(&format!(
                "Host {n}\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  \
                 UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
                sshd.port,
                whoami(),
                d.join("id_enc").display(),
                known_hosts.display()
            ));
            // Each node's files under its own root, so its fleet lock is writable here.
            let conf = d.join(n).join("etc/keystone/keystone.conf");
            std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
            std::fs::write(&conf, "[token]\nprovider = fernet\n").unwrap();
            nodes.push_str(&format!(
                "  - {{name: {n}, reach: {{ssh: {n}}}, keystone_url: 'http://127.0.0.1:9', \
                 keystone_conf: '{}'}}\n",
                conf.display()
            ));
        }
        std::fs::write(d.join("ssh_config"), config).unwrap();
        std::fs::write(
            d.join("inventory.yaml"),
            format!(
                "cluster: pp\nssh: {{config: '{}', known_hosts: '{}'}}\nnodes:\n{nodes}",
                d.join("ssh_config").display(),
                known_hosts.display()
            ),
        )
        .unwrap();
        Fleet { dir, _sshd: sshd }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn key(&self) -> PathBuf {
        self.path("id_enc")
    }

    fn journal(&self) -> PathBuf {
        self.path("journal.jsonl")
    }

    /// `cutover run` in the terminal UI (not headless), in a pty, without an ssh-agent.
    fn run(&self) -> Pty {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("run")
            .arg("runbooks/fernet-rotate.yaml")
            .arg("-i")
            .arg(self.path("inventory.yaml"))
            .arg("--journal")
            .arg(self.journal())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TERM", "xterm-256color")
            .env("HOME", self.dir.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("NO_COLOR");
        let mut p = expectrl::Session::spawn(cmd).expect("spawn cutover in a pty");
        p.get_process_mut()
            .set_window_size(100, 30)
            .expect("set the pty's size");
        Pty {
            p,
            out: Vec::new(),
            eof: false,
        }
    }
}

/// The binary in a pty and every byte it wrote there.
struct Pty {
    p: OsSession,
    out: Vec<u8>,
    eof: bool,
}

impl Pty {
    fn pump(&mut self) {
        let mut buf = [0u8; 65536];
        while !self.eof {
            match self.p.try_read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => self.eof = true,
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    fn prompts(&self) -> usize {
        self.text().matches("Passphrase for").count()
    }

    /// Poll the output until `pred` holds; panic with the output after `timeout`.
    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            let t = self.text();
            if pred(&t) {
                return;
            }
            if Instant::now() > deadline || self.eof {
                panic!("waiting for {what}: nothing after {timeout:?}; output so far:\n{t:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, keys: &str) {
        use std::io::Write;
        self.p.write_all(keys.as_bytes()).expect("write to the pty");
        self.p.flush().expect("flush the pty");
    }

    fn wait_exit(&mut self, timeout: Duration) -> i32 {
        use expectrl::process::unix::WaitStatus;
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            match self.p.get_process().status() {
                Ok(WaitStatus::Exited(_, code)) => return code,
                Ok(WaitStatus::Signaled(_, sig, _)) => panic!("killed by {sig:?}"),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "cutover did not exit within {timeout:?}; output:\n{:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if matches!(self.p.get_process().is_alive(), Ok(true)) {
            let _ = self
                .p
                .get_process_mut()
                .kill(expectrl::process::unix::Signal::SIGKILL);
        }
    }
}

#[test]
fn one_prompt_per_key_file_never_echoed_before_the_ui() {
    let fleet = Fleet::new();
    let mut pty = fleet.run();
    pty.wait_for("the passphrase prompt", Duration::from_secs(60), |t| {
        t.contains("Passphrase for")
    });
    assert!(
        pty.text().contains(&fleet.key().display().to_string()),
        "the prompt names the key file: {:?}",
        pty.text()
    );
    pty.send(&format!("{PASSPHRASE}\r"));
    // The run goes on to its UI: both nodes were reached with the one answer.
    // (A second prompt for the same file fails at once instead of waiting for an answer.)
    pty.wait_for("the UI", Duration::from_secs(60), |t| {
        t.contains(ALT_SCREEN) || t.matches("Passphrase for").count() > 1
    });
    std::thread::sleep(Duration::from_millis(500));
    pty.pump();
    let text = pty.text();
    assert_eq!(
        pty.prompts(),
        1,
        "one prompt for the one key file: {text:?}"
    );
    assert!(
        !text.contains(PASSPHRASE),
        "the passphrase was echoed: {text:?}"
    );
    let before_ui = &text[..text.find(ALT_SCREEN).unwrap()];
    assert!(
        !before_ui.contains("wrong passphrase") && !before_ui.contains("encrypted"),
        "{before_ui:?}"
    );
    // The fleet lock was taken on both nodes over SSH, with that one decrypted key.
    for n in ["node1", "node2"] {
        let lock = fleet.path(n).join("var/lib/cutover/fleet.lock");
        assert!(lock.exists(), "no fleet lock on {n}: {text:?}");
    }
}

#[test]
fn three_wrong_passphrases_stop_before_anything_is_written() {
    let fleet = Fleet::new();
    let mut pty = fleet.run();
    for i in 1..=3 {
        pty.wait_for(&format!("prompt {i}"), Duration::from_secs(60), |t| {
            t.matches("Passphrase for").count() >= i
        });
        pty.send(&format!("wrong-answer-{i}\r"));
    }
    let code = pty.wait_exit(Duration::from_secs(60));
    let text = pty.text();
    assert_ne!(code, 0, "{text:?}");
    assert_eq!(pty.prompts(), 3, "{text:?}");
    let key = fleet.key().display().to_string();
    let want = format!(
        "wrong passphrase for {key} three times; load it into ssh-agent (ssh-add {key}) or check it"
    );
    assert!(text.contains(&want), "no clear error: {text:?}");
    assert!(!text.contains(ALT_SCREEN), "the UI started: {text:?}");
    assert!(
        !text.contains("wrong-answer"),
        "an answer was echoed: {text:?}"
    );
    assert!(!fleet.journal().exists(), "a journal was written");
    for n in ["node1", "node2"] {
        assert!(!fleet.path(n).join("var/lib/cutover/fleet.lock").exists());
    }
}
