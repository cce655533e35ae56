"""WAHA's own read paths served from the cache (issue 17, [compat] waha_api).

The simulator stands in for WAHA: every answer of the gateway is compared
with what the simulator itself answers to the same request (status code and
body bytes), never with a copy written here. Then: HEAD, the doors (no key,
a wrong key, upstream.api_key, scoped client keys: WAHA's 401 and 403),
stale data in WAHA's shape with X-Cache/Age/Cache-Control, the switch off
(and on again by SIGHUP), and the cost to WAHA of many reads: one period's
calls.
"""

import base64
import json
import os
import signal
import threading
import time

import pytest

from conftest import API_KEY, http_request, wait_until, write_ini, merge_sections

KEY = {"X-Api-Key": API_KEY}


def fetch(port, path, headers=None, method="GET"):
    return http_request(port, method, path, headers)


def same_as_waha(sim, gw, path, headers=KEY, timeout=10.0):
    """Wait until the gateway answers PATH as the simulator does (status and
    bytes; the cache may be one refresh behind). Returns the gateway's
    (status, headers, body), or fails with both answers."""
    seen = {}

    def equal():
        want = fetch(sim.port, path, headers)
        got = fetch(gw.port, path, headers)
        seen.update(want=(want[0], want[2]), got=(got[0], got[2]))
        return got if (got[0], got[2]) == (want[0], want[2]) else None
    got = wait_until(equal, timeout, 0.1)
    assert got, f"{path}: gateway {seen['got']!r} != WAHA {seen['want']!r}"
    return got


@pytest.fixture
def waha(simulator, gateway):
    """WAHA with a working, a stopped and a QR-waiting session, and a
    gateway that lists every session WAHA has."""
    sim = simulator("--sessions", "default:WORKING,idle:STOPPED,shop:SCAN_QR_CODE",
                    "--qr-first-ms", "600000", "--qr-gate-ms", "200")
    gw = gateway(sim, {"upstream": {"sessions": "*"}})
    return sim, gw


SAME_PATHS = [
    "/api/sessions", "/api/sessions?all=true", "/api/sessions?all=True", "/api/sessions?all=1",
    "/api/sessions?all=false", "/api/sessions?all=0", "/api/sessions?all=maybe",
    "/api/sessions/default", "/api/sessions/idle", "/api/sessions/shop", "/api/sessions/nobody",
    "/api/sessions/default/me", "/api/sessions/shop/me", "/api/sessions/idle/me",
    "/api/sessions/nobody/me",
    "/api/default/auth/qr", "/api/idle/auth/qr", "/api/nobody/auth/qr",
    "/api/shop/auth/qr?format=raw", "/api/shop/auth/qr?format=svg",
    "/ping", "/api/server/version", "/api/version",
]


@pytest.mark.parametrize("path", SAME_PATHS)
def test_reads_answer_what_waha_answers(waha, path):
    sim, gw = waha
    status, headers, body = same_as_waha(sim, gw, path)
    if body:
        assert headers.get("Content-Type") == "application/json; charset=utf-8"


def test_qr_image_and_json_are_waha_s(waha):
    sim, gw = waha
    png = same_as_waha(sim, gw, "/api/shop/auth/qr")
    assert png[0] == 200 and png[1]["Content-Type"] == "image/png"
    assert png[2].startswith(b"\x89PNG\r\n\x1a\n")
    as_json = same_as_waha(sim, gw, "/api/shop/auth/qr", dict(KEY, Accept="application/json"))
    assert base64.b64decode(json.loads(as_json[2])["data"]) == png[2]
    # Only exactly "application/json" asks for JSON (WAHA's rule).
    other = fetch(gw.port, "/api/shop/auth/qr", dict(KEY, Accept="application/json, */*"))
    assert other[1]["Content-Type"] == "image/png"


def test_session_object_is_the_list_item_with_engine(waha):
    sim, gw = waha
    one = json.loads(same_as_waha(sim, gw, "/api/sessions/default")[2])
    items = json.loads(same_as_waha(sim, gw, "/api/sessions")[2])
    item = next(i for i in items if i["name"] == "default")
    assert "engine" in one and "engine" not in item
    assert {k: v for k, v in one.items() if k != "engine"} == item
    # Without all=true only running sessions (WAHA: any status but STOPPED).
    assert "idle" not in [i["name"] for i in items]
    everything = json.loads(same_as_waha(sim, gw, "/api/sessions?all=true")[2])
    assert "idle" in [i["name"] for i in everything]


def test_me_is_empty_without_me(waha):
    sim, gw = waha
    status, headers, body = same_as_waha(sim, gw, "/api/sessions/shop/me")
    assert (status, body) == (200, b"") and headers.get("Content-Length") == "0"


