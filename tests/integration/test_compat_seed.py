"""The original TypeScript backend's routes (issue 17, [compat] seed_api).

docs/seed-backend.md is the reference: status and connection-status (also
under /api/v1/whatsapp) in {"success":true,"data":{...}} with its keys in
its order, monitoring/stats with the rate and the average as strings, qr
with WAHA's PNG as a data URL (the simulator's bytes), health that stays
200 when WAHA is not healthy; the door of /api/waha/status; the switch.
"""

import base64
import json
import re

import pytest

from conftest import API_KEY, http_request, parse_iso_ms, wait_until

STATUS_KEYS = ["connected", "authenticated", "lastHeartbeat", "serviceStatus", "isReady",
               "isClientReady", "qrAvailable", "timestamp", "monitoredKeywords", "serviceType"]
STATS_KEYS = ["totalRequests", "cacheHits", "cacheMisses", "apiCalls", "errors", "lastReset",
              "uptime", "cacheHitRate", "averageApiCallsPerMinute"]


def get(port, path, headers=None, method="GET"):
    code, headers, body = http_request(port, method, path, headers)
    return code, headers, json.loads(body) if body else None


@pytest.mark.parametrize("path", ["/api/v1/waha/status", "/api/v1/waha/connection-status",
                                  "/api/v1/whatsapp/status",
                                  "/api/v1/whatsapp/connection-status"])
def test_status_envelope(simulator, gateway, path):
    sim = simulator()
    gw = gateway(sim)
    code, headers, body = get(gw.port, path)
    assert code == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
    assert list(body) == ["success", "data"] and body["success"] is True
    data = body["data"]
    assert list(data) == STATUS_KEYS
    assert data["connected"] is data["authenticated"] is data["isReady"] is \
        data["isClientReady"] is True
    assert data["serviceStatus"] == "WORKING" and data["qrAvailable"] is False
    assert data["monitoredKeywords"] == [] and data["serviceType"] == "waha"
    assert parse_iso_ms(data["lastHeartbeat"]) == parse_iso_ms(data["timestamp"])
    assert headers["X-Cache"] in ("HIT", "MISS") and "Age" in headers


def test_status_follows_waha_and_its_failures(simulator, gateway):
    sim = simulator("--sessions", "default:SCAN_QR_CODE", "--qr-first-ms", "600000")
    gw = gateway(sim)
    data = get(gw.port, "/api/v1/waha/status")[2]["data"]
    assert (data["serviceStatus"], data["qrAvailable"], data["authenticated"],
            data["connected"]) == ("SCAN_QR_CODE", True, False, False)
    sim.set_session("default", "WORKING", me={"id": "1@c.us", "pushName": "Shop"})
    assert wait_until(lambda: get(gw.port, "/api/v1/waha/status")[2]["data"]["connected"], 10)
    # WAHA gone: still 200, nothing connected; the last status stays known.
    sim.fault("down")

    def down():
        code, headers, body = get(gw.port, "/api/v1/waha/status")
        return (code, body["data"]) if not body["data"]["connected"] else None
    code, data = wait_until(down, 20, 0.1)
    assert code == 200 and data["isReady"] is False and data["serviceStatus"] == "WORKING"


def test_status_without_data_is_disconnected(simulator, gateway):
    gw = gateway(None)  # no WAHA at all
    code, headers, body = get(gw.port, "/api/v1/waha/status")
    assert code == 200 and body["success"] is True
    data = body["data"]
    assert data["serviceStatus"] == "disconnected" and data["connected"] is False
    assert data["lastHeartbeat"] is None and parse_iso_ms(data["timestamp"]) > 0
    assert headers["X-Cache"] == "MISS"


