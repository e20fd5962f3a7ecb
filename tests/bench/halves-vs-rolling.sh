#!/usr/bin/env bash
# Rolling vs halves (issue 11, item 2): the fernet-to-jws runbook, headless with the demo
# answers, on demo worlds of N nodes behind 2 load balancers (a fresh world per run, served by
# its own `cutover world serve`), once with `strategy=rolling` and once with `strategy=halves`.
# From each journal: the wall time (run_started to run_completed), the time with reduced
# capacity (first drain or swap intent to the last re-add's outcome), and for halves the swap
# gap (ms between the first instance's write and the last's). Then halves/rolling per N (the
# issue's goal: <= 0.6 at 5 nodes).
#
#   tests/bench/halves-vs-rolling.sh            # N = 3 and 5, release build
#   tests/bench/halves-vs-rolling.sh 3 5 9
#
# Environment (defaults):
#   CUTOVER or CUTOVER_BIN   a cutover binary (default: `cargo build --release`, then
#                            ${CARGO_TARGET_DIR:-<repo>/target}/release/cutover)
#   HALVES_OUT               where worlds, journals and outputs go (/tmp/cutover-halves-<stamp>)
# Exit: 0 when every run completed; 1 otherwise, naming the run.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(3 5)
for n in "${SIZES[@]}"; do
    case "$n" in '' | *[!0-9]* | 0 | 1) echo "usage: $0 [N>=2 ...]" >&2; exit 2 ;; esac
done
OUT=${HALVES_OUT:-/tmp/cutover-halves-$(date -u +%Y%m%dT%H%M%SZ)}
die() { echo "halves-vs-rolling: ERROR: $*" >&2; exit 1; }
say() { echo "halves-vs-rolling: $*" >&2; }
command -v jq >/dev/null || die "jq is not installed (apt-get install jq)"
mkdir -p "$OUT"

CUTOVER_BIN=${CUTOVER_BIN:-${CUTOVER:-}}
if [ -z "$CUTOVER_BIN" ]; then
    say "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet --bin cutover) || die "cargo build --release failed"
    CUTOVER_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/cutover"
fi
CUTOVER_BIN=$(realpath "$CUTOVER_BIN")
[ -x "$CUTOVER_BIN" ] || die "no cutover binary at $CUTOVER_BIN"

SERVE_PID=
stop_serving() {
    if [ -n "$SERVE_PID" ]; then
        kill -TERM "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
        SERVE_PID=
    fi
}
trap stop_serving EXIT

# From a journal (jq -s): the wall time, the reduced-capacity time and the swap gap.
JQ_TIMES='
  def ms: (sub("\\.[0-9]+"; "") | fromdateiso8601) * 1000
    + (try ((capture("\\.(?<f>[0-9]+)").f + "000")[0:3] | tonumber) catch 0);
  . as $all
  | ([$all[] | select(.kind == "run_started")][0].time) as $start
  | ([$all[] | select(.kind == "run_completed")][0].time) as $done
  | ([$all[] | select(.kind == "intent" and (.data.action == "lb.drain" or .data.action == "lb.swap"))][0].time) as $out
  | ([$all[] | select(.kind == "intent" and .data.action == "lb.ready") | .data.id]) as $readies
  | ([$all[] | select(.kind == "outcome" and (.data.id as $i | $readies | index($i)))] | last | .time) as $back
  | ([$all[] | select(.kind == "outcome" and .data.observed.swap_gap_ms != null) | .data.observed.swap_gap_ms][0]) as $gap
  | {
      wall: (if $done then (($done | ms) - ($start | ms)) / 1000 else null end),
      reduced: (if $out and $back then (($back | ms) - ($out | ms)) / 1000 else null end),
      gap_ms: $gap
    }'

printf '%-4s %-8s %8s %12s %8s\n' N strategy wall_s reduced_s gap_ms | tee "$OUT/summary.txt"
declare -A WALL
for n in "${SIZES[@]}"; do
    for strategy in rolling halves; do
        w="$OUT/world-$n-$strategy"
        j="$OUT/journal-$n-$strategy.jsonl"
        "$CUTOVER_BIN" world create "$w" --nodes "$n" --lbs 2 >"$OUT/create-$n-$strategy.out" 2>&1 ||
            die "world create --nodes $n failed: $(cat "$OUT/create-$n-$strategy.out")"
        "$CUTOVER_BIN" world serve "$w" >"$OUT/serve-$n-$strategy.out" 2>&1 &
        SERVE_PID=$!
        deadline=$((SECONDS + 60))
        until grep -qs '^serving ' "$OUT/serve-$n-$strategy.out"; do
            kill -0 "$SERVE_PID" 2>/dev/null || die "world serve ($n nodes) exited"
            [ $SECONDS -lt $deadline ] || die "world serve ($n nodes) not serving after 60 s"
            sleep 0.1
        done
        rc=0
        (cd "$REPO" && "$CUTOVER_BIN" run fernet-to-jws --headless -i "$w/inventory.yaml" \
            --journal "$j" --answers runbooks/demo-answers.yaml --param "strategy=$strategy") \
            >"$OUT/run-$n-$strategy.out" 2>&1 || rc=$?
        stop_serving
        [ "$rc" -eq 0 ] || die "run $strategy on $n nodes: exit $rc (see $OUT/run-$n-$strategy.out)"
        read -r wall reduced gap < <(jq -s -r "$JQ_TIMES | \"\(.wall) \(.reduced) \(.gap_ms // \"-\")\"" "$j")
        WALL[$n-$strategy]=$wall
        printf '%-4s %-8s %8.2f %12.2f %8s\n' "$n" "$strategy" "$wall" "$reduced" "$gap" | tee -a "$OUT/summary.txt"
    done
done
for n in "${SIZES[@]}"; do
    awk -v n="$n" -v h="${WALL[$n-halves]}" -v r="${WALL[$n-rolling]}" \
        'BEGIN { printf "N=%s halves/rolling wall = %.2f\n", n, h / r }' | tee -a "$OUT/summary.txt"
done
say "journals and outputs in $OUT"
