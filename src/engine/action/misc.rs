//! Actions of no family of their own: read the fleet (probe), wait, and append a host key the
//! operator accepted at a hard stop to known_hosts.

use super::ActionSpec;
use super::kit::{Action, Cx, Family, Piece, PlanError, UNTIL_UP_SECS, list, not_mine};
use crate::runbook::Item;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const PROBE: Action = Action {
    name: "probe",
    short: "probe",
    verb: "probing",
};
pub const WAIT: Action = Action {
    name: "wait",
    short: "wait",
    verb: "wait",
};
pub const ACCEPT_HOST_KEY: Action = Action {
    name: "ssh.accept_host_key",
    short: "ssh.accept_host_key",
    verb: "ssh.accept_host_key",
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Misc {
    /// Read node facts, load-balancer state and/or direct token checks.
    Probe {
        nodes: Vec<String>,
        lb: bool,
        tokens: Vec<String>,
        /// Nodes asked for a token only, not validated: the provider each one's running
        /// Keystone serves (one request; a node also in `tokens` is asked there). Left out
        /// when empty, as journals written before it hold it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        providers: Vec<String>,
        /// The tokens of `tokens` may be each node's kept proof (`known::Proof` in the
        /// drivers: its last token, issued and validated after cutover last restarted it, while
        /// its keystone.conf and key files are as they were before it was issued). False: asked
        /// now. A node's provider (`providers`) may always be its kept proof.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        kept: bool,
        /// Read the load balancers until this node shows a passed health check on every one
        /// (a bounded wait: a reload right after its re-add resets it to `UP 1/3`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_up: Option<String>,
    },
    Wait {
        secs: u64,
    },
    /// Append a host key the operator accepted at a hard stop to known_hosts.
    AcceptHostKey {
        host: String,
        port: u16,
        key_openssh: String,
        known_hosts: String,
    },
}

impl Family for Misc {
    const TAGS: &'static [&'static str] = &["probe", "wait", "accept_host_key"];
    const ACTIONS: &'static [Action] = &[PROBE, WAIT, ACCEPT_HOST_KEY];

    fn action(&self) -> Action {
        match self {
            Misc::Probe { .. } => PROBE,
            Misc::Wait { .. } => WAIT,
            Misc::AcceptHostKey { .. } => ACCEPT_HOST_KEY,
        }
    }

    fn node(&self) -> Option<&str> {
        None
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        match self {
            Misc::Probe {
                nodes,
                lb,
                tokens,
                providers,
                kept,
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
                        "issue and validate a token directly at {}{}",
                        list(tokens),
                        if *kept {
                            " (or keep its last while its files are unchanged)"
                        } else {
                            ""
                        }
                    ));
                }
                let asked: Vec<String> = issued_only(tokens, providers).cloned().collect();
                if !asked.is_empty() {
                    parts.push(format!(
                        "issue a token directly at {} (which provider each serves)",
                        list(&asked)
                    ));
                }
                parts.join("; ")
            }
            Misc::Wait { secs } => format!(
                "wait {}",
                humantime::format_duration(Duration::from_secs(*secs))
            ),
            Misc::AcceptHostKey {
                host,
                port,
                known_hosts,
                ..
            } => format!("add the host key of {host}:{port} to {known_hosts}"),
        }
    }

    fn compile(cx: &Cx, item: &Item) -> Result<Vec<Piece<Misc>>, PlanError> {
        match item {
            // A runbook's probe reads everything: each node's files, every load balancer, and a
            // token issued and validated directly at each node (the credentials and every
            // node's URL work, and which provider each runs, before anything changes).
            Item::Probe(_) => Ok(vec![Piece::Act(vec![Misc::Probe {
                nodes: cx.targets_or_all(),
                lb: !cx.inv.load_balancers.is_empty(),
                tokens: cx.targets_or_all(),
                providers: vec![],
                kept: false,
                until_up: None,
            }])]),
            Item::Wait(w) => Ok(vec![match w.until {
                Some(condition) => Piece::WaitUntil {
                    condition,
                    max_secs: w.duration.map(|d| d.as_secs()),
                },
                None => Piece::Act(vec![Misc::Wait {
                    secs: w.duration.map(|d| d.as_secs()).unwrap_or(0),
                }]),
            }]),
            _ => Err(not_mine(cx, "misc")),
        }
    }
}

/// The nodes of a probe's `providers` asked for a token only: those not in its `tokens`, which
/// are asked there (issued and validated).
pub fn issued_only<'a>(
    tokens: &'a [String],
    providers: &'a [String],
) -> impl Iterator<Item = &'a String> {
    providers.iter().filter(|n| !tokens.contains(n))
}

/// Whether the probe `wide` reads everything the probe `narrow` asks for (the nodes' files, the
/// load balancers, the direct tokens, and the same wait for a health check), so a gate that
/// asks for `narrow` can be judged on `wide`'s read. Anything but two probes: no.
pub fn probe_covers(wide: &ActionSpec, narrow: &ActionSpec) -> bool {
    let (
        ActionSpec::Misc(Misc::Probe {
            nodes: wn,
            lb: wl,
            tokens: wt,
            providers: wp,
            kept: wk,
            until_up: wu,
        }),
        ActionSpec::Misc(Misc::Probe {
            nodes: nn,
            lb: nl,
            tokens: nt,
            providers: np,
            kept: nk,
            until_up: nu,
        }),
    ) = (wide, narrow)
    else {
        return false;
    };
    nn.iter().all(|n| wn.contains(n))
        && (*wl || !*nl)
        && nt.iter().all(|t| wt.contains(t))
        // Tokens asked for now are not read by a probe that may keep them.
        && (nt.is_empty() || *nk || !*wk)
        && np.iter().all(|p| wp.contains(p) || wt.contains(p))
        && (nu.is_none() || nu == wu)
}

#[cfg(test)]
mod tests {
    use super::super::kit::test_support::{check_family, compile_item};
    use super::*;

    #[test]
    fn tags_and_names() {
        check_family::<Misc>();
        // `until_up` is left out when unset, as journals written before it hold it.
        let s: Misc =
            serde_json::from_str(r#"{"action":"probe","nodes":[],"lb":true,"tokens":[]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"action":"probe","nodes":[],"lb":true,"tokens":[]}"#
        );
    }

    #[test]
    fn a_wait_with_a_condition_is_no_action() {
        let p = compile_item::<Misc>(
            "once",
            "wait: {until: old-tokens-expired, duration: 1m}",
            None,
            false,
        )
        .unwrap();
        assert!(
            matches!(
                p[..],
                [Piece::WaitUntil {
                    max_secs: Some(60),
                    ..
                }]
            ),
            "{p:?}"
        );
        let p = compile_item::<Misc>("once", "wait: {duration: 2s}", None, false).unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        assert_eq!(specs[0].describe(), "wait 2s");
        let p = compile_item::<Misc>("each-node", "probe: {}", Some("ks2"), false).unwrap();
        assert!(
            matches!(&p[..], [Piece::Act(s)] if matches!(&s[..], [Misc::Probe { nodes, lb: true, .. }] if nodes == &["ks2"])),
            "{p:?}"
        );
    }
}
