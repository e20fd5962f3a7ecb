#!/usr/bin/env bash
# Rolling vs halves on the demo world: kept for its old command line, now tests/bench/impact.sh
# (issue 11, item 4), which measures the same wall, reduced-capacity time and swap gap plus the
# client-impact meter's counts, on the demo world and on the lab. See that script's header.
#
#   tests/bench/halves-vs-rolling.sh            # = SIZES="3 5" RUNS=1 tests/bench/impact.sh demo
#   tests/bench/halves-vs-rolling.sh 3 5 9
#
# Environment: as impact.sh (CUTOVER or CUTOVER_BIN, RUNS: default 1 here); HALVES_OUT is
# passed on as IMPACT_OUT.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIZES="${*:-3 5}" RUNS=${RUNS:-1} IMPACT_OUT=${IMPACT_OUT:-${HALVES_OUT:-}} exec "$here/impact.sh" demo
