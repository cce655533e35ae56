"""POST /api/waha/webhook (issue 3; docs/waha-api.md 6): WAHA's session.status
events update the cache at once, signed with HMAC-SHA512 when
webhook.hmac_key is set, applied once per envelope id, and relax periodic
refresh to webhook.safety_interval. Hand-made envelopes and the simulator's
real deliveries."""

import hashlib
import hmac
import json
import os
import time

import pytest

from conftest import API_KEY, SANITIZED, http_request, parse_iso_ms, wait_until

KEY = "wh-test-secret"
HOOK = "/api/waha/webhook"
SESSION_CALL = "GET /api/sessions"  # the list: one call refreshes every session
SLACK = 3.0 if SANITIZED else 1.5
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id():
    return "evt_" + "".join(CROCKFORD[b % 32] for b in os.urandom(26))


def envelope(session, status, event="session.status", env_id=None, me=None):
    now = int(time.time() * 1000)
    return {"id": env_id or new_id(), "timestamp": now, "event": event, "session": session,
            "me": me,
            "payload": {"name": session, "status": status,
                        "statuses": [{"status": status, "timestamp": now}]},
            "engine": "WEBJS",
            "environment": {"version": "2026.2.1", "engine": "WEBJS", "tier": "PLUS",
                            "browser": None, "platform": "linux/x64", "worker": {"id": None}}}


