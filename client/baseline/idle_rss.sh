#!/usr/bin/env bash
# Server RSS per idle connection: VmRSS before connecting, then its peak (sampled every 0.1 s)
# while echo-bench `hold` keeps CONNECTIONS connections open (one 32 B message each per
# second), divided by CONNECTIONS. Server on CPU 0, echo-bench on CPU 1.
#
#   client/baseline/idle_rss.sh [BIN_DIR] [CONNECTIONS] [SECONDS] [SERVER...]
#
# A SERVER is `baseline` or `LABEL=echod arguments` as in uring_cost.sh
# (default: baseline, 'epoll=--model=epoll', 'uring=--model=uring').
set -euo pipefail
bin_dir=${1:-build/bin}
connections=${2:-10000}
seconds=${3:-5}
shift $(($# < 3 ? $# : 3))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(baseline 'epoll=--model=epoll' 'uring=--model=uring')
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
printf "%-10s %12s %12s %14s %8s %s\n" server "idle KiB" "peak KiB" "bytes/conn" errors status
for server in "${servers[@]}"; do
  log="$work/server.log"
  if [ "$server" = baseline ]; then
    label=baseline
    taskset -c 0 "$bin_dir/epoll-echo-baseline" 0 2>"$log" &
  else
    label=${server%%=*}
    # shellcheck disable=SC2086
    taskset -c 0 "$bin_dir/echod" --port=0 --drain-timeout=0 --max-connections=20000 \
      ${server#*=} 2>"$log" >/dev/null &
  fi
  server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "$label did not start: $(cat "$log")" >&2; exit 1; }
  idle=$(rss "$server_pid")
  taskset -c 1 "$bin_dir/echo-bench" hold "127.0.0.1:$port" -c "$connections" -d "$seconds" \
    --warmup 1 -q --json "$work/bench.json" >/dev/null &
  bench=$!
  peak=$idle
  while kill -0 "$bench" 2>/dev/null; do
    now=$(rss "$server_pid"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.1
  done
  wait "$bench" || true
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  python3 - "$work/bench.json" "$label" "$idle" "$peak" "$connections" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
label, idle, peak, connections = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
errors = report["errors"]["total"]
held = report["connections"]["established"]
print(f"{label:<10} {idle:>12} {peak:>12} {(peak - idle) * 1024 / connections:>14.1f} "
      f"{errors:>8} {report['status']} (held {held})")
PY
done
