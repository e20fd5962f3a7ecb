//! The footer: the keys that work now, from the keymap, fitted to the width.

use super::{View, clip, span};
use crate::tui::app::{Overlay, Pane, can_continue, can_pause};
use crate::tui::text::width;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

impl View<'_> {
    pub(super) fn footer_line(&self, w: usize) -> Vec<Line<'static>> {
        let t = &self.t;
        let st = self.state;
        let app = self.app;
        let mut keys: Vec<(&str, String)> = Vec::new();
        let mut note: Option<(String, Style)> = None;
        // A popup's keys first (it is on top, a HARD STOP included), then the hard stop's.
        let modal = app.interactive() && st.hard_stop.is_some() && app.overlay.is_none();
        if modal {
            let hs = st.hard_stop.as_ref().expect("checked");
            keys.push(("Shift+Y", "proceed".into()));
            keys.push(("n", "decline and pause".into()));
            if hs.in_doubt.is_some() {
                keys.push(("D", "mark done".into()));
            }
            keys.push(("j/k", "scroll".into()));
            keys.push(("?", "help".into()));
            keys.push(("q", "quit (safe here)".into()));
        } else {
            match &app.overlay {
                Some(Overlay::Help) => keys.push(("Esc/?", "close help".into())),
                Some(Overlay::Details { .. }) => {
                    keys.push(("Esc", "close".into()));
                    keys.push(("j/k", "scroll".into()));
                }
                Some(Overlay::QuitConfirm) => {
                    let quit = if crate::tui::app::running(st) > 0 {
                        "quit after it finishes"
                    } else {
                        "quit"
                    };
                    keys.push(("y", quit.into()));
                    keys.push(("n/Esc", "stay".into()));
                }
                None => {
                    if app.replay.is_some() {
                        keys.push((
                            "space",
                            if app.replay.as_ref().is_some_and(|r| r.playing) {
                                "pause"
                            } else {
                                "play"
                            }
                            .into(),
                        ));
                        keys.push((t.g.left_right, "step".into()));
                        keys.push(("+/-", "speed".into()));
                        keys.push(("g/G", "start/end".into()));
                        keys.push(("?", "help".into()));
                        keys.push(("q", "quit".into()));
                    } else if !app.quit_requested {
                        if can_pause(st) {
                            keys.push(("p", "pause".into()));
                        }
                        if can_continue(st) {
                            keys.push(("c", "continue".into()));
                        }
                    }
                    keys.push(("j/k", "move".into()));
                    keys.push(("Tab", "pane".into()));
                    let enter = match app.focus {
                        Pane::Steps => !st.steps.is_empty(),
                        Pane::Nodes => !st.node_order.is_empty(),
                        Pane::Log => !st.log.is_empty(),
                    };
                    if enter {
                        keys.push(("Enter", "details".into()));
                    }
                    if app.replay.is_none() {
                        keys.push(("?", "help".into()));
                        if !app.quit_requested {
                            keys.push(("q", "quit".into()));
                        }
                    }
                }
            }
            if app.quit_requested {
                note = Some((
                    "quitting when the running action finishes…".into(),
                    t.warn(),
                ));
            }
        }
        // `?` and `q` always show; the others in order while they fit.
        let piece = |k: &str, d: &str| width(k) + 1 + width(d) + 2;
        let must = |k: &str| {
            matches!(
                k,
                "?" | "q" | "Shift+Y" | "n" | "n/Esc" | "Esc" | "Esc/?" | "y"
            )
        };
        let must_w = |keys: &[(&str, String)]| {
            keys.iter()
                .filter(|(k, _)| must(k))
                .map(|(k, d)| piece(k, d))
                .sum::<usize>()
        };
        // A narrow terminal: the keys that must show, each with the first word of what it does,
        // one space apart.
        let mut gap = "  ";
        if must_w(&keys) > w.saturating_sub(1) {
            gap = " ";
            keys.retain(|(k, _)| must(k));
            for (_, d) in keys.iter_mut() {
                if let Some(first) = d.split_whitespace().next() {
                    *d = first.to_string();
                }
            }
        }
        let mut room = w.saturating_sub(1) - must_w(&keys).min(w.saturating_sub(1));
        let mut shown = Vec::new();
        for (k, d) in &keys {
            if must(k) {
                shown.push((k, d));
            } else if piece(k, d) <= room {
                room -= piece(k, d);
                shown.push((k, d));
            }
        }
        let lead = if gap == " " { "" } else { " " };
        let mut spans: Vec<Span<'static>> = vec![Span::raw(lead)];
        let n = shown.len();
        for (i, (k, d)) in shown.into_iter().enumerate() {
            spans.push(span(k.to_string(), t.key()));
            let sep = if i + 1 < n { gap } else { "" };
            spans.push(span(format!(" {d}{sep}"), t.plain()));
        }
        if let Some((n, style)) = note {
            let used: usize = spans.iter().map(|s| width(&s.content)).sum();
            if used + 2 + width(&n) < w {
                spans.push(span(format!("  {n}"), style));
            }
        }
        vec![clip(Line::from(spans), w)]
    }
}
