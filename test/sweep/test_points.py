"""One point's life: planning, a fresh server, the client's JSON and exit status, the server's
stop and exit. Uses small fake servers and clients, so every failure can be provoked."""
import json
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

from client.sweep import clients, config, points

# A fake server: prints the listening line, echoes nothing; on SIGTERM exits with EXIT, or
# ignores SIGTERM when EXIT is "ignore"; with EXIT "silent" it never prints the line.
FAKE_SERVER = textwrap.dedent("""
    import signal, socket, sys, time
    mode = sys.argv[1]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    if mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(int(mode) if mode.isdigit() else 0))
    if mode != "silent":
        print("listening on 127.0.0.1:%d model=fake" % listener.getsockname()[1],
              file=sys.stderr, flush=True)
    while True:
        time.sleep(0.05)
""")

# A fake seed client: behaves as MODE (taken from the --workers value) says.
FAKE_CLIENT = textwrap.dedent("""
    import json, sys, time
    args = sys.argv[1:]
    workers = int(args[args.index("--workers") + 1])
    path = args[args.index("--json") + 1]
    report = {"tool": "seed-client", "status": "ok", "connect_mean_s": 0.001,
              "exchange_mean_s": 0.002, "total_s": 0.003, "errors": 0,
              "actions_done": workers * 10, "exchanges_done": 0, "wall_seconds": 0.5}
    if workers == 1:      # writes a good report, exits 0
        json.dump(report, open(path, "w")); sys.exit(0)
    if workers == 2:      # dies before writing its JSON
        sys.exit(3)
    if workers == 3:      # says ok but exits 1
        json.dump(report, open(path, "w")); sys.exit(1)
    if workers == 4:      # suspect
        report.update(suspect=True, suspect_reasons=["client saturated"])
        json.dump(report, open(path, "w")); sys.exit(0)
    time.sleep(60)
""")


