#!/usr/bin/env bash
# Benchmark of issue 5: `ostler find` against the naive way of finding when rows vanished.
#
# A SQLite database shaped like the sample service's (entries with text, tags, entry_tags
# joining them with ON DELETE CASCADE foreign keys), ~512 MB, gets N "hourly" backups
# (default 168, taken back to back) with a few hundred scattered rows inserted, updated
# and deleted between each; at one hour (default 100) a tag is deleted and with it, by
# cascade, its entry_tags rows (the AMY case). Then:
#   - `ostler find INSTANCE --table tags --where "name = 'lost-tag'"` and the entry_tags
#     variant: time, peak RSS, how many backups it read whole / by their deltas / skipped
#     as unchanged, and its verdict, which must name the last backup before the loss and
#     the first after it (the script fails loudly otherwise);
#   - the naive way: for K backups spread over the range, `ostler export ID DIR` (a
#     restore into a scratch SQLite file) plus a `sqlite3` query of the predicate; the
#     mean, multiplied by the number of backups (and by ceil(log2 N) for a bisection).
#
#   bench/find.sh [--db-mb N] [--hours N] [--loss-at H] [--naive K] [--change-rows N]
#                 [--small] [--keep] [--warm] [--no-space-check]
#
# Prints a summary table; writes results.json in the work dir (copied to
# bench/results/find-DATE.json) and logs everything to bench/results/find-DATE.log.
# The binary is $OSTLER_BIN, default target/release/ostler (not built here).
# See bench/README.md.
set -eEuo pipefail

usage() {
    cat <<'EOF'
usage: bench/find.sh [options]
  --db-mb N          size of the SQLite database to generate, in MiB (default 512)
  --hours N          hourly backups to take, back to back (default 168)
  --loss-at H        the hour whose backup is the first without the lost tag: the tag and its
                     entry_tags rows are deleted just before it (default 100 for 168 hours,
                     else the same fraction of --hours); 2 <= H <= hours
  --naive K          backups restored the naive way (ostler export + sqlite3), spread over the
                     range, first and last included (default 3)
  --change-rows N    rows changed between two backups (default 300: ~half inserted entries,
                     ~45 % updated entries, a few deleted, plus their entry_tags links)
  --small            a quick check: --db-mb 30 --hours 12 --loss-at 8 (explicit options win)
  --keep             keep the work dir (database, repository, exports)
  --warm             do not drop the page cache before each timed find / export (the
                     default drops it when it can: root and /proc/sys/vm/drop_caches)
  --no-space-check   go on even when the free disk space looks too small
Environment: OSTLER_BIN (default target/release/ostler), TMPDIR (where the work dir goes;
ostler's own temp files, e.g. each backup's snapshot copy of the database, too).
EOF
}

need_value() { [ "$2" -ge 2 ] || { echo "find.sh: $1 needs a value" >&2; exit 2; }; }
DB_MB=
HOURS=
LOSS_AT=
NAIVE_K=3
CHANGE_ROWS=300
SMALL=0
KEEP=0
WARM=0
SPACE_CHECK=1
ARGV=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --db-mb) need_value "$1" $#; DB_MB=$2; shift 2 ;;
        --db-mb=*) DB_MB=${1#--db-mb=}; shift ;;
        --hours) need_value "$1" $#; HOURS=$2; shift 2 ;;
        --hours=*) HOURS=${1#--hours=}; shift ;;
        --loss-at) need_value "$1" $#; LOSS_AT=$2; shift 2 ;;
        --loss-at=*) LOSS_AT=${1#--loss-at=}; shift ;;
        --naive) need_value "$1" $#; NAIVE_K=$2; shift 2 ;;
        --naive=*) NAIVE_K=${1#--naive=}; shift ;;
        --change-rows) need_value "$1" $#; CHANGE_ROWS=$2; shift 2 ;;
        --change-rows=*) CHANGE_ROWS=${1#--change-rows=}; shift ;;
        --small) SMALL=1; shift ;;
        --keep) KEEP=1; shift ;;
        --warm) WARM=1; shift ;;
        --no-space-check) SPACE_CHECK=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "find.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ "$SMALL" = 1 ]; then
    DB_MB=${DB_MB:-30}
    HOURS=${HOURS:-12}
    [ -n "$LOSS_AT" ] || [ "$HOURS" != 12 ] || LOSS_AT=8
fi
DB_MB=${DB_MB:-512}
HOURS=${HOURS:-168}
whole() { [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] || { echo "find.sh: $1 must be a whole number >= $3, not '$2'" >&2; exit 2; }; }
whole --db-mb "$DB_MB" 1
whole --hours "$HOURS" 2
# Default: the same place in the range as hour 100 of 168.
if [ -z "$LOSS_AT" ]; then
    LOSS_AT=$(( (HOURS * 100 + 84) / 168 ))
    [ "$LOSS_AT" -ge 2 ] || LOSS_AT=2
fi
whole --loss-at "$LOSS_AT" 2
[ "$LOSS_AT" -le "$HOURS" ] || { echo "find.sh: --loss-at ($LOSS_AT) must be <= --hours ($HOURS)" >&2; exit 2; }
whole --naive "$NAIVE_K" 1
[ "$NAIVE_K" -le "$HOURS" ] || { echo "find.sh: --naive ($NAIVE_K) must be <= --hours ($HOURS)" >&2; exit 2; }
whole --change-rows "$CHANGE_ROWS" 10

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS_DIR=$ROOT/bench/results
mkdir -p "$RESULTS_DIR"
LOG=$RESULTS_DIR/find-$STAMP.log
COMMAND_LINE=bench/find.sh
for a in "${ARGV[@]}"; do COMMAND_LINE+=" $(printf '%q' "$a")"; done
[ -n "${OSTLER_BIN:-}" ] && COMMAND_LINE="OSTLER_BIN=$(printf '%q' "$OSTLER_BIN") $COMMAND_LINE"

