"""The client runs behind each point: echo-bench (steady, hold, churn) or the seed articles'
client (seed-client), each pinned to the client CPU and writing its JSON to a fresh path."""
import json
import subprocess
import sys
from pathlib import Path

from .config import Point


def default_max_time(point):
    """A hard bound on one client run, from its own size: never less than a minute."""
    if point.max_time_s:
        return point.max_time_s
    if point.workload in ("steady", "hold"):
        return 60 + 2 * (point.duration_s + point.warmup_s) + point.connections / 200
    exchanges = point.workers * point.iterations * max(1, point.exchanges)
    return 120 + exchanges / 2000


def echo_bench_command(bench, point: Point, host, port, server_pid, threads, json_path):
    command = [str(bench), point.workload, "--host", host, "--port", str(port),
               "--threads", str(threads), "--quiet", "--json", str(json_path),
               "--max-time", f"{default_max_time(point):g}", "--server-pid", str(server_pid)]
    if point.workload == "steady":
        command += ["-c", str(point.connections), "-s", str(point.size),
                    "-d", f"{point.duration_s:g}", "--warmup", f"{point.warmup_s:g}"]
    elif point.workload == "hold":
        command += ["-c", str(point.connections), "-s", str(point.size),
                    "-d", f"{point.duration_s:g}", "--warmup", f"{point.warmup_s:g}",
                    "--interval", f"{point.interval_s:g}"]
    elif point.workload == "churn":
        command += ["-w", str(point.workers), "-a", str(point.iterations),
                    "-e", str(point.exchanges), "-s", str(point.size)]
    else:
        raise ValueError(f"echo-bench has no workload {point.workload}")
    return command


def seed_client_command(peers_dir, point: Point, host, port, json_path):
    return [sys.executable, str(Path(peers_dir) / "seed_client.py"), "--host", host,
            "--port", str(port), "--workers", str(point.workers), "--actions",
            str(point.iterations), "--exchanges", str(point.exchanges), "--loop", point.loop,
            "--json", str(json_path)]


class ClientRun:
    """The outcome of one client run: exit status, its JSON (or None) and why not."""

    def __init__(self, exit_status, report, problem, output):
        self.exit_status, self.report, self.problem, self.output = (exit_status, report,
                                                                    problem, output)


def run_client(command, cpu, json_path, timeout_s, cwd):
    """Runs command pinned to cpu. The JSON at json_path is removed first, so a client that
    exits before writing it can never be credited with an earlier run's file."""
    json_path = Path(json_path)
    json_path.unlink(missing_ok=True)
    try:
        done = subprocess.run(["taskset", "-c", cpu] + command, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", timeout=timeout_s, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        json_path.unlink(missing_ok=True)  # half-written at best
        output = e.stdout if isinstance(e.stdout, str) else ""
        return ClientRun(None, None, f"client did not end within {timeout_s:g} s (killed)",
                         output or "")
    except OSError as e:
        return ClientRun(None, None, f"cannot start the client: {e.strerror}", "")
    try:
        report = json.loads(json_path.read_text())
    except FileNotFoundError:
        return ClientRun(done.returncode, None,
                         f"client exited with status {done.returncode} without writing its "
                         "JSON", done.stdout)
    except (OSError, ValueError) as e:
        return ClientRun(done.returncode, None, f"client's JSON is unreadable ({e})",
                         done.stdout)
    if not isinstance(report, dict):
        return ClientRun(done.returncode, None, "client's JSON is not an object", done.stdout)
    problem = None
    if done.returncode != 0:
        problem = f"client exited with status {done.returncode}"
    return ClientRun(done.returncode, report, problem, done.stdout)
