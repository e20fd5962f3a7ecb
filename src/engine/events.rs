//! Events (what happened; appended to the journal) and commands (what is asked of the engine).

use super::action::ActionSpec;
use super::facts::Observation;
use super::plan::Op;
use super::who::Who;
use crate::inventory::Inventory;
pub use crate::runbook::HardStopKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The journal's event schema version; bumped with an upcaster when an event changes shape.
/// 2: `run_started` records the compiled plan (`plan`, `plan_sha256`, `compiled_by`); journals
/// of schema 1 are upcast as they are read (`engine::recorded`, which reads every record back).
pub const SCHEMA: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Event {
    RunStarted(RunStarted),
    StepStarted {
        step: String,
    },
    StepCompleted {
        step: String,
    },
    /// Written (and fsynced) before an effect runs.
    Intent(Intent),
    /// Written after the effect reported back.
    Outcome(Outcome),
    GatePassed {
        op: usize,
        gate: String,
        node: Option<String>,
        detail: String,
    },
    GateFailed {
        op: usize,
        gate: String,
        node: Option<String>,
        reason: String,
        next: String,
    },
    HardStopRaised(HardStop),
    /// In the journal the runtime adds, when it writes this record and its `prev` is known,
    /// `signature` (an SSHSIG by the operator's SSH key: `format`, `namespace`, `public_key`,
    /// `fingerprint`, `armored`; see `journal::sign`) or `signature: null` with an
    /// `unsigned_reason`. They are not fields here because `decide` builds this variant without
    /// them; the fold ignores them, and journals without them fold as before.
    HardStopConfirmed {
        id: String,
        op: usize,
        #[serde(default)]
        node: Option<String>,
        #[serde(deserialize_with = "super::who::lenient")]
        who: Who,
        state_sha256: String,
    },
    HardStopDeclined {
        id: String,
        op: usize,
        #[serde(default)]
        node: Option<String>,
        #[serde(deserialize_with = "super::who::lenient")]
        who: Who,
    },
    PauseRequested {
        #[serde(deserialize_with = "super::who::lenient")]
        who: Who,
        /// Why: the operator asked (absent in the journal), or the operator's terminal hung up.
        #[serde(default, skip_serializing_if = "PauseCause::is_operator")]
        cause: PauseCause,
    },
    RunPaused {
        reason: String,
    },
    RunResumed {
        #[serde(deserialize_with = "super::who::lenient")]
        who: Who,
        drift: Vec<String>,
        in_doubt: Vec<u64>,
        /// What the fresh probe at resume found.
        #[serde(default, skip_serializing_if = "Observation::is_empty")]
        observed: Observation,
    },
    /// An in-doubt intent from before a crash: redone, or marked done by the operator.
    InDoubtResolved {
        id: u64,
        choice: String,
        #[serde(deserialize_with = "super::who::lenient")]
        who: Who,
    },
    RunHalted {
        op: usize,
        node: Option<String>,
        reason: String,
        next: String,
    },
    RunCompleted {
        summary: String,
    },
    Note {
        op: usize,
        message: String,
    },
    /// A node cutover took out of the pool was found back in it on some instance, between
    /// reads (the pool guard) or by a gate's read. Journaled after the guard reverted it.
    PoolBreach(Breach),
    /// What the client-impact meter measured so far (the runtime journals one every 10 s, at
    /// each phase change and when the meter stops): counts only, never a token.
    ClientImpact(Box<super::impact::ClientImpact>),
}

/// Why a pause was asked for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// The operator pressed p (or quit while an action ran).
    #[default]
    Operator,
    /// The operator's terminal went away (SIGHUP, or the tty read EOF/EIO): a dropped SSH
    /// session. Nobody is watching, so the run pauses at the next safe point.
    TerminalHangup,
}

impl PauseCause {
    pub fn is_operator(&self) -> bool {
        *self == PauseCause::Operator
    }

    /// The reason `run_paused` records for a pause of this cause.
    pub fn reason(self) -> &'static str {
        match self {
            PauseCause::Operator => "paused by the operator",
            PauseCause::TerminalHangup => "the terminal hung up",
        }
    }
}

