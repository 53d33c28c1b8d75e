#!/usr/bin/env bash
# The blog site's pages under load, on SQLite and on PostgreSQL.
#
#   bench/site.sh [--duration 5s] [--rounds 5] [--connections 50] [--page-cache 1s] [--out FILE]
#
# `--page-cache 1s` is keel's default (the site reuses a page's database reads for up to a
# second); `--page-cache 0s` reads the database on every request and so measures it.
# Starts two `keel up --listen 127.0.0.1:0 --no-rate-limit --no-access-log`, one on a
# SQLite file (KEEL_DATABASE_URL=sqlite://$work/keel.db) and one on a fresh database of
# the local PostgreSQL (127.0.0.1:5432, trust auth, user postgres: CREATE DATABASE
# keel_bench_PID, dropped again on exit). Both add the sample posts at their first start.
# When psql or the server is not there, the PostgreSQL rows say SKIPPED and the rest runs.
#
# Two pages, each as an anonymous visitor (no cookies, so every answer also sets a fresh
# CSRF cookie): the home page `/` and the post `/posts/welcome-to-keel/`. Each must answer
# 200 to curl first; its body size is recorded. Each page gets a 2 s warm-up, then
# `wrk -t2 -cC -dD --latency` with a small Lua `done` hook that prints the requests, the
# errors and the p50/p90/p95/p99 of wrk's own latency histogram (wrk's --latency table
# has no p95). Rounds are short and repeated, and each round visits the four cells in a
# rotated order, so drift on a shared machine falls on every cell; the table gives the
# median over the rounds, and the errors (socket errors plus non-2xx/3xx answers) summed.
#
# For every run it also samples /proc: the CPU time of the keel process, of the postgres
# backends of its database (from pg_stat_activity), of wrk, and of the whole machine, so
# the report can say where the cores went and how much of them other work took.
#
# Everything is on 127.0.0.1, bounded in time (about 20 s per round plus start-up:
# about 2 minutes with the defaults), and stops only the processes it started.
# wrk comes from Debian and is installed when missing. Build with your own
# CARGO_TARGET_DIR to stay off other builds' lock:
#   CARGO_TARGET_DIR=/var/tmp/keel-bench bench/site.sh --out bench/runs/DATE-site.md
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
command_line="bench/site.sh${*:+ $*}"
duration=5s
rounds=5
connections=50
page_cache=1s
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --connections) connections="$2"; shift ;;
    --page-cache) page_cache="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--duration 5s] [--rounds 5] [--connections 50] [--page-cache 1s|0s] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
case "$duration" in
  *s) seconds=${duration%s} ;;
  *) seconds=$duration ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 4 ]; then
  echo "--duration takes whole seconds, at least 4 (e.g. 5s)" >&2; exit 2
fi
duration=${seconds}s
[ -n "$out" ] && out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

source "$here/lib.sh"
need wrk wrk
need curl curl
build_keel
bench_workdir
SECONDS=0

# The PostgreSQL database is dropped after bench_cleanup has stopped the keel using it.
pg_db=""
site_cleanup() {
  bench_cleanup
  cd /   # psql refuses to run in the work dir bench_cleanup has just removed
  if [ -n "$pg_db" ]; then
    PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 \
      || echo "could not drop the PostgreSQL database $pg_db" >&2
  fi
}
trap site_cleanup EXIT
trap 'exit 130' INT TERM

# keel runs from the work dir with no KEEL_* from the caller: only what is set here counts.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^KEEL_' || true)
export KEEL_STATIC_ROOT="$work/static"
# The site's one-second micro-cache of page reads (keel's default); 0s reads the database
# on every request, which is what measures the database path itself.
export KEEL_PAGE_CACHE="$page_cache"
cd "$work"

cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "KEELBENCH %d %d %d %d %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
LUA

# cpu_snapshot KEEL_PID WRK_PID [BACKEND_PID...]
#   → "keel_ticks wrk_ticks backend_ticks machine_busy_ticks uptime_seconds"
# The backends are the postgres processes serving this run's database. Samples are taken
# inside the run (from 1 s after its start to 1 s before its end), while every one of
# these processes is alive: when wrk stops, requests still in flight are cancelled, and
# keel closes the pool connections they held, so those backends exit and their CPU time
# could no longer be read.
cpu_snapshot() {
  python3 - "$@" <<'PY'
import os, sys
def ticks(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0
    f = s[s.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])
pg = sum(ticks(pid) for pid in sys.argv[3:])
cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
busy = sum(cpu[:8]) - cpu[3] - cpu[4]   # all but idle and iowait; guest is inside user
print(ticks(sys.argv[1]), ticks(sys.argv[2]), pg, busy, open("/proc/uptime").read().split()[0])
PY
}

# The servers. start() must run in this shell (not in $( )), so its pid is kept.
declare -A url pid
dbs=(sqlite)
KEEL_DATABASE_URL="sqlite://$work/keel.db" start sqlite "keel up: serving on" \
  up --listen 127.0.0.1:0 --no-rate-limit --no-access-log
url[sqlite]=$STARTED_URL; pid[sqlite]=$STARTED_PID

