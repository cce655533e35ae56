#!/usr/bin/python3
"""WAHA simulator: a fake devlikeapro/waha (WhatsApp HTTP API) server for wahagate's tests and demo.

It mimics WAHA 2026.2.1 as described in shared/waha-api.md: routes, status codes, exact error
bodies, session objects, the QR status gate, QR rotation (60 s + 5 x 20 s, then FAILED, all
scaled by the timing options), `session.status` webhooks with HMAC, Plus (default) vs Core
(--core). Python 3.11 standard library only; run with /usr/bin/python3.

On start it prints exactly one line `listening on HOST:PORT` (use --port 0 for a free port).
SIGTERM/SIGINT shut it down with exit status 0.

WAHA routes (auth: X-Api-Key header or ?x-api-key=, on /api/* and /health):
    GET  /ping                          GET  /health
    GET  /api/server/version            GET  /api/version          GET /api/server/status
    GET  /api/sessions?all=             POST /api/sessions
    GET|PUT|DELETE /api/sessions/{name} GET  /api/sessions/{name}/me
    POST /api/sessions/{name}/start|stop|restart|logout
    POST /api/sessions/start|stop|logout              (legacy, name in the body)
    GET  /api/{name}/auth/qr?format=image|raw         POST /api/{name}/auth/request-code

Test controls (no auth, JSON in and out, never counted, never faulted):
    GET  /_sim/stats           {"total","calls":{"GET /api/sessions/{name}":N,..},"bySession",
                               "inFlight","maxInFlight","webhooks":{"sent","failed","attempts",
                               "dropped","queued"}}
    POST /_sim/reset           zero the counters (and maxInFlight), clear the webhook log
    GET  /_sim/fault           current fault
    POST /_sim/fault           {"mode":"none|down|slow|error|garbage|oversized|unauthorized|health",
                                "delayMs":3000,"status":500,"retryAfter":2,"paths":"/api/sessions"}
    POST /_sim/sessions/{name} {"status":"WORKING","me":{..}|null}  set any status now (creates the
                               session; cancels its timers; SCAN_QR_CODE restarts the QR rotation;
                               always records the status and emits the webhook, even if unchanged)
    DELETE /_sim/sessions/{name}
    GET  /_sim/webhooks        last 100 session.status envelopes emitted
    GET|POST /_sim/config      read/change knobs at run time: apiKey (null = no auth), webhookUrl,
                               webhookHmacKey, startDelayMs, qrFirstMs, qrNextMs, qrCount,
                               stopDelayMs, engineDelayMs
    GET /ws, GET|POST /_sim/ws, POST /_sim/ws/drop: WAHA's WebSocket and its controls (waha_sim_ws.py)
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import struct
import sys
import threading
import time
import traceback
import zlib
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import waha_sim_ws

VERSION = "2026.2.1"
ENGINE = "WEBJS"
WWEB_VERSION = "2.3000.1031490220"
MAX_SESSIONS = 500
MAX_BODY = 10 * 1024 * 1024
MAX_STAT_KEYS = 1000
WEBHOOK_QUEUE_MAX = 1000
WEBHOOK_LOG_MAX = 100
WEBHOOK_RETRIES = 3
WEBHOOK_TIMEOUT_S = 2.0
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
FAULT_MODES = ("none", "down", "slow", "error", "garbage", "oversized", "unauthorized", "health")
ENGINE_STATE = {"WORKING": "CONNECTED", "SCAN_QR_CODE": "UNPAIRED", "STARTING": "OPENING"}
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]*$")
BOOL_VALUES = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}
JSON_TYPE = "application/json; charset=utf-8"
CONFIG_KEYS = {"startDelayMs": "start_delay_ms", "qrFirstMs": "qr_first_ms", "qrNextMs": "qr_next_ms",
               "qrCount": "qr_count", "stopDelayMs": "stop_delay_ms", "engineDelayMs": "engine_delay_ms"}
CORS = {"X-Powered-By": "Express", "Access-Control-Allow-Origin": "*"}


# --------------------------------------------------------------------------- helpers

def now_ms():
    return int(time.time() * 1000)


def _base32(value, length):
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(length)))


def ulid():
    """26 lowercase Crockford chars: 10 of millisecond time, 16 random."""
    return _base32(now_ms(), 10) + _base32(int.from_bytes(os.urandom(10), "big"), 16)


def derive_me(name):
    digits = str(int(hashlib.sha256(name.encode()).hexdigest(), 16))[-10:]
    return {"id": "1" + digits + "@c.us", "pushName": name[:1].upper() + name[1:]}


def new_qr_value():
    """Looks like a WEBJS QR string: 2@ref,noiseKey,identityKey,advSecret."""
    return "2@" + ",".join(base64.b64encode(os.urandom(n)).decode() for n in (48, 32, 32, 32))


def qr_png(value, modules=33, scale=4, border=4):
    """A valid greyscale PNG of a QR-looking module grid derived from `value`."""
    bits, seed = [], value.encode()
    while len(bits) < modules * modules:
        seed = hashlib.sha256(seed).digest()
        bits.extend((byte >> k) & 1 for byte in seed for k in range(8))
    grid = [bits[r * modules:(r + 1) * modules] for r in range(modules)]
    for r0, c0 in ((0, 0), (0, modules - 7), (modules - 7, 0)):  # finder patterns
        for r in range(-1, 8):
            for c in range(-1, 8):
                rr, cc = r0 + r, c0 + c
                if 0 <= rr < modules and 0 <= cc < modules:
                    inside = 0 <= r < 7 and 0 <= c < 7
                    grid[rr][cc] = 1 if inside and max(abs(r - 3), abs(c - 3)) != 2 else 0
    size = (modules + 2 * border) * scale
    raw = bytearray()
    for y in range(size):
        r = y // scale - border
        row = grid[r] if 0 <= r < modules else None
        raw.append(0)  # filter type: none
        for x in range(size):
            c = x // scale - border
            raw.append(0 if row is not None and 0 <= c < modules and row[c] else 255)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def resp_json(status, obj, headers=None):
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return (status, body, JSON_TYPE, headers or {})


def resp_empty(status=200):
    return (status, b"", None, {})


def http_error(status, message):
    """NestJS HttpException body built with a string message."""
    return resp_json(status, {"message": message, "error": HTTPStatus(status).phrase, "statusCode": status})


def bad_request(messages):
    return http_error(400, list(messages))


UNAUTHORIZED = resp_json(401, {"message": "Unauthorized", "statusCode": 401})


class HttpError(Exception):
    def __init__(self, resp):
        super().__init__(resp[0])
        self.resp = resp


NOT_FOUND = http_error(404, "Session not found")


def not_running(name):
    return http_error(404, f"We didn't find a session with name '{name}'.\n"
                           f"Please start it first by using POST /api/sessions/{name}/start request")


def status_not_expected(name, status):
    return resp_json(422, {"error": "Session status is not as expected. Try again later or restart the session",
                           "session": name, "status": status, "expected": ["SCAN_QR_CODE"]})


class Request:
    def __init__(self, method, raw_path, headers, body):
        parts = urlsplit(raw_path)
        self.method, self.raw_path, self.path = method, raw_path, parts.path
        self.query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers, self.body, self.params = headers, body, {}

    @property
    def name(self):
        return unquote(self.params["name"]) if "name" in self.params else None

    def json(self):
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(http_error(400, f"Unexpected token in JSON at position {getattr(exc, 'pos', 0)}"))
        if not isinstance(value, dict):
            raise HttpError(http_error(400, "Request body must be a JSON object"))
        return value


# --------------------------------------------------------------------------- state

class Session:
    def __init__(self, name, status="STOPPED", me=None, config=None):
        self.name, self.status, self.me = name, status, me
        self.config = config if config is not None else {}
        self.statuses = deque(maxlen=3)
        self.activity = None
        self.qr, self.qr_index, self.qr_png = None, 0, None
        self.due, self.action = None, None  # one pending timer: (monotonic time, "boot" | "qr")

    @property
    def running(self):
        return self.status != "STOPPED"


class Simulator:
    """All shared state, guarded by self.lock (self.cond wraps the same lock)."""

    def __init__(self, opts):
        for attr in ("core", "verbose", "webhook_url", "webhook_hmac_key", *CONFIG_KEYS.values()):
            setattr(self, attr, getattr(opts, attr))
        self.qr_count = max(1, self.qr_count)
        self.api_key = None if opts.no_api_key else opts.api_key
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.started_ms = now_ms()
        self.sessions = {}
        self.fault = {"mode": "none"}
        self.webhook_queue = deque()
        self.webhook_log = deque(maxlen=WEBHOOK_LOG_MAX)
        self.in_flight = 0
        self.ws = waha_sim_ws.Hub(self, opts)
        self.reset_stats()
        with self.lock:
            for name, status in opts.sessions:
                s = self.sessions[name] = Session(name, status, derive_me(name) if status == "WORKING" else None)
                s.statuses.append({"status": status, "timestamp": self.started_ms})
                if status == "WORKING":
                    s.activity = self.started_ms
                elif status == "SCAN_QR_CODE":
                    s.qr, s.qr_index = new_qr_value(), 1
                    self.schedule_locked(s, self.qr_first_ms, "qr")
            if self.core and "default" not in self.sessions:
                self.sessions["default"] = Session("default")
        self.threads = [threading.Thread(target=self._scheduler_loop, daemon=True),
                        threading.Thread(target=self._webhook_loop, daemon=True)]
        for t in self.threads:
            t.start()

    def shutdown(self):
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        for t in self.threads:
            t.join(timeout=1)

    def gate_timing(self):
        """(wait for running, wait for status, poll) of WAHA's waitUntilStatus; 10 % when start-delay < 1 s."""
        return (0.5, 1.0, 0.05) if self.start_delay_ms < 1000 else (5.0, 10.0, 0.5)

    def environment(self):
        return {"version": VERSION, "engine": ENGINE, "tier": "CORE" if self.core else "PLUS",
                "browser": "/usr/bin/chromium", "platform": "linux/x64", "worker": {"id": None}}

    # ---- stats
    def reset_stats(self):
        self.total, self.calls, self.by_session = 0, {}, {}
        self.max_in_flight = self.in_flight
        self.wh = {"sent": 0, "failed": 0, "attempts": 0, "dropped": 0}

    def begin_call(self, key, name):
        with self.lock:
            self.total += 1
            for counter, k in ((self.calls, key), (self.by_session, name)):
                if k is not None and (k in counter or len(counter) < MAX_STAT_KEYS):
                    counter[k] = counter.get(k, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end_call(self):
        with self.lock:
            self.in_flight -= 1

    def stats_locked(self):
        return {"total": self.total, "calls": dict(self.calls), "bySession": dict(self.by_session),
                "inFlight": self.in_flight, "maxInFlight": self.max_in_flight,
                "webhooks": dict(self.wh, queued=len(self.webhook_queue))}

    def fault_for(self, path):
        with self.lock:
            f = self.fault
            if f["mode"] == "none" or (f.get("paths") and not path.startswith(f["paths"])):
                return None
            return dict(f)

    def authorized(self, req):
        with self.lock:
            key = self.api_key
        if key is None:
            return True
        given = req.headers.get("X-Api-Key") or req.query.get("x-api-key") or ""
        return hmac.compare_digest(given.encode(), key.encode())

    # ---- session lifecycle (all *_locked methods need self.lock held)
    def schedule_locked(self, s, delay_ms, action):
        s.due, s.action = time.monotonic() + max(0, delay_ms) / 1000.0, action
        self.cond.notify_all()

    def set_status_locked(self, s, status):
        ts = now_ms()
        s.status = status
        s.statuses.append({"status": status, "timestamp": ts})
        if status == "WORKING":
            s.activity = ts
        if status != "SCAN_QR_CODE":
            s.qr, s.qr_index, s.qr_png = None, 0, None
        self.emit_locked(s, ts)

    def enter_qr_locked(self, s):
        s.qr, s.qr_index, s.qr_png = new_qr_value(), 1, None
        self.set_status_locked(s, "SCAN_QR_CODE")
        self.schedule_locked(s, self.qr_first_ms, "qr")

    def start_locked(self, s):
        s.due = None
        self.set_status_locked(s, "STARTING")
        self.schedule_locked(s, self.start_delay_ms, "boot")

    def stop_locked(self, s):
        s.due = None
        if s.status != "STOPPED":
            self.set_status_locked(s, "STOPPED")

    def fire_locked(self, s):
        action, s.due, s.action = s.action, None, None
        if action == "boot" and s.status == "STARTING":
            if s.me:
                self.set_status_locked(s, "WORKING")
            else:
                self.enter_qr_locked(s)
        elif action == "qr" and s.status == "SCAN_QR_CODE":
            if s.qr_index < self.qr_count:
                s.qr, s.qr_png = new_qr_value(), None
                s.qr_index += 1
                self.set_status_locked(s, "SCAN_QR_CODE")
                self.schedule_locked(s, self.qr_next_ms, "qr")
            else:
                self.set_status_locked(s, "FAILED")

    def create_locked(self, name, config=None):
        if len(self.sessions) >= MAX_SESSIONS:
            raise HttpError(http_error(422, f"The simulator holds at most {MAX_SESSIONS} sessions"))
        s = self.sessions[name] = Session(name, config=config)
        return s

    def remove_locked(self, name):
        s = self.sessions.pop(name, None)
        if s is not None:
            s.due = None
        return s

    def info_locked(self, s, detailed=True):
        d = {"name": s.name, "status": s.status, "config": s.config, "me": s.me,
             "presence": "online" if s.status == "WORKING" else None,
             "timestamps": {"activity": s.activity}}
        if detailed:
            if s.running:
                d["engine"] = {"engine": ENGINE, "WWebVersion": WWEB_VERSION, "state": ENGINE_STATE.get(s.status)}
            elif not self.core:
                d["engine"] = {}
        return d

    def wait_for(self, predicate, timeout_s, poll_s):
        """Poll predicate() under the lock until true or timeout; sleeps outside the lock."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                if predicate():
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

    def _scheduler_loop(self):
        with self.cond:
            while not self.stopping.is_set():
                now, next_due = time.monotonic(), None
                for s in list(self.sessions.values()):
                    if s.due is not None and s.due <= now:
                        self.fire_locked(s)
                    if s.due is not None and (next_due is None or s.due < next_due):
                        next_due = s.due
                self.cond.wait(None if next_due is None else max(0.0, next_due - time.monotonic()))

    # ---- webhooks
    def emit_locked(self, s, ts):
        env = {"id": "evt_" + ulid(), "timestamp": ts, "event": "session.status", "session": s.name}
        metadata = s.config.get("metadata") if isinstance(s.config, dict) else None
        if metadata:
            env["metadata"] = metadata
        env.update({"me": s.me, "payload": {"name": s.name, "status": s.status, "statuses": list(s.statuses)},
                    "engine": ENGINE, "environment": self.environment()})
        self.webhook_log.append(env)
        self.ws.publish_locked(env)
        if self.webhook_url:
            if len(self.webhook_queue) >= WEBHOOK_QUEUE_MAX:
                self.webhook_queue.popleft()
                self.wh["dropped"] += 1
            body = json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode()
            self.webhook_queue.append((self.webhook_url, self.webhook_hmac_key, body, ts))
            self.cond.notify_all()

    def _webhook_loop(self):
        while True:
            with self.cond:
                while not self.webhook_queue and not self.stopping.is_set():
                    self.cond.wait()
                if self.stopping.is_set():
                    return
                item = self.webhook_queue.popleft()
            self._deliver(*item)

    def _deliver(self, url, key, body, ts):
        headers = {"Content-Type": "application/json", "User-Agent": f"WAHA/{VERSION}",
                   "X-Webhook-Timestamp": str(ts)}
        if key:
            headers["X-Webhook-Hmac"] = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
            headers["X-Webhook-Hmac-Algorithm"] = "sha512"
        delay = 0.2 if self.start_delay_ms < 1000 else 2.0
        for attempt in range(1 + WEBHOOK_RETRIES):
            if attempt and self.stopping.wait(delay):
                return
            headers["X-Webhook-Request-Id"] = format(time.time_ns() // 1000, "x") + os.urandom(4).hex()
            try:
                ok = 200 <= post(url, body, headers) < 300
            except (OSError, http.client.HTTPException, ValueError) as exc:
                ok = False
                if self.verbose:
                    print(f"webhook POST {url} failed: {exc}", file=sys.stderr, flush=True)
            with self.lock:
                self.wh["attempts"] += 1
                if ok:
                    self.wh["sent"] += 1
                    return
        with self.lock:
            self.wh["failed"] += 1


def post(url, body, headers):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported webhook URL {url!r}")
    conn = (http.client.HTTPSConnection(parts.hostname, parts.port, timeout=WEBHOOK_TIMEOUT_S,
                                        context=ssl._create_unverified_context()) if parts.scheme == "https"
            else http.client.HTTPConnection(parts.hostname, parts.port, timeout=WEBHOOK_TIMEOUT_S))
    try:
        conn.request("POST", (parts.path or "/") + ("?" + parts.query if parts.query else ""), body, headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


# --------------------------------------------------------------------------- WAHA routes

ROUTES = []  # (method, compiled path regex, stats key "METHOD /template", handler)


def route(method, template):
    """Decorator registering a WAHA route; `{name}` in the template is the session name."""
    regex = re.compile("^" + re.escape(template).replace(r"\{name\}", "(?P<name>[^/]+)") + "/?$")

    def register(fn):
        ROUTES.append((method, regex, f"{method} {template}", fn))
        return fn
    return register


def core_guard(sim, name):
    if sim.core and name != "default":
        b64 = base64.b64encode(name.encode()).decode()
        raise HttpError(http_error(422, f"WAHA Core support only 'default' session. You tried to access '{name}' "
                                        f"session (base64: {b64}). If you want to run more then one WhatsApp account"
                                        f" - please get WAHA PLUS version. Check this out: https://waha.devlike.pro/"))


def validate_name(name):
    if not isinstance(name, str):
        raise HttpError(bad_request(["name must be a string"]))
    errors = (["name must be shorter than or equal to 54 characters"] if len(name) > 54 else []) + \
             ([] if NAME_RE.match(name) else ["name must match /^[a-zA-Z0-9_-]*$/ regular expression"])
    if errors:
        raise HttpError(bad_request(errors))


def body_config(body):
    config = body.get("config")
    return config if isinstance(config, dict) else {}


@route("GET", "/ping")
def r_ping(sim, req):
    return resp_json(200, {"message": "pong"})


@route("GET", "/health")
def r_health(sim, req):
    if sim.core:
        return http_error(422, f"The feature is available only in Plus version for '{ENGINE}' engine. "
                               f"Check this out: https://waha.devlike.pro/")
    fault = sim.fault_for(req.path)
    broken = fault is not None and fault["mode"] == "health"
    free = shutil.disk_usage("/").free
    details = {key: {"status": "up", "path": path, "diskPath": "/", "free": free, "threshold": 104857600}
               for key, path in (("mediaFiles.space", "/app/.media"), ("sessionsFiles.space", "/app/.sessions"))}
    if broken:
        details["sessionsFiles.space"].update(status="down", message="Used disk storage exceeded the set threshold")
    return resp_json(503 if broken else 200, {
        "status": "error" if broken else "ok", "details": details,
        "info": {k: v for k, v in details.items() if v["status"] == "up"},
        "error": {k: v for k, v in details.items() if v["status"] != "up"}})


@route("GET", "/api/server/version")
@route("GET", "/api/version")
def r_server_version(sim, req):
    return resp_json(200, sim.environment())


@route("GET", "/api/server/status")
def r_server_status(sim, req):
    return resp_json(200, {"startTimestamp": sim.started_ms, "uptime": now_ms() - sim.started_ms,
                           "worker": {"id": ""}})


@route("GET", "/api/sessions")
def r_sessions_list(sim, req):
    show_all = BOOL_VALUES.get(req.query.get("all", "false"))
    if show_all is None:
        return bad_request(["all must be a boolean value"])
    with sim.lock:
        return resp_json(200, [sim.info_locked(s, detailed=False) for s in sim.sessions.values()
                               if show_all or s.running])


@route("POST", "/api/sessions")
def r_session_create(sim, req):
    body = req.json()
    if body.get("name") is not None:
        validate_name(body["name"])
    name = body.get("name") or "session_" + ulid()
    core_guard(sim, name)
    with sim.lock:
        if name in sim.sessions:
            return http_error(422, f"Session '{name}' already exists. Use PUT to update it.")
        s = sim.create_locked(name, body_config(body))
        if body.get("start"):
            sim.start_locked(s)
        return resp_json(201, sim.info_locked(s))


def _legacy_name(sim, body):
    name = body.get("name")
    if not name:
        raise HttpError(http_error(422, "Session name is required"))
    validate_name(name)
    core_guard(sim, name)
    return name


@route("POST", "/api/sessions/start")
def r_legacy_start(sim, req):
    body = req.json()
    name = _legacy_name(sim, body)
    with sim.lock:
        s = sim.sessions.get(name) or sim.create_locked(name)
        if s.running:
            return http_error(422, f"Session '{name}' is already started.")
        if "config" in body:
            s.config = body_config(body)
        sim.start_locked(s)
        return resp_json(201, sim.info_locked(s))


def _legacy_stop(sim, name, delete):
    """Legacy stop (and logout, which also deletes): 201 with no body, no 404."""
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return resp_empty(201)
        sim.stop_locked(s)
    time.sleep(sim.stop_delay_ms / 1000.0)
    if delete:
        with sim.lock:
            sim.remove_locked(name)
    return resp_empty(201)


@route("POST", "/api/sessions/stop")
def r_legacy_stop(sim, req):
    body = req.json()
    return _legacy_stop(sim, _legacy_name(sim, body), delete=bool(body.get("logout")))


@route("POST", "/api/sessions/logout")
def r_legacy_logout(sim, req):
    return _legacy_stop(sim, _legacy_name(sim, req.json()), delete=True)


@route("GET", "/api/sessions/{name}")
def r_session_get(sim, req):
    with sim.lock:
        if req.name not in sim.sessions:
            return NOT_FOUND
    time.sleep(sim.engine_delay_ms / 1000.0)  # models the 1-3 s engine info call
    with sim.lock:
        s = sim.sessions.get(req.name)
        return resp_json(200, sim.info_locked(s)) if s else NOT_FOUND


def _stop_then(sim, name, restart, status=201, mutate=None, always_sleep=True):
    """Stop a session, sleep stop-delay (outside the lock), then start it again when `restart` says so
    ("always" or "if_running"). `mutate(session)` runs before the stop (logout, PUT)."""
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return NOT_FOUND
        was_running = s.running
        if mutate:
            mutate(s)
        sim.stop_locked(s)
    if always_sleep or was_running:
        time.sleep(sim.stop_delay_ms / 1000.0)
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return NOT_FOUND
        if (restart == "always" or (restart == "if_running" and was_running)) and not s.running:
            sim.start_locked(s)
        return resp_json(status, sim.info_locked(s))


@route("PUT", "/api/sessions/{name}")
def r_session_update(sim, req):
    config = body_config(req.json())
    return _stop_then(sim, req.name, "if_running", status=200, always_sleep=False,
                      mutate=lambda s: setattr(s, "config", config))


@route("DELETE", "/api/sessions/{name}")
def r_session_delete(sim, req):
    with sim.lock:
        s = sim.sessions.get(req.name)
        was_running = s is not None and s.running
        if was_running:
            sim.stop_locked(s)
    if was_running:
        time.sleep(sim.stop_delay_ms / 1000.0)
    with sim.lock:
        sim.remove_locked(req.name)
    return resp_empty(200)


@route("GET", "/api/sessions/{name}/me")
def r_session_me(sim, req):
    with sim.lock:
        s = sim.sessions.get(req.name)
        if s is None or not s.running:
            return not_running(req.name)
        if s.status == "WORKING" and s.me:
            return resp_json(200, s.me)
    return resp_empty(200)


@route("POST", "/api/sessions/{name}/start")
def r_session_start(sim, req):
    with sim.lock:
        s = sim.sessions.get(req.name)
        if s is None:
            return NOT_FOUND
        if s.running and sim.core:
            return http_error(422, f"Session '{req.name}' is already started.")
        if not s.running:
            sim.start_locked(s)
        return resp_json(201, sim.info_locked(s))


@route("POST", "/api/sessions/{name}/stop")
def r_session_stop(sim, req):
    return _stop_then(sim, req.name, "never")


@route("POST", "/api/sessions/{name}/restart")
def r_session_restart(sim, req):
    return _stop_then(sim, req.name, "always")


@route("POST", "/api/sessions/{name}/logout")
def r_session_logout(sim, req):
    return _stop_then(sim, req.name, "if_running", mutate=lambda s: setattr(s, "me", None))


@route("GET", "/api/{name}/auth/qr")
def r_auth_qr(sim, req):
    name, fmt = req.name, req.query.get("format", "image")
    if fmt not in ("image", "raw"):
        return bad_request(["format must be one of the following values: image, raw"])
    wait_running, wait_status, poll = sim.gate_timing()
    missing = resp_json(422, {"error": f'Session "{name}" does not exist', "session": name})
    if not sim.wait_for(lambda: name in sim.sessions and sim.sessions[name].running, wait_running, poll):
        with sim.lock:
            s = sim.sessions.get(name)
            return status_not_expected(name, s.status) if s else missing
    sim.wait_for(lambda: name not in sim.sessions or sim.sessions[name].status == "SCAN_QR_CODE",
                 wait_status, poll)
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return missing
        if s.status != "SCAN_QR_CODE" or not s.qr:
            return status_not_expected(name, s.status)
        if fmt == "raw":
            return resp_json(200, {"value": s.qr})
        if s.qr_png is None:
            s.qr_png = qr_png(s.qr)
        png = s.qr_png
    if req.headers.get("Accept") == "application/json":
        return resp_json(200, {"mimetype": "image/png", "data": base64.b64encode(png).decode()})
    return (200, png, "image/png", {})


@route("POST", "/api/{name}/auth/request-code")
def r_auth_request_code(sim, req):
    name, body = req.name, req.json()
    if not isinstance(body.get("phoneNumber"), str):
        return bad_request(["phoneNumber must be a string"])
    with sim.lock:
        if name not in sim.sessions or not sim.sessions[name].running:
            return not_running(name)
    _, wait_status, poll = sim.gate_timing()
    sim.wait_for(lambda: name not in sim.sessions or sim.sessions[name].status != "STARTING", wait_status, poll)
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None or not s.running:
            return not_running(name)
        if s.status != "SCAN_QR_CODE":
            return http_error(422, f"Can request code only in SCAN_QR_CODE status. The current status is {s.status}")
    letters = "".join("ABCDEFGHJKLMNPQRSTVWXYZ"[b % 23] for b in os.urandom(8))
    return resp_json(201, {"code": letters[:4] + "-" + letters[4:]})


def match_route(method, path):
    for m, regex, key, fn in ROUTES:
        if m == method:
            found = regex.match(path)
            if found:
                return key, fn, found.groupdict()
    return None, None, {}


def needs_auth(path):
    return path in ("/api", "/health") or path.startswith(("/api/", "/health/"))


def error_500(sim, req, status, message):
    """WAHA's AllExceptionsFilter body for a non-HttpException."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".%03dZ" % (now_ms() % 1000)
    return {"statusCode": status, "timestamp": ts,
            "exception": {"message": message, "name": "Error", "stack": f"Error: {message}\n    at Simulator"},
            "request": {"path": req.path, "method": req.method, "body": {}, "query": req.query},
            "version": sim.environment()}


def handle_waha(sim, req, fn):
    """Faults, then auth, then the route. Returns a response tuple, or None to drop the connection."""
    fault = sim.fault_for(req.path)
    mode = fault["mode"] if fault else "none"
    if mode == "down":
        return None
    if mode == "slow":
        time.sleep(fault["delayMs"] / 1000.0)
    elif mode == "error":
        headers = {"Retry-After": str(fault["retryAfter"])} if "retryAfter" in fault else {}
        return resp_json(fault["status"], error_500(sim, req, fault["status"], "Simulated failure"), headers)
    elif mode == "garbage":
        return (200, b"<html>oops", JSON_TYPE, {})
    elif mode == "oversized":
        with sim.lock:
            base = sim.info_locked(next(iter(sim.sessions.values()), Session("default")))
        base["padding"] = "x" * (2 * 1024 * 1024)
        return resp_json(200, base)
    elif mode == "unauthorized":
        return UNAUTHORIZED
    if needs_auth(req.path) and not sim.authorized(req):
        return UNAUTHORIZED
    if fn is None:
        return http_error(404, f"Cannot {req.method} {req.raw_path}")
    try:
        if req.name is not None:
            core_guard(sim, req.name)
        return fn(sim, req)
    except HttpError as exc:
        return exc.resp


# --------------------------------------------------------------------------- test controls

def handle_control(sim, req):
    p, m = req.path.rstrip("/"), req.method
    if p == "/_sim/stats" and m == "GET":
        with sim.lock:
            return resp_json(200, sim.stats_locked())
    if p == "/_sim/reset" and m == "POST":
        with sim.lock:
            sim.reset_stats()
            sim.webhook_log.clear()
            return resp_json(200, sim.stats_locked())
    if p == "/_sim/fault" and m in ("GET", "POST"):
        if m == "POST":
            sim_set_fault(sim, req.json())
        with sim.lock:
            return resp_json(200, dict(sim.fault))
    if p == "/_sim/webhooks" and m == "GET":
        with sim.lock:
            return resp_json(200, list(sim.webhook_log))
    if p == "/_sim/config" and m in ("GET", "POST"):
        if m == "POST":
            sim_set_config(sim, req.json())
        with sim.lock:
            return resp_json(200, sim_config(sim))
    found = re.fullmatch(r"/_sim/sessions/([^/]+)", p)
    if found and m in ("POST", "DELETE"):
        name = unquote(found.group(1))
        if m == "DELETE":
            with sim.lock:
                return resp_json(200, {"deleted": sim.remove_locked(name) is not None})
        return sim_set_session(sim, name, req.json())
    return resp_json(404, {"error": f"unknown control {m} {req.path}"})


def sim_set_fault(sim, body):
    mode = body.get("mode")
    if mode not in FAULT_MODES:
        raise HttpError(resp_json(400, {"error": f"mode must be one of {', '.join(FAULT_MODES)}"}))
    fault = {"mode": mode}
    if mode != "none":
        try:
            fault["delayMs"] = max(0, int(body.get("delayMs", 3000)))
            fault["status"] = int(body.get("status", 500))
        except (TypeError, ValueError):
            raise HttpError(resp_json(400, {"error": "delayMs and status must be integers"}))
        if not 100 <= fault["status"] <= 599:
            raise HttpError(resp_json(400, {"error": "status must be 100..599"}))
        if body.get("retryAfter") is not None:
            fault["retryAfter"] = body["retryAfter"]
        if body.get("paths"):
            fault["paths"] = str(body["paths"])
    with sim.lock:
        sim.fault = fault


def sim_config(sim):
    conf = {k: getattr(sim, attr) for k, attr in CONFIG_KEYS.items()}
    conf.update(apiKey=sim.api_key, webhookUrl=sim.webhook_url, webhookHmacKey=sim.webhook_hmac_key,
                core=sim.core)
    return conf


def sim_set_config(sim, body):
    with sim.lock:
        for key, attr in CONFIG_KEYS.items():
            if key in body:
                try:
                    value = max(1 if key == "qrCount" else 0, int(body[key]))
                except (TypeError, ValueError):
                    raise HttpError(resp_json(400, {"error": f"{key} must be an integer"}))
                setattr(sim, attr, value)
        for key, attr in (("apiKey", "api_key"), ("webhookUrl", "webhook_url"),
                          ("webhookHmacKey", "webhook_hmac_key")):
            if key in body:
                setattr(sim, attr, str(body[key]) if body[key] else None)


def sim_set_session(sim, name, body):
    status = body.get("status")
    if not isinstance(status, str) or not status:
        return resp_json(400, {"error": "status (string) is required"})
    with sim.lock:
        s = sim.sessions.get(name) or sim.create_locked(name)
        s.due = None
        if "me" in body:
            s.me = body["me"]
        elif status == "WORKING" and not s.me:
            s.me = derive_me(name)
        if status == "SCAN_QR_CODE":
            sim.enter_qr_locked(s)
        else:
            sim.set_status_locked(s, status)
        return resp_json(200, sim.info_locked(s))


# --------------------------------------------------------------------------- HTTP plumbing

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "waha-sim"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.sim.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        """The request body; chunked uploads are not supported (the gateway sends Content-Length)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(http_error(411, "Length Required"))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HttpError(http_error(413, "request entity too large"))
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, resp, head=False, extra=None):
        status, body, ctype, headers = resp
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**(extra or {}), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _dispatch(self):
        sim = self.server.sim
        method = self.command
        try:
            body = self._read_body()
        except (HttpError, ValueError) as exc:
            self.close_connection = True
            return self._send(exc.resp if isinstance(exc, HttpError) else http_error(400, "Bad Content-Length"))
        req = Request(method, self.path, self.headers, body)
        if waha_sim_ws.dispatch(self, req):  # GET /ws and /_sim/ws*
            return
        if req.path == "/_sim" or req.path.startswith("/_sim/"):
            try:
                return self._send(handle_control(sim, req))
            except HttpError as exc:
                return self._send(exc.resp)
        if method == "OPTIONS":  # CORS preflight, as NestJS enableCors() answers it
            return self._send((204, b"", None, {"Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE"}),
                              extra=CORS)
        key, fn, req.params = match_route("GET" if method == "HEAD" else method, req.path)
        sim.begin_call(key or f"{method} <unmatched>", req.name)
        try:
            try:
                resp = handle_waha(sim, req, fn)
            except Exception as exc:  # a simulator bug: answer like WAHA's 500 filter
                traceback.print_exc()
                resp = resp_json(500, error_500(sim, req, 500, str(exc)))
            if resp is None:  # fault "down": no response at all
                self.close_connection = True
                return
            self._send(resp, head=method == "HEAD", extra=CORS)
        finally:
            sim.end_call()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if self.sim.verbose:
            super().handle_error(request, client_address)


def parse_sessions(text):
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, _, status = item.partition(":")
        if not NAME_RE.match(name) or not name:
            raise argparse.ArgumentTypeError(f"bad session name {name!r}")
        out.append((name, status.strip() or "WORKING"))
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description="WAHA (WhatsApp HTTP API) simulator for wahagate tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    p.add_argument("--api-key", default="simkey", help="required X-Api-Key (default: simkey)")
    p.add_argument("--no-api-key", action="store_true", help="disable authentication")
    p.add_argument("--sessions", type=parse_sessions, default=parse_sessions("default:WORKING"),
                   help="initial sessions, NAME:STATUS[,...] (default: default:WORKING)")
    p.add_argument("--core", action="store_true", help="WAHA Core: only 'default', /health answers 422")
    p.add_argument("--webhook-url", help="POST session.status envelopes here")
    p.add_argument("--webhook-hmac-key", help="sign webhooks with HMAC-SHA512")
    p.add_argument("--start-delay-ms", type=int, default=2000, help="STARTING -> WORKING/SCAN_QR_CODE")
    p.add_argument("--qr-first-ms", type=int, default=60000, help="lifetime of the first QR")
    p.add_argument("--qr-next-ms", type=int, default=20000, help="lifetime of each next QR")
    p.add_argument("--qr-count", type=int, default=6, help="QRs before FAILED")
    p.add_argument("--stop-delay-ms", type=int, default=3000, help="sleep of stop/restart/logout")
    p.add_argument("--engine-delay-ms", type=int, default=0, help="extra time of GET /api/sessions/{name}")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    waha_sim_ws.add_arguments(p)
    args = p.parse_args(argv)
    if args.core:
        dropped = [n for n, _ in args.sessions if n != "default"]
        if dropped:
            print(f"waha_sim: --core ignores sessions {', '.join(dropped)}", file=sys.stderr)
        args.sessions = [(n, st) for n, st in args.sessions if n == "default"]
    return args


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sim = Simulator(args)
    server = Server((args.host, args.port), Handler)
    server.sim = sim
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    sim.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
