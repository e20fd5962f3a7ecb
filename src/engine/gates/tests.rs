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

/// Every gate that reads nodes halts on an unreachable one under its own name, before
/// judging anything (a providers-agree failure with keystone.conf advice is not it).
#[test]
fn an_unreachable_node_is_not_a_gate_failure() {
    let inv = inv();
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
        match evaluate(gate, None, &obs, &ctx) {
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
        evaluate(Gate::ProvidersAgree, None, &obs, &ctx),
        Verdict::Pass(_)
    ));
}
