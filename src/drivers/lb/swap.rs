//! The halves swap (`lb.swap`): half A first goes from maint to drain (health-checked, no new
//! traffic) until it passed a check everywhere; then on every instance, in parallel, ONE
//! runtime-API write sets half A's servers ready and half B's drain (HAProxy runs `;`-separated
//! commands in order, microseconds apart), so no instance ever shows both halves taking new
//! traffic, nor neither; then, per
//! instance, half B goes to maint once its sessions reach 0; then the swap waits until half A
//! is UP (health-checked) on every instance.
//!
//! While it runs the swap is half B's guard: a B server seen ready again (a reload without a
//! server-state file) is set to maint at once, without waiting for its sessions. Half A is no
//! longer guarded from the swap's intent on; half B is guarded from its outcome on (the drain
//! holds until a read shows B in maint everywhere, as `lb.drain` does).

use super::{Change, LoadBalancer, read_all};
use crate::drivers::{DResult, Done};
use crate::engine::facts::*;
use std::time::{Duration, Instant};

/// How often the swap reads an instance while it waits (sessions, health).
const POLL: Duration = Duration::from_millis(100);

/// What happened to half B on one instance.
struct Drained {
    lb: String,
    /// From the swap's write to B held in maint on this instance.
    ms: u128,
    forced: bool,
    /// Times a B server was seen ready again and set to maint at once.
    reasserted: u32,
    error: Option<String>,
}

