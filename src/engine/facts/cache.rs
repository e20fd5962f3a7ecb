//! Keystone's token cache as each node's keystone.conf sets it, and what it means for the fleet.
//!
//! With `[cache] enabled` and one memcached shared by every node (how kolla-ansible and
//! OpenStack-Ansible deploy Keystone), a token's validation is cached under its id when it is
//! issued and when a node's provider validates it, and a node that finds the entry never asks
//! its own provider (KEYSTONE-NOTES.md, "A shared token cache changes the mixed window"): during
//! a mixed pool fresh tokens validate on nodes of either provider for one cache lifetime, and
//! old-provider tokens keep validating for up to one lifetime after the last flip. Without a
//! shared cache every validation landing on a node of the other provider fails.

use super::humanize;
use serde::{Deserialize, Serialize};

/// The hard stop before a re-add mixes providers in the pool: it says what the token cache makes
/// of the mixed window (`State::cache_explanation`).
pub const MIXED_POOL_STOP: &str = "mixed-pool";
/// The halves' swap hard stop: it says which old tokens survive the swap
/// (`State::swap_cache_explanation`).
pub const SWAP_STOP: &str = "halves-swap";

/// Keystone 30's `[cache] expiration_time` default, seconds.
pub const DEFAULT_EXPIRATION_TIME: u64 = 600;
/// oslo.cache's `[cache] backend` default: caches nothing.
pub const NULL_BACKEND: &str = "dogpile.cache.null";
/// oslo.cache's `[cache] memcache_servers` default.
pub const DEFAULT_MEMCACHE_SERVER: &str = "localhost:11211";
/// oslo.cache's `[cache] redis_server` default.
pub const DEFAULT_REDIS_SERVER: &str = "localhost:6379";

/// A node's `[cache]` and `[token]` caching options, Keystone 30's defaults where absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenCacheFacts {
    /// `[cache] enabled` (default false: nothing is cached).
    pub enabled: bool,
    /// `[cache] backend` (default `dogpile.cache.null`).
    pub backend: String,
    /// The servers the backend talks to, as written: `[cache] memcache_servers` for the
    /// memcache backends (default `localhost:11211`), `[cache] redis_server` for redis; empty
    /// for backends without a server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// `[cache] expiration_time`, seconds (default 600).
    pub expiration_time: u64,
    /// `[token] caching` (default true): validations are cached.
    pub token_caching: bool,
    /// `[token] cache_on_issue` (default true, deprecated): issued tokens are cached.
    pub cache_on_issue: bool,
    /// `[token] cache_time`, seconds (default unset: `expiration_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_time: Option<u64>,
}

impl Default for TokenCacheFacts {
    fn default() -> Self {
        TokenCacheFacts {
            enabled: false,
            backend: NULL_BACKEND.into(),
            servers: vec![],
            expiration_time: DEFAULT_EXPIRATION_TIME,
            token_caching: true,
            cache_on_issue: true,
            cache_time: None,
        }
    }
}

/// What kind of store a `[cache] backend` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `dogpile.cache.null`: caches nothing.
    Null,
    /// In the Keystone process itself (`dogpile.cache.memory`, `oslo_cache.dict`): never
    /// shared, emptied by a restart.
    InProcess,
    /// A memcached client (`oslo_cache.memcache_pool`, `dogpile.cache.memcached`,
    /// `dogpile.cache.pymemcache`, `dogpile.cache.bmemcached`, `dogpile.cache.pylibmc`).
    Memcache,
    /// A redis client (`dogpile.cache.redis`, `dogpile.cache.redis_sentinel`).
    Redis,
    /// Anything else (etcd, mongo, a custom one): whether it is shared is not known.
    Other,
}

impl BackendKind {
    pub fn of(backend: &str) -> BackendKind {
        match backend.trim() {
            "dogpile.cache.null" | "" => BackendKind::Null,
            "dogpile.cache.memory" | "dogpile.cache.memory_pickle" | "oslo_cache.dict" => {
                BackendKind::InProcess
            }
            "oslo_cache.memcache_pool"
            | "dogpile.cache.memcached"
            | "dogpile.cache.pymemcache"
            | "dogpile.cache.bmemcached"
            | "dogpile.cache.pylibmc" => BackendKind::Memcache,
            "dogpile.cache.redis" | "dogpile.cache.redis_sentinel" => BackendKind::Redis,
            _ => BackendKind::Other,
        }
    }
}