# The terminal keeps fd 3; everything else goes to the log. `say` writes to both.
exec 3>&1
exec >>"$LOG" 2>&1
say() { printf '%s\n' "$*" >&3; printf '%s\n' "$*"; }
log() { printf '%s\n' "$*"; }

WORK=

die() {
    trap - ERR
    say "FAILED: $*"
    say "(last lines of the log $LOG:)"
    tail -n 25 "$LOG" | sed 's/^/  | /' >&3 || true
    exit 1
}
on_err() {
    if [ "$BASH_SUBSHELL" -gt 0 ]; then
        log "error in a subshell, line $1: \`$2\` exited with status $3"
        exit "$3"
    fi
    die "line $1: \`$2\` exited with status $3"
}
trap 'on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then
            say "work dir kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    [ $rc -ne 0 ] && say "find.sh exited with status $rc; full log: $LOG"
    exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------------------------
# helpers

# Runs the shell text $2 (pipefail, errexit) with its output in the log; sets T to the
# wall-clock seconds it took. Dies naming step $1 when it fails.
T=0
measure() {
    local name=$1 cmd=$2 t0 t1 rc
    log "+ [$name] $cmd"
    trap - ERR
    set +e
    t0=$EPOCHREALTIME
    (
        set -euo pipefail
        eval "$cmd"
    )
    rc=$?
    t1=$EPOCHREALTIME
    set -e
    trap 'on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    [ $rc -eq 0 ] || die "$name failed (exit status $rc): $cmd"
    log "  [$name] took ${T}s"
}

# rss FILE: the peak RSS in KiB that `/usr/bin/time -f %M -o FILE` wrote.
rss() { tail -n 1 "$1" | tr -dc '0-9'; }

# rec KEY VALUE: one result, KEY dotted (section.name); see report.py.
rec() { printf '%s\t%s\n' "$1" "$2" >>"$WORK/results.tsv"; }

bytes_of() { du -sb "$1" | cut -f1; }
# The files' bytes only: `du -sb` also counts each directory (4 KiB apiece; ostler's
# repository starts with 257 of them), which matters with --small.
file_bytes_of() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }'; }

human() { numfmt --to=iec-i --suffix=B --format=%.1f "$1"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CACHES=warm
drop_caches() {
    if [ "$WARM" = 1 ]; then
        CACHES="warm (--warm)"
    else
        sync
        if [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
            CACHES=dropped
        else
            CACHES=warm
        fi
    fi
    log "  page cache: $CACHES"
}

avail_bytes() { df -B1 --output=avail "$1" | tail -n 1 | tr -dc '0-9'; }

space_check() { # space_check NEEDED_BYTES WHAT
    local avail
    avail=$(avail_bytes "$WORK")
    log "space check: $2 needs about $(human "$1"), $(human "$avail") free"
    if [ "$avail" -lt "$1" ]; then
        if [ "$SPACE_CHECK" = 1 ]; then
            die "not enough disk space: $2 needs about $(human "$1"), only $(human "$avail") free in $WORK (free some, a smaller --db-mb, set TMPDIR elsewhere, or pass --no-space-check)"
        fi
        say "warning: $2 needs about $(human "$1"), only $(human "$avail") free; going on (--no-space-check)"
    fi
}

if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
    as_root() { sudo "$@"; }
else
    as_root() { die "need root (or sudo) to run: $*"; }
fi

# ---------------------------------------------------------------------------------
# tools

say "command: $COMMAND_LINE"
say "log: $LOG"
log "started $(date -Is) in $ROOT on $(hostname)"

missing=()
need_pkg() { # need_pkg PACKAGE TEST...
    local pkg=$1
    shift
    "$@" >/dev/null 2>&1 || missing+=("$pkg")
}
have() { command -v "$1" >/dev/null 2>&1; }
need_pkg time test -x /usr/bin/time
need_pkg sqlite3 have sqlite3
need_pkg python3 have python3
need_pkg coreutils have numfmt
if [ ${#missing[@]} -gt 0 ]; then
    say "installing missing packages: ${missing[*]}"
    as_root apt-get update || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
fi
for tool in sqlite3 python3 numfmt du awk df; do
    have "$tool" || die "$tool is not installed (and installing it did not help)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package: time)"

OSTLER=${OSTLER_BIN:-$ROOT/target/release/ostler}
[ -x "$OSTLER" ] || die "$OSTLER is missing: build it (cargo build --release -p ostler) or point OSTLER_BIN at a binary"
"$OSTLER" find --help >/dev/null 2>&1 || die "$OSTLER has no \`find\` command (too old a build?)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ostler-bench-find.XXXXXX")
chmod 755 "$WORK"
: >"$WORK/results.tsv"
say "work dir: $WORK$([ "$KEEP" = 1 ] && echo " (kept)" || echo " (removed at exit; --keep keeps it)")"

# report.py: results.tsv -> results.json (nested, derived numbers added) and the tables.
cat >"$WORK/report.py" <<'PY'
import json, math, sys

def conv(v):
    if v in ("true", "false"):
        return v == "true"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v

def load(path):
    data = {}
    for line in open(path):
        line = line.rstrip("\n")
        if not line:
            continue
        key, value = line.split("\t", 1)
        parts = key.split(".")
        d = data
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = conv(value)
    for k in ("hours",):
        if isinstance(data.get(k), dict):
            data[k] = [data[k][i] for i in sorted(data[k], key=int)]
    if isinstance(data.get("naive", {}).get("samples"), dict):
        s = data["naive"]["samples"]
        data["naive"]["samples"] = [s[i] for i in sorted(s, key=int)]
    derive(data)
    return data

def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)

def mean(xs):
    xs = [x for x in xs if num(x)]
    return sum(xs) / len(xs) if xs else None

def ratio(a, b):
    return a / b if num(a) and num(b) and b else None

def derive(d):
    hours = d.get("hours", [])
    n = len(hours)
    later = hours[1:]
    first = hours[0] if hours else {}
    last = hours[-1] if hours else {}
    d["backups"] = {
        "count": n,
        "first_backup_s": first.get("backup_s"),
        "first_repo_bytes": first.get("repo_bytes"),
        "mean_later_backup_s": mean([h.get("backup_s") for h in later]),
        "max_later_backup_s": max([h.get("backup_s") for h in later if num(h.get("backup_s"))], default=None),
        "total_backup_s": sum(h.get("backup_s", 0) for h in hours),
        "mean_change_s": mean([h.get("change_s") for h in later]),
        "mean_later_new_bytes": mean([h.get("new_bytes") for h in later]),
        "final_repo_bytes": last.get("repo_bytes"),
        "mean_repo_growth_per_hour_bytes": ratio((last.get("repo_bytes") or 0) - (first.get("repo_bytes") or 0), n - 1)
                                           if n > 1 and num(last.get("repo_bytes")) else None,
        "max_later_backup_peak_rss_kib": max([h.get("rss_kib") for h in later if num(h.get("rss_kib"))], default=None),
        "rebased_hours": [h.get("hour") for h in later if "rebased" in str(h.get("tables", ""))],
    }
    naive = d.get("naive", {})
    samples = naive.get("samples", [])
    me = mean([s.get("export_s") for s in samples])
    mqt = mean([s.get("query_tags_s") for s in samples])
    mql = mean([s.get("query_entry_tags_s") for s in samples])
    per_tags = mean([s.get("export_s", 0) + s.get("query_tags_s", 0) for s in samples])
    per_links = mean([s.get("export_s", 0) + s.get("query_entry_tags_s", 0) for s in samples])
    bisect = math.ceil(math.log2(n)) if n > 1 else 1
    naive["mean_export_s"] = me
    naive["mean_query_tags_s"] = mqt
    naive["mean_query_entry_tags_s"] = mql
    naive["bisect_restores"] = bisect
    find = d.get("find", {})
    comp = {}
    for key, per in (("tags", per_tags), ("entry_tags", per_links)):
        f = find.get(key, {}).get("seconds")
        total = per * n if num(per) else None
        bis = per * bisect if num(per) else None
        comp[key] = {
            "find_s": f,
            "naive_per_backup_s": per,
            "naive_all_backups_s": total,
            "naive_bisect_s": bis,
            "naive_all_over_find": ratio(total, f),
            "naive_bisect_over_find": ratio(bis, f),
        }
    d["comparison"] = comp

def h(n):
    if not num(n):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024

def s(x):
    if not num(x):
        return "-"
    if x >= 3600:
        return f"{x:.0f} s ({x / 3600:.1f} h)"
    if x >= 120:
        return f"{x:.0f} s ({x / 60:.1f} min)"
    return f"{x:.2f} s"

def kib(x):
    return h(x * 1024) if num(x) else "-"

def r(x):
    return f"{x:.1f}x" if num(x) else "-"

def table(title, header, rows, left_last=False):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    out = [title]
    last = len(widths) - 1
    fmt = lambda cells: ("  " + "  ".join(
        str(c).ljust(w) if i == 0 or (left_last and i == last) else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths)))).rstrip()
    out.append(fmt(header))
    out.extend(fmt(row) for row in rows)
    return "\n".join(out)

