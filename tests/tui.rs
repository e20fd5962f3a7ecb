//! TUI tests: the real engine driven through the shared fake fleet (tests/support/fleet.rs: a
//! healthy three-node fleet, fixed times), stopped at the moments an operator cares about,
//! rendered on a TestBackend and snapshotted.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use cutover::engine::action::ActionSpec;
use cutover::engine::action::Service;
use cutover::engine::events::SCHEMA;
use cutover::engine::facts::*;
use cutover::engine::state::RunStatus;
use cutover::engine::{Command, Effect, Event, Failure, Outcome, RunStarted, State, decide};
use cutover::inventory::Inventory;
use cutover::runbook::Runbook;
use cutover::runtime::Request as UiRequest;
use cutover::tui::{App, Header, Mode, ReplayStatus};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use std::collections::{BTreeMap, VecDeque};
use support::fleet::{Fleet, Reply};

// ------------------------------------------------------------------------------------ driver

fn who() -> cutover::engine::Who {
    cutover::engine::Who::named("alice", "bastion")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 1, 0, 0).unwrap()
}

struct Sim {
    state: State,
    fleet: Fleet,
    now: DateTime<Utc>,
    queue: VecDeque<Effect>,
    events: Vec<(DateTime<Utc>, Event)>,
}

impl Sim {
    fn start() -> Sim {
        Sim::start_with(&BTreeMap::new())
    }

    fn start_with(overrides: &BTreeMap<String, String>) -> Sim {
        let loaded = Runbook::load("runbooks/fernet-to-jws.yaml".as_ref()).unwrap();
        let mut inv = Inventory::load("tests/fixtures/inventory-3.yaml".as_ref()).unwrap();
        // The closing note names the run's inventory file: one path on every machine.
        inv.loaded_from = Some("/etc/cutover/prod-east.yaml".into());
        let params = loaded.runbook.resolve_params(overrides).unwrap();
        let rs = RunStarted {
            schema: SCHEMA,
            run_id: "20250314T0100Z-7f3a".into(),
            runbook_name: loaded.runbook.name.clone(),
            runbook_title: loaded.runbook.title.clone(),
            runbook_sha256: "0".repeat(64),
            runbook_source: loaded.source.clone(),
            runbook_origin: loaded.origin.clone(),
            cluster: inv.cluster.clone(),
            inventory: inv.clone(),
            params,
            who: who(),
            plan: Vec::new(),
            plan_sha256: String::new(),
            compiled_by: String::new(),
        };
        let mut sim = Sim {
            state: State::default(),
            fleet: Fleet::new(&inv),
            now: t0(),
            queue: VecDeque::new(),
            events: Vec::new(),
        };
        let d = decide(&sim.state, Command::Start(Box::new(rs)), sim.now).unwrap();
        sim.take(d);
        sim
    }

    fn take(&mut self, d: cutover::engine::Decision) {
        for e in d.events {
            self.state.apply(&e, self.now);
            self.events.push((self.now, e));
        }
        self.queue.extend(d.effects);
    }

    /// Complete the oldest running effect against the fleet.
    fn step(&mut self) {
        let eff = self.queue.pop_front().expect("an effect to complete");
        let Reply {
            ok,
            summary,
            observed,
            failure,
            ms,
        } = self.fleet.run(&eff.spec);
        self.now += Duration::milliseconds(ms as i64);
        // The outcome names the node its intent named (a gate's probe is about the gate's node).
        let node = self
            .state
            .in_flight
            .get(&eff.id)
            .and_then(|f| f.intent.node.clone());
        let o = Outcome {
            id: eff.id,
            op: eff.op,
            node,
            ok,
            summary,
            duration_ms: ms,
            observed,
            failure,
        };
        let d = decide(&self.state, Command::Completed(o), self.now).unwrap();
        self.take(d);
    }

    /// Run the fleet until `pred` holds. Panics if the run stops (hard stop, halt) first.
    fn until(&mut self, what: &str, pred: impl Fn(&State) -> bool) {
        for _ in 0..2000 {
            if pred(&self.state) {
                return;
            }
            if self.queue.is_empty() {
                panic!(
                    "stuck before `{what}`: {:?}, hard stop {:?}",
                    self.state.status,
                    self.state.hard_stop.as_ref().map(|h| &h.id)
                );
            }
            self.step();
        }
        panic!("never reached `{what}`");
    }

    /// Run until the hard stop `id` is raised.
    fn until_stop(&mut self, id: &str) {
        self.until(id, |s| s.hard_stop.as_ref().is_some_and(|h| h.id == id));
    }

    /// The operator reads for a while, then presses Shift+Y.
    fn confirm(&mut self, id: &str) {
        self.until_stop(id);
        self.now += Duration::seconds(40);
        let d = decide(
            &self.state,
            Command::Confirm {
                id: id.into(),
                who: who(),
            },
            self.now,
        )
        .unwrap();
        self.take(d);
    }

    fn running(&self, action: &str, node: &str) -> bool {
        self.state
            .in_flight
            .values()
            .any(|f| f.intent.action == action && f.intent.node.as_deref() == Some(node))
    }
}

fn sim_start() -> Sim {
    let mut s = Sim::start();
    // Preflight's first probe came back; the providers-agree probe is running.
    s.until("first probe read", |st| {
        st.nodes.values().all(|n| n.facts.is_some()) && !st.in_flight.is_empty()
    });
    s
}

fn sim_mixed_stop() -> Sim {
    let mut s = Sim::start();
    s.confirm("jws-payload-readable");
    s.until_stop("mixed-pool");
    s
}

fn sim_mid_rolling() -> Sim {
    let mut s = sim_mixed_stop();
    s.confirm("mixed-pool");
    s.until("ks2 restarting", |st| {
        st.in_flight.values().any(|f| {
            f.intent.action == "service.restart" && f.intent.node.as_deref() == Some("ks2")
        })
    });
    assert!(s.running("service.restart", "ks2"));
    s
}

/// haproxy-a as Debian ships it (no server-state-file); haproxy-b with a state file loaded
/// globally, and ks3 without a health check.
fn reload_facts() -> BTreeMap<String, ReloadFacts> {
    BTreeMap::from([
        (
            "haproxy-a".to_string(),
            ReloadFacts {
                config: Some("/etc/haproxy/haproxy.cfg".into()),
                known: true,
                checks: Some(true),
                note: "no server-state-file".into(),
                ..Default::default()
            },
        ),
        (
            "haproxy-b".to_string(),
            ReloadFacts {
                config: Some("/etc/haproxy/haproxy.cfg".into()),
                known: true,
                state_file: Some("/var/lib/haproxy/server-state".into()),
                load_state: Some("global".into()),
                survives: true,
                checks: Some(false),
                unchecked: vec!["ks3".into()],
                note: "server-state-file /var/lib/haproxy/server-state, load global".into(),
            },
        ),
    ])
}

/// Mid-rolling, with the load balancers' configs read by the full probes.
fn sim_reload_mid_rolling() -> Sim {
    let mut s = Sim::start();
    s.fleet.reload = reload_facts();
    s.confirm("jws-payload-readable");
    s.confirm("mixed-pool");
    s.until("ks2 restarting", |st| {
        st.in_flight.values().any(|f| {
            f.intent.action == "service.restart" && f.intent.node.as_deref() == Some("ks2")
        })
    });
    s
}

fn sim_failed() -> Sim {
    let mut s = Sim::start();
    s.fleet.fail_restart.push("ks2".into());
    s.confirm("jws-payload-readable");
    s.confirm("mixed-pool");
    s.until("halted", |st| matches!(st.status, RunStatus::Halted { .. }));
    s
}

fn sim_finished() -> Sim {
    let mut s = Sim::start();
    s.confirm("jws-payload-readable");
    s.confirm("mixed-pool");
    s.confirm("mixed-pool");
    s.until("completed", |st| st.status == RunStatus::Completed);
    s
}

// ------------------------------------------------------------------------------------ rendering

fn header(mode: Mode) -> Header {
    Header {
        journal: "/var/lib/cutover/journals/prod-east/20250314T0100Z-7f3a.journal.jsonl".into(),
        mode,
        operator: "alice@bastion".into(),
    }
}

