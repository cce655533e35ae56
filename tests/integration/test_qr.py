"""GET /api/waha/sessions/NAME/qr (issue 3; docs/waha-api.md 4): the fetcher keeps
the QR of a session that waits for a scan, and the gateway answers like WAHA
(PNG, {"mimetype","data"} for Accept: application/json, {"value"} for
?format=raw); 404 otherwise; WAHA is never asked for a QR outside
SCAN_QR_CODE, and rotations are followed (by polling, or at once by webhook)."""

import base64
import json
import threading
import time

from conftest import API_KEY, SANITIZED, http_request, wait_until

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QR_CALL = "GET /api/{name}/auth/qr"
SLACK = 3.0 if SANITIZED else 1.5


def sim_qr(sim, name, fmt="image", accept=None):
    """The simulator's own answer (counted in its stats)."""
    headers = {"X-Api-Key": API_KEY}
    if accept:
        headers["Accept"] = accept
    code, hdrs, body = http_request(sim.port, "GET", f"/api/{name}/auth/qr?format={fmt}", headers)
    assert code == 200, (code, body[:200])
    return body if fmt == "image" and accept != "application/json" else json.loads(body)


def gw_qr(gw, name, fmt=None, accept=None):
    headers = {"Accept": accept} if accept else {}
    path = f"/api/waha/sessions/{name}/qr" + (f"?format={fmt}" if fmt else "")
    return gw.get(path, headers)


def qr_calls(sim):
    return sim.stats()["calls"].get(QR_CALL, 0)


def check_no_qr(code, headers, body):
    assert code == 404, (code, body[:200])
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    doc = json.loads(body)
    assert set(doc) == {"error"} and isinstance(doc["error"]["code"], str), doc
    assert isinstance(doc["error"]["message"], str), doc


def test_qr_answers_like_waha_and_concurrent_reads_share_calls(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,qr:SCAN_QR_CODE", "--start-delay-ms", "500",
                    "--qr-first-ms", "60000", "--qr-next-ms", "60000")
    gw = gateway(sim, {"upstream": {"sessions": "default,qr"},
                       "limits": {"request_timeout": 3000}})
    n = 36
    barrier = threading.Barrier(n)
    answers = [None] * n
    variants = [(None, None), (None, "application/json"), ("raw", None)]

    def read(i):
        fmt, accept = variants[i % 3]
        barrier.wait(timeout=30)
        answers[i] = (fmt, accept, gw_qr(gw, "qr", fmt, accept))
    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(a is not None for a in answers), "some reads did not finish"
    calls = qr_calls(sim)
    assert 2 <= calls <= 3, f"{n} concurrent cold QR reads made {calls} QR calls: {sim.stats()}"

    raw = sim_qr(sim, "qr", "raw")["value"]
    png = sim_qr(sim, "qr")
    as_json = sim_qr(sim, "qr", accept="application/json")
    assert png.startswith(PNG_SIGNATURE)
    assert as_json == {"mimetype": "image/png", "data": base64.b64encode(png).decode()}
    for fmt, accept, (code, headers, body) in answers:
        assert code == 200, (fmt, accept, code, body[:200])
        if fmt == "raw":
            assert headers.get("Content-Type", "").startswith("application/json"), headers
            assert json.loads(body) == {"value": raw}, body[:200]
        elif accept == "application/json":
            assert headers.get("Content-Type", "").startswith("application/json"), headers
            doc = json.loads(body)
            assert doc == as_json, str(doc)[:200]
            assert base64.b64decode(doc["data"]) == png
        else:
            assert headers.get("Content-Type") == "image/png", headers
            assert body.startswith(PNG_SIGNATURE), body[:16]
            assert body == png, "the gateway's PNG is not WAHA's"

    # A session that is not waiting for a scan has no QR.
    for fmt, accept in variants:
        check_no_qr(*gw_qr(gw, "default", fmt, accept))


def test_no_qr_calls_outside_scan_qr_code(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING")
    gw = gateway(sim, {"backend": {"status_cache_duration": 1000, "session_cache_duration": 1000}})
    variants = [(None, None), (None, "application/json"), ("raw", None)]
    barrier = threading.Barrier(30)
    answers = []
    lock = threading.Lock()

    def read(i):
        barrier.wait(timeout=30)
        a = gw_qr(gw, "default", *variants[i % 3])
        with lock:
            answers.append(a)
    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 30
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:  # over two refresh periods
        answers.append(gw_qr(gw, "default", *variants[len(answers) % 3]))
        time.sleep(0.05)
    for a in answers:
        check_no_qr(*a)
    stats = sim.stats()
    assert stats["calls"].get(QR_CALL, 0) == 0, f"WAHA asked for a QR of a WORKING session: {stats}"
    assert sim.session_calls(stats) >= 2, stats  # the status it answered by was kept fresh


def test_qr_prefetched_when_status_enters_scan_qr_code(simulator, gateway, poller):
    sim = simulator("--sessions", "default:WORKING", "--start-delay-ms", "500",
                    "--qr-first-ms", "60000")
    gw = gateway(sim, {"backend": {"status_cache_duration": 1000, "session_cache_duration": 1000},
                       "limits": {"request_timeout": 3000}})
    # A client reads only the status.
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200, 10)
    check_no_qr(*gw_qr(gw, "default"))
    sim.set_session("default", "SCAN_QR_CODE")
    t = time.monotonic()
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "SCAN_QR_CODE", 1.0 + SLACK + 2,
                      since=t), p.latest()
    # Fetched without anybody asking for the QR: value and image.
    assert wait_until(lambda: qr_calls(sim) >= 2, 2 + SLACK, 0.02), sim.stats()
    assert wait_until(lambda: sim.stats()["inFlight"] == 0, 5, 0.02)
    # From now on WAHA takes 2 s per QR: a read must not wait for it.
    sim.fault("slow", delayMs=2000, paths="/api/default/auth/qr")
    t = time.monotonic()
    code, headers, body = gw_qr(gw, "default")
    took = time.monotonic() - t
    assert code == 200, body[:200]
    assert took < 1.0, f"the QR read took {took:.2f} s: the QR was not prefetched"
    assert headers.get("Content-Type") == "image/png" and body.startswith(PNG_SIGNATURE)
    sim.fault("none")
    assert wait_until(lambda: sim.stats()["inFlight"] == 0, 5, 0.02)
    assert body == sim_qr(sim, "default")

    # Back to WORKING: no QR any more, and no more QR calls.
    sim.set_session("default", "WORKING")
    t = time.monotonic()
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING", 1.0 + SLACK + 2,
                      since=t), p.latest()
    check_no_qr(*gw_qr(gw, "default"))
    calls = qr_calls(sim)
    t = time.monotonic()
    while time.monotonic() - t < 2.0:
        check_no_qr(*gw_qr(gw, "default", "raw"))
        time.sleep(0.1)
    assert qr_calls(sim) == calls, sim.stats()


