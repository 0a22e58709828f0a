"""Rows from client reports, the CSV, ranked tables, suspect marks and the HTML report."""
import tempfile
import unittest
from pathlib import Path

from client.sweep import report, results, tables


def steady_report(**overrides):
    r = {"status": "ok", "measured_seconds": 2.0, "wall_seconds": 3.0,
         "connections": {"attempted": 100, "established": 100, "open_at_end": 50,
                         "completed": None},
         "messages": {"measured": 20000, "per_second": 10000.0},
         "latency_us": {"p50": 10.0, "p99": 99.0, "max": 500.0},
         "errors": {"total": 0},
         "cpu": {"seconds": 2.0, "client": {"percent_of_one_core": 50.0},
                 "server": {"user_s": 0.5, "system_s": 0.5, "percent_of_one_core": 50.0}}}
    r.update(overrides)
    return r


class Summaries(unittest.TestCase):
    def test_bytes_per_connection_divides_by_connections_held(self):
        row = results.summarize("steady", steady_report(), 1.2, 1000, 1100)
        self.assertEqual(row["held"], 50)
        self.assertEqual(row["bytes_per_connection"], round(100 * 1024 / 50))

    def test_nothing_held_gives_no_bytes_per_connection(self):
        report_ = steady_report(connections={"open_at_end": 0, "completed": None})
        self.assertIsNone(results.summarize("hold", report_, 1, 1000, 1100)
                          .get("bytes_per_connection"))

    def test_server_cpu_per_message_uses_the_measured_window(self):
        row = results.summarize("steady", steady_report(), 9.0, 1, 1)
        self.assertAlmostEqual(row["server_cpu_us_per_msg"], 1.0 * 1e6 / 20000)
        self.assertAlmostEqual(row["server_cpu_pct"], 50.0)
        self.assertEqual(row["server_cpu_s"], 9.0)

    def test_churn_exchange_is_total_minus_connect(self):
        churn = steady_report(connect_us={"mean": 100.0}, connection_total_us={"mean": 900.0},
                              connections={"per_second": 1234.0, "completed": 500})
        row = results.summarize("churn", churn, 1, 1, 1)
        self.assertAlmostEqual(row["connect_mean_s"], 100e-6)
        self.assertAlmostEqual(row["exchange_mean_s"], 800e-6)
        self.assertAlmostEqual(row["total_mean_s"], 900e-6)
        self.assertAlmostEqual(row["server_cpu_us_per_conn"], 1.0 * 1e6 / 500)

    def test_seed_client_cpu_comes_from_proc(self):
        seed = {"status": "ok", "connect_mean_s": 0.01, "exchange_mean_s": 0.02,
                "actions_done": 100, "exchanges_done": 5000, "wall_seconds": 2.0, "errors": 0}
        row = results.summarize("seed-client", seed, 0.5, 1, 1)
        self.assertAlmostEqual(row["total_mean_s"], 0.03)
        self.assertAlmostEqual(row["server_cpu_us_per_msg"], 0.5 * 1e6 / 5000)
        self.assertAlmostEqual(row["server_cpu_pct"], 25.0)
        self.assertAlmostEqual(row["msgs_per_s"], 2500.0)


class Verdicts(unittest.TestCase):
    def test_suspect_key_read_when_present(self):
        status, _, suspect, reasons = results.verdict(
            steady_report(suspect=True, suspect_reasons=["client saturated"]), 0, None)
        self.assertEqual((status, suspect, reasons), ("ok", True, ["client saturated"]))

    def test_absent_key_is_not_suspect(self):
        self.assertEqual(results.verdict(steady_report(), 0, None), ("ok", None, False, []))

    def test_overloaded_is_suspect(self):
        status, _, suspect, reasons = results.verdict(steady_report(status="overloaded"), 1,
                                                      None)
        self.assertEqual(status, "overloaded")
        self.assertTrue(suspect)
        self.assertTrue(reasons)

    def test_errors_keep_the_client_status(self):
        status, problem, _, _ = results.verdict(steady_report(status="errors"), 1, None)
        self.assertEqual(status, "errors")
        self.assertIn("status 1", problem)


def row(server, workload="steady", **values):
    base = {"server": server, "kind": "echod", "workload": workload, "group": workload,
            "status": "ok", "suspect": False}
    base.update(values)
    return base


class Tables(unittest.TestCase):
    def test_steady_ranked_by_messages_unmeasured_last(self):
        rows = [row("a", msgs_per_s=10.0), row("b", status="failed", problem="boom"),
                row("c", msgs_per_s=30.0)]
        ranking = [(rank, r["server"]) for rank, r in tables.ranked("steady", rows)]
        self.assertEqual(ranking, [(1, "c"), (2, "a"), (None, "b")])
        text = "\n".join(tables.group_table("steady", rows))
        self.assertIn("| – | b |", text)
        self.assertIn("failed: boom", text)

    def test_articles_table_columns_and_rank(self):
        rows = [row("slow", "seed-client", connect_mean_s=0.2, exchange_mean_s=0.1,
                    total_mean_s=0.3),
                row("fast", "seed-client", connect_mean_s=0.01, exchange_mean_s=0.001,
                    total_mean_s=0.011)]
        lines = tables.group_table("seed-client", rows)
        self.assertTrue(lines[0].startswith("| server | connect s | exchange s | total s | rank"))
        self.assertTrue(lines[2].startswith("| fast | 0.01000 | 0.00100 | 0.01100 | 1 |"))
        self.assertTrue(lines[3].startswith("| slow | 0.20000 | 0.10000 | 0.30000 | 2 |"))

    def test_suspect_marked_in_markdown_and_html(self):
        rows = [row("a", msgs_per_s=10.0, suspect=True, suspect_reasons=["rate short"]),
                row("b", msgs_per_s=5.0)]
        markdown = tables.markdown(rows, ["# t"])
        line = next(l for l in markdown.splitlines() if l.startswith("| 1 | a |"))
        self.assertIn(tables.SUSPECT_MARK + ": rate short", line)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "r.html"
            report.write(path, "t", "", [("cores", "2")], ["cmd"], rows, Path(d), [])
            page = path.read_text()
        self.assertIn('<tr class="suspect">', page)
        self.assertIn(tables.SUSPECT_MARK + ": rate short", page)

    def test_ratio_of_model_to_its_counterpart(self):
        rows = [row("select", msgs_per_s=100.0, server_cpu_us_per_msg=10.0),
                row("py-select", kind="peer", counterpart="select", msgs_per_s=25.0,
                    server_cpu_us_per_msg=40.0)]
        line = tables.ratios(rows)[2]
        self.assertIn("| select | py-select | 4.00", line)
        self.assertIn("| 4.00 |", line)

    def test_csv_round_trip(self):
        rows = [row("a", msgs_per_s=12345.678, connections=10, suspect=True,
                    suspect_reasons=["x", "y"], server_exit=0)]
        with tempfile.TemporaryDirectory() as d:
            results.write_csv(Path(d) / "r.csv", rows)
            back = results.read_csv(Path(d) / "r.csv")
        self.assertAlmostEqual(back[0]["msgs_per_s"], 12345.678)
        self.assertEqual(back[0]["connections"], 10)
        self.assertIs(back[0]["suspect"], True)
        self.assertEqual(back[0]["suspect_reasons"], "x; y")
        self.assertEqual(back[0]["server_exit"], 0)
        self.assertIsNone(back[0]["p99_us"])


if __name__ == "__main__":
    unittest.main()
