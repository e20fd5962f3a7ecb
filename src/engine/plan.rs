//! The compiled plan: a runbook expanded over the inventory into a flat list of operations, each
//! with its exact targets. Compiling is pure; the same runbook, inventory and parameters always
//! give the same plan, so a journal's fold rebuilds it exactly.
//!
//! The engine inserts the safety gates a runbook might forget: `out-of-pool` before every
//! provider flip and restart, `keys-everywhere` before every flip to JWS, `fernet-keys-everywhere`
//! before every flip to Fernet, `validated-before-readd` and `mixed-pool` before every re-add.

use super::action::{ActionSpec, PlanError};

use super::action::{self, Cx, Piece, PoolMove};
use super::halves;
use crate::inventory::Inventory;
use crate::runbook::{Gate, Item, Runbook, Scope, WaitCondition, template};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Op {
    pub index: usize,
    pub step: String,
    /// The node this op is about (each-node steps), if any.
    pub node: Option<String>,
    /// The group of nodes it is about (`half-a`, `half-b`: a halves step, or the gate about
    /// the half a swap takes out), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: OpKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpKind {
    /// One effect per spec, run concurrently; the op is done when all succeeded.
    Act {
        action: String,
        specs: Vec<ActionSpec>,
    },
    Gate {
        gate: Gate,
        implicit: bool,
    },
    Confirm {
        id: String,
        title: String,
        message: String,
        consequence: String,
    },
    Note {
        message: String,
    },
    /// Wait until a condition holds (computed from the state when the op starts), at most
    /// `max_secs` if given.
    WaitUntil {
        condition: WaitCondition,
        max_secs: Option<u64>,
    },
}

/// Node-template variables for one node.
pub fn node_vars(inv: &Inventory, node: &str) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    if let Some(n) = inv.node(node) {
        let p = |o: &Option<std::path::PathBuf>| {
            o.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        m.insert("name", n.name.clone());
        m.insert("keystone_conf", n.keystone_conf.display().to_string());
        m.insert("keystone_url", n.keystone_url.clone());
        m.insert("keystone_user", n.keystone_user.clone());
        m.insert("keystone_group", n.keystone_group.clone());
        m.insert("restart", n.restart.clone());
        m.insert("fernet_repo", p(&n.fernet_repo));
        m.insert("jws_private_repo", p(&n.jws_private_repo));
        m.insert("jws_public_repo", p(&n.jws_public_repo));
    }
    m
}

