//! `decide`: every rule of a run. Given the state and a command, it returns the events to append
//! and the effects to run. Pure: time and identity arrive as values, nothing here does I/O.

use super::action::{Lb, Misc};
use super::events::*;
use super::facts::Observation;
use super::gates::{self, Verdict};
use super::plan::{ActionSpec, OpKind};
use super::state::{RunStatus, State, StepStatus};
use crate::inventory::GuardMode;
use crate::runbook::{Gate, WaitCondition};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// An effect for the runtime to run; it reports back with `Command::Completed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub id: u64,
    pub op: usize,
    pub spec: ActionSpec,
}

#[derive(Debug, Default, Clone)]
pub struct Decision {
    pub events: Vec<Event>,
    pub effects: Vec<Effect>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("no run has started")]
    NotStarted,
    #[error("a run has already started")]
    AlreadyStarted,
    #[error("there is no hard stop `{0}` waiting")]
    NoSuchHardStop(String),
    #[error("the run is {0}; nothing to resume")]
    NotResumable(String),
    #[error("the runbook does not compile into a plan: {0}")]
    Plan(String),
}

/// The op index of side effects that belong to no plan op (accepting a host key): their
/// outcomes are recorded but never count toward the op at the cursor.
pub const SIDE_OP: usize = usize::MAX;

struct Scratch {
    state: State,
    now: DateTime<Utc>,
    out: Decision,
}

impl Scratch {
    fn emit(&mut self, e: Event) {
        self.state.apply(&e, self.now);
        self.out.events.push(e);
    }
}

