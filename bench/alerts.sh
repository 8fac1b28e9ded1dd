#!/usr/bin/env bash
# Benchmark of issue 12 item 6: the prober and alerter inside `ostler serve`.
#
#   bench/alerts.sh probes [N] [INTERVAL] [SECONDS]   the daemon's RSS and CPU running N
#                                                     HTTP probes (default 100) every
#                                                     INTERVAL (default 10s) against a
#                                                     loopback backend, sampled SECONDS
#                                                     (default 60) after a warm-up
#   bench/alerts.sh first-alert [RETRIES] [INTERVAL] [ROUNDS]
#                                                     time from the backend going down
#                                                     (its listener closed) to the first
#                                                     webhook notice received, ROUNDS times
#                                                     (default 3 retries, 2s, 5 rounds;
#                                                     group_wait 0s), against the goal
#                                                     RETRIES x INTERVAL + 1 s
#   bench/alerts.sh plugins [N] [INTERVAL] [SECONDS]  the same checks as Nagios makes them: a
#                                                     fork and exec per check, of
#                                                     monitoring-plugins' check_http and of
#                                                     `ostler probe NAME --nagios`; the CPU
#                                                     of the plugins alone (Nagios' own not
#                                                     counted), when check_http is installed
#   bench/alerts.sh all                               probes 100 10s 60, plugins 100 10s 60,
#                                                     first-alert 3 2s 5
#
# OSTLER_BIN (default a release build made here). Each mode works in its own temp dir,
# removed at exit with the daemon and the helper servers. Output goes to
# bench/results/alerts-DATE.log. Not a test: the numbers go to docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-all}
[ $# -gt 0 ] && shift
case "$MODE" in
    probes | plugins | first-alert | all) ;;
    *) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
if [ -z "${OSTLER_BIN:-}" ]; then cargo build --release -p ostler >/dev/null 2>&1 || cargo build --release -p ostler; fi
OSTLER=${OSTLER_BIN:-$ROOT/target/release/ostler}
STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p bench/results
LOG=$ROOT/bench/results/alerts-$STAMP.log
exec > >(tee -a "$LOG") 2>&1

PIDS=()
WORKS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for w in "${WORKS[@]}"; do rm -rf "$w"; done
}
trap cleanup EXIT

echo "+ bench/alerts.sh $MODE $*   ($(date -u +%FT%TZ), $(nproc) cores, $(uname -r))"
echo "  binary: $OSTLER ($("$OSTLER" --version 2>/dev/null || echo '?')); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (crates dirty)')"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# backend PORT: a threaded loopback HTTP server answering 200 "ok" to GET; its pid in BACKEND.
backend() {
    python3 - "$1" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
    BACKEND=$!
    PIDS+=("$BACKEND")
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$1/" >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "backend did not come up" >&2; exit 1
}

