#!/usr/bin/env bash
# System calls per echoed message: the server under `strace -c -f` (which slows it, so this is
# a separate short run from the CPU figures), 64 B ping-pong for SECONDS at CONNECTIONS.
#
#   client/baseline/syscalls.sh [BIN_DIR] [CONNECTIONS] [SECONDS] [SERVER...]
#
# SERVER as in uring_cost.sh (default: baseline, 'epoll=--model=epoll', 'uring=--model=uring').
set -euo pipefail
bin_dir=${1:-build/bin}
connections=${2:-100}
seconds=${3:-2}
shift $(($# < 3 ? $# : 3))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(baseline 'epoll=--model=epoll' 'uring=--model=uring')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for server in "${servers[@]}"; do
  log="$work/server.log"
  : >"$log"
  if [ "$server" = baseline ]; then
    label=baseline
    strace -c -f -o "$work/strace" taskset -c 0 "$bin_dir/epoll-echo-baseline" 0 2>"$log" &
  else
    label=${server%%=*}
    # shellcheck disable=SC2086
    strace -c -f -o "$work/strace" taskset -c 0 "$bin_dir/echod" --port=0 --drain-timeout=0 \
      ${server#*=} 2>"$log" >/dev/null &
  fi
  tracer=$!
  port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  taskset -c 1 "$bin_dir/echo-bench" steady "127.0.0.1:$port" -c "$connections" -d "$seconds" \
    --warmup 0 -q --json "$work/bench.json" >/dev/null || true
  pkill -TERM -P "$tracer" 2>/dev/null || true  # the traced server (strace's child)
  wait "$tracer" 2>/dev/null || true
  python3 - "$work/bench.json" "$work/strace" "$label" <<'PY'
import json, sys
echoed = json.load(open(sys.argv[1]))["messages"]["echoed"]
calls = {}
for line in open(sys.argv[2]):
    parts = line.split()
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
        calls[parts[-1]] = int(parts[3])
total = sum(calls.values())
top = ", ".join(f"{name} {count / echoed:.3f}" for name, count in
                sorted(calls.items(), key=lambda item: -item[1])[:4])
print(f"{sys.argv[3]:<10} messages {echoed:>8}  syscalls/msg {total / echoed:.3f}  ({top})")
PY
done
