//! The plan a run recorded. `run_started` holds the compiled plan and its hash, so the fold only
//! records (it never compiles) and a journal folds the same whatever cutover reads it later.
//!
//! Three places compile, none of them the fold:
//! - a new run: `decide` compiles the plan for `Command::Start` and records it ([`planned`]);
//! - a journal of schema 1 (no plan in `run_started`) is upcast once, as it is read
//!   ([`upcast`]): the plan is compiled from the runbook, inventory and parameters it recorded;
//! - a resume recompiles the same way and compares hashes ([`check_resumable`]), as Temporal's
//!   replay checks that the code still makes the recorded decisions: a plan this cutover would
//!   compile differently is refused, naming the first op that differs.

use super::events::{Event, RunStarted};
use super::plan::{self, Op};
use crate::runbook::Runbook;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// This cutover, as `run_started` records it (`compiled_by`).
pub const CUTOVER: &str = concat!("cutover ", env!("CARGO_PKG_VERSION"));

/// sha256 (hex) of a plan's canonical JSON: object keys sorted, no whitespace.
pub fn plan_sha256(plan: &[Op]) -> String {
    // `serde_json::Value` keeps object keys sorted (no `preserve_order`), so the text is the
    // same whatever order the types declare their fields in.
    let canonical = serde_json::to_value(plan)
        .map(|v| v.to_string())
        .unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Compile the plan from what `run_started` recorded: its runbook text, inventory and
/// (resolved) parameters.
pub fn compile(rs: &RunStarted) -> Result<Vec<Op>, String> {
    let rb = Runbook::parse(&rs.runbook_source, &rs.runbook_origin).map_err(|e| e.to_string())?;
    plan::compile(&rb, &rs.inventory, &rs.params).map_err(|e| e.to_string())
}

/// A new run's `run_started`, its plan compiled and recorded with its hash and this cutover's
/// name. Whatever plan the caller put in is replaced.
pub fn planned(mut rs: RunStarted) -> Result<RunStarted, String> {
    let plan = compile(&rs)?;
    rs.plan_sha256 = plan_sha256(&plan);
    rs.plan = plan;
    rs.compiled_by = CUTOVER.to_string();
    Ok(rs)
}

/// Rebuild an event from a journal record's kind and data: the one way records become events.
/// A `run_started` of schema 1 is upcast here (its plan compiled once, see [`upcast`]): the one
/// place a journal's plan may be compiled.
pub fn read_event(kind: &str, data: &Value) -> Result<Event, String> {
    let v = serde_json::json!({ "kind": kind, "data": data });
    let mut event = serde_json::from_value(v).map_err(|e| format!("event `{kind}`: {e}"))?;
    if let Event::RunStarted(rs) = &mut event {
        upcast(rs, data);
    }
    Ok(event)
}

/// The upcaster for `run_started` of schema 1 (`data` has no `plan`): compile the plan once, at
/// load time, from what the run recorded. A runbook this cutover cannot compile leaves the plan
/// empty; a resume then refuses the journal, replay still shows it.
pub fn upcast(rs: &mut RunStarted, data: &Value) {
    if data.get("plan").is_some() {
        return;
    }
    if let Ok(plan) = compile(rs) {
        rs.plan_sha256 = plan_sha256(&plan);
        rs.plan = plan;
    }
}

/// Why a resume is refused: this cutover does not make the recorded plan. `by` names the
/// cutover that started the run (`cutover 0.1.0`), when the journal says.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanRefused {
    /// The journal holds no plan and this cutover cannot compile one from its runbook.
    #[error(
        "this cutover cannot rebuild the run's plan from the runbook stored in the journal ({reason}); replay it with `cutover replay`, and finish the change with {}",
        finish_with(by)
    )]
    NoPlan { reason: String, by: Option<String> },
    /// This cutover compiles the recorded runbook into a different plan.
    #[error(
        "this cutover ({}) plans the run differently from the one that started it: {what}. Resuming would run other steps than the run recorded, so it is refused; nothing was changed. Finish the run with {}, or start a new run; `cutover replay` shows it as recorded",
        env!("CARGO_PKG_VERSION"),
        finish_with(by)
    )]
    Changed { what: String, by: Option<String> },
}

fn finish_with(by: &Option<String>) -> String {
    match by {
        Some(v) => format!("{v}, the version that started it"),
        None => "the cutover version that started it (the journal does not name it)".into(),
    }
}

