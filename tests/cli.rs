//! The `cutover` binary end to end against the embedded demo world: the flagship run and what it
//! leaves on disk, node counts, secrets in the journal, pausing and resuming at hard stops,
//! rollback, the shared key strategy, a failed restart, plan and probe, and the one-writer lock.
//!
//! Every test creates its own world (free loopback ports picked at creation) in its own temp dir
//! and runs the real binary from the crate root, so `runbooks/...` resolves as an operator's
//! checkout would.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cutover::world::{WorldInfo, WorldSpec};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde_json::Value;

mod support;
use support::bin::{BIN, Finished, output_files, run_to_end};

const ANSWERS: &str = "runbooks/demo-answers.yaml";
/// No single command may take longer than this (a hang fails the test instead of blocking it).
const DEADLINE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

type Run = Finished;

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Run `cutover ARGS` from the crate root; output goes to files in `scratch` (no pipe can fill
/// up), and the process is killed if it outlives [`DEADLINE`].
fn cutover(scratch: &Path, args: &[&str]) -> Run {
    let (out_path, err_path) = output_files(scratch);
    let what = format!("cutover {}", args.join(" "));
    run_to_end(
        Command::new(BIN)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1"),
        &what,
        &out_path,
        &err_path,
        DEADLINE,
    )
}

// ---------------------------------------------------------------------------------------------
// A world in a temp dir
// ---------------------------------------------------------------------------------------------

struct World {
    tmp: tempfile::TempDir,
    info: WorldInfo,
}

impl World {
    fn new(nodes: usize) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let info = cutover::world::create(&tmp.path().join("w"), &WorldSpec { nodes, lbs: 1 })
            .expect("create a demo world");
        World { tmp, info }
    }

    fn dir(&self) -> String {
        s(&self.info.dir)
    }

    fn inventory(&self) -> String {
        s(&self.info.inventory_path)
    }

    fn journal(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    fn run(&self, args: &[&str]) -> Run {
        cutover(self.scratch(), args)
    }

    /// `cutover demo --headless --world W --journal J [extra...]`.
    fn demo(&self, journal: &Path, extra: &[&str]) -> Run {
        let dir = self.dir();
        let j = s(journal);
        let mut args = vec!["demo", "--headless", "--world", &dir, "--journal", &j];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn conf(&self, node: &str) -> String {
        fs::read_to_string(&self.info.node(node).unwrap().keystone_conf).unwrap()
    }

    /// `[token] provider` of every node, in node order.
    fn providers(&self) -> Vec<(String, Option<String>)> {
        self.info
            .nodes
            .iter()
            .map(|n| (n.name.clone(), active_provider(&self.conf(&n.name))))
            .collect()
    }

    fn assert_all_providers(&self, want: &str) {
        for (node, p) in self.providers() {
            assert_eq!(
                p.as_deref(),
                Some(want),
                "{node}'s keystone.conf [token] provider"
            );
        }
    }

    fn admin_password(&self) -> String {
        let text = fs::read_to_string(&self.info.clouds_path).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let pw = doc["clouds"]["demo"]["auth"]["password"]
            .as_str()
            .expect("clouds.yaml has clouds.demo.auth.password")
            .to_string();
        assert!(pw.len() >= 12, "a real password, not `{pw}`");
        pw
    }

    /// Every file of every node's Fernet repository: path → bytes.
    fn fernet_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for n in &self.info.nodes {
            for e in fs::read_dir(&n.fernet_repo).unwrap() {
                let p = e.unwrap().path();
                out.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
        assert_eq!(
            out.len(),
            3 * self.info.nodes.len(),
            "3 Fernet keys per node"
        );
        out
    }

    fn private_pem(&self, node: &str) -> PathBuf {
        self.info
            .node(node)
            .unwrap()
            .jws_private_repo
            .join("private.pem")
    }

    /// The public key of a node's installed private.pem.
    fn public_of_private(&self, node: &str) -> p256::PublicKey {
        let pem = fs::read_to_string(self.private_pem(node))
            .unwrap_or_else(|e| panic!("{node} has no readable private.pem: {e}"));
        p256::SecretKey::from_pkcs8_pem(&pem)
            .unwrap_or_else(|e| panic!("{node}'s private.pem is not a PKCS#8 P-256 key: {e}"))
            .public_key()
    }

    /// Every public key in a node's public repository.
    fn public_repo(&self, node: &str) -> Vec<p256::PublicKey> {
        let repo = &self.info.node(node).unwrap().jws_public_repo;
        fs::read_dir(repo)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let text = fs::read_to_string(&p).unwrap();
                p256::PublicKey::from_public_key_pem(&text).unwrap_or_else(|e| {
                    panic!("{} is not a P-256 public key PEM: {e}", p.display())
                })
            })
            .collect()
    }

    /// The load balancer's admin state of each node, from `cutover probe --format json`.
    fn lb_admin_states(&self) -> BTreeMap<String, String> {
        let inv = self.inventory();
        let probe = self
            .run(&["probe", "-i", &inv, "--format", "json"])
            .expect(0);
        let v: Value = serde_json::from_str(&probe.stdout).expect("probe --format json is JSON");
        v["lb"]
            .as_array()
            .expect("probe JSON has an `lb` array")
            .iter()
            .map(|row| {
                (
                    row["node"].as_str().unwrap().to_string(),
                    row["admin"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The active `provider = ...` of `[token]`, ignoring comments (last assignment wins).
fn active_provider(conf: &str) -> Option<String> {
    let mut section = String::new();
    let mut found = None;
    for line in conf.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.starts_with(';') || t.is_empty() {
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_lowercase();
            continue;
        }
        if section == "token"
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == "provider"
        {
            found = Some(v.trim().to_string());
        }
    }
    found
}

/// Index of the one active `provider =` line of `[token]`.
fn provider_line(conf: &str) -> usize {
    let mut section = String::new();
    let mut hits = Vec::new();
    for (i, line) in conf.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_lowercase();
        } else if section == "token" && !t.starts_with('#') && t.starts_with("provider") {
            hits.push(i);
        }
    }
    assert_eq!(hits.len(), 1, "exactly one active provider line in [token]");
    hits[0]
}

/// Does `text` hold something shaped like a compact JWS (`eyJ...`.`...`.`...`)?
fn find_jws(text: &str) -> Option<&str> {
    let b64url = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(off) = text[from..].find("eyJ") {
        let start = from + off;
        let mut i = start;
        let mut segments = 0;
        loop {
            let seg_start = i;
            while i < bytes.len() && b64url(bytes[i]) {
                i += 1;
            }
            if i == seg_start {
                break;
            }
            segments += 1;
            if segments == 3 || i >= bytes.len() || bytes[i] != b'.' {
                break;
            }
            i += 1;
        }
        if segments == 3 {
            return Some(&text[start..i]);
        }
        from = start + 3;
    }
    None
}

fn jsonl(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a journal line is JSON"))
        .collect()
}

/// `cutover journal verify J` must say the chain is intact.
fn assert_verifies(w: &World, journal: &Path) {
    let j = s(journal);
    let r = w.run(&["journal", "verify", &j]).expect(0);
    assert!(r.stdout.contains("intact"), "verify output: {}", r.all());
}

// ---------------------------------------------------------------------------------------------
// 1. The flagship on three nodes, and what it leaves behind
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_completes_and_leaves_jws_keys_confs_backups_and_fernet_untouched() {
    let w = World::new(3);
    let nodes: Vec<String> = w.info.nodes.iter().map(|n| n.name.clone()).collect();
    let confs_before: BTreeMap<String, String> =
        nodes.iter().map(|n| (n.clone(), w.conf(n))).collect();
    for (n, c) in &confs_before {
        assert_eq!(
            active_provider(c).as_deref(),
            Some("fernet"),
            "{n} starts on fernet"
        );
    }
    let fernet_before = w.fernet_files();

    let j = w.journal("j.jsonl");
    let run = w.demo(&j, &["--answers", ANSWERS]).expect(0);
    assert!(run.all().contains("completed"), "{}", run.all());

    for n in &nodes {
        let node = w.info.node(n).unwrap();
        let before = &confs_before[n];
        let after = w.conf(n);
        // [token] provider = jws, active (not commented).
        assert_eq!(active_provider(&after).as_deref(), Some("jws"), "{n}");
        // Only the provider line changed: every comment and every other line kept, in order.
        let b: Vec<&str> = before.lines().collect();
        let a: Vec<&str> = after.lines().collect();
        assert_eq!(a.len(), b.len(), "{n}: keystone.conf gained or lost lines");
        let pl = provider_line(before);
        assert_eq!(provider_line(&after), pl, "{n}: the provider line moved");
        for (i, (x, y)) in b.iter().zip(&a).enumerate() {
            if i == pl {
                assert_eq!(x.trim(), "provider = fernet");
                assert_eq!(y.trim(), "provider = jws");
            } else {
                assert_eq!(x, y, "{n}: keystone.conf line {} changed", i + 1);
            }
        }
        assert_eq!(
            before
                .lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count(),
            after
                .lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count(),
            "{n}: comments lost"
        );
        // A timestamped backup beside the conf, holding the original.
        let etc = node.keystone_conf.parent().unwrap();
        let backups: Vec<PathBuf> = fs::read_dir(etc)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("keystone.conf.cutover-")
            })
            .collect();
        assert_eq!(
            backups.len(),
            1,
            "{n}: one backup keystone.conf.cutover-*: {backups:?}"
        );
        let stamp = backups[0].file_name().unwrap().to_str().unwrap()
            ["keystone.conf.cutover-".len()..]
            .to_string();
        assert!(
            stamp.len() >= 8 && stamp.chars().any(|c| c.is_ascii_digit()),
            "{n}: backup suffix `{stamp}` is not a timestamp"
        );
        assert_eq!(
            &fs::read_to_string(&backups[0]).unwrap(),
            before,
            "{n}: backup is the original"
        );
        // private.pem, mode 0600.
        let mode = fs::metadata(w.private_pem(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{n}: private.pem mode {mode:o}");
    }

    // Every node's public key is in every node's public repository.
    let publics: BTreeMap<&String, p256::PublicKey> =
        nodes.iter().map(|n| (n, w.public_of_private(n))).collect();
    for holder in &nodes {
        let repo = w.public_repo(holder);
        for (owner, key) in &publics {
            assert!(
                repo.contains(key),
                "{holder}'s public repository lacks {owner}'s public key"
            );
        }
    }
    // per-node (the default): three distinct keypairs.
    let distinct: Vec<_> = publics.values().collect();
    for (i, a) in distinct.iter().enumerate() {
        for b in &distinct[i + 1..] {
            assert_ne!(a, b, "per-node strategy produced a shared key");
        }
    }
    // Private keys stay home: the only files holding a private key are the installed ones.
    let mut private_files = Vec::new();
    let mut stack = vec![w.info.dir.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if fs::read(&p)
                .unwrap()
                .windows(11)
                .any(|x| x == b"PRIVATE KEY")
            {
                private_files.push(p);
            }
        }
    }
    private_files.sort();
    let mut expected: Vec<PathBuf> = nodes.iter().map(|n| w.private_pem(n)).collect();
    expected.sort();
    assert_eq!(
        private_files, expected,
        "private keys only in each node's private.pem"
    );

    // Fernet repositories: byte for byte as before (rollback needs them).
    assert_eq!(
        w.fernet_files(),
        fernet_before,
        "a Fernet repository changed"
    );

    // The journal verifies...
    assert_verifies(&w, &j);

    // ...until one byte in the middle changes: a letter inside the data of the middle line.
    let text = fs::read_to_string(&j).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() > 20,
        "a real run journals more than {} records",
        lines.len()
    );
    let mid = lines.len() / 2;
    let line_start: usize = lines[..mid].iter().map(|l| l.len() + 1).sum();
    let data_at = lines[mid].find("\"data\":{").expect("a data member") + 8;
    let rel = lines[mid][data_at..]
        .find(|c: char| c.is_ascii_lowercase())
        .expect("a letter in the data");
    let at = line_start + data_at + rel;
    let mut bytes = text.into_bytes();
    let old = bytes[at];
    bytes[at] = if old == b'z' { b'y' } else { old + 1 };
    fs::write(&j, &bytes).unwrap();
    let seq = mid + 1; // seq k is line k
    let jj = s(&j);
    let bad = w.run(&["journal", "verify", &jj]).expect(1);
    assert!(
        bad.all().contains(&format!("seq {seq}")),
        "verify must name seq {seq} (changed `{}` → `{}` on line {seq}): {}",
        old as char,
        bytes[at] as char,
        bad.all()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Five nodes
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_with_five_nodes_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("w");
    let j = tmp.path().join("j.jsonl");
    let r = cutover(
        tmp.path(),
        &[
            "demo",
            "--headless",
            "--nodes",
            "5",
            "--world",
            &s(&world),
            "--journal",
            &s(&j),
            "--answers",
            ANSWERS,
        ],
    )
    .expect(0);
    let info = cutover::world::load(&world).expect("demo created a world");
    assert_eq!(info.nodes.len(), 5);
    for n in &info.nodes {
        let conf = fs::read_to_string(&n.keystone_conf).unwrap();
        assert_eq!(active_provider(&conf).as_deref(), Some("jws"), "{}", n.name);
        assert!(
            r.stdout.contains(&n.name),
            "output never mentions {}",
            n.name
        );
    }
    let v = cutover(tmp.path(), &["journal", "verify", &s(&j)]).expect(0);
    assert!(v.stdout.contains("intact"));
}

// ---------------------------------------------------------------------------------------------
// 3. Secrets stay out of the journal (and off the screen)
// ---------------------------------------------------------------------------------------------

#[test]
fn journal_and_output_hold_no_secrets() {
    let w = World::new(3);
    let password = w.admin_password();
    let j = w.journal("j.jsonl");
    let run = w.demo(&j, &["--answers", ANSWERS]).expect(0);
    let journal = fs::read_to_string(&j).unwrap();
    // The run did issue and validate tokens, and journaled their shapes only.
    assert!(
        journal.contains("\"alg\":\"ES256\"") && journal.contains("\"format\":\"jws\""),
        "token shapes (format, algorithm) are journaled"
    );
    let mode = fs::metadata(&j).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the journal is private (mode {mode:o})");

    // Private key material of every node, in every encoding it could leak in.
    let mut key_leaks: Vec<(String, String)> = Vec::new();
    for n in &w.info.nodes {
        let pem = fs::read_to_string(w.private_pem(&n.name)).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .unwrap();
        let sk = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
        let scalar = sk.to_bytes();
        for l in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        {
            key_leaks.push((format!("{} PEM body line", n.name), l.to_string()));
        }
        key_leaks.push((format!("{} DER hex", n.name), hex::encode(&der)));
        key_leaks.push((format!("{} scalar hex", n.name), hex::encode(scalar)));
        key_leaks.push((
            format!("{} scalar base64", n.name),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(scalar),
        ));
        key_leaks.push((
            format!("{} scalar base64url (JWK d)", n.name),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(scalar),
        ));
    }
    // Fernet keys too.
    for (p, bytes) in w.fernet_files() {
        let k = String::from_utf8(bytes).unwrap();
        key_leaks.push((format!("Fernet key {}", p.display()), k.trim().to_string()));
    }

    for (name, text) in [("journal", journal.as_str()), ("run output", &run.all())] {
        assert!(!text.contains("-----BEGIN"), "{name} holds a PEM block");
        assert!(!text.contains(&password), "{name} holds the admin password");
        assert!(!text.contains("gAAAAA"), "{name} holds a Fernet token");
        if let Some(tok) = find_jws(text) {
            panic!("{name} holds a JWS token: {}…", &tok[..tok.len().min(40)]);
        }
        for (what, secret) in &key_leaks {
            assert!(!text.contains(secret.as_str()), "{name} holds {what}");
        }
    }
}

#[test]
fn jws_detector_finds_tokens() {
    // The secrets test is only as good as its detector.
    assert!(find_jws("x eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln y").is_some());
    assert!(find_jws("\"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.ab-_Cd\"").is_some());
    assert!(find_jws("eyJhbGciOiJFUzI1NiJ9 and eyJ.").is_none());
    assert!(find_jws("no token here").is_none());
}

// ---------------------------------------------------------------------------------------------
// 4. No answers: pause at the first hard stop, then resume
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_without_answers_pauses_at_first_hard_stop_then_resume_completes() {
    let w = World::new(3);
    let j = w.journal("j.jsonl");
    let paused = w.demo(&j, &[]).expect(3);
    assert!(
        paused.all().contains("jws-payload-readable"),
        "must say which hard stop it paused at: {}",
        paused.all()
    );
    assert!(paused.all().contains("paused"), "{}", paused.all());
    // Nothing changed before the operator confirmed.
    w.assert_all_providers("fernet");
    for n in &w.info.nodes {
        assert!(
            !w.private_pem(&n.name).exists(),
            "{}: keys created before the hard stop",
            n.name
        );
    }
    assert_verifies(&w, &j);

    let jj = s(&j);
    w.run(&["resume", &jj, "--headless", "--answers", ANSWERS])
        .expect(0);
    w.assert_all_providers("jws");
    assert_verifies(&w, &j);
    // One run, continued in the same journal.
    let runs: std::collections::BTreeSet<String> = jsonl(&j)
        .iter()
        .map(|r| r["run"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(runs.len(), 1, "resume continues the same run: {runs:?}");
    assert_eq!(jsonl(&j).last().unwrap()["kind"], "run_completed");
}

// ---------------------------------------------------------------------------------------------
// 5. Rollback
// ---------------------------------------------------------------------------------------------

#[test]
fn rollback_runbook_returns_every_node_to_fernet() {
    let w = World::new(3);
    let fernet_before = w.fernet_files();
    let j = w.journal("j.jsonl");
    w.demo(&j, &["--answers", ANSWERS]).expect(0);
    w.assert_all_providers("jws");

    let j2 = w.journal("j2.jsonl");
    let (inv, jj2) = (w.inventory(), s(&j2));
    w.run(&[
        "run",
        "runbooks/jws-to-fernet.yaml",
        "-i",
        &inv,
        "--headless",
        "--answers",
        ANSWERS,
        "--journal",
        &jj2,
    ])
    .expect(0);
    w.assert_all_providers("fernet");
    assert_eq!(
        w.fernet_files(),
        fernet_before,
        "rollback used the kept Fernet keys as they were"
    );
    assert_verifies(&w, &j2);
    let recs = jsonl(&j2);
    assert_eq!(recs[0]["data"]["runbook_name"], "jws-to-fernet");
    assert_eq!(recs.last().unwrap()["kind"], "run_completed");
}

// ---------------------------------------------------------------------------------------------
// 6. Shared key strategy
// ---------------------------------------------------------------------------------------------

#[test]
fn shared_key_strategy_puts_one_keypair_on_every_node() {
    let w = World::new(3);
    let j = w.journal("j.jsonl");
    w.demo(
        &j,
        &["--answers", ANSWERS, "--param", "key_strategy=shared"],
    )
    .expect(0);
    w.assert_all_providers("jws");
    let first = w.public_of_private("node1");
    for n in &w.info.nodes {
        assert_eq!(
            w.public_of_private(&n.name),
            first,
            "{}: a different keypair",
            n.name
        );
        assert!(
            w.public_repo(&n.name).contains(&first),
            "{}: shared public key missing",
            n.name
        );
        let mode = fs::metadata(w.private_pem(&n.name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", n.name);
    }
    assert_eq!(jsonl(&j)[0]["data"]["params"]["key_strategy"], "shared");
    assert_verifies(&w, &j);
}

/// The `keys` step is titled `"JWS keys ({{ params.key_strategy }})"`. `cutover plan` renders it
/// ("JWS keys (per-node)"), but a run shows the raw template on screen (and so in the TUI).
#[test]
fn run_output_renders_templated_step_titles() {
    let w = World::new(3);
    let j = w.journal("j.jsonl");
    let run = w
        .demo(
            &j,
            &["--answers", ANSWERS, "--param", "key_strategy=shared"],
        )
        .expect(0);
    assert!(
        !run.stdout.contains("{{"),
        "an unrendered template on screen: {}",
        run.stdout
            .lines()
            .find(|l| l.contains("{{"))
            .unwrap_or_default()
    );
    assert!(run.stdout.contains("JWS keys (shared)"), "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// 7. Declining the mixed-pool hard stop
// ---------------------------------------------------------------------------------------------

#[test]
fn declining_mixed_pool_pauses_with_one_node_flipped_then_resume_completes() {
    let w = World::new(3);
    let answers = w.scratch().join("answers.yaml");
    fs::write(
        &answers,
        "jws-payload-readable: confirm\nmixed-pool: decline\n",
    )
    .unwrap();
    let j = w.journal("j.jsonl");
    let r = w.demo(&j, &["--answers", &s(&answers)]).expect(3);
    assert!(r.all().contains("mixed-pool"), "{}", r.all());

    let p: BTreeMap<String, Option<String>> = w.providers().into_iter().collect();
    assert_eq!(p["node1"].as_deref(), Some("jws"));
    assert_eq!(p["node2"].as_deref(), Some("fernet"));
    assert_eq!(p["node3"].as_deref(), Some("fernet"));

    let recs = jsonl(&j);
    let declined: Vec<&Value> = recs
        .iter()
        .filter(|r| r["kind"] == "hard_stop_declined")
        .collect();
    assert_eq!(declined.len(), 1, "one hard_stop_declined record");
    assert_eq!(declined[0]["data"]["id"], "mixed-pool");
    // Declining did not re-add the flipped node: clients never reach a mixed pool.
    let lb = w.lb_admin_states();
    assert_ne!(
        lb["node1"], "ready",
        "node1 was re-added although mixed-pool was declined"
    );
    assert_eq!(lb["node2"], "ready");

    let jj = s(&j);
    w.run(&["resume", &jj, "--headless", "--answers", ANSWERS])
        .expect(0);
    w.assert_all_providers("jws");
    assert_verifies(&w, &j);
}

// ---------------------------------------------------------------------------------------------
// 8. A failed restart halts; the node stays out of the pool
// ---------------------------------------------------------------------------------------------

#[test]
fn failed_restart_halts_naming_the_node_and_keeps_it_out_of_the_pool() {
    let w = World::new(3);
    let restart = &w.info.node("node2").unwrap().restart;
    fs::write(
        restart,
        "#!/bin/sh\necho 'keystone failed to start' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(restart, fs::Permissions::from_mode(0o755)).unwrap();

    let j = w.journal("j.jsonl");
    let r = w.demo(&j, &["--answers", ANSWERS]).expect(4);
    let out = r.all();
    let halted = out
        .lines()
        .find(|l| l.contains("HALTED") || l.contains("halted"))
        .unwrap_or_else(|| panic!("no halt line: {out}"));
    assert!(out.contains("node2"), "{out}");
    assert!(
        halted.contains("node2"),
        "the halt line must name node2: {halted}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("next") && l.contains("node2"))
            && out.contains("cutover resume"),
        "must say what to do next: {out}"
    );
    // node1 went through; node2 was flipped but never came back; node3 untouched.
    let p: BTreeMap<String, Option<String>> = w.providers().into_iter().collect();
    assert_eq!(p["node1"].as_deref(), Some("jws"));
    assert_eq!(p["node3"].as_deref(), Some("fernet"));
    // node2 is still in maintenance on the load balancer, the others serve.
    let lb = w.lb_admin_states();
    assert_eq!(
        lb["node2"], "maint",
        "node2 must stay out of the pool: {lb:?}"
    );
    assert_eq!(lb["node1"], "ready");
    assert_eq!(lb["node3"], "ready");

    let recs = jsonl(&j);
    let last = recs.last().unwrap();
    assert_eq!(last["kind"], "run_halted", "the journal ends with the halt");
    assert_eq!(last["node"], "node2");

    let jj = s(&j);
    let md = w
        .run(&["journal", "show", &jj, "--format", "markdown"])
        .expect(0);
    assert!(md.stdout.starts_with('#'), "{}", md.stdout);
    assert!(
        md.stdout.contains("Halted"),
        "markdown report must mention the halt"
    );
    assert!(
        md.stdout
            .lines()
            .any(|l| l.contains("Halted") && l.contains("node2")),
        "markdown names node2 at the halt"
    );

    let js = w
        .run(&["journal", "show", &jj, "--format", "json"])
        .expect(0);
    let lines: Vec<&str> = js.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), recs.len(), "one JSON line per record");
    for (i, l) in lines.iter().enumerate() {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1));
        for f in [
            "seq", "time", "run", "actor", "kind", "step", "node", "data", "prev", "hash",
        ] {
            assert!(v.get(f).is_some(), "line {} lacks `{f}`", i + 1);
        }
        assert_eq!(v["seq"], (i + 1) as u64);
    }
    assert_verifies(&w, &j);
}

// ---------------------------------------------------------------------------------------------
// 9. Plan and probe
// ---------------------------------------------------------------------------------------------

#[test]
fn plan_lists_every_node_and_lb_command_and_probe_reports_fernet() {
    let w = World::new(3);
    let password = w.admin_password();
    let inv = w.inventory();
    let plan = w
        .run(&["plan", "runbooks/fernet-to-jws.yaml", "-i", &inv])
        .expect(0);
    for (k, n) in w.info.nodes.iter().enumerate() {
        assert!(plan.stdout.contains(&n.name), "plan misses {}", n.name);
        let cmd = format!("set server keystone_api/ks{} state", k + 1);
        assert!(plan.stdout.contains(&cmd), "plan misses `{cmd}`");
    }
    assert!(
        !plan.all().contains(&password),
        "plan shows the admin password"
    );
    assert!(!plan.stdout.contains("{{"), "plan shows a raw template");
    // A plan changes nothing.
    w.assert_all_providers("fernet");

    let md = w
        .run(&[
            "plan",
            "runbooks/fernet-to-jws.yaml",
            "-i",
            &inv,
            "--format",
            "markdown",
        ])
        .expect(0);
    assert!(
        md.stdout.starts_with("# Plan"),
        "{}",
        &md.stdout[..md.stdout.len().min(200)]
    );
    assert!(!md.all().contains(&password));

    let probe = w.run(&["probe", "-i", &inv, "--format", "json"]).expect(0);
    let v: Value = serde_json::from_str(&probe.stdout).expect("probe JSON");
    for n in &w.info.nodes {
        assert_eq!(v["nodes"][&n.name]["provider"], "fernet", "{}", n.name);
    }
    assert!(
        !probe.all().contains(&password),
        "probe shows the admin password"
    );
}

#[test]
fn probe_reports_how_each_load_balancer_comes_through_a_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let info = cutover::world::create(&tmp.path().join("w"), &WorldSpec { nodes: 2, lbs: 2 })
        .expect("create a demo world");
    let inv = s(&info.inventory_path);
    // The world names each instance's configuration in its inventory, as Debian ships it.
    let inv_text = fs::read_to_string(&info.inventory_path).unwrap();
    for lb in &info.lbs {
        let cfg = lb
            .config
            .clone()
            .expect("a new world writes a config per instance");
        assert!(
            inv_text.contains(&format!("config: {}", s(&cfg))),
            "{inv_text}"
        );
        let text = fs::read_to_string(&cfg).unwrap();
        assert!(
            text.contains(&format!("stats socket {} ", s(&lb.socket))),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("server-state-file")),
            "{text}"
        );
    }
    let probe = cutover(tmp.path(), &["probe", "-i", &inv, "--format", "json"]).expect(0);
    let v: Value = serde_json::from_str(&probe.stdout).expect("probe JSON");
    for lb in &info.lbs {
        let f = &v["lb_reload"][&lb.name];
        assert_eq!(f["config"], s(lb.config.as_ref().unwrap()), "{f}");
        assert_eq!(f["known"], true, "{f}");
        assert_eq!(f["survives"], false, "{f}");
        assert_eq!(f["checks"], true, "{f}");
        assert_eq!(f["note"], "no server-state-file", "{f}");
        assert!(f.get("load_state").is_none(), "{f}");
    }
    let table = cutover(tmp.path(), &["probe", "-i", &inv]).expect(0);
    for lb in &info.lbs {
        let line = format!(
            "! {}: a reload loses MAINT (no server-state-file) · {}",
            lb.name,
            s(lb.config.as_ref().unwrap())
        );
        assert!(
            table.stdout.contains(&line),
            "no `{line}` in\n{}",
            table.stdout
        );
    }

    // haproxy-2 gets a state file the way the lab has it, and a server without a check.
    let cfg2 = info.lbs[1].config.clone().unwrap();
    let text = fs::read_to_string(&cfg2)
        .unwrap()
        .replace(
            "\tstats timeout 30s\n",
            "\tstats timeout 30s\n\tserver-state-file /var/lib/haproxy/server-state\n",
        )
        .replace(
            "\ttimeout server  50000\n",
            "\ttimeout server  50000\n\tload-server-state-from-file global\n",
        )
        .replace(
            " check inter 1s rise 2 fall 3\n\tserver ks2",
            "\n\tserver ks2",
        );
    fs::write(&cfg2, &text).unwrap();
    // And an inventory that names no config for haproxy-1.
    let cfg1_line = format!("  config: {}\n", s(info.lbs[0].config.as_ref().unwrap()));
    assert!(inv_text.contains(&cfg1_line), "{inv_text}");
    let inv2 = tmp.path().join("inventory-2.yaml");
    fs::write(&inv2, inv_text.replace(&cfg1_line, "")).unwrap();
    let probe = cutover(tmp.path(), &["probe", "-i", &s(&inv2), "--format", "json"]).expect(0);
    let v: Value = serde_json::from_str(&probe.stdout).expect("probe JSON");
    let f1 = &v["lb_reload"]["haproxy-1"];
    assert_eq!(f1["known"], false, "{f1}");
    assert_eq!(f1["note"], "config not named in the inventory", "{f1}");
    let f2 = &v["lb_reload"]["haproxy-2"];
    assert_eq!(f2["survives"], true, "{f2}");
    assert_eq!(f2["load_state"], "global", "{f2}");
    assert_eq!(f2["state_file"], "/var/lib/haproxy/server-state", "{f2}");
    assert_eq!(f2["checks"], false, "{f2}");
    assert_eq!(f2["unchecked"], serde_json::json!(["ks1"]), "{f2}");
    let table = cutover(tmp.path(), &["probe", "-i", &s(&inv2)]).expect(0);
    for want in [
        "! haproxy-1: config not named in the inventory: cannot tell whether a reload keeps MAINT; \
         the pool guard covers it while cutover runs",
        "! haproxy-2: a reload keeps MAINT only if the state is saved before the reload \
         (server-state-file /var/lib/haproxy/server-state, load global); \
         no health check on ks1: lb.ready waits for plain UP",
    ] {
        assert!(
            table.stdout.contains(want),
            "no `{want}` in\n{}",
            table.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 10. One writer
// ---------------------------------------------------------------------------------------------

#[test]
fn second_writer_is_refused_while_the_journal_is_locked() {
    let w = World::new(3);
    let j = w.journal("j.jsonl");
    w.demo(&j, &[]).expect(3);
    let before = fs::read(&j).unwrap();

    // The writer's lock is a flock on the journal file itself.
    let lock = fs::File::open(&j).unwrap();
    assert!(
        fs4::fs_std::FileExt::try_lock_exclusive(&lock).unwrap(),
        "the paused run must have released its lock"
    );
    let jj = s(&j);
    let refused = w.run(&["resume", &jj, "--headless", "--answers", ANSWERS]);
    assert!(
        refused.code != 0 && refused.code != 3,
        "a second writer must fail, got exit {}: {}",
        refused.code,
        refused.all()
    );
    assert!(
        refused.stderr.to_lowercase().contains("lock"),
        "must say the journal is locked: {}",
        refused.all()
    );
    assert_eq!(
        fs::read(&j).unwrap(),
        before,
        "the refused writer touched the journal"
    );
    w.assert_all_providers("fernet");

    fs4::fs_std::FileExt::unlock(&lock).unwrap();
    drop(lock);
    w.run(&["resume", &jj, "--headless", "--answers", ANSWERS])
        .expect(0);
    w.assert_all_providers("jws");
    assert_verifies(&w, &j);
}

/// `cutover plan` for every shipped runbook shows the node's pool read (`GATE out-of-pool`)
/// directly before each flip and restart: nothing else is read in between.
#[test]
fn plan_shows_the_pool_read_directly_before_every_flip_and_restart() {
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "demo-answers.yaml") {
            continue;
        }
        let plan = cutover(
            scratch.path(),
            &[
                "plan",
                path.to_str().unwrap(),
                "-i",
                "tests/fixtures/inventory-3.yaml",
            ],
        )
        .expect(0);
        // Op lines are `  N  text`; the commands under an op are indented further.
        let ops: Vec<&str> = plan
            .stdout
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                l.len() - t.len() <= 6
                    && t.split_whitespace()
                        .next()
                        .is_some_and(|w| w.parse::<usize>().is_ok())
            })
            .collect();
        for (i, op) in ops.iter().enumerate() {
            let guarded =
                op.contains("set [token] provider") || op.contains(": restart keystone on");
            if !guarded {
                continue;
            }
            let node = op.split_whitespace().nth(1).unwrap_or_default(); // "ks1:"
            assert!(
                i > 0 && ops[i - 1].contains(&format!("{node} GATE out-of-pool")),
                "{}: `{}` follows `{}`",
                path.display(),
                op.trim(),
                ops.get(i.wrapping_sub(1))
                    .map(|s| s.trim())
                    .unwrap_or("nothing")
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 12,
        "only {checked} flips and restarts found in the plans"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input: names confined at load, outside text sanitised on the way out
// ---------------------------------------------------------------------------------------------

/// `cutover ARGS` run in `cwd` (not the crate root), so whatever it creates lands there.
fn cutover_in(cwd: &Path, args: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let out_path = out.path().join("stdout");
    let err_path = out.path().join("stderr");
    let what = format!("cutover {}", args.join(" "));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(&out_path).unwrap(),
        stderr: fs::read_to_string(&err_path).unwrap(),
        what,
    }
}

/// Every path under `dir` (relative), sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

fn crate_path(rel: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
}

/// No ESC and no BEL anywhere in what a command printed.
fn assert_no_escapes(r: &Run) {
    for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "`{}` printed ESC or BEL on {stream}:\n{}",
            r.what,
            text.escape_debug()
        );
    }
}

#[test]
fn hostile_names_are_refused_at_load_with_exit_2_and_nothing_created() {
    let w = World::new(2);
    let base: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(w.inventory()).unwrap()).unwrap();
    let runbook = crate_path("runbooks/fernet-to-jws.yaml");
    let world_before = tree(&w.info.dir);
    let long = "n".repeat(64);
    let hostile = [
        "../../../../evil",
        "a/b",
        "x'y",
        "$(id)",
        "a`id`b",
        "-rf",
        "node\u{1b}]0;pwned\u{7}",
        "node\nname",
        long.as_str(),
    ];
    // Where a name can be: a node (and its HAProxy server key), a load balancer, a server.
    type Edit = fn(&mut serde_yaml::Value, &str);
    let places: [(&str, Edit); 3] = [
        ("nodes[].name", |inv, bad| {
            let old = inv["nodes"][0]["name"].as_str().unwrap().to_string();
            inv["nodes"][0]["name"] = bad.into();
            let servers = inv["load_balancers"][0]["servers"]
                .as_mapping_mut()
                .unwrap();
            let v = servers.remove(old.as_str()).unwrap();
            servers.insert(bad.into(), v);
        }),
        ("load_balancers[].name", |inv, bad| {
            inv["load_balancers"][0]["name"] = bad.into();
        }),
        ("load_balancers[].servers", |inv, bad| {
            let node = inv["nodes"][0]["name"].as_str().unwrap().to_string();
            inv["load_balancers"][0]["servers"][node.as_str()] = bad.into();
        }),
    ];
    for (field, edit) in places {
        for bad in hostile {
            // Every name for nodes; the other places with a few (the check is the same code).
            if field != "nodes[].name" && !matches!(bad, "../../../../evil" | "$(id)" | "-rf") {
                continue;
            }
            let cwd = tempfile::tempdir().unwrap();
            let mut inv = base.clone();
            edit(&mut inv, bad);
            let inv_path = cwd.path().join("inventory.yaml");
            fs::write(&inv_path, serde_yaml::to_string(&inv).unwrap()).unwrap();
            let inv_s = s(&inv_path);
            let mut cmds: Vec<Vec<&str>> = vec![vec!["plan", &runbook, "-i", &inv_s]];
            if field == "nodes[].name" {
                cmds.push(vec!["probe", "-i", &inv_s]);
                cmds.push(vec!["run", &runbook, "-i", &inv_s, "--headless"]);
            }
            for args in cmds {
                let r = cutover_in(cwd.path(), &args);
                assert_eq!(
                    r.code,
                    2,
                    "`{}` with {field} {bad:?} exited {}\n{}",
                    r.what,
                    r.code,
                    r.all()
                );
                assert!(
                    r.stderr.contains(field) && r.stderr.contains(&format!("{bad:?}")),
                    "`{}`: the error names {field} and the escaped value {bad:?}: {}",
                    r.what,
                    r.stderr
                );
                assert_no_escapes(&r);
                assert_eq!(
                    tree(cwd.path()),
                    vec![PathBuf::from("inventory.yaml")],
                    "`{}` with {field} {bad:?} created files (journal, lock, ...)",
                    r.what
                );
            }
            assert_eq!(tree(&w.info.dir), world_before, "the world was touched");
            assert!(!Path::new("/evil").exists() && !cwd.path().join("evil").exists());
        }
    }
}

#[test]
fn runbook_inventory_and_remote_text_reach_no_terminal_as_escapes() {
    let w = World::new(2);
    let evil_title = "Keystone \u{1b}]0;pwned\u{7}tokens \u{1b}[31mred";
    // A runbook whose title, first step title and first confirm carry escape sequences.
    let mut rb: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string("runbooks/fernet-to-jws.yaml").unwrap()).unwrap();
    rb["title"] = evil_title.into();
    rb["steps"][0]["title"] = "Pre\u{1b}[2Jflight\u{1b}]0;pwned\u{1b}\\".into();
    let confirm = rb["steps"][0]["do"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a.get("confirm").is_some())
        .expect("the flagship's preflight has a confirm")
        .get_mut("confirm")
        .unwrap();
    confirm["title"] = "JWS \u{1b}]0;pwned\u{7}signed \u{1b}[31m".into();
    confirm["message"] = "read \u{1b}]0;pwned\u{7}the \u{1b}[31mpayload\u{7}\n".into();
    let rb_path = w.scratch().join("evil-runbook.yaml");
    fs::write(&rb_path, serde_yaml::to_string(&rb).unwrap()).unwrap();
    // The inventory's cluster is free text; a node's keystone.conf is remote text.
    let mut inv: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(w.inventory()).unwrap()).unwrap();
    inv["cluster"] = "demo\u{1b}]0;pwned\u{7}\u{1b}[31m".into();
    let inv_path = w.scratch().join("evil-inventory.yaml");
    fs::write(&inv_path, serde_yaml::to_string(&inv).unwrap()).unwrap();
    let (rb_s, inv_s) = (s(&rb_path), s(&inv_path));

    // Headless, no answers: it stops at the first hard stop, printing the run's title, the step
    // title and the confirm's title and hazard.
    let journal = w.journal("evil.jsonl");
    let j = s(&journal);
    let run = w
        .run(&["run", &rb_s, "-i", &inv_s, "--headless", "--journal", &j])
        .expect(3);
    for shown in [
        "Keystone tokens red",
        "Preflight",
        "HARD STOP",
        "JWS signed",
        "payload?",
    ] {
        assert!(run.stdout.contains(shown), "no `{shown}` in {}", run.stdout);
    }
    assert_no_escapes(&run);
    for format in ["text", "markdown"] {
        let show = w
            .run(&["journal", "show", &j, "--format", format])
            .expect(0);
        assert!(show.stdout.contains("JWS signed"), "{}", show.stdout);
        assert_no_escapes(&show);
    }

    for format in ["text", "markdown"] {
        let plan = w
            .run(&["plan", &rb_s, "-i", &inv_s, "--format", format])
            .expect(0);
        assert!(plan.stdout.contains("Keystone"), "{}", plan.stdout);
        assert_no_escapes(&plan);
    }
    let conf_path = &w.info.nodes[0].keystone_conf;
    let conf = fs::read_to_string(conf_path).unwrap();
    fs::write(
        conf_path,
        format!("# \u{1b}]0;pwned\u{7}\n{conf}").replacen(
            "\nprovider = fernet\n",
            "\nprovider = fernet\u{1b}]0;pwned\u{7}\u{1b}[31m!\u{7}!\n",
            1,
        ),
    )
    .unwrap();
    let probe = w.run(&["probe", "-i", &inv_s]);
    assert!(
        probe.all().contains("fernet!?!"),
        "the probe shows the hostile conf's provider, made safe: {}",
        probe.all()
    );
    assert_no_escapes(&probe);
    let table_rows = probe.stdout.lines().count();
    assert!(table_rows > 2, "{}", probe.stdout);
}
