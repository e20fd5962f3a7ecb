//! The Keystone stand-in: one HTTP server per node, configured by the node's keystone.conf.
//!
//! It behaves as Keystone does where cutover can tell: it reads its token provider at (re)start
//! and refuses to start when that provider's keys are missing, issues real Fernet or ES256 JWS
//! tokens, validates only tokens of its current provider (a token of the other provider is
//! answered exactly as Keystone answers it: 401 as X-Auth-Token, 404 as X-Subject-Token), and
//! writes a keystone.log. Requests are logged by method, path and status only: never a token,
//! a password or key material.
//!
//! A supervisor per node polls `run/` every 100 ms for restart and start requests and for the
//! injected faults (see [`super::fault`]): a start that must fail (`break-restart`, logged as a
//! CRITICAL line naming the fault, as Keystone logs a config it refuses), a start that takes
//! longer (`slow-restart`), a process that dies (`stopped`). It reports every start's outcome in
//! `run/start.result`, which the restart script waits for so that a restart that does not come
//! up fails the way `systemctl restart` does, and leaves two files for an observer that must not
//! trust cutover's own reading: `run/provider` (the provider it is running, present only while
//! it listens) and `run/restarts.log` (the moment each restart began).

use super::WorldNode;
use super::haproxy::HEALTH_CHECK_AGENT;
use super::ini::Ini;
use super::tokens::{self, TokenData, keystone_time};
use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How often the stand-in looks for `run/restart.req`.
const RESTART_POLL: Duration = Duration::from_millis(100);
/// How long a restart keeps the node down after acknowledging it.
const RESTART_PAUSE: Duration = Duration::from_millis(700);

/// Keystone's default repositories, used when keystone.conf does not set them.
const DEFAULT_FERNET_REPO: &str = "/etc/keystone/fernet-keys/";
const DEFAULT_JWS_PRIVATE: &str = "/etc/keystone/jws-keys/private";
const DEFAULT_JWS_PUBLIC: &str = "/etc/keystone/jws-keys/public";

/// What every node of a world shares: the one user it knows, read from clouds.yaml at start.
pub struct Shared {
    username: String,
    /// Held in memory only; never logged.
    password: String,
    user_domain: String,
    project_name: String,
    project_domain: String,
    admin_user_id: String,
    admin_project_id: String,
    trusts_path: PathBuf,
}

impl Shared {
    pub fn load(info: &super::WorldInfo) -> anyhow::Result<Shared> {
        let creds = crate::inventory::credentials::resolve(
            Some(&info.cloud),
            Some(&info.clouds_path),
            &|_| None,
        )
        .map_err(anyhow::Error::msg)
        .context("the demo world reads its admin password from clouds.yaml")?;
        Ok(Shared {
            username: creds.username,
            password: creds.password,
            user_domain: creds.user_domain,
            project_name: creds.project_name,
            project_domain: creds.project_domain,
            admin_user_id: info.admin_user_id.clone(),
            admin_project_id: info.admin_project_id.clone(),
            trusts_path: info.trusts_path.clone(),
        })
    }

    fn domain_matches(expected_name: &str, domain: &Value) -> bool {
        domain.get("id").and_then(Value::as_str) == Some("default")
            || domain
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(expected_name))
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// The token provider a node started with.
enum Provider {
    Fernet {
        repo: PathBuf,
    },
    Jws {
        /// `<private repo>/private.pem`, read at start and held in memory.
        signing: Box<SigningKey>,
        public_repo: PathBuf,
    },
}

impl Provider {
    fn name(&self) -> &'static str {
        match self {
            Provider::Fernet { .. } => "fernet",
            Provider::Jws { .. } => "jws",
        }
    }
}

/// What a node read from keystone.conf and its key repositories at (re)start.
struct NodeConfig {
    provider: Provider,
    expiration: i64,
}

