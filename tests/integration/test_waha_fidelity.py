"""A real WAHA's traps (issue 16, docs/waha-api.md section 9).

Each test sets the simulator up as WAHA's own source behaves where the
gateway once tripped, and checks what the gateway does: session names WAHA
no longer allows, a sha512: WAHA_API_KEY, the 10-15 s QR gate, a
session-scoped key that may not read /health, WAHA Core's 422 for sessions
other than "default", unsigned webhooks of WAHA Core before 2024-11, and
retried webhooks that arrive after newer ones."""

import hashlib
import hmac
import json
import re
import signal
import time

from conftest import (API_KEY, SANITIZED, Simulator, http_request, run_gateway_cli,
                      wait_until, write_ini)

SLACK = 3.0 if SANITIZED else 1.0
HOOK_KEY = "fidelity-hook-key"
FAST = ("--start-delay-ms", "200", "--engine-delay-ms", "50", "--qr-gate-ms", "1000",
        "--webhook-retry-delay-ms", "100")


def log_count(gw, pattern):
    rx = re.compile(pattern)
    return sum(1 for line in gw.log_text().splitlines() if rx.search(line))


def envelope(session, status, ts, event_id):
    return json.dumps({
        "id": event_id, "timestamp": ts, "event": "session.status", "session": session,
        "me": None, "payload": {"name": session, "status": status,
                                "statuses": [{"status": status, "timestamp": ts}]},
    }, separators=(",", ":")).encode()


def post_hook(gw, body, key=HOOK_KEY):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Webhook-Hmac"] = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    status, _, out = gw.request("POST", "/api/waha/webhook", headers, body)
    return status, json.loads(out)


# --------------------------------------------------------------------------- names

def test_names_waha_no_longer_allows_are_served(simulator, gateway):
    """"sales.team" and "a b" are real names (the deprecated start endpoint never
    checked them); a name too long for the region is skipped and logged once, and
    nothing else suffers: default is served, the breaker stays closed."""
    sim = simulator(*FAST, "--sessions", "default:WORKING,sales.team:WORKING")
    long_name = "x" * 70
    for name in ("a b", long_name):
        status, _, out = http_request(sim.port, "POST", "/api/sessions/start",
                                      {"X-Api-Key": API_KEY, "Content-Type": "application/json"},
                                      json.dumps({"name": name}).encode())
        assert status == 201, (name, status, out)
        sim.set_session(name, "WORKING")  # scanned
    gw = gateway(sim, sections={"upstream": {"sessions": "*"},
                                "webhook": {"hmac_key": HOOK_KEY}})
    assert gw.status()["status"] == "WORKING"
    assert gw.status("sales.team")["status"] == "WORKING"
    code, _, body = gw.get("/api/waha/sessions/sales.team")
    assert code == 200 and json.loads(body)["name"] == "sales.team", body
    assert wait_until(lambda: gw.json("/api/waha/status?session=a%20b")["status"] == "WORKING",
                      10)
    names = sorted(s["name"] for s in gw.json("/api/waha/sessions"))
    assert names == ["a b", "default", "sales.team"], names
    assert gw.json("/api/waha/monitoring/stats")["circuit"]["state"] == "closed"
    # Logged once, with its name, however many lists come.
    calls = sim.stats()["calls"].get("GET /api/sessions", 0)
    assert wait_until(lambda: gw.status() and
                      sim.stats()["calls"].get("GET /api/sessions", 0) >= calls + 2, 10, 0.1)
    assert log_count(gw, r"not tracked: a session name of 70 bytes") == 1, gw.log_text()
    # Its webhooks are acknowledged (2xx), so WAHA does not retry them 15 times.
    status, doc = post_hook(gw, envelope(long_name, "STOPPED", int(time.time() * 1000),
                                         "evt_long"))
    assert 200 <= status < 300, doc
    status, doc = post_hook(gw, envelope("sales.team", "STOPPED", int(time.time() * 1000),
                                         "evt_dot"))
    assert status == 200 and doc["result"] == "applied", doc


