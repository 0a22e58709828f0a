#!/usr/bin/env python3
"""How fast a one-connection-per-thread/process model accepts while its clients keep it busy.

Starts echod (--model, pinned to --server-cpu, --port 0), then echo-bench `steady` with
--connections ping-pong clients pinned to --client-cpu. Every client starts its ping-pong as soon
as its connect returns, so the connections accepted first load the server while the rest still
wait in the listen backlog. The script counts the server's connections every 20 ms from the
moment echo-bench starts: for a model that runs each connection on a thread, the threads in
/proc/PID/task beyond those of the idle server; for one that forks, its child processes. It prints
how many had been accepted after 0.5, 1, 2 and 3 s and when the last one was. Python 3 standard
library only. It stops only the processes it started.

Example (docs/models.md, "Accepting under load"):
  client/sweep/accept_under_load.py --bin-dir build/bin --model thread --connections 1000
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

LISTENING = re.compile(r"listening on (\S+):(\d+)")
MARKS = (0.5, 1.0, 2.0, 3.0)


def children(pid):
    found = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found += 1
    return found


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", default="build/bin", help="where echod and echo-bench are")
    parser.add_argument("--echod", help="echod binary (default: BIN_DIR/echod)")
    parser.add_argument("--model", required=True, help="thread or fork (or any model)")
    parser.add_argument("--count", choices=("threads", "children"),
                        help="what one connection adds (default: children for fork/prefork)")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0, help="echo-bench measured time")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--echod-arg", action="append", default=[],
                        help="extra echod argument (repeatable)")
    args = parser.parse_args()

    # This script samples /proc every 20 ms (over a thousand entries with fork): on the server's
    # core that would be one more task competing with the accept loop it measures.
    os.sched_setaffinity(0, {int(args.client_cpu)})
    echod_binary = args.echod or os.path.join(args.bin_dir, "echod")
    bench = os.path.join(args.bin_dir, "echo-bench")
    count_kind = args.count or ("children" if "fork" in args.model else "threads")
    count = children if count_kind == "children" else threads

    server = subprocess.Popen(
        ["taskset", "-c", args.server_cpu, echod_binary, "--model", args.model, "--bind",
         "127.0.0.1", "--port", "0", "--backlog", "4096"]
        + args.echod_arg,
        stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        match = LISTENING.search(line)
        if match:
            port = match.group(2)
            break
    if port is None:
        sys.exit("echod did not start")
    # Keep echod's stderr drained so it never blocks on a full pipe.
    drainer = subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    idle = count(server.pid)

    client = subprocess.Popen(
        ["taskset", "-c", args.client_cpu, bench, "steady", "-p", port, "-c",
         str(args.connections), "-d", str(args.duration), "--warmup", "0", "--connect-timeout",
         "30", "--timeout", "30", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.monotonic()
    samples = []
    while client.poll() is None:
        now = time.monotonic() - start
        samples.append((now, count(server.pid) - idle))
        if now > max(MARKS) and samples[-1][1] >= args.connections:
            break
        time.sleep(0.02)
    report = client.communicate()[0]
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    drainer.wait(timeout=5)

    print(f"model={args.model} connections={args.connections} server-cpu={args.server_cpu} "
          f"client-cpu={args.client_cpu} counted={count_kind}")
    for mark in MARKS:
        seen = max((n for t, n in samples if t <= mark), default=0)
        print(f"  accepted after {mark:.1f} s: {seen}")
    done = next((t for t, n in samples if n >= args.connections), None)
    print("  all accepted after: " + (f"{done:.2f} s" if done is not None else "not within run"))
    if client.returncode not in (0, None):
        print("echo-bench reported errors:\n" + report, file=sys.stderr)


if __name__ == "__main__":
    main()
