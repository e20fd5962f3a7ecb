//! Drivers: the real code that acts on Keystone nodes and HAProxy instances. The same drivers
//! run against the demo world, the lab and production; only the transport's far end differs.

pub mod guard;
pub mod haproxy;
pub mod keys;
pub mod keystone;
pub mod keystone_conf;
pub mod service_log;

use crate::engine::events::{Failure, Outcome};
use crate::engine::facts::*;
use crate::engine::plan::ActionSpec;
use crate::inventory::credentials::{self, AuthCredentials};
use crate::inventory::{Inventory, LoadBalancer, Node, Reach, name_path};
use crate::transport::{ExecOpts, Transport, TransportError, local::LocalTransport, shell_quote};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

/// What an action reports, before the engine wraps it into an `Outcome`.
pub struct Done {
    pub ok: bool,
    pub summary: String,
    pub observed: Observation,
    pub failure: Option<Failure>,
}

impl Done {
    pub fn ok(summary: impl Into<String>, observed: Observation) -> Done {
        Done {
            ok: true,
            summary: summary.into(),
            observed,
            failure: None,
        }
    }
    pub fn fail(summary: impl Into<String>, next: impl Into<String>) -> Done {
        Done {
            ok: false,
            summary: summary.into(),
            observed: Observation::default(),
            failure: Some(Failure::Hint { next: next.into() }),
        }
    }
    fn with(mut self, observed: Observation) -> Done {
        self.observed = observed;
        self
    }
}

/// A failure inside a driver: what happened, and what the operator should do next.
#[derive(Debug)]
pub struct DriverError {
    pub msg: String,
    pub next: String,
    pub transport: Option<Box<TransportError>>,
}

impl DriverError {
    pub fn new(msg: impl Into<String>, next: impl Into<String>) -> DriverError {
        DriverError {
            msg: msg.into(),
            next: next.into(),
            transport: None,
        }
    }
}

impl From<crate::inventory::NameError> for DriverError {
    fn from(e: crate::inventory::NameError) -> Self {
        DriverError::new(
            e.to_string(),
            "fix the name in the inventory (letters, digits, `.`, `_`, `-`)",
        )
    }
}

impl From<TransportError> for DriverError {
    fn from(e: TransportError) -> Self {
        let next = match &e {
            TransportError::HostKeyChanged { .. } => {
                "verify the host's key out of band; if the change is expected, remove the old known_hosts entry (ssh-keygen -R) and resume".to_string()
            }
            TransportError::Auth { .. } => {
                "check ssh-agent (ssh-add -l) or the IdentityFile for this host, then resume".into()
            }
            TransportError::Timeout { .. } => "check the host is reachable and not overloaded, then resume".into(),
            _ => "check the host is reachable (ssh HOST true), then resume".into(),
        };
        DriverError {
            msg: e.to_string(),
            next,
            transport: Some(Box::new(e)),
        }
    }
}

/// Which way reaching a host failed, when it did: an error while connecting (host key, TCP,
/// login), not one of a command on a host that was reached.
pub fn reach_failure(e: &TransportError) -> Option<ReachFailure> {
    match e {
        TransportError::HostKeyChanged { .. } => Some(ReachFailure::HostKeyChanged),
        TransportError::HostKeyUnknown { .. } => Some(ReachFailure::HostKeyUnknown),
        TransportError::Auth { .. } => Some(ReachFailure::AuthFailed),
        TransportError::Timeout { what, .. } if what == "connect" => Some(ReachFailure::Timeout),
        TransportError::Connect { msg, .. }
            if msg.contains(crate::transport::ssh::CONNECTION_REFUSED) =>
        {
            Some(ReachFailure::ConnectionRefused)
        }
        TransportError::Connect { .. } => Some(ReachFailure::ConnectFailed),
        _ => None,
    }
}

type DResult<T> = Result<T, DriverError>;

/// One connection per host: the key its transport is kept under.
fn reach_key(reach: &Reach) -> String {
    match reach {
        Reach::Local => "local".to_string(),
        Reach::Ssh(t) => format!("ssh:{}", t.host()),
    }
}

pub struct Fleet {
    pub inv: Inventory,
    creds: Result<AuthCredentials, String>,
    http: reqwest::Client,
    /// One slot per host: connecting to one host never waits for another.
    conns: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<Transport>>>>>,
    limit: Arc<Semaphore>,
    pub passphrase: Option<crate::transport::ssh::PassphrasePrompt>,
    /// What the pool guard watches (see `guard`).
    pub guard: guard::GuardShared,
}

