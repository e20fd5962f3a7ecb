#!/bin/bash
# The cutover lab: real Keystone nodes (PyPI, one shared sqlite database), one real OpenSSH sshd
# per node and real HAProxy instances in front, all on 127.0.0.1. Run as root.
#
#   tests/lab/lab.sh up|down|status|reload [K]|reset|check jws|fernet|manual-cutover|flush-cache
#
# Environment (defaults):
#   LAB_DIR=/tmp/cutover-lab  LAB_NODES=3  LAB_BASE_PORT=15000  LAB_LBS=1
#   LAB_VENV=/opt/cutover-lab-venv   (created by tests/lab/install.sh, or by `up` if missing)
#   LAB_MEMCACHED=0   (1: one memcached shared by every node as Keystone's token cache, the way
#                     kolla-ansible deploys it; read at `up` and kept in LAB_DIR/lab.env)
#
# Ports: node i (1-based) Keystone on LAB_BASE_PORT+i, its sshd on LAB_BASE_PORT+100+i;
# HAProxy 1's frontend on LAB_BASE_PORT, HAProxy k>1 on LAB_BASE_PORT+50+k; memcached (with
# LAB_MEMCACHED=1) on LAB_BASE_PORT+99.
#
# Each HAProxy logs every request (httplog, with the client's User-Agent) to the datagram socket
# LAB_DIR/haproxy-log.sock: nothing listens there unless a test binds it (an observer of what
# each client got), and HAProxy drops the lines then.
#
# `up` writes, in LAB_DIR: ssh_config, known_hosts, id_ed25519, clouds.yaml, inventory.yaml (a
# cutover inventory), and per node nodeI/{etc/keystone/keystone.conf, restart.sh, keystone.log}.
set -euo pipefail

LAB_DIR=${LAB_DIR:-/tmp/cutover-lab}
LAB_NODES=${LAB_NODES:-3}
LAB_BASE_PORT=${LAB_BASE_PORT:-15000}
LAB_LBS=${LAB_LBS:-1}
LAB_VENV=${LAB_VENV:-/opt/cutover-lab-venv}
LAB_MEMCACHED=${LAB_MEMCACHED:-0}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "lab: $*" >&2; }
die() {
    echo "lab: ERROR: $*" >&2
    exit 1
}

# setup_failed STEP: die naming the step, with the end of the setup log (what keystone-manage
# said), so a failure in CI says why without the lab directory.
setup_failed() {
    local log="$LAB_DIR/setup/setup.log"
    echo "lab: ERROR: $1 failed; the end of $log:" >&2
    tail -n 15 "$log" 2>/dev/null | sed 's/^/lab:   /' >&2
    exit 1
}

ks_port() { echo $((LAB_BASE_PORT + $1)); }
ssh_port() { echo $((LAB_BASE_PORT + 100 + $1)); }
mc_port() { echo $((LAB_BASE_PORT + 99)); }
lb_port() { if [ "$1" = 1 ]; then echo "$LAB_BASE_PORT"; else echo $((LAB_BASE_PORT + 50 + $1)); fi; }

