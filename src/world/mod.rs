//! The embedded demo world: Keystone nodes and HAProxy instances that the real cutover drivers
//! talk to without knowing they are simulated.
//!
//! Everything a driver touches is real: files on disk (keystone.conf, Fernet and JWS key
//! repositories, logs, a restart script), HTTP on loopback ports (one Keystone stand-in per
//! node), and HAProxy's runtime-API text over a UNIX socket (plus a frontend that really
//! proxies HTTP requests). Only the processes behind them are stand-ins living in this process.
//!
//! # Lifecycle
//! - [`create`] lays out a new world directory and picks its ports; [`load`] reads it back;
//!   [`create_or_load`] does whichever applies.
//! - [`start`] brings up the stand-ins on the recorded ports and returns a [`WorldHandle`];
//!   [`WorldHandle::shutdown`] (or dropping the handle) stops them again. A world can be started
//!   again later: key repositories, configs, the HAProxy runtime state file and the logs persist.
//!
//! # Layout of a world directory
//! ```text
//! DIR/world.json            this WorldInfo
//! DIR/inventory.yaml        a cutover inventory for the world (demo_world: DIR)
//! DIR/clouds.yaml           cloud `demo` (admin password, mode 0600)
//! DIR/trusts.json           seeded trusts served at GET /v3/OS-TRUST/trusts
//! DIR/nodeK/etc/keystone/   keystone.conf, fernet-keys/{0,1,2}, jws-keys/{private,public}/
//! DIR/world.lock            held (flock) by the process serving the world: how `fault` knows
//! DIR/nodeK/log/keystone.log
//! DIR/nodeK/bin/keystone-restart
//! DIR/nodeK/run/restart.req     present while a restart is requested
//! DIR/nodeK/run/start.req       present while a start is requested (the `start` fault)
//! DIR/nodeK/run/start.result    outcome of the last start: `ok PROVIDER` or `failed: REASON`
//! DIR/nodeK/run/start.stderr    what a failed start printed before it died (bad option values)
//! DIR/nodeK/run/provider        the provider the node is running; absent while it is down
//! DIR/nodeK/run/restarts.log    `<unix epoch ms> restart`, one line per restart begun
//! DIR/nodeK/run/break-restart   fault: every start fails while present
//! DIR/nodeK/run/slow-restart    fault: seconds a start takes before the node listens
//! DIR/nodeK/run/stopped         fault: the Keystone process is dead while present
//! DIR/haproxy-K.sock        runtime API (admin level; also `@world reload`, see [`fault`])
//! DIR/haproxy-K.state       persisted runtime state (HAProxy's server-state-file format)
//! DIR/haproxy-K.admin.log   `<unix epoch ms> <command line>` for every admin command that
//!                           changed a server's state (logged after the change)
//! DIR/haproxy-K.cfg         the instance's configuration, as Debian's HAProxy would run it
//!                           (no server-state-file: a reload loses MAINT); the inventory's
//!                           `config:`, read by cutover's probes, not by the stand-in
//! DIR/haproxy-K.down        fault: the instance answers nothing while present
//! DIR/token-cache.flush     fault: present until the serving process has emptied the shared
//!                           token cache (`token-cache.flushed` then says how many entries went)
//! ```
//! `run/provider`, `run/restarts.log` and `haproxy-K.admin.log` are for observers that must
//! not take cutover's word for it (a test's own sampler, a person watching a rehearsal): they
//! are written by the stand-in itself, at the moment things happen, from what it actually runs.
//!
//! # Restart protocol
//! `bin/keystone-restart` creates `run/restart.req` and waits (≤ 10 s) until the stand-in deletes
//! it. The stand-in notes the restart in `run/restarts.log`, stops listening, deletes the file
//! (the acknowledgement), waits a moment, re-reads keystone.conf and the keys, and listens again
//! — or stays down, logging why, when the configuration cannot start (as Keystone does with
//! `provider = jws` and no private.pem). Either way it writes the outcome to `run/start.result`,
//! which the script waits for: it exits 0 once Keystone listens, 1 with Keystone's reason on
//! stderr when it does not (as `systemctl restart` of a unit that fails to start does). A
//! boolean option Keystone reads at start with a value oslo.config refuses (`[DEFAULT] debug =
//! notabool`, `[cache] enabled = maybe`) fails the start as Keystone 30 does: deprecation
//! warnings, then argparse's one line or a CRITICAL line and a Traceback in the log; the script
//! then prints only the warnings (`run/start.stderr`), and the reason is in the log.
//!
//! # Faults
//! [`fault`] breaks a running world the way real services break in a change window (HAProxy
//! reloaded without its state file, another operator, an unreachable instance, a Keystone that
//! will not restart, restarts slowly or dies), over the admin socket and the files above, so it
//! works whichever process serves the world.
//!
//! # Where things are
//! - `info`: what a world is ([`WorldInfo`], world.json) and [`load`]; `layout`: [`create`]
//!   (directories, keys, configs, ports), [`relocate_busy_ports`]; `serve`: [`start`],
//!   [`WorldHandle`], [`is_served`] (`world.lock`).
//! - `keystone/`: the Keystone stand-in (`config` what a start reads and refuses, `process` the
//!   supervisor and restarts, `run` the `run/` files, `api` the HTTP routes, `log`
//!   keystone.log, `identity` the one user); `tokens`: Fernet and JWS tokens; `ini`: keystone.conf.
//! - `haproxy/`: the HAProxy stand-in (`server` a server's admin state and health counter,
//!   `runtime_api` the commands and the state file, `stats` `show stat`, `check` health checks,
//!   `admin` the socket, `frontend` the HTTP proxy, `instance` the shared running state).
//! - [`token_cache`]: the shared token cache of a world made with `--token-cache` (one
//!   memcached for every node).
//! - [`fault`]: faults injected into a served world from outside its process.
//!
//! Imports go one way: `serve` → `keystone`, `haproxy` → `info`; nothing here imports this file.

pub mod fault;
mod haproxy;
mod info;
mod ini;
mod keyring;
mod keystone;
mod layout;
mod serve;
pub mod token_cache;
mod tokens;
mod watch;

pub use info::{
    WORLD_VERSION, WorldInfo, WorldLb, WorldNode, WorldOptions, WorldServer, WorldSpec, load,
};
pub use layout::relocate_busy_ports;
pub use serve::{WorldHandle, is_served, start};

use std::path::Path;

/// Create a new world in `dir`, which must be absent or empty. Picks free loopback ports now
/// (bind 127.0.0.1:0, note, release) and records them in `DIR/world.json`.
pub fn create(dir: &Path, spec: &WorldSpec) -> anyhow::Result<WorldInfo> {
    layout::create(dir, spec, &WorldOptions::default())
}

/// [`create`] with [`WorldOptions`] (a shared token cache).
pub fn create_with(dir: &Path, spec: &WorldSpec, opts: &WorldOptions) -> anyhow::Result<WorldInfo> {
    layout::create(dir, spec, opts)
}

/// [`load`] the world in `dir` if it has a world.json, else [`create`] one.
pub fn create_or_load(dir: &Path, spec: &WorldSpec) -> anyhow::Result<WorldInfo> {
    if dir.join("world.json").exists() {
        load(dir)
    } else {
        create(dir, spec)
    }
}