/// Read keystone.conf and the provider's keys as Keystone does at start. `Err` carries the
/// message Keystone would die with.
fn load_config(conf_path: &Path) -> Result<NodeConfig, String> {
    let text = std::fs::read_to_string(conf_path).map_err(|e| {
        format!(
            "ConfigFilesNotFoundError: Failed to find some config files: {} ({e})",
            conf_path.display()
        )
    })?;
    let ini = Ini::parse(&text)
        .map_err(|e| format!("ConfigFileParseError: {}: {e}", conf_path.display()))?;
    check_booleans(&ini, conf_path)?;
    let expiration = match ini.get("token", "expiration") {
        None => 3600,
        Some(v) => v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            format!("ConfigFileValueError: Value for option expiration from [token] is not valid: `{v}` is not an integer")
        })?,
    };
    let provider = ini.get("token", "provider").unwrap_or("fernet");
    let provider = match provider {
        "fernet" => {
            let repo = PathBuf::from(
                ini.get("fernet_tokens", "key_repository")
                    .unwrap_or(DEFAULT_FERNET_REPO),
            );
            if !repo.is_dir() {
                return Err(format!("SystemExit: {} does not exist", repo.display()));
            }
            let keys = tokens::read_fernet_keys(&repo).map_err(|e| format!("SystemExit: {e}"))?;
            if keys.is_empty() {
                return Err(format!(
                    "SystemExit: key repository {} is empty; run `keystone-manage fernet_setup`",
                    repo.display()
                ));
            }
            Provider::Fernet { repo }
        }
        "jws" => {
            let algorithm = ini.get("jwt_tokens", "jws_algorithm").unwrap_or("ES256");
            if algorithm != "ES256" {
                return Err(format!(
                    "ValueError: [jwt_tokens] jws_algorithm = {algorithm} is not supported here (the demo world's Keystone supports ES256 only)"
                ));
            }
            let private_repo = PathBuf::from(
                ini.get("jwt_tokens", "jws_private_key_repository")
                    .unwrap_or(DEFAULT_JWS_PRIVATE),
            );
            let public_repo = PathBuf::from(
                ini.get("jwt_tokens", "jws_public_key_repository")
                    .unwrap_or(DEFAULT_JWS_PUBLIC),
            );
            let private_pem = private_repo.join("private.pem");
            if !private_pem.exists() {
                return Err(format!(
                    "SystemExit: {} does not exist. You can generate a key pair using `keystone-manage create_jws_keypair`.",
                    private_pem.display()
                ));
            }
            let public_empty = std::fs::read_dir(&public_repo)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true);
            if public_empty {
                return Err(format!(
                    "SystemExit: the public key repository {} does not exist or is empty. Put the public key of every node's private.pem there.",
                    public_repo.display()
                ));
            }
            let signing =
                tokens::load_private_key(&private_pem).map_err(|e| format!("ValueError: {e}"))?;
            Provider::Jws {
                signing: Box::new(signing),
                public_repo,
            }
        }
        other => {
            return Err(format!(
                "RuntimeError: Unable to find '{other}' driver in 'keystone.token.provider'."
            ));
        }
    };
    Ok(NodeConfig {
        provider,
        expiration,
    })
}

/// Boolean options Keystone reads as it starts: (section, option, set on the command line too).
/// oslo.config checks command-line options while it parses the files (argparse's error, no
/// traceback); the others when they are first read (a ConfigFileValueError and a traceback).
const STARTUP_BOOLEANS: &[(&str, &str, bool)] = &[
    ("DEFAULT", "debug", true),
    ("DEFAULT", "use_syslog", true),
    ("DEFAULT", "use_journal", true),
    ("DEFAULT", "use_json", true),
    ("DEFAULT", "watch_log_file", true),
    ("DEFAULT", "use_stderr", false),
    ("cache", "enabled", false),
];

/// What argparse says about a command-line option's bad value (Keystone 30, measured).
const ARGPARSE_REFUSAL: &str = "argument --";
/// The exception oslo.config raises for a bad value in a file.
const VALUE_REFUSAL: &str = "oslo_config.cfg.ConfigFileValueError: ";

/// Refuse a boolean option whose value oslo.config does not take, with Keystone 30's own words.
fn check_booleans(ini: &Ini, conf_path: &Path) -> Result<(), String> {
    let is_bool = |v: &str| {
        ["true", "false", "1", "0", "on", "off", "yes", "no"]
            .iter()
            .any(|b| v.eq_ignore_ascii_case(b))
    };
    // Command-line options first: they are checked when the files are parsed.
    for cli in [true, false] {
        for (section, option, _) in STARTUP_BOOLEANS.iter().filter(|o| o.2 == cli) {
            let Some(v) = ini.get(section, option) else {
                continue;
            };
            if is_bool(v) {
                continue;
            }
            return Err(if cli {
                format!(
                    "{ARGPARSE_REFUSAL}{}: Invalid Boolean value: {v}",
                    option.replace('_', "-")
                )
            } else {
                format!(
                    "{VALUE_REFUSAL}Value for option {option} from LocationInfo(location=<Locations.user: (4, True)>, detail='{}') is not valid: Unexpected boolean value '{v}'",
                    conf_path.display()
                )
            });
        }
    }
    Ok(())
}

