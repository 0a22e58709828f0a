#!/usr/bin/env bash
# The cost of --metrics on a machine whose speed drifts between runs: echod (epoll) without and
# with --metrics (scraped once a second from CPU 1) served at the same time, both pinned to
# CPU 0, each loaded by its own echo-bench steady (64 B ping-pong, both on CPU 1) started
# together, so both see the same machine in the same seconds and the drift cancels in the
# ratio. Prints per round and connection count (100, 1,000) each server's CPU µs per message
# (user + system from --server-pid over the measured window) and the ratio on/off.
#
#   client/baseline/metrics_cost.sh [BIN_DIR] [SECONDS] [ROUNDS]
set -euo pipefail
bin_dir=${1:-build/bin}
seconds=${2:-5}
rounds=${3:-5}
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT
port_of() { for _ in $(seq 100); do p=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$1" | head -1); [ -n "$p" ] && { echo "$p"; return; }; sleep 0.05; done; exit 1; }
for connections in 100 1000; do
  for round in $(seq "$rounds"); do
    taskset -c 0 "$bin_dir"/echod --model=epoll --port=0 --drain-timeout=0 >"$out/off.log" 2>&1 & off=$!
    taskset -c 0 "$bin_dir"/echod --model=epoll --port=0 --drain-timeout=0 --metrics=127.0.0.1:$metrics_port >"$out/on.log" 2>&1 & on=$!
    pids=($off $on)
    off_port=$(port_of "$out/off.log"); on_port=$(port_of "$out/on.log")
    (while :; do taskset -c 1 curl -sf http://127.0.0.1:$metrics_port/metrics >/dev/null || true; sleep 1; done) & scraper=$!
    pids+=($scraper)
    taskset -c 1 "$bin_dir"/echo-bench steady 127.0.0.1:$off_port -c $connections -s 64 -d $seconds --warmup 1 -q --server-pid $off --json "$out/off.json" >/dev/null &
    b1=$!
    taskset -c 1 "$bin_dir"/echo-bench steady 127.0.0.1:$on_port -c $connections -s 64 -d $seconds --warmup 1 -q --server-pid $on --json "$out/on.json" >/dev/null &
    b2=$!
    wait $b1 || true; wait $b2 || true
    kill $scraper; wait $scraper 2>/dev/null || true
    kill -TERM $off $on; wait $off $on 2>/dev/null || true
    pids=()
    python3 - "$out/off.json" "$out/on.json" $connections $round <<'PY'
import json, sys
def cost(path):
    r = json.load(open(path)); s = r["cpu"]["server"]; m = r["messages"]["measured"]
    return (s["user_s"] + s["system_s"]) / m * 1e6, m / r["measured_seconds"], r["status"]
off, on = cost(sys.argv[1]), cost(sys.argv[2])
print(f"{sys.argv[3]} {sys.argv[4]} off {off[0]:.3f} {off[1]:.0f} {off[2]} on {on[0]:.3f} {on[1]:.0f} {on[2]} ratio {on[0]/off[0]:.3f}")
PY
  done
done
