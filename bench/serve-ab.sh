#!/usr/bin/env bash
# Two builds of `keel serve` side by side: requests/s and CPU time per request of the app
# server's own request path (accept loop, per-request client address, keep-alive
# tracking, router, site page).
#
#   KEEL_A=/path/to/old/keel KEEL_B=/path/to/new/keel bench/serve-ab.sh \
#     [--duration 5s] [--rounds 5] [--connections 50] [--out FILE]
#
# Starts `keel serve --bind 127.0.0.1:0 --workers 2` from each binary, each on its own
# SQLite file with the sample posts, and loads two paths on both: the home page `/` (the
# site, its page cache warm: mostly the server's and the template's cost) and
# `/metrics` (no site middleware: mostly the server's own cost). Each round runs the
# four cells in a rotated order after a 1 s warm-up; the table gives the median over the
# rounds. CPU per request is the server's user + system ticks (every thread, /proc) over
# the requests wrk completed; wrk shares the 2 cores, so requests/s moves with it while
# CPU per request is the steadier number.
#
# Everything on 127.0.0.1, bounded (about 12 s per round), and it stops only the
# processes it started.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
command_line="bench/serve-ab.sh${*:+ $*}"
duration=5s
rounds=5
connections=50
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --connections) connections="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "usage: KEEL_A=BIN KEEL_B=BIN $0 [--duration 5s] [--rounds 5] [--connections 50] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
: "${KEEL_A:?set KEEL_A to the first keel binary}"
: "${KEEL_B:?set KEEL_B to the second keel binary}"

# shellcheck source=lib.sh
source "$here/lib.sh"
need wrk wrk
bench_workdir

# `start` must not run in a subshell (the pid would be lost): run it here.
start_in() { # name binary
  mkdir -p "$work/$1"
  keel=$2
  pushd "$work/$1" >/dev/null
  KEEL_LOG_LEVEL=warn start "$1" "keel serve: listening on" serve --bind 127.0.0.1:0 \
    --workers 2 --threads 4 --database-url "sqlite://$work/$1/keel.db"
  popd >/dev/null
}

start_in a "$KEEL_A"; pid_a=$STARTED_PID; url_a=$STARTED_URL
start_in b "$KEEL_B"; pid_b=$STARTED_PID; url_b=$STARTED_URL

ticks() { # pid: user + system ticks of every thread
  local total=0 f
  for f in /proc/"$1"/task/*/stat; do
    read -r -a s <"$f" || continue
    total=$((total + s[13] + s[14]))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

for u in "$url_a/" "$url_b/" "$url_a/metrics" "$url_b/metrics"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$u")
  [ "$code" = 200 ] || { echo "$u answered $code" >&2; exit 1; }
done

results="$work/results.tsv"
: >"$results"
cells=("a /" "b /" "a /metrics" "b /metrics")
for round in $(seq "$rounds"); do
  for i in 0 1 2 3; do
    cell=${cells[$(((i + round) % 4))]}
    which=${cell% *}; path=${cell#* }
    if [ "$which" = a ]; then url=$url_a; pid=$pid_a; else url=$url_b; pid=$pid_b; fi
    wrk -t1 -c"$connections" -d1s "$url$path" >/dev/null 2>&1
    before=$(ticks "$pid")
    report=$(wrk -t1 -c"$connections" -d"$duration" "$url$path" 2>&1)
    after=$(ticks "$pid")
    requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$report")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$report")
    errors=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$report")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$which" "$path" "$rps" "$requests" "$((after - before))" "${errors:-0}" >>"$results"
  done
done

report=$(python3 - "$results" "$hz" "$KEEL_A" "$KEEL_B" "$command_line" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hz = int(sys.argv[2])
cells = {}
for which, path, rps, requests, ticks, errors in rows:
    c = cells.setdefault((which, path), {"rps": [], "us": [], "errors": 0})
    c["rps"].append(float(rps))
    c["us"].append(int(ticks) / hz / max(int(requests), 1) * 1e6)
    c["errors"] += int(errors)
print(f"# keel serve A/B ({sys.argv[5]})\n")
print(f"A = {sys.argv[3]}  \nB = {sys.argv[4]}\n")
print("| path | A req/s | B req/s | B/A req/s | A CPU µs/req | B CPU µs/req | B/A CPU | errors A/B |")
print("|---|---|---|---|---|---|---|---|")
for path in ["/", "/metrics"]:
    a, b = cells[("a", path)], cells[("b", path)]
    ar, br = statistics.median(a["rps"]), statistics.median(b["rps"])
    au, bu = statistics.median(a["us"]), statistics.median(b["us"])
    print(f"| `{path}` | {ar:,.0f} | {br:,.0f} | {br/ar:.2f} | {au:.1f} | {bu:.1f} | {bu/au:.2f} | {a['errors']}/{b['errors']} |")
print(f"\nMedians over {len(cells[('a', '/')]['rps'])} rounds; CPU is the server's own (all threads).")
EOF
)
echo "$report"
if [ -n "$out" ]; then
  echo "$report" >"$root/$out"
  echo "written to $out" >&2
fi
