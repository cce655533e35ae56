"""Push with nothing to set up in WAHA (issue 18): the fetcher keeps one
WebSocket to WAHA's /ws (server/fetcher/events.c), subscribed to
session.status, and applies each event as a verified webhook is applied.

The simulator serves /ws as WAHA does (scripts/waha_sim_ws.py): the
envelope of every status change, a 1008 close for a bad key, heartbeats,
and controls that drop every stream or refuse /ws."""

import json
import time

from conftest import SANITIZED, Stream, wait_until

SLACK = 3.0 if SANITIZED else 1.0
FAST = ("--start-delay-ms", "200", "--engine-delay-ms", "50", "--qr-gate-ms", "1000")
LIST = "GET /api/sessions"
# Polling alone would take a minute to see a change: whatever is seen
# sooner came through the stream.
SLOW_POLL = {"status_cache_duration": 60000, "session_cache_duration": 60000}


def events_state(gw):
    return gw.json("/api/waha/monitoring/stats")["events"]


def events_gateway(gateway, sim, **sections):
    merged = {"upstream": {"events": "auto"}, "backend": dict(SLOW_POLL)}
    for name, keys in sections.items():
        merged.setdefault(name, {}).update(keys)
    gw = gateway(sim, sections=merged)
    assert wait_until(lambda: events_state(gw) == "connected", 10 + SLACK), gw.log_text()
    return gw


def ws_stats(sim):
    return sim.control("GET", "/_sim/ws")


def test_a_change_reaches_status_and_subscribers_without_a_webhook(simulator, gateway):
    sim = simulator(*FAST)
    gw = events_gateway(gateway, sim)
    assert gw.status()["status"] == "WORKING"
    stream = Stream(gw.port, "/api/waha/events?session=default")
    try:
        assert stream.wait_for(lambda e: e[2]["status"] == "WORKING", 10)
        # The list call the event asks for (the rest of the object) is slowed
        # down, so the event's own effect shows first.
        sim.fault("slow", delayMs=1500, paths="/api/sessions")
        sim.set_session("default", "STOPPED")
        got = stream.wait_for(lambda e: e[2]["status"] == "STOPPED", 5 + SLACK)
        assert got and got[0][2]["cache"]["source"] == "events", got
    finally:
        stream.close()
    status = gw.status()
    assert status["status"] == "STOPPED", status
    stats = gw.json("/api/waha/monitoring/stats")
    assert stats["events"] == "connected" and stats["webhooksReceived"] == 0, stats
    metrics = gw.get("/metrics")[2].decode()
    assert "wahagate_upstream_events_connected 1" in metrics
    total = [l for l in metrics.splitlines() if l.startswith("wahagate_upstream_events_total ")]
    assert total and float(total[0].split()[1]) >= 1, total


def test_calls_follow_the_safety_interval_while_the_stream_is_up(simulator, gateway, poller):
    """Polled every 0.5 s, a session costs WAHA a list call per 0.5 s; with the
    stream up, one per webhook.safety_interval (3 s here)."""
    sim = simulator(*FAST)
    gw = events_gateway(gateway, sim, backend={"status_cache_duration": 500,
                                               "session_cache_duration": 500},
                        webhook={"safety_interval": 3000})
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10)
    time.sleep(0.5)  # past the first refresh after the stream came up
    before = sim.stats()["calls"].get(LIST, 0)
    t0 = time.monotonic()
    assert p.wait_for(lambda st, d: True, 20, since=t0 + 6.0)
    calls = sim.stats()["calls"].get(LIST, 0) - before
    elapsed = time.monotonic() - t0
    assert calls <= elapsed / 3.0 + 1, f"{calls} list calls in {elapsed:.1f} s"
    bad = [r for r in p.stop() if r[2] != 200]
    assert not bad, bad[:3]


