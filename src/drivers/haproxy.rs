//! HAProxy's runtime API: parse `show servers state` and `show stat`, build `set server`
//! commands. State is always read back from every instance, never assumed: a reload without a
//! server-state file silently undoes a drain.

use crate::engine::facts::{AdminState, LbServer};
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
        out.push(LbServer {
            lb: lb.to_string(),
            node: node.clone(),
            server: server.clone(),
            admin: admin_of(s.admin_bits),
            admin_bits: s.admin_bits,
            op_state: s.op_state,
            status: st.map(|r| r.status.clone()).unwrap_or_else(|| "?".into()),
            sessions: st.map(|r| r.scur).unwrap_or(0),
        });
    }
    Ok(out)
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
}
