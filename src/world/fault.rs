//! Fault injection: break the demo world the way real services break during a change window.
//!
//! A rehearsal that only ever sees healthy services proves little: the failures cutover's gates
//! and guards exist for are a load balancer reloaded without its server-state file, another
//! operator putting a drained server back, an instance that stops answering, a Keystone that
//! refuses to restart or takes its time, a process that dies. Each is a [`Fault`], injected
//! with [`inject`] (the library) or `cutover world fault DIR FAULT [ARGS...]` (the CLI).
//!
//! The world's stand-ins usually live in another process (`cutover world serve`, `cutover demo`,
//! `cutover run`), so faults travel the way an operator's actions would: over the HAProxy admin
//! socket, or as files the stand-ins poll. Nothing here calls into a running world's memory.
//!
//! | fault                   | how it travels                                              |
//! |-------------------------|-------------------------------------------------------------|
//! | `hap-reload [LB]`       | `@world reload` on the admin socket (private; see `haproxy`) |
//! | `set-ready NODE [LB]`   | `set server BACKEND/SERVER state ready` on the admin socket  |
//! | `lb-down [LB]`          | creates `DIR/haproxy-K.down`                                 |
//! | `lb-up [LB]`            | removes `DIR/haproxy-K.down`                                 |
//! | `break-restart NODE`    | creates `DIR/nodeK/run/break-restart`                        |
//! | `fix-restart NODE`      | removes `DIR/nodeK/run/break-restart`                        |
//! | `slow-restart NODE SECS`| writes SECS to `DIR/nodeK/run/slow-restart` (0 removes it)   |
//! | `stop NODE`             | creates `DIR/nodeK/run/stopped`                              |
//! | `start NODE`            | removes `run/stopped`, creates `run/start.req`               |
//!
//! Without `LB`, a load-balancer fault applies to every instance. Faults whose effect is
//! immediate (`hap-reload`, `set-ready`, `lb-down`, `lb-up`, `stop`, `start`) return once it
//! has taken effect; the others once the file is in place (they act at the next restart).
//! Everything here is synchronous std I/O: the CLI calls it once, tests call it from a
//! blocking task.

use super::info::{WorldInfo, WorldLb, WorldNode};
use super::keystone::{RunFiles, write_atomic};
use anyhow::{Context as _, anyhow, bail};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// One fault to inject into a running world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Reload HAProxy without a server-state file: runtime state lost.
    HapReload { lb: Option<String> },
    /// Another operator sends `set server BACKEND/SERVER state ready`.
    SetReady { node: String, lb: Option<String> },
    /// Every start of the node's Keystone fails until [`Fault::FixRestart`].
    BreakRestart { node: String },
    /// Undo [`Fault::BreakRestart`].
    FixRestart { node: String },
    /// Restarts (and starts) take `secs` before the node listens; 0 clears it.
    SlowRestart { node: String, secs: u64 },
    /// The node's Keystone process dies.
    Stop { node: String },
    /// The node's Keystone process is started again.
    Start { node: String },
    /// The instance stops answering its admin socket and frontend.
    LbDown { lb: Option<String> },
    /// The instance answers again.
    LbUp { lb: Option<String> },
    /// The shared token cache is emptied (memcached's `flush_all`).
    FlushCache,
}

/// The faults, for help texts.
pub const HELP: &str = "\
Faults (LB: an instance name such as haproxy-1; without it, every instance):
  hap-reload [LB]           reload HAProxy without a server-state file: every server back to
                            ready, health = rise (`UP 1/3` until its next check), counters 0
  set-ready NODE [LB]       another operator: `set server BACKEND/SERVER state ready`
  lb-down [LB]              the instance stops answering its admin socket and frontend
  lb-up [LB]                ...and answers again
  break-restart NODE        restarts fail: Keystone stays down, CRITICAL line in its log
  fix-restart NODE          restarts work again
  slow-restart NODE SECS    restarts take SECS before Keystone listens (0 clears it)
  stop NODE                 the Keystone process dies (its port refuses connections)
  start NODE                the Keystone process is started again
  flush-cache               empty the shared token cache (a world made with --token-cache),
                            as memcached's flush_all does";

