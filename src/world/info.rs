//! What a world is: its description in `DIR/world.json` (nodes, load balancers, the files and
//! ports of each) and reading it back. Creating one is [`super::layout`]'s; serving one is
//! [`super::serve`]'s.

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The shape of a new world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldSpec {
    /// Keystone nodes (`node1`, `node2`, ...).
    pub nodes: usize,
    /// HAProxy instances (`haproxy-1`, ...) fronting every node.
    pub lbs: usize,
}

impl Default for WorldSpec {
    fn default() -> Self {
        WorldSpec { nodes: 3, lbs: 1 }
    }
}

/// Everything known about a world, persisted as `DIR/world.json`. All paths are absolute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldInfo {
    /// Format version of world.json.
    pub version: u32,
    pub dir: PathBuf,
    pub cluster: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub nodes: Vec<WorldNode>,
    pub lbs: Vec<WorldLb>,
    pub inventory_path: PathBuf,
    pub clouds_path: PathBuf,
    pub trusts_path: PathBuf,
    /// The cloud name in clouds.yaml.
    pub cloud: String,
    /// Identity of the one user the stand-ins know (`admin` in domain `Default`).
    pub admin_user_id: String,
    pub admin_project_id: String,
    /// The lifetime (seconds) of the world's shared token cache, if it has one (`world create
    /// --token-cache SECONDS`); every node's keystone.conf then enables `[cache]`. Absent in
    /// worlds without one, and in worlds made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_cache: Option<u64>,
}

/// Options of a new world beyond its shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorldOptions {
    /// Give the nodes one shared token cache with this lifetime in seconds (see
    /// `world::token_cache`), as one memcached shared by the nodes is in kolla-ansible and
    /// OpenStack-Ansible deployments.
    pub token_cache: Option<u64>,
}

/// One Keystone node of the world.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldNode {
    /// `node1`, `node2`, ...
    pub name: String,
    /// Loopback port of this node's Keystone API.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub keystone_url: String,
    /// `DIR/nodeK`.
    pub dir: PathBuf,
    pub keystone_conf: PathBuf,
    pub fernet_repo: PathBuf,
    pub jws_private_repo: PathBuf,
    pub jws_public_repo: PathBuf,
    pub log_file: PathBuf,
    pub run_dir: PathBuf,
    /// The restart script (`DIR/nodeK/bin/keystone-restart`).
    pub restart: PathBuf,
}

impl WorldNode {
    /// The file whose existence asks the stand-in to restart.
    pub fn restart_request(&self) -> PathBuf {
        self.run_dir.join("restart.req")
    }
}

/// One HAProxy instance of the world.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldLb {
    /// `haproxy-1`, ...
    pub name: String,
    /// Admin socket (`DIR/haproxy-K.sock`).
    pub socket: PathBuf,
    /// Runtime state file (`DIR/haproxy-K.state`).
    pub state_file: PathBuf,
    /// The configuration this instance runs (`DIR/haproxy-K.cfg`), named as `config:` in the
    /// inventory. Absent in worlds made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Loopback port of the frontend.
    pub frontend_port: u16,
    /// `http://127.0.0.1:PORT`.
    pub frontend_url: String,
    /// Backend (and listen proxy) name: `keystone_api`.
    pub backend: String,
    pub servers: Vec<WorldServer>,
}

/// A server line of a backend: which node it points at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorldServer {
    /// `ks1`, `ks2`, ...
    pub name: String,
    /// The node's name (`node1`, ...).
    pub node: String,
    /// The node's Keystone port.
    pub port: u16,
}

impl WorldInfo {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&WorldNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The cutover inventory this world wrote.
    pub fn inventory(&self) -> anyhow::Result<crate::inventory::Inventory> {
        Ok(crate::inventory::Inventory::load(&self.inventory_path)?)
    }

    /// The Keystone URL clients should use: the first load balancer's frontend, or the first
    /// node when the world has no load balancer.
    pub fn public_url(&self) -> String {
        match self.lbs.first() {
            Some(lb) => lb.frontend_url.clone(),
            None => self.nodes[0].keystone_url.clone(),
        }
    }
}

/// Current format version of world.json.
pub const WORLD_VERSION: u32 = 1;

/// Read an existing world from `DIR/world.json`.
pub fn load(dir: &Path) -> anyhow::Result<WorldInfo> {
    let path = dir.join("world.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let info: WorldInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a world description", path.display()))?;
    if info.version != WORLD_VERSION {
        bail!(
            "{} has format version {}, this cutover understands {WORLD_VERSION}",
            path.display(),
            info.version
        );
    }
    let here =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    if here != info.dir {
        bail!(
            "{} describes a world at {}, not {} (was the directory moved? create a new world)",
            path.display(),
            info.dir.display(),
            here.display()
        );
    }
    Ok(info)
}
