"""Demand-driven refresh: the load on WAHA follows the configuration, not the
number of clients; nothing is fetched while nobody reads; a cold read waits
once for everybody; failures and bad bodies never replace good data."""

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import http_request, wait_until

SESSION_CALL = "GET /api/sessions"  # the list: one call refreshes every session


def calls(stats, key):
    return stats["calls"].get(key, 0)


# --------------------------------------------------------------------------- load

def test_upstream_load_for_100_clients_follows_the_schedule(simulator, gateway, keepalive_client):
    period_s, health_period_s, max_conc = 1.0, 2.0, 2
    sim = simulator("--sessions", "default:WORKING,other:STOPPED")
    gw = gateway(sim, {
        "upstream": {"sessions": "default,other"},
        "backend": {"status_cache_duration": 1000, "session_cache_duration": 1000,
                    "health_check_cache_duration": 2000},
        "limits": {"max_concurrent_requests": max_conc, "request_timeout": 2000},
    })
    paths = ["/api/waha/status", "/api/waha/status?session=other", "/api/waha/status",
             "/api/waha/sessions", "/api/waha/status", "/api/waha/health"]
    # Warm everything up, then count from a clean sheet.
    for p in set(paths):
        assert gw.get(p)[0] == 200, p
    sim.reset()
    t_reset = time.monotonic()

    window_s = 6.0
    clients = [keepalive_client(gw.port, paths=paths, first=i, intervals=(0.01,), max_requests=5000)
               for i in range(100)]
    time.sleep(window_s)
    stats = sim.stats()
    window = time.monotonic() - t_reset
    answered = sum(1 for c in clients for r in c.stop() if r[2] == 200)
    bad = [r for c in clients for r in c.failures()]

    assert not bad, f"{len(bad)} failed requests, e.g. {bad[:5]}"
    assert answered >= 300, f"only {answered} requests: the load was not real"

    bound = int(window / (0.8 * period_s)) + 2
    health_bound = int(window / (0.8 * health_period_s)) + 2
    # One list call refreshes both sessions: none is asked for by name.
    assert not stats["bySession"], stats
    assert calls(stats, SESSION_CALL) <= bound, (window, stats)
    assert calls(stats, "GET /health") <= health_bound, (window, stats)
    # The clients kept reading, so the gateway kept refreshing.
    assert calls(stats, SESSION_CALL) >= 2, stats
    assert calls(stats, "GET /health") >= 1, stats
    unexpected = {k: v for k, v in stats["calls"].items()
                  if k not in (SESSION_CALL, "GET /health", "GET /ping")}
    assert not unexpected, f"unexpected WAHA calls: {unexpected}"
    assert stats["maxInFlight"] <= max_conc, stats


# --------------------------------------------------------------------------- idle

def test_no_calls_when_nobody_ever_reads(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,other:WORKING")
    gateway(sim, {"upstream": {"sessions": "default,other"}})
    t0 = time.monotonic()
    # 3 periods of the shortest schedule (1 s) with no client at all.
    while time.monotonic() - t0 < 3.0:
        assert sim.stats()["total"] == 0, sim.stats()
        time.sleep(0.25)
    assert sim.stats()["total"] == 0, sim.stats()


def test_no_calls_after_readers_stop_and_first_read_is_fresh(simulator, gateway, poller):
    period_s, timeout_s = 1.5, 1.0
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"backend": {"status_cache_duration": 1500, "session_cache_duration": 1500,
                                   "health_check_cache_duration": 1500},
                       "limits": {"request_timeout": 1000}})
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10)
    assert wait_until(lambda: len(p.snapshot()) >= 20, 10)
    p.stop()
    h = gw.get("/api/waha/health")
    assert h[0] == 200
    assert sim.session_calls() >= 1

    # A refresh that was due when the last read came may still run: wait it
    # out (it would come within a period and a request timeout).
    assert sim.wait_quiet(period_s + timeout_s, 15), sim.stats()
    sim.reset()
    quiet_start = time.monotonic()
    while time.monotonic() - quiet_start < 3 * period_s:
        time.sleep(0.25)
        stats = sim.stats()
        assert stats["total"] == 0, f"WAHA called while nobody reads: {stats}"

    t = time.monotonic()
    code, _, body = gw.get("/api/waha/status")
    took_ms = (time.monotonic() - t) * 1000
    stats = sim.stats()
    assert code == 200, body
    doc = json.loads(body)
    assert doc["status"] == "WORKING"
    assert doc["cache"]["stale"] is False, doc
    assert doc["cache"]["ageMs"] <= took_ms + 50, (doc, took_ms)
    assert calls(stats, SESSION_CALL) == 1, stats
    assert stats["total"] == 1, stats


