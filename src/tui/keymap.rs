//! The one keymap: every command of the screen with its keys, what each key does, its footer
//! label and its help line, in one table (gitui's `commands()` is the model). `App` maps keys
//! to actions through it ([`lookup`]); the footer ([`Command::footer`]) and the help screen
//! ([`help`]) are rendered from it, so a key's text is written once, next to what it does.
//!
//! The commands come in groups, one per layer of the screen (a popup, the HARD STOP, the
//! replay's controls, the run's, the panes'); a group's order is the footer's order. Which layer
//! gets a key first is `App`'s business (a popup, then the HARD STOP, then the panes).

use crate::glyphs::Glyphs;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key as the table matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// The character, whatever the modifiers.
    Char(char),
    /// The character without Ctrl or Alt.
    Plain(char),
    /// Ctrl and the character.
    Ctrl(char),
    /// Any other key, whatever the modifiers.
    Code(KeyCode),
}

impl Key {
    fn matches(self, k: &KeyEvent) -> bool {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let alt = k.modifiers.contains(KeyModifiers::ALT);
        match self {
            Key::Char(c) => k.code == KeyCode::Char(c),
            Key::Plain(c) => k.code == KeyCode::Char(c) && !ctrl && !alt,
            Key::Ctrl(c) => k.code == KeyCode::Char(c) && ctrl,
            Key::Code(code) => k.code == code,
        }
    }
}

/// What a key does. `App` carries it out against its state (and the engine's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Act {
    /// Quit: in a live run, asks first while something runs or at a HARD STOP.
    Quit,
    /// The quit question's yes.
    QuitYes,
    /// Close the popup on top.
    Close,
    /// Scroll the details popup by this many lines.
    ScrollDetails(i16),
    /// At a HARD STOP: proceed, decline, mark the in-doubt action done.
    Proceed,
    Decline,
    MarkDone,
    /// Scroll the HARD STOP box by this many lines; to its top; to its end.
    ScrollBox(i16),
    BoxTop,
    BoxEnd,
    Pause,
    Continue,
    /// Replay controls.
    Play,
    Back,
    Forward,
    Faster,
    Slower,
    Start,
    End,
    /// The help screen.
    Help,
    /// Move in the focused pane by this many lines, or pages.
    Move(i8),
    Page(i8),
    NextPane,
    PrevPane,
    /// Details of the selection.
    Details,
    /// Back to following the run (the pane's selection dropped).
    Follow,
}

/// What the footer and the key lookup need to know about the moment.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ctx {
    /// The HARD STOP on screen is in doubt (an action may or may not have run).
    pub in_doubt: bool,
    pub can_pause: bool,
    pub can_continue: bool,
    /// Quit was sent; the run ends after the running action.
    pub quit_requested: bool,
    /// The focused pane has something to show the details of.
    pub has_selection: bool,
    /// An action runs now.
    pub running: bool,
    /// The replay plays.
    pub playing: bool,
}

/// A key's text in the footer or the help screen.
#[derive(Debug, Clone, Copy)]
pub(super) enum KeyText {
    Text(&'static str),
    /// The left/right arrows, in the screen's character set.
    LeftRight,
}

impl KeyText {
    pub(super) fn text(self, g: &Glyphs) -> &'static str {
        match self {
            KeyText::Text(s) => s,
            KeyText::LeftRight => g.left_right,
        }
    }
}

/// What the footer says a key does: fixed, or one of two words by the moment.
#[derive(Debug, Clone, Copy)]
pub(super) enum Says {
    Text(&'static str),
    Either(fn(&Ctx) -> bool, &'static str, &'static str),
}

/// A command's place in the footer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Footer {
    pub key: KeyText,
    pub says: Says,
    /// Shown whatever the width (a narrow footer keeps these, each cut to its first word).
    pub must: bool,
}

