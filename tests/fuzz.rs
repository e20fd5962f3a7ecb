//! Property tests: the parsers of everything cutover reads from outside (runbooks, inventories,
//! answers files, journals, keystone.conf, HAProxy's runtime API) never panic on arbitrary input,
//! their errors say where, the keystone.conf editor changes only the line it means to, the
//! HAProxy parsers read back the tables they are given, and no single-byte change to a journal
//! passes its verification.
//!
//! Bounded for the normal suite (256 cases per property unless `PROPTEST_CASES` says otherwise);
//! `tests/fuzz.sh` runs the same properties with 100000 cases each.

use cutover::drivers::keystone::conf as keystone_conf;
use cutover::drivers::lb::haproxy;
use cutover::inventory::Inventory;
use cutover::journal::{self, Entry, Journal};
use cutover::runbook::Runbook;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary text that looks enough like YAML to reach past the tokenizer: fragments of real
/// runbooks and inventories, indentation, punctuation and arbitrary characters.
fn yamlish() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("name: ".to_string()),
        Just("title: ".to_string()),
        Just("target_provider: jws\n".to_string()),
        Just("steps:\n".to_string()),
        Just("  - id: s1\n".to_string()),
        Just("    scope: each-node\n".to_string()),
        Just("    do:\n".to_string()),
        Just("      - lb.drain: {timeout: 60s}\n".to_string()),
        Just("      - gate: out-of-pool\n".to_string()),
        Just("      - confirm: {id: x, title: t, message: m}\n".to_string()),
        Just("cluster: c\n".to_string()),
        Just("nodes:\n".to_string()),
        Just("  - name: node1\n    keystone_url: http://127.0.0.1:5000\n".to_string()),
        Just("load_balancers:\n".to_string()),
        Just("    reach: local\n    socket: /tmp/s\n".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!str ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("{{ node }}".to_string()),
        "[a-z0-9_.-]{0,8}".prop_map(|s| s),
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ];
    prop::collection::vec(frag, 0..40).prop_map(|v| v.concat())
}

/// A real runbook with one byte range replaced by arbitrary text.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    (0..text.len(), 0usize..16, yamlish()).prop_map(move |(at, len, with)| {
        let mut at = at;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + len).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        format!("{}{}{}", &text[..at], with, &text[end..])
    })
}

const FLAGSHIP: &str = include_str!("../runbooks/fernet-to-jws.yaml");
const INVENTORY: &str = "cluster: fuzz\nnodes:\n  - name: node1\n    keystone_url: http://127.0.0.1:5001\n  - name: node2\n    keystone_url: http://127.0.0.1:5002\nload_balancers:\n  - name: haproxy-1\n    reach: local\n    socket: /tmp/haproxy-1.sock\n    backend: keystone_api\n";

/// An error message names the origin, with a `:line:column` when the YAML itself is at fault.
fn located(msg: &str, origin: &str) -> bool {
    msg.starts_with(origin) || msg.contains(&format!("cannot read {origin}"))
}

