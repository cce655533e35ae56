#!/usr/bin/python3
"""sse_load.py - hold N Server-Sent Events subscribers on a gateway and time
how long a status change takes to reach all of them.

Usage: sse_load.py GATEWAY_URL SIMULATOR_URL N MASTER_PID [PATH]

Opens N connections to GATEWAY_URL/api/waha/events?session=default, waits
until each has its first event, makes the simulator push a status change
(by PATH, which the run has set up: "webhook" (default), the simulator
delivering webhooks to the gateway, or "WebSocket event", the gateway's
fetcher listening to the simulator's /ws), and prints the time until every
subscriber has the new status, plus the total RSS of the gateway's
processes (MASTER_PID and its children) while holding them.
Everything is bounded: 60 s to connect, 30 s for the change.
"""

import json
import os
import resource
import selectors
import socket
import sys
import time
import urllib.request


def rss_kb(master):
    pids = [master]
    try:
        for task in os.listdir(f"/proc/{master}/task"):
            with open(f"/proc/{master}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def main():
    gw, sim, n, master = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    path = sys.argv[5] if len(sys.argv) > 5 else "webhook"
    host, port = gw.split("//")[1].split(":")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
    sel = selectors.DefaultSelector()
    request = (f"GET /api/waha/events?session=default HTTP/1.1\r\nHost: {host}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    bufs = {}
    start = time.monotonic()
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""

    def pump(needle, deadline):
        waiting = {s for s in bufs if needle not in bufs[s]}
        while waiting and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                bufs[key.fileobj] += data
                if needle in bufs[key.fileobj]:
                    waiting.discard(key.fileobj)
        return len(waiting)

    missing = pump(b'"status":"WORKING"', start + 60)
    connected = time.monotonic() - start
    if missing:
        sys.exit(f"sse_load: {missing} of {n} subscribers got no first event in 60 s")
    held_rss = rss_kb(master)
    body = json.dumps({"status": "STARTING"}).encode()
    req = urllib.request.Request(sim + "/_sim/sessions/default", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    urllib.request.urlopen(req, timeout=10).read()
    missing = pump(b'"status":"STARTING"', t0 + 30)
    took = time.monotonic() - t0
    if missing:
        sys.exit(f"sse_load: {missing} of {n} subscribers missed the change")
    print(f"{n} SSE subscribers connected in {connected:.1f} s; a status change reached "
          f"all of them in {took * 1000:.0f} ms (by {path}, simulator included); "
          f"gateway RSS {held_rss // 1024} MB while holding them")
    for s in bufs:
        s.close()


if __name__ == "__main__":
    main()
