//! Health checks: `option httpchk GET /v3` on every server, `check inter 1s rise 2 fall 3`.

use super::instance::Lb;
use super::server::{AdminState, CheckStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The User-Agent of health checks (the Keystone stand-in does not log them).
pub const HEALTH_CHECK_AGENT: &str = "cutover-world-haproxy-check";
const CHECK_INTERVAL: Duration = Duration::from_millis(1000);
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// `GET /v3` on the server, as `option httpchk` does. Returns the status and its duration (ms).
pub(super) async fn http_check(port: u16) -> (CheckStatus, u64) {
    let started = Instant::now();
    let status = match tokio::time::timeout(CHECK_TIMEOUT, check_once(port)).await {
        Ok(s) => s,
        Err(_) => CheckStatus::L7Tout,
    };
    (status, started.elapsed().as_millis() as u64)
}

pub(super) async fn check_once(port: u16) -> CheckStatus {
    let mut stream =
        match tokio::time::timeout(CHECK_TIMEOUT, TcpStream::connect(("127.0.0.1", port))).await {
            Err(_) => return CheckStatus::L4Tout,
            Ok(Err(_)) => return CheckStatus::L4Con,
            Ok(Ok(s)) => s,
        };
    let req = format!(
        "GET /v3 HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {HEALTH_CHECK_AGENT}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(req.as_bytes()).await.is_err() {
        return CheckStatus::L7Rsp;
    }
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let code = text
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (200..400).contains(&c) => CheckStatus::L7Ok(c),
        Some(c) => CheckStatus::L7Sts(c),
        None => CheckStatus::L7Rsp,
    }
}

pub(super) async fn check_loop(lb: Arc<Lb>, idx: usize) {
    let port = lb.info.servers[idx].port;
    let mut reloads = lb.reloads.subscribe();
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first check ran at start
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = reloads.changed() => {
                if changed.is_err() {
                    return;
                }
                // A new process: its first check comes a full interval after it started.
                tick.reset();
                continue;
            }
        }
        let generation = {
            let st = lb.lock();
            if st.servers[idx].admin == AdminState::Maint {
                continue;
            }
            st.generation
        };
        let (status, ms) = http_check(port).await;
        let mut st = lb.lock();
        // A check that straddled a reload belongs to the old process.
        if st.generation == generation && st.servers[idx].record_check(status, ms, Instant::now()) {
            lb.save(&st);
        }
    }
}
