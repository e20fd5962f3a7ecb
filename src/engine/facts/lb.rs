//! What the load balancers show, in neutral words (in the pool, draining, out; up, down),
//! and how an instance would come through a reload. The drivers' `LoadBalancer` implementations
//! translate their product's terms into these.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A server's admin state on a load balancer, in neutral words: in the pool (`ready`),
/// draining (`drain`: no new sessions), out (`maint`). The serialized names are HAProxy's words,
/// which journals have always held.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// In the pool.
    #[default]
    Ready,
    /// Draining: existing sessions finish, no new ones.
    Drain,
    /// Out of the pool.
    Maint,
}

impl AdminState {
    /// The word for it: `ready`, `drain`, `maint`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// How a server is doing as the load balancer's health checks see it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OperState {
    /// Up, its health checks passed at full health.
    Up,
    /// Up, health not confirmed: no check has run since it was enabled, or the last one failed.
    UpUnconfirmed,
    /// Up, without health checks.
    NoCheck,
    /// Down: its health checks fail.
    Down,
    /// None of those (out, draining, stopping): the status text says which.
    #[default]
    Other,
}

impl OperState {
    /// Up, confirmed or not.
    pub fn is_up(self) -> bool {
        matches!(self, OperState::Up | OperState::UpUnconfirmed)
    }
}

/// One server on one load-balancer instance, as that instance reports it right now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "LbServerRecord")]
pub struct LbServer {
    pub lb: String,
    pub node: String,
    pub server: String,
    pub admin: AdminState,
    /// `admin` was set by an operator (cutover, or a person through the load balancer's API)
    /// and only an operator undoes it; false for a state inherited from the configuration, a
    /// tracked server or DNS resolution, which can clear by itself.
    pub held: bool,
    pub oper: OperState,
    /// The load balancer's own status text, for people: `UP`, `UP 1/3`, `MAINT`, `no check`.
    pub status: String,
    /// Current sessions.
    pub sessions: u64,
}

/// An `LbServer` as journals hold it: today's shape, or the one written before the load
/// balancer had a seam (issue 10), which held HAProxy's `srv_admin_state` bits and
/// `srv_op_state` instead of `held` and `oper`.
#[derive(Deserialize)]
struct LbServerRecord {
    lb: String,
    node: String,
    server: String,
    admin: AdminState,
    #[serde(default)]
    held: Option<bool>,
    #[serde(default)]
    oper: Option<OperState>,
    #[serde(default)]
    admin_bits: Option<u32>,
    status: String,
    sessions: u64,
}

impl From<LbServerRecord> for LbServer {
    fn from(r: LbServerRecord) -> LbServer {
        // Before issue 10 every load balancer was HAProxy: forced maintenance is bit 0x01,
        // forced drain 0x08, and the health is in `show stat`'s status words.
        let held = r.held.unwrap_or_else(|| {
            let bits = r.admin_bits.unwrap_or(0);
            match r.admin {
                AdminState::Maint => bits & 0x01 != 0,
                AdminState::Drain => bits & 0x08 != 0,
                AdminState::Ready => false,
            }
        });
        let oper = r.oper.unwrap_or_else(|| match r.status.trim() {
            "UP" => OperState::Up,
            "no check" => OperState::NoCheck,
            s if s.starts_with("UP") => OperState::UpUnconfirmed,
            s if s.starts_with("DOWN") => OperState::Down,
            _ => OperState::Other,
        });
        LbServer {
            lb: r.lb,
            node: r.node,
            server: r.server,
            admin: r.admin,
            held,
            oper,
            status: r.status,
            sessions: r.sessions,
        }
    }
}

