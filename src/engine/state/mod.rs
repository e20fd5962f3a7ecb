//! The run's state: a fold of its events. `apply` only records; every rule lives in `decide`.

mod apply;
mod logbook;
mod questions;
mod views;

pub use logbook::LogBook;
pub use questions::NotNow;
pub use views::*;

use crate::engine::action::ActionSpec;
use crate::engine::events::{Breach, HardStop, PauseCause, RunStarted};
use crate::engine::facts::*;
use crate::engine::plan::{Op, OpKind};
use crate::inventory::Inventory;
use crate::provider::Provider;
use crate::runbook::Runbook;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub enum RunStatus {
    #[default]
    NotStarted,
    Running,
    /// Waiting for a person at a hard stop.
    AwaitingConfirm,
    Paused {
        reason: String,
    },
    Halted {
        reason: String,
        next: String,
    },
    Completed,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct State {
    /// What the run started with, the runbook and the plan never change once it started: they
    /// are shared, not copied, by the copies of the state (the engine's scratch copy on every
    /// command, the one the screen is sent).
    pub run: Option<std::sync::Arc<RunStarted>>,
    pub runbook: Option<std::sync::Arc<Runbook>>,
    /// The provider the runbook moves the fleet to (none before the run has started).
    pub target_provider: Option<Provider>,
    pub plan: std::sync::Arc<Vec<Op>>,
    pub steps: Vec<StepView>,
    pub cursor: usize,
    pub status: RunStatus,
    pub nodes: BTreeMap<String, NodeView>,
    pub node_order: Vec<String>,
    pub lb_names: Vec<String>,
    pub lb_errors: Vec<String>,
    /// Load-balancer name → how that instance would come through a reload (from its config),
    /// as the last full probe read it. Kept until a full probe reads it again.
    pub lb_reload: BTreeMap<String, ReloadFacts>,
    pub matrix: Option<Matrix>,
    pub trusts: Option<TrustSummary>,
    pub in_flight: BTreeMap<u64, InFlight>,
    /// Effects of the op at the cursor that finished well, with what they did.
    pub op_done: BTreeMap<u64, ActionSpec>,
    /// Gate ops (plan indices) that passed, or whose hard stop was confirmed.
    pub gates_passed: BTreeSet<usize>,
    /// Effects of the op at the cursor that failed.
    pub op_failed: BTreeSet<u64>,
    /// Intents whose outcome a crash lost, waiting for the operator.
    pub in_doubt: BTreeSet<u64>,
    pub hard_stop: Option<HardStop>,
    pub pause_requested: bool,
    /// Why the pending pause was asked for (meaningful while `pause_requested`).
    pub pause_cause: PauseCause,
    pub next_id: u64,
    pub log: LogBook,
    pub expiration: u64,
    pub allow_expired_window: u64,
    pub last_flip_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub drift: Vec<String>,
    pub events: u64,
    /// Hard stops confirmed so far: (id, who).
    pub confirmations: Vec<(String, String)>,
    /// Set when the cursor's op is a hard stop the engine already raised.
    pub raised_at_cursor: bool,
    /// The last resume, until the operator decides something after it.
    pub resumed: Option<ResumeNote>,
    /// Drift a resume found that nobody has confirmed yet: it is raised again on every resume
    /// until someone confirms it (a second resume must not take the changed fleet as normal).
    pub pending_drift: Vec<String>,
    /// Nodes cutover drained and has not deliberately re-added: the pool guard watches them.
    pub guarded: BTreeSet<String>,
    /// Breaches no person has confirmed yet: nothing proceeds while one is open.
    pub open_breaches: Vec<Breach>,
    /// What the client-impact meter measured (`client_impact`), and the mixed windows.
    pub impact: crate::engine::impact::ImpactView,
    /// The last gate's read, while nothing has happened since but gates judged on it: the
    /// gates right after it that need no more than it read are judged on it too (one read for
    /// a block of gates). Forgotten at any intent, hard stop, pause, halt or resume.
    #[serde(skip)]
    pub last_gate_read: Option<GateRead>,
}

/// A gate op's probe (what it read and what it saw), for the gates right after it.
#[derive(Debug, Clone)]
pub struct GateRead {
    pub op: usize,
    pub spec: ActionSpec,
    pub observed: Observation,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResumeNote {
    pub at: DateTime<Utc>,
    pub who: String,
    pub drift: Vec<String>,
}

impl State {
    pub fn inventory(&self) -> Option<&Inventory> {
        self.run.as_ref().map(|r| &r.inventory)
    }

    /// What the pool guard does on a breach: the runbook's `guard:`, else the inventory's,
    /// else enforce.
    pub fn guard_mode(&self) -> crate::inventory::GuardMode {
        self.runbook
            .as_ref()
            .and_then(|r| r.guard)
            .or_else(|| self.inventory().and_then(|i| i.guard))
            .unwrap_or_default()
    }

    pub fn current_op(&self) -> Option<&Op> {
        self.plan.get(self.cursor)
    }

    pub fn current_step(&self) -> Option<&StepView> {
        let op = self.current_op()?;
        self.steps.iter().find(|s| s.id == op.step)
    }

    /// The pool: nodes in at least one instance's pool, grouped by the provider they run. A
    /// pooled node whose provider could not be read (unreachable) is not a provider of its own:
    /// it is left out here and named by [`State::pool_unread`], so one unreadable node never
    /// reads as a mixed pool.
    pub fn pool(&self) -> PoolView {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in &self.node_order {
            let Some(n) = self.nodes.get(name) else {
                continue;
            };
            if !n.pooled() {
                continue;
            }
            if let Some(p) = n.running_provider() {
                by.entry(p).or_default().push(name.clone());
            }
        }
        match by.len() {
            0 => PoolView::Unknown,
            1 => PoolView::Consistent(by.into_keys().next().unwrap_or_default()),
            _ => PoolView::Mixed(by),
        }
    }

    /// Pooled nodes whose provider could not be read (see [`State::pool`]).
    pub fn pool_unread(&self) -> Vec<String> {
        self.node_order
            .iter()
            .filter(|name| {
                self.nodes
                    .get(*name)
                    .is_some_and(|n| n.pooled() && n.running_provider().is_none())
            })
            .cloned()
            .collect()
    }

    /// Every node is configured for the target provider.
    pub fn all_flipped(&self) -> bool {
        !self.nodes.is_empty()
            && self.nodes.values().all(|n| {
                n.facts
                    .as_ref()
                    .and_then(|f| f.provider.as_deref())
                    .is_some_and(|p| self.is_target(p))
            })
    }

    /// When tokens of the old provider stop mattering: (for ordinary clients, for services that
    /// validate with allow_expired). Known once every node has flipped.
    pub fn old_tokens_irrelevant_at(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let last = self.last_flip_at?;
        if !self.all_flipped() {
            return None;
        }
        let exp = chrono::Duration::seconds(self.expiration as i64);
        let win = chrono::Duration::seconds(self.allow_expired_window as i64);
        Some((last + exp, last + exp + win))
    }

    pub fn progress(&self) -> (usize, usize) {
        (self.cursor.min(self.plan.len()), self.plan.len())
    }
}

/// "alice@bastion", or "alice(as root)@bastion" under sudo: who did it, for people.
pub fn who_label(who: &crate::engine::who::Who) -> String {
    who.actor_label()
}