# LAB_DIR is removed by `down`: refuse anything that does not look like a lab directory.
check_lab_dir() {
    case "$LAB_DIR" in
    /* ) ;;
    *) die "LAB_DIR must be an absolute path (got '$LAB_DIR')" ;;
    esac
    case "$LAB_DIR" in
    / | /bin* | /boot* | /dev* | /etc* | /home | /lib* | /opt | /proc* | /root | /run | /sbin* | /sys* | /usr* | /var | /work | /tmp)
        die "refusing LAB_DIR=$LAB_DIR" ;;
    esac
    if [ -e "$LAB_DIR" ] && [ -n "$(ls -A "$LAB_DIR" 2>/dev/null)" ] && [ ! -e "$LAB_DIR/.cutover-lab" ]; then
        die "$LAB_DIR exists and is not a cutover lab (no .cutover-lab marker); refusing to use it"
    fi
}

# can_enter USER DIR: USER may traverse DIR (search permission, ACLs included: asked of the
# kernel as that user).
can_enter() {
    if command -v runuser >/dev/null; then
        runuser -u "$1" -- test -x "$2" 2>/dev/null
    elif command -v sudo >/dev/null; then
        sudo -n -u "$1" test -x "$2" 2>/dev/null
    else
        die "neither runuser nor sudo is installed: cannot check that the $1 user can reach $LAB_DIR"
    fi
}

# Keystone's key repositories live under LAB_DIR and belong to the keystone user, and
# keystone-manage checks that user can reach them: every directory from / down to LAB_DIR must
# be traversable by keystone. Otherwise fernet_setup fails later with no word about why (a lab
# under /root, mode 0700). Checks the directories that exist.
check_traversable() {
    local d=$LAB_DIR dirs=() i
    while :; do
        [ -d "$d" ] && dirs=("$d" "${dirs[@]}")
        [ "$d" = / ] && break
        d=$(dirname "$d")
    done
    for i in "${dirs[@]}"; do
        can_enter keystone "$i" ||
            die "the keystone user cannot enter $i ($(stat -c '%A, owner %U:%G' "$i")), so Keystone could not reach its keys under LAB_DIR=$LAB_DIR. Use a LAB_DIR that every user can reach (the default, /tmp/cutover-lab, is), or let others through: chmod o+x $i"
    done
}

check_install() {
    local missing=()
    [ "$(id -u)" = 0 ] || die "run as root"
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v ssh-keygen >/dev/null || missing+=(openssh-client)
    [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    command -v socat >/dev/null || missing+=(socat)
    command -v curl >/dev/null || missing+=(curl)
    getent passwd keystone >/dev/null || missing+=("keystone user")
    if [ "$LAB_MEMCACHED" = 1 ]; then
        [ -x /usr/bin/memcached ] || missing+=(memcached)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        die "missing: ${missing[*]}. Run tests/lab/install.sh as root."
    fi
    if [ ! -x "$LAB_VENV/bin/keystone-manage" ]; then
        log "no Keystone venv at $LAB_VENV: running install.sh"
        LAB_VENV=$LAB_VENV "$HERE/install.sh"
    fi
    if [ "$LAB_MEMCACHED" = 1 ] && ! "$LAB_VENV/bin/python" -c 'import memcache' >/dev/null 2>&1; then
        die "LAB_MEMCACHED=1: $LAB_VENV has no python-memcached (oslo_cache.memcache_pool needs it). Run tests/lab/install.sh as root."
    fi
    mkdir -p /run/sshd
}

# alive PID: the process exists and is not a zombie (an orphan's zombie lingers until init
# reaps it, and `kill -0` still succeeds on it).
alive() {
    local st
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# kill_pidfile FILE: stop the process named in FILE (TERM, then KILL after 5 s).
kill_pidfile() {
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f" 2>/dev/null || true)
    rm -f "$f"
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        alive "$pid" || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

ks_conf() { # node_dir db
    cat <<EOF
[DEFAULT]
use_stderr = true
debug = false

[database]
connection = sqlite:///$2

[token]
provider = fernet

[fernet_tokens]
key_repository = $1/etc/keystone/fernet-keys/

[fernet_receipts]
key_repository = $1/etc/keystone/fernet-keys/

[credential]
key_repository = $1/etc/keystone/credential-keys/

[jwt_tokens]
jws_private_key_repository = $1/etc/keystone/jws-keys/private
jws_public_key_repository = $1/etc/keystone/jws-keys/public

[identity]
password_hash_rounds = 4
EOF
    # LAB_MEMCACHED=1: Keystone's token cache in one memcached shared by every node, as
    # kolla-ansible writes it ([token] keeps Keystone's defaults: caching and cache_on_issue on,
    # the entries live [cache] expiration_time, 600 s).
    if [ "$LAB_MEMCACHED" = 1 ]; then
        cat <<EOF

[cache]
backend = oslo_cache.memcache_pool
enabled = true
memcache_servers = 127.0.0.1:$(mc_port)
EOF
    fi
}

# memcached_up: start the lab's memcached (LAB_MEMCACHED=1) on 127.0.0.1:mc_port, 64 MiB, its
# pid in LAB_DIR/memcached.pid, and wait until it answers.
memcached_up() {
    local user=nobody
    getent passwd memcache >/dev/null && user=memcache
    ! sshd_ok "$(mc_port)" || die "port $(mc_port) on 127.0.0.1 (memcached) is already in use"
    setsid /usr/bin/memcached -l 127.0.0.1 -p "$(mc_port)" -U 0 -m 64 -c 256 -u "$user" \
        >>"$LAB_DIR/memcached.log" 2>&1 </dev/null &
    echo $! >"$LAB_DIR/memcached.pid"
    wait_for "memcached on 127.0.0.1:$(mc_port) (see $LAB_DIR/memcached.log)" 20 mc_answers
}

# mc_cmd CMD: one memcached text-protocol command; prints the reply.
mc_cmd() {
    printf '%s\r\nquit\r\n' "$1" | socat -t 2 stdio "TCP:127.0.0.1:$(mc_port)"
}
mc_answers() { mc_cmd version 2>/dev/null | grep -q '^VERSION'; }

# flush-cache: empty the lab's shared memcached (`flush_all`), what a memcached restart or a
# cache eviction does to Keystone's cached token validations.
flush_cache() {
    check_lab_dir
    [ -e "$LAB_DIR/.cutover-lab" ] || die "no lab in $LAB_DIR"
    # shellcheck disable=SC1091
    . "$LAB_DIR/lab.env"
    [ "$LAB_MEMCACHED" = 1 ] || die "this lab has no memcached (bring it up with LAB_MEMCACHED=1)"
    local reply
    reply=$(mc_cmd flush_all 2>&1 | tr -d '\r') || true
    [ "$reply" = OK ] ||
        die "memcached on 127.0.0.1:$(mc_port) did not flush (reply '$reply'); see $LAB_DIR/memcached.log"
    log "flush-cache: memcached on 127.0.0.1:$(mc_port) emptied"
}

write_wsgi() {
    cat >"$LAB_DIR/keystone_wsgi.py" <<'EOF'
"""Serve keystone.wsgi.api on 127.0.0.1:$KS_PORT with wsgiref (one request at a time).

oslo.config parses sys.argv while the application loads, so argv is reset before the import.
The config comes from OS_KEYSTONE_CONFIG_FILES.
"""
import os
import sys

port = int(os.environ["KS_PORT"])
pidfile = os.environ.get("KS_PIDFILE")
if pidfile:
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
sys.argv = [sys.argv[0]]

from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server  # noqa: E402


class Handler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - one line per request is noise here
        pass


class Server(WSGIServer):
    allow_reuse_address = True


from keystone.wsgi.api import application  # noqa: E402

print(f"keystone lab node serving http://127.0.0.1:{port}/v3 (pid {os.getpid()})", flush=True)
make_server("127.0.0.1", port, application, server_class=Server, handler_class=Handler).serve_forever()
EOF
}

write_restart() { # i
    local i=$1 d="$LAB_DIR/node$1"
    cat >"$d/restart.sh" <<EOF
#!/bin/sh
# Restart lab node $i's Keystone: stop the running one (pid file), start a new one detached
# (own session, log file, stdin from /dev/null) and return at once.
D=$d
if [ -f "\$D/keystone.pid" ]; then
    pid=\$(cat "\$D/keystone.pid")
    if [ -n "\$pid" ] && kill "\$pid" 2>/dev/null; then
        # Wait until it is gone (a zombie counts as gone), at most 5 s, then KILL.
        n=0
        while [ \$n -lt 50 ]; do
            st=\$(sed 's/^.*) //' "/proc/\$pid/stat" 2>/dev/null | cut -c1)
            [ -n "\$st" ] && [ "\$st" != Z ] || break
            sleep 0.1
            n=\$((n + 1))
        done
        [ \$n -lt 50 ] || kill -9 "\$pid" 2>/dev/null || true
    fi
fi
echo "--- restart \$(date -u +%FT%TZ)" >>"\$D/keystone.log"
cd "\$D"
OS_KEYSTONE_CONFIG_FILES=\$D/etc/keystone/keystone.conf KS_PORT=$(ks_port "$i") KS_PIDFILE=\$D/keystone.pid \\
    setsid $LAB_VENV/bin/python $LAB_DIR/keystone_wsgi.py >>"\$D/keystone.log" 2>&1 </dev/null &
echo \$! >"\$D/keystone.pid"
EOF
    chmod 755 "$d/restart.sh"
}

write_sshd() { # i
    local i=$1 d="$LAB_DIR/node$1/sshd"
    mkdir -p "$d"
    ssh-keygen -q -t ed25519 -N '' -C "lab-node$i-host" -f "$d/host_ed25519"
    cat >"$d/sshd_config" <<EOF
Port $(ssh_port "$i")
ListenAddress 127.0.0.1
HostKey $d/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $LAB_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
X11Forwarding no
PrintMotd no
SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$LAB_VENV/bin
LogLevel INFO
EOF
}

write_haproxy() { # k
    local k=$1 i
    {
        cat <<EOF
global
    daemon
    maxconn 512
    pidfile $LAB_DIR/haproxy-$k.pid
    stats socket $LAB_DIR/haproxy-$k.sock mode 600 level admin
    server-state-file $LAB_DIR/haproxy-$k.state
    log $LAB_DIR/haproxy-log.sock local0

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 3s
    load-server-state-from-file global

frontend keystone_front
    bind 127.0.0.1:$(lb_port "$k")
    capture request header User-Agent len 64
    default_backend keystone_api

backend keystone_api
    balance roundrobin
    option httpchk GET /v3
EOF
        for i in $(seq "$LAB_NODES"); do
            echo "    server ks$i 127.0.0.1:$(ks_port "$i") check inter 1s fall 3 rise 2"
        done
    } >"$LAB_DIR/haproxy-$k.cfg"
}

# show_stat K: HAProxy K's `show stat` (CSV).
show_stat() {
    echo "show stat" | socat -t 5 stdio "UNIX-CONNECT:$LAB_DIR/haproxy-$1.sock"
}

# servers_up K: prints how many keystone_api servers are UP on HAProxy K.
servers_up() {
    show_stat "$1" 2>/dev/null | awk -F, '
        NR == 1 { for (c = 1; c <= NF; c++) { h = $c; sub(/^# */, "", h); col[h] = c }; next }
        $col["pxname"] == "keystone_api" && $col["svname"] ~ /^ks[0-9]+$/ && $col["status"] == "UP" { n++ }
        END { print n + 0 }'
}

