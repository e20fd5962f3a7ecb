//! What probes and actions observe about the fleet. These are the only facts the engine reasons
//! about, and they are what the journal records: fingerprints and token shapes, never secrets.

use crate::provider::Provider;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod cache;
mod lb;
pub use cache::*;
pub use lb::*;

/// A node's Keystone configuration and key material as read on the node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NodeFacts {
    /// `[token] provider` from keystone.conf (Keystone's default `fernet` when unset).
    pub provider: Option<String>,
    /// `[token] expiration`, seconds.
    pub expiration: u64,
    /// `[token] allow_expired_window`, seconds.
    pub allow_expired_window: u64,
    pub fernet: FernetFacts,
    /// `[fernet_receipts] key_repository`.
    pub receipts_repo: String,
    pub jws: JwsFacts,
    /// GET /v3 on the node's own URL answered.
    pub service_up: bool,
    pub service_detail: String,
    /// The HTTP status GET /v3 answered with (None: nothing answered, or not asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_status: Option<u16>,
    /// Anything that kept the probe from reading the node (unreachable, permission denied, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the node itself could not be reached (its SSH host key changed or is unknown,
    /// sshd refused the connection or the login): nothing on it was read, which says nothing
    /// about its Keystone (`service_up` is still asked over HTTP). `error` says the same in one
    /// line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<Unreachable>,
    /// `[cache]` and `[token]` caching options from keystone.conf (None: not read, as in
    /// journals written before cutover read them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<TokenCacheFacts>,
}

impl NodeFacts {
    /// `[token] provider` as configured; Keystone's default (fernet) when it is not set.
    pub fn configured_provider(&self) -> String {
        self.provider
            .clone()
            .unwrap_or_else(|| Provider::keystone_default().to_string())
    }

    /// The facts of a node that could not be reached: only the reason is known.
    pub fn unreachable(u: Unreachable) -> NodeFacts {
        NodeFacts {
            error: Some(u.line()),
            unreachable: Some(u),
            ..Default::default()
        }
    }

    /// The SERVICE cell of a probe table: `up`, `DOWN` (nothing answered or an error status),
    /// `404?` (something answered that is not Keystone's v3 API: the URL looks wrong).
    pub fn service_cell(&self) -> String {
        match (self.service_up, self.service_status) {
            (true, _) => "up".into(),
            (false, Some(404)) => "404?".into(),
            (false, Some(s)) => format!("DOWN {s}"),
            (false, None) if self.service_detail.is_empty() => "?".into(),
            (false, None) => "DOWN".into(),
        }
    }

    /// What a probe table says under the node's row, one line each: why it is unreachable and
    /// what to do, what kept it from being read, why its Keystone did not answer.
    pub fn problem_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        match (&self.unreachable, &self.error) {
            (Some(u), _) => {
                v.push(format!("UNREACHABLE: {}", u.line()));
                v.push(format!("next: {}", u.next));
            }
            (None, Some(e)) => v.push(e.clone()),
            (None, None) => {}
        }
        if !self.service_up && !self.service_detail.is_empty() {
            v.push(format!("keystone: {}", self.service_detail));
        }
        v
    }
}

/// Why a node could not be reached, in one word.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReachFailure {
    /// known_hosts holds another key for the host (or the key is marked @revoked).
    HostKeyChanged,
    /// No known_hosts file names the host.
    HostKeyUnknown,
    /// Nothing listens on the host's SSH port.
    ConnectionRefused,
    /// sshd refused every identity offered.
    AuthFailed,
    /// The host did not answer in time.
    Timeout,
    /// Anything else that kept the connection from being made (no route, no such host, ...).
    ConnectFailed,
}

impl ReachFailure {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReachFailure::HostKeyChanged => "host key changed",
            ReachFailure::HostKeyUnknown => "unknown host key",
            ReachFailure::ConnectionRefused => "connection refused",
            ReachFailure::AuthFailed => "authentication failed",
            ReachFailure::Timeout => "connection timed out",
            ReachFailure::ConnectFailed => "cannot connect",
        }
    }
}

/// A node that could not be reached over SSH: where cutover tried, why it failed, what to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Unreachable {
    pub kind: ReachFailure,
    /// How the inventory names the host (an ssh_config alias, or host[:port]).
    pub alias: String,
    /// The address and port connected to (after ssh_config).
    pub host: String,
    pub port: u16,
    /// The known_hosts file that holds (host-key changed) or would hold (unknown) the host's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
    /// The host key the server presented (host-key failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// What the transport said.
    pub reason: String,
    /// What to do about it (without "then resume": the caller says what comes after).
    pub next: String,
}

impl Unreachable {
    /// `host key changed at 127.0.0.1 port 2222 (ssh alias node2): <what the transport said>`
    pub fn line(&self) -> String {
        let alias = if self.alias == self.host {
            String::new()
        } else {
            format!(" (ssh alias {})", self.alias)
        };
        format!(
            "{} at {} port {}{alias}: {}",
            self.kind.as_str(),
            self.host,
            self.port,
            self.reason
        )
    }

