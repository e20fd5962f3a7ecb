//! Plain-text and Markdown views of a plan and of a probe, for `cutover plan` and `cutover probe`.

use super::action::ActionSpec;
use super::facts::{Observation, ReloadVerdict};
use super::plan::{Op, OpKind};
use crate::inventory::Inventory;
use crate::runbook::{Runbook, one_line};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Every step with the exact actions per node. Nothing secret: commands and paths only. In
/// ASCII when the locale does not say UTF-8, or with `--ascii` ([`crate::glyphs`]).
pub fn render_plan(
    rb: &Runbook,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
    ops: &[Op],
    markdown: bool,
) -> String {
    let text = plan_text(rb, inv, params, ops, markdown);
    crate::glyphs::for_output(&text, crate::glyphs::ascii()).into_owned()
}

fn plan_text(
    rb: &Runbook,
    inv: &Inventory,
    params: &BTreeMap<String, String>,
    ops: &[Op],
    markdown: bool,
) -> String {
    let mut o = String::new();
    // A title written over two lines in the YAML is one line here (a heading, a header line).
    let rb_title = one_line(&rb.title);
    let p = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if markdown {
        let _ = writeln!(
            o,
            "# Plan: {}\n\n- runbook: `{}`\n- cluster: `{}` ({} nodes, {} load balancers)\n- parameters: {}\n",
            rb_title,
            rb.name,
            inv.cluster,
            inv.nodes.len(),
            inv.load_balancers.len(),
            if p.is_empty() {
                "none".into()
            } else {
                p.clone()
            }
        );
    } else {
        let _ = writeln!(
            o,
            "PLAN  {}  ({})\ncluster {} — {} nodes, {} load balancers; params: {}\n",
            rb_title,
            rb.name,
            inv.cluster,
            inv.nodes.len(),
            inv.load_balancers.len(),
            if p.is_empty() { "none".into() } else { p }
        );
    }
    let mut n = 0;
    for step in rb.steps.iter().filter(|s| rb.included(s, params)) {
        n += 1;
        let title = one_line(
            &crate::runbook::template::render(
                &step.title,
                &rb.name,
                &rb.target_provider,
                params,
                None,
            )
            .unwrap_or_else(|_| step.title.clone()),
        );
        if markdown {
            let _ = writeln!(
                o,
                "## {n}. {title} (`{}`, {})\n\n{}\n",
                step.id,
                scope_name(step.scope),
                step.description.trim()
            );
        } else {
            let _ = writeln!(o, "{n}. {title}  [{}; {}]", step.id, scope_name(step.scope));
        }
        if let Some(line) = half_line(step.scope, inv, params) {
            let _ = writeln!(o, "{}{line}", if markdown { "" } else { "   " });
        }
        for op in ops.iter().filter(|op| op.step == step.id) {
            let node = match (&op.node, &op.group, &op.kind) {
                (Some(n), ..) => format!("{n}: "),
                // A gate about a whole half (each of its nodes, or the half as a whole).
                (None, Some(g), OpKind::Gate { .. }) => match g.as_str() {
                    "half-a" => "half A: ".to_string(),
                    "half-b" => "half B: ".to_string(),
                    other => format!("{other}: "),
                },
                _ => String::new(),
            };
            let lines: Vec<String> = match &op.kind {
                OpKind::Act { specs, .. } => specs
                    .iter()
                    .map(|s| format!("{node}{}", describe_exact(s, inv)))
                    .collect(),
                OpKind::Gate { gate, implicit } => vec![format!(
                    "{node}GATE {}{}",
                    gate.name(),
                    if *implicit { " (added by cutover)" } else { "" }
                )],
                OpKind::Confirm { id, title, .. } => {
                    vec![format!("{node}HARD STOP `{id}`: {}", one_line(title))]
                }
                OpKind::Note { message } => vec![format!("note: {}", one_line(message))],
                OpKind::WaitUntil { condition, .. } => vec![format!("wait until {condition:?}")],
            };
            for l in lines {
                if markdown {
                    let _ = writeln!(o, "- {l}");
                } else {
                    let _ = writeln!(o, "   {:>3}  {l}", op.index);
                }
            }
        }
        o.push('\n');
    }
    o
}

/// The description plus, where there is one, the exact command or request.
fn describe_exact(s: &ActionSpec, inv: &Inventory) -> String {
    let d = s.describe();
    match s.exact(inv) {
        Some(x) => format!("{d}\n          {x}"),
        None => d,
    }
}

/// `cutover probe` as a table, in the character set of this process's locale (and `--ascii`):
/// see [`probe_table_in`].
pub fn probe_table(inv: &Inventory, obs: &Observation) -> String {
    probe_table_in(inv, obs, crate::glyphs::ascii())
}

