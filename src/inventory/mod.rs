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
    /// Where Keystone logs on the node; its tail is shown when a restart fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
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
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Inventory, InventoryError> {
        let inv: Inventory = serde_yaml::from_str(text).map_err(|e| InventoryError::Parse {
            path: location(origin, &e),
            msg: e.to_string(),
        })?;
        inv.validate(origin)?;
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
        let mut seen = std::collections::BTreeSet::new();
        for n in &self.nodes {
            if !seen.insert(&n.name) {
                return Err(bad(format!("node `{}` is listed twice", n.name)));
            }
            if !(n.keystone_url.starts_with("http://") || n.keystone_url.starts_with("https://")) {
                return Err(bad(format!(
                    "node `{}`: keystone_url `{}` must start with http:// or https://",
                    n.name, n.keystone_url
                )));
            }
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

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

/// `file:line:column` for a serde_yaml error, or just the file.
pub fn location(origin: &str, e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(l) => format!("{origin}:{}:{}", l.line(), l.column()),
        None => origin.to_string(),
    }
}
