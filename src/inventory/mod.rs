//! The inventory: which nodes, how to reach them, where their Keystone files live, which
//! load-balancer instances front them, and where credentials come from. No password lives here:
//! credentials come from clouds.yaml or OS_* variables (see `credentials`).

pub mod credentials;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_KEYSTONE_CONF: &str = "/etc/keystone/keystone.conf";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// A name for the cluster, shown in the header and the journal.
    pub cluster: String,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancer>,
    #[serde(default)]
    pub credentials: Credentials,
    /// SSH settings shared by every ssh-reached host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshDefaults>,
    /// Set by `cutover demo`: the world directory whose stand-ins serve this inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_world: Option<PathBuf>,
    /// What the pool guard does when a drained node shows up in a pool again (a runbook's own
    /// `guard:` wins): `enforce` (default) sets it back to maint at once, `alert` only raises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardMode>,
    /// The file this inventory was read from, absolute (set by `load`, not written by hand):
    /// recorded with the run, and `inventory.path` in runbook templates (a closing note's
    /// rollback command names the very inventory of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_from: Option<PathBuf>,
}

/// The pool guard's answer to a breach.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum GuardMode {
    /// Set the node back to maint on that instance at once, then raise a hard stop.
    #[default]
    Enforce,
    /// Only raise a hard stop (cutover sets it back to maint when the operator confirms).
    Alert,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SshDefaults {
    /// An ssh_config file to read instead of ~/.ssh/config (`-F`).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Extra known_hosts file checked before the user's.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub connect_timeout_secs: Option<u64>,
    /// How many hosts are talked to at once in probes and all-nodes steps.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// How a host is reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reach {
    /// Commands run on this machine.
    Local,
    /// Over SSH: a Host alias from ssh_config, or explicit settings.
    Ssh(SshTarget),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SshTarget {
    Alias(String),
    Explicit(SshExplicit),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SshExplicit {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub identity_file: Option<PathBuf>,
    /// Jump hosts, as ssh's -J: `user@host:port,host2`.
    #[serde(default)]
    pub proxy_jump: Option<String>,
}

impl SshTarget {
    pub fn host(&self) -> &str {
        match self {
            SshTarget::Alias(a) => a,
            SshTarget::Explicit(e) => &e.host,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KeyGen {
    /// `keystone-manage create_jws_keypair` in a staging directory on the node.
    #[default]
    KeystoneManage,
    /// An ES256 keypair generated inside cutover and streamed to the node.
    Native,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// `local` or `ssh: alias` / `ssh: {host, port, user, ...}`.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub reach: Reach,
    /// The node's own Keystone API (never the load balancer's VIP), e.g. http://10.0.0.11:5000.
    pub keystone_url: String,
    #[serde(default = "default_conf")]
    pub keystone_conf: PathBuf,
    /// Overrides for the key repositories; by default they are read from keystone.conf, falling
    /// back to Keystone's own defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fernet_repo: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws_private_repo: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws_public_repo: Option<PathBuf>,
    #[serde(default = "default_keystone_user")]
    pub keystone_user: String,
    #[serde(default = "default_keystone_user")]
    pub keystone_group: String,
    /// The command that restarts Keystone on this node (it must return once the restart began).
    #[serde(default = "default_restart")]
    pub restart: String,
    /// Where Keystone logs on the node; what it wrote since a restart that failed is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// The systemd unit Keystone runs in, for `journalctl -u` when a restart fails; by default
    /// the unit `restart` names (`systemctl restart UNIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// keystone-manage on the node (`keygen: keystone-manage`); by default searched on the
    /// PATH, the login shell's PATH, /usr/bin, /usr/local/bin and the usual venvs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystone_manage: Option<PathBuf>,
    /// Run privileged commands through `sudo -n`.
    #[serde(default)]
    pub sudo: bool,
    #[serde(default)]
    pub keygen: KeyGen,
}

fn default_conf() -> PathBuf {
    PathBuf::from(DEFAULT_KEYSTONE_CONF)
}
fn default_keystone_user() -> String {
    "keystone".into()
}
fn default_restart() -> String {
    "systemctl restart apache2".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub name: String,
    /// How the admin socket's host is reached (`local`, or `ssh: ...`). With `address` the
    /// socket is reached from here, and `reach` only says where `config` is read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_yaml::with::singleton_map"
    )]
    pub reach: Option<Reach>,
    /// HAProxy admin socket path on that host (`stats socket ... level admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// Or a TCP admin socket (`stats socket ipv4@127.0.0.1:9999 level admin`), reached from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default)]
    pub sudo: bool,
    pub backend: String,
    /// The HAProxy configuration file on that host (e.g. /etc/haproxy/haproxy.cfg), read over
    /// `reach` (with `sudo`) by full probes to tell whether a reload keeps MAINT
    /// (`server-state-file` + `load-server-state-from-file`) and whether every server of
    /// `backend` is health-checked. Information, not a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// HAProxy server name per node; a node not listed is assumed to be named as the node.
    #[serde(default)]
    pub servers: BTreeMap<String, String>,
    /// The Keystone URL clients reach through this load balancer's frontend (as a clouds.yaml
    /// `auth_url` reads, e.g. `https://keystone.example.com:5000/v3`; kept as its API root,
    /// like `keystone_url`). Where it is given, the client-impact meter sends its synthetic
    /// clients through it, never to a node directly. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_url: Option<String>,
}

impl LoadBalancer {
    pub fn server_for(&self, node: &str) -> String {
        self.servers
            .get(node)
            .cloned()
            .unwrap_or_else(|| node.to_string())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// A cloud in clouds.yaml; OS_CLOUD when unset; OS_* variables when neither.
    #[serde(default)]
    pub cloud: Option<String>,
    /// An explicit clouds.yaml (otherwise searched where the openstack CLI searches).
    #[serde(default)]
    pub clouds_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
    #[error("cannot read {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|err| InventoryError::Io {
            path: path.display().to_string(),
            err,
        })?;
        let mut inv = Self::parse(&text, &path.display().to_string())?;
        inv.loaded_from = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(inv)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Inventory, InventoryError> {
        let mut inv: Inventory = serde_yaml::from_str(text).map_err(|e| InventoryError::Parse {
            path: location(origin, &e),
            msg: e.to_string(),
        })?;
        inv.validate(origin)?;
        // `http://10.0.0.11:5000/v3`, as every clouds.yaml auth_url reads, names the same API
        // root as `http://10.0.0.11:5000`: what is kept (and journaled) is the root.
        for n in &mut inv.nodes {
            if let Ok(root) = keystone_root(&n.keystone_url) {
                n.keystone_url = root;
            }
        }
        for lb in &mut inv.load_balancers {
            if let Some(root) = lb
                .frontend_url
                .as_deref()
                .and_then(|u| keystone_root(u).ok())
            {
                lb.frontend_url = Some(root);
            }
        }
        Ok(inv)
    }

    fn validate(&self, origin: &str) -> Result<(), InventoryError> {
        let bad = |msg: String| InventoryError::Invalid {
            path: origin.to_string(),
            msg,
        };
        if self.nodes.is_empty() {
            return Err(bad("no nodes: at least one node is needed".into()));
        }
        self.check_names().map_err(|e| bad(e.to_string()))?;
        for n in &self.nodes {
            keystone_root(&n.keystone_url)
                .map_err(|why| bad(format!("node `{}`: keystone_url {why}", n.name)))?;
        }
        for lb in &self.load_balancers {
            match (&lb.socket, &lb.address) {
                (None, None) => {
                    return Err(bad(format!(
                        "load balancer `{}`: give `socket` (admin socket path) or `address` (host:port)",
                        lb.name
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(bad(format!(
                        "load balancer `{}`: give `socket` or `address`, not both",
                        lb.name
                    )));
                }
                (Some(_), None) if lb.reach.is_none() => {
                    return Err(bad(format!(
                        "load balancer `{}`: `socket` needs `reach` (local, or ssh: HOST)",
                        lb.name
                    )));
                }
                _ => {}
            }
            if let Some(url) = &lb.frontend_url {
                keystone_root(url).map_err(|why| {
                    bad(format!("load balancer `{}`: frontend_url {why}", lb.name))
                })?;
            }
            for node in lb.servers.keys() {
                if !self.nodes.iter().any(|n| &n.name == node) {
                    return Err(bad(format!(
                        "load balancer `{}` maps unknown node `{node}`",
                        lb.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every node, load-balancer and HAProxy server name is a [`valid_name`], and none is
    /// listed twice. [`Inventory::parse`] checks this; an inventory read back from a journal is
    /// checked again before anything is reached with it.
    pub fn check_names(&self) -> Result<(), NameError> {
        let mut nodes = std::collections::BTreeSet::new();
        for n in &self.nodes {
            valid_name("nodes[].name", &n.name)?;
            if !nodes.insert(n.name.as_str()) {
                return Err(NameError::new("nodes[].name", &n.name, "is listed twice"));
            }
        }
        let mut lbs = std::collections::BTreeSet::new();
        for lb in &self.load_balancers {
            valid_name("load_balancers[].name", &lb.name)?;
            if !lbs.insert(lb.name.as_str()) {
                return Err(NameError::new(
                    "load_balancers[].name",
                    &lb.name,
                    "is listed twice",
                ));
            }
            let mut servers = std::collections::BTreeSet::new();
            for n in &self.nodes {
                let server = lb.server_for(&n.name);
                valid_name("load_balancers[].servers", &server)?;
                if !servers.insert(server.clone()) {
                    return Err(NameError::new(
                        "load_balancers[].servers",
                        &server,
                        &format!(
                            "is the HAProxy server of two nodes on load balancer `{}`",
                            lb.name
                        ),
                    ));
                }
            }
            for (node, server) in &lb.servers {
                valid_name("load_balancers[].servers", node)?;
                valid_name("load_balancers[].servers", server)?;
            }
        }
        Ok(())
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

/// A node, load-balancer or HAProxy server name that is not allowed: the field, the value
/// (escaped for display) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {value}: {why}")]
pub struct NameError {
    pub field: String,
    /// The offending value, quoted and escaped (`"a\nb"`): safe to print.
    pub value: String,
    pub why: String,
}

impl NameError {
    fn new(field: &str, value: &str, why: &str) -> NameError {
        NameError {
            field: field.to_string(),
            value: format!("{value:?}"),
            why: why.to_string(),
        }
    }
}

/// The longest name allowed (a DNS label's limit).
pub const NAME_MAX: usize = 63;

/// A name that may be shown, sent to HAProxy and used in a file name: 1..=63 of ASCII letters,
/// digits, `.`, `_`, `-`, not starting with `.` or `-` (so never `..`, a hidden file or an
/// option).
pub fn valid_name(field: &str, name: &str) -> Result<(), NameError> {
    let err = |why: &str| Err(NameError::new(field, name, why));
    if name.is_empty() {
        return err("is empty");
    }
    if name.chars().count() > NAME_MAX {
        return err(&format!("is longer than {NAME_MAX} characters"));
    }
    if name.starts_with(['.', '-']) {
        return err("must not start with `.` or `-`");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return err(&format!(
            "holds {c:?}: only letters, digits, `.`, `_` and `-` are allowed"
        ));
    }
    Ok(())
}

/// `base/<name><suffix>`: the one way a file path is built from a node or load-balancer name.
/// The name must be a [`valid_name`], and the suffix may hold no separator, NUL or control
/// character, so the result is always a direct child of `base` (never `..`, never elsewhere).
pub fn name_path(base: &Path, name: &str, suffix: &str) -> Result<PathBuf, NameError> {
    valid_name("name", name)?;
    if suffix
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(NameError::new(
            "suffix",
            suffix,
            "must hold no separator or control character",
        ));
    }
    let file = format!("{name}{suffix}");
    if file == "." || file == ".." {
        return Err(NameError::new("name", &file, "is not a file name"));
    }
    Ok(base.join(file))
}

/// A node's Keystone API root, the URL cutover joins `/v3/...` to: `keystone_url` as an
/// operator writes it, or as a clouds.yaml `auth_url` reads, with a trailing API version
/// (`/v3`, `/v2.0`) and trailing slashes taken off; a path prefix stays.
/// `http://10.0.0.11:5000/v3/` → `http://10.0.0.11:5000`, `https://ctl/identity/v3` →
/// `https://ctl/identity`. The error (for `keystone_url <error>`) names the URL and what is
/// wrong with it.
pub fn keystone_root(url: &str) -> Result<String, String> {
    let given = url.trim();
    if !(given.starts_with("http://") || given.starts_with("https://")) {
        return Err(format!("`{given}` must start with http:// or https://"));
    }
    let u =
        reqwest::Url::parse(given).map_err(|e| format!("`{given}` is not a valid URL ({e})"))?;
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{given}` names no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "`{given}` holds a user name or password: credentials come from clouds.yaml or OS_* variables, give the URL without them"
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "`{given}` has a query or fragment: give the node's API root, e.g. http://10.0.0.11:5000"
        ));
    }
    let mut segments: Vec<&str> = u
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if segments
        .last()
        .is_some_and(|s| s.eq_ignore_ascii_case("v3") || s.eq_ignore_ascii_case("v2.0"))
    {
        segments.pop();
    }
    let mut root = u.origin().ascii_serialization();
    for s in segments {
        root.push('/');
        root.push_str(s);
    }
    Ok(root)
}

/// `file:line:column` for a serde_yaml error, or just the file.
pub fn location(origin: &str, e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(l) => format!("{origin}:{}:{}", l.line(), l.column()),
        None => origin.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_url_is_the_api_root() {
        for (given, root) in [
            ("http://10.0.0.11:5000", "http://10.0.0.11:5000"),
            ("http://10.0.0.11:5000/", "http://10.0.0.11:5000"),
            ("http://10.0.0.11:5000/v3", "http://10.0.0.11:5000"),
            ("http://10.0.0.11:5000/v3/", "http://10.0.0.11:5000"),
            ("http://10.0.0.11:5000/V3", "http://10.0.0.11:5000"),
            ("http://10.0.0.11:5000/v2.0", "http://10.0.0.11:5000"),
            (
                "https://ctl.example/identity/v3",
                "https://ctl.example/identity",
            ),
            (
                "https://ctl.example/identity/v3/",
                "https://ctl.example/identity",
            ),
            (
                "https://ctl.example/identity",
                "https://ctl.example/identity",
            ),
            ("  http://[::1]:5000/v3  ", "http://[::1]:5000"),
            // The default port says nothing: the origin is the same without it.
            ("https://ctl.example:443/v3", "https://ctl.example"),
            // Only a trailing version goes: /v3 inside a prefix is the operator's.
            ("http://h/v3/identity", "http://h/v3/identity"),
            ("http://h/v3/v3", "http://h/v3"),
        ] {
            assert_eq!(keystone_root(given).as_deref(), Ok(root), "{given}");
        }
        for (bad, says) in [
            ("10.0.0.11:5000", "must start with http:// or https://"),
            ("ftp://h/v3", "must start with http:// or https://"),
            ("http://", "not a valid URL"),
            ("http://admin:secret@h:5000/v3", "user name or password"),
            ("http://h:5000/v3?x=1", "query or fragment"),
            ("http://h:5000/v3#top", "query or fragment"),
        ] {
            let e = keystone_root(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn inventory_keeps_the_normalised_keystone_url() {
        let text = "cluster: c\nnodes:\n  - {name: n1, reach: local, keystone_url: 'http://127.0.0.1:5000/v3/'}\n  - {name: n2, reach: local, keystone_url: 'https://ctl/identity/v3'}\n";
        let inv = Inventory::parse(text, "i.yaml").unwrap();
        assert_eq!(inv.nodes[0].keystone_url, "http://127.0.0.1:5000");
        assert_eq!(inv.nodes[1].keystone_url, "https://ctl/identity");
        // What the journal records (the inventory serialised) is the root.
        let yaml = serde_yaml::to_string(&inv).unwrap();
        assert!(!yaml.contains("/v3"), "{yaml}");
        let e = Inventory::parse(
            "cluster: c\nnodes:\n  - {name: n1, reach: local, keystone_url: '10.0.0.1:5000'}\n",
            "i.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("node `n1`: keystone_url `10.0.0.1:5000` must start with http://"),
            "{e}"
        );
    }

    #[test]
    fn names_are_confined() {
        for ok in ["node1", "ks-1", "a.b_c", "A9", &"x".repeat(63)] {
            assert_eq!(valid_name("nodes[].name", ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../../../../evil",
            "a/b",
            "x'y",
            "$(id)",
            "a`id`",
            "-rf",
            ".hidden",
            "..",
            "a\u{1b}[31m",
            "a\nb",
            "a\0b",
            "a b",
            "a\\b",
            "é",
            &"x".repeat(64),
        ] {
            let e = valid_name("nodes[].name", bad).expect_err(bad);
            assert_eq!(e.field, "nodes[].name");
            assert_eq!(e.value, format!("{bad:?}"));
            assert!(
                !e.to_string().chars().any(|c| c.is_control()),
                "{e:?} is printable"
            );
        }
    }

    #[test]
    fn name_path_stays_in_its_directory() {
        let base = Path::new("/srv/keys");
        assert_eq!(
            name_path(base, "node1", ".pem").unwrap(),
            Path::new("/srv/keys/node1.pem")
        );
        assert_eq!(
            name_path(base, "node1", ".ab12cd.pem").unwrap(),
            Path::new("/srv/keys/node1.ab12cd.pem")
        );
        assert_eq!(name_path(base, "node1", "").unwrap(), base.join("node1"));
        for (name, suffix) in [
            ("../../../../evil", ".pem"),
            ("a/b", ""),
            ("..", ""),
            (".", ""),
            ("", ".pem"),
            ("a\0b", ""),
            ("a\nb", ""),
            ("-rf", ""),
            ("node1", "/../../evil"),
            ("node1", ".pem\0"),
            ("node1", "\n.pem"),
            ("node1", "\\x"),
        ] {
            assert!(
                name_path(base, name, suffix).is_err(),
                "{name:?} {suffix:?}"
            );
        }
    }

    #[test]
    fn inventories_with_bad_or_repeated_names_are_refused() {
        // JSON strings are YAML double-quoted scalars: any character can be written.
        let q = |s: &str| serde_json::to_string(s).unwrap();
        let inv = |node: &str, lb: &str, server: &str| {
            format!(
                "cluster: c\nnodes:\n  - name: {n}\n    reach: local\n    keystone_url: http://127.0.0.1:5000\nload_balancers:\n  - name: {l}\n    address: 127.0.0.1:9999\n    backend: b\n    servers: {{{n}: {s}}}\n",
                n = q(node),
                l = q(lb),
                s = q(server)
            )
        };
        assert!(Inventory::parse(&inv("n1", "lb1", "ks1"), "i.yaml").is_ok());
        for (node, lb, server, field) in [
            ("../evil", "lb1", "ks1", "nodes[].name"),
            ("n1", "lb/1", "ks1", "load_balancers[].name"),
            ("n1", "lb1", "ks1\x1b[31m", "load_balancers[].servers"),
            ("n1", "lb1", "a;b", "load_balancers[].servers"),
        ] {
            let e = Inventory::parse(&inv(node, lb, server), "i.yaml")
                .expect_err(node)
                .to_string();
            assert!(e.contains(field), "{e}");
            assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
        }
        let twice = "cluster: c\nnodes:\n  - {name: n1, reach: local, keystone_url: 'http://a'}\n  - {name: n1, reach: local, keystone_url: 'http://b'}\n";
        let e = Inventory::parse(twice, "i.yaml").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn a_load_balancer_may_name_its_frontend_url() {
        let base = "cluster: c\nnodes:\n  - {name: n1, reach: local, keystone_url: 'http://127.0.0.1:5000'}\nload_balancers:\n  - name: lb1\n    address: 127.0.0.1:9999\n    backend: b\n";
        // Without it, as every inventory written before it existed: valid, and written back
        // without the field.
        let inv = Inventory::parse(base, "i.yaml").unwrap();
        assert_eq!(inv.load_balancers[0].frontend_url, None);
        assert!(
            !serde_yaml::to_string(&inv)
                .unwrap()
                .contains("frontend_url")
        );
        // With it: kept as the API root, as a node's keystone_url is.
        let inv = Inventory::parse(
            &format!("{base}    frontend_url: 'https://ks.example:5000/v3/'\n"),
            "i.yaml",
        )
        .unwrap();
        assert_eq!(
            inv.load_balancers[0].frontend_url.as_deref(),
            Some("https://ks.example:5000")
        );
        let e = Inventory::parse(
            &format!("{base}    frontend_url: 'ks.example:5000'\n"),
            "i.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "load balancer `lb1`: frontend_url `ks.example:5000` must start with http://"
            ),
            "{e}"
        );
    }
}