/// One command: its keys and what each does, its footer label, its help line, and when it is
/// available (an unavailable command neither takes its keys nor shows in the footer).
#[derive(Debug, Clone, Copy)]
pub(super) struct Command {
    pub keys: &'static [(Key, Act)],
    pub footer: Option<Footer>,
    pub help: Option<(KeyText, &'static str)>,
    pub when: fn(&Ctx) -> bool,
}

impl Command {
    /// The footer's key text and label now, if it shows.
    pub(super) fn footer(
        &self,
        ctx: &Ctx,
        g: &Glyphs,
    ) -> Option<(&'static str, &'static str, bool)> {
        let f = self.footer.as_ref().filter(|_| (self.when)(ctx))?;
        let says = match f.says {
            Says::Text(s) => s,
            Says::Either(p, yes, no) => {
                if p(ctx) {
                    yes
                } else {
                    no
                }
            }
        };
        Some((f.key.text(g), says, f.must))
    }
}

fn always(_: &Ctx) -> bool {
    true
}

const fn footer(key: &'static str, says: &'static str) -> Option<Footer> {
    Some(Footer {
        key: KeyText::Text(key),
        says: Says::Text(says),
        must: false,
    })
}

const fn must(key: &'static str, says: &'static str) -> Option<Footer> {
    Some(Footer {
        key: KeyText::Text(key),
        says: Says::Text(says),
        must: true,
    })
}

const fn help_line(key: &'static str, says: &'static str) -> Option<(KeyText, &'static str)> {
    Some((KeyText::Text(key), says))
}

use Act as A;
use Key::{Char, Code, Ctrl, Plain};

// ------------------------------------------------------------------ the commands

const QUIT_YES: Command = Command {
    keys: &[
        (Plain('y'), A::QuitYes),
        (Plain('Y'), A::QuitYes),
        (Ctrl('c'), A::QuitYes),
    ],
    footer: Some(Footer {
        key: KeyText::Text("y"),
        says: Says::Either(|c| c.running, "quit after it finishes", "quit"),
        must: true,
    }),
    help: None,
    when: always,
};
const STAY: Command = Command {
    keys: &[
        (Char('n'), A::Close),
        (Char('N'), A::Close),
        (Code(KeyCode::Esc), A::Close),
    ],
    footer: must("n/Esc", "stay"),
    help: None,
    when: always,
};

const CLOSE_HELP: Command = Command {
    keys: &[
        (Code(KeyCode::Esc), A::Close),
        (Char('?'), A::Close),
        (Char('q'), A::Close),
    ],
    footer: must("Esc/?", "close help"),
    help: None,
    when: always,
};

const CLOSE_DETAILS: Command = Command {
    keys: &[
        (Code(KeyCode::Esc), A::Close),
        (Code(KeyCode::Enter), A::Close),
        (Char('q'), A::Close),
    ],
    footer: must("Esc", "close"),
    help: None,
    when: always,
};
const SCROLL_DETAILS: Command = Command {
    keys: &[
        (Char('j'), A::ScrollDetails(1)),
        (Code(KeyCode::Down), A::ScrollDetails(1)),
        (Char('k'), A::ScrollDetails(-1)),
        (Code(KeyCode::Up), A::ScrollDetails(-1)),
        (Code(KeyCode::PageDown), A::ScrollDetails(10)),
        (Char(' '), A::ScrollDetails(10)),
        (Code(KeyCode::PageUp), A::ScrollDetails(-10)),
    ],
    footer: footer("j/k", "scroll"),
    help: None,
    when: always,
};

const PROCEED: Command = Command {
    keys: &[(Plain('Y'), A::Proceed)],
    footer: must("Shift+Y", "proceed"),
    help: help_line("Shift+Y", "at a HARD STOP: proceed (nothing else does)"),
    when: always,
};
const DECLINE: Command = Command {
    // Esc never declines: it only closes popups.
    keys: &[(Plain('n'), A::Decline), (Plain('N'), A::Decline)],
    footer: must("n", "decline and pause"),
    help: help_line("n", "at a HARD STOP: decline; the run pauses"),
    when: always,
};
const MARK_DONE: Command = Command {
    keys: &[(Plain('D'), A::MarkDone)],
    footer: footer("D", "mark done"),
    help: help_line("D", "at an in-doubt HARD STOP: mark the action done"),
    when: |c| c.in_doubt,
};
const SCROLL_BOX: Command = Command {
    keys: &[
        (Char('j'), A::ScrollBox(1)),
        (Code(KeyCode::Down), A::ScrollBox(1)),
        (Char('k'), A::ScrollBox(-1)),
        (Code(KeyCode::Up), A::ScrollBox(-1)),
        (Code(KeyCode::PageDown), A::ScrollBox(5)),
        (Char(' '), A::ScrollBox(5)),
        (Code(KeyCode::PageUp), A::ScrollBox(-5)),
        (Code(KeyCode::Home), A::BoxTop),
        (Char('g'), A::BoxTop),
        (Code(KeyCode::End), A::BoxEnd),
        (Char('G'), A::BoxEnd),
    ],
    footer: footer("j/k", "scroll"),
    help: None,
    when: always,
};
const QUIT_AT_STOP: Command = Command {
    keys: &[(Char('q'), A::Quit), (Ctrl('c'), A::Quit)],
    footer: must("q", "quit (safe here)"),
    help: None,
    when: always,
};

const PLAY: Command = Command {
    keys: &[(Char(' '), A::Play)],
    footer: Some(Footer {
        key: KeyText::Text("space"),
        says: Says::Either(|c| c.playing, "pause", "play"),
        must: false,
    }),
    help: help_line("space", "pause / play the replay"),
    when: always,
};
const STEP: Command = Command {
    keys: &[
        (Code(KeyCode::Left), A::Back),
        (Code(KeyCode::Right), A::Forward),
    ],
    footer: Some(Footer {
        key: KeyText::LeftRight,
        says: Says::Text("step"),
        must: false,
    }),
    help: Some((KeyText::LeftRight, "one event back / forward")),
    when: always,
};
const SPEED: Command = Command {
    keys: &[
        (Char('+'), A::Faster),
        (Char('='), A::Faster),
        (Char('-'), A::Slower),
        (Char('_'), A::Slower),
    ],
    footer: footer("+/-", "speed"),
    help: help_line("+ / -", "speed ×2 / ÷2"),
    when: always,
};
const START_END: Command = Command {
    keys: &[
        (Char('g'), A::Start),
        (Code(KeyCode::Home), A::Start),
        (Char('G'), A::End),
        (Code(KeyCode::End), A::End),
    ],
    footer: footer("g/G", "start/end"),
    help: help_line("g / G", "jump to the start / the end"),
    when: always,
};
const QUIT_REPLAY: Command = Command {
    keys: &[(Char('q'), A::Quit), (Ctrl('c'), A::Quit)],
    footer: must("q", "quit"),
    help: help_line("q", "quit the replay (read-only: nothing is sent)"),
    when: always,
};

const PAUSE: Command = Command {
    keys: &[(Plain('p'), A::Pause)],
    footer: footer("p", "pause"),
    help: help_line("p", "pause after the running action"),
    when: |c| c.can_pause && !c.quit_requested,
};
const CONTINUE: Command = Command {
    keys: &[(Plain('c'), A::Continue)],
    footer: footer("c", "continue"),
    help: help_line("c", "continue a paused or halted run (probes first)"),
    when: |c| c.can_continue && !c.quit_requested,
};
const QUIT: Command = Command {
    keys: &[(Char('q'), A::Quit), (Ctrl('c'), A::Quit)],
    footer: must("q", "quit"),
    help: help_line(
        "q, Ctrl-C",
        "quit (asks first while an action runs or at a HARD STOP)",
    ),
    when: |c| !c.quit_requested,
};

const HELP: Command = Command {
    keys: &[(Char('?'), A::Help)],
    footer: must("?", "help"),
    help: help_line("?", "this help"),
    when: always,
};
const MOVE: Command = Command {
    keys: &[
        (Char('j'), A::Move(1)),
        (Code(KeyCode::Down), A::Move(1)),
        (Char('k'), A::Move(-1)),
        (Code(KeyCode::Up), A::Move(-1)),
    ],
    footer: footer("j/k", "move"),
    help: help_line("j/k ↑/↓", "move in the focused pane (scroll in popups)"),
    when: always,
};
const PANE: Command = Command {
    keys: &[
        (Code(KeyCode::Tab), A::NextPane),
        (Code(KeyCode::BackTab), A::PrevPane),
    ],
    footer: footer("Tab", "pane"),
    help: help_line("Tab", "next pane: steps → nodes → log"),
    when: always,
};
const DETAILS: Command = Command {
    keys: &[(Code(KeyCode::Enter), A::Details)],
    footer: footer("Enter", "details"),
    help: help_line("Enter", "details of the selected step, node or log line"),
    when: |c| c.has_selection,
};
const FOLLOW: Command = Command {
    keys: &[(Code(KeyCode::Esc), A::Follow)],
    footer: None,
    help: help_line(
        "Esc",
        "close a popup (never declines); in a pane, follow the run",
    ),
    when: always,
};
const PAGE: Command = Command {
    keys: &[
        (Code(KeyCode::PageDown), A::Page(1)),
        (Code(KeyCode::PageUp), A::Page(-1)),
    ],
    footer: None,
    help: help_line("PgUp/PgDn", "page through the log"),
    when: always,
};

// ------------------------------------------------------------------ the layers

/// A layer of the screen: its groups of commands, in the footer's order.
pub(super) type Layer = &'static [&'static [Command]];