def report(d):
    ds, b, meta = d.get("dataset", {}), d["backups"], d.get("meta", {})
    n = b["count"]
    print(f"dataset: {ds.get('description', '')}")
    print(f"   {h(ds.get('db_bytes'))} SQLite file (--db-mb {ds.get('db_mb_target', '-')}): "
          f"{ds.get('entries', '-')} entries, {ds.get('tags', '-')} tags, {ds.get('entry_tags', '-')} entry_tags; "
          f"generated in {s(ds.get('generate_s'))}")
    print(f"   lost: tag '{ds.get('lost_tag', '')}' (id {ds.get('lost_tag_id', '-')}) and its "
          f"{ds.get('lost_links', '-')} entry_tags rows, deleted before the backup of hour "
          f"{meta.get('options', {}).get('loss_at', '-')} of {n}; ~{ds.get('rows_changed_per_hour', '-')} rows changed per hour")
    print()
    rows = [
        ["first backup (whole database)", s(b.get("first_backup_s")), h(b.get("first_repo_bytes")), "-"],
        [f"{n - 1} later backups, mean", s(b.get("mean_later_backup_s")), h(b.get("mean_later_new_bytes")),
         kib(b.get("max_later_backup_peak_rss_kib"))],
        ["later backups, slowest", s(b.get("max_later_backup_s")), "-", "-"],
        [f"all {n} backups", s(b.get("total_backup_s")), h(b.get("final_repo_bytes")), "-"],
    ]
    print(table(f"backups (back to back; repository grew {h(b.get('mean_repo_growth_per_hour_bytes'))}/hour after the first"
                + (f"; tables rebased at hours {', '.join(str(x) for x in b['rebased_hours'])}" if b.get("rebased_hours") else "")
                + ")",
                ["", "time", "stored (first: repo du -sb; later: new bytes; all: repo du -sb)", "peak RSS max"], rows))
    print()
    find = d.get("find", {})
    rows = []
    for key in ("tags", "entry_tags"):
        f = find.get(key)
        if not f:
            continue
        rows.append([f"find --table {key} --where \"{f.get('predicate', '')}\"", s(f.get("seconds")), kib(f.get("rss_kib")),
                     f"{f.get('read_full', '-')}/{f.get('read_delta', '-')}/{f.get('skipped_unchanged', '-')}",
                     f"{f.get('rows_before', '-')} -> {f.get('rows_after', '-')}",
                     f"{f.get('before_backup', '-')} -> {f.get('after_backup', '-')}",
                     "RIGHT" if f.get("verdict_ok") else "WRONG"])
    print(table(f"ostler find over {n} backups (page cache {find.get('page_cache', '?')} before each)",
                ["", "time", "peak RSS", "full/delta/skipped", "rows", "vanished between", "verdict"], rows))
    print()
    naive = d.get("naive", {})
    rows = [[f"hour {x.get('hour')} ({x.get('backup')})", s(x.get("export_s")), s(x.get("query_tags_s")),
             s(x.get("query_entry_tags_s")), f"{x.get('tags_rows', '-')} / {x.get('entry_tags_rows', '-')}",
             "same as find" if x.get("matches_find") else "DIFFERS FROM FIND"] for x in naive.get("samples", [])]
    rows.append(["mean", s(naive.get("mean_export_s")), s(naive.get("mean_query_tags_s")),
                 s(naive.get("mean_query_entry_tags_s")), "", ""])
    print(table(f"naive: ostler export ID DIR + sqlite3 query, {len(naive.get('samples', []))} of the {n} backups "
                f"(page cache {naive.get('page_cache', '?')} before each export)",
                ["", "export", "query tags", "query entry_tags", "rows tags / links", ""], rows))
    print()
    comp = d.get("comparison", {})
    rows = []
    for key in ("tags", "entry_tags"):
        c = comp.get(key, {})
        rows.append([key, s(c.get("find_s")), s(c.get("naive_per_backup_s")), s(c.get("naive_all_backups_s")),
                     r(c.get("naive_all_over_find")), s(c.get("naive_bisect_s")), r(c.get("naive_bisect_over_find"))])
    print(table(f"find vs naive (naive = mean per backup x {n} backups; bisect = x ceil(log2 {n}) = {naive.get('bisect_restores')})",
                ["table", "ostler find", "naive/backup", f"naive x {n}", "naive/find", "bisect", "bisect/find"], rows))
    print()

