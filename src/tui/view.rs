//! Drawing: every pane is built as lines from the engine's state, then laid out for the terminal's
//! size. Nothing here decides anything about the run; it only shows what the state holds.

use super::app::{App, Overlay, Pane, Target, can_continue, can_pause};
use super::text::{dur, hms, millis, pad, pad_left, trunc, trunc_left, width, wrap};
use super::theme::Theme;
use super::{Mode, details};
use crate::engine::State;
use crate::engine::facts::{AdminState, ReloadVerdict, TokenFormat};
use crate::engine::plan::{Op, OpKind};
use crate::engine::state::{LogLevel, NodePhase, NodeView, PoolView, RunStatus, StepStatus};
use crate::runbook::Scope;
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

/// A resume the operator has not moved past yet.
pub(super) struct ResumeNotice {
    pub who: String,
    pub at: String,
    pub drift: Vec<String>,
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
            super::theme::asciify(frame.buffer_mut(), area);
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

pub(super) fn status_badge(status: &RunStatus, pause_requested: bool) -> (&'static str, Color) {
    match status {
        RunStatus::NotStarted => ("NOT STARTED", Color::Gray),
        RunStatus::Running if pause_requested => ("PAUSING", Color::Yellow),
        RunStatus::Running => ("RUNNING", Color::Green),
        RunStatus::AwaitingConfirm => ("HARD STOP", Color::Magenta),
        RunStatus::Paused { .. } => ("PAUSED", Color::Yellow),
        RunStatus::Halted { .. } => ("HALTED", Color::Red),
        RunStatus::Completed => ("COMPLETED", Color::Green),
    }
}

/// `keystone.set_provider` → `set_provider`; gates keep their name; short enough for 80 columns.
fn short_action(a: &str) -> String {
    if let Some(g) = a.strip_prefix("gate ") {
        let g = match g {
            "fernet-keys-everywhere" => "fernet-keys",
            "validated-before-readd" => "validated",
            other => other,
        };
        return format!("gate {g}");
    }
    let a = a.strip_prefix("keystone.").unwrap_or(a);
    match a {
        "service.restart" => "restart".into(),
        "create_jws_keypair" => "create_keypair".into(),
        "install_jws_keys" => "install_keys".into(),
        "distribute_public_keys" => "copy_pubkeys".into(),
        "validate_matrix" => "matrix".into(),
        other => other.into(),
    }
}

/// What a node is doing, as a verb.
fn activity_verb(a: &str) -> &str {
    match a {
        "lb.drain" => "draining",
        "lb.ready" => "re-adding",
        "lb.maint" => "back to maint",
        "keystone.set_provider" => "flipping",
        "service.restart" => "restarting",
        "keystone.issue_token" => "token check",
        "keystone.create_jws_keypair" => "keygen",
        "keystone.install_jws_keys" => "installing",
        "keystone.distribute_public_keys" => "copying keys",
        "keystone.list_trusts" => "trusts",
        "probe" => "probing",
        other => other,
    }
}

pub(super) fn op_label(op: &Op) -> String {
    let node = op
        .node
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    match &op.kind {
        OpKind::Act { action, specs } => {
            if specs.len() > 1 {
                format!("{action} ×{}", specs.len())
            } else {
                let n = specs
                    .first()
                    .and_then(|s| s.node())
                    .map(|n| format!(" {n}"))
                    .unwrap_or(node);
                format!("{action}{n}")
            }
        }
        OpKind::Gate { gate, .. } => format!("gate {}{node}", gate.name()),
        OpKind::Confirm { id, .. } => format!("hard stop {id}"),
        OpKind::Note { .. } => "note".into(),
        OpKind::WaitUntil { .. } => "wait until old tokens expire".into(),
    }
}

/// The provider before the change: the one that is not the target.
pub(super) fn old_provider(state: &State) -> &'static str {
    if state.target_provider == "jws" {
        "fernet"
    } else {
        "jws"
    }
}