# receiver PORT FILE: records each POST as "<unix time> <body>" lines in FILE.
receiver() {
    python3 - "$1" "$2" <<'PY' &
import http.server, sys, time
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a") as f:
            f.write(f"{time.time():.3f} {body.decode()}\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
    PIDS+=($!)
}

serve_up() {
    (cd "$1" && exec "$OSTLER" serve 2>serve.log) &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    for _ in $(seq 1 200); do
        if (cd "$1" && "$OSTLER" serve --status >/dev/null 2>&1); then return 0; fi
        sleep 0.1
    done
    echo "FAILED: ostler serve did not come up; its log ends:" >&2
    tail -20 "$1/serve.log" >&2
    exit 1
}

serve_down() { kill -TERM "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; }

mib() { python3 -c "print(f'{$1/1024:.1f}')"; }

# count WORD FILE: lines of FILE with WORD (0 when FILE is not there yet).
count() { local n; n=$(grep -c "$1" "$2" 2>/dev/null) || true; echo "${n:-0}"; }

probes() {
    local n=$1 interval=$2 secs=$3 work port
    work=$(mktemp -d /tmp/ostler-bench-alerts.XXXXXX)
    WORKS+=("$work")
    port=$(free_port)
    backend "$port"
    {
        printf '[service]\nname = "bench"\n'
        for i in $(seq 1 "$n"); do
            printf '\n[[probes]]\nname = "http-%d"\nkind = "http"\nurl = "http://127.0.0.1:%s/item/%d"\ninterval = "%s"\ntimeout = "5s"\n' "$i" "$port" "$i" "$interval"
        done
    } >"$work/ostler.toml"
    echo
    echo "== probes: $n HTTP probes every $interval, sampled ${secs}s after a warm-up of one interval"
    serve_up "$work"
    sleep "${interval%s}"
    local pid=$SERVE_PID hz t0 t1 rss hwm threads cpu
    hz=$(getconf CLK_TCK)
    t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    sleep "$secs"
    t1=$(awk '{print $14+$15}' /proc/$pid/stat)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    threads=$(awk '/Threads/ {print $2}' /proc/$pid/status)
    cpu=$(python3 -c "print(f'{($t1-$t0)/$hz/$secs*100:.2f}')")
    echo "daemon RSS: $(mib "$rss") MiB (peak $(mib "$hwm") MiB, $threads threads); CPU: ${cpu} % of one core over ${secs}s ($((t1 - t0)) ticks of 1/${hz} s)"
    echo "checks recorded: $(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM probe_results').fetchone()[0])" "$work/.ostler/state.db")"
    (cd "$work" && "$OSTLER" probe http-1 --nagios | sed 's/^/  ostler probe http-1 --nagios: /') || true
    serve_down
    kill "$BACKEND" 2>/dev/null || true
}

plugins() {
    local n=$1 interval=$2 secs=$3 work port
    local check=/usr/lib/nagios/plugins/check_http
    work=$(mktemp -d /tmp/ostler-bench-alerts.XXXXXX)
    WORKS+=("$work")
    port=$(free_port)
    backend "$port"
    printf '[service]\nname = "bench"\n\n[[probes]]\nname = "http-1"\nkind = "http"\nurl = "http://127.0.0.1:%s/item/1"\n' "$port" >"$work/ostler.toml"
    echo
    echo "== plugins: $n checks every $interval as forked plugins, ${secs}s each"
    # One check every INTERVAL/N seconds, each a child process; the children's CPU
    # (user + system) from getrusage.
    local label cmd
    for label in check_http ostler-probe; do
        if [ "$label" = check_http ]; then
            [ -x "$check" ] || { echo "check_http: not installed (apt-get install monitoring-plugins-basic)"; continue; }
            cmd="$check -H 127.0.0.1 -p $port -u /item/1 -w 3 -c 10 -t 15"
        else
            cmd="$OSTLER --config $work/ostler.toml probe http-1 --nagios"
        fi
        python3 - "$n" "${interval%s}" "$secs" "$label" $cmd <<'PY'
import resource, subprocess, sys, time
n, interval, secs, label, cmd = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
gap = interval / n
start = time.monotonic()
runs = bad = 0
while time.monotonic() - start < secs:
    due = start + runs * gap
    if time.monotonic() < due:
        time.sleep(due - time.monotonic())
    if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        bad += 1
    runs += 1
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
print(f"{label}: {runs} checks in {secs}s ({bad} not OK); the plugins' CPU {cpu:.2f} s = {cpu / secs * 100:.2f} % of one core, {cpu / runs * 1000:.2f} ms per check")
PY
    done
    kill "$BACKEND" 2>/dev/null || true
}

first_alert() {
    local retries=$1 interval=$2 rounds=$3 work port hook goal
    work=$(mktemp -d /tmp/ostler-bench-alerts.XXXXXX)
    WORKS+=("$work")
    port=$(free_port)
    hook=$(free_port)
    receiver "$hook" "$work/notices"
    cat >"$work/ostler.toml" <<TOML
[service]
name = "bench"

[[probes]]
name = "backend"
kind = "http"
url = "http://127.0.0.1:$port/"
interval = "$interval"
timeout = "1s"
retries = $retries

[alerts]
group_wait = "0s"

[[alerts.channels]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:$hook/hook"
TOML
    goal=$(python3 -c "print($retries * ${interval%s} + 1)")
    echo
    echo "== first-alert: retries = $retries, interval = $interval, $rounds rounds; goal ${goal} s"
    backend "$port"
    serve_up "$work"
    local times=()
    for round in $(seq 1 "$rounds"); do
        # Up and seen OK for two intervals, then down.
        sleep "$(python3 -c "print(2 * ${interval%s} + 0.37 * $round)")"
        local before down got
        before=$(count '"firing"' "$work/notices")
        down=$(python3 -c 'import time; print(f"{time.time():.3f}")')
        kill "$BACKEND"; wait "$BACKEND" 2>/dev/null || true
        local waited=0
        while [ "$(count '"firing"' "$work/notices")" -le "$before" ]; do
            sleep 0.05; waited=$((waited + 1))
            [ "$waited" -gt 1200 ] && { echo "no notice within 60 s; the daemon's log ends:"; tail -20 "$work/serve.log"; exit 1; }
        done
        got=$(grep '"firing"' "$work/notices" | tail -1 | cut -d' ' -f1)
        times+=("$(python3 -c "print(f'{$got - $down:.2f}')")")
        echo "round $round: backend down at $down, first notice at $got: ${times[-1]} s"
        backend "$port"
        local resolved
        resolved=$(count '"resolved"' "$work/notices")
        while [ "$(count '"resolved"' "$work/notices")" -le "$resolved" ]; do sleep 0.05; done
    done
    echo "time to first alert (s): ${times[*]}; max $(printf '%s\n' "${times[@]}" | sort -n | tail -1); goal ${goal}"
    serve_down
}

case "$MODE" in
    probes) probes "${1:-100}" "${2:-10s}" "${3:-60}" ;;
    plugins) plugins "${1:-100}" "${2:-10s}" "${3:-60}" ;;
    first-alert) first_alert "${1:-3}" "${2:-2s}" "${3:-5}" ;;
    all)
        probes 100 10s 60
        plugins 100 10s 60
        first_alert 3 2s 5
        ;;
esac
