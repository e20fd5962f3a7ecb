//! The Keystone service: restart, and what it said when a restart failed.

pub mod collect;
pub mod log;

use super::{DResult, Done, Fleet};
use crate::drivers::keystone::api;
use crate::engine::facts::*;
use crate::transport::{ExecOpts, shell_quote};

use crate::engine::action::Service;
use std::time::{Duration, Instant};

impl Fleet {
    pub(in crate::drivers) async fn run_service(&self, spec: &Service) -> DResult<Done> {
        match spec {
            Service::Restart { node, timeout_secs } => self.restart(node, *timeout_secs).await,
            Service::Shell {
                node,
                command,
                expect_status,
                sudo,
                timeout_secs,
            } => {
                let n = self.node(node)?;
                let t = self.node_transport(node).await?;
                let out = t
                    .exec(
                        command,
                        ExecOpts {
                            stdin: None,
                            timeout: Duration::from_secs(*timeout_secs),
                            sudo: *sudo || n.sudo,
                        },
                    )
                    .await?;
                if out.status == *expect_status {
                    Ok(Done::ok(
                        format!("{node}: exit {}", out.status),
                        Observation::default(),
                    ))
                } else {
                    Ok(Done::fail(
                        format!(
                            "{node}: {} (expected exit {expect_status}): {}",
                            out.exit_text(),
                            out.last_line()
                        ),
                        "read the command's output on the node, fix, then resume",
                    ))
                }
            }
        }
    }

