//! A journal indexed by seq: where each record's line is in the file, with its time and kind,
//! built in one pass that checks the chain exactly as [`super::read_prefix_each`] does but keeps
//! no record's JSON. A record is read back from the file, and parsed, only when asked for
//! ([`Index::record`]). For replaying a long journal in bounded memory: about 32 bytes a record.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::record::{
    GENESIS_PREV, LineError, Record, check_chain_sealed, hashed, seal_checks, split_lines,
};
use super::{BadRecord, JournalError, TornTail};

/// How much of the journal [`Index::extend`] reads at once (more for a longer line).
/// (Small in tests, so that their journals span many blocks.)
const BLOCK: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };

/// Where one intact record is.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Byte offset of its line in the file.
    offset: u64,
    /// Its line's length, without the newline.
    len: u32,
    /// Its kind, as an index into [`Index::kinds`].
    kind: u16,
    time: DateTime<Utc>,
}

/// The intact records of a journal, by seq, as far as its chain holds (see [`Index::open`]).
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    file: File,
    slots: Vec<Slot>,
    /// The distinct kinds seen, in order of first appearance.
    kinds: Vec<String>,
    /// Bytes up to and including the last indexed record's newline.
    end: u64,
    /// The last indexed record's line number.
    line_no: usize,
    last_hash: [u8; 64],
    damage: Option<BadRecord>,
    torn_tail: Option<TornTail>,
}

impl Index {
    /// Indexes a journal read-only and without locking (a writer may be appending), up to its
    /// first damaged line ([`Index::damage`]); a torn final line is left out
    /// ([`Index::torn_tail`]), as everywhere.
    pub fn open(path: &Path) -> Result<Index, JournalError> {
        let file = File::open(path).map_err(|e| JournalError::io(path, e))?;
        let mut index = Index {
            path: path.to_path_buf(),
            file,
            slots: Vec::new(),
            kinds: Vec::new(),
            end: 0,
            line_no: 0,
            last_hash: [b'0'; 64],
            damage: None,
            torn_tail: None,
        };
        index.extend()?;
        index.slots.shrink_to_fit();
        Ok(index)
    }

    /// Indexes the complete records appended since the last call, checking them against the
    /// chain so far; returns how many were added. A final line still being written (no newline
    /// yet, or not JSON yet) is left for a later call. Once damage is found nothing more is
    /// read: a journal that shrank below what was indexed is damage too.
    pub fn extend(&mut self) -> Result<usize, JournalError> {
        if self.damage.is_some() {
            return Ok(0);
        }
        let io = |e| JournalError::io(&self.path, e);
        let len = self.file.metadata().map_err(io)?.len();
        if len < self.end {
            self.damage = Some(BadRecord {
                seq: self.slots.len() as u64,
                line_no: self.line_no,
                reason: format!(
                    "the journal shrank to {len} bytes, below the {} already read",
                    self.end
                ),
            });
            return Ok(0);
        }
        self.torn_tail = None;
        let before = self.slots.len();
        // Read in blocks of whole lines: each block's lines get their own checks on every core
        // (seal_checks), then the chain is followed in order. One block is held at a time.
        let mut block = Vec::new();
        let mut want = BLOCK;
        while self.end < len {
            let at = self.end;
            let size = want.min((len - at) as usize);
            block.resize(size, 0);
            self.file.read_exact_at(&mut block, at).map_err(io)?;
            let at_eof = at + size as u64 == len;
            let Some(last_nl) = memchr::memrchr(b'\n', &block) else {
                if at_eof {
                    // A final line still being written.
                    self.torn_tail = Some(TornTail {
                        line_no: self.line_no + 1,
                        bytes: size,
                    });
                    break;
                }
                // A line longer than the block: read more at once.
                want *= 2;
                continue;
            };
            let (lines, _) = split_lines(&block[..=last_nl]);
            // Nothing follows the block's last line: a non-JSON line there may be torn.
            let nothing_after = at_eof && last_nl + 1 == size;
            let mut sealed = seal_checks(&lines).into_iter();
            for (i, line) in lines.iter().enumerate() {
                let line_no = self.line_no + 1;
                let seq = self.slots.len() as u64 + 1;
                let prev = std::str::from_utf8(&self.last_hash).unwrap_or(GENESIS_PREV);
                match check_chain_sealed(sealed.next().flatten(), line, seq, prev) {
                    Ok(link) => {
                        let kind = match self.kinds.iter().position(|k| *k == link.kind) {
                            Some(i) => i,
                            None => {
                                self.kinds.push(link.kind.into_owned());
                                self.kinds.len() - 1
                            }
                        };
                        self.slots.push(Slot {
                            offset: self.end,
                            len: line.len() as u32,
                            kind: kind as u16,
                            time: link.time,
                        });
                        self.last_hash = link.hash;
                        self.end += line.len() as u64 + 1;
                        self.line_no = line_no;
                    }
                    Err(LineError::NotJson(_)) if nothing_after && i + 1 == lines.len() => {
                        self.torn_tail = Some(TornTail {
                            line_no,
                            bytes: line.len() + 1,
                        });
                        return Ok(self.slots.len() - before);
                    }
                    Err(e) => {
                        self.damage = Some(BadRecord {
                            seq,
                            line_no,
                            reason: e.reason(),
                        });
                        return Ok(self.slots.len() - before);
                    }
                }
            }
            want = BLOCK;
        }
        Ok(self.slots.len() - before)
    }

