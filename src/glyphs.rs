//! The character set of everything cutover prints: the screen ([`crate::tui::theme`]), the
//! headless event lines and the probe and plan reports. One locale rule and one symbol table,
//! outside the UI so that the engine's reports can use them without knowing about terminals.
//!
//! - Unicode when the locale says UTF-8 (LC_ALL, else LC_CTYPE, else LANG: the first one set
//!   and not empty, the way setlocale and tmux decide); ASCII otherwise, or with `--ascii`
//!   ([`force_ascii`]).
//! - Every state has its own symbol in both tables, so a state stays readable in ASCII.
//! - [`to_ascii`] maps any other character to its nearest ASCII (`?` when there is none), so no
//!   byte above 127 reaches a terminal that cannot show it.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by `--ascii` before anything is printed.
static FORCE_ASCII: AtomicBool = AtomicBool::new(false);

/// ASCII whatever the locale says (the `--ascii` flag).
pub fn force_ascii() {
    FORCE_ASCII.store(true, Ordering::SeqCst);
}

/// Whether `--ascii` was given.
pub fn forced() -> bool {
    FORCE_ASCII.load(Ordering::SeqCst)
}

/// The symbols cutover prints, one table per character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyphs {
    /// A step, node or check that is done / passed.
    pub done: &'static str,
    /// Failed.
    pub failed: &'static str,
    /// Waiting at a hard stop.
    pub stop: &'static str,
    /// Running now.
    pub running: &'static str,
    /// Not started yet; an informational log line.
    pub pending: &'static str,
    /// A log line that starts an action.
    pub start: &'static str,
    /// A node that cannot be reached over SSH (nothing on it could be read).
    pub unreachable: &'static str,
    /// The focused pane's marker.
    pub focus: &'static str,
    /// Paused (the run, a replay).
    pub paused: &'static str,
    /// A replay playing; a step starting (headless).
    pub play: &'static str,
    /// A replay at its end.
    pub end: &'static str,
    /// A follow at the live end.
    pub live: &'static str,
    /// `was → now`; an action's intent (headless).
    pub arrow: &'static str,
    /// More below / above (scrolling).
    pub down: &'static str,
    pub up: &'static str,
    /// Replay keys.
    pub left_right: &'static str,
    /// A list item.
    pub bullet: &'static str,
    /// The in-box rule above the HARD STOP keys.
    pub stop_rule: &'static str,
    /// Between a title and what follows it.
    pub dash: &'static str,
}

pub const UNICODE: Glyphs = Glyphs {
    done: "✓",
    failed: "✗",
    stop: "■",
    running: "◐",
    pending: "·",
    start: "▸",
    unreachable: "⊘",
    focus: "▸",
    paused: "‖",
    play: "▶",
    end: "■",
    live: "●",
    arrow: "→",
    down: "↓",
    up: "↑",
    left_right: "←/→",
    bullet: "•",
    stop_rule: "─",
    dash: "—",
};

pub const ASCII: Glyphs = Glyphs {
    done: "+",
    failed: "x",
    stop: "#",
    running: "*",
    pending: ".",
    start: ">",
    unreachable: "!",
    focus: ">",
    paused: "||",
    play: ">",
    end: "[]",
    live: "*",
    arrow: "->",
    down: "v",
    up: "^",
    left_right: "Left/Right",
    bullet: "-",
    stop_rule: "=",
    dash: "-",
};

/// Whether a locale name says UTF-8 (`C.UTF-8`, `en_US.utf8`).
fn is_utf8(locale: &str) -> bool {
    let l = locale.to_ascii_lowercase();
    l.contains("utf-8") || l.contains("utf8")
}

/// The locale that decides the character set: LC_ALL, else LC_CTYPE, else LANG (the first one
/// set and not empty, as setlocale does). None: unset, which is the C locale.
fn ctype_locale(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .find_map(|k| var(k).filter(|v| !v.is_empty()))
}

/// ASCII for these variables (and `--ascii`): the locale does not say UTF-8, or `force`.
pub fn ascii_from_vars(var: impl Fn(&str) -> Option<String>, force: bool) -> bool {
    force || !ctype_locale(var).is_some_and(|l| is_utf8(&l))
}

/// ASCII for this process: its environment's locale, or `--ascii`.
pub fn ascii() -> bool {
    ascii_from_vars(|k| std::env::var(k).ok(), forced())
}

