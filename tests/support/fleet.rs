//! One fake fleet for the engine and TUI tests: Keystone nodes (provider configured and
//! running, staged/private/public JWS keys, Fernet keys, service up) behind N load-balancer
//! instances (an admin state per instance and node), answering every [`ActionSpec`] as the
//! drivers would, with faults to inject.
//!
//! [`Fleet::run`] matches every action of every family with no catch-all: a new action does
//! not compile here until the fake knows what it does.

use cutover::engine::Failure;
use cutover::engine::action::ActionSpec;
use cutover::engine::action::{Keys, Keystone, Lb, Misc, Service};
use cutover::engine::facts::*;
use cutover::inventory::Inventory;
use cutover::runbook::HttpFrom;
use std::collections::{BTreeMap, BTreeSet};

/// The fingerprint of the JWS keypair generated on `node`.
pub fn fp(node: &str) -> String {
    format!("SHA256:{node}Zq3vXo9mB2c8LrT4wYp1sKd7NfEaHgU6jQ0xVb5Ci")
}

/// The fingerprint of a keypair shared by every node.
pub const SHARED_FP: &str = "SHA256:sHaReDq3vXo9mB2c8LrT4wYp1sKd7NfEaHgU6jQ0x";

/// The Fernet repository's fingerprint, as generated at install (generation 0).
const FERNET_FP: &str = "SHA256:fErNeT0aa11bb22cc33dd44ee55ff66";

/// ks2 → 2: spreads sessions and latencies so nodes read differently on screen.
fn idx(node: &str) -> u64 {
    node.trim_start_matches("ks").parse().unwrap_or(1)
}

/// What a driver reports for one action.
#[derive(Debug, Clone)]
pub struct Reply {
    pub ok: bool,
    pub summary: String,
    pub observed: Observation,
    pub failure: Option<Failure>,
    /// How long it took, in milliseconds.
    pub ms: u64,
}

impl Reply {
    fn ok(summary: impl Into<String>, observed: Observation, ms: u64) -> Reply {
        Reply {
            ok: true,
            summary: summary.into(),
            observed,
            failure: None,
            ms,
        }
    }

    fn failed(summary: impl Into<String>, observed: Observation, next: String, ms: u64) -> Reply {
        Reply {
            ok: false,
            summary: summary.into(),
            observed,
            failure: Some(Failure::Hint { next }),
            ms,
        }
    }
}

/// A simulated fleet: what each node and load-balancer instance holds and would report.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub nodes: Vec<String>,
    pub lbs: Vec<String>,
    /// The provider in each node's keystone.conf.
    pub conf: BTreeMap<String, String>,
    /// The provider each node's running Keystone issues tokens with (the conf at its last
    /// restart).
    pub running: BTreeMap<String, String>,
    /// Fingerprint of the keypair in each node's staging dir.
    pub staged: BTreeMap<String, String>,
    /// Fingerprint of each node's installed private.pem.
    pub private: BTreeMap<String, String>,
    /// Each node's public key repository.
    pub public: BTreeMap<String, Vec<PublicKeyFact>>,
    /// How many times each node's Fernet keys were rotated (or synced from a rotated node).
    pub fernet_generation: BTreeMap<String, u32>,
    /// Nodes whose Keystone does not answer.
    pub down: BTreeSet<String>,
    /// Each server's admin state, by (load balancer, node).
    pub admin: BTreeMap<(String, String), AdminState>,
    /// What each instance's config says about a reload, returned by full probes (empty: the
    /// configs are not read, as in a journal from before they were).
    pub reload: BTreeMap<String, ReloadFacts>,

    // Faults to inject.
    /// The load balancers ignore maint (as after a reload without a server-state file): a
    /// drain leaves the node in the pool and `lb.maint` fails.
    pub lb_ignores_maint: bool,
    /// A restart comes back up with the provider it had (a stale config was read).
    pub restart_keeps_old_provider: bool,
    /// Nodes whose restart fails: Keystone does not come back.
    pub fail_restart: Vec<String>,
    /// What a node's API answers a GET with, instead of `200` and [`VERSION_BODY`].
    pub http: BTreeMap<String, (u16, String)>,
}

/// What a node's API answers a GET with when it is up: Keystone's version document.
pub const VERSION_BODY: &str =
    r#"{"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z"}}"#;

