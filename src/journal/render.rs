//! Rendering journal records for people: a terminal listing, the raw JSON Lines, and a Markdown
//! change-ticket report.
//!
//! The journal is evidence, and a report generated from a damaged or unexpected journal is still
//! wanted, so rendering reads `data` defensively: every field is optional, any JSON shape is
//! accepted, and nothing here panics.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::Record;
use super::actor::Who;

/// Output format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One aligned line per record, readable in 100 columns.
    Text,
    /// The records as JSON Lines, exactly as stored.
    Json,
    /// A change-ticket report.
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(Format::Text),
            "json" | "jsonl" => Ok(Format::Json),
            "markdown" | "md" => Ok(Format::Markdown),
            other => Err(format!(
                "unknown format {other:?} (expected text, json or markdown)"
            )),
        }
    }
}

/// Renders `records` in `format`.
pub fn render(records: &[Record], format: Format) -> String {
    match format {
        Format::Json => records.iter().map(|r| r.to_line() + "\n").collect(),
        Format::Text => text(records),
        Format::Markdown => markdown(records),
    }
}

/// Width the text listing fits in.
const TEXT_WIDTH: usize = 100;

fn text(records: &[Record]) -> String {
    // Column widths follow the content but are capped, so one long step or node name cannot
    // push the summaries off a 100-column terminal.
    let width = |f: &dyn Fn(&Record) -> usize, cap: usize| {
        records.iter().map(f).max().unwrap_or(0).min(cap)
    };
    let seq_w = width(&|r| r.seq.to_string().len(), 20);
    let kind_w = width(&|r| r.kind.chars().count(), 19);
    let step_w = width(&|r| r.step.as_deref().unwrap_or("-").chars().count(), 14);
    let node_w = width(&|r| r.node.as_deref().unwrap_or("-").chars().count(), 12);
    let mut out = String::new();
    for r in records {
        let line = format!(
            "{seq:>seq_w$}  {time}  {kind:<kind_w$}  {step:<step_w$}  {node:<node_w$}  {summary}",
            seq = r.seq,
            time = r.time.format("%H:%M:%S"),
            kind = clip(&one_line(&r.kind), kind_w),
            step = clip(&one_line(r.step.as_deref().unwrap_or("-")), step_w),
            node = clip(&one_line(r.node.as_deref().unwrap_or("-")), node_w),
            summary = one_line(&summary(r)),
        );
        out.push_str(clip(&line, TEXT_WIDTH).trim_end());
        out.push('\n');
    }
    out
}

