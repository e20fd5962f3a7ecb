//! Helpers shared by the integration tests: each test file that needs them says `mod support;`.
//!
//! Every test binary compiles this module on its own and uses only part of it, hence the
//! `dead_code` allowance. What is specific to one test file stays in that file.
#![allow(dead_code)]

pub mod bin;
pub mod engine;
pub mod fleet;
pub mod journal;
pub mod pty;
pub mod sshd;
pub mod world;