# --------------------------------------------------------------------------- keys

SHA512_OF_PLAIN = hashlib.sha512(b"plain-secret").hexdigest()


def test_sha512_waha_api_key_needs_the_plain_one(tmp_path):
    ini = write_ini(tmp_path / "waha.ini", {"server": {"shm_name": "/wgtest-sha512"}})
    code, _, err = run_gateway_cli(["-t", "-c", ini],
                                   {"WAHA_API_KEY": "sha512:" + SHA512_OF_PLAIN})
    assert code == 1, err
    assert "environment WAHA_API_KEY" in err and "WAHA_API_KEY_PLAIN" in err, err
    assert SHA512_OF_PLAIN not in err, err
    code, out, err = run_gateway_cli(["-t", "-c", ini],
                                     {"WAHA_API_KEY": "sha512:" + SHA512_OF_PLAIN,
                                      "WAHA_API_KEY_PLAIN": "plain-secret"})
    assert code == 0 and "configuration OK" in out, err


def test_plain_key_is_sent_to_a_waha_keeping_its_hash(simulator, gateway):
    sim = simulator(*FAST, api_key="sha512:" + SHA512_OF_PLAIN)
    gw = gateway(sim, sections={"upstream": {"api_key": ""}},
                 env_extra={"WAHA_API_KEY": "sha512:" + SHA512_OF_PLAIN,
                            "WAHA_API_KEY_PLAIN": "plain-secret"})
    assert gw.status()["status"] == "WORKING"
    assert sim.stats()["auth"]["unauthorized"] == 0


# --------------------------------------------------------------------------- QR gate

def test_qr_call_that_finds_the_session_moved_on(simulator, gateway):
    """After a scan the cached status still says SCAN_QR_CODE; WAHA's QR call
    then waits its whole gate (10 s, WAHA's default) before a 422. The waiting
    reader is told at once what the status is now, the call is not cut by
    limits.request_timeout, and nothing counts against the breaker."""
    sim = simulator("--start-delay-ms", "200", "--engine-delay-ms", "50",
                    "--sessions", "default:SCAN_QR_CODE")
    gw = gateway(sim, sections={
        "backend": {"status_cache_duration": 60000, "session_cache_duration": 60000},
        "limits": {"request_timeout": 5000},
    })
    assert gw.status()["status"] == "SCAN_QR_CODE"
    sim.set_session("default", "WORKING")  # scanned; no webhook: the cache does not know
    t0 = time.monotonic()
    code, _, body = gw.get("/api/waha/sessions/default/qr")
    waited = time.monotonic() - t0
    assert code == 404 and json.loads(body)["error"]["code"] == "no_qr", (code, body)
    assert "WORKING" in json.loads(body)["error"]["message"], body
    assert waited < 5, f"the reader waited {waited:.1f} s for WAHA's QR gate"
    # The QR call ends with WAHA's 422 after its 10 s gate (qr_timeout 20 s).
    assert wait_until(lambda: sim.stats()["inFlight"] == 0, 15 + SLACK, 0.1), sim.stats()
    metrics = gw.get("/metrics")[2].decode()
    assert 'wahagate_upstream_calls_total{endpoint="qr",result="timeout"}' not in metrics
    stats = gw.json("/api/waha/monitoring/stats")
    assert stats["circuit"] == {"state": "closed", "opens": 0}, stats
    assert gw.status()["status"] == "WORKING"


# --------------------------------------------------------------------------- health

