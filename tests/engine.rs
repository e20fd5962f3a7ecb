//! Engine tests in the given/when/then style: given events, when a command, then events and
//! effects. The shared fake fleet (tests/support/fleet.rs) answers effects so scenarios read
//! like real runs; the harness is tests/support/engine.rs.

mod support;

use chrono::{DateTime, Duration, Utc};
use cutover::engine::Refused;
use cutover::engine::action::ActionSpec;
use cutover::engine::action::Keys;
use cutover::engine::events::*;
use cutover::engine::facts::*;
use cutover::engine::plan::OpKind;
use cutover::engine::state::RunStatus;
use cutover::inventory::Inventory;
use cutover::runbook::{Gate, Runbook};
use std::collections::BTreeMap;
use support::engine::{Run, actions, fold, given, run_started, t0, who};
use support::fleet::fp;

const ALL: &[&str] = &["jws-payload-readable", "mixed-pool"];

#[test]
fn a_healthy_run_completes_and_the_pool_is_never_mixed_unconfirmed() {
    let mut r = Run::start();
    r.run_until_stopped(ALL);
    assert_eq!(
        r.state.status,
        RunStatus::Completed,
        "log: {:#?}",
        r.state.log.last()
    );
    assert!(r.fleet.conf.values().all(|p| p == "jws"));
    // Two mixed-pool hard stops (ks1 and ks2 rejoin a pool that still has fernet nodes); ks3 none.
    let mixed: Vec<_> = r
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::HardStopRaised(h) if h.id == "mixed-pool" => h.node.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(mixed, vec!["ks1".to_string(), "ks2".to_string()]);
    // Every confirmation records who and a hash of what was shown.
    for (_, e) in &r.events {
        if let Event::HardStopConfirmed {
            who, state_sha256, ..
        } = e
        {
            assert_eq!(who.user, "alice");
            assert_eq!(state_sha256.len(), 64);
        }
    }
    assert!(r.state.old_tokens_irrelevant_at().is_some());
}

#[test]
fn flipping_a_pooled_node_is_refused() {
    let mut r = Run::start();
    r.fleet.lb_ignores_maint = true; // as after an HAProxy reload without a server-state file
    r.run_to_gate(Gate::OutOfPool, Some("ks1"), ALL);
    let d = r.settle_one().unwrap();
    // ks1 was drained by cutover: back in the pool is a breach to repair, not a flip.
    assert_eq!(
        Run::kinds(&d),
        vec![
            "outcome",
            "pool_breach",
            "pool_breach",
            "intent",
            "hard_stop_raised"
        ]
    );
    assert_eq!(
        actions(&d),
        vec!["lb.maint"],
        "only the repair may follow a failed out-of-pool gate"
    );
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "pool-breach");
    // The load balancer ignores maint: the repair fails and the run halts.
    let d = r.settle_one().unwrap();
    assert_eq!(Run::kinds(&d), vec!["outcome", "run_halted"]);
    assert!(
        matches!(&r.state.status, RunStatus::Halted { reason, .. } if reason.contains("still in the pool")),
        "{:?}",
        r.state.status
    );
    assert_eq!(r.fleet.conf["ks1"], "fernet");
    // Advancing again does nothing while halted.
    r.given().when(Command::Advance).then_expect_nothing();
    assert!(
        r.events
            .iter()
            .all(|(_, e)| !matches!(e, Event::Intent(i) if i.action == "keystone.set_provider")),
        "no flip was ever intended"
    );
}

#[test]
fn a_guarded_action_without_its_gate_is_refused_even_if_the_plan_lacks_it() {
    let mut r = Run::start();
    r.run_to_gate(Gate::OutOfPool, Some("ks1"), ALL);
    // Forge a plan in which the gate op before the flip is something else: the engine itself
    // must still refuse the flip.
    let cursor = r.state.cursor;
    let flip = r
        .state
        .plan
        .iter()
        .position(
            |o| matches!(&o.kind, OpKind::Act { action, .. } if action == "keystone.set_provider"),
        )
        .unwrap();
    r.pending.clear();
    r.state.in_flight.clear();
    std::sync::Arc::make_mut(&mut r.state.plan)[flip - 1].kind = OpKind::Note {
        message: "forged".into(),
    };
    r.state.cursor = flip;
    assert!(cursor < flip);
    let d = r.when(Command::Advance);
    assert!(actions(&d).is_empty(), "{:?}", actions(&d));
    assert!(
        matches!(&r.state.status, RunStatus::Halted { reason, .. } if reason.starts_with("refused")),
        "{:?}",
        r.state.status
    );
}

#[test]
fn flipping_before_keys_are_everywhere_is_refused() {
    let mut r = Run::start();
    r.run_to_gate(Gate::KeysEverywhere, None, ALL);
    // ks3 lost ks1's public key after the keys step.
    r.fleet
        .public
        .get_mut("ks3")
        .unwrap()
        .retain(|k| k.fingerprint != fp("ks1"));
    let d = r.settle_one().unwrap();
    assert_eq!(Run::kinds(&d), vec!["outcome", "gate_failed", "run_halted"]);
    assert!(
        matches!(&r.state.status, RunStatus::Halted { reason, .. } if reason.contains("ks3 lacks ks1's public key")),
        "{:?}",
        r.state.status
    );
    assert!(r.fleet.conf.values().all(|p| p == "fernet"));
}

#[test]
fn rejoining_an_unvalidated_node_is_refused() {
    let mut r = Run::start();
    r.run_to_gate(Gate::MixedPool, Some("ks1"), ALL);
    assert!(
        r.state
            .gates_passed
            .iter()
            .any(|&i| r.state.plan[i].node.as_deref() == Some("ks1")
                && matches!(
                    r.state.plan[i].kind,
                    OpKind::Gate {
                        gate: Gate::ValidatedBeforeReadd,
                        ..
                    }
                )),
        "validated-before-readd passed on ks1's token check"
    );
    // Between its token check and the re-add, ks1 went back to fernet (someone restarted it
    // with an old config): mixed-pool's read, which asks ks1 for a token again, must catch it.
    r.fleet.running.insert("ks1".into(), "fernet".into());
    let d = r.settle_one().unwrap();
    assert_eq!(Run::kinds(&d), vec!["outcome", "gate_failed", "run_halted"]);
    assert!(
        matches!(&r.state.status, RunStatus::Halted { reason, .. } if reason.contains("ks1 answered fernet") && reason.contains("changed since its token check")),
        "{:?}",
        r.state.status
    );
    assert!(actions(&d).is_empty());
    assert!(
        r.fleet
            .admin
            .iter()
            .filter(|((_, n), _)| n == "ks1")
            .all(|(_, a)| *a == AdminState::Maint),
        "ks1 stays out of the pool"
    );
}

#[test]
fn a_node_whose_restart_does_not_take_halts_before_rejoining() {
    let mut r = Run::start();
    r.fleet.restart_keeps_old_provider = true;
    r.run_until_stopped(ALL);
    assert!(
        matches!(&r.state.status, RunStatus::Halted { reason, .. } if reason.contains("keystone.issue_token failed on ks1")),
        "{:?}",
        r.state.status
    );
    assert!(
        r.fleet
            .admin
            .iter()
            .filter(|((_, n), _)| n == "ks1")
            .all(|(_, a)| *a == AdminState::Maint)
    );
}

