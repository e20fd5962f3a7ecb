//! `cutover journal export --format asciicast`: the replay's screens as an asciicast v2 file.
//!
//! Real journals (the demo run headless, completed and paused at its first hard stop) are
//! exported through the binary and read back as asciicast v2: the header's fields, every event
//! well formed, times monotonic and at the journal's pace, markers at the steps. The recording is
//! then played into a terminal emulator (vt100): its last screen is exactly what the replay view
//! draws for the run's final state, cell by cell, colours included, and shows the run's final
//! status. When `asciinema` is installed, `asciinema cat` and `asciinema play` accept the file
//! (run in a pty: asciinema opens /dev/tty); when it is not, that check says it was skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cutover::engine::state::RunStatus;
use cutover::engine::{Event, State};
use cutover::journal::{self, Record};
use cutover::tui::export::{self, Options};
use cutover::tui::replay::Player;
use cutover::tui::{App, Header, Mode, ReplayControl};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};
use serde_json::Value;

// ------------------------------------------------------------------------------------ journals

/// The demo, headless, in its own world under the target dir: `answers` or none (then it pauses
/// at the first hard stop, exit 3). Made once per test binary.
fn demo_journal(answers: bool) -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    static PAUSED: OnceLock<PathBuf> = OnceLock::new();
    let cell = if answers { &DONE } else { &PAUSED };
    cell.get_or_init(|| {
        remove_left_behind();
        let name = if answers { "completed" } else { "paused" };
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("export-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let journal = dir.join("run.jsonl");
        let world = dir.join("world");
        let mut args = vec![
            "demo".to_string(),
            "--headless".into(),
            "--world".into(),
            world.display().to_string(),
            "--journal".into(),
            journal.display().to_string(),
        ];
        if answers {
            args.extend(["--answers".into(), "runbooks/demo-answers.yaml".into()]);
        }
        let out = cutover(&args);
        let want = if answers { 0 } else { 3 };
        assert_eq!(out.status.code(), Some(want), "demo: {}", text(&out));
        journal
    })
}

/// The journals of earlier runs of these tests (whose process is gone) are removed.
fn remove_left_behind() {
    let Ok(dir) = fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("export-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn cutover(args: &[String]) -> Output {
    // A UTF-8 locale: asciinema and the tests' expectations need one.
    cutover_in_locale(args, "C.UTF-8")
}

fn cutover_in_locale(args: &[String], locale: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .env("LC_ALL", locale)
        .stdin(Stdio::null())
        .output()
        .expect("run cutover")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn records(journal: &Path) -> Vec<Record> {
    journal::read(journal).unwrap().records
}

// ------------------------------------------------------------------------------------ asciicast

struct Cast {
    header: serde_json::Map<String, Value>,
    /// (time, code, data) of every event, in file order.
    events: Vec<(f64, String, String)>,
}

/// Parses `text` as asciicast v2, asserting every rule of the format on the way.
fn parse_cast(text: &str) -> Cast {
    assert!(text.ends_with('\n'), "the file ends with a newline");
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("a header line")).unwrap();
    let header = header.as_object().expect("the header is an object").clone();
    assert_eq!(header["version"], 2, "{header:?}");
    for k in ["width", "height", "timestamp"] {
        assert!(header[k].is_u64(), "{k} is an integer: {header:?}");
    }
    assert!(header["duration"].is_f64() || header["duration"].is_u64());
    assert!(header["title"].is_string());
    assert!(header["env"]["TERM"].is_string(), "{header:?}");
    let mut events = Vec::new();
    let mut last = 0.0;
    for (i, line) in lines.enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("event {i}: {e}"));
        let a = v
            .as_array()
            .unwrap_or_else(|| panic!("event {i} is not an array: {line}"));
        assert_eq!(a.len(), 3, "event {i} has 3 elements: {line}");
        let t = a[0]
            .as_f64()
            .unwrap_or_else(|| panic!("event {i}: time: {line}"));
        assert!(t >= last, "event {i} goes back in time ({t} < {last})");
        assert!(t >= 0.0);
        last = t;
        let code = a[1].as_str().unwrap_or_else(|| panic!("event {i}: code"));
        assert!(["o", "m"].contains(&code), "event {i}: code {code:?}");
        let data = a[2].as_str().unwrap_or_else(|| panic!("event {i}: data"));
        events.push((t, code.to_string(), data.to_string()));
    }
    assert!(events.iter().any(|e| e.1 == "o"), "no output at all");
    let duration = header["duration"].as_f64().unwrap();
    assert!(
        (duration - last).abs() < 1e-6,
        "duration {duration} is the last event's time {last}"
    );
    Cast { header, events }
}