def test_scoped_key_health_falls_back_to_ping_and_tries_again_on_reload(simulator, gateway):
    sim = simulator(*FAST, "--session-key", "scoped-key:default")
    gw = gateway(sim, sections={"upstream": {"api_key": "scoped-key"}})
    doc = gw.json("/api/waha/health")
    deadline = time.monotonic() + 10
    while doc["upstream"]["endpoint"] != "/ping" and time.monotonic() < deadline:
        time.sleep(0.1)
        doc = gw.json("/api/waha/health")
    assert doc["healthy"] is True and doc["upstream"]["endpoint"] == "/ping", doc
    assert sim.stats()["auth"]["forbidden"] >= 1
    health_calls = sim.stats()["calls"].get("GET /health", 0)
    assert gw.status()["status"] == "WORKING"  # the sessions themselves are readable
    gw.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: gw.json("/api/waha/health") and
                      sim.stats()["calls"].get("GET /health", 0) > health_calls, 10, 0.1), \
        sim.stats()


# --------------------------------------------------------------------------- WAHA Core

def test_core_refuses_other_sessions_in_its_own_words(simulator, gateway):
    sim = simulator(*FAST, "--core")
    sim.set_session("default", "WORKING")
    gw = gateway(sim, sections={"upstream": {"sessions": "default,other"}})
    code, _, body = gw.get("/api/waha/sessions/other")
    err = json.loads(body)["error"]
    assert code == 404 and err["code"] == "session_not_available", body
    assert "WAHA Core support only 'default' session" in err["message"], err
    assert gw.status()["status"] == "WORKING"


# --------------------------------------------------------------------------- webhooks

def test_unsigned_webhooks_are_refused_and_explained_once(simulator, gateway):
    sim = simulator(*FAST)
    gw = gateway(sim, sections={"webhook": {"hmac_key": HOOK_KEY}})
    body = envelope("default", "STOPPED", int(time.time() * 1000), "evt_unsigned")
    for _ in range(3):
        status, doc = post_hook(gw, body, key=None)
        assert status == 401 and doc["error"]["code"] == "bad_signature", doc
    assert wait_until(lambda: log_count(gw, r"without X-Webhook-Hmac.*WAHA Core before 2024.11")
                      >= 1, 5)
    # Once per worker at most, never once per request.
    assert log_count(gw, r"without X-Webhook-Hmac") <= 2, gw.log_text()


def test_an_older_status_is_ignored(simulator, gateway):
    """WAHA retries each delivery on its own: a retry of an older event can come
    after a newer one, and a captured envelope can be replayed later. Both are
    acknowledged (so WAHA stops retrying) and not applied."""
    sim = simulator(*FAST)
    gw = gateway(sim, sections={"webhook": {"hmac_key": HOOK_KEY},
                                "backend": {"status_cache_duration": 60000,
                                            "session_cache_duration": 60000}})
    assert gw.status()["status"] == "WORKING"
    now = int(time.time() * 1000)
    # A signed envelope of an hour ago, never seen: older than the polled data.
    status, doc = post_hook(gw, envelope("default", "STOPPED", now - 3600 * 1000, "evt_replay"))
    assert status == 200 and doc["result"] == "outdated", doc
    assert gw.status()["rawStatus"] == "WORKING"
    # WAHA says FAILED too: the list item the gateway asks for after the
    # event agrees with it (else it brings WORKING back at any moment).
    sim.set_session("default", "FAILED")
    status, doc = post_hook(gw, envelope("default", "FAILED", now, "evt_new"))
    assert doc["result"] == "applied", doc
    # A retry of an event older than the one applied.
    status, doc = post_hook(gw, envelope("default", "STOPPED", now - 1500, "evt_old"))
    assert status == 200 and doc["result"] == "outdated", doc
    assert gw.status()["rawStatus"] == "FAILED"
    # The same event again (any id, any length) is a duplicate.
    long_id = "evt_" + "z" * 200
    sim.set_session("default", "WORKING")
    status, doc = post_hook(gw, envelope("default", "WORKING", now + 10, long_id))
    assert doc["result"] == "applied", doc
    status, doc = post_hook(gw, envelope("default", "WORKING", now + 10, long_id))
    assert doc["result"] == "duplicate", doc
