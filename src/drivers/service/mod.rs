//! The Keystone service: restart, what it said when a restart failed, a runbook's shell
//! command, and an HTTP check of a URL from a node (curl there) or from the bastion.

pub mod collect;
pub mod log;

use super::{DResult, Done, DriverError, Fleet};
use crate::drivers::keystone::api;
use crate::engine::action::{Service, service::curl};
use crate::engine::facts::*;
use crate::runbook::HttpFrom;
use crate::transport::{ExecOpts, shell_quote};
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
            Service::HttpCheck {
                node,
                url,
                from,
                expect_status,
                body_contains,
                timeout_secs,
            } => {
                let check = HttpCheck {
                    node: node.as_deref(),
                    url,
                    from: *from,
                    timeout_secs: *timeout_secs,
                };
                let (status, body) = match from {
                    HttpFrom::Bastion => self.get_from_bastion(&check).await?,
                    HttpFrom::Node => self.get_on_node(&check).await?,
                };
                Ok(check.judge(
                    status,
                    &body,
                    *expect_status,
                    body_contains.as_deref(),
                    |n| self.where_it_logs(n),
                ))
            }
        }
    }

    /// GET the check's URL with cutover's own client: the status and the body's first
    /// [`MAX_BODY`] bytes.
    async fn get_from_bastion(&self, c: &HttpCheck<'_>) -> DResult<(u16, Vec<u8>)> {
        let fail = |e: reqwest::Error| {
            let why = if e.is_timeout() {
                format!("no complete answer within {}s", c.timeout_secs)
            } else {
                // The innermost cause says it best (`Connection refused (os error 111)`, a
                // certificate error); reqwest's own words repeat the URL.
                let mut why = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    why = s.to_string();
                    src = s.source();
                }
                if e.is_connect() {
                    format!("cannot connect: {why}")
                } else {
                    why
                }
            };
            c.unanswered(why, self)
        };
        let mut resp = self
            .http
            .get(c.url)
            .timeout(Duration::from_secs(c.timeout_secs))
            .send()
            .await
            .map_err(fail)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_BODY {
            match resp.chunk().await.map_err(fail)? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(MAX_BODY);
        Ok((status, body))
    }

    /// GET the check's URL with curl on its node: the status and the body's first
    /// [`MAX_BODY`] bytes. No curl there is an error that says so.
    async fn get_on_node(&self, c: &HttpCheck<'_>) -> DResult<(u16, Vec<u8>)> {
        let node = c.node.ok_or_else(|| {
            DriverError::new(
                format!("GET {}: from: node without a node", c.shown()),
                "cutover bug: the plan gives every from: node check its node; report it",
            )
        })?;
        let t = self.node_transport(node).await?;
        let script = format!(
            "command -v curl >/dev/null 2>&1 || {{ echo 'curl: not found' >&2; exit 127; }}\n\
             f=$(mktemp) || exit 70\n\
             {}; rc=$?\n\
             echo; head -c {MAX_BODY} \"$f\"; rm -f \"$f\"; exit $rc\n",
            curl(c.url, c.timeout_secs, "\"$f\"")
        );
        let _permit = self.limit.acquire().await.expect("semaphore open");
        let out = t
            .exec(
                &script,
                ExecOpts {
                    stdin: None,
                    timeout: Duration::from_secs(c.timeout_secs + 10),
                    sudo: false,
                },
            )
            .await?;
        match out.status {
            0 => {}
            127 => {
                return Err(DriverError::new(
                    format!(
                        "{node}: curl is not installed, so {node} cannot GET {}",
                        c.shown()
                    ),
                    format!("install curl on {node}, or make the check from: bastion, then resume"),
                ));
            }
            28 => {
                return Err(c.unanswered(
                    format!("no complete answer within {}s", c.timeout_secs),
                    self,
                ));
            }
            _ => {
                return Err(c.unanswered(
                    format!("curl {}: {}", out.exit_text(), out.last_line()),
                    self,
                ));
            }
        }
        let (code, body) = match out.stdout.iter().position(|b| *b == b'\n') {
            Some(i) => (&out.stdout[..i], out.stdout[i + 1..].to_vec()),
            None => (&out.stdout[..], Vec::new()),
        };
        let code = String::from_utf8_lossy(code);
        match code.trim().parse::<u16>() {
            Ok(s) if s > 0 => Ok((s, body)),
            _ => Err(c.unanswered(
                format!(
                    "curl gave no HTTP status (`{}`)",
                    crate::sanitize::for_terminal(code.trim())
                ),
                self,
            )),
        }
    }

    pub(in crate::drivers) async fn restart(&self, node: &str, timeout_secs: u64) -> DResult<Done> {
        let n = self.node(node)?;
        // A restarted node proves itself again: its last token is no proof from here on.
        self.known.drop_proof(node);
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

/// How much of a body an http.check reads: `body_contains` is looked for in it.
pub const MAX_BODY: usize = 1 << 20;
/// How much of a body a failed check shows (masked, on one line).
const EXCERPT_CHARS: usize = 200;

/// One http.check, as its driver reports it.
struct HttpCheck<'a> {
    node: Option<&'a str>,
    url: &'a str,
    from: HttpFrom,
    timeout_secs: u64,
}

