//! The one fold of journal records into a state, for live runs, resumes and replays.

use super::fleet_lock;
use crate::engine::events::Event;
use crate::engine::state::State;
use crate::journal;
use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};

/// Fold journal records into a state (the same fold live runs and replays use).
pub fn fold(records: &[journal::Record]) -> Result<State> {
    let mut state = State::default();
    for r in records.iter().filter(|r| is_event(r)) {
        let e = crate::engine::recorded::read_event(&r.kind, &r.data)
            .map_err(|e| anyhow!("journal seq {}: {e}", r.seq))?;
        state.apply(&e, r.time);
    }
    Ok(state)
}

/// (time, event) pairs for replay.
pub fn events_of(records: &[journal::Record]) -> Result<Vec<(DateTime<Utc>, Event)>> {
    records
        .iter()
        .filter(|r| is_event(r))
        .map(event_of)
        .collect()
}

/// One record's event (of a record whose kind [`is_event_kind`]), as the fold reads it.
pub fn event_of(r: &journal::Record) -> Result<(DateTime<Utc>, Event)> {
    crate::engine::recorded::read_event(&r.kind, &r.data)
        .map(|e| (r.time, e))
        .map_err(|e| anyhow!("journal seq {}: {e}", r.seq))
}

/// [`event_of`] straight from a stored line of a record of `kind` at `time` (a chain already
/// checked), without building its `data` as a value: the event is parsed from the line's
/// `data` bytes. `None` when the line is not in the writer's canonical layout, or for a
/// `run_started` (whose older shape is upcast from its value): then [`event_of`] reads it.
pub fn event_of_line(
    kind: &str,
    time: DateTime<Utc>,
    line: &[u8],
) -> Option<(DateTime<Utc>, Event)> {
    // `…,"data":<data>,"prev":"<64 hex>","hash":"<64 hex>"}`: a raw quote is never inside a
    // string, so the first `,"data":` is the key, and what follows `data` has a fixed length.
    const KEY: &[u8] = b",\"data\":";
    const TAIL: usize = r#","prev":""#.len() + 64 + r#"","hash":""#.len() + 64 + r#""}"#.len();
    if kind == "run_started" || line.len() < TAIL {
        return None;
    }
    let start = memchr::memmem::find(line, KEY)? + KEY.len();
    let end = line.len() - TAIL;
    if start > end || !line[end..].starts_with(b",\"prev\":\"") {
        return None;
    }
    let mut json = Vec::with_capacity(end - start + kind.len() + 20);
    json.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut json, kind).ok()?;
    json.extend_from_slice(b",\"data\":");
    json.extend_from_slice(&line[start..end]);
    json.push(b'}');
    serde_json::from_slice(&json).ok().map(|e| (time, e))
}

/// Whether records of this kind are folded: not those the runtime writes beside the engine's
/// events (a broken fleet lock).
pub fn is_event_kind(kind: &str) -> bool {
    !fleet_lock::JOURNAL_KINDS.contains(&kind)
}

fn is_event(r: &journal::Record) -> bool {
    is_event_kind(&r.kind)
}
