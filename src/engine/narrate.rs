//! The narrator: one place that knows how to say each event in words.
//!
//! Three surfaces tell events to people, each in its own register, and each asks here:
//! - [`headless`]: the text of a headless run's line (`cutover run --headless`), the runtime adds
//!   the time, kind and node columns;
//! - [`log`]: the UI's log lines, which the fold records ([`super::state::State::apply`]);
//! - [`journal`] and the `report_*` phrases: `cutover journal show` as text and as a Markdown
//!   change report (the journal's records read back into typed events; a record that does not
//!   read back is rendered defensively by `journal::render` instead).
//!
//! The words differ by surface where they did before this module existed (a headless line says
//! `gate X passed: …`, the log says `passed: …` under the gate's name); what changes an event's
//! words is one edit here. Only the engine's types come in; what is not in an event (a step's
//! title, the intent an outcome answers, a confirmation's signer) comes in a [`Context`].

use super::events::{Event, Failure, Intent, Outcome, PauseCause};
use super::impact::{ClientImpact, ImpactReason};
use crate::glyphs::Glyphs;
use crate::sanitize::for_terminal;
use serde::Serialize;

/// How a log line reads in the UI: its colour and marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogLevel {
    Info,
    Start,
    Ok,
    Warn,
    Fail,
    Stop,
}

/// One line of the UI's log, before the fold stamps it with the event's time.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub node: Option<String>,
    /// The action, gate or kind of line, shown in its own column.
    pub action: String,
    pub text: String,
    pub level: LogLevel,
    pub duration_ms: Option<u64>,
}

/// A step's title by its id.
pub type StepTitle<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What an event's words may need that the event does not carry.
#[derive(Default)]
pub struct Context<'a> {
    /// A step's title by its id, as the run rendered it (templates filled in).
    pub step_title: Option<StepTitle<'a>>,
    /// The intent an outcome or an in-doubt choice answers: the log names its action and node.
    pub intent: Option<&'a Intent>,
    /// The node of the hard stop a confirmation or a decline answers.
    pub stop_node: Option<String>,
    /// A journal record's own step, for a step record whose data names none.
    pub record_step: Option<&'a str>,
    /// A journal record's signer (the SSH key's fingerprint) of a confirmation; None: unsigned.
    pub signer: Option<String>,
}

impl Context<'_> {
    fn title(&self, step: &str) -> Option<String> {
        self.step_title.and_then(|f| f(step))
    }
}

/// An operator as people read one: `alice@bastion1`, `alice(as root)@bastion1`.
fn who(w: &super::who::Who) -> String {
    w.actor_label()
}