impl HttpCheck<'_> {
    /// The URL as messages show it: on one line, secrets masked.
    fn shown(&self) -> String {
        log::mask(&crate::sanitize::for_terminal(self.url))
    }

    /// `node1: GET http://…/v3 from node1`, `GET http://…/v3 from the bastion`.
    fn what(&self) -> String {
        let from = match (self.from, self.node) {
            (HttpFrom::Node, Some(n)) => n,
            _ => "the bastion",
        };
        match self.node {
            Some(n) => format!("{n}: GET {} from {from}", self.shown()),
            None => format!("GET {} from {from}", self.shown()),
        }
    }

    /// What to do when the check failed: where its node logs, and that the check changed
    /// nothing.
    fn next(&self, where_it_logs: impl Fn(&str) -> String) -> String {
        match self.node {
            Some(n) => format!(
                "the check changed nothing, and {n} stays out of the pool if this step took it out; read {}, fix the service, then resume to check again. A check that is itself wrong (its status, body or URL) cannot change in this run: re-add {n} by hand, `cutover unlock` the fleet, and run again with the check corrected",
                where_it_logs(n)
            ),
            None => "the check changed nothing; fix the service behind the URL, then resume to check again. A check that is itself wrong (its status, body or URL) cannot change in this run: `cutover unlock` the fleet and run again with the check corrected".into(),
        }
    }

    /// No answer (refused, timed out, TLS): a driver error.
    fn unanswered(&self, why: String, fleet: &Fleet) -> DriverError {
        DriverError::new(
            format!(
                "{}: no answer: {}",
                self.what(),
                log::mask(&crate::sanitize::for_terminal(&why))
            ),
            self.next(|n| fleet.where_it_logs(n)),
        )
    }

    /// The answer against what the check expects.
    fn judge(
        &self,
        status: u16,
        body: &[u8],
        expect: u16,
        contains: Option<&str>,
        where_it_logs: impl Fn(&str) -> String,
    ) -> Done {
        let text = String::from_utf8_lossy(body);
        let found = contains.is_none_or(|c| text.contains(c));
        if status == expect && found {
            let body = contains
                .map(|c| {
                    format!(
                        ", body contains {:?}",
                        log::mask(&crate::sanitize::for_terminal(c))
                    )
                })
                .unwrap_or_default();
            return Done::ok(
                format!("{}: {status}{body}", self.what()),
                Observation::default(),
            );
        }
        let wrong = if status != expect {
            format!("answered {status}, expected {expect}")
        } else {
            format!(
                "answered {status}, but the body does not contain {:?}",
                log::mask(&crate::sanitize::for_terminal(contains.unwrap_or_default()))
            )
        };
        Done::fail(
            format!("{}: {wrong}; body: {}", self.what(), excerpt(&text)),
            self.next(where_it_logs),
        )
    }
}

