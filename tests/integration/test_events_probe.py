"""The fetcher's WebSocket client (server/fetcher/events.c), run by
tests/tools/events_probe.c (make events-probe) against the simulator's /ws:
one message per status change, refusals (1008 on a bad key, 404 from a WAHA
without /ws) reported once and retried only every backoff_max_ms, drops of
every kind followed by reconnection with backoff, silence detection, a WAHA
that is not there yet, and wss:// through a TLS front (certificate and host
name verified). Every probe must end with exit status 0 (AddressSanitizer's
leak check included when it is the sanitized build) and must never have
printed the API key, in any form.

The probe runs with short periods (FAST); its lines are led by
CLOCK_MONOTONIC ms, the clock of Python's time.monotonic() on Linux.
"""

import base64
import hashlib
import itertools
import json
import os
import re
import selectors
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import GATEWAY_BIN, clean_env, free_port, stop_pid, wait_until

PROBE_BIN = os.environ.get("EVENTS_PROBE_BIN") or str(Path(GATEWAY_BIN).parent / "events_probe")
# Characters that must be percent-encoded, and a mark to look for in output.
KEY = "Pr0be-K3y/with&odd=chars?%+ \u00e9"
KEY_FORMS = (KEY, "Pr0be-K3y", quote(KEY, safe=""), quote(KEY, safe="").lower())
FIRST_MS, MAX_MS, SILENCE_MS, PING_MS, CONNECT_MS = 200, 1500, 1000, 200, 2000
FAST = ["--ping-ms", str(PING_MS), "--silence-ms", str(SILENCE_MS),
        "--backoff-first-ms", str(FIRST_MS), "--backoff-max-ms", str(MAX_MS),
        "--connect-timeout-ms", str(CONNECT_MS)]

pytestmark = pytest.mark.skipif(not os.path.exists(PROBE_BIN),
                                reason=f"{PROBE_BIN} is not built (make events-probe)")

_counter = itertools.count(1)


def mono_ms():
    return time.monotonic() * 1000.0


