"""A fleet of echod hosts on one machine: network namespaces joined by a bridge (issue 18).

    python3 -m client.fleet [--servers N] [--clients M] [--connections C] ... --out DIR

Run from the repository root, as root. It builds, with `ip netns`, veth pairs and one bridge
(every name starts with --prefix, unique per run):

  PREFIXsw       the switch: the bridge br0, one veth end per host; no address
  PREFIXsrvI     server host I (10.200.1.I): one echod, model reuseport in process mode
  PREFIXlb       the balancer host (10.200.2.1): --haproxy-procs HAProxy processes, TCP mode,
                 one shared SO_REUSEPORT listener, health checks that perform an echo
  PREFIXcliH     client host H (10.200.3.H, and 10.200.(10+H).P as source address of its Pth
                 echo-bench process): echo-bench `hold` processes

The root namespace gets no address and no route: traffic stays inside the namespaces made here.
For each scenario (`haproxy`: clients to the balancer; `direct`: client process K to server host
K mod N) it starts fresh servers, waits until they (and HAProxy's health checks) are up, runs
every echo-bench process at once, samples every host, merges the echo-bench JSON reports with
`echo-bench merge` (per client host and all together), and writes DIR/SCENARIO/report.md and
summary.json. With --drain (haproxy scenario), once every connection is held, server host 1 gets
SIGTERM and the run records when its listener closed, when HAProxy marked it DOWN, how many
connections it still served then, where a probe of new connections went, and how echod ended.

Everything it made is removed at the end, also on failure, SIGINT, SIGTERM or SIGHUP: processes
by their PID (and the descendants found under it), then the bridge and the namespaces.
Exit status: 0 every scenario clean; 1 a scenario had errors or failed; 2 bad command line;
77 namespaces cannot be made here or haproxy is missing (a test skips on it).
"""
import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from client.sweep.processes import process_tree, tree_cpu_seconds, tree_rss_kib

SKIP = 77
PORT = 7777
SUBNET_BITS = 16
BALANCER_ADDRESS = "10.200.2.1"
# Per process; 2 × maxconn plus listeners, checks and the stats socket stay under the 20,000
# descriptors a process may hold here (a proxied connection costs two: client and server side).
HAPROXY_MAXCONN = 9500
DESCRIPTORS_PER_PROCESS = 20000
# An echo-bench process holds its connections plus a few descriptors of its own.
MAX_CONNECTIONS_PER_CLIENT_PROCESS = 19000


class Interrupted(Exception):
    pass


def server_address(index):
    return f"10.200.1.{index}"


def client_address(host):
    return f"10.200.3.{host}"


def client_source_address(host, process):
    return f"10.200.{10 + host}.{process}"


def run(*argv, check=True):
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result


def haproxy_config(servers):
    """The configuration every HAProxy process of the balancer runs (each in its own directory,
    so the stats socket's relative path is the same for all)."""
    lines = [
        f"# HAProxy in front of {servers} echod hosts (written by client/fleet/fleet.py)",
        "global",
        f"    maxconn {HAPROXY_MAXCONN}",
        "    nbthread 1",
        "    stats socket unix@stats.sock mode 600 level admin",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout check 2s",
        "",
        "frontend echo",
        f"    bind {BALANCER_ADDRESS}:{PORT}",
        "    default_backend echod",
        "",
        "backend echod",
        "    balance leastconn",
        "    option tcp-check",
        "    tcp-check connect",
        "    tcp-check send echod-health-check",
        "    tcp-check expect string echod-health-check",
    ]
    lines += [f"    server srv{i} {server_address(i)}:{PORT} check inter 1s fall 2 rise 2"
              for i in range(1, servers + 1)]
    return "\n".join(lines) + "\n"


# Per-namespace sysctls (each network namespace has its own): what each host of the fleet needs.
SERVER_SYSCTLS = {"net.core.somaxconn": "4096"}
BALANCER_SYSCTLS = {"net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "1024 65535",
                    "net.ipv4.tcp_tw_reuse": "1"}
CLIENT_SYSCTLS = {"net.ipv4.ip_local_port_range": "1024 65535"}


