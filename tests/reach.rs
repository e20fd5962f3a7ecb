//! Unreachable is not down. A demo world whose node2 (and, for one test, node3) is reached over
//! SSH through a real OpenSSH sshd on 127.0.0.1 (the node's files are this machine's, so the
//! world's stand-ins serve it as usual), broken the ways a real fleet breaks: a changed host
//! key, an unknown one, sshd stopped, a login refused. `cutover probe` must show that node
//! UNREACHABLE with why, where and what to do (never "SERVICE DOWN": its Keystone answers),
//! read the others as usual and exit 5; a run must halt naming the host key, not a gate.
//! And keystone_url as clouds.yaml writes it (`.../v3`) must probe like the API root.
//!
//! Needs /usr/sbin/sshd, ssh-keygen and ssh-keyscan: a missing one FAILS the test with what to
//! install, it never skips.

use cutover::inventory::{Inventory, Reach, SshDefaults, SshTarget};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::bin::{BIN, Finished, output_files, run_to_end};
use support::sshd::{Sshd, keygen, whoami};

/// No single command may take longer than this (a hang fails the test instead of blocking it).
const DEADLINE: Duration = Duration::from_secs(90);

fn require_tools() {
    support::sshd::require_tools("REACH TESTS", &["ssh-keygen", "ssh-keyscan"]);
}

/// A demo world with some nodes reached over SSH: the client key, ssh_config and known_hosts
/// live in the world's scratch directory, and the inventory names them.
struct Fleet {
    tmp: tempfile::TempDir,
    inventory: PathBuf,
    /// node name → its sshd (nodes not listed stay `reach: local`).
    sshd: Vec<(String, Sshd)>,
}

impl Fleet {
    /// A 3-node world; `over_ssh` nodes are reached through their own sshd (host keys trusted
    /// when `trust`).
    fn new(over_ssh: &[&str], trust: bool) -> Fleet {
        require_tools();
        let tmp = tempfile::tempdir().unwrap();
        let info =
            cutover::world::create(&tmp.path().join("w"), &cutover::world::WorldSpec::default())
                .unwrap();
        let key = tmp.path().join("id_ed25519");
        keygen(&key, "");
        let known_hosts = tmp.path().join("known_hosts");
        std::fs::write(&known_hosts, "").unwrap();
        let mut sshd = Vec::new();
        let mut config = String::new();
        for name in over_ssh {
            let s = Sshd::start(&[&key], "");
            config.push_str(&format!(
                "Host {name}\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  IdentityAgent none\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
                s.port,
                whoami(),
                key.display(),
                known_hosts.display()
            ));
            if trust {
                cutover::transport::ssh::accept_host_key(
                    &known_hosts,
                    "127.0.0.1",
                    s.port,
                    &s.host_key_line(),
                )
                .unwrap();
            }
            sshd.push((name.to_string(), s));
        }
        let ssh_config = tmp.path().join("ssh_config");
        std::fs::write(&ssh_config, config).unwrap();
        let mut inv = Inventory::load(&info.inventory_path).unwrap();
        for n in &mut inv.nodes {
            if over_ssh.contains(&n.name.as_str()) {
                n.reach = Reach::Ssh(SshTarget::Alias(n.name.clone()));
            }
        }
        inv.ssh = Some(SshDefaults {
            config: Some(ssh_config),
            known_hosts: Some(known_hosts),
            connect_timeout_secs: Some(10),
            concurrency: None,
        });
        let inventory = tmp.path().join("inventory.yaml");
        std::fs::write(&inventory, serde_yaml::to_string(&inv).unwrap()).unwrap();
        Fleet {
            tmp,
            inventory,
            sshd,
        }
    }

    fn sshd(&mut self, node: &str) -> &mut Sshd {
        &mut self
            .sshd
            .iter_mut()
            .find(|(n, _)| n == node)
            .expect("a node over ssh")
            .1
    }

