//! The footer: the keys that work now, from the keymap, fitted to the width.

use super::{View, clip, span};
use crate::glyphs::width;
use crate::tui::app::Overlay;
use crate::tui::keymap;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

impl View<'_> {
    pub(super) fn footer_line(&self, w: usize) -> Vec<Line<'static>> {
        let t = &self.t;
        let st = self.state;
        let app = self.app;
        let mut note: Option<(String, Style)> = None;
        // A popup's keys first (it is on top, a HARD STOP included), then the hard stop's.
        let modal = app.overlay.is_none() && app.interactive() && st.hard_stop.is_some();
        let screen = match &app.overlay {
            Some(Overlay::Help) => keymap::HELP_OPEN,
            Some(Overlay::Details { .. }) => keymap::DETAILS_OPEN,
            Some(Overlay::QuitConfirm) => keymap::QUIT_CONFIRM,
            None if modal => keymap::HARD_STOP,
            None if app.replay.is_some() => keymap::REPLAY,
            None => keymap::LIVE,
        };
        let ctx = app.key_ctx(st);
        // (key, what it does, shown whatever the width)
        let mut keys: Vec<(&str, String, bool)> = keymap::commands(screen)
            .filter_map(|c| c.footer(&ctx, t.g))
            .map(|(k, d, must)| (k, d.to_string(), must))
            .collect();
        if app.quit_requested && !modal {
            note = Some((
                "quitting when the running action finishes…".into(),
                t.warn(),
            ));
        }
        // The keys that must show always do; the others in order while they fit.
        let piece = |k: &str, d: &str| width(k) + 1 + width(d) + 2;
        let must_w = |keys: &[(&str, String, bool)]| {
            keys.iter()
                .filter(|(_, _, must)| *must)
                .map(|(k, d, _)| piece(k, d))
                .sum::<usize>()
        };
        // A narrow terminal: the keys that must show, each with the first word of what it does,
        // one space apart.
        let mut gap = "  ";
        if must_w(&keys) > w.saturating_sub(1) {
            gap = " ";
            keys.retain(|(_, _, must)| *must);
            for (_, d, _) in keys.iter_mut() {
                if let Some(first) = d.split_whitespace().next() {
                    *d = first.to_string();
                }
            }
        }
        let mut room = w.saturating_sub(1) - must_w(&keys).min(w.saturating_sub(1));
        let mut shown = Vec::new();
        for (k, d, must) in &keys {
            if *must {
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
