#!/usr/bin/env bash
# The full fault sweep: every journal position of the flagship's rolling step, for each fault
# (hap-reload, set-ready of the node in turn), each on a fresh demo world with an independent
# sampler. CI runs a spread sample of 30 positions per fault (tests/fault_sweep.rs); run this
# before changing the engine, a gate, a driver or the demo world. About 6 s per position.
#   FAULT_SWEEP_K=88,90 tests/fault-sweep.sh   reruns given positions and keeps their worlds.
set -euo pipefail
cd "$(dirname "$0")/.."
export FAULT_SWEEP="${FAULT_SWEEP:-full}"
exec cargo test --locked --test fault_sweep -- --nocapture --test-threads="${TEST_THREADS:-2}"
