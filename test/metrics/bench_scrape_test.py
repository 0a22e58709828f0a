#!/usr/bin/env python3
"""--metrics against what echo-bench reports, for one model (issue 18).

Runs echod with --metrics on a free loopback port and echo-bench steady against it (CONNECTIONS
connections, or one for a model without the `concurrent` capability, 64 B ping-pong). While
echo-bench runs, scrapes until echod_connections_open equals the connections echo-bench holds
(failing if the run ends first). After echo-bench has exited and its connections have closed,
compares the counters with its --json report: accepted >= the connections it established (and
every one of them closed by the client), received bytes = its bytes sent, sent bytes = its bytes
echoed (both equal: it waits for every echo before closing), and no echo errors on either side.

usage: bench_scrape_test.py ECHOD ECHO_BENCH MODEL
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from echod_support import TIMEOUT, capabilities, fail, free_port, start_echod, wait_for  # noqa: E402

CONNECTIONS = 20
WARMUP_S = 0.5
DURATION_S = 1.5


def main():
    echod, echo_bench, model = sys.argv[1], sys.argv[2], sys.argv[3]
    connections = CONNECTIONS if "concurrent" in capabilities(echod, model) else 1
    metrics_port = free_port()
    server, port = start_echod([echod, "--model", model, "--port", "0",
                                "--metrics", "127.0.0.1:%d" % metrics_port])
    bench = None
    with tempfile.TemporaryDirectory() as work:
        report_path = os.path.join(work, "bench.json")
        try:
            bench = subprocess.Popen(
                [echo_bench, "steady", "127.0.0.1:%d" % port, "-c", str(connections), "-s", "64",
                 "--warmup", str(WARMUP_S), "-d", str(DURATION_S), "-q", "--json", report_path],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

            # During the run: every connection echo-bench holds is open in echod.
            _, during = wait_for(metrics_port, "echod_connections_open", connections,
                                 lambda: bench.poll() is None)
            still_running = bench.poll() is None
            print("during the run: open=%s accepted=%s (echo-bench holds %d, running: %s)"
                  % (during.get("echod_connections_open"),
                     during.get("echod_connections_accepted_total"), connections, still_running))
            if not still_running:
                fail("echo-bench ended before echod_connections_open reached %d (last %r)"
                     % (connections, during.get("echod_connections_open")))

            bench_output, _ = bench.communicate(timeout=WARMUP_S + DURATION_S + TIMEOUT)
            print(bench_output.decode(errors="replace"))
            if bench.returncode != 0:
                fail("echo-bench exited %d" % bench.returncode)
            with open(report_path) as f:
                report = json.load(f)
            established = report["connections"]["established"]
            sent = report["bytes"]["sent"]
            echoed = report["bytes"]["echoed"]
            print("echo-bench: status=%s established=%d bytes sent=%d echoed=%d errors=%d"
                  % (report["status"], established, sent, echoed, report["errors"]["total"]))
            if report["status"] != "ok" or report["errors"]["total"] != 0:
                fail("echo-bench reports status %s with %d errors"
                     % (report["status"], report["errors"]["total"]))
            if established != connections or sent == 0:
                fail("echo-bench established %d of %d connections, sent %d bytes"
                     % (established, connections, sent))

            # After the run: its connections have closed and their bytes have been added.
            deadline = time.monotonic() + TIMEOUT
            wait_for(metrics_port, "echod_connections_open", 0,
                     lambda: time.monotonic() < deadline)
            text, after = wait_for(metrics_port, "echod_sent_bytes_total", echoed,
                                   lambda: time.monotonic() < deadline)
            print(text)
            checks = [
                ("echod_connections_accepted_total", lambda v: v >= established,
                 ">= %d (established)" % established),
                ('echod_connections_closed_total{kind="client"}',
                 lambda v: v == after.get("echod_connections_accepted_total"),
                 "= accepted (every connection closed by echo-bench)"),
                ("echod_connections_open", lambda v: v == 0, "= 0"),
                ("echod_connection_errors_total", lambda v: v == 0, "= 0"),
                ("echod_received_bytes_total", lambda v: v == sent, "= %d (sent)" % sent),
                ("echod_sent_bytes_total", lambda v: v == echoed, "= %d (echoed)" % echoed),
            ]
            for key, holds, wanted in checks:
                value = after.get(key)
                print("%s = %r, wanted %s" % (key, value, wanted))
                if value is None or not holds(value):
                    fail("%s is %r, wanted %s" % (key, value, wanted))
            server.send_signal(signal.SIGTERM)
            output, _ = server.communicate(timeout=TIMEOUT)
            print(output.decode(errors="replace"))
            if server.returncode != 0:
                fail("echod exited %d" % server.returncode)
            print("PASS: %s metrics match echo-bench: %d connections, %d bytes each way"
                  % (model, established, sent))
        finally:
            for process in (bench, server):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()


if __name__ == "__main__":
    main()
