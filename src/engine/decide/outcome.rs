//! An effect's outcome: recorded, then judged (a failure halts, a probe's gate is evaluated).

use super::{Scratch, halt, raise_breach, start_effect};
use crate::engine::action::ActionSpec;
use crate::engine::action::Lb;
use crate::engine::events::*;
use crate::engine::facts::Observation;
use crate::engine::gates::{self, Verdict};
use crate::engine::halves;
use crate::engine::plan::OpKind;
use crate::engine::state::RunStatus;
use crate::inventory::GuardMode;
use crate::provider::Provider;
use crate::runbook::Gate;

pub(super) fn completed(s: &mut Scratch, o: Outcome) {
    let op_ref = o.op_ref();
    let node = o.node.clone();
    let ok = o.ok;
    let summary = o.summary.clone();
    let failure = o.failure.clone();
    let observed = o.observed.clone();
    let known = s.state.in_flight.contains_key(&o.id);
    let breach_repair = s
        .state
        .in_flight
        .get(&o.id)
        .is_some_and(|f| matches!(f.intent.spec, ActionSpec::Lb(Lb::Maint { .. })));
    s.emit(Event::Outcome(o));
    if op_ref.is_side() && !ok && breach_repair {
        // A breach cutover could not repair: nothing may go on with that node in the pool.
        let next = match &failure {
            Some(Failure::Hint { next }) if !next.trim().is_empty() => next.clone(),
            _ => "set the node to maint by hand on every instance, then resume".into(),
        };
        halt(
            s,
            s.state.cursor,
            node.clone(),
            format!(
                "pool breach not repaired: {} still in the pool after cutover set it to maint: {summary}",
                node.as_deref().unwrap_or("the node")
            ),
            next,
        );
        return;
    }
    let Some(op_index) = op_ref.plan().filter(|&i| known && i == s.state.cursor) else {
        // A late outcome (after a halt) or a side effect: recorded, nothing more to decide.
        return;
    };
    if matches!(s.state.status, RunStatus::Halted { .. }) {
        return;
    }
    let Some(op) = s.state.plan.get(op_index).cloned() else {
        return;
    };
    if !ok {
        if let Some(Failure::HostKeyUnknown {
            host,
            port,
            fingerprint,
            known_hosts,
            ..
        }) = &failure
        {
            s.emit(Event::HardStopRaised(HardStop {
                op: op_index,
                id: "unknown-host-key".into(),
                node: node.clone(),
                title: format!("Unknown host key for {host}:{port}"),
                hazard: format!(
                    "{host}:{port} is not in {known_hosts}. Its key fingerprint is {fingerprint}. Compare it with the fingerprint taken on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) before you accept it."
                ),
                consequence: format!(
                    "Y adds the key to {known_hosts} and retries; cutover will then trust this host."
                ),
                facts: vec![format!("{host}:{port} {fingerprint}")],
                proceed: "accept the host key and retry".into(),
                in_doubt: None,
                host_key: failure.clone(),
                drift: vec![],
                breach: vec![],
            }));
            return;
        }
        let what = match &op.kind {
            OpKind::Gate { gate, .. } => format!("gate {} could not probe", gate.name()),
            OpKind::Act { action, .. } => action.clone(),
            _ => "action".into(),
        };
        let next = match &failure {
            Some(Failure::Hint { next }) if !next.trim().is_empty() => next.clone(),
            _ => "fix the cause on the named node, then resume (cutover resume JOURNAL)".into(),
        };
        halt(
            s,
            op_index,
            node.clone(),
            format!(
                "{what} failed{}: {summary}",
                node.as_deref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default()
            ),
            next,
        );
        return;
    }
    if let OpKind::Gate { gate, .. } = &op.kind {
        evaluate_gate(s, op_index, *gate, op.node.clone(), &observed);
    }
}

pub(super) fn evaluate_gate(
    s: &mut Scratch,
    op: usize,
    gate: Gate,
    node: Option<String>,
    obs: &Observation,
) {
    let Some(run) = s.state.run.clone() else {
        return;
    };
    let ctx = gates::Ctx {
        inv: &run.inventory,
        target: s.state.target_provider.map_or("", Provider::as_str),
        params: &run.params,
        expiration: s.state.expiration,
        allow_expired_window: s.state.allow_expired_window,
        guarded: &s.state.guarded.clone(),
    };
    // A group gate (pool-capacity about a half) is judged about the whole half; a per-node
    // gate about a half, for each of its nodes (the verdict names the node it is about).
    let group = s
        .state
        .plan
        .get(op)
        .and_then(|o| o.group.clone())
        .filter(|_| node.is_none() && (halves::group_gate(gate) || gate.per_node()));
    let (verdict, node) = match &group {
        Some(g) if halves::group_gate(gate) => (
            halves::capacity(g, ctx.inv, ctx.params, obs, ctx.target),
            node,
        ),
        Some(g) => halves::each_node(gate, g, obs, &ctx),
        None => (gates::evaluate(gate, node.as_deref(), obs, &ctx), node),
    };
    match verdict {
        Verdict::Pass(detail) => s.emit(Event::GatePassed {
            op,
            gate: gate.name().into(),
            node,
            detail,
        }),
        Verdict::Fail { reason, next } => {
            s.emit(Event::GateFailed {
                op,
                gate: gate.name().into(),
                node: node.clone(),
                reason: reason.clone(),
                next: next.clone(),
            });
            halt(s, op, node, format!("gate {}: {reason}", gate.name()), next);
        }
        // Named after what happened (`cannot reach node2: host key changed ...`), not the
        // gate: the gate was not judged.
        Verdict::Unreachable { node, reason, next } => halt(s, op, Some(node), reason, next),
        Verdict::Breach { rows } => {
            let enforce = s.state.guard_mode() == GuardMode::Enforce;
            let n = node.clone().unwrap_or_default();
            for r in &rows {
                s.emit(Event::PoolBreach(Breach {
                    node: r.node.clone(),
                    lb: r.lb.clone(),
                    seen: r.seen(),
                    at: s.now,
                    last_out_at: None,
                    reverted_ms: None,
                    source: format!("{} gate", gate.name()),
                    cause: None,
                    error: None,
                }));
            }
            if enforce {
                start_effect(s, OpRef::Side, None, Lb::Maint { node: n }.into());
            }
            raise_breach(s);
        }
        Verdict::Ask {
            title,
            hazard,
            consequence,
            facts,
        } => s.emit(Event::HardStopRaised(HardStop {
            op,
            id: gate.name().into(),
            node,
            title,
            hazard,
            consequence,
            facts,
            proceed: "re-add the node to the pool".into(),
            in_doubt: None,
            host_key: None,
            drift: vec![],
            breach: vec![],
        })),
    }
}
