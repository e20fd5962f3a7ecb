//! `App`: the UI-only state (focused pane, selections, scroll, overlays, replay position) and what
//! keys do to it (which key is which command: [`super::keymap`]). `handle_key` is pure: a key
//! against the current engine state gives at most one request.

use super::UiRequest;
use super::keymap::{self, Act, Ctx};
use super::theme::Theme;
use crate::engine::State;
use crate::engine::state::RunStatus;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::path::PathBuf;

/// How the screen was started: a live run, a resumed one, a replay or a follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Resumed,
    Replay,
    Follow,
}

/// What the header shows that is not in the state.
#[derive(Debug, Clone)]
pub struct Header {
    pub journal: PathBuf,
    pub mode: Mode,
    pub operator: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Steps,
    Nodes,
    Log,
}

impl Pane {
    fn next(self) -> Pane {
        match self {
            Pane::Steps => Pane::Nodes,
            Pane::Nodes => Pane::Log,
            Pane::Log => Pane::Steps,
        }
    }
    fn prev(self) -> Pane {
        match self {
            Pane::Steps => Pane::Log,
            Pane::Nodes => Pane::Steps,
            Pane::Log => Pane::Nodes,
        }
    }
}

/// What a details popup is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Step(usize),
    Node(String),
    Log(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Details {
        target: Target,
        scroll: u16,
    },
    /// "Quit? (y/n)", its text following the state: an action running, a HARD STOP waiting, …
    QuitConfirm,
}

/// A replay control key, for `run_replay`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplayControl {
    TogglePlay,
    Back,
    Forward,
    Faster,
    Slower,
    Start,
    End,
    Quit,
}

/// Where a replay is, for the header and the read-only hard-stop box.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayStatus {
    /// Events applied so far.
    pub position: usize,
    pub total: usize,
    pub speed: f64,
    pub playing: bool,
    /// How the hard stop on screen was resolved, read from later events ("confirmed by …").
    pub resolution: Option<String>,
}

pub struct App {
    pub(super) header: Header,
    pub(super) theme: Theme,
    pub(super) focus: Pane,
    /// None: follow the step the run is in.
    pub(super) step_sel: Option<usize>,
    pub(super) node_sel: usize,
    /// None: follow the newest log line.
    pub(super) log_sel: Option<usize>,
    pub(super) overlay: Option<Overlay>,
    /// Scroll of the hard-stop box, and which hard stop it belongs to.
    pub(super) modal_scroll: u16,
    /// How far the box scrolls at the last draw's size (its body less the rows it shows).
    pub(super) modal_max: u16,
    pub(super) modal_id: Option<crate::engine::events::HardStopKey>,
    /// Rows the log showed at the last draw (for paging).
    pub(super) log_rows: usize,
    /// Where the last draw kept room for the HARD STOP box (below the node table), if it did.
    pub(super) stop_area: Option<ratatui::layout::Rect>,
    /// Set once Quit was sent; the footer says we are waiting for the runtime.
    pub(super) quit_requested: bool,
    pub(super) replay: Option<ReplayStatus>,
    /// Why a replay stops short of the journal's end (its damage), shown as a banner.
    pub(super) replay_banner: Option<String>,
}

impl App {
    pub fn new(header: Header) -> App {
        let replay = matches!(header.mode, Mode::Replay | Mode::Follow).then(|| ReplayStatus {
            speed: 1.0,
            playing: true,
            ..Default::default()
        });
        App {
            header,
            theme: Theme::from_env(),
            focus: Pane::Steps,
            step_sel: None,
            node_sel: 0,
            log_sel: None,
            overlay: None,
            modal_scroll: 0,
            modal_max: u16::MAX,
            modal_id: None,
            log_rows: 10,
            stop_area: None,
            quit_requested: false,
            replay,
            replay_banner: None,
        }
    }

    /// Force colour off (or on), whatever NO_COLOR and TERM say.
    pub fn with_color(mut self, color: bool) -> App {
        self.theme = Theme::new(color, self.theme.ascii);
        self
    }

    /// Force ASCII symbols and borders (or Unicode), whatever the locale says.
    pub fn with_ascii(mut self, ascii: bool) -> App {
        self.theme = Theme::new(self.theme.color, ascii);
        self
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Live and resumed runs take requests; replay and follow are read-only.
    pub fn interactive(&self) -> bool {
        matches!(self.header.mode, Mode::Live | Mode::Resumed)
    }

    /// The replay position shown in the header (set by the replay loop before each draw).
    pub fn set_replay_status(&mut self, status: ReplayStatus) {
        self.replay = Some(status);
    }

    /// A banner over a replay: why it stops short of the journal's end (a damaged line).
    pub fn set_replay_banner(&mut self, text: Option<String>) {
        self.replay_banner = text;
    }

    /// Stop following (the followed journal broke): from now on a replay of what was read.
    pub fn stop_following(&mut self) {
        if self.header.mode == Mode::Follow {
            self.header.mode = Mode::Replay;
        }
    }

    /// Whether the screen's clock is the journal's (a replay, or a follow behind the live end)
    /// rather than the wall clock: times computed from it are "as of" the replayed moment.
    pub fn journal_clock(&self) -> bool {
        match self.header.mode {
            Mode::Live | Mode::Resumed => false,
            Mode::Follow => self.replay.as_ref().is_none_or(|r| r.position < r.total),
            Mode::Replay => true,
        }
    }

    pub fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_ref()
    }

