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

/// Whether records of this kind are folded: not those the runtime writes beside the engine's
/// events (a broken fleet lock).
pub fn is_event_kind(kind: &str) -> bool {
    !fleet_lock::JOURNAL_KINDS.contains(&kind)
}

fn is_event(r: &journal::Record) -> bool {
    is_event_kind(&r.kind)
}
