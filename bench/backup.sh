#!/usr/bin/env bash
# Benchmark of issue 4: ostler's backups against the runbooks' ways (dated gzip'd dumps,
# restic and borg reading the plain dump from stdin), on
#   sqlite:   a ~1 GiB SQLite database, one pgbench_accounts-like table of 10M rows;
#   postgres: a pgbench database at scale 50 (~750 MB) on a throwaway PostgreSQL
#             cluster this script starts on a free port in a temp dir (never the
#             machine's own server) and removes at exit.
# For each: the first backup (time, stored size, vs pg_dump -Fc / sqlite3 .dump | gzip,
# restic, borg, and the disk's sequential read speed), then N rounds of ~1 % changed
# rows (half UPDATEs, half INSERTs, ids spread over the whole table) each followed by
# every tool's backup, then total sizes, ratios, mean times, a full restore and peak RSS.
#
#   bench/backup.sh [--engine sqlite|postgres|both] [--small] [--rounds N]
#                   [--no-build] [--keep] [--no-space-check]
#
# Prints a summary table per engine; writes results.json in the work dir (copied to
# bench/results/backup-DATE.json) and logs everything to bench/results/backup-DATE.log.
# See bench/README.md.
set -eEuo pipefail

usage() {
    cat <<'EOF'
usage: bench/backup.sh [options]
  --engine sqlite|postgres|both   data sets to run (default both)
  --small                         ~50 MB data sets instead of ~1 GiB (a quick check)
  --rounds N                      rounds of ~1 % changed rows (default 24)
  --no-build                      use target/release/ostler as it is
  --keep                          keep the work dir (repositories, dumps, databases)
  --no-space-check                go on even when the free disk space looks too small
  --discard-dumps                 delete each dated gzip dump once its size is recorded (keeps
                                  the latest, for the restore); the dumps' total is then the
                                  sum of the recorded sizes. Saves ~half the disk space.
Environment: TMPDIR (where the work dir goes), BORG_COMPRESSION (default lz4, borg's own
default), RESTIC_COMPRESSION (default auto, restic's own default).
EOF
}

ENGINE=both
SMALL=0
ROUNDS=24
BUILD=1
KEEP=0
SPACE_CHECK=1
DISCARD_DUMPS=0
ARGV=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --engine) [ $# -ge 2 ] || { echo "backup.sh: --engine needs a value" >&2; exit 2; }; ENGINE=$2; shift 2 ;;
        --engine=*) ENGINE=${1#--engine=}; shift ;;
        --small) SMALL=1; shift ;;
        --rounds) [ $# -ge 2 ] || { echo "backup.sh: --rounds needs a value" >&2; exit 2; }; ROUNDS=$2; shift 2 ;;
        --rounds=*) ROUNDS=${1#--rounds=}; shift ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --no-space-check) SPACE_CHECK=0; shift ;;
        --discard-dumps) DISCARD_DUMPS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "backup.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$ENGINE" in
    sqlite) ENGINES=(sqlite) ;;
    postgres) ENGINES=(postgres) ;;
    both) ENGINES=(sqlite postgres) ;;
    *) echo "backup.sh: --engine must be sqlite, postgres or both, not '$ENGINE'" >&2; exit 2 ;;
esac
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 1 ]; then
    echo "backup.sh: --rounds must be a whole number >= 1, not '$ROUNDS'" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS_DIR=$ROOT/bench/results
mkdir -p "$RESULTS_DIR"
LOG=$RESULTS_DIR/backup-$STAMP.log
COMMAND_LINE=bench/backup.sh
for a in "${ARGV[@]}"; do COMMAND_LINE+=" $(printf '%q' "$a")"; done
BORG_COMPRESSION=${BORG_COMPRESSION:-lz4}
RESTIC_COMPRESSION=${RESTIC_COMPRESSION:-auto}

# The terminal keeps fd 3; everything else goes to the log. `say` writes to both.
exec 3>&1
exec >>"$LOG" 2>&1
say() { printf '%s\n' "$*" >&3; printf '%s\n' "$*"; }
log() { printf '%s\n' "$*"; }

WORK=
PGROOT=
PG_RUNNING=0

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
    if [ "$PG_RUNNING" = 1 ]; then
        log "stopping the throwaway PostgreSQL cluster in $PGROOT"
        (cd "$PGROOT" && as_pg "$PG_BIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 60 stop) || log "pg_ctl stop failed"
        PG_RUNNING=0
    fi
    [ -n "$PGROOT" ] && [ -d "$PGROOT" ] && rm -rf "$PGROOT"
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then
            say "work dir kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    [ $rc -ne 0 ] && say "backup.sh exited with status $rc; full log: $LOG"
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

# rec KEY VALUE: one result, KEY dotted (engine.section.name); see report.py.
rec() { printf '%s\t%s\n' "$1" "$2" >>"$WORK/results.tsv"; }

bytes_of() { du -sb "$1" | cut -f1; }
# The files' bytes only: `du -sb` also counts each directory (4 KiB apiece; ostler's and
# restic's repositories start with 256 and more), which matters with --small.
file_bytes_of() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }'; }