class Probe:
    """One events_probe process; its stdout and stderr go to files."""

    def __init__(self, workdir, url, key=KEY, args=FAST, env_extra=None):
        n = next(_counter)
        self.out_path = Path(workdir) / f"probe-{n}.out"
        self.err_path = Path(workdir) / f"probe-{n}.err"
        env = clean_env()
        env.pop("SSL_CERT_FILE", None)
        env.update(env_extra or {})
        if key is not None:
            env["EVENTS_PROBE_KEY"] = key
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([PROBE_BIN, *args, url], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid

    def lines(self):
        out = []
        for line in self.out_path.read_text(errors="replace").splitlines():
            ms, _, rest = line.partition(" ")
            kind, _, rest = rest.partition(" ")
            if ms.isdigit():
                out.append((int(ms), kind, rest))
        return out

    def states(self):
        """[(ms, state, why)]"""
        return [(ms, *rest.partition(" ")[::2]) for ms, kind, rest in self.lines() if kind == "state"]

    def messages(self):
        return [json.loads(rest.partition(" ")[2]) for _, kind, rest in self.lines() if kind == "message"]

    def count(self, state):
        return sum(1 for _, s, _ in self.states() if s == state)

    def wait_state(self, state, timeout, count=1):
        return wait_until(lambda: self.count(state) >= count, timeout)

    def wait_why(self, text, timeout):
        """The first state line whose reason contains TEXT: (ms, state, why)."""
        def found():
            return next((s for s in self.states() if text in s[2]), None)
        return wait_until(found, timeout)

    def stop(self):
        return stop_pid(self.proc)

    def finish(self):
        """Stop it; check a clean exit and that the key never showed. (out, err)"""
        code = self.stop()
        out = self.out_path.read_text(errors="replace")
        err = self.err_path.read_text(errors="replace")
        assert code == 0, f"probe exited {code}\n{out}\n{err}"
        assert "runtime error" not in err and "Sanitizer" not in err, err
        for form in KEY_FORMS:
            assert form not in out and form not in err, f"the key showed as {form!r}"
        return out, err


@pytest.fixture
def probe(procs, tmp_path):
    """Factory: probe(url, key=KEY, args=FAST, env_extra=None) -> Probe (stopped at teardown)."""
    def make(url, **kw):
        p = Probe(tmp_path, url, **kw)
        procs.items.append(p)
        return p
    return make


def ws_stats(sim):
    return sim.control("GET", "/_sim/ws")


def ws_set(sim, **body):
    return sim.control("POST", "/_sim/ws", body)


def attempts(sim, result):
    """Times (ms since the epoch) of the simulator's /ws requests with RESULT."""
    return [r["at"] for r in ws_stats(sim)["recent"] if r["result"] == result]


def test_one_message_per_status_change(simulator, probe):
    sim = simulator("--sessions", "default:WORKING,shop:WORKING", api_key=KEY)
    p = probe(sim.url)
    assert p.wait_state("connected", 10), p.states()
    sim.set_session("default", "STOPPED")
    sim.set_session("shop", "SCAN_QR_CODE")
    sim.set_session("default", "STARTING")
    assert wait_until(lambda: len(p.messages()) == 3, 10)
    assert p.messages() == sim.control("GET", "/_sim/webhooks")[-3:]  # same ids and timestamps
    assert [m["payload"]["status"] for m in p.messages()] == ["STOPPED", "SCAN_QR_CODE", "STARTING"]
    assert ws_stats(sim)["connections"] == 1
    out, err = p.finish()
    assert "stats attempts=1 connects=1 messages=3" in out
    assert [s for _, s, _ in p.states()] == ["connecting", "connected", "off"]
    assert "connected, session.status is pushed" in err


def test_bad_key_is_refused_once_and_retried_only_every_longest_period(simulator, probe):
    sim = simulator(api_key="simkey")
    p = probe(sim.url)
    assert p.wait_state("refused", 10), p.states()
    assert wait_until(lambda: len(attempts(sim, "unauthorized")) >= 4, 4 * MAX_MS / 1000 + 10)
    times = attempts(sim, "unauthorized")
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(MAX_MS - 50 <= g <= MAX_MS + 1500 for g in gaps), gaps
    refused = [s for s in p.states() if s[1] == "refused"]
    assert len(refused) == 1 and refused[0][2] == "WAHA closed the WebSocket with 1008 Unauthorized"
    assert p.count("connected") == 0  # upgraded, but never reported as connected
    # Once the key is right it connects, at the next period.
    sim.control("POST", "/_sim/config", {"apiKey": KEY})
    assert p.wait_state("connected", MAX_MS / 1000 + 10)
    out, err = p.finish()
    assert err.count("refused") == 1  # one log line for all the refusals
    assert "trying again every 1.5 s" in err


def test_404_from_a_waha_without_ws_is_refused_once(simulator, probe):
    sim = simulator("--ws-mode", "notfound", api_key=KEY)
    p = probe(sim.url, args=FAST + ["--log-level", "debug"])
    assert p.wait_state("refused", 10)
    assert wait_until(lambda: len(attempts(sim, "notFound")) >= 3, 3 * MAX_MS / 1000 + 10)
    assert [why for _, s, why in p.states() if s == "refused"] == ["HTTP 404: this WAHA has no /ws"]
    ws_set(sim, mode="normal")
    assert p.wait_state("connected", MAX_MS / 1000 + 10)
    # The 404 body echoed the URL, key included (as Express does): never shown.
    out, err = p.finish()
    assert "again; retrying" in err  # the repeats, at debug level only


def test_drops_reconnect_with_growing_backoff_reset_by_a_stable_link(simulator, probe):
    sim = simulator(api_key=KEY)
    p = probe(sim.url)
    assert p.wait_state("connected", 10)
    time.sleep(MAX_MS / 1000 + 0.2)  # the link has now stayed up for backoff_max_ms
    steps = [("abrupt", "WAHA closed the connection", FIRST_MS),
             ("close", "WAHA closed the WebSocket with 4000 bye", 2 * FIRST_MS),
             ("reset", "reset by peer", 4 * FIRST_MS)]
    for how, why, cap in steps:
        before = p.count("connected")
        assert sim.control("POST", "/_sim/ws/drop", {"how": how, "code": 4000, "reason": "bye"}) == \
            {"dropped": 1}
        assert p.wait_state("connected", 10, count=before + 1), p.states()
        states = p.states()
        up = [i for i, s in enumerate(states) if s[1] == "connected"][-1]
        lost_ms, state, lost_why = states[up - 1]
        assert state == "connecting" and lost_why.startswith("connection lost: ") and why in lost_why, \
            lost_why
        gap = states[up][0] - lost_ms
        assert cap / 2 <= gap <= cap + 1000, (how, gap)  # equal jitter: [cap/2, cap]
    # A link that stayed up backoff_max_ms starts the doubling again.
    time.sleep(MAX_MS / 1000 + 0.2)
    before = p.count("connected")
    sim.control("POST", "/_sim/ws/drop", {"how": "abrupt"})
    assert p.wait_state("connected", 10, count=before + 1)
    states = p.states()
    assert states[-1][0] - states[-2][0] <= FIRST_MS + 1000
    out, _ = p.finish()
    assert "connects=5" in out


def test_silence_is_detected_and_a_silent_upgrade_times_out(simulator, probe):
    sim = simulator(api_key=KEY)
    p = probe(sim.url)
    assert p.wait_state("connected", 10)
    frozen_at = mono_ms()
    ws_set(sim, mode="freeze")  # no pongs, no events, no 101 for new clients
    lost = p.wait_why("nothing received", 10)
    assert lost, p.states()
    assert lost[0] - frozen_at >= SILENCE_MS - PING_MS - 100, (lost[0] - frozen_at)
    assert p.wait_why(f"no answer within {CONNECT_MS / 1000:.1f} s", CONNECT_MS / 1000 + 10)
    ws_set(sim, mode="normal")
    assert p.wait_state("connected", 10, count=2)
    p.finish()


def test_a_waha_that_is_not_there_yet(simulator, probe):
    port = free_port()
    p = probe(f"http://127.0.0.1:{port}")
    assert p.wait_why("connect: Connection refused", 10)
    assert wait_until(lambda: len(p.states()) >= 2 and mono_ms() - p.states()[1][0] > 2 * MAX_MS, 10)
    sim = simulator("--port", str(port), api_key=KEY)
    assert p.wait_state("connected", MAX_MS / 1000 + 10)
    sim.set_session("default", "FAILED")
    assert wait_until(lambda: p.messages(), 10)
    out, err = p.finish()
    # Several attempts failed alike: one line for them all.
    assert [why for _, s, why in p.states() if s == "connecting"] == ["", "connect: Connection refused"]
    assert err.count("Connection refused") == 1
    attempts_made = int(out.split("attempts=")[1].split()[0])
    assert attempts_made >= 3


def test_bad_upstream_url_is_not_started(probe):
    p = probe("http://user:secret@127.0.0.1:1")
    assert p.proc.wait(timeout=10) == 1
    err = p.err_path.read_text()
    assert "not started" in err and "secret" not in err


# --------------------------------------------------------------------------- wss://

class TlsFront:
    """TLS on a free 127.0.0.1 port, in front of PORT: one thread per
    connection, one select() loop each."""

    def __init__(self, port, cert, key):
        self.target = port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()
        self.handshake_failures = 0

    def _accept(self):
        while not self.stopping.is_set() and len(self.threads) < 200:
            try:
                raw, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, raw):
        raw.settimeout(5)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            raw.close()
            return
        up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        sel = selectors.DefaultSelector()
        sel.register(tls, selectors.EVENT_READ, (tls, up))
        sel.register(up, selectors.EVENT_READ, (up, tls))
        try:
            while not self.stopping.is_set():
                ready = sel.select(0.1)
                if tls.pending():
                    ready.append((sel.get_key(tls), selectors.EVENT_READ))
                for key, _ in ready:
                    src, dst = key.data
                    data = src.recv(65536)
                    if not data:
                        return
                    dst.sendall(data)
        except (OSError, ssl.SSLError):
            return
        finally:
            sel.close()
            tls.close()
            up.close()

    def close(self):
        self.stopping.set()
        self.listener.close()
        for t in self.threads:
            t.join(timeout=5)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for the name localhost only."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


