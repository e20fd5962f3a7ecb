//! What a service said when it would not (re)start, picked out of the text it left behind: the
//! restart command's stderr, `journalctl -u UNIT` and its log file.
//!
//! A restart that fails rarely ends on its reason. Keystone prints deprecation warnings as it
//! starts (Python `…Warning:` blocks, oslo.log `WARNING` lines), then dies with a `CRITICAL`
//! line and an oslo-prefixed Traceback in its log, or with one bare line on stderr
//! (`argument --debug: Invalid Boolean value: notabool`). The functions here are pure: they
//! take the text and return the lines an operator needs, masked and bounded.
//!
//! - [`pick`]: from any such text, the error blocks (ERROR, CRITICAL, a Traceback condensed to
//!   its last frame and its exception lines) or, when there are none, the last lines that are
//!   not warnings; and the one line that says why.
//! - [`unit_of`](super::collect::unit_of): the systemd unit a restart command restarts.
//! - [`mask`]: credentials in URLs, `password = …`-style values, tokens and key-like strings.
//! - [`Evidence`]: the three sources together, as a reason and a bounded block of text.

use std::sync::LazyLock;

/// At most this many lines are kept from one source.
pub const MAX_LINES: usize = 12;
/// A kept line is cut to this many characters.
pub const MAX_LINE_CHARS: usize = 300;
/// At most this many lines in [`Evidence::render`], headings included.
pub const MAX_RENDERED: usize = 20;
/// Lines kept from a source that shows no error (its last lines).
const TAIL_LINES: usize = 5;

/// How a line of text reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

/// One line with an oslo.log prefix (`2026-12-01 17:57:12.791 5075 ERROR keystone MSG`) split
/// off, if it has one.
struct Parsed<'a> {
    level: Option<Level>,
    logger: &'a str,
    msg: &'a str,
}

static OSLO: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?\s+\d+\s+(TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(\S+)(?: (.*))?$",
    )
    .expect("valid regex")
});

/// `path.py:19: EventletDeprecationWarning: …`: the first line of a Python warning.
static PY_WARNING: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^\S.*:\d+: [A-Za-z_]*Warning: ").expect("valid regex"));

/// `ValueError: …`, `oslo_config.cfg.ConfigFileValueError: …`: a Python exception line.
static PY_EXCEPTION: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Fault|Failure)(?::|$)",
    )
    .expect("valid regex")
});

/// An unprefixed line that says it is an error: `ERROR`, `CRITICAL`, `FATAL`, Apache's
/// `[wsgi:error]`.
static ERROR_WORD: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\b(?:ERROR|CRITICAL|FATAL)\b|\[(?:\w+:)?(?:error|crit|alert|emerg)\]")
        .expect("valid regex")
});

static WARNING_WORD: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\bWARNING\b|\b[A-Za-z]*Warning: |\[(?:\w+:)?(?:warn|notice|info)\]")
        .expect("valid regex")
});

fn parse(raw: &str) -> Parsed<'_> {
    if let Some(c) = OSLO.captures(raw) {
        let level = match &c[1] {
            "TRACE" | "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARNING" => Level::Warning,
            "ERROR" => Level::Error,
            _ => Level::Critical,
        };
        return Parsed {
            level: Some(level),
            logger: c.get(2).map_or("", |m| m.as_str()),
            msg: c.get(3).map_or("", |m| m.as_str()),
        };
    }
    Parsed {
        level: None,
        logger: "",
        msg: raw,
    }
}

fn is_traceback_start(msg: &str) -> bool {
    msg.trim_start()
        .starts_with("Traceback (most recent call last):")
}

fn is_chain_text(msg: &str) -> bool {
    let m = msg.trim();
    m.starts_with("During handling of the above exception")
        || m.starts_with("The above exception was the direct cause")
}

/// oslo's `[req-… - - -]` / `[-]` context after the logger name: noise in a summary.
fn without_context(msg: &str) -> &str {
    let m = msg.trim_start();
    if m.starts_with('[')
        && let Some(end) = m.find("] ")
    {
        return &m[end + 2..];
    }
    m
}

