#!/usr/bin/env bash
# Many AI interviews at once on one `keel up` (issue 18's benchmark: 500 readers each
# hearing the interviewer's reply streamed from a model; keel adds ≤ 5 ms at p99 to a
# token's trip, and no token is lost).
#
#   bench/interview-stream.sh [--readers 500] [--bare-streams N] [--light 50] [--tokens 40]
#                             [--assess] [--out FILE]
#
# Starts `keel up --listen 127.0.0.1:0 --no-rate-limit --no-access-log` with a fresh SQLite
# file, an empty static root, KEEL_INTERVIEWER_DAILY_TURNS=100000 (every reader is a guest
# on 127.0.0.1: the default 200 turns per address and day would cut the model off) and
# `--interviewer-api-base` on a free port, where `crates/keel-bench/examples/interview_stream.rs`
# then runs its scripted OpenAI-compatible model (50 tokens/s per reply, each token
# carrying the µs it left). The example reads --bare-streams streams straight from the
# model (the bare path, default as many as readers), sets up the readers (each its own
# cookies: start an interview, answer once), opens every reader's say/N/ stream at once
# and reads every token to `done`; then the same with --light streams on both paths. See
# the example's module doc for what is timed. The example reads keel's CPU per phase
# (/proc/PID/task/*/schedstat), its VmRSS while the streams run, its own threads' CPU
# (model server apart from readers) and the machine's busy share; this script adds the
# whole run's CPU of both processes (keel: utime + stime from /proc/PID/stat; the example:
# bash's `time`) and counts in the database the lines keel saved from the model.
#
# With --assess it then quotes the rubric's grading time: `cargo bench -p keel-interview
# --bench assess -- 'assess: typical'` (criterion), after keel has stopped.
#
# Everything is on 127.0.0.1, bounded (counts, every wait ≤ 30 s; about a minute in all
# with the defaults), and stops only the processes it started, by pid. Needs about
# 2 × streams + a few hundred open files in each process: the limit is raised for this
# shell only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
command_line="bench/interview-stream.sh${*:+ $*}"
readers=500
bare=""
light=50
tokens=40
assess=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --readers) readers="$2"; shift ;;
    --bare-streams) bare="$2"; shift ;;
    --light) light="$2"; shift ;;
    --tokens) tokens="$2"; shift ;;
    --assess) assess=1 ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--readers 500] [--bare-streams N] [--light 50] [--tokens 40] [--assess] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$bare" ] || bare=$readers
[ -n "$out" ] && out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

most=$(( readers > bare ? readers : bare ))
need_files=$((most * 2 + 300))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_files" ]; then
  echo "open files limit $(ulimit -n) (hard $(ulimit -Hn)) is below the $need_files this run needs" >&2
  exit 1
fi
echo "open files limit: $(ulimit -n)" >&2

# shellcheck source=lib.sh
source "$here/lib.sh"
build_keel
target_dir=$(dirname "$(dirname "$keel")")
example=${INTERVIEW_STREAM_BIN:-$target_dir/release/examples/interview_stream}
if [ -z "${INTERVIEW_STREAM_BIN:-}" ]; then
  cargo build --release -q -p keel-bench --example interview_stream --manifest-path "$root/Cargo.toml"
fi
bench_workdir

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

model_port=$(free_port)
mkdir -p "$work/static"
pushd "$work" >/dev/null
KEEL_LOG_LEVEL=warn KEEL_DATABASE_URL="sqlite://$work/keel.db" KEEL_STATIC_ROOT="$work/static" \
  KEEL_INTERVIEWER_DAILY_TURNS=100000 KEEL_INTERVIEWER_TIMEOUT=60s \
  start up "keel up: serving on" up --listen 127.0.0.1:0 --no-rate-limit --no-access-log \
  --interviewer-api-base "http://127.0.0.1:$model_port/v1"
popd >/dev/null
up_pid=$STARTED_PID url=$STARTED_URL
echo "== keel up pid $up_pid at $url, model on 127.0.0.1:$model_port, $readers readers" >&2

before=$(ticks "$up_pid")
TIMEFORMAT='%U %S'
gen=$( { time "$example" --base "$url" --model-port "$model_port" --readers "$readers" \
    --bare-streams "$bare" --light "$light" --tokens "$tokens" --server-pid "$up_pid" \
    --json "$work/run.json" >"$work/table.md" 2>"$work/progress.txt"; } 2>&1 ) \
  || { cat "$work/progress.txt" >&2; echo "interview_stream failed: $gen" >&2; exit 1; }
