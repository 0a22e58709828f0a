#!/usr/bin/env bash
# The cost of --metrics on a machine whose speed drifts between runs: echod (epoll) without and
# with --metrics (scraped once a second from CPU 1) served at the same time by together_cost.sh
# (both on CPU 0, each with its own echo-bench steady on CPU 1, 64 B ping-pong at 100 and 1,000
# connections), so both see the same machine in the same seconds and the drift cancels in the
# ratio on/off it prints per round and as medians.
#
#   client/baseline/metrics_cost.sh [BIN_DIR] [SECONDS] [ROUNDS]
set -euo pipefail
bin_dir=${1:-build/bin}
seconds=${2:-5}
rounds=${3:-5}
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(while :; do taskset -c 1 curl -sf "http://127.0.0.1:$metrics_port/metrics" >/dev/null || true
   sleep 1; done) &
scraper=$!
trap 'kill "$scraper" 2>/dev/null || true' EXIT
"$(dirname "$0")/together_cost.sh" -b "$bin_dir" -s "$seconds" -r "$rounds" -c "100 1000" \
  off="$bin_dir/echod --model=epoll --port=0 --drain-timeout=0" \
  on="$bin_dir/echod --model=epoll --port=0 --drain-timeout=0 --metrics=127.0.0.1:$metrics_port"