/// What Keystone 30 prints on stderr as it starts, before it reads its options: a Python
/// deprecation warning (measured on the lab).
const STARTUP_WARNINGS: &str = concat!(
    "/usr/lib/python3/dist-packages/oslo_service/backend/_eventlet/loopingcall.py:19: EventletDeprecationWarning: \n",
    "Eventlet is deprecated. It is currently being maintained in bugfix mode, and\n",
    "we strongly recommend against using it for new projects.\n",
    "\n",
    "If you are already using Eventlet, we recommend migrating to a different\n",
    "framework.  For more detail see\n",
    "https://eventlet.readthedocs.io/en/latest/asyncio/migration.html\n",
    "\n",
    "  from eventlet import event\n",
);

/// Log a refused start as Keystone does, and leave in `run/start.stderr` what the process
/// printed on stderr, for the restart script: a bad option value (after the startup warnings:
/// argparse's one line, or oslo.log's WARNING, CRITICAL and traceback lines, the way Keystone 30
/// writes them), anything else as one CRITICAL line.
fn log_refusal(node: &WorldNode, msg: &str) {
    let files = RunFiles::of(node);
    let log = |text: &str| {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_file)
        {
            let _ = f.write_all(text.as_bytes());
        }
    };
    if msg.starts_with(ARGPARSE_REFUSAL) {
        log(&format!("{STARTUP_WARNINGS}{msg}\n"));
        let _ = write_atomic(&files.start_stderr, STARTUP_WARNINGS);
    } else if msg.starts_with(VALUE_REFUSAL) {
        let prefix = format!(
            "{} {}",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f"),
            std::process::id()
        );
        let warning = format!(
            "{prefix} WARNING oslo_policy.policy [-] JSON formatted policy_file support is deprecated since Victoria release. You need to use YAML format which will be default in future. You can use ``oslopolicy-convert-json-to-yaml`` tool to convert existing JSON-formatted policy file to YAML-formatted in backward compatible way: https://docs.openstack.org/oslo.policy/latest/cli/oslopolicy-convert-json-to-yaml.html.\n"
        );
        let value = msg.rsplit(": ").next().unwrap_or(msg);
        let traceback = [
            "Traceback (most recent call last):",
            "  File \"/usr/lib/python3/dist-packages/oslo_config/cfg.py\", line 3692, in _do_get",
            "    return (convert(val), alt_loc)",
            "  File \"/usr/lib/python3/dist-packages/oslo_config/types.py\", line 275, in __call__",
            "    raise ValueError(f'Unexpected boolean value {value!r}')",
            &format!("ValueError: {value}"),
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"/usr/bin/keystone-wsgi-public\", line 52, in <module>",
            "    application = initialize_public_application()",
            "  File \"/usr/lib/python3/dist-packages/keystone/server/backends.py\", line 41, in load_backends",
            "    cache.configure_cache()",
            "  File \"/usr/lib/python3/dist-packages/oslo_config/cfg.py\", line 3710, in _do_get",
            "    raise ConfigFileValueError(message)",
            msg,
            "",
        ];
        let mut text = format!(
            "{STARTUP_WARNINGS}{warning}{prefix} CRITICAL keystone [-] Unhandled error: {msg}\n"
        );
        for l in traceback {
            text.push_str(&format!("{prefix} ERROR keystone {l}\n"));
        }
        log(&text);
        let _ = write_atomic(&files.start_stderr, &format!("{STARTUP_WARNINGS}{warning}"));
    } else {
        log_line(
            &node.log_file,
            "CRITICAL",
            "keystone",
            &format!("Unhandled error: {msg}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Logging

/// Append one oslo.log-shaped line to the node's keystone.log.
fn log_line(path: &Path, level: &str, logger: &str, msg: &str) {
    let line = format!(
        "{} {} {level} {logger} [-] {msg}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f"),
        std::process::id()
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line, so concurrent requests do not interleave.
        let _ = f.write_all(line.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Supervision: start, restart on request, faults, stop

/// The files under a node's `run/` directory through which the stand-in is driven, faulted
/// and observed from outside the process that serves it (see the module doc of `world`).
pub(crate) struct RunFiles {
    /// Created by `bin/keystone-restart`; deleted by the stand-in as the acknowledgement.
    pub restart_req: PathBuf,
    /// Created by the `start` fault: start a stopped or failed Keystone.
    pub start_req: PathBuf,
    /// The outcome of the last start: `ok PROVIDER` or `failed: REASON` (written atomically).
    pub start_result: PathBuf,
    /// What a start that failed printed on stderr before it died (present only then): the
    /// restart script prints it instead of the reason, as a launcher that shows the service's
    /// output does.
    pub start_stderr: PathBuf,
    /// The provider the node is running, present only while it listens (written atomically).
    pub provider: PathBuf,
    /// One `<unix epoch ms> restart` line per acknowledged restart request.
    pub restarts_log: PathBuf,
    /// While present, every start fails (the `break-restart` fault).
    pub break_restart: PathBuf,
    /// Seconds a restart or start takes before the node listens (the `slow-restart` fault).
    pub slow_restart: PathBuf,
    /// While present the Keystone process is dead (the `stop` fault); a start or restart
    /// removes it.
    pub stopped: PathBuf,
}

impl RunFiles {
    pub fn of(node: &WorldNode) -> RunFiles {
        let run = &node.run_dir;
        RunFiles {
            restart_req: node.restart_request(),
            start_req: run.join("start.req"),
            start_result: run.join("start.result"),
            start_stderr: run.join("start.stderr"),
            provider: run.join("provider"),
            restarts_log: run.join("restarts.log"),
            break_restart: run.join("break-restart"),
            slow_restart: run.join("slow-restart"),
            stopped: run.join("stopped"),
        }
    }

    /// The delay the `slow-restart` fault asks for, if any.
    fn slow(&self) -> Option<Duration> {
        std::fs::read_to_string(&self.slow_restart)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
    }
}

/// Write `text` to `path` through a temporary file and a rename, so a reader never sees half.
pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// A listener that tells its owner when it is dropped, i.e. when the port stops accepting.
struct ClosingListener {
    inner: TcpListener,
    _closed: oneshot::Sender<()>,
}

impl axum::serve::Listener for ClosingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        axum::serve::Listener::accept(&mut self.inner).await
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A node that is serving.
struct Running {
    provider: &'static str,
    stop: Option<oneshot::Sender<()>>,
    closed: Option<oneshot::Receiver<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stop accepting connections (in-flight requests may finish) and wait until the listener
    /// is closed.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait_closed().await;
    }

    /// Die at once, as a killed process does, and wait until the port refuses connections.
    async fn kill(mut self) {
        self.task.abort();
        self.wait_closed().await;
    }

    async fn wait_closed(&mut self) {
        if let Some(closed) = self.closed.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The serve future only waits for in-flight connections once the listener is gone.
        self.task.abort();
    }
}

/// Start the stand-in of `node` and the task that watches for restart requests and faults.
/// Fails only when the node's port is taken.
pub async fn start_node(
    node: WorldNode,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let files = RunFiles::of(&node);
    // Requests left over from a world that died mid-restart: this start is that restart.
    let _ = std::fs::remove_file(&files.restart_req);
    let _ = std::fs::remove_file(&files.start_req);
    let running = if files.stopped.exists() {
        // A stopped Keystone stays dead across world restarts until started; the port must
        // still be ours to take then.
        let _ = std::fs::remove_file(&files.provider);
        drop(bind(node.port, false).await?);
        None
    } else {
        start(&node, &shared, &files, true).await?
    };
    Ok(tokio::spawn(supervise(node, shared, files, stop, running)))
}

/// Start Keystone: refuse as the injected fault or the configuration says, else listen.
/// Records the outcome in `run/start.result` and `run/provider`. `Err` only when the port is
/// taken at the world's start.
async fn start(
    node: &WorldNode,
    shared: &Arc<Shared>,
    files: &RunFiles,
    initial: bool,
) -> anyhow::Result<Option<Running>> {
    let _ = std::fs::remove_file(&files.start_stderr);
    let outcome = if files.break_restart.exists() {
        let msg = format!(
            "InjectedFault: break-restart is in effect on {} ({} exists): Keystone refuses to start. Clear it with `cutover world fault DIR fix-restart {}`",
            node.name,
            files.break_restart.display(),
            node.name
        );
        log_line(
            &node.log_file,
            "CRITICAL",
            "keystone",
            &format!("Unhandled error: {msg}"),
        );
        Err(msg)
    } else {
        match serve(node, shared, initial).await {
            Ok(outcome) => outcome,
            Err(e) if initial => return Err(e),
            Err(e) => {
                let msg = format!("OSError: {e:#}");
                log_line(
                    &node.log_file,
                    "CRITICAL",
                    "keystone",
                    &format!("Unhandled error: {msg}"),
                );
                Err(msg)
            }
        }
    };
    match outcome {
        Ok(running) => {
            let _ = write_atomic(&files.provider, &format!("{}\n", running.provider));
            let _ = write_atomic(&files.start_result, &format!("ok {}\n", running.provider));
            Ok(Some(running))
        }
        Err(msg) => {
            let _ = std::fs::remove_file(&files.provider);
            let _ = write_atomic(&files.start_result, &format!("failed: {msg}\n"));
            if initial {
                // Still make sure the port is ours to take once the cause is fixed.
                drop(bind(node.port, false).await?);
            }
            Ok(None)
        }
    }
}

/// Append `<unix epoch ms> restart` to `run/restarts.log` (one write, so lines never mix).
fn note_restart(files: &RunFiles) {
    let line = format!("{} restart\n", chrono::Utc::now().timestamp_millis());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.restarts_log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

async fn supervise(
    node: WorldNode,
    shared: Arc<Shared>,
    files: RunFiles,
    mut stop: watch::Receiver<bool>,
    mut running: Option<Running>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(RESTART_POLL) => {}
        }
        let restart = files.restart_req.exists();
        let start_asked = !restart && files.start_req.exists();
        if !restart && !start_asked {
            if files.stopped.exists()
                && let Some(r) = running.take()
            {
                // The process dies: no log line, as a killed process writes none.
                let _ = std::fs::remove_file(&files.provider);
                r.kill().await;
            }
            continue;
        }
        if restart {
            note_restart(&files);
            log_line(
                &node.log_file,
                "INFO",
                "keystone.server",
                "Restart requested: stopping the API",
            );
            let _ = std::fs::remove_file(&files.provider);
            if let Some(r) = running.take() {
                r.stop().await;
            }
            // A restart starts a stopped Keystone too, as `systemctl restart` does.
            let _ = std::fs::remove_file(&files.stopped);
            // The acknowledgement the restart script waits for.
            let _ = std::fs::remove_file(&files.restart_req);
        } else {
            let _ = std::fs::remove_file(&files.start_req);
            let _ = std::fs::remove_file(&files.stopped);
            if let Some(r) = &running {
                // Already running: starting it is a no-op, as `systemctl start` is.
                let _ = write_atomic(&files.start_result, &format!("ok {}\n", r.provider));
                continue;
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(files.slow().unwrap_or(RESTART_PAUSE)) => {}
        }
        // Only a world that stopped makes this fail, and then nobody is left to tell.
        running = start(&node, &shared, &files, false).await.unwrap_or(None);
    }
    let _ = std::fs::remove_file(&files.provider);
    if let Some(r) = running.take() {
        r.stop().await;
    }
}

async fn bind(port: u16, retry: bool) -> anyhow::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) if retry && tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("port 127.0.0.1:{port} is busy (is this world already running?)")
                });
            }
        }
    }
}

