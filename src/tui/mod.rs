//! The operator's terminal UI: a view and a keymap over the engine's [`State`]. It does no I/O
//! but the terminal's and has no rules of its own: keys become [`UiRequest`]s that the runtime
//! turns into engine commands, and everything on screen comes from the state.
//!
//! # Layout
//! - [`app`]: `App`, the UI-only state (focus, selections, overlays) and the keymap.
//! - `view`: the screen (header, pool banner, steps, now, matrix, nodes, log, footer), the
//!   HARD STOP box, help and quit popups.
//! - `details`: the details popup (and side pane on wide terminals) for a step, node or log line.
//! - [`replay`]: the replay/follow player (fold, step back by refolding, speed, follow polling).
//! - `terminal`: raw mode and the alternate screen, restored on exit, panic and SIGHUP/SIGTERM.
//! - `text`, `theme`: wrapping and truncation; styles (NO_COLOR honoured).

pub mod app;
mod details;
pub mod export;
mod labels;
pub mod replay;
mod terminal;
pub mod text;
pub mod theme;
mod view;

pub use app::{App, Overlay, Pane, ReplayControl, ReplayStatus, Target};

use crate::engine::{Event, State};
use chrono::{DateTime, Utc};
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Resumed,
    Replay,
    Follow,
}

#[derive(Debug, Clone)]
pub struct Header {
    pub journal: PathBuf,
    pub mode: Mode,
    pub operator: String,
}

/// What the operator asked for; the runtime turns these into engine commands.
pub use crate::runtime::Request as UiRequest;

/// The live UI: owns the terminal until the runtime finishes or the operator quits.
///
/// Redraws when the state changes, on a key, on a resize and once a second (clocks); otherwise it
/// sleeps. Returns when the state sender is dropped (the runtime ended); on SIGTERM after
/// sending [`UiRequest::Quit`]. When the terminal goes away (SIGHUP, EOF or an error reading
/// it, a draw that fails: a dropped SSH session) it sends [`UiRequest::HangUp`], stops drawing,
/// restores what it can, points the standard streams away from the dead terminal, and returns
/// `Ok`: the runtime finishes the action in flight and ends the session paused.
pub async fn run_live(
    mut states: watch::Receiver<Arc<State>>,
    requests: mpsc::UnboundedSender<UiRequest>,
    header: Header,
) -> anyhow::Result<()> {
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut term = terminal::Term::enter()?;
    let mut app = App::new(header);
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = states.borrow_and_update().clone();
    let mut hung_up = false;
    loop {
        if term.draw(|f| app.draw(f, &state, Utc::now())).is_err() {
            // Nothing can be drawn: the terminal is gone.
            hung_up = true;
            break;
        }
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() {
                    break; // the runtime ended
                }
                state = states.borrow_and_update().clone();
            }
            ev = keys.next() => match ev {
                Some(Ok(TermEvent::Key(k))) => {
                    if let Some(req) = app.handle_key(k, &state, Utc::now()) {
                        // A closed channel means the runtime is gone; the watch will say so too.
                        let _ = requests.send(req);
                    }
                }
                Some(Ok(TermEvent::Resize(..))) => {
                    if term.autoresize().is_err() {
                        hung_up = true;
                        break;
                    }
                }
                Some(Ok(_)) => continue,
                // EOF or EIO on the terminal: it went away.
                Some(Err(_)) | None => {
                    hung_up = true;
                    break;
                }
            },
            _ = tick.tick() => {}
            _ = sighup.recv() => { hung_up = true; break; }
            _ = sigterm.recv() => { let _ = requests.send(UiRequest::Quit); break; }
        }
    }
    if hung_up {
        // First the runtime hears of it (the journal says so before anything else happens).
        let _ = requests.send(UiRequest::HangUp);
        // A terminal still there (a SIGHUP sent by hand) gets its modes back; on one that hung
        // up these fail quietly. Then nothing more may reach it before the UI's own clean-up
        // runs: that reports a failed write with eprintln!, which panics on a dead terminal.
        let _ = crossterm::terminal::disable_raw_mode();
        let _ = crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        crate::runtime::detach_from_terminal();
        drop(term);
        return Ok(());
    }
    term.restore()
}

pub type Follow = Box<dyn FnMut() -> anyhow::Result<Vec<(DateTime<Utc>, Event)>> + Send>;

/// Replay: the same screens, read-only, driven by (time, event) pairs. With `follow`, new events
/// are polled every 250 ms and appended (FOLLOW mode, starting at the end); a followed journal
/// that turns out damaged stops being followed, under a banner naming the damage. `banner`: why
/// the events stop short of the journal's end (see [`replay::Damage::banner`]).
pub async fn run_replay(
    events: Vec<(DateTime<Utc>, Event)>,
    mut follow: Option<Follow>,
    speed: f64,
    mut header: Header,
    banner: Option<String>,
) -> anyhow::Result<()> {
    if follow.is_some() {
        header.mode = Mode::Follow;
    } else if header.mode != Mode::Follow {
        header.mode = Mode::Replay;
    }
    let mut following = follow.is_some();
    let mut player = replay::Player::new(events, speed, following);
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut term = terminal::Term::enter()?;
    let mut app = App::new(header);
    app.set_replay_banner(banner);
    let mut keys = EventStream::new();
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        app.set_replay_status(player.status());
        term.draw(|f| app.draw(f, player.state(), Utc::now()))?;
        let due = player.next_due();
        tokio::select! {
            _ = async { tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)).await }, if due.is_some() => {
                player.tick();
            }
            ev = keys.next() => match ev {
                Some(Ok(TermEvent::Key(k))) => {
                    if let Some(c) = app.handle_replay_key(k, player.state()) {
                        if c == ReplayControl::Quit {
                            break;
                        }
                        player.control(c);
                    }
                }
                Some(Ok(TermEvent::Resize(..))) => term.autoresize()?,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            },
            _ = poll.tick(), if following => {
                if let Some(f) = follow.as_mut() {
                    let new = match f() {
                        Ok(new) => new,
                        Err(e) => match replay::Damage::of_error(&e) {
                            // Damage is shown, not fatal: what came before it stays on screen.
                            Some(d) => {
                                follow = None;
                                following = false;
                                app.stop_following();
                                app.set_replay_banner(Some(d.banner(true)));
                                continue;
                            }
                            None => return Err(e),
                        },
                    };
                    if new.is_empty() {
                        continue;
                    }
                    player.append(new);
                }
            }
            // The header's clock runs in follow mode, while the run is live.
            _ = clock.tick(), if following => {}
            _ = sighup.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    term.restore()?;
    Ok(())
}
