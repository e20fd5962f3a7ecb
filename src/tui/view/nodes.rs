//! The node table: one row per node, its columns chosen for the width.

use super::{View, span};
use crate::engine::State;
use crate::engine::facts::AdminState;
use crate::engine::state::{NodePhase, NodeView};
use crate::tui::labels::{activity_verb, lb_header, reload_mark};
use crate::tui::text::{pad, pad_left, width};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Col {
    Name,
    Phase,
    Lb(usize),
    Provider,
    Fernet,
    Jws,
    Service,
    Token,
    Error,
}

struct Column {
    kind: Col,
    header: String,
    /// A load balancer's reload marker (`⚠reload`), shown after the header (or, when the
    /// column is narrow, its first character before it), in the warning style.
    mark: Option<(String, bool)>,
    w: usize,
    wide: bool,
    right: bool,
}

/// The node table's columns for a width: the richest preset that fits. Presets drop the least
/// important columns first (Fernet key count, the token check, JWS, service); the last error
/// stays while anything else but the essentials does. Load-balancer columns show the instance's
/// whole name when it fits, and are cut from the left (`…proxy-a`) only when nothing else fits;
/// a reload marker (`haproxy-a ⚠reload`) widens its column only where that drops no column,
/// else it shrinks to `⚠` before the name.
fn node_columns(st: &State, w: usize) -> Vec<Column> {
    let name_w = st
        .node_order
        .iter()
        .map(|s| width(s))
        .max()
        .unwrap_or(4)
        .clamp(4, 16)
        // A halves run marks each node's half after its name (`node1 A`).
        + if st.halves().is_some() { 2 } else { 0 };
    let col = |kind, header: &str, w: usize, wide: bool| Column {
        kind,
        header: header.to_string(),
        mark: None,
        w,
        wide,
        right: false,
    };
    // `marked`: each column as wide as its name and reload marker need (at least `cw`).
    let lb_cols = |cw: usize, marked: bool| -> Vec<Column> {
        st.lb_names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mark = reload_mark(st, n);
                let w = match mark {
                    Some(m) if marked => (width(n) + 1 + width(m)).clamp(cw, 24),
                    _ => cw,
                };
                let (header, mark) = lb_header(n, mark, w);
                Column {
                    mark,
                    ..col(Col::Lb(i), &header, w, false)
                }
            })
            .collect()
    };
    // "MAINT 12" needs 8; a name needs its own width; a reload marker after it, when it fits
    // without dropping a column.
    let lb_full = st
        .lb_names
        .iter()
        .map(|n| width(n))
        .max()
        .unwrap_or(8)
        .clamp(8, 16);
    let preset = |level: usize, (lb_w, marked): (usize, bool)| -> Vec<Column> {
        let wide = level == 0;
        let mut p = vec![
            col(Col::Name, "Node", name_w, wide),
            // A reload marker may take 5 cells from a wide Phase (still room for
            // `BREACH on haproxy-1`) rather than cut the instance's name.
            col(
                Col::Phase,
                "Phase",
                match (
                    wide,
                    marked && st.lb_names.iter().any(|n| reload_mark(st, n).is_some()),
                ) {
                    (true, true) => 19,
                    (true, false) => 24,
                    _ => 12,
                },
                wide,
            ),
        ];
        p.extend(lb_cols(lb_w, marked));
        p.push(col(Col::Provider, "Provider", 10, wide));
        if level <= 2 {
            p.push(if wide {
                col(Col::Fernet, "Fernet", 7, true)
            } else {
                col(Col::Fernet, "Fern", 4, false)
            });
        }
        if level <= 4 {
            p.push(if wide {
                col(Col::Jws, "JWS keys", 14, true)
            } else {
                col(Col::Jws, "JWS", 5, false)
            });
            p.push(col(Col::Service, "Svc", 4, wide));
        }
        if level <= 3 {
            p.push(if wide {
                col(Col::Token, "Last direct token", 22, true)
            } else {
                col(Col::Token, "Token", 16, false)
            });
        }
        if level <= 1 {
            p.push(col(Col::Error, "Last error", 12, true));
        }
        p
    };
    let fits =
        |p: &Vec<Column>| p.iter().map(|c| c.w).sum::<usize>() + p.len().saturating_sub(1) <= w;
    let mut chosen = None;
    'found: for level in 0..=5 {
        for lb_w in [(lb_full, true), (lb_full, false), (8, false)] {
            let p = preset(level, lb_w);
            if fits(&p) {
                chosen = Some(p);
                break 'found;
            }
        }
    }
    let mut chosen = chosen.unwrap_or_else(|| {
        vec![
            col(Col::Name, "Node", name_w, false),
            col(Col::Phase, "Phase", 12, false),
        ]
    });
    // Spare width first to a load balancer whose name (and reload marker) was cut, then to
    // the last column (the last error, or the token).
    let used = chosen.iter().map(|c| c.w).sum::<usize>() + chosen.len().saturating_sub(1);
    let mut spare = w.saturating_sub(used);
    for c in chosen.iter_mut() {
        let Col::Lb(i) = c.kind else { continue };
        let Some(name) = st.lb_names.get(i) else {
            continue;
        };
        let mark = reload_mark(st, name);
        // The name and its marker; else the name after the marker's first character.
        let natural = width(name) + mark.map(|m| 1 + width(m)).unwrap_or(0);
        let short = width(name) + usize::from(mark.is_some());
        if let Some(cw) = [natural, short]
            .into_iter()
            .find(|cw| *cw > c.w && cw - c.w <= spare)
        {
            spare -= cw - c.w;
            c.w = cw;
            (c.header, c.mark) = lb_header(name, mark, cw);
        }
    }
    let used = chosen.iter().map(|c| c.w).sum::<usize>() + chosen.len().saturating_sub(1);
    if let Some(last) = chosen.last_mut()
        && matches!(last.kind, Col::Error | Col::Token)
    {
        last.w += w.saturating_sub(used);
    }
    chosen
}

