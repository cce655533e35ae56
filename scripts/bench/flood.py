#!/usr/bin/python3
"""flood.py - one client that pipelines without reading, against one worker
(issue 15): what it costs the worker and the worker's other clients.

Usage: scripts/bench/flood.py [GATEWAY_BIN]     (default build/wahagate)
  FLOOD_SECONDS=60         length of the flood
  FLOOD_CLIENT_TIMEOUT=30000   server.client_timeout (ms): the stall rule
  FLOOD_PROBERS=4          other clients of the same worker
  FLOOD_JSON=1             print the figures as one JSON line as well

Starts the WAHA simulator and the gateway (one worker, no scaling, no rate
limit) on 127.0.0.1 with the harness of the integration tests
(tests/integration/conftest.py: Debian's python3 and python3-pytest), then
for FLOOD_SECONDS:
  - a flooder sends `GET /api/waha/config HTTP/1.1` pipelined, in 1 MB
    writes, and never reads; when the gateway cuts it, it notes how long
    the connection lived and connects again;
  - FLOOD_PROBERS keep-alive clients ask for /api/waha/status one request
    after the other (5 ms apart) and time each answer;
  - a slowloris client sends half a request head once a second into the
    run and notes when its 408 comes (due after client_timeout, checked by
    a sweep once a second);
  - the worker's RSS (VmRSS) is sampled every 250 ms.
Then prints: the worker's RSS growth (largest sample minus the one before
the flood), the probers' p50/p99/max latency and their failures, how long
each flood connection lived before the gateway cut it, when the 408 came,
and the CPU time the worker used. Targets (issue 15): RSS growth under
10 MB, p99 under 50 ms, every flood connection cut by the stall rule
(about client_timeout after its answers stopped moving).

run_flood() is what tests/integration/test_hostile.py runs, for about 15 s
with a short client_timeout. Every thread here is bounded in time; the
processes are stopped by their PID (ProcessStack) also on failure.
"""

import json
import os
import select
import socket
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import conftest  # noqa: E402  (the harness: processes, /proc readers)

FLOOD_REQUEST = b"GET /api/waha/config HTTP/1.1\r\nHost: x\r\n\r\n"
FLOOD_WRITE = 1 << 20  # bytes per write (the 1 MB)
SLOW_HEAD = b"GET /api/waha/config HTTP/1.1\r\nHost: x\r\n"  # never ends


def cpu_seconds(pid):
    """User plus system CPU time of PID, in seconds (or None)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100.0))]


class Flooder(threading.Thread):
    """Pipelines FLOOD_REQUEST in FLOOD_WRITE writes, never reads; on a cut,
    notes it and connects again, until stop() or DEADLINE (monotonic)."""

    def __init__(self, port, deadline, reconnect=True):
        super().__init__(daemon=True)
        self.port = port
        self.deadline = deadline
        self.reconnect = reconnect
        self.block = FLOOD_REQUEST * (FLOOD_WRITE // len(FLOOD_REQUEST))
        self.stopping = threading.Event()
        self.connections = []  # {"lived_s", "sent", "how"} per connection
        self.lock = threading.Lock()

    def stop(self):
        self.stopping.set()

    def _going(self):
        return not self.stopping.is_set() and time.monotonic() < self.deadline

    def _one(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setblocking(False)
        start, sent, pos, how = time.monotonic(), 0, 0, "stopped"
        try:
            while self._going():
                _, writable, _ = select.select([], [s], [], 0.1)
                if not writable:
                    continue
                try:
                    n = s.send(memoryview(self.block)[pos:])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:  # reset or pipe: the gateway cut it
                    how = type(exc).__name__
                    break
                sent += n
                pos = (pos + n) % len(self.block)
        finally:
            s.close()
        with self.lock:
            self.connections.append({"lived_s": round(time.monotonic() - start, 2),
                                     "sent": sent, "how": how})
        return how != "stopped"

    def run(self):
        while self._going():
            try:
                cut = self._one()
            except OSError:
                time.sleep(0.05)
                continue
            if cut and not self.reconnect:
                return

    def cuts(self):
        with self.lock:
            return [c for c in self.connections if c["how"] != "stopped"]


class Prober(threading.Thread):
    """A keep-alive client: GET PATH, read the whole answer, 5 ms pause,
    again, until stop() or DEADLINE. Times each answer."""

    def __init__(self, port, deadline, path="/api/waha/status"):
        super().__init__(daemon=True)
        self.port = port
        self.deadline = deadline
        self.request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        self.stopping = threading.Event()
        self.latencies = []
        self.failures = 0

    def stop(self):
        self.stopping.set()

    def _answer(self, s):
        buf = b""
        while True:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) >= length:
                    return head.split(b" ", 2)[1]
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk

    def run(self):
        s = None
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                t = time.monotonic()
                s.sendall(self.request)
                status = self._answer(s)
                self.latencies.append(time.monotonic() - t)
                if status != b"200":
                    self.failures += 1
            except OSError:
                self.failures += 1
                if s is not None:
                    s.close()
                s = None
            time.sleep(0.005)
        if s is not None:
            s.close()


def slowloris_408(port, timeout):
    """Send half a request head; seconds until the 408 came, or None."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        t = time.monotonic()
        s.sendall(SLOW_HEAD)
        got = b""
        try:
            while b"\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except OSError:
            return None
        if got.startswith(b"HTTP/1.1 408"):
            return round(time.monotonic() - t, 2)
        return None


