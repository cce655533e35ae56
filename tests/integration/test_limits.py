"""Bounds of the HTTP transport (issue 6, server/worker/conn.c): 431 for a request
head over 8 KiB or with more than 100 header fields, 414 for a target over
2 KiB, 413 for a body over 64 KiB, 503 at accept beyond
server.max_connections, and server.client_timeout for slow heads
(slowloris: 408), idle keep-alive connections and clients that do not read.
Every refusal is a JSON error and closes the connection."""

import http.client
import json
import re
import resource
import selectors
import socket
import time

import pytest

from conftest import SANITIZED, server_connections, wait_until

SLACK = 3.0 if SANITIZED else 1.0
CLIENT_TIMEOUT_S = 2.0
SWEEP_S = 1.0  # conn.c checks the timeouts once a second


@pytest.fixture(scope="module")
def env(module_procs):
    sim = module_procs.simulator()
    # min_workers 2: a quiet module gateway would otherwise retire a worker
    # after 10 s, and with it the connections of a test.
    gw = module_procs.gateway(sim, {"server": {"workers": 2, "min_workers": 2,
                                               "client_timeout": int(CLIENT_TIMEOUT_S * 1000)}})
    assert gw.status()["status"] == "WORKING"
    return sim, gw


@pytest.fixture
def gw(env):
    """The shared gateway; after each test it still serves with the same workers."""
    _, gw = env
    workers = gw.wait_children("worker", 2)
    assert workers, gw.child_pids("worker")
    yield gw
    for _ in range(4):
        code, _, body = gw.get("/api/waha/status")
        assert code == 200, body
    assert gw.child_pids("worker") == workers, "a worker died:\n" + gw.log_text()[-3000:]
    assert gw.proc.poll() is None


def until_closed(port, data, timeout=10.0, sock=None):
    """Send DATA and read until the server closes: (bytes, how, seconds)."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t = time.monotonic()
    chunks, how = [], "closed"
    try:
        if data:
            s.sendall(data)
        deadline = t + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                how = "timeout"
                break
            s.settimeout(remaining)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                how = "timeout"
                break
            except ConnectionResetError:
                how = "reset"
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    return b"".join(chunks), how, time.monotonic() - t


def parse(raw):
    """(status, headers with lower-case names, body) of one HTTP answer."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw[:300]
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.1 (\d{3}) ", lines[0])
    assert m, lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(m.group(1)), headers, body


def refused(raw, how, status, code, whole=True):
    """RAW is one JSON error STATUS/CODE, and then the server closed (a
    reset after the whole answer counts as closed: the server does not
    read what the client sent beyond what it refused). WHOLE: the body has
    exactly Content-Length bytes."""
    assert how in ("closed", "reset"), (how, raw[:300])
    got, headers, body = parse(raw)
    assert got == status, raw[:300]
    assert headers.get("content-type", "").startswith("application/json"), headers
    if whole:
        assert int(headers["content-length"]) == len(body), (headers, body)
    assert headers.get("connection", "").lower() == "close", headers
    doc = json.loads(body)
    assert set(doc) == {"error"} and doc["error"]["code"] == code, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
    return doc["error"]


def read_answer(s):
    """Read one whole answer (Content-Length) from socket S."""
    buf = b""
    while True:
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            assert m, head
            if len(body) >= int(m.group(1)):
                return buf
        chunk = s.recv(65536)
        assert chunk, f"closed after {buf[:300]!r}"
        buf += chunk


def answered(raw, how, status=200):
    assert raw, how
    got, headers, body = parse(raw)
    assert got == status, raw[:300]
    return headers, body


def request(target="/api/waha/status", fields=(), close=True):
    lines = [f"GET {target} HTTP/1.1", "Host: x", *fields]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def head_of_size(n):
    """A GET whose head (request line to the blank line) is N bytes."""
    base = request(fields=["X-Pad: "])
    pad = n - len(base)
    assert pad > 0
    data = request(fields=["X-Pad: " + "p" * pad])
    assert len(data) == n
    return data


# --------------------------------------------------------------------------- 431, 414, 413

def test_head_of_8_kib_is_served_and_over_is_431(gw):
    raw, how, _ = until_closed(gw.port, head_of_size(8192))
    answered(raw, how, 200)
    raw, how, _ = until_closed(gw.port, head_of_size(8193))
    refused(raw, how, 431, "header_too_large")
    raw, how, _ = until_closed(gw.port, request(fields=["X-Big: " + "a" * 20000]))
    refused(raw, how, 431, "header_too_large")


