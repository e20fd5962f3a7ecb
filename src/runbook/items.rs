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
    #[serde(rename = "lb.swap")]
    LbSwap(LbSwap),
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
    /// GET a URL from a node or from the bastion; expect a status and maybe a body substring.
    #[serde(rename = "http.check")]
    HttpCheck(HttpCheck),
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

/// The halves swap: on every instance one write sets half A ready and half B drain; then B
/// goes to maint once its sessions reach 0, and A must come UP (health-checked) everywhere.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LbSwap {
    /// How long to wait for half B's sessions to reach 0 before forcing maintenance.
    #[serde(default = "default_drain", with = "humantime_serde_compat")]
    pub drain_timeout: Duration,
    /// How long to wait for half A to come UP on every instance.
    #[serde(default = "default_ready", with = "humantime_serde_compat")]
    pub up_timeout: Duration,
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
    /// How long to wait for the node to answer GET /v3 after the restart command returned
    /// (a duration, or a template that fills to one: `"{{ params.restart_timeout }}"`).
    #[serde(default = "default_restart")]
    pub timeout: Filled<Duration>,
}

fn default_restart() -> Filled<Duration> {
    Filled::Value(Duration::from_secs(60))
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
pub struct HttpCheck {
    /// A template (`"{{ node.keystone_url }}/v3"`): http:// or https://, no credentials in it
    /// (it goes to the journal).
    #[serde(deserialize_with = "strict::string")]
    pub url: String,
    /// Where the GET is made from: `bastion` (cutover itself) or `node` (curl on the node).
    #[serde(default)]
    pub from: Filled<HttpFrom>,
    #[serde(default = "default_status")]
    pub expect_status: Filled<u16>,
    /// A template; the body (its first MiB) must contain it. Empty: any body.
    #[serde(default, deserialize_with = "strict::string")]
    pub body_contains: String,
    #[serde(default = "default_http_timeout")]
    pub timeout: Filled<Duration>,
}

fn default_status() -> Filled<u16> {
    Filled::Value(200)
}

fn default_http_timeout() -> Filled<Duration> {
    Filled::Value(Duration::from_secs(10))
}

/// Where an `http.check` makes its request from.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HttpFrom {
    /// cutover itself, as it reaches the nodes' URLs for its own checks.
    #[default]
    Bastion,
    /// The node, with curl over its transport (what the node itself sees).
    Node,
}

impl Default for Filled<HttpFrom> {
    fn default() -> Self {
        Filled::Value(HttpFrom::default())
    }
}

impl Literal for HttpFrom {
    const EXPECTING: &'static str = "bastion or node, or a template";
    fn from_text(s: &str) -> Result<Self, String> {
        match s {
            "bastion" => Ok(HttpFrom::Bastion),
            "node" => Ok(HttpFrom::Node),
            _ => Err(format!(
                "`{s}` is not where a check is made from: bastion or node"
            )),
        }
    }
    fn from_number(n: i64) -> Result<Self, String> {
        Self::from_text(&n.to_string())
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        match self {
            HttpFrom::Bastion => "bastion".into(),
            HttpFrom::Node => "node".into(),
        }
    }
}

/// A value written as itself (`60s`, `200`) or as a template that fills to one when the plan is
/// compiled (`"{{ params.restart_timeout }}"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Filled<T> {
    Value(T),
    Template(String),
}

impl<T: Literal + Clone> Filled<T> {
    /// The value, its template filled by `render`; the error says what the text was.
    pub fn fill<E: std::fmt::Display>(
        &self,
        render: impl Fn(&str) -> Result<String, E>,
    ) -> Result<T, String> {
        match self {
            Filled::Value(v) => Ok(v.clone()),
            Filled::Template(t) => {
                let text = render(t).map_err(|e| e.to_string())?;
                T::from_text(text.trim()).map_err(|e| format!("`{t}` filled to {e}"))
            }
        }
    }

    /// Its template, if it is one.
    pub fn template(&self) -> Option<&str> {
        match self {
            Filled::Value(_) => None,
            Filled::Template(t) => Some(t),
        }
    }
}

/// A value an item may take literally or from a template: how YAML writes it.
pub trait Literal: Sized {
    /// What the YAML must say, for errors.
    const EXPECTING: &'static str;
    fn from_text(s: &str) -> Result<Self, String>;
    fn from_number(n: i64) -> Result<Self, String>;
    fn to_yaml(&self) -> serde_yaml::Value;
}

impl Literal for Duration {
    const EXPECTING: &'static str = "a duration like 30s or 2m, or a template";
    fn from_text(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration like 30s or 2m: {e}"))
    }
    fn from_number(n: i64) -> Result<Self, String> {
        Err(format!("{n}: a duration needs its unit, like {n}s"))
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        humantime::format_duration(*self).to_string().into()
    }
}

/// An HTTP status.
impl Literal for u16 {
    const EXPECTING: &'static str = "an HTTP status (100-599), or a template";
    fn from_text(s: &str) -> Result<Self, String> {
        match s.parse::<i64>() {
            Ok(n) => Self::from_number(n),
            Err(_) => Err(format!("`{s}` is not an HTTP status (100-599)")),
        }
    }
    fn from_number(n: i64) -> Result<Self, String> {
        match u16::try_from(n) {
            Ok(s) if (100..=599).contains(&s) => Ok(s),
            _ => Err(format!("{n} is not an HTTP status (100-599)")),
        }
    }
    fn to_yaml(&self) -> serde_yaml::Value {
        (*self).into()
    }
}

