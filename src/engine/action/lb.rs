//! The load-balancer family: take a node out of the pool (drain, then maint), put it back
//! (ready, until a health check passed everywhere), and set a drained node back to maint when
//! it reappeared in the pool (a pool breach).

use super::kit::{Action, Cx, Family, Phase, Piece, PlanError, PoolMove, Touches, not_mine};
use crate::inventory::Inventory;
use crate::runbook::{Gate, Item};
use serde::{Deserialize, Serialize};

pub const DRAIN: Action = Action {
    name: "lb.drain",
    short: "lb.drain",
    verb: "draining",
};
pub const READY: Action = Action {
    name: "lb.ready",
    short: "lb.ready",
    verb: "re-adding",
};
pub const SWAP: Action = Action {
    name: "lb.swap",
    short: "lb.swap",
    verb: "swapping halves",
};
pub const MAINT: Action = Action {
    name: "lb.maint",
    short: "lb.maint",
    verb: "back to maint",
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action")]
pub enum Lb {
    #[serde(rename = "lb_drain")]
    Drain { node: String, timeout_secs: u64 },
    #[serde(rename = "lb_ready")]
    Ready { node: String, timeout_secs: u64 },
    /// Set a node cutover had drained back to maint on every instance that shows it in the
    /// pool (a pool breach), and read it back.
    #[serde(rename = "lb_maint")]
    Maint { node: String },
    /// The halves swap: on every instance (in parallel) ONE runtime-API write sets half A's
    /// servers ready and half B's drain; then B maint once its sessions reach 0 on that
    /// instance; then wait until A is UP (health-checked) everywhere. The gap between the
    /// first instance's write and the last's is measured.
    #[serde(rename = "lb_swap")]
    Swap {
        a: Vec<String>,
        b: Vec<String>,
        drain_secs: u64,
        up_secs: u64,
    },
}

impl Lb {
    /// The half this action takes out of the pool (a swap takes half B out), for the group
    /// form of its capacity gate.
    pub fn takes_out_group(&self) -> Option<&'static str> {
        matches!(self, Lb::Swap { .. }).then_some(crate::engine::halves::HALF_B)
    }

    /// How it moves several nodes at once (a swap: A back in, B out), beyond its one node's
    /// [`Family::pool_move`].
    pub fn group_moves(&self) -> Vec<(String, PoolMove, Phase)> {
        match self {
            Lb::Swap { a, b, .. } => a
                .iter()
                .map(|n| (n.clone(), PoolMove::PutsBack, Phase::Rejoined))
                .chain(
                    b.iter()
                        .map(|n| (n.clone(), PoolMove::TakesOut, Phase::OutOfPool)),
                )
                .collect(),
            _ => vec![],
        }
    }
}

