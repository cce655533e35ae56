"""Client keys scoped to sessions (issue 7).

With [auth] required = true every endpoint that serves session data needs a
key (Authorization: Bearer, X-Api-Key or ?access_token=): no or an unknown
key is 401 with WWW-Authenticate, a key used outside its sessions is 403,
lists and event streams hold only the key's sessions, and no secret ever
appears in a log line or an answer.
"""

import hashlib
import json
import os
import signal
import threading

import pytest

from conftest import Stream, http_request, run_gateway_cli, wait_until, write_ini

ALICE = "alice-s3cret-for-default"
BOB = "bob-s3cret-for-shop"
OPS = "ops-s3cret-for-everything"
OPS_SHA = hashlib.sha256(OPS.encode()).hexdigest()

KEYS = [f"alice : {ALICE} : default", f"bob : {BOB} : shop",
        f"ops : sha256:{OPS_SHA} : *"]

SESSION_PATHS = ["/api/waha/status", "/api/waha/status?session=default",
                 "/api/waha/sessions", "/api/waha/sessions/default",
                 "/api/waha/sessions/shop/qr"]


@pytest.fixture
def secured(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,shop:SCAN_QR_CODE")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"},
                       "auth": {"required": True, "key": KEYS}})
    return sim, gw


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("path", SESSION_PATHS)
def test_no_key_or_an_unknown_key_is_401(secured, path):
    _, gw = secured
    for headers in ({}, bearer("wrong"), {"X-Api-Key": "wrong"}, {"Authorization": ALICE}):
        code, hdrs, body = gw.get(path, headers)
        assert code == 401, (path, headers, code, body)
        assert hdrs.get("WWW-Authenticate", "").startswith("Bearer"), hdrs
        assert json.loads(body)["error"]["code"] == "unauthorized"
        assert ALICE.encode() not in body


def test_each_way_of_presenting_a_key(secured):
    _, gw = secured
    for path, headers in (("/api/waha/status", bearer(ALICE)),
                          ("/api/waha/status", {"X-Api-Key": ALICE}),
                          (f"/api/waha/status?access_token={ALICE}", {})):
        code, _, body = gw.get(path, headers)
        assert code == 200, (path, body)
        doc = json.loads(body)
        assert doc["session"] == "default" and doc["me"] is not None, doc


def test_key_outside_its_sessions_is_403(secured):
    _, gw = secured
    for path in ("/api/waha/status?session=shop", "/api/waha/sessions/shop",
                 "/api/waha/sessions/shop/qr", "/api/waha/events?session=shop",
                 "/api/waha/status?session=nosuchsession"):
        code, _, body = gw.get(path, bearer(ALICE))
        assert code == 403, (path, code, body)
        assert json.loads(body)["error"]["code"] == "forbidden"
    # bob's key: shop only; without ?session= his first session is shop.
    assert gw.json("/api/waha/status", bearer(BOB))["session"] == "shop"
    assert gw.get("/api/waha/status?session=default", bearer(BOB))[0] == 403


def test_lists_hold_only_the_keys_sessions(secured):
    _, gw = secured
    names = lambda secret: sorted(s["name"] for s in gw.json("/api/waha/sessions", bearer(secret)))
    assert names(ALICE) == ["default"]
    assert names(BOB) == ["shop"]
    assert names(OPS) == ["default", "shop"]  # a sha256: secret and scope *


def test_qr_needs_a_key_in_scope(secured):
    _, gw = secured
    assert gw.get("/api/waha/sessions/shop/qr")[0] == 401
    assert gw.get("/api/waha/sessions/shop/qr", bearer(ALICE))[0] == 403
    code, hdrs, body = gw.get("/api/waha/sessions/shop/qr", bearer(BOB))
    assert code == 200 and body.startswith(b"\x89PNG"), (code, body[:80])
    # The dashboard's <img> sends the key in the query.
    assert gw.get(f"/api/waha/sessions/shop/qr?access_token={BOB}")[0] == 200


def test_public_endpoints_stay_public(secured):
    _, gw = secured
    for path in ("/api/waha/health", "/api/waha/config", "/", "/poller.js",
                 "/api/waha/monitoring/stats", "/metrics"):
        assert gw.get(path)[0] == 200, path


