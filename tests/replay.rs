//! Replay: the player's start, countdowns as of the replayed moment (never the wall clock), a
//! damaged journal replayed up to its damage under a banner naming it, `--follow` stopping at
//! damage, and `replay` without a terminal.
//!
//! The journal is a real demo run (the binary, headless), rewritten with its times moved back to
//! 2003 so that anything computed from the wall clock would read very differently.

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use cutover::engine::{Event, State};
use cutover::journal::{self, Entry, Journal};
use cutover::tui::replay::{Damage, Player, load};
use cutover::tui::text::{dur, hms};
use cutover::tui::{App, Header, Mode, ReplayControl};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ANSWERS: &str = "runbooks/demo-answers.yaml";

/// Where the rewritten journal starts: long ago.
fn long_ago() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2003, 4, 5, 1, 2, 3).unwrap()
}

/// A scratch directory under the target dir, unique to this test process (shared by its tests;
/// those of test processes that have ended are removed).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for e in fs::read_dir(root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("replay-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let d = root.join(format!("replay-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    })
}

/// A completed headless demo run, its journal rewritten with times starting at [`long_ago`]
/// (intact, 0600). Made once per test process.
fn past_journal() -> &'static Path {
    static J: OnceLock<PathBuf> = OnceLock::new();
    J.get_or_init(|| {
        let dir = scratch();
        let demo = dir.join("demo.jsonl");
        let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["demo", "--headless", "--answers", ANSWERS, "--world"])
            .arg(dir.join("world"))
            .arg("--journal")
            .arg(&demo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .expect("run the demo");
        assert_eq!(
            out.status.code(),
            Some(0),
            "demo failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records = journal::read(&demo).unwrap().records;
        let shift = long_ago() - records[0].time;
        let past = dir.join("past.jsonl");
        let mut j = Journal::create(&past).unwrap();
        j.append_batch(
            records
                .into_iter()
                .map(|r| Entry {
                    time: r.time + shift,
                    run: r.run,
                    actor: r.actor,
                    kind: r.kind,
                    step: r.step,
                    node: r.node,
                    data: r.data,
                })
                .collect(),
        )
        .unwrap();
        drop(j);
        assert!(journal::verify(&past).ok());
        past
    })
}

fn past_events() -> Vec<(DateTime<Utc>, Event)> {
    let loaded = load(past_journal()).unwrap();
    assert_eq!(loaded.damage, None);
    loaded.events
}

fn header(mode: Mode, journal: &Path) -> Header {
    Header {
        journal: journal.to_path_buf(),
        mode,
        operator: "alice@bastion".into(),
    }
}

/// The replay's app as `run_replay` sets it up before a draw.
fn replay_app(p: &Player, banner: Option<String>) -> App {
    let mut a = App::new(header(Mode::Replay, past_journal())).with_color(false);
    a.set_replay_status(p.status());
    a.set_replay_banner(banner);
    a
}

