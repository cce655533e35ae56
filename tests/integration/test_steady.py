"""A steady reader never waits for WAHA (issue 14).

The fetcher refreshes an entry that clients read ahead of its expiry
(cache_refresh_due(): at 80% of its period), so a client that keeps reading
always finds fresh data: no cache miss, no answer that waited for WAHA, even
when WAHA is slow to answer. Without refresh-ahead the entry would expire
once per period and the next reader would wait for WAHA's answer."""

import time

PERIOD_MS = 6000
WAHA_DELAY_MS = 800  # well inside the 20% of the period left after refresh-ahead


def test_steady_reader_never_misses_while_waha_is_slow(simulator, gateway, poller):
    sim = simulator()
    gw = gateway(sim, sections={
        "backend": {"status_cache_duration": PERIOD_MS, "session_cache_duration": PERIOD_MS},
        "limits": {"request_timeout": 5000},
    })
    sim.fault("slow", delayMs=WAHA_DELAY_MS, paths="/api/sessions")
    assert gw.status()["status"] == "WORKING"  # the cold read: this one waits
    misses_before = gw.json("/api/waha/monitoring/stats")["cacheMisses"]
    calls_before = sim.session_calls()
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    # Two and a half periods: two refreshes at least.
    assert p.wait_for(lambda st, d: True, 30, since=time.monotonic() + 2.5 * PERIOD_MS / 1000)
    results = p.stop()
    stats = gw.json("/api/waha/monitoring/stats")
    assert sim.session_calls() - calls_before >= 2, "WAHA was not refreshed ahead"
    for _, _, status, doc, error in results:
        assert error is None and status == 200, (status, error)
        assert doc["cache"]["stale"] is False, doc
        assert doc["cache"]["ageMs"] < PERIOD_MS, doc
    # Every read of the steady reader was a hit: none waited for WAHA (a
    # read that waits is a miss), whatever the machine's load (stats reads
    # are not cache reads).
    assert stats["cacheMisses"] == misses_before, stats
