//! The client-impact meter beside a run: started when the session starts driving the run,
//! counting under the State's phase label (the current step's id, `mixed` while the pool is
//! mixed), journaled as `client_impact` every 10 s, at each phase change and when it stops with
//! the run (completed, halted, paused, quit, signal). A meter that cannot start never stops the
//! run: the journal and the operator get one line saying what, where and what to do.

use super::Session;
use super::error::JournalFailed;
use crate::engine::events::Event;
use crate::engine::impact::{ClientImpact, ImpactReason, ImpactSecond};
use crate::inventory::Inventory;
use crate::meter::{self, Frontend, MeterConfig, MeterHandle, MeterSnapshot};
use crate::sanitize::for_terminal;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How often a summary is journaled while the phase does not change.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// Seconds of the series held back from a periodic summary: requests sent then may still be
/// in flight (a request times out after at most [`meter::MAX_TIMEOUT`]; the default is 2 s).
const SETTLE_SECS: u64 = 3;

/// `--meter`: on, off, or on when every load balancer names a frontend and credentials exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MeterMode {
    On,
    Off,
    #[default]
    Auto,
}

/// The meter options of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterOpts {
    pub mode: MeterMode,
    /// Requests per second per frontend ([`meter::MIN_RATE`]..=[`meter::MAX_RATE`]).
    pub rate: f64,
}

impl Default for MeterOpts {
    fn default() -> Self {
        MeterOpts {
            mode: MeterMode::Auto,
            rate: meter::DEFAULT_RATE,
        }
    }
}

