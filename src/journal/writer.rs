//! The one writer of a journal: exclusive lock, append, fsync.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::reader::{Scan, scan};
use super::record::{Entry, GENESIS_PREV, Record, seal};
use super::{JournalError, ReadOutcome};

/// The sidecar lock file of a journal: `<journal>.lock`.
pub fn lock_path(journal: &Path) -> PathBuf {
    let mut name = OsString::from(journal.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// An open journal held for writing, with an exclusive lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Length of the file after the last good append; a failed write is cut back to it.
    len: u64,
    last_seq: u64,
    last_hash: String,
    /// Set when a write or fsync failed: what is on disk is then uncertain.
    poisoned: Option<String>,
    // Declared last so it is dropped after `file`: the lock outlives the writes it protects.
    _lock: WriterLock,
}

impl Journal {
    /// Creates a new, empty journal at `path` (mode 0600) and takes its lock. Fails with
    /// [`JournalError::Exists`] if anything is already at `path`: a journal is never overwritten.
    pub fn create(path: &Path) -> Result<Journal, JournalError> {
        // Lock before creating, so two concurrent creates end in one journal and one `Locked`.
        let lock = WriterLock::acquire(path)?;
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => JournalError::Exists {
                    path: path.to_path_buf(),
                },
                _ => JournalError::io(path, e),
            })?;
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
        let lock = WriterLock::acquire(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| JournalError::io(path, e))?;
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
        for entry in entries {
            seq += 1;
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

/// The exclusive `flock` on `<journal>.lock`. The file also says who holds it, so the second
/// writer's error can name the first. Released on drop (and by the kernel if the process dies,
/// so a crash never leaves a stale lock behind).
#[derive(Debug)]
struct WriterLock {
    file: File,
}

impl WriterLock {
    fn acquire(journal: &Path) -> Result<WriterLock, JournalError> {
        let path = lock_path(journal);
        // No truncate on open: the current holder's text must survive until we own the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| JournalError::io(&path, e))?;
        let acquired = fs4::fs_std::FileExt::try_lock_exclusive(&file)
            .map_err(|e| JournalError::io(&path, e))?;
        if !acquired {
            let mut holder = String::new();
            // Best effort: the holder may be between taking the lock and writing its name.
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(JournalError::Locked {
                path: journal.to_path_buf(),
                holder: if holder.is_empty() {
                    "an unknown process (the lock file names no holder yet)".to_string()
                } else {
                    holder.to_string()
                },
            });
        }
        let who = super::Who::current();
        let text = format!(
            "pid {} {} since {}\n",
            std::process::id(),
            who.actor_label(),
            super::record::format_time(&chrono::Utc::now()),
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(|e| JournalError::io(&path, e))?;
        Ok(WriterLock { file })
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Clear the holder's name before letting go, so nobody is later blamed for a lock they
        // no longer hold. The file itself stays: deleting a lock file races with the next
        // locker, who may already have it open.
        let _ = self.file.set_len(0);
        let _ = fs4::fs_std::FileExt::unlock(&self.file);
    }
}