const STOP_KEYS: &[Command] = &[PROCEED, DECLINE, MARK_DONE];
const REPLAY_KEYS: &[Command] = &[PLAY, STEP, SPEED, START_END];
const RUN_KEYS: &[Command] = &[PAUSE, CONTINUE];
const PANE_KEYS: &[Command] = &[MOVE, PANE, DETAILS, FOLLOW, PAGE];

/// The quit question.
pub(super) const QUIT_CONFIRM: Layer = &[&[QUIT_YES, STAY]];
/// The help screen, open.
pub(super) const HELP_OPEN: Layer = &[&[CLOSE_HELP]];
/// A details popup, open.
pub(super) const DETAILS_OPEN: Layer = &[&[CLOSE_DETAILS, SCROLL_DETAILS]];
/// A HARD STOP waiting for a person (live).
pub(super) const HARD_STOP: Layer = &[STOP_KEYS, &[SCROLL_BOX, HELP, QUIT_AT_STOP]];
/// A replay or a follow: its controls, then the panes'.
pub(super) const REPLAY: Layer = &[REPLAY_KEYS, &[HELP, QUIT_REPLAY], PANE_KEYS];
/// A live run: its own keys, the panes', help and quit.
pub(super) const LIVE: Layer = &[RUN_KEYS, PANE_KEYS, &[HELP, QUIT]];
/// Moving around only (a replay's screen driven through `App::handle_key`).
pub(super) const PANES: Layer = &[PANE_KEYS, &[HELP]];

