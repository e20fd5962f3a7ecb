//! The replay player: a journal's events folded up to a position, the same fold a live run uses.
//! Forward applies one event; back refolds from the start (the fold is the only truth). Playback
//! keeps the journal's rhythm, with gaps capped at 2 s and divided by the speed.
//!
//! A journal damaged at seq K is replayed up to K ([`load`]), under a banner naming K
//! ([`Damage::banner`]); a followed journal stops being followed at its damage.

use super::app::{ReplayControl, ReplayStatus};
use crate::engine::{Event, State};
use crate::journal::{BadRecord, Index, JournalError};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::time::Instant;

pub const MAX_GAP: Duration = Duration::from_secs(2);

/// At most this many folded states are kept for seeking ([`Player::checkpoint_every`]).
pub const MAX_CHECKPOINTS: usize = 16;
/// Checkpoints are at least this many events apart (a short journal needs none).
pub const MIN_CHECKPOINT_EVERY: usize = 512;

/// The kinds of the events that can answer a hard stop ([`crate::engine::narrate::answer_to`]):
/// only these are read when looking ahead for how the hard stop on screen was answered.
const ANSWER_KINDS: &[&str] = &[
    "hard_stop_confirmed",
    "hard_stop_declined",
    "in_doubt_resolved",
    "run_resumed",
];

/// Where the player's events come from.
enum Events {
    /// Held in memory (a followed journal, an export, tests).
    Held(Vec<(DateTime<Utc>, Event)>),
    /// A journal indexed by seq: an event is read from the file and parsed when it is folded.
    /// `records[i]`: the index of the record of event `i` (records that are not events are
    /// skipped).
    Indexed {
        index: Arc<Index>,
        records: Arc<Vec<u32>>,
    },
}

impl Events {
    fn shared(&self) -> Option<Events> {
        match self {
            Events::Held(_) => None,
            Events::Indexed { index, records } => Some(Events::Indexed {
                index: index.clone(),
                records: records.clone(),
            }),
        }
    }

    fn len(&self) -> usize {
        match self {
            Events::Held(v) => v.len(),
            Events::Indexed { records, .. } => records.len(),
        }
    }

    fn time(&self, i: usize) -> DateTime<Utc> {
        match self {
            Events::Held(v) => v[i].0,
            Events::Indexed { index, records } => index.time(records[i] as usize),
        }
    }

    fn get(&self, i: usize) -> Result<(DateTime<Utc>, Cow<'_, Event>), Damage> {
        match self {
            Events::Held(v) => Ok((v[i].0, Cow::Borrowed(&v[i].1))),
            Events::Indexed { index, records } => {
                let r = records[i] as usize;
                // The line's event parsed from its bytes, as the record's would be; else (a
                // run_started, a line not as the writer lays it out) the record, checked.
                if let Ok(line) = index.line(r)
                    && let Some((t, e)) =
                        crate::runtime::event_of_line(index.kind(r), index.time(r), &line)
                {
                    return Ok((t, Cow::Owned(e)));
                }
                let unreadable = |reason: String| Damage {
                    seq: r as u64 + 1,
                    line_no: r + 1,
                    reason,
                };
                let record = index.record(r).map_err(|e| match e {
                    JournalError::Tampered { reason, .. } => unreadable(reason),
                    e => unreadable(format!("cannot be read: {e}")),
                })?;
                let (t, e) = crate::runtime::event_of(&record)
                    .map_err(|e| unreadable(format!("not an event this cutover reads: {e}")))?;
                Ok((t, Cow::Owned(e)))
            }
        }
    }

    /// Whether event `i` could answer a hard stop (every held event is looked at, as before).
    fn may_answer(&self, i: usize) -> bool {
        match self {
            Events::Held(_) => true,
            Events::Indexed { index, records } => {
                ANSWER_KINDS.contains(&index.kind(records[i] as usize))
            }
        }
    }
}

/// Plays a journal's events: the state at a position is the fold of the events before it.
///
/// Seeking folds from the nearest kept state: the current one when the target is ahead of it,
/// else the nearest checkpoint before the target (a clone of the state every
/// [`Player::checkpoint_every`] events, at most [`MAX_CHECKPOINTS`] of them), else the start.
/// A journal opened with [`Player::open`] is indexed, not held: only the state, the
/// checkpoints and about 40 bytes an event stay in memory.
pub struct Player {
    events: Events,
    /// Events past this one cannot be shown (one could not be read: see [`Player::take_fault`]).
    end: usize,
    pos: usize,
    state: State,
    checkpoints: Vec<(usize, State)>,
    every: usize,
    /// Checkpoints folded ahead in the background (an indexed journal).
    ahead: Option<mpsc::Receiver<(usize, State)>>,
    resolution: Option<String>,
    fault: Option<Damage>,
    speed: f64,
    playing: bool,
    due: Option<Instant>,
}