/// Read the configuration and serve it. `Ok(Err(reason))` when Keystone would refuse to start
/// (the reason is logged, as Keystone logs it); `Err` when the port cannot be bound.
async fn serve(
    node: &WorldNode,
    shared: &Arc<Shared>,
    initial: bool,
) -> anyhow::Result<Result<Running, String>> {
    let conf = match load_config(&node.keystone_conf) {
        Ok(c) => c,
        Err(msg) => {
            log_refusal(node, &msg);
            return Ok(Err(msg));
        }
    };
    let listener = bind(node.port, !initial).await?;
    log_line(
        &node.log_file,
        "INFO",
        "keystone.server",
        &format!(
            "Starting Keystone on 127.0.0.1:{} with token provider {} (expiration {} s)",
            node.port,
            conf.provider.name(),
            conf.expiration
        ),
    );
    let provider = conf.provider.name();
    let app = Arc::new(NodeApp {
        node: node.clone(),
        shared: shared.clone(),
        conf,
    });
    let (closed_tx, closed) = oneshot::channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let listener = ClosingListener {
        inner: listener,
        _closed: closed_tx,
    };
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let task = tokio::spawn(async move {
        let _ = server.await;
    });
    Ok(Ok(Running {
        provider,
        stop: Some(stop),
        closed: Some(closed),
        task,
    }))
}

