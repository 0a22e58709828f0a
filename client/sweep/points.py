"""Running one point: plan it (or say why not), start a fresh server, run the client, stop the
server and check how it ended. Whatever fails is recorded in the row; the sweep goes on."""
import os
import resource
import shutil
import sys
from pathlib import Path

from . import clients, processes, results

HOST = "127.0.0.1"


def descriptor_limit():
    """Raises this process's soft RLIMIT_NOFILE to the hard limit (servers and clients inherit
    it) and returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def plan(spec, capabilities, point, pool_limit, nofile):
    """(extra server arguments, None) to run the point, or (None, reason) to skip it."""
    persistent = point.workload in ("steady", "hold")
    if persistent and "one-client-at-a-time" in capabilities and point.connections > 1:
        return None, "serves one client at a time (declared capability)"
    if persistent and spec.max_connections and point.connections > spec.max_connections:
        return None, f"{spec.limit_reason} ({point.connections} > {spec.max_connections})"
    if persistent and point.connections + 64 > nofile:
        return None, f"needs {point.connections} descriptors; ulimit -n allows {nofile}"
    if spec.per_connection_option and persistent:
        # Held connections each need a process or thread; churn's come and go, so the model
        # keeps its defaults there (prefork and prethread pools grow to 256 by themselves).
        if point.concurrency > pool_limit:
            return None, (f"needs {spec.per_connection_option}={point.concurrency}, above the "
                          f"sweep's pool_limit {pool_limit}")
        value = max(point.concurrency, spec.per_connection_floor)
        return [f"--{spec.per_connection_option}={value}"], None
    return [], None


def server_command(spec, paths, extra):
    values = {"bin": str(paths.bin_dir), "peers": str(paths.peers_dir), "host": HOST, "port": "0",
              "python": sys.executable}
    return [part.format(**values) for part in spec.command] + extra


class Paths:
    def __init__(self, bin_dir, peers_dir, out_dir):
        self.bin_dir, self.peers_dir, self.out_dir = Path(bin_dir), Path(peers_dir), Path(out_dir)
        self.echo_bench = self.bin_dir / "echo-bench"


def base_row(spec, point):
    return {"server": spec.name, "kind": spec.kind, "counterpart": spec.counterpart or None,
            "workload": point.workload, "group": point.group,
            "connections": point.connections or None,
            "size": point.size or None, "workers": point.workers or None,
            "iterations": point.iterations or None,
            "exchanges": point.exchanges if point.workload in ("churn", "seed-client") else None,
            "loop": point.loop or None, "suspect": False}


def run_point(sweep, spec, capabilities, point, paths, nofile):
    row = base_row(spec, point)
    extra, skip = plan(spec, capabilities, point, sweep.pool_limit, nofile)
    if skip:
        row.update(status="skipped", problem=skip)
        return row
    work = paths.out_dir / "points" / point.ident
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    json_path = work / "client.json"
    row["json"] = os.path.relpath(json_path, paths.out_dir)
    try:
        server = processes.Server(server_command(spec, paths, extra), sweep.server_cpu, work,
                                  sweep.ready_timeout_s)
    except processes.ServerError as e:
        row.update(status="failed", problem=str(e), json=None)
        return row
    problems = []
    try:
        server.settle(sweep.settle_s)
        rss_idle = processes.tree_rss_kib(server.pid)
        cpu_before = processes.tree_cpu_seconds(server.pid)
        sampler = processes.PeakSampler(server.pid)
        counters_before = processes.tcp_counters()
        if point.workload == "seed-client":
            command = clients.seed_client_command(paths.peers_dir, point, HOST, server.port,
                                                  json_path)
        else:
            command = clients.echo_bench_command(paths.echo_bench, point, HOST, server.port,
                                                 server.pid, sweep.echo_bench_threads, json_path)
        (work / "client.command").write_text(" ".join(command) + "\n")
        run = clients.run_client(command, sweep.client_cpu, json_path,
                                 clients.default_max_time(point) + 30, work)
        counters = processes.tcp_counters()
        rss_peak = sampler.stop()
        server_cpu = processes.tree_cpu_seconds(server.pid) - cpu_before
        if not server.alive():
            problems.append(f"server died during the run (status {server.process.poll()}): "
                            f"{server.tail()}")
    finally:
        exit_status, stop_problem = server.stop(sweep.stop_timeout_s)
        (work / "server.log").write_text("".join(server.log))
    (work / "client.out").write_text(run.output or "")
    row["server_exit"], row["client_exit"] = exit_status, run.exit_status
    status, problem, suspect, reasons = results.verdict(run.report, run.exit_status, run.problem)
    if run.report is not None:
        row.update(results.summarize(point.workload, run.report, server_cpu, rss_idle, rss_peak))
        row.update({k: v - counters_before[k] for k, v in counters.items()
                    if k in counters_before})
    else:
        row["json"] = None
    if problem:
        problems.insert(0, problem)
    died = any(p.startswith("server died") for p in problems)
    if stop_problem and not died:  # a dead server's "already exited" would say it twice
        problems.append(stop_problem)
    if stop_problem or died:
        status = "failed"
    row.update(status=status, problem="; ".join(problems) or None, suspect=suspect,
               suspect_reasons=reasons or None)
    return row