def test_head_over_8_kib_is_refused_before_it_ends(gw):
    # No blank line yet: the server does not wait for the rest.
    raw, how, took = until_closed(gw.port,
                                  b"GET /api/waha/status HTTP/1.1\r\nX-Big: " + b"a" * 9000,
                                  timeout=CLIENT_TIMEOUT_S * 3)
    refused(raw, how, 431, "header_too_large")
    assert took < CLIENT_TIMEOUT_S, took


def test_more_than_100_header_fields_is_431(gw):
    # Host + Connection + 98 = 100 fields: served; one more: refused.
    raw, how, _ = until_closed(gw.port, request(fields=[f"X-H{i}: v" for i in range(98)]))
    answered(raw, how, 200)
    raw, how, _ = until_closed(gw.port, request(fields=[f"X-H{i}: v" for i in range(99)]))
    refused(raw, how, 431, "header_too_large")
    raw, how, _ = until_closed(gw.port, request(fields=[f"X-H{i}: v" for i in range(300)]))
    refused(raw, how, 431, "header_too_large")


def test_target_over_2_kib_is_414(gw):
    query = "/api/waha/status?x="
    raw, how, _ = until_closed(gw.port, request(query + "a" * (2048 - len(query))))
    answered(raw, how, 200)
    raw, how, _ = until_closed(gw.port, request(query + "a" * (2049 - len(query))))
    refused(raw, how, 414, "uri_too_long")
    path = "/api/waha/"
    raw, how, _ = until_closed(gw.port, request(path + "b" * (2048 - len(path))))
    answered(raw, how, 404)
    raw, how, _ = until_closed(gw.port, request(path + "b" * (2049 - len(path))))
    refused(raw, how, 414, "uri_too_long")
    raw, how, _ = until_closed(gw.port, request(path + "b" * 7000))
    refused(raw, how, 414, "uri_too_long")