impl TokenCacheFacts {
    pub fn backend_kind(&self) -> BackendKind {
        BackendKind::of(&self.backend)
    }

    /// Whether this node caches token validations at all: the cache is enabled with a backend
    /// that stores, and `[token] caching` or `cache_on_issue` is on (either alone still stores
    /// a token when it is issued; only both off is strict).
    pub fn caches_tokens(&self) -> bool {
        self.enabled
            && self.backend_kind() != BackendKind::Null
            && (self.token_caching || self.cache_on_issue)
    }

    /// How long a cached validation lives: `[token] cache_time`, else `[cache]
    /// expiration_time`.
    pub fn lifetime_secs(&self) -> u64 {
        self.cache_time.unwrap_or(self.expiration_time)
    }

    /// Every server is on the node's own host (loopback, `localhost`, a UNIX socket): such a
    /// cache is shared only by nodes on one host.
    pub fn servers_local(&self) -> bool {
        !self.servers.is_empty() && self.servers.iter().all(|s| is_local_server(s))
    }

    /// One cell: `off`, `memcache_pool 10.0.0.5:11211, 10m`, `memory (in-process), 10m`.
    pub fn cell(&self) -> String {
        if !self.caches_tokens() {
            return if !self.enabled {
                "off".into()
            } else if self.backend_kind() == BackendKind::Null {
                "off (null backend)".into()
            } else {
                "off ([token] caching and cache_on_issue false)".into()
            };
        }
        let short = self.backend.rsplit('.').next().unwrap_or(&self.backend);
        let place = match self.backend_kind() {
            BackendKind::InProcess => "in-process".to_string(),
            _ if self.servers.is_empty() => "?".to_string(),
            _ => self.servers.join(","),
        };
        format!("{short} {place}, {}", humanize(self.lifetime_secs()))
    }
}

/// `127.0.0.1:11211`, `localhost:11211`, `inet6:[::1]:11211`, `unix:/run/memcached.sock`: on the
/// node's own host.
pub fn is_local_server(server: &str) -> bool {
    let s = server.trim();
    if s.starts_with("unix:") || s.starts_with('/') {
        return true;
    }
    let s = s
        .strip_prefix("inet6:")
        .or_else(|| s.strip_prefix("inet:"))
        .unwrap_or(s);
    is_local_host(&host_of(s))
}

/// The host of `host:port`, `[v6]:port`, `http://host:port/path`, lower-cased.
pub fn host_of(addr: &str) -> String {
    let s = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    let s = s.split(['/', '?']).next().unwrap_or(s);
    let s = s.rsplit_once('@').map_or(s, |(_, h)| h);
    let host = if let Some(rest) = s.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if s.matches(':').count() > 1 {
        s
    } else {
        s.split(':').next().unwrap_or(s)
    };
    host.to_ascii_lowercase()
}

/// `localhost`, `127.x.y.z`, `::1`.
pub fn is_local_host(host: &str) -> bool {
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// What the fleet's token cache means for a mixed pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheVerdict {
    /// No node's cache settings were read yet.
    Unknown,
    /// No node caches tokens.
    Off,
    /// Every node caches into the same store: tokens cross providers from the cache.
    Shared,
    /// Every node caches, but not into one store: nothing crosses nodes.
    NotShared,
    /// Some nodes cache and others do not.
    Mixed,
}

/// The fleet's token cache, answered once (see `State::token_cache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetCache {
    pub verdict: CacheVerdict,
    /// How long a cached validation lives: the longest lifetime among the nodes that cache.
    pub lifetime_secs: Option<u64>,
    /// The shared store's servers (verdict `Shared`).
    pub servers: Vec<String>,
    /// Nodes whose cache settings were not read.
    pub unread: Vec<String>,
    /// Where the nodes disagree, and why the cache is not shared: one line each.
    pub notes: Vec<String>,
}

