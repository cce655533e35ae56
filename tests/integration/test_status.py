"""GET /api/waha/status: the status object, its headers, change propagation
and conditional requests (docs/design.md, Contract: HTTP endpoints, Status object)."""

import json
import re
import time

import pytest

from conftest import ISO_MS_RE, parse_iso_ms, wait_until

# rawStatus and changedAt came with flap smoothing (issue 3).
STATUS_KEYS = {"session", "status", "rawStatus", "changedAt", "authenticated", "me",
               "upstream", "cache", "poll"}
UPSTREAM_KEYS = {"healthy", "circuit", "lastSuccessAt", "lastError"}
CACHE_KEYS = {"source", "fetchedAt", "ageMs", "maxAgeMs", "stale"}

STATUS_DURATION = 5000
BASE_INTERVAL = 7000
AUTH_INTERVAL = 11000
SHOP_ME = {"id": "11111111111@c.us", "pushName": "Shop"}

# (session name, WAHA status, me the simulator reports)
CASES = [
    ("stopped1", "STOPPED", None),
    ("starting1", "STARTING", None),
    ("qr1", "SCAN_QR_CODE", None),
    ("working1", "WORKING", SHOP_ME),
    ("nome1", "WORKING", None),
    ("failed1", "FAILED", None),
    ("passkey1", "PASSKEY_REQUIRED", None),  # a status newer than the gateway
]


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_status_object(doc, headers, name, status, me, max_age_ms=STATUS_DURATION,
                        base_interval=BASE_INTERVAL, auth_interval=AUTH_INTERVAL):
    """Every field of a fresh, healthy status object, and its headers."""
    where = f"session {name} ({status}): {doc}"
    keys = set(doc)
    assert keys == STATUS_KEYS, where
    assert doc["session"] == name, where
    assert doc["status"] == status, where
    assert doc["rawStatus"] == status, where
    assert isinstance(doc["changedAt"], str) and ISO_MS_RE.match(doc["changedAt"]), where
    assert doc["authenticated"] is (status == "WORKING"), where
    assert doc["me"] == me, where

    up = doc["upstream"]
    assert set(up) == UPSTREAM_KEYS, where
    assert up["healthy"] is True, where
    assert up["circuit"] == "closed", where
    assert isinstance(up["lastSuccessAt"], str) and ISO_MS_RE.match(up["lastSuccessAt"]), where
    assert up["lastError"] is None, where

    cache = doc["cache"]
    assert set(cache) == CACHE_KEYS, where
    assert cache["source"] == "poll", where
    assert isinstance(cache["fetchedAt"], str) and ISO_MS_RE.match(cache["fetchedAt"]), where
    assert abs(parse_iso_ms(cache["fetchedAt"]) - time.time()) < 60, where
    assert abs(parse_iso_ms(up["lastSuccessAt"]) - parse_iso_ms(cache["fetchedAt"])) < 60, where
    assert is_int(cache["ageMs"]) and 0 <= cache["ageMs"] < max_age_ms, where
    assert cache["maxAgeMs"] == max_age_ms, where
    assert cache["stale"] is False, where

    assert doc["poll"] == {"nextMs": auth_interval if status == "WORKING" else base_interval}, where

    assert headers.get("Content-Type", "").startswith("application/json"), headers
    etag = headers.get("ETag")
    assert etag and re.match(r'^(W/)?"[^"]+"$', etag), f"ETag {etag!r}"
    m = re.match(r"^max-age=(\d+), stale-while-revalidate=(\d+), stale-if-error=(\d+)$",
                 headers.get("Cache-Control", ""))
    assert m, f"Cache-Control {headers.get('Cache-Control')!r}"
    assert int(m.group(1)) <= max_age_ms // 1000, headers.get("Cache-Control")
    assert int(m.group(2)) == max_age_ms // 1000, headers.get("Cache-Control")
    assert int(m.group(3)) == 86400, headers.get("Cache-Control")
    age = headers.get("Age")
    assert age is not None and age.isdigit(), f"Age {age!r}"
    assert int(age) <= cache["ageMs"] // 1000 + 1, (age, cache["ageMs"])


@pytest.fixture(scope="module")
def status_env(module_procs):
    sim = module_procs.simulator(
        "--sessions", ",".join(f"{n}:{s}" for n, s, _ in CASES))
    for name, status, me in CASES:
        sim.set_session(name, status, me=me)
    names = [n for n, _, _ in CASES]
    gw = module_procs.gateway(sim, {
        "upstream": {"sessions": ",".join(names)},
        "backend": {"status_cache_duration": STATUS_DURATION,
                    "session_cache_duration": STATUS_DURATION},
        "frontend": {"base_interval": BASE_INTERVAL, "authenticated_interval": AUTH_INTERVAL,
                     "max_interval": 60000},
        "limits": {"request_timeout": 3000},
    })
    return sim, gw


