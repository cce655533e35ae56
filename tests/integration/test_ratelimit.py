"""Per-client rate limiting (issue 6; common/ratelimit.c, rate_ok() in
server/worker/routes.c): a token bucket per client address, ratelimit.burst tokens
refilled at ratelimit.rate per second, shared by all workers through the
region. A refused request gets 429 with a JSON error, Retry-After and the
RateLimit-Limit/Remaining/Reset headers. X-Forwarded-For names the client
only when the peer is in server.trusted_proxies (its right-most untrusted
hop). Webhooks and the admin listener are not limited.

The conftest default disables rate limiting; every gateway here enables it.
Every client here is 127.0.0.1: distinct clients are told apart by
X-Forwarded-For from a trusted 127.0.0.1."""

import json
import math
import os
import socket
import time

from conftest import SANITIZED, free_port, http_request, server_connections, wait_until

SLACK = 3.0 if SANITIZED else 1.0
ABUSER = "203.0.113.5"
POLITE = "198.51.100.7"


def limited(rate, burst, trusted=True, **server):
    sections = {"ratelimit": {"enabled": True, "rate": rate, "burst": burst},
                "server": dict(server)}
    if trusted:
        sections["server"]["trusted_proxies"] = "127.0.0.1"
    return sections


def get(port, path="/api/waha/status", xff=None):
    """(status, headers, JSON or None, started, finished) of one request."""
    started = time.monotonic()
    status, headers, body = http_request(port, "GET", path, {"X-Forwarded-For": xff} if xff else {})
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    return status, headers, doc, started, time.monotonic()


def check_429(r, burst, rate):
    status, headers, doc = r[0], r[1], r[2]
    assert status == 429, r[:3]
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    assert set(doc) == {"error"} and doc["error"]["code"] == "rate_limited", doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], doc
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= math.ceil(1 / rate), headers
    assert int(headers["RateLimit-Limit"]) == burst, headers
    assert int(headers["RateLimit-Remaining"]) == 0, headers
    assert 1 <= int(headers["RateLimit-Reset"]) <= math.ceil(burst / rate), headers


def check_200(r, burst):
    assert r[0] == 200, r[:3]
    # Also an answer that waited for the fetcher (a cold read): it shows
    # the verdict of when it arrived and was charged.
    assert int(r[1]["RateLimit-Limit"]) == burst, r[1]
    assert 0 <= int(r[1]["RateLimit-Remaining"]) < burst, r[1]
    assert 0 <= int(r[1]["RateLimit-Reset"]), r[1]


def until_refused(port, xff=None, limit=1000, path="/api/waha/status"):
    """Requests until the first 429: all of them, the 429 last."""
    out = []
    for _ in range(limit):
        out.append(get(port, path, xff))
        if out[-1][0] == 429:
            return out
    raise AssertionError(f"no 429 after {limit} requests: {[r[0] for r in out][-10:]}")


def rate_limited_counts(gw, admin_port):
    """(stats rateLimited, /metrics wahagate_rate_limited_total), from the
    admin listener (not limited)."""
    status, _, body = http_request(admin_port, "GET", "/api/waha/monitoring/stats")
    assert status == 200, body
    stats = json.loads(body)["rateLimited"]
    status, _, body = http_request(admin_port, "GET", "/metrics")
    assert status == 200, body
    total = [line for line in body.decode().splitlines()
             if line.startswith("wahagate_rate_limited_total ")]
    assert len(total) == 1, body[:2000]
    return stats, float(total[0].split()[1])


