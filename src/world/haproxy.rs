//! The HAProxy stand-in: one instance per load balancer of the world.
//!
//! Each instance has
//! - an admin socket speaking the runtime API (non-interactive: one line of `;`-separated
//!   commands in, the answers out, close; `prompt` switches to interactive mode),
//! - HTTP health checks of every server (`option httpchk GET /v3`, `check inter 1s rise 2
//!   fall 3`),
//! - a TCP frontend that proxies each connection round-robin to a server that is UP and `ready`,
//!   counting sessions per server (what a drain waits for),
//! - its runtime admin state persisted to a server-state file on every change and loaded at
//!   start, so a restarted world keeps drained and maintained servers out of rotation.
//!
//! `show stat`'s `status` column reads as HAProxy 2.6 prints it, because operators (and cutover)
//! read meaning into the suffix: `UP` only at full check health; `UP n/m` while up below it —
//! right after `set server ... state ready` from maint it reads `UP 1/3` (no check has passed
//! yet; the first that passes makes it `UP`), after failed checks it is on its way down;
//! `DOWN n/m` while coming back; `DRAIN` / `DRAIN n/m` as UP; `MAINT`.
//!
//! # Faults (see [`super::fault`])
//! Real instances get reloaded and fall over during change windows; the stand-in can be made to
//! do both from outside the process that serves it:
//! - `@world reload` on the admin socket, a private command cutover's drivers never send, does
//!   what `haproxy -sf` without a server-state file does: a new process with the configured
//!   state (every server `ready`, health = rise, so `UP 1/3` until its next check), counters at
//!   zero, checks re-armed a full interval later, and the state file rewritten to match.
//!   Connections of the old process run on but no longer count.
//! - While `DIR/haproxy-K.down` exists the instance is unreachable: its admin socket and frontend
//!   stop listening (connections are refused, open ones dropped). Its runtime state and health
//!   checks carry on; removing the file makes it listen again. A file rather than a command,
//!   so that bringing it back does not need the socket that is down.
//!
//! The command parser and the text it prints are kept apart from the sockets ([`LbState`]), so
//! they can be tested without I/O.

use super::WorldLb;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The User-Agent of health checks (the Keystone stand-in does not log them).
pub const HEALTH_CHECK_AGENT: &str = "cutover-world-haproxy-check";
const CHECK_INTERVAL: Duration = Duration::from_millis(1000);
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);
const RISE: u32 = 2;
const FALL: u32 = 3;
/// The proxy id of the `listen keystone_api` section.
const BE_ID: u32 = 2;

/// A server's runtime admin state, as set with `set server BE/SRV state ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

impl AdminState {
    /// `srv_admin_state` bits: 0x01 forced maintenance, 0x08 forced drain.
    pub fn bits(self) -> u32 {
        match self {
            AdminState::Ready => 0,
            AdminState::Maint => 0x01,
            AdminState::Drain => 0x08,
        }
    }

    /// The word `set server ... state` takes.
    pub fn word(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    /// Read `srv_admin_state`: any maintenance bit (forced, inherited, resolution, ...) wins over
    /// the drain bits.
    pub fn from_bits(bits: u32) -> AdminState {
        if bits & (0x01 | 0x02 | 0x04 | 0x20 | 0x40) != 0 {
            AdminState::Maint
        } else if bits & (0x08 | 0x10) != 0 {
            AdminState::Drain
        } else {
            AdminState::Ready
        }
    }
}

/// The outcome of one health check, with HAProxy's `HCHK_STATUS_*` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckStatus {
    Init,
    L4Tout,
    L4Con,
    L7Tout,
    L7Rsp,
    L7Ok(u16),
    L7Sts(u16),
}

impl CheckStatus {
    fn passed(self) -> bool {
        matches!(self, CheckStatus::L7Ok(_))
    }

    /// `srv_check_status` in `show servers state`.
    fn code(self) -> u32 {
        match self {
            CheckStatus::Init => 1,
            CheckStatus::L4Tout => 7,
            CheckStatus::L4Con => 8,
            CheckStatus::L7Tout => 12,
            CheckStatus::L7Rsp => 13,
            CheckStatus::L7Ok(_) => 15,
            CheckStatus::L7Sts(_) => 17,
        }
    }

    /// `srv_check_result`: 0 unknown, 2 failed, 3 passed.
    fn result(self) -> u32 {
        match self {
            CheckStatus::Init => 0,
            s if s.passed() => 3,
            _ => 2,
        }
    }

    /// `check_status` in `show stat`.
    fn name(self) -> &'static str {
        match self {
            CheckStatus::Init => "INI",
            CheckStatus::L4Tout => "L4TOUT",
            CheckStatus::L4Con => "L4CON",
            CheckStatus::L7Tout => "L7TOUT",
            CheckStatus::L7Rsp => "L7RSP",
            CheckStatus::L7Ok(_) => "L7OK",
            CheckStatus::L7Sts(_) => "L7STS",
        }
    }

    fn http_code(self) -> Option<u16> {
        match self {
            CheckStatus::L7Ok(c) | CheckStatus::L7Sts(c) => Some(c),
            _ => None,
        }
    }

    fn desc(self) -> &'static str {
        match self {
            CheckStatus::Init => "Initializing",
            CheckStatus::L4Tout => "Layer4 timeout",
            CheckStatus::L4Con => "Layer4 connection problem",
            CheckStatus::L7Tout => "Layer7 timeout",
            CheckStatus::L7Rsp => "Layer7 invalid response",
            CheckStatus::L7Ok(_) => "Layer7 check passed",
            CheckStatus::L7Sts(_) => "Layer7 wrong status",
        }
    }
}

