//! The operator's tour (issue 9), from an empty directory outside the checkout: the runbooks
//! ship inside the binary and are named, listed and printed from anywhere; the flagship's closing
//! note gives a rollback command that runs exactly as printed; shell completions source in bash;
//! the manual page renders with `man`.
//!
//! Every command runs the real binary with a fresh temporary directory as its working
//! directory, so nothing can come from the checkout's `runbooks/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::bin::{BIN, Finished, run_to_end};
use support::journal::records;

/// No single command may take longer than this (a hang fails the test instead of blocking it).
const DEADLINE: Duration = Duration::from_secs(120);

/// The answers a headless run is given: every hard stop of the flagship and its rollback.
const ANSWERS: &str = "\
jws-payload-readable: confirm
mixed-pool: confirm
rollback-start: confirm
";

type Out = Finished;

/// `PATH` with the binary's directory first: `cutover` as an operator types it.
fn path_with_cutover() -> String {
    let dir = Path::new(BIN).parent().unwrap().display().to_string();
    match std::env::var("PATH") {
        Ok(p) => format!("{dir}:{p}"),
        Err(_) => dir,
    }
}

/// Run `program args` in `cwd` (stdin empty, output to files: no pipe fills up), killed after
/// [`DEADLINE`].
fn exec(cwd: &Path, program: &str, args: &[&str]) -> Out {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let scratch = std::env::temp_dir();
    let out_path = scratch.join(format!("tour-{}-{n}.stdout", std::process::id()));
    let err_path = scratch.join(format!("tour-{}-{n}.stderr", std::process::id()));
    let what = format!("{program} {}", args.join(" "));
    let out = run_to_end(
        Command::new(program)
            .args(args)
            .current_dir(cwd)
            .env("PATH", path_with_cutover())
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK"),
        &what,
        &out_path,
        &err_path,
        DEADLINE,
    );
    let _ = fs::remove_file(out_path);
    let _ = fs::remove_file(err_path);
    out
}

fn cutover(cwd: &Path, args: &[&str]) -> Out {
    exec(cwd, BIN, args)
}

/// `cutover run fernet-to-jws -i W/inventory.yaml --headless --answers answers.yaml` in
/// `cwd`, which must complete (exit 0).
fn flagship_headless(cwd: &Path) -> Out {
    cutover(
        cwd,
        &[
            "run",
            "fernet-to-jws",
            "-i",
            "W/inventory.yaml",
            "--headless",
            "--answers",
            "answers.yaml",
        ],
    )
    .expect(0)
}

/// A fresh working directory outside the checkout, holding nothing.
fn empty_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    assert!(
        !d.path().starts_with(env!("CARGO_MANIFEST_DIR")),
        "the tour must run outside the checkout"
    );
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    d
}

/// The shipped runbooks as the checkout has them: (name, text).
fn checkout_runbooks() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let mut v: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().unwrap() != "demo-answers.yaml"
        })
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn count(journal: &Path, kind: &str) -> usize {
    records(journal)
        .iter()
        .filter(|r| r["kind"] == kind)
        .count()
}

/// The providers in every node's keystone.conf of the world in `w`.
fn providers(w: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for k in 1..=3 {
        let conf =
            fs::read_to_string(w.join(format!("node{k}/etc/keystone/keystone.conf"))).unwrap();
        let p = conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("provider"))
            .filter_map(|r| r.trim().strip_prefix('='))
            .map(|r| r.trim().to_string())
            .next_back()
            .unwrap_or_else(|| "fernet (default)".into());
        v.push(p);
    }
    v
}

/// The journal a run in `cwd` wrote for `runbook` (its default name, in the working directory).
fn journals_of(cwd: &Path, runbook: &str) -> Vec<PathBuf> {
    let prefix = format!("cutover-{runbook}-");
    let mut v: Vec<PathBuf> = fs::read_dir(cwd)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".journal.jsonl")
        })
        .collect();
    v.sort();
    v
}