/// A drained node seen taking traffic again on one load-balancer instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Breach {
    pub node: String,
    pub lb: String,
    /// What the instance showed, e.g. `UP 1/3 (admin ready)`.
    pub seen: String,
    /// When it was seen in the pool.
    pub at: DateTime<Utc>,
    /// The read before, where it was still out: the breach began after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_out_at: Option<DateTime<Utc>>,
    /// From seeing it to the instance showing it in maintenance again; None when not reverted
    /// (guard: alert, or the revert failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_ms: Option<u64>,
    /// `guard` (the watch between reads) or `gate` (the read right before an action).
    pub source: String,
    /// The likely cause, only when it can be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// When the revert failed: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Breach {
    /// One line: what was seen, where, and what was done.
    pub fn line(&self) -> String {
        let done = match (self.reverted_ms, &self.error) {
            (Some(ms), _) => format!("set back to maint {ms} ms after it was seen"),
            (None, Some(e)) => format!("NOT reverted: {e}"),
            (None, None) => "NOT reverted (guard: alert)".into(),
        };
        let since = self
            .last_out_at
            .map(|t| {
                format!(
                    "; out at the read {} ms before",
                    (self.at - t).num_milliseconds()
                )
            })
            .unwrap_or_default();
        format!(
            "{} back in the pool on {} at {} ({}; seen by the {}{since}): {done}{}",
            self.node,
            self.lb,
            self.at.format("%H:%M:%S%.3f"),
            self.seen,
            self.source,
            self.cause
                .as_deref()
                .map(|c| format!("; likely cause: {c}"))
                .unwrap_or_default()
        )
    }

    /// At most how long it was in the pool: from the last read that showed it out (or from when
    /// it was seen) to the revert. None while not reverted.
    pub fn exposed_ms(&self) -> Option<u64> {
        let before = self
            .last_out_at
            .map(|t| (self.at - t).num_milliseconds().max(0) as u64)
            .unwrap_or(0);
        self.reverted_ms.map(|r| before + r)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunStarted {
    pub schema: u32,
    pub run_id: String,
    pub runbook_name: String,
    pub runbook_title: String,
    pub runbook_sha256: String,
    /// The runbook text itself, so replay and resume never depend on a file that may have changed.
    pub runbook_source: String,
    pub runbook_origin: String,
    pub cluster: String,
    pub inventory: Inventory,
    pub params: BTreeMap<String, String>,
    #[serde(deserialize_with = "super::who::lenient")]
    pub who: Who,
    /// The compiled plan: the fold takes it as recorded and never compiles. `decide` fills it
    /// in on `Command::Start` (a plan given there is replaced).
    #[serde(default)]
    pub plan: Vec<Op>,
    /// sha256 of the plan's canonical JSON (`engine::recorded::plan_sha256`): a resume
    /// recompiles and compares.
    #[serde(default)]
    pub plan_sha256: String,
    /// The cutover that compiled the plan (`cutover 0.1.0`); empty before schema 2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compiled_by: String,
}

/// The op an effect belongs to: an op of the plan, or none (a side effect: accepting a host key,
/// draining a breached node again), whose outcome is recorded but never counts toward the op at
/// the cursor. Journals, intents, outcomes and effects carry it in its wire form, a number: the
/// plan index, or `usize::MAX` for a side effect ([`OpRef::wire`], [`OpRef::from_wire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpRef {
    Plan(usize),
    Side,
}

impl OpRef {
    /// The number journals carry for a side effect.
    const SIDE_WIRE: usize = usize::MAX;

    pub fn from_wire(op: usize) -> OpRef {
        if op == OpRef::SIDE_WIRE {
            OpRef::Side
        } else {
            OpRef::Plan(op)
        }
    }

    pub fn wire(self) -> usize {
        match self {
            OpRef::Plan(i) => i,
            OpRef::Side => OpRef::SIDE_WIRE,
        }
    }

    /// The plan index, unless this is a side effect.
    pub fn plan(self) -> Option<usize> {
        match self {
            OpRef::Plan(i) => Some(i),
            OpRef::Side => None,
        }
    }

    pub fn is_side(self) -> bool {
        self == OpRef::Side
    }
}

