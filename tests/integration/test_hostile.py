"""Hostile clients (issue 15): what one client can do to a worker and to the
other clients, and the tricks of a request head.

- a client that pipelines without reading: the worker's memory stays
  bounded, its other clients are answered at once, its timers (a 408, the
  stall cut) run on time, and the flood connection is cut
  (scripts/bench/flood.py, for about 15 s here); a client that pipelines
  and reads keeps its worker busy, and the master's load sample sees it;
- a client that half-closes gets every answer to what it sent before its
  FIN, a parked one included;
- request smuggling and protocol faults (RFC 9112): whitespace before a
  colon, obs-fold, Transfer-Encoding other than one final chunked, Host
  missing or twice, absolute-form and `OPTIONS *`, trailing whitespace,
  the Bearer scheme in any case, a chunk size over the body limit;
- the access log: client keys redacted, no forged lines;
- CORS with `*` and with listed origins, Vary: Origin; event ids scoped to
  what a stream's key may see;
- what open figures show under auth.required (no stats_token, no
  admin_listen): a warning, no session a reader's key does not allow in
  /metrics, none of WAHA's error text in /api/waha/health without a key;
- a replayed webhook: a captured envelope sent again after more than the
  remembered ids is older than what the cache holds and is not applied;
  ids of any length and type are deduplicated.

Raw sockets throughout: http.client would fix up what these tests send.
"""

import hashlib
import hmac
import json
import re
import select
import socket
import sys
import threading
import time

import pytest

from conftest import REPO, SANITIZED, Stream, run_gateway_cli, wait_until

sys.path.insert(0, str(REPO / "scripts" / "bench"))
import flood  # noqa: E402  (scripts/bench/flood.py: the measuring harness)

SLACK = 3.0 if SANITIZED else 1.0
CLIENT_TIMEOUT_S = 2.0
SWEEP_S = 1.0  # conn.c checks the timeouts once a second


@pytest.fixture(scope="module")
def env(module_procs):
    sim = module_procs.simulator("--sessions", "default:WORKING,shop:WORKING")
    gw = module_procs.gateway(sim, {
        "server": {"workers": 2, "min_workers": 2,
                   "client_timeout": int(CLIENT_TIMEOUT_S * 1000)},
        "upstream": {"sessions": "default,shop"},
    })
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


# --------------------------------------------------------------------------- raw HTTP

def exchange(port, data, timeout=10.0, half_close=False, pause_after=None):
    """Send DATA (with PAUSE_AFTER: the first PAUSE_AFTER bytes, a moment,
    then the rest), optionally shutdown(SHUT_WR), and read until the server
    closes or TIMEOUT: (bytes, how) with how in closed, reset, timeout."""
    chunks, how = [], "closed"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if pause_after is None:
            s.sendall(data)
        else:
            s.sendall(data[:pause_after])
            time.sleep(0.2)
            s.sendall(data[pause_after:])
        if half_close:
            s.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
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
    return b"".join(chunks), how


