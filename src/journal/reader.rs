//! Reading a journal without locking it: [`read`], [`verify`] and [`Follower`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{
    GENESIS_PREV, LineError, Record, check_chain_sealed, check_line, seal_checks, split_lines,
};
use super::{BadRecord, JournalError, ReadOutcome, TornTail, VerifyReport};

/// What a scan of a whole journal found.
pub(crate) struct Scan {
    pub records: Vec<Record>,
    pub first_bad: Option<BadRecord>,
    pub torn_tail: Option<TornTail>,
    /// Bytes up to and including the last good record's newline.
    pub good_len: u64,
}

/// Checks every line of a journal's bytes, stopping at the first that breaks the chain.
///
/// A final line without its newline, or a final line that is not JSON at all, is a torn write:
/// the writer puts each line (newline included) down in one `write`, so only a crash or a full
/// disk leaves part of one, and only at the end.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan {
        records: Vec::new(),
        first_bad: None,
        torn_tail: None,
        good_len: 0,
    };
    let mut prev = GENESIS_PREV.to_string();
    let mut offset = 0usize;
    let mut line_no = 0usize;
    while offset < bytes.len() {
        line_no += 1;
        let rest = &bytes[offset..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            out.torn_tail = Some(TornTail {
                line_no,
                bytes: rest.len(),
            });
            break;
        };
        let next = offset + nl + 1;
        let expected = out.records.len() as u64 + 1;
        match check_line(&rest[..nl], expected, &prev) {
            Ok(record) => {
                prev.clone_from(&record.hash);
                out.records.push(record);
                out.good_len = next as u64;
            }
            Err(LineError::NotJson(_)) if next == bytes.len() => {
                out.torn_tail = Some(TornTail {
                    line_no,
                    bytes: nl + 1,
                });
                break;
            }
            Err(e) => {
                out.first_bad = Some(BadRecord {
                    seq: expected,
                    line_no,
                    reason: e.reason(),
                });
                break;
            }
        }
        offset = next;
    }
    out
}

/// Reads and verifies a whole journal, read-only and without locking (a replay may run beside a
/// live writer). A torn final line is tolerated and reported; a broken chain anywhere else is
/// [`JournalError::Tampered`].
pub fn read(path: &Path) -> Result<ReadOutcome, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
    let scan = scan(&bytes);
    if let Some(bad) = scan.first_bad {
        return Err(JournalError::Tampered {
            path: path.to_path_buf(),
            seq: bad.seq,
            line_no: bad.line_no,
            reason: bad.reason,
        });
    }
    Ok(ReadOutcome {
        records: scan.records,
        torn_tail: scan.torn_tail,
    })
}

/// A journal read as far as its chain holds: the records before the first bad line, and that
/// line. For showing and replaying a damaged journal up to the damage (with a banner naming
/// it); [`verify`] still fails it, and nothing resumes from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prefix {
    /// The intact records, seq 1 up to the one before `damage` (all of them when intact).
    pub records: Vec<Record>,
    /// The first line that breaks the chain, if any.
    pub damage: Option<BadRecord>,
    /// A torn final line, if there was one (and no damage before it).
    pub torn_tail: Option<TornTail>,
}

/// Reads a journal up to its first damaged line, read-only and without locking.
pub fn read_prefix(path: &Path) -> Result<Prefix, JournalError> {
    let bytes = std::fs::read(path).map_err(|e| JournalError::io(path, e))?;
    let scan = scan(&bytes);
    Ok(Prefix {
        records: scan.records,
        damage: scan.first_bad,
        torn_tail: scan.torn_tail,
    })
}

/// How a journal read record by record ([`read_prefix_each`]) ended.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Ending {
    /// How many intact records were handed out.
    pub records: usize,
    /// The first line that breaks the chain, if any (nothing from it on was handed out).
    pub damage: Option<BadRecord>,
    /// A torn final line, if there was one (and no damage before it).
    pub torn_tail: Option<TornTail>,
}