impl Player {
    /// A replay starts with the run's first event shown and plays; a follow starts at the end.
    pub fn new(events: Vec<(DateTime<Utc>, Event)>, speed: f64, follow: bool) -> Player {
        Player::of(Events::Held(events), speed, follow)
    }

    /// A journal replayed from its index (read-only, without locking): the first event shown,
    /// playing, as [`Player::new`] after [`load`], without holding the events. The damage, if
    /// the chain breaks, is returned beside it: the events before it are played.
    pub fn open(journal: &Path, speed: f64) -> anyhow::Result<(Player, Option<Damage>)> {
        let index = Index::open(journal)?;
        let records: Vec<u32> = (0..index.len())
            .filter(|&i| crate::runtime::is_event_kind(index.kind(i)))
            .map(|i| i as u32)
            .collect();
        let damage = index.damage().cloned().map(Damage::from);
        let events = Events::Indexed {
            index: Arc::new(index),
            records: Arc::new(records),
        };
        let mut player = Player::of(events, speed, false);
        player.fold_ahead();
        Ok((player, damage))
    }

    /// Folds the whole journal once in the background, handing each checkpoint (and the
    /// state at the end) to the player as it is reached: seeking anywhere, the end included,
    /// then folds at most [`Player::checkpoint_every`] events, and the first frame does not
    /// wait for the fold. The same fold, of the same events; it stops at an event it cannot
    /// read (the player finds that out itself when it gets there) or when the player is gone.
    fn fold_ahead(&mut self) {
        let Some(events) = self.events.shared() else {
            return;
        };
        let (every, end) = (self.every, self.end);
        if end <= every {
            return;
        }
        let (tx, rx) = mpsc::channel();
        let fold = move || {
            let mut s = State::default();
            for i in 0..end {
                let Ok((t, e)) = events.get(i) else { return };
                s.apply(&e, t);
                let at = i + 1;
                if (at.is_multiple_of(every) || at == end) && tx.send((at, s.clone())).is_err() {
                    return;
                }
            }
        };
        // Without a thread, seeking folds from the checkpoints it makes itself.
        if std::thread::Builder::new()
            .name("replay-fold".into())
            .spawn(fold)
            .is_ok()
        {
            self.ahead = Some(rx);
        }
    }

