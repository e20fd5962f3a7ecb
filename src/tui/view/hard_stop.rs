//! The HARD STOP box (interactive live, a read-only record in replay), where it goes, how its
//! text scrolls, and the compact screen around it when the whole layout leaves no room (80x24).

use super::{View, centered, clip, margin, span};
use crate::tui::app::Pane;
use crate::tui::labels::plural;
use crate::tui::text::{reflow, width, wrap};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

/// Where the HARD STOP box is drawn, what is cleared for it, and how its body scrolls.
pub(super) struct StopGeometry {
    pub(super) r: Rect,
    pub(super) clear: Rect,
    pub(super) body_h: usize,
    pub(super) max_scroll: usize,
}

/// The HARD STOP box's text for `rows`: whole when it fits, else without its blank lines (the
/// title, "If you proceed:" and "Facts:" still stand out) so less of it has to scroll.
fn fit_body(body: Vec<Line<'static>>, rows: usize) -> Vec<Line<'static>> {
    if body.len() <= rows {
        return body;
    }
    body.into_iter().filter(|l| l.width() > 0).collect()
}

impl View<'_> {
    /// The token cache's paragraph of hard stop `id`, `tw` wide: a blank line, then the fleet's
    /// cache in bold and what it means for which tokens; nothing for other hard stops, or when
    /// no cache was read.
    pub(super) fn cache_paragraph(&self, id: &str, tw: usize) -> Vec<Line<'static>> {
        let t = &self.t;
        let text = self.state.cache_paragraph_for(id);
        let mut out = Vec::new();
        for (i, para) in text.iter().enumerate() {
            if i == 0 {
                out.push(Line::from(""));
            }
            for l in wrap(para, tw) {
                out.push(Line::from(span(
                    l,
                    if i == 0 { t.bold() } else { t.plain() },
                )));
            }
        }
        out
    }

    /// The screen at a HARD STOP when the whole layout does not leave room for the box: the
    /// header, the pool banner and one line per node stay above the box (whose text scrolls);
    /// the steps and the log give way. On a terminal too small even for that, the box alone,
    /// under a line that says so.
    pub(super) fn draw_stop_screen(
        &self,
        frame: &mut Frame,
        area: Rect,
        want: usize,
    ) -> (usize, Option<Rect>) {
        let t = &self.t;
        let w = area.width as usize;
        let h = area.height as usize;
        let mut header = self.header_lines(w);
        let mut banner = self.banner_lines(w);
        let footer = self.footer_line(w);
        let keys = self
            .hard_stop_parts(w)
            .map(|(_, _, k)| k.len())
            .unwrap_or(1);
        // The box shows at least a few lines of its text (more scroll), or all of it.
        let box_min = (2 + 1 + keys + 4).min(want);
        let n = self.state.node_order.len().max(1);
        // Rule + column header + at least one node (they scroll to the cursor).
        let nodes_min = 3;
        banner.truncate(3);
        // Header, banner, nodes, box and the footer's row.
        let fits = |hd: usize, bn: usize| hd + bn + nodes_min + box_min < h;
        while !fits(header.len(), banner.len()) && banner.len() > 1 {
            banner.pop();
        }
        if !fits(header.len(), banner.len()) {
            header.truncate(1);
        }
        let mut y = area.y;
        let mut take = |n: usize| {
            let n = n.min((area.y + area.height - y) as usize) as u16;
            let r = Rect::new(area.x, y, area.width, n);
            y += n;
            r
        };
        if !fits(header.len(), banner.len()) {
            // Too small for the fleet: say so, and keep the box (a person is waiting on it).
            let head_r = take(1);
            let note = if w >= 60 {
                format!(" terminal {w}x{h} is too small to show the nodes beside this box")
            } else {
                format!(" {w}x{h}: too small to show the nodes")
            };
            let note_r = take(usize::from(h >= 8));
            let box_h = h.saturating_sub(head_r.height as usize + note_r.height as usize + 1);
            let box_r = take(box_h);
            let footer_r = take(1);
            frame.render_widget(Paragraph::new(header), head_r);
            frame.render_widget(
                Paragraph::new(clip(Line::from(span(note, t.warn())), w)),
                note_r,
            );
            frame.render_widget(Paragraph::new(footer), footer_r);
            return (0, Some(box_r));
        }
        let rest = h - header.len() - banner.len() - 1;
        let nodes_h = (2 + n).min(rest - box_min);
        let box_h = want.min(rest - nodes_h);
        let log_h = rest - nodes_h - box_h;
        let header_r = take(header.len());
        let banner_r = take(banner.len());
        let nodes_r = take(nodes_h);
        let box_r = take(box_h);
        let log_r = take(log_h);
        let footer_r = take(1);
        frame.render_widget(Paragraph::new(header), header_r);
        frame.render_widget(Paragraph::new(banner), banner_r);
        self.render_table(frame, nodes_r);
        // Rows left over (a tall screen, a short box): the newest log lines.
        let mut rows = 0;
        if log_r.height >= 2 {
            rows = log_r.height as usize - 1;
            let (lines, sel) = self.log_lines(w, rows);
            self.render_list(frame, log_r, &self.log_title(rows), Pane::Log, lines, sel);
        }
        frame.render_widget(Paragraph::new(footer), footer_r);
        (rows, Some(box_r))
    }

    /// The HARD STOP box. Interactive in a live run; a read-only record in replay.
    /// The HARD STOP box's width, body and key lines for a screen `area_w` wide.
    pub(super) fn hard_stop_parts(
        &self,
        area_w: usize,
    ) -> Option<(usize, Vec<Line<'static>>, Vec<Line<'static>>)> {
        let t = &self.t;
        let hs = self.state.hard_stop.as_ref()?;
        // 90 wide; the whole width when that would leave only slivers of the screen beside it.
        let w = if area_w >= 110 {
            90
        } else {
            area_w.saturating_sub(2)
        };
        let tw = w.saturating_sub(4);
        let mut body: Vec<Line<'static>> = Vec::new();
        for l in wrap(&hs.title, tw) {
            body.push(Line::from(span(l, t.bold())));
        }
        body.push(Line::from(""));
        for l in wrap(&reflow(&hs.hazard), tw) {
            body.push(Line::from(span(l, t.plain())));
        }
        body.push(Line::from(""));
        let consequence = reflow(&hs.consequence);
        for (i, l) in wrap(&format!("If you proceed: {consequence}"), tw)
            .into_iter()
            .enumerate()
        {
            if i == 0 && l.starts_with("If you proceed:") {
                body.push(Line::from(vec![
                    span(
                        "If you proceed:",
                        t.warn().add_modifier(ratatui::style::Modifier::BOLD),
                    ),
                    span(l["If you proceed:".len()..].to_string(), t.plain()),
                ]));
            } else {
                body.push(Line::from(span(l, t.plain())));
            }
        }
        // Where the pool holds both providers, what the token cache makes of it.
        body.extend(self.cache_paragraph(&hs.id, tw));
        // The drift hard stop lists the drift as its facts; other hard stops raised right after
        // a resume show it here.
        if let Some(r) = self.resume_notice()
            && !r.drift.is_empty()
            && hs.drift.is_empty()
        {
            body.push(Line::from(""));
            body.push(Line::from(span(
                format!("Changed since the journal (found when {} resumed):", r.who),
                t.warn().add_modifier(ratatui::style::Modifier::BOLD),
            )));
            for d in &r.drift {
                for l in wrap(&format!("  ! {d}"), tw) {
                    body.push(Line::from(span(l, t.warn())));
                }
            }
        }
        if !hs.facts.is_empty() {
            body.push(Line::from(""));
            body.push(Line::from(span("Facts:", t.bold())));
            for f in &hs.facts {
                for l in wrap(&format!("  {} {f}", t.g.bullet), tw) {
                    body.push(Line::from(span(l, t.plain())));
                }
            }
        }
        let clients = self.meter_stop_lines();
        if !clients.is_empty() {
            body.push(Line::from(""));
            body.push(Line::from(span("Clients (the meter):", t.bold())));
            for c in clients {
                for l in wrap(&format!("  {} {c}", t.g.bullet), tw) {
                    body.push(Line::from(span(l, t.plain())));
                }
            }
        }
        // The keys stay at the bottom of the box whatever the scroll.
        let mut keys: Vec<Line<'static>> = Vec::new();
        if self.app.interactive() {
            let mut k = vec![
                span(" Shift+Y ", t.badge(Color::Red)),
                span(format!(" proceed: {}", hs.proceed), t.bold()),
            ];
            let decline = vec![span("n", t.key()), span(": decline and pause", t.plain())];
            let kw: usize = k.iter().map(|s| width(&s.content)).sum::<usize>() + 2 + 20;
            if kw <= tw {
                k.push(Span::raw("  "));
                k.extend(decline);
                keys.push(Line::from(k));
            } else {
                keys.push(Line::from(k));
                keys.push(Line::from(decline));
            }
            if hs.in_doubt.is_some() {
                keys.push(Line::from(vec![
                    span(" D", t.key()),
                    span(
                        ": mark done (only after checking the node by hand)",
                        t.plain(),
                    ),
                ]));
            }
        } else {
            let r = self
                .app
                .replay
                .as_ref()
                .and_then(|r| r.resolution.clone())
                .unwrap_or_else(|| "not resolved in this journal (yet)".into());
            for l in wrap(&format!("Replay (read-only) {} {r}", t.g.arrow), tw) {
                keys.push(Line::from(span(l, t.bold())));
            }
        }
        Some((w, body, keys))
    }

    /// Rows the whole HARD STOP box needs (without scrolling).
    pub(super) fn hard_stop_height(&self, area_w: usize) -> Option<usize> {
        self.hard_stop_parts(area_w)
            .map(|(_, body, keys)| body.len() + 1 + keys.len() + 2)
    }

    /// Where the HARD STOP box goes and how its body scrolls, for a screen `area`: in the rows
    /// the layout kept for it (below the node table) when it did, else centred.
    pub(super) fn stop_geometry(&self, area: Rect) -> Option<StopGeometry> {
        let (w, body, keys) = self.hard_stop_parts(area.width as usize)?;
        let want = body.len() + 1 + keys.len() + 2;
        let (r, clear) = match self.app.stop_area {
            Some(b) => {
                let r = Rect::new(
                    area.x + (area.width.saturating_sub(w as u16)) / 2,
                    b.y,
                    (w as u16).min(area.width),
                    (want as u16).min(b.height),
                );
                (r, b)
            }
            None => {
                let max_h = (area.height as usize).saturating_sub(2).max(6);
                let r = centered(area, w, want.min(max_h));
                // Clear a margin too, so the screen behind does not run into the border.
                (r, margin(r, area))
            }
        };
        let body_h = (r.height as usize).saturating_sub(2 + 1 + keys.len());
        Some(StopGeometry {
            r,
            clear,
            body_h,
            max_scroll: fit_body(body, body_h).len().saturating_sub(body_h),
        })
    }

    pub(super) fn draw_hard_stop(&self, frame: &mut Frame, area: Rect) {
        let t = &self.t;
        let Some(hs) = &self.state.hard_stop else {
            return;
        };
        let Some((_, body, keys)) = self.hard_stop_parts(area.width as usize) else {
            return;
        };
        let Some(geo) = self.stop_geometry(area) else {
            return;
        };
        let (r, body_h, max_scroll) = (geo.r, geo.body_h, geo.max_scroll);
        let scroll = (self.app.modal_scroll as usize).min(max_scroll);
        frame.render_widget(Clear, geo.clear);
        let label = if self.app.interactive() {
            " HARD STOP "
        } else {
            " HARD STOP (replay) "
        };
        let mut title = vec![span(label, t.badge(Color::Red))];
        title.push(span(format!(" {} ", hs.id), t.bold()));
        let mut block = Block::bordered()
            .border_set(t.stop_border_set())
            .border_style(t.modal_border())
            .title(Line::from(title));
        if max_scroll > 0 {
            // How much is hidden, and which way: the box's text must never look complete
            // when it is not.
            let below = max_scroll - scroll;
            let g = t.g;
            let pos = match (scroll, below) {
                (0, b) => format!(" {} {b} more line{} · j/k scroll ", g.down, plural(b)),
                (a, 0) => format!(" end · {} {a} line{} above (k) ", g.up, plural(a)),
                (a, b) => format!(" {}{} {a} above · {b} below · j/k ", g.up, g.down),
            };
            block = block.title_bottom(Line::from(span(pos, t.warn())).right_aligned());
        }
        let inner = block.inner(r);
        frame.render_widget(block, r);
        let pad1 = |l: Line<'static>| {
            let mut s = vec![Span::raw(" ")];
            s.extend(l.spans);
            Line::from(s)
        };
        let mut lines: Vec<Line<'static>> = fit_body(body, body_h)
            .into_iter()
            .skip(scroll)
            .take(body_h)
            .map(pad1)
            .collect();
        while lines.len() < body_h {
            lines.push(Line::from(""));
        }
        lines.push(Line::from(span(
            t.g.stop_rule.repeat(inner.width as usize),
            t.border(),
        )));
        lines.extend(keys.into_iter().map(pad1));
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