after=$(ticks "$up_pid")
cat "$work/progress.txt" >&2
# keel's own log (warnings and errors only): a failed model call shows here.
grep -c . "$work/up.err" >"$work/up-err-lines.txt" || true
# Its distinct messages, without the timestamps, most frequent first.
sed -E 's/^[0-9TZ:.-]+ +//; s/\x1b\[[0-9;]*m//g' "$work/up.err" | sort | uniq -c | sort -rn | head -8 | cut -c1-400 \
  >"$work/up-err-head.txt" || true
kill "$up_pid" 2>/dev/null || true
wait "$up_pid" 2>/dev/null || true

# The lines keel saved from the model: transcript entries of the interviewer whose text
# is not the rubric's sentences joined.
python3 - "$work/keel.db" "$((after - before))" "$hz" "$gen" >"$work/extra.json" <<'PY'
import json, sqlite3, sys
db, server_ticks, hz, gen = sys.argv[1:5]
c = sqlite3.connect(db)
sessions = phrased = 0
for (t,) in c.execute("SELECT transcript FROM interview_sessions"):
    sessions += 1
    lines = json.loads(t)
    phrased += any(e.get("who") == "interviewer" and e.get("model") and e.get("text") != " ".join(e.get("says", []))
                   for e in lines)
user, system = (float(x) for x in gen.split())
print(json.dumps({"db_sessions": sessions, "db_sessions_with_model_line": phrased,
                  "server_cpu_s": int(server_ticks) / int(hz), "load_generator_cpu_s": user + system}))
PY

assess_line=""
if [ "$assess" = 1 ]; then
  echo "== cargo bench -p keel-interview --bench assess -- 'assess: typical'" >&2
  assess_line=$(cargo bench -q -p keel-interview --bench assess --manifest-path "$root/Cargo.toml" \
    -- 'assess: typical' 2>/dev/null | grep -A1 'assess: typical' | grep 'time:' | tr -s ' ' | sed 's/^ //' || true)
fi

