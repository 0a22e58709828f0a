"""Every peer (the articles' Python servers, Go) as a sweep target: started on port 0, pinned,
found by its listening line, loaded by the articles' client (loop fixed and as written) and by
echo-bench steady, then stopped by SIGTERM with exit status 0.

ECHOD_SWEEP_PEERS lists the peers (default: the six Python ones); ECHOD_BIN_DIR holds
echo-bench and go-echo-peer.
"""
import json
import os
import tempfile
import unittest
from pathlib import Path

from client.sweep import config, points

REPO = Path(__file__).resolve().parents[2]
PEERS = os.environ.get("ECHOD_SWEEP_PEERS", "py-select,py-epoll,py-prefork,py-prethread,"
                                            "py-select-prethread,py-asyncio").split(",")
BIN_DIR = Path(os.environ.get("ECHOD_BIN_DIR", REPO / "build" / "bin"))


class Peers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.catalogue = config.load_catalogue(REPO / "conf" / "sweeps" / "servers.toml")
        cls.sweep = config.Sweep(name="peers", description="", source="test", settle_s=0.1,
                                 stop_timeout_s=10)

    def run_point(self, peer, point, out):
        paths = points.Paths(BIN_DIR, REPO / "client" / "peers", out)
        row = points.run_point(self.sweep, self.catalogue[peer], set(), point, paths, 20000)
        self.assertEqual(row["status"], "ok", f"{peer}: {row.get('problem')}")
        self.assertEqual(row["server_exit"], 0, peer)
        self.assertEqual(row["errors"], 0, peer)
        return row, json.loads((Path(out) / row["json"]).read_text())

    def test_articles_client_fixed_and_as_written(self):
        for peer in PEERS:
            with self.subTest(peer=peer), tempfile.TemporaryDirectory() as out:
                fixed = config.Point(server=peer, workload="seed-client", workers=5,
                                     iterations=3, exchanges=4, loop="fixed", group="g")
                row, report = self.run_point(peer, fixed, out)
                self.assertEqual(report["exchanges_done"], 5 * 3 * 4)
                self.assertEqual(row["messages"], 60)
                self.assertGreater(row["total_mean_s"], 0)
                as_written = config.Point(server=peer, workload="seed-client", workers=5,
                                          iterations=3, exchanges=4, loop="as-written",
                                          group="g")
                row, report = self.run_point(peer, as_written, out)
                self.assertEqual(report["exchanges_done"], 0)  # range(4, 1) is empty

    def test_echo_bench_steady(self):
        for peer in PEERS:
            with self.subTest(peer=peer), tempfile.TemporaryDirectory() as out:
                steady = config.Point(server=peer, workload="steady", connections=5, size=64,
                                      duration_s=0.3, warmup_s=0.1, group="g")
                row, report = self.run_point(peer, steady, out)
                self.assertEqual(row["held"], 5)
                self.assertGreater(report["messages"]["echoed"], 0)
                self.assertEqual(report["bytes"]["sent"], report["bytes"]["echoed"])


if __name__ == "__main__":
    unittest.main()