/// One server line of the backend.
#[derive(Debug, Clone)]
struct Server {
    id: u32,
    name: String,
    port: u16,
    admin: AdminState,
    /// Operational state from health checks (ignoring maintenance).
    up: bool,
    /// HAProxy's check health counter: 0..=rise+fall-1, UP at or above `rise`.
    health: u32,
    check: CheckStatus,
    check_duration_ms: u64,
    last_change: Instant,
    down_since: Option<Instant>,
    downtime: Duration,
    scur: u64,
    smax: u64,
    stot: u64,
    econ: u64,
    chkfail: u64,
    chkdown: u64,
}

impl Server {
    /// A server as the configuration defines it, before any check (down, health 0, ready).
    fn configured(now: Instant) -> Server {
        Server {
            id: 0,
            name: String::new(),
            port: 0,
            admin: AdminState::Ready,
            up: false,
            health: 0,
            check: CheckStatus::Init,
            check_duration_ms: 0,
            last_change: now,
            down_since: Some(now),
            downtime: Duration::ZERO,
            scur: 0,
            smax: 0,
            stot: 0,
            econ: 0,
            chkfail: 0,
            chkdown: 0,
        }
    }

    fn usable(&self) -> bool {
        self.admin == AdminState::Ready && self.up
    }

    /// `srv_op_state`: 2 running, 0 stopped (a server in maintenance is stopped).
    fn op_state(&self) -> u32 {
        if self.admin != AdminState::Maint && self.up {
            2
        } else {
            0
        }
    }

    /// `status` in `show stat`, as HAProxy 2.6 prints it (`srv_hlt_st` in stats.c): an up
    /// server below full health shows how far it is from it (`UP n/m`, n = health - rise + 1,
    /// m = fall), a down server on its way back how far it is from rising (`DOWN n/m`,
    /// n = health, m = rise).
    fn status(&self) -> String {
        if self.admin == AdminState::Maint {
            return "MAINT".into();
        }
        if !self.up {
            return if self.health == 0 {
                "DOWN".into()
            } else {
                format!("DOWN {}/{RISE}", self.health)
            };
        }
        let word = if self.admin == AdminState::Drain {
            "DRAIN"
        } else {
            "UP"
        };
        if self.health < RISE + FALL - 1 {
            format!("{word} {}/{FALL}", (self.health + 1).saturating_sub(RISE))
        } else {
            word.into()
        }
    }

    fn set_up(&mut self, up: bool, now: Instant) {
        if self.up == up {
            return;
        }
        self.up = up;
        self.last_change = now;
        if up {
            if let Some(since) = self.down_since.take() {
                self.downtime += now - since;
            }
        } else {
            self.chkdown += 1;
            self.down_since = Some(now);
        }
    }

    /// Apply a check result the way HAProxy's rise/fall counter does. Returns whether the
    /// operational state changed.
    fn record_check(&mut self, status: CheckStatus, duration_ms: u64, now: Instant) -> bool {
        if self.admin == AdminState::Maint {
            // Checks are paused in maintenance; a result that raced the change is dropped.
            return false;
        }
        let was = self.up;
        self.check = status;
        self.check_duration_ms = duration_ms;
        if status.passed() {
            if self.health < RISE + FALL - 1 {
                self.health += 1;
                if self.health >= RISE {
                    self.health = RISE + FALL - 1;
                    self.set_up(true, now);
                }
            }
        } else {
            self.chkfail += 1;
            if self.health > RISE {
                self.health -= 1;
            } else {
                self.health = 0;
                self.set_up(false, now);
            }
        }
        was != self.up
    }

    fn set_admin(&mut self, state: AdminState, now: Instant) {
        if self.admin == state {
            return;
        }
        let leaving_maint = self.admin == AdminState::Maint;
        self.admin = state;
        self.last_change = now;
        if leaving_maint {
            // As HAProxy: "start OK but check immediately" — one failed check takes it down.
            self.health = RISE;
            self.set_up(true, now);
        }
    }
}

/// The runtime state of one instance: what the runtime API shows and changes.
pub struct LbState {
    backend: String,
    servers: Vec<Server>,
    fe_scur: u64,
    fe_smax: u64,
    fe_stot: u64,
    rr: usize,
    started: Instant,
    /// Which "process" this is: bumped by a reload, so sessions of the old one stop counting.
    generation: u64,
}

