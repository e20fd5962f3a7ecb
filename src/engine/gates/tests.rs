//! The gates' unit tests.

use super::*;

fn inv() -> Inventory {
    Inventory::parse(
        "cluster: c\nnodes:\n  - {name: node1, reach: local, keystone_url: 'http://127.0.0.1:1'}\n  - {name: node2, reach: {ssh: node2}, keystone_url: 'http://127.0.0.1:2'}\n  - {name: node3, reach: {ssh: node3}, keystone_url: 'http://127.0.0.1:3'}\n",
        "i.yaml",
    )
    .unwrap()
}

fn unreachable(kind: ReachFailure, alias: &str) -> Unreachable {
    Unreachable {
        kind,
        alias: alias.into(),
        host: "127.0.0.1".into(),
        port: 2222,
        known_hosts: None,
        fingerprint: None,
        reason: "why".into(),
        next: format!("fix {alias}"),
    }
}

/// `f` given the context of a move to jws over [`inv`], nothing guarded.
fn with_ctx<T>(f: impl FnOnce(&Ctx) -> T) -> T {
    let inv = inv();
    let params = BTreeMap::new();
    let guarded = BTreeSet::new();
    f(&Ctx {
        inv: &inv,
        target: "jws",
        params: &params,
        expiration: 3600,
        allow_expired_window: 0,
        guarded: &guarded,
    })
}

/// Every gate that reads nodes halts on an unreachable one under its own name, before
/// judging anything (a providers-agree failure with keystone.conf advice is not it).
#[test]
fn an_unreachable_node_is_not_a_gate_failure() {
    with_ctx(|ctx| {
        let read = NodeFacts {
            provider: Some("fernet".into()),
            service_up: true,
            ..Default::default()
        };
        let mut obs = Observation::default();
        obs.nodes.insert("node1".into(), read.clone());
        obs.nodes.insert(
            "node3".into(),
            NodeFacts::unreachable(unreachable(ReachFailure::ConnectionRefused, "node3")),
        );
        obs.nodes.insert(
            "node2".into(),
            NodeFacts::unreachable(unreachable(ReachFailure::HostKeyChanged, "node2")),
        );
        for gate in [
            Gate::ProvidersAgree,
            Gate::NotOnTarget,
            Gate::PoolHealthy,
            Gate::KeysEverywhere,
            Gate::FernetKeysEverywhere,
            Gate::MixedPool,
        ] {
            match evaluate(gate, None, &obs, ctx) {
                Verdict::Unreachable { node, reason, next } => {
                    assert_eq!(node, "node2", "{gate:?}");
                    assert!(
                        reason.starts_with(
                            "cannot reach node2: host key changed at 127.0.0.1 port 2222 (ssh alias node2): why; cannot reach node3: connection refused"
                        ),
                        "{reason}"
                    );
                    assert!(!reason.contains("gate"), "{reason}");
                    assert_eq!(
                        next,
                        "node2: fix node2; node3: fix node3; then resume (cutover resume JOURNAL)"
                    );
                }
                other => panic!("{gate:?}: {other:?}"),
            }
        }
        // Reachable again: the gate is judged as before.
        obs.nodes.insert("node2".into(), read.clone());
        obs.nodes.insert("node3".into(), read);
        assert!(matches!(
            evaluate(Gate::ProvidersAgree, None, &obs, ctx),
            Verdict::Pass(_)
        ));
    })
}

/// providers-agree judges what each node runs where the probe asked it for a token: a node
/// whose keystone.conf says one provider while its Keystone issues the other (the conf edited
/// since its last start) fails it, though every conf agrees.
#[test]
fn a_node_that_runs_other_than_its_conf_says_fails_providers_agree() {
    with_ctx(|ctx| {
        let mut obs = Observation::default();
        for n in ["node1", "node2", "node3"] {
            let facts = NodeFacts {
                provider: Some("fernet".into()),
                service_up: true,
                ..Default::default()
            };
            obs.nodes.insert(n.into(), facts);
            let token = TokenCheck {
                node: n.into(),
                format: TokenFormat::Fernet,
                issue_status: 201,
                validate_status: Some(200),
                ..Default::default()
            };
            obs.tokens.insert(n.into(), token);
        }
        assert!(matches!(
            evaluate(Gate::ProvidersAgree, None, &obs, ctx),
            Verdict::Pass(_)
        ));
        obs.tokens.get_mut("node2").unwrap().format = TokenFormat::Jws;
        match evaluate(Gate::ProvidersAgree, None, &obs, ctx) {
            Verdict::Fail { reason, next } => {
                assert_eq!(
                    reason,
                    "node2's keystone.conf says fernet but its Keystone issues jws tokens: the conf was changed since Keystone last started there"
                );
                assert!(next.starts_with("put node2's keystone.conf back"), "{next}");
            }
            other => panic!("{other:?}"),
        }
        // No token read there: the conf is all it judges.
        obs.tokens.remove("node2");
        assert!(matches!(
            evaluate(Gate::ProvidersAgree, None, &obs, ctx),
            Verdict::Pass(_)
        ));
    })
}

/// mixed-pool's question says where a pooled node's provider came from when its token was
/// kept (not asked again): its time, and that keystone.conf is unchanged since.
#[test]
fn mixed_pool_names_a_kept_token_in_its_facts() {
    with_ctx(|ctx| {
        let mut obs = Observation::default();
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-02T17:09:43Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        for (n, format, kept) in [
            ("node1", TokenFormat::Jws, None),
            ("node2", TokenFormat::Fernet, Some(at)),
            ("node3", TokenFormat::Fernet, None),
        ] {
            let t = TokenCheck {
                node: n.into(),
                format,
                issue_status: 201,
                kept_since: kept,
                ..Default::default()
            };
            obs.tokens.insert(n.into(), t);
        }
        obs.lb = Some(
            ["node1", "node2", "node3"]
                .iter()
                .map(|n| LbServer {
                    lb: "haproxy-1".into(),
                    node: n.to_string(),
                    server: n.to_string(),
                    admin: if *n == "node1" {
                        AdminState::Maint
                    } else {
                        AdminState::Ready
                    },
                    held: false,
                    oper: OperState::Up,
                    status: if *n == "node1" { "MAINT" } else { "UP" }.into(),
                    sessions: 0,
                })
                .collect(),
        );
        match evaluate(Gate::MixedPool, Some("node1"), &obs, ctx) {
            Verdict::Ask { facts, .. } => {
                assert!(
                    facts.contains(
                        &"node2: fernet, in the pool (its token of 17:09:43, keystone.conf unchanged since)"
                            .to_string()
                    ),
                    "{facts:?}"
                );
                assert!(
                    facts.contains(&"node3: fernet, in the pool".to_string()),
                    "{facts:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    })
}
