//! One running instance: its runtime state behind a lock, persisted to the server-state file
//! on every change. The admin socket, the frontend and the health checks share it.

use super::runtime_api::{Executed, LbState};
use crate::world::info::WorldLb;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::watch;

/// One running instance: its state behind a lock, and where it persists.
pub(super) struct Lb {
    pub(super) info: WorldLb,
    pub(super) state: Mutex<LbState>,
    /// The generation after each `@world reload`: health checks re-arm on it.
    pub(super) reloads: watch::Sender<u64>,
}

impl Lb {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, LbState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the runtime state file (atomically: temp file and rename).
    pub(super) fn save(&self, state: &LbState) {
        let text = state.servers_state(None, Instant::now());
        let tmp = self.info.state_file.with_extension("state.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.info.state_file);
        }
    }

    /// Run a command line from the admin socket: persist what changed, re-arm checks after a
    /// reload.
    pub(super) fn execute(&self, line: &str, interactive: bool) -> Executed {
        let mut st = self.lock();
        let ex = st.execute(line, interactive, Instant::now());
        if ex.changed {
            self.save(&st);
        }
        if ex.reloaded {
            self.reloads.send_replace(st.generation);
        }
        ex
    }
}