def follow_rotations(sim, gw, p, count, max_lag):
    """Wait for COUNT QR rotations of session "qr" in the simulator and
    check that the gateway serves each new value within MAX_LAG seconds."""
    lags = []
    sim.reset()  # clears the simulator's log of emitted events
    for k in range(count):
        def rotated():
            log = sim.control("GET", "/_sim/webhooks")
            return len([e for e in log if e["session"] == "qr"
                        and e["payload"]["status"] == "SCAN_QR_CODE"]) >= k + 1
        assert wait_until(rotated, 10, 0.02), f"the simulator did not rotate: {sim.stats()}"
        t_rot = time.monotonic()
        value = sim_qr(sim, "qr", "raw")["value"]
        hit = p.wait_for(lambda st, d: st == 200 and d == {"value": value}, max_lag + 2,
                         since=t_rot - 0.5)
        assert hit, f"rotation {k + 1}: the gateway did not follow; last {p.latest()}"
        lags.append(round(max(0.0, hit[1] - t_rot), 2))
    assert max(lags) <= max_lag, f"followed the rotations after {lags} s"
    return lags


def rotating_qr(simulator, gateway, poller, cache_ms, webhooks):
    """A session waiting for a scan whose QR changes every 1.5 s, a gateway
    caching its status for CACHE_MS (with WAHA's webhooks when WEBHOOKS), and
    a poller reading the QR once it is there: (sim, gw, poller)."""
    sim = simulator("--sessions", "qr:SCAN_QR_CODE", "--start-delay-ms", "500",
                    "--qr-first-ms", "1500", "--qr-next-ms", "1500", "--qr-count", "50")
    gw = gateway(sim, {"upstream": {"sessions": "qr"},
                       "backend": {"status_cache_duration": cache_ms,
                                   "session_cache_duration": cache_ms},
                       "limits": {"request_timeout": 3000}})
    if webhooks:
        sim.control("POST", "/_sim/config", {"webhookUrl": gw.url + "/api/waha/webhook"})
    p = poller(gw.port, "/api/waha/sessions/qr/qr?format=raw", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10), p.latest()
    return sim, gw, p


def test_qr_follows_rotation_while_read(simulator, gateway, poller):
    sim, gw, p = rotating_qr(simulator, gateway, poller, 1000, webhooks=False)
    follow_rotations(sim, gw, p, 2, 1.0 + SLACK)
    p.stop()
    png_code, headers, png = gw_qr(gw, "qr")
    assert png_code == 200 and png.startswith(PNG_SIGNATURE), png[:50]


def test_qr_follows_rotation_at_once_by_webhook(simulator, gateway, poller):
    # Polling alone would refresh this QR every 20 s.
    sim, gw, p = rotating_qr(simulator, gateway, poller, 30000, webhooks=True)
    follow_rotations(sim, gw, p, 2, 0.5 + SLACK)
    p.stop()
    # Counted once the gateway's answer is in, maybe after the poller saw the QR.
    assert wait_until(lambda: sim.stats()["webhooks"]["sent"] >= 2, 5), sim.stats()


def test_qr_reads_during_a_rotation_always_get_a_qr(simulator, gateway, poller):
    sim, gw, p = rotating_qr(simulator, gateway, poller, 30000, webhooks=True)
    old = p.latest()[3]
    # WAHA takes 0.5 s per QR request (the gateway needs two per new code).
    sim.fault("slow", delayMs=500, paths="/api/qr/auth/qr")
    t0 = time.monotonic()
    follow_rotations(sim, gw, p, 1, 2 * 0.5 + 0.5 + SLACK)
    new = p.latest()[3]
    results = p.stop()
    assert new != old
    bad = [(round(r[0] - t0, 2), r[2], r[3]) for r in results if r[0] >= t0 and r[2] != 200]
    assert not bad, (f"{len(bad)} QR reads during a rotation were not answered with a QR "
                     f"(the session waited for a scan all along): {bad[:3]}")