/// [`read_prefix`] without holding the journal: hands each intact record to `each` as it is
/// read (the file is read through a buffer, never whole), stopping at the first damaged line or
/// at the first error `each` returns. For a replay of a long journal, which keeps what it needs
/// of each record rather than every record's JSON.
pub fn read_prefix_each<E: From<JournalError>>(
    path: &Path,
    mut each: impl FnMut(Record) -> Result<(), E>,
) -> Result<Ending, E> {
    use std::io::BufRead;
    let io = |e| JournalError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut end = Ending::default();
    let mut prev = GENESIS_PREV.to_string();
    let mut line = Vec::new();
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.last() != Some(&b'\n') {
            end.torn_tail = Some(TornTail { line_no, bytes: n });
            break;
        }
        let expected = end.records as u64 + 1;
        match check_line(&line[..n - 1], expected, &prev) {
            Ok(record) => {
                prev.clone_from(&record.hash);
                end.records += 1;
                each(record)?;
            }
            Err(LineError::NotJson(_)) if reader.fill_buf().map_err(io)?.is_empty() => {
                end.torn_tail = Some(TornTail { line_no, bytes: n });
                break;
            }
            Err(e) => {
                end.damage = Some(BadRecord {
                    seq: expected,
                    line_no,
                    reason: e.reason(),
                });
                break;
            }
        }
    }
    Ok(end)
}

/// Verifies a journal and reports what it found. Never panics and never fails: an unreadable
/// file is reported in [`VerifyReport::io_error`].
pub fn verify(path: &Path) -> VerifyReport {
    verify_keeping(path, |_| false).0
}

/// [`verify`], also returning the intact records whose kind `keep` accepts (for checking the
/// signed confirmations without reading the journal twice).
///
/// Only kept lines are parsed whole: every other line is hashed from its stored bytes and its
/// envelope (every key but `data`, which the hash covers) checked, which is what keeps
/// verifying a long journal near the cost of hashing it.
pub fn verify_keeping(path: &Path, keep: impl Fn(&str) -> bool) -> (VerifyReport, Vec<Record>) {
    let io_error = |e: std::io::Error| VerifyReport {
        io_error: Some(format!("{}: {e}", path.display())),
        ..VerifyReport::default()
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return (io_error(e), Vec::new()),
    };
    let mut v = Verifier {
        report: VerifyReport::default(),
        kept: Vec::new(),
        prev: [b'0'; 64],
        line_no: 0,
        pending_torn: None,
        done: false,
    };
    // A reader thread reads blocks of whole lines ahead while this one checks the last: each
    // block's lines get their own checks on every core (seal_checks), then the chain is
    // followed in order. Buffers go back to the reader, so memory stays at a few blocks.
    let read = std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reader = sc.spawn(move || read_blocks(file, &tx, &back_rx));
        for block in rx {
            if !v.done {
                v.block(&block, &keep);
            }
            let _ = back_tx.send(block);
        }
        reader
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    if let Err(e) = read {
        return (io_error(e), Vec::new());
    }
    v.finish();
    (v.report, v.kept)
}

/// How much of the journal `verify` reads at once.
/// (Small in tests, so that their journals span many blocks.)
const VERIFY_BLOCK: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };

