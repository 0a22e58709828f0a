#!/usr/bin/env python3
"""--metrics against what a client did, for one model (issue 18).

Runs echod with --metrics on a free loopback port, opens CONNECTIONS clients that each echo
BYTES bytes, scrapes while they are open (echod_connections_open must equal the clients held),
closes them, and scrapes again: accepted, closed{kind="client"} and the byte counters must match
what the clients sent and received exactly; the model label must name the model. Then RESETS
clients each send BYTES, let the echo arrive unread and close with SO_LINGER 0 (a reset):
echod_connection_errors_total must count each of them, closed{kind="client"} none of them.

usage: scrape_test.py ECHOD MODEL
"""
import fcntl
import os
import signal
import socket
import struct
import sys
import termios
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from echod_support import TIMEOUT, capabilities, fail, free_port, start_echod, wait_for  # noqa: E402

CONNECTIONS = 20
RESETS = 5
BYTES = 10000


def reset_after_echo(port, payload):
    """Sends payload, waits until the echo has arrived (unread), then closes with a reset."""
    client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    client.sendall(payload)
    deadline = time.monotonic() + TIMEOUT
    while True:
        unread = struct.unpack("i", fcntl.ioctl(client, termios.FIONREAD, b"\0" * 4))[0]
        if unread >= len(payload):
            break
        if time.monotonic() > deadline:
            fail("the echo of a client about to reset did not arrive (%d bytes)" % unread)
        time.sleep(0.01)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST: unread data and linger 0


def main():
    echod, model = sys.argv[1], sys.argv[2]
    # A one-client-at-a-time model serves the next client only after the last one closed.
    held = CONNECTIONS if "concurrent" in capabilities(echod, model) else 1
    metrics_port = free_port()
    server, port = start_echod([echod, "--model", model, "--port", "0",
                                "--metrics", "127.0.0.1:%d" % metrics_port])
    try:
        clients = []
        payload = os.urandom(BYTES)
        for index in range(CONNECTIONS):
            if len(clients) == held:
                clients.pop(0).close()
            client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            client.sendall(payload)
            echoed = bytearray()
            while len(echoed) < BYTES:
                chunk = client.recv(65536)
                if not chunk:
                    fail("server closed early")
                echoed += chunk
            if bytes(echoed) != payload:
                fail("echo differs")
            clients.append(client)
        _, during = wait_for(metrics_port, "echod_connections_open", held)
        print("while open: accepted=%s open=%s" % (during.get("echod_connections_accepted_total"),
                                                    during.get("echod_connections_open")))
        if during.get("echod_connections_open") != held:
            fail("echod_connections_open %r, %d clients connected"
                 % (during.get("echod_connections_open"), held))
        for client in clients:
            client.close()
        # Bytes are added when a connection closes, not always before its place is released.
        wait_for(metrics_port, "echod_connections_open", 0)
        text, after = wait_for(metrics_port, "echod_sent_bytes_total", CONNECTIONS * BYTES)
        print(text)
        expected = {
            "echod_connections_accepted_total": CONNECTIONS,
            "echod_connections_open": 0,
            'echod_connections_closed_total{kind="client"}': CONNECTIONS,
            "echod_received_bytes_total": CONNECTIONS * BYTES,
            "echod_sent_bytes_total": CONNECTIONS * BYTES,
        }
        for key, wanted in expected.items():
            print("%s = %r (client did %d)" % (key, after.get(key), wanted))
            if after.get(key) != wanted:
                fail("%s is %r, expected %d" % (key, after.get(key), wanted))
        if ('echod_info{model="%s"' % model) not in text:
            fail("no echod_info with model=%s" % model)
        if after.get("process_resident_memory_bytes", 0) <= 0:
            fail("no process_resident_memory_bytes")
        if after.get("echod_connection_errors_total") != 0:
            fail("echod_connection_errors_total %r after clean closes"
                 % after.get("echod_connection_errors_total"))

        # Resets: the server's next recv (or send) fails with ECONNRESET.
        for _ in range(RESETS):
            reset_after_echo(port, payload)
        text, reset = wait_for(metrics_port, "echod_connection_errors_total", RESETS)
        wait_for(metrics_port, "echod_connections_open", 0)
        text, reset = wait_for(metrics_port, "echod_sent_bytes_total",
                               (CONNECTIONS + RESETS) * BYTES)
        print(text)
        expected = {
            "echod_connection_errors_total": RESETS,
            "echod_connections_accepted_total": CONNECTIONS + RESETS,
            "echod_connections_open": 0,
            'echod_connections_closed_total{kind="client"}': CONNECTIONS,
            # Each reset client's bytes were echoed (and arrived) before it reset.
            "echod_received_bytes_total": (CONNECTIONS + RESETS) * BYTES,
            "echod_sent_bytes_total": (CONNECTIONS + RESETS) * BYTES,
        }
        for key, wanted in expected.items():
            print("%s = %r after %d resets (expected %d)" % (key, reset.get(key), RESETS, wanted))
            if reset.get(key) != wanted:
                fail("%s is %r after %d resets, expected %d"
                     % (key, reset.get(key), RESETS, wanted))
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=TIMEOUT)
        print(output.decode(errors="replace"))
        if server.returncode != 0:
            fail("echod exited %d" % server.returncode)
        if " errors=%d " % RESETS not in output.decode(errors="replace"):
            fail("the stop summary does not say errors=%d" % RESETS)
        print("PASS: %s metrics match %d connections, %d bytes each way, %d resets"
              % (model, CONNECTIONS, CONNECTIONS * BYTES, RESETS))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
