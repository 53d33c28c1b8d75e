#!/usr/bin/env bash
# One live quiz room with many players on one `keel serve` (issue 17's targets: no answer
# lost, a question reaches every player within 100 ms at p99 with 1,000 players).
#
#   bench/live-room.sh [--players 1000] [--questions 3] [--control] [--redis] [--out FILE]
#
# Starts `keel serve --workers 2 --threads 4` on 127.0.0.1 (a free port) with a fresh
# SQLite file (the sample quizzes are added on start), creates a staff user, and runs
# `crates/keel-bench/examples/live_room.rs` against it: the host opens a room for the
# sample quiz `edge-and-limit-req`, N players join (each its own cookies) and each opens
# the room's event stream; per question the host moves on, every player loads its page and
# answers (starts spread over one second), the host reveals; then the podium. See the
# example's module doc for what is timed. The example reads the server's CPU per phase
# (/proc/PID/task/*/schedstat); this script adds the whole run's CPU of both processes
# (server: utime + stime from /proc/PID/stat; load generator: bash's `time`) and counts
# the answers in the database afterwards (live_answers rows per question).
#
# With --control a second in-memory run keeps every player and answer but opens one event
# stream instead of one per player (`--listeners 1`): the difference between the two runs'
# answer phases is the cost of sending every tally to every player. With --redis the full
# run is repeated with the hub on a redis-server this script starts on a free port
# (--redis-url). Each run has its own fresh server and database.
#
# The in-memory broker is enough here: one process. Everything is on 127.0.0.1, bounded
# (players, questions, every wait ≤ 10 s), and stops only the processes it started, by pid.
# Needs 2 × players + a few hundred open files in each process: the limit is raised for
# this shell only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
command_line="bench/live-room.sh${*:+ $*}"
players=1000
questions=3
with_redis=0
control=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --players) players="$2"; shift ;;
    --questions) questions="$2"; shift ;;
    --redis) with_redis=1 ;;
    --control) control=1 ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--players 1000] [--questions 3] [--control] [--redis] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done

# Each player is an event stream and, while answers are in flight, a request connection:
# in the load generator and in keel serve alike.
need_files=$((players * 2 + 300))
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
live_room=${LIVE_ROOM_BIN:-$target_dir/release/examples/live_room}
if [ -z "${LIVE_ROOM_BIN:-}" ]; then
  cargo build --release -q -p keel-bench --example live_room --manifest-path "$root/Cargo.toml"
fi
[ "$with_redis" = 0 ] || need redis-server redis-server
bench_workdir

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
password="tidal-quartz-meadow-91"
printf '%s\n' "$password" >"$work/password"

run_one() { # label listeners [redis-url]
  local label=$1 listeners=$2 redis_url=${3:-} dir="$work/$1"
  mkdir -p "$dir"
  local db="sqlite://$dir/keel.db"
  local extra=()
  [ -n "$redis_url" ] && extra=(--redis-url "$redis_url")
  pushd "$dir" >/dev/null
  KEEL_LOG_LEVEL=warn start "serve-$label" "keel serve: listening on" serve --bind 127.0.0.1:0 \
    --workers 2 --threads 4 --database-url "$db" "${extra[@]}"
  popd >/dev/null
  local serve_pid=$STARTED_PID url=$STARTED_URL
  "$keel" createsuperuser --database-url "$db" --username admin --email admin@example.com \
    --password-stdin <"$work/password" >/dev/null
  local quiz_id
  quiz_id=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT id FROM quizzes WHERE slug = ?", ("edge-and-limit-req",)).fetchone()[0])' "$dir/keel.db")
  echo "== $label: keel serve pid $serve_pid at $url, quiz $quiz_id, $players players" >&2
  local before after gen
  before=$(ticks "$serve_pid")
  TIMEFORMAT='%U %S'
  gen=$( { time "$live_room" --base "$url" --players "$players" --admin admin \
      --password-file "$work/password" --quiz-id "$quiz_id" --questions "$questions" \
      --listeners "$listeners" --server-pid "$serve_pid" --json "$dir/run.json" >"$dir/table.md" 2>"$dir/progress.txt"; } 2>&1 ) \
    || { cat "$dir/progress.txt" >&2; echo "live_room failed: $gen" >&2; exit 1; }
  after=$(ticks "$serve_pid")
  cat "$dir/progress.txt" >&2
  # The answers as stored: rows per question of this room.
  python3 - "$dir/keel.db" "$dir/run.json" "$((after - before))" "$hz" "$gen" "$label" >"$dir/extra.json" <<'PY'
import json, sqlite3, sys
db, run, server_ticks, hz, gen, label = sys.argv[1:7]
pin = json.load(open(run))["pin"]
c = sqlite3.connect(db)
rows = dict(c.execute("""SELECT a.question_index, COUNT(*) FROM live_answers a JOIN live_rooms r ON r.id = a.room_id
                         WHERE r.pin = ? GROUP BY a.question_index""", (pin,)).fetchall())
players = c.execute("SELECT COUNT(*) FROM live_players p JOIN live_rooms r ON r.id = p.room_id WHERE r.pin = ?", (pin,)).fetchone()[0]
user, system = (float(x) for x in gen.split())
print(json.dumps({"label": label, "db_answers": {str(k): v for k, v in rows.items()}, "db_players": players,
                  "server_cpu_s": int(server_ticks) / int(hz), "load_generator_cpu_s": user + system}))
PY
  if [ -n "$redis_url" ]; then
    echo "redis-server after the run: $(redis-cli -p "$redis_port" info stats | grep -E '^(total_commands_processed|pubsub_channels)' | tr -d '\r' | tr '\n' ' ')" \
      >"$dir/redis.txt"
  fi
  kill "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
}