/// A short, one-line description of a record's data, by kind.
fn summary(r: &Record) -> String {
    let d = &r.data;
    let joined = |parts: &[String]| {
        parts
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    match r.kind.as_str() {
        "run_started" => joined(&[
            first_of(d, &["runbook_title", "runbook_name"]),
            prefixed("cluster ", &get(d, "cluster")),
        ]),
        "intent" => joined(&[
            prefixed("#", &get(d, "id")),
            get(d, "action"),
            prefixed("— ", &get(d, "detail")),
        ]),
        "outcome" => joined(&[
            prefixed("#", &get(d, "id")),
            ok_word(d).to_string(),
            get(d, "summary"),
            duration(d).map(|t| format!("({t})")).unwrap_or_default(),
        ]),
        "gate_passed" => joined(&[get(d, "gate"), "passed".into(), get(d, "detail")]),
        "gate_failed" => joined(&[get(d, "gate"), "FAILED".into(), get(d, "reason")]),
        "hard_stop_raised" => joined(&[get(d, "id"), get(d, "title")]),
        "hard_stop_confirmed" => joined(&[
            get(d, "id"),
            "confirmed by".into(),
            who_label(d.get("who")),
            signed_word(d),
        ]),
        "hard_stop_declined" => {
            joined(&[get(d, "id"), "declined by".into(), who_label(d.get("who"))])
        }
        "run_resumed" => joined(&["by".into(), who_label(d.get("who"))]),
        "in_doubt_resolved" => joined(&[
            prefixed("#", &get(d, "id")),
            get(d, "choice"),
            prefixed("by ", &who_label(d.get("who"))),
        ]),
        "run_paused" => get(d, "reason"),
        "run_halted" => joined(&[get(d, "reason"), prefixed("next: ", &get(d, "next"))]),
        "run_completed" => get(d, "summary"),
        "note" => get(d, "message"),
        "pool_breach" => serde_json::from_value::<crate::engine::events::Breach>(d.clone())
            .map(|b| b.line())
            .unwrap_or_else(|_| compact(d)),
        _ => match d {
            Value::Null => String::new(),
            Value::Object(m) if m.is_empty() => String::new(),
            other => compact(other),
        },
    }
}

/// `signed SHA256:…` or `unsigned`, for a confirmation.
fn signed_word(d: &Value) -> String {
    match super::sign::signer_of(d) {
        Some(fp) => format!("(signed {fp})"),
        None => "(unsigned)".to_string(),
    }
}

/// The kinds that end (or re-open) a run, for the final status.
const STATUS_KINDS: [&str; 4] = ["run_completed", "run_halted", "run_paused", "run_resumed"];

fn markdown(records: &[Record]) -> String {
    let mut out = String::new();
    let started = records.iter().find(|r| r.kind == "run_started");
    let status = records
        .iter()
        .rev()
        .find(|r| STATUS_KINDS.contains(&r.kind.as_str()));
    let data_of = |r: Option<&Record>, key: &str| r.map(|r| get(&r.data, key)).unwrap_or_default();

    // ---- Header --------------------------------------------------------------------------
    let title = started
        .map(|r| first_of(&r.data, &["runbook_title", "runbook_name"]))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "(unknown runbook)".to_string());
    let _ = writeln!(out, "# Change report: {}\n", one_line(&title));
    let _ = writeln!(out, "| | |\n|---|---|");
    let runbook = match (
        data_of(started, "runbook_title"),
        data_of(started, "runbook_name"),
    ) {
        (t, n) if !t.is_empty() && !n.is_empty() && t != n => format!("{t} (`{n}`)"),
        (t, n) if t.is_empty() => n,
        (t, _) => t,
    };
    let run_id = started
        .or(records.first())
        .map(|r| r.run.clone())
        .unwrap_or_default();
    let ended = match status {
        Some(r) if r.kind == "run_completed" || r.kind == "run_halted" => time(r),
        _ => "—".to_string(),
    };
    let rows = [
        ("Runbook", runbook),
        ("Cluster", data_of(started, "cluster")),
        ("Run", run_id),
        (
            "Started by",
            started.map(|r| r.actor.clone()).unwrap_or_default(),
        ),
        ("Started", started.map(time).unwrap_or_default()),
        ("Ended", ended),
        ("Status", status_word(status).to_string()),
        ("Records", records.len().to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    }

    // ---- Steps and their actions ---------------------------------------------------------
    let outcomes: HashMap<String, &Record> = records
        .iter()
        .filter(|r| r.kind == "outcome")
        .filter_map(|r| r.data.get("id").map(|id| (compact(id), r)))
        .collect();
    let resolutions: HashMap<String, &Record> = records
        .iter()
        .filter(|r| r.kind == "in_doubt_resolved")
        .filter_map(|r| r.data.get("id").map(|id| (compact(id), r)))
        .collect();
    let intents: Vec<&Record> = records.iter().filter(|r| r.kind == "intent").collect();
    // Steps in order of first mention; an intent's step counts too, so no action goes unlisted.
    let mut steps: Vec<Option<&str>> = Vec::new();
    for r in records {
        let mentions = matches!(
            r.kind.as_str(),
            "step_started" | "step_completed" | "intent"
        );
        if mentions && !steps.contains(&r.step.as_deref()) {
            steps.push(r.step.as_deref());
        }
    }
    // Actions outside any step go last.
    steps.sort_by_key(|s| s.is_none());
    let _ = writeln!(out, "\n## Steps");
    if steps.is_empty() {
        let _ = writeln!(out, "\n_No steps were started._");
    }
    for (n, step) in steps.iter().enumerate() {
        let name = step.unwrap_or("(outside any step)");
        let _ = writeln!(out, "\n### {}. {}\n", n + 1, one_line(name));
        let when = |kind: &str| {
            records
                .iter()
                .filter(|r| r.kind == kind && r.step.as_deref() == *step)
                .map(time)
                .next_back()
        };
        if step.is_some() {
            let started = when("step_started").unwrap_or_else(|| "—".into());
            let completed = when("step_completed")
                .map(|t| format!("completed {t}"))
                .unwrap_or_else(|| "not completed".into());
            let _ = writeln!(out, "Started {started}; {completed}.\n");
        }
        let actions: Vec<&&Record> = intents
            .iter()
            .filter(|r| r.step.as_deref() == *step)
            .collect();
        if actions.is_empty() {
            let _ = writeln!(out, "_No actions._");
            continue;
        }
        let _ = writeln!(
            out,
            "| Time | Node | Action | Detail | Result |\n|---|---|---|---|---|"
        );
        for intent in actions {
            let id = intent.data.get("id").map(compact).unwrap_or_default();
            let result = match outcomes.get(&id) {
                Some(o) => {
                    let parts = [
                        format!("**{}**", ok_word(&o.data)),
                        get(&o.data, "summary"),
                        duration(&o.data)
                            .map(|t| format!("({t})"))
                            .unwrap_or_default(),
                    ];
                    parts
                        .into_iter()
                        .filter(|p| !p.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                }
                None => match resolutions.get(&id) {
                    Some(res) => format!(
                        "in doubt; resolved: {} by {}",
                        get(&res.data, "choice"),
                        who_label(res.data.get("who"))
                    ),
                    None => "no outcome recorded (in doubt)".to_string(),
                },
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&time(intent)),
                cell(intent.node.as_deref().unwrap_or("")),
                cell(&get(&intent.data, "action")),
                cell(&get(&intent.data, "detail")),
                cell(&result),
            );
        }
    }

    // ---- Hard stops ----------------------------------------------------------------------
    let _ = writeln!(out, "\n## Hard stops\n");
    let raised: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == "hard_stop_raised")
        .collect();
    if raised.is_empty() {
        let _ = writeln!(out, "_None._");
    }
    for stop in raised {
        let id = stop.data.get("id").map(compact).unwrap_or_default();
        let _ = writeln!(
            out,
            "- **{}** (`{}`){} at {}",
            one_line(&get(&stop.data, "title")),
            one_line(&get(&stop.data, "id")),
            stop.node
                .as_deref()
                .map(|n| format!(" on {}", one_line(n)))
                .unwrap_or_default(),
            time(stop),
        );
        for (label, key) in [("Hazard", "hazard"), ("Consequence", "consequence")] {
            let v = get(&stop.data, key);
            if !v.is_empty() {
                let _ = writeln!(out, "  - {label}: {}", one_line(&v));
            }
        }
        if let Some(Value::Array(facts)) = stop.data.get("facts") {
            for fact in facts {
                let _ = writeln!(out, "  - Fact: {}", one_line(&text_of(fact)));
            }
        }
        // The decision is the first one for this id after it was raised (a resumed run may
        // raise the same hard stop again).
        let decision = records.iter().find(|r| {
            r.seq > stop.seq
                && (r.kind == "hard_stop_confirmed" || r.kind == "hard_stop_declined")
                && r.data.get("id").map(compact) == Some(id.clone())
        });
        match decision {
            Some(d) if d.kind == "hard_stop_confirmed" => {
                let sha = get(&d.data, "state_sha256");
                let _ = writeln!(
                    out,
                    "  - **Confirmed** by {} at {}{}, {}",
                    one_line(&who_label(d.data.get("who"))),
                    time(d),
                    if sha.is_empty() {
                        String::new()
                    } else {
                        format!(" (state sha256 `{}`)", one_line(&sha))
                    },
                    match super::sign::signer_of(&d.data) {
                        Some(fp) => format!("signed by `{}`", one_line(&fp)),
                        None => "**unsigned**".to_string(),
                    }
                );
            }
            Some(d) => {
                let _ = writeln!(
                    out,
                    "  - **Declined** by {} at {}",
                    one_line(&who_label(d.data.get("who"))),
                    time(d)
                );
            }
            None => {
                let _ = writeln!(out, "  - _No decision recorded._");
            }
        }
    }

    // ---- Gates ---------------------------------------------------------------------------
    let _ = writeln!(out, "\n## Gates\n");
    let gates: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == "gate_passed" || r.kind == "gate_failed")
        .collect();
    if gates.is_empty() {
        let _ = writeln!(out, "_None._");
    } else {
        let _ = writeln!(
            out,
            "| Time | Node | Gate | Result | Detail |\n|---|---|---|---|---|"
        );
        for g in gates {
            let passed = g.kind == "gate_passed";
            let detail = if passed {
                get(&g.data, "detail")
            } else {
                let next = get(&g.data, "next");
                let reason = get(&g.data, "reason");
                if next.is_empty() {
                    reason
                } else {
                    format!("{reason} — next: {next}")
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&time(g)),
                cell(g.node.as_deref().unwrap_or("")),
                cell(&get(&g.data, "gate")),
                if passed { "passed" } else { "**FAILED**" },
                cell(&detail),
            );
        }
    }

    // ---- Everything else, generically -----------------------------------------------------
    let intent_ids: Vec<String> = intents
        .iter()
        .filter_map(|r| r.data.get("id").map(compact))
        .collect();
    let covered = |r: &Record| match r.kind.as_str() {
        "run_started" => started.map(|s| s.seq) == Some(r.seq),
        "step_started"
        | "step_completed"
        | "intent"
        | "gate_passed"
        | "gate_failed"
        | "hard_stop_raised"
        | "hard_stop_confirmed"
        | "hard_stop_declined"
        | "run_completed"
        | "run_halted"
        | "run_paused" => true,
        // An outcome is shown with its intent; one without an intent is listed below.
        "outcome" => r
            .data
            .get("id")
            .is_some_and(|id| intent_ids.contains(&compact(id))),
        _ => false,
    };
    let others: Vec<&Record> = records.iter().filter(|r| !covered(r)).collect();
    if !others.is_empty() {
        let _ = writeln!(out, "\n## Other events\n");
        let _ = writeln!(
            out,
            "| Seq | Time | Kind | Step | Node | Actor | Summary |\n|---|---|---|---|---|---|---|"
        );
        for r in others {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.seq,
                cell(&time(r)),
                cell(&r.kind),
                cell(r.step.as_deref().unwrap_or("")),
                cell(r.node.as_deref().unwrap_or("")),
                cell(&r.actor),
                cell(&clip(&summary(r), 200)),
            );
        }
    }

    // ---- Final status --------------------------------------------------------------------
    let _ = writeln!(out, "\n## Final status\n");
    let _ = match status {
        Some(r) => {
            let detail = match r.kind.as_str() {
                "run_completed" => get(&r.data, "summary"),
                "run_halted" => {
                    let next = get(&r.data, "next");
                    let reason = get(&r.data, "reason");
                    if next.is_empty() {
                        reason
                    } else {
                        format!("{reason} — next: {next}")
                    }
                }
                "run_paused" => get(&r.data, "reason"),
                _ => format!("resumed by {}", who_label(r.data.get("who"))),
            };
            writeln!(
                out,
                "**{}** at {} by {}{}",
                status_word(Some(r)),
                time(r),
                one_line(&r.actor),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", one_line(&detail))
                }
            )
        }
        None => writeln!(
            out,
            "**{}**{}",
            status_word(None),
            records
                .last()
                .map(|r| format!(" (last event at {})", time(r)))
                .unwrap_or_default()
        ),
    };
    out
}

