#!/usr/bin/env bash
# Server CPU per echoed message of several servers measured at the same time, for a machine
# whose speed drifts from one run to the next (a shared host: alternating runs of one server
# spread by ±20% there, far more than the differences in question). Every server runs at once
# pinned to CPU 0, each loaded by its own echo-bench steady (64 B ping-pong) pinned to CPU 1,
# all started together, so every server sees the same machine in the same seconds and the
# drift cancels in the ratios. Each server gets a share of CPU 0, not all of it: CPU per message
# is its own CPU time over the messages it echoed, which a share does not change much, but
# messages/s and latency here are not those of a server alone (use endpoint_cost.sh for them).
#
#   client/baseline/together_cost.sh [-b BIN_DIR] [-s SECONDS] [-r ROUNDS] [-c "100 1000"] \
#       NAME=COMMAND ...
#
# COMMAND starts a server that listens on an ephemeral port and logs "listening on ADDR:PORT"
# (echod and the baseline do). Ratios are to the first server, per round; the last lines are
# the medians of the per-round ratios. Example (the epoll model beside the C baseline and an
# older build):
#
#   client/baseline/together_cost.sh -s 6 -r 5 \
#     baseline="build/bin/epoll-echo-baseline 0" \
#     echod="build/bin/echod --model=epoll --port=0 --drain-timeout=0" \
#     before="/path/to/old/bin/echod --model=epoll --port=0"
set -euo pipefail
bin_dir=build/bin
seconds=5
rounds=5
connection_counts="100 1000"
while getopts "b:s:r:c:" flag; do
  case "$flag" in
    b) bin_dir=$OPTARG ;;
    s) seconds=$OPTARG ;;
    r) rounds=$OPTARG ;;
    c) connection_counts=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "$#" -ge 2 ] || { echo "usage: $0 [-b DIR] [-s S] [-r N] [-c COUNTS] NAME=COMMAND NAME=COMMAND ..." >&2; exit 2; }
names=() commands=()
for spec in "$@"; do
  names+=("${spec%%=*}")
  commands+=("${spec#*=}")
done

work=$(mktemp -d)
server_pids=()
cleanup() {
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port_in() {  # log file -> the port it says the server listens on
  local port
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$1" | head -1)
    [ -n "$port" ] && { echo "$port"; return; }
    sleep 0.05
  done
  echo "server did not start: $(cat "$1")" >&2
  exit 1
}

for connections in $connection_counts; do
  for round in $(seq "$rounds"); do
    server_pids=()
    for i in "${!names[@]}"; do
      # shellcheck disable=SC2086  # the command's words
      taskset -c 0 ${commands[$i]} >"$work/server-$i.log" 2>&1 &
      server_pids+=($!)
    done
    bench_pids=()
    for i in "${!names[@]}"; do
      port=$(port_in "$work/server-$i.log")
      taskset -c 1 "$bin_dir/echo-bench" steady "127.0.0.1:$port" -c "$connections" -s 64 \
        -d "$seconds" --warmup 1 -q --server-pid "${server_pids[$i]}" \
        --json "$work/bench-$i.json" >/dev/null 2>&1 &
      bench_pids+=($!)
    done
    for pid in "${bench_pids[@]}"; do wait "$pid" || true; done
    for pid in "${server_pids[@]}"; do kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; done
    server_pids=()
    for i in "${!names[@]}"; do echo "$work/bench-$i.json ${names[$i]}"; done |
      python3 -c '
import json, sys
rows = []
for line in sys.stdin:
    path, name = line.split()
    report = json.load(open(path))
    server = report["cpu"]["server"]
    messages = report["messages"]["measured"]
    rows.append((name, (server["user_s"] + server["system_s"]) / messages * 1e6,
                 messages / report["measured_seconds"], report["status"]))
for name, cost, rate, status in rows:
    print(f"{sys.argv[1]} {sys.argv[2]} {name} {cost:.3f} {rate:.0f} {cost / rows[0][1]:.3f} {status}")
' "$connections" "$round" | tee -a "$work/results"
  done
done

echo
python3 - "$work/results" <<'PY'
import collections, statistics, sys
ratios = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    connections, _, name, _, _, ratio, _ = line.split()
    key = (int(connections), name)
    if key not in ratios:
        order.append(key)
    ratios[key].append(float(ratio))
print("| connections | server | ratio to the first, per round | median |")
print("|---|---|---|---|")
for key in order:
    values = ratios[key]
    print(f"| {key[0]} | {key[1]} | {', '.join(f'{v:.3f}' for v in values)} | "
          f"{statistics.median(values):.3f} |")
PY
