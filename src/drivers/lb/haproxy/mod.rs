//! HAProxy's runtime API: parse `show servers state` and `show stat`, build `set server`
//! commands. State is always read back from every instance, never assumed: a reload without a
//! server-state file silently undoes a drain.

use crate::engine::facts::{AdminState, LbServer, ReloadFacts};
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

// ------------------------------------------------------------------------ configuration file

/// One line of an HAProxy configuration as HAProxy splits it: words separated by blanks, `#`
/// starts a comment, '…' quotes literally, "…" and `\` escape.
fn config_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('"'), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '#') => break,
            (None, ' ' | '\t' | '\r') => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Settings a proxy takes from a `defaults` section, or sets itself.
#[derive(Debug, Clone, Default)]
struct ProxySettings {
    /// `load-server-state-from-file`.
    load: Option<String>,
    /// `server-state-file-name`.
    file_name: Option<String>,
    /// `default-server ... check` / `no-check`.
    default_check: Option<bool>,
}

impl ProxySettings {
    fn apply(&mut self, w: &[String]) {
        match w[0].as_str() {
            "load-server-state-from-file" => self.load = w.get(1).cloned(),
            // Without an argument (or `use-backend-name`): the backend's own name.
            "server-state-file-name" => self.file_name = w.get(1).cloned(),
            "default-server" => {
                if let Some(c) = check_flag(&w[1..]) {
                    self.default_check = Some(c);
                }
            }
            _ => {}
        }
    }
}

/// The last `check` / `no-check` among a server line's parameters.
fn check_flag(params: &[String]) -> Option<bool> {
    params.iter().rev().find_map(|p| match p.as_str() {
        "check" => Some(true),
        "no-check" => Some(false),
        _ => None,
    })
}

/// Sections that end the one before them; only global, defaults, backend and listen matter here.
const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "log-forward",
    "fcgi-app",
    "crt-store",
    "traces",
    "acme",
];

/// `NAME [from DEFAULTS]` (for `defaults`, the name is optional too).
fn name_and_from(args: &[String]) -> (Option<String>, Option<String>) {
    match args {
        [f, d, ..] if f == "from" => (None, Some(d.clone())),
        [n, f, d, ..] if f == "from" => (Some(n.clone()), Some(d.clone())),
        [n, ..] => (Some(n.clone()), None),
        [] => (None, None),
    }
}