impl<T: Literal> Serialize for Filled<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Filled::Value(v) => v.to_yaml().serialize(s),
            Filled::Template(t) => s.serialize_str(t),
        }
    }
}

impl<'de, T: Literal> Deserialize<'de> for Filled<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, Unexpected, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: Literal> Visitor<'_> for V<T> {
            type Value = Filled<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Filled<T>, E> {
                if v.contains("{{") || v.contains("{%") {
                    Ok(Filled::Template(v.to_string()))
                } else {
                    T::from_text(v).map(Filled::Value).map_err(E::custom)
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Filled<T>, E> {
                T::from_number(v).map(Filled::Value).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Filled<T>, E> {
                let n = i64::try_from(v)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))?;
                self.visit_i64(n)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
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
            Item::LbSwap(_) => "lb.swap",
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
            Item::HttpCheck(_) => "http.check",
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
            Item::LbDrain(_) | Item::LbReady(_) | Item::LbSwap(_) => Family::Lb,
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
            Item::Restart(_) | Item::Shell(_) | Item::HttpCheck(_) => Family::Service,
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
            Item::Restart(r) => r.timeout.template().into_iter().collect(),
            Item::HttpCheck(h) => [&h.url, &h.body_contains]
                .into_iter()
                .map(String::as_str)
                .chain(h.from.template())
                .chain(h.expect_status.template())
                .chain(h.timeout.template())
                .collect(),
            Item::Confirm(c) => vec![&c.title, &c.message, &c.consequence],
            Item::Note(n) => vec![n],
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::Runbook;

    fn check_item(item: &str) -> Result<HttpCheck, String> {
        let src = format!(
            "name: t\ntitle: T\ntarget_provider: jws\nparams:\n  status: {{default: \"204\"}}\n  wait: {{default: 3s}}\nsteps:\n  - id: s\n    title: S\n    scope: each-node\n    do:\n      - {item}\n"
        );
        match Runbook::parse(&src, "t.yaml") {
            Ok(rb) => match &rb.steps[0].items[0] {
                Item::HttpCheck(h) => Ok(h.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn an_http_check_takes_values_or_templates() {
        let h = check_item(r#"http.check: {url: "{{ node.keystone_url }}/v3"}"#).unwrap();
        assert_eq!(h.from, Filled::Value(HttpFrom::Bastion));
        assert_eq!(h.expect_status, Filled::Value(200));
        assert_eq!(h.timeout, Filled::Value(Duration::from_secs(10)));
        assert_eq!(h.body_contains, "");
        let h = check_item(
            r#"http.check: {url: "http://a/", from: node, expect_status: "{{ params.status }}", timeout: "{{ params.wait }}", body_contains: ok}"#,
        )
        .unwrap();
        assert_eq!(h.from, Filled::Value(HttpFrom::Node));
        let fill = |t: &str| -> Result<String, String> {
            Ok(t.replace("{{ params.status }}", "204")
                .replace("{{ params.wait }}", " 3s "))
        };
        assert_eq!(h.expect_status.fill(fill), Ok(204));
        assert_eq!(h.timeout.fill(fill), Ok(Duration::from_secs(3)));
        let h =
            check_item(r#"http.check: {url: "http://a/", from: "{{ params.status }}"}"#).unwrap();
        let e = h.from.fill(fill).unwrap_err();
        assert!(e.contains("`204` is not where a check is made from"), "{e}");
        let h = check_item(r#"http.check: {url: "http://a/", expect_status: 301, timeout: 2m}"#)
            .unwrap();
        assert_eq!(h.expect_status, Filled::Value(301));
        assert_eq!(h.timeout, Filled::Value(Duration::from_secs(120)));
        // A template that fills to something else says so.
        let bad = Filled::<u16>::Template("{{ params.status }}".into());
        let e = bad.fill(|_| Ok::<_, String>("OK".into())).unwrap_err();
        assert_eq!(
            e,
            "`{{ params.status }}` filled to `OK` is not an HTTP status (100-599)"
        );
        // Written back as written.
        let yaml = serde_yaml::to_string(&h).unwrap();
        assert!(
            yaml.contains("expect_status: 301\n") && yaml.contains("timeout: 2m\n"),
            "{yaml}"
        );
    }

    #[test]
    fn an_http_check_says_where_its_values_are_wrong() {
        for (item, says) in [
            (
                r#"http.check: {url: "http://a/", expect_status: 700}"#,
                "700 is not an HTTP status (100-599)",
            ),
            (
                r#"http.check: {url: "http://a/", expect_status: "OK"}"#,
                "`OK` is not an HTTP status",
            ),
            (
                r#"http.check: {url: "http://a/", timeout: 10}"#,
                "a duration needs its unit, like 10s",
            ),
            (
                r#"http.check: {url: "http://a/", from: moon}"#,
                "`moon` is not where a check is made from: bastion or node",
            ),
            (
                r#"http.check: {url: "http://a/", expect: 200}"#,
                "unknown field `expect`",
            ),
            (
                r#"http.check: {url: "http://a/{{ params.nope }}"}"#,
                "params.nope",
            ),
            (
                r#"http.check: {url: "http://a/", expect_status: "{{ params.nope }}"}"#,
                "params.nope",
            ),
        ] {
            let e = check_item(item).unwrap_err();
            assert!(e.contains(says), "{item}: {e}");
            assert!(e.starts_with("t.yaml:"), "{item}: {e}");
        }
    }
}
