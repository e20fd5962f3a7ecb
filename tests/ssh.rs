//! The SSH transport against a real OpenSSH sshd started by each test on 127.0.0.1 (its own
//! host key, config, authorized_keys and port). Needs /usr/sbin/sshd, ssh-keygen, ssh-agent and
//! ssh-add: a missing one FAILS the test with what to install, it never skips.

use cutover::inventory::{SshDefaults, SshExplicit, SshTarget};
use cutover::transport::ssh::{self, PassphrasePrompt, SshTransport};
use cutover::transport::{ExecOpts, TransportError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;
use support::sshd::{Sshd, keygen, keygen_fingerprint, run, whoami};

fn require_tools() {
    support::sshd::require_tools("SSH TESTS", &["ssh-keygen", "ssh-agent", "ssh-add"]);
}

/// One sshd on 127.0.0.1 accepting `authorized`, with SFTP and `extra` in its config.
fn start_sshd(authorized: &[&Path], extra: &str) -> Sshd {
    require_tools();
    Sshd::start(
        authorized,
        &format!("Subsystem sftp internal-sftp\n{extra}"),
    )
}

/// A client side: a key, a known_hosts file and an ssh_config, in their own directory.
struct ClientSide {
    dir: tempfile::TempDir,
}

impl ClientSide {
    fn new() -> ClientSide {
        require_tools();
        let c = ClientSide {
            dir: tempfile::tempdir().unwrap(),
        };
        keygen(&c.key(), "");
        std::fs::write(c.known_hosts(), "").unwrap();
        c
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }
    fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }
    fn trust(&self, sshd: &Sshd) {
        ssh::accept_host_key(
            &self.known_hosts(),
            "127.0.0.1",
            sshd.port,
            &sshd.host_key_line(),
        )
        .unwrap();
    }
    /// An ssh_config with one `Host alias` block per (alias, sshd, extra lines).
    fn write_config(&self, hosts: &[(&str, &Sshd, &str)]) {
        let mut text = String::new();
        for (alias, sshd, extra) in hosts {
            text.push_str(&format!(
                "Host {alias}\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n{extra}\n",
                sshd.port,
                whoami(),
                self.key().display(),
                self.known_hosts().display()
            ));
        }
        std::fs::write(self.config(), text).unwrap();
    }
    fn defaults(&self) -> SshDefaults {
        SshDefaults {
            config: Some(self.config()),
            known_hosts: Some(self.known_hosts()),
            connect_timeout_secs: Some(10),
            concurrency: None,
        }
    }
    async fn connect(&self, alias: &str) -> Result<SshTransport, TransportError> {
        SshTransport::connect(
            &SshTarget::Alias(alias.into()),
            Some(&self.defaults()),
            None,
        )
        .await
    }
}

fn opts(timeout: u64) -> ExecOpts {
    ExecOpts {
        stdin: None,
        timeout: Duration::from_secs(timeout),
        sudo: false,
    }
}

/// A node reached through an alias with a trusted host key.
async fn ready() -> (Sshd, ClientSide, SshTransport) {
    let client = ClientSide::new();
    let sshd = start_sshd(&[&client.key()], "");
    client.write_config(&[("node", &sshd, "")]);
    client.trust(&sshd);
    let t = client
        .connect("node")
        .await
        .unwrap_or_else(|e| panic!("connect failed: {e}\nsshd log:\n{}", sshd.log()));
    (sshd, client, t)
}

#[tokio::test]
async fn exec_echo_status_and_stdout() {
    let (_sshd, _client, t) = ready().await;
    let out = t.exec("echo hi", opts(10)).await.unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout, b"hi\n");
    assert!(out.stderr.is_empty());
    assert_eq!(t.label(), "node");
    // The connection is kept: a second command rides the same session.
    let again = t.exec("echo $SSH_CONNECTION", opts(10)).await.unwrap();
    let first = t.exec("echo $SSH_CONNECTION", opts(10)).await.unwrap();
    assert_eq!(again.stdout, first.stdout, "one connection per host");
    t.close().await;
}

