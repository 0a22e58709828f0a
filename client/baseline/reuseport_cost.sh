#!/usr/bin/env bash
# Server CPU per echoed message, p99 and idle RSS of model reuseport beside model epoll and the
# plain C epoll baseline, side by side in one run, the method of endpoint_cost.sh: each server
# pinned to CPU 0 (reuseport's workers share it: taskset is inherited by every thread and forked
# worker; steer=cpu is left out for that reason), echo-bench pinned to CPU 1, 64 B ping-pong;
# the servers alternate ROUNDS times and medians are printed.
#
#   client/baseline/reuseport_cost.sh [BIN_DIR] [SECONDS] [ROUNDS] [CONNECTION COUNTS...]
#
# CORES=shared: steer=hash against steer=cpu, where steering can matter: nothing pinned, the
# servers and echo-bench (--threads 2) share both cores; servers baseline, epoll, reuseport-2p
# (hash) and reuseport-2p-cpu (steer=cpu: worker i on CPU i gets the connections that arrive on
# CPU i, which on loopback is the CPU of the client thread that sent them).
#
# Server CPU per message = the server's CPU seconds (user + system of it and its descendants,
# from echo-bench's --server-pid over the measured window) / messages echoed in it. Idle RSS per
# connection = (server tree RSS with the connections held idle - RSS before) / connections.
set -euo pipefail
bin_dir=${1:-build/bin}
seconds=${2:-5}
rounds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100 1000 10000)
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${CORES:-pinned}" = shared ]; then
  on_server_cpu=(); on_client_cpu=(); client_threads=(--threads 2)
  servers=(baseline epoll reuseport-2p reuseport-2p-cpu)
else
  on_server_cpu=(taskset -c 0); on_client_cpu=(taskset -c 1); client_threads=()
  servers=(baseline epoll reuseport-1 reuseport-2 reuseport-2p)
fi

start_server() {  # name -> sets server_pid and port
  local log="$work/server.log"
  : >"$log"
  local common=(--port=0 --drain-timeout=0 --max-connections=60000)
  local echod=("${on_server_cpu[@]}" "$bin_dir/echod")
  case "$1" in
    baseline) "${on_server_cpu[@]}" "$bin_dir/epoll-echo-baseline" 0 2>"$log" & ;;
    epoll) "${echod[@]}" --model=epoll "${common[@]}" 2>"$log" >/dev/null & ;;
    reuseport-1) "${echod[@]}" --model=reuseport --reuseport.workers=1 \
             "${common[@]}" 2>"$log" >/dev/null & ;;
    reuseport-2) "${echod[@]}" --model=reuseport --reuseport.workers=2 --reuseport.mode=threads \
             "${common[@]}" 2>"$log" >/dev/null & ;;
    reuseport-2p) "${echod[@]}" --model=reuseport --reuseport.workers=2 \
             --reuseport.mode=processes "${common[@]}" 2>"$log" >/dev/null & ;;
    reuseport-2p-cpu) "${echod[@]}" --model=reuseport --reuseport.workers=2 \
             --reuseport.mode=processes --reuseport.steer=cpu "${common[@]}" \
             2>"$log" >/dev/null & ;;
  esac
  server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "$1 did not start: $(cat "$log")" >&2; exit 1; }
  sleep 0.2
}
stop_server() {
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}
tree_rss_kib() {  # VmRSS of $1 and its children
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

printf "%-6s %-6s %-13s %10s %10s %10s %9s %s\n" conns round server messages msg/s "us/msg" "p99 us" status
for connections in "${counts[@]}"; do
  for round in $(seq "$rounds"); do
    for server in "${servers[@]}"; do
      start_server "$server"
      "${on_client_cpu[@]}" "$bin_dir/echo-bench" steady "127.0.0.1:$port" -c "$connections" -s 64 \
        "${client_threads[@]}" \
        -d "$seconds" --warmup 1 -q --server-pid "$server_pid" --json "$work/bench.json" \
        --connect-timeout 20s >/dev/null || true
      stop_server
      python3 - "$work/bench.json" "$connections" "$round" "$server" >>"$work/results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cpu = r["cpu"]["server"]
m = r["messages"]["measured"]
cost = (cpu["user_s"] + cpu["system_s"]) / m * 1e6 if m else float("nan")
rate = m / r["measured_seconds"]
p99 = r["latency_us"].get("p99")
est = r["connections"]["established"]
print(f"{sys.argv[2]} {sys.argv[4]} {cost:.3f} {rate:.0f} {p99} {r['status']} {est}")
print(f"{sys.argv[2]:<6} {sys.argv[3]:<6} {sys.argv[4]:<13} {m:>10} {rate:>10.0f} {cost:>10.3f} "
      f"{p99:>9} {r['status']} established={est}", file=sys.stderr)
PY
    done
  done
done 2>&1
echo
python3 - "$work/results" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    c, server, cost, rate, p99, status, est = line.split()
    rows[(c, server)].append((float(cost), float(rate), float(p99), status, int(est)))
print("| connections | server | CPU µs/msg (median) | vs baseline | msg/s (median) | p99 µs (median) | p99 vs baseline | statuses |")
print("|---|---|---|---|---|---|---|---|")
for c in sorted({k[0] for k in rows}, key=int):
    base = rows[(c, "baseline")]
    bcost = statistics.median(x[0] for x in base)
    bp99 = statistics.median(x[2] for x in base)
    for (cc, server), values in rows.items():
        if cc != c:
            continue
        cost = statistics.median(x[0] for x in values)
        p99 = statistics.median(x[2] for x in values)
        print(f"| {c} | {server} | {cost:.3f} | {cost / bcost:.3f} | "
              f"{statistics.median(x[1] for x in values):.0f} | {p99:.0f} | {p99 / bp99:.2f} | "
              f"{','.join(sorted({x[3] for x in values}))} |")
PY
