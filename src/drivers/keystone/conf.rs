//! keystone.conf: reading the few options cutover needs and editing `[token] provider` in place,
//! keeping comments, order and every other line. Pure text functions; I/O is the caller's.

use crate::engine::facts::{
    BackendKind, DEFAULT_MEMCACHE_SERVER, DEFAULT_REDIS_SERVER, TokenCacheFacts,
};

/// The options cutover reads, with Keystone 30's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    pub provider: String,
    pub expiration: u64,
    pub allow_expired_window: u64,
    pub fernet_repo: String,
    pub receipts_repo: String,
    pub jws_private_repo: String,
    pub jws_public_repo: String,
}

/// The value of `key` in `[section]` (last assignment wins, as in oslo.config), ignoring comments.
pub fn get(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    let mut found = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.starts_with(';') || t.is_empty() {
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            current = t[1..t.len() - 1].trim().to_string();
            continue;
        }
        if current.eq_ignore_ascii_case(section)
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == key
        {
            found = Some(v.trim().to_string());
        }
    }
    found
}

pub fn token_settings(text: &str) -> TokenSettings {
    let num = |s: &str, k: &str, d: u64| get(text, s, k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let fernet = get(text, "fernet_tokens", "key_repository")
        .unwrap_or_else(|| "/etc/keystone/fernet-keys/".into());
    TokenSettings {
        provider: get(text, "token", "provider")
            .unwrap_or_else(|| crate::provider::Provider::keystone_default().to_string()),
        expiration: num("token", "expiration", 3600),
        allow_expired_window: num("token", "allow_expired_window", 172_800),
        receipts_repo: get(text, "fernet_receipts", "key_repository")
            .unwrap_or_else(|| "/etc/keystone/fernet-keys/".into()),
        fernet_repo: fernet,
        jws_private_repo: get(text, "jwt_tokens", "jws_private_key_repository")
            .unwrap_or_else(|| "/etc/keystone/jws-keys/private".into()),
        jws_public_repo: get(text, "jwt_tokens", "jws_public_key_repository")
            .unwrap_or_else(|| "/etc/keystone/jws-keys/public".into()),
    }
}

/// An oslo.config boolean (`true`/`1`/`on`/`yes`, `false`/`0`/`off`/`no`, any case); None for
/// anything else (Keystone would refuse to start).
fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// `[cache]` (enabled, backend, memcache_servers or redis_server, expiration_time) and
/// `[token]` (caching, cache_on_issue, cache_time), with Keystone 30's defaults where absent or
/// unreadable.
pub fn cache_settings(text: &str) -> TokenCacheFacts {
    let d = TokenCacheFacts::default();
    let flag = |s: &str, k: &str, d: bool| get(text, s, k).and_then(|v| boolean(&v)).unwrap_or(d);
    let num = |s: &str, k: &str| get(text, s, k).and_then(|v| v.trim().parse::<u64>().ok());
    let list = |s: &str, k: &str, d: &str| {
        let v = get(text, s, k).unwrap_or_else(|| d.to_string());
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let backend = get(text, "cache", "backend")
        .filter(|b| !b.trim().is_empty())
        .unwrap_or(d.backend);
    let servers = match BackendKind::of(&backend) {
        BackendKind::Memcache => list("cache", "memcache_servers", DEFAULT_MEMCACHE_SERVER),
        BackendKind::Redis => list("cache", "redis_server", DEFAULT_REDIS_SERVER),
        _ => vec![],
    };
    TokenCacheFacts {
        enabled: flag("cache", "enabled", d.enabled),
        backend,
        servers,
        expiration_time: num("cache", "expiration_time").unwrap_or(d.expiration_time),
        token_caching: flag("token", "caching", d.token_caching),
        cache_on_issue: flag("token", "cache_on_issue", d.cache_on_issue),
        cache_time: num("token", "cache_time"),
    }
}

/// Set `[token] provider = value`. An active assignment is replaced where it stands; otherwise
/// the line goes after a commented-out `#provider =` in `[token]`, or right after the `[token]`
/// header, or in a new `[token]` section at the end. Every other byte is kept.
pub fn set_provider(text: &str, value: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut section = String::new();
    let mut header: Option<usize> = None;
    let mut commented: Option<usize> = None;
    let mut active: Vec<usize> = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let t = raw.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_lowercase();
            if section == "token" && header.is_none() {
                header = Some(i);
            }
            continue;
        }
        if section != "token" {
            continue;
        }
        let uncommented = t.trim_start_matches(['#', ';']).trim_start();
        if let Some((k, _)) = uncommented.split_once('=')
            && k.trim() == "provider"
        {
            if t.starts_with('#') || t.starts_with(';') {
                commented.get_or_insert(i);
            } else {
                active.push(i);
            }
        }
    }
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let new_line = format!("provider = {value}{eol}");
    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    if let Some(&last) = active.last() {
        // oslo.config takes the last assignment: replace it, keep the rest as they are.
        let keep_eol = out[last].ends_with('\n');
        out[last] = if keep_eol {
            new_line
        } else {
            new_line.trim_end().to_string()
        };
    } else if let Some(after) = commented.or(header) {
        // After the commented-out line, else after the header. A file whose last line that is
        // gets its line end first (and the new line none, as the file had none).
        if out[after].ends_with('\n') {
            out.insert(after + 1, new_line);
        } else {
            out[after].push_str(eol);
            out.insert(after + 1, new_line.trim_end().to_string());
        }
    } else {
        let mut tail = String::new();
        if !text.is_empty() && !text.ends_with('\n') {
            tail.push_str(eol);
        }
        tail.push_str(&format!("{eol}[token]{eol}{new_line}"));
        out.push(tail);
    }
    out.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "[DEFAULT]\n# provider = nothing here\ndebug = false\n\n[token]\n# The provider.\n#provider = fernet\nexpiration = 7200\n\n[fernet_tokens]\nkey_repository = /k/\n";

    #[test]
    fn a_last_line_without_its_newline_stays_a_line() {
        // Found by tests/fuzz.rs: the new line was glued to `[token]`.
        assert_eq!(set_provider("[token]", "jws"), "[token]\nprovider = jws");
        assert_eq!(
            set_provider("[token]\r\n#provider = fernet", "jws"),
            "[token]\r\n#provider = fernet\r\nprovider = jws"
        );
        assert_eq!(
            get(&set_provider("[token]", "jws"), "token", "provider").as_deref(),
            Some("jws")
        );
    }

    #[test]
    fn cache_defaults_are_keystone_30s() {
        let c = cache_settings(CONF);
        assert_eq!(c, TokenCacheFacts::default());
        assert!(!c.enabled);
        assert_eq!(c.backend, "dogpile.cache.null");
        assert!(c.servers.is_empty(), "the null backend has no server");
        assert_eq!(c.expiration_time, 600);
        assert!(c.token_caching && c.cache_on_issue);
        assert_eq!(c.cache_time, None);
        assert_eq!(cache_settings(""), TokenCacheFacts::default());
    }

    #[test]
    fn cache_reads_each_option() {
        let c = cache_settings(
            "[cache]\nenabled = True\nbackend = dogpile.cache.pymemcache\n\
             memcache_servers = 10.0.0.5:11211, 10.0.0.6:11211\nexpiration_time = 120\n\
             [token]\ncaching = off\ncache_on_issue = 0\ncache_time = 45\n",
        );
        assert!(c.enabled);
        assert_eq!(c.backend, "dogpile.cache.pymemcache");
        assert_eq!(c.servers, vec!["10.0.0.5:11211", "10.0.0.6:11211"]);
        assert_eq!(c.expiration_time, 120);
        assert!(!c.token_caching);
        assert!(!c.cache_on_issue);
        assert_eq!(c.cache_time, Some(45));
        assert_eq!(c.lifetime_secs(), 45);
        assert!(!c.caches_tokens(), "both token options off");

        // A memcache backend without memcache_servers talks to oslo.cache's default.
        let c = cache_settings("[cache]\nenabled = yes\nbackend = dogpile.cache.memcached\n");
        assert_eq!(c.servers, vec!["localhost:11211"]);
        assert!(c.caches_tokens());
        // Redis names its one server elsewhere.
        let c = cache_settings(
            "[cache]\nenabled = true\nbackend = dogpile.cache.redis\nredis_server = 10.0.0.9:6379\n",
        );
        assert_eq!(c.servers, vec!["10.0.0.9:6379"]);
        // What Keystone would refuse to start with reads as the default, never as "on".
        let c = cache_settings("[cache]\nenabled = maybe\nexpiration_time = soon\n");
        assert!(!c.enabled);
        assert_eq!(c.expiration_time, 600);
        // Commented-out options and other sections do not count.
        let c = cache_settings(
            "[cache]\n#enabled = true\n[DEFAULT]\nenabled = true\n[token]\n# cache_time = 5\n",
        );
        assert!(!c.enabled);
        assert_eq!(c.cache_time, None);
    }

    #[test]
    fn cache_as_kolla_and_openstack_ansible_write_it() {
        // kolla-ansible's keystone.conf: memcache_pool over every controller's memcached,
        // [token] left at its defaults.
        let kolla = "[DEFAULT]\ndebug = False\n\n[token]\nrevoke_by_id = False\nprovider = fernet\n\
                     expiration = 86400\nallow_expired_window = 172800\n\n[cache]\n\
                     backend = oslo_cache.memcache_pool\nenabled = True\n\
                     memcache_servers = 192.168.1.11:11211,192.168.1.12:11211,192.168.1.13:11211\n";
        let c = cache_settings(kolla);
        assert!(c.caches_tokens());
        assert_eq!(c.servers.len(), 3);
        assert!(!c.servers_local());
        assert_eq!(c.lifetime_secs(), 600);
        assert_eq!(token_settings(kolla).provider, "fernet");
        // OpenStack-Ansible's: [token] cache_time = 3600, its memcached containers.
        let osa = "[cache]\nbackend = oslo_cache.memcache_pool\n\
                   memcache_servers = 172.29.236.100:11211,172.29.236.101:11211\n\
                   config_prefix = cache.keystone\ndistributed_lock = True\nenabled = true\n\n\
                   [token]\nprovider = fernet\nexpiration = 43200\ncache_time = 3600\n";
        let c = cache_settings(osa);
        assert!(c.caches_tokens());
        assert_eq!(c.lifetime_secs(), 3600);
        assert_eq!(
            c.cell(),
            "memcache_pool 172.29.236.100:11211,172.29.236.101:11211, 1h"
        );
    }

    #[test]
    fn reads_with_defaults() {
        let s = token_settings(CONF);
        assert_eq!(s.provider, "fernet");
        assert_eq!(s.expiration, 7200);
        assert_eq!(s.allow_expired_window, 172_800);
        assert_eq!(s.fernet_repo, "/k/");
        assert_eq!(s.receipts_repo, "/etc/keystone/fernet-keys/");
    }

    #[test]
    fn inserts_after_commented_default_keeping_everything_else() {
        let out = set_provider(CONF, "jws");
        assert_eq!(
            out,
            CONF.replace(
                "#provider = fernet\n",
                "#provider = fernet\nprovider = jws\n"
            )
        );
        assert_eq!(get(&out, "token", "provider").as_deref(), Some("jws"));
        assert_eq!(get(&out, "DEFAULT", "provider"), None);
    }

    #[test]
    fn replaces_active_line_and_is_idempotent() {
        let once = set_provider(CONF, "jws");
        let back = set_provider(&once, "fernet");
        assert_eq!(get(&back, "token", "provider").as_deref(), Some("fernet"));
        assert_eq!(back.lines().count(), once.lines().count());
        assert_eq!(set_provider(&back, "fernet"), back);
    }

    #[test]
    fn adds_section_when_missing() {
        let out = set_provider("[DEFAULT]\ndebug = true", "jws");
        assert_eq!(out, "[DEFAULT]\ndebug = true\n\n[token]\nprovider = jws\n");
        let out = set_provider("[database]\nx = 1\n[token]\nexpiration = 1\n", "jws");
        assert_eq!(
            out,
            "[database]\nx = 1\n[token]\nprovider = jws\nexpiration = 1\n"
        );
    }
}