report="$work/report.md"
python3 - "$work" "$command_line" "$(cat "$work/up-err-lines.txt")" "$assess_line" >"$report" <<'PY'
import json, os, platform, sys, time
work, command, err_lines, assess = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
r = json.load(open(f"{work}/run.json"))
x = json.load(open(f"{work}/extra.json"))
mem = os.popen("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo").read()
cpu_model = os.popen("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo").read().strip()
runs = {run["label"]: run for run in r["runs"]}
print(f"# keel AI interviewer — {r['readers']} readers streaming at once — {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
print()
print(f"Machine: {os.cpu_count()} cores ({cpu_model}), {mem}, {platform.system()} {platform.release()}; "
      "everything on 127.0.0.1. `keel up --no-rate-limit --no-access-log`, release build, SQLite (WAL) in a temp dir. "
      "The load generator and the scripted model (`crates/keel-bench/examples/interview_stream.rs`, one process: "
      "the model on its own one-thread runtime) share the 2 cores.")
print(f"Command: `{command}`")
print()
print(f"The model streams {r['tokens']} tokens per reply, one every {r['token_interval_ms']} ms. A token's delay is its "
      "arrival at the reader (wall clock when the body chunk was read) minus the µs the model wrote into it when it "
      "handed it to its HTTP server. **bare**: the client reads the model directly; **keel**: the reader's "
      "`GET /interviewer/sessions/ID/say/N/` through keel up, which makes the streamed model call and forwards "
      "each delta as a token frame. All streams of a run are opened at once; `-light` runs are the same with fewer streams.")
print()
print("| run | streams complete | tokens received / expected | lost | out of order | p50 | p90 | p99 | p99.9 | max | "
      "streams open at once (max) | keel CPU | model CPU | readers CPU | machine busy | readers' runtime lag p99 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, run in runs.items():
    d, c = run["delay"], run["cpu"]
    print(f"| {label} | {run['streams_complete']} / {run['streams']} | {run['tokens_received']} / {run['tokens_expected']} | "
          f"{run['tokens_lost']} | {run['tokens_out_of_order']} | {d['p50_ms']} | {d['p90_ms']} | {d['p99_ms']} | {d['p999_ms']} | "
          f"{d['max_ms']} | {run['max_open_streams']} | {c['keel_cpu_ms']:.0f} ms | {c['model_cpu_ms']:.0f} ms | "
          f"{c['readers_cpu_ms']:.0f} ms | {c['machine_busy_pct']:.0f} % | {run['readers_runtime_lag']['p99_ms']} ms |")
print()
print("Delays in ms. CPU over the run's streaming (wall "
      + ", ".join(f"{l} {run['cpu']['wall_ms'] / 1000:.2f} s" for l, run in runs.items()) + ").")
print()

def added(a, b, q):
    return round(runs[a]["delay"][q] - runs[b]["delay"][q], 2)

if "keel" in runs and "bare" in runs:
    print("## What keel adds")
    print()
    print("| percentile | bare | keel | keel − bare | light: bare | light: keel | light: keel − bare |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    light = "keel-light" in runs and "bare-light" in runs
    for q, name in [("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")]:
        row = f"| {name} | {runs['bare']['delay'][q]} | {runs['keel']['delay'][q]} | {added('keel', 'bare', q)} |"
        if light:
            row += f" {runs['bare-light']['delay'][q]} | {runs['keel-light']['delay'][q]} | {added('keel-light', 'bare-light', q)} |"
        else:
            row += " - | - | - |"
        print(row)
    print()
    print("(A difference of two percentiles, each of its own distribution.)")
    print()

k = runs.get("keel")
m = r["memory"]
s = r["setup"]
ms_ = r["model_server"]
if k:
    tokens = k["tokens_received"]
    kc = k["cpu"]["keel_cpu_ms"]
    print("## Per session and per token")
    print()
    print(f"- **Setup ({s['ready']} readers, {r['concurrency']} at a time):** GET the form + POST the start: "
          f"p50 {s['start_get_plus_post']['p50_ms']} ms, p99 {s['start_get_plus_post']['p99_ms']} ms; the answer POST "
          f"(rubric + the model's verdict proposal + saving): p50 {s['answer_post']['p50_ms']} ms, p99 {s['answer_post']['p99_ms']} ms; "
          f"errors {s['errors'] or 'none'}. keel CPU {s['cpu']['keel_cpu_ms'] / max(s['ready'], 1):.2f} ms per reader "
          f"(start + answer), {s['cpu']['wall_ms'] / 1000:.1f} s in all.")
    print(f"- **Streams:** open (request → headers) p50 {k['open']['p50_ms']} / p99 {k['open']['p99_ms']} ms; "
          f"first token p50 {k['first_token']['p50_ms']} / p99 {k['first_token']['p99_ms']} ms after the request "
          f"(the model's first token is due {r['token_interval_ms']} ms after its call); last token → `done` "
          f"p50 {k['last_token_to_done']['p50_ms']} / p99 {k['last_token_to_done']['p99_ms']} / max {k['last_token_to_done']['max_ms']} ms "
          f"(keel saves the phrased line before it sends `done`). Errors {k['errors'] or 'none'}; other frames {k['other_frames'] or 'none'}.")
    print(f"- **keel CPU per token delivered:** {kc * 1000 / max(tokens, 1):.1f} µs ({kc:.0f} ms over {tokens} tokens, "
          f"everything keel did while the streams ran: the say requests, the model calls, the frames, saving each line); "
          f"light run: {runs['keel-light']['cpu']['keel_cpu_ms'] * 1000 / max(runs['keel-light']['tokens_received'], 1):.1f} µs." if "keel-light" in runs else
          f"- **keel CPU per token delivered:** {kc * 1000 / max(tokens, 1):.1f} µs.")
    if "bare" in runs:
        b = runs["bare"]
        print(f"- **The load generator per token:** model {k['cpu']['model_cpu_ms'] * 1000 / max(tokens, 1):.1f} µs and readers "
              f"{k['cpu']['readers_cpu_ms'] * 1000 / max(tokens, 1):.1f} µs through keel; bare: model "
              f"{b['cpu']['model_cpu_ms'] * 1000 / max(b['tokens_received'], 1):.1f} µs, readers "
              f"{b['cpu']['readers_cpu_ms'] * 1000 / max(b['tokens_received'], 1):.1f} µs.")
    print(f"- **Memory (keel's VmRSS):** right after start {m['keel_rss_kib_at_start'] / 1024:.1f} MiB; \"idle\" after "
          f"{r['warmup']} warm-up interviews {m['keel_rss_kib_idle'] / 1024:.1f} MiB; after the setup of {s['ready']} sessions "
          f"{m['keel_rss_kib_after_setup'] / 1024:.1f} MiB; with {m['max_open_streams']} streams open at once "
          f"{m['keel_rss_kib_at_max_open'] / 1024:.1f} MiB (peak {m['keel_rss_kib_peak'] / 1024:.1f} MiB); after the streams "
          f"{m['keel_rss_kib_after_streams'] / 1024:.1f} MiB. Per active session, (open − after setup) ÷ {m['max_open_streams']}: "
          f"**{m['kib_per_stream_vs_after_setup']} KiB**; (open − idle) ÷ {m['max_open_streams']}: {m['kib_per_session_vs_idle']} KiB "
          "(0 when RSS fell below the idle reading: mimalloc gives start-up memory back only when the process allocates again).")
    print(f"- **The model server:** {ms_['streamed_calls']} streamed calls ({ms_['streamed_calls_finished']} sent `[DONE]`), "
          f"{ms_['completion_calls']} verdict calls, {ms_['tokens_sent']} tokens; a token left "
          f"p50 {ms_['token_lateness_vs_schedule']['p50_ms']} / p99 {ms_['token_lateness_vs_schedule']['p99_ms']} / "
          f"max {ms_['token_lateness_vs_schedule']['max_ms']} ms behind its schedule (the stamp is taken when it leaves, so this "
          "only stretches the reply, it is not in the delays).")
    print(f"- **The database afterwards:** {x['db_sessions']} interview sessions, {x['db_sessions_with_model_line']} with a "
          f"line the model phrased (saved by keel at the end of each stream).")
    print(f"- **Whole run:** keel up {x['server_cpu_s']:.2f} s CPU (/proc/PID/stat utime + stime), load generator "
          f"{x['load_generator_cpu_s']:.2f} s (bash `time`), {r['whole_run']['wall_ms'] / 1000:.1f} s wall. "
          f"keel's log lines (warn and above): {err_lines}.")
    if assess:
        print(f"- **Rubric grading** (`cargo bench -p keel-interview --bench assess -- 'assess: typical'`, "
              f"a typical 90-word answer, after keel stopped): {assess}.")
    print()
    print(f"Where the delays fall: per 100 ms after the streams were opened (keel run; the open streams' say requests "
          f"took p50 {k['open']['p50_ms']} / p99 {k['open']['p99_ms']} ms to answer):")
    print()
    print("| from | tokens | keel p50 | keel p99 | keel max | keel CPU in the 100 ms | bare: tokens | bare p99 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    bare_t = {t["from_ms"]: t for t in runs.get("bare", {}).get("timeline_100ms", [])}
    for t in k["timeline_100ms"]:
        b_ = bare_t.get(t["from_ms"], {})
        print(f"| {t['from_ms']} ms | {t['tokens']} | {t['p50_ms']} | {t['p99_ms']} | {t['max_ms']} | {t['keel_cpu_ms']:.0f} ms | "
              f"{b_.get('tokens', '-')} | {b_.get('p99_ms', '-')} |")
    print()
    if "bare" in runs:
        p99_added = added("keel", "bare", "p99_ms")
        lost = k["tokens_lost"] + k["tokens_out_of_order"]
        print(f"- **No token lost: {'met' if lost == 0 and k['streams_complete'] == k['streams'] else 'NOT met'}** "
              f"({k['tokens_received']} of {k['tokens_expected']} received, {k['tokens_out_of_order']} out of order, "
              f"{k['streams_complete']} of {k['streams']} streams complete).")
        verdict = "met" if p99_added <= 5 else f"NOT met, by {p99_added - 5:.2f} ms"
        print(f"- **keel adds ≤ 5 ms at p99 with {k['streams']} streams: {verdict}** (p99 {k['delay']['p99_ms']} ms "
              f"through keel against {runs['bare']['delay']['p99_ms']} ms bare).")
        if "keel-light" in runs and "bare-light" in runs:
            print(f"- With {runs['keel-light']['streams']} streams: keel adds {added('keel-light', 'bare-light', 'p99_ms')} ms at p99.")
        print()
log = open(f"{work}/up-err-head.txt").read().rstrip()
if log:
    print("keel up's log, warn and above (count, message):")
    print()
    print("```text")
    print(log)
    print("```")
    print()
print("<details><summary>The example's JSON</summary>")
print()
print("```json")
print(open(f"{work}/run.json").read())
print("```")
print()
print("</details>")
PY
cat "$work/table.md" >&2
cat "$report"
if [ -n "$out" ]; then cp "$report" "$out"; echo "written to $out" >&2; fi