/// A run of related lines: an error block (with its traceback) or a plain line.
#[derive(Debug, Default)]
struct Block {
    error: bool,
    lines: Vec<String>,
    /// The CRITICAL message, the last exception line, or the error line: why, in one line.
    reason: Option<String>,
    /// How strongly `reason` says why: CRITICAL 3, exception line 2, ERROR 1, plain 0.
    weight: u8,
}

impl Block {
    fn offer_reason(&mut self, text: &str, weight: u8) {
        if weight >= self.weight || self.reason.is_none() {
            self.reason = Some(text.to_string());
            self.weight = weight;
        }
    }
}

/// A Traceback from `lines[start]`, condensed: its head, how many frames were left out, the
/// last frame (file line and code line) and every exception line of the chain. Returns the
/// lines, the last exception line and the index after the traceback.
fn traceback(lines: &[&str], start: usize) -> (Vec<String>, Option<String>, usize) {
    let head_level = parse(lines[start]).level;
    let mut frames: Vec<(String, Option<String>)> = Vec::new();
    let mut skipped = 0usize;
    let mut exceptions: Vec<String> = Vec::new();
    let mut i = start + 1;
    while i < lines.len() {
        let p = parse(lines[i]);
        if p.level.is_some() && p.level != head_level {
            break;
        }
        let msg = p.msg;
        if msg.trim().is_empty() || is_chain_text(msg) {
            i += 1;
            continue;
        }
        if is_traceback_start(msg) {
            // A chained exception: the frames of the last traceback are the ones that matter.
            skipped += frames.len();
            frames.clear();
            i += 1;
            continue;
        }
        if msg.starts_with(char::is_whitespace) {
            let t = msg.trim();
            if t.starts_with("File \"") {
                frames.push((format!("  {t}"), None));
            } else if !t.chars().all(|c| "^~ ".contains(c))
                && let Some(last) = frames.last_mut()
                && last.1.is_none()
            {
                last.1 = Some(format!("    {t}"));
            }
            i += 1;
            continue;
        }
        // A line at column 0: the exception. The chain goes on only if a chain text follows.
        exceptions.push(msg.trim().to_string());
        i += 1;
        let more = lines[i..]
            .iter()
            .map(|l| parse(l).msg)
            .find(|m| !m.trim().is_empty())
            .is_some_and(|m| is_chain_text(m) || is_traceback_start(m));
        if !more {
            break;
        }
    }
    let mut out = vec!["Traceback (most recent call last):".to_string()];
    let total = skipped + frames.len();
    if let Some((file, code)) = frames.pop() {
        if total > 1 {
            out.push(format!("  … {} earlier frame(s)", total - 1));
        }
        out.push(file);
        if let Some(code) = code {
            out.push(code);
        }
    }
    let last = exceptions.last().cloned();
    out.extend(exceptions);
    (out, last, i)
}

/// Skip a Python warning block from `lines[start]` (its message may run over several lines; it
/// ends with the indented source line). Returns the index after it.
fn skip_py_warning(lines: &[&str], start: usize) -> usize {
    let end = lines.len().min(start + 13);
    for (i, l) in lines.iter().enumerate().take(end).skip(start + 1) {
        if parse(l).level.is_some() || PY_WARNING.is_match(l) || is_traceback_start(l) {
            return i;
        }
        if l.starts_with("  ") {
            return i + 1;
        }
    }
    // No source line: only the first line was surely the warning.
    start + 1
}

/// What [`pick`] found in one source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Picked {
    /// The lines to show (masked, each at most [`MAX_LINE_CHARS`]).
    pub lines: Vec<String>,
    /// The one line that says why (masked).
    pub reason: Option<String>,
    /// Whether the lines are error blocks (else: the last lines that are not warnings).
    pub errors: bool,
}

