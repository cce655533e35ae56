"""/api/waha/health, /api/waha/sessions[/NAME] and /api/waha/config."""

import json
import time

from conftest import ISO_MS_RE, wait_until


def health(gw):
    code, headers, body = gw.get("/api/waha/health")
    assert code == 200, body
    assert headers.get("Content-Type", "").startswith("application/json")
    return json.loads(body)


def check_health_shape(doc):
    assert set(doc) >= {"healthy", "upstream", "cache"}, doc
    assert isinstance(doc["healthy"], bool)
    assert isinstance(doc["upstream"]["healthy"], bool)
    cache = doc["cache"]
    assert cache["source"] in ("poll", "webhook", "none"), doc
    assert ISO_MS_RE.match(cache["fetchedAt"]), doc
    assert isinstance(cache["stale"], bool), doc


# --------------------------------------------------------------------------- health

def test_health_with_healthy_waha(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"backend": {"health_check_cache_duration": 20000}})
    doc = health(gw)
    check_health_shape(doc)
    assert doc["healthy"] is True, doc
    assert doc["upstream"]["healthy"] is True, doc
    assert doc["upstream"]["endpoint"] == "/health", doc
    assert doc["upstream"]["lastError"] is None, doc
    assert doc["cache"]["stale"] is False, doc
    assert doc["cache"]["maxAgeMs"] == 20000, doc
    assert sim.stats()["calls"].get("GET /health", 0) == 1


def test_health_switches_to_ping_on_waha_core(simulator, gateway):
    sim = simulator("--core")
    gw = gateway(sim, {"backend": {"health_check_cache_duration": 1000}})

    def on_ping():
        d = health(gw)
        return d if d["upstream"]["endpoint"] == "/ping" and d["healthy"] is True else None
    doc = wait_until(on_ping, 10, 0.1)
    assert doc, health(gw)
    check_health_shape(doc)
    assert doc["upstream"]["healthy"] is True and doc["upstream"]["lastError"] is None, doc

    # For good: keep reading for a few periods, /health is never asked again.
    sim.reset()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:
        d = health(gw)
        assert d["healthy"] is True and d["upstream"]["endpoint"] == "/ping", d
        time.sleep(0.1)
    stats = sim.stats()
    assert stats["calls"].get("GET /health", 0) == 0, stats
    assert stats["calls"].get("GET /ping", 0) >= 2, stats


def test_health_reports_unhealthy_waha(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"backend": {"health_check_cache_duration": 1000}})
    assert health(gw)["healthy"] is True
    sim.fault("health")
    doc = wait_until(lambda: (lambda d: d if d["healthy"] is False else None)(health(gw)), 10, 0.1)
    assert doc, health(gw)
    check_health_shape(doc)
    sim.fault("none")
    doc = wait_until(lambda: (lambda d: d if d["healthy"] is True else None)(health(gw)), 10, 0.1)
    assert doc, health(gw)
    assert doc["upstream"]["endpoint"] == "/health"


def test_health_with_waha_down_after_data(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"backend": {"health_check_cache_duration": 1000},
                       "limits": {"request_timeout": 1000}})
    assert health(gw)["healthy"] is True
    sim.fault("down")
    doc = wait_until(lambda: (lambda d: d if d["healthy"] is False and d["upstream"]["lastError"]
                              else None)(health(gw)), 12, 0.1)
    assert doc, health(gw)
    assert doc["upstream"]["healthy"] is False, doc


# --------------------------------------------------------------------------- sessions

