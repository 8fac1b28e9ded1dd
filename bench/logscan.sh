#!/usr/bin/env bash
# Benchmark: `ostler logs scan` on a 1,000,000-line combined access log with AMY's jump
# hidden in it (GET /api/v1/events/?tag=DC: 17806 bytes every half hour, then 261521
# from 2016-04-06 17:04 -04:00), among noise of ~7,000 other URLs, 304s and jittering
# sizes. Prints wall time and peak RSS for the plain log and a gzip'd copy, and, as the
# peer an operator would reach for, the same per-URL comparison written in awk (it
# splits on spaces, so it is faster to write but wrong on quoted spaces and ignores
# 304s only because we tell it to).
#   bench/logscan.sh [LINES]      (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
cargo build --release -p ostler >/dev/null 2>&1 || cargo build --release -p ostler
OSTLER=$PWD/target/release/ostler
WORK=$(mktemp -d /tmp/ostler-bench-logscan.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

python3 - "$LINES" >access.log <<'PY'
import random, sys, time
n = int(sys.argv[1])
rng = random.Random(20160406)
jump = 1459976640            # 2016-04-06 17:04:00 -04:00
step = 1.4                   # mean seconds between noise requests
t = float(jump - int(n * step * 0.6))
t -= t % 1800                # rebuilds at :04 and :34
rebuild = t + 240
out = sys.stdout
cache = {}
def stamp(sec):
    s = cache.get(sec)
    if s is None:
        # The server's zone is -06:00, as AMY's was.
        s = time.strftime("%d/%b/%Y:%H:%M:%S -0600", time.gmtime(sec - 6 * 3600))
        cache.clear()
        cache[sec] = s
    return s
api = [("/api/v1/export/badges.yaml", 69122), ("/api/v1/export/instructors.yaml", 50488),
       ("/api/v1/events/?tag=SWC", 231344), ("/api/v1/events/?tag=DC", None),
       ("/api/v1/events/?tag=TTT", 7879)]
ua = '"Mozilla/5.0 (X11; Linux x86_64; rv:45.0) Gecko/20100101 Firefox/45.0"'
written = 0
while written < n:
    if t >= rebuild:
        for i, (path, size) in enumerate(api):
            if size is None:
                size = 17806 if rebuild < jump else 261521
            out.write('192.0.2.10 - - [%s] "GET %s HTTP/1.1" 200 %d "-" "python-requests/2.9.1"\n'
                      % (stamp(int(rebuild) + 10 + i), path, size))
            written += 1
        rebuild += 1800
        continue
    t += rng.expovariate(1 / step)
    k = rng.random()
    client = "198.51.100.%d" % rng.randrange(250) if k < 0.5 else "2001:db8::%x" % rng.randrange(4000)
    r = rng.random()
    if r < 0.45:
        e = rng.randrange(2000)
        base = 5000 + e * 37
        req, status, size = "GET /workshops/event/%d/" % e, 200, base + rng.randrange(-base // 20, base // 20)
    elif r < 0.65:
        fresh = rng.random() < 0.3
        req, status, size = "GET /static/app.%d.css" % rng.randrange(20), 200 if fresh else 304, 48213 if fresh else 0
    elif r < 0.75:
        req, status, size = "GET /favicon.ico", 404, 209
    elif r < 0.8:
        req, status, size = "POST /account/login/", 302, 0
    else:
        req, status, size = "GET /search/?q=w%d" % rng.randrange(5000), 200, 3000 + rng.randrange(6000)
    out.write('%s - - [%s] "%s HTTP/1.1" %d %s "https://amy.example.org/" %s\n'
              % (client, stamp(int(t)), req, status, size if size else "-", ua))
    written += 1
PY
gzip -k access.log
echo "log: $(wc -l <access.log) lines, $(du -m access.log | cut -f1) MiB plain, $(du -m access.log.gz | cut -f1) MiB gzip'd"

measure() { # label, command...
    local label=$1
    shift
    /usr/bin/time -f '%e %M' -o time.txt "$@" >out.txt
    read -r secs kb <time.txt
    printf '%-28s %6.2f s  %7d KiB peak RSS\n' "$label" "$secs" "$kb"
}

measure "ostler logs scan (plain)" "$OSTLER" --tz America/New_York logs scan access.log
cp out.txt scan.txt
measure "ostler logs scan (gzip)" "$OSTLER" --tz America/New_York logs scan access.log.gz
measure "ostler logs scan --url" "$OSTLER" --tz America/New_York logs scan access.log --url tag=DC
# The peer: the same rule in awk (ratio >= 4 either way and >= 1024 bytes apart).
for awk in mawk gawk; do
    command -v $awk >/dev/null || continue
    measure "$awk per-URL compare" $awk '
        $9 == 304 || $9 == 206 { next }
        { key = $6 " " $7; size = ($10 == "-") ? 0 : $10 + 0; class = int($9 / 100)
          if (key in last) {
            p = last[key]; lo = p < size ? p : size; hi = p < size ? size : p
            if (class != cls[key]) print "status", key, when[key], $4
            else if (hi - lo >= 1024 && hi >= 4 * (lo < 1 ? 1 : lo)) print "size", key, when[key], $4, p, size
          }
          last[key] = size; cls[key] = class; when[key] = $4 }' access.log
done

echo
echo "ostler's report:"
sed -n '1,20p' scan.txt
grep -q '17806 -> 261521' scan.txt || { echo "the AMY jump was NOT found" >&2; exit 1; }