/// What the meter of `inv` would be: its configuration, or why there is none (`Ok(Err(why))`:
/// off, with the reason; `Err(why)`: `--meter on` cannot be honoured).
pub fn plan(
    inv: &Inventory,
    opts: &MeterOpts,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Result<MeterConfig, String>, String> {
    if opts.mode == MeterMode::Off {
        return Ok(Err("off (--meter off)".into()));
    }
    let why_off = |why: String| match opts.mode {
        MeterMode::On => Err(format!("--meter on: {why}")),
        _ => Ok(Err(format!("off: {why}"))),
    };
    if inv.load_balancers.is_empty() {
        return why_off("the inventory has no load balancer to meter through".into());
    }
    let missing: Vec<&str> = inv
        .load_balancers
        .iter()
        .filter(|lb| lb.frontend_url.is_none())
        .map(|lb| lb.name.as_str())
        .collect();
    if !missing.is_empty() {
        return why_off(format!(
            "no frontend_url for load balancer {} in the inventory; name each one's Keystone URL (frontend_url) to measure client impact",
            missing.join(", ")
        ));
    }
    let creds = match crate::inventory::credentials::resolve(
        inv.credentials.cloud.as_deref(),
        inv.credentials.clouds_file.as_deref(),
        env,
    ) {
        Ok(c) => c,
        Err(e) => {
            return why_off(format!(
                "no credentials for the synthetic clients: {e}; set them in clouds.yaml or OS_*"
            ));
        }
    };
    let frontends = inv
        .load_balancers
        .iter()
        .map(|lb| Frontend {
            name: lb.name.clone(),
            url: lb.frontend_url.clone().unwrap_or_default(),
        })
        .collect();
    let mut c = MeterConfig::new(frontends, creds);
    c.rate = opts.rate;
    Ok(Ok(c))
}

/// A running meter and what the session remembers of it.
pub(super) struct RunMeter {
    handle: MeterHandle,
    book: Book,
}

/// What the session remembers of its meter between summaries.
struct Book {
    started: DateTime<Utc>,
    /// The phase label requests are counted under now.
    phase: String,
    /// The first second not yet journaled in a summary's series.
    next_second: u64,
    /// Fresh failures the meter had counted under `mixed` when the open mixed window opened.
    mixed_base: Option<u64>,
}

fn mixed_fresh(s: &MeterSnapshot) -> u64 {
    s.phases
        .get("mixed")
        .map(|p| p.total.fresh_failures())
        .unwrap_or(0)
}

impl Session {
    /// Whether the meter runs now.
    pub(super) fn metering(&self) -> bool {
        self.meter.is_some()
    }

    /// Start the meter as the session starts driving the run (after `run_started`, or after a
    /// resume's fresh probe). Never fails the run: a meter that is off or cannot start is one
    /// `client_impact` record and one line saying why.
    pub(super) fn start_meter(&mut self) -> Result<(), JournalFailed> {
        if self.meter.is_some() || self.state.run.is_none() {
            return Ok(());
        }
        self.metering_wanted = true;
        let Some(inv) = self.state.inventory().cloned() else {
            return Ok(());
        };
        let planned = plan(&inv, &self.meter_opts, &|k| std::env::var(k).ok())
            .unwrap_or_else(|e| Err(format!("off: {e}")));
        let started = Utc::now();
        let why = match planned {
            Err(why) => why,
            Ok(mut config) => {
                let phase = self.state.meter_phase();
                config.phase = phase.clone();
                let names: Vec<String> = config.frontends.iter().map(|f| f.name.clone()).collect();
                match meter::start(config) {
                    Ok(handle) => {
                        // A line in the events' layout (headless output is one line per
                        // event), under the kind its summaries will have.
                        if self.print {
                            println!(
                                "{}  {:<19} {:<8} client-impact meter on: {} frontend{} ({}), {}/s each",
                                started.format("%H:%M:%S"),
                                "client_impact",
                                "",
                                names.len(),
                                if names.len() == 1 { "" } else { "s" },
                                for_terminal(&names.join(", ")),
                                self.meter_opts.rate
                            );
                        }
                        self.meter = Some(RunMeter {
                            handle,
                            book: Book {
                                started,
                                mixed_base: (phase == "mixed").then_some(0),
                                phase,
                                next_second: 0,
                            },
                        });
                        return Ok(());
                    }
                    Err(e) => format!(
                        "off: cannot start: {e}; the run goes on unmetered (fix the frontend or the credentials, or pass --meter off)"
                    ),
                }
            }
        };
        let line = format!("client-impact meter {why}");
        if self.meter_opts.mode != MeterMode::Off {
            eprintln!("cutover: {}", for_terminal(&line));
        }
        self.record(vec![Event::ClientImpact(Box::new(ClientImpact {
            meter_started: started,
            off: Some(why),
            ..ClientImpact::default()
        }))])
    }

    /// The run continued after it ended (paused, halted) in the session that drives it: a new
    /// meter, as on a resume.
    pub(super) fn restart_meter(&mut self) -> Result<(), JournalFailed> {
        if self.metering_wanted && self.meter.is_none() {
            self.start_meter()?;
        }
        Ok(())
    }

    /// The session stops driving the run: the meter stops (its final summary, if still running).
    pub(super) fn end_metering(&mut self) -> Result<(), JournalFailed> {
        self.metering_wanted = false;
        self.stop_meter()
    }

    /// After each decision: a new phase label (a step boundary, the pool becoming mixed or not)
    /// journals a summary of the phase that ends, then counts under the new one.
    pub(super) fn meter_follow(&mut self) -> Result<(), JournalFailed> {
        let now = self.state.meter_phase();
        match &self.meter {
            Some(m) if m.book.phase != now => {}
            _ => return Ok(()),
        }
        self.meter_summary(ImpactReason::Phase)?;
        if let Some(m) = self.meter.as_mut() {
            m.handle.set_phase(&now);
            m.book.mixed_base =
                (now == "mixed").then(|| mixed_fresh(&m.handle.snapshot_since(u64::MAX)));
            m.book.phase = now;
        }
        Ok(())
    }

    /// Journal what the meter measured so far (`client_impact`).
    pub(super) fn meter_summary(&mut self, reason: ImpactReason) -> Result<(), JournalFailed> {
        let Some(m) = self.meter.as_mut() else {
            return Ok(());
        };
        let snap = m.handle.snapshot_since(m.book.next_second);
        let event = summary(&mut m.book, &snap, reason);
        self.record(vec![Event::ClientImpact(Box::new(event))])
    }

    /// Stop the meter (the run stops) and journal its final summary: no request is sent after.
    pub(super) fn stop_meter(&mut self) -> Result<(), JournalFailed> {
        let Some(RunMeter { handle, mut book }) = self.meter.take() else {
            return Ok(());
        };
        let snap = handle.stop();
        let event = summary(&mut book, &snap, ImpactReason::Final);
        self.record(vec![Event::ClientImpact(Box::new(event))])
    }
}

/// Whether a decision's events end the run for now (completed, halted, paused: the meter
/// stops first) or continue it (resumed: a new meter starts).
pub(super) fn ends_or_resumes(events: &[Event]) -> (bool, bool) {
    let ends = events.iter().any(|e| {
        matches!(
            e,
            Event::RunCompleted { .. } | Event::RunHalted { .. } | Event::RunPaused { .. }
        )
    });
    let resumes = events.iter().any(|e| matches!(e, Event::RunResumed { .. }));
    (ends, resumes)
}

/// The `client_impact` of `snap`; moves the meter's journaled second on.
fn summary(m: &mut Book, snap: &MeterSnapshot, reason: ImpactReason) -> ClientImpact {
    let settled = match reason {
        ImpactReason::Final => u64::MAX,
        _ => (snap.elapsed_ms / 1000).saturating_sub(SETTLE_SECS),
    };
    let series: Vec<ImpactSecond> = snap
        .series
        .iter()
        .filter(|s| s.t >= m.next_second && s.t < settled)
        .map(|s| ImpactSecond(s.t, s.requests, s.fresh_failures, s.old_failures, s.crossed))
        .collect();
    if let Some(last) = series.last() {
        m.next_second = last.t() + 1;
    }
    let ms = |ms: u64| m.started + chrono::Duration::milliseconds(ms as i64);
    ClientImpact {
        meter_started: m.started,
        reason,
        phase: m.phase.clone(),
        elapsed_ms: snap.elapsed_ms,
        rate: snap.rate,
        total: snap.total,
        frontends: snap.frontends.clone(),
        phases: snap
            .phases
            .iter()
            .map(|(p, c)| (p.clone(), c.total))
            .collect(),
        series,
        mixed_failures: m
            .mixed_base
            .map(|base| mixed_fresh(snap).saturating_sub(base)),
        old_tokens: snap.old_tokens.clone(),
        old_died: snap
            .old_died_ms
            .iter()
            .map(|(f, t)| (f.clone(), ms(*t)))
            .collect(),
        off: None,
    }
}