@pytest.fixture
def tls_front(certificate):
    fronts = []

    def make(port):
        front = TlsFront(port, *certificate)
        fronts.append(front)
        return front
    yield make
    for front in fronts:
        front.close()


def test_wss_with_a_verified_certificate(simulator, probe, tls_front, certificate):
    sim = simulator(api_key=KEY)
    front = tls_front(sim.port)
    p = probe(f"https://localhost:{front.port}", env_extra={"SSL_CERT_FILE": certificate[0]})
    assert p.wait_state("connected", 10), (p.states(), p.err_path.read_text())
    sim.set_session("default", "STOPPED")
    assert wait_until(lambda: p.messages(), 10)
    assert p.messages()[0]["payload"]["status"] == "STOPPED"
    out, err = p.finish()
    assert "wss://localhost:" in err


@pytest.mark.parametrize("host,trust,why", [
    ("localhost", False, "TLS: certificate not accepted: self-signed certificate"),
    ("127.0.0.1", True, "TLS: certificate not accepted: IP address mismatch"),
])
def test_wss_refuses_an_untrusted_or_misnamed_certificate(simulator, probe, tls_front, certificate,
                                                          host, trust, why):
    sim = simulator(api_key=KEY)
    front = tls_front(sim.port)
    env = {"SSL_CERT_FILE": certificate[0]} if trust else {}
    p = probe(f"https://{host}:{front.port}", env_extra=env)
    assert p.wait_why(why, 10), p.states()
    assert wait_until(lambda: front.handshake_failures >= 2, 10)  # retried, never upgraded
    assert ws_stats(sim)["connectsTotal"] == 0
    p.finish()


