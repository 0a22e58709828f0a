"""What the report says about the machine a sweep ran on."""
import os
import platform
import subprocess
import time


def _first(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _run(command):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if done.returncode == 0 and text else None


def _os_release():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def describe(repo_dir, sweep, nofile):
    """[(label, value)] for the report's machine section."""
    memory = _first("/proc/meminfo", "MemTotal")
    load = os.getloadavg()
    commit = _run(["git", "-C", str(repo_dir), "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", str(repo_dir), "status", "--porcelain", "--untracked-files=no"])
    facts = [
        ("CPU", _first("/proc/cpuinfo", "model name")),
        ("cores online", str(os.cpu_count())),
        ("memory", memory),
        ("kernel", platform.release()),
        ("system", _os_release()),
        ("Python", platform.python_version()),
        ("Go", _run(["go", "version"])),
        ("descriptor limit (ulimit -n, raised to the hard limit)", str(nofile)),
        ("load average at the start (1, 5, 15 min)", ", ".join(f"{v:.2f}" for v in load)),
        ("how the cores were shared", f"server pinned to CPU {sweep.server_cpu} "
                                      f"(taskset -c {sweep.server_cpu}; forked children inherit "
                                      f"it), client pinned to CPU {sweep.client_cpu}; "
                                      f"echo-bench --threads {sweep.echo_bench_threads}"),
        ("source", (commit or "unknown") + (" (with uncommitted changes)" if dirty else "")),
        ("started", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())),
    ]
    return [(label, value) for label, value in facts if value]
