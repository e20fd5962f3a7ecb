//! Journal: append/read, the hash chain and what verify catches, torn tails, the writer lock,
//! following, and rendering.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use cutover::journal::{
    self, Entry, Follower, Format, GENESIS_PREV, Journal, JournalError, Record, Who, render,
};
use serde_json::{Value, json};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-29T02:31:07.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn entry(i: i64, kind: &str, data: Value) -> Entry {
    Entry::new(
        t0() + Duration::seconds(i),
        "run-1",
        "alice@bastion1",
        kind,
        data,
    )
}

/// A journal of `n` simple records in a fresh temp dir.
fn journal_with(n: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let mut j = Journal::create(&path).unwrap();
    for i in 0..n {
        j.append(entry(
            i as i64,
            "note",
            json!({"message": format!("record {}", i + 1)}),
        ))
        .unwrap();
    }
    (dir, path)
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn append_then_read_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let mut j = Journal::create(&path).unwrap();
    let a = j
        .append(
            entry(
                0,
                "intent",
                json!({"id": 1, "action": "drain", "nested": {"z": 1, "a": [1.5, null]}}),
            )
            .step("rolling")
            .node("node2"),
        )
        .unwrap();
    let batch = j
        .append_batch(vec![
            entry(1, "outcome", json!({"id": 1, "ok": true})),
            entry(2, "note", Value::Null),
        ])
        .unwrap();
    assert_eq!((a.seq, batch[0].seq, batch[1].seq), (1, 2, 3));
    assert_eq!(a.prev, GENESIS_PREV);
    assert_eq!(batch[0].prev, a.hash);
    assert_eq!(batch[1].prev, batch[0].hash);
    assert_eq!(j.last_seq(), 3);
    assert_eq!(j.path(), path);
    assert!(j.append_batch(vec![]).unwrap().is_empty());

    let out = journal::read(&path).unwrap();
    assert_eq!(out.torn_tail, None);
    assert_eq!(
        out.records,
        vec![a.clone(), batch[0].clone(), batch[1].clone()]
    );

    // The stored line is the documented format, keys in order, and Json render reproduces it.
    let stored = lines(&path);
    assert!(
        stored[0].starts_with(
            r#"{"seq":1,"time":"2026-11-29T02:31:07.123456Z","run":"run-1","actor":"alice@bastion1","kind":"intent","step":"rolling","node":"node2","data":{"action":"drain","id":1,"nested":{"a":[1.5,null],"z":1}},"prev":"0000"#
        ),
        "{}",
        stored[0]
    );
    assert!(stored[2].contains(r#""step":null,"node":null,"data":null"#));
    assert_eq!(render(&out.records, Format::Json), stored.join("\n") + "\n");
}

#[test]
fn time_is_stored_with_microseconds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let mut j = Journal::create(&path).unwrap();
    let whole = t0() - Duration::microseconds(123_456); // no fraction at all
    let fine = t0() + Duration::nanoseconds(789); // below the stored precision
    let r1 = j
        .append(Entry::new(whole, "r", "a", "note", json!({})))
        .unwrap();
    let r2 = j
        .append(Entry::new(fine, "r", "a", "note", json!({})))
        .unwrap();
    let stored = lines(&path);
    assert!(stored[0].contains(r#""time":"2026-11-29T02:31:07.000000Z""#));
    assert!(stored[1].contains(r#""time":"2026-11-29T02:31:07.123456Z""#));
    // Returned records equal what a reader parses back (time truncated, not rounded).
    assert_eq!(journal::read(&path).unwrap().records, vec![r1, r2]);
}

#[test]
fn journal_and_lock_file_are_mode_0600() {
    let (_dir, path) = journal_with(1);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    // The holder note exists while a writer holds the journal, and goes with it.
    let (writer, _) = Journal::open_for_append(&path).unwrap();
    assert_eq!(mode(&journal::lock_path(&path)), 0o600);
    drop(writer);
    assert!(
        !journal::lock_path(&path).exists(),
        "the holder note is removed at exit"
    );
}

#[test]
fn create_refuses_an_existing_file() {
    let (_dir, path) = journal_with(2);
    let before = fs::read(&path).unwrap();
    assert!(matches!(
        Journal::create(&path),
        Err(JournalError::Exists { .. })
    ));
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "existing journal untouched"
    );
}

#[test]
fn intact_chain_verifies() {
    let (_dir, path) = journal_with(5);
    let report = journal::verify(&path);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 5);
    assert_eq!(report.first_bad, None);
    assert_eq!(report.torn_tail, None);
}

#[test]
fn flipped_byte_in_middle_line_names_its_seq() {
    let (_dir, path) = journal_with(5);
    let mut l = lines(&path);
    l[2] = l[2].replace("record 3", "record 8");
    write_lines(&path, &l);
    let report = journal::verify(&path);
    assert!(!report.ok());
    let bad = report.first_bad.unwrap();
    assert_eq!((bad.seq, bad.line_no), (3, 3));
    assert!(bad.reason.contains("hash"), "{}", bad.reason);
    assert_eq!(report.records, 2);
    // read refuses with the same position.
    match journal::read(&path) {
        Err(JournalError::Tampered { seq, line_no, .. }) => assert_eq!((seq, line_no), (3, 3)),
        other => panic!("expected Tampered, got {other:?}"),
    }
}

#[test]
fn read_prefix_stops_at_the_damage_and_names_it() {
    let (_dir, path) = journal_with(5);
    let intact = journal::read_prefix(&path).unwrap();
    assert_eq!((intact.records.len(), intact.damage), (5, None));
    let mut l = lines(&path);
    l[3] = l[3].replace("record 4", "record 9");
    write_lines(&path, &l);
    let p = journal::read_prefix(&path).unwrap();
    assert_eq!(
        p.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let bad = p.damage.expect("damage reported");
    assert_eq!((bad.seq, bad.line_no), (4, 4));
    // verify still fails the journal.
    assert!(!journal::verify(&path).ok());
}

#[test]
fn raw_byte_flip_anywhere_is_detected() {
    // Flip bytes across the middle line in turn: every variant must fail at seq 3 (its own hash,
    // or not JSON) or at seq 4 (a changed hash no longer matches the next line's prev); none
    // may pass.
    let (_dir, path) = journal_with(5);
    let original = fs::read(&path).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            original
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let (from, to) = (starts[2], starts[3] - 1); // line 3 without its newline
    for i in (from..to).step_by(7) {
        let mut bytes = original.clone();
        bytes[i] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let report = journal::verify(&path);
        let bad = report
            .first_bad
            .unwrap_or_else(|| panic!("flip at byte {} went unnoticed", i - from));
        assert!(
            bad.seq == 3 || bad.seq == 4,
            "flip at {}: {bad:?}",
            i - from
        );
    }
}

#[test]
fn changed_byte_in_final_line_is_detected_by_its_own_hash() {
    let (_dir, path) = journal_with(4);
    let mut l = lines(&path);
    l[3] = l[3].replace("record 4", "record 5");
    write_lines(&path, &l);
    let report = journal::verify(&path);
    let bad = report.first_bad.expect("final line edit must be detected");
    assert_eq!(bad.seq, 4);
    assert!(bad.reason.contains("hash mismatch"), "{}", bad.reason);
    assert!(report.torn_tail.is_none());
    assert!(matches!(
        Journal::open_for_append(&path),
        Err(JournalError::Tampered { seq: 4, .. })
    ));
}

#[test]
fn swapped_lines_are_detected() {
    let (_dir, path) = journal_with(5);
    let mut l = lines(&path);
    l.swap(1, 2);
    write_lines(&path, &l);
    let bad = journal::verify(&path).first_bad.unwrap();
    assert_eq!((bad.seq, bad.line_no), (2, 2));
    assert!(bad.reason.contains("seq 3 where 2"), "{}", bad.reason);
}

#[test]
fn deleted_middle_line_is_detected() {
    let (_dir, path) = journal_with(5);
    let mut l = lines(&path);
    l.remove(2);
    write_lines(&path, &l);
    let report = journal::verify(&path);
    let bad = report.first_bad.unwrap();
    assert_eq!((bad.seq, bad.line_no), (3, 3));
    assert_eq!(report.records, 2);
}

#[test]
fn renumbered_line_after_a_cut_is_caught_by_prev() {
    // Records 1 and 2 rewritten into a fresh journal, then original line 4 with its seq edited to
    // 3 and its own hash recomputed: self-consistent, but its prev names the cut record 3.
    let (_dir, path) = journal_with(4);
    let records = journal::read(&path).unwrap().records;
    let dir2 = tempfile::tempdir().unwrap();
    let forged = dir2.path().join("forged.jsonl");
    let mut j = Journal::create(&forged).unwrap();
    for r in &records[..2] {
        j.append(Entry {
            time: r.time,
            run: r.run.clone(),
            actor: r.actor.clone(),
            kind: r.kind.clone(),
            step: r.step.clone(),
            node: r.node.clone(),
            data: r.data.clone(),
        })
        .unwrap();
    }
    drop(j);
    // Re-seal record 4 as seq 3 with its original prev (the hash of the cut record 3).
    let orig4 = &records[3];
    let body = format!(
        r#"{{"seq":3,"time":"{}","run":"{}","actor":"{}","kind":"{}","step":null,"node":null,"data":{},"prev":"{}"}}"#,
        orig4
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        orig4.run,
        orig4.actor,
        orig4.kind,
        orig4.data,
        orig4.prev
    );
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let forged_line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    let mut l = lines(&forged);
    l.push(forged_line);
    write_lines(&forged, &l);
    let bad = journal::verify(&forged).first_bad.unwrap();
    assert_eq!(bad.seq, 3);
    assert!(bad.reason.contains("prev"), "{}", bad.reason);
}

#[test]
fn invalid_json_in_the_middle_is_damage_not_a_torn_tail() {
    let (_dir, path) = journal_with(4);
    let mut l = lines(&path);
    l[1] = "{\"seq\":2, this is not json".to_string();
    write_lines(&path, &l);
    let report = journal::verify(&path);
    assert_eq!(report.torn_tail, None);
    let bad = report.first_bad.unwrap();
    assert_eq!(bad.seq, 2);
    assert!(bad.reason.contains("not valid JSON"), "{}", bad.reason);
}

/// Re-chains `lines` from `from` (0-based) on: each line's `prev` set to the hash before it and
/// its own hash recomputed over its bytes, as cutover seals a line (a forger's work).
fn rechain(lines: &mut [String], from: usize) {
    use sha2::Digest;
    let hash_of = |l: &str| l[l.len() - 66..l.len() - 2].to_string();
    for i in from..lines.len() {
        let prev = if i == 0 {
            GENESIS_PREV.to_string()
        } else {
            hash_of(&lines[i - 1])
        };
        let l = &lines[i];
        let at = l.rfind(",\"prev\":\"").unwrap();
        let body = format!("{},\"prev\":\"{prev}\"}}", &l[..at]);
        let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        lines[i] = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    }
}

/// `verify` checks each line's bytes against its hash and its envelope, not its `data` (the
/// hash covers it): a journal re-chained around data that is not JSON verifies, and the readers
/// that parse the data (resume's `read`, replay's index) refuse that record, saying it was
/// written so rather than damaged.
#[test]
fn data_that_is_not_json_rechained_verifies_and_the_parsing_readers_refuse_it() {
    for bad_data in ["{\"a\":1,}", "1e400", "\"\\ud800\"", "[1"] {
        let (_dir, path) = journal_with(4);
        let mut l = lines(&path);
        l[1] = l[1].replacen(
            "\"data\":{\"message\":\"record 2\"}",
            &format!("\"data\":{bad_data}"),
            1,
        );
        assert!(l[1].contains(bad_data), "{}", l[1]);
        rechain(&mut l, 1);
        write_lines(&path, &l);

        let report = journal::verify(&path);
        assert_eq!(report.first_bad, None, "{bad_data}");
        assert_eq!((report.records, report.torn_tail), (4, None), "{bad_data}");

        let err = journal::read(&path).map(|r| r.records.len());
        let text = format!("{err:?}");
        assert!(
            err.is_err() && text.contains("written this way"),
            "{bad_data}: {text}"
        );

        let index = journal::Index::open(&path).unwrap();
        assert!(index.record(0).is_ok());
        let text = format!("{:?}", index.record(1).unwrap_err());
        assert!(text.contains("written this way"), "{bad_data}: {text}");
    }
}

#[test]
fn torn_final_line_is_tolerated_then_trimmed_on_resume() {
    let (_dir, path) = journal_with(3);
    let good_len = fs::metadata(&path).unwrap().len();
    // Simulate a crash mid-write: half a line, no newline.
    let half = &lines(&path)[2][..40];
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(half.as_bytes())
        .unwrap();

    let report = journal::verify(&path);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, 3);
    let torn = report.torn_tail.clone().unwrap();
    assert_eq!((torn.line_no, torn.bytes), (4, 40));
    assert_eq!(journal::read(&path).unwrap().records.len(), 3);

    let (mut j, outcome) = Journal::open_for_append(&path).unwrap();
    assert_eq!(outcome.torn_tail, Some(torn));
    assert_eq!(outcome.records.len(), 3);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        good_len,
        "torn bytes cut away"
    );
    assert_eq!(j.last_seq(), 3);
    let r = j.append(entry(10, "run_resumed", json!({}))).unwrap();
    assert_eq!(r.seq, 4);
    assert_eq!(r.prev, outcome.records[2].hash);
    drop(j);

    let report = journal::verify(&path);
    assert!(report.ok() && report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.records, 4);
}

#[test]
fn unparsable_final_line_with_newline_is_a_torn_tail() {
    let (_dir, path) = journal_with(2);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"seq\":3,\"ti\n")
        .unwrap();
    let report = journal::verify(&path);
    assert!(report.ok());
    assert_eq!(
        report.torn_tail.map(|t| (t.line_no, t.bytes)),
        Some((3, 13))
    );
    let (j, _) = Journal::open_for_append(&path).unwrap();
    assert_eq!(j.last_seq(), 2);
    drop(j);
    assert_eq!(journal::verify(&path).torn_tail, None);
}

#[test]
fn open_for_append_continues_the_chain() {
    let (_dir, path) = journal_with(2);
    let (mut j, outcome) = Journal::open_for_append(&path).unwrap();
    assert_eq!(outcome.records.len(), 2);
    assert_eq!(outcome.torn_tail, None);
    j.append(entry(5, "note", json!({"message": "after resume"})))
        .unwrap();
    drop(j);
    let out = journal::read(&path).unwrap();
    assert_eq!(
        out.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn second_writer_is_locked_out_and_told_who_holds_it() {
    let (_dir, path) = journal_with(1);
    let (first, _) = Journal::open_for_append(&path).unwrap();
    let me = Who::current().actor_label();
    match Journal::open_for_append(&path) {
        Err(JournalError::Locked { holder, path: p }) => {
            assert_eq!(p, path);
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
            assert!(holder.contains(&me), "{holder} should name {me}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // Readers never lock.
    assert_eq!(journal::read(&path).unwrap().records.len(), 1);
    assert!(journal::verify(&path).ok());
    // Released on drop.
    drop(first);
    let (again, _) = Journal::open_for_append(&path).unwrap();
    drop(again);
}

#[test]
fn create_while_locked_is_locked_not_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let _first = Journal::create(&path).unwrap();
    assert!(matches!(
        Journal::create(&path),
        Err(JournalError::Locked { .. })
    ));
}

/// The lock is on the file itself: a symlink is refused with the real path, a hard link and a
/// `..` path meet the same lock, and a dead writer's leftover note is explained, not reused.
#[test]
fn one_writer_whatever_path_names_the_journal() {
    let (dir, path) = journal_with(1);
    let real = fs::canonicalize(&path).unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    match Journal::open_for_append(&link) {
        Err(e @ JournalError::Symlink { .. }) => assert!(
            e.to_string().contains(&format!(
                "open the journal by its real path: {}",
                real.display()
            )),
            "{e}"
        ),
        other => panic!("expected Symlink, got {other:?}"),
    }
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("new.jsonl")).unwrap();
    assert!(matches!(
        Journal::create(&dir.path().join("new.jsonl")),
        Err(JournalError::Symlink { .. })
    ));

    let (first, _) = Journal::open_for_append(&path).unwrap();
    let hard = dir.path().join("hard.jsonl");
    fs::hard_link(&path, &hard).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let dotdot = dir.path().join("sub/../run.jsonl");
    for other in [&hard, &dotdot] {
        match Journal::open_for_append(other) {
            Err(JournalError::Locked { holder, .. }) => assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            ),
            other => panic!("expected Locked, got {other:?}"),
        }
    }
    let identity = first.identity();
    drop(first);
    let (by_hard_link, _) = Journal::open_for_append(&hard).unwrap();
    assert_eq!(by_hard_link.identity(), identity, "one file, one identity");
    drop(by_hard_link);

    // A note left by a writer that died (no flock behind it): explained when the lock is taken.
    fs::write(journal::lock_path(&path), "pid 999999 ghost@h since then\n").unwrap();
    let (j, _) = Journal::open_for_append(&path).unwrap();
    let stale = j.stale_lock().expect("the stale note is reported");
    assert!(
        stale.contains("ghost@h") && stale.contains("stale"),
        "{stale}"
    );
    drop(j);
    assert!(!journal::lock_path(&path).exists());
}

#[test]
fn follower_sees_appended_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let mut j = Journal::create(&path).unwrap();
    let mut f = Follower::open(&path).unwrap();
    assert!(f.poll().unwrap().is_empty());

    j.append(entry(0, "note", json!({"message": "one"})))
        .unwrap();
    j.append(entry(1, "note", json!({"message": "two"})))
        .unwrap();
    let got = f.poll().unwrap();
    assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(f.poll().unwrap().is_empty());

    // A half-written line is held back until it is complete.
    let r3 = j
        .append(entry(2, "note", json!({"message": "three"})))
        .unwrap();
    let full = fs::read(&path).unwrap();
    let third_line = full[full.len() - (r3.to_line().len() + 1)..].to_vec();
    fs::write(&path, &full[..full.len() - third_line.len()]).unwrap();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&third_line[..20]).unwrap();
    assert!(f.poll().unwrap().is_empty());
    file.write_all(&third_line[20..]).unwrap();
    assert_eq!(f.poll().unwrap(), vec![r3]);
    assert_eq!(f.last_seq(), 3);
}

#[test]
fn follower_rejects_a_broken_chain() {
    let (_dir, path) = journal_with(3);
    let mut l = lines(&path);
    l[1] = l[1].replace("record 2", "record X");
    write_lines(&path, &l);
    let mut f = Follower::open(&path).unwrap();
    // The good first record is handed out, then the damage is reported.
    assert_eq!(f.poll().unwrap().len(), 1);
    assert!(matches!(
        f.poll(),
        Err(JournalError::Tampered { seq: 2, .. })
    ));
}

#[test]
fn verify_reports_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let report = journal::verify(&dir.path().join("missing.jsonl"));
    assert!(!report.ok());
    assert!(report.io_error.is_some());
}