/// Why a fault could not be injected, for callers that map errors to exit codes: bad input
/// (exit 2) is told apart from a world that is not running (exit 1). Other failures are plain
/// errors.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// An unknown fault, node or load balancer, wrong arguments, or not a world directory.
    #[error("{0}")]
    Invalid(String),
    /// The world exists but nothing serves it.
    #[error("{0}")]
    NotRunning(String),
}

fn invalid(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(FaultError::Invalid(msg.into()))
}

impl Fault {
    /// Parse a fault from its name and arguments, as `cutover world fault` takes them.
    /// Errors are [`FaultError::Invalid`]. Whether a node or load balancer exists is checked
    /// by [`inject`], which knows the world.
    pub fn parse(name: &str, args: &[String]) -> anyhow::Result<Fault> {
        let usage = |shape: &str| {
            invalid(format!(
                "fault `{name}` takes {shape}, got {}: {}",
                if args.is_empty() {
                    "no arguments".to_string()
                } else {
                    format!("`{}`", args.join(" "))
                },
                usage_line(name).unwrap_or_default()
            ))
        };
        let one = |shape: &str| match args {
            [a] => Ok(a.clone()),
            _ => Err(usage(shape)),
        };
        let optional_lb = || match args {
            [] => Ok(None),
            [lb] => Ok(Some(lb.clone())),
            _ => Err(usage("at most one argument, an instance name")),
        };
        Ok(match name {
            "hap-reload" => Fault::HapReload { lb: optional_lb()? },
            "lb-down" => Fault::LbDown { lb: optional_lb()? },
            "lb-up" => Fault::LbUp { lb: optional_lb()? },
            "flush-cache" => match args {
                [] => Fault::FlushCache,
                _ => return Err(usage("no arguments")),
            },
            "set-ready" => match args {
                [node] => Fault::SetReady {
                    node: node.clone(),
                    lb: None,
                },
                [node, lb] => Fault::SetReady {
                    node: node.clone(),
                    lb: Some(lb.clone()),
                },
                _ => return Err(usage("a node and optionally an instance")),
            },
            "break-restart" => Fault::BreakRestart {
                node: one("one node")?,
            },
            "fix-restart" => Fault::FixRestart {
                node: one("one node")?,
            },
            "stop" => Fault::Stop {
                node: one("one node")?,
            },
            "start" => Fault::Start {
                node: one("one node")?,
            },
            "slow-restart" => match args {
                [node, secs] => Fault::SlowRestart {
                    node: node.clone(),
                    secs: secs.parse().map_err(|_| {
                        invalid(format!(
                            "slow-restart: `{secs}` is not a number of seconds (0 clears the fault)"
                        ))
                    })?,
                },
                _ => return Err(usage("a node and a number of seconds")),
            },
            other => {
                return Err(invalid(format!("unknown fault `{other}`. {HELP}")));
            }
        })
    }

    /// The fault's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::HapReload { .. } => "hap-reload",
            Fault::SetReady { .. } => "set-ready",
            Fault::BreakRestart { .. } => "break-restart",
            Fault::FixRestart { .. } => "fix-restart",
            Fault::SlowRestart { .. } => "slow-restart",
            Fault::Stop { .. } => "stop",
            Fault::Start { .. } => "start",
            Fault::LbDown { .. } => "lb-down",
            Fault::LbUp { .. } => "lb-up",
            Fault::FlushCache => "flush-cache",
        }
    }
}

/// The line of [`HELP`] that describes `name`, trimmed.
fn usage_line(name: &str) -> Option<String> {
    HELP.lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split("  ").next().unwrap_or(l).to_string())
        .map(|l| format!("`{l}`"))
}

