//! `cutover journal export --format asciicast`: a journal's replay screens as an asciicast v2
//! recording (<https://docs.asciinema.org/manual/asciicast/v2/>), for `asciinema play`, the
//! asciinema web player, or a change ticket.
//!
//! The frames are the replay's own: the journal's events folded by the replay [`Player`] (the
//! fold a live run uses), each moment drawn by the real view ([`App::draw`]) onto an off-screen
//! buffer of the chosen size, then written as terminal output: cursor moves, SGR colours and
//! attributes and the characters of the cells that changed since the previous frame (the first
//! frame is drawn whole on a cleared screen).
//!
//! Times are the journal's own, divided by the speed, so a drain that took a minute takes a
//! minute; the header's `idle_time_limit` (by default the replay's 2 s) tells the player to cut
//! any longer stillness (a drain, a hard stop answered an hour later) to that. Events closer
//! together than a frame ([`FRAME`]) share one; every step start, hard stop, pause, halt, resume
//! and completion also gets a marker (`"m"` event) for players that list them.

use super::replay::Player;
use super::{App, Header, Mode};
use crate::engine::Event;
use crate::journal::Record;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend, TestBackend};
use ratatui::buffer::Buffer;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// Events less than this far apart (in the recording's time) are shown in one frame: nobody
/// sees a screen for less, and it keeps a run's bursts of milliseconds-apart records small.
pub const FRAME: f64 = 1.0 / 30.0;

/// What to export and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The screen size, in columns and rows.
    pub cols: u16,
    pub rows: u16,
    /// 2 plays twice as fast as the run went.
    pub speed: f64,
    /// The longest stillness a player shows, in seconds (in the header); `None`: every wait as
    /// it was.
    pub idle_time_limit: Option<f64>,
    /// The journal's path, as the screen's header shows it.
    pub journal: PathBuf,
    /// Draw in colour (off: the view's NO_COLOR rendering, meaning carried by symbols and bold).
    pub color: bool,
    /// Draw with ASCII symbols and borders. Off by default whatever the exporting shell's locale
    /// says: a recording is played elsewhere, and asciinema plays only on UTF-8 terminals.
    pub ascii: bool,
    /// The records are the intact part of a journal damaged here ([`crate::journal::read_prefix`]):
    /// every screen carries the replay's banner naming it, and the title says so.
    pub damage: Option<crate::journal::BadRecord>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cols: 120,
            rows: 40,
            speed: 1.0,
            idle_time_limit: Some(super::replay::MAX_GAP.as_secs_f64()),
            journal: PathBuf::new(),
            color: true,
            ascii: false,
            damage: None,
        }
    }
}

/// The smallest and largest screens an export draws.
pub const MIN_SIZE: (u16, u16) = (40, 12);
pub const MAX_SIZE: (u16, u16) = (400, 200);
/// The speeds replay accepts.
pub const SPEEDS: (f64, f64) = (1.0 / 64.0, 64.0);

/// `COLSxROWS` (`120x40`, also `120×40`), within [`MIN_SIZE`] and [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("--size {s:?}: expected COLSxROWS, e.g. 120x40");
    let (c, r) = s
        .split_once(['x', 'X', '×'])
        .ok_or_else(bad)
        .and_then(|(c, r)| {
            Ok((
                c.trim().parse::<u16>().map_err(|_| bad())?,
                r.trim().parse::<u16>().map_err(|_| bad())?,
            ))
        })?;
    if !(MIN_SIZE.0..=MAX_SIZE.0).contains(&c) || !(MIN_SIZE.1..=MAX_SIZE.1).contains(&r) {
        return Err(format!(
            "--size {c}x{r}: the screen must be {}x{} to {}x{}",
            MIN_SIZE.0, MIN_SIZE.1, MAX_SIZE.0, MAX_SIZE.1
        ));
    }
    Ok((c, r))
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Journal events folded (records that are not engine events are not).
    pub events: usize,
    /// `"o"` events written (frames that changed the screen, plus the closing one).
    pub frames: usize,
    /// `"m"` events written.
    pub markers: usize,
    /// Seconds from the first frame to the last, at the export's speed, before any idle limit.
    pub duration: f64,
    /// Seconds a player that honours the idle limit takes to play it.
    pub played: f64,
}

