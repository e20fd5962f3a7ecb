//! The Keystone family: flip a node's token provider, and the checks that talk to Keystone
//! itself (a token issued and validated directly at a node, the cross-node validation matrix,
//! the trusts list).

use super::kit::{Action, Cx, Family, Phase, Piece, PlanError, Touches, list, not_mine};
use crate::inventory::Inventory;
use crate::provider::Provider;
use crate::runbook::{Gate, Item};
use serde::{Deserialize, Serialize};

pub const SET_PROVIDER: Action = Action {
    name: "keystone.set_provider",
    short: "set_provider",
    verb: "flipping",
};
pub const ISSUE_TOKEN: Action = Action {
    name: "keystone.issue_token",
    short: "issue_token",
    verb: "token check",
};
pub const VALIDATE_MATRIX: Action = Action {
    name: "keystone.validate_matrix",
    short: "matrix",
    verb: "keystone.validate_matrix",
};
pub const LIST_TRUSTS: Action = Action {
    name: "keystone.list_trusts",
    short: "list_trusts",
    verb: "trusts",
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Keystone {
    SetProvider { node: String, provider: String },
    IssueToken { node: String, expect: String },
    ValidateMatrix { nodes: Vec<String>, expect: String },
    ListTrusts { node: String },
}

impl Family for Keystone {
    const TAGS: &'static [&'static str] = &[
        "set_provider",
        "issue_token",
        "validate_matrix",
        "list_trusts",
    ];
    const ACTIONS: &'static [Action] = &[SET_PROVIDER, ISSUE_TOKEN, VALIDATE_MATRIX, LIST_TRUSTS];

    fn action(&self) -> Action {
        match self {
            Keystone::SetProvider { .. } => SET_PROVIDER,
            Keystone::IssueToken { .. } => ISSUE_TOKEN,
            Keystone::ValidateMatrix { .. } => VALIDATE_MATRIX,
            Keystone::ListTrusts { .. } => LIST_TRUSTS,
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            Keystone::SetProvider { node, .. }
            | Keystone::IssueToken { node, .. }
            | Keystone::ListTrusts { node } => Some(node),
            Keystone::ValidateMatrix { .. } => None,
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        match self {
            Keystone::SetProvider { node, provider } => {
                format!("set [token] provider = {provider} in {node}'s keystone.conf (backup kept)")
            }
            Keystone::IssueToken { node, expect } => format!(
                "issue a token directly at {node} (not through the load balancer), expect {expect}, validate it on {node}"
            ),
            Keystone::ValidateMatrix { nodes, expect } => format!(
                "issue a {expect} token at each of {} and validate each at every node",
                list(nodes)
            ),
            Keystone::ListTrusts { node } => {
                format!("list trusts (GET /v3/OS-TRUST/trusts at {node})")
            }
        }
    }

    fn exact(&self, inv: &Inventory) -> Option<String> {
        let n = inv.node(self.node()?)?;
        match self {
            Keystone::IssueToken { .. } => Some(format!(
                "POST {}/v3/auth/tokens; GET {}/v3/auth/tokens",
                n.keystone_url, n.keystone_url
            )),
            Keystone::SetProvider { .. } => Some(format!("edit {}", n.keystone_conf.display())),
            _ => None,
        }
    }

    fn required_gates(&self) -> Vec<Gate> {
        match self {
            Keystone::SetProvider { provider, .. } => vec![
                Gate::OutOfPool,
                if provider.parse() == Ok(Provider::Jws) {
                    Gate::KeysEverywhere
                } else {
                    Gate::FernetKeysEverywhere
                },
            ],
            _ => vec![],
        }
    }

    fn phase_after(&self) -> Option<Phase> {
        matches!(self, Keystone::SetProvider { .. }).then_some(Phase::Flipped)
    }

    fn touches(&self) -> Touches {
        match self {
            Keystone::SetProvider { provider, .. } => Touches {
                provider: Some(provider.clone()),
                ..Touches::default()
            },
            _ => Touches::default(),
        }
    }

    fn reads_pool_first(&self) -> bool {
        matches!(
            self,
            Keystone::SetProvider { .. } | Keystone::IssueToken { .. }
        )
    }

    fn compile(cx: &Cx, item: &Item) -> Result<Vec<Piece<Keystone>>, PlanError> {
        match item {
            Item::SetProvider(s) => {
                let provider = (cx.render)(&s.provider, cx.node.as_deref())?;
                cx.one_node("flips one node at a time")?;
                let provider = provider
                    .parse::<Provider>()
                    .map_err(|e| cx.error(format!("provider {e}")))?
                    .to_string();
                let specs = cx.per_target(|t| {
                    Ok(Keystone::SetProvider {
                        node: t.to_string(),
                        provider: provider.clone(),
                    })
                })?;
                Ok(vec![Piece::Act(specs)])
            }
            Item::IssueToken(t) => {
                let mut out = Vec::new();
                // After a restart, the node must still be out before it is exercised and
                // before anything decides about re-adding it.
                if cx.drained_in_step {
                    out.push(Piece::Guard(Gate::OutOfPool));
                }
                let specs = cx.per_target(|n| {
                    Ok(Keystone::IssueToken {
                        node: n.to_string(),
                        expect: (cx.render)(&t.expect, Some(n))?,
                    })
                })?;
                out.push(Piece::Act(specs));
                Ok(out)
            }
            Item::ValidateMatrix(v) => Ok(vec![Piece::Act(vec![Keystone::ValidateMatrix {
                nodes: cx.nodes.clone(),
                expect: (cx.render)(&v.expect, None)?,
            }])]),
            Item::ListTrusts(_) => Ok(vec![Piece::Act(vec![Keystone::ListTrusts {
                node: cx
                    .targets
                    .first()
                    .cloned()
                    .unwrap_or_else(|| cx.nodes[0].clone()),
            }])]),
            _ => Err(not_mine(cx, "keystone")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kit::test_support::{check_family, compile_item, inventory};
    use super::*;

    #[test]
    fn tags_and_names() {
        check_family::<Keystone>();
        let s = Keystone::SetProvider {
            node: "ks1".into(),
            provider: "jws".into(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"action":"set_provider","node":"ks1","provider":"jws"}"#
        );
    }

    #[test]
    fn a_flip_requires_the_node_out_and_the_keys_of_its_provider() {
        let p = compile_item::<Keystone>(
            "each-node",
            "keystone.set_provider: {provider: fernet}",
            Some("ks3"),
            false,
        )
        .unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        assert_eq!(
            specs[0].required_gates(),
            [Gate::OutOfPool, Gate::FernetKeysEverywhere]
        );
        assert_eq!(specs[0].phase_after(), Some(Phase::Flipped));
        assert_eq!(specs[0].touches().provider.as_deref(), Some("fernet"));
        let e = compile_item::<Keystone>(
            "each-node",
            "keystone.set_provider: {provider: nope}",
            Some("ks1"),
            false,
        )
        .unwrap_err();
        assert_eq!(e.0, "step `s`: provider `nope`: expected fernet or jws");
    }

    #[test]
    fn a_token_check_after_a_drain_in_its_step_is_guarded() {
        for drained in [false, true] {
            let p = compile_item::<Keystone>(
                "each-node",
                "keystone.issue_token: {expect: jws}",
                Some("ks1"),
                drained,
            )
            .unwrap();
            assert_eq!(
                matches!(p.first(), Some(Piece::Guard(Gate::OutOfPool))),
                drained
            );
        }
        let s = Keystone::IssueToken {
            node: "ks1".into(),
            expect: "jws".into(),
        };
        assert_eq!(
            s.exact(&inventory()).unwrap(),
            "POST http://10.0.0.11:5000/v3/auth/tokens; GET http://10.0.0.11:5000/v3/auth/tokens"
        );
    }
}
