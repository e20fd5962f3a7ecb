//! A real OpenSSH sshd on 127.0.0.1 for a test: its own host key, config, authorized_keys and
//! port, killed when dropped; and the ssh-keygen helpers around it.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Fails the test, saying what to install, unless sshd and every one of `tools` is there
/// (`label` names the tests that cannot run). Such tests never skip.
pub fn require_tools(label: &str, tools: &[&str]) {
    let mut missing = Vec::new();
    if !Path::new(SSHD).exists() {
        missing.push(SSHD.to_string());
    }
    for tool in tools {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            missing.push(tool.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "{label} CANNOT RUN: missing {missing:?}. Install them with \
         `apt-get install -y openssh-server openssh-client` (as root, with a /usr/sbin/policy-rc.d \
         that exits 101 so no system sshd starts), or run tests/lab/install.sh"
    );
}

/// Runs `cmd`, which must succeed; its stdout.
pub fn run(cmd: &mut Command) -> String {
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

/// A new ed25519 key pair at `path` (and `path.pub`), encrypted with `passphrase` unless empty.
pub fn keygen(path: &Path, passphrase: &str) {
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

/// `SHA256:...` as `ssh-keygen -lf` prints it.
pub fn keygen_fingerprint(pubkey: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(pubkey));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// The user the tests run as.
pub fn whoami() -> String {
    run(Command::new("id").arg("-un")).trim().to_string()
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One sshd on 127.0.0.1 with its own host key, killed on drop (or by [`Sshd::stop`]).
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Sshd {
    /// Starts sshd accepting the public keys of the `authorized` identity files, with
    /// `extra` appended to its config; returns once it answers with an SSH banner. A port
    /// taken meanwhile is retried (5 attempts); any other early exit fails with sshd's log.
    pub fn start(authorized: &[&Path], extra: &str) -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd must exist for sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "");
        let mut keys = String::new();
        for k in authorized {
            keys.push_str(&std::fs::read_to_string(k.with_extension("pub")).unwrap());
        }
        std::fs::write(d.join("authorized_keys"), keys).unwrap();
        for attempt in 0..5 {
            let port = free_port();
            let conf = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nLogLevel VERBOSE\n{extra}\n",
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
                        return Sshd {
                            dir,
                            port,
                            child: Some(child),
                        };
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start");
    }

    /// The host's public key file.
    pub fn host_pub(&self) -> PathBuf {
        self.dir.path().join("host_ed25519.pub")
    }

    /// The host's public key as a `known_hosts`-style line (`ssh-ed25519 AAAA... comment`).
    pub fn host_key_line(&self) -> String {
        std::fs::read_to_string(self.host_pub()).unwrap()
    }

    /// The host key's `SHA256:...` fingerprint.
    pub fn fingerprint(&self) -> String {
        keygen_fingerprint(&self.host_pub())
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Stops sshd (and waits until nothing listens on its port any more).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "sshd still listens after kill");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