fn draw(app: &mut App, state: &State, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    // The wall clock, as the replay loop passes it: the screen must not use it.
    term.draw(|f| app.draw(f, state, Utc::now())).unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

// ------------------------------------------------------------------------------- the player

#[test]
fn g_and_home_go_to_the_first_event_and_hold_there() {
    let events = past_events();
    let total = events.len();
    assert!(total > 40, "a demo run has many events ({total})");
    let mut p = Player::new(events, 1.0, false);
    // A replay opens on the first event, playing.
    assert_eq!((p.position(), p.status().playing), (1, true));
    for _ in 0..30 {
        p.control(ReplayControl::Forward);
    }
    assert_eq!(p.position(), 31);

    let mut app = replay_app(&p, None);
    for k in [KeyCode::Char('g'), KeyCode::Home] {
        assert_eq!(
            app.handle_replay_key(key(k), p.state()),
            Some(ReplayControl::Start)
        );
    }

    // Playing, then g: the first event, paused (playing on would race through the run's first
    // burst of events, milliseconds apart, before a screen could show event 1).
    assert!(!p.status().playing, "stepping pauses");
    p.control(ReplayControl::TogglePlay);
    assert!(p.status().playing);
    p.control(ReplayControl::Start);
    assert_eq!(p.position(), 1);
    assert_eq!(p.state().events, 1, "exactly the first event is folded");
    assert!(!p.status().playing);
    assert_eq!(p.next_due(), None, "nothing is scheduled while held");

    let mut app = replay_app(&p, None);
    let screen = draw(&mut app, p.state(), 120, 40);
    assert!(
        screen.contains(&format!("event 1/{total}")),
        "header shows event 1/{total}:\n{screen}"
    );
    assert!(screen.contains("paused"), "{screen}");
    // What runs "now" is as of the first event's time (2003), not the wall clock's.
    let first_at = p.state().last_event_at.unwrap();
    assert_eq!(first_at, long_ago());
    assert!(
        screen.contains(&format!("Now as of {}", hms(first_at))),
        "{screen}"
    );

    // Back from the first event stays there: position 0 is a blank screen, not a moment.
    p.control(ReplayControl::Back);
    assert_eq!(p.position(), 1);
    p.control(ReplayControl::Forward);
    p.control(ReplayControl::Back);
    assert_eq!(p.position(), 1);
    // End, then Start again.
    p.control(ReplayControl::End);
    assert_eq!(p.position(), total);
    p.control(ReplayControl::Start);
    assert_eq!(p.position(), 1);
}

#[test]
fn countdown_is_as_of_the_replayed_moment_not_the_wall_clock() {
    let events = past_events();
    // The first position where every node has flipped (the countdown starts there).
    let mut s = State::default();
    let mut pos = None;
    for (i, (t, e)) in events.iter().enumerate() {
        s.apply(e, *t);
        if s.old_tokens_irrelevant_at().is_some() {
            pos = Some(i + 1);
            break;
        }
    }
    let pos = pos.expect("the demo flips every node");
    let mut p = Player::new(events, 1.0, false);
    p.control(ReplayControl::Start);
    while p.position() < pos {
        p.control(ReplayControl::Forward);
    }
    let st = p.state();
    let at = st.last_event_at.unwrap();
    assert!(
        at < long_ago() + chrono::Duration::hours(1),
        "times are from 2003"
    );
    let (a, b) = st.old_tokens_irrelevant_at().unwrap();
    let left_a = (a - at).num_seconds();
    assert!(left_a > 0, "the tokens still matter at that moment");
    let want = format!(
        "old fernet tokens irrelevant in {} (services: {}) as of {}",
        dur(left_a),
        dur((b - at).num_seconds()),
        hms(at)
    );

    let mut app = replay_app(&p, None);
    let screen = draw(&mut app, st, 160, 40);
    assert!(
        screen.contains(&want),
        "want {want:?} (computed from the replayed moment) in:\n{screen}"
    );
    // The header's elapsed time is the replayed moment's too.
    let elapsed = (at - st.started_at.unwrap()).num_seconds();
    let t_plus = format!("T+{} as of {}", cutover::tui::text::clock(elapsed), hms(at));
    assert!(screen.contains(&t_plus), "want {t_plus:?} in:\n{screen}");

    // The same state drawn live (the wall clock, 2026+) reads very differently: the test would
    // catch a replay computing from the wall clock.
    let mut live = App::new(header(Mode::Live, past_journal())).with_color(false);
    let screen = draw(&mut live, st, 160, 40);
    assert!(!screen.contains("as of"), "{screen}");
    assert!(
        screen.contains("old fernet tokens no longer matter"),
        "{screen}"
    );
}

// ---------------------------------------------------------------------------- a damaged journal

/// A copy of the past journal with one byte of line `k` changed (a hash mismatch at seq k).
fn damaged_copy(name: &str, k: usize) -> PathBuf {
    let text = fs::read_to_string(past_journal()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let line = &mut lines[k - 1];
    let i = line.find("\"actor\":\"").unwrap() + "\"actor\":\"".len();
    line.replace_range(i..i + 1, "X");
    let path = scratch().join(name);
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

#[test]
fn damaged_journal_replays_up_to_k_under_a_banner_naming_k() {
    const K: usize = 40;
    let path = damaged_copy("damaged.jsonl", K);
    let intact = journal::read(past_journal()).unwrap().records;
    let loaded = load(&path).unwrap();
    let d = loaded.damage.clone().expect("the damage is found");
    assert_eq!((d.seq, d.line_no), (K as u64, K));
    let want_events = cutover::runtime::events_of(&intact[..K - 1]).unwrap();
    assert_eq!(
        loaded.events, want_events,
        "the events of seq 1..K-1, no more"
    );

    let banner = d.banner(false);
    let mut p = Player::new(loaded.events, 1.0, false);
    p.control(ReplayControl::End);
    for (w, h) in [(120, 40), (80, 24)] {
        let mut app = replay_app(&p, Some(banner.clone()));
        let screen = draw(&mut app, p.state(), w, h);
        let flat = screen.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(&format!("DAMAGED journal damaged at seq {K} (line {K}:")),
            "{w}x{h}: the banner names seq {K}:\n{screen}"
        );
        assert!(
            flat.contains(&format!("replaying seq 1-{} only", K - 1)),
            "{w}x{h}:\n{screen}"
        );
        assert!(
            flat.contains(&format!("event {0}/{0}", p.total())),
            "{w}x{h}:\n{screen}"
        );
    }
    // Short: two lines at 80 columns, the reason's gist (verify gives it whole).
    let mut app = replay_app(&p, Some(banner.clone()));
    let screen = draw(&mut app, p.state(), 80, 24);
    let rows: Vec<&str> = screen.lines().collect();
    assert!(rows[2].starts_with(" DAMAGED "), "{screen}");
    assert!(rows[4].starts_with(" POOL:"), "two banner lines:\n{screen}");
    assert!(banner.contains("(line 40: hash mismatch);"), "{banner}");
    // Followed: the banner says following stopped.
    assert!(
        d.banner(true)
            .starts_with("stopped following: journal damaged at seq 40")
    );

    // verify still fails it, and replay's loader did not change that.
    assert!(!journal::verify(&path).ok());
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["journal", "verify"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "journal verify exits 1");
}

#[test]
fn damage_banner_shortens_hashes_and_keeps_the_gist() {
    let h1 = "864e3ce2e18bd0ca9a649d25533f749f184148cf69eed8e494106309b0e52e21";
    let h2 = "315335e424d01b497f155a56b2c22a2c013cfd16c2761e45ef7bcdf66af0073a";
    let d = Damage {
        seq: 7,
        line_no: 9,
        reason: format!("prev {h1} does not match the previous record's hash {h2}"),
    };
    assert_eq!(
        d.banner(false),
        "journal damaged at seq 7 (line 9: prev 864e3ce2… does not match the previous \
         record's hash 315335e4…); replaying seq 1-6 only; `cutover journal verify` shows the \
         damage"
    );
    let d = Damage {
        seq: 2,
        line_no: 2,
        reason: "not valid JSON: expected value at line 1 column 1\x1b[2J".into(),
    };
    assert!(
        d.banner(true).starts_with(
            "stopped following: journal damaged at seq 2 (line 2: not valid JSON); replaying \
             seq 1 only;"
        ),
        "{}",
        d.banner(true)
    );
}

#[test]
fn damage_on_the_first_line_replays_nothing_and_says_so() {
    let path = damaged_copy("damaged-first.jsonl", 1);
    let loaded = load(&path).unwrap();
    assert!(loaded.events.is_empty());
    let d = loaded.damage.unwrap();
    assert_eq!(d.seq, 1);
    assert!(d.banner(false).contains("nothing before it to replay"));
}

// ------------------------------------------------------------------------------- no terminal

#[test]
fn replay_without_a_terminal_exits_2_and_suggests_journal_show() {
    let j = past_journal();
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("replay")
        .arg(j)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("replay needs a terminal"), "{err}");
    assert!(err.contains("stdin and stdout are not a terminal"), "{err}");
    assert!(
        err.contains(&format!("cutover journal show {}", j.display())),
        "{err}"
    );
    // --follow too, and with only stdout redirected.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["replay", "--follow"])
        .arg(j)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing drawn on a pipe");
}

// -------------------------------------------------------------- --follow stops at the damage

/// `cutover replay --follow` in a pseudo-terminal: following a journal that grows, then gets a
/// damaged line (and a good-looking one after it, so it is not a torn write in progress).
#[test]
fn follow_stops_at_damage_and_says_so() {
    use expectrl::session::OsSession;
    use std::io::{ErrorKind, Write};

    const K: usize = 30;
    let intact = fs::read_to_string(past_journal()).unwrap();
    let lines: Vec<&str> = intact.lines().collect();
    let path = scratch().join("followed.jsonl");
    fs::write(&path, lines[..K - 1].join("\n") + "\n").unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(["replay", "--follow"])
        .arg(&path)
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1");
    let mut p: OsSession = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    p.get_process_mut().set_window_size(120, 40).unwrap();
    let mut vt = vt100::Parser::new(40, 120, 0);
    let mut wait_for = |p: &mut OsSession, what: &str, pred: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 65536];
        loop {
            loop {
                match p.try_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => vt.process(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            let s = vt.screen().contents();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}; last screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    };
    let s = wait_for(&mut p, "FOLLOW at the end", &|s| {
        s.contains("FOLLOW") && s.contains("● live")
    });
    assert!(!s.contains("DAMAGED"), "{s}");

    // The journal grows by a good record, then a damaged one and another after it.
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(f, "{}", lines[K - 1]).unwrap();
    f.flush().unwrap();
    let mut bad = lines[K].to_string();
    let i = bad.find("\"actor\":\"").unwrap() + "\"actor\":\"".len();
    bad.replace_range(i..i + 1, "X");
    writeln!(f, "{bad}\n{}", lines[K + 1]).unwrap();
    f.flush().unwrap();

    let s = wait_for(&mut p, "the damage banner", &|s| s.contains("DAMAGED"));
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!(
            "stopped following: journal damaged at seq {} (line {}:",
            K + 1,
            K + 1
        )),
        "{s}"
    );
    assert!(s.contains("REPLAY") && !s.contains("FOLLOW"), "{s}");
    // Still running, on what it read: q quits cleanly.
    p.write_all(b"q").unwrap();
    p.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = wait_for(&mut p, "anything", &|_| true);
        match p.get_process().status().unwrap() {
            expectrl::process::unix::WaitStatus::Exited(_, code) => {
                assert_eq!(code, 0);
                break;
            }
            expectrl::process::unix::WaitStatus::StillAlive => {}
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "replay did not quit on q");
        std::thread::sleep(Duration::from_millis(30));
    }
}

