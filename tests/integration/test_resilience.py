"""Shielding clients from a failing WAHA (issue 3): retries with backoff and
Retry-After, the circuit breaker's schedule, stale data told honestly until
backend.stale_if_error, and a slow WAHA that must not stall the workers."""

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import SANITIZED, http_request, parse_iso_ms, wait_until

SESSION_CALL = "GET /api/sessions"  # the list: one call refreshes every session
CACHE_CONTROL_RE = re.compile(r"^max-age=(\d+), stale-while-revalidate=(\d+), stale-if-error=(\d+)$")
# Extra time the sanitized build may take for anything timed.
SLACK = 3.0 if SANITIZED else 1.5


def read_in_background(gw, path="/api/waha/status", timeout=30):
    """GET PATH in a thread; returns (thread, result dict with answer and took)."""
    result = {}

    def run():
        t = time.monotonic()
        try:
            result["answer"] = http_request(gw.port, "GET", path, timeout=timeout)
        except OSError as exc:
            result["error"] = repr(exc)
        result["took"] = time.monotonic() - t
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, result


def check_error_503(code, headers, body):
    assert code == 503, body
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    assert isinstance(doc["error"]["code"], str) and doc["error"]["code"], doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    assert re.match(r"^\d+$", headers.get("Retry-After", "")), headers
    return doc


# --------------------------------------------------------------------------- retries

def test_cold_read_gets_data_when_a_retry_outlives_a_short_failure(simulator, gateway):
    max_retries = 3
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"limits": {"max_retries": max_retries, "request_timeout": 4000}})
    sim.fault("error", status=500)
    th, result = read_in_background(gw)
    # The first call fails; WAHA mends before the retries run out.
    assert wait_until(lambda: sim.session_calls() >= 1, 10, 0.003), sim.stats()
    sim.fault("none")
    th.join(30)
    assert "answer" in result, result
    code, _, body = result["answer"]
    assert code == 200, f"the cold read did not get the data a retry brought: {code} {body!r}"
    doc = json.loads(body)
    assert doc["status"] == "WORKING" and doc["cache"]["stale"] is False, doc
    assert doc["upstream"]["healthy"] is True and doc["upstream"]["lastError"] is None, doc
    assert result["took"] <= 4.0 + SLACK, result["took"]
    calls = sim.session_calls()
    assert 2 <= calls <= 1 + max_retries, sim.stats()


def test_cold_failing_refresh_is_one_call_plus_max_retries(simulator, gateway):
    max_retries = 2
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"limits": {"max_retries": max_retries, "request_timeout": 4000}})
    sim.fault("error", status=500)
    t = time.monotonic()
    code, headers, body = gw.get("/api/waha/status")
    took = time.monotonic() - t
    calls_at_answer = sim.session_calls()
    check_error_503(code, headers, body)
    # Full jitter: delays at most 200 ms, then 400 ms (plus the fetcher's tick).
    assert took <= 0.2 + 0.4 + SLACK, took
    assert calls_at_answer == 1 + max_retries, \
        f"{calls_at_answer} calls in the refresh the cold read waited for: {sim.stats()}"
    # Nobody reads any more: whatever refreshes still ran were whole ones.
    assert sim.wait_quiet(1.5, 15)
    total = sim.session_calls()
    assert total % (1 + max_retries) == 0, f"{total} calls are not whole refreshes: {sim.stats()}"
    assert sim.stats()["total"] == total, sim.stats()


@pytest.mark.parametrize("fault", [{"mode": "error", "status": 500}, {"mode": "down"}],
                         ids=["error500", "down"])
def test_failing_refresh_is_one_call_plus_max_retries(simulator, gateway, fault):
    """The first failing refresh after good ones: its first call goes over
    the connection the good calls left open."""
    max_retries = 2
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"limits": {"max_retries": max_retries, "request_timeout": 3000}})
    good = gw.status()
    assert good["status"] == "WORKING"
    # Let a refresh ahead that the first read may have asked for run out.
    assert sim.wait_quiet(1.2, 15)
    sim.fault(**fault)
    sim.reset()
    # The data (1 s) has expired: this read waits for one refresh, which fails.
    code, _, body = gw.get("/api/waha/status")
    calls_at_answer = sim.session_calls()
    assert code == 200, body
    doc = json.loads(body)
    assert doc["status"] == "WORKING" and doc["upstream"]["healthy"] is False, doc
    assert calls_at_answer == 1 + max_retries, \
        (f"one failing refresh with max_retries {max_retries} made {calls_at_answer} "
         f"requests to WAHA: {sim.stats()}")