/// What executing a command line did besides printing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Executed {
    pub output: String,
    /// The runtime admin state changed: persist it.
    pub changed: bool,
    /// `prompt` was given: stay in interactive mode.
    pub interactive: bool,
    /// `quit` was given.
    pub quit: bool,
    /// `@world reload` ran: a new process, health checks start over.
    pub reloaded: bool,
}

const HELP: &str = "The following commands are valid at this level:
  help [<command>]                        : list matching or all commands
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect
  disable server (DEPRECATED)             : disable a server for maintenance (use 'set server' instead)
  enable server  (DEPRECATED)             : enable a disabled server (use 'set server' instead)
  set server <bk>/<srv> state ready|drain|maint : change a server's administrative state
  show backend                            : list backends in the current running config
  show info                               : report information about the running process
  show servers state [<backend>]          : dump volatile server information (all or for a single backend)
  show stat [<iid> <type> <sid>]          : report counters for each proxy and server
";

/// The `show servers state` header as HAProxy 2.6 prints it.
const SERVERS_STATE_HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

/// The `show stat` columns (HAProxy 2.6 order, through `uweight`).
const STAT_COLUMNS: &[&str] = &[
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
    "cache_lookups",
    "cache_hits",
    "srv_icur",
    "src_ilim",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    "eint",
    "idle_conn_cur",
    "safe_conn_cur",
    "used_conn_cur",
    "need_conn_est",
    "uweight",
];

