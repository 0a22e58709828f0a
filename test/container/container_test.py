#!/usr/bin/env python3
"""echod's container image (issue 18), built and run with podman.

No registry is reachable here, so the base image is made locally: `debootstrap --variant=minbase
bookworm` from the Debian mirror apt uses, then `podman import`. The image is built on it from
conf/container/Containerfile (its build stage runs the project's own install-deps.sh), and then:
- the image runs echod as a non-root user, with a HEALTHCHECK, listening on 0.0.0.0:7777;
- the health check turns healthy, and it is an echo: the same image told to listen on another
  port (nothing on 7777) is reported unhealthy;
- 20 connections through the published port get back every byte of 256 KiB each, in order;
- `podman stop` while a client holds a connection: the client is still served after the SIGTERM
  (the drain), echod closes it once the drain ends, and exits 0 well within the runtime's 10 s
  stop timeout, so it is never SIGKILLed;
- nothing the test started is left running.

podman needs the runc runtime here (crun refuses the hybrid cgroup layout) and explicit ulimits
(root lacks CAP_SYS_RESOURCE to raise them): both are in the containers.conf this test writes.
The images (localhost/echod-test-base:bookworm, localhost/echod:test) are kept, so a rerun reuses
the base and podman's layer cache.

usage: container_test.py SOURCE_DIR WORK_DIR
Exit 77 (skip) when podman, runc or debootstrap is missing, or podman cannot run here.
"""
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from echod_support import fail, free_port  # noqa: E402

BASE_IMAGE = "localhost/echod-test-base:bookworm"
IMAGE = "localhost/echod:test"
STOP_TIMEOUT = 10  # podman's and docker's default
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""

source_dir, work_dir = sys.argv[1], sys.argv[2]
started = []  # container names to remove, whatever happens


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


def podman(*arguments, check=True, timeout=120, quiet=False):
    command = ["podman", *arguments]
    if not quiet:
        print("$ " + " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        fail(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def debian_mirror():
    """The first Debian mirror in apt's sources (deb822 or one-line format)."""
    candidates = ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]
    for path in candidates:
        try:
            text = open(path).read()
        except OSError:
            continue
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or \
            re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+bookworm", text, re.M)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def host_package_cache():
    """apt's package cache on this machine, which install-deps.sh has just filled with most of
    the packages the base and the build stage install: lent to debootstrap and to the build so
    they download only what differs. None where it cannot be written (not root)."""
    cache = "/var/cache/apt/archives"
    return cache if os.path.isdir(cache) and os.access(cache, os.W_OK) else None


def make_base_image(cache):
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        print(f"base image {BASE_IMAGE} already made; reusing it")
        return
    rootfs = os.path.join(work_dir, "rootfs")
    shutil.rmtree(rootfs, ignore_errors=True)
    mirror = debian_mirror()
    command = ["debootstrap", "--variant=minbase", *([f"--cache-dir={cache}"] if cache else []),
               "bookworm", rootfs, mirror]
    print("$ " + " ".join(command), flush=True)
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        fail(f"debootstrap exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout,
                              capture_output=True, text=True, timeout=300)
    tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        fail(f"podman import failed: {imported.stderr[-2000:]}")
    shutil.rmtree(rootfs, ignore_errors=True)
    print(f"ok:   base image made in {time.monotonic() - began:.0f} s")


def run_container(name, port, *command):
    started.append(name)
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:7777", IMAGE, *command)


def health(name):
    return podman("healthcheck", "run", name, check=False, quiet=True).returncode