def test_no_calls_for_an_entry_nobody_reads_while_waha_fails(simulator, gateway):
    period_s = 1.0
    sim = simulator("--sessions", "default:WORKING")
    # The breaker must not be what stops the calls.
    gw = gateway(sim, {"limits": {"max_retries": 0, "request_timeout": 1000},
                       "circuit": {"failure_threshold": 1000}})
    assert gw.status()["status"] == "WORKING"
    assert sim.wait_quiet(1.2, 15)
    sim.fault("error", status=500)
    code, _, body = gw.get("/api/waha/status")  # the last read
    assert code == 200 and json.loads(body)["upstream"]["healthy"] is False, body
    t_last = time.monotonic()
    # That read may still bring a refresh (after a backoff of at most a period).
    while time.monotonic() < t_last + 1.5 * period_s:
        time.sleep(0.05)
    calls = sim.session_calls()
    window = []
    while time.monotonic() < t_last + 1.5 * period_s + 3 * period_s:
        time.sleep(0.1)
        n = sim.session_calls()
        if n != calls + len(window):
            window.append(round(time.monotonic() - t_last, 2))
    assert not window, \
        f"WAHA called at {window} s after the last read, though nobody reads: {sim.stats()}"


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_is_honoured(simulator, gateway, stats_sampler, status):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"limits": {"max_retries": 2, "request_timeout": 5000}})
    sim.fault("error", status=status, retryAfter=1)
    sampler = stats_sampler(sim, 0.005)
    th, result = read_in_background(gw)
    assert sampler.wait_calls(1, 10, SESSION_CALL), sim.stats()
    sim.fault("none")
    th.join(30)
    assert "answer" in result, result
    code, _, body = result["answer"]
    assert code == 200, body
    doc = json.loads(body)
    assert doc["status"] == "WORKING" and doc["upstream"]["healthy"] is True, doc
    times = sampler.wait_calls(2, 5, SESSION_CALL)
    assert times, sim.stats()
    assert len(times) == 2, f"{len(times)} calls: {sim.stats()}"
    gap = times[1] - times[0]
    assert gap >= 0.85, f"retried {gap:.3f} s after a Retry-After: 1"
    assert gap <= 1.0 + SLACK, gap
    assert result["took"] >= 0.85, result["took"]


def test_retry_after_over_a_minute_ends_the_refresh(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"limits": {"max_retries": 3, "request_timeout": 3000}})
    sim.fault("error", status=503, retryAfter=120)
    t = time.monotonic()
    code, headers, body = gw.get("/api/waha/status")
    took = time.monotonic() - t
    check_error_503(code, headers, body)
    assert took <= 1.0 + SLACK, f"waited {took:.2f} s: was the refresh not ended?"
    assert sim.session_calls() == 1, sim.stats()
    # WAHA said 2 minutes: readers that keep asking bring no call meanwhile.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        code, _, body = gw.get("/api/waha/status")
        assert code == 503, body
        time.sleep(0.1)
    assert sim.session_calls() == 1, sim.stats()


# --------------------------------------------------------------------------- circuit breaker

