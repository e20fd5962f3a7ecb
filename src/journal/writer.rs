//! The one writer of a journal: exclusive lock on the file itself, append, fsync.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::reader::{Scan, scan};
use super::record::{Entry, GENESIS_PREV, Record, seal};
use super::{JournalError, ReadOutcome};

/// The holder note of a journal: `<real path of the journal>.lock`, whatever path, symlink or
/// `..` named the journal. It only says who holds the journal (pid, user@host, since); the lock
/// itself is an exclusive `flock` on the journal file, so every name of the same file (a
/// symlink, a hard link, a relative path) meets the same lock. The note exists only while a
/// writer holds the journal.
pub fn lock_path(journal: &Path) -> PathBuf {
    let real = real_path(journal);
    let mut name = real.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The journal's real path: the file canonicalized, or (not yet created) its directory
/// canonicalized joined with its name; the path as given if neither resolves.
fn real_path(journal: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(journal) {
        return p;
    }
    let dir = match journal.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), journal.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => journal.to_path_buf(),
    }
}

/// A journal named through a symbolic link is refused: the operator is told the real path.
fn refuse_symlink(path: &Path) -> Result<(), JournalError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(JournalError::Symlink {
            path: path.to_path_buf(),
            real: std::fs::canonicalize(path)
                .unwrap_or_else(|_| std::fs::read_link(path).unwrap_or_default()),
        }),
        _ => Ok(()),
    }
}

/// An open journal held for writing, with an exclusive lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    // Declared before `file` so it is dropped first: the holder note goes before the flock on
    // `file` is let go, so the next writer never finds (and reports) our note as stale.
    _lock: WriterLock,
    file: File,
    /// Length of the file after the last good append; a failed write is cut back to it.
    len: u64,
    last_seq: u64,
    last_hash: String,
    /// Set when a write or fsync failed: what is on disk is then uncertain.
    poisoned: Option<String>,
}

impl Journal {
    /// Creates a new, empty journal at `path` (mode 0600) and takes its lock. Fails with
    /// [`JournalError::Exists`] if anything is already at `path`: a journal is never overwritten.
    pub fn create(path: &Path) -> Result<Journal, JournalError> {
        refuse_symlink(path)?;
        let file = match OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                refuse_symlink(path)?;
                // Someone else's journal: say it is held if a writer holds it (a concurrent
                // create that won), else that it exists.
                if let Ok(f) = File::open(path)
                    && !matches!(fs4::fs_std::FileExt::try_lock_exclusive(&f), Ok(true))
                {
                    return Err(JournalError::Locked {
                        path: path.to_path_buf(),
                        holder: holder_of(path, &f),
                    });
                }
                return Err(JournalError::Exists {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(JournalError::io(path, e)),
        };
        let lock = WriterLock::acquire(path, &file)?;
        // `mode` is filtered by the umask; set it explicitly so the journal is 0600 whatever
        // the umask (it holds who did what on which node).
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(|e| JournalError::io(path, e))?;
        // Make the new directory entry durable too, or a crash could lose the whole file.
        sync_parent_dir(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            len: 0,
            last_seq: 0,
            last_hash: GENESIS_PREV.to_string(),
            poisoned: None,
            _lock: lock,
        })
    }

