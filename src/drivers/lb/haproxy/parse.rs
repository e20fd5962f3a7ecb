//! HAProxy's runtime API as text: parse `show servers state` and `show stat`, build `set server`
//! commands. State is always read back from every instance, never assumed: a reload without a
//! server-state file silently undoes a drain.

use crate::engine::facts::{AdminState, LbServer, OperState};
use std::collections::BTreeMap;

/// srv_admin_state bits that mean maintenance (forced, inherited, config, resolution, health).
pub const MAINT_BITS: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
/// Forced or inherited drain.
pub const DRAIN_BITS: u32 = 0x08 | 0x10;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    pub backend: String,
    pub server: String,
    pub op_state: u8,
    pub admin_bits: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatRow {
    pub status: String,
    pub scur: u64,
}

/// Parse `show servers state [BACKEND]` (format version 1; columns found by header name).
pub fn parse_servers_state(text: &str) -> Result<Vec<ServerState>, String> {
    let mut header: Option<Vec<&str>> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(h) = t.strip_prefix('#') {
            header = Some(h.split_whitespace().collect());
            continue;
        }
        let Some(h) = &header else {
            // The version line comes before the header.
            if t.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            return Err(format!("unexpected answer to `show servers state`: {t}"));
        };
        let col = |name: &str| h.iter().position(|c| *c == name);
        let f: Vec<&str> = t.split_whitespace().collect();
        let get = |name: &str| -> Result<&str, String> {
            col(name)
                .and_then(|i| f.get(i).copied())
                .ok_or_else(|| format!("`show servers state` lacks column {name}"))
        };
        out.push(ServerState {
            backend: get("be_name")?.to_string(),
            server: get("srv_name")?.to_string(),
            op_state: get("srv_op_state")?
                .parse()
                .map_err(|_| "bad srv_op_state".to_string())?,
            admin_bits: get("srv_admin_state")?
                .parse()
                .map_err(|_| "bad srv_admin_state".to_string())?,
        });
    }
    if header.is_none() {
        return Err(format!(
            "unexpected answer to `show servers state`: {}",
            text.lines().next().unwrap_or("(empty)")
        ));
    }
    Ok(out)
}

/// Parse `show stat` CSV into (backend, server) → row, by column name.
pub fn parse_stat(text: &str) -> Result<BTreeMap<(String, String), StatRow>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| {
            format!(
                "unexpected answer to `show stat`: {}",
                text.lines().next().unwrap_or("(empty)")
            )
        })?;
    let cols: Vec<&str> = header.split(',').collect();
    let idx = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("`show stat` lacks column {name}"))
    };
    let (px, sv, sc, st) = (idx("pxname")?, idx("svname")?, idx("scur")?, idx("status")?);
    let mut out = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let (Some(p), Some(s)) = (f.get(px), f.get(sv)) else {
            continue;
        };
        if *s == "FRONTEND" || *s == "BACKEND" {
            continue;
        }
        out.insert(
            (p.to_string(), s.to_string()),
            StatRow {
                status: f.get(st).unwrap_or(&"").to_string(),
                scur: f.get(sc).and_then(|v| v.parse().ok()).unwrap_or(0),
            },
        );
    }
    Ok(out)
}

pub fn admin_of(bits: u32) -> AdminState {
    if bits & MAINT_BITS != 0 {
        AdminState::Maint
    } else if bits & DRAIN_BITS != 0 {
        AdminState::Drain
    } else {
        AdminState::Ready
    }
}

/// Forced maintenance: set over the runtime API (or the CLI), undone only that way.
pub const FORCED_MAINT: u32 = 0x01;
/// Forced drain.
pub const FORCED_DRAIN: u32 = 0x08;

/// Whether an operator holds the admin state the bits say (see `LbServer::held`).
pub fn held_of(bits: u32) -> bool {
    match admin_of(bits) {
        AdminState::Maint => bits & FORCED_MAINT != 0,
        AdminState::Drain => bits & FORCED_DRAIN != 0,
        AdminState::Ready => false,
    }
}

/// The health `show stat`'s status words tell: `UP` is full health; `UP 1/3` (no check ran
/// since `ready`) and `UP 2/3` (the last check failed) are up, unconfirmed; `no check`.
pub fn oper_of(status: &str) -> OperState {
    match status.trim() {
        "UP" => OperState::Up,
        "no check" => OperState::NoCheck,
        s if s.starts_with("UP") => OperState::UpUnconfirmed,
        s if s.starts_with("DOWN") => OperState::Down,
        _ => OperState::Other,
    }
}

/// Combine both answers into one row per (node, server) for one instance.
pub fn rows(
    lb: &str,
    backend: &str,
    servers: &[(String, String)],
    state: &[ServerState],
    stat: &BTreeMap<(String, String), StatRow>,
) -> Result<Vec<LbServer>, String> {
    let mut out = Vec::new();
    for (node, server) in servers {
        let s = state
            .iter()
            .find(|s| s.backend == backend && &s.server == server)
            .ok_or_else(|| {
                format!("{lb}: backend {backend} has no server {server} (for {node})")
            })?;
        let st = stat.get(&(backend.to_string(), server.clone()));
        let status = st.map(|r| r.status.clone()).unwrap_or_else(|| "?".into());
        out.push(LbServer {
            lb: lb.to_string(),
            node: node.clone(),
            server: server.clone(),
            admin: admin_of(s.admin_bits),
            held: held_of(s.admin_bits),
            oper: oper_of(&status),
            status,
            sessions: st.map(|r| r.scur).unwrap_or(0),
        });
    }
    Ok(out)
}

