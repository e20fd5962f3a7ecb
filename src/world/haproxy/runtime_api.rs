//! The runtime API of one instance: the commands the admin socket takes (`set server`, `show
//! servers state`, `show stat`, ..., and the private `@world reload`), the state they show and
//! change, the server-state file, and the round-robin order of new connections. No I/O here:
//! the sockets are [`super::admin`]'s and [`super::frontend`]'s.

use super::server::{AdminState, BE_ID, RISE, Server};
use super::stats::{self, Frontend};
use crate::world::info::WorldLb;
use std::fmt::Write as _;
use std::time::Instant;

/// The runtime state of one instance: what the runtime API shows and changes.
pub struct LbState {
    backend: String,
    pub(super) servers: Vec<Server>,
    pub(super) fe_scur: u64,
    pub(super) fe_smax: u64,
    pub(super) fe_stot: u64,
    rr: usize,
    started: Instant,
    /// Which "process" this is: bumped by a reload, so sessions of the old one stop counting.
    pub(super) generation: u64,
}

/// What executing a command line did besides printing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Executed {
    pub output: String,
    /// The commands that changed the runtime state (a server's admin state, a reload), in
    /// order: persist it, and log them. A `set server` to the state it is in is not one.
    pub changes: Vec<String>,
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

impl LbState {
    pub(super) fn new(lb: &WorldLb, now: Instant) -> LbState {
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
                    self.set_state_cmd(target, state, now, cmd, &mut ex.changes)
                }
                ["set", "server", _, "state", ..] => {
                    "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into()
                }
                ["set", "server", _, ..] => "'set server <srv>' only supports 'agent', 'health', 'state', 'weight', 'addr', 'fqdn', 'check-addr' and 'check-port'.\n".into(),
                ["set", "server"] => "Require 'backend/server'.\n".into(),
                ["disable", "server", target] => {
                    self.set_state_cmd(target, "maint", now, cmd, &mut ex.changes)
                }
                ["enable", "server", target] => {
                    self.set_state_cmd(target, "ready", now, cmd, &mut ex.changes)
                }
                ["show", "servers", "state"] => self.servers_state(None, now),
                ["show", "servers", "state", be, ..] => self.servers_state(Some(be), now),
                ["show", "stat", ..] => stats::stat_csv(
                    &self.backend,
                    &self.servers,
                    Frontend {
                        scur: self.fe_scur,
                        smax: self.fe_smax,
                        stot: self.fe_stot,
                    },
                    now,
                ),
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
                    ex.changes.push(cmd.trim().to_string());
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

    pub(super) fn set_state_cmd(
        &mut self,
        target: &str,
        state: &str,
        now: Instant,
        cmd: &str,
        changes: &mut Vec<String>,
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
        if server.set_admin(new, now) {
            changes.push(cmd.trim().to_string());
        }
        String::new()
    }

    /// What a reload without a server-state file does: the new process knows only the
    /// configuration. Every server is `ready` with health = rise (up, but one failed check takes
    /// it down: HAProxy's "start OK but check immediately"), counters start at zero. Returns one
    /// line naming every server whose admin state was lost.
    pub(super) fn reload(&mut self, now: Instant) -> String {
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
    pub(super) fn servers_state(&self, backend: Option<&str>, now: Instant) -> String {
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

    /// Apply the admin states found in a server-state file. Unknown servers are ignored, as
    /// HAProxy ignores lines that no longer match its configuration.
    pub(super) fn apply_state_file(&mut self, text: &str, now: Instant) {
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
    pub(super) fn pick_order(&mut self) -> Vec<usize> {
        let order = self.peek_order();
        if !order.is_empty() {
            self.advance_rr();
        }
        order
    }

    /// The order [`Self::pick_order`] would give, without taking the turn: a connection is
    /// given a server at accept, but its turn is taken by its first request.
    pub(super) fn peek_order(&self) -> Vec<usize> {
        let usable: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].usable())
            .collect();
        if usable.is_empty() {
            return usable;
        }
        let start = self.rr % usable.len();
        usable[start..]
            .iter()
            .chain(&usable[..start])
            .copied()
            .collect()
    }

    /// Take a round-robin turn.
    pub(super) fn advance_rr(&mut self) {
        self.rr = self.rr.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::super::server::{CheckStatus, FALL};
    use super::*;
    use crate::world::info::WorldServer;

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
        assert_eq!(
            ex.changes,
            [
                "set server keystone_api/ks2 state maint",
                "set server keystone_api/ks3 state drain"
            ]
        );
        // Asking again for the state a server is in changes nothing (the guard does it every
        // pass): nothing to persist or log.
        let again = st.execute(
            "show stat; set server keystone_api/ks2 state maint; set server keystone_api/ks3 state drain",
            false,
            now,
        );
        assert!(again.changes.is_empty(), "{:?}", again.changes);
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
        assert!(!ex.changes.is_empty() && ex.reloaded);
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