def answers(raw):
    """The answers in RAW, in order: [(status, {lower-case name: value}, body)].
    Bodies by Content-Length; 1xx answers are skipped."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw[:300]
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"^HTTP/1\.1 (\d{3}) ", lines[0])
        assert m, lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        assert len(rest) >= length, (headers, rest[:200])
        raw = rest[length:]
        if 100 <= int(m.group(1)) < 200:
            continue
        out.append((int(m.group(1)), headers, rest[:length]))
    return out


def get(target, fields=("Host: x",), version="HTTP/1.1", method="GET"):
    return ("\r\n".join([f"{method} {target} {version}", *fields]) + "\r\n\r\n").encode()


def one_answer(port, data, **kw):
    raw, how = exchange(port, data, **kw)
    got = answers(raw)
    assert len(got) == 1, (how, raw[:600])
    return got[0], how


# --------------------------------------------------------------------------- the flood

def test_a_flood_without_reading_is_bounded_and_cut(procs):
    """One client pipelines GET /api/waha/config in 1 MB writes and never
    reads. The worker stays within 10 MB of its RSS, its other clients are
    answered at once, a slow head gets its 408 on time, and the flood
    connection is cut by the stall rule (client_timeout after its output
    stopped moving); the flooder connects again, and is cut again."""
    sim = procs.simulator()
    gw = procs.gateway(sim, {
        "server": {"workers": 1, "min_workers": 1, "max_workers": 1,
                   "client_timeout": int(CLIENT_TIMEOUT_S * 1000)},
        "backend": {"status_cache_duration": 60000, "session_cache_duration": 60000},
    })
    worker = gw.wait_children("worker", 1)
    assert worker
    for _ in range(20):
        assert gw.get("/api/waha/status")[0] == 200
    fig = flood.run_flood(gw.port, worker[0], 12.0, CLIENT_TIMEOUT_S, probers=2)
    report = flood.report(fig)
    assert fig["worker_alive"], report
    assert gw.child_pids("worker") == worker, report
    if not SANITIZED:  # ASan's quarantine holds freed memory on purpose
        assert fig["rss_growth_kb"] < 10 * 1024, report
    assert fig["failures"] == 0 and fig["requests"] > 100, report
    assert fig["p99_ms"] < 250 * SLACK and fig["max_ms"] < 1000 * SLACK, report
    # Cut: the answers fill the socket buffers within a second or two,
    # then client_timeout, then the sweep.
    assert fig["flood_cuts"] >= 1, report
    first = fig["flood_connections"][0]
    assert first["how"] != "stopped" and first["lived_s"] < 6.0 * SLACK, report
    assert fig["slowloris_408_s"] is not None, report
    assert CLIENT_TIMEOUT_S <= fig["slowloris_408_s"] <= \
        CLIENT_TIMEOUT_S + SWEEP_S + 1.0 * SLACK, report


def test_the_master_sees_a_worker_busy_with_one_connection(procs):
    """One client pipelines as fast as it can and reads every answer: its
    worker is busy, and the master's once-a-second load sample (the CPU
    time the worker publishes from its sweep) must see it. The issue's flood
    kept the sweep from running: the master saw "0% busy" and scaled the
    worker down. Two workers, one busy, one idle: the average stays above
    the scale-down threshold (15 %), where two idle ones retire one within
    about 10 s (SCALE_DOWN_SAMPLES)."""
    sim = procs.simulator()
    gw = procs.gateway(sim, {"server": {"workers": 2, "min_workers": 1, "max_workers": 2}})
    assert len(gw.wait_children("worker", 2)) == 2
    batch = b"GET /api/waha/config HTTP/1.1\r\nHost: x\r\n\r\n" * 4096
    stop = time.monotonic() + 14.0
    received = [0]

    def reader(sock):
        while time.monotonic() < stop + 1.0:
            if not select.select([sock], [], [], 0.2)[0]:
                continue
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                return
            received[0] += len(chunk)

    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.setblocking(False)
        t = threading.Thread(target=reader, args=(sock,), daemon=True)
        t.start()
        view, sent = memoryview(batch), 0  # whole requests, however the writes fall
        while time.monotonic() < stop:
            if not select.select([], [sock], [], 0.2)[1]:
                continue
            try:
                sent += sock.send(view[sent:])
            except BlockingIOError:
                continue
            sent %= len(batch)
        t.join(5)
    assert received[0] > 10 * 1024 * 1024, received  # the worker answered a lot
    assert "scaling down" not in gw.log_text(), gw.log_text()[-2000:]


def test_pipelined_answers_come_in_order(gw):
    """1000 pipelined requests in one write, answered in batches over many
    loop turns: all answered, in order, then the Connection: close."""
    data = b"".join(get(f"/api/waha/nothing-{i}") for i in range(1000))
    raw, how = exchange(gw.port, data + get("/api/waha/config", ("Host: x", "Connection: close")))
    got = answers(raw)
    assert len(got) == 1001, (how, len(got))
    for i, (status, _, body) in enumerate(got[:-1]):
        assert status == 404 and f"nothing-{i}".encode() in body, (i, status, body)
    assert got[-1][0] == 200


# --------------------------------------------------------------------------- half-close

def test_pipelined_requests_then_half_close_get_every_answer(gw):
    data = b"".join(get(f"/api/waha/x{i}") for i in range(100))
    raw, how = exchange(gw.port, data, half_close=True)
    got = answers(raw)
    assert how == "closed" and len(got) == 100, (how, len(got), raw[-300:])
    assert all(f"/api/waha/x{i}".encode() in body for i, (_, _, body) in enumerate(got))


def test_half_close_in_the_middle_of_a_request_answers_what_came(gw):
    data = get("/api/waha/config") + b"GET /api/waha/config HTTP/1.1\r\nHo"
    raw, how = exchange(gw.port, data, half_close=True)
    got = answers(raw)
    assert how == "closed" and [a[0] for a in got] == [200], (how, raw[:300])


def test_parked_request_then_half_close_is_answered(simulator, gateway):
    """A cold read waits for the fetcher (WAHA answers after 800 ms); the
    client sends it and two more, then half-closes: three answers, in
    order, then the close."""
    sim = simulator()
    sim.fault("slow", delayMs=800, paths="/api/sessions")
    gw = gateway(sim, {"limits": {"request_timeout": 5000}})
    data = (get("/api/waha/status") + get("/api/waha/config") + get("/api/waha/nope"))
    t = time.monotonic()
    raw, how = exchange(gw.port, data, half_close=True, timeout=15)
    took = time.monotonic() - t
    got = answers(raw)
    assert how == "closed" and [a[0] for a in got] == [200, 200, 404], (how, raw[:600])
    assert b'"status":"WORKING"' in got[0][2], got[0]
    assert took >= 0.7, took  # it did wait for WAHA


# --------------------------------------------------------------------------- smuggling (RFC 9112)

def refused_400(port, data, **kw):
    (status, headers, body), how = one_answer(port, data, **kw)
    assert status == 400 and how in ("closed", "reset"), (status, how, body)
    assert headers.get("connection", "").lower() == "close", headers
    assert b'"code":"bad_request"' in body, body
    return body


WEBHOOK = "POST /api/waha/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("data", [
    # A blank before the colon (5.1): honoured as the framing before.
    WEBHOOK + "Content-Length : 35\r\n\r\n" + "{}" + " " * 33,
    WEBHOOK + "Transfer-Encoding : chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    # obs-fold (5.2).
    WEBHOOK + "Transfer-Encoding:\r\n chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "GET /api/waha/config HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
    " X-Injected: 1\r\n\r\n",
    # Framing: both lengths, two lengths.
    WEBHOOK + "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    WEBHOOK + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
], ids=["cl-space-colon", "te-space-colon", "te-obs-fold", "origin-obs-fold", "te-and-cl",
        "two-cl"])
def test_smuggling_heads_are_400(gw, data):
    refused_400(gw.port, data.encode())


@pytest.mark.parametrize("codings", [
    ["identity, chunked"], ["chunked", "chunked"], ["chunked, chunked"], ["gzip, chunked"],
    ["chunked, identity"], ["gzip"],
], ids=["identity-chunked", "two-lines", "twice", "gzip-chunked", "chunked-identity", "gzip"])
def test_transfer_encoding_other_than_one_final_chunked_is_400(gw, codings):
    """RFC 9112 6.1 and 6.3: chunked must be the final coding, applied once,
    and no other coding is accepted here."""
    data = WEBHOOK + "".join(f"Transfer-Encoding: {c}\r\n" for c in codings) + \
        "\r\n2\r\n{}\r\n0\r\n\r\n"
    refused_400(gw.port, data.encode())


def test_a_chunk_size_over_the_limit_is_413_at_once(gw):
    """The size line says 1 MiB: 413 without waiting for the data."""
    data = (WEBHOOK + "Transfer-Encoding: chunked\r\n\r\n100000\r\n").encode()
    t = time.monotonic()
    (status, _, body), how = one_answer(gw.port, data, timeout=CLIENT_TIMEOUT_S + 5)
    assert status == 413 and b"payload_too_large" in body, (status, body)
    assert time.monotonic() - t < CLIENT_TIMEOUT_S, "it waited for the data"


# --------------------------------------------------------------------------- Host, target forms

def test_host_missing_or_twice_is_400(gw):
    """RFC 9112 3.2: an HTTP/1.1 request without Host, or any with two."""
    body = refused_400(gw.port, get("/api/waha/config", ()))
    assert b"Host" in body
    refused_400(gw.port, get("/api/waha/config", ("Host: x", "Host: x")))
    refused_400(gw.port, get("/api/waha/config", ("Host: x", "host: y"), "HTTP/1.0"))
    # HTTP/1.0 may go without.
    (status, _, _), _ = one_answer(gw.port, get("/api/waha/config", (), "HTTP/1.0"))
    assert status == 200


def test_absolute_form_is_served(gw):
    """RFC 9112 3.2.2: a server must accept the absolute-form."""
    (status, headers, body), _ = one_answer(
        gw.port, get("http://gw.example/api/waha/status?session=shop",
                     ("Host: gw.example", "Connection: close")))
    assert status == 200 and b'"session":"shop"' in body, (status, body)
    (status, _, body), _ = one_answer(
        gw.port, get("HTTP://127.0.0.1/api/waha/config", ("Host: 127.0.0.1",
                                                          "Connection: close")))
    assert status == 200, body


def test_options_asterisk_is_204_with_allow(gw):
    """RFC 9110 9.3.7: OPTIONS * asks about the server."""
    (status, headers, body), _ = one_answer(
        gw.port, get("*", ("Host: x", "Connection: close"), method="OPTIONS"))
    assert status == 204 and body == b"", (status, body)
    assert "GET" in headers.get("allow", "") and "OPTIONS" in headers["allow"], headers
    refused_400(gw.port, get("*", ("Host: x",)))


# --------------------------------------------------------------------------- keys

SECRET = "h0stile-s3cret"
STATS_TOKEN = "st4ts-t0ken"


@pytest.fixture
def secured(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"auth": {"required": True, "key": f"k : {SECRET} : *"},
                       "server": {"stats_token": STATS_TOKEN}, "log": {"access": True}})
    return sim, gw


def status_with(port, path, *fields):
    (status, _, body), _ = one_answer(port, get(path, ("Host: x", "Connection: close", *fields)))
    return status, body


def test_bearer_in_any_case_and_with_trailing_blanks(secured):
    """RFC 9110 11.1: the scheme is case-insensitive; RFC 9112 5.1: the blanks
    around a value are not part of it. Client keys and stats_token alike."""
    _, gw = secured
    for value in (f"bearer {SECRET}", f"BEARER {SECRET}", f"Bearer {SECRET} ",
                  f"bEaReR  {SECRET}\t"):
        status, body = status_with(gw.port, "/api/waha/status", f"Authorization: {value}")
        assert status == 200, (value, body)
        status, body = status_with(gw.port, "/api/waha/monitoring/stats",
                                   f"Authorization: {value.replace(SECRET, STATS_TOKEN)}")
        assert status == 200, (value, body)
    status, _ = status_with(gw.port, "/api/waha/status", f"X-Api-Key: {SECRET}  ")
    assert status == 200
    for value in (f"Bearer {SECRET}x", f"Bearerx {SECRET}", f"Basic {SECRET}", "Bearer"):
        status, _ = status_with(gw.port, "/api/waha/status", f"Authorization: {value}")
        assert status == 401, value
        status, _ = status_with(gw.port, "/api/waha/monitoring/stats",
                                f"Authorization: {value.replace(SECRET, STATS_TOKEN)}")
        assert status == 401, value


# --------------------------------------------------------------------------- the access log

def test_access_log_leaves_client_keys_out(secured):
    """README: keys are logged without the secret. With log.access, the
    query's access_token (right or wrong) and x-api-key are redacted."""
    _, gw = secured
    wrong, other = "wr0ng-k3y-value", "0ther-s3cret-value"
    assert status_with(gw.port, f"/api/waha/status?access_token={SECRET}")[0] == 200
    assert status_with(gw.port, f"/api/waha/status?session=default&access_token={wrong}")[0] \
        == 401
    assert status_with(gw.port, f"/api/waha/status?x-api-key={other}&ACCESS%5FTOKEN={wrong}",
                       f"Authorization: Bearer {SECRET}")[0] == 200
    assert wait_until(lambda: gw.log_text().count("GET /api/waha/status?") >= 3, 10), \
        gw.log_text()[-2000:]
    log = gw.log_text()
    for secret in (SECRET, wrong, other):
        assert secret not in log, [line for line in log.splitlines() if secret in line]
    assert "?access_token=[REDACTED] 200" in log, log[-2000:]
    assert "?session=default&access_token=[REDACTED] 401" in log, log[-2000:]
    assert "?x-api-key=[REDACTED]&ACCESS%5FTOKEN=[REDACTED] 200" in log, log[-2000:]


