#!/usr/bin/env python3
"""echod under systemd's socket activation, for one model (issue 18).

Starts echod through systemd-socket-activate (the listening socket is bound by the activator and
passed as LISTEN_FDS), with NOTIFY_SOCKET pointing at a datagram socket this test owns, and
checks: READY=1 arrives once the inherited listener is served, an echo works through it (with a
--port that must be ignored), STATUS= reports the open connections, STOPPING=1 arrives at
SIGTERM, and echod exits 0.

usage: socket_activation_test.py ECHOD MODEL
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from echod_support import TIMEOUT, capabilities, fail, free_port  # noqa: E402



def receive_until(notify, wanted, deadline, seen):
    """Reads notifications until one holds the line `wanted`; returns them all."""
    while time.monotonic() < deadline:
        notify.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            message = notify.recv(4096).decode()
        except socket.timeout:
            break
        print("notify: " + message.replace("\n", " | "))
        seen.append(message)
        if wanted in message.split("\n"):
            return True
    return False


def refuses_passed_socket(activator, echod, model, port):
    """A model that needs one SO_REUSEPORT listener per worker must refuse, clearly."""
    server = subprocess.Popen([activator, "-l", "127.0.0.1:%d" % port, echod, "--model", model],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    fail("systemd-socket-activate never listened on port %d" % port)
                time.sleep(0.02)
        output, _ = server.communicate(timeout=TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    text = output.decode(errors="replace")
    print(text)
    if server.returncode == 0 or "cannot serve the single socket systemd passed" not in text:
        fail("%s (reuseport) should refuse a passed socket with a reason; exit %d"
             % (model, server.returncode))
    print("PASS: %s refused the passed socket, exit %d" % (model, server.returncode))


def main():
    echod, model = sys.argv[1], sys.argv[2]
    activator = "/usr/bin/systemd-socket-activate"
    if not os.access(activator, os.X_OK):
        fail(activator + " is missing (Debian package systemd, see install-deps.sh)")
    port = free_port()
    if "reuseport" in capabilities(echod, model):
        refuses_passed_socket(activator, echod, model, port)
        return
    with tempfile.TemporaryDirectory() as scratch:
        notify_path = os.path.join(scratch, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        command = [activator, "-l", "127.0.0.1:%d" % port, "-E", "NOTIFY_SOCKET=" + notify_path,
                   echod, "--model", model, "--port", "1", "--drain-timeout", "2"]
        print("running: " + " ".join(command))
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seen = []
        try:
            # systemd-socket-activate binds, then execs echod at the first connection: the
            # client connects (queued in the passed socket's backlog) before READY=1 is awaited.
            # The activator binds a moment after it starts: retry the connect until then.
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                    break
                except ConnectionRefusedError:
                    if time.monotonic() > deadline:
                        fail("systemd-socket-activate never listened on port %d" % port)
                    time.sleep(0.02)
            if not receive_until(notify, "READY=1", time.monotonic() + TIMEOUT, seen):
                fail("no READY=1 within %.0f s; got %r" % (TIMEOUT, seen))
            payload = os.urandom(64 * 1024)
            with client:
                client.sendall(payload)
                echoed = bytearray()
                while len(echoed) < len(payload):
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    echoed += chunk
                print("echoed %d of %d bytes through the passed socket on port %d"
                      % (len(echoed), len(payload), port))
                if bytes(echoed) != payload:
                    fail("echo through the inherited listener differs")
                # STATUS= is updated every 2 s while the count changes: wait for "1 open".
                if not receive_until(notify, "STATUS=1 open connections",
                                     time.monotonic() + 6, seen):
                    fail("no STATUS=1 open connections while a client was connected; got %r"
                         % seen)
            server.send_signal(signal.SIGTERM)
            if not receive_until(notify, "STOPPING=1", time.monotonic() + TIMEOUT, seen):
                fail("no STOPPING=1 after SIGTERM; got %r" % seen)
            output, _ = server.communicate(timeout=TIMEOUT)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        text = output.decode(errors="replace")
        print(text)
        if server.returncode != 0:
            fail("echod exited %d" % server.returncode)
        if "--bind/--port" not in text or "not used" not in text:
            fail("no log line saying --port was not used with a passed socket")
        if "listening on 127.0.0.1:%d" % port not in text:
            fail("echod did not report the passed socket's address")
        ready = [i for i, m in enumerate(seen) if "READY=1" in m.split("\n")]
        stopping = [i for i, m in enumerate(seen) if "STOPPING=1" in m.split("\n")]
        if not (ready and stopping and ready[0] < stopping[0]):
            fail("READY=1 must come before STOPPING=1: %r" % seen)
        print("PASS: %s served the passed socket; %d notifications, READY=1 then STOPPING=1"
              % (model, len(seen)))


if __name__ == "__main__":
    main()