impl LbState {
    fn new(lb: &WorldLb, now: Instant) -> LbState {
        LbState {
            backend: lb.backend.clone(),
            servers: lb
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| Server {
                    id: i as u32 + 1,
                    name: s.name.clone(),
                    port: s.port,
                    ..Server::configured(now)
                })
                .collect(),
            fe_scur: 0,
            fe_smax: 0,
            fe_stot: 0,
            rr: 0,
            started: now,
            generation: 0,
        }
    }

    /// Execute one line of `;`-separated commands.
    pub fn execute(&mut self, line: &str, interactive: bool, now: Instant) -> Executed {
        let mut ex = Executed {
            interactive,
            ..Executed::default()
        };
        for cmd in line.split(';') {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            let out = match words.as_slice() {
                ["help", ..] => HELP.to_string(),
                ["prompt", ..] => {
                    ex.interactive = !ex.interactive;
                    String::new()
                }
                ["quit", ..] => {
                    ex.quit = true;
                    break;
                }
                ["set", "server", target, "state", state] => {
                    self.set_state_cmd(target, state, now, &mut ex.changed)
                }
                ["set", "server", _, "state", ..] => {
                    "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into()
                }
                ["set", "server", _, ..] => "'set server <srv>' only supports 'agent', 'health', 'state', 'weight', 'addr', 'fqdn', 'check-addr' and 'check-port'.\n".into(),
                ["set", "server"] => "Require 'backend/server'.\n".into(),
                ["disable", "server", target] => {
                    self.set_state_cmd(target, "maint", now, &mut ex.changed)
                }
                ["enable", "server", target] => {
                    self.set_state_cmd(target, "ready", now, &mut ex.changed)
                }
                ["show", "servers", "state"] => self.servers_state(None, now),
                ["show", "servers", "state", be, ..] => self.servers_state(Some(be), now),
                ["show", "stat", ..] => self.stat_csv(now),
                ["show", "backend", ..] => format!("# name\n{}\n", self.backend),
                ["show", "info", ..] => format!(
                    "Name: HAProxy\nVersion: 2.6.12-cutover-world\nRelease_date: 2023/03/10\nNbthread: 1\nProcess_num: 1\nPid: {}\nUptime_sec: {}\nCurrConns: {}\nCumConns: {}\n",
                    std::process::id(),
                    (now - self.started).as_secs(),
                    self.fe_scur,
                    self.fe_stot
                ),
                // Private to the demo world (not in `help`): see the module doc.
                ["@world", "reload"] => {
                    ex.changed = true;
                    ex.reloaded = true;
                    self.reload(now)
                }
                _ => format!("Unknown command: '{}'\n\n{HELP}", cmd.trim()),
            };
            ex.output.push_str(&out);
            // Every answer ends with an empty line (interactive mode: with the prompt).
            ex.output
                .push_str(if ex.interactive { "\n> " } else { "\n" });
        }
        ex
    }

    fn set_state_cmd(
        &mut self,
        target: &str,
        state: &str,
        now: Instant,
        changed: &mut bool,
    ) -> String {
        let Some((be, srv)) = target.split_once('/') else {
            return "Require 'backend/server'.\n".into();
        };
        if be != self.backend {
            return "No such backend.\n".into();
        }
        let Some(server) = self.servers.iter_mut().find(|s| s.name == srv) else {
            return "No such server.\n".into();
        };
        let new = match state {
            "ready" => AdminState::Ready,
            "drain" => AdminState::Drain,
            "maint" => AdminState::Maint,
            _ => return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into(),
        };
        server.set_admin(new, now);
        // Persisted even when unchanged: the state file must reflect what was asked last.
        *changed = true;
        String::new()
    }

    /// What a reload without a server-state file does: the new process knows only the
    /// configuration. Every server is `ready` with health = rise (up, but one failed check takes
    /// it down: HAProxy's "start OK but check immediately"), counters start at zero. Returns one
    /// line naming every server whose admin state was lost.
    fn reload(&mut self, now: Instant) -> String {
        let mut lost = Vec::new();
        for s in &mut self.servers {
            if s.admin != AdminState::Ready {
                lost.push(format!("{} {} -> ready", s.name, s.admin.word()));
            }
            *s = Server {
                id: s.id,
                name: std::mem::take(&mut s.name),
                port: s.port,
                ..Server::configured(now)
            };
            s.health = RISE;
            s.up = true;
            s.down_since = None;
        }
        self.fe_scur = 0;
        self.fe_smax = 0;
        self.fe_stot = 0;
        self.rr = 0;
        self.started = now;
        self.generation += 1;
        if lost.is_empty() {
            "reloaded: no runtime admin state to lose\n".into()
        } else {
            format!("reloaded: runtime admin state lost: {}\n", lost.join(", "))
        }
    }

    /// `show servers state [BACKEND]`: also the format of the state file.
    fn servers_state(&self, backend: Option<&str>, now: Instant) -> String {
        if backend.is_some_and(|b| b != self.backend) {
            return "Can't find backend.\n".into();
        }
        let mut out = format!("1\n{SERVERS_STATE_HEADER}\n");
        for s in &self.servers {
            let check_state = if s.admin == AdminState::Maint {
                0x02 | 0x04 | 0x08 // configured, enabled, paused
            } else {
                0x02 | 0x04
            };
            let _ = writeln!(
                out,
                "{BE_ID} {} {} {} 127.0.0.1 {} {} 1 1 {} {} {} {} {} 0 0 0 - {} - 0 0 - - 0",
                self.backend,
                s.id,
                s.name,
                s.op_state(),
                s.admin.bits(),
                (now - s.last_change).as_secs(),
                s.check.code(),
                s.check.result(),
                s.health,
                check_state,
                s.port,
            );
        }
        out
    }

    /// `show stat`: CSV with HAProxy's header, FRONTEND, servers, BACKEND.
    fn stat_csv(&self, now: Instant) -> String {
        let mut out = format!("# {},\n", STAT_COLUMNS.join(","));
        let row = |fields: &[(&str, String)]| -> String {
            let mut line = String::new();
            for col in STAT_COLUMNS {
                if let Some((_, v)) = fields.iter().find(|(k, _)| k == col) {
                    line.push_str(v);
                }
                line.push(',');
            }
            line.push('\n');
            line
        };
        let be = &self.backend;
        let pid = "1".to_string();
        let iid = BE_ID.to_string();
        out.push_str(&row(&[
            ("pxname", be.clone()),
            ("svname", "FRONTEND".into()),
            ("scur", self.fe_scur.to_string()),
            ("smax", self.fe_smax.to_string()),
            ("slim", "262120".into()),
            ("stot", self.fe_stot.to_string()),
            ("bin", "0".into()),
            ("bout", "0".into()),
            ("dreq", "0".into()),
            ("dresp", "0".into()),
            ("ereq", "0".into()),
            ("status", "OPEN".into()),
            ("pid", pid.clone()),
            ("iid", iid.clone()),
            ("sid", "0".into()),
            ("type", "0".into()),
            ("rate", "0".into()),
            ("rate_lim", "0".into()),
            ("rate_max", "0".into()),
            ("mode", "tcp".into()),
            ("conn_tot", self.fe_stot.to_string()),
        ]));
        for s in &self.servers {
            let downtime = s.downtime + s.down_since.map(|d| now - d).unwrap_or_default();
            out.push_str(&row(&[
                ("pxname", be.clone()),
                ("svname", s.name.clone()),
                ("qcur", "0".into()),
                ("qmax", "0".into()),
                ("scur", s.scur.to_string()),
                ("smax", s.smax.to_string()),
                ("stot", s.stot.to_string()),
                ("bin", "0".into()),
                ("bout", "0".into()),
                ("dresp", "0".into()),
                ("econ", s.econ.to_string()),
                ("eresp", "0".into()),
                ("wretr", "0".into()),
                ("wredis", "0".into()),
                ("status", s.status()),
                (
                    "weight",
                    if s.admin == AdminState::Drain {
                        "0"
                    } else {
                        "1"
                    }
                    .into(),
                ),
                ("act", "1".into()),
                ("bck", "0".into()),
                ("chkfail", s.chkfail.to_string()),
                ("chkdown", s.chkdown.to_string()),
                ("lastchg", (now - s.last_change).as_secs().to_string()),
                ("downtime", downtime.as_secs().to_string()),
                ("pid", pid.clone()),
                ("iid", iid.clone()),
                ("sid", s.id.to_string()),
                ("lbtot", s.stot.to_string()),
                ("type", "2".into()),
                ("rate", "0".into()),
                ("rate_max", "0".into()),
                ("check_status", s.check.name().into()),
                (
                    "check_code",
                    s.check
                        .http_code()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                ),
                ("check_duration", s.check_duration_ms.to_string()),
                ("check_desc", s.check.desc().into()),
                ("check_rise", RISE.to_string()),
                ("check_fall", FALL.to_string()),
                ("check_health", s.health.to_string()),
                ("addr", format!("127.0.0.1:{}", s.port)),
                ("mode", "tcp".into()),
                ("uweight", "1".into()),
            ]));
        }
        let usable = self.servers.iter().filter(|s| s.usable()).count();
        let last_change = self
            .servers
            .iter()
            .map(|s| s.last_change)
            .max()
            .unwrap_or(now);
        out.push_str(&row(&[
            ("pxname", be.clone()),
            ("svname", "BACKEND".into()),
            ("qcur", "0".into()),
            ("qmax", "0".into()),
            (
                "scur",
                self.servers.iter().map(|s| s.scur).sum::<u64>().to_string(),
            ),
            (
                "smax",
                self.servers
                    .iter()
                    .map(|s| s.smax)
                    .max()
                    .unwrap_or(0)
                    .to_string(),
            ),
            ("slim", "26212".into()),
            (
                "stot",
                self.servers.iter().map(|s| s.stot).sum::<u64>().to_string(),
            ),
            ("bin", "0".into()),
            ("bout", "0".into()),
            ("dreq", "0".into()),
            ("dresp", "0".into()),
            (
                "econ",
                self.servers.iter().map(|s| s.econ).sum::<u64>().to_string(),
            ),
            ("eresp", "0".into()),
            ("wretr", "0".into()),
            ("wredis", "0".into()),
            ("status", if usable > 0 { "UP" } else { "DOWN" }.into()),
            ("weight", usable.to_string()),
            ("act", usable.to_string()),
            ("bck", "0".into()),
            (
                "chkdown",
                self.servers
                    .iter()
                    .map(|s| s.chkdown)
                    .sum::<u64>()
                    .to_string(),
            ),
            ("lastchg", (now - last_change).as_secs().to_string()),
            ("downtime", "0".into()),
            ("pid", pid.clone()),
            ("iid", iid.clone()),
            ("sid", "0".into()),
            (
                "lbtot",
                self.servers.iter().map(|s| s.stot).sum::<u64>().to_string(),
            ),
            ("type", "1".into()),
            ("rate", "0".into()),
            ("rate_max", "0".into()),
            ("mode", "tcp".into()),
            ("algo", "roundrobin".into()),
            ("uweight", self.servers.len().to_string()),
        ]));
        out
    }

    /// Apply the admin states found in a server-state file. Unknown servers are ignored, as
    /// HAProxy ignores lines that no longer match its configuration.
    fn apply_state_file(&mut self, text: &str, now: Instant) {
        for line in text.lines().skip(1) {
            if line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 7 || f[1] != self.backend {
                continue;
            }
            let Ok(bits) = f[6].parse::<u32>() else {
                continue;
            };
            if let Some(s) = self.servers.iter_mut().find(|s| s.name == f[3]) {
                s.admin = AdminState::from_bits(bits);
                s.last_change = now;
            }
        }
    }

    /// The order in which to try servers for a new connection (round-robin over usable ones).
    fn pick_order(&mut self) -> Vec<usize> {
        let usable: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].usable())
            .collect();
        if usable.is_empty() {
            return usable;
        }
        let start = self.rr % usable.len();
        self.rr = self.rr.wrapping_add(1);
        usable[start..]
            .iter()
            .chain(&usable[..start])
            .copied()
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The running instance

