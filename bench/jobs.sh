#!/usr/bin/env bash
# Benchmark of issue 11 item 8: the scheduler inside `ostler serve`.
#
#   bench/jobs.sh idle [N] [SECONDS]             the daemon's RSS and CPU with N idle jobs
#                                                (default 200, sampled 30 s), and how long
#                                                `ostler jobs` takes with them and the daemon up
#   bench/jobs.sh lateness [RUNS] [JOBS] [--load] [--overlap MODE]
#                                                how late RUNS runs (default 1000) of JOBS
#                                                every-second jobs (default 10, `command =
#                                                "true"`) start: started_at - scheduled_for
#                                                from job_runs, p50/p90/p99/max; --load runs
#                                                one `yes > /dev/null` per core meanwhile;
#                                                --overlap sets the jobs' `overlap` (skip)
#   bench/jobs.sh next                           bench/jobs-next.sh --no-build (issue 11's
#                                                `jobs next --count 10000`)
#   bench/jobs.sh all                            idle 0 10 (baseline), idle 200 30, idle 200
#                                                130 (two of the scheduler's 60 s looks),
#                                                lateness 1000 10, lateness 1000 10 --load, next
#
# Environment: OSTLER_BIN (default a release build made here), SERVE_NICE (the daemon's
# niceness, default 0; e.g. -5, as root, to see how much of the lateness under load is
# the CPU scheduler's). Release build unless OSTLER_BIN is set. Each mode works in its own temp dir, removed at
# exit with the daemon and the load stopped. Everything printed goes to
# bench/results/jobs-DATE.log, the numbers to bench/results/jobs-DATE.json and each
# lateness run's per-run times to bench/results/jobs-DATE-lateness[-load].csv.
# Not a test: the numbers go to docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-all}
[ $# -gt 0 ] && shift
case "$MODE" in
    idle | lateness | next | all) ;;
    *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
if [ -z "${OSTLER_BIN:-}" ]; then cargo build --release -p ostler >/dev/null 2>&1 || cargo build --release -p ostler; fi
OSTLER=${OSTLER_BIN:-$ROOT/target/release/ostler}
STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p bench/results
LOG=$ROOT/bench/results/jobs-$STAMP.log
JSON=$ROOT/bench/results/jobs-$STAMP.json
PARTS=$(mktemp -d /tmp/ostler-bench-jobs-parts.XXXXXX)
exec > >(tee -a "$LOG") 2>&1

SERVE_PID=
LOAD_PIDS=()
WORKS=()
cleanup() {
    [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
    for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for w in "${WORKS[@]}"; do rm -rf "$w"; done
    rm -rf "$PARTS"
}
trap cleanup EXIT

echo "+ bench/jobs.sh $MODE $*   ($(date -u +%FT%TZ), $(nproc) cores, $(uname -r))"
echo "  binary: $OSTLER ($("$OSTLER" --version 2>/dev/null || echo '?')); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (crates dirty)')"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg); the daemon's niceness: ${SERVE_NICE:-0}"

# serve_up DIR: starts `ostler serve` in DIR (stderr to DIR/serve.log) and waits until it
# answers on its control socket.
serve_up() {
    (cd "$1" && exec nice -n "${SERVE_NICE:-0}" "$OSTLER" serve 2>serve.log) &
    SERVE_PID=$!
    for _ in $(seq 1 200); do
        if (cd "$1" && "$OSTLER" serve --status >/dev/null 2>&1); then return 0; fi
        if ! kill -0 "$SERVE_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "FAILED: ostler serve did not come up in $1; its log ends:" >&2
    tail -20 "$1/serve.log" >&2
    exit 1
}

# serve_down: SIGTERM, then waits for the daemon to end.
serve_down() {
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=
}

