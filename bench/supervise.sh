#!/usr/bin/env bash
# Benchmark of issue 3: the daemon's resident memory and CPU while it supervises N idle
# instances (default 20), and how long `ostler status` takes with them and the daemon up
# (it asks the daemon over the control socket, then reads the instances).
#   bench/supervise.sh [N] [SECONDS]      (default 20 instances, 30 s of sampling)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
SECS=${2:-30}
if [ -z "${OSTLER_BIN:-}" ]; then cargo build --release -p ostler -p guestbook >/dev/null 2>&1 || cargo build --release -p ostler -p guestbook; fi
OSTLER=${OSTLER_BIN:-$PWD/target/release/ostler}
GB=$(dirname "$OSTLER")/guestbook
WORK=$(mktemp -d /tmp/ostler-bench-supervise.XXXXXX)
cleanup() {
    [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null || true
    (cd "$WORK" && "$OSTLER" stop "$(seq -s, -f 'gb-%g' 1 "$N")" >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
{
    printf '[service]\nname = "bench"\n'
    for i in $(seq 1 "$N"); do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        printf '\n[instances.gb-%d]\ndir = "i/gb-%d"\nbuild = "cp %s ."\nstart = "./guestbook --port {port} --db {db}"\nport = %d\nhealth = "http://127.0.0.1:{port}/health"\nautostart = true\n[instances.gb-%d.database]\nkind = "sqlite"\npath = "data.db"\n' \
            "$i" "$i" "$GB" "$port" "$i"
    done
} > ostler.toml
"$OSTLER" build "$(seq -s, -f 'gb-%g' 1 "$N")" 2>/dev/null
"$OSTLER" serve --tick 1s 2>serve.log &
SERVE_PID=$!
for _ in $(seq 1 120); do
    running=$("$OSTLER" status --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["instances"] if s["state"]=="running"))')
    [ "$running" = "$N" ] && break
    sleep 1
done
echo "instances running under serve: $running / $N"
sleep 3
t0=$(awk '{print $14+$15}' /proc/$SERVE_PID/stat)
sleep "$SECS"
t1=$(awk '{print $14+$15}' /proc/$SERVE_PID/stat)
hz=$(getconf CLK_TCK)
rss=$(awk '/VmRSS/ {print $2}' /proc/$SERVE_PID/status)
cpu=$(python3 -c "print(f'{($t1-$t0)/$hz/$SECS*100:.2f}')")
echo "daemon RSS: $((rss / 1024)).$(( (rss % 1024) * 10 / 1024 )) MiB; CPU: ${cpu} % of one core over ${SECS}s"
start=$(date +%s%N)
for _ in $(seq 1 20); do "$OSTLER" status >/dev/null; done
end=$(date +%s%N)
"$OSTLER" status | head -1
echo "ostler status with the daemon up and $N instances: $(( (end - start) / 20 / 1000000 )) ms (mean of 20)"
start=$(date +%s%N)
for _ in $(seq 1 20); do "$OSTLER" serve --status >/dev/null; done
end=$(date +%s%N)
echo "ostler serve --status (the daemon's answer alone): $(( (end - start) / 20 / 1000000 )) ms (mean of 20)"
