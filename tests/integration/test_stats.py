"""What the gateway tells about itself (issue 4): the stats object, the
Prometheus metrics (checked by promtool), stats_token and admin_listen,
`wahagate --stats`, and logs that keep the upstream API key secret and
collapse repeated lines.

Counters are summed from per-process slots in shared memory, so the tests
check that they add up from the outside: N requests made is N more
totalRequests, and the calls the simulator counted are the apiCalls the
gateway reports.
"""

import json
import subprocess
import threading
import time

from conftest import free_port, http_request, run_gateway_cli, wait_until

STATS = "/api/waha/monitoring/stats"
STATS_KEYS = {"uptimeSeconds", "totalRequests", "cacheHits", "cacheMisses", "cacheHitRate",
              "notModified", "rateLimited", "errors", "errorRate", "apiCalls",
              "apiCallErrors", "apiCallsPerMinute", "avgApiCallsPerMinute",
              "webhooksReceived", "sseClients", "authFailures", "redis", "circuit",
              "workers", "memory", "untrackedSessions", "events"}


def stats(gw, headers=None, port=None):
    status, _, body = http_request(port or gw.port, "GET", STATS, headers)
    assert status == 200, body
    return json.loads(body)


def test_stats_object_has_exactly_the_contract_fields(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 2, "min_workers": 1, "max_workers": 4}})
    doc = stats(gw)
    assert set(doc) == STATS_KEYS, doc
    assert doc["circuit"] == {"state": "closed", "opens": 0}, doc
    assert doc["workers"] == {"count": 2, "min": 1, "max": 4}, doc
    assert set(doc["memory"]) == {"rssBytes"} and doc["memory"]["rssBytes"] > 1_000_000, doc
    assert doc["redis"] == "off", doc  # no redis.url: a single host
    assert doc["events"] == "off", doc  # the tests' default: upstream.events = off
    for key in STATS_KEYS - {"redis", "circuit", "workers", "memory", "events"}:
        assert isinstance(doc[key], (int, float)) and not isinstance(doc[key], bool), (key, doc)
    assert 0.0 <= doc["cacheHitRate"] <= 1.0 and 0.0 <= doc["errorRate"] <= 1.0, doc


def test_counters_add_up(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"backend": {"status_cache_duration": 60000,
                                   "session_cache_duration": 60000}})
    assert gw.get("/api/waha/status")[0] == 200  # warm: one miss
    before = stats(gw)
    n = 57
    for _ in range(n):
        assert gw.get("/api/waha/status")[0] == 200
    after = stats(gw)
    # The first stats request itself is counted once the second is made.
    assert after["totalRequests"] - before["totalRequests"] == n + 1, (before, after)
    assert after["cacheHits"] - before["cacheHits"] == n, (before, after)
    assert after["cacheMisses"] == before["cacheMisses"], (before, after)
    # 304s and 4xx/5xx.
    _, headers, _ = gw.get("/api/waha/status")
    for _ in range(5):
        assert gw.get("/api/waha/status", {"If-None-Match": headers["ETag"]})[0] == 304
    assert gw.get("/nowhere")[0] == 404
    last = stats(gw)
    assert last["notModified"] - after["notModified"] == 5, (after, last)
    assert last["errors"] == 0 and last["errorRate"] == 0.0, last  # 404 is the client's
    # Every WAHA call the simulator saw is an apiCall, and no more (the
    # simulator counts a call when it comes, the gateway when it ends).
    assert wait_until(lambda: stats(gw)["apiCalls"] == sim.stats()["total"], 5), \
        (stats(gw), sim.stats())
    assert stats(gw)["apiCallErrors"] == 0, stats(gw)


def test_api_calls_per_minute_and_errors(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"backend": {"status_cache_duration": 200, "session_cache_duration": 200,
                                   "health_check_cache_duration": 60000},
                       "limits": {"max_retries": 0}})
    # Keep reading for ~2 s: the session is refreshed about every 160 ms.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert gw.get("/api/waha/status")[0] == 200
    # A refresh may still be under way: the simulator counts it first.
    def agreed():
        doc = stats(gw)
        return doc if doc["apiCalls"] == sim.stats()["total"] else None
    doc = wait_until(agreed, 5)
    assert doc, (stats(gw), sim.stats())
    calls = doc["apiCalls"]
    assert calls >= 5, sim.stats()
    # Every call happened within the last minute.
    assert doc["apiCallsPerMinute"] == calls, doc
    assert doc["avgApiCallsPerMinute"] > 0, doc
    # Failed calls are apiCallErrors.
    sim.fault("error", status=500)

    def failed_calls_counted():
        gw.get("/api/waha/status")  # keeps the session in demand
        doc = stats(gw)
        return doc["apiCallErrors"] >= 1 and doc

    doc = wait_until(failed_calls_counted, 10)
    assert doc, stats(gw)
    # A call may still be under way: the simulator counts it first.
    assert doc["apiCalls"] <= sim.stats()["total"], (doc, sim.stats())


def test_stats_token_protects_stats_and_metrics(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"server": {"stats_token": "t0ken-xyz"}})
    for path in (STATS, "/metrics"):
        status, headers, body = gw.get(path)
        assert status == 401, (path, body)
        assert headers.get("WWW-Authenticate", "").startswith("Bearer"), headers
        assert set(json.loads(body)) == {"error"}, body
        assert gw.get(path, {"Authorization": "Bearer wrong"})[0] == 401
        assert gw.get(path, {"Authorization": "t0ken-xyz"})[0] == 401
        assert gw.get(path, {"Authorization": "Bearer t0ken-xyz"})[0] == 200
    # The rest of the API needs no token.
    assert gw.get("/api/waha/status")[0] == 200


