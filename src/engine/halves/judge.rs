//! The gates about a whole half and the facts of the swap's hard stop: `pool-capacity` in its
//! group form (the other half carries the pool on every instance), a per-node gate judged for
//! each node of a half on one probe, what a group gate's probe reads, and the State's view of
//! the split. (`validated-before-swap` is one of gates::evaluate's arms.)

use super::{HALF_A, HALF_B, group, halves};
use crate::engine::action::Misc;
use crate::engine::facts::{LbServer, Observation};
use crate::engine::gates::Verdict;
use crate::inventory::Inventory;
use crate::runbook::Gate;
use std::collections::{BTreeMap, BTreeSet};

/// The facts shown on the swap's hard stop: each half, its nodes' provider and pool state,
/// and what the swap does to tokens. A shared token cache changes which old tokens keep
/// validating after the swap: its paragraph belongs here (from the cache facts a probe read).
pub fn swap_facts(state: &crate::engine::state::State) -> Vec<String> {
    let Some(run) = state.run.as_ref() else {
        return vec![];
    };
    let Ok((a, b)) = halves(&run.inventory, &run.params) else {
        return vec![];
    };
    let describe = |n: &String| {
        let node = state.nodes.get(n);
        let provider = node
            .and_then(|x| x.facts.as_ref())
            .and_then(|f| f.provider.clone())
            .unwrap_or_else(|| "?".into());
        let pool = match node {
            Some(x) if x.lb.is_empty() => "lb ?",
            Some(x) if x.pooled() => "in the pool",
            _ => "out of the pool",
        };
        format!("{n} {provider}, {pool}")
    };
    let mut v = vec![
        format!(
            "half A: {} (in after the swap)",
            a.iter().map(describe).collect::<Vec<_>>().join("; ")
        ),
        format!(
            "half B: {} (out after the swap, flipped next)",
            b.iter().map(describe).collect::<Vec<_>>().join("; ")
        ),
        format!(
            "capacity until B rejoins: {} of {} nodes",
            a.len(),
            a.len() + b.len()
        ),
        "tokens issued before the swap stop validating at the swap; tokens issued after it validate on every node".into(),
    ];
    v.extend(run_lb_line(state));
    v
}

fn run_lb_line(state: &crate::engine::state::State) -> Option<String> {
    (!state.lb_names.is_empty()).then(|| {
        format!(
            "one write per load balancer ({}), all at once",
            state.lb_names.join(", ")
        )
    })
}

/// A per-node gate judged about a whole half: for each node of `group` on the same fresh
/// observation; the first that does not pass is the verdict (with its node), else one pass.
pub fn each_node(
    gate: Gate,
    group: &str,
    obs: &Observation,
    ctx: &crate::engine::gates::Ctx,
) -> (Verdict, Option<String>) {
    let Some((nodes, _)) = self::group(group, ctx.inv, ctx.params) else {
        return (
            Verdict::Fail {
                reason: format!("no halves for group `{group}`"),
                next: "fix the split (-p half_a=...), then resume".into(),
            },
            None,
        );
    };
    let mut passed = Vec::new();
    for n in &nodes {
        match crate::engine::gates::evaluate(gate, Some(n), obs, ctx) {
            Verdict::Pass(d) => passed.push(d),
            other => return (other, Some(n.clone())),
        }
    }
    (Verdict::Pass(passed.join("; ")), None)
}

/// What a group gate must look at. `held` are the nodes cutover holds out of the pool: those
/// of the other half among them are about to carry the pool (the swap), so their direct
/// token is read too.
pub fn probe_for(
    gate: Gate,
    group: &str,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
    held: &BTreeSet<String>,
) -> Misc {
    let lb = !inv.load_balancers.is_empty();
    let (mine, others) = group_or_empty(group, inv, params);
    match gate {
        // Each node of the half proves itself (one probe for the half).
        Gate::ValidatedBeforeReadd => Misc::Probe {
            nodes: vec![],
            lb: false,
            tokens: mine,
            providers: vec![],
            kept: false,
            until_up: None,
        },
        Gate::ValidatedBeforeSwap => Misc::Probe {
            nodes: vec![],
            lb: false,
            tokens: halves(inv, params).map(|(a, _)| a).unwrap_or_default(),
            providers: vec![],
            kept: false,
            until_up: None,
        },
        _ => Misc::Probe {
            nodes: vec![],
            lb,
            tokens: others.into_iter().filter(|n| held.contains(n)).collect(),
            providers: vec![],
            kept: false,
            until_up: None,
        },
    }
}