/// One running instance: its state behind a lock, and where it persists.
struct Lb {
    info: WorldLb,
    state: Mutex<LbState>,
    /// The generation after each `@world reload`: health checks re-arm on it.
    reloads: watch::Sender<u64>,
}

impl Lb {
    fn lock(&self) -> std::sync::MutexGuard<'_, LbState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the runtime state file (atomically: temp file and rename).
    fn save(&self, state: &LbState) {
        let text = state.servers_state(None, Instant::now());
        let tmp = self.info.state_file.with_extension("state.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.info.state_file);
        }
    }

    /// Run a command line from the admin socket: persist what changed, re-arm checks after a
    /// reload.
    fn execute(&self, line: &str, interactive: bool) -> Executed {
        let mut st = self.lock();
        let ex = st.execute(line, interactive, Instant::now());
        if ex.changed {
            self.save(&st);
        }
        if ex.reloaded {
            self.reloads.send_replace(st.generation);
        }
        ex
    }
}

/// A proxied session: counted on the frontend and (once connected) on a server, by the
/// "process" (generation) that accepted it: after a reload the old process's sessions run on
/// uncounted, as they would in the old process that `haproxy -sf` leaves finishing them.
struct Session {
    lb: Arc<Lb>,
    server: Option<usize>,
    generation: u64,
}

impl Session {
    fn open(lb: Arc<Lb>) -> Session {
        let generation = {
            let mut st = lb.lock();
            st.fe_scur += 1;
            st.fe_smax = st.fe_smax.max(st.fe_scur);
            st.fe_stot += 1;
            st.generation
        };
        Session {
            lb,
            server: None,
            generation,
        }
    }

