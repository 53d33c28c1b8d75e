#!/usr/bin/env bash
# Runs `keel compare` over the Python reference stack (and any targets passed through),
# everything on 127.0.0.1, on ports the OS picks, stopped by pid at the end.
#
# Starts, in order:
#   1. the mock upstream (unless --mock-url): mock_upstream.py, a fixed JSON after L;
#      the real run passes `--mock-url` of a `keel mock-upstream --latency L`;
#   2. gunicorn project.wsgi:application --workers 4 --threads 10   -> django-sync  (@40)
#      uvicorn  project.asgi:application --workers 4                 -> django-async
#   3. nginx (Debian's, if installed) in front of gunicorn, the classic config WITHOUT
#      limit_req                                                      -> django-sync-nginx (@40)
#      plus, for 100 requests only, the classic config WITH limit_req, to show what it
#      does to a benchmark from one address (nginx's worked example: 21 of 100 pass);
# then runs `keel compare` over those targets and every
# `--target` given, one after another, and writes report.md, results.json and charts.
#
#   bench/peers/run.sh [--upstream-latency 100ms] [--matrix 150x30,300x50,1000x100]
#                      [--out DIR] [--mock-url URL] [--target NAME=URL[@CAP]]...
#                      [--ratio A/B]... [--baseline NAME] [--no-nginx] [--no-warmup]
#                      [--max-seconds 1800]
#
# The real comparison passes keel's own endpoints through, e.g.
#   bench/peers/run.sh --mock-url http://127.0.0.1:9000/mock/todos/1 \
#       --target keel-sync=http://127.0.0.1:8000/sync/test@40 \
#       --target keel-async=http://127.0.0.1:8000/async/test \
#       --ratio keel-sync/django-sync --ratio keel-async/django-async
# (the mock's latency must then equal --upstream-latency; it is not checked).
#
# Runs setup.sh first when the venv is missing. Every process it starts is stopped by
# its pid on exit (TERM, then KILL after 15 s); the compare run is bounded by
# --max-seconds and every request by a 20 s timeout. Default --out:
# bench/runs/<UTC date>-peers-L<latency>.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${VENV:-$HERE/.venv}
PY=$VENV/bin/python

LATENCY=100ms
MATRIX=150x30,300x50,1000x100
OUT=
MOCK_URL=
WITH_NGINX=1
MAX_SECONDS=1800
PASS=()
ARGS=("$@")
next() { # the value after ARGS[i]
    i=$((i + 1))
    [ "$i" -lt "${#ARGS[@]}" ] || { echo "run.sh: $arg needs a value" >&2; exit 2; }
    value=${ARGS[$i]}
}
for ((i = 0; i < ${#ARGS[@]}; i++)); do
    arg=${ARGS[$i]}
    case "$arg" in
        --upstream-latency) next; LATENCY=$value ;;
        --matrix) next; MATRIX=$value ;;
        --out) next; OUT=$value ;;
        --mock-url) next; MOCK_URL=$value ;;
        --max-seconds) next; MAX_SECONDS=$value ;;
        --target|--ratio|--baseline|--note|--settle|--timeout) next; PASS+=("$arg" "$value") ;;
        --no-warmup) PASS+=("$arg") ;;
        --no-nginx) WITH_NGINX=0 ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
ORIGINAL_COMMAND="bench/peers/run.sh $*"
[ -n "$OUT" ] || OUT=$ROOT/bench/runs/$(date -u +%Y-%m-%d)-peers-L$LATENCY

say() { echo "run.sh: $*" >&2; }

[ -x "$PY" ] || "$HERE/setup.sh"

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p keel
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
KEEL=$TARGET_DIR/release/keel

WORK=$(mktemp -d /tmp/keel-peers.XXXXXX)
chmod 755 "$WORK" # nginx's workers (nobody) read the static root under it
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid did not stop in 15 s: KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until URL answers 200 (up to $2 seconds); prints the body.
wait_ok() {
    "$PY" - "$1" "${2:-30}" <<'PY'
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            if r.status == 200:
                print(r.read().decode()[:200])
                sys.exit(0)
    except Exception as e:  # not up yet
        last = e
    if time.monotonic() > deadline:
        sys.exit(f"{url} did not answer 200: {last}")
    time.sleep(0.2)
PY
}