fn who(user: &str, sudo: Option<&str>) -> Value {
    let sudo = sudo.map(str::to_string);
    let w = Who::from_env(
        move |k| if k == "SUDO_USER" { sudo.clone() } else { None },
        user.to_string(),
        Some("/dev/pts/1".into()),
        "bastion1".into(),
    );
    serde_json::to_value(w).unwrap()
}

/// A small synthetic run: two steps, a passed and a failed gate, a confirmed and a declined
/// hard stop, an in-doubt action, a note, an unknown kind and a halt.
fn synthetic_run() -> Vec<Record> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let mut j = Journal::create(&path).unwrap();
    let e = |i, kind: &str, data| entry(i, kind, data);
    let entries = vec![
        e(0, "run_started", json!({"runbook_title": "Keystone Fernet to JWS", "runbook_name": "fernet-to-jws", "cluster": "prod-east"})),
        e(1, "step_started", json!({})).step("prepare"),
        e(2, "intent", json!({"id": "a1", "op": "keys", "action": "generate JWS keys", "detail": "ES256 on node1", "idempotent": true})).step("prepare").node("node1"),
        e(3, "outcome", json!({"id": "a1", "ok": true, "summary": "key fingerprint ab12", "duration_ms": 1534})).step("prepare").node("node1"),
        e(4, "gate_passed", json!({"op": "keys", "gate": "keys-distributed", "detail": "3/3 nodes"})).step("prepare"),
        e(5, "step_completed", json!({})).step("prepare"),
        e(6, "step_started", json!({})).step("rolling"),
        e(7, "intent", json!({"id": "a2", "op": "drain", "action": "drain", "detail": "set node2 to drain"})).step("rolling").node("node2"),
        e(8, "outcome", json!({"id": "a2", "ok": false, "summary": "socket timeout", "duration_ms": 250})).step("rolling").node("node2"),
        e(9, "gate_failed", json!({"op": "drain", "gate": "sessions-drained", "reason": "12 sessions left", "next": "wait"})).step("rolling").node("node2"),
        e(10, "hard_stop_raised", json!({"op": "readd", "id": "mixed-pool", "title": "Mixed provider pool", "hazard": "intermittent 401s", "consequence": "until the last node flips", "facts": ["node1: jws", "node2: fernet"]})).step("rolling").node("node2"),
        e(11, "hard_stop_confirmed", json!({"id": "mixed-pool", "who": who("root", Some("alice")), "state_sha256": "deadbeef"})).step("rolling"),
        e(12, "hard_stop_raised", json!({"op": "cleanup", "id": "delete-fernet", "title": "Delete the Fernet repository"})).node("node3"),
        e(13, "hard_stop_declined", json!({"id": "delete-fernet", "who": who("bob", None)})),
        e(14, "intent", json!({"id": "a3", "action": "restart", "detail": "keystone on node3"})).step("rolling").node("node3"),
        e(15, "note", json!({"message": "coffee | break\nback soon"})),
        e(16, "mystery_kind", json!([1, 2, {"x": null}])),
        e(17, "run_halted", json!({"reason": "gate sessions-drained failed", "next": "investigate node2"})),
    ];
    j.append_batch(entries).unwrap()
}

