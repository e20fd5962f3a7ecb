//! The header (the bar and the run line), the banner below it (replay damage, the pool, what
//! halted or paused the run, a resume's drift) and how the banner gives up rows when short.

use super::{View, clip, span};
use crate::engine::state::{PoolView, RunStatus};
use crate::tui::app::Mode;
use crate::tui::labels::{plural, speed_label};
use crate::tui::text::{dur, hms, trunc, trunc_left, width, wrap};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

pub(super) fn status_badge(status: &RunStatus, pause_requested: bool) -> (&'static str, Color) {
    match status {
        RunStatus::NotStarted => ("NOT STARTED", Color::Gray),
        RunStatus::Running if pause_requested => ("PAUSING", Color::Yellow),
        RunStatus::Running => ("RUNNING", Color::Green),
        RunStatus::AwaitingConfirm => ("HARD STOP", Color::Magenta),
        RunStatus::Paused { .. } => ("PAUSED", Color::Yellow),
        RunStatus::Halted { .. } => ("HALTED", Color::Red),
        RunStatus::Completed => ("COMPLETED", Color::Green),
    }
}

/// A resume the operator has not moved past yet.
pub(super) struct ResumeNotice {
    pub who: String,
    pub at: String,
    pub drift: Vec<String>,
}

/// One line of the banner, and what may go when the screen is short of rows.
pub(super) struct BannerLine {
    pub(super) line: Line<'static>,
    /// How soon it goes: 2 before a row of the node table (a long halt reason's tail), 1 after
    /// the node table shrank (resume drift, LB errors), 0 last (the pool, the first rows of what
    /// halted the run, what to do next).
    pub(super) rank: u8,
    /// Continues the line before it (a wrapped paragraph): when it goes, that one ends in `…`.
    pub(super) cont: bool,
}

impl BannerLine {
    pub(super) fn essential(line: Line<'static>) -> BannerLine {
        BannerLine {
            line,
            rank: 0,
            cont: false,
        }
    }
    pub(super) fn extra(line: Line<'static>) -> BannerLine {
        BannerLine {
            line,
            rank: 1,
            cont: false,
        }
    }
}

/// Drop one line of the banner ranked `min_rank` or more: the last of the highest rank there is.
/// A paragraph cut short ends in `…` on the line left. False: nothing of that rank is left.
pub(super) fn trim_banner(banner: &mut Vec<BannerLine>, w: usize, min_rank: u8) -> bool {
    let Some(rank) = banner
        .iter()
        .map(|b| b.rank)
        .max()
        .filter(|r| *r >= min_rank)
    else {
        return false;
    };
    let Some(i) = banner.iter().rposition(|b| b.rank == rank) else {
        return false;
    };
    let gone = banner.remove(i);
    let next_cont = banner.get(i).is_some_and(|b| b.cont);
    if gone.cont && !next_cont && i > 0 {
        let prev = &mut banner[i - 1];
        let mut line = std::mem::take(&mut prev.line);
        if !line.spans.last().is_some_and(|s| s.content.ends_with('…')) {
            let style = line.spans.last().map(|s| s.style).unwrap_or_default();
            line = clip(line, w.saturating_sub(1));
            line.spans.push(Span::styled("…", style));
        }
        prev.line = line;
    }
    true
}