/// Inject `fault` into the world in `dir`, which must be running. Returns one line saying what
/// was done. Errors name the world, node or instance and say what to do; bad input and a world
/// that is not running are [`FaultError`]s.
pub fn inject(dir: &Path, fault: &Fault) -> anyhow::Result<String> {
    let info = super::info::load(dir).map_err(|e| {
        invalid(format!(
            "{} is not a demo world ({e:#}); create one with `cutover world create {}`",
            dir.display(),
            dir.display()
        ))
    })?;
    let target = Target::resolve(&info, fault)?;
    if !super::serve::is_served(&info) {
        return Err(anyhow::Error::new(FaultError::NotRunning(format!(
            "the demo world in {dir} is not running, so there is nothing to inject `{}` into: serve it with `cutover world serve {dir}`, or start a run against {inv} (e.g. `cutover run RUNBOOK -i {inv}`), then try again",
            fault.name(),
            dir = info.dir.display(),
            inv = info.inventory_path.display(),
        ))));
    }
    match (fault, target) {
        (Fault::HapReload { .. }, Target::Lbs(lbs)) => each_lb(&lbs, |lb| hap_reload(&info, lb)),
        (Fault::SetReady { node, .. }, Target::Lbs(lbs)) => {
            each_lb(&lbs, |lb| set_ready(&info, lb, node))
        }
        (Fault::LbDown { .. }, Target::Lbs(lbs)) => each_lb(&lbs, |lb| lb_down(&info, lb)),
        (Fault::LbUp { .. }, Target::Lbs(lbs)) => each_lb(&lbs, lb_up),
        (Fault::BreakRestart { .. }, Target::Node(n)) => break_restart(&info, n),
        (Fault::FixRestart { .. }, Target::Node(n)) => fix_restart(&info, n),
        (Fault::SlowRestart { secs, .. }, Target::Node(n)) => slow_restart(n, *secs),
        (Fault::Stop { .. }, Target::Node(n)) => stop(&info, n),
        (Fault::Start { .. }, Target::Node(n)) => start(n),
        (Fault::FlushCache, Target::Cache) => flush_cache(&info),
        _ => bail!(
            "internal error: fault {} resolved to the wrong target",
            fault.name()
        ),
    }
}

