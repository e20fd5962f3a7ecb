//! The client-impact meter: synthetic Keystone clients sent through every load balancer's
//! frontend while a change rolls, counting what clients see.
//!
//! Per frontend, one client loop at a fixed rate (default 4 requests per second, bounded): it
//! issues a token with the credentials, validates it, validates one of the "old tokens" (issued
//! through the same frontend as the meter started, the first requests of the loop), and again.
//! Each validation presents the token as its own X-Auth-Token and as X-Subject-Token, so a 401
//! or a 404 both mean the token was refused. Every request has a short timeout. Outcomes are
//! counted by kind (issued, validated, refused, error, timeout), per frontend and per phase
//! label the caller sets ([`MeterHandle::set_phase`]), with a per-second series.
//!
//! Guarantees: requests go to the frontends' URLs only, never to a node; one request at a time
//! per frontend, started at most `rate` times a second (a slow answer delays the next; missed
//! ticks are not made up); the loops stop when the handle is stopped or dropped. Tokens live in
//! memory only (zeroized when dropped) and never reach a snapshot.
//!
//! It does IO and knows nothing of the engine: the caller decides when to start it, which
//! phase it is, and what to do with [`MeterSnapshot`]s.

mod counts;

pub use counts::{Counts, MeterSnapshot, Outcome, PhaseCounts, Request, RequestCounts, Second};

use crate::inventory::credentials::{AuthCredentials, Scope};
use counts::Tally;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// Default rate, requests per second per frontend.
pub const DEFAULT_RATE: f64 = 4.0;
/// Bounds of the rate, requests per second per frontend.
pub const MIN_RATE: f64 = 0.1;
pub const MAX_RATE: f64 = 20.0;
/// The phase label the caller sets while the pool is mixed: a fresh token refused under it is a
/// failure, never [`Outcome::Crossed`].
pub const MIXED_PHASE: &str = "mixed";
/// The suffix of a phase label while the pool moves from one provider to the other at once
/// (the halves swap in flight): a fresh token refused then was issued before the move and
/// validated after it, whatever the labels say, so it is counted [`Outcome::Crossed`].
pub const MOVING_SUFFIX: &str = ":moving";

/// What a fresh token's validation counts as: a refusal in another phase than the token's
/// issue, or while the pool moves ([`MOVING_SUFFIX`]), is [`Outcome::Crossed`]; a refusal while
/// the pool is mixed ([`MIXED_PHASE`]) is that window's failure, wherever the token was issued.
pub fn classify(outcome: Outcome, issued_in: Option<&str>, phase: &str) -> Outcome {
    match (outcome, issued_in) {
        (Outcome::Refused, Some(p))
            if phase != MIXED_PHASE && (p != phase || phase.ends_with(MOVING_SUFFIX)) =>
        {
            Outcome::Crossed
        }
        (o, _) => o,
    }
}
/// The synthetic clients' User-Agent (what a node's request log shows).
pub const USER_AGENT: &str = concat!("cutover-meter/", env!("CARGO_PKG_VERSION"));
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds of the per-request timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of old tokens per frontend.
pub const DEFAULT_OLD_TOKENS: usize = 3;
/// Most old tokens per frontend.
pub const MAX_OLD_TOKENS: usize = 20;

/// A load balancer's frontend: its name (the inventory's load balancer) and the Keystone URL
/// clients use through it (API root or `.../v3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub name: String,
    pub url: String,
}

/// What to meter and how hard.
#[derive(Debug, Clone)]
pub struct MeterConfig {
    pub frontends: Vec<Frontend>,
    pub credentials: AuthCredentials,
    /// Requests per second per frontend, [`MIN_RATE`]..=[`MAX_RATE`].
    pub rate: f64,
    /// Per-request timeout, [`MIN_TIMEOUT`]..=[`MAX_TIMEOUT`].
    pub timeout: Duration,
    /// Old tokens to issue per frontend as the meter starts, 0..=[`MAX_OLD_TOKENS`].
    pub old_tokens: usize,
    /// The phase label requests are counted under until [`MeterHandle::set_phase`].
    pub phase: String,
}

impl MeterConfig {
    /// A meter of `frontends` with the defaults (4/s, 2 s timeout, 3 old tokens, phase `start`).
    pub fn new(frontends: Vec<Frontend>, credentials: AuthCredentials) -> MeterConfig {
        MeterConfig {
            frontends,
            credentials,
            rate: DEFAULT_RATE,
            timeout: DEFAULT_TIMEOUT,
            old_tokens: DEFAULT_OLD_TOKENS,
            phase: "start".into(),
        }
    }
}

