//! Runbooks: YAML files that name the steps of a change, their scope over the fleet, the typed
//! actions each step runs, the gates that guard them and the hard stops where a person decides.
//!
//! Loading is strict: unknown keys, unknown actions or gates, wrong types, missing fields and
//! templates that name undefined variables are errors with `file:line:column`.

pub mod template;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    #[serde(deserialize_with = "strict::string")]
    pub name: String,
    #[serde(deserialize_with = "strict::string")]
    pub title: String,
    #[serde(default, deserialize_with = "strict::string")]
    pub description: String,
    /// The token provider the runbook moves the fleet to; gates compare against it.
    #[serde(deserialize_with = "strict::string")]
    pub target_provider: String,
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// The pool guard's mode for this runbook (else the inventory's, else enforce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<crate::inventory::GuardMode>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Param {
    #[serde(deserialize_with = "strict::string")]
    pub default: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "strict::strings"
    )]
    pub choices: Vec<String>,
    #[serde(default, deserialize_with = "strict::string")]
    pub description: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The step runs once for the whole fleet.
    Once,
    /// Node by node, every item for one node before the next node (a rolling step).
    EachNode,
    /// Every item on all nodes at once, item by item.
    AllNodes,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(deserialize_with = "strict::string")]
    pub id: String,
    #[serde(deserialize_with = "strict::string")]
    pub title: String,
    #[serde(default, deserialize_with = "strict::string")]
    pub description: String,
    pub scope: Scope,
    /// Each item is a one-key map (`- lb.drain: {timeout: 60s}`).
    #[serde(rename = "do", with = "serde_yaml::with::singleton_map_recursive")]
    pub items: Vec<Item>,
}

/// A named safety gate, evaluated by the engine on fresh probes right before what it guards.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// Every node reports the same provider.
    ProvidersAgree,
    /// No node is configured for the target provider yet (the change has not begun, or was
    /// rolled back): running a migration on a fleet that already made it would re-key live nodes.
    NotOnTarget,
    /// Every node answers and is UP and ready on every load-balancer instance.
    PoolHealthy,
    /// Every node holds private.pem (mode 0600/0640, keystone-owned) and every node's public key
    /// is on every node.
    KeysEverywhere,
    /// Every node's staged (next) public key is already in every node's public repository, so a
    /// node may start signing with it.
    StagedKeysEverywhere,
    /// Every node holds the same, non-empty Fernet key repository.
    FernetKeysEverywhere,
    /// Taking the node out leaves at least one other server in every instance's pool; if not,
    /// a hard stop (draining it is an outage until it rejoins).
    PoolCapacity,
    /// The node is in maintenance on every load-balancer instance.
    OutOfPool,
    /// A token issued directly at the node is of the target format and validates there.
    ValidatedBeforeReadd,
    /// Re-adding the node would put two providers in the pool: a hard stop.
    MixedPool,
    /// The node is UP and ready on every load-balancer instance.
    InPool,
    /// Every node runs the target provider and is back in the pool.
    AllTarget,
}

impl Gate {
    pub fn name(&self) -> &'static str {
        match self {
            Gate::ProvidersAgree => "providers-agree",
            Gate::NotOnTarget => "not-on-target",
            Gate::PoolHealthy => "pool-healthy",
            Gate::KeysEverywhere => "keys-everywhere",
            Gate::FernetKeysEverywhere => "fernet-keys-everywhere",
            Gate::StagedKeysEverywhere => "staged-keys-everywhere",
            Gate::PoolCapacity => "pool-capacity",
            Gate::OutOfPool => "out-of-pool",
            Gate::ValidatedBeforeReadd => "validated-before-readd",
            Gate::MixedPool => "mixed-pool",
            Gate::InPool => "in-pool",
            Gate::AllTarget => "all-target",
        }
    }

    /// Gates about one node need a node scope; the others look at the whole fleet.
    pub fn per_node(&self) -> bool {
        matches!(
            self,
            Gate::OutOfPool
                | Gate::PoolCapacity
                | Gate::ValidatedBeforeReadd
                | Gate::MixedPool
                | Gate::InPool
        )
    }
}

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

/// Strings that are strings in the YAML. serde_yaml hands a plain scalar such as `42`, `true`
/// or `~` to a `String` field as its text; a runbook that says `title: 42` most likely meant
/// something else, so a string field takes only a string (quote it: `title: "42"`).
mod strict {
    use serde::Deserializer;
    use serde::de::{self, SeqAccess, Unexpected, Visitor};
    use std::fmt;

    struct Str;