/// The text of a headless line for `e` (the runtime adds time, kind and node, and indents
/// further lines under the first).
pub fn headless(e: &Event, cx: &Context, g: &Glyphs) -> String {
    match e {
        Event::RunStarted(rs) => format!(
            "{} on {} ({} nodes), run {}",
            rs.runbook_title,
            rs.cluster,
            rs.inventory.nodes.len(),
            rs.run_id
        ),
        Event::StepStarted { step } => format!(
            "{} {}",
            g.play,
            cx.title(step).unwrap_or_else(|| step.clone())
        ),
        Event::StepCompleted { step } => format!("{} {step}", g.done),
        Event::Intent(i) => match i.pool_read_ms {
            Some(ms) => format!("{} {} (pool read {ms} ms before)", g.arrow, i.detail),
            None => format!("{} {}", g.arrow, i.detail),
        },
        // The duration on the first line: a failed restart's evidence follows on lines of its own.
        Event::Outcome(o) => {
            let summary = o.summary.trim_end();
            let (first, rest) = summary.split_once('\n').unwrap_or((summary, ""));
            let rest = if rest.is_empty() {
                String::new()
            } else {
                format!("\n{rest}")
            };
            format!(
                "{} {} ({} ms){rest}",
                if o.ok { "ok" } else { "FAILED" },
                first.trim_end_matches('\r'),
                o.duration_ms
            )
        }
        Event::GatePassed { gate, detail, .. } => format!("gate {gate} passed: {detail}"),
        Event::GateFailed { gate, reason, .. } => format!("gate {gate} FAILED: {reason}"),
        Event::HardStopRaised(h) => format!(
            "HARD STOP `{}`: {} {} {}",
            h.id,
            one_line(&h.title),
            g.dash,
            one_line(&h.hazard)
        ),
        Event::HardStopConfirmed { id, who: w, .. } => {
            format!("hard stop `{id}` confirmed by {}", who(w))
        }
        Event::HardStopDeclined { id, who: w, .. } => declined(id, w),
        Event::PauseRequested { cause, .. } => match cause {
            PauseCause::Operator => "pause requested".into(),
            PauseCause::TerminalHangup => {
                "the terminal hung up: pausing at the next safe point".into()
            }
        },
        Event::RunPaused { reason } => format!("paused: {reason}"),
        Event::RunResumed {
            drift, in_doubt, ..
        } => format!(
            "resumed; drift: {}; in doubt: {}",
            if drift.is_empty() {
                "none".into()
            } else {
                drift.join("; ")
            },
            in_doubt.len()
        ),
        Event::InDoubtResolved { id, choice, .. } => format!("in-doubt action {id}: {choice}"),
        // What to do next on a line of its own, after the reason and its evidence.
        Event::RunHalted { reason, next, .. } if next.trim().is_empty() => {
            format!("HALTED: {}", reason.trim_end())
        }
        Event::RunHalted { reason, next, .. } => {
            format!("HALTED: {}\nnext: {}", reason.trim_end(), next.trim())
        }
        Event::RunCompleted { summary } => format!("completed: {summary}"),
        Event::Note { message, .. } => format!("note: {message}"),
        Event::PoolBreach(b) => format!("POOL BREACH: {}", b.line()),
        Event::ClientImpact(c) => client_impact(c),
    }
}

/// How a later event answered the hard stop `hs`, if it did: what a replay says under the
/// box (`confirmed (Shift+Y) by alice@bastion1`), the replay adds when.
pub fn answer_to(e: &Event, hs: &super::events::HardStop) -> Option<String> {
    match e {
        Event::HardStopConfirmed { id, who: w, .. } if *id == hs.id => {
            Some(format!("confirmed (Shift+Y) by {}", who(w)))
        }
        Event::HardStopDeclined { id, who: w, .. } if *id == hs.id => {
            Some(format!("declined by {}", who(w)))
        }
        Event::InDoubtResolved { choice, who: w, .. } if hs.in_doubt.is_some() => {
            Some(format!("{choice} chosen by {}", who(w)))
        }
        Event::RunResumed { who: w, .. } => {
            Some(format!("cleared when {} resumed the run", who(w)))
        }
        _ => None,
    }
}

/// Why a run is paused after a hard stop was declined (the run's status shows it), and the
/// headless line for the decline.
pub fn declined(id: &str, w: &super::who::Who) -> String {
    format!("hard stop `{id}` declined by {}", who(w))
}

