#!/usr/bin/python3
"""WAHA simulator: a fake devlikeapro/waha (WhatsApp HTTP API) server for wahagate's tests and demo.

It mimics WAHA 2026.2.1 as described in docs/waha-api.md: routes, status codes, exact error
bodies, session objects, the QR status gate, QR rotation (60 s + 5 x 20 s, then FAILED, all
scaled by the timing options), `session.status` webhooks with HMAC and WAHA's retry policy,
Plus (default) vs Core (--core), plain, sha512 and session-scoped API keys; and, on request, the
unsigned webhooks of WAHA Core 2024.10.8 (--legacy-webhooks). Python 3.11 standard library only;
run with /usr/bin/python3. Next to this file: waha_sim_routes.py (WAHA's routes),
waha_sim_control.py (/_sim/ controls), waha_sim_webhooks.py (deliveries), waha_sim_auth.py (API
keys), waha_sim_base.py (shared pieces). Each behaviour names, in a comment, the WAHA source it
follows.

On start it prints exactly one line `listening on HOST:PORT` (--host, default 127.0.0.1; --port,
default 3000, 0 for a free port). SIGTERM/SIGINT shut it down (webhook deliveries included) with
exit status 0. --verbose logs every request and failed webhook attempt to stderr.

Defaults are WAHA's own timings; tests shorten them explicitly (--qr-gate-ms, --engine-delay-ms,
--webhook-retry-delay-ms, ...):
    --start-delay-ms 2000     STARTING -> WORKING (known `me`) or SCAN_QR_CODE
    --qr-first-ms 60000 --qr-next-ms 20000 --qr-count 6   QR rotation, then FAILED
    --stop-delay-ms 3000      sleep of stop/restart/logout/DELETE (SESSION_STOP_TIMEOUT)
    --engine-delay-ms 1000    time GET /api/sessions/{name} spends on engine info, RUNNING sessions
                              only (Core's promiseTimeout(1000); Plus waits up to 3000); the list
                              never pays it
    --qr-gate-ms 10000        GET /api/{name}/auth/qr: the wait for SCAN_QR_CODE, after
    --qr-running-ms N         the wait for the session to be running (default: half of the gate,
                              WAHA's 5 s); both polled every min(500, gate/20) ms; then 422
    --webhook-retries 15 --webhook-retry-delay-ms 2000   constant policy, every error retried

Sessions: --sessions NAME:STATUS[,...] (default default:WORKING; a name is anything without `,`
and `:`), --session-count N adds s1..sN WORKING, each with its own `me`; at most 100000 sessions.
Names in URLs are percent-decoded (`/api/a%20b/auth/qr` is session `a b`). POST /api/sessions
validates names (^[a-zA-Z0-9_-]*$, at most 54 chars, else 400 with an array message); the
deprecated POST /api/sessions/start only needs a non-empty string (else 422 `Session name is
required`), so it can create `sales.team`, `a b` or unicode names, as WAHA before 2025-08 could.

Auth (/api/* and /health; never /ping): X-Api-Key header or ?x-api-key=. --api-key KEY (default
simkey) or sha512:<hex> (clients send the plain key); --no-api-key: every request is an admin's.
--session-key KEY:s1,s2 (repeatable): a key that sees only those sessions: GET /api/sessions is
filtered, another session's routes (a {name} in the URL, or the name in the body of POST
/api/sessions and the deprecated routes) and the server endpoints /health, /api/server/*,
/api/version answer 403 {"message":"Forbidden","statusCode":403}. Missing/wrong key: 401
{"message":"Unauthorized","statusCode":401}.

WAHA routes:
    GET  /ping                          GET  /health (Core: 422)
    GET  /api/server/version            GET  /api/version          GET /api/server/status
    GET  /api/sessions?all=             POST /api/sessions {name?, config?, start?}
    GET|PUT|DELETE /api/sessions/{name} GET  /api/sessions/{name}/me
    POST /api/sessions/{name}/start|stop|restart|logout
    POST /api/sessions/start|stop|logout              (deprecated, name in the body)
    GET  /api/{name}/auth/qr?format=image|raw         POST /api/{name}/auth/request-code
    POST /api/sendText {session, chatId, text}        (201, WEBJS's message; 422 unless WORKING)
List items are SessionInfo (no `engine`); GET /api/sessions/{name} adds `engine`, `{}` when the
session is STOPPED (Plus and Core). --core: only `default` (422 with WAHA's text otherwise),
`default` STOPPED from boot, /health 422, start of a running session 422.

Webhooks (--webhook-url, --webhook-hmac-key): one `session.status` event per status change, POSTed
with Content-Type, User-Agent WAHA/2026.2.1, X-Webhook-Request-Id, X-Webhook-Timestamp and, with a
key, X-Webhook-Hmac (hex HMAC-SHA512 of the body) + X-Webhook-Hmac-Algorithm (plus axios' Accept,
Accept-Encoding, Host, Connection). Each delivery runs on its own (a retried older event can arrive
after a newer one); a non-2xx answer or a network error is retried (--webhook-retries,
--webhook-retry-delay-ms, or longer when the answer has Retry-After) with the same
X-Webhook-Request-Id; each attempt is bounded to 60 s (WAHA has no timeout); at most 1000
deliveries in flight (--webhook-max-in-flight), beyond which the oldest is dropped and counted.
--legacy-webhooks: WAHA Core 2024.10.8's envelope and headers instead (no id, timestamp,
statuses, X-Webhook-* or HMAC; one attempt, no retries).

Test controls (no auth, JSON in and out, never counted, never faulted; names percent-encoded):
    GET  /_sim/stats           {"total","calls":{"GET /api/sessions/{name}":N,..},"bySession",
                               "inFlight","maxInFlight","webhooks":{"sent","failed","attempts",
                               "dropped","queued","inFlight","maxInFlight","retries"},
                               "sessions","auth":{"unauthorized","forbidden"}}
                               (webhooks.queued = deliveries not finished; attempts counts
                               every POST, retries those after the first)
    POST /_sim/reset           zero the counters (and the maxima), clear the event and attempt logs
    GET  /_sim/fault           current fault
    POST /_sim/fault           {"mode":"none|down|slow|error|garbage|oversized|unauthorized|health",
                                "delayMs":3000,"status":500,"retryAfter":2,"paths":"/api/sessions"}
    POST /_sim/sessions/{name} {"status":"WORKING","me":{..}|null}  set any status now (creates the
                               session; cancels its timers; SCAN_QR_CODE restarts the QR rotation;
                               always records the status and emits the webhook, even if unchanged)
    DELETE /_sim/sessions/{name}
    GET  /_sim/webhooks        last 100 session.status envelopes emitted (as sent)
    GET  /_sim/messages        last 1000 texts POST /api/sendText sent: {"session","chatId","text"}
    GET  /_sim/deliveries      last 200 webhook attempts: {"delivery","attempt","url","requestId",
                               "status","error","startedMs","ms","session","sessionStatus","legacy"}
    GET|POST /_sim/config      read/change knobs at run time: apiKey (null = no auth; may be
                               sha512:<hex>), sessionKeys ({"KEY":["s1",..]}, null = none),
                               webhookUrl, webhookHmacKey, legacyWebhooks, webhookRetries,
                               webhookRetryDelayMs, webhookMaxInFlight, startDelayMs, qrFirstMs,
                               qrNextMs, qrCount, stopDelayMs, engineDelayMs, qrGateMs,
                               qrRunningMs (null = half of qrGateMs); core is read-only
    GET /ws, GET|POST /_sim/ws, POST /_sim/ws/drop: WAHA's WebSocket and its controls (waha_sim_ws.py)
"""

