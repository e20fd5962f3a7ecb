#!/usr/bin/env bash
# Probe at scale (issue 12, item 5): `cutover probe` against parallel-ssh and `ansible -m raw`
# doing the same reads on N demo-world nodes, every node reached over SSH through one loopback
# sshd, with the same key exchange for all (curve25519-sha256, forced by the sshd).
#
#   tests/bench/probe-scale.sh [N]          # N nodes, default 64; builds --release first
#   CUTOVER=path/to/cutover RUNS=5 PAR=32 tests/bench/probe-scale.sh 8
#   BENCH_OUT=dir tests/bench/probe-scale.sh   # keep the world, configs, logs and outputs
#
# Set-up (everything in a temporary directory, every process ended on exit):
# - `cutover world create --nodes N` + `cutover world serve` (the Keystone and HAProxy stand-ins
#   on 127.0.0.1; the nodes' files are local paths);
# - one sshd on 127.0.0.1 (own host key, own authorized key, `MaxStartups` raised so N
#   connections at once are not dropped, LogLevel VERBOSE to count round trips) and an
#   ssh_config with one alias per node (`Host node-I` -> 127.0.0.1, that port; `SetEnv
#   CUTOVER_NODE=nodeI`), so each node is reached over SSH as a real one is;
# - an inventory: the world's, each node's `reach: {ssh: node-I}`, `ssh: {config, known_hosts,
#   concurrency: PAR}`.
# The commands the others run are the probe's own: a first `cutover probe` goes through a
# second sshd whose ForceCommand records every command before running it; node1's commands,
# with node1's directory made the connecting node's (by bash on the far side, from
# CUTOVER_NODE), are the one script that parallel-ssh and ansible run on every node (in one
# exec per node: what a hand-written version would do). cutover also asks each node's Keystone
# over HTTP (a service check and a token issued directly) and reads the load balancer: work the
# others do not do.
#
# Printed per tool, median of RUNS (default 3; the tools' order rotates between rounds):
# wall time; controller CPU (user+sys of the tool and everything it started, from
# /usr/bin/time -v); whole-machine CPU (busy jiffies from /proc/stat, all cores, so it includes
# sshd's side, the world serving HTTP and anything else running); peak memory (the largest
# resident set of one process of the tool's tree, as /usr/bin/time -v reports it); SSH
# connections and execs per node (from sshd's log: "Accepted publickey", "Starting session:").
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${1:-${N:-64}}
RUNS=${RUNS:-3}
PAR=${PAR:-$N}
KEX=curve25519-sha256
die() { echo "probe-scale: $*" >&2; exit 2; }
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] || die "N must be a number of nodes (got '$N')"

# ------------------------------------------------------------------------ tools, idempotently
need_apt=()
command -v parallel-ssh >/dev/null || command -v pssh >/dev/null || need_apt+=(pssh)
command -v ansible >/dev/null || need_apt+=(ansible-core)
[ -x /usr/bin/time ] || need_apt+=(time)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v python3 >/dev/null || need_apt+=(python3-yaml)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "probe-scale: installing ${need_apt[*]}" >&2
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${need_apt[*]} (or install them)"
    if ! { apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; }; }; then
        # Not from apt: parallel-ssh and ansible-core from PyPI, in a venv under /tmp.
        venv=/tmp/cutover-bench-venv
        [ -x "$venv/bin/ansible" ] && [ -x "$venv/bin/pssh" ] || {
            python3 -m venv "$venv" && "$venv/bin/pip" install -q ansible-core pssh
        } || die "cannot install ${need_apt[*]} (apt or pip)"
        export PATH="$venv/bin:$PATH"
    fi
fi
PSSH=$(command -v parallel-ssh || command -v pssh) || die "parallel-ssh is missing"
command -v ansible >/dev/null || die "ansible is missing"
python3 -c 'import yaml' 2>/dev/null || die "python3 with PyYAML is needed (apt-get install python3-yaml)"

