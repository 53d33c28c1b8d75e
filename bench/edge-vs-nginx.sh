#!/usr/bin/env bash
# keel edge against nginx, side by side in one run on this machine.
#
#   bench/edge-vs-nginx.sh [--duration 10s] [--rounds 3] [--access-log] [--out FILE]
#
# 1. Static: the same 9 KB CSS file from the same collected root, `wrk -t2 -c100`.
# 2. Proxy: both in front of the same backend (`keel mock-upstream --latency 0`),
#    `wrk -t2 -c100` for requests/s, and `wrk -t1 -c1 --latency` for the median latency
#    each adds over calling the backend directly.
# In each round every measurement runs on both servers back to back, the first one
# alternating between rounds, so drift on the shared machine hits both; the report gives
# the median of the rounds, the keel/nginx ratio of those medians, and the ratio within
# each round with its median and range. With each requests/s run it
# also gives the CPU time per request of the server (all its threads and processes, from
# /proc), of wrk (bash's `time`) and of the machine's softirqs (/proc/stat): the kernel
# delivers each loopback segment in softirq context inside the sender's syscall and
# charges it to no process. wrk and that delivery share the 2 cores with the server, so
# the requests/s ratio is (server + wrk + softirq) / (the same with the other server),
# while CPU per request of the server compares the servers alone.
#
# nginx is configured as a careful operator would for this job (not a strawman):
# worker_processes auto, a reuseport listener per worker, sendfile, open_file_cache,
# upstream keepalive with HTTP/1.1.
# Both run without rate limits, since every request comes from one address, and without
# access logs unless --access-log: then each writes the combined format to a file (nginx
# with `buffer=64k flush=1s`, its batched form; keel's log thread batches on its own). Everything listens on 127.0.0.1 and is stopped by pid at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
duration=10s
rounds=3
out=""
access_log=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --out) out="$2"; shift ;;
    --access-log) access_log=1 ;;
    *) echo "usage: $0 [--duration 10s] [--rounds 3] [--access-log] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done

source "$here/lib.sh"
need wrk wrk
need nginx nginx-light
build_keel
bench_workdir

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

# The static file: 9 KB of ordinary CSS, collected as a real deploy would.
mkdir -p "$work/src/css"
python3 - "$work/src/css/site.css" <<'PY'
import sys
rules = []
i = 0
while sum(len(r) for r in rules) < 9 * 1024:
    rules.append(f".block-{i} {{ margin: {i % 7}px {i % 5}px; padding: 0 {i % 3}rem; color: #{(i * 2654435761) % 0xffffff:06x}; }}\n")
    i += 1
open(sys.argv[1], "w").write("".join(rules))
PY
"$keel" collectstatic --static-root "$work/static" --source "$work/src" >/dev/null
css_bytes=$(stat -c %s "$work/static/css/site.css")

backend_port=$(free_port)
"$keel" mock-upstream --listen "127.0.0.1:$backend_port" --latency 0 --log-level warn >/dev/null 2>&1 &
pids+=($!)
wait_port "$backend_port"

keel_log=(--no-access-log)
nginx_log="access_log off;"
if [ "$access_log" = 1 ]; then
  mkdir -p "$work/keel-logs"
  keel_log=(--log-dir "$work/keel-logs")
  nginx_log="access_log $work/nginx/logs/access.log combined buffer=64k flush=1s;"
fi

keel_port=$(free_port)
"$keel" edge --listen "127.0.0.1:$keel_port" --upstream "127.0.0.1:$backend_port" \
  --static-root "$work/static" --rate off "${keel_log[@]}" --health-check off \
  --log-level warn >/dev/null 2>&1 &
pids+=($!)
keel_pid=$!
wait_port "$keel_port"

