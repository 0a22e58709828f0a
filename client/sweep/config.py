"""Sweep descriptions (conf/sweeps/*.toml) and the server catalogue, read with tomllib.

A description names servers and blocks of points; expand() turns it into the list of points
the sweep runs, one fresh server each. Every mistake is a ConfigError naming the key.
"""
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

WORKLOADS = ("steady", "hold", "churn", "seed-client")
SEED_LOOPS = ("as-written", "fixed")
ALL_ECHOD_MODELS = "echod:*"  # in [servers] include: every model `echod --list-models` lists


def is_cpu_list(text):
    """A taskset CPU list: "0", "1", "0-1", "0,2-3"."""
    parts = text.split(",")
    return all(len(p.split("-")) <= 2 and all(n.strip().isdigit() for n in p.split("-"))
               for p in parts)


class ConfigError(Exception):
    """A bad sweep description: str() is one line naming the file and the key."""

    def __init__(self, source, key, message):
        super().__init__(f"{source}: {key}: {message}")
        self.key = key


@dataclass
class ServerSpec:
    """One server the sweep can start: how, and what it cannot be asked to do."""
    name: str
    kind: str  # "echod", "baseline" or "peer"
    command: list  # with {bin}, {peers}, {host}, {port} placeholders
    max_connections: int = 0  # 0 = no limit on persistent connections
    limit_reason: str = ""
    per_connection_option: str = ""  # echod key raised to the point's concurrency
    per_connection_floor: int = 0  # ... but never below this (a growing pool's default max)
    counterpart: str = ""  # for a peer: the echod model it is the Python/Go twin of
    needs: str = ""  # "go": the binary is built from client/peers/go when missing
    model: str = ""  # for echod: the model it loads


@dataclass
class Point:
    """One measurement: one server, one client run, one set of parameters."""
    server: str
    workload: str
    connections: int = 0  # steady, hold
    size: int = 0
    workers: int = 0  # churn, seed-client
    iterations: int = 0  # churn iterations = seed-client ACTION_COUNT
    exchanges: int = 0
    loop: str = ""  # seed-client
    duration_s: float = 0.0
    warmup_s: float = 0.0
    interval_s: float = 0.0
    max_time_s: float = 0.0
    group: str = ""  # the table this point is ranked in

    @property
    def concurrency(self):
        return self.connections if self.workload in ("steady", "hold") else self.workers

    @property
    def ident(self):
        """A file-name-safe, unique name for this point within a sweep."""
        if self.workload in ("steady", "hold"):
            shape = f"c{self.connections}" + (f"-s{self.size}" if self.workload == "steady" else "")
        else:
            shape = f"w{self.workers}-a{self.iterations}-e{self.exchanges}"
            if self.loop:
                shape += f"-{self.loop}"
        return f"{self.server}--{self.workload}-{shape}"


@dataclass
class Sweep:
    name: str
    description: str
    source: str
    server_cpu: str = "0"
    client_cpu: str = "1"
    echo_bench_threads: int = 1
    pool_limit: int = 1000
    ready_timeout_s: float = 15.0
    stop_timeout_s: float = 10.0
    settle_s: float = 0.3
    include: list = field(default_factory=list)
    blocks: list = field(default_factory=list)  # dicts, validated
    catalogue: dict = field(default_factory=dict)  # name -> ServerSpec


def _load(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(str(path), "file", e.strerror or str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "syntax", str(e)) from None


class _Reader:
    """Typed access to one TOML table; every error names the dotted key."""

    def __init__(self, source, prefix, table):
        if not isinstance(table, dict):
            raise ConfigError(source, prefix, "must be a table")
        self.source, self.prefix, self.table, self.used = source, prefix, table, set()

    def key(self, name):
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name, message):
        raise ConfigError(self.source, self.key(name), message)

    def get(self, name, kind, default=None, required=False):
        self.used.add(name)
        if name not in self.table:
            if required:
                self.fail(name, "is required")
            return default
        value = self.table[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            self.fail(name, f"must be {_kind_name(kind)}, not {value!r}")
        return value

    def number(self, name, kind, default=None, minimum=0, required=False):
        value = self.get(name, kind, default, required)
        if value is not None and value < minimum:
            self.fail(name, f"must be >= {minimum}, not {value}")
        return value

    def numbers(self, name, default=None, minimum=1, required=False):
        """An integer or a list of integers, each >= minimum."""
        value = self.get(name, (int, list), default, required)
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        if not values:
            self.fail(name, "must not be empty")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int):
                self.fail(name, f"must hold integers, not {v!r}")
            if v < minimum:
                self.fail(name, f"must hold integers >= {minimum}, not {v}")
        return values

    def strings(self, name, default=None, required=False):
        value = self.get(name, (str, list), default, required)
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str) or not v:
                self.fail(name, f"must hold non-empty strings, not {v!r}")
        return values

    def finish(self):
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            self.fail(unknown[0], "unknown key")