fn status_word(status: Option<&Record>) -> &'static str {
    match status.map(|r| r.kind.as_str()) {
        Some("run_completed") => "Completed",
        Some("run_halted") => "Halted",
        Some("run_paused") => "Paused",
        _ => "In progress",
    }
}

/// `ok` / `FAILED` / `?` from an outcome's `ok`.
fn ok_word(d: &Value) -> &'static str {
    match d.get("ok") {
        Some(Value::Bool(true)) => "ok",
        Some(Value::Bool(false)) => "FAILED",
        _ => "?",
    }
}

/// `duration_ms` for people: `850 ms`, `12.3 s`.
fn duration(d: &Value) -> Option<String> {
    let v = d.get("duration_ms")?;
    Some(match v.as_f64() {
        Some(ms) if ms.is_finite() && ms.abs() < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) if ms.is_finite() => format!("{:.1} s", ms / 1000.0),
        _ => text_of(v),
    })
}

/// A `who` value: a [`Who`] object, a plain string, or whatever else is there.
fn who_label(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(unknown)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => match serde_json::from_value::<Who>(v.clone()) {
            Ok(who) => who.actor_label(),
            Err(_) => compact(v),
        },
    }
}

fn time(r: &Record) -> String {
    r.time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `data[key]` as text; empty when absent (or when `data` is not an object at all).
fn get(d: &Value, key: &str) -> String {
    d.get(key).map(text_of).unwrap_or_default()
}

/// The first non-empty of several keys.
fn first_of(d: &Value, keys: &[&str]) -> String {
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
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => compact(other),
    }
}

fn compact(v: &Value) -> String {
    v.to_string()
}

/// Control characters (newlines, escapes) would break a listing or inject terminal sequences:
/// line breaks of free text (a note, a summary) read as spaces, then the one sanitiser removes
/// escape sequences and shows any other control visibly.
fn one_line(s: &str) -> String {
    crate::sanitize::for_terminal(&s.replace(['\r', '\n'], " ")).into_owned()
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// At most `max` characters, with `…` marking a cut (char-based, so never splits UTF-8).
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