def report_hours(d):
    rows = []
    loss = d.get("meta", {}).get("options", {}).get("loss_at")
    for x in d.get("hours", []):
        rows.append([str(x.get("hour", "")), str(x.get("backup", "")), s(x.get("change_s")),
                     f"{x.get('inserted', '-')}/{x.get('updated', '-')}/{x.get('deleted', '-')}",
                     s(x.get("backup_s")), h(x.get("new_bytes")), h(x.get("repo_bytes")), kib(x.get("rss_kib")),
                     str(x.get("tables", "")) + ("   <- lost tag deleted before this backup" if x.get("hour") == loss else "")])
    print(table("per hour (ins/upd/del: entries; tables: changed ones as name:[added, changed, removed]:chain)",
                ["hour", "backup", "change", "ins/upd/del", "backup", "new bytes", "repo du -sb", "peak RSS", "tables"], rows,
                left_last=True))
    print()

def main():
    tsv, out, what = sys.argv[1], sys.argv[2], sys.argv[3]
    data = load(tsv)
    with open(out, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    if what == "summary":
        report(data)
    elif what == "hours":
        report_hours(data)

main()
PY

# manifest FILE id|new_bytes|logical_bytes|tables: from `ostler --json backup`'s
# manifest; `tables` gives each changed table's [added, changed, removed] and chain
# length ("rebased" when a changed table was stored whole again).
cat >"$WORK/manifest.py" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
if sys.argv[2] == "tables":
    out = []
    for t in (m.get("database") or {}).get("tables", []):
        if t.get("change") is None:
            out.append("%s:whole" % t["spec"]["name"])
        elif t.get("change") != [0, 0, 0]:
            n = len(t.get("deltas", []))
            out.append("%s:%s:%s" % (t["spec"]["name"], t.get("change"), "rebased" if n == 0 else "%d-deltas" % n))
    print(" ".join(out) or "-")
else:
    print(m[sys.argv[2]])
PY
manifest() { python3 "$WORK/manifest.py" "$@"; }

# findjson FILE FIELD...: reads `ostler --json find` output.
cat >"$WORK/findjson.py" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
what = sys.argv[2]
if what == "transitions":
    for t in v["transitions"]:
        print(t["kind"], t["before_backup"], t["after_backup"], t["before_rows"], t["after_rows"])
elif what == "points":
    print(len(v["points"]))
elif what == "rows_at":
    for p in v["points"]:
        if p["backup"] == sys.argv[3]:
            print("-" if p["rows"] is None else p["rows"])
elif what == "hows":
    from collections import Counter
    print(" ".join("%s=%d" % kv for kv in sorted(Counter(p["how"] for p in v["points"]).items())))
else:
    print(v[what])
PY
findjson() { python3 "$WORK/findjson.py" "$@"; }

report() { python3 "$WORK/report.py" "$WORK/results.tsv" "$WORK/results.json" "$@"; }

# ---------------------------------------------------------------------------------
# metadata

rec meta.command "$COMMAND_LINE"
rec meta.started "$(date -Is)"
rec meta.host "$(hostname)"
rec meta.cpus "$(nproc)"
rec meta.mem_bytes "$(awk '/MemTotal/ { print $2 * 1024 }' /proc/meminfo)"
rec meta.kernel "$(uname -r)"
rec meta.loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
rec meta.git_commit "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
rec meta.git_dirty "$( [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] && echo true || echo false)"
rec meta.options.db_mb "$DB_MB"
rec meta.options.hours "$HOURS"
rec meta.options.loss_at "$LOSS_AT"
rec meta.options.naive "$NAIVE_K"
rec meta.options.change_rows "$CHANGE_ROWS"
rec meta.options.small "$([ "$SMALL" = 1 ] && echo true || echo false)"
rec meta.options.warm "$([ "$WARM" = 1 ] && echo true || echo false)"
rec meta.ostler_bin "$OSTLER"
rec meta.versions.ostler "$("$OSTLER" --version)"
rec meta.versions.sqlite3 "$(sqlite3 --version | cut -d' ' -f1)"
rec meta.work_dir "$WORK"
rec meta.filesystem "$(df --output=source,fstype "$WORK" | tail -n 1 | tr -s ' ')"
log "versions: $("$OSTLER" --version) ($OSTLER); sqlite3 $(sqlite3 --version | cut -d' ' -f1); load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------
# the service dir and the database

SVC=$WORK/svc
INST=gb-1
DB=$SVC/instances/$INST/data.db
mkdir -p "$SVC/instances/$INST"
PORT=$(free_port)
{
    printf '[service]\nname = "bench-find"\nstate_dir = ".ostler"\n\n[repository]\npath = "repo"\n'
    printf '\n[instances.%s]\ndir = "instances/%s"\nstart = "sleep 100000"\nport = %s\n' "$INST" "$INST" "$PORT"
    printf '\n[instances.%s.database]\nkind = "sqlite"\npath = "data.db"\n' "$INST"
} >"$SVC/ostler.toml"
export OSTLER_CONFIG=$SVC/ostler.toml
log "ostler.toml:"
cat "$SVC/ostler.toml"
"$OSTLER" config check || die "ostler config check failed for $SVC/ostler.toml"

# Words for the entries' messages: 4096 made-up words and 262144 random four-word
# phrases of them, in words.db in the work dir, ATTACHed by every sqlite3 session that
# writes messages (never part of the backed-up database). A message is a random-length
# prefix of 14 random phrases: it compresses like real text (zstd -3: ~2.8:1), where
# substrings of one fixed text would compress 7:1 and random hex 2:1.
python3 - >"$WORK/words.sql" <<'PY'
import random
random.seed(5)
cons = "b c d f g h j k l m n p r s t v w y z br ch cl dr fl gr pl pr sh st th tr".split()
vows = "a e i o u ai ea ee oo ou".split()
words = set()
while len(words) < 4096:
    w = "".join(random.choice(cons) + random.choice(vows) for _ in range(random.choice([1, 1, 2, 2, 2, 3])))
    if random.random() < 0.4:
        w += random.choice("n r s t l d".split())
    words.add(w)
print("CREATE TABLE words (i INTEGER PRIMARY KEY, w TEXT NOT NULL);")
print("INSERT INTO words VALUES " + ",".join("(%d, '%s')" % (i, w) for i, w in enumerate(sorted(words))) + ";")
PY
measure "words and phrases" "sqlite3 '$WORK/words.db' <<'SQL'
.read $WORK/words.sql
CREATE TABLE phrases (i INTEGER PRIMARY KEY, p TEXT NOT NULL);
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 262143)
INSERT INTO phrases SELECT x,
  (SELECT w FROM words WHERE i = (abs(random()) + x * 0) % 4096) || ' ' ||
  (SELECT w FROM words WHERE i = (abs(random()) + x * 0) % 4096) || ' ' ||
  (SELECT w FROM words WHERE i = (abs(random()) + x * 0) % 4096) || ' ' ||
  (SELECT w FROM words WHERE i = (abs(random()) + x * 0) % 4096) FROM c;
