//! What an HAProxy configuration file says about a reload: whether MAINT and DRAIN set over
//! the admin socket survive it.

use crate::engine::facts::ReloadFacts;

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
    use super::*;

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
