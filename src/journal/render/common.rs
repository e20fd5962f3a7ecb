//! What the text listing and the change report share: the options, reading a record back into
//! its typed event, what a record says (the narrator's words, or the raw rendering's), step
//! titles, and making text safe to show.

use std::collections::HashMap;

use serde_json::Value;

use super::raw;
use crate::engine::{Event, narrate};
use crate::journal::actor::Who;
use crate::journal::{BadRecord, Record, TornTail};

/// How [`super::render_with`] renders.
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
pub(super) fn torn_note(t: &TornTail) -> String {
    format!(
        "note: the last line (line {}, {} bytes) is torn (a crash mid-write) and is not shown.",
        t.line_no, t.bytes
    )
}

/// Step id → its title, as the run showed it: the runbook's source is in `run_started`, and the
/// same fold the UI uses renders the titles (templates and all). Empty when there is none.
pub(super) fn step_titles(records: &[Record]) -> HashMap<String, String> {
    let Some(rs) = records.iter().find(|r| r.kind == "run_started") else {
        return HashMap::new();
    };
    let Ok(event) = crate::engine::recorded::read_event(&rs.kind, &rs.data) else {
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

/// The runbook's step ids in order, when the journal holds the runbook: those its parameters
/// include (a step's `when`).
pub(super) fn runbook_steps(records: &[Record]) -> Vec<String> {
    let Some(rs) = records.iter().find(|r| r.kind == "run_started") else {
        return Vec::new();
    };
    let source = raw::get(&rs.data, "runbook_source");
    let origin = raw::get(&rs.data, "runbook_origin");
    let params: std::collections::BTreeMap<String, String> = rs
        .data
        .get("params")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    crate::runbook::Runbook::parse(&source, &origin)
        .map(|rb| {
            rb.steps
                .iter()
                .filter(|s| rb.included(s, &params))
                .map(|s| s.id.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The typed event a record was written from, or None when it does not read back as one: a
/// kind this version does not know (`fleet_unlocked` is the journal's own, not an event), data
/// that is damaged or hand-made. The typed reading is lenient in places the raw rendering is
/// not, so those count as not reading back, to keep their words: a `who` that is neither
/// cutover's object nor a plain string (the raw rendering shows `(unknown)` or its JSON), and a
/// `run_started` whose inventory lists no load balancers at all (it says nothing of them).
pub(super) fn typed(r: &Record) -> Option<Event> {
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
    crate::engine::recorded::read_event(&r.kind, d).ok()
}

/// What a record says, in words: the narrator's for a record that reads back as an event,
/// else from its raw data.
pub(super) fn summary(
    r: &Record,
    event: Option<&Event>,
    titles: &HashMap<String, String>,
) -> String {
    let Some(e) = event else {
        return raw::summary(r, titles);
    };
    let title = |id: &str| titles.get(id).cloned();
    let cx = narrate::Context {
        step_title: Some(&title),
        record_step: r.step.as_deref(),
        signer: crate::journal::sign::signer_of(&r.data),
        ..narrate::Context::default()
    };
    narrate::journal(e, &cx)
}

pub(super) fn time(r: &Record) -> String {
    r.time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Control characters (newlines, escapes) would break a listing or inject terminal sequences:
/// line breaks of free text (a note, a summary) read as spaces, then the one sanitiser removes
/// escape sequences and shows any other control visibly.
pub(super) fn one_line(s: &str) -> String {
    crate::sanitize::for_terminal(&s.replace(['\r', '\n'], " ")).into_owned()
}

/// Text safe inside a Markdown table cell.
pub(super) fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// At most `max` characters, with `…` marking a cut (char-based, so never splits UTF-8).
pub(super) fn clip(s: &str, max: usize) -> String {
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
