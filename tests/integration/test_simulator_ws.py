"""The simulator's WebSocket (scripts/waha_sim_ws.py) on its own, through a
small RFC 6455 client written here: the handshake, the envelope frames and
their filters, WAHA's 1008 on a bad key, the heartbeat and its pong
enforcement, client frames (masking, pings, garbage), the test controls
(drop, 404 mode, freeze) and the bounds (slow readers, number of clients)."""

import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import threading
import time

import pytest

from conftest import API_KEY, wait_until

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    """The server ended the TCP connection (EOF or reset)."""


class WsClient:
    """One /ws connection. Frames it sends are masked unless told not to."""

    def __init__(self, port, query="", api_key=API_KEY, rcvbuf=None, timeout=5.0, handshake=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.key = base64.b64encode(os.urandom(16)).decode()
        if api_key is not None:
            query = (query + "&" if query else "") + "x-api-key=" + api_key
        self.path = "/ws" + ("?" + query if query else "")
        if handshake:
            self.send_handshake()

    def send_handshake(self):
        self.sock.sendall((f"GET {self.path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def read_head(self):
        """(status, {lower-case header: value}) of the answer to the upgrade."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    def upgraded(self):
        status, headers = self.read_head()
        assert status == 101, (status, headers)
        expected = base64.b64encode(hashlib.sha1(self.key.encode() + GUID).digest()).decode()
        assert headers["sec-websocket-accept"] == expected
        assert headers["upgrade"].lower() == "websocket"
        return self

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            raise Closed("reset")
        if not data:
            raise Closed("eof")
        self.buf += data

    def recv_frame(self, timeout=5.0):
        """(opcode, payload) of the next frame; socket.timeout if none."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames are never masked"
                n, pos = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, pos = struct.unpack_from(">H", self.buf, 2)[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, pos = struct.unpack_from(">Q", self.buf, 2)[0], 10
                if n < 126 or pos > 2:
                    if len(self.buf) >= pos + n:
                        payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
                        assert b0 & 0x80, "the simulator sends no fragments"
                        return b0 & 0x0F, payload
            self._fill()

    def recv_data(self, timeout=5.0):
        """The next text frame as JSON, answering pings on the way."""
        deadline = time.monotonic() + timeout
        while True:
            op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == 9:
                self.send_frame(10, payload)
            elif op == 1:
                return json.loads(payload)
            else:
                raise AssertionError(f"unexpected frame {op} {payload!r}")

    def send_frame(self, opcode, payload=b"", mask=True, fin=True):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        bit = 0x80 if mask else 0
        if n < 126:
            head += bytes([bit | n])
        elif n < 65536:
            head += bytes([bit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([bit | 127]) + struct.pack(">Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def expect_close(self, code, timeout=5.0):
        """The next frames end with a close frame carrying CODE: its reason."""
        deadline = time.monotonic() + timeout
        while True:
            op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == 8:
                assert struct.unpack(">H", payload[:2])[0] == code, payload
                return payload[2:].decode()

    def expect_end(self, timeout=5.0):
        """The connection ends without a close frame: "eof" or "reset"."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                op, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
                assert op != 8, f"unexpected close frame {payload!r}"
                if op == 9:
                    self.send_frame(10, payload)
        except Closed as exc:
            return str(exc)

    def close(self):
        self.sock.close()


def ws_stats(sim):
    return sim.control("GET", "/_sim/ws")


def ws_set(sim, **body):
    return sim.control("POST", "/_sim/ws", body)


@pytest.fixture
def clients():
    made = []

    def make(*args, **kw):
        c = WsClient(*args, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def test_handshake_and_one_frame_per_status_change(simulator, clients):
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    ws = clients(sim.port, api_key=None, query="X-API-KEY=" + API_KEY).upgraded()  # name: any case
    wait_until(lambda: ws_stats(sim)["connections"] == 1, 5)
    sim.set_session("default", "STOPPED")
    sim.set_session("shop", "FAILED")
    got = [ws.recv_data(), ws.recv_data()]
    sent = sim.control("GET", "/_sim/webhooks")[-2:]
    assert got == sent  # the webhook envelope itself: same id, timestamp, payload
    assert [(e["session"], e["payload"]["status"]) for e in got] == [("default", "STOPPED"), ("shop", "FAILED")]
    stats = ws_stats(sim)
    assert stats["framesSent"] == 2 and stats["connectsTotal"] == 1 and stats["refused"] == 0
    assert stats["recent"][-1]["result"] == "accepted"


def test_waha_s_own_routes_make_frames(simulator, clients):
    """A status change made through WAHA's API (a client stopping and
    starting a session), not only through /_sim, is a frame on /ws."""
    sim = simulator("--sessions", "default:WORKING", "--start-delay-ms", "200")
    ws = clients(sim.port).upgraded()
    wait_until(lambda: ws_stats(sim)["connections"] == 1, 5)
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        for action, first in (("stop", "STOPPED"), ("start", "STARTING")):
            conn.request("POST", f"/api/sessions/default/{action}", body=b"",
                         headers={"X-Api-Key": API_KEY})
            answer = conn.getresponse()
            answer.read()
            assert answer.status in (200, 201), (action, answer.status)
            frame = ws.recv_data()
            assert (frame["session"], frame["payload"]["status"]) == ("default", first), frame
    finally:
        conn.close()
    # and the start goes on by itself, a frame for each status it reaches
    assert ws.recv_data()["payload"]["status"] in ("SCAN_QR_CODE", "WORKING")


def test_session_and_events_filters(simulator, clients):
    sim = simulator("--sessions", "default:WORKING,shop:WORKING")
    every = clients(sim.port).upgraded()
    shop = clients(sim.port, query="session=shop").upgraded()
    listed = clients(sim.port, query="events=message,session.status").upgraded()
    repeated = clients(sim.port, query="events=message&events=session.status&events=bogus").upgraded()
    other = clients(sim.port, query="events=message&events=engine.event").upgraded()
    wait_until(lambda: ws_stats(sim)["connections"] == 5, 5)
    sim.set_session("default", "STOPPED")
    sim.set_session("shop", "STOPPED")
    for c in (every, listed, repeated):
        assert [c.recv_data()["session"], c.recv_data()["session"]] == ["default", "shop"]
    assert shop.recv_data()["session"] == "shop"
    with pytest.raises(socket.timeout):  # events it did not ask for
        other.recv_data(timeout=0.5)
    with pytest.raises(socket.timeout):
        shop.recv_data(timeout=0.3)


@pytest.mark.parametrize("key", ["wrong", ""])
def test_bad_key_is_upgraded_then_closed_1008(simulator, clients, key):
    sim = simulator()
    ws = clients(sim.port, api_key=key).upgraded()
    assert ws.expect_close(1008) == "Unauthorized"
    assert ws.expect_end() == "eof"
    stats = ws_stats(sim)
    assert stats["refused"] == 1 and stats["connections"] == 0
    assert stats["recent"][-1]["result"] == "unauthorized"


def test_no_key_needed_without_auth(simulator, clients):
    sim = simulator("--no-api-key")
    ws = clients(sim.port, api_key=None).upgraded()
    sim.set_session("default", "STOPPED")
    assert ws.recv_data()["payload"]["status"] == "STOPPED"


def test_heartbeat_terminates_a_client_without_pong(simulator, clients):
    sim = simulator("--ws-heartbeat-ms", "200")
    polite = clients(sim.port).upgraded()
    pings, stop = [], threading.Event()

    def answer_pings():  # the other client answers every ping and stays
        while not stop.is_set():
            op, payload = polite.recv_frame()
            assert op == 9
            polite.send_frame(10, payload)
            pings.append(time.monotonic())
    responder = threading.Thread(target=answer_pings, daemon=True)
    responder.start()
    mute = clients(sim.port).upgraded()
    op, _ = mute.recv_frame()
    assert op == 9  # the server's ping, not answered
    start = time.monotonic()
    with pytest.raises(Closed):
        while True:
            mute.recv_frame()
    assert time.monotonic() - start < 2.0
    assert wait_until(lambda: len(pings) >= 6, 5)
    stop.set()
    responder.join(timeout=5)
    stats = ws_stats(sim)
    assert stats["terminated"] == 1 and stats["connections"] == 1 and stats["pongsReceived"] >= 6


def test_client_ping_is_answered(simulator, clients):
    sim = simulator()
    ws = clients(sim.port).upgraded()
    ws.send_frame(9, b"are you there")
    assert ws.recv_frame() == (10, b"are you there")
    ws.send_frame(1, b'{"ignored": true}')  # WAHA ignores what clients send
    ws.send_frame(8, struct.pack(">H", 1000) + b"bye")
    assert ws.expect_close(1000) == ""
    assert ws.expect_end() == "eof"
    wait_until(lambda: ws_stats(sim)["connections"] == 0, 5)


@pytest.mark.parametrize("what,data,code", [
    ("unmasked", None, 1002),
    ("rsv bits", bytes([0xC1, 0x80]) + b"\0\0\0\0", 1002),
    ("unknown opcode", bytes([0x83, 0x80]) + b"\0\0\0\0", 1002),
    ("long control", bytes([0x89, 0x80 | 126, 0, 200]) + b"\0" * 204, 1002),
    ("stray continuation", bytes([0x80, 0x80]) + b"\0\0\0\0", 1002),
    ("too big", bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 1 << 20), 1009),
    ("bad utf-8", bytes([0x81, 0x82]) + b"\0\0\0\0\xc3\x28", 1007),
])
def test_bad_client_frames_are_closed(simulator, clients, what, data, code):
    sim = simulator()
    ws = clients(sim.port).upgraded()
    if data is None:
        ws.send_frame(1, b"{}", mask=False)
    else:
        ws.sock.sendall(data)
    ws.expect_close(code)
    assert ws.expect_end() in ("eof", "reset")
    wait_until(lambda: ws_stats(sim)["connections"] == 0, 5)
    assert ws_stats(sim)["connections"] == 0


def test_garbage_instead_of_a_handshake(simulator, clients):
    sim = simulator()
    ws = clients(sim.port, handshake=False)
    ws.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert ws.read_head()[0] == 400
    assert ws_stats(sim)["recent"][-1]["result"] == "badRequest"


@pytest.mark.parametrize("how", ["abrupt", "close", "reset"])
def test_drop(simulator, clients, how):
    sim = simulator()
    a, b = clients(sim.port).upgraded(), clients(sim.port).upgraded()
    wait_until(lambda: ws_stats(sim)["connections"] == 2, 5)
    assert sim.control("POST", "/_sim/ws/drop", {"how": how, "code": 4000, "reason": "bye"}) == {"dropped": 2}
    assert ws_stats(sim)["connections"] == 0
    for ws in (a, b):
        if how == "close":
            assert ws.expect_close(4000) == "bye"
            assert ws.expect_end() == "eof"
        else:
            assert ws.expect_end() == ("eof" if how == "abrupt" else "reset")


def test_notfound_mode_answers_like_a_waha_without_ws(simulator, clients):
    sim = simulator("--ws-mode", "notfound")
    ws = clients(sim.port)
    status, headers = ws.read_head()
    assert status == 404
    while len(ws.buf) < int(headers["content-length"]):
        ws._fill()
    body = json.loads(ws.buf)
    assert body["statusCode"] == 404 and body["message"].startswith("Cannot GET /ws")
    assert ws_stats(sim)["recent"][-1]["result"] == "notFound"
    ws_set(sim, mode="normal")
    clients(sim.port).upgraded()
    # A plain GET /ws (no upgrade) is Express's 404 in any mode.
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    conn.request("GET", "/ws")
    assert conn.getresponse().status == 404
    conn.close()


def test_freeze_sends_nothing_until_thawed(simulator, clients):
    sim = simulator("--ws-heartbeat-ms", "300")
    ws = clients(sim.port).upgraded()
    ws_set(sim, mode="freeze")
    sim.set_session("default", "STOPPED")  # not sent
    ws.send_frame(9, b"x")  # not answered
    late = clients(sim.port)  # not upgraded while frozen
    with pytest.raises(socket.timeout):
        ws.recv_frame(timeout=1.0)  # no pong, no ping, no event
    late.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        late.read_head()
    ws_set(sim, mode="normal")
    late.sock.settimeout(5)
    late.upgraded()
    sim.set_session("default", "WORKING")
    assert ws.recv_data()["payload"]["status"] == "WORKING"
    assert late.recv_data()["payload"]["status"] == "WORKING"


def test_a_client_that_does_not_read_is_dropped(simulator, clients):
    sim = simulator()
    slow = clients(sim.port, rcvbuf=4096).upgraded()
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        for i in range(3000):
            conn.request("POST", "/_sim/sessions/default", json.dumps({"status": f"S{i % 2}"}),
                         {"Content-Type": "application/json"})
            conn.getresponse().read()
            if i % 50 == 0 and ws_stats(sim)["slowDropped"]:
                break
    finally:
        conn.close()
    assert wait_until(lambda: ws_stats(sim)["slowDropped"] == 1 and ws_stats(sim)["connections"] == 0, 5)
    del slow


def test_number_of_clients_is_bounded(simulator, clients):
    sim = simulator()
    for _ in range(64):
        clients(sim.port).upgraded()
    status, _ = clients(sim.port).read_head()
    assert status == 503
    stats = ws_stats(sim)
    assert stats["connections"] == 64 and stats["recent"][-1]["result"] == "busy"
