//! The one event loop of the screen, live and in replay: draw, then wait for whichever comes
//! first — the source of states changing, a key, a resize, the clock's tick, SIGHUP or SIGTERM.
//! What differs is the source ([`Source`]): the runtime's watch channel for a live run
//! ([`Live`]), the replay player over a journal's events for a replay or a follow ([`Replay`]).
//!
//! When the terminal goes away (SIGHUP, EOF or an error reading it, a draw or resize that fails:
//! a dropped SSH session) the source hears of it first ([`Source::hung_up`]: a live run tells the
//! runtime), then the loop stops drawing, restores what it can, points the standard streams away
//! from the dead terminal and returns `Ok`.

use super::app::{App, ReplayControl};
use super::replay::{Damage, Player};
use super::terminal::Term;
use crate::engine::State;
use crate::runtime::Request;
use chrono::Utc;
use crossterm::event::{Event as TermEvent, EventStream, KeyEvent};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::time::{Interval, MissedTickBehavior};

/// What a source says after a change or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Draw again.
    Redraw,
    /// The screen closes (the runtime ended, the operator quit the replay).
    End,
}

/// Where the screen's states come from, and where its keys go.
pub(super) trait Source {
    /// The state to draw.
    fn state(&self) -> &State;
    /// Tells the app what it shows about the source (a replay's position), before each draw.
    fn before_draw(&mut self, _app: &mut App) {}
    /// Waits for the next change of state. Cancel-safe: a key or a signal may come first.
    async fn changed(&mut self, app: &mut App) -> anyhow::Result<Next>;
    /// A key, as the app maps it: a request sent to the runtime, or a replay control applied.
    fn key(&mut self, app: &mut App, key: KeyEvent) -> Next;
    /// Whether the header's clock runs (a redraw once a second).
    fn clock_runs(&self) -> bool;
    /// SIGTERM: the screen closes after this.
    fn terminate(&mut self) {}
    /// The terminal went away: the screen closes after this, without drawing again.
    fn hung_up(&mut self) {}
}

/// A live (or resumed) run: states from the runtime, keys become requests to it.
pub(super) struct Live {
    states: watch::Receiver<Arc<State>>,
    requests: mpsc::UnboundedSender<Request>,
    state: Arc<State>,
}

impl Live {
    pub(super) fn new(
        mut states: watch::Receiver<Arc<State>>,
        requests: mpsc::UnboundedSender<Request>,
    ) -> Live {
        let state = states.borrow_and_update().clone();
        Live {
            states,
            requests,
            state,
        }
    }
}

impl Source for Live {
    fn state(&self) -> &State {
        &self.state
    }

    async fn changed(&mut self, _app: &mut App) -> anyhow::Result<Next> {
        if self.states.changed().await.is_err() {
            return Ok(Next::End); // the runtime ended
        }
        self.state = self.states.borrow_and_update().clone();
        Ok(Next::Redraw)
    }

    fn key(&mut self, app: &mut App, key: KeyEvent) -> Next {
        if let Some(req) = app.handle_key(key, &self.state, Utc::now()) {
            // A closed channel means the runtime is gone; the watch will say so too.
            let _ = self.requests.send(req);
        }
        Next::Redraw
    }

    fn clock_runs(&self) -> bool {
        true
    }

    fn terminate(&mut self) {
        let _ = self.requests.send(Request::Quit);
    }

    fn hung_up(&mut self) {
        // First the runtime hears of it (the journal says so before anything else happens).
        let _ = self.requests.send(Request::HangUp);
    }
}

/// New events of a followed journal, polled.
pub type Follow =
    Box<dyn FnMut() -> anyhow::Result<Vec<(chrono::DateTime<Utc>, crate::engine::Event)>> + Send>;

/// A replay or a follow: states from the player, keys control it; read-only.
pub(super) struct Replay {
    player: Player,
    follow: Option<Follow>,
    poll: Interval,
}

impl Replay {
    pub(super) fn new(player: Player, follow: Option<Follow>) -> Replay {
        let mut poll = tokio::time::interval(Duration::from_millis(250));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Replay {
            player,
            follow,
            poll,
        }
    }
}

impl Source for Replay {
    fn state(&self) -> &State {
        self.player.state()
    }

    fn before_draw(&mut self, app: &mut App) {
        // An event that could not be read ends the replay there, like damage found on opening.
        if let Some(d) = self.player.take_fault() {
            app.set_replay_banner(Some(d.banner(false)));
        }
        app.set_replay_status(self.player.status());
    }

    async fn changed(&mut self, app: &mut App) -> anyhow::Result<Next> {
        loop {
            let due = self.player.next_due();
            let following = self.follow.is_some();
            tokio::select! {
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)),
                    if due.is_some() => {
                    self.player.tick();
                    return Ok(Next::Redraw);
                }
                _ = self.poll.tick(), if following => {
                    let Some(f) = self.follow.as_mut() else { continue };
                    match f() {
                        Ok(new) if new.is_empty() => continue,
                        Ok(new) => {
                            self.player.append(new);
                            return Ok(Next::Redraw);
                        }
                        Err(e) => match Damage::of_error(&e) {
                            // Damage is shown, not fatal: what came before it stays on screen.
                            Some(d) => {
                                self.follow = None;
                                app.stop_following();
                                app.set_replay_banner(Some(d.banner(true)));
                                return Ok(Next::Redraw);
                            }
                            None => return Err(e),
                        },
                    }
                }
                // Held, at the end, not following: only a key moves it.
                else => return std::future::pending().await,
            }
        }
    }

    fn key(&mut self, app: &mut App, key: KeyEvent) -> Next {
        match app.handle_replay_key(key, self.player.state()) {
            Some(ReplayControl::Quit) => Next::End,
            Some(c) => {
                self.player.control(c);
                Next::Redraw
            }
            None => Next::Redraw,
        }
    }

    /// The header's clock runs in follow mode, while the run is live.
    fn clock_runs(&self) -> bool {
        self.follow.is_some()
    }
}

/// Owns the terminal until the source ends, the operator quits, SIGTERM, or the terminal goes
/// away; redraws when the state changes, on a key, on a resize and once a second while the
/// source's clock runs; otherwise it sleeps.
pub(super) async fn run(mut app: App, mut source: impl Source) -> anyhow::Result<()> {
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut term = Term::enter()?;
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let hung_up = loop {
        source.before_draw(&mut app);
        if term
            .draw(|f| app.draw(f, source.state(), Utc::now()))
            .is_err()
        {
            // Nothing can be drawn: the terminal is gone.
            break true;
        }
        let clock = source.clock_runs();
        let next = tokio::select! {
            next = source.changed(&mut app) => next?,
            ev = keys.next() => match ev {
                Some(Ok(TermEvent::Key(k))) => source.key(&mut app, k),
                Some(Ok(TermEvent::Resize(..))) => {
                    if term.autoresize().is_err() {
                        break true;
                    }
                    Next::Redraw
                }
                Some(Ok(_)) => Next::Redraw,
                // EOF or EIO on the terminal: it went away.
                Some(Err(_)) | None => break true,
            },
            _ = tick.tick(), if clock => Next::Redraw,
            _ = sighup.recv() => break true,
            _ = sigterm.recv() => {
                source.terminate();
                Next::End
            }
        };
        if next == Next::End {
            break false;
        }
    };
    if hung_up {
        source.hung_up();
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
