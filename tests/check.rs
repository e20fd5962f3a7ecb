//! `cutover check RUNBOOK`: broken runbooks are refused with exit 2 and `FILE:LINE:COLUMN` of the
//! mistake plus what was expected; the shipped runbooks pass, alone and against an inventory.
//!
//! The broken runbooks live in tests/fixtures/check/, one mistake each; the line each test expects
//! is the line of that file holding the mistake (1-based).

use std::path::Path;
use std::process::{Command, Output};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("check")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cutover check")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `cutover check tests/fixtures/check/NAME` must exit 2 with `FILE:LINE:COL` (COL any number)
/// on stderr and every one of `expect` in the message. Returns stderr.
fn refused_at(name: &str, line: usize, expect: &[&str]) -> String {
    let file = format!("tests/fixtures/check/{name}");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(&file).exists(),
        "fixture {file} missing"
    );
    let out = check(&[&file]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{file}: expected exit 2\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let prefix = format!("{file}:{line}:");
    let at = stderr
        .find(&prefix)
        .unwrap_or_else(|| panic!("{file}: stderr must name {prefix}COLUMN, got: {stderr}"));
    let col: String = stderr[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    assert!(
        col.parse::<usize>().is_ok_and(|c| c >= 1),
        "{file}: no column after {prefix}: {stderr}"
    );
    for e in expect {
        assert!(
            stderr.contains(e),
            "{file}: the message must say `{e}`: {stderr}"
        );
    }
    stderr
}

#[test]
fn unknown_top_level_key() {
    refused_at(
        "unknown-top-key.yaml",
        5,
        &["unknown field `colour`", "target_provider", "steps"],
    );
}

#[test]
fn unknown_key_inside_a_step() {
    refused_at(
        "unknown-step-key.yaml",
        14,
        &["unknown field `retries`", "`title`", "`scope`", "`do`"],
    );
}

#[test]
fn unknown_action() {
    refused_at(
        "unknown-action.yaml",
        10,
        &["`lb.dran`", "`lb.drain`", "`service.restart`"],
    );
}

#[test]
fn unknown_gate() {
    refused_at(
        "unknown-gate.yaml",
        12,
        &["`stars-aligned`", "`out-of-pool`", "`mixed-pool`"],
    );
}

#[test]
fn wrong_type_scope() {
    refused_at(
        "wrong-type-scope.yaml",
        8,
        &["`7`", "`once`", "`each-node`", "`all-nodes`"],
    );
}

#[test]
fn wrong_type_timeout() {
    refused_at(
        "wrong-type-timeout.yaml",
        12,
        &["`banana`", "duration like 30s or 2m"],
    );
}

#[test]
fn missing_required_title() {
    // The step without a title starts on line 11.
    refused_at("missing-title.yaml", 11, &["missing field `title`"]);
}

#[test]
fn template_naming_an_undefined_param() {
    refused_at(
        "undefined-param.yaml",
        15,
        &["params.nope", "undefined", "params.<name>"],
    );
}

#[test]
fn template_naming_an_undefined_node_field() {
    refused_at(
        "undefined-node-field.yaml",
        12,
        &["node.colour", "undefined", "node.<name|"],
    );
}

/// A per-node gate in a `once` step: reported where the gate is written (line 13), not where the
/// gate's name first appears in the file (a description on line 10).
#[test]
fn per_node_gate_in_once_step_is_located_at_the_gate() {
    refused_at(
        "gate-named-in-description.yaml",
        13,
        &["out-of-pool", "each-node or all-nodes"],
    );
}

/// An undefined variable in a template is reported where the template is (line 18), not where
/// the same text first appears in the file (a description on line 10).
#[test]
fn undefined_template_is_located_at_the_template() {
    refused_at(
        "template-quoted-in-description.yaml",
        18,
        &["node.colour", "undefined"],
    );
}

/// `{{ node.name }}` in a `scope: once` step has no node to render with: running it fails
/// (`cutover check -i` and `plan` refuse it), so `cutover check` alone must refuse it too, with
/// its position, instead of saying ok.
#[test]
fn node_variable_in_once_step_is_an_error() {
    refused_at("node-in-once-step.yaml", 11, &["node.name"]);
}

#[test]
fn shipped_runbooks_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".yaml") || name == "demo-answers.yaml" {
            continue;
        }
        let rel = format!("runbooks/{name}");
        let out = check(&[&rel]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{rel}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("ok"),
            "{rel}: {}",
            text(&out.stdout)
        );
        checked += 1;
    }
    assert!(checked >= 2, "fernet-to-jws and jws-to-fernet at least");
}

#[test]
fn flagship_checks_against_an_inventory() {
    let out = check(&[
        "runbooks/fernet-to-jws.yaml",
        "-i",
        "tests/fixtures/inventory-3.yaml",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("ok"), "{stdout}");
    assert!(stdout.contains("3 nodes"), "{stdout}");
}

#[test]
fn broken_fixtures_fail_against_an_inventory_too() {
    // With -i the runbook is loaded first: the same position, the same exit code.
    let out = check(&[
        "tests/fixtures/check/unknown-action.yaml",
        "-i",
        "tests/fixtures/inventory-3.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("tests/fixtures/check/unknown-action.yaml:10:"));
}