def test_monitoring_stats_format(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    code, _, body = get(gw.port, "/api/v1/waha/monitoring/stats")
    assert code == 200 and body["success"] is True and list(body["data"]) == STATS_KEYS
    assert body["data"]["cacheHitRate"] == "0%" or \
        re.fullmatch(r"\d+\.\d{2}%", body["data"]["cacheHitRate"])
    for _ in range(5):
        get(gw.port, "/api/v1/waha/status")
    data = get(gw.port, "/api/v1/whatsapp/monitoring/stats")[2]["data"]
    assert re.fullmatch(r"\d+\.\d{2}%", data["cacheHitRate"]), data
    assert re.fullmatch(r"\d+\.\d{2}", data["averageApiCallsPerMinute"]), data
    assert data["cacheHits"] >= 4 and data["apiCalls"] >= 1 and data["uptime"] > 0
    hits, total = data["cacheHits"], data["cacheHits"] + data["cacheMisses"]
    assert data["cacheHitRate"] == f"{100 * hits / total:.2f}%"
    assert parse_iso_ms(data["lastReset"]) > 0
    # The same figures as the gateway's own stats object.
    own = json.loads(http_request(gw.port, "GET", "/api/waha/monitoring/stats")[2])
    assert own["apiCalls"] >= data["apiCalls"]


def test_qr_is_waha_s_png_as_a_data_url(simulator, gateway):
    sim = simulator("--sessions", "default:SCAN_QR_CODE", "--qr-first-ms", "600000")
    gw = gateway(sim)
    code, headers, body = get(gw.port, "/api/v1/waha/qr")
    assert code == 200 and list(body["data"]) == ["qrCode", "message"], body
    prefix = "data:image/png;base64,"
    assert body["data"]["qrCode"].startswith(prefix)
    png = http_request(sim.port, "GET", "/api/default/auth/qr", {"X-Api-Key": API_KEY})[2]
    assert base64.b64decode(body["data"]["qrCode"][len(prefix):]) == png
    assert body["data"]["message"] == "QR code generated successfully"
    # POST /api/v1/waha/auth/qr ran the same handler.
    assert get(gw.port, "/api/v1/waha/auth/qr", method="POST")[2] == body


def test_qr_without_a_code_is_the_backend_s_500(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    code, _, body = get(gw.port, "/api/v1/whatsapp/qr")
    assert code == 500 and body["success"] is False and "WORKING" in body["error"]
    assert list(body) == ["success", "error"]


def test_health_stays_200(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    code, _, body = get(gw.port, "/api/v1/waha/health")
    assert code == 200 and body["success"] is True
    waha = body["data"]["waha"]
    assert waha["healthy"] is True and waha["details"]["endpoints"] == ["/health"]
    assert parse_iso_ms(waha["details"]["lastCheck"]) > 0
    assert parse_iso_ms(body["data"]["timestamp"]) > 0
    sim.fault("health")  # WAHA's /health says 503 "error"
    assert wait_until(lambda: get(gw.port, "/api/v1/waha/health")[2]["data"]["waha"]["healthy"]
                      is False, 15)
    assert get(gw.port, "/api/v1/waha/health")[0] == 200


def test_door_is_the_status_door(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"},
                       "auth": {"required": True,
                                "key": ["shop : shop-s3cret : shop", "ops : ops-s3cret : *"]}})
    for path in ("/api/v1/waha/status", "/api/v1/waha/qr", "/api/v1/waha/health",
                 "/api/v1/waha/monitoring/stats"):
        code, headers, body = get(gw.port, path)
        assert code == 401 and body == {"success": False, "error": "Unauthorized"}, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
    # A scoped key's session is its own: "shop", not the first tracked one.
    data = get(gw.port, "/api/v1/waha/status", {"X-Api-Key": "shop-s3cret"})[2]["data"]
    assert data["connected"] is True
    assert get(gw.port, "/api/v1/waha/status", {"Authorization": "Bearer ops-s3cret"})[0] == 200


def test_seed_api_off_is_404(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"compat": {"seed_api": False}})
    for path in ("/api/v1/waha/status", "/api/v1/whatsapp/status", "/api/v1/waha/qr",
                 "/api/v1/waha/monitoring/stats", "/api/v1/waha/health"):
        code, _, body = get(gw.port, path)
        assert code == 404 and body["error"]["code"] == "not_found", path
    assert get(gw.port, "/api/sessions", {"X-Api-Key": API_KEY})[0] == 200
