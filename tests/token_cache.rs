//! The token cache, read and explained, on the demo world: `world create --token-cache 60`
//! writes the `[cache]` section kolla-ansible writes into every node's keystone.conf; the
//! flagship's preflight reads it into each node's facts (journaled), the fold answers "cached,
//! shared, for 60 s", and the headless run says so after preflight and under the mixed-pool
//! hard stop. A world without the flag reads as a fleet that caches nothing.

mod support;

use cutover::engine::facts::{CacheVerdict, TokenCacheFacts};
use serde_json::Value;
use std::path::Path;
use support::bin::{cutover, text};
use support::journal::records;

const ANSWERS: &str = "runbooks/demo-answers.yaml";

/// A new 3-node, 1-LB world in `dir` (`--token-cache SECS` when given), then the flagship on it,
/// headless, answered from the demo answers, the meter off: (stdout, journal path).
fn run_flagship(dir: &Path, token_cache: Option<&str>) -> (String, std::path::PathBuf) {
    let world = dir.join("world");
    let mut args = vec![
        "world",
        "create",
        world.to_str().unwrap(),
        "--nodes",
        "3",
        "--lbs",
        "1",
    ];
    if let Some(secs) = token_cache {
        args.extend(["--token-cache", secs]);
    }
    let out = cutover(&args);
    assert!(out.status.success(), "world create: {}", text(&out));
    let journal = dir.join("run.journal");
    let out = cutover(&[
        "demo",
        "--headless",
        "--world",
        world.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--answers",
        ANSWERS,
        "--meter",
        "off",
    ]);
    assert_eq!(out.status.code(), Some(0), "demo: {}", text(&out));
    (String::from_utf8_lossy(&out.stdout).into_owned(), journal)
}

/// The `cache` of every node in the first outcome that observed every node (preflight's probe),
/// as journaled.
fn preflight_caches(journal: &Path) -> Vec<(String, Option<Value>)> {
    let recs = records(journal);
    let obs = recs
        .iter()
        .filter(|r| r["kind"] == "outcome")
        .filter_map(|r| r["data"]["observed"]["nodes"].as_object())
        .find(|nodes| nodes.len() == 3)
        .expect("no outcome observed all three nodes");
    obs.iter()
        .map(|(n, f)| (n.clone(), f.get("cache").cloned()))
        .collect()
}

fn fold(journal: &Path) -> cutover::engine::State {
    let read = cutover::journal::read(journal).unwrap();
    cutover::runtime::fold(&read.records).unwrap()
}

#[test]
fn preflight_reads_a_shared_token_cache_and_the_run_explains_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (stdout, journal) = run_flagship(tmp.path(), Some("60"));

    // Journaled as read: every node caches into 127.0.0.1:11211 for 60 s, [token] defaults.
    let want = TokenCacheFacts {
        enabled: true,
        backend: "oslo_cache.memcache_pool".into(),
        servers: vec!["127.0.0.1:11211".into()],
        expiration_time: 60,
        token_caching: true,
        cache_on_issue: true,
        cache_time: None,
    };
    let caches = preflight_caches(&journal);
    assert_eq!(caches.len(), 3);
    for (node, cache) in &caches {
        let cache: TokenCacheFacts = serde_json::from_value(
            cache
                .clone()
                .unwrap_or_else(|| panic!("{node}: no cache in its facts")),
        )
        .unwrap();
        assert_eq!(cache, want, "{node}");
    }

    // Folded: cached and shared, entries living 60 s.
    let state = fold(&journal);
    let fleet = state.token_cache();
    assert_eq!(fleet.verdict, CacheVerdict::Shared, "{fleet:?}");
    assert_eq!(fleet.lifetime_secs, Some(60));
    assert!(
        fleet.unread.is_empty() && fleet.notes.is_empty(),
        "{fleet:?}"
    );
    // Every node flipped: old tokens may validate from the cache for one lifetime after the
    // last flip.
    let last = state.last_flip_at.expect("a last flip");
    assert_eq!(
        state.old_tokens_cached_until(),
        Some(last + chrono::Duration::seconds(60))
    );

    // Headless: on the line of preflight's completion, and the paragraph under the mixed-pool
    // stop.
    let lines: Vec<&str> = stdout.lines().collect();
    let preflight_done = lines
        .iter()
        .find(|l| l.contains("step_completed") && l.contains("preflight"))
        .unwrap_or_else(|| panic!("no preflight completion:\n{stdout}"));
    assert!(
        preflight_done.ends_with(" token cache: SHARED (127.0.0.1:11211), entries live 1m"),
        "{preflight_done}"
    );
    let stop = lines
        .iter()
        .position(|l| l.contains("HARD STOP `mixed-pool`"))
        .unwrap_or_else(|| panic!("no mixed-pool hard stop:\n{stdout}"));
    let under: Vec<&str> = lines[stop + 1..stop + 5].iter().map(|l| l.trim()).collect();
    assert_eq!(
        under[0], "Token cache: shared (127.0.0.1:11211), entries live 1m.",
        "{stdout}"
    );
    assert!(
        under[1].starts_with("Tokens cached less than 1m ago"),
        "{under:?}"
    );
    assert!(under[2].contains("after a memcached flush"), "{under:?}");
    assert_eq!(
        under[3],
        "Old fernet tokens stop validating within 1m after the last flip, not at it."
    );
    // The run's summary names the cache's grace.
    assert!(
        stdout.contains("old tokens may still validate from the shared token cache"),
        "{stdout}"
    );
}

#[test]
fn a_world_without_a_cache_reads_as_one_that_caches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (stdout, journal) = run_flagship(tmp.path(), None);
    for (node, cache) in preflight_caches(&journal) {
        let cache: TokenCacheFacts = serde_json::from_value(cache.expect("read")).unwrap();
        assert_eq!(cache, TokenCacheFacts::default(), "{node}");
    }
    let state = fold(&journal);
    assert_eq!(state.token_cache().verdict, CacheVerdict::Off);
    assert_eq!(state.old_tokens_cached_until(), None);
    assert!(
        stdout.contains("token cache: off on every node read"),
        "{stdout}"
    );
    let stop = stdout
        .find("HARD STOP `mixed-pool`")
        .expect("a mixed-pool stop");
    assert!(
        stdout[stop..].contains("Token cache: off: no cache carries a token across providers."),
        "{stdout}"
    );
    assert!(!stdout.contains("from the shared token cache"), "{stdout}");
}