class PointRuns(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        root = Path(self.dir.name)
        (root / "peers").mkdir()
        (root / "peers" / "seed_client.py").write_text(FAKE_CLIENT)
        (root / "server.py").write_text(FAKE_SERVER)
        self.paths = points.Paths(root / "bin", root / "peers", root / "out")
        self.sweep = config.Sweep(name="t", description="", source="t", server_cpu="0",
                                  client_cpu="0", stop_timeout_s=1, ready_timeout_s=5,
                                  settle_s=0)
        self.root = root

    def tearDown(self):
        self.dir.cleanup()

    def run_point(self, server_mode, workers, max_time_s=0):
        spec = config.ServerSpec(name="fake", kind="peer",
                                 command=[sys.executable, str(self.root / "server.py"),
                                          server_mode])
        point = config.Point(server="fake", workload="seed-client", workers=workers,
                             iterations=10, exchanges=0, loop="fixed", max_time_s=max_time_s,
                             group="g")
        return points.run_point(self.sweep, spec, set(), point, self.paths, 1024), point

    def test_clean_point(self):
        row, _ = self.run_point("0", 1)
        self.assertEqual(row["status"], "ok", row.get("problem"))
        self.assertEqual((row["server_exit"], row["client_exit"]), (0, 0))
        self.assertAlmostEqual(row["total_mean_s"], 0.003)
        self.assertAlmostEqual(row["conns_per_s"], 10 / 0.5)
        self.assertGreater(row["rss_peak_kib"], 0)
        self.assertTrue((self.paths.out_dir / row["json"]).exists())

    def test_client_without_json_never_reads_a_stale_file(self):
        first, point = self.run_point("0", 1)
        stale = self.paths.out_dir / first["json"]
        self.assertTrue(stale.exists())
        # The same point again, now with a client that dies before writing: the earlier
        # file at the same path must not be read.
        spec_row, _ = self.run_point("0", 2)
        self.assertEqual(spec_row["status"], "failed")
        self.assertIn("status 3", spec_row["problem"])
        self.assertIsNone(spec_row.get("total_mean_s"))
        self.assertIsNone(spec_row.get("json"))

    def test_stale_json_is_removed_before_the_client_runs(self):
        path = self.root / "stale.json"
        path.write_text(json.dumps({"status": "ok"}))
        run = clients.run_client([sys.executable, "-c", "import sys; sys.exit(3)"], "0", path,
                                 30, self.root)
        self.assertIsNone(run.report)
        self.assertEqual(run.exit_status, 3)
        self.assertFalse(path.exists())

    def test_exit_status_is_not_ignored(self):
        row, _ = self.run_point("0", 3)
        self.assertEqual(row["status"], "failed")
        self.assertIn("exited with status 1", row["problem"])

    def test_suspect_point_is_marked(self):
        row, _ = self.run_point("0", 4)
        self.assertEqual(row["status"], "ok")
        self.assertTrue(row["suspect"])
        self.assertEqual(row["suspect_reasons"], ["client saturated"])

    def test_hanging_client_is_killed_and_recorded(self):
        self.sweep.stop_timeout_s = 2
        started = time.monotonic()
        run = clients.run_client([sys.executable, "-c", "import time; time.sleep(30)"], "0",
                                 self.root / "x.json", 1, self.root)
        self.assertLess(time.monotonic() - started, 10)
        self.assertIsNone(run.report)
        self.assertIn("did not end", run.problem)

    def test_server_failing_its_stop_fails_the_point(self):
        row, _ = self.run_point("4", 1)
        self.assertEqual(row["status"], "failed")
        self.assertEqual(row["server_exit"], 4)
        self.assertIn("exited with status 4 after SIGTERM", row["problem"])
        self.assertAlmostEqual(row["total_mean_s"], 0.003)  # what was measured is kept

    def test_server_ignoring_sigterm_is_killed_and_fails_the_point(self):
        row, _ = self.run_point("ignore", 1)
        self.assertEqual(row["status"], "failed")
        self.assertIn("did not stop", row["problem"])

    def test_server_that_never_listens_fails_the_point(self):
        self.sweep.ready_timeout_s = 1
        row, _ = self.run_point("silent", 1)
        self.assertEqual(row["status"], "failed")
        self.assertIn("listening on", row["problem"])


class Planning(unittest.TestCase):
    def spec(self, **kw):
        return config.ServerSpec(name="m", kind="echod", command=[], model="m", **kw)

    def test_limit_skips_with_the_reason(self):
        spec = self.spec(max_connections=1000, limit_reason="FD_SETSIZE")
        point = config.Point(server="m", workload="steady", connections=10000, size=64)
        extra, reason = points.plan(spec, {"concurrent"}, point, 1000, 20000)
        self.assertIsNone(extra)
        self.assertIn("FD_SETSIZE", reason)

    def test_one_client_at_a_time_is_a_capability(self):
        point = config.Point(server="m", workload="steady", connections=2, size=64)
        self.assertIsNone(points.plan(self.spec(), {"one-client-at-a-time"}, point, 10, 100)[0])
        churn = config.Point(server="m", workload="churn", workers=50)
        self.assertEqual(points.plan(self.spec(), {"one-client-at-a-time"}, churn, 10, 100),
                         ([], None))

    def test_pool_raised_for_held_connections_only(self):
        spec = self.spec(per_connection_option="prefork.workers")
        steady = config.Point(server="m", workload="steady", connections=100, size=64)
        self.assertEqual(points.plan(spec, set(), steady, 1000, 20000)[0],
                         ["--prefork.workers=100"])
        churn = config.Point(server="m", workload="churn", workers=1000)
        self.assertEqual(points.plan(spec, set(), churn, 10, 20000), ([], None))
        big = config.Point(server="m", workload="hold", connections=5000)
        self.assertIn("pool_limit", points.plan(spec, set(), big, 1000, 20000)[1])

    def test_descriptor_limit(self):
        point = config.Point(server="m", workload="hold", connections=10000)
        self.assertIn("ulimit", points.plan(self.spec(), set(), point, 1000, 4096)[1])


if __name__ == "__main__":
    unittest.main()