    fn assign(&mut self, idx: usize) {
        let mut st = self.lb.lock();
        if st.generation != self.generation {
            return;
        }
        let s = &mut st.servers[idx];
        s.scur += 1;
        s.smax = s.smax.max(s.scur);
        s.stot += 1;
        self.server = Some(idx);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut st = self.lb.lock();
        if st.generation != self.generation {
            return;
        }
        st.fe_scur = st.fe_scur.saturating_sub(1);
        if let Some(i) = self.server {
            st.servers[i].scur = st.servers[i].scur.saturating_sub(1);
        }
    }
}

/// Run `fut` until it ends or the world stops.
fn spawn_until_stop<F>(mut stop: watch::Receiver<bool>, fut: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            _ = fut => {}
        }
    })
}

/// The file whose existence makes an instance unreachable (`DIR/haproxy-K.down`).
pub fn down_file(lb: &WorldLb) -> std::path::PathBuf {
    lb.socket.with_extension("down")
}

/// How often an instance looks for its down file.
const DOWN_POLL: Duration = Duration::from_millis(100);

/// Start an instance: admin socket, frontend, health checks. Fails naming the socket or port
/// when either is taken.
pub async fn start_lb(
    lb: WorldLb,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let listeners = bind_listeners(&lb).await?;

    let now = Instant::now();
    let mut state = LbState::new(&lb, now);
    if let Ok(text) = std::fs::read_to_string(&lb.state_file) {
        state.apply_state_file(&text, now);
    }
    // A fresh world should not wait for `rise`: servers whose first check passes start UP.
    let first = futures::future::join_all(state.servers.iter().map(|s| http_check(s.port))).await;
    for (s, (status, ms)) in state.servers.iter_mut().zip(first) {
        s.check = status;
        s.check_duration_ms = ms;
        if status.passed() {
            s.health = RISE + FALL - 1;
            s.set_up(true, now);
        } else {
            s.chkfail += 1;
        }
    }
    let lb = Arc::new(Lb {
        info: lb,
        state: Mutex::new(state),
        reloads: watch::Sender::new(0),
    });
    lb.save(&lb.lock());

    let mut tasks = Vec::new();
    for idx in 0..lb.info.servers.len() {
        tasks.push(spawn_until_stop(stop.clone(), check_loop(lb.clone(), idx)));
    }
    tasks.push(spawn_until_stop(stop, listen_loop(lb, Some(listeners))));
    Ok(tasks)
}

/// The admin socket and the frontend of an instance.
struct Listeners {
    admin: UnixListener,
    frontend: TcpListener,
}

async fn bind_listeners(lb: &WorldLb) -> anyhow::Result<Listeners> {
    let admin = bind_admin_socket(&lb.socket)?;
    let frontend = TcpListener::bind(("127.0.0.1", lb.frontend_port))
        .await
        .with_context(|| {
            format!(
                "port 127.0.0.1:{} (frontend of {}) is busy (is this world already running?)",
                lb.frontend_port, lb.name
            )
        })?;
    Ok(Listeners { admin, frontend })
}

/// Serve the admin socket and the frontend, except while the down file exists: then nothing
/// listens (connections are refused and open ones dropped) until it is removed.
async fn listen_loop(lb: Arc<Lb>, mut listeners: Option<Listeners>) {
    let down = down_file(&lb.info);
    loop {
        if down.exists() {
            // Dropping the listeners (and the connection tasks below) is the instance going away.
            listeners = None;
            tokio::time::sleep(DOWN_POLL).await;
            continue;
        }
        let l = match listeners.take() {
            Some(l) => l,
            None => match bind_listeners(&lb.info).await {
                Ok(l) => l,
                Err(_) => {
                    // Someone else holds the port or socket; keep trying, as a restarting
                    // haproxy service would.
                    tokio::time::sleep(DOWN_POLL).await;
                    continue;
                }
            },
        };
        tokio::select! {
            _ = admin_loop(lb.clone(), &l.admin) => {}
            _ = frontend_loop(lb.clone(), &l.frontend) => {}
            _ = wait_until_exists(&down) => {}
        }
        listeners = Some(l);
    }
}

async fn wait_until_exists(path: &Path) {
    while !path.exists() {
        tokio::time::sleep(DOWN_POLL).await;
    }
}

fn bind_admin_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "admin socket {} is in use (is this world already running?)",
                path.display()
            );
        }
        // A stale socket from a world that did not shut down cleanly.
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind admin socket {}", path.display()))?;
    // `stats socket ... mode 600 level admin`
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

// ---------------------------------------------------------------------------------------------
// Health checks

/// `GET /v3` on the server, as `option httpchk` does. Returns the status and its duration (ms).
async fn http_check(port: u16) -> (CheckStatus, u64) {
    let started = Instant::now();
    let status = match tokio::time::timeout(CHECK_TIMEOUT, check_once(port)).await {
        Ok(s) => s,
        Err(_) => CheckStatus::L7Tout,
    };
    (status, started.elapsed().as_millis() as u64)
}

