"""Requests the gateway must refuse cleanly: a JSON error or a closed
connection, never a crash, a hang, or a worker that stops serving."""

import json
import re
import socket

import pytest

from conftest import raw_exchange


@pytest.fixture(scope="module")
def env(module_procs):
    sim = module_procs.simulator()
    gw = module_procs.gateway(sim, {"server": {"workers": 2, "client_timeout": 2000}})
    assert gw.status()["status"] == "WORKING"
    return sim, gw


@pytest.fixture
def gw(env):
    """The shared gateway; after each test it still serves with the same workers."""
    _, gw = env
    workers = gw.wait_children("worker", 2)
    fetcher = gw.wait_children("fetcher", 1)
    assert len(workers) == 2 and len(fetcher) == 1, (gw.child_pids("worker"),
                                                     gw.child_pids("fetcher"))
    yield gw
    for _ in range(4):  # several connections: each worker gets some
        code, _, body = gw.get("/api/waha/status")
        assert code == 200, body
    assert gw.child_pids("worker") == workers, "a worker died:\n" + gw.log_text()[-3000:]
    assert gw.child_pids("fetcher") == fetcher, "the fetcher died:\n" + gw.log_text()[-3000:]
    assert gw.proc.poll() is None


def json_error(headers, body):
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"JSON error body is not UTF-8: {body!r}") from exc
    doc = json.loads(text)
    assert set(doc) == {"error"}, doc
    assert isinstance(doc["error"]["code"], str) and doc["error"]["code"], doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
    return doc["error"]


def status_of(raw):
    m = re.match(rb"^HTTP/1\.[01] (\d{3}) ", raw)
    return int(m.group(1)) if m else None


def refused_cleanly(raw, how):
    """A 4xx answer, or the connection closed/reset without an answer."""
    if raw:
        code = status_of(raw)
        return code is not None and 400 <= code < 500
    return how in ("closed", "reset")


@pytest.mark.parametrize("path", ["/nope", "/api/waha", "/api/waha/statusx", "/api/waha/status/x",
                                  "/api/waha/sessions/default/x/y", "/api/wahax/status"])
def test_unknown_path_is_404_json(gw, path):
    code, headers, body = gw.get(path)
    assert code == 404, (path, body)
    err = json_error(headers, body)
    assert err["code"] == "not_found", err


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/api/waha/status", "/api/waha/sessions", "/api/waha/config",
                                  "/api/waha/sessions/default"])
def test_wrong_method_is_405_with_allow(gw, method, path):
    code, headers, body = gw.request(method, path, body=b"{}" if method != "DELETE" else None,
                                     headers={"Content-Type": "application/json"})
    assert code == 405, (method, path, code, body)
    json_error(headers, body)
    allow = headers.get("Allow", "")
    assert "GET" in allow and method not in allow, allow


@pytest.mark.parametrize("path", ["/api/waha/status%00", "/api/waha/sessions/de%00fault",
                                  "/api/waha/%00status"])
def test_encoded_nul_is_400(gw, path):
    code, headers, body = gw.get(path)
    assert code == 400, (path, code, body)
    json_error(headers, body)


@pytest.mark.parametrize("query", ["session=de%00fault", "session=%ff%fe", "session=%c3%28",
                                   "session=" + "a" * 300, "session=../default",
                                   "session=%22%5c%0a%01", "session="],
                         ids=["nul", "not-utf8", "bad-utf8-seq", "long", "dots", "escapes", "empty"])
def test_bad_session_query_values(gw, query):
    # Garbage in ?session= never matches a session, and the error is valid
    # UTF-8 JSON ("All JSON is UTF-8") whatever bytes the name had.
    code, headers, body = gw.get("/api/waha/status?" + query)
    assert code in (400, 404), (query, code, body)
    json_error(headers, body)


@pytest.mark.parametrize("path", ["/%ff%fe", "/api/waha/sessions/%ff%fe", "/x%22%5c%0a%01y",
                                  "/api/waha/%c3%28"],
                         ids=["not-utf8", "session-not-utf8", "escapes", "bad-utf8-seq"])
