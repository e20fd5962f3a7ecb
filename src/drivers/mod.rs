//! Drivers: the real code that acts on Keystone nodes and HAProxy instances. The same drivers
//! run against the demo world, the lab and production; only the transport's far end differs.

pub mod keys;
pub mod keystone;
pub mod lb;
mod misc;
pub mod probe;
pub mod reach;
pub mod service;

use crate::engine::action::ActionSpec;
use crate::engine::events::{Failure, Outcome};
use crate::engine::facts::*;
use crate::inventory::credentials::{self, AuthCredentials};
use crate::inventory::{Inventory, Node, Reach};
use crate::transport::{ExecOpts, Transport, TransportError, local::LocalTransport};
use std::collections::HashMap;
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

/// A failure inside a driver: what happened (its `Display`), and what the operator should do
/// next. A failure to reach or talk to a host keeps the transport's error, whose kind decides
/// how the run reacts (an unknown host key is a hard stop, not a failed step).
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
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
    pub guard: lb::guard::GuardShared,
    /// What was last read on each node (keystone.conf, where its key repositories are).
    known: keystone::known::Known,
    /// Public keys read from their nodes for copying to others, once per phase.
    source_keys: keys::SourceKeys,
    /// Keystone refused an unscoped token to these credentials: probes' token reads ask for
    /// project tokens from then on (see `token_read`).
    unscoped_refused: std::sync::atomic::AtomicBool,
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
            known: Default::default(),
            source_keys: Default::default(),
            unscoped_refused: Default::default(),
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
        self.exec_as(node, cmd, timeout, false).await
    }

    /// [`Fleet::exec`] for a command that only reads: over SSH it runs in the connection's
    /// kept shell (no new session, no login shell rc files per read).
    async fn read_exec(
        &self,
        node: &str,
        cmd: &str,
        timeout: Duration,
    ) -> DResult<crate::transport::ExecOutput> {
        self.exec_as(node, cmd, timeout, true).await
    }

    async fn exec_as(
        &self,
        node: &str,
        cmd: &str,
        timeout: Duration,
        read: bool,
    ) -> DResult<crate::transport::ExecOutput> {
        let n = self.node(node)?;
        let t = self.node_transport(node).await?;
        let _permit = self.limit.acquire().await.expect("semaphore open");
        let opts = ExecOpts {
            stdin: None,
            timeout,
            sudo: n.sudo,
        };
        Ok(if read {
            t.read(cmd, opts).await?
        } else {
            t.exec(cmd, opts).await?
        })
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

    /// Dispatch by family; each family's `run_*` (in its driver file: lb, keystone, keys,
    /// service, misc) dispatches to its actions.
    async fn run(&self, spec: &ActionSpec) -> DResult<Done> {
        match spec {
            ActionSpec::Lb(s) => self.run_lb(s).await,
            ActionSpec::Keystone(s) => self.run_keystone(s).await,
            ActionSpec::Keys(s) => self.run_keys(s).await,
            ActionSpec::Service(s) => self.run_service(s).await,
            ActionSpec::Misc(s) => self.run_misc(s).await,
        }
    }
}