// ---------------------------------------------------------------------------------------------
// HTTP API

/// One node's running API: what it read at start.
struct NodeApp {
    node: WorldNode,
    shared: Arc<Shared>,
    conf: NodeConfig,
}

type AppState = State<Arc<NodeApp>>;

fn router(app: Arc<NodeApp>) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route("/v3/auth/tokens", get(validate).post(issue))
        .route("/v3/OS-TRUST/trusts", get(list_trusts))
        .route("/v3/OS-TRUST/trusts/{id}", get(show_trust))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            log_request,
        ))
        .with_state(app)
}

/// Log method, path and status of every request (health checks excepted: a real deployment
/// filters them too, or they drown the start-up lines an operator needs after a failed restart).
async fn log_request(State(app): AppState, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let is_check = req
        .headers()
        .get(header::USER_AGENT)
        .is_some_and(|v| v == HEALTH_CHECK_AGENT);
    let resp = next.run(req).await;
    if !is_check {
        log_line(
            &app.node.log_file,
            "INFO",
            "keystone.server.flask.request_processing",
            &format!(
                "127.0.0.1 \"{method} {path}\" status: {}",
                resp.status().as_u16()
            ),
        );
    }
    resp
}

/// Keystone's JSON error body.
fn ks_error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = json!({"error": {"code": status.as_u16(), "message": message, "title": title}});
    (status, axum::Json(body)).into_response()
}