/// One node as the fleet question sees it: name, its cache settings (None: not read), the host
/// its Keystone answers on (from the inventory's keystone_url).
pub struct NodeCache<'a> {
    pub name: &'a str,
    pub cache: Option<&'a TokenCacheFacts>,
    pub host: String,
}

impl FleetCache {
    pub fn of(nodes: &[NodeCache<'_>]) -> FleetCache {
        let unread: Vec<String> = nodes
            .iter()
            .filter(|n| n.cache.is_none())
            .map(|n| n.name.to_string())
            .collect();
        let read: Vec<(&NodeCache, &TokenCacheFacts)> = nodes
            .iter()
            .filter_map(|n| n.cache.map(|c| (n, c)))
            .collect();
        let mut fleet = FleetCache {
            verdict: CacheVerdict::Unknown,
            lifetime_secs: None,
            servers: vec![],
            unread,
            notes: vec![],
        };
        if read.is_empty() {
            return fleet;
        }
        let (caching, plain): (Vec<_>, Vec<_>) =
            read.iter().copied().partition(|(_, c)| c.caches_tokens());
        let names = |v: &[(&NodeCache, &TokenCacheFacts)]| {
            v.iter().map(|(n, _)| n.name).collect::<Vec<_>>().join(", ")
        };
        if caching.is_empty() {
            fleet.verdict = CacheVerdict::Off;
            return fleet;
        }
        let lifetimes: Vec<u64> = caching.iter().map(|(_, c)| c.lifetime_secs()).collect();
        fleet.lifetime_secs = lifetimes.iter().copied().max();
        if lifetimes.iter().any(|l| *l != lifetimes[0]) {
            fleet.notes.push(format!(
                "cache lifetimes differ: {}",
                caching
                    .iter()
                    .map(|(n, c)| format!("{} {}", n.name, humanize(c.lifetime_secs())))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !plain.is_empty() {
            fleet.verdict = CacheVerdict::Mixed;
            fleet.notes.insert(
                0,
                format!(
                    "nodes disagree: {} cache tokens, {} do not",
                    names(&caching),
                    names(&plain)
                ),
            );
            return fleet;
        }
        fleet.verdict = CacheVerdict::NotShared;
        let first = caching[0].1;
        if let Some((n, c)) = caching
            .iter()
            .find(|(_, c)| c.backend_kind() == BackendKind::InProcess)
        {
            fleet.notes.push(format!(
                "{}'s backend {} lives in each Keystone process: never shared",
                n.name, c.backend
            ));
            return fleet;
        }
        if let Some((n, c)) = caching
            .iter()
            .find(|(_, c)| c.backend_kind() == BackendKind::Other)
        {
            fleet.notes.push(format!(
                "{}'s backend {} is not one cutover knows: whether it is shared is not known",
                n.name, c.backend
            ));
            return fleet;
        }
        let differ: Vec<_> = caching
            .iter()
            .filter(|(_, c)| c.servers != first.servers || c.backend_kind() != first.backend_kind())
            .collect();
        if !differ.is_empty() {
            fleet.notes.push(format!(
                "nodes name different cache servers: {}",
                caching
                    .iter()
                    .map(|(n, c)| format!("{} {}", n.name, c.servers.join(",")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            return fleet;
        }
        if first.servers_local() {
            let hosts: std::collections::BTreeSet<String> = caching
                .iter()
                .map(|(n, _)| {
                    if is_local_host(&n.host) {
                        "localhost".to_string()
                    } else {
                        n.host.clone()
                    }
                })
                .collect();
            if hosts.len() > 1 {
                fleet.notes.push(format!(
                    "cache server {} is each node's own host, and the nodes are on {} hosts",
                    first.servers.join(","),
                    hosts.len()
                ));
                return fleet;
            }
        }
        fleet.verdict = CacheVerdict::Shared;
        fleet.servers = first.servers.clone();
        fleet
    }

    /// Whether tokens cross providers through the cache.
    pub fn shared(&self) -> bool {
        self.verdict == CacheVerdict::Shared
    }

    /// The headless preflight line and the details pane's fleet line.
    pub fn line(&self) -> String {
        let life = self.lifetime_secs.map(humanize).unwrap_or_default();
        let mut s = match self.verdict {
            CacheVerdict::Unknown => "token cache: not read yet".to_string(),
            CacheVerdict::Off => "token cache: off on every node read".to_string(),
            CacheVerdict::Shared => format!(
                "token cache: SHARED ({}), entries live {life}",
                self.servers.join(",")
            ),
            CacheVerdict::NotShared => {
                format!("token cache: per node (not shared), entries live {life}")
            }
            CacheVerdict::Mixed => "token cache: nodes DISAGREE".to_string(),
        };
        for n in &self.notes {
            s.push_str("; ");
            s.push_str(n);
        }
        if !self.unread.is_empty() && self.verdict != CacheVerdict::Unknown {
            s.push_str(&format!("; not read on {}", self.unread.join(", ")));
        }
        s
    }

    /// The heading of a fleet whose cache carries no token across providers (off, or per node).
    fn uncarried_heading(&self) -> String {
        if self.verdict == CacheVerdict::Off {
            "Token cache: off".to_string()
        } else {
            format!(
                "Token cache: per node, not shared ({})",
                self.notes.join("; ")
            )
        }
    }

    /// What the cache means while providers are mixed, for a hard stop: which tokens fail, from
    /// when, until when. `old` and `new` name the providers (`fernet`, `jws`). Empty when no
    /// node's cache settings were read.
    pub fn explanation(&self, old: &str, new: &str) -> Vec<String> {
        let life = self.lifetime_secs.map(humanize).unwrap_or_default();
        match self.verdict {
            // Nothing read (a journal written before cutover read the cache): nothing to say.
            CacheVerdict::Unknown => vec![],
            CacheVerdict::Off | CacheVerdict::NotShared => {
                let what = self.uncarried_heading();
                vec![
                    format!("{what}: no cache carries a token across providers."),
                    format!(
                        "Every validation that lands on a node of the other provider fails \
                         (401/404), fresh tokens included, from the first {new} node's re-add \
                         until the last {old} node leaves the pool; {old} tokens stop \
                         validating at the last flip."
                    ),
                ]
            }
            CacheVerdict::Shared => vec![
                format!(
                    "Token cache: shared ({}), entries live {life}.",
                    self.servers.join(",")
                ),
                format!(
                    "Tokens cached less than {life} ago (issued, or validated by a node of \
                     their own provider) validate on nodes of either provider."
                ),
                format!(
                    "Older tokens, and every token after a memcached flush, restart or \
                     eviction, fail at random (401/404) wherever a node of the other provider \
                     validates them, from the first {new} node's re-add until the last {old} \
                     node leaves the pool."
                ),
                format!(
                    "Old {old} tokens stop validating within {life} after the last flip, not at it."
                ),
            ],
            CacheVerdict::Mixed => {
                let mut v = vec![format!("Token cache: {}.", self.notes.join("; "))];
                v.push(format!(
                    "Tokens validated by a node without the cache fail on the other provider; \
                     on caching nodes tokens cached less than {life} ago pass."
                ));
                v
            }
        }
    }

    /// What the cache means at a halves swap (the pool moves from the old half to the new one
    /// at once, never mixed on one instance): which old tokens survive the swap, and for how
    /// long. Empty when no node's cache settings were read.
    pub fn swap_explanation(&self, old: &str, new: &str) -> Vec<String> {
        let life = self.lifetime_secs.map(humanize).unwrap_or_default();
        let fresh = format!("Tokens the {new} half issues validate everywhere.");
        match self.verdict {
            CacheVerdict::Unknown => vec![],
            CacheVerdict::Off | CacheVerdict::NotShared => {
                let what = self.uncarried_heading();
                vec![
                    format!("{what}: no cache carries a token across the swap."),
                    format!(
                        "Every {old} token is refused (401/404) from the swap on, on every \
                         instance as its batch lands. {fresh}"
                    ),
                ]
            }
            CacheVerdict::Shared => vec![
                format!(
                    "Token cache: shared ({}), entries live {life}.",
                    self.servers.join(",")
                ),
                format!(
                    "{old} tokens cached less than {life} before the swap (issued, or validated \
                     by a {old} node) keep validating on the {new} half until their entry \
                     expires, at most {life} after the swap; older ones, and every one after a \
                     memcached flush, restart or eviction, are refused from the swap on. {fresh}"
                ),
            ],
            CacheVerdict::Mixed => vec![
                format!("Token cache: {}.", self.notes.join("; ")),
                format!(
                    "{old} tokens cached less than {life} ago may keep validating on caching \
                     {new} nodes after the swap; on the others they are refused at once. {fresh}"
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memcached(servers: &str, life: u64) -> TokenCacheFacts {
        TokenCacheFacts {
            enabled: true,
            backend: "oslo_cache.memcache_pool".into(),
            servers: servers.split(',').map(str::to_string).collect(),
            expiration_time: life,
            ..Default::default()
        }
    }

    fn fleet(nodes: &[(&str, Option<TokenCacheFacts>, &str)]) -> FleetCache {
        let v: Vec<NodeCache> = nodes
            .iter()
            .map(|(n, c, h)| NodeCache {
                name: n,
                cache: c.as_ref(),
                host: h.to_string(),
            })
            .collect();
        FleetCache::of(&v)
    }

    #[test]
    fn defaults_cache_nothing() {
        let d = TokenCacheFacts::default();
        assert!(!d.caches_tokens());
        assert_eq!(d.lifetime_secs(), 600);
        assert_eq!(d.cell(), "off");
        let on_null = TokenCacheFacts {
            enabled: true,
            ..Default::default()
        };
        assert!(!on_null.caches_tokens(), "enabled with the null backend");
    }

    #[test]
    fn either_token_option_alone_still_caches() {
        let mut c = memcached("10.0.0.5:11211", 600);
        c.token_caching = false;
        assert!(c.caches_tokens(), "cache_on_issue alone");
        c.cache_on_issue = false;
        assert!(!c.caches_tokens(), "both off is strict");
        assert!(c.cell().starts_with("off ([token]"), "{}", c.cell());
        c.cache_time = Some(60);
        assert_eq!(c.lifetime_secs(), 60, "cache_time wins");
    }

    #[test]
    fn local_servers() {
        for s in [
            "127.0.0.1:11211",
            "localhost:11211",
            "inet6:[::1]:11211",
            "unix:/run/memcached.sock",
            "127.0.1.1:1",
        ] {
            assert!(is_local_server(s), "{s}");
        }
        for s in [
            "10.0.0.5:11211",
            "inet6:[fd00::5]:11211",
            "memcached.internal:11211",
        ] {
            assert!(!is_local_server(s), "{s}");
        }
        assert_eq!(host_of("http://10.0.0.11:5000/v3"), "10.0.0.11");
        assert_eq!(host_of("http://[fd00::1]:5000"), "fd00::1");
        assert_eq!(host_of("Keystone.Example:5000"), "keystone.example");
    }

    #[test]
    fn one_remote_memcached_for_every_node_is_shared() {
        let c = memcached("10.0.0.5:11211,10.0.0.6:11211", 600);
        let f = fleet(&[
            ("node1", Some(c.clone()), "10.0.0.11"),
            ("node2", Some(c.clone()), "10.0.0.12"),
        ]);
        assert_eq!(f.verdict, CacheVerdict::Shared);
        assert_eq!(f.lifetime_secs, Some(600));
        assert_eq!(
            f.line(),
            "token cache: SHARED (10.0.0.5:11211,10.0.0.6:11211), entries live 10m"
        );
        let text = f.explanation("fernet", "jws").join("\n");
        assert!(text.contains("fernet tokens stop validating within 10m after the last flip"));
        assert!(text.contains("after a memcached flush"));
    }

    #[test]
    fn the_swap_says_which_old_tokens_survive_it() {
        let c = memcached("10.0.0.5:11211", 3600);
        let shared = fleet(&[("node1", Some(c.clone()), "a"), ("node2", Some(c), "b")]);
        let text = shared.swap_explanation("fernet", "jws");
        assert_eq!(
            text[0],
            "Token cache: shared (10.0.0.5:11211), entries live 1h."
        );
        assert!(
            text[1].starts_with("fernet tokens cached less than 1h before the swap")
                && text[1].contains("at most 1h after the swap"),
            "{text:?}"
        );
        let off = fleet(&[("node1", Some(TokenCacheFacts::default()), "a")]);
        let text = off.swap_explanation("fernet", "jws");
        assert!(
            text[1].starts_with("Every fernet token is refused (401/404) from the swap on"),
            "{text:?}"
        );
        assert!(
            fleet(&[("node1", None, "a")])
                .swap_explanation("fernet", "jws")
                .is_empty()
        );
    }

    #[test]
    fn a_loopback_server_is_shared_only_on_one_host() {
        let c = memcached("127.0.0.1:11211", 60);
        let same = fleet(&[
            ("node1", Some(c.clone()), "127.0.0.1"),
            ("node2", Some(c.clone()), "localhost"),
        ]);
        assert_eq!(same.verdict, CacheVerdict::Shared, "{same:?}");
        let apart = fleet(&[
            ("node1", Some(c.clone()), "10.0.0.11"),
            ("node2", Some(c.clone()), "10.0.0.12"),
        ]);
        assert_eq!(apart.verdict, CacheVerdict::NotShared);
        assert!(apart.notes[0].contains("each node's own host"), "{apart:?}");
        assert!(
            apart.explanation("fernet", "jws")[1].starts_with("Every validation"),
            "{apart:?}"
        );
    }

    #[test]
    fn disagreements_are_named() {
        let a = memcached("10.0.0.5:11211", 600);
        let mut b = memcached("10.0.0.6:11211", 3600);
        let f = fleet(&[
            ("node1", Some(a.clone()), "h1"),
            ("node2", Some(b.clone()), "h2"),
        ]);
        assert_eq!(f.verdict, CacheVerdict::NotShared);
        assert_eq!(f.lifetime_secs, Some(3600), "the longest");
        assert_eq!(f.notes[0], "cache lifetimes differ: node1 10m, node2 1h");
        assert!(
            f.notes[1].starts_with("nodes name different cache servers"),
            "{f:?}"
        );

        b.enabled = false;
        let f = fleet(&[
            ("node1", Some(a.clone()), "h1"),
            ("node2", Some(b), "h2"),
            ("node3", None, "h3"),
        ]);
        assert_eq!(f.verdict, CacheVerdict::Mixed);
        assert_eq!(
            f.notes[0],
            "nodes disagree: node1 cache tokens, node2 do not"
        );
        assert_eq!(f.unread, vec!["node3"]);
        assert!(f.line().ends_with("; not read on node3"), "{}", f.line());

        let mem = TokenCacheFacts {
            enabled: true,
            backend: "dogpile.cache.memory".into(),
            ..Default::default()
        };
        let f = fleet(&[("node1", Some(mem.clone()), "h"), ("node2", Some(mem), "h")]);
        assert_eq!(f.verdict, CacheVerdict::NotShared);
        assert!(f.notes[0].contains("never shared"), "{f:?}");
    }

    #[test]
    fn nothing_read_is_unknown_and_nothing_cached_is_off() {
        let f = fleet(&[("node1", None, "h")]);
        assert_eq!(f.verdict, CacheVerdict::Unknown);
        assert_eq!(f.line(), "token cache: not read yet");
        assert!(f.explanation("fernet", "jws").is_empty());
        let f = fleet(&[("node1", Some(TokenCacheFacts::default()), "h")]);
        assert_eq!(f.verdict, CacheVerdict::Off);
        assert_eq!(f.lifetime_secs, None);
        assert!(f.explanation("fernet", "jws")[0].starts_with("Token cache: off:"));
    }
}
