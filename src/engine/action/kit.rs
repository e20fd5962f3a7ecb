//! What every action family shares: the words an action is known by, the compile context a
//! family reads, the pieces its compile returns, and the questions the rest of the engine asks
//! a spec (what it may change, which phase it leaves its node in).
//!
//! Families import this file; this file imports no family (no loop).

use crate::inventory::Inventory;
use crate::runbook::{Gate, Item, Step, WaitCondition};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// How long an `until_up` probe waits for a passed health check (HAProxy's `inter` is
/// typically 1-2 s; `rise` checks after a DOWN take longer, and then the gate says why).
pub const UNTIL_UP_SECS: u64 = 10;

/// An action's words, typed once in its family's file: its name (as runbooks, intents, the
/// journal and the log spell it), a short label for narrow columns, and what a node doing it
/// is doing (a verb for the node table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub name: &'static str,
    pub short: &'static str,
    pub verb: &'static str,
}

/// Fills a template, with the node's variables when a node is given.
pub type Render<'a> = dyn Fn(&str, Option<&str>) -> Result<String, PlanError> + 'a;

/// One runbook item at one place of the plan: what a family's compile reads.
pub struct Cx<'a> {
    pub step: &'a Step,
    pub item: &'a Item,
    /// The node of an each-node step's pass (None: fleet-level).
    pub node: Option<String>,
    /// The nodes the item acts on: its node, or every node in an all-nodes step.
    pub targets: Vec<String>,
    /// Every node of the inventory, in order.
    pub nodes: Vec<String>,
    pub inv: &'a Inventory,
    /// Whether this step already took `node` out of the pool (an earlier drain for it).
    pub drained_in_step: bool,
    /// Fill a template (the node's variables when a node is given).
    pub render: &'a Render<'a>,
    /// Half A and half B, when the plan ranges over halves (a half step or a swap).
    pub halves: Option<(Vec<String>, Vec<String>)>,
}

impl Cx<'_> {
    /// A compile error about this item's step.
    pub fn error(&self, msg: impl std::fmt::Display) -> PlanError {
        PlanError(format!("step `{}`: {msg}", self.step.id))
    }

    /// One spec per target; an item that acts on nodes needs some.
    pub fn per_target<S>(
        &self,
        f: impl Fn(&str) -> Result<S, PlanError>,
    ) -> Result<Vec<S>, PlanError> {
        if self.targets.is_empty() {
            return Err(self.error(format!(
                "`{}` acts on nodes; use scope each-node or all-nodes",
                self.item.name()
            )));
        }
        self.targets.iter().map(|t| f(t)).collect()
    }

    /// Actions that change one node at a time belong in each-node steps; a half step
    /// (`half-a`, `half-b`) changes its half's nodes together, one spec per node.
    pub fn one_node(&self, what: &str) -> Result<(), PlanError> {
        if self.targets.len() == 1
            || (self.step.scope.group().is_some() && !self.targets.is_empty())
        {
            Ok(())
        } else {
            Err(self.error(format!(
                "{} {what} and must be in an each-node step (or a half-a / half-b step of a halves strategy)",
                self.item.name()
            )))
        }
    }

    /// The nodes of an item that acts fleet-wide unless its step names some.
    pub fn targets_or_all(&self) -> Vec<String> {
        if self.targets.is_empty() {
            self.nodes.clone()
        } else {
            self.targets.clone()
        }
    }
}

/// What a family's compile makes of one item, in order. The gates an action always requires
/// ([`crate::engine::action::ActionSpec::required_gates`]) are inserted by the plan before
/// its `Act`; a family adds here only the guards that depend on where the item is.
#[derive(Debug)]
pub enum Piece<S> {
    /// A gate before what follows: about the item's node for a per-node gate, else the fleet.
    Guard(Gate),
    /// The item's action, one op over these specs.
    Act(Vec<S>),
    /// Wait until a condition holds, at most `max_secs` if given.
    WaitUntil {
        condition: WaitCondition,
        max_secs: Option<u64>,
    },
}

impl<S> Piece<S> {
    /// The same piece over another spec type (a family's spec into the plan's).
    pub fn map<T>(self, f: impl Fn(S) -> T) -> Piece<T> {
        match self {
            Piece::Guard(g) => Piece::Guard(g),
            Piece::Act(specs) => Piece::Act(specs.into_iter().map(f).collect()),
            Piece::WaitUntil {
                condition,
                max_secs,
            } => Piece::WaitUntil {
                condition,
                max_secs,
            },
        }
    }
}

/// The phase an action leaves (or puts) its node in, as the node table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Draining,
    OutOfPool,
    Flipped,
    Restarted,
    Rejoined,
}

/// How an action moves its node in the load-balancer pool (the pool guard follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMove {
    /// Done: the node is out of the pool; the guard keeps it out from here on.
    TakesOut,
    /// Started: a deliberate re-add; the guard lets go of the node.
    PutsBack,
}

/// What an action may change on its node while it is in flight: a probe that finds such a
/// change after a crash reads it as cutover's own doing, not as drift.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touches {
    /// Load-balancer state (a drain, ready or maint).
    pub lb: bool,
    /// A ready: maint → ready is cutover's, not a reload.
    pub ready: bool,
    /// The service going down or up (a restart).
    pub service: bool,
    /// The provider it writes.
    pub provider: Option<String>,
    /// JWS key material.
    pub jws_keys: bool,
    /// The Fernet repository.
    pub fernet_keys: bool,
}

