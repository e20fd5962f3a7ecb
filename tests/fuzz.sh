#!/usr/bin/env bash
# The long run of the property tests in tests/fuzz.rs: every property with PROPTEST_CASES cases
# (default 100000; the normal suite runs 256). Parsers of runbooks, inventories, answers files,
# journals, keystone.conf and HAProxy's runtime API; a failure prints the minimal input.
#   PROPTEST_CASES=20000 tests/fuzz.sh set_provider    one property, fewer cases
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
exec cargo test --locked --release --test fuzz -- --test-threads="${TEST_THREADS:-2}" "$@"