#[test]
fn markdown_report_shows_steps_hard_stops_who_and_status() {
    let md = render(&synthetic_run(), Format::Markdown);
    // Header.
    assert!(
        md.contains("# Change report: Keystone Fernet to JWS"),
        "{md}"
    );
    assert!(md.contains("| Cluster | prod-east |"), "{md}");
    assert!(md.contains("| Run | run-1 |"));
    assert!(md.contains("| Started by | alice@bastion1 |"));
    assert!(md.contains("| Status | Halted |"));
    // Steps in order with their actions and matched outcomes.
    let prepare = md.find("### 1. prepare").expect("prepare section");
    let rolling = md.find("### 2. rolling").expect("rolling section");
    assert!(prepare < rolling);
    assert!(
        md.contains(
            "| node1 | generate JWS keys | ES256 on node1 | **ok** key fingerprint ab12 (1.5 s) |"
        ),
        "{md}"
    );
    assert!(md.contains("**FAILED** socket timeout (250 ms)"));
    assert!(md.contains("no outcome recorded (in doubt)"));
    assert!(
        md.contains("Started 2026-11-29 02:31:13 UTC; not completed."),
        "{md}"
    );
    // Hard stops with who decided and when.
    let stops = md.find("## Hard stops").unwrap();
    let hs = &md[stops..];
    assert!(
        hs.contains("**Mixed provider pool** (`mixed-pool`) on node2 at 2026-11-29 02:31:17 UTC"),
        "{hs}"
    );
    assert!(hs.contains("Hazard: intermittent 401s"));
    assert!(hs.contains("Fact: node2: fernet"));
    assert!(hs.contains("**Confirmed** by alice(as root)@bastion1 at 2026-11-29 02:31:18 UTC (state sha256 `deadbeef`)"), "{hs}");
    assert!(hs.contains("**Declined** by bob@bastion1"), "{hs}");
    // Gates.
    assert!(
        md.contains("| keys-distributed | passed | 3/3 nodes |"),
        "{md}"
    );
    assert!(
        md.contains("| sessions-drained | **FAILED** | 12 sessions left — next: wait |"),
        "{md}"
    );
    // Unknown kinds and notes listed generically, table-safe.
    assert!(md.contains("| mystery_kind |"));
    assert!(md.contains("coffee \\| break back soon"), "{md}");
    // Final status with the halt reason.
    assert!(md.contains("**Halted** at 2026-11-29 02:31:24 UTC by alice@bastion1: gate sessions-drained failed — next: investigate node2"), "{md}");
}