def test_a_path_cannot_forge_a_log_line(secured):
    """A decoded %0a or an escape sequence in a path stays inside its line
    (common/log.c escapes control bytes)."""
    _, gw = secured
    status, _ = status_with(gw.port, "/api/waha/x%0aFORGED%20line%1b[2J%0d%0aFORGED2")
    assert status == 404
    assert wait_until(lambda: "/api/waha/x" in gw.log_text(), 10), gw.log_text()[-2000:]
    raw = gw.log_path.read_bytes()
    assert b"\x1b" not in raw and b"\r" not in raw, raw[-1000:]
    lines = raw.decode(errors="replace").splitlines()
    assert not [line for line in lines if line.startswith("FORGED")], lines[-5:]
    assert [line for line in lines if "/api/waha/x" in line and "FORGED" in line], lines[-5:]


# --------------------------------------------------------------------------- CORS

def cors_get(port, origin=None, path="/api/waha/status", method="GET"):
    fields = ["Host: x", "Connection: close"]
    if origin is not None:
        fields.append(f"Origin: {origin}")
    if method == "OPTIONS":
        fields.append("Access-Control-Request-Method: GET")
    (status, headers, _), _ = one_answer(port, get(path, fields, method=method))
    return status, headers


def test_cors_star_answers_star_without_credentials(simulator, gateway):
    """Fetch standard: with cors_origins = *, Access-Control-Allow-Origin: *
    and no credentials; null never; Vary: Origin on every answer."""
    gw = gateway(simulator(), {"server": {"cors_origins": "*"}})
    for method in ("GET", "OPTIONS"):
        status, h = cors_get(gw.port, "https://any.example", method=method)
        assert status in (200, 204), (method, status)
        assert h.get("access-control-allow-origin") == "*", (method, h)
        assert "access-control-allow-credentials" not in h, (method, h)
        assert h.get("vary") == "Origin", (method, h)
    for origin in ("null", None):
        status, h = cors_get(gw.port, origin)
        assert status == 200 and "access-control-allow-origin" not in h, (origin, h)
        assert "access-control-allow-credentials" not in h, (origin, h)
        assert h.get("vary") == "Origin", (origin, h)
    status, h = cors_get(gw.port, "null", method="OPTIONS")
    assert status == 204 and "access-control-allow-methods" not in h, h