def test_server_status_uptime_moves_on(waha):
    sim, gw = waha
    want = json.loads(fetch(sim.port, "/api/server/status", KEY)[2])
    first = fetch(gw.port, "/api/server/status", KEY)
    assert first[0] == 200 and first[1]["Content-Type"].startswith("application/json")
    got = json.loads(first[2])
    assert list(got) == list(want) == ["startTimestamp", "uptime", "worker"]
    assert got["startTimestamp"] == want["startTimestamp"] and got["worker"] == want["worker"]
    # The uptime is WAHA's clock brought up to date, whatever the cache's age.
    later = wait_until(lambda: json.loads(fetch(gw.port, "/api/server/status", KEY)[2])["uptime"]
                       >= got["uptime"] + 300, 10)
    assert later
    now = json.loads(fetch(sim.port, "/api/server/status", KEY)[2])["uptime"]
    assert abs(json.loads(fetch(gw.port, "/api/server/status", KEY)[2])["uptime"] - now) < 1500


def test_health_is_waha_s_and_core_s_422(simulator, gateway):
    plus = simulator()
    gw = gateway(plus)
    code, headers, body = fetch(gw.port, "/health", KEY)
    want = json.loads(fetch(plus.port, "/health", KEY)[2])
    got = json.loads(body)
    assert code == 200 and got["status"] == want["status"] == "ok"
    assert list(got) == list(want) and set(got["details"]) == set(want["details"])
    core = simulator("--core", "--sessions", "default:WORKING")
    gw2 = gateway(core)
    same_as_waha(core, gw2, "/health")  # WAHA Core: its 422, word for word


def test_head_has_the_get_s_head(waha):
    sim, gw = waha
    for path in ("/api/sessions", "/api/sessions/default", "/api/shop/auth/qr", "/ping",
                 "/api/sessions/nobody"):
        get = same_as_waha(sim, gw, path)
        head = fetch(gw.port, path, KEY, method="HEAD")
        assert head[0] == get[0] and head[2] == b"", path
        assert head[1]["Content-Length"] == str(len(get[2])), path
        assert head[1]["Content-Type"] == get[1]["Content-Type"], path


def test_writes_are_not_served(waha):
    _, gw = waha
    code, headers, body = fetch(gw.port, "/api/sessions", KEY, method="POST")
    assert code == 405 and headers["Allow"] == "GET, HEAD"
    assert json.loads(body)["statusCode"] == 405


# --------------------------------------------------------------------------- the doors

def test_upstream_key_is_the_door(waha):
    """[auth] required = false and upstream.api_key set: WAHA's key, or WAHA's 401."""
    sim, gw = waha
    for path in ("/api/sessions", "/api/sessions/default", "/api/default/auth/qr",
                 "/api/shop/auth/qr", "/health", "/api/server/version", "/api/sessions/x/me"):
        for headers in ({}, {"X-Api-Key": "wrong"}, {"X-Api-Key": API_KEY + "x"},
                        {"Authorization": f"Bearer {API_KEY}"}):
            got = fetch(gw.port, path, headers)
            want = fetch(sim.port, path, headers)
            assert (got[0], got[2]) == (want[0], want[2]) == \
                (401, b'{"message":"Unauthorized","statusCode":401}'), (path, headers)
        assert fetch(gw.port, path, KEY)[0] != 401
    # WAHA 2026.4.3+ takes the key in the query too; /ping needs none.
    assert fetch(gw.port, f"/api/sessions?x-api-key={API_KEY}")[0] == 200
    assert fetch(gw.port, "/ping")[0] == 200


def test_no_key_anywhere_is_open(simulator, gateway):
    sim = simulator("--no-api-key", "--qr-gate-ms", "200")
    gw = gateway(sim, {"upstream": {"api_key": ""}})
    same_as_waha(sim, gw, "/api/sessions", {})
    same_as_waha(sim, gw, "/api/default/auth/qr", {})


SCOPED, ADMIN = "shop-only-s3cret", "admin-s3cret"


def test_client_keys_are_scoped_like_waha_s(simulator, gateway):
    """[auth] required: a client key scoped to "shop" gets what WAHA gives a
    session key of "shop"; an admin key (*) what WAHA's key gets."""
    sim = simulator("--sessions", "default:WORKING,shop:SCAN_QR_CODE", "--qr-first-ms", "600000",
                    "--qr-gate-ms", "200", "--session-key", f"{SCOPED}:shop")
    gw = gateway(sim, {"upstream": {"sessions": "*"},
                       "auth": {"required": True,
                                "key": [f"shop : {SCOPED} : shop", f"ops : {ADMIN} : *"]}})
    scoped, admin = {"X-Api-Key": SCOPED}, {"X-Api-Key": ADMIN}
    for path in ("/api/sessions", "/api/sessions?all=true", "/api/sessions/shop",
                 "/api/sessions/default", "/api/sessions/default/me", "/api/default/auth/qr",
                 "/api/shop/auth/qr?format=raw", "/health", "/api/server/version",
                 "/api/server/status", "/api/version"):
        got = same_as_waha(sim, gw, path, scoped)
        if got[0] == 403:
            assert got[2] == b'{"message":"Forbidden","statusCode":403}'
    # The admin key reads what WAHA's own key reads.
    for path in ("/api/sessions", "/api/sessions/default", "/api/server/version"):
        got = fetch(gw.port, path, admin)
        assert (got[0], got[2]) == fetch(sim.port, path, KEY)[0::2], path
    # No key, or one the gateway does not know (WAHA's key is not a client key here).
    for headers in ({}, {"X-Api-Key": API_KEY}):
        assert fetch(gw.port, "/api/shop/auth/qr", headers)[0::2] == \
            (401, b'{"message":"Unauthorized","statusCode":401}')


