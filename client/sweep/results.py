"""One row per point: what the client's JSON and /proc said, and the CSV that holds them."""
import csv

COLUMNS = [
    "server", "kind", "counterpart", "workload", "group", "connections", "size", "workers",
    "iterations", "exchanges", "loop", "status", "problem", "suspect", "suspect_reasons",
    "msgs_per_s", "conns_per_s", "p50_us", "p99_us", "max_us", "connect_mean_s",
    "exchange_mean_s", "total_mean_s", "held", "errors", "messages", "server_cpu_s",
    "server_cpu_pct", "server_cpu_us_per_msg", "server_cpu_us_per_conn", "client_cpu_pct",
    "rss_idle_kib", "rss_peak_kib", "bytes_per_connection", "listen_overflows", "listen_drops",
    "syn_retransmits", "server_exit", "client_exit", "json",
]
INTEGER_COLUMNS = {"connections", "size", "workers", "iterations", "exchanges", "held",
                   "errors", "messages", "rss_idle_kib", "rss_peak_kib", "bytes_per_connection",
                   "listen_overflows", "listen_drops", "syn_retransmits", "server_exit",
                   "client_exit"}
FLOAT_COLUMNS = {"msgs_per_s", "conns_per_s", "p50_us", "p99_us", "max_us", "connect_mean_s",
                 "exchange_mean_s", "total_mean_s", "server_cpu_s", "server_cpu_pct",
                 "server_cpu_us_per_msg", "server_cpu_us_per_conn", "client_cpu_pct"}
MEASURED_STATUSES = {"ok", "errors", "overloaded"}  # the figures mean something


def _get(report, *keys):
    value = report
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def _cpu_s(cpu):
    return None if not cpu else cpu["user_s"] + cpu["system_s"]


def summarize(workload, report, server_cpu_s, rss_idle_kib, rss_peak_kib):
    """The row fields a client report gives. server_cpu_s is the sweep's own /proc reading of
    the server tree over the whole client run; echo-bench's window figure wins where given."""
    row = {"errors": None, "messages": None}
    if workload == "seed-client":
        connect, exchange = report.get("connect_mean_s"), report.get("exchange_mean_s")
        wall = report.get("wall_seconds") or 0
        actions, exchanges = report.get("actions_done") or 0, report.get("exchanges_done") or 0
        row.update(connect_mean_s=connect, exchange_mean_s=exchange,
                   total_mean_s=None if connect is None or exchange is None else connect + exchange,
                   conns_per_s=actions / wall if wall else None,
                   msgs_per_s=exchanges / wall if wall and exchanges else None,
                   errors=report.get("errors"), messages=exchanges)
        if report.get("client_cpu_s") is not None and wall:
            row["client_cpu_pct"] = 100 * report["client_cpu_s"] / wall
        window_s, window_cpu, messages, connections = wall, server_cpu_s, exchanges, actions
    else:
        latency = report.get("latency_us") or {}
        row.update(msgs_per_s=_get(report, "messages", "per_second"),
                   messages=_get(report, "messages", "measured"),
                   p50_us=latency.get("p50"), p99_us=latency.get("p99"),
                   max_us=latency.get("max"), errors=_get(report, "errors", "total"),
                   client_cpu_pct=_get(report, "cpu", "client", "percent_of_one_core"))
        window_s = _get(report, "cpu", "seconds") or report.get("measured_seconds")
        window_cpu = _cpu_s(_get(report, "cpu", "server"))
        if window_cpu is None:
            window_cpu, window_s = server_cpu_s, report.get("wall_seconds")
        messages = row["messages"]
        connections = _get(report, "connections", "completed")
        if workload == "churn":
            connect = _get(report, "connect_us", "mean")
            total = _get(report, "connection_total_us", "mean")
            row.update(conns_per_s=_get(report, "connections", "per_second"),
                       connect_mean_s=None if connect is None else connect / 1e6,
                       total_mean_s=None if total is None else total / 1e6,
                       exchange_mean_s=(None if connect is None or total is None
                                        else (total - connect) / 1e6))
        else:
            row["held"] = _get(report, "connections", "open_at_end")
    row["server_cpu_s"] = server_cpu_s
    if window_cpu is not None and window_s:
        row["server_cpu_pct"] = 100 * window_cpu / window_s
    if window_cpu is not None and messages:
        row["server_cpu_us_per_msg"] = window_cpu * 1e6 / messages
    if window_cpu is not None and connections and workload in ("churn", "seed-client"):
        row["server_cpu_us_per_conn"] = window_cpu * 1e6 / connections
    row["rss_idle_kib"], row["rss_peak_kib"] = rss_idle_kib, rss_peak_kib
    held = row.get("held")
    if held and rss_idle_kib is not None and rss_peak_kib is not None:
        # Per connection actually held at the end, not per connection asked for.
        row["bytes_per_connection"] = round((rss_peak_kib - rss_idle_kib) * 1024 / held)
    return row


def verdict(report, client_exit, client_problem):
    """(status, problem, suspect, suspect reasons) from a client run."""
    if report is None:
        return "failed", client_problem or "no report", False, []
    status = str(report.get("status") or "failed")
    problem = None
    if client_exit != 0 and status == "ok":
        status, problem = "failed", f"client exited with status {client_exit} but reported ok"
    elif client_exit != 0:
        problem = f"client exited with status {client_exit} ({status})"
    elif status != "ok":
        problem = f"client exited 0 but reported {status}"
    suspect = report.get("suspect") is True or status == "overloaded"
    reasons = [str(r) for r in report.get("suspect_reasons") or []]
    if status == "overloaded" and not reasons:
        reasons = ["echo-bench reported overloaded"]
    return status, problem, suspect, reasons


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, list):
        return "; ".join(value)
    return value


def read_csv(path):
    """Rows back from a CSV written by write_csv, with numbers as numbers."""
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for key, text in raw.items():
                if text == "":
                    row[key] = None
                elif key in INTEGER_COLUMNS:
                    row[key] = int(text)
                elif key in FLOAT_COLUMNS:
                    row[key] = float(text)
                elif key == "suspect":
                    row[key] = text == "true"
                else:
                    row[key] = text
            rows.append(row)
    return rows


def measured(row):
    return row.get("status") in MEASURED_STATUSES
