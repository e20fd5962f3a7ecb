//! The details of a step, a node or a log line: everything the state knows about it, wrapped to
//! the popup's (or the side pane's) width.

use super::app::Target;
use super::labels::op_label;
use super::text::{dur, hms, millis, wrap};
use super::theme::Theme;
use crate::engine::State;
use crate::engine::facts::{AdminState, CacheVerdict, FleetCache, ReloadVerdict, TokenCacheFacts};
use crate::engine::plan::OpKind;
use crate::engine::state::{RunStatus, StepStatus};
use crate::runbook::Scope;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

struct Out {
    w: usize,
    lines: Vec<Line<'static>>,
}

impl Out {
    fn text(&mut self, s: &str, style: Style) {
        for l in wrap(s, self.w) {
            self.lines.push(Line::from(Span::styled(l, style)));
        }
    }
    /// `label  value`, the value wrapped under itself.
    fn kv(&mut self, label: &str, value: &str, lstyle: Style, vstyle: Style) {
        let lw = 12usize;
        let lines = wrap(value, self.w.saturating_sub(lw).max(10));
        for (i, l) in lines.into_iter().enumerate() {
            let head = if i == 0 {
                format!("{label:<lw$}")
            } else {
                " ".repeat(lw)
            };
            self.lines.push(Line::from(vec![
                Span::styled(head, lstyle),
                Span::styled(l, vstyle),
            ]));
        }
    }
    fn blank(&mut self) {
        self.lines.push(Line::from(""));
    }
}

/// A node's token cache and what the fleet's amounts to (in the node's facts).
fn cache_rows(o: &mut Out, st: &State, t: &Theme, c: &TokenCacheFacts) {
    o.kv("  cache", &c.cell(), t.plain(), t.plain());
    let fleet = st.token_cache();
    let line = fleet.line();
    let line = line.strip_prefix("token cache: ").unwrap_or(&line);
    o.kv("  fleet", line, t.plain(), cache_style(t, &fleet));
}

/// Nodes that disagree on caching tokens warn; anything else reads plainly.
fn cache_style(t: &Theme, c: &FleetCache) -> Style {
    if c.verdict == CacheVerdict::Mixed {
        t.warn()
    } else {
        t.plain()
    }
}

