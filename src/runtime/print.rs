//! Headless output: one line per event (the narrator this becomes a call into lives elsewhere).

use crate::engine::{self, events::Event, state::State};
use crate::sanitize::for_terminal;
use chrono::{DateTime, Utc};
use std::io::Write;

/// One line per event for headless runs; a multi-line text (a failed restart's evidence, a halt's
/// reason and what to do next) as an indented block under it. In ASCII when the locale does not
/// say UTF-8, or with `--ascii` ([`crate::glyphs`]).
pub fn print_event(time: DateTime<Utc>, e: &Event, state: &State) {
    let text = event_text(time, e, state, crate::glyphs::ascii());
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
}

/// What [`print_event`] prints, newline-terminated: `HH:MM:SS  KIND  NODE  TEXT`, then each
/// further line of the text under the text's first character, its own indentation kept. Every
/// line goes through the sanitiser on its own (nothing from outside can move the cursor or break
/// a line), then, when `ascii`, through [`crate::glyphs::to_ascii`].
pub fn event_text(time: DateTime<Utc>, e: &Event, state: &State, ascii: bool) -> String {
    let g = crate::glyphs::table(ascii);
    let t = time.format("%H:%M:%S");
    let node = e.node().unwrap_or("");
    let text = match e {
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
            state
                .steps
                .iter()
                .find(|s| &s.id == step)
                .map(|s| s.title.as_str())
                .unwrap_or(step)
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
        Event::HardStopRaised(h) => {
            format!(
                "HARD STOP `{}`: {} {} {}",
                h.id,
                one_line(&h.title),
                g.dash,
                one_line(&h.hazard)
            )
        }
        Event::HardStopConfirmed { id, who, .. } => format!(
            "hard stop `{id}` confirmed by {}",
            engine::state::who_label(who)
        ),
        Event::HardStopDeclined { id, who, .. } => format!(
            "hard stop `{id}` declined by {}",
            engine::state::who_label(who)
        ),
        Event::PauseRequested { cause, .. } => match cause {
            engine::events::PauseCause::Operator => "pause requested".into(),
            engine::events::PauseCause::TerminalHangup => {
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
    };
    let lead = format!("{t}  {:<19} {:<8} ", e.kind(), for_terminal(node));
    let indent = " ".repeat(crate::glyphs::width(&lead));
    // Everything here may come from outside (runbook titles, remote output, HTTP bodies, a
    // journal): each line is made safe on its own, so no control character reaches the
    // terminal and only the text's own line breaks start a line, always under the first.
    let mut out = String::new();
    for (i, line) in text
        .trim_end()
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let line = format!(
            "{}{}",
            if i == 0 { &lead } else { &indent },
            for_terminal(line)
        );
        out.push_str(&crate::glyphs::for_output(&line, ascii));
        out.push('\n');
    }
    if out.is_empty() {
        out = format!("{}\n", crate::glyphs::for_output(lead.trim_end(), ascii));
    }
    out
}

/// Fold a paragraph onto one line for line-per-event output (control characters made safe).
fn one_line(s: &str) -> String {
    for_terminal(&s.split_whitespace().collect::<Vec<_>>().join(" ")).into_owned()
}
