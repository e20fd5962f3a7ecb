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

    /// Append `<unix epoch ms> <the commands that changed>` to `haproxy-K.admin.log` beside the
    /// state file,
    /// for observers that must not take cutover's word for when a server's state changed (the
    /// time is taken after the change, under the state's lock: a change is never logged early).
    fn log_change(&self, line: &str) {
        use std::io::Write as _;
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = self.info.state_file.with_extension("admin.log");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(format!("{at} {}\n", line.trim()).as_bytes());
        }
    }

    /// Run a command line from the admin socket: persist what changed, re-arm checks after a
    /// reload.
    pub(super) fn execute(&self, line: &str, interactive: bool) -> Executed {
        let mut st = self.lock();
        let ex = st.execute(line, interactive, Instant::now());
        if !ex.changes.is_empty() {
            self.save(&st);
            self.log_change(&ex.changes.join("; "));
        }
        if ex.reloaded {
            self.reloads.send_replace(st.generation);
        }
        ex
    }
}
