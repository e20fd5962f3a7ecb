//! Popups over the screen: help, the quit question and the details of a selection.

use super::{View, centered, clip, margin, span};
use crate::engine::State;
use crate::engine::state::RunStatus;
use crate::tui::app::Overlay;
use crate::tui::details;
use crate::tui::keymap;
use crate::tui::text::{pad, width, wrap};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

/// The quit question for the state it is asked in, and what quitting then means.
pub(super) fn quit_question(st: &State) -> (String, String) {
    let keeps = "The journal keeps the run; `cutover resume` picks it up.";
    if let Some(hs) = &st.hard_stop {
        return (
            format!(
                "The run is waiting at the HARD STOP {}; nothing is running. Quit now? (y/n)",
                hs.id
            ),
            "Quitting here is safe: nothing is decided, the run stays paused at this hard stop, \
             and `cutover resume` asks it again."
                .into(),
        );
    }
    let mut running = st.running_intents();
    if let Some(f) = running.next() {
        let where_ = f.intent.node.clone().unwrap_or_else(|| "the fleet".into());
        let more = st.running() - 1;
        let more = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        return (
            format!(
                "An action is running on {where_}: {}{more}. Quit after it finishes? (y/n)",
                f.intent.action
            ),
            format!("It is never cut short: the run pauses when it finishes. {keeps}"),
        );
    }
    let (q, after) = match &st.status {
        RunStatus::Running => (
            "Nothing is running this moment. Quit now? (y/n)",
            format!("The run stops before its next action. {keeps}"),
        ),
        RunStatus::Paused { .. } => (
            "The run is paused; nothing is running. Quit now? (y/n)",
            keeps.to_string(),
        ),
        RunStatus::Halted { .. } => (
            "The run is halted; nothing is running. Quit now? (y/n)",
            keeps.to_string(),
        ),
        RunStatus::Completed => ("The run completed. Quit now? (y/n)", String::new()),
        RunStatus::NotStarted | RunStatus::AwaitingConfirm => {
            ("Nothing is running. Quit now? (y/n)", keeps.to_string())
        }
    };
    (q.to_string(), after)
}

/// Popups take the whole width (less a cleared margin) on narrow terminals, so no half-hidden
/// text shows beside them; on wide ones, at most `max`.
pub(super) fn popup_width(area: Rect, max: usize) -> usize {
    let w = area.width as usize;
    if w < 100 {
        w.saturating_sub(2)
    } else {
        max.min(w - 4)
    }
}

impl View<'_> {
    /// The HARD STOP box, then any popup over it (help and the quit question are asked on
    /// top of a hard stop, never hidden behind it).
    pub(super) fn draw_overlays(&self, frame: &mut Frame, area: Rect) {
        if self.state.hard_stop.is_some() {
            self.draw_hard_stop(frame, area);
        }
        match &self.app.overlay {
            Some(Overlay::Help) => self.draw_help(frame, area),
            Some(Overlay::Details { target, scroll }) => {
                let w = popup_width(area, 100);
                let (title, lines) =
                    details::build(self.state, &self.t, target, w.saturating_sub(4));
                self.draw_popup(
                    frame,
                    area,
                    &title,
                    lines,
                    *scroll,
                    w,
                    "Esc close · j/k scroll",
                );
            }
            Some(Overlay::QuitConfirm) => self.draw_quit(frame, area),
            None => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn draw_popup(
        &self,
        frame: &mut Frame,
        area: Rect,
        title: &str,
        lines: Vec<Line<'static>>,
        scroll: u16,
        w: usize,
        hint: &str,
    ) {
        let h = (lines.len() + 2)
            .min((area.height as usize).saturating_sub(2))
            .max(5);
        let r = centered(area, w, h);
        frame.render_widget(Clear, margin(r, area));
        let inner_h = h.saturating_sub(2);
        let max_scroll = lines.len().saturating_sub(inner_h) as u16;
        let scroll = scroll.min(max_scroll);
        let more = if max_scroll > scroll {
            " ↓ more "
        } else {
            ""
        };
        let block = Block::bordered()
            .border_set(self.t.popup_border_set())
            .border_style(self.t.bold())
            .title(Line::from(span(format!(" {title} "), self.t.bold())))
            .title_bottom(
                Line::from(span(format!(" {hint}{more} "), self.t.dim())).right_aligned(),
            );
        let inner = block.inner(r);
        frame.render_widget(block, r);
        let inner_w = inner.width as usize;
        let lines: Vec<Line<'static>> = lines
            .into_iter()
            .skip(scroll as usize)
            .map(|l| clip(l, inner_w.saturating_sub(1)))
            .map(|l| {
                let mut s = vec![Span::raw(" ")];
                s.extend(l.spans);
                Line::from(s)
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }

    pub(super) fn draw_help(&self, frame: &mut Frame, area: Rect) {
        let t = &self.t;
        let rows = keymap::help(self.app.replay.is_some(), self.app.interactive(), t.g);
        let kw = rows.iter().map(|(k, _)| width(k)).max().unwrap_or(8);
        let mut lines: Vec<Line<'static>> = rows
            .iter()
            .map(|(k, d)| {
                Line::from(vec![
                    span(pad(k, kw + 2), t.key()),
                    span(d.to_string(), t.plain()),
                ])
            })
            .collect();
        lines.push(Line::from(""));
        let g = t.g;
        lines.push(Line::from(span(
            format!(
                "Symbols: {} done  {} running  {} pending  {} failed  {} hard stop",
                g.done, g.running, g.pending, g.failed, g.stop
            ),
            t.dim(),
        )));
        // Only when a node could not be reached.
        if self
            .state
            .nodes
            .values()
            .any(|n| n.facts.as_ref().is_some_and(|f| f.unreachable.is_some()))
        {
            lines.push(Line::from(span(
                format!(
                    "{} unreach: cannot be reached over SSH (Enter on it: why, what to do)",
                    g.unreachable
                ),
                t.dim(),
            )));
        }
        // Only when a probe has read the load balancers' configs.
        if !self.state.lb_reload.is_empty() {
            lines.push(Line::from(span(
                "⚠reload: a reload of that load balancer puts drained nodes back",
                t.dim(),
            )));
            lines.push(Line::from(span(
                "(the pool guard reverts it while cutover runs) · ?reload: not read",
                t.dim(),
            )));
        }
        let w = popup_width(area, 72);
        self.draw_popup(frame, area, "Help", lines, 0, w, "Esc close");
    }

    pub(super) fn draw_quit(&self, frame: &mut Frame, area: Rect) {
        let t = &self.t;
        let w = popup_width(area, 64);
        let (text, after) = quit_question(self.state);
        let mut lines: Vec<Line<'static>> = wrap(&text, w.saturating_sub(4))
            .into_iter()
            .map(|l| Line::from(span(l, t.bold())))
            .collect();
        if !after.is_empty() {
            lines.push(Line::from(""));
            for l in wrap(&after, w.saturating_sub(4)) {
                lines.push(Line::from(span(l, t.dim())));
            }
        }
        // Over the HARD STOP box when it is up, so the fleet above it stays in view.
        let over_box = self
            .stop_geometry(area)
            .filter(|_| self.state.hard_stop.is_some())
            .map(|g| {
                let bottom = area.y + area.height.saturating_sub(1);
                Rect::new(area.x, g.r.y, area.width, bottom.saturating_sub(g.r.y))
            })
            .filter(|r| r.height as usize >= lines.len() + 4);
        self.draw_popup(
            frame,
            over_box.unwrap_or(area),
            "Quit?",
            lines,
            0,
            w,
            "y quit · n/Esc stay",
        );
    }
}