/// `origin:LINE:COLUMN: ...`
fn with_line_col(msg: &str, origin: &str) -> bool {
    let Some(rest) = msg.strip_prefix(origin).and_then(|r| r.strip_prefix(':')) else {
        return false;
    };
    let mut parts = rest.splitn(3, ':');
    let num =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    num(parts.next()) && num(parts.next())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn runbook_parser_never_panics(text in prop_oneof![yamlish(), mutated(FLAGSHIP), any::<String>()]) {
        if let Err(e) = Runbook::parse(&text, "fuzz.yaml") {
            let msg = e.to_string();
            prop_assert!(located(&msg, "fuzz.yaml"), "no location: {msg}");
            // Text that is not even YAML is located to its line and column.
            if serde_yaml::from_str::<serde_yaml::Value>(&text).is_err() {
                prop_assert!(with_line_col(&msg, "fuzz.yaml"), "no line:column: {msg}");
            }
        }
    }

    #[test]
    fn inventory_parser_never_panics(text in prop_oneof![yamlish(), mutated(INVENTORY), any::<String>()]) {
        if let Err(e) = Inventory::parse(&text, "inv.yaml") {
            let msg = e.to_string();
            prop_assert!(located(&msg, "inv.yaml"), "no location: {msg}");
            if serde_yaml::from_str::<serde_yaml::Value>(&text).is_err() {
                prop_assert!(with_line_col(&msg, "inv.yaml"), "no line:column: {msg}");
            }
        }
    }

    #[test]
    fn answers_parser_never_panics(text in prop_oneof![
        yamlish(),
        any::<String>(),
        prop::collection::btree_map("[a-z@0-9-]{1,12}", "[a-z-]{0,10}", 0..6).prop_map(|m| {
            m.iter().map(|(k, v)| format!("{k}: {v}\n")).collect::<String>()
        }),
    ]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers.yaml");
        std::fs::write(&path, &text).unwrap();
        match cutover::runtime::load_answers(&path) {
            Ok(a) => {
                for v in a.values() {
                    prop_assert!(["confirm", "decline", "mark-done"].contains(&v.as_str()));
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains(&path.display().to_string()), "no location: {msg}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------ journal

/// The bytes of a valid journal of `n` records.
fn valid_journal(n: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let mut j = Journal::create(&path).unwrap();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-29T02:31:07.123456Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for i in 0..n {
        let e = Entry::new(
            t0 + chrono::Duration::seconds(i as i64),
            "run-1",
            "alice@bastion1",
            "note",
            serde_json::json!({"message": format!("record {}", i + 1), "n": i}),
        );
        let e = if i % 2 == 1 {
            e.node("node1").step("rolling")
        } else {
            e
        };
        j.append(e).unwrap();
    }
    drop(j);
    std::fs::read(&path).unwrap()
}

fn verify_bytes(bytes: &[u8]) -> journal::VerifyReport {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    std::fs::write(&path, bytes).unwrap();
    // Reading must agree with verifying: no panic either way.
    let _ = journal::read(&path);
    journal::verify(&path)
}

/// Intact: every one of `n` records verified, nothing torn, nothing broken.
fn intact(r: &journal::VerifyReport, n: usize) -> bool {
    r.ok() && r.torn_tail.is_none() && r.records == n
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn journal_verify_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = verify_bytes(&bytes);
    }

    #[test]
    fn journal_lines_of_garbage_never_panic(
        keep in 0usize..4,
        tail in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        // A valid prefix followed by arbitrary bytes (what a crash or a bad disk leaves).
        let mut bytes = valid_journal(4);
        let cut: Vec<usize> = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
        bytes.truncate(if keep == 0 { 0 } else { cut[keep - 1] });
        bytes.extend_from_slice(&tail);
        let r = verify_bytes(&bytes);
        // The garbage never forms records of the chain: exactly the valid prefix verifies.
        prop_assert_eq!(r.records, keep);
    }

    #[test]
    fn every_single_byte_change_is_caught(at in any::<prop::sample::Index>(), to in any::<u8>()) {
        const N: usize = 5;
        let valid = valid_journal(N);
        prop_assert!(intact(&verify_bytes(&valid), N));
        let i = at.index(valid.len());
        let mut bytes = valid.clone();
        bytes[i] = to;
        let r = verify_bytes(&bytes);
        if bytes == valid {
            prop_assert!(intact(&r, N));
        } else {
            prop_assert!(!intact(&r, N), "byte {i} changed to {to:#04x} and the journal still verifies");
        }
    }
}

// ------------------------------------------------------------------------------ keystone.conf

fn conf_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[DEFAULT]".to_string()),
        Just("[token]".to_string()),
        Just("[TOKEN]".to_string()),
        Just("[ token ]".to_string()),
        Just("[fernet_tokens]".to_string()),
        Just("[jwt_tokens]".to_string()),
        Just("provider = fernet".to_string()),
        Just("provider=uuid".to_string()),
        Just("  provider = jws  ".to_string()),
        Just("#provider = fernet".to_string()),
        Just("; provider = fernet".to_string()),
        Just("# provider".to_string()),
        Just("expiration = 3600".to_string()),
        Just("key_repository = /etc/keystone/fernet-keys/".to_string()),
        Just(String::new()),
        "[a-z_]{1,12} ?= ?[a-zA-Z0-9/_.:-]{0,16}",
        "#[ -~]{0,20}",
        "[ -~]{0,24}",
    ]
}

fn conf_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(conf_line(), 0..16),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, crlf, final_eol)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut t = lines.join(eol);
            if final_eol && !t.is_empty() {
                t.push_str(eol);
            }
            t
        })
}