/// The UI's log lines for `e`: none, one, or (a resume with drift) one per changed thing.
pub fn log(e: &Event, cx: &Context) -> Vec<LogEntry> {
    let line = |node: Option<String>, action: &str, text: String, level: LogLevel| LogEntry {
        node,
        action: action.to_string(),
        text,
        level,
        duration_ms: None,
    };
    let one = |node, action, text, level| vec![line(node, action, text, level)];
    match e {
        Event::RunStarted(rs) => one(
            None,
            "run",
            format!("run {} started by {}", rs.run_id, who(&rs.who)),
            LogLevel::Info,
        ),
        Event::StepStarted { step } => one(
            None,
            "step",
            format!("▶ {}", cx.title(step).unwrap_or_default()),
            LogLevel::Info,
        ),
        Event::StepCompleted { .. } => Vec::new(),
        Event::Intent(i) => one(i.node.clone(), &i.action, i.detail.clone(), LogLevel::Start),
        Event::Outcome(o) => vec![LogEntry {
            node: o.node.clone(),
            action: cx.intent.map(|i| i.action.clone()).unwrap_or_default(),
            text: o.summary.clone(),
            level: if o.ok { LogLevel::Ok } else { LogLevel::Fail },
            duration_ms: Some(o.duration_ms),
        }],
        Event::GatePassed {
            gate, node, detail, ..
        } => one(
            node.clone(),
            &format!("gate {gate}"),
            format!("passed: {detail}"),
            LogLevel::Ok,
        ),
        Event::GateFailed {
            gate, node, reason, ..
        } => one(
            node.clone(),
            &format!("gate {gate}"),
            format!("FAILED: {reason}"),
            LogLevel::Fail,
        ),
        Event::HardStopRaised(h) => one(
            h.node.clone(),
            "hard stop",
            format!("{}: {}", h.id, h.title),
            LogLevel::Stop,
        ),
        Event::HardStopConfirmed { id, who: w, .. } => one(
            cx.stop_node.clone(),
            "hard stop",
            format!("{id} confirmed by {}", who(w)),
            LogLevel::Ok,
        ),
        Event::HardStopDeclined { id, who: w, .. } => one(
            cx.stop_node.clone(),
            "hard stop",
            format!("{id} declined by {}", who(w)),
            LogLevel::Warn,
        ),
        Event::PauseRequested { who: w, cause } => one(
            None,
            "pause",
            match cause {
                PauseCause::Operator => format!("pause requested by {}", who(w)),
                PauseCause::TerminalHangup => format!(
                    "the terminal of {} hung up: pausing at the next safe point",
                    who(w)
                ),
            },
            LogLevel::Info,
        ),
        Event::RunPaused { reason } => {
            one(None, "run", format!("paused: {reason}"), LogLevel::Warn)
        }
        Event::RunResumed { who: w, drift, .. } => {
            let mut lines = one(
                None,
                "run",
                format!("resumed by {}", who(w)),
                LogLevel::Info,
            );
            lines.extend(
                drift
                    .iter()
                    .map(|d| line(None, "drift", d.clone(), LogLevel::Warn)),
            );
            lines
        }
        Event::InDoubtResolved { id, choice, who: w } => one(
            cx.intent.and_then(|i| i.node.clone()),
            "in doubt",
            format!("action {id}: {choice} ({})", who(w)),
            LogLevel::Info,
        ),
        Event::RunHalted {
            reason, next, node, ..
        } => one(
            node.clone(),
            "run",
            if reason.contains('\n') {
                // A multi-line reason (a failed restart's evidence): next on its own line.
                format!("HALTED: {reason}\nnext: {next}")
            } else {
                format!("HALTED: {reason} — {next}")
            },
            LogLevel::Fail,
        ),
        Event::RunCompleted { summary } => {
            one(None, "run", format!("completed: {summary}"), LogLevel::Ok)
        }
        Event::Note { message, .. } => one(None, "note", message.clone(), LogLevel::Info),
        Event::PoolBreach(b) => one(
            Some(b.node.clone()),
            "pool breach",
            b.line(),
            LogLevel::Stop,
        ),
        // The meter line shows the running counts; the log keeps phase changes and the end.
        Event::ClientImpact(c) if c.reason == ImpactReason::Periodic && c.off.is_none() => {
            Vec::new()
        }
        Event::ClientImpact(c) => {
            let level = if c.total.fresh_failures() > 0 {
                LogLevel::Warn
            } else {
                LogLevel::Info
            };
            one(None, "client impact", client_impact(c), level)
        }
    }
}

