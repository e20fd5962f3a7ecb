#!/bin/bash
# cutover against a hand-written shell cutover, on one real lab (tests/lab: 3 Keystone nodes behind
# 2 HAProxies, OpenSSH sshd per node, all on 127.0.0.1). Run as root, from anywhere:
#
#   tests/bench/manual-vs-cutover.sh [N]          # N pairs, default 3
#
# Per pair: `lab.sh reset` (every node on Fernet, no JWS keys, every server UP), `cutover run
# fernet-to-jws --headless --answers runbooks/demo-answers.yaml` (release build), `lab.sh check
# jws`; reset, `lab.sh manual-cutover`, `lab.sh check jws`. Prints per pair both wall times (the
# process, start to exit), the ratio and each mixed window (first JWS node re-added → last Fernet
# node drained: from cutover's journal; from the manual script's own timestamps), the median
# ratio, and cutover's phase breakdown from each journal (per step, per action kind, per gate).
#
# Environment (defaults): BENCH_LAB_DIR=/tmp/cutover-lab-bench BENCH_BASE_PORT=17500
#   BENCH_OUT=/tmp/cutover-bench-<UTC stamp> (journals, times, summary.txt)
#   CUTOVER or CUTOVER_BIN (a cutover binary: skips the build; default: `cargo build --release`, then
#   ${CARGO_TARGET_DIR:-<repo>/target}/release/cutover)   BENCH_KEEP_LAB=1 (leave the lab up)
#   BENCH_REUSE_LAB=1 (use a lab already up in BENCH_LAB_DIR with the same shape)   LAB_VENV (as lab.sh)
#   CUTOVER_ARGS (default "--meter off": the manual script runs no client load either; set it to
#   "" to time cutover with its client-impact meter on)
# Exit: 0 when every run finished and passed the lab's checks; 1 otherwise (naming the run).
set -euo pipefail

N=${1:-3}
case "$N" in '' | *[!0-9]* | 0) echo "usage: $0 [N>=1]" >&2; exit 2 ;; esac
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB="$REPO/tests/lab/lab.sh"
export LAB_DIR=${BENCH_LAB_DIR:-/tmp/cutover-lab-bench}
export LAB_BASE_PORT=${BENCH_BASE_PORT:-17500}
export LAB_NODES=3 LAB_LBS=2
OUT=${BENCH_OUT:-/tmp/cutover-bench-$(date -u +%Y%m%dT%H%M%SZ)}
BREAKDOWN="$REPO/tests/bench/journal-breakdown.jq"