SQL"
# msg COLUMN: a message expression; the subqueries name COLUMN (times 0) so that SQLite
# evaluates them, and their random(), for every row rather than once.
msg() {
    local p="(SELECT p FROM w.phrases WHERE i = (abs(random()) + $1 * 0) % 262144)" m k
    m="substr($p"
    for k in $(seq 2 14); do m+=" || ' ' || $p"; done
    printf '%s' "$m, 1, 80 + abs(random()) % 440)"
}

# Sizes: ~425 bytes of database file per entry (a ~280-character message, its ~2
# entry_tags rows and their two indexes), measured with sqlite3 3.40.
BYTES_PER_ENTRY=425
ENTRIES=$(( DB_MB * 1048576 / BYTES_PER_ENTRY ))
N_TAGS=500
LOST_ID=251
LOST_TAG=lost-tag
LOST_LINKS=25
# A random tag id in 1..N_TAGS other than LOST_ID (one random() only: sqlite may
# evaluate a repeated subquery column twice).
TAG_PICK="(($LOST_ID + abs(random()) % ($N_TAGS - 1)) % $N_TAGS) + 1"

rec dataset.description "SQLite like the sample service: entries(id, author, message ~280 chars of made-up words, created_at, email), tags(id, name UNIQUE), entry_tags(entry_id, tag_id) with ON DELETE CASCADE foreign keys and an index on tag_id; WAL mode"
rec dataset.db_mb_target "$DB_MB"
rec dataset.lost_tag "$LOST_TAG"
rec dataset.lost_tag_id "$LOST_ID"
rec dataset.lost_links "$LOST_LINKS"
space_check $(( DB_MB * 1048576 * 5 )) "the database (x1), the backups' snapshot copy (x1), the repository (~x2 with a rebase) and one export (x1)"

say "generating ~$DB_MB MiB: $ENTRIES entries, $N_TAGS tags, ~$((ENTRIES * 2)) entry_tags"
measure "generate" "sqlite3 '$DB' <<'SQL'
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, author TEXT NOT NULL, message TEXT NOT NULL,
                      created_at TEXT NOT NULL, email TEXT);
