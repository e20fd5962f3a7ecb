//! Rendering journal records for people: a terminal listing, the raw JSON Lines, and a Markdown
//! change-ticket report.
//!
//! A record's words come from the engine's narrator ([`crate::engine::narrate`]): each record is
//! read back into the typed event it was written from. The journal is evidence, and a report
//! generated from a damaged or unexpected journal is still wanted, so a record that does not read
//! back (a kind this version does not know, data damaged or made by hand) is rendered from its
//! raw data, defensively ([`raw`]): every field is optional, any JSON shape is accepted, and
//! nothing here panics. A damaged journal is rendered up to its damage, with a banner naming
//! where it breaks ([`Options::damage`]).
//!
//! Layout: this file holds the formats, the text listing and the choice between the narrator
//! and the raw rendering; `markdown.rs` the change report; `raw.rs` the defensive rendering.

mod markdown;
mod raw;

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::actor::Who;
use super::{BadRecord, Record, TornTail};
use crate::engine::{Event, narrate};
use markdown::markdown;
use raw::get;

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
    let events: Vec<Option<Event>> = records.iter().map(typed).collect();
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
    for (r, event) in records.iter().zip(&events) {
        let line = format!(
            "{seq:>seq_w$}  {time}  {kind:<kind_w$}  {step:<step_w$}  {node:<node_w$}  {summary}",
            seq = r.seq,
            time = r.time.format("%H:%M:%S"),
            kind = cut(&one_line(&r.kind), kind_w),
            step = cut(&one_line(r.step.as_deref().unwrap_or("-")), step_w),
            node = cut(&one_line(r.node.as_deref().unwrap_or("-")), node_w),
            summary = one_line(&summary(r, event.as_ref(), &titles)),
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

/// The typed event a record was written from, or None when it does not read back as one: a
/// kind this version does not know (`fleet_unlocked` is the journal's own, not an event), data
/// that is damaged or hand-made. The typed reading is lenient in places the raw rendering is
/// not, so those count as not reading back, to keep their words: a `who` that is neither
/// cutover's object nor a plain string (the raw rendering shows `(unknown)` or its JSON), and a
/// `run_started` whose inventory lists no load balancers at all (it says nothing of them).
fn typed(r: &Record) -> Option<Event> {
    let d = &r.data;
    let who_reads = match d.get("who") {
        None | Some(Value::String(_)) => true,
        Some(v) => serde_json::from_value::<Who>(v.clone()).is_ok(),
    };
    let fleet_reads = r.kind != "run_started"
        || d.get("inventory")
            .and_then(|i| i.get("load_balancers"))
            .is_some_and(Value::is_array);
    if !who_reads || !fleet_reads {
        return None;
    }
    Event::from_parts(&r.kind, d).ok()
}

/// What a record says, in words: the narrator's for a record that reads back as an event,
/// else from its raw data.
fn summary(r: &Record, event: Option<&Event>, titles: &HashMap<String, String>) -> String {
    let Some(e) = event else {
        return raw::summary(r, titles);
    };
    let title = |id: &str| titles.get(id).cloned();
    let cx = narrate::Context {
        step_title: Some(&title),
        record_step: r.step.as_deref(),
        signer: super::sign::signer_of(&r.data),
        ..narrate::Context::default()
    };
    narrate::journal(e, &cx)
}

fn time(r: &Record) -> String {
    r.time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{Breach, Failure, Outcome, PauseCause};

    fn record(seq: u64, e: &Event) -> Record {
        Record {
            seq,
            time: chrono::Utc::now(),
            run: "r1".into(),
            actor: "alice@b".into(),
            kind: e.kind().into(),
            step: Some("drain".into()),
            node: e.node().map(str::to_string),
            data: e.data(),
            prev: String::new(),
            hash: String::new(),
        }
    }

    /// Events of the kinds the fixture journals do not hold, in their several shapes.
    fn made() -> Vec<Event> {
        let who = crate::engine::Who::named("alice", "bastion1");
        let outcome = |failure| {
            Event::Outcome(Outcome {
                id: 7,
                op: 3,
                node: Some("ks1".into()),
                ok: false,
                summary: "exited 1".into(),
                duration_ms: 1234,
                observed: Default::default(),
                failure,
            })
        };
        vec![
            outcome(None),
            outcome(Some(Failure::Hint {
                next: "look at the unit".into(),
            })),
            outcome(Some(Failure::HostKeyUnknown {
                host: "127.0.0.1".into(),
                port: 2222,
                fingerprint: "SHA256:abc".into(),
                key_openssh: "ssh-ed25519 AAAA".into(),
                known_hosts: "/k".into(),
            })),
            Event::GateFailed {
                op: 2,
                gate: "drained".into(),
                node: Some("ks1".into()),
                reason: "3 sessions".into(),
                next: "wait".into(),
            },
            Event::PauseRequested {
                who: who.clone(),
                cause: PauseCause::Operator,
            },
            Event::PauseRequested {
                who: who.clone(),
                cause: PauseCause::TerminalHangup,
            },
            Event::RunPaused {
                reason: "paused by the operator".into(),
            },
            Event::RunResumed {
                who: who.clone(),
                drift: vec![],
                in_doubt: vec![],
                observed: Default::default(),
            },
            Event::RunResumed {
                who: crate::engine::Who::cutover("cutover (idempotent action)"),
                drift: vec!["ks1 flipped".into(), "ks2 down".into()],
                in_doubt: vec![4, 5],
                observed: Default::default(),
            },
            Event::InDoubtResolved {
                id: 4,
                choice: "redo".into(),
                who: who.clone(),
            },
            Event::RunHalted {
                op: 3,
                node: None,
                reason: "restart failed".into(),
                next: String::new(),
            },
            Event::StepStarted {
                step: String::new(),
            },
            Event::PoolBreach(Breach {
                node: "ks1".into(),
                lb: "lb1".into(),
                seen: "UP 1/3".into(),
                at: chrono::Utc::now(),
                last_out_at: None,
                reverted_ms: Some(40),
                source: "guard".into(),
                cause: None,
                error: None,
            }),
        ]
    }

    /// The narrator and the defensive rendering say a well-formed record in the same words:
    /// every record of the journals today's main wrote, and one of each other kind and shape.
    #[test]
    fn the_narrator_and_the_raw_rendering_agree_on_well_formed_records() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/journals/main-2edb051"
        );
        let mut records = Vec::new();
        for file in ["done.jsonl", "paused.jsonl"] {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                records.push(serde_json::from_str::<Record>(line).unwrap());
            }
        }
        assert!(records.len() > 200);
        for (i, e) in made().iter().enumerate() {
            records.push(record(i as u64, e));
        }
        let titles = step_titles(&records);
        for r in &records {
            let e = typed(r).unwrap_or_else(|| panic!("does not read back: {}", r.to_line()));
            assert_eq!(
                summary(r, Some(&e), &titles),
                raw::summary(r, &titles),
                "{}",
                r.to_line()
            );
            if matches!(
                r.kind.as_str(),
                "gate_passed"
                    | "gate_failed"
                    | "run_completed"
                    | "run_halted"
                    | "run_paused"
                    | "run_resumed"
            ) {
                assert_eq!(narrate::report_detail(&e), raw::report_detail(r));
            }
            match &e {
                Event::Outcome(o) => {
                    assert_eq!(narrate::report_result(o), raw::report_result(&r.data))
                }
                Event::InDoubtResolved { .. } => assert_eq!(
                    narrate::report_resolved(&e).unwrap(),
                    raw::report_resolved(&r.data)
                ),
                Event::HardStopConfirmed { .. } | Event::HardStopDeclined { .. } => {
                    assert_eq!(
                        narrate::report_decision(&e).unwrap(),
                        raw::report_decision(r)
                    )
                }
                _ => {}
            }
        }
    }

    /// What the narrator cannot say as the raw rendering does is left to the raw rendering.
    #[test]
    fn records_that_do_not_read_back_are_rendered_raw() {
        let who = crate::engine::Who::named("alice", "bastion1");
        let e = Event::HardStopDeclined {
            id: "flip".into(),
            op: 1,
            node: None,
            who,
        };
        let mut r = record(1, &e);
        assert!(typed(&r).is_some());
        for who in [serde_json::Value::Null, serde_json::json!({"user": 7})] {
            r.data["who"] = who;
            assert!(typed(&r).is_none(), "{}", r.to_line());
        }
        assert_eq!(
            summary(&r, None, &HashMap::new()),
            "hard stop flip declined by {\"user\":7}"
        );
        r.kind = "fleet_unlocked".into();
        assert!(typed(&r).is_none());
        r.kind = "intent".into();
        r.data = serde_json::json!({"id": "seven", "action": "drain"});
        assert!(typed(&r).is_none());
        assert_eq!(summary(&r, None, &HashMap::new()), "#seven drain");
    }
}