/// Expand a runbook over an inventory: each step over its scope, each item at its place; an
/// action item is compiled by its family ([`action::compile`]), which says what to insert
/// before it; the gates its specs require are inserted here.
pub fn compile(
    rb: &Runbook,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
) -> Result<Vec<Op>, PlanError> {
    let nodes = inv.node_names();
    let mut ops: Vec<Op> = Vec::new();
    // The halves, when an included step ranges over one (checked here: a bad split is a
    // PlanError before anything runs).
    let uses_halves = rb
        .steps
        .iter()
        .any(|s| rb.included(s, params) && s.scope.group().is_some());
    let split = if uses_halves {
        Some(halves::halves(inv, params)?)
    } else {
        if params
            .get(halves::HALF_A_PARAM)
            .is_some_and(|v| !v.trim().is_empty())
        {
            return Err(PlanError(format!(
                "{} is set, but no step of this plan ranges over the halves (it is used with strategy halves): add -p strategy=halves or drop -p {}",
                halves::HALF_A_PARAM,
                halves::HALF_A_PARAM
            )));
        }
        None
    };
    let render = |t: &str, node: Option<&str>| -> Result<String, PlanError> {
        let vars = node.map(|n| node_vars(inv, n));
        template::render_item(t, &rb.name, &rb.target_provider, params, vars.as_ref(), inv)
            .map_err(PlanError)
    };

    for step in rb.steps.iter().filter(|s| rb.included(s, params)) {
        // The nodes of a half step.
        let group_nodes: Option<Vec<String>> = match (step.scope, &split) {
            (Scope::HalfA, Some((a, _))) => Some(a.clone()),
            (Scope::HalfB, Some((_, b))) => Some(b.clone()),
            _ => None,
        };
        let group = step.scope.group().map(str::to_string);
        // (node, item) pairs in execution order; node None = fleet-level.
        let mut seq: Vec<(Option<String>, &Item)> = Vec::new();
        match step.scope {
            Scope::Once | Scope::AllNodes | Scope::HalfA | Scope::HalfB => {
                seq.extend(step.items.iter().map(|i| (None, i)))
            }
            Scope::EachNode => {
                for n in &nodes {
                    seq.extend(step.items.iter().map(|i| (Some(n.clone()), i)));
                }
            }
        }
        for (node, item) in seq {
            // Targets for this item: one node, or every node for all-nodes steps.
            let targets: Vec<String> = match (&node, step.scope) {
                (Some(n), _) => vec![n.clone()],
                (None, Scope::AllNodes) => nodes.clone(),
                (None, Scope::HalfA | Scope::HalfB) => group_nodes.clone().unwrap_or_default(),
                (None, _) => vec![],
            };
            let push = |ops: &mut Vec<Op>, kind: OpKind, node: Option<String>| {
                let index = ops.len();
                ops.push(Op {
                    index,
                    step: step.id.clone(),
                    node,
                    group: group.clone(),
                    kind,
                });
            };
            let Some(family) = item.family() else {
                match item {
                    Item::Gate(g) => {
                        // In a half step a gate is one op about the whole half (a per-node
                        // gate: judged for each of its nodes on one fresh probe).
                        if group.is_some() && (halves::group_gate(*g) || g.per_node()) {
                            push(
                                &mut ops,
                                OpKind::Gate {
                                    gate: *g,
                                    implicit: false,
                                },
                                None,
                            );
                        } else if g.per_node() {
                            if targets.is_empty() {
                                return Err(PlanError(format!(
                                    "step `{}`: gate `{}` needs a node scope",
                                    step.id,
                                    g.name()
                                )));
                            }
                            for t in &targets {
                                push(
                                    &mut ops,
                                    OpKind::Gate {
                                        gate: *g,
                                        implicit: false,
                                    },
                                    Some(t.clone()),
                                );
                            }
                        } else {
                            push(
                                &mut ops,
                                OpKind::Gate {
                                    gate: *g,
                                    implicit: false,
                                },
                                node.clone(),
                            );
                        }
                    }
                    Item::Confirm(c) => push(
                        &mut ops,
                        OpKind::Confirm {
                            id: c.id.clone(),
                            title: render(&c.title, node.as_deref())?,
                            message: render(&c.message, node.as_deref())?,
                            consequence: render(&c.consequence, node.as_deref())?,
                        },
                        node.clone(),
                    ),
                    Item::Note(m) => push(
                        &mut ops,
                        OpKind::Note {
                            message: render(m, node.as_deref())?,
                        },
                        node.clone(),
                    ),
                    other => {
                        return Err(PlanError(format!(
                            "step `{}`: `{}` has no action family (cutover bug: Item::family)",
                            step.id,
                            other.name()
                        )));
                    }
                }
                continue;
            };
            let drained = match &group_nodes {
                Some(g) => g
                    .iter()
                    .any(|n| drained_in_step(&ops, &step.id, &Some(n.clone()))),
                None => drained_in_step(&ops, &step.id, &node),
            };
            let at = Place {
                step: &step.id,
                node: &node,
                group: group.as_deref(),
            };
            let cx = Cx {
                step,
                item,
                drained_in_step: drained,
                node: node.clone(),
                targets: targets.clone(),
                nodes: nodes.clone(),
                inv,
                render: &render,
                halves: split.clone(),
            };
            for piece in action::compile(family, &cx, item)? {
                match piece {
                    Piece::Guard(gate) => guard_at(&mut ops, &at, gate, None),
                    Piece::WaitUntil {
                        condition,
                        max_secs,
                    } => push(
                        &mut ops,
                        OpKind::WaitUntil {
                            condition,
                            max_secs,
                        },
                        node.clone(),
                    ),
                    Piece::Act(specs) => {
                        // The gates the action requires, each once, right before it.
                        let mut required: Vec<Gate> = Vec::new();
                        for g in specs.iter().flat_map(|s| s.required_gates()) {
                            if !required.contains(&g) {
                                required.push(g);
                            }
                        }
                        // A swap takes half B out: its capacity gate is about half B.
                        let about = specs.iter().find_map(|s| s.takes_out_group());
                        for g in required {
                            guard_at(&mut ops, &at, g, about);
                        }
                        push(
                            &mut ops,
                            OpKind::Act {
                                action: item.name().into(),
                                specs,
                            },
                            node.clone(),
                        );
                    }
                }
            }
        }
    }
    order_pool_reads_last(&mut ops);
    Ok(ops)
}