#[test]
fn text_render_is_aligned_and_fits_100_columns() {
    let records = synthetic_run();
    let text = render(&records, Format::Text);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), records.len());
    assert!(rows.iter().all(|r| r.chars().count() <= 100), "{text}");
    assert!(rows[2].contains("02:31:09  intent"), "{}", rows[2]);
    assert!(
        rows[2].contains("#a1 generate JWS keys — ES256 on node1"),
        "{}",
        rows[2]
    );
    // Columns line up: every row has its time at the same offset.
    let at = rows[0].find("02:31:07").unwrap();
    assert!(
        rows.iter().all(|r| r.find("02:31").unwrap() == at),
        "{text}"
    );
}

#[test]
fn rendering_garbage_never_panics() {
    let garbage = [
        Value::Null,
        json!(42),
        json!("just a string"),
        json!([1, [2, [3]]]),
        json!({"id": {"nested": true}, "who": 7, "ok": "yes", "duration_ms": "slow"}),
        json!({"who": {"user": 1}, "facts": "not a list", "title": null, "runbook_title": []}),
        json!({"duration_ms": 1e308, "summary": "é🚀|\u{1b}[31m\n".repeat(50)}),
        json!({"duration_ms": -5, "id": null, "gate": {"a": "b"}}),
    ];
    let kinds = [
        "run_started",
        "step_started",
        "step_completed",
        "intent",
        "outcome",
        "gate_passed",
        "gate_failed",
        "hard_stop_raised",
        "hard_stop_confirmed",
        "hard_stop_declined",
        "run_paused",
        "run_resumed",
        "in_doubt_resolved",
        "run_halted",
        "run_completed",
        "note",
        "",
        "💥|\n",
    ];
    let mut records = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        for (k, data) in garbage.iter().enumerate() {
            records.push(Record {
                seq: (i * garbage.len() + k + 1) as u64,
                time: t0(),
                run: "r|\n".into(),
                actor: "\u{7}".into(),
                kind: kind.to_string(),
                step: (k % 2 == 0).then(|| "s".repeat(k * 40)),
                node: (k % 3 == 0).then(|| "ñ".repeat(k * 10)),
                data: data.clone(),
                prev: "not a hash".into(),
                hash: "x".into(),
            });
        }
    }
    for format in [Format::Text, Format::Json, Format::Markdown] {
        let out = render(&records, format);
        assert!(!out.is_empty());
        // Terminal escapes never reach a listing or a report (JSON keeps them escaped).
        assert!(
            !out.contains('\u{1b}'),
            "{format:?} leaks a control character"
        );
        assert!(render(&[], format).len() < 2000);
    }
    let text = render(&records, Format::Text);
    assert!(text.lines().all(|l| l.chars().count() <= 100));
}