import argparse
import hashlib
import heapq
import hmac
import itertools
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import waha_sim_auth as auth  # noqa: E402
import waha_sim_webhooks as webhooks  # noqa: E402
import waha_sim_ws  # noqa: E402
from waha_sim_base import (BROWSER, CONFIG_KEYS, ENGINE, ENGINE_STATE, MAX_SESSIONS, VERSION,  # noqa: E402
                           WWEB_VERSION, HttpError, Request, Session, derive_me, http_error, new_qr_value,
                           now_ms, resp_json, to_json, ulid)
from waha_sim_control import handle_control  # noqa: E402
from waha_sim_routes import error_500, handle_waha, match_route  # noqa: E402

MAX_BODY = 10 * 1024 * 1024
MAX_STAT_KEYS = 1000           # route keys of "calls"
MAX_SESSION_STAT_KEYS = MAX_SESSIONS
WEBHOOK_LOG_MAX = 100
CORS = {"X-Powered-By": "Express", "Access-Control-Allow-Origin": "*"}
QR_POLL_MAX_S = 0.5  # WAHA's WAIT_STATUS_INTERVAL (src/core/abc/manager.abc.ts)


# --------------------------------------------------------------------------- state

class Simulator:
    """All shared state, guarded by self.lock (self.cond wraps the same lock)."""

    def __init__(self, opts):
        for attr in ("core", "verbose", "webhook_url", "webhook_hmac_key", "legacy_webhooks", "qr_running_ms",
                     *CONFIG_KEYS.values()):
            setattr(self, attr, getattr(opts, attr))
        self.qr_count = max(1, self.qr_count)
        self.keys = auth.Keys(None if opts.no_api_key else auth.Key(opts.api_key), opts.session_key)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.started_ms = now_ms()
        self.sessions = {}
        self.timers = []  # heap of (due, seq, session); stale when session.due != due
        self.timer_seq = itertools.count()
        self.fault = {"mode": "none"}
        self.webhook_log = deque(maxlen=WEBHOOK_LOG_MAX)
        self.sent_messages = deque(maxlen=1000)  # POST /api/sendText, for /_sim/messages
        self.sender = webhooks.WebhookSender(verbose=self.verbose, max_in_flight=opts.webhook_max_in_flight)
        self.in_flight = 0
        self.ws = waha_sim_ws.Hub(self, opts)
        self.reset_stats()
        initial = list(opts.sessions) + [(f"s{i}", "WORKING") for i in range(1, opts.session_count + 1)]
        with self.lock:
            for name, status in initial:
                if name in self.sessions:
                    continue
                s = self.sessions[name] = Session(name, status, derive_me(name) if status == "WORKING" else None)
                s.statuses.append({"status": status, "timestamp": self.started_ms})
                if status == "WORKING":
                    s.activity = self.started_ms
                elif status == "SCAN_QR_CODE":
                    s.qr, s.qr_index = new_qr_value(), 1
                    self.schedule_locked(s, self.qr_first_ms, "qr")
            if self.core and "default" not in self.sessions:
                self.sessions["default"] = Session("default")
        self.threads = [threading.Thread(target=self._scheduler_loop, daemon=True)]
        for t in self.threads:
            t.start()

    def shutdown(self):
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        self.sender.close()
        for t in self.threads:
            t.join(timeout=1)

    def gate_timing(self):
        """(wait for running, wait for the status, poll) in seconds: WAHA's waitUntilStatus
        (waha-api.md 4: 5 s polled every 500 ms for a running session, then 10 s for the status),
        from --qr-running-ms / --qr-gate-ms; the poll shrinks with a shortened gate."""
        gate = self.qr_gate_ms
        running = self.qr_running_ms if self.qr_running_ms is not None else gate // 2
        return running / 1000.0, gate / 1000.0, min(QR_POLL_MAX_S, max(0.01, gate / 20000.0))

    def environment(self):
        return {"version": VERSION, "engine": ENGINE, "tier": "CORE" if self.core else "PLUS",
                "browser": BROWSER, "platform": "linux/x64", "worker": {"id": None}}

    # ---- stats
    def reset_stats(self):
        self.total, self.calls, self.by_session = 0, {}, {}
        self.max_in_flight = self.in_flight
        self.auth_counts = {"unauthorized": 0, "forbidden": 0}
        self.sender.reset()

    def begin_call(self, key, name):
        with self.lock:
            self.total += 1
            for counter, k, cap in ((self.calls, key, MAX_STAT_KEYS), (self.by_session, name, MAX_SESSION_STAT_KEYS)):
                if k is not None and (k in counter or len(counter) < cap):
                    counter[k] = counter.get(k, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end_call(self):
        with self.lock:
            self.in_flight -= 1

    def stats_locked(self):
        return {"total": self.total, "calls": dict(self.calls), "bySession": dict(self.by_session),
                "inFlight": self.in_flight, "maxInFlight": self.max_in_flight,
                "webhooks": self.sender.stats(), "sessions": len(self.sessions), "auth": dict(self.auth_counts)}

    def count_auth(self, what):
        with self.lock:
            self.auth_counts[what] += 1

    def fault_for(self, path):
        with self.lock:
            f = self.fault
            if f["mode"] == "none" or (f.get("paths") and not path.startswith(f["paths"])):
                return None
            return dict(f)

    def auth_scope(self, req):
        """ADMIN, the frozenset of sessions of a scoped key, or None (401)."""
        with self.lock:
            keys = self.keys
        return keys.check(req.headers.get("X-Api-Key") or req.query.get("x-api-key"))

    # ---- session lifecycle (all *_locked methods need self.lock held)
    def schedule_locked(self, s, delay_ms, action):
        s.due, s.action = time.monotonic() + max(0, delay_ms) / 1000.0, action
        heapq.heappush(self.timers, (s.due, next(self.timer_seq), s))
        if len(self.timers) > 4 * len(self.sessions) + 1024:  # drop stale entries
            self.timers = [t for t in self.timers if t[2].due == t[0] and self.sessions.get(t[2].name) is t[2]]
            heapq.heapify(self.timers)
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
        """SessionInfo (list items never have `engine`), or with DETAILED SessionDetailedInfo."""
        d = {"name": s.name, "status": s.status, "config": s.config, "me": s.me,
             "presence": "online" if s.status == "WORKING" else None,
             "timestamps": {"activity": s.activity}}
        if detailed:
            # A running session: {engine, ...getEngineInfo()} (WEBJS: WWebVersion, state). A
            # STOPPED one: Plus {} (waha-api.md 3.2, [P] fetchEngineInfo); Core {engine:
            # session?.engine} with no session, which JSON drops to {} (src/core/manager.core.ts
            # fetchEngineInfo, 2024.10.8 and 2026.2.1).
            d["engine"] = ({"engine": ENGINE, "WWebVersion": WWEB_VERSION, "state": ENGINE_STATE.get(s.status)}
                           if s.running else {})
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
                now = time.monotonic()
                while self.timers and self.timers[0][0] <= now:
                    due, _, s = heapq.heappop(self.timers)
                    if s.due == due and self.sessions.get(s.name) is s:
                        self.fire_locked(s)
                self.cond.wait(None if not self.timers else max(0.0, self.timers[0][0] - time.monotonic()))

    # ---- webhooks: every status change goes through emit_locked
    def emit_locked(self, s, ts):
        if self.legacy_webhooks:
            env = webhooks.legacy_envelope(s, ENGINE, "CORE" if self.core else "PLUS", BROWSER)
        else:
            env = webhooks.envelope(s, ts, "evt_" + ulid(), ENGINE, self.environment())
        self.webhook_log.append(env)
        self.ws.publish_locked(env)
        if self.webhook_url:
            self.deliver_locked(env, s, ts)

    def deliver_locked(self, env, s, ts):
        """Hand the event to the sender: WAHA's WebhookSender (waha-api.md 6.2 and 9, 2026.2.1) or,
        with legacyWebhooks, WebhookSenderCore of 2024.10.8 (see waha_sim_webhooks.py)."""
        body = to_json(env)
        meta = {"session": s.name, "sessionStatus": s.status, "legacy": bool(self.legacy_webhooks)}
        if self.legacy_webhooks:
            # WebhookSenderCore (src/core/webhooks.core.ts, 2024.10.8): no own headers, no retries.
            self.sender.submit(self.webhook_url, body, [], f"WAHA/{webhooks.LEGACY_VERSION}", 0, 0.0, meta)
            return
        own = [("X-Webhook-Request-Id", webhooks.request_id()), ("X-Webhook-Timestamp", str(ts))]
        if self.webhook_hmac_key:
            own += [("X-Webhook-Hmac", hmac.new(self.webhook_hmac_key.encode(), body, hashlib.sha512).hexdigest()),
                    ("X-Webhook-Hmac-Algorithm", "sha512")]
        self.sender.submit(self.webhook_url, body, own, f"WAHA/{VERSION}", self.webhook_retries,
                           self.webhook_retry_delay_ms / 1000.0, meta)


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
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        if self.sim.verbose:
            super().handle_error(request, client_address)


def parse_sessions(text):
    """NAME:STATUS[,...]; a name is anything without `,` and `:` (WAHA held such names before
    its name check of 2025-08)."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, _, status = item.partition(":")
        if not name:
            raise argparse.ArgumentTypeError(f"empty session name in {item!r}")
        out.append((name, status.strip() or "WORKING"))
    return out


def parse_key(text):
    try:
        return auth.Key(text).text
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def parse_session_key(text):
    try:
        return auth.parse_session_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def session_count(text):
    n = int(text)
    if not 0 <= n <= MAX_SESSIONS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SESSIONS} sessions")
    return n


def parse_args(argv):
    p = argparse.ArgumentParser(description="WAHA (WhatsApp HTTP API) simulator for wahagate tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    p.add_argument("--api-key", type=parse_key, default="simkey",
                   help="required X-Api-Key, plain or sha512:<hex> (default: simkey)")
    p.add_argument("--no-api-key", action="store_true", help="disable authentication")
    p.add_argument("--session-key", type=parse_session_key, action="append", default=[],
                   metavar="KEY:S1,S2", help="a key limited to those sessions (repeatable)")
    p.add_argument("--sessions", type=parse_sessions, default=parse_sessions("default:WORKING"),
                   help="initial sessions, NAME:STATUS[,...] (default: default:WORKING)")
    p.add_argument("--session-count", type=session_count, default=0, metavar="N",
                   help="also create s1..sN WORKING, each with its own me")
    p.add_argument("--core", action="store_true", help="WAHA Core: only 'default', /health answers 422")
    p.add_argument("--webhook-url", help="POST session.status envelopes here")
    p.add_argument("--webhook-hmac-key", help="sign webhooks with HMAC-SHA512")
    p.add_argument("--webhook-retries", type=int, default=15, help="retries of a failed delivery")
    p.add_argument("--webhook-retry-delay-ms", type=int, default=2000, help="wait before each retry")
    p.add_argument("--webhook-max-in-flight", type=int, default=webhooks.MAX_IN_FLIGHT,
                   help="deliveries at once; beyond it the oldest is dropped (and counted)")
    p.add_argument("--legacy-webhooks", action="store_true",
                   help="send webhooks as WAHA Core 2024.10.8 (no id/timestamp/X-Webhook-*/HMAC, no retry)")
    p.add_argument("--start-delay-ms", type=int, default=2000, help="STARTING -> WORKING/SCAN_QR_CODE")
    p.add_argument("--qr-first-ms", type=int, default=60000, help="lifetime of the first QR")
    p.add_argument("--qr-next-ms", type=int, default=20000, help="lifetime of each next QR")
    p.add_argument("--qr-count", type=int, default=6, help="QRs before FAILED")
    p.add_argument("--qr-gate-ms", type=int, default=10000, help="QR route: wait for SCAN_QR_CODE")
    p.add_argument("--qr-running-ms", type=int, default=None,
                   help="QR route: wait for a running session (default: half of --qr-gate-ms)")
    p.add_argument("--stop-delay-ms", type=int, default=3000, help="sleep of stop/restart/logout")
    p.add_argument("--engine-delay-ms", type=int, default=1000,
                   help="engine-info time of GET /api/sessions/{name} for a running session")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    waha_sim_ws.add_arguments(p)
    args = p.parse_args(argv)
    for attr in ("webhook_retries", "webhook_retry_delay_ms", "start_delay_ms", "qr_first_ms", "qr_next_ms",
                 "qr_gate_ms", "stop_delay_ms", "engine_delay_ms"):
        setattr(args, attr, max(0, getattr(args, attr)))
    args.webhook_max_in_flight = max(1, args.webhook_max_in_flight)
    if args.qr_running_ms is not None:
        args.qr_running_ms = max(0, args.qr_running_ms)
    if args.core:
        dropped = [n for n, _ in args.sessions if n != "default"] + (["s1..sN"] if args.session_count else [])
        if dropped:
            print(f"waha_sim: --core ignores sessions {', '.join(dropped)}", file=sys.stderr)
        args.sessions = [(n, st) for n, st in args.sessions if n == "default"]
        args.session_count = 0
    if len(args.sessions) + args.session_count > MAX_SESSIONS:
        p.error(f"at most {MAX_SESSIONS} sessions")
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