    fn known_hosts(&self) -> PathBuf {
        self.tmp.path().join("known_hosts")
    }

    fn inv(&self) -> String {
        self.inventory.display().to_string()
    }

    /// known_hosts holds another key for `node`'s sshd: the host key "changed".
    fn change_host_key(&mut self, node: &str) {
        let other = self.tmp.path().join(format!("other_{node}"));
        keygen(&other, "");
        let line = std::fs::read_to_string(other.with_extension("pub")).unwrap();
        let port = self.sshd(node).port;
        std::fs::write(self.known_hosts(), "").unwrap();
        for (n, s) in &self.sshd {
            let key = if n == node {
                line.clone()
            } else {
                s.host_key_line()
            };
            cutover::transport::ssh::accept_host_key(
                &self.known_hosts(),
                "127.0.0.1",
                if n == node { port } else { s.port },
                &key,
            )
            .unwrap();
        }
    }

    fn cutover(&self, args: &[&str]) -> Out {
        cutover(self.tmp.path(), args)
    }
}

type Out = Finished;

impl Out {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// With REACH_SHOW=1 (and --nocapture), every command and its output is printed: to read
/// what an operator would see.
fn show(out: &Out) {
    if std::env::var_os("REACH_SHOW").is_some() {
        eprintln!("$ {} (exit {})\n{}", out.what, out.code, out.all());
    }
}

/// Run `cutover ARGS` from the crate root, output to files (no pipe fills up), killed after
/// [`DEADLINE`].
fn cutover(scratch: &Path, args: &[&str]) -> Out {
    let (out_path, err_path) = output_files(scratch);
    let what = format!("cutover {}", args.join(" "));
    let out = run_to_end(
        Command::new(BIN)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK"),
        &what,
        &out_path,
        &err_path,
        DEADLINE,
    );
    show(&out);
    out
}

/// `node`'s row says UNREACHABLE (never DOWN: its Keystone answers); the `!` lines under it.
fn unreachable_why(table: &str, node: &str) -> String {
    let (r, under) = row(table, node);
    assert!(r.contains("UNREACHABLE") && !r.contains("DOWN"), "{r}");
    under.join("\n")
}

/// The table's row for `node` and the `!` lines under it.
fn row(table: &str, node: &str) -> (String, Vec<String>) {
    let mut lines = table
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{node} ")));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no row for {node} in\n{table}"))
        .to_string();
    let under = lines
        .take_while(|l| l.starts_with("           ! "))
        .map(|l| l.trim_start_matches("           ! ").to_string())
        .collect();
    (first, under)
}

/// A node read in full: provider, service up, Fernet keys, no problem line.
fn assert_read(table: &str, node: &str) {
    let (r, under) = row(table, node);
    let cells: Vec<&str> = r.split_whitespace().collect();
    assert_eq!(&cells[..5], &[node, "fernet", "up", "3", "keys"], "{table}");
    assert!(!r.contains("UNREACHABLE"), "{table}");
    assert!(under.is_empty(), "{node} has problems: {under:?}\n{table}");
}