/// Whether this cutover may resume the run: it compiles the recorded runbook, inventory and
/// parameters into the plan the run recorded (same hash).
pub fn check_resumable(rs: &RunStarted) -> Result<(), PlanRefused> {
    let by = started_by(rs);
    let now = compile(rs).map_err(|reason| PlanRefused::NoPlan {
        reason,
        by: by.clone(),
    })?;
    if rs.plan.is_empty() {
        return Err(PlanRefused::NoPlan {
            reason: "the journal holds no plan".into(),
            by,
        });
    }
    if plan_sha256(&now) == rs.plan_sha256 && plan_sha256(&rs.plan) == rs.plan_sha256 {
        return Ok(());
    }
    Err(PlanRefused::Changed {
        what: first_difference(&rs.plan, &now),
        by,
    })
}

/// The cutover that started the run (`cutover 0.1.0`), as far as the journal says.
fn started_by(rs: &RunStarted) -> Option<String> {
    if !rs.compiled_by.is_empty() {
        return Some(rs.compiled_by.clone());
    }
    // Journals of schema 1 name the version only in a shipped runbook's origin.
    rs.runbook_origin
        .split_once("(cutover ")
        .and_then(|(_, v)| v.split_once(')'))
        .map(|(v, _)| format!("cutover {v}"))
}

/// The first op where two plans differ, in words.
fn first_difference(recorded: &[Op], now: &[Op]) -> String {
    for (i, (a, b)) in recorded.iter().zip(now).enumerate() {
        let (va, vb) = (to_value(a), to_value(b));
        if va == vb {
            continue;
        }
        let (wa, wb) = (op_words(&va), op_words(&vb));
        return if wa != wb {
            format!("op {i}: the journal's plan has {wa}, this cutover plans {wb}")
        } else {
            let (path, x, y) = value_difference(&va, &vb, String::new());
            format!("op {i} ({wa}) differs at `{path}`: {x} in the journal's plan, {y} now")
        };
    }
    match recorded.len().cmp(&now.len()) {
        std::cmp::Ordering::Less => format!(
            "the journal's plan ends after {} ops, this cutover plans {} more, the first {}",
            recorded.len(),
            now.len() - recorded.len(),
            op_words(&to_value(&now[recorded.len()]))
        ),
        std::cmp::Ordering::Greater => format!(
            "this cutover's plan ends after {} ops, the journal's has {} more, the first {}",
            now.len(),
            recorded.len() - now.len(),
            op_words(&to_value(&recorded[now.len()]))
        ),
        // Same ops, a different recorded hash: the record itself does not match its plan.
        std::cmp::Ordering::Equal => {
            "the plan recorded in the journal does not match its recorded hash".into()
        }
    }
}

fn to_value(op: &Op) -> Value {
    serde_json::to_value(op).unwrap_or(Value::Null)
}

/// An op in words, from its journal form: `lb.drain (step rolling, node1)`.
fn op_words(op: &Value) -> String {
    let kind = &op["kind"];
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let what = match kind["type"].as_str() {
        Some("act") => format!("`{}`", text(&kind["action"])),
        Some("gate") => format!("gate `{}`", text(&kind["gate"])),
        Some("confirm") => format!("hard stop `{}`", text(&kind["id"])),
        Some("note") => "a note".into(),
        Some("wait_until") => "a wait".into(),
        other => format!("an op of kind {}", other.unwrap_or("?")),
    };
    let node = op["node"]
        .as_str()
        .map(|n| format!(", {n}"))
        .unwrap_or_default();
    format!("{what} (step `{}`{node})", text(&op["step"]))
}