def test_cors_listed_origins_and_vary(simulator, gateway):
    """A listed origin is echoed with credentials (trailing blanks are not
    part of it); any other, and none, gets no CORS header but Vary: Origin
    all the same; with * in the list too, the others get *."""
    sim = simulator()
    gw = gateway(sim, {"server": {"cors_origins": "https://app.example"}})
    for origin in ("https://app.example", "https://app.example  "):
        status, h = cors_get(gw.port, origin)
        assert status == 200, status
        assert h.get("access-control-allow-origin") == "https://app.example", (origin, h)
        assert h.get("access-control-allow-credentials") == "true", h
        assert h.get("vary") == "Origin", h
    for origin in ("https://evil.example", "null", None):
        for path in ("/api/waha/status", "/api/waha/nope", "/"):
            status, h = cors_get(gw.port, origin, path)
            assert "access-control-allow-origin" not in h, (origin, path, h)
            assert h.get("vary") == "Origin", (origin, path, status, h)
    both = gateway(sim, {"server": {"cors_origins": "https://app.example, *"}})
    status, h = cors_get(both.port, "https://app.example")
    assert h.get("access-control-allow-origin") == "https://app.example", h
    assert h.get("access-control-allow-credentials") == "true", h
    status, h = cors_get(both.port, "https://other.example")
    assert h.get("access-control-allow-origin") == "*", h
    assert "access-control-allow-credentials" not in h, h


