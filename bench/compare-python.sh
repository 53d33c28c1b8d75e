#!/usr/bin/env bash
# keel against the Python reference stack, the classic table, in one run per latency.
#
#   bench/compare-python.sh [--latencies "100ms 0ms"] [--matrix 150x30,300x50,1000x100]
#
# For each upstream latency L: starts `keel mock-upstream --latency L` (the one upstream
# every target calls) and `keel serve --workers 4 --threads 10`, then runs
# bench/peers/run.sh, which starts Django under gunicorn (4 x 10, sync view) and uvicorn
# (4 workers, async view), and nginx in front of gunicorn, and runs `keel compare` over
# all of them with keel-sync and keel-async passed through. Results land in
# bench/runs/<date>-compare-L<latency>/ (report.md, results.json, charts).
# Everything is on 127.0.0.1, bounded in time, and stopped by pid.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
latencies="100ms 0ms"
matrix="150x30,300x50,1000x100"
while [ $# -gt 0 ]; do
  case "$1" in
    --latencies) latencies="$2"; shift ;;
    --matrix) matrix="$2"; shift ;;
    *) echo "usage: $0 [--latencies \"100ms 0ms\"] [--matrix 150x30,...]" >&2; exit 2 ;;
  esac
  shift
done

source "$here/lib.sh"
build_keel
bench_workdir

for latency in $latencies; do
  start mock "keel mock-upstream: listening on" mock-upstream --listen 127.0.0.1:0 --latency "$latency"
  mock=$STARTED_URL
  start serve "keel serve: listening on" serve --bind 127.0.0.1:0 --workers 4 --threads 10 \
    --log-level warn --upstream-url "$mock/todos/1"
  app=$STARTED_URL
  "$here/peers/run.sh" --upstream-latency "$latency" --matrix "$matrix" \
    --mock-url "$mock/todos/1" \
    --out "$root/bench/runs/$(date -u +%Y-%m-%d)-compare-L$latency" \
    --target "keel-sync=$app/sync/test@40" --target "keel-async=$app/async/test" \
    --ratio keel-sync/django-sync --ratio keel-async/django-async
  kill "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
done