# --- 1. mock upstream ------------------------------------------------------------------
if [ -z "$MOCK_URL" ]; then
    "$PY" "$HERE/mock_upstream.py" --listen 127.0.0.1:0 --latency "$LATENCY" >"$WORK/mock.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q listening "$WORK/mock.out" && break; sleep 0.1; done
    MOCK_ADDR=$(awk '/listening on/ { print $3 }' "$WORK/mock.out")
    [ -n "$MOCK_ADDR" ] || { cat "$WORK/mock.out" >&2; say "mock upstream did not start"; exit 1; }
    MOCK_URL=http://$MOCK_ADDR/mock/todos/1
    MOCK_DESC="bench/peers/mock_upstream.py --latency $LATENCY (Python asyncio, one process)"
else
    MOCK_DESC="given with --mock-url"
fi
body=$(wait_ok "$MOCK_URL" 10)
say "upstream: $MOCK_URL -> $body"

# --- 2. gunicorn and uvicorn -------------------------------------------------------------
export UPSTREAM_URL=$MOCK_URL DJANGO_WORK_DIR=$WORK/django DJANGO_STATIC_ROOT=$WORK/static
mkdir -p "$DJANGO_WORK_DIR"
(cd "$HERE/djangoapp" && "$PY" manage.py collectstatic --noinput --verbosity 0)
GUNICORN_PORT=$(free_port)
UVICORN_PORT=$(free_port)
(cd "$HERE/djangoapp" && exec "$VENV/bin/gunicorn" project.wsgi:application \
    --workers 4 --threads 10 --bind "127.0.0.1:$GUNICORN_PORT" >"$WORK/gunicorn.log" 2>&1) &
PIDS+=($!)
(cd "$HERE/djangoapp" && exec "$VENV/bin/uvicorn" project.asgi:application \
    --workers 4 --host 127.0.0.1 --port "$UVICORN_PORT" >"$WORK/uvicorn.log" 2>&1) &
PIDS+=($!)
SYNC_URL=http://127.0.0.1:$GUNICORN_PORT/sync/test
ASYNC_URL=http://127.0.0.1:$UVICORN_PORT/async/test
body=$(wait_ok "$SYNC_URL" 60) || { tail -20 "$WORK/gunicorn.log" >&2; exit 1; }
say "gunicorn: $SYNC_URL -> $body"
body=$(wait_ok "$ASYNC_URL" 60) || { tail -20 "$WORK/uvicorn.log" >&2; exit 1; }
say "uvicorn:  $ASYNC_URL -> $body"
TARGETS=(--target "django-sync=$SYNC_URL@40" --target "django-async=$ASYNC_URL")