class Network:
    """The namespaces, veth pairs and bridge of one run; remove() undoes whatever was made."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.switch = prefix + "sw"
        self.namespaces = []
        self.bridge_made = False
        self.ports = 0

    def make_switch(self):
        self._add_namespace(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        self.bridge_made = True
        run("ip", "-n", self.switch, "link", "set", "br0", "up")

    def add_host(self, name, addresses, sysctls):
        namespace = self.prefix + name
        self._add_namespace(namespace)
        self.ports += 1
        port = f"p{self.ports}"
        run("ip", "link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", port,
            "netns", self.switch)
        run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        for address in addresses:
            run("ip", "-n", namespace, "addr", "add", f"{address}/{SUBNET_BITS}", "dev", "eth0")
        run("ip", "-n", namespace, "link", "set", "eth0", "up")
        for key, value in sysctls.items():
            run("ip", "netns", "exec", namespace, "sysctl", "-q", "-w", f"{key}={value}")
        return namespace

    def _add_namespace(self, namespace):
        run("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        run("ip", "-n", namespace, "link", "set", "lo", "up")

    def remove(self):
        if self.bridge_made:
            run("ip", "-n", self.switch, "link", "del", "br0", check=False)
            self.bridge_made = False
        for namespace in reversed(self.namespaces):
            run("ip", "netns", "del", namespace, check=False)
        self.namespaces = []


class Processes:
    """Every process this run started, each by its PID; stop_all() ends them and whatever they
    forked (found under their PID), never anything else."""

    def __init__(self):
        self.started = []

    def start(self, namespace, cpu, argv, log_path, cwd=None):
        command = ["ip", "netns", "exec", namespace]  # execs: the PID is the program's
        if cpu:
            command += ["taskset", "-c", cpu]  # execs too
        command += argv
        log = open(log_path, "w")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        process.command = command
        self.started.append(process)
        return process

    def stop(self, process, grace_s=5.0):
        if process.poll() is not None:
            return process.returncode
        family = process_tree(process.pid)
        try:
            process.send_signal(signal.SIGTERM)
            return process.wait(grace_s)
        except subprocess.TimeoutExpired:
            for pid in family + [p for p in process_tree(process.pid) if p not in family]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return process.wait()

    def stop_all(self):
        for process in reversed(self.started):
            self.stop(process, grace_s=3.0)
        self.started = []


def established(pid):
    """TCP connections ESTABLISHED or CLOSE-WAIT in pid's network namespace (Tcp: CurrEstab)."""
    try:
        with open(f"/proc/{pid}/net/snmp") as f:
            lines = [line.split() for line in f if line.startswith("Tcp:")]
        return int(lines[1][lines[0].index("CurrEstab")])
    except (OSError, IndexError, ValueError):
        return None


def listening(pid, port):
    """Whether pid's network namespace has a TCP listener on port."""
    suffix = f":{port:04X}"
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            return any(fields[3] == "0A" and fields[1].endswith(suffix)
                       for fields in (line.split() for line in f) if len(fields) > 3)
    except OSError:
        return False


def bytes_received(namespace):
    """Bytes the server host's established connections on PORT have received so far (ss -i):
    what its echod was given to echo, counted by the kernel of that host."""
    result = run("ip", "netns", "exec", namespace, "ss", "-tinH", "state", "established",
                 f"( sport = :{PORT} )", check=False)
    return sum(int(n) for n in re.findall(r"bytes_received:(\d+)", result.stdout))


def haproxy_stats(socket_path):
    """`show stat` of one HAProxy process: {server name: row} for backend echod's servers."""
    with socket.socket(socket.AF_UNIX) as stats:
        stats.settimeout(15)  # a process busy accepting a connection storm answers late
        stats.connect(socket_path)
        stats.sendall(b"show stat\n")
        data = b""
        while chunk := stats.recv(65536):
            data += chunk
    text = data.decode().lstrip("# ")
    return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
            if row["pxname"] == "echod" and row["svname"] not in ("BACKEND", "FRONTEND")}


