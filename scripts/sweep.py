#!/usr/bin/env python3
"""Benchmark sweep: every echod model, plus the plain C epoll baseline, under echo-bench.

For each server and each connection count, the script starts the server pinned to one CPU
(--server-cpu) with --port 0, reads its port from the "listening on ADDR:PORT" line, and then
  1. measures its memory holding that many idle connections: VmRSS (summed over the process
     tree, for models that fork) before, and at its peak during, an echo-bench `hold` run;
  2. runs echo-bench `steady` ping-pong once per message size, pinned to another CPU
     (--client-cpu), with --server-pid so the server's CPU time is measured over the same window.
It stops only the process it started (SIGTERM, then waits). Combinations a model cannot serve
are not run; they appear in the table as "skipped: <reason>".

Results go to --out: results.md (Markdown table), results.csv, one JSON report per echo-bench
run, and SVG plots (messages/s and server CPU microseconds per message against connections, one
line per server, one plot per message size). Python 3 standard library only.

Example (see docs/benchmarking.md):
  scripts/sweep.py --bin-dir build/bin --connections 100,1000 --sizes 64 --duration 3
"""

import argparse
import csv
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

BASELINE = "baseline"  # the C server's name in the results
LISTENING = re.compile(r"listening on (\S+):(\d+)")
SETTLE_S = 1  # seconds between a server's "listening" line and its idle memory reading

# Models that serve each client with a process or thread of their own, capped by an option:
# the cap is raised to the connection count (never below its default, which the pools'
# min-spare must not exceed), up to --pool-limit.
POOL_OPTIONS = {
    "prefork": ("prefork.max", "one worker process per connection"),
    "prethread": ("prethread.max", "one pool thread per connection"),
    "thread": ("thread.max-threads", "one thread per connection"),
    "fork": ("fork.max-children", "one child process per connection"),
}
POOL_DEFAULT_CAP = 256  # the default of prefork.max and prethread.max
# Models built on select(): no descriptor >= FD_SETSIZE can be watched.
SELECT_LIMIT = 1000
SELECT_MODELS = {"select", "select-pool"}


def parse_list(text, kind=int):
    return [kind(item) for item in text.split(",") if item.strip()]


def command_line():
    repo = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", type=Path, default=repo / "build" / "bin",
                   help="directory holding echod, echo-bench and epoll-echo-baseline "
                        "(default: %(default)s)")
    p.add_argument("--models", help="comma-separated models (default: echod --list-models)")
    p.add_argument("--no-baseline", action="store_true", help="leave out the C baseline")
    p.add_argument("--connections", default="100,1000,10000",
                   help="connection counts (default: %(default)s)")
    p.add_argument("--sizes", default="64,4096", help="message sizes in bytes (default: %(default)s)")
    p.add_argument("--duration", type=float, default=5, help="measured seconds per steady run")
    p.add_argument("--warmup", type=float, default=1, help="warm-up seconds per steady run")
    p.add_argument("--hold-duration", type=float, default=3, help="seconds of each hold run")
    p.add_argument("--hold-interval", type=float, default=1,
                   help="seconds between one held connection's messages")
    p.add_argument("--threads", type=int, default=1, help="echo-bench --threads")
    p.add_argument("--server-cpu", default="0", help="taskset CPU list for the server")
    p.add_argument("--client-cpu", default="1", help="taskset CPU list for echo-bench")
    p.add_argument("--pool-limit", type=int, default=1000,
                   help="most processes/threads a per-connection model may be given "
                        "(default: %(default)s); past it the point is skipped")
    p.add_argument("--out", type=Path, default=Path("sweep-results"),
                   help="output directory (default: %(default)s)")
    args = p.parse_args()
    args.connections = parse_list(args.connections)
    args.sizes = parse_list(args.sizes)
    return args


# ---- processes ------------------------------------------------------------------------------