impl View<'_> {
    pub(super) fn header_lines(&self, w: usize) -> Vec<Line<'static>> {
        let st = self.state;
        let t = &self.t;
        let (title, cluster, run_id) = match &st.run {
            Some(r) => (r.runbook_title.clone(), r.cluster.clone(), r.run_id.clone()),
            None => ("(no run yet)".into(), String::new(), String::new()),
        };
        // Line 1: the bar. Title and cluster on the left, mode and status badges on the right.
        let (mode, mode_color) = match self.app.header.mode {
            Mode::Live => ("LIVE", Color::Green),
            Mode::Resumed => ("RESUMED", Color::Yellow),
            Mode::Replay => ("REPLAY", Color::Blue),
            Mode::Follow => ("FOLLOW", Color::Blue),
        };
        let mut right: Vec<Span<'static>> = vec![span(format!(" {mode} "), t.badge(mode_color))];
        if let Some(r) = &self.app.replay {
            let at_end = r.position >= r.total && r.total > 0;
            let play = if at_end
                && self.app.header.mode == Mode::Follow
                && !matches!(st.status, RunStatus::Completed)
            {
                format!("{} live", t.g.live)
            } else if at_end {
                format!("{} end", t.g.end)
            } else if r.playing {
                t.g.play.to_string()
            } else {
                format!("{} paused", t.g.paused)
            };
            right.push(span(
                format!(
                    " event {}/{} ×{} {play} ",
                    r.position,
                    r.total,
                    speed_label(r.speed)
                ),
                t.bar(),
            ));
        }
        let (badge, color) = status_badge(&st.status, st.pause_requested);
        right.push(Span::raw(" "));
        right.push(span(format!(" {badge} "), t.badge(color)));
        let right_w: usize = right.iter().map(|s| width(&s.content)).sum();
        let cluster_part = if cluster.is_empty() {
            String::new()
        } else {
            format!(" · {cluster}")
        };
        let left_room = w.saturating_sub(right_w + 1);
        let left = trunc(&format!(" {title}{cluster_part}"), left_room);
        let gap = w.saturating_sub(width(&left) + right_w);
        let mut l1 = vec![
            span(left, t.bar().add_modifier(ratatui::style::Modifier::BOLD)),
            span(" ".repeat(gap), t.bar()),
        ];
        l1.extend(right);

        // Line 2: run id, operator, elapsed, journal path (shortened from the left).
        let elapsed = match (st.started_at, st.finished_at) {
            (Some(s), Some(f)) => format!(
                "T+{} (done)",
                crate::tui::text::clock((f - s).num_seconds())
            ),
            (Some(s), None) => format!(
                "T+{}{}",
                crate::tui::text::clock((self.now - s).num_seconds()),
                self.as_of()
            ),
            _ => String::new(),
        };
        let mut parts: Vec<String> = Vec::new();
        if !run_id.is_empty() {
            parts.push(format!("run {run_id}"));
        }
        parts.push(self.app.header.operator.clone());
        if !elapsed.is_empty() {
            parts.push(elapsed);
        }
        let head = format!(" {}", parts.join(" · "));
        let journal = self.app.header.journal.display().to_string();
        let room = w.saturating_sub(width(&head) + 3);
        let mut l2 = vec![span(head, t.plain())];
        if room >= 8 {
            l2.push(span(" · ", t.dim()));
            l2.push(span(trunc_left(&journal, room), t.dim()));
        }
        vec![Line::from(l1), clip(Line::from(l2), w)]
    }

    /// The pool banner (always), then what stops the run or needs attention.
    pub(super) fn banner_lines(&self, w: usize) -> Vec<Line<'static>> {
        self.banner(w).into_iter().map(|b| b.line).collect()
    }

    /// [`View::banner_lines`], each line saying whether it is kept when rows are short.
    pub(super) fn banner(&self, w: usize) -> Vec<BannerLine> {
        let st = self.state;
        let t = &self.t;
        let mut out: Vec<BannerLine> = self
            .replay_banner_lines(w)
            .into_iter()
            .map(BannerLine::essential)
            .collect();
        let mut pool: Vec<Span<'static>> = match st.pool() {
            PoolView::Unknown => vec![span(" POOL: not read yet", t.dim())],
            PoolView::Consistent(p) => vec![
                span(" POOL: ", t.bold()),
                span(
                    format!("consistent {p}"),
                    t.ok().add_modifier(ratatui::style::Modifier::BOLD),
                ),
            ],
            PoolView::Mixed(by) => {
                // The target provider first: it is the side that grows.
                let mut groups: Vec<(&String, &Vec<String>)> = by.iter().collect();
                groups.sort_by_key(|(p, _)| !st.is_target(p));
                let groups = groups
                    .iter()
                    .map(|(p, ns)| format!("{p}: {}", ns.join(", ")))
                    .collect::<Vec<_>>()
                    .join(" · ");
                let mut v = vec![span(format!(" POOL: MIXED — {groups} "), t.loud())];
                let cache = st.token_cache();
                let older = cache.lifetime_secs.filter(|_| cache.shared()).map(|l| {
                    format!(
                        " tokens older than {} may get 401s until the last node flips",
                        crate::engine::facts::humanize(l)
                    )
                });
                let hint = older
                    .as_deref()
                    .unwrap_or(" clients may get 401s until the last node flips");
                if width(&groups) + 16 + width(hint) <= w && self.countdown().is_none() {
                    v.push(span(hint, t.fail()));
                }
                v
            }
        };
        let unread = st.pool_unread();
        if !unread.is_empty() {
            pool.push(span(
                format!(" · provider not read: {}", unread.join(", ")),
                t.warn(),
            ));
        }
        let countdown = self.countdown();
        if let Some(c) = &countdown {
            let pw: usize = pool.iter().map(|s| width(&s.content)).sum();
            if pw + 3 + width(c) <= w {
                pool.push(span(" · ", t.dim()));
                pool.push(span(c.clone(), t.warn()));
                out.push(BannerLine::essential(Line::from(pool)));
            } else {
                out.push(BannerLine::essential(Line::from(pool)));
                out.push(BannerLine::extra(Line::from(span(
                    format!(" {c}"),
                    t.warn(),
                ))));
            }
        } else {
            out.push(BannerLine::essential(Line::from(pool)));
        }
        if let Some(m) = self.meter_line(w) {
            out.push(BannerLine::extra(m));
        }
        if !st.lb_errors.is_empty() {
            out.push(BannerLine::extra(Line::from(span(
                format!(" LB: {}", st.lb_errors.join("; ")),
                t.warn(),
            ))));
        }
        // `keep`: how many of the paragraph's first lines stay when rows are short; `rest`: how
        // soon the others go ([`BannerLine::rank`]).
        let mut wrapped =
            |badge: &str, style: Style, text: &str, text_style: Style, keep: usize, rest: u8| {
                let lead = format!(" {badge} ");
                let lw = width(&lead) + 1;
                let lines = wrap(text, w.saturating_sub(lw + 1).max(10));
                for (i, l) in lines.into_iter().enumerate() {
                    let line = if i == 0 {
                        Line::from(vec![
                            span(lead.clone(), style),
                            Span::raw(" "),
                            span(l, text_style),
                        ])
                    } else {
                        Line::from(vec![Span::raw(" ".repeat(lw)), span(l, text_style)])
                    };
                    out.push(BannerLine {
                        line,
                        rank: if i < keep { 0 } else { rest },
                        cont: i > 0,
                    });
                }
            };
        match &st.status {
            RunStatus::Halted { reason, next } => {
                // The reason's first line says what failed (a failed restart's evidence follows
                // it on lines of its own: the log's HALTED line and the details hold them all),
                // and what to do next must never be the part cut off.
                let mut lines = reason.trim().lines();
                let first = lines.next().unwrap_or_default();
                let more = lines.filter(|l| !l.trim().is_empty()).count();
                let text = if more > 0 {
                    format!(
                        "{first} (+{more} line{}: the HALTED log line, Enter)",
                        plural(more)
                    )
                } else {
                    first.to_string()
                };
                // Two rows of it stay; the rest goes before a row of the node table does.
                wrapped("HALTED", t.loud(), &text, t.fail(), 2, 2);
                if !next.is_empty() {
                    wrapped("  next", t.bold(), next, t.plain(), usize::MAX, 0);
                }
            }
            RunStatus::Paused { reason } => {
                let how = if self.app.interactive() {
                    " — c continues"
                } else {
                    ""
                };
                wrapped(
                    "PAUSED",
                    t.badge(Color::Yellow),
                    &format!("{reason}{how}"),
                    t.warn(),
                    1,
                    1,
                );
            }
            RunStatus::Running if st.pause_requested => {
                out.push(BannerLine::essential(Line::from(span(
                    " pausing after the running action finishes…",
                    t.warn(),
                ))));
            }
            _ => {}
        }
        // Just resumed: what a fresh probe found changed since the journal, until the operator
        // makes the next decision.
        if let Some(r) = self.resume_notice() {
            let lead = vec![span(" RESUMED ", t.badge(Color::Yellow)), Span::raw(" ")];
            let head = if r.drift.is_empty() {
                format!(
                    "by {} at {}: a fresh probe matches the journal (no drift)",
                    r.who, r.at
                )
            } else {
                format!(
                    "by {} at {} · what changed since the journal ({}):",
                    r.who,
                    r.at,
                    r.drift.len()
                )
            };
            let in_box = st.hard_stop.is_some() && !r.drift.is_empty();
            let head = if in_box {
                format!("{head} listed in the HARD STOP")
            } else {
                head
            };
            let mut l = lead;
            l.push(span(head, t.bold()));
            out.push(BannerLine::extra(Line::from(l)));
            // The HARD STOP box lists the drift itself; otherwise it is listed here.
            for d in r.drift.iter().filter(|_| !in_box) {
                for (i, l) in wrap(d, w.saturating_sub(6).max(10)).into_iter().enumerate() {
                    let lead = if i == 0 { "   ! " } else { "     " };
                    out.push(BannerLine::extra(Line::from(vec![
                        span(lead, t.warn()),
                        span(l, t.warn().add_modifier(ratatui::style::Modifier::BOLD)),
                    ])));
                }
            }
        }
        for b in out.iter_mut() {
            b.line = clip(std::mem::take(&mut b.line), w);
        }
        out
    }

    /// The last resume, while the operator has not decided anything since: who resumed, when,
    /// and the drift its fresh probe found. Read from the state (so a replay shows it too).
    pub(super) fn resume_notice(&self) -> Option<ResumeNotice> {
        let r = self.state.resumed.as_ref()?;
        if self.state.status == RunStatus::Completed {
            return None;
        }
        Some(ResumeNotice {
            who: r.who.clone(),
            at: hms(r.at),
            drift: r.drift.clone(),
        })
    }

    /// `old fernet tokens irrelevant in 59m12s (services: 48h59m)`, once every node has flipped.
    pub(super) fn countdown(&self) -> Option<String> {
        let (a, b) = self.state.old_tokens_irrelevant_at()?;
        let old = self.state.old_provider();
        let left_a = (a - self.now).num_seconds();
        let left_b = (b - self.now).num_seconds();
        // With a shared token cache, old tokens cached before the last flip still validate on
        // every node for up to one cache lifetime after it (never past their own expiry).
        let cached = self
            .state
            .old_tokens_cached_until()
            .map(|c| (c - self.now).num_seconds())
            .filter(|left| *left > 0 && *left < left_a);
        if let Some(left_c) = cached {
            return Some(format!(
                "old {old} tokens cached {} more, irrelevant in {} (services: {}){}",
                dur(left_c),
                dur(left_a),
                dur(left_b),
                self.as_of()
            ));
        }
        Some(if left_b <= 0 {
            format!("old {old} tokens no longer matter (since {})", hms(b))
        } else if left_a <= 0 {
            format!(
                "old {old} tokens expired; services with allow_expired: {}{}",
                dur(left_b),
                self.as_of()
            )
        } else {
            format!(
                "old {old} tokens irrelevant in {} (services: {}){}",
                dur(left_a),
                dur(left_b),
                self.as_of()
            )
        })
    }

    /// ` as of 01:23:45` when the screen's clock is a replayed moment, for what is computed from
    /// it (countdowns, elapsed times); empty when it is the wall clock.
    pub(super) fn as_of(&self) -> String {
        if self.app.journal_clock() {
            format!(" as of {}", hms(self.now))
        } else {
            String::new()
        }
    }

    /// Why a replay stops short of the journal's end (a damaged line), first in the banner.
    pub(super) fn replay_banner_lines(&self, w: usize) -> Vec<Line<'static>> {
        let Some(text) = &self.app.replay_banner else {
            return Vec::new();
        };
        let t = &self.t;
        let lead = " DAMAGED ";
        let indent = width(lead) + 1;
        wrap(text, w.saturating_sub(indent + 1).max(10))
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let first = if i == 0 {
                    vec![span(lead, t.badge(Color::Red)), Span::raw(" ")]
                } else {
                    vec![Span::raw(" ".repeat(indent))]
                };
                let mut spans = first;
                spans.push(span(l, t.fail()));
                clip(Line::from(spans), w)
            })
            .collect()
    }
}