def test_circuit_breaker_schedule(simulator, gateway, poller, stats_sampler):
    threshold, max_retries = 2, 1
    open_s, max_open_s = 1.0, 3.0
    sim = simulator("--sessions", "default:WORKING")
    # Health stays fresh for the whole test, so that only the session's
    # refreshes count against the breaker (the breaker counts every target's).
    gw = gateway(sim, {
        "backend": {"status_cache_duration": 1000, "session_cache_duration": 1000,
                    "health_check_cache_duration": 60000},
        "frontend": {"base_interval": 2000, "authenticated_interval": 3000,
                     "max_interval": 5000, "backoff_multiplier": 2},
        "limits": {"max_retries": max_retries, "request_timeout": 1500},
        "circuit": {"failure_threshold": threshold, "open_duration": 1000,
                    "max_open_duration": 3000},
    })
    good = gw.status()
    assert good["upstream"]["circuit"] == "closed" and good["upstream"]["healthy"] is True, good
    assert gw.json("/api/waha/health")["upstream"]["circuit"] == "closed"
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200, 10)

    sim.fault("down")
    assert wait_until(lambda: sim.stats()["inFlight"] == 0, 10)
    sim.reset()
    t_fault = time.monotonic()
    sampler = stats_sampler(sim, 0.01)

    # It opens after THRESHOLD failed refreshes, each a call and its retries.
    hit = p.wait_for(lambda st, d: st == 200 and d["upstream"]["circuit"] == "open", 15,
                     since=t_fault)
    assert hit, f"the circuit never opened; last {p.latest()}\n{sim.stats()}"
    # (+ 1: libcurl resends the first call once when WAHA hangs up on the
    # connection kept alive from the good calls; test_failing_refresh_is_one_
    # call_plus_max_retries[down] shows that on its own.)
    n0 = sim.stats()["total"]
    assert threshold * (1 + max_retries) <= n0 <= threshold * (1 + max_retries) + 1, \
        (sim.stats(), [round(t - t_fault, 3) for t in sampler.call_times()])
    doc = hit[3]
    assert doc["status"] == "WORKING" and doc["me"] == good["me"], doc
    assert doc["upstream"]["healthy"] is False, doc
    assert isinstance(doc["upstream"]["lastError"], str) and doc["upstream"]["lastError"], doc
    assert doc["cache"]["stale"] is True, doc
    assert doc["poll"]["nextMs"] == 5000, doc  # 3000 x 2, at most max_interval
    h = gw.json("/api/waha/health")
    assert h["upstream"]["circuit"] in ("open", "half-open"), h
    assert h["upstream"]["healthy"] is False and h["healthy"] is False, h

    # While open, only the half-open probes: after 1 s, then 2 s, then 3 s (not 4 s).
    times = sampler.wait_calls(n0 + 3, 1.0 + 2.0 + 3.0 + 3 * SLACK + 2)
    assert times, f"fewer probes than expected: {sampler.call_times()}"
    t_open = times[n0 - 1]
    probes = times[n0:n0 + 3]
    gaps = [probes[0] - t_open, probes[1] - probes[0], probes[2] - probes[1]]
    expected = [open_s, 2 * open_s, max_open_s]
    for i, (gap, want) in enumerate(zip(gaps, expected)):
        assert gap >= want - 0.1, f"probe {i + 1} came {gap:.2f} s after the last call, " \
                                  f"before the open period of {want} s ended; gaps {gaps}"
        assert gap <= want + 0.7 + SLACK, f"probe {i + 1} late: gaps {gaps}"
    assert gaps[2] < 2 * 2 * open_s - 0.3, f"open period not capped at max_open_duration: {gaps}"

    # WAHA is back (slowly: the probe takes 0.7 s, so half-open shows).
    t_back = time.monotonic()
    sim.fault("slow", delayMs=700)

    def closed_fresh(st, d):
        return (st == 200 and d["upstream"]["circuit"] == "closed" and d["cache"]["stale"] is False
                and d["upstream"]["healthy"] is True and d["upstream"]["lastError"] is None)
    done = p.wait_for(closed_fresh, max_open_s + 0.7 + 2 * SLACK + 2, since=t_back)
    assert done, f"did not close; last {p.latest()}; calls {sampler.call_times()}"
    sim.fault("none")
    results = p.stop()
    sampler.stop()
    times = sampler.call_times()
    after_p3 = [t for t in times if t > probes[2]]
    assert after_p3 and after_p3[0] - probes[2] >= max_open_s - 0.1, \
        f"a call {after_p3[0] - probes[2]:.2f} s after the last failed probe; calls {times}"
    assert any(r[2] == 200 and r[3]["upstream"]["circuit"] == "half-open"
               for r in results if r[0] >= t_back), "half-open never shown during the probe"
    for r in results:
        if r[0] >= t_fault:
            assert r[2] == 200, f"answer {r[2]} while WAHA fails: {r}"
            assert r[3]["status"] == "WORKING", r
            if r[0] >= hit[0] and r[1] <= done[0]:
                assert r[3]["upstream"]["circuit"] in ("open", "half-open"), r
                assert r[3]["upstream"]["healthy"] is False, r
    assert parse_iso_ms(done[3]["cache"]["fetchedAt"]) > parse_iso_ms(doc["cache"]["fetchedAt"])
    h = gw.json("/api/waha/health")
    assert h["upstream"]["circuit"] == "closed", h


# --------------------------------------------------------------------------- stale data