impl Fleet {
    /// The inventory's nodes on Fernet, in the pool on every load balancer, no JWS keys yet.
    pub fn new(inv: &Inventory) -> Fleet {
        let nodes = inv.node_names();
        let lbs: Vec<String> = inv.load_balancers.iter().map(|l| l.name.clone()).collect();
        let each = |v: &str| -> BTreeMap<String, String> {
            nodes.iter().map(|n| (n.clone(), v.to_string())).collect()
        };
        Fleet {
            conf: each("fernet"),
            running: each("fernet"),
            staged: BTreeMap::new(),
            private: BTreeMap::new(),
            public: nodes.iter().map(|n| (n.clone(), vec![])).collect(),
            fernet_generation: nodes.iter().map(|n| (n.clone(), 0)).collect(),
            down: BTreeSet::new(),
            admin: lbs
                .iter()
                .flat_map(|l| {
                    nodes
                        .iter()
                        .map(move |n| ((l.clone(), n.clone()), AdminState::Ready))
                })
                .collect(),
            reload: BTreeMap::new(),
            lb_ignores_maint: false,
            restart_keeps_old_provider: false,
            fail_restart: vec![],
            http: BTreeMap::new(),
            nodes,
            lbs,
        }
    }

    /// What a full probe reads on node `n`.
    pub fn facts(&self, n: &str) -> NodeFacts {
        let up = !self.down.contains(n);
        let generation = self.fernet_generation.get(n).copied().unwrap_or(0);
        NodeFacts {
            provider: Some(self.conf[n].clone()),
            expiration: 3600,
            allow_expired_window: 172_800,
            fernet: FernetFacts {
                repo: "/etc/keystone/fernet-keys".into(),
                present: true,
                keys: 3,
                fingerprint: Some(if generation == 0 {
                    FERNET_FP.into()
                } else {
                    format!("{FERNET_FP}-rotated{generation}")
                }),
            },
            receipts_repo: "/etc/keystone/fernet-keys".into(),
            jws: JwsFacts {
                private_repo: "/etc/keystone/jws-keys/private".into(),
                public_repo: "/etc/keystone/jws-keys/public".into(),
                private_present: self.private.contains_key(n),
                private_fingerprint: self.private.get(n).cloned(),
                private_mode: self.private.get(n).map(|_| "600".into()),
                private_owner: self.private.get(n).map(|_| "keystone:keystone".into()),
                public: self.public[n].clone(),
                staged_fingerprint: None,
                no_openssl: false,
            },
            service_up: up,
            service_detail: if up {
                "GET /v3 200".into()
            } else {
                "connection refused".into()
            },
            error: None,
            ..Default::default()
        }
    }

    /// Every server on every load-balancer instance, as `show stat` would list them.
    pub fn lb_rows(&self) -> Vec<LbServer> {
        let mut v = Vec::new();
        for (li, lb) in self.lbs.iter().enumerate() {
            for n in &self.nodes {
                let admin = self.admin[&(lb.clone(), n.clone())];
                v.push(LbServer {
                    lb: lb.clone(),
                    node: n.clone(),
                    server: n.clone(),
                    admin,
                    held: admin != AdminState::Ready,
                    oper: match admin {
                        AdminState::Ready => OperState::Up,
                        _ => OperState::Other,
                    },
                    status: match admin {
                        AdminState::Ready => "UP".into(),
                        AdminState::Drain => "DRAIN".into(),
                        AdminState::Maint => "MAINT".into(),
                    },
                    sessions: match admin {
                        AdminState::Ready => 8 + idx(n) * 3 + li as u64 * 2,
                        _ => 0,
                    },
                });
            }
        }
        v
    }

    /// A token issued directly on node `n` and validated there.
    pub fn token(&self, n: &str) -> TokenCheck {
        let jws = self.running[n] == "jws";
        TokenCheck {
            node: n.into(),
            format: if jws {
                TokenFormat::Jws
            } else {
                TokenFormat::Fernet
            },
            alg: jws.then(|| "ES256".into()),
            length: if jws { 412 } else { 183 },
            issue_status: 201,
            validate_status: Some(200),
            latency_ms: 30 + idx(n) * 4,
            ..Default::default()
        }
    }

    /// Set `node`'s admin state on every instance.
    fn set_admin(&mut self, node: &str, admin: AdminState) {
        for l in &self.lbs {
            self.admin.insert((l.clone(), node.to_string()), admin);
        }
    }

    /// Add a public key to `node`'s repository unless a key with that fingerprint is there.
    fn add_public(&mut self, node: &str, file: String, fingerprint: String) {
        let repo = self.public.get_mut(node).expect("a node of the fleet");
        if !repo.iter().any(|k| k.fingerprint == fingerprint) {
            repo.push(PublicKeyFact { file, fingerprint });
        }
    }