wait_for() { # what seconds command...
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            die "timed out after ${secs}s waiting for $what"
        fi
        sleep 0.3
    done
}

v3_ok() { curl -sf -o /dev/null --max-time 3 "http://127.0.0.1:$1/v3"; }
all_up() { [ "$(servers_up "$1")" = "$LAB_NODES" ]; }
sshd_ok() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
    check_lab_dir
    check_install
    check_traversable
    if [ -e "$LAB_DIR/.cutover-lab" ]; then
        log "a lab is already in $LAB_DIR: taking it down first"
        down
    fi
    local t0=$SECONDS i k
    mkdir -p "$LAB_DIR"
    touch "$LAB_DIR/.cutover-lab"
    chmod 755 "$LAB_DIR"
    # Directories mkdir just made (under a umask such as 077) too.
    check_traversable
    {
        echo "LAB_NODES=$LAB_NODES"
        echo "LAB_BASE_PORT=$LAB_BASE_PORT"
        echo "LAB_LBS=$LAB_LBS"
        echo "LAB_VENV=$LAB_VENV"
        echo "LAB_MEMCACHED=$LAB_MEMCACHED"
    } >"$LAB_DIR/lab.env"
    local km="$LAB_VENV/bin/keystone-manage"
    local pw
    pw=$("$LAB_VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(18))')
    local lb="http://127.0.0.1:$LAB_BASE_PORT"

    # Ports must be free (a lab with the same ports elsewhere, or a leftover process).
    for i in $(seq "$LAB_NODES"); do
        for p in "$(ks_port "$i")" "$(ssh_port "$i")"; do
            ! sshd_ok "$p" || die "port $p on 127.0.0.1 is already in use"
        done
    done

    if [ "$LAB_MEMCACHED" = 1 ]; then
        log "starting the shared memcached on 127.0.0.1:$(mc_port)"
        memcached_up
    fi

    # One database and one set of Fernet/credential keys, set up once.
    log "setting up the shared database and keys"
    local s="$LAB_DIR/setup"
    mkdir -p "$s/etc/keystone"
    ks_conf "$s" "$LAB_DIR/keystone.db" >"$s/etc/keystone/keystone.conf"
    local c="--config-file $s/etc/keystone/keystone.conf"
    $km $c db_sync >>"$s/setup.log" 2>&1 || setup_failed db_sync
    $km $c fernet_setup --keystone-user keystone --keystone-group keystone >>"$s/setup.log" 2>&1 ||
        setup_failed fernet_setup
    $km $c credential_setup --keystone-user keystone --keystone-group keystone >>"$s/setup.log" 2>&1 ||
        setup_failed credential_setup
    $km $c bootstrap --bootstrap-password="$pw" --bootstrap-username admin \
        --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
        --bootstrap-admin-url "$lb/v3" --bootstrap-public-url "$lb/v3" \
        --bootstrap-internal-url "$lb/v3" >>"$s/setup.log" 2>&1 || setup_failed bootstrap

    # The operator's side: a key, known_hosts, ssh_config.
    ssh-keygen -q -t ed25519 -N '' -C cutover-lab -f "$LAB_DIR/id_ed25519"
    cp "$LAB_DIR/id_ed25519.pub" "$LAB_DIR/authorized_keys"
    : >"$LAB_DIR/known_hosts"
    : >"$LAB_DIR/ssh_config"
    write_wsgi

    for i in $(seq "$LAB_NODES"); do
        local d="$LAB_DIR/node$i"
        mkdir -p "$d/etc/keystone/jws-keys/private" "$d/etc/keystone/jws-keys/public"
        ks_conf "$d" "$LAB_DIR/keystone.db" >"$d/etc/keystone/keystone.conf"
        cp -a "$s/etc/keystone/fernet-keys" "$s/etc/keystone/credential-keys" "$d/etc/keystone/"
        chown -R keystone:keystone "$d/etc/keystone/jws-keys"
        chmod 750 "$d/etc/keystone/jws-keys" "$d/etc/keystone/jws-keys/private"
        chmod 755 "$d/etc/keystone/jws-keys/public"
        : >"$d/keystone.log"
        write_restart "$i"
        write_sshd "$i"
        /usr/sbin/sshd -f "$d/sshd/sshd_config" -E "$d/sshd/sshd.log" || die "sshd for node$i did not start"
        echo "[127.0.0.1]:$(ssh_port "$i") $(cut -d' ' -f1,2 "$d/sshd/host_ed25519.pub")" >>"$LAB_DIR/known_hosts"
        cat >>"$LAB_DIR/ssh_config" <<EOF
Host lab-node$i
  HostName 127.0.0.1
  Port $(ssh_port "$i")
  User root
  IdentityFile $LAB_DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $LAB_DIR/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes

EOF
        "$d/restart.sh"
    done

    for k in $(seq "$LAB_LBS"); do
        write_haproxy "$k"
        /usr/sbin/haproxy -f "$LAB_DIR/haproxy-$k.cfg" >"$LAB_DIR/haproxy-$k.log" 2>&1 ||
            die "haproxy $k did not start: $(cat "$LAB_DIR/haproxy-$k.log")"
    done

    cat >"$LAB_DIR/clouds.yaml" <<EOF
clouds:
  lab:
    auth:
      auth_url: $lb/v3
      username: admin
      password: "$pw"
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
EOF
    chmod 600 "$LAB_DIR/clouds.yaml"

    {
        echo "# cutover inventory for the lab in $LAB_DIR (written by tests/lab/lab.sh up)"
        echo "cluster: cutover-lab"
        echo "nodes:"
        for i in $(seq "$LAB_NODES"); do
            cat <<EOF
  - name: node$i
    reach: {ssh: lab-node$i}
    keystone_url: http://127.0.0.1:$(ks_port "$i")
    keystone_conf: $LAB_DIR/node$i/etc/keystone/keystone.conf
    keystone_user: keystone
    keystone_group: keystone
    restart: $LAB_DIR/node$i/restart.sh
    log_file: $LAB_DIR/node$i/keystone.log
    keygen: keystone-manage
EOF
        done
        echo "load_balancers:"
        for k in $(seq "$LAB_LBS"); do
            cat <<EOF
  - name: haproxy-$k
    reach: {ssh: lab-node1}
    socket: $LAB_DIR/haproxy-$k.sock
    config: $LAB_DIR/haproxy-$k.cfg
    backend: keystone_api
    frontend_url: http://127.0.0.1:$(lb_port "$k")
    servers:
EOF
            for i in $(seq "$LAB_NODES"); do
                echo "      node$i: ks$i"
            done
        done
        cat <<EOF
credentials:
  cloud: lab
  clouds_file: $LAB_DIR/clouds.yaml
ssh:
  config: $LAB_DIR/ssh_config
  known_hosts: $LAB_DIR/known_hosts
EOF
    } >"$LAB_DIR/inventory.yaml"

    log "waiting for Keystone on every node, every sshd and every HAProxy server UP"
    for i in $(seq "$LAB_NODES"); do
        wait_for "sshd of node$i" 20 sshd_ok "$(ssh_port "$i")"
    done
    for i in $(seq "$LAB_NODES"); do
        wait_for "Keystone node$i (see $LAB_DIR/node$i/keystone.log)" 120 v3_ok "$(ks_port "$i")"
    done
    for k in $(seq "$LAB_LBS"); do
        wait_for "every server UP on haproxy-$k" 60 all_up "$k"
    done
    local cache=""
    [ "$LAB_MEMCACHED" = 1 ] && cache=", token cache in memcached 127.0.0.1:$(mc_port)"
    log "up in $((SECONDS - t0))s: $LAB_NODES nodes, $LAB_LBS HAProxy$cache; inventory $LAB_DIR/inventory.yaml"
}