    /// How many intact records are indexed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The kind of the record at `i` (seq `i + 1`).
    pub fn kind(&self, i: usize) -> &str {
        &self.kinds[self.slots[i].kind as usize]
    }

    /// The time of the record at `i` (seq `i + 1`).
    pub fn time(&self, i: usize) -> DateTime<Utc> {
        self.slots[i].time
    }

    /// The first line that breaks the chain, if any: nothing from it on is indexed.
    pub fn damage(&self) -> Option<&BadRecord> {
        self.damage.as_ref()
    }

    /// A torn final line, if the last pass ended on one.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// The stored line of the record at `i` (seq `i + 1`), without its newline, read back from
    /// the file (unchecked: [`Index::record`] checks it is still the one indexed).
    pub fn line(&self, i: usize) -> Result<Vec<u8>, JournalError> {
        let slot = self.slots[i];
        let mut line = vec![0u8; slot.len as usize];
        self.file
            .read_exact_at(&mut line, slot.offset)
            .map_err(|e| JournalError::io(&self.path, e))?;
        Ok(line)
    }

    /// The record at `i` (seq `i + 1`), read back from the file and parsed. Fails if the line
    /// is no longer the one indexed (the file changed under the reader).
    pub fn record(&self, i: usize) -> Result<Record, JournalError> {
        let slot = self.slots[i];
        let line = self.line(i)?;
        let seq = i as u64 + 1;
        let changed = |reason: String| JournalError::Tampered {
            path: self.path.clone(),
            seq,
            line_no: self.line_no - (self.slots.len() - 1 - i),
            reason,
        };
        let record: Record = serde_json::from_slice(&line).map_err(|e| {
            changed(if hashed(&line).is_some() {
                // Indexed on its hash and envelope; its data, covered by the hash, is what fails.
                format!(
                    "not a record cutover can read ({e}), yet it hashes to the hash it stores: it was written this way, by something other than cutover"
                )
            } else {
                format!("changed since it was read: {e}")
            })
        })?;
        if record.seq != seq || record.time != slot.time {
            return Err(changed(format!(
                "changed since it was read: seq {} where {seq} was indexed",
                record.seq
            )));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Entry, Journal, read_prefix_each};
    use serde_json::json;

    fn write(dir: &Path, n: usize) -> PathBuf {
        let path = dir.join("j.jsonl");
        let mut j = Journal::create(&path).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2003-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        for i in 0..n {
            let kind = if i % 3 == 0 { "intent" } else { "outcome" };
            j.append(Entry::new(
                t0 + chrono::Duration::seconds(i as i64),
                "r",
                "a@b",
                kind,
                json!({ "i": i }),
            ))
            .unwrap();
        }
        path
    }

    #[test]
    fn indexes_every_record_and_reads_each_back_as_the_reader_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 20);
        let index = Index::open(&path).unwrap();
        let mut all = Vec::new();
        read_prefix_each(&path, |r| -> Result<(), JournalError> {
            all.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(index.len(), 20);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(index.kind(i), r.kind);
            assert_eq!(index.time(i), r.time);
            assert_eq!(&index.record(i).unwrap(), r);
        }
        assert_eq!((index.damage(), index.torn_tail()), (None, None));
    }