/// Why a meter cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error(
        "the meter needs at least one frontend: name each load balancer's `frontend_url` in the inventory"
    )]
    NoFrontend,
    #[error("frontend `{name}`: {why}")]
    BadUrl { name: String, why: String },
    #[error("frontend `{0}` is listed twice")]
    Duplicate(String),
    #[error(
        "meter rate {0}/s is out of bounds: {MIN_RATE} to {MAX_RATE} requests per second per frontend"
    )]
    Rate(f64),
    #[error("meter timeout {0:?} is out of bounds: {MIN_TIMEOUT:?} to {MAX_TIMEOUT:?} per request")]
    Timeout(Duration),
    #[error("{0} old tokens per frontend is too many (at most {MAX_OLD_TOKENS})")]
    OldTokens(usize),
    #[error("cannot read the CA certificate {path}: {why}")]
    CaCert { path: String, why: String },
    #[error("cannot build the meter's HTTP client: {0}")]
    Client(String),
}

/// What the loops share with the handle.
struct Shared {
    started: Instant,
    tally: Mutex<Tally>,
    phase: Mutex<String>,
}

impl Shared {
    fn phase(&self) -> String {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, frontend: &str, phase: &str, sent: Instant, r: Request, o: Outcome) {
        let since = sent.duration_since(self.started);
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.record(frontend, phase, since.as_secs(), r, o);
        if r == Request::ValidateOld && o == Outcome::Refused {
            tally
                .old_died_ms
                .entry(frontend.to_string())
                .or_insert(since.as_millis() as u64);
        }
    }
}

/// A running meter. Dropping it stops every loop (requests in flight are abandoned).
pub struct MeterHandle {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    rate: f64,
    timeout: Duration,
}

impl MeterHandle {
    /// Count requests sent from now on under `phase`.
    pub fn set_phase(&self, phase: &str) {
        *self.shared.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.to_string();
    }

    /// Everything measured so far, with the whole series.
    pub fn snapshot(&self) -> MeterSnapshot {
        self.snapshot_since(0)
    }

    /// Everything measured so far, with the series from second `from` on (what a snapshot
    /// journaled every 10 s needs: the seconds since the previous one).
    pub fn snapshot_since(&self, from: u64) -> MeterSnapshot {
        let mut s = self
            .shared
            .tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot(from);
        s.elapsed_ms = self.shared.started.elapsed().as_millis() as u64;
        s.rate = self.rate;
        s.timeout_ms = self.timeout.as_millis() as u64;
        s.phase = self.shared.phase();
        s
    }

    /// Stop every loop and return the final snapshot.
    pub fn stop(mut self) -> MeterSnapshot {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.snapshot()
    }
}

impl Drop for MeterHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start the meter (on the current tokio runtime). Checks the configuration first; the loops
/// then run until the handle is stopped or dropped.
pub fn start(config: MeterConfig) -> Result<MeterHandle, MeterError> {
    if config.frontends.is_empty() {
        return Err(MeterError::NoFrontend);
    }
    if !(MIN_RATE..=MAX_RATE).contains(&config.rate) {
        return Err(MeterError::Rate(config.rate));
    }
    if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&config.timeout) {
        return Err(MeterError::Timeout(config.timeout));
    }
    if config.old_tokens > MAX_OLD_TOKENS {
        return Err(MeterError::OldTokens(config.old_tokens));
    }
    let mut roots = Vec::new();
    for f in &config.frontends {
        if roots.iter().any(|(n, _): &(String, String)| n == &f.name) {
            return Err(MeterError::Duplicate(f.name.clone()));
        }
        let root = crate::inventory::keystone_root(&f.url).map_err(|why| MeterError::BadUrl {
            name: f.name.clone(),
            why,
        })?;
        roots.push((f.name.clone(), root));
    }
    let http = client(&config.credentials, config.timeout)?;
    let shared = Arc::new(Shared {
        started: Instant::now(),
        tally: Mutex::new(Tally::default()),
        phase: Mutex::new(config.phase.clone()),
    });
    let creds = Arc::new(config.credentials);
    let period = Duration::from_secs_f64(1.0 / config.rate);
    let tasks = roots
        .into_iter()
        .map(|(name, root)| {
            let c = Client {
                name,
                root,
                http: http.clone(),
                creds: creds.clone(),
                shared: shared.clone(),
            };
            tokio::spawn(c.run(period, config.old_tokens))
        })
        .collect();
    Ok(MeterHandle {
        shared,
        tasks,
        rate: config.rate,
        timeout: config.timeout,
    })
}

