//! Drawing: every pane is built as lines from the engine's state, then laid out for the terminal's
//! size. Nothing here decides anything about the run; it only shows what the state holds.
//!
//! One file per part of the screen: [`header`] (the bar, the pool banner, the replay banner),
//! [`steps`] (steps, now, next), [`matrix`], [`nodes`] (the node table and its columns), [`log`],
//! [`footer`] (the keys, from the keymap), [`hard_stop`] (the HARD STOP box and the compact
//! layout around it) and [`overlays`] (help, quit and details popups). This file lays them out.

mod footer;
mod hard_stop;
mod header;
mod log;
mod matrix;
mod meter;
mod nodes;
mod overlays;
mod steps;

use super::app::{App, Pane, Target};
use super::details;
use super::text::{trunc, width};
use super::theme::Theme;
use crate::engine::State;
use crate::engine::state::RunStatus;
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// The rows [`View::draw_screen`] gives each part of the screen.
struct Rows {
    banner: Vec<Line<'static>>,
    top_h: usize,
    nodes_h: usize,
    log_h: usize,
    /// The HARD STOP box's rows, when one is up.
    stop_h: Option<usize>,
}

/// A HARD STOP goes below the node table when it fits there whole, the log's newest lines (from
/// one) under it; else it is centred over everything. Returns the log's rows and the box's.
fn room_for_stop(log_r: Rect, stop_h: Option<usize>) -> (Rect, Option<Rect>) {
    let Some(want) = stop_h else {
        return (log_r, None);
    };
    let lh = log_r.height as usize;
    if lh >= want + 2 {
        let stop = Rect::new(log_r.x, log_r.y, log_r.width, want as u16);
        let log = Rect::new(
            log_r.x,
            log_r.y + want as u16,
            log_r.width,
            (lh - want) as u16,
        );
        (log, Some(stop))
    } else if lh >= want {
        let log = Rect::new(log_r.x, log_r.y + log_r.height, log_r.width, 0);
        (log, Some(log_r))
    } else {
        (log_r, None)
    }
}

/// What every builder needs: the app (read-only), the state, the clock and the theme.
pub(super) struct View<'a> {
    pub app: &'a App,
    pub state: &'a State,
    pub now: DateTime<Utc>,
    pub t: Theme,
}

impl App {
    /// Draw the whole screen for `state` at `now` (in replay, the journal's time is used instead).
    pub fn draw(&mut self, frame: &mut Frame, state: &State, now: DateTime<Utc>) {
        self.sync_modal(state);
        if self.node_sel >= state.node_order.len() {
            self.node_sel = state.node_order.len().saturating_sub(1);
        }
        let now = self.clock(state, now);
        let area = frame.area();
        let (log_rows, stop_area) = {
            let v = View {
                app: self,
                state,
                now,
                t: self.theme,
            };
            v.draw_screen(frame, area)
        };
        self.log_rows = log_rows;
        self.stop_area = stop_area;
        let v = View {
            app: self,
            state,
            now,
            t: self.theme,
        };
        let modal_max = v.stop_geometry(area).map(|g| g.max_scroll as u16);
        if let Some(max) = modal_max {
            self.modal_max = max;
            self.modal_scroll = self.modal_scroll.min(max);
        }
        let v = View {
            app: self,
            state,
            now,
            t: self.theme,
        };
        v.draw_overlays(frame, area);
        if self.theme.ascii {
            crate::tui::theme::asciify(frame.buffer_mut(), area);
        }
    }

    /// The time the screen is drawn at: the wall clock live, the journal's clock in replay.
    fn clock(&self, state: &State, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.journal_clock() {
            state.last_event_at.unwrap_or(now)
        } else {
            now
        }
    }
}

fn fill(mut line: Line<'static>, w: usize) -> Line<'static> {
    let used = line.width();
    if used < w {
        line.spans.push(Span::raw(" ".repeat(w - used)));
    }
    line
}

fn span(s: impl Into<String>, style: Style) -> Span<'static> {
    Span::styled(s.into(), style)
}