/// Read how `backend` (a `backend` or `listen` section) of this HAProxy configuration comes
/// through a reload, and whether its servers are health-checked. Pure: the caller reads the file.
///
/// What HAProxy does at startup (and so at every `haproxy -sf` reload): with
/// `load-server-state-from-file global` (in the backend or its `defaults`) it applies the
/// states found in the global `server-state-file`; with `local`, those in the backend's
/// `server-state-file-name` (the backend's own name when unset); relative names sit under the
/// global `server-state-base`. Nothing else keeps what was set over the admin socket, and the
/// file only holds what someone saved into it (`show servers state`) before the reload.
pub fn reload_facts(text: &str, backend: &str) -> ReloadFacts {
    let mut state_file: Option<String> = None;
    let mut state_base: Option<String> = None;
    // Named and unnamed defaults sections, in order, with what each sets (after its `from`).
    let mut defaults: Vec<(Option<String>, ProxySettings)> = Vec::new();
    // The backend asked for, once found: its settings and (server, checked) per server line.
    let mut found: Option<(ProxySettings, Vec<(String, bool)>)> = None;
    enum Sect {
        Global,
        Defaults,
        Target,
        Other,
    }
    let mut sect = Sect::Other;
    for line in text.lines() {
        let w = config_words(line);
        let Some(kw) = w.first() else { continue };
        if SECTIONS.contains(&kw.as_str()) {
            let (name, from) = name_and_from(&w[1..]);
            let inherited = |from: &Option<String>| -> ProxySettings {
                match from {
                    Some(f) => defaults
                        .iter()
                        .rev()
                        .find(|(n, _)| n.as_deref() == Some(f.as_str()))
                        .map(|(_, s)| s.clone())
                        .unwrap_or_default(),
                    None => defaults.last().map(|(_, s)| s.clone()).unwrap_or_default(),
                }
            };
            sect = match kw.as_str() {
                "global" => Sect::Global,
                "defaults" => {
                    // A defaults section starts afresh unless it names one to start from.
                    let s = if from.is_some() {
                        inherited(&from)
                    } else {
                        ProxySettings::default()
                    };
                    defaults.push((name, s));
                    Sect::Defaults
                }
                "backend" | "listen" if found.is_none() && name.as_deref() == Some(backend) => {
                    found = Some((inherited(&from), Vec::new()));
                    Sect::Target
                }
                _ => Sect::Other,
            };
            continue;
        }
        match sect {
            Sect::Global => match kw.as_str() {
                "server-state-file" => state_file = w.get(1).cloned(),
                "server-state-base" => state_base = w.get(1).cloned(),
                _ => {}
            },
            Sect::Defaults => {
                if let Some((_, s)) = defaults.last_mut() {
                    s.apply(&w);
                }
            }
            Sect::Target => {
                let Some((s, servers)) = found.as_mut() else {
                    continue;
                };
                match kw.as_str() {
                    "server" | "server-template" if w.len() >= 3 => {
                        // server NAME ADDR [params]; server-template PREFIX NUM FQDN [params]
                        let params = if kw == "server" {
                            &w[3..]
                        } else {
                            &w[w.len().min(4)..]
                        };
                        let checked = check_flag(params).or(s.default_check).unwrap_or(false);
                        servers.push((w[1].clone(), checked));
                    }
                    _ => s.apply(&w),
                }
            }
            Sect::Other => {}
        }
    }
    let Some((s, servers)) = found else {
        return ReloadFacts::unknown(
            None,
            format!("no `backend {backend}` or `listen {backend}` in the config"),
        );
    };
    let under_base = |f: &str| match &state_base {
        Some(b) if !f.starts_with('/') => format!("{}/{f}", b.trim_end_matches('/')),
        _ => f.to_string(),
    };
    let global_file = state_file.as_deref().map(under_base);
    let (file, survives, note) = match s.load.as_deref() {
        Some("global") => match &global_file {
            Some(f) => (
                Some(f.clone()),
                true,
                format!("server-state-file {f}, load global"),
            ),
            None => (
                None,
                false,
                "load-server-state-from-file global, but no server-state-file in global".into(),
            ),
        },
        Some("local") => {
            let name = s
                .file_name
                .as_deref()
                .filter(|n| *n != "use-backend-name")
                .unwrap_or(backend);
            let f = under_base(name);
            let note = format!("server-state-file-name {f}, load local");
            (Some(f), true, note)
        }
        Some("none") => (
            global_file.clone(),
            false,
            "load-server-state-from-file none".into(),
        ),
        Some(other) => (
            global_file.clone(),
            false,
            format!("load-server-state-from-file {other}: not global or local"),
        ),
        None => match &global_file {
            Some(f) => (
                Some(f.clone()),
                false,
                format!("server-state-file {f} but no load-server-state-from-file"),
            ),
            None => (None, false, "no server-state-file".into()),
        },
    };
    let unchecked: Vec<String> = servers
        .iter()
        .filter(|(_, c)| !c)
        .map(|(n, _)| n.clone())
        .collect();
    ReloadFacts {
        config: None,
        known: true,
        state_file: file,
        load_state: s.load,
        survives,
        checks: (!servers.is_empty()).then_some(unchecked.is_empty()),
        unchecked,
        note,
    }
}

#[cfg(test)]
mod tests {
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

    /// Debian bookworm's /etc/haproxy/haproxy.cfg as shipped, with a backend appended the way
    /// an operator would: no server-state-file anywhere.
    const DEBIAN: &str = "global
	log /dev/log	local0
	log /dev/log	local1 notice
	chroot /var/lib/haproxy
	stats socket /run/haproxy/admin.sock mode 660 level admin
	stats timeout 30s
	user haproxy
	group haproxy
	daemon

	# Default SSL material locations
	ca-base /etc/ssl/certs
	crt-base /etc/ssl/private

