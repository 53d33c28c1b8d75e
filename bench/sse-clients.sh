#!/usr/bin/env bash
# Thousands of Server-Sent Events clients on one keel process, measured with
# `keel bench --sse`: publish → receive latency and resident memory per idle client.
#
#   bench/sse-clients.sh [--clients "1000 5000 10000"] [--events 20] [--interval 100ms] [--out FILE]
#
# For each N, on freshly started processes (so memory freed by an earlier run cannot hide
# in the allocator): one run holds N idle streams open (--events 0) while VmRSS is
# sampled, giving memory per client = (peak RSS − RSS before) / N for keel serve and, on
# the edge path, for keel edge; a second run publishes --events messages (POST
# /api/publish, --interval apart) to the N streams and reports delivery latency p50/p99,
# losses and reconnects. Both directly against `keel serve` and through `keel edge`. Streams are opened at 2000/s. Everything is on 127.0.0.1,
# bounded in time, and stopped by pid; the file limit is raised for this shell only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
clients="1000 5000 10000"
events=20
interval=100ms
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift ;;
    --events) events="$2"; shift ;;
    --interval) interval="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--clients \"1000 5000 10000\"] [--events 50] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done

# Each stream is a socket in the load generator, in keel serve, and twice in the edge.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)" >&2

source "$here/lib.sh"
build_keel
bench_workdir

token="sse-bench-token-$(date +%s%N)"
export KEEL_PUBLISH_TOKEN=$token KEEL_STREAM_MAX_CLIENTS=50000 KEEL_STREAM_MAX_CLIENTS_PER_IP=50000

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

report="$work/report.md"
{
  echo "# keel SSE fan-out — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr). keel serve (in-memory broker) and keel edge, release build."
  echo "Command: bench/sse-clients.sh --clients \"$clients\" --events $events"
  echo
  echo "Events: $events per run, $interval apart, to every stream."
  echo
  echo "| path | clients | connected | delivered / expected | lost | p50 | p99 | max | serve RSS / idle client | edge RSS / idle client |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$report"

for path in direct edge; do
  for n in $clients; do
    # Through the edge each stream holds two sockets there (client and upstream side).
    if [ $path = edge ] && [ $((n * 2 + 100)) -gt "$(ulimit -n)" ]; then
      echo "| edge | $n | skipped: needs $((n * 2)) open files, the limit here is $(ulimit -n) | | | | | | | |" >>"$report"
      continue
    fi
    start serve "keel serve: listening on" serve --bind 127.0.0.1:0 --log-level warn
    serve_pid=$STARTED_PID serve_url=$STARTED_URL
    base=$serve_url
    edge_pid=""
    if [ $path = edge ]; then
      start edge "keel edge: listening on" \
        edge --listen 127.0.0.1:0 --upstream "${serve_url#http://}" --rate off \
        --no-access-log --health-check off --log-level warn
      edge_pid=$STARTED_PID base=$STARTED_URL
    fi
    # 1. Idle streams: memory per connected client.
    before=$(rss_kib "$serve_pid")
    edge_before=0; [ -n "$edge_pid" ] && edge_before=$(rss_kib "$edge_pid")
    edge_peak=$edge_before
    "$keel" bench --sse "$base/stream/" --clients "$n" --events 0 --settle 3s \
      --connect-rate 2000 --publish-url "$serve_url/api/publish" --token "$token" \
      -o json >"$work/idle.json" &
    bench_pid=$!
    peak=$before
    while kill -0 "$bench_pid" 2>/dev/null; do
      now=$(rss_kib "$serve_pid"); [ "$now" -gt "$peak" ] && peak=$now
      if [ -n "$edge_pid" ]; then
        now=$(rss_kib "$edge_pid"); [ "$now" -gt "$edge_peak" ] && edge_peak=$now
      fi
      sleep 0.2
    done
    wait "$bench_pid" || true
    sleep 1
    # 2. Publish → receive latency to n streams.
    "$keel" bench --sse "$base/stream/" --clients "$n" --events "$events" --interval "$interval" \
      --connect-rate 2000 --publish-url "$serve_url/api/publish" --token "$token" \
      --settle 3s -o json >"$work/live.json"
    python3 - "$work/idle.json" "$work/live.json" "$path" "$n" "$before" "$peak" "$edge_before" "$edge_peak" >>"$report" <<'PY'
import json, sys
idle, live = (json.load(open(p)) for p in sys.argv[1:3])
path, n, before, peak = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
edge_before, edge_peak = int(sys.argv[7]), int(sys.argv[8])
connected = idle["clients_connected"]
per_client = (peak - before) / connected if connected else float("nan")
edge_per_client = f"{(edge_peak - edge_before) / connected:.1f} KiB" if path == "edge" and connected else "-"
lat = live["delivery_latency"]
fmt = lambda v: "-" if v is None else f"{v:.1f} ms"
print(f"| {path} | {n} | {live['clients_connected']} | {live['delivered']} / {live['expected_deliveries']} "
      f"| {live['lost']} | {fmt(lat.get('p50_ms'))} | {fmt(lat.get('p99_ms'))} | {fmt(lat.get('max_ms'))} "
      f"| {per_client:.1f} KiB | {edge_per_client} |")
PY
    tail -1 "$report" >&2
    kill "$serve_pid" ${edge_pid:+"$edge_pid"} 2>/dev/null || true
    wait "$serve_pid" ${edge_pid:+"$edge_pid"} 2>/dev/null || true
    sleep 1
  done
done

{
  echo
  echo "RSS per idle client: (peak VmRSS while N streams were open, minus VmRSS before) / N, each on a fresh process."
  echo "Latency: from the POST to /api/publish leaving the load generator to the event's arrival on each stream."
} >>"$report"
cat "$report"
if [ -n "$out" ]; then cp "$report" "$out"; echo "written to $out" >&2; fi