fn group_or_empty(
    group: &str,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>) {
    self::group(group, inv, params).unwrap_or_default()
}

/// Taking `group` out of the pool leaves, on every instance, a server of the other half that
/// carries it: one UP and ready, or one cutover holds out that is about to come in (the swap)
/// and proved itself with a direct token of `target` just now.
pub fn capacity(
    group: &str,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
    obs: &Observation,
    target: &str,
) -> Verdict {
    let Some((out, others)) = self::group(group, inv, params) else {
        return Verdict::Fail {
            reason: format!("no halves for group `{group}`"),
            next: "fix the split (-p half_a=...), then resume".into(),
        };
    };
    let rows: &[LbServer] = obs.lb.as_deref().unwrap_or_default();
    let proven = |n: &str| {
        obs.tokens
            .get(n)
            .is_some_and(|t| t.format.as_str() == target && t.validated())
    };
    let mut empty = Vec::new();
    let mut left = Vec::new();
    for lb in &inv.load_balancers {
        let carriers: Vec<String> = rows
            .iter()
            .filter(|r| r.lb == lb.name && others.contains(&r.node))
            .filter(|r| r.in_pool() || (r.out_of_pool() && proven(&r.node)))
            .map(|r| r.node.clone())
            .collect();
        if carriers.is_empty() {
            empty.push(lb.name.clone());
        } else {
            left.push(format!("{}: {}", lb.name, carriers.join(", ")));
        }
    }
    let name = if group == HALF_A { "half A" } else { "half B" };
    if empty.is_empty() {
        return Verdict::Pass(format!(
            "without {name} ({}) the pool keeps {}",
            out.join(", "),
            left.join("; ")
        ));
    }
    Verdict::Ask {
        title: format!("Taking {name} out leaves no server in the pool"),
        hazard: format!(
            "No node of the other half ({}) can carry the pool on {}: none is UP and ready there{}.",
            others.join(", "),
            empty.join(", "),
            if group == HALF_B {
                ", and none held out for the swap answered a direct token just now"
            } else {
                ""
            }
        ),
        consequence: format!(
            "Clients get errors from the load balancer (503) until a node is back in the pool. Bring a node of the other half back first if you can; n leaves {} serving as it is.",
            if group == HALF_B {
                "half B"
            } else {
                "the pool"
            }
        ),
        facts: rows
            .iter()
            .map(|r| format!("{} on {}: {} {:?}", r.node, r.lb, r.status, r.admin))
            .chain(
                obs.tokens
                    .iter()
                    .map(|(n, t)| format!("{n}: {}", t.short())),
            )
            .collect(),
    }
}

impl crate::engine::state::State {
    /// Half A and half B of a run whose plan ranges over halves (a half step), else None.
    pub fn halves(&self) -> Option<(Vec<String>, Vec<String>)> {
        if !self.steps.iter().any(|s| s.scope.group().is_some()) {
            return None;
        }
        let run = self.run.as_ref()?;
        halves(&run.inventory, &run.params).ok()
    }

    /// `A` or `B`: the half `node` is in, in a halves run.
    pub fn half_of(&self, node: &str) -> Option<&'static str> {
        let (a, b) = self.halves()?;
        if a.iter().any(|n| n == node) {
            Some("A")
        } else if b.iter().any(|n| n == node) {
            Some("B")
        } else {
            None
        }
    }

    /// The nodes of a half step's group (`half-a`, `half-b`), in a halves run.
    pub fn group_nodes(&self, group: &str) -> Option<Vec<String>> {
        let (a, b) = self.halves()?;
        match group {
            HALF_A => Some(a),
            HALF_B => Some(b),
            _ => None,
        }
    }
}