#[tokio::test]
async fn stdin_streams_a_mebibyte() {
    let (_sshd, _client, t) = ready().await;
    let payload: Vec<u8> = (0..(1usize << 20)).map(|i| (i * 31 % 251) as u8).collect();
    let want = format!("{:x}", Sha256::digest(&payload));
    let out = t
        .exec(
            "sha256sum",
            ExecOpts {
                stdin: Some(payload.clone()),
                timeout: Duration::from_secs(30),
                sudo: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.status, 0, "{}", out.stderr_str());
    assert_eq!(out.stdout_str().split_whitespace().next().unwrap(), want);
    // And echoed back in full (reading and writing at once, no flow-control dead-lock).
    let out = t
        .exec(
            "cat",
            ExecOpts {
                stdin: Some(payload.clone()),
                timeout: Duration::from_secs(30),
                sudo: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), payload.len());
    assert!(out.stdout == payload);
}

#[tokio::test]
async fn nonzero_exit_and_stderr() {
    let (_sshd, _client, t) = ready().await;
    let out = t
        .exec("echo out; echo 'it broke' >&2; exit 3", opts(10))
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"it broke\n");
    assert_eq!(out.last_line(), "it broke");
    // A command without stdin sees EOF at once instead of hanging.
    let out = t.exec("cat; echo done", opts(10)).await.unwrap();
    assert_eq!(out.stdout, b"done\n");
}