def test_stale_data_is_told_honestly_until_stale_if_error(simulator, gateway, poller):
    stale_if_error_s = 3.0
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {
        "backend": {"status_cache_duration": 1000, "session_cache_duration": 1000,
                    "stale_if_error": 3000},
        "frontend": {"base_interval": 1500, "authenticated_interval": 2000,
                     "max_interval": 60000, "backoff_multiplier": 2},
        "limits": {"max_retries": 0, "request_timeout": 1000},
        "circuit": {"failure_threshold": 1000},
    })
    good = gw.status()
    assert good["poll"]["nextMs"] == 2000, good
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200, 10)
    wall_minus_mono = time.time() - time.monotonic()
    t_fault = time.monotonic()
    sim.fault("error", status=500)

    # While stale: 200, honest fields, and the headers say so.
    def stale_answer():
        code, headers, body = gw.get("/api/waha/status")
        if code != 200:
            return None
        d = json.loads(body)
        return (d, headers) if d["cache"]["stale"] and not d["upstream"]["healthy"] else None
    got = wait_until(stale_answer, 1.0 + stale_if_error_s + SLACK, 0.05)
    assert got, f"never served stale: {gw.get('/api/waha/status')}"
    doc, headers = got
    assert doc["status"] == "WORKING" and doc["me"] == good["me"], doc
    assert isinstance(doc["upstream"]["lastError"], str) and doc["upstream"]["lastError"], doc
    assert doc["poll"]["nextMs"] == 4000, doc
    m = CACHE_CONTROL_RE.match(headers.get("Cache-Control", ""))
    assert m, headers.get("Cache-Control")
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (0, 1, 3), \
        headers.get("Cache-Control")
    fetched_mono = parse_iso_ms(doc["cache"]["fetchedAt"]) - wall_minus_mono
    limit = fetched_mono + stale_if_error_s

    # After stale_if_error: 503 with a JSON error and Retry-After.
    hit = p.wait_for(lambda st, d: st == 503, stale_if_error_s + 2 * SLACK + 2, since=t_fault)
    assert hit, f"still served after stale_if_error: {p.latest()}"
    code, headers, body = gw.get("/api/waha/status")
    check_error_503(code, headers, body)
    results = p.stop()
    for started, finished, st, d, err in results:
        if started < t_fault:
            continue
        assert err is None, err
        if st == 200:
            assert started <= limit + 0.1, \
                f"served {started - fetched_mono:.2f} s after the last good data: {d}"
            assert d["status"] == "WORKING" and d["me"] == good["me"], d
            if d["cache"]["stale"] or not d["upstream"]["healthy"]:
                assert d["poll"]["nextMs"] == 4000, d
                assert d["upstream"]["lastSuccessAt"] is not None, d
        else:
            assert st == 503, f"answer {st} while WAHA fails: {d}"
            assert finished >= limit - 0.1, \
                f"503 only {finished - fetched_mono:.2f} s after the last good data: {d}"

    sim.fault("none")
    ok = wait_until(lambda: (lambda r: r[0] == 200 and (lambda d: d["cache"]["stale"] is False
                                                        and d["upstream"]["healthy"] is True)(
        json.loads(r[2])))(gw.get("/api/waha/status")), 10, 0.1)
    assert ok, gw.get("/api/waha/status")


# --------------------------------------------------------------------------- slow WAHA

def test_slow_waha_times_out_and_workers_stay_responsive(simulator, gateway):
    timeout_s = 1.5
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {
        "backend": {"status_cache_duration": 1000, "session_cache_duration": 1000},
        "limits": {"max_retries": 0, "request_timeout": 1500},
    })
    quick = 1.0 if SANITIZED else 0.5

    # Cold: readers wait one upstream timeout, coalesced, while others are served.
    sim.fault("slow", delayMs=6000)
    with ThreadPoolExecutor(max_workers=5) as pool:
        def read(_):
            t = time.monotonic()
            answer = http_request(gw.port, "GET", "/api/waha/status", timeout=30)
            return answer, t, time.monotonic()
        futures = [pool.submit(read, i) for i in range(5)]
        assert wait_until(lambda: sim.stats()["inFlight"] >= 1, 10, 0.01), sim.stats()
        config_times = []
        for _ in range(10):
            t = time.monotonic()
            code, _, _ = gw.get("/api/waha/config", timeout=10)
            assert code == 200
            config_times.append((t, time.monotonic()))
        answers = [f.result(timeout=30) for f in futures]
    waits_until = min(a[2] for a in answers)
    slow_config = [round(b - a, 3) for a, b in config_times if b - a > quick]
    assert not slow_config, f"/api/waha/config took {slow_config} s while a read waited"
    assert config_times[-1][1] < waits_until, "the config reads did not overlap the wait"
    for (code, headers, body), started, finished in answers:
        check_error_503(code, headers, body)
        assert finished - started >= timeout_s * 0.8, finished - started
        assert finished - started <= timeout_s + SLACK, finished - started
    assert sim.session_calls() == 1, sim.stats()

    # Warm: once the data expires, a read waits at most one timeout and gets it stale.
    sim.fault("none")
    assert wait_until(lambda: gw.get("/api/waha/status")[0] == 200, 15, 0.1)
    good = gw.status()
    sim.fault("slow", delayMs=6000)
    calls_before = sim.session_calls()
    deadline = time.monotonic() + 15
    seen = None
    while time.monotonic() < deadline:
        t = time.monotonic()
        code, _, body = gw.get("/api/waha/status")
        took = time.monotonic() - t
        assert code == 200, body
        assert took <= timeout_s + SLACK, f"a read took {took:.2f} s"
        d = json.loads(body)
        assert d["status"] == "WORKING" and d["me"] == good["me"], d
        if d["upstream"]["healthy"] is False:
            seen = d
            break
        time.sleep(0.1)
    assert seen, "the timeout was never reported"
    assert seen["cache"]["stale"] is True, seen
    assert re.search(r"time", seen["upstream"]["lastError"] or "", re.I), seen
    assert sim.session_calls() > calls_before, sim.stats()
