"""Markdown tables, one per group of points, ranked as the seed articles ranked theirs."""
from .results import measured

SUSPECT_MARK = "⚠ suspect"


def groups(rows):
    """[(group title, workload, rows)] in the order the groups first appear."""
    order, by_group = [], {}
    for row in rows:
        if row["group"] not in by_group:
            order.append(row["group"])
            by_group[row["group"]] = []
        by_group[row["group"]].append(row)
    return [(g, by_group[g][0]["workload"], by_group[g]) for g in order]


def rank_key(workload):
    """Best first: most messages/s (steady), most held then lowest p99 (hold), shortest mean
    time per action (churn and the seed client, as in the articles)."""
    if workload == "steady":
        return lambda r: -(r.get("msgs_per_s") or 0)
    if workload == "hold":
        return lambda r: (-(r.get("held") or 0), r.get("p99_us") or float("inf"))
    return lambda r: r.get("total_mean_s") if r.get("total_mean_s") is not None else float("inf")


def ranked(workload, rows):
    """[(rank or None, row)]: measured rows ranked, then the rest (failed, skipped) unranked."""
    good = sorted((r for r in rows if measured(r)), key=rank_key(workload))
    rest = [r for r in rows if not measured(r)]
    return [(i + 1, r) for i, r in enumerate(good)] + [(None, r) for r in rest]


def fmt(value, digits=None, scale=1.0):
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, (int, float)):
        value = value * scale
        if digits is None:
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def status_cell(row):
    text = row["status"]
    if row.get("problem"):
        text += f": {row['problem']}"
    return text.replace("|", "/").replace("\n", " ")


def suspect_cell(row):
    if not row.get("suspect"):
        return ""
    reasons = row.get("suspect_reasons")
    if isinstance(reasons, list):
        reasons = "; ".join(reasons)
    return SUSPECT_MARK + (f": {reasons}" if reasons else "")


def columns(workload):
    """(heading, cell function) for each column of a group's table."""
    name = ("server", lambda r: r["server"] + (" (peer)" if r["kind"] == "peer" else ""))
    tail = [("status", status_cell), ("suspect", suspect_cell)]
    if workload == "steady":
        return [name, ("msg/s", lambda r: fmt(r.get("msgs_per_s"))),
                ("p50 µs", lambda r: fmt(r.get("p50_us"), 1)),
                ("p99 µs", lambda r: fmt(r.get("p99_us"), 1)),
                ("server CPU %", lambda r: fmt(r.get("server_cpu_pct"), 1)),
                ("server µs/msg", lambda r: fmt(r.get("server_cpu_us_per_msg"), 2)),
                ("client CPU %", lambda r: fmt(r.get("client_cpu_pct"), 1)),
                ("RSS idle KiB", lambda r: fmt(r.get("rss_idle_kib"))),
                ("RSS peak KiB", lambda r: fmt(r.get("rss_peak_kib"))),
                ("bytes/conn held", lambda r: fmt(r.get("bytes_per_connection")))] + tail
    if workload == "hold":
        return [name, ("held", lambda r: fmt(r.get("held"))),
                ("asked", lambda r: fmt(r.get("connections"))),
                ("errors", lambda r: fmt(r.get("errors"))),
                ("p99 µs", lambda r: fmt(r.get("p99_us"), 1)),
                ("server CPU %", lambda r: fmt(r.get("server_cpu_pct"), 1)),
                ("RSS idle KiB", lambda r: fmt(r.get("rss_idle_kib"))),
                ("RSS peak KiB", lambda r: fmt(r.get("rss_peak_kib"))),
                ("bytes/conn held", lambda r: fmt(r.get("bytes_per_connection")))] + tail
    # churn and the seed client: the articles' columns, then what they did not measure.
    return [name, ("connect s", lambda r: fmt(r.get("connect_mean_s"), 5)),
            ("exchange s", lambda r: fmt(r.get("exchange_mean_s"), 5)),
            ("total s", lambda r: fmt(r.get("total_mean_s"), 5)),
            ("conn/s", lambda r: fmt(r.get("conns_per_s"))),
            ("server µs/conn", lambda r: fmt(r.get("server_cpu_us_per_conn"), 1)),
            ("server CPU %", lambda r: fmt(r.get("server_cpu_pct"), 1)),
            ("client CPU %", lambda r: fmt(r.get("client_cpu_pct"), 1)),
            ("listen overflows", lambda r: fmt(r.get("listen_overflows"))),
            ("SYN retransmits", lambda r: fmt(r.get("syn_retransmits"))),
            ("errors", lambda r: fmt(r.get("errors")))] + tail


def group_table(workload, rows):
    """Markdown lines; the rank column comes last for the articles' workloads, first otherwise,
    as in the articles (connect, exchange, total, rank)."""
    cols = columns(workload)
    article = workload in ("churn", "seed-client")
    heads = [h for h, _ in cols]
    heads = heads[:4] + ["rank"] + heads[4:] if article else ["rank"] + heads
    lines = ["| " + " | ".join(heads) + " |",
             "|" + "|".join("---" if i == 0 or h in ("server", "status", "suspect") else "---:"
                            for i, h in enumerate(heads)) + "|"]
    for rank, row in ranked(workload, rows):
        cells = [f(row) for _, f in cols]
        rank_text = str(rank) if rank else "–"
        cells = cells[:4] + [rank_text] + cells[4:] if article else [rank_text] + cells
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratios(rows):
    """echod model against its Python or Go counterpart, at every group where both ran."""
    lines = []
    for title, workload, group_rows in groups(rows):
        by_name = {r["server"]: r for r in group_rows if measured(r)}
        for peer in (r for r in group_rows if r["kind"] == "peer" and measured(r)):
            model = by_name.get(peer.get("counterpart") or "")
            if not model:
                continue
            if workload in ("steady", "hold"):
                numerator, denominator, what = (model.get("msgs_per_s"), peer.get("msgs_per_s"),
                                                "msg/s, echod ÷ peer")
            else:
                numerator, denominator, what = (peer.get("total_mean_s"),
                                                model.get("total_mean_s"),
                                                "time per action, peer ÷ echod")
            cpu_model = model.get("server_cpu_us_per_msg") or model.get("server_cpu_us_per_conn")
            cpu_peer = peer.get("server_cpu_us_per_msg") or peer.get("server_cpu_us_per_conn")
            speed = numerator / denominator if numerator and denominator else None
            cpu = cpu_peer / cpu_model if cpu_peer and cpu_model else None
            mark = " " + SUSPECT_MARK if model.get("suspect") or peer.get("suspect") else ""
            lines.append(f"| {title} | {model['server']} | {peer['server']} | {fmt(speed, 2)} "
                         f"({what}) | {fmt(cpu, 2)} |{mark} |")
    if not lines:
        return []
    return (["| point | echod model | counterpart | speed ratio | server CPU ratio (peer ÷ "
             "echod) | suspect |", "|---|---|---|---|---:|---|"] + lines)


def markdown(rows, header_lines):
    out = list(header_lines)
    for title, workload, group_rows in groups(rows):
        out += ["", f"## {title}", ""] + group_table(workload, group_rows)
    ratio_lines = ratios(rows)
    if ratio_lines:
        out += ["", "## echod models against their Python and Go counterparts", ""] + ratio_lines
    return "\n".join(out) + "\n"
