//! Passphrases of encrypted identity files: asked for through a callback, once per key file and
//! one prompt at a time, wiped after use; the decrypted key stays in memory for reconnects and
//! other hosts, as an agent would hold it.

use anyhow::{anyhow, bail};
use russh::keys::PrivateKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use zeroize::Zeroizing;

/// Asks for an encrypted identity file's passphrase (the path is shown to the operator), and
/// holds what was unlocked with it. Clones share one keyring: a key file is asked for once for
/// all the hosts that use it, one prompt at a time, and a file given up on is not asked again.
#[derive(Clone)]
pub struct PassphrasePrompt {
    ask: AskFn,
    ring: Arc<Keyring>,
}

/// The question itself: `None` skips that key. The answer is used once and wiped.
type AskFn = Arc<dyn Fn(&Path) -> Option<Zeroizing<String>> + Send + Sync>;

#[derive(Default)]
struct Keyring {
    /// Held from the first question about a file to its last: never two prompts at once.
    turn: tokio::sync::Mutex<()>,
    /// Keys decrypted during this session, by file (not by host). Memory only.
    unlocked: StdMutex<HashMap<PathBuf, Arc<PrivateKey>>>,
    /// Files not to be asked for again, and why.
    refused: StdMutex<HashMap<PathBuf, String>>,
    /// Files whose passphrase was wrong every time, with the message for the operator.
    failed: StdMutex<Vec<String>>,
    /// Set once the terminal is no longer a plain terminal (the UI has it).
    closed: std::sync::atomic::AtomicBool,
}

impl PassphrasePrompt {
    pub fn new(ask: impl Fn(&Path) -> Option<Zeroizing<String>> + Send + Sync + 'static) -> Self {
        PassphrasePrompt {
            ask: Arc::new(ask),
            ring: Arc::default(),
        }
    }

    /// Ask directly (no keyring): for a key that is not an SSH identity.
    pub fn ask(&self, path: &Path) -> Option<Zeroizing<String>> {
        (self.ask)(path)
    }

    /// Never ask again: the terminal now belongs to something else. A key that still needs a
    /// passphrase then fails with advice to load it into ssh-agent.
    pub fn close(&self) {
        self.ring
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The key files given up on after wrong passphrases, each with what the operator should do.
    pub fn failures(&self) -> Vec<String> {
        self.ring.failed.lock().unwrap().clone()
    }

    /// The decrypted key at `path` (`text` is the file), asking for its passphrase at most
    /// `PASSPHRASE_ATTEMPTS` times for the whole session.
    pub(super) async fn unlock(&self, path: &Path, text: &str) -> anyhow::Result<Arc<PrivateKey>> {
        let id = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let _turn = self.ring.turn.lock().await;
        if let Some(k) = self.ring.unlocked.lock().unwrap().get(&id) {
            return Ok(k.clone());
        }
        if let Some(why) = self.ring.refused.lock().unwrap().get(&id) {
            return Err(anyhow!(why.clone()));
        }
        let shown = path.display();
        if self.ring.closed.load(std::sync::atomic::Ordering::SeqCst) {
            bail!(
                "encrypted, and its passphrase cannot be asked for while the UI has the terminal: load it into ssh-agent (ssh-add {shown}), then resume"
            );
        }
        let refuse = |why: String| {
            self.ring
                .refused
                .lock()
                .unwrap()
                .insert(id.clone(), why.clone());
            why
        };
        for _ in 0..PASSPHRASE_ATTEMPTS {
            let ask = self.ask.clone();
            let owned = path.to_path_buf();
            let answer = tokio::task::spawn_blocking(move || ask(&owned))
                .await
                .map_err(|e| anyhow!("passphrase prompt failed ({e})"))?;
            let Some(pass) = answer else {
                return Err(anyhow!(refuse("encrypted, no passphrase given".into())));
            };
            let text = Zeroizing::new(text.to_string());
            let decoded = tokio::task::spawn_blocking(move || {
                russh::keys::decode_secret_key(&text, Some(pass.as_str())).ok()
            })
            .await
            .map_err(|e| anyhow!("decrypting failed ({e})"))?;
            if let Some(k) = decoded {
                let k = Arc::new(k);
                self.ring
                    .unlocked
                    .lock()
                    .unwrap()
                    .insert(id.clone(), k.clone());
                return Ok(k);
            }
        }
        let msg = format!(
            "wrong passphrase for {shown} three times; load it into ssh-agent (ssh-add {shown}) or check it"
        );
        self.ring.failed.lock().unwrap().push(msg.clone());
        Err(anyhow!(refuse(msg)))
    }
}

/// How many times a wrong passphrase may be typed for one key, as ssh allows.
const PASSPHRASE_ATTEMPTS: usize = 3;