	# See: https://ssl-config.mozilla.org/#server=haproxy&server-version=2.0.3&config=intermediate
        ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256
        ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
        ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

defaults
	log	global
	mode	http
	option	httplog
	option	dontlognull
        timeout connect 5000
        timeout client  50000
        timeout server  50000
	errorfile 400 /etc/haproxy/errors/400.http
	errorfile 403 /etc/haproxy/errors/403.http
	errorfile 408 /etc/haproxy/errors/408.http
	errorfile 500 /etc/haproxy/errors/500.http
	errorfile 502 /etc/haproxy/errors/502.http
	errorfile 503 /etc/haproxy/errors/503.http
	errorfile 504 /etc/haproxy/errors/504.http

frontend keystone_public
	bind 10.0.0.10:5000
	default_backend keystone_api

backend keystone_api
	balance roundrobin
	option httpchk GET /v3
	server ctl1 10.0.0.11:5000 check inter 2s rise 2 fall 5
	server ctl2 10.0.0.12:5000 check inter 2s rise 2 fall 5
	server ctl3 10.0.0.13:5000 check inter 2s rise 2 fall 5
";

    /// tests/lab/lab.sh `write_haproxy 1` for a lab in /tmp/cutover-lab with 3 nodes.
    const LAB: &str = "global
    daemon
    maxconn 512
    pidfile /tmp/cutover-lab/haproxy-1.pid
    stats socket /tmp/cutover-lab/haproxy-1.sock mode 600 level admin
    server-state-file /tmp/cutover-lab/haproxy-1.state

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    load-server-state-from-file global

frontend keystone_front
    bind 127.0.0.1:16001
    default_backend keystone_api

backend keystone_api
    balance roundrobin
    option httpchk GET /v3
    server ks1 127.0.0.1:15001 check inter 1s fall 3 rise 2
    server ks2 127.0.0.1:15002 check inter 1s fall 3 rise 2
    server ks3 127.0.0.1:15003 check inter 1s fall 3 rise 2
";

    #[test]
    fn debians_config_loses_maint_on_reload() {
        let f = reload_facts(DEBIAN, "keystone_api");
        assert!(f.known);
        assert!(!f.survives);
        assert_eq!(f.state_file, None);
        assert_eq!(f.load_state, None);
        assert_eq!(f.note, "no server-state-file");
        assert_eq!(f.checks, Some(true));
        assert_eq!(
            f.reload_clause(),
            "a reload loses MAINT (no server-state-file)"
        );
        assert_eq!(f.check_clause(), None);
    }

    #[test]
    fn the_labs_config_keeps_maint_only_if_the_state_is_saved() {
        let f = reload_facts(LAB, "keystone_api");
        assert!(f.known && f.survives);
        assert_eq!(
            f.state_file.as_deref(),
            Some("/tmp/cutover-lab/haproxy-1.state")
        );
        assert_eq!(f.load_state.as_deref(), Some("global"));
        assert_eq!(f.checks, Some(true));
        assert_eq!(
            f.reload_clause(),
            "a reload keeps MAINT only if the state is saved before the reload \
             (server-state-file /tmp/cutover-lab/haproxy-1.state, load global)"
        );
    }

    #[test]
    fn a_state_file_without_a_load_directive_is_never_loaded() {
        let cfg = LAB.replace("    load-server-state-from-file global\n", "");
        let f = reload_facts(&cfg, "keystone_api");
        assert!(f.known && !f.survives);
        assert_eq!(
            f.state_file.as_deref(),
            Some("/tmp/cutover-lab/haproxy-1.state")
        );
        assert_eq!(f.load_state, None);
        assert_eq!(
            f.note,
            "server-state-file /tmp/cutover-lab/haproxy-1.state but no load-server-state-from-file"
        );
        // And the other way round: a load directive without a file to load.
        let cfg = LAB.replace(
            "    server-state-file /tmp/cutover-lab/haproxy-1.state\n",
            "",
        );
        let f = reload_facts(&cfg, "keystone_api");
        assert!(!f.survives);
        assert!(
            f.note.contains("no server-state-file in global"),
            "{}",
            f.note
        );
        // A backend can opt out of what its defaults load.
        let cfg = LAB.replace(
            "    balance roundrobin\n",
            "    balance roundrobin\n    load-server-state-from-file none\n",
        );
        let f = reload_facts(&cfg, "keystone_api");
        assert!(!f.survives);
        assert_eq!(f.load_state.as_deref(), Some("none"));
    }

