//! The defensive rendering: a record told from its raw `data`, for a record that does not read
//! back as a typed event (an unknown kind such as the journal's own `fleet_unlocked`, damaged or
//! hand-made data). Every field is optional and any JSON shape is accepted; for a well-formed
//! record the words are the narrator's ([`crate::engine::narrate`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::engine::narrate::{with_detail, with_next};
use crate::journal::Record;
use crate::journal::actor::Who;

/// What a record says, in words, by kind.
pub(super) fn summary(r: &Record, titles: &HashMap<String, String>) -> String {
    let d = &r.data;
    let joined = |parts: &[String]| {
        parts
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // The step a step record is about: its data's, else the record's.
    let step = || {
        let s = get(d, "step");
        let s = if s.is_empty() {
            r.step.clone().unwrap_or_default()
        } else {
            s
        };
        if s.is_empty() {
            "(unnamed)".to_string()
        } else {
            format!("\u{201c}{}\u{201d}", step_label(titles, &s))
        }
    };
    match r.kind.as_str() {
        "run_started" => {
            let title = first_of(d, &["runbook_title", "runbook_name"]);
            let name = get(d, "runbook_name");
            let runbook = if !name.is_empty() && name != title {
                format!("{title} ({name})")
            } else {
                title
            };
            let count = |key: &str, one: &str, many: &str| {
                d.get("inventory")
                    .and_then(|i| i.get(key))
                    .and_then(Value::as_array)
                    .map(|a| match a.len() {
                        1 => format!("1 {one}"),
                        n => format!("{n} {many}"),
                    })
            };
            let fleet = [
                count("nodes", "node", "nodes"),
                count("load_balancers", "load balancer", "load balancers"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            let params = match d.get("params") {
                Some(Value::Object(m)) if !m.is_empty() => format!(
                    "; params {}",
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", text_of(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            };
            let mut s = format!("run of {runbook}");
            let cluster = get(d, "cluster");
            if !cluster.is_empty() {
                let _ = write!(s, " on cluster {cluster}");
            }
            if !fleet.is_empty() {
                let _ = write!(s, " ({fleet})");
            }
            let who = d.get("who").filter(|w| !w.is_null());
            if who.is_some() {
                let _ = write!(s, " started by {}", who_label(who));
            } else {
                s.push_str(" started");
            }
            let run = get(d, "run_id");
            if !run.is_empty() {
                let _ = write!(s, ", run {run}");
            }
            s + &params
        }
        "step_started" => format!("step {} started", step()),
        "step_completed" => format!("step {} completed", step()),
        "intent" => joined(&[
            prefixed("#", &get(d, "id")),
            get(d, "action"),
            prefixed("— ", &get(d, "detail")),
        ]),
        "outcome" => {
            let head = joined(&[
                prefixed("#", &get(d, "id")),
                ok_word(d).to_string(),
                duration(d).map(|t| format!("({t})")).unwrap_or_default(),
            ]);
            let mut s = format!("{head}: {}", get(d, "summary"));
            if let Some(f) = d.get("failure") {
                let next = get(f, "next");
                if !next.is_empty() {
                    let _ = write!(s, "; next: {next}");
                }
                let fp = get(f, "fingerprint");
                if !fp.is_empty() {
                    let _ = write!(
                        s,
                        "; unknown host key {}:{} {fp}",
                        get(f, "host"),
                        get(f, "port")
                    );
                }
            }
            s.trim_end_matches([':', ' ']).to_string()
        }
        "gate_passed" => with_detail(
            &format!("gate {} passed", get(d, "gate")),
            &get(d, "detail"),
        ),
        "gate_failed" => with_next(
            &with_detail(
                &format!("gate {} FAILED", get(d, "gate")),
                &get(d, "reason"),
            ),
            &get(d, "next"),
        ),
        "hard_stop_raised" => {
            let mut s = with_detail(&format!("HARD STOP {}", get(d, "id")), &get(d, "title"));
            let n = get(d, "in_doubt");
            if !n.is_empty() {
                let _ = write!(s, " (decides in-doubt action #{n})");
            }
            s
        }
        "hard_stop_confirmed" => format!(
            "hard stop {} confirmed by {} {}",
            get(d, "id"),
            who_label(d.get("who")),
            signed_word(d)
        ),
        "hard_stop_declined" => format!(
            "hard stop {} declined by {}",
            get(d, "id"),
            who_label(d.get("who"))
        ),
        "pause_requested" => match get(d, "cause").as_str() {
            "terminal_hangup" => format!(
                "pause requested: the terminal of {} hung up",
                who_label(d.get("who"))
            ),
            _ => format!("pause requested by {}", who_label(d.get("who"))),
        },
        "run_resumed" => {
            let mut s = format!("run resumed by {}", who_label(d.get("who")));
            let list = |key: &str, prefix: &str| match d.get(key) {
                Some(Value::Array(a)) if !a.is_empty() => Some(
                    a.iter()
                        .map(|v| format!("{prefix}{}", text_of(v)))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            };
            match list("drift", "") {
                Some(drift) => {
                    let _ = write!(s, "; changed since the journal: {}", drift.join("; "));
                }
                None if d.get("drift").is_some() => s.push_str("; no drift"),
                None => {}
            }
            if let Some(ids) = list("in_doubt", "#") {
                let _ = write!(s, "; in doubt: {}", ids.join(", "));
            }
            s
        }
        "in_doubt_resolved" => format!(
            "in-doubt action #{}: {}, chosen by {}",
            get(d, "id"),
            get(d, "choice"),
            who_label(d.get("who"))
        ),
        "run_paused" => with_detail("run paused", &get(d, "reason")),
        "run_halted" => with_next(
            &with_detail("run HALTED", &get(d, "reason")),
            &get(d, "next"),
        ),
        "run_completed" => with_detail("run completed", &get(d, "summary")),
        "note" => get(d, "message"),
        "pool_breach" => serde_json::from_value::<crate::engine::events::Breach>(d.clone())
            .map(|b| b.line())
            .unwrap_or_else(|_| fields(d)),
        "fleet_unlocked" => {
            let locks = match d.get("locks") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|l| {
                        let holder = l.get("holder");
                        let run = holder.map(|h| get(h, "run_id")).unwrap_or_default();
                        let by = holder.map(|h| get(h, "who")).unwrap_or_default();
                        let held = match (run.is_empty(), by.is_empty()) {
                            (false, false) => format!(" (held by run {run} of {by})"),
                            (false, true) => format!(" (held by run {run})"),
                            (true, false) => format!(" (held by {by})"),
                            (true, true) => String::new(),
                        };
                        format!("{}{held}", get(l, "node"))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            let mut s = format!("fleet lock broken by {}", who_label(d.get("who")));
            let cluster = get(d, "cluster");
            if !cluster.is_empty() {
                let _ = write!(s, " on cluster {cluster}");
            }
            with_detail(&s, &locks)
        }
        _ => fields(d),
    }
}

/// A step for people: its title, or its id when the journal does not hold a title.
fn step_label(titles: &HashMap<String, String>, id: &str) -> String {
    match titles.get(id) {
        Some(t) => t.clone(),
        None => id.to_string(),
    }
}

/// Data of a kind this version does not know, as `key: value` pairs (nested keys dotted, lists
/// comma-separated) rather than JSON.
fn fields(d: &Value) -> String {
    fn walk(prefix: &str, v: &Value, depth: usize, out: &mut Vec<String>) {
        let key = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Value::Object(m) if depth < 4 => {
                for (k, item) in m {
                    walk(&key(k), item, depth + 1, out);
                }
            }
            Value::Array(a) if depth < 4 && a.iter().all(|i| !i.is_object() && !i.is_array()) => {
                let items = a.iter().map(text_of).collect::<Vec<_>>().join(", ");
                out.push(labelled(prefix, &items));
            }
            Value::Array(a) if depth < 4 => {
                for (i, item) in a.iter().enumerate() {
                    walk(&key(&(i + 1).to_string()), item, depth + 1, out);
                }
            }
            Value::Null => {}
            other => out.push(labelled(prefix, &text_of(other))),
        }
    }
    fn labelled(key: &str, v: &str) -> String {
        if key.is_empty() {
            v.to_string()
        } else {
            format!("{key}: {v}")
        }
    }
    let mut out = Vec::new();
    walk("", d, 0, &mut out);
    out.join("; ")
}

/// `signed SHA256:…` or `unsigned`, for a confirmation.
fn signed_word(d: &Value) -> String {
    match crate::journal::sign::signer_of(d) {
        Some(fp) => format!("(signed {fp})"),
        None => "(unsigned)".to_string(),
    }
}

/// `ok` / `FAILED` / `?` from an outcome's `ok`.
pub(super) fn ok_word(d: &Value) -> &'static str {
    match d.get("ok") {
        Some(Value::Bool(true)) => "ok",
        Some(Value::Bool(false)) => "FAILED",
        _ => "?",
    }
}

/// `duration_ms` for people: `850 ms`, `12.3 s`.
pub(super) fn duration(d: &Value) -> Option<String> {
    let v = d.get("duration_ms")?;
    Some(match v.as_f64() {
        Some(ms) if ms.is_finite() && ms.abs() < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) if ms.is_finite() => format!("{:.1} s", ms / 1000.0),
        _ => text_of(v),
    })
}

/// A `who` value: a [`Who`] object, a plain string, or whatever else is there.
pub(super) fn who_label(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(unknown)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => match serde_json::from_value::<Who>(v.clone()) {
            Ok(who) => who.actor_label(),
            Err(_) => compact(v),
        },
    }
}

/// `data[key]` as text; empty when absent (or when `data` is not an object at all).
pub(super) fn get(d: &Value, key: &str) -> String {
    d.get(key).map(text_of).unwrap_or_default()
}

/// The first non-empty of several keys.
pub(super) fn first_of(d: &Value, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| get(d, k))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

fn prefixed(prefix: &str, v: &str) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!("{prefix}{v}")
    }
}

/// A value as text: strings bare, null empty, anything else as compact JSON.
pub(super) fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => compact(other),
    }
}

