//! What a node reads as Keystone starts: keystone.conf (token provider, expiration, the boolean
//! options Keystone checks at start) and the provider's keys, refused in Keystone's own words.

use crate::world::ini::Ini;
use crate::world::tokens;
use p256::ecdsa::SigningKey;
use std::path::{Path, PathBuf};

/// Keystone's default repositories, used when keystone.conf does not set them.
const DEFAULT_FERNET_REPO: &str = "/etc/keystone/fernet-keys/";
const DEFAULT_JWS_PRIVATE: &str = "/etc/keystone/jws-keys/private";
const DEFAULT_JWS_PUBLIC: &str = "/etc/keystone/jws-keys/public";

/// The token provider a node started with.
pub(super) enum Provider {
    Fernet {
        repo: PathBuf,
    },
    Jws {
        /// `<private repo>/private.pem`, read at start and held in memory.
        signing: Box<SigningKey>,
        public_repo: PathBuf,
    },
}

impl Provider {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Provider::Fernet { .. } => "fernet",
            Provider::Jws { .. } => "jws",
        }
    }
}

/// Why Keystone refuses to start, in the words it dies with. The kind says how it dies: what
/// it leaves in the log and on stderr (see [`super::log::log_refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    /// A bad value of a boolean option that is also a command-line option: argparse refuses it
    /// while the files are parsed (its one line, no traceback).
    #[error("{0}")]
    Argparse(String),
    /// A bad value of a boolean option read later: oslo.config's ConfigFileValueError, logged
    /// with a CRITICAL line and a traceback.
    #[error("{0}")]
    Value(String),
    /// Anything else (a missing key, an unknown provider, an injected fault, a port that cannot
    /// be bound): one CRITICAL line.
    #[error("{0}")]
    Other(String),
}

/// What a node read from keystone.conf and its key repositories at (re)start.
pub(super) struct NodeConfig {
    pub(super) provider: Provider,
    pub(super) expiration: i64,
    pub(super) cache: CachePolicy,
}

/// How a node uses the token cache, from `[cache]` and `[token]` (Keystone 30's defaults:
/// `[cache] enabled = false`, `[token] caching = true`, `cache_on_issue = true`, `cache_time`
/// unset, `[cache] expiration_time = 600`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CachePolicy {
    /// `[cache] enabled`: the node reads the cache before its provider.
    pub(super) enabled: bool,
    /// `[token] cache_on_issue` or `caching`: an issued token is stored.
    pub(super) store_on_issue: bool,
    /// `[token] caching`: a token the provider validated is stored.
    pub(super) store_on_validate: bool,
    /// `[token] cache_time`, else `[cache] expiration_time`.
    pub(super) lifetime: std::time::Duration,
}

impl CachePolicy {
    fn read(ini: &Ini) -> CachePolicy {
        let flag = |section: &str, option: &str, default: bool| {
            ini.get(section, option).map_or(default, |v| {
                ["true", "1", "on", "yes"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t))
            })
        };
        let secs = |section: &str, option: &str| {
            ini.get(section, option)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let caching = flag("token", "caching", true);
        let lifetime = secs("token", "cache_time")
            .or_else(|| secs("cache", "expiration_time"))
            .unwrap_or(crate::world::token_cache::DEFAULT_LIFETIME_SECS);
        CachePolicy {
            enabled: flag("cache", "enabled", false),
            store_on_issue: caching || flag("token", "cache_on_issue", true),
            store_on_validate: caching,
            lifetime: std::time::Duration::from_secs(lifetime),
        }
    }
}

