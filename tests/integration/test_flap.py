"""Flap smoothing (issue 3): a change away from WORKING is published only
after it lasted backend.flap_hold; a recovery to WORKING at once; a flap
shorter than the hold never. rawStatus shows what WAHA said meanwhile,
changedAt when the published status last changed. (flap_hold 0, the
harness's default, publishes at once: test_status.py and test_webhooks.py.)"""

import time

from conftest import SANITIZED, parse_iso_ms, wait_until

HOLD_S = 1.5
SLACK = 3.0 if SANITIZED else 1.5


def test_change_away_from_working_is_held_then_published(simulator, gateway, poller):
    period_s = 0.5
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"backend": {"flap_hold": 1500, "status_cache_duration": 500,
                                   "session_cache_duration": 500},
                       "limits": {"request_timeout": 1000}})
    first = gw.status()
    assert first["status"] == "WORKING" and first["rawStatus"] == "WORKING", first
    changed0 = first["changedAt"]
    parse_iso_ms(changed0)
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10)

    t_set, wall_set = time.monotonic(), time.time()
    sim.set_session("default", "STARTING")
    published = p.wait_for(lambda st, d: st == 200 and d["status"] == "STARTING",
                           period_s + HOLD_S + SLACK + 2, since=t_set)
    assert published, f"never published; last {p.latest()}"
    assert published[1] >= t_set + HOLD_S, \
        f"published {published[1] - t_set:.2f} s after WAHA changed, before the hold of {HOLD_S} s"
    assert published[0] <= t_set + period_s + HOLD_S + SLACK, published[0] - t_set
    d = published[3]
    assert d["rawStatus"] == "STARTING" and d["authenticated"] is False, d
    assert d["changedAt"] != changed0, d
    changed1 = parse_iso_ms(d["changedAt"])
    assert wall_set + HOLD_S - 0.1 <= changed1 <= time.time() + 0.1, (wall_set, d)

    for r in p.snapshot():
        assert r[2] == 200, r
        assert r[3]["status"] in ("WORKING", "STARTING"), \
            f"served status {r[3]['status']!r}, which WAHA never said: {r}"
        assert r[3]["rawStatus"] in ("WORKING", "STARTING"), \
            f"served rawStatus {r[3]['rawStatus']!r}, which WAHA never said: {r}"
    # The gateway saw the change at t_set at the earliest: until t_set + hold
    # it must still publish WORKING.
    held = [r for r in p.snapshot() if t_set <= r[0] and r[1] < t_set + HOLD_S]
    assert any(r[3]["rawStatus"] == "STARTING" for r in held), \
        "the change was never seen as rawStatus during the hold"
    for r in held:
        assert r[3]["status"] == "WORKING" and r[3]["authenticated"] is True, \
            f"published during the hold: {r}"
        assert r[3]["changedAt"] == changed0, r
    between = [r for r in p.snapshot() if t_set <= r[0] and r[1] < published[0]]
    for r in between:
        assert r[3]["status"] == "WORKING", f"published, then not: {r}"

    # A recovery to WORKING is published as soon as it is seen.
    t_back, wall_back = time.monotonic(), time.time()
    sim.set_session("default", "WORKING")
    back = p.wait_for(lambda st, d: st == 200 and d["rawStatus"] == "WORKING",
                      period_s + SLACK + 2, since=t_back)
    assert back, f"the recovery was never seen; last {p.latest()}"
    assert back[3]["status"] == "WORKING", f"a recovery to WORKING was held: {back}"
    assert back[3]["authenticated"] is True, back
    changed2 = parse_iso_ms(back[3]["changedAt"])
    assert wall_back - 0.1 <= changed2 <= time.time() + 0.1, (wall_back, back)
    results = p.stop()
    for r in results:
        if r[0] >= back[0]:
            assert r[3]["status"] == "WORKING" and r[3]["changedAt"] == back[3]["changedAt"], r


def test_flap_shorter_than_the_hold_is_never_published(simulator, gateway, poller):
    sim = simulator("--sessions", "default:WORKING", "--start-delay-ms", "500")
    gw = gateway(sim, {"backend": {"flap_hold": 1500, "status_cache_duration": 1000,
                                   "session_cache_duration": 1000},
                       "limits": {"request_timeout": 1000}})
    first = gw.status()
    assert first["status"] == "WORKING", first
    changed0 = first["changedAt"]
    # WAHA tells the gateway at once, by webhook.
    sim.control("POST", "/_sim/config", {"webhookUrl": gw.url + "/api/waha/webhook"})
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10)

    t0 = time.monotonic()
    sim.set_session("default", "STARTING")
    seen = p.wait_for(lambda st, d: st == 200 and d["rawStatus"] == "STARTING", 5, since=t0)
    assert seen, f"the gateway never saw STARTING; last {p.latest()}; {sim.stats()}"
    assert seen[1] - t0 < HOLD_S - 0.5, \
        f"STARTING took {seen[1] - t0:.2f} s to arrive: too slow for a flap shorter than the hold"
    sim.set_session("default", "WORKING")
    t_back = time.monotonic()
    assert p.wait_for(lambda st, d: st == 200 and d["rawStatus"] == "WORKING", 5, since=t_back)
    # Watch until well after the hold would have ended.
    while time.monotonic() < t0 + HOLD_S + 1.5:
        time.sleep(0.05)
    results = p.stop()
    assert wait_until(lambda: sim.stats()["webhooks"]["sent"] >= 2, 5), sim.stats()
    for r in results:
        if r[0] >= t0:
            assert r[2] == 200, r
            assert r[3]["status"] == "WORKING" and r[3]["authenticated"] is True, \
                f"a flap shorter than the hold was published: {r}"
            assert r[3]["changedAt"] == changed0, f"changedAt moved: {r}"
    assert results[-1][3]["rawStatus"] == "WORKING", results[-1]