// ------------------------------------------------------- an indexed journal, seeking by checkpoints

/// The past journal's records `times` over, re-chained into one journal (several runs in a row,
/// as a long-lived journal directory's concatenation would read), with a record that is not an
/// event cutover reads at `bogus` (a record index), if given.
fn repeated_journal(name: &str, times: usize, bogus: Option<usize>) -> PathBuf {
    let records = journal::read(past_journal()).unwrap().records;
    let path = scratch().join(name);
    let _ = fs::remove_file(&path);
    let mut entries: Vec<Entry> = (0..times)
        .flat_map(|_| records.iter())
        .map(|r| Entry {
            time: r.time,
            run: r.run.clone(),
            actor: r.actor.clone(),
            kind: r.kind.clone(),
            step: r.step.clone(),
            node: r.node.clone(),
            data: r.data.clone(),
        })
        .collect();
    if let Some(at) = bogus {
        let mut e = entries[at].clone();
        e.kind = "from_a_later_cutover".into();
        entries.insert(at, e);
    }
    let mut j = Journal::create(&path).unwrap();
    j.append_batch(entries).unwrap();
    path
}

/// A state as comparable data (everything it shows and keeps).
fn snapshot(s: &State) -> serde_json::Value {
    serde_json::to_value(s).unwrap()
}