fn unauthorized(app: &NodeApp) -> Response {
    let mut resp = ks_error(
        StatusCode::UNAUTHORIZED,
        "The request you have made requires authentication.",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{}/v3\"", app.node.keystone_url))
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn versions(State(app): AppState) -> Response {
    let body = json!({"versions": {"values": [version_doc(&app.node.keystone_url)]}});
    (StatusCode::MULTIPLE_CHOICES, axum::Json(body)).into_response()
}

async fn version(State(app): AppState) -> Response {
    axum::Json(json!({"version": version_doc(&app.node.keystone_url)})).into_response()
}

async fn not_found() -> Response {
    ks_error(StatusCode::NOT_FOUND, "The resource could not be found.")
}

impl NodeApp {
    /// Validate a token with this node's current provider. Keys are read now: repositories
    /// change during rotation and key distribution.
    fn validate(&self, token: &str) -> Option<TokenData> {
        let now = chrono::Utc::now();
        let data = match &self.conf.provider {
            Provider::Fernet { repo } => {
                let keys = tokens::read_fernet_keys(repo).ok()?;
                tokens::fernet_validate(&keys, token, now).ok()?
            }
            Provider::Jws { public_repo, .. } => {
                let keys = tokens::read_public_keys(public_repo);
                tokens::jws_validate(&keys, token, now).ok()?
            }
        };
        (data.user_id == self.shared.admin_user_id).then_some(data)
    }

    fn token_body(&self, t: &TokenData) -> Value {
        let s = &self.shared;
        let domain = json!({"id": "default", "name": "Default"});
        let mut token = json!({
            "methods": t.methods,
            "user": {
                "domain": domain,
                "id": t.user_id,
                "name": s.username,
                "password_expires_at": null,
            },
            "audit_ids": t.audit_ids,
            "expires_at": keystone_time(t.expires_at),
            "issued_at": keystone_time(t.issued_at),
        });
        if let Some(project) = &t.project_id {
            token["project"] = json!({"domain": domain, "id": project, "name": s.project_name});
            token["is_domain"] = json!(false);
            token["roles"] = json!(
                ["admin", "member", "reader"]
                    .iter()
                    .map(|r| json!({"id": role_id(project, r), "name": r}))
                    .collect::<Vec<_>>()
            );
        }
        token["catalog"] = json!([]);
        json!({"token": token})
    }

