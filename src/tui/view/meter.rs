//! The client-impact meter's line (in the banner, under the pool) and its section in the
//! mixed-pool HARD STOP: drawn from the folded `client_impact` summaries only, so a replay shows
//! what the live run showed.

use super::{View, clip, span};
use crate::engine::impact::ImpactView;
use crate::tui::text::width;
use ratatui::text::{Line, Span};

/// The sparkline's length: the last this many seconds (fewer on a narrow screen).
const SPARK_SECS: usize = 30;

impl View<'_> {
    /// ` CLIENTS ·····▂█▆· 412 req, 17 failed, 2 crossed · mixed now 4 · old died 01:02:03`,
    /// fitted to `w` (the parts at the end go first); the reason when the meter is off; nothing
    /// before any `client_impact`.
    pub(super) fn meter_line(&self, w: usize) -> Option<Line<'static>> {
        let t = &self.t;
        let im = &self.state.impact;
        if !im.measured {
            let why = im.off.as_ref()?;
            return Some(clip(
                Line::from(vec![
                    span(" CLIENTS ", t.bold()),
                    span(format!("meter {why}"), t.dim()),
                ]),
                w,
            ));
        }
        let total = im.total();
        let failed = total.fresh_failures();
        let head = " CLIENTS ";
        let counts = format!(" {} req, {failed} failed", total.requests());
        let mut tail: Vec<(String, ratatui::style::Style)> = Vec::new();
        if total.crossed() > 0 {
            tail.push((format!(", {} crossed", total.crossed()), t.warn()));
        }
        if let Some(n) = im.open_window_failures() {
            tail.push((
                format!(" · mixed now {n}"),
                if n > 0 { t.fail() } else { t.warn() },
            ));
        } else if let Some(last) = im.mixed_windows.last() {
            tail.push((format!(" · last mixed {}", last.failures), t.dim()));
        }
        if let Some(at) = im.old_died.values().min() {
            tail.push((
                format!(
                    " · old died {}",
                    at.with_timezone(&chrono::Local).format("%H:%M:%S")
                ),
                t.dim(),
            ));
        }
        let stopped = im
            .last
            .as_ref()
            .is_some_and(|l| l.reason == crate::engine::impact::ImpactReason::Final);
        if stopped || im.off.is_some() {
            tail.push((" · meter stopped".into(), t.dim()));
        }
        // The sparkline gets what is left after the head and the counts, up to SPARK_SECS.
        let fixed = width(head) + width(&counts);
        let mut tail_w: usize = tail.iter().map(|(s, _)| width(s)).sum();
        while fixed + tail_w + 8 > w && !tail.is_empty() {
            tail.pop();
            tail_w = tail.iter().map(|(s, _)| width(s)).sum();
        }
        let spark_n = w.saturating_sub(fixed + tail_w).min(SPARK_SECS);
        let mut spans: Vec<Span<'static>> = vec![span(head, t.bold())];
        if spark_n >= 4 {
            spans.push(span(sparkline(im, spark_n, t.ascii), t.fail()));
        }
        spans.push(span(counts, if failed > 0 { t.fail() } else { t.ok() }));
        for (s, style) in tail {
            spans.push(span(s, style));
        }
        Some(clip(Line::from(spans), w))
    }

    /// The mixed-pool HARD STOP's section on clients: what the meter measured so far, and what
    /// to expect if the node joins: the share of the pool that would run the other provider.
    pub(super) fn meter_stop_lines(&self) -> Vec<String> {
        let st = self.state;
        let Some(hs) = st.hard_stop.as_ref() else {
            return Vec::new();
        };
        if !hs.id.starts_with("mixed-pool") {
            return Vec::new();
        }
        let mut out = Vec::new();
        let im = &st.impact;
        if im.measured {
            let tl = im.total();
            out.push(format!(
                "Measured so far: {} requests through the frontends, {} failed, {} old-token refusals.",
                tl.requests(),
                tl.fresh_failures(),
                tl.validate_old.failures()
            ));
        } else if let Some(why) = &im.off {
            out.push(format!("Not measured: the client-impact meter is {why}."));
        }
        let target = st.target_provider.map(|p| p.to_string());
        if let (Some(node), Some(p)) = (hs.node.as_deref(), target.as_deref())
            && let Some((same, all)) = st.share_if_added(node, p)
            && same < all
        {
            out.push(format!(
                "Expect: {same} of {all} pooled nodes would run {p}; roughly {}% of validations fail while mixed (all of them if issue and validation alternate over two nodes).",
                same * 100 / all
            ));
        }
        out
    }
}

/// The last `n` seconds' failures of fresh tokens as bars, scaled to the busiest of them; a
/// second without a failure is the lowest mark, a second not measured a blank.
fn sparkline(im: &ImpactView, n: usize, ascii: bool) -> String {
    let bars = crate::glyphs::spark(ascii);
    let Some(last) = im.series.back().map(|p| p.at) else {
        return " ".repeat(n);
    };
    let from = last - chrono::Duration::seconds(n as i64 - 1);
    let mut cells: Vec<Option<u64>> = vec![None; n];
    for p in im.series.iter().filter(|p| p.at >= from) {
        let i = (p.at - from).num_seconds() as usize;
        if i < n {
            cells[i] = Some(p.fresh_failures);
        }
    }
    let max = cells.iter().flatten().copied().max().unwrap_or(0).max(1);
    cells
        .iter()
        .map(|c| match c {
            None => ' ',
            Some(0) => bars[0],
            Some(f) => bars[((f * 8).div_ceil(max) as usize).clamp(1, 8)],
        })
        .collect()
}
