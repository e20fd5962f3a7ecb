//! What the state shows: steps, nodes, the pool, log lines.

use crate::engine::action::Phase;
use crate::engine::events::{Breach, Intent};
use crate::engine::facts::*;
use crate::runbook::Scope;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum StepStatus {
    #[default]
    Pending,
    Active,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub id: String,
    pub title: String,
    pub description: String,
    pub scope: Scope,
    pub status: StepStatus,
    /// Index range of this step's ops in the plan.
    pub ops: std::ops::Range<usize>,
}

/// Where a node is in the rolling change, as far as the journal knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum NodePhase {
    #[default]
    Waiting,
    Draining,
    OutOfPool,
    Flipped,
    Restarted,
    Validated,
    Rejoined,
    Failed,
}

impl From<Phase> for NodePhase {
    fn from(p: Phase) -> NodePhase {
        match p {
            Phase::Draining => NodePhase::Draining,
            Phase::OutOfPool => NodePhase::OutOfPool,
            Phase::Flipped => NodePhase::Flipped,
            Phase::Restarted => NodePhase::Restarted,
            Phase::Rejoined => NodePhase::Rejoined,
        }
    }
}

impl NodePhase {
    pub fn label(&self) -> &'static str {
        match self {
            NodePhase::Waiting => "waiting",
            NodePhase::Draining => "draining",
            NodePhase::OutOfPool => "out of pool",
            NodePhase::Flipped => "flipped",
            NodePhase::Restarted => "restarted",
            NodePhase::Validated => "validated",
            NodePhase::Rejoined => "rejoined",
            NodePhase::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct NodeView {
    pub name: String,
    pub facts: Option<std::sync::Arc<NodeFacts>>,
    pub facts_at: Option<DateTime<Utc>>,
    /// Per load-balancer instance.
    pub lb: BTreeMap<String, LbServer>,
    pub lb_at: Option<DateTime<Utc>>,
    pub last_token: Option<TokenCheck>,
    pub token_at: Option<DateTime<Utc>>,
    pub phase: NodePhase,
    pub flipped_at: Option<DateTime<Utc>>,
    /// What is running on this node right now.
    pub activity: Option<String>,
    pub last_error: Option<String>,
    /// Pool breaches seen on this node (back in a pool while cutover had it out), and the last.
    pub breaches: u32,
    pub last_breach: Option<Breach>,
    /// The action whose outcome on this node last failed (cleared by the next success).
    pub last_failed_action: Option<String>,
}

impl NodeView {
    /// The provider the node is running, as its last direct token showed; else its config.
    pub fn running_provider(&self) -> Option<String> {
        match self.last_token.as_ref().map(|t| t.format) {
            Some(f @ (TokenFormat::Jws | TokenFormat::Fernet)) => Some(f.as_str().into()),
            _ => self.facts.as_ref().and_then(|f| f.provider.clone()),
        }
    }

    /// In the pool of at least one load balancer instance.
    pub fn pooled(&self) -> bool {
        self.lb.values().any(|s| s.in_pool())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub node: Option<String>,
    pub action: String,
    pub text: String,
    pub level: LogLevel,
    pub duration_ms: Option<u64>,
}

/// How a log line reads: its words and its level come from the narrator.
pub use crate::engine::narrate::LogLevel;

#[derive(Debug, Clone, Serialize)]
pub struct InFlight {
    pub intent: Intent,
    pub started: DateTime<Utc>,
}

/// The pool as the load balancers and the last direct tokens show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PoolView {
    Unknown,
    Consistent(String),
    Mixed(BTreeMap<String, Vec<String>>),
}
