#!/usr/bin/env bash
# Side-by-side accuracy check of keel-bench against hey and wrk.
#
# Starts examples/fixed_server on 127.0.0.1 (a port the OS picks), then runs hey, wrk and
# `keel bench` one after the other against it, each with
# the same connections and duration, and prints requests/s, p50 and p95 side by side with
# keel's ratio to each. Run once per server latency in LATENCIES_MS.
#
#   bench/accuracy.sh                        # defaults below
#   LATENCIES_MS="0" DURATION=10s CONC=100 bench/accuracy.sh
#
# Knobs (environment): LATENCIES_MS (default "0 50"), DURATION (5s), CONC (50),
# SERVER_THREADS (1), WRK_THREADS (2), KEEL_CPUS ("2 1": one keel row per value; 2 is a
# multi-thread tokio runtime like hey's GOMAXPROCS=cores, 1 a single-thread runtime).
# Needs hey and wrk on PATH. Everything stays on 127.0.0.1 and stops by itself.
set -euo pipefail

cd "$(dirname "$0")/.."
LATENCIES_MS=${LATENCIES_MS:-"0 50"}
DURATION=${DURATION:-5s}
CONC=${CONC:-50}
SERVER_THREADS=${SERVER_THREADS:-1}
WRK_THREADS=${WRK_THREADS:-2}
KEEL_CPUS=${KEEL_CPUS:-"2 1"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in hey wrk; do
    command -v "$tool" >/dev/null || { echo "accuracy.sh: $tool not found on PATH" >&2; exit 1; }
done

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p keel -p keel-bench --example fixed_server
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/release/examples
KEEL=$TARGET_DIR/release/keel

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# wrk prints p50/p95 (µs) and requests/s from its Lua `done` hook; --latency has no p95.
cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("WRK rps=%.4f p50_us=%d p95_us=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(95),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout))
end
LUA

# hey's text: requests/s, p50 and p95 in ms.
parse_hey() {
    awk -F'\t' '/Requests\/sec:/ { rps = $2 }
        / 50% in / { split($0, a, " "); p50 = a[3] * 1000 }
        / 95% in / { split($0, a, " "); p95 = a[3] * 1000 }
        /Error distribution:/ { err = 1 }
        END { printf "%.1f %.3f %.3f %s\n", rps, p50, p95, (err ? "errors" : "-") }' "$1"
}

# keel's JSON (full precision; hey's text rounds to 0.1 ms, too coarse at 0 ms latency).
parse_keel() {
    awk '/"requests_per_sec":/ { gsub(/[",]/, "", $2); rps = $2 }
        /"percentile":/ { gsub(/,/, "", $2); pct = $2 }
        /"latency_secs":/ { gsub(/,/, "", $2); if (pct + 0 == 50) p50 = $2 * 1000; if (pct + 0 == 95) p95 = $2 * 1000 }
        /"kind":/ { err = 1 }
        END { printf "%.1f %.3f %.3f %s\n", rps, p50, p95, (err ? "errors" : "-") }' "$1"
}

parse_wrk() {
    awk '/^WRK / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%.1f %.3f %.3f %s\n", v["rps"], v["p50_us"] / 1000, v["p95_us"] / 1000,
          (v["errors"] > 0 ? "errors" : "-") }' "$1"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

echo "# keel-bench accuracy: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, -c $CONC, -z $DURATION, server threads $SERVER_THREADS"
echo "# hey $(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo '?'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), keel-bench -cpus $KEEL_CPUS"

for latency in $LATENCIES_MS; do
    "$BIN/fixed_server" --latency-ms "$latency" --threads "$SERVER_THREADS" >"$WORK/server.out" &
    SERVER_PID=$!
    for _ in $(seq 50); do grep -q listening "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
    addr=$(awk '/listening on/ { print $3 }' "$WORK/server.out")
    [ -n "$addr" ] || { echo "fixed_server did not start" >&2; exit 1; }
    url="http://$addr/"

    hey -z "$DURATION" -c "$CONC" "$url" >"$WORK/hey.txt"
    wrk -t "$WRK_THREADS" -c "$CONC" -d "$DURATION" -s "$WORK/report.lua" "$url" >"$WORK/wrk.txt"
    for cpus in $KEEL_CPUS; do
        "$KEEL" bench --cpus "$cpus" -z "$DURATION" -c "$CONC" -o json "$url" >"$WORK/keel-$cpus.json"
    done

    read -r h_rps h_p50 h_p95 h_err < <(parse_hey "$WORK/hey.txt")
    read -r w_rps w_p50 w_p95 w_err < <(parse_wrk "$WORK/wrk.txt")

    echo
    echo "## server latency ${latency} ms"
    printf '%-16s %12s %10s %10s  %s\n' tool "req/s" "p50 ms" "p95 ms" errors
    printf '%-16s %12s %10s %10s  %s\n' hey "$h_rps" "$h_p50" "$h_p95" "$h_err"
    printf '%-16s %12s %10s %10s  %s\n' "wrk -t $WRK_THREADS" "$w_rps" "$w_p50" "$w_p95" "$w_err"
    for cpus in $KEEL_CPUS; do
        read -r k_rps k_p50 k_p95 k_err < <(parse_keel "$WORK/keel-$cpus.json")
        printf '%-16s %12s %10s %10s  %s\n' "keel -cpus $cpus" "$k_rps" "$k_p50" "$k_p95" "$k_err"
        printf '%-16s %12s %10s %10s\n' "  ratio to hey" "$(ratio "$k_rps" "$h_rps")" "$(ratio "$k_p50" "$h_p50")" "$(ratio "$k_p95" "$h_p95")"
        printf '%-16s %12s %10s %10s\n' "  ratio to wrk" "$(ratio "$k_rps" "$w_rps")" "$(ratio "$k_p50" "$w_p50")" "$(ratio "$k_p95" "$w_p95")"
    done

    # Same text layout as hey: numbers, bars, keel's extra 99.9% line and hey's
    # "0% in 0.0000" filler lines masked, the rest must be identical.
    skeleton() { grep -v -e '^  99\.9% in' -e '^  0% in 0\.0000 secs$' "$1" | sed -E 's/■+//; s/[0-9]+(\.[0-9]+)?/N/g'; }
    hey -n 200 -c 10 "$url" >"$WORK/hey-layout.txt"
    "$KEEL" bench -n 200 -c 10 "$url" >"$WORK/keel-layout.txt"
    if diff -u <(skeleton "$WORK/hey-layout.txt") <(skeleton "$WORK/keel-layout.txt") >"$WORK/layout.diff"; then
        echo "text layout: same as hey's"
    else
        echo "text layout: DIFFERS from hey's:"; cat "$WORK/layout.diff"
    fi

    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
done