    /// Opens an existing journal to continue it (resume): takes the lock, reads and verifies the
    /// whole chain, trims a torn final line away (reported in the [`ReadOutcome`]) and positions
    /// the chain after the last good record. A chain broken anywhere else is refused with
    /// [`JournalError::Tampered`]: resuming on top of it would bless the damage.
    pub fn open_for_append(path: &Path) -> Result<(Journal, ReadOutcome), JournalError> {
        refuse_symlink(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| match refuse_symlink(path) {
                Err(symlink) => symlink,
                Ok(()) => JournalError::io(path, e),
            })?;
        // Nothing is read or trimmed before the lock is ours.
        let lock = WriterLock::acquire(path, &file)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| JournalError::io(path, e))?;
        let Scan {
            records,
            first_bad,
            torn_tail,
            good_len,
        } = scan(&bytes);
        if let Some(bad) = first_bad {
            return Err(JournalError::Tampered {
                path: path.to_path_buf(),
                seq: bad.seq,
                line_no: bad.line_no,
                reason: bad.reason,
            });
        }
        if torn_tail.is_some() {
            // The torn line never held a committed record (its append never returned), so
            // dropping it loses nothing; leaving it would put garbage in the middle of the chain.
            file.set_len(good_len)
                .and_then(|()| file.sync_data())
                .map_err(|e| JournalError::io(path, e))?;
        }
        let (last_seq, last_hash) = records
            .last()
            .map(|r| (r.seq, r.hash.clone()))
            .unwrap_or((0, GENESIS_PREV.to_string()));
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            len: good_len,
            last_seq,
            last_hash,
            poisoned: None,
            _lock: lock,
        };
        Ok((journal, ReadOutcome { records, torn_tail }))
    }

    /// Appends one record and `fsync`s it before returning.
    pub fn append(&mut self, entry: Entry) -> Result<Record, JournalError> {
        let mut records = self.append_batch(vec![entry])?;
        // append_batch returns one record per entry.
        Ok(records.remove(0))
    }

    /// Appends several records with one write and one `fsync`. Either all of them are appended
    /// or (on error) none are, as far as this handle can tell; after an error the handle is
    /// poisoned and refuses further appends.
    pub fn append_batch(&mut self, entries: Vec<Entry>) -> Result<Vec<Record>, JournalError> {
        self.append_batch_with(entries, |_, _, _| {})
    }

    /// [`Journal::append_batch`], calling `before_seal(entry, seq, prev)` on each entry once its
    /// place in the chain is known and before it is hashed (the runtime signs confirmations
    /// there: what is signed names the journal hash before the record).
    pub fn append_batch_with(
        &mut self,
        entries: Vec<Entry>,
        mut before_seal: impl FnMut(&mut Entry, u64, &str),
    ) -> Result<Vec<Record>, JournalError> {
        if let Some(reason) = &self.poisoned {
            return Err(JournalError::Poisoned {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = Vec::new();
        let mut records = Vec::with_capacity(entries.len());
        let (mut seq, mut prev) = (self.last_seq, self.last_hash.clone());
        for mut entry in entries {
            seq += 1;
            before_seal(&mut entry, seq, &prev);
            let (record, line) = seal(entry, seq, &prev)?;
            prev.clone_from(&record.hash);
            buf.extend_from_slice(&line);
            records.push(record);
        }
        self.write_synced(&buf)?;
        self.len += buf.len() as u64;
        self.last_seq = seq;
        self.last_hash = prev;
        Ok(records)
    }

    /// One `write` (so a concurrent follower never sees two halves from two writes) and one
    /// `sync_data`. On failure, cut the file back to the last good length and poison the handle.
    fn write_synced(&mut self, buf: &[u8]) -> Result<(), JournalError> {
        let result = match self.file.write(buf) {
            Ok(n) if n == buf.len() => self.file.sync_data(),
            Ok(n) => Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {n} of {} bytes", buf.len()),
            )),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // After a failed fsync the kernel may have dropped the dirty pages and marked them
            // clean, so retrying on this handle could claim durability it does not have. Cut back
            // what we may have written (best effort) and refuse further appends.
            let rollback = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.seek(SeekFrom::End(0)).map(|_| ()));
            let mut reason = e.to_string();
            if let Err(r) = rollback {
                reason.push_str(&format!(
                    "; cutting the partial write back also failed: {r}"
                ));
            }
            self.poisoned = Some(reason);
            return Err(JournalError::io(&self.path, e));
        }
        Ok(())
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The seq of the last record (0 for an empty journal).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The hash of the last record (64 zeros for an empty journal).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// A holder note left by a writer that died without removing it (its lock went with it),
    /// found and replaced when this writer took the lock: what it said, for the operator.
    pub fn stale_lock(&self) -> Option<&str> {
        self._lock.stale.as_deref()
    }

    /// The journal file's identity, `dev:inode`: the same for every path, symlink or hard link
    /// that names it, different for a copy.
    pub fn identity(&self) -> String {
        self.file
            .metadata()
            .map(|m| format!("{}:{}", m.dev(), m.ino()))
            .unwrap_or_default()
    }

    /// The journal's real path (symlinks and `..` resolved).
    pub fn real_path(&self) -> PathBuf {
        real_path(&self.path)
    }
}

