//! One journal line: encoding, hashing and checking.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::JournalError;

/// `prev` of the first record: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The bytes that end every line before its newline, around the hash: `,"hash":"` … `"}`.
const HASH_KEY: &[u8] = b",\"hash\":\"";
const HASH_HEX_LEN: usize = 64;
const LINE_END: &[u8] = b"\"}";

/// What the caller appends: an event without its place in the chain. The journal assigns `seq`,
/// `prev` and `hash`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// When it happened. Stored truncated to microseconds (the format's precision).
    pub time: DateTime<Utc>,
    pub run: String,
    /// Who did it, usually [`super::Who::actor_label`].
    pub actor: String,
    /// The event kind (`intent`, `outcome`, `hard_stop_confirmed`, …).
    pub kind: String,
    pub step: Option<String>,
    pub node: Option<String>,
    pub data: Value,
}

impl Entry {
    /// An entry without step or node; add them with [`Entry::step`] and [`Entry::node`].
    pub fn new(
        time: DateTime<Utc>,
        run: impl Into<String>,
        actor: impl Into<String>,
        kind: impl Into<String>,
        data: Value,
    ) -> Entry {
        Entry {
            time,
            run: run.into(),
            actor: actor.into(),
            kind: kind.into(),
            step: None,
            node: None,
            data,
        }
    }

    /// Sets the step.
    pub fn step(mut self, step: impl Into<String>) -> Entry {
        self.step = Some(step.into());
        self
    }

    /// Sets the node.
    pub fn node(mut self, node: impl Into<String>) -> Entry {
        self.node = Some(node.into());
        self
    }
}

/// A record as stored: an [`Entry`] with its place in the chain.
///
/// Field order is the key order on disk, and the serialization of this struct is exactly the
/// stored line (without the newline). Unknown or duplicate keys are rejected when parsing, so a
/// line that parses is in the one canonical shape.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    #[serde(with = "time_micros")]
    pub time: DateTime<Utc>,
    pub run: String,
    pub actor: String,
    pub kind: String,
    pub step: Option<String>,
    pub node: Option<String>,
    pub data: Value,
    pub prev: String,
    pub hash: String,
}

impl Record {
    /// The stored line for this record (no newline), as [`render::Format::Json`] prints it.
    ///
    /// [`render::Format::Json`]: super::Format::Json
    pub fn to_line(&self) -> String {
        // Serializing strings, integers and a `Value` cannot fail; fall back to the encoder's
        // error text rather than panic in a renderer.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The hashed part of a line: every key but `hash`, in the stored order.
#[derive(Serialize)]
struct Unhashed<'a> {
    seq: u64,
    time: &'a str,
    run: &'a str,
    actor: &'a str,
    kind: &'a str,
    step: Option<&'a str>,
    node: Option<&'a str>,
    data: &'a Value,
    prev: &'a str,
}

/// Formats a time the one way the journal stores it: RFC 3339, UTC, microseconds, `Z`.
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Chains `entry` after `prev` at `seq` and returns the record and its stored line (with newline).
///
/// The line is built from the hashed bytes by appending the hash member, rather than by
/// serializing the record a second time, so the invariant the verifier relies on (the line minus
/// its hash member is exactly what was hashed) holds by construction.
pub(crate) fn seal(entry: Entry, seq: u64, prev: &str) -> Result<(Record, Vec<u8>), JournalError> {
    // Truncate to the stored precision so the returned Record equals what a reader parses back.
    let time = entry.time.trunc_subsecs(6);
    let time_text = format_time(&time);
    let unhashed = Unhashed {
        seq,
        time: &time_text,
        run: &entry.run,
        actor: &entry.actor,
        kind: &entry.kind,
        step: entry.step.as_deref(),
        node: entry.node.as_deref(),
        data: &entry.data,
        prev,
    };
    let mut line =
        serde_json::to_vec(&unhashed).map_err(|source| JournalError::Encode { source })?;
    let hash = hex::encode(Sha256::digest(&line));
    // `line` ends with the object's closing brace; reopen it for the hash member.
    line.pop();
    line.extend_from_slice(HASH_KEY);
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(LINE_END);
    line.push(b'\n');
    let record = Record {
        seq,
        time,
        run: entry.run,
        actor: entry.actor,
        kind: entry.kind,
        step: entry.step,
        node: entry.node,
        data: entry.data,
        prev: prev.to_string(),
        hash,
    };
    Ok((record, line))
}

/// Why a line does not continue the chain.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Not JSON at all: in the final line this is a torn write, elsewhere damage.
    NotJson(String),
    /// JSON, but not the record that belongs here.
    Bad(String),
}