die() { echo "bench: ERROR: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

[ "$(id -u)" = 0 ] || die "run as root (the lab needs it)"
command -v jq >/dev/null || die "jq is not installed (apt-get install jq)"
mkdir -p "$OUT"

CUTOVER_BIN=${CUTOVER_BIN:-${CUTOVER:-}}
if [ -z "$CUTOVER_BIN" ]; then
    say "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
    CUTOVER_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/cutover"
fi
[ -x "$CUTOVER_BIN" ] || die "no cutover binary at $CUTOVER_BIN"

if [ -n "${BENCH_REUSE_LAB:-}" ] && [ -e "$LAB_DIR/.cutover-lab" ] &&
    grep -qx "LAB_NODES=$LAB_NODES" "$LAB_DIR/lab.env" && grep -qx "LAB_LBS=$LAB_LBS" "$LAB_DIR/lab.env" &&
    grep -qx "LAB_BASE_PORT=$LAB_BASE_PORT" "$LAB_DIR/lab.env"; then
    say "reusing the lab in $LAB_DIR"
else
    say "bringing up the lab in $LAB_DIR (3 nodes, 2 HAProxy, base port $LAB_BASE_PORT)"
    "$LAB" up >"$OUT/lab-up.log" 2>&1 || { tail -20 "$OUT/lab-up.log" >&2; die "lab.sh up failed (log: $OUT/lab-up.log)"; }
fi
if [ -z "${BENCH_KEEP_LAB:-}" ]; then
    trap '"$LAB" down >/dev/null 2>&1 || true' EXIT
fi

reset_lab() {
    "$LAB" reset >>"$OUT/lab-reset.log" 2>&1 || { tail -20 "$OUT/lab-reset.log" >&2; die "lab.sh reset failed before $1"; }
}
check_jws() {
    "$LAB" check jws >>"$OUT/lab-check.log" 2>&1 || { tail -5 "$OUT/lab-check.log" >&2; die "the lab is not all-JWS and in the pool after $1"; }
}

CUTOVER_ARGS=${CUTOVER_ARGS---meter off}
say "cutover run ... ${CUTOVER_ARGS:-(no extra arguments)}"
ratios=()
summary="$OUT/summary.txt"
: >"$summary"
for p in $(seq "$N"); do
    reset_lab "cutover run $p"
    j="$OUT/cutover-$p.jsonl"
    say "pair $p/$N: cutover run fernet-to-jws"
    t0=$(now)
    (cd "$REPO" && env -u SSH_AUTH_SOCK "$CUTOVER_BIN" run runbooks/fernet-to-jws.yaml \
        -i "$LAB_DIR/inventory.yaml" --headless --answers runbooks/demo-answers.yaml \
        --journal "$j" $CUTOVER_ARGS) >"$OUT/cutover-$p.out" 2>&1 ||
        { tail -20 "$OUT/cutover-$p.out" >&2; die "cutover run $p failed (output: $OUT/cutover-$p.out)"; }
    t1=$(now)
    check_jws "cutover run $p"
    c_wall=$(calc "$t1 - $t0")
    jq -rs -f "$BREAKDOWN" "$j" >"$OUT/cutover-$p.breakdown.tsv"
    c_win=$(awk -F'\t' '$1 == "window" { print $2 }' "$OUT/cutover-$p.breakdown.tsv")

    reset_lab "manual run $p"
    say "pair $p/$N: lab.sh manual-cutover"
    t0=$(now)
    "$LAB" manual-cutover >"$OUT/manual-$p.times" 2>"$OUT/manual-$p.err" ||
        { tail -20 "$OUT/manual-$p.err" >&2; die "manual-cutover run $p failed"; }
    t1=$(now)
    check_jws "manual run $p"
    m_wall=$(calc "$t1 - $t0")
    m_win=$(awk -v n="node$LAB_NODES" '$3 == "readd" && $4 == "node1" { r = $2 } $3 == "drained" && $4 == n { d = $2 }
        END { printf "%.2f", d - r }' "$OUT/manual-$p.times")
    ratio=$(calc "$c_wall / $m_wall")
    ratios+=("$ratio")
    printf 'pair %d: cutover %6.2f s  manual %6.2f s  ratio %.2f   mixed window: cutover %s s, manual %s s   (load average %s)\n' \
        "$p" "$c_wall" "$m_wall" "$ratio" "${c_win:-?}" "$m_win" "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$summary"
done

median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "median ratio (cutover / manual) over $N pair(s): $median   (goal: <= 1.10)" | tee -a "$summary"

for p in $(seq "$N"); do
    {
        echo
        echo "cutover run $p, from its journal ($OUT/cutover-$p.jsonl):"
        awk -F'\t' '
            $1 == "wall" { printf "  run_started → run_completed  %6.2f s\n", $2 }
            $1 == "step" { if (!s++) print "  per step:"; printf "    %-32s %6.2f s\n", $2, $3 }
            $1 == "kind" { if (!k++) printf "  per action kind:                      %5s %9s %9s\n", "n", "busy", "sum"; printf "    %-32s %5d %7.2f s %7.2f s\n", $2, $3, $4, $5 }
            $1 == "gate" { if (!g++) print "  gate reads, per gate:                  n       sum   each read"; printf "    %-32s %5d %7.2f s   %d-%d ms\n", $2, $3, $4, $5, $6 }
            $1 == "other" { printf "  %s: %.2f s\n", $2, $3 }
            $1 == "window" { printf "  mixed window (first lb.ready done → last lb.drain done): %.2f s\n", $2 }
        ' "$OUT/cutover-$p.breakdown.tsv"
        echo "manual run $p, its own timestamps ($OUT/manual-$p.times):"
        awk '$3 == "start" { t0 = $2; prev = $2 } NF >= 3 && $3 != "start" {
                printf "    %-22s +%6.2f s  (%.2f s since the previous mark)\n", $3 " " $4, $2 - t0, $2 - prev; prev = $2 }' \
            "$OUT/manual-$p.times"
    } | tee -a "$summary"
done
echo
echo "bench: journals, times and this summary in $OUT" >&2