/// The fold of the first `n` events from the start, with nothing kept in between.
fn full_fold(events: &[(DateTime<Utc>, Event)], n: usize) -> State {
    let mut s = State::default();
    for (t, e) in &events[..n] {
        s.apply(e, *t);
    }
    s
}

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

#[test]
fn seeking_from_a_checkpoint_equals_the_full_fold_at_random_positions() {
    let path = repeated_journal("repeated-3.jsonl", 3, None);
    let events = load(&path).unwrap().events;
    let n = events.len();
    let (p, damage) = Player::open(&path, 1.0).unwrap();
    assert_eq!(damage, None);
    // Checkpoints as close as the bound allows: every seek below crosses or starts from one.
    let mut p = p.with_checkpoint_every(1);
    let every = p.checkpoint_every();
    assert!(every <= n / 8, "every {every} of {n}");
    assert_eq!((p.position(), p.total()), (1, n));
    p.control(ReplayControl::End);
    let kept = p.checkpoints();
    assert_eq!(kept.len(), n / every, "checkpoints kept: {kept:?}");
    assert!(kept.iter().all(|k| k.is_multiple_of(every)));
    for seed in [1u64, 0x5eed, 0xdead_beef] {
        let mut rng = Rng(seed);
        for _ in 0..25 {
            let to = rng.below(n + 1);
            p.seek(to);
            assert_eq!(p.position(), to, "seed {seed:#x}");
            assert_eq!(
                snapshot(p.state()),
                snapshot(&full_fold(&events, to)),
                "seed {seed:#x}: the state at {to} from a checkpoint differs from the full fold"
            );
        }
    }
    // Stepping back across a checkpoint, one event at a time, is the full fold each time.
    p.seek(2 * every + 3);
    for _ in 0..6 {
        p.control(ReplayControl::Back);
        assert_eq!(
            snapshot(p.state()),
            snapshot(&full_fold(&events, p.position()))
        );
    }
    assert_eq!(p.position(), 2 * every - 3);
}

