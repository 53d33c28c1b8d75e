# Shared by the bench scripts: `source "$(dirname "$0")/lib.sh"` after setting `root`.
#
#   need CMD PKG      install a Debian package when CMD is missing
#   build_keel        release build; sets $keel (or KEEL_BIN=path uses that binary, to
#                     compare two builds with one script)
#   bench_workdir     a temp dir ($work), and an EXIT trap that stops every pid in $pids
#   start NAME PREFIX ARGS...
#                     keel ARGS in the background of this shell; waits for the stdout
#                     line starting with PREFIX; sets STARTED_PID and STARTED_URL
#
# start must not run inside $( ) or < <( ): the pid would be lost with the subshell and
# the process would outlive the script.

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "installing $2 from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
  fi
}

build_keel() {
  if [ -n "${KEEL_BIN:-}" ]; then
    keel=$KEEL_BIN
    return
  fi
  cargo build --release -q -p keel --manifest-path "$root/Cargo.toml"
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  keel="$target_dir/release/keel"
}

bench_workdir() {
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}

start() {
  local name=$1 prefix=$2; shift 2
  "$keel" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  STARTED_PID=$!
  pids+=("$STARTED_PID")
  for _ in $(seq 200); do
    if grep -q "^$prefix" "$work/$name.out" 2>/dev/null; then
      STARTED_URL=$(sed -n "s|^$prefix \([^ ]*\).*|\1|p" "$work/$name.out" | head -1)
      return
    fi
    sleep 0.05
  done
  echo "keel $name did not start:" >&2
  cat "$work/$name.err" >&2
  exit 1
}
