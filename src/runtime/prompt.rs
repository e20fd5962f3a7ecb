//! Passphrases: one prompt on the controlling terminal for the whole process.

use crate::drivers::Fleet;
use crate::sanitize::for_terminal;
use anyhow::{Result, anyhow};
use std::io::Write;
use std::path::Path;

/// The session's passphrase prompt: one for the whole process, so one keyring (a key file is
/// asked for once whichever hosts use it, one prompt at a time). Asks on the controlling
/// terminal, echo off; the answer is used once to decrypt the key, wiped, never logged.
pub fn tty_passphrase_prompt() -> crate::transport::ssh::PassphrasePrompt {
    static PROMPT: std::sync::LazyLock<crate::transport::ssh::PassphrasePrompt> =
        std::sync::LazyLock::new(|| {
            crate::transport::ssh::PassphrasePrompt::new(|path: &Path| {
                read_secret(&format!(
                    "Passphrase for {}: ",
                    for_terminal(&path.display().to_string())
                ))
            })
        });
    PROMPT.clone()
}

/// The UI is taking the terminal: from now on no passphrase is asked for (a key that would need
/// one fails with advice to load it into ssh-agent).
pub fn close_prompts() {
    tty_passphrase_prompt().close();
}

/// An error naming every identity file whose passphrase was wrong three times, if any: the run
/// must not go on without the hosts it cannot reach.
pub fn passphrase_failures() -> Result<()> {
    let failed = tty_passphrase_prompt().failures();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("\n")))
    }
}

/// Open the SSH connections that may need a passphrase now, on a plain terminal and before
/// anything is written, and refuse to go on if a key's passphrase was wrong three times. Other
/// connections are left for later (an unreachable host would only delay this).
pub async fn unlock_keys(fleet: &Fleet) -> Result<()> {
    let defaults = fleet.inv.ssh.as_ref();
    let needs = fleet
        .inv
        .nodes
        .iter()
        .map(|n| &n.reach)
        .chain(
            fleet
                .inv
                .load_balancers
                .iter()
                .filter_map(|l| l.reach.as_ref()),
        )
        .any(|r| match r {
            crate::inventory::Reach::Ssh(t) => {
                crate::transport::ssh::may_ask_passphrase(t, defaults)
            }
            _ => false,
        });
    if needs {
        fleet.connect_all().await;
    }
    passphrase_failures()
}

/// Read a secret from the controlling terminal: echo off (checked), no line editing by the
/// terminal (Enter, Backspace, Ctrl-U handled here, whatever mode the terminal was in), the
/// previous mode restored exactly once, also on error. Ctrl-C restores the terminal and then
/// interrupts as it would have. `None`: no terminal, end of input, or an empty answer.
fn read_secret(prompt: &str) -> Option<zeroize::Zeroizing<String>> {
    use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices};
    use std::io::Read;
    use std::os::fd::AsFd;
    use zeroize::{Zeroize, Zeroizing};
    // Never two prompts on the terminal at once, whoever asks.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());

    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let saved = termios::tcgetattr(tty.as_fd()).ok()?;
    /// Puts the saved mode back when dropped: exactly once, on every path out.
    struct Restore<'a> {
        tty: &'a std::fs::File,
        saved: termios::Termios,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = termios::tcsetattr(self.tty.as_fd(), SetArg::TCSAFLUSH, &self.saved);
        }
    }
    let mut quiet = saved.clone();
    quiet.local_flags.remove(
        LocalFlags::ECHO
            | LocalFlags::ECHOE
            | LocalFlags::ECHOK
            | LocalFlags::ECHONL
            | LocalFlags::ICANON
            | LocalFlags::ISIG
            | LocalFlags::IEXTEN,
    );
    quiet.input_flags.remove(InputFlags::IXON);
    quiet.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    quiet.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    let restore = Restore {
        tty: &tty,
        saved: saved.clone(),
    };
    termios::tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &quiet).ok()?;
    // Echo off for certain, or no question.
    let now = termios::tcgetattr(tty.as_fd()).ok()?;
    if now.local_flags.contains(LocalFlags::ECHO) {
        return None;
    }
    let mut out = &tty;
    let _ = out.write_all(prompt.as_bytes());
    let _ = out.flush();

    // Room enough up front: a growing buffer would leave copies behind.
    let mut secret = Zeroizing::new(Vec::<u8>::with_capacity(1024));
    let mut byte = [0u8; 1];
    let mut interrupted = false;
    let ended = loop {
        match (&tty).read(&mut byte) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
        match byte[0] {
            b'\r' | b'\n' => break true,
            // Ctrl-C
            0x03 => {
                interrupted = true;
                break false;
            }
            // Ctrl-D on an empty line: end of input.
            0x04 if secret.is_empty() => break false,
            0x04 => break true,
            // Backspace, Delete: one character (not one byte) back.
            0x08 | 0x7f => {
                while let Some(b) = secret.pop() {
                    if b & 0xC0 != 0x80 {
                        break;
                    }
                }
            }
            // Ctrl-U: start again.
            0x15 => secret.zeroize(),
            b if b < 0x20 => {}
            b if secret.len() < secret.capacity() => secret.push(b),
            _ => {}
        }
    };
    byte.zeroize();
    let _ = out.write_all(b"\r\n");
    drop(restore);
    if interrupted {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
        return None;
    }
    if !ended || secret.is_empty() {
        return None;
    }
    match String::from_utf8(std::mem::take(&mut *secret)) {
        Ok(s) => Some(Zeroizing::new(s)),
        Err(e) => {
            let mut bytes = e.into_bytes();
            bytes.zeroize();
            None
        }
    }
}
