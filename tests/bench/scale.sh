#!/usr/bin/env bash
# How the flagship's cost grows with the fleet (issue 12, item 3): the fernet-to-jws runbook,
# headless with the demo answers, on demo worlds of N nodes behind 2 load balancers, each world
# served by its own `cutover world serve` process. For each N: the wall time of the run (process
# start to exit), the time per node, and where the time went from the journal (per step, per
# action kind, per gate: tests/bench/journal-breakdown.jq). Then the ratio of the time per node
# at the largest N to the time per node at the smallest (goal: <= 1.5; and <= 120 s at 64).
#
#   tests/bench/scale.sh                 # N = 3 and 64, release build
#   tests/bench/scale.sh 3 16 64         # any sizes, smallest first
#
# Environment (defaults):
#   CUTOVER or CUTOVER_BIN   a cutover binary (skips the build; default: `cargo build --release`,
#                            then ${CARGO_TARGET_DIR:-<repo>/target}/release/cutover)
#   SCALE_OUT                where worlds, journals and outputs go (/tmp/cutover-scale-<UTC stamp>)
#   SCALE_LBS                load balancers per world (2)
#   SCALE_TIMEOUT            seconds a run may take before it is stopped and reported (1800)
# Exit: 0 when every run completed (exit 0 of `cutover run`); 1 otherwise, naming the run.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BREAKDOWN="$REPO/tests/bench/journal-breakdown.jq"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(3 64)
for n in "${SIZES[@]}"; do
    case "$n" in '' | *[!0-9]* | 0) echo "usage: $0 [N>=1 ...]" >&2; exit 2 ;; esac
done
LBS=${SCALE_LBS:-2}
OUT=${SCALE_OUT:-/tmp/cutover-scale-$(date -u +%Y%m%dT%H%M%SZ)}
LIMIT=${SCALE_TIMEOUT:-1800}

die() { echo "scale: ERROR: $*" >&2; exit 1; }
say() { echo "scale: $*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
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

# CPU seconds (user + system) of a process, from /proc/PID/stat.
cpu_of() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    echo "${stat##*) }" | awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }'
}

declare -A WALL PER
summary="$OUT/summary.txt"
: >"$summary"
for n in "${SIZES[@]}"; do
    w="$OUT/world-$n"
    j="$OUT/journal-$n.jsonl"
    rm -rf "$w" "$j"
    "$CUTOVER_BIN" world create "$w" --nodes "$n" --lbs "$LBS" >"$OUT/create-$n.out" 2>&1 ||
        { cat "$OUT/create-$n.out" >&2; die "world create --nodes $n failed"; }
    "$CUTOVER_BIN" world serve "$w" >"$OUT/serve-$n.out" 2>&1 &
    SERVE_PID=$!
    deadline=$((SECONDS + 60))
    until grep -q '^serving ' "$OUT/serve-$n.out"; do
        kill -0 "$SERVE_PID" 2>/dev/null || { cat "$OUT/serve-$n.out" >&2; die "world serve ($n nodes) exited"; }
        [ $SECONDS -lt $deadline ] || die "world serve ($n nodes) not serving after 60 s"
        sleep 0.1
    done
    say "N=$n: cutover run fernet-to-jws --headless ($LBS load balancers)"
    t0=$(now)
    rc=0
    (cd "$REPO" && timeout "$LIMIT" "$CUTOVER_BIN" run runbooks/fernet-to-jws.yaml \
        -i "$w/inventory.yaml" --headless --answers runbooks/demo-answers.yaml \
        --journal "$j") >"$OUT/run-$n.out" 2>&1 || rc=$?
    t1=$(now)
    serve_cpu=$(cpu_of "$SERVE_PID")
    stop_serving
    [ "$rc" = 0 ] || { tail -20 "$OUT/run-$n.out" >&2; die "N=$n: cutover run exited $rc (output: $OUT/run-$n.out)"; }
    WALL[$n]=$(calc "$t1 - $t0")
    PER[$n]=$(calc "${WALL[$n]} / $n")
    {
        echo "== N=$n nodes, $LBS load balancers: wall ${WALL[$n]} s, ${PER[$n]} s per node, world serve CPU ${serve_cpu} s"
        jq -rs -f "$BREAKDOWN" "$j" | awk -F'\t' '
            $1 == "wall"   { printf "  journal wall %s s\n", $2 }
            $1 == "step"   { printf "  step %-14s %8s s\n", $2, $3 }
            $1 == "kind"   { printf "  %-32s %5d ops %8s s busy %8s s summed\n", $2, $3, $4, $5 }
            $1 == "gate"   { printf "  gate %-27s %5d reads %7s s   each %d-%d ms\n", $2, $3, $4, $5, $6 }
            $1 == "other"  { printf "  %s: %s s\n", $2, $3 }
            $1 == "window" { printf "  mixed window %s s\n", $2 }'
        echo "  slowest ops:"
        jq -rs '
            (map(select(.kind == "intent")) | map({key: (.data.id | tostring), value: {a: .data.action, n: (.node // "-")}}) | from_entries) as $i
            | [.[] | select(.kind == "outcome") | {ms: (.data.duration_ms // 0), a: $i[.data.id | tostring].a, n: $i[.data.id | tostring].n}]
            | sort_by(-.ms)[:8][] | "    \(.ms) ms\t\(.a)\t\(.n)"' "$j"
    } | tee -a "$summary"
done

first=${SIZES[0]}
last=${SIZES[${#SIZES[@]}-1]}
{
    echo "== summary ($(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), $(basename "$CUTOVER_BIN"))"
    for n in "${SIZES[@]}"; do
        printf "  N=%-4s wall %8s s   per node %6s s\n" "$n" "${WALL[$n]}" "${PER[$n]}"
    done
    if [ "$first" != "$last" ]; then
        echo "  per-node ratio N=$last / N=$first: $(calc "${PER[$last]} / ${PER[$first]}") (goal <= 1.5)"
    fi
} | tee -a "$summary"
say "journals and outputs in $OUT"