/// Writes `records` (a journal, as [`crate::journal::read`] gives it) as an asciicast v2
/// recording to `out`.
pub fn write_asciicast(records: &[Record], opts: &Options, out: &mut dyn Write) -> Result<Summary> {
    if !(opts.speed.is_finite() && (SPEEDS.0..=SPEEDS.1).contains(&opts.speed)) {
        bail!(
            "speed {}: it must be between 1/64 and 64 (2 = twice as fast)",
            opts.speed
        );
    }
    parse_size(&format!("{}x{}", opts.cols, opts.rows)).map_err(|e| anyhow!(e))?;
    let events = crate::runtime::events_of(records)?;
    let Some(&(t0, _)) = events.first() else {
        bail!("the journal holds no events: there is nothing to play");
    };
    // Frame times: the journal's, scaled, never running backwards.
    let times = frame_times(&events, opts.speed);
    let duration = *times.last().unwrap_or(&0.0);

    // ---- Header ------------------------------------------------------------------------------
    let started = records.iter().find(|r| r.kind == "run_started");
    let field = |k: &str| {
        started
            .and_then(|r| r.data.get(k))
            .and_then(|v| v.as_str())
            .map(crate::sanitize::for_terminal)
            .map(|s| s.into_owned())
            .unwrap_or_default()
    };
    let mut title = format!("cutover replay: {}", field("runbook_title"));
    let name = field("runbook_name");
    if !name.is_empty() {
        title.push_str(&format!(" ({name})"));
    }
    let run = started
        .or(records.first())
        .map(|r| crate::sanitize::for_terminal(&r.run).into_owned())
        .unwrap_or_default();
    title.push_str(&format!(", run {run}"));
    let cluster = field("cluster");
    if !cluster.is_empty() {
        title.push_str(&format!(" on {cluster}"));
    }
    if opts.speed != 1.0 {
        title.push_str(&format!(" (×{})", opts.speed));
    }
    if let Some(d) = &opts.damage {
        title.push_str(&format!(
            " (journal damaged at seq {}: up to seq {} only)",
            d.seq,
            d.seq.saturating_sub(1)
        ));
    }
    let mut header = json!({
        "version": 2,
        "width": opts.cols,
        "height": opts.rows,
        "timestamp": t0.timestamp(),
        "duration": duration,
        "title": title,
        "env": { "TERM": "xterm-256color" },
    });
    if let Some(limit) = opts.idle_time_limit.filter(|l| l.is_finite() && *l > 0.0) {
        header["idle_time_limit"] = json!(limit);
    }
    let io = |e: std::io::Error| anyhow!("cannot write the recording: {e}");
    if opts.color {
        // The recording's colours are `opts.color`'s to decide (the CLI's follows the exporting
        // shell's NO_COLOR); crossterm would otherwise drop every colour code under NO_COLOR
        // on its own. Process-wide, and harmless: the theme decides what has a colour.
        crossterm::style::force_color_output(true);
    }
    writeln!(out, "{header}").map_err(io)?;

    // ---- Frames ------------------------------------------------------------------------------
    let operator = started
        .or(records.first())
        .map(|r| crate::sanitize::for_terminal(&r.actor).into_owned())
        .unwrap_or_default();
    let mut app = App::new(Header {
        journal: opts.journal.clone(),
        mode: Mode::Replay,
        operator,
    })
    .with_color(opts.color)
    .with_ascii(opts.ascii);
    app.set_replay_banner(
        opts.damage
            .clone()
            .map(|d| super::replay::Damage::from(d).banner(false)),
    );
    let mut term = Terminal::new(TestBackend::new(opts.cols, opts.rows))
        .context("cannot set up the off-screen terminal")?;
    let area = ratatui::layout::Rect::new(0, 0, opts.cols, opts.rows);
    let mut shown = Buffer::empty(area);
    let n = events.len();
    // The replay starts with the first event applied; each step applies the next one.
    let mut player = Player::new(events.clone(), opts.speed, false);
    let mut summary = Summary {
        events: n,
        frames: 0,
        markers: 0,
        duration,
        played: 0.0,
    };
    let mut events_out = Events {
        limit: opts.idle_time_limit.unwrap_or(f64::INFINITY),
        last: None,
        played: 0.0,
    };
    let mut first = true;
    loop {
        let pos = player.position();
        if pos == 0 {
            break; // unreachable with at least one event
        }
        let at = times[pos - 1];
        if let Some(label) = marker(&events[pos - 1].1) {
            events_out.write(out, at, "m", &label).map_err(io)?;
            summary.markers += 1;
        }
        // Draw this moment unless the next event follows within a frame (the first moment is
        // always drawn: the recording never opens on a blank screen).
        let next_soon = pos < n && times[pos] - at < FRAME;
        if first || !next_soon {
            app.set_replay_status(player.status());
            let now = events[pos - 1].0;
            term.draw(|f| app.draw(f, player.state(), now))
                .context("cannot draw a frame")?;
            let mut screen = term.backend().buffer().clone();
            neutralise_controls(&mut screen);
            let mut bytes = Vec::new();
            if first {
                // Cursor hidden, attributes reset, screen cleared, cursor home.
                bytes.extend_from_slice(b"\x1b[?25l\x1b[0m\x1b[2J\x1b[H");
            }
            let changes = shown.diff(&screen);
            if !changes.is_empty() {
                let mut backend = CrosstermBackend::new(&mut bytes);
                backend
                    .draw(changes.into_iter())
                    .context("cannot encode a frame")?;
            }
            if !bytes.is_empty() {
                let data = String::from_utf8(bytes).context("a frame is not UTF-8")?;
                events_out.write(out, at, "o", &data).map_err(io)?;
                summary.frames += 1;
            }
            shown = screen;
            first = false;
        }
        if pos >= n {
            break;
        }
        player.tick();
    }
    // Leave the player's terminal usable: attributes reset, cursor at the bottom row, shown.
    let close = format!("\x1b[0m\x1b[{};1H\x1b[?25h", opts.rows);
    events_out.write(out, duration, "o", &close).map_err(io)?;
    summary.frames += 1;
    out.flush().map_err(io)?;
    summary.played = micros(events_out.played);
    Ok(summary)
}