def test_abusive_client_is_refused_while_a_polite_one_is_served(simulator, gateway):
    rate, burst = 2, 5
    sim = simulator()
    admin = free_port()
    gw = gateway(sim, limited(rate, burst, admin_listen=f"127.0.0.1:{admin}"))
    assert rate_limited_counts(gw, admin) == (0, 0)
    import threading
    stop = threading.Event()
    abuse = []

    def hammer():
        while not stop.is_set() and len(abuse) < 5000:
            abuse.append(get(gw.port, xff=ABUSER))
    th = threading.Thread(target=hammer, daemon=True)
    th.start()
    polite = []
    t0 = time.monotonic()
    try:
        # One poll every 0.7 s: 1.4 requests/s, under the rate of 2.
        while time.monotonic() - t0 < 4.0:
            polite.append(get(gw.port, xff=POLITE))
            stop.wait(0.7)
    finally:
        stop.set()
        th.join(timeout=30)
    assert not th.is_alive()
    assert len(polite) >= 5, polite
    for r in polite:
        check_200(r, burst)
    ok = [r for r in abuse if r[0] == 200]
    refused = [r for r in abuse if r[0] != 200]
    for r in refused:
        check_429(r, burst, rate)
    assert len(refused) >= 10, (len(ok), len(refused))
    span = abuse[-1][4] - abuse[0][3]
    assert burst <= len(ok) <= burst + rate * span + 1, (len(ok), span)
    # The first answers came from the full bucket, counting down.
    remaining = [(i, r[1].get("RateLimit-Remaining")) for i, r in enumerate(abuse[:burst])]
    assert all(int(n) == burst - 1 - i for i, n in remaining), remaining
    # Every 429 is counted, in the stats and the metrics.
    assert rate_limited_counts(gw, admin) == (len(refused), len(refused))


def test_an_answer_that_waited_for_waha_shows_the_verdict_of_its_arrival(simulator, gateway):
    """A cold read is charged when it arrives and parked until the fetcher
    has data; its answer carries what the rate limit said then."""
    rate, burst = 1, 5
    sim = simulator()
    gw = gateway(sim, limited(rate, burst))
    sim.fault("slow", delayMs=500, paths="/api/sessions")
    r = get(gw.port, xff=POLITE)
    assert r[4] - r[3] >= 0.45, "the first read did not wait for the fetcher"
    check_200(r, burst)
    assert int(r[1]["RateLimit-Remaining"]) == burst - 1, r[1]


def test_forwarded_for_is_ignored_from_an_untrusted_peer(simulator, gateway):
    rate, burst = 0.2, 4
    sim = simulator()
    gw = gateway(sim, limited(rate, burst, trusted=False))  # trusted_proxies empty
    refused = until_refused(gw.port, xff=ABUSER)
    assert len(refused) <= burst + 1, len(refused)  # the readiness probe took one
    # Another X-Forwarded-For, or none: the same client, 127.0.0.1.
    for xff in (POLITE, "192.0.2.1", None):
        check_429(get(gw.port, xff=xff), burst, rate)


def test_forwarded_for_from_a_trusted_peer_names_the_right_most_untrusted_hop(simulator, gateway):
    rate, burst = 0.2, 3
    sim = simulator()
    gw = gateway(sim, limited(rate, burst))
    refused = until_refused(gw.port, xff=ABUSER)
    assert len(refused) == burst + 1, [r[0] for r in refused]
    # What a client puts on the left is not believed; our proxy's hop is.
    check_429(get(gw.port, xff=f"{POLITE}, {ABUSER}"), burst, rate)
    check_429(get(gw.port, xff=f"{ABUSER}, 127.0.0.1"), burst, rate)
    check_200(get(gw.port, xff=f"{ABUSER}, {POLITE}"), burst)
    check_200(get(gw.port, xff="198.51.100.8"), burst)
    # Garbage names nobody: the peer itself (its own bucket, one probe used).
    check_200(get(gw.port, xff="not-an-address"), burst)


def test_bucket_is_shared_by_all_workers(simulator, gateway):
    rate, burst = 0.1, 10
    sim = simulator()
    gw = gateway(sim, limited(rate, burst, workers=2, min_workers=2))
    workers = gw.wait_children("worker", 2)
    assert len(workers) == 2, gw.child_pids("worker")
    # Keep-alive connections until each worker holds some. They are opened
    # ten at a time: idle workers are woken in the same order for each new
    # connection, so connections opened one by one can all go to one worker,
    # while a burst waiting in the queue is shared.
    by_worker = {w: [] for w in workers}
    conns = []
    try:
        for _ in range(6):
            batch = [socket.create_connection(("127.0.0.1", gw.port), timeout=10)
                     for _ in range(10)]
            conns += batch
            for s in batch:
                port = s.getsockname()[1]
                owner = wait_until(lambda: next((w for w, ports in server_connections(
                    gw.port, workers).items() if port in ports), None), 5)
                assert owner, "a connection no worker holds"
                by_worker[owner].append(s)
            if all(len(v) >= 2 for v in by_worker.values()):
                break
        assert all(len(v) >= 2 for v in by_worker.values()), \
            {w: len(v) for w, v in by_worker.items()}
        a, b = workers

        def ask(s):
            s.sendall(f"GET /api/waha/status HTTP/1.1\r\nHost: x\r\n"
                      f"X-Forwarded-For: {ABUSER}\r\n\r\n".encode())
            buf = b""
            while True:
                head, sep, body = buf.partition(b"\r\n\r\n")
                if sep:
                    length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")][0])
                    if len(body) >= length:
                        return int(head[9:12]), head.decode()
                chunk = s.recv(65536)
                assert chunk, buf
                buf += chunk
        t0 = time.monotonic()
        # The whole burst on worker A's connections ...
        codes_a = [ask(by_worker[a][i % len(by_worker[a])])[0] for i in range(burst)]
        assert codes_a == [200] * burst, codes_a
        # ... leaves nothing for the same client on worker B.
        code, head = ask(by_worker[b][0])
        assert code == 429, (code, head, time.monotonic() - t0)
        assert "RateLimit-Remaining: 0" in head, head
        # And on every connection of both, only what the refill gave since.
        codes = [ask(s)[0] for s in by_worker[a] + by_worker[b]]
        assert codes.count(200) <= int((time.monotonic() - t0) * rate), codes
    finally:
        for s in conns:
            s.close()