async fn check_once(port: u16) -> CheckStatus {
    let mut stream =
        match tokio::time::timeout(CHECK_TIMEOUT, TcpStream::connect(("127.0.0.1", port))).await {
            Err(_) => return CheckStatus::L4Tout,
            Ok(Err(_)) => return CheckStatus::L4Con,
            Ok(Ok(s)) => s,
        };
    let req = format!(
        "GET /v3 HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {HEALTH_CHECK_AGENT}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(req.as_bytes()).await.is_err() {
        return CheckStatus::L7Rsp;
    }
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let code = text
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (200..400).contains(&c) => CheckStatus::L7Ok(c),
        Some(c) => CheckStatus::L7Sts(c),
        None => CheckStatus::L7Rsp,
    }
}

async fn check_loop(lb: Arc<Lb>, idx: usize) {
    let port = lb.info.servers[idx].port;
    let mut reloads = lb.reloads.subscribe();
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first check ran at start
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = reloads.changed() => {
                if changed.is_err() {
                    return;
                }
                // A new process: its first check comes a full interval after it started.
                tick.reset();
                continue;
            }
        }
        let generation = {
            let st = lb.lock();
            if st.servers[idx].admin == AdminState::Maint {
                continue;
            }
            st.generation
        };
        let (status, ms) = http_check(port).await;
        let mut st = lb.lock();
        // A check that straddled a reload belongs to the old process.
        if st.generation == generation && st.servers[idx].record_check(status, ms, Instant::now()) {
            lb.save(&st);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime API

async fn admin_loop(lb: Arc<Lb>, listener: &UnixListener) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(cli_session(lb.clone(), stream));
    }
}

async fn cli_session(lb: Arc<Lb>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut interactive = false;
    loop {
        let mut line = String::new();
        // An idle client is dropped after a while, as `timeout cli` does.
        match tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
        let ex = lb.execute(&line, interactive);
        if write.write_all(ex.output.as_bytes()).await.is_err() || ex.quit {
            break;
        }
        interactive = ex.interactive;
        if !interactive {
            break;
        }
    }
    let _ = write.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Frontend

async fn frontend_loop(lb: Arc<Lb>, listener: &TcpListener) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(proxy(lb.clone(), client));
    }
}