#[test]
fn mixing_the_pool_needs_a_deliberate_confirmation() {
    let mut r = Run::start();
    r.run_to_gate(Gate::MixedPool, Some("ks1"), ALL);
    let d = r.settle_one().unwrap();
    // validated-before-readd passed on the token check's read; mixed-pool's own read asks.
    assert_eq!(Run::kinds(&d), vec!["outcome", "hard_stop_raised"]);
    let hs = r.state.hard_stop.clone().unwrap();
    assert_eq!(hs.id, "mixed-pool");
    assert!(
        hs.consequence.contains("intermittent 401s"),
        "{}",
        hs.consequence
    );
    assert!(
        hs.consequence.contains("1h") && hs.consequence.contains("48h"),
        "{}",
        hs.consequence
    );
    assert!(hs.facts.iter().any(|f| f.contains("ks2: fernet")));
    // Nothing moves on its own.
    r.given().when(Command::Advance).then_expect_nothing();
    // A confirmation for another id is refused.
    r.given()
        .when(Command::Confirm {
            id: "other".into(),
            who: who(),
        })
        .then_expect_error(Refused::NoSuchHardStop("other".into()));
    // Declining pauses, nothing is re-added.
    let d = r.when(Command::Decline {
        id: "mixed-pool".into(),
        who: who(),
    });
    assert_eq!(Run::kinds(&d), vec!["hard_stop_declined"]);
    assert!(matches!(r.state.status, RunStatus::Paused { .. }));
    assert!(d.effects.is_empty());
    // Resuming re-checks on a fresh probe and asks again.
    let d = r.when(Command::Resume {
        who: who(),
        drift: vec![],
        observed: Observation::default(),
    });
    assert_eq!(actions(&d), vec!["probe"]);
    // (the gates before the re-add are judged again: validated-before-readd on a token check
    // of its own now, then mixed-pool on its read)
    let d = r.settle_one().unwrap();
    assert_eq!(Run::kinds(&d), vec!["outcome", "gate_passed", "intent"]);
    let d = r.settle_one().unwrap();
    assert_eq!(Run::kinds(&d), vec!["outcome", "hard_stop_raised"]);
    // Confirming re-adds ks1.
    let d = r.when(Command::Confirm {
        id: "mixed-pool".into(),
        who: who(),
    });
    assert_eq!(Run::kinds(&d), vec!["hard_stop_confirmed", "intent"]);
    assert_eq!(actions(&d), vec!["lb.ready"]);
}

#[test]
fn providers_that_disagree_stop_the_run_before_any_change() {
    let mut r = Run::start();
    r.fleet.conf.insert("ks2".into(), "jws".into());
    r.run_until_stopped(ALL);
    assert!(
        matches!(&r.state.status, RunStatus::Halted { reason, .. } if reason.contains("providers disagree")),
        "{:?}",
        r.state.status
    );
    let changed = r
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Intent(i) if i.action != "probe"));
    assert!(!changed, "no action other than probes before the gate");
}

#[test]
fn an_interrupted_non_idempotent_action_is_in_doubt_until_a_person_decides() {
    let mut r = Run::start();
    // Run until the restart of ks1 is in flight, then "crash": its outcome is lost.
    r.run_until_effect("service.restart");
    let restart_id = r.pending[0].id;
    r.pending.clear();
    // A new process folds the journal...
    let folded = fold(&r.events);
    assert!(folded.in_flight.contains_key(&restart_id));
    r.state = folded;
    // ...and resumes: the restart is in doubt, at a hard stop.
    let d = r.when(Command::Resume {
        who: who(),
        drift: vec![],
        observed: Observation::default(),
    });
    assert_eq!(Run::kinds(&d), vec!["run_resumed", "hard_stop_raised"]);
    let hs = r.state.hard_stop.clone().unwrap();
    assert_eq!(hs.id, "in-doubt");
    assert_eq!(hs.in_doubt, Some(restart_id));
    // Marking it done moves on without restarting.
    let d = r.when(Command::MarkDone {
        id: "in-doubt".into(),
        who: who(),
    });
    assert_eq!(d.events[0].kind(), "in_doubt_resolved");
    assert!(!actions(&d).contains(&"service.restart"));
    // Next, ks1 must still be out of the pool before it is exercised, then its token check.
    assert_eq!(actions(&d), vec!["probe"]);
    assert!(matches!(
        r.state.current_op().map(|o| (&o.kind, o.node.as_deref())),
        Some((
            OpKind::Gate {
                gate: Gate::OutOfPool,
                ..
            },
            Some("ks1")
        ))
    ));
    let d = r.settle_one().unwrap();
    assert_eq!(actions(&d), vec!["keystone.issue_token"]);
}

#[test]
fn an_interrupted_idempotent_action_is_redone_without_asking() {
    let mut r = Run::start();
    r.run_until_effect("lb.drain");
    r.pending.clear();
    let d = r.when(Command::Resume {
        who: who(),
        drift: vec![],
        observed: Observation::default(),
    });
    assert_eq!(
        Run::kinds(&d),
        vec!["run_resumed", "in_doubt_resolved", "intent"]
    );
    // The drain is redone, but only after its gate (pool-capacity) is checked again.
    assert_eq!(actions(&d), vec!["probe"]);
    let d = r.settle_one().unwrap();
    assert_eq!(actions(&d), vec!["lb.drain"]);
}

#[test]
fn the_fold_of_the_events_equals_the_live_state() {
    let mut r = Run::start();
    r.run_until_stopped(ALL);
    let folded = fold(&r.events);
    assert_eq!(
        serde_json::to_value(&folded).unwrap(),
        serde_json::to_value(&r.state).unwrap()
    );
    // And every event survives the journal's (kind, data) form.
    for (_, e) in &r.events {
        assert_eq!(
            &cutover::engine::recorded::read_event(e.kind(), &e.data()).unwrap(),
            e
        );
    }
}

#[test]
fn reload_facts_from_the_preflight_stay_in_the_state_through_lean_pool_reads() {
    let mut r = Run::start();
    // The preflight probe reads nodes and load balancers: the configs come with it.
    r.run_until_effect("lb.drain");
    let want = r.fleet.reload.clone();
    assert_eq!(r.state.lb_reload, want);
    // Which was journaled in the probe's outcome, and only in full probes' outcomes.
    let full_probes = r
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Outcome(o) if !o.observed.lb_reload.is_empty()))
        .count();
    assert!(full_probes >= 1);
    r.run_until_stopped(ALL);
    assert!(matches!(r.state.status, RunStatus::Completed));
    // Many lean out-of-pool reads later, the facts are still there; the fold keeps them.
    assert_eq!(r.state.lb_reload, want);
    let mut folded = fold(&r.events);
    assert_eq!(folded.lb_reload, want);
    assert_eq!(
        reload_summary(&folded.lb_reload),
        vec![
            "haproxy-a: a reload loses MAINT (no server-state-file)".to_string(),
            "haproxy-b: a reload keeps MAINT only if the state is saved before the reload \
             (server-state-file /var/lib/haproxy/state, load global)"
                .to_string(),
        ]
    );
    // An outcome without them (a lean read, or a journal from before they existed) leaves
    // them as they are.
    let lean = Event::Outcome(Outcome {
        id: 99_999,
        op: 0,
        node: None,
        ok: true,
        summary: "read 2 load balancers".into(),
        duration_ms: 1,
        observed: Observation {
            lb: Some(vec![]),
            ..Default::default()
        },
        failure: None,
    });
    folded.apply(&lean, t0());
    assert_eq!(folded.lb_reload, want);
}

