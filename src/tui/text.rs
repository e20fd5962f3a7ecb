//! Text helpers: display width, truncation, word wrap and the durations the screens show.
//! Wrapping is done here rather than by ratatui so every pane knows its height before drawing.

use chrono::{DateTime, Utc};

pub use crate::glyphs::width;

/// Cut `s` to at most `w` cells, ending in `…` when something was cut. Control characters go
/// through the one sanitiser first (ratatui drops them per cell; escape payloads and line
/// breaks would still show as stray text or shift a column).
pub fn trunc(s: &str, w: usize) -> String {
    let s = &*crate::sanitize::for_terminal(s);
    if width(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = width(c.encode_utf8(&mut [0; 4]));
        if used + cw > w - 1 {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push('…');
    out
}

/// Cut `s` from the left (for paths: the file name matters most), starting with `…`.
pub fn trunc_left(s: &str, w: usize) -> String {
    let s = &*crate::sanitize::for_terminal(s);
    if width(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let cw = width(c.encode_utf8(&mut [0; 4]));
        if used + cw > w - 1 {
            break;
        }
        tail.push(c);
        used += cw;
    }
    let mut out = String::from("…");
    out.extend(tail.into_iter().rev());
    out
}

/// `s` cut or padded with spaces to exactly `w` cells.
pub fn pad(s: &str, w: usize) -> String {
    let t = trunc(s, w);
    let n = w.saturating_sub(width(&t));
    format!("{t}{}", " ".repeat(n))
}

/// `s` cut or padded on the left to exactly `w` cells.
pub fn pad_left(s: &str, w: usize) -> String {
    let t = trunc(s, w);
    let n = w.saturating_sub(width(&t));
    format!("{}{t}", " ".repeat(n))
}

/// Word-wrap to `w` cells. Explicit newlines are kept, a paragraph's leading indentation is kept
/// (list items `• `, `- `, `* ` get a hanging indent), over-long words are split.
pub fn wrap(text: &str, w: usize) -> Vec<String> {
    let text = &*crate::sanitize::for_terminal_block(text);
    let w = w.max(1);
    let mut out = Vec::new();
    for para in text.trim_end().split('\n') {
        let indent = para.chars().take_while(|c| *c == ' ').count().min(w / 2);
        let item = ["• ", "- ", "* "];
        let hang = if item.iter().any(|b| para.trim_start().starts_with(b)) {
            (indent + 2).min(w / 2)
        } else {
            indent
        };
        let first_out = out.len();
        let mut line = " ".repeat(indent);
        let mut used = indent;
        let mut empty = true;
        for word in para.split_whitespace() {
            let mut word = word.to_string();
            loop {
                let ww = width(&word);
                let sep = usize::from(!empty);
                if used + sep + ww <= w {
                    if sep == 1 {
                        line.push(' ');
                    }
                    line.push_str(&word);
                    used += sep + ww;
                    empty = false;
                    break;
                }
                if !empty {
                    out.push(std::mem::replace(&mut line, " ".repeat(hang)));
                    used = hang;
                    empty = true;
                    continue;
                }
                // A word longer than the line: split it.
                let room = w.saturating_sub(used).max(1);
                let mut head = String::new();
                let mut hw = 0;
                let mut rest = String::new();
                for c in word.chars() {
                    let cw = width(c.encode_utf8(&mut [0; 4]));
                    if rest.is_empty() && hw + cw <= room {
                        head.push(c);
                        hw += cw;
                    } else {
                        rest.push(c);
                    }
                }
                line.push_str(&head);
                out.push(std::mem::replace(&mut line, " ".repeat(hang)));
                used = hang;
                empty = true;
                if rest.is_empty() {
                    break;
                }
                word = rest;
            }
        }
        if !empty || out.len() == first_out {
            out.push(if empty { String::new() } else { line });
        }
    }
    out
}

/// Join the hard line breaks of a YAML block scalar into paragraphs: a blank line separates
/// paragraphs, a line starting with `-`, `•` or `*` starts a new one.
pub fn reflow(s: &str) -> String {
    let mut out = String::new();
    let mut prev_blank = true;
    for line in s.trim().lines() {
        let l = line.trim();
        if l.is_empty() {
            out.push_str("\n\n");
            prev_blank = true;
            continue;
        }
        let item = l.starts_with("- ") || l.starts_with("• ") || l.starts_with("* ");
        if !prev_blank {
            out.push(if item { '\n' } else { ' ' });
        }
        out.push_str(l);
        prev_blank = false;
    }
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

/// `1h02m`, `59m12s`, `48h59m`, `12s`: a countdown or an elapsed time, compact.
pub fn dur(secs: i64) -> String {
    let s = secs.max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// `00:41:07`: a clock-style elapsed time for the header.
pub fn clock(secs: i64) -> String {
    let s = secs.max(0);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// `1.2s`, `340ms`, `2m05s`.
pub fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        dur((ms / 1000) as i64)
    }
}

pub fn hms(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_truncates() {
        assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("x\n\ny", 5), vec!["x", "", "y"]);
        assert_eq!(trunc("abcdef", 4), "abc…");
        assert_eq!(trunc_left("/a/b/c/journal.jsonl", 10), "…nal.jsonl");
        assert_eq!(dur(3552), "59m12s");
        assert_eq!(dur(176_340), "48h59m");
        assert_eq!(reflow("a\nb\n\nc\n- d\n- e\n"), "a b\n\nc\n- d\n- e");
    }
}
