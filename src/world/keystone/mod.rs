//! The Keystone stand-in: one HTTP server per node, configured by the node's keystone.conf.
//!
//! It behaves as Keystone does where cutover can tell: it reads its token provider at (re)start
//! and refuses to start when that provider's keys are missing, issues real Fernet or ES256 JWS
//! tokens, validates only tokens of its current provider (a token of the other provider is
//! answered exactly as Keystone answers it: 401 as X-Auth-Token, 404 as X-Subject-Token), and
//! writes a keystone.log. Requests are logged by method, path and status only: never a token,
//! a password or key material.
//!
//! A supervisor per node looks in `run/` for restart and start requests and for the injected
//! faults whenever one of its files comes or goes (inotify, `world::watch`; every 100 ms where
//! inotify cannot be had) (see [`super::fault`]): a start that must fail (`break-restart`, logged as a
//! CRITICAL line naming the fault, as Keystone logs a config it refuses), a start that takes
//! longer (`slow-restart`), a process that dies (`stopped`). It reports every start's outcome in
//! `run/start.result`, which the restart script waits for so that a restart that does not come
//! up fails the way `systemctl restart` does, and leaves two files for an observer that must not
//! trust cutover's own reading: `run/provider` (the provider it is running, present only while
//! it listens) and `run/restarts.log` (the moment each restart began).

mod api;
mod config;
mod identity;
mod log;
mod process;
mod run;

pub use identity::Shared;
pub use process::start_node;
pub(crate) use run::{RunFiles, write_atomic};
