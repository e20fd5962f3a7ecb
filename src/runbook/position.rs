//! Where in a runbook's text an error is: `file:line:column`.

use super::template;

/// serde's messages name Rust types; say it in the runbook's words.
pub(super) fn explain(msg: &str) -> String {
    msg.replace("unknown variant", "unknown action or value")
        .replace("variant identifier", "action name")
}

/// Byte offset of step `id`'s `id:` line (0 when not found).
pub(super) fn step_offset(source: &str, id: &str) -> usize {
    for (off, _) in source.match_indices("id:") {
        let rest = source[off + 3..].trim_start_matches([' ', '\t']);
        let rest = rest.trim_start_matches(['"', '\'']);
        if rest.starts_with(id)
            && rest[id.len()..].chars().next().is_none_or(|c| {
                c == '\n' || c == '\r' || c == '"' || c == '\'' || c == ' ' || c == '#'
            })
        {
            return off;
        }
    }
    0
}

/// Where a template's error is: the undefined variable's line and column when the template's
/// lines can be followed in the source (a one-line or literal block template), else the
/// template's first line.
pub(super) fn template_at(
    source: &str,
    origin: &str,
    from: usize,
    template: &str,
    e: &template::TemplateError,
) -> String {
    let whole = position_from(source, origin, from, template);
    let Some((name, line)) = &e.at else {
        return whole;
    };
    let first = template.lines().next().unwrap_or(template).trim();
    let start = match source.get(from..).and_then(|tail| tail.find(first)) {
        Some(off) if !first.is_empty() => from + off,
        _ => match source.find(first) {
            Some(off) if !first.is_empty() => off,
            _ => return whole,
        },
    };
    // The start of the source line holding the template's line `line`.
    let mut line_start = source[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    for _ in 1..*line {
        match source[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return whole,
        }
    }
    let line_end = source[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(source.len());
    // On the template's first line, only from where the template starts.
    let search_from = if *line == 1 { start } else { line_start };
    match template::find_name(&source[search_from..line_end], name) {
        Some(off) => line_col(source, origin, search_from + off),
        None => whole,
    }
}

/// Like `position`, searching from byte `from` first (then from the start).
pub fn position_from(source: &str, origin: &str, from: usize, needle: &str) -> String {
    let first = needle.lines().next().unwrap_or(needle).trim();
    match source.get(from..).and_then(|tail| tail.find(first)) {
        Some(off) if !first.is_empty() => line_col(source, origin, from + off),
        _ => position(source, origin, needle),
    }
}

fn line_col(source: &str, origin: &str, off: usize) -> String {
    let before = &source[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{origin}:{line}:{col}")
}

/// The `file:line:column` of the first occurrence of `needle` in `source` (or the file alone).
pub fn position(source: &str, origin: &str, needle: &str) -> String {
    if needle.is_empty() {
        return origin.to_string();
    }
    // Templates in YAML may be quoted or folded; look for the first line of the needle.
    let first = needle.lines().next().unwrap_or(needle).trim();
    match source.find(first) {
        Some(off) => {
            let before = &source[..off];
            let line = before.matches('\n').count() + 1;
            let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("{origin}:{line}:{col}")
        }
        None => origin.to_string(),
    }
}