def test_event_stream_with_access_token(secured):
    sim, gw = secured
    code, _, _ = gw.get("/api/waha/events")
    assert code == 401
    s = Stream(gw.port, f"/api/waha/events?access_token={ALICE}")
    try:
        assert s.status_line.endswith("200 OK"), s.status_line
        assert s.wait_for(lambda e: e[2]["session"] == "default", 10), s.events()
        assert {e[2]["session"] for e in s.events(0.5)} == {"default"}
        # A change of a session outside the key's scope never shows.
        sim.control("POST", "/_sim/config", {"webhookUrl": gw.url + "/api/waha/webhook"})
        sim.set_session("shop", "WORKING", me={"id": "1@c.us", "pushName": "x"})
        sim.set_session("default", "STARTING")
        assert s.wait_for(lambda e: e[2]["status"] == "STARTING", 10), s.events()
        assert all(e[2]["session"] == "default" for e in s.events()), s.events()
    finally:
        s.close()


def test_failures_are_counted_and_logged_without_the_secret(secured):
    _, gw = secured
    before = gw.json("/api/waha/monitoring/stats")["authFailures"]
    for _ in range(3):
        gw.get("/api/waha/status", bearer("guess-" + ALICE[::-1]))
    gw.get("/api/waha/status")
    after = gw.json("/api/waha/monitoring/stats")["authFailures"]
    assert after - before == 4
    assert "wahagate_auth_failures_total 4" in gw.get("/metrics")[2].decode()
    assert wait_until(lambda: "refused a request without a valid client key" in gw.log_text(), 10)
    log = gw.log_text()
    for secret in (ALICE, BOB, OPS, "guess-" + ALICE[::-1]):
        assert secret not in log


def test_auth_failures_are_rate_limited(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"auth": {"required": True, "key": KEYS[:1]},
                       "ratelimit": {"enabled": True, "rate": 1, "burst": 3}})
    # The fixture's readiness check took one token already.
    codes = [gw.get("/api/waha/status", bearer("nope"))[0] for _ in range(6)]
    assert codes[0] == 401 and set(codes) == {401, 429} and codes[-1] == 429, codes


def test_config_errors_name_file_and_line(tmp_path):
    cases = {
        "duplicate": ["a : s1 : default", "a : s2 : default"],
        "empty secret": ["a :  : default"],
        "unknown session": ["a : s1 : nosuch"],
    }
    for what, keys in cases.items():
        path = write_ini(tmp_path / "w.ini", {"upstream": {"sessions": "default"},
                                             "auth": {"required": True, "key": keys}})
        code, _, err = run_gateway_cli(["-t", "-c", path])
        assert code == 1, (what, err)
        assert f"{path}:" in err and "[auth] key" in err, (what, err)
    path = write_ini(tmp_path / "w.ini", {"auth": {"required": True}})
    code, _, err = run_gateway_cli(["-t", "-c", path])
    assert code == 1 and "no [auth] key" in err, err


def test_reload_adds_and_removes_keys_under_load(simulator, gateway, tmp_path):
    sim = simulator("--sessions", "default:WORKING,shop:SCAN_QR_CODE")
    sections = {"upstream": {"sessions": "default,shop"},
                "auth": {"required": True, "key": KEYS[:2]}}
    gw = gateway(sim, sections)
    failures, made = [], [0]
    stop = threading.Event()

    def poll():
        while not stop.is_set() and made[0] < 50000:
            try:
                code, _, body = http_request(gw.port, "GET", "/api/waha/status", bearer(ALICE))
            except OSError as exc:
                failures.append(repr(exc))
                continue
            made[0] += 1
            if code != 200:
                failures.append((code, body[:200]))

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        assert gw.get("/api/waha/status", bearer(OPS))[0] == 401
        # Add ops, remove bob.
        new = dict(sections, auth={"required": True, "key": [KEYS[0], KEYS[2]]})
        write_ini(gw.ini_path, merged(gw, new))
        os.kill(gw.pid, signal.SIGHUP)
        assert wait_until(lambda: gw.get("/api/waha/status", bearer(OPS))[0] == 200, 15), \
            gw.log_text()[-2000:]
        assert wait_until(lambda: gw.get("/api/waha/status", bearer(BOB))[0] == 401, 15)
        assert wait_until(lambda: made[0] >= 50, 20)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    assert not failures, (failures[:5], gw.log_text()[-6000:])
    for secret in (ALICE, BOB, OPS):
        assert secret not in gw.log_text()


def merged(gw, sections):
    """The gateway's own ini sections with SECTIONS laid over them."""
    out = {s: dict(k) for s, k in gw.sections.items()}
    for section, keys in sections.items():
        out.setdefault(section, {}).update(keys)
    return out