/// A body's beginning for a message: trimmed, on one line, secrets masked, at most
/// [`EXCERPT_CHARS`] characters.
fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "(empty)".into();
    }
    let mut cut: String = body.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < body.len() {
        cut.push('…');
    }
    format!("«{}»", log::mask(&crate::sanitize::for_terminal(&cut)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::action::ActionSpec;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP server on loopback: `/v3` answers 200 with a version document, `/busy` 503 with a
    /// body holding a password, `/hang` nothing for 30 s, anything else 404. Its base URL.
    async fn server() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let path = String::from_utf8_lossy(&req)
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    if path == "/hang" {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    let (status, body) = match path.as_str() {
                        "/v3" => (
                            "200 OK",
                            r#"{"version": {"id": "v3.14", "status": "stable"}}"#,
                        ),
                        "/busy" => (
                            "503 Service Unavailable",
                            "\x1b[31mmaintenance\x1b[0m\nadmin password=hunter2 in effect",
                        ),
                        _ => ("404 Not Found", ""),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn fleet() -> Fleet {
        let inv = crate::inventory::Inventory::parse(
            "cluster: t\nnodes:\n  - {name: ks1, reach: local, keystone_url: \"http://127.0.0.1:9\"}\n",
            "inv.yaml",
        )
        .unwrap();
        Fleet::new(inv).unwrap()
    }

    fn check(url: &str, from: HttpFrom, status: u16, body: Option<&str>) -> ActionSpec {
        Service::HttpCheck {
            node: Some("ks1".into()),
            url: url.into(),
            from,
            expect_status: status,
            body_contains: body.map(str::to_string),
            timeout_secs: 5,
        }
        .into()
    }

    #[tokio::test]
    async fn a_check_passes_on_the_expected_answer_from_either_place() {
        let base = server().await;
        let f = fleet();
        for from in [HttpFrom::Bastion, HttpFrom::Node] {
            let o = f
                .execute(
                    1,
                    0,
                    &check(&format!("{base}/v3"), from, 200, Some("v3.14")),
                )
                .await;
            assert!(o.ok, "{from:?}: {}", o.summary);
            assert_eq!(o.node.as_deref(), Some("ks1"));
            let from_where = if from == HttpFrom::Node {
                "ks1"
            } else {
                "the bastion"
            };
            assert_eq!(
                o.summary,
                format!("ks1: GET {base}/v3 from {from_where}: 200, body contains \"v3.14\"")
            );
        }
    }

    #[tokio::test]
    async fn a_failed_check_says_what_came_back_where_and_what_next() {
        let base = server().await;
        let f = fleet();
        for from in [HttpFrom::Bastion, HttpFrom::Node] {
            // Another status: the status, and the body's start, on one line, masked.
            let o = f
                .execute(1, 0, &check(&format!("{base}/busy"), from, 200, None))
                .await;
            assert!(!o.ok);
            assert!(
                o.summary.contains(&format!("ks1: GET {base}/busy from ")),
                "{}",
                o.summary
            );
            assert!(
                o.summary.contains(
                    "answered 503, expected 200; body: «maintenance\\nadmin password=*** in effect»"
                ),
                "{}",
                o.summary
            );
            assert!(!o.summary.contains("hunter2") && !o.summary.contains('\x1b'));
            let Some(crate::engine::events::Failure::Hint { next }) = &o.failure else {
                panic!("{:?}", o.failure)
            };
            assert!(
                next.contains("ks1 stays out of the pool if this step took it out"),
                "{next}"
            );
            assert!(next.contains("then resume to check again"), "{next}");
            // The right status, a body without the text.
            let o = f
                .execute(
                    1,
                    0,
                    &check(&format!("{base}/v3"), from, 200, Some("v3.15")),
                )
                .await;
            assert!(!o.ok);
            assert!(
                o.summary.contains(r#"answered 200, but the body does not contain "v3.15"; body: «{"version": {"id": "v3.14""#),
                "{}",
                o.summary
            );
            // The status a runbook expects other than 200.
            let o = f
                .execute(1, 0, &check(&format!("{base}/nope"), from, 404, None))
                .await;
            assert!(o.ok, "{}", o.summary);
        }
    }

    #[tokio::test]
    async fn no_answer_is_a_failure_that_names_the_url() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v3");
        let f = fleet();
        for from in [HttpFrom::Bastion, HttpFrom::Node] {
            let o = f.execute(1, 0, &check(&url, from, 200, None)).await;
            assert!(!o.ok);
            assert!(
                o.summary.contains(&format!("ks1: GET {url} from ")),
                "{}",
                o.summary
            );
            assert!(o.summary.contains(": no answer: "), "{}", o.summary);
            assert!(
                o.summary.contains("refused") || o.summary.contains("connect"),
                "{}",
                o.summary
            );
            let Some(crate::engine::events::Failure::Hint { next }) = &o.failure else {
                panic!("{:?}", o.failure)
            };
            assert!(next.contains("resume to check again"), "{next}");
        }
    }

    #[tokio::test]
    async fn a_check_waits_no_longer_than_its_timeout() {
        let base = server().await;
        let f = fleet();
        for from in [HttpFrom::Bastion, HttpFrom::Node] {
            let mut spec = check(&format!("{base}/hang"), from, 200, None);
            if let ActionSpec::Service(Service::HttpCheck { timeout_secs, .. }) = &mut spec {
                *timeout_secs = 1;
            }
            let start = Instant::now();
            let o = f.execute(1, 0, &spec).await;
            assert!(start.elapsed() < Duration::from_secs(5), "{from:?}");
            assert!(!o.ok);
            assert!(
                o.summary
                    .ends_with(": no answer: no complete answer within 1s"),
                "{}",
                o.summary
            );
        }
    }

    #[test]
    fn an_excerpt_is_short_one_line_and_masked() {
        assert_eq!(excerpt("  \n "), "(empty)");
        let long = "ok ".repeat(200);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 3, "{e}");
        assert!(e.ends_with("…»"));
        assert_eq!(
            excerpt("token: gAAAAABnsecretsecretsecretsecretsecret\r\n"),
            "«token: ***»"
        );
    }
}