@pytest.mark.parametrize("name,status,me", CASES, ids=[c[1] + "-" + c[0] for c in CASES])
def test_status_object_fields(status_env, name, status, me):
    sim, gw = status_env
    code, headers, body = gw.get(f"/api/waha/status?session={name}")
    assert code == 200, body
    check_status_object(json.loads(body), headers, name, status, me)


def test_status_without_session_is_first_tracked(status_env):
    sim, gw = status_env
    first_name, first_status, first_me = CASES[0]
    code, headers, body = gw.get("/api/waha/status")
    assert code == 200, body
    check_status_object(json.loads(body), headers, first_name, first_status, first_me)


def test_status_change_appears_within_one_period(simulator, gateway, poller):
    period, timeout, slack = 1.0, 1.0, 3.0
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"backend": {"status_cache_duration": 1000, "session_cache_duration": 1000},
                       "limits": {"request_timeout": 1000}})
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING", 10), p.snapshot()[-5:]

    for new_status in ("STOPPED", "SCAN_QR_CODE", "WORKING", "FAILED"):
        t0 = time.monotonic()
        sim.set_session("default", new_status)
        hit = p.wait_for(lambda st, d: st == 200 and d and d["status"] == new_status,
                         period + timeout + slack + 5, since=t0)
        assert hit, f"{new_status} never served; last: {p.latest()}"
        elapsed = hit[1] - t0
        assert elapsed <= period + timeout + slack, \
            f"{new_status} served {elapsed:.2f} s after the change (bound {period + timeout + slack} s)"
        assert hit[3]["authenticated"] is (new_status == "WORKING")
    results = p.stop()
    bad = [r for r in results if r[2] != 200]
    assert not bad, f"non-200 answers while polling: {bad[:5]}"
    served = {r[3]["status"] for r in results}
    assert served <= {"WORKING", "STOPPED", "SCAN_QR_CODE", "FAILED"}, served


def test_conditional_requests(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"backend": {"status_cache_duration": 3000, "session_cache_duration": 3000}})
    path = "/api/waha/status"

    def first_etag():
        code, headers, body = gw.get(path)
        assert code == 200, body
        return headers["ETag"], json.loads(body)

    # A matching tag gives 304, no body, the same ETag. The tag may move on
    # between two requests (a refresh); a 200 then must carry another tag.
    saw_304 = False
    for _ in range(10):
        etag, doc = first_etag()
        assert doc["status"] == "WORKING"
        code, headers, body = gw.get(path, {"If-None-Match": etag})
        if code == 304:
            assert body == b"", body
            assert headers.get("ETag") == etag, headers
            saw_304 = True
            break
        assert code == 200 and headers.get("ETag") != etag, (code, headers, body)
    assert saw_304, "If-None-Match with the current ETag never gave 304"

    # A list containing the tag matches too.
    etag, _ = first_etag()
    code, headers, body = gw.get(path, {"If-None-Match": f'W/"nope", {etag}'})
    assert code in (304, 200), code
    if code == 200:
        assert headers["ETag"] != etag

    # "*" always matches existing data; a garbage tag never does.
    code, headers, body = gw.get(path, {"If-None-Match": "*"})
    assert code == 304 and body == b"", (code, body)
    code, headers, body = gw.get(path, {"If-None-Match": '"garbage"'})
    assert code == 200 and json.loads(body)["status"] == "WORKING", (code, body)

    # After a change, the old tag gives 200 with the new status and a new tag.
    old_etag, _ = first_etag()
    sim.set_session("default", "STOPPED")

    def changed():
        c, h, b = gw.get(path, {"If-None-Match": old_etag})
        if c == 200 and json.loads(b)["status"] == "STOPPED":
            return h, b
        assert c in (200, 304), (c, b)
        return None
    got = wait_until(changed, 3.0 + 2.0 + 5.0, 0.05)
    assert got, "the old ETag never gave the new status"
    headers, body = got
    assert headers["ETag"] != old_etag
    code, h2, b2 = gw.get(path, {"If-None-Match": headers["ETag"]})
    assert (code == 304 and b2 == b"") or (code == 200 and h2["ETag"] != headers["ETag"]), (code, b2)


def test_head_status(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim)
    gw.json("/api/waha/status")
    code, headers, body = gw.request("HEAD", "/api/waha/status")
    assert code == 200 and body == b""
    assert headers.get("Content-Type", "").startswith("application/json")
    assert headers.get("ETag")