#[test]
fn format_parses_from_cli_words() {
    assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
    assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
    assert_eq!("text".parse::<Format>(), Ok(Format::Text));
    assert!("pdf".parse::<Format>().is_err());
}

// ---- journal show for people (issue 9, items 6 and 7) ------------------------------------------

use cutover::journal::render::{Options, render_with};

/// A journal of a run of the shipped flagship runbook (its source in `run_started`, as a real
/// run records it), halted in `rolling`: preflight done, keys done (per-node), a note in keys and
/// one in close-less rolling, verify and close never reached.
fn flagship_run() -> Vec<Record> {
    use cutover::engine::Event;
    use cutover::engine::events::{RunStarted, SCHEMA};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = fs::read_to_string(root.join("runbooks/fernet-to-jws.yaml")).unwrap();
    let inventory_text = fs::read_to_string(root.join("tests/fixtures/inventory-3.yaml")).unwrap();
    let inventory =
        cutover::inventory::Inventory::parse(&inventory_text, "inventory-3.yaml").unwrap();
    // As a real run records it: the plan compiled (by the engine, on `Command::Start`).
    let started = RunStarted {
        schema: SCHEMA,
        run_id: "run-1".into(),
        runbook_name: "fernet-to-jws".into(),
        runbook_title: "Keystone tokens: Fernet → JWS".into(),
        runbook_sha256: "0".repeat(64),
        runbook_source: source,
        runbook_origin: "runbooks/fernet-to-jws.yaml".into(),
        cluster: "prod-east".into(),
        inventory,
        params: [("key_strategy".to_string(), "per-node".to_string())].into(),
        who: serde_json::from_value(who("alice", None)).unwrap(),
        plan: Vec::new(),
        plan_sha256: String::new(),
        compiled_by: String::new(),
    };
    let started = Event::RunStarted(cutover::engine::recorded::planned(started).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(&dir.path().join("run.jsonl")).unwrap();
    let e = |i, kind: &str, data| entry(i, kind, data);
    j.append_batch(vec![
        e(0, "run_started", started.data()),
        e(1, "step_started", json!({"step": "preflight"})).step("preflight"),
        e(2, "intent", json!({"id": 1, "action": "probe", "detail": "read every node"})).step("preflight"),
        e(3, "outcome", json!({"id": 1, "ok": true, "summary": "3 nodes read", "duration_ms": 12})).step("preflight"),
        e(4, "step_completed", json!({"step": "preflight"})).step("preflight"),
        e(5, "step_started", json!({"step": "keys"})).step("keys"),
        e(6, "intent", json!({"id": 2, "action": "keystone.create_jws_keypair", "detail": "generate an ES256 keypair for ks1"})).step("keys").node("ks1"),
        e(7, "outcome", json!({"id": 2, "ok": true, "summary": "keypair staged", "duration_ms": 30})).step("keys").node("ks1"),
        e(8, "note", json!({"op": 3, "message": "ks1's private key never leaves it"})).step("keys"),
        e(9, "step_completed", json!({"step": "keys"})).step("keys"),
        e(10, "step_started", json!({"step": "verify-keys"})).step("verify-keys"),
        e(11, "note", json!({"op": 5, "message": "every public key is on every node"})).step("verify-keys"),
        e(12, "step_completed", json!({"step": "verify-keys"})).step("verify-keys"),
        e(13, "step_started", json!({"step": "rolling"})).step("rolling"),
        e(14, "gate_failed", json!({"op": 6, "gate": "pool-capacity", "node": "ks1", "reason": "without ks1 the pool is empty", "next": "add a node"})).step("rolling").node("ks1"),
        e(15, "run_halted", json!({"op": 6, "node": "ks1", "reason": "gate pool-capacity failed", "next": "add a node"})).step("rolling").node("ks1"),
    ])
    .unwrap()
}

#[test]
fn text_render_tells_every_kind_in_words_not_json() {
    let records = synthetic_run();
    let text = render_with(&records, Format::Text, &Options::default());
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), records.len(), "{text}");
    let row = |kind: &str| {
        *rows
            .iter()
            .find(|r| r.contains(&format!("  {kind} ")))
            .unwrap_or_else(|| panic!("no {kind} row in\n{text}"))
    };
    assert!(
        row("step_started").ends_with("step “prepare” started"),
        "{text}"
    );
    assert!(
        row("step_completed").ends_with("step “prepare” completed"),
        "{text}"
    );
    assert!(
        row("outcome").ends_with("#a1 ok (1.5 s): key fingerprint ab12"),
        "{text}"
    );
    assert!(
        row("gate_failed").ends_with("gate sessions-drained FAILED: 12 sessions left; next: wait"),
        "{text}"
    );
    assert!(
        row("hard_stop_raised").ends_with("HARD STOP mixed-pool: Mixed provider pool"),
        "{text}"
    );
    assert!(
        row("hard_stop_confirmed")
            .ends_with("hard stop mixed-pool confirmed by alice(as root)@bastion1 (unsigned)"),
        "{text}"
    );
    assert!(
        row("run_halted")
            .ends_with("run HALTED: gate sessions-drained failed; next: investigate node2"),
        "{text}"
    );
    // A kind this version does not know: its fields, not its JSON.
    assert!(row("mystery_kind").ends_with("1: 1; 2: 2"), "{text}");
    // The run's start: runbook, cluster.
    assert!(
        row("run_started").ends_with(
            "run of Keystone Fernet to JWS (fernet-to-jws) on cluster prod-east started"
        ),
        "{text}"
    );
    for r in &rows {
        assert!(!r.contains("{\"") && !r.contains("\":"), "JSON in {r}");
    }
    // A real run's start names the fleet and who started it; step rows use the step titles.
    let flagship = render_with(&flagship_run(), Format::Text, &Options::default());
    let first = flagship.lines().next().unwrap();
    assert!(
        first.ends_with(
            "run of Keystone tokens: Fernet → JWS (fernet-to-jws) on cluster prod-east (3 nodes, \
             2 load balancers) started by alice@bastion1, run run-1; params key_strategy=per-node"
        ),
        "{first}"
    );
    assert!(
        flagship.contains("step “JWS keys (per-node)” started"),
        "{flagship}"
    );
    assert!(!flagship.contains("{\""), "{flagship}");
}