labels=(memory)
run_one memory "$players"
if [ "$control" = 1 ]; then
  labels+=(control)
  run_one control 1
fi
if [ "$with_redis" = 1 ]; then
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
  pids+=("$!")
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  labels+=(redis)
  run_one redis "$players" "redis://127.0.0.1:$redis_port"
fi

report="$work/report.md"
python3 - "$work" "$command_line" "$players" "${labels[@]}" >"$report" <<'PY'
import json, os, platform, sys, time
work, command, players = sys.argv[1], sys.argv[2], int(sys.argv[3])
labels = sys.argv[4:]
mem = os.popen("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo").read()
cpu_model = os.popen("awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo").read().strip()
runs = {l: (json.load(open(f"{work}/{l}/run.json")), json.load(open(f"{work}/{l}/extra.json"))) for l in labels}
titles = {"memory": "in-memory broker, one stream per player",
          "control": "in-memory broker, every player answers, one event stream in all (the control)",
          "redis": "Redis broker (redis-server on 127.0.0.1), one stream per player"}
print(f"# keel live quiz room — {players} players — {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
print()
print(f"Machine: {os.cpu_count()} cores ({cpu_model}), {mem}, {platform.system()} {platform.release()}; "
      "everything on 127.0.0.1. `keel serve --workers 2 --threads 4`, release build, SQLite (WAL) in a temp dir, "
      "a fresh server and database per run. The load generator (`crates/keel-bench/examples/live_room.rs`) "
      "shares the 2 cores.")
print(f"Command: `{command}`")
print()
print("Delays: arrival at the player − the event's `sent_ms` (the server's clock when it took the host's move, "
      "before its database write), in ms. Answers: every player answers each question, starts spread evenly over 1 s.")
print()
print("| run | question | question event: streams reached | p50 | p90 | p99 | max | answers accepted / sent | answer p50 | answer p99 "
      "| rows in live_answers | tally events received / expected | tallies below one already seen | last tally (streams) | tally p50 | tally p99 "
      "| reveal: streams reached | reveal p99 | right |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
for label, (r, x) in runs.items():
    n, ls = r["joined"], r["listeners"]
    for q in r["questions"]:
        qe, a, t, rv = q["question"], q["answers"], q["tally"], q["reveal"]
        rows = x["db_answers"].get(str(q["index"]), 0)
        refused = {k: v for k, v in a["statuses"].items() if k != "200"}
        print(f"| {label} | {q['index'] + 1} | {qe['received']} / {ls} | {qe['delay']['p50_ms']} | {qe['delay']['p90_ms']} | "
              f"{qe['delay']['p99_ms']} | {qe['delay']['max_ms']} | {a['accepted']} / {a['sent']}{' ' + str(refused) if refused else ''} | "
              f"{a['latency']['p50_ms']} | {a['latency']['p99_ms']} | {rows} | {t['events_received']} / {t['events_expected']} | "
              f"{t['events_below_one_already_seen']} | "
              + ", ".join(f"{v}: {c}" for v, c in t["last_tally_values"].items()) + f" | {t['delay']['p50_ms']} | {t['delay']['p99_ms']} | "
              f"{rv['received']} / {ls} | {rv['delay']['p99_ms']} | {rv['right']} of {rv['of']} |")
print()
for label, (r, x) in runs.items():
    n, ls = r["joined"], r["listeners"]
    js, st, p = r["join"], r["streams"], r["podium"]
    print(f"## {label}: {titles.get(label, label)}")
    print()
    print(f"Room {r['pin']}, {r['questions_played']} questions, {r['seconds_per_question']} s each. "
          f"Joined: {n} of {r['players']} (statuses {js['statuses']}; GET the form + POST the join: "
          f"p50 {js['latency_get_plus_post']['p50_ms']} ms, p99 {js['latency_get_plus_post']['p99_ms']} ms, 50 at a time, "
          f"{js['cpu']['wall_ms'] / 1000:.1f} s for all). Streams: {st['connected']} of {ls} connected in "
          f"{st['cpu']['wall_ms'] / 1000:.1f} s; reconnects {st['reconnects']}, closed as too slow {st['closed_as_too_slow']}, "
          f"errors {sum(st['errors'].values())}. Podium event: {p['received']} / {ls} streams, p99 {p['delay']['p99_ms']} ms. "
          f"Page loads (every player, 50 at a time, after each question event): "
          + ", ".join(f"p50 {q['pages']['latency']['p50_ms']} / p99 {q['pages']['latency']['p99_ms']} ms" for q in r["questions"]) + ".")
    print()
    print("| phase | wall ms | keel serve CPU ms | load generator CPU ms | keel serve per unit | load generator per unit |")
    print("|---|---:|---:|---:|---:|---:|")
    def row(name, part, count, unit):
        per = lambda v: f"{v * 1000 / count:.1f} µs / {unit}" if count else "-"
        print(f"| {name} | {part['wall_ms']:.0f} | {part['server_cpu_ms']:.1f} | {part['load_generator_cpu_ms']:.1f} | "
              f"{per(part['server_cpu_ms'])} | {per(part['load_generator_cpu_ms'])} |")
    row(f"join ({n} × GET + POST)", js["cpu"], n, "join")
    for q in r["questions"]:
        i = q["index"] + 1
        row(f"q{i} question fan-out", q["question"]["cpu"], q["question"]["received"], "event delivered")
        row(f"q{i} page loads", q["pages"]["cpu"], q["pages"]["loaded"], "page")
        row(f"q{i} answers + tallies, per answer", q["tally"]["cpu"], q["answers"]["sent"], "answer")
        ev = q["tally"]["events_received"]
        if ev:
            row(f"q{i} the same, per tally event delivered ({ev})", q["tally"]["cpu"], ev, "event")
        row(f"q{i} reveal fan-out", q["reveal"]["cpu"], q["reveal"]["received"], "event delivered")
    print()
    if os.path.exists(f"{work}/{label}/redis.txt"):
        print(open(f"{work}/{label}/redis.txt").read().strip() + ".")
        print()
    print(f"Whole run: keel serve {x['server_cpu_s']:.2f} s CPU (/proc/PID/stat utime + stime), "
          f"load generator {x['load_generator_cpu_s']:.2f} s (bash `time`), {r['whole_run']['wall_ms'] / 1000:.1f} s wall. "
          f"Players in the database: {x['db_players']}.")
    print()
    if ls != n:
        continue
    answers_ok = all(q["answers"]["accepted"] == n and x["db_answers"].get(str(q["index"]), 0) == n
                     and q["tally"]["streams_max_tally_eq_accepted"] == n for q in r["questions"])
    last_ok = all(q["tally"]["streams_last_tally_eq_accepted"] == n for q in r["questions"])
    events_ok = all(q["question"]["received"] == n and q["reveal"]["received"] == n for q in r["questions"]) \
        and p["received"] == n
    worst = max(q["question"]["delay"]["p99_ms"] for q in r["questions"])
    print(f"- **No answer lost: {'met' if answers_ok else 'NOT met'}.** For every question, answers accepted = rows in "
          f"live_answers = {n} and every stream saw a tally of {n}: {'yes' if answers_ok else 'no (see the table)'}; "
          f"every stream's *last* tally said {n}: {'yes' if last_ok else 'no'}. Every stream got every question, reveal "
          f"and podium event: {'yes' if events_ok else 'no'}.")
    verdict = "met" if worst <= 100 else f"NOT met, by {worst - 100:.1f} ms"
    print(f"- **Question fan-out p99 ≤ 100 ms at {n} players: {verdict}** (worst question's p99: {worst} ms).")
    print()
if "memory" in runs and "control" in runs:
    full, ctl = runs["memory"][0], runs["control"][0]
    print("## What the answer phase spends: one stream per player against one stream in all")
    print()
    print("| question | answer p50, full / control | answer p99, full / control | keel serve CPU, full / control | load generator CPU, full / control | tally events delivered, full / control |")
    print("|---|---:|---:|---:|---:|---:|")
    for a, b in zip(full["questions"], ctl["questions"]):
        print(f"| {a['index'] + 1} | {a['answers']['latency']['p50_ms']} / {b['answers']['latency']['p50_ms']} ms | "
              f"{a['answers']['latency']['p99_ms']} / {b['answers']['latency']['p99_ms']} ms | "
              f"{a['tally']['cpu']['server_cpu_ms']:.0f} / {b['tally']['cpu']['server_cpu_ms']:.0f} ms | "
              f"{a['tally']['cpu']['load_generator_cpu_ms']:.0f} / {b['tally']['cpu']['load_generator_cpu_ms']:.0f} ms | "
              f"{a['tally']['events_received']} / {b['tally']['events_received']} |")
    print()
print("<details><summary>The example's JSON, per run</summary>")
print()
for label in labels:
    print(f"`{label}`:")
    print()
    print("```json")
    print(open(f"{work}/{label}/run.json").read())
    print("```")
    print()
print("</details>")
PY
cat "$report"
if [ -n "$out" ]; then cp "$report" "$out"; echo "written to $out" >&2; fi