/// Send the file in blocks that end at a newline (the last may end without one: a torn line),
/// reusing the buffers that come back.
fn read_blocks(
    mut file: File,
    tx: &std::sync::mpsc::SyncSender<Vec<u8>>,
    back: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = back.try_recv().unwrap_or_default();
        buf.clear();
        buf.append(&mut carry);
        let start = buf.len();
        buf.resize(start + VERIFY_BLOCK, 0);
        let mut n = 0;
        while n < VERIFY_BLOCK {
            match file.read(&mut buf[start + n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(start + n);
        if n == 0 {
            // The end: what is left is a torn last line, if anything.
            if !buf.is_empty() {
                let _ = tx.send(buf);
            }
            return Ok(());
        }
        match memchr::memrchr(b'\n', &buf) {
            Some(i) => {
                carry.extend_from_slice(&buf[i + 1..]);
                buf.truncate(i + 1);
                if tx.send(buf).is_err() {
                    return Ok(());
                }
            }
            // A line longer than a block: read on.
            None => carry = buf,
        }
    }
}

/// The chain followed across blocks.
struct Verifier {
    report: VerifyReport,
    kept: Vec<Record>,
    prev: [u8; 64],
    line_no: usize,
    /// A last line of a block that is not JSON: a torn tail if nothing follows it, else damage.
    pending_torn: Option<(usize, usize, LineError, u64)>,
    done: bool,
}

impl Verifier {
    fn block(&mut self, block: &[u8], keep: &impl Fn(&str) -> bool) {
        if let Some((line_no, _, e, seq)) = self.pending_torn.take() {
            // More followed the non-JSON line: damage.
            self.report.first_bad = Some(BadRecord {
                seq,
                line_no,
                reason: e.reason(),
            });
            self.done = true;
            return;
        }
        let (lines, tail) = split_lines(block);
        let mut sealed = seal_checks(&lines).into_iter();
        for (i, line) in lines.iter().enumerate() {
            self.line_no += 1;
            let expected = self.report.records as u64 + 1;
            let prev_text = std::str::from_utf8(&self.prev).unwrap_or(GENESIS_PREV);
            match check_chain_sealed(sealed.next().flatten(), line, expected, prev_text) {
                Ok(link) => {
                    if keep(&link.kind)
                        && let Ok(record) = check_line(line, expected, prev_text)
                    {
                        self.kept.push(record);
                    }
                    self.prev = link.hash;
                    self.report.records += 1;
                }
                Err(e @ LineError::NotJson(_)) if i + 1 == lines.len() && tail.is_empty() => {
                    self.pending_torn = Some((self.line_no, line.len() + 1, e, expected));
                    return;
                }
                Err(e) => {
                    self.report.first_bad = Some(BadRecord {
                        seq: expected,
                        line_no: self.line_no,
                        reason: e.reason(),
                    });
                    self.done = true;
                    return;
                }
            }
        }
        if !tail.is_empty() {
            self.report.torn_tail = Some(TornTail {
                line_no: self.line_no + 1,
                bytes: tail.len(),
            });
            self.done = true;
        }
    }

    fn finish(&mut self) {
        if let Some((line_no, bytes, _, _)) = self.pending_torn.take() {
            self.report.torn_tail = Some(TornTail { line_no, bytes });
        }
    }
}

/// Follows a journal as it grows (`replay --follow`), without locking it.
///
/// Each [`Follower::poll`] returns the complete, verified records appended since the previous
/// poll (the first poll returns everything so far). A line still being written is left for a
/// later poll.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: File,
    /// Bytes consumed so far: the end of the last record returned.
    offset: u64,
    line_no: usize,
    last_seq: u64,
    last_hash: String,
}

impl Follower {
    /// Opens `path` for following. The file must exist.
    pub fn open(path: &Path) -> Result<Follower, JournalError> {
        let file = File::open(path).map_err(|e| JournalError::io(path, e))?;
        Ok(Follower {
            path: path.to_path_buf(),
            file,
            offset: 0,
            line_no: 0,
            last_seq: 0,
            last_hash: GENESIS_PREV.to_string(),
        })
    }

    /// The seq of the last record returned (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Records appended since the last poll, verified against the chain so far.
    pub fn poll(&mut self) -> Result<Vec<Record>, JournalError> {
        let len = self
            .file
            .metadata()
            .map_err(|e| JournalError::io(&self.path, e))?
            .len();
        if len < self.offset {
            // Only a resumed writer trims, and only a torn line we never consumed; anything
            // shorter means records we already returned are gone.
            return Err(self.tampered(
                self.last_seq,
                self.line_no,
                format!(
                    "the journal shrank to {len} bytes, below the {} already read",
                    self.offset
                ),
            ));
        }
        let mut bytes = Vec::new();
        self.file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| self.file.read_to_end(&mut bytes))
            .map_err(|e| JournalError::io(&self.path, e))?;

        let mut records = Vec::new();
        let mut consumed = 0usize;
        while let Some(nl) = bytes[consumed..].iter().position(|&b| b == b'\n') {
            let next = consumed + nl + 1;
            let line_no = self.line_no + 1;
            let expected = self.last_seq + 1;
            match check_line(&bytes[consumed..consumed + nl], expected, &self.last_hash) {
                Ok(record) => {
                    self.last_seq = record.seq;
                    self.last_hash.clone_from(&record.hash);
                    self.line_no = line_no;
                    records.push(record);
                    consumed = next;
                }
                // A final non-JSON line may be a torn write the resumed writer will trim; wait
                // and see whether more lines follow it (then it is damage) or it goes away.
                Err(LineError::NotJson(_)) if next == bytes.len() => break,
                // Hand out the good records first; the next poll stops at this line again.
                Err(_) if !records.is_empty() => break,
                Err(e) => return Err(self.tampered(expected, line_no, e.reason())),
            }
        }
        self.offset += consumed as u64;
        Ok(records)
    }

    fn tampered(&self, seq: u64, line_no: usize, reason: String) -> JournalError {
        JournalError::Tampered {
            path: self.path.clone(),
            seq,
            line_no,
            reason,
        }
    }
}