def _kind_name(kind):
    if isinstance(kind, tuple):
        return " or ".join(_kind_name(k) for k in kind)
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            bool: "true or false", dict: "a table"}[kind]


def load_catalogue(path):
    """name -> ServerSpec, from a catalogue file (conf/sweeps/servers.toml)."""
    source = str(path)
    data = _Reader(source, "", _load(path))
    servers = data.get("servers", dict, required=True)
    data.finish()
    catalogue = {}
    for name, table in servers.items():
        entry = _Reader(source, f"servers.{name}", table)
        kind = entry.get("kind", str, required=True)
        model = ""
        if kind not in ("echod", "baseline", "peer"):
            entry.fail("kind", f"must be echod, baseline or peer, not {kind!r}")
        command = entry.strings("command", required=kind != "echod")
        if kind == "echod":
            model = entry.get("model", str, name)
            command = (["{bin}/echod", "--model", model, "--bind", "{host}", "--port", "{port}"]
                       + (command or []))
        spec = ServerSpec(
            name=name, kind=kind, command=command,
            max_connections=entry.number("max_connections", int, 0),
            limit_reason=entry.get("reason", str, ""),
            per_connection_option=entry.get("per_connection_option", str, ""),
            per_connection_floor=entry.get("per_connection_floor", int, 0),
            counterpart=entry.get("counterpart", str, ""),
            needs=entry.get("needs", str, ""), model=model if kind == "echod" else "")
        if spec.needs not in ("", "go"):
            entry.fail("needs", f"must be \"go\" or absent, not {spec.needs!r}")
        if spec.max_connections and not spec.limit_reason:
            entry.fail("reason", "is required with max_connections (say why)")
        if spec.per_connection_option and kind != "echod":
            entry.fail("per_connection_option", "applies to echod models only")
        entry.finish()
        catalogue[name] = spec
    return catalogue


def load(path):
    """A Sweep from a description file; its catalogue is read too."""
    path = Path(path)
    source = str(path)
    data = _Reader(source, "", _load(path))
    sweep_table = _Reader(source, "sweep", data.get("sweep", dict, {}))
    servers_table = _Reader(source, "servers", data.get("servers", dict, required=True))
    points = data.get("points", list, required=True)
    data.finish()

    sweep = Sweep(name=sweep_table.get("name", str, path.stem),
                  description=sweep_table.get("description", str, ""), source=source)
    for cpu_key in ("server_cpu", "client_cpu"):
        value = sweep_table.get(cpu_key, str, getattr(sweep, cpu_key))
        if not is_cpu_list(value):
            sweep_table.fail(cpu_key, f"must be a taskset CPU list such as \"0\" or \"0-1\", "
                                      f"not {value!r}")
        setattr(sweep, cpu_key, value)
    sweep.echo_bench_threads = sweep_table.number("echo_bench_threads", int, 1, minimum=1)
    sweep.pool_limit = sweep_table.number("pool_limit", int, 1000, minimum=1)
    sweep.ready_timeout_s = sweep_table.number("ready_timeout_s", float, 15.0, minimum=0.1)
    sweep.stop_timeout_s = sweep_table.number("stop_timeout_s", float, 10.0, minimum=0.1)
    sweep.settle_s = sweep_table.number("settle_s", float, 0.3)
    catalogue_name = sweep_table.get("catalogue", str, "servers.toml")
    sweep_table.finish()

    sweep.include = servers_table.strings("include", required=True)
    servers_table.finish()
    sweep.catalogue = load_catalogue(path.parent / catalogue_name)
    for name in sweep.include:
        if name != ALL_ECHOD_MODELS and name not in sweep.catalogue:
            sweep.catalogue[name] = _default_echod(name)

    if not points:
        raise ConfigError(source, "points", "must hold at least one [[points]] block")
    for index, block in enumerate(points):
        sweep.blocks.append(_block(source, f"points[{index}]", block))
    return sweep


