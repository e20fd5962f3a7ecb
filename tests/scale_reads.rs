//! The fewer round trips see what the many did (issue 12, items 1-3): on a demo world, checked
//! against the world's own files read by this test, never against what cutover reports alone.
//! - distributing public keys installs exactly every node's public key, whole, on every node;
//! - a node read in one exec reports what keystone.conf and the repositories hold, and follows
//!   the repositories when keystone.conf moves them between two reads;
//! - set_provider edits keystone.conf as it is on the node, not as it was last read;
//! - each gate's read is scoped (load balancers only, one node's token, ...) and mixed-pool
//!   judges its scoped read as it judges a read of everything.

mod support;

use cutover::drivers::Fleet;
use cutover::engine::action::{ActionSpec, Keys, Keystone, Misc};
use cutover::engine::facts::Observation;
use cutover::engine::gates::{self, Ctx, Verdict};
use cutover::inventory::KeyGen;
use cutover::runbook::Gate;
use cutover::world::{self, WorldInfo, WorldSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn new_world(nodes: usize, lbs: usize) -> (tempfile::TempDir, WorldInfo) {
    let tmp = tempfile::tempdir().unwrap();
    let info = world::create(&tmp.path().join("w"), &WorldSpec { nodes, lbs }).unwrap();
    (tmp, info)
}

async fn run(fleet: &Fleet, spec: impl Into<ActionSpec>) -> cutover::engine::events::Outcome {
    let spec = spec.into();
    let o = fleet.execute(1, 0, &spec).await;
    assert!(o.ok, "{spec:?}: {}", o.summary);
    o
}

/// The public half of `dir/private.pem`, as SubjectPublicKeyInfo DER, derived by this test.
fn public_der_of_private(dir: &Path) -> Vec<u8> {
    use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let pem = std::fs::read_to_string(dir.join("private.pem")).unwrap();
    let sk = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
    sk.public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

fn public_der(pem: &str) -> Vec<u8> {
    use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
    p256::PublicKey::from_public_key_pem(pem)
        .unwrap()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribute_installs_exactly_every_nodes_public_key_on_every_node() {
    let (_tmp, info) = new_world(5, 1);
    let handle = world::start(&info).await.unwrap();
    let fleet = Fleet::new(info.inventory().unwrap()).unwrap();
    let all: Vec<String> = info.nodes.iter().map(|n| n.name.clone()).collect();
    for n in &all {
        run(
            &fleet,
            Keys::CreateKeypair {
                node: n.clone(),
                keygen: KeyGen::Native,
            },
        )
        .await;
    }
    for n in &all {
        run(
            &fleet,
            Keys::InstallKeys {
                node: n.clone(),
                public: true,
            },
        )
        .await;
    }
    // As the engine runs them: every node's copy at once.
    let outcomes = futures::future::join_all(all.iter().map(|n| {
        let from: Vec<String> = all.iter().filter(|m| *m != n).cloned().collect();
        let spec: ActionSpec = Keys::DistributePublicKeys {
            node: n.clone(),
            from,
        }
        .into();
        let fleet = &fleet;
        async move { fleet.execute(1, 0, &spec).await }
    }))
    .await;
    for o in &outcomes {
        assert!(o.ok, "{}", o.summary);
    }

    // What is on disk, read by this test: each node's public repository holds exactly one
    // `<m>.pem` per node, each the public half of m's own private.pem, mode 0644.
    let want: BTreeMap<String, Vec<u8>> = info
        .nodes
        .iter()
        .map(|m| {
            (
                format!("{}.pem", m.name),
                public_der_of_private(&m.jws_private_repo),
            )
        })
        .collect();
    for node in &info.nodes {
        let repo = &node.jws_public_repo;
        assert_eq!(
            names(repo),
            want.keys().cloned().collect::<BTreeSet<_>>(),
            "{}",
            node.name
        );
        for (file, der) in &want {
            let pem = std::fs::read_to_string(repo.join(file)).unwrap();
            assert_eq!(&public_der(&pem), der, "{} on {}", file, node.name);
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(repo.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{file} on {}", node.name);
        }
        // Nothing left beside the repository by the copy.
        let parent = repo.parent().unwrap();
        assert!(
            !names(parent)
                .iter()
                .any(|n| n.starts_with(".cutover-incoming")),
            "{:?}",
            names(parent)
        );
        // And what the outcome reported for the node is what is there.
        let o = outcomes
            .iter()
            .find(|o| o.node.as_deref() == Some(node.name.as_str()))
            .unwrap();
        assert_eq!(o.observed.nodes[&node.name].jws.public.len(), want.len());
    }

    // keys-everywhere, on a fresh read of every node, passes.
    keys_everywhere_passes(&fleet, &info, "after the copy").await;

    // The nodes share this machine, so a fleet-wide read asks their stamps in one stat; each
    // change made here between two such reads (the test's own file operations) is seen on the
    // node it was made on, and the gate refuses, until it is undone.
    let (one, other) = (&info.nodes[1], &info.nodes[2]);
    let lost = one.jws_public_repo.join(format!("{}.pem", other.name));
    let kept = std::fs::read(&lost).unwrap();
    let conf_text = std::fs::read_to_string(&one.keystone_conf).unwrap();
    type Change = Box<dyn Fn(bool)>;
    let (lost2, kept2) = (lost.clone(), kept.clone());
    let private = one.jws_private_repo.join("private.pem");
    let conf = one.keystone_conf.clone();
    let changes: Vec<(&str, Change)> = vec![
        (
            "a public key removed",
            Box::new(move |undo| {
                if undo {
                    std::fs::write(&lost2, &kept2).unwrap()
                } else {
                    std::fs::remove_file(&lost2).unwrap()
                }
            }),
        ),
        (
            "private.pem made world-readable",
            Box::new(move |undo| {
                use std::os::unix::fs::PermissionsExt;
                let mode = if undo { 0o600 } else { 0o644 };
                std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode)).unwrap()
            }),
        ),
        (
            "keystone.conf pointed at another public repository",
            Box::new(move |undo| {
                let text = if undo {
                    conf_text.clone()
                } else {
                    format!(
                        "{conf_text}\n[jwt_tokens]\njws_public_key_repository = /nonexistent/public\n"
                    )
                };
                std::fs::write(&conf, text).unwrap()
            }),
        ),
    ];
    for (what, change) in &changes {
        change(false);
        let obs = probe(&fleet, Gate::KeysEverywhere, None, &info).await;
        match judge(Gate::KeysEverywhere, None, &obs, &info) {
            Verdict::Fail { reason, .. } => {
                assert!(reason.contains(&one.name), "{what}: {reason}")
            }
            v => panic!("{what}: the gate did not see it: {v:?}"),
        }
        change(true);
        keys_everywhere_passes(&fleet, &info, &format!("{what} undone")).await;
    }
    handle.shutdown().await;
}

/// keys-everywhere passes on a fresh read of every node (`when`: for the message).
async fn keys_everywhere_passes(fleet: &Fleet, info: &WorldInfo, when: &str) {
    let obs = probe(fleet, Gate::KeysEverywhere, None, info).await;
    let verdict = judge(Gate::KeysEverywhere, None, &obs, info);
    assert!(matches!(verdict, Verdict::Pass(_)), "{when}: {verdict:?}");
}

async fn probe(fleet: &Fleet, gate: Gate, node: Option<&str>, info: &WorldInfo) -> Observation {
    let inv = info.inventory().unwrap();
    let spec = gates::probe_for(gate, node, &inv);
    let o = fleet.execute(1, 0, &spec).await;
    assert!(o.ok, "{}", o.summary);
    o.observed
}

fn judge(gate: Gate, node: Option<&str>, obs: &Observation, info: &WorldInfo) -> Verdict {
    let inv = info.inventory().unwrap();
    let params = BTreeMap::new();
    let guarded = BTreeSet::new();
    let ctx = Ctx {
        inv: &inv,
        target: "jws",
        params: &params,
        expiration: 3600,
        allow_expired_window: 0,
        guarded: &guarded,
    };
    gates::evaluate(gate, node, obs, &ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_read_in_one_exec_follows_its_conf_and_set_provider_keeps_edits_made_meanwhile() {
    let (_tmp, info) = new_world(2, 1);
    let handle = world::start(&info).await.unwrap();
    let fleet = Fleet::new(info.inventory().unwrap()).unwrap();
    let node = &info.nodes[0];
    let f = fleet.node_facts(&node.name).await.unwrap();
    assert_eq!(f.provider.as_deref(), Some("fernet"));
    assert_eq!(
        f.fernet.repo.trim_end_matches('/'),
        node.fernet_repo.display().to_string().trim_end_matches('/')
    );
    // The Fernet keys as this test counts them.
    assert_eq!(f.fernet.keys, names(&node.fernet_repo).len());
    assert!(f.fernet.keys > 0);
    assert!(f.jws.public.is_empty());
    // Read again with nothing changed (the key files' stamp matches: not read whole), then
    // after a key is added by hand: the first as before, the second sees the key.
    let again = fleet.node_facts(&node.name).await.unwrap();
    assert_eq!(format!("{again:?}"), format!("{f:?}"));
    let (_, by_hand) = cutover::drivers::keys::generate_es256().unwrap();
    std::fs::write(node.jws_public_repo.join("by-hand.pem"), &by_hand).unwrap();
    let seen = fleet.node_facts(&node.name).await.unwrap();
    assert_eq!(seen.jws.public.len(), 1);
    assert_eq!(
        seen.jws.public[0].fingerprint,
        cutover::drivers::keys::public_fingerprint(&by_hand).unwrap()
    );
    // Replaced under the same name with the same size (a rename: another inode).
    let (_, other) = cutover::drivers::keys::generate_es256().unwrap();
    assert_eq!(other.len(), by_hand.len());
    std::fs::write(node.jws_public_repo.join("x.tmp"), &other).unwrap();
    std::fs::rename(
        node.jws_public_repo.join("x.tmp"),
        node.jws_public_repo.join("by-hand.pem"),
    )
    .unwrap();
    let seen = fleet.node_facts(&node.name).await.unwrap();
    assert_eq!(
        seen.jws.public[0].fingerprint,
        cutover::drivers::keys::public_fingerprint(&other).unwrap()
    );
    std::fs::remove_file(node.jws_public_repo.join("by-hand.pem")).unwrap();

    // keystone.conf moves the public repository to a directory holding one key: the next read
    // (at the remembered paths first) must report that directory and its key.
    let moved = node.dir.join("elsewhere-public");
    std::fs::create_dir_all(&moved).unwrap();
    let (_, pem) = cutover::drivers::keys::generate_es256().unwrap();
    std::fs::write(moved.join("x.pem"), &pem).unwrap();
    let conf = std::fs::read_to_string(&node.keystone_conf).unwrap();
    let edited = conf.replace(
        &format!(
            "jws_public_key_repository = {}",
            node.jws_public_repo.display()
        ),
        &format!("jws_public_key_repository = {}", moved.display()),
    );
    assert_ne!(edited, conf, "the world's conf names its public repository");
    std::fs::write(&node.keystone_conf, &edited).unwrap();
    let f = fleet.node_facts(&node.name).await.unwrap();
    assert_eq!(f.jws.public_repo, moved.display().to_string());
    assert_eq!(f.jws.public.len(), 1);
    assert_eq!(
        f.jws.public[0].fingerprint,
        cutover::drivers::keys::public_fingerprint(&pem).unwrap()
    );

    // Someone edits keystone.conf after cutover read it: set_provider keeps that edit.
    let by_hand = format!("{edited}\n# added by hand after the read\n");
    std::fs::write(&node.keystone_conf, &by_hand).unwrap();
    run(
        &fleet,
        Keystone::SetProvider {
            node: node.name.clone(),
            provider: "jws".into(),
        },
    )
    .await;
    let now = std::fs::read_to_string(&node.keystone_conf).unwrap();
    assert!(now.contains("# added by hand after the read"), "{now}");
    assert_eq!(
        cutover::drivers::keystone::conf::get(&now, "token", "provider").as_deref(),
        Some("jws")
    );
    // The backup beside it is the conf as it was just before (with the hand edit).
    let backups: Vec<_> = names(node.keystone_conf.parent().unwrap())
        .into_iter()
        .filter(|n| n.starts_with("keystone.conf.cutover-") && !n.contains("new"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = node.keystone_conf.parent().unwrap().join(&backups[0]);
    assert_eq!(std::fs::read_to_string(backup).unwrap(), by_hand);
    // Already set: nothing written, no second backup.
    run(
        &fleet,
        Keystone::SetProvider {
            node: node.name.clone(),
            provider: "jws".into(),
        },
    )
    .await;
    assert_eq!(std::fs::read_to_string(&node.keystone_conf).unwrap(), now);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_reads_are_scoped_and_mixed_pool_judges_its_read_as_a_full_one() {
    let (_tmp, info) = new_world(3, 2);
    let handle = world::start(&info).await.unwrap();
    let inv = info.inventory().unwrap();
    let all = inv.node_names();
    let read = |gate: Gate, node: Option<&str>| match gates::probe_for(gate, node, &inv) {
        ActionSpec::Misc(Misc::Probe {
            nodes,
            lb,
            tokens,
            providers,
            ..
        }) => (nodes, lb, tokens, providers),
        other => panic!("{other:?}"),
    };
    // The load balancers only.
    for g in [Gate::OutOfPool, Gate::PoolCapacity, Gate::InPool] {
        assert_eq!(
            read(g, Some("node2")),
            (vec![], true, vec![], vec![]),
            "{g:?}"
        );
    }
    // That node's token only.
    assert_eq!(
        read(Gate::ValidatedBeforeReadd, Some("node2")),
        (vec![], false, vec!["node2".to_string()], vec![])
    );
    // Every pooled node's provider, from a token issued there (not validated), and the rows:
    // no node's files.
    assert_eq!(
        read(Gate::MixedPool, Some("node2")),
        (vec![], true, vec![], all.clone())
    );
    // Every node's keys.
    assert_eq!(
        read(Gate::KeysEverywhere, None),
        (all.clone(), false, vec![], vec![])
    );

    // node2 flipped to jws and restarted, out of the pool (as before its re-add): mixed-pool on
    // its scoped read asks exactly as on a read of every node's files, tokens and rows.
    let fleet = Fleet::new(inv.clone()).unwrap();
    let node2 = &info.nodes[1];
    let everyone: Vec<&world::WorldNode> = info.nodes.iter().collect();
    for n in &info.nodes {
        support::world::install_jws_keypair(n, &everyone);
    }
    let drain: ActionSpec = cutover::engine::action::Lb::Drain {
        node: "node2".into(),
        timeout_secs: 30,
    }
    .into();
    let o = fleet.execute(1, 0, &drain).await;
    assert!(o.ok, "{}", o.summary);
    run(
        &fleet,
        Keystone::SetProvider {
            node: node2.name.clone(),
            provider: "jws".into(),
        },
    )
    .await;
    let restart: ActionSpec = cutover::engine::action::Service::Restart {
        node: "node2".into(),
        timeout_secs: 60,
    }
    .into();
    let o = fleet.execute(1, 0, &restart).await;
    assert!(o.ok, "{}", o.summary);
    let scoped = probe(&fleet, Gate::MixedPool, Some("node2"), &info).await;
    assert!(scoped.nodes.is_empty());
    let full = fleet
        .probe(&all, true, &all, &[], false)
        .await
        .ok()
        .unwrap()
        .observed;
    assert_eq!(full.nodes.len(), 3);
    let a = judge(Gate::MixedPool, Some("node2"), &scoped, &info);
    let b = judge(Gate::MixedPool, Some("node2"), &full, &info);
    match (&a, &b) {
        (Verdict::Ask { facts: fa, .. }, Verdict::Ask { facts: fb, .. }) => assert_eq!(fa, fb),
        _ => panic!("{a:?} / {b:?}"),
    }
    handle.shutdown().await;
}

/// A node's last token answers a probe only while what it stands on holds (issue 12, item 1):
/// its provider while its keystone.conf is unchanged, its validation while its key files are
/// too, and never past a restart by cutover or for a gate that asks for a token now. Checked
/// against the world's own record of what each node's Keystone runs (`run/provider`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_last_token_answers_a_probe_only_while_its_files_are_unchanged() {
    let (_tmp, info) = new_world(3, 2);
    let handle = world::start(&info).await.unwrap();
    let inv = info.inventory().unwrap();
    let all = inv.node_names();
    let fleet = Fleet::new(inv.clone()).unwrap();
    let everyone: Vec<&world::WorldNode> = info.nodes.iter().collect();
    for n in &info.nodes {
        support::world::install_jws_keypair(n, &everyone);
    }
    let kept = |obs: &Observation, n: &str| obs.tokens[n].kept_since.is_some();
    // What each token says is what the node runs, by the world's own record.
    let runs_as_recorded = |obs: &Observation, when: &str| {
        for n in &info.nodes {
            if let Some(t) = obs.tokens.get(&n.name) {
                assert_eq!(
                    t.format.as_str(),
                    support::world::provider(n),
                    "{when}: {}: {t:?}",
                    n.name
                );
            }
        }
    };

    // A full read: every node's files, and a token issued (unscoped) and validated at each.
    let full = fleet
        .probe(&all, true, &all, &[], false)
        .await
        .ok()
        .unwrap()
        .observed;
    for n in &all {
        let t = &full.tokens[n];
        assert!(t.validated() && t.unscoped && !kept(&full, n), "{t:?}");
    }
    runs_as_recorded(&full, "full read");

    // Nothing changed since: mixed-pool and all-target keep every node's token.
    let mixed = probe(&fleet, Gate::MixedPool, Some("node1"), &info).await;
    let target = probe(&fleet, Gate::AllTarget, None, &info).await;
    for n in &all {
        assert!(
            kept(&mixed, n) && kept(&target, n),
            "{n}: {mixed:?} {target:?}"
        );
        assert!(target.tokens[n].validated());
    }
    runs_as_recorded(&mixed, "nothing changed");
    // validated-before-readd asks the node now, every time.
    for _ in 0..2 {
        let obs = probe(&fleet, Gate::ValidatedBeforeReadd, Some("node1"), &info).await;
        assert!(!kept(&obs, "node1"), "{obs:?}");
    }

    // Behind cutover's back, node3's keystone.conf flips to jws and its Keystone restarts
    // (its own restart script, not cutover): the next mixed-pool read asks node3 again and
    // sees jws; the others' tokens stand.
    let node3 = &info.nodes[2];
    let conf = std::fs::read_to_string(&node3.keystone_conf).unwrap();
    assert!(conf.contains("\nprovider = fernet\n"), "{conf}");
    std::fs::write(
        &node3.keystone_conf,
        conf.replace("\nprovider = fernet\n", "\nprovider = jws\n"),
    )
    .unwrap();
    let out = std::process::Command::new("sh")
        .arg(&node3.restart)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(support::world::answers(node3) && support::world::provider(node3) == "jws") {
        assert!(
            std::time::Instant::now() < deadline,
            "node3 did not come back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mixed = probe(&fleet, Gate::MixedPool, Some("node1"), &info).await;
    assert!(!kept(&mixed, "node3"), "{mixed:?}");
    assert_eq!(mixed.tokens["node3"].format.as_str(), "jws");
    assert!(kept(&mixed, "node1") && kept(&mixed, "node2"), "{mixed:?}");
    runs_as_recorded(&mixed, "node3 flipped behind cutover's back");

    // A key file of node1 changes: its provider still stands, its validation does not.
    let node1 = &info.nodes[0];
    std::fs::copy(
        node1.jws_public_repo.join("node2.pem"),
        node1.jws_public_repo.join("extra.pem"),
    )
    .unwrap();
    let mixed = probe(&fleet, Gate::MixedPool, Some("node2"), &info).await;
    assert!(kept(&mixed, "node1"), "{mixed:?}");
    let target = probe(&fleet, Gate::AllTarget, None, &info).await;
    assert!(!kept(&target, "node1") && target.tokens["node1"].validated());
    assert!(kept(&target, "node2"), "{target:?}");
    runs_as_recorded(&target, "node1's keys changed");

    // cutover restarts node2: node2 proves itself again.
    let restart = cutover::engine::action::Service::Restart {
        node: "node2".into(),
        timeout_secs: 60,
    };
    run(&fleet, restart).await;
    let mixed = probe(&fleet, Gate::MixedPool, Some("node1"), &info).await;
    assert!(!kept(&mixed, "node2") && kept(&mixed, "node1"), "{mixed:?}");

    // An edit of keystone.conf that keeps the provider is an edit all the same: asked again.
    let mut conf = std::fs::read_to_string(&node1.keystone_conf).unwrap();
    conf.push_str("\n# edited by hand\n");
    std::fs::write(&node1.keystone_conf, conf).unwrap();
    let mixed = probe(&fleet, Gate::MixedPool, Some("node2"), &info).await;
    assert!(!kept(&mixed, "node1"), "{mixed:?}");
    runs_as_recorded(&mixed, "node1's conf edited");
    handle.shutdown().await;
}