/// Read keystone.conf and the provider's keys as Keystone does at start. `Err` carries the
/// message Keystone would die with, and its kind.
pub(super) fn load_config(conf_path: &Path) -> Result<NodeConfig, Refusal> {
    let text = std::fs::read_to_string(conf_path).map_err(|e| {
        Refusal::Other(format!(
            "ConfigFilesNotFoundError: Failed to find some config files: {} ({e})",
            conf_path.display()
        ))
    })?;
    let ini = Ini::parse(&text).map_err(|e| {
        Refusal::Other(format!(
            "ConfigFileParseError: {}: {e}",
            conf_path.display()
        ))
    })?;
    check_booleans(&ini, conf_path)?;
    let expiration = match ini.get("token", "expiration") {
        None => 3600,
        Some(v) => v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            Refusal::Other(format!("ConfigFileValueError: Value for option expiration from [token] is not valid: `{v}` is not an integer"))
        })?,
    };
    let provider = ini.get("token", "provider").unwrap_or("fernet");
    let provider = match provider {
        "fernet" => {
            let repo = PathBuf::from(
                ini.get("fernet_tokens", "key_repository")
                    .unwrap_or(DEFAULT_FERNET_REPO),
            );
            if !repo.is_dir() {
                return Err(Refusal::Other(format!(
                    "SystemExit: {} does not exist",
                    repo.display()
                )));
            }
            let keys = tokens::read_fernet_keys(&repo)
                .map_err(|e| Refusal::Other(format!("SystemExit: {e}")))?;
            if keys.is_empty() {
                return Err(Refusal::Other(format!(
                    "SystemExit: key repository {} is empty; run `keystone-manage fernet_setup`",
                    repo.display()
                )));
            }
            Provider::Fernet { repo }
        }
        "jws" => {
            let algorithm = ini.get("jwt_tokens", "jws_algorithm").unwrap_or("ES256");
            if algorithm != "ES256" {
                return Err(Refusal::Other(format!(
                    "ValueError: [jwt_tokens] jws_algorithm = {algorithm} is not supported here (the demo world's Keystone supports ES256 only)"
                )));
            }
            let private_repo = PathBuf::from(
                ini.get("jwt_tokens", "jws_private_key_repository")
                    .unwrap_or(DEFAULT_JWS_PRIVATE),
            );
            let public_repo = PathBuf::from(
                ini.get("jwt_tokens", "jws_public_key_repository")
                    .unwrap_or(DEFAULT_JWS_PUBLIC),
            );
            let private_pem = private_repo.join("private.pem");
            if !private_pem.exists() {
                return Err(Refusal::Other(format!(
                    "SystemExit: {} does not exist. You can generate a key pair using `keystone-manage create_jws_keypair`.",
                    private_pem.display()
                )));
            }
            let public_empty = std::fs::read_dir(&public_repo)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true);
            if public_empty {
                return Err(Refusal::Other(format!(
                    "SystemExit: the public key repository {} does not exist or is empty. Put the public key of every node's private.pem there.",
                    public_repo.display()
                )));
            }
            let signing = tokens::load_private_key(&private_pem)
                .map_err(|e| Refusal::Other(format!("ValueError: {e}")))?;
            Provider::Jws {
                signing: Box::new(signing),
                public_repo,
            }
        }
        other => {
            return Err(Refusal::Other(format!(
                "RuntimeError: Unable to find '{other}' driver in 'keystone.token.provider'."
            )));
        }
    };
    Ok(NodeConfig {
        provider,
        expiration,
        cache: CachePolicy::read(&ini),
    })
}

/// Boolean options Keystone reads as it starts: (section, option, set on the command line too).
/// oslo.config checks command-line options while it parses the files (argparse's error, no
/// traceback); the others when they are first read (a ConfigFileValueError and a traceback).
const STARTUP_BOOLEANS: &[(&str, &str, bool)] = &[
    ("DEFAULT", "debug", true),
    ("DEFAULT", "use_syslog", true),
    ("DEFAULT", "use_journal", true),
    ("DEFAULT", "use_json", true),
    ("DEFAULT", "watch_log_file", true),
    ("DEFAULT", "use_stderr", false),
    ("cache", "enabled", false),
];

/// What argparse says about a command-line option's bad value (Keystone 30, measured).
const ARGPARSE_REFUSAL: &str = "argument --";
/// The exception oslo.config raises for a bad value in a file.
const VALUE_REFUSAL: &str = "oslo_config.cfg.ConfigFileValueError: ";

