//! The items of a step's `do:` list, in their YAML form: one struct per action's options, the
//! action's name as runbooks spell it, and the family that compiles it.

use super::de::{humantime_serde_compat, strict};
use super::gates::Gate;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One entry of a step's `do:` list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum Item {
    #[serde(rename = "probe")]
    Probe(Empty),
    #[serde(rename = "lb.drain")]
    LbDrain(LbDrain),
    #[serde(rename = "lb.ready")]
    LbReady(LbReady),
    #[serde(rename = "keystone.set_provider")]
    SetProvider(SetProvider),
    #[serde(rename = "keystone.create_jws_keypair")]
    CreateJwsKeypair(CreateJwsKeypair),
    #[serde(rename = "keystone.install_jws_keys")]
    InstallJwsKeys(InstallJwsKeys),
    /// Copy every node's staged public key into every node's public repository (rotation: all
    /// nodes accept the new keys before any node signs with them).
    #[serde(rename = "keystone.publish_staged_public_keys")]
    PublishStagedPublicKeys(Empty),
    /// Move aside public keys that no node's private.pem matches any more.
    #[serde(rename = "keystone.remove_retired_public_keys")]
    RemoveRetiredPublicKeys(Empty),
    /// Rotate the Fernet repository on the first node (`keystone-manage fernet_rotate`, or the
    /// same rotation natively): staged key 0 becomes primary, a new staged key appears.
    #[serde(rename = "keystone.rotate_fernet_keys")]
    RotateFernetKeys(Empty),
    /// Make every node's Fernet repository identical to the first node's (new keys written
    /// first, extra keys removed after).
    #[serde(rename = "keystone.sync_fernet_keys")]
    SyncFernetKeys(Empty),
    #[serde(rename = "keystone.distribute_public_keys")]
    DistributePublicKeys(Empty),
    #[serde(rename = "service.restart")]
    Restart(Restart),
    #[serde(rename = "keystone.issue_token")]
    IssueToken(IssueToken),
    #[serde(rename = "keystone.validate_matrix")]
    ValidateMatrix(IssueToken),
    #[serde(rename = "keystone.list_trusts")]
    ListTrusts(Empty),
    #[serde(rename = "wait")]
    Wait(Wait),
    #[serde(rename = "shell")]
    Shell(Shell),
    #[serde(rename = "confirm")]
    Confirm(Confirm),
    #[serde(rename = "gate")]
    Gate(Gate),
    #[serde(rename = "note")]
    Note(#[serde(deserialize_with = "strict::string")] String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LbDrain {
    /// How long to wait for the node's sessions to reach 0 before forcing maintenance.
    #[serde(default = "default_drain", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

fn default_drain() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LbReady {
    /// How long to wait for the server to come UP on every instance.
    #[serde(default = "default_ready", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

fn default_ready() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SetProvider {
    #[serde(deserialize_with = "strict::string")]
    pub provider: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateJwsKeypair {
    /// `per-node` (each node its own keypair, private keys never leave their node) or `shared`.
    #[serde(default = "default_strategy", deserialize_with = "strict::string")]
    pub strategy: String,
}

fn default_strategy() -> String {
    "per-node".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstallJwsKeys {
    /// Also install the node's own public key as `<node>.pem` (false when rotating: the new
    /// public keys were published beforehand and the old ones must stay until they retire).
    #[serde(default = "yes")]
    pub public: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// How long to wait for the node to answer GET /v3 after the restart command returned.
    #[serde(default = "default_restart", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

fn default_restart() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    /// The token format the node must issue: `jws` or `fernet`.
    #[serde(deserialize_with = "strict::string")]
    pub expect: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    #[serde(default, with = "humantime_serde_compat::option")]
    pub duration: Option<Duration>,
    /// A named condition: `old-tokens-expired`.
    #[serde(default)]
    pub until: Option<WaitCondition>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WaitCondition {
    OldTokensExpired,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Shell {
    /// A template; see `template` for the variables.
    #[serde(deserialize_with = "strict::string")]
    pub command: String,
    #[serde(default)]
    pub expect_status: i32,
    #[serde(default)]
    pub sudo: bool,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub timeout: Option<Duration>,
    /// In an each-node step a shell command runs only while its node is out of the pool
    /// (cutover checks, as for a flip); `pooled: true` says it is safe on a pooled node.
    #[serde(default)]
    pub pooled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// The hard stop's id, used by answers files and in the journal.
    #[serde(deserialize_with = "strict::string")]
    pub id: String,
    #[serde(deserialize_with = "strict::string")]
    pub title: String,
    /// The hazard, in plain words.
    #[serde(deserialize_with = "strict::string")]
    pub message: String,
    #[serde(default, deserialize_with = "strict::string")]
    pub consequence: String,
}

/// The action family an item belongs to: the engine compiles each action item with its family
/// (`engine::action::{lb, keystone, keys, service, misc}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Lb,
    Keystone,
    Keys,
    Service,
    Misc,
}

impl Item {
    /// The action's name as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Item::Probe(_) => "probe",
            Item::LbDrain(_) => "lb.drain",
            Item::LbReady(_) => "lb.ready",
            Item::SetProvider(_) => "keystone.set_provider",
            Item::CreateJwsKeypair(_) => "keystone.create_jws_keypair",
            Item::InstallJwsKeys(_) => "keystone.install_jws_keys",
            Item::PublishStagedPublicKeys(_) => "keystone.publish_staged_public_keys",
            Item::RemoveRetiredPublicKeys(_) => "keystone.remove_retired_public_keys",
            Item::RotateFernetKeys(_) => "keystone.rotate_fernet_keys",
            Item::SyncFernetKeys(_) => "keystone.sync_fernet_keys",
            Item::DistributePublicKeys(_) => "keystone.distribute_public_keys",
            Item::Restart(_) => "service.restart",
            Item::IssueToken(_) => "keystone.issue_token",
            Item::ValidateMatrix(_) => "keystone.validate_matrix",
            Item::ListTrusts(_) => "keystone.list_trusts",
            Item::Wait(_) => "wait",
            Item::Shell(_) => "shell",
            Item::Confirm(_) => "confirm",
            Item::Gate(_) => "gate",
            Item::Note(_) => "note",
        }
    }

    /// The action family that compiles this item; None for what is no action (a gate, a
    /// confirm, a note), which the plan places itself.
    pub fn family(&self) -> Option<Family> {
        Some(match self {
            Item::LbDrain(_) | Item::LbReady(_) => Family::Lb,
            Item::SetProvider(_)
            | Item::IssueToken(_)
            | Item::ValidateMatrix(_)
            | Item::ListTrusts(_) => Family::Keystone,
            Item::CreateJwsKeypair(_)
            | Item::InstallJwsKeys(_)
            | Item::PublishStagedPublicKeys(_)
            | Item::RemoveRetiredPublicKeys(_)
            | Item::RotateFernetKeys(_)
            | Item::SyncFernetKeys(_)
            | Item::DistributePublicKeys(_) => Family::Keys,
            Item::Restart(_) | Item::Shell(_) => Family::Service,
            Item::Probe(_) | Item::Wait(_) => Family::Misc,
            Item::Confirm(_) | Item::Gate(_) | Item::Note(_) => return None,
        })
    }

    /// Strings in this item that are templates.
    pub fn templates(&self) -> Vec<&str> {
        match self {
            Item::SetProvider(s) => vec![&s.provider],
            Item::CreateJwsKeypair(c) => vec![&c.strategy],
            Item::IssueToken(t) | Item::ValidateMatrix(t) => vec![&t.expect],
            Item::Shell(s) => vec![&s.command],
            Item::Confirm(c) => vec![&c.title, &c.message, &c.consequence],
            Item::Note(n) => vec![n],
            _ => vec![],
        }
    }
}
