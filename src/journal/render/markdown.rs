//! The change-ticket report: `cutover journal show --format markdown`. Its structure (steps with
//! their actions, hard stops with their decisions, gates, the final status) is read from the
//! records; what each event says comes from the narrator, or, for a record that does not read
//! back as an event, from its raw data ([`super::raw`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::common::{
    Options, cell, clip, damage_banner, one_line, runbook_steps, step_titles, summary, time,
    torn_note, typed,
};
use super::raw::{self, compact, first_of, get, text_of};
use crate::engine::{Event, narrate};
use crate::journal::Record;

/// The kinds that end (or re-open) a run, for the final status.
const STATUS_KINDS: [&str; 4] = ["run_completed", "run_halted", "run_paused", "run_resumed"];

pub(super) fn markdown(records: &[Record], opts: &Options) -> String {
    let mut out = String::new();
    let started = records.iter().find(|r| r.kind == "run_started");
    let status = records
        .iter()
        .rev()
        .find(|r| STATUS_KINDS.contains(&r.kind.as_str()));
    let data_of = |r: Option<&Record>, key: &str| r.map(|r| get(&r.data, key)).unwrap_or_default();
    let titles = step_titles(records);

    // ---- Header --------------------------------------------------------------------------
    let title = started
        .map(|r| first_of(&r.data, &["runbook_title", "runbook_name"]))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "(unknown runbook)".to_string());
    let _ = writeln!(out, "# Change report: {}\n", one_line(&title));
    if let Some(d) = &opts.damage {
        let _ = writeln!(
            out,
            "> **{}**\n",
            one_line(&damage_banner(d, records.len()))
        );
    }
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
    let count = match &opts.damage {
        Some(d) => format!(
            "{} (the journal is damaged at seq {}: nothing from there on is shown)",
            records.len(),
            d.seq
        ),
        None => records.len().to_string(),
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
        ("Records", count),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    }

    // ---- Steps, each with its actions and notes ------------------------------------------
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
    // The runbook's steps in its order (those never reached too), then any other step the
    // journal mentions in order of first mention: an intent's or a note's step counts, so no
    // action or note goes unlisted.
    let mut steps: Vec<Option<String>> = runbook_steps(records).into_iter().map(Some).collect();
    for r in records {
        let mentions = matches!(
            r.kind.as_str(),
            "step_started" | "step_completed" | "intent"
        ) || (r.kind == "note" && r.step.is_some());
        let step = r.step.clone();
        if mentions && !steps.contains(&step) {
            steps.push(step);
        }
    }
    // Actions outside any step go last.
    steps.sort_by_key(|s| s.is_none());
    let _ = writeln!(out, "\n## Steps");
    if steps.is_empty() {
        let _ = writeln!(out, "\n_No steps were started._");
    }
    for (n, step) in steps.iter().enumerate() {
        let step = step.as_deref();
        let heading = match step {
            None => "(outside any step)".to_string(),
            Some(id) => match titles.get(id) {
                Some(t) if t != id => format!("{} (`{}`)", one_line(t), one_line(id)),
                _ => one_line(id),
            },
        };
        let _ = writeln!(out, "\n### {}. {}\n", n + 1, heading);
        let mine = |r: &Record| r.step.as_deref() == step;
        if step.is_some() && !records.iter().any(mine) {
            let _ = writeln!(out, "_Not reached._");
            continue;
        }
        let when = |kind: &str| {
            records
                .iter()
                .filter(|r| r.kind == kind && mine(r))
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
        let actions: Vec<&Record> = intents.iter().copied().filter(|r| mine(r)).collect();
        let notes: Vec<&Record> = if step.is_some() {
            records
                .iter()
                .filter(|r| r.kind == "note" && mine(r))
                .collect()
        } else {
            Vec::new()
        };
        if actions.is_empty() && notes.is_empty() {
            let _ = writeln!(out, "_No actions._");
            continue;
        }
        if !actions.is_empty() {
            let _ = writeln!(
                out,
                "| Time | Node | Action | Detail | Result |\n|---|---|---|---|---|"
            );
        }
        for intent in actions {
            let id = intent.data.get("id").map(compact).unwrap_or_default();
            let result = match outcomes.get(&id) {
                Some(o) => match typed(o) {
                    Some(Event::Outcome(o)) => narrate::report_result(&o),
                    _ => raw::report_result(&o.data),
                },
                None => match resolutions.get(&id) {
                    Some(res) => typed(res)
                        .and_then(|e| narrate::report_resolved(&e))
                        .unwrap_or_else(|| raw::report_resolved(&res.data)),
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
        if !notes.is_empty() {
            let _ = writeln!(out, "\nNotes:\n");
            for note in notes {
                let _ = writeln!(
                    out,
                    "- {}{}: {}",
                    time(note),
                    note.node
                        .as_deref()
                        .map(|n| format!(" on {}", one_line(n)))
                        .unwrap_or_default(),
                    one_line(&get(&note.data, "message"))
                );
            }
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
        let said = |d: &Record| {
            typed(d)
                .and_then(|e| narrate::report_decision(&e))
                .unwrap_or_else(|| raw::report_decision(d))
        };
        match decision {
            Some(d) if d.kind == "hard_stop_confirmed" => {
                let sha = get(&d.data, "state_sha256");
                let _ = writeln!(
                    out,
                    "  - {} at {}{}, {}",
                    one_line(&said(d)),
                    time(d),
                    if sha.is_empty() {
                        String::new()
                    } else {
                        format!(" (state sha256 `{}`)", one_line(&sha))
                    },
                    match crate::journal::sign::signer_of(&d.data) {
                        Some(fp) => format!("signed by `{}`", one_line(&fp)),
                        None => "**unsigned**".to_string(),
                    }
                );
            }
            Some(d) => {
                let _ = writeln!(out, "  - {} at {}", one_line(&said(d)), time(d));
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
            let detail = report_detail(g);
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
        | "run_paused"
        | "client_impact" => true,
        // A note is shown under its step; one outside any step is listed below.
        "note" => r.step.is_some(),
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
                cell(&clip(&summary(r, typed(r).as_ref(), &titles), 200)),
            );
        }
    }

    // ---- Client impact (the meter's summaries, folded) ---------------------------------------
    if let Some(section) = crate::engine::report::client_impact_markdown(&folded(records)) {
        out.push_str(&section);
    }

    // ---- Final status --------------------------------------------------------------------
    let _ = writeln!(out, "\n## Final status\n");
    let _ = match status {
        Some(r) => {
            let detail = report_detail(r);
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
    if let Some(t) = &opts.torn_tail {
        let _ = writeln!(out, "\n_{}_", one_line(&torn_note(t)));
    }
    if let Some(d) = &opts.damage
        && !records.is_empty()
    {
        let _ = writeln!(
            out,
            "\n_This status is as of seq {}, the last intact record: the journal is damaged at \
             seq {}, and nothing from there on is shown._",
            d.seq.saturating_sub(1),
            d.seq
        );
    }
    out
}

/// The run's state, folded from the records that read back as events (what the client-impact
/// section needs: the meter's summaries and the pool over time).
fn folded(records: &[Record]) -> crate::engine::State {
    let mut st = crate::engine::State::default();
    for r in records {
        if let Ok(e) = crate::engine::recorded::read_event(&r.kind, &r.data) {
            st.apply(&e, r.time);
        }
    }
    st
}

fn status_word(status: Option<&Record>) -> &'static str {
    match status.map(|r| r.kind.as_str()) {
        Some("run_completed") => "Completed",
        Some("run_halted") => "Halted",
        Some("run_paused") => "Paused",
        _ => "In progress",
    }
}

/// The detail the report gives a gate or a final status.
fn report_detail(r: &Record) -> String {
    match typed(r) {
        Some(e) => narrate::report_detail(&e),
        None => raw::report_detail(r),
    }
}
