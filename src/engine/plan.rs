//! The compiled plan: a runbook expanded over the inventory into a flat list of operations, each
//! with its exact targets. Compiling is pure; the same runbook, inventory and parameters always
//! give the same plan, so a journal's fold rebuilds it exactly.
//!
//! The engine inserts the safety gates a runbook might forget: `out-of-pool` before every
//! provider flip and restart, `keys-everywhere` before every flip to JWS, `fernet-keys-everywhere`
//! before every flip to Fernet, `validated-before-readd` and `mixed-pool` before every re-add.

use crate::inventory::{Inventory, KeyGen};
use crate::runbook::{Gate, Item, Runbook, Scope, WaitCondition, template};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Op {
    pub index: usize,
    pub step: String,
    /// The node this op is about (each-node steps), if any.
    pub node: Option<String>,
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

/// An effect, fully resolved: what the runtime's drivers do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionSpec {
    /// Read node facts, load-balancer state and/or direct token checks.
    Probe {
        nodes: Vec<String>,
        lb: bool,
        tokens: Vec<String>,
        /// Read the load balancers until this node shows a passed health check on every one
        /// (a bounded wait: a reload right after its re-add resets it to `UP 1/3`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_up: Option<String>,
    },
    LbDrain {
        node: String,
        timeout_secs: u64,
    },
    LbReady {
        node: String,
        timeout_secs: u64,
    },
    /// Set a node cutover had drained back to maint on every instance that shows it in the
    /// pool (a pool breach), and read it back.
    LbMaint {
        node: String,
    },
    SetProvider {
        node: String,
        provider: String,
    },
    /// Generate a keypair on the node (keystone-manage in a staging dir, or natively).
    CreateKeypair {
        node: String,
        keygen: KeyGen,
    },
    /// Generate one keypair (on `origin`, or natively) and place it in every node's staging dir.
    CreateSharedKeypair {
        origin: String,
        nodes: Vec<String>,
        keygen: KeyGen,
    },
    InstallKeys {
        node: String,
        #[serde(default = "yes")]
        public: bool,
    },
    /// Copy the staged public keys of `from` (and the node's own) into this node's public
    /// repository, named `<node>.<fingerprint tag>.pem`.
    PublishStagedKeys {
        node: String,
        from: Vec<String>,
    },
    /// Move aside public keys on this node that match no node's private.pem.
    RemoveRetiredKeys {
        node: String,
        nodes: Vec<String>,
    },
    RotateFernet {
        node: String,
    },
    SyncFernet {
        node: String,
        from: String,
    },
    /// Copy every other node's public key into this node's public repository.
    DistributePublicKeys {
        node: String,
        from: Vec<String>,
    },
    Restart {
        node: String,
        timeout_secs: u64,
    },
    IssueToken {
        node: String,
        expect: String,
    },
    ValidateMatrix {
        nodes: Vec<String>,
        expect: String,
    },
    ListTrusts {
        node: String,
    },
    Wait {
        secs: u64,
    },
    Shell {
        node: String,
        command: String,
        expect_status: i32,
        sudo: bool,
        timeout_secs: u64,
    },
    /// Append a host key the operator accepted at a hard stop to known_hosts.
    AcceptHostKey {
        host: String,
        port: u16,
        key_openssh: String,
        known_hosts: String,
    },
}