/// The rollback command of the flagship's closing note, as printed in a headless run's output.
fn rollback_line(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.contains("note") && l.contains("Rollback: "))
        .unwrap_or_else(|| panic!("no rollback note in the run's output:\n{stdout}"));
    line[line.find("Rollback: ").unwrap() + "Rollback: ".len()..]
        .trim()
        .to_string()
}

#[test]
fn the_tour_from_an_empty_directory() {
    let started = Instant::now();
    let tmp = empty_dir();
    let cwd = tmp.path();

    // 1. Every shipped runbook, one line each: name and title, the same set as the checkout's;
    //    then the answers file, said for what it is: one line for every file of runbooks/.
    let listed = cutover(cwd, &["runbooks"]).expect(0).stdout;
    let shipped = checkout_runbooks();
    let files = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks"))
        .unwrap()
        .count();
    assert_eq!(
        files,
        shipped.len() + 1,
        "runbooks/ holds the runbooks and one answers file"
    );
    assert_eq!(
        listed.lines().count(),
        files,
        "one line per file of runbooks/:\n{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("demo-answers ") && l.contains("answers, not a runbook")),
        "{listed}"
    );
    for (name, text) in &shipped {
        let rb = cutover::runbook::Runbook::parse(text, name).unwrap();
        let title = rb.title.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.trim_end().ends_with(&title)),
            "`{name}` with its title `{title}`:\n{listed}"
        );
        // Printed verbatim, by name with or without .yaml.
        for arg in [name.clone(), format!("{name}.yaml")] {
            let shown = cutover(cwd, &["runbooks", "show", &arg]).expect(0).stdout;
            assert_eq!(&shown, text, "runbooks show {arg}");
        }
    }
    let answers_example = cutover(cwd, &["runbooks", "show", "demo-answers"])
        .expect(0)
        .stdout;
    assert!(answers_example.contains("rollback-start: confirm"));

    // 2. A world, and the flagship by name, headless, with the test's own answers file.
    cutover(cwd, &["world", "create", "W"]).expect(0);
    fs::write(cwd.join("answers.yaml"), ANSWERS).unwrap();
    let w = cwd.join("W");
    assert_eq!(providers(&w), ["fernet"; 3]);
    let run = flagship_headless(cwd);
    assert_eq!(providers(&w), ["jws"; 3]);
    let forward = journals_of(cwd, "fernet-to-jws");
    assert_eq!(forward.len(), 1, "{forward:?}");
    let recs = records(&forward[0]);
    let origin = recs[0]["data"]["runbook_origin"].as_str().unwrap();
    assert!(
        origin.starts_with("built-in fernet-to-jws.yaml"),
        "the journal says the runbook was the built-in one: {origin}"
    );

    // 3. The closing note's rollback command: a runbook name and this run's inventory, by its
    //    absolute path; the journal's note says the same.
    let line = rollback_line(&run.stdout);
    let inventory = fs::canonicalize(w.join("inventory.yaml")).unwrap();
    assert_eq!(
        line,
        format!("cutover run jws-to-fernet -i {}", inventory.display()),
        "{}",
        run.stdout
    );
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "note" && r["data"].to_string().contains(&line)),
        "the journal's note holds the command"
    );

    // 4. Run exactly as printed, by a shell, in a terminal (it is an interactive command), from
    //    the same directory: every hard stop confirmed with Shift+Y, to COMPLETED, q, exit 0.
    let code = run_in_terminal(cwd, &line, "jws-to-fernet");
    assert_eq!(code, 0, "`{line}` exit code");
    assert_eq!(providers(&w), ["fernet"; 3]);
    let back = journals_of(cwd, "jws-to-fernet");
    assert_eq!(back.len(), 1, "{back:?}");
    let recs = records(&back[0]);
    assert_eq!(recs.last().unwrap()["kind"], "run_completed");
    assert!(
        recs[0]["data"]["runbook_origin"]
            .as_str()
            .unwrap()
            .starts_with("built-in jws-to-fernet.yaml")
    );
    cutover(cwd, &["journal", "verify", &back[0].display().to_string()]).expect(0);

    // 5. The same forward again (by name with .yaml), then its printed rollback headless:
    //    `cutover run jws-to-fernet -i W/inventory.yaml --headless --answers …` as the issue has it.
    let run = cutover(
        cwd,
        &[
            "run",
            "fernet-to-jws.yaml",
            "-i",
            "W/inventory.yaml",
            "--headless",
            "--answers",
            "answers.yaml",
        ],
    )
    .expect(0);
    assert_eq!(providers(&w), ["jws"; 3]);
    let line = rollback_line(&run.stdout);
    let headless = format!("{line} --headless --answers answers.yaml");
    let out = exec(cwd, "sh", &["-c", &headless]).expect(0);
    assert!(out.stderr.contains("completed."), "{}", out.stderr);
    assert_eq!(providers(&w), ["fernet"; 3]);
    eprintln!("the tour: {:?}", started.elapsed());
}

