"""As many sessions as WAHA has, at the cost of one (issue 16).

server.max_sessions sizes the region; what WAHA has beyond it is counted and
logged once, never dropped in silence. One GET /api/sessions?all=true per
period refreshes every tracked session; a session's details (its engine)
are asked only for a session whose whole object is read, at most once per
session_cache_duration; nothing that nobody reads is asked at all."""

import http.client
import json
import re
import time

from conftest import SANITIZED, wait_until

SLACK = 3.0 if SANITIZED else 1.0
FAST = ("--start-delay-ms", "200", "--engine-delay-ms", "50", "--qr-gate-ms", "1000")
LIST = "GET /api/sessions"
DETAILS = "GET /api/sessions/{name}"


def calls(sim, key):
    return sim.stats()["calls"].get(key, 0)


def read_all(port, names, rounds=1):
    """Read the status of every session in NAMES on one keep-alive
    connection: the statuses seen, in order."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    seen = []
    try:
        for _ in range(rounds):
            for name in names:
                conn.request("GET", f"/api/waha/status?session={name}")
                resp = conn.getresponse()
                body = resp.read()
                assert resp.status == 200, (name, resp.status, body)
                seen.append(json.loads(body)["status"])
    finally:
        conn.close()
    return seen


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in the metrics")


def test_sessions_beyond_max_sessions_are_counted_and_logged_once(simulator, gateway):
    sim = simulator(*FAST, "--session-count", "30")  # and default: 31
    gw = gateway(sim, sections={"server": {"max_sessions": 20},
                                "upstream": {"sessions": "*"}})
    listed = gw.json("/api/waha/sessions")
    assert len(listed) == 20, [s["name"] for s in listed]
    stats = gw.json("/api/waha/monitoring/stats")
    assert stats["untrackedSessions"] == 11, stats
    assert metric(gw.get("/metrics")[2].decode(), "wahagate_sessions_untracked") == 11
    before = calls(sim, LIST)
    assert wait_until(lambda: gw.json("/api/waha/sessions") and
                      calls(sim, LIST) >= before + 2, 10, 0.1)
    lines = [l for l in gw.log_text().splitlines() if "more than server.max_sessions" in l]
    assert len(lines) == 1 and "11 sessions" in lines[0], lines


def test_calls_stay_flat_in_the_number_of_sessions(simulator, gateway):
    """200 sessions read over and over cost WAHA one list call per period, no
    per-session call; a session's whole object costs one details call, once
    per session_cache_duration."""
    sim = simulator(*FAST, "--session-count", "200")
    gw = gateway(sim, sections={
        "upstream": {"sessions": "*"},
        "backend": {"status_cache_duration": 2000, "session_cache_duration": 2000},
    })
    names = [f"s{i}" for i in range(1, 201)]
    assert set(read_all(gw.port, names)) == {"WORKING"}
    sim.reset()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5.0:  # two and a half periods
        read_all(gw.port, names)
    elapsed = time.monotonic() - t0
    stats = sim.stats()
    assert stats["calls"].get(DETAILS, 0) == 0, stats["calls"]
    assert 1 <= stats["calls"].get(LIST, 0) <= elapsed / 2.0 * 1.25 + 2, stats["calls"]
    assert set(stats["calls"]) <= {LIST, "GET /health"}, stats["calls"]
    # One object: its details once, then from the cache.
    sim.reset()
    for _ in range(20):
        code, _, body = gw.get("/api/waha/sessions/s7")
        assert code == 200, body
        assert json.loads(body)["engine"]["engine"] == "WEBJS", body
    assert calls(sim, DETAILS) == 1, sim.stats()["calls"]
    assert sim.stats()["bySession"] == {"s7": 1}, sim.stats()


def test_qr_codes_are_asked_only_for_sessions_read(simulator, gateway):
    sim = simulator(*FAST, "--sessions", "q1:SCAN_QR_CODE,q2:SCAN_QR_CODE,q3:SCAN_QR_CODE")
    gw = gateway(sim, sections={"upstream": {"sessions": "*"}})
    assert {s["status"] for s in gw.json("/api/waha/sessions")} == {"SCAN_QR_CODE"}
    code, headers, body = gw.get("/api/waha/sessions/q2/qr")
    assert code == 200 and headers["Content-Type"] == "image/png", (code, body[:100])
    by_session = sim.stats()["bySession"]
    assert by_session.get("q2", 0) >= 1, by_session
    assert "q1" not in by_session and "q3" not in by_session, by_session