#[test]
fn checkpoints_stay_bounded_as_the_journal_grows() {
    let events = load(&repeated_journal("repeated-4.jsonl", 4, None))
        .unwrap()
        .events;
    let n = events.len();
    let third = n / 3;
    // Asked for a checkpoint every event: widened so that at most MAX_CHECKPOINTS are kept.
    let mut p = Player::new(events[..third].to_vec(), 1.0, true).with_checkpoint_every(1);
    let max = cutover::tui::replay::MAX_CHECKPOINTS;
    assert!(third.div_ceil(p.checkpoint_every()) <= max);
    for chunk in events[third..].chunks(37) {
        p.append(chunk.to_vec());
        p.control(ReplayControl::Back);
        p.control(ReplayControl::End);
        let every = p.checkpoint_every();
        let kept = p.checkpoints();
        assert!(kept.len() <= max, "{} checkpoints at {every}", kept.len());
        assert!(
            kept.iter().all(|k| k.is_multiple_of(every)),
            "{kept:?} at {every}"
        );
    }
    assert_eq!(p.position(), n);
    assert_eq!(snapshot(p.state()), snapshot(&full_fold(&events, n)));
    p.seek(n / 2 + 1);
    assert_eq!(
        snapshot(p.state()),
        snapshot(&full_fold(&events, n / 2 + 1))
    );
}

#[test]
fn an_indexed_replay_shows_what_the_loaded_one_shows_at_every_position() {
    let path = repeated_journal("repeated-2.jsonl", 2, None);
    let (indexed, _) = Player::open(&path, 2.0).unwrap();
    let mut indexed = indexed.with_checkpoint_every(10);
    let mut held = Player::new(load(&path).unwrap().events, 2.0, false);
    assert_eq!(indexed.total(), held.total());
    let same = |a: &Player, b: &Player, at: &str| {
        assert_eq!(a.position(), b.position(), "{at}");
        assert_eq!(a.status().total, b.status().total, "{at}");
        assert_eq!(a.status().resolution, b.status().resolution, "{at}");
        assert_eq!(a.gap(), b.gap(), "{at}");
        assert_eq!(snapshot(a.state()), snapshot(b.state()), "{at}");
    };
    same(&indexed, &held, "opening");
    let mut answered = 0;
    while held.position() < held.total() {
        for p in [&mut indexed, &mut held] {
            p.control(ReplayControl::Forward);
        }
        same(&indexed, &held, &format!("at {}", held.position()));
        answered += usize::from(held.status().resolution.is_some());
    }
    assert!(
        answered > 0,
        "some positions show how their hard stop was answered"
    );
    // Jumps: back to the start, to every hard stop, to the end.
    let stops: Vec<usize> = (1..=held.total())
        .filter(|&i| {
            held.seek(i);
            held.state().hard_stop.is_some()
        })
        .collect();
    assert!(!stops.is_empty());
    for &i in stops.iter().rev() {
        indexed.seek(i);
        held.seek(i);
        same(&indexed, &held, &format!("hard stop at {i}"));
        assert!(indexed.status().resolution.is_some(), "answered later: {i}");
    }
    for c in [
        ReplayControl::Start,
        ReplayControl::End,
        ReplayControl::Back,
    ] {
        indexed.control(c);
        held.control(c);
        same(&indexed, &held, &format!("{c:?}"));
    }
}