/// A sparkline's bars, from none to full: block elements, or ASCII for terminals without them.
pub const SPARK_UNICODE: [char; 9] = ['·', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
pub const SPARK_ASCII: [char; 9] = ['.', '_', '_', '-', '-', '=', '=', '#', '#'];

/// The sparkline's bars for `ascii`.
pub fn spark(ascii: bool) -> &'static [char; 9] {
    if ascii { &SPARK_ASCII } else { &SPARK_UNICODE }
}

/// The table for `ascii`.
pub fn table(ascii: bool) -> &'static Glyphs {
    if ascii { &ASCII } else { &UNICODE }
}

/// One character in ASCII, for a terminal that cannot show `c`: box lines become `-`, `|`, `=`
/// and `+`, the state symbols their ASCII table's, punctuation its nearest ASCII; anything else
/// `?`. ASCII characters are kept.
pub fn to_ascii(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    match c {
        '✓' | '✔' => '+',
        '✗' | '✘' | '×' => 'x',
        '■' | '█' => '#',
        '◐' | '●' | '•' => '*',
        // A middle dot separates items on a line (`run … · alice · T+00:01:20`); the pending
        // state's own `·` is drawn from the ASCII table (`.`), not through this map.
        '·' => '|',
        '…' => '~',
        '▸' | '▶' | '→' | '⇒' | '›' | '»' => '>',
        '←' | '‹' | '«' => '<',
        '↓' => 'v',
        '↑' => '^',
        '‖' => '|',
        '⚠' | '⊘' => '!',
        '‘' | '’' | '′' => '\'',
        '“' | '”' | '″' => '"',
        '—' | '–' | '‐' | '−' => '-',
        '\u{a0}' | '\u{2000}'..='\u{200b}' => ' ',
        // Box drawing (U+2500..U+257F): double horizontals `=`, other horizontals `-`,
        // verticals `|`, corners and junctions `+`.
        '═' => '=',
        '─' | '━' | '┄' | '┅' | '┈' | '┉' | '╌' | '╍' | '╴' | '╶' | '╸' | '╺' => {
            '-'
        }
        '│' | '┃' | '║' | '┆' | '┇' | '┊' | '┋' | '╎' | '╏' | '╵' | '╷' | '╹' | '╻' => {
            '|'
        }
        '\u{2500}'..='\u{257f}' => '+',
        _ => '?',
    }
}

/// Display width in terminal cells (as ratatui measures a span: one cell for most characters,
/// two for wide ones, none for combining marks and controls).
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` for a terminal of this character set: unchanged in Unicode, every character through
/// [`to_ascii`] in ASCII (for text printed line by line, where a cell's width does not matter:
/// a wide character becomes one `?`).
pub fn for_output(s: &str, ascii: bool) -> Cow<'_, str> {
    if !ascii || s.is_ascii() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().map(to_ascii).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_in_ascii_is_ascii_and_unicode_is_untouched() {
        let s = "▶ Rolling cutover — fernet → jws · 3 nodes ✓ ⊘ 漢";
        assert_eq!(for_output(s, false), s);
        let a = for_output(s, true);
        assert!(a.is_ascii(), "{a}");
        assert_eq!(a, "> Rolling cutover - fernet > jws | 3 nodes + ! ?");
        assert!(matches!(for_output("plain", true), Cow::Borrowed(_)));
        // The tables agree with the per-character map on every state.
        for (u, a) in [
            (UNICODE.done, ASCII.done),
            (UNICODE.failed, ASCII.failed),
            (UNICODE.stop, ASCII.stop),
            (UNICODE.running, ASCII.running),
            (UNICODE.start, ASCII.start),
            (UNICODE.unreachable, ASCII.unreachable),
            (UNICODE.dash, ASCII.dash),
        ] {
            assert_eq!(to_ascii(u.chars().next().unwrap()).to_string(), a);
        }
    }

    #[test]
    fn the_locale_rule() {
        let v = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!ascii_from_vars(v(&[("LANG", "C.UTF-8")]), false));
        assert!(ascii_from_vars(v(&[("LANG", "C.UTF-8")]), true));
        assert!(ascii_from_vars(
            v(&[("LANG", "C.UTF-8"), ("LC_ALL", "C")]),
            false
        ));
        assert!(ascii_from_vars(v(&[]), false));
        assert_eq!(table(true), &ASCII);
        assert_eq!(table(false), &UNICODE);
    }
}