    impl<'de> Visitor<'de> for Str {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string (quote a number, true/false or ~ to use it as text)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Signed(v), &self))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Unit, &self))
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Option, &self))
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_any(Str)
    }

    struct Strs;

    impl<'de> Visitor<'de> for Strs {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            struct One(String);
            impl<'de> serde::Deserialize<'de> for One {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<One, D::Error> {
                    string(d).map(One)
                }
            }
            let mut out = Vec::new();
            while let Some(One(s)) = seq.next_element()? {
                out.push(s);
            }
            Ok(out)
        }
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_seq(Strs)
    }
}

/// Durations written as humantime strings ("90s", "2m") in YAML.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("`{s}` is not a duration like 30s or 2m: {e}"))
        })
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Ok(Some(super::deserialize(d)?))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error("{location}: {msg}")]
    Invalid { location: String, msg: String },
    #[error("cannot read {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error(
        "runbook `{arg}`: no such file, and no shipped runbook has that name{hint}. Shipped runbooks: {names} (`cutover runbooks` lists them with their titles)"
    )]
    NotFound {
        arg: String,
        names: String,
        hint: String,
    },
}

/// A runbook with the text it came from (kept for the journal and for error positions).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub runbook: Runbook,
    pub source: String,
    pub origin: String,
}

impl Runbook {
    pub fn load(path: &Path) -> Result<Loaded, RunbookError> {
        let source = std::fs::read_to_string(path).map_err(|err| RunbookError::Io {
            path: path.display().to_string(),
            err,
        })?;
        let origin = path.display().to_string();
        let runbook = Self::parse(&source, &origin)?;
        Ok(Loaded {
            runbook,
            source,
            origin,
        })
    }

    pub fn parse(source: &str, origin: &str) -> Result<Runbook, RunbookError> {
        let rb: Runbook = serde_yaml::from_str(source).map_err(|e| RunbookError::Invalid {
            location: crate::inventory::location(origin, &e),
            msg: explain(&e.to_string()),
        })?;
        rb.validate(source, origin)?;
        Ok(rb)
    }

