//! Styles and symbols: the one place that decides what the screen looks like on this terminal.
//!
//! - Colour unless NO_COLOR is set (https://no-color.org) or TERM is `dumb`: without colour,
//!   meaning is carried by symbols, bold and reverse.
//! - Unicode symbols and box lines when the locale says UTF-8 (LC_ALL, else LC_CTYPE, else LANG,
//!   the way tmux decides: [`crate::glyphs`], whose rule and symbol table the headless output
//!   and the reports share); ASCII otherwise, or with `--ascii` ([`force_ascii`]). In ASCII every
//!   state keeps its own symbol (`+` done, `x` failed, `#` hard stop, `*` running, `.` pending),
//!   borders are drawn with `+-|` (`=` for the HARD STOP box), and [`asciify`] maps whatever
//!   else is not ASCII (text from a runbook or a journal) cell by cell through [`to_ascii`], so
//!   no byte above 127 reaches a terminal that cannot show it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

pub use crate::glyphs::{ASCII, Glyphs, UNICODE, force_ascii, to_ascii};

/// `+-----+` boxes.
const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// `+=====+` for the HARD STOP box, so it stands out from every other box.
const ASCII_STOP_BORDER: border::Set = border::Set {
    horizontal_top: "=",
    horizontal_bottom: "=",
    ..ASCII_BORDER
};

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
    pub ascii: bool,
    /// The symbols for `ascii`.
    pub g: &'static Glyphs,
}

impl Theme {
    pub fn new(color: bool, ascii: bool) -> Theme {
        Theme {
            color,
            ascii,
            g: crate::glyphs::table(ascii),
        }
    }

    /// From the environment (and `--ascii`): see the module's documentation.
    pub fn from_env() -> Theme {
        Theme::from_vars(|k| std::env::var(k).ok(), crate::glyphs::forced())
    }

    /// [`Theme::from_env`] over any variable lookup (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, force_ascii: bool) -> Theme {
        let no_color = var("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = var("TERM").is_some_and(|t| t == "dumb");
        Theme::new(
            !no_color && !dumb,
            crate::glyphs::ascii_from_vars(&var, force_ascii),
        )
    }

    /// The border of popups (help, details, quit).
    pub fn popup_border_set(&self) -> border::Set<'static> {
        if self.ascii {
            ASCII_BORDER
        } else {
            border::ROUNDED
        }
    }

    /// The HARD STOP box's border.
    pub fn stop_border_set(&self) -> border::Set<'static> {
        if self.ascii {
            ASCII_STOP_BORDER
        } else {
            border::DOUBLE
        }
    }

    /// The rules over panes and the details side pane's border.
    pub fn pane_border_set(&self) -> border::Set<'static> {
        if self.ascii {
            ASCII_BORDER
        } else {
            border::PLAIN
        }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn plain(&self) -> Style {
        Style::new()
    }
    pub fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn fail(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn stop(&self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }
    pub fn active(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    /// The title bar across the top.
    pub fn bar(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    /// A badge: reversed, bold, in the colour of its meaning.
    pub fn badge(&self, c: Color) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(c)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }
    /// Something that must not be missed (a mixed pool, a halted run).
    pub fn loud(&self) -> Style {
        self.badge(Color::Red)
    }
    /// The cursor's line: a grey bar under the line's own colours (reversing them would turn
    /// every coloured symbol into a coloured block); reverse video without colour.
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Indexed(238))
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    pub fn pane_title(&self, focused: bool) -> Style {
        if focused {
            // Not dimmed by the border's style it is drawn over.
            self.fg(Color::Cyan)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
                .remove_modifier(Modifier::DIM)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
    pub fn border(&self) -> Style {
        self.dim()
    }
    pub fn modal_border(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
}

/// Map every cell of `area` that is not ASCII through [`to_ascii`]. A character two cells wide
/// becomes `?` and a space, so the columns after it stay where they were.
pub fn asciify(buf: &mut Buffer, area: Rect) {
    let area = area.intersection(buf.area);
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let cell = &mut buf[(x, y)];
            let sym = cell.symbol();
            if sym.is_ascii() {
                x += 1;
                continue;
            }
            let wide = ratatui::text::Span::raw(sym.to_string()).width() > 1;
            let c = sym.chars().next().map(to_ascii).unwrap_or(' ');
            cell.set_char(c);
            if wide && x + 1 < area.right() {
                buf[(x + 1, y)].set_char(' ');
                x += 1;
            }
            x += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_locale_decides_ascii_and_the_flag_overrides_it() {
        let t = |p: &[(&str, &str)], f| Theme::from_vars(vars(p), f);
        assert!(!t(&[("LANG", "C.UTF-8")], false).ascii);
        assert!(!t(&[("LANG", "en_US.utf8")], false).ascii);
        assert!(t(&[("LANG", "C")], false).ascii);
        assert!(t(&[], false).ascii, "no locale at all is the C locale");
        // LC_ALL wins over LANG, LC_CTYPE over LANG; an empty one is skipped.
        assert!(t(&[("LANG", "C.UTF-8"), ("LC_ALL", "C")], false).ascii);
        assert!(t(&[("LANG", "C.UTF-8"), ("LC_CTYPE", "POSIX")], false).ascii);
        assert!(!t(&[("LANG", "C"), ("LC_CTYPE", "de_DE.UTF-8")], false).ascii);
        assert!(!t(&[("LANG", "C.UTF-8"), ("LC_ALL", "")], false).ascii);
        assert!(t(&[("LANG", "C.UTF-8")], true).ascii, "--ascii");
        assert_eq!(t(&[("LANG", "C")], false).g, &ASCII);
        assert_eq!(t(&[("LANG", "C.UTF-8")], false).g, &UNICODE);
    }

    #[test]
    fn no_color_and_dumb_terminals_get_no_colour() {
        let t = |p: &[(&str, &str)]| Theme::from_vars(vars(p), false);
        assert!(t(&[("TERM", "xterm-256color")]).color);
        assert!(!t(&[("TERM", "dumb")]).color);
        assert!(!t(&[("NO_COLOR", "1")]).color);
        assert!(t(&[("NO_COLOR", "")]).color, "an empty NO_COLOR is unset");
    }

    #[test]
    fn ascii_states_stay_distinct() {
        let g = ASCII;
        let states = [g.done, g.failed, g.stop, g.running, g.pending, g.start];
        for (i, a) in states.iter().enumerate() {
            assert!(a.is_ascii());
            for b in &states[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // (The per-cell map agreeing with the table for every state symbol is checked in
        // glyphs::tests, where both live.)
        for c in "─│┌┐└┘╔╗╚╝║═╭╮╰╯├┤".chars() {
            assert!(matches!(to_ascii(c), '-' | '|' | '+' | '='), "{c}");
        }
    }

    #[test]
    fn asciify_keeps_columns() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 8, 1));
        buf.set_string(0, 0, "✓a漢b─", Style::new());
        let area = buf.area;
        asciify(&mut buf, area);
        let line: String = (0..8).map(|x| buf[(x, 0)].symbol().to_string()).collect();
        assert_eq!(line, "+a? b-  ");
    }
}