# --------------------------------------------------------------------------- cold read

def test_cold_read_waits_and_coalesces(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"backend": {"status_cache_duration": 10000, "session_cache_duration": 10000},
                       "limits": {"request_timeout": 5000}})
    sim.fault("slow", delayMs=500, paths="/api/sessions")
    barrier = threading.Barrier(50)

    def read(_):
        barrier.wait(timeout=30)
        t = time.monotonic()
        code, _, body = http_request(gw.port, "GET", "/api/waha/status", timeout=30)
        return code, body, time.monotonic() - t

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(read, range(50)))
    stats = sim.stats()
    for code, body, _ in answers:
        assert code == 200, body
        doc = json.loads(body)
        assert doc["status"] == "WORKING" and doc["cache"]["stale"] is False, doc
        assert doc["upstream"]["healthy"] is True, doc
    assert max(a[2] for a in answers) >= 0.45, "nobody waited for the slow fetch"
    assert calls(stats, SESSION_CALL) == 1, stats


# --------------------------------------------------------------------------- WAHA down

@pytest.mark.parametrize("fault", [{"mode": "down"}, {"mode": "slow", "delayMs": 8000}],
                         ids=["down", "timeout"])
def test_cold_start_with_waha_down_gives_503(simulator, gateway, fault):
    request_timeout_s, slack = 1.0, 4.0
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"limits": {"request_timeout": 1000}})
    sim.fault(**fault)
    t = time.monotonic()
    code, headers, body = gw.get("/api/waha/status")
    took = time.monotonic() - t
    assert code == 503, body
    assert took <= request_timeout_s + slack, took
    doc = json.loads(body)
    assert set(doc) == {"error"} and isinstance(doc["error"]["code"], str), doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
    assert headers.get("Content-Type", "").startswith("application/json")
    assert re.match(r"^\d+$", headers.get("Retry-After", "")), headers
    # Once WAHA answers, the next reads get its data.
    sim.fault("none")
    assert wait_until(lambda: gw.get("/api/waha/status")[0] == 200, 15, 0.1)
    doc = gw.status()
    assert doc["status"] == "WORKING" and doc["upstream"]["healthy"] is True, doc


def test_no_waha_at_all_gives_503(gateway, tmp_path):
    # Nothing listens on the upstream port.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    gw = gateway(None, {"limits": {"request_timeout": 1000}},
                 upstream_url=f"http://127.0.0.1:{dead}")
    code, headers, body = gw.get("/api/waha/status")
    assert code == 503, body
    assert "error" in json.loads(body) and headers.get("Retry-After")
    code, headers, body = gw.get("/api/waha/health")
    assert code == 503, body


@pytest.mark.parametrize("fault", [{"mode": "down"}, {"mode": "error", "status": 500},
                                   {"mode": "error", "status": 503, "retryAfter": 2},
                                   {"mode": "slow", "delayMs": 4000}],
                         ids=["down", "error500", "error503", "timeout"])
