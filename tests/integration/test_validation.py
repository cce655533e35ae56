"""Validation before replace (issue 3), the cases test_refresh.py does not
cover: 200 answers that are JSON but not the session asked for. The WAHA
simulator always answers well-formed sessions, so these tests use a minimal
fake WAHA (a thread in this process, on 127.0.0.1) whose answer the test
sets."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import wait_until

SHOP_ME = {"id": "11111111111@c.us", "pushName": "Shop"}


def session_object(name, status, me=None):
    return {"name": name, "status": status, "config": {}, "me": me,
            "presence": "online" if status == "WORKING" else None,
            "timestamps": {"activity": None}, "engine": {"engine": "WEBJS"}}


class FakeWaha:
    """GET /api/sessions (the list) answers self.list_body and GET
    /api/sessions/NAME (one session's details) self.details_body (bytes,
    200, JSON); /health and /ping answer like WAHA; everything else 404.
    Counts the calls of each kind."""

    def __init__(self):
        self.lock = threading.Lock()
        self.list_body = b"[]"
        self.details_body = b"{}"
        self.counts = {"list": 0, "details": 0}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                if path in ("/api/sessions", "/api/sessions/"):
                    with fake.lock:
                        fake.counts["list"] += 1
                        body = fake.list_body
                elif path.startswith("/api/sessions/"):
                    with fake.lock:
                        fake.counts["details"] += 1
                        body = fake.details_body
                elif path == "/health":
                    body = b'{"status":"ok","info":{},"error":{},"details":{}}'
                elif path == "/ping":
                    body = b'{"message":"pong"}'
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answer_list(self, items):
        """The list of WAHA's GET /api/sessions: its items have no engine."""
        items = [{k: v for k, v in i.items() if k != "engine"} if isinstance(i, dict) else i
                 for i in items]
        with self.lock:
            self.list_body = json.dumps(items).encode()

    def answer_details(self, obj):
        with self.lock:
            self.details_body = json.dumps(obj).encode()

    def calls(self, kind):
        with self.lock:
            return self.counts[kind]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def fake_waha():
    fake = FakeWaha()
    yield fake
    fake.stop()


BAD_ANSWERS = {
    "name-mismatch": session_object("other", "STOPPED"),
    "status-lowercase": session_object("default", "stopped"),
    "status-missing": {k: v for k, v in session_object("default", "STOPPED").items()
                       if k != "status"},
    "me-not-an-object": session_object("default", "WORKING", me="11111111111@c.us"),
    "not-an-object": [session_object("default", "STOPPED")],
}


# A bad item spoils the whole list (its other items are not trusted
# either); an item of another name is no bad list item (WAHA lists that
# session, not ours), but it is a bad answer to GET /api/sessions/default.
CASES = ([(case, "list") for case in BAD_ANSWERS if case != "name-mismatch"]
         + [(case, "details") for case in BAD_ANSWERS])


@pytest.mark.parametrize("case,where", CASES)
def test_wrong_session_answers_never_replace_good_data(fake_waha, gateway, poller, case, where):
    fake_waha.answer_list([session_object("default", "WORKING", SHOP_ME)])
    fake_waha.answer_details(session_object("default", "WORKING", SHOP_ME))
    gw = gateway(None, {"backend": {"status_cache_duration": 300, "session_cache_duration": 300},
                        "limits": {"request_timeout": 2000, "max_retries": 0},
                        "circuit": {"failure_threshold": 1000}},
                 upstream_url=fake_waha.url)
    good = gw.status()
    assert good["status"] == "WORKING" and good["me"] == SHOP_ME, good
    good_object = gw.json("/api/waha/sessions/default")
    assert good_object["engine"] == {"engine": "WEBJS"}, good_object
    # A status reader keeps the list in demand, an object reader the details.
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    objects = poller(gw.port, "/api/waha/sessions/default", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10)

    t_bad = time.monotonic()
    calls = fake_waha.calls(where)
    if where == "list":
        fake_waha.answer_list([BAD_ANSWERS[case]])
        hit = p.wait_for(lambda st, d: st == 200 and d["upstream"]["healthy"] is False
                         and d["upstream"]["lastError"], 10, since=t_bad)
        assert hit, f"the bad answer was never reported; last {p.latest()}"
        assert isinstance(hit[3]["upstream"]["lastError"], str), hit
    else:
        fake_waha.answer_details(BAD_ANSWERS[case])
        assert wait_until(lambda: "GET /api/sessions/default failed" in gw.log_text(), 10), \
            gw.log_text()
    # Several bad answers in a row.
    assert wait_until(lambda: fake_waha.calls(where) >= calls + 3, 10), fake_waha.counts
    assert gw.json("/api/waha/sessions/default") == good_object
    results = p.stop() + objects.stop()
    for r in results:
        if r[0] >= t_bad:
            assert r[2] == 200, r
            d = r[3]
            assert d.get("session", d.get("name")) == "default" and d["status"] == "WORKING", \
                f"a bad answer replaced the good data: {d}"
            assert d["me"] == SHOP_ME, d

    # A good answer is taken again at once.
    fake_waha.answer_list([session_object("default", "STOPPED")])
    fake_waha.answer_details(session_object("default", "STOPPED"))
    ok = wait_until(lambda: (lambda d: d["status"] == "STOPPED" and d["upstream"]["healthy"]
                             and d["upstream"]["lastError"] is None)(gw.status()), 10, 0.05)
    assert ok, gw.status()
    assert wait_until(lambda: gw.json("/api/waha/sessions/default")["status"] == "STOPPED", 10)
