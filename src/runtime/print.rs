//! Headless output: one line per event, its words from the narrator ([`crate::engine::narrate`]).

use crate::engine::{events::Event, narrate, state::State};
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
    let title = |step: &str| {
        state
            .steps
            .iter()
            .find(|s| s.id == step)
            .map(|s| s.title.clone())
    };
    let cx = narrate::Context {
        step_title: Some(&title),
        ..narrate::Context::default()
    };
    let mut text = narrate::headless(e, &cx, g);
    let (same_line, block) = cache_text(e, state);
    if let Some(c) = same_line {
        text.push_str(&format!(" {} {c}", g.dash));
    }
    for l in block {
        text.push('\n');
        text.push_str(&l);
    }
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

/// What a headless run adds about the token cache under an event: on the line of the first
/// step's (preflight's) completion, the fleet's cache; under a hard stop where clients meet both
/// providers (`State::cache_paragraph_for`), what it means, as a block. Nothing when no cache
/// was read.
fn cache_text(e: &Event, state: &State) -> (Option<String>, Vec<String>) {
    match e {
        Event::StepCompleted { step } if state.steps.first().is_some_and(|s| &s.id == step) => {
            let c = state.token_cache();
            if c.verdict == crate::engine::facts::CacheVerdict::Unknown {
                (None, vec![])
            } else {
                (Some(c.line()), vec![])
            }
        }
        Event::HardStopRaised(h) => (None, state.cache_paragraph_for(&h.id)),
        _ => (None, vec![]),
    }
}
