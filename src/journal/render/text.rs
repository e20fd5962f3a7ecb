//! The text listing: one aligned line per record, each told in words.

use std::fmt::Write as _;

use super::common::{
    Options, clip, damage_banner, one_line, step_titles, summary, torn_note, typed,
};
use crate::engine::Event;
use crate::journal::Record;

pub(super) fn text(records: &[Record], opts: &Options) -> String {
    let titles = step_titles(records);
    let events: Vec<Option<Event>> = records.iter().map(typed).collect();
    // On a terminal, column widths follow the content but are capped, so one long step or
    // node name cannot push the summaries off the screen; elsewhere nothing is cut.
    let width = |f: &dyn Fn(&Record) -> usize, cap: usize| {
        let w = records.iter().map(f).max().unwrap_or(0);
        if opts.width.is_some() { w.min(cap) } else { w }
    };
    let seq_w = width(&|r| r.seq.to_string().len(), 20);
    let kind_w = width(&|r| r.kind.chars().count(), 19);
    let step_w = width(&|r| r.step.as_deref().unwrap_or("-").chars().count(), 14);
    let node_w = width(&|r| r.node.as_deref().unwrap_or("-").chars().count(), 12);
    let cut = |s: &str, w: usize| match opts.width {
        Some(_) => clip(s, w),
        None => s.to_string(),
    };
    let mut out = String::new();
    if let Some(d) = &opts.damage {
        let _ = writeln!(out, "{}", damage_banner(d, records.len()));
    }
    for (r, event) in records.iter().zip(&events) {
        let line = format!(
            "{seq:>seq_w$}  {time}  {kind:<kind_w$}  {step:<step_w$}  {node:<node_w$}  {summary}",
            seq = r.seq,
            time = r.time.format("%H:%M:%S"),
            kind = cut(&one_line(&r.kind), kind_w),
            step = cut(&one_line(r.step.as_deref().unwrap_or("-")), step_w),
            node = cut(&one_line(r.node.as_deref().unwrap_or("-")), node_w),
            summary = one_line(&summary(r, event.as_ref(), &titles)),
        );
        match opts.width {
            Some(w) => out.push_str(clip(&line, w).trim_end()),
            None => out.push_str(line.trim_end()),
        }
        out.push('\n');
    }
    if let Some(t) = &opts.torn_tail {
        let _ = writeln!(out, "{}", torn_note(t));
    }
    if let Some(d) = &opts.damage
        && !records.is_empty()
    {
        let _ = writeln!(out, "{}", damage_banner(d, records.len()));
    }
    out
}