    /// Carry out an action as the drivers would and report what they would.
    pub fn run(&mut self, spec: &ActionSpec) -> Reply {
        match spec {
            ActionSpec::Lb(lb) => self.run_lb(lb),
            ActionSpec::Keystone(ks) => self.run_keystone(ks),
            ActionSpec::Keys(keys) => self.run_keys(keys),
            ActionSpec::Service(s) => self.run_service(s),
            ActionSpec::Misc(m) => self.run_misc(m),
        }
    }

    fn run_lb(&mut self, spec: &Lb) -> Reply {
        let mut obs = Observation::default();
        match spec {
            Lb::Drain { node, .. } => {
                if !self.lb_ignores_maint {
                    self.set_admin(node, AdminState::Maint);
                }
                obs.lb = Some(self.lb_rows());
                Reply::ok(
                    format!("{node}: sessions 0 on {}, now maint", self.lbs.join(", ")),
                    obs,
                    12_400,
                )
            }
            Lb::Ready { node, .. } => {
                self.set_admin(node, AdminState::Ready);
                obs.lb = Some(self.lb_rows());
                Reply::ok(
                    format!("{node} is UP on {}", self.lbs.join(", ")),
                    obs,
                    3_100,
                )
            }
            Lb::Swap { a, b, .. } => {
                for n in a {
                    self.set_admin(n, AdminState::Ready);
                }
                for n in b {
                    self.set_admin(n, AdminState::Maint);
                }
                obs.lb = Some(self.lb_rows());
                obs.swap_gap_ms = Some(1);
                Reply::ok(
                    format!(
                        "pool swapped on {}, swap gap 1 ms: {} in, {} out",
                        self.lbs.join(", "),
                        a.join(", "),
                        b.join(", ")
                    ),
                    obs,
                    900,
                )
            }
            Lb::Maint { node } => {
                if !self.lb_ignores_maint {
                    self.set_admin(node, AdminState::Maint);
                }
                obs.lb = Some(self.lb_rows());
                if self.lb_ignores_maint {
                    return Reply::failed(
                        format!("{node} still in the pool after set maint"),
                        obs,
                        format!("set {node} to maint on the load balancers by hand, then resume"),
                        200,
                    );
                }
                Reply::ok(
                    format!("{node} back to maint on {}", self.lbs.join(", ")),
                    obs,
                    200,
                )
            }
        }
    }

    fn run_keystone(&mut self, spec: &Keystone) -> Reply {
        let mut obs = Observation::default();
        match spec {
            Keystone::SetProvider { node, provider } => {
                let was = self.conf.insert(node.clone(), provider.clone());
                obs.flipped.insert(node.clone(), provider.clone());
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(
                    format!(
                        "provider = {provider} (was {}); backup keystone.conf.cutover",
                        was.unwrap_or_default()
                    ),
                    obs,
                    310,
                )
            }
            Keystone::IssueToken { node, expect } => {
                let t = self.token(node);
                let format = t.format.as_str();
                let ok = format == expect;
                let summary = if ok {
                    format!(
                        "{format} token issued (201) and validated (200) in {}ms",
                        t.latency_ms
                    )
                } else {
                    format!("{node} issued a {format} token, expected {expect}")
                };
                obs.tokens.insert(node.clone(), t);
                if ok {
                    Reply::ok(summary, obs, 420)
                } else {
                    Reply::failed(
                        summary,
                        obs,
                        format!("check {node}'s keystone.conf and restart it, then resume"),
                        420,
                    )
                }
            }
            Keystone::ValidateMatrix { nodes, .. } => {
                // A token issued on i validates on j unless i issued a JWS token and j still
                // runs Fernet... as Keystone does: a JWS token needs a JWS validator.
                let jws = |n: &String| self.running[n] == "jws";
                let cells = nodes
                    .iter()
                    .map(|i| {
                        nodes
                            .iter()
                            .map(|j| Some(if jws(i) || !jws(j) { 200 } else { 401 }))
                            .collect()
                    })
                    .collect();
                obs.matrix = Some(Matrix {
                    nodes: nodes.clone(),
                    formats: nodes.iter().map(|n| self.token(n).format).collect(),
                    cells,
                });
                Reply::ok(format!("{0}×{0} tokens validated", nodes.len()), obs, 2_300)
            }
            Keystone::ListTrusts { .. } => {
                obs.trusts = Some(TrustSummary {
                    count: 2,
                    trusts: vec![],
                });
                Reply::ok("2 trusts", obs, 290)
            }
        }
    }