def wait_until(predicate, timeout_s, step_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Monitor(threading.Thread):
    """Samples every host once a second: connections established in each namespace, and the
    peaks of the servers' and HAProxy's RSS; the run reads the peaks and the samples after."""

    def __init__(self, servers, balancers, clients):
        super().__init__(daemon=True)
        self.servers, self.balancers, self.clients = servers, balancers, clients
        self.stop_event = threading.Event()
        self.samples = []
        self.peak_rss = {}
        self.peak_established = {}
        self.last_cpu = {}  # a server's CPU seconds at its last sample (it may exit before the end)

    def sample(self):
        row = {"t": time.monotonic(), "servers": {}, "clients": 0, "balancer": 0}
        for name, process in self.servers.items():
            if process.poll() is None:
                row["servers"][name] = established(process.pid) or 0
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), tree_rss_kib(process.pid))
                self.last_cpu[name] = tree_cpu_seconds(process.pid)
        by_namespace = {}
        for host, process in self.clients:
            if process.poll() is None and host not in by_namespace:
                by_namespace[host] = established(process.pid) or 0
        row["clients"] = sum(by_namespace.values())
        if self.balancers:
            alive = [p for p in self.balancers if p.poll() is None]
            if alive:
                row["balancer"] = established(alive[0].pid) or 0
            self.peak_rss["lb"] = max(self.peak_rss.get("lb", 0),
                                      sum(tree_rss_kib(p.pid) for p in alive))
        for name, value in list(row["servers"].items()) + [("clients", row["clients"]),
                                                             ("lb", row["balancer"])]:
            self.peak_established[name] = max(self.peak_established.get(name, 0), value)
        row["mem_available_kib"] = mem_available_kib()
        self.samples.append(row)
        return row

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(1.0)

    def held_at_once(self):
        """Most connections held end to end at one sample: the clients' and the servers' count
        (each counts a connection once, whatever sits between)."""
        return max((min(row["clients"], sum(row["servers"].values())) for row in self.samples),
                   default=0)


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def summary_counts(log_path):
    """echod's `summary:` line at exit, as {key: int}."""
    try:
        with open(log_path) as f:
            text = f.read()
    except OSError:
        return {}
    found = re.findall(r"summary: (.*)", text)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])} if found else {}


def refused_or_shed(counts):
    """Connections echod turned away (its caps, EMFILE), from its stop summary."""
    keys = ("refused_max_connections", "refused_per_ip", "shed_emfile")
    return sum(counts.get(k, 0) for k in keys) if counts else "–"


def echoed_in_full(counts):
    """Bytes echod received, and whether it sent back as many (its stop summary)."""
    if "bytes_in" not in counts:
        return "–"
    same = "yes" if counts["bytes_in"] == counts.get("bytes_out") else "NO"
    return f"{counts['bytes_in']} ({same})"