pub(super) fn compact(v: &Value) -> String {
    v.to_string()
}

/// The change report's result for an action, from an outcome's raw data.
pub(super) fn report_result(d: &Value) -> String {
    let parts = [
        format!("**{}**", ok_word(d)),
        get(d, "summary"),
        duration(d).map(|t| format!("({t})")).unwrap_or_default(),
    ];
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The change report's result for an in-doubt action resolved by hand, from raw data.
pub(super) fn report_resolved(d: &Value) -> String {
    format!(
        "in doubt; resolved: {} by {}",
        get(d, "choice"),
        who_label(d.get("who"))
    )
}

/// The change report's decision on a hard stop, from a raw confirmation or decline.
pub(super) fn report_decision(r: &Record) -> String {
    let word = if r.kind == "hard_stop_confirmed" {
        "Confirmed"
    } else {
        "Declined"
    };
    format!("**{word}** by {}", who_label(r.data.get("who")))
}

/// The change report's detail for a gate or a final status, from raw data.
pub(super) fn report_detail(r: &Record) -> String {
    let d = &r.data;
    let reason_next = || {
        let next = get(d, "next");
        let reason = get(d, "reason");
        if next.is_empty() {
            reason
        } else {
            format!("{reason} — next: {next}")
        }
    };
    match r.kind.as_str() {
        "gate_passed" => get(d, "detail"),
        "gate_failed" | "run_halted" => reason_next(),
        "run_completed" => get(d, "summary"),
        "run_paused" => get(d, "reason"),
        _ => format!("resumed by {}", who_label(d.get("who"))),
    }
}
