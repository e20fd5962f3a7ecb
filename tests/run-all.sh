#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (as root: Debian's
# haproxy, openssh-server, socat, tmux; a Python venv with Keystone from PyPI for the lab), then
# builds and runs every test: unit, engine, journal, demo world, CLI, TUI snapshots, the
# pseudo-terminal end-to-end test, SSH against real sshd, and the real Keystone/HAProxy lab.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x tests/lab/install.sh ]; then
  tests/lab/install.sh
fi

export CARGO_TERM_COLOR=never
# One profile for everything: the binary the tests drive is the one they were built with.
cargo build --all-targets --locked
cargo test --all-targets --locked -- --test-threads="${TEST_THREADS:-2}"