    /// `cannot reach node2: host key changed` — what a halt is called.
    pub fn headline(&self, node: &str) -> String {
        format!("cannot reach {node}: {}", self.kind.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct FernetFacts {
    pub repo: String,
    pub present: bool,
    pub keys: usize,
    /// sha256 over the repository's (name, sha256(content)) pairs: equal repos, equal prints.
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct JwsFacts {
    pub private_repo: String,
    pub public_repo: String,
    pub private_present: bool,
    /// SHA256 of the public key (SubjectPublicKeyInfo DER) that belongs to private.pem.
    pub private_fingerprint: Option<String>,
    /// Octal mode, e.g. "600".
    pub private_mode: Option<String>,
    /// "user:group".
    pub private_owner: Option<String>,
    pub public: Vec<PublicKeyFact>,
    /// The node has no `openssl` to derive private.pem's public half (the key is not read here).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_openssl: bool,
    /// The public half of a keypair waiting in the staging directory (a rotation in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicKeyFact {
    pub file: String,
    pub fingerprint: String,
}

impl JwsFacts {
    pub fn has_public(&self, fingerprint: &str) -> bool {
        self.public.iter().any(|p| p.fingerprint == fingerprint)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    Jws,
    Fernet,
    Other,
    #[default]
    None,
}

impl TokenFormat {
    pub fn of(token: &str) -> TokenFormat {
        if token.is_empty() {
            TokenFormat::None
        } else if token.starts_with("gAAAAA") {
            TokenFormat::Fernet
        } else if token.starts_with("eyJ") && token.split('.').count() == 3 {
            TokenFormat::Jws
        } else {
            TokenFormat::Other
        }
    }
    /// The provider that issues tokens of this format, if it is one cutover knows.
    pub fn provider(&self) -> Option<Provider> {
        match self {
            TokenFormat::Jws => Some(Provider::Jws),
            TokenFormat::Fernet => Some(Provider::Fernet),
            TokenFormat::Other | TokenFormat::None => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            TokenFormat::Jws => "jws",
            TokenFormat::Fernet => "fernet",
            TokenFormat::Other => "other",
            TokenFormat::None => "none",
        }
    }
}

/// A token issued directly at a node (not through a load balancer) and validated on that node.
/// Only its shape is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TokenCheck {
    pub node: String,
    pub format: TokenFormat,
    /// Asked for unscoped (a probe's read of the provider): the provider issues and validates
    /// it as any token, without the project and role lookups clients' tokens cost. False: the
    /// credentials' project, as clients hold it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unscoped: bool,
    /// The JWS header's `alg`.
    pub alg: Option<String>,
    pub length: usize,
    /// HTTP status of POST /v3/auth/tokens (0 when no answer).
    pub issue_status: u16,
    /// HTTP status of GET /v3/auth/tokens on the same node.
    pub validate_status: Option<u16>,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Not asked again: the token the node issued at this time, kept because its keystone.conf
    /// (and, for a validated token, its key files) are unchanged since before it was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_since: Option<chrono::DateTime<chrono::Utc>>,
}

impl TokenCheck {
    pub fn validated(&self) -> bool {
        self.validate_status == Some(200)
    }
    /// Issued (201) and not asked to validate: what a node's provider read asks for.
    pub fn issued_only(&self) -> bool {
        self.issue_status == 201 && self.validate_status.is_none() && self.error.is_none()
    }
    pub fn short(&self) -> String {
        if let Some(e) = &self.error
            && self.issue_status != 201
        {
            return format!("failed: {e}");
        }
        let alg = self
            .alg
            .as_deref()
            .map(|a| format!(" {a}"))
            .unwrap_or_default();
        let v = match self.validate_status {
            Some(s) => format!(" validate {s}"),
            None => String::new(),
        };
        match self.kept_since {
            Some(at) => format!(
                "{}{alg} issue {}{v}, kept from {} (files unchanged)",
                self.format.as_str(),
                self.issue_status,
                at.format("%H:%M:%S%.3f")
            ),
            None => format!(
                "{}{alg} issue {}{v} {}ms",
                self.format.as_str(),
                self.issue_status,
                self.latency_ms
            ),
        }
    }
}

/// Tokens issued at each node (rows) validated at every node (columns).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Matrix {
    pub nodes: Vec<String>,
    pub formats: Vec<TokenFormat>,
    /// cells[i][j]: HTTP status validating node i's token at node j (None: not issued).
    pub cells: Vec<Vec<Option<u16>>>,
}

impl Matrix {
    pub fn all_ok(&self) -> bool {
        !self.cells.is_empty()
            && self
                .cells
                .iter()
                .all(|row| row.iter().all(|c| *c == Some(200)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrustSummary {
    pub count: usize,
    pub trusts: Vec<TrustInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrustInfo {
    pub id: String,
    pub trustor: String,
    pub trustee: String,
    pub project: Option<String>,
    pub impersonation: bool,
    pub expires_at: Option<String>,
}

/// Everything one action or probe observed. Every part is optional; `apply` merges what is there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Observation {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, NodeFacts>,
    /// Present when the load balancers were read (possibly with errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<Vec<LbServer>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lb_errors: Vec<String>,
    /// When the load balancers were read (the read's end), for the time from a pool read to
    /// the action it guards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_read_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Load-balancer name → how that instance would come through a reload, read from its
    /// configuration file. Read by full probes (the load balancers and at least one node:
    /// preflight, verify, the pool-healthy and mixed-pool gates), not by the lean pool reads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lb_reload: BTreeMap<String, ReloadFacts>,
    /// A halves swap: ms from the first instance's write to the last's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_gap_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, TokenCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Matrix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusts: Option<TrustSummary>,
    /// node → provider now written in its keystone.conf (set_provider).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flipped: BTreeMap<String, String>,
    /// node → JWS public-key fingerprint created or installed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// node → the node restarted and answered GET /v3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
}

impl Observation {
    pub fn is_empty(&self) -> bool {
        self == &Observation::default()
    }
}

/// A fingerprint as messages show it: `SHA256:` and its first 12 characters.
pub fn short_fp(fp: &str) -> String {
    let s = fp.trim_start_matches("SHA256:");
    format!("SHA256:{}", &s[..s.len().min(12)])
}

/// A duration in seconds as messages show it: `1h`, `5m`, `90s`.
pub fn humanize(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed() -> Unreachable {
        Unreachable {
            kind: ReachFailure::HostKeyChanged,
            alias: "node2".into(),
            host: "10.0.0.12".into(),
            port: 2222,
            known_hosts: Some("/root/.ssh/known_hosts".into()),
            fingerprint: Some("SHA256:new".into()),
            reason: "its host key has CHANGED".into(),
            next: "ssh-keygen -R '[10.0.0.12]:2222'".into(),
        }
    }

    #[test]
    fn an_unreachable_node_says_where_and_why() {
        let u = changed();
        assert_eq!(
            u.line(),
            "host key changed at 10.0.0.12 port 2222 (ssh alias node2): its host key has CHANGED"
        );
        assert_eq!(u.headline("node2"), "cannot reach node2: host key changed");
        let same = Unreachable {
            alias: "10.0.0.12".into(),
            ..u.clone()
        };
        assert!(
            same.line()
                .starts_with("host key changed at 10.0.0.12 port 2222: ")
        );
        let f = NodeFacts::unreachable(u.clone());
        assert_eq!(f.error.as_deref(), Some(u.line().as_str()));
        // Its Keystone was not asked yet: neither up nor down.
        assert_eq!(f.service_cell(), "?");
        assert_eq!(
            f.problem_lines(),
            vec![
                format!("UNREACHABLE: {}", u.line()),
                format!("next: {}", u.next)
            ]
        );
        // The JSON names the kind in snake_case, and reads back.
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["unreachable"]["kind"], "host_key_changed");
        assert_eq!(serde_json::from_value::<NodeFacts>(v).unwrap(), f);
        // Facts journaled before these fields existed still read.
        let old: NodeFacts = serde_json::from_str(
            r#"{"provider":"fernet","expiration":3600,"allow_expired_window":0,
                "fernet":{"repo":"/k","present":true,"keys":1,"fingerprint":null},
                "receipts_repo":"/k","jws":{"private_repo":"/p","public_repo":"/u",
                "private_present":false,"private_fingerprint":null,"private_mode":null,
                "private_owner":null,"public":[]},"service_up":false,
                "service_detail":"GET http://h/v3: connection refused"}"#,
        )
        .unwrap();
        assert!(old.unreachable.is_none() && old.service_status.is_none());
        assert_eq!(old.service_cell(), "DOWN");
    }

    #[test]
    fn the_service_cell_tells_down_from_a_wrong_url() {
        let f = |up: bool, status: Option<u16>, detail: &str| NodeFacts {
            service_up: up,
            service_status: status,
            service_detail: detail.into(),
            ..Default::default()
        };
        assert_eq!(f(true, Some(200), "GET /v3 200").service_cell(), "up");
        assert_eq!(
            f(false, None, "GET http://h/v3: connection refused").service_cell(),
            "DOWN"
        );
        assert_eq!(
            f(false, Some(503), "GET /v3 answered 503").service_cell(),
            "DOWN 503"
        );
        let wrong = f(
            false,
            Some(404),
            "GET http://h/x/v3 answered 404: keystone_url looks wrong",
        );
        assert_eq!(wrong.service_cell(), "404?");
        assert_eq!(
            wrong.problem_lines(),
            vec!["keystone: GET http://h/x/v3 answered 404: keystone_url looks wrong".to_string()]
        );
    }
}