def run_flood(port, worker_pid, seconds, client_timeout_s, probers=4, reconnect=True):
    """The flood of the module's comment against PORT, whose one worker is
    WORKER_PID, for SECONDS: its figures as a dict."""
    base_rss = conftest.proc_rss_kb(worker_pid)
    cpu_before = cpu_seconds(worker_pid)
    start = time.monotonic()
    deadline = start + seconds
    flooder = Flooder(port, deadline, reconnect)
    others = [Prober(port, deadline) for _ in range(probers)]
    slow = {}
    slow_thread = threading.Thread(
        target=lambda: (time.sleep(1.0),
                        slow.update(s=slowloris_408(port, client_timeout_s + 15))),
        daemon=True)
    for t in [flooder, *others, slow_thread]:
        t.start()
    samples = []
    while time.monotonic() < deadline:
        rss = conftest.proc_rss_kb(worker_pid)  # 0 once it is gone
        if rss:
            samples.append(rss)
        time.sleep(0.25)
    for t in [flooder, *others]:
        t.stop()
    for t in [flooder, *others]:
        t.join(15)
    slow_thread.join(client_timeout_s + 20)
    latencies = [x for p in others for x in p.latencies]
    return {
        "seconds": seconds,
        "client_timeout_s": client_timeout_s,
        "rss_before_kb": base_rss,
        "rss_max_kb": max(samples) if samples else None,
        "rss_growth_kb": (max(samples) - base_rss) if samples and base_rss else None,
        "worker_alive": conftest.proc_exists(worker_pid),
        "worker_cpu_s": (round(cpu_seconds(worker_pid) - cpu_before, 2)
                         if cpu_before is not None and cpu_seconds(worker_pid) is not None
                         else None),
        "requests": len(latencies),
        "failures": sum(p.failures for p in others),
        "p50_ms": round(1000 * percentile(latencies, 50), 2) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 99), 2) if latencies else None,
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
        "flood_connections": list(flooder.connections),
        "flood_cuts": len(flooder.cuts()),
        "slowloris_408_s": slow.get("s"),
    }


def report(fig):
    lines = [
        f"flood of {fig['seconds']} s, client_timeout {fig['client_timeout_s']} s",
        f"  worker RSS: {fig['rss_before_kb']} KiB before, {fig['rss_max_kb']} KiB at most: "
        f"growth {fig['rss_growth_kb']} KiB (target < 10240)",
        f"  other clients: {fig['requests']} requests, {fig['failures']} failed, "
        f"p50 {fig['p50_ms']} ms, p99 {fig['p99_ms']} ms (target < 50), max {fig['max_ms']} ms",
        f"  flood connections cut: {fig['flood_cuts']}; lived (s): "
        + ", ".join(f"{c['lived_s']} ({c['how']}, {c['sent'] >> 20} MiB sent)"
                    for c in fig["flood_connections"]),
        f"  slowloris 408 after {fig['slowloris_408_s']} s (due after "
        f"{fig['client_timeout_s']} s, swept once a second)",
        f"  worker CPU time: {fig['worker_cpu_s']} s; worker alive: {fig['worker_alive']}",
    ]
    return "\n".join(lines)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build", "wahagate")
    seconds = float(os.environ.get("FLOOD_SECONDS", "60"))
    client_timeout = int(os.environ.get("FLOOD_CLIENT_TIMEOUT", "30000"))
    probers = int(os.environ.get("FLOOD_PROBERS", "4"))
    with tempfile.TemporaryDirectory(prefix="wahagate-flood-") as workdir:
        stack = conftest.ProcessStack(workdir)
        try:
            sim = stack.simulator()
            gw = stack.gateway(sim, {
                "server": {"workers": 1, "min_workers": 1, "max_workers": 1,
                           "client_timeout": client_timeout},
                "backend": {"status_cache_duration": 60000, "session_cache_duration": 60000},
                "log": {"level": "warn"},
            }, binary=os.path.abspath(binary))
            worker = gw.wait_children("worker", 1)
            assert worker, "no worker"
            for _ in range(50):  # warm: the status is cached
                gw.get("/api/waha/status")
            fig = run_flood(gw.port, worker[0], seconds, client_timeout / 1000.0, probers)
        finally:
            stack.close()
    print(report(fig))
    if os.environ.get("FLOOD_JSON"):
        print(json.dumps(fig))


if __name__ == "__main__":
    main()
