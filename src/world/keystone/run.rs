//! A node's `run/` directory: the files through which the stand-in is restarted, faulted and
//! observed from outside the process that serves it.

use crate::world::info::WorldNode;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files under a node's `run/` directory through which the stand-in is driven, faulted
/// and observed from outside the process that serves it (see the module doc of `world`).
pub(crate) struct RunFiles {
    /// Created by `bin/keystone-restart`; deleted by the stand-in as the acknowledgement.
    pub restart_req: PathBuf,
    /// Created by the `start` fault: start a stopped or failed Keystone.
    pub start_req: PathBuf,
    /// The outcome of the last start: `ok PROVIDER` or `failed: REASON` (written atomically).
    pub start_result: PathBuf,
    /// What a start that failed printed on stderr before it died (present only then): the
    /// restart script prints it instead of the reason, as a launcher that shows the service's
    /// output does.
    pub start_stderr: PathBuf,
    /// The provider the node is running, present only while it listens (written atomically).
    pub provider: PathBuf,
    /// One `<unix epoch ms> restart` line per acknowledged restart request.
    pub restarts_log: PathBuf,
    /// While present, every start fails (the `break-restart` fault).
    pub break_restart: PathBuf,
    /// Seconds a restart or start takes before the node listens (the `slow-restart` fault).
    pub slow_restart: PathBuf,
    /// While present the Keystone process is dead (the `stop` fault); a start or restart
    /// removes it.
    pub stopped: PathBuf,
}

impl RunFiles {
    pub fn of(node: &WorldNode) -> RunFiles {
        let run = &node.run_dir;
        RunFiles {
            restart_req: node.restart_request(),
            start_req: run.join("start.req"),
            start_result: run.join("start.result"),
            start_stderr: run.join("start.stderr"),
            provider: run.join("provider"),
            restarts_log: run.join("restarts.log"),
            break_restart: run.join("break-restart"),
            slow_restart: run.join("slow-restart"),
            stopped: run.join("stopped"),
        }
    }

    /// The delay the `slow-restart` fault asks for, if any.
    pub(super) fn slow(&self) -> Option<Duration> {
        std::fs::read_to_string(&self.slow_restart)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
    }
}

/// Write `text` to `path` through a temporary file and a rename, so a reader never sees half.
pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