    fn run_keys(&mut self, spec: &Keys) -> Reply {
        let mut obs = Observation::default();
        match spec {
            Keys::CreateKeypair { node, .. } => {
                self.staged.insert(node.clone(), fp(node));
                obs.keys.insert(node.clone(), fp(node));
                Reply::ok(format!("keypair created on {node}"), obs, 1_500)
            }
            Keys::CreateSharedKeypair { origin, nodes, .. } => {
                for n in nodes {
                    self.staged.insert(n.clone(), SHARED_FP.into());
                    obs.keys.insert(n.clone(), SHARED_FP.into());
                }
                Reply::ok(
                    format!(
                        "one keypair created on {origin}, staged on {} nodes",
                        nodes.len()
                    ),
                    obs,
                    1_500,
                )
            }
            Keys::InstallKeys { node, public } => {
                let Some(key) = self.staged.get(node).cloned() else {
                    return Reply::failed(
                        format!("no staged keypair on {node}"),
                        obs,
                        format!("create {node}'s keypair first (keys step), then resume"),
                        80,
                    );
                };
                self.private.insert(node.clone(), key.clone());
                if *public {
                    self.add_public(node, format!("{node}.pem"), key);
                }
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(
                    "private.pem 0600 keystone:keystone, own public key",
                    obs,
                    520,
                )
            }
            Keys::PublishStagedKeys { node, from } => {
                let mut sources = vec![node.clone()];
                sources.extend(from.iter().filter(|m| *m != node).cloned());
                for m in &sources {
                    let Some(key) = self.staged.get(m).cloned() else {
                        return Reply::failed(
                            format!("no staged keypair on {m}"),
                            obs,
                            format!("create {m}'s keypair first, then resume"),
                            80,
                        );
                    };
                    let tag: String = key.trim_start_matches("SHA256:").chars().take(8).collect();
                    self.add_public(node, format!("{m}.{tag}.pem"), key);
                }
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(
                    format!("{} staged public keys published", sources.len()),
                    obs,
                    640,
                )
            }
            Keys::RemoveRetiredKeys { node, nodes } => {
                let live: BTreeSet<&String> =
                    nodes.iter().filter_map(|n| self.private.get(n)).collect();
                let repo = self.public.get_mut(node).expect("a node of the fleet");
                let before = repo.len();
                repo.retain(|k| live.contains(&k.fingerprint));
                let moved = before - repo.len();
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(format!("{moved} retired public keys moved aside"), obs, 300)
            }
            Keys::RotateFernet { node } => {
                *self.fernet_generation.entry(node.clone()).or_default() += 1;
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(format!("fernet keys rotated on {node}"), obs, 900)
            }
            Keys::SyncFernet { node, from } => {
                let generation = self.fernet_generation.get(from).copied().unwrap_or(0);
                self.fernet_generation.insert(node.clone(), generation);
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(format!("fernet keys copied from {from}"), obs, 700)
            }
            Keys::DistributePublicKeys { node, from } => {
                for m in from {
                    let Some(key) = self.private.get(m).cloned() else {
                        return Reply::failed(
                            format!("{m} has no installed key to copy"),
                            obs,
                            format!("install {m}'s keys first, then resume"),
                            80,
                        );
                    };
                    self.add_public(node, format!("{m}.pem"), key);
                }
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(format!("{} public keys copied", from.len()), obs, 640)
            }
        }
    }