    /// Check a password-auth body. `Ok(project id)` (None when unscoped) or a Keystone error.
    fn authenticate(&self, body: &Value) -> Result<Option<String>, AuthRefusal> {
        let s = &self.shared;
        let identity = body
            .pointer("/auth/identity")
            .ok_or(AuthRefusal::BadRequest(
                "Expecting to find identity in auth.",
            ))?;
        let methods =
            identity
                .get("methods")
                .and_then(Value::as_array)
                .ok_or(AuthRefusal::BadRequest(
                    "Expecting to find methods in identity.",
                ))?;
        if !methods.iter().any(|m| m == "password") {
            return Err(AuthRefusal::Unauthorized);
        }
        let user = identity
            .pointer("/password/user")
            .ok_or(AuthRefusal::BadRequest(
                "Expecting to find user in password.",
            ))?;
        let name_ok = match (user.get("id"), user.get("name")) {
            (Some(id), _) => id == s.admin_user_id.as_str(),
            (None, Some(name)) => {
                name == s.username.as_str()
                    && user
                        .get("domain")
                        .is_some_and(|d| Shared::domain_matches(&s.user_domain, d))
            }
            (None, None) => {
                return Err(AuthRefusal::BadRequest(
                    "Expecting to find id or name in user.",
                ));
            }
        };
        let password_ok = user.get("password").and_then(Value::as_str) == Some(&s.password);
        if !(name_ok && password_ok) {
            return Err(AuthRefusal::Unauthorized);
        }
        let Some(scope) = body.pointer("/auth/scope") else {
            return Ok(None);
        };
        let Some(project) = scope.get("project") else {
            return Err(AuthRefusal::Unauthorized);
        };
        let project_ok = match (project.get("id"), project.get("name")) {
            (Some(id), _) => id == s.admin_project_id.as_str(),
            (None, Some(name)) => {
                name == s.project_name.as_str()
                    && project
                        .get("domain")
                        .is_some_and(|d| Shared::domain_matches(&s.project_domain, d))
            }
            (None, None) => {
                return Err(AuthRefusal::BadRequest(
                    "Expecting to find id or name in project.",
                ));
            }
        };
        if !project_ok {
            return Err(AuthRefusal::Unauthorized);
        }
        Ok(Some(s.admin_project_id.clone()))
    }
}

/// Why password authentication failed.
enum AuthRefusal {
    /// 400 with Keystone's message.
    BadRequest(&'static str),
    /// 401.
    Unauthorized,
}

/// A stable id for a role in this world (derived, so every node agrees).
fn role_id(project: &str, role: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(format!("{project}/{role}"))[..16])
}

fn internal_error() -> Response {
    ks_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "An unexpected error prevented the server from fulfilling your request.",
    )
}

fn bad_request(msg: &str) -> Response {
    ks_error(StatusCode::BAD_REQUEST, msg)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// POST /v3/auth/tokens: password authentication.
async fn issue(State(app): AppState, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Malformed request body: expecting JSON.");
    };
    let project_id = match app.authenticate(&body) {
        Ok(p) => p,
        Err(AuthRefusal::BadRequest(msg)) => return bad_request(msg),
        Err(AuthRefusal::Unauthorized) => return unauthorized(&app),
    };
    let now = chrono::Utc::now();
    let data = TokenData {
        user_id: app.shared.admin_user_id.clone(),
        project_id,
        methods: vec!["password".into()],
        audit_ids: vec![tokens::new_audit_id()],
        issued_at: now,
        expires_at: now + chrono::Duration::seconds(app.conf.expiration),
    };
    let token = match &app.conf.provider {
        Provider::Fernet { repo } => match tokens::read_fernet_keys(repo) {
            Ok(keys) if !keys.is_empty() => tokens::fernet_issue(&keys[0].1, &data),
            _ => return internal_error(),
        },
        Provider::Jws { signing, .. } => tokens::jws_issue(signing, &data),
    };
    let mut resp = (StatusCode::CREATED, axum::Json(app.token_body(&data))).into_response();
    match HeaderValue::from_str(&token) {
        Ok(v) => {
            resp.headers_mut().insert("x-subject-token", v);
        }
        Err(_) => return internal_error(),
    }
    resp
}

/// GET (and HEAD) /v3/auth/tokens: validate X-Subject-Token, authorised by X-Auth-Token.
async fn validate(State(app): AppState, headers: HeaderMap) -> Response {
    if header_str(&headers, "x-auth-token")
        .and_then(|t| app.validate(t))
        .is_none()
    {
        return unauthorized(&app);
    }
    let Some(subject) = header_str(&headers, "x-subject-token") else {
        return ks_error(StatusCode::NOT_FOUND, "Could not find token.");
    };
    // Keystone names the token in this message; the stand-in does not repeat secrets.
    let Some(data) = app.validate(subject) else {
        return ks_error(StatusCode::NOT_FOUND, "Could not find token.");
    };
    let mut resp = axum::Json(app.token_body(&data)).into_response();
    if let Ok(v) = HeaderValue::from_str(subject) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

/// The trusts of trusts.json with their links, or None if the file cannot be read.
fn read_trusts(app: &NodeApp) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(&app.shared.trusts_path).ok()?;
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let base = &app.node.keystone_url;
    Some(
        doc.get("trusts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut t| {
                let id = t
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                t["links"] = json!({"self": format!("{base}/v3/OS-TRUST/trusts/{id}")});
                t
            })
            .collect(),
    )
}