impl Picked {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// The error blocks of `text` (or its last non-warning lines when it has none), at most
/// `max_lines` lines, with the line that says why.
pub fn pick(text: &str, max_lines: usize) -> Picked {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut blocks: Vec<Block> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let p = parse(raw);
        if p.level.is_none() && PY_WARNING.is_match(raw) {
            i = skip_py_warning(&lines, i);
            continue;
        }
        if is_traceback_start(p.msg) {
            let (tb, exc, next) = traceback(&lines, i);
            let joins = blocks.last().is_some_and(|b| b.error);
            if !joins {
                blocks.push(Block {
                    error: true,
                    ..Default::default()
                });
            }
            let b = blocks.last_mut().expect("a block");
            for l in tb {
                // The exception is usually the CRITICAL line's message already.
                let dup = PY_EXCEPTION.is_match(&l) && b.lines.iter().any(|k| k.ends_with(&l));
                if !dup {
                    b.lines.push(l);
                }
            }
            if let Some(e) = exc {
                b.offer_reason(&e, 2);
            }
            i = next;
            continue;
        }
        i += 1;
        let msg = p.msg.trim();
        if msg.is_empty() {
            continue;
        }
        let (error, weight, shown, why) = match p.level {
            Some(Level::Critical) => {
                let m = without_context(msg);
                (true, 3, format!("CRITICAL {} {m}", p.logger), m.to_string())
            }
            Some(Level::Error) => {
                let m = without_context(msg);
                (true, 1, format!("ERROR {} {m}", p.logger), m.to_string())
            }
            Some(_) => continue,
            None if PY_EXCEPTION.is_match(msg) => (true, 2, msg.to_string(), msg.to_string()),
            None if ERROR_WORD.is_match(msg) => (true, 1, msg.to_string(), msg.to_string()),
            None if WARNING_WORD.is_match(msg) || msg.contains("deprecat") => continue,
            None => (false, 0, msg.to_string(), msg.to_string()),
        };
        let joins = blocks.last().is_some_and(|b| b.error == error && error);
        if !joins {
            blocks.push(Block {
                error,
                ..Default::default()
            });
        }
        let b = blocks.last_mut().expect("a block");
        b.lines.push(shown);
        b.offer_reason(&why, weight);
    }

    let errors = blocks.iter().any(|b| b.error);
    let max = max_lines.max(2);
    let (lines, reason) = if errors {
        // The last error blocks that fit; the last one always, cut in the middle if too long.
        let mut kept: Vec<&Block> = Vec::new();
        let mut used = 0;
        for b in blocks.iter().rev().filter(|b| b.error) {
            if !kept.is_empty() && used + b.lines.len() > max {
                break;
            }
            used += b.lines.len();
            kept.push(b);
        }
        kept.reverse();
        let reason = kept
            .iter()
            .rev()
            .max_by_key(|b| b.weight)
            .and_then(|b| b.reason.clone());
        let mut lines: Vec<String> = kept.iter().flat_map(|b| b.lines.clone()).collect();
        if lines.len() > max {
            let head = max / 2;
            let tail = max - head - 1;
            let cut = lines.len() - head - tail;
            let mut out: Vec<String> = lines.drain(..head).collect();
            out.push(format!("… {cut} line(s) left out"));
            out.extend(lines.drain(lines.len() - tail..));
            lines = out;
        }
        (lines, reason)
    } else {
        let plain: Vec<String> = blocks.into_iter().flat_map(|b| b.lines).collect();
        let n = plain.len().min(TAIL_LINES).min(max);
        let lines = plain[plain.len() - n..].to_vec();
        let reason = lines.last().cloned();
        (lines, reason)
    };
    Picked {
        lines: lines.iter().map(|l| clip(&mask(l))).collect(),
        reason: reason.map(|r| clip(&mask(&r))),
        errors,
    }
}

/// A line cut to [`MAX_LINE_CHARS`] characters, with no control character left.
fn clip(line: &str) -> String {
    let clean = crate::sanitize::for_terminal(line);
    if clean.chars().count() <= MAX_LINE_CHARS {
        return clean.into_owned();
    }
    let mut s: String = clean.chars().take(MAX_LINE_CHARS - 1).collect();
    s.push('…');
    s
}

