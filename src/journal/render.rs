//! Rendering journal records for people: a terminal listing, the raw JSON Lines, and a Markdown
//! change-ticket report.
//!
//! The journal is evidence, and a report generated from a damaged or unexpected journal is still
//! wanted, so rendering reads `data` defensively: every field is optional, any JSON shape is
//! accepted, and nothing here panics. A damaged journal is rendered up to its damage, with a
//! banner naming where it breaks ([`Options::damage`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::actor::Who;
use super::{BadRecord, Record, TornTail};

/// Output format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One aligned line per record, each record's data told in words.
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

/// How [`render_with`] renders.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Cut text lines to this many columns (a terminal's width); `None`: never cut (a pipe or a
    /// file gets every line whole).
    pub width: Option<usize>,
    /// The records are the intact part of a damaged journal, which breaks here
    /// ([`super::read_prefix`]): text and Markdown say so at the top and the bottom.
    pub damage: Option<BadRecord>,
    /// A torn final line that was left out (a crash mid-write): noted at the bottom.
    pub torn_tail: Option<TornTail>,
}

/// Renders `records` in `format`, the text listing cut to 100 columns.
pub fn render(records: &[Record], format: Format) -> String {
    render_with(
        records,
        format,
        &Options {
            width: Some(TEXT_WIDTH),
            ..Options::default()
        },
    )
}

/// Renders `records` in `format` as `opts` says. JSON stays exactly the stored lines (no banner:
/// the caller says on stderr that a journal is damaged).
pub fn render_with(records: &[Record], format: Format, opts: &Options) -> String {
    match format {
        Format::Json => records.iter().map(|r| r.to_line() + "\n").collect(),
        Format::Text => text(records, opts),
        Format::Markdown => markdown(records, opts),
    }
}

/// The banner for a journal shown up to its damage: where the chain breaks and what is shown.
pub fn damage_banner(damage: &BadRecord, shown: usize) -> String {
    let shown = match shown {
        0 => "No record before it is intact".to_string(),
        1 => "Showing record 1, before the damage".to_string(),
        n => format!("Showing records 1 to {n}, before the damage"),
    };
    format!(
        "DAMAGED JOURNAL: the hash chain breaks at seq {} (line {}): {}. {shown}; nothing from \
         seq {} on is shown (the chain cannot vouch for it), and `cutover journal verify` fails.",
        damage.seq,
        damage.line_no,
        one_line(&damage.reason),
        damage.seq,
    )
}

/// The note for a torn final line that was left out.
fn torn_note(t: &TornTail) -> String {
    format!(
        "note: the last line (line {}, {} bytes) is torn (a crash mid-write) and is not shown.",
        t.line_no, t.bytes
    )
}

/// Width the default text listing fits in.
const TEXT_WIDTH: usize = 100;

fn text(records: &[Record], opts: &Options) -> String {
    let titles = step_titles(records);
    // On a terminal, column widths follow the content but are capped, so one long step or
    // node name cannot push the summaries off the screen; elsewhere nothing is cut.
    let width = |f: &dyn Fn(&Record) -> usize, cap: usize| {
        let w = records.iter().map(f).max().unwrap_or(0);
        if opts.width.is_some() { w.min(cap) } else { w }
    };
    let seq_w = width(&|r| r.seq.to_string().len(), 20);
    let kind_w = width(&|r| r.kind.chars().count(), 19);
    let step_w = width(&|r| r.step.as_deref().unwrap_or("-").chars().count(), 14);
    let node_w = width(&|r| r.node.as_deref().unwrap_or("-").chars().count(), 12);
    let cut = |s: &str, w: usize| match opts.width {
        Some(_) => clip(s, w),
        None => s.to_string(),
    };
    let mut out = String::new();
    if let Some(d) = &opts.damage {
        let _ = writeln!(out, "{}", damage_banner(d, records.len()));
    }
    for r in records {
        let line = format!(
            "{seq:>seq_w$}  {time}  {kind:<kind_w$}  {step:<step_w$}  {node:<node_w$}  {summary}",
            seq = r.seq,
            time = r.time.format("%H:%M:%S"),
            kind = cut(&one_line(&r.kind), kind_w),
            step = cut(&one_line(r.step.as_deref().unwrap_or("-")), step_w),
            node = cut(&one_line(r.node.as_deref().unwrap_or("-")), node_w),
            summary = one_line(&summary(r, &titles)),
        );
        match opts.width {
            Some(w) => out.push_str(clip(&line, w).trim_end()),
            None => out.push_str(line.trim_end()),
        }
        out.push('\n');
    }
    if let Some(t) = &opts.torn_tail {
        let _ = writeln!(out, "{}", torn_note(t));
    }
    if let Some(d) = &opts.damage
        && !records.is_empty()
    {
        let _ = writeln!(out, "{}", damage_banner(d, records.len()));
    }
    out
}

/// Step id → its title, as the run showed it: the runbook's source is in `run_started`, and the
/// same fold the UI uses renders the titles (templates and all). Empty when there is none.
fn step_titles(records: &[Record]) -> HashMap<String, String> {
    let Some(rs) = records.iter().find(|r| r.kind == "run_started") else {
        return HashMap::new();
    };
    let Ok(event) = crate::engine::Event::from_parts(&rs.kind, &rs.data) else {
        return HashMap::new();
    };
    let mut state = crate::engine::State::default();
    state.apply(&event, rs.time);
    state
        .steps
        .into_iter()
        .map(|s| (s.id, s.title))
        .filter(|(_, t)| !t.trim().is_empty())
        .collect()
}

/// The runbook's step ids in order, when the journal holds the runbook.
fn runbook_steps(records: &[Record]) -> Vec<String> {
    let Some(rs) = records.iter().find(|r| r.kind == "run_started") else {
        return Vec::new();
    };
    let source = get(&rs.data, "runbook_source");
    let origin = get(&rs.data, "runbook_origin");
    crate::runbook::Runbook::parse(&source, &origin)
        .map(|rb| rb.steps.into_iter().map(|s| s.id).collect())
        .unwrap_or_default()
}

/// A step for people: its title, or its id when the journal does not hold a title.
fn step_label(titles: &HashMap<String, String>, id: &str) -> String {
    match titles.get(id) {
        Some(t) => t.clone(),
        None => id.to_string(),
    }
}

/// What a record says, in words, by kind.
fn summary(r: &Record, titles: &HashMap<String, String>) -> String {
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

/// `head: detail`, or `head` alone.
fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// `text; next: …`, or `text` alone.
fn with_next(text: &str, next: &str) -> String {
    if next.is_empty() {
        text.to_string()
    } else {
        format!("{text}; next: {next}")
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
    match super::sign::signer_of(d) {
        Some(fp) => format!("(signed {fp})"),
        None => "(unsigned)".to_string(),
    }
}

/// The kinds that end (or re-open) a run, for the final status.
const STATUS_KINDS: [&str; 4] = ["run_completed", "run_halted", "run_paused", "run_resumed"];

fn markdown(records: &[Record], opts: &Options) -> String {
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
                cell(&clip(&summary(r, &titles), 200)),
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
