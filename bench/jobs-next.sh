#!/usr/bin/env bash
# Benchmark of issue 11 item 8: `ostler jobs next NAME --count 10000` for a recurrence
# rule and for a cron pattern (and an hourly rule, which steps on the real clock), in
# Europe/Zurich so that every year's two DST days are crossed. Release build; the median
# wall time of 5 runs each, output discarded. Not a test: numbers go to docs/BENCHMARKS.md.
#
#   bench/jobs-next.sh [--no-build] [--runs N] [--count N]
set -euo pipefail

build=1 runs=5 count=10000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) build=0 ;;
        --runs) runs="$2"; shift ;;
        --count) count="$2"; shift ;;
        *) echo "usage: bench/jobs-next.sh [--no-build] [--runs N] [--count N]" >&2; exit 2 ;;
    esac
    shift
done

root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $build == 1 ]]; then
    (cd "$root" && cargo build --release -p ostler -q)
fi
bin="$root/target/release/ostler"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/ostler.toml" <<'TOML'
[service]
name = "bench"
timezone = "Europe/Zurich"

[[jobs]]
name = "rule-daily"
schedule = "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"
command = "true"

[[jobs]]
name = "rule-hourly"
schedule = "FREQ=HOURLY;INTERVAL=2"
command = "true"

[[jobs]]
name = "cron-daily"
schedule = "30 2 * * *"
command = "true"

[[jobs]]
name = "cron-5min"
schedule = "*/5 * * * *"
command = "true"
TOML

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-12s %8s  %s\n' job "median" "(ms, $runs runs, --count $count)"
for job in rule-daily rule-hourly cron-daily cron-5min; do
    for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        (cd "$work" && "$bin" jobs next "$job" --count "$count" --from "2026-01-01 00:00 UTC" >/dev/null)
        end=$(date +%s%N)
        echo $(( (end - start) / 1000000 ))
    done | median | xargs printf '%-12s %8s\n' "$job"
done