#[test]
fn text_render_cuts_nothing_without_a_width_and_cuts_to_the_width_given() {
    let mut records = synthetic_run();
    let long_note = format!("the end of this note must survive: {}END", "x".repeat(300));
    records[15].data = json!({ "message": long_note });
    records[6].step = Some("a-step-name-longer-than-fourteen-columns".into());
    let whole = render_with(&records, Format::Text, &Options::default());
    assert!(whole.contains(&long_note), "{whole}");
    assert!(
        whole.contains("a-step-name-longer-than-fourteen-columns"),
        "{whole}"
    );
    assert!(!whole.contains('…'), "{whole}");
    // Columns still line up.
    let at = whole.lines().next().unwrap().find("02:31:07").unwrap();
    assert!(
        whole.lines().all(|r| r.find("02:31").unwrap() == at),
        "{whole}"
    );
    // On a terminal of 72 columns, every line fits in 72 (the default listing keeps 100).
    let cut = render_with(
        &records,
        Format::Text,
        &Options {
            width: Some(72),
            ..Options::default()
        },
    );
    assert!(cut.lines().all(|l| l.chars().count() <= 72), "{cut}");
    assert!(cut.contains('…') && !cut.contains("END"), "{cut}");
    assert!(
        render(&records, Format::Text)
            .lines()
            .all(|l| l.chars().count() <= 100)
    );
}

