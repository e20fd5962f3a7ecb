//! Reading a journal file as JSON lines, the way an observer that does not take cutover's word
//! for anything would.

use std::path::Path;

use serde_json::Value;

/// The records of the journal at `journal` (none if it does not exist yet); lines that are not
/// JSON (a record being written) are skipped.
pub fn records(journal: &Path) -> Vec<Value> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The `kind` of each record, in order.
pub fn kinds(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r["kind"].as_str().map(str::to_string))
        .collect()
}

/// The id of `node`'s `service.restart` intent, if journaled.
pub fn restart_id(recs: &[Value], node: &str) -> Option<Value> {
    recs.iter().find_map(|r| {
        (r["kind"] == "intent" && r["node"] == node && r["data"]["action"] == "service.restart")
            .then(|| r["data"]["id"].clone())
    })
}

/// An outcome for the intent `id` is journaled.
pub fn has_outcome(recs: &[Value], id: &Value) -> bool {
    recs.iter()
        .any(|r| r["kind"] == "outcome" && r["data"]["id"] == *id)
}

/// The records of the journal at `journal`, which must exist (panics naming it otherwise).
pub fn existing_records(journal: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(journal)
        .unwrap_or_else(|e| panic!("cannot read the journal {}: {e}", journal.display()));
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