static SECRET_VALUE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"(?i)\b([\w.-]*(?:password|passwd|secret|token|api_key|private_key|credential)[\w.-]*)(["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;]+)"#,
    )
    .expect("valid regex")
});
static JWT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*").expect("valid regex")
});
static FERNET_TOKEN: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"gAAAAA[A-Za-z0-9_=-]{20,}").expect("valid regex"));
/// A Fernet key (32 bytes, URL-safe base64) or any long base64 run.
static KEYLIKE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\b[A-Za-z0-9_+/-]{43}=|[A-Za-z0-9+/]{64,}={0,2}").expect("valid regex")
});

/// `line` with secrets masked: URL credentials (`transport::redact`), the values of
/// password/secret/token/key settings, JWS and Fernet tokens, and key-like base64.
pub fn mask(line: &str) -> String {
    let s = crate::transport::redact(line);
    let s = JWT.replace_all(&s, "eyJ***");
    let s = FERNET_TOKEN.replace_all(&s, "gAAAAA***");
    let s = KEYLIKE.replace_all(&s, "***");
    SECRET_VALUE.replace_all(&s, "$1$2***").into_owned()
}

/// What a failed restart left behind, from every source that was read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// The restart command's stderr.
    pub stderr: Picked,
    /// `journalctl -u UNIT` since the restart began: (its heading, what it said).
    pub journal: Option<(String, Picked)>,
    /// The log file: (its heading, what it said).
    pub log: Option<(String, Picked)>,
}

impl Evidence {
    /// Every source, named: (heading, what it said), stderr first.
    fn sources(&self) -> Vec<(&str, &Picked)> {
        let mut v = vec![("restart stderr", &self.stderr)];
        if let Some((h, p)) = &self.journal {
            v.push((h.as_str(), p));
        }
        if let Some((h, p)) = &self.log {
            v.push((h.as_str(), p));
        }
        v
    }

    /// The source the reason comes from: the first of the log, the journal and stderr that
    /// shows an error, else the first of stderr, the journal and the log that said anything.
    fn reason_source(&self) -> Option<usize> {
        let v = self.sources();
        let said = |i: &usize| v[*i].1.reason.is_some();
        (0..v.len())
            .rev()
            .filter(said)
            .find(|i| v[*i].1.errors)
            .or_else(|| (0..v.len()).filter(said).find(|i| !v[*i].1.is_empty()))
    }

    /// The service's own reason, in one line: an error in the log, the journal or stderr (in
    /// that order), else the last thing stderr, the journal or the log said.
    pub fn reason(&self) -> Option<String> {
        let i = self.reason_source()?;
        self.sources()[i].1.reason.clone()
    }