#[test]
fn markdown_steps_have_their_titles_actions_and_notes() {
    let records = flagship_run();
    let md = render(&records, Format::Markdown);
    // Headings: the runbook's titles (templates rendered with the run's params), runbook order,
    // the steps never reached too.
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with("### ")).collect();
    assert_eq!(
        headings,
        [
            "### 1. Preflight (`preflight`)",
            "### 2. JWS keys (per-node) (`keys`)",
            "### 3. Verify keys everywhere (`verify-keys`)",
            "### 4. Rolling cutover (`rolling`)",
            "### 5. Verify the fleet (`verify`)",
            "### 6. Close (`close`)",
        ],
        "{md}"
    );
    let section = |n: usize| {
        let from = md.find(headings[n]).unwrap();
        let to = headings
            .get(n + 1)
            .map(|h| md.find(h).unwrap())
            .unwrap_or_else(|| md.find("## Hard stops").unwrap());
        &md[from..to]
    };
    // keys: its action and its note, under it.
    let keys = section(1);
    assert!(
        keys.contains("| ks1 | keystone.create_jws_keypair |"),
        "{keys}"
    );
    assert!(keys.contains("Notes:"), "{keys}");
    assert!(
        keys.contains("- 2026-11-29 02:31:15 UTC: ks1's private key never leaves it"),
        "{keys}"
    );
    // verify-keys: no action, but its note (not "No actions" with the note elsewhere).
    let verify_keys = section(2);
    assert!(
        verify_keys.contains("every public key is on every node")
            && !verify_keys.contains("_No actions._"),
        "{verify_keys}"
    );
    // rolling was started and has neither; verify and close were never reached.
    assert!(section(3).contains("_No actions._"), "{}", section(3));
    assert!(section(4).contains("_Not reached._"), "{}", section(4));
    assert!(section(5).contains("_Not reached._"), "{}", section(5));
    // Notes in a step are not repeated under "Other events".
    assert!(!md.contains("## Other events"), "{md}");
    // Without the runbook in the journal, headings fall back to step ids (as before).
    let plain = render(&synthetic_run(), Format::Markdown);
    assert!(plain.contains("### 1. prepare\n"), "{plain}");
}