fn render(
    app: &mut App,
    state: &State,
    now: DateTime<Utc>,
    w: u16,
    h: u16,
) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| app.draw(f, state, now)).unwrap();
    term
}

fn screen(term: &Terminal<TestBackend>) -> String {
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..buf.area.width {
            let c = &buf[(x, y)];
            if skip > 0 {
                skip -= 1;
                continue;
            }
            line.push_str(c.symbol());
            skip = ratatui::text::Span::raw(c.symbol().to_string())
                .width()
                .saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn shot(app: &mut App, state: &State, now: DateTime<Utc>, w: u16, h: u16) -> String {
    screen(&render(app, state, now, w, h))
}

fn live() -> App {
    App::new(header(Mode::Live))
        .with_color(true)
        .with_ascii(false)
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(
        KeyCode::Char(c),
        if c.is_ascii_uppercase() {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        },
    )
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

macro_rules! snap_both {
    ($name:literal, $mk:expr, $state:expr, $now:expr) => {{
        let mut a = $mk;
        insta::assert_snapshot!(concat!($name, "_80x24"), shot(&mut a, $state, $now, 80, 24));
        let mut a = $mk;
        insta::assert_snapshot!(
            concat!($name, "_160x48"),
            shot(&mut a, $state, $now, 160, 48)
        );
    }};
}

// ------------------------------------------------------------------------------------ snapshots

#[test]
fn snapshot_start() {
    let s = sim_start();
    snap_both!("start", live(), &s.state, s.now + Duration::seconds(1));
}

#[test]
fn snapshot_mid_rolling() {
    let s = sim_mid_rolling();
    snap_both!(
        "mid_rolling",
        live(),
        &s.state,
        s.now + Duration::seconds(4)
    );
}

#[test]
fn snapshot_mixed_pool_hard_stop() {
    let s = sim_mixed_stop();
    snap_both!(
        "mixed_pool_hard_stop",
        live(),
        &s.state,
        s.now + Duration::seconds(3)
    );
}

#[test]
fn snapshot_failed_node() {
    let s = sim_failed();
    snap_both!(
        "failed_node",
        live(),
        &s.state,
        s.now + Duration::seconds(20)
    );
}

#[test]
fn snapshot_finished() {
    let s = sim_finished();
    assert!(s.state.matrix.as_ref().is_some_and(|m| m.all_ok()));
    snap_both!("finished", live(), &s.state, s.now + Duration::seconds(48));
}

#[test]
fn snapshot_replay() {
    let s = sim_finished();
    let total = s.events.len();
    let pos = 41.min(total);
    let mut state = State::default();
    for (t, e) in &s.events[..pos] {
        state.apply(e, *t);
    }
    let mk = || {
        let mut a = App::new(header(Mode::Replay))
            .with_color(true)
            .with_ascii(false);
        a.set_replay_status(ReplayStatus {
            position: pos,
            total,
            speed: 2.0,
            playing: true,
            resolution: None,
        });
        a
    };
    snap_both!("replay", mk(), &state, t0() + Duration::days(1));
}

#[test]
fn snapshot_help() {
    let s = sim_start();
    let mk = || {
        let mut a = live();
        assert_eq!(a.handle_key(key('?'), &s.state, s.now), None);
        a
    };
    snap_both!("help", mk(), &s.state, s.now + Duration::seconds(1));
}

// ------------------------------------------------------------------------------------ keys

#[test]
fn hard_stop_swallows_keys_and_needs_capital_y() {
    let s = sim_mixed_stop();
    let st = &s.state;
    let mut app = live();
    for k in [
        code(KeyCode::Enter),
        key('y'),
        key('j'),
        key('p'),
        key('c'),
        code(KeyCode::Tab),
        code(KeyCode::Esc),
    ] {
        assert_eq!(
            app.handle_key(k, st, s.now),
            None,
            "{k:?} must do nothing at a hard stop"
        );
    }
    assert!(
        app.overlay().is_none(),
        "no overlay opened behind the hard stop"
    );
    // A held key auto-repeats: a repeat is not a deliberate press.
    let mut rep = key('Y');
    rep.kind = KeyEventKind::Repeat;
    assert_eq!(app.handle_key(rep, st, s.now), None);
    assert_eq!(
        app.handle_key(key('Y'), st, s.now),
        Some(UiRequest::Confirm {
            id: st.hard_stop.as_ref().unwrap().key()
        })
    );
    assert_eq!(
        app.handle_key(key('n'), st, s.now),
        Some(UiRequest::Decline {
            id: st.hard_stop.as_ref().unwrap().key()
        })
    );
    // No in-doubt here: D does nothing.
    assert_eq!(app.handle_key(key('D'), st, s.now), None);
}

#[test]
fn quit_asks_while_an_action_runs() {
    let s = sim_mid_rolling();
    let mut app = live();
    assert_eq!(app.handle_key(key('q'), &s.state, s.now), None);
    assert_eq!(app.overlay(), Some(&cutover::tui::Overlay::QuitConfirm));
    let text = shot(&mut app, &s.state, s.now, 80, 24);
    assert!(
        text.contains("An action is running on ks2: service.restart.")
            && text.contains("Quit after it"),
        "{text}"
    );
    // n keeps the UI; q again asks again; y quits.
    assert_eq!(app.handle_key(key('n'), &s.state, s.now), None);
    assert!(app.overlay().is_none());
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle_key(ctrl_c, &s.state, s.now), None);
    assert_eq!(app.overlay(), Some(&cutover::tui::Overlay::QuitConfirm));
    assert_eq!(
        app.handle_key(key('y'), &s.state, s.now),
        Some(UiRequest::Quit)
    );
}

#[test]
fn quit_without_running_action_is_immediate() {
    let s = sim_finished();
    let mut app = live();
    assert_eq!(
        app.handle_key(key('q'), &s.state, s.now),
        Some(UiRequest::Quit)
    );
}

#[test]
fn pause_and_continue_only_when_they_apply() {
    let s = sim_mid_rolling();
    let mut app = live();
    assert_eq!(app.handle_key(key('c'), &s.state, s.now), None);
    assert_eq!(
        app.handle_key(key('p'), &s.state, s.now),
        Some(UiRequest::Pause)
    );
    let f = sim_failed();
    let mut app = live();
    assert_eq!(app.handle_key(key('p'), &f.state, f.now), None);
    assert_eq!(
        app.handle_key(key('c'), &f.state, f.now),
        Some(UiRequest::Continue)
    );
}

#[test]
fn replay_is_read_only() {
    let s = sim_mixed_stop();
    let mut app = App::new(header(Mode::Replay)).with_ascii(false);
    for k in [key('Y'), key('n'), key('p'), key('c'), key('q')] {
        assert_eq!(app.handle_key(k, &s.state, s.now), None, "{k:?}");
    }
}

#[test]
fn no_color_means_no_colour() {
    for s in [sim_mixed_stop(), sim_failed(), sim_finished()] {
        let mut app = App::new(header(Mode::Live))
            .with_color(false)
            .with_ascii(false);
        let term = render(&mut app, &s.state, s.now, 100, 30);
        for c in term.backend().buffer().content() {
            assert_eq!(c.fg, Color::Reset, "fg colour in {:?}", c.symbol());
            assert_eq!(c.bg, Color::Reset, "bg colour in {:?}", c.symbol());
        }
    }
    // And with colour, there is some: the test above is not vacuous.
    let s = sim_failed();
    let term = render(&mut live(), &s.state, s.now, 100, 30);
    assert!(
        term.backend()
            .buffer()
            .content()
            .iter()
            .any(|c| c.fg != Color::Reset)
    );
}

// ------------------------------------------------------------------------------------ the real loop

/// The child half of `live_loop_in_a_pty`: run_live on a real terminal, with a fake runtime that
/// ends when it receives Quit. The parent re-executes this test binary with CUTOVER_TUI_CHILD
/// set; in an ordinary test run it returns at once (and passes), so nothing is reported ignored.
#[test]
fn live_loop_child() {
    if std::env::var_os("CUTOVER_TUI_CHILD").is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = sim_mid_rolling();
        let (tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(s.state.clone()));
        let (rtx, mut rrx) = tokio::sync::mpsc::unbounded_channel::<UiRequest>();
        let runtime = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(r) = rrx.recv().await {
                got.push(r.clone());
                if r == UiRequest::Quit {
                    break;
                }
            }
            drop(tx); // the runtime ends
            got
        });
        cutover::tui::run_live(rx, rtx, header(Mode::Live))
            .await
            .unwrap();
        let got = runtime.await.unwrap();
        println!("\r\nCHILD-DONE {got:?}\r");
    });
}

fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn spawn_child() -> expectrl::session::OsSession {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "live_loop_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CUTOVER_TUI_CHILD", "1")
    .env("TERM", "xterm-256color");
    let mut p = expectrl::Session::spawn(cmd).unwrap();
    p.get_process_mut().set_window_size(80, 24).unwrap();
    p.set_expect_timeout(Some(std::time::Duration::from_secs(20)));
    p
}

/// run_live in a pseudo-terminal: it draws, idles without burning CPU, asks before quitting
/// while an action runs, sends Quit, returns when the runtime ends and restores the terminal.
#[test]
fn live_loop_in_a_pty() {
    use expectrl::Expect;
    let mut p = spawn_child();
    p.expect("RUNNING").unwrap();
    // Idle for 5 s: at most 1% of a CPU (clock ticks are 1/100 s).
    let pid = p.get_process().pid().as_raw();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = cpu_ticks(pid);
    let mut sink = [0u8; 65536];
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        while matches!(p.try_read(&mut sink), Ok(n) if n > 0) {}
    }
    let used = cpu_ticks(pid) - before;
    assert!(used <= 5, "idle UI used {used} ticks of CPU in 5 s");
    p.send("q").unwrap();
    p.expect("Quit after it").unwrap();
    p.send("y").unwrap();
    let done = p.expect("CHILD-DONE").unwrap();
    let seen = String::from_utf8_lossy(done.before()).to_string();
    assert!(seen.contains("\u{1b}[?1049l"), "left the alternate screen");
    p.expect("[Quit]").unwrap();
}

/// SIGTERM: the UI sends Quit and gives the terminal back.
#[test]
fn live_loop_sigterm_quits_and_restores() {
    use expectrl::Expect;
    let mut p = spawn_child();
    p.expect("RUNNING").unwrap();
    p.get_process_mut()
        .signal(expectrl::process::unix::Signal::SIGTERM)
        .unwrap();
    let done = p.expect("CHILD-DONE").unwrap();
    let seen = String::from_utf8_lossy(done.before()).to_string();
    assert!(seen.contains("\u{1b}[?1049l"), "left the alternate screen");
    p.expect("[Quit]").unwrap();
}

// ------------------------------------------------------------------------------------ in doubt, replay, details

/// A crash while ks2 restarts: on resume the restart is in doubt (not idempotent), and the hard
/// stop offers D (mark done) besides Shift+Y (redo).
#[test]
fn in_doubt_hard_stop_offers_mark_done() {
    let mut s = sim_mid_rolling();
    s.now += Duration::seconds(30);
    let d = decide(
        &s.state,
        Command::Resume {
            who: who(),
            drift: vec![],
            observed: Default::default(),
        },
        s.now,
    )
    .unwrap();
    s.take(d);
    let hs = s.state.hard_stop.clone().expect("an in-doubt hard stop");
    assert_eq!(hs.id, "in-doubt");
    let mut app = live();
    let text = shot(&mut app, &s.state, s.now, 80, 24);
    assert!(text.contains("D: mark done"), "{text}");
    assert_eq!(app.handle_key(key('d'), &s.state, s.now), None);
    assert_eq!(
        app.handle_key(key('D'), &s.state, s.now),
        Some(UiRequest::MarkDone { id: hs.key() })
    );
    assert_eq!(
        app.handle_key(key('Y'), &s.state, s.now),
        Some(UiRequest::Confirm { id: hs.key() })
    );
}

/// A resume with drift: the RESUMED banner lists what changed since the journal, a `drift` hard
/// stop shows it before anything moves, the interrupted restart reads "in doubt" (no clock), and
/// quitting does not ask to wait for it. Once the operator decides, the banner goes.
#[test]
fn resumed_run_shows_drift_until_the_operator_decides() {
    let mut s = sim_mid_rolling();
    s.now += Duration::seconds(30);
    let drift = vec![
        "ks3: keystone.conf provider was fernet, now jws".to_string(),
        "ks3: on haproxy-a was UP (Ready), now MAINT (Maint)".to_string(),
    ];
    let d = decide(
        &s.state,
        Command::Resume {
            who: who(),
            drift: drift.clone(),
            observed: Default::default(),
        },
        s.now,
    )
    .unwrap();
    s.take(d);
    let mut app = App::new(header(Mode::Resumed))
        .with_color(false)
        .with_ascii(false);
    let wide = shot(&mut app, &s.state, s.now, 120, 40);
    assert!(wide.contains("RESUMED  by alice@bastion"), "{wide}");
    for d in &drift {
        assert!(
            wide.contains(d.as_str()),
            "drift line `{d}` on screen:\n{wide}"
        );
    }
    assert!(
        wide.contains("in doubt: the run stopped mid-action"),
        "{wide}"
    );
    insta::assert_snapshot!("resumed_drift_in_doubt_120x40", wide);
    let narrow = shot(&mut app, &s.state, s.now, 80, 24);
    assert!(narrow.contains("HARD STOP  drift"), "{narrow}");
    for d in &drift {
        assert!(
            narrow.contains(d.as_str()),
            "the drift hard stop lists `{d}` at 80x24:\n{narrow}"
        );
    }
    insta::assert_snapshot!("resumed_drift_in_doubt_80x24", narrow);
    // Declining leaves the run paused; the in-doubt restart is not "running": q quits at once.
    let d = decide(
        &s.state,
        Command::Decline {
            id: "drift".into(),
            who: who(),
        },
        s.now,
    )
    .unwrap();
    s.take(d);
    assert_eq!(
        app.handle_key(key('q'), &s.state, s.now),
        Some(UiRequest::Quit)
    );
    let after = shot(&mut app, &s.state, s.now, 120, 40);
    assert!(!after.contains("RESUMED  by"), "{after}");
}

#[test]
fn replay_player_folds_steps_back_and_follows() {
    use cutover::tui::ReplayControl as C;
    use cutover::tui::replay::Player;
    let s = sim_finished();
    let all = s.events.clone();
    let mut p = Player::new(all[..50].to_vec(), 1.0, false);
    assert_eq!((p.position(), p.total()), (1, 50));
    for _ in 0..10 {
        p.control(C::Forward);
    }
    assert_eq!(p.position(), 11);
    let fwd = format!(
        "{:?}",
        p.state().log.iter().map(|l| &l.text).collect::<Vec<_>>()
    );
    p.control(C::Forward);
    p.control(C::Back);
    let back = format!(
        "{:?}",
        p.state().log.iter().map(|l| &l.text).collect::<Vec<_>>()
    );
    assert_eq!(fwd, back, "back refolds to the same state");
    assert_eq!(p.state().events, 11);
    p.control(C::Faster);
    p.control(C::Faster);
    assert_eq!(p.status().speed, 4.0);
    // Gaps are the journal's, capped at 2 s, divided by the speed.
    assert!(p.gap() <= std::time::Duration::from_millis(500));
    p.control(C::End);
    assert_eq!(p.position(), 50);
    p.control(C::Start);
    // The first event, held (position 0 would be a blank screen).
    assert_eq!((p.position(), p.state().events), (1, 1));
    assert!(!p.status().playing);
    // Follow: starts at the end, new events are shown as they come.
    let mut f = Player::new(all[..50].to_vec(), 1.0, true);
    assert_eq!(f.position(), 50);
    f.append(all[50..60].to_vec());
    assert_eq!((f.position(), f.total()), (60, 60));
}

#[test]
fn replay_shows_who_confirmed_a_hard_stop() {
    use cutover::tui::replay::Player;
    let s = sim_finished();
    let at = s
        .events
        .iter()
        .position(|(_, e)| matches!(e, Event::HardStopRaised(h) if h.id == "mixed-pool"))
        .unwrap();
    let mut p = Player::new(s.events.clone(), 1.0, false);
    p.seek(at + 1);
    assert!(p.state().hard_stop.is_some());
    let mut app = App::new(header(Mode::Replay))
        .with_color(true)
        .with_ascii(false);
    app.set_replay_status(p.status());
    let text = shot(&mut app, p.state(), t0(), 80, 24);
    assert!(text.contains("HARD STOP (replay)"), "{text}");
    assert!(
        text.contains("confirmed (Shift+Y) by alice@bastion at 01:01:54"),
        "{text}"
    );
    assert!(
        !text.contains("Shift+Y proceed"),
        "read-only: no proceed key\n{text}"
    );
}