impl LbServer {
    /// Taking traffic: not in maintenance or drain, and its health check passes.
    pub fn in_pool(&self) -> bool {
        self.admin == AdminState::Ready && self.oper.is_up()
    }
    /// Taking traffic, or about to: admin `ready`, or a status that reads UP (the node being
    /// re-added counts too). What the mixed-pool count and the pool guard look for.
    pub fn takes_traffic(&self) -> bool {
        self.admin == AdminState::Ready || self.oper.is_up()
    }
    /// In the pool with a health check passed since it was last enabled (or without health
    /// checks). HAProxy shows `UP 1/3` right after `set server ... state ready` (health = rise:
    /// no check has run, it only counts as up); one passed check takes it to full health, `UP`.
    /// `UP 2/3` is a server whose last check failed.
    pub fn checked_up(&self) -> bool {
        self.admin == AdminState::Ready && matches!(self.oper, OperState::Up | OperState::NoCheck)
    }
    /// What the instance shows, for messages: `UP 1/3 (admin ready)`.
    pub fn seen(&self) -> String {
        format!("{} (admin {})", self.status, self.admin.as_str())
    }
    /// Out of the pool in a way only an operator undoes: held out. Maintenance inherited from
    /// the configuration, a tracked server or DNS can clear by itself mid-flip.
    pub fn out_of_pool(&self) -> bool {
        self.admin == AdminState::Maint && self.held
    }
}

/// How one HAProxy instance would come through a reload (`haproxy -sf OLDPID`), as its
/// configuration file tells: whether MAINT and DRAIN set over the admin socket survive it, and
/// whether every server of the backend is health-checked. Information for the operator, not a
/// gate: the pool guard reverts a reload's breach while cutover runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReloadFacts {
    /// The configuration file, as the inventory names it (None: not named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The file was read and the backend found in it; when false nothing below is known and
    /// `note` says why.
    pub known: bool,
    /// The file a reload would load the state from (`server-state-file`, after
    /// `server-state-base`; for `local`, `server-state-file-name` or the backend's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
    /// `load-server-state-from-file` in effect for the backend: global, local or none (None: not
    /// set, which HAProxy treats as none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_state: Option<String>,
    /// The configuration loads a state file on reload: MAINT survives, if (and only if) someone
    /// saved the state (`show servers state > FILE`) right before the reload. HAProxy never
    /// writes that file itself.
    pub survives: bool,
    /// Every server line of the backend has `check` (None: not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<bool>,
    /// Servers of the backend without a health check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
    /// Why: `no server-state-file`, `server-state-file X, load global`, `config not named in
    /// the inventory`, ...
    pub note: String,
}

/// What a reload of one instance does to a drained server, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadVerdict {
    /// Nothing loads a state file: a reload puts every drained server back.
    Loses,
    /// A state file is loaded: MAINT survives if the state was saved just before the reload.
    KeepsIfSaved,
    /// The configuration was not read.
    Unknown,
}

impl ReloadFacts {
    /// Nothing is known, and why (the config is not named, cannot be read, has no such backend).
    pub fn unknown(config: Option<String>, why: impl Into<String>) -> ReloadFacts {
        ReloadFacts {
            config,
            note: why.into(),
            ..Default::default()
        }
    }

    pub fn verdict(&self) -> ReloadVerdict {
        match (self.known, self.survives) {
            (false, _) => ReloadVerdict::Unknown,
            (true, false) => ReloadVerdict::Loses,
            (true, true) => ReloadVerdict::KeepsIfSaved,
        }
    }

    /// What a reload does, without the instance's name: `a reload loses MAINT (no
    /// server-state-file)`.
    pub fn reload_clause(&self) -> String {
        match self.verdict() {
            ReloadVerdict::Loses => format!("a reload loses MAINT ({})", self.note),
            ReloadVerdict::KeepsIfSaved => format!(
                "a reload keeps MAINT only if the state is saved before the reload ({})",
                self.note
            ),
            ReloadVerdict::Unknown => format!(
                "{}: cannot tell whether a reload keeps MAINT; the pool guard covers it while cutover runs",
                self.note
            ),
        }
    }

