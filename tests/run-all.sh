#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (as root: Debian's
# haproxy, openssh-server, socat, tmux; a Python venv with Keystone from PyPI for the lab), then
# builds and runs every test: unit, engine, journal, demo world, CLI, rotations, TUI snapshots,
# the pseudo-terminal end-to-end test, SSH against real sshd, and the real Keystone/HAProxy lab.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/install-deps.sh

export CARGO_TERM_COLOR=never
# One locale for every test: the screen and the output follow it (ASCII without UTF-8), so the
# tests that expect Unicode get UTF-8 here, and those about other locales set theirs (LC_ALL=C)
# for the commands they run.
export LANG=C.UTF-8
unset LC_ALL LC_CTYPE
start=$(date +%s)
# One profile for everything: the binary the tests drive is the one they were built with.
cargo build --all-targets --locked
echo "build: $(( $(date +%s) - start ))s"

# Everything but the lab and the fault sweeps, in parallel.
cargo test --all-targets --locked -- --skip lab:: --skip fault_sweep_ --skip kill_9_ \
    --test-threads="${TEST_THREADS:-2}"

# The pool guard's proof: fault sweeps over a spread sample of journal positions and kill -9 at
# 20 points, each on fresh demo worlds with an independent sampler; their figures are printed.
# (tests/fault-sweep.sh runs every position.)
cargo test --locked --test fault_sweep -- --nocapture --test-threads=3

# The lab (real Keystone, sshd, HAProxy): one lab at a time, timings shown.
cargo test --locked --test lab_e2e -- lab:: --nocapture --test-threads=1
echo "all tests: $(( $(date +%s) - start ))s"