def encode(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def sign(body, key=KEY):
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def post(gw, body, signature="sign", headers=None):
    """POST BODY (bytes) to the receiver, signed with KEY unless SIGNATURE is
    None (no header) or a string. Returns (code, headers, parsed JSON or None)."""
    h = {"Content-Type": "application/json"}
    if signature == "sign":
        h["X-Webhook-Hmac"] = sign(body)
        h["X-Webhook-Hmac-Algorithm"] = "sha512"
    elif signature is not None:
        h["X-Webhook-Hmac"] = signature
    h.update(headers or {})
    code, hdrs, data = gw.request("POST", HOOK, h, body)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = None
    return code, hdrs, doc


def check_error(code, hdrs, doc, want):
    assert code == want, (code, doc)
    assert hdrs.get("Content-Type", "").startswith("application/json"), hdrs
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    assert isinstance(doc["error"]["code"], str) and isinstance(doc["error"]["message"], str), doc


# --------------------------------------------------------------------------- one signed gateway

@pytest.fixture(scope="module")
def hook_env(module_procs):
    """A gateway with webhook.hmac_key whose periodic refresh is slow (30 s),
    so that only webhooks change what it shows; the simulator delivers none."""
    sim = module_procs.simulator("--sessions", "default:WORKING")
    gw = module_procs.gateway(sim, {
        "upstream": {"sessions": "default"},
        "backend": {"status_cache_duration": 30000, "session_cache_duration": 30000},
        "limits": {"request_timeout": 3000, "max_retries": 0},
        "webhook": {"hmac_key": KEY, "safety_interval": 60000},
    })
    assert gw.status()["status"] == "WORKING"
    return sim, gw


def current(gw):
    return gw.status()


def unchanged(before, after):
    keys = ("status", "rawStatus", "changedAt", "me")
    assert {k: after[k] for k in keys} == {k: before[k] for k in keys}, (before, after)
    assert after["cache"]["source"] == before["cache"]["source"], (before, after)
    assert after["cache"]["fetchedAt"] == before["cache"]["fetchedAt"], (before, after)


def restore_working(sim, gw):
    """Back to WORKING with WAHA's own "me", and quiet. The event asks WAHA
    for the session's list item only when the gateway's copy of the item
    says another status (store.c), which depends on when the test's last
    list call ran: so wait for the event's effect, then for WAHA to be
    quiet for a second (the call, when there is one, comes at once)."""
    sim.fault("none")
    sim.set_session("default", "WORKING")
    me = sim_me(sim)
    code, _, doc = post(gw, encode(envelope("default", "WORKING", me=me)))
    assert code == 200, doc
    assert wait_until(lambda: (lambda d: d["status"] == "WORKING" and d["me"] == me)(current(gw)),
                      5 + SLACK, 0.05), current(gw)
    quiet = {"total": -1, "since": 0.0}

    def waha_quiet():
        stats = sim.stats()
        if stats["total"] != quiet["total"] or stats["inFlight"] > 0:
            quiet.update(total=stats["total"], since=time.monotonic())
        return time.monotonic() - quiet["since"] >= 1.0
    assert wait_until(waha_quiet, 10 + SLACK, 0.05), sim.stats()
    assert current(gw)["status"] == "WORKING"


def sim_me(sim):
    """The simulator's own "me" of session default (counted in its stats)."""
    code, _, body = http_request(sim.port, "GET", "/api/sessions/default", {"X-Api-Key": API_KEY})
    assert code == 200, body
    return json.loads(body)["me"]


def test_signed_status_event_is_applied_at_once_then_details_fetched(hook_env):
    sim, gw = hook_env
    before = current(gw)
    assert before["status"] == "WORKING"
    # The details fetch is slowed down so the webhook's own effect shows.
    sim.fault("slow", delayMs=1500, paths="/api/sessions")
    sim.set_session("default", "STOPPED", me=None)
    sim.reset()
    try:
        wall = time.time()
        code, hdrs, doc = post(gw, encode(envelope("default", "STOPPED")))
        assert code == 200, doc
        assert doc == {"result": "applied"}, doc
        d = current(gw)
        assert d["status"] == "STOPPED" and d["rawStatus"] == "STOPPED", d
        assert d["authenticated"] is False and d["me"] is None, d
        assert d["cache"]["source"] == "webhook", d
        assert d["cache"]["stale"] is False, d
        assert d["changedAt"] != before["changedAt"], d
        assert parse_iso_ms(d["changedAt"]) >= wall - 0.1, d
        # One GET /api/sessions/default soon after, and only one.
        assert wait_until(lambda: sim.session_calls() >= 1, 2 + SLACK, 0.02), sim.stats()
        assert wait_until(lambda: sim.stats()["inFlight"] == 0, 5, 0.05)
        t = time.monotonic()
        while time.monotonic() - t < 1.0:
            assert current(gw)["status"] == "STOPPED"
            time.sleep(0.1)
        assert sim.session_calls() == 1, sim.stats()
        assert sim.stats()["total"] == 1, sim.stats()
        obj = gw.json("/api/waha/sessions/default")
        assert obj["name"] == "default" and obj["status"] == "STOPPED", obj
    finally:
        restore_working(sim, gw)


@pytest.mark.parametrize("how", ["missing", "wrong-key", "other-body", "truncated", "not-hex"])
def test_bad_signature_is_401_and_changes_nothing(hook_env, how):
    sim, gw = hook_env
    before = current(gw)
    assert before["status"] == "WORKING"
    body = encode(envelope("default", "STOPPED"))
    signature = {"missing": None,
                 "wrong-key": sign(body, "not-the-key"),
                 "other-body": sign(body + b" "),
                 "truncated": sign(body)[:64],
                 "not-hex": "z" * 128}[how]
    sim.reset()
    code, hdrs, doc = post(gw, body, signature)
    check_error(code, hdrs, doc, 401)
    unchanged(before, current(gw))
    assert sim.stats()["total"] == 0, f"a rejected webhook made the gateway call WAHA: {sim.stats()}"


def test_same_envelope_id_is_applied_once(hook_env):
    sim, gw = hook_env
    sim.fault("slow", delayMs=1500, paths="/api/sessions")
    try:
        a = encode(envelope("default", "STOPPED"))
        sim.set_session("default", "STOPPED", me=None)
        code, _, doc = post(gw, a)
        assert code == 200 and doc == {"result": "applied"}, doc
        assert current(gw)["status"] == "STOPPED"
        sim.set_session("default", "WORKING")
        code, _, doc = post(gw, encode(envelope("default", "WORKING")))
        assert code == 200 and doc == {"result": "applied"}, doc
        after_b = current(gw)
        assert after_b["status"] == "WORKING", after_b
        # WAHA resends A (same id) after a failed delivery.
        code, _, doc = post(gw, a)
        assert 200 <= code < 300, (code, doc)
        assert doc == {"result": "duplicate"}, doc
        d = current(gw)
        assert d["status"] == "WORKING" and d["rawStatus"] == "WORKING", \
            f"a duplicate envelope was applied again: {d}"
        assert d["changedAt"] == after_b["changedAt"], d
        # And again, with another delivery's request id: still a duplicate.
        code, _, doc = post(gw, a, headers={"X-Webhook-Request-Id": "another"})
        assert doc == {"result": "duplicate"}, doc
        assert current(gw)["status"] == "WORKING"
    finally:
        restore_working(sim, gw)


BAD_BODIES = {
    "truncated-json": b'{"event":"session.status","session":"default","payload":{"stat',
    "not-json": b"event=session.status&session=default",
    "array": b"[]",
    "string": b'"session.status"',
    "no-session": encode({k: v for k, v in envelope("default", "STOPPED").items()
                          if k != "session"}),
    "no-payload-status": encode(dict(envelope("default", "STOPPED"), payload={"name": "default"})),
    "lowercase-status": encode(envelope("default", "stopped")),
    "empty": b"",
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_body_is_400_and_changes_nothing(hook_env, case):
    sim, gw = hook_env
    before = current(gw)
    code, hdrs, doc = post(gw, BAD_BODIES[case])
    check_error(code, hdrs, doc, 400)
    unchanged(before, current(gw))


def padded(obj, size):
    """OBJ encoded with a "padding" member making it exactly SIZE bytes."""
    base = encode(dict(obj, padding=""))
    assert len(base) <= size
    out = encode(dict(obj, padding="x" * (size - len(base))))
    assert len(out) == size
    return out


@pytest.mark.parametrize("size", [65536 + 1, 200 * 1024])
def test_body_over_64_kib_is_413(hook_env, size):
    sim, gw = hook_env
    before = current(gw)
    body = padded(envelope("default", "STOPPED"), size)
    headers = {"Content-Type": "application/json", "X-Webhook-Hmac": sign(body)}
    try:
        code, hdrs, data = gw.request("POST", HOOK, headers, body)
    except ConnectionResetError:
        pytest.fail(f"connection reset instead of a 413 for {size} bytes")
    assert code == 413, (code, data[:300])
    ctype = hdrs.get("Content-Type", "")
    assert ctype.startswith("application/json"), \
        f"the 413 for {size} bytes is {ctype!r}, not a JSON error: {data[:300]!r}"
    check_error(code, hdrs, json.loads(data), 413)
    unchanged(before, current(gw))


def test_body_of_exactly_64_kib_is_read(hook_env):
    sim, gw = hook_env
    code, _, doc = post(gw, padded(envelope("default", "WORKING", event="message"), 65536))
    assert code == 202, (code, doc)
    assert doc == {"result": "ignored"}, doc


@pytest.mark.parametrize("event", ["message", "message.any", "state.change", "engine.event"])
def test_other_events_are_ignored(hook_env, event):
    sim, gw = hook_env
    before = current(gw)
    code, _, doc = post(gw, encode(envelope("default", "STOPPED", event=event)))
    assert code == 202, (code, doc)
    assert doc == {"result": "ignored"}, doc
    unchanged(before, current(gw))


def test_untracked_session_is_202(hook_env):
    sim, gw = hook_env
    before = current(gw)
    code, _, doc = post(gw, encode(envelope("nobody", "WORKING")))
    assert code == 202, (code, doc)
    assert doc == {"result": "untracked"}, doc
    assert gw.get("/api/waha/status?session=nobody")[0] == 404
    unchanged(before, current(gw))


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_other_methods_are_405(hook_env, method):
    sim, gw = hook_env
    code, hdrs, body = gw.request(method, HOOK)
    assert code == 405, (code, body)
    assert "POST" in hdrs.get("Allow", ""), hdrs
    if method != "HEAD":
        check_error(code, hdrs, json.loads(body), 405)


# --------------------------------------------------------------------------- other gateways

def test_disabled_receiver_is_404(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"webhook": {"enabled": False}})
    assert gw.status()["status"] == "WORKING"
    before = gw.status()
    sim.set_session("default", "STOPPED")
    for method in ("POST", "GET"):
        body = encode(envelope("default", "STOPPED")) if method == "POST" else None
        code, hdrs, data = gw.request(method, HOOK, {"Content-Type": "application/json"}, body)
        check_error(code, hdrs, json.loads(data), 404)
    d = gw.status()
    assert d["status"] == "WORKING" and d["changedAt"] == before["changedAt"], d


def test_simulator_deliveries_signed_and_unsigned(simulator, gateway):
    # Refused deliveries must fail within the test: 3 retries 0.2 s apart, not WAHA's 15 x 2 s.
    sim = simulator("--sessions", "default:WORKING", "--start-delay-ms", "500",
                    "--webhook-retries", "3", "--webhook-retry-delay-ms", "200")
    gw = gateway(sim, {
        "backend": {"status_cache_duration": 30000, "session_cache_duration": 30000},
        "webhook": {"hmac_key": KEY, "safety_interval": 60000},
    })
    assert gw.status()["status"] == "WORKING"
    sim.control("POST", "/_sim/config", {"webhookUrl": gw.url + HOOK, "webhookHmacKey": KEY})

    t = time.monotonic()
    sim.set_session("default", "STOPPED")
    assert wait_until(lambda: gw.status()["status"] == "STOPPED", 1.0 + SLACK, 0.02), gw.status()
    took = time.monotonic() - t
    assert took <= 1.0 + SLACK, took
    # Counted once the gateway's answer is in, maybe after the change shows.
    assert wait_until(lambda: sim.stats()["webhooks"]["sent"] >= 1, 5, 0.02), sim.stats()
    assert sim.stats()["webhooks"]["sent"] == 1, sim.stats()
    # The details fetch the event asked for (it would see later changes).
    assert wait_until(lambda: gw.status()["cache"]["source"] == "poll", 5 + SLACK, 0.02)
    assert wait_until(lambda: sim.stats()["inFlight"] == 0, 5, 0.02)

    # Signed with another key: refused (the simulator retries, then gives up).
    sim.control("POST", "/_sim/config", {"webhookHmacKey": "another-key"})
    before = gw.status()
    sim.set_session("default", "WORKING")
    assert wait_until(lambda: sim.stats()["webhooks"]["failed"] == 1, 10, 0.05), sim.stats()
    d = gw.status()
    assert d["status"] == "STOPPED" and d["changedAt"] == before["changedAt"], d

    # Not signed at all: refused too.
    sim.control("POST", "/_sim/config", {"webhookHmacKey": None})
    sim.set_session("default", "SCAN_QR_CODE")
    assert wait_until(lambda: sim.stats()["webhooks"]["failed"] == 2, 10, 0.05), sim.stats()
    assert gw.status()["status"] == "STOPPED"

    # The right key again: applied.
    sim.control("POST", "/_sim/config", {"webhookHmacKey": KEY})
    sim.set_session("default", "WORKING")
    assert wait_until(lambda: gw.status()["status"] == "WORKING", 1.0 + SLACK, 0.02), gw.status()


def test_webhooks_relax_periodic_refresh(simulator, gateway, poller):
    sim = simulator("--sessions", "default:WORKING", "--start-delay-ms", "500")
    gw = gateway(sim, {
        "backend": {"status_cache_duration": 500, "session_cache_duration": 500},
        "webhook": {"safety_interval": 60000},
    })
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200, 10)
    # Without webhooks, a polling client keeps the 0.5 s schedule.
    sim.reset()
    assert wait_until(lambda: sim.session_calls() >= 3, 2.0 + SLACK, 0.05), \
        f"only {sim.session_calls()} refreshes in {2.0 + SLACK} s of polling: {sim.stats()}"

    sim.control("POST", "/_sim/config", {"webhookUrl": gw.url + HOOK})
    t_hook = time.monotonic()
    sim.set_session("default", "WORKING")  # emits a session.status webhook
    assert wait_until(lambda: sim.stats()["webhooks"]["sent"] == 1, 5, 0.02), sim.stats()
    sim.reset()
    t = time.monotonic()
    while time.monotonic() - t < 3.0:
        time.sleep(0.1)
    calls = sim.session_calls()
    results = p.stop()
    assert calls <= 1, f"{calls} refreshes in 3 s after a webhook (safety_interval 60 s)"
    for r in results:
        if r[0] >= t_hook + 0.5:
            assert r[2] == 200 and r[3]["status"] == "WORKING", r
            assert r[3]["cache"]["stale"] is False, f"served stale while webhooks keep it: {r}"