def post_head(length, extra=""):
    return (f"POST /api/waha/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


def test_body_over_64_kib_is_413(gw):
    # 64 KiB exactly is read (and refused for what it is: not JSON).
    raw, how, _ = until_closed(gw.port, post_head(65536, "Connection: close\r\n") + b"x" * 65536)
    answered(raw, how, 400)
    raw, how, _ = until_closed(gw.port, post_head(65537) + b"x" * 65537)
    refused(raw, how, 413, "payload_too_large")
    # Announced too large: refused on the head, without waiting for the body.
    raw, how, took = until_closed(gw.port, post_head(10 * 1024 * 1024),
                                  timeout=CLIENT_TIMEOUT_S * 3)
    refused(raw, how, 413, "payload_too_large")
    assert took < CLIENT_TIMEOUT_S, took
    # Chunked: refused once it has grown over the bound.
    chunk = b"8000\r\n" + b"y" * 0x8000 + b"\r\n"
    head = (b"POST /api/waha/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    raw, how, _ = until_closed(gw.port, head + chunk * 3 + b"0\r\n\r\n")
    refused(raw, how, 413, "payload_too_large")


def test_body_over_64_kib_is_413_for_a_client_that_sends_it_all(gw):
    """A client library that sends the whole body before it reads (Python's
    http.client, like many) must still get the 413: the server has to read
    and discard what follows, for a while, before it closes (RFC 9112 9.6,
    the "TCP reset problem"), not reset the connection under the client.
    8 MiB: more than the sockets' buffers can take in before the close."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        try:
            conn.request("POST", "/api/waha/webhook", body=b"x" * (8 * 1024 * 1024),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
        except OSError as exc:
            raise AssertionError(f"no 413: the client got {exc!r} while sending 8 MiB") from None
        assert resp.status == 413, resp.status
        assert json.loads(resp.read())["error"]["code"] == "payload_too_large"
    finally:
        conn.close()


# --------------------------------------------------------------------------- client_timeout

def test_idle_keep_alive_connection_is_closed_after_client_timeout(gw):
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        s.sendall(request(close=False))
        buf = read_answer(s)
        t_answer = time.monotonic()
        status, headers, _ = parse(buf)
        assert status == 200 and headers.get("connection", "").lower() != "close", headers
        # Open for a while (nothing to read), then closed by the server.
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        assert not sel.select(CLIENT_TIMEOUT_S - 0.3), "closed too early"
        assert sel.select(SWEEP_S + 0.3 + 2 * SLACK), "idle connection still open"
        took = time.monotonic() - t_answer
        sel.close()
        assert s.recv(65536) == b""
    finally:
        s.close()
    assert CLIENT_TIMEOUT_S - 0.05 <= took <= CLIENT_TIMEOUT_S + SWEEP_S + 2 * SLACK, took


def test_connection_that_sends_nothing_is_closed_after_client_timeout(gw):
    raw, how, took = until_closed(gw.port, b"", timeout=CLIENT_TIMEOUT_S + SWEEP_S + 2 * SLACK + 2)
    assert raw == b"" and how == "closed", (raw, how)
    assert CLIENT_TIMEOUT_S - 0.05 <= took <= CLIENT_TIMEOUT_S + SWEEP_S + 2 * SLACK, took


def test_client_that_does_not_read_is_closed_after_client_timeout(gw):
    """Pipelined requests for the dashboard (11 KiB each), never read: the
    answers pile up, and the server lets the connection go."""
    workers = gw.child_pids("worker")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", gw.port))
        port = s.getsockname()[1]
        def held():
            return any(port in p for p in server_connections(gw.port, workers).values())
        assert wait_until(held, 5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 600)
        t_sent = time.monotonic()
        # Held while its output is stuck for less than client_timeout ...
        assert held()
        time.sleep(CLIENT_TIMEOUT_S / 2)  # an observation window: nothing may happen yet
        assert held(), "let go before client_timeout"
        # ... and let go after.
        assert wait_until(lambda: not held(), CLIENT_TIMEOUT_S + SWEEP_S + 2 * SLACK + 1, 0.05), \
            "a client that does not read is still held"
        took = time.monotonic() - t_sent
        assert took >= CLIENT_TIMEOUT_S - 0.05, took
    finally:
        s.close()


def test_slowloris_does_not_block_normal_clients(simulator, gateway, poller):
    """50 connections send a request head one byte per 500 ms: each is
    answered 408 (or closed) client_timeout after its first byte, while
    normal clients are answered at once all along."""
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 2, "min_workers": 2,
                                  "client_timeout": int(CLIENT_TIMEOUT_S * 1000)}})
    assert gw.status()["status"] == "WORKING"
    head = b"GET /api/waha/status HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\n\r\n"
    slow = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        s.setblocking(False)
        slow.append({"sock": s, "sent": 0, "first": None, "data": b"", "end": None, "how": None})
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    sel = selectors.DefaultSelector()
    for c in slow:
        sel.register(c["sock"], selectors.EVENT_READ, c)
    t0 = time.monotonic()
    deadline = t0 + CLIENT_TIMEOUT_S + SWEEP_S + 2 * SLACK + 2
    next_byte = t0
    while time.monotonic() < deadline and any(c["end"] is None for c in slow):
        now = time.monotonic()
        if now >= next_byte:
            for c in slow:
                if c["end"] is None and c["sent"] < len(head) - 1:  # never the last byte
                    try:
                        c["sock"].send(head[c["sent"]:c["sent"] + 1])
                    except OSError:
                        continue  # closed under us: the read side tells
                    if c["first"] is None:
                        c["first"] = time.monotonic()
                    c["sent"] += 1
            next_byte += 0.5
        for key, _ in sel.select(max(0.0, min(next_byte, deadline) - time.monotonic())):
            c = key.data
            try:
                chunk = c["sock"].recv(65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                chunk, c["how"] = b"", repr(exc)
            if chunk:
                c["data"] += chunk
                continue
            c["end"] = time.monotonic()
            c["how"] = c["how"] or "closed"
            sel.unregister(c["sock"])
    sel.close()
    for c in slow:
        c["sock"].close()
    results = p.stop()

    open_still = [c for c in slow if c["end"] is None]
    assert not open_still, f"{len(open_still)} slow connections still open"
    got_408 = 0
    for c in slow:
        took = c["end"] - c["first"]
        assert CLIENT_TIMEOUT_S - 0.05 <= took <= CLIENT_TIMEOUT_S + SWEEP_S + 2 * SLACK, \
            (took, c["how"], c["data"][:200])
        if c["data"]:
            refused(c["data"], "closed", 408, "request_timeout")
            got_408 += 1
    assert got_408 >= 1, [c["how"] for c in slow]
    # Normal clients all along: answered, and fast.
    during = [r for r in results if r[0] <= max(c["end"] for c in slow)]
    assert len(during) >= 10, len(during)
    bad = [r for r in results if r[2] != 200 or r[1] - r[0] > 1 + 2 * SLACK]
    assert not bad, bad[:5]
    slow = [r for r in results if r[1] - r[0] > 0.5]
    assert len(slow) <= len(results) // 20, slow[:5]


# --------------------------------------------------------------------------- max_connections

def test_max_connections_refuses_the_extra_ones_with_503(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 1, "max_connections": 20}})
    worker = gw.child_pids("worker")[0]

    def held_count():
        return len(server_connections(gw.port, [worker])[worker])
    assert wait_until(lambda: held_count() == 0, 5), "the readiness probe is still held"
    held = [socket.create_connection(("127.0.0.1", gw.port), timeout=10) for _ in range(20)]
    try:
        assert wait_until(lambda: held_count() == 20, 5), held_count()
        for _ in range(5):
            raw, how, _ = until_closed(gw.port, b"", timeout=5)
            # (its Content-Length: test_503_at_accept_is_a_whole_answer)
            err = refused(raw, how, 503, "busy", whole=False)
            assert "connections" in err["message"], err
        # The 20 are idle and untouched.
        sel = selectors.DefaultSelector()
        for s in held:
            sel.register(s, selectors.EVENT_READ)
        assert not sel.select(0.3), "an idle connection within the limit was answered or closed"
        sel.close()
        assert held_count() == 20
        # Closing five makes room for five.
        for s in held[:5]:
            s.close()
        del held[:5]
        assert wait_until(lambda: held_count() == 15, 5), held_count()
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            held.append(s)
            s.sendall(request(close=False))
            buf = read_answer(s)
            assert parse(buf)[0] == 200, buf[:300]
        raw, how, _ = until_closed(gw.port, b"", timeout=5)
        refused(raw, how, 503, "busy", whole=False)
        # The ones held from the start still work.
        for s in held[:15]:
            raw, how, _ = until_closed(gw.port, request(), sock=s)
            answered(raw, how, 200)
        del held[:15]
    finally:
        for s in held:
            s.close()


def test_503_at_accept_is_a_whole_answer(simulator, gateway):
    """What an HTTP client library makes of the 503 sent at accept: it sends
    its request and reads the answer, which must be whole (Content-Length
    right) and must not be lost to a reset (the server closes at once,
    with the request unread)."""
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 1, "max_connections": 1}})
    worker = gw.child_pids("worker")[0]
    assert wait_until(lambda: not server_connections(gw.port, [worker])[worker], 5)
    held = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        assert wait_until(lambda: server_connections(gw.port, [worker])[worker], 5)
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        try:
            try:
                conn.request("GET", "/api/waha/status")
                resp = conn.getresponse()
            except OSError as exc:
                raise AssertionError(f"no 503: the client got {exc!r}") from None
            assert resp.status == 503, resp.status
            assert resp.getheader("Retry-After") == "1", resp.getheaders()
            try:
                body = resp.read()
            except http.client.IncompleteRead as exc:
                raise AssertionError(
                    f"Content-Length {resp.getheader('Content-Length')} but the body is "
                    f"{len(exc.partial)} bytes: {exc.partial!r}") from None
            assert json.loads(body)["error"]["code"] == "busy", body
        finally:
            conn.close()
    finally:
        held.close()


def test_open_file_limit_of_workers_covers_max_connections(simulator, gateway):
    sim = simulator()

    def low_soft_limit():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(5000, hard - 64)
    gw = gateway(sim, {"server": {"workers": 2, "max_connections": want}},
                 preexec_fn=low_soft_limit)
    for pid in gw.child_pids("worker"):
        assert soft_nofile(pid) >= want, (pid, soft_nofile(pid), want)


def test_open_file_limit_below_max_connections_is_logged(simulator, gateway):
    sim = simulator()

    def low_hard_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))
    gw = gateway(sim, {"server": {"workers": 1, "max_connections": 5000}},
                 preexec_fn=low_hard_limit)
    assert gw.status()["status"] == "WORKING"
    assert soft_nofile(gw.child_pids("worker")[0]) == 1024
    warning = re.compile(r"\[warn\] \d+ master: open files are limited to 1024 \(hard limit\); "
                         r"server\.max_connections 5000 needs 5064")
    assert wait_until(lambda: warning.search(gw.log_text()), 5), gw.log_text()


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError(f"no open-files limit for {pid}")