impl View<'_> {
    /// The table's header line, then the rows of the nodes in `rows` (of `node_order`): only
    /// the rows that will be seen are built.
    pub(super) fn node_lines(&self, w: usize, rows: std::ops::Range<usize>) -> Vec<Line<'static>> {
        let st = self.state;
        let prints = st.private_prints();
        let t = &self.t;
        let cols = node_columns(st, w.saturating_sub(1));
        let mut out = Vec::new();
        let mut head = vec![Span::raw(" ")];
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                head.push(Span::raw(" "));
            }
            let style = t.bold().add_modifier(ratatui::style::Modifier::UNDERLINED);
            let warn = t.warn().add_modifier(ratatui::style::Modifier::UNDERLINED);
            match &c.mark {
                None => head.push(span(pad(&c.header, c.w), style)),
                Some((m, true)) => {
                    head.push(span(m.clone(), warn));
                    head.push(span(pad(&c.header, c.w.saturating_sub(width(m))), style));
                }
                Some((m, false)) => {
                    head.push(span(c.header.clone(), style));
                    head.push(span(pad(m, c.w.saturating_sub(width(&c.header))), warn));
                }
            }
        }
        out.push(Line::from(head));
        // Too narrow for the Provider column (where an unreachable node says so): the phase
        // says it instead, unless something is running on the node.
        let unreach_in_phase = !cols.iter().any(|c| c.kind == Col::Provider);
        for name in st
            .node_order
            .iter()
            .skip(rows.start)
            .take(rows.end.saturating_sub(rows.start))
        {
            let default = NodeView {
                name: name.clone(),
                ..Default::default()
            };
            let n = st.nodes.get(name).unwrap_or(&default);
            let unreachable = n.facts.as_ref().is_some_and(|f| f.unreachable.is_some());
            let mut row = vec![Span::raw(" ")];
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    row.push(Span::raw(" "));
                }
                let (text, style) = match c.kind {
                    Col::Phase if unreach_in_phase && unreachable && n.activity.is_none() => {
                        (format!("{} unreach", t.g.unreachable), t.fail())
                    }
                    _ => self.node_cell(n, c, &prints),
                };
                row.push(span(
                    if c.right {
                        pad_left(&text, c.w)
                    } else {
                        pad(&text, c.w)
                    },
                    style,
                ));
            }
            out.push(Line::from(row));
        }
        out
    }

    fn node_cell(&self, n: &NodeView, c: &Column, prints: &[&str]) -> (String, Style) {
        let t = &self.t;
        let st = self.state;
        let facts = n.facts.as_ref().filter(|f| f.error.is_none());
        match c.kind {
            Col::Name => match st.half_of(&n.name) {
                Some(half) => (
                    format!("{} {half}", pad(&n.name, c.w.saturating_sub(2))),
                    t.bold(),
                ),
                None => (n.name.clone(), t.bold()),
            },
            Col::Phase => {
                let phase_style = match n.phase {
                    NodePhase::Waiting => t.dim(),
                    NodePhase::Draining | NodePhase::OutOfPool => t.warn(),
                    NodePhase::Flipped | NodePhase::Restarted => t.active(),
                    NodePhase::Validated | NodePhase::Rejoined => t.ok(),
                    NodePhase::Failed => t.fail(),
                };
                // A pool breach shows until a person confirmed it, and is counted after.
                if st.open_breaches.iter().any(|b| b.node == n.name) {
                    let lbs: Vec<&str> = st
                        .open_breaches
                        .iter()
                        .filter(|b| b.node == n.name)
                        .map(|b| b.lb.as_str())
                        .collect();
                    return if c.wide {
                        (format!("BREACH on {}", lbs.join(",")), t.fail())
                    } else {
                        ("BREACH".into(), t.fail())
                    };
                }
                let label = if n.breaches > 0 && c.wide {
                    format!(
                        "{} ({} breach{})",
                        n.phase.label(),
                        n.breaches,
                        if n.breaches == 1 { "" } else { "es" }
                    )
                } else {
                    n.phase.label().to_string()
                };
                match (&n.activity, c.wide) {
                    (Some(a), true) => (
                        format!("{label} · {} {}", t.g.running, activity_verb(a)),
                        t.active(),
                    ),
                    (Some(a), false) => {
                        (format!("{} {}", t.g.running, activity_verb(a)), t.active())
                    }
                    (None, _) => (label, phase_style),
                }
            }
            Col::Lb(i) => {
                let Some(lb) = st.lb_names.get(i) else {
                    return ("—".into(), t.dim());
                };
                match n.lb.get(lb) {
                    None => ("—".into(), t.dim()),
                    Some(s) => {
                        let status = match s.admin {
                            AdminState::Maint => "MAINT".to_string(),
                            AdminState::Drain => "DRAIN".to_string(),
                            AdminState::Ready => s
                                .status
                                .split_whitespace()
                                .next()
                                .unwrap_or("?")
                                .to_string(),
                        };
                        let style = if s.in_pool() {
                            t.ok()
                        } else if status.starts_with("DOWN") {
                            t.fail()
                        } else {
                            t.warn()
                        };
                        (format!("{status} {}", s.sessions), style)
                    }
                }
            }
            Col::Provider => {
                let conf = match &n.facts {
                    Some(f) if f.error.is_none() => f.configured_provider(),
                    // Nothing on the node could be read: say why here, where its configuration
                    // would be (the service column keeps what its Keystone answered over HTTP).
                    Some(f) if f.unreachable.is_some() => {
                        return (format!("{} unreach", t.g.unreachable), t.fail());
                    }
                    _ => return ("?".into(), t.dim()),
                };
                let run = n
                    .last_token
                    .as_ref()
                    .and_then(|tk| tk.format.provider())
                    .map(|p| p.as_str());
                let style = if st.is_target(&conf) {
                    t.ok()
                } else {
                    t.plain()
                };
                match run {
                    Some(r) if r != conf => (format!("{r}→{conf}"), t.warn()),
                    _ => (conf, style),
                }
            }
            Col::Fernet => match facts {
                None => ("?".into(), t.dim()),
                Some(f) if !f.fernet.present || f.fernet.keys == 0 => ("none".into(), t.fail()),
                Some(f) if c.wide => (format!("{} keys", f.fernet.keys), t.plain()),
                Some(f) => (f.fernet.keys.to_string(), t.plain()),
            },
            Col::Jws => match facts {
                None => ("?".into(), t.dim()),
                Some(f) => {
                    let (have, total) = st.public_coverage_of(n, prints);
                    let private = if f.jws.private_present {
                        t.g.done
                    } else {
                        t.g.failed
                    };
                    let complete = f.jws.private_present && have == total;
                    let nothing = !f.jws.private_present && have == 0;
                    let style = if complete {
                        t.ok()
                    } else if nothing {
                        t.dim()
                    } else {
                        t.warn()
                    };
                    if c.wide {
                        (format!("priv {private} pub {have}/{total}"), style)
                    } else {
                        (format!("{private} {have}/{total}"), style)
                    }
                }
            },
            Col::Service => match &n.facts {
                None => ("?".into(), t.dim()),
                // Unreachable over SSH says nothing about Keystone: what it answered over HTTP.
                Some(f) if f.unreachable.is_some() => {
                    let cell = f.service_cell();
                    let style = match cell.as_str() {
                        "up" => t.ok(),
                        "?" => t.dim(),
                        _ => t.fail(),
                    };
                    (cell, style)
                }
                Some(f) if f.error.is_some() => ("ERR".into(), t.fail()),
                Some(f) if f.service_up => ("up".into(), t.ok()),
                Some(_) => ("DOWN".into(), t.fail()),
            },
            Col::Token => match &n.last_token {
                None => ("—".into(), t.dim()),
                Some(tk) if tk.issue_status == 0 => (format!("{} no answer", t.g.failed), t.fail()),
                Some(tk) => {
                    let ok = tk.validated() || tk.issued_only();
                    let v = match tk.validate_status {
                        Some(200) => t.g.done.to_string(),
                        Some(s) => format!("{}{s}", t.g.failed),
                        None => String::new(),
                    };
                    let alg = match (&tk.alg, c.wide) {
                        (Some(a), true) => format!(" {a}"),
                        _ => String::new(),
                    };
                    let s = format!(
                        "{}{alg} {}{v} {}ms",
                        tk.format.as_str(),
                        tk.issue_status,
                        tk.latency_ms
                    );
                    (s, if ok { t.plain() } else { t.fail() })
                }
            },
            Col::Error => match (
                n.last_error.clone(),
                n.facts.as_ref().and_then(|f| f.error.clone()),
            ) {
                (Some(e), _) | (None, Some(e)) => (e, t.fail()),
                _ => (String::new(), t.plain()),
            },
        }
    }
}
