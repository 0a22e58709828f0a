"""A fleet of echod hosts simulated on one machine with network namespaces (issue 18).

`python3 -m client.fleet --help` (from the repository root, as root). See fleet.py.
"""