pg_note=""
if ! command -v psql >/dev/null 2>&1; then
  pg_note="SKIPPED: psql is not installed"
elif ! PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U postgres -qAtc "SELECT 1" >/dev/null 2>&1; then
  pg_note="SKIPPED: no PostgreSQL answers on 127.0.0.1:5432 as postgres"
else
  pg_db="keel_bench_$$"
  psql -h 127.0.0.1 -U postgres -qAtc "CREATE DATABASE $pg_db" >/dev/null
  KEEL_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$pg_db" start pg "keel up: serving on" \
    up --listen 127.0.0.1:0 --no-rate-limit --no-access-log
  url[pg]=$STARTED_URL; pid[pg]=$STARTED_PID
  dbs+=(pg)
  pg_version=$(psql -h 127.0.0.1 -U postgres -qAtc "SHOW server_version")
fi
[ -n "$pg_note" ] && echo "PostgreSQL $pg_note" >&2

pages=("/" "/posts/welcome-to-keel/")
declare -A bytes
for db in "${dbs[@]}"; do
  for page in "${pages[@]}"; do
    read -r code size < <(curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "${url[$db]}$page")
    if [ "$code" != 200 ]; then
      echo "$db $page answered $code, not 200:" >&2
      curl -s -i "${url[$db]}$page" | head -40 >&2
      exit 1
    fi
    bytes[$db,$page]=$size
    wrk -t2 -c"$connections" -d2s "${url[$db]}$page" >/dev/null   # warm-up
  done
done

