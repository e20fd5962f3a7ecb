//! The service family: restart keystone on a node (then wait for GET /v3 at its own URL), a
//! runbook's own shell command on a node, and an HTTP check of a URL from a node or from the
//! bastion.

use super::kit::{Action, Cx, Family, Phase, Piece, PlanError, Touches, not_mine};
use crate::inventory::Inventory;
use crate::runbook::{Gate, HttpFrom, Item, Scope};
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
pub const HTTP_CHECK: Action = Action {
    name: "http.check",
    short: "http.check",
    verb: "checking",
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
    /// GET `url` from the node (curl there) or from the bastion (cutover itself); expect
    /// `expect_status` and, if given, `body_contains` in the body. Changes nothing.
    HttpCheck {
        /// The node the check is about (each-node and all-nodes steps); the node it runs on
        /// when `from` is `node`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        url: String,
        from: HttpFrom,
        expect_status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_contains: Option<String>,
        timeout_secs: u64,
    },
}

impl Family for Service {
    const TAGS: &'static [&'static str] = &["restart", "shell", "http_check"];
    const ACTIONS: &'static [Action] = &[RESTART, SHELL, HTTP_CHECK];

    fn action(&self) -> Action {
        match self {
            Service::Restart { .. } => RESTART,
            Service::Shell { .. } => SHELL,
            Service::HttpCheck { .. } => HTTP_CHECK,
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            Service::Restart { node, .. } | Service::Shell { node, .. } => Some(node),
            Service::HttpCheck { node, .. } => node.as_deref(),
        }
    }

    fn idempotent(&self) -> bool {
        // A GET changes nothing; a restart or a runbook's command may not be safe twice.
        matches!(self, Service::HttpCheck { .. })
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
            Service::HttpCheck {
                node,
                url,
                from,
                expect_status,
                body_contains,
                timeout_secs,
            } => {
                let (at, whose) = match (from, node) {
                    (HttpFrom::Node, Some(n)) => (format!("on {n}: "), String::new()),
                    (HttpFrom::Node, None) => (String::new(), String::new()),
                    (HttpFrom::Bastion, Some(n)) => {
                        (String::new(), format!(" ({n}) from the bastion"))
                    }
                    (HttpFrom::Bastion, None) => (String::new(), " from the bastion".into()),
                };
                let body = body_contains
                    .as_ref()
                    .map(|b| format!(" and a body containing {b:?}"))
                    .unwrap_or_default();
                format!("{at}GET {url}{whose}, expect {expect_status}{body} within {timeout_secs}s")
            }
        }
    }

    fn exact(&self, inv: &Inventory) -> Option<String> {
        match self {
            Service::Restart { node, .. } => Some(format!("$ {}", inv.node(node)?.restart)),
            Service::Shell { command, .. } => Some(format!("$ {command}")),
            Service::HttpCheck {
                url,
                from: HttpFrom::Node,
                timeout_secs,
                ..
            } => Some(format!("$ {}", curl(url, *timeout_secs, "BODY"))),
            Service::HttpCheck { .. } => None,
        }
    }

    fn required_gates(&self) -> Vec<Gate> {
        match self {
            Service::Restart { .. } => vec![Gate::OutOfPool],
            Service::Shell { .. } | Service::HttpCheck { .. } => vec![],
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
            Service::Shell { .. } | Service::HttpCheck { .. } => Touches::default(),
        }
    }

    fn reads_pool_first(&self) -> bool {
        !matches!(self, Service::HttpCheck { .. })
    }

    fn compile(cx: &Cx, item: &Item) -> Result<Vec<Piece<Service>>, PlanError> {
        match item {
            Item::Restart(r) => {
                cx.one_node("restarts one node at a time, while it is out of the pool")?;
                let specs = cx.per_target(|t| {
                    let timeout = r
                        .timeout
                        .fill(|tmpl| (cx.render)(tmpl, Some(t)))
                        .map_err(|e| cx.error(format!("service.restart timeout: {e}")))?;
                    Ok(Service::Restart {
                        node: t.to_string(),
                        timeout_secs: timeout.as_secs(),
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
            Item::HttpCheck(h) => {
                // Where from is one answer for the item: filled with its first node's variables.
                let from = h
                    .from
                    .fill(|t| (cx.render)(t, cx.targets.first().map(String::as_str)))
                    .map_err(|e| cx.error(format!("http.check from: {e}")))?;
                let spec = |node: Option<&str>| -> Result<Service, PlanError> {
                    let render = |t: &str| (cx.render)(t, node);
                    let url = render(&h.url)?.trim().to_string();
                    check_url(&url)
                        .map_err(|e| cx.error(format!("http.check url `{url}`: {e}")))?;
                    let expect_status = h
                        .expect_status
                        .fill(render)
                        .map_err(|e| cx.error(format!("http.check expect_status: {e}")))?;
                    let timeout = h
                        .timeout
                        .fill(render)
                        .map_err(|e| cx.error(format!("http.check timeout: {e}")))?;
                    let body = render(&h.body_contains)?;
                    Ok(Service::HttpCheck {
                        node: node.map(str::to_string),
                        url,
                        from,
                        expect_status,
                        body_contains: (!body.is_empty()).then_some(body),
                        timeout_secs: timeout.as_secs().max(1),
                    })
                };
                let specs = match from {
                    // From the bastion in a once step: one check, about no node.
                    HttpFrom::Bastion if cx.targets.is_empty() => vec![spec(None)?],
                    HttpFrom::Bastion => cx.per_target(|t| spec(Some(t)))?,
                    HttpFrom::Node if cx.targets.is_empty() => {
                        return Err(cx.error(
                            "http.check from: node runs on a node; use it in an each-node or all-nodes step, or say from: bastion",
                        ));
                    }
                    HttpFrom::Node => cx.per_target(|t| spec(Some(t)))?,
                };
                Ok(vec![Piece::Act(specs)])
            }
            _ => Err(not_mine(cx, "service")),
        }
    }
}

/// A URL an http.check may GET: http or https, a host, no credentials (the URL goes to the
/// journal and the log), no whitespace.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("expected http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host in it");
    }
    if authority.contains('@') {
        return Err("credentials in a URL end up in the journal; check a URL that needs none");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace in it (percent-encode it: %20)");
    }
    Ok(())
}

/// The curl command that GETs `url` on a node: the status on stdout, the body into `body`
/// (a path), at most `timeout_secs` in all, no proxy (the check is about the node itself).
pub fn curl(url: &str, timeout_secs: u64, body: &str) -> String {
    format!(
        "curl -sS --noproxy '*' --max-time {timeout_secs} -o {body} -w '%{{http_code}}' {}",
        crate::transport::shell_quote(url)
    )
}

#[cfg(test)]
mod tests {
    use super::super::kit::test_support::{check_family, compile_item};
    use super::*;
    use crate::engine::action::ActionSpec;

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

    #[test]
    fn an_http_check_changes_nothing_and_runs_where_it_is_told() {
        let item =
            r#"http.check: {url: "http://10.0.0.12:5000/v3", from: node, body_contains: "v3.14"}"#;
        let p = compile_item::<Service>("each-node", item, Some("ks2"), true).unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        let [spec] = &specs[..] else {
            panic!("{specs:?}")
        };
        assert_eq!(
            spec,
            &Service::HttpCheck {
                node: Some("ks2".into()),
                url: "http://10.0.0.12:5000/v3".into(),
                from: HttpFrom::Node,
                expect_status: 200,
                body_contains: Some("v3.14".into()),
                timeout_secs: 10,
            }
        );
        assert!(spec.idempotent());
        assert!(spec.required_gates().is_empty());
        assert_eq!(spec.phase_after(), None);
        assert_eq!(spec.touches(), Touches::default());
        assert!(!spec.reads_pool_first());
        assert_eq!(
            spec.describe(),
            r#"on ks2: GET http://10.0.0.12:5000/v3, expect 200 and a body containing "v3.14" within 10s"#
        );
        assert_eq!(
            spec.exact(&crate::engine::action::kit::test_support::inventory())
                .unwrap(),
            "$ curl -sS --noproxy '*' --max-time 10 -o BODY -w '%{http_code}' http://10.0.0.12:5000/v3"
        );
        // The journal's shape: tagged `http_check`, no body_contains when there is none.
        let once = compile_item::<Service>(
            "once",
            r#"http.check: {url: "https://api.example/healthz", expect_status: 204, timeout: 1500ms}"#,
            None,
            false,
        )
        .unwrap();
        let [Piece::Act(specs)] = &once[..] else {
            panic!("{once:?}")
        };
        assert_eq!(
            serde_json::to_string(&specs[0]).unwrap(),
            r#"{"action":"http_check","url":"https://api.example/healthz","from":"bastion","expect_status":204,"timeout_secs":1}"#
        );
        assert_eq!(
            specs[0].describe(),
            "GET https://api.example/healthz from the bastion, expect 204 within 1s"
        );
        let back: Service =
            serde_json::from_str(&serde_json::to_string(&specs[0]).unwrap()).unwrap();
        assert_eq!(&back, &specs[0]);
    }

    #[test]
    fn an_http_check_refuses_what_it_cannot_do_safely() {
        for (scope, item, says) in [
            (
                "once",
                r#"http.check: {url: "http://a/v3", from: node}"#,
                "runs on a node",
            ),
            (
                "each-node",
                r#"http.check: {url: "http://admin:s3cret@a/v3"}"#,
                "credentials in a URL",
            ),
            (
                "each-node",
                r#"http.check: {url: "ftp://a/"}"#,
                "http:// or https://",
            ),
            ("each-node", r#"http.check: {url: "http:///v3"}"#, "no host"),
            (
                "each-node",
                r#"http.check: {url: "http://a/x y"}"#,
                "whitespace",
            ),
        ] {
            let node = (scope == "each-node").then_some("ks1");
            let e = compile_item::<Service>(scope, item, node, false).unwrap_err();
            assert!(e.0.contains(says), "{item}: {e}");
            assert!(e.0.starts_with("step `s`: "), "{e}");
        }
        // All nodes: one check per node, all in one op.
        let p = compile_item::<Service>(
            "all-nodes",
            r#"http.check: {url: "http://x/", from: node}"#,
            None,
            false,
        )
        .unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        let nodes: Vec<_> = specs.iter().map(|s| s.node().unwrap()).collect();
        assert_eq!(nodes, ["ks1", "ks2", "ks3"]);
    }

    /// Durations and statuses from the runbook's parameters, filled per node at compile.
    #[test]
    fn timeouts_and_statuses_come_from_parameters() {
        let src = r#"name: t
title: T
target_provider: fernet
params:
  restart_timeout: {default: 90s}
  status: {default: "200"}
steps:
  - id: s
    title: S
    scope: each-node
    do:
      - lb.drain: {}
      - service.restart: {timeout: "{{ params.restart_timeout }}"}
      - http.check: {url: "{{ node.keystone_url }}/v3", from: node, expect_status: "{{ params.status }}", timeout: "{{ params.restart_timeout }}"}
"#;
        let rb = crate::runbook::Runbook::parse(src, "t.yaml").unwrap();
        let inv = crate::engine::action::kit::test_support::inventory();
        let specs = |params: &[(&str, &str)]| -> Result<Vec<ActionSpec>, PlanError> {
            let params = rb
                .resolve_params(
                    &params
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
                .unwrap();
            Ok(crate::engine::plan::compile(&rb, &inv, &params)?
                .into_iter()
                .filter_map(|op| match op.kind {
                    crate::engine::plan::OpKind::Act { specs, .. } => Some(specs),
                    _ => None,
                })
                .flatten()
                .filter(|s| s.node() == Some("ks3"))
                .collect())
        };
        let got = specs(&[]).unwrap();
        assert!(
            got.contains(&ActionSpec::Service(Service::Restart {
                node: "ks3".into(),
                timeout_secs: 90
            })),
            "{got:?}"
        );
        assert!(
            got.contains(&ActionSpec::Service(Service::HttpCheck {
                node: Some("ks3".into()),
                url: "http://10.0.0.13:5000/v3".into(),
                from: HttpFrom::Node,
                expect_status: 200,
                body_contains: None,
                timeout_secs: 90,
            })),
            "{got:?}"
        );
        let got = specs(&[("restart_timeout", "2m"), ("status", "204")]).unwrap();
        assert!(got.iter().any(|s| matches!(
            s,
            ActionSpec::Service(Service::HttpCheck {
                expect_status: 204,
                timeout_secs: 120,
                ..
            })
        )));
        assert!(got.iter().any(|s| matches!(
            s,
            ActionSpec::Service(Service::Restart {
                timeout_secs: 120,
                ..
            })
        )));
        let e = specs(&[("restart_timeout", "soon")]).unwrap_err();
        assert!(
            e.0.starts_with("step `s`: service.restart timeout: `{{ params.restart_timeout }}` filled to `soon` is not a duration"),
            "{e}"
        );
        let e = specs(&[("status", "OK")]).unwrap_err();
        assert!(
            e.0.contains("http.check expect_status: `{{ params.status }}` filled to `OK` is not an HTTP status"),
            "{e}"
        );
    }
}
