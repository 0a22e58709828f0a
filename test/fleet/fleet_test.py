#!/usr/bin/env python3
"""The fleet's short form (issue 18): two echod hosts behind HAProxy, two client hosts, 2,000
connections, then the same clients straight to the servers.

Runs `python3 -m client.fleet` (client/fleet/fleet.py) from the repository root and checks its
summary.json: in each scenario zero errors, every connection established and still open at the
end, traffic on both servers (HAProxy sessions and connections in both server namespaces); the
drain of server host 1 behind HAProxy: its listener closed at the SIGTERM, HAProxy marked it DOWN
while it still held connections, a probe's new connections all went to srv2, its held
connections kept being served (and ended with the clients, not before), and echod exited 0 after
"drain complete". Also that the haproxy.cfg shown in docs/deployment.md is the one that ran, and
that nothing the run made is left (namespaces, processes).

usage: fleet_test.py SOURCE_DIR BIN_DIR WORK_DIR
Exit 77 (skip) when namespaces cannot be made here or haproxy is missing (the fleet says why).
"""
import json
import os
import re
import subprocess
import sys

CONNECTIONS = 2000
PROBE = 200
failures = []


def check(condition, message):
    print(("ok:   " if condition else "FAIL: ") + message)
    if not condition:
        failures.append(message)


def docs_haproxy_config(source_dir):
    with open(os.path.join(source_dir, "docs", "deployment.md")) as f:
        text = f.read()
    found = re.search(r"```haproxy\n(.*?)```", text, re.S)
    return found.group(1) if found else None


def main():
    source_dir, bin_dir, work = (os.path.abspath(a) for a in sys.argv[1:4])
    out = os.path.join(work, "fleet-short")
    prefix = f"eft{os.getpid()}"
    command = [sys.executable, "-m", "client.fleet", "--bin-dir", bin_dir, "--out", out,
               "--prefix", prefix, "--servers", "2", "--workers", "2", "--haproxy-procs", "2",
               "--clients", "2", "--connections", str(CONNECTIONS), "--interval", "1s",
               "--warmup", "2s", "--duration", "6s", "--drain", "--drain-after", "1",
               "--probe-connections", str(PROBE)]
    print("+ " + " ".join(command), flush=True)
    result = subprocess.run(command, cwd=source_dir)
    if result.returncode == 77:
        return 77
    check(result.returncode == 0, f"the fleet exited 0 (got {result.returncode})")
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                      text=True).stdout.split() if n.startswith(prefix)]
    check(not left, f"no namespace of the run is left ({left})")

    for scenario in ("haproxy", "direct"):
        path = os.path.join(out, scenario, "summary.json")
        if not os.path.exists(path):
            check(False, f"{scenario}: summary.json written")
            continue
        with open(path) as f:
            s = json.load(f)
        merged = s["merged"]
        check(merged["status"] == "ok" and merged["errors"] == 0 and merged["lost"] == 0,
              f"{scenario}: merged status ok, zero errors, none lost ({merged})")
        check(merged["established"] == CONNECTIONS and merged["open_at_end"] == CONNECTIONS,
              f"{scenario}: all {CONNECTIONS} connections established and open at the end")
        check(s["held_at_once"] >= CONNECTIONS,
              f"{scenario}: {s['held_at_once']} held at once end to end (clients' and servers' "
              f"namespaces)")
        check(all(c["exit_status"] == 0 for c in s["client_processes"]),
              f"{scenario}: every echo-bench exited 0")
        for server in s["servers"]:
            # In the haproxy scenario srv1 is drained: it still served its share before.
            check(server["peak_established"] >= CONNECTIONS // 4,
                  f"{scenario}: {server['host']} held {server['peak_established']} connections")
            check((server["summary"].get("accepted") or 0) >= CONNECTIONS // 4,
                  f"{scenario}: {server['host']} accepted {server['summary'].get('accepted')}")
            check(server["exit_status"] == 0, f"{scenario}: {server['host']} exited 0")
        if scenario == "haproxy":
            for server in s["servers"]:
                check((server["haproxy_sessions"] or 0) >= CONNECTIONS // 4,
                      f"haproxy: {server['host']} got {server['haproxy_sessions']} sessions")
            ran = open(os.path.join(out, scenario, "haproxy.cfg")).read()
            check(docs_haproxy_config(source_dir) == ran,
                  "docs/deployment.md shows the haproxy.cfg that ran")
            d = s["drain"]
            print(json.dumps(d, indent=2))
            check(d is not None, "the drain ran")
            if d is None:
                continue
            check(d["listener_closed_after_s"] is not None and d["listener_closed_after_s"] < 1,
                  f"srv1's listener closed at the SIGTERM ({d['listener_closed_after_s']} s)")
            check(d["marked_down_after_s"] is not None,
                  f"HAProxy marked srv1 DOWN ({d['marked_down_after_s']} s after SIGTERM)")
            check((d["established_when_marked_down"] or 0) >= CONNECTIONS // 4,
                  f"srv1 still held {d['established_when_marked_down']} connections when it left "
                  f"the pool")
            probe = d["probe"]
            check(probe["status"] == "ok" and probe["established"] == PROBE and
                  probe["errors"] == 0, f"the probe's {PROBE} new connections were echoed "
                  f"({probe['status']}, {probe['established']} established)")
            check(probe["new_sessions"].get("srv1") == 0 and
                  probe["new_sessions"].get("srv2", 0) >= PROBE,
                  f"new connections went to srv2 only ({probe['new_sessions']})")
            check(d["established_at_window_end"] == d["established_when_marked_down"] and
                  d["bytes_received_after_marked_down"] > 0,
                  f"srv1 kept serving its connections out of the pool (all "
                  f"{d['established_at_window_end']} still open at the clients' window end, "
                  f"{d['bytes_received_after_marked_down']} bytes to echo after DOWN)")
            check(d["exit_status"] == 0 and d["drain_complete_logged"],
                  f"srv1 exited 0 after 'drain complete' ({d['exit_status']})")
            check(not d["drain_timeout_logged"],
                  "the clients ended srv1's connections, not the drain timeout "
                  f"(it exited {d['exited_after_s']} s after SIGTERM)")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