bin=${CUTOVER:-}
if [ -z "$bin" ]; then
    cargo build --quiet --release --bin cutover
    bin="${CARGO_TARGET_DIR:-target}/release/cutover"
fi
bin=$(realpath "$bin")

# ------------------------------------------------------------------------------ the set-up
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    tmp=$(realpath "$BENCH_OUT")
else
    tmp=$(mktemp -d /tmp/probe-scale.XXXXXX)
fi
W=$tmp/world
pids=()
cleanup() {
    local p c
    for p in "${pids[@]}"; do
        # sshd's session processes outlive their listener: end its children first.
        for c in $(pgrep -P "$p" 2>/dev/null || true); do kill "$c" 2>/dev/null || true; done
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${BENCH_OUT:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$W"
"$bin" world create "$W" --nodes "$N" --lbs 1 >/dev/null
"$bin" world serve "$W" >"$tmp/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q '^serving' "$tmp/serve.log" && break; sleep 0.1; done
grep -q '^serving' "$tmp/serve.log" || { cat "$tmp/serve.log" >&2; die "world serve did not start"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

S=$tmp/ssh
mkdir -p "$S/home" /run/sshd
ssh-keygen -q -t ed25519 -N '' -C probe-scale-host -f "$S/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C probe-scale-client -f "$S/id_ed25519"
cp "$S/id_ed25519.pub" "$S/authorized_keys"
cat >"$S/capture-cmd" <<EOF
#!/bin/bash
# Records the command a client asked for (a file each, named by the time: sessions run at
# once), then runs it as sshd would have.
# A kept shell (\`exec sh\`, reads fed one after another on its stdin): its stdin is recorded
# as it goes, and each read is taken out of it below.
if [ "\$SSH_ORIGINAL_COMMAND" = "exec sh" ]; then
    tee -a "\$(mktemp --suffix=.kept "$S/captured/\$(date +%s%N).XXXXXX")" | /bin/sh
    exit
fi
printf '%s' "\$SSH_ORIGINAL_COMMAND" >"\$(mktemp "$S/captured/\$(date +%s%N).XXXXXX")"
exec /bin/bash -c "\$SSH_ORIGINAL_COMMAND"
EOF
chmod +x "$S/capture-cmd"
mkdir -p "$S/captured"

start_sshd() { # NAME EXTRA-CONFIG -> sets $sshd_port
    local name=$1 extra=$2 port
    port=$(free_port)
    cat >"$S/$name.conf" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $S/host_ed25519
PidFile $S/$name.pid
AuthorizedKeysFile $S/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
X11Forwarding no
KexAlgorithms $KEX
MaxStartups 1000
MaxSessions 100
AcceptEnv CUTOVER_NODE
# An empty home: bash run by sshd reads ~/.bashrc, whose start-up (pyenv init, say) would
# otherwise be timed once per exec, for every tool, instead of the reads themselves.
SetEnv HOME=$S/home
LogLevel VERBOSE
$extra
EOF
    /usr/sbin/sshd -D -f "$S/$name.conf" -E "$S/$name.log" &
    pids+=($!)
    for _ in $(seq 100); do port_open "$port" && break; sleep 0.05; done
    port_open "$port" || { cat "$S/$name.log" >&2; die "sshd ($name) did not start"; }
    sshd_port=$port
}

write_ssh_config() { # PORT FILE
    local i
    {
        for i in $(seq "$N"); do
            printf 'Host node-%s\n  SetEnv CUTOVER_NODE=node%s\n' "$i" "$i"
        done
        cat <<EOF
Host node-*
  HostName 127.0.0.1
  Port $1
  User $(id -un)
  IdentityFile $S/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $S/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  KexAlgorithms $KEX
  BatchMode yes
  ConnectTimeout 30
EOF
    } >"$2"
    echo "[127.0.0.1]:$1 $(cut -d' ' -f1,2 "$S/host_ed25519.pub")" >>"$S/known_hosts"
}

write_inventory() { # SSH-CONFIG FILE [CONCURRENCY]
    python3 - "$W/inventory.yaml" "$1" "$S/known_hosts" "${3:-$PAR}" "$2" <<'EOF'
import sys, yaml
src, config, known, par, out = sys.argv[1:]
inv = yaml.safe_load(open(src))
for i, n in enumerate(inv["nodes"], 1):
    n["reach"] = {"ssh": f"node-{i}"}
inv["ssh"] = {"config": config, "known_hosts": known, "concurrency": int(par),
              "connect_timeout_secs": 30}
inv.pop("demo_world", None)  # served by `world serve`, reached as a real cloud is
yaml.safe_dump(inv, open(out, "w"), sort_keys=False)
EOF
}

# ---------------------------------------------------------- what the probe runs on a node
start_sshd capture "ForceCommand $S/capture-cmd"
write_ssh_config "$sshd_port" "$S/capture_config"
# Learning the commands needs every node read, not speed: 8 at once (cutover's default).
write_inventory "$S/capture_config" "$tmp/capture-inventory.yaml" 8
"$bin" probe -i "$tmp/capture-inventory.yaml" --format json >"$tmp/capture-probe.json" 2>"$tmp/capture-probe.err" ||
    { cat "$tmp/capture-probe.err" >&2; die "the capture probe failed"; }
python3 - "$tmp/capture-probe.json" <<'EOF' || die "the capture probe did not read every node (it needs all to learn the commands)"
import json, sys
bad = [(n, f.get("error") or f.get("unreachable")) for n, f in json.load(open(sys.argv[1]))["nodes"].items()
       if f.get("error") or f.get("unreachable")]
for n, e in bad[:3]:
    print(f"probe-scale: capture probe: {n}: {e}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
python3 - "$S/captured" "$W" "$N" "$tmp/node-script.sh" "$tmp/capture-summary.txt" <<'EOF'
import os, re, sys
captured, world, n, out, summary = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
# A kept shell's record holds its reads as cutover's kept-shell protocol sends them
# (src/transport/kept.rs): `( eval 'CMD' ) </dev/null; printf ...`, CMD shell-quoted.
kept_read = re.compile(r"\( eval '((?:[^']|'\\'')*)' \) </dev/null;", re.S)
cmds = []
for f in sorted(os.listdir(captured)):
    text = open(os.path.join(captured, f), "rb").read().decode()
    if f.endswith(".kept"):
        cmds += [m.group(1).replace("'\\''", "'") for m in kept_read.finditer(text)]
    elif text:
        cmds.append(text)
node_re = re.compile(re.escape(world) + r"/node(\d+)(?!\d)")
per_node = {}
for c in cmds:
    nodes = {int(m) for m in node_re.findall(c)}
    if len(nodes) != 1:
        sys.exit(f"probe-scale: a captured command names nodes {sorted(nodes)}, not one:\n{c}")
    per_node.setdefault(nodes.pop(), []).append(c)
if sorted(per_node) != list(range(1, n + 1)):
    sys.exit(f"probe-scale: commands captured for {len(per_node)} nodes, not {n}")
counts = {len(v) for v in per_node.values()}
# Node 1's commands, its directory made the connecting node's on the far side.
mine = world + "/node1"
body = "\n".join(per_node[1])
for c in per_node[1]:
    for m in re.finditer(re.escape(mine) + r"(.?)", c):
        if m.group(1) not in ("/", "'", '"', " ", "\n", ""):
            sys.exit(f"probe-scale: cannot generalise {m.group(0)!r} in:\n{c}")
q = "'" + body.replace("'", "'\\''") + "'"
script = (
    ': "${CUTOVER_NODE:?set by the ssh_config}"\n'
    f"C={q}\n"
    f'eval "${{C//"{mine}"/"{world}/$CUTOVER_NODE"}}"\n'
)
# node1 -> nodeN: the same as what cutover sent nodeN? (A random marker in a command, as
# `==cutover-conf-<hex>`, may differ: it only separates outputs.)
nonce = re.compile(r"(cutover-[a-z]+-)[0-9a-f]{8,}")
for i in (2, n):
    if i in per_node:
        want = nonce.sub(r"\1N", "\n".join(per_node[i]))
        got = nonce.sub(r"\1N", re.sub(re.escape(mine) + r"(?!\d)", f"{world}/node{i}", body))
        if got != want:
            sys.exit(f"probe-scale: node{i}'s commands are not node1's with its directory")
open(out, "w").write(script)
open(summary, "w").write(
    f"{len(cmds)} commands captured, {sorted(counts)} per node; node1's ({len(body)} bytes):\n"
    + "\n---\n".join(per_node[1]) + "\n")
EOF
kill "${pids[-1]}" 2>/dev/null || true

# --------------------------------------------------------------------- the timed set-up
start_sshd bench ""
: >"$S/known_hosts"
write_ssh_config "$sshd_port" "$S/ssh_config"
write_inventory "$S/ssh_config" "$tmp/inventory.yaml"
for i in $(seq "$N"); do echo "node-$i"; done >"$tmp/hosts"
{
    echo "[nodes]"
    cat "$tmp/hosts"
} >"$tmp/ansible-hosts"
export ANSIBLE_HOME="$tmp/ansible-home" ANSIBLE_LOCAL_TEMP="$tmp/ansible-home/tmp"
printf '[defaults]\n' >"$tmp/ansible.cfg" # nothing from /etc/ansible or ~
export ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_RETRY_FILES_ENABLED=False
export ANSIBLE_SSH_ARGS="-F $S/ssh_config -o ControlMaster=no" # cold connections, as the others
export ANSIBLE_TIMEOUT=30 ANSIBLE_NOCOLOR=1
script=$(cat "$tmp/node-script.sh")

run_tool() { # TOOL ROUND -> "wall ctl_cpu machine_cpu peak_kb conns execs"
    local tool=$1 r=$2 out="$tmp/out/$1-$2" log0 s0 s1 t0 t1 rc=0
    mkdir -p "$out"
    log0=$(stat -c %s "$S/bench.log")
    read -r s0 < <(awk '/^cpu /{ print $2+$3+$4+$7+$8+$9 }' /proc/stat)
    t0=$(date +%s%N)
    case $tool in
        cutover)
            /usr/bin/time -v -o "$out/time" "$bin" probe -i "$tmp/inventory.yaml" --format json \
                >"$out/stdout" 2>"$out/stderr" || rc=$?
            ;;
        parallel-ssh)
            /usr/bin/time -v -o "$out/time" "$PSSH" -h "$tmp/hosts" -p "$PAR" -t 120 \
                -x "-F $S/ssh_config" -o "$out/o" -e "$out/e" "$script" \
                >"$out/stdout" 2>"$out/stderr" || rc=$?
            ;;
        ansible)
            /usr/bin/time -v -o "$out/time" ansible nodes -i "$tmp/ansible-hosts" -f "$PAR" \
                -m raw -a "$script" >"$out/stdout" 2>"$out/stderr" || rc=$?
            ;;
    esac
    t1=$(date +%s%N)
    read -r s1 < <(awk '/^cpu /{ print $2+$3+$4+$7+$8+$9 }' /proc/stat)
    sleep 0.3 # sshd writes the last sessions' lines
    [ "$rc" = 0 ] || { tail -5 "$out/stderr" >&2; die "$tool failed (exit $rc) in round $r; see $out"; }
    # Every node's facts came back.
    local ok
    case $tool in
        cutover) ok=$(python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
print(sum(1 for f in o["nodes"].values() if not f.get("error") and not f.get("unreachable")
          and f.get("fernet", {}).get("present")))' "$out/stdout") ;;
        parallel-ssh) ok=$(grep -l '^==end$' "$out"/o/* 2>/dev/null | wc -l) ;;
        ansible) ok=$(grep -c '^node-[0-9]* | CHANGED | rc=0 >>' "$out/stdout" || true) ;;
    esac
    # A tool that read fewer nodes is a result too: shown in the table, not a stop.
    [ "$ok" = "$N" ] || echo "probe-scale: $tool read $ok of $N nodes in round $r (see $out)" >&2
    local user sys peak conns execs
    user=$(awk -F': ' '/User time/ { print $2 }' "$out/time")
    sys=$(awk -F': ' '/System time/ { print $2 }' "$out/time")
    peak=$(awk -F': ' '/Maximum resident/ { print $2 }' "$out/time")
    tail -c +"$((log0 + 1))" "$S/bench.log" >"$out/sshd.log"
    conns=$(grep -c 'Accepted publickey' "$out/sshd.log" || true)
    execs=$(grep -c 'Starting session: command' "$out/sshd.log" || true)
    awk -v t0="$t0" -v t1="$t1" -v u="$user" -v s="$sys" -v m0="$s0" -v m1="$s1" \
        -v clk="$(getconf CLK_TCK)" -v p="$peak" -v c="$conns" -v e="$execs" -v n="$N" \
        -v ok="$ok" 'BEGIN { printf "%.3f %.3f %.2f %d %.2f %.2f %d\n", (t1 - t0) / 1e9, u + s, (m1 - m0) / clk, p, c / n, e / n, ok }'
}

tools=(cutover parallel-ssh ansible)
echo "probe-scale: $N nodes over one loopback sshd (kex $KEX), $PAR at once, median of $RUNS"
echo "  machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  cutover $("$bin" --version 2>/dev/null || echo "$bin"), $("$PSSH" --version 2>&1 | head -1 | sed 's/^/parallel-ssh /'), $(ansible --version 2>/dev/null | sed -n 1p)"
echo "  per node: $(head -1 "$tmp/capture-summary.txt")"
# A warm-up round (page cache, the binaries), not counted.
for t in "${tools[@]}"; do run_tool "$t" 0 >/dev/null; done
for r in $(seq "$RUNS"); do
    for k in 0 1 2; do
        t=${tools[$(((k + r) % 3))]}
        mkdir -p "$tmp/out/$t-$r"
        run_tool "$t" "$r" >"$tmp/out/$t-$r/figures"
    done
done

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf '%-13s %8s %9s %9s %9s %9s %9s %6s  %s\n' tool wall_s ctl_cpu_s sys_cpu_s peak_MB conn/node exec/node read "walls of each round"
for t in "${tools[@]}"; do
    col() { for r in $(seq "$RUNS"); do awk -v c="$1" '{ print $c }' "$tmp/out/$t-$r/figures"; done | median; }
    walls=$(for r in $(seq "$RUNS"); do awk '{ printf "%s ", $1 }' "$tmp/out/$t-$r/figures"; done)
    reads=$(for r in $(seq "$RUNS"); do awk '{ print $7 }' "$tmp/out/$t-$r/figures"; done | sort -n | head -1)
    printf '%-13s %8.3f %9.3f %9.2f %9.1f %9.2f %9.2f %6s  %s\n' "$t" "$(col 1)" "$(col 2)" "$(col 3)" \
        "$(awk -v k="$(col 4)" 'BEGIN { print k / 1024 }')" "$(col 5)" "$(col 6)" "$reads/$N" "$walls"
done >"$tmp/table.txt"
cat "$tmp/table.txt"
w_cut=$(awk '$1 == "cutover" { print $2 }' "$tmp/table.txt")
for t in parallel-ssh ansible; do
    w=$(awk -v t="$t" '$1 == t { print $2 }' "$tmp/table.txt")
    awk -v a="$w_cut" -v b="$w" -v t="$t" 'BEGIN { printf "cutover / %s wall: %.2f (%s)\n", t, a / b, a < b ? "cutover ahead" : "cutover BEHIND" }'
done