down() {
    check_lab_dir
    if [ ! -e "$LAB_DIR/.cutover-lab" ]; then
        log "no lab in $LAB_DIR"
        rm -rf "$LAB_DIR" 2>/dev/null || true
        return 0
    fi
    local f pid child
    # sshd session processes outlive their listener: end the listener's children first.
    for f in "$LAB_DIR"/node*/sshd/sshd.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] || continue
        for child in $(pgrep -P "$pid" 2>/dev/null || true); do
            kill "$child" 2>/dev/null || true
        done
    done
    for f in "$LAB_DIR"/haproxy-*.pid "$LAB_DIR"/node*/keystone.pid "$LAB_DIR"/node*/sshd/sshd.pid "$LAB_DIR/memcached.pid"; do
        [ -e "$f" ] && kill_pidfile "$f"
    done
    rm -rf "$LAB_DIR"
    log "down: $LAB_DIR removed"
}

status() {
    check_lab_dir
    [ -e "$LAB_DIR/.cutover-lab" ] || die "no lab in $LAB_DIR"
    # shellcheck disable=SC1091
    . "$LAB_DIR/lab.env"
    local i k provider v3 sshd
    for i in $(seq "$LAB_NODES"); do
        provider=$(awk -F= '/^\[/{s=$0} s=="[token]" && $1 ~ /^ *provider *$/ {gsub(/ /,"",$2); print $2}' \
            "$LAB_DIR/node$i/etc/keystone/keystone.conf")
        v3=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$(ks_port "$i")/v3" || true)
        if sshd_ok "$(ssh_port "$i")"; then sshd=up; else sshd=down; fi
        printf 'node%s provider=%s /v3=%s sshd(%s)=%s\n' "$i" "${provider:-fernet}" "$v3" "$(ssh_port "$i")" "$sshd"
    done
    for k in $(seq "$LAB_LBS"); do
        echo "haproxy-$k (127.0.0.1:$(lb_port "$k")):"
        show_stat "$k" | awk -F, '
            NR == 1 { for (c = 1; c <= NF; c++) { h = $c; sub(/^# */, "", h); col[h] = c }; print "  pxname,svname,scur,status"; next }
            NF > 1 { print "  " $col["pxname"] "," $col["svname"] "," $col["scur"] "," $col["status"] }'
    done
    if [ "$LAB_MEMCACHED" = 1 ]; then
        local items
        items=$(mc_cmd stats 2>/dev/null | tr -d '\r' | awk '$2 == "curr_items" { print $3 }')
        echo "memcached (127.0.0.1:$(mc_port)): ${items:-no answer} items"
    fi
}

# reload [K]: what config management does: `haproxy -sf OLDPID` with the same configuration, on
# instance K or on every instance. Nothing saves the server state first (Debian's unit does not
# either), so MAINT and DRAIN set at runtime are lost: drained servers come back into the pool.
reload() {
    check_lab_dir
    [ -e "$LAB_DIR/.cutover-lab" ] || die "no lab in $LAB_DIR"
    # shellcheck disable=SC1091
    . "$LAB_DIR/lab.env"
    local k ks
    if [ -n "${1:-}" ]; then ks=$1; else ks=$(seq "$LAB_LBS"); fi
    for k in $ks; do
        [ -s "$LAB_DIR/haproxy-$k.pid" ] || die "haproxy-$k has no pid file: is the lab up?"
        /usr/sbin/haproxy -f "$LAB_DIR/haproxy-$k.cfg" -sf "$(cat "$LAB_DIR/haproxy-$k.pid")" \
            >>"$LAB_DIR/haproxy-$k.log" 2>&1 || die "haproxy-$k did not reload: $(tail -5 "$LAB_DIR/haproxy-$k.log")"
        echo "haproxy-$k reloaded (runtime state not saved)"
    done
}

# ---------------------------------------------------------------------------------------------
# manual-cutover: the flagship (fernet-to-jws, per-node keys) as a hand-written shell cutover,
# no gates, over the lab's own transport (ssh to each node's sshd; the HAProxy admin sockets
# through lab-node1, as the inventory reaches them). The baseline of
# tests/bench/manual-vs-cutover.sh. Prints "T <epoch seconds> <event> [node]" lines on stdout
# (also in LAB_DIR/manual-cutover.times): start, keys-done, drained NODE (maint on every HAProxy),
# readd NODE (ready on every HAProxy), up NODE (UP on every HAProxy), done.

mc_ssh() { ssh -F "$LAB_DIR/ssh_config" "$@"; }
mc_mark() {
    local line
    line="T $(date +%s.%N) $*"
    echo "$line" | tee -a "$LAB_DIR/manual-cutover.times"
}

# mc_hap K CMD: one HAProxy runtime command on instance K, through lab-node1's sshd.
mc_hap() {
    mc_ssh lab-node1 "echo '$2' | socat -t 5 stdio UNIX-CONNECT:$LAB_DIR/haproxy-$1.sock"
}

# mc_server_field K SERVER FIELD: one `show stat` column of keystone_api/SERVER on HAProxy K.
mc_server_field() {
    mc_hap "$1" "show stat" | awk -F, -v sv="$2" -v want="$3" '
        NR == 1 { for (c = 1; c <= NF; c++) { h = $c; sub(/^# */, "", h); col[h] = c }; next }
        $col["pxname"] == "keystone_api" && $col["svname"] == sv { print $col[want] }'
}

mc_wait() { # what seconds command...
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || die "manual-cutover: timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}
mc_no_sessions() { [ "$(mc_server_field "$1" "$2" scur)" = 0 ]; }
mc_is_up() { [ "$(mc_server_field "$1" "$2" status)" = UP ]; }

manual_cutover() {
    check_lab_dir
    [ -e "$LAB_DIR/.cutover-lab" ] || die "no lab in $LAB_DIR"
    # shellcheck disable=SC1091
    . "$LAB_DIR/lab.env"
    local i k conf pw tok code body
    local keys=/etc/keystone/jws-keys
    local tmp
    tmp=$(mktemp -d)
    chmod 700 "$tmp"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    : >"$LAB_DIR/manual-cutover.times"
    mc_mark start

    # Keys: a keypair per node (keystone-manage on the node, in a scratch directory), private.pem
    # into the node's private repository, every node's public key onto every node as NODE.pem.
    for i in $(seq "$LAB_NODES"); do
        keys="$LAB_DIR/node$i/etc/keystone/jws-keys"
        conf="$LAB_DIR/node$i/etc/keystone/keystone.conf"
        mc_ssh "lab-node$i" "set -e; s=\$(mktemp -d); cd \$s
            keystone-manage --config-file $conf create_jws_keypair --keystone-user keystone --keystone-group keystone >/dev/null 2>err ||
                { echo \"node$i: keystone-manage create_jws_keypair failed:\" >&2; tail -5 err >&2; exit 1; }
            install -m 0600 -o keystone -g keystone private.pem $keys/private/private.pem
            install -m 0644 -o keystone -g keystone public.pem $keys/public/node$i.pem
            cd /; rm -rf \$s"
        scp -q -F "$LAB_DIR/ssh_config" "lab-node$i:$keys/public/node$i.pem" "$tmp/node$i.pem"
    done
    for i in $(seq "$LAB_NODES"); do
        keys="$LAB_DIR/node$i/etc/keystone/jws-keys"
        scp -q -F "$LAB_DIR/ssh_config" "$tmp"/node*.pem "lab-node$i:$keys/public/"
        mc_ssh "lab-node$i" "chown keystone:keystone $keys/public/*.pem && chmod 0644 $keys/public/*.pem"
    done
    mc_mark keys-done

    pw=$(sed -n 's/^ *password: "\(.*\)"$/\1/p' "$LAB_DIR/clouds.yaml")
    body="$tmp/token-request.json"
    printf '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"%s"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' \
        "$pw" >"$body"

    for i in $(seq "$LAB_NODES"); do
        conf="$LAB_DIR/node$i/etc/keystone/keystone.conf"
        # Out of the pool on every HAProxy: drain, wait for its sessions to end, maint.
        for k in $(seq "$LAB_LBS"); do
            mc_hap "$k" "set server keystone_api/ks$i state drain" >/dev/null
        done
        for k in $(seq "$LAB_LBS"); do
            mc_wait "ks$i's sessions to end on haproxy-$k" 60 mc_no_sessions "$k" "ks$i"
            mc_hap "$k" "set server keystone_api/ks$i state maint" >/dev/null
        done
        mc_mark drained "node$i"

        mc_ssh "lab-node$i" "sed -i.manual-bak '/^\[token\]/,/^\[/ s/^provider *=.*/provider = jws/' $conf && grep -q '^provider = jws' $conf && $LAB_DIR/node$i/restart.sh"
        mc_wait "node$i to answer /v3" 60 v3_ok "$(ks_port "$i")"

        # A token issued and validated directly at the node.
        tok=$(curl -s -D - -o /dev/null --max-time 20 -H 'Content-Type: application/json' \
            --data-binary "@$body" "http://127.0.0.1:$(ks_port "$i")/v3/auth/tokens" |
            awk 'tolower($1) == "x-subject-token:" { sub(/\r$/, "", $2); print $2 }')
        case "$tok" in eyJ*) ;; *) die "manual-cutover: node$i issued no JWS token (got '${tok:0:6}')" ;; esac
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H "X-Auth-Token: $tok" \
            -H "X-Subject-Token: $tok" "http://127.0.0.1:$(ks_port "$i")/v3/auth/tokens")
        [ "$code" = 200 ] || die "manual-cutover: node$i's own token did not validate there (HTTP $code)"

        for k in $(seq "$LAB_LBS"); do
            mc_hap "$k" "set server keystone_api/ks$i state ready" >/dev/null
        done
        mc_mark readd "node$i"
        for k in $(seq "$LAB_LBS"); do
            mc_wait "ks$i UP on haproxy-$k" 30 mc_is_up "$k" "ks$i"
        done
        mc_mark up "node$i"
    done
    mc_mark done
}

# check PROVIDER: the lab's assertions on a finished cutover, without cutover (as
# tests/lab_e2e.rs's assert_fleet): every keystone.conf names PROVIDER, every node issues a
# PROVIDER token, a token issued through HAProxy 1's frontend validates on every node, and every
# server is UP on every HAProxy. Exit 1 naming the first failure.
check() {
    local want=${1:-} i k p tok code n pw tmp prefix
    case "$want" in jws) prefix=eyJ ;; fernet) prefix=gAAAAA ;; *) die "usage: check jws|fernet" ;; esac
    check_lab_dir
    [ -e "$LAB_DIR/.cutover-lab" ] || die "no lab in $LAB_DIR"
    # shellcheck disable=SC1091
    . "$LAB_DIR/lab.env"
    tmp=$(mktemp)
    # shellcheck disable=SC2064
    trap "rm -f '$tmp'" EXIT
    pw=$(sed -n 's/^ *password: "\(.*\)"$/\1/p' "$LAB_DIR/clouds.yaml")
    printf '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"%s"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' \
        "$pw" >"$tmp"
    issue() {
        curl -s -D - -o /dev/null --max-time 20 -H 'Content-Type: application/json' \
            --data-binary "@$tmp" "http://127.0.0.1:$1/v3/auth/tokens" |
            awk 'tolower($1) == "x-subject-token:" { sub(/\r$/, "", $2); print $2 }'
    }
    for i in $(seq "$LAB_NODES"); do
        p=$(awk -F= '/^\[/{s=$0} s=="[token]" && $1 ~ /^ *provider *$/ {gsub(/ /,"",$2); print $2}' \
            "$LAB_DIR/node$i/etc/keystone/keystone.conf")
        [ "${p:-fernet}" = "$want" ] || die "check: node$i's keystone.conf says provider=${p:-fernet}, not $want"
        tok=$(issue "$(ks_port "$i")")
        case "$tok" in "$prefix"*) ;; *) die "check: node$i issued '${tok:0:6}', not a $want token" ;; esac
    done
    tok=$(issue "$(lb_port 1)")
    case "$tok" in "$prefix"*) ;; *) die "check: the token through haproxy-1's frontend is '${tok:0:6}', not $want" ;; esac
    for i in $(seq "$LAB_NODES"); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H "X-Auth-Token: $tok" \
            -H "X-Subject-Token: $tok" "http://127.0.0.1:$(ks_port "$i")/v3/auth/tokens")
        [ "$code" = 200 ] || die "check: the token issued through haproxy-1 does not validate on node$i (HTTP $code)"
    done
    for k in $(seq "$LAB_LBS"); do
        n=$(servers_up "$k")
        [ "$n" = "$LAB_NODES" ] || die "check: $n of $LAB_NODES servers UP on haproxy-$k"
    done
    echo "check: $LAB_NODES nodes on $want, in the pool on $LAB_LBS HAProxy"
}

