"""WAHA's WebSocket (GET /ws) for the simulator (scripts/waha_sim.py).

Behaves as WAHA 2026 does (docs/waha-api.md 6.4 and 9; WAHA's
src/api/websocket.gateway.core.ts, src/core/auth/WebSocketAuth.ts and
src/nestjs/ws/WebsocketHeartbeatJob.ts):
- GET /ws with `Upgrade: websocket` is upgraded (RFC 6455: 101 and
  Sec-WebSocket-Accept). A GET /ws without it goes on to the normal routes,
  which answer 404 "Cannot GET /ws..." as Express does.
- Query: `session` (a name or `*`, default `*`), `events` (repeatable and/or
  comma-separated, default `*` = every event but engine.event and
  state.change; unknown names are ignored), `x-api-key` (the parameter name
  matched case-insensitively, the first one wins), checked with the
  simulator's own key rules (Simulator.auth_scope(): a session-scoped key is narrowed to its sessions, and one asking for another session gets 1008 "Forbidden"). A bad key is upgraded
  all the same and then closed with 1008 "Unauthorized".
- Each event is one text frame with the envelope the simulator builds for
  webhooks (same id and timestamp): Simulator.emit_locked() calls
  Hub.publish_locked().
- The server pings every --ws-heartbeat-ms (60000 as in WAHA 2026; 2024.10
  used 10000) and terminates (TCP close, no close frame) a client that did
  not pong since the previous ping. Client pings are answered with pongs;
  client text and binary messages are ignored, as WAHA does.

Test controls (no auth, JSON):
    GET  /_sim/ws        {"mode","heartbeatMs","connections","framesSent",
                          "connectsTotal","refused","terminated","slowDropped",
                          "pingsSent","pongsReceived","recent":[{"at","result"}..]}
                         connectsTotal: every upgrade request to /ws; refused:
                         those not served as a stream (1008, 404 mode, over the
                         client bound, bad handshake); recent: the last 100
                         requests, "at" in ms since the epoch, "result" one of
                         accepted, unauthorized, notFound, busy, badRequest.
    POST /_sim/ws        {"mode":"normal|notfound|freeze","heartbeatMs":N,
                          "reset":true} -> the same object
                         notfound: /ws answers 404 like a WAHA without it;
                         freeze: the server sends nothing at all (no events, no
                         pings, no pongs, no 101 to new clients) until the mode
                         changes; events emitted meanwhile are not sent.
    POST /_sim/ws/drop   {"how":"abrupt|close|reset","code":1001,"reason":"..."}
                         ends every stream: abrupt = TCP close (FIN) without a
                         close frame, reset = TCP RST, close = a close frame
                         (code, reason) then TCP close. Waits until they are
                         gone; answers {"dropped": N}.

DESIGN
Each stream lives on the thread ThreadingHTTPServer gave its request: after
the handshake the thread owns the socket and runs one select() loop over it
and a wake-up socketpair. Everything shared (the client set, the queues, the
counters, the mode) is guarded by the simulator's lock; the loop takes it
only to move queued frames out and to read the mode, and never does I/O
while holding it. publish_locked() only appends to the per-client queues and
writes one byte to the wake-up pair (non-blocking), so emit_locked() never
waits for a client. Bounds: MAX_CLIENTS streams (more are answered 503),
QUEUE_MAX frames / QUEUE_BYTES_MAX bytes queued per client (a client that
does not read is dropped, as "slowDropped"), MAX_FRAME bytes per client
frame and message (1009 past it), a small socket send buffer, 100 recent
records. A client frame that is not masked, has RSV bits, an unknown opcode,
a bad control frame or a bad continuation is answered with close 1002 and
the stream ends; invalid UTF-8 in a text message gets 1007.
Python 3.11 standard library only.
"""

import base64
import hashlib
import io
import json
import select
import selectors
import socket
import struct
import threading
import time
import types
from collections import deque
from urllib.parse import parse_qsl, urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_CLIENTS = 64
QUEUE_MAX = 256
QUEUE_BYTES_MAX = 1024 * 1024
MAX_FRAME = 65536
RECENT_MAX = 100
SNDBUF = 65536
CLOSE_WAIT_S = 1.0
FREEZE_HOLD_S = 60.0
MODES = ("normal", "notfound", "freeze")
DROP_HOW = ("abrupt", "close", "reset")
# `*` means every event but these (WAHA's WAHAEventsWild).
NOT_IN_STAR = ("engine.event", "state.change")
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
JSON_TYPE = "application/json; charset=utf-8"


