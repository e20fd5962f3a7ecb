#!/usr/bin/env bash
# Client impact, rolling vs halves (issue 11, item 4), side by side on the demo world and on the
# lab. For each world, N in SIZES and strategy in rolling, halves, RUNS times: a fresh world (demo:
# `cutover world create --nodes N --lbs 2` served by its own `cutover world serve`; lab: `lab.sh
# reset` of a lab of N Keystones behind 2 HAProxies), then `cutover run fernet-to-jws --headless
# --answers runbooks/demo-answers.yaml -p strategy=<s>` (release build; the client-impact meter is
# on, it goes through every load balancer's frontend_url). From each journal, one row:
#
#   wall_s      run_started → run_completed
#   reduced_s   some node out of the pool: first lb.drain/lb.swap intent → last lb.ready outcome
#   mixed_s     the mixed window: first lb.ready done → last lb.drain done (0: never mixed)
#   mixfail     the meter's fresh-token failures in seconds overlapping that window
#   fresh       the meter's validations of tokens issued during the run (validate_new, all kinds)
#   refused     of those, refused (401/404); errors and timeouts in err
#   crossed     of those, issued before a phase change (the swap) and refused after it (apart)
#   issfail     issuance failures (refused, error, timeout)
#   olddied_s   when an old token (issued at the meter's start) was first refused at any
#               frontend, seconds after run_started ("-": they never died)
#   gap_ms      halves: the swap gap across load-balancer instances, from the lb.swap outcome
#
# Then, per world and N, the row of medians over RUNS (each column on its own) and the
# halves/rolling ratio of the median wall times (issue 11's goal: <= 0.6 at 5 nodes, demo world).
#
#   tests/bench/impact.sh [demo|lab|both]     # default demo
#
# Environment (defaults):
#   SIZES="3 5"        node counts (each >= 2)
#   RUNS               runs per (world, N, strategy): 3 on the demo world, 1 on the lab
#   CUTOVER or CUTOVER_BIN   a cutover binary (skips `cargo build --release`; default
#                      ${CARGO_TARGET_DIR:-<repo>/target}/release/cutover after the build)
#   IMPACT_OUT         worlds, journals, outputs, rows.tsv, summary.txt
#                      (/tmp/cutover-impact-<UTC stamp>)
#   IMPACT_LAB_DIR=/tmp/cutover-impact-lab  IMPACT_LAB_PORT=23000   the lab's LAB_DIR and
#                      LAB_BASE_PORT (a lab of its own; brought up per N, `lab.sh down` on exit)
#   LAB_VENV           as lab.sh
# The lab needs root and `sudo tests/lab/install.sh` once. Only 127.0.0.1 is ever contacted.
# Exit: 0 when every run completed (and, on the lab, `lab.sh check jws` passed); 1 otherwise,
# naming the run; 2 on a usage error.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB="$REPO/tests/lab/lab.sh"
WHICH=${1:-demo}
case "$WHICH" in demo) WORLDS=(demo) ;; lab) WORLDS=(lab) ;; both) WORLDS=(demo lab) ;;
    *) echo "usage: $0 [demo|lab|both]" >&2; exit 2 ;; esac
read -r -a SIZES <<<"${SIZES:-3 5}"
for n in "${SIZES[@]}"; do
    case "$n" in '' | *[!0-9]* | 0 | 1) echo "$0: SIZES: every N must be >= 2 (got '$n')" >&2; exit 2 ;; esac
done
if [ -n "${RUNS:-}" ]; then
    case "$RUNS" in '' | *[!0-9]* | 0) echo "$0: RUNS must be >= 1" >&2; exit 2 ;; esac
fi
OUT=${IMPACT_OUT:-/tmp/cutover-impact-$(date -u +%Y%m%dT%H%M%SZ)}
die() { echo "impact: ERROR: $*" >&2; exit 1; }
say() { echo "impact: $*" >&2; }
command -v jq >/dev/null || die "jq is not installed (apt-get install jq)"
if [[ " ${WORLDS[*]} " == *" lab "* ]]; then
    [ "$(id -u)" = 0 ] || die "the lab needs root (run with sudo, or pick 'demo')"
fi
mkdir -p "$OUT"

CUTOVER_BIN=${CUTOVER_BIN:-${CUTOVER:-}}
if [ -z "$CUTOVER_BIN" ]; then
    say "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet --bin cutover) || die "cargo build --release failed"
    CUTOVER_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/cutover"
fi
CUTOVER_BIN=$(realpath "$CUTOVER_BIN")
[ -x "$CUTOVER_BIN" ] || die "no cutover binary at $CUTOVER_BIN"

# Cleanup: the demo world's server, the lab (only a lab this script brought up).
SERVE_PID=
LAB_IS_UP=
stop_serving() {
    if [ -n "$SERVE_PID" ]; then
        kill -TERM "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
        SERVE_PID=
    fi
}
lab_down() {
    if [ -n "$LAB_IS_UP" ]; then
        "$LAB" down >>"$OUT/lab-down.log" 2>&1 || say "lab.sh down failed (log: $OUT/lab-down.log)"
        LAB_IS_UP=
    fi
}
cleanup() { stop_serving; lab_down; }
trap cleanup EXIT
trap 'exit 130' INT TERM