# --------------------------------------------------------------------------- event ids

ALICE, BOB = "alice-h0stile-k3y", "bob-h0stile-k3y"
EVENT_ID_RE = re.compile(r"^[0-9a-f]{16}-\d+-\d+$")


def test_a_scoped_streams_id_counts_its_scope_only(simulator, gateway):
    """sse.c: a stream's version counts its key's scope. Alice (default only)
    reconnects with her last id after Bob's session changed: nothing of
    hers changed, so she gets nothing again; after her session changed,
    she gets its status."""
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"},
                       "auth": {"required": True,
                                "key": [f"alice : {ALICE} : default", f"bob : {BOB} : shop"]},
                       "server": {"workers": 1, "min_workers": 1, "max_workers": 1}})
    path = f"/api/waha/events?access_token={ALICE}"
    s = Stream(gw.port, path)
    try:
        assert s.wait_for(lambda e: e[2]["status"] == "WORKING", 10), s.events()
        last_id = s.events()[-1][0]
    finally:
        s.close()
    sim.set_session("shop", "STARTING")
    assert wait_until(lambda: gw.json(f"/api/waha/status?session=shop&access_token={BOB}")
                      ["status"] == "STARTING", 10)
    again = Stream(gw.port, path, last_event_id=last_id)
    try:
        assert again.events(1.0) == [], again.events()
    finally:
        again.close()
    sim.set_session("default", "STARTING")
    assert wait_until(lambda: gw.json(f"/api/waha/status?access_token={ALICE}")
                      ["status"] == "STARTING", 10)
    resumed = Stream(gw.port, path, last_event_id=last_id)
    try:
        got = resumed.wait_for(lambda e: e[2]["status"] == "STARTING", 10)
        assert got and got[0][0] != last_id, resumed.events()
        assert {e[2]["session"] for e in resumed.events()} == {"default"}
    finally:
        resumed.close()


