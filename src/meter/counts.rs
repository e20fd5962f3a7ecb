//! What the meter counts, and the snapshot it hands out: counts only (no token, no request),
//! serialisable as it will be journaled.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One synthetic client's request, by what it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// POST /v3/auth/tokens with the credentials.
    Issue,
    /// GET /v3/auth/tokens of the token this client issued last.
    ValidateNew,
    /// GET /v3/auth/tokens of a token issued as the meter started ("old tokens").
    ValidateOld,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 201 to an issue.
    Issued,
    /// 200 to a validation.
    Validated,
    /// 401 or 404: Keystone refused the credentials or the token.
    Refused,
    /// Any other answer (a 503 from a load balancer with no server, a 500), or no answer
    /// (connection refused or reset).
    Error,
    /// No answer within the per-request timeout.
    Timeout,
    /// 401 or 404 to a fresh token validated in a later phase than it was issued in (other than
    /// `mixed`): the change between the two phases (a pool swap) refused it. Counted apart, not
    /// as a fresh failure.
    Crossed,
}

impl Outcome {
    /// Whether this outcome is a failure a client would see (a crossed token is counted apart).
    pub fn failed(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Error | Outcome::Timeout)
    }
}

/// Outcomes of one kind of request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub issued: u64,
    pub validated: u64,
    pub refused: u64,
    pub error: u64,
    pub timeout: u64,
    /// Fresh tokens refused in a later phase than their issue's ([`Outcome::Crossed`]).
    #[serde(default)]
    pub crossed: u64,
}

impl Counts {
    pub fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Issued => self.issued += 1,
            Outcome::Validated => self.validated += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Error => self.error += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::Crossed => self.crossed += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.issued + self.validated + self.refused + self.error + self.timeout + self.crossed
    }

    /// These counts plus `o`'s.
    pub fn plus(&self, o: &Counts) -> Counts {
        Counts {
            issued: self.issued + o.issued,
            validated: self.validated + o.validated,
            refused: self.refused + o.refused,
            error: self.error + o.error,
            timeout: self.timeout + o.timeout,
            crossed: self.crossed + o.crossed,
        }
    }

    pub fn failures(&self) -> u64 {
        self.refused + self.error + self.timeout
    }
}

/// Outcomes by kind of request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub issue: Counts,
    pub validate_new: Counts,
    pub validate_old: Counts,
}

impl RequestCounts {
    pub fn add(&mut self, r: Request, o: Outcome) {
        match r {
            Request::Issue => self.issue.add(o),
            Request::ValidateNew => self.validate_new.add(o),
            Request::ValidateOld => self.validate_old.add(o),
        }
    }

    /// Requests sent (answered or not).
    pub fn requests(&self) -> u64 {
        self.issue.total() + self.validate_new.total() + self.validate_old.total()
    }

    /// Failures of issues and of validations of fresh tokens: what clients that
    /// re-authenticate see.
    pub fn fresh_failures(&self) -> u64 {
        self.issue.failures() + self.validate_new.failures()
    }

    /// Every failure, old tokens' included (crossed tokens are not failures: see
    /// [`RequestCounts::crossed`]).
    pub fn failures(&self) -> u64 {
        self.fresh_failures() + self.validate_old.failures()
    }

    /// Fresh tokens refused in a later phase than their issue's.
    pub fn crossed(&self) -> u64 {
        self.validate_new.crossed
    }

    /// These counts plus `o`'s.
    pub fn plus(&self, o: &RequestCounts) -> RequestCounts {
        RequestCounts {
            issue: self.issue.plus(&o.issue),
            validate_new: self.validate_new.plus(&o.validate_new),
            validate_old: self.validate_old.plus(&o.validate_old),
        }
    }
}

/// One phase (a label the caller sets: `preflight`, `mixed`, ...): its totals and per frontend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseCounts {
    pub total: RequestCounts,
    pub frontends: BTreeMap<String, RequestCounts>,
}

/// One second of the meter's run, by when its requests were sent (second 0 is the first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the meter started.
    pub t: u64,
    pub requests: u64,
    /// Failed issues and validations of fresh tokens.
    pub fresh_failures: u64,
    /// Failed validations of old tokens.
    pub old_failures: u64,
    /// Fresh tokens refused in a later phase than their issue's (not in `fresh_failures`).
    #[serde(default)]
    pub crossed: u64,
}

/// What the meter measured so far: counts only, never a token or a request. The lead journals
/// one every 10 s (with `series` cut to the seconds since the previous one, see
/// [`super::MeterHandle::snapshot_since`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeterSnapshot {
    /// Milliseconds since the meter started.
    pub elapsed_ms: u64,
    /// The configured rate, requests per second per frontend.
    pub rate: f64,
    /// The per-request timeout, milliseconds.
    pub timeout_ms: u64,
    /// The phase label requests are counted under now.
    pub phase: String,
    /// Old tokens held per frontend (issued as the meter started).
    pub old_tokens: BTreeMap<String, usize>,
    /// Per frontend, when an old token was first refused there (milliseconds since the meter
    /// started, by when the request was sent): "old tokens died".
    #[serde(default)]
    pub old_died_ms: BTreeMap<String, u64>,
    pub total: RequestCounts,
    pub frontends: BTreeMap<String, RequestCounts>,
    pub phases: BTreeMap<String, PhaseCounts>,
    /// Per second, from the second asked for (every second with a request sent).
    pub series: Vec<Second>,
}