export LAB_DIR=${IMPACT_LAB_DIR:-/tmp/cutover-impact-lab}
export LAB_BASE_PORT=${IMPACT_LAB_PORT:-23000}
export LAB_LBS=2

# One journal (jq -s) → one TSV row (see the header for the columns).
JQ_ROW='
  def ts: (.[0:19] + "Z" | fromdateiso8601)
    + ((capture("\\.(?<f>[0-9]+)") | .f | "0." + . | tonumber) // 0);
  def r2: . * 100 | round / 100;
  def dash: if . == null then "-" else . end;
  . as $all
  | ([$all[] | select(.kind == "run_started")][0].time | ts) as $t0
  | ([$all[] | select(.kind == "run_completed")][0].time) as $done
  | ([$all[] | select(.kind == "intent") | {key: (.data.id | tostring), value: .data.action}]
      | from_entries) as $act
  | [$all[] | select(.kind == "outcome") | {a: $act[.data.id | tostring], t: (.time | ts), o: .data.observed}] as $outs
  | ([$all[] | select(.kind == "intent" and (.data.action == "lb.drain" or .data.action == "lb.swap")) | .time | ts]
      | min) as $out
  | ([$outs[] | select(.a == "lb.ready") | .t]) as $readies
  | ([$outs[] | select(.a == "lb.drain") | .t]) as $drains
  | (if ($readies | length) > 0 and ($drains | length) > 0 and ($drains | max) > ($readies | min)
     then [($readies | min), ($drains | max)] else null end) as $win
  | ([$all[] | select(.kind == "client_impact" and .data.off == null)]) as $ci
  | ($ci | last | .data) as $m
  | (if $m then ($m.meter_started | ts) else null end) as $m0
  | ([$ci[] | .data.series[]?]) as $series
  | ($m.total.validate_new // {}) as $vn
  | ($m.total.issue // {}) as $is
  | [
      (if $done then ($done | ts) - $t0 | r2 else null end),
      (if $out and ($readies | length) > 0 then ($readies | max) - $out | r2 else null end),
      (if $win then $win[1] - $win[0] | r2 else 0 end),
      (if $m == null then null elif $win == null then 0
       else [$series[] | select($m0 + .[0] < $win[1] and $m0 + .[0] + 1 > $win[0]) | .[2]] | add // 0 end),
      (if $m then [$vn[]] | add // 0 else null end),
      $vn.refused,
      (if $m then ($vn.error // 0) + ($vn.timeout // 0) else null end),
      $vn.crossed,
      (if $m then ($is.refused // 0) + ($is.error // 0) + ($is.timeout // 0) else null end),
      (if $m and ($m.old_died | length) > 0 then ([$m.old_died[] | ts] | min) - $t0 | r2 else null end),
      ([$outs[] | select(.o.swap_gap_ms != null) | .o.swap_gap_ms][0])
    ]
  | map(dash | tostring) | join("\t")'

COLS=(wall_s reduced_s mixed_s mixfail fresh refused err crossed issfail olddied_s gap_ms)
ROWS="$OUT/rows.tsv"
SUMMARY="$OUT/summary.txt"
: >"$ROWS"
: >"$SUMMARY"
header() { printf '%-5s %-3s %-8s %-5s' world N strategy run; printf ' %9s' "${COLS[@]}"; printf '\n'; }
row() { # world n strategy run <tsv columns>
    printf '%-5s %-3s %-8s %-5s' "$1" "$2" "$3" "$4"
    shift 4
    local c
    for c in $(tr '\t' ' ' <<<"$*"); do printf ' %9s' "$c"; done
    printf '\n'
}

# run_demo N STRATEGY R: a fresh demo world of N nodes and 2 LBs, served, one headless run.
run_demo() {
    local n=$1 s=$2 r=$3 tag="demo-$1-$2-$3"
    local w="$OUT/world-$tag"
    "$CUTOVER_BIN" world create "$w" --nodes "$n" --lbs 2 >"$OUT/create-$tag.out" 2>&1 ||
        die "world create --nodes $n failed: $(cat "$OUT/create-$tag.out")"
    "$CUTOVER_BIN" world serve "$w" >"$OUT/serve-$tag.out" 2>&1 &
    SERVE_PID=$!
    local deadline=$((SECONDS + 60))
    until grep -qs '^serving ' "$OUT/serve-$tag.out"; do
        kill -0 "$SERVE_PID" 2>/dev/null || die "world serve ($tag) exited: $(tail -3 "$OUT/serve-$tag.out")"
        [ $SECONDS -lt $deadline ] || die "world serve ($tag) not serving after 60 s"
        sleep 0.1
    done
    local rc=0
    (cd "$REPO" && "$CUTOVER_BIN" run fernet-to-jws --headless -i "$w/inventory.yaml" \
        --journal "$OUT/journal-$tag.jsonl" --answers runbooks/demo-answers.yaml --param "strategy=$s") \
        >"$OUT/run-$tag.out" 2>&1 || rc=$?
    stop_serving
    [ "$rc" -eq 0 ] || die "run $tag: exit $rc (see $OUT/run-$tag.out)"
}

# run_lab N STRATEGY R: `lab.sh reset` of the lab that is up, one headless run, `lab.sh check jws`.
run_lab() {
    local n=$1 s=$2 r=$3 tag="lab-$1-$2-$3"
    "$LAB" reset >>"$OUT/lab-reset.log" 2>&1 ||
        { tail -20 "$OUT/lab-reset.log" >&2; die "lab.sh reset failed before $tag"; }
    local rc=0
    (cd "$REPO" && env -u SSH_AUTH_SOCK "$CUTOVER_BIN" run runbooks/fernet-to-jws.yaml --headless \
        -i "$LAB_DIR/inventory.yaml" --journal "$OUT/journal-$tag.jsonl" \
        --answers runbooks/demo-answers.yaml --param "strategy=$s") >"$OUT/run-$tag.out" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || { tail -20 "$OUT/run-$tag.out" >&2; die "run $tag: exit $rc (see $OUT/run-$tag.out)"; }
    "$LAB" check jws >>"$OUT/lab-check.log" 2>&1 ||
        { tail -5 "$OUT/lab-check.log" >&2; die "the lab is not all-JWS and in the pool after $tag"; }
}

lab_up() { # N
    export LAB_NODES=$1
    say "lab.sh up: $1 nodes, 2 HAProxy, LAB_DIR=$LAB_DIR, base port $LAB_BASE_PORT"
    LAB_IS_UP=1
    "$LAB" up >"$OUT/lab-up-$1.log" 2>&1 ||
        { tail -20 "$OUT/lab-up-$1.log" >&2; die "lab.sh up ($1 nodes) failed (log: $OUT/lab-up-$1.log)"; }
}

# Median per column over the rows of one (world, N, strategy); "-" when no run has a value.
median_row() { # world n strategy
    awk -F'\t' -v w="$1" -v n="$2" -v s="$3" -v ncol="${#COLS[@]}" '
        $1 == w && $2 == n && $3 == s { for (i = 1; i <= ncol; i++) { v = $(i + 4); if (v != "-") { k[i]++; a[i, k[i]] = v } } }
        function med(i,   j, m, t, c) {
            c = k[i]; if (!c) return "-"
            for (j = 1; j <= c; j++) b[j] = a[i, j] + 0
            for (j = 2; j <= c; j++) { t = b[j]; m = j - 1; while (m >= 1 && b[m] > t) { b[m + 1] = b[m]; m-- } b[m + 1] = t }
            return (c % 2) ? b[(c + 1) / 2] : (b[c / 2] + b[c / 2 + 1]) / 2
        }
        END { for (i = 1; i <= ncol; i++) printf "%s%s", med(i), (i < ncol ? "\t" : "\n") }' "$ROWS"
}

header | tee -a "$SUMMARY"
for world in "${WORLDS[@]}"; do
    if [ "$world" = demo ]; then runs=${RUNS:-3}; else runs=${RUNS:-1}; fi
    for n in "${SIZES[@]}"; do
        [ "$world" = demo ] || lab_up "$n"
        for r in $(seq "$runs"); do
            for s in rolling halves; do
                say "$world, $n nodes, $s, run $r/$runs (load average $(cut -d' ' -f1-3 /proc/loadavg))"
                "run_$world" "$n" "$s" "$r"
                cols=$(jq -s -r "$JQ_ROW" "$OUT/journal-$world-$n-$s-$r.jsonl") ||
                    die "could not read $OUT/journal-$world-$n-$s-$r.jsonl"
                printf '%s\t%s\t%s\t%s\t%s\n' "$world" "$n" "$s" "$r" "$cols" >>"$ROWS"
                row "$world" "$n" "$s" "$r" "$cols" | tee -a "$SUMMARY"
            done
        done
        [ "$world" = demo ] || lab_down
    done
done

{
    echo
    echo "medians over RUNS (each column on its own):"
    header
    for world in "${WORLDS[@]}"; do
        for n in "${SIZES[@]}"; do
            for s in rolling halves; do row "$world" "$n" "$s" med "$(median_row "$world" "$n" "$s")"; done
        done
    done
    echo
    for world in "${WORLDS[@]}"; do
        for n in "${SIZES[@]}"; do
            h=$(median_row "$world" "$n" halves | cut -f1)
            r=$(median_row "$world" "$n" rolling | cut -f1)
            awk -v w="$world" -v n="$n" -v h="$h" -v r="$r" \
                'BEGIN { printf "%s N=%s halves/rolling wall = %.2f  (%.2f s / %.2f s)\n", w, n, h / r, h, r }'
        done
    done
} | tee -a "$SUMMARY"
say "journals, outputs, rows.tsv and summary.txt in $OUT"