/// Where in the plan an item is compiled: its step, its node (each-node), its group and
/// targets (a half step).
struct Place<'a> {
    step: &'a str,
    node: &'a Option<String>,
    group: Option<&'a str>,
}

/// The guards a gate needs at `at`: in a half step (or about the half `about` a swap takes
/// out) a gate with a group form, or a per-node gate, once about the group (a per-node gate is
/// judged for each node of the half on one probe); else as [`guard`].
fn guard_at(ops: &mut Vec<Op>, at: &Place, gate: Gate, about: Option<&str>) {
    let group = about.or(at.group);
    match group {
        Some(g) if halves::group_gate(gate) || (gate.per_node() && at.node.is_none()) => {
            guard(ops, at.step, gate, &None, Some(g))
        }
        _ => guard(ops, at.step, gate, at.node, at.group),
    }
}

/// The guard a fleet-level or node-level gate needs (about `node` for a per-node gate, else
/// the fleet), inserted unless the block of gates right before already holds it.
fn guard(ops: &mut Vec<Op>, step: &str, gate: Gate, node: &Option<String>, group: Option<&str>) {
    let node = if gate.per_node() { node.clone() } else { None };
    let group = group.map(str::to_string);
    let already = ops
        .iter()
        .rev()
        .take_while(|o| matches!(o.kind, OpKind::Gate { .. }))
        .any(|o| {
            matches!(&o.kind, OpKind::Gate { gate: g, .. } if *g == gate)
                && (o.node == node || !gate.per_node())
                && o.group == group
        });
    if !already {
        let index = ops.len();
        ops.push(Op {
            index,
            step: step.to_string(),
            node,
            group,
            kind: OpKind::Gate {
                gate,
                implicit: true,
            },
        });
    }
}

/// Whether this step already took `node` out of the pool (an earlier action for it that takes
/// its node out, a drain).
fn drained_in_step(ops: &[Op], step: &str, node: &Option<String>) -> bool {
    node.is_some()
        && ops.iter().rev().take_while(|o| o.step == step).any(|o| {
            &o.node == node
                && matches!(&o.kind, OpKind::Act { specs, .. }
                    if specs.iter().any(|s| s.pool_move() == Some(PoolMove::TakesOut)))
        })
}