/// What a key does in a layer, if a command there that is available now takes it.
pub(super) fn lookup(layer: Layer, key: &KeyEvent, ctx: &Ctx) -> Option<Act> {
    commands(layer)
        .filter(|c| (c.when)(ctx))
        .flat_map(|c| c.keys.iter())
        .find(|(k, _)| k.matches(key))
        .map(|(_, a)| *a)
}

/// A layer's commands, in order.
pub(super) fn commands(layer: Layer) -> impl Iterator<Item = &'static Command> {
    layer.iter().flat_map(|g| g.iter())
}

/// The help screen's lines (key text, what it does): the replay's controls in a replay, the
/// panes' keys, then a live run's and the HARD STOP's, or the replay's quit; `?` last.
pub(super) fn help(
    replay: bool,
    interactive: bool,
    g: &Glyphs,
) -> Vec<(&'static str, &'static str)> {
    let mut layer: Vec<&'static [Command]> = Vec::new();
    if replay {
        layer.push(REPLAY_KEYS);
    }
    layer.push(PANE_KEYS);
    if interactive {
        layer.extend([RUN_KEYS, STOP_KEYS, &[QUIT]]);
    } else {
        layer.push(&[QUIT_REPLAY]);
    }
    layer.push(&[HELP]);
    layer
        .iter()
        .flat_map(|g| g.iter())
        .filter_map(|c| c.help)
        .map(|(k, d)| (k.text(g), d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<KeyEvent> {
        let mut codes: Vec<KeyCode> = (' '..='~').map(KeyCode::Char).collect();
        codes.extend([
            KeyCode::Esc,
            KeyCode::Enter,
            KeyCode::Tab,
            KeyCode::BackTab,
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::PageUp,
            KeyCode::PageDown,
            KeyCode::Home,
            KeyCode::End,
        ]);
        let mods = [
            KeyModifiers::NONE,
            KeyModifiers::SHIFT,
            KeyModifiers::CONTROL,
            KeyModifiers::ALT,
        ];
        codes
            .iter()
            .flat_map(|c| mods.iter().map(|m| KeyEvent::new(*c, *m)))
            .collect()
    }

    /// In every layer, whatever is available, a key means one thing: no command's key is
    /// shadowed by another's (Ctrl-C is quit, never `c` continue).
    #[test]
    fn a_key_means_one_thing_per_layer() {
        let layers = [
            ("quit confirm", QUIT_CONFIRM),
            ("help", HELP_OPEN),
            ("details", DETAILS_OPEN),
            ("hard stop", HARD_STOP),
            ("replay", REPLAY),
            ("live", LIVE),
            ("panes", PANES),
        ];
        let all = Ctx {
            in_doubt: true,
            can_pause: true,
            can_continue: true,
            quit_requested: false,
            has_selection: true,
            running: true,
            playing: true,
        };
        for (name, layer) in layers {
            for k in events() {
                let acts: Vec<Act> = commands(layer)
                    .filter(|c| (c.when)(&all))
                    .flat_map(|c| c.keys.iter())
                    .filter(|(key, _)| key.matches(&k))
                    .map(|(_, a)| *a)
                    .collect();
                assert!(
                    acts.windows(2).all(|w| w[0] == w[1]),
                    "{name}: {k:?} means {acts:?}"
                );
            }
        }
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(LIVE, &ctrl_c, &all), Some(Act::Quit));
    }

    /// Every command shown in a footer or the help screen has a key, and every key the help
    /// names for a layer's command is one that command takes.
    #[test]
    fn shown_commands_have_keys() {
        for layer in [
            QUIT_CONFIRM,
            HELP_OPEN,
            DETAILS_OPEN,
            HARD_STOP,
            REPLAY,
            LIVE,
        ] {
            for c in commands(layer) {
                if c.footer.is_some() || c.help.is_some() {
                    assert!(!c.keys.is_empty(), "{:?}", c.footer.map(|f| f.says));
                }
            }
        }
        let g = &crate::glyphs::UNICODE;
        let live = help(false, true, g);
        assert_eq!(live.first().map(|l| l.0), Some("j/k ↑/↓"));
        assert_eq!(live.last().map(|l| l.0), Some("?"));
    }
}