impl Fleet {
    pub fn new(inv: Inventory) -> anyhow::Result<Fleet> {
        // An inventory read back from a journal was not parsed here: its names are checked
        // again before any of them reaches a path, a command or a load balancer.
        inv.check_names()?;
        let creds = credentials::resolve(
            inv.credentials.cloud.as_deref(),
            inv.credentials.clouds_file.as_deref(),
            &|k| std::env::var(k).ok(),
        );
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .no_proxy();
        if let Ok(c) = &creds {
            if c.insecure {
                b = b.danger_accept_invalid_certs(true);
            }
            if let Some(ca) = &c.cacert {
                let pem = std::fs::read(ca)
                    .map_err(|e| anyhow::anyhow!("cannot read cacert {}: {e}", ca.display()))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                    b = b.add_root_certificate(cert);
                }
            }
        }
        let concurrency = inv
            .ssh
            .as_ref()
            .and_then(|s| s.concurrency)
            .unwrap_or(8)
            .max(1);
        Ok(Fleet {
            inv,
            creds,
            http: b.build()?,
            conns: std::sync::Mutex::new(HashMap::new()),
            limit: Arc::new(Semaphore::new(concurrency)),
            passphrase: None,
            guard: Default::default(),
        })
    }

    fn node(&self, name: &str) -> DResult<&Node> {
        self.inv.node(name).ok_or_else(|| {
            DriverError::new(
                format!("no node `{name}` in the inventory"),
                "fix the inventory",
            )
        })
    }

    fn creds(&self) -> DResult<&AuthCredentials> {
        self.creds.as_ref().map_err(|e| {
            DriverError::new(
                format!("no Keystone credentials: {e}"),
                "set credentials.cloud in the inventory (clouds.yaml) or export OS_* variables, then resume",
            )
        })
    }

    async fn reach(&self, key: &str, reach: &Reach) -> DResult<Transport> {
        let slot = self
            .conns
            .lock()
            .expect("connection map")
            .entry(key.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let t = match reach {
            Reach::Local => Transport::Local(LocalTransport::new()),
            Reach::Ssh(target) => Transport::Ssh(
                crate::transport::ssh::SshTransport::connect(
                    target,
                    self.inv.ssh.as_ref(),
                    self.passphrase.clone(),
                )
                .await?,
            ),
        };
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Why `node` could not be reached, from the transport's error: where (the alias, and the
    /// address and port after ssh_config), why and what to do. None when the host was reached
    /// (a command failed or timed out, a channel was lost) or is not reached over SSH.
    pub fn unreachable(&self, node: &Node, e: &TransportError) -> Option<Unreachable> {
        let Reach::Ssh(target) = &node.reach else {
            return None;
        };
        let defaults = self.inv.ssh.as_ref();
        let kind = reach_failure(e)?;
        let alias = target.host().to_string();
        let hop = crate::transport::ssh::resolve_hops(target, defaults)
            .ok()
            .and_then(|h| h.last().cloned());
        let (mut host, mut port) = hop
            .as_ref()
            .map(|h| (h.host.clone(), h.port))
            .unwrap_or_else(|| (alias.clone(), 22));
        let keep_in = crate::transport::ssh::known_hosts_for(target, defaults)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| self.known_hosts_file());
        let (known_hosts, fingerprint) = match e {
            TransportError::HostKeyChanged {
                fingerprint,
                known_hosts,
                ..
            } => (Some(known_hosts.clone()), Some(fingerprint.clone())),
            TransportError::HostKeyUnknown {
                host: h,
                port: p,
                fingerprint,
                ..
            } => {
                // The host that offered the key (a jump host's, when that is the one).
                host = h.clone();
                port = *p;
                (Some(keep_in.clone()), Some(fingerprint.clone()))
            }
            _ => (None, None),
        };
        let q = |s: &str| shell_quote(s);
        let recorded = crate::transport::ssh::host_port_name(&host, port);
        let keyscan = format!(
            "ssh-keyscan{} {} >> {}",
            if port == 22 {
                String::new()
            } else {
                format!(" -p {port}")
            },
            q(&host),
            q(known_hosts.as_deref().unwrap_or(&keep_in))
        );
        let host_print = "on the host itself: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub";
        let ssh_once = {
            let mut c = String::from("ssh");
            if let Some(cfg) = defaults.and_then(|d| d.config.as_ref()) {
                c.push_str(&format!(" -F {}", q(&cfg.display().to_string())));
            }
            c.push_str(&format!(" -o UserKnownHostsFile={}", q(&keep_in)));
            match target {
                crate::inventory::SshTarget::Alias(a) => c.push_str(&format!(" {}", q(a))),
                crate::inventory::SshTarget::Explicit(x) => {
                    if port != 22 {
                        c.push_str(&format!(" -p {port}"));
                    }
                    match &x.user {
                        Some(u) => c.push_str(&format!(" {}", q(&format!("{u}@{}", x.host)))),
                        None => c.push_str(&format!(" {}", q(&x.host))),
                    }
                }
            }
            c.push_str(" true");
            c
        };
        let fp = fingerprint.clone().unwrap_or_default();
        let next = match kind {
            ReachFailure::HostKeyChanged => format!(
                "find out why {host} port {port} now presents another key (reinstalled? another machine on that address?) and compare {fp} with the host's own ({host_print}); only if the change is expected, remove the old entry (ssh-keygen -R {} -f {}) and accept the new key ({keyscan})",
                q(&recorded),
                q(known_hosts.as_deref().unwrap_or(&keep_in)),
            ),
            ReachFailure::HostKeyUnknown => format!(
                "compare {fp} with the host's own key ({host_print}); if they match, accept it: {keyscan} (or connect once and answer yes: {ssh_once}); `cutover run` asks for it at hard stop unknown-host-key"
            ),
            ReachFailure::ConnectionRefused => format!(
                "nothing accepts SSH connections at {host} port {port}: start sshd on {alias} (systemctl start ssh) or correct the port in the inventory or ssh_config"
            ),
            ReachFailure::AuthFailed => format!(
                "check ssh-agent (ssh-add -l) or the IdentityFile for {alias}, and that the user may log in there ({ssh_once})"
            ),
            ReachFailure::Timeout => format!(
                "check that {host} port {port} can be reached from here (host up, routing, firewall), or raise ssh.connect_timeout_secs"
            ),
            ReachFailure::ConnectFailed => {
                format!("check the host name and the network path to {alias} ({ssh_once})")
            }
        };
        // Said once: where is in the line around it (`<kind> at HOST port PORT (ssh alias A)`).
        let reason = match e {
            TransportError::HostKeyChanged { host: shown, .. } => {
                let jump = if shown.contains(&recorded) {
                    String::new()
                } else {
                    format!(" (on the way: {shown})")
                };
                if shown.contains("@revoked") {
                    format!(
                        "its host key {fp} is marked @revoked in {}{jump}",
                        known_hosts.as_deref().unwrap_or_default()
                    )
                } else {
                    format!(
                        "its host key has CHANGED: it now presents {fp}, and {} holds another key for {recorded}{jump}",
                        known_hosts.as_deref().unwrap_or_default()
                    )
                }
            }
            TransportError::HostKeyUnknown { .. } => {
                format!("no known_hosts file holds a key for {recorded}; it presents {fp}")
            }
            TransportError::Connect { msg, .. } if kind == ReachFailure::ConnectionRefused => {
                let jump = msg
                    .strip_prefix("(jump host ")
                    .and_then(|m| m.split_once(')'))
                    .map(|(j, _)| format!(" (at jump host {j})"))
                    .unwrap_or_default();
                format!("nothing listens there (is sshd running, on that port?){jump}")
            }
            TransportError::Timeout { secs, .. } => format!("no answer within {secs}s"),
            TransportError::Connect { msg, .. } | TransportError::Auth { msg, .. } => msg.clone(),
            other => other.to_string(),
        };
        Some(Unreachable {
            kind,
            alias,
            host,
            port,
            known_hosts,
            fingerprint,
            reason,
            next,
        })
    }

    /// Connect to every SSH-reached host once (in parallel); errors are reported later by the
    /// actions that need the host.
    pub async fn connect_all(&self) {
        let mut targets: Vec<(String, Reach)> = Vec::new();
        for n in &self.inv.nodes {
            if let Reach::Ssh(t) = &n.reach {
                targets.push((format!("ssh:{}", t.host()), n.reach.clone()));
            }
        }
        for lb in &self.inv.load_balancers {
            if let Some(r @ Reach::Ssh(t)) = &lb.reach {
                targets.push((format!("ssh:{}", t.host()), r.clone()));
            }
        }
        targets.sort_by(|a, b| a.0.cmp(&b.0));
        targets.dedup_by(|a, b| a.0 == b.0);
        futures::future::join_all(targets.iter().map(|(k, r)| self.reach(k, r))).await;
    }

    pub async fn node_transport(&self, name: &str) -> DResult<Transport> {
        let n = self.node(name)?;
        self.reach(&reach_key(&n.reach), &n.reach).await
    }

    async fn exec(
        &self,
        node: &str,
        cmd: &str,
        timeout: Duration,
    ) -> DResult<crate::transport::ExecOutput> {
        let n = self.node(node)?;
        let t = self.node_transport(node).await?;
        let _permit = self.limit.acquire().await.expect("semaphore open");
        Ok(t.exec(
            cmd,
            ExecOpts {
                stdin: None,
                timeout,
                sudo: n.sudo,
            },
        )
        .await?)
    }

    /// Run one effect and report what it observed. Never panics; every failure says what
    /// happened, on which node, and what to do next.
    pub async fn execute(&self, id: u64, op: usize, spec: &ActionSpec) -> Outcome {
        let start = Instant::now();
        let node = spec.node().map(str::to_string);
        let done = match self.run(spec).await {
            Ok(d) => d,
            Err(e) => {
                let failure = match e.transport.as_deref() {
                    Some(TransportError::HostKeyUnknown {
                        host,
                        port,
                        fingerprint,
                        key_openssh,
                    }) => Some(Failure::HostKeyUnknown {
                        host: host.clone(),
                        port: *port,
                        fingerprint: fingerprint.clone(),
                        key_openssh: key_openssh.clone(),
                        known_hosts: self.known_hosts_file(),
                    }),
                    _ => Some(Failure::Hint {
                        next: e.next.clone(),
                    }),
                };
                Done {
                    ok: false,
                    summary: e.msg,
                    observed: Observation::default(),
                    failure,
                }
            }
        };
        Outcome {
            id,
            op,
            node,
            ok: done.ok,
            summary: done.summary,
            duration_ms: start.elapsed().as_millis() as u64,
            observed: done.observed,
            failure: done.failure,
        }
    }

    /// Where an accepted host key goes: the inventory's known_hosts, else the user's.
    pub fn known_hosts_file(&self) -> String {
        self.inv
            .ssh
            .as_ref()
            .and_then(|s| s.known_hosts.clone())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| {
                std::env::var("HOME")
                    .map(|h| format!("{h}/.ssh/known_hosts"))
                    .unwrap_or_else(|_| "~/.ssh/known_hosts".into())
            })
    }

    async fn run(&self, spec: &ActionSpec) -> DResult<Done> {
        match spec {
            ActionSpec::Probe {
                nodes,
                lb,
                tokens,
                until_up: Some(node),
            } => {
                let deadline =
                    Instant::now() + Duration::from_secs(crate::engine::plan::UNTIL_UP_SECS);
                loop {
                    let done = self.probe(nodes, *lb, tokens).await?;
                    let up = done.observed.lb.as_ref().is_some_and(|rows| {
                        let mine: Vec<&LbServer> =
                            rows.iter().filter(|r| &r.node == node).collect();
                        !mine.is_empty() && mine.iter().all(|r| r.checked_up())
                    });
                    if up || !done.observed.lb_errors.is_empty() || Instant::now() >= deadline {
                        return Ok(done);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            ActionSpec::Probe {
                nodes, lb, tokens, ..
            } => self.probe(nodes, *lb, tokens).await,
            ActionSpec::LbDrain { node, timeout_secs } => self.lb_drain(node, *timeout_secs).await,
            ActionSpec::LbReady { node, timeout_secs } => self.lb_ready(node, *timeout_secs).await,
            ActionSpec::LbMaint { node } => self.lb_maint(node).await,
            ActionSpec::SetProvider { node, provider } => self.set_provider(node, provider).await,
            ActionSpec::CreateKeypair { node, keygen } => self.create_keypair(node, *keygen).await,
            ActionSpec::CreateSharedKeypair {
                origin,
                nodes,
                keygen,
            } => self.create_shared_keypair(origin, nodes, *keygen).await,
            ActionSpec::InstallKeys { node, public } => self.install_keys(node, *public).await,
            ActionSpec::PublishStagedKeys { node, from } => self.publish_staged(node, from).await,
            ActionSpec::RemoveRetiredKeys { node, nodes } => self.remove_retired(node, nodes).await,
            ActionSpec::RotateFernet { node } => self.rotate_fernet(node).await,
            ActionSpec::SyncFernet { node, from } => self.sync_fernet(node, from).await,
            ActionSpec::DistributePublicKeys { node, from } => self.distribute(node, from).await,
            ActionSpec::Restart { node, timeout_secs } => self.restart(node, *timeout_secs).await,
            ActionSpec::IssueToken { node, expect } => {
                let t = self.token_check(node).await;
                let mut obs = Observation::default();
                obs.tokens.insert(node.clone(), t.clone());
                if t.format.as_str() == expect && t.validated() {
                    Ok(Done::ok(format!("{node}: {}", t.short()), obs))
                } else {
                    Ok(Done::fail(
                        format!("{node}: expected a {expect} token that validates, got {}", t.short()),
                        format!("{node} stays out of the pool. Read its keystone log; fix and resume, or set its provider back and restart it"),
                    )
                    .with(obs))
                }
            }
            ActionSpec::ValidateMatrix { nodes, expect } => self.matrix(nodes, expect).await,
            ActionSpec::ListTrusts { node } => self.list_trusts(node).await,
            ActionSpec::Wait { secs } => {
                tokio::time::sleep(Duration::from_secs(*secs)).await;
                Ok(Done::ok(format!("waited {secs}s"), Observation::default()))
            }
            ActionSpec::Shell {
                node,
                command,
                expect_status,
                sudo,
                timeout_secs,
            } => {
                let n = self.node(node)?;
                let t = self.node_transport(node).await?;
                let out = t
                    .exec(
                        command,
                        ExecOpts {
                            stdin: None,
                            timeout: Duration::from_secs(*timeout_secs),
                            sudo: *sudo || n.sudo,
                        },
                    )
                    .await?;
                if out.status == *expect_status {
                    Ok(Done::ok(
                        format!("{node}: exit {}", out.status),
                        Observation::default(),
                    ))
                } else {
                    Ok(Done::fail(
                        format!(
                            "{node}: {} (expected exit {expect_status}): {}",
                            out.exit_text(),
                            out.last_line()
                        ),
                        "read the command's output on the node, fix, then resume",
                    ))
                }
            }
            ActionSpec::AcceptHostKey {
                host,
                port,
                key_openssh,
                known_hosts,
            } => {
                crate::transport::ssh::accept_host_key(
                    Path::new(known_hosts),
                    host,
                    *port,
                    key_openssh,
                )
                .map_err(|e| {
                    DriverError::new(
                        format!("cannot append to {known_hosts}: {e}"),
                        "check the file's permissions",
                    )
                })?;
                // Forget any failed connection so the next use reconnects with the new key.
                self.conns.lock().expect("connection map").clear();
                Ok(Done::ok(
                    format!("added {host}:{port} to {known_hosts}"),
                    Observation::default(),
                ))
            }
        }
    }

    // ----- probes -----

    /// Read nodes, load balancers and direct tokens, concurrently. A node with an unknown SSH
    /// host key makes this an error (the run turns it into hard stop `unknown-host-key`);
    /// every other unreachable node is a fact (`NodeFacts::unreachable`), for the gates.
    pub async fn probe(&self, nodes: &[String], lb: bool, tokens: &[String]) -> DResult<Done> {
        let (done, unknown_host) = self.observe(nodes, lb, tokens).await;
        // An unknown host key must reach the operator as a hard stop, not as a fact.
        match unknown_host {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// What `probe` reads, never failing as a whole: each node that cannot be reached is
    /// reported as unreachable (with why, where and what to do), and its Keystone is still
    /// asked over HTTP. Also returns the unknown-host-key error of the first such node (in the
    /// order given), for `probe` to raise.
    pub async fn observe(
        &self,
        nodes: &[String],
        lb: bool,
        tokens: &[String],
    ) -> (Done, Option<DriverError>) {
        let facts = futures::future::join_all(nodes.iter().map(|n| async move {
            match self.node_facts(n).await {
                Ok(f) => (n.clone(), f, None),
                Err(e) => {
                    let (f, unknown) = self.facts_after_error(n, e).await;
                    (n.clone(), f, unknown)
                }
            }
        }));
        let lbs = async {
            if lb {
                let read = self.read_lbs().await;
                Some((read, chrono::Utc::now()))
            } else {
                None
            }
        };
        let toks = futures::future::join_all(
            tokens
                .iter()
                .map(|n| async move { (n.clone(), self.token_check(n).await) }),
        );
        // How each instance would come through a reload: read by full probes only (the load
        // balancers and nodes: preflight, verify), not by the lean pool reads before each
        // guarded action, and concurrently with the rest, so it never delays a pool read.
        let reload = async {
            if lb && !nodes.is_empty() {
                self.read_reload_facts().await
            } else {
                Default::default()
            }
        };
        let (facts, lbs, toks, reload) = tokio::join!(facts, lbs, toks, reload);
        let mut obs = Observation {
            lb_reload: reload,
            ..Default::default()
        };
        let mut unknown_host: Option<DriverError> = None;
        for (n, f, unknown) in facts {
            obs.nodes.insert(n, f);
            if unknown_host.is_none() {
                unknown_host = unknown;
            }
        }
        if let Some(((rows, errors), at)) = lbs {
            obs.lb = Some(rows);
            obs.lb_errors = errors;
            obs.lb_read_at = Some(at);
        }
        for (n, t) in toks {
            obs.tokens.insert(n, t);
        }
        let errors: Vec<String> = obs
            .nodes
            .iter()
            .filter_map(|(n, f)| f.error.as_ref().map(|e| format!("{n}: {e}")))
            .collect();
        let mut parts = Vec::new();
        if !nodes.is_empty() {
            parts.push(format!("{} nodes read", nodes.len() - errors.len()));
        }
        if let Some(rows) = &obs.lb {
            parts.push(format!("{} lb rows", rows.len()));
        }
        parts.extend(reload_summary(&obs.lb_reload));
        if !tokens.is_empty() {
            parts.push(format!(
                "tokens: {}",
                obs.tokens
                    .iter()
                    .map(|(n, t)| format!("{n} {}", t.format.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !errors.is_empty() || !obs.lb_errors.is_empty() {
            parts.push(format!(
                "problems: {}",
                errors
                    .iter()
                    .chain(obs.lb_errors.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        (Done::ok(parts.join("; "), obs), unknown_host)
    }

    /// A node's facts when reading it failed: unreachable (and why) when the failure was
    /// reaching it, else the error; its Keystone is asked over HTTP either way, so a node that
    /// cannot be read is never shown as a service that is down. The error comes back when it
    /// is an unknown host key.
    async fn facts_after_error(
        &self,
        name: &str,
        e: DriverError,
    ) -> (NodeFacts, Option<DriverError>) {
        let Ok(n) = self.node(name) else {
            return (
                NodeFacts {
                    error: Some(e.msg),
                    ..Default::default()
                },
                None,
            );
        };
        let reach = e.transport.as_deref().and_then(|t| self.unreachable(n, t));
        let unknown = reach
            .as_ref()
            .is_some_and(|u| u.kind == ReachFailure::HostKeyUnknown);
        let mut f = match reach {
            Some(u) => NodeFacts::unreachable(u),
            None => NodeFacts {
                error: Some(e.msg.clone()),
                ..Default::default()
            },
        };
        let svc = keystone::service_check(&self.http, &n.keystone_url).await;
        f.service_up = svc.up;
        f.service_status = svc.status;
        f.service_detail = svc.detail;
        (f, unknown.then_some(e))
    }

    pub async fn node_facts(&self, name: &str) -> DResult<NodeFacts> {
        let n = self.node(name)?;
        let conf_path = n.keystone_conf.display().to_string();
        let out = self
            .exec(
                name,
                &format!("cat -- {}", shell_quote(&conf_path)),
                Duration::from_secs(20),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{name}: cannot read {conf_path}: {}", out.last_line()),
                format!(
                    "check keystone_conf for {name} in the inventory (and sudo: true if it needs root)"
                ),
            ));
        }
        let conf = out.stdout_str();
        let s = keystone_conf::token_settings(&conf);
        let path_or = |o: &Option<std::path::PathBuf>, d: &str| {
            o.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| d.to_string())
        };
        let fernet = path_or(&n.fernet_repo, &s.fernet_repo);
        let private = path_or(&n.jws_private_repo, &s.jws_private_repo);
        let public = path_or(&n.jws_public_repo, &s.jws_public_repo);
        let script = keystone::facts_script(&fernet, &private, &public);
        let svc = keystone::service_check(&self.http, &n.keystone_url).await;
        let out = self.exec(name, &script, Duration::from_secs(30)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{name}: reading key repositories failed: {}",
                    out.last_line()
                ),
                "check permissions on the key repositories (sudo: true in the inventory if needed)",
            ));
        }
        let mut f = keystone::parse_facts(&out.stdout_str(), &fernet, &private, &public);
        if f.jws.no_openssl && f.jws.private_present {
            f.jws.private_fingerprint = self
                .private_fingerprint_without_openssl(name, &private)
                .await;
        }
        f.provider = Some(s.provider);
        f.expiration = s.expiration;
        f.allow_expired_window = s.allow_expired_window;
        f.receipts_repo = s.receipts_repo;
        f.service_up = svc.up;
        f.service_status = svc.status;
        f.service_detail = svc.detail;
        Ok(f)
    }

    /// Without `openssl` on the node, private.pem's public half can only be derived by reading
    /// the key. That is done only on this machine (the local transport), where nothing travels;
    /// over SSH the key stays on its node and the gate says what to install.
    async fn private_fingerprint_without_openssl(
        &self,
        node: &str,
        private_repo: &str,
    ) -> Option<String> {
        let n = self.node(node).ok()?;
        if !matches!(n.reach, Reach::Local) {
            return None;
        }
        let t = self.node_transport(node).await.ok()?;
        let bytes = keys::zeroize_string::Secret(
            t.read_file(&Path::new(private_repo).join("private.pem"), n.sudo)
                .await
                .ok()?,
        );
        keys::private_fingerprint(std::str::from_utf8(&bytes.0).ok()?).ok()
    }

    /// Read every load-balancer instance: rows for every node, and the instances that failed.
    pub async fn read_lbs(&self) -> (Vec<LbServer>, Vec<String>) {
        // A reloading HAProxy hands its admin socket to the new process: a read in that gap is
        // refused for some milliseconds. Retried briefly, so a reload is not mistaken for a
        // dead load balancer (the pool guard and the gates then see what the reload did).
        let results = futures::future::join_all(self.inv.load_balancers.iter().map(|lb| async {
            let mut tries = 0;
            loop {
                match self.read_lb(lb).await {
                    Err(_) if tries < 3 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                    other => return other,
                }
            }
        }))
        .await;
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(mut v) => rows.append(&mut v),
                Err(e) => errors.push(e.msg),
            }
        }
        (rows, errors)
    }

    /// How every instance would come through a reload, read from its configuration file.
    pub async fn read_reload_facts(&self) -> std::collections::BTreeMap<String, ReloadFacts> {
        futures::future::join_all(
            self.inv
                .load_balancers
                .iter()
                .map(|lb| async { (lb.name.clone(), self.lb_reload_facts(lb).await) }),
        )
        .await
        .into_iter()
        .collect()
    }

    /// Read one instance's configuration over its host's transport and parse what a reload
    /// does. Never fails: what cannot be read is reported as unknown, with the reason.
    async fn lb_reload_facts(&self, lb: &LoadBalancer) -> ReloadFacts {
        let Some(path) = &lb.config else {
            return ReloadFacts::unknown(None, "config not named in the inventory");
        };
        let shown = path.display().to_string();
        let reach = match (&lb.reach, &lb.address) {
            (Some(r), _) => r.clone(),
            // A TCP admin socket says nothing about which host holds the file.
            (None, Some(_)) => {
                return ReloadFacts::unknown(
                    Some(shown),
                    "config not readable: `address:` without `reach:` does not say which host holds it",
                );
            }
            (None, None) => Reach::Local,
        };
        let t = match self.reach(&reach_key(&reach), &reach).await {
            Ok(t) => t,
            Err(e) => {
                return ReloadFacts::unknown(
                    Some(shown.clone()),
                    format!("cannot read {shown}: {}", e.msg),
                );
            }
        };
        match t.read_file(path, lb.sudo).await {
            Ok(bytes) => {
                let mut f = haproxy::reload_facts(&String::from_utf8_lossy(&bytes), &lb.backend);
                f.config = Some(shown);
                f
            }
            Err(e) => ReloadFacts::unknown(Some(shown), e.to_string()),
        }
    }

    fn lb_servers(&self, lb: &LoadBalancer) -> Vec<(String, String)> {
        self.inv
            .nodes
            .iter()
            .map(|n| (n.name.clone(), lb.server_for(&n.name)))
            .collect()
    }

    pub async fn lb_request(&self, lb: &LoadBalancer, cmd: &str) -> DResult<String> {
        let timeout = Duration::from_secs(10);
        let answer = if let Some(addr) = &lb.address {
            keystone::tcp_request(addr, cmd, timeout)
                .await
                .map_err(|e| DriverError::new(format!("{}: {e}", lb.name), format!("check that {addr} is HAProxy's admin socket (stats socket ... level admin)")))?
        } else {
            let reach = lb.reach.clone().unwrap_or(Reach::Local);
            let t = self.reach(&reach_key(&reach), &reach).await?;
            let socket = lb.socket.clone().unwrap_or_default();
            t.socket_request(&socket, cmd, lb.sudo, timeout).await.map_err(|e| {
                let mut d = DriverError::from(e);
                d.msg = format!("{}: {}", lb.name, d.msg);
                d.next = format!(
                    "check that {} exists and is HAProxy's admin socket (stats socket ... level admin){}",
                    socket.display(),
                    if lb.sudo { "" } else { "; set sudo: true if it needs root" }
                );
                d
            })?
        };
        Ok(answer)
    }

    /// One instance's rows, in one round trip: the runtime API runs `;`-separated commands in
    /// order on one connection (over SSH, one `socat` instead of two).
    async fn read_lb(&self, lb: &LoadBalancer) -> DResult<Vec<LbServer>> {
        let answer = self
            .lb_request(lb, &format!("show servers state {}; show stat", lb.backend))
            .await?;
        let haproxy::Answer { state, stat, .. } = haproxy::split_answer(&answer);
        let state = haproxy::parse_servers_state(state).map_err(|e| {
            DriverError::new(
                format!("{}: {e}", lb.name),
                "check the backend name in the inventory",
            )
        })?;
        let stat = haproxy::parse_stat(stat).map_err(|e| {
            DriverError::new(
                format!("{}: {e}", lb.name),
                "check the admin socket's level (admin)",
            )
        })?;
        haproxy::rows(&lb.name, &lb.backend, &self.lb_servers(lb), &state, &stat).map_err(|e| {
            DriverError::new(
                e,
                "fix the server names in the inventory (load_balancers[].servers)",
            )
        })
    }

    /// Set the node's server state on one instance; HAProxy answers nothing when it took.
    async fn set_on(&self, lb: &LoadBalancer, node: &str, state: &str) -> DResult<()> {
        let server = lb.server_for(node);
        let answer = self
            .lb_request(lb, &haproxy::set_state(&lb.backend, &server, state))
            .await?;
        if !answer.trim().is_empty() {
            return Err(DriverError::new(
                format!(
                    "{}: `set server {}/{server} state {state}` answered: {}",
                    lb.name,
                    lb.backend,
                    answer.trim()
                ),
                "check the backend and server names in the inventory, then resume",
            ));
        }
        Ok(())
    }

    /// Set the node's server state on every instance, in inventory order. A failure names the
    /// instances already changed, so the operator knows where the node stands.
    async fn set_lb_state(&self, node: &str, state: &str) -> DResult<()> {
        let mut done: Vec<&str> = Vec::new();
        for lb in &self.inv.load_balancers {
            if let Err(mut e) = self.set_on(lb, node, state).await {
                if !done.is_empty() {
                    e.msg.push_str(&format!(
                        " ({node} is already `{state}` on {})",
                        done.join(", ")
                    ));
                }
                return Err(e);
            }
            done.push(&lb.name);
        }
        Ok(())
    }

    /// Read every instance and set `maint` wherever the node is not in forced maint, until the
    /// read shows it out everywhere (a reload or another operator can undo it between the
    /// command and the read: a few rounds). Returns the last read, and per round the instances
    /// it had to set (with what they showed).
    async fn maint_until_it_holds(
        &self,
        node: &str,
    ) -> DResult<(Vec<LbServer>, Vec<String>, Vec<Vec<String>>)> {
        let mut rounds: Vec<Vec<String>> = Vec::new();
        loop {
            let (rows, errors) = self.read_lbs().await;
            let undone: Vec<(&LoadBalancer, &LbServer)> = self
                .inv
                .load_balancers
                .iter()
                .filter_map(|lb| {
                    rows.iter()
                        .find(|r| r.lb == lb.name && r.node == node && !r.out_of_pool())
                        .map(|r| (lb, r))
                })
                .collect();
            if undone.is_empty() || !errors.is_empty() || rounds.len() == 4 {
                return Ok((rows, errors, rounds));
            }
            let mut set = Vec::new();
            for (lb, r) in undone {
                self.set_on(lb, node, "maint").await?;
                set.push(format!("{} (was {})", lb.name, r.seen()));
            }
            rounds.push(set);
        }
    }

    /// A pool breach repaired: maint wherever the node is not in maint, read back.
    async fn lb_maint(&self, node: &str) -> DResult<Done> {
        let start = Instant::now();
        let (rows, errors, rounds) = self.maint_until_it_holds(node).await?;
        let obs = Observation {
            lb: Some(rows.clone()),
            lb_errors: errors.clone(),
            lb_read_at: Some(chrono::Utc::now()),
            ..Default::default()
        };
        let still: Vec<String> = rows
            .iter()
            .filter(|r| r.node == node && !r.out_of_pool())
            .map(|r| format!("{} {}", r.lb, r.seen()))
            .chain(errors)
            .collect();
        if !still.is_empty() {
            return Ok(Done::fail(
                format!("{node} is still in the pool: {}", still.join(", ")),
                format!("set {node} to maint by hand on those instances (set server BACKEND/SERVER state maint), then resume"),
            )
            .with(obs));
        }
        Ok(Done::ok(
            match rounds.first() {
                None => format!("{node} is in maint on every load balancer"),
                Some(set) => format!(
                    "{node} set back to maint on {} in {} ms{}",
                    set.join(", "),
                    start.elapsed().as_millis(),
                    if rounds.len() > 1 {
                        format!(" (undone again meanwhile: {} rounds)", rounds.len())
                    } else {
                        String::new()
                    }
                ),
            },
            obs,
        ))
    }

    async fn lb_drain(&self, node: &str, timeout_secs: u64) -> DResult<Done> {
        if self.inv.load_balancers.is_empty() {
            return Ok(Done::ok(
                "no load balancers in the inventory",
                Observation::default(),
            ));
        }
        self.set_lb_state(node, "drain").await?;
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        let mut forced = false;
        loop {
            let (rows, errors) = self.read_lbs().await;
            if !errors.is_empty() {
                return Err(DriverError::new(
                    errors.join("; "),
                    "check the admin sockets, then resume",
                ));
            }
            let sessions: u64 = rows
                .iter()
                .filter(|r| r.node == node)
                .map(|r| r.sessions)
                .sum();
            if sessions == 0 {
                break;
            }
            if Instant::now() >= deadline {
                forced = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.set_lb_state(node, "maint").await?;
        // The guard only watches once the drain is done: the drain holds until the read shows
        // maint everywhere.
        let (rows, errors, rounds) = self.maint_until_it_holds(node).await?;
        let retries = rounds.len();
        let mine: Vec<&LbServer> = rows.iter().filter(|r| r.node == node).collect();
        let obs = Observation {
            lb: Some(rows.clone()),
            lb_errors: errors.clone(),
            lb_read_at: Some(chrono::Utc::now()),
            ..Default::default()
        };
        if !errors.is_empty() || mine.iter().any(|r| !r.out_of_pool()) {
            return Ok(Done::fail(
                format!(
                    "{node}: maint did not take on every instance: {}",
                    mine.iter()
                        .map(|r| format!("{} {}", r.lb, r.status))
                        .chain(errors)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "check each HAProxy instance (show servers state), then resume",
            )
            .with(obs));
        }
        Ok(Done::ok(
            format!(
                "{node} in maint on {} load balancer(s){}{}",
                mine.len(),
                if retries > 0 {
                    format!(" (maint undone on an instance meanwhile, set again {retries}×)")
                } else {
                    String::new()
                },
                if forced {
                    format!(" (sessions did not reach 0 within {timeout_secs}s; forced)")
                } else {
                    ", sessions drained to 0".into()
                }
            ),
            obs,
        ))
    }

    /// Re-add: `ready` on every instance (after any guard revert in progress: the guard's lock),
    /// then wait until a health check passed on every one. `UP 1/3` right after the command is
    /// HAProxy's "no check has run yet", not proof: it must read `UP 2/3` or `UP` (or `no check`
    /// for a server without health checks).
    async fn lb_ready(&self, node: &str, timeout_secs: u64) -> DResult<Done> {
        if self.inv.load_balancers.is_empty() {
            return Ok(Done::ok(
                "no load balancers in the inventory",
                Observation::default(),
            ));
        }
        {
            let _order = self.guard.order.lock().await;
            self.set_lb_state(node, "ready").await?;
        }
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs(timeout_secs);
        let mut first_seen: Option<String> = None;
        loop {
            let (rows, errors) = self.read_lbs().await;
            let mine: Vec<&LbServer> = rows.iter().filter(|r| r.node == node).collect();
            if first_seen.is_none() && !mine.is_empty() {
                first_seen = Some(
                    mine.iter()
                        .map(|r| format!("{} {}", r.lb, r.status))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            let all_up =
                errors.is_empty() && !mine.is_empty() && mine.iter().all(|r| r.checked_up());
            if all_up || Instant::now() >= deadline {
                let summary = mine
                    .iter()
                    .map(|r| format!("{} {}", r.lb, r.status))
                    .collect::<Vec<_>>()
                    .join(", ");
                let obs = Observation {
                    lb: Some(rows.clone()),
                    lb_errors: errors.clone(),
                    lb_read_at: Some(chrono::Utc::now()),
                    ..Default::default()
                };
                let waited = sent.elapsed().as_millis();
                return Ok(if all_up {
                    Done::ok(
                        format!(
                            "{node} ready, health-checked UP after {waited} ms: {summary} (right after `ready`: {})",
                            first_seen.unwrap_or_default()
                        ),
                        obs,
                    )
                } else {
                    Done::fail(
                        format!("{node} has no passed health check everywhere after {timeout_secs}s: {summary}{}", if errors.is_empty() { String::new() } else { format!("; {}", errors.join("; ")) }),
                        format!("{node}'s health check fails on some instance: check GET /v3 on it and its keystone log. It may already take traffic on the instances that show it UP; to take it out, set it to maint by hand (set server BACKEND/SERVER state maint) on every instance, then resume"),
                    )
                    .with(obs)
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // ----- keystone.conf -----

    async fn set_provider(&self, node: &str, provider: &str) -> DResult<Done> {
        let n = self.node(node)?;
        let t = self.node_transport(node).await?;
        let conf = n.keystone_conf.clone();
        let text = String::from_utf8(t.read_file(&conf, n.sudo).await?).map_err(|_| {
            DriverError::new(
                format!("{node}: {} is not UTF-8", conf.display()),
                "check the file",
            )
        })?;
        let before =
            keystone_conf::get(&text, "token", "provider").unwrap_or_else(|| "fernet".into());
        let mut obs = Observation::default();
        obs.flipped.insert(node.to_string(), provider.to_string());
        let new = keystone_conf::set_provider(&text, provider);
        if new == text {
            return Ok(Done::ok(
                format!("{node}: [token] provider already {provider}"),
                obs,
            ));
        }
        let c = shell_quote(&conf.display().to_string());
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let out = self
            .exec(
                node,
                &format!("cp -p -- {c} {c}.cutover-{stamp} && stat -c '%a %U %G' -- {c}"),
                Duration::from_secs(20),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: cannot back up {}: {}",
                    conf.display(),
                    out.last_line()
                ),
                "check permissions (sudo: true in the inventory?)",
            ));
        }
        let st = out.stdout_str();
        let f: Vec<&str> = st.split_whitespace().collect();
        let mode = f
            .first()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o640);
        let owner = (
            f.get(1).copied().unwrap_or("root"),
            f.get(2).copied().unwrap_or("root"),
        );
        t.write_file(&conf, new.as_bytes(), mode, Some(owner), n.sudo)
            .await?;
        // Read back: what is on disk is what counts.
        let check = String::from_utf8_lossy(&t.read_file(&conf, n.sudo).await?).into_owned();
        let now = keystone_conf::get(&check, "token", "provider");
        if now.as_deref() != Some(provider) {
            return Err(DriverError::new(
                format!(
                    "{node}: wrote {} but it reads provider = {:?}",
                    conf.display(),
                    now
                ),
                "inspect the file; the backup is beside it",
            ));
        }
        Ok(Done::ok(
            format!(
                "{node}: [token] provider {before} → {provider} (backup {}.cutover-{stamp})",
                conf.display()
            ),
            obs,
        ))
    }

    // ----- service -----

    async fn restart(&self, node: &str, timeout_secs: u64) -> DResult<Done> {
        let n = self.node(node)?;
        let mark = self.restart_mark(node).await;
        let out = self
            .exec(node, &n.restart, Duration::from_secs(timeout_secs.max(10)))
            .await?;
        if out.status != 0 {
            let ev = self.log_tail(node, &mark, &out.stderr_str()).await;
            let why = ev.reason().unwrap_or_else(|| out.last_line());
            return Ok(Done::fail(
                format!(
                    "{node}: `{}` {}: {why}{}",
                    n.restart,
                    out.exit_text(),
                    ev.render()
                ),
                format!(
                    "{node} is out of the pool; fix what the service reports ({}), then resume",
                    self.where_it_logs(node)
                ),
            ));
        }
        let start = Instant::now();
        let deadline = start + Duration::from_secs(timeout_secs);
        loop {
            let (up, detail) = keystone::service_up(&self.http, &n.keystone_url).await;
            if up {
                let mut obs = Observation::default();
                obs.restarted.push(node.to_string());
                return Ok(Done::ok(
                    format!(
                        "{node}: restarted, GET /v3 answers after {:.1}s",
                        start.elapsed().as_secs_f64()
                    ),
                    obs,
                ));
            }
            if Instant::now() >= deadline {
                let ev = self.log_tail(node, &mark, &out.stderr_str()).await;
                let why = ev.reason().map(|r| format!(": {r}")).unwrap_or_default();
                return Ok(Done::fail(
                    format!(
                        "{node}: keystone did not answer GET /v3 within {timeout_secs}s after restart ({detail}){why}{}",
                        ev.render()
                    ),
                    format!(
                        "{node} is out of the pool, nothing else changed. Fix the cause ({}), resume to retry; or roll it back: set [token] provider back and restart it",
                        self.where_it_logs(node)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Where `node`'s Keystone says why it failed, for a failure's next step.
    fn where_it_logs(&self, node: &str) -> String {
        let Ok(n) = self.node(node) else {
            return format!("the keystone log on {node}");
        };
        let unit = n.unit.clone().or_else(|| service_log::unit_of(&n.restart));
        match (&n.log_file, unit) {
            (Some(log), Some(u)) => format!("{} and journalctl -u {u} on {node}", log.display()),
            (Some(log), None) => format!("{} on {node}", log.display()),
            (None, Some(u)) => format!("journalctl -u {u} on {node}"),
            (None, None) => format!(
                "the keystone log on {node}; set log_file: (and unit: under systemd) for {node} in the inventory and cutover shows it"
            ),
        }
    }

    /// The node's clock and the size of its log just before a restart: what the service writes
    /// after this is what the restart caused. Unknown parts stay None (the evidence then says it
    /// shows the log's last lines).
    async fn restart_mark(&self, node: &str) -> service_log::RestartMark {
        let Ok(n) = self.node(node) else {
            return service_log::RestartMark::default();
        };
        let cmd = match &n.log_file {
            Some(log) => {
                let l = shell_quote(&log.display().to_string());
                format!(
                    "date +%s; if [ ! -e {l} ]; then echo 0; else wc -c < {l} 2>/dev/null || echo -; fi"
                )
            }
            None => "date +%s".to_string(),
        };
        match self.exec(node, &cmd, Duration::from_secs(10)).await {
            Ok(o) if o.status == 0 => {
                let text = o.stdout_str();
                let mut it = text.split_whitespace();
                service_log::RestartMark {
                    epoch: it.next().and_then(|v| v.parse().ok()),
                    log_size: it.next().and_then(|v| v.parse().ok()),
                }
            }
            _ => service_log::RestartMark::default(),
        }
    }

    /// What the service said about a failed restart: the restart's `stderr`, `journalctl -u
    /// UNIT` since the restart (where systemd runs it) and the log file's lines written since
    /// the restart, each picked down to its errors by `service_log`, masked and bounded. One
    /// round trip; a node that cannot be read leaves only stderr.
    async fn log_tail(
        &self,
        node: &str,
        mark: &service_log::RestartMark,
        stderr: &str,
    ) -> service_log::Evidence {
        let mut ev = service_log::Evidence {
            stderr: service_log::pick(stderr, service_log::MAX_LINES),
            ..Default::default()
        };
        let Ok(n) = self.node(node) else {
            return ev;
        };
        let unit = n.unit.clone().or_else(|| service_log::unit_of(&n.restart));
        let sec = service_log::SECTION;
        let mut script = String::new();
        if let Some(u) = &unit {
            let since = match mark.epoch {
                Some(e) => format!("--since @{e} -n 400"),
                None => "-n 100".to_string(),
            };
            script.push_str(&format!(
                "if command -v journalctl >/dev/null 2>&1 && command -v systemctl >/dev/null 2>&1; then echo '{sec} journal'; journalctl --no-pager -q -o cat -u {} {since} 2>&1 | tail -n 400; fi\n",
                shell_quote(u)
            ));
        }
        if let Some(log) = &n.log_file {
            let l = shell_quote(&log.display().to_string());
            match mark.log_size {
                Some(off) => script.push_str(&format!(
                    "if [ ! -f {l} ]; then echo '{sec} log missing'; elif [ ! -r {l} ]; then echo '{sec} log unreadable'; elif [ \"$(wc -c < {l})\" -ge {off} ]; then echo '{sec} log since'; tail -c +{} -- {l} | tail -n 400; else echo '{sec} log rotated'; tail -n 400 -- {l}; fi\n",
                    off + 1
                )),
                None => script.push_str(&format!(
                    "if [ ! -f {l} ]; then echo '{sec} log missing'; elif [ ! -r {l} ]; then echo '{sec} log unreadable'; else echo '{sec} log tail'; tail -n 200 -- {l}; fi\n"
                )),
            }
        }
        if script.is_empty() {
            return ev;
        }
        let Ok(out) = self.exec(node, &script, Duration::from_secs(20)).await else {
            return ev;
        };
        let at = mark
            .epoch
            .and_then(|e| chrono::DateTime::from_timestamp(e, 0))
            .map(|t| t.format("%H:%M:%S UTC").to_string());
        for (name, how, text) in service_log::sections(&out.stdout_str()) {
            let mut picked = service_log::pick(&text, service_log::MAX_LINES);
            match name.as_str() {
                "journal" => {
                    let u = unit.clone().unwrap_or_default();
                    let head = match &at {
                        Some(t) => format!("journalctl -u {u} since {t}"),
                        None => format!("journalctl -u {u} (its last lines)"),
                    };
                    if picked.is_empty() {
                        picked.lines.push("(nothing since the restart)".into());
                    }
                    ev.journal = Some((head, picked));
                }
                "log" => {
                    let path = crate::sanitize::for_terminal(
                        &n.log_file
                            .as_ref()
                            .map(|l| l.display().to_string())
                            .unwrap_or_default(),
                    )
                    .into_owned();
                    let head = match how.as_str() {
                        "since" => format!("{path} since the restart"),
                        "rotated" => format!("{path} (rotated since the restart: its last lines)"),
                        "missing" | "unreadable" => path.clone(),
                        _ => format!("{path} (its last lines)"),
                    };
                    if how == "missing" {
                        picked.lines.push("(no such file on the node)".into());
                    } else if how == "unreadable" {
                        picked.lines.push(format!(
                            "(not readable by the user cutover runs as on {node}: set sudo: true for {node} in the inventory, or make it readable)"
                        ));
                    } else if picked.is_empty() {
                        picked.lines.push(if how == "since" {
                            "(nothing written since the restart)".into()
                        } else {
                            "(no error in its last lines)".into()
                        });
                    }
                    ev.log = Some((head, picked));
                }
                _ => {}
            }
        }
        ev
    }

    // ----- tokens -----

    /// Issue a token directly at the node and validate it there. Only its shape survives.
    pub async fn token_check(&self, node: &str) -> TokenCheck {
        let url = match self.node(node) {
            Ok(n) => n.keystone_url.clone(),
            Err(e) => {
                return TokenCheck {
                    node: node.into(),
                    error: Some(e.msg),
                    ..Default::default()
                };
            }
        };
        match self.creds() {
            Ok(c) => keystone::issue_and_validate(&self.http, node, &url, c).await,
            Err(e) => TokenCheck {
                node: node.into(),
                error: Some(e.msg),
                ..Default::default()
            },
        }
    }

    async fn matrix(&self, nodes: &[String], expect: &str) -> DResult<Done> {
        let c = self.creds()?;
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| self.node(n).map(|x| x.keystone_url.clone()))
            .collect::<DResult<_>>()?;
        let m = keystone::matrix(&self.http, nodes, &urls, c).await;
        let ok = m.all_ok() && m.formats.iter().all(|f| f.as_str() == expect);
        let n = nodes.len();
        let good = m
            .cells
            .iter()
            .flatten()
            .filter(|c| **c == Some(200))
            .count();
        let obs = Observation {
            matrix: Some(m.clone()),
            ..Default::default()
        };
        if ok {
            Ok(Done::ok(
                format!("{good}/{} validations green, every token {expect}", n * n),
                obs,
            ))
        } else {
            Ok(Done::fail(
                format!("validation matrix: {good}/{} green; formats {}", n * n, m.formats.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")),
                "a node that refuses another's tokens lacks its public key or runs another provider: check keys and providers, then resume",
            )
            .with(obs))
        }
    }

    async fn list_trusts(&self, node: &str) -> DResult<Done> {
        let c = self.creds()?;
        let url = self.node(node)?.keystone_url.clone();
        let t = keystone::list_trusts(&self.http, &url, c)
            .await
            .map_err(|e| {
                DriverError::new(
                    format!("{node}: listing trusts failed: {e}"),
                    "check the credentials (admin) and that the node answers",
                )
            })?;
        let summary = format!(
            "{} trust(s); tokens issued before a node flips die on that node: consumers that cached a token must re-authenticate",
            t.count
        );
        Ok(Done::ok(
            summary,
            Observation {
                trusts: Some(t),
                ..Default::default()
            },
        ))
    }

    // ----- JWS keys -----

    fn repos(&self, facts: &NodeFacts) -> (String, String) {
        (
            facts.jws.private_repo.clone(),
            facts.jws.public_repo.clone(),
        )
    }

    async fn create_keypair(&self, node: &str, keygen: crate::inventory::KeyGen) -> DResult<Done> {
        let facts = self.node_facts(node).await?;
        let (private, _) = self.repos(&facts);
        let staging = keystone::staging_dir(&private);
        let (fp, with) = match keygen {
            crate::inventory::KeyGen::KeystoneManage => {
                let (km, public) = self.keystone_manage(node, &staging).await?;
                let fp = keys::public_fingerprint(&public).map_err(|e| {
                    DriverError::new(format!("{node}: {e}"), format!("check {km}'s output"))
                })?;
                (fp, format!(" by {km}"))
            }
            crate::inventory::KeyGen::Native => {
                let (private_pem, public_pem) =
                    keys::generate_es256().map_err(|e| {
                        DriverError::new(
                            format!("{node}: generating an ES256 keypair failed: {e}"),
                            "resume to try again; if it persists, set keygen: keystone-manage for this node",
                        )
                    })?;
                self.stage(node, &staging, &private_pem.0, &public_pem)
                    .await?;
                let fp = keys::public_fingerprint(&public_pem).map_err(|e| {
                    DriverError::new(
                        format!("{node}: the generated public key is unreadable: {e}"),
                        "resume to generate it again",
                    )
                })?;
                (fp, String::new())
            }
        };
        let mut obs = Observation::default();
        obs.keys.insert(node.to_string(), fp.clone());
        Ok(Done::ok(
            format!(
                "{node}: keypair staged in {staging}{with} ({})",
                crate::engine::gates::short_fp(&fp)
            ),
            obs,
        ))
    }

    /// Run `keystone-manage create_jws_keypair` on `node` in `staging` (one exec that first finds
    /// it: the inventory's `keystone_manage:`, else the PATH, the login shell's PATH and the
    /// usual places, see `keys::KEYSTONE_MANAGE_PLACES`). Returns which keystone-manage ran and
    /// the public key; private.pem stays in `staging`. A failure leaves nothing in `staging`.
    async fn keystone_manage(&self, node: &str, staging: &str) -> DResult<(String, String)> {
        let n = self.node(node)?;
        let explicit = n.keystone_manage.as_ref().map(|p| p.display().to_string());
        let script = keys::keystone_manage_script(
            staging,
            &n.keystone_conf.display().to_string(),
            &n.keystone_user,
            &n.keystone_group,
            explicit.as_deref(),
            keys::KEYSTONE_MANAGE_PLACES,
        );
        let out = self.exec(node, &script, Duration::from_secs(120)).await?;
        let (km, public) = keys::keystone_manage_output(&out.stdout_str());
        if out.status == keys::KEYSTONE_MANAGE_NOT_FOUND && km.is_none() {
            let fix = if explicit.is_some() {
                format!("correct keystone_manage: for {node} in the inventory")
            } else {
                format!(
                    "name it in the inventory (keystone_manage: /path/to/keystone-manage for {node})"
                )
            };
            return Err(DriverError::new(
                format!("{node}: {}", out.last_line()),
                format!(
                    "{fix}, or set keygen: native for {node} to generate the keypair inside cutover; then resume"
                ),
            ));
        }
        let km = km.unwrap_or_else(|| "keystone-manage".into());
        if out.status != 0 {
            let why = service_log::pick(&out.stderr_str(), service_log::MAX_LINES)
                .reason
                .unwrap_or_else(|| out.last_line());
            return Err(DriverError::new(
                format!(
                    "{node}: `{km} create_jws_keypair` {}: {why}",
                    out.exit_text()
                ),
                format!(
                    "run `{km} create_jws_keypair --keystone-user {} --keystone-group {}` by hand on {node} to see why (or set keygen: native for {node}); then resume",
                    n.keystone_user, n.keystone_group
                ),
            ));
        }
        Ok((km, public))
    }

    async fn stage(
        &self,
        node: &str,
        staging: &str,
        private_pem: &[u8],
        public_pem: &str,
    ) -> DResult<()> {
        let n = self.node(node)?;
        let t = self.node_transport(node).await?;
        let out = self
            .exec(
                node,
                &format!("umask 077 && mkdir -p -- {}", shell_quote(staging)),
                Duration::from_secs(20),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{node}: cannot create {staging}: {}", out.last_line()),
                "check permissions (sudo: true?)",
            ));
        }
        let written = async {
            t.write_file(
                &Path::new(staging).join("private.pem"),
                private_pem,
                0o600,
                None,
                n.sudo,
            )
            .await?;
            t.write_file(
                &Path::new(staging).join("public.pem"),
                public_pem.as_bytes(),
                0o644,
                None,
                n.sudo,
            )
            .await
        }
        .await;
        if let Err(e) = written {
            // No half keypair left behind: a later keys step starts from nothing.
            self.unstage(node, staging).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Remove a keypair from `staging` and the directory if that leaves it empty (best effort:
    /// the failure being reported matters more).
    async fn unstage(&self, node: &str, staging: &str) {
        let s = shell_quote(staging);
        let _ = self
            .exec(
                node,
                &format!(
                    "rm -f -- {s}/private.pem {s}/public.pem {s}/keystone-manage.err; rmdir -- {s} 2>/dev/null || true"
                ),
                Duration::from_secs(20),
            )
            .await;
    }

    async fn create_shared_keypair(
        &self,
        origin: &str,
        nodes: &[String],
        keygen: crate::inventory::KeyGen,
    ) -> DResult<Done> {
        let (private_pem, public_pem, with) = match keygen {
            crate::inventory::KeyGen::Native => {
                let (p, q) = keys::generate_es256().map_err(|e| {
                    DriverError::new(
                        format!("generating the shared ES256 keypair failed: {e}"),
                        "resume to try again; if it persists, use keygen: keystone-manage",
                    )
                })?;
                (p, q, String::new())
            }
            crate::inventory::KeyGen::KeystoneManage => {
                let facts = self.node_facts(origin).await?;
                let staging = keystone::staging_dir(&facts.jws.private_repo);
                let (km, public) = self.keystone_manage(origin, &staging).await?;
                let n = self.node(origin)?;
                let t = self.node_transport(origin).await?;
                let private = t
                    .read_file(&Path::new(&staging).join("private.pem"), n.sudo)
                    .await;
                if !nodes.iter().any(|m| m == origin) || private.is_err() {
                    // Staged again below only on the nodes that take it.
                    self.unstage(origin, &staging).await;
                }
                (
                    keys::zeroize_string::Secret(private?),
                    public,
                    format!(" by {km} on {origin}"),
                )
            }
        };
        let fp = keys::public_fingerprint(&public_pem).map_err(|e| {
            DriverError::new(
                format!("{origin}: the shared public key is unreadable: {e}"),
                "resume to generate the shared keypair again",
            )
        })?;
        let mut obs = Observation::default();
        for node in nodes {
            let facts = self.node_facts(node).await?;
            let staging = keystone::staging_dir(&facts.jws.private_repo);
            self.stage(node, &staging, &private_pem.0, &public_pem)
                .await?;
            obs.keys.insert(node.clone(), fp.clone());
        }
        Ok(Done::ok(
            format!(
                "one keypair ({}{with}) staged on {}",
                crate::engine::gates::short_fp(&fp),
                nodes.join(", ")
            ),
            obs,
        ))
    }

    async fn install_keys(&self, node: &str, public: bool) -> DResult<Done> {
        let n = self.node(node)?;
        let facts = self.node_facts(node).await?;
        let (private, public_repo) = self.repos(&facts);
        let staging = keystone::staging_dir(&private);
        let public_file = name_path(Path::new(&public_repo), node, ".pem")?;
        let script = keystone::install_script(
            &staging,
            &private,
            &public_repo,
            &public_file.to_string_lossy(),
            &n.keystone_user,
            &n.keystone_group,
            public,
        );
        let out = self.exec(node, &script, Duration::from_secs(60)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: installing the JWS keys failed: {}",
                    out.last_line()
                ),
                "check that the staging directory still holds the keypair (re-run the keys step) and the repositories are writable",
            ));
        }
        let after = self.node_facts(node).await?;
        let fp = after.jws.private_fingerprint.clone().ok_or_else(|| {
            DriverError::new(
                format!("{node}: private.pem installed but unreadable as a key"),
                "inspect the private repository",
            )
        })?;
        let mut obs = Observation::default();
        obs.keys.insert(node.to_string(), fp.clone());
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: private.pem (0600, {}) and {node}.pem installed ({})",
                n.keystone_user,
                crate::engine::gates::short_fp(&fp)
            ),
            obs,
        ))
    }

    async fn publish_staged(&self, node: &str, from: &[String]) -> DResult<Done> {
        let (names, after) = self.copy_public_keys(node, from, true).await?;
        let count = after.jws.public.len();
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: published {} ({count} keys accepted now)",
                names.join(", ")
            ),
            obs,
        ))
    }

    /// Copy the public keys of `from` into `node`'s public repository: each node's installed
    /// `<m>.pem`, or (`staged`) the next key waiting in its staging directory, written as
    /// `<m>.<fingerprint tag>.pem` beside the current ones. Returns the names written and the
    /// node's facts afterwards.
    async fn copy_public_keys(
        &self,
        node: &str,
        from: &[String],
        staged: bool,
    ) -> DResult<(Vec<String>, NodeFacts)> {
        let n = self.node(node)?;
        let facts = self.node_facts(node).await?;
        let t = self.node_transport(node).await?;
        let mut names = Vec::new();
        for m in from {
            let mf = self.node_facts(m).await?;
            let src = if staged {
                Path::new(&keystone::staging_dir(&mf.jws.private_repo)).join("public.pem")
            } else {
                name_path(Path::new(&mf.jws.public_repo), m, ".pem")?
            };
            let mt = self.node_transport(m).await?;
            let pem = mt.read_file(&src, self.node(m)?.sudo).await.map_err(|e| {
                DriverError::new(
                    format!("{m}: cannot read its public key {}: {e}", src.display()),
                    if staged {
                        "create the new keypairs first (keystone.create_jws_keypair), then resume"
                            .to_string()
                    } else {
                        format!("install {m}'s keys first (keys step), then resume")
                    },
                )
            })?;
            let fp = keys::public_fingerprint(&String::from_utf8_lossy(&pem)).map_err(|e| {
                DriverError::new(
                    format!("{m}: {} is not a public key: {e}", src.display()),
                    "re-run the keys step",
                )
            })?;
            let suffix = if staged {
                format!(".{}.pem", keys::fingerprint_tag(&fp))
            } else {
                ".pem".to_string()
            };
            let dst = name_path(Path::new(&facts.jws.public_repo), m, &suffix)?;
            let name = format!("{m}{suffix}");
            t.write_file(
                &dst,
                &pem,
                0o644,
                Some((&n.keystone_user, &n.keystone_group)),
                n.sudo,
            )
            .await?;
            names.push(name);
        }
        Ok((names, self.node_facts(node).await?))
    }

    async fn remove_retired(&self, node: &str, nodes: &[String]) -> DResult<Done> {
        let mut live = std::collections::BTreeSet::new();
        for m in nodes {
            let f = self.node_facts(m).await?;
            match f.jws.private_fingerprint {
                Some(fp) => {
                    live.insert(fp);
                }
                None => {
                    return Err(DriverError::new(
                        format!(
                            "{m} has no readable private.pem: cannot tell which public keys are retired"
                        ),
                        format!("fix {m}'s JWS keys first; nothing was removed"),
                    ));
                }
            }
        }
        let facts = self.node_facts(node).await?;
        let retired: Vec<String> = facts
            .jws
            .public
            .iter()
            .filter(|p| !live.contains(&p.fingerprint))
            .map(|p| p.file.clone())
            .collect();
        if retired.is_empty() {
            return Ok(Done::ok(
                format!("{node}: no retired public keys"),
                Observation::default(),
            ));
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let public = facts.jws.public_repo.trim_end_matches('/').to_string();
        let attic = format!(
            "{}/.cutover-retired-{stamp}",
            Path::new(&public)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let files = retired
            .iter()
            .map(|f| shell_quote(&format!("{public}/{f}")))
            .collect::<Vec<_>>()
            .join(" ");
        let out = self
            .exec(
                node,
                &format!(
                    "set -e; mkdir -p -- {a}; chmod 700 -- {a}; mv -- {files} {a}/",
                    a = shell_quote(&attic)
                ),
                Duration::from_secs(30),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{node}: moving retired keys failed: {}", out.last_line()),
                "check permissions on the public repository",
            ));
        }
        let after = self.node_facts(node).await?;
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: moved {} to {attic} (tokens signed by them no longer validate)",
                retired.join(", ")
            ),
            obs,
        ))
    }

    async fn rotate_fernet(&self, node: &str) -> DResult<Done> {
        let n = self.node(node)?;
        let facts = self.node_facts(node).await?;
        let conf = self
            .exec(
                node,
                &format!(
                    "cat -- {}",
                    shell_quote(&n.keystone_conf.display().to_string())
                ),
                Duration::from_secs(20),
            )
            .await?;
        let max = keystone_conf::get(&conf.stdout_str(), "fernet_tokens", "max_active_keys")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(3);
        let script = match n.keygen {
            crate::inventory::KeyGen::KeystoneManage => format!(
                "keystone-manage --config-file {} fernet_rotate --keystone-user {} --keystone-group {}",
                shell_quote(&n.keystone_conf.display().to_string()),
                shell_quote(&n.keystone_user),
                shell_quote(&n.keystone_group)
            ),
            crate::inventory::KeyGen::Native => keystone::fernet_rotate_script(
                &facts.fernet.repo,
                max,
                &n.keystone_user,
                &n.keystone_group,
            ),
        };
        let out = self.exec(node, &script, Duration::from_secs(60)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!("{node}: fernet rotation failed: {}", out.last_line()),
                format!(
                    "inspect {} on {node}; nothing else changed",
                    facts.fernet.repo
                ),
            ));
        }
        let after = self.node_facts(node).await?;
        let keys = after.fernet.keys;
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!("{node}: Fernet keys rotated ({keys} keys, max_active_keys {max})"),
            obs,
        ))
    }

    async fn sync_fernet(&self, node: &str, from: &str) -> DResult<Done> {
        let src = self.node_facts(from).await?;
        let out = self
            .exec(
                from,
                &keystone::fernet_dump_script(&src.fernet.repo),
                Duration::from_secs(30),
            )
            .await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{from}: cannot read its Fernet repository: {}",
                    out.last_line()
                ),
                "check permissions (sudo: true?)",
            ));
        }
        // Key bytes: in memory only, wiped when dropped.
        let keys_in = keys::zeroize_string::Secret(out.stdout);
        let parsed = keystone::parse_fernet_dump(&keys_in.0).map_err(|e| {
            DriverError::new(
                format!("{from}: its Fernet repository could not be read: {e}"),
                format!(
                    "check the files in {} on {from}, then resume",
                    src.fernet.repo
                ),
            )
        })?;
        if parsed.is_empty() {
            return Err(DriverError::new(
                format!("{from}: its Fernet repository is empty"),
                "refusing to empty the other nodes' repositories",
            ));
        }
        let n = self.node(node)?;
        let dst = self.node_facts(node).await?;
        let t = self.node_transport(node).await?;
        let repo = dst.fernet.repo.trim_end_matches('/').to_string();
        for (name, bytes) in &parsed {
            t.write_file(
                &Path::new(&repo).join(name),
                &bytes.0,
                0o600,
                Some((&n.keystone_user, &n.keystone_group)),
                n.sudo,
            )
            .await?;
        }
        let keep: Vec<String> = parsed.iter().map(|(n, _)| shell_quote(n)).collect();
        let script = format!(
            "cd -- {} && for k in *; do case \" $(printf '%s ' {}) \" in *\" $k \"*) ;; *) rm -f -- \"$k\";; esac; done",
            shell_quote(&repo),
            keep.join(" ")
        );
        let out = self.exec(node, &script, Duration::from_secs(30)).await?;
        if out.status != 0 {
            return Err(DriverError::new(
                format!(
                    "{node}: pruning old Fernet keys failed: {}",
                    out.last_line()
                ),
                "inspect the repository",
            ));
        }
        let after = self.node_facts(node).await?;
        let same = after.fernet.fingerprint == src.fernet.fingerprint;
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        if !same {
            return Ok(Done::fail(
                format!("{node}: after sync its Fernet repository still differs from {from}'s"),
                "compare the repositories by hand (sha256sum), then resume",
            )
            .with(obs));
        }
        Ok(Done::ok(
            format!(
                "{node}: Fernet repository identical to {from}'s ({} keys)",
                parsed.len()
            ),
            obs,
        ))
    }

    async fn distribute(&self, node: &str, from: &[String]) -> DResult<Done> {
        let (_, after) = self.copy_public_keys(node, from, false).await?;
        let count = after.jws.public.len();
        let mut obs = Observation::default();
        obs.nodes.insert(node.to_string(), after);
        Ok(Done::ok(
            format!(
                "{node}: public keys of {} installed ({count} keys in its public repository)",
                from.join(", ")
            ),
            obs,
        ))
    }
}

/// The probe every `probe` subcommand and resume uses: every node, every LB, every direct token.
/// A node that cannot be reached (an unknown or changed host key included) is in the
/// observation as unreachable, with where and why; the others are read as usual.
pub async fn full_probe(fleet: &Fleet, tokens: bool) -> DResult<Observation> {
    let nodes = fleet.inv.node_names();
    let toks = if tokens { nodes.clone() } else { vec![] };
    let lb = !fleet.inv.load_balancers.is_empty();
    Ok(fleet.observe(&nodes, lb, &toks).await.0.observed)
}