impl ActionSpec {
    pub fn node(&self) -> Option<&str> {
        match self {
            ActionSpec::LbDrain { node, .. }
            | ActionSpec::LbReady { node, .. }
            | ActionSpec::LbMaint { node }
            | ActionSpec::SetProvider { node, .. }
            | ActionSpec::CreateKeypair { node, .. }
            | ActionSpec::InstallKeys { node, .. }
            | ActionSpec::PublishStagedKeys { node, .. }
            | ActionSpec::RemoveRetiredKeys { node, .. }
            | ActionSpec::RotateFernet { node }
            | ActionSpec::SyncFernet { node, .. }
            | ActionSpec::DistributePublicKeys { node, .. }
            | ActionSpec::Restart { node, .. }
            | ActionSpec::IssueToken { node, .. }
            | ActionSpec::ListTrusts { node }
            | ActionSpec::Shell { node, .. } => Some(node),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ActionSpec::Probe { .. } => "probe",
            ActionSpec::LbDrain { .. } => "lb.drain",
            ActionSpec::LbReady { .. } => "lb.ready",
            ActionSpec::LbMaint { .. } => "lb.maint",
            ActionSpec::SetProvider { .. } => "keystone.set_provider",
            ActionSpec::CreateKeypair { .. } | ActionSpec::CreateSharedKeypair { .. } => {
                "keystone.create_jws_keypair"
            }
            ActionSpec::InstallKeys { .. } => "keystone.install_jws_keys",
            ActionSpec::PublishStagedKeys { .. } => "keystone.publish_staged_public_keys",
            ActionSpec::RemoveRetiredKeys { .. } => "keystone.remove_retired_public_keys",
            ActionSpec::RotateFernet { .. } => "keystone.rotate_fernet_keys",
            ActionSpec::SyncFernet { .. } => "keystone.sync_fernet_keys",
            ActionSpec::DistributePublicKeys { .. } => "keystone.distribute_public_keys",
            ActionSpec::Restart { .. } => "service.restart",
            ActionSpec::IssueToken { .. } => "keystone.issue_token",
            ActionSpec::ValidateMatrix { .. } => "keystone.validate_matrix",
            ActionSpec::ListTrusts { .. } => "keystone.list_trusts",
            ActionSpec::Wait { .. } => "wait",
            ActionSpec::Shell { .. } => "shell",
            ActionSpec::AcceptHostKey { .. } => "ssh.accept_host_key",
        }
    }

    /// Safe to run again when a crash lost its outcome.
    pub fn idempotent(&self) -> bool {
        matches!(
            self,
            ActionSpec::Probe { .. }
                | ActionSpec::LbDrain { .. }
                | ActionSpec::LbReady { .. }
                | ActionSpec::LbMaint { .. }
                | ActionSpec::SetProvider { .. }
                | ActionSpec::InstallKeys { .. }
                | ActionSpec::PublishStagedKeys { .. }
                | ActionSpec::RemoveRetiredKeys { .. }
                | ActionSpec::SyncFernet { .. }
                | ActionSpec::DistributePublicKeys { .. }
                | ActionSpec::IssueToken { .. }
                | ActionSpec::ValidateMatrix { .. }
                | ActionSpec::ListTrusts { .. }
                | ActionSpec::Wait { .. }
                | ActionSpec::AcceptHostKey { .. }
        )
    }

