#!/usr/bin/env bash
# Server CPU per echoed message of echod's epoll model beside the plain C epoll baseline, side
# by side in one run: with the endpoint guarantees at their defaults (caps, idle timeout 300 s),
# with the idle timeout off, and (optionally) an echod built before them (OLD_BIN_DIR). Each
# server pinned to CPU 0, echo-bench to CPU 1; 64 B ping-pong at 100 and 1,000 connections;
# the servers alternate ROUNDS times, each round starting one server further along the list (so
# none always runs first or last), so drift hits all alike; medians are printed.
# METRICS=1 adds echod with --metrics, scraped once a second (from CPU 1) while it runs;
# SERVERS="baseline echod echod-metrics" runs only the servers named.
#
#   client/baseline/endpoint_cost.sh [BIN_DIR] [SECONDS] [ROUNDS] [OLD_BIN_DIR]
#
# Server CPU per message = the server's CPU seconds (user + system, from echo-bench's
# --server-pid over the measured window) / messages echoed in it.
set -euo pipefail
bin_dir=${1:-build/bin}
seconds=${2:-5}
rounds=${3:-3}
old_bin_dir=${4:-}
work=$(mktemp -d)
server_pid=""
scraper_pid=""
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  if [ -n "$scraper_pid" ]; then kill "$scraper_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

start_server() {  # name -> sets server_pid and port
  local log="$work/server.log"
  : >"$log"
  case "$1" in
    baseline) taskset -c 0 "$bin_dir/epoll-echo-baseline" 0 2>"$log" & ;;
    echod) taskset -c 0 "$bin_dir/echod" --model=epoll --port=0 \
             --drain-timeout=0 2>"$log" >/dev/null & ;;
    echod-idle-off) taskset -c 0 "$bin_dir/echod" --model=epoll --port=0 \
             --drain-timeout=0 --idle-timeout=0 2>"$log" >/dev/null & ;;
    echod-metrics) taskset -c 0 "$bin_dir/echod" --model=epoll --port=0 \
             --drain-timeout=0 --metrics="127.0.0.1:$metrics_port" 2>"$log" >/dev/null &
      server_pid=$!
      (while :; do taskset -c 1 curl -sf "http://127.0.0.1:$metrics_port/metrics" >/dev/null || true;
         sleep 1; done) &
      scraper_pid=$!
      ;;
    echod-before) taskset -c 0 "$old_bin_dir/echod" --model=epoll --port=0 2>"$log" >/dev/null & ;;
  esac
  [ "$1" = echod-metrics ] || server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "$1 did not start: $(cat "$log")" >&2; exit 1; }
}
stop_server() {
  if [ -n "$scraper_pid" ]; then kill "$scraper_pid"; wait "$scraper_pid" 2>/dev/null || true; scraper_pid=""; fi
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

servers=(baseline echod echod-idle-off)
[ -n "$old_bin_dir" ] && servers+=(echod-before)
[ "${METRICS:-0}" = 1 ] && servers+=(echod-metrics)
# SERVERS="baseline echod echod-metrics": only these (more rounds in the same time).
[ -n "${SERVERS:-}" ] && read -r -a servers <<<"$SERVERS"
printf "%-12s %-6s %-16s %12s %12s %14s\n" connections round server messages msg/s "cpu us/msg"
for connections in 100 1000; do
  for round in $(seq "$rounds"); do
    shift_by=$(( (round - 1) % ${#servers[@]} ))
    for server in "${servers[@]:shift_by}" "${servers[@]:0:shift_by}"; do
      start_server "$server"
      taskset -c 1 "$bin_dir/echo-bench" steady "127.0.0.1:$port" -c "$connections" -s 64 \
        -d "$seconds" --warmup 1 -q --server-pid "$server_pid" --json "$work/bench.json" \
        >/dev/null || true
      stop_server
      python3 - "$work/bench.json" "$connections" "$round" "$server" >>"$work/results" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
server = report["cpu"]["server"]
messages = report["messages"]["measured"]
per_message = (server["user_s"] + server["system_s"]) / messages * 1e6
rate = messages / report["measured_seconds"]
print(f"{sys.argv[2]} {sys.argv[3]} {sys.argv[4]} {per_message:.3f} {rate:.0f} {report['status']}")
print(f"{sys.argv[2]:<12} {sys.argv[3]:<6} {sys.argv[4]:<16} {messages:>12} {rate:>12.0f} "
      f"{per_message:>14.3f}  {report['status']}", file=sys.stderr)
PY
    done
  done
done 2>&1
echo
python3 - "$work/results" <<'PY'
import collections, statistics, sys
costs = collections.defaultdict(list)
rates = collections.defaultdict(list)
by_round = {}
for line in open(sys.argv[1]):
    connections, round_, server, cost, rate, status = line.split()
    costs[(connections, server)].append(float(cost))
    rates[(connections, server)].append(float(rate))
    by_round[(connections, round_, server)] = float(cost)
# Paired: each run against the baseline of its own round (minutes apart at most), so a machine
# that drifts between rounds moves both sides of each ratio alike.
paired = collections.defaultdict(list)
for (connections, round_, server), cost in by_round.items():
    base = by_round.get((connections, round_, "baseline"))
    if base:
        paired[(connections, server)].append(cost / base)
print("| connections | server | CPU µs/msg (median) | vs baseline | vs baseline, paired by round (median) | msg/s (median) |")
print("|---|---|---|---|---|---|")
for connections in ("100", "1000"):
    if (connections, "baseline") not in costs:
        continue
    base = statistics.median(costs[(connections, "baseline")])
    for (c, server), values in sorted(costs.items()):
        if c != connections:
            continue
        cost = statistics.median(values)
        ratio = statistics.median(paired[(c, server)]) if paired[(c, server)] else float("nan")
        print(f"| {connections} | {server} | {cost:.3f} | {cost / base:.3f} | {ratio:.3f} | "
              f"{statistics.median(rates[(c, server)]):.0f} |")
PY