def test_error_bodies_are_utf8_json_for_odd_paths(gw, path):
    code, headers, body = gw.get(path)
    assert code in (400, 404), (path, code, body)
    json_error(headers, body)


@pytest.mark.parametrize("length", [600, 4000, 7000, 20000])
def test_long_request_target(gw, length):
    # Up to 2 KiB a target is served (an unknown query parameter is ignored,
    # an unknown path is 404); longer is 414; a head over 8 KiB is 431, which
    # the transport may find first (test_limits.py has the exact bounds).
    for target, short in (("/api/waha/status?x=" + "a" * length, 200),
                          ("/api/waha/" + "b" * length, 404)):
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        raw, how = raw_exchange(gw.port, request)
        assert how == "answered", (length, how, raw[:300])
        if len(target) <= 2048:
            want = {short}
        elif len(request) <= 8192:
            want = {414}
        else:
            want = {414, 431}
        assert status_of(raw) in want, (length, raw[:300])
        if status_of(raw) >= 400:
            json_error(*answer_parts(raw))


def answer_parts(raw):
    """(headers dict, body) of one raw answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:]), body


def test_oversized_headers(gw):
    big = "X-Big: " + "a" * 20000
    raw, how = raw_exchange(gw.port, f"GET /api/waha/status HTTP/1.1\r\nHost: x\r\n{big}\r\n\r\n".encode())
    assert how == "answered" and status_of(raw) == 431, (how, raw[:300])
    assert json_error(*answer_parts(raw))["code"] == "header_too_large"
    many = "".join(f"X-H{i}: {'v' * 100}\r\n" for i in range(300))
    raw, how = raw_exchange(gw.port, f"GET /api/waha/status HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert how == "answered" and status_of(raw) == 431, (how, raw[:300])
    assert json_error(*answer_parts(raw))["code"] == "header_too_large"


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /api/waha/status\r\n\r\n",
    b"GET /api/waha/status HTTP/9.9\r\n\r\n",
    b"GET /api/waha/status HTTP/1.1 extra\r\n\r\n",
    b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
    b"GET http://[::1 HTTP/1.1\r\n\r\n",
    b"GET /api/waha/status HTTP/1.1\r\nNoColonHeader\r\n\r\n",
    b"POST /api/waha/status HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST /api/waha/status HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST /api/waha/status HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["garbage", "bare-get", "http09", "version", "extra", "binary", "bad-uri", "no-colon",
        "neg-length", "huge-length", "bad-chunk"])
def test_malformed_requests(gw, data):
    raw, how = raw_exchange(gw.port, data)
    if data.startswith(b"GET /api/waha/status\r\n"):
        # HTTP/0.9-style: an answer or a refusal, both fine, but no hang.
        assert how != "timeout", raw[:300]
        return
    assert refused_cleanly(raw, how), (how, raw[:300])


def test_oversized_body(gw):
    body = b"x" * (1024 * 1024)
    head = (f"POST /api/waha/status HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\n\r\n").encode()
    raw, how = raw_exchange(gw.port, head + body)
    assert refused_cleanly(raw, how), (how, raw[:300])
    if raw:  # (the client may be reset while it still sends: test_limits.py)
        assert status_of(raw) == 413, raw[:300]
        assert json_error(*answer_parts(raw))["code"] == "payload_too_large"


def test_half_sent_request_is_closed_by_client_timeout(gw):
    # client_timeout is 2 s in this module: a stalled request does not pin
    # a connection forever; it is answered 408.
    raw, how = raw_exchange(gw.port, b"GET /api/waha/status HTTP/1.1\r\nHost: x\r\n", timeout=20)
    assert how == "answered" and status_of(raw) == 408, (how, raw[:200])
    assert json_error(*answer_parts(raw))["code"] == "request_timeout"


def test_pipelined_requests_on_one_connection(gw):
    req = b"GET /api/waha/status HTTP/1.1\r\nHost: x\r\n\r\n"
    pipelined = req * 20 + b"GET /api/waha/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    chunks = []
    with socket.create_connection(("127.0.0.1", gw.port), timeout=15) as s:
        s.sendall(pipelined)
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    data = b"".join(chunks)
    assert len(re.findall(rb"HTTP/1\.1 200 ", data)) == 21, data[:500]