/// GET /v3/OS-TRUST/trusts.
async fn list_trusts(State(app): AppState, headers: HeaderMap) -> Response {
    if header_str(&headers, "x-auth-token")
        .and_then(|t| app.validate(t))
        .is_none()
    {
        return unauthorized(&app);
    }
    match read_trusts(&app) {
        Some(trusts) => axum::Json(json!({
            "trusts": trusts,
            "links": {
                "self": format!("{}/v3/OS-TRUST/trusts", app.node.keystone_url),
                "previous": null,
                "next": null,
            }
        }))
        .into_response(),
        None => internal_error(),
    }
}

/// GET /v3/OS-TRUST/trusts/{id}.
async fn show_trust(
    State(app): AppState,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if header_str(&headers, "x-auth-token")
        .and_then(|t| app.validate(t))
        .is_none()
    {
        return unauthorized(&app);
    }
    match read_trusts(&app) {
        Some(trusts) => match trusts.into_iter().find(|t| t["id"] == id.as_str()) {
            Some(t) => axum::Json(json!({"trust": t})).into_response(),
            None => ks_error(
                StatusCode::NOT_FOUND,
                &format!("Could not find trust: {id}."),
            ),
        },
        None => internal_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn refuses_jws_without_keys_and_unknown_providers() {
        let d = tempfile::tempdir().unwrap();
        let private = d.path().join("private");
        let public = d.path().join("public");
        std::fs::create_dir_all(&private).unwrap();
        std::fs::create_dir_all(&public).unwrap();
        let conf = write(
            d.path(),
            "k.conf",
            &format!(
                "[token]\nprovider = jws\n[jwt_tokens]\njws_private_key_repository = {}\njws_public_key_repository = {}\n",
                private.display(),
                public.display()
            ),
        );
        let err = load_config(&conf).err().unwrap();
        assert!(err.contains("private.pem does not exist"), "{err}");

        let conf = write(d.path(), "u.conf", "[token]\nprovider = uuid\n");
        let err = load_config(&conf).err().unwrap();
        assert!(err.contains("Unable to find 'uuid' driver"), "{err}");

        let empty = d.path().join("fernet");
        std::fs::create_dir_all(&empty).unwrap();
        let conf = write(
            d.path(),
            "f.conf",
            &format!("[fernet_tokens]\nkey_repository = {}/\n", empty.display()),
        );
        assert!(load_config(&conf).err().unwrap().contains("is empty"));

        let conf = write(
            d.path(),
            "a.conf",
            "[token]\nprovider = jws\n[jwt_tokens]\njws_algorithm = ES384\n",
        );
        assert!(load_config(&conf).err().unwrap().contains("ES256 only"));
    }

    #[test]
    fn refuses_booleans_oslo_config_refuses_as_keystone_30_does() {
        let d = tempfile::tempdir().unwrap();
        let fernet = d.path().join("fernet");
        std::fs::create_dir_all(&fernet).unwrap();
        std::fs::write(fernet.join("0"), format!("{}=", "A".repeat(43))).unwrap();
        let base = format!("[fernet_tokens]\nkey_repository = {}/\n", fernet.display());
        let conf = write(
            d.path(),
            "c.conf",
            &format!("[DEFAULT]\nuse_stderr = Maybe\ndebug = notabool\n{base}"),
        );
        // A command-line option is checked first, by argparse.
        assert_eq!(
            load_config(&conf).err().unwrap(),
            "argument --debug: Invalid Boolean value: notabool"
        );
        let conf = write(
            d.path(),
            "c.conf",
            &format!("[DEFAULT]\ndebug = TRUE\n[cache]\nenabled = maybe\n{base}"),
        );
        let err = load_config(&conf).err().unwrap();
        assert!(
            err.starts_with("oslo_config.cfg.ConfigFileValueError: Value for option enabled from")
                && err.ends_with("is not valid: Unexpected boolean value 'maybe'"),
            "{err}"
        );
        let conf = write(
            d.path(),
            "c.conf",
            &format!("[DEFAULT]\ndebug = on\nuse_stderr = 0\n[cache]\nenabled = No\n{base}"),
        );
        if let Err(e) = load_config(&conf) {
            panic!("{e}");
        }
    }
}
