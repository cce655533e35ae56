#!/usr/bin/python3
"""hold_conns.py - open N keep-alive connections to a server, one request on
each, and report the memory of the server's processes while they stay open.

Usage: hold_conns.py HOST:PORT PATH N MASTER_PID

Connections are opened in batches of 250, and each batch's answers are read
before the next batch is opened, so the server's accept queue never
overflows (a dropped SYN would cost a 1 s retransmit). Each connection sends
`GET PATH HTTP/1.1` and reads the whole answer (Content-Length), then stays
open and idle. Once all are open the client waits 1 s, sums VmRSS and Pss of
MASTER_PID and its descendants (proctree.py), checks that the server has not
closed any of them, closes them all and prints one JSON line:

  {"held": N_OK, "failed": ..., "closed_by_server": ..., "rss_kb": ..., "pss_kb": ..., "open_s": ...}

held: connections answered 200; failed: N - held (not opened in time,
refused, or another answer).

The open-file limit is raised to fit. Bounded: 60 s for the whole run; what
is not done by then counts as failed.
"""

import json
import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proctree  # noqa: E402

BATCH = 250
DEADLINE_S = 60.0


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 100
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def answer_complete(buf):
    """True once buf holds a whole answer (head and Content-Length bytes)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return len(buf) >= end + 4 + length


def drain(sel, pending, deadline):
    """Read answers until every connection in pending has one; returns the 200s."""
    ok = 0
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                pending[s] += data
                if not answer_complete(pending[s]):
                    continue
                ok += pending[s].startswith(b"HTTP/1.1 200")
            sel.unregister(s)
            del pending[s]
    for s in list(pending):  # out of time
        sel.unregister(s)
        del pending[s]
    return ok


def closed_by_peer(s):
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False  # open and idle
    except OSError:
        return True


def main():
    target, path, n, master = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    host, port = target.rsplit(":", 1)
    raise_nofile(n)
    request = f"GET {path} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    deadline = start + DEADLINE_S
    socks, ok, refused = [], 0, 0
    while len(socks) + refused < n and time.monotonic() < deadline:
        pending = {}
        for _ in range(min(BATCH, n - len(socks) - refused)):
            try:
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(request)
            except OSError:
                refused += 1
                continue
            s.setblocking(False)
            socks.append(s)
            pending[s] = b""
            sel.register(s, selectors.EVENT_READ)
        ok += drain(sel, pending, deadline)
    open_s = time.monotonic() - start
    time.sleep(1.0)
    rss, pss = proctree.rss_kb(master), proctree.pss_kb(master)
    closed = sum(closed_by_peer(s) for s in socks)
    for s in socks:
        s.close()
    print(json.dumps({"held": ok, "failed": n - ok, "closed_by_server": closed, "rss_kb": rss, "pss_kb": pss,
                      "open_s": round(open_s, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
