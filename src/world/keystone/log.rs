//! keystone.log: oslo.log-shaped lines, and a refused start written the way Keystone 30 writes
//! it (with what it printed on stderr left for the restart script).

use super::config::Refusal;
use super::run::{RunFiles, write_atomic};
use crate::world::info::WorldNode;
use std::io::Write as _;
use std::path::Path;

/// What Keystone 30 prints on stderr as it starts, before it reads its options: a Python
/// deprecation warning (measured on the lab).
const STARTUP_WARNINGS: &str = concat!(
    "/usr/lib/python3/dist-packages/oslo_service/backend/_eventlet/loopingcall.py:19: EventletDeprecationWarning: \n",
    "Eventlet is deprecated. It is currently being maintained in bugfix mode, and\n",
    "we strongly recommend against using it for new projects.\n",
    "\n",
    "If you are already using Eventlet, we recommend migrating to a different\n",
    "framework.  For more detail see\n",
    "https://eventlet.readthedocs.io/en/latest/asyncio/migration.html\n",
    "\n",
    "  from eventlet import event\n",
);

/// Log a refused start as Keystone does, and leave in `run/start.stderr` what the process
/// printed on stderr, for the restart script: a bad option value (after the startup warnings:
/// argparse's one line, or oslo.log's WARNING, CRITICAL and traceback lines, the way Keystone 30
/// writes them), anything else as one CRITICAL line.
pub(super) fn log_refusal(node: &WorldNode, refusal: &Refusal) {
    let files = RunFiles::of(node);
    let log = |text: &str| {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_file)
        {
            let _ = f.write_all(text.as_bytes());
        }
    };
    match refusal {
        Refusal::Argparse(msg) => {
            log(&format!("{STARTUP_WARNINGS}{msg}\n"));
            let _ = write_atomic(&files.start_stderr, STARTUP_WARNINGS);
        }
        Refusal::Value(msg) => {
            let msg = msg.as_str();
            let prefix = format!(
                "{} {}",
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f"),
                std::process::id()
            );
            let warning = format!(
                "{prefix} WARNING oslo_policy.policy [-] JSON formatted policy_file support is deprecated since Victoria release. You need to use YAML format which will be default in future. You can use ``oslopolicy-convert-json-to-yaml`` tool to convert existing JSON-formatted policy file to YAML-formatted in backward compatible way: https://docs.openstack.org/oslo.policy/latest/cli/oslopolicy-convert-json-to-yaml.html.\n"
            );
            let value = msg.rsplit(": ").next().unwrap_or(msg);
            let traceback = [
                "Traceback (most recent call last):",
                "  File \"/usr/lib/python3/dist-packages/oslo_config/cfg.py\", line 3692, in _do_get",
                "    return (convert(val), alt_loc)",
                "  File \"/usr/lib/python3/dist-packages/oslo_config/types.py\", line 275, in __call__",
                "    raise ValueError(f'Unexpected boolean value {value!r}')",
                &format!("ValueError: {value}"),
                "",
                "During handling of the above exception, another exception occurred:",
                "",
                "Traceback (most recent call last):",
                "  File \"/usr/bin/keystone-wsgi-public\", line 52, in <module>",
                "    application = initialize_public_application()",
                "  File \"/usr/lib/python3/dist-packages/keystone/server/backends.py\", line 41, in load_backends",
                "    cache.configure_cache()",
                "  File \"/usr/lib/python3/dist-packages/oslo_config/cfg.py\", line 3710, in _do_get",
                "    raise ConfigFileValueError(message)",
                msg,
                "",
            ];
            let mut text = format!(
                "{STARTUP_WARNINGS}{warning}{prefix} CRITICAL keystone [-] Unhandled error: {msg}\n"
            );
            for l in traceback {
                text.push_str(&format!("{prefix} ERROR keystone {l}\n"));
            }
            log(&text);
            let _ = write_atomic(&files.start_stderr, &format!("{STARTUP_WARNINGS}{warning}"));
        }
        Refusal::Other(msg) => {
            log_line(
                &node.log_file,
                "CRITICAL",
                "keystone",
                &format!("Unhandled error: {msg}"),
            );
        }
    }
}

/// Append one oslo.log-shaped line to the node's keystone.log.
pub(super) fn log_line(path: &Path, level: &str, logger: &str, msg: &str) {
    let line = format!(
        "{} {} {level} {logger} [-] {msg}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f"),
        std::process::id()
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line, so concurrent requests do not interleave.
        let _ = f.write_all(line.as_bytes());
    }
}
