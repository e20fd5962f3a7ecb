//! From an inventory `SshTarget` to the hops of a connection, the way `ssh` would read its
//! ssh_config: Host alias → HostName, Port, User, IdentityFile, UserKnownHostsFile, ProxyJump.
//! Parsing is ssh2-config's; the rest (jump chains, known_hosts lists, `~`) is done here.

use crate::inventory::{SshDefaults, SshTarget};
use ssh2_config::{HostParams, ParseRule, SshConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Nothing is waited for longer than this to open a TCP connection and finish the key exchange
/// unless the inventory or ssh_config says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One SSH hop: a jump host or the target itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// How the operator named it (alias or `user@host:port` from ProxyJump).
    pub name: String,
    /// Where to connect (HostName, or the name itself).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// IdentityFile entries (expanded), or the OpenSSH defaults that exist.
    pub identity_files: Vec<PathBuf>,
    /// Whether `identity_files` came from configuration (missing ones are then reported).
    pub identity_explicit: bool,
    /// known_hosts files in the order they are checked.
    pub known_hosts: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// Which ssh-agent to ask (IdentityAgent): a socket, the environment's, or none.
    pub agent: Agent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// SSH_AUTH_SOCK (the default, and `IdentityAgent SSH_AUTH_SOCK`).
    Env,
    /// `IdentityAgent none`.
    Off,
    /// `IdentityAgent /path/to/socket`.
    Socket(PathBuf),
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn local_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        home()
    } else if let Some(rest) = p.strip_prefix("~/") {
        home().join(rest)
    } else {
        PathBuf::from(p)
    }
}

/// Why the hops to a host cannot be worked out from ssh_config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read ssh config {}: {err}", path.display())]
    Unreadable { path: PathBuf, err: std::io::Error },
    #[error("ssh config {}: {err}", path.display())]
    Parse {
        path: PathBuf,
        err: ssh2_config::SshParserError,
    },
    /// A ProxyJump element (given in full) that is not `[user@]host[:port]`.
    #[error("bad jump host `{0}`")]
    BadJumpHost(String),
    /// A ProxyJump element (given in full) whose port is not a number.
    #[error("bad port in `{0}`")]
    BadPort(String),
    #[error("ProxyJump chain is longer than 8 hops (a loop in ssh_config?)")]
    JumpLoop,
}

