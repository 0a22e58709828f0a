#!/usr/bin/env bash
# echo-bench's client CPU per message beside the least a ping-pong client can cost
# (client/baseline/epoll_pingpong_client.c), side by side in one run: 64 B ping-pong against the
# C baseline server pinned to CPU 0, each client pinned to CPU 1, at 100 and 1,000 connections,
# alternating the two clients ROUNDS times so drift hits both alike.
#
#   client/baseline/client_cost.sh [BIN_DIR] [SECONDS] [ROUNDS]     (defaults: build/bin 5 3)
#
# Client CPU per message = client CPU seconds (user + system) in the measured window / messages
# echoed in it; echo-bench's comes from its JSON (cpu.client, messages.measured), the minimal
# client's from its own output line. The target is a ratio within 1.1.
#
# TOGETHER=1 runs the two clients at the same time instead of one after the other (both on
# CPU 1, each with its own CONNECTIONS to the one server), for a machine whose speed drifts
# between runs: both see the same seconds, so the drift cancels in the ratio; each then has a
# share of CPU 1, which changes CPU per message little.
set -euo pipefail
bin_dir=${1:-build/bin}
seconds=${2:-5}
rounds=${3:-3}
together=${TOGETHER:-0}
server_cpu=0
client_cpu=1
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

taskset -c "$server_cpu" "$bin_dir/epoll-echo-baseline" 0 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$work/server.err" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$work/server.err")
[ -n "$port" ] || { echo "baseline server did not start" >&2; exit 1; }

run_minimal() {
  taskset -c "$client_cpu" "$bin_dir/epoll-pingpong-client" "$port" "$connections" "$seconds" 64
}
run_echo_bench() {
  taskset -c "$client_cpu" "$bin_dir/echo-bench" steady "$port" -c "$connections" -s 64 \
    -d "$seconds" --warmup 1 -q --json "$work/bench.json" >/dev/null
}

printf "%-12s %-6s %-18s %14s %14s\n" connections round client messages "cpu us/msg"
for connections in 100 1000; do
  for round in $(seq "$rounds"); do
    if [ "$together" = 1 ]; then
      run_echo_bench &
      bench_pid=$!
      sleep 1  # echo-bench's warm-up: the two measured windows coincide
      minimal=$(run_minimal)
      wait "$bench_pid"
    else
      minimal=$(run_minimal)
      run_echo_bench
    fi
    set -- $minimal
    printf "%-12s %-6s %-18s %14s %14s\n" "$connections" "$round" minimal "$2" "${10}"
    echo "$connections minimal ${10}" >>"$work/results"
    python3 - "$work/bench.json" "$connections" "$round" >>"$work/results" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
client = report["cpu"]["client"]
messages = report["messages"]["measured"]
per_message = (client["user_s"] + client["system_s"]) / messages * 1e6
print(f"{sys.argv[2]} echo-bench {per_message:.3f}")
print(f"{sys.argv[2]:<12} {sys.argv[3]:<6} {'echo-bench':<18} {messages:>14} {per_message:>14.3f}",
      file=sys.stderr)
PY
  done
done 2>&1
echo
python3 - "$work/results" <<'PY'
import collections, statistics, sys
costs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    connections, client, cost = line.split()
    costs[(connections, client)].append(float(cost))
for connections in ("100", "1000"):
    minimal = statistics.median(costs[(connections, "minimal")])
    bench = statistics.median(costs[(connections, "echo-bench")])
    print(f"{connections} connections: median client CPU per message echo-bench {bench:.3f} us, "
          f"minimal {minimal:.3f} us, ratio {bench / minimal:.3f}")
PY
