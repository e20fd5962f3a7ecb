//! Blue/green halves: the split of the fleet into half A and half B (the `half_a` parameter,
//! else the first half of the inventory), and the gates about a whole half: `pool-capacity` in
//! its group form (the other half carries the pool on every instance) and
//! `validated-before-swap` (every node of A proved itself directly before the swap).

use super::action::{Misc, PlanError};
use super::facts::{LbServer, Observation};
use super::gates::Verdict;
use crate::inventory::Inventory;
use crate::runbook::Gate;
use std::collections::{BTreeMap, BTreeSet};

/// The parameter that names half A's nodes (comma-separated; empty: the first half).
pub const HALF_A_PARAM: &str = "half_a";

/// The group names of the two halves, as scopes and plans spell them.
pub const HALF_A: &str = "half-a";
pub const HALF_B: &str = "half-b";

/// Half A and half B of `nodes` (inventory order in each). `spec` names A's nodes
/// (`node1,node2`); empty: the first half (rounded down, at least one node).
pub fn split(nodes: &[String], spec: &str) -> Result<(Vec<String>, Vec<String>), PlanError> {
    if nodes.len() < 2 {
        return Err(PlanError(format!(
            "strategy halves needs at least 2 nodes, one in each half (the inventory has {}): use strategy rolling",
            nodes.len()
        )));
    }
    let named: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if spec.trim().is_empty() {
        let k = (nodes.len() / 2).max(1);
        return Ok((nodes[..k].to_vec(), nodes[k..].to_vec()));
    }
    if named.is_empty() {
        return Err(PlanError(format!(
            "{HALF_A_PARAM} `{spec}` names no node: half A would be empty; name at least one node of the inventory (its nodes: {}), e.g. -p {HALF_A_PARAM}={}",
            nodes.join(", "),
            nodes[0]
        )));
    }
    let mut seen = BTreeSet::new();
    for n in &named {
        if !nodes.iter().any(|m| m == n) {
            return Err(PlanError(format!(
                "{HALF_A_PARAM} names `{n}`, which is not a node of the inventory (its nodes: {}): fix -p {HALF_A_PARAM}=...",
                nodes.join(", ")
            )));
        }
        if !seen.insert(*n) {
            return Err(PlanError(format!(
                "{HALF_A_PARAM} names `{n}` twice: name each node of half A once"
            )));
        }
    }
    let (a, b): (Vec<String>, Vec<String>) = nodes
        .iter()
        .cloned()
        .partition(|n| seen.contains(n.as_str()));
    if b.is_empty() {
        return Err(PlanError(format!(
            "{HALF_A_PARAM} names every node ({}): half B would be empty and nothing would serve while half A flips; leave at least one node out (e.g. -p {HALF_A_PARAM}={})",
            nodes.join(", "),
            nodes[..nodes.len() / 2].join(",")
        )));
    }
    Ok((a, b))
}

/// The halves for a run's inventory and parameters.
pub fn halves(
    inv: &Inventory,
    params: &BTreeMap<String, String>,
) -> Result<(Vec<String>, Vec<String>), PlanError> {
    split(
        &inv.node_names(),
        params.get(HALF_A_PARAM).map(String::as_str).unwrap_or(""),
    )
}

/// The nodes of `group` (`half-a` or `half-b`), and the nodes of the other half.
pub fn group(
    name: &str,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
) -> Option<(Vec<String>, Vec<String>)> {
    let (a, b) = halves(inv, params).ok()?;
    match name {
        HALF_A => Some((a, b)),
        HALF_B => Some((b, a)),
        _ => None,
    }
}

/// Whether `gate` has a group form: evaluated once about a whole half.
pub fn group_gate(gate: Gate) -> bool {
    matches!(gate, Gate::PoolCapacity)
}

/// The id of the flagship's hard stop before the swap (runbooks/fernet-to-jws.yaml).
pub const SWAP_STOP: &str = "halves-swap";

