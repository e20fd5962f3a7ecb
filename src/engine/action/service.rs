//! The service family: restart keystone on a node (then wait for GET /v3 at its own URL), and
//! a runbook's own shell command on a node.

use super::kit::{Action, Cx, Family, Phase, Piece, PlanError, Touches, not_mine};
use crate::inventory::Inventory;
use crate::runbook::{Gate, Item, Scope};
use serde::{Deserialize, Serialize};

pub const RESTART: Action = Action {
    name: "service.restart",
    short: "restart",
    verb: "restarting",
};
pub const SHELL: Action = Action {
    name: "shell",
    short: "shell",
    verb: "shell",
};

/// A shell command's timeout when the runbook gives none.
const SHELL_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Service {
    Restart {
        node: String,
        timeout_secs: u64,
    },
    Shell {
        node: String,
        command: String,
        expect_status: i32,
        sudo: bool,
        timeout_secs: u64,
    },
}

impl Family for Service {
    const TAGS: &'static [&'static str] = &["restart", "shell"];
    const ACTIONS: &'static [Action] = &[RESTART, SHELL];

    fn action(&self) -> Action {
        match self {
            Service::Restart { .. } => RESTART,
            Service::Shell { .. } => SHELL,
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            Service::Restart { node, .. } | Service::Shell { node, .. } => Some(node),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        match self {
            Service::Restart { node, timeout_secs } => format!(
                "restart keystone on {node}, wait up to {timeout_secs}s for GET /v3 at its own URL"
            ),
            Service::Shell {
                node,
                command,
                expect_status,
                sudo,
                ..
            } => format!(
                "on {node}: {}{command} (expect exit {expect_status})",
                if *sudo { "sudo " } else { "" }
            ),
        }
    }

    fn exact(&self, inv: &Inventory) -> Option<String> {
        match self {
            Service::Restart { node, .. } => Some(format!("$ {}", inv.node(node)?.restart)),
            Service::Shell { command, .. } => Some(format!("$ {command}")),
        }
    }

    fn required_gates(&self) -> Vec<Gate> {
        match self {
            Service::Restart { .. } => vec![Gate::OutOfPool],
            Service::Shell { .. } => vec![],
        }
    }

    fn phase_after(&self) -> Option<Phase> {
        matches!(self, Service::Restart { .. }).then_some(Phase::Restarted)
    }

    fn touches(&self) -> Touches {
        match self {
            // A restarting node fails its health checks for a while.
            Service::Restart { .. } => Touches {
                service: true,
                lb: true,
                ..Touches::default()
            },
            Service::Shell { .. } => Touches::default(),
        }
    }

    fn reads_pool_first(&self) -> bool {
        true
    }

    fn compile(cx: &Cx, item: &Item) -> Result<Vec<Piece<Service>>, PlanError> {
        match item {
            Item::Restart(r) => {
                cx.one_node("restarts one node at a time, while it is out of the pool")?;
                let specs = cx.per_target(|t| {
                    Ok(Service::Restart {
                        node: t.to_string(),
                        timeout_secs: r.timeout.as_secs(),
                    })
                })?;
                Ok(vec![Piece::Act(specs)])
            }
            Item::Shell(s) => {
                let mut out = Vec::new();
                // In an each-node step a command runs only while its node is out of the pool,
                // unless the runbook says it is safe on a pooled node.
                if cx.step.scope == Scope::EachNode && !s.pooled {
                    out.push(Piece::Guard(Gate::OutOfPool));
                }
                let specs = cx.per_target(|n| {
                    Ok(Service::Shell {
                        node: n.to_string(),
                        command: (cx.render)(&s.command, Some(n))?,
                        expect_status: s.expect_status,
                        sudo: s.sudo,
                        timeout_secs: s.timeout.map(|d| d.as_secs()).unwrap_or(SHELL_TIMEOUT_SECS),
                    })
                })?;
                out.push(Piece::Act(specs));
                Ok(out)
            }
            _ => Err(not_mine(cx, "service")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kit::test_support::{check_family, compile_item};
    use super::*;

    #[test]
    fn tags_and_names() {
        check_family::<Service>();
    }

    #[test]
    fn a_restart_needs_the_node_out_and_a_shell_command_too_unless_pooled() {
        let p = compile_item::<Service>("each-node", "service.restart: {}", Some("ks1"), false)
            .unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        assert_eq!(specs[0].required_gates(), [Gate::OutOfPool]);
        assert_eq!(specs[0].phase_after(), Some(Phase::Restarted));
        assert!(!specs[0].idempotent());
        for (pooled, guarded) in [(false, true), (true, false)] {
            let item = format!("shell: {{command: \"true\", pooled: {pooled}}}");
            let p = compile_item::<Service>("each-node", &item, Some("ks2"), false).unwrap();
            assert_eq!(
                matches!(p.first(), Some(Piece::Guard(Gate::OutOfPool))),
                guarded
            );
            let Some(Piece::Act(specs)) = p.last() else {
                panic!("{p:?}")
            };
            assert!(
                matches!(
                    &specs[..],
                    [Service::Shell {
                        timeout_secs: 120,
                        ..
                    }]
                ),
                "{specs:?}"
            );
        }
        let e = compile_item::<Service>("once", "shell: {command: x}", None, false).unwrap_err();
        assert!(e.0.contains("acts on nodes"), "{e}");
    }
}