    fn run_service(&mut self, spec: &Service) -> Reply {
        let mut obs = Observation::default();
        match spec {
            Service::Restart { node, .. } => {
                if self.fail_restart.contains(node) {
                    self.down.insert(node.clone());
                    obs.nodes.insert(node.clone(), self.facts(node));
                    return Reply::failed(
                        "keystone did not answer GET /v3 within 60s (connection refused)",
                        obs,
                        format!(
                            "{node} stays out of the pool: read its keystone log (journalctl -u keystone), fix, then resume; rollback: set its provider back to fernet and restart"
                        ),
                        60_000,
                    );
                }
                if !self.restart_keeps_old_provider {
                    self.running.insert(node.clone(), self.conf[node].clone());
                }
                self.down.remove(node);
                obs.restarted.push(node.clone());
                obs.nodes.insert(node.clone(), self.facts(node));
                Reply::ok(
                    format!("keystone on {node} answered GET /v3 after 5.8s"),
                    obs,
                    5_800,
                )
            }
            Service::Shell {
                node,
                command,
                expect_status,
                ..
            } => {
                // Every command exits 0 on the fake fleet.
                if *expect_status == 0 {
                    Reply::ok(format!("{command}: exit 0"), obs, 150)
                } else {
                    Reply::failed(
                        format!("{command} on {node} exited 0, expected {expect_status}"),
                        obs,
                        format!("look at {node}, then resume"),
                        150,
                    )
                }
            }
            Service::HttpCheck {
                node,
                url,
                from,
                expect_status,
                body_contains,
                ..
            } => {
                let answer = match node {
                    Some(n) if self.down.contains(n) => None,
                    Some(n) => Some(
                        self.http
                            .get(n)
                            .cloned()
                            .unwrap_or((200, VERSION_BODY.to_string())),
                    ),
                    None => Some((200, VERSION_BODY.to_string())),
                };
                let on = match (from, node) {
                    (HttpFrom::Node, Some(n)) => format!(" on {n}"),
                    _ => String::new(),
                };
                let Some((status, body)) = answer else {
                    return Reply::failed(
                        format!("GET {url}{on}: connection refused"),
                        obs,
                        "start the service (or find why it is down), then resume".into(),
                        10,
                    );
                };
                let missing = body_contains
                    .as_ref()
                    .filter(|want| !body.contains(want.as_str()));
                if status != *expect_status || missing.is_some() {
                    let why = match missing {
                        Some(want) if status == *expect_status => {
                            format!("{status}, the body lacks `{want}`")
                        }
                        _ => format!("{status}, expected {expect_status}"),
                    };
                    return Reply::failed(
                        format!("GET {url}{on}: {why}"),
                        obs,
                        "look at the service's log, fix, then resume".into(),
                        40,
                    );
                }
                Reply::ok(format!("GET {url}{on}: {status} in 40ms"), obs, 40)
            }
        }
    }

    fn run_misc(&mut self, spec: &Misc) -> Reply {
        let mut obs = Observation::default();
        match spec {
            Misc::Probe {
                nodes,
                lb,
                tokens,
                providers,
                kept: _,     // every token is asked again here
                until_up: _, // every pooled server shows `UP` at once here
            } => {
                for n in nodes {
                    obs.nodes.insert(n.clone(), self.facts(n));
                }
                if *lb {
                    obs.lb = Some(self.lb_rows());
                }
                // As the drivers do: full probes read each instance's config too.
                if *lb && !nodes.is_empty() {
                    obs.lb_reload = self.reload.clone();
                }
                for n in tokens {
                    obs.tokens.insert(n.clone(), self.token(n));
                }
                // Issued only: the provider it serves, no validation.
                for n in cutover::engine::action::issued_only(tokens, providers) {
                    let mut t = self.token(n);
                    t.validate_status = None;
                    obs.tokens.insert(n.clone(), t);
                }
                let mut what = vec![];
                if !nodes.is_empty() {
                    what.push(format!("{} nodes", nodes.len()));
                }
                if *lb {
                    what.push(format!("{} load balancers", self.lbs.len()));
                }
                if !tokens.is_empty() {
                    what.push(format!("{} token checks", tokens.len()));
                }
                let asked = cutover::engine::action::issued_only(tokens, providers).count();
                if asked > 0 {
                    what.push(format!("{asked} tokens issued"));
                }
                let mut summary = format!("read {}", what.join(", "));
                for c in reload_summary(&obs.lb_reload) {
                    summary.push_str(&format!("; {c}"));
                }
                Reply::ok(summary, obs, 800)
            }
            Misc::Wait { secs } => Reply::ok("waited", obs, secs * 1000),
            Misc::AcceptHostKey {
                host,
                port,
                known_hosts,
                ..
            } => Reply::ok(
                format!("host key of {host}:{port} added to {known_hosts}"),
                obs,
                20,
            ),
        }
    }
}

/// What each instance's config says about a reload: the first as Debian ships it (a reload
/// loses MAINT), the others with a server-state file loaded globally.
pub fn debian_and_state_file_reload(lbs: &[String]) -> BTreeMap<String, ReloadFacts> {
    lbs.iter()
        .enumerate()
        .map(|(i, l)| {
            let f = if i == 0 {
                ReloadFacts {
                    config: Some("/etc/haproxy/haproxy.cfg".into()),
                    known: true,
                    checks: Some(true),
                    note: "no server-state-file".into(),
                    ..Default::default()
                }
            } else {
                ReloadFacts {
                    config: Some("/etc/haproxy/haproxy.cfg".into()),
                    known: true,
                    state_file: Some("/var/lib/haproxy/state".into()),
                    load_state: Some("global".into()),
                    survives: true,
                    checks: Some(true),
                    note: "server-state-file /var/lib/haproxy/state, load global".into(),
                    ..Default::default()
                }
            };
            (l.clone(), f)
        })
        .collect()
}
