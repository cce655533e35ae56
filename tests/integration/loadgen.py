"""Load generator of the integration tests (not a test module): run as

    python3 loadgen.py PORT THREADS MAX_SECONDS PATH[,PATH...]

THREADS threads each make requests in a loop, every one on a fresh
connection (Connection: close), cycling through the PATHs, until stdin is
closed or MAX_SECONDS pass. A request counts as answered when the whole
answer (head and Content-Length bytes of body) arrived. At the end one JSON
line goes to stdout:
  {"requests": N, "statuses": {"200": N, ...}, "errors": [first errors],
   "errorCount": N, "seconds": S}

A separate process, not threads of the test: one Python process cannot make
enough connections per second to keep even one worker busy (the GIL).
Standard library only.
"""

import json
import re
import socket
import sys
import threading
import time

CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def one(port, request, timeout=15.0):
    """Status of one request on a fresh connection; raises on a bad answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    head, sep, body = buf.partition(b"\r\n\r\n")
    m = re.match(rb"^HTTP/1\.1 (\d{3}) ", head)
    if not sep or not m:
        raise ValueError(f"no complete answer: {buf[:80]!r}")
    length = CONTENT_LENGTH.search(head)
    if length is None or len(body) != int(length.group(1)):
        raise ValueError(f"truncated body: {head[:200]!r} {len(body)} bytes")
    return int(m.group(1))


def main():
    port, threads, max_seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    paths = sys.argv[4].split(",")
    requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
                for p in paths]
    stop = threading.Event()
    lock = threading.Lock()
    statuses, errors, count = {}, [], [0, 0]  # requests, errors
    started = time.monotonic()

    def run(k):
        i = k
        while not stop.is_set() and time.monotonic() - started < max_seconds:
            i += 1
            try:
                code = one(port, requests[i % len(requests)])
            except (OSError, ValueError) as exc:
                with lock:
                    count[1] += 1
                    if len(errors) < 20:
                        errors.append(f"{time.monotonic() - started:.3f}s {exc!r}")
                continue
            with lock:
                count[0] += 1
                statuses[str(code)] = statuses.get(str(code), 0) + 1

    def watch_stdin():
        sys.stdin.read()  # EOF: the test wants us to stop
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print(json.dumps({"requests": count[0], "statuses": statuses, "errors": errors,
                      "errorCount": count[1], "seconds": time.monotonic() - started}),
          flush=True)


if __name__ == "__main__":
    main()