#[test]
fn probe_shows_a_changed_host_key_as_unreachable_and_exits_5() {
    let mut f = Fleet::new(&["node2"], true);
    f.change_host_key("node2");
    let port = f.sshd("node2").port;
    let seen = f.sshd("node2").fingerprint();
    let kh = f.known_hosts().display().to_string();

    let out = f.cutover(&["probe", "-i", &f.inv()]).expect(5);
    let table = &out.stdout;
    assert_read(table, "node1");
    assert_read(table, "node3");
    let (r, under) = row(table, "node2");
    let cells: Vec<&str> = r.split_whitespace().collect();
    // Its Keystone answers over HTTP: unreachable over SSH, not down.
    assert_eq!(cells[..4], ["node2", "?", "up", "UNREACHABLE"], "{table}");
    assert!(!table.contains("DOWN"), "{table}");
    let why = under.join("\n");
    for want in [
        "UNREACHABLE: host key changed at 127.0.0.1 port ",
        &format!("port {port} (ssh alias node2)"),
        &seen,
        &kh,
        &format!("ssh-keygen -R '[127.0.0.1]:{port}' -f {kh}"),
        &format!("ssh-keyscan -p {port} 127.0.0.1 >> {kh}"),
    ] {
        assert!(why.contains(want), "no `{want}` in\n{why}");
    }
    // Its direct token is still asked for (over HTTP): the token cell says so.
    assert!(r.contains("fernet issue 201"), "{r}");
    assert!(
        out.stderr
            .contains("1 of 3 nodes could not be reached (cannot reach node2: host key changed)"),
        "{}",
        out.stderr
    );

    let out = f
        .cutover(&["probe", "-i", &f.inv(), "--format", "json"])
        .expect(5);
    let v: Value = serde_json::from_str(&out.stdout).expect("probe JSON");
    let u = &v["nodes"]["node2"]["unreachable"];
    assert_eq!(u["kind"], "host_key_changed", "{u}");
    assert_eq!(u["alias"], "node2", "{u}");
    assert_eq!(u["host"], "127.0.0.1", "{u}");
    assert_eq!(u["port"], port, "{u}");
    assert_eq!(u["known_hosts"], kh.as_str(), "{u}");
    assert_eq!(u["fingerprint"], seen.as_str(), "{u}");
    assert!(u["next"].as_str().unwrap().contains("ssh-keygen -R"), "{u}");
    assert_eq!(v["nodes"]["node2"]["service_up"], true, "{v:#}");
    for n in ["node1", "node3"] {
        assert!(v["nodes"][n].get("unreachable").is_none(), "{v:#}");
        assert_eq!(v["nodes"][n]["provider"], "fernet", "{v:#}");
    }
}

#[test]
fn probe_shows_a_stopped_sshd_as_connection_refused() {
    let mut f = Fleet::new(&["node2"], true);
    // Reachable first: the whole fleet reads, exit 0.
    let out = f.cutover(&["probe", "-i", &f.inv()]).expect(0);
    for n in ["node1", "node2", "node3"] {
        assert_read(&out.stdout, n);
    }
    let port = f.sshd("node2").port;
    f.sshd("node2").stop();
    let out = f.cutover(&["probe", "-i", &f.inv()]).expect(5);
    assert_read(&out.stdout, "node1");
    assert_read(&out.stdout, "node3");
    let why = unreachable_why(&out.stdout, "node2");
    assert!(
        why.contains(&format!(
            "UNREACHABLE: connection refused at 127.0.0.1 port {port} (ssh alias node2)"
        )),
        "{why}"
    );
    assert!(why.contains("start sshd on node2"), "{why}");
    let out = f
        .cutover(&["probe", "-i", &f.inv(), "--format", "json"])
        .expect(5);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["nodes"]["node2"]["unreachable"]["kind"], "connection_refused",
        "{v:#}"
    );
}