/// The event lines, and how long a player that honours the idle limit waits between them.
struct Events {
    limit: f64,
    last: Option<f64>,
    played: f64,
}

impl Events {
    /// One `[time, code, data]` line.
    fn write(
        &mut self,
        out: &mut dyn Write,
        time: f64,
        code: &str,
        data: &str,
    ) -> std::io::Result<()> {
        let line = serde_json::to_string(&json!([time, code, data]))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some(last) = self.last {
            self.played += (time - last).min(self.limit);
        }
        self.last = Some(time);
        writeln!(out, "{line}")
    }
}

/// A marker's label for the moments a viewer may want to jump to.
fn marker(e: &Event) -> Option<String> {
    let label = match e {
        Event::StepStarted { step } => format!("step {step}"),
        Event::HardStopRaised(h) => format!("hard stop {}", h.id),
        Event::RunPaused { .. } => "paused".to_string(),
        Event::RunHalted { .. } => "halted".to_string(),
        Event::RunResumed { .. } => "resumed".to_string(),
        Event::RunCompleted { .. } => "completed".to_string(),
        _ => return None,
    };
    Some(crate::sanitize::for_terminal(&label).into_owned())
}

/// The view sanitises what it draws; a cell that still held a control character would reach
/// the viewer's terminal as a command, so it shows as `?` instead.
fn neutralise_controls(buf: &mut Buffer) {
    for cell in &mut buf.content {
        if cell.symbol().chars().any(char::is_control) {
            cell.set_symbol("?");
        }
    }
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds()
        .map(|us| us as f64 / 1e6)
        .unwrap_or_else(|| d.num_seconds() as f64)
        .max(0.0)
}

/// Rounded to the microsecond: `0.3`, not `0.30000000000000004`.
fn micros(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

/// When each of `events` shows in a recording at `speed`: seconds since the first, scaled, to
/// the microsecond. A clock that stepped back (a resume on a bastion whose clock is behind)
/// does not make the recording's time run backwards.
pub fn frame_times(events: &[(DateTime<Utc>, Event)], speed: f64) -> Vec<f64> {
    let Some(&(t0, _)) = events.first() else {
        return Vec::new();
    };
    let mut last = 0.0f64;
    events
        .iter()
        .map(|(t, _)| {
            last = last.max(seconds(*t - t0) / speed);
            micros(last)
        })
        .collect()
}