#[test]
fn details_popup_shows_a_node() {
    let s = sim_failed();
    let mut app = live();
    app.handle_key(code(KeyCode::Tab), &s.state, s.now);
    app.handle_key(key('j'), &s.state, s.now);
    app.handle_key(code(KeyCode::Enter), &s.state, s.now);
    let text = shot(&mut app, &s.state, s.now, 80, 24);
    assert!(text.contains(" ks2 "), "{text}");
    assert!(text.contains("keystone did not answer GET /v3"), "{text}");
    assert!(text.contains("haproxy-a"), "{text}");
    insta::assert_snapshot!("details_node_80x24", text);
    assert_eq!(app.handle_key(code(KeyCode::Esc), &s.state, s.now), None);
    assert!(app.overlay().is_none());
}

/// What a reload of each load balancer would do, read from its config by the preflight: a
/// marker by the instance's column (`⚠reload` when a reload puts drained nodes back), each
/// instance's facts in a node's details, a line in the help.
#[test]
fn reload_facts_show_by_the_load_balancer_columns_and_in_the_details() {
    let s = sim_reload_mid_rolling();
    assert_eq!(s.state.lb_reload, reload_facts());
    let now = s.now + Duration::seconds(4);
    let mut app = live();
    let wide = shot(&mut app, &s.state, now, 120, 40);
    assert!(wide.contains("haproxy-a ⚠reload"), "{wide}");
    assert!(!wide.contains("haproxy-b ⚠reload"), "{wide}");
    insta::assert_snapshot!("reload_mid_rolling_120x40", wide);
    let narrow = shot(&mut app, &s.state, now, 80, 24);
    assert!(narrow.contains("⚠…roxy-a"), "{narrow}");
    insta::assert_snapshot!("reload_mid_rolling_80x24", narrow);
    // The preflight's probe said it in the log.
    assert!(
        s.state.log.iter().any(|l| l.text.contains(
            "haproxy-a: a reload loses MAINT (no server-state-file); haproxy-b: a reload keeps \
             MAINT only if the state is saved before the reload (server-state-file \
             /var/lib/haproxy/server-state, load global); no health check on ks3: lb.ready \
             waits for plain UP"
        )),
        "no reload clauses in the log"
    );
    // A node's details list each instance's facts.
    let mut app = live();
    app.handle_key(code(KeyCode::Tab), &s.state, now);
    app.handle_key(code(KeyCode::Enter), &s.state, now);
    let details = shot(&mut app, &s.state, now, 120, 40);
    for want in [
        "On reload (from each instance's config)",
        "a reload loses MAINT (no server-state-file)",
        "no health check on ks3",
    ] {
        assert!(details.contains(want), "no `{want}` in\n{details}");
    }
    insta::assert_snapshot!("reload_details_120x40", details);
    // The help says what the marker means, once there is one.
    let mut app = live();
    app.handle_key(key('?'), &s.state, now);
    let help = shot(&mut app, &s.state, now, 80, 24);
    assert!(
        help.contains("⚠reload: a reload of that load balancer puts drained"),
        "{help}"
    );
    insta::assert_snapshot!("reload_help_80x24", help);
}

/// The first hard stop an operator meets (a runbook `confirm`, text from a YAML block).
#[test]
fn snapshot_payload_hard_stop_80x24() {
    let mut s = Sim::start();
    s.until_stop("jws-payload-readable");
    insta::assert_snapshot!(
        "payload_hard_stop_80x24",
        shot(&mut live(), &s.state, s.now, 80, 24)
    );
}

// ------------------------------------------------------------------ the operator's tour (issue 9)

/// The rows of a screen that hold `needle`.
fn rows_with<'a>(screen: &'a str, needle: &str) -> Vec<&'a str> {
    screen.lines().filter(|l| l.contains(needle)).collect()
}

/// At 80×24 a HARD STOP keeps the fleet in view: the pool banner and one line per node (name,
/// its state on each load balancer, provider, keys, last direct token) above the box, whose
/// text scrolls with a visible "more".
#[test]
fn hard_stop_at_80x24_keeps_the_fleet_in_view() {
    let s = sim_mixed_stop();
    let mut app = live();
    let text = shot(&mut app, &s.state, s.now, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    let box_top = lines
        .iter()
        .position(|l| l.contains("HARD STOP  mixed-pool"))
        .unwrap_or_else(|| panic!("no box:\n{text}"));
    let pool = lines.iter().position(|l| l.contains("POOL:")).unwrap();
    assert!(pool < box_top, "the pool banner is above the box:\n{text}");
    // ks1 is out of the pool (MAINT on both load balancers), ks2 and ks3 serve.
    for (node, lb, provider, token) in [
        ("ks1", "MAINT 0  MAINT 0", "jws", "jws 201"),
        ("ks2", "UP 14    UP 16", "fernet", "fernet 201"),
        ("ks3", "UP 17    UP 19", "fernet", "fernet 201"),
    ] {
        let row = lines
            .iter()
            .position(|l| l.starts_with(&format!(" {node} ")))
            .unwrap_or_else(|| panic!("no row for {node}:\n{text}"));
        assert!(row < box_top, "{node}'s row is above the box:\n{text}");
        let l = lines[row];
        for want in [lb, provider, "3/3", token] {
            assert!(l.contains(want), "{node}: no `{want}` in `{l}`");
        }
    }
    assert!(
        text.contains("ks3: fernet, in the pool"),
        "all of it fits:\n{text}"
    );
    // Four rows shorter, not all of the box's text fits (nor what the meter section adds, 4
    // lines): it says how much more there is, and j scrolls to it.
    let text = shot(&mut app, &s.state, s.now, 80, 20);
    assert!(text.contains("↓ 8 more lines"), "{text}");
    assert!(!text.contains("ks3: fernet, in the pool"), "{text}");
    for _ in 0..10 {
        app.handle_key(key('j'), &s.state, s.now);
    }
    let scrolled = shot(&mut app, &s.state, s.now, 80, 20);
    assert!(scrolled.contains("ks3: fernet, in the pool"), "{scrolled}");
    assert!(scrolled.contains("8 lines above"), "{scrolled}");
    assert_eq!(
        rows_with(&scrolled, " ks1 ").len(),
        1,
        "the fleet is still there once scrolled:\n{scrolled}"
    );
    // k comes back at once (the scroll stops at the end, not ten presses past it).
    app.handle_key(key('k'), &s.state, s.now);
    let back = shot(&mut app, &s.state, s.now, 80, 20);
    assert!(back.contains("7 above · 1 below"), "{back}");
    // The keys at the bottom never scroll away.
    for t in [&text, &scrolled, &back] {
        assert!(t.contains("Shift+Y  proceed: re-add the node"), "{t}");
        assert!(t.contains("? help") && t.contains("q quit"), "{t}");
    }
}

/// Every size from tiny to wide draws without a panic, with a hard stop, a popup or neither;
/// too small a terminal says so and still shows the hard stop.
#[test]
fn every_size_draws_and_a_tiny_one_says_so() {
    let stop = sim_mixed_stop();
    let mid = sim_mid_rolling();
    for (w, h) in [
        (1, 1),
        (10, 3),
        (20, 6),
        (30, 8),
        (40, 12),
        (50, 15),
        (60, 20),
        (80, 24),
        (100, 30),
        (120, 40),
        (200, 60),
    ] {
        for (s, overlay) in [
            (&stop, None),
            (&stop, Some('?')),
            (&stop, Some('q')),
            (&mid, None),
            (&mid, Some('q')),
        ] {
            let mut app = live();
            if let Some(c) = overlay {
                app.handle_key(key(c), &s.state, s.now);
            }
            let _ = shot(&mut app, &s.state, s.now, w, h);
        }
    }
    let tiny = shot(&mut live(), &stop.state, stop.now, 40, 12);
    assert!(tiny.contains("too small"), "{tiny}");
    assert!(tiny.contains("HARD STOP  mixed-pool"), "{tiny}");
    assert!(tiny.contains("Shift+Y"), "{tiny}");
    insta::assert_snapshot!("mixed_pool_hard_stop_40x12", tiny);
    let small = shot(&mut live(), &mid.state, mid.now, 40, 12);
    assert!(small.contains("40x12: too small for the log"), "{small}");
    assert!(small.contains("ks1"), "{small}");
}

/// Keys at a hard stop: `?` opens help over the box, Esc closes it and never declines, `q` and
/// Ctrl-C ask to quit (safe here), `n` in the question stays, `n` at the box declines.
#[test]
fn hard_stop_keys_help_quit_and_esc() {
    let s = sim_mixed_stop();
    let st = &s.state;
    let id = st.hard_stop.as_ref().unwrap().key();
    let mut app = live();
    // Esc with nothing open: nothing at all.
    assert_eq!(app.handle_key(code(KeyCode::Esc), st, s.now), None);
    assert!(app.overlay().is_none());
    // ? opens help, drawn over the box; Y inside help proceeds with nothing; Esc closes it.
    assert_eq!(app.handle_key(key('?'), st, s.now), None);
    assert_eq!(app.overlay(), Some(&cutover::tui::Overlay::Help));
    let help = shot(&mut app, st, s.now, 80, 24);
    assert!(
        help.contains("Esc        close a popup (never declines)"),
        "{help}"
    );
    assert!(
        help.contains("Esc/? close help"),
        "the footer follows the popup:\n{help}"
    );
    assert_eq!(app.handle_key(key('Y'), st, s.now), None);
    assert_eq!(app.handle_key(code(KeyCode::Esc), st, s.now), None);
    assert!(app.overlay().is_none());
    // q asks, over the box; the fleet stays in view; n and Esc stay.
    for quit in [
        key('q'),
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
    ] {
        assert_eq!(app.handle_key(quit, st, s.now), None);
        assert_eq!(app.overlay(), Some(&cutover::tui::Overlay::QuitConfirm));
        let text = shot(&mut app, st, s.now, 80, 24);
        assert!(
            text.contains("waiting at the HARD STOP mixed-pool")
                && text.contains("Quitting here is safe"),
            "{text}"
        );
        assert!(text.contains("y quit  n/Esc stay"), "{text}");
        for node in ["ks1", "ks2", "ks3"] {
            assert_eq!(rows_with(&text, &format!(" {node}  ")).len(), 1, "{text}");
        }
        assert_eq!(app.handle_key(code(KeyCode::Esc), st, s.now), None);
        assert!(app.overlay().is_none(), "Esc closes the question");
    }
    assert_eq!(app.handle_key(key('q'), st, s.now), None);
    assert_eq!(
        app.handle_key(key('n'), st, s.now),
        None,
        "n in the question stays; it does not decline"
    );
    assert!(app.overlay().is_none());
    // At the box itself n declines.
    assert_eq!(
        app.handle_key(key('n'), st, s.now),
        Some(UiRequest::Decline { id: id.clone() })
    );
    // y in the question quits.
    app.handle_key(key('q'), st, s.now);
    assert_eq!(app.handle_key(key('y'), st, s.now), Some(UiRequest::Quit));
    // Ctrl-C twice quits too.
    let mut app = live();
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle_key(ctrl_c, st, s.now), None);
    assert_eq!(app.handle_key(ctrl_c, st, s.now), Some(UiRequest::Quit));
}