def test_event_ids_move_when_sessions_go(simulator, gateway):
    """With upstream.sessions = *, a session that goes moves the region's
    table_generation, and with it every stream's id: a client that
    reconnects with an id from before gets the current statuses."""
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    gw = gateway(sim, {"upstream": {"sessions": "*"},
                       "server": {"workers": 1, "min_workers": 1, "max_workers": 1}})
    names = lambda: sorted(x["name"] for x in gw.json("/api/waha/sessions"))  # noqa: E731
    assert wait_until(lambda: names() == ["default", "shop"], 15)
    s = Stream(gw.port, "/api/waha/events")
    try:
        assert s.wait_for(lambda e: {x[2]["session"] for x in s.events()} >= {"default", "shop"},
                          10), s.events()
        last_id = s.events()[-1][0]
    finally:
        s.close()
    sim.delete_session("shop")
    # Gone from the list, then from the table (the entry is freed).
    assert wait_until(lambda: names() == ["default"] and
                      gw.get("/api/waha/status?session=shop")[0] == 404, 15)
    again = Stream(gw.port, "/api/waha/events", last_event_id=last_id)
    try:
        got = again.wait_for(lambda e: e[2]["session"] == "default", 10)
        assert got, again.events()
        assert EVENT_ID_RE.match(last_id) and EVENT_ID_RE.match(got[0][0]), (last_id, got)
        table_before, table_now = last_id.split("-")[1], got[0][0].split("-")[1]
        assert int(table_now) > int(table_before), (last_id, got[0][0])
    finally:
        again.close()