# --- 3. nginx in front of gunicorn -------------------------------------------------------
NGINX_NOTE=
if [ "$WITH_NGINX" = 1 ] && command -v nginx >/dev/null; then
    MIME_TYPES=/etc/nginx/mime.types
    [ -f "$MIME_TYPES" ] || { echo 'types { application/json json; text/css css; }' >"$WORK/mime.types"; MIME_TYPES=$WORK/mime.types; }
    render() { # $1 = variant dir, $2 = port, $3 = "classic" keeps limit_req
        mkdir -p "$WORK/$1/nginx-tmp"
        chmod 777 "$WORK/$1/nginx-tmp"
        sed -e "s|@WORK@|$WORK/$1|g" -e "s|@PORT@|$2|g" -e "s|@UPSTREAM@|127.0.0.1:$GUNICORN_PORT|g" \
            -e "s|@STATIC_ROOT@|$WORK/static|g" -e "s|@MIME_TYPES@|$MIME_TYPES|g" \
            "$HERE/nginx/nginx.conf.template" >"$WORK/$1/nginx.conf"
        if [ "$3" != classic ]; then sed -i '/# limit_req$/d' "$WORK/$1/nginx.conf"; fi
        nginx -t -q -p "$WORK/$1" -c "$WORK/$1/nginx.conf" -g 'daemon off;' 2>"$WORK/$1/nginx-t.log" \
            || { cat "$WORK/$1/nginx-t.log" >&2; return 1; }
    }
    start_nginx() { nginx -p "$WORK/$1" -c "$WORK/$1/nginx.conf" -g 'daemon off;' & PIDS+=($!); }

    # The classic config, briefly: 100 requests at once from this one address.
    CLASSIC_PORT=$(free_port)
    render classic "$CLASSIC_PORT" classic
    start_nginx classic
    CLASSIC_PID=${PIDS[-1]}
    # Readiness through /static/, which has no limit_req: the zone starts untouched.
    wait_ok "http://127.0.0.1:$CLASSIC_PORT/static/admin/css/base.css" 10 >/dev/null
    "$KEEL" bench -n 100 -c 100 -o json "http://127.0.0.1:$CLASSIC_PORT/sync/test" >"$WORK/limit_req.json"
    LIMIT_LINE=$("$PY" - "$WORK/limit_req.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
codes = report["status_codes"]
others = ", ".join(f"{n} got {code}" for code, n in sorted(codes.items()) if code != "200")
print(f"{codes.get('200', 0)} of {report['summary']['requests']} passed" + (f", {others}" if others else ""))
PY
)
    say "nginx classic config (limit_req 10r/s burst=20 nodelay), 100 requests at once: $LIMIT_LINE"
    kill -TERM "$CLASSIC_PID"
    wait "$CLASSIC_PID" 2>/dev/null || true
    unset 'PIDS[-1]' # stopped: never signal that pid number again

    NGINX_PORT=$(free_port)
    render bench "$NGINX_PORT" bench
    start_nginx bench
    NGINX_URL=http://127.0.0.1:$NGINX_PORT/sync/test
    body=$(wait_ok "$NGINX_URL" 10)
    say "nginx:    $NGINX_URL -> $body"
    TARGETS+=(--target "django-sync-nginx=$NGINX_URL@40")
    NGINX_NOTE="nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') in front of gunicorn (django-sync-nginx) runs the classic config without limit_req: with it, one load generator is one client address, and 100 requests at once gave: $LIMIT_LINE (nginx's worked example: 21 pass)."
elif [ "$WITH_NGINX" = 1 ]; then
    say "nginx not installed (setup.sh installs it as root): skipping django-sync-nginx"
fi

# --- 4. compare -------------------------------------------------------------------------
VERSIONS=$("$PY" -c 'import sys, django, gunicorn, uvicorn, requests, httpx; print(f"Python {sys.version.split()[0]}, Django {django.get_version()}, gunicorn {gunicorn.__version__}, uvicorn {uvicorn.__version__}, requests {requests.__version__}, httpx {httpx.__version__}")')
NOTES=(
    --note "Peers: $VERSIONS; gunicorn --workers 4 --threads 10 (django-sync, cap 40), uvicorn --workers 4 (django-async); DEBUG=False, startproject's middleware."
    --note "Upstream: $MOCK_DESC."
    --note "The load generator, the peers and the upstream share this machine's cores."
)
[ -z "$NGINX_NOTE" ] || NOTES+=(--note "$NGINX_NOTE")
say "comparing (at most $MAX_SECONDS s) into $OUT"
rc=0
timeout --signal=TERM "$MAX_SECONDS" "$KEEL" compare "${TARGETS[@]}" ${PASS[@]+"${PASS[@]}"} \
    --matrix "$MATRIX" --upstream-latency "$LATENCY" --out "$OUT" "${NOTES[@]}" \
    --command "$ORIGINAL_COMMAND" || rc=$?
if [ "$rc" = 124 ]; then say "compare did not finish within --max-seconds $MAX_SECONDS: stopped"; fi
exit "$rc"
