"""PNG plots with matplotlib (Agg): one line per server against connections on log axes, echod's
models (and the C baseline) in one panel and the Python and Go peers in another beside it, the
same axes for both; churn connections/s; the articles' table as bars. Suspect points are drawn
hollow."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .results import measured  # noqa: E402
from .tables import groups, ranked  # noqa: E402

PANELS = (("echod models and the C baseline", ("echod", "baseline")),
          ("peers: the articles' Python servers and Go", ("peer",)))
LINE_METRICS = (
    ("msgs_per_s", "messages/s", "messages per second"),
    ("server_cpu_us_per_msg", "server CPU µs per message", "server CPU per message"),
    ("p99_us", "p99 round trip µs", "p99 round trip"),
    ("bytes_per_connection", "server RSS bytes per connection held", "memory per connection"),
)


def _series(rows, x_key, y_key, kinds):
    """server -> sorted [(x, y, suspect)] of measured, positive values (log axes)."""
    series = {}
    for row in rows:
        if row["kind"] not in kinds or not measured(row):
            continue
        x, y = row.get(x_key), row.get(y_key)
        if x is None or y is None or x <= 0 or y <= 0:
            continue
        series.setdefault(row["server"], []).append((x, y, bool(row.get("suspect"))))
    return {name: sorted(points) for name, points in sorted(series.items())}


def colours_for(rows):
    """One colour per server, the same in every plot."""
    names = sorted({r["server"] for r in rows})
    return {name: f"C{i % 10}" if i < 10 else plt.cm.tab20((i - 10) % 20)
            for i, name in enumerate(names)}


def line_figure(path, rows, x_key, x_label, y_key, y_label, title, colours=None):
    """Two panels sharing both axes; returns False (and writes nothing) if no value is
    plottable."""
    colours = colours or colours_for(rows)
    panels = [(panel_title, _series(rows, x_key, y_key, kinds)) for panel_title, kinds in PANELS]
    if not any(series for _, series in panels):
        return False
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True, sharey=True)
    for axis, (panel_title, series) in zip(axes, panels):
        for name, points in series.items():
            colour = colours[name]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            axis.plot(xs, ys, "-", color=colour, label=name, linewidth=1.5)
            for x, y, suspect in points:
                axis.plot([x], [y], "o", color=colour, markersize=6,
                          markerfacecolor="white" if suspect else colour)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(panel_title, fontsize=10)
        axis.set_xlabel(x_label)
        axis.grid(True, which="both", alpha=0.3)
        if series:
            axis.legend(fontsize=8, loc="best")
        else:
            axis.text(0.5, 0.5, "no points", transform=axis.transAxes, ha="center")
    axes[0].set_ylabel(y_label)
    figure.suptitle(title + " (hollow marker: suspect point)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def article_bars(path, title, workload, rows):
    """The articles' table as horizontal bars: connect + exchange = total per server, best
    (rank 1) at the top; failed and skipped servers are left out (the table lists them)."""
    ranked_rows = [(rank, r) for rank, r in ranked(workload, rows)
                   if rank and r.get("total_mean_s") is not None]
    if not ranked_rows:
        return False
    names = [f"{rank}. {r['server']}" + (" ⚠" if r.get("suspect") else "")
             for rank, r in ranked_rows]
    connect = [(r.get("connect_mean_s") or 0) * 1e3 for _, r in ranked_rows]
    exchange = [(r.get("exchange_mean_s") or 0) * 1e3 for _, r in ranked_rows]
    colours = ["C0" if r["kind"] != "peer" else "C1" for _, r in ranked_rows]
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(names) + 1.6))
    positions = list(range(len(names)))[::-1]
    axis.barh(positions, connect, color=colours, label="connect")
    axis.barh(positions, exchange, left=connect, color=colours, alpha=0.45, hatch="//",
              label="exchange (to after close)")
    axis.set_yticks(positions)
    axis.set_yticklabels(names, fontsize=9)
    axis.set_xlabel("mean time per action, ms (solid: connect, hatched: exchange; "
                    "blue: echod, orange: peer)")
    axis.set_title(title, fontsize=10)
    axis.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def write_all(out_dir, rows):
    """Writes every plot the rows allow; returns [(file name, caption)] in report order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    colours = colours_for(rows)
    steady = [r for r in rows if r["workload"] == "steady"]
    for size in sorted({r["size"] for r in steady if r.get("size")}):
        sized = [r for r in steady if r.get("size") == size]
        for key, label, what in LINE_METRICS:
            name = f"steady-{key}-s{size}.png"
            title = f"steady ping-pong, {size} B: {what} against connections"
            if line_figure(out_dir / name, sized, "connections", "connections", key, label, title,
                           colours):
                written.append((name, title))
    hold = [r for r in rows if r["workload"] == "hold"]
    for key, label, what in (("bytes_per_connection", LINE_METRICS[3][1], "memory per connection"),
                             ("p99_us", "p99 round trip µs", "p99 round trip"),
                             ("server_cpu_pct", "server CPU % of one core", "server CPU")):
        name = f"hold-{key}.png"
        title = f"hold (one message per connection per interval): {what} against connections"
        if line_figure(out_dir / name, hold, "connections", "connections", key, label, title,
                       colours):
            written.append((name, title))
    churn = [r for r in rows if r["workload"] == "churn"]
    for key, label, what in (("conns_per_s", "connections per second", "connections/s"),
                             ("total_mean_s", "mean s per connection (connect to close)",
                              "time per connection")):
        name = f"churn-{key}.png"
        title = f"echo-bench churn: {what} against workers"
        if line_figure(out_dir / name, churn, "workers", "workers", key, label, title, colours):
            written.append((name, title))
    for index, (title, workload, group_rows) in enumerate(groups(rows)):
        if workload not in ("churn", "seed-client"):
            continue
        name = f"articles-table-{index:02d}.png"
        if article_bars(out_dir / name, title, workload, group_rows):
            written.append((name, f"the articles' table as bars: {title}"))
    return written