# idle N SECONDS
idle() {
    local n=$1 secs=$2 work
    work=$(mktemp -d /tmp/ostler-bench-jobs-idle.XXXXXX)
    WORKS+=("$work")
    # N jobs that do not fire while sampled: each at a time of day 12 hours from now in
    # its zone, cron (5 and 6 fields) and rules (daily, weekly, monthly) in turn, over 8
    # zones (every 8th job without `timezone`, in [service]'s).
    python3 - "$n" >"$work/ostler.toml" <<'PY'
import datetime, sys, zoneinfo
n = int(sys.argv[1])
zones = [None, "UTC", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
         "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Auckland"]
now = datetime.datetime.now(datetime.timezone.utc)
print('[service]\nname = "bench"\ntimezone = "Europe/Zurich"')
for i in range(n):
    zone = zones[i % len(zones)]
    local = now.astimezone(zoneinfo.ZoneInfo(zone or "Europe/Zurich"))
    h, m = (local.hour + 12) % 24, (i * 7) % 60
    schedule = [f"{m} {h} * * *", f"0 {m} {h} * * *", f"FREQ=DAILY;BYHOUR={h};BYMINUTE={m}",
                f"FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR={h};BYMINUTE={m}",
                f"FREQ=MONTHLY;BYMONTHDAY=1,15,-1;BYHOUR={h};BYMINUTE={m}"][i % 5]
    print(f'\n[[jobs]]\nname = "job-{i + 1}"\nschedule = "{schedule}"')
    if zone:
        print(f'timezone = "{zone}"')
    print('command = "true"')
PY
    echo
    echo "== idle: $n jobs, sampled ${secs}s"
    [ "$n" -gt 0 ] && grep -m5 '^schedule' "$work/ostler.toml" | sed 's/^/  e.g. /'
    serve_up "$work"
    sleep 3
    local pid=$SERVE_PID hz t0 t1 rss hwm threads cpu runs
    hz=$(getconf CLK_TCK)
    t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    echo "daemon CPU before sampling (start, config, first look): $t0 ticks of 1/${hz} s"
    sleep "$secs"
    t1=$(awk '{print $14+$15}' /proc/$pid/stat)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    threads=$(awk '/Threads/ {print $2}' /proc/$pid/status)
    cpu=$(python3 -c "print(f'{($t1-$t0)/$hz/$secs*100:.2f}')")
    runs=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM job_runs').fetchone()[0])" "$work/.ostler/state.db")
    echo "daemon RSS: $(mib "$rss") MiB (peak $(mib "$hwm") MiB, $threads threads); CPU: ${cpu} % of one core over ${secs}s ($((t1 - t0)) ticks of 1/${hz} s); runs recorded meanwhile: $runs"
    local start end list_ms json_ms
    start=$(date +%s%N)
    for _ in $(seq 1 20); do (cd "$work" && "$OSTLER" jobs >/dev/null); done
    end=$(date +%s%N)
    list_ms=$(( (end - start) / 20 / 100000 ))
    start=$(date +%s%N)
    for _ in $(seq 1 20); do (cd "$work" && "$OSTLER" --json jobs >/dev/null); done
    end=$(date +%s%N)
    json_ms=$(( (end - start) / 20 / 100000 ))
    if [ "$n" -gt 0 ]; then
        echo "ostler jobs, first lines:"
        (cd "$work" && "$OSTLER" jobs | head -3 | sed 's/^/  /')
        echo "ostler jobs lists $(cd "$work" && "$OSTLER" --json jobs | python3 -c 'import json,sys; v=json.load(sys.stdin); v=v.get("jobs", v) if isinstance(v, dict) else v; print(len(v))') jobs"
    fi
    echo "ostler jobs with the daemon up and $n jobs: $((list_ms / 10)).$((list_ms % 10)) ms (mean of 20); --json $((json_ms / 10)).$((json_ms % 10)) ms"
    cpu_after=$(awk '{print $14+$15}' /proc/$pid/stat)
    serve_down
    python3 - "$PARTS/idle-$n-$secs.json" <<PY
import json, sys
json.dump({"mode": "idle", "jobs": $n, "seconds": $secs, "rss_kib": $rss, "peak_rss_kib": $hwm,
           "threads": $threads, "cpu_percent_of_one_core": $cpu, "cpu_ticks": $((t1 - t0)), "cpu_ticks_before_sampling": $t0, "clk_tck": $hz,
           "cpu_ticks_during_40_jobs_commands": $((cpu_after - t1)),
           "runs_recorded": $runs, "jobs_list_ms": $list_ms / 10, "jobs_json_ms": $json_ms / 10},
          open(sys.argv[1], "w"))
PY
}

mib() { python3 -c "print(f'{$1/1024:.1f}')"; }