    fn validate(&self, source: &str, origin: &str) -> Result<(), RunbookError> {
        let at = |needle: &str| position(source, origin, needle);
        if !["fernet", "jws"].contains(&self.target_provider.as_str()) {
            return Err(RunbookError::Invalid {
                location: at("target_provider"),
                msg: format!(
                    "target_provider `{}`: expected fernet or jws",
                    self.target_provider
                ),
            });
        }
        for (name, p) in &self.params {
            if !p.choices.is_empty() && !p.choices.contains(&p.default) {
                return Err(RunbookError::Invalid {
                    location: at(name),
                    msg: format!(
                        "param `{name}`: default `{}` is not one of {:?}",
                        p.default, p.choices
                    ),
                });
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for step in &self.steps {
            // Errors inside a step point into that step: search from its `id:` onwards.
            let step_at = step_offset(source, &step.id);
            let at = |needle: &str| position_from(source, origin, step_at, needle);
            if !ids.insert(step.id.as_str()) {
                return Err(RunbookError::Invalid {
                    location: at(&step.id),
                    msg: format!("step id `{}` is used twice", step.id),
                });
            }
            for item in &step.items {
                if let Item::Gate(g) = item
                    && g.per_node()
                    && step.scope == Scope::Once
                {
                    return Err(RunbookError::Invalid {
                        location: at(&format!("gate: {}", g.name())),
                        msg: format!(
                            "gate `{}` is about one node; use it in an each-node or all-nodes step (step `{}` is once)",
                            g.name(),
                            step.id
                        ),
                    });
                }
                let with_node = step.scope != Scope::Once;
                for t in item.templates() {
                    if let Err(e) = template::check(t, self, with_node, true) {
                        return Err(RunbookError::Invalid {
                            location: template_at(source, origin, step_at, t, &e),
                            msg: e.msg,
                        });
                    }
                }
            }
            if let Err(e) = template::check(&step.title, self, false, false) {
                return Err(RunbookError::Invalid {
                    location: template_at(source, origin, step_at, &step.title, &e),
                    msg: e.msg,
                });
            }
        }
        Ok(())
    }

    /// Parameters with defaults applied and overrides checked against their choices.
    pub fn resolve_params(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in overrides {
            let Some(p) = self.params.get(k) else {
                return Err(format!(
                    "runbook `{}` has no parameter `{k}` (it has: {})",
                    self.name,
                    self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            if !p.choices.is_empty() && !p.choices.contains(v) {
                return Err(format!(
                    "parameter `{k}` = `{v}`: expected one of {}",
                    p.choices.join(", ")
                ));
            }
        }
        for (k, p) in &self.params {
            out.insert(
                k.clone(),
                overrides
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| p.default.clone()),
            );
        }
        Ok(out)
    }
}

/// The runbooks shipped in `runbooks/`, built into the binary: (file name, text).
pub fn shipped() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "fernet-to-jws.yaml",
            include_str!("../../runbooks/fernet-to-jws.yaml"),
        ),
        (
            "jws-to-fernet.yaml",
            include_str!("../../runbooks/jws-to-fernet.yaml"),
        ),
        (
            "jws-rotate.yaml",
            include_str!("../../runbooks/jws-rotate.yaml"),
        ),
        (
            "jws-retire-keys.yaml",
            include_str!("../../runbooks/jws-retire-keys.yaml"),
        ),
        (
            "fernet-rotate.yaml",
            include_str!("../../runbooks/fernet-rotate.yaml"),
        ),
    ]
}

/// Text on one line: every run of whitespace, newlines included, as one space (a title written
/// over two lines in the YAML is one line in a listing, a plan, a heading).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The answers file shipped beside the runbooks (`cutover runbooks show demo-answers`): every
/// hard stop of the flagship and its rollback confirmed, for headless rehearsals.
pub const SHIPPED_ANSWERS: (&str, &str) = (
    "demo-answers.yaml",
    include_str!("../../runbooks/demo-answers.yaml"),
);

/// The name a shipped file is called by: its file name without `.yaml`.
pub fn shipped_name(file: &str) -> &str {
    file.strip_suffix(".yaml").unwrap_or(file)
}

/// A shipped runbook by name, with or without `.yaml`: (file name, text).
pub fn shipped_named(name: &str) -> Option<(&'static str, &'static str)> {
    let name = shipped_name(name);
    shipped()
        .iter()
        .find(|(file, _)| shipped_name(file) == name)
        .copied()
}

/// The origin a run records for a shipped runbook: which one, and that it came from the binary.
pub fn shipped_origin(file: &str) -> String {
    format!("built-in {file} (cutover {})", env!("CARGO_PKG_VERSION"))
}

/// The shipped runbook a recorded origin names (see [`shipped_origin`]), as this cutover ships
/// it: (file name, text). None for a file's origin. For resume's note on the run's inputs: a
/// built-in runbook has no file to compare with, only this binary's copy.
pub fn shipped_by_origin(origin: &str) -> Option<(&'static str, &'static str)> {
    let rest = origin.strip_prefix("built-in ")?;
    let file = rest.split(" (cutover ").next()?;
    shipped_named(file).filter(|(f, _)| *f == file)
}

impl Runbook {
    /// A runbook named on the command line: an existing path wins, else a shipped runbook by
    /// name (`jws-to-fernet`, with or without `.yaml`), else an error listing the shipped names.
    /// A file's origin is its path as given; a shipped one's says `built-in` (see
    /// [`shipped_origin`]).
    pub fn resolve(arg: &Path) -> Result<Loaded, RunbookError> {
        if arg.exists() {
            return Self::load(arg);
        }
        let text = arg.to_string_lossy();
        if let Some((file, source)) = shipped_named(&text) {
            let origin = shipped_origin(file);
            let runbook = Self::parse(source, &origin)?;
            return Ok(Loaded {
                runbook,
                source: source.to_string(),
                origin,
            });
        }
        // `runbooks/jws-to-fernet.yaml` away from a checkout: say which name would do.
        let like = arg
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(shipped_named)
            .map(|(file, _)| {
                format!(
                    "; to use the shipped one, name it: `{}`",
                    shipped_name(file)
                )
            })
            .unwrap_or_default();
        Err(RunbookError::NotFound {
            arg: text.into_owned(),
            names: shipped()
                .iter()
                .map(|(f, _)| shipped_name(f))
                .collect::<Vec<_>>()
                .join(", "),
            hint: like,
        })
    }
}

/// The hard stops the engine raises by itself, whatever the runbook.
pub const ENGINE_HARD_STOPS: &[&str] = &[
    "mixed-pool",
    "pool-capacity",
    "pool-breach",
    "drift",
    "in-doubt",
    "unknown-host-key",
];

impl Runbook {
    /// The ids of the runbook's `confirm` hard stops.
    pub fn confirm_ids(&self) -> Vec<&str> {
        self.steps
            .iter()
            .flat_map(|s| &s.items)
            .filter_map(|i| match i {
                Item::Confirm(c) => Some(c.id.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// The hard-stop ids an answers file may name for `rb`: its confirms, the engine's own, and the
/// confirms of every shipped runbook (one answers file may serve a runbook and its rollback).
pub fn answerable_ids(rb: &Runbook) -> std::collections::BTreeSet<String> {
    let mut ids: std::collections::BTreeSet<String> =
        rb.confirm_ids().into_iter().map(str::to_string).collect();
    ids.extend(ENGINE_HARD_STOPS.iter().map(|s| s.to_string()));
    for (name, text) in shipped() {
        if let Ok(other) = Runbook::parse(text, name) {
            ids.extend(other.confirm_ids().into_iter().map(str::to_string));
        }
    }
    ids
}

/// Every key of an answers file names a hard stop ([`answerable_ids`]), alone or as `ID@NODE`
/// with a node of the inventory: a typo must not leave a hard stop unanswered in silence.
pub fn check_answer_ids<'a>(
    keys: impl IntoIterator<Item = &'a String>,
    rb: &Runbook,
    nodes: &[String],
) -> Result<(), String> {
    let ids = answerable_ids(rb);
    for key in keys {
        let (id, node) = match key.split_once('@') {
            Some((id, node)) => (id, Some(node)),
            None => (key.as_str(), None),
        };
        let known_id = ids.contains(id);
        let known_node = node.is_none_or(|n| nodes.iter().any(|m| m == n));
        if !known_id {
            return Err(format!(
                "`{key}` is not a hard stop of runbook `{}` nor of any shipped runbook; valid ids: {} (or ID@NODE with a node of the inventory: {})",
                rb.name,
                ids.iter().cloned().collect::<Vec<_>>().join(", "),
                nodes.join(", ")
            ));
        }
        if !known_node {
            return Err(format!(
                "`{key}`: the inventory has no node `{}` (its nodes: {})",
                node.unwrap_or_default(),
                nodes.join(", ")
            ));
        }
    }
    Ok(())
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

/// serde's messages name Rust types; say it in the runbook's words.
fn explain(msg: &str) -> String {
    msg.replace("unknown variant", "unknown action or value")
        .replace("variant identifier", "action name")
}

/// Byte offset of step `id`'s `id:` line (0 when not found).
fn step_offset(source: &str, id: &str) -> usize {
    for (off, _) in source.match_indices("id:") {
        let rest = source[off + 3..].trim_start_matches([' ', '\t']);
        let rest = rest.trim_start_matches(['"', '\'']);
        if rest.starts_with(id)
            && rest[id.len()..].chars().next().is_none_or(|c| {
                c == '\n' || c == '\r' || c == '"' || c == '\'' || c == ' ' || c == '#'
            })
        {
            return off;
        }
    }
    0
}

/// Where a template's error is: the undefined variable's line and column when the template's
/// lines can be followed in the source (a one-line or literal block template), else the
/// template's first line.
fn template_at(
    source: &str,
    origin: &str,
    from: usize,
    template: &str,
    e: &template::TemplateError,
) -> String {
    let whole = position_from(source, origin, from, template);
    let Some((name, line)) = &e.at else {
        return whole;
    };
    let first = template.lines().next().unwrap_or(template).trim();
    let start = match source.get(from..).and_then(|tail| tail.find(first)) {
        Some(off) if !first.is_empty() => from + off,
        _ => match source.find(first) {
            Some(off) if !first.is_empty() => off,
            _ => return whole,
        },
    };
    // The start of the source line holding the template's line `line`.
    let mut line_start = source[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    for _ in 1..*line {
        match source[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return whole,
        }
    }
    let line_end = source[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(source.len());
    // On the template's first line, only from where the template starts.
    let search_from = if *line == 1 { start } else { line_start };
    match template::find_name(&source[search_from..line_end], name) {
        Some(off) => line_col(source, origin, search_from + off),
        None => whole,
    }
}

/// Like `position`, searching from byte `from` first (then from the start).
pub fn position_from(source: &str, origin: &str, from: usize, needle: &str) -> String {
    let first = needle.lines().next().unwrap_or(needle).trim();
    match source.get(from..).and_then(|tail| tail.find(first)) {
        Some(off) if !first.is_empty() => line_col(source, origin, from + off),
        _ => position(source, origin, needle),
    }
}

fn line_col(source: &str, origin: &str, off: usize) -> String {
    let before = &source[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{origin}:{line}:{col}")
}

/// The `file:line:column` of the first occurrence of `needle` in `source` (or the file alone).
pub fn position(source: &str, origin: &str, needle: &str) -> String {
    if needle.is_empty() {
        return origin.to_string();
    }
    // Templates in YAML may be quoted or folded; look for the first line of the needle.
    let first = needle.lines().next().unwrap_or(needle).trim();
    match source.find(first) {
        Some(off) => {
            let before = &source[..off];
            let line = before.matches('\n').count() + 1;
            let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("{origin}:{line}:{col}")
        }
        None => origin.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_runbook_parses_and_the_demo_answers_serve_each() {
        let answers: BTreeMap<String, String> =
            serde_yaml::from_str(include_str!("../../runbooks/demo-answers.yaml")).unwrap();
        let nodes = vec!["node1".to_string(), "node2".to_string()];
        for (name, text) in shipped() {
            let rb = Runbook::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            check_answer_ids(answers.keys(), &rb, &nodes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
        let on_disk = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml") && n != "demo-answers.yaml")
            .count();
        assert_eq!(on_disk, shipped().len(), "runbooks/ and shipped() differ");
    }

    #[test]
    fn a_runbook_is_a_path_else_a_shipped_name() {
        // By name, with or without .yaml, from anywhere: the built-in text, origin saying so.
        for name in ["jws-to-fernet", "jws-to-fernet.yaml"] {
            let l = Runbook::resolve(Path::new(name)).unwrap();
            assert_eq!(l.runbook.name, "jws-to-fernet");
            assert_eq!(l.source, shipped_named("jws-to-fernet").unwrap().1);
            assert!(
                l.origin.starts_with("built-in jws-to-fernet.yaml"),
                "{}",
                l.origin
            );
        }
        // An existing path wins over a shipped name.
        let dir = tempfile_dir();
        let file = dir.join("jws-to-fernet");
        let text = shipped_named("jws-rotate").unwrap().1;
        std::fs::write(&file, text).unwrap();
        let l = Runbook::resolve(&file).unwrap();
        assert_eq!(l.runbook.name, "jws-rotate");
        assert_eq!(l.origin, file.display().to_string());
        // Neither: the error lists every shipped name, and which one a stale path meant.
        let e = Runbook::resolve(Path::new("/nowhere/runbooks/jws-to-fernet.yaml"))
            .unwrap_err()
            .to_string();
        for (f, _) in shipped() {
            assert!(e.contains(shipped_name(f)), "{e}");
        }
        assert!(e.contains("name it: `jws-to-fernet`"), "{e}");
        let l = Runbook::resolve(Path::new("jws-rotate")).unwrap();
        assert_eq!(
            shipped_by_origin(&l.origin),
            Some(("jws-rotate.yaml", l.source.as_str()))
        );
        assert_eq!(shipped_by_origin("runbooks/jws-rotate.yaml"), None);
        assert_eq!(
            shipped_by_origin("built-in nope.yaml (cutover 0.1.0)"),
            None
        );
        let e = Runbook::resolve(Path::new("jws-to-frenet"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file") && !e.contains("name it"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "cutover-runbook-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// An undefined variable is named, and located at the variable itself: its line inside a
    /// block scalar, its column on that line (not the template's first line, not an earlier
    /// `params.key_strategy` that merely starts the same).
    #[test]
    fn an_undefined_variable_is_located_at_itself() {
        let src = "name: t\ntitle: T\ntarget_provider: jws\nparams:\n  key_strategy: {default: a}\nsteps:\n  - id: one\n    title: One\n    scope: once\n    do:\n      - confirm:\n          id: c\n          title: C\n          message: |\n            Uses {{ params.key_strategy }} here,\n            and {{ params.key_strateg }} there.\n      - note: \"x {{ node.name }}\"\n";
        let e = Runbook::parse(src, "t.yaml").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml:16:20: "), "{e}");
        assert!(e.contains("`params.key_strateg`"), "{e}");
        assert!(e.contains("no parameter `key_strateg`"), "{e}");
        let fixed = src.replace("key_strateg }}", "key_strategy }}");
        let e = Runbook::parse(&fixed, "t.yaml").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml:17:21: "), "{e}");
        assert!(e.contains("`node.name`") && e.contains("each-node"), "{e}");
    }

    #[test]
    fn one_line_joins_a_title_written_over_lines() {
        assert_eq!(
            one_line("Keystone:\n  rotate\tthe keys\n"),
            "Keystone: rotate the keys"
        );
        assert_eq!(one_line("one"), "one");
    }

    #[test]
    fn answer_ids_are_checked() {
        let rb = Runbook::parse(shipped()[0].1, "f").unwrap();
        let nodes = vec!["node1".to_string()];
        let check = |k: &str| check_answer_ids([&k.to_string()], &rb, &nodes);
        for ok in [
            "mixed-pool",
            "drift",
            "in-doubt@node1",
            "rollback-start",
            "jws-payload-readable@node1",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in ["mixed-pol", "mixed-pool@node2", "", "@node1", "mixed-pool@"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