# --------------------------------------------------------------------------- open figures

OPS, SHOP = "0ps-h0stile-k3y", "sh0p-h0stile-k3y"


def test_open_figures_under_auth_are_warned_and_show_no_sessions(simulator, gateway):
    """auth.required without stats_token or admin_listen: -t and the master
    warn; /metrics is open, but a session's series only reach a reader whose
    client key allows that session (admin.c)."""
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"},
                       "auth": {"required": True,
                                "key": [f"ops : {OPS} : *", f"shop : {SHOP} : shop"]}})
    code, out, err = run_gateway_cli(["-t", "-c", gw.ini_path])
    assert code == 0 and "configuration OK" in out, (code, out, err)
    assert "warning" in err and "server.stats_token" in err and "server.admin_listen" in err, err
    assert wait_until(lambda: re.search(r"\[warn\] \d+ master: \[auth\] required is true, but "
                                        r"neither server.stats_token", gw.log_text()), 10), \
        gw.log_text()[-2000:]
    for name in ("default", "shop"):
        assert wait_until(lambda: gw.get(f"/api/waha/status?session={name}",
                                         {"X-Api-Key": OPS})[0] == 200, 10)

    def sessions_in_metrics(headers=None):
        status, _, body = gw.get("/metrics", headers)
        assert status == 200, body[:300]
        text = body.decode()
        assert "wahagate_requests_total" in text, text[:500]
        return set(re.findall(r'session="([^"]*)"', text))

    assert sessions_in_metrics() == set()
    assert sessions_in_metrics({"Authorization": "Bearer not-a-key"}) == set()
    assert sessions_in_metrics({"X-Api-Key": SHOP}) == {"shop"}
    assert sessions_in_metrics({"Authorization": f"Bearer {OPS}"}) == {"default", "shop"}


def test_a_closed_door_keeps_the_metrics_whole(simulator, gateway):
    """With stats_token set the figures are not open: no warning, and the
    token's holder sees every session's series."""
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"},
                       "auth": {"required": True, "key": f"ops : {OPS} : *"},
                       "server": {"stats_token": STATS_TOKEN}})
    code, out, err = run_gateway_cli(["-t", "-c", gw.ini_path])
    assert code == 0 and "warning" not in err, (code, out, err)
    for name in ("default", "shop"):
        assert wait_until(lambda: gw.get(f"/api/waha/status?session={name}",
                                         {"X-Api-Key": OPS})[0] == 200, 10)
    assert wait_until(lambda: set(re.findall(
        r'session="([^"]*)"',
        gw.get("/metrics", {"Authorization": f"Bearer {STATS_TOKEN}"})[2].decode()))
        == {"default", "shop"}, 10)
    assert "required is true, but" not in gw.log_text()


