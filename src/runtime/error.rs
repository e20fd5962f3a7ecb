//! The runtime's errors that a caller must tell apart: a command the engine refused (a stale key
//! press, ignorable) and a decision that could not be journaled (the run stops, loudly).

use crate::engine::Refused;
use crate::journal::JournalError;
use std::path::PathBuf;

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The engine refused it (a hard stop already answered, a pause while paused): nothing was
    /// journaled and nothing ran. Not an error of the run.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The engine's decision could not be appended to the journal: none of its effects ran, and
    /// the run must stop.
    #[error(transparent)]
    Journal(#[from] JournalFailed),
}

/// A decision that could not be appended to the journal (disk full, a read-only or vanished file
/// system, a failed fsync). Nothing of that decision ran; the journal handle refuses further
/// appends, so the session ends here with this error (exit 1).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the journal {}: {}\n  the run stopped here: nothing after the journal's last record ran (an action already running may finish on its own; the resume asks about it)\n  next: fix the cause (free space, a read-only or unmounted file system under {}), check the journal with `cutover journal verify {}`, then `cutover resume {}`",
    path.display(),
    os_error(error),
    dir.display(),
    path.display(),
    path.display()
)]
pub struct JournalFailed {
    pub path: PathBuf,
    pub dir: PathBuf,
    /// Not a `#[source]`: the message already says it, and `{:#}` would say it twice.
    pub error: JournalError,
}

impl JournalFailed {
    pub fn new(path: PathBuf, error: JournalError) -> JournalFailed {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        JournalFailed { path, dir, error }
    }
}

/// The OS error under a journal error (`No space left on device (os error 28)`), else its text.
fn os_error(e: &JournalError) -> String {
    match e {
        // Only part of the record fitted: what is left of the disk (or a quota) ran out.
        JournalError::Io { source, .. } if source.kind() == std::io::ErrorKind::WriteZero => {
            format!("{source} (no room left: a full file system or quota?)")
        }
        JournalError::Io { source, .. } => source.to_string(),
        JournalError::Poisoned { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_names_the_journal_the_os_error_and_what_to_do() {
        let e = JournalFailed::new(
            PathBuf::from("/var/tmp/run.jsonl"),
            JournalError::Io {
                path: PathBuf::from("/var/tmp/run.jsonl"),
                source: std::io::Error::from_raw_os_error(28),
            },
        );
        let text = e.to_string();
        assert!(
            text.starts_with("cannot write the journal /var/tmp/run.jsonl: No space left on device (os error 28)\n"),
            "{text}"
        );
        assert!(text.contains("under /var/tmp"), "{text}");
        assert!(text.contains("cutover resume /var/tmp/run.jsonl"), "{text}");
        // A journal named without a directory is in the current one.
        let e = JournalFailed::new(
            PathBuf::from("run.jsonl"),
            JournalError::Poisoned {
                path: PathBuf::from("run.jsonl"),
                reason: "Input/output error (os error 5)".into(),
            },
        );
        assert!(
            e.to_string()
                .contains(": Input/output error (os error 5)\n")
        );
        assert!(e.to_string().contains("file system under ."));
        // Part of a record fitted: said as what it most likely is.
        let e = JournalFailed::new(
            PathBuf::from("run.jsonl"),
            JournalError::Io {
                path: PathBuf::from("run.jsonl"),
                source: std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "short write: 1 of 2 bytes",
                ),
            },
        );
        assert!(
            e.to_string().contains(
                ": short write: 1 of 2 bytes (no room left: a full file system or quota?)\n"
            ),
            "{e}"
        );
    }
}