#[tokio::test]
async fn command_timeout() {
    let (_sshd, client, t) = ready().await;
    let pidfile = client.dir.path().join("sleeper.pid");
    let start = Instant::now();
    let err = t
        .exec(
            &format!("echo $$ > {}; exec sleep 30", pidfile.display()),
            ExecOpts {
                timeout: Duration::from_secs(1),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Timeout { secs: 1, .. }),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    // The remote command is sent SIGKILL and its channel closed. OpenSSH honours the signal only
    // for sessions with a privilege-separated child, i.e. not for root logins (this test logs in
    // as root, so the sleeper this test started is ended here by its pid).
    // The connection is still usable.
    assert_eq!(t.exec("echo ok", opts(10)).await.unwrap().stdout, b"ok\n");
    if let Ok(pid) = std::fs::read_to_string(&pidfile) {
        let _ = Command::new("kill")
            .arg(pid.trim())
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn sudo_wraps_the_command_line() {
    // Running as root, sudo proves nothing; a stand-in `sudo` on the remote PATH shows exactly
    // what arrives: `sudo -n sh -c '<cmd>'`, one argument per line.
    let client = ClientSide::new();
    let bin = client.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("sudo"),
        "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(bin.join("sudo"))
        .status()
        .unwrap();
    let sshd = start_sshd(
        &[&client.key()],
        &format!("SetEnv PATH={}:/usr/bin:/bin", bin.display()),
    );
    client.write_config(&[("node", &sshd, "")]);
    client.trust(&sshd);
    let t = client.connect("node").await.unwrap();
    let cmd = "cat '/etc/keystone/it''s.conf' | head -1";
    assert_eq!(
        ssh::sudo_command(cmd),
        "sudo -n sh -c 'cat '\\''/etc/keystone/it'\\'''\\''s.conf'\\'' | head -1'"
    );
    let out = t
        .exec(
            cmd,
            ExecOpts {
                sudo: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        out.stdout_str(),
        format!("[-n]\n[sh]\n[-c]\n[{cmd}]\n"),
        "{}",
        out.stderr_str()
    );
}

#[tokio::test]
async fn alias_resolves_through_the_config() {
    let (sshd, client, t) = ready().await;
    let hop = t.hops().last().unwrap().clone();
    assert_eq!(hop.host, "127.0.0.1");
    assert_eq!(hop.port, sshd.port);
    assert_eq!(hop.user, whoami());
    assert_eq!(hop.identity_files, vec![client.key()]);
    let out = t.exec("id -un", opts(10)).await.unwrap();
    assert_eq!(out.stdout_str().trim(), whoami());
    // Explicit fields override the config: a wrong port in the config, the right one given.
    let text = std::fs::read_to_string(client.config()).unwrap();
    std::fs::write(
        client.config(),
        text.replace(&format!("Port {}", sshd.port), "Port 1"),
    )
    .unwrap();
    let explicit = SshTarget::Explicit(SshExplicit {
        host: "node".into(),
        port: Some(sshd.port),
        user: None,
        identity_file: None,
        proxy_jump: None,
    });
    let t2 = SshTransport::connect(&explicit, Some(&client.defaults()), None)
        .await
        .unwrap();
    assert_eq!(t2.label(), format!("node:{}", sshd.port));
    assert_eq!(t2.exec("echo x", opts(10)).await.unwrap().stdout, b"x\n");
}

#[tokio::test]
async fn unknown_host_then_accepted() {
    let client = ClientSide::new();
    let sshd = start_sshd(&[&client.key()], "");
    client.write_config(&[("node", &sshd, "")]);
    let err = client.connect("node").await.unwrap_err();
    let TransportError::HostKeyUnknown {
        host,
        port,
        fingerprint,
        key_openssh,
    } = err
    else {
        panic!("expected HostKeyUnknown, got {err:?}");
    };
    assert_eq!(host, "127.0.0.1");
    assert_eq!(port, sshd.port);
    assert_eq!(fingerprint, keygen_fingerprint(&sshd.host_pub()));
    assert!(key_openssh.starts_with("ssh-ed25519 "));
    // Accept into a new file (created 0600) and connect.
    let fresh = client.dir.path().join("sub/known_hosts_new");
    ssh::accept_host_key(&fresh, &host, port, &key_openssh).unwrap();
    let text = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        text.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut d = client.defaults();
    d.known_hosts = Some(fresh.clone());
    let t = SshTransport::connect(&SshTarget::Alias("node".into()), Some(&d), None)
        .await
        .unwrap();
    assert_eq!(t.exec("echo ok", opts(10)).await.unwrap().stdout, b"ok\n");
    // ssh itself agrees with the entry written.
    let out = Command::new("ssh")
        .args(["-F"])
        .arg(client.config())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", fresh.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "node",
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh refused the accepted entry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn changed_host_key_is_refused() {
    let client = ClientSide::new();
    let sshd = start_sshd(&[&client.key()], "");
    client.write_config(&[("node", &sshd, "")]);
    let other = client.dir.path().join("other_host");
    keygen(&other, "");
    let other_line = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    ssh::accept_host_key(&client.known_hosts(), "127.0.0.1", sshd.port, &other_line).unwrap();
    let err = client.connect("node").await.unwrap_err();
    match &err {
        TransportError::HostKeyChanged {
            fingerprint,
            known_hosts,
            ..
        } => {
            assert_eq!(fingerprint, &keygen_fingerprint(&sshd.host_pub()));
            assert_eq!(known_hosts, &client.known_hosts().display().to_string());
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert!(err.to_string().contains("CHANGED"));
}

#[tokio::test]
async fn hashed_known_hosts_entries() {
    let client = ClientSide::new();
    let sshd = start_sshd(&[&client.key()], "");
    client.write_config(&[("node", &sshd, "")]);
    client.trust(&sshd);
    run(Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(client.known_hosts()));
    let text = std::fs::read_to_string(client.known_hosts()).unwrap();
    assert!(text.starts_with("|1|"), "not hashed: {text}");
    assert!(!text.contains("127.0.0.1"));
    let t = client.connect("node").await.unwrap();
    assert_eq!(t.exec("echo ok", opts(10)).await.unwrap().stdout, b"ok\n");
    // A hashed entry with another key is a change, not an unknown host.
    let other = client.dir.path().join("other_host");
    keygen(&other, "");
    let other_line = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(client.known_hosts(), "").unwrap();
    ssh::accept_host_key(&client.known_hosts(), "127.0.0.1", sshd.port, &other_line).unwrap();
    run(Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(client.known_hosts()));
    let err = client.connect("node").await.unwrap_err();
    assert!(
        matches!(err, TransportError::HostKeyChanged { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn proxy_jump_through_a_second_sshd() {
    let client = ClientSide::new();
    let target = start_sshd(&[&client.key()], "");
    let jump = start_sshd(&[&client.key()], "AllowTcpForwarding yes");
    let closed_jump = start_sshd(&[&client.key()], "AllowTcpForwarding no");
    client.write_config(&[
        ("node", &target, "  ProxyJump jump"),
        ("node-via-closed", &target, "  ProxyJump closedjump"),
        ("jump", &jump, ""),
        ("closedjump", &closed_jump, ""),
    ]);
    client.trust(&target);
    client.trust(&jump);
    client.trust(&closed_jump);
    let t = client
        .connect("node")
        .await
        .unwrap_or_else(|e| panic!("{e}\njump log:\n{}", jump.log()));
    assert_eq!(t.hops().len(), 2);
    assert_eq!(t.hops()[0].port, jump.port);
    let out = t.exec("echo through", opts(10)).await.unwrap();
    assert_eq!(out.stdout, b"through\n");
    // The jump host really carried it: one that forbids forwarding makes the same target fail.
    let err = client.connect("node-via-closed").await.unwrap_err();
    assert!(
        matches!(&err, TransportError::Connect { msg, .. } if msg.contains("tunnel")),
        "{err:?}"
    );
    // And the jump host's key is checked like any other.
    std::fs::write(client.known_hosts(), "").unwrap();
    client.trust(&target);
    let err = client.connect("node").await.unwrap_err();
    assert!(
        matches!(&err, TransportError::HostKeyUnknown { port, .. } if *port == jump.port),
        "{err:?}"
    );
}

#[tokio::test]
async fn encrypted_identity_asks_the_prompt() {
    let client = ClientSide::new();
    let enc = client.dir.path().join("id_enc");
    keygen(&enc, "correct horse");
    let sshd = start_sshd(&[&enc], "");
    client.write_config(&[("node", &sshd, &format!("  IdentityFile {}", enc.display()))]);
    client.trust(&sshd);
    let asked = Arc::new(Mutex::new(Vec::<PathBuf>::new()));
    let a = asked.clone();
    let prompt = PassphrasePrompt::new(move |p: &Path| {
        a.lock().unwrap().push(p.to_path_buf());
        Some("correct horse".to_string().into())
    });
    let t = SshTransport::connect(
        &SshTarget::Alias("node".into()),
        Some(&client.defaults()),
        Some(prompt),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.exec("echo ok", opts(10)).await.unwrap().stdout, b"ok\n");
    assert!(asked.lock().unwrap().contains(&enc), "{:?}", asked);

    // A wrong passphrase: Auth error listing what was tried, never the passphrase.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let wrong = PassphrasePrompt::new(move |_p: &Path| {
        c.fetch_add(1, Ordering::SeqCst);
        Some("wrong battery".to_string().into())
    });
    let err = SshTransport::connect(
        &SshTarget::Alias("node".into()),
        Some(&client.defaults()),
        Some(wrong),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    assert!(msg.contains(&enc.display().to_string()), "{msg}");
    assert!(msg.contains("wrong passphrase"), "{msg}");
    assert!(!msg.contains("wrong battery"), "{msg}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // No prompt at all.
    let err = client.connect("node").await.unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
}

/// Two hosts with one encrypted identity file and one prompt: asked once (the decrypted key is
/// kept by file, not by host), even when both connect at once; once the prompt is closed (the UI
/// has the terminal), a new prompt's key fails with advice to use ssh-agent, never asking.
#[tokio::test]
async fn one_passphrase_per_key_file_shared_by_hosts() {
    let client = ClientSide::new();
    let enc = client.dir.path().join("id_enc");
    keygen(&enc, "correct horse");
    let sshd = start_sshd(&[&enc], "");
    let extra = format!("  IdentityFile {}", enc.display());
    client.write_config(&[("node1", &sshd, &extra), ("node2", &sshd, &extra)]);
    client.trust(&sshd);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let prompt = PassphrasePrompt::new(move |_p: &Path| {
        c.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        Some("correct horse".to_string().into())
    });
    let defaults = client.defaults();
    let connect = |alias: &'static str| {
        let prompt = prompt.clone();
        let defaults = defaults.clone();
        async move {
            SshTransport::connect(
                &SshTarget::Alias(alias.into()),
                Some(&defaults),
                Some(prompt),
            )
            .await
        }
    };
    let (a, b) = tokio::join!(connect("node1"), connect("node2"));
    a.unwrap_or_else(|e| panic!("{e}"));
    b.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(prompt.failures().is_empty());

    let never = PassphrasePrompt::new(|_p: &Path| panic!("asked after the prompt was closed"));
    never.close();
    let err = SshTransport::connect(
        &SshTarget::Alias("node1".into()),
        Some(&client.defaults()),
        Some(never),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ssh-add"), "{err}");
}

/// The agent case runs in a child process of this test binary, so SSH_AUTH_SOCK is set for that
/// process only (setting it here would race with the tests running in parallel).
#[tokio::test]
async fn agent_identities_are_tried_first() {
    let client = ClientSide::new();
    let agent_key = client.dir.path().join("id_agent");
    keygen(&agent_key, "");
    let sshd = start_sshd(&[&agent_key], "");
    let sock = client.dir.path().join("agent.sock");
    // The config names no usable identity file, and points at this test's agent
    // (IdentityAgent, as an operator would for a non-default agent): only it can authenticate.
    client.write_config(&[(
        "node",
        &sshd,
        &format!(
            "  IdentityFile {}\n  IdentityAgent {}",
            client.dir.path().join("nonexistent").display(),
            sock.display()
        ),
    )]);
    client.trust(&sshd);
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start ssh-agent (apt-get install openssh-client)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    run(Command::new("ssh-add")
        .arg(&agent_key)
        .env("SSH_AUTH_SOCK", &sock));
    let result = client.connect("node").await;
    let _ = agent.kill();
    let _ = agent.wait();
    let t = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.exec("echo agent", opts(10)).await.unwrap().stdout,
        b"agent\n"
    );
}

#[tokio::test]
async fn auth_failure_lists_what_was_tried() {
    let client = ClientSide::new();
    let stranger = client.dir.path().join("id_other");
    keygen(&stranger, "");
    let sshd = start_sshd(&[&stranger], "");
    client.write_config(&[("node", &sshd, "")]);
    client.trust(&sshd);
    let err = client.connect("node").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    assert!(msg.contains(&client.key().display().to_string()), "{msg}");
    assert!(msg.contains("refused"), "{msg}");
}

#[tokio::test]
async fn reconnects_once_after_the_connection_drops() {
    let (_sshd, _client, t) = ready().await;
    let before = t.exec("echo $SSH_CONNECTION", opts(10)).await.unwrap();
    // Kill this connection's sshd session process from inside: the command itself fails
    // (it is never re-sent), the next one reconnects transparently.
    let _ = t.exec("kill -9 $PPID", opts(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = t
        .exec("echo $SSH_CONNECTION", opts(10))
        .await
        .expect("exec after a dropped connection reconnects");
    assert_eq!(after.status, 0);
    assert_ne!(
        before.stdout, after.stdout,
        "a new connection (new client port)"
    );
}

#[tokio::test]
async fn connect_timeout_is_honoured() {
    // A listener that accepts and never speaks: the key exchange cannot finish.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let client = ClientSide::new();
    std::fs::write(
        client.config(),
        format!("Host mute\n  HostName 127.0.0.1\n  Port {port}\n"),
    )
    .unwrap();
    let mut d = client.defaults();
    d.connect_timeout_secs = Some(1);
    let start = Instant::now();
    let err = SshTransport::connect(&SshTarget::Alias("mute".into()), Some(&d), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Timeout { what, .. } if what == "connect"),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(4));
    drop(l);
}

/// A stand-in admin socket in `dir`: answers each connection's one line with what it was sent
/// and which program connected (the peer's /proc/PID/comm), then closes, as HAProxy's runtime
/// API does in non-interactive mode.
fn admin_socket(dir: &Path) -> PathBuf {
    let path = dir.join("admin.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let peer = stream
                    .peer_cred()
                    .ok()
                    .and_then(|c| c.pid())
                    .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
                    .unwrap_or_default();
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                BufReader::new(rd).read_line(&mut line).await.unwrap();
                let answer = format!("got {} from {}\n", line.trim_end(), peer.trim());
                wr.write_all(answer.as_bytes()).await.unwrap();
            });
        }
    });
    path
}

#[tokio::test]
async fn admin_socket_requests_ride_the_connection_else_socat() {
    support::sshd::require_tools("SSH TESTS", &["socat"]);
    let dir = tempfile::tempdir().unwrap();
    let socket = admin_socket(dir.path());
    let timeout = Duration::from_secs(10);

    // Forwarding allowed (OpenSSH's default): a direct-streamlocal channel, sshd connects.
    let (sshd, _client, t) = ready().await;
    let transport = cutover::transport::Transport::Ssh(t.clone());
    for _ in 0..3 {
        let answer = transport
            .socket_request(&socket, "show stat", false, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
        assert!(answer.starts_with("got show stat from sshd"), "{answer}");
    }
    t.close().await;

    // Forwarding disabled: refused administratively, then socat on the host (and not asked
    // again on that connection).
    let client = ClientSide::new();
    let sshd = start_sshd(&[&client.key()], "AllowStreamLocalForwarding no");
    client.write_config(&[("node", &sshd, "")]);
    client.trust(&sshd);
    let t = client.connect("node").await.unwrap();
    let transport = cutover::transport::Transport::Ssh(t.clone());
    for _ in 0..2 {
        let answer = transport
            .socket_request(&socket, "show stat", false, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
        assert_eq!(answer, "got show stat from socat\n");
    }
    let refusals = sshd.log().matches("refused streamlocal").count()
        + sshd.log().matches("streamlocal forwarding").count();
    assert!(
        refusals <= 1,
        "asked again after a refusal:\n{}",
        sshd.log()
    );

    // A socket that is not there: the error names it, whichever way was tried.
    let err = transport
        .socket_request(&dir.path().join("gone.sock"), "show stat", false, timeout)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone.sock"), "{err}");
    t.close().await;
}

/// Reads run in kept `sh`s on the connection (one session for many reads: the login shell and
/// its rc files once), and answer exactly as a command on its own channel does: stdout,
/// stderr, exit status, quoting, several lines, a syntax error, sudo's wrapping. A read that
/// times out closes its kept shell and the next read starts another; reads at the same time
/// get a kept shell each (started once, then kept), up to four on a connection, and past
/// those run on channels of their own.
#[tokio::test]
async fn reads_ride_kept_shells_and_answer_as_exec_does() {
    let (sshd, _client, t) = ready().await;
    let sessions = || sshd.log().matches("Starting session: command").count();
    let before = sessions();
    let cases = [
        "echo hi",
        "printf 'no newline'",
        "echo out; echo err >&2; exit 3",
        "x='it'\\''s'; echo \"$x\"; cat /etc/hostname >/dev/null",
        "for i in 1 2 3; do\n  echo line $i\ndone",
        "echo $((1 +",
        "cd /; pwd; unset HOME; exit 0",
        "cat",
    ];
    for cmd in cases {
        let want = t.exec(cmd, opts(10)).await.unwrap();
        let got = t.read(cmd, opts(10)).await.unwrap();
        assert_eq!(
            (got.status, &got.stdout),
            (want.status, &want.stdout),
            "{cmd}"
        );
        // (A syntax error is worded by the shell that read it: the login shell for a channel
        // of its own, sh for the kept one.)
        if cmd.contains("((") {
            assert!(!got.stderr.is_empty());
        } else {
            assert_eq!(got.stderr, want.stderr, "{cmd}");
        }
    }
    // The earlier cd and unset stayed in their subshell.
    let home = t.read("echo $HOME; pwd", opts(10)).await.unwrap();
    let want = t.exec("echo $HOME; pwd", opts(10)).await.unwrap();
    assert_eq!(home.stdout, want.stdout);
    // One session for every read (and one per exec).
    assert_eq!(sessions() - before, cases.len() + 1 + 1, "{}", sshd.log());

    // A read that outlives its deadline: a timeout, and the next read works.
    let started = Instant::now();
    let err = t.read("sleep 5", opts(1)).await.unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        t.read("echo again", opts(10)).await.unwrap().stdout,
        b"again\n"
    );

    // Reads at once: each in a kept shell of its own, started once and kept. The timed-out
    // read above closed its shell, and "echo again" started one: two at once start one more,
    // and two at once again start none.
    let at_once = |tag: &'static str| {
        let t = &t;
        async move {
            let (ca, cb) = (
                format!("sleep 0.3; echo {tag}a"),
                format!("sleep 0.3; echo {tag}b"),
            );
            let (a, b) = tokio::join!(t.read(&ca, opts(10)), t.read(&cb, opts(10)));
            assert_eq!(
                (a.unwrap().stdout, b.unwrap().stdout),
                (
                    format!("{tag}a\n").into_bytes(),
                    format!("{tag}b\n").into_bytes()
                )
            );
        }
    };
    let before = sessions();
    at_once("1").await;
    assert_eq!(sessions() - before, 1, "{}", sshd.log());
    at_once("2").await;
    assert_eq!(sessions() - before, 1, "{}", sshd.log());
    // Past the kept shells a connection may hold (4), a read runs on a channel of its own: six
    // at once start two kept shells and two sessions of their own, all answered.
    let before = sessions();
    let six = futures::future::join_all((0..6).map(|i| {
        let t = &t;
        async move {
            let cmd = format!("sleep 0.3; echo {i}");
            t.read(&cmd, opts(10)).await
        }
    }))
    .await;
    for (i, r) in six.into_iter().enumerate() {
        assert_eq!(r.unwrap().stdout, format!("{i}\n").into_bytes());
    }
    assert_eq!(sessions() - before, 4, "{}", sshd.log());
    t.close().await;
}