/// What a fault acts on, checked against the world before anything is touched.
enum Target<'a> {
    Node(&'a WorldNode),
    Lbs(Vec<&'a WorldLb>),
    /// The world's shared token cache.
    Cache,
}

impl<'a> Target<'a> {
    fn resolve(info: &'a WorldInfo, fault: &Fault) -> anyhow::Result<Target<'a>> {
        let node = |name: &str| {
            info.node(name).ok_or_else(|| {
                invalid(format!(
                    "the demo world in {} has no node `{name}` (its nodes: {})",
                    info.dir.display(),
                    info.nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let lbs = |lb: &Option<String>| -> anyhow::Result<Vec<&'a WorldLb>> {
            if info.lbs.is_empty() {
                return Err(invalid(format!(
                    "the demo world in {} has no load balancer; create a world with `--lbs 1` or more",
                    info.dir.display()
                )));
            }
            match lb {
                None => Ok(info.lbs.iter().collect()),
                Some(name) => match info.lbs.iter().find(|l| &l.name == name) {
                    Some(l) => Ok(vec![l]),
                    None => Err(invalid(format!(
                        "the demo world in {} has no load balancer `{name}` (its instances: {})",
                        info.dir.display(),
                        info.lbs
                            .iter()
                            .map(|l| l.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                },
            }
        };
        Ok(match fault {
            Fault::HapReload { lb } | Fault::LbDown { lb } | Fault::LbUp { lb } => {
                Target::Lbs(lbs(lb)?)
            }
            Fault::SetReady { node: n, lb } => {
                node(n)?;
                let lbs = lbs(lb)?;
                for l in &lbs {
                    if !l.servers.iter().any(|s| &s.node == n) {
                        return Err(invalid(format!(
                            "{} has no server for node `{n}` in backend {}",
                            l.name, l.backend
                        )));
                    }
                }
                Target::Lbs(lbs)
            }
            Fault::BreakRestart { node: n }
            | Fault::FixRestart { node: n }
            | Fault::SlowRestart { node: n, .. }
            | Fault::Stop { node: n }
            | Fault::Start { node: n } => Target::Node(node(n)?),
            Fault::FlushCache => match info.token_cache {
                Some(_) => Target::Cache,
                None => {
                    return Err(invalid(format!(
                        "the demo world in {} has no shared token cache; create a world with `cutover world create DIR --token-cache SECONDS`",
                        info.dir.display()
                    )));
                }
            },
        })
    }
}

/// Apply `f` to every instance, one line each joined by `; `. Stops at the first error, saying
/// which instances were already done.
fn each_lb(
    lbs: &[&WorldLb],
    mut f: impl FnMut(&WorldLb) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let mut done: Vec<String> = Vec::new();
    for lb in lbs {
        match f(lb) {
            Ok(line) => done.push(line),
            Err(e) if done.is_empty() => return Err(e),
            Err(e) => {
                return Err(e.context(format!("{} (already done: {})", lb.name, done.join("; "))));
            }
        }
    }
    Ok(done.join("; "))
}

// ---------------------------------------------------------------------------------------------
// HAProxy

/// How long to wait for an effect that should follow within a few polls.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One exchange over an instance's admin socket: the answer, or an error that says whether the
/// instance is down by an injected fault.
fn admin(info: &WorldInfo, lb: &WorldLb, cmd: &str) -> anyhow::Result<String> {
    let down = super::haproxy::down_file(lb);
    let mut s = match UnixStream::connect(&lb.socket) {
        Ok(s) => s,
        Err(e) if down.exists() => {
            return Err(anyhow!(
                "{} is down ({} exists, from an injected lb-down): {e}. Bring it back with `cutover world fault {} lb-up {}`",
                lb.name,
                down.display(),
                info.dir.display(),
                lb.name
            ));
        }
        Err(e) => {
            return Err(anyhow!(
                "cannot reach {}'s admin socket {}: {e}. Is the world in {} still being served?",
                lb.name,
                lb.socket.display(),
                info.dir.display()
            ));
        }
    };
    let io = |e: std::io::Error| {
        anyhow!(
            "{}: admin socket {} failed mid-command `{cmd}`: {e}",
            lb.name,
            lb.socket.display()
        )
    };
    s.set_read_timeout(Some(EFFECT_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(EFFECT_TIMEOUT)).map_err(io)?;
    s.write_all(format!("{cmd}\n").as_bytes()).map_err(io)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(io)?;
    Ok(out)
}

fn hap_reload(info: &WorldInfo, lb: &WorldLb) -> anyhow::Result<String> {
    let out = admin(info, lb, "@world reload")?;
    let line = out.trim();
    let Some(lost) = line.strip_prefix("reloaded: ") else {
        bail!(
            "{} did not understand the demo world's reload command (it answered `{}`): the world is served by an older cutover; restart `cutover world serve {}`",
            lb.name,
            line.lines().next().unwrap_or(""),
            info.dir.display()
        );
    };
    Ok(format!(
        "{}: reloaded without a server-state file, {lost}; every server UP 1/3 until its next check",
        lb.name
    ))
}

fn set_ready(info: &WorldInfo, lb: &WorldLb, node: &str) -> anyhow::Result<String> {
    let Some(server) = lb.servers.iter().find(|s| s.node == node).map(|s| &s.name) else {
        bail!("{} has no server for node `{node}`", lb.name);
    };
    let cmd = format!("set server {}/{server} state ready", lb.backend);
    let out = admin(info, lb, &cmd)?;
    if !out.trim().is_empty() {
        bail!("{}: `{cmd}` answered `{}`", lb.name, out.trim());
    }
    Ok(format!(
        "{}: sent `{cmd}` ({node} back in the pool)",
        lb.name
    ))
}

fn lb_down(info: &WorldInfo, lb: &WorldLb) -> anyhow::Result<String> {
    let down = super::haproxy::down_file(lb);
    write_atomic(&down, "lb-down injected by `cutover world fault`\n")
        .with_context(|| format!("cannot create {} to take {} down", down.display(), lb.name))?;
    let frontend = SocketAddr::from((Ipv4Addr::LOCALHOST, lb.frontend_port));
    wait_until(EFFECT_TIMEOUT, || {
        UnixStream::connect(&lb.socket).is_err() && !tcp_listens(frontend)
    })
    .ok_or_else(|| {
        anyhow!(
            "{} still answers {}s after {} appeared: is the world in {} served by an older cutover? Remove the file to undo",
            lb.name,
            EFFECT_TIMEOUT.as_secs(),
            down.display(),
            info.dir.display()
        )
    })?;
    Ok(format!(
        "{}: down (admin socket and frontend {frontend} refuse connections) until `lb-up {}`",
        lb.name, lb.name
    ))
}

fn lb_up(lb: &WorldLb) -> anyhow::Result<String> {
    let down = super::haproxy::down_file(lb);
    if !down.exists() {
        return Ok(format!("{}: was not down; nothing to do", lb.name));
    }
    std::fs::remove_file(&down)
        .with_context(|| format!("cannot remove {} to bring {} back", down.display(), lb.name))?;
    let frontend = SocketAddr::from((Ipv4Addr::LOCALHOST, lb.frontend_port));
    wait_until(EFFECT_TIMEOUT, || {
        UnixStream::connect(&lb.socket).is_ok() && tcp_listens(frontend)
    })
    .ok_or_else(|| {
        anyhow!(
            "{} does not answer {}s after {} was removed: is something else holding {} or {frontend}?",
            lb.name,
            EFFECT_TIMEOUT.as_secs(),
            down.display(),
            lb.socket.display()
        )
    })?;
    Ok(format!(
        "{}: up again (admin socket and frontend {frontend} answer; runtime state kept)",
        lb.name
    ))
}

// ---------------------------------------------------------------------------------------------
// Keystone nodes

fn break_restart(info: &WorldInfo, node: &WorldNode) -> anyhow::Result<String> {
    let f = RunFiles::of(node);
    write_atomic(
        &f.break_restart,
        "break-restart injected by `cutover world fault`: every start of this Keystone fails\n",
    )
    .with_context(|| format!("cannot create {}", f.break_restart.display()))?;
    Ok(format!(
        "{n}: restarts now fail (Keystone stays down, CRITICAL line in {log}) until `cutover world fault {dir} fix-restart {n}`",
        n = node.name,
        log = node.log_file.display(),
        dir = info.dir.display()
    ))
}

fn fix_restart(info: &WorldInfo, node: &WorldNode) -> anyhow::Result<String> {
    let f = RunFiles::of(node);
    if !f.break_restart.exists() {
        return Ok(format!(
            "{}: restarts were not broken; nothing to do",
            node.name
        ));
    }
    std::fs::remove_file(&f.break_restart)
        .with_context(|| format!("cannot remove {}", f.break_restart.display()))?;
    Ok(format!(
        "{n}: restarts work again (a Keystone left down starts at its next restart: `{restart}`, or `cutover world fault {dir} start {n}`)",
        n = node.name,
        restart = node.restart.display(),
        dir = info.dir.display()
    ))
}

fn slow_restart(node: &WorldNode, secs: u64) -> anyhow::Result<String> {
    let f = RunFiles::of(node);
    if secs == 0 {
        match std::fs::remove_file(&f.slow_restart) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot remove {}", f.slow_restart.display()));
            }
        }
        return Ok(format!(
            "{}: restarts take their usual time again",
            node.name
        ));
    }
    write_atomic(&f.slow_restart, &format!("{secs}\n"))
        .with_context(|| format!("cannot write {}", f.slow_restart.display()))?;
    Ok(format!(
        "{}: restarts and starts now take {secs} s before Keystone listens (0 clears it)",
        node.name
    ))
}

fn stop(info: &WorldInfo, node: &WorldNode) -> anyhow::Result<String> {
    let f = RunFiles::of(node);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, node.port));
    std::fs::write(&f.stopped, "stopped by `cutover world fault`\n")
        .with_context(|| format!("cannot create {}", f.stopped.display()))?;
    wait_until(EFFECT_TIMEOUT, || !tcp_listens(addr)).ok_or_else(|| {
        anyhow!(
            "{}: Keystone still listens on {addr} {}s after {} appeared: is the world in {} served by an older cutover?",
            node.name,
            EFFECT_TIMEOUT.as_secs(),
            f.stopped.display(),
            info.dir.display()
        )
    })?;
    Ok(format!(
        "{n}: Keystone stopped ({addr} refuses connections; HAProxy marks it DOWN after 3 failed checks) until `start {n}` or a restart",
        n = node.name
    ))
}

/// Ask the serving process to empty the shared token cache and wait until it has.
fn flush_cache(info: &WorldInfo) -> anyhow::Result<String> {
    let request = super::token_cache::flush_request(&info.dir);
    let done = request.with_extension("flushed");
    let _ = std::fs::remove_file(&done);
    std::fs::write(&request, "").with_context(|| format!("cannot create {}", request.display()))?;
    let flushed = wait_until(EFFECT_TIMEOUT, || {
        (!request.exists())
            .then(|| std::fs::read_to_string(&done).ok())
            .flatten()
    });
    let _ = std::fs::remove_file(&done);
    match flushed {
        Some(n) => Ok(format!(
            "token cache flushed: {} entries gone; every node asks its own provider until tokens are cached again",
            n.trim()
        )),
        None => {
            let _ = std::fs::remove_file(&request);
            bail!(
                "the token cache was not flushed within {}s ({} was not taken): is the process serving {} stuck?",
                EFFECT_TIMEOUT.as_secs(),
                request.display(),
                info.dir.display()
            )
        }
    }
}

fn start(node: &WorldNode) -> anyhow::Result<String> {
    let f = RunFiles::of(node);
    let _ = std::fs::remove_file(&f.start_result);
    let _ = std::fs::remove_file(&f.stopped);
    std::fs::write(&f.start_req, "")
        .with_context(|| format!("cannot create {}", f.start_req.display()))?;
    let slow = std::fs::read_to_string(&f.slow_restart)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let outcome = wait_until(EFFECT_TIMEOUT + Duration::from_secs(slow), || {
        std::fs::read_to_string(&f.start_result).ok()
    })
    .ok_or_else(|| {
        anyhow!(
            "{}: Keystone did not report a start within {}s (no {}); read {}",
            node.name,
            (EFFECT_TIMEOUT + Duration::from_secs(slow)).as_secs(),
            f.start_result.display(),
            node.log_file.display()
        )
    })?;
    let outcome = outcome.trim();
    match outcome.strip_prefix("ok ") {
        Some(provider) => Ok(format!(
            "{}: Keystone started (provider {provider}, listening on 127.0.0.1:{})",
            node.name, node.port
        )),
        None => bail!(
            "{}: Keystone was started but did not come up: {}. See {}",
            node.name,
            outcome.strip_prefix("failed: ").unwrap_or(outcome),
            node.log_file.display()
        ),
    }
}

// ---------------------------------------------------------------------------------------------

/// Whether something accepts TCP connections at `addr`.
fn tcp_listens(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Poll `probe` every 50 ms until it gives `Some` (or `true`) or `timeout` passes.
fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> T) -> Option<T::Output>
where
    T: Probe,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().done() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A poll result: `true`, or `Some(value)`.
trait Probe {
    type Output;
    fn done(self) -> Option<Self::Output>;
}

impl Probe for bool {
    type Output = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Probe for Option<T> {
    type Output = T;
    fn done(self) -> Option<T> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_fault_and_refuses_bad_arguments() {
        let ok = |name: &str, a: &[&str]| Fault::parse(name, &args(a)).unwrap();
        assert_eq!(ok("hap-reload", &[]), Fault::HapReload { lb: None });
        assert_eq!(
            ok("hap-reload", &["haproxy-2"]),
            Fault::HapReload {
                lb: Some("haproxy-2".into())
            }
        );
        assert_eq!(
            ok("set-ready", &["node2", "haproxy-1"]),
            Fault::SetReady {
                node: "node2".into(),
                lb: Some("haproxy-1".into())
            }
        );
        assert_eq!(
            ok("slow-restart", &["node1", "3"]),
            Fault::SlowRestart {
                node: "node1".into(),
                secs: 3
            }
        );
        assert_eq!(ok("stop", &["node3"]).name(), "stop");
        assert_eq!(ok("lb-up", &[]), Fault::LbUp { lb: None });

        let err = |name: &str, a: &[&str]| {
            let e = Fault::parse(name, &args(a)).unwrap_err();
            assert!(
                matches!(e.downcast_ref::<FaultError>(), Some(FaultError::Invalid(_))),
                "{e:#}"
            );
            e.to_string()
        };
        let e = err("explode", &[]);
        assert!(
            e.contains("unknown fault `explode`") && e.contains("hap-reload"),
            "{e}"
        );
        let e = err("stop", &[]);
        assert!(e.contains("one node") && e.contains("`stop NODE`"), "{e}");
        assert!(err("slow-restart", &["node1", "soon"]).contains("`soon` is not a number"));
        assert!(err("hap-reload", &["a", "b"]).contains("at most one argument"));
        assert!(err("set-ready", &[]).contains("a node"));
    }
}