impl View<'_> {
    /// The screen; returns the log's rows (for paging) and, when a HARD STOP fits below the node
    /// table, the rows kept for it there (so the fleet stays in view).
    fn draw_screen(&self, frame: &mut Frame, area: Rect) -> (usize, Option<Rect>) {
        let w = area.width as usize;
        let h = area.height as usize;
        if w < 20 || h < 6 {
            frame.render_widget(Paragraph::new("cutover: terminal too small"), area);
            return (0, None);
        }
        let header = self.header_lines(w);
        let mut banner = self.banner(w);
        let footer = self.footer_line(w);

        // Top: steps on the left, "now" (and "next", or the matrix) on the right.
        let (steps_w, right_w) = if w < 64 {
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
        };
        let steps = self.steps_lines(steps_w);
        let matrix = self.matrix_lines();
        // The steps set the top's height; the right pane fits in it (more room on tall screens,
        // a fixed amount so the panes below do not jump as actions start and finish).
        let right_h = if right_w == 0 {
            0
        } else if w < 100 && self.state.matrix.is_some() {
            matrix.len()
        } else if h >= 40 && self.state.status == RunStatus::Completed {
            // Nothing moves any more: as much as the panes hold.
            matrix.len().max(self.now_lines(right_w, true).len())
        } else if h >= 40 {
            matrix.len().max(8)
        } else {
            matrix.len()
        };
        let mut top_h = 1 + steps.0.len().max(right_h);
        let mut nodes_h = 2 + self.state.node_order.len().max(1);
        let fixed = header.len() + footer.len();
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
        while over(top_h, nodes_h, banner.len()) && trim_banner(&mut banner, w, 2) {}
        if over(top_h, nodes_h, banner.len()) {
            nodes_h = nodes_h.min(
                h.saturating_sub(fixed + banner.len() + top_h + min_log)
                    .max(3),
            );
        }
        while over(top_h, nodes_h, banner.len()) && banner.len() > 1 {
            trim_banner(&mut banner, w, 0);
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
        // No room for the box below the steps and the node table: the fleet and the box alone.
        if let Some(want) = stop_h
            && log_h < want
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
        let banner_r = take(banner.len());
        let top_r = take(top_h);
        let nodes_r = take(nodes_h);
        let log_r = take(log_h);
        let footer_r = take(1);

        frame.render_widget(Paragraph::new(header), header_r);
        frame.render_widget(Paragraph::new(banner), banner_r);

        // Steps | now (| next or matrix)
        let steps_r = Rect::new(top_r.x, top_r.y, steps_w as u16, top_r.height);
        self.render_list(frame, steps_r, "Steps", Pane::Steps, steps.0, steps.1);
        if right_w > 0 {
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

        // Nodes
        let (node_lines, node_sel) = self.node_lines(w);
        self.render_table(frame, nodes_r, node_lines, node_sel);

        // A HARD STOP goes below the node table when it fits there whole, the log's newest
        // lines (from one) under it; else it is centred over everything.
        let mut log_r = log_r;
        let mut stop_area = None;
        if let Some(want) = stop_h {
            let lh = log_r.height as usize;
            if lh >= want + 2 {
                stop_area = Some(Rect::new(log_r.x, log_r.y, log_r.width, want as u16));
                log_r = Rect::new(
                    log_r.x,
                    log_r.y + want as u16,
                    log_r.width,
                    (lh - want) as u16,
                );
            } else if lh >= want {
                stop_area = Some(log_r);
                log_r = Rect::new(log_r.x, log_r.y + log_r.height, log_r.width, 0);
            }
        }

        // Log (| details of the selection, when there is room)
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
            let target = self.side_target();
            let (title, lines) = details::build(self, &target, side.width as usize - 3);
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
        frame.render_widget(Paragraph::new(footer), footer_r);
        (rows, stop_area)
    }

    /// The screen at a HARD STOP when the whole layout does not leave room for the box: the
    /// header, the pool banner and one line per node stay above the box (whose text scrolls);
    /// the steps and the log give way. On a terminal too small even for that, the box alone,
    /// under a line that says so.
    fn draw_stop_screen(
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
        let (node_lines, node_sel) = self.node_lines(w);
        self.render_table(frame, nodes_r, node_lines, node_sel);
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

    /// What the wide layout's details pane shows: the selection of the focused pane.
    fn side_target(&self) -> Target {
        match self.app.focus {
            Pane::Steps => Target::Step(self.app.selected_step(self.state)),
            _ => self
                .app
                .selected_node(self.state)
                .map(|n| Target::Node(n.clone()))
                .unwrap_or(Target::Step(0)),
        }
    }

    fn title_line(&self, title: &str, focused: bool) -> Line<'static> {
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
    fn render_list(
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

    fn render_box(&self, frame: &mut Frame, r: Rect, title: &str, lines: Vec<Line<'static>>) {
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

    fn render_table(
        &self,
        frame: &mut Frame,
        r: Rect,
        lines: Vec<Line<'static>>,
        sel: Option<usize>,
    ) {
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
        let mut it = lines.into_iter();
        let mut out = Vec::new();
        if let Some(h) = it.next() {
            out.push(clip(h, w));
        }
        let offset = match sel {
            Some(s) if s >= rows => s + 1 - rows,
            _ => 0,
        };
        for (i, l) in it.enumerate().skip(offset).take(rows) {
            let l = clip(l, w);
            out.push(if focused && Some(i) == sel {
                fill(l, w).style(self.t.selected())
            } else {
                l
            });
        }
        frame.render_widget(Paragraph::new(out), inner);
    }

    // ---------------------------------------------------------------- header, banner, footer

    fn header_lines(&self, w: usize) -> Vec<Line<'static>> {
        let st = self.state;
        let t = &self.t;
        let (title, cluster, run_id) = match &st.run {
            Some(r) => (r.runbook_title.clone(), r.cluster.clone(), r.run_id.clone()),
            None => ("(no run yet)".into(), String::new(), String::new()),
        };
        // Line 1: the bar. Title and cluster on the left, mode and status badges on the right.
        let (mode, mode_color) = match self.app.header.mode {
            Mode::Live => ("LIVE", Color::Green),
            Mode::Resumed => ("RESUMED", Color::Yellow),
            Mode::Replay => ("REPLAY", Color::Blue),
            Mode::Follow => ("FOLLOW", Color::Blue),
        };
        let mut right: Vec<Span<'static>> = vec![span(format!(" {mode} "), t.badge(mode_color))];
        if let Some(r) = &self.app.replay {
            let at_end = r.position >= r.total && r.total > 0;
            let play = if at_end
                && self.app.header.mode == Mode::Follow
                && !matches!(st.status, RunStatus::Completed)
            {
                format!("{} live", t.g.live)
            } else if at_end {
                format!("{} end", t.g.end)
            } else if r.playing {
                t.g.play.to_string()
            } else {
                format!("{} paused", t.g.paused)
            };
            right.push(span(
                format!(
                    " event {}/{} ×{} {play} ",
                    r.position,
                    r.total,
                    speed_label(r.speed)
                ),
                t.bar(),
            ));
        }
        let (badge, color) = status_badge(&st.status, st.pause_requested);
        right.push(Span::raw(" "));
        right.push(span(format!(" {badge} "), t.badge(color)));
        let right_w: usize = right.iter().map(|s| width(&s.content)).sum();
        let cluster_part = if cluster.is_empty() {
            String::new()
        } else {
            format!(" · {cluster}")
        };
        let left_room = w.saturating_sub(right_w + 1);
        let left = trunc(&format!(" {title}{cluster_part}"), left_room);
        let gap = w.saturating_sub(width(&left) + right_w);
        let mut l1 = vec![
            span(left, t.bar().add_modifier(ratatui::style::Modifier::BOLD)),
            span(" ".repeat(gap), t.bar()),
        ];
        l1.extend(right);

        // Line 2: run id, operator, elapsed, journal path (shortened from the left).
        let elapsed = match (st.started_at, st.finished_at) {
            (Some(s), Some(f)) => format!("T+{} (done)", super::text::clock((f - s).num_seconds())),
            (Some(s), None) => format!(
                "T+{}{}",
                super::text::clock((self.now - s).num_seconds()),
                self.as_of()
            ),
            _ => String::new(),
        };
        let mut parts: Vec<String> = Vec::new();
        if !run_id.is_empty() {
            parts.push(format!("run {run_id}"));
        }
        parts.push(self.app.header.operator.clone());
        if !elapsed.is_empty() {
            parts.push(elapsed);
        }
        let head = format!(" {}", parts.join(" · "));
        let journal = self.app.header.journal.display().to_string();
        let room = w.saturating_sub(width(&head) + 3);
        let mut l2 = vec![span(head, t.plain())];
        if room >= 8 {
            l2.push(span(" · ", t.dim()));
            l2.push(span(trunc_left(&journal, room), t.dim()));
        }
        vec![Line::from(l1), clip(Line::from(l2), w)]
    }

    /// The pool banner (always), then what stops the run or needs attention.
    fn banner_lines(&self, w: usize) -> Vec<Line<'static>> {
        self.banner(w).into_iter().map(|b| b.line).collect()
    }

    /// [`View::banner_lines`], each line saying whether it is kept when rows are short.
    fn banner(&self, w: usize) -> Vec<BannerLine> {
        let st = self.state;
        let t = &self.t;
        let mut out: Vec<BannerLine> = self
            .replay_banner_lines(w)
            .into_iter()
            .map(BannerLine::essential)
            .collect();
        let mut pool: Vec<Span<'static>> = match st.pool() {
            PoolView::Unknown => vec![span(" POOL: not read yet", t.dim())],
            PoolView::Consistent(p) => vec![
                span(" POOL: ", t.bold()),
                span(
                    format!("consistent {p}"),
                    t.ok().add_modifier(ratatui::style::Modifier::BOLD),
                ),
            ],
            PoolView::Mixed(by) => {
                // The target provider first: it is the side that grows.
                let mut groups: Vec<(&String, &Vec<String>)> = by.iter().collect();
                groups.sort_by_key(|(p, _)| **p != st.target_provider);
                let groups = groups
                    .iter()
                    .map(|(p, ns)| format!("{p}: {}", ns.join(", ")))
                    .collect::<Vec<_>>()
                    .join(" · ");
                let mut v = vec![span(format!(" POOL: MIXED — {groups} "), t.loud())];
                let hint = " clients may get 401s until the last node flips";
                if width(&groups) + 16 + width(hint) <= w && self.countdown().is_none() {
                    v.push(span(hint, t.fail()));
                }
                v
            }
        };
        let unread = st.pool_unread();
        if !unread.is_empty() {
            pool.push(span(
                format!(" · provider not read: {}", unread.join(", ")),
                t.warn(),
            ));
        }
        let countdown = self.countdown();
        if let Some(c) = &countdown {
            let pw: usize = pool.iter().map(|s| width(&s.content)).sum();
            if pw + 3 + width(c) <= w {
                pool.push(span(" · ", t.dim()));
                pool.push(span(c.clone(), t.warn()));
                out.push(BannerLine::essential(Line::from(pool)));
            } else {
                out.push(BannerLine::essential(Line::from(pool)));
                out.push(BannerLine::extra(Line::from(span(
                    format!(" {c}"),
                    t.warn(),
                ))));
            }
        } else {
            out.push(BannerLine::essential(Line::from(pool)));
        }
        if !st.lb_errors.is_empty() {
            out.push(BannerLine::extra(Line::from(span(
                format!(" LB: {}", st.lb_errors.join("; ")),
                t.warn(),
            ))));
        }
        // `keep`: how many of the paragraph's first lines stay when rows are short; `rest`: how
        // soon the others go ([`BannerLine::rank`]).
        let mut wrapped =
            |badge: &str, style: Style, text: &str, text_style: Style, keep: usize, rest: u8| {
                let lead = format!(" {badge} ");
                let lw = width(&lead) + 1;
                let lines = wrap(text, w.saturating_sub(lw + 1).max(10));
                for (i, l) in lines.into_iter().enumerate() {
                    let line = if i == 0 {
                        Line::from(vec![
                            span(lead.clone(), style),
                            Span::raw(" "),
                            span(l, text_style),
                        ])
                    } else {
                        Line::from(vec![Span::raw(" ".repeat(lw)), span(l, text_style)])
                    };
                    out.push(BannerLine {
                        line,
                        rank: if i < keep { 0 } else { rest },
                        cont: i > 0,
                    });
                }
            };
        match &st.status {
            RunStatus::Halted { reason, next } => {
                // The reason's first line says what failed (a failed restart's evidence follows
                // it on lines of its own: the log's HALTED line and the details hold them all),
                // and what to do next must never be the part cut off.
                let mut lines = reason.trim().lines();
                let first = lines.next().unwrap_or_default();
                let more = lines.filter(|l| !l.trim().is_empty()).count();
                let text = if more > 0 {
                    format!(
                        "{first} (+{more} line{}: the HALTED log line, Enter)",
                        plural(more)
                    )
                } else {
                    first.to_string()
                };
                // Two rows of it stay; the rest goes before a row of the node table does.
                wrapped("HALTED", t.loud(), &text, t.fail(), 2, 2);
                if !next.is_empty() {
                    wrapped("  next", t.bold(), next, t.plain(), usize::MAX, 0);
                }
            }
            RunStatus::Paused { reason } => {
                let how = if self.app.interactive() {
                    " — c continues"
                } else {
                    ""
                };
                wrapped(
                    "PAUSED",
                    t.badge(Color::Yellow),
                    &format!("{reason}{how}"),
                    t.warn(),
                    1,
                    1,
                );
            }
            RunStatus::Running if st.pause_requested => {
                out.push(BannerLine::essential(Line::from(span(
                    " pausing after the running action finishes…",
                    t.warn(),
                ))));
            }
            _ => {}
        }
        // Just resumed: what a fresh probe found changed since the journal, until the operator
        // makes the next decision.
        if let Some(r) = self.resume_notice() {
            let lead = vec![span(" RESUMED ", t.badge(Color::Yellow)), Span::raw(" ")];
            let head = if r.drift.is_empty() {
                format!(
                    "by {} at {}: a fresh probe matches the journal (no drift)",
                    r.who, r.at
                )
            } else {
                format!(
                    "by {} at {} · what changed since the journal ({}):",
                    r.who,
                    r.at,
                    r.drift.len()
                )
            };
            let in_box = st.hard_stop.is_some() && !r.drift.is_empty();
            let head = if in_box {
                format!("{head} listed in the HARD STOP")
            } else {
                head
            };
            let mut l = lead;
            l.push(span(head, t.bold()));
            out.push(BannerLine::extra(Line::from(l)));
            // The HARD STOP box lists the drift itself; otherwise it is listed here.
            for d in r.drift.iter().filter(|_| !in_box) {
                for (i, l) in wrap(d, w.saturating_sub(6).max(10)).into_iter().enumerate() {
                    let lead = if i == 0 { "   ! " } else { "     " };
                    out.push(BannerLine::extra(Line::from(vec![
                        span(lead, t.warn()),
                        span(l, t.warn().add_modifier(ratatui::style::Modifier::BOLD)),
                    ])));
                }
            }
        }
        for b in out.iter_mut() {
            b.line = clip(std::mem::take(&mut b.line), w);
        }
        out
    }

    /// The last resume, while the operator has not decided anything since: who resumed, when,
    /// and the drift its fresh probe found. Read from the state (so a replay shows it too).
    pub(super) fn resume_notice(&self) -> Option<ResumeNotice> {
        let r = self.state.resumed.as_ref()?;
        if self.state.status == RunStatus::Completed {
            return None;
        }
        Some(ResumeNotice {
            who: r.who.clone(),
            at: hms(r.at),
            drift: r.drift.clone(),
        })
    }

    /// `old fernet tokens irrelevant in 59m12s (services: 48h59m)`, once every node has flipped.
    pub(super) fn countdown(&self) -> Option<String> {
        let (a, b) = self.state.old_tokens_irrelevant_at()?;
        let old = old_provider(self.state);
        let left_a = (a - self.now).num_seconds();
        let left_b = (b - self.now).num_seconds();
        Some(if left_b <= 0 {
            format!("old {old} tokens no longer matter (since {})", hms(b))
        } else if left_a <= 0 {
            format!(
                "old {old} tokens expired; services with allow_expired: {}{}",
                dur(left_b),
                self.as_of()
            )
        } else {
            format!(
                "old {old} tokens irrelevant in {} (services: {}){}",
                dur(left_a),
                dur(left_b),
                self.as_of()
            )
        })
    }

    /// ` as of 01:23:45` when the screen's clock is a replayed moment, for what is computed from
    /// it (countdowns, elapsed times); empty when it is the wall clock.
    fn as_of(&self) -> String {
        if self.app.journal_clock() {
            format!(" as of {}", hms(self.now))
        } else {
            String::new()
        }
    }

    /// "Now", and in a replay the moment it is as of (its running times are computed from it).
    fn now_title(&self) -> String {
        format!("Now{}", self.as_of())
    }

    /// Why a replay stops short of the journal's end (a damaged line), first in the banner.
    fn replay_banner_lines(&self, w: usize) -> Vec<Line<'static>> {
        let Some(text) = &self.app.replay_banner else {
            return Vec::new();
        };
        let t = &self.t;
        let lead = " DAMAGED ";
        let indent = width(lead) + 1;
        wrap(text, w.saturating_sub(indent + 1).max(10))
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let first = if i == 0 {
                    vec![span(lead, t.badge(Color::Red)), Span::raw(" ")]
                } else {
                    vec![Span::raw(" ".repeat(indent))]
                };
                let mut spans = first;
                spans.push(span(l, t.fail()));
                clip(Line::from(spans), w)
            })
            .collect()
    }

    fn footer_line(&self, w: usize) -> Vec<Line<'static>> {
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
                    let quit = if super::app::running(st) > 0 {
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

    // ---------------------------------------------------------------- steps, now, matrix

    /// One line per step (plus a continuation line when a rolling step's progress does not fit);
    /// the second value is the line of the selected step.
    fn steps_lines(&self, w: usize) -> (Vec<Line<'static>>, Option<usize>) {
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
                span(step_title(st, &s.title), title_style),
            ];
            let mut extra: Vec<Span<'static>> = Vec::new();
            if s.scope == Scope::EachNode && s.status != StepStatus::Pending {
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
    fn node_progress(&self, s: &crate::engine::state::StepView) -> Vec<Span<'static>> {
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
    fn now_lines(&self, w: usize, with_next: bool) -> Vec<Line<'static>> {
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
        if let Some(first) = st
            .in_flight
            .iter()
            .find(|(id, _)| !st.in_doubt.contains(id))
            .map(|(_, f)| f)
        {
            for l in wrap(&first.intent.detail, w.saturating_sub(3))
                .into_iter()
                .take(2)
            {
                out.push(Line::from(span(format!("   {l}"), t.dim())));
            }
        }
        if st.in_flight.keys().all(|id| st.in_doubt.contains(id)) {
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
    fn next_lines(&self, rows: usize) -> Vec<Line<'static>> {
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
    fn steps_natural_width(&self) -> usize {
        let st = self.state;
        let progress: usize = st.node_order.iter().map(|n| width(n) + 3).sum::<usize>() + 11;
        st.steps
            .iter()
            .map(|s| {
                let title = 3 + width(&step_title(st, &s.title));
                let extra = if s.scope == Scope::EachNode {
                    2 + progress
                } else {
                    2 + 9 // "op 12/34"
                };
                title + extra + 1
            })
            .max()
            .unwrap_or(20)
    }

    fn matrix_title(&self) -> String {
        let m = self.state.matrix.as_ref();
        let g = self.t.g;
        match m {
            Some(m) if m.all_ok() => {
                format!("Matrix {} issued{} checked{}", g.done, g.down, g.arrow)
            }
            Some(_) => format!("Matrix {} issued{} checked{}", g.failed, g.down, g.arrow),
            None => "Matrix".into(),
        }
    }

    fn matrix_label_w(&self) -> usize {
        let Some(m) = &self.state.matrix else {
            return 0;
        };
        m.nodes
            .iter()
            .zip(
                m.formats
                    .iter()
                    .chain(std::iter::repeat(&TokenFormat::None)),
            )
            .map(|(n, f)| width(n) + 1 + f.as_str().len())
            .max()
            .unwrap_or(4)
            + 2
    }

    fn matrix_cell_w(&self) -> usize {
        let Some(m) = &self.state.matrix else {
            return 0;
        };
        m.nodes.iter().map(|n| width(n)).max().unwrap_or(3).max(4) + 1
    }

    fn matrix_width(&self) -> usize {
        let Some(m) = &self.state.matrix else {
            return 0;
        };
        (self.matrix_label_w() + self.matrix_cell_w() * m.nodes.len() + 1).max(26)
    }

    /// The N×N grid: a token issued at each row's node, validated at each column's node.
    fn matrix_lines(&self) -> Vec<Line<'static>> {
        let t = &self.t;
        let Some(m) = &self.state.matrix else {
            return Vec::new();
        };
        let lw = self.matrix_label_w();
        let cw = self.matrix_cell_w();
        let mut out = Vec::new();
        let mut head = vec![Span::raw(" ".repeat(lw + 1))];
        for n in &m.nodes {
            head.push(span(pad(n, cw), t.bold()));
        }
        out.push(Line::from(head));
        for (i, n) in m.nodes.iter().enumerate() {
            let f = m.formats.get(i).copied().unwrap_or_default();
            let mut row = vec![span(
                pad(&format!(" {n} {}", f.as_str()), lw + 1),
                t.plain(),
            )];
            for j in 0..m.nodes.len() {
                let c = m.cells.get(i).and_then(|r| r.get(j)).copied().flatten();
                let (s, style) = match c {
                    Some(200) => (format!("{}200", t.g.done), t.ok()),
                    Some(code) => (format!("{}{code}", t.g.failed), t.fail()),
                    None => (t.g.pending.to_string(), t.dim()),
                };
                row.push(span(pad(&s, cw), style));
            }
            out.push(Line::from(row));
        }
        out
    }

    // ---------------------------------------------------------------- nodes

    fn node_lines(&self, w: usize) -> (Vec<Line<'static>>, Option<usize>) {
        let st = self.state;
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
        for name in &st.node_order {
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
                    _ => self.node_cell(n, c),
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
        let sel = (!st.node_order.is_empty()).then_some(self.app.node_sel);
        (out, sel)
    }

    fn node_cell(&self, n: &NodeView, c: &Column) -> (String, Style) {
        let t = &self.t;
        let st = self.state;
        let facts = n.facts.as_ref().filter(|f| f.error.is_none());
        match c.kind {
            Col::Name => (n.name.clone(), t.bold()),
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
                    Some(f) if f.error.is_none() => {
                        f.provider.clone().unwrap_or_else(|| "fernet".into())
                    }
                    // Nothing on the node could be read: say why here, where its configuration
                    // would be (the service column keeps what its Keystone answered over HTTP).
                    Some(f) if f.unreachable.is_some() => {
                        return (format!("{} unreach", t.g.unreachable), t.fail());
                    }
                    _ => return ("?".into(), t.dim()),
                };
                let run = n.last_token.as_ref().and_then(|tk| match tk.format {
                    TokenFormat::Jws => Some("jws"),
                    TokenFormat::Fernet => Some("fernet"),
                    _ => None,
                });
                let style = if conf == st.target_provider {
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
                    let (have, total) = public_coverage(st, n);
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
                    let ok = tk.issue_status == 201 && tk.validated();
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

    // ---------------------------------------------------------------- log

    fn log_title(&self, rows: usize) -> String {
        let n = self.state.log.len();
        match (self.app.log_sel, self.app.selected_log(self.state)) {
            (Some(_), Some(s)) if n > 0 => format!("Log {}/{} (Esc: follow)", s + 1, n),
            _ if n > rows => format!("Log ({n})"),
            _ => "Log".into(),
        }
    }

    /// Log lines (time, node, symbol, action, text, duration). Returns only the lines around the
    /// selection so a long log costs nothing, and the index of the selected one within them.
    fn log_lines(&self, w: usize, rows: usize) -> (Vec<Line<'static>>, Option<usize>) {
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
        for l in &st.log[start..end] {
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

    // ---------------------------------------------------------------- overlays

    /// The HARD STOP box, then any popup over it (help and the quit question are asked on
    /// top of a hard stop, never hidden behind it).
    fn draw_overlays(&self, frame: &mut Frame, area: Rect) {
        if self.state.hard_stop.is_some() {
            self.draw_hard_stop(frame, area);
        }
        match &self.app.overlay {
            Some(Overlay::Help) => self.draw_help(frame, area),
            Some(Overlay::Details { target, scroll }) => {
                let w = popup_width(area, 100);
                let (title, lines) = details::build(self, target, w.saturating_sub(4));
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

    #[allow(clippy::too_many_arguments)]
    fn draw_popup(
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
        let r = Self::centered(area, w, h);
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

    fn draw_help(&self, frame: &mut Frame, area: Rect) {
        let t = &self.t;
        let mut rows: Vec<(&str, &str)> = Vec::new();
        if self.app.replay.is_some() {
            rows.extend([
                ("space", "pause / play the replay"),
                (t.g.left_right, "one event back / forward"),
                ("+ / -", "speed ×2 / ÷2"),
                ("g / G", "jump to the start / the end"),
            ]);
        }
        rows.extend([
            ("j/k ↑/↓", "move in the focused pane (scroll in popups)"),
            ("Tab", "next pane: steps → nodes → log"),
            ("Enter", "details of the selected step, node or log line"),
            (
                "Esc",
                "close a popup (never declines); in a pane, follow the run",
            ),
            ("PgUp/PgDn", "page through the log"),
        ]);
        if self.app.interactive() {
            rows.extend([
                ("p", "pause after the running action"),
                ("c", "continue a paused or halted run (probes first)"),
                ("Shift+Y", "at a HARD STOP: proceed (nothing else does)"),
                ("n", "at a HARD STOP: decline; the run pauses"),
                ("D", "at an in-doubt HARD STOP: mark the action done"),
                (
                    "q, Ctrl-C",
                    "quit (asks first while an action runs or at a HARD STOP)",
                ),
            ]);
        } else {
            rows.push(("q", "quit the replay (read-only: nothing is sent)"));
        }
        rows.push(("?", "this help"));
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

    fn draw_quit(&self, frame: &mut Frame, area: Rect) {
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

    /// The HARD STOP box. Interactive in a live run; a read-only record in replay.
    /// The HARD STOP box's width, body and key lines for a screen `area_w` wide.
    fn hard_stop_parts(
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
        for l in wrap(&super::text::reflow(&hs.hazard), tw) {
            body.push(Line::from(span(l, t.plain())));
        }
        body.push(Line::from(""));
        let consequence = super::text::reflow(&hs.consequence);
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
    fn hard_stop_height(&self, area_w: usize) -> Option<usize> {
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
                let r = Self::centered(area, w, want.min(max_h));
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

    fn draw_hard_stop(&self, frame: &mut Frame, area: Rect) {
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

/// Where the HARD STOP box is drawn, what is cleared for it, and how its body scrolls.
pub(super) struct StopGeometry {
    r: Rect,
    clear: Rect,
    body_h: usize,
    max_scroll: usize,
}

/// The HARD STOP box's text for `rows`: whole when it fits, else without its blank lines (the
/// title, "If you proceed:" and "Facts:" still stand out) so less of it has to scroll.
/// One line of the banner, and what may go when the screen is short of rows.
pub(super) struct BannerLine {
    line: Line<'static>,
    /// How soon it goes: 2 before a row of the node table (a long halt reason's tail), 1 after
    /// the node table shrank (resume drift, LB errors), 0 last (the pool, the first rows of what
    /// halted the run, what to do next).
    rank: u8,
    /// Continues the line before it (a wrapped paragraph): when it goes, that one ends in `…`.
    cont: bool,
}

impl BannerLine {
    fn essential(line: Line<'static>) -> BannerLine {
        BannerLine {
            line,
            rank: 0,
            cont: false,
        }
    }
    fn extra(line: Line<'static>) -> BannerLine {
        BannerLine {
            line,
            rank: 1,
            cont: false,
        }
    }
}

/// Drop one line of the banner ranked `min_rank` or more: the last of the highest rank there is.
/// A paragraph cut short ends in `…` on the line left. False: nothing of that rank is left.
fn trim_banner(banner: &mut Vec<BannerLine>, w: usize, min_rank: u8) -> bool {
    let Some(rank) = banner
        .iter()
        .map(|b| b.rank)
        .max()
        .filter(|r| *r >= min_rank)
    else {
        return false;
    };
    let Some(i) = banner.iter().rposition(|b| b.rank == rank) else {
        return false;
    };
    let gone = banner.remove(i);
    let next_cont = banner.get(i).is_some_and(|b| b.cont);
    if gone.cont && !next_cont && i > 0 {
        let prev = &mut banner[i - 1];
        let mut line = std::mem::take(&mut prev.line);
        if !line.spans.last().is_some_and(|s| s.content.ends_with('…')) {
            let style = line.spans.last().map(|s| s.style).unwrap_or_default();
            line = clip(line, w.saturating_sub(1));
            line.spans.push(Span::styled("…", style));
        }
        prev.line = line;
    }
    true
}

fn fit_body(body: Vec<Line<'static>>, rows: usize) -> Vec<Line<'static>> {
    if body.len() <= rows {
        return body;
    }
    body.into_iter().filter(|l| l.width() > 0).collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

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
    let mut running = st
        .in_flight
        .iter()
        .filter(|(id, _)| !st.in_doubt.contains(id))
        .map(|(_, f)| f);
    if let Some(f) = running.next() {
        let where_ = f.intent.node.clone().unwrap_or_else(|| "the fleet".into());
        let more = super::app::running(st) - 1;
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
fn popup_width(area: Rect, max: usize) -> usize {
    let w = area.width as usize;
    if w < 100 {
        w.saturating_sub(2)
    } else {
        max.min(w - 4)
    }
}

/// `r` grown by one cell on each side, within `area`.
fn margin(r: Rect, area: Rect) -> Rect {
    let x = r.x.saturating_sub(1).max(area.x);
    let y = r.y.saturating_sub(1).max(area.y);
    let right = (r.x + r.width + 1).min(area.x + area.width);
    let bottom = (r.y + r.height + 1).min(area.y + area.height);
    Rect::new(x, y, right - x, bottom - y)
}

/// A step's title with its `{{ params.* }}` filled in.
pub(super) fn step_title(st: &State, title: &str) -> String {
    match &st.run {
        Some(r) => super::text::fill_params(title, &r.params),
        None => title.to_string(),
    }
}

fn speed_label(s: f64) -> String {
    if s >= 1.0 {
        format!("{}", s as u64)
    } else {
        format!("1/{}", (1.0 / s).round() as u64)
    }
}

/// How many nodes' public keys this node holds, of all nodes.
pub(super) fn public_coverage(st: &State, n: &NodeView) -> (usize, usize) {
    let total = st.node_order.len();
    let Some(f) = &n.facts else { return (0, total) };
    let prints: Vec<&String> = st
        .node_order
        .iter()
        .filter_map(|m| {
            st.nodes
                .get(m)?
                .facts
                .as_ref()?
                .jws
                .private_fingerprint
                .as_ref()
        })
        .collect();
    if prints.is_empty() {
        return (f.jws.public.len().min(total), total);
    }
    let have = prints.iter().filter(|fp| f.jws.has_public(fp)).count();
    (have, total)
}

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

/// A load balancer's reload marker, from its config as the last full probe read it:
/// `⚠reload` when a reload there puts drained servers back, `?reload` when its config was not
/// read. Nothing when a reload keeps MAINT (if the state is saved first), or when nothing was
/// read yet (a replay of an older journal).
pub(super) fn reload_mark(st: &State, lb: &str) -> Option<&'static str> {
    match st.lb_reload.get(lb)?.verdict() {
        ReloadVerdict::Loses => Some("⚠reload"),
        ReloadVerdict::Unknown => Some("?reload"),
        ReloadVerdict::KeepsIfSaved => None,
    }
}

/// A load-balancer column's header in `cw` cells: `haproxy-1 ⚠reload` when both fit, else
/// `⚠` and the name cut from the left.
fn lb_header(name: &str, mark: Option<&str>, cw: usize) -> (String, Option<(String, bool)>) {
    match mark {
        None => (trunc_left(name, cw), None),
        Some(m) if width(name) + 1 + width(m) <= cw => {
            (name.to_string(), Some((format!(" {m}"), false)))
        }
        Some(m) => {
            let first: String = m.chars().take(1).collect();
            (trunc_left(name, cw.saturating_sub(1)), Some((first, true)))
        }
    }
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
        .clamp(4, 16);
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