#[test]
fn the_shared_strategy_plans_one_keypair_for_all() {
    let r = Run::start_with(run_started(&[("key_strategy", "shared")]));
    let shared = r.state.plan.iter().find_map(|o| match &o.kind {
        OpKind::Act { specs, .. } => specs
            .iter()
            .find(|s| matches!(s, ActionSpec::Keys(Keys::CreateSharedKeypair { .. })))
            .cloned(),
        _ => None,
    });
    assert!(
        matches!(shared, Some(ActionSpec::Keys(Keys::CreateSharedKeypair { ref nodes, .. })) if nodes.len() == 3)
    );
}

#[test]
fn every_flip_and_restart_is_guarded_in_the_plan() {
    let r = Run::start();
    let plan = &r.state.plan;
    for (i, op) in plan.iter().enumerate() {
        if let OpKind::Act { action, .. } = &op.kind
            && (action == "keystone.set_provider"
                || action == "service.restart"
                || action == "lb.ready")
        {
            let gates: Vec<Gate> = plan[..i]
                .iter()
                .rev()
                .map_while(|o| match &o.kind {
                    OpKind::Gate { gate, .. } => Some(*gate),
                    _ => None,
                })
                .collect();
            let need: &[Gate] = match action.as_str() {
                "keystone.set_provider" => &[Gate::OutOfPool, Gate::KeysEverywhere],
                "service.restart" => &[Gate::OutOfPool],
                _ => &[Gate::ValidatedBeforeReadd, Gate::MixedPool],
            };
            for g in need {
                assert!(
                    gates.contains(g),
                    "op {i} {action} on {:?} lacks gate {}",
                    op.node,
                    g.name()
                );
            }
        }
    }
}

#[test]
fn draining_the_last_pooled_node_needs_a_deliberate_confirmation() {
    let mut r = Run::start();
    r.run_to_gate(Gate::PoolCapacity, Some("ks1"), ALL);
    // Meanwhile ks2 and ks3 left the pool on haproxy-b.
    for n in ["ks2", "ks3"] {
        r.fleet
            .admin
            .insert(("haproxy-b".into(), n.into()), AdminState::Maint);
    }
    let d = r.settle_one().unwrap();
    assert_eq!(Run::kinds(&d), vec!["outcome", "hard_stop_raised"]);
    let hs = r.state.hard_stop.clone().unwrap();
    assert_eq!(hs.id, "pool-capacity");
    assert!(hs.hazard.contains("haproxy-b"), "{}", hs.hazard);
    assert!(
        d.effects.is_empty(),
        "nothing is drained before a person decides"
    );
    let d = r.when(Command::Confirm {
        id: "pool-capacity".into(),
        who: who(),
    });
    assert_eq!(actions(&d), vec!["lb.drain"]);
}

#[test]
fn resuming_re_checks_the_gates_right_before_the_next_action() {
    let mut r = Run::start();
    // Stop right after ks1's out-of-pool gate passed, before its flip: the process dies.
    r.run_to_gate(Gate::OutOfPool, Some("ks1"), ALL);
    while r
        .pending
        .first()
        .is_none_or(|e| e.spec.name() != "keystone.set_provider")
    {
        r.settle_one().unwrap();
    }
    let flip = r.state.cursor;
    r.pending.clear(); // the flip's intent is journaled; its outcome never comes
    // While nobody watched, an HAProxy reload put ks1 back in the pool.
    for l in ["haproxy-a", "haproxy-b"] {
        r.fleet
            .admin
            .insert((l.into(), "ks1".into()), AdminState::Ready);
    }
    let drift = vec!["ks1: on haproxy-a was MAINT (Maint), now UP (Ready)".to_string()];
    let d = r.when(Command::Resume {
        who: who(),
        drift: drift.clone(),
        observed: Observation::default(),
    });
    assert_eq!(Run::kinds(&d), vec!["run_resumed", "hard_stop_raised"]);
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "drift");
    let d = r.given().when(Command::Advance).then_expect_kinds(&[]);
    assert!(d.effects.is_empty());
    assert_eq!(r.state.resumed.as_ref().unwrap().drift, drift);
    // Confirming continues with the gates, on fresh probes: the flip is refused.
    let d = r.when(Command::Confirm {
        id: "drift".into(),
        who: who(),
    });
    assert!(r.state.resumed.is_none());
    assert_eq!(
        Run::kinds(&d)[..2],
        ["hard_stop_confirmed", "in_doubt_resolved"]
    );
    assert_eq!(
        actions(&d),
        vec!["probe"],
        "the interrupted flip waits for its gates"
    );
    assert!(
        r.state.cursor < flip,
        "redoing the flip stepped back over the gates it needs"
    );
    r.run_until_stopped(ALL);
    // ks1 is back in the pool: a breach. cutover drains it again and asks, instead of halting
    // forever on the same gate.
    assert_eq!(r.state.status, RunStatus::AwaitingConfirm);
    let hs = r.state.hard_stop.clone().unwrap();
    assert_eq!(hs.id, "pool-breach");
    assert!(
        hs.facts.iter().any(|f| f.contains("ks1 back in the pool")),
        "{:?}",
        hs.facts
    );
    assert_eq!(
        r.fleet.conf["ks1"], "fernet",
        "ks1 was never flipped while pooled"
    );
    assert!(
        r.fleet
            .admin
            .iter()
            .filter(|((_, n), _)| n == "ks1")
            .all(|(_, a)| *a == AdminState::Maint),
        "lb.maint set ks1 back to maint on every instance"
    );
    // Y: the gates are read again, then the flip goes ahead; the run completes.
    r.run_until_stopped(&["pool-breach", "jws-payload-readable", "mixed-pool"]);
    assert_eq!(r.state.status, RunStatus::Completed);
    assert_flips_follow_their_pool_read(&r);
}

/// Every flip and restart intent comes right after the out-of-pool gate for its node passed,
/// with nothing in between.
fn assert_flips_follow_their_pool_read(r: &Run) {
    for (i, (_, e)) in r.events.iter().enumerate() {
        if let Event::Intent(intent) = e
            && ["keystone.set_provider", "service.restart"].contains(&intent.action.as_str())
        {
            let before = &r.events[i - 1].1;
            assert!(
                matches!(before, Event::GatePassed { gate, node, .. } if gate == "out-of-pool" && node == &intent.node),
                "{} on {:?} follows {:?}",
                intent.action,
                intent.node,
                before.kind()
            );
            assert!(intent.pool_read_ms.is_some(), "{intent:?}");
        }
    }
}

