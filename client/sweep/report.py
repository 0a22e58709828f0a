"""report.html: one self-contained page (plots embedded as base64 PNG) with the machine, the
method, every table and every plot. An inline script records, once the page has loaded, how
many of its images decoded, so a headless browser can check the page renders its plots."""
import base64
import html

from .tables import columns, groups, ranked, ratios

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1300px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 7px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.suspect td { background: #fff3cd; }
tr.unmeasured td { color: #777; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
dt { font-weight: bold; } dd { margin: 0 0 0.4em 1.5em; }
"""
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img.plot"), decoded = 0;
  images.forEach(function (img) { if (img.complete && img.naturalWidth > 0) decoded++; });
  document.body.setAttribute("data-plots-total", images.length);
  document.body.setAttribute("data-plots-decoded", decoded);
});
"""


def _table(workload, rows):
    cols = columns(workload)
    article = workload in ("churn", "seed-client")
    heads = [h for h, _ in cols]
    heads = heads[:4] + ["rank"] + heads[4:] if article else ["rank"] + heads
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr>"]
    for rank, row in ranked(workload, rows):
        cells = [f(row) for _, f in cols]
        cells = (cells[:4] + [str(rank) if rank else "–"] + cells[4:] if article
                 else [str(rank) if rank else "–"] + cells)
        css = "suspect" if row.get("suspect") else ("" if rank else "unmeasured")
        tds = []
        for head, cell in zip(heads, cells):
            numeric = head not in ("server", "status", "suspect")
            opening = '<td class="n">' if numeric else "<td>"
            tds.append(f"{opening}{html.escape(cell)}</td>")
        out.append(f"<tr class=\"{css}\">" + "".join(tds) + "</tr>")
    out.append("</table>")
    return out


def _markdown_table_to_html(lines):
    out = ["<table>"]
    for i, line in enumerate(lines):
        if i == 1:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        tag = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
    out.append("</table>")
    return out


def write(path, title, description, facts, commands, rows, plot_dir, plots, sweep_text=""):
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    if description:
        out.append(f"<p>{html.escape(description)}</p>")
    out.append("<h2>Machine and method</h2><dl>")
    for label, value in facts:
        out.append(f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>")
    out.append("</dl><p>Each point: a fresh server, its peak RSS (VmRSS summed over its process "
               "tree, sampled every 0.1 s) and CPU (its tree, from /proc) recorded, the client "
               "run, then the server stopped with SIGTERM and its exit status checked. "
               "Highlighted rows are suspect (the client's own report says so); grey rows "
               "were not measured (failed or skipped, with the reason).</p>")
    out.append("<p>Commands:</p><pre>" + html.escape("\n".join(commands)) + "</pre>")
    if sweep_text:
        out.append("<details><summary>The sweep description</summary><pre>"
                   + html.escape(sweep_text) + "</pre></details>")
    for title_text, workload, group_rows in groups(rows):
        out.append(f"<h2>{html.escape(title_text)}</h2>")
        out += _table(workload, group_rows)
    ratio_lines = ratios(rows)
    if ratio_lines:
        out.append("<h2>echod models against their Python and Go counterparts</h2>")
        out += _markdown_table_to_html(ratio_lines)
    out.append("<h2>Plots</h2>")
    for name, caption in plots:
        data = base64.b64encode((plot_dir / name).read_bytes()).decode("ascii")
        out.append(f"<figure><img class=\"plot\" alt=\"{html.escape(caption)}\" "
                   f"data-file=\"{html.escape(name)}\" src=\"data:image/png;base64,{data}\">"
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append(f"<script>{CHECK_SCRIPT}</script></body></html>")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
