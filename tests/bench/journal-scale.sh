#!/usr/bin/env bash
# The journal at scale (issue 12, item 6). Builds a RECORDS-record journal (100 000 by default)
# by repeating a real demo run's records re-chained exactly as src/journal/record.rs seals them
# (tests/bench/journal-rechain.py), then, in the same run:
#   - times `cutover journal verify` against a Python loop that only sha256-hashes each line
#     (the floor: verifying the chain needs every line's bytes hashed), best of RUNS each;
#   - starts `cutover replay` on it in tmux (120x40) and times the first frame (until the
#     screen shows the replay's status line), the end (`G`, until the header shows event N/N)
#     and a step back from the end (Left), and reads its peak resident memory (VmHWM) at the
#     first frame and at the end, and its CPU time.
# Prints each figure and the ratios. Exits 0; it asserts nothing (figures go to BENCHMARKS.md).
#
#   tests/bench/journal-scale.sh                    # builds the release binary first
#   CUTOVER=path/to/cutover RECORDS=20000 RUNS=5 tests/bench/journal-scale.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

records=${RECORDS:-100000}
runs=${RUNS:-3}
source_journal=${SOURCE_JOURNAL:-tests/fixtures/journals/main-2edb051/done.jsonl}
bin=${CUTOVER:-}
if [ -z "$bin" ]; then
    cargo build --quiet --release --bin cutover
    bin="${CARGO_TARGET_DIR:-target}/release/cutover"
fi
bin=$(realpath "$bin")
command -v python3 >/dev/null || { echo "journal-scale: python3 is needed" >&2; exit 2; }
command -v tmux >/dev/null || { echo "journal-scale: tmux is needed" >&2; exit 2; }

tmp=$(mktemp -d)
session="cutover-jscale-$$"
cleanup() {
    tmux kill-session -t "$session" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
journal="$tmp/journal.jsonl"

python3 tests/bench/journal-rechain.py "$source_journal" "$records" "$journal"
size=$(stat -c %s "$journal")
echo "journal: $records records, $((size / 1000000)) MB (from $source_journal)"
"$bin" journal verify "$journal" | sed -n 1p

# Best of $runs, seconds with 3 decimals.
best() {
    local best_t="" t
    for _ in $(seq "$runs"); do
        t=$(python3 -c "import time,subprocess,sys
s=time.perf_counter(); subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(f'{time.perf_counter()-s:.3f}')" "$@")
        if [ -z "$best_t" ] || python3 -c "import sys; sys.exit(0 if $t < $best_t else 1)"; then
            best_t=$t
        fi
    done
    echo "$best_t"
}
cat > "$tmp/hash.py" <<'PY'
import hashlib, sys
with open(sys.argv[1], 'rb') as f:
    for line in f:
        hashlib.sha256(line).hexdigest()
PY
t_verify=$(best "$bin" journal verify "$journal")
t_python=$(best python3 "$tmp/hash.py" "$journal")
rss_verify=$( { /usr/bin/time -f %M "$bin" journal verify "$journal" >/dev/null; } 2>&1 | tail -1)
echo "verify:              ${t_verify} s (best of $runs), peak RSS $((rss_verify / 1024)) MB"
echo "python per-line hash: ${t_python} s (best of $runs)"
python3 -c "print(f'verify / python:     {$t_verify / $t_python:.2f}x')"

# Replay: the first frame, then the end (G: the last event, the whole journal folded).
# CPU: the replay process's user+system time (/proc/PID/stat), less sensitive to other load.
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}
start=$(date +%s.%N)
tmux new-session -d -s "$session" -x 120 -y 40 "exec '$bin' replay '$journal'"
pid=$(tmux list-panes -t "$session" -F '#{pane_pid}')
deadline=$((SECONDS + 120))
until tmux capture-pane -p -t "$session" 2>/dev/null | grep -q "REPLAY\|Replay\|replay"; do
    if [ $SECONDS -ge $deadline ]; then
        echo "journal-scale: no replay screen after 120 s; the screen:" >&2
        tmux capture-pane -p -t "$session" >&2 || true
        exit 2
    fi
    sleep 0.01
done
first=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
cpu_first=$(cpu_of "$pid")
hwm_first=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
# The end: the header reads "event N/N" (every record of this journal is an event).
sleep 1
g_start=$(date +%s.%N)
tmux send-keys -t "$session" G
until tmux capture-pane -p -t "$session" | head -1 | grep -q "event $records/$records"; do
    if [ $SECONDS -ge $deadline ]; then
        echo "journal-scale: the end not shown after 120 s; the screen:" >&2
        tmux capture-pane -p -t "$session" >&2 || true
        exit 2
    fi
    sleep 0.01
done
g=$(python3 -c "print(f'{$(date +%s.%N) - $g_start:.2f}')")
# Step back from the end (the fold from the nearest checkpoint), then let it settle.
b_start=$(date +%s.%N)
tmux send-keys -t "$session" Left
until tmux capture-pane -p -t "$session" | head -1 | grep -q "event $((records - 1))/$records"; do
    if [ $SECONDS -ge $deadline ]; then
        echo "journal-scale: no step back after 120 s; the screen:" >&2
        tmux capture-pane -p -t "$session" >&2 || true
        exit 2
    fi
    sleep 0.01
done
back=$(python3 -c "print(f'{$(date +%s.%N) - $b_start:.2f}')")
sleep 2
hwm_end=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
rss_end=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
cpu_end=$(cpu_of "$pid")
echo "replay first frame:  ${first} s (tmux start to the screen, polled every 10 ms; the replay's CPU then ${cpu_first} s)"
echo "replay end (G):      ${g} s (key to the screen showing event $records/$records, 1 s after the first frame)"
echo "replay back (Left):   ${back} s (key to event $((records - 1))/$records)"
echo "replay peak RSS:     $((hwm_first / 1024)) MB at the first frame, $((hwm_end / 1024)) MB at the end (resident then $((rss_end / 1024)) MB; CPU in all ${cpu_end} s)"