#[test]
fn a_damaged_journal_renders_up_to_the_damage_under_a_banner() {
    let (_dir, path) = journal_with(9);
    let mut ls = lines(&path);
    ls[5] = ls[5].replace("record 6", "record 6!");
    write_lines(&path, &ls);
    assert!(!journal::verify(&path).ok());
    let read = journal::read_prefix(&path).unwrap();
    let damage = read.damage.clone().expect("damage at seq 6");
    assert_eq!(damage.seq, 6);
    let opts = Options {
        damage: Some(damage),
        ..Options::default()
    };
    let text = render_with(&read.records, Format::Text, &opts);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows.len(),
        5 + 2,
        "records 1-5 and the banner twice:\n{text}"
    );
    for banner in [rows[0], rows[6]] {
        assert!(
            banner.starts_with("DAMAGED JOURNAL: the hash chain breaks at seq 6 (line 6)")
                && banner.contains("Showing records 1 to 5"),
            "{banner}"
        );
    }
    assert!(
        rows[5].contains("record 5") && !text.contains("record 6"),
        "{text}"
    );
    let md = render_with(&read.records, Format::Markdown, &opts);
    assert!(
        md.contains("> **DAMAGED JOURNAL: the hash chain breaks at seq 6 (line 6)"),
        "{md}"
    );
    assert!(
        md.contains(
            "| Records | 5 (the journal is damaged at seq 6: nothing from there on is shown) |"
        ),
        "{md}"
    );
    assert!(
        md.contains("the journal is damaged at seq 6, and nothing from there on is shown"),
        "{md}"
    );
    // JSON stays exactly the intact lines: nothing a parser would choke on.
    let js = render_with(&read.records, Format::Json, &opts);
    assert_eq!(js, ls[..5].join("\n") + "\n");
}