/// The facts shown on the swap's hard stop: each half, its nodes' provider and pool state,
/// and what the swap does to tokens. A shared token cache changes which old tokens keep
/// validating after the swap: its paragraph belongs here (from the cache facts a probe read).
pub fn swap_facts(state: &super::state::State) -> Vec<String> {
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

fn run_lb_line(state: &super::state::State) -> Option<String> {
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
    ctx: &super::gates::Ctx,
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
        match super::gates::evaluate(gate, Some(n), obs, ctx) {
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
            until_up: None,
        },
        Gate::ValidatedBeforeSwap => Misc::Probe {
            nodes: vec![],
            lb: false,
            tokens: halves(inv, params).map(|(a, _)| a).unwrap_or_default(),
            until_up: None,
        },
        _ => Misc::Probe {
            nodes: vec![],
            lb,
            tokens: others.into_iter().filter(|n| held.contains(n)).collect(),
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

/// `validated-before-swap` (gates::evaluate's arm; decide's probe reads half A's tokens).
pub fn proven(obs: &Observation, ctx: &super::gates::Ctx) -> Verdict {
    validated_before_swap(ctx.inv, ctx.params, obs, ctx.target)
}

/// Every node of A issued a token of `target` directly and it validated there. The probe
/// issued it just now, so after the node's last restart.
pub fn validated_before_swap(
    inv: &Inventory,
    params: &BTreeMap<String, String>,
    obs: &Observation,
    target: &str,
) -> Verdict {
    let (a, _) = match halves(inv, params) {
        Ok(h) => h,
        Err(e) => {
            return Verdict::Fail {
                reason: e.0,
                next: "fix the split, then resume".into(),
            };
        }
    };
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for n in &a {
        match obs.tokens.get(n) {
            Some(t) if t.format.as_str() == target && t.validated() => {
                ok.push(format!("{n} ({} ms)", t.latency_ms))
            }
            Some(t) => bad.push(format!(
                "{n}: expected a {target} token that validates, got {}",
                t.short()
            )),
            None => bad.push(format!("{n}: no direct token check")),
        }
    }
    if bad.is_empty() {
        Verdict::Pass(format!(
            "every node of half A issued a {target} token directly and validated it: {}",
            ok.join(", ")
        ))
    } else {
        Verdict::Fail {
            reason: format!("half A is not proven: {}", bad.join("; ")),
            next: format!(
                "no swap: half A ({}) stays out of the pool and half B keeps serving; read the named node's keystone log, fix, then resume (rollback: set its provider back and restart)",
                a.join(", ")
            ),
        }
    }
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

impl super::state::State {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node{i}")).collect()
    }

    #[test]
    fn the_default_split_is_the_first_half_with_one_node_at_least() {
        let (a, b) = split(&nodes(5), "").unwrap();
        assert_eq!((a.len(), b.len()), (2, 3));
        assert_eq!(a, ["node1", "node2"]);
        let (a, b) = split(&nodes(3), " ").unwrap();
        assert_eq!((a, b.len()), (vec!["node1".to_string()], 2));
        let (a, b) = split(&nodes(2), "").unwrap();
        assert_eq!((a.len(), b.len()), (1, 1));
    }

    #[test]
    fn a_named_split_keeps_inventory_order_and_says_what_is_wrong() {
        let (a, b) = split(&nodes(4), "node3, node1").unwrap();
        assert_eq!(a, ["node1", "node3"]);
        assert_eq!(b, ["node2", "node4"]);
        let e = split(&nodes(3), "node9").unwrap_err().0;
        assert!(
            e.contains("`node9`") && e.contains("node1, node2, node3"),
            "{e}"
        );
        let e = split(&nodes(3), "node1,node2,node3").unwrap_err().0;
        assert!(e.contains("half B would be empty"), "{e}");
        let e = split(&nodes(3), ",").unwrap_err().0;
        assert!(e.contains("half A would be empty"), "{e}");
        let e = split(&nodes(3), "node1,node1").unwrap_err().0;
        assert!(e.contains("twice"), "{e}");
        let e = split(&nodes(1), "").unwrap_err().0;
        assert!(
            e.contains("at least 2 nodes") && e.contains("rolling"),
            "{e}"
        );
    }
}