/// The quit question asked while an action ran follows the run: once the run waits at a hard
/// stop, it says so (never "The action finished" under a footer that says otherwise).
#[test]
fn quit_question_follows_the_state() {
    let mut s = sim_mid_rolling();
    let mut app = live();
    app.handle_key(key('q'), &s.state, s.now);
    let running = shot(&mut app, &s.state, s.now, 80, 24);
    assert!(running.contains("An action is running on ks2"), "{running}");
    assert!(running.contains("y quit after it finishes"), "{running}");
    // The restart finishes, the run goes on to the next hard stop; the question is still open.
    s.until_stop("mixed-pool");
    let at_stop = shot(&mut app, &s.state, s.now, 80, 24);
    insta::assert_snapshot!("quit_at_hard_stop_80x24", at_stop);
    assert!(
        at_stop.contains("waiting at the HARD STOP mixed-pool"),
        "{at_stop}"
    );
    assert!(!at_stop.contains("action finished"), "{at_stop}");
    // The footer is the question's, not the box's.
    let footer = at_stop.lines().last().unwrap();
    assert!(
        footer.contains("y quit") && !footer.contains("Shift+Y"),
        "{footer}"
    );
    // The question answers before the box does: y quits, Y does not proceed.
    assert_eq!(
        app.handle_key(key('Y'), &s.state, s.now),
        Some(UiRequest::Quit)
    );
    // Declined: the run is paused and nothing runs, so q quits at once (no question).
    let d = decide(
        &s.state,
        Command::Decline {
            id: "mixed-pool".into(),
            who: who(),
        },
        s.now,
    )
    .unwrap();
    s.take(d);
    let mut app = live();
    assert_eq!(
        app.handle_key(key('q'), &s.state, s.now),
        Some(UiRequest::Quit)
    );
    // Asked while the restart ran, answered after the run paused: it says paused.
    let mut s = sim_mid_rolling();
    let mut app = live();
    app.handle_key(key('q'), &s.state, s.now);
    let d = decide(&s.state, Command::Pause { who: who() }, s.now).unwrap();
    s.take(d);
    s.until("paused", |st| matches!(st.status, RunStatus::Paused { .. }));
    let paused = shot(&mut app, &s.state, s.now, 80, 24);
    assert!(
        paused.contains("The run is paused; nothing is running. Quit now?"),
        "{paused}"
    );
    let footer = paused.lines().last().unwrap();
    assert!(
        footer.contains("y quit") && !footer.contains("after it finishes"),
        "{footer}"
    );
}

/// Under LANG=C (or --ascii) every state symbol, the borders and the rules are ASCII, each
/// state distinct; the layout is the same.
#[test]
fn ascii_rendering() {
    let ascii = |s: &Sim, w, h| {
        let mut app = App::new(header(Mode::Live))
            .with_color(false)
            .with_ascii(true);
        shot(&mut app, &s.state, s.now, w, h)
    };
    let stop = sim_mixed_stop();
    let mid = sim_mid_rolling();
    let failed = sim_failed();
    for (s, w, h) in [
        (&stop, 80, 24),
        (&stop, 120, 40),
        (&mid, 80, 24),
        (&mid, 160, 48),
        (&failed, 80, 24),
    ] {
        let text = ascii(s, w, h);
        let odd: Vec<char> = text.chars().filter(|c| !c.is_ascii()).collect();
        assert!(odd.is_empty(), "not ASCII: {odd:?} in\n{text}");
    }
    let text = ascii(&stop, 80, 24);
    insta::assert_snapshot!("mixed_pool_hard_stop_ascii_80x24", text);
    assert!(text.contains("+ HARD STOP  mixed-pool ===="), "{text}");
    assert!(text.contains("Nodes (3) ----"), "{text}");
    let mid_text = ascii(&mid, 80, 24);
    insta::assert_snapshot!("mid_rolling_ascii_80x24", mid_text);
    // Done, running, pending: + * . in the steps; a node restarting is `*`.
    for want in [
        " + Preflight",
        " * Rolling cutover  ks1 + ks2 * flipped ks3 .",
        " . Verify the fleet",
        "* restarting",
        "> restart",
    ] {
        assert!(mid_text.contains(want), "no `{want}` in\n{mid_text}");
    }
    // Failed `x`, waiting at a hard stop `#`.
    let failed_text = ascii(&failed, 80, 24);
    for want in [
        " x Rolling cutover  ks1 + ks2 x FAILED ks3 .",
        "x halted at service.restart ks2",
        "ks2 x restart",
    ] {
        assert!(failed_text.contains(want), "no `{want}` in\n{failed_text}");
    }
    let wide = ascii(&stop, 120, 40);
    for want in [
        " # Rolling cutover  ks1 # validated ks2 . ks3 .",
        "# waiting for a person: mixed-pool",
    ] {
        assert!(wide.contains(want), "no `{want}` in\n{wide}");
    }
}