impl LineError {
    pub(crate) fn reason(self) -> String {
        match self {
            LineError::NotJson(r) | LineError::Bad(r) => r,
        }
    }
}

/// Checks one stored line (without its newline) as the record at `expected_seq` after `prev_hash`.
pub(crate) fn check_line(
    line: &[u8],
    expected_seq: u64,
    prev_hash: &str,
) -> Result<Record, LineError> {
    // A line whose bytes hash to the hash it stores was written as it is: not torn, not
    // damaged, but not cutover's either if it does not parse (verify checks the hash and the
    // envelope, not the data: see `sealed`).
    let written_so = |reason: String, or: fn(String) -> LineError| {
        if hashed(line).is_some() {
            LineError::Bad(format!(
                "{reason}; yet the line hashes to the hash it stores: it was written this way, by something other than cutover"
            ))
        } else {
            or(reason)
        }
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err() {
        let detail = serde_json::from_slice::<Value>(line)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(written_so(
            format!("not valid JSON: {detail}"),
            LineError::NotJson,
        ));
    }
    let record: Record = serde_json::from_slice(line)
        .map_err(|e| written_so(format!("not a journal record: {e}"), LineError::Bad))?;

    let Some(actual) = hashed(line) else {
        let suffix_len = HASH_KEY.len() + HASH_HEX_LEN + LINE_END.len();
        let well_formed_end = line.len() > suffix_len
            && line.ends_with(LINE_END)
            && line[line.len() - suffix_len..].starts_with(HASH_KEY);
        if !well_formed_end {
            return Err(LineError::Bad(
                "the line does not end with its \"hash\" member".to_string(),
            ));
        }
        let body = &line[..line.len() - suffix_len];
        let actual = hex::encode(Sha256::digest([body, b"}"].concat()));
        return Err(LineError::Bad(format!(
            "hash mismatch: the line hashes to {actual} but says {} (a byte of it was changed)",
            record.hash
        )));
    };
    if record.hash.as_bytes() != actual {
        return Err(LineError::Bad(format!(
            "hash mismatch: the line hashes to {} but says {} (a byte of it was changed)",
            String::from_utf8_lossy(&actual),
            record.hash
        )));
    }
    if record.seq != expected_seq {
        return Err(LineError::Bad(format!(
            "seq {} where {expected_seq} was expected (lines reordered, cut or inserted)",
            record.seq
        )));
    }
    if record.prev != prev_hash {
        return Err(LineError::Bad(format!(
            "prev {} does not match the previous record's hash {prev_hash}",
            record.prev
        )));
    }
    Ok(record)
}

/// What [`check_chain`] learns of a line that continues the chain: its place in it.
#[derive(Debug)]
pub(crate) struct Link<'a> {
    pub kind: std::borrow::Cow<'a, str>,
    /// The line's hash, 64 lowercase hex digits (the next line's `prev`).
    pub hash: [u8; HASH_HEX_LEN],
    /// The record's time.
    pub time: DateTime<Utc>,
}

/// A line's envelope: every field but `data`, borrowed, with the same keys, types and
/// strictness as [`Record`] (unknown and duplicate keys rejected).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // run, actor, step and node are read to be checked, not used
struct Borrowed<'a> {
    seq: u64,
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    run: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    actor: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    step: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    node: Option<std::borrow::Cow<'a, str>>,
    /// Always `null` here: the line's envelope, its data left to the hash ([`envelope`]).
    data: serde::de::IgnoredAny,
    #[serde(borrow)]
    prev: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    hash: std::borrow::Cow<'a, str>,
}