    #[test]
    fn a_server_without_check_is_named() {
        let cfg = DEBIAN.replace(
            "server ctl2 10.0.0.12:5000 check inter 2s rise 2 fall 5",
            "server ctl2 10.0.0.12:5000 inter 2s   # check disabled while ctl2 is rebuilt",
        );
        let f = reload_facts(&cfg, "keystone_api");
        assert_eq!(f.checks, Some(false));
        assert_eq!(f.unchecked, vec!["ctl2".to_string()]);
        assert_eq!(
            f.check_clause().as_deref(),
            Some("no health check on ctl2: lb.ready waits for plain UP")
        );
        // `default-server check` in the defaults covers servers that do not say it themselves,
        // unless they say `no-check`.
        let cfg = "defaults\n  mode http\n  default-server check inter 1s\n\
                   backend b\n  server s1 10.0.0.1:80\n  server s2 10.0.0.2:80 no-check\n";
        let f = reload_facts(cfg, "b");
        assert_eq!(f.checks, Some(false));
        assert_eq!(f.unchecked, vec!["s2".to_string()]);
    }

    #[test]
    fn sections_named_defaults_base_and_local_files() {
        let cfg = r#"
# Managed by config management. Do not edit.
global
    stats socket ipv4@127.0.0.1:9999 level admin
    server-state-base /var/lib/haproxy/state/   # one file per backend
    server-state-file "global.state"

defaults plain
    mode http
    load-server-state-from-file global

defaults keystone from plain
    load-server-state-from-file local

defaults
    mode tcp

frontend keystone_api
    # a frontend of the same name is not the backend
    bind :5000
    load-server-state-from-file none

listen keystone_api from keystone
    bind :35357
    server-state-file-name keystone.state
    server ks1 10.0.0.1:5000 check
    server-template ks 2-3 keystone.internal:5000 check resolvers dns

backend other
    server o1 10.0.0.9:80
"#;
        let f = reload_facts(cfg, "keystone_api");
        assert!(f.known && f.survives, "{f:?}");
        assert_eq!(f.load_state.as_deref(), Some("local"));
        assert_eq!(
            f.state_file.as_deref(),
            Some("/var/lib/haproxy/state/keystone.state")
        );
        assert_eq!(f.checks, Some(true));
        // Without a file name, local uses the backend's name.
        let f = reload_facts(
            &cfg.replace("server-state-file-name keystone.state", ""),
            "keystone_api",
        );
        assert_eq!(
            f.state_file.as_deref(),
            Some("/var/lib/haproxy/state/keystone_api")
        );
        // The last (unnamed) defaults starts afresh: `other` loads nothing.
        let f = reload_facts(cfg, "other");
        assert!(f.known && !f.survives);
        assert_eq!(
            f.note,
            "server-state-file /var/lib/haproxy/state/global.state but no load-server-state-from-file"
        );
        assert_eq!(f.checks, Some(false));
        // A backend that is not there: nothing is known.
        let f = reload_facts(cfg, "nova_api");
        assert!(!f.known);
        assert!(f.note.contains("no `backend nova_api`"), "{}", f.note);
        assert!(
            f.reload_clause()
                .contains("cannot tell whether a reload keeps MAINT")
        );
    }

    #[test]
    fn config_words_follow_haproxys_quoting() {
        assert_eq!(
            config_words(r#"  server-state-file "/var/lib/ha proxy/st#ate" # comment"#),
            vec!["server-state-file", "/var/lib/ha proxy/st#ate"]
        );
        assert_eq!(config_words(r"a\ b 'c d' e#f"), vec!["a b", "c d", "e"]);
        assert!(config_words("    # only a comment").is_empty());
    }
}