fn client(c: &AuthCredentials, timeout: Duration) -> Result<reqwest::Client, MeterError> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .user_agent(USER_AGENT)
        .connect_timeout(timeout)
        .timeout(timeout);
    if c.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    if let Some(ca) = &c.cacert {
        let err = |why: String| MeterError::CaCert {
            path: ca.display().to_string(),
            why,
        };
        let pem = std::fs::read(ca).map_err(|e| err(e.to_string()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| MeterError::Client(e.to_string()))
}

/// A token held in memory only.
type Token = Zeroizing<String>;

/// One frontend's synthetic client.
struct Client {
    name: String,
    root: String,
    http: reqwest::Client,
    creds: Arc<AuthCredentials>,
    shared: Arc<Shared>,
}

/// What the client does at its next tick.
enum Next {
    Issue,
    ValidateNew,
    ValidateOld,
}

impl Client {
    async fn run(self, period: Duration, old_wanted: usize) {
        let mut ticks = tokio::time::interval(period);
        // A slow answer delays what follows; missed ticks are not made up in a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut old: Vec<Token> = Vec::new();
        let mut old_tries = 0;
        let mut old_next = 0usize;
        // The newest fresh token and the phase it was issued in.
        let mut fresh: Option<(Token, String)> = None;
        let mut next = Next::Issue;
        loop {
            ticks.tick().await;
            // The first requests issue the old tokens (one try each).
            if old_tries < old_wanted {
                old_tries += 1;
                if let Some((t, _)) = self.issue().await {
                    old.push(t);
                    self.shared
                        .tally
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .old_tokens
                        .insert(self.name.clone(), old.len());
                }
                continue;
            }
            next = match next {
                Next::Issue => {
                    fresh = self.issue().await;
                    if fresh.is_some() {
                        Next::ValidateNew
                    } else if old.is_empty() {
                        Next::Issue
                    } else {
                        Next::ValidateOld
                    }
                }
                Next::ValidateNew => {
                    if let Some((t, issued_in)) = &fresh {
                        self.validate(t, Request::ValidateNew, Some(issued_in))
                            .await;
                    }
                    if old.is_empty() {
                        Next::Issue
                    } else {
                        Next::ValidateOld
                    }
                }
                Next::ValidateOld => {
                    let t = &old[old_next % old.len()];
                    old_next = old_next.wrapping_add(1);
                    self.validate(t, Request::ValidateOld, None).await;
                    Next::Issue
                }
            };
        }
    }

    /// POST /v3/auth/tokens through the frontend; the token when it was issued, with the phase
    /// it was issued in.
    async fn issue(&self) -> Option<(Token, String)> {
        let phase = self.shared.phase();
        let sent = Instant::now();
        let resp = self
            .http
            .post(format!("{}/v3/auth/tokens", self.root))
            .json(&self.creds.password_auth_body(Scope::Project))
            .send()
            .await;
        let (outcome, token) = match resp {
            Ok(r) if r.status().as_u16() == 201 => {
                let token = r
                    .headers()
                    .get("x-subject-token")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| Zeroizing::new(v.to_string()));
                // Read the body: the request is over only then (and the connection reusable).
                match (token, r.bytes().await) {
                    (Some(t), Ok(_)) => (Outcome::Issued, Some(t)),
                    (_, Err(e)) if e.is_timeout() => (Outcome::Timeout, None),
                    _ => (Outcome::Error, None),
                }
            }
            Ok(r) => (status_outcome(r).await, None),
            Err(e) => (transport_outcome(&e), None),
        };
        self.shared
            .record(&self.name, &phase, sent, Request::Issue, outcome);
        token.map(|t| (t, phase))
    }

    /// GET /v3/auth/tokens of `token`, presented as its own X-Auth-Token. A fresh token
    /// (`issued_in` its issue's phase) refused in another phase than that is counted
    /// [`Outcome::Crossed`].
    async fn validate(&self, token: &Token, kind: Request, issued_in: Option<&String>) {
        let phase = self.shared.phase();
        let sent = Instant::now();
        let resp = self
            .http
            .get(format!("{}/v3/auth/tokens", self.root))
            .header("X-Auth-Token", token.as_str())
            .header("X-Subject-Token", token.as_str())
            .send()
            .await;
        let outcome = match resp {
            Ok(r) if r.status().as_u16() == 200 => match r.bytes().await {
                Ok(_) => Outcome::Validated,
                Err(e) if e.is_timeout() => Outcome::Timeout,
                Err(_) => Outcome::Error,
            },
            Ok(r) => status_outcome(r).await,
            Err(e) => transport_outcome(&e),
        };
        let outcome = classify(outcome, issued_in.map(String::as_str), &phase);
        self.shared.record(&self.name, &phase, sent, kind, outcome);
    }
}