def parse_seconds(text):
    """echo-bench's durations as this script passes them: 500ms, 10s, 2m, or plain seconds."""
    found = re.fullmatch(r"([0-9.]+)(ms|s|m)?", text)
    if not found:
        raise ValueError(f"duration {text!r}: use 500ms, 10s, 2m")
    return float(found.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[found.group(2)]


def fmt_us(value):
    if value is None:
        return "–"
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


class Fleet:
    def __init__(self, args):
        self.args = args
        self.network = Network(args.prefix)
        self.processes = Processes()
        self.bin_dir = os.path.abspath(args.bin_dir)
        self.out = os.path.abspath(args.out)
        self.echo_bench = os.path.join(self.bin_dir, "echo-bench")
        self.layout = []  # (host number, process number, connections)
        per_process = args.per_process
        # At least one process per client host, the same number on each.
        count = math.ceil(math.ceil(args.connections / per_process) / args.clients) * args.clients
        base, extra = divmod(args.connections, count)
        for k in range(count):
            host = k % args.clients + 1
            process = k // args.clients + 1
            self.layout.append((host, process, base + (1 if k < extra else 0)))

    # --- the network --------------------------------------------------------------------------

    def build(self):
        args = self.args
        self.network.make_switch()
        self.server_ns = {f"srv{i}": self.network.add_host(f"srv{i}", [server_address(i)],
                                                            SERVER_SYSCTLS)
                          for i in range(1, args.servers + 1)}
        self.balancer_ns = self.network.add_host("lb", [BALANCER_ADDRESS], BALANCER_SYSCTLS)
        self.client_ns = {}
        for h in range(1, args.clients + 1):
            sources = [client_source_address(h, p) for (host, p, _) in self.layout if host == h]
            self.client_ns[h] = self.network.add_host(f"cli{h}", [client_address(h)] + sources,
                                                      CLIENT_SYSCTLS)

    # --- one scenario -------------------------------------------------------------------------

    def start_servers(self, directory):
        args = self.args
        servers = {}
        for name, namespace in self.server_ns.items():
            index = int(name[3:])
            argv = [os.path.join(self.bin_dir, "echod"), "--model=reuseport",
                    "--reuseport.mode=processes", f"--reuseport.workers={args.workers}",
                    f"--bind={server_address(index)}", f"--port={PORT}",
                    f"--max-connections={args.max_connections}", "--max-connections-per-ip=0",
                    f"--drain-timeout={args.drain_timeout}"]
            log = os.path.join(directory, f"{name}.log")
            servers[name] = self.processes.start(namespace, args.server_cpu, argv, log)
            servers[name].log_path, servers[name].argv = log, argv
        for name, process in servers.items():
            if not wait_until(lambda: "listening on" in open(process.log_path).read() or
                              process.poll() is not None, 15):
                raise RuntimeError(f"{name}: echod did not start")
            if process.poll() is not None:
                raise RuntimeError(f"{name}: echod exited: {open(process.log_path).read()}")
        time.sleep(0.5)  # the worker processes fork after the listening line
        return servers

    def start_balancer(self, directory):
        args = self.args
        config = haproxy_config(args.servers)
        balancers = []
        for k in range(1, args.haproxy_procs + 1):
            home = os.path.join(directory, f"haproxy-{k}")
            os.makedirs(home)
            with open(os.path.join(home, "haproxy.cfg"), "w") as f:
                f.write(config)
            process = self.processes.start(self.balancer_ns, args.client_cpu,
                                           ["haproxy", "-db", "-f", "haproxy.cfg"],
                                           os.path.join(home, "haproxy.log"), cwd=home)
            process.stats_path = os.path.join(home, "stats.sock")
            process.log_path = os.path.join(home, "haproxy.log")
            balancers.append(process)
        shutil.copy(os.path.join(directory, "haproxy-1", "haproxy.cfg"),
                    os.path.join(directory, "haproxy.cfg"))

        def all_up():
            for process in balancers:
                if process.poll() is not None:
                    raise RuntimeError(f"haproxy exited: {open(process.log_path).read()}")
                try:
                    rows = haproxy_stats(process.stats_path)
                except OSError:
                    return False
                if len(rows) != args.servers or any(r["status"] != "UP" for r in rows.values()):
                    return False
            return True

        if not wait_until(all_up, 20, 0.2):
            raise RuntimeError("HAProxy's health checks did not find every server UP")
        return balancers

    def pool_stats(self, balancers):
        """Per server, summed over the HAProxy processes: sessions so far, bytes, status."""
        total = {}
        for process in balancers:
            for name, row in haproxy_stats(process.stats_path).items():
                entry = total.setdefault(name, {"stot": 0, "scur": 0, "bout": 0, "bin": 0,
                                                "status": []})
                for key in ("stot", "scur", "bout", "bin"):
                    entry[key] += int(row[key] or 0)
                entry["status"].append(row["status"])
        return total

    def start_clients(self, directory, scenario, servers):
        args = self.args
        clients = []
        for k, (host, number, connections) in enumerate(self.layout):
            if scenario == "haproxy":
                target, server = BALANCER_ADDRESS, None
            else:
                server = f"srv{k % args.servers + 1}"
                target = server_address(int(server[3:]))
            path = os.path.join(directory, f"cli{host}-{number}.json")
            argv = [self.echo_bench, "hold", f"{target}:{PORT}", "-c", str(connections),
                    "-s", str(args.size), "-i", args.interval, "-d", args.duration,
                    "--warmup", args.warmup, "--source-ips", client_source_address(host, number),
                    "--connect-timeout", "30s", "--timeout", args.timeout, "--json", path, "-q"]
            if server:
                argv += ["--server-pid", str(servers[server].pid)]
            process = self.processes.start(self.client_ns[host], args.client_cpu, argv,
                                           path.replace(".json", ".out"))
            process.host, process.number, process.json_path = host, number, path
            process.connections, process.target, process.argv = connections, server, argv
            clients.append(process)
        return clients

    def drain(self, directory, servers, balancers, clients, monitor):
        """SIGTERM to server host 1 while every connection is held; records what followed."""
        args = self.args
        victim = servers["srv1"]
        result = {"host": "srv1"}
        before = self.pool_stats(balancers)
        result["established_before"] = established(victim.pid)
        started = result["signalled_at"] = time.monotonic()
        victim.send_signal(signal.SIGTERM)
        closed = wait_until(lambda: not listening(victim.pid, PORT), 5, 0.01)
        result["listener_closed_after_s"] = round(time.monotonic() - started, 3) if closed else None
        result["established_when_listener_closed"] = established(victim.pid)

        def marked_down():
            status = self.pool_stats(balancers)["srv1"]["status"]
            return all(s.startswith("DOWN") for s in status)

        down = wait_until(marked_down, 10, 0.1)
        result["marked_down_after_s"] = round(time.monotonic() - started, 3) if down else None
        result["established_when_marked_down"] = established(victim.pid)
        at_down = self.pool_stats(balancers)
        received_at_down = bytes_received(self.server_ns["srv1"])
        # New connections once it is out of the pool: a probe from client host 1.
        probe_path = os.path.join(directory, "drain-probe.json")
        probe_argv = [self.echo_bench, "hold", f"{BALANCER_ADDRESS}:{PORT}", "-c",
                      str(args.probe_connections), "-s", str(args.size), "-i", "200ms", "-d", "1s",
                      "--warmup", "0", "--source-ips", client_address(1), "--json", probe_path,
                      "-q"]
        probe = self.processes.start(self.client_ns[1], args.client_cpu, probe_argv,
                                     probe_path.replace(".json", ".out"))
        probe.wait(60)
        after_probe = self.pool_stats(balancers)
        report = read_json(probe_path) or {}
        result["probe"] = {
            "command": " ".join(probe_argv), "status": report.get("status"),
            "exit_status": probe.returncode,
            "established": (report.get("connections") or {}).get("established"),
            "errors": (report.get("errors") or {}).get("total"),
            "new_sessions": {name: after_probe[name]["stot"] - at_down[name]["stot"]
                             for name in sorted(after_probe)}}
        result["sessions_before"] = {name: before[name]["stot"] for name in sorted(before)}
        result["established_after_probe"] = established(victim.pid)
        result["received_at_down"] = received_at_down
        return result

    def drain_finish(self, result, servers, clients):
        """Follows the drained host until the clients end and it exits."""
        args = self.args
        victim = servers["srv1"]
        received_at_down = result.pop("received_at_down")
        # Its open connections go on being served until the clients end them.
        result["established_at_window_end"] = established(victim.pid)
        most_received = received_at_down
        while any(c.poll() is None for c in clients) and victim.poll() is None:
            most_received = max(most_received, bytes_received(self.server_ns["srv1"]))
            time.sleep(0.2)
        # Counted by srv1's kernel on the connections it still holds: the echoes it was asked
        # for after it left the pool (HAProxy's own byte counters step only now and then).
        result["bytes_received_after_marked_down"] = most_received - received_at_down
        try:
            code = victim.wait(args.drain_timeout + 10)
        except subprocess.TimeoutExpired:
            code = None
        result["exited_after_s"] = round(time.monotonic() - result.pop("signalled_at"), 3)
        result["exit_status"] = code
        with open(victim.log_path) as f:
            log = f.read()
        result["drain_complete_logged"] = "drain complete" in log
        result["drain_timeout_logged"] = "drain timeout" in log  # it would cut connections
        result["summary"] = summary_counts(victim.log_path)
        return result

    def scenario(self, scenario):
        args = self.args
        directory = os.path.join(self.out, scenario)
        os.makedirs(directory)
        servers = self.start_servers(directory)
        balancers = self.start_balancer(directory) if scenario == "haproxy" else []
        settle_rss = {name: tree_rss_kib(p.pid) for name, p in servers.items()}
        available_before = mem_available_kib()
        monitor = Monitor(servers, balancers, [])
        launched = time.monotonic()
        clients = self.start_clients(directory, scenario, servers)
        monitor.clients = [(c.host, c) for c in clients]
        monitor.start()
        total = sum(c.connections for c in clients)
        all_held = wait_until(lambda: monitor.sample()["clients"] >= total and
                              sum(established(p.pid) or 0 for p in servers.values()) >= total
                              or all(c.poll() is not None for c in clients), 120, 0.5)
        window_start = time.monotonic()
        cpu_start = {name: tree_cpu_seconds(p.pid) for name, p in servers.items()}
        cpu_start["lb"] = sum(tree_cpu_seconds(p.pid) for p in balancers)
        received_start = {name: bytes_received(ns) for name, ns in self.server_ns.items()}
        drain = None
        if args.drain and scenario == "haproxy":
            time.sleep(args.drain_after)
            drain = self.drain(directory, servers, balancers, clients, monitor)
        # The window of the servers' figures: from when every connection is held until the
        # earliest end of a client's measured window (each ends its warm-up and duration after
        # its connections are up, which is after it started), so all exchange messages
        # throughout and none has begun closing.
        window_end = launched + parse_seconds(args.warmup) + parse_seconds(args.duration) - 0.5
        while time.monotonic() < window_end and all(c.poll() is None for c in clients):
            time.sleep(0.05)
        window = time.monotonic() - window_start
        received = {name: bytes_received(ns) - received_start[name]
                    for name, ns in self.server_ns.items()}
        cpu = {name: (tree_cpu_seconds(p.pid) if p.poll() is None else monitor.last_cpu[name])
               - cpu_start[name] for name, p in servers.items()}
        cpu["lb"] = sum(tree_cpu_seconds(p.pid) for p in balancers) - cpu_start["lb"]
        pool_end = self.pool_stats(balancers) if balancers else {}
        if drain:
            self.drain_finish(drain, servers, clients)
        for c in clients:
            c.wait()
        monitor.stop_event.set()
        monitor.join()
        exits = {}
        for name, process in servers.items():
            exits[name] = self.processes.stop(process, grace_s=args.drain_timeout + 10)
        for process in balancers:
            self.processes.stop(process)
        return self.report(scenario, directory, servers, balancers, clients, monitor, window,
                           cpu, settle_rss, received, pool_end, exits, drain, all_held,
                           available_before)

    # --- the report ---------------------------------------------------------------------------

    def merge(self, paths, json_path):
        result = subprocess.run([self.echo_bench, "merge", *paths, "--json", json_path,
                                 "--percentiles", "50,99,99.9"], capture_output=True, text=True)
        return result.returncode, result.stdout + result.stderr

    def report(self, scenario, directory, servers, balancers, clients, monitor, window, cpu,
               settle_rss, received, pool_end, exits, drain, all_held, available_before):
        args = self.args
        reports = {c.json_path: read_json(c.json_path) for c in clients}
        missing = [p for p, r in reports.items() if r is None]
        merged_path = os.path.join(directory, "merged.json")
        merge_status, merged_table = self.merge([c.json_path for c in clients], merged_path)
        merged = read_json(merged_path) or {}
        hosts = []
        for h in sorted(self.client_ns):
            mine = [c for c in clients if c.host == h]
            host_path = os.path.join(directory, f"cli{h}.json")
            self.merge([c.json_path for c in mine], host_path)
            r = read_json(host_path) or {}
            latency = r.get("latency_us") or {}
            hosts.append({
                "host": f"cli{h}", "processes": len(mine),
                "connections": sum(c.connections for c in mine),
                "established": (r.get("connections") or {}).get("established"),
                "open_at_end": (r.get("connections") or {}).get("open_at_end"),
                "messages_per_s": (r.get("messages") or {}).get("per_second"),
                "p50_us": latency.get("p50"), "p99_us": latency.get("p99"),
                "p99_9_us": latency.get("p99_9"),
                "errors": (r.get("errors") or {}).get("total"), "status": r.get("status"),
                "client_cpu_percent": sum(
                    ((reports[c.json_path] or {}).get("cpu") or {}).get("client", {}).get(
                        "percent_of_one_core", 0) for c in mine)})
        server_rows = []
        for name in sorted(servers, key=lambda n: int(n[3:])):
            # Messages the host's kernel received on its held connections in the CPU window (a
            # drained host's connections end with the clients, inside the window).
            rate = received[name] / args.size / window if window else None
            counts = summary_counts(servers[name].log_path)
            server_rows.append({
                "host": name, "peak_established": monitor.peak_established.get(name, 0),
                "accepted": counts.get("accepted"),
                "haproxy_sessions": pool_end.get(name, {}).get("stot"),
                "messages_per_s": rate,
                "cpu_s": cpu.get(name), "cpu_percent": (100 * cpu[name] / window
                                                        if name in cpu and window else None),
                "rss_idle_kib": settle_rss[name], "rss_peak_kib": monitor.peak_rss.get(name),
                "exit_status": exits[name], "summary": counts})
        balancer = None
        if balancers:
            balancer = {"processes": len(balancers), "maxconn_each": HAPROXY_MAXCONN,
                        "peak_established": monitor.peak_established.get("lb", 0),
                        "cpu_s": cpu["lb"], "cpu_percent": 100 * cpu["lb"] / window,
                        "rss_peak_kib": monitor.peak_rss.get("lb"),
                        "config": os.path.join(directory, "haproxy.cfg")}
        summary = {
            "scenario": scenario, "command": " ".join(sys.argv),
            "connections": args.connections, "all_held": all_held,
            "held_at_once": monitor.held_at_once(),
            "client_processes": [{"host": f"cli{c.host}", "process": c.number,
                                  "connections": c.connections, "exit_status": c.returncode,
                                  "target": c.target or "balancer", "command": " ".join(c.argv),
                                  "json": c.json_path} for c in clients],
            "missing_reports": missing, "merge_exit_status": merge_status,
            "merged": {"status": merged.get("status"),
                       "established": (merged.get("connections") or {}).get("established"),
                       "open_at_end": (merged.get("connections") or {}).get("open_at_end"),
                       "errors": (merged.get("errors") or {}).get("total"),
                       "messages_per_s": (merged.get("messages") or {}).get("per_second"),
                       "lost": (merged.get("messages") or {}).get("lost")},
            # Machine-wide (every host, the kernel's socket memory included; other programs on
            # the machine move it too): MemAvailable before the clients started, least during.
            "mem_available_drop_kib": available_before - min(
                (row["mem_available_kib"] for row in monitor.samples), default=available_before),
            "window_s": window, "clients": hosts, "servers": server_rows, "balancer": balancer,
            "server_commands": {n: " ".join(p.argv) for n, p in servers.items()},
            "drain": drain}
        with open(os.path.join(directory, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        with open(os.path.join(directory, "merged.txt"), "w") as f:
            f.write(merged_table)
        text = self.markdown(summary, merged_table)
        with open(os.path.join(directory, "report.md"), "w") as f:
            f.write(text)
        print(text)
        clean = (not missing and merge_status == 0 and summary["merged"]["errors"] == 0 and
                 all(c.returncode == 0 for c in clients))
        return clean

    def markdown(self, s, merged_table):
        out = [f"## {s['scenario']}: {s['connections']} connections", "",
               f"    {s['command']}", "",
               f"Most connections held at once end to end (sampled each second, clients' and "
               f"servers' count): {s['held_at_once']}. CPU window: {s['window_s']:.1f} s "
               f"(all held, until the earliest end of a client's measured window). Machine "
               f"MemAvailable fell by at most {s['mem_available_drop_kib']} KiB during the run "
               f"({1024 * s['mem_available_drop_kib'] / max(1, s['held_at_once']):.0f} bytes per "
               f"connection held, every host and the kernel together).", "",
               "| client host | processes | connections | established | open at end | msg/s "
               "| p50 | p99 | p99.9 | errors | echo-bench CPU % | status |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for h in s["clients"]:
            out.append(f"| {h['host']} | {h['processes']} | {h['connections']} | "
                       f"{h['established']} | {h['open_at_end']} | "
                       f"{(h['messages_per_s'] or 0):.0f} | {fmt_us(h['p50_us'])} | "
                       f"{fmt_us(h['p99_us'])} | {fmt_us(h['p99_9_us'])} | {h['errors']} | "
                       f"{h['client_cpu_percent']:.1f} | {h['status']} |")
        out += ["", "| server host | peak established | accepted | HAProxy sessions | msg/s "
                "| CPU s | CPU % | RSS idle KiB | RSS peak KiB | refused/shed | bytes in = out | exit |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in s["servers"]:
            rate = "–" if r["messages_per_s"] is None else f"{r['messages_per_s']:.0f}"
            cpu_s = "–" if r["cpu_s"] is None else f"{r['cpu_s']:.2f}"
            cpu_p = "–" if r["cpu_percent"] is None else f"{r['cpu_percent']:.1f}"
            out.append(f"| {r['host']} | {r['peak_established']} | {r['accepted']} | "
                       f"{r['haproxy_sessions'] if r['haproxy_sessions'] is not None else '–'} | "
                       f"{rate} | {cpu_s} | {cpu_p} | {r['rss_idle_kib']} | {r['rss_peak_kib']} "
                       f"| {refused_or_shed(r['summary'])} | {echoed_in_full(r['summary'])} "
                       f"| {r['exit_status']} |")
        if s["balancer"]:
            b = s["balancer"]
            out += ["", f"Balancer: {b['processes']} HAProxy processes (maxconn {b['maxconn_each']}"
                    f" each), peak established in its namespace {b['peak_established']} (client "
                    f"and server sides), CPU {b['cpu_s']:.2f} s ({b['cpu_percent']:.1f} %), peak "
                    f"RSS {b['rss_peak_kib']} KiB."]
        out += ["", "Merged (`echo-bench merge` of every client process):", "", "```",
                merged_table.rstrip(), "```"]
        if s["drain"]:
            out += ["", "Drain of srv1 (SIGTERM while every connection was held):", "", "```",
                    json.dumps(s["drain"], indent=2), "```"]
        return "\n".join(out) + "\n"


def can_make_namespaces(prefix):
    probe = prefix + "probe"
    result = run("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        return result.stderr.strip() or "ip netns add failed"
    run("ip", "netns", "del", probe, check=False)
    return None


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python3 -m client.fleet",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", default="build/bin")
    parser.add_argument("--out", required=True, help="directory for logs, JSON and reports")
    parser.add_argument("--prefix", default=f"ef{os.getpid()}",
                        help="start of every namespace name (default ef<pid>)")
    parser.add_argument("--scenarios", default="haproxy,direct",
                        help="haproxy and/or direct, comma-separated, run in that order")
    parser.add_argument("--servers", type=int, default=2, help="server hosts")
    parser.add_argument("--workers", type=int, default=2,
                        help="echod reuseport worker processes per server host")
    parser.add_argument("--max-connections", type=int, default=100000,
                        help="echod --max-connections per server host")
    parser.add_argument("--drain-timeout", type=int, default=60, help="echod --drain-timeout")
    parser.add_argument("--haproxy-procs", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2, help="client hosts")
    parser.add_argument("--connections", type=int, default=2000, help="in all")
    parser.add_argument("--per-process", type=int, default=15000,
                        help="most connections one echo-bench process holds")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--interval", default="1s", help="echo-bench hold --interval")
    parser.add_argument("--duration", default="6s")
    parser.add_argument("--warmup", default="2s")
    parser.add_argument("--timeout", default="5s", help="echo-bench --timeout per echo")
    parser.add_argument("--drain", action="store_true",
                        help="haproxy scenario: SIGTERM server host 1 once every connection is held")
    parser.add_argument("--drain-after", type=float, default=1.0,
                        help="seconds after every connection is held")
    parser.add_argument("--probe-connections", type=int, default=200)
    parser.add_argument("--server-cpu", default="", help="taskset list for echod (none: unpinned)")
    parser.add_argument("--client-cpu", default="",
                        help="taskset list for echo-bench and HAProxy (none: unpinned)")
    args = parser.parse_args(argv)
    scenarios = args.scenarios.split(",")
    if not scenarios or any(s not in ("haproxy", "direct") for s in scenarios):
        parser.error("--scenarios: haproxy and/or direct")
    args.scenario_list = scenarios
    for flag in ("warmup", "duration", "interval", "timeout"):
        try:
            parse_seconds(getattr(args, flag))
        except ValueError as error:
            parser.error(f"--{flag}: {error}")
    if not 1 <= args.per_process <= MAX_CONNECTIONS_PER_CLIENT_PROCESS:
        parser.error(f"--per-process: 1 to {MAX_CONNECTIONS_PER_CLIENT_PROCESS} "
                     f"(a process holds at most {DESCRIPTORS_PER_PROCESS} descriptors)")
    if not 1 <= args.servers <= 200 or not 1 <= args.clients <= 200:
        parser.error("--servers and --clients: 1 to 200")
    processes = math.ceil(args.connections / args.per_process)
    if math.ceil(processes / args.clients) > 250:
        parser.error("more than 250 echo-bench processes per client host")
    if "haproxy" in scenarios and args.connections > args.haproxy_procs * HAPROXY_MAXCONN:
        parser.error(f"--connections {args.connections} through HAProxy needs at least "
                     f"{math.ceil(args.connections / HAPROXY_MAXCONN)} --haproxy-procs "
                     f"(maxconn {HAPROXY_MAXCONN} each: a proxied connection costs two of a "
                     f"process's {DESCRIPTORS_PER_PROCESS} descriptors)")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("SKIP: making network namespaces needs root")
        return SKIP
    if "haproxy" in args.scenario_list and shutil.which("haproxy") is None:
        print("SKIP: haproxy is not installed (Debian package haproxy; install-deps.sh)")
        return SKIP
    existing = run("ip", "netns", "list").stdout.split()
    if any(name.startswith(args.prefix) for name in existing):
        print(f"namespaces starting with {args.prefix} exist already: choose another --prefix")
        return 2
    reason = can_make_namespaces(args.prefix)
    if reason:
        print(f"SKIP: cannot make network namespaces here: {reason}")
        return SKIP
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)

    def interrupted(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupted)
    fleet = Fleet(args)
    clean = True
    try:
        fleet.build()
        for scenario in args.scenario_list:
            clean = fleet.scenario(scenario) and clean
    except Interrupted as signal_name:
        print(f"interrupted by {signal_name}: removing the fleet", file=sys.stderr)
        clean = False
    except Exception as error:  # report it, and still remove everything below
        print(f"fleet failed: {error!r}", file=sys.stderr)
        clean = False
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # the cleanup itself is not interrupted
        fleet.processes.stop_all()
        fleet.network.remove()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
    return 0 if clean else 1
