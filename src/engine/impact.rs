//! Client impact as the journal records it and the fold keeps it.
//!
//! The runtime runs the meter (`crate::meter`) during a run and journals a `client_impact`
//! event every 10 s, at each phase change (a step boundary, the pool becoming mixed or not) and
//! when the meter stops: counts only (cumulative since that meter started, and per phase), the
//! per-second series since the previous summary, never a token or a request. The fold keeps the
//! totals over every meter of the run (a resume starts a new one), the last 10 minutes of the
//! series for the sparkline, the mixed windows (from the pool the fold sees) with the failures
//! measured inside them, the longest failing stretch and when old tokens died.

use crate::meter::RequestCounts;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The series kept in the state: the last 10 minutes.
pub const SERIES_KEPT: usize = 600;
/// The most mixed windows kept (the oldest go first).
const WINDOWS_KEPT: usize = 64;

/// Why a summary was journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImpactReason {
    /// Every 10 s.
    #[default]
    Periodic,
    /// The phase changed (a step boundary; the pool became mixed or stopped being mixed).
    Phase,
    /// The meter stopped with the run.
    Final,
}

/// One second of the meter: `[t, requests, fresh_failures, old_failures, crossed]`, `t` in
/// seconds since the meter started (by when requests were sent). Compact in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImpactSecond(pub u64, pub u64, pub u64, pub u64, pub u64);

impl ImpactSecond {
    pub fn t(&self) -> u64 {
        self.0
    }
    pub fn requests(&self) -> u64 {
        self.1
    }
    pub fn fresh_failures(&self) -> u64 {
        self.2
    }
    pub fn old_failures(&self) -> u64 {
        self.3
    }
    pub fn crossed(&self) -> u64 {
        self.4
    }
}

/// The `client_impact` event: what the meter measured so far.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClientImpact {
    /// When this meter started; counts are since then (a resumed run starts a new meter).
    pub meter_started: DateTime<Utc>,
    #[serde(default)]
    pub reason: ImpactReason,
    /// The phase label requests were counted under up to this summary: a step id, or `mixed`.
    #[serde(default)]
    pub phase: String,
    /// Milliseconds since the meter started.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// Requests per second per frontend.
    #[serde(default)]
    pub rate: f64,
    /// Cumulative counts since the meter started.
    #[serde(default)]
    pub total: RequestCounts,
    /// Cumulative, per frontend.
    #[serde(default)]
    pub frontends: BTreeMap<String, RequestCounts>,
    /// Cumulative, per phase label.
    #[serde(default)]
    pub phases: BTreeMap<String, RequestCounts>,
    /// The seconds since the previous summary.
    #[serde(default)]
    pub series: Vec<ImpactSecond>,
    /// Failures of fresh tokens (issues and validations) in the mixed window open now, as the
    /// meter counted them since the pool became mixed; none while the pool is not mixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixed_failures: Option<u64>,
    /// Old tokens held per frontend (issued as the meter started).
    #[serde(default)]
    pub old_tokens: BTreeMap<String, usize>,
    /// Per frontend, when an old token was first refused there.
    #[serde(default)]
    pub old_died: BTreeMap<String, DateTime<Utc>>,
    /// The meter is not running, and why (off, no frontend, no credentials, cannot start):
    /// this record holds no counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<String>,
}

/// A time the pool was mixed (pooled nodes disagreed on the provider), as the fold saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixedWindow {
    pub start: DateTime<Utc>,
    /// None while it is open.
    pub end: Option<DateTime<Utc>>,
    /// Meter seconds overlapping the window: requests, failures of fresh tokens, of old ones.
    pub requests: u64,
    pub failures: u64,
    pub old_failures: u64,
}

impl MixedWindow {
    pub fn secs(&self, now: DateTime<Utc>) -> f64 {
        (self.end.unwrap_or(now) - self.start).num_milliseconds() as f64 / 1000.0
    }

    /// Whether the second starting at `at` overlaps this window.
    fn overlaps(&self, at: DateTime<Utc>) -> bool {
        at < self.end.unwrap_or(DateTime::<Utc>::MAX_UTC) && at + Duration::seconds(1) > self.start
    }
}

/// One second of the series, at its wall time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImpactPoint {
    pub at: DateTime<Utc>,
    pub requests: u64,
    pub fresh_failures: u64,
    pub old_failures: u64,
    pub crossed: u64,
}

