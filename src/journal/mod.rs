//! The append-only, hash-chained JSON Lines journal: the source of truth of a run.
//!
//! Every run is a sequence of events appended here; the engine's state is a fold of them, so a
//! live run, a resumed run and a replay all see the same thing. This module knows nothing of the
//! engine's event types: an event is a `kind` string plus a JSON `data` value.
//!
//! # Format
//! One JSON object per line, keys in this order:
//!
//! ```text
//! {"seq":1,"time":"2026-11-29T02:31:07.123456Z","run":"r1","actor":"alice@bastion1","kind":"intent",
//!  "step":"rolling","node":"node2","data":{...},"prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! `hash` is the sha256 of the exact bytes of the line without its `,"hash":"…"` member, and
//! `prev` is the previous record's `hash` (64 zeros for the first record). Verification hashes the
//! *stored bytes*, not a re-serialization of the parsed values, so any changed byte is caught and a
//! float that does not survive a parse round trip cannot cause a false alarm. The hash covers
//! `data`, so a verifying pass checks every other key strictly and leaves `data` unparsed; a line
//! re-sealed around data that is not JSON is refused only by the readers that parse it.
//!
//! The chain has no secret in it: it detects accidents, partial edits, reordering and cut lines,
//! not an adversary who rewrites the whole file and recomputes every hash. Hard-stop
//! confirmations signed with the operator's SSH key ([`sign`]) are what such a forgery cannot redo.
//!
//! # Durability
//! The writer ([`Journal`]) holds an exclusive advisory `flock` on the journal file itself (so
//! every path, symlink or hard link naming it meets the same lock; a symlinked path is refused
//! with the real one), leaves a holder note at `<real path>.lock` while it holds it, writes
//! each append as a single `write` on an `O_APPEND` descriptor and `fsync`s (`sync_data`) before
//! returning, so an `intent` is on disk before its effect runs. A crash can leave at most one torn
//! final line, which readers tolerate and [`Journal::open_for_append`] trims away.

pub mod actor;
mod index;
mod reader;
mod record;
pub mod render;
pub mod sign;
pub mod trust;
mod writer;

use std::path::PathBuf;

pub use actor::Who;
pub use index::Index;
pub use reader::{
    Ending, Follower, Prefix, read, read_prefix, read_prefix_each, verify, verify_keeping,
};
pub use record::{Entry, GENESIS_PREV, Record};
pub use render::{Format, render};
pub use writer::{Journal, lock_path};

/// What [`read`] and [`Journal::open_for_append`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOutcome {
    /// Every record of the verified chain, in order.
    pub records: Vec<Record>,
    /// A torn final line (crash mid-write), if there was one. It is not part of `records`.
    pub torn_tail: Option<TornTail>,
}

/// A final line that was cut short by a crash: no trailing newline, or not valid JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// 1-based line number of the torn line.
    pub line_no: usize,
    /// How many bytes it occupies (including its newline, if it had one).
    pub bytes: usize,
}

/// The result of [`verify`]. Built so that verifying never panics and never returns early
/// without saying why.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct VerifyReport {
    /// How many records verified (all of them, or those before `first_bad`).
    pub records: usize,
    /// The first line that breaks the chain, if any.
    pub first_bad: Option<BadRecord>,
    /// A torn final line, which is reported but is not a failure.
    pub torn_tail: Option<TornTail>,
    /// The journal could not be read at all.
    pub io_error: Option<String>,
}

impl VerifyReport {
    /// True when the whole journal was readable and the chain is intact (a torn tail is allowed:
    /// it is what a crash mid-write leaves, and it never held a committed record).
    pub fn ok(&self) -> bool {
        self.first_bad.is_none() && self.io_error.is_none()
    }
}

/// The first line that breaks the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// The seq this line should have had, i.e. its position in the chain (1-based).
    pub seq: u64,
    /// 1-based line number in the file.
    pub line_no: usize,
    /// What is wrong with it, for a human.
    pub reason: String,
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An I/O error on `path`.
    #[error("journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another writer holds the journal. `holder` is the text that writer left in the lock file
    /// (pid, user@host, start time).
    #[error("journal {} is locked by another writer: {holder}", path.display())]
    Locked { path: PathBuf, holder: String },
    /// The journal was named through a symbolic link: one journal, one name.
    #[error("journal {} is a symbolic link: open the journal by its real path: {}", path.display(), real.display())]
    Symlink { path: PathBuf, real: PathBuf },
    /// The chain is broken at `seq` (the position the bad line should have had).
    #[error("journal {} is damaged or was edited at seq {seq} (line {line_no}): {reason}", path.display())]
    Tampered {
        path: PathBuf,
        seq: u64,
        line_no: usize,
        reason: String,
    },
    /// [`Journal::create`] found a file already there; a journal is never overwritten.
    #[error("journal {} already exists", path.display())]
    Exists { path: PathBuf },
    /// A record could not be encoded as JSON (in practice unreachable for `serde_json::Value`).
    #[error("cannot encode a journal record: {source}")]
    Encode {
        #[source]
        source: serde_json::Error,
    },
    /// An earlier write or fsync failed, so what is on disk is uncertain; this handle refuses
    /// further appends. Reopen with [`Journal::open_for_append`], which verifies and trims.
    #[error("journal {} refuses appends after an earlier failure: {reason}", path.display())]
    Poisoned { path: PathBuf, reason: String },
}

impl JournalError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        JournalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
