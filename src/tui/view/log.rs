//! The log pane: the lines around the selection (or the newest), each fitted to the width.

use super::{View, span};
use crate::engine::narrate::LogLevel;
use crate::tui::labels::short_action;
use crate::tui::text::{hms, millis, pad, trunc, width};
use ratatui::text::{Line, Span};

impl View<'_> {
    pub(super) fn log_title(&self, rows: usize) -> String {
        let n = self.state.log.len();
        match (self.app.log_sel, self.app.selected_log(self.state)) {
            (Some(_), Some(s)) if n > 0 => format!("Log {}/{} (Esc: follow)", s + 1, n),
            _ if n > rows => format!("Log ({n})"),
            _ => "Log".into(),
        }
    }

    /// Log lines (time, node, symbol, action, text, duration). Returns only the lines around the
    /// selection so a long log costs nothing, and the index of the selected one within them.
    pub(super) fn log_lines(&self, w: usize, rows: usize) -> (Vec<Line<'static>>, Option<usize>) {
        let st = self.state;
        let t = &self.t;
        let n = st.log.len();
        if n == 0 {
            return (vec![Line::from(span(" (empty)", t.dim()))], None);
        }
        let sel = self.app.selected_log(st).unwrap_or(n - 1);
        let rows = rows.max(1);
        // A window of `rows` lines ending at the selection (or at the end when following).
        let end = (sel + 1).max(rows.min(n)).min(n);
        let start = end.saturating_sub(rows);
        let node_w = st
            .node_order
            .iter()
            .map(|s| width(s))
            .max()
            .unwrap_or(3)
            .max(3);
        let action_w = if w >= 120 { 24 } else { 16 };
        let mut out = Vec::new();
        for l in st.log.range(start..end) {
            let (sym, style) = match l.level {
                LogLevel::Info => (t.g.pending, t.dim()),
                LogLevel::Start => (t.g.start, t.active()),
                LogLevel::Ok => (t.g.done, t.ok()),
                LogLevel::Warn => ("!", t.warn()),
                LogLevel::Fail => (t.g.failed, t.fail()),
                LogLevel::Stop => (t.g.stop, t.stop()),
            };
            let text_style = match l.level {
                LogLevel::Fail => t.fail(),
                LogLevel::Stop => t.stop(),
                LogLevel::Warn => t.warn(),
                _ => t.plain(),
            };
            let action = if w >= 120 {
                l.action.clone()
            } else {
                short_action(&l.action)
            };
            let node = l.node.clone().unwrap_or_default();
            let lead = format!(" {} {} ", hms(l.time), pad(&node, node_w));
            let mut spans = vec![
                span(lead, t.dim()),
                span(format!("{sym} "), style),
                span(pad(&action, action_w), t.plain()),
                Span::raw(" "),
            ];
            let used: usize = spans.iter().map(|s| width(&s.content)).sum();
            let dur_s = l
                .duration_ms
                .map(|d| format!(" {}", millis(d)))
                .unwrap_or_default();
            let room = w.saturating_sub(used + width(&dur_s));
            let text = trunc(&l.text, room);
            let gap = room.saturating_sub(width(&text));
            spans.push(span(text, text_style));
            if !dur_s.is_empty() {
                spans.push(Span::raw(" ".repeat(gap)));
                spans.push(span(dur_s, t.dim()));
            }
            out.push(Line::from(spans));
        }
        let sel_in = (self.app.log_sel.is_some()).then_some(sel - start);
        (out, sel_in)
    }
}