human() { numfmt --to=iec-i --suffix=B --format=%.1f "$1"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CACHES=warm
drop_caches() {
    sync
    if [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        CACHES=dropped
    else
        CACHES=warm
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
            die "not enough disk space: $2 needs about $(human "$1"), only $(human "$avail") free in $WORK (free some, run one --engine at a time, fewer --rounds, set TMPDIR elsewhere, or pass --no-space-check)"
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
have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
need_pkg restic have restic
need_pkg borgbackup have borg
need_pkg time test -x /usr/bin/time
need_pkg sqlite3 have sqlite3
need_pkg gzip have gzip
need_pkg python3 have python3
need_pkg coreutils have numfmt
for e in "${ENGINES[@]}"; do
    if [ "$e" = postgres ]; then
        need_pkg postgresql have_pg_server
        need_pkg postgresql-client have psql
        need_pkg util-linux have runuser
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing missing packages: ${missing[*]}"
    as_root apt-get update || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
fi
for tool in restic borg sqlite3 gzip python3 numfmt du dd awk df; do
    have "$tool" || die "$tool is not installed (and installing it did not help)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package: time)"

if [ "$BUILD" = 1 ]; then
    say "building: cargo build --release -p ostler -p guestbook"
    (cd "$ROOT" && cargo build --release -p ostler -p guestbook) \
        || die "cargo build --release -p ostler -p guestbook failed (someone mid-edit? retry in a minute, or pass --no-build)"
fi
OSTLER=${OSTLER_BIN:-$ROOT/target/release/ostler}
[ -x "$OSTLER" ] || die "$OSTLER is missing: build it (cargo build --release -p ostler) or drop --no-build"

PG_BIN=
if printf '%s\n' "${ENGINES[@]}" | grep -qx postgres; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    for b in initdb pg_ctl postgres psql pg_dump pg_restore pgbench createdb; do
        [ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b is missing (Debian packages postgresql, postgresql-client)"
    done
    # ostler runs pg_dump and psql from PATH: the same version as the server.
    export PATH="$PG_BIN:$PATH"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ostler-bench-backup.XXXXXX")
chmod 755 "$WORK"
: >"$WORK/results.tsv"
say "work dir: $WORK$([ "$KEEP" = 1 ] && echo " (kept)" || echo " (removed at exit; --keep keeps it)")"

# report.py: results.tsv -> results.json (nested, derived numbers added) and the tables.
cat >"$WORK/report.py" <<'PY'
import json, sys

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
    for name, e in data.items():
        if name == "meta" or not isinstance(e, dict):
            continue
        if isinstance(e.get("rounds"), dict):
            e["rounds"] = [e["rounds"][k] for k in sorted(e["rounds"], key=int)]
        derive(e)
    return data

def mean(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return sum(xs) / len(xs) if xs else None

def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None

def derive(e):
    rounds = e.get("rounds", [])
    tot = e.get("totals", {})
    e["ratios"] = {
        "ostler_over_gzip_dumps": ratio(tot.get("ostler_repo_bytes"), tot.get("gzip_dumps_bytes")),
        "ostler_over_restic": ratio(tot.get("ostler_repo_bytes"), tot.get("restic_repo_bytes")),
        "ostler_over_borg": ratio(tot.get("ostler_repo_bytes"), tot.get("borg_repo_bytes")),
        "files_only_ostler_over_gzip_dumps": ratio(tot.get("ostler_repo_file_bytes"), tot.get("gzip_dumps_sum_bytes")),
        "files_only_ostler_over_restic": ratio(tot.get("ostler_repo_file_bytes"), tot.get("restic_repo_file_bytes")),
        "files_only_ostler_over_borg": ratio(tot.get("ostler_repo_file_bytes"), tot.get("borg_repo_file_bytes")),
    }
    e["mean_round_seconds"] = {
        t: mean([r.get(t + "_s") for r in rounds]) for t in ("ostler", "gzip_dump", "restic", "borg", "change")
    }
    last = rounds[-1] if rounds else {}
    def mx(k):
        xs = [r.get(k) for r in rounds if isinstance(r.get(k), int)]
        return max(xs) if xs else None
    e["peak_rss_kib"] = {
        "ostler_backup_last_round": last.get("ostler_rss_kib"),
        "ostler_backup_max_round": mx("ostler_rss_kib"),
        "ostler_backup_first": e.get("first", {}).get("ostler", {}).get("rss_kib"),
        "ostler_restore": e.get("restore", {}).get("ostler", {}).get("rss_kib"),
        "restic_backup_last_round": last.get("restic_rss_kib"),
        "restic_backup_max_round": mx("restic_rss_kib"),
        "borg_backup_last_round": last.get("borg_rss_kib"),
        "borg_backup_max_round": mx("borg_rss_kib"),
    }

def h(n):
    if not isinstance(n, (int, float)):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024

def s(x):
    return f"{x:.2f} s" if isinstance(x, (int, float)) else "-"

def kib(x):
    return h(x * 1024) if isinstance(x, (int, float)) else "-"

def r(x):
    return f"{x:.3f}" if isinstance(x, (int, float)) else "-"

def table(title, header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    out = [title]
    fmt = lambda cells: "  " + "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out.append(fmt(header))
    out.extend(fmt(row) for row in rows)
    return "\n".join(out)

def report(name, e, meta):
    ds, dr, first = e.get("dataset", {}), e.get("disk_read", {}), e.get("first", {})
    rounds, tot, rat = e.get("rounds", []), e.get("totals", {}), e["ratios"]
    mrs, rss, rest = e["mean_round_seconds"], e["peak_rss_kib"], e.get("restore", {})
    n = len(rounds)
    native = "pg_dump -Fc" if name == "postgres" else "sqlite3 .dump | gzip"
    print(f"== {name}: {ds.get('description', '')}")
    print(f"   {ds.get('rows', '-')} rows in {ds.get('table', '-')}; database {h(ds.get('db_bytes'))} "
          f"(after the rounds: {ds.get('rows_after', '-')} rows, {h(ds.get('db_bytes_after'))}); "
          f"{n} rounds changing ~{ds.get('rows_changed_per_round', '-')} rows each")
    mbps = dr.get("mb_per_s")
    print(f"   disk sequential read ({dr.get('how', '')}): {h(dr.get('bytes'))} in {s(dr.get('seconds'))}"
          f" = {mbps:.0f} MB/s (page cache {dr.get('page_cache', '?')})" if isinstance(mbps, (int, float)) else "")
    print()
    def fb(key, label):
        x = first.get(key, {})
        return [label, s(x.get("seconds")), h(x.get("stored_bytes")), h(x.get("stored_file_bytes")), kib(x.get("rss_kib"))]
    rows = [fb("ostler", "ostler backup"),
            [native, s(first.get("native", {}).get("seconds")), h(first.get("native", {}).get("bytes")),
             h(first.get("native", {}).get("bytes")), "-"]]
    if name == "postgres":
        rows.append(["pg_dump | gzip (plain)", s(first.get("gzip_dump", {}).get("seconds")),
                     h(first.get("gzip_dump", {}).get("bytes")), h(first.get("gzip_dump", {}).get("bytes")), "-"])
    rows += [fb("restic", "restic backup --stdin (plain dump)"), fb("borg", "borg create - (plain dump)")]
    print(table(f"first backup (page cache {first.get('page_cache', '?')} before each)",
                ["", "time", "stored (du -sb)", "files only", "peak RSS"], rows))
    print()
    b = n + 1
    rows = [
        ["ostler repository", h(tot.get("ostler_repo_bytes")), "1", h(tot.get("ostler_repo_file_bytes")), "1",
         s(mrs.get("ostler")), kib(rss.get("ostler_backup_last_round")), kib(rss.get("ostler_backup_max_round"))],
        [f"{b} dated gzip dumps" + (" (sum)" if "sum" in str(tot.get("gzip_dumps_how", "")) else ""),
         h(tot.get("gzip_dumps_bytes")), r(rat.get("ostler_over_gzip_dumps")), h(tot.get("gzip_dumps_sum_bytes")),
         r(rat.get("files_only_ostler_over_gzip_dumps")), s(mrs.get("gzip_dump")), "-", "-"],
        ["restic repository", h(tot.get("restic_repo_bytes")), r(rat.get("ostler_over_restic")),
         h(tot.get("restic_repo_file_bytes")), r(rat.get("files_only_ostler_over_restic")), s(mrs.get("restic")),
         kib(rss.get("restic_backup_last_round")), kib(rss.get("restic_backup_max_round"))],
        ["borg repository", h(tot.get("borg_repo_bytes")), r(rat.get("ostler_over_borg")),
         h(tot.get("borg_repo_file_bytes")), r(rat.get("files_only_ostler_over_borg")), s(mrs.get("borg")),
         kib(rss.get("borg_backup_last_round")), kib(rss.get("borg_backup_max_round"))],
    ]
    print(table(f"after {n} rounds ({b} backups each; ostler's state dir {h(tot.get('ostler_state_bytes'))} not counted)",
                ["", "du -sb", "ostler/this", "files only", "ostler/this", "mean s/round", "RSS last round",
                 "RSS max round"], rows))
    print()
    rows = []
    for key, label in (("ostler", "ostler restore --into (latest backup)"),
                       ("pg_restore", "createdb + pg_restore (final pg_dump -Fc)"),
                       ("psql_gzip", "createdb + gunzip | psql (latest gzip dump)"),
                       ("sqlite_gzip", "gunzip | sqlite3 (latest gzip dump)")):
        x = rest.get(key)
        if x:
            rows.append([label, s(x.get("seconds")), kib(x.get("rss_kib")), "same" if x.get("matches") else "DIFFERENT"])
    print(table("full restore", ["", "time", "peak RSS", "content vs source"], rows))
    if name == "postgres" and "final_pg_dump_fc" in rest:
        f = rest["final_pg_dump_fc"]
        print(f"  (final pg_dump -Fc for pg_restore: {s(f.get('seconds'))}, {h(f.get('bytes'))})")
    print()
    rows = [[str(x.get("round", "")), s(x.get("change_s")), f"{x.get('updated', '-')}/{x.get('inserted', '-')}",
             s(x.get("ostler_s")), h(x.get("ostler_new_bytes")), s(x.get("gzip_dump_s")), s(x.get("restic_s")),
             s(x.get("borg_s"))] for x in rounds]
    print(table("per round", ["round", "change", "upd/ins", "ostler", "ostler added", "gzip dump", "restic", "borg"],
                rows))
    print()

def main():
    tsv, out = sys.argv[1], sys.argv[2]
    only = sys.argv[3:]
    data = load(tsv)
    with open(out, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    meta = data.get("meta", {})
    for name in ("sqlite", "postgres"):
        if name in data and (not only or name in only):
            report(name, data[name], meta)

main()
PY

# manifest FILE new_bytes|logical_bytes|tables: from `ostler --json backup`'s manifest;
# `tables` gives each changed table's [added, changed, removed] and chain length.
cat >"$WORK/manifest.py" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
if sys.argv[2] == "tables":
    out = []
    for t in (m.get("database") or {}).get("tables", []):
        if t.get("change") != [0, 0, 0]:
            out.append("%s:%s:%d-deltas" % (t["spec"]["name"], t.get("change"), len(t.get("deltas", []))))
    print(" ".join(out) or "-")
else:
    print(m[sys.argv[2]])
PY
manifest() { python3 "$WORK/manifest.py" "$@"; }

report() { python3 "$WORK/report.py" "$WORK/results.tsv" "$WORK/results.json" "$@"; }

# ---------------------------------------------------------------------------------
# metadata

rec meta.command "$COMMAND_LINE"
rec meta.started "$(date -Is)"
rec meta.host "$(hostname)"
rec meta.cpus "$(nproc)"
rec meta.mem_bytes "$(awk '/MemTotal/ { print $2 * 1024 }' /proc/meminfo)"
rec meta.kernel "$(uname -r)"
rec meta.git_commit "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
rec meta.git_dirty "$( [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] && echo true || echo false)"
rec meta.options.engine "$ENGINE"
rec meta.options.small "$([ "$SMALL" = 1 ] && echo true || echo false)"
rec meta.options.rounds "$ROUNDS"
rec meta.options.discard_dumps "$([ "$DISCARD_DUMPS" = 1 ] && echo true || echo false)"
rec meta.versions.ostler "$("$OSTLER" --version)"
rec meta.versions.restic "$(restic version | head -n 1)"
rec meta.versions.borg "$(borg --version)"
rec meta.versions.sqlite3 "$(sqlite3 --version | cut -d' ' -f1)"
rec meta.versions.gzip "$(gzip --version | head -n 1)"
[ -n "$PG_BIN" ] && rec meta.versions.postgres "$("$PG_BIN/postgres" --version)"
rec meta.borg_compression "$BORG_COMPRESSION"
rec meta.restic_compression "$RESTIC_COMPRESSION"
rec meta.work_dir "$WORK"
rec meta.filesystem "$(df --output=source,fstype "$WORK" | tail -n 1 | tr -s ' ')"
log "versions: $("$OSTLER" --version); $(restic version | head -n 1); $(borg --version); sqlite3 $(sqlite3 --version | cut -d' ' -f1)"

# ---------------------------------------------------------------------------------
# the throwaway PostgreSQL cluster

PG_PORT=
if [ "$(id -u)" -eq 0 ]; then
    getent passwd postgres >/dev/null || die "running as root, but there is no postgres user to run the throwaway server as"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

start_pg() {
    PGROOT=$(mktemp -d /tmp/ostler-bench-pg.XXXXXX)
    chmod 755 "$PGROOT"
    PG_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s\n' "$PG_PASSWORD" >"$PGROOT/pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PGROOT" "$PGROOT/pwfile"
    (cd "$PGROOT" && as_pg "$PG_BIN/initdb" -D "$PGROOT/data" -U bench --auth=scram-sha-256 -E UTF8 \
        --locale=C --no-sync --pwfile="$PGROOT/pwfile") || die "initdb of the throwaway cluster in $PGROOT failed"
    rm -f "$PGROOT/pwfile"
    local attempt
    for attempt in 1 2 3; do
        PG_PORT=$(free_port)
        [ "$PG_PORT" = 5432 ] && continue
        if (cd "$PGROOT" && as_pg "$PG_BIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w -t 120 \
            -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PGROOT \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                -c shared_buffers=256MB -c maintenance_work_mem=256MB -c max_wal_size=4GB \
                -c checkpoint_timeout=30min -c logging_collector=off" start); then
            PG_RUNNING=1
            break
        fi
        log "PostgreSQL did not start on port $PG_PORT (attempt $attempt):"
        tail -n 20 "$PGROOT/server.log" || true
    done
    [ "$PG_RUNNING" = 1 ] || die "could not start the throwaway PostgreSQL cluster (see $PGROOT/server.log above)"
    export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=bench PGPASSWORD=$PG_PASSWORD PGSSLMODE=disable PGCONNECT_TIMEOUT=30
    unset PGDATABASE PGSERVICE PGOPTIONS PGPASSFILE
    say "throwaway PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT, data in $PGROOT/data"
}

psql_q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_val() { "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------------------------
# one engine

# The service dir: instance a holds the data set, instance b is the restore target.
write_config() { # write_config DIR KIND
    local dir=$1 kind=$2 pa pb
    pa=$(free_port)
    pb=$(free_port)
    while [ "$pb" = "$pa" ]; do pb=$(free_port); done
    mkdir -p "$dir/instances/a" "$dir/instances/b"
    {
        printf '[service]\nname = "bench-%s"\nstate_dir = ".ostler"\n\n[repository]\npath = "repo"\n' "$kind"
        for i in a b; do
            printf '\n[instances.%s]\ndir = "instances/%s"\nstart = "sleep 100000"\nport = %s\n' \
                "$i" "$i" "$([ $i = a ] && echo "$pa" || echo "$pb")"
            printf '\n[instances.%s.database]\n' "$i"
            if [ "$kind" = sqlite ]; then
                printf 'kind = "sqlite"\npath = "data.db"\n'
            else
                printf 'kind = "postgres"\nurl = "postgres://bench@127.0.0.1:%s/%s"\npassword_file = "pg.pw"\n' \
                    "$PG_PORT" "$([ $i = a ] && echo bench || echo bench_restore)"
            fi
        done
    } >"$dir/ostler.toml"
    if [ "$kind" = postgres ]; then
        (umask 077 && printf '%s\n' "$PG_PASSWORD" >"$dir/pg.pw")
    fi
    log "ostler.toml for $kind:"
    cat "$dir/ostler.toml"
    "$OSTLER" --config "$dir/ostler.toml" config check || die "ostler config check failed for $dir/ostler.toml"
}

# Source checksums, printed one line, for comparing restores.
checksum_sqlite() { # FILE
    sqlite3 "$1" "SELECT count(*), sum(aid), sum(bid), sum(abalance), sum(tid), sum(length(filler)),
        sum(unicode(substr(filler, 1 + aid % 84, 1))) FROM accounts;"
}
checksum_pg() { # DBNAME
    psql_val -d "$1" -c "SELECT (SELECT count(*) || ',' || sum(aid) || ',' || sum(bid) || ',' || sum(abalance) || ','
            || sum(hashtext(filler)::bigint) FROM pgbench_accounts)
        || ';' || (SELECT count(*) || ',' || sum(bid) || ',' || sum(bbalance) FROM pgbench_branches)
        || ';' || (SELECT count(*) || ',' || sum(tid) || ',' || sum(tbalance) FROM pgbench_tellers)
        || ';' || (SELECT count(*) FROM pgbench_history)"
}

bench_engine() {
    local E=$1
    local D=$WORK/$E SVC=$WORK/$E/svc
    local DB ROWS SCALE=0 DUMP dumpname upd ins t_ostler t_dump t_restic t_borg read_bytes gz_total=0 previous_dump
    mkdir -p "$D" "$SVC" "$D/dumps"
    say ""
    say "=== $E ==="

    # restic and borg of this engine: fresh repositories, caches and keys in the work dir.
    export RESTIC_REPOSITORY=$D/restic RESTIC_PASSWORD=bench-not-a-secret RESTIC_CACHE_DIR=$D/restic-cache
    export BORG_REPO=$D/borg BORG_BASE_DIR=$D/borg-home BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
    export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_PASSPHRASE=
    export OSTLER_CONFIG=$SVC/ostler.toml

    # --- the data set
    if [ "$E" = sqlite ]; then
        ROWS=$([ "$SMALL" = 1 ] && echo 500000 || echo 10000000)
        write_config "$SVC" sqlite
        DB=$SVC/instances/a/data.db
        rec "$E.dataset.description" "SQLite, one table like pgbench_accounts (aid INTEGER PRIMARY KEY = 2,4,6...; bid, abalance, tid; filler = 84 random hex chars)"
        rec "$E.dataset.table" accounts
        rec "$E.dataset.rows" "$ROWS"
        space_check $((ROWS * 110 * 4)) "generating the SQLite data set"
        say "generating $ROWS rows into $DB"
        measure "generate sqlite" "sqlite3 '$DB' <<'SQL'
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INTEGER NOT NULL, abalance INTEGER NOT NULL,
                       tid INTEGER NOT NULL, filler TEXT NOT NULL);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS)
INSERT INTO accounts (aid, bid, abalance, tid, filler)
SELECT 2 * x, (x - 1) / 100000 + 1, 0, abs(random()) % 1000, hex(randomblob(42)) FROM c;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL"
        rec "$E.dataset.generate_s" "$T"
        rec "$E.dataset.db_bytes" "$(stat -c %s "$DB")"
        DUMP="sqlite3 '$DB' .dump"
        say "database: $(human "$(stat -c %s "$DB")") in $T s"
    else
        SCALE=$([ "$SMALL" = 1 ] && echo 3 || echo 50)
        ROWS=$((SCALE * 100000))
        start_pg
        write_config "$SVC" postgres
        rec "$E.dataset.description" "PostgreSQL, pgbench -i -s $SCALE with pgbench_accounts.aid doubled (2,4,6...) so that inserts land between rows"
        rec "$E.dataset.table" pgbench_accounts
        rec "$E.dataset.rows" "$ROWS"
        rec "$E.dataset.scale" "$SCALE"
        space_check $((ROWS * 160 * 4)) "generating the pgbench data set"
        say "pgbench -i -s $SCALE (accounts' aid doubled), database bench"
        measure "generate postgres" "
\"$PG_BIN/createdb\" bench
\"$PG_BIN/pgbench\" -i -s $SCALE -I dtG bench
psql_q -d bench -c 'UPDATE pgbench_accounts SET aid = aid * 2' -c 'VACUUM FULL pgbench_accounts'
\"$PG_BIN/pgbench\" -i -s $SCALE -I vp bench
psql_q -d bench -c CHECKPOINT"
        rec "$E.dataset.generate_s" "$T"
        rec "$E.dataset.db_bytes" "$(psql_val -d bench -c "SELECT pg_database_size('bench')")"
        DUMP="\"$PG_BIN/pg_dump\" -d bench"
        say "database: $(human "$(psql_val -d bench -c "SELECT pg_database_size('bench')")") in $T s"
    fi
    local HALF=$(( (ROWS / 100 + 1) / 2 ))
    rec "$E.dataset.rows_changed_per_round" $((2 * HALF))

    # --- disk sequential read
    drop_caches
    if [ "$E" = sqlite ]; then
        measure "disk read" "dd if='$DB' of=/dev/null bs=4M"
        rec "$E.disk_read.how" "dd if=DBFILE of=/dev/null bs=4M"
        read_bytes=$(stat -c %s "$DB")
    else
        local oid
        oid=$(psql_val -d bench -c "SELECT oid FROM pg_database WHERE datname = 'bench'")
        measure "disk read" "find '$PGROOT/data/base/$oid' -type f -print0 | xargs -0 cat >/dev/null"
        rec "$E.disk_read.how" "cat of the database's files in the data dir (base/OID/*)"
        read_bytes=$(bytes_of "$PGROOT/data/base/$oid")
    fi
    rec "$E.disk_read.bytes" "$read_bytes"
    rec "$E.disk_read.seconds" "$T"
    rec "$E.disk_read.page_cache" "$CACHES"
    rec "$E.disk_read.mb_per_s" "$(awk -v b="$read_bytes" -v t="$T" 'BEGIN { printf "%.1f", b / 1e6 / t }')"
    say "disk sequential read: $(human "$read_bytes") in ${T}s (page cache $CACHES)"

    # --- first backups
    say "first backups"
    drop_caches
    rec "$E.first.page_cache" "$CACHES"
    measure "ostler backup (first)" "/usr/bin/time -f %M -o '$D/rss' '$OSTLER' --json backup a --note first >'$D/manifest.json'"
    rec "$E.first.ostler.seconds" "$T"
    rec "$E.first.ostler.rss_kib" "$(rss "$D/rss")"
    rec "$E.first.ostler.stored_bytes" "$(bytes_of "$SVC/repo")"
    rec "$E.first.ostler.stored_file_bytes" "$(file_bytes_of "$SVC/repo")"
    rec "$E.first.ostler.logical_bytes" "$(manifest "$D/manifest.json" logical_bytes)"
    say "  ostler backup: ${T}s, repository $(human "$(bytes_of "$SVC/repo")")"

    drop_caches
    if [ "$E" = sqlite ]; then
        dumpname=$D/dumps/accounts-$(date +%Y%m%d-%H%M%S)-r00.sql.gz
        measure "sqlite3 .dump | gzip (first)" "$DUMP | gzip >'$dumpname'"
        rec "$E.first.native.what" "sqlite3 .dump | gzip"
        rec "$E.first.native.seconds" "$T"
        rec "$E.first.native.bytes" "$(stat -c %s "$dumpname")"
        rec "$E.first.gzip_dump.seconds" "$T"
        rec "$E.first.gzip_dump.bytes" "$(stat -c %s "$dumpname")"
        gz_total=$(stat -c %s "$dumpname")
        say "  sqlite3 .dump | gzip: ${T}s, $(human "$(stat -c %s "$dumpname")")"
    else
        measure "pg_dump -Fc (first)" "\"$PG_BIN/pg_dump\" -Fc -d bench -f '$D/first.dump'"
        rec "$E.first.native.what" "pg_dump -Fc"
        rec "$E.first.native.seconds" "$T"
        rec "$E.first.native.bytes" "$(stat -c %s "$D/first.dump")"
        say "  pg_dump -Fc: ${T}s, $(human "$(stat -c %s "$D/first.dump")")"
        rm -f "$D/first.dump"
        drop_caches
        dumpname=$D/dumps/bench-$(date +%Y%m%d-%H%M%S)-r00.sql.gz
        measure "pg_dump | gzip (first)" "$DUMP | gzip >'$dumpname'"
        rec "$E.first.gzip_dump.seconds" "$T"
        rec "$E.first.gzip_dump.bytes" "$(stat -c %s "$dumpname")"
        gz_total=$(stat -c %s "$dumpname")
        say "  pg_dump | gzip: ${T}s, $(human "$(stat -c %s "$dumpname")")"
    fi

    measure "restic init" "restic init --repository-version 2 -q"
    drop_caches
    measure "restic backup (first)" "$DUMP | /usr/bin/time -f %M -o '$D/rss' restic backup -q --compression $RESTIC_COMPRESSION --stdin --stdin-filename $E.sql --host bench --tag r00"
    rec "$E.first.restic.seconds" "$T"
    rec "$E.first.restic.rss_kib" "$(rss "$D/rss")"
    rec "$E.first.restic.stored_bytes" "$(bytes_of "$D/restic")"
    rec "$E.first.restic.stored_file_bytes" "$(file_bytes_of "$D/restic")"
    say "  restic: ${T}s, repository $(human "$(bytes_of "$D/restic")")"

    measure "borg init" "borg init -e none '$D/borg'"
    drop_caches
    measure "borg create (first)" "$DUMP | /usr/bin/time -f %M -o '$D/rss' borg create --compression $BORG_COMPRESSION --stdin-name $E.sql '$D/borg::r00' -"
    rec "$E.first.borg.seconds" "$T"
    rec "$E.first.borg.rss_kib" "$(rss "$D/rss")"
    rec "$E.first.borg.stored_bytes" "$(bytes_of "$D/borg")"
    rec "$E.first.borg.stored_file_bytes" "$(file_bytes_of "$D/borg")"
    say "  borg: ${T}s, repository $(human "$(bytes_of "$D/borg")")"

    # Every round may add a whole new copy to the gzip dumps, restic and borg.
    local per_round
    per_round=$(( $(bytes_of "$D/restic") + $(bytes_of "$D/borg") ))
    [ "$DISCARD_DUMPS" = 1 ] || per_round=$(( per_round + $(stat -c %s "$dumpname") ))
    space_check $(( per_round * ROUNDS * 11 / 10 + $(bytes_of "$SVC/repo") * 2 )) "$ROUNDS rounds of $E"

    # --- rounds
    say "$ROUNDS rounds of ~$((2 * HALF)) changed rows ($HALF updated, $HALF inserted)"
    local r tag
    for r in $(seq 1 "$ROUNDS"); do
        tag=$(printf 'r%02d' "$r")
        rec "$E.rounds.$r.round" "$r"
        if [ "$E" = sqlite ]; then
            measure "change ($tag)" "sqlite3 '$DB' >'$D/changes' <<'SQL'
PRAGMA synchronous = NORMAL;
BEGIN;
CREATE TEMP TABLE pick_u AS
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $((HALF * 11 / 10 + 10)))
  SELECT DISTINCT 2 * (abs(random()) % $ROWS + 1) AS id FROM c LIMIT $HALF;
UPDATE accounts SET abalance = abalance + abs(random()) % 10001 - 5000, filler = hex(randomblob(42))
  WHERE aid IN (SELECT id FROM pick_u);
SELECT changes();
CREATE TEMP TABLE pick_i AS
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $((HALF * 14 / 10 + 10)))
  SELECT DISTINCT 2 * (abs(random()) % $ROWS) + 1 AS id FROM c;
INSERT INTO accounts (aid, bid, abalance, tid, filler)
  SELECT id, id / 200000 + 1, 0, abs(random()) % 1000, hex(randomblob(42)) FROM pick_i
  WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.aid = pick_i.id) LIMIT $HALF;
SELECT changes();
COMMIT;
SQL"
        else
            measure "change ($tag)" "psql_q -A -t -d bench >'$D/changes' <<'SQL'
BEGIN;
CREATE TEMP TABLE pick_u ON COMMIT DROP AS
  SELECT DISTINCT 2 * (1 + floor(random() * $ROWS))::int AS id
  FROM generate_series(1, $((HALF * 11 / 10 + 10))) LIMIT $HALF;
WITH u AS (
  UPDATE pgbench_accounts a SET abalance = abalance + floor(random() * 10001)::int - 5000,
    filler = substr(md5(random()::text) || md5(random()::text) || md5(random()::text), 1, 84)
  FROM pick_u p WHERE a.aid = p.id RETURNING 1)
SELECT count(*) FROM u;
CREATE TEMP TABLE pick_i ON COMMIT DROP AS
  SELECT DISTINCT 2 * floor(random() * $ROWS)::int + 1 AS id FROM generate_series(1, $((HALF * 14 / 10 + 10)));
WITH i AS (
  INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
  SELECT id, least($SCALE, id / 200000 + 1), 0,
         substr(md5(random()::text) || md5(random()::text) || md5(random()::text), 1, 84)
  FROM pick_i p WHERE NOT EXISTS (SELECT 1 FROM pgbench_accounts a WHERE a.aid = p.id) LIMIT $HALF
  RETURNING 1)
SELECT count(*) FROM i;
COMMIT;
SQL"
        fi
        rec "$E.rounds.$r.change_s" "$T"
        upd=$(sed -n 1p "$D/changes" | tr -dc '0-9')
        ins=$(sed -n 2p "$D/changes" | tr -dc '0-9')
        rec "$E.rounds.$r.updated" "${upd:-0}"
        rec "$E.rounds.$r.inserted" "${ins:-0}"

        measure "ostler backup ($tag)" "/usr/bin/time -f %M -o '$D/rss' '$OSTLER' --json backup a --note $tag >'$D/manifest.json'"
        t_ostler=$T
        rec "$E.rounds.$r.ostler_s" "$T"
        rec "$E.rounds.$r.ostler_rss_kib" "$(rss "$D/rss")"
        rec "$E.rounds.$r.ostler_new_bytes" "$(manifest "$D/manifest.json" new_bytes)"
        rec "$E.rounds.$r.ostler_tables" "$(manifest "$D/manifest.json" tables)"

        previous_dump=$dumpname
        dumpname=$D/dumps/$([ "$E" = sqlite ] && echo accounts || echo bench)-$(date +%Y%m%d-%H%M%S)-$tag.sql.gz
        measure "gzip dump ($tag)" "$DUMP | gzip >'$dumpname'"
        t_dump=$T
        rec "$E.rounds.$r.gzip_dump_s" "$T"
        rec "$E.rounds.$r.gzip_dump_bytes" "$(stat -c %s "$dumpname")"
        gz_total=$(( gz_total + $(stat -c %s "$dumpname") ))
        if [ "$DISCARD_DUMPS" = 1 ]; then rm -f "$previous_dump"; fi

        measure "restic backup ($tag)" "$DUMP | /usr/bin/time -f %M -o '$D/rss' restic backup -q --compression $RESTIC_COMPRESSION --stdin --stdin-filename $E.sql --host bench --tag $tag"
        t_restic=$T
        rec "$E.rounds.$r.restic_s" "$T"
        rec "$E.rounds.$r.restic_rss_kib" "$(rss "$D/rss")"

        measure "borg create ($tag)" "$DUMP | /usr/bin/time -f %M -o '$D/rss' borg create --compression $BORG_COMPRESSION --stdin-name $E.sql '$D/borg::$tag' -"
        t_borg=$T
        rec "$E.rounds.$r.borg_s" "$T"
        rec "$E.rounds.$r.borg_rss_kib" "$(rss "$D/rss")"
        say "  round $r/$ROUNDS: ${upd:-?} updated + ${ins:-?} inserted; ostler ${t_ostler}s, gzip dump ${t_dump}s, restic ${t_restic}s, borg ${t_borg}s"
    done

    # --- totals (before the restore: its safety backup would add to ostler's repository)
    rec "$E.totals.backups" $((ROUNDS + 1))
    rec "$E.totals.ostler_repo_bytes" "$(bytes_of "$SVC/repo")"
    rec "$E.totals.ostler_state_bytes" "$(bytes_of "$SVC/.ostler")"
    if [ "$DISCARD_DUMPS" = 1 ]; then
        rec "$E.totals.gzip_dumps_bytes" "$gz_total"
        rec "$E.totals.gzip_dumps_how" "sum of the dumps' sizes (--discard-dumps)"
    else
        rec "$E.totals.gzip_dumps_bytes" "$(bytes_of "$D/dumps")"
        rec "$E.totals.gzip_dumps_how" "du -sb of the dumps dir"
    fi
    rec "$E.totals.gzip_dumps_sum_bytes" "$gz_total"
    rec "$E.totals.gzip_dumps" $((ROUNDS + 1))
    rec "$E.totals.restic_repo_bytes" "$(bytes_of "$D/restic")"
    rec "$E.totals.borg_repo_bytes" "$(bytes_of "$D/borg")"
    rec "$E.totals.ostler_repo_file_bytes" "$(file_bytes_of "$SVC/repo")"
    rec "$E.totals.restic_repo_file_bytes" "$(file_bytes_of "$D/restic")"
    rec "$E.totals.borg_repo_file_bytes" "$(file_bytes_of "$D/borg")"
    log "ostler backups:"
    "$OSTLER" backups || true
    restic snapshots || true
    borg list "$D/borg" || true

    local src
    if [ "$E" = sqlite ]; then
        rec "$E.dataset.rows_after" "$(sqlite3 "$DB" 'SELECT count(*) FROM accounts')"
        rec "$E.dataset.db_bytes_after" "$(stat -c %s "$DB")"
        src=$(checksum_sqlite "$DB")
    else
        rec "$E.dataset.rows_after" "$(psql_val -d bench -c 'SELECT count(*) FROM pgbench_accounts')"
        rec "$E.dataset.db_bytes_after" "$(psql_val -d bench -c "SELECT pg_database_size('bench')")"
        src=$(checksum_pg bench)
    fi
    log "source checksum: $src"

    # --- full restore
    say "full restores"
    local got
    if [ "$E" = sqlite ]; then
        drop_caches
        measure "ostler restore --into b" "/usr/bin/time -f %M -o '$D/rss' '$OSTLER' restore a --into b"
        rec "$E.restore.ostler.seconds" "$T"
        rec "$E.restore.ostler.rss_kib" "$(rss "$D/rss")"
        got=$(checksum_sqlite "$SVC/instances/b/data.db")
        rec "$E.restore.ostler.matches" "$([ "$got" = "$src" ] && echo true || echo false)"
        say "  ostler restore --into b: ${T}s$([ "$got" = "$src" ] || echo " -- CONTENT DIFFERS: $got vs $src")"

        drop_caches
        measure "gunzip | sqlite3" "gunzip -c '$dumpname' | /usr/bin/time -f %M -o '$D/rss' sqlite3 '$D/native.db'"
        rec "$E.restore.sqlite_gzip.seconds" "$T"
        rec "$E.restore.sqlite_gzip.rss_kib" "$(rss "$D/rss")"
        got=$(checksum_sqlite "$D/native.db")
        rec "$E.restore.sqlite_gzip.matches" "$([ "$got" = "$src" ] && echo true || echo false)"
        say "  gunzip | sqlite3: ${T}s$([ "$got" = "$src" ] || echo " -- CONTENT DIFFERS: $got vs $src")"
    else
        # The target database must exist: restore first takes a safety backup of it.
        "$PG_BIN/createdb" bench_restore
        drop_caches
        measure "ostler restore --into b" "/usr/bin/time -f %M -o '$D/rss' '$OSTLER' restore a --into b"
        rec "$E.restore.ostler.seconds" "$T"
        rec "$E.restore.ostler.rss_kib" "$(rss "$D/rss")"
        got=$(checksum_pg bench_restore)
        rec "$E.restore.ostler.matches" "$([ "$got" = "$src" ] && echo true || echo false)"
        say "  ostler restore --into b: ${T}s$([ "$got" = "$src" ] || echo " -- CONTENT DIFFERS: $got vs $src")"

        drop_caches
        measure "final pg_dump -Fc" "\"$PG_BIN/pg_dump\" -Fc -d bench -f '$D/final.dump'"
        rec "$E.restore.final_pg_dump_fc.seconds" "$T"
        rec "$E.restore.final_pg_dump_fc.bytes" "$(stat -c %s "$D/final.dump")"
        drop_caches
        measure "createdb + pg_restore" "\"$PG_BIN/createdb\" bench_native && /usr/bin/time -f %M -o '$D/rss' \"$PG_BIN/pg_restore\" -d bench_native '$D/final.dump'"
        rec "$E.restore.pg_restore.seconds" "$T"
        rec "$E.restore.pg_restore.rss_kib" "$(rss "$D/rss")"
        got=$(checksum_pg bench_native)
        rec "$E.restore.pg_restore.matches" "$([ "$got" = "$src" ] && echo true || echo false)"
        say "  pg_restore: ${T}s$([ "$got" = "$src" ] || echo " -- CONTENT DIFFERS: $got vs $src")"

        drop_caches
        measure "createdb + gunzip | psql" "\"$PG_BIN/createdb\" bench_plain && gunzip -c '$dumpname' | /usr/bin/time -f %M -o '$D/rss' \"$PG_BIN/psql\" -X -q -v ON_ERROR_STOP=1 -d bench_plain >/dev/null"
        rec "$E.restore.psql_gzip.seconds" "$T"
        rec "$E.restore.psql_gzip.rss_kib" "$(rss "$D/rss")"
        got=$(checksum_pg bench_plain)
        rec "$E.restore.psql_gzip.matches" "$([ "$got" = "$src" ] && echo true || echo false)"
        say "  gunzip | psql: ${T}s$([ "$got" = "$src" ] || echo " -- CONTENT DIFFERS: $got vs $src")"
    fi

    log "ostler journal and backups after the restore (the safety backup, the commands run):"
    "$OSTLER" journal --limit 3 || true
    "$OSTLER" backups | tail -n 3 || true

    say ""
    report "$E" >"$WORK/summary-$E.txt"
    cat "$WORK/summary-$E.txt" >&3
    cat "$WORK/summary-$E.txt"

    if [ "$KEEP" != 1 ]; then
        # Room for the next engine; the numbers are in results.tsv.
        rm -rf "$D"
        if [ "$E" = postgres ]; then
            for db in bench_restore bench_native bench_plain bench; do "$PG_BIN/dropdb" --if-exists "$db" || true; done
        fi
    fi
}

for e in "${ENGINES[@]}"; do
    bench_engine "$e"
done

rec meta.finished "$(date -Is)"
say ""
say "=== summary ($COMMAND_LINE) ==="
report >"$WORK/summary.txt"
cat "$WORK/summary.txt" >&3
cat "$WORK/summary.txt"
cp "$WORK/results.json" "$RESULTS_DIR/backup-$STAMP.json"
say "results: $WORK/results.json$([ "$KEEP" = 1 ] || echo " (removed with the work dir)"), copied to $RESULTS_DIR/backup-$STAMP.json"
say "log: $LOG"