# reset: the lab as `up` left it, without taking it down: every node's keystone.conf rewritten
# (fernet; the [cache] section kept when the lab has memcached), its JWS repositories emptied
# (staging and conf backups removed), the shared memcached emptied, every Keystone restarted,
# every server set ready on every HAProxy; waits until every server is UP.
reset() {
    check_lab_dir
    [ -e "$LAB_DIR/.cutover-lab" ] || die "no lab in $LAB_DIR"
    check_install
    # shellcheck disable=SC1091
    . "$LAB_DIR/lab.env"
    local t0=$SECONDS i k d
    for i in $(seq "$LAB_NODES"); do
        d="$LAB_DIR/node$i"
        ks_conf "$d" "$LAB_DIR/keystone.db" >"$d/etc/keystone/keystone.conf"
        rm -f "$d"/etc/keystone/keystone.conf.*
        rm -rf "$d/etc/keystone/jws-keys/.cutover-staging"
        find "$d/etc/keystone/jws-keys/private" "$d/etc/keystone/jws-keys/public" -mindepth 1 -delete
        "$d/restart.sh"
    done
    if [ "$LAB_MEMCACHED" = 1 ]; then
        [ "$(mc_cmd flush_all 2>&1 | tr -d '\r')" = OK ] || die "the lab's memcached on 127.0.0.1:$(mc_port) did not flush"
    fi
    for k in $(seq "$LAB_LBS"); do
        for i in $(seq "$LAB_NODES"); do
            echo "set server keystone_api/ks$i state ready" |
                socat -t 5 stdio "UNIX-CONNECT:$LAB_DIR/haproxy-$k.sock" >/dev/null
        done
    done
    for i in $(seq "$LAB_NODES"); do
        wait_for "Keystone node$i (see $LAB_DIR/node$i/keystone.log)" 120 v3_ok "$(ks_port "$i")"
    done
    for k in $(seq "$LAB_LBS"); do
        wait_for "every server UP on haproxy-$k" 60 all_up "$k"
    done
    log "reset in $((SECONDS - t0))s: $LAB_NODES nodes on fernet, every server UP"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
reload) reload "${2:-}" ;;
reset) reset ;;
check) check "${2:-}" ;;
manual-cutover) manual_cutover ;;
flush-cache) flush_cache ;;
*)
    echo "usage: $0 up|down|status|reload [K]|reset|check jws|fernet|manual-cutover|flush-cache   (env: LAB_DIR LAB_NODES LAB_BASE_PORT LAB_LBS LAB_VENV LAB_MEMCACHED)" >&2
    exit 2
    ;;
esac