/// Refuse a boolean option whose value oslo.config does not take, with Keystone 30's own words.
fn check_booleans(ini: &Ini, conf_path: &Path) -> Result<(), Refusal> {
    let is_bool = |v: &str| {
        ["true", "false", "1", "0", "on", "off", "yes", "no"]
            .iter()
            .any(|b| v.eq_ignore_ascii_case(b))
    };
    // Command-line options first: they are checked when the files are parsed.
    for cli in [true, false] {
        for (section, option, _) in STARTUP_BOOLEANS.iter().filter(|o| o.2 == cli) {
            let Some(v) = ini.get(section, option) else {
                continue;
            };
            if is_bool(v) {
                continue;
            }
            return Err(if cli {
                Refusal::Argparse(format!(
                    "{ARGPARSE_REFUSAL}{}: Invalid Boolean value: {v}",
                    option.replace('_', "-")
                ))
            } else {
                Refusal::Value(format!(
                    "{VALUE_REFUSAL}Value for option {option} from LocationInfo(location=<Locations.user: (4, True)>, detail='{}') is not valid: Unexpected boolean value '{v}'",
                    conf_path.display()
                ))
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn refuses_jws_without_keys_and_unknown_providers() {
        let d = tempfile::tempdir().unwrap();
        let private = d.path().join("private");
        let public = d.path().join("public");
        std::fs::create_dir_all(&private).unwrap();
        std::fs::create_dir_all(&public).unwrap();
        let conf = write(
            d.path(),
            "k.conf",
            &format!(
                "[token]\nprovider = jws\n[jwt_tokens]\njws_private_key_repository = {}\njws_public_key_repository = {}\n",
                private.display(),
                public.display()
            ),
        );
        let err = load_config(&conf).err().unwrap().to_string();
        assert!(err.contains("private.pem does not exist"), "{err}");

        let conf = write(d.path(), "u.conf", "[token]\nprovider = uuid\n");
        let err = load_config(&conf).err().unwrap().to_string();
        assert!(err.contains("Unable to find 'uuid' driver"), "{err}");

        let empty = d.path().join("fernet");
        std::fs::create_dir_all(&empty).unwrap();
        let conf = write(
            d.path(),
            "f.conf",
            &format!("[fernet_tokens]\nkey_repository = {}/\n", empty.display()),
        );
        assert!(
            load_config(&conf)
                .err()
                .unwrap()
                .to_string()
                .contains("is empty")
        );

        let conf = write(
            d.path(),
            "a.conf",
            "[token]\nprovider = jws\n[jwt_tokens]\njws_algorithm = ES384\n",
        );
        assert!(
            load_config(&conf)
                .err()
                .unwrap()
                .to_string()
                .contains("ES256 only")
        );
    }

    #[test]
    fn refuses_booleans_oslo_config_refuses_as_keystone_30_does() {
        let d = tempfile::tempdir().unwrap();
        let fernet = d.path().join("fernet");
        std::fs::create_dir_all(&fernet).unwrap();
        std::fs::write(fernet.join("0"), format!("{}=", "A".repeat(43))).unwrap();
        let base = format!("[fernet_tokens]\nkey_repository = {}/\n", fernet.display());
        let conf = write(
            d.path(),
            "c.conf",
            &format!("[DEFAULT]\nuse_stderr = Maybe\ndebug = notabool\n{base}"),
        );
        // A command-line option is checked first, by argparse.
        assert!(matches!(load_config(&conf), Err(Refusal::Argparse(_))));
        assert_eq!(
            load_config(&conf).err().unwrap().to_string(),
            "argument --debug: Invalid Boolean value: notabool"
        );
        let conf = write(
            d.path(),
            "c.conf",
            &format!("[DEFAULT]\ndebug = TRUE\n[cache]\nenabled = maybe\n{base}"),
        );
        assert!(matches!(load_config(&conf), Err(Refusal::Value(_))));
        let err = load_config(&conf).err().unwrap().to_string();
        assert!(
            err.starts_with("oslo_config.cfg.ConfigFileValueError: Value for option enabled from")
                && err.ends_with("is not valid: Unexpected boolean value 'maybe'"),
            "{err}"
        );
        let conf = write(
            d.path(),
            "c.conf",
            &format!("[DEFAULT]\ndebug = on\nuse_stderr = 0\n[cache]\nenabled = No\n{base}"),
        );
        if let Err(e) = load_config(&conf) {
            panic!("{e}");
        }
    }

    #[test]
    fn the_cache_policy_follows_keystone_30() {
        let policy = |text: &str| CachePolicy::read(&Ini::parse(text).unwrap());
        let p = policy("[token]\nprovider = fernet\n");
        assert!(!p.enabled, "[cache] enabled defaults to false");
        assert!(p.store_on_issue && p.store_on_validate);
        assert_eq!(p.lifetime.as_secs(), 600);
        let p = policy("[cache]\nenabled = True\nexpiration_time = 120\n");
        assert!(p.enabled);
        assert_eq!(p.lifetime.as_secs(), 120);
        let p =
            policy("[cache]\nenabled = true\nexpiration_time = 120\n[token]\ncache_time = 60\n");
        assert_eq!(p.lifetime.as_secs(), 60, "cache_time wins");
        // Either one alone still caches on issue; only both off is strict.
        let p = policy("[cache]\nenabled = true\n[token]\ncaching = false\n");
        assert!(p.store_on_issue && !p.store_on_validate);
        let p =
            policy("[cache]\nenabled = true\n[token]\ncaching = false\ncache_on_issue = false\n");
        assert!(!p.store_on_issue && !p.store_on_validate);
    }
}