pub fn decide(state: &State, cmd: Command, now: DateTime<Utc>) -> Result<Decision, Refused> {
    let mut s = Scratch {
        state: state.clone(),
        now,
        out: Decision::default(),
    };
    match cmd {
        Command::Start(rs) => {
            if s.state.run.is_some() {
                return Err(Refused::AlreadyStarted);
            }
            let rs = super::recorded::planned(*rs).map_err(Refused::Plan)?;
            s.emit(Event::RunStarted(rs));
            advance(&mut s);
        }
        Command::Advance => {
            if s.state.run.is_none() {
                return Err(Refused::NotStarted);
            }
            advance(&mut s);
        }
        Command::Completed(o) => {
            if s.state.run.is_none() {
                return Err(Refused::NotStarted);
            }
            completed(&mut s, o);
            advance(&mut s);
        }
        Command::Breach(b) => {
            if s.state.run.is_none() {
                return Err(Refused::NotStarted);
            }
            let guarded = s.state.guarded.contains(&b.node);
            s.emit(Event::PoolBreach(b));
            // A node re-added on purpose since the guard read it is no breach any more; one
            // still guarded stops the run unless a person is already deciding something else
            // that must not be lost (an action in doubt, a host key, drift): then it waits.
            let plain_stop =
                s.state.hard_stop.as_ref().is_none_or(|h| {
                    h.in_doubt.is_none() && h.host_key.is_none() && h.drift.is_empty()
                });
            let live = matches!(
                s.state.status,
                RunStatus::Running | RunStatus::AwaitingConfirm
            );
            if guarded && live && plain_stop {
                raise_breach(&mut s);
            }
        }
        Command::Confirm { id, who } => {
            let Some(hs) = s.state.hard_stop.clone().filter(|h| h.answers_to(&id)) else {
                return Err(Refused::NoSuchHardStop(id));
            };
            if let Some(doubt) = hs.in_doubt {
                s.emit(Event::InDoubtResolved {
                    id: doubt,
                    choice: "redo".into(),
                    who,
                });
            } else {
                let state_sha256 =
                    hex::encode(Sha256::digest(serde_json::to_vec(&hs).unwrap_or_default()));
                s.emit(Event::HardStopConfirmed {
                    id: hs.id.clone(),
                    op: hs.op,
                    node: hs.node.clone(),
                    who,
                    state_sha256,
                });
                // A pool breach: drain again wherever the node is still in (idempotent); the
                // fold rewound the gates before the action at the cursor, read again next.
                let breached: BTreeSet<String> = hs
                    .breach
                    .iter()
                    .map(|b| b.node.clone())
                    .filter(|n| s.state.guarded.contains(n))
                    .collect();
                for node in breached {
                    start_effect(&mut s, SIDE_OP, None, Lb::Maint { node }.into());
                }
                if let Some(Failure::HostKeyUnknown {
                    host,
                    port,
                    key_openssh,
                    known_hosts,
                    ..
                }) = hs.host_key
                {
                    let spec = Misc::AcceptHostKey {
                        host,
                        port,
                        key_openssh,
                        known_hosts,
                    }
                    .into();
                    start_effect(&mut s, SIDE_OP, None, spec);
                }
            }
            advance(&mut s);
        }
        Command::MarkDone { id, who } => {
            let Some(hs) = s.state.hard_stop.clone().filter(|h| h.answers_to(&id)) else {
                return Err(Refused::NoSuchHardStop(id));
            };
            let Some(doubt) = hs.in_doubt else {
                return Err(Refused::NoSuchHardStop(id));
            };
            s.emit(Event::InDoubtResolved {
                id: doubt,
                choice: "mark-done".into(),
                who,
            });
            advance(&mut s);
        }
        Command::Decline { id, who } => {
            let Some(hs) = s.state.hard_stop.clone().filter(|h| h.answers_to(&id)) else {
                return Err(Refused::NoSuchHardStop(id));
            };
            s.emit(Event::HardStopDeclined {
                id: hs.id.clone(),
                op: hs.op,
                node: hs.node.clone(),
                who,
            });
        }
        Command::Pause { who } => {
            if s.state.status == RunStatus::Running {
                let cause = PauseCause::Operator;
                if s.state.in_flight.is_empty() {
                    s.emit(Event::PauseRequested { who, cause });
                    s.emit(Event::RunPaused {
                        reason: cause.reason().into(),
                    });
                } else if !s.state.pause_requested {
                    s.emit(Event::PauseRequested { who, cause });
                }
            }
        }
        Command::HangUp { who } => {
            let cause = PauseCause::TerminalHangup;
            match &s.state.status {
                // Nothing running, or waiting at a hard stop nobody can answer now (a safe
                // point: a resume raises it again): pause here.
                RunStatus::Running if s.state.in_flight.is_empty() => {
                    s.emit(Event::PauseRequested { who, cause });
                    s.emit(Event::RunPaused {
                        reason: cause.reason().into(),
                    });
                }
                RunStatus::AwaitingConfirm => {
                    s.emit(Event::PauseRequested { who, cause });
                    s.emit(Event::RunPaused {
                        reason: cause.reason().into(),
                    });
                }
                // An action is running: it finishes, then the run pauses (see `advance`). A
                // pause the operator asked for before is now this one.
                RunStatus::Running
                    if !(s.state.pause_requested && s.state.pause_cause == cause) =>
                {
                    s.emit(Event::PauseRequested { who, cause });
                }
                // Already stopped (paused, halted, completed) or never started: nothing to do.
                _ => {}
            }
        }
        Command::Resume {
            who,
            drift,
            observed,
        } => {
            match &s.state.status {
                RunStatus::NotStarted => return Err(Refused::NotStarted),
                RunStatus::Completed => return Err(Refused::NotResumable("completed".into())),
                _ => {}
            }
            let in_doubt: Vec<u64> = s
                .state
                .in_flight
                .values()
                .filter(|f| f.intent.op != SIDE_OP)
                .map(|f| f.intent.id)
                .collect();
            // Drift an earlier resume raised and nobody confirmed stays: the fleet a resume
            // read is not the new normal until a person says so.
            let mut drift = drift;
            for earlier in s.state.pending_drift.iter().rev() {
                if !drift.contains(earlier) {
                    drift.insert(0, earlier.clone());
                }
            }
            s.emit(Event::RunResumed {
                who,
                drift: drift.clone(),
                in_doubt,
                observed,
            });
            if !drift.is_empty() {
                // The world is not what the journal says: a person looks before anything moves.
                let op = s.state.cursor;
                s.emit(Event::HardStopRaised(HardStop {
                    op,
                    id: "drift".into(),
                    node: None,
                    title: "The fleet changed since the journal".into(),
                    hazard: format!(
                        "A fresh probe at resume differs from what the journal recorded ({} {}, listed below). Something or someone changed the fleet while the run was stopped.",
                        drift.len(),
                        if drift.len() == 1 { "difference" } else { "differences" }
                    ),
                    consequence: "Y continues from where the journal stopped; every gate ahead is checked again on fresh probes before the action it guards. n leaves the run paused so you can look first.".into(),
                    facts: drift.clone(),
                    proceed: "continue, re-checking every gate".into(),
                    in_doubt: None,
                    host_key: None,
                    drift,
                    breach: vec![],
                }));
                return Ok(s.out);
            }
            advance(&mut s);
        }
    }
    Ok(s.out)
}

