//! What cutover prints outside the screen: the headless event lines and the probe table.
//!
//! - A multi-line failure (a failed restart's evidence, a halt's reason and what to do next) is
//!   an indented block under its event line, each line made safe on its own; one-line events
//!   stay one line (no `\n` escapes, no folded evidence).
//! - Under a locale that is not UTF-8 (LC_ALL=C), or with `--ascii`, nothing above 127 is
//!   printed; under UTF-8 the Unicode symbols are kept (so these checks can fail both ways).
//!
//! Each test serves its own demo world (free loopback ports) from a temp dir and runs the real
//! binary from the crate root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ANSWERS: &str = "runbooks/demo-answers.yaml";
/// No single command may take longer than this (a hang fails the test instead of blocking it).
const DEADLINE: Duration = Duration::from_secs(120);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The locale a command runs under.
#[derive(Clone, Copy)]
enum Locale {
    /// LC_ALL=C: the C locale, not UTF-8.
    C,
    /// LC_ALL=C.UTF-8.
    Utf8,
}

/// `cutover ARGS` from the crate root under `locale`, output to files in `scratch`, killed
/// after [`DEADLINE`].
fn cutover(scratch: &Path, name: &str, locale: Locale, args: &[&str]) -> Run {
    let out = scratch.join(format!("{name}.stdout"));
    let err = scratch.join(format!("{name}.stderr"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env_remove("LANG")
        .env_remove("LC_CTYPE")
        .env(
            "LC_ALL",
            match locale {
                Locale::C => "C",
                Locale::Utf8 => "C.UTF-8",
            },
        )
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    };
    assert!(status.is_some(), "cutover {args:?} hung:\n{}", run.all());
    run
}

/// `cutover world serve DIR`, stopped on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// A served three-node world whose node2 cannot restart (`cutover world fault DIR
/// break-restart node2`): (tempdir, world dir, inventory, the serving process).
fn broken_world() -> (tempfile::TempDir, PathBuf, String, Served) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let info =
        cutover::world::create(&dir, &cutover::world::WorldSpec { nodes: 3, lbs: 1 }).unwrap();
    let served = Served(
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["world", "serve"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(dir.join("serve.pid").exists()
        && info
            .nodes
            .iter()
            .all(|n| std::net::TcpStream::connect(("127.0.0.1", n.port)).is_ok()))
    {
        assert!(Instant::now() < deadline, "the world did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = dir.to_str().unwrap().to_string();
    let fault = cutover(
        tmp.path(),
        "fault",
        Locale::Utf8,
        &["world", "fault", &d, "break-restart", "node2"],
    );
    assert_eq!(fault.code, Some(0), "{}", fault.all());
    let inv = info.inventory_path.to_str().unwrap().to_string();
    (tmp, dir, inv, served)
}

/// The characters of `s` above 127, with the lines that hold them.
fn not_ascii(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.is_ascii()).collect()
}

/// The column where an event line's text starts: after `HH:MM:SS  KIND(19) NODE(8) `.
const TEXT_COLUMN: usize = 8 + 2 + 19 + 1 + 8 + 1;

/// A failed restart headless: the outcome and the halt are blocks (the evidence indented under
/// the text, `next:` on a line of its own at the text's column), every other event one line; and
/// under LC_ALL=C nothing but ASCII, where LC_ALL=C.UTF-8 keeps the symbols.
#[test]
fn a_failed_restart_prints_as_an_indented_block_and_c_locale_output_is_ascii() {
    let (tmp, _dir, inv, _served) = broken_world();
    let journal = tmp.path().join("run.jsonl");
    let j = journal.to_str().unwrap();
    let run = cutover(
        tmp.path(),
        "run",
        Locale::C,
        &[
            "run",
            "fernet-to-jws",
            "-i",
            &inv,
            "--headless",
            "--answers",
            ANSWERS,
            "--journal",
            j,
        ],
    );
    assert_eq!(run.code, Some(4), "expected a halt:\n{}", run.all());
    let out = &run.stdout;

    // Nothing above 127 under the C locale, on stdout or stderr.
    assert!(
        not_ascii(out).is_empty(),
        "{:?}\n{}",
        not_ascii(out),
        run.all()
    );
    assert!(
        not_ascii(&run.stderr).is_empty(),
        "{:?}",
        not_ascii(&run.stderr)
    );
    // The symbols are there, in ASCII: a step starts `>`, completes `+`, an intent `->`.
    for want in ["  > Preflight", "  + preflight", "  -> "] {
        assert!(out.contains(want), "no `{want}` in\n{out}");
    }

    // No escaped line breaks: every line break of a text starts a line of its own.
    assert!(!out.contains("\\n"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let event = |l: &str| {
        l.len() > 10
            && l.as_bytes()[2] == b':'
            && l.as_bytes()[5] == b':'
            && l[..8].bytes().all(|b| b.is_ascii_digit() || b == b':')
    };
    let failed = lines
        .iter()
        .position(|l| event(l) && l.contains(" outcome ") && l.contains("FAILED node2:"))
        .unwrap_or_else(|| panic!("no failed restart outcome:\n{out}"));
    // The duration ends the first line, the evidence follows under the text.
    assert!(
        lines[failed].ends_with(" ms)"),
        "the duration is on the event's line: {}",
        lines[failed]
    );
    let block: Vec<&str> = lines[failed + 1..]
        .iter()
        .take_while(|l| !event(l))
        .copied()
        .collect();
    assert!(block.len() >= 2, "the evidence follows as a block:\n{out}");
    let indent = " ".repeat(TEXT_COLUMN);
    for l in &block {
        assert!(l.starts_with(&indent), "not under the text: `{l}`\n{out}");
    }
    assert!(
        block.iter().any(|l| l
            .trim_start()
            .starts_with("CRITICAL keystone Unhandled error: InjectedFault")),
        "{out}"
    );
    assert!(
        block.iter().any(|l| l.ends_with("since the restart:")),
        "{out}"
    );

    // The halt: the reason's first line on the event line, its evidence, then `next:` at the
    // text's column.
    let halted = lines
        .iter()
        .position(|l| event(l) && l.contains(" run_halted "))
        .unwrap_or_else(|| panic!("no halt:\n{out}"));
    assert!(
        lines[halted].contains("HALTED: service.restart failed on node2: node2: "),
        "{}",
        lines[halted]
    );
    let block: Vec<&str> = lines[halted + 1..]
        .iter()
        .take_while(|l| !event(l))
        .copied()
        .collect();
    let next = block
        .iter()
        .find(|l| l.starts_with(&format!("{indent}next: ")))
        .unwrap_or_else(|| panic!("no `next:` under the halt:\n{out}"));
    assert!(next.contains("node2"), "{next}");
    assert_eq!(
        block.last(),
        Some(next),
        "next comes after the evidence:\n{out}"
    );
    for l in &block {
        assert!(l.starts_with(&indent), "not under the text: `{l}`\n{out}");
    }

    // One-line events stay one line: every line is an event or belongs to one of the two
    // blocks above, or to a mixed-pool hard stop's token cache paragraph.
    let mut blocks = vec![failed, halted];
    blocks.extend(lines.iter().enumerate().filter_map(|(i, l)| {
        (event(l) && l.contains(" hard_stop_raised ") && l.contains("`mixed-pool`")).then_some(i)
    }));
    let mut owner = None;
    for (i, l) in lines.iter().enumerate() {
        if event(l) {
            owner = Some(i);
        } else {
            assert!(
                owner.is_some_and(|o| blocks.contains(&o)),
                "line {i} continues a one-line event: `{l}`\n{out}"
            );
        }
    }

    // The same halt under UTF-8 (a resume halts again): the symbols are Unicode, the layout the
    // same.
    let again = cutover(
        tmp.path(),
        "resume",
        Locale::Utf8,
        &["resume", j, "--headless", "--answers", ANSWERS],
    );
    assert_eq!(again.code, Some(4), "{}", again.all());
    assert!(again.stdout.contains("  → "), "{}", again.all());
    assert!(
        again
            .stdout
            .lines()
            .any(|l| l.starts_with(&format!("{indent}next: "))),
        "{}",
        again.all()
    );
    // --ascii under UTF-8 is ASCII too.
    let forced = cutover(
        tmp.path(),
        "resume-ascii",
        Locale::Utf8,
        &["resume", j, "--headless", "--answers", ANSWERS, "--ascii"],
    );
    assert_eq!(forced.code, Some(4), "{}", forced.all());
    assert!(
        not_ascii(&forced.stdout).is_empty(),
        "{:?}",
        not_ascii(&forced.stdout)
    );
    assert!(forced.stdout.contains("  -> "), "{}", forced.all());
}

/// `cutover probe` under LC_ALL=C (and with --ascii) is ASCII; under UTF-8 its reload line keeps
/// its `·`.
#[test]
fn probe_under_the_c_locale_is_ascii() {
    let (tmp, _dir, inv, _served) = broken_world();
    let utf8 = cutover(
        tmp.path(),
        "probe-utf8",
        Locale::Utf8,
        &["probe", "-i", &inv],
    );
    assert_eq!(utf8.code, Some(0), "{}", utf8.all());
    assert!(
        utf8.stdout
            .contains("a reload loses MAINT (no server-state-file) · "),
        "{}",
        utf8.all()
    );
    let c = cutover(tmp.path(), "probe-c", Locale::C, &["probe", "-i", &inv]);
    assert_eq!(c.code, Some(0), "{}", c.all());
    assert!(
        not_ascii(&c.stdout).is_empty(),
        "{:?}",
        not_ascii(&c.stdout)
    );
    assert!(
        not_ascii(&c.stderr).is_empty(),
        "{:?}",
        not_ascii(&c.stderr)
    );
    assert!(
        c.stdout
            .contains("a reload loses MAINT (no server-state-file) | "),
        "{}",
        c.all()
    );
    // The same header: the columns are where they were.
    assert_eq!(utf8.stdout.lines().next(), c.stdout.lines().next());
    let forced = cutover(
        tmp.path(),
        "probe-ascii",
        Locale::Utf8,
        &["probe", "-i", &inv, "--ascii"],
    );
    assert_eq!(forced.code, Some(0), "{}", forced.all());
    assert!(
        not_ascii(&forced.stdout).is_empty(),
        "{:?}",
        not_ascii(&forced.stdout)
    );
}

/// The block's lines are each made safe: an escape sequence or a carriage return in a
/// service's output (the evidence under a halt) cannot reach the terminal or break the column;
/// a halt without evidence is its line plus `next:`; a one-line note stays one line.
#[test]
fn each_line_of_a_block_is_sanitised_on_its_own() {
    use chrono::TimeZone;
    use cutover::engine::{Event, State};
    let at = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 2, 3, 4).unwrap();
    let st = State::default();
    let halt = Event::RunHalted {
        op: 7,
        node: Some("node2".into()),
        reason: "service.restart failed on node2: exited 1: bad\n  restart stderr:\n    \u{1b}]0;owned\u{7}evil\u{1b}[2J line\r\n    tab\there\rback\n\n".into(),
        next: "fix it, then resume".into(),
    };
    let text = cutover::runtime::event_text(at, &halt, &st, false);
    let indent = " ".repeat(TEXT_COLUMN);
    assert_eq!(
        text,
        format!(
            "02:03:04  run_halted          node2    HALTED: service.restart failed on node2: exited 1: bad\n\
             {indent}  restart stderr:\n\
             {indent}    evil line\n\
             {indent}    tab here\\rback\n\
             {indent}next: fix it, then resume\n"
        )
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");

    let short = Event::RunHalted {
        op: 7,
        node: None,
        reason: "gate sessions-drained failed".into(),
        next: String::new(),
    };
    assert_eq!(
        cutover::runtime::event_text(at, &short, &st, true),
        "02:03:04  run_halted                   HALTED: gate sessions-drained failed\n"
    );
    let note = Event::Note {
        op: 1,
        message: "Fernet keys kept — rollback is a config flip".into(),
    };
    assert_eq!(
        cutover::runtime::event_text(at, &note, &st, true),
        "02:03:04  note                         note: Fernet keys kept - rollback is a config flip\n"
    );
    assert_eq!(
        cutover::runtime::event_text(at, &note, &st, false),
        "02:03:04  note                         note: Fernet keys kept — rollback is a config flip\n"
    );
}

#[test]
fn runbooks_and_check_under_the_c_locale_are_ascii() {
    let tmp = tempfile::tempdir().unwrap();
    let utf8 = cutover(tmp.path(), "runbooks-utf8", Locale::Utf8, &["runbooks"]);
    assert_eq!(utf8.code, Some(0), "{}", utf8.all());
    assert!(utf8.stdout.contains("Fernet → JWS"), "{}", utf8.all());
    for (name, args) in [
        ("runbooks-c", vec!["runbooks"]),
        ("check-c", vec!["check", "fernet-to-jws"]),
    ] {
        let c = cutover(tmp.path(), name, Locale::C, &args);
        assert_eq!(c.code, Some(0), "{}", c.all());
        assert!(!c.stdout.is_empty(), "{}", c.all());
        assert!(
            not_ascii(&c.stdout).is_empty(),
            "{:?}",
            not_ascii(&c.stdout)
        );
        assert!(
            not_ascii(&c.stderr).is_empty(),
            "{:?}",
            not_ascii(&c.stderr)
        );
    }
}
