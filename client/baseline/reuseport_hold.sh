#!/usr/bin/env bash
# Connections held at once, and server RSS per idle connection.
#
#   client/baseline/reuseport_hold.sh rss [BIN_DIR] [CONNECTIONS]
#     For the baseline, epoll, uring and reuseport (its default, 2 threads, 2 processes): server
#     pinned to CPU 0, one echo-bench `hold` on CPU 1 holding CONNECTIONS (default 10000) idle
#     (one 32 B echo per connection per 60 s), after 1 s of 50 clients echoing to warm the
#     server up; prints (tree RSS while held - RSS before) / CONNECTIONS, and the same for the
#     tree's anonymous PSS (shared pages counted once).
#   client/baseline/reuseport_hold.sh many [BIN_DIR] [CLIENT PROCESSES] [EACH] [WORKERS]
#     One echod --model=reuseport --reuseport.mode=processes (WORKERS, default 4) on CPU 0;
#     CLIENT PROCESSES (default 3) echo-bench `hold` on CPU 1, each with EACH (default 10000)
#     connections from its own 127.0.0.x addresses (each process stays under the 20,000
#     descriptor limit), one echo per connection per second for 20 s; prints each client's
#     status and the server's open connections while all are held.
set -euo pipefail
what=$1; bin_dir=${2:-build/bin}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# Sums, over process $1 and its children, the kB fields of /proc/PID/$2 whose names match $3.
tree_kib() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk -v names="^($3):" '$1 ~ names {n += $2} END {print n + 0}' "/proc/$pid/$2" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
tree_rss_kib() { tree_kib "$1" status VmRSS; }
# Anonymous and shared-memory proportional set size of the tree: a page shared by k processes
# counts 1/k in each, so pages the workers share (the endpoint's slot table, what they inherited
# from the parent) count once, as they are held once, where summed VmRSS counts them once per
# process. File pages are left out: their share moves whenever another process maps the same
# libraries (echo-bench starting does).
tree_pss_kib() { tree_kib "$1" smaps_rollup 'Pss_Anon|Pss_Shmem'; }
port_of() {
  for _ in $(seq 100); do
    p=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$1" | head -1)
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.05
  done
  echo "server did not start: $(cat "$1")" >&2; exit 1
}
open_count() {  # server-side established connections on port $1
  awk -v p=":$(printf %04X "$1")" '$4 == "01" && substr($2, length($2) - 4) == p {n++} END {print n + 0}' /proc/net/tcp
}

if [ "$what" = rss ]; then
  n=${3:-10000}
  for server in baseline epoll uring reuseport reuseport-2 reuseport-2p; do
    log=$work/$server.log
    case $server in
      baseline) taskset -c 0 "$bin_dir/epoll-echo-baseline" 0 2>"$log" & ;;
      epoll) taskset -c 0 "$bin_dir/echod" --model=epoll --port=0 --drain-timeout=0 2>"$log" & ;;
      uring) taskset -c 0 "$bin_dir/echod" --model=uring --port=0 --drain-timeout=0 2>"$log" & ;;
      # the default: processes, one per CPU in the affinity mask (one here)
      reuseport) taskset -c 0 "$bin_dir/echod" --model=reuseport --port=0 --drain-timeout=0 2>"$log" & ;;
      reuseport-2) taskset -c 0 "$bin_dir/echod" --model=reuseport --reuseport.workers=2 --reuseport.mode=threads --port=0 --drain-timeout=0 2>"$log" & ;;
      reuseport-2p) taskset -c 0 "$bin_dir/echod" --model=reuseport --reuseport.workers=2 --reuseport.mode=processes --port=0 --drain-timeout=0 2>"$log" & ;;
    esac
    spid=$!; pids=("$spid")
    port=$(port_of "$log"); sleep 0.5
    # Warm up first: a forked worker maps in its code and libraries as it first runs them, which
    # is a fixed cost, not one of the connections'.
    taskset -c 1 "$bin_dir/echo-bench" steady "127.0.0.1:$port" -c 50 -s 64 -d 1 --warmup 0 -q \
      >/dev/null
    sleep 0.5
    before=$(tree_rss_kib "$spid"); before_pss=$(tree_pss_kib "$spid")
    taskset -c 1 "$bin_dir/echo-bench" hold "127.0.0.1:$port" -c "$n" -i 60s -d 6s --warmup 1 -q \
      --connect-timeout 20s --json "$work/hold.json" >/dev/null &
    bpid=$!
    for _ in $(seq 200); do [ "$(open_count "$port")" -ge "$n" ] && break; sleep 0.1; done
    sleep 2
    held=$(open_count "$port"); during=$(tree_rss_kib "$spid"); during_pss=$(tree_pss_kib "$spid")
    wait "$bpid" || true
    status=$(python3 -c "import json;r=json.load(open('$work/hold.json'));print(r['status'],r['connections']['established'])")
    kill -TERM "$spid"; wait "$spid" 2>/dev/null || true
    python3 -c "print(f'$server: RSS before {$before} KiB, with $held connections held {$during} KiB: {($during-$before)/$n:.3f} KiB per idle connection; anonymous PSS {$before_pss} -> {$during_pss} KiB: {($during_pss-$before_pss)/$n:.3f} KiB (echo-bench: $status)')"
  done
  exit 0
fi

clients=${3:-3}; each=${4:-10000}; workers=${5:-4}
log=$work/echod.log
taskset -c 0 "$bin_dir/echod" --model=reuseport --reuseport.mode=processes --reuseport.workers="$workers" \
  --port=0 --max-connections=100000 --idle-timeout=0 --drain-timeout=0 2>"$log" &
spid=$!; pids=("$spid")
port=$(port_of "$log"); sleep 0.5
for i in $(seq "$clients"); do
  first=$(( (i - 1) * 4 + 2 )); last=$(( first + 3 ))
  taskset -c 1 "$bin_dir/echo-bench" hold "127.0.0.1:$port" -c "$each" -i 1s -d 20s --warmup 2 -q \
    --source-ips "127.0.0.$first-127.0.0.$last" --connect-timeout 30s --json "$work/c$i.json" \
    >/dev/null 2>"$work/c$i.err" &
  pids+=($!)
done
peak=0; peak_fds=""
for _ in $(seq 250); do
  held=$(open_count "$port")
  if [ "$held" -gt "$peak" ]; then
    peak=$held
    peak_fds=$(for w in $(pgrep -P "$spid"); do echo -n "$(ls /proc/$w/fd | wc -l) "; done)
  fi
  alive=0; for p in "${pids[@]:1}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 1 ] || break
  sleep 0.1
done
for p in "${pids[@]:1}"; do wait "$p" || true; done
for i in $(seq "$clients"); do
  python3 -c "import json;r=json.load(open('$work/c$i.json'));e=r['errors'];print('client $i:',r['status'],'established',r['connections']['established'],'echoed',r['messages']['echoed'],'lost',r['messages']['lost'],'errors',{k:v for k,v in e.items() if v not in (0,None,'',[],{})})" || cat "$work/c$i.err"
done
echo "server: most connections established at once (from /proc/net/tcp, server side) $peak; descriptors per worker then: $peak_fds"
kill -TERM "$spid"; wait "$spid" || true
grep -E "summary|worker|error" "$log" | tail -5