/// `a, b, c`.
pub fn list(v: &[String]) -> String {
    v.join(", ")
}

/// One family of actions: its specs (an enum, internally tagged by `action` in the journal),
/// their words and rules, and its compile from runbook items. Everything about one action
/// lives in its family's file; the defaults say "nothing special".
pub trait Family: Sized + serde::Serialize + serde::de::DeserializeOwned {
    /// The journal's `action` tags of this family's specs (`lb_drain`, …); a test checks them
    /// against serde's.
    const TAGS: &'static [&'static str];
    /// The family's actions' words.
    const ACTIONS: &'static [Action];

    fn action(&self) -> Action;
    /// The node it acts on, if one.
    fn node(&self) -> Option<&str>;
    /// Safe to run again when a crash lost its outcome.
    fn idempotent(&self) -> bool;
    /// One line for the log and the journal: what is done, where.
    fn describe(&self) -> String;
    /// The exact command or request, where there is one (for the plan report): the lines
    /// after the description, each but the first indented as the report indents them.
    fn exact(&self, _inv: &Inventory) -> Option<String> {
        None
    }
    /// The gates that must have passed on fresh probes right before it (compile inserts them;
    /// the engine checks them again before it starts the action).
    fn required_gates(&self) -> Vec<Gate> {
        vec![]
    }
    /// The phase its node shows while it runs.
    fn phase_on_start(&self) -> Option<Phase> {
        None
    }
    /// The phase it leaves its node in when it succeeded.
    fn phase_after(&self) -> Option<Phase> {
        None
    }
    fn pool_move(&self) -> Option<PoolMove> {
        None
    }
    /// What it may change on its node while in flight.
    fn touches(&self) -> Touches {
        Touches::default()
    }
    /// It must happen out of the pool (or is the re-add itself): the intent records how long
    /// ago the node's pool state was read.
    fn reads_pool_first(&self) -> bool {
        false
    }
    /// The pieces of the plan for one of this family's runbook items.
    fn compile(cx: &Cx, item: &Item) -> Result<Vec<Piece<Self>>, PlanError>;
}

/// A family was handed an item of another family: a bug in `Item::family`.
pub fn not_mine(cx: &Cx, family: &str) -> PlanError {
    cx.error(format!(
        "`{}` is not an action of the {family} family (cutover bug: Item::family)",
        cx.item.name()
    ))
}

#[cfg(test)]
pub mod test_support {
    //! What each family's tests share.
    use super::*;

    /// The variant names serde knows for `F` (from its error on an unknown tag).
    pub fn serde_tags<F: Family>() -> Vec<String> {
        let e = serde_json::from_value::<F>(serde_json::json!({"action": "-"}))
            .err()
            .expect("an unknown tag is an error")
            .to_string();
        // "… expected `a`", "… expected `a` or `b`", "… expected one of `a`, `b`, `c`".
        let list = e
            .split("expected ")
            .nth(1)
            .expect("serde names the expected tags");
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// `F::TAGS` are serde's tags; every action's name is unique and routed back to it.
    pub fn check_family<F: Family>() {
        let mut want = serde_tags::<F>();
        let mut have: Vec<String> = F::TAGS.iter().map(|t| t.to_string()).collect();
        want.sort();
        have.sort();
        assert_eq!(have, want, "TAGS differ from the enum's serde tags");
        let mut names: Vec<&str> = F::ACTIONS.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            F::ACTIONS.len(),
            "an action name is listed twice"
        );
    }

    /// An inventory of three nodes behind two load balancers.
    pub fn inventory() -> Inventory {
        Inventory::parse(
            include_str!("../../../tests/fixtures/inventory-3.yaml"),
            "inventory-3.yaml",
        )
        .unwrap()
    }

    /// Compile one item (YAML, e.g. `lb.drain: {timeout: 10s}`) in a step of `scope`, for
    /// `node` (each-node) against the three-node inventory.
    pub fn compile_item<F: Family>(
        scope: &str,
        item: &str,
        node: Option<&str>,
        drained_in_step: bool,
    ) -> Result<Vec<Piece<F>>, PlanError> {
        let src = format!(
            "name: t\ntitle: T\ntarget_provider: jws\nsteps:\n  - id: s\n    title: S\n    scope: {scope}\n    do:\n      - {item}\n"
        );
        let rb = crate::runbook::Runbook::parse(&src, "t.yaml").unwrap();
        let inv = inventory();
        let nodes = inv.node_names();
        let step = &rb.steps[0];
        let targets = match (node, step.scope) {
            (Some(n), _) => vec![n.to_string()],
            (None, crate::runbook::Scope::AllNodes) => nodes.clone(),
            (None, crate::runbook::Scope::HalfA) => nodes[..1].to_vec(),
            (None, crate::runbook::Scope::HalfB) => nodes[1..].to_vec(),
            (None, _) => vec![],
        };
        let render = |t: &str, _: Option<&str>| Ok(t.to_string());
        let split = Some((nodes[..1].to_vec(), nodes[1..].to_vec()));
        let cx = Cx {
            step,
            item: &step.items[0],
            node: node.map(str::to_string),
            targets,
            nodes,
            inv: &inv,
            drained_in_step,
            render: &render,
            halves: split,
        };
        F::compile(&cx, &step.items[0])
    }
}