def test_sessions_of_a_configured_list(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,other:SCAN_QR_CODE,third:STOPPED")
    gw = gateway(sim, {"upstream": {"sessions": "default,other"}})
    code, headers, body = gw.get("/api/waha/sessions")
    assert code == 200, body
    assert headers.get("Content-Type", "").startswith("application/json")
    sessions = json.loads(body)
    assert isinstance(sessions, list)
    by_name = {s["name"]: s for s in sessions}
    assert sorted(by_name) == ["default", "other"], sessions
    assert by_name["default"]["status"] == "WORKING"
    assert by_name["default"]["me"]["id"].endswith("@c.us")
    assert by_name["other"]["status"] == "SCAN_QR_CODE"
    assert by_name["other"]["me"] is None

    one = gw.json("/api/waha/sessions/other")
    assert one["name"] == "other" and one["status"] == "SCAN_QR_CODE", one
    # WAHA's list items are SessionInfo; one session's own read is
    # SessionDetailedInfo, the same fields and its engine (waha-api.md 2).
    assert "engine" not in by_name["other"] and isinstance(one["engine"], dict), one
    assert {k: v for k, v in one.items() if k != "engine"} == by_name["other"]
    default = gw.json("/api/waha/sessions/default")
    assert default["name"] == "default" and default["engine"]["state"] == "CONNECTED", default

    for name in ("third", "nope", "x" * 40):
        code, headers, body = gw.get(f"/api/waha/sessions/{name}")
        assert code == 404, (name, body)
        err = json.loads(body)["error"]
        assert isinstance(err["code"], str) and isinstance(err["message"], str), body
        assert headers.get("Content-Type", "").startswith("application/json")
    code, _, body = gw.get("/api/waha/status?session=third")
    assert code == 404, body
    assert "error" in json.loads(body)


def test_sessions_star_follows_waha(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,other:STOPPED")
    gw = gateway(sim, {"upstream": {"sessions": "*"},
                       "backend": {"status_cache_duration": 1000, "session_cache_duration": 1000},
                       "limits": {"request_timeout": 1000}})

    def names():
        code, _, body = gw.get("/api/waha/sessions")
        assert code == 200, body
        return sorted(s["name"] for s in json.loads(body))
    assert names() == ["default", "other"]
    assert gw.json("/api/waha/sessions/other")["status"] == "STOPPED"

    sim.set_session("newone", "WORKING")
    # A few periods (1 s) plus the timeout, generously.
    assert wait_until(lambda: names() == ["default", "newone", "other"], 10, 0.1), names()
    assert gw.json("/api/waha/sessions/newone")["status"] == "WORKING"
    st = gw.status("newone")
    assert st["status"] == "WORKING" and st["authenticated"] is True, st

    sim.delete_session("other")
    assert wait_until(lambda: names() == ["default", "newone"], 10, 0.1), names()
    assert wait_until(lambda: gw.get("/api/waha/sessions/other")[0] == 404, 10, 0.1)
    code, _, body = gw.get("/api/waha/sessions/other")
    assert "error" in json.loads(body)


def test_tracked_session_unknown_to_waha(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"upstream": {"sessions": "default,ghost"}})
    code, _, body = gw.get("/api/waha/sessions/ghost")
    assert code == 404, body
    assert json.loads(body)["error"]["code"], body
    st = gw.status("ghost")
    assert st["session"] == "ghost" and st["status"] == "UNKNOWN", st
    assert st["authenticated"] is False and st["me"] is None, st
    assert isinstance(st["upstream"]["lastError"], str) and st["upstream"]["lastError"], st
    sessions = gw.json("/api/waha/sessions")
    assert [s["name"] for s in sessions] == ["default"], sessions

    # When WAHA gets the session, the gateway finds it.
    sim.set_session("ghost", "STARTING")
    assert wait_until(lambda: gw.status("ghost")["status"] == "STARTING", 10, 0.1), gw.status("ghost")
    assert gw.status("ghost")["upstream"]["lastError"] is None
    assert gw.json("/api/waha/sessions/ghost")["status"] == "STARTING"


# --------------------------------------------------------------------------- config

def test_config_reflects_frontend_section(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"frontend": {"initial_check_delay": 1234, "base_interval": 4321,
                                    "authenticated_interval": 8765, "max_interval": 98765,
                                    "backoff_multiplier": 1.5}})
    code, headers, body = gw.get("/api/waha/config")
    assert code == 200
    assert headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(body) == {"initialCheckDelay": 1234, "baseInterval": 4321,
                                "authenticatedInterval": 8765, "maxInterval": 98765,
                                "backoffMultiplier": 1.5}
    assert sim.stats()["total"] == 0, "/api/waha/config must not call WAHA"


def test_config_defaults(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    doc = gw.json("/api/waha/config")
    assert doc == {"initialCheckDelay": 5000, "baseInterval": 15000,
                   "authenticatedInterval": 30000, "maxInterval": 60000,
                   "backoffMultiplier": 2}, doc


def test_environment_overrides(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"frontend": {"base_interval": 4000, "max_interval": 50000}},
                 env_extra={"WAHA_POLLING_INTERVAL": "2222",
                            "WAHAGATE_FRONTEND_MAX_INTERVAL": "77777",
                            "WAHAGATE_FRONTEND_INITIAL_CHECK_DELAY": "333"})
    doc = gw.json("/api/waha/config")
    assert doc["baseInterval"] == 2222, doc
    assert doc["maxInterval"] == 77777, doc
    assert doc["initialCheckDelay"] == 333, doc