/// The first place two JSON values differ: (path, left, right), the values compact.
fn value_difference(a: &Value, b: &Value, path: String) -> (String, String, String) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (l, r) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if l != r {
                    return value_difference(l, r, join(k));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                if l != r {
                    return value_difference(l, r, format!("{path}[{i}]"));
                }
            }
        }
        _ => {}
    }
    (path, a.to_string(), b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagship() -> RunStarted {
        let rs = RunStarted::flagship_fixture();
        planned(rs).unwrap()
    }

    #[test]
    fn a_planned_run_records_its_plan_and_resumes() {
        let rs = flagship();
        assert!(rs.plan.len() > 20, "{}", rs.plan.len());
        assert_eq!(rs.plan_sha256, plan_sha256(&rs.plan));
        assert_eq!(rs.plan_sha256.len(), 64);
        assert_eq!(rs.compiled_by, CUTOVER);
        assert_eq!(check_resumable(&rs), Ok(()));
    }

    /// The hash does not depend on how a type orders its fields: it is over sorted keys.
    #[test]
    fn the_hash_is_over_sorted_keys() {
        let rs = flagship();
        let text = serde_json::to_value(&rs.plan).unwrap().to_string();
        assert_eq!(rs.plan_sha256, hex::encode(Sha256::digest(text.as_bytes())));
        assert!(
            text.starts_with(r#"[{"index":0,"kind":{"#),
            "{}",
            &text[..60]
        );
    }

    /// A recorded plan that this cutover would compile differently is refused, naming the
    /// first op that differs and the version that started the run.
    #[test]
    fn a_changed_plan_is_refused_naming_the_first_difference() {
        let mut rs = flagship();
        // As if an older cutover had planned a different gate at op 3.
        let i = rs
            .plan
            .iter()
            .position(|o| to_value(o)["kind"]["type"] == "gate")
            .unwrap();
        let mut v = serde_json::to_value(&rs.plan[i]).unwrap();
        v["kind"]["gate"] = "all-target".into();
        rs.plan[i] = serde_json::from_value(v).unwrap();
        rs.plan_sha256 = plan_sha256(&rs.plan);
        rs.compiled_by = "cutover 0.0.9".into();
        let e = check_resumable(&rs).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PlanRefused::Changed { .. }), "{text}");
        assert!(
            text.contains(&format!("op {i}: the journal's plan has gate `all-target`")),
            "{text}"
        );
        assert!(
            text.contains("Finish the run with cutover 0.0.9, the version that started it"),
            "{text}"
        );

        // A detail, not the op: the path and both values.
        let mut rs = flagship();
        let i = rs
            .plan
            .iter()
            .position(|o| to_value(o)["kind"]["action"] == "lb.drain")
            .unwrap();
        let mut v = serde_json::to_value(&rs.plan[i]).unwrap();
        let was = v["kind"]["specs"][0]["timeout_secs"].clone();
        v["kind"]["specs"][0]["timeout_secs"] = 999.into();
        rs.plan[i] = serde_json::from_value(v).unwrap();
        rs.plan_sha256 = plan_sha256(&rs.plan);
        let text = check_resumable(&rs).unwrap_err().to_string();
        assert!(
            text.contains(&format!(
                "differs at `kind.specs[0].timeout_secs`: 999 in the journal's plan, {was} now"
            )),
            "{text}"
        );

        // A plan cut short.
        let mut rs = flagship();
        rs.plan.pop();
        rs.plan_sha256 = plan_sha256(&rs.plan);
        let text = check_resumable(&rs).unwrap_err().to_string();
        assert!(text.contains("this cutover plans 1 more"), "{text}");
    }

    /// A record whose plan does not match its own hash is refused too.
    #[test]
    fn a_plan_that_does_not_match_its_hash_is_refused() {
        let mut rs = flagship();
        rs.plan_sha256 = "0".repeat(64);
        let text = check_resumable(&rs).unwrap_err().to_string();
        assert!(text.contains("does not match its recorded hash"), "{text}");
    }

    /// Schema 1: no plan in the data; the upcaster compiles it, once, from the recorded runbook.
    #[test]
    fn the_upcaster_compiles_a_schema_1_plan() {
        let planned = flagship();
        let mut old = planned.clone();
        old.schema = 1;
        old.plan = Vec::new();
        old.plan_sha256 = String::new();
        old.compiled_by = String::new();
        let mut data = serde_json::to_value(&old).unwrap();
        data.as_object_mut().unwrap().remove("plan");
        data.as_object_mut().unwrap().remove("plan_sha256");
        let event = super::read_event("run_started", &data).unwrap();
        let super::super::Event::RunStarted(rs) = event else {
            panic!("not run_started")
        };
        assert_eq!(rs.plan, planned.plan);
        assert_eq!(rs.plan_sha256, planned.plan_sha256);
        assert_eq!(rs.schema, 1, "the record says which schema wrote it");
        assert_eq!(
            check_resumable(&rs),
            Ok(()),
            "the same cutover compiles the same plan"
        );
        // A plan recorded (schema 2) is taken as it is, never recompiled.
        let mut data = serde_json::to_value(&planned).unwrap();
        data["plan"] = serde_json::json!([]);
        let super::super::Event::RunStarted(rs) = super::read_event("run_started", &data).unwrap()
        else {
            panic!("not run_started")
        };
        assert!(rs.plan.is_empty());
        assert!(matches!(
            check_resumable(&rs),
            Err(PlanRefused::NoPlan { .. })
        ));
    }
}
