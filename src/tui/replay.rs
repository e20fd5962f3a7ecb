//! The replay player: a journal's events folded up to a position, the same fold a live run uses.
//! Forward applies one event; back refolds from the start (the fold is the only truth). Playback
//! keeps the journal's rhythm, with gaps capped at 2 s and divided by the speed.
//!
//! A journal damaged at seq K is replayed up to K ([`load`]), under a banner naming K
//! ([`Damage::banner`]); a followed journal stops being followed at its damage.

use super::app::{ReplayControl, ReplayStatus};
use crate::engine::{Event, State};
use crate::journal::{BadRecord, JournalError};
use chrono::{DateTime, Utc};
use std::path::Path;
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
        let to = if follow { p.events.len() } else { p.first() };
        p.seek(to);
        p
    }

    /// The first position worth showing: the first event applied (0 only for an empty journal;
    /// position 0 is a blank screen, not a moment of the run).
    fn first(&self) -> usize {
        self.events.len().min(1)
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
                self.seek(self.pos.saturating_sub(1).max(self.first()));
            }
            ReplayControl::Faster => {
                self.speed = (self.speed * 2.0).min(64.0);
                self.schedule();
            }
            ReplayControl::Slower => {
                self.speed = (self.speed / 2.0).max(1.0 / 64.0);
                self.schedule();
            }
            // The first event, held there: playing on would run the run's first burst of events
            // (they are milliseconds apart) past before the screen could show it.
            ReplayControl::Start => {
                self.playing = false;
                self.seek(self.first());
            }
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
        self.events[self.pos..]
            .iter()
            .find_map(|(t, e)| crate::engine::narrate::answer_to(e, hs).map(|a| a + &later(t)))
    }
}

/// Where a journal's hash chain breaks: the records before it are shown, nothing after.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    /// The seq the damaged line should have had (K: records 1..K-1 are intact).
    pub seq: u64,
    /// Its line in the file.
    pub line_no: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl From<BadRecord> for Damage {
    fn from(b: BadRecord) -> Damage {
        Damage {
            seq: b.seq,
            line_no: b.line_no,
            reason: b.reason,
        }
    }
}

impl Damage {
    /// The damage a follower or reader reported, if that is what `e` is.
    pub fn of_error(e: &anyhow::Error) -> Option<Damage> {
        match e.downcast_ref::<JournalError>()? {
            JournalError::Tampered {
                seq,
                line_no,
                reason,
                ..
            } => Some(Damage {
                seq: *seq,
                line_no: *line_no,
                reason: reason.clone(),
            }),
            _ => None,
        }
    }

    /// The banner over a replay of a damaged journal. `followed`: the damage appeared while the
    /// journal was being followed, and following stopped there. Short (two lines at 80
    /// columns): the reason's gist only; `journal verify` gives it whole.
    pub fn banner(&self, followed: bool) -> String {
        let shown = match self.seq.saturating_sub(1) {
            0 => "nothing before it to replay".to_string(),
            1 => "replaying seq 1 only".to_string(),
            n => format!("replaying seq 1-{n} only"),
        };
        let what = if followed { "stopped following: " } else { "" };
        format!(
            "{what}journal damaged at seq {} (line {}: {}); {shown}; `cutover journal verify` \
             shows the damage",
            self.seq,
            self.line_no,
            crate::sanitize::for_terminal(&self.gist()),
        )
    }

    /// The reason up to its first colon (`hash mismatch`, `not valid JSON`), hashes shortened.
    fn gist(&self) -> String {
        let head = self.reason.split(": ").next().unwrap_or_default();
        head.split(' ')
            .map(|w| {
                if w.len() > 12 && w.chars().all(|c| c.is_ascii_hexdigit()) {
                    format!("{}…", &w[..8])
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A journal read for replay: its events up to the first damaged line, if any.
pub struct Loaded {
    pub events: Vec<(DateTime<Utc>, Event)>,
    pub damage: Option<Damage>,
}

/// Reads a journal for replay, read-only and without locking: every event when it is intact,
/// the events before the damage when its chain breaks (a torn final line is left out, as
/// everywhere). The journal is streamed: each record is turned into its event as it is read,
/// so a long journal's JSON is never held whole.
pub fn load(journal: &Path) -> anyhow::Result<Loaded> {
    let mut events = Vec::new();
    let end = crate::journal::read_prefix_each(journal, |record| -> anyhow::Result<()> {
        events.extend(crate::runtime::events_of(std::slice::from_ref(&record))?);
        Ok(())
    })?;
    events.shrink_to_fit();
    Ok(Loaded {
        events,
        damage: end.damage.map(Damage::from),
    })
}