/// The terminal after every `"o"` event, as a player would leave it.
fn play(cast: &Cast) -> vt100::Parser {
    let rows = cast.header["height"].as_u64().unwrap() as u16;
    let cols = cast.header["width"].as_u64().unwrap() as u16;
    let mut vt = vt100::Parser::new(rows, cols, 100);
    for (_, code, data) in &cast.events {
        if code == "o" {
            vt.process(data.as_bytes());
        }
    }
    vt
}

/// The badge the header shows for a run's status.
fn badge(status: &RunStatus) -> &'static str {
    match status {
        RunStatus::NotStarted => "NOT STARTED",
        RunStatus::Running => "RUNNING",
        RunStatus::AwaitingConfirm => "HARD STOP",
        RunStatus::Paused { .. } => "PAUSED",
        RunStatus::Halted { .. } => "HALTED",
        RunStatus::Completed => "COMPLETED",
    }
}

fn final_state(records: &[Record]) -> State {
    let mut s = State::default();
    for (t, e) in cutover::runtime::events_of(records).unwrap() {
        s.apply(&e, t);
    }
    s
}

// ------------------------------------------------------------------------------------ tests

#[test]
fn a_completed_run_exports_as_asciicast_v2_at_the_journals_pace() {
    let journal = demo_journal(true);
    let recs = records(journal);
    let out_file = journal.with_file_name("completed-x2.cast");
    let o = cutover(&args(&[
        "journal",
        "export",
        &journal.display().to_string(),
        "--format",
        "asciicast",
        "--speed",
        "2",
        "--size",
        "100x30",
        "-o",
        &out_file.display().to_string(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("asciinema play"), "{stderr}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&out_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cast = parse_cast(&fs::read_to_string(&out_file).unwrap());
    let h = &cast.header;
    assert_eq!(
        (h["width"].as_u64(), h["height"].as_u64()),
        (Some(100), Some(30))
    );
    assert_eq!(h["env"]["TERM"], "xterm-256color");
    assert_eq!(h["idle_time_limit"].as_f64(), Some(2.0), "{h:?}");
    let first = &recs[0];
    assert_eq!(h["timestamp"].as_i64(), Some(first.time.timestamp()));
    let title = h["title"].as_str().unwrap();
    for part in [
        "Keystone tokens: Fernet → JWS",
        "fernet-to-jws",
        &first.run,
        "demo",
    ] {
        assert!(title.contains(part), "title {title:?} lacks {part:?}");
    }
    // The journal's own pace, halved: the run's span over 2.
    let span = (recs.last().unwrap().time - first.time)
        .num_microseconds()
        .unwrap() as f64
        / 1e6;
    let duration = h["duration"].as_f64().unwrap();
    assert!(
        (duration - span / 2.0).abs() < 0.001,
        "duration {duration} for a run of {span} s at ×2"
    );
    // A marker at every step, in the runbook's order, and at the completion.
    let markers: Vec<&str> = cast
        .events
        .iter()
        .filter(|e| e.1 == "m")
        .map(|e| e.2.as_str())
        .collect();
    let steps: Vec<&str> = markers
        .iter()
        .copied()
        .filter(|m| m.starts_with("step "))
        .collect();
    assert_eq!(
        steps,
        [
            "step preflight",
            "step keys",
            "step verify-keys",
            "step rolling",
            "step verify",
            "step close"
        ]
    );
    assert!(markers.contains(&"hard stop mixed-pool"), "{markers:?}");
    assert_eq!(markers.last(), Some(&"completed"));
    // The first frame opens on a cleared screen at 0; the last screen is the end of the run.
    let first_o = cast.events.iter().find(|e| e.1 == "o").unwrap();
    assert_eq!(first_o.0, 0.0);
    assert!(first_o.2.contains("\u{1b}[2J"), "{:?}", &first_o.2[..40]);
    let vt = play(&cast);
    let screen = vt.screen().contents();
    assert_eq!(final_state(&recs).status, RunStatus::Completed);
    for shown in ["COMPLETED", "3 nodes on jws", "■ end", "event 166/166"] {
        let shown = if shown.starts_with("event") {
            format!(
                "event {n}/{n}",
                n = cutover::runtime::events_of(&recs).unwrap().len()
            )
        } else {
            shown.to_string()
        };
        assert!(
            screen.contains(&shown),
            "no {shown:?} on the last screen:\n{screen}"
        );
    }
    // The player's terminal is left usable: cursor shown again.
    assert!(!vt.screen().hide_cursor());
}

/// What a cell's colour must be on the emulator: the crossterm backend writes named colours as
/// indexed ones (`38;5;N`).
fn vt_color(c: Color) -> vt100::Color {
    match c {
        Color::Reset => vt100::Color::Default,
        Color::Black => vt100::Color::Idx(0),
        Color::Red => vt100::Color::Idx(1),
        Color::Green => vt100::Color::Idx(2),
        Color::Yellow => vt100::Color::Idx(3),
        Color::Blue => vt100::Color::Idx(4),
        Color::Magenta => vt100::Color::Idx(5),
        Color::Cyan => vt100::Color::Idx(6),
        Color::Gray => vt100::Color::Idx(7),
        Color::DarkGray => vt100::Color::Idx(8),
        Color::LightRed => vt100::Color::Idx(9),
        Color::LightGreen => vt100::Color::Idx(10),
        Color::LightYellow => vt100::Color::Idx(11),
        Color::LightBlue => vt100::Color::Idx(12),
        Color::LightMagenta => vt100::Color::Idx(13),
        Color::LightCyan => vt100::Color::Idx(14),
        Color::White => vt100::Color::Idx(15),
        Color::Indexed(i) => vt100::Color::Idx(i),
        Color::Rgb(r, g, b) => vt100::Color::Rgb(r, g, b),
    }
}

/// The recording, played, leaves exactly the screen the replay view draws for the same moment:
/// every cell's text, colours, bold and reverse, at the operator's 80×24 and at 120×40.
fn assert_recording_draws_the_replay_screen(journal: &Path, cols: u16, rows: u16) {
    let recs = records(journal);
    let opts = Options {
        cols,
        rows,
        journal: journal.to_path_buf(),
        color: true,
        ..Options::default()
    };
    let mut bytes = Vec::new();
    let summary = export::write_asciicast(&recs, &opts, &mut bytes).unwrap();
    let cast = parse_cast(&String::from_utf8(bytes).unwrap());
    assert_eq!(
        summary.frames,
        cast.events.iter().filter(|e| e.1 == "o").count()
    );
    assert_eq!(
        summary.events,
        cutover::runtime::events_of(&recs).unwrap().len()
    );
    // What a player honouring the header's idle_time_limit takes: every gap cut to it.
    let limit = cast.header["idle_time_limit"].as_f64().unwrap();
    let played: f64 = cast
        .events
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).min(limit))
        .sum();
    assert!(
        (summary.played - played).abs() < 1e-5 && summary.played <= summary.duration + 1e-9,
        "played {} vs {played} (duration {})",
        summary.played,
        summary.duration
    );
    let vt = play(&cast);

    // The replay at its end, drawn directly.
    let events = cutover::runtime::events_of(&recs).unwrap();
    let now = events.last().unwrap().0;
    let mut player = Player::new(events, 1.0, false);
    player.control(ReplayControl::End);
    let mut app = App::new(Header {
        journal: journal.to_path_buf(),
        mode: Mode::Replay,
        operator: recs[0].actor.clone(),
    })
    .with_color(true)
    .with_ascii(false);
    // End pauses nothing: the export's last frame is of a player that played to the end.
    let mut status = player.status();
    status.playing = true;
    app.set_replay_status(status);
    let mut term = Terminal::new(TestBackend::new(cols, rows)).unwrap();
    term.draw(|f| app.draw(f, player.state(), now)).unwrap();
    let want = term.backend().buffer();

    let screen = vt.screen();
    let mut diffs = Vec::new();
    for y in 0..rows {
        for x in 0..cols {
            let got = screen.cell(y, x).unwrap();
            if got.is_wide_continuation() {
                continue;
            }
            let cell = &want[(x, y)];
            let text = if got.has_contents() {
                got.contents()
            } else {
                " "
            };
            let same = text == cell.symbol()
                && got.fgcolor() == vt_color(cell.fg)
                && got.bgcolor() == vt_color(cell.bg)
                && got.bold() == cell.modifier.contains(Modifier::BOLD)
                && got.inverse() == cell.modifier.contains(Modifier::REVERSED);
            if !same {
                diffs.push(format!(
                    "({x},{y}): played {text:?} fg {:?} bg {:?} bold {} inverse {}; drawn {:?} fg {:?} bg {:?} {:?}",
                    got.fgcolor(),
                    got.bgcolor(),
                    got.bold(),
                    got.inverse(),
                    cell.symbol(),
                    cell.fg,
                    cell.bg,
                    cell.modifier
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} cells differ at {cols}x{rows}, first: {:#?}\nplayed:\n{}",
        diffs.len(),
        &diffs[..diffs.len().min(5)],
        screen.contents()
    );
    // And that screen shows the run's final status.
    let status = final_state(&recs).status;
    assert!(
        screen.contents().contains(badge(&status)),
        "no {:?} on\n{}",
        badge(&status),
        screen.contents()
    );
}

#[test]
fn the_recording_draws_exactly_the_replay_screen_of_a_completed_run() {
    let journal = demo_journal(true);
    assert_recording_draws_the_replay_screen(journal, 80, 24);
    assert_recording_draws_the_replay_screen(journal, 120, 40);
}

#[test]
fn a_run_paused_at_a_hard_stop_ends_on_the_hard_stop() {
    let journal = demo_journal(false);
    assert_recording_draws_the_replay_screen(journal, 80, 24);
    // Through the binary, to standard output (a pipe), default size and pace.
    let o = cutover(&args(&[
        "journal",
        "export",
        &journal.display().to_string(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let cast = parse_cast(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(cast.header["width"], 120);
    assert_eq!(cast.header["height"], 40);
    let screen = play(&cast).screen().contents();
    assert_eq!(
        final_state(&records(journal)).status,
        RunStatus::AwaitingConfirm
    );
    for shown in [
        "HARD STOP",
        "jws-payload-readable",
        "JWS tokens are signed, not encrypted",
    ] {
        assert!(screen.contains(shown), "no {shown:?} on\n{screen}");
    }
}

/// `asciinema cat` and `asciinema play` (Debian's asciinema, which tests/install-deps.sh
/// installs) accept the file. Without asciinema the test fails and says how to get it: a
/// recording nobody has played is not known to play.
#[test]
fn asciinema_accepts_the_recording() {
    let have = |cmd: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        have("asciinema") && have("script"),
        "asciinema (or script) is not installed: run tests/install-deps.sh as root, or apt-get install asciinema bsdutils"
    );
    let journal = demo_journal(true);
    let file = journal.with_file_name("for-asciinema.cast");
    let o = cutover(&args(&[
        "journal",
        "export",
        &journal.display().to_string(),
        "--speed",
        "8",
        "-o",
        &file.display().to_string(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    // asciinema opens /dev/tty, so it runs in a pty (script(1)).
    let in_pty = |cmd: &str| {
        Command::new("script")
            .args(["-qec", cmd, "/dev/null"])
            .env("TERM", "xterm-256color")
            // asciinema refuses to run without a UTF-8 (or ASCII) locale.
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let f = file.display().to_string();
    let cat = in_pty(&format!("asciinema cat '{f}'"));
    let out = String::from_utf8_lossy(&cat.stdout);
    assert!(cat.status.success(), "asciinema cat: {}", text(&cat));
    assert!(out.contains("COMPLETED"), "asciinema cat printed {out}");
    assert!(!out.contains("Traceback"), "{out}");
    let play = in_pty(&format!("asciinema play -i 0.05 -s 4 '{f}'"));
    assert!(play.status.success(), "asciinema play: {}", text(&play));
    let out = String::from_utf8_lossy(&play.stdout);
    assert!(
        out.contains("COMPLETED") && !out.contains("Traceback"),
        "{out}"
    );
}

#[test]
fn bad_options_are_refused_with_exit_2() {
    let journal = demo_journal(false);
    let j = journal.display().to_string();
    for bad in [
        vec!["--speed", "0"],
        vec!["--speed", "65"],
        vec!["--speed", "nan"],
        vec!["--size", "10x5"],
        vec!["--size", "wide"],
        vec!["--idle-limit", "-1"],
        vec!["--format", "gif"],
    ] {
        let mut a = vec!["journal", "export", j.as_str()];
        a.extend(bad.iter().copied());
        let o = cutover(&args(&a));
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{bad:?} wrote a recording");
    }
}

/// A journal damaged at seq K is exported up to K, every screen under the replay's banner naming
/// K (as replay shows it); verify still fails it.
#[test]
fn a_damaged_journal_exports_up_to_its_damage_under_the_banner() {
    let journal = demo_journal(true);
    let copy = journal.with_file_name("damaged.jsonl");
    let mut lines: Vec<String> = fs::read_to_string(journal)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[29] = lines[29].replacen("\"seq\":30", "\"seq\":300", 1);
    fs::write(&copy, lines.join("\n") + "\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o600)).unwrap();
    let c = copy.display().to_string();
    let o = cutover(&args(&["journal", "export", &c, "--size", "80x24"]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("breaks at seq 30"), "{err}");
    let cast = parse_cast(&String::from_utf8(o.stdout).unwrap());
    let title = cast.header["title"].as_str().unwrap();
    assert!(
        title.contains("damaged at seq 30: up to seq 29 only"),
        "{title}"
    );
    let screen = play(&cast).screen().contents();
    // The banner (the replay's), and the run as of seq 29: still in the keys step.
    assert!(screen.contains("damaged at seq 30"), "{screen}");
    assert!(!screen.contains("COMPLETED"), "{screen}");
    // Records 1-29 hold 29 events (none is a runtime-only record).
    assert!(screen.contains("event 29/29"), "{screen}");
    let verify = cutover(&args(&["journal", "verify", &c]));
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
}

/// A recording is played elsewhere: Unicode whatever the exporting shell's locale says, ASCII
/// only when asked for with --ascii.
#[test]
fn the_recording_is_unicode_unless_ascii_is_asked_for() {
    let j = demo_journal(true).display().to_string();
    let screen = |extra: &[&str]| {
        let mut a = vec!["journal", "export", j.as_str(), "--size", "80x24"];
        a.extend_from_slice(extra);
        let o = cutover_in_locale(&args(&a), "C");
        assert!(o.status.success(), "{}", text(&o));
        play(&parse_cast(&String::from_utf8(o.stdout).unwrap()))
            .screen()
            .contents()
    };
    let unicode = screen(&[]);
    assert!(
        unicode.contains('✓') && unicode.contains("■ end"),
        "{unicode}"
    );
    let ascii = screen(&["--ascii"]);
    assert!(ascii.is_ascii(), "{ascii}");
    assert!(ascii.contains("COMPLETED"), "{ascii}");
}

#[test]
fn frame_times_follow_the_journal_scaled_and_never_run_backwards() {
    let t0: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).unwrap();
    let note = |ms: i64| {
        (
            t0 + Duration::milliseconds(ms),
            Event::Note {
                op: 0,
                message: String::new(),
            },
        )
    };
    // 1.5 s, then a clock that stepped back by half a second, then 5 s.
    let events = [note(0), note(1500), note(1000), note(5000)];
    assert_eq!(export::frame_times(&events, 1.0), [0.0, 1.5, 1.5, 5.0]);
    assert_eq!(export::frame_times(&events, 2.0), [0.0, 0.75, 0.75, 2.5]);
    assert!(export::frame_times(&[], 1.0).is_empty());
    // Sizes.
    assert_eq!(export::parse_size("120x40"), Ok((120, 40)));
    assert_eq!(export::parse_size("80×24"), Ok((80, 24)));
    assert!(export::parse_size("39x12").is_err());
    assert!(export::parse_size("80").is_err());
}
