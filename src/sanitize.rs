//! The one sanitiser for text that came from outside (inventory, runbook, remote command output,
//! HTTP bodies, journal) on its way to a terminal or stdout: no control character survives it,
//! so such text can neither move the cursor, retitle the window, recolour the screen, ring the
//! bell, nor break a line-per-event listing or a table.
//!
//! - ESC sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL|ST`, DCS/PM/APC/SOS up to ST, and
//!   two-byte `ESC x`) are removed whole, as are their 8-bit C1 forms.
//! - Other C0 characters, DEL and the rest of C1 become `?`.
//! - In one-line text ([`for_terminal`]) a newline shows as `\n`, a carriage return as `\r`, a
//!   tab as a space; in a block ([`for_terminal_block`]) newlines and tabs stay, a CR before a
//!   newline goes, any other CR becomes `?`.

use std::borrow::Cow;

/// One-line text (a name, a title, a summary in a table cell or an event line): nothing in it
/// can reach the terminal as a control, and a newline cannot break the line.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    clean(s, false)
}

/// A multi-line block (a rendered plan or probe table, an error message): as [`for_terminal`],
/// but newlines and tabs are kept.
pub fn for_terminal_block(s: &str) -> Cow<'_, str> {
    clean(s, true)
}

/// Every string (and object key) of a JSON value through [`for_terminal`]: for structured data
/// (a probe's observation) whose fields each end up in one table cell or line.
pub fn json_one_line(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(clean) = for_terminal(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(json_one_line),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut item) in old {
                json_one_line(&mut item);
                map.insert(for_terminal(&k).into_owned(), item);
            }
        }
        _ => {}
    }
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

fn clean(s: &str, block: bool) -> Cow<'_, str> {
    let safe = |c: char| !(c.is_control() && !(block && (c == '\n' || c == '\t')));
    if s.chars().all(safe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\n' if block => out.push('\n'),
            '\t' if block => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            '\r' if block && it.peek() == Some(&'\n') => {}
            '\r' if !block => out.push_str("\\r"),
            '\u{1b}' => match it.next() {
                Some('[') => skip_csi(&mut it),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut it),
                // `ESC (` and friends take one more character (a charset designator).
                Some('(' | ')' | '*' | '+' | '-' | '.' | '/' | '#' | '%' | ' ') => {
                    it.next();
                }
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut it),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut it),
            c if c.is_control() || is_c1(c) => out.push('?'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The rest of a CSI sequence: parameter and intermediate bytes, then one final byte.
fn skip_csi(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in it.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
        // A control inside a CSI aborts it (as terminals do); the text after it is shown.
        if !('\u{20}'..='\u{3f}').contains(&c) {
            return;
        }
    }
}

/// The rest of an OSC/DCS/PM/APC/SOS string: up to BEL, ST (`ESC \`) or 8-bit ST.
fn skip_string(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = it.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if it.peek() == Some(&'\\') {
                    it.next();
                }
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_controls(s: &str, block: bool) -> bool {
        s.chars()
            .all(|c| !c.is_control() || (block && (c == '\n' || c == '\t')))
    }

    #[test]
    fn plain_text_is_borrowed_untouched() {
        assert!(matches!(for_terminal("node1 ✓ é"), Cow::Borrowed(_)));
        assert!(matches!(for_terminal_block("a\n\tb"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_sequences_go_whole() {
        assert_eq!(for_terminal("\x1b]0;pwned\x07title"), "title");
        assert_eq!(for_terminal("\x1b]0;pwned\x1b\\title"), "title");
        assert_eq!(for_terminal("\x1b[31mred\x1b[0m"), "red");
        assert_eq!(for_terminal("\x1b[1;2;3Hx"), "x");
        assert_eq!(for_terminal("\x1bcreset"), "reset");
        assert_eq!(for_terminal("\x1b(Bx"), "x");
        assert_eq!(for_terminal("\u{9b}31mx"), "x");
        assert_eq!(for_terminal("\u{9d}0;t\u{9c}x"), "x");
        assert_eq!(for_terminal("\x1bPdcs\x1b\\x"), "x");
        // Unterminated: the rest is swallowed, never passed on.
        assert_eq!(for_terminal("a\x1b]0;never ends"), "a");
        assert_eq!(for_terminal("a\x1b"), "a");
    }

    #[test]
    fn other_controls_become_visible() {
        assert_eq!(for_terminal("a\x07b\x00c\x7fd\u{85}e"), "a?b?c?d?e");
        assert_eq!(for_terminal("node\nname"), "node\\nname");
        assert_eq!(for_terminal("a\r\nb"), "a\\r\\nb");
        assert_eq!(for_terminal("a\tb"), "a b");
        assert_eq!(for_terminal_block("a\r\nb\tc\rd\x08"), "a\nb\tc?d?");
        assert_eq!(
            for_terminal_block("line\n\x1b[2Jnext\x1b]0;x\x07"),
            "line\nnext"
        );
    }

    #[test]
    fn json_strings_and_keys_become_one_line() {
        let mut v = serde_json::json!({
            "node\n1": {"provider": "fernet\u{1b}[31m\nx", "n": 3, "list": ["a\u{7}", null]}
        });
        json_one_line(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"node\\n1": {"provider": "fernet\\nx", "n": 3, "list": ["a?", null]}})
        );
    }

    #[test]
    fn nothing_survives_any_byte() {
        let all: String = (0u32..0x250).filter_map(char::from_u32).collect();
        for s in [all.clone(), format!("\x1b[{all}"), format!("\x1b]{all}")] {
            assert!(no_controls(&for_terminal(&s), false));
            assert!(no_controls(&for_terminal_block(&s), true));
            assert!(!for_terminal(&s).contains('\n'));
        }
    }
}