# --------------------------------------------------------------------------- a scripted peer

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(head):
    key = re.search(rb"(?im)^Sec-WebSocket-Key:\s*(\S+)\s*$", head).group(1)
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def upgraded(head, extra=""):
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_for(head)}\r\n{extra}\r\n").encode()


def close_frame(code, reason):
    payload = struct.pack(">H", code) + reason.encode()
    return bytes([0x88, len(payload)]) + payload


class ScriptedPeer:
    """A raw TCP server that reads each request head, records it and
    answers RESPOND(head) (bytes), then keeps the connection until the
    client closes it (at most 10 s)."""

    def __init__(self, respond):
        self.respond = respond
        self.heads = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set() and len(self.threads) < 100:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.heads.append(head)
            conn.sendall(self.respond(head))
            while not self.stopping.is_set() and conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stopping.set()
        self.listener.close()
        for t in self.threads:
            t.join(timeout=12)


@pytest.fixture
def scripted():
    peers = []

    def make(respond):
        peer = ScriptedPeer(respond)
        peers.append(peer)
        return peer
    yield make
    for peer in peers:
        peer.close()


def test_the_upgrade_request(probe, scripted):
    peer = scripted(lambda head: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    p = probe(f"http://127.0.0.1:{peer.port}/waha/")
    assert wait_until(lambda: peer.heads, 10)
    p.finish()
    lines = peer.heads[0].decode().split("\r\n")
    assert lines[0] == f"GET /waha/ws?session=*&events=session.status&x-api-key={quote(KEY, safe='')} HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["Host"] == f"127.0.0.1:{peer.port}"
    assert headers["Upgrade"] == "websocket" and headers["Connection"] == "Upgrade"
    assert headers["Sec-WebSocket-Version"] == "13"
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"], validate=True)) == 16


def test_no_key_no_key_parameter(probe, scripted):
    peer = scripted(lambda head: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    p = probe(f"http://127.0.0.1:{peer.port}", key=None)
    assert wait_until(lambda: peer.heads, 10)
    p.finish()
    assert peer.heads[0].startswith(b"GET /ws?session=*&events=session.status HTTP/1.1\r\n")


BIG_HEAD = b"HTTP/1.1 101 Switching Protocols\r\nX-Filler: " + b"x" * 9000 + b"\r\n\r\n"


@pytest.mark.parametrize("name,respond,state,why", [
    ("502", lambda h: b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
     "connecting", "HTTP 502 instead of 101 Switching Protocols"),
    ("401 echoing the URL", lambda h: b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 300\r\n\r\n" + h[:300],
     "refused", "HTTP 401: the API key is not accepted"),
    ("403", lambda h: b"HTTP/1.1 403 Forbidden\r\n\r\n", "refused", "HTTP 403: the API key is not accepted"),
    ("not HTTP", lambda h: b"SSH-2.0-OpenSSH\r\n\r\n", "connecting", "not an HTTP answer"),
    ("head too big", lambda h: BIG_HEAD, "connecting", "the upgrade answer's head is over 8 KiB"),
    ("wrong accept", lambda h: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
     b"Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
     "connecting", "101 with a wrong or no Sec-WebSocket-Accept"),
    ("no upgrade header", lambda h: upgraded(h).replace(b"Upgrade: websocket\r\n", b""),
     "connecting", "101 without Upgrade: websocket and Connection: Upgrade"),
    ("extension", lambda h: upgraded(h, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
     "connecting", "101 with an extension or subprotocol that was not asked for"),
    ("masked server frame", lambda h: upgraded(h) + bytes([0x81, 0x82, 1, 2, 3, 4, 0x7a, 0x7f]),
     "connecting", "WAHA broke the WebSocket protocol (closed with 1002)"),
    ("message too big", lambda h: upgraded(h) + bytes([0x89, 0]) + bytes([0x81, 127]) + struct.pack(">Q", 70000)
     + b"x" * 100,
     "connecting", "connection lost: WAHA sent a message over 65536 bytes (closed with 1009)"),
    ("text not UTF-8", lambda h: upgraded(h) + bytes([0x81, 2, 0xc3, 0x28]),
     "connecting", "connection lost: WAHA sent text that is not UTF-8 (closed with 1007)"),
    ("1008 Forbidden", lambda h: upgraded(h) + close_frame(1008, "Forbidden"),
     "refused", "WAHA closed the WebSocket with 1008 Forbidden"),
    ("4001 of WAHA 2024.10", lambda h: upgraded(h) + close_frame(4001, '{"error":"use session=*"}'),
     "refused", 'WAHA closed the WebSocket with 4001 {"error":"use session=*"}'),
    ("a reason holding the key", lambda h: upgraded(h) + close_frame(1011, "bad " + quote(KEY, safe="")),
     "connecting", "WAHA closed the WebSocket with 1011 (reason withheld: it holds the key)"),
    ("upgraded, then silent", lambda h: upgraded(h), "connecting", "no answer within 2.0 s"),
])
def test_what_a_bad_peer_gets(probe, scripted, name, respond, state, why):
    peer = scripted(respond)
    p = probe(f"http://127.0.0.1:{peer.port}")
    found = p.wait_why(why, CONNECT_MS / 1000 + 10)
    assert found and found[1] == state, (name, p.states())
    assert p.count("connected") == (1 if why.startswith("connection lost") else 0)
    assert wait_until(lambda: len(peer.heads) >= 2 or state == "refused", MAX_MS / 1000 + 10)
    p.finish()