// ------------------------------------------------- unreachable nodes, long halt reasons (issue 9)

/// Complete the oldest running effect as the fleet would, with `edit` changing what came back
/// (ok, summary, observation, failure) before the engine sees it.
fn step_edited(
    s: &mut Sim,
    edit: impl FnOnce(&ActionSpec, &mut bool, &mut String, &mut Observation, &mut Option<Failure>),
) {
    let eff = s.queue.pop_front().expect("an effect to complete");
    let Reply {
        mut ok,
        mut summary,
        mut observed,
        mut failure,
        ms,
    } = s.fleet.run(&eff.spec);
    edit(
        &eff.spec,
        &mut ok,
        &mut summary,
        &mut observed,
        &mut failure,
    );
    s.now += Duration::milliseconds(ms as i64);
    let node = s
        .state
        .in_flight
        .get(&eff.id)
        .and_then(|f| f.intent.node.clone());
    let o = Outcome {
        id: eff.id,
        op: eff.op,
        node,
        ok,
        summary,
        duration_ms: ms,
        observed,
        failure,
    };
    let d = decide(&s.state, Command::Completed(o), s.now).unwrap();
    s.take(d);
}

/// ks2's SSH host key changed: what the drivers report (its Keystone still answers over HTTP).
fn ks2_unreachable() -> NodeFacts {
    NodeFacts {
        service_up: true,
        service_status: Some(200),
        service_detail: "GET http://127.0.0.1:5002/v3 200".into(),
        ..NodeFacts::unreachable(Unreachable {
            kind: ReachFailure::HostKeyChanged,
            alias: "ks2".into(),
            host: "10.0.0.12".into(),
            port: 22,
            known_hosts: Some("/home/alice/.ssh/known_hosts".into()),
            fingerprint: Some("SHA256:n3wKeYq1w2e3r4t5y6u7i8o9p0aSdFgHjKl".into()),
            reason: "its host key has CHANGED: it now presents SHA256:n3wKeYq1w2e3r4t5y6u7i8o9p0aSdFgHjKl, and /home/alice/.ssh/known_hosts holds another key for 10.0.0.12".into(),
            next: "find out why 10.0.0.12 port 22 now presents another key; only if the change is expected: ssh-keygen -R 10.0.0.12".into(),
        })
    }
}

/// The preflight's probes find ks2 unreachable: the run halts naming the host key.
fn sim_unreachable() -> Sim {
    let mut s = Sim::start();
    for _ in 0..50 {
        if matches!(s.state.status, RunStatus::Halted { .. }) || s.queue.is_empty() {
            break;
        }
        step_edited(&mut s, |_, _, _, obs, _| {
            if obs.nodes.contains_key("ks2") {
                obs.nodes.insert("ks2".into(), ks2_unreachable());
                // Its provider not read either: the probe's token there is left out.
                obs.tokens.remove("ks2");
            }
        });
    }
    assert!(
        matches!(s.state.status, RunStatus::Halted { .. }),
        "{:?}",
        s.state.status
    );
    s
}

/// An unreachable node is marked in the node table (not `ERR`, not `DOWN`: its Keystone
/// answered), and its details say why, where and what to do, in Unicode and ASCII, at 80×24.
#[test]
fn an_unreachable_node_is_marked_in_the_table_and_its_details() {
    let s = sim_unreachable();
    let now = s.now + Duration::seconds(5);
    let text = shot(&mut live(), &s.state, now, 80, 24);
    let row = rows_with(&text, " ks2 ");
    assert!(
        row.iter()
            .any(|r| r.contains("⊘ unreach") && r.contains(" up ")),
        "ks2's row: {row:?}\n{text}"
    );
    assert!(
        !row.iter().any(|r| r.contains("ERR") || r.contains("DOWN")),
        "{text}"
    );
    // One node that cannot be read is not a mixed pool.
    assert!(
        !text.contains("MIXED") && text.contains("provider not read: ks2"),
        "{text}"
    );
    insta::assert_snapshot!("unreachable_80x24", text);

    // The details popup: Tab to the nodes, j to ks2, Enter.
    let mut app = live();
    app.handle_key(code(KeyCode::Tab), &s.state, now);
    app.handle_key(key('j'), &s.state, now);
    app.handle_key(code(KeyCode::Enter), &s.state, now);
    let details = shot(&mut app, &s.state, now, 80, 24);
    for want in [
        "⊘ UNREACHABLE",
        "host key changed at 10.0.0.12 port 22",
        "next",
        "ssh-keygen -R 10.0.0.12",
        "up GET http://127.0.0.1:5002/v3 200",
    ] {
        assert!(details.contains(want), "no `{want}` in\n{details}");
    }
    // What was not read is not shown as if it were (no `fernet (default)`, no `ABSENT`).
    assert!(
        !details.contains("fernet (default)") && !details.contains("ABSENT"),
        "{details}"
    );
    insta::assert_snapshot!("unreachable_details_80x24", details);

    // ASCII: its own symbol, nothing above 127.
    let mut app = App::new(header(Mode::Live))
        .with_color(false)
        .with_ascii(true);
    let ascii = shot(&mut app, &s.state, now, 80, 24);
    assert!(
        rows_with(&ascii, " ks2 ")
            .iter()
            .any(|r| r.contains("! unreach")),
        "{ascii}"
    );
    assert!(ascii.is_ascii(), "{ascii}");
    app.handle_key(code(KeyCode::Tab), &s.state, now);
    app.handle_key(key('j'), &s.state, now);
    app.handle_key(code(KeyCode::Enter), &s.state, now);
    let ascii_details = shot(&mut app, &s.state, now, 80, 24);
    assert!(ascii_details.contains("! UNREACHABLE"), "{ascii_details}");
    assert!(ascii_details.is_ascii(), "{ascii_details}");
    // The help says what the mark means.
    let mut app = live();
    app.handle_key(key('?'), &s.state, now);
    let help = shot(&mut app, &s.state, now, 80, 24);
    assert!(
        help.contains("⊘ unreach: cannot be reached over SSH"),
        "{help}"
    );
    // Too narrow for the Provider column (only the name and the phase): the phase says it.
    let narrow = shot(&mut live(), &s.state, now, 44, 30);
    assert!(
        rows_with(&narrow, " ks2 ")
            .iter()
            .any(|r| r.contains("⊘ unreach")),
        "{narrow}"
    );
    // The wide layout's side pane shows the same details beside the log.
    let mut app = live();
    app.handle_key(code(KeyCode::Tab), &s.state, now);
    app.handle_key(key('j'), &s.state, now);
    let wide = shot(&mut app, &s.state, now, 160, 48);
    assert!(wide.contains("⊘ UNREACHABLE"), "{wide}");
}

/// A failed restart's reason as drivers::service::log writes it: a headline, then the evidence.
fn long_reason() -> String {
    let mut r = String::from(
        "ks2: `systemctl restart keystone` exited 1: Unhandled error: oslo_config.cfg.ConfigFileValueError: Value for option enabled is not valid: Unexpected boolean value 'notabool'",
    );
    r.push_str("\n  journalctl -u keystone since 01:02:17 UTC:");
    r.push_str("\n    CRITICAL keystone Unhandled error: oslo_config.cfg.ConfigFileValueError");
    r.push_str("\n    Traceback (most recent call last):");
    for i in 0..6 {
        r.push_str(&format!(
            "\n      File \"/usr/lib/python3/dist-packages/oslo_config/cfg.py\", line {}, in _do_get",
            2000 + i
        ));
    }
    r.push_str("\n    ValueError: Unexpected boolean value 'notabool'");
    r.push_str("\n  restart stderr:\n    Job for keystone.service failed because the control process exited with error code.");
    r
}

