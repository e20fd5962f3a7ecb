//! The terminal: raw mode and the alternate screen, restored on every way out — a normal return,
//! an error (`Drop`), a panic (a hook that restores, then calls the previous hook) and a signal
//! (the loops break and restore).

use crossterm::execute;
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{Stdout, stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set while we own the terminal, so the panic hook restores only what we changed.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

fn restore_now() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
    }
}

pub(super) struct Term {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Term {
    pub(super) fn enter() -> anyhow::Result<Term> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_now();
                previous(info);
            }));
        });
        // Raw mode from here on: no line could be typed, so no passphrase is asked for.
        crate::runtime::close_prompts();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // Clear with a plain escape: Terminal::clear() asks the terminal where its cursor is and
        // waits for the answer, which a slow SSH link may not deliver in time.
        execute!(stdout(), EnterAlternateScreen, Clear(ClearType::All))?;
        let mut terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
        terminal.hide_cursor()?;
        Ok(Term { terminal })
    }

    pub(super) fn draw(&mut self, f: impl FnOnce(&mut ratatui::Frame)) -> anyhow::Result<()> {
        self.terminal.draw(f)?;
        Ok(())
    }

    pub(super) fn autoresize(&mut self) -> anyhow::Result<()> {
        self.terminal.autoresize()?;
        Ok(())
    }

    pub(super) fn restore(self) -> anyhow::Result<()> {
        drop(self);
        Ok(())
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        restore_now();
    }
}