/// A response that is not a success: refused (401, 404) or an error.
async fn status_outcome(r: reqwest::Response) -> Outcome {
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    match status {
        401 | 404 => Outcome::Refused,
        _ => Outcome::Error,
    }
}

fn transport_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else {
        Outcome::Error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> AuthCredentials {
        AuthCredentials {
            username: "admin".into(),
            password: "pw".into(),
            user_domain: "Default".into(),
            project_name: "admin".into(),
            project_domain: "Default".into(),
            cacert: None,
            insecure: false,
            source: "test".into(),
        }
    }

    #[test]
    fn a_refusal_is_crossed_across_phases_or_while_the_pool_moves_never_while_mixed() {
        use Outcome::*;
        // Issued and refused in one ordinary phase: a failure.
        assert_eq!(classify(Refused, Some("half-b"), "half-b"), Refused);
        // Issued before a phase change, refused after it: crossed.
        assert_eq!(classify(Refused, Some("swap"), "swap:moving"), Crossed);
        assert_eq!(classify(Refused, Some("swap:moving"), "half-b"), Crossed);
        // Both while the pool moves (issued before the write, refused after it): crossed.
        assert_eq!(
            classify(Refused, Some("swap:moving"), "swap:moving"),
            Crossed
        );
        // While mixed, a refusal is the window's failure, wherever the token was issued.
        assert_eq!(classify(Refused, Some("rolling"), MIXED_PHASE), Refused);
        assert_eq!(classify(Refused, Some(MIXED_PHASE), MIXED_PHASE), Refused);
        // Old tokens (no issue phase) and what is not a refusal keep their outcome.
        assert_eq!(classify(Refused, None, "swap:moving"), Refused);
        assert_eq!(classify(Validated, Some("swap"), "half-b"), Validated);
        assert_eq!(classify(Timeout, Some("swap"), "swap:moving"), Timeout);
    }

    #[tokio::test]
    async fn a_meter_refuses_what_it_cannot_keep_to() {
        let fe = |name: &str, url: &str| Frontend {
            name: name.into(),
            url: url.into(),
        };
        let start_with = |f: &dyn Fn(&mut MeterConfig)| {
            let mut c = MeterConfig::new(vec![fe("lb1", "http://127.0.0.1:1/v3")], creds());
            f(&mut c);
            start(c).err().map(|e| e.to_string())
        };
        assert!(
            start_with(&|c| c.frontends.clear())
                .unwrap()
                .contains("frontend_url")
        );
        assert!(
            start_with(&|c| c.rate = 50.0)
                .unwrap()
                .contains("out of bounds")
        );
        assert!(
            start_with(&|c| c.rate = 0.0)
                .unwrap()
                .contains("out of bounds")
        );
        assert!(
            start_with(&|c| c.timeout = Duration::from_secs(60))
                .unwrap()
                .contains("timeout")
        );
        assert!(
            start_with(&|c| c.old_tokens = 100)
                .unwrap()
                .contains("too many")
        );
        assert!(
            start_with(&|c| c.frontends.push(fe("lb1", "http://127.0.0.1:2")))
                .unwrap()
                .contains("listed twice")
        );
        assert!(
            start_with(&|c| c.frontends[0].url = "127.0.0.1:1".into())
                .unwrap()
                .contains("frontend `lb1`: `127.0.0.1:1` must start with http://")
        );
        // A good one starts (and stops with its handle: nothing listens on port 1).
        let h = start(MeterConfig::new(
            vec![fe("lb1", "http://127.0.0.1:1/v3")],
            creds(),
        ))
        .unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let s = h.stop();
        assert!(s.total.requests() >= 1, "{s:?}");
        assert_eq!(
            s.total.requests(),
            s.total.issue.error,
            "refused connections are errors"
        );
    }
}