impl Family for Lb {
    const TAGS: &'static [&'static str] = &["lb_drain", "lb_ready", "lb_maint", "lb_swap"];
    const ACTIONS: &'static [Action] = &[DRAIN, READY, MAINT, SWAP];

    fn action(&self) -> Action {
        match self {
            Lb::Drain { .. } => DRAIN,
            Lb::Ready { .. } => READY,
            Lb::Maint { .. } => MAINT,
            Lb::Swap { .. } => SWAP,
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            Lb::Drain { node, .. } | Lb::Ready { node, .. } | Lb::Maint { node } => Some(node),
            Lb::Swap { .. } => None,
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        match self {
            Lb::Drain { node, timeout_secs } => format!(
                "drain {node} on every load balancer, wait up to {timeout_secs}s for its sessions to reach 0, then maint"
            ),
            Lb::Ready { node, timeout_secs } => format!(
                "set {node} ready on every load balancer and wait up to {timeout_secs}s until a health check passed on every one (UP, not `UP 1/3`)"
            ),
            Lb::Maint { node } => format!(
                "set {node} back to maint on every load balancer that shows it in the pool, and read it back"
            ),
            Lb::Swap {
                a,
                b,
                drain_secs,
                up_secs,
            } => format!(
                "swap the pool on every load balancer in one write each: half A ({}) ready, half B ({}) drain; B to maint once its sessions reach 0 (up to {drain_secs}s); wait up to {up_secs}s until A is UP (health-checked) everywhere",
                a.join(", "),
                b.join(", ")
            ),
        }
    }

    fn exact(&self, inv: &Inventory) -> Option<String> {
        let (node, state) = match self {
            Lb::Drain { node, .. } => (node, "drain, then maint"),
            Lb::Ready { node, .. } => (node, "ready"),
            Lb::Maint { .. } => return None,
            Lb::Swap { a, b, .. } => {
                let cmds: Vec<String> = inv
                    .load_balancers
                    .iter()
                    .map(|lb| {
                        let set = |n: &String, st: &str| {
                            format!("set server {}/{} state {st}", lb.backend, lb.server_for(n))
                        };
                        let batch: Vec<String> = a
                            .iter()
                            .map(|n| set(n, "ready"))
                            .chain(b.iter().map(|n| set(n, "drain")))
                            .collect();
                        format!("{}: {}", lb.name, batch.join("; "))
                    })
                    .collect();
                return Some(format!("$ {}", cmds.join("\n          $ ")));
            }
        };
        let cmds: Vec<String> = inv
            .load_balancers
            .iter()
            .map(|lb| {
                format!(
                    "{}: set server {}/{} state {state}",
                    lb.name,
                    lb.backend,
                    lb.server_for(node)
                )
            })
            .collect();
        Some(format!("$ {}", cmds.join("\n          $ ")))
    }

    fn required_gates(&self) -> Vec<Gate> {
        match self {
            Lb::Drain { .. } => vec![Gate::PoolCapacity],
            Lb::Ready { .. } => vec![Gate::ValidatedBeforeReadd, Gate::MixedPool],
            Lb::Maint { .. } => vec![],
            // The capacity gate is about half B (compile places it so).
            Lb::Swap { .. } => vec![Gate::PoolCapacity, Gate::ValidatedBeforeSwap],
        }
    }

    fn phase_on_start(&self) -> Option<Phase> {
        matches!(self, Lb::Drain { .. }).then_some(Phase::Draining)
    }

    fn phase_after(&self) -> Option<Phase> {
        match self {
            Lb::Drain { .. } => Some(Phase::OutOfPool),
            Lb::Ready { .. } => Some(Phase::Rejoined),
            Lb::Maint { .. } | Lb::Swap { .. } => None,
        }
    }

    fn pool_move(&self) -> Option<PoolMove> {
        match self {
            Lb::Drain { .. } => Some(PoolMove::TakesOut),
            Lb::Ready { .. } => Some(PoolMove::PutsBack),
            Lb::Maint { .. } | Lb::Swap { .. } => None,
        }
    }

    fn touches(&self) -> Touches {
        Touches {
            lb: true,
            ready: matches!(self, Lb::Ready { .. } | Lb::Swap { .. }),
            ..Touches::default()
        }
    }

    fn reads_pool_first(&self) -> bool {
        matches!(self, Lb::Ready { .. })
    }

    fn compile(cx: &Cx, item: &Item) -> Result<Vec<Piece<Lb>>, PlanError> {
        match item {
            Item::LbDrain(d) => {
                cx.one_node("takes one node out at a time")?;
                let specs = cx.per_target(|t| {
                    Ok(Lb::Drain {
                        node: t.to_string(),
                        timeout_secs: d.timeout.as_secs(),
                    })
                })?;
                Ok(vec![Piece::Act(specs)])
            }
            Item::LbReady(r) => {
                cx.one_node("re-adds one node at a time (its gates look at that node)")?;
                let specs = cx.per_target(|t| {
                    Ok(Lb::Ready {
                        node: t.to_string(),
                        timeout_secs: r.timeout.as_secs(),
                    })
                })?;
                Ok(vec![Piece::Act(specs)])
            }
            Item::LbSwap(w) => {
                if !cx.targets.is_empty() {
                    return Err(
                        cx.error("lb.swap moves both halves at once and must be in a once step")
                    );
                }
                let Some((a, b)) = cx.halves.clone() else {
                    return Err(cx.error(
                        "lb.swap swaps half A and half B: the plan needs a half-a and a half-b step (scope: half-a / half-b) that are included",
                    ));
                };
                Ok(vec![Piece::Act(vec![Lb::Swap {
                    a,
                    b,
                    drain_secs: w.drain_timeout.as_secs(),
                    up_secs: w.up_timeout.as_secs(),
                }])])
            }
            _ => Err(not_mine(cx, "lb")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kit::test_support::{check_family, compile_item, inventory};
    use super::*;

    #[test]
    fn tags_and_names() {
        check_family::<Lb>();
        let s = Lb::Drain {
            node: "ks1".into(),
            timeout_secs: 60,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"action":"lb_drain","node":"ks1","timeout_secs":60}"#
        );
        assert_eq!(s.action().name, "lb.drain");
    }

    #[test]
    fn drain_and_ready_are_one_node_at_a_time_with_their_gates() {
        let p = compile_item::<Lb>("each-node", "lb.drain: {timeout: 10s}", Some("ks2"), false)
            .unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        assert_eq!(
            specs,
            &[Lb::Drain {
                node: "ks2".into(),
                timeout_secs: 10
            }]
        );
        assert_eq!(specs[0].required_gates(), [Gate::PoolCapacity]);
        assert_eq!(specs[0].phase_on_start(), Some(Phase::Draining));
        assert_eq!(specs[0].phase_after(), Some(Phase::OutOfPool));
        let e = compile_item::<Lb>("all-nodes", "lb.ready: {}", None, false).unwrap_err();
        assert!(e.0.contains("must be in an each-node step"), "{e}");
        let p = compile_item::<Lb>("each-node", "lb.ready: {}", Some("ks1"), false).unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        assert_eq!(
            specs[0].required_gates(),
            [Gate::ValidatedBeforeReadd, Gate::MixedPool]
        );
        assert_eq!(specs[0].pool_move(), Some(PoolMove::PutsBack));
        assert!(specs[0].reads_pool_first());
    }

    #[test]
    fn the_exact_commands_name_every_instance() {
        let s = Lb::Ready {
            node: "ks1".into(),
            timeout_secs: 30,
        };
        let x = s.exact(&inventory()).unwrap();
        assert!(
            x.contains("haproxy-a: set server keystone_api/ks1 state ready"),
            "{x}"
        );
        assert!(
            x.contains("haproxy-b: set server keystone_api/ks1 state ready"),
            "{x}"
        );
        assert_eq!(Lb::Maint { node: "ks1".into() }.exact(&inventory()), None);
    }

    #[test]
    fn the_swap_is_one_write_per_instance_and_moves_both_halves() {
        // Compiled from a runbook in tests/engine.rs and the golden plans; here its rules.
        let s = &Lb::Swap {
            a: vec!["ks1".into()],
            b: vec!["ks2".into(), "ks3".into()],
            drain_secs: 20,
            up_secs: 30,
        };
        assert_eq!(s.node(), None);
        assert_eq!(s.takes_out_group(), Some("half-b"));
        assert_eq!(
            s.required_gates(),
            [Gate::PoolCapacity, Gate::ValidatedBeforeSwap]
        );
        let moves = s.group_moves();
        assert_eq!(
            moves[0],
            ("ks1".into(), PoolMove::PutsBack, Phase::Rejoined)
        );
        assert_eq!(
            moves[2],
            ("ks3".into(), PoolMove::TakesOut, Phase::OutOfPool)
        );
        let x = s.exact(&inventory()).unwrap();
        assert!(
            x.contains("haproxy-a: set server keystone_api/ks1 state ready; set server keystone_api/ks2 state drain; set server keystone_api/ks3 state drain"),
            "{x}"
        );
    }
}
