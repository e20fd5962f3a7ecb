#!/usr/bin/env bash
# Screenshots from a real run: the demo in tmux at 120x40, captured with its colours
# (`tmux capture-pane -e -p`) at the moments an operator cares about, rendered to PNG by
# ansi2png.py. Rerun it after any change to the UI:
#
#   screenshots/make.sh                      # builds the debug binary first
#   CUTOVER=path/to/cutover screenshots/make.sh
#
# Needs tmux, Pillow and the DejaVu fonts; installs the last two
# (apt-get as root, else pip into a venv under /tmp) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
here=screenshots
cols=120
rows=40

bin=${CUTOVER:-}
if [ -z "$bin" ]; then
    cargo build --quiet --bin cutover
    bin="${CARGO_TARGET_DIR:-target}/debug/cutover"
fi
bin=$(realpath "$bin")
command -v tmux >/dev/null || { echo "make.sh: tmux is needed" >&2; exit 2; }

# --- Python with Pillow, and the fonts
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf
py=/usr/bin/python3
have_pil() { "$1" -c 'import PIL' 2>/dev/null; }
if ! have_pil "$py" || [ ! -f "$font" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-pil fonts-dejavu-core >/dev/null
    fi
fi
if ! have_pil "$py"; then
    venv=/tmp/cutover-screenshots-venv
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    have_pil "$venv/bin/python" || "$venv/bin/pip" install -q pillow
    py="$venv/bin/python"
fi
[ -f "$font" ] || { echo "make.sh: $font is missing (apt-get install fonts-dejavu-core)" >&2; exit 2; }

# --- The run
work=/tmp/cutover-screenshots
rm -rf "$work"
mkdir -p "$work"
session="cutover-shots-$$"
cleanup() { tmux kill-session -t "$session" 2>/dev/null || true; }
trap cleanup EXIT

start() { # start COMMAND...: a fresh tmux session running it (cwd: the repository)
    tmux kill-session -t "$session" 2>/dev/null || true
    tmux new-session -d -s "$session" -x "$cols" -y "$rows" -c "$PWD" "exec $*"
}
screen() { tmux capture-pane -p -t "$session" 2>/dev/null; }
wait_for() { # wait_for REGEX [SECONDS]
    local deadline=$((SECONDS + ${2:-30}))
    until screen | grep -Eq -- "$1"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "make.sh: waited ${2:-30} s for /$1/; the screen:" >&2
            screen >&2 || true
            exit 1
        fi
        sleep 0.05
    done
}
keys() { tmux send-keys -t "$session" "$@"; }
shot() { # shot NAME: capture with colours and render
    tmux capture-pane -e -p -t "$session" >"$work/$1.ans"
    "$py" "$here/ansi2png.py" "$work/$1.ans" "$here/$1.png" --cols "$cols" --rows "$rows"
    echo "screenshots/$1.png"
}

journal="$work/demo.journal.jsonl"
start "$bin" demo --world "$work/world" --journal "$journal"

# The first hard stop: the payload warning, over the preflight's results.
wait_for "HARD STOP +jws-payload-readable"
sleep 0.3
shot start
keys Y

# node1 validated on JWS; re-adding it would mix providers.
wait_for "Re-adding node1 mixes"
sleep 0.3
shot mixed-pool-hard-stop

# While the operator reads it, config management reloads HAProxy: node1 (drained, flipped) is
# back in the pool on both instances; the pool guard sets it back to maint and stops the run.
"$bin" world fault "$work/world" hap-reload >/dev/null
wait_for "HARD STOP +pool-breach"
sleep 0.3
shot pool-breach
keys Y
wait_for "Re-adding node1 mixes"
sleep 0.3
keys Y

# node2 restarting on JWS while node1 serves JWS and node3 Fernet.
wait_for "node2 +[a-z ]*(restarting|flipped)" 30
shot mid-rolling
wait_for "Re-adding node2 mixes"
sleep 1.5 # an operator reads it (and the replay below has time to pause on it)
# The client-impact meter at the second mixed-pool hard stop: node1 (jws) serves beside node3
# (fernet), so the meter's clients have met a mixed pool; the box says what it measured.
shot client-impact
keys Y

# Completed: the N×N validation matrix.
wait_for "COMPLETED" 60
sleep 1.2 # one clock tick, so "Now" has settled
shot validation-matrix

# Help.
keys '?'
wait_for "this help"
shot help
keys Escape
keys q
for _ in $(seq 100); do tmux has-session -t "$session" 2>/dev/null || break; sleep 0.05; done

# Replay, paused at the second mixed-pool hard stop (read-only: who confirmed it, when).
start "$bin" replay "$journal"
wait_for "Re-adding node2 mixes" 60
keys Space
wait_for "‖ paused"
# If the pause landed just after the confirmation, step back onto the hard stop.
for _ in $(seq 10); do
    screen | grep -q "HARD STOP (replay)" && break
    keys Left
    sleep 0.1
done
shot replay
keys q

# Resume after a crash: a headless run stops at the first hard stop (exit 3), then someone
# puts node2 in maintenance on the load balancer behind cutover's back.
journal2="$work/resume.journal.jsonl"
set +e
"$bin" demo --headless --world "$work/world2" --journal "$journal2" >/dev/null 2>&1
code=$?
set -e
[ "$code" = 3 ] || { echo "make.sh: the headless demo exited $code, expected 3 (paused)" >&2; exit 1; }
# The demo's HAProxy keeps its runtime state in a server-state file (as HAProxy does across
# reloads): put ks2 (node2) in maintenance there, and flip node2's keystone.conf by hand.
state="$work/world2/haproxy-1.state"
awk '$4 == "ks2" { $7 = 1 } { print }' "$state" >"$state.new" && mv "$state.new" "$state"
sed -i 's/^provider = fernet$/provider = jws/' "$work/world2/node2/etc/keystone/keystone.conf"
start "$bin" resume "$journal2"
wait_for "RESUMED" 30
wait_for "HARD STOP" 30
sleep 0.3
shot resume
keys n

# strategy=halves on 4 nodes and 2 load balancers: the swap's hard stop, half A proven on jws
# and out of the pool, half B serving on fernet.
start "$bin" demo --nodes 4 --lbs 2 --param strategy=halves --world "$work/world4" \
    --journal "$work/halves.journal.jsonl"
wait_for "HARD STOP +jws-payload-readable"
keys Y
wait_for "HARD STOP +halves-swap" 60
sleep 0.3
shot halves-swap-hard-stop
keys Y
wait_for "COMPLETED" 60
sleep 1.2
shot halves-done
keys q
for _ in $(seq 100); do tmux has-session -t "$session" 2>/dev/null || break; sleep 0.05; done

# 80×24 under LANG=C (a bastion's default locale, a remote tmux without UTF-8): the mixed-pool
# hard stop keeps the pool and every node's line above the box, drawn in ASCII.
cols=80
rows=24
start env LANG=C LC_ALL=C "$bin" demo --world "$work/world3" --journal "$work/small.journal.jsonl"
wait_for "HARD STOP +jws-payload-readable"
keys Y
wait_for "Re-adding node1 mixes"
sleep 0.3
shot hard-stop-80x24-ascii
keys q
wait_for "Quit\?"
keys y

# The first run as an asciicast recording: `asciinema play screenshots/demo.cast`.
"$bin" journal export "$journal" -o "$here/demo.cast" >/dev/null
echo "screenshots/demo.cast"