#[test]
fn an_interrupted_restart_is_redone_only_after_its_gate_passes_again() {
    let mut r = Run::start();
    r.run_until_effect("service.restart");
    r.pending.clear(); // crash: the restart's outcome never comes
    // Meanwhile a reload put ks1 back in the pool on one instance.
    r.fleet
        .admin
        .insert(("haproxy-a".into(), "ks1".into()), AdminState::Ready);
    r.when(Command::Resume {
        who: who(),
        drift: vec![],
        observed: Observation::default(),
    });
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "in-doubt");
    // Y: redo. The restart's out-of-pool gate runs again first, and refuses.
    let d = r.when(Command::Confirm {
        id: "in-doubt".into(),
        who: who(),
    });
    assert_eq!(actions(&d), vec!["probe"]);
    r.run_until_stopped(ALL);
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "pool-breach");
    let restarts = |r: &Run| {
        r.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Intent(i) if i.action == "service.restart"))
            .count()
    };
    assert_eq!(restarts(&r), 1, "the restart was not issued again");
    // Y: ks1 is drained again, its gate passes, and only then is the restart redone.
    r.run_until_stopped(&["pool-breach", "jws-payload-readable", "mixed-pool"]);
    assert_eq!(r.state.status, RunStatus::Completed);
    assert_eq!(
        restarts(&r),
        4,
        "ks1's restart redone once, then ks2's and ks3's"
    );
    assert_flips_follow_their_pool_read(&r);
}

#[test]
fn a_halt_supersedes_a_waiting_hard_stop() {
    let mut r = Run::start();
    r.run_to_gate(Gate::MixedPool, Some("ks1"), ALL);
    r.settle_one().unwrap();
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "mixed-pool");
    r.when(Command::Pause { who: who() });
    // A halt (say, from a late failure) clears the waiting stop: confirming it is refused.
    let halted = r.given().and(Event::RunHalted {
        op: r.state.cursor,
        node: Some("ks2".into()),
        reason: "x".into(),
        next: "y".into(),
    });
    assert!(halted.state().hard_stop.is_none());
    halted
        .when(Command::Confirm {
            id: "mixed-pool".into(),
            who: who(),
        })
        .then_expect_error(Refused::NoSuchHardStop("mixed-pool".into()));
}

#[test]
fn a_key_press_answers_only_the_hard_stop_that_was_shown() {
    let mut r = Run::start();
    r.run_to_gate(Gate::MixedPool, Some("ks1"), ALL);
    r.settle_one().unwrap();
    let shown = r.state.hard_stop.clone().unwrap();
    assert!(shown.key().starts_with("mixed-pool#"));
    // An answer for another stop with the same id (another op) is refused...
    let stale = format!("mixed-pool#{}", shown.op + 1);
    r.given()
        .when(Command::Confirm {
            id: stale.clone(),
            who: who(),
        })
        .then_expect_error(Refused::NoSuchHardStop(stale));
    // ...the exact one is taken, and the journal records the plain id.
    let d = r.when(Command::Confirm {
        id: shown.key(),
        who: who(),
    });
    assert!(matches!(&d.events[0], Event::HardStopConfirmed { id, .. } if id == "mixed-pool"));
}

fn breach(node: &str, lb: &str, at: DateTime<Utc>) -> Breach {
    Breach {
        node: node.into(),
        lb: lb.into(),
        seen: "UP 1/3 (admin ready)".into(),
        at,
        last_out_at: Some(at - Duration::milliseconds(200)),
        reverted_ms: Some(4),
        source: "guard".into(),
        cause: None,
        error: None,
    }
}

#[test]
fn a_breach_during_a_restart_stops_the_run_and_re_checks_before_the_next_action() {
    let mut r = Run::start();
    r.run_until_effect("service.restart");
    // The restart is running; the guard saw ks1 back on haproxy-a and set it back to maint.
    let d = r.when(Command::Breach(breach("ks1", "haproxy-a", r.now)));
    assert_eq!(Run::kinds(&d), vec!["pool_breach", "hard_stop_raised"]);
    assert!(d.effects.is_empty());
    let hs = r.state.hard_stop.clone().unwrap();
    assert_eq!(
        (hs.id.as_str(), hs.node.as_deref()),
        ("pool-breach", Some("ks1"))
    );
    assert!(
        hs.consequence.contains("set it back to maint at once"),
        "{}",
        hs.consequence
    );
    assert!(
        hs.facts[0].contains("haproxy-a") && hs.facts[0].contains("4 ms"),
        "{:?}",
        hs.facts
    );
    assert_eq!(r.state.nodes["ks1"].breaches, 1);
    // The restart finishes; nothing else starts while the breach is open.
    let d = r.settle_one().unwrap();
    assert!(d.effects.is_empty(), "{:?}", actions(&d));
    assert!(r.when(Command::Advance).effects.is_empty());
    // Y: drained again (idempotent), then the pool is read before the token check.
    let d = r.when(Command::Confirm {
        id: "pool-breach".into(),
        who: who(),
    });
    assert_eq!(actions(&d), vec!["lb.maint"]);
    let d = r.settle_one().unwrap();
    assert_eq!(actions(&d), vec!["probe"]);
    let op = r.state.current_op().unwrap();
    assert!(
        matches!(
            op.kind,
            OpKind::Gate {
                gate: Gate::OutOfPool,
                ..
            }
        ) && op.node.as_deref() == Some("ks1"),
        "{op:?}"
    );
    r.run_until_stopped(ALL);
    assert_eq!(r.state.status, RunStatus::Completed);
}

#[test]
fn a_breach_report_for_a_node_re_added_on_purpose_raises_nothing() {
    let mut r = Run::start();
    r.run_until_effect("lb.ready");
    assert!(!r.state.guarded.contains("ks1"), "the re-add let go of ks1");
    let d = r.when(Command::Breach(breach("ks1", "haproxy-a", r.now)));
    assert_eq!(Run::kinds(&d), vec!["pool_breach"]);
    assert!(r.state.hard_stop.is_none() && r.state.open_breaches.is_empty());
}

#[test]
fn a_node_back_in_the_pool_at_the_re_add_decision_is_a_breach_not_a_question() {
    let mut r = Run::start();
    r.run_to_gate(Gate::MixedPool, Some("ks1"), ALL);
    r.fleet
        .admin
        .insert(("haproxy-b".into(), "ks1".into()), AdminState::Ready);
    let d = r.settle_one().unwrap();
    assert_eq!(
        Run::kinds(&d),
        vec!["outcome", "pool_breach", "intent", "hard_stop_raised"]
    );
    assert_eq!(actions(&d), vec!["lb.maint"]);
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "pool-breach");
    r.settle_one().unwrap();
    assert_eq!(
        r.fleet.admin[&("haproxy-b".to_string(), "ks1".to_string())],
        AdminState::Maint
    );
    // Y: validated and mixed-pool are read again; mixed-pool then asks, as it should.
    r.when(Command::Confirm {
        id: "pool-breach".into(),
        who: who(),
    });
    r.run_until_stopped(&["jws-payload-readable"]);
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "mixed-pool");
}

#[test]
fn an_open_breach_survives_a_decline_and_a_resume() {
    let mut r = Run::start();
    r.run_to_gate(Gate::MixedPool, Some("ks1"), ALL);
    r.when(Command::Breach(breach("ks1", "haproxy-a", r.now)));
    r.when(Command::Decline {
        id: "pool-breach".into(),
        who: who(),
    });
    assert!(matches!(r.state.status, RunStatus::Paused { .. }));
    let d = r.when(Command::Resume {
        who: who(),
        drift: vec![],
        observed: Observation::default(),
    });
    // (the mixed-pool probe that was in flight is redone first: it is idempotent)
    assert_eq!(
        Run::kinds(&d),
        vec!["run_resumed", "in_doubt_resolved", "hard_stop_raised"]
    );
    assert_eq!(r.state.hard_stop.as_ref().unwrap().id, "pool-breach");
    assert!(
        d.effects.is_empty(),
        "nothing proceeds while a breach is open"
    );
}

