"""ctest sweep:tiny: runs test/sweep/tiny.toml (two echod models, one Python peer, two points
each) and checks that the CSV, the plots and report.html hold the measured values, read back
from the CSV and from each point's echo-bench JSON.

Usage: check_tiny_sweep.py BIN_DIR OUT_DIR MODEL_A MODEL_B PEER
"""
import base64
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from client.sweep import results, tables  # noqa: E402

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def close(a, b, what):
    ok = a is not None and b is not None and abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-12)
    check(ok, f"{what}: CSV has {a}, the JSON gives {b}")


def main():
    bin_dir, out, *servers = sys.argv[1:]
    out = Path(out)
    done = subprocess.run([sys.executable, "-m", "client.sweep", str(REPO / "test/sweep/tiny.toml"),
                           "--bin-dir", bin_dir, "--out", str(out), "--servers", ",".join(servers)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    print(done.stdout, done.stderr)
    check(done.returncode == 0, f"the sweep exited {done.returncode}")

    rows = results.read_csv(out / "results.csv")
    check(len(rows) == 2 * len(servers), f"{len(rows)} rows, expected {2 * len(servers)}")
    check({r["server"] for r in rows} == set(servers), f"servers {[r['server'] for r in rows]}")
    for row in rows:
        name = f"{row['server']} {row['workload']}"
        if not check(row["status"] == "ok", f"{name}: status {row['status']} {row['problem']}"):
            continue
        check(row["server_exit"] == 0 and row["client_exit"] == 0, f"{name}: exit statuses")
        check(row["rss_peak_kib"] and row["rss_peak_kib"] >= row["rss_idle_kib"] > 0,
              f"{name}: RSS idle {row['rss_idle_kib']} peak {row['rss_peak_kib']}")
        report = json.loads((out / row["json"]).read_text())
        check(report["tool"] == "echo-bench" and report["workload"] == row["workload"],
              f"{name}: JSON is {report.get('tool')} {report.get('workload')}")
        close(row["msgs_per_s"], report["messages"]["per_second"], f"{name} msgs_per_s")
        close(row["p99_us"], report["latency_us"]["p99"], f"{name} p99_us")
        server = report["cpu"]["server"]
        check(server and server["pid"] > 0, f"{name}: no server CPU in the JSON")
        if server and report["messages"]["measured"]:
            close(row["server_cpu_us_per_msg"],
                  (server["user_s"] + server["system_s"]) * 1e6 / report["messages"]["measured"],
                  f"{name} server_cpu_us_per_msg")
        if row["workload"] == "steady":
            check(report["parameters"]["connections"] == 5, f"{name}: connections")
            check(row["held"] == report["connections"]["open_at_end"] == 5, f"{name}: held")
            expected = round((row["rss_peak_kib"] - row["rss_idle_kib"]) * 1024 / row["held"])
            check(row["bytes_per_connection"] == expected,
                  f"{name}: bytes/conn {row['bytes_per_connection']} != {expected}")
        else:
            check(report["parameters"]["workers"] == 4, f"{name}: workers")
            close(row["conns_per_s"], report["connections"]["per_second"], f"{name} conns/s")
            close(row["connect_mean_s"], report["connect_us"]["mean"] / 1e6, f"{name} connect")
            close(row["total_mean_s"], report["connection_total_us"]["mean"] / 1e6,
                  f"{name} total")

    markdown = (out / "results.md").read_text()
    page = (out / "report.html").read_text()
    for row in rows:
        if row["status"] != "ok":
            continue
        figure = (tables.fmt(row["msgs_per_s"]) if row["workload"] == "steady"
                  else tables.fmt(row["total_mean_s"], 5))
        for text, where in ((markdown, "results.md"), (page, "report.html")):
            check(any(row["server"] in line and figure in line for line in text.splitlines()),
                  f"{where} has no line with {row['server']} and {figure}")

    expected_plots = ["steady-msgs_per_s-s64.png", "steady-server_cpu_us_per_msg-s64.png",
                      "steady-p99_us-s64.png", "steady-bytes_per_connection-s64.png",
                      "churn-conns_per_s.png"]
    articles = sorted((out / "plots").glob("articles-table-*.png"))
    check(len(articles) == 1, f"{len(articles)} articles' table plots")
    for path in [out / "plots" / n for n in expected_plots] + articles:
        if not check(path.exists(), f"{path.name} missing"):
            continue
        data = path.read_bytes()
        check(data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path.name} is not a PNG")
        pixels = matplotlib.image.imread(path)
        check(pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0.01,
              f"{path.name}: {pixels.shape}, blank")
        check(base64.b64encode(data).decode() in page, f"report.html does not embed {path.name}")
    check("cores online" in page, "report.html has no machine description")

    for failure in failures:
        print("FAILED:", failure)
    print(f"{len(rows)} rows checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