cells=()
for db in "${dbs[@]}"; do for page in "${pages[@]}"; do cells+=("$db $page"); done; done
runs="$work/runs.tsv"
: >"$runs"
for round in $(seq "$rounds"); do
  n=${#cells[@]}
  for i in $(seq 0 $((n - 1))); do
    read -r db page <<<"${cells[$(((i + round - 1) % n))]}"
    wrk -t2 -c"$connections" -d"$duration" --timeout 5s --latency \
      -s "$work/report.lua" "${url[$db]}$page" >"$work/wrk.txt" &
    wrk_pid=$!
    pids+=("$wrk_pid")
    sleep 1
    backends=()
    if [ "$db" = pg ]; then
      read -r -a backends < <(psql -h 127.0.0.1 -U postgres -qAtc \
        "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = '$pg_db'")
    fi
    before=$(cpu_snapshot "${pid[$db]}" "$wrk_pid" "${backends[@]}")
    sleep $((seconds - 2))
    after=$(cpu_snapshot "${pid[$db]}" "$wrk_pid" "${backends[@]}")
    wait "$wrk_pid"
    unset 'pids[-1]'
    line=$(grep '^KEELBENCH ' "$work/wrk.txt") || { cat "$work/wrk.txt" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$db" "$page" "$round" "${line#KEELBENCH }" \
      "$before" "$after" >>"$runs"
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
    echo "round $round $db $page: $rps req/s" >&2
  done
done

# A last look: every page still answers 200.
for db in "${dbs[@]}"; do
  for page in "${pages[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$db]}$page")
    [ "$code" = 200 ] || echo "after the load, $db $page answered $code" >&2
  done
done

rev=$(git -C "$root" rev-parse --short HEAD)
dirty=$(git -C "$root" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock | awk '{print $2}' | paste -sd, -)
report="$work/report.md"
python3 - "$runs" "$rev" "$dirty" "$command_line" "$duration" "$rounds" "$connections" \
  "${bytes[sqlite,/]}" "${bytes[sqlite,/posts/welcome-to-keel/]}" \
  "${bytes[pg,/]:-}" "${bytes[pg,/posts/welcome-to-keel/]:-}" "$pg_note" "${pg_version:-}" \
  "$(wrk --version 2>&1 | head -1 | awk '{print $2}')" "$SECONDS" >"$report" <<'PY'
import datetime, os, platform, statistics, sys
(runs, rev, dirty, cmd, duration, rounds, conns, sb_home, sb_post, pb_home, pb_post,
 pg_note, pg_version, wrk_version, elapsed) = sys.argv[1:16]
hz = os.sysconf("SC_CLK_TCK")
sizes = {("sqlite", "/"): sb_home, ("sqlite", "/posts/welcome-to-keel/"): sb_post,
         ("pg", "/"): pb_home, ("pg", "/posts/welcome-to-keel/"): pb_post}
rows = {}
for line in open(runs):
    db, page, rnd, wrk, before, after = line.rstrip("\n").split("\t")
    w = list(map(int, wrk.split()))
    b = list(map(float, before.split())); a = list(map(float, after.split()))
    secs = w[1] / 1e6
    # CPU is sampled over the steady middle of the run; per request, it is divided by
    # the requests/s of the whole run.
    window = a[4] - b[4]
    keel, wrk_cpu, pg, busy = (max(a[i] - b[i], 0) / hz for i in range(4))
    per_req = window * w[0] / secs
    r = dict(round=int(rnd), rps=w[0] / secs, requests=w[0], errors=sum(w[2:7]),
             status=w[5], p50=w[7], p90=w[8], p95=w[9], p99=w[10], max=w[11],
             keel=100 * keel / window, pg=100 * pg / window, wrk=100 * wrk_cpu / window,
             other=100 * max(busy - keel - pg - wrk_cpu, 0) / window, busy=100 * busy / window,
             keel_us=1e6 * keel / per_req if w[0] else 0, pg_us=1e6 * pg / per_req if w[0] else 0)
    rows.setdefault((db, page), []).append(r)

def ms(us): return f"{us / 1000:.2f} ms"
def med(rs, k): return statistics.median(r[k] for r in rs)
names = {"sqlite": "SQLite", "pg": "PostgreSQL"}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")) / 1048576
load = open("/proc/loadavg").read().split()[:3]
print(f"# keel site pages, SQLite and PostgreSQL — {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%MZ}")
print()
print(f"Machine: nproc {os.cpu_count()} ({cpu}), {mem:.0f} GiB, Linux {platform.release()}; "
      f"load average {' '.join(load)} at the end. The cores are shared with other engineers' builds.")
print(f"keel: {rev}" + (f" plus uncommitted changes in {dirty}" if dirty else "") +
      f", release build; wrk {wrk_version} from Debian; "
      + (f"PostgreSQL {pg_version} on 127.0.0.1:5432" if pg_version else "PostgreSQL " + pg_note) + ".")
print(f"Server: `keel up --listen 127.0.0.1:0 --no-rate-limit --no-access-log`, KEEL_DATABASE_URL "
      "sqlite://WORK/keel.db or postgres://postgres@127.0.0.1:5432/keel_bench_PID, KEEL_STATIC_ROOT=WORK/static, "
      f"KEEL_PAGE_CACHE={os.environ.get('KEEL_PAGE_CACHE', '1s')}.")
print(f"Load: `wrk -t2 -c{conns} -d{duration} --timeout 5s --latency -s report.lua URL`, anonymous "
      f"(no cookies), 2 s warm-up per page; {rounds} rounds, cells rotated each round; median of the rounds.")
print(f"Command: {cmd} ({elapsed} s after the build)")
print()
print("| database | page | requests/s | p50 | p95 | p99 | errors | page bytes |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for db in ("sqlite", "pg"):
    for page in ("/", "/posts/welcome-to-keel/"):
        rs = rows.get((db, page))
        if not rs:
            print(f"| {names[db]} | `{page}` | {pg_note} | | | | | |")
            continue
        errs = sum(r["errors"] for r in rs)
        total = sum(r["requests"] for r in rs)
        print(f"| {names[db]} | `{page}` | {med(rs, 'rps'):,.0f} | {ms(med(rs, 'p50'))} | "
              f"{ms(med(rs, 'p95'))} | {ms(med(rs, 'p99'))} | {errs} of {total:,} | {sizes[(db, page)]} |")
print()
for page in ("/", "/posts/welcome-to-keel/"):
    if ("sqlite", page) in rows and ("pg", page) in rows:
        ratio = med(rows[("sqlite", page)], "rps") / med(rows[("pg", page)], "rps")
        print(f"- SQLite / PostgreSQL requests/s on `{page}`: {ratio:.2f}×")
print()
print("Where the CPU went, sampled from 1 s into each run to 1 s before its end (median over the rounds;")
print("100 % = one core, 200 % = the machine):")
print()
print("| database | page | keel | postgres | wrk | other work on the machine | keel CPU per request | postgres CPU per request | requests per CPU-second of keel + postgres |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for (db, page), rs in rows.items():
    print(f"| {names[db]} | `{page}` | {med(rs, 'keel'):.0f} % | {med(rs, 'pg'):.0f} % | {med(rs, 'wrk'):.0f} % | "
          f"{med(rs, 'other'):.0f} % | {med(rs, 'keel_us'):.0f} µs | {med(rs, 'pg_us'):.0f} µs | "
          f"{1e6 / (med(rs, 'keel_us') + med(rs, 'pg_us')):,.0f} |")
print()
print("postgres counts the backends of this run's database (keel's pool), read from pg_stat_activity. Other work is")
print("the machine's busy time less keel, postgres and wrk: other engineers' builds, and kernel time")
print("(loopback softirq) that no process is charged with. The last column does not depend on how")
print("much of the cores the run got, so it compares the two databases more steadily than requests/s.")
print()
print("Every round:")
print()
print("| round | database | page | requests/s | p50 | p90 | p95 | p99 | max | errors | keel CPU | other work |")
print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (db, page), rs in sorted(rows.items(), key=lambda kv: (kv[0][0] != "sqlite", kv[0][1])):
    for r in rs:
        print(f"| {r['round']} | {names[db]} | `{page}` | {r['rps']:,.0f} | {ms(r['p50'])} | {ms(r['p90'])} | "
              f"{ms(r['p95'])} | {ms(r['p99'])} | {ms(r['max'])} | {r['errors']} | {r['keel']:.0f} % | {r['other']:.0f} % |")
PY
cat "$report"
if [ -n "$out" ]; then cp "$report" "$out"; echo "written to $out" >&2; fi