/// The output is the input with exactly one line replaced by, or one line inserted as,
/// `provider = value` in `[token]`, or the input followed by a new `[token]` section.
fn only_provider_changed(before: &str, after: &str, value: &str) -> Result<(), String> {
    let wanted = format!("provider = {value}");
    let a: Vec<&str> = before.split_inclusive('\n').collect();
    let b: Vec<&str> = after.split_inclusive('\n').collect();
    let is_new = |l: &str| l.trim_end_matches(['\r', '\n']) == wanted;
    if let Some(tail) = after.strip_prefix(before)
        && let Some(t) = tail
            .trim_start_matches(['\r', '\n'])
            .strip_prefix("[token]")
    {
        return if t.trim_matches(['\r', '\n']) == wanted {
            Ok(())
        } else {
            Err(format!("appended {tail:?}"))
        };
    }
    if a.len() == b.len() {
        let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        return match diff.as_slice() {
            [i] if is_new(b[*i]) => Ok(()),
            _ => Err(format!("lines {diff:?} changed")),
        };
    }
    if b.len() == a.len() + 1 {
        for i in 0..b.len() {
            if !is_new(b[i]) {
                continue;
            }
            let mut rest: Vec<String> = b.iter().map(|l| l.to_string()).collect();
            rest.remove(i);
            // Inserted after a last line without its newline: that line got one.
            if !b[i].ends_with('\n') && i > 0 {
                let l = &mut rest[i - 1];
                l.truncate(l.trim_end_matches(['\r', '\n']).len());
            }
            if rest == a {
                return Ok(());
            }
        }
    }
    Err("more than the provider line changed".into())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn set_provider_changes_only_the_provider(text in conf_text(), value in "[a-z][a-z0-9_]{0,9}") {
        let out = keystone_conf::set_provider(&text, &value);
        prop_assert_eq!(keystone_conf::get(&out, "token", "provider"), Some(value.clone()), "{:?} -> {:?}", text, out);
        if let Err(e) = only_provider_changed(&text, &out, &value) {
            prop_assert!(false, "{}: {:?} -> {:?}", e, text, out);
        }
        // Setting it again changes nothing more.
        prop_assert_eq!(keystone_conf::set_provider(&out, &value), out.clone());
    }

    #[test]
    fn keystone_conf_reader_never_panics(text in any::<String>()) {
        let _ = keystone_conf::token_settings(&text);
        let out = keystone_conf::set_provider(&text, "jws");
        let _ = keystone_conf::get(&out, "token", "provider");
    }
}

// ------------------------------------------------------------------------------------ HAProxy

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,10}"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn haproxy_parsers_never_panic(text in prop_oneof![
        any::<String>(),
        "(# [a-z_ ,]{0,60}\n)?([ -~]{0,60}\n){0,6}",
        "1\n# be_id be_name srv_id srv_name srv_op_state srv_admin_state\n([0-9a-z ]{0,30}\n){0,4}",
        "# pxname,svname,scur,status\n([a-zA-Z0-9, /]{0,30}\n){0,4}",
    ]) {
        let _ = haproxy::parse_servers_state(&text);
        let _ = haproxy::parse_stat(&text);
        let _ = haproxy::reload_facts(&text, "keystone_api");
    }

    #[test]
    fn servers_state_round_trips(
        rows in prop::collection::btree_map((name(), name()), (0u8..3, 0u32..128), 0..8),
    ) {
        let mut text = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight\n");
        for (i, ((be, srv), (op, admin))) in rows.iter().enumerate() {
            text.push_str(&format!("3 {be} {} {srv} 127.0.0.1 {op} {admin} 1 1\n", i + 1));
        }
        let parsed = haproxy::parse_servers_state(&text).map_err(TestCaseError::fail)?;
        let back: BTreeMap<(String, String), (u8, u32)> = parsed
            .into_iter()
            .map(|s| ((s.backend, s.server), (s.op_state, s.admin_bits)))
            .collect();
        prop_assert_eq!(back, rows);
    }

    #[test]
    fn show_stat_round_trips(
        rows in prop::collection::btree_map(
            (name(), name().prop_filter("not a proxy row", |s| s != "FRONTEND" && s != "BACKEND")),
            (0u64..100_000, prop_oneof![Just("UP"), Just("UP 1/3"), Just("DOWN"), Just("MAINT"), Just("DRAIN"), Just("no check")]),
            0..8,
        ),
    ) {
        let mut text = String::from("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,status,weight\n");
        let backends: std::collections::BTreeSet<&String> = rows.keys().map(|(b, _)| b).collect();
        for b in &backends {
            text.push_str(&format!("{b},FRONTEND,,,0,0,100,0,0,0,OPEN,\n"));
        }
        for ((be, srv), (scur, status)) in &rows {
            text.push_str(&format!("{be},{srv},0,0,{scur},3,,9,100,200,{status},1\n"));
        }
        for b in &backends {
            text.push_str(&format!("{b},BACKEND,0,0,0,1,10,0,0,0,UP,1\n"));
        }
        let parsed = haproxy::parse_stat(&text).map_err(TestCaseError::fail)?;
        let back: BTreeMap<(String, String), (u64, String)> = parsed
            .into_iter()
            .map(|(k, r)| (k, (r.scur, r.status)))
            .collect();
        let want: BTreeMap<(String, String), (u64, String)> = rows
            .into_iter()
            .map(|(k, (scur, status))| (k, (scur, status.to_string())))
            .collect();
        prop_assert_eq!(back, want);
    }
}