/// A host that accepts the TCP connection and never speaks SSH (a hung sshd, a firewall that
/// swallows the handshake): unreachable, timed out after the inventory's connect timeout.
#[test]
fn probe_shows_a_silent_host_as_timed_out() {
    let mut f = Fleet::new(&["node2"], true);
    let port = f.sshd("node2").port;
    f.sshd("node2").stop();
    let silent = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let held = std::thread::spawn(move || {
        // Hold every connection open without a word, until the test ends.
        let mut open = Vec::new();
        for c in silent.incoming().take(4) {
            open.push(c);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let mut inv = Inventory::load(&f.inventory).unwrap();
    inv.ssh.as_mut().unwrap().connect_timeout_secs = Some(2);
    std::fs::write(&f.inventory, serde_yaml::to_string(&inv).unwrap()).unwrap();
    let started = Instant::now();
    let out = f.cutover(&["probe", "-i", &f.inv()]).expect(5);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_read(&out.stdout, "node1");
    let why = unreachable_why(&out.stdout, "node2");
    assert!(
        why.contains(&format!(
            "UNREACHABLE: connection timed out at 127.0.0.1 port {port} (ssh alias node2): no answer within 2s"
        )),
        "{why}"
    );
    drop(held);
}

#[test]
fn probe_shows_a_refused_login_as_authentication_failed() {
    let mut f = Fleet::new(&["node2"], true);
    // sshd knows no key of ours any more.
    let authorized = f.sshd("node2").dir.path().join("authorized_keys");
    std::fs::write(&authorized, "").unwrap();
    let port = f.sshd("node2").port;
    let out = f.cutover(&["probe", "-i", &f.inv()]).expect(5);
    assert_read(&out.stdout, "node1");
    let (r, under) = row(&out.stdout, "node2");
    assert!(r.contains("UNREACHABLE"), "{r}");
    let why = under.join("\n");
    assert!(
        why.contains(&format!(
            "UNREACHABLE: authentication failed at 127.0.0.1 port {port} (ssh alias node2)"
        )),
        "{why}"
    );
    assert!(why.contains("ssh-add -l"), "{why}");
}

#[test]
fn probe_names_each_unknown_host_key_and_its_command_works() {
    let mut f = Fleet::new(&["node2", "node3"], false);
    let kh = f.known_hosts().display().to_string();
    let out = f.cutover(&["probe", "-i", &f.inv()]).expect(5);
    assert_read(&out.stdout, "node1");
    // One line per node, each with its alias, host, port and fingerprint, and the command.
    let mut commands = Vec::new();
    for n in ["node2", "node3"] {
        let port = f.sshd(n).port;
        let seen = f.sshd(n).fingerprint();
        let (r, under) = row(&out.stdout, n);
        assert!(r.contains("UNREACHABLE"), "{}", out.stdout);
        let why = under.join("\n");
        for want in [
            format!("UNREACHABLE: unknown host key at 127.0.0.1 port {port} (ssh alias {n})"),
            seen.clone(),
            format!("ssh-keyscan -p {port} 127.0.0.1 >> {kh}"),
            format!("-o UserKnownHostsFile={kh} {n} true"),
        ] {
            assert!(why.contains(&want), "no `{want}` in\n{why}");
        }
        commands.push(format!("ssh-keyscan -p {port} 127.0.0.1 >> {kh}"));
    }
    assert!(!out.all().contains("resume"), "{}", out.all());
    assert!(
        out.stderr.contains("2 of 3 nodes could not be reached"),
        "{}",
        out.stderr
    );
    // The printed command, run as printed, is all it takes.
    for c in commands {
        let st = Command::new("sh")
            .args(["-c", &c])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{c}");
    }
    let out = f.cutover(&["probe", "-i", &f.inv()]).expect(0);
    for n in ["node1", "node2", "node3"] {
        assert_read(&out.stdout, n);
    }
}

/// `cutover run fernet-to-jws` on `f` with the demo answers; the journal's records and the run.
fn run_flagship(f: &Fleet, journal: &Path) -> Out {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runbook = root.join("runbooks/fernet-to-jws.yaml");
    let answers = root.join("runbooks/demo-answers.yaml");
    f.cutover(&[
        "run",
        runbook.to_str().unwrap(),
        "-i",
        &f.inv(),
        "--headless",
        "--answers",
        answers.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ])
}

fn confs(f: &Fleet) -> Vec<(PathBuf, String)> {
    Inventory::load(&f.inventory)
        .unwrap()
        .nodes
        .iter()
        .map(|n| {
            (
                n.keystone_conf.clone(),
                std::fs::read_to_string(&n.keystone_conf).unwrap(),
            )
        })
        .collect()
}

fn assert_unchanged(before: &[(PathBuf, String)]) {
    for (path, text) in before {
        assert_eq!(
            &std::fs::read_to_string(path).unwrap(),
            text,
            "{} changed",
            path.display()
        );
    }
}

/// A changed host key stops a run before anything changes (the fleet lock cannot be taken on
/// that node), and what stops it is the host key, named as `probe` names it: where, the key it
/// presents, the `ssh-keygen -R` that fixes it; exit 5 (a node could not be reached), as probe.
#[test]
fn a_run_with_a_changed_host_key_stops_naming_the_host_key() {
    let mut f = Fleet::new(&["node2"], true);
    f.change_host_key("node2");
    let port = f.sshd("node2").port;
    let seen = f.sshd("node2").fingerprint();
    let kh = f.known_hosts().display().to_string();
    let before = confs(&f);
    let journal = f.tmp.path().join("run.jsonl");
    let out = run_flagship(&f, &journal).expect(5);
    assert_host_key_refusal(&out.stderr, port, &seen, &kh);
    assert!(!out.all().contains("providers-agree"), "{}", out.all());
    assert!(
        !out.all().contains("keystone.conf readable"),
        "{}",
        out.all()
    );
    assert_unchanged(&before);
    // Refused before anything: no journal, and no node keeps a lock (node1, locked before
    // node2 refused, was given back).
    assert!(
        !journal.exists(),
        "a journal was left: {}",
        journal.display()
    );
    assert_eq!(lock_files(&f), Vec::<PathBuf>::new());
}

/// The refusal names the node, the host key change with where and what it presents, and the
/// exact commands that fix it; and that nothing was changed.
fn assert_host_key_refusal(stderr: &str, port: u16, seen: &str, kh: &str) {
    for want in [
        format!(
            "cutover: cannot reach node2 to take the fleet lock: host key changed at 127.0.0.1 port {port} (ssh alias node2): its host key has CHANGED: it now presents {seen}"
        ),
        "nothing was changed".to_string(),
        format!("ssh-keygen -R '[127.0.0.1]:{port}' -f {kh}"),
        format!("ssh-keyscan -p {port} 127.0.0.1 >> {kh}"),
    ] {
        assert!(stderr.contains(&want), "no `{want}` in\n{stderr}");
    }
    // Not the transport's raw text.
    assert!(!stderr.contains("refusing to continue"), "{stderr}");
}

/// The fleet lock files that exist on the fleet's nodes.
fn lock_files(f: &Fleet) -> Vec<PathBuf> {
    Inventory::load(&f.inventory)
        .unwrap()
        .nodes
        .iter()
        .map(cutover::runtime::fleet_lock::lock_file)
        .filter(|p| p.exists())
        .collect()
}

/// A node that cannot be reached when a gate reads the fleet halts the run under its own
/// name (`cannot reach node2: connection refused ...`), not as the gate's failure with advice
/// about keystone.conf.
#[test]
fn a_run_halts_naming_the_unreachable_node_not_a_gate() {
    let mut f = Fleet::new(&["node2"], true);
    let port = f.sshd("node2").port;
    f.sshd("node2").stop();
    let before = confs(&f);
    let journal = f.tmp.path().join("run.jsonl");
    let out = run_flagship(&f, &journal).expect(4);
    let text = std::fs::read_to_string(&journal).unwrap();
    let halted: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "run_halted")
        .collect();
    assert_eq!(halted.len(), 1, "{text}");
    let d = &halted[0]["data"];
    let reason = d["reason"].as_str().unwrap();
    let next = d["next"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "cannot reach node2: connection refused at 127.0.0.1 port {port} (ssh alias node2)"
        )),
        "{reason}"
    );
    assert!(!reason.contains("providers-agree"), "{reason}");
    assert!(!next.contains("keystone.conf readable"), "{next}");
    assert!(next.contains("start sshd on node2"), "{next}");
    assert!(next.contains("resume"), "{next}");
    assert_eq!(d["node"], "node2", "{d}");
    // No gate is said to have failed: none was judged.
    assert!(!text.contains("\"gate_failed\""), "{text}");
    assert!(
        out.all().contains("cannot reach node2: connection refused"),
        "{}",
        out.all()
    );
    assert_unchanged(&before);
}