# --------------------------------------------------------------------------- freshness

def test_cache_headers_and_stale_data_in_waha_s_shape(waha):
    sim, gw = waha
    fresh = same_as_waha(sim, gw, "/api/sessions/default")
    assert fresh[1]["X-Cache"] in ("HIT", "MISS") and "Age" in fresh[1]
    assert wait_until(lambda: fetch(gw.port, "/api/sessions/default", KEY)[1]["X-Cache"] == "HIT",
                      5)
    sim.fault("down")  # WAHA stops answering: the last good answer is kept
    stale = wait_until(lambda: (lambda r: r if r[1]["X-Cache"] == "STALE" else None)(
        fetch(gw.port, "/api/sessions/default", KEY)), 15, 0.1)
    assert stale, "never served as stale"
    assert stale[0] == 200 and stale[2] == fresh[2]
    assert stale[1]["Cache-Control"].startswith("max-age=0")
    assert int(stale[1]["Age"]) >= 1
    listed = fetch(gw.port, "/api/sessions", KEY)
    assert listed[0] == 200 and listed[1]["X-Cache"] == "STALE"
    assert json.loads(listed[2])[0]["name"] == "default"


def test_first_read_waits_for_waha_then_hits(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"backend": {"status_cache_duration": 30000,
                                   "session_cache_duration": 30000}})
    first = fetch(gw.port, "/api/sessions/default/me", KEY)
    assert first[0] == 200 and first[1]["X-Cache"] == "MISS"
    again = fetch(gw.port, "/api/sessions/default/me", KEY)
    assert again[1]["X-Cache"] == "HIT" and again[2] == first[2]


# --------------------------------------------------------------------------- switches

def test_waha_api_off_is_404_and_sighup_turns_it_on(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"compat": {"waha_api": False}})
    for path in ("/api/sessions", "/api/sessions/default", "/ping", "/api/default/auth/qr",
                 "/api/server/version", "/health"):
        code, _, body = fetch(gw.port, path, KEY)
        assert code == 404 and json.loads(body)["error"]["code"] == "not_found", path
    assert fetch(gw.port, "/api/v1/waha/status")[0] == 200  # the other family stays
    assert fetch(gw.port, "/api/waha/status")[0] == 200
    write_ini(gw.ini_path, merge_sections(gw.sections, {"compat": {"waha_api": True}}))
    os.kill(gw.pid, signal.SIGHUP)
    assert wait_until(lambda: fetch(gw.port, "/api/sessions", KEY)[0] == 200, 15), \
        gw.log_text()[-2000:]
    write_ini(gw.ini_path, merge_sections(gw.sections, {"compat": {"waha_api": False}}))
    os.kill(gw.pid, signal.SIGHUP)
    assert wait_until(lambda: fetch(gw.port, "/api/sessions", KEY)[0] == 404, 15)


# --------------------------------------------------------------------------- WAHA's load

def test_many_reads_cost_one_period_of_calls(simulator, gateway):
    """Hundreds of reads of WAHA's paths, from several clients, within one
    period: WAHA sees the calls of one refresh (one list, one details call
    for the object, one version), not one per read."""
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    period = 20000
    gw = gateway(sim, {"upstream": {"sessions": "*"},
                       "backend": {"status_cache_duration": period,
                                   "session_cache_duration": period,
                                   "health_check_cache_duration": period}})
    assert sim.wait_quiet(0.5, 10)
    sim.reset()
    paths = ["/api/sessions", "/api/sessions?all=true", "/api/sessions/default",
             "/api/sessions/default/me", "/api/sessions/shop/me", "/api/version",
             "/api/server/version", "/api/v1/waha/status", "/api/waha/status"]
    counts, errors = [0], []
    started = time.monotonic()

    def reader(offset):
        for n in range(60):
            path = paths[(n + offset) % len(paths)]
            code, _, body = fetch(gw.port, path, KEY)
            if code != 200:
                errors.append((path, code, body[:200]))
            counts[0] += 1
    threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    assert not errors, errors[:5]
    assert counts[0] == 300
    # Refresh-ahead starts at 80% of the period: the reads must end before.
    assert elapsed < period / 1000 * 0.8, f"reads took {elapsed:.1f} s: too slow to judge"
    calls = sim.stats()["calls"]
    assert calls.get("GET /api/sessions", 0) == 1, calls
    assert calls.get("GET /api/sessions/{name}", 0) <= 1, calls
    assert calls.get("GET /api/server/version", 0) <= 1, calls
    assert calls.get("GET /api/version", 0) == 0, calls
    assert calls.get("GET /api/sessions/{name}/me", 0) == 0, calls
    assert sum(calls.values()) <= 3, calls