/// What a stored line says of itself once its own checks passed (its bytes hash to the hash it
/// stores, its fields parse as strictly as [`check_line`] parses them): everything
/// [`check_chain`] needs but its place in the chain. Found per line, independently of every
/// other line, so a batch of lines can be checked on every core ([`seal_checks`]).
#[derive(Debug)]
pub(crate) struct Sealed<'a> {
    seq: u64,
    prev: std::borrow::Cow<'a, str>,
    link: Link<'a>,
}

/// The line's hash as lowercase hex, when the line ends with its `hash` member and that member
/// holds exactly this hash of the bytes before it (plus the closing brace).
pub(crate) fn hashed(line: &[u8]) -> Option<[u8; HASH_HEX_LEN]> {
    let suffix_len = HASH_KEY.len() + HASH_HEX_LEN + LINE_END.len();
    if line.len() <= suffix_len
        || !line.ends_with(LINE_END)
        || !line[line.len() - suffix_len..].starts_with(HASH_KEY)
    {
        return None;
    }
    let body = &line[..line.len() - suffix_len];
    let stored_hex = &line[line.len() - LINE_END.len() - HASH_HEX_LEN..line.len() - LINE_END.len()];
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(b"}");
    let mut actual = [0u8; HASH_HEX_LEN];
    hex::encode_to_slice(hasher.finalize(), &mut actual).ok()?;
    (stored_hex == actual).then_some(actual)
}

/// A line's own checks ([`Sealed`]); `None` when any of them fails (then [`check_line`] says
/// why).
fn sealed(line: &[u8]) -> Option<Sealed<'_>> {
    let actual = hashed(line)?;
    let (b, kind) = ENVELOPE.with_borrow_mut(|scratch| {
        let text = envelope(line, scratch)?;
        let b: Borrowed<'_> = serde_json::from_str(text).ok()?;
        let time = DateTime::parse_from_rfc3339(&b.time).ok()?;
        (b.hash.as_bytes() == actual)
            .then(|| ((b.seq, time, b.prev.into_owned()), b.kind.into_owned()))
    })?;
    let (seq, time, prev) = b;
    Some(Sealed {
        seq,
        prev: std::borrow::Cow::Owned(prev),
        link: Link {
            kind: std::borrow::Cow::Owned(kind),
            hash: actual,
            time: time.with_timezone(&Utc),
        },
    })
}

thread_local! {
    /// Where [`envelope`] builds a line's envelope, reused line after line.
    static ENVELOPE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `,"data":`: the key every stored line has after `node`.
const DATA_KEY: &[u8] = b",\"data\":";
/// `,"prev":"`
const PREV_KEY: &[u8] = b",\"prev\":\"";
/// How every stored line ends after its `data`: `,"prev":"<hex>","hash":"<hex>"}`.
const TAIL_LEN: usize =
    PREV_KEY.len() + HASH_HEX_LEN + 1 + HASH_KEY.len() + HASH_HEX_LEN + LINE_END.len();

/// The line with its `data` value replaced by `null` (in `scratch`), or None when the line is
/// not shaped like a stored line. What precedes `data` holds only scalars, so the first
/// `,"data":` in it is the key (a quote inside a JSON string is escaped, never after a comma);
/// what follows `data` has a fixed length. The data's bytes are left to the line's hash.
fn envelope<'s>(line: &[u8], scratch: &'s mut Vec<u8>) -> Option<&'s str> {
    let tail = line.len().checked_sub(TAIL_LEN)?;
    let at = memchr::memmem::find(&line[..tail], DATA_KEY)? + DATA_KEY.len();
    let fixed_tail = &line[tail..];
    if at >= tail
        || !fixed_tail.starts_with(PREV_KEY)
        || fixed_tail[PREV_KEY.len() + HASH_HEX_LEN] != b'"'
        || !fixed_tail[PREV_KEY.len() + HASH_HEX_LEN + 1..].starts_with(HASH_KEY)
    {
        return None;
    }
    scratch.clear();
    scratch.extend_from_slice(&line[..at]);
    scratch.extend_from_slice(b"null");
    scratch.extend_from_slice(fixed_tail);
    std::str::from_utf8(scratch).ok()
}