def add_arguments(parser):
    parser.add_argument("--ws-heartbeat-ms", type=int, default=60000,
                        help="/ws: server ping period; a client without a pong since the last one is dropped")
    parser.add_argument("--ws-mode", choices=MODES, default="normal", help="/ws: start in this mode")


def now_ms():
    return int(time.time() * 1000)


def frame(opcode, payload=b""):
    """One unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


def close_frame(code, reason=""):
    return frame(OP_CLOSE, struct.pack(">H", code) + reason.encode()[:123])


class ProtocolError(Exception):
    def __init__(self, code, why):
        super().__init__(why)
        self.code = code


def parse_frame(buf):
    """The first client frame in BUF: (opcode, fin, payload, bytes used), or
    None while it is incomplete. Raises ProtocolError for what RFC 6455 says
    a server must fail on."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    opcode, fin = b0 & 0x0F, bool(b0 & 0x80)
    if b0 & 0x70:
        raise ProtocolError(1002, "RSV bits set")
    if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
        raise ProtocolError(1002, f"unknown opcode {opcode}")
    if not b1 & 0x80:
        raise ProtocolError(1002, "client frame not masked")
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack_from(">H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack_from(">Q", buf, 2)[0], 10
    if opcode >= OP_CLOSE and (n > 125 or not fin):
        raise ProtocolError(1002, "bad control frame")
    if n > MAX_FRAME:
        raise ProtocolError(1009, "frame too large")
    if len(buf) < pos + 4 + n:
        return None
    mask = bytes(buf[pos:pos + 4])
    data = bytes(buf[pos + 4:pos + 4 + n])
    key = (mask * (n // 4 + 1))[:n]
    payload = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return opcode, fin, payload, pos + 4 + n


def accept_value(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def resp(status, obj):
    return (status, json.dumps(obj, separators=(",", ":")).encode(), JSON_TYPE, {})


class Client:
    def __init__(self, sock, session, events, scope=None):
        self.sock, self.session, self.events = sock, session, events
        self.scope = scope  # a scoped key's sessions, or None (every session)
        self.queue, self.queued_bytes = deque(), 0
        self.kill = None  # ("slow",) or ("drop", how, code, reason): the loop ends the stream
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def wants(self, env):
        if self.session != "*" and env.get("session") != self.session:
            return False
        if self.scope is not None and env.get("session") not in self.scope:
            return False
        event = env.get("event")
        return event in self.events or ("*" in self.events and event not in NOT_IN_STAR)

    def wake(self):
        try:
            self.wake_w.send(b"\0")
        except OSError:  # full (already woken) or closed
            pass


class Hub:
    """The /ws state, guarded by the simulator's lock."""

    def __init__(self, sim, opts):
        self.sim, self.lock = sim, sim.lock
        self.mode = opts.ws_mode
        self.heartbeat_ms = max(10, opts.ws_heartbeat_ms)
        self.clients = set()
        self.reset_locked()

    def reset_locked(self):
        self.counts = {"framesSent": 0, "connectsTotal": 0, "refused": 0, "terminated": 0,
                       "slowDropped": 0, "pingsSent": 0, "pongsReceived": 0}
        self.recent = deque(maxlen=RECENT_MAX)

    def stats_locked(self):
        return {"mode": self.mode, "heartbeatMs": self.heartbeat_ms, "connections": len(self.clients),
                **self.counts, "recent": list(self.recent)}

    def record_locked(self, result):
        self.counts["connectsTotal"] += 1
        if result != "accepted":
            self.counts["refused"] += 1
        self.recent.append({"at": now_ms(), "result": result})

    def publish_locked(self, env):
        """Queue ENV for every stream that asked for it (called by emit_locked)."""
        if self.mode == "freeze" or not self.clients:
            return
        data = frame(OP_TEXT, json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode())
        for c in self.clients:
            if c.kill is not None or not c.wants(env):
                continue
            if len(c.queue) >= QUEUE_MAX or c.queued_bytes + len(data) > QUEUE_BYTES_MAX:
                c.kill = ("slow",)
            else:
                c.queue.append(data)
                c.queued_bytes += len(data)
            c.wake()


# --------------------------------------------------------------------------- entry point

def dispatch(handler, req):
    """Called by Handler._dispatch for every request: True when this module
    answered it (GET /ws upgrades, /_sim/ws controls)."""
    hub = handler.server.sim.ws
    path = req.path.rstrip("/") or "/"
    if path == "/_sim/ws" or path.startswith("/_sim/ws/"):
        handler._send(control(hub, req, path))
        return True
    if path != "/ws" or handler.command != "GET":
        return False
    if handler.headers.get("Upgrade", "").lower() != "websocket":
        return False  # a plain GET: Express's 404
    with hub.lock:
        notfound = hub.mode == "notfound"
        if notfound:
            hub.record_locked("notFound")
    if notfound:
        return False  # the normal routes answer 404 "Cannot GET /ws?..."
    handler.close_connection = True
    Stream(hub, handler, req).run()
    return True


def control(hub, req, path):
    try:
        body = json.loads(req.body) if req.body.strip() else {}
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        return resp(400, {"error": "body must be a JSON object"})
    if path == "/_sim/ws" and req.method == "GET":
        with hub.lock:
            return resp(200, hub.stats_locked())
    if path == "/_sim/ws" and req.method == "POST":
        mode, beat = body.get("mode"), body.get("heartbeatMs")
        if mode is not None and mode not in MODES:
            return resp(400, {"error": f"mode must be one of {', '.join(MODES)}"})
        if beat is not None and (not isinstance(beat, int) or beat < 10):
            return resp(400, {"error": "heartbeatMs must be an integer >= 10"})
        with hub.lock:
            hub.mode = mode or hub.mode
            hub.heartbeat_ms = beat or hub.heartbeat_ms
            if body.get("reset"):
                hub.reset_locked()
            for c in hub.clients:
                c.wake()
            return resp(200, hub.stats_locked())
    if path == "/_sim/ws/drop" and req.method == "POST":
        return drop_all(hub, body)
    return resp(404, {"error": f"unknown control {req.method} {req.path}"})


def drop_all(hub, body):
    how = body.get("how", "abrupt")
    if how not in DROP_HOW:
        return resp(400, {"error": f"how must be one of {', '.join(DROP_HOW)}"})
    code = body.get("code", 1001)
    if not isinstance(code, int) or not 1000 <= code <= 4999:
        return resp(400, {"error": "code must be 1000..4999"})
    reason = str(body.get("reason", "Server is shutting down"))
    with hub.lock:
        targets = list(hub.clients)
        for c in targets:
            c.kill = ("drop", how, code, reason)
            c.wake()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        with hub.lock:
            if not any(c in hub.clients for c in targets):
                break
        time.sleep(0.01)
    return resp(200, {"dropped": len(targets)})


# --------------------------------------------------------------------------- one stream

class Stream:
    """The upgrade and the life of one /ws connection, on its request's thread."""

    def __init__(self, hub, handler, req):
        self.hub, self.handler, self.req = hub, handler, req
        self.sock = handler.connection
        self.inbuf, self.out = bytearray(), bytearray()
        self.fragmented = None  # opcode of the message being continued
        self.message = bytearray()
        self.client = None

    # ---- handshake
    def run(self):
        try:
            self._run()
        except OSError:
            pass
        finally:
            self._finish()

    def _run(self):
        h = self.handler.headers
        key = h.get("Sec-WebSocket-Key", "").strip()
        conn_tokens = {t.strip().lower() for t in h.get("Connection", "").split(",")}
        try:
            key_ok = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            key_ok = False
        if "upgrade" not in conn_tokens or not key_ok or h.get("Sec-WebSocket-Version", "").strip() != "13":
            with self.hub.lock:
                self.hub.record_locked("badRequest")
            return self._http(400, "Bad Request", "Bad Request")
        if not self._wait_unfrozen():
            return
        query = parse_qsl(urlsplit(self.req.raw_path).query, keep_blank_values=True)
        given = next((v for k, v in query if k.lower() == "x-api-key"), "")
        session = next((v for k, v in query if k == "session"), "") or "*"
        events = [e.strip() for k, v in query if k == "events" for e in v.split(",")] or ["*"]
        # WAHA's WebSocketAuth: the key's rules are HTTP's; a session-scoped key
        # asking for another session is refused (1008 Forbidden), and with
        # session=* it sees its own sessions only (docs/waha-api.md 6.4).
        scope = self.hub.sim.auth_scope(types.SimpleNamespace(headers={}, query={"x-api-key": given}))
        authorized = scope is not None
        forbidden = authorized and isinstance(scope, frozenset) and session != "*" and session not in scope
        with self.hub.lock:
            busy = authorized and len(self.hub.clients) >= MAX_CLIENTS
            if busy:
                self.hub.record_locked("busy")
            elif not authorized:
                self.hub.record_locked("unauthorized")
            elif forbidden:
                self.hub.record_locked("unauthorized")
            else:
                self.hub.record_locked("accepted")
                self.client = Client(self.sock, session, set(events),
                                     scope if isinstance(scope, frozenset) else None)
                self.hub.clients.add(self.client)
        if busy:
            return self._http(503, "Service Unavailable", "Too many /ws clients")
        self.sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Accept: {accept_value(key)}\r\n\r\n").encode())
        self._take_pipelined()
        if not authorized or forbidden:  # WAHA's WebSocketAuth: upgraded, then 1008
            self.sock.sendall(close_frame(1008, "Unauthorized" if not authorized else "Forbidden"))
            return self._close_gracefully()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        self._loop()

    def _http(self, status, phrase, text):
        body = text.encode()
        self.sock.sendall(f"HTTP/1.1 {status} {phrase}\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def _wait_unfrozen(self):
        """A frozen server does not answer the upgrade either."""
        deadline = time.monotonic() + FREEZE_HOLD_S
        while time.monotonic() < deadline and not self.hub.sim.stopping.is_set():
            with self.hub.lock:
                if self.hub.mode != "freeze":
                    return True
            time.sleep(0.05)
        return False

    def _take_pipelined(self):
        """Bytes the client sent after its request head, already in rfile's buffer."""
        self.sock.setblocking(False)
        try:
            self.inbuf += self.handler.rfile.read1(MAX_FRAME) or b""
        except (OSError, ValueError):
            pass

    # ---- the stream
    def _loop(self):
        c, hub = self.client, self.hub
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "sock")
        sel.register(c.wake_r, selectors.EVENT_READ, "wake")
        alive, frozen_before = True, False
        next_ping = time.monotonic() + hub.heartbeat_ms / 1000.0
        pending = bool(self.inbuf)  # frames that came with the request head
        try:
            while True:
                with hub.lock:
                    frozen, kill, beat_s = hub.mode == "freeze", c.kill, hub.heartbeat_ms / 1000.0
                    if not frozen and len(self.out) < SNDBUF:
                        while c.queue and len(self.out) < SNDBUF:
                            data = c.queue.popleft()
                            c.queued_bytes -= len(data)
                            self.out += data
                            hub.counts["framesSent"] += 1
                if kill is not None:
                    return self._kill(kill)
                if pending:
                    pending = False
                    verdict = self._read_frames(frozen)
                    if verdict == "pong":
                        alive = True
                        with hub.lock:
                            hub.counts["pongsReceived"] += 1
                    elif verdict is not None:
                        return verdict()
                now = time.monotonic()
                if frozen_before and not frozen:  # thawed: a fresh heartbeat period
                    alive, next_ping = True, now + beat_s
                frozen_before = frozen
                if not frozen and now >= next_ping:
                    if not alive:  # WebsocketHeartbeatJob: terminate()
                        with hub.lock:
                            hub.counts["terminated"] += 1
                        return self._abort(reset=False)
                    alive, next_ping = False, now + beat_s
                    self.out += frame(OP_PING)
                    with hub.lock:
                        hub.counts["pingsSent"] += 1
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out and not frozen else 0)
                sel.modify(self.sock, want, "sock")
                timeout = 0.1 if frozen else max(0.0, min(next_ping - now, 1.0))
                for key, mask in sel.select(timeout):
                    if key.data == "wake":
                        try:
                            c.wake_r.recv(4096)
                        except BlockingIOError:
                            pass
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self._write_some()
                    if mask & selectors.EVENT_READ:
                        data = self.sock.recv(65536)
                        if not data:
                            return self._abort(reset=False)
                        self.inbuf += data
                        pending = True
        finally:
            sel.close()

    def _read_frames(self, frozen):
        """Handle the complete frames in inbuf. Returns None, "pong", or a
        function that ends the stream."""
        seen_pong = None
        while True:
            try:
                parsed = parse_frame(self.inbuf)
                if parsed is None:
                    return seen_pong
                opcode, fin, payload, used = parsed
                del self.inbuf[:used]
                self._check_sequence(opcode, fin, payload)
            except ProtocolError as exc:
                code, why = exc.code, str(exc)
                return lambda: self._fail(code, why)
            if opcode == OP_PONG:
                seen_pong = "pong"
            elif opcode == OP_PING and not frozen:
                self.out += frame(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                if len(payload) == 1:
                    return lambda: self._fail(1002, "bad close payload")
                code = payload[:2] if payload else b""
                return lambda: self._echo_close(code)

    def _check_sequence(self, opcode, fin, payload):
        """Continuations must continue a message; messages are bounded and
        text must be UTF-8. Message content is otherwise ignored, as WAHA does."""
        if opcode >= OP_CLOSE:
            return
        if opcode == OP_CONT:
            if self.fragmented is None:
                raise ProtocolError(1002, "continuation without a message")
        elif self.fragmented is not None:
            raise ProtocolError(1002, "new message inside a fragmented one")
        else:
            self.fragmented, self.message = opcode, bytearray()
        if len(self.message) + len(payload) > MAX_FRAME:
            raise ProtocolError(1009, "message too large")
        self.message += payload
        if fin:
            kind, self.fragmented = self.fragmented, None
            if kind == OP_TEXT:
                try:
                    self.message.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "invalid UTF-8")

    def _write_some(self):
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            return
        del self.out[:n]

    def _flush(self, timeout):
        deadline = time.monotonic() + timeout
        while self.out and time.monotonic() < deadline:
            _, writable, _ = select.select([], [self.sock], [], max(0.0, deadline - time.monotonic()))
            if writable:
                self._write_some()

    # ---- endings
    def _kill(self, kill):
        if kill[0] == "slow":
            with self.hub.lock:
                self.hub.counts["slowDropped"] += 1
            return self._abort(reset=False)
        _, how, code, reason = kill
        if how == "close":
            self.out = bytearray(close_frame(code, reason))
            self._flush(CLOSE_WAIT_S)
            return self._close_gracefully()
        return self._abort(reset=how == "reset")

    def _fail(self, code, why):
        self.out += close_frame(code, why)
        self._flush(CLOSE_WAIT_S)
        self._close_gracefully()

    def _echo_close(self, code):
        self.out += frame(OP_CLOSE, code)
        self._flush(CLOSE_WAIT_S)
        self._abort(reset=False)

    def _close_gracefully(self):
        """After our close frame: half-close, and wait a little for the
        client's close frame or its EOF."""
        self.sock.setblocking(True)
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(CLOSE_WAIT_S)
            deadline = time.monotonic() + CLOSE_WAIT_S
            while time.monotonic() < deadline and self.sock.recv(4096):
                pass
        except OSError:
            pass
        self._abort(reset=False)

    def _abort(self, reset):
        """End the TCP connection now: FIN, or RST with RESET. No close frame."""
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._release()

    def _release(self):
        # The handler's rfile/wfile hold references to the socket: close them
        # so that close() below really closes it (and sends the RST if asked).
        # BaseHTTPRequestHandler flushes and closes them after us: give it
        # empty stand-ins.
        for name in ("rfile", "wfile"):
            try:
                getattr(self.handler, name).close()
            except (OSError, ValueError):
                pass
            setattr(self.handler, name, io.BytesIO())
        try:
            self.sock.close()
        except OSError:
            pass

    def _finish(self):
        c = self.client
        if c is not None:
            with self.hub.lock:
                self.hub.clients.discard(c)
                c.queue.clear()
            c.wake_r.close()
            c.wake_w.close()
        self._release()
