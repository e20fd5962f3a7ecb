//! The UI log's lines, bounded, in chunks shared between copies of the state: the engine copies
//! the state on every command and the screen gets a copy after each, and neither copies the
//! lines (only a chunk being written to, when it is shared).

use super::LogLine;
use serde::Serialize;
use std::sync::Arc;

/// Lines per chunk.
const CHUNK: usize = 256;
/// Past this many lines, the oldest chunks go (the log is a view: a long follow must not grow
/// without end).
const MAX_LINES: usize = 5000;

#[derive(Debug, Clone, Default)]
pub struct LogBook {
    /// Full chunks, then the one being written (never empty, unless there are no lines).
    chunks: Vec<Arc<Vec<LogLine>>>,
    len: usize,
}

impl LogBook {
    pub fn push(&mut self, line: LogLine) {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        Arc::make_mut(self.chunks.last_mut().expect("a chunk")).push(line);
        self.len += 1;
        while self.len > MAX_LINES {
            let gone = self.chunks.remove(0);
            self.len -= gone.len();
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&LogLine> {
        // Every chunk but the last is full.
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub fn last(&self) -> Option<&LogLine> {
        self.chunks.last()?.last()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogLine> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Lines `range.start..range.end` (clamped to the lines there are).
    pub fn range(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &LogLine> {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        (start..end).filter_map(|i| self.get(i))
    }
}

impl Serialize for LogBook {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::narrate::LogLevel;

    fn line(i: usize) -> LogLine {
        LogLine {
            time: chrono::DateTime::UNIX_EPOCH,
            node: None,
            action: String::new(),
            text: i.to_string(),
            level: LogLevel::Info,
            duration_ms: None,
        }
    }

    #[test]
    fn lines_keep_their_order_and_a_copy_does_not_see_later_lines() {
        let mut log = LogBook::default();
        assert!(log.is_empty() && log.last().is_none() && log.get(0).is_none());
        for i in 0..CHUNK + 10 {
            log.push(line(i));
        }
        let copy = log.clone();
        log.push(line(CHUNK + 10));
        assert_eq!(copy.len(), CHUNK + 10);
        assert_eq!(log.len(), CHUNK + 11);
        assert_eq!(copy.last().unwrap().text, (CHUNK + 9).to_string());
        assert_eq!(log.last().unwrap().text, (CHUNK + 10).to_string());
        for i in 0..log.len() {
            assert_eq!(log.get(i).unwrap().text, i.to_string());
        }
        let texts: Vec<String> = log
            .range(CHUNK - 2..CHUNK + 2)
            .map(|l| l.text.clone())
            .collect();
        let want: Vec<String> = (CHUNK - 2..CHUNK + 2).map(|i| i.to_string()).collect();
        assert_eq!(texts, want);
        assert_eq!(log.range(5..1_000_000).count(), log.len() - 5);
        assert_eq!(
            serde_json::to_value(&log)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            log.len()
        );
    }

    #[test]
    fn the_oldest_lines_go_past_the_bound_a_chunk_at_a_time() {
        let mut log = LogBook::default();
        for i in 0..MAX_LINES * 2 {
            log.push(line(i));
            assert!(log.len() <= MAX_LINES);
        }
        assert!(log.len() > MAX_LINES - CHUNK);
        assert_eq!(log.last().unwrap().text, (MAX_LINES * 2 - 1).to_string());
        let first: usize = log.get(0).unwrap().text.parse().unwrap();
        assert_eq!(first + log.len(), MAX_LINES * 2);
        assert_eq!(first % CHUNK, 0);
    }
}