/// An unknown host key during a run is still a question for a person (hard stop
/// `unknown-host-key`, naming host and port), not a halt: unanswered, the run pauses (exit 3).
#[test]
fn a_run_asks_about_an_unknown_host_key() {
    let mut f = Fleet::new(&["node2"], false);
    let port = f.sshd("node2").port;
    let seen = f.sshd("node2").fingerprint();
    let before = confs(&f);
    let journal = f.tmp.path().join("run.jsonl");
    run_flagship(&f, &journal).expect(3);
    let text = std::fs::read_to_string(&journal).unwrap();
    let stop: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["kind"] == "hard_stop_raised")
        .unwrap_or_else(|| panic!("no hard stop in\n{text}"));
    let d = &stop["data"];
    assert_eq!(d["id"], "unknown-host-key", "{d}");
    assert_eq!(
        d["title"],
        format!("Unknown host key for 127.0.0.1:{port}"),
        "{d}"
    );
    assert!(d["hazard"].as_str().unwrap().contains(&seen), "{d}");
    assert!(!text.contains("\"run_halted\""), "{text}");
    assert_unchanged(&before);
}

/// keystone_url as every clouds.yaml auth_url has it (`/v3`, `/v3/`) probes and runs like the
/// API root, and the journal records the root.
#[test]
fn keystone_url_with_v3_probes_fine_against_the_demo_world() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("w");
    cutover(tmp.path(), &["world", "create", w.to_str().unwrap()]).expect(0);
    let inventory = w.join("inventory.yaml");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let mut roots = Vec::new();
    let mut i = 0;
    let versioned: String = text
        .lines()
        .map(|l| match l.strip_prefix("  keystone_url: ") {
            Some(url) => {
                roots.push(url.to_string());
                i += 1;
                let suffix = if i % 2 == 0 { "/v3/" } else { "/v3" };
                format!("  keystone_url: {url}{suffix}\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert_eq!(roots.len(), 3, "{text}");
    std::fs::write(&inventory, versioned).unwrap();
    let inv_s = inventory.to_str().unwrap();

    let out = cutover(tmp.path(), &["probe", "-i", inv_s]).expect(0);
    for n in ["node1", "node2", "node3"] {
        assert_read(&out.stdout, n);
        let (r, _) = row(&out.stdout, n);
        assert!(r.contains("fernet issue 201 validate 200"), "{r}");
    }
    let out = cutover(tmp.path(), &["probe", "-i", inv_s, "--format", "json"]).expect(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    for n in ["node1", "node2", "node3"] {
        assert_eq!(v["nodes"][n]["service_up"], true, "{v:#}");
        assert_eq!(v["tokens"][n]["issue_status"], 201, "{v:#}");
    }

    // A run records the root: its journal's inventory has no /v3. The first confirm is not
    // answered, so the run pauses there (exit 3) after the preflight gates passed.
    let answers = tmp.path().join("answers.yaml");
    std::fs::write(&answers, "mixed-pool: confirm\n").unwrap();
    let journal = tmp.path().join("run.jsonl");
    let runbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/fernet-to-jws.yaml");
    cutover(
        tmp.path(),
        &[
            "run",
            runbook.to_str().unwrap(),
            "-i",
            inv_s,
            "--headless",
            "--answers",
            answers.to_str().unwrap(),
            "--journal",
            journal.to_str().unwrap(),
        ],
    )
    .expect(3);
    let first: Value = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["kind"] == "run_started")
        .expect("a run_started record");
    let nodes = first["data"]["inventory"]["nodes"].as_array().unwrap();
    let recorded: Vec<&str> = nodes
        .iter()
        .map(|n| n["keystone_url"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, roots, "{first:#}");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains("\"gate\":\"pool-healthy\"") && !text.contains("\"gate_failed\""),
        "{text}"
    );
}

/// A keystone_url under which no Keystone lives is said to look wrong, not to be down.
#[test]
fn a_404_at_keystone_url_says_the_url_looks_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("w");
    cutover(tmp.path(), &["world", "create", w.to_str().unwrap()]).expect(0);
    let inventory = w.join("inventory.yaml");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let wrong: String = text
        .lines()
        .map(|l| match l.strip_prefix("  keystone_url: ") {
            Some(url) => format!("  keystone_url: {url}/identity\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&inventory, wrong).unwrap();
    let out = cutover(tmp.path(), &["probe", "-i", inventory.to_str().unwrap()]).expect(0);
    let (r, under) = row(&out.stdout, "node1");
    let cells: Vec<&str> = r.split_whitespace().collect();
    assert_eq!(cells[2], "404?", "{}", out.stdout);
    assert!(!r.contains("DOWN"), "{r}");
    assert!(r.contains("keystone_url looks wrong"), "{r}");
    assert!(
        under
            .iter()
            .any(|l| l.contains("answered 404") && l.contains("keystone_url looks wrong")),
        "{under:?}"
    );
}

/// A run paused while every host key was known; then node2's host key changes. The resume is
/// refused before anything (exit 5, the journal untouched, the run keeps its lock), saying the
/// commands that fix it; run as printed, they are all it takes for the resume to complete.
#[test]
fn a_resume_with_a_changed_host_key_is_refused_and_the_advice_fixes_it() {
    let mut f = Fleet::new(&["node2"], true);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runbook = root.join("runbooks/fernet-to-jws.yaml");
    let demo = root.join("runbooks/demo-answers.yaml");
    // No answer for the first hard stop: the run pauses there (exit 3), holding the fleet.
    let partial = f.tmp.path().join("partial-answers.yaml");
    std::fs::write(&partial, "mixed-pool: confirm\n").unwrap();
    let journal = f.tmp.path().join("run.jsonl");
    let j = journal.to_str().unwrap();
    f.cutover(&[
        "run",
        runbook.to_str().unwrap(),
        "-i",
        &f.inv(),
        "--headless",
        "--answers",
        partial.to_str().unwrap(),
        "--journal",
        j,
    ])
    .expect(3);
    assert_eq!(lock_files(&f).len(), 3, "the paused run holds every node");

    f.change_host_key("node2");
    let port = f.sshd("node2").port;
    let seen = f.sshd("node2").fingerprint();
    let kh = f.known_hosts().display().to_string();
    let before = confs(&f);
    let text_before = std::fs::read_to_string(&journal).unwrap();
    let out = f
        .cutover(&[
            "resume",
            j,
            "--headless",
            "--answers",
            demo.to_str().unwrap(),
        ])
        .expect(5);
    assert_host_key_refusal(&out.stderr, port, &seen, &kh);
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        text_before,
        "the journal changed"
    );
    assert_unchanged(&before);
    assert_eq!(
        lock_files(&f).len(),
        3,
        "the paused run still holds its lock"
    );

    // The two commands of the advice, as printed (the host's key really is the one it presents).
    for c in [
        format!("ssh-keygen -R '[127.0.0.1]:{port}' -f {kh}"),
        format!("ssh-keyscan -p {port} 127.0.0.1 >> {kh}"),
    ] {
        let st = Command::new("sh")
            .args(["-c", &c])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{c}");
    }
    f.cutover(&[
        "resume",
        j,
        "--headless",
        "--answers",
        demo.to_str().unwrap(),
    ])
    .expect(0);
    assert_eq!(
        lock_files(&f),
        Vec::<PathBuf>::new(),
        "the completed run gave the fleet back"
    );
}