#[test]
fn in_alert_mode_the_breach_is_raised_and_repaired_only_on_confirmation() {
    let mut rs = run_started(&[]);
    rs.inventory.guard = Some(cutover::inventory::GuardMode::Alert);
    let mut r = Run::start_with(rs);
    r.run_to_gate(Gate::OutOfPool, Some("ks1"), ALL);
    r.fleet
        .admin
        .insert(("haproxy-a".into(), "ks1".into()), AdminState::Ready);
    let d = r.settle_one().unwrap();
    assert_eq!(
        Run::kinds(&d),
        vec!["outcome", "pool_breach", "hard_stop_raised"]
    );
    assert!(
        d.effects.is_empty(),
        "alert: nothing is reverted before a person says so"
    );
    let hs = r.state.hard_stop.clone().unwrap();
    assert!(
        hs.consequence.contains("guard: alert"),
        "{}",
        hs.consequence
    );
    let d = r.when(Command::Confirm {
        id: "pool-breach".into(),
        who: who(),
    });
    assert_eq!(actions(&d), vec!["lb.maint"]);
    r.run_until_stopped(ALL);
    assert_eq!(r.state.status, RunStatus::Completed);
    assert_flips_follow_their_pool_read(&r);
}

#[test]
fn the_pool_read_is_the_last_read_before_every_guarded_action_of_every_runbook() {
    let inv = Inventory::load("tests/fixtures/inventory-3.yaml".as_ref()).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir("runbooks").unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let Ok(rb) = Runbook::parse(&source, &path.display().to_string()) else {
            continue; // demo-answers.yaml
        };
        let params = rb.resolve_params(&BTreeMap::new()).unwrap();
        let plan = cutover::engine::plan::compile(&rb, &inv, &params).unwrap();
        let mut drained: std::collections::BTreeSet<String> = Default::default();
        for (i, op) in plan.iter().enumerate() {
            assert_eq!(op.index, i);
            let OpKind::Act { action, .. } = &op.kind else {
                continue;
            };
            let node = op.node.clone().unwrap_or_default();
            match action.as_str() {
                "lb.drain" => {
                    drained.insert(node.clone());
                }
                "lb.ready" => {
                    drained.remove(&node);
                }
                _ => {}
            }
            let needs = match action.as_str() {
                "keystone.set_provider" | "service.restart" => Some(Gate::OutOfPool),
                "keystone.issue_token" if drained.contains(&node) => Some(Gate::OutOfPool),
                "lb.ready" => Some(Gate::MixedPool),
                _ => None,
            };
            if let Some(g) = needs {
                assert!(
                    matches!(&plan[i - 1].kind, OpKind::Gate { gate, .. } if *gate == g)
                        && plan[i - 1].node == op.node,
                    "{}: op {i} {action} on {node} is preceded by {:?}, not {}",
                    rb.name,
                    plan[i - 1].kind,
                    g.name()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} guarded actions found");
}

/// What a fresh probe at resume would read from the simulated fleet.
fn fresh_probe(r: &Run) -> Observation {
    let mut obs = Observation::default();
    for n in &r.fleet.nodes {
        obs.nodes.insert(n.clone(), r.fleet.facts(n));
    }
    obs.lb = Some(r.fleet.lb_rows());
    obs
}

/// The process dies with `action` in flight on ks1: the fold a resume starts from.
fn crash_during(action: &str) -> Run {
    let mut r = Run::start();
    r.run_until_effect(action);
    let eff = r.pending.remove(0);
    // The effect did (part of) its work before the crash.
    r.fleet.run(&eff.spec);
    r.pending.clear();
    r.state = fold(&r.events);
    r
}

#[test]
fn drift_ignores_what_cutovers_own_interrupted_actions_did() {
    use cutover::engine::drift::drift;
    // A ready half sent (here: fully), a restart under way, a provider written.
    for action in [
        "lb.ready",
        "service.restart",
        "keystone.set_provider",
        "lb.drain",
    ] {
        let mut r = crash_during(action);
        if action == "service.restart" {
            // Keystone is still coming up, and HAProxy marks it DOWN meanwhile.
            let mut obs = fresh_probe(&r);
            obs.nodes.get_mut("ks1").unwrap().service_up = false;
            for row in obs
                .lb
                .as_mut()
                .unwrap()
                .iter_mut()
                .filter(|s| s.node == "ks1")
            {
                row.status = "DOWN".into();
            }
            assert_eq!(drift(&r.state, &obs), Vec::<String>::new(), "{action}");
            continue;
        }
        let obs = fresh_probe(&r);
        assert_eq!(drift(&r.state, &obs), Vec::<String>::new(), "{action}");
        // ...but a real outside change is always raised.
        r.fleet.conf.insert("ks3".into(), "jws".into());
        let d = drift(&r.state, &fresh_probe(&r));
        assert!(
            d.iter()
                .any(|l| l.starts_with("ks3: keystone.conf provider")),
            "{action}: {d:?}"
        );
    }
}

#[test]
fn drift_ignores_health_checks_settling_and_a_restart_the_journal_saw_fail() {
    use cutover::engine::drift::drift;
    let mut r = Run::start();
    r.run_until_effect("service.restart");
    // The restart failed (journaled), and the run halted; keystone stays down on ks1.
    let eff = r.pending.remove(0);
    r.when(Command::Completed(Outcome {
        id: eff.id,
        op: eff.op,
        node: Some("ks1".into()),
        ok: false,
        summary: "restart exited 1".into(),
        duration_ms: 5,
        observed: Observation::default(),
        failure: None,
    }));
    assert!(matches!(r.state.status, RunStatus::Halted { .. }));
    let mut obs = fresh_probe(&r);
    obs.nodes.get_mut("ks1").unwrap().service_up = false;
    for row in obs.lb.as_mut().unwrap().iter_mut() {
        if row.node == "ks1" {
            row.status = "MAINT".into();
        } else {
            // Health checks settling on the others: `UP 2/3` is `UP`.
            row.status = "UP 2/3".into();
        }
    }
    assert_eq!(drift(&r.state, &obs), Vec::<String>::new());
    // A server cutover kept in maint, now ready without cutover sending ready: named.
    for row in obs
        .lb
        .as_mut()
        .unwrap()
        .iter_mut()
        .filter(|s| s.node == "ks1")
    {
        row.admin = AdminState::Ready;
        row.held = false;
        row.oper = OperState::UpUnconfirmed;
        row.status = "UP 1/3".into();
    }
    let d = drift(&r.state, &obs);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        d.iter().all(|l| l.contains("cutover sent no ready")),
        "{d:?}"
    );
    // A tampered Fernet repository is drift whatever cutover was doing.
    obs.nodes.get_mut("ks3").unwrap().fernet.fingerprint = Some("SHA256:other".into());
    assert!(
        drift(&r.state, &obs)
            .iter()
            .any(|l| l == "ks3: the Fernet repository changed")
    );
}

#[test]
fn unconfirmed_drift_stays_pending_across_resumes() {
    let mut r = Run::start();
    r.run_until_effect("service.restart");
    r.settle_one().unwrap();
    r.when(Command::Pause { who: who() });
    let tamper = vec!["ks3: the Fernet repository changed".to_string()];
    let d = r.when(Command::Resume {
        who: who(),
        drift: tamper.clone(),
        observed: Observation::default(),
    });
    assert_eq!(Run::kinds(&d), vec!["run_resumed", "hard_stop_raised"]);
    // Nobody answers; the process exits. A second resume reads the changed fleet as it is now
    // (no difference from the first resume's read): the drift is still raised.
    let d = r.when(Command::Resume {
        who: who(),
        drift: vec![],
        observed: Observation::default(),
    });
    assert_eq!(Run::kinds(&d), vec!["run_resumed", "hard_stop_raised"]);
    let hs = r.state.hard_stop.clone().unwrap();
    assert_eq!(
        (hs.id.as_str(), hs.drift.clone()),
        ("drift", tamper.clone())
    );
    assert!(d.effects.is_empty());
    // Declining keeps it too; a new difference is added to it.
    r.when(Command::Decline {
        id: "drift".into(),
        who: who(),
    });
    r.when(Command::Resume {
        who: who(),
        drift: vec!["ks2: keystone was up, now down".into()],
        observed: Observation::default(),
    });
    assert_eq!(r.state.hard_stop.as_ref().unwrap().drift.len(), 2);
    // Confirmed once, it is the baseline: the next resume asks nothing.
    r.when(Command::Confirm {
        id: "drift".into(),
        who: who(),
    });
    assert!(r.state.pending_drift.is_empty());
    r.when(Command::Pause { who: who() });
    r.run_until(None, |r| matches!(r.state.status, RunStatus::Paused { .. }));
    let d = r.when(Command::Resume {
        who: who(),
        drift: vec![],
        observed: Observation::default(),
    });
    assert!(
        !Run::kinds(&d).contains(&"hard_stop_raised"),
        "{:?}",
        Run::kinds(&d)
    );
}

#[test]
fn commands_that_do_not_apply_are_refused_and_change_nothing() {
    // Before a run starts, there is nothing to advance, complete or guard.
    given([])
        .when(Command::Advance)
        .then_expect_error(Refused::NotStarted);
    given([])
        .when(Command::Breach(breach("ks1", "haproxy-a", t0())))
        .then_expect_error(Refused::NotStarted);
    // A run starts once.
    let mut r = Run::start();
    r.given()
        .when(Command::Start(Box::new(run_started(&[]))))
        .then_expect_error(Refused::AlreadyStarted);
    // A completed run has nothing to resume, and nothing to confirm.
    r.run_until_stopped(ALL);
    assert_eq!(r.state.status, RunStatus::Completed);
    r.given()
        .when(Command::Resume {
            who: who(),
            drift: vec![],
            observed: Observation::default(),
        })
        .then_expect_error(Refused::NotResumable("completed".into()));
    r.given()
        .when(Command::Confirm {
            id: "mixed-pool".into(),
            who: who(),
        })
        .then_expect_error(Refused::NoSuchHardStop("mixed-pool".into()));
}

#[test]
fn declining_a_hard_stop_records_which_one_where_and_who() {
    let mut r = Run::start();
    r.run_to_gate(Gate::MixedPool, Some("ks1"), ALL);
    r.settle_one().unwrap();
    let hs = r.state.hard_stop.clone().unwrap();
    let d = r
        .given()
        .when(Command::Decline {
            id: "mixed-pool".into(),
            who: who(),
        })
        .then_expect(vec![Event::HardStopDeclined {
            id: "mixed-pool".into(),
            op: hs.op,
            node: Some("ks1".into()),
            who: who(),
        }]);
    assert!(d.effects.is_empty(), "{:?}", actions(&d));
}

/// Node by node: drain, restart, check the API over HTTP, re-add.
const ROLLING: &str = r#"name: rolling-test
title: Rolling restart (test)
target_provider: fernet
steps:
  - id: roll
    title: Restart each node
    scope: each-node
    do:
      - lb.drain: {timeout: 60s}
      - service.restart: {timeout: 60s}
      - http.check: {url: "{{ node.keystone_url }}/v3", from: node, expect_status: 200, body_contains: "v3.14", timeout: 10s}
      - lb.ready: {timeout: 30s}
"#;

/// The (action, node) of every intent, in order.
fn intents(r: &Run) -> Vec<(String, Option<String>)> {
    r.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Intent(i) if i.action != "probe" => Some((i.action.clone(), i.node.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_http_check_gates_each_node_s_re_add() {
    let mut r = Run::start_with(support::engine::run_started_of(
        ROLLING,
        "rolling-test.yaml",
        &[],
    ));
    r.run_until_stopped(&[]);
    assert_eq!(
        r.state.status,
        RunStatus::Completed,
        "{:?}",
        r.state.log.last()
    );
    let mut want = vec![];
    for n in ["ks1", "ks2", "ks3"] {
        for a in ["lb.drain", "service.restart", "http.check", "lb.ready"] {
            want.push((a.to_string(), Some(n.to_string())));
        }
    }
    assert_eq!(intents(&r), want);

    // ks2's API answers, but not with what the check expects: the run halts with ks2 out of
    // the pool, ks1 back in, ks3 untouched.
    let mut r = Run::start_with(support::engine::run_started_of(
        ROLLING,
        "rolling-test.yaml",
        &[],
    ));
    r.fleet
        .http
        .insert("ks2".into(), (503, "Service Unavailable".into()));
    r.run_until_stopped(&[]);
    assert!(
        matches!(&r.state.status, RunStatus::Halted { reason, .. } if reason.contains("http.check") && reason.contains("ks2")),
        "{:?}",
        r.state.status
    );
    let admin = |n: &str| -> Vec<AdminState> {
        r.fleet
            .admin
            .iter()
            .filter(|((_, m), _)| m == n)
            .map(|(_, a)| *a)
            .collect()
    };
    assert_eq!(admin("ks1"), [AdminState::Ready; 2]);
    assert_eq!(admin("ks2"), [AdminState::Maint; 2]);
    assert_eq!(admin("ks3"), [AdminState::Ready; 2]);
    assert_eq!(
        intents(&r).last(),
        Some(&("http.check".to_string(), Some("ks2".to_string())))
    );
}

// ---------------------------------------------------------------------------------------------
// strategy: halves
// ---------------------------------------------------------------------------------------------

const HALVES: &[&str] = &["jws-payload-readable", "halves-swap"];

fn halves() -> Run {
    Run::start_with(run_started(&[("strategy", "halves")]))
}

/// Clients meet the mixed pool until the last old-provider node's drain has landed, not only
/// until its intent is journaled: the load balancer sends it requests until the drain's write.
/// The window opens with the first re-add's intent (the write comes right after it).
#[test]
fn the_mixed_window_holds_while_the_last_old_node_drains() {
    let mut r = Run::start();
    r.run_until_stopped(ALL);
    assert_eq!(r.state.status, RunStatus::Completed);
    let intent_at = |action: &str, node: &str| {
        r.events
            .iter()
            .position(|(_, e)| {
                matches!(e, Event::Intent(i)
                    if i.action == action && i.node.as_deref() == Some(node))
            })
            .unwrap_or_else(|| panic!("no {action} intent for {node}"))
    };
    let outcome_after = |n: usize| {
        n + r.events[n..]
            .iter()
            .position(|(_, e)| matches!(e, Event::Outcome(_)))
            .expect("an outcome")
    };
    let mixed_after = |n: usize| fold(&r.events[..=n]).clients_meet_mixed_pool();
    // ks1's re-add: mixed from its intent on.
    let ready = intent_at("lb.ready", "ks1");
    assert!(!mixed_after(ready - 1));
    assert!(mixed_after(ready));
    // ks3, the last fernet node: still mixed while its drain runs, not after it landed.
    let drain = intent_at("lb.drain", "ks3");
    let done = outcome_after(drain);
    for n in drain..done {
        assert!(mixed_after(n), "event {n}: {:?}", r.events[n].1);
    }
    assert!(!mixed_after(done));
}

/// The meter's phases around the swap: the swap step is `swap` while its hard stop waits and
/// its gates run, and `swap:moving` from the swap's intent (journaled before the write) to its
/// outcome, so a token issued before the write and refused after it is counted as crossed, not
/// as a failure; then half B's step.
#[test]
fn the_meter_phase_is_moving_while_the_swap_runs() {
    let mut r = halves();
    r.run_until_stopped(HALVES);
    assert_eq!(r.state.status, RunStatus::Completed);
    let swap = r
        .events
        .iter()
        .position(|(_, e)| matches!(e, Event::Intent(i) if i.action == "lb.swap"))
        .expect("an lb.swap intent");
    let stop = r
        .events
        .iter()
        .position(|(_, e)| matches!(e, Event::HardStopRaised(h) if h.id == "halves-swap"))
        .expect("the halves-swap hard stop");
    assert!(stop < swap);
    let phase_after = |n: usize| fold(&r.events[..=n]).meter_phase();
    assert_eq!(phase_after(stop), "swap");
    assert_eq!(phase_after(swap - 1), "swap");
    let done = swap
        + r.events[swap..]
            .iter()
            .position(|(_, e)| matches!(e, Event::Outcome(_)))
            .expect("the swap's outcome");
    for n in swap..done {
        assert_eq!(
            phase_after(n),
            "swap:moving",
            "event {n}: {:?}",
            r.events[n].1
        );
    }
    assert_ne!(phase_after(done), "swap:moving");
    let next_step = done
        + r.events[done..]
            .iter()
            .position(|(_, e)| matches!(e, Event::StepStarted { .. }))
            .expect("a step after the swap");
    assert_eq!(phase_after(next_step), "half-b");
}

#[test]
fn halves_flip_a_swap_once_then_flip_b_without_a_mixed_pool() {
    let mut r = halves();
    r.run_until_stopped(HALVES);
    assert_eq!(
        r.state.status,
        RunStatus::Completed,
        "{:?}",
        r.state.log.last()
    );
    assert!(r.fleet.conf.values().all(|p| p == "jws"));
    // No mixed-pool hard stop: the pool never held both providers.
    assert!(
        !r.events
            .iter()
            .any(|(_, e)| matches!(e, Event::HardStopRaised(h) if h.id == "mixed-pool"))
    );
    let seq = intents(&r);
    let at = |action: &str, node: Option<&str>| {
        seq.iter()
            .position(|(a, n)| a == action && n.as_deref() == node)
            .unwrap_or_else(|| panic!("no {action} {node:?} in {seq:?}"))
    };
    let swap = at("lb.swap", None);
    assert_eq!(seq.iter().filter(|(a, _)| a == "lb.swap").count(), 1);
    // Half A (ks1): drained, flipped, restarted and proven before the swap.
    for a in [
        "lb.drain",
        "keystone.set_provider",
        "service.restart",
        "keystone.issue_token",
    ] {
        assert!(
            at(a, Some("ks1")) < swap,
            "{a} on ks1 after the swap: {seq:?}"
        );
    }
    // Half B (ks2, ks3): never drained on its own; flipped, restarted and re-added after it.
    for n in ["ks2", "ks3"] {
        assert!(
            !seq.contains(&("lb.drain".into(), Some(n.into()))),
            "{seq:?}"
        );
        for a in ["keystone.set_provider", "service.restart", "lb.ready"] {
            assert!(at(a, Some(n)) > swap, "{a} on {n} before the swap: {seq:?}");
        }
    }
    // The swap is guarded by pool-capacity about half B and validated-before-swap, passed
    // right before it, after the hard stop that explains it.
    let plan = &r.state.plan;
    let i = plan
        .iter()
        .position(|o| matches!(&o.kind, OpKind::Act { action, .. } if action == "lb.swap"))
        .unwrap();
    let before: Vec<(Gate, Option<String>)> = plan[..i]
        .iter()
        .rev()
        .map_while(|o| match &o.kind {
            OpKind::Gate { gate, .. } => Some((*gate, o.group.clone())),
            _ => None,
        })
        .collect();
    assert!(
        before.contains(&(Gate::PoolCapacity, Some("half-b".into()))),
        "{before:?}"
    );
    assert!(
        before.iter().any(|(g, _)| *g == Gate::ValidatedBeforeSwap),
        "{before:?}"
    );
    assert!(
        matches!(&plan[i - before.len() - 1].kind, OpKind::Confirm { id, .. } if id == "halves-swap")
    );
    // The guard held A until the swap's intent and B from its outcome on, with no gap.
    let swap_id = r
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Intent(i) if i.action == "lb.swap" => Some(i.id),
            _ => None,
        })
        .unwrap();
    let upto = |pred: &dyn Fn(&Event) -> bool| {
        let k = r.events.iter().position(|(_, e)| pred(e)).unwrap();
        fold(&r.events[..k])
    };
    let before_intent = upto(&|e| matches!(e, Event::Intent(i) if i.id == swap_id));
    assert_eq!(before_intent.guarded.iter().collect::<Vec<_>>(), ["ks1"]);
    let after_intent = upto(&|e| matches!(e, Event::Outcome(o) if o.id == swap_id));
    assert!(
        after_intent.guarded.is_empty(),
        "{:?}",
        after_intent.guarded
    );
    let k = r
        .events
        .iter()
        .position(|(_, e)| matches!(e, Event::Outcome(o) if o.id == swap_id))
        .unwrap();
    let after = fold(&r.events[..=k]);
    assert_eq!(after.guarded.iter().collect::<Vec<_>>(), ["ks2", "ks3"]);
    // The swap's gap is in its outcome.
    assert!(matches!(&r.events[k].1, Event::Outcome(o) if o.observed.swap_gap_ms.is_some()));
}

#[test]
fn no_swap_while_a_node_of_half_a_is_not_proven() {
    // Half A of two: ks2 alone could carry the pool, so only validated-before-swap (every node
    // of A proven, not just enough of them) stands between ks1 and the swap.
    let mut r = Run::start_with(run_started(&[
        ("strategy", "halves"),
        ("half_a", "ks1,ks2"),
    ]));
    r.run_to_gate(Gate::ValidatedBeforeSwap, None, HALVES);
    // ks1 answers its direct token as fernet (its restart did not take the flip).
    r.fleet.running.insert("ks1".into(), "fernet".into());
    r.settle_one().unwrap();
    match &r.state.status {
        RunStatus::Halted { reason, next, .. } => {
            assert!(
                reason.contains("validated-before-swap") && reason.contains("ks1"),
                "{reason}"
            );
            assert!(next.contains("half B keeps serving"), "{next}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!intents(&r).iter().any(|(a, _)| a == "lb.swap"));
}

#[test]
fn draining_half_a_needs_half_b_to_carry_the_pool_alone() {
    let mut r = halves();
    r.run_to_gate(Gate::PoolCapacity, None, HALVES);
    // ks2 and ks3 (half B) left the pool on haproxy-b meanwhile.
    for n in ["ks2", "ks3"] {
        r.fleet
            .admin
            .insert(("haproxy-b".into(), n.into()), AdminState::Maint);
    }
    let d = r.settle_one().unwrap();
    assert_eq!(Run::kinds(&d), vec!["outcome", "hard_stop_raised"]);
    let hs = r.state.hard_stop.clone().unwrap();
    assert_eq!(hs.id, "pool-capacity");
    assert!(hs.title.contains("half A"), "{}", hs.title);
    assert!(
        hs.hazard.contains("haproxy-b") && hs.hazard.contains("ks2, ks3"),
        "{}",
        hs.hazard
    );
    assert!(
        d.effects.is_empty(),
        "nothing is drained before a person decides"
    );
}

#[test]
fn a_bad_split_is_a_plan_error_that_says_what_to_do() {
    let src = std::fs::read_to_string("runbooks/fernet-to-jws.yaml").unwrap();
    let rb = Runbook::parse(&src, "fernet-to-jws.yaml").unwrap();
    let inv = Inventory::load("tests/fixtures/inventory-3.yaml".as_ref()).unwrap();
    let compile = |p: &[(&str, &str)]| {
        let o: BTreeMap<String, String> = p
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cutover::engine::plan::compile(&rb, &inv, &rb.resolve_params(&o).unwrap())
    };
    let e = compile(&[("strategy", "halves"), ("half_a", "ks1,ks2,ks3")])
        .unwrap_err()
        .0;
    assert!(e.contains("half B would be empty"), "{e}");
    let e = compile(&[("strategy", "halves"), ("half_a", "ks7")])
        .unwrap_err()
        .0;
    assert!(e.contains("`ks7`") && e.contains("ks1, ks2, ks3"), "{e}");
    let e = compile(&[("half_a", "ks1")]).unwrap_err().0;
    assert!(e.contains("strategy=halves"), "{e}");
    // A named split: A = ks2, ks3 drained together, B = ks1.
    let ops = compile(&[("strategy", "halves"), ("half_a", "ks2,ks3")]).unwrap();
    let drain: Vec<&str> = ops
        .iter()
        .filter_map(|o| match &o.kind {
            OpKind::Act { action, specs } if action == "lb.drain" => {
                Some(specs.iter().filter_map(|s| s.node()).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(drain, ["ks2", "ks3"]);
}

/// A block of gates right before an action is judged on one read when one gate's read holds
/// what the others need; a pool read that must be the last before its action stays apart.
/// Preflight's four gates share one probe (nodes and load balancers); before each re-add,
/// validated-before-readd is judged on the token the node's own token check just issued and
/// validated, and mixed-pool reads the load balancers and a token issued (not validated) at
/// every node; keys-everywhere and out-of-pool read apart, and out-of-pool's (load balancers
/// only) is the last intent before every flip.
#[test]
fn a_block_of_gates_is_judged_on_one_read_and_the_pool_read_stays_last() {
    use cutover::engine::action::{ActionSpec, Keystone, Misc};
    let mut r = Run::start();
    r.run_until_stopped(ALL);
    assert_eq!(r.state.status, RunStatus::Completed);
    // Each gate decision (passed, or the hard stop it asked) with the probe it was judged on.
    let mut probe: Option<(u64, ActionSpec)> = None;
    let mut reads: std::collections::BTreeMap<u64, ActionSpec> = Default::default();
    let mut judged: Vec<(String, Option<String>, u64)> = Vec::new();
    let mut last_intent: Option<ActionSpec> = None;
    for (_, e) in &r.events {
        match e {
            Event::Intent(i) => {
                if i.action == "keystone.set_provider" {
                    assert!(
                        matches!(&last_intent, Some(ActionSpec::Misc(Misc::Probe { nodes, lb: true, tokens, .. }))
                            if nodes.is_empty() && tokens.is_empty()),
                        "the read right before flipping {:?} was {last_intent:?}",
                        i.node
                    );
                }
                // A read: a probe, or a token check (a token issued and validated at a node).
                if i.action == "probe" || i.action == "keystone.issue_token" {
                    probe = Some((i.id, i.spec.clone()));
                    reads.insert(i.id, i.spec.clone());
                }
                last_intent = Some(i.spec.clone());
            }
            Event::GatePassed { gate, node, .. } => {
                judged.push((gate.clone(), node.clone(), probe.as_ref().unwrap().0))
            }
            Event::HardStopRaised(h) if h.id == "mixed-pool" => {
                judged.push((h.id.clone(), h.node.clone(), probe.as_ref().unwrap().0))
            }
            _ => {}
        }
    }
    let read_of = |gate: &str, node: Option<&str>| {
        judged
            .iter()
            .filter(|(g, n, _)| g == gate && n.as_deref() == node)
            .map(|(_, _, id)| *id)
            .collect::<Vec<_>>()
    };
    let preflight: Vec<u64> = [
        "providers-agree",
        "not-on-target",
        "pool-healthy",
        "fernet-keys-everywhere",
    ]
    .iter()
    .flat_map(|g| read_of(g, None))
    .collect();
    assert_eq!(preflight.len(), 4, "{judged:?}");
    assert!(preflight.iter().all(|id| *id == preflight[0]), "{judged:?}");
    let every: Vec<String> = r.state.node_order.clone();
    for n in ["ks1", "ks2", "ks3"] {
        let validated = read_of("validated-before-readd", Some(n));
        let mixed = read_of("mixed-pool", Some(n));
        assert_eq!(validated.len(), 1, "{n}: {judged:?}");
        assert_eq!(mixed.len(), 1, "{n}: {judged:?}");
        assert!(
            matches!(&reads[&validated[0]], ActionSpec::Keystone(Keystone::IssueToken { node, .. }) if node == n),
            "{n}: validated-before-readd judged on {:?}",
            reads[&validated[0]]
        );
        assert!(
            matches!(&reads[&mixed[0]], ActionSpec::Misc(Misc::Probe { nodes, lb: true, tokens, providers, .. })
                if nodes.is_empty() && tokens.is_empty() && *providers == every),
            "{n}: mixed-pool judged on {:?}",
            reads[&mixed[0]]
        );
    }
    // Keys-everywhere before a flip and the out-of-pool right after it: two reads.
    let keys = read_of("keys-everywhere", None);
    let out = read_of("out-of-pool", Some("ks2"));
    assert!(keys.iter().all(|k| !out.contains(k)), "{judged:?}");
    // The next node's pool-capacity is judged on the read that saw the previous one UP (both
    // read the load balancers; nothing happened between them).
    for (prev, next) in [("ks1", "ks2"), ("ks2", "ks3")] {
        assert_eq!(
            read_of("in-pool", Some(prev)),
            read_of("pool-capacity", Some(next)),
            "{judged:?}"
        );
    }
    // Fewer reads than gate decisions: 3 + 2 judged on a read another gate started, and the
    // three validated-before-readd on their token checks' reads, which no gate started.
    let judged_on: std::collections::BTreeSet<u64> = judged.iter().map(|(_, _, id)| *id).collect();
    assert_eq!(judged.len() - judged_on.len(), 3 + 2, "{judged:?}");
    let gate_probes = judged_on
        .iter()
        .filter(|id| matches!(reads[id], ActionSpec::Misc(Misc::Probe { .. })))
        .count();
    assert_eq!(gate_probes, judged.len() - 3 - 2 - 3, "{judged:?}");
}
