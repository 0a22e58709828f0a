"""Sweep descriptions: the shipped ones hold what issue 17 asks for; bad ones fail naming the key."""
import io
import tempfile
import unittest
from contextlib import redirect_stderr
from pathlib import Path

from client.sweep import config, run

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "conf" / "sweeps"


def shipped_sweeps():
    """Every sweep description in conf/sweeps/ (servers.toml is the catalogue, not a sweep)."""
    return [path for path in sorted(SWEEPS.glob("*.toml")) if path.name != "servers.toml"]


def write_sweep(directory, text, catalogue='[servers.x]\nkind = "echod"\n'):
    (Path(directory) / "servers.toml").write_text(catalogue)
    path = Path(directory) / "s.toml"
    path.write_text(text)
    return path


class ShippedSweeps(unittest.TestCase):
    def test_full_covers_the_issue_grid(self):
        sweep = config.load(SWEEPS / "full.toml")
        points = config.expand(sweep, ["epoll"])
        steady = {(p.connections, p.size) for p in points if p.workload == "steady"}
        self.assertEqual({c for c, _ in steady}, {1, 10, 100, 1000, 10000})
        self.assertEqual({s for _, s in steady}, {64, 512, 4096, 16384})
        self.assertEqual(sorted(p.workers for p in points if p.workload == "churn"),
                         [50, 150, 1000])
        self.assertEqual([p.connections for p in points if p.workload == "hold"], [10000])
        self.assertIn("echod:*", sweep.include)
        self.assertIn("go", sweep.include)

    def test_seeds_is_the_articles_experiment(self):
        sweep = config.load(SWEEPS / "seeds.toml")
        points = config.expand(sweep, ["py-epoll"])
        seed = [p for p in points if p.workload == "seed-client"]
        self.assertEqual({p.loop for p in seed}, {"as-written", "fixed"})
        self.assertEqual(sorted({p.workers for p in seed}), [50, 100, 150, 1000])
        for p in points:  # ACTION_COUNT 100, SEND_RECV_COUNT 50, churn with the same
            self.assertEqual((p.iterations, p.exchanges), (100, 50))
        self.assertEqual(sorted(p.workers for p in points if p.workload == "churn"),
                         [50, 100, 150, 1000])
        for peer in ("py-select", "py-epoll", "py-prefork", "py-prethread",
                     "py-select-prethread", "py-asyncio", "go"):
            self.assertEqual(sweep.catalogue[peer].kind, "peer")
            self.assertIn(peer, sweep.include)

    def test_quick_has_every_model_and_one_peer(self):
        sweep = config.load(SWEEPS / "quick.toml")
        peers = [n for n in sweep.include if n in sweep.catalogue
                 and sweep.catalogue[n].kind == "peer"]
        self.assertIn("echod:*", sweep.include)
        self.assertEqual(len(peers), 1)

    def test_every_named_server_is_known(self):
        """A name in include is a catalogue entry or an echod model in strategies/ (a typo
        would otherwise run as an unknown echod model and fail only at run time)."""
        models = {p.stem.replace("_", "-") for p in (REPO / "strategies").glob("*.cpp")}
        for path in shipped_sweeps():
            sweep = config.load(path)
            for name in sweep.include:
                if name != config.ALL_ECHOD_MODELS:
                    spec = sweep.catalogue[name]
                    self.assertTrue(spec.kind != "echod" or spec.model in models,
                                    f"{path.name}: {name} (model {spec.model})")

    def test_point_names_are_unique(self):
        for path in shipped_sweeps():
            points = config.expand(config.load(path), ["epoll", "py-epoll"])
            self.assertEqual(len({p.ident for p in points}), len(points), path.name)


class BadDescriptions(unittest.TestCase):
    def check(self, text, key, catalogue=None):
        with tempfile.TemporaryDirectory() as d:
            path = write_sweep(d, text, *([catalogue] if catalogue else []))
            with self.assertRaises(config.ConfigError) as caught:
                config.load(path)
        self.assertEqual(caught.exception.key, key, str(caught.exception))
        self.assertIn(key, str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))

    HEAD = '[servers]\ninclude = ["x"]\n'

    def test_negative_connections(self):
        self.check(self.HEAD + '[[points]]\nworkload = "steady"\nconnections = [10, -1]\n',
                   "points[0].connections")

    def test_connections_not_integers(self):
        self.check(self.HEAD + '[[points]]\nworkload = "steady"\nconnections = ["10"]\n',
                   "points[0].connections")

    def test_unknown_workload(self):
        self.check(self.HEAD + '[[points]]\nworkload = "stream"\n', "points[0].workload")

    def test_unknown_key(self):
        self.check(self.HEAD + '[[points]]\nworkload = "churn"\nworkers = 5\nwokers = 3\n',
                   "points[0].wokers")

    def test_key_of_another_workload(self):
        self.check(self.HEAD + '[[points]]\nworkload = "churn"\nworkers = 5\nsizes = [64]\n',
                   "points[0].sizes")

    def test_bad_loop(self):
        self.check(self.HEAD + '[[points]]\nworkload = "seed-client"\nworkers = 5\n'
                               'loop = ["fast"]\n', "points[0].loop")

    def test_bad_cpu_list(self):
        self.check('[sweep]\nserver_cpu = "zero"\n' + self.HEAD
                   + '[[points]]\nworkload = "churn"\nworkers = 1\n', "sweep.server_cpu")

    def test_negative_duration(self):
        self.check(self.HEAD + '[[points]]\nworkload = "hold"\nconnections = 1\n'
                               'duration_s = -2\n', "points[0].duration_s")

    def test_missing_servers(self):
        self.check('[[points]]\nworkload = "churn"\nworkers = 1\n', "servers")

    def test_limit_without_reason(self):
        self.check(self.HEAD + '[[points]]\nworkload = "churn"\nworkers = 1\n',
                   "servers.x.reason",
                   catalogue='[servers.x]\nkind = "echod"\nmax_connections = 5\n')

    def test_syntax_error(self):
        self.check("[servers\n", "syntax")

    def test_main_exits_2_with_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            path = write_sweep(d, self.HEAD + '[[points]]\nworkload = "steady"\n'
                                              'connections = -5\n')
            stderr = io.StringIO()
            with redirect_stderr(stderr):
                status = run.main([str(path), "--out", str(Path(d) / "out")])
        self.assertEqual(status, 2)
        self.assertEqual(len(stderr.getvalue().strip().splitlines()), 1)
        self.assertIn("points[0].connections", stderr.getvalue())


if __name__ == "__main__":
    unittest.main()