#[test]
fn an_indexed_replay_of_a_damaged_journal_stops_where_load_does() {
    const K: usize = 40;
    let path = damaged_copy("damaged-indexed.jsonl", K);
    let loaded = load(&path).unwrap();
    let (mut p, damage) = Player::open(&path, 1.0).unwrap();
    assert_eq!(damage, loaded.damage);
    assert_eq!(damage.map(|d| d.seq), Some(K as u64));
    p.control(ReplayControl::End);
    assert_eq!(p.total(), loaded.events.len());
    assert_eq!(
        snapshot(p.state()),
        snapshot(&full_fold(&loaded.events, loaded.events.len()))
    );
    assert_eq!(p.take_fault(), None);
}

#[test]
fn an_event_that_cannot_be_read_ends_an_indexed_replay_there_under_a_banner() {
    let at = 30;
    let path = repeated_journal("bogus.jsonl", 1, Some(at));
    // Loading refuses it whole, as it always did.
    let err = load(&path)
        .err()
        .expect("load refuses the record")
        .to_string();
    assert!(err.contains("from_a_later_cutover"), "{err}");
    // The index plays what comes before it, then stops there and says why.
    let (mut p, damage) = Player::open(&path, 1.0).unwrap();
    assert_eq!(damage, None, "the chain is intact");
    let good = load(past_journal()).unwrap().events;
    p.control(ReplayControl::End);
    assert_eq!(p.position(), at);
    assert_eq!(p.total(), at);
    assert_eq!(snapshot(p.state()), snapshot(&full_fold(&good, at)));
    let d = p.take_fault().expect("the unreadable event is reported");
    assert_eq!((d.seq, d.line_no), (at as u64 + 1, at + 1));
    let banner = d.banner(false);
    assert!(
        banner.contains(&format!(
            "journal damaged at seq {} (line {}: not an event this cutover reads)",
            at + 1,
            at + 1
        )),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("replaying seq 1-{at} only")),
        "{banner}"
    );
    assert_eq!(p.take_fault(), None, "reported once");
    // Stepping stays before it.
    p.control(ReplayControl::Forward);
    assert_eq!(p.position(), at);
}

#[test]
fn the_fold_ahead_in_the_background_gives_the_full_fold_s_states() {
    let path = repeated_journal("repeated-5.jsonl", 5, None);
    let events = load(&path).unwrap().events;
    let n = events.len();
    let (mut p, _) = Player::open(&path, 1.0).unwrap();
    let every = p.checkpoint_every();
    assert!(n > every, "{n} events: long enough to fold ahead");
    // The background fold hands over its checkpoints and the state at the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.checkpoints().contains(&n) {
        assert!(
            Instant::now() < deadline,
            "no fold ahead: {:?}",
            p.checkpoints()
        );
        std::thread::sleep(Duration::from_millis(20));
        p.seek(1);
    }
    assert_eq!(p.checkpoints(), vec![every, n]);
    let mut rng = Rng(7);
    for to in [n, n - 1, every, every - 1, every + 1]
        .into_iter()
        .chain((0..10).map(|_| rng.below(n + 1)))
    {
        p.seek(to);
        assert_eq!(
            snapshot(p.state()),
            snapshot(&full_fold(&events, to)),
            "at {to}"
        );
    }
}
