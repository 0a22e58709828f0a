#!/usr/bin/env bash
# Server CPU per echoed message of echod models (by default uring and epoll) beside the plain C
# epoll baseline, side by side in one run: each server pinned to CPU 0, echo-bench to CPU 1,
# 64 B ping-pong (or SIZE), the servers alternating ROUNDS times so drift hits all alike;
# medians are printed. Also context switches per message (/proc/PID/status, over the whole
# bench run, warm-up included, divided by every message echoed in it) and p50/p99.
#
#   client/baseline/uring_cost.sh [BIN_DIR] [SECONDS] [ROUNDS] [CONNECTIONS] [SIZE] [SERVER...]
#
# A SERVER is `baseline` or `LABEL=echod arguments`, e.g.
#   'uring-batch16=--model=uring --uring.batch=16 --uring.min-wait-us=50'
# (default: baseline, 'epoll=--model=epoll', 'uring=--model=uring').
# CONNECTIONS is a comma-separated list (default 100,1000).
# Server CPU per message = the server's CPU seconds (user + system, from echo-bench's
# --server-pid over the measured window) / messages echoed in it.
set -euo pipefail
bin_dir=${1:-build/bin}
seconds=${2:-5}
rounds=${3:-3}
connection_counts=${4:-100,1000}
size=${5:-64}
shift $(($# < 5 ? $# : 5))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(baseline 'epoll=--model=epoll' 'uring=--model=uring')
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

label_of() { if [ "$1" = baseline ]; then echo baseline; else echo "${1%%=*}"; fi; }
start_server() {  # SERVER -> sets server_pid and port
  local log="$work/server.log"
  : >"$log"
  if [ "$1" = baseline ]; then
    taskset -c 0 "$bin_dir/epoll-echo-baseline" 0 2>"$log" &
  else
    # shellcheck disable=SC2086  # the arguments are words on purpose
    taskset -c 0 "$bin_dir/echod" --port=0 --drain-timeout=0 ${1#*=} 2>"$log" >/dev/null &
  fi
  server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "$1 did not start: $(cat "$log")" >&2; exit 1; }
}
stop_server() {
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}
switches() {  # PID -> "voluntary involuntary"
  awk '/^voluntary_ctxt_switches/ {v=$2} /^nonvoluntary_ctxt_switches/ {n=$2} END {print v, n}' \
    "/proc/$1/status"
}

printf "%-12s %-6s %-28s %10s %10s %10s %8s %8s %8s %8s\n" connections round server messages msg/s \
  "cpu us/msg" "p50 us" "p99 us" "vcs/msg" "ivcs/msg"
for connections in ${connection_counts//,/ }; do
  for round in $(seq "$rounds"); do
    for server in "${servers[@]}"; do
      label=$(label_of "$server")
      start_server "$server"
      before=$(switches "$server_pid")
      taskset -c 1 "$bin_dir/echo-bench" steady "127.0.0.1:$port" -c "$connections" -s "$size" \
        -d "$seconds" --warmup 1 -q --server-pid "$server_pid" --json "$work/bench.json" \
        >/dev/null || true
      after=$(switches "$server_pid")
      stop_server
      python3 - "$work/bench.json" "$connections" "$round" "$label" "$before" "$after" \
        >>"$work/results" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
server = report["cpu"]["server"]
messages = report["messages"]["measured"]
per_message = (server["user_s"] + server["system_s"]) / messages * 1e6
rate = messages / report["measured_seconds"]
latency = report["latency_us"]
echoed = max(report["messages"]["echoed"], 1)
(v0, n0), (v1, n1) = (map(int, sys.argv[5].split())), (map(int, sys.argv[6].split()))
vcs, ivcs = (v1 - v0) / echoed, (n1 - n0) / echoed
print(f"{sys.argv[2]} {sys.argv[4]} {per_message:.3f} {rate:.0f} {latency['p50']:.1f} "
      f"{latency['p99']:.1f} {vcs:.4f} {ivcs:.4f} {report['status']}")
print(f"{sys.argv[2]:<12} {sys.argv[3]:<6} {sys.argv[4]:<28} {messages:>10} {rate:>10.0f} "
      f"{per_message:>10.3f} {latency['p50']:>8.1f} {latency['p99']:>8.1f} {vcs:>8.4f} "
      f"{ivcs:>8.4f}  {report['status']}", file=sys.stderr)
PY
    done
  done
done 2>&1
echo
python3 - "$work/results" "$connection_counts" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    connections, server, *values, status = line.split()
    if (connections, server) not in rows:
        order.append((connections, server))
    rows[(connections, server)].append([float(v) for v in values])
print("| connections | server | CPU µs/msg (median) | vs baseline | msg/s | p50 µs | p99 µs "
      "| vol. cs/msg | invol. cs/msg |")
print("|---|---|---|---|---|---|---|---|---|")
for connections, server in order:
    columns = list(zip(*rows[(connections, server)]))
    medians = [statistics.median(c) for c in columns]
    base = rows.get((connections, "baseline"))
    ratio = medians[0] / statistics.median(list(zip(*base))[0]) if base else float("nan")
    cost, rate, p50, p99, vcs, ivcs = medians
    print(f"| {connections} | {server} | {cost:.3f} | {ratio:.3f} | {rate:.0f} | {p50:.1f} | "
          f"{p99:.1f} | {vcs:.4f} | {ivcs:.4f} |")
PY