/// The ssh_config to read: the inventory's (like `ssh -F`, must exist) or ~/.ssh/config (optional).
pub fn load(defaults: Option<&SshDefaults>) -> Result<SshConfig, ConfigError> {
    let (path, required) = match defaults.and_then(|d| d.config.clone()) {
        Some(p) => (p, true),
        None => (home().join(".ssh/config"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(ConfigError::Unreadable { path, err }),
    };
    SshConfig::default()
        .home_dir(home())
        .parse(
            &mut text.as_bytes(),
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map_err(|err| ConfigError::Parse { path, err })
}

/// A ProxyJump element: `[user@]host[:port]` or `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

pub fn parse_jump(spec: &str) -> Result<JumpSpec, ConfigError> {
    let s = spec.trim();
    let s = s.strip_prefix("ssh://").unwrap_or(s);
    let (user, rest) = match s.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, s),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        // [v6addr]:port or [host]
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| ConfigError::BadJumpHost(spec.to_string()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(
                p.parse()
                    .map_err(|_| ConfigError::BadPort(spec.to_string()))?,
            ),
            None => None,
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (
                h.to_string(),
                Some(
                    p.parse()
                        .map_err(|_| ConfigError::BadPort(spec.to_string()))?,
                ),
            ),
            _ => (rest.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(ConfigError::BadJumpHost(spec.to_string()));
    }
    Ok(JumpSpec { user, host, port })
}

fn split_jumps(list: &[String]) -> Vec<String> {
    list.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Settings a hop takes from outside the config (explicit inventory fields, a jump spec).
#[derive(Default)]
struct Overrides {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity_file: Option<PathBuf>,
}

fn hop_from(name: &str, params: &HostParams, o: Overrides, defaults: Option<&SshDefaults>) -> Hop {
    let host = o.host.unwrap_or_else(|| match &params.host_name {
        Some(h) => h.replace("%h", name).replace("%%", "%"),
        None => name.to_string(),
    });
    let port = o.port.or(params.port).unwrap_or(22);
    let user = o
        .user
        .or_else(|| params.user.clone())
        .unwrap_or_else(local_user);
    let (identity_files, identity_explicit) = match (&o.identity_file, &params.identity_file) {
        (Some(f), _) => (vec![expand_tilde(&f.to_string_lossy())], true),
        (None, Some(list)) if !list.is_empty() => (
            list.iter()
                .map(|p| expand_tilde(&p.to_string_lossy()))
                .collect(),
            true,
        ),
        _ => (
            ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|n| home().join(".ssh").join(n))
                .filter(|p| p.exists())
                .collect(),
            false,
        ),
    };
    let mut known_hosts = Vec::new();
    if let Some(k) = defaults.and_then(|d| d.known_hosts.clone()) {
        known_hosts.push(k);
    }
    match params.unsupported_fields.get("userknownhostsfile") {
        Some(files) => {
            for f in files {
                if !f.eq_ignore_ascii_case("none") {
                    known_hosts.push(expand_tilde(f.trim_matches('"')));
                }
            }
        }
        None => known_hosts.push(home().join(".ssh/known_hosts")),
    }
    match params.unsupported_fields.get("globalknownhostsfile") {
        Some(files) => {
            for f in files {
                if !f.eq_ignore_ascii_case("none") {
                    known_hosts.push(expand_tilde(f.trim_matches('"')));
                }
            }
        }
        None => known_hosts.push(PathBuf::from("/etc/ssh/ssh_known_hosts")),
    }
    known_hosts.dedup();
    let agent = match params
        .unsupported_fields
        .get("identityagent")
        .and_then(|v| v.first())
        .map(|s| s.trim_matches('"'))
    {
        None => Agent::Env,
        Some(v) if v.eq_ignore_ascii_case("none") => Agent::Off,
        Some("SSH_AUTH_SOCK") => Agent::Env,
        Some(v) => match v.strip_prefix('$') {
            Some(var) => std::env::var_os(var)
                .map(|s| Agent::Socket(PathBuf::from(s)))
                .unwrap_or(Agent::Off),
            None => Agent::Socket(expand_tilde(v)),
        },
    };
    let connect_timeout = defaults
        .and_then(|d| d.connect_timeout_secs)
        .map(Duration::from_secs)
        .or(params.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    Hop {
        name: name.to_string(),
        host,
        port,
        user,
        identity_files,
        identity_explicit,
        known_hosts,
        connect_timeout,
        agent,
    }
}

/// The hops to reach `target`: jump hosts first (in order), the target last.
pub fn resolve(
    target: &SshTarget,
    defaults: Option<&SshDefaults>,
) -> Result<Vec<Hop>, ConfigError> {
    let cfg = load(defaults)?;
    resolve_with(&cfg, target, defaults)
}

pub fn resolve_with(
    cfg: &SshConfig,
    target: &SshTarget,
    defaults: Option<&SshDefaults>,
) -> Result<Vec<Hop>, ConfigError> {
    let (name, overrides, explicit_jump) = match target {
        SshTarget::Alias(a) => (a.clone(), Overrides::default(), None),
        SshTarget::Explicit(e) => (
            e.host.clone(),
            Overrides {
                host: None,
                port: e.port,
                user: e.user.clone(),
                identity_file: e.identity_file.clone(),
            },
            e.proxy_jump.clone(),
        ),
    };
    // `user@host` as an alias, as ssh accepts it.
    let (name, overrides) = match name.split_once('@') {
        Some((u, h)) if overrides.user.is_none() => (
            h.to_string(),
            Overrides {
                user: Some(u.to_string()),
                ..overrides
            },
        ),
        _ => (name, overrides),
    };
    let params = cfg.query(&name);
    let jumps = match explicit_jump {
        Some(j) => split_jumps(&[j]),
        None => split_jumps(params.proxy_jump.as_deref().unwrap_or(&[])),
    };
    let target_hop = hop_from(&name, &params, overrides, defaults);
    let mut hops = Vec::new();
    if !(jumps.len() == 1 && jumps[0].eq_ignore_ascii_case("none")) {
        jump_hops(cfg, &jumps, defaults, 0, &mut hops)?;
    }
    hops.push(target_hop);
    Ok(hops)
}

/// Resolve a ProxyJump list. Like `ssh -J a,b`: the first jump host's own ProxyJump (from the
/// config) is honoured, the later ones are reached through the previous hop.
fn jump_hops(
    cfg: &SshConfig,
    jumps: &[String],
    defaults: Option<&SshDefaults>,
    depth: usize,
    out: &mut Vec<Hop>,
) -> Result<(), ConfigError> {
    if depth > 8 {
        return Err(ConfigError::JumpLoop);
    }
    for (i, spec) in jumps.iter().enumerate() {
        let j = parse_jump(spec)?;
        let params = cfg.query(&j.host);
        if i == 0
            && let Some(own) = &params.proxy_jump
        {
            let own = split_jumps(own);
            let none = own.len() == 1 && own[0].eq_ignore_ascii_case("none");
            if !own.is_empty() && !none {
                jump_hops(cfg, &own, defaults, depth + 1, out)?;
            }
        }
        out.push(hop_from(
            &j.host,
            &params,
            Overrides {
                host: None,
                port: j.port,
                user: j.user,
                identity_file: None,
            },
            defaults,
        ));
    }
    Ok(())
}

/// Where a newly accepted host key should be written: the inventory's known_hosts when set, else
/// the first UserKnownHostsFile (or ~/.ssh/known_hosts).
pub fn primary_known_hosts(hop: &Hop) -> &Path {
    hop.known_hosts
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("/dev/null"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::SshExplicit;

    fn cfg(text: &str) -> SshConfig {
        SshConfig::default()
            .home_dir("/home/op")
            .parse(
                &mut text.as_bytes(),
                ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .unwrap()
    }

    #[test]
    fn jump_specs() {
        assert_eq!(
            parse_jump("admin@bastion:2222").unwrap(),
            JumpSpec {
                user: Some("admin".into()),
                host: "bastion".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            parse_jump("ssh://[::1]:22").unwrap(),
            JumpSpec {
                user: None,
                host: "::1".into(),
                port: Some(22)
            }
        );
        assert_eq!(parse_jump("b").unwrap().port, None);
    }

    #[test]
    fn alias_with_jumps_and_overrides() {
        let c = cfg(
            "Host node1\n  HostName 10.0.0.1\n  Port 2200\n  User ops\n  IdentityFile ~/.ssh/k1\n  UserKnownHostsFile /tmp/kh\n  ProxyJump bastion,jump2:2022\n\nHost bastion\n  HostName 192.0.2.1\n  User b\n  ProxyJump outer\n\nHost *\n  ConnectTimeout 3\n",
        );
        let hops = resolve_with(&c, &SshTarget::Alias("node1".into()), None).unwrap();
        let names: Vec<_> = hops.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["outer", "bastion", "jump2", "node1"]);
        let t = hops.last().unwrap();
        assert_eq!(t.host, "10.0.0.1");
        assert_eq!(t.port, 2200);
        assert_eq!(t.user, "ops");
        assert_eq!(t.identity_files, [PathBuf::from("/home/op/.ssh/k1")]);
        assert_eq!(t.known_hosts[0], PathBuf::from("/tmp/kh"));
        assert_eq!(t.connect_timeout, Duration::from_secs(3));
        assert_eq!(hops[1].host, "192.0.2.1");
        assert_eq!(hops[2].port, 2022);

        let e = SshTarget::Explicit(SshExplicit {
            host: "node1".into(),
            port: Some(22),
            user: Some("root".into()),
            identity_file: None,
            proxy_jump: Some("none".into()),
        });
        let hops = resolve_with(&c, &e, None).unwrap();
        assert_eq!(hops.len(), 1);
        assert_eq!((hops[0].port, hops[0].user.as_str()), (22, "root"));
        assert_eq!(hops[0].host, "10.0.0.1");
    }
}