/// What a journal record of `e` says, for `cutover journal show`'s text listing and the
/// Markdown report's list of other events (made one line by the caller).
pub fn journal(e: &Event, cx: &Context) -> String {
    // The step a step record is about: its own, else the record's; by title when there is one.
    let step = |s: &str| {
        let s = if s.is_empty() {
            cx.record_step.unwrap_or_default()
        } else {
            s
        };
        if s.is_empty() {
            "(unnamed)".to_string()
        } else {
            format!(
                "\u{201c}{}\u{201d}",
                cx.title(s).unwrap_or_else(|| s.to_string())
            )
        }
    };
    match e {
        Event::RunStarted(rs) => {
            let title = if rs.runbook_title.is_empty() {
                &rs.runbook_name
            } else {
                &rs.runbook_title
            };
            let name = &rs.runbook_name;
            let mut s = if !name.is_empty() && name != title {
                format!("run of {title} ({name})")
            } else {
                format!("run of {title}")
            };
            if !rs.cluster.is_empty() {
                s.push_str(&format!(" on cluster {}", rs.cluster));
            }
            let inv = &rs.inventory;
            s.push_str(&format!(
                " ({}, {}) started by {}",
                counted(inv.nodes.len(), "node", "nodes"),
                counted(inv.load_balancers.len(), "load balancer", "load balancers"),
                who(&rs.who)
            ));
            if !rs.run_id.is_empty() {
                s.push_str(&format!(", run {}", rs.run_id));
            }
            if !rs.params.is_empty() {
                let params: Vec<String> =
                    rs.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("; params {}", params.join(", ")));
            }
            s
        }
        Event::StepStarted { step: s } => format!("step {} started", step(s)),
        Event::StepCompleted { step: s } => format!("step {} completed", step(s)),
        Event::Intent(i) => {
            let mut s = format!("#{}", i.id);
            if !i.action.is_empty() {
                s.push_str(&format!(" {}", i.action));
            }
            if !i.detail.is_empty() {
                s.push_str(&format!(" — {}", i.detail));
            }
            s
        }
        Event::Outcome(o) => {
            let mut s = format!(
                "#{} {} ({}): {}",
                o.id,
                ok_word(o.ok),
                duration(o.duration_ms),
                o.summary
            );
            match &o.failure {
                Some(Failure::Hint { next }) if !next.is_empty() => {
                    s.push_str(&format!("; next: {next}"));
                }
                Some(Failure::HostKeyUnknown {
                    host,
                    port,
                    fingerprint,
                    ..
                }) if !fingerprint.is_empty() => {
                    s.push_str(&format!("; unknown host key {host}:{port} {fingerprint}"));
                }
                _ => {}
            }
            s.trim_end_matches([':', ' ']).to_string()
        }
        Event::GatePassed { gate, detail, .. } => {
            with_detail(&format!("gate {gate} passed"), detail)
        }
        Event::GateFailed {
            gate, reason, next, ..
        } => with_next(&with_detail(&format!("gate {gate} FAILED"), reason), next),
        Event::HardStopRaised(h) => {
            let mut s = with_detail(&format!("HARD STOP {}", h.id), &h.title);
            if let Some(n) = h.in_doubt {
                s.push_str(&format!(" (decides in-doubt action #{n})"));
            }
            s
        }
        Event::HardStopConfirmed { id, who: w, .. } => format!(
            "hard stop {id} confirmed by {} {}",
            who(w),
            match &cx.signer {
                Some(fp) => format!("(signed {fp})"),
                None => "(unsigned)".to_string(),
            }
        ),
        Event::HardStopDeclined { id, who: w, .. } => {
            format!("hard stop {id} declined by {}", who(w))
        }
        Event::PauseRequested { who: w, cause } => match cause {
            PauseCause::TerminalHangup => {
                format!("pause requested: the terminal of {} hung up", who(w))
            }
            PauseCause::Operator => format!("pause requested by {}", who(w)),
        },
        Event::RunResumed {
            who: w,
            drift,
            in_doubt,
            ..
        } => {
            let mut s = format!("run resumed by {}", who(w));
            if drift.is_empty() {
                s.push_str("; no drift");
            } else {
                s.push_str(&format!(
                    "; changed since the journal: {}",
                    drift.join("; ")
                ));
            }
            if !in_doubt.is_empty() {
                let ids: Vec<String> = in_doubt.iter().map(|i| format!("#{i}")).collect();
                s.push_str(&format!("; in doubt: {}", ids.join(", ")));
            }
            s
        }
        Event::InDoubtResolved { id, choice, who: w } => {
            format!("in-doubt action #{id}: {choice}, chosen by {}", who(w))
        }
        Event::RunPaused { reason } => with_detail("run paused", reason),
        Event::RunHalted { reason, next, .. } => {
            with_next(&with_detail("run HALTED", reason), next)
        }
        Event::RunCompleted { summary } => with_detail("run completed", summary),
        Event::Note { message, .. } => message.clone(),
        Event::PoolBreach(b) => b.line(),
        Event::ClientImpact(c) => client_impact(c),
    }
}

