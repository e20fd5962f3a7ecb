//! Blue/green halves: the split of the fleet into half A and half B (the `half_a` parameter,
//! else the first half of the inventory), as the plan, the actions and the gates read it. The
//! gates about a whole half and the swap's facts are in [`judge`]; `validated-before-swap` is
//! one of `gates::evaluate`'s arms.

pub mod judge;

pub use judge::{capacity, each_node, probe_for, swap_facts};

use super::action::kit::PlanError;
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