CREATE TABLE tags (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
CREATE TABLE entry_tags (entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
                         tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
                         PRIMARY KEY (entry_id, tag_id));
ATTACH '$WORK/words.db' AS w;
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $N_TAGS)
INSERT INTO tags (id, name) SELECT x, CASE WHEN x = $LOST_ID THEN '$LOST_TAG' ELSE printf('tag-%04d', x) END FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ENTRIES)
INSERT INTO entries (id, author, message, created_at, email)
SELECT x, 'author-' || (abs(random()) % 20000), $(msg x),
       strftime('%Y-%m-%dT%H:%M:%SZ', 1700000000 + x * 20, 'unixepoch'),
       CASE WHEN x % 3 = 0 THEN 'user' || (x % 9999) || '@example.org' END
FROM c;
INSERT OR IGNORE INTO entry_tags (entry_id, tag_id)
SELECT e.id, $TAG_PICK FROM entries e
JOIN (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3) n ON n.k <= 1 + e.id % 3;
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < $LOST_LINKS - 1)
INSERT INTO entry_tags (entry_id, tag_id) SELECT 1 + x * ($ENTRIES / $LOST_LINKS) + $ENTRIES / ($LOST_LINKS * 2), $LOST_ID FROM c;
COMMIT;
CREATE INDEX entry_tags_tag_id ON entry_tags (tag_id);
PRAGMA wal_checkpoint(TRUNCATE);
SQL"
rec dataset.generate_s "$T"
rec dataset.db_bytes "$(stat -c %s "$DB")"
rec dataset.entries "$(sqlite3 "$DB" 'SELECT count(*) FROM entries')"
rec dataset.tags "$(sqlite3 "$DB" 'SELECT count(*) FROM tags')"
rec dataset.entry_tags "$(sqlite3 "$DB" 'SELECT count(*) FROM entry_tags')"
got=$(sqlite3 "$DB" "SELECT count(*) FROM entry_tags WHERE tag_id = $LOST_ID")
[ "$got" = "$LOST_LINKS" ] || die "the generated database has $got entry_tags rows for the lost tag, not $LOST_LINKS"
say "database: $(human "$(stat -c %s "$DB")") in ${T}s"

# ---------------------------------------------------------------------------------
# the hours: change, (loss), backup

INS=$(( CHANGE_ROWS / 2 ))
UPD=$(( CHANGE_ROWS * 45 / 100 ))
DEL=$(( CHANGE_ROWS / 100 + 1 ))
LINKS_ADD=$(( CHANGE_ROWS / 30 + 1 ))
LINKS_DEL=$(( CHANGE_ROWS / 30 + 1 ))
rec dataset.rows_changed_per_hour "$CHANGE_ROWS"
rec dataset.change_how "per hour, one transaction: $INS entries inserted (1-3 entry_tags each), $UPD random entries' message updated, $DEL random entries deleted (links cascade; never the lost tag's), $LINKS_ADD links added to and $LINKS_DEL removed from random old entries; every 6th hour, one new tag"

# change HOUR: one hour's writes, in one transaction; prints updated, inserted, deleted.
change_sql() {
    cat <<SQL
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
ATTACH '$WORK/words.db' AS w;
BEGIN;
CREATE TEMP TABLE m AS SELECT max(id) AS maxid FROM entries;
CREATE TEMP TABLE pick_u AS
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $(( UPD * 11 / 10 + 10 )))
  SELECT DISTINCT 1 + abs(random()) % (SELECT maxid FROM m) AS id FROM c LIMIT $UPD;
UPDATE entries SET message = $(msg id) || ' (edited)',
                   email = coalesce(email, 'edited' || id || '@example.org')
  WHERE id IN (SELECT id FROM pick_u);
SELECT changes();
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $INS)
INSERT INTO entries (author, message, created_at, email)
SELECT 'author-' || (abs(random()) % 20000), $(msg x), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
       CASE WHEN abs(random()) % 3 = 0 THEN 'new' || x || '@example.org' END
FROM c;
SELECT changes();
INSERT OR IGNORE INTO entry_tags (entry_id, tag_id)
SELECT e.id, $TAG_PICK FROM entries e
JOIN (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3) n ON n.k <= 1 + e.id % 3
WHERE e.id > (SELECT maxid FROM m);
CREATE TEMP TABLE pick_l AS
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $(( (LINKS_ADD + LINKS_DEL) * 2 + 10 )))
  SELECT DISTINCT 1 + abs(random()) % (SELECT maxid FROM m) AS id FROM c;
INSERT OR IGNORE INTO entry_tags (entry_id, tag_id)
SELECT e.id, $TAG_PICK FROM pick_l p JOIN entries e ON e.id = p.id LIMIT $LINKS_ADD;
DELETE FROM entry_tags WHERE rowid IN (
  SELECT et.rowid FROM pick_l p JOIN entry_tags et ON et.entry_id = p.id
  WHERE et.tag_id <> $LOST_ID ORDER BY p.id DESC LIMIT $LINKS_DEL);
CREATE TEMP TABLE pick_d AS
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $(( DEL * 3 + 10 )))
  SELECT DISTINCT 1 + abs(random()) % (SELECT maxid FROM m) AS id FROM c;
DELETE FROM entries WHERE id IN (
  SELECT id FROM pick_d WHERE id NOT IN (SELECT entry_id FROM entry_tags WHERE tag_id = $LOST_ID) LIMIT $DEL);
SELECT changes();
$(if [ $(( $1 % 6 )) = 0 ]; then echo "INSERT INTO tags (name) VALUES ('tag-h$1');"; fi)
COMMIT;
SQL
}

# The AMY case: the tag is deleted, and by cascade every link to it; the entries stay.
loss_sql() {
    cat <<SQL
PRAGMA foreign_keys = ON;
SELECT count(*) FROM entry_tags WHERE tag_id = $LOST_ID;
DELETE FROM tags WHERE name = '$LOST_TAG';
SELECT changes();
SELECT count(*) FROM entry_tags WHERE tag_id = $LOST_ID;
SQL
}