/// At 80×24 a HALTED banner with a multi-line reason keeps its first line and what to do next
/// (the rest used to push `next` off the banner); the log line's details keep the whole text.
#[test]
fn halted_banner_at_80x24_keeps_next_with_a_long_reason() {
    let mut s = Sim::start();
    s.fleet.fail_restart.push("ks2".into());
    s.confirm("jws-payload-readable");
    s.confirm("mixed-pool");
    for _ in 0..500 {
        if matches!(s.state.status, RunStatus::Halted { .. }) {
            break;
        }
        step_edited(&mut s, |spec, ok, summary, _, _| {
            if matches!(spec, ActionSpec::Service(Service::Restart { node, .. }) if node == "ks2")
                && !*ok
            {
                *summary = long_reason();
            }
        });
    }
    let RunStatus::Halted { reason, next } = &s.state.status else {
        panic!("not halted: {:?}", s.state.status);
    };
    assert!(reason.lines().count() > 10, "{reason}");
    assert!(!next.is_empty());
    let now = s.now + Duration::seconds(20);
    let text = shot(&mut live(), &s.state, now, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    let halted = lines
        .iter()
        .position(|l| l.contains("HALTED  service.restart failed on ks2"))
        .unwrap_or_else(|| panic!("no HALTED banner:\n{text}"));
    let next_row = lines
        .iter()
        .position(|l| l.trim_start().starts_with("next "))
        .unwrap_or_else(|| panic!("`next` is not on the screen:\n{text}"));
    assert!(halted < next_row, "{text}");
    // The evidence stays out of the banner; the banner says where it is.
    assert!(!text.contains("Traceback"), "{text}");
    assert!(text.contains("lines: the HALTED log line"), "{text}");
    // Every pane still has rows, every node its row.
    assert!(
        text.contains("Nodes (3)") && text.contains("Log ("),
        "{text}"
    );
    for n in [" ks1 ", " ks2 ", " ks3 "] {
        assert_eq!(
            text.lines().filter(|l| l.starts_with(n)).count(),
            1,
            "{n}\n{text}"
        );
    }
    insta::assert_snapshot!("halted_long_reason_80x24", text);

    // A first line too long for the rows left (a restart command's whole path and Keystone's
    // own exception): its tail goes (at least two rows stay, ending in `…`) before a node's row
    // does; next stays.
    let mut st = s.state.clone();
    st.status = RunStatus::Halted {
        reason: format!(
            "service.restart failed on ks2: ks2: `/opt/openstack/venvs/keystone-30.0.0/bin/keystone-restart --unit keystone-wsgi-public.service` exited 1: {}",
            long_reason().replace("ks2: `systemctl restart keystone` exited 1: ", "")
        ),
        next: next.clone(),
    };
    let text = shot(&mut live(), &st, now, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    let halted = lines
        .iter()
        .position(|l| l.contains("HALTED  service.restart failed on ks2"))
        .unwrap_or_else(|| panic!("no HALTED banner:\n{text}"));
    let next_row = lines
        .iter()
        .position(|l| l.trim_start().starts_with("next "))
        .unwrap_or_else(|| panic!("`next` is not on the screen:\n{text}"));
    assert!(halted + 1 < next_row, "{text}");
    // The reason's rows that stay end in `…`: its tail went.
    assert!(lines[next_row - 1].ends_with('…'), "{text}");
    for n in [" ks1 ", " ks2 ", " ks3 "] {
        assert_eq!(
            text.lines().filter(|l| l.starts_with(n)).count(),
            1,
            "{n}\n{text}"
        );
    }

    // The log's HALTED line, opened: the whole reason, evidence included.
    let mut app = live();
    app.handle_key(code(KeyCode::Tab), &s.state, now);
    app.handle_key(code(KeyCode::Tab), &s.state, now);
    app.handle_key(code(KeyCode::Enter), &s.state, now);
    let details = shot(&mut app, &s.state, now, 120, 40);
    for want in [
        "Traceback (most recent call last):",
        "journalctl -u keystone since",
    ] {
        assert!(details.contains(want), "no `{want}` in\n{details}");
    }
}

// ------------------------------------------------------------------------- client impact

/// A `client_impact` summary of a meter started at `started`: `secs` seconds at 8 requests a
/// second, `fails` (second, failures of fresh tokens) among them, counted under `phase`.
fn impact(
    started: DateTime<Utc>,
    secs: u64,
    fails: &[(u64, u64)],
    phase: &str,
    mixed: Option<u64>,
) -> Event {
    use cutover::engine::impact::{ClientImpact, ImpactReason, ImpactSecond};
    use cutover::meter::{Counts, RequestCounts};
    let failed: u64 = fails.iter().map(|(_, f)| f).sum();
    let total = RequestCounts {
        issue: Counts {
            issued: 3 * secs,
            ..Counts::default()
        },
        validate_new: Counts {
            validated: 3 * secs - failed,
            refused: failed,
            ..Counts::default()
        },
        validate_old: Counts {
            validated: 2 * secs,
            ..Counts::default()
        },
    };
    Event::ClientImpact(Box::new(ClientImpact {
        meter_started: started,
        reason: ImpactReason::Phase,
        phase: phase.into(),
        elapsed_ms: secs * 1000,
        rate: 4.0,
        total,
        frontends: BTreeMap::from([("haproxy-a".into(), total)]),
        phases: BTreeMap::from([(phase.to_string(), total)]),
        series: (0..secs)
            .map(|t| {
                let f = fails.iter().find(|(s, _)| *s == t).map_or(0, |(_, f)| *f);
                ImpactSecond(t, 8, f, 0, 0)
            })
            .collect(),
        mixed_failures: mixed,
        ..ClientImpact::default()
    }))
}

#[test]
fn the_fold_tracks_the_mixed_window_and_counts_the_meter_inside_it() {
    let mut s = sim_mixed_stop();
    assert!(!s.state.pool_mixed());
    assert!(s.state.impact.mixed_windows.is_empty());
    assert_eq!(s.state.meter_phase(), "rolling");
    s.confirm("mixed-pool");
    s.until("ks2 restarting", |st| {
        st.in_flight.values().any(|f| {
            f.intent.action == "service.restart" && f.intent.node.as_deref() == Some("ks2")
        })
    });
    // ks1 is back with jws beside ks3 on fernet: the fold opened a window.
    assert!(s.state.pool_mixed());
    assert_eq!(s.state.meter_phase(), "mixed");
    let w = s
        .state
        .impact
        .open_window()
        .expect("an open window")
        .clone();
    // A meter that started 10 s before the window opened, failing in the window's first two
    // seconds and once long before.
    let started = w.start - Duration::seconds(10);
    let from = 10;
    let e = impact(
        started,
        20,
        &[(from, 2), (from + 1, 3), (2, 1)],
        "mixed",
        Some(5),
    );
    s.state.apply(&e, s.now);
    let im = &s.state.impact;
    // Second 2 was long before the window: counted in the totals, not in the window.
    assert_eq!(im.total().fresh_failures(), 6);
    assert_eq!(im.open_window().unwrap().failures, 5);
    assert_eq!(im.open_window_failures(), Some(5));
    assert_eq!(im.longest.map(|l| (l.secs, l.failures)), Some((2, 5)));
    assert_eq!(im.series.len(), 20);
}

fn sim_metered_rolling() -> Sim {
    let mut s = sim_mid_rolling();
    let started = s.now - Duration::seconds(40);
    let e = impact(
        started,
        40,
        &[(33, 1), (34, 3), (35, 4), (36, 2)],
        "mixed",
        Some(10),
    );
    let now = s.now;
    s.state.apply(&e, now);
    s
}

#[test]
fn snapshot_meter_line() {
    let s = sim_metered_rolling();
    snap_both!("meter_line", live(), &s.state, s.now + Duration::seconds(1));
    let mut app = live();
    let text = shot(&mut app, &s.state, s.now, 80, 24);
    let row = rows_with(&text, "CLIENTS");
    assert_eq!(row.len(), 1, "{text}");
    assert!(row[0].contains("10 failed"), "{text}");
    assert!(row[0].contains("mixed now 10"), "{text}");
    // In ASCII, the sparkline is ASCII too.
    let mut app = App::new(header(Mode::Live))
        .with_color(false)
        .with_ascii(true);
    let text = shot(&mut app, &s.state, s.now, 80, 24);
    let row = rows_with(&text, "CLIENTS");
    assert!(row[0].is_ascii() && row[0].contains('#'), "{}", row[0]);
}

#[test]
fn snapshot_mixed_pool_hard_stop_with_the_meter() {
    let mut s = sim_mixed_stop();
    let started = s.now - Duration::seconds(30);
    let e = impact(started, 30, &[], "rolling", None);
    let now = s.now;
    s.state.apply(&e, now);
    let mut app = live();
    let text = shot(&mut app, &s.state, s.now + Duration::seconds(3), 80, 24);
    insta::assert_snapshot!("mixed_pool_hard_stop_meter_80x24", text);
    let mut app = live();
    let tall = shot(&mut app, &s.state, s.now + Duration::seconds(3), 120, 48);
    assert!(tall.contains("Clients (the meter):"), "{tall}");
    assert!(
        tall.contains("Measured so far: 240 requests through the frontends, 0 failed"),
        "{tall}"
    );
    assert!(
        tall.contains("Expect: 1 of 3 pooled nodes would run jws; roughly 33%"),
        "{tall}"
    );
}

#[test]
fn a_meter_that_is_off_says_why() {
    let mut s = sim_start();
    let e = Event::ClientImpact(Box::new(cutover::engine::impact::ClientImpact {
        off: Some("off (--meter off)".into()),
        ..Default::default()
    }));
    let now = s.now;
    s.state.apply(&e, now);
    let mut app = live();
    let text = shot(&mut app, &s.state, s.now, 80, 24);
    assert_eq!(
        rows_with(&text, "CLIENTS"),
        vec![" CLIENTS meter off (--meter off)"],
        "{text}"
    );
}

// ------------------------------------------------------------------------------ token cache

/// Every node's facts as if its keystone.conf named one memcached for the fleet (kolla-ansible's
/// `[cache]`), entries living `[cache] expiration_time` 600 s.
fn with_shared_cache(state: &mut State) {
    let cache = TokenCacheFacts {
        enabled: true,
        backend: "oslo_cache.memcache_pool".into(),
        servers: vec!["10.0.0.5:11211".into(), "10.0.0.6:11211".into()],
        expiration_time: 600,
        ..Default::default()
    };
    for n in state.nodes.values_mut() {
        if let Some(f) = n.facts.as_mut() {
            std::sync::Arc::make_mut(f).cache = Some(cache.clone());
        }
    }
}

/// The rows of a screen from the one holding `from` to the one before the next blank box row:
/// the token cache's paragraph as the box shows it, without what surrounds it.
fn box_paragraph(screen: &str, from: &str) -> String {
    let rows: Vec<&str> = screen.lines().collect();
    let Some(start) = rows.iter().position(|r| r.contains(from)) else {
        return String::new();
    };
    rows[start..]
        .iter()
        .take_while(|r| r.chars().any(|c| c.is_alphanumeric()) && !r.contains("Facts:"))
        .map(|r| r.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mixed-pool hard stop says what the shared token cache makes of the mixed pool: which
/// tokens pass, which fail and until when (below the consequence; at 80x24 it scrolls to it).
#[test]
fn mixed_pool_hard_stop_explains_the_token_cache() {
    let mut s = sim_mixed_stop();
    with_shared_cache(&mut s.state);
    let now = s.now + Duration::seconds(3);
    let wide = shot(&mut live(), &s.state, now, 160, 48);
    insta::assert_snapshot!(
        "mixed_pool_token_cache_160x48",
        box_paragraph(&wide, "Token cache:")
    );
    // 80x24: the box drops its blank lines and scrolls; the paragraph starts on the first
    // screen, and a few j presses show it whole.
    let mut app = live();
    let first = shot(&mut app, &s.state, now, 80, 24);
    assert!(first.contains("Token cache: shared"), "{first}");
    assert!(first.contains("more lines"), "{first}");
    let mut scrolled = first;
    for _ in 0..12 {
        // The whole paragraph: its first row and, under its last, the facts' heading.
        if scrolled.contains("Token cache:") && scrolled.contains("Facts:") {
            break;
        }
        app.handle_key(key('j'), &s.state, now);
        scrolled = shot(&mut app, &s.state, now, 80, 24);
    }
    insta::assert_snapshot!(
        "mixed_pool_token_cache_scrolled_80x24",
        box_paragraph(&scrolled, "Token cache:")
    );

    // Without the cache's facts (a journal written before cutover read them): no paragraph.
    let s = sim_mixed_stop();
    let plain = shot(&mut live(), &s.state, now, 160, 48);
    assert!(!plain.contains("Token cache"), "{plain}");
}

/// A node's details show its cache and the fleet's.
#[test]
fn details_show_the_token_cache() {
    let mut s = sim_mid_rolling();
    with_shared_cache(&mut s.state);
    let mut app = live();
    app.handle_key(code(KeyCode::Tab), &s.state, s.now);
    app.handle_key(code(KeyCode::Enter), &s.state, s.now);
    let text = shot(&mut app, &s.state, s.now, 160, 60);
    assert!(
        text.contains("cache     memcache_pool 10.0.0.5:11211,10.0.0.6:11211, 10m"),
        "{text}"
    );
    assert!(
        text.contains("fleet     SHARED (10.0.0.5:11211,10.0.0.6:11211), entries live 10m"),
        "{text}"
    );
}

/// strategy halves, stopped at the swap's hard stop: half A (ks1) flipped and out, half B
/// (ks2, ks3) serving; the node table marks each node's half, the steps pane names them.
#[test]
fn snapshot_halves_swap_hard_stop() {
    let params: BTreeMap<String, String> = [("strategy".to_string(), "halves".to_string())].into();
    let mut s = Sim::start_with(&params);
    s.confirm("jws-payload-readable");
    s.until_stop("halves-swap");
    assert_eq!(s.state.half_of("ks1"), Some("A"));
    assert_eq!(s.state.half_of("ks3"), Some("B"));
    snap_both!(
        "halves_swap_hard_stop",
        live(),
        &s.state,
        s.now + Duration::seconds(3)
    );
    // Behind the hard stop (Esc is not needed: the panes are drawn under it at 160x48), the
    // rows say which half each node is in.
    let text = shot(&mut live(), &s.state, s.now + Duration::seconds(3), 160, 48);
    assert!(text.contains("Swap the pool"), "{text}");
}

/// Once every node has flipped, the countdown says how much longer old tokens validate from the
/// shared cache (one cache lifetime after the last flip), then only when they expire.
#[test]
fn the_countdown_names_the_shared_caches_grace() {
    let mut s = sim_finished();
    with_shared_cache(&mut s.state);
    let last = s.state.last_flip_at.expect("the last flip");
    let text = shot(&mut live(), &s.state, last + Duration::seconds(60), 160, 48);
    assert_eq!(
        rows_with(&text, "old fernet tokens"),
        vec![
            " POOL: consistent jws · old fernet tokens cached 9m00s more, irrelevant in 59m00s (services: 48h59m)"
        ],
        "{text}"
    );
    // Whole at 80 columns too, on a line of its own.
    let narrow = shot(&mut live(), &s.state, last + Duration::seconds(60), 80, 24);
    assert_eq!(
        rows_with(&narrow, "old fernet tokens"),
        vec![" old fernet tokens cached 9m00s more, irrelevant in 59m00s (services: 48h59m)"],
        "{narrow}"
    );
    let text = shot(
        &mut live(),
        &s.state,
        last + Duration::seconds(601),
        160,
        48,
    );
    assert_eq!(
        rows_with(&text, "old fernet tokens"),
        vec![" POOL: consistent jws · old fernet tokens irrelevant in 49m59s (services: 48h49m)"],
        "{text}"
    );
}

/// The halves' swap hard stop says which old tokens survive the swap with a shared cache.
#[test]
fn the_swap_hard_stop_explains_the_token_cache() {
    let params: BTreeMap<String, String> = [("strategy".to_string(), "halves".to_string())].into();
    let mut s = Sim::start_with(&params);
    s.confirm("jws-payload-readable");
    s.until_stop("halves-swap");
    with_shared_cache(&mut s.state);
    let text = shot(&mut live(), &s.state, s.now, 160, 48);
    let para = box_paragraph(&text, "Token cache:");
    assert!(
        para.contains("Token cache: shared (10.0.0.5:11211,10.0.0.6:11211), entries live 10m.")
            && para.contains("fernet tokens cached less than 10m before the swap")
            && para.contains("Tokens the jws half issues validate everywhere."),
        "{text}"
    );
}