fn start_effect(s: &mut Scratch, op: usize, node: Option<String>, spec: ActionSpec) {
    let id = s.state.next_id.max(1);
    let step = s
        .state
        .plan
        .get(op)
        .map(|o| o.step.clone())
        .unwrap_or_default();
    let node = spec.node().map(str::to_string).or(node);
    let pool_read_ms = match spec.node() {
        Some(node) if op != SIDE_OP && spec.reads_pool_first() => s
            .state
            .nodes
            .get(node)
            .and_then(|n| n.lb_at)
            .filter(|_| !s.state.lb_names.is_empty())
            .map(|at| (s.now - at).num_milliseconds().max(0) as u64),
        _ => None,
    };
    s.emit(Event::Intent(Intent {
        id,
        op,
        step,
        node,
        action: spec.name().to_string(),
        detail: spec.describe(),
        idempotent: spec.idempotent(),
        spec: spec.clone(),
        pool_read_ms,
    }));
    s.out.effects.push(Effect { id, op, spec });
}

/// Move the run forward as far as it can go without waiting for the world or a person.
fn advance(s: &mut Scratch) {
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
                        who: super::who::Who::cutover("cutover (idempotent action)"),
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
                        facts: facts_for_confirm(&s.state),
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
                let Some(inv) = s.state.inventory().cloned() else {
                    return;
                };
                let spec = gates::probe_for(*gate, op.node.as_deref(), &inv);
                start_effect(s, op.index, op.node.clone(), spec);
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
                start_effect(s, op.index, None, Misc::Wait { secs }.into());
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
                    start_effect(s, op.index, op.node.clone(), spec.clone());
                }
                return;
            }
        }
    }
}

