#!/usr/bin/env bash
# The classic sync-vs-async results table, reproduced against keel.
#
#   bench/sync-async.sh [--quick] [--out FILE]
#
# Starts `keel mock-upstream` (latency L) and `keel serve --workers 4 --threads 10` on
# 127.0.0.1, then runs hey over the classic matrix — 150 requests at 30 concurrent,
# 300/50, 1000/100 — against /sync/test and /async/test, at L = 100 ms and again at
# L = 0. Each cell gets one warm-up run first. It prints, per cell, requests/s, average
# and p95 latency, and (at L = 100 ms) the physical limit — c / L for async,
# min(c, 40) / L for sync with 40 blocking slots — and the efficiency against it.
# With a fixed latency and n requests that all start together, no server can finish in
# fewer than ceil(n / slots) rounds of L, so the table also gives that round bound,
# n / (ceil(n / slots) * L): it differs from c / L only for sync at 300/50 (300 requests
# on 40 slots need 8 rounds, so 375 req/s is the most any 40-thread server can do).
# It also checks that the mock upstream is never the bottleneck (≥ 20,000 req/s at
# latency 0 with 100 connections, measured with wrk).
#
# Everything targets 127.0.0.1, is bounded in requests and time, and stops only the
# processes it started. hey and wrk come from Debian and are installed when missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=""
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done

source "$here/lib.sh"
need hey hey
need wrk wrk
build_keel
bench_workdir

# hey_cell URL N C → "rps avg_ms p95_ms"
hey_cell() {
  local url=$1 n=$2 c=$3
  hey -n "$c" -c "$c" "$url" >/dev/null   # warm-up: open the connections
  hey -n "$n" -c "$c" "$url" >"$work/hey.txt"
  python3 - "$work/hey.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
avg = float(re.search(r"Average:\s+([\d.]+) secs", text).group(1)) * 1000
p95 = float(re.search(r"95% in ([\d.]+) secs", text).group(1)) * 1000
codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)
bad = sum(int(n) for code, n in codes if code != "200")
errors = "Error distribution" in text
if bad or errors:
    sys.stderr.write(text)
    sys.exit("non-200 responses or errors in this cell")
print(f"{rps:.1f} {avg:.1f} {p95:.1f}")
PY
}

matrix=("150x30" "300x50" "1000x100")
latencies=("100ms" "0ms")
[ "$quick" = 1 ] && matrix=("150x30")

report="$work/report.md"
{
  echo "# keel sync vs async — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)."
  echo "keel serve --workers 4 --threads 10 (40 blocking slots); hey from Debian; all on 127.0.0.1."
  echo "Command: bench/sync-async.sh"
} >"$report"

for latency in "${latencies[@]}"; do
  start "mock-$latency" "keel mock-upstream: listening on" \
    mock-upstream --listen 127.0.0.1:0 --latency "$latency"
  mock_url=$STARTED_URL
  start "serve-$latency" "keel serve: listening on" \
    serve --bind 127.0.0.1:0 --workers 4 --threads 10 --log-level warn \
    --upstream-url "$mock_url/todos/1"
  app_url=$STARTED_URL
  latency_ms=${latency%ms}
  {
    echo
    echo "## Upstream latency L = $latency"
    echo
    if [ "$latency_ms" != 0 ]; then
      echo "| Test | Mode | RPS | Avg latency | P95 latency | Limit min(c,slots)/L | Efficiency | Round bound | Efficiency vs bound |"
      echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    else
      echo "| Test | Mode | RPS | Avg latency | P95 latency |"
      echo "|---|---|---:|---:|---:|"
    fi
  } >>"$report"
  for mode in sync async; do
    for cell in "${matrix[@]}"; do
      n=${cell%x*}; c=${cell#*x}
      read -r rps avg p95 < <(hey_cell "$app_url/$mode/test" "$n" "$c")
      if [ "$latency_ms" != 0 ]; then
        slots=$c
        [ "$mode" = sync ] && [ "$c" -gt 40 ] && slots=40
        limit=$(python3 -c "print(f'{$slots / ($latency_ms / 1000):.0f}')")
        eff=$(python3 -c "print(f'{100 * $rps / $limit:.1f} %')")
        bound=$(python3 -c "import math; print(f'{$n / (math.ceil($n / $slots) * $latency_ms / 1000):.0f}')")
        beff=$(python3 -c "print(f'{100 * $rps / $bound:.1f} %')")
        echo "| $n/$c | $mode | $rps | $avg ms | $p95 ms | $limit | $eff | $bound | $beff |" >>"$report"
      else
        echo "| $n/$c | $mode | $rps | $avg ms | $p95 ms |" >>"$report"
      fi
      echo "L=$latency $mode $n/$c: $rps req/s, avg $avg ms, p95 $p95 ms" >&2
    done
  done
  if [ "$latency_ms" = 0 ]; then
    wrk -t2 -c100 -d5s "$mock_url/todos/1" >"$work/wrk.txt"
    mock_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
    {
      echo
      echo "Mock upstream alone (wrk -t2 -c100 -d5s, latency 0): $mock_rps req/s (needs ≥ 20000)."
    } >>"$report"
  fi
  # Stop this latency's pair before the next one, so they never share the cores.
  kill "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
done

cat "$report"
if [ -n "$out" ]; then
  cp "$report" "$out"
  echo "written to $out" >&2
fi
