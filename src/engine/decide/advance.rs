//! Moving a run forward: the op at the cursor, step boundaries, in-doubt intents, and the
//! gates that must have passed right before a guarded action.

use super::outcome::evaluate_gate;
use super::{Scratch, halt, raise_breach, start_effect, summary};
use crate::engine::action::ActionSpec;
use crate::engine::action::{Misc, probe_covers};
use crate::engine::events::*;
use crate::engine::gates;
use crate::engine::halves;
use crate::engine::plan::OpKind;
use crate::engine::state::{RunStatus, State, StepStatus};
use crate::runbook::{Gate, WaitCondition};

/// Move the run forward as far as it can go without waiting for the world or a person.
pub(super) fn advance(s: &mut Scratch) {
    loop {
        if s.state.status != RunStatus::Running {
            return;
        }
        if !s.state.in_flight.is_empty() {
            // In-doubt intents from before a crash are decided by a person unless safe to redo.
            let doubt: Vec<u64> = s.state.in_doubt.iter().copied().collect();
            for id in doubt {
                let Some(f) = s.state.in_flight.get(&id) else {
                    continue;
                };
                let intent = f.intent.clone();
                if intent.idempotent {
                    s.emit(Event::InDoubtResolved {
                        id,
                        choice: "redo".into(),
                        who: crate::engine::who::Who::cutover("cutover (idempotent action)"),
                    });
                } else {
                    s.emit(Event::HardStopRaised(HardStop {
                        op: intent.op,
                        id: "in-doubt".into(),
                        node: intent.node.clone(),
                        title: format!(
                            "Unknown whether `{}`{} finished",
                            intent.action,
                            intent.node.as_deref().map(|n| format!(" on {n}")).unwrap_or_default()
                        ),
                        hazard: format!(
                            "The run stopped after writing its intent and before its outcome: {}",
                            intent.detail
                        ),
                        consequence: "Y redoes the action. D marks it done without running it (choose D only after checking the node by hand). n leaves the run paused.".into(),
                        facts: vec![format!("intent #{} at step {}", intent.id, intent.step)],
                        proceed: "redo the action".into(),
                        in_doubt: Some(id),
                        host_key: None,
                        drift: vec![],
                        breach: vec![],
                    }));
                    return;
                }
            }
            if !s.state.in_flight.is_empty() {
                return;
            }
            continue;
        }
        if !s.state.open_breaches.is_empty() {
            // Nothing proceeds while a breach is open: a person confirms first.
            raise_breach(s);
            return;
        }
        if s.state.pause_requested {
            s.emit(Event::RunPaused {
                reason: s.state.pause_cause.reason().into(),
            });
            return;
        }
        let Some(op) = s.state.current_op().cloned() else {
            if let Some(step) = s
                .state
                .steps
                .iter()
                .find(|st| st.status == StepStatus::Active)
                .map(|st| st.id.clone())
            {
                s.emit(Event::StepCompleted { step });
            }
            let summary = summary(&s.state);
            s.emit(Event::RunCompleted { summary });
            return;
        };
        // Step boundaries.
        let step_pending = s
            .state
            .steps
            .iter()
            .find(|st| st.id == op.step)
            .is_some_and(|st| st.status == StepStatus::Pending);
        if step_pending {
            let active: Vec<String> = s
                .state
                .steps
                .iter()
                .filter(|st| st.status == StepStatus::Active && st.id != op.step)
                .map(|st| st.id.clone())
                .collect();
            for step in active {
                s.emit(Event::StepCompleted { step });
            }
            s.emit(Event::StepStarted {
                step: op.step.clone(),
            });
        }
        match &op.kind {
            OpKind::Note { message } => {
                s.emit(Event::Note {
                    op: op.index,
                    message: message.clone(),
                });
                continue;
            }
            OpKind::Confirm {
                id,
                title,
                message,
                consequence,
            } => {
                if !s.state.raised_at_cursor {
                    s.emit(Event::HardStopRaised(HardStop {
                        op: op.index,
                        id: id.clone(),
                        node: op.node.clone(),
                        title: title.clone(),
                        hazard: message.clone(),
                        consequence: consequence.clone(),
                        facts: if id == halves::SWAP_STOP {
                            halves::swap_facts(&s.state)
                        } else {
                            facts_for_confirm(&s.state)
                        },
                        proceed: "continue the run".into(),
                        in_doubt: None,
                        host_key: None,
                        drift: vec![],
                        breach: vec![],
                    }));
                }
                return;
            }
            OpKind::Gate { gate, .. } => {
                let Some(spec) = gate_probe(&s.state, op.index) else {
                    return;
                };
                // Judged on the read of the gates right before it when that read holds all
                // this gate needs (nothing but gates happened since, after the read's own op: a
                // gate, or the token check that issued and validated a token).
                if let Some(read) = &s.state.last_gate_read
                    && read.op < op.index
                    && (read.op..op.index).all(|i| {
                        let before = &s.state.plan[i];
                        before.step == op.step
                            && match before.kind {
                                OpKind::Gate { .. } => s.state.gates_passed.contains(&i),
                                OpKind::Act { .. } => i == read.op,
                                _ => false,
                            }
                    })
                    && probe_covers(&read.spec, &spec)
                {
                    let observed = read.observed.clone();
                    evaluate_gate(s, op.index, *gate, op.node.clone(), &observed);
                    continue;
                }
                let spec = shared_probe(&s.state, op.index).unwrap_or(spec);
                start_effect(s, OpRef::Plan(op.index), op.node.clone(), spec);
                return;
            }
            OpKind::WaitUntil {
                condition,
                max_secs,
            } => {
                let secs = match condition {
                    WaitCondition::OldTokensExpired => match s.state.old_tokens_irrelevant_at() {
                        Some((at, _)) => (at - s.now).num_seconds().max(0) as u64,
                        None => {
                            halt(
                                s,
                                op.index,
                                None,
                                "cannot wait for old tokens to expire: not every node has flipped yet".into(),
                                "finish the rolling step first, then resume".into(),
                            );
                            return;
                        }
                    },
                };
                let secs = max_secs.map(|m| m.min(secs)).unwrap_or(secs);
                start_effect(s, OpRef::Plan(op.index), None, Misc::Wait { secs }.into());
                return;
            }
            OpKind::Act { specs, .. } => {
                if let Err((reason, next)) = guards_hold(&s.state, op.index) {
                    halt(s, op.index, op.node.clone(), reason, next);
                    return;
                }
                let done: Vec<ActionSpec> = s.state.op_done.values().cloned().collect();
                for spec in specs {
                    if done.contains(spec) {
                        continue;
                    }
                    start_effect(s, OpRef::Plan(op.index), op.node.clone(), spec.clone());
                }
                return;
            }
        }
    }
}