    pub fn focus(&self) -> Pane {
        self.focus
    }

    /// The step the cursor is on (the operator's choice, else the run's current step).
    pub(super) fn selected_step(&self, state: &State) -> usize {
        let n = state.steps.len();
        match self.step_sel {
            Some(i) => i.min(n.saturating_sub(1)),
            None if state.status == RunStatus::Completed => n.saturating_sub(1),
            None => current_step_index(state).unwrap_or(0),
        }
    }

    pub(super) fn selected_node<'s>(&self, state: &'s State) -> Option<&'s String> {
        state
            .node_order
            .get(self.node_sel.min(state.node_order.len().saturating_sub(1)))
    }

    pub(super) fn selected_log(&self, state: &State) -> Option<usize> {
        let n = state.log.len();
        if n == 0 {
            return None;
        }
        Some(self.log_sel.map(|i| i.min(n - 1)).unwrap_or(n - 1))
    }

    /// What the keymap needs to know about the moment: what is available, what the footer says.
    pub(super) fn key_ctx(&self, state: &State) -> Ctx {
        Ctx {
            in_doubt: state
                .hard_stop
                .as_ref()
                .is_some_and(|h| h.in_doubt.is_some()),
            can_pause: state.can_pause().is_ok(),
            can_continue: state.can_continue().is_ok(),
            quit_requested: self.quit_requested,
            has_selection: match self.focus {
                Pane::Steps => !state.steps.is_empty(),
                Pane::Nodes => !state.node_order.is_empty(),
                Pane::Log => !state.log.is_empty(),
            },
            running: state.running() > 0,
            playing: self.replay.as_ref().is_some_and(|r| r.playing),
        }
    }

    /// A key in a live (or resumed) run. Pure: no I/O; the runtime acts on the request.
    pub fn handle_key(
        &mut self,
        key: KeyEvent,
        state: &State,
        _now: DateTime<Utc>,
    ) -> Option<UiRequest> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let ctx = self.key_ctx(state);
        // A popup is on top of everything, a HARD STOP included: its keys first.
        if self.overlay == Some(Overlay::QuitConfirm) {
            // y, or Ctrl-C a second time: quitting never cuts an action short.
            match keymap::lookup(keymap::QUIT_CONFIRM, &key, &ctx) {
                Some(Act::QuitYes) => return self.quit(),
                Some(Act::Close) => self.overlay = None,
                _ => {}
            }
            return None;
        }
        if self.interactive()
            && let Some(hs) = &state.hard_stop
        {
            self.sync_modal(state);
            // Help (or a details popup left open) takes its own keys; Esc closes it.
            if self.overlay_key(key, state) {
                return None;
            }
            // A held key repeats: only a fresh press counts, and only Shift+Y proceeds.
            if key.kind == KeyEventKind::Repeat {
                return None;
            }
            let act = keymap::lookup(keymap::HARD_STOP, &key, &ctx);
            if act == Some(Act::Quit) {
                // Quitting here is safe (nothing runs; resume comes back to this stop): ask.
                if !self.quit_requested {
                    self.overlay = Some(Overlay::QuitConfirm);
                }
                return None;
            }
            if ctrl || alt {
                return None;
            }
            // Answer exactly this stop (id, op, intent), never the next one with the same id.
            let id = hs.key();
            match act? {
                Act::Proceed => return Some(UiRequest::Confirm { id }),
                Act::Decline => return Some(UiRequest::Decline { id }),
                Act::MarkDone => return Some(UiRequest::MarkDone { id }),
                Act::Help => self.overlay = Some(Overlay::Help),
                Act::ScrollBox(d) => self.scroll_modal(d as i32),
                Act::BoxTop => self.modal_scroll = 0,
                Act::BoxEnd => self.modal_scroll = self.modal_max,
                _ => {}
            }
            return None;
        }
        if self.overlay_key(key, state) {
            return None;
        }
        if !self.interactive() {
            // Replay and follow never send anything; their keys go through handle_replay_key.
            if let Some(a) = keymap::lookup(keymap::PANES, &key, &ctx) {
                self.nav(a, state);
            }
            return None;
        }
        let act = keymap::lookup(keymap::LIVE, &key, &ctx);
        if act == Some(Act::Quit) {
            if state.running() > 0 {
                self.overlay = Some(Overlay::QuitConfirm);
                return None;
            }
            return self.quit();
        }
        if ctrl || alt {
            return None;
        }
        match act? {
            Act::Pause => Some(UiRequest::Pause),
            Act::Continue => Some(UiRequest::Continue),
            a => {
                self.nav(a, state);
                None
            }
        }
    }

    fn quit(&mut self) -> Option<UiRequest> {
        self.overlay = None;
        self.quit_requested = true;
        Some(UiRequest::Quit)
    }

    /// Scroll the HARD STOP box, within what the last draw showed.
    fn scroll_modal(&mut self, d: i32) {
        let s = (self.modal_scroll as i32 + d).clamp(0, self.modal_max as i32);
        self.modal_scroll = s as u16;
    }

    /// A key in replay or follow mode: navigation is handled here, playback keys are returned.
    pub fn handle_replay_key(&mut self, key: KeyEvent, state: &State) -> Option<ReplayControl> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Some(ReplayControl::Quit);
        }
        if self.overlay_key(key, state) {
            return None;
        }
        let ctx = self.key_ctx(state);
        let c = match keymap::lookup(keymap::REPLAY, &key, &ctx)? {
            Act::Quit => ReplayControl::Quit,
            Act::Play => ReplayControl::TogglePlay,
            Act::Back => ReplayControl::Back,
            Act::Forward => ReplayControl::Forward,
            Act::Faster => ReplayControl::Faster,
            Act::Slower => ReplayControl::Slower,
            Act::Start => ReplayControl::Start,
            Act::End => ReplayControl::End,
            a => {
                self.nav(a, state);
                return None;
            }
        };
        Some(c)
    }

    /// Keys for the help and details overlays. True when the key was theirs.
    fn overlay_key(&mut self, key: KeyEvent, state: &State) -> bool {
        let layer = match &self.overlay {
            Some(Overlay::Help) => keymap::HELP_OPEN,
            Some(Overlay::Details { .. }) => keymap::DETAILS_OPEN,
            Some(Overlay::QuitConfirm) => keymap::QUIT_CONFIRM,
            None => return false,
        };
        let ctx = self.key_ctx(state);
        match (keymap::lookup(layer, &key, &ctx), &mut self.overlay) {
            (Some(Act::Close), _) => self.overlay = None,
            (Some(Act::ScrollDetails(d)), Some(Overlay::Details { scroll, .. })) => {
                *scroll = scroll.saturating_add_signed(d);
            }
            _ => {}
        }
        true
    }

    /// Moving around: j/k/arrows, Tab, Enter, ?, paging in the log.
    fn nav(&mut self, act: Act, state: &State) {
        match act {
            Act::NextPane => self.focus = self.focus.next(),
            Act::PrevPane => self.focus = self.focus.prev(),
            Act::Help => self.overlay = Some(Overlay::Help),
            Act::Move(d) => self.move_by(state, d as isize),
            Act::Page(d) => self.move_by(state, d as isize * self.log_rows.max(1) as isize),
            Act::Details => {
                let target = match self.focus {
                    Pane::Steps if !state.steps.is_empty() => {
                        Some(Target::Step(self.selected_step(state)))
                    }
                    Pane::Nodes => self.selected_node(state).map(|n| Target::Node(n.clone())),
                    Pane::Log => self.selected_log(state).map(Target::Log),
                    _ => None,
                };
                if let Some(target) = target {
                    self.overlay = Some(Overlay::Details { target, scroll: 0 });
                }
            }
            Act::Follow => {
                // Back to following the run.
                match self.focus {
                    Pane::Steps => self.step_sel = None,
                    Pane::Log => self.log_sel = None,
                    Pane::Nodes => {}
                }
            }
            _ => {}
        }
    }

    fn move_by(&mut self, state: &State, d: isize) {
        let step = |cur: usize, len: usize| -> usize {
            if len == 0 {
                return 0;
            }
            (cur as isize + d).clamp(0, len as isize - 1) as usize
        };
        match self.focus {
            Pane::Steps => {
                let cur = self.selected_step(state);
                self.step_sel = Some(step(cur, state.steps.len()));
            }
            Pane::Nodes => {
                self.node_sel = step(self.node_sel, state.node_order.len());
            }
            Pane::Log => {
                let n = state.log.len();
                if let Some(cur) = self.selected_log(state) {
                    let next = step(cur, n);
                    // Moving onto the newest line follows the log again.
                    self.log_sel = if next + 1 >= n { None } else { Some(next) };
                }
            }
        }
    }

    /// Reset the hard-stop box's scroll when a different hard stop is shown.
    pub(super) fn sync_modal(&mut self, state: &State) {
        let id = state.hard_stop.as_ref().map(|h| h.stop_key());
        if id != self.modal_id {
            self.modal_id = id;
            self.modal_scroll = 0;
            self.modal_max = u16::MAX;
        }
    }
}

pub(super) fn current_step_index(state: &State) -> Option<usize> {
    state
        .steps
        .iter()
        .position(|s| s.status == crate::engine::state::StepStatus::Active)
        .or_else(|| {
            state
                .steps
                .iter()
                .position(|s| s.status == crate::engine::state::StepStatus::Failed)
        })
        .or_else(|| {
            state
                .current_step()
                .and_then(|c| state.steps.iter().position(|s| s.id == c.id))
        })
}