/// Proxy one client connection to the next usable server; close it if there is none.
async fn proxy(lb: Arc<Lb>, mut client: TcpStream) {
    let mut session = Session::open(lb.clone());
    let order = lb.lock().pick_order();
    for idx in order {
        let port = lb.info.servers[idx].port;
        match tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(Ok(mut server)) => {
                session.assign(idx);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                return;
            }
            _ => lb.lock().servers[idx].econ += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::WorldServer;

    fn lb() -> WorldLb {
        WorldLb {
            name: "haproxy-1".into(),
            socket: "/nonexistent.sock".into(),
            state_file: "/nonexistent.state".into(),
            config: None,
            frontend_port: 1,
            frontend_url: "http://127.0.0.1:1".into(),
            backend: "keystone_api".into(),
            servers: (1..=3)
                .map(|i| WorldServer {
                    name: format!("ks{i}"),
                    node: format!("node{i}"),
                    port: 5000 + i,
                })
                .collect(),
        }
    }

    #[test]
    fn rise_and_fall_like_haproxy() {
        let now = Instant::now();
        let mut st = LbState::new(&lb(), now);
        let s = &mut st.servers[0];
        assert!(!s.record_check(CheckStatus::L7Ok(200), 1, now));
        assert!(
            s.record_check(CheckStatus::L7Ok(200), 1, now),
            "up after rise=2"
        );
        assert_eq!(s.health, 4);
        assert!(!s.record_check(CheckStatus::L4Con, 1, now));
        assert!(!s.record_check(CheckStatus::L4Con, 1, now));
        assert!(
            s.record_check(CheckStatus::L4Con, 1, now),
            "down after fall=3"
        );
        assert_eq!((s.up, s.health, s.chkdown), (false, 0, 1));
        // Leaving maintenance: up at once, but one failure takes it down again.
        s.set_admin(AdminState::Maint, now);
        assert!(
            !s.record_check(CheckStatus::L4Con, 1, now),
            "paused in maint"
        );
        s.set_admin(AdminState::Ready, now);
        assert!(s.up);
        assert!(s.record_check(CheckStatus::L4Con, 1, now));
        assert!(!s.up);
    }

    #[test]
    fn set_server_and_show_servers_state() {
        let now = Instant::now();
        let mut st = LbState::new(&lb(), now);
        for s in &mut st.servers {
            s.set_up(true, now);
            s.health = 4;
        }
        let ex = st.execute(
            "set server keystone_api/ks2 state maint; set server keystone_api/ks3 state drain\n",
            false,
            now,
        );
        assert_eq!(ex.output, "\n\n");
        assert!(ex.changed);
        let out = st
            .execute("show servers state keystone_api", false, now)
            .output;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "1");
        assert_eq!(lines[1], SERVERS_STATE_HEADER);
        let f: Vec<&str> = lines[3].split(' ').collect();
        assert_eq!(f.len(), 25);
        assert_eq!((f[3], f[5], f[6]), ("ks2", "0", "1"));
        let f: Vec<&str> = lines[4].split(' ').collect();
        assert_eq!((f[3], f[5], f[6]), ("ks3", "2", "8"));
        assert_eq!(
            st.execute("set server keystone_api/ks9 state ready", false, now)
                .output,
            "No such server.\n\n"
        );
        assert_eq!(
            st.execute("set server nope/ks1 state ready", false, now)
                .output,
            "No such backend.\n\n"
        );
        assert!(
            st.execute("frobnicate", false, now)
                .output
                .starts_with("Unknown command: 'frobnicate'")
        );
        assert!(
            st.execute("show servers state other", false, now)
                .output
                .starts_with("Can't find backend.")
        );

        // show stat: parse by column name.
        let csv = st.execute("show stat", false, now).output;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let rows: Vec<Vec<&str>> = lines
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').collect())
            .collect();
        let status: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r[col("svname")], r[col("status")]))
            .collect();
        assert_eq!(
            status,
            vec![
                ("FRONTEND", "OPEN"),
                ("ks1", "UP"),
                ("ks2", "MAINT"),
                ("ks3", "DRAIN"),
                ("BACKEND", "UP")
            ]
        );
        assert!(col("check_status") > col("status"));

        // Only ks1 is usable.
        assert_eq!(st.pick_order(), vec![0]);

        // State file round trip.
        let saved = st.servers_state(None, now);
        let mut fresh = LbState::new(&lb(), now);
        fresh.apply_state_file(&saved, now);
        let admin: Vec<AdminState> = fresh.servers.iter().map(|s| s.admin).collect();
        assert_eq!(
            admin,
            vec![AdminState::Ready, AdminState::Maint, AdminState::Drain]
        );
    }

    #[test]
    fn status_strings_like_haproxy_2_6() {
        let now = Instant::now();
        let mut st = LbState::new(&lb(), now);
        let s = &mut st.servers[0];
        assert_eq!(s.status(), "DOWN", "never checked: health 0");
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "DOWN 1/2", "on its way up: health/rise");
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "UP", "risen: full health at once");
        s.record_check(CheckStatus::L4Con, 1, now);
        assert_eq!(
            s.status(),
            "UP 2/3",
            "one failure: health - rise + 1 / fall"
        );
        s.record_check(CheckStatus::L4Con, 1, now);
        assert_eq!(s.status(), "UP 1/3");
        s.set_admin(AdminState::Drain, now);
        assert_eq!(s.status(), "DRAIN 1/3", "DRAIN takes the same suffix");
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "DRAIN");
        s.set_admin(AdminState::Maint, now);
        assert_eq!(s.status(), "MAINT");
        // `set server ... state ready` from maint: health = rise, up but unproven.
        s.set_admin(AdminState::Ready, now);
        assert_eq!((s.status().as_str(), s.health), ("UP 1/3", RISE));
        s.record_check(CheckStatus::L7Ok(200), 1, now);
        assert_eq!(s.status(), "UP", "one passed check proves it");
    }

    #[test]
    fn a_reload_loses_the_runtime_state() {
        let now = Instant::now();
        let mut st = LbState::new(&lb(), now);
        for s in &mut st.servers {
            s.set_up(true, now);
            s.health = RISE + FALL - 1;
            s.stot = 7;
        }
        st.fe_stot = 21;
        st.execute(
            "set server keystone_api/ks2 state maint; set server keystone_api/ks3 state drain",
            false,
            now,
        );
        let ex = st.execute("@world reload", false, now);
        assert!(ex.changed && ex.reloaded);
        assert_eq!(
            ex.output,
            "reloaded: runtime admin state lost: ks2 maint -> ready, ks3 drain -> ready\n\n"
        );
        for s in &st.servers {
            assert_eq!(s.admin, AdminState::Ready);
            assert_eq!((s.status().as_str(), s.health), ("UP 1/3", RISE));
            assert_eq!((s.stot, s.check), (0, CheckStatus::Init));
        }
        assert_eq!((st.fe_stot, st.generation), (0, 1));
        // The state file written after it says so too.
        let mut fresh = LbState::new(&lb(), now);
        fresh.apply_state_file(&st.servers_state(None, now), now);
        assert!(fresh.servers.iter().all(|s| s.admin == AdminState::Ready));
        // A server whose Keystone is down falls at its first failed check.
        assert!(st.servers[1].record_check(CheckStatus::L4Con, 1, now));
        assert_eq!(st.servers[1].status(), "DOWN");
        // The private command is not advertised.
        assert!(!st.execute("help", false, now).output.contains("@world"));
    }

    #[test]
    fn round_robin_and_interactive_mode() {
        let now = Instant::now();
        let mut st = LbState::new(&lb(), now);
        for s in &mut st.servers {
            s.set_up(true, now);
        }
        let firsts: Vec<usize> = (0..4).map(|_| st.pick_order()[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0]);
        let ex = st.execute("prompt", false, now);
        assert!(ex.interactive);
        assert_eq!(ex.output, "\n> ");
        assert!(st.execute("quit", true, now).quit);
    }
}
