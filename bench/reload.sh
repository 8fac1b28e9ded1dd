#!/usr/bin/env bash
# Benchmark of issue 10: how long `ostler reload` takes with N instances (default 100)
# under a running daemon, from the command's start to its answer (the daemon re-reads
# and validates the file, diffs it, swaps it in and journals it). Each round alternates
# between two configs that differ in one instance's env, so every reload changes one.
# The instances are `sleep` processes (autostart, no health URL): the daemon supervises
# N live processes without N web servers competing for the cores.
#   bench/reload.sh [N] [ROUNDS]      (default 100 instances, 10 rounds; prints the median)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
ROUNDS=${2:-10}
if [ -z "${OSTLER_BIN:-}" ]; then cargo build --release -p ostler >/dev/null 2>&1 || cargo build --release -p ostler; fi
OSTLER=${OSTLER_BIN:-$PWD/target/release/ostler}
WORK=$(mktemp -d /tmp/ostler-bench-reload.XXXXXX)
cleanup() {
    [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null || true
    (cd "$WORK" && "$OSTLER" stop "$(seq -s, -f 'i-%g' 1 "$N")" >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
# config VALUE: N instances; i-1's env carries VALUE.
config() {
    printf '[service]\nname = "bench"\n'
    for i in $(seq 1 "$N"); do
        printf '\n[instances.i-%d]\ndir = "i/%d"\nstart = "sleep 86400"\nport = %d\nautostart = true\n' \
            "$i" "$i" $((20000 + i))
        [ "$i" = 1 ] && printf 'env = { ROUND = "%s" }\n' "$1"
        mkdir -p "i/$i"
    done
}
config 0 > ostler.toml
"$OSTLER" serve --tick 1s 2>serve.log &
SERVE_PID=$!
for _ in $(seq 1 120); do
    running=$("$OSTLER" status --json | python3 -c 'import json,sys; v=json.load(sys.stdin); v=v["instances"] if isinstance(v,dict) else v; print(sum(1 for s in v if s["state"]=="running"))')
    [ "$running" = "$N" ] && break
    sleep 1
done
echo "instances running under serve: $running / $N"
times=()
for r in $(seq 1 "$ROUNDS"); do
    config "$r" > ostler.toml
    start=$(date +%s%N)
    out=$("$OSTLER" reload)
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
    [ "$r" = 1 ] && echo "first answer: $out"
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
median=${sorted[$(( ROUNDS / 2 ))]}
echo "ostler reload with $N instances: median $((median / 1000)).$(( (median % 1000) / 100 )) ms of $ROUNDS (min $((sorted[0] / 1000)) ms, max $((sorted[ROUNDS - 1] / 1000)) ms)"
