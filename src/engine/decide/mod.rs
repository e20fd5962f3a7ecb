//! `decide`: every rule of a run. Given the state and a command, it returns the events to append
//! and the effects to run. Pure: time and identity arrive as values, nothing here does I/O.

use super::action::ActionSpec;
use super::action::{Lb, Misc};
use super::events::*;
use super::state::{RunStatus, State};
use crate::provider::Provider;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

mod advance;
mod breach;
mod outcome;
#[cfg(test)]
mod tests;

use advance::advance;
pub use advance::{gate_probe, guards_hold};
use breach::raise_breach;
use outcome::completed;

/// An effect for the runtime to run; it reports back with `Command::Completed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub id: u64,
    /// The op in its wire form (as its intent and outcome carry it); see [`Effect::op_ref`].
    pub op: usize,
    pub spec: ActionSpec,
}

impl Effect {
    pub fn op_ref(&self) -> OpRef {
        OpRef::from_wire(self.op)
    }
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
                    start_effect(&mut s, OpRef::Side, None, Lb::Maint { node }.into());
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
                    start_effect(&mut s, OpRef::Side, None, spec);
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
            let cause = PauseCause::Operator;
            if s.state.status == RunStatus::Running && s.state.in_flight.is_empty() {
                // Nothing in flight: the run pauses here.
                s.emit(Event::PauseRequested { who, cause });
                s.emit(Event::RunPaused {
                    reason: cause.reason().into(),
                });
            } else if s.state.can_pause().is_ok() {
                // It pauses once the actions in flight finish (see `advance`).
                s.emit(Event::PauseRequested { who, cause });
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
                .filter(|f| !f.intent.op_ref().is_side())
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

fn start_effect(s: &mut Scratch, op: OpRef, node: Option<String>, spec: ActionSpec) {
    let id = s.state.next_id.max(1);
    let step = op
        .plan()
        .and_then(|i| s.state.plan.get(i))
        .map(|o| o.step.clone())
        .unwrap_or_default();
    let node = spec.node().map(str::to_string).or(node);
    let pool_read_ms = match spec.node() {
        Some(node) if !op.is_side() && spec.reads_pool_first() => s
            .state
            .nodes
            .get(node)
            .and_then(|n| n.lb_at)
            .filter(|_| !s.state.lb_names.is_empty())
            .map(|at| (s.now - at).num_milliseconds().max(0) as u64),
        _ => None,
    };
    let op = op.wire();
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

fn halt(s: &mut Scratch, op: usize, node: Option<String>, reason: String, next: String) {
    s.emit(Event::RunHalted {
        op,
        node,
        reason,
        next,
    });
}

fn summary(state: &State) -> String {
    let n = state.node_order.len();
    let mut s = format!(
        "{n} nodes on {}",
        state.target_provider.map_or("target", Provider::as_str)
    );
    if let Some((a, b)) = state.old_tokens_irrelevant_at() {
        s.push_str(&format!(
            "; old tokens stop mattering at {} ({} for services using allow_expired)",
            a.format("%Y-%m-%d %H:%M:%SZ"),
            b.format("%Y-%m-%d %H:%M:%SZ")
        ));
    }
    if let Some(c) = state.old_tokens_cached_until() {
        s.push_str(&format!(
            "; until {} (one cache lifetime after the last flip) old tokens may still validate from the shared token cache",
            c.format("%Y-%m-%d %H:%M:%SZ")
        ));
    }
    s
}