/// A run of consecutive seconds with failures of fresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stretch {
    pub start: DateTime<Utc>,
    pub secs: u64,
    pub failures: u64,
}

/// What the fold keeps of client impact.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImpactView {
    /// Whether any `client_impact` was folded.
    pub measured: bool,
    /// The current meter's last summary (counts since it started).
    pub last: Option<ClientImpact>,
    /// When the last summary was journaled.
    pub last_at: Option<DateTime<Utc>>,
    /// Counts of meters before the current one (a resume starts a new meter).
    base_total: RequestCounts,
    base_phases: BTreeMap<String, RequestCounts>,
    /// The last [`SERIES_KEPT`] seconds.
    pub series: VecDeque<ImpactPoint>,
    pub mixed_windows: Vec<MixedWindow>,
    pub longest: Option<Stretch>,
    current: Option<Stretch>,
    /// Per frontend, when old tokens were first refused there.
    pub old_died: BTreeMap<String, DateTime<Utc>>,
    /// Why the meter is not running (the last `client_impact` said it is off).
    pub off: Option<String>,
}

impl ImpactView {
    /// Fold one summary journaled at `time`.
    pub fn apply(&mut self, c: &ClientImpact, time: DateTime<Utc>) {
        if let Some(why) = &c.off {
            self.off = Some(why.clone());
            return;
        }
        self.off = None;
        self.measured = true;
        if let Some(prev) = self.last.take()
            && prev.meter_started != c.meter_started
        {
            // A new meter: the previous one's counts are final.
            self.base_total = self.base_total.plus(&prev.total);
            for (p, n) in &prev.phases {
                let e = self.base_phases.entry(p.clone()).or_default();
                *e = e.plus(n);
            }
            self.current = None;
        }
        for s in &c.series {
            let at = c.meter_started + Duration::seconds(s.t() as i64);
            self.push_second(at, s);
        }
        for (fe, at) in &c.old_died {
            self.old_died.entry(fe.clone()).or_insert(*at);
        }
        self.last = Some(c.clone());
        self.last_at = Some(time);
    }

    fn push_second(&mut self, at: DateTime<Utc>, s: &ImpactSecond) {
        // A second already folded (a summary repeats none, but be safe): not counted twice.
        if self.series.back().is_some_and(|p| p.at >= at) {
            return;
        }
        for w in &mut self.mixed_windows {
            if w.overlaps(at) {
                w.requests += s.requests();
                w.failures += s.fresh_failures();
                w.old_failures += s.old_failures();
            }
        }
        if s.fresh_failures() > 0 {
            let prev = self.series.back().map(|p| p.at);
            match &mut self.current {
                Some(cur) if prev == Some(at - Duration::seconds(1)) => {
                    cur.secs += 1;
                    cur.failures += s.fresh_failures();
                }
                _ => {
                    self.current = Some(Stretch {
                        start: at,
                        secs: 1,
                        failures: s.fresh_failures(),
                    })
                }
            }
            if let Some(cur) = self.current
                && self.longest.is_none_or(|l| cur.secs > l.secs)
            {
                self.longest = Some(cur);
            }
        } else {
            self.current = None;
        }
        self.series.push_back(ImpactPoint {
            at,
            requests: s.requests(),
            fresh_failures: s.fresh_failures(),
            old_failures: s.old_failures(),
            crossed: s.crossed(),
        });
        while self.series.len() > SERIES_KEPT {
            self.series.pop_front();
        }
    }

    /// The pool is (or is not) mixed after an event journaled at `time`: open or close a window.
    pub fn track_mixed(&mut self, mixed: bool, time: DateTime<Utc>) {
        let open = self.mixed_windows.last().is_some_and(|w| w.end.is_none());
        if mixed && !open {
            self.mixed_windows.push(MixedWindow {
                start: time,
                end: None,
                requests: 0,
                failures: 0,
                old_failures: 0,
            });
            if self.mixed_windows.len() > WINDOWS_KEPT {
                self.mixed_windows.remove(0);
            }
        } else if !mixed
            && open
            && let Some(w) = self.mixed_windows.last_mut()
        {
            w.end = Some(time);
        }
    }

    /// Counts over every meter of the run.
    pub fn total(&self) -> RequestCounts {
        let cur = self.last.as_ref().map(|l| l.total).unwrap_or_default();
        self.base_total.plus(&cur)
    }

