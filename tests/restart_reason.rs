//! A restart that fails shows the service's own reason, not the last thing the restart command
//! printed. The demo world's Keystone refuses a keystone.conf with an invalid boolean the way
//! Keystone 30 does (deprecation warnings on stderr, then argparse's one line or a CRITICAL line
//! and a Traceback in its log); the flagship, headless, halts at node1's restart, and the
//! journal, the halt and the output name the invalid option, not the warning.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;
use support::bin::{BIN, Captured as Run, run_captured};
use support::journal::existing_records as records;
use support::world::{Served, nodes_listen, serve};

const ANSWERS: &str = "runbooks/demo-answers.yaml";
const DEADLINE: Duration = Duration::from_secs(120);

/// `cutover ARGS` from the crate root, output to files in `scratch`, killed after [`DEADLINE`].
fn cutover(scratch: &Path, name: &str, args: &[&str]) -> Run {
    let out = scratch.join(format!("{name}.stdout"));
    let err = scratch.join(format!("{name}.stderr"));
    let run = run_captured(
        Command::new(BIN)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1"),
        &format!("cutover {args:?}"),
        &out,
        &err,
        DEADLINE,
        Duration::from_millis(50),
    );
    assert!(
        run.status.is_some(),
        "cutover {args:?} hung:\n{}",
        run.all()
    );
    run
}

/// A served world whose node1 gets `edit` applied to its keystone.conf while its Keystone runs
/// (as an operator's config management would), then the flagship headless until it halts:
/// (tempdir, world, the serving process, journal, the run).
fn broken_run(
    edit: impl Fn(&str) -> String,
) -> (
    tempfile::TempDir,
    cutover::world::WorldInfo,
    Served,
    PathBuf,
    Run,
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let info =
        cutover::world::create(&dir, &cutover::world::WorldSpec { nodes: 3, lbs: 1 }).unwrap();
    let served = serve(&dir, || nodes_listen(&info));
    let conf = &info.node("node1").unwrap().keystone_conf;
    let text = fs::read_to_string(conf).unwrap();
    let broken = edit(&text);
    assert_ne!(broken, text, "the edit changed nothing");
    fs::write(conf, broken).unwrap();
    let journal = tmp.path().join("run.jsonl");
    let inv = info.inventory_path.to_str().unwrap().to_string();
    let j = journal.to_str().unwrap().to_string();
    let run = cutover(
        tmp.path(),
        "run",
        &[
            "run",
            "runbooks/fernet-to-jws.yaml",
            "-i",
            &inv,
            "--headless",
            "--answers",
            ANSWERS,
            "--journal",
            &j,
        ],
    );
    (tmp, info, served, journal, run)
}

