//! A journal you can trust: hard-stop confirmations signed through ssh-agent (or `--sign-key`)
//! in OpenSSH's SSHSIG format and checked by `ssh-keygen -Y verify` and by `cutover journal verify
//! --allowed-signers`; a re-chained forgery that the hash chain cannot see; unsigned confirmations
//! without an agent; the journal's permissions (StrictModes) and the recorded input hashes.
//!
//! Needs `ssh-agent`, `ssh-add` and `ssh-keygen` (openssh-client).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cutover::world::WorldSpec;
use serde_json::Value;
use sha2::{Digest, Sha256};

mod support;
use support::bin::{BIN, Finished, output_files, run_to_end};

const ANSWERS: &str = "runbooks/demo-answers.yaml";
const NAMESPACE: &str = "cutover-journal@cutover";
const DEADLINE: Duration = Duration::from_secs(120);

type Run = Finished;

/// `cutover ARGS` from the crate root, with `SSH_AUTH_SOCK` set to `agent` or removed.
fn cutover(scratch: &Path, agent: Option<&Path>, args: &[&str]) -> Run {
    let (out_path, err_path) = output_files(scratch);
    let what = format!("cutover {}", args.join(" "));
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    match agent {
        Some(sock) => cmd.env("SSH_AUTH_SOCK", sock),
        None => cmd.env_remove("SSH_AUTH_SOCK"),
    };
    run_to_end(&mut cmd, &what, &out_path, &err_path, DEADLINE)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// An ssh-agent of this test's own on a socket in its temp dir, killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-a")
            .arg(&sock)
            .arg("-D")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) is needed");
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "ssh-agent did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, sock }
    }

    fn add(&self, key: &Path) {
        let st = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "ssh-add {}", key.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new unencrypted ed25519 key at `path`; returns its public line (`ssh-ed25519 AAAA… comment`).
fn keygen(path: &Path) -> String {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
    fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn world(tmp: &Path) -> cutover::world::WorldInfo {
    cutover::world::create(&tmp.join("w"), &WorldSpec { nodes: 3, lbs: 1 }).unwrap()
}

fn records(journal: &Path) -> Vec<Value> {
    fs::read_to_string(journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn confirmations(journal: &Path) -> Vec<Value> {
    records(journal)
        .into_iter()
        .filter(|r| r["kind"] == "hard_stop_confirmed")
        .collect()
}

/// Re-seals every line from `from` (0-based) on: a new `prev` from the line before, and a new
/// `hash` over the line without its hash member — what a forger who knows the format does.
fn rechain(lines: &mut [String], from: usize) {
    let mut prev = if from == 0 {
        "0".repeat(64)
    } else {
        let v: Value = serde_json::from_str(&lines[from - 1]).unwrap();
        v["hash"].as_str().unwrap().to_string()
    };
    for line in lines.iter_mut().skip(from) {
        let v: Value = serde_json::from_str(line).unwrap();
        let old_prev = v["prev"].as_str().unwrap();
        let at = line.rfind(",\"hash\":\"").unwrap();
        let body = line[..at].replace(
            &format!("\"prev\":\"{old_prev}\""),
            &format!("\"prev\":\"{prev}\""),
        );
        let hash = hex::encode(Sha256::digest(format!("{body}}}").as_bytes()));
        *line = format!("{body},\"hash\":\"{hash}\"}}");
        prev = hash;
    }
}

#[test]
fn confirmations_signed_through_ssh_agent_verify_and_a_rechained_forgery_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let pubkey = keygen(&t.join("id_ed25519"));
    let agent = Agent::start(t);
    agent.add(&t.join("id_ed25519"));
    let w = world(t);
    let journal = t.join("j.jsonl");
    let run = cutover(
        t,
        Some(&agent.sock),
        &[
            "demo",
            "--headless",
            "--world",
            &s(&w.dir),
            "--journal",
            &s(&journal),
            "--answers",
            ANSWERS,
        ],
    )
    .expect(0);
    assert!(
        run.stderr.contains("will be signed with ssh-ed25519"),
        "{}",
        run.stderr
    );

    // Every confirmation carries an SSHSIG by the agent's key.
    let confs = confirmations(&journal);
    assert!(confs.len() >= 2, "{confs:?}");
    let key_b64 = pubkey.split_whitespace().nth(1).unwrap();
    for c in &confs {
        let sig = &c["data"]["signature"];
        assert!(
            sig["armored"]
                .as_str()
                .unwrap_or("")
                .starts_with("-----BEGIN SSH SIGNATURE-----"),
            "{c}"
        );
        assert_eq!(sig["namespace"], NAMESPACE);
        assert!(sig["public_key"].as_str().unwrap().contains(key_b64), "{c}");
        assert!(sig["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    }

    // ssh-keygen accepts the first one over the message exactly as signed.
    let allowed = t.join("allowed_signers");
    fs::write(&allowed, format!("alice@example.org {pubkey}\n")).unwrap();
    let read = cutover::journal::read(&journal).unwrap();
    let first = read
        .records
        .iter()
        .find(|r| r.kind == "hard_stop_confirmed")
        .unwrap();
    let msg = cutover::journal::sign::message_of(first);
    let text = String::from_utf8(msg.clone()).unwrap();
    assert!(
        text.starts_with(&format!(
            "cutover journal confirmation v1\nprev {}\nseq {}\n",
            first.prev, first.seq
        )),
        "{text}"
    );
    fs::write(t.join("msg"), &msg).unwrap();
    fs::write(
        t.join("msg.sig"),
        first.data["signature"]["armored"].as_str().unwrap(),
    )
    .unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&allowed)
        .args(["-I", "alice@example.org", "-n", NAMESPACE, "-s"])
        .arg(t.join("msg.sig"))
        .stdin(fs::File::open(t.join("msg")).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -Y verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // cutover verifies every one against the allowed signers.
    let v = cutover(
        t,
        None,
        &[
            "journal",
            "verify",
            &s(&journal),
            "--allowed-signers",
            &s(&allowed),
        ],
    )
    .expect(0);
    assert!(
        v.stdout.contains(&format!(
            "{} of {} hard-stop confirmations signed",
            confs.len(),
            confs.len()
        )),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains("every confirmation verified"),
        "{}",
        v.stdout
    );
    let plain = cutover(t, None, &["journal", "verify", &s(&journal)]).expect(0);
    assert!(
        plain.stdout.contains("hard-stop confirmations signed"),
        "{}",
        plain.stdout
    );

    // A key that is not in the allowed signers is refused, naming the seq.
    let other = keygen(&t.join("id_other"));
    let allowed_other = t.join("allowed_other");
    fs::write(&allowed_other, format!("bob@example.org {other}\n")).unwrap();
    let v = cutover(
        t,
        None,
        &[
            "journal",
            "verify",
            &s(&journal),
            "--allowed-signers",
            &s(&allowed_other),
        ],
    )
    .expect(1);
    assert!(
        v.stdout
            .contains(&format!("seq {}: BAD SIGNATURE", first.seq))
            && v.stdout.contains("not an allowed signer"),
        "{}",
        v.stdout
    );

    // Forgery: swap who confirmed the first hard stop, re-chain every hash after it. The chain
    // cannot tell; the signature can.
    let mut lines: Vec<String> = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let idx = (first.seq - 1) as usize;
    let user = first.data["who"]["user"].as_str().unwrap();
    let was = format!("\"user\":{}", serde_json::to_string(user).unwrap());
    assert!(lines[idx].contains(&was), "{}", lines[idx]);
    lines[idx] = lines[idx].replacen(&was, "\"user\":\"mallory\"", 1);
    rechain(&mut lines, idx);
    let forged = t.join("forged.jsonl");
    fs::write(&forged, lines.join("\n") + "\n").unwrap();
    fs::set_permissions(&forged, fs::Permissions::from_mode(0o600)).unwrap();
    cutover(t, None, &["journal", "verify", &s(&forged)]).expect(0);
    let v = cutover(
        t,
        None,
        &[
            "journal",
            "verify",
            &s(&forged),
            "--allowed-signers",
            &s(&allowed),
        ],
    )
    .expect(1);
    assert!(
        v.stdout
            .contains(&format!("seq {}: BAD SIGNATURE", first.seq))
            && v.stdout.contains("does not match"),
        "{}",
        v.stdout
    );

    // Forgery 2: change what came before a confirmation (the hard stop that was shown) and
    // re-chain: the confirmation's own data is untouched but its `prev` moved.
    let mut lines: Vec<String> = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let raised = idx - 1;
    assert!(
        lines[raised].contains("\"kind\":\"hard_stop_raised\""),
        "{}",
        lines[raised]
    );
    lines[raised] = lines[raised].replacen("\"title\":\"", "\"title\":\"(harmless) ", 1);
    rechain(&mut lines, raised);
    fs::write(&forged, lines.join("\n") + "\n").unwrap();
    cutover(t, None, &["journal", "verify", &s(&forged)]).expect(0);
    let v = cutover(
        t,
        None,
        &[
            "journal",
            "verify",
            &s(&forged),
            "--allowed-signers",
            &s(&allowed),
        ],
    )
    .expect(1);
    assert!(
        v.stdout
            .contains(&format!("seq {}: BAD SIGNATURE", first.seq)),
        "{}",
        v.stdout
    );
}

#[test]
fn without_an_agent_confirmations_are_unsigned_and_sign_key_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let w = world(t);
    let journal = t.join("j.jsonl");
    let run = cutover(
        t,
        None,
        &[
            "demo",
            "--headless",
            "--world",
            &s(&w.dir),
            "--journal",
            &s(&journal),
            "--answers",
            ANSWERS,
        ],
    )
    .expect(0);
    assert!(run.stderr.contains("recorded unsigned"), "{}", run.stderr);
    let confs = confirmations(&journal);
    assert!(confs.len() >= 2);
    for c in &confs {
        assert!(c["data"]["signature"].is_null(), "{c}");
        assert!(c["data"]["unsigned_reason"].is_string(), "{c}");
    }
    // The inventory's sha256 is in run_started, next to the runbook's.
    let rs = &records(&journal)[0];
    assert_eq!(rs["kind"], "run_started");
    let inv = fs::read(&w.inventory_path).unwrap();
    assert_eq!(
        rs["data"]["inventory_sha256"],
        hex::encode(Sha256::digest(&inv))
    );
    let show = cutover(t, None, &["journal", "show", &s(&journal)]).expect(0);
    assert!(show.stdout.contains("(unsigned)"), "{}", show.stdout);
    let md = cutover(
        t,
        None,
        &["journal", "show", &s(&journal), "--format", "markdown"],
    )
    .expect(0);
    assert!(md.stdout.contains("**unsigned**"), "{}", md.stdout);
    let v = cutover(t, None, &["journal", "verify", &s(&journal)]).expect(0);
    assert!(
        v.stdout.contains(&format!(
            "0 of {} hard-stop confirmations signed",
            confs.len()
        )),
        "{}",
        v.stdout
    );
    // Demanding signatures, an unsigned confirmation fails (a stripped signature looks the same).
    let pubkey = keygen(&t.join("id_ed25519"));
    let allowed = t.join("allowed_signers");
    fs::write(&allowed, format!("alice@example.org {pubkey}\n")).unwrap();
    let v = cutover(
        t,
        None,
        &[
            "journal",
            "verify",
            &s(&journal),
            "--allowed-signers",
            &s(&allowed),
        ],
    )
    .expect(1);
    assert!(v.stdout.contains("unsigned"), "{}", v.stdout);

    // --sign-key with an unencrypted identity file signs without any agent.
    let w2 = cutover::world::create(&t.join("w2"), &WorldSpec { nodes: 3, lbs: 1 }).unwrap();
    let j2 = t.join("j2.jsonl");
    cutover(
        t,
        None,
        &[
            "demo",
            "--headless",
            "--world",
            &s(&w2.dir),
            "--journal",
            &s(&j2),
            "--answers",
            ANSWERS,
            "--sign-key",
            &s(&t.join("id_ed25519")),
        ],
    )
    .expect(0);
    let v = cutover(
        t,
        None,
        &[
            "journal",
            "verify",
            &s(&j2),
            "--allowed-signers",
            &s(&allowed),
        ],
    )
    .expect(0);
    assert!(
        v.stdout.contains("every confirmation verified"),
        "{}",
        v.stdout
    );
}

#[test]
fn a_writable_journal_is_refused_by_resume_replay_and_show() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let w = world(t);
    // A runbook of our own, so that we can change its file before resuming.
    let rb = t.join("rb.yaml");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/fernet-to-jws.yaml"),
        &rb,
    )
    .unwrap();
    let journal = t.join("j.jsonl");
    // No answers: it pauses at the first hard stop.
    cutover(
        t,
        None,
        &[
            "demo",
            "--headless",
            "--world",
            &s(&w.dir),
            "--runbook",
            &s(&rb),
            "--journal",
            &s(&journal),
        ],
    )
    .expect(3);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&journal), 0o600, "a new journal is 0600");

    fs::set_permissions(&journal, fs::Permissions::from_mode(0o666)).unwrap();
    let j = s(&journal);
    let advice = format!("chmod 600 {j}");
    for args in [
        vec!["resume", "--headless", "--answers", ANSWERS, j.as_str()],
        vec!["replay", j.as_str()],
        vec!["journal", "show", j.as_str()],
    ] {
        let r = cutover(t, None, &args);
        assert_ne!(r.code, 0, "{}: {}", r.what, r.stdout);
        assert!(
            r.stderr.contains("world-writable") && r.stderr.contains(&advice),
            "{}: {}",
            r.what,
            r.stderr
        );
    }
    // Group-writable too.
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o620)).unwrap();
    let r = cutover(t, None, &["journal", "show", &j]);
    assert!(
        r.code != 0 && r.stderr.contains("group-writable"),
        "{}",
        r.stderr
    );
    // verify reports it and still verifies.
    let v = cutover(t, None, &["journal", "verify", &j]).expect(0);
    assert!(
        v.stdout.contains("warning") && v.stdout.contains(&advice),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("hash chain verified"), "{}", v.stdout);

    // Fixed as advised, resume shows the recorded hashes and that the runbook file changed.
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::read(&rb).unwrap();
    fs::write(
        &rb,
        [before.as_slice(), b"\n# edited after the start\n"].concat(),
    )
    .unwrap();
    let r = cutover(t, None, &["resume", "--headless", "--answers", ANSWERS, &j]).expect(0);
    let rb_sha = hex::encode(Sha256::digest(&before));
    let inv_sha = hex::encode(Sha256::digest(fs::read(&w.inventory_path).unwrap()));
    assert!(
        r.stderr.contains(&rb_sha) && r.stderr.contains(&inv_sha),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("now differs") && r.stderr.contains("resuming from the journal's copy"),
        "{}",
        r.stderr
    );
}