    #[test]
    fn stops_at_damage_and_leaves_a_torn_tail_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 10);
        let text = std::fs::read_to_string(&path).unwrap();
        let full: Vec<&str> = text.lines().collect();

        // A final line without its newline: torn, left out, picked up once complete.
        let cut = full[..9].join("\n") + "\n" + &full[9][..30];
        std::fs::write(&path, &cut).unwrap();
        let mut index = Index::open(&path).unwrap();
        assert_eq!(index.len(), 9);
        assert_eq!(index.torn_tail().map(|t| t.line_no), Some(10));
        std::fs::write(&path, full.join("\n") + "\n").unwrap();
        assert_eq!(index.extend().unwrap(), 1);
        assert_eq!((index.len(), index.torn_tail()), (10, None));

        // A changed byte at seq 4: seq 1-3 only, and the reader's own reason.
        let mut lines: Vec<String> = full.iter().map(|l| l.to_string()).collect();
        lines[3] = lines[3].replacen("a@b", "X@b", 1);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let index = Index::open(&path).unwrap();
        let ending = read_prefix_each(&path, |_| -> Result<(), JournalError> { Ok(()) }).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(index.damage(), ending.damage.as_ref());
        assert!(index.damage().unwrap().reason.starts_with("hash mismatch"));
    }

    /// Journals long enough for the lines' own checks to run on several threads (and, for the
    /// index, in several blocks) end where the one-line-at-a-time reader ends, for the same
    /// reason, at every kind of ending.
    #[test]
    fn batched_checks_end_where_the_reader_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 12_000);
        let text = std::fs::read_to_string(&path).unwrap();
        let full: Vec<&str> = text.lines().collect();
        let agree = |body: String, records: usize| {
            std::fs::write(&path, &body).unwrap();
            let ending =
                read_prefix_each(&path, |_| -> Result<(), JournalError> { Ok(()) }).unwrap();
            let index = Index::open(&path).unwrap();
            let report = crate::journal::verify(&path);
            assert_eq!(index.len(), records);
            assert_eq!(report.records, records);
            assert_eq!(index.damage(), ending.damage.as_ref());
            assert_eq!(report.first_bad.as_ref(), ending.damage.as_ref());
            assert_eq!(index.torn_tail(), ending.torn_tail.as_ref());
            assert_eq!(report.torn_tail.as_ref(), ending.torn_tail.as_ref());
            (index, ending)
        };
        let joined = |lines: &[String]| lines.join("\n") + "\n";
        let lines: Vec<String> = full.iter().map(|l| l.to_string()).collect();

        agree(joined(&lines), 12_000);
        // A changed byte far into the journal (in a later thread's share).
        let mut bad = lines.clone();
        bad[9_000] = bad[9_000].replacen("a@b", "X@b", 1);
        let (_, ending) = agree(joined(&bad), 9_000);
        assert!(ending.damage.unwrap().reason.starts_with("hash mismatch"));
        // Two lines swapped.
        let mut swapped = lines.clone();
        swapped.swap(5_000, 5_001);
        agree(joined(&swapped), 5_000);
        // A final line cut without its newline, and one cut with it (not JSON): torn both.
        let cut = joined(&lines[..11_999]) + &lines[11_999][..40];
        let (index, ending) = agree(cut, 11_999);
        assert_eq!(index.torn_tail().map(|t| t.line_no), Some(12_000));
        assert!(ending.damage.is_none());
        let cut = joined(&lines[..11_999]) + &lines[11_999][..40] + "\n";
        agree(cut, 11_999);
        // The same non-JSON line with lines after it is damage, not a torn tail.
        let mut mid = lines.clone();
        mid[11_000].truncate(40);
        let (_, ending) = agree(joined(&mid), 11_000);
        assert!(ending.damage.is_some());
    }

    /// A record longer than the index's read block is read whole.
    #[test]
    fn a_line_longer_than_a_block_is_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut j = Journal::create(&path).unwrap();
        let big = "x".repeat(BLOCK + BLOCK / 2);
        for i in 0..3 {
            let data = if i == 1 {
                json!({ "big": big })
            } else {
                json!({ "i": i })
            };
            j.append(Entry::new(Utc::now(), "r", "a@b", "note", data))
                .unwrap();
        }
        drop(j);
        let index = Index::open(&path).unwrap();
        assert_eq!(
            (index.len(), index.damage(), index.torn_tail()),
            (3, None, None)
        );
        assert_eq!(
            index.record(1).unwrap().data["big"].as_str().map(str::len),
            Some(big.len())
        );
        assert_eq!(crate::journal::verify(&path).records, 3);
    }
}
