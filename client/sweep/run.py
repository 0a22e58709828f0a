"""python3 -m client.sweep SWEEP.toml [--bin-dir build/bin] [--out DIR] [--servers a,b]
                                      [--workloads steady,churn] [--server-cpu 0]
                                      [--client-cpu 1] [--report-only]

Runs every point of a sweep description (conf/sweeps/*.toml), one fresh server per point, and
writes DIR/results.csv (one row per point, rewritten after every point), DIR/results.md (ranked
tables), DIR/plots/*.png and DIR/report.html (self-contained). Each point's client JSON, client
output, server log and client command line are kept in DIR/points/POINT/.
Exit status: 0 when every point that ran was clean, 1 when any failed or had errors, 2 for a
bad command line or description.
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    import matplotlib  # noqa: F401  (plots.py draws with it)
except ImportError:
    sys.exit("sweep: needs matplotlib for its plots: apt-get install python3-matplotlib (and run "
             "Debian's /usr/bin/python3)")

from . import config, machine, plots, points, report, results, tables  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent
GO_PEER = "go-echo-peer"


def command_line(argv):
    p = argparse.ArgumentParser(prog="python3 -m client.sweep", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="sweep description, e.g. conf/sweeps/quick.toml")
    p.add_argument("--bin-dir", type=Path, default=REPO / "build" / "bin",
                   help="directory holding echod, echo-bench, epoll-echo-baseline and "
                        "go-echo-peer (default: %(default)s)")
    p.add_argument("--peers-dir", type=Path, default=REPO / "client" / "peers",
                   help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help="output directory (default: sweep-results/NAME)")
    p.add_argument("--servers", help="run only these servers (comma-separated names)")
    p.add_argument("--workloads", help="run only these workloads (comma-separated)")
    p.add_argument("--server-cpu", help="taskset CPU list for the servers (overrides the "
                                        "description's server_cpu)")
    p.add_argument("--client-cpu", help="taskset CPU list for the clients (overrides client_cpu)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite results.md, the plots and report.html from DIR/results.csv")
    args = p.parse_args(argv)
    for key in ("servers", "workloads"):
        value = getattr(args, key)
        setattr(args, key, [v.strip() for v in value.split(",") if v.strip()] if value else None)
    if args.workloads:
        for workload in args.workloads:
            if workload not in config.WORKLOADS:
                p.error(f"--workloads: {workload!r} is not one of {', '.join(config.WORKLOADS)}")
    return args


def echod_models(bin_dir):
    done = subprocess.run([str(bin_dir / "echod"), "--list-models"], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"echod --list-models failed: {done.stderr.strip()}")
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def echod_capabilities(bin_dir, model):
    done = subprocess.run([str(bin_dir / "echod"), "--model", model, "--describe-model"],
                          capture_output=True, text=True, timeout=30)
    for line in done.stdout.splitlines():
        if line.startswith("capabilities:"):
            return {c.strip() for c in line.split(":", 1)[1].split(",")}
    raise RuntimeError(f"echod --model {model} --describe-model: {done.stderr.strip()}")


def ensure_go_peer(bin_dir, peers_dir):
    """Builds go-echo-peer into bin_dir when CMake did not (standard library only, no network;
    the Go cache and path live in the build tree). Returns None or why it is unavailable."""
    target = bin_dir / GO_PEER
    source = peers_dir / "go"
    newest = max(p.stat().st_mtime for p in source.iterdir())
    if target.exists() and target.stat().st_mtime >= newest:
        return None
    go = shutil.which("go")
    if not go:
        return f"{target} is not built and go is not installed (apt-get install golang-go)"
    cache = bin_dir.parent / "go"
    env = dict(os.environ, GOCACHE=str(cache / "cache"), GOPATH=str(cache / "path"),
               GOPROXY="off", GOFLAGS="", CGO_ENABLED="0")
    done = subprocess.run([go, "build", "-o", str(target), "."], cwd=source, env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return f"go build failed: {done.stderr.strip()}"
    return None


def clear_outputs(out):
    """Removes what an earlier sweep wrote here, so nothing stale is read or reported."""
    for name in ("results.csv", "results.md", "report.html", "machine.json"):
        (out / name).unlink(missing_ok=True)
    for name in ("points", "plots"):
        shutil.rmtree(out / name, ignore_errors=True)


def write_outputs(out, sweep, rows, facts, commands, end_load=True):
    if end_load:
        facts = facts + [("load average at the end (1, 5, 15 min)",
                          ", ".join(f"{v:.2f}" for v in os.getloadavg()))]
    header = [f"# Sweep {sweep.name}", "", sweep.description, "",
              *[f"- {label}: {value}" for label, value in facts], "",
              "Commands: " + "; ".join(f"`{c}`" for c in commands),
              "", "Rows marked " + tables.SUSPECT_MARK + " come from a client report that says "
              "its figures are suspect; rank – means not measured (failed or skipped)."]
    (out / "results.md").write_text(tables.markdown(rows, header), encoding="utf-8")
    written = plots.write_all(out / "plots", rows)
    try:
        description_text = Path(sweep.source).read_text()
    except OSError:
        description_text = ""
    report.write(out / "report.html", f"echod sweep: {sweep.name}", sweep.description, facts,
                 commands, rows, out / "plots", written, description_text)
    return written


def main(argv=None):
    args = command_line(sys.argv[1:] if argv is None else argv)
    try:
        sweep = config.load(args.sweep)
    except config.ConfigError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    for key in ("server_cpu", "client_cpu"):
        value = getattr(args, key)
        if value is not None:
            if not config.is_cpu_list(value):
                print(f"sweep: --{key.replace('_', '-')}: {value!r} is not a taskset CPU list",
                      file=sys.stderr)
                return 2
            setattr(sweep, key, value)
    out = args.out or Path("sweep-results") / sweep.name
    out.mkdir(parents=True, exist_ok=True)
    commands = ["python3 -m client.sweep " + " ".join(shlex.quote(a) for a in (
        sys.argv[1:] if argv is None else argv))]
    nofile = points.descriptor_limit()
    facts = machine.describe(REPO, sweep, nofile)

    if args.report_only:
        rows = results.read_csv(out / "results.csv")
        try:  # the machine and the command as they were when the points ran
            recorded = json.loads((out / "machine.json").read_text())
            facts = [tuple(f) for f in recorded["facts"]]
            commands = recorded["commands"] + commands
        except (OSError, ValueError, KeyError, TypeError):
            facts = [("machine", "not recorded with these results")]
        facts.append(("report redrawn", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())))
        write_outputs(out, sweep, rows, facts, commands, end_load=False)
        print(f"sweep: report rewritten in {out}/report.html")
        return 0

    bin_dir = args.bin_dir.resolve()
    paths = points.Paths(bin_dir, args.peers_dir.resolve(), out.resolve())
    clear_outputs(out)
    (out / "machine.json").write_text(json.dumps({"facts": facts, "commands": commands},
                                                 indent=1) + "\n")
    try:
        names = []
        for name in sweep.include:
            names += echod_models(bin_dir) if name == config.ALL_ECHOD_MODELS else [name]
        names = list(dict.fromkeys(names))
        if args.servers:
            unknown = [s for s in args.servers if s not in names]
            if unknown:
                print(f"sweep: --servers: {', '.join(unknown)} not in this sweep "
                      f"({', '.join(names)})", file=sys.stderr)
                return 2
            names = [n for n in names if n in args.servers]
        for name in names:
            if name not in sweep.catalogue:
                sweep.catalogue[name] = config._default_echod(name)
        capabilities = {n: (echod_capabilities(bin_dir, sweep.catalogue[n].model)
                            if sweep.catalogue[n].kind == "echod" else set()) for n in names}
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    unavailable = {}
    if any(sweep.catalogue[n].needs == "go" for n in names):
        problem = ensure_go_peer(bin_dir, paths.peers_dir)
        for n in names:
            if problem and sweep.catalogue[n].needs == "go":
                unavailable[n] = problem

    todo = [p for p in config.expand(sweep, names)
            if not args.workloads or p.workload in args.workloads]
    print(f"sweep {sweep.name}: {len(todo)} points, {len(names)} servers -> {out}", flush=True)
    rows = []
    started = time.monotonic()
    # SIGTERM as SIGINT: the point under way stops its client and server (its finally
    # clauses), and what was measured is still written out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run_points(sweep, todo, paths, capabilities, unavailable, nofile, out, rows, started)
    except KeyboardInterrupt:
        print("sweep: interrupted; writing what was measured", file=sys.stderr)
        write_outputs(out, sweep, rows, facts, commands + ["(interrupted)"])
        return 130
    written = write_outputs(out, sweep, rows, facts, commands)
    print(f"sweep: {len(rows)} rows in {out}/results.csv; tables in results.md; "
          f"{len(written)} plots; {out}/report.html")
    clean = all(r["status"] in ("ok", "skipped", "overloaded") for r in rows)
    return 0 if clean else 1


def run_points(sweep, todo, paths, capabilities, unavailable, nofile, out, rows, started):
    for index, point in enumerate(todo, 1):
        spec = sweep.catalogue[point.server]
        if point.server in unavailable:
            row = points.base_row(spec, point)
            row.update(status="failed", problem=unavailable[point.server])
        else:
            row = points.run_point(sweep, spec, capabilities[point.server], point, paths, nofile)
        rows.append(row)
        results.write_csv(out / "results.csv", rows)
        figure = row.get("msgs_per_s") if point.workload in ("steady", "hold") else row.get(
            "total_mean_s")
        print(f"[{index}/{len(todo)} {time.monotonic() - started:.0f}s] {point.ident}: "
              f"{row['status']}" + (f" ({row['problem']})" if row.get("problem") else "")
              + (f" {figure:.6g}" if isinstance(figure, float) else "")
              + (" SUSPECT" if row.get("suspect") else ""), flush=True)