/// A client-impact summary in one short line: `client impact (flip-node2): 412 requests,
/// 17 failed, 2 crossed, 3 old refused; mixed window 15`.
pub fn client_impact(c: &ClientImpact) -> String {
    if let Some(why) = &c.off {
        return format!("client impact not measured: meter {why}");
    }
    let t = &c.total;
    let mut s = format!(
        "client impact ({}): {} requests, {} failed",
        c.phase,
        t.requests(),
        t.fresh_failures()
    );
    if t.crossed() > 0 {
        s.push_str(&format!(", {} crossed", t.crossed()));
    }
    if t.validate_old.failures() > 0 {
        s.push_str(&format!(", {} old refused", t.validate_old.failures()));
    }
    if let Some(m) = c.mixed_failures {
        s.push_str(&format!("; mixed window {m}"));
    }
    if c.reason == ImpactReason::Final {
        s.push_str("; meter stopped");
    }
    s
}

/// The change report's detail for an event in its gates table or its final status: a gate's
/// detail or reason (and what to do next), a halt's reason and next step, a pause's reason,
/// a completion's summary, who resumed. Empty for other events.
pub fn report_detail(e: &Event) -> String {
    let reason_next = |reason: &str, next: &str| {
        if next.is_empty() {
            reason.to_string()
        } else {
            format!("{reason} — next: {next}")
        }
    };
    match e {
        Event::GatePassed { detail, .. } => detail.clone(),
        Event::GateFailed { reason, next, .. } | Event::RunHalted { reason, next, .. } => {
            reason_next(reason, next)
        }
        Event::RunCompleted { summary } => summary.clone(),
        Event::RunPaused { reason } => reason.clone(),
        Event::RunResumed { who: w, .. } => format!("resumed by {}", who(w)),
        _ => String::new(),
    }
}

/// The change report's result for an action: `**ok** summary (850 ms)`.
pub fn report_result(o: &Outcome) -> String {
    let mut s = format!("**{}**", ok_word(o.ok));
    if !o.summary.is_empty() {
        s.push_str(&format!(" {}", o.summary));
    }
    format!("{s} ({})", duration(o.duration_ms))
}

/// The change report's result for an action whose outcome was lost and which the operator
/// resolved by hand.
pub fn report_resolved(e: &Event) -> Option<String> {
    match e {
        Event::InDoubtResolved { choice, who: w, .. } => {
            Some(format!("in doubt; resolved: {choice} by {}", who(w)))
        }
        _ => None,
    }
}

/// The change report's decision on a hard stop, before its time: `**Confirmed** by alice@b`.
pub fn report_decision(e: &Event) -> Option<String> {
    match e {
        Event::HardStopConfirmed { who: w, .. } => Some(format!("**Confirmed** by {}", who(w))),
        Event::HardStopDeclined { who: w, .. } => Some(format!("**Declined** by {}", who(w))),
        _ => None,
    }
}

/// `ok` or `FAILED`, for an outcome.
pub fn ok_word(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAILED" }
}

