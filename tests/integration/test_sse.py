"""Server-Sent Events (issue 5): /api/waha/events from a plain socket.

conftest's Stream (an SSE reader on a plain socket) parses the stream into
events so the tests can check what a browser's EventSource would see: the
status of every tracked session on connect, an event for each change pushed
within a moment of the region update, ids that make Last-Event-ID resume
without a duplicate, the retry hint, the subscriber count in the stats,
streams that end cleanly when the gateway stops, the heartbeat comment, and
a subscriber that stops reading being dropped while the others go on.
"""

import json
import signal
import socket
import time

from conftest import Stream, event_id_key, wait_until

# No scaling: a worker retired for being idle ends its streams (with a short
# retry hint), which the tests of one stream's life must not mistake.
ONE_WORKER = {"server": {"workers": 1, "min_workers": 1, "max_workers": 1}}


def test_stream_sends_each_session_on_connect_then_changes(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,shop:SCAN_QR_CODE")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"}})
    sim.control("POST", "/_sim/config", {"webhookUrl": gw.url + "/api/waha/webhook"})
    s = Stream(gw.port)
    try:
        assert s.status_line.endswith("200 OK"), s.status_line
        assert s.headers["content-type"] == "text/event-stream", s.headers
        assert s.headers["cache-control"] == "no-cache", s.headers
        first = s.wait_for(lambda e: True, 10)
        assert first, "no event on connect"
        assert wait_until(lambda: {e[2]["session"] for e in s.events(0.05)} == {"default", "shop"}
                          and all(e[2]["status"] != "UNKNOWN" for e in s.events()[-2:]), 10), \
            s.events()
        assert 1000 <= s.retry <= 3000, s.retry
        for _, event, data in s.events():
            assert event == "status"
            assert set(data) >= {"session", "status", "authenticated", "me", "upstream",
                                 "cache", "poll"}, data
        before = len(s.events())
        t0 = time.monotonic()
        sim.set_session("shop", "WORKING", me={"id": "123@c.us", "pushName": "Shop"})
        got = s.wait_for(lambda e: e[2]["session"] == "shop" and e[2]["status"] == "WORKING",
                         10)
        took = time.monotonic() - t0
        assert got, s.events()
        assert took < 2.0, took  # webhook + one SSE tick; generous for a busy machine
        newer = s.events()[before:]
        assert all(e[2]["session"] == "shop" for e in newer), newer
        ids = [event_id_key(e[0]) for e in s.events()]
        assert ids == sorted(ids), ids
    finally:
        s.close()


def test_stream_of_one_session(simulator, gateway):
    sim = simulator("--sessions", "default:WORKING,shop:SCAN_QR_CODE")
    gw = gateway(sim, {"upstream": {"sessions": "default,shop"}})
    s = Stream(gw.port, "/api/waha/events?session=shop")
    try:
        assert s.wait_for(lambda e: e[2]["status"] == "SCAN_QR_CODE", 10), s.events()
        assert {e[2]["session"] for e in s.events(0.3)} == {"shop"}
    finally:
        s.close()
    code, _, body = gw.get("/api/waha/events?session=nobody")
    assert code == 404 and json.loads(body)["error"]["code"] == "session_not_found"


def test_last_event_id_resumes_without_duplicate(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"backend": {"status_cache_duration": 60000,
                                   "session_cache_duration": 60000}})
    sim.control("POST", "/_sim/config", {"webhookUrl": gw.url + "/api/waha/webhook"})
    s = Stream(gw.port)
    assert s.wait_for(lambda e: e[2]["status"] == "WORKING", 10), s.events()
    last_id = s.events()[-1][0]
    s.close()
    # Nothing changed: reconnecting with the last id brings no event.
    again = Stream(gw.port, last_event_id=last_id)
    try:
        assert again.events(1.0) == [], again.events()
    finally:
        again.close()
    # Something changed while away: the current status comes at once.
    sim.set_session("default", "STARTING")
    assert wait_until(lambda: gw.status()["status"] == "STARTING", 10)
    resumed = Stream(gw.port, last_event_id=last_id)
    try:
        got = resumed.wait_for(lambda e: e[2]["status"] == "STARTING", 10)
        assert got and event_id_key(got[0][0]) > event_id_key(last_id), resumed.events()
    finally:
        resumed.close()