def _default_echod(model):
    """An echod model with no catalogue entry: no limits beyond its declared capabilities."""
    return ServerSpec(name=model, kind="echod", model=model,
                      command=["{bin}/echod", "--model", model, "--bind", "{host}", "--port",
                               "{port}"])


def _block(source, prefix, table):
    r = _Reader(source, prefix, table)
    workload = r.get("workload", str, required=True)
    if workload not in WORKLOADS:
        r.fail("workload", f"must be one of {', '.join(WORKLOADS)}, not {workload!r}")
    block = {"workload": workload, "group": r.get("group", str, "")}
    only = r.strings("servers")
    block["servers"] = only
    if workload in ("steady", "hold"):
        block["connections"] = r.numbers("connections", required=True)
        block["duration_s"] = r.number("duration_s", float, 5.0, minimum=0.1)
        block["warmup_s"] = r.number("warmup_s", float, 1.0 if workload == "steady" else 0.0)
    if workload == "steady":
        block["sizes"] = r.numbers("sizes", [64])
    if workload == "hold":
        block["interval_s"] = r.number("interval_s", float, 1.0, minimum=0.001)
        block["size"] = r.number("size", int, 32, minimum=1)
    if workload in ("churn", "seed-client"):
        block["workers"] = r.numbers("workers", required=True)
        block["iterations"] = r.number("iterations", int, 100, minimum=1)
        block["exchanges"] = r.number("exchanges", int, 10, minimum=0)
    if workload == "churn":
        block["size"] = r.number("size", int, 16, minimum=1)
    if workload == "seed-client":
        loops = r.strings("loop", list(SEED_LOOPS))
        for loop in loops:
            if loop not in SEED_LOOPS:
                r.fail("loop", f"must hold \"as-written\" or \"fixed\", not {loop!r}")
        block["loops"] = loops
    block["max_time_s"] = r.number("max_time_s", float, 0.0)
    r.finish()
    return block


def expand(sweep, servers):
    """Every point of the sweep, for the given server names (in order), block by block."""
    result = []
    for block in sweep.blocks:
        names = [s for s in servers if not block["servers"] or s in block["servers"]]
        workload = block["workload"]
        if workload == "steady":
            shapes = [dict(connections=c, size=s, duration_s=block["duration_s"],
                           warmup_s=block["warmup_s"])
                      for c, s in itertools.product(block["connections"], block["sizes"])]
        elif workload == "hold":
            shapes = [dict(connections=c, size=block["size"], duration_s=block["duration_s"],
                           warmup_s=block["warmup_s"], interval_s=block["interval_s"])
                      for c in block["connections"]]
        elif workload == "churn":
            shapes = [dict(workers=w, iterations=block["iterations"],
                           exchanges=block["exchanges"], size=block["size"])
                      for w in block["workers"]]
        else:
            shapes = [dict(workers=w, iterations=block["iterations"],
                           exchanges=block["exchanges"], loop=loop)
                      for loop in block["loops"] for w in block["workers"]]
        for shape in shapes:
            for name in names:
                point = Point(server=name, workload=workload, max_time_s=block["max_time_s"],
                              **shape)
                point.group = block["group"] or default_group(point)
                result.append(point)
    return result


def default_group(point):
    """The table a point is ranked in: same workload and parameters, every server."""
    if point.workload == "steady":
        return f"steady, {point.connections} connections, {point.size} B"
    if point.workload == "hold":
        return f"hold, {point.connections} connections, one message each per {point.interval_s:g} s"
    if point.workload == "churn":
        return (f"echo-bench churn, {point.workers} workers x {point.iterations} actions x "
                f"{point.exchanges} exchanges")
    return (f"seed client ({point.loop}), {point.workers} workers x {point.iterations} actions x "
            f"{point.exchanges} exchanges")