def test_waha_failing_after_data_serves_stale(simulator, gateway, poller, fault):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"limits": {"request_timeout": 1000}})
    good = gw.status()
    assert good["status"] == "WORKING" and good["cache"]["stale"] is False
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200, 10)
    t_fault = time.monotonic()
    sim.fault(**fault)
    # Calls that began before the fault may still read the session: let them end.
    assert wait_until(lambda: sim.stats()["inFlight"] == 0, 10)
    sim.set_session("default", "STOPPED")  # the gateway cannot see this

    def degraded(st, d):
        return (st == 200 and d["cache"]["stale"] is True and d["upstream"]["healthy"] is False
                and d["upstream"]["lastError"])
    hit = p.wait_for(degraded, 1.0 + 1.0 + 8.0, since=t_fault)
    assert hit, f"never served stale+unhealthy; last {p.latest()}"
    # Keep reading for a while: it must stay that way.
    t_hit = hit[0]
    assert wait_until(lambda: p.latest()[0] > t_hit + 1.5, 10)
    results = p.stop()
    after_fault = [r for r in results if r[0] >= t_fault]
    assert after_fault
    for r in after_fault:
        assert r[2] == 200, f"answer {r[2]} while WAHA fails: {r}"
        assert r[3]["status"] == "WORKING" and r[3]["me"] == good["me"], r
        assert r[3]["authenticated"] is True, r
    for r in after_fault:
        if r[0] > t_hit:
            assert degraded(r[2], r[3]), f"flipped back while WAHA still fails: {r}"
            assert isinstance(r[3]["upstream"]["lastError"], str)
            assert r[3]["upstream"]["lastSuccessAt"] == hit[3]["upstream"]["lastSuccessAt"], r
            assert r[3]["cache"]["fetchedAt"] == hit[3]["cache"]["fetchedAt"], r

    # WAHA is back: the change it made meanwhile shows, healthy and fresh.
    sim.fault("none")
    ok = wait_until(lambda: (lambda d: d["status"] == "STOPPED" and d["cache"]["stale"] is False
                             and d["upstream"]["healthy"] is True
                             and d["upstream"]["lastError"] is None)(gw.status()),
                    1.0 + 1.0 + 16.0, 0.1)
    assert ok, f"did not recover: {gw.status()}"


# --------------------------------------------------------------------------- bad bodies

@pytest.mark.parametrize("fault", [{"mode": "garbage"}, {"mode": "oversized"},
                                   {"mode": "error", "status": 500},
                                   {"mode": "unauthorized"}],
                         ids=["garbage", "oversized", "error500", "unauthorized"])
def test_bad_upstream_answers_never_replace_good_data(simulator, gateway, poller, fault):
    sim = simulator("--sessions", "default:WORKING")
    # The breaker is not what this test is about: on a slow machine enough
    # refreshes may fail to open it, and the recovery would wait its 30 s.
    gw = gateway(sim, {"limits": {"request_timeout": 2000},
                       "circuit": {"failure_threshold": 1000}})
    good = gw.status()
    assert good["status"] == "WORKING"
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200, 10)
    # WAHA's session changes, but every answer is bad: the gateway must not
    # take the bad body (the oversized one is a valid session object of
    # "default" with 2 MB of padding, saying STOPPED).
    t_fault = time.monotonic()
    sim.fault(**fault)
    assert wait_until(lambda: sim.stats()["inFlight"] == 0, 10)
    sim.set_session("default", "STOPPED")
    sim.reset()

    hit = p.wait_for(lambda st, d: st == 200 and d["upstream"]["healthy"] is False
                     and d["upstream"]["lastError"], 1.0 + 2.0 + 8.0, since=t_fault)
    assert hit, f"the failure was never reported; last {p.latest()}"
    # Several more refresh attempts with bad answers.
    assert wait_until(lambda: sim.session_calls() >= 3, 15), sim.stats()
    results = p.stop()
    for r in results:
        if r[0] >= t_fault:
            assert r[2] == 200, r
            assert r[3]["status"] == "WORKING" and r[3]["me"] == good["me"], \
                f"a bad answer replaced the good data: {r}"

    if fault["mode"] == "unauthorized":
        pattern = re.compile(r"api.?key|401|unauthori", re.I)
        key_lines = [line for line in gw.log_text().splitlines() if pattern.search(line)]
        errors = [line for line in key_lines if "[error]" in line]
        assert len(errors) == 1, \
            f"api key problem reported {len(errors)} times at error level:\n" + "\n".join(key_lines)
        # Not once per call: more failed calls of the same entry add no line.
        calls_before = sim.session_calls()
        assert wait_until(lambda: gw.status() and sim.session_calls() >= calls_before + 2, 15, 0.1)
        again = [line for line in gw.log_text().splitlines() if pattern.search(line)]
        assert again == key_lines, "\n".join(again)

    for path in ("/api/waha/status", "/api/waha/health", "/api/waha/sessions",
                 "/api/waha/sessions/default"):
        assert b"simkey" not in gw.get(path)[2], path
    assert "simkey" not in gw.log_text(), "the log shows the api key"

    sim.fault("none")
    assert wait_until(lambda: gw.status()["status"] == "STOPPED", 1.0 + 2.0 + 16.0, 0.1), \
        (gw.status(), gw.log_text())
