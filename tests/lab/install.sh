#!/bin/bash
# Install what the cutover lab needs (run as root; idempotent; quiet when everything is there):
#   Debian packages: openssh-server openssh-client haproxy socat curl python3-venv memcached
#   a venv at LAB_VENV (default /opt/cutover-lab-venv) with keystone + python-openstackclient,
#   and python-memcached + pymemcache for Keystone's memcache backends (oslo_cache.memcache_pool
#   imports `memcache`, dogpile.cache.pymemcache imports `pymemcache`; neither comes with keystone)
#   the `keystone` system user and group, /run/sshd
# No system daemon is started: a /usr/sbin/policy-rc.d that exits 101 is put in place for the
# install if none exists (and removed again afterwards if this script created it).
set -euo pipefail

LAB_VENV=${LAB_VENV:-/opt/cutover-lab-venv}
say() { echo "lab install: $*"; }

if [ "$(id -u)" != 0 ]; then
    echo "lab install: must run as root" >&2
    exit 1
fi

# --- Debian packages -------------------------------------------------------------------------
need=()
have_cmd() { [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; }
have_cmd /usr/sbin/sshd || need+=(openssh-server)
{ have_cmd ssh && have_cmd ssh-keygen && have_cmd ssh-agent && have_cmd ssh-add; } || need+=(openssh-client)
have_cmd /usr/sbin/haproxy || need+=(haproxy)
have_cmd socat || need+=(socat)
have_cmd curl || need+=(curl)
have_cmd /usr/bin/memcached || need+=(memcached)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
    created_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# cutover lab: no daemon starts during package installs\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if [ -n "$created_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
fi
mkdir -p /run/sshd
chmod 755 /run/sshd

# --- keystone user ----------------------------------------------------------------------------
getent group keystone >/dev/null || groupadd --system keystone
getent passwd keystone >/dev/null ||
    useradd --system --gid keystone --home-dir /var/lib/keystone --no-create-home \
        --shell /usr/sbin/nologin keystone

# --- Keystone venv ----------------------------------------------------------------------------
# Keystone 30 wants Python >= 3.10. Debian 12's /usr/bin/python3 is 3.11; pyenv's python3 (if
# any) is not used, so the venv does not depend on a shell's pyenv setup.
pick_python() {
    for py in /usr/bin/python3 /usr/bin/python3.11 /usr/bin/python3.12 /usr/bin/python3.13; do
        if [ -x "$py" ] && "$py" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}
if ! "$LAB_VENV/bin/python" -c 'import keystone, openstackclient' >/dev/null 2>&1 ||
    [ ! -x "$LAB_VENV/bin/keystone-manage" ] || [ ! -x "$LAB_VENV/bin/openstack" ]; then
    py=$(pick_python) || {
        echo "lab install: no python3 >= 3.10 with venv support found" >&2
        exit 1
    }
    say "creating $LAB_VENV with $py (keystone, python-openstackclient from PyPI; about a minute)"
    if [ -e "$LAB_VENV/pyvenv.cfg" ]; then
        rm -rf "$LAB_VENV"
    elif [ -e "$LAB_VENV" ] && [ -n "$(ls -A "$LAB_VENV")" ]; then
        echo "lab install: $LAB_VENV exists and is not a venv; refusing to touch it" >&2
        exit 1
    fi
    "$py" -m venv "$LAB_VENV"
    "$LAB_VENV/bin/pip" install -q --disable-pip-version-check keystone python-openstackclient
    "$LAB_VENV/bin/python" -c 'import keystone, openstackclient'
fi
# The memcache backends' client libraries (LAB_MEMCACHED=1 labs); a venv made before they were
# needed gets them added.
if ! "$LAB_VENV/bin/python" -c 'import memcache, pymemcache' >/dev/null 2>&1; then
    say "adding python-memcached and pymemcache to $LAB_VENV"
    "$LAB_VENV/bin/pip" install -q --disable-pip-version-check python-memcached pymemcache
    "$LAB_VENV/bin/python" -c 'import memcache, pymemcache'
fi