/// A duration for people: `850 ms`, `12.3 s`.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// `1 node`, `3 nodes`.
fn counted(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `head: detail`, or `head` alone.
pub fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// `text; next: …`, or `text` alone.
pub fn with_next(text: &str, next: &str) -> String {
    if next.is_empty() {
        text.to_string()
    } else {
        format!("{text}; next: {next}")
    }
}

/// Fold a paragraph onto one line for line-per-event output (control characters made safe).
fn one_line(s: &str) -> String {
    for_terminal(&s.split_whitespace().collect::<Vec<_>>().join(" ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::action::{ActionSpec, misc::Misc};
    use crate::engine::who::Who;

    fn intent() -> Intent {
        Intent {
            id: 4,
            op: 2,
            step: "drain".into(),
            node: Some("ks1".into()),
            action: "wait".into(),
            detail: "wait 5 s".into(),
            idempotent: true,
            spec: ActionSpec::Misc(Misc::Wait { secs: 5 }),
            pool_read_ms: Some(120),
        }
    }

    fn outcome(node: Option<&str>) -> Event {
        Event::Outcome(Outcome {
            id: 4,
            op: 2,
            node: node.map(str::to_string),
            ok: false,
            summary: "exited 1\nline two".into(),
            duration_ms: 1500,
            observed: Default::default(),
            failure: None,
        })
    }

    #[test]
    fn the_log_takes_what_the_event_lacks_from_the_context() {
        let i = intent();
        let cx = Context {
            intent: Some(&i),
            ..Context::default()
        };
        // The outcome's own node, even when the intent names one (a fleet-wide probe).
        let lines = log(&outcome(None), &cx);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].node.as_deref(), lines[0].action.as_str()),
            (None, "wait")
        );
        assert_eq!(
            (lines[0].level, lines[0].duration_ms),
            (LogLevel::Fail, Some(1500))
        );
        // Without the intent (lost in a crash), the action column is empty.
        assert_eq!(
            log(&outcome(Some("ks1")), &Context::default())[0].action,
            ""
        );
        let resolved = Event::InDoubtResolved {
            id: 4,
            choice: "redo".into(),
            who: Who::named("alice", "b"),
        };
        let line = &log(&resolved, &cx)[0];
        assert_eq!(line.node.as_deref(), Some("ks1"));
        assert_eq!(line.text, "action 4: redo (alice@b)");
        let confirmed = Event::HardStopConfirmed {
            id: "flip".into(),
            op: 3,
            node: None,
            who: Who::named("alice", "b"),
            state_sha256: String::new(),
        };
        let cx = Context {
            stop_node: Some("ks2".into()),
            ..Context::default()
        };
        assert_eq!(log(&confirmed, &cx)[0].node.as_deref(), Some("ks2"));
    }

    #[test]
    fn a_resume_logs_a_line_per_drift_and_a_step_its_title() {
        let resumed = Event::RunResumed {
            who: Who::named("alice", "b"),
            drift: vec!["ks1 flipped".into(), "ks2 down".into()],
            in_doubt: vec![],
            observed: Default::default(),
        };
        let lines = log(&resumed, &Context::default());
        let said: Vec<(&str, &str, LogLevel)> = lines
            .iter()
            .map(|l| (l.action.as_str(), l.text.as_str(), l.level))
            .collect();
        assert_eq!(
            said,
            [
                ("run", "resumed by alice@b", LogLevel::Info),
                ("drift", "ks1 flipped", LogLevel::Warn),
                ("drift", "ks2 down", LogLevel::Warn),
            ]
        );
        let title = |s: &str| (s == "drain").then(|| "Drain ks1".to_string());
        let cx = Context {
            step_title: Some(&title),
            ..Context::default()
        };
        let step = |s: &str| Event::StepStarted { step: s.into() };
        assert_eq!(log(&step("drain"), &cx)[0].text, "▶ Drain ks1");
        // The headless line falls back to the id; the log to nothing.
        assert_eq!(log(&step("other"), &cx)[0].text, "▶ ");
        let g = crate::glyphs::table(true);
        assert_eq!(
            headless(&step("other"), &cx, g),
            format!("{} other", g.play)
        );
        assert!(
            log(
                &Event::StepCompleted {
                    step: "drain".into()
                },
                &cx
            )
            .is_empty()
        );
    }

    #[test]
    fn each_surface_says_a_halt_and_an_outcome_in_its_own_words() {
        let halted = |next: &str| Event::RunHalted {
            op: 2,
            node: None,
            reason: "restart failed".into(),
            next: next.into(),
        };
        let cx = Context::default();
        let g = crate::glyphs::table(false);
        assert_eq!(headless(&halted(" "), &cx, g), "HALTED: restart failed");
        assert_eq!(
            headless(&halted("look"), &cx, g),
            "HALTED: restart failed\nnext: look"
        );
        assert_eq!(
            log(&halted("look"), &cx)[0].text,
            "HALTED: restart failed — look"
        );
        assert_eq!(
            journal(&halted("look"), &cx),
            "run HALTED: restart failed; next: look"
        );
        assert_eq!(
            report_detail(&halted("look")),
            "restart failed — next: look"
        );
        // A multi-line summary: the duration on the first line of a headless line.
        assert_eq!(
            headless(&outcome(None), &cx, g),
            "FAILED exited 1 (1500 ms)\nline two"
        );
        assert_eq!(
            journal(&outcome(None), &cx),
            "#4 FAILED (1.5 s): exited 1\nline two"
        );
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(12_345), "12.3 s");
    }
}