#[cfg(test)]
impl RunStarted {
    /// The flagship on the three-node fixture inventory, as a new run would start it (its plan
    /// not yet compiled): where the engine's unit tests begin.
    pub(crate) fn flagship_fixture() -> RunStarted {
        let source = std::fs::read_to_string("runbooks/fernet-to-jws.yaml").unwrap();
        let rb = crate::runbook::Runbook::parse(&source, "fernet-to-jws.yaml").unwrap();
        let inv =
            crate::inventory::Inventory::load("tests/fixtures/inventory-3.yaml".as_ref()).unwrap();
        RunStarted {
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
            who: super::who::Who::named("alice", "bastion1"),
            plan: Vec::new(),
            plan_sha256: String::new(),
            compiled_by: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Intent {
    pub id: u64,
    /// The op in its wire form; read it with [`Intent::op_ref`].
    pub op: usize,
    pub step: String,
    pub node: Option<String>,
    pub action: String,
    /// What will be done, in words and exact commands; never a secret.
    pub detail: String,
    /// Safe to run again if the outcome was lost.
    pub idempotent: bool,
    pub spec: ActionSpec,
    /// For an action that must happen out of the pool: ms from the node's last load-balancer
    /// read (the gate that guards it) to this intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_read_ms: Option<u64>,
}

impl Intent {
    pub fn op_ref(&self) -> OpRef {
        OpRef::from_wire(self.op)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub id: u64,
    /// The op in its wire form (the effect's); read it with [`Outcome::op_ref`].
    pub op: usize,
    pub node: Option<String>,
    pub ok: bool,
    pub summary: String,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Observation::is_empty")]
    pub observed: Observation,
    /// A failure the engine turns into a decision rather than a halt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl Outcome {
    pub fn op_ref(&self) -> OpRef {
        OpRef::from_wire(self.op)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Failure {
    /// The host is not in known_hosts: a person must look at the fingerprint.
    HostKeyUnknown {
        host: String,
        port: u16,
        fingerprint: String,
        key_openssh: String,
        known_hosts: String,
    },
    /// What to do next, for an ordinary failure.
    Hint { next: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HardStop {
    pub op: usize,
    pub id: String,
    pub node: Option<String>,
    pub title: String,
    /// The hazard, in plain words.
    pub hazard: String,
    /// What happens if the operator proceeds.
    pub consequence: String,
    /// The state that triggered it, line by line.
    pub facts: Vec<String>,
    /// What `Y` does here.
    pub proceed: String,
    /// Set when this hard stop decides an in-doubt intent: redo or mark done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_doubt: Option<u64>,
    /// Set when confirming accepts a host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<Failure>,
    /// Set when the fleet changed since the journal (on resume): confirming continues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Set when a drained node was found back in the pool: confirming re-checks the gates
    /// before the action at the cursor (the node is drained again first if it is still in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breach: Vec<Breach>,
}

impl HardStop {
    /// Which stop this is, exactly: its id, the op it stands at, its node and the intent it
    /// decides (see [`HardStopKey`]).
    pub fn stop_key(&self) -> HardStopKey {
        HardStopKey {
            id: self.id.clone(),
            op: self.op,
            node: self.node.clone(),
            in_doubt: self.in_doubt,
        }
    }

    /// The exact name the UI answers with (`ID#OP[#INTENT]`), so a key press can only ever
    /// answer the stop that was on screen. Answers files use the plain id or `ID@NODE`.
    pub fn key(&self) -> String {
        self.stop_key().exact()
    }

    /// Whether an answer names this hard stop (by plain id, at its node, or exactly by key).
    pub fn answers_to(&self, id: &str) -> bool {
        self.stop_key().answered_by(id)
    }
}

/// What the runtime (or a test) asks of the engine. Time and identity come in as values.
#[derive(Debug, Clone)]
pub enum Command {
    Start(Box<RunStarted>),
    /// Do whatever comes next, if anything may start now.
    Advance,
    /// An effect finished.
    Completed(Outcome),
    Confirm {
        id: String,
        who: Who,
    },
    Decline {
        id: String,
        who: Who,
    },
    /// For an in-doubt intent: mark it done instead of redoing it.
    MarkDone {
        id: String,
        who: Who,
    },
    Pause {
        who: Who,
    },
    /// The operator's terminal hung up: pause at the next safe point, as `Pause` does, and say
    /// why (the action in flight finishes first; a run already stopped records the hangup).
    HangUp {
        who: Who,
    },
    /// The pool guard saw a drained node back in a pool (and, enforcing, reverted it).
    Breach(Breach),
    /// Continue a paused or halted run (after a fresh probe; drift lines describe what changed).
    Resume {
        who: Who,
        drift: Vec<String>,
        observed: Observation,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunStarted(_) => "run_started",
            Event::StepStarted { .. } => "step_started",
            Event::StepCompleted { .. } => "step_completed",
            Event::Intent(_) => "intent",
            Event::Outcome(_) => "outcome",
            Event::GatePassed { .. } => "gate_passed",
            Event::GateFailed { .. } => "gate_failed",
            Event::HardStopRaised(_) => "hard_stop_raised",
            Event::HardStopConfirmed { .. } => "hard_stop_confirmed",
            Event::HardStopDeclined { .. } => "hard_stop_declined",
            Event::PauseRequested { .. } => "pause_requested",
            Event::RunPaused { .. } => "run_paused",
            Event::RunResumed { .. } => "run_resumed",
            Event::InDoubtResolved { .. } => "in_doubt_resolved",
            Event::RunHalted { .. } => "run_halted",
            Event::RunCompleted { .. } => "run_completed",
            Event::Note { .. } => "note",
            Event::PoolBreach(_) => "pool_breach",
            Event::ClientImpact(_) => "client_impact",
        }
    }

    /// The node an event is about, for the journal's `node` column.
    pub fn node(&self) -> Option<&str> {
        match self {
            Event::Intent(i) => i.node.as_deref(),
            Event::Outcome(o) => o.node.as_deref(),
            Event::GatePassed { node, .. }
            | Event::GateFailed { node, .. }
            | Event::RunHalted { node, .. } => node.as_deref(),
            Event::HardStopRaised(h) => h.node.as_deref(),
            Event::PoolBreach(b) => Some(&b.node),
            Event::HardStopConfirmed { node, .. } | Event::HardStopDeclined { node, .. } => {
                node.as_deref()
            }
            _ => None,
        }
    }

    /// `data` for the journal: the event's fields without the tag.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self).expect("events serialize") {
            serde_json::Value::Object(mut m) => m.remove("data").unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }
}