IDS=("")
say "$HOURS hourly backups (back to back), ~$CHANGE_ROWS rows changed between each; the lost tag deleted before hour $LOSS_AT's"
for h in $(seq 1 "$HOURS"); do
    rec "hours.$h.hour" "$h"
    upd=- ins=- del=- t_change=-
    if [ "$h" -gt 1 ]; then
        change_sql "$h" >"$WORK/change.sql"
        measure "change (hour $h)" "sqlite3 '$DB' <'$WORK/change.sql' >'$WORK/changes'"
        t_change=$T
        rec "hours.$h.change_s" "$T"
        upd=$(sed -n 1p "$WORK/changes" | tr -dc '0-9')
        ins=$(sed -n 2p "$WORK/changes" | tr -dc '0-9')
        del=$(sed -n 3p "$WORK/changes" | tr -dc '0-9')
        rec "hours.$h.updated" "${upd:-0}"
        rec "hours.$h.inserted" "${ins:-0}"
        rec "hours.$h.deleted" "${del:-0}"
    fi
    if [ "$h" = "$LOSS_AT" ]; then
        loss_sql >"$WORK/loss.sql"
        measure "delete the tag (hour $h)" "sqlite3 '$DB' <'$WORK/loss.sql' >'$WORK/loss.out'"
        log "links before, tags deleted, links after: $(tr '\n' ' ' <"$WORK/loss.out")"
        [ "$(sed -n 1p "$WORK/loss.out")" = "$LOST_LINKS" ] || die "before the loss the lost tag had $(sed -n 1p "$WORK/loss.out") links, not $LOST_LINKS"
        [ "$(sed -n 2p "$WORK/loss.out")" = 1 ] || die "deleting tag '$LOST_TAG' deleted $(sed -n 2p "$WORK/loss.out") rows, not 1"
        [ "$(sed -n 3p "$WORK/loss.out")" = 0 ] || die "the cascade left $(sed -n 3p "$WORK/loss.out") entry_tags rows of the lost tag"
        rec "hours.$h.loss" true
        say "  hour $h: tag '$LOST_TAG' and its $LOST_LINKS entry_tags rows deleted"
    fi
    tag=$(printf 'h%03d' "$h")
    measure "ostler backup ($tag)" "/usr/bin/time -f %M -o '$WORK/rss' '$OSTLER' --json backup $INST --note $tag >'$WORK/manifest.json'"
    t_backup=$T
    id=$(manifest "$WORK/manifest.json" id)
    IDS+=("$id")
    repo=$(bytes_of "$SVC/repo")
    tables=$(manifest "$WORK/manifest.json" tables)
    rec "hours.$h.backup" "$id"
    rec "hours.$h.backup_s" "$T"
    rec "hours.$h.rss_kib" "$(rss "$WORK/rss")"
    rec "hours.$h.new_bytes" "$(manifest "$WORK/manifest.json" new_bytes)"
    rec "hours.$h.repo_bytes" "$repo"
    rec "hours.$h.tables" "$tables"
    if [ "$h" = 1 ] || [ "$h" = "$HOURS" ] || [ "$h" = "$LOSS_AT" ] || [ "$HOURS" -le 24 ] || [ $((h % 12)) = 0 ]; then
        if [ "$h" = 1 ]; then what="the generated database"; else what="after ${ins}/${upd}/${del} entries ins/upd/del in ${t_change}s"; fi
        say "  hour $h/$HOURS: backup $id in ${t_backup}s ($what), repository $(human "$repo")"
    fi
    log "  tables: $tables"
done
rec totals.repo_bytes "$(bytes_of "$SVC/repo")"
rec totals.repo_file_bytes "$(file_bytes_of "$SVC/repo")"
rec totals.state_bytes "$(bytes_of "$SVC/.ostler")"
rec totals.db_bytes_after "$(stat -c %s "$DB")"
log "ostler backups:"
"$OSTLER" backups || true
n_good=$("$OSTLER" --json backups | python3 -c 'import json, sys; print(sum(1 for b in json.load(sys.stdin) if b["status"] == "good"))')
[ "$n_good" = "$HOURS" ] || die "the catalog has $n_good good backups, not $HOURS"

EXPECT_BEFORE=${IDS[$((LOSS_AT - 1))]}
EXPECT_AFTER=${IDS[$LOSS_AT]}
log "expected verdict: vanished between $EXPECT_BEFORE (hour $((LOSS_AT - 1))) and $EXPECT_AFTER (hour $LOSS_AT)"

# ---------------------------------------------------------------------------------
# ostler find