/// `line` run by `sh -c` in a pseudo-terminal with `cwd` as working directory, as an operator
/// would paste it; every hard stop the run raises is confirmed (Shift+Y) once it is on screen
/// and in the journal; q once the run completed. Returns the exit code.
fn run_in_terminal(cwd: &Path, line: &str, runbook: &str) -> i32 {
    use expectrl::process::unix::WaitStatus;
    const COLS: u16 = 120;
    const ROWS: u16 = 40;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", line])
        .current_dir(cwd)
        .env("PATH", path_with_cutover())
        .env("TERM", "xterm-256color")
        .env("LANG", "C.UTF-8")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("NO_COLOR");
    let mut p = expectrl::Session::spawn(cmd).expect("spawn in a pty");
    p.get_process_mut().set_window_size(COLS, ROWS).unwrap();
    let mut vt = vt100::Parser::new(ROWS, COLS, 0);
    let deadline = Instant::now() + DEADLINE;
    let mut eof = false;
    let pump = |p: &mut expectrl::session::OsSession, vt: &mut vt100::Parser, eof: &mut bool| {
        let mut buf = [0u8; 65536];
        while !*eof {
            match p.try_read(&mut buf) {
                Ok(0) => *eof = true,
                Ok(n) => vt.process(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => *eof = true,
            }
        }
    };
    let send = |p: &mut expectrl::session::OsSession, keys: &str| {
        use std::io::Write;
        p.write_all(keys.as_bytes()).unwrap();
        p.flush().unwrap();
    };
    let fail = |what: &str, screen: &str| -> ! {
        panic!("`{line}`: {what}; last screen:\n{screen}");
    };
    let mut quit_sent = false;
    loop {
        pump(&mut p, &mut vt, &mut eof);
        let screen = vt.screen().contents();
        match p.get_process().status() {
            Ok(WaitStatus::Exited(_, code)) => {
                assert!(quit_sent, "`{line}` exited {code} on its own:\n{screen}");
                return code;
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => fail(&format!("killed by {sig:?}"), &screen),
            _ => {}
        }
        if Instant::now() > deadline {
            let _ = p
                .get_process_mut()
                .kill(expectrl::process::unix::Signal::SIGKILL);
            fail("did not finish in time", &screen);
        }
        let journal = journals_of(cwd, runbook).pop();
        if let Some(j) = &journal {
            let raised = count(j, "hard_stop_raised");
            let answered = count(j, "hard_stop_confirmed") + count(j, "hard_stop_declined");
            if raised > answered && screen.contains("HARD STOP") {
                send(&mut p, "Y");
                let until = Instant::now() + Duration::from_secs(20);
                while count(j, "hard_stop_confirmed") + count(j, "hard_stop_declined") == answered {
                    pump(&mut p, &mut vt, &mut eof);
                    if Instant::now() > until {
                        fail(
                            "Shift+Y did not confirm the hard stop",
                            &vt.screen().contents(),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                continue;
            }
            if !quit_sent
                && count(j, "run_completed") == 1
                && screen.contains("COMPLETED")
                && !screen.contains("HARD STOP")
            {
                send(&mut p, "q");
                quit_sent = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A name that is neither a file nor a shipped runbook is refused before anything happens,
/// with every shipped name; a checkout path used away from the checkout names the shipped one.
#[test]
fn a_runbook_that_is_no_file_and_no_shipped_name_is_refused_with_the_names() {
    let tmp = empty_dir();
    let cwd = tmp.path();
    cutover(cwd, &["world", "create", "W"]).expect(0);
    let before = fs::read_dir(cwd).unwrap().count();
    for args in [
        &[
            "run",
            "runbooks/jws-to-fernet.yaml",
            "-i",
            "W/inventory.yaml",
            "--headless",
        ][..],
        &["plan", "jws-to-frenet", "-i", "W/inventory.yaml"][..],
        &["check", "jws-to-frenet"][..],
        &["demo", "--runbook", "nope", "--headless", "--world", "W"][..],
        &["runbooks", "show", "nope"][..],
    ] {
        let out = cutover(cwd, args).expect(2);
        for (name, _) in checkout_runbooks() {
            assert!(
                out.stderr.contains(&name),
                "{}: {}",
                args.join(" "),
                out.stderr
            );
        }
    }
    let out = cutover(
        cwd,
        &[
            "run",
            "runbooks/jws-to-fernet.yaml",
            "-i",
            "W/inventory.yaml",
        ],
    )
    .expect(2);
    assert!(
        out.stderr.contains("name it: `jws-to-fernet`"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fs::read_dir(cwd).unwrap().count(),
        before,
        "nothing was created"
    );

    // An existing file wins over a shipped name: a file called `jws-to-fernet` holding the
    // rotation runbook is the rotation.
    let rotate = checkout_runbooks()
        .into_iter()
        .find(|(n, _)| n == "fernet-rotate")
        .unwrap()
        .1;
    fs::write(cwd.join("jws-to-fernet"), rotate).unwrap();
    let out = cutover(cwd, &["check", "jws-to-fernet"]).expect(0);
    assert!(out.stdout.contains("4 steps"), "{}", out.stdout);
    let out = cutover(cwd, &["plan", "jws-to-fernet", "-i", "W/inventory.yaml"]).expect(0);
    assert!(
        out.stdout
            .starts_with("PLAN  Keystone: rotate the Fernet keys"),
        "{}",
        out.stdout
    );
}

/// `plan`, `check` and `demo --runbook` take a name from anywhere.
#[test]
fn plan_check_and_demo_take_a_shipped_name() {
    let tmp = empty_dir();
    let cwd = tmp.path();
    cutover(cwd, &["world", "create", "W"]).expect(0);
    let out = cutover(cwd, &["check", "jws-rotate", "-i", "W/inventory.yaml"]).expect(0);
    assert!(out.stdout.contains("ok"), "{}", out.stdout);
    let plan = cutover(cwd, &["plan", "fernet-to-jws", "-i", "W/inventory.yaml"])
        .expect(0)
        .stdout;
    let inventory = fs::canonicalize(cwd.join("W/inventory.yaml")).unwrap();
    assert!(
        plan.contains(&format!(
            "note: Rollback: cutover run jws-to-fernet -i {}",
            inventory.display()
        )),
        "{plan}"
    );
    let out = cutover(
        cwd,
        &[
            "demo",
            "--runbook",
            "fernet-rotate",
            "--world",
            "W",
            "--headless",
            "--journal",
            "rotate.jsonl",
        ],
    )
    .expect(0);
    assert!(out.stderr.contains("completed."), "{}", out.stderr);
    let recs = records(&cwd.join("rotate.jsonl"));
    assert_eq!(recs[0]["data"]["runbook_name"], "fernet-rotate");
}

/// Without a terminal, the interactive UI says so before anything is locked or journaled.
#[test]
fn the_ui_without_a_terminal_says_so_and_changes_nothing() {
    let tmp = empty_dir();
    let cwd = tmp.path();
    cutover(cwd, &["world", "create", "W"]).expect(0);
    let out = cutover(cwd, &["run", "fernet-to-jws", "-i", "W/inventory.yaml"]).expect(2);
    assert!(out.stderr.contains("needs a terminal"), "{}", out.stderr);
    assert!(out.stderr.contains("--headless"), "{}", out.stderr);
    assert!(journals_of(cwd, "fernet-to-jws").is_empty());
    // No fleet lock was left: a headless run goes through.
    fs::write(cwd.join("answers.yaml"), ANSWERS).unwrap();
    flagship_headless(cwd);
}

/// `cutover completions bash` sources cleanly in bash, registers the completion, and completes
/// subcommands.
#[test]
fn bash_completion_sources_cleanly_and_completes() {
    let tmp = empty_dir();
    let cwd = tmp.path();
    let script = cutover(cwd, &["completions", "bash"]).expect(0).stdout;
    fs::write(cwd.join("cutover.bash"), &script).unwrap();
    let out = exec(
        cwd,
        "bash",
        &[
            "--norc",
            "--noprofile",
            "-c",
            "set -e; source ./cutover.bash; complete -p cutover; \
             COMP_WORDS=(cutover ru); COMP_CWORD=1; COMP_LINE='cutover ru'; COMP_POINT=10; \
             _cutover cutover ru cutover; printf '%s\\n' \"${COMPREPLY[@]}\"",
        ],
    )
    .expect(0);
    assert_eq!(out.stderr, "", "sourcing printed errors");
    let mut lines = out.stdout.lines();
    let reg = lines.next().unwrap_or_default();
    assert!(
        reg.starts_with("complete ") && reg.trim_end().ends_with(" cutover"),
        "complete -p cutover: {reg}"
    );
    let offered: Vec<&str> = lines.collect();
    for want in ["run", "runbooks"] {
        assert!(
            offered.contains(&want),
            "`cutover ru<TAB>` offers {want}: {offered:?}"
        );
    }
    // The names `runbooks show` takes.
    let out = exec(
        cwd,
        "bash",
        &[
            "--norc",
            "--noprofile",
            "-c",
            "source ./cutover.bash; COMP_WORDS=(cutover runbooks show jws-r); COMP_CWORD=3; \
             _cutover cutover jws-r show; printf '%s\\n' \"${COMPREPLY[@]}\"",
        ],
    )
    .expect(0);
    let mut offered: Vec<&str> = out.stdout.lines().collect();
    offered.sort();
    assert_eq!(offered, ["jws-retire-keys", "jws-rotate"], "{}", out.stderr);
}

/// zsh and fish scripts are generated for `cutover`; where the shell is installed, it parses
/// them (`-n`).
#[test]
fn zsh_and_fish_completions_are_generated() {
    let tmp = empty_dir();
    let cwd = tmp.path();
    for (shell, marker) in [("zsh", "#compdef cutover"), ("fish", "complete -c cutover")] {
        let script = cutover(cwd, &["completions", shell]).expect(0).stdout;
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        assert!(
            script.contains("runbooks"),
            "{shell}: no runbooks subcommand"
        );
        let file = cwd.join(format!("cutover.{shell}"));
        fs::write(&file, &script).unwrap();
        if Command::new(shell).arg("--version").output().is_ok() {
            exec(cwd, shell, &["-n", &file.display().to_string()]).expect(0);
        } else {
            eprintln!("{shell} is not installed: its script was not parsed by {shell}");
        }
    }
    cutover(cwd, &["completions", "tcsh"]).expect(2);
}

/// `cutover man` is roff that `man -l` renders without a warning, naming every subcommand;
/// `cutover man journal show` is that subcommand's page.
#[test]
fn man_page_renders_with_man() {
    assert!(
        Command::new("man").arg("--version").output().is_ok(),
        "`man` is not installed: tests/install-deps.sh installs man-db (apt-get install man-db)"
    );
    let tmp = empty_dir();
    let cwd = tmp.path();
    let page = cutover(cwd, &["man"]).expect(0).stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH cutover 1"),
        "{page}"
    );
    fs::write(cwd.join("cutover.1"), &page).unwrap();
    let shown = render_man(cwd, "cutover.1");
    for sub in [
        "demo",
        "run",
        "resume",
        "replay",
        "check",
        "plan",
        "probe",
        "unlock",
        "runbooks",
        "completions",
        "man",
        "journal",
        "world",
    ] {
        assert!(
            shown.contains(&format!("cutover-{sub}(1)")),
            "the page names cutover-{sub}(1):\n{shown}"
        );
    }
    assert!(
        shown.contains("SUBCOMMANDS") && shown.contains("SYNOPSIS"),
        "{shown}"
    );
    let exit = &shown[shown.find("EXIT STATUS").expect("an EXIT STATUS section")..];
    for code in ["0", "2", "3", "4", "5"] {
        assert!(
            exit.lines()
                .any(|l| l.trim_start().starts_with(&format!("{code} "))),
            "exit status {code}:\n{exit}"
        );
    }

    let page = cutover(cwd, &["man", "journal", "show"]).expect(0).stdout;
    fs::write(cwd.join("cutover-journal-show.1"), &page).unwrap();
    let shown = render_man(cwd, "cutover-journal-show.1");
    assert!(shown.contains("cutover journal show"), "{shown}");
    assert!(shown.contains("--format"), "{shown}");
    let out = cutover(cwd, &["man", "jurnal"]).expect(2);
    assert!(out.stderr.contains("journal"), "{}", out.stderr);
}

/// `man -l FILE` rendered as plain text, with groff's warnings on (any is a failure).
fn render_man(cwd: &Path, file: &str) -> String {
    let out = Command::new("man")
        .args(["-l", file])
        .current_dir(cwd)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("MANROFFOPT", "-ww")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "man -l {file} exited {:?}: {stderr}",
        out.status.code()
    );
    assert_eq!(stderr, "", "man -l {file} warned");
    // Bold and underline by overstrike, if any, removed.
    let raw = String::from_utf8_lossy(&out.stdout);
    let mut s = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '\u{8}' {
            s.pop();
        } else {
            s.push(c);
        }
    }
    s
}

/// A run of a shipped runbook, resumed from anywhere: resume compares the recorded runbook with
/// this binary's own copy, and says nothing about a missing file (there is none to look for).
#[test]
fn resuming_a_shipped_runbook_compares_with_the_built_in_copy() {
    let dir = empty_dir();
    let d = dir.path();
    cutover(d, &["world", "create", "w", "--nodes", "2"]).expect(0);
    // Declining the first hard stop pauses the run (exit 3).
    fs::write(d.join("decline.yaml"), "jws-payload-readable: decline\n").unwrap();
    fs::write(d.join("answers.yaml"), ANSWERS).unwrap();
    let j = "j.jsonl";
    cutover(
        d,
        &[
            "run",
            "fernet-to-jws",
            "-i",
            "w/inventory.yaml",
            "--headless",
            "--answers",
            "decline.yaml",
            "--journal",
            j,
        ],
    )
    .expect(3);
    let r = cutover(d, &["resume", j, "--headless", "--answers", "answers.yaml"]).expect(0);
    assert!(
        r.stderr
            .contains("started with runbook built-in fernet-to-jws.yaml"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("not there now") && !r.stderr.contains("differently now"),
        "resume misread the built-in origin:\n{}",
        r.stderr
    );
}