    /// Servers without a health check, for the operator: `no health check on ks2: lb.ready
    /// waits for plain UP`.
    pub fn check_clause(&self) -> Option<String> {
        if self.checks != Some(false) {
            return None;
        }
        let on = if self.unchecked.is_empty() {
            String::new()
        } else {
            format!(" on {}", self.unchecked.join(", "))
        };
        Some(format!("no health check{on}: lb.ready waits for plain UP"))
    }

    /// Everything worth saying about one instance, for a summary line.
    pub fn clauses(&self) -> String {
        match self.check_clause() {
            Some(c) => format!("{}; {c}", self.reload_clause()),
            None => self.reload_clause(),
        }
    }
}

/// One clause per group of instances that read the same, for a probe's summary:
/// `haproxy-1, haproxy-2: a reload loses MAINT (no server-state-file)`.
pub fn reload_summary(facts: &BTreeMap<String, ReloadFacts>) -> Vec<String> {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for (lb, f) in facts {
        let c = f.clauses();
        match groups.iter_mut().find(|(g, _)| *g == c) {
            Some((_, lbs)) => lbs.push(lb),
            None => groups.push((c, vec![lb])),
        }
    }
    groups
        .into_iter()
        .map(|(c, lbs)| format!("{}: {c}", lbs.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every load-balancer row of a journal written before the seam (HAProxy's bits), found
    /// anywhere in its records.
    fn legacy_rows() -> Vec<serde_json::Value> {
        fn walk(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
            match v {
                serde_json::Value::Object(m) if m.contains_key("admin_bits") => out.push(v.clone()),
                serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        let text = include_str!("../../../tests/fixtures/journals/main-2edb051/done.jsonl");
        let mut out = Vec::new();
        for line in text.lines() {
            walk(&serde_json::from_str(line).unwrap(), &mut out);
        }
        out
    }

    #[test]
    fn a_journaled_haproxy_row_reads_as_the_neutral_state() {
        let rows = legacy_rows();
        assert!(rows.len() > 100, "{}", rows.len());
        let mut held_out = 0;
        for raw in &rows {
            let r: LbServer = serde_json::from_value(raw.clone()).unwrap();
            let bits = raw["admin_bits"].as_u64().unwrap();
            assert_eq!(
                r.held,
                r.admin == AdminState::Maint && bits & 0x01 != 0,
                "{raw}"
            );
            match raw["status"].as_str().unwrap() {
                "UP" => {
                    assert_eq!(r.oper, OperState::Up);
                    assert!(r.in_pool() && r.checked_up() && !r.out_of_pool(), "{raw}");
                }
                "MAINT" => {
                    assert_eq!(r.oper, OperState::Other);
                    assert!(!r.in_pool() && !r.takes_traffic(), "{raw}");
                }
                other => panic!("a status the fixture does not hold: {other}"),
            }
            held_out += usize::from(r.out_of_pool());
            // Written again, it is today's shape, and reads back the same.
            let again = serde_json::to_value(&r).unwrap();
            assert!(again.get("admin_bits").is_none() && again.get("held").is_some());
            assert_eq!(serde_json::from_value::<LbServer>(again).unwrap(), r);
        }
        assert_eq!(held_out, 30, "the fixture's drained rows are held out");
    }

    #[test]
    fn a_legacy_row_in_inherited_maintenance_is_not_held_out() {
        let r: LbServer = serde_json::from_str(
            r#"{"admin":"maint","admin_bits":4,"lb":"h","node":"n","op_state":0,"server":"s","sessions":0,"status":"MAINT (resolution)"}"#,
        )
        .unwrap();
        assert!(!r.held && !r.out_of_pool());
        let r: LbServer = serde_json::from_str(
            r#"{"admin":"ready","admin_bits":0,"lb":"h","node":"n","op_state":2,"server":"s","sessions":3,"status":"UP 2/3"}"#,
        )
        .unwrap();
        assert_eq!(r.oper, OperState::UpUnconfirmed);
        assert!(r.in_pool() && !r.checked_up());
    }
}