/// What the gate op at `index` reads, fetched fresh right before it is judged.
pub fn gate_probe(state: &State, index: usize) -> Option<ActionSpec> {
    let op = state.plan.get(index)?;
    let OpKind::Gate { gate, .. } = &op.kind else {
        return None;
    };
    let inv = state.inventory()?;
    let params = state
        .run
        .as_ref()
        .map(|r| r.params.clone())
        .unwrap_or_default();
    Some(match (&op.group, gate) {
        // About a whole half: the half's capacity, or each of its nodes' token.
        (Some(g), Gate::PoolCapacity | Gate::ValidatedBeforeReadd) if op.node.is_none() => {
            halves::probe_for(*gate, g, inv, &params, &state.guarded).into()
        }
        (_, Gate::ValidatedBeforeSwap) => {
            halves::probe_for(*gate, halves::HALF_A, inv, &params, &state.guarded).into()
        }
        _ => gates::probe_for(*gate, op.node.as_deref(), inv),
    })
}

/// One read for the block of gates starting at `first`: the read of a gate of the block that
/// holds what every gate from `first` up to it needs (e.g. validated-before-readd's token is
/// among mixed-pool's), the longest such stretch. `None` when no later gate's read holds the
/// earlier ones' needs: then each gate reads for itself, and a pool read that must come last
/// before its action (out-of-pool after keys-everywhere) still does.
fn shared_probe(state: &State, first: usize) -> Option<ActionSpec> {
    let step = &state.plan.get(first)?.step;
    let mut specs = Vec::new();
    let mut best = None;
    for i in first..state.plan.len() {
        let op = &state.plan[i];
        if &op.step != step || !matches!(op.kind, OpKind::Gate { .. }) {
            break;
        }
        specs.push(gate_probe(state, i)?);
        if let Some(wide) = specs
            .iter()
            .find(|w| specs.iter().all(|n| probe_covers(w, n)))
            && specs.len() > 1
        {
            best = Some(wide.clone());
        }
    }
    best
}

