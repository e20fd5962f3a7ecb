//! The replay player: a journal's events folded up to a position, the same fold a live run uses.
//! Forward applies one event; back refolds from the start (the fold is the only truth). Playback
//! keeps the journal's rhythm, with gaps capped at 2 s and divided by the speed.

use super::app::{ReplayControl, ReplayStatus};
use crate::engine::state::who_label;
use crate::engine::{Event, State};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::time::Instant;

pub const MAX_GAP: Duration = Duration::from_secs(2);

pub struct Player {
    events: Vec<(DateTime<Utc>, Event)>,
    pos: usize,
    state: State,
    speed: f64,
    playing: bool,
    due: Option<Instant>,
}

impl Player {
    /// A replay starts with the run's first event shown and plays; a follow starts at the end.
    pub fn new(events: Vec<(DateTime<Utc>, Event)>, speed: f64, follow: bool) -> Player {
        let mut p = Player {
            events,
            pos: 0,
            state: State::default(),
            speed: if speed.is_finite() && speed > 0.0 {
                speed.clamp(1.0 / 64.0, 64.0)
            } else {
                1.0
            },
            playing: true,
            due: None,
        };
        let to = if follow {
            p.events.len()
        } else {
            p.events.len().min(1)
        };
        p.seek(to);
        p
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn total(&self) -> usize {
        self.events.len()
    }

    pub fn status(&self) -> ReplayStatus {
        ReplayStatus {
            position: self.pos,
            total: self.events.len(),
            speed: self.speed,
            playing: self.playing,
            resolution: self.resolution(),
        }
    }

    /// When the next event is due, while playing.
    pub fn next_due(&self) -> Option<Instant> {
        if self.playing && self.pos < self.events.len() {
            self.due
        } else {
            None
        }
    }

    /// The pause before event `pos`: the journal's gap, capped, divided by the speed.
    pub fn gap(&self) -> Duration {
        if self.pos == 0 || self.pos >= self.events.len() {
            return Duration::ZERO;
        }
        let d = (self.events[self.pos].0 - self.events[self.pos - 1].0)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_GAP);
        d.div_f64(self.speed)
    }

    fn schedule(&mut self) {
        self.due = Some(Instant::now() + self.gap());
    }

    /// The next event is due: apply it.
    pub fn tick(&mut self) {
        self.forward();
    }

    fn forward(&mut self) {
        if let Some((t, e)) = self.events.get(self.pos) {
            self.state.apply(e, *t);
            self.pos += 1;
        }
        self.schedule();
    }

    /// Fold the events from the start up to (not including) `pos`.
    pub fn seek(&mut self, pos: usize) {
        let pos = pos.min(self.events.len());
        let mut s = State::default();
        for (t, e) in &self.events[..pos] {
            s.apply(e, *t);
        }
        self.state = s;
        self.pos = pos;
        self.schedule();
    }

    pub fn control(&mut self, c: ReplayControl) {
        match c {
            ReplayControl::TogglePlay => {
                self.playing = !self.playing;
                self.schedule();
            }
            ReplayControl::Forward => {
                self.playing = false;
                self.forward();
            }
            ReplayControl::Back => {
                self.playing = false;
                self.seek(self.pos.saturating_sub(1));
            }
            ReplayControl::Faster => {
                self.speed = (self.speed * 2.0).min(64.0);
                self.schedule();
            }
            ReplayControl::Slower => {
                self.speed = (self.speed / 2.0).max(1.0 / 64.0);
                self.schedule();
            }
            ReplayControl::Start => self.seek(0),
            ReplayControl::End => self.seek(self.events.len()),
            ReplayControl::Quit => {}
        }
    }

    /// New events from a followed journal. At the end and playing, they are shown at once.
    pub fn append(&mut self, new: Vec<(DateTime<Utc>, Event)>) {
        let at_end = self.pos == self.events.len();
        self.events.extend(new);
        if at_end && self.playing {
            while self.pos < self.events.len() {
                let (t, e) = &self.events[self.pos];
                self.state.apply(e, *t);
                self.pos += 1;
            }
        }
        self.schedule();
    }

    /// How the hard stop on screen was resolved, read from the events after the position.
    pub fn resolution(&self) -> Option<String> {
        let hs = self.state.hard_stop.as_ref()?;
        let raised = self.state.last_event_at;
        let later = |t: &DateTime<Utc>| match raised {
            Some(r) => format!(
                " at {} ({} later)",
                t.format("%H:%M:%S"),
                super::text::dur((*t - r).num_seconds())
            ),
            None => format!(" at {}", t.format("%H:%M:%S")),
        };
        for (t, e) in &self.events[self.pos..] {
            match e {
                Event::HardStopConfirmed { id, who, .. } if *id == hs.id => {
                    return Some(format!(
                        "confirmed (Shift+Y) by {}{}",
                        who_label(who),
                        later(t)
                    ));
                }
                Event::HardStopDeclined { id, who, .. } if *id == hs.id => {
                    return Some(format!("declined by {}{}", who_label(who), later(t)));
                }
                Event::InDoubtResolved { choice, who, .. } if hs.in_doubt.is_some() => {
                    return Some(format!("{choice} chosen by {}{}", who_label(who), later(t)));
                }
                Event::RunResumed { who, .. } => {
                    return Some(format!(
                        "cleared when {} resumed the run{}",
                        who_label(who),
                        later(t)
                    ));
                }
                _ => {}
            }
        }
        None
    }
}
