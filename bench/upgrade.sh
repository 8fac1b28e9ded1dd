#!/usr/bin/env bash
# Benchmark of issue 13 item 8: requests under steady load on loopback while the
# service changes underneath, three ways, in one run:
#   1. `ostler upgrade --to green` through the daemon's proxy (code-only upgrade);
#   2. the runbook's way: `ostler restart blue` with the clients on blue's own port;
#   3. `ostler serve` itself restarted (SIGTERM, then a new daemon) with the clients on
#      the proxy;
#   4. the same with the proxy's socket handed to each daemon (systemd socket
#      activation: LISTEN_FDS, held by a small Python stand-in for systemd).
# The load: C clients (default 8) looping GET / over keep-alive connections (Python
# http.client, a new connection after any error). Each request's start, latency and
# outcome is kept; reported: requests served, failed (connection errors and 5xx), the
# latency p50/p99 over the whole run and within 1 s of the change.
#
#   bench/upgrade.sh [CLIENTS] [SECONDS_EACH]      default 8 clients, 6 s per way
#
# OSTLER_BIN (default a release build made here). Output to bench/results/upgrade-DATE.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLIENTS=${1:-8}
SECS=${2:-6}
if [ -z "${OSTLER_BIN:-}" ]; then cargo build --release -p ostler >/dev/null 2>&1 || cargo build --release -p ostler; fi
OSTLER=$(realpath "${OSTLER_BIN:-$ROOT/target/release/ostler}")
STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p bench/results
exec > >(tee -a "$ROOT/bench/results/upgrade-$STAMP.log") 2>&1
WORK=$(mktemp -d /tmp/ostler-bench-upgrade.XXXXXX)
SERVE_PID=
cleanup() {
    [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
    (cd "$WORK" && "$OSTLER" stop blue >/dev/null 2>&1; "$OSTLER" stop green >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "+ bench/upgrade.sh $CLIENTS $SECS   ($(date -u +%FT%TZ), $(nproc) cores, $(uname -r))"
echo "  binary: $OSTLER; commit $(git rev-parse --short HEAD)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PROXY=$(free_port); BLUE=$(free_port); GREEN=$(free_port)
mkdir -p "$WORK/app"
cat >"$WORK/app/named.py" <<'PY'
import http.server, sys
name = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        # One write for head and body: two would meet the client's delayed ACK (40 ms).
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name))
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
cat >"$WORK/ostler.toml" <<TOML
[service]
name = "bench"

[roles]
production = "blue"

[instances.blue]
dir = "app"
start = "python3 named.py {port} blue"
port = $BLUE
health = "http://127.0.0.1:{port}/"

[instances.green]
dir = "app"
start = "python3 named.py {port} green"
port = $GREEN
health = "http://127.0.0.1:{port}/"

[proxy]
listen = "127.0.0.1:$PROXY"
TOML

serve_up() {
    (cd "$WORK" && exec "$OSTLER" serve 2>>serve.log) &
    SERVE_PID=$!
    for _ in $(seq 1 200); do
        (cd "$WORK" && "$OSTLER" serve --status >/dev/null 2>&1) && return 0
        sleep 0.05
    done
    echo "ostler serve did not come up"; tail "$WORK/serve.log"; exit 1
}

# load PORT SECONDS CHANGE_AT_FILE: runs the clients; the change's time is read from
# the file the caller writes when it makes the change.
load() {
    python3 - "$1" "$2" "$CLIENTS" "$WORK/changed_at" <<'PY'
import http.client, statistics, sys, threading, time
port, secs, clients, mark = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
results = []
lock = threading.Lock()
def client():
    conn = None
    end = time.time() + secs
    while time.time() < end:
        t0 = time.time()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            r = conn.getresponse(); r.read()
            ok = r.status < 500
            what = str(r.status)
        except Exception as e:
            ok, what = False, type(e).__name__
            conn = None
        with lock:
            results.append((t0, time.time() - t0, ok, what))
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
try:
    at = float(open(mark).read())
except Exception:
    at = None
lat = sorted(r[1] * 1000 for r in results)
q = lambda xs, p: xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")
near = sorted(r[1] * 1000 for r in results if at is not None and abs(r[0] - at) <= 1.0)
failed = [r for r in results if not r[2]]
kinds = {}
for r in failed: kinds[r[3]] = kinds.get(r[3], 0) + 1
print(f"  {len(results)} requests, {len(failed)} failed {kinds if kinds else ''}; latency p50 {q(lat, .5):.1f} ms, p99 {q(lat, .99):.1f} ms, max {lat[-1]:.1f} ms; within 1 s of the change: {len(near)} requests, p99 {q(near, .99):.1f} ms, max {near[-1] if near else float('nan'):.1f} ms")
PY
}

mark() { python3 -c 'import time; print(time.time())' >"$WORK/changed_at"; }

serve_up
(cd "$WORK" && "$OSTLER" start blue >/dev/null)
sleep 1

echo
echo "== 1. ostler upgrade --to green, $CLIENTS clients on the proxy for ${SECS}s"
rm -f "$WORK/changed_at"
load "$PROXY" "$SECS" & LOAD=$!
sleep 2; mark
(cd "$WORK" && "$OSTLER" upgrade --to green 2>&1 | sed 's/^/  | /')
wait "$LOAD"
(cd "$WORK" && "$OSTLER" rollback >/dev/null 2>&1)

echo
echo "== 2. the runbook's way: ostler restart blue, $CLIENTS clients on blue's port for ${SECS}s"
rm -f "$WORK/changed_at"
load "$BLUE" "$SECS" & LOAD=$!
sleep 2; mark
(cd "$WORK" && "$OSTLER" restart blue >/dev/null 2>&1)
wait "$LOAD"

echo
echo "== 3. ostler serve restarted (SIGTERM, then a new one), $CLIENTS clients on the proxy for ${SECS}s"
rm -f "$WORK/changed_at"
load "$PROXY" "$SECS" & LOAD=$!
sleep 2; mark
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
serve_up
wait "$LOAD"

echo
echo "== 4. ostler serve restarted on a handed socket (socket activation), $CLIENTS clients on the proxy for ${SECS}s"
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=
rm -f "$WORK/changed_at"
python3 - "$OSTLER" "$WORK" "$PROXY" "$SECS" <<'PY' &
import os, socket, subprocess, sys, time
ostler, work, port, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(1024)
def daemon():
    return subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve 2>>serve.log', ostler],
                            cwd=work, pass_fds=(3,), preexec_fn=lambda: os.dup2(s.fileno(), 3))
d = daemon()
time.sleep(2)
open(os.path.join(work, "changed_at"), "w").write(str(time.time()))
d.terminate(); d.wait()
d = daemon()
time.sleep(secs)
d.terminate(); d.wait()
PY
HOLDER=$!
sleep 0.5
load "$PROXY" "$SECS"
wait "$HOLDER"
