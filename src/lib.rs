//! cutover: walk an operator through a change that must roll across load-balanced nodes without
//! dropping live sessions — first of all Keystone's move from Fernet to JWS tokens.
//!
//! # Layout
//! - [`runbook`]: the YAML runbook model, loading with line/column errors, templating.
//! - [`inventory`]: nodes, load balancers, credentials.
//! - [`provider`]: the token providers (`fernet`, `jws`), typed once runbook text is compiled.
//! - [`engine`]: events, state, the pure `decide`/`apply` pair, gates and the compiled plan.
//! - [`journal`]: the append-only, hash-chained JSON Lines journal (the source of truth).
//! - [`transport`]: local shell and SSH.
//! - [`drivers`]: Keystone, HAProxy, service and shell actions, always the real code.
//! - [`world`]: the embedded demo world (a Keystone and an HAProxy stand-in).
//! - [`runtime`]: runs effects for the engine and feeds their outcomes back.
//! - [`glyphs`]: Unicode or ASCII (the locale, `--ascii`) for everything cutover prints.
//! - [`sanitize`]: the one sanitiser for outside text on its way to a terminal.
//! - [`tui`]: the operator's terminal UI, a view and keymap over the engine's state.
//!
//! The runbook, engine and journal know nothing of terminals.

pub mod drivers;
pub mod engine;
pub mod glyphs;
pub mod inventory;
pub mod journal;
pub mod meter;
pub mod provider;
pub mod runbook;
pub mod runtime;
pub mod sanitize;
pub mod transport;
pub mod tui;
pub mod world;