/// The failed restart's outcome summary and the halt's reason.
fn restart_failure(journal: &Path, run: &Run) -> (String, String) {
    let recs = records(journal);
    let restart_ids: Vec<u64> = recs
        .iter()
        .filter(|r| {
            r["kind"] == "intent"
                && r["node"] == "node1"
                && r["data"]["action"] == "service.restart"
        })
        .filter_map(|r| r["data"]["id"].as_u64())
        .collect();
    let outcome = recs
        .iter()
        .find(|r| {
            r["kind"] == "outcome"
                && r["data"]["ok"] == false
                && r["data"]["id"]
                    .as_u64()
                    .is_some_and(|id| restart_ids.contains(&id))
        })
        .unwrap_or_else(|| panic!("no failed node1 restart in the journal:\n{}", run.all()));
    let halt = recs
        .iter()
        .find(|r| r["kind"] == "run_halted")
        .unwrap_or_else(|| panic!("the run did not halt:\n{}", run.all()));
    (
        outcome["data"]["summary"].as_str().unwrap().to_string(),
        halt["data"]["reason"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_bad_value_read_at_start_halts_with_the_traceback_and_the_option() {
    let (tmp, info, _served, journal, run) =
        broken_run(|conf| format!("{conf}\n[cache]\nenabled = notabool\n"));
    assert_eq!(run.code(), Some(4), "expected a halt:\n{}", run.all());

    // The restart script itself ends on a deprecation warning: the old summary's source.
    let stderr = fs::read_to_string(info.node("node1").unwrap().run_dir.join("start.stderr"))
        .expect("the failed start left its stderr");
    assert!(
        stderr.trim_end().ends_with("is deprecated since Victoria release. You need to use YAML format which will be default in future. You can use ``oslopolicy-convert-json-to-yaml`` tool to convert existing JSON-formatted policy file to YAML-formatted in backward compatible way: https://docs.openstack.org/oslo.policy/latest/cli/oslopolicy-convert-json-to-yaml.html."),
        "{stderr}"
    );

    let (summary, reason) = restart_failure(&journal, &run);
    let headline = summary.lines().next().unwrap();
    assert!(
        headline.contains("Value for option enabled")
            && headline.ends_with("Unexpected boolean value 'notabool'"),
        "the headline names the option and its value: {summary}"
    );
    assert!(
        !headline.contains("WARNING") && !headline.contains("Eventlet"),
        "{summary}"
    );
    // The evidence: the log since the restart, condensed, with its traceback.
    let log = info.node("node1").unwrap().log_file.display().to_string();
    assert!(
        summary.contains(&format!("\n  {log} since the restart:\n    CRITICAL keystone Unhandled error: oslo_config.cfg.ConfigFileValueError")),
        "{summary}"
    );
    assert!(
        summary.contains("\n    Traceback (most recent call last):"),
        "{summary}"
    );
    assert!(
        summary.contains("\n    ValueError: Unexpected boolean value 'notabool'"),
        "{summary}"
    );
    assert!(
        summary.contains("raise ConfigFileValueError(message)"),
        "{summary}"
    );
    assert!(
        !summary.contains("WARNING") && !summary.contains("Eventlet"),
        "{summary}"
    );
    // Bounded: a headline and at most MAX_RENDERED lines of evidence.
    assert!(
        summary.lines().count() <= 1 + cutover::drivers::service::log::MAX_RENDERED,
        "{summary}"
    );
    assert!(
        reason.contains("Unexpected boolean value 'notabool'"),
        "{reason}"
    );
    // The headless output says it too (on the outcome's and the halt's lines).
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("HALTED") && l.contains("Value for option enabled")),
        "{}",
        run.all()
    );

    // Fixed, the same run resumes and completes.
    let conf = &info.node("node1").unwrap().keystone_conf;
    let text = fs::read_to_string(conf).unwrap();
    fs::write(conf, text.replace("enabled = notabool", "enabled = false")).unwrap();
    let j = journal.to_str().unwrap();
    let resumed = cutover(
        tmp.path(),
        "resume",
        &["resume", j, "--headless", "--answers", ANSWERS],
    );
    assert_eq!(resumed.code(), Some(0), "{}", resumed.all());
}

#[test]
fn a_bad_command_line_boolean_halts_with_argparses_line() {
    let (_tmp, _info, _served, journal, run) =
        broken_run(|conf| conf.replacen("#debug = false", "debug = notabool", 1));
    assert_eq!(run.code(), Some(4), "expected a halt:\n{}", run.all());
    let (summary, reason) = restart_failure(&journal, &run);
    let headline = summary.lines().next().unwrap();
    assert!(
        headline.ends_with(": argument --debug: Invalid Boolean value: notabool"),
        "{summary}"
    );
    assert!(!summary.contains("from eventlet import event"), "{summary}");
    assert!(
        reason.contains("argument --debug: Invalid Boolean value: notabool"),
        "{reason}"
    );
}

/// Under systemd: the unit comes from the inventory's `systemctl restart UNIT`, and `journalctl
/// -u UNIT --since @<the node's clock before the restart>` is read when systemctl and journalctl
/// exist. Stand-ins for both on the PATH (reach: local): systemctl fails as systemd says a unit
/// failed, journalctl records its arguments and answers with what systemd would hold.
#[test]
fn under_systemd_the_units_journal_since_the_restart_is_shown() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let info = cutover::world::create(
        &tmp.path().join("w"),
        &cutover::world::WorldSpec { nodes: 3, lbs: 1 },
    )
    .unwrap();
    let mut inv: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(&info.inventory_path).unwrap()).unwrap();
    for n in inv["nodes"].as_sequence_mut().unwrap() {
        if n["name"] == "node1" {
            n["restart"] = "systemctl restart keystone-node1.service".into();
        }
    }
    fs::write(&info.inventory_path, serde_yaml::to_string(&inv).unwrap()).unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let args = tmp.path().join("journalctl.args");
    let script = |name: &str, body: String| {
        let p = bin.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(
        "systemctl",
        "echo 'Job for keystone-node1.service failed because the control process exited with error code.' >&2\necho 'See \"systemctl status keystone-node1.service\" and \"journalctl -xeu keystone-node1.service\" for details.' >&2\nexit 1".into(),
    );
    script(
        "journalctl",
        format!(
            "echo \"$@\" > '{}'\ncat <<'EOF'\n/usr/lib/python3/dist-packages/oslo_service/backend/_eventlet/loopingcall.py:19: EventletDeprecationWarning: Eventlet is deprecated.\n  from eventlet import event\n2026-12-01 18:00:00.000 4242 CRITICAL keystone [-] Unhandled error: oslo_config.cfg.ConfigFileValueError: Value for option enabled from LocationInfo(location=<Locations.user: (4, True)>, detail='/etc/keystone/keystone.conf') is not valid: Unexpected boolean value 'maybe'\nkeystone-node1.service: Main process exited, code=exited, status=1/FAILURE\nkeystone-node1.service: Failed with result 'exit-code'.\nEOF",
            args.display()
        ),
    );
    let journal = tmp.path().join("run.jsonl");
    let before = chrono::Utc::now().timestamp();
    let out = tmp.path().join("run.stdout");
    let status = Command::new(BIN)
        .args(["run", "runbooks/fernet-to-jws.yaml", "-i"])
        .arg(&info.inventory_path)
        .args(["--headless", "--answers", ANSWERS, "--journal"])
        .arg(&journal)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let run = Run {
        status: Some(status),
        stdout: fs::read_to_string(&out).unwrap(),
        stderr: String::new(),
    };
    assert_eq!(run.code(), Some(4), "expected a halt:\n{}", run.all());
    let (summary, _) = restart_failure(&journal, &run);

    let recorded = fs::read_to_string(&args).expect("journalctl was asked");
    let words: Vec<&str> = recorded.split_whitespace().collect();
    let since: i64 = words
        .iter()
        .position(|w| *w == "--since")
        .and_then(|i| words.get(i + 1))
        .and_then(|w| w.strip_prefix('@'))
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no --since @EPOCH: {recorded}"));
    assert!(
        since >= before && since <= chrono::Utc::now().timestamp(),
        "{recorded}"
    );
    for w in ["--no-pager", "-o", "cat", "-u", "keystone-node1.service"] {
        assert!(words.contains(&w), "{w} not in {recorded}");
    }

    let headline = summary.lines().next().unwrap();
    assert!(
        headline.starts_with("node1: `systemctl restart keystone-node1.service` exited 1: Unhandled error: oslo_config.cfg.ConfigFileValueError: Value for option enabled")
            && headline.ends_with("Unexpected boolean value 'maybe'"),
        "{summary}"
    );
    let at = chrono::DateTime::from_timestamp(since, 0)
        .unwrap()
        .format("%H:%M:%S UTC")
        .to_string();
    let expected = format!(
        "\n  journalctl -u keystone-node1.service since {at}:\n    CRITICAL keystone Unhandled error: oslo_config.cfg.ConfigFileValueError"
    );
    assert!(summary.contains(&expected), "{summary}");
    assert!(
        summary.contains("\n  restart stderr:\n    Job for keystone-node1.service failed because the control process exited with error code."),
        "{summary}"
    );
    let log = info.node("node1").unwrap().log_file.display().to_string();
    assert!(
        summary.contains(&format!(
            "\n  {log} since the restart:\n    (nothing written since the restart)"
        )),
        "{summary}"
    );
    assert!(!summary.contains("Eventlet"), "{summary}");
}