def test_tokens_refill_at_the_configured_rate(simulator, gateway):
    rate, burst = 4, 4
    sim = simulator()
    gw = gateway(sim, limited(rate, burst))
    first = until_refused(gw.port, xff=ABUSER)
    assert len(first) == burst + 1, [r[0] for r in first]
    # Hammer for 3 s: what gets through is what the refill gives.
    t_empty = first[-1][3]
    results = []
    while time.monotonic() - t_empty < 3.0:
        results.append(get(gw.port, xff=ABUSER))
    ok = [r for r in results if r[0] == 200]
    low = rate * (results[-1][3] - first[-1][4]) - 1
    high = rate * (results[-1][4] - first[-1][3]) + 1
    assert low <= len(ok) <= high, (len(ok), low, high)
    for r in results:
        check_200(r, burst) if r[0] == 200 else check_429(r, burst, rate)


def test_retry_after_is_truthful(simulator, gateway):
    rate, burst = 0.5, 2
    sim = simulator()
    gw = gateway(sim, limited(rate, burst))
    refused = until_refused(gw.port, xff=ABUSER)
    assert len(refused) == burst + 1, [r[0] for r in refused]
    last = refused[-1]
    check_429(last, burst, rate)
    wait = int(last[1]["Retry-After"])
    # Asked again at once: still refused; after Retry-After: served.
    check_429(get(gw.port, xff=ABUSER), burst, rate)
    time.sleep(max(0.0, last[4] + wait - time.monotonic()))  # what the header asks of a client
    check_200(get(gw.port, xff=ABUSER), burst)


def test_webhooks_and_admin_listener_are_not_limited(simulator, gateway):
    rate, burst = 0.1, 2
    sim = simulator()
    admin = free_port()
    gw = gateway(sim, limited(rate, burst, trusted=False, admin_listen=f"127.0.0.1:{admin}"))
    refused = until_refused(gw.port)
    n429 = 1
    check_429(refused[-1], burst, rate)
    # Webhooks: WAHA must never be refused.
    for i in range(3 * burst):
        now = int(time.time() * 1000)
        envelope = {"id": f"evt_rl{os.getpid()}x{i}", "timestamp": now, "event": "session.status",
                    "session": "default", "me": None, "engine": "WEBJS",
                    "payload": {"name": "default", "status": "WORKING",
                                "statuses": [{"status": "WORKING", "timestamp": now}]}}
        status, headers, body = http_request(gw.port, "POST", "/api/waha/webhook",
                                             {"Content-Type": "application/json"},
                                             json.dumps(envelope).encode())
        assert status == 200, (status, body)
        assert "RateLimit-Limit" not in headers, headers
    # The admin listener: stats and metrics, as often as the operator likes.
    for _ in range(3 * burst):
        for path in ("/api/waha/monitoring/stats", "/metrics"):
            status, headers, body = http_request(admin, "GET", path)
            assert status == 200, (path, body[:300])
            assert "RateLimit-Limit" not in headers, headers
    # The API is still limited for this client.
    check_429(get(gw.port), burst, rate)
    n429 += 1
    assert rate_limited_counts(gw, admin) == (n429, n429)