/// fsync the directory holding `path`, so a newly created file survives a crash.
fn sync_parent_dir(path: &Path) -> Result<(), JournalError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io(dir, e))
}

/// Who holds a journal that is locked: its holder note, or (the journal named through another
/// hard link, whose note has another name) the pid the kernel lists for the lock.
fn holder_of(path: &Path, file: &File) -> String {
    let note = std::fs::read_to_string(lock_path(path)).unwrap_or_default();
    let note = note.trim();
    if !note.is_empty() {
        return note.to_string();
    }
    match file.metadata().ok().and_then(|m| flock_holder(&m)) {
        Some(pid) => format!(
            "pid {pid} (named through another path or hard link; its note is beside that name)"
        ),
        None => "an unknown process (no holder note yet)".to_string(),
    }
}

/// The pid holding a `flock` on this file, from `/proc/locks` (Linux; `None` elsewhere).
fn flock_holder(m: &std::fs::Metadata) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let (maj, min) = (
        nix::sys::stat::major(m.dev()),
        nix::sys::stat::minor(m.dev()),
    );
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || f[1] != "FLOCK" {
            return None;
        }
        let id: Vec<&str> = f[5].split(':').collect();
        let ok = id.len() == 3
            && u64::from_str_radix(id[0], 16).ok() == Some(maj)
            && u64::from_str_radix(id[1], 16).ok() == Some(min)
            && id[2].parse::<u64>().ok() == Some(m.ino());
        if ok { f[4].parse().ok() } else { None }
    })
}

/// The exclusive `flock` on the journal file itself, and its holder note
/// ([`lock_path`]): so the second writer's error can name the first. The flock goes with the
/// journal's file handle (and with the process, if it dies); the note is removed on drop.
#[derive(Debug)]
struct WriterLock {
    note: PathBuf,
    /// What a dead writer's note said, if one was found when the lock was taken.
    stale: Option<String>,
}

impl WriterLock {
    fn acquire(journal: &Path, file: &File) -> Result<WriterLock, JournalError> {
        let acquired = fs4::fs_std::FileExt::try_lock_exclusive(file)
            .map_err(|e| JournalError::io(journal, e))?;
        if !acquired {
            return Err(JournalError::Locked {
                path: journal.to_path_buf(),
                holder: holder_of(journal, file),
            });
        }
        let note = lock_path(journal);
        // The lock is ours, so any note there is a dead writer's: its process ended without
        // removing it (the kernel dropped its lock). Say so rather than take it over silently.
        let stale = std::fs::read_to_string(&note).ok().map(|t| {
            let t = t.trim();
            format!(
                "a stale lock note {} was left by a writer that is gone ({}); its lock ended with its process, so this one now holds the journal",
                note.display(),
                if t.is_empty() { "it named no holder" } else { t }
            )
        });
        let who = super::Who::current();
        let text = format!(
            "pid {} {} since {}\n",
            std::process::id(),
            who.actor_label(),
            super::record::format_time(&chrono::Utc::now()),
        );
        let _ = std::fs::remove_file(&note);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&note)
            .and_then(|mut f| {
                f.set_permissions(Permissions::from_mode(0o600))?;
                f.write_all(text.as_bytes())
            })
            .map_err(|e| JournalError::io(&note, e))?;
        Ok(WriterLock { note, stale })
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Before the flock is let go (the journal's file handle is dropped after this), so
        // nobody is later blamed for a lock they no longer hold.
        let _ = std::fs::remove_file(&self.note);
    }
}