    /// Each source that said something, as an indented block under its heading: the one the
    /// reason comes from first, then the others in order; at most [`MAX_RENDERED`] lines.
    pub fn render(&self) -> String {
        let v = self.sources();
        let first = self.reason_source();
        let order = first
            .into_iter()
            .chain((0..v.len()).filter(|i| Some(*i) != first));
        let mut lines: Vec<String> = Vec::new();
        for i in order {
            let (head, p) = v[i];
            if p.is_empty() {
                continue;
            }
            lines.push(format!("  {head}:"));
            lines.extend(p.lines.iter().map(|l| format!("    {l}")));
        }
        if lines.len() > MAX_RENDERED {
            let more = lines.len() - (MAX_RENDERED - 1);
            lines.truncate(MAX_RENDERED - 1);
            lines.push(format!("  … {more} more line(s) on the node"));
        }
        lines.iter().map(|l| format!("\n{l}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTLET: &str = "/opt/venv/lib/python3.11/site-packages/oslo_service/backend/_eventlet/loopingcall.py:19: EventletDeprecationWarning: \nEventlet is deprecated. It is currently being maintained in bugfix mode, and\nwe strongly recommend against using it for new projects.\n\nIf you are already using Eventlet, we recommend migrating to a different\nframework.  For more detail see\nhttps://eventlet.readthedocs.io/en/latest/asyncio/migration.html\n\n  from eventlet import event\n";

    /// Keystone 30's own output for `[cache] enabled = notabool` (measured on the lab, frames
    /// shortened).
    fn cache_enabled() -> String {
        let p = "2026-12-01 17:57:12.791 5075";
        format!(
            "{EVENTLET}{p} WARNING oslo_policy.policy [-] JSON formatted policy_file support is deprecated since Victoria release.\n\
{p} CRITICAL keystone [-] Unhandled error: oslo_config.cfg.ConfigFileValueError: Value for option enabled from LocationInfo(location=<Locations.user: (4, True)>, detail='/etc/keystone/keystone.conf') is not valid: Unexpected boolean value 'notabool'\n\
{p} ERROR keystone Traceback (most recent call last):\n\
{p} ERROR keystone   File \"/opt/venv/lib/python3.11/site-packages/oslo_config/cfg.py\", line 3692, in _do_get\n\
{p} ERROR keystone     return (convert(val), alt_loc)\n\
{p} ERROR keystone             ^^^^^^^^^^^^\n\
{p} ERROR keystone   File \"/opt/venv/lib/python3.11/site-packages/oslo_config/types.py\", line 275, in __call__\n\
{p} ERROR keystone     raise ValueError(f'Unexpected boolean value {{value!r}}')\n\
{p} ERROR keystone ValueError: Unexpected boolean value 'notabool'\n\
{p} ERROR keystone \n\
{p} ERROR keystone During handling of the above exception, another exception occurred:\n\
{p} ERROR keystone \n\
{p} ERROR keystone Traceback (most recent call last):\n\
{p} ERROR keystone   File \"/opt/venv/bin/keystone-wsgi-public\", line 3, in <module>\n\
{p} ERROR keystone     from keystone.wsgi.api import application\n\
{p} ERROR keystone   File \"/opt/venv/lib/python3.11/site-packages/oslo_cache/core.py\", line 138, in _build_cache_config\n\
{p} ERROR keystone     if conf.cache.enabled is True:\n\
{p} ERROR keystone        ^^^^^^^^^^^^^^^^^^\n\
{p} ERROR keystone   File \"/opt/venv/lib/python3.11/site-packages/oslo_config/cfg.py\", line 3710, in _do_get\n\
{p} ERROR keystone     raise ConfigFileValueError(message)\n\
{p} ERROR keystone oslo_config.cfg.ConfigFileValueError: Value for option enabled from LocationInfo(location=<Locations.user: (4, True)>, detail='/etc/keystone/keystone.conf') is not valid: Unexpected boolean value 'notabool'\n\
{p} ERROR keystone \n"
        )
    }

    #[test]
    fn the_critical_line_and_its_condensed_traceback_not_the_warnings() {
        let p = pick(&cache_enabled(), MAX_LINES);
        assert!(p.errors);
        let reason = p.reason.clone().unwrap();
        assert!(
            reason.starts_with(
                "Unhandled error: oslo_config.cfg.ConfigFileValueError: Value for option enabled"
            ) && reason.ends_with("Unexpected boolean value 'notabool'"),
            "{reason}"
        );
        let text = p.lines.join("\n");
        assert!(
            !text.contains("Eventlet") && !text.contains("WARNING"),
            "{text}"
        );
        assert!(
            text.starts_with("CRITICAL keystone Unhandled error: oslo_config"),
            "{text}"
        );
        assert!(
            text.contains("Traceback (most recent call last):"),
            "{text}"
        );
        assert!(
            text.contains("ValueError: Unexpected boolean value 'notabool'"),
            "{text}"
        );
        // The last frame of the last traceback, without the caret line.
        assert!(
            text.contains("line 3710, in _do_get\n    raise ConfigFileValueError(message)"),
            "{text}"
        );
        assert!(text.contains("… 4 earlier frame(s)"), "{text}");
        assert!(!text.contains("^^^"), "{text}");
        // The final exception is the CRITICAL line's message: not repeated.
        assert_eq!(
            text.matches("ConfigFileValueError: Value for option")
                .count(),
            1,
            "{text}"
        );
        assert!(p.lines.len() <= MAX_LINES);
    }

    #[test]
    fn a_bare_line_after_warnings_is_the_reason() {
        // Keystone 30 with `[DEFAULT] debug = notabool` (a CLI option): no level, no traceback.
        let log = format!(
            "--- restart 2026-12-01T17:57:10Z\n{EVENTLET}argument --debug: Invalid Boolean value: notabool\n"
        );
        let p = pick(&log, MAX_LINES);
        assert!(!p.errors);
        assert_eq!(
            p.reason.as_deref(),
            Some("argument --debug: Invalid Boolean value: notabool")
        );
        assert_eq!(
            p.lines,
            vec![
                "--- restart 2026-12-01T17:57:10Z".to_string(),
                "argument --debug: Invalid Boolean value: notabool".to_string()
            ]
        );
    }

    #[test]
    fn stderr_of_only_warnings_says_nothing() {
        let stderr = format!(
            "{EVENTLET}2026-12-01 17:57:12.791 5075 WARNING oslo_policy.policy [-] Policy file is deprecated\n/usr/lib/python3/dist-packages/pkg_resources/__init__.py:116: PkgResourcesDeprecationWarning: 1.1build1 is an invalid version\n  warnings.warn(\n"
        );
        let p = pick(&stderr, MAX_LINES);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.reason, None);
        // A warning whose source line is missing hides only its own first line.
        let p = pick(
            "x.py:1: DeprecationWarning: old\nJob for keystone.service failed because the control process exited with error code.\n",
            MAX_LINES,
        );
        assert_eq!(
            p.reason.as_deref(),
            Some(
                "Job for keystone.service failed because the control process exited with error code."
            )
        );
    }

    #[test]
    fn journal_lines_and_apache_errors() {
        let journal = "keystone.service: Main process exited, code=exited, status=1/FAILURE\nkeystone.service: Failed with result 'exit-code'.\nFailed to start keystone.service - OpenStack Identity.\n";
        let p = pick(journal, MAX_LINES);
        assert!(!p.errors);
        assert_eq!(p.lines.len(), 3);
        assert_eq!(
            p.reason.as_deref(),
            Some("Failed to start keystone.service - OpenStack Identity.")
        );
        let apache = "[Tue Dec 01 17:57:12.1 2026] [wsgi:error] [pid 12] mod_wsgi (pid=12): Failed to exec Python script file '/usr/bin/keystone-wsgi-public'.\n[Tue Dec 01 17:57:12.1 2026] [core:notice] [pid 1] AH00094: Command line: '/usr/sbin/apache2'\n";
        let p = pick(apache, MAX_LINES);
        assert!(p.errors);
        assert_eq!(p.lines.len(), 1, "{p:?}");
    }

    #[test]
    fn bounded_keeping_the_last_error_and_its_head() {
        let mut log = String::new();
        for i in 0..50 {
            log.push_str(&format!(
                "2026-12-01 17:57:12.791 5075 ERROR keystone.db [-] retry {i}: database is locked\n"
            ));
        }
        log.push_str("2026-12-01 17:57:13.000 5075 INFO keystone.server [-] still trying\n");
        let p = pick(&log, 8);
        assert_eq!(p.lines.len(), 8, "{:#?}", p.lines);
        assert!(p.lines[0].contains("retry 0"), "{:#?}", p.lines);
        assert!(p.lines[4].contains("line(s) left out"), "{:#?}", p.lines);
        assert!(p.lines[7].contains("retry 49"), "{:#?}", p.lines);
        assert!(p.reason.unwrap().contains("retry 49"));
        let long = format!("ERROR {}\n", "word ".repeat(200));
        let p = pick(&long, 8);
        assert_eq!(p.lines[0].chars().count(), MAX_LINE_CHARS);
        assert!(p.lines[0].ends_with('…'));
    }

    #[test]
    fn masks_secrets() {
        let line = "2026-12-01 17:57:12.791 5075 ERROR oslo_db.sqlalchemy.engines [-] Database connection was found disconnected; reconnecting: mysql+pymysql://keystone:s3cr3tpw@db/keystone admin_password = hunter2 X-Auth-Token: gAAAAABnZ0123456789abcdefghijklmnopqrstu key eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl fernet 8nq6nSBKb9nqOtn2JLnn6rDqxEfO3a4Q0ZCUKjSBZBE=";
        let p = pick(line, MAX_LINES);
        let out = p.lines.join("\n");
        for secret in [
            "s3cr3tpw",
            "hunter2",
            "gAAAAABnZ0123",
            "eyJzdWIi",
            "8nq6nSBKb9",
        ] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("mysql+pymysql://***@db/keystone"), "{out}");
        assert!(out.contains("admin_password = ***"), "{out}");
        assert_eq!(
            mask("provider = fernet, debug = true"),
            "provider = fernet, debug = true"
        );
        assert_eq!(mask("password: 'a b c' next"), "password: *** next");
        // Control characters never survive.
        let p = pick("ERROR \u{1b}]0;owned\u{7}boom\n", MAX_LINES);
        assert_eq!(p.lines, vec!["ERROR boom".to_string()]);
    }

    #[test]
    fn evidence_prefers_an_error_and_renders_sections() {
        let ev = Evidence {
            stderr: pick(
                &format!(
                    "{EVENTLET}2026-12-01 17:57:12.791 5075 WARNING keystone [-] deprecated\n"
                ),
                MAX_LINES,
            ),
            journal: None,
            log: Some((
                "/var/log/keystone/keystone.log since the restart".into(),
                pick(&cache_enabled(), MAX_LINES),
            )),
        };
        assert!(
            ev.reason()
                .unwrap()
                .contains("Unexpected boolean value 'notabool'")
        );
        let r = ev.render();
        assert!(r.starts_with("\n  /var/log/keystone/keystone.log since the restart:\n    CRITICAL keystone Unhandled error"), "{r}");
        assert!(!r.contains("restart stderr"), "{r}");

        let ev = Evidence {
            stderr: pick("Job for apache2.service failed.\n", MAX_LINES),
            journal: Some((
                "journalctl -u apache2".into(),
                pick(
                    "apache2.service: Failed with result 'exit-code'.\n",
                    MAX_LINES,
                ),
            )),
            log: Some(("log".into(), Picked::default())),
        };
        assert_eq!(
            ev.reason().as_deref(),
            Some("Job for apache2.service failed.")
        );
        assert_eq!(
            ev.render(),
            "\n  restart stderr:\n    Job for apache2.service failed.\n  journalctl -u apache2:\n    apache2.service: Failed with result 'exit-code'."
        );
        assert_eq!(Evidence::default().reason(), None);
        assert_eq!(Evidence::default().render(), "");

        // Errors everywhere: the log's reason, the log first, and no more than MAX_RENDERED
        // lines in all.
        let many: String = (0..30)
            .map(|i| format!("ERROR keystone: failure {i}\n"))
            .collect();
        let ev = Evidence {
            stderr: pick(&many, MAX_LINES),
            journal: Some(("journalctl -u keystone".into(), pick(&many, MAX_LINES))),
            log: Some(("keystone.log".into(), pick(&cache_enabled(), MAX_LINES))),
        };
        assert!(ev.reason().unwrap().contains("'notabool'"));
        let r = ev.render();
        assert!(r.starts_with("\n  keystone.log:\n    CRITICAL"), "{r}");
        assert_eq!(r.lines().skip(1).count(), MAX_RENDERED, "{r}");
        assert!(r.ends_with("more line(s) on the node"), "{r}");
    }
}