    /// Takes the checkpoints folded ahead so far; while the one `every` events before `pos` is
    /// still being folded ahead, waits for it (rather than fold the same events twice).
    fn take_ahead(&mut self, pos: usize) {
        let Some(rx) = &self.ahead else { return };
        let wanted = pos - pos % self.every;
        let mut done = false;
        loop {
            let near = |p: usize| p >= wanted && p <= pos;
            let have = near(self.pos) || self.checkpoints.iter().any(|c| near(c.0));
            let next = if have || wanted == 0 {
                rx.try_recv()
            } else {
                rx.recv().map_err(|_| mpsc::TryRecvError::Disconnected)
            };
            match next {
                Ok((p, s)) => {
                    if let Err(i) = self.checkpoints.binary_search_by_key(&p, |c| c.0) {
                        self.checkpoints.insert(i, (p, s));
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    done = true;
                    break;
                }
            }
        }
        if done {
            self.ahead = None;
        }
    }

    fn of(events: Events, speed: f64, follow: bool) -> Player {
        let end = events.len();
        let mut p = Player {
            events,
            end,
            pos: 0,
            state: State::default(),
            checkpoints: Vec::new(),
            ahead: None,
            every: MIN_CHECKPOINT_EVERY.max(end.div_ceil(MAX_CHECKPOINTS)),
            resolution: None,
            fault: None,
            speed: if speed.is_finite() && speed > 0.0 {
                speed.clamp(1.0 / 64.0, 64.0)
            } else {
                1.0
            },
            playing: true,
            due: None,
        };
        p.space_checkpoints();
        let to = if follow { p.end } else { p.first() };
        p.seek(to);
        p
    }

    /// Checkpoints every this many events.
    pub fn checkpoint_every(&self) -> usize {
        self.every
    }

    /// Keeps checkpoints every `k` events instead (at least 1, widened if more than
    /// [`MAX_CHECKPOINTS`] would be kept): for tests of seeking.
    pub fn with_checkpoint_every(mut self, k: usize) -> Player {
        self.every = k.max(1);
        self.checkpoints.clear();
        self.ahead = None;
        self.space_checkpoints();
        self
    }

    /// The positions of the checkpoints kept so far.
    pub fn checkpoints(&self) -> Vec<usize> {
        self.checkpoints.iter().map(|(p, _)| *p).collect()
    }

    /// Widens the spacing of checkpoints as the events grow, so that at most
    /// [`MAX_CHECKPOINTS`] are kept.
    fn space_checkpoints(&mut self) {
        while self.end.div_ceil(self.every) > MAX_CHECKPOINTS {
            self.every *= 2;
        }
        let every = self.every;
        self.checkpoints.retain(|(p, _)| p.is_multiple_of(every));
    }

    /// An event that could not be read, once: the player stops before it (a banner should
    /// say so, as for damage found on opening).
    pub fn take_fault(&mut self) -> Option<Damage> {
        self.fault.take()
    }

    /// The first position worth showing: the first event applied (0 only for an empty journal;
    /// position 0 is a blank screen, not a moment of the run).
    fn first(&self) -> usize {
        self.end.min(1)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn total(&self) -> usize {
        self.end
    }

    pub fn status(&self) -> ReplayStatus {
        ReplayStatus {
            position: self.pos,
            total: self.end,
            speed: self.speed,
            playing: self.playing,
            resolution: self.resolution(),
        }
    }

    /// When the next event is due, while playing.
    pub fn next_due(&self) -> Option<Instant> {
        if self.playing && self.pos < self.end {
            self.due
        } else {
            None
        }
    }

    /// The pause before event `pos`: the journal's gap, capped, divided by the speed.
    pub fn gap(&self) -> Duration {
        if self.pos == 0 || self.pos >= self.end {
            return Duration::ZERO;
        }
        let d = (self.events.time(self.pos) - self.events.time(self.pos - 1))
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
        if self.pos < self.end {
            self.step();
        }
        self.moved();
    }

    /// Applies the event at the position; keeps a checkpoint where one is due. An event that
    /// cannot be read ends the events there.
    fn step(&mut self) -> bool {
        match self.events.get(self.pos) {
            Ok((t, e)) => {
                self.state.apply(&e, t);
                self.pos += 1;
                if self.pos.is_multiple_of(self.every)
                    && let Err(i) = self.checkpoints.binary_search_by_key(&self.pos, |c| c.0)
                {
                    self.checkpoints.insert(i, (self.pos, self.state.clone()));
                }
                true
            }
            Err(d) => {
                self.end = self.pos;
                self.fault = Some(d);
                false
            }
        }
    }

    /// The state and position changed: what follows from them.
    fn moved(&mut self) {
        self.resolution = self.find_resolution();
        self.schedule();
    }

    /// Fold the events from the start up to (not including) `pos`.
    pub fn seek(&mut self, pos: usize) {
        let pos = pos.min(self.end);
        self.take_ahead(pos);
        let nearest = self.checkpoints.iter().rev().find(|(p, _)| *p <= pos);
        // Ahead of the current state and not behind a checkpoint: fold on from here.
        if self.pos > pos || self.pos < nearest.map_or(0, |c| c.0) {
            match nearest {
                Some((p, s)) => {
                    self.state = s.clone();
                    self.pos = *p;
                }
                None => {
                    self.state = State::default();
                    self.pos = 0;
                }
            }
        }
        while self.pos < pos.min(self.end) && self.step() {}
        self.moved();
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
            ReplayControl::End => self.seek(self.end),
            ReplayControl::Quit => {}
        }
    }

    /// New events from a followed journal. At the end and playing, they are shown at once.
    pub fn append(&mut self, new: Vec<(DateTime<Utc>, Event)>) {
        let Events::Held(events) = &mut self.events else {
            return;
        };
        let at_end = self.pos == self.end;
        // Held events are all readable: the end is theirs, unless one already failed.
        let readable = self.end == events.len();
        events.extend(new);
        if readable {
            self.end = events.len();
        }
        self.space_checkpoints();
        if at_end && self.playing {
            while self.pos < self.end && self.step() {}
        }
        self.moved();
    }

    /// How the hard stop on screen was resolved, read from the events after the position.
    pub fn resolution(&self) -> Option<String> {
        self.resolution.clone()
    }

    fn find_resolution(&self) -> Option<String> {
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
        (self.pos..self.end)
            .filter(|&i| self.events.may_answer(i))
            .map_while(|i| self.events.get(i).ok())
            .find_map(|(t, e)| crate::engine::narrate::answer_to(&e, hs).map(|a| a + &later(&t)))
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
