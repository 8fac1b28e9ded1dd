#!/usr/bin/env bash
# Installs what ostler's test suite needs on a Debian or Ubuntu machine, and only
# what is missing: the database servers and clients the tests start throwaway
# copies of (PostgreSQL, MariaDB, SQLite), OpenSSH for the remote-host tests, the
# process tools, logrotate and zstd (ostler's log rotation is compared with
# logrotate's), and moto's S3 server for the object-storage tests.
#
# Idempotent: a machine that has everything gets no apt-get update and no install.
# Uses sudo only when not run as root.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
    as_root() { sudo "$@"; }
else
    echo "install-test-deps: not root and no sudo; cannot install packages" >&2
    exit 1
fi

# Is any of these commands (names on $PATH, or absolute paths) there?
have() {
    local cmd
    for cmd in "$@"; do
        case "$cmd" in
            /*) [ -x "$cmd" ] && return 0 ;;
            *) command -v "$cmd" >/dev/null 2>&1 && return 0 ;;
        esac
    done
    return 1
}

# Is the Debian package installed (not merely known, or removed with its config)?
installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

have_pg_server() {
    local initdb
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$initdb" ] && return 0
    done
    return 1
}

missing=()
# need PACKAGE CHECK...: PACKAGE is missing unless it is installed or a CHECK passes.
need() {
    local pkg=$1
    shift
    installed "$pkg" && return 0
    "$@" && return 0
    missing+=("$pkg")
}

need postgresql have_pg_server
need postgresql-client have psql
need mariadb-server have mariadbd /usr/sbin/mariadbd
need mariadb-client have mariadb
need sqlite3 have sqlite3
need openssh-server have sshd /usr/sbin/sshd
need openssh-client have ssh
need procps have pgrep
need psmisc have fuser
# the log rotation tests run Debian's logrotate side by side with ostler's, and
# zstd as logrotate's compresscmd for the zstd case.
need logrotate have /usr/sbin/logrotate
need zstd have zstd
# moto is installed with pip below, which needs pip if moto is not there yet.
if ! have moto_server && ! python3 -m pip --version >/dev/null 2>&1; then
    need python3-pip false
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "install-test-deps: system packages already installed"
fi

if have moto_server; then
    echo "install-test-deps: moto_server already installed"
else
    echo "install-test-deps: installing moto[server] with pip"
    pip_log=$(mktemp)
    trap 'rm -f "$pip_log"' EXIT
    if ! python3 -m pip install 'moto[server]' 2>&1 | tee "$pip_log"; then
        if grep -q 'externally-managed-environment' "$pip_log"; then
            echo "install-test-deps: pip refuses the system Python; retrying with --break-system-packages"
            python3 -m pip install --break-system-packages 'moto[server]'
        else
            echo "install-test-deps: pip install 'moto[server]' failed" >&2
            exit 1
        fi
    fi
    hash -r
    if ! have moto_server; then
        echo "install-test-deps: moto is installed but moto_server is not on \$PATH" \
            "(pip may have put it in ~/.local/bin)" >&2
    fi
fi
