#!/usr/bin/env bash
# Benchmark of issue 10 (item 7): time from SIGKILL of a supervised instance to its
# restart by `ostler serve`, with zero backoff on the first crash (backoff_initial =
# "0s"). Two numbers per kill:
#   spawned: the new process's start time (/proc/PID/stat, clock ticks) minus the
#            kill time (/proc/uptime): when the daemon launched the replacement;
#   seen:    until `ostler status --json` shows the new pid running (includes the
#            polling, one `ostler status` a round, and the start's own check that
#            the process is still alive 300 ms on, for an instance without health URL).
#   bench/restart.sh [KILLS]       (default 10; prints each kill and the medians)
# OSTLER_BIN=path/to/ostler skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-10}
if [ -z "${OSTLER_BIN:-}" ]; then cargo build --release -p ostler >/dev/null 2>&1 || cargo build --release -p ostler; fi
OSTLER=${OSTLER_BIN:-$PWD/target/release/ostler}
WORK=$(mktemp -d /tmp/ostler-bench-restart.XXXXXX)
cleanup() {
    [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
    (cd "$WORK" && "$OSTLER" stop app >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# crash_limit above the kills: every kill is a plain restart; a window of 1 ms keeps
# each crash the first within it, so each restart has the zero first-crash backoff.
cat > ostler.toml <<TOML
[service]
name = "bench-restart"

[supervise]
backoff_initial = "0s"
backoff_max = "0s"
crash_limit = 1000
crash_window = "1ms"

[instances.app]
dir = "."
start = "sleep 3600"
port = $port
autostart = true
TOML
"$OSTLER" serve --tick 1s 2>serve.log &
SERVE_PID=$!
pid_of() { "$OSTLER" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d["instances"] if isinstance(d, dict) else d; s=[i for i in d if i["name"]=="app"][0]; print(s["pid"] if s["state"]=="running" and s["pid"] else "")'; }
for _ in $(seq 1 100); do pid=$(pid_of); [ -n "$pid" ] && break; sleep 0.1; done
[ -n "$pid" ] || { echo "serve did not start app"; cat serve.log; exit 1; }
hz=$(getconf CLK_TCK)
spawned=(); seen=()
for k in $(seq 1 "$KILLS"); do
    sleep 0.5   # let the last start's health wait end and the lock go
    old=$pid
    up0=$(awk '{print $1}' /proc/uptime)
    t0=$(date +%s%N)
    kill -9 "$old"
    while :; do
        pid=$(pid_of)
        [ -n "$pid" ] && [ "$pid" != "$old" ] && break
    done
    t1=$(date +%s%N)
    start_ticks=$(awk '{print $22}' "/proc/$pid/stat")
    s=$(python3 -c "print(round(max(0, $start_ticks/$hz - $up0)*1000))")
    w=$(( (t1 - t0) / 1000000 ))
    spawned+=("$s"); seen+=("$w")
    echo "kill $k: pid $old -> $pid, spawned after ${s} ms, seen in status after ${w} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median of $KILLS: spawned after $(median "${spawned[@]}") ms, seen in status after $(median "${seen[@]}") ms (clock ticks of $((1000 / hz)) ms)"