    /// One line for the log and the journal: what is done, where.
    pub fn describe(&self) -> String {
        match self {
            ActionSpec::Probe {
                nodes,
                lb,
                tokens,
                until_up,
            } => {
                let mut parts = Vec::new();
                if !nodes.is_empty() {
                    parts.push(format!(
                        "read keystone.conf and key repositories on {}",
                        list(nodes)
                    ));
                }
                match (lb, until_up) {
                    (true, Some(n)) => parts.push(format!(
                        "read server state from every load balancer until {n} passed a health check there (up to {UNTIL_UP_SECS}s)"
                    )),
                    (true, None) => {
                        parts.push("read server state from every load balancer".into())
                    }
                    _ => {}
                }
                if !tokens.is_empty() {
                    parts.push(format!(
                        "issue and validate a token directly at {}",
                        list(tokens)
                    ));
                }
                parts.join("; ")
            }
            ActionSpec::LbDrain { node, timeout_secs } => format!(
                "drain {node} on every load balancer, wait up to {timeout_secs}s for its sessions to reach 0, then maint"
            ),
            ActionSpec::LbReady { node, timeout_secs } => format!(
                "set {node} ready on every load balancer and wait up to {timeout_secs}s until a health check passed on every one (UP, not `UP 1/3`)"
            ),
            ActionSpec::LbMaint { node } => format!(
                "set {node} back to maint on every load balancer that shows it in the pool, and read it back"
            ),
            ActionSpec::SetProvider { node, provider } => {
                format!("set [token] provider = {provider} in {node}'s keystone.conf (backup kept)")
            }
            ActionSpec::CreateKeypair { node, keygen } => match keygen {
                KeyGen::KeystoneManage => {
                    format!("keystone-manage create_jws_keypair in a staging directory on {node}")
                }
                KeyGen::Native => format!("generate an ES256 keypair for {node}"),
            },
            ActionSpec::CreateSharedKeypair {
                origin,
                nodes,
                keygen,
            } => format!(
                "generate one keypair ({}) and stage it on {}",
                match keygen {
                    KeyGen::KeystoneManage => format!("keystone-manage on {origin}"),
                    KeyGen::Native => "ES256, in memory".into(),
                },
                list(nodes)
            ),
            ActionSpec::InstallKeys { node, public } => {
                if *public {
                    format!(
                        "install private.pem (0600, keystone-owned) and {node}'s public key on {node}"
                    )
                } else {
                    format!(
                        "swap in {node}'s staged private.pem (0600, keystone-owned); old public keys stay"
                    )
                }
            }
            ActionSpec::PublishStagedKeys { node, from } => format!(
                "copy the staged public keys of {} into {node}'s public repository",
                list(from)
            ),
            ActionSpec::RemoveRetiredKeys { node, .. } => {
                format!("move aside the public keys on {node} that no node signs with any more")
            }
            ActionSpec::RotateFernet { node } => format!(
                "rotate the Fernet keys on {node} (staged key 0 becomes primary, a new staged key is made)"
            ),
            ActionSpec::SyncFernet { node, from } => {
                format!("make {node}'s Fernet repository identical to {from}'s")
            }
            ActionSpec::DistributePublicKeys { node, from } => {
                format!(
                    "copy the public keys of {} into {node}'s public repository",
                    list(from)
                )
            }
            ActionSpec::Restart { node, timeout_secs } => format!(
                "restart keystone on {node}, wait up to {timeout_secs}s for GET /v3 at its own URL"
            ),
            ActionSpec::IssueToken { node, expect } => format!(
                "issue a token directly at {node} (not through the load balancer), expect {expect}, validate it on {node}"
            ),
            ActionSpec::ValidateMatrix { nodes, expect } => format!(
                "issue a {expect} token at each of {} and validate each at every node",
                list(nodes)
            ),
            ActionSpec::ListTrusts { node } => {
                format!("list trusts (GET /v3/OS-TRUST/trusts at {node})")
            }
            ActionSpec::Wait { secs } => format!(
                "wait {}",
                humantime::format_duration(Duration::from_secs(*secs))
            ),
            ActionSpec::Shell {
                node,
                command,
                expect_status,
                sudo,
                ..
            } => format!(
                "on {node}: {}{command} (expect exit {expect_status})",
                if *sudo { "sudo " } else { "" }
            ),
            ActionSpec::AcceptHostKey {
                host,
                port,
                known_hosts,
                ..
            } => format!("add the host key of {host}:{port} to {known_hosts}"),
        }
    }
}

