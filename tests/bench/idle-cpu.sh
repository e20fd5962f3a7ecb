#!/usr/bin/env bash
# Idle CPU of the terminal UI: the real demo in tmux (120x40), waiting at its first HARD STOP
# with nothing happening but the header's clock. Measures the cutover process's CPU time over
# 10 s from /proc/PID/stat (utime + stime, in clock ticks) and fails if it is 1% or more.
# That process also hosts the demo world (Keystone and HAProxy stand-ins, with their health
# checks); a second figure, for information, is the UI alone following the same journal.
#
#   tests/bench/idle-cpu.sh                  # builds the debug binary first
#   CUTOVER=path/to/cutover tests/bench/idle-cpu.sh
#   SECONDS_TO_MEASURE=30 tests/bench/idle-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

measure=${SECONDS_TO_MEASURE:-10}
bin=${CUTOVER:-}
if [ -z "$bin" ]; then
    cargo build --quiet --bin cutover
    bin="${CARGO_TARGET_DIR:-target}/debug/cutover"
fi
bin=$(realpath "$bin")
command -v tmux >/dev/null || { echo "idle-cpu: tmux is needed" >&2; exit 2; }

tmp=$(mktemp -d)
session="cutover-idle-$$"
cleanup() {
    tmux kill-session -t "$session" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# `exec`, so the pane's process is cutover itself.
tmux new-session -d -s "$session" -x 120 -y 40 \
    "exec '$bin' demo --world '$tmp/world' --journal '$tmp/journal.jsonl'"

deadline=$((SECONDS + 60))
until tmux capture-pane -p -t "$session" 2>/dev/null | grep -q "HARD STOP"; do
    if [ $SECONDS -ge $deadline ]; then
        echo "idle-cpu: no HARD STOP on screen after 60 s; the screen:" >&2
        tmux capture-pane -p -t "$session" >&2 || true
        exit 2
    fi
    sleep 0.2
done
pid=$(tmux display-message -p -t "$session" '#{pane_pid}')
[ "$(readlink "/proc/$pid/exe")" = "$bin" ] || { echo "idle-cpu: pane process $pid is not $bin" >&2; exit 2; }
sleep 1 # let the first draws settle

ticks() { # utime + stime: fields 14 and 15 of /proc/PID/stat (12 and 13 after the ") ")
    local stat
    stat=$(cat "/proc/$1/stat")
    echo "${stat##*) }" | awk '{ print $12 + $13 }'
}
clk=$(getconf CLK_TCK)
measure_pid() { # measure_pid PID -> "ticks seconds"
    local t0 t1 s0 s1
    t0=$(ticks "$1")
    s0=$(date +%s.%N)
    sleep "$measure"
    t1=$(ticks "$1")
    s1=$(date +%s.%N)
    echo "$((t1 - t0)) $(awk -v a="$s0" -v b="$s1" 'BEGIN { print b - a }')"
}
pct() { awk -v d="$1" -v clk="$clk" -v secs="$2" 'BEGIN { printf "%.2f", d / clk / secs * 100 }'; }

read -r d secs < <(measure_pid "$pid")
if ! tmux capture-pane -p -t "$session" | grep -q "HARD STOP"; then
    echo "idle-cpu: the hard stop left the screen during the measurement" >&2
    exit 2
fi
total=$(pct "$d" "$secs")
echo "idle CPU at a hard stop: ${total}% of one CPU ($d ticks of 1/$clk s in ${secs} s; UI + the embedded demo world)"

# For attribution, the UI alone: the same journal followed read-only (no demo world in that
# process; it redraws its clock every second and polls the journal every 250 ms).
tmux new-window -d -t "$session" "exec '$bin' replay '$tmp/journal.jsonl' --follow"
sleep 1.5
fpid=$(tmux display-message -p -t "$session:1" '#{pane_pid}')
read -r fd fsecs < <(measure_pid "$fpid")
echo "idle CPU of the UI alone (replay --follow of that journal): $(pct "$fd" "$fsecs")% ($fd ticks)"

awk -v p="$total" 'BEGIN { exit (p >= 1.0) ? 1 : 0 }' || {
    echo "idle-cpu: FAIL: ${total}% >= 1%" >&2
    exit 1
}