    /// Counts per phase label over every meter of the run.
    pub fn phases(&self) -> BTreeMap<String, RequestCounts> {
        let mut out = self.base_phases.clone();
        if let Some(l) = &self.last {
            for (p, n) in &l.phases {
                let e = out.entry(p.clone()).or_default();
                *e = e.plus(n);
            }
        }
        out
    }

    /// The mixed window open now.
    pub fn open_window(&self) -> Option<&MixedWindow> {
        self.mixed_windows.last().filter(|w| w.end.is_none())
    }

    /// Failures of fresh tokens in the mixed window open now: the meter's own count when its
    /// last summary had one, else what the folded series put in the window.
    pub fn open_window_failures(&self) -> Option<u64> {
        let w = self.open_window()?;
        Some(
            self.last
                .as_ref()
                .and_then(|l| l.mixed_failures)
                .unwrap_or(w.failures)
                .max(w.failures),
        )
    }

    /// The share of validations that failed (fresh tokens, not crossed) in `phase`, if any ran.
    pub fn failed_share(&self, phase: &str) -> Option<f64> {
        let p = self.phases();
        let c = p.get(phase)?;
        let v = c.validate_new.total() - c.validate_new.crossed;
        (v > 0).then(|| c.validate_new.failures() as f64 / v as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::Counts;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn summary(started: i64, series: &[(u64, u64, u64)], total_fail: u64) -> ClientImpact {
        ClientImpact {
            meter_started: at(started),
            phase: "step".into(),
            total: RequestCounts {
                validate_new: Counts {
                    validated: 10,
                    refused: total_fail,
                    ..Counts::default()
                },
                ..RequestCounts::default()
            },
            series: series
                .iter()
                .map(|&(t, r, f)| ImpactSecond(t, r, f, 0, 0))
                .collect(),
            ..ClientImpact::default()
        }
    }

    #[test]
    fn windows_stretches_and_meters_fold() {
        let mut v = ImpactView::default();
        v.track_mixed(false, at(0));
        assert!(v.mixed_windows.is_empty());
        v.track_mixed(true, at(3));
        v.track_mixed(true, at(4));
        v.apply(
            &summary(0, &[(0, 8, 0), (1, 8, 0), (2, 8, 0), (3, 8, 2)], 2),
            at(4),
        );
        assert_eq!(v.open_window_failures(), Some(2));
        v.track_mixed(false, at(6));
        v.apply(
            &summary(0, &[(4, 8, 3), (5, 8, 1), (6, 8, 0), (7, 8, 1)], 7),
            at(8),
        );
        assert_eq!(v.mixed_windows.len(), 1);
        let w = &v.mixed_windows[0];
        assert_eq!((w.start, w.end), (at(3), Some(at(6))));
        // Seconds 3, 4 and 5 overlap [3, 6); second 7 does not.
        assert_eq!((w.requests, w.failures), (24, 6));
        assert_eq!(v.open_window_failures(), None);
        let l = v.longest.unwrap();
        assert_eq!((l.start, l.secs, l.failures), (at(3), 3, 6));
        assert_eq!(v.total().validate_new.refused, 7);
        // A resumed run's new meter adds to the totals.
        v.apply(&summary(100, &[(0, 8, 0)], 1), at(101));
        assert_eq!(v.total().validate_new.refused, 8);
        assert_eq!(v.series.len(), 9);
    }

    #[test]
    fn the_series_is_bounded_and_the_event_is_compact() {
        let mut v = ImpactView::default();
        let series: Vec<(u64, u64, u64)> = (0..2000).map(|t| (t, 4, 0)).collect();
        v.apply(&summary(0, &series, 0), at(2000));
        assert_eq!(v.series.len(), SERIES_KEPT);
        assert_eq!(v.series.front().unwrap().at, at(2000 - SERIES_KEPT as i64));
        let json = serde_json::to_value(summary(0, &[(1, 8, 2)], 2)).unwrap();
        assert_eq!(json["series"], serde_json::json!([[1, 8, 2, 0, 0]]));
        // An older writer's summary without the optional fields still reads.
        let min = serde_json::json!({"meter_started": "2027-01-15T08:00:00Z"});
        let back: ClientImpact = serde_json::from_value(min).unwrap();
        assert_eq!(back.reason, ImpactReason::Periodic);
    }
}