fn list(v: &[String]) -> String {
    v.join(", ")
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// How long an `until_up` probe waits for a passed health check (HAProxy's `inter` is
/// typically 1-2 s; `rise` checks after a DOWN take longer, and then the gate says why).
pub const UNTIL_UP_SECS: u64 = 10;

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

/// Expand a runbook over an inventory.
pub fn compile(
    rb: &Runbook,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
) -> Result<Vec<Op>, PlanError> {
    let nodes = inv.node_names();
    let mut ops: Vec<Op> = Vec::new();
    let render = |t: &str, node: Option<&str>| -> Result<String, PlanError> {
        let vars = node.map(|n| node_vars(inv, n));
        template::render_item(t, &rb.name, &rb.target_provider, params, vars.as_ref(), inv)
            .map_err(PlanError)
    };

    for step in &rb.steps {
        // (node, item) pairs in execution order; node None = fleet-level.
        let mut seq: Vec<(Option<String>, &Item)> = Vec::new();
        match step.scope {
            Scope::Once => seq.extend(step.items.iter().map(|i| (None, i))),
            Scope::AllNodes => seq.extend(step.items.iter().map(|i| (None, i))),
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
                (None, _) => vec![],
            };
            let push = |ops: &mut Vec<Op>, kind: OpKind, node: Option<String>| {
                let index = ops.len();
                ops.push(Op {
                    index,
                    step: step.id.clone(),
                    node,
                    kind,
                });
            };
            // The guard a fleet-level or node-level gate needs, inserted unless just written.
            let guard = |ops: &mut Vec<Op>, gate: Gate, node: &Option<String>| {
                // Already guarded if the same gate is in the block of gates right before.
                let already = ops
                    .iter()
                    .rev()
                    .take_while(|o| matches!(o.kind, OpKind::Gate { .. }))
                    .any(|o| {
                        matches!(&o.kind, OpKind::Gate { gate: g, .. } if *g == gate)
                            && (&o.node == node || !gate.per_node())
                    });
                if !already {
                    let index = ops.len();
                    ops.push(Op {
                        index,
                        step: step.id.clone(),
                        node: node.clone(),
                        kind: OpKind::Gate {
                            gate,
                            implicit: true,
                        },
                    });
                }
            };
            let per_target = |f: &dyn Fn(&str) -> Result<ActionSpec, PlanError>| -> Result<Vec<ActionSpec>, PlanError> {
                if targets.is_empty() {
                    return Err(PlanError(format!(
                        "step `{}`: `{}` acts on nodes; use scope each-node or all-nodes",
                        step.id,
                        item.name()
                    )));
                }
                targets.iter().map(|t| f(t)).collect()
            };
            // The item's action, as one op over these specs.
            let act = |ops: &mut Vec<Op>, specs: Vec<ActionSpec>| {
                push(
                    ops,
                    OpKind::Act {
                        action: item.name().into(),
                        specs,
                    },
                    node.clone(),
                )
            };
            // Actions that change one node at a time belong in each-node steps.
            let one_node = |what: &str| -> Result<(), PlanError> {
                if targets.len() == 1 {
                    Ok(())
                } else {
                    Err(PlanError(format!(
                        "step `{}`: {} {what} and must be in an each-node step",
                        step.id,
                        item.name()
                    )))
                }
            };
            match item {
                Item::Gate(g) => {
                    if g.per_node() {
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
                Item::Probe(_) => {
                    let probe_nodes = if targets.is_empty() {
                        nodes.clone()
                    } else {
                        targets.clone()
                    };
                    push(
                        &mut ops,
                        OpKind::Act {
                            action: "probe".into(),
                            specs: vec![ActionSpec::Probe {
                                nodes: probe_nodes,
                                lb: !inv.load_balancers.is_empty(),
                                tokens: vec![],
                                until_up: None,
                            }],
                        },
                        node.clone(),
                    )
                }
                Item::ListTrusts(_) => push(
                    &mut ops,
                    OpKind::Act {
                        action: item.name().into(),
                        specs: vec![ActionSpec::ListTrusts {
                            node: targets.first().cloned().unwrap_or_else(|| nodes[0].clone()),
                        }],
                    },
                    node.clone(),
                ),
                Item::ValidateMatrix(v) => push(
                    &mut ops,
                    OpKind::Act {
                        action: item.name().into(),
                        specs: vec![ActionSpec::ValidateMatrix {
                            nodes: nodes.clone(),
                            expect: render(&v.expect, None)?,
                        }],
                    },
                    node.clone(),
                ),
                Item::Wait(w) => {
                    let kind = match w.until {
                        Some(condition) => OpKind::WaitUntil {
                            condition,
                            max_secs: w.duration.map(|d| d.as_secs()),
                        },
                        None => OpKind::Act {
                            action: "wait".into(),
                            specs: vec![ActionSpec::Wait {
                                secs: w.duration.map(|d| d.as_secs()).unwrap_or(0),
                            }],
                        },
                    };
                    push(&mut ops, kind, node.clone());
                }
                Item::CreateJwsKeypair(c) => {
                    let strategy = render(&c.strategy, None)?;
                    let keygen_of = |n: &str| inv.node(n).map(|x| x.keygen).unwrap_or_default();
                    let specs = match strategy.as_str() {
                        "per-node" => per_target(&|t| {
                            Ok(ActionSpec::CreateKeypair {
                                node: t.to_string(),
                                keygen: keygen_of(t),
                            })
                        })?,
                        "shared" => {
                            let all = if targets.is_empty() {
                                nodes.clone()
                            } else {
                                targets.clone()
                            };
                            vec![ActionSpec::CreateSharedKeypair {
                                origin: all[0].clone(),
                                keygen: keygen_of(&all[0]),
                                nodes: all,
                            }]
                        }
                        other => {
                            return Err(PlanError(format!(
                                "step `{}`: key strategy `{other}`: expected per-node or shared",
                                step.id
                            )));
                        }
                    };
                    act(&mut ops, specs);
                }
                Item::InstallJwsKeys(k) => {
                    if !k.public {
                        // Rotation: a node may only start signing with a key every node accepts.
                        guard(&mut ops, Gate::StagedKeysEverywhere, &None);
                    }
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::InstallKeys {
                            node: t.to_string(),
                            public: k.public,
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::DistributePublicKeys(_) => {
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::DistributePublicKeys {
                            node: t.to_string(),
                            from: nodes.iter().filter(|n| *n != t).cloned().collect(),
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::PublishStagedPublicKeys(_) => {
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::PublishStagedKeys {
                            node: t.to_string(),
                            from: nodes.clone(),
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::RemoveRetiredPublicKeys(_) => {
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::RemoveRetiredKeys {
                            node: t.to_string(),
                            nodes: nodes.clone(),
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::RotateFernetKeys(_) => {
                    // Rotation happens on one node (the first, or the step's node); the others
                    // get its repository by sync.
                    let on = node.clone().unwrap_or_else(|| nodes[0].clone());
                    push(
                        &mut ops,
                        OpKind::Act {
                            action: item.name().into(),
                            specs: vec![ActionSpec::RotateFernet { node: on }],
                        },
                        node.clone(),
                    );
                }
                Item::SyncFernetKeys(_) => {
                    let from = nodes[0].clone();
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::SyncFernet {
                            node: t.to_string(),
                            from: from.clone(),
                        })
                    })?
                    .into_iter()
                    .filter(|s| s.node() != Some(from.as_str()))
                    .collect();
                    act(&mut ops, specs);
                }
                Item::LbDrain(d) => {
                    one_node("takes one node out at a time")?;
                    guard(&mut ops, Gate::PoolCapacity, &node);
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::LbDrain {
                            node: t.to_string(),
                            timeout_secs: d.timeout.as_secs(),
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::LbReady(r) => {
                    one_node("re-adds one node at a time (its gates look at that node)")?;
                    guard(&mut ops, Gate::ValidatedBeforeReadd, &node);
                    guard(&mut ops, Gate::MixedPool, &node);
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::LbReady {
                            node: t.to_string(),
                            timeout_secs: r.timeout.as_secs(),
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::SetProvider(s) => {
                    let provider = render(&s.provider, node.as_deref())?;
                    one_node("flips one node at a time")?;
                    match provider.as_str() {
                        "jws" => guard(&mut ops, Gate::KeysEverywhere, &None),
                        "fernet" => guard(&mut ops, Gate::FernetKeysEverywhere, &None),
                        other => {
                            return Err(PlanError(format!(
                                "step `{}`: provider `{other}`: expected fernet or jws",
                                step.id
                            )));
                        }
                    }
                    guard(&mut ops, Gate::OutOfPool, &node);
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::SetProvider {
                            node: t.to_string(),
                            provider: provider.clone(),
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::Restart(r) => {
                    one_node("restarts one node at a time, while it is out of the pool")?;
                    guard(&mut ops, Gate::OutOfPool, &node);
                    let specs = per_target(&|t| {
                        Ok(ActionSpec::Restart {
                            node: t.to_string(),
                            timeout_secs: r.timeout.as_secs(),
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::IssueToken(t) => {
                    // After a restart, the node must still be out before it is exercised and
                    // before anything decides about re-adding it.
                    if drained_in_step(&ops, &step.id, &node) {
                        guard(&mut ops, Gate::OutOfPool, &node);
                    }
                    let specs = per_target(&|n| {
                        Ok(ActionSpec::IssueToken {
                            node: n.to_string(),
                            expect: render(&t.expect, Some(n))?,
                        })
                    })?;
                    act(&mut ops, specs);
                }
                Item::Shell(s) => {
                    if step.scope == Scope::EachNode && !s.pooled {
                        guard(&mut ops, Gate::OutOfPool, &node);
                    }
                    let specs = per_target(&|n| {
                        Ok(ActionSpec::Shell {
                            node: n.to_string(),
                            command: render(&s.command, Some(n))?,
                            expect_status: s.expect_status,
                            sudo: s.sudo,
                            timeout_secs: s.timeout.map(|d| d.as_secs()).unwrap_or(120),
                        })
                    })?;
                    act(&mut ops, specs);
                }
            }
        }
    }
    order_pool_reads_last(&mut ops);
    Ok(ops)
}

/// Whether this step already took `node` out of the pool (an earlier `lb.drain` for it).
fn drained_in_step(ops: &[Op], step: &str, node: &Option<String>) -> bool {
    node.is_some()
        && ops.iter().rev().take_while(|o| o.step == step).any(|o| {
            &o.node == node && matches!(&o.kind, OpKind::Act { action, .. } if action == "lb.drain")
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

fn yes() -> bool {
    true
}