/// The gate that reads the node's pool state (`out-of-pool`, and `mixed-pool`, which reads it
/// too) is the last read before the action it guards: slower reads (keys-everywhere, a direct
/// token) go first, so nothing but the intent sits between the pool read and the action.
fn order_pool_reads_last(ops: &mut [Op]) {
    let pool_read = |o: &Op| {
        matches!(
            o.kind,
            OpKind::Gate {
                gate: Gate::OutOfPool | Gate::MixedPool,
                ..
            }
        )
    };
    let mut i = 0;
    while i < ops.len() {
        if !matches!(ops[i].kind, OpKind::Gate { .. }) {
            i += 1;
            continue;
        }
        let start = i;
        while i < ops.len()
            && matches!(ops[i].kind, OpKind::Gate { .. })
            && ops[i].step == ops[start].step
        {
            i += 1;
        }
        let guards_action = ops
            .get(i)
            .is_some_and(|o| matches!(o.kind, OpKind::Act { .. }));
        if guards_action && i - start > 1 {
            // A stable partition: every other gate, then the pool reads, each in written order.
            ops[start..i].sort_by_key(|o| pool_read(o));
        }
    }
    for (index, op) in ops.iter_mut().enumerate() {
        op.index = index;
    }
}

#[cfg(test)]
mod golden {
    //! Compiled plans are recorded in journals (and hashed for resume): compiling the shipped
    //! runbooks, and a few written to reach every item in every scope, must give the plans (and
    //! errors) recorded in tests/fixtures/plans/, byte for byte. `UPDATE_PLANS=1` rewrites them.
    use super::*;
    use crate::runbook::{Runbook, shipped};

    const ITEMS: &str = r#"name: every-item
title: Every item
target_provider: jws
params:
  strategy: {default: per-node, choices: [per-node, shared]}
steps:
  - id: fleet
    title: Fleet
    scope: once
    do:
      - probe: {}
      - keystone.list_trusts: {}
      - keystone.validate_matrix: {expect: jws}
      - wait: {duration: 2s}
      - wait: {until: old-tokens-expired, duration: 1m}
      - wait: {until: old-tokens-expired}
      - keystone.rotate_fernet_keys: {}
      - gate: providers-agree
      - note: "fleet {{ runbook.name }}"
  - id: all
    title: All
    scope: all-nodes
    do:
      - probe: {}
      - keystone.create_jws_keypair: {strategy: "{{ params.strategy }}"}
      - keystone.install_jws_keys: {public: false}
      - keystone.install_jws_keys: {}
      - keystone.publish_staged_public_keys: {}
      - keystone.remove_retired_public_keys: {}
      - keystone.distribute_public_keys: {}
      - keystone.sync_fernet_keys: {}
      - keystone.issue_token: {expect: jws}
      - shell: {command: "echo {{ node.name }}", expect_status: 0, sudo: true, timeout: 5s}
      - keystone.list_trusts: {}
      - gate: keys-everywhere
  - id: each
    title: Each
    scope: each-node
    do:
      - gate: pool-capacity
      - lb.drain: {timeout: 10s}
      - keystone.issue_token: {expect: fernet}
      - gate: keys-everywhere
      - keystone.set_provider: {provider: jws}
      - service.restart: {timeout: 20s}
      - shell: {command: "true"}
      - shell: {command: "true", pooled: true}
      - keystone.issue_token: {expect: jws}
      - keystone.rotate_fernet_keys: {}
      - keystone.sync_fernet_keys: {}
      - keystone.create_jws_keypair: {}
      - keystone.install_jws_keys: {public: false}
      - confirm: {id: c1, title: "T {{ node.name }}", message: M, consequence: C}
      - lb.ready: {timeout: 5s}
      - keystone.set_provider: {provider: fernet}
      - gate: in-pool
"#;

    /// Items that compile only in some scopes: each case is its own runbook.
    const CASES: &[(&str, &str)] = &[
        ("once", "lb.drain: {}"),
        ("all-nodes", "lb.drain: {}"),
        ("all-nodes", "lb.ready: {}"),
        ("all-nodes", "keystone.set_provider: {provider: jws}"),
        ("each-node", "keystone.set_provider: {provider: nope}"),
        ("all-nodes", "service.restart: {}"),
        ("once", "keystone.install_jws_keys: {}"),
        ("once", "shell: {command: x}"),
        ("once", "keystone.create_jws_keypair: {strategy: shared}"),
        (
            "each-node",
            "keystone.create_jws_keypair: {strategy: shared}",
        ),
        (
            "all-nodes",
            "keystone.create_jws_keypair: {strategy: other}",
        ),
        ("each-node", "gate: out-of-pool"),
        ("all-nodes", "gate: mixed-pool"),
        ("each-node", "keystone.list_trusts: {}"),
        ("all-nodes", "keystone.rotate_fernet_keys: {}"),
        ("each-node", "keystone.validate_matrix: {expect: fernet}"),
    ];