/// Defense in depth: a guarded action runs only if the gates guarding it passed on fresh
/// probes immediately before it (the contiguous gate ops right before this op).
pub fn guards_hold(state: &State, index: usize) -> Result<(), (String, String)> {
    let op = &state.plan[index];
    let OpKind::Act { specs, .. } = &op.kind else {
        return Ok(());
    };
    // (gate, node) pairs: a per-node gate about each spec's node when the op acts on several
    // (a half step), a group gate once about the op's group.
    let mut required: Vec<(Gate, Option<String>)> = Vec::new();
    for spec in specs {
        for g in spec.required_gates() {
            let grouped =
                halves::group_gate(g) && (op.group.is_some() || spec.takes_out_group().is_some());
            let node = if g.per_node() && !grouped && op.node.is_none() {
                spec.node().map(str::to_string)
            } else if g.per_node() && !grouped {
                op.node.clone()
            } else {
                None
            };
            if !required.contains(&(g, node.clone())) {
                required.push((g, node));
            }
        }
    }
    // (gate, node, group) of the passed gates right before.
    let mut passed: Vec<(Gate, Option<String>, Option<String>)> = Vec::new();
    let mut i = index;
    while i > 0 {
        i -= 1;
        match &state.plan[i].kind {
            OpKind::Gate { gate, .. } if state.gates_passed.contains(&i) => passed.push((
                *gate,
                state.plan[i].node.clone(),
                state.plan[i].group.clone(),
            )),
            _ => break,
        }
    }
    for (g, about) in required {
        // A per-node gate passed about the op's whole half holds for each of its nodes.
        let held = passed.iter().any(|(p, n, group)| {
            *p == g
                && (!g.per_node()
                    || *n == about
                    || (n.is_none() && group.is_some() && *group == op.group))
        });
        if !held {
            let node = about.or(op.node.clone()).unwrap_or_else(|| {
                op.group
                    .clone()
                    .unwrap_or_else(|| "the half it takes out".into())
            });
            let (reason, next) = match g {
                Gate::OutOfPool => (
                    format!(
                        "refused: {} on {node} while it may be in the pool (gate out-of-pool has not passed right before)",
                        specs[0].name()
                    ),
                    format!("drain {node} on every load balancer first"),
                ),
                Gate::KeysEverywhere => (
                    format!(
                        "refused: flipping {node} to jws before every node holds the keypair (gate keys-everywhere has not passed)"
                    ),
                    "install the JWS keys on every node first".into(),
                ),
                Gate::FernetKeysEverywhere => (
                    format!(
                        "refused: flipping {node} to fernet before every node holds the Fernet keys"
                    ),
                    "restore the Fernet repositories first".into(),
                ),
                Gate::ValidatedBeforeReadd => (
                    format!(
                        "refused: re-adding {node} before a token issued directly at it validated (gate validated-before-readd)"
                    ),
                    format!("issue and validate a token at {node} directly first"),
                ),
                Gate::MixedPool => (
                    format!(
                        "refused: re-adding {node} without checking (and confirming) a mixed pool"
                    ),
                    "the mixed-pool gate must pass or be confirmed first".into(),
                ),
                Gate::PoolCapacity => (
                    format!(
                        "refused: draining {node} without checking that the pool keeps a server"
                    ),
                    "the pool-capacity gate must pass or be confirmed first".into(),
                ),
                other => (
                    format!("refused: gate {} has not passed", other.name()),
                    String::new(),
                ),
            };
            return Err((reason, next));
        }
    }
    Ok(())
}

fn facts_for_confirm(state: &State) -> Vec<String> {
    let mut v = Vec::new();
    for name in &state.node_order {
        if let Some(n) = state.nodes.get(name) {
            let provider = n
                .facts
                .as_ref()
                .and_then(|f| f.provider.clone())
                .unwrap_or_else(|| "?".into());
            let pool = if n.lb.is_empty() {
                "lb ?".to_string()
            } else if n.pooled() {
                "in pool".into()
            } else {
                "out of pool".into()
            };
            v.push(format!("{name}: {provider}, {pool}"));
        }
    }
    if let Some(t) = &state.trusts {
        v.push(format!("trusts: {}", t.count));
    }
    v
}