# lateness RUNS JOBS LOAD(0|1)
lateness() {
    local runs=$1 jobs=$2 load=$3 overlap=${4:-skip} work tag=""
    [ "$load" = 1 ] && tag="-load"
    [ "$overlap" != skip ] && tag="$tag-$overlap"
    work=$(mktemp -d /tmp/ostler-bench-jobs-late.XXXXXX)
    WORKS+=("$work")
    {
        printf '[service]\nname = "bench"\ntimezone = "UTC"\n'
        for i in $(seq 1 "$jobs"); do
            printf '\n[[jobs]]\nname = "every-second-%d"\nschedule = "* * * * * *"\ncommand = "true"\noverlap = "%s"\n' "$i" "$overlap"
        done
    } >"$work/ostler.toml"
    echo
    echo "== lateness: $runs runs of $jobs jobs \`* * * * * *\` (command = \"true\", overlap = \"$overlap\"), $([ "$load" = 1 ] && echo "under load: $(nproc) x \`yes > /dev/null\`" || echo "no added load")"
    if [ "$load" = 1 ]; then
        for _ in $(seq 1 "$(nproc)"); do
            yes >/dev/null &
            LOAD_PIDS+=($!)
        done
        sleep 1
    fi
    serve_up "$work"
    local t0 limit c0 c1 hz
    t0=$(date +%s)
    hz=$(getconf CLK_TCK)
    c0=$(awk '{print $14+$15}' /proc/$SERVE_PID/stat)
    limit=$(( runs / jobs * 3 + 60 ))
    # Waits until RUNS runs after the first second's have started (the first look only
    # sets each job's cursor), or LIMIT seconds.
    while :; do
        started=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM job_runs WHERE started_at IS NOT NULL').fetchone()[0])" "$work/.ostler/state.db" 2>/dev/null || echo 0)
        [ "$started" -ge $(( runs + jobs )) ] && break
        if [ $(( $(date +%s) - t0 )) -gt "$limit" ]; then
            echo "(stopped after ${limit}s with $started runs started)"
            break
        fi
        sleep 2
    done
    c1=$(awk '{print $14+$15}' /proc/$SERVE_PID/stat)
    echo "daemon CPU meanwhile (its own threads, not the commands): $(python3 -c "print(f'{($c1-$c0)/$hz/max(1,$(date +%s)-$t0)*100:.1f}')") % of one core"
    serve_down
    if [ "$load" = 1 ]; then
        for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        LOAD_PIDS=()
    fi
    echo "ran for $(( $(date +%s) - t0 ))s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
    python3 - "$work/.ostler/state.db" "$runs" "$jobs" "$load" "$PARTS/lateness$tag.json" \
        "$ROOT/bench/results/jobs-$STAMP-lateness$tag.csv" <<'PY'
import collections, json, math, re, sqlite3, sys
from datetime import datetime, timezone

db, want, jobs, load, out, csv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5], sys.argv[6]
RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")

def ns(text):
    """An RFC 3339 time as integer nanoseconds since the epoch (exact, unlike floats)."""
    m = RFC3339.match(text)
    if not m:
        raise SystemExit(f"FAILED: not an RFC 3339 time in job_runs: {text!r}")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    secs = int(datetime.fromisoformat(m.group(1) + zone).timestamp())
    return secs * 10**9 + int((m.group(2) or "0").ljust(9, "0"))

rows = sqlite3.connect(db).execute(
    "SELECT id, job, scheduled_for, trigger, state, queued_at, started_at, finished_at, missed"
    " FROM job_runs ORDER BY scheduled_for, id").fetchall()
states = collections.Counter((r[3], r[4]) for r in rows)
print("runs recorded, by (trigger, state):", dict(sorted(states.items())))
for state, n in sqlite3.connect(db).execute(
        "SELECT state, count(*) FROM job_runs WHERE state IN ('failed', 'skipped') GROUP BY state"):
    why = sqlite3.connect(db).execute(
        "SELECT detail FROM job_runs WHERE state = ? ORDER BY id LIMIT 1", (state,)).fetchone()
    print(f"  {n} {state}, the first saying: {why[0]}")
# The first RUNS scheduled runs that started, in order of their time.
picked = [r for r in rows if r[3] == "schedule" and r[6] is not None][:want]
if not picked:
    raise SystemExit("FAILED: no run started")
late, claim, start, took = [], [], [], []
with open(csv, "w") as f:
    f.write("id,job,scheduled_for,queued_ms,started_ms,finished_ms\n")
    for r in picked:
        s = ns(r[2])
        q, st = ns(r[5]) - s, ns(r[6]) - s
        fi = ns(r[7]) - s if r[7] else None
        late.append(st); claim.append(q); start.append(st - q)
        if fi is not None:
            took.append(fi - st)
        f.write(f"{r[0]},{r[1]},{r[2]},{q/1e6:.3f},{st/1e6:.3f},{'' if fi is None else f'{fi/1e6:.3f}'}\n")

def pct(values, p):
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]

def line(name, values):
    ms = {k: pct(values, p) / 1e6 for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
    ms["min"] = min(values) / 1e6
    print(f"  {name:<36} p50 {ms['p50']:8.2f}  p90 {ms['p90']:8.2f}  p99 {ms['p99']:8.2f}  max {ms['max']:8.2f}  min {ms['min']:7.2f}  (ms, n={len(values)})")
    return ms

first, last = picked[0][2], picked[-1][2]
seconds = {r[2] for r in picked}
per_second = collections.Counter(r[2] for r in picked)
print(f"{len(picked)} runs scheduled from {first} to {last}: {len(seconds)} distinct seconds, "
      f"{sum(1 for c in per_second.values() if c != jobs)} of them with fewer than {jobs} runs")
lost = [r for r in rows if r[3] == "missed" or r[4] == "skipped"]
coalesced = sum(max(0, (r[8] or 0) - 1) for r in rows if r[3] == "missed")
print(f"runs missed (coalesced) or skipped among all recorded: {len(lost)} (times coalesced away: {coalesced})")
details = sqlite3.connect(db).execute(
    "SELECT id, job, scheduled_for, trigger, state, missed, detail FROM job_runs"
    " WHERE trigger = 'missed' OR state = 'skipped' ORDER BY id").fetchall()
for d in details:
    inside = first <= d[2] <= last
    print(f"  run {d[0]} {d[1]} for {d[2]} ({'inside' if inside else 'outside'} the measured runs): {d[3]}/{d[4]}, missed {d[5]}: {d[6]}")
result = {"mode": "lateness", "load": load, "jobs": jobs, "runs": len(picked),
          "first_scheduled_for": first, "last_scheduled_for": last, "by_trigger_state": {f"{k[0]}/{k[1]}": v for k, v in states.items()},
          "missed_or_skipped": len(lost), "times_coalesced_away": coalesced}
print("times after scheduled_for:")
result["started_minus_scheduled_ms"] = line("started_at - scheduled_for", late)
result["queued_minus_scheduled_ms"] = line("  queued_at - scheduled_for (claimed)", claim)
result["started_minus_queued_ms"] = line("  started_at - queued_at (spawned)", start)
if took:
    result["finished_minus_started_ms"] = line("finished_at - started_at (`true` ran)", took)
print(f"goal p99 < 100 ms: {'met' if result['started_minus_scheduled_ms']['p99'] < 100 else 'MISSED'}")
json.dump(result, open(out, "w"))
PY
    echo "per-run times: bench/results/jobs-$STAMP-lateness$tag.csv"
}

next_bench() {
    echo
    echo "== next: bench/jobs-next.sh --no-build"
    if [ -n "${OSTLER_BIN:-}" ]; then echo "(bench/jobs-next.sh runs target/release/ostler, not OSTLER_BIN)"; fi
    bench/jobs-next.sh --no-build
}

case "$MODE" in
    idle) idle "${1:-200}" "${2:-30}" ;;
    lateness)
        load=0 overlap=skip args=()
        while [ $# -gt 0 ]; do
            case "$1" in
                --load) load=1 ;;
                --overlap) overlap=$2; shift ;;
                *) args+=("$1") ;;
            esac
            shift
        done
        lateness "${args[0]:-1000}" "${args[1]:-10}" "$load" "$overlap"
        ;;
    next) next_bench ;;
    all)
        idle 0 10
        idle 200 30
        idle 200 130
        lateness 1000 10 0
        lateness 1000 10 1
        next_bench
        ;;
esac
python3 - "$JSON" "$PARTS" "$MODE $*" <<'PY'
import glob, json, os, platform, sys
parts = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(sys.argv[2], "*.json")))]
meta = {"command": f"bench/jobs.sh {sys.argv[3]}".strip(), "host": platform.node(), "cpus": os.cpu_count(),
        "kernel": platform.release()}
meta["serve_nice"] = int(os.environ.get("SERVE_NICE", "0"))
json.dump({"meta": meta, "results": parts}, open(sys.argv[1], "w"), indent=1)
PY
echo
echo "log: bench/results/jobs-$STAMP.log; numbers: bench/results/jobs-$STAMP.json"