/// `cutover probe` as a table; with `ascii`, every character that is not ASCII (from a node, a
/// load balancer's answer, a reload clause's `·`) through [`crate::glyphs::to_ascii`], one for
/// one, so the columns stay where they are.
pub fn probe_table_in(inv: &Inventory, obs: &Observation, ascii: bool) -> String {
    let table = probe_text(inv, obs);
    crate::glyphs::for_output(&table, ascii).into_owned()
}

fn probe_text(inv: &Inventory, obs: &Observation) -> String {
    let mut o = String::new();
    let lbs: Vec<&str> = inv.load_balancers.iter().map(|l| l.name.as_str()).collect();
    let _ = write!(
        o,
        "{:<10} {:<8} {:<7} {:<10} {:<14}",
        "NODE", "PROVIDER", "SERVICE", "FERNET", "JWS priv/pub"
    );
    for lb in &lbs {
        let _ = write!(o, " {:<16}", lb);
    }
    let _ = writeln!(o, " TOKEN");
    for n in inv.node_names() {
        let f = obs.nodes.get(&n);
        let provider = f
            .and_then(|f| f.provider.clone())
            .unwrap_or_else(|| "?".into());
        let service = f.map(|f| f.service_cell()).unwrap_or_else(|| "?".into());
        let fernet = f
            .map(|f| {
                if f.fernet.present {
                    format!("{} keys", f.fernet.keys)
                } else {
                    "none".into()
                }
            })
            .unwrap_or_default();
        let jws = f
            .map(|f| {
                format!(
                    "{}/{}",
                    if f.jws.private_present { "yes" } else { "no" },
                    f.jws.public.len()
                )
            })
            .unwrap_or_default();
        match f.and_then(|f| f.unreachable.as_ref()) {
            Some(_) => {
                let _ = write!(
                    o,
                    "{n:<10} {provider:<8} {service:<7} {:<25}",
                    "UNREACHABLE"
                );
            }
            None => {
                let _ = write!(
                    o,
                    "{n:<10} {provider:<8} {service:<7} {fernet:<10} {jws:<14}"
                );
            }
        }
        for lb in &lbs {
            let cell = obs
                .lb
                .as_ref()
                .and_then(|rows| rows.iter().find(|r| r.node == n && r.lb == *lb))
                .map(|r| format!("{} {}", r.status, r.sessions))
                .unwrap_or_else(|| "?".into());
            let _ = write!(o, " {cell:<16}");
        }
        let tok = obs.tokens.get(&n).map(|t| t.short()).unwrap_or_default();
        let _ = writeln!(o, " {tok}");
        for e in f.map(|f| f.problem_lines()).unwrap_or_default() {
            let _ = writeln!(o, "           ! {e}");
        }
    }
    for e in &obs.lb_errors {
        let _ = writeln!(o, "! {e}");
    }
    // What a reload of each instance would do to a drained server (from its config).
    for (lb, f) in &obs.lb_reload {
        let from = f
            .config
            .as_deref()
            .map(|c| format!(" · {c}"))
            .unwrap_or_default();
        let mark = if f.verdict() == ReloadVerdict::KeepsIfSaved && f.check_clause().is_none() {
            ' '
        } else {
            '!'
        };
        let _ = writeln!(o, "{mark} {lb}: {}{from}", f.clauses());
    }
    o
}

fn scope_name(s: crate::runbook::Scope) -> &'static str {
    match s {
        crate::runbook::Scope::Once => "once",
        crate::runbook::Scope::EachNode => "each-node",
        crate::runbook::Scope::AllNodes => "all-nodes",
        crate::runbook::Scope::HalfA => "half-a",
        crate::runbook::Scope::HalfB => "half-b",
    }
}