/// The running tally behind snapshots.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) total: RequestCounts,
    pub(super) frontends: BTreeMap<String, RequestCounts>,
    pub(super) phases: BTreeMap<String, PhaseCounts>,
    pub(super) series: Vec<Second>,
    pub(super) old_tokens: BTreeMap<String, usize>,
    pub(super) old_died_ms: BTreeMap<String, u64>,
}

/// The longest series kept (six hours of seconds); older seconds are dropped first.
const SERIES_MAX: usize = 6 * 3600;

impl Tally {
    /// Count one request of `frontend` sent at second `t` under `phase`.
    pub(super) fn record(&mut self, frontend: &str, phase: &str, t: u64, r: Request, o: Outcome) {
        self.total.add(r, o);
        self.frontends
            .entry(frontend.to_string())
            .or_default()
            .add(r, o);
        let p = self.phases.entry(phase.to_string()).or_default();
        p.total.add(r, o);
        p.frontends
            .entry(frontend.to_string())
            .or_default()
            .add(r, o);
        // Requests complete out of order across frontends: find the second from the end.
        let pos = self.series.iter().rposition(|s| s.t <= t);
        let idx = match pos {
            Some(i) if self.series[i].t == t => i,
            Some(i) => {
                self.series.insert(
                    i + 1,
                    Second {
                        t,
                        ..Second::default()
                    },
                );
                i + 1
            }
            None => {
                self.series.insert(
                    0,
                    Second {
                        t,
                        ..Second::default()
                    },
                );
                0
            }
        };
        let s = &mut self.series[idx];
        s.requests += 1;
        if o == Outcome::Crossed {
            s.crossed += 1;
        } else if o.failed() {
            match r {
                Request::ValidateOld => s.old_failures += 1,
                _ => s.fresh_failures += 1,
            }
        }
        if self.series.len() > SERIES_MAX {
            self.series.remove(0);
        }
    }

    pub(super) fn snapshot(&self, from_second: u64) -> MeterSnapshot {
        MeterSnapshot {
            total: self.total,
            frontends: self.frontends.clone(),
            phases: self.phases.clone(),
            old_tokens: self.old_tokens.clone(),
            old_died_ms: self.old_died_ms.clone(),
            series: self
                .series
                .iter()
                .filter(|s| s.t >= from_second)
                .copied()
                .collect(),
            ..MeterSnapshot::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_by_frontend_phase_kind_and_second() {
        let mut t = Tally::default();
        t.record("lb1", "before", 0, Request::Issue, Outcome::Issued);
        t.record("lb1", "before", 0, Request::ValidateNew, Outcome::Validated);
        t.record("lb2", "mixed", 2, Request::ValidateNew, Outcome::Refused);
        // Out of order: second 1 completes after second 2.
        t.record("lb2", "mixed", 1, Request::ValidateOld, Outcome::Timeout);
        t.record("lb1", "mixed", 2, Request::Issue, Outcome::Error);
        assert_eq!(t.total.requests(), 5);
        assert_eq!(t.total.fresh_failures(), 2);
        assert_eq!(t.total.failures(), 3);
        assert_eq!(t.frontends["lb1"].requests(), 3);
        assert_eq!(t.phases["mixed"].total.failures(), 3);
        assert_eq!(t.phases["mixed"].frontends["lb2"].validate_new.refused, 1);
        assert_eq!(t.phases["before"].total.failures(), 0);
        let ts: Vec<(u64, u64, u64, u64)> = t
            .series
            .iter()
            .map(|s| (s.t, s.requests, s.fresh_failures, s.old_failures))
            .collect();
        assert_eq!(ts, vec![(0, 2, 0, 0), (1, 1, 0, 1), (2, 2, 2, 0)]);
        let snap = t.snapshot(1);
        assert_eq!(snap.series.len(), 2);
        assert_eq!(snap.total, t.total);
        // Serialised, a snapshot names outcomes, never a token.
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["total"]["validate_new"]["refused"], 1);
        let back: MeterSnapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn a_crossed_token_is_counted_apart_from_failures() {
        let mut t = Tally::default();
        t.record("lb1", "swap", 4, Request::ValidateNew, Outcome::Crossed);
        t.record("lb1", "swap", 4, Request::ValidateNew, Outcome::Refused);
        assert_eq!(t.total.crossed(), 1);
        assert_eq!(t.total.fresh_failures(), 1);
        assert_eq!(t.total.requests(), 2);
        assert_eq!((t.series[0].fresh_failures, t.series[0].crossed), (1, 1));
        // A snapshot written before `crossed` existed still reads.
        let old = serde_json::json!({"issued": 1, "validated": 2, "refused": 0, "error": 0, "timeout": 0});
        let c: Counts = serde_json::from_value(old).unwrap();
        assert_eq!(c.crossed, 0);
    }
}