def children_of():
    """parent pid -> [child pids], from /proc/*/stat."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def tree_rss_kib(pid):
    """VmRSS of pid and all its descendants, in KiB (shared pages count once per process)."""
    tree = children_of()
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(tree.get(current, []))
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Server:
    """A server started by this script, pinned to a CPU; stop() ends exactly that process."""

    def __init__(self, command, cpu, ready_timeout=15):
        self.command = ["taskset", "-c", cpu] + command
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, errors="replace")
        self.log = []
        lines = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        self.port = None
        while self.port is None:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:  # exited, or no line in time
                self.stop()
                raise RuntimeError(f"{' '.join(command)} did not report its port:\n"
                                   + "".join(self.log[-20:]))
            match = LISTENING.search(line)
            if match:
                self.port = int(match.group(2))

    def _drain(self, lines):
        for line in self.process.stderr:  # keeps reading so the server never blocks on stderr
            self.log.append(line)
            del self.log[:-200]
            lines.put(line)
        lines.put(None)

    @property
    def pid(self):
        return self.process.pid  # taskset execs the server, so this is the server itself

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                print(f"warning: {self.command} ignored SIGTERM; killed", file=sys.stderr)


def echo_bench(args, workload, port, options, json_path, bound_s):
    """Runs echo-bench pinned to the client CPU; returns (its JSON report or None, stderr)."""
    command = (["taskset", "-c", args.client_cpu, str(args.bin_dir / "echo-bench"), workload,
                "--host", "127.0.0.1", "--port", str(port), "--threads", str(args.threads),
                "--quiet", "--json", str(json_path), "--max-time", str(bound_s)] + options)
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=bound_s + 30)
    except subprocess.TimeoutExpired:
        return None, "echo-bench did not end within its bound"
    try:
        return json.loads(json_path.read_text()), done.stdout
    except (OSError, ValueError):
        return None, done.stdout


# ---- what each model can be asked to do ------------------------------------------------------

def describe(args, model):
    out = subprocess.run([str(args.bin_dir / "echod"), "--model", model, "--describe-model"],
                         capture_output=True, text=True, timeout=30).stdout
    for line in out.splitlines():
        if line.startswith("capabilities:"):
            return {c.strip() for c in line.split(":", 1)[1].split(",")}
    return set()


def plan(args, model, capabilities, connections):
    """(extra server options, None) to run the point, or (None, reason) to skip it."""
    if model == BASELINE:
        return [], None
    if "one-client-at-a-time" in capabilities and connections > 1:
        return None, "serves one client at a time"
    if model in SELECT_MODELS and connections > SELECT_LIMIT:
        return None, "select() cannot watch descriptors >= FD_SETSIZE (1024)"
    if model in POOL_OPTIONS:
        key, what = POOL_OPTIONS[model]
        if connections > args.pool_limit:
            return None, f"needs {what}; {connections} > --pool-limit {args.pool_limit}"
        cap = max(connections, POOL_DEFAULT_CAP) if key.endswith(".max") else connections
        return [f"--{key}={cap}"], None
    return [], None


# ---- the sweep --------------------------------------------------------------------------------

def server_command(args, model, extra):
    if model == BASELINE:
        return [str(args.bin_dir / "epoll-echo-baseline"), "0", "127.0.0.1"]
    return ([str(args.bin_dir / "echod"), "--model", model, "--bind", "127.0.0.1", "--port", "0"]
            + extra)


def measure_memory(args, server, connections, json_path):
    """(RSS KiB before, peak RSS KiB while holding, hold report, echo-bench output)."""
    time.sleep(SETTLE_S)  # let pool models finish starting their processes and threads
    idle = tree_rss_kib(server.pid)
    peak = [idle]
    holding = threading.Event()

    def sample():
        while not holding.wait(0.2):
            peak[0] = max(peak[0], tree_rss_kib(server.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    report, output = echo_bench(
        args, "hold", server.port,
        ["-c", str(connections), "-d", str(args.hold_duration), "--warmup", "0",
         "--interval", str(args.hold_interval), "--server-pid", str(server.pid)],
        json_path, args.hold_duration + 120)
    holding.set()
    sampler.join()
    return idle, peak[0], report, output


def run_point(args, model, capabilities, connections, rows):
    extra, skip = plan(args, model, capabilities, connections)
    base = {"server": model, "connections": connections}
    if skip:
        for size in args.sizes:
            rows.append(dict(base, size=size, status=f"skipped: {skip}"))
        print(f"{model} c={connections}: skipped: {skip}", flush=True)
        return
    try:
        server = Server(server_command(args, model, extra), args.server_cpu)
    except (RuntimeError, OSError) as e:
        for size in args.sizes:
            rows.append(dict(base, size=size, status=f"failed: server did not start ({e})"))
        return
    try:
        idle, peak, hold, hold_output = measure_memory(
            args, server, connections, args.out / f"{model}-c{connections}-hold.json")
        held = hold["connections"]["open_at_end"] if hold else 0
        memory = {
            "rss_idle_kib": idle,
            "rss_held_kib": peak,
            "bytes_per_connection": round((peak - idle) * 1024 / connections) if held else "",
            "hold_status": hold["status"] if hold else "no report",
        }
        if not hold or hold["status"] != "ok":
            print(f"{model} c={connections} hold: {memory['hold_status']}\n{hold_output}")
        for size in args.sizes:
            json_path = args.out / f"{model}-c{connections}-s{size}.json"
            report, output = echo_bench(
                args, "steady", server.port,
                ["-c", str(connections), "-s", str(size), "-d", str(args.duration),
                 "--warmup", str(args.warmup), "--server-pid", str(server.pid)],
                json_path, args.duration + args.warmup + 120)
            row = dict(base, size=size, **memory)
            row.update(summarize(report) if report else {"status": "failed: no report"})
            if row["status"] != "ok":
                print(output, file=sys.stderr)
            rows.append(row)
            print(f"{model} c={connections} s={size}: {row.get('status')} "
                  f"{row.get('msgs_per_s', '')} msg/s", flush=True)
    finally:
        server.stop()


def summarize(report):
    seconds = report["cpu"]["seconds"]
    messages = report["messages"]["per_second"] * seconds
    server = report["cpu"]["server"]
    client = report["cpu"]["client"]

    def micros_per_message(cpu):
        if not cpu or messages <= 0:
            return ""
        return round((cpu["user_s"] + cpu["system_s"]) * 1e6 / messages, 2)

    latency = report["latency_us"]
    return {
        "status": report["status"],
        "msgs_per_s": round(report["messages"]["per_second"]),
        "p50_us": latency["p50"], "p99_us": latency["p99"], "max_us": latency["max"],
        "server_cpu_pct": round(server["percent_of_one_core"], 1) if server else "",
        "server_cpu_us_per_msg": micros_per_message(server),
        "client_cpu_pct": round(client["percent_of_one_core"], 1),
        "client_cpu_us_per_msg": micros_per_message(client),
        "errors": report["errors"]["total"],
    }


# ---- output -----------------------------------------------------------------------------------

COLUMNS = ["server", "connections", "size", "status", "msgs_per_s", "p50_us", "p99_us", "max_us",
           "server_cpu_pct", "server_cpu_us_per_msg", "client_cpu_pct", "client_cpu_us_per_msg",
           "errors", "rss_idle_kib", "rss_held_kib", "bytes_per_connection", "hold_status"]


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)


def write_markdown(path, rows, args, started):
    lines = [
        "# echo-bench sweep",
        "",
        f"Started {started}; `{' '.join(sys.argv)}`.",
        f"Server pinned to CPU {args.server_cpu}, echo-bench to CPU {args.client_cpu} "
        f"({args.threads} thread(s)); steady ping-pong, {args.duration} s measured after "
        f"{args.warmup} s warm-up; memory from a {args.hold_duration} s hold run "
        f"(one message per connection every {args.hold_interval} s), VmRSS summed over the "
        "server's process tree.",
        "",
        "| server | conns | size | msg/s | p50 µs | p99 µs | server CPU % | server µs/msg "
        "| client CPU % | RSS idle KiB | RSS held KiB | bytes/conn | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        def cell(key, fmt="{}"):
            value = r.get(key)
            return "" if value in ("", None) else fmt.format(value)
        lines.append(
            f"| {r['server']} | {r['connections']} | {r['size']} | {cell('msgs_per_s')} "
            f"| {cell('p50_us', '{:.1f}')} | {cell('p99_us', '{:.1f}')} "
            f"| {cell('server_cpu_pct')} | {cell('server_cpu_us_per_msg')} "
            f"| {cell('client_cpu_pct')} | {cell('rss_idle_kib')} | {cell('rss_held_kib')} "
            f"| {cell('bytes_per_connection')} | {r['status']} |")
    path.write_text("\n".join(lines) + "\n")


def write_svg(path, title, y_label, series, x_values):
    """A line plot: x is the connection count (evenly spaced), one polyline per server."""
    width, height, left, right, top, bottom = 720, 420, 80, 170, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [v for line in series.values() for _, v in line]
    y_max = max(points, default=1) * 1.1 or 1
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"]

    def x_of(connections):
        index = x_values.index(connections)
        return left + (plot_w * index / max(1, len(x_values) - 1) if len(x_values) > 1
                       else plot_w / 2)

    def y_of(value):
        return top + plot_h - plot_h * value / y_max

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
           'stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
           f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">'
           'connections</text>',
           f'<text x="15" y="{top + plot_h / 2}" text-anchor="middle" '
           f'transform="rotate(-90 15 {top + plot_h / 2})">{y_label}</text>']
    for tick in range(6):
        value = y_max * tick / 5
        y = y_of(value)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{value:.4g}</text>')
    for connections in x_values:
        out.append(f'<text x="{x_of(connections):.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{connections}</text>')
    for i, (name, line) in enumerate(sorted(series.items())):
        colour = colours[i % len(colours)]
        coords = " ".join(f"{x_of(c):.1f},{y_of(v):.1f}" for c, v in sorted(line))
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                   'stroke-width="2"/>')
        for c, v in line:
            out.append(f'<circle cx="{x_of(c):.1f}" cy="{y_of(v):.1f}" r="3" fill="{colour}"/>')
        y = top + 10 + 18 * i
        out.append(f'<line x1="{width - right + 15}" y1="{y}" x2="{width - right + 35}" '
                   f'y2="{y}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{width - right + 40}" y="{y + 4}">{name}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def write_plots(out_dir, rows, args):
    for size in args.sizes:
        for key, title, label, name in [
                ("msgs_per_s", f"messages/s, {size} B ping-pong", "messages/s",
                 f"msgs_per_s-s{size}.svg"),
                ("server_cpu_us_per_msg", f"server CPU per message, {size} B",
                 "server CPU µs per message", f"server_cpu_us_per_msg-s{size}.svg")]:
            series = {}
            for r in rows:
                if r["size"] == size and r["status"] == "ok" and r.get(key) not in ("", None):
                    series.setdefault(r["server"], []).append((r["connections"], r[key]))
            write_svg(out_dir / name, title, label, series, args.connections)


def main():
    args = command_line()
    args.out.mkdir(parents=True, exist_ok=True)
    for binary in ["echod", "echo-bench"] + ([] if args.no_baseline else ["epoll-echo-baseline"]):
        if not (args.bin_dir / binary).exists():
            sys.exit(f"sweep.py: {args.bin_dir / binary} not found (see --bin-dir)")
    if args.models:
        models = parse_list(args.models, str)
    else:
        listing = subprocess.run([str(args.bin_dir / "echod"), "--list-models"],
                                 capture_output=True, text=True, timeout=30).stdout
        models = [line.split()[0] for line in listing.splitlines() if line.strip()]
    servers = models + ([] if args.no_baseline else [BASELINE])
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    rows = []
    for model in servers:
        capabilities = set() if model == BASELINE else describe(args, model)
        for connections in args.connections:
            run_point(args, model, capabilities, connections, rows)
    write_csv(args.out / "results.csv", rows)
    write_markdown(args.out / "results.md", rows, args, started)
    write_plots(args.out, rows, args)
    print(f"results in {args.out}/results.md, results.csv and *.svg")
    return 0 if all(r["status"] == "ok" or r["status"].startswith("skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
