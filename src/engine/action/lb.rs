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
}

impl Family for Lb {
    const TAGS: &'static [&'static str] = &["lb_drain", "lb_ready", "lb_maint"];
    const ACTIONS: &'static [Action] = &[DRAIN, READY, MAINT];

    fn action(&self) -> Action {
        match self {
            Lb::Drain { .. } => DRAIN,
            Lb::Ready { .. } => READY,
            Lb::Maint { .. } => MAINT,
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            Lb::Drain { node, .. } | Lb::Ready { node, .. } | Lb::Maint { node } => Some(node),
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
        }
    }

    fn exact(&self, inv: &Inventory) -> Option<String> {
        let (node, state) = match self {
            Lb::Drain { node, .. } => (node, "drain, then maint"),
            Lb::Ready { node, .. } => (node, "ready"),
            Lb::Maint { .. } => return None,
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
        }
    }

    fn phase_on_start(&self) -> Option<Phase> {
        matches!(self, Lb::Drain { .. }).then_some(Phase::Draining)
    }

    fn phase_after(&self) -> Option<Phase> {
        match self {
            Lb::Drain { .. } => Some(Phase::OutOfPool),
            Lb::Ready { .. } => Some(Phase::Rejoined),
            Lb::Maint { .. } => None,
        }
    }

    fn pool_move(&self) -> Option<PoolMove> {
        match self {
            Lb::Drain { .. } => Some(PoolMove::TakesOut),
            Lb::Ready { .. } => Some(PoolMove::PutsBack),
            Lb::Maint { .. } => None,
        }
    }

    fn touches(&self) -> Touches {
        Touches {
            lb: true,
            ready: matches!(self, Lb::Ready { .. }),
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
}