    pub(in crate::drivers) async fn restart(&self, node: &str, timeout_secs: u64) -> DResult<Done> {
        let n = self.node(node)?;
        let mark = self.restart_mark(node).await;
        let out = self
            .exec(node, &n.restart, Duration::from_secs(timeout_secs.max(10)))
            .await?;
        if out.status != 0 {
            let ev = self.log_tail(node, &mark, &out.stderr_str()).await;
            let why = ev.reason().unwrap_or_else(|| out.last_line());
            return Ok(Done::fail(
                format!(
                    "{node}: `{}` {}: {why}{}",
                    n.restart,
                    out.exit_text(),
                    ev.render()
                ),
                format!(
                    "{node} is out of the pool; fix what the service reports ({}), then resume",
                    self.where_it_logs(node)
                ),
            ));
        }
        let start = Instant::now();
        let deadline = start + Duration::from_secs(timeout_secs);
        loop {
            let (up, detail) = api::service_up(&self.http, &n.keystone_url).await;
            if up {
                let mut obs = Observation::default();
                obs.restarted.push(node.to_string());
                return Ok(Done::ok(
                    format!(
                        "{node}: restarted, GET /v3 answers after {:.1}s",
                        start.elapsed().as_secs_f64()
                    ),
                    obs,
                ));
            }
            if Instant::now() >= deadline {
                let ev = self.log_tail(node, &mark, &out.stderr_str()).await;
                let why = ev.reason().map(|r| format!(": {r}")).unwrap_or_default();
                return Ok(Done::fail(
                    format!(
                        "{node}: keystone did not answer GET /v3 within {timeout_secs}s after restart ({detail}){why}{}",
                        ev.render()
                    ),
                    format!(
                        "{node} is out of the pool, nothing else changed. Fix the cause ({}), resume to retry; or roll it back: set [token] provider back and restart it",
                        self.where_it_logs(node)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Where `node`'s Keystone says why it failed, for a failure's next step.
    pub(in crate::drivers) fn where_it_logs(&self, node: &str) -> String {
        let Ok(n) = self.node(node) else {
            return format!("the keystone log on {node}");
        };
        let unit = n.unit.clone().or_else(|| collect::unit_of(&n.restart));
        match (&n.log_file, unit) {
            (Some(log), Some(u)) => format!("{} and journalctl -u {u} on {node}", log.display()),
            (Some(log), None) => format!("{} on {node}", log.display()),
            (None, Some(u)) => format!("journalctl -u {u} on {node}"),
            (None, None) => format!(
                "the keystone log on {node}; set log_file: (and unit: under systemd) for {node} in the inventory and cutover shows it"
            ),
        }
    }

    /// The node's clock and the size of its log just before a restart: what the service writes
    /// after this is what the restart caused. Unknown parts stay None (the evidence then says it
    /// shows the log's last lines).
    pub(in crate::drivers) async fn restart_mark(&self, node: &str) -> collect::RestartMark {
        let Ok(n) = self.node(node) else {
            return collect::RestartMark::default();
        };
        let cmd = match &n.log_file {
            Some(log) => {
                let l = shell_quote(&log.display().to_string());
                format!(
                    "date +%s; if [ ! -e {l} ]; then echo 0; else wc -c < {l} 2>/dev/null || echo -; fi"
                )
            }
            None => "date +%s".to_string(),
        };
        match self.exec(node, &cmd, Duration::from_secs(10)).await {
            Ok(o) if o.status == 0 => {
                let text = o.stdout_str();
                let mut it = text.split_whitespace();
                collect::RestartMark {
                    epoch: it.next().and_then(|v| v.parse().ok()),
                    log_size: it.next().and_then(|v| v.parse().ok()),
                }
            }
            _ => collect::RestartMark::default(),
        }
    }

    /// What the service said about a failed restart: the restart's `stderr`, `journalctl -u
    /// UNIT` since the restart (where systemd runs it) and the log file's lines written since
    /// the restart, each picked down to its errors by `service_log`, masked and bounded. One
    /// round trip; a node that cannot be read leaves only stderr.
    pub(in crate::drivers) async fn log_tail(
        &self,
        node: &str,
        mark: &collect::RestartMark,
        stderr: &str,
    ) -> log::Evidence {
        let mut ev = log::Evidence {
            stderr: log::pick(stderr, log::MAX_LINES),
            ..Default::default()
        };
        let Ok(n) = self.node(node) else {
            return ev;
        };
        let unit = n.unit.clone().or_else(|| collect::unit_of(&n.restart));
        let sec = collect::SECTION;
        let mut script = String::new();
        if let Some(u) = &unit {
            let since = match mark.epoch {
                Some(e) => format!("--since @{e} -n 400"),
                None => "-n 100".to_string(),
            };
            script.push_str(&format!(
                "if command -v journalctl >/dev/null 2>&1 && command -v systemctl >/dev/null 2>&1; then echo '{sec} journal'; journalctl --no-pager -q -o cat -u {} {since} 2>&1 | tail -n 400; fi\n",
                shell_quote(u)
            ));
        }
        if let Some(log) = &n.log_file {
            let l = shell_quote(&log.display().to_string());
            match mark.log_size {
                Some(off) => script.push_str(&format!(
                    "if [ ! -f {l} ]; then echo '{sec} log missing'; elif [ ! -r {l} ]; then echo '{sec} log unreadable'; elif [ \"$(wc -c < {l})\" -ge {off} ]; then echo '{sec} log since'; tail -c +{} -- {l} | tail -n 400; else echo '{sec} log rotated'; tail -n 400 -- {l}; fi\n",
                    off + 1
                )),
                None => script.push_str(&format!(
                    "if [ ! -f {l} ]; then echo '{sec} log missing'; elif [ ! -r {l} ]; then echo '{sec} log unreadable'; else echo '{sec} log tail'; tail -n 200 -- {l}; fi\n"
                )),
            }
        }
        if script.is_empty() {
            return ev;
        }
        let Ok(out) = self.exec(node, &script, Duration::from_secs(20)).await else {
            return ev;
        };
        let at = mark
            .epoch
            .and_then(|e| chrono::DateTime::from_timestamp(e, 0))
            .map(|t| t.format("%H:%M:%S UTC").to_string());
        for (name, how, text) in collect::sections(&out.stdout_str()) {
            let mut picked = log::pick(&text, log::MAX_LINES);
            match name.as_str() {
                "journal" => {
                    let u = unit.clone().unwrap_or_default();
                    let head = match &at {
                        Some(t) => format!("journalctl -u {u} since {t}"),
                        None => format!("journalctl -u {u} (its last lines)"),
                    };
                    if picked.is_empty() {
                        picked.lines.push("(nothing since the restart)".into());
                    }
                    ev.journal = Some((head, picked));
                }
                "log" => {
                    let path = crate::sanitize::for_terminal(
                        &n.log_file
                            .as_ref()
                            .map(|l| l.display().to_string())
                            .unwrap_or_default(),
                    )
                    .into_owned();
                    let head = match how.as_str() {
                        "since" => format!("{path} since the restart"),
                        "rotated" => format!("{path} (rotated since the restart: its last lines)"),
                        "missing" | "unreadable" => path.clone(),
                        _ => format!("{path} (its last lines)"),
                    };
                    if how == "missing" {
                        picked.lines.push("(no such file on the node)".into());
                    } else if how == "unreadable" {
                        picked.lines.push(format!(
                            "(not readable by the user cutover runs as on {node}: set sudo: true for {node} in the inventory, or make it readable)"
                        ));
                    } else if picked.is_empty() {
                        picked.lines.push(if how == "since" {
                            "(nothing written since the restart)".into()
                        } else {
                            "(no error in its last lines)".into()
                        });
                    }
                    ev.log = Some((head, picked));
                }
                _ => {}
            }
        }
        ev
    }
}