pub async fn swap<L: LoadBalancer>(
    lbs: &[L],
    a: &[String],
    b: &[String],
    drain_secs: u64,
    up_secs: u64,
    order: &tokio::sync::Mutex<()>,
) -> DResult<Done> {
    if lbs.is_empty() {
        return Ok(Done::ok(
            "no load balancers in the inventory",
            Observation::default(),
        ));
    }
    // Half A first goes from maint to drain: health-checked, no new traffic (no mixing). A
    // server leaving maint is DOWN (or `UP 1/3`) until a check passes: swapped in that state,
    // an instance would have no server able to take a request for a check interval or two
    // (seen on the lab: 2.5 s of 503s). The swap waits until A passed a check everywhere.
    let warm_start = Instant::now();
    if let Err(why) = warm_up(lbs, a, up_secs, order).await {
        let maint: Vec<Change> = a
            .iter()
            .map(|n| Change::new(n, AdminState::Maint))
            .collect();
        for lb in lbs {
            let _ = lb.apply(&maint).await;
        }
        let (rows, errors) = read_all(lbs).await;
        return Ok(Done::fail(
            format!("no swap: {why}"),
            "nothing was swapped: half A is back in maint and half B still serves; check GET /v3 and the keystone log on half A's nodes (and that HAProxy's health check reaches them), then resume",
        )
        .with(observation(&rows, &errors)));
    }
    let warm_ms = warm_start.elapsed().as_millis();
    let batch: Vec<Change> = a
        .iter()
        .map(|n| Change::new(n, AdminState::Ready))
        .chain(b.iter().map(|n| Change::new(n, AdminState::Drain)))
        .collect();
    // One write per instance, all at once, after any guard revert in progress.
    let writes = {
        let _order = order.lock().await;
        futures::future::join_all(lbs.iter().map(|lb| {
            let batch = &batch;
            async move {
                let r = lb.apply(batch).await;
                (Instant::now(), r)
            }
        }))
        .await
    };
    let first = writes.iter().map(|(t, _)| *t).min();
    let last = writes.iter().map(|(t, _)| *t).max();
    let gap_ms = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).as_millis() as u64,
        _ => 0,
    };
    let (took, failed): (Vec<_>, Vec<_>) =
        lbs.iter().zip(&writes).partition(|(_, (_, r))| r.is_ok());
    if !failed.is_empty() {
        let why: Vec<String> = failed
            .iter()
            .map(|(lb, (_, r))| {
                format!(
                    "{}: {}",
                    lb.name(),
                    r.as_ref().err().map(|e| e.msg.clone()).unwrap_or_default()
                )
            })
            .collect();
        let took: Vec<&str> = took.iter().map(|(lb, _)| lb.name()).collect();
        let (rows, errors) = read_all(lbs).await;
        let mut obs = observation(&rows, &errors);
        obs.swap_gap_ms = Some(gap_ms);
        return Ok(Done::fail(
            format!(
                "the swap write failed on {}{}",
                why.join("; "),
                if took.is_empty() {
                    " (no instance swapped: half B still serves everywhere)".to_string()
                } else {
                    format!(
                        " (swapped on {}: half A serves there, half B elsewhere; no instance mixes them)",
                        took.join(", ")
                    )
                }
            ),
            "check the named instance's admin socket (show stat), then resume: the swap is written again on every instance",
        )
        .with(obs));
    }
    let start = Instant::now();
    let drained =
        futures::future::join_all(lbs.iter().map(|lb| drain_b(lb, b, drain_secs, start))).await;
    // Half A UP (a passed health check) everywhere; half B kept in maint meanwhile.
    let deadline = Instant::now() + Duration::from_secs(up_secs);
    let (rows, errors, a_up) = loop {
        let (rows, errors) = read_all(lbs).await;
        for lb in lbs {
            let back: Vec<&String> = b
                .iter()
                .filter(|n| {
                    rows.iter()
                        .any(|r| r.lb == lb.name() && &&r.node == n && !r.out_of_pool())
                })
                .collect();
            if !back.is_empty() {
                let maint: Vec<Change> = back
                    .iter()
                    .map(|n| Change::new(n, AdminState::Maint))
                    .collect();
                let _ = lb.apply(&maint).await;
            }
        }
        let mine: Vec<&LbServer> = rows.iter().filter(|r| a.contains(&r.node)).collect();
        let up = errors.is_empty()
            && mine.len() == a.len() * lbs.len()
            && mine.iter().all(|r| r.checked_up());
        if up || Instant::now() >= deadline {
            break (rows, errors, up);
        }
        tokio::time::sleep(POLL).await;
    };
    let mut obs = observation(&rows, &errors);
    obs.swap_gap_ms = Some(gap_ms);
    let b_done: Vec<String> = drained
        .iter()
        .map(|d| {
            format!(
                "{} after {} ms{}{}",
                d.lb,
                d.ms,
                if d.forced { " (forced)" } else { "" },
                if d.reasserted > 0 {
                    format!(", seen ready again and set to maint {}×", d.reasserted)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let b_failed: Vec<String> = drained
        .iter()
        .filter_map(|d| d.error.as_ref().map(|e| format!("{}: {e}", d.lb)))
        .collect();
    let a_rows = |rows: &[LbServer]| {
        rows.iter()
            .filter(|r| a.contains(&r.node))
            .map(|r| format!("{} on {} {}", r.node, r.lb, r.status))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !b_failed.is_empty() {
        return Ok(Done::fail(
            format!(
                "pool swapped (swap gap {gap_ms} ms), but half B is not held out everywhere: {}",
                b_failed.join("; ")
            ),
            "set half B's servers to maint by hand on those instances (set server BACKEND/SERVER state maint), then resume",
        )
        .with(obs));
    }
    if !a_up {
        return Ok(Done::fail(
            format!(
                "pool swapped (swap gap {gap_ms} ms), but half A has no passed health check everywhere after {up_secs}s: {}{}",
                a_rows(&rows),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!("; {}", errors.join("; "))
                }
            ),
            "check GET /v3 and the keystone log on half A's nodes; half B is in maint and still on the old provider: to go back, set half B ready and half A maint by hand on every instance; then resume",
        )
        .with(obs));
    }
    Ok(Done::ok(
        format!(
            "pool swapped on {} instance(s) in one write each, swap gap {gap_ms} ms (first instance's write to the last's), after half A passed a health check while drained ({warm_ms} ms); half A ({}) UP everywhere after {} ms; half B ({}) in maint: {}",
            lbs.len(),
            a.join(", "),
            start.elapsed().as_millis(),
            b.join(", "),
            b_done.join("; ")
        ),
        obs,
    ))
}

/// Half A to drain on every instance, held there (a reload's ready is set back to drain) until
/// every A row shows a passed health check at full health (`DRAIN`, or no checks).
async fn warm_up<L: LoadBalancer>(
    lbs: &[L],
    a: &[String],
    up_secs: u64,
    order: &tokio::sync::Mutex<()>,
) -> Result<(), String> {
    let drain: Vec<Change> = a
        .iter()
        .map(|n| Change::new(n, AdminState::Drain))
        .collect();
    {
        let _order = order.lock().await;
        for (lb, r) in lbs
            .iter()
            .zip(futures::future::join_all(lbs.iter().map(|lb| lb.apply(&drain))).await)
        {
            r.map_err(|e| format!("{}: setting half A to drain: {}", lb.name(), e.msg))?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(up_secs);
    loop {
        let (rows, errors) = read_all(lbs).await;
        let mine: Vec<&LbServer> = rows.iter().filter(|r| a.contains(&r.node)).collect();
        for lb in lbs {
            if mine
                .iter()
                .any(|r| r.lb == lb.name() && r.admin != AdminState::Drain)
            {
                let _ = lb.apply(&drain).await;
            }
        }
        let warm = errors.is_empty()
            && mine.len() == a.len() * lbs.len()
            && mine.iter().all(|r| {
                r.admin == AdminState::Drain
                    && (r.status == "DRAIN" || r.oper == OperState::NoCheck)
            });
        if warm {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "half A did not pass a health check within {up_secs}s while drained: {}{}",
                mine.iter()
                    .map(|r| format!("{} on {} {}", r.node, r.lb, r.status))
                    .collect::<Vec<_>>()
                    .join(", "),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!("; {}", errors.join("; "))
                }
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Half B on one instance: wait until its sessions reach 0 (or `drain_secs`), then maint,
/// held until a read shows it; a B server seen ready meanwhile goes to maint at once.
async fn drain_b<L: LoadBalancer>(
    lb: &L,
    b: &[String],
    drain_secs: u64,
    start: Instant,
) -> Drained {
    let deadline = Instant::now() + Duration::from_secs(drain_secs);
    let mut forced = false;
    let mut reasserted = 0;
    let maint: Vec<Change> = b
        .iter()
        .map(|n| Change::new(n, AdminState::Maint))
        .collect();
    let done = |forced: bool, reasserted: u32, error: Option<String>| Drained {
        lb: lb.name().to_string(),
        ms: start.elapsed().as_millis(),
        forced,
        reasserted,
        error,
    };
    loop {
        let rows = match lb.read().await {
            Ok(rows) => rows,
            Err(e) if Instant::now() >= deadline => return done(forced, reasserted, Some(e.msg)),
            Err(_) => {
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let mine: Vec<&LbServer> = rows.iter().filter(|r| b.contains(&r.node)).collect();
        // A reload put a B server back to ready: mixed pool on this instance. Out at once.
        if mine.iter().any(|r| r.admin == AdminState::Ready) {
            reasserted += 1;
            break;
        }
        if mine.iter().map(|r| r.sessions).sum::<u64>() == 0 {
            break;
        }
        if Instant::now() >= deadline {
            forced = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for _ in 0..5 {
        if let Err(e) = lb.apply(&maint).await {
            return done(forced, reasserted, Some(e.msg));
        }
        match lb.read().await {
            Ok(rows) => {
                let held = b
                    .iter()
                    .all(|n| rows.iter().any(|r| &r.node == n && r.out_of_pool()));
                if held {
                    return done(forced, reasserted, None);
                }
                reasserted += 1;
            }
            Err(e) => return done(forced, reasserted, Some(e.msg)),
        }
    }
    done(
        forced,
        reasserted,
        Some("half B did not stay in maint after 5 rounds of `set server ... state maint`".into()),
    )
}

fn observation(rows: &[LbServer], errors: &[String]) -> Observation {
    Observation {
        lb: Some(rows.to_vec()),
        lb_errors: errors.to_vec(),
        lb_read_at: Some(chrono::Utc::now()),
        ..Default::default()
    }
}
