//! Secrets typed at the terminal stay hidden: the real `cutover` binary in a pseudo-terminal,
//! two inventory nodes (two Host aliases on one real sshd on 127.0.0.1) sharing one encrypted
//! ed25519 identity file, no ssh-agent. The file's passphrase is asked for once, never echoed,
//! before the UI starts; three wrong answers end the run with an error before anything is
//! written, and the UI never starts.
//!
//! Needs /usr/sbin/sshd and ssh-keygen: a missing one FAILS the test, it never skips.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;
use support::pty::{Tui, command};
use support::sshd::{SSHD, Sshd, keygen, whoami};

const PASSPHRASE: &str = "tiger-lily-42";
/// Switching to the alternate screen: the UI has started.
const ALT_SCREEN: &str = "\x1b[?1049h";

/// One sshd on 127.0.0.1 accepting `authorized` (as tests/ssh.rs starts it).
fn start_sshd(authorized: &Path) -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "THIS TEST CANNOT RUN: no {SSHD}. Install openssh-server and openssh-client"
    );
    Sshd::start(&[authorized], "")
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
        let sshd = start_sshd(&d.join("id_enc"));
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
        let mut cmd = command(&["run", "runbooks/fernet-rotate.yaml", "-i"]);
        cmd.arg(self.path("inventory.yaml"))
            .arg("--journal")
            .arg(self.journal())
            .env("HOME", self.dir.path())
            .env_remove("SSH_AUTH_SOCK");
        Pty(Tui::spawn(cmd, 100, 30))
    }
}

/// The binary in a pty; these tests read every byte it wrote there (`text`).
struct Pty(Tui);

impl std::ops::Deref for Pty {
    type Target = Tui;
    fn deref(&self) -> &Tui {
        &self.0
    }
}

impl std::ops::DerefMut for Pty {
    fn deref_mut(&mut self) -> &mut Tui {
        &mut self.0
    }
}

impl Pty {
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