    fn inventories() -> Vec<(&'static str, Inventory)> {
        let text = include_str!("../../tests/fixtures/inventory-3.yaml");
        let inv = Inventory::parse(text, "inventory-3.yaml").unwrap();
        let mut no_lb = inv.clone();
        no_lb.load_balancers.clear();
        vec![("inventory-3", inv), ("no-lb", no_lb)]
    }

    fn outcome(
        rb: &Runbook,
        inv: &Inventory,
        params: &BTreeMap<String, String>,
    ) -> serde_json::Value {
        match compile(rb, inv, params) {
            Ok(ops) => serde_json::json!({ "ok": ops }),
            Err(e) => serde_json::json!({ "err": e.0 }),
        }
    }

    /// Every combination of parameter choices (the default alone for a parameter without).
    fn param_sets(rb: &Runbook) -> Vec<BTreeMap<String, String>> {
        let mut sets = vec![BTreeMap::new()];
        for (k, p) in &rb.params {
            let values = if p.choices.is_empty() {
                vec![p.default.clone()]
            } else {
                p.choices.clone()
            };
            sets = sets
                .into_iter()
                .flat_map(|s| {
                    values.iter().map(move |v| {
                        let mut s = s.clone();
                        s.insert(k.clone(), v.clone());
                        s
                    })
                })
                .collect();
        }
        sets
    }

    #[test]
    fn compiled_plans_are_as_recorded() {
        let mut runbooks: Vec<(String, Runbook)> = shipped()
            .iter()
            .map(|(f, t)| (f.to_string(), Runbook::parse(t, f).unwrap()))
            .collect();
        runbooks.push((
            "every-item".into(),
            Runbook::parse(ITEMS, "every-item").unwrap(),
        ));
        for (i, (scope, item)) in CASES.iter().enumerate() {
            let src = format!(
                "name: case\ntitle: Case\ntarget_provider: jws\nsteps:\n  - id: s\n    title: S\n    scope: {scope}\n    do:\n      - {item}\n"
            );
            runbooks.push((
                format!("case-{i:02}"),
                Runbook::parse(&src, "case").unwrap(),
            ));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plans");
        let update = std::env::var_os("UPDATE_PLANS").is_some();
        for (inv_name, inv) in inventories() {
            let mut all = serde_json::Map::new();
            for (name, rb) in &runbooks {
                for params in param_sets(rb) {
                    let key = format!("{name} {}", serde_json::to_string(&params).unwrap());
                    all.insert(key, outcome(rb, &inv, &params));
                }
            }
            // The runbook's name of an item and its family's name of the specs are one name.
            for (name, rb) in &runbooks {
                for params in param_sets(rb) {
                    for op in compile(rb, &inv, &params).into_iter().flatten() {
                        if let OpKind::Act { action, specs } = &op.kind {
                            for spec in specs {
                                assert_eq!(spec.name(), action, "{name}: {op:?}");
                                assert_eq!(action::words(action), Some(spec.action()));
                            }
                        }
                    }
                }
            }
            let text = serde_json::to_string_pretty(&all).unwrap() + "\n";
            let file = dir.join(format!("{inv_name}.json"));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&file, &text).unwrap();
            }
            let want = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_PLANS=1 writes it)", file.display()));
            assert!(
                text == want,
                "{}: the compiled plans differ",
                file.display()
            );
        }
    }
}
