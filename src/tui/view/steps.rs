//! The steps pane, "Now" (what runs, what comes next) and the wide screens' "Next" pane.

use super::{View, span};
use crate::engine::plan::Op;
use crate::engine::state::{NodePhase, RunStatus, StepStatus};
use crate::runbook::Scope;
use crate::tui::labels::{op_label, short_action};
use crate::tui::text::{dur, hms, width, wrap};
use ratatui::text::{Line, Span};

impl View<'_> {
    /// One line per step (plus a continuation line when a rolling step's progress does not fit);
    /// the second value is the line of the selected step.
    pub(super) fn steps_lines(&self, w: usize) -> (Vec<Line<'static>>, Option<usize>) {
        let st = self.state;
        let t = &self.t;
        let sel = self.app.selected_step(st);
        let mut out = Vec::new();
        let mut sel_line = None;
        for (i, s) in st.steps.iter().enumerate() {
            let (sym, style) = match s.status {
                StepStatus::Pending => (t.g.pending, t.dim()),
                StepStatus::Active if st.status == RunStatus::AwaitingConfirm => {
                    (t.g.stop, t.stop())
                }
                StepStatus::Active => (t.g.running, t.active()),
                StepStatus::Done => (t.g.done, t.ok()),
                StepStatus::Failed => (t.g.failed, t.fail()),
            };
            let title_style = match s.status {
                StepStatus::Pending => t.plain(),
                StepStatus::Done => t.plain(),
                _ => t.bold(),
            };
            if i == sel {
                sel_line = Some(out.len());
            }
            let mut line: Vec<Span<'static>> = vec![
                span(format!(" {sym} "), style),
                span(s.title.clone(), title_style),
            ];
            let mut extra: Vec<Span<'static>> = Vec::new();
            if let Some(nodes) = s.scope.group().and_then(|g| st.group_nodes(g)) {
                // A half step names its half and its nodes, from the start.
                let half = if s.scope == Scope::HalfA { "A" } else { "B" };
                extra.push(span(format!("half {half}: {}", nodes.join(" ")), t.dim()));
                if matches!(s.status, StepStatus::Active | StepStatus::Failed)
                    && s.ops.contains(&st.cursor)
                {
                    extra.push(span(
                        format!(" op {}/{}", st.cursor - s.ops.start + 1, s.ops.len()),
                        t.dim(),
                    ));
                }
            } else if s.scope == Scope::EachNode && s.status != StepStatus::Pending {
                extra = self.node_progress(s);
            } else if matches!(s.status, StepStatus::Active | StepStatus::Failed)
                && s.ops.contains(&st.cursor)
            {
                extra.push(span(
                    format!("op {}/{}", st.cursor - s.ops.start + 1, s.ops.len()),
                    t.dim(),
                ));
            }
            if !extra.is_empty() {
                let lw: usize = line.iter().map(|s| width(&s.content)).sum();
                let ew: usize = extra.iter().map(|s| width(&s.content)).sum();
                if lw + 2 + ew <= w {
                    line.push(Span::raw("  "));
                    line.extend(extra);
                    out.push(Line::from(line));
                } else {
                    out.push(Line::from(line));
                    let mut cont = vec![Span::raw("   ")];
                    cont.extend(extra);
                    out.push(Line::from(cont));
                }
            } else {
                out.push(Line::from(line));
            }
        }
        if st.steps.is_empty() {
            out.push(Line::from(span(" (no plan)", t.dim())));
        }
        (out, sel_line)
    }

    /// `ks1 ✓ ks2 ◐ flipped ks3 ·` for a rolling step.
    pub(super) fn node_progress(&self, s: &crate::engine::state::StepView) -> Vec<Span<'static>> {
        let st = self.state;
        let t = &self.t;
        let mut out = Vec::new();
        for name in &st.node_order {
            let ops: Vec<usize> = st.plan[s.ops.clone()]
                .iter()
                .filter(|o| o.node.as_deref() == Some(name.as_str()))
                .map(|o| o.index)
                .collect();
            let (Some(first), Some(last)) = (ops.first().copied(), ops.last().copied()) else {
                continue;
            };
            if !out.is_empty() {
                out.push(Span::raw(" "));
            }
            out.push(span(name.clone(), t.plain()));
            let node = st.nodes.get(name);
            if st.cursor > last {
                out.push(span(format!(" {}", t.g.done), t.ok()));
            } else if st.cursor >= first {
                let phase = node.map(|n| n.phase).unwrap_or_default();
                let (sym, style) = match (&st.status, phase) {
                    (_, NodePhase::Failed) | (RunStatus::Halted { .. }, _) => {
                        (t.g.failed, t.fail())
                    }
                    (RunStatus::AwaitingConfirm, _) => (t.g.stop, t.stop()),
                    _ => (t.g.running, t.active()),
                };
                out.push(span(format!(" {sym} "), style));
                out.push(span(phase.label(), style));
            } else {
                out.push(span(format!(" {}", t.g.pending), t.dim()));
            }
        }
        out
    }

    /// What is running right now, and (with `with_next`) what comes next.
    pub(super) fn now_lines(&self, w: usize, with_next: bool) -> Vec<Line<'static>> {
        let st = self.state;
        let t = &self.t;
        let mut out = Vec::new();
        if w == 0 {
            return out;
        }
        for (id, f) in &st.in_flight {
            let who = f.intent.node.clone().unwrap_or_else(|| "fleet".into());
            if st.in_doubt.contains(id) {
                // Not running: the run stopped between its intent and its outcome.
                out.push(Line::from(vec![
                    span(" ? ", t.warn()),
                    span(who, t.bold()),
                    Span::raw(" "),
                    span(short_action(&f.intent.action), t.plain()),
                    span(" in doubt: the run stopped mid-action", t.warn()),
                ]));
                continue;
            }
            let secs = (self.now - f.started).num_seconds();
            out.push(Line::from(vec![
                span(format!(" {} ", t.g.running), t.active()),
                span(who, t.bold()),
                Span::raw(" "),
                span(short_action(&f.intent.action), t.plain()),
                span(format!(" {}", dur(secs)), t.dim()),
            ]));
        }
        if let Some(first) = st.running_intents().next() {
            for l in wrap(&first.intent.detail, w.saturating_sub(3))
                .into_iter()
                .take(2)
            {
                out.push(Line::from(span(format!("   {l}"), t.dim())));
            }
        }
        if st.running() == 0 {
            let at = st.current_op().map(op_label).unwrap_or_default();
            let (text, style) = match &st.status {
                RunStatus::NotStarted => ("not started".to_string(), t.dim()),
                RunStatus::Running => (format!("starting {at}"), t.plain()),
                RunStatus::AwaitingConfirm => (
                    format!(
                        "{} waiting for a person: {}",
                        t.g.stop,
                        st.hard_stop.as_ref().map(|h| h.id.as_str()).unwrap_or("?")
                    ),
                    t.stop(),
                ),
                RunStatus::Paused { .. } => {
                    (format!("{} paused before {at}", t.g.paused), t.warn())
                }
                RunStatus::Halted { .. } => (format!("{} halted at {at}", t.g.failed), t.fail()),
                RunStatus::Completed => {
                    let took = match (st.started_at, st.finished_at) {
                        (Some(a), Some(b)) => format!(" after {}", dur((b - a).num_seconds())),
                        _ => String::new(),
                    };
                    let at = st.finished_at.map(hms).unwrap_or_default();
                    (format!("{} completed at {at}{took}", t.g.done), t.ok())
                }
            };
            out.push(Line::from(span(format!(" {text}"), style)));
            if st.status == RunStatus::Completed && !st.confirmations.is_empty() {
                out.push(Line::from(span(" hard stops confirmed:", t.dim())));
                for (id, who) in &st.confirmations {
                    out.push(Line::from(span(format!("   {id} by {who}"), t.dim())));
                }
            }
        }
        // The op at the cursor is running (or about to); list what follows it.
        let next: Vec<&Op> = st.plan.iter().skip(st.cursor + 1).take(6).collect();
        if with_next && !next.is_empty() && st.status != RunStatus::Completed {
            out.push(Line::from(span(" next:", t.dim())));
            for op in next {
                out.push(Line::from(span(format!("   {}", op_label(op)), t.dim())));
            }
        }
        out
    }

    /// The operations after the one at the cursor, for the "Next" pane of wide screens.
    pub(super) fn next_lines(&self, rows: usize) -> Vec<Line<'static>> {
        let st = self.state;
        let t = &self.t;
        let left = st.plan.len().saturating_sub(st.cursor + 1);
        let mut out: Vec<Line<'static>> = st
            .plan
            .iter()
            .skip(st.cursor + 1)
            .take(rows)
            .map(|op| Line::from(span(format!(" {}", op_label(op)), t.dim())))
            .collect();
        if left > rows && rows > 0 {
            out.pop();
            out.push(Line::from(span(
                format!(" … {} more", left - (rows - 1)),
                t.dim(),
            )));
        }
        if out.is_empty() {
            out.push(Line::from(span(" (nothing: last operation)", t.dim())));
        }
        out
    }

    /// The steps pane's natural width: the longest title, with a rolling step's node progress
    /// at its widest (one node showing its longest phase), so it does not change as the run moves.
    pub(super) fn steps_natural_width(&self) -> usize {
        let st = self.state;
        let progress: usize = st.node_order.iter().map(|n| width(n) + 3).sum::<usize>() + 11;
        st.steps
            .iter()
            .map(|s| {
                let title = 3 + width(&s.title);
                let extra = if let Some(nodes) = s.scope.group().and_then(|g| st.group_nodes(g)) {
                    2 + 8 + nodes.iter().map(|n| width(n) + 1).sum::<usize>() + 9
                } else if s.scope == Scope::EachNode {
                    2 + progress
                } else {
                    2 + 9 // "op 12/34"
                };
                title + extra + 1
            })
            .max()
            .unwrap_or(20)
    }

    /// "Now", and in a replay the moment it is as of (its running times are computed from it).
    pub(super) fn now_title(&self) -> String {
        format!("Now{}", self.as_of())
    }
}