def echoes(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        received = bytearray()
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return bytes(received) == payload


def wait_until_healthy(name, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if health(name) == 0:
            return
        time.sleep(0.5)
    logs = podman("logs", name, check=False).stdout
    fail(f"{name} not healthy after {seconds} s; its log:\n{logs}")


def check_image():
    user = podman("image", "inspect", IMAGE, "--format", "{{.Config.User}}").stdout.strip()
    if user in ("", "root", "0"):
        fail(f"the image runs as '{user or 'root'}', not as a non-root user")
    test = podman("image", "inspect", IMAGE, "--format", "{{.HealthCheck.Test}}").stdout
    if "/dev/tcp" not in test:
        fail(f"the image has no echo HEALTHCHECK: {test!r}")
    print(f"ok:   the image runs as user {user} and has an echo HEALTHCHECK")


def check_serving(name, port):
    wait_until_healthy(name)
    uid = podman("exec", name, "id", "-u").stdout.strip()
    if uid == "0":
        fail("echod runs as root inside the container")
    print(f"ok:   {name} healthy, echod runs as uid {uid}")
    payloads = [random.Random(seed).randbytes(256 * 1024) for seed in range(20)]
    results = [False] * len(payloads)

    def one(index):
        results[index] = echoes(port, payloads[index])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if not all(results):
        fail(f"{results.count(False)} of {len(results)} connections did not get their bytes back")
    print(f"ok:   {len(payloads)} connections x 256 KiB echoed through 127.0.0.1:{port}")


def check_stop_drains(name, port):
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(b"before the stop\n")
    if held.recv(64) != b"before the stop\n":
        fail("the held connection was not echoed before the stop")
    stopping = {}

    def stop():
        began = time.monotonic()
        stopping["result"] = podman("stop", "-t", str(STOP_TIMEOUT), name, check=False,
                                    timeout=STOP_TIMEOUT + 30)
        stopping["seconds"] = time.monotonic() - began

    stopper = threading.Thread(target=stop)
    stopper.start()
    time.sleep(1.5)  # SIGTERM delivered; echod is draining
    held.sendall(b"during the drain\n")
    reply = held.recv(64)
    if reply != b"during the drain\n":
        fail(f"the held connection was not served during the drain (got {reply!r})")
    print("ok:   a held connection is still echoed after SIGTERM (drain)")
    held.settimeout(STOP_TIMEOUT + 5)
    closed_by_server = held.recv(64) == b""
    held.close()
    stopper.join(STOP_TIMEOUT + 35)
    if "result" not in stopping or stopping["result"].returncode != 0:
        fail(f"podman stop failed: {stopping.get('result')}")
    state = podman("inspect", name, "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}").stdout
    exit_code = state.split()[0]
    logs = podman("logs", name, check=False)
    log = logs.stdout + logs.stderr
    if not closed_by_server:
        fail("echod did not close the held connection at the end of the drain")
    if exit_code != "0":
        fail(f"echod exited {exit_code} on podman stop (137 is SIGKILL: the drain outlasted "
             f"the {STOP_TIMEOUT} s stop timeout); its log:\n{log}")
    if stopping["seconds"] >= STOP_TIMEOUT - 0.5:
        fail(f"podman stop took {stopping['seconds']:.1f} s, at the stop timeout")
    if "drain" not in log:
        fail(f"echod's log does not mention the drain:\n{log}")
    print(f"ok:   podman stop drained the held client and echod exited 0 after "
          f"{stopping['seconds']:.1f} s (stop timeout {STOP_TIMEOUT} s)")


def main():
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed (./install-deps.sh installs it)")
    os.makedirs(work_dir, exist_ok=True)
    conf = os.path.join(work_dir, "containers.conf")
    with open(conf, "w") as file:
        file.write(CONTAINERS_CONF)
    os.environ["CONTAINERS_CONF"] = conf
    probe = podman("info", check=False, quiet=True)
    if probe.returncode != 0:
        skip(f"podman cannot run here: {probe.stderr.strip()[-500:]}")

    cache = host_package_cache()
    make_base_image(cache)
    began = time.monotonic()
    # At the lowest priority: the suite's other tests, some with time limits, run beside it. The
    # volume exists only while a RUN step runs: nothing of it lands in the image.
    build = subprocess.run(
        ["nice", "-n", "19", "podman", "build", "--format", "docker",
         "--build-arg", f"BASE={BASE_IMAGE}", *(["--volume", f"{cache}:{cache}"] if cache else []),
         "-f", os.path.join(source_dir, "conf", "container", "Containerfile"), "-t", IMAGE,
         source_dir], capture_output=True, text=True, timeout=1800)
    if build.returncode != 0:
        fail(f"podman build exited {build.returncode}:\n{build.stdout[-4000:]}"
             f"{build.stderr[-4000:]}")
    print(f"ok:   image built in {time.monotonic() - began:.0f} s")
    check_image()

    tag = f"echod-test-{os.getpid()}"
    port = free_port()
    run_container(tag, port)
    check_serving(tag, port)
    check_stop_drains(tag, port)

    # The health check is an echo on 7777: with echod listening elsewhere it must fail.
    elsewhere = f"{tag}-elsewhere"
    run_container(elsewhere, free_port(), "--config", "/etc/echod/echod.conf", "--bind", "0.0.0.0",
                  "--port", "7778")
    time.sleep(1)
    if podman("inspect", elsewhere, "--format", "{{.State.Running}}").stdout.strip() != "true":
        fail(f"{elsewhere} is not running: {podman('logs', elsewhere, check=False).stderr}")
    if health(elsewhere) == 0:
        fail("the health check passed with nothing listening on 7777: it is not an echo")
    print("ok:   the health check fails when echod does not serve 7777")


try:
    main()
finally:
    for name in started:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
    left = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True,
                          text=True).stdout.split()
    stray = [name for name in started if name in left]
    if stray:
        print("FAIL: containers left behind: " + " ".join(stray))
        sys.exit(1)
print("container: all checks passed")
