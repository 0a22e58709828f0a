"""Servers the sweep starts, and what /proc says about them (RSS and CPU of a process tree).

Only processes this sweep started are ever signalled: the server by its pid, and at a forced
stop the descendants found under that pid.
"""
import os
import queue
import re
import signal
import subprocess
import threading
import time

LISTENING = re.compile(r"listening on (\S+):(\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children_by_parent():
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


def process_tree(pid):
    """pid and all its descendants."""
    tree = children_by_parent()
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(tree.get(current, []))
    return found


def tree_rss_kib(pid):
    """VmRSS summed over pid's process tree, in KiB (shared pages count once per process)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def tree_cpu_seconds(pid):
    """User + system CPU of pid's tree: the live members' own time plus what pid has reaped."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        total += utime + stime + (cutime + cstime if member == pid else 0)
    return total / CLOCK_TICKS


TCP_COUNTERS = {"ListenOverflows": "listen_overflows", "ListenDrops": "listen_drops",
                "TCPSynRetrans": "syn_retransmits"}


def tcp_counters():
    """The kernel's TcpExt counters the sweep records per point (system-wide: meaningful on a
    quiet machine): accept-queue overflows and drops, and retransmitted SYNs."""
    values = {}
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return values
    for names, numbers in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:") and numbers.startswith("TcpExt:"):
            for name, number in zip(names.split()[1:], numbers.split()[1:]):
                if name in TCP_COUNTERS:
                    values[TCP_COUNTERS[name]] = int(number)
    return values


class ServerError(Exception):
    pass


class Server:
    """A server started by the sweep, pinned with taskset (which execs it: pid is the server).

    Owned by the sweep's main thread; a daemon thread drains its stderr so it never blocks.
    """

    def __init__(self, command, cpu, cwd, ready_timeout_s):
        self.command = ["taskset", "-c", cpu] + command
        self.log = []
        self.port = None
        try:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            text=True, errors="replace", cwd=cwd)
        except OSError as e:
            raise ServerError(f"cannot start {command[0]}: {e.strerror}") from None
        lines = queue.Queue()
        self._drainer = threading.Thread(target=self._drain, args=(lines,), daemon=True)
        self._drainer.start()
        deadline = time.monotonic() + ready_timeout_s
        while self.port is None:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                status = self.process.poll()
                self.stop(timeout_s=5)
                why = (f"exited with status {status}" if status is not None
                       else f"printed no 'listening on' line within {ready_timeout_s:g} s")
                raise ServerError(f"server {why}: {self.tail()}")
            match = LISTENING.search(line)
            if match:
                self.port = int(match.group(2))

    def _drain(self, lines):
        for line in self.process.stderr:
            self.log.append(line)
            del self.log[:-200]
            lines.put(line)
        lines.put(None)

    def tail(self, count=5):
        return " | ".join(line.strip() for line in self.log[-count:]) or "(no output)"

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def settle(self, settle_s, limit_s=30):
        """Waits until the tree stops growing (pool models fork or start threads up front)."""
        time.sleep(settle_s)
        deadline = time.monotonic() + limit_s
        previous = None
        while time.monotonic() < deadline and self.alive():
            current = (len(process_tree(self.pid)), tree_rss_kib(self.pid))
            if current == previous:
                return
            previous = current
            time.sleep(0.2)

    def stop(self, timeout_s):
        """SIGTERM, then wait. Returns (exit status, None) or (status, what went wrong)."""
        try:
            return self._stop(timeout_s)
        finally:
            self._drainer.join(timeout=2)  # a stray grandchild may still hold the pipe
            if not self._drainer.is_alive():
                self.process.stderr.close()

    def _stop(self, timeout_s):
        status = self.process.poll()
        if status is not None:
            return status, f"server had already exited with status {status}"
        members = process_tree(self.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for member in members:  # only the tree this sweep started
                try:
                    os.kill(member, signal.SIGKILL)
                except OSError:
                    pass
            self.process.wait()
            return None, f"server did not stop within {timeout_s:g} s of SIGTERM (killed)"
        if status != 0:
            return status, f"server exited with status {status} after SIGTERM: {self.tail()}"
        return 0, None


class PeakSampler:
    """Samples a server tree's RSS every `period_s` on a thread of its own until stop()."""

    def __init__(self, pid, period_s=0.1):
        self.pid, self.period_s = pid, period_s
        self.peak_kib = tree_rss_kib(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._done.wait(self.period_s):
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))

    def stop(self):
        self._done.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))
        return self.peak_kib
