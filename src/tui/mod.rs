//! The operator's terminal UI: a view and a keymap over the engine's [`State`]. It does no I/O
//! but the terminal's and has no rules of its own: keys become [`UiRequest`]s that the runtime
//! turns into engine commands, and everything on screen comes from the state.
//!
//! # Layout
//! - [`app`]: `App`, the UI-only state (focus, selections, overlays) and what keys do to it.
//! - `keymap`: the one table of commands (keys, action, footer label, help line, when available)
//!   that `App`'s key handling, the footer and the help screen all read.
//! - `view/`: the screen, one file per part (header and banners, steps and now, matrix, nodes,
//!   log, footer, the HARD STOP box, popups); `labels`: the words they and `details` share.
//! - `details`: the details popup (and side pane on wide terminals) for a step, node or log line.
//! - [`replay`]: the replay/follow player (fold, step back by refolding, speed).
//! - `event_loop`: the one loop for live and replay (draw, keys, resize, tick, SIGHUP/SIGTERM),
//!   over a source of states: the runtime's watch channel, or the player (and follow polling).
//! - `terminal`: raw mode and the alternate screen, restored on exit, panic and SIGHUP/SIGTERM.
//! - `text`, `theme`: wrapping and truncation; styles (NO_COLOR honoured).

pub mod app;
mod details;
mod event_loop;
pub mod export;
mod keymap;
mod labels;
pub mod replay;
mod terminal;
pub mod text;
pub mod theme;
mod view;

pub use app::{App, Header, Mode, Overlay, Pane, ReplayControl, ReplayStatus, Target};

use crate::engine::{Event, State};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What the operator asked for; the runtime turns these into engine commands.
use crate::runtime::Request as UiRequest;

/// The live UI: owns the terminal until the runtime finishes or the operator quits.
///
/// Redraws when the state changes, on a key, on a resize and once a second (clocks); otherwise it
/// sleeps. Returns when the state sender is dropped (the runtime ended); on SIGTERM after
/// sending [`UiRequest::Quit`]. When the terminal goes away (SIGHUP, EOF or an error reading
/// it, a draw that fails: a dropped SSH session) it sends [`UiRequest::HangUp`], stops drawing,
/// restores what it can, points the standard streams away from the dead terminal, and returns
/// `Ok`: the runtime finishes the action in flight and ends the session paused.
pub async fn run_live(
    states: watch::Receiver<Arc<State>>,
    requests: mpsc::UnboundedSender<UiRequest>,
    header: Header,
) -> anyhow::Result<()> {
    event_loop::run(App::new(header), event_loop::Live::new(states, requests)).await
}

pub use event_loop::Follow;

/// Replay: the same screens, read-only, driven by (time, event) pairs. With `follow`, new events
/// are polled every 250 ms and appended (FOLLOW mode, starting at the end); a followed journal
/// that turns out damaged stops being followed, under a banner naming the damage. `banner`: why
/// the events stop short of the journal's end (see [`replay::Damage::banner`]). The same event
/// loop as [`run_live`]: SIGHUP, SIGTERM or a terminal that goes away close it.
pub async fn run_replay(
    events: Vec<(DateTime<Utc>, Event)>,
    follow: Option<Follow>,
    speed: f64,
    header: Header,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let player = replay::Player::new(events, speed, follow.is_some());
    run_player(player, follow, header, banner).await
}

/// [`run_replay`] of a player already made (a journal replayed from its index:
/// [`replay::Player::open`]).
pub async fn run_player(
    player: replay::Player,
    follow: Option<Follow>,
    mut header: Header,
    banner: Option<String>,
) -> anyhow::Result<()> {
    if follow.is_some() {
        header.mode = Mode::Follow;
    } else if header.mode != Mode::Follow {
        header.mode = Mode::Replay;
    }
    let mut app = App::new(header);
    app.set_replay_banner(banner);
    event_loop::run(app, event_loop::Replay::new(player, follow)).await
}
