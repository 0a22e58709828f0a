"""echod's benchmark sweep: fresh servers (echod models, the C baseline, the seed articles'
Python servers and a Go server) under echo-bench and the articles' own client, one point at a
time, with CSV, markdown, PNG plots and a self-contained report.html as output.

Run from the repository root: python3 -m client.sweep conf/sweeps/quick.toml --out DIR
(see docs/benchmarks.md).
"""