def test_a_dropped_stream_falls_back_to_polling_and_reconnects(simulator, gateway, poller):
    sim = simulator(*FAST)
    gw = events_gateway(gateway, sim, backend={"status_cache_duration": 1000,
                                               "session_cache_duration": 1000},
                        webhook={"safety_interval": 60000})
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10)
    connects = ws_stats(sim)["connectsTotal"]
    sim.control("POST", "/_sim/ws", {"mode": "freeze"})
    sim.control("POST", "/_sim/ws/drop", {"how": "abrupt"})
    assert wait_until(lambda: events_state(gw) != "connected", 5 + SLACK)
    # Polling again, every status_cache_duration.
    before = sim.stats()["calls"].get(LIST, 0)
    assert wait_until(lambda: sim.stats()["calls"].get(LIST, 0) >= before + 2, 5 + SLACK), \
        sim.stats()
    sim.set_session("default", "STOPPED")  # no stream: polling sees it
    assert wait_until(lambda: gw.status()["status"] == "STOPPED", 5 + SLACK)
    sim.control("POST", "/_sim/ws", {"mode": "normal"})
    assert wait_until(lambda: events_state(gw) == "connected", 10 + SLACK), gw.log_text()
    assert ws_stats(sim)["connectsTotal"] > connects
    assert sim.wait_quiet(0.3, 5 + SLACK)  # the catch-up list call is over
    # The list call the event asks for is slowed down, so the event's own
    # effect shows first.
    sim.fault("slow", delayMs=1500, paths="/api/sessions")
    t_change = time.monotonic()
    sim.set_session("default", "WORKING")
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING"
                      and d["cache"]["source"] == "events", 5 + SLACK, since=t_change), \
        p.latest()
    p.stop()


def test_a_change_missed_while_the_stream_was_down_is_caught_up_on_reconnect(simulator,
                                                                            gateway, poller):
    """WAHA does not replay events: what changed while no stream was up is
    fetched once when it comes back, not a whole polling period later."""
    sim = simulator(*FAST)
    gw = events_gateway(gateway, sim)  # polling alone: once a minute
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING", 10)
    sim.control("POST", "/_sim/ws", {"mode": "notfound"})
    sim.control("POST", "/_sim/ws/drop", {"how": "abrupt"})
    assert wait_until(lambda: events_state(gw) != "connected", 5 + SLACK)
    sim.set_session("default", "STOPPED")  # no stream, no webhook: missed
    lists = sim.stats()["calls"].get(LIST, 0)
    sim.control("POST", "/_sim/ws", {"mode": "normal"})
    # The gateway tries again with a growing delay (a few seconds at first).
    assert wait_until(lambda: events_state(gw) == "connected", 20 + SLACK), gw.log_text()
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "STOPPED", 5 + SLACK), \
        p.latest()
    assert sim.stats()["calls"].get(LIST, 0) >= lists + 1
    p.stop()


def test_a_refusal_is_logged_once_and_waha_is_not_hammered(simulator, gateway):
    sim = simulator(*FAST)
    sim.control("POST", "/_sim/ws", {"mode": "notfound"})
    gw = gateway(sim, sections={"upstream": {"events": "auto"}, "log": {"level": "debug"}})
    assert wait_until(lambda: events_state(gw) == "refused", 10 + SLACK), gw.log_text()
    assert gw.status()["status"] == "WORKING"  # polling serves meanwhile
    time.sleep(3.0)  # a window in which a hammering client would retry
    assert ws_stats(sim)["connectsTotal"] == 1, ws_stats(sim)
    refusals = [l for l in gw.log_text().splitlines()
                if "refused" in l and ("/ws" in l or "WebSocket" in l) and "[debug]" not in l]
    assert len(refusals) == 1, refusals


def test_a_bad_key_is_refused_and_never_logged(simulator, gateway):
    key = "wrong-key-0123456789"
    sim = simulator(*FAST)
    gw = gateway(sim, sections={"upstream": {"events": "auto", "api_key": key},
                                "log": {"level": "debug"}})
    assert wait_until(lambda: events_state(gw) == "refused", 10 + SLACK), gw.log_text()
    time.sleep(2.0)
    assert ws_stats(sim)["connectsTotal"] == 1, ws_stats(sim)
    assert key not in gw.log_text()
    stats_text = json.dumps(gw.json("/api/waha/monitoring/stats"))
    assert key not in stats_text and key not in gw.get("/metrics")[2].decode()
    assert key not in gw.get("/api/waha/health")[2].decode()


def test_off_keeps_no_stream(simulator, gateway):
    sim = simulator(*FAST)
    gw = gateway(sim, sections={"upstream": {"events": "off"}})
    assert gw.status()["status"] == "WORKING"
    time.sleep(1.0)
    assert events_state(gw) == "off"
    assert ws_stats(sim)["connectsTotal"] == 0