def test_admin_listen_serves_stats_and_metrics_only_there(simulator, gateway):
    sim = simulator()
    admin_port = free_port()
    gw = gateway(sim, {"server": {"admin_listen": f"127.0.0.1:{admin_port}"}})
    for path in (STATS, "/metrics"):
        assert gw.get(path)[0] == 404, path
        assert http_request(admin_port, "GET", path)[0] == 200, path
    # The API is not served on the admin address.
    assert http_request(admin_port, "GET", "/api/waha/status")[0] == 404
    assert gw.get("/api/waha/status")[0] == 200
    assert stats(gw, port=admin_port)["totalRequests"] >= 1


def test_admin_listen_equal_to_listen_is_a_config_error(tmp_path):
    ini = tmp_path / "w.ini"
    ini.write_text("[server]\nlisten = 127.0.0.1:18999\nadmin_listen = 127.0.0.1:18999\n")
    code, _, err = run_gateway_cli(["-t", "-c", str(ini)])
    assert code == 1 and "admin_listen" in err and "18999" in err, err


def test_metrics_pass_promtool(simulator, gateway, tmp_path):
    sim = simulator("--sessions", "default:WORKING,shop:SCAN_QR_CODE")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"}})
    for path in ("/api/waha/status", "/api/waha/status?session=shop", "/api/waha/health",
                 "/nowhere", "/api/waha/sessions/shop/qr"):
        gw.get(path)
    status, headers, body = gw.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    text = body.decode()
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    # The families the issue asks for, with their labels.
    for needle in ('wahagate_requests_total{endpoint="status",code="2xx"}',
                   'wahagate_requests_total{endpoint="other",code="4xx"}',
                   "wahagate_request_duration_seconds_bucket{le=\"+Inf\"}",
                   "wahagate_request_duration_seconds_sum",
                   "wahagate_request_duration_seconds_count",
                   'wahagate_upstream_calls_total{endpoint="sessions",result="ok"}',
                   "wahagate_upstream_duration_seconds_count",
                   "wahagate_cache_hits_total", "wahagate_not_modified_total",
                   "wahagate_upstream_retries_total", "wahagate_circuit_transitions_total",
                   'wahagate_circuit_state{state="closed"} 1',
                   "wahagate_webhooks_received_total", "wahagate_sse_clients",
                   'wahagate_session_status{session="shop",status="SCAN_QR_CODE"} 1',
                   'wahagate_session_authenticated{session="default"} 1'):
        assert needle in text, needle
    # Every counter ends in _total.
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line


def test_stats_command_under_load(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    stop = threading.Event()
    made = [0]

    def load():
        while not stop.is_set() and made[0] < 20000:
            if gw.get("/api/waha/status")[0] == 200:
                made[0] += 1

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: made[0] >= 200, 20), made
        code, out, err = run_gateway_cli(["--stats", "-c", gw.ini_path])
        assert code == 0, err
        total = [line for line in out.splitlines() if line.startswith("requests ")]
        assert total, out
        assert int(total[0].split()[1]) >= 200, out
        code, out, err = run_gateway_cli(["--stats", "--json", "-c", gw.ini_path])
        assert code == 0, err
        doc = json.loads(out)
        assert set(doc) == STATS_KEYS and doc["totalRequests"] >= 200, doc
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    # The server was not disturbed: it still answers.
    assert gw.get("/api/waha/status")[0] == 200


def test_upstream_api_key_never_in_logs_or_answers(simulator, gateway):
    secret = "very-secret-upstream-key-93f1"
    sim = simulator(api_key=secret)
    gw = gateway(sim, {"upstream": {"api_key": secret}, "log": {"level": "debug",
                                                                  "access": True}})
    bodies = []
    for path in ("/api/waha/status", "/api/waha/health", "/api/waha/sessions",
                 "/api/waha/sessions/default", "/api/waha/config", STATS, "/metrics",
                 "/nowhere"):
        bodies.append(gw.get(path)[2])
    sim.fault("unauthorized")  # WAHA now refuses: errors get logged
    wait_until(lambda: "401" in gw.log_text(), 10)
    gw.get("/api/waha/status")
    assert all(secret.encode() not in b for b in bodies)
    assert secret not in gw.log_text()


def test_access_log_only_when_enabled(simulator, gateway):
    sim = simulator()
    quiet = gateway(sim)
    loud = gateway(sim, {"log": {"access": True}})
    for gw in (quiet, loud):
        for _ in range(3):
            gw.get("/api/waha/config")
    assert wait_until(lambda: loud.log_text().count("GET /api/waha/config 200") >= 3, 10), \
        loud.log_text()
    assert "GET /api/waha/config" not in quiet.log_text()


def test_repeated_warnings_are_collapsed(simulator, gateway):
    """WAHA failing again and again must not write one line per failure."""
    sim = simulator()
    gw = gateway(sim, {"limits": {"max_retries": 0},
                       "backend": {"status_cache_duration": 200, "session_cache_duration": 200},
                       "circuit": {"failure_threshold": 1000}})
    assert gw.get("/api/waha/status")[0] == 200
    sim.fault("error", status=500)

    def failed_again_and_again():
        gw.get("/api/waha/status")  # a reader keeps the session in demand
        return sim.stats()["calls"].get("GET /api/sessions", 0) >= 5

    assert wait_until(failed_again_and_again, 30, 0.05), sim.stats()

    def failure_lines():
        return [l for l in gw.log_text().splitlines() if "GET /api/sessions failed" in l]
    assert wait_until(failure_lines, 5), gw.log_text()
    assert len(failure_lines()) == 1, failure_lines()
