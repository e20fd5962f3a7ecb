//! `show stat`: the CSV HAProxy 2.6 prints, with its header, for the frontend, every server and
//! the backend.

use super::server::{AdminState, BE_ID, FALL, RISE, Server};
use std::time::Instant;

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

/// The frontend's session counters.
pub(super) struct Frontend {
    pub(super) scur: u64,
    pub(super) smax: u64,
    pub(super) stot: u64,
}

/// `show stat`: CSV with HAProxy's header, FRONTEND, servers, BACKEND.
pub(super) fn stat_csv(backend: &str, servers: &[Server], fe: Frontend, now: Instant) -> String {
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
    let be = &backend.to_string();
    let pid = "1".to_string();
    let iid = BE_ID.to_string();
    out.push_str(&row(&[
        ("pxname", be.clone()),
        ("svname", "FRONTEND".into()),
        ("scur", fe.scur.to_string()),
        ("smax", fe.smax.to_string()),
        ("slim", "262120".into()),
        ("stot", fe.stot.to_string()),
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
        ("conn_tot", fe.stot.to_string()),
    ]));
    for s in servers {
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
    let usable = servers.iter().filter(|s| s.usable()).count();
    let last_change = servers.iter().map(|s| s.last_change).max().unwrap_or(now);
    out.push_str(&row(&[
        ("pxname", be.clone()),
        ("svname", "BACKEND".into()),
        ("qcur", "0".into()),
        ("qmax", "0".into()),
        (
            "scur",
            servers.iter().map(|s| s.scur).sum::<u64>().to_string(),
        ),
        (
            "smax",
            servers
                .iter()
                .map(|s| s.smax)
                .max()
                .unwrap_or(0)
                .to_string(),
        ),
        ("slim", "26212".into()),
        (
            "stot",
            servers.iter().map(|s| s.stot).sum::<u64>().to_string(),
        ),
        ("bin", "0".into()),
        ("bout", "0".into()),
        ("dreq", "0".into()),
        ("dresp", "0".into()),
        (
            "econ",
            servers.iter().map(|s| s.econ).sum::<u64>().to_string(),
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
            servers.iter().map(|s| s.chkdown).sum::<u64>().to_string(),
        ),
        ("lastchg", (now - last_change).as_secs().to_string()),
        ("downtime", "0".into()),
        ("pid", pid.clone()),
        ("iid", iid.clone()),
        ("sid", "0".into()),
        (
            "lbtot",
            servers.iter().map(|s| s.stot).sum::<u64>().to_string(),
        ),
        ("type", "1".into()),
        ("rate", "0".into()),
        ("rate_max", "0".into()),
        ("mode", "tcp".into()),
        ("algo", "roundrobin".into()),
        ("uweight", servers.len().to_string()),
    ]));
    out
}