/// The answer to several `;`-separated runtime-API commands (one request, e.g. `show servers
/// state B; show stat`, or the guard's `show stat; set server ...; show servers state B`), in
/// its parts. Each command's answer ends with an empty line; their order does not matter.
#[derive(Debug, PartialEq)]
pub struct Answer<'a> {
    /// The `show servers state` block, from its version line.
    pub state: &'a str,
    /// The `show stat` CSV, from its `# pxname` header.
    pub stat: &'a str,
    /// Whatever else was said (a `set`'s complaint), trimmed: empty when every command took.
    pub other: String,
}

pub fn split_answer(answer: &str) -> Answer<'_> {
    // A block runs from its start to the empty line that ends its answer.
    let block = |start: usize| {
        let end = answer[start..]
            .find("\n\n")
            .map(|i| start + i + 1)
            .unwrap_or(answer.len());
        start..end
    };
    let stat = answer.find("# pxname").map(block).unwrap_or(0..0);
    let state = answer
        .find("# be_id")
        .map(|header| {
            // The version line (digits only) right before the header belongs to it.
            let line = answer[..header]
                .trim_end_matches('\n')
                .rfind('\n')
                .map_or(0, |j| j + 1);
            let version = answer[line..header].trim();
            let digits = !version.is_empty() && version.chars().all(|c| c.is_ascii_digit());
            block(if digits { line } else { header })
        })
        .unwrap_or(0..0);
    let other: String = answer
        .char_indices()
        .filter(|(i, _)| !stat.contains(i) && !state.contains(i))
        .map(|(_, c)| c)
        .collect();
    Answer {
        state: &answer[state],
        stat: &answer[stat],
        other: other.trim().to_string(),
    }
}

pub fn set_state(backend: &str, server: &str, state: &str) -> String {
    format!("set server {backend}/{server} state {state}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 keystone_api 1 ks1 127.0.0.1 2 0 1 1 12 6 3 4 6 0 0 0 - 15001 - 0 0 - - 0\n3 keystone_api 2 ks2 127.0.0.1 2 1 1 1 3 6 3 4 6 0 0 0 - 15002 - 0 0 - - 0\n3 keystone_api 3 ks3 127.0.0.1 0 8 1 1 3 6 3 4 6 0 0 0 - 15003 - 0 0 - - 0\n";
    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\nfront,FRONTEND,,,3,5,,,,,,,,,,,,OPEN,\nkeystone_api,ks1,0,0,2,3,,10,,,,,,,,,,UP,1\nkeystone_api,ks2,0,0,0,1,,4,,,,,,,,,,MAINT,1\nkeystone_api,ks3,0,0,1,1,,4,,,,,,,,,,DRAIN 1/2,1\nkeystone_api,BACKEND,0,0,3,,,,,,,,,,,,,UP,3\n";

    #[test]
    fn parses_both_answers_by_column_name() {
        let st = parse_servers_state(STATE).unwrap();
        assert_eq!(st.len(), 3);
        let stat = parse_stat(STAT).unwrap();
        let servers: Vec<(String, String)> = (1..=3)
            .map(|i| (format!("n{i}"), format!("ks{i}")))
            .collect();
        let r = rows("lb1", "keystone_api", &servers, &st, &stat).unwrap();
        assert_eq!(r[0].admin, AdminState::Ready);
        assert!(r[0].in_pool());
        assert_eq!(r[0].sessions, 2);
        assert_eq!(r[1].admin, AdminState::Maint);
        assert!(r[1].out_of_pool());
        assert_eq!(r[2].admin, AdminState::Drain);
        assert_eq!(r[2].status, "DRAIN 1/2");
        assert!(!r[2].in_pool());
    }

    #[test]
    fn unknown_server_and_garbage_are_errors() {
        let st = parse_servers_state(STATE).unwrap();
        let stat = parse_stat(STAT).unwrap();
        let e = rows(
            "lb1",
            "keystone_api",
            &[("n9".into(), "ks9".into())],
            &st,
            &stat,
        )
        .unwrap_err();
        assert!(e.contains("no server ks9"), "{e}");
        assert!(parse_servers_state("Unknown command.\n").is_err());
        assert!(parse_stat("Permission denied\n").is_err());
    }

    #[test]
    fn a_combined_answer_splits_into_state_stat_and_what_else_was_said() {
        let state = "1\n# be_id be_name srv_id srv_name\n3 keystone_api 1 ks1\n";
        let stat = "# pxname,svname,status\nkeystone_api,ks1,MAINT\n";
        // A read: `show servers state B; show stat`, as HAProxy answers it.
        let read = format!("{state}\n{stat}\n");
        let a = super::split_answer(&read);
        assert_eq!((a.state, a.stat, a.other.as_str()), (state, stat, ""));
        // After a `set` that took (its answer: the empty line alone).
        let took = format!("\n{state}\n{stat}\n");
        let a = super::split_answer(&took);
        assert_eq!((a.state, a.stat, a.other.as_str()), (state, stat, ""));
        let complained = format!("No such server.\n\n{state}\n{stat}\n");
        let a = super::split_answer(&complained);
        assert_eq!(
            (a.state, a.stat, a.other.as_str()),
            (state, stat, "No such server.")
        );
        // The guard's order: `show stat; set ...; show servers state B`.
        let guard_stat = "# pxname,svname,status\nkeystone_api,ks1,UP 1/3\n";
        let guard = format!("{guard_stat}\n\n{state}\n");
        let a = super::split_answer(&guard);
        assert_eq!((a.stat, a.other.as_str(), a.state), (guard_stat, "", state));
        let refused = format!("{guard_stat}\nNo such server.\n\n{state}\n");
        let a = super::split_answer(&refused);
        assert_eq!(
            (a.stat, a.other.as_str(), a.state.lines().next()),
            (guard_stat, "No such server.", Some("1"))
        );
    }
}