/// The lines of `block` (without their newlines), and what follows the last newline.
pub(crate) fn split_lines(block: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut from = 0;
    for nl in memchr::memchr_iter(b'\n', block) {
        lines.push(&block[from..nl]);
        from = nl + 1;
    }
    (lines, &block[from..])
}

/// Below this many lines a batch is checked on the calling thread alone.
const PARALLEL_FROM: usize = 4096;

/// [`Sealed`] for each of `lines`, in order, the lines spread over the machine's cores (each
/// line's hash and parse depend on that line alone; only the links between them are checked
/// in order, by [`check_chain_sealed`]).
pub(crate) fn seal_checks<'a>(lines: &[&'a [u8]]) -> Vec<Option<Sealed<'a>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || lines.len() < PARALLEL_FROM {
        return lines.iter().map(|l| sealed(l)).collect();
    }
    let chunk = lines.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = lines
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|l| sealed(l)).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Checks one stored line as the record at `expected_seq` after `prev_hash`, as [`check_line`]
/// does, without building the record: the stored bytes are hashed and the envelope (every
/// field but `data`) parsed into borrowed fields; `data` is covered by the hash, not parsed.
/// It accepts every line [`check_line`] accepts and, beyond those, only a line whose bytes
/// hash to its stored hash and whose data a `Value` refuses: something other than cutover
/// wrote it so, and the chain cannot tell (see the module's threat model). On any failure it
/// returns [`check_line`]'s own error, so every reason reads the same. (Readers check batches: [`seal_checks`], [`check_chain_sealed`].)
#[cfg(test)]
pub(crate) fn check_chain<'a>(
    line: &'a [u8],
    expected_seq: u64,
    prev_hash: &str,
) -> Result<Link<'a>, LineError> {
    check_chain_sealed(sealed(line), line, expected_seq, prev_hash)
}

/// [`check_chain`] given the line's own checks, already made ([`seal_checks`]).
pub(crate) fn check_chain_sealed<'a>(
    sealed: Option<Sealed<'a>>,
    line: &'a [u8],
    expected_seq: u64,
    prev_hash: &str,
) -> Result<Link<'a>, LineError> {
    match sealed {
        Some(s) if s.seq == expected_seq && s.prev == prev_hash => Ok(s.link),
        _ => match check_line(line, expected_seq, prev_hash) {
            Err(e) => Err(e),
            // Unreachable while the fast check refuses only what the full one refuses (the
            // full check is the stricter); if they ever disagree, the full check has the last
            // word.
            Ok(r) => Ok(Link {
                kind: std::borrow::Cow::Owned(r.kind),
                hash: {
                    let mut h = [0u8; HASH_HEX_LEN];
                    h.copy_from_slice(r.hash.as_bytes());
                    h
                },
                time: r.time,
            }),
        },
    }
}