def test_health_keeps_wahas_error_for_key_holders(simulator, gateway):
    """The health is public; under auth.required WAHA's error text (its
    words, addresses) is for a reader with a client key, in the object and
    in the 503 alike."""
    sim = simulator()
    sim.fault("error", status=500, paths="/health")
    gw = gateway(sim, {"auth": {"required": True, "key": f"ops : {OPS} : *"},
                       "server": {"stats_token": STATS_TOKEN},
                       "limits": {"max_retries": 0}})
    with_key = {"X-Api-Key": OPS}
    status, _, body = gw.get("/api/waha/health", with_key)
    assert wait_until(lambda: b"500" in gw.get("/api/waha/health", with_key)[2], 15), body
    status, headers, body = gw.get("/api/waha/health")
    assert b"500" not in body and b"a client key shows why" in body, (status, body)
    assert "Authorization" in headers.get("Vary", ""), headers
    sim.fault("none")
    assert wait_until(lambda: gw.get("/api/waha/health", with_key)[0] == 200, 15)
    sim.fault("error", status=500, paths="/health")
    # The health entry keeps its data; its error comes with the next refresh.
    assert wait_until(lambda: (json.loads(gw.get("/api/waha/health", with_key)[2])
                               ["upstream"]["lastError"] or "").find("500") >= 0, 60)
    open_doc = json.loads(gw.get("/api/waha/health")[2])
    assert open_doc["upstream"]["lastError"] == "WAHA's last call failed; a client key shows why", \
        open_doc


# --------------------------------------------------------------------------- replayed webhooks

HOOK_KEY = "h0stile-h00k-k3y"


def signed_envelope(status, ts, event_id):
    body = json.dumps({
        "id": event_id, "timestamp": ts, "event": "session.status", "session": "default",
        "me": None, "payload": {"name": "default", "status": status,
                                "statuses": [{"status": status, "timestamp": ts}]},
    }, separators=(",", ":")).encode()
    return body, hmac.new(HOOK_KEY.encode(), body, hashlib.sha512).hexdigest()


def deliver(gw, envelope):
    body, signature = envelope
    status, _, out = gw.request("POST", "/api/waha/webhook",
                                {"Content-Type": "application/json", "X-Webhook-Hmac": signature},
                                body)
    assert 200 <= status < 300, (status, out)
    return json.loads(out)["result"]


def test_a_replayed_webhook_is_not_applied(simulator, gateway):
    """Issue 15, point 5: a captured signed STOPPED envelope, replayed after
    more envelopes than the gateway remembers ids of (1024, README), is
    older than the status the cache holds: acknowledged, not applied, not
    published. Ids of any length, and ids that are not strings, are
    deduplicated."""
    sim = simulator()
    gw = gateway(sim, {"webhook": {"hmac_key": HOOK_KEY},
                       "backend": {"status_cache_duration": 60000,
                                   "session_cache_duration": 60000, "flap_hold": 0}})
    assert gw.status()["status"] == "WORKING"
    now = int(time.time() * 1000)
    captured = signed_envelope("STOPPED", now, "evt_captured")
    assert deliver(gw, captured) == "applied"
    assert deliver(gw, signed_envelope("WORKING", now + 1, "evt_back")) == "applied"
    for i in range(1100):
        assert deliver(gw, signed_envelope("WORKING", now + 2 + i, f"evt_{i:05d}")) \
            in ("applied", "duplicate"), i
    s = Stream(gw.port)
    try:
        assert s.wait_for(lambda e: e[2]["status"] == "WORKING", 10), s.events()
        seen = len(s.events())
        assert deliver(gw, captured) == "outdated"
        assert gw.status()["rawStatus"] == "WORKING"
        # The next event on the stream is a real change, not the replay
        # (WAHA says FAILED too when the gateway asks it for details).
        sim.set_session("default", "FAILED")
        assert deliver(gw, signed_envelope("FAILED", now + 5000, "evt_real")) == "applied"
        assert s.wait_for(lambda e: e[2]["status"] == "FAILED", 10), s.events()
        # (the details it asks WAHA for may publish FAILED once more, with "me")
        assert set(e[2]["status"] for e in s.events()[seen:]) == {"FAILED"}, s.events()
    finally:
        s.close()
    for n, event_id in enumerate(("evt_" + "x" * 300, 123456789)):
        first = signed_envelope("WORKING", now + 6000 + n, event_id)
        assert deliver(gw, first) == "applied", event_id
        assert deliver(gw, first) == "duplicate", event_id