def test_subscribers_are_counted(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    streams = [Stream(gw.port) for _ in range(5)]
    try:
        assert wait_until(lambda: gw.json("/api/waha/monitoring/stats")["sseClients"] == 5, 10)
    finally:
        for s in streams[:3]:
            s.close()
    assert wait_until(lambda: gw.json("/api/waha/monitoring/stats")["sseClients"] == 2, 10), \
        gw.json("/api/waha/monitoring/stats")
    for s in streams[3:]:
        s.close()


def test_streams_keep_their_sessions_fresh(simulator, gateway):
    """A subscriber is a reader: the fetcher keeps refreshing its session."""
    sim = simulator()
    gw = gateway(sim, {"backend": {"status_cache_duration": 500, "session_cache_duration": 500}})
    s = Stream(gw.port)
    try:
        assert s.wait_for(lambda e: e[2]["status"] == "WORKING", 10)
        calls = sim.session_calls()
        assert wait_until(lambda: sim.session_calls() >= calls + 3, 10), sim.stats()
        sim.set_session("default", "FAILED")  # no webhook: the refresh finds it
        assert s.wait_for(lambda e: e[2]["status"] == "FAILED", 10), s.events()
    finally:
        s.close()


def test_sigterm_ends_streams_and_exits_zero(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    streams = [Stream(gw.port) for _ in range(3)]
    for s in streams:
        assert s.wait_for(lambda e: True, 10)
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    for s in streams:
        s.events(0.5)
        assert s.closed, "a stream stayed open after the gateway stopped"
        s.close()


def test_heartbeat_comment_keeps_a_quiet_stream_alive(simulator, gateway):
    """Nothing changes: a comment line still arrives within the 15 s heartbeat."""
    sim = simulator()
    gw = gateway(sim, ONE_WORKER)  # a quiet gateway retires workers, ending their streams
    s = Stream(gw.port)
    try:
        assert s.wait_for(lambda e: True, 10)
        assert wait_until(lambda: s.events(0.05) is not None and ": keep-alive" in s._text(), 30), \
            s._text()
        assert not s.closed
    finally:
        s.close()


def test_slow_subscriber_is_dropped_and_the_others_keep_receiving(simulator, gateway):
    """A subscriber that stops reading is dropped once its socket's fixed send
    buffer is full and SSE_MAX_BUFFERED (64 KiB) more wait in the worker,
    instead of growing memory; a subscriber that reads keeps being served.
    (Here about 90 rounds of 4 changes; without the fixed send buffer the
    kernel took 4 MiB first and 1,800 rounds did not do it.)"""
    sessions = ["default", "s1", "s2", "s3"]
    sim = simulator("--sessions", ",".join(f"{n}:WORKING" for n in sessions))
    gw = gateway(sim, {"upstream": {"sessions": ",".join(sessions)},
                       "backend": {"flap_hold": 0}, **ONE_WORKER})
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little room in the kernel
    slow.settimeout(10)
    slow.connect(("127.0.0.1", gw.port))
    slow.sendall(b"GET /api/waha/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # never read
    fast = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    fast.sendall(b"GET /api/waha/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    fast.setblocking(False)
    received = bytearray()

    def drain():
        while True:
            try:
                chunk = fast.recv(1 << 20)
            except BlockingIOError:
                return
            assert chunk, "the subscriber that reads was dropped"
            received.extend(chunk)

    def subscribers():
        return gw.json("/api/waha/monitoring/stats")["sseClients"]

    try:
        assert wait_until(lambda: subscribers() == 2, 10)
        deadline = time.monotonic() + 60  # bounded: 4 webhooks a round
        dropped = False
        rounds = 0
        while not dropped and time.monotonic() < deadline:
            status = "STARTING" if rounds % 2 else "WORKING"
            for n in sessions:
                body = json.dumps({"id": f"evt_slow_{rounds}_{n}", "timestamp": 0,
                                   "event": "session.status", "session": n,
                                   "payload": {"name": n, "status": status}}).encode()
                code, _, _ = gw.request("POST", "/api/waha/webhook",
                                        {"Content-Type": "application/json"}, body)
                assert code == 200, code
            rounds += 1
            drain()
            time.sleep(0.03)  # about one SSE tick: each round is its own event
            dropped = subscribers() == 1
        assert dropped, f"still {subscribers()} subscribers after {rounds} rounds"
        assert rounds >= 20, rounds  # 64 KiB and the kernel's buffers took many events
        # The one that reads is still served: a new change reaches it.
        before = len(received)
        sim.set_session("s3", "FAILED")
        code, _, _ = gw.request("POST", "/api/waha/webhook", {"Content-Type": "application/json"},
                                json.dumps({"id": "evt_slow_last", "timestamp": 0,
                                            "event": "session.status", "session": "s3",
                                            "payload": {"name": "s3", "status": "FAILED"}}).encode())
        assert code == 200, code
        assert wait_until(lambda: drain() is None and b'"FAILED"' in received[before:], 10)
        # The slow one gets what the kernel held, then the end of the stream.
        slow.settimeout(10)
        got = bytearray()
        while True:
            try:
                chunk = slow.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got.extend(chunk)
        assert got.startswith(b"HTTP/1.1 200"), bytes(got[:200])
    finally:
        slow.close()
        fast.close()
