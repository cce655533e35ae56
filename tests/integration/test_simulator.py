"""The WAHA simulator itself (scripts/waha_sim.py), over HTTP, without a gateway:
the points where it must behave like WAHA's real source (docs/waha-api.md):
session names WAHA can hold, scale, the QR gate's real timings, the cost of
engine info, `engine` in session objects, Core's 422, webhooks like WAHA's
WebhookSender and like Core 2024.10.8, hashed and session-scoped API keys, and
the /_sim/stats fields the other tests rely on."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from conftest import API_KEY, http_request, wait_until

FAST = ("--engine-delay-ms", "0", "--stop-delay-ms", "0")
FORBIDDEN = {"message": "Forbidden", "statusCode": 403}
UNAUTHORIZED = {"message": "Unauthorized", "statusCode": 401}


def call(sim, method, path, body=None, key=API_KEY, headers=None):
    """(status, parsed JSON or raw bytes, seconds taken, headers) of one request to the simulator."""
    h = dict(headers or {})
    if key is not None:
        h["X-Api-Key"] = key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    t = time.monotonic()
    status, hdrs, out = http_request(sim.port, method, path, h, data)
    took = time.monotonic() - t
    try:
        doc = json.loads(out) if out else None
    except ValueError:
        doc = out
    return status, doc, took, hdrs


def get(sim, path, key=API_KEY):
    status, doc, _, _ = call(sim, "GET", path, key=key)
    return status, doc


def set_session(sim, name, status, **kw):
    return sim.control("POST", "/_sim/sessions/" + quote(name, safe=""), dict(kw, status=status))


def status_of(sim, name):
    code, doc = get(sim, "/api/sessions/" + quote(name, safe=""))
    return doc["status"] if code == 200 else code


# --------------------------------------------------------------------------- a webhook receiver

class Receiver:
    """An HTTP server taking webhooks. decide(env, hit_number) -> (status, headers) says what to
    answer; hits: (monotonic time, [(header, value)] in order, raw body, envelope)."""

    def __init__(self):
        self.hits = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends answers that wait for it
        self.decide = lambda env, n: (200, {})
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = json.loads(body)
                with receiver.lock:
                    receiver.hits.append((time.monotonic(), list(self.headers.items()), body, env))
                    n = len(receiver.hits)
                status, headers = receiver.decide(env, n)
                if status is None:  # hang until the end of the test
                    receiver.release.wait(30)
                    status = 200
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.hits)

    def wait_hits(self, n, timeout):
        return wait_until(lambda: len(self.snapshot()) >= n, timeout)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


# --------------------------------------------------------------------------- 1. session names

def test_session_names_waha_can_hold(simulator):
    sim = simulator("--sessions", "default:WORKING,sales.team:STOPPED", "--start-delay-ms", "100",
                    "--qr-gate-ms", "4000", *FAST)
    # POST /api/sessions validates the name (since 2025-08): 400, array message.
    code, doc = call(sim, "POST", "/api/sessions", {"name": "sales.team"})[:2]
    assert code == 400 and doc == {"message": ["name must match /^[a-zA-Z0-9_-]*$/ regular expression"],
                                   "error": "Bad Request", "statusCode": 400}, doc
    code, doc = call(sim, "POST", "/api/sessions", {"name": "x" * 55})[:2]
    assert code == 400 and doc["message"] == ["name must be shorter than or equal to 54 characters"], doc
    # The deprecated start needs only a non-empty string.
    for body in ({}, {"name": ""}, {"name": None}):
        code, doc = call(sim, "POST", "/api/sessions/start", body)[:2]
        assert code == 422 and doc == {"message": "Session name is required", "error": "Unprocessable Entity",
                                       "statusCode": 422}, (body, doc)
    odd = ["a b", "café ☕", "x" * 80, "team/one", "50%"]
    for name in odd:
        code, doc = call(sim, "POST", "/api/sessions/start", {"name": name})[:2]
        assert code == 201 and doc["name"] == name, (name, code, doc)
    code, doc = call(sim, "POST", "/api/sessions/start", {"name": "sales.team"})[:2]
    assert code == 201 and doc["status"] == "STARTING", doc
    # Every {name} route takes them percent-encoded.
    for name in ["sales.team"] + odd:
        enc = quote(name, safe="")
        code, doc = get(sim, f"/api/sessions/{enc}")
        assert code == 200 and doc["name"] == name, (name, code, doc)
        assert wait_until(lambda: status_of(sim, name) == "SCAN_QR_CODE", 10), status_of(sim, name)
        code, doc = get(sim, f"/api/{enc}/auth/qr?format=raw")
        assert code == 200 and doc["value"].startswith("2@"), (name, code, doc)
        code, doc = get(sim, f"/api/sessions/{enc}/me")
        assert code == 200 and doc is None, (name, code, doc)
    assert call(sim, "POST", "/api/sessions/sales.team/stop")[0] == 201
    assert status_of(sim, "sales.team") == "STOPPED"
    code, doc = get(sim, "/api/sessions?all=true")
    assert {s["name"] for s in doc} == {"default", "sales.team", *odd}, doc
    stats = sim.stats()
    assert stats["bySession"]["café ☕"] >= 3 and stats["calls"]["GET /api/{name}/auth/qr"] >= 6, stats
    # The control route takes any percent-encoded name too.
    set_session(sim, "ops.bot #2", "WORKING")
    assert status_of(sim, "ops.bot #2") == "WORKING"
    assert get(sim, "/api/sessions/" + quote("ops.bot #2", safe="") + "/me")[1]["id"].endswith("@c.us")
    assert sim.control("DELETE", "/_sim/sessions/" + quote("ops.bot #2", safe="")) == {"deleted": True}
    assert status_of(sim, "ops.bot #2") == 404


# --------------------------------------------------------------------------- 2. scale

def test_a_thousand_sessions_list_fast(simulator):
    sim = simulator("--sessions", "default:WORKING,sales.team:STOPPED", "--session-count", "1000", *FAST)
    took = []
    for _ in range(5):
        code, doc, t, _ = call(sim, "GET", "/api/sessions?all=true")
        assert code == 200
        took.append(t)
    assert len(doc) == 1002, len(doc)
    names = [s["name"] for s in doc]
    assert names[:2] == ["default", "sales.team"] and names[2:] == [f"s{i}" for i in range(1, 1001)]
    assert all(s["status"] == "WORKING" and s["me"] for s in doc[2:]), doc[2]
    assert len({s["me"]["id"] for s in doc if s["me"]}) == 1001, "each session has its own me"
    assert min(took) < 0.3, f"GET /api/sessions?all=true with 1002 sessions took {took}"
    assert len(get(sim, "/api/sessions")[1]) == 1001  # STOPPED left out
    assert get(sim, "/api/sessions/s1000")[1]["name"] == "s1000"
    assert sim.stats()["sessions"] == 1002


# --------------------------------------------------------------------------- 3. QR gate

def test_qr_gate_defaults_to_waha_timings(simulator):
    # A short start delay no longer shortens the gate.
    sim = simulator("--sessions", "default:WORKING", "--start-delay-ms", "100", *FAST)
    conf = sim.control("GET", "/_sim/config")
    assert conf["qrGateMs"] == 10000 and conf["qrRunningMs"] is None, conf  # None: half, 5 s
    result = {}

    def ask():
        result["answer"] = call(sim, "GET", "/api/default/auth/qr?format=raw")
    t = threading.Thread(target=ask, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(1.5)  # an early answer (the old 10 % gate answered after 1 s) can only come sooner
    assert t.is_alive(), f"the QR gate answered after {time.monotonic() - t0:.2f} s: {result}"
    set_session(sim, "default", "SCAN_QR_CODE")
    t.join(10)
    assert not t.is_alive()
    code, doc, took, _ = result["answer"]
    assert code == 200 and doc["value"].startswith("2@"), doc


def test_qr_gate_knobs_and_answers(simulator):
    sim = simulator("--sessions", "default:WORKING,off:STOPPED", "--qr-gate-ms", "800", *FAST)
    code, doc, took, _ = call(sim, "GET", "/api/default/auth/qr")
    assert code == 422 and doc == {"error": "Session status is not as expected. Try again later or restart "
                                            "the session", "session": "default", "status": "WORKING",
                                   "expected": ["SCAN_QR_CODE"]}, doc
    assert took >= 0.8, took
    code, doc, took, _ = call(sim, "GET", "/api/off/auth/qr")  # waits half the gate for "running"
    assert code == 422 and doc["status"] == "STOPPED" and "statusCode" not in doc, doc
    assert 0.4 <= took, took
    code, doc, took, _ = call(sim, "GET", "/api/nobody/auth/qr")
    assert code == 422 and doc == {"error": 'Session "nobody" does not exist', "session": "nobody"}, doc
    sim.control("POST", "/_sim/config", {"qrGateMs": 300, "qrRunningMs": 1200})
    code, doc, took, _ = call(sim, "GET", "/api/off/auth/qr")
    assert code == 422 and took >= 1.2, (code, took)
    code, doc, took, _ = call(sim, "GET", "/api/default/auth/qr")
    assert code == 422 and took >= 0.3, (code, took)
    conf = sim.control("POST", "/_sim/config", {"qrRunningMs": None})
    assert conf["qrGateMs"] == 300 and conf["qrRunningMs"] is None, conf


# --------------------------------------------------------------------------- 4./5. engine info

def test_engine_info_costs_time_only_for_a_single_running_session(simulator):
    assert simulator(engine_delay_ms=None).control("GET", "/_sim/config")["engineDelayMs"] == 1000
    sim = simulator("--sessions", "default:WORKING,off:STOPPED", "--engine-delay-ms", "700")
    code, doc, took, _ = call(sim, "GET", "/api/sessions/default")
    assert code == 200 and took >= 0.7, took
    assert doc["engine"] == {"engine": "WEBJS", "WWebVersion": doc["engine"]["WWebVersion"],
                             "state": "CONNECTED"}, doc
    quick = []
    for path in ("/api/sessions/off", "/api/sessions?all=true"):
        quick.append(min(call(sim, "GET", path)[2] for _ in range(3)))
    assert max(quick) < 0.6, f"a stopped session or the list paid the engine delay: {quick}"
    code, doc = get(sim, "/api/sessions/off")
    assert doc["engine"] == {}, doc
    code, doc = get(sim, "/api/sessions?all=true")
    assert [s["name"] for s in doc] == ["default", "off"] and all("engine" not in s for s in doc), doc
    assert set(doc[0]) == {"name", "status", "config", "me", "presence", "timestamps"}, doc[0]


def test_core_stopped_engine_and_only_default(simulator):
    sim = simulator("--core", "--sessions", "default:STOPPED", *FAST)
    code, doc = get(sim, "/api/sessions/default")
    assert code == 200 and doc["status"] == "STOPPED" and doc["engine"] == {}, doc
    assert get(sim, "/api/sessions")[1] == []
    assert [s["name"] for s in get(sim, "/api/sessions?all=true")[1]] == ["default"]
    for name in ("other", "sales.team", "é"):
        b64 = base64.b64encode(name.encode()).decode()
        for path in (f"/api/sessions/{quote(name)}", f"/api/{quote(name)}/auth/qr"):
            code, doc = get(sim, path)
            assert code == 422 and doc == {
                "message": f"WAHA Core support only 'default' session. You tried to access '{name}' session "
                           f"(base64: {b64}). If you want to run more then one WhatsApp account - please get "
                           f"WAHA PLUS version. Check this out: https://waha.devlike.pro/",
                "error": "Unprocessable Entity", "statusCode": 422}, (path, doc)
    code, doc = get(sim, "/health")
    assert code == 422 and doc["error"] == "Unprocessable Entity", doc


# --------------------------------------------------------------------------- 7. webhooks (2026)

def webhook_sim(simulator, receiver, *args):
    sim = simulator("--sessions", "default:WORKING", "--webhook-url", receiver.url, *FAST, *args)
    return sim


def test_webhook_defaults_are_waha_s(simulator):
    conf = simulator().control("GET", "/_sim/config")
    assert (conf["webhookRetries"], conf["webhookRetryDelayMs"], conf["webhookMaxInFlight"]) == (15, 2000, 1000)
    assert conf["legacyWebhooks"] is False


def test_webhook_retries_every_error_with_one_request_id(simulator, receiver):
    sim = webhook_sim(simulator, receiver, "--webhook-retry-delay-ms", "150", "--webhook-hmac-key", "k")
    receiver.decide = lambda env, n: (400 if n == 1 else 500 if n == 2 else 200, {})
    set_session(sim, "default", "STOPPED")
    assert receiver.wait_hits(3, 10), receiver.snapshot()
    assert wait_until(lambda: sim.stats()["webhooks"]["sent"] == 1, 5), sim.stats()
    hits = receiver.snapshot()
    assert len(hits) == 3
    ids = {dict(h[1])["X-Webhook-Request-Id"] for h in hits}
    assert len(ids) == 1 and len(ids.pop()) >= 16, hits[0][1]
    assert len({h[2] for h in hits}) == 1, "the same body on every attempt"
    assert all(b[0] - a[0] >= 0.14 for a, b in zip(hits, hits[1:])), [h[0] for h in hits]
    headers, body, env = dict(hits[0][1]), hits[0][2], hits[0][3]
    assert headers["User-Agent"] == "WAHA/2026.2.1" and headers["Content-Type"] == "application/json"
    assert headers["X-Webhook-Timestamp"] == str(env["timestamp"])
    assert headers["X-Webhook-Hmac"] == hmac.new(b"k", body, hashlib.sha512).hexdigest()
    assert headers["X-Webhook-Hmac-Algorithm"] == "sha512"
    assert env["id"].startswith("evt_") and env["payload"]["status"] == "STOPPED"
    assert env["payload"]["statuses"][-1]["status"] == "STOPPED"
    wh = sim.stats()["webhooks"]
    assert (wh["sent"], wh["failed"], wh["attempts"], wh["retries"], wh["queued"]) == (1, 0, 3, 2, 0), wh
    log = sim.control("GET", "/_sim/deliveries")
    assert [a["status"] for a in log] == [400, 500, 200], log
    assert {a["requestId"] for a in log} == {headers["X-Webhook-Request-Id"]}, log


def test_webhook_gives_up_after_the_retries_and_honours_retry_after(simulator, receiver):
    sim = webhook_sim(simulator, receiver, "--webhook-retries", "2", "--webhook-retry-delay-ms", "50")
    receiver.decide = lambda env, n: (503, {"Retry-After": "1"} if n == 1 else {})
    set_session(sim, "default", "STOPPED")
    assert wait_until(lambda: sim.stats()["webhooks"]["failed"] == 1, 10), sim.stats()
    hits = receiver.snapshot()
    assert len(hits) == 3, hits
    assert hits[1][0] - hits[0][0] >= 0.95, "Retry-After: 1 not honoured"
    assert sim.stats()["webhooks"]["attempts"] == 3


def test_webhook_deliveries_run_on_their_own(simulator, receiver):
    """An older event retried arrives after a newer one (WAHA has no queue)."""
    sim = webhook_sim(simulator, receiver, "--webhook-retries", "100", "--webhook-retry-delay-ms", "50")
    seen_working = threading.Event()

    def decide(env, n):
        if env["payload"]["status"] == "WORKING":
            seen_working.set()
            return 200, {}
        return (200 if seen_working.is_set() else 500), {}
    receiver.decide = decide
    set_session(sim, "default", "STOPPED")
    assert receiver.wait_hits(1, 5)
    set_session(sim, "default", "WORKING")
    assert wait_until(lambda: sim.stats()["webhooks"]["sent"] == 2, 10), sim.stats()
    delivered = [h[3]["payload"]["status"] for h in receiver.snapshot()]
    assert delivered[-1] == "STOPPED" and "WORKING" in delivered, delivered


def test_webhook_deliveries_bounded_and_stopped_at_shutdown(simulator, receiver):
    sim = webhook_sim(simulator, receiver, "--webhook-retry-delay-ms", "60000", "--webhook-max-in-flight", "4")
    receiver.decide = lambda env, n: (None, {}) if n == 1 else (500, {})  # the first hangs
    for i, status in enumerate(("STOPPED", "STARTING", "WORKING", "FAILED", "STOPPED", "WORKING")):
        set_session(sim, "default", status)
        assert receiver.wait_hits(i + 1, 5), receiver.snapshot()  # each tried once before the next
    assert wait_until(lambda: sim.stats()["webhooks"]["dropped"] == 2, 5), sim.stats()
    wh = sim.stats()["webhooks"]
    assert wh["queued"] == 4 and wh["maxInFlight"] == 4 and wh["sent"] == 0, wh
    t = time.monotonic()
    assert sim.stop() == 0
    assert time.monotonic() - t < 5, "deliveries kept the simulator from stopping"


# --------------------------------------------------------------------------- 8. legacy webhooks

LEGACY_HEADERS = ["Accept", "Content-Type", "User-Agent", "Content-Length", "Accept-Encoding", "Host",
                  "Connection"]


def test_legacy_webhooks_as_core_2024_10_8(simulator, receiver):
    sim = webhook_sim(simulator, receiver, "--legacy-webhooks", "--webhook-hmac-key", "k",
                      "--webhook-retry-delay-ms", "50", "--start-delay-ms", "60000")
    receiver.decide = lambda env, n: (500, {})
    set_session(sim, "default", "STOPPED")
    assert wait_until(lambda: sim.stats()["webhooks"]["failed"] == 1, 5), sim.stats()
    hits = receiver.snapshot()
    assert len(hits) == 1 and sim.stats()["webhooks"]["attempts"] == 1, "2024.10.8 never retried"
    headers, body, env = hits[0][1], hits[0][2], hits[0][3]
    port = receiver.url.split(":")[2].split("/")[0]
    assert headers == [("Accept", "application/json, text/plain, */*"), ("Content-Type", "application/json"),
                       ("User-Agent", "WAHA/2024.10.8"), ("Content-Length", str(len(body))),
                       ("Accept-Encoding", "gzip, compress, deflate, br"), ("Host", f"127.0.0.1:{port}"),
                       ("Connection", "keep-alive")], headers
    assert list(env) == ["event", "session", "me", "payload", "engine", "environment"], env
    assert env["payload"] == {"name": "default", "status": "STOPPED"}, env
    assert env["environment"] == {"version": "2024.10.8", "engine": "WEBJS", "tier": "PLUS",
                                  "browser": "/usr/bin/chromium"}, env
    assert env["me"]["id"].endswith("@c.us") and env["engine"] == "WEBJS"
    assert sim.control("GET", "/_sim/webhooks")[-1] == env

    # metadata when the session has some; switched off and on at run time
    receiver.decide = lambda env, n: (200, {})
    code, doc = call(sim, "POST", "/api/sessions", {"name": "meta", "start": True,
                                                    "config": {"metadata": {"user.id": "7"}}})[:2]
    assert code == 201, doc
    assert receiver.wait_hits(2, 5)
    env = receiver.snapshot()[1][3]
    assert list(env) == ["event", "session", "metadata", "me", "payload", "engine", "environment"], env
    assert env["metadata"] == {"user.id": "7"} and env["payload"] == {"name": "meta", "status": "STARTING"}
    sim.control("POST", "/_sim/config", {"legacyWebhooks": False})
    set_session(sim, "meta", "STOPPED")
    assert receiver.wait_hits(3, 5)
    headers = dict(receiver.snapshot()[2][1])
    assert "X-Webhook-Request-Id" in headers and "X-Webhook-Hmac" in headers, headers


# --------------------------------------------------------------------------- 9. keys

def test_hashed_api_key(simulator):
    digest = hashlib.sha512(b"s3cret").hexdigest()
    sim = simulator(*FAST, api_key="sha512:" + digest)
    assert get(sim, "/api/sessions", key="s3cret")[0] == 200
    for wrong in (None, "sha512:" + digest, digest, "s3cret "):
        assert get(sim, "/api/sessions", key=wrong) == (401, UNAUTHORIZED), wrong
    assert get(sim, "/ping", key=None) == (200, {"message": "pong"})
    assert sim.control("POST", "/_sim/config", {"apiKey": "plain"})["apiKey"] == "plain"
    assert get(sim, "/api/sessions", key="plain")[0] == 200
    assert sim.stats()["auth"]["unauthorized"] == 4


def test_session_scoped_keys(simulator):
    hashed = "sha512:" + hashlib.sha512(b"opskey").hexdigest()
    sim = simulator("--sessions", "default:WORKING,shop:WORKING,sales.team:STOPPED",
                    "--session-key", "shopkey:shop,sales.team", "--session-key", hashed + ":default", *FAST)
    code, doc = get(sim, "/api/sessions?all=true", key="shopkey")
    assert code == 200 and [s["name"] for s in doc] == ["shop", "sales.team"], doc
    assert [s["name"] for s in get(sim, "/api/sessions", key="shopkey")[1]] == ["shop"]
    assert get(sim, "/api/sessions/shop", key="shopkey")[0] == 200
    assert get(sim, "/api/sessions/sales.team/me", key="shopkey")[0] == 404  # allowed, not running
    for path in ("/api/sessions/default", "/api/sessions/default/me", "/api/default/auth/qr",
                 "/api/sessions/nobody", "/health", "/api/server/version", "/api/server/status",
                 "/api/version"):
        assert get(sim, path, key="shopkey") == (403, FORBIDDEN), path
    for method, path, body in (("POST", "/api/sessions/start", {"name": "default"}),
                               ("POST", "/api/sessions", {"name": "new"}),
                               ("POST", "/api/sessions/default/stop", None)):
        assert call(sim, method, path, body, key="shopkey")[:2] == (403, FORBIDDEN), path
    assert get(sim, "/api/nothing/here/at/all", key="shopkey")[0] == 404
    assert get(sim, "/api/sessions", key="wrong")[0] == 401
    assert get(sim, "/ping", key=None)[0] == 200
    # the hashed session key
    assert [s["name"] for s in get(sim, "/api/sessions", key="opskey")[1]] == ["default"]
    assert get(sim, "/api/sessions/shop", key="opskey")[0] == 403
    # the admin key sees everything
    assert get(sim, "/health")[0] == 200 and len(get(sim, "/api/sessions?all=true")[1]) == 3
    assert sim.stats()["auth"]["forbidden"] == 12, sim.stats()
    conf = sim.control("POST", "/_sim/config", {"sessionKeys": {"k2": ["default"]}})
    assert conf["sessionKeys"] == {"k2": ["default"]}, conf
    assert get(sim, "/api/sessions", key="shopkey")[0] == 401
    assert get(sim, "/api/sessions/default", key="k2")[0] == 200


# --------------------------------------------------------------------------- 10. stats and process

def test_stats_fields_and_clean_stop(simulator):
    sim = simulator("--sessions", "default:WORKING,sales.team:STOPPED", *FAST)
    get(sim, "/api/sessions/sales.team")
    get(sim, "/api/sessions")
    stats = sim.stats()
    assert set(stats) >= {"total", "calls", "bySession", "inFlight", "maxInFlight", "webhooks"}, stats
    assert set(stats["webhooks"]) >= {"sent", "failed", "attempts", "dropped", "queued"}, stats
    assert stats["calls"] == {"GET /api/sessions/{name}": 1, "GET /api/sessions": 1}, stats
    assert stats["bySession"] == {"sales.team": 1} and stats["total"] == 2, stats
    assert sim.reset()["total"] == 0
    assert sim.stop() == 0