/// Serde for the stored time format (chrono's default would vary the number of digits).
mod time_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Entry {
        let time = DateTime::parse_from_rfc3339("2026-11-29T02:31:07.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        Entry::new(
            time,
            "r1",
            "alice@bastion1",
            "intent",
            json!({"b": 1, "a": [1.5, "x"]}),
        )
        .step("rolling")
    }

    #[test]
    fn sealed_line_is_the_record_serialized_and_checks() {
        let (record, line) = seal(entry(), 1, GENESIS_PREV).unwrap();
        let text = std::str::from_utf8(&line).unwrap();
        assert!(text.starts_with(
            "{\"seq\":1,\"time\":\"2026-11-29T02:31:07.123456Z\",\"run\":\"r1\",\"actor\":\"alice@bastion1\",\"kind\":\"intent\",\"step\":\"rolling\",\"node\":null,\"data\":{\"a\":[1.5,\"x\"],\"b\":1},\"prev\":\"0000"
        ));
        assert_eq!(text, format!("{}\n", record.to_line()));
        let back = check_line(&line[..line.len() - 1], 1, GENESIS_PREV).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn whitespace_change_is_a_hash_mismatch() {
        let (_, line) = seal(entry(), 1, GENESIS_PREV).unwrap();
        let text = String::from_utf8(line)
            .unwrap()
            .replacen("\"run\":", "\"run\": ", 1);
        let err = check_line(text.trim_end().as_bytes(), 1, GENESIS_PREV).unwrap_err();
        assert!(
            matches!(err, LineError::Bad(ref r) if r.contains("hash mismatch")),
            "{err:?}"
        );
    }

    /// The fast check agrees with the full one, with the same reasons, on every one-byte change
    /// of a sealed line and a duplicate key. Data a `Value` refuses (a nesting deeper than it
    /// takes, a number out of range, a lone surrogate, a trailing comma) in a line re-sealed
    /// around it passes the fast check (the hash covers data; it is not parsed) and the full
    /// check refuses it as written so, not torn.
    #[test]
    fn check_chain_agrees_with_check_line() {
        let (_, line) = seal(entry(), 1, GENESIS_PREV).unwrap();
        let line = &line[..line.len() - 1];
        let agree = |l: &[u8], seq: u64, prev: &str| {
            let full = check_line(l, seq, prev)
                .map(|r| r.hash)
                .map_err(LineError::reason);
            let fast = check_chain(l, seq, prev)
                .map(|k| String::from_utf8(k.hash.to_vec()).unwrap())
                .map_err(LineError::reason);
            assert_eq!(fast, full, "{}", String::from_utf8_lossy(l));
            full.is_ok()
        };
        assert!(agree(line, 1, GENESIS_PREV));
        assert!(!agree(line, 2, GENESIS_PREV));
        assert!(!agree(line, 1, &"1".repeat(64)));
        for i in 0..line.len() {
            for b in [b' ', b'"', b'1', b'}', b'\\'] {
                let mut l = line.to_vec();
                l[i] = b;
                agree(&l, 1, GENESIS_PREV);
            }
        }
        // Data a Value refuses, re-sealed so that only the data is at fault.
        for data in [
            format!("{}1{}", "[".repeat(200), "]".repeat(200)),
            "1e400".to_string(),
            "\"\\ud800\"".to_string(),
            "{\"a\":1,}".to_string(),
        ] {
            let (_, good) = seal(entry(), 1, GENESIS_PREV).unwrap();
            let text = String::from_utf8(good).unwrap();
            let body_end = text.len() - 1 - (HASH_KEY.len() + HASH_HEX_LEN + LINE_END.len());
            let body = text[..body_end].replacen(
                "\"data\":{\"a\":[1.5,\"x\"],\"b\":1}",
                &format!("\"data\":{data}"),
                1,
            );
            let hash = hex::encode(Sha256::digest(format!("{body}}}")));
            let resealed = format!("{body},\"hash\":\"{hash}\"}}");
            let fast = check_chain(resealed.as_bytes(), 1, GENESIS_PREV);
            assert!(fast.is_ok(), "{data}: {fast:?}");
            match check_line(resealed.as_bytes(), 1, GENESIS_PREV) {
                Err(LineError::Bad(r)) => assert!(r.contains("written this way"), "{data}: {r}"),
                other => panic!("{data}: {other:?}"),
            }
        }
        let dup = String::from_utf8(line.to_vec()).unwrap().replacen(
            "\"run\":\"r1\",",
            "\"run\":\"r1\",\"run\":\"r1\",",
            1,
        );
        assert!(!agree(dup.as_bytes(), 1, GENESIS_PREV));
    }

    #[test]
    fn extra_key_is_rejected() {
        let (_, line) = seal(entry(), 1, GENESIS_PREV).unwrap();
        let text = String::from_utf8(line)
            .unwrap()
            .replacen("{", "{\"x\":1,", 1);
        let err = check_line(text.trim_end().as_bytes(), 1, GENESIS_PREV).unwrap_err();
        assert!(matches!(err, LineError::Bad(_)), "{err:?}");
    }
}