/// Defense in depth: a guarded action runs only if the gates guarding it passed on fresh
/// probes immediately before it (the contiguous gate ops right before this op).
pub fn guards_hold(state: &State, index: usize) -> Result<(), (String, String)> {
    let op = &state.plan[index];
    let OpKind::Act { specs, .. } = &op.kind else {
        return Ok(());
    };
    let mut required: Vec<Gate> = Vec::new();
    for spec in specs {
        required.extend(spec.required_gates());
    }
    let mut passed: Vec<Gate> = Vec::new();
    let mut i = index;
    while i > 0 {
        i -= 1;
        match &state.plan[i].kind {
            OpKind::Gate { gate, .. }
                if state.gates_passed.contains(&i)
                    && (!gate.per_node() || state.plan[i].node == op.node) =>
            {
                passed.push(*gate)
            }
            _ => break,
        }
    }
    for g in required {
        if !passed.contains(&g) {
            let node = op.node.clone().unwrap_or_default();
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

fn halt(s: &mut Scratch, op: usize, node: Option<String>, reason: String, next: String) {
    s.emit(Event::RunHalted {
        op,
        node,
        reason,
        next,
    });
}

fn completed(s: &mut Scratch, o: Outcome) {
    let op_index = o.op;
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
    if op_index == SIDE_OP && !ok && breach_repair {
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
    if !known || op_index == SIDE_OP || op_index != s.state.cursor {
        // A late outcome (after a halt) or a side effect: recorded, nothing more to decide.
        return;
    }
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

fn evaluate_gate(s: &mut Scratch, op: usize, gate: Gate, node: Option<String>, obs: &Observation) {
    let Some(run) = s.state.run.clone() else {
        return;
    };
    let target = s.state.target_provider.clone();
    let ctx = gates::Ctx {
        inv: &run.inventory,
        target: &target,
        params: &run.params,
        expiration: s.state.expiration,
        allow_expired_window: s.state.allow_expired_window,
        guarded: &s.state.guarded.clone(),
    };
    match gates::evaluate(gate, node.as_deref(), obs, &ctx) {
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
                start_effect(s, SIDE_OP, None, Lb::Maint { node: n }.into());
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

/// The hard stop for every open breach: what was seen, what the guard did, what Y does.
fn raise_breach(s: &mut Scratch) {
    let breaches = s.state.open_breaches.clone();
    if breaches.is_empty() {
        return;
    }
    let nodes: BTreeSet<String> = breaches.iter().map(|b| b.node.clone()).collect();
    let names = nodes.iter().cloned().collect::<Vec<_>>().join(", ");
    let enforce = s.state.guard_mode() == GuardMode::Enforce;
    let open: Vec<&Breach> = breaches
        .iter()
        .filter(|b| b.reverted_ms.is_none())
        .collect();
    let longest = breaches.iter().filter_map(Breach::exposed_ms).max();
    let instances: BTreeSet<&str> = breaches.iter().map(|b| b.lb.as_str()).collect();
    let hazard = format!(
        "cutover had taken {names} out of the pool, and {} put {} back without cutover asking. HAProxy does this on a reload without a server-state file (config management reloads it), and so does another operator's `set server ... state ready`. While it is in, clients reach a node cutover is changing.",
        instances.iter().copied().collect::<Vec<_>>().join(", "),
        if nodes.len() == 1 { "it" } else { "them" }
    );
    let consequence = if open.is_empty() {
        format!(
            "The pool guard set it back to maint at once: it was in the pool for at most {} ms (from the last read that showed it out to the revert), and clients may have reached it then. Y makes sure {names} is in maint on every instance, reads the load balancers again and goes on only once it is out everywhere. n pauses the run.",
            longest.unwrap_or(0)
        )
    } else if enforce {
        format!(
            "cutover is setting {names} back to maint now. Y makes sure it is in maint on every instance, reads the load balancers again and goes on only once it is out everywhere. n pauses the run."
        )
    } else {
        format!(
            "guard: alert — {names} is still in the pool on {}. Y sets it to maint there, reads again and goes on only once it is out everywhere. n pauses the run: then set it to maint by hand (set server BACKEND/SERVER state maint) on every instance.",
            open.iter()
                .map(|b| b.lb.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    s.emit(Event::HardStopRaised(HardStop {
        op: s.state.cursor,
        id: "pool-breach".into(),
        node: (nodes.len() == 1).then(|| names.clone()),
        title: format!("{names} was put back into the pool"),
        hazard,
        consequence,
        facts: breaches.iter().map(Breach::line).collect(),
        proceed: "drain again and re-check before going on".into(),
        in_doubt: None,
        host_key: None,
        drift: vec![],
        breach: breaches,
    }));
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

fn summary(state: &State) -> String {
    let n = state.node_order.len();
    let mut s = format!(
        "{n} nodes on {}",
        if state.target_provider.is_empty() {
            "target"
        } else {
            &state.target_provider
        }
    );
    if let Some((a, b)) = state.old_tokens_irrelevant_at() {
        s.push_str(&format!(
            "; old tokens stop mattering at {} ({} for services using allow_expired)",
            a.format("%Y-%m-%d %H:%M:%SZ"),
            b.format("%Y-%m-%d %H:%M:%SZ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn who() -> crate::engine::who::Who {
        crate::engine::who::Who::named("alice", "bastion1")
    }

    /// A run of the flagship on the three-node fixture, its first effect (the preflight's)
    /// in flight.
    fn started() -> (State, Effect, DateTime<Utc>) {
        let source = std::fs::read_to_string("runbooks/fernet-to-jws.yaml").unwrap();
        let rb = crate::runbook::Runbook::parse(&source, "fernet-to-jws.yaml").unwrap();
        let inv =
            crate::inventory::Inventory::load("tests/fixtures/inventory-3.yaml".as_ref()).unwrap();
        let rs = RunStarted {
            schema: SCHEMA,
            run_id: "run-1".into(),
            runbook_name: rb.name.clone(),
            runbook_title: rb.title.clone(),
            runbook_sha256: "x".into(),
            runbook_source: source,
            runbook_origin: "runbooks/fernet-to-jws.yaml".into(),
            cluster: inv.cluster.clone(),
            params: rb.resolve_params(&Default::default()).unwrap(),
            inventory: inv,
            who: who(),
            plan: Vec::new(),
            plan_sha256: String::new(),
            compiled_by: String::new(),
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap();
        let mut state = State::default();
        let d = decide(&state, Command::Start(Box::new(rs)), now).unwrap();
        apply(&mut state, &d, now);
        let eff = d.effects.first().cloned().expect("a first effect");
        (state, eff, now)
    }

    fn apply(state: &mut State, d: &Decision, now: DateTime<Utc>) {
        for e in &d.events {
            state.apply(e, now);
        }
    }

    fn kinds(d: &Decision) -> Vec<&'static str> {
        d.events.iter().map(|e| e.kind()).collect()
    }

    fn failed(eff: &Effect) -> Outcome {
        Outcome {
            id: eff.id,
            op: eff.op,
            node: eff.spec.node().map(str::to_string),
            ok: false,
            summary: "ks1: `systemctl restart keystone` killed by SIGHUP".into(),
            duration_ms: 5,
            observed: Default::default(),
            failure: None,
        }
    }

    #[test]
    fn a_pause_request_ends_with_the_halt_it_came_before() {
        for hangup in [false, true] {
            let (mut state, eff, now) = started();
            let cmd = if hangup {
                Command::HangUp { who: who() }
            } else {
                Command::Pause { who: who() }
            };
            let d = decide(&state, cmd, now).unwrap();
            assert_eq!(kinds(&d), vec!["pause_requested"], "an action is in flight");
            apply(&mut state, &d, now);
            assert!(state.pause_requested);
            // The action in flight fails: the run halts, and the request with it.
            let d = decide(&state, Command::Completed(failed(&eff)), now).unwrap();
            apply(&mut state, &d, now);
            assert!(
                matches!(state.status, RunStatus::Halted { .. }),
                "{:?}",
                state.status
            );
            assert!(!state.pause_requested, "the halt ended the pause request");
            // The next resume is not paused by it.
            let d = decide(
                &state,
                Command::Resume {
                    who: who(),
                    drift: vec![],
                    observed: Default::default(),
                },
                now,
            )
            .unwrap();
            assert!(!kinds(&d).contains(&"run_paused"), "{:?}", kinds(&d));
            apply(&mut state, &d, now);
            assert_eq!(state.status, RunStatus::Running);
        }
    }

    #[test]
    fn a_request_from_an_earlier_session_does_not_pause_the_resume() {
        // The session that asked crashed before the action's outcome: its request is not the
        // resumed session's.
        let (mut state, _eff, now) = started();
        let d = decide(&state, Command::Pause { who: who() }, now).unwrap();
        apply(&mut state, &d, now);
        let d = decide(
            &state,
            Command::Resume {
                who: who(),
                drift: vec![],
                observed: Default::default(),
            },
            now,
        )
        .unwrap();
        apply(&mut state, &d, now);
        assert!(!state.pause_requested);
        assert!(!kinds(&d).contains(&"run_paused"), "{:?}", kinds(&d));
    }

    #[test]
    fn a_hangup_pauses_after_the_action_in_flight_saying_why() {
        let (mut state, eff, now) = started();
        let d = decide(&state, Command::HangUp { who: who() }, now).unwrap();
        let Event::PauseRequested { cause, .. } = &d.events[0] else {
            panic!("{:?}", kinds(&d));
        };
        assert_eq!(*cause, PauseCause::TerminalHangup);
        assert_eq!(d.events[0].data()["cause"], "terminal_hangup");
        apply(&mut state, &d, now);
        // A second hangup (SIGHUP and EOF both seen) asks nothing more.
        assert!(
            decide(&state, Command::HangUp { who: who() }, now)
                .unwrap()
                .events
                .is_empty()
        );
        // The probe in flight comes back: the run pauses before anything new starts, and
        // says the terminal hung up.
        let mut ok = failed(&eff);
        ok.ok = true;
        ok.summary = "ok".into();
        let d = decide(&state, Command::Completed(ok), now).unwrap();
        assert_eq!(kinds(&d), vec!["outcome", "run_paused"]);
        assert!(d.effects.is_empty());
        apply(&mut state, &d, now);
        assert_eq!(
            state.status,
            RunStatus::Paused {
                reason: "the terminal hung up".into()
            }
        );
        assert!(!state.pause_requested);
        // An operator's pause still reads as one (no cause in the journal).
        let (state, _, now) = started();
        let d = decide(&state, Command::Pause { who: who() }, now).unwrap();
        assert!(d.events[0].data().get("cause").is_none());
    }

    #[test]
    fn a_hangup_at_a_hard_stop_pauses_there() {
        let (mut state, eff, now) = started();
        // Forge the wait: the probe is back, a hard stop is up.
        let mut ok = failed(&eff);
        ok.ok = true;
        state.apply(&Event::Outcome(ok), now);
        let hs = HardStop {
            op: state.cursor,
            id: "jws-payload-readable".into(),
            node: None,
            title: "t".into(),
            hazard: "h".into(),
            consequence: "c".into(),
            facts: vec![],
            proceed: "p".into(),
            in_doubt: None,
            host_key: None,
            drift: vec![],
            breach: vec![],
        };
        state.apply(&Event::HardStopRaised(hs), now);
        let d = decide(&state, Command::HangUp { who: who() }, now).unwrap();
        assert_eq!(kinds(&d), vec!["pause_requested", "run_paused"]);
        apply(&mut state, &d, now);
        assert!(state.hard_stop.is_none() && !state.pause_requested);
        assert!(matches!(state.status, RunStatus::Paused { .. }));
    }
}