nginx_port=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
user root;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  $nginx_log
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000;
  open_file_cache max=1000 inactive=60s;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  upstream app {
    server 127.0.0.1:$backend_port;
    keepalive 128;
  }
  server {
    # One listening socket per worker, as keel has: without it the kernel hands most
    # connections to one worker (92 of 100 seen here), and nginx's result depends on
    # how that split falls in each run.
    listen 127.0.0.1:$nginx_port reuseport;
    location /static/ { alias $work/static/; }
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
nginx_master=$!
wait_port "$nginx_port"
# nginx's master and its workers.
nginx_pids=("$nginx_master")
for stat in /proc/[0-9]*/stat; do
  if [ "$(awk '{print $4}' "$stat" 2>/dev/null)" = "$nginx_master" ]; then
    pid=${stat#/proc/}; nginx_pids+=("${pid%/stat}")
  fi
done

# Same bytes from both before measuring anything.
for port in "$keel_port" "$nginx_port"; do
  got=$(curl -s "http://127.0.0.1:$port/static/css/site.css" | wc -c)
  [ "$got" = "$css_bytes" ] || { echo "static file on :$port is $got bytes, expected $css_bytes" >&2; exit 1; }
  curl -sf "http://127.0.0.1:$port/todos/1" >/dev/null || { echo "proxy on :$port failed" >&2; exit 1; }
done

# CPU ticks (user + system) used so far by every thread of the given processes.
cpu_ticks() {
  local total=0 stat
  for pid in "$@"; do
    for stat in /proc/"$pid"/task/*/stat; do
      total=$((total + $(awk '{print $14 + $15}' "$stat")))
    done
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
# Softirq ticks of the whole machine so far: the kernel's loopback delivery of every
# segment (run inside the sender's syscall, yet charged to no process).
softirq_ticks() { awk '/^cpu / {print $8}' /proc/stat; }
# `wrk -t2 -c100` on URL; prints "req/s server-µs-per-request wrk-µs-per-request
# softirq-µs-per-request" for the server made of PIDS.
measure() {
  local url=$1; shift
  local before after sbefore safter out
  before=$(cpu_ticks "$@"); sbefore=$(softirq_ticks)
  out=$( { TIMEFORMAT='WRKCPU %U %S'; time wrk -t2 -c100 -d"$duration" "$url"; } 2>&1 )
  after=$(cpu_ticks "$@"); safter=$(softirq_ticks)
  echo "$out" | awk -v b="$before" -v a="$after" -v sb="$sbefore" -v sa="$safter" -v hz="$hz" '
    /requests in/ {n = $1} /Requests\/sec/ {r = $2} /^WRKCPU/ {w = $2 + $3}
    END {printf "%s %.2f %.2f %.2f %d\n", r, (a - b) / hz * 1e6 / n, w * 1e6 / n, (sa - sb) / hz * 1e6 / n, n}'
}
# With --access-log: every request of the last measurement must have its line (a log
# that drops lines would be measured doing less work); then the file is emptied, as
# logrotate would, so a long run does not fill the disk.
check_log() {
  local server=$1 requests=$2 file lines
  file="$work/keel-logs/access.log"
  [ "$server" = nginx ] && file="$work/nginx/logs/access.log"
  sleep 1.5 # nginx flushes its buffer every second
  lines=$(wc -l <"$file")
  if [ "$lines" -lt "$requests" ]; then
    echo "$server logged $lines lines for $requests requests" >&2
    exit 1
  fi
  : >"$file"
}
# Median latency at one connection, in microseconds.
p50_us() {
  wrk -t1 -c1 -d"$duration" --latency "$1" | awk '/^ +50%/ {
    v=$2; if (v ~ /us$/) { sub(/us$/,"",v); print v }
    else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 }
    else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 } }'
}

declare -A results
port_of() { if [ "$1" = keel ]; then echo "$keel_port"; else echo "$nginx_port"; fi; }
procs_of() { if [ "$1" = keel ]; then echo "$keel_pid"; else echo "${nginx_pids[@]}"; fi; }
for round in $(seq "$rounds"); do
  # Each measurement runs on both servers back to back, the first one alternating by
  # round (keel nginx, nginx keel, ...), so the pair of a round sees the same machine
  # and drift during a round favours neither.
  if [ $((round % 2)) = 1 ]; then order=(keel nginx); else order=(nginx keel); fi
  for what in static proxy; do
    for server in "${order[@]}"; do
      url="http://127.0.0.1:$(port_of $server)/todos/1"
      [ $what = static ] && url="http://127.0.0.1:$(port_of $server)/static/css/site.css"
      # shellcheck disable=SC2046 # pids, split on purpose
      read -r r c w q n < <(measure "$url" $(procs_of $server))
      [ "$access_log" = 1 ] && check_log "$server" "$n"
      results[$server,$what,$round]=$r
      results[$server,$what-cpu,$round]=$c
      results[$server,$what-wrk,$round]=$w
      results[$server,$what-sirq,$round]=$q
    done
  done
  for server in "${order[@]}"; do
    results[$server,p50,$round]=$(p50_us "http://127.0.0.1:$(port_of $server)/todos/1")
  done
  results[direct,p50,$round]=$(p50_us "http://127.0.0.1:$backend_port/todos/1")
  for server in keel nginx; do
    echo "round $round $server: static ${results[$server,static,$round]} req/s" \
      "(${results[$server,static-cpu,$round]} us CPU/req, wrk ${results[$server,static-wrk,$round]})," \
      "proxy ${results[$server,proxy,$round]} req/s" \
      "(${results[$server,proxy-cpu,$round]} us CPU/req, wrk ${results[$server,proxy-wrk,$round]})," \
      "proxy p50 ${results[$server,p50,$round]} us" >&2
  done
  for what in static proxy; do
    results[ratio,$what,$round]=$(awk -v k="${results[keel,$what,$round]}" -v n="${results[nginx,$what,$round]}" 'BEGIN {printf "%.3f", k / n}')
  done
  echo "round $round keel/nginx: static ${results[ratio,static,$round]}, proxy ${results[ratio,proxy,$round]};" \
    "backend direct p50 ${results[direct,p50,$round]} us" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { local key=$1 server=$2; local v=(); for r in $(seq "$rounds"); do v+=("${results[$server,$key,$r]}"); done; median "${v[@]}"; }

ks=$(col static keel); ns=$(col static nginx)
kp=$(col proxy keel); np=$(col proxy nginx)
kl=$(col p50 keel); nl=$(col p50 nginx); dl=$(col p50 direct)
cpu=()
for key in static-cpu static-wrk static-sirq proxy-cpu proxy-wrk proxy-sirq; do
  cpu+=("$(col $key keel)" "$(col $key nginx)")
done

ratios() { local v=(); for r in $(seq "$rounds"); do v+=("${results[ratio,$1,$r]}"); done; echo "${v[*]}"; }
report="$work/report.md"
ACCESS_LOG=$access_log STATIC_RATIOS=$(ratios static) PROXY_RATIOS=$(ratios proxy) python3 - "$ks" "$ns" "$kp" "$np" "$kl" "$nl" "$dl" "$duration" "$rounds" "$css_bytes" "${cpu[@]}" >"$report" <<'PY'
import sys, platform, datetime, os
ks, ns, kp, np_, kl, nl, dl = map(float, sys.argv[1:8])
duration, rounds, css = sys.argv[8], sys.argv[9], sys.argv[10]
ksc, nsc, ksw, nsw, ksq, nsq, kpc, npc, kpw, npw, kpq, npq = map(float, sys.argv[11:23])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# keel edge vs nginx — {datetime.datetime.utcnow():%Y-%m-%dT%H:%MZ}")
print()
print(f"Machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}; wrk and nginx from Debian.")
logged = " --access-log" if os.environ["ACCESS_LOG"] == "1" else ""
print(f"Command: bench/edge-vs-nginx.sh --duration {duration} --rounds {rounds}{logged} (median of {rounds} rounds; in each, every measurement runs on both servers back to back, the first alternating)")
if logged:
    print()
    print("Both write nginx's combined format to a file for every request (nginx with `buffer=64k flush=1s`); every request's line was checked to be there.")
print()
print("| measurement | keel edge | nginx | keel / nginx | target |")
print("|---|---:|---:|---:|---|")
print(f"| static {css} B CSS, wrk -t2 -c100 (req/s) | {ks:,.0f} | {ns:,.0f} | {ks/ns:.2f} | ≥ 1.20 |")
print(f"| proxy to the same backend, wrk -t2 -c100 (req/s) | {kp:,.0f} | {np_:,.0f} | {kp/np_:.2f} | ≥ 1.00 |")
print(f"| proxy median latency, wrk -t1 -c1 (µs) | {kl:.0f} | {nl:.0f} | {kl/nl:.2f} | |")
print(f"| added median latency over the backend alone ({dl:.0f} µs) | {kl-dl:.0f} µs | {nl-dl:.0f} µs | | ≤ 200 µs |")
print()
# The ratio of each round's pair, run back to back: the machine's drift between rounds
# cancels in it, where it does not in the ratio of the two medians above.
print("keel / nginx requests/s within each round (the pair measured back to back):")
print()
print("| | per round | median | lowest | highest |")
print("|---|---|---:|---:|---:|")
for name, env in (("static", "STATIC_RATIOS"), ("proxy", "PROXY_RATIOS")):
    values = [float(v) for v in os.environ[env].split()]
    ordered = sorted(values)
    n = len(ordered)
    mid = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    listed = " ".join(f"{v:.2f}" for v in values)
    print(f"| {name} | {listed} | {mid:.2f} | {ordered[0]:.2f} | {ordered[-1]:.2f} |")
print()
print("CPU time per request during the requests/s runs (median of the rounds), in µs:")
print()
print("| | keel edge | nginx | keel / nginx |")
print("|---|---:|---:|---:|")
print(f"| static: the server | {ksc:.2f} | {nsc:.2f} | {ksc/nsc:.2f} |")
print(f"| static: wrk, on the same cores | {ksw:.2f} | {nsw:.2f} | |")
print(f"| static: softirq, whole machine (mostly loopback delivery) | {ksq:.2f} | {nsq:.2f} | |")
print(f"| static: all three | {ksc+ksw+ksq:.2f} | {nsc+nsw+nsq:.2f} | {(ksc+ksw+ksq)/(nsc+nsw+nsq):.2f} |")
print(f"| proxy: the server (the backend not counted) | {kpc:.2f} | {npc:.2f} | {kpc/npc:.2f} |")
print(f"| proxy: wrk, on the same cores | {kpw:.2f} | {npw:.2f} | |")
print(f"| proxy: softirq, whole machine (mostly loopback delivery) | {kpq:.2f} | {npq:.2f} | |")
PY
cat "$report"
if [ -n "$out" ]; then cp "$report" "$out"; echo "written to $out" >&2; fi