/// The change report's client-impact section (Markdown) from the fold of a run's journal:
/// failures per phase, the longest failing stretch, the mixed windows and their failures,
/// when old tokens died; what the meter was off for when it was. None when the journal has no
/// `client_impact` (a run before the meter, or one that never started driving).
pub fn client_impact_markdown(st: &super::State) -> Option<String> {
    let im = &st.impact;
    if !im.measured && im.off.is_none() {
        return None;
    }
    let hms = |t: &chrono::DateTime<chrono::Utc>| t.format("%H:%M:%S").to_string();
    let mut o = String::from("\n## Client impact\n\n");
    let Some(last) = im.last.as_ref() else {
        let why = im.off.as_deref().unwrap_or("off");
        let _ = writeln!(o, "Not measured: the client-impact meter was {why}.");
        return Some(o);
    };
    let t = im.total();
    let frontends: Vec<&str> = last.frontends.keys().map(String::as_str).collect();
    let _ = writeln!(
        o,
        "Synthetic clients through {} ({}/s each, from {}): {} requests; {} tokens issued, {} validated; **{} failed** (issues and fresh tokens: {} refused, {} errors, {} timeouts); {} fresh tokens refused after a phase change (crossed); {} validations of old tokens refused.\n",
        if frontends.is_empty() {
            "the frontends".to_string()
        } else {
            frontends.join(", ")
        },
        last.rate,
        hms(&last.meter_started),
        t.requests(),
        t.issue.issued,
        t.validate_new.validated + t.validate_old.validated,
        t.fresh_failures(),
        t.issue.refused + t.validate_new.refused,
        t.issue.error + t.validate_new.error,
        t.issue.timeout + t.validate_new.timeout,
        t.crossed(),
        t.validate_old.failures(),
    );
    let _ = writeln!(
        o,
        "| Phase | Requests | Failed | Crossed | Old tokens refused |\n|---|---|---|---|---|"
    );
    for (p, c) in im.phases() {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            p.replace('|', "\\|"),
            c.requests(),
            c.fresh_failures(),
            c.crossed(),
            c.validate_old.failures()
        );
    }
    let _ = match &im.longest {
        Some(l) => writeln!(
            o,
            "\nLongest failing stretch: {} s from {} ({} failures).",
            l.secs,
            hms(&l.start),
            l.failures
        ),
        None => writeln!(o, "\nNo second with a failure of a fresh token."),
    };
    if im.mixed_windows.is_empty() {
        let _ = writeln!(o, "\nThe pool was never mixed.");
    } else {
        let _ = writeln!(
            o,
            "\n| Mixed window | Until | Seconds | Requests | Failed | Old tokens refused |\n|---|---|---|---|---|---|"
        );
        let now = st.last_event_at.unwrap_or_default();
        for w in &im.mixed_windows {
            let _ = writeln!(
                o,
                "| {} | {} | {:.1} | {} | {} | {} |",
                hms(&w.start),
                w.end.as_ref().map(hms).unwrap_or_else(|| "(open)".into()),
                w.secs(now),
                w.requests,
                w.failures,
                w.old_failures
            );
        }
    }
    if im.old_died.is_empty() {
        let _ = writeln!(
            o,
            "\nOld tokens (issued as the meter started) never refused."
        );
    } else {
        let died: Vec<String> = im
            .old_died
            .iter()
            .map(|(f, at)| format!("{f} at {}", hms(at)))
            .collect();
        let _ = writeln!(o, "\nOld tokens died (first refused): {}.", died.join(", "));
    }
    Some(o)
}

/// A half step's group and nodes, for the plan (`half A: node1, node2 (half B serves)`).
fn half_line(
    scope: crate::runbook::Scope,
    inv: &Inventory,
    params: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    let group = scope.group()?;
    let (mine, others) = super::halves::group(group, inv, params)?;
    let (me, other) = if group == super::halves::HALF_A {
        ("A", "B")
    } else {
        ("B", "A")
    };
    Some(format!(
        "half {me}: {} (half {other}: {} carries the pool meanwhile)",
        mine.join(", "),
        others.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A title written over two lines in the YAML (a block scalar) is one line in the plan:
    /// the header, a step heading, a hard stop's line.
    #[test]
    fn titles_with_newlines_are_one_line_in_the_plan() {
        let rb = Runbook::parse(
            "name: t\ntitle: |\n  Two\n  lines\ntarget_provider: jws\nsteps:\n  - id: one\n    title: \"Step\\nover two\"\n    scope: once\n    do:\n      - confirm:\n          id: go\n          title: |\n            Go\n            now\n          message: m\n      - note: \"a\\nb\"\n",
            "t.yaml",
        )
        .unwrap();
        assert!(rb.title.contains('\n'));
        let inv = Inventory::parse(
            "cluster: c\nnodes:\n  - {name: node1, reach: local, keystone_url: \"http://127.0.0.1:5001\"}\n",
            "i",
        )
        .unwrap();
        let params = BTreeMap::new();
        let ops = super::super::plan::compile(&rb, &inv, &params).unwrap();
        for markdown in [false, true] {
            let text = plan_text(&rb, &inv, &params, &ops, markdown);
            let first = text.lines().next().unwrap();
            assert!(
                first.ends_with("Two lines  (t)") || first == "# Plan: Two lines",
                "{text}"
            );
            assert!(text.contains("Step over two"), "{text}");
            assert!(text.contains("HARD STOP `go`: Go now"), "{text}");
            assert!(text.contains("note: a b"), "{text}");
            assert!(
                !text.contains("Two\n") && !text.contains("Step\n"),
                "{text}"
            );
        }
    }
}
