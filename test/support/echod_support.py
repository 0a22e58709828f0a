"""What the Python tests of echod (test/metrics, test/systemd) share: failing with a message,
a free loopback port, a model's declared capabilities, echod started with its port read from
the `listening on` line, and a Prometheus scrape of --metrics.

Import it from a test with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
"""
import re
import socket
import subprocess
import sys
import time
import urllib.request

TIMEOUT = 20.0


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def capabilities(echod, model):
    """The model's capabilities from --describe-model, e.g. ["concurrent", "event-driven"]."""
    described = subprocess.run([echod, "--model", model, "--describe-model"],
                               capture_output=True, text=True, check=True).stdout
    for line in described.splitlines():
        if line.startswith("capabilities: "):
            return line.split(": ", 1)[1].split(",")
    fail("no capabilities line in --describe-model of " + model)


def start_echod(arguments):
    """Starts echod (stdout and stderr piped together), echoes its log up to the `listening on`
    line and returns (process, port)."""
    server = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    line = b""
    while b"listening on" not in line:
        line = server.stdout.readline()
        if not line:
            fail("echod exited before listening")
        print(line.decode().rstrip())
    return server, int(re.search(rb"listening on [^ ]*:(\d+)", line).group(1))


def scrape(port):
    """The text of http://127.0.0.1:PORT/metrics and its samples as {name{labels}: value}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=TIMEOUT) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        match = re.match(r'^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$', line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return text, values


def wait_for(port, key, wanted, keep_waiting=None):
    """Scrapes until sample `key` equals `wanted` or keep_waiting() is false (by default for
    TIMEOUT seconds); returns the last scrape."""
    if keep_waiting is None:
        deadline = time.monotonic() + TIMEOUT
        keep_waiting = lambda: time.monotonic() <= deadline  # noqa: E731
    while True:
        text, values = scrape(port)
        if values.get(key) == wanted or not keep_waiting():
            return text, values
        time.sleep(0.05)