/// Cut a line of spans to `w` cells.
fn clip(line: Line<'static>, w: usize) -> Line<'static> {
    if line.width() <= w {
        return line;
    }
    let mut out: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for s in line.spans {
        let sw = width(&s.content);
        if used + sw <= w {
            used += sw;
            out.push(s);
        } else {
            let room = w.saturating_sub(used);
            if room > 0 {
                out.push(Span::styled(trunc(&s.content, room), s.style));
            }
            break;
        }
    }
    Line::from(out).style(line.style)
}

impl View<'_> {
    /// The screen; returns the log's rows (for paging) and, when a HARD STOP fits below the node
    /// table, the rows kept for it there (so the fleet stays in view).
    pub(super) fn draw_screen(&self, frame: &mut Frame, area: Rect) -> (usize, Option<Rect>) {
        let w = area.width as usize;
        let h = area.height as usize;
        if w < 20 || h < 6 {
            frame.render_widget(Paragraph::new("cutover: terminal too small"), area);
            return (0, None);
        }
        let header = self.header_lines(w);
        let footer = self.footer_line(w);
        let (steps_w, right_w) = self.top_widths(w);
        let steps = self.steps_lines(steps_w);
        let matrix = self.matrix_lines();
        let fixed = header.len() + footer.len();
        let rows = self.fit_rows(w, h, fixed, right_w, steps.0.len(), matrix.len());
        // No room for the box below the steps and the node table: the fleet and the box alone.
        if let Some(want) = rows.stop_h
            && rows.log_h < want
        {
            return self.draw_stop_screen(frame, area, want);
        }

        let mut y = area.y;
        let mut take = |n: usize| {
            let r = Rect::new(
                area.x,
                y,
                area.width,
                n.min((area.y + area.height - y) as usize) as u16,
            );
            y += r.height;
            r
        };
        let header_r = take(header.len());
        let banner_r = take(rows.banner.len());
        let top_r = take(rows.top_h);
        let nodes_r = take(rows.nodes_h);
        let log_r = take(rows.log_h);
        let footer_r = take(1);

        frame.render_widget(Paragraph::new(header), header_r);
        frame.render_widget(Paragraph::new(rows.banner), banner_r);
        self.draw_top(frame, top_r, (steps_w, right_w), steps, matrix);
        self.render_table(frame, nodes_r);
        let (log_r, stop_area) = room_for_stop(log_r, rows.stop_h);
        let log_rows = self.draw_log_and_details(frame, log_r, (w, h));
        frame.render_widget(Paragraph::new(footer), footer_r);
        (log_rows, stop_area)
    }

    /// The top's widths: steps on the left, "now" (and "next", or the matrix) on the right.
    fn top_widths(&self, w: usize) -> (usize, usize) {
        if w < 64 {
            (w, 0)
        } else if w < 100 {
            let right = if self.state.matrix.is_some() {
                self.matrix_width().clamp(24, w / 2)
            } else {
                32
            };
            (w - right - 1, right)
        } else {
            // As wide as the steps need (stable while the run moves), at most 45%.
            let s = self.steps_natural_width().clamp(40, w * 45 / 100);
            (s, w - s - 1)
        }
    }

    /// The rows of the banner, the top, the node table and the log for a `w`×`h` screen whose
    /// header and footer take `fixed` rows, and the HARD STOP box's, if one is up.
    fn fit_rows(
        &self,
        w: usize,
        h: usize,
        fixed: usize,
        right_w: usize,
        steps: usize,
        matrix: usize,
    ) -> Rows {
        let mut banner = self.banner(w);
        // The steps set the top's height; the right pane fits in it (more room on tall screens,
        // a fixed amount so the panes below do not jump as actions start and finish).
        let right_h = if right_w == 0 {
            0
        } else if w < 100 && self.state.matrix.is_some() {
            matrix
        } else if h >= 40 && self.state.status == RunStatus::Completed {
            // Nothing moves any more: as much as the panes hold.
            matrix.max(self.now_lines(right_w, true).len())
        } else if h >= 40 {
            matrix.max(8)
        } else {
            matrix
        };
        let mut top_h = 1 + steps.max(right_h);
        let mut nodes_h = 2 + self.state.node_order.len().max(1);
        // Keep a few log lines: shrink the steps, then a long halt reason (its first two rows
        // stay), then the node table (both scroll), and only then the rest of the banner (whose
        // first lines matter most).
        let min_log = 4;
        let over =
            |top: usize, nodes: usize, banner: usize| fixed + banner + top + nodes + min_log > h;
        if over(top_h, nodes_h, banner.len()) {
            top_h = top_h.min(
                h.saturating_sub(fixed + banner.len() + nodes_h + min_log)
                    .max(4),
            );
        }
        // A long halt reason's tail goes before a node's row does.
        while over(top_h, nodes_h, banner.len()) && header::trim_banner(&mut banner, w, 2) {}
        if over(top_h, nodes_h, banner.len()) {
            nodes_h = nodes_h.min(
                h.saturating_sub(fixed + banner.len() + top_h + min_log)
                    .max(3),
            );
        }
        while over(top_h, nodes_h, banner.len()) && banner.len() > 1 {
            header::trim_banner(&mut banner, w, 0);
        }
        let banner: Vec<Line<'static>> = banner.into_iter().map(|b| b.line).collect();
        // A HARD STOP that would not fit below the node table: give it rows from the top pane
        // (down to 4; the steps scroll to their cursor) when that is enough.
        let stop_h = self.hard_stop_height(w);
        if let Some(want) = stop_h {
            let below = h.saturating_sub(fixed + banner.len() + top_h + nodes_h);
            let spare = top_h.saturating_sub(4);
            if below < want && below + spare >= want {
                top_h -= want - below;
            }
        }
        let avail = h.saturating_sub(fixed + banner.len());
        let log_h = avail.saturating_sub(top_h + nodes_h);
        Rows {
            banner,
            top_h,
            nodes_h,
            log_h,
            stop_h,
        }
    }

    /// Steps | now (| next or matrix), in `top_r`.
    fn draw_top(
        &self,
        frame: &mut Frame,
        top_r: Rect,
        (steps_w, right_w): (usize, usize),
        steps: (Vec<Line<'static>>, Option<usize>),
        matrix: Vec<Line<'static>>,
    ) {
        let w = top_r.width as usize;
        let steps_r = Rect::new(top_r.x, top_r.y, steps_w as u16, top_r.height);
        self.render_list(frame, steps_r, "Steps", Pane::Steps, steps.0, steps.1);
        if right_w == 0 {
            return;
        }
        let right_r = Rect::new(
            top_r.x + steps_w as u16 + 1,
            top_r.y,
            right_w as u16,
            top_r.height,
        );
        let mw = self.matrix_width();
        // Split the right pane in two: [left | right], the right one `rw` wide.
        let split = |rw: usize| {
            (
                Rect::new(
                    right_r.x,
                    right_r.y,
                    (right_w - rw - 1) as u16,
                    right_r.height,
                ),
                Rect::new(
                    right_r.x + (right_w - rw) as u16,
                    right_r.y,
                    rw as u16,
                    right_r.height,
                ),
            )
        };
        let next_w = 44.min(right_w / 2);
        if self.state.matrix.is_some() && (w < 100 || right_w < mw + 30) {
            self.render_box(frame, right_r, &self.matrix_title(), matrix);
        } else if self.state.matrix.is_some() {
            let (now_r, m_r) = split(mw);
            let lines = self.now_lines(now_r.width as usize, true);
            self.render_box(frame, now_r, &self.now_title(), lines);
            self.render_box(frame, m_r, &self.matrix_title(), matrix);
        } else if right_w >= 90 && self.state.status != RunStatus::Completed {
            // Wide: what runs now on the left, what comes next beside it.
            let (now_r, next_r) = split(next_w);
            let lines = self.now_lines(now_r.width as usize, false);
            self.render_box(frame, now_r, &self.now_title(), lines);
            let next = self.next_lines(next_r.height.saturating_sub(1) as usize);
            self.render_box(frame, next_r, "Next", next);
        } else {
            let lines = self.now_lines(right_w, true);
            self.render_box(frame, right_r, &self.now_title(), lines);
        }
    }

    /// The log in `log_r` (with the details of the selection beside it, when there is room) on
    /// a `w`×`h` screen; returns the log's rows.
    fn draw_log_and_details(
        &self,
        frame: &mut Frame,
        log_r: Rect,
        (w, h): (usize, usize),
    ) -> usize {
        let wide = w >= 140 && log_r.height >= 10;
        let (log_area, side) = if wide {
            let dw = (w * 2 / 5).min(72) as u16;
            (
                Rect::new(log_r.x, log_r.y, log_r.width - dw - 1, log_r.height),
                Some(Rect::new(
                    log_r.x + log_r.width - dw,
                    log_r.y,
                    dw,
                    log_r.height,
                )),
            )
        } else {
            (log_r, None)
        };
        let rows = log_area.height.saturating_sub(1) as usize;
        let (log_lines, log_sel) = self.log_lines(log_area.width as usize, rows);
        let log_title = self.log_title(rows);
        if rows == 0 && log_area.height > 0 {
            // No room for a single log line: say why, where the log's title would be.
            let note = if w >= 60 {
                format!(" terminal {w}x{h} is too small for the log: 80x24 shows every pane")
            } else {
                format!(" {w}x{h}: too small for the log")
            };
            frame.render_widget(
                Paragraph::new(clip(Line::from(span(note, self.t.warn())), w)),
                log_area,
            );
        } else {
            self.render_list(frame, log_area, &log_title, Pane::Log, log_lines, log_sel);
        }
        if let Some(side) = side {
            self.draw_side_details(frame, side);
        }
        rows
    }

    /// The wide layout's details pane: the selection of the focused pane.
    fn draw_side_details(&self, frame: &mut Frame, side: Rect) {
        let target = self.side_target();
        let (title, lines) = details::build(self.state, &self.t, &target, side.width as usize - 3);
        let block = Block::new()
            .borders(Borders::TOP | Borders::LEFT)
            .border_set(self.t.pane_border_set())
            .border_style(self.t.border())
            .title(self.title_line(&format!("Details: {title}"), false));
        let inner = block.inner(side);
        frame.render_widget(block, side);
        let iw = inner.width as usize;
        let lines: Vec<Line<'static>> = lines.into_iter().map(|l| clip(l, iw)).collect();
        frame.render_widget(
            Paragraph::new(lines),
            Rect::new(
                inner.x + 1,
                inner.y,
                inner.width.saturating_sub(1),
                inner.height,
            ),
        );
    }

    /// What the wide layout's details pane shows: the selection of the focused pane.
    pub(super) fn side_target(&self) -> Target {
        match self.app.focus {
            Pane::Steps => Target::Step(self.app.selected_step(self.state)),
            _ => self
                .app
                .selected_node(self.state)
                .map(|n| Target::Node(n.clone()))
                .unwrap_or(Target::Step(0)),
        }
    }

    pub(super) fn title_line(&self, title: &str, focused: bool) -> Line<'static> {
        let marker = if focused { self.t.g.focus } else { "" };
        let marker = if focused {
            format!("{marker} ")
        } else {
            String::new()
        };
        Line::from(span(
            format!(" {marker}{title} "),
            self.t.pane_title(focused),
        ))
    }

    /// A pane with a titled rule on top and lines below, scrolled to keep `sel` visible.
    pub(super) fn render_list(
        &self,
        frame: &mut Frame,
        r: Rect,
        title: &str,
        pane: Pane,
        lines: Vec<Line<'static>>,
        sel: Option<usize>,
    ) {
        let focused = self.app.focus == pane;
        let block = Block::new()
            .borders(Borders::TOP)
            .border_set(self.t.pane_border_set())
            .border_style(self.t.border())
            .title(self.title_line(title, focused));
        let inner = block.inner(r);
        frame.render_widget(block, r);
        let rows = inner.height as usize;
        let w = inner.width as usize;
        let offset = match sel {
            Some(s) if s >= rows => s + 1 - rows,
            _ => 0,
        };
        let lines: Vec<Line<'static>> = lines
            .into_iter()
            .enumerate()
            .skip(offset)
            .take(rows)
            .map(|(i, l)| {
                let l = clip(l, w);
                if focused && Some(i) == sel {
                    fill(l, w).style(self.t.selected())
                } else {
                    l
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }

    pub(super) fn render_box(
        &self,
        frame: &mut Frame,
        r: Rect,
        title: &str,
        lines: Vec<Line<'static>>,
    ) {
        let block = Block::new()
            .borders(Borders::TOP)
            .border_set(self.t.pane_border_set())
            .border_style(self.t.border())
            .title(self.title_line(title, false));
        let inner = block.inner(r);
        frame.render_widget(block, r);
        let w = inner.width as usize;
        let lines: Vec<Line<'static>> = lines.into_iter().map(|l| clip(l, w)).collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }

    /// The node table in `r`: its header, and the rows that fit around the selection.
    pub(super) fn render_table(&self, frame: &mut Frame, r: Rect) {
        // lines[0] is the column header; it stays while the rows scroll.
        let focused = self.app.focus == Pane::Nodes;
        let n = self.state.node_order.len();
        let block = Block::new()
            .borders(Borders::TOP)
            .border_set(self.t.pane_border_set())
            .border_style(self.t.border())
            .title(self.title_line(&format!("Nodes ({n})"), focused));
        let inner = block.inner(r);
        frame.render_widget(block, r);
        let w = inner.width as usize;
        let rows = (inner.height as usize).saturating_sub(1);
        let sel = (n > 0).then_some(self.app.node_sel);
        let offset = match sel {
            Some(s) if s >= rows => s + 1 - rows,
            _ => 0,
        };
        let mut it = self.node_lines(w, offset..offset + rows).into_iter();
        let mut out = Vec::new();
        if let Some(h) = it.next() {
            out.push(clip(h, w));
        }
        for (i, l) in it.enumerate().map(|(i, l)| (i + offset, l)) {
            let l = clip(l, w);
            out.push(if focused && Some(i) == sel {
                fill(l, w).style(self.t.selected())
            } else {
                l
            });
        }
        frame.render_widget(Paragraph::new(out), inner);
    }
}

/// A `w`×`h` rectangle centred in `area` (cut to it).
fn centered(area: Rect, w: usize, h: usize) -> Rect {
    let w = (w as u16).min(area.width);
    let h = (h as u16).min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// `r` grown by one cell on each side, within `area`.
fn margin(r: Rect, area: Rect) -> Rect {
    let x = r.x.saturating_sub(1).max(area.x);
    let y = r.y.saturating_sub(1).max(area.y);
    let right = (r.x + r.width + 1).min(area.x + area.width);
    let bottom = (r.y + r.height + 1).min(area.y + area.height);
    Rect::new(x, y, right - x, bottom - y)
}