pub(super) fn build(
    st: &State,
    t: &Theme,
    target: &Target,
    w: usize,
) -> (String, Vec<Line<'static>>) {
    let mut o = Out {
        w: w.max(20),
        lines: Vec::new(),
    };
    let title = match target {
        Target::Node(name) => {
            let Some(n) = st.nodes.get(name) else {
                o.text("nothing known yet", t.dim());
                return (name.clone(), o.lines);
            };
            let mut phase = n.phase.label().to_string();
            if let Some(a) = &n.activity {
                phase.push_str(&format!(" · running {a}"));
            }
            o.kv("Phase", &phase, t.bold(), t.plain());
            if let Some(e) = &n.last_error {
                o.kv("Last error", e, t.bold(), t.fail());
            }
            if let Some(at) = n.flipped_at {
                o.kv("Flipped", &hms(at), t.bold(), t.plain());
            }
            match &n.facts {
                None => o.kv("Facts", "not read yet", t.bold(), t.dim()),
                Some(f) if let Some(u) = &f.unreachable => {
                    o.blank();
                    let at = n
                        .facts_at
                        .map(|a| format!(" (read {})", hms(a)))
                        .unwrap_or_default();
                    o.text(&format!("Facts{at}"), t.bold());

                    // Nothing on the node was read: why, where and what to do, then what its
                    // Keystone answered over HTTP (unreachable is not down).
                    o.kv(
                        "  reach",
                        &format!("{} UNREACHABLE: {}", t.g.unreachable, u.line()),
                        t.plain(),
                        t.fail(),
                    );
                    if let Some(kh) = &u.known_hosts {
                        o.kv("  host keys", kh, t.plain(), t.plain());
                    }
                    if let Some(fp) = &u.fingerprint {
                        o.kv("  presents", fp, t.plain(), t.plain());
                    }
                    o.kv("  next", &u.next, t.bold(), t.plain());
                    o.kv(
                        "  service",
                        &format!("{} {}", f.service_cell(), f.service_detail),
                        t.plain(),
                        if f.service_up { t.ok() } else { t.fail() },
                    );
                    o.kv(
                        "  not read",
                        "keystone.conf, the Fernet and JWS key repositories",
                        t.plain(),
                        t.dim(),
                    );
                }
                Some(f) => {
                    o.blank();
                    let at = n
                        .facts_at
                        .map(|a| format!(" (read {})", hms(a)))
                        .unwrap_or_default();
                    o.text(&format!("Facts{at}"), t.bold());
                    if let Some(e) = &f.error {
                        o.kv("  error", e, t.plain(), t.fail());
                    }
                    let run = n.running_provider().unwrap_or_else(|| "?".into());
                    o.kv(
                        "  provider",
                        &format!(
                            "config {} · running {} (last direct token) · expiration {} · allow_expired_window {}",
                            f.provider.clone().unwrap_or_else(|| "fernet (default)".into()),
                            run,
                            dur(f.expiration as i64),
                            dur(f.allow_expired_window as i64)
                        ),
                        t.plain(),
                        t.plain(),
                    );
                    o.kv(
                        "  fernet",
                        &format!(
                            "{} · {} · {} keys · {}",
                            f.fernet.repo,
                            if f.fernet.present {
                                "present"
                            } else {
                                "ABSENT"
                            },
                            f.fernet.keys,
                            f.fernet.fingerprint.as_deref().map(short).unwrap_or("-")
                        ),
                        t.plain(),
                        t.plain(),
                    );
                    let j = &f.jws;
                    o.kv(
                        "  jws priv",
                        &if j.private_present {
                            format!(
                                "{}/private.pem · mode {} · {} · {}",
                                j.private_repo,
                                j.private_mode.as_deref().unwrap_or("?"),
                                j.private_owner.as_deref().unwrap_or("?"),
                                j.private_fingerprint.as_deref().map(short).unwrap_or("-")
                            )
                        } else {
                            format!("no private.pem in {}", j.private_repo)
                        },
                        t.plain(),
                        t.plain(),
                    );
                    let (have, total) = st.public_coverage(n);
                    let owners: Vec<String> = st
                        .node_order
                        .iter()
                        .map(|m| {
                            let fp = st
                                .nodes
                                .get(m)
                                .and_then(|x| x.facts.as_ref())
                                .and_then(|x| x.jws.private_fingerprint.clone());
                            match fp {
                                Some(fp) if j.has_public(&fp) => format!("{m} {}", t.g.done),
                                Some(_) => format!("{m} {}", t.g.failed),
                                None => format!("{m} ?"),
                            }
                        })
                        .collect();
                    o.kv(
                        "  jws pub",
                        &format!(
                            "{} · {have}/{total} nodes' keys: {}",
                            j.public_repo,
                            owners.join(" ")
                        ),
                        t.plain(),
                        t.plain(),
                    );
                    o.kv(
                        "  service",
                        &format!(
                            "{} {}",
                            if f.service_up { "up" } else { "DOWN" },
                            f.service_detail
                        ),
                        t.plain(),
                        if f.service_up { t.ok() } else { t.fail() },
                    );
                    if let Some(c) = &f.cache {
                        cache_rows(&mut o, st, t, c);
                    }
                }
            }
            o.blank();
            let at = n
                .lb_at
                .map(|a| format!(" (read {})", hms(a)))
                .unwrap_or_default();
            o.text(&format!("Load balancers{at}"), t.bold());
            if n.lb.is_empty() {
                o.text("  not read yet", t.dim());
            }
            for (lb, s) in &n.lb {
                let admin = match s.admin {
                    AdminState::Ready => "ready",
                    AdminState::Drain => "drain",
                    AdminState::Maint => "maint",
                };
                o.kv(
                    &format!("  {lb}"),
                    &format!(
                        "server {} · admin {admin} · status {} · {} sessions · {}",
                        s.server,
                        s.status,
                        s.sessions,
                        if s.in_pool() {
                            "in the pool"
                        } else {
                            "out of the pool"
                        }
                    ),
                    t.plain(),
                    if s.in_pool() { t.ok() } else { t.warn() },
                );
            }
            // What a reload of each instance would do to this node once drained.
            if !st.lb_reload.is_empty() {
                o.text("  On reload (from each instance's config)", t.plain());
                for (lb, f) in &st.lb_reload {
                    let from = f
                        .config
                        .as_deref()
                        .map(|c| format!(" · {c}"))
                        .unwrap_or_default();
                    let fine =
                        f.verdict() == ReloadVerdict::KeepsIfSaved && f.check_clause().is_none();
                    o.kv(
                        &format!("  {lb}"),
                        &format!("{}{from}", f.clauses()),
                        t.plain(),
                        if fine { t.plain() } else { t.warn() },
                    );
                }
            }
            o.blank();
            match &n.last_token {
                None => o.kv("Last token", "no direct token check yet", t.bold(), t.dim()),
                Some(tk) => {
                    let at = n
                        .token_at
                        .map(|a| format!(" at {}", hms(a)))
                        .unwrap_or_default();
                    o.kv(
                        "Last token",
                        &format!(
                            "{}{at}: length {}{}",
                            tk.short(),
                            tk.length,
                            tk.error
                                .as_deref()
                                .map(|e| format!(" · {e}"))
                                .unwrap_or_default()
                        ),
                        t.bold(),
                        if tk.validated() || tk.issued_only() {
                            t.plain()
                        } else {
                            t.fail()
                        },
                    );
                }
            }
            name.clone()
        }
        Target::Step(i) => {
            let Some(s) = st.steps.get(*i) else {
                return ("step".into(), o.lines);
            };
            let scope = match s.scope {
                Scope::Once => "once",
                Scope::EachNode => "each node, one at a time",
                Scope::AllNodes => "all nodes together",
                Scope::HalfA => "half A together (halves)",
                Scope::HalfB => "half B together (halves)",
            };
            let status = match s.status {
                StepStatus::Pending => "pending",
                StepStatus::Active => "active",
                StepStatus::Done => "done",
                StepStatus::Failed => "failed",
            };
            o.kv("Status", status, t.bold(), t.plain());
            o.kv("Scope", scope, t.bold(), t.plain());
            o.blank();
            o.text(&super::text::reflow(&s.description), t.plain());
            // The step that reads the fleet first (preflight) shows what it read of the
            // token cache, node by node.
            let cache = st.token_cache();
            if st.steps.first().is_some_and(|f| f.id == s.id)
                && cache.verdict != CacheVerdict::Unknown
            {
                o.blank();
                o.text("Token cache", t.bold());
                o.text(&format!("  {}", cache.line()), cache_style(t, &cache));
                for name in &st.node_order {
                    let cell = st
                        .nodes
                        .get(name)
                        .and_then(|n| n.facts.as_ref())
                        .and_then(|f| f.cache.as_ref())
                        .map_or_else(|| "not read".to_string(), |c| c.cell());
                    o.kv(&format!("  {name}"), &cell, t.plain(), t.plain());
                }
            }
            o.blank();
            o.text(&format!("Operations ({})", s.ops.len()), t.bold());
            let halted = matches!(st.status, RunStatus::Halted { .. });
            // Long steps: fold all but the last few finished ops into one line.
            let done = s.ops.clone().filter(|i| *i < st.cursor).count();
            let fold = done.saturating_sub(3);
            if fold > 1 {
                o.text(&format!("  {} … {fold} earlier ops done", t.g.done), t.ok());
            }
            let skip = if fold > 1 { fold } else { 0 };
            for op in st.plan[s.ops.clone()].iter().skip(skip) {
                let (sym, style) = if op.index < st.cursor {
                    (t.g.done, t.ok())
                } else if op.index == st.cursor {
                    if halted {
                        (t.g.failed, t.fail())
                    } else {
                        (t.g.running, t.active())
                    }
                } else {
                    (t.g.pending, t.dim())
                };
                let implicit = matches!(op.kind, OpKind::Gate { implicit: true, .. });
                let label = format!(
                    "{sym} {}{}",
                    op_label(op),
                    if implicit { " (implicit)" } else { "" }
                );
                o.text(&format!("  {label}"), style);
            }
            s.title.clone()
        }
        Target::Log(i) => {
            let Some(l) = st.log.get(*i) else {
                return ("log".into(), o.lines);
            };
            o.kv(
                "Time",
                &l.time.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string(),
                t.bold(),
                t.plain(),
            );
            o.kv(
                "Node",
                l.node.as_deref().unwrap_or("-"),
                t.bold(),
                t.plain(),
            );
            o.kv("Action", &l.action, t.bold(), t.plain());
            o.kv("Level", &format!("{:?}", l.level), t.bold(), t.plain());
            if let Some(d) = l.duration_ms {
                o.kv("Duration", &millis(d), t.bold(), t.plain());
            }
            o.blank();
            o.text(&l.text, t.plain());
            format!("log line {}", i + 1)
        }
    };
    (title, o.lines)
}

fn short(fp: &str) -> &str {
    let end = fp
        .char_indices()
        .nth(19)
        .map(|(i, _)| i)
        .unwrap_or(fp.len());
    &fp[..end]
}
