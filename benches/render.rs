//! One frame of the terminal UI at 64 nodes (issue 12, item 7): `cargo bench --bench render`.
//!
//! The states are folded from a real flagship run on a 64-node inventory (two load balancers)
//! driven by the engine against the tests' fake fleet (tests/support/fleet.rs), in memory: the
//! run stopped at the first mixed-pool HARD STOP, the rolling step half way (node 32 being
//! restarted, 31 flipped) and the run completed. Each is drawn on a ratatui TestBackend at
//! 80x24 and 200x60, many times; the median, p90 and worst frame are printed. A frame is what
//! the UI does per redraw: `Terminal::draw` (the whole screen built from the State, then
//! diffed against the previous buffer).
//!
//! Options (environment): `FRAMES` (default 400 per case), `NODES` (default 64).
//! A plain loop (harness = false): no timed assertion anywhere; the goal (< 2 ms a frame) is
//! read from the output.

#[allow(dead_code)]
#[path = "../tests/support/fleet.rs"]
mod fleet;

#[allow(dead_code)]
#[path = "../tests/support/engine.rs"]
mod engine;

use chrono::{DateTime, Utc};
use cutover::engine::Command;
use cutover::engine::state::{RunStatus, State};
use cutover::inventory::Inventory;
use cutover::tui::{App, Header, Mode};
use engine::Run;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// An inventory of `n` nodes behind two load-balancer instances (never connected to).
fn inventory(n: usize) -> Inventory {
    let mut yaml = String::from("cluster: bench-64\nnodes:\n");
    for i in 1..=n {
        yaml.push_str(&format!(
            "  - {{name: ks{i}, reach: local, keystone_url: \"http://10.0.{}.{}:5000\", keystone_user: keystone}}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    yaml.push_str(
        "load_balancers:\n\
         \x20 - {name: haproxy-a, reach: local, socket: /run/haproxy/admin.sock, backend: keystone_api}\n\
         \x20 - {name: haproxy-b, reach: local, socket: /run/haproxy/admin-b.sock, backend: keystone_api}\n\
         credentials: {cloud: prod}\n",
    );
    serde_yaml::from_str(&yaml).expect("the bench inventory parses")
}

/// Settle effects and confirm hard stops until `reached` holds. Panics if the run stops first.
fn drive(r: &mut Run, what: &str, reached: impl Fn(&Run) -> bool) {
    for _ in 0..200_000 {
        if reached(r) {
            return;
        }
        if r.settle_one().is_some() {
            continue;
        }
        if let Some(h) = r.state.hard_stop.clone() {
            r.when(Command::Confirm {
                id: h.id.clone(),
                who: engine::who(),
            });
            continue;
        }
        panic!("the run stopped before {what}: {:?}", r.state.status);
    }
    panic!("the run never reached {what}");
}

fn restarting(r: &Run, node: &str) -> bool {
    r.state
        .in_flight
        .values()
        .any(|f| f.intent.action == "service.restart" && f.intent.node.as_deref() == Some(node))
}

/// (label, state, the clock to draw it at) for the three moments.
fn states(n: usize) -> Vec<(&'static str, State, DateTime<Utc>)> {
    let mut rs = engine::run_started(&[]);
    let inv = inventory(n);
    rs.cluster = inv.cluster.clone();
    rs.inventory = inv;
    let mut r = Run::start_with(rs);
    let mut out = Vec::new();
    drive(&mut r, "the mixed-pool hard stop", |r| {
        r.state
            .hard_stop
            .as_ref()
            .is_some_and(|h| h.id == "mixed-pool")
    });
    out.push(("mixed-pool HARD STOP", r.state.clone(), r.now));
    let half = format!("ks{}", n / 2);
    drive(&mut r, "half way through the rolling step", |r| {
        r.state.hard_stop.is_none() && restarting(r, &half)
    });
    out.push(("rolling, half way", r.state.clone(), r.now));
    drive(&mut r, "the end of the run", |r| {
        r.state.status == RunStatus::Completed
    });
    out.push(("completed", r.state.clone(), r.now));
    out
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once with no flag:
    // then one frame per case is enough to show it still draws.
    let benching = std::env::args().any(|a| a == "--bench");
    let frames = if benching { env_or("FRAMES", 400) } else { 1 };
    let n = env_or("NODES", 64);
    let t = Instant::now();
    let cases = states(n);
    println!(
        "render: {n} nodes, 2 load balancers; states folded in {:.0} ms; {frames} frames per case",
        ms(t.elapsed())
    );
    println!(
        "{:<22} {:>8} {:>10} {:>10} {:>10}",
        "state", "size", "median ms", "p90 ms", "max ms"
    );
    let mut worst_median = 0.0f64;
    for (label, state, now) in &cases {
        for (w, h) in [(80u16, 24u16), (200, 60)] {
            let header = Header {
                journal: "/var/lib/cutover/journals/bench-64/run.journal.jsonl".into(),
                mode: Mode::Live,
                operator: "alice@bastion".into(),
            };
            let mut app = App::new(header).with_color(true).with_ascii(false);
            let mut term = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
            // The first frame lays everything out from nothing; the loop measures redraws,
            // each with a clock one second on (the header's clock changes every frame).
            term.draw(|f| app.draw(f, state, *now)).expect("a frame");
            let mut times = Vec::with_capacity(frames);
            for i in 0..frames {
                let at = *now + chrono::Duration::seconds(i as i64 + 1);
                let t = Instant::now();
                term.draw(|f| app.draw(f, black_box(state), at))
                    .expect("a frame");
                times.push(t.elapsed());
            }
            black_box(term.backend().buffer());
            times.sort();
            let median = times[times.len() / 2];
            let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
            let max = *times.last().expect("one frame at least");
            worst_median = worst_median.max(ms(median));
            println!(
                "{label:<22} {:>8} {:>10.3} {:>10.3} {:>10.3}",
                format!("{w}x{h}"),
                ms(median),
                ms(p90),
                ms(max)
            );
        }
    }
    println!("render: worst median {worst_median:.3} ms a frame (goal: < 2 ms)");
}