say "ostler find (expected: vanished between $EXPECT_BEFORE, hour $((LOSS_AT - 1)), and $EXPECT_AFTER, hour $LOSS_AT)"
run_find() { # run_find KEY TABLE PREDICATE ROWS_BEFORE
    local key=$1 table=$2 pred=$3 want=$4 out=$WORK/find-$1.json tr kind before after rb ra
    drop_caches
    rec find.page_cache "$CACHES"
    measure "ostler find $table" "/usr/bin/time -f %M -o '$WORK/rss' '$OSTLER' --json find $INST --table $table --where \"$pred\" >'$out'"
    cat "$out"
    rec "find.$key.predicate" "$pred"
    rec "find.$key.seconds" "$T"
    rec "find.$key.rss_kib" "$(rss "$WORK/rss")"
    rec "find.$key.read_full" "$(findjson "$out" read_full)"
    rec "find.$key.read_delta" "$(findjson "$out" read_delta)"
    rec "find.$key.skipped_unchanged" "$(findjson "$out" skipped_unchanged)"
    rec "find.$key.points" "$(findjson "$out" points)"
    rec "find.$key.expected_before" "$EXPECT_BEFORE"
    rec "find.$key.expected_after" "$EXPECT_AFTER"
    tr=$(findjson "$out" transitions)
    log "transitions: ${tr:-none}"
    read -r kind before after rb ra <<<"${tr:-none - - - -}"
    rec "find.$key.kind" "$kind"
    rec "find.$key.before_backup" "$before"
    rec "find.$key.after_backup" "$after"
    rec "find.$key.rows_before" "$rb"
    rec "find.$key.rows_after" "$ra"
    local ok=true why= ntr npoints
    ntr=$(printf '%s\n' "$tr" | awk 'NF { n++ } END { print n + 0 }')
    npoints=$(findjson "$out" points)
    if [ "$npoints" != "$HOURS" ]; then ok=false; why="it searched $npoints backups, not $HOURS"
    elif [ "$ntr" != 1 ]; then ok=false; why="it reported $ntr transitions, not 1: ${tr:-none}"
    elif [ "$kind" != vanished ]; then ok=false; why="the transition is '$kind', not 'vanished'"
    elif [ "$before" != "$EXPECT_BEFORE" ] || [ "$after" != "$EXPECT_AFTER" ]; then
        ok=false; why="it says between $before and $after, not $EXPECT_BEFORE (hour $((LOSS_AT - 1))) and $EXPECT_AFTER (hour $LOSS_AT)"
    elif [ "$rb" != "$want" ] || [ "$ra" != 0 ]; then ok=false; why="rows went $rb -> $ra, not $want -> 0"
    fi
    rec "find.$key.verdict_ok" "$ok"
    say "  --table $table --where \"$pred\": ${T}s, read $(findjson "$out" read_full) whole / $(findjson "$out" read_delta) by deltas / $(findjson "$out" skipped_unchanged) skipped ($(findjson "$out" hows)); vanished between $before and $after: $([ $ok = true ] && echo RIGHT || echo WRONG)"
    [ "$ok" = true ] || die "ostler find --table $table gave the wrong verdict: $why (full output: $out in the log above)"
}
run_find tags tags "name = '$LOST_TAG'" 1
run_find entry_tags entry_tags "tag_id = $LOST_ID" "$LOST_LINKS"
log "ostler find, as a user reads it:"
"$OSTLER" find "$INST" --table tags --where "name = '$LOST_TAG'" || true

# ---------------------------------------------------------------------------------
# the naive way: restore (export) a backup, query it

say "naive: ostler export + sqlite3 query on $NAIVE_K of the $HOURS backups"
for i in $(seq 0 $((NAIVE_K - 1))); do
    if [ "$NAIVE_K" = 1 ]; then
        pos=$(( (HOURS + 1) / 2 ))
    else
        pos=$(( 1 + (i * (HOURS - 1) + (NAIVE_K - 1) / 2) / (NAIVE_K - 1) ))
    fi
    id=${IDS[$pos]}
    dir=$WORK/export-$pos
    rec "naive.samples.$i.hour" "$pos"
    rec "naive.samples.$i.backup" "$id"
    drop_caches
    rec naive.page_cache "$CACHES"
    measure "ostler export $id (hour $pos)" "'$OSTLER' export $id '$dir'"
    t_export=$T
    rec "naive.samples.$i.export_s" "$T"
    rec "naive.samples.$i.export_bytes" "$(stat -c %s "$dir/database.sqlite")"
    measure "sqlite3 query tags (hour $pos)" "sqlite3 '$dir/database.sqlite' \"SELECT count(*) FROM tags WHERE name = '$LOST_TAG'\" >'$WORK/q1'"
    t_q1=$T
    rec "naive.samples.$i.query_tags_s" "$T"
    measure "sqlite3 query entry_tags (hour $pos)" "sqlite3 '$dir/database.sqlite' \"SELECT count(*) FROM entry_tags WHERE tag_id = $LOST_ID\" >'$WORK/q2'"
    t_q2=$T
    rec "naive.samples.$i.query_entry_tags_s" "$T"
    n1=$(tr -dc '0-9' <"$WORK/q1")
    n2=$(tr -dc '0-9' <"$WORK/q2")
    rec "naive.samples.$i.tags_rows" "$n1"
    rec "naive.samples.$i.entry_tags_rows" "$n2"
    f1=$(findjson "$WORK/find-tags.json" rows_at "$id")
    f2=$(findjson "$WORK/find-entry_tags.json" rows_at "$id")
    if [ "$pos" -lt "$LOSS_AT" ]; then w1=1 w2=$LOST_LINKS; else w1=0 w2=0; fi
    same=true
    [ "$n1" = "$f1" ] && [ "$n2" = "$f2" ] && [ "$n1" = "$w1" ] && [ "$n2" = "$w2" ] || same=false
    rec "naive.samples.$i.matches_find" "$same"
    say "  hour $pos ($id): export ${t_export}s, queries ${t_q1}s + ${t_q2}s; $n1 tag, $n2 links (find: $f1, $f2)"
    [ "$same" = true ] || die "hour $pos ($id): the restored database has $n1 tags / $n2 links matching, find says $f1 / $f2, expected $w1 / $w2"
    rm -rf "$dir"
done

# ---------------------------------------------------------------------------------
# summary

rec meta.loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
rec meta.finished "$(date -Is)"
report hours >"$WORK/summary-hours.txt"
cat "$WORK/summary-hours.txt"
[ "$HOURS" -le 24 ] && cat "$WORK/summary-hours.txt" >&3
say ""
say "=== summary ($COMMAND_LINE) ==="
report summary >"$WORK/summary.txt"
cat "$WORK/summary.txt" >&3
cat "$WORK/summary.txt"
[ "$HOURS" -le 24 ] || say "(the per-hour table is in the log)"
cp "$WORK/results.json" "$RESULTS_DIR/find-$STAMP.json"
say "results: $WORK/results.json$([ "$KEEP" = 1 ] || echo " (removed with the work dir)"), copied to $RESULTS_DIR/find-$STAMP.json"
say "log: $LOG"
