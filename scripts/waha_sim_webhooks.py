"""Webhook deliveries of the WAHA simulator (scripts/waha_sim.py), imported by it.

Two senders are modelled, chosen per event by the simulator's `legacyWebhooks` switch:

* WAHA 2026 (the default), after WAHA's WebhookSender (src/core/integrations/webhooks/
  WebhookSender.ts, 2026.2.1, per waha-api.md 6.2 and 9): the headers are built ONCE per
  delivery, so `X-Webhook-Request-Id` is the same on every retry (axios-retry resends the same
  request config); axios-retry with a constant policy, by default 15 retries 2 s apart; every
  error is retried, 4xx and network errors included; a `Retry-After` answer header is honoured
  (the wait is the larger of it and the policy's delay); axios has no request timeout (the
  simulator keeps a generous bound, TIMEOUT_S); each delivery runs on its own, fire-and-forget,
  so a retried older event can arrive after a newer one.
* WAHA Core 2024.10.8, before webhooks were merged from Plus in 2024-11 (waha-api.md 9): read
  from `git show core:src/core/webhooks.core.ts` (devlikeapro/waha, branch core, 55fc6a42):
  WebhookSenderCore.send() is a bare `axios.post(url, json, {headers: {}})` on an instance
  created with `content-type: application/json` and `User-Agent: WAHA/2024.10.8`, with no
  axios-retry (one attempt, errors only logged), no X-Webhook-* headers and no HMAC.

Transport headers are what axios 1.7.7 (WAHA 2024.10.8's yarn.lock) adds on Node
(lib/core/Axios.js, lib/adapters/http.js at tag v1.7.7 of axios/axios): `Accept: application/json,
text/plain, */*` from its defaults, `Content-Length`, `Accept-Encoding: gzip, compress, deflate,
br`; Node's http module then adds `Host` and, for agentkeepalive's keep-alive agent,
`Connection: keep-alive`. The same transport is assumed for the 2026 sender (still axios).
Headers go out in the order axios' AxiosHeaders.toJSON() gives them: Accept, Content-Type,
User-Agent, [the sender's own], Content-Length, Accept-Encoding, Host, Connection.
"""

import email.utils
import http.client
import itertools
import os
import socket
import ssl
import sys
import threading
import time
from collections import OrderedDict, deque
from urllib.parse import urlsplit

LEGACY_VERSION = "2024.10.8"
MAX_IN_FLIGHT = 1000          # deliveries at once; the oldest is dropped (and counted) beyond
TIMEOUT_S = 60.0              # per attempt; WAHA (axios) has none
RETRY_AFTER_MAX_S = 3600.0
ATTEMPT_LOG_MAX = 200
RESPONSE_READ_MAX = 1 << 20
ACCEPT = "application/json, text/plain, */*"
ACCEPT_ENCODING = "gzip, compress, deflate, br"


def request_id():
    """Like uniqid: microseconds since the epoch in hex, then random hex."""
    return format(time.time_ns() // 1000, "x") + os.urandom(4).hex()


def envelope(s, ts, event_id, engine, environment):
    """WAHA 2026's session.status envelope (waha-api.md 6.3; src/core/abc/manager.abc.ts
    populateSessionInfo, 2026.2.1): id and timestamp set when the event is emitted."""
    env = {"id": event_id, "timestamp": ts, "event": "session.status", "session": s.name}
    metadata = s.config.get("metadata") if isinstance(s.config, dict) else None
    if metadata:
        env["metadata"] = metadata
    env.update({"me": s.me, "payload": {"name": s.name, "status": s.status, "statuses": list(s.statuses)},
                "engine": engine, "environment": environment})
    return env


def legacy_envelope(s, engine, tier, browser):
    """WAHA Core 2024.10.8's envelope: WebhookConductorCore.callWebhook (src/core/webhooks.core.ts)
    builds {event, session, metadata: sessionConfig?.metadata, me, payload, engine,
    environment: VERSION}; JSON.stringify drops an undefined metadata. The session.status payload
    is WASessionStatusBody {name, status} (src/core/abc/session.abc.ts `set status`), VERSION is
    {version, engine, tier, browser} (src/version.ts). No id, no timestamp."""
    env = {"event": "session.status", "session": s.name}
    metadata = s.config.get("metadata") if isinstance(s.config, dict) else None
    if metadata is not None:
        env["metadata"] = metadata
    env.update({"me": s.me, "payload": {"name": s.name, "status": s.status}, "engine": engine,
                "environment": {"version": LEGACY_VERSION, "engine": engine, "tier": tier,
                                "browser": browser}})
    return env


def host_header(parts):
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def parse_retry_after(value):
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or 0."""
    if not value:
        return 0.0
    value = value.strip()
    try:
        seconds = float(int(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when is None:
            return 0.0
        seconds = when.timestamp() - time.time()
    return min(max(0.0, seconds), RETRY_AFTER_MAX_S)


class Delivery:
    """One event to one URL, with all its attempts."""

    def __init__(self, num, url, body, own_headers, user_agent, retries, delay_s, meta):
        self.num, self.url, self.body, self.meta = num, url, body, meta
        self.parts = urlsplit(url)
        if self.parts.scheme not in ("http", "https") or not self.parts.hostname:
            raise ValueError(f"unsupported webhook URL {url!r}")
        self.path = (self.parts.path or "/") + ("?" + self.parts.query if self.parts.query else "")
        self.headers = ([("Accept", ACCEPT), ("Content-Type", "application/json"), ("User-Agent", user_agent)]
                        + list(own_headers)
                        + [("Content-Length", str(len(body))), ("Accept-Encoding", ACCEPT_ENCODING),
                           ("Host", host_header(self.parts)), ("Connection", "keep-alive")])
        self.request_id = dict(own_headers).get("X-Webhook-Request-Id")
        self.retries, self.delay_s = retries, delay_s
        self.cancel = threading.Event()
        self.dropped = False
        self.conn = None
        self.thread = None


class WebhookSender:
    """Deliveries in flight, each on its own thread; counters for /_sim/stats."""

    def __init__(self, verbose=False, max_in_flight=MAX_IN_FLIGHT, timeout_s=TIMEOUT_S):
        self.verbose, self.max_in_flight, self.timeout_s = verbose, max_in_flight, timeout_s
        self.lock = threading.Lock()
        self.deliveries = OrderedDict()  # num -> Delivery, oldest first
        self.log = deque(maxlen=ATTEMPT_LOG_MAX)
        self.numbers = itertools.count(1)
        self.closed = False
        self.reset()

    def reset(self):
        with self.lock:
            self.counters = {"sent": 0, "failed": 0, "attempts": 0, "dropped": 0, "retries": 0}
            self.max_seen = len(self.deliveries)
            self.log.clear()

    def stats(self):
        with self.lock:
            n = len(self.deliveries)
            return dict(self.counters, queued=n, inFlight=n, maxInFlight=self.max_seen)

    def attempts_log(self):
        with self.lock:
            return list(self.log)

    def submit(self, url, body, own_headers, user_agent, retries, delay_s, meta):
        """Start delivering BODY to URL. OWN_HEADERS: the sender's (X-Webhook-*) headers, fixed
        for all attempts. Safe to call with the simulator's lock held (takes only its own)."""
        with self.lock:
            if self.closed:
                return
            try:
                d = Delivery(next(self.numbers), url, body, own_headers, user_agent, retries, delay_s, meta)
            except ValueError as exc:
                self.counters["failed"] += 1
                if self.verbose:
                    print(f"webhook: {exc}", file=sys.stderr, flush=True)
                return
            while len(self.deliveries) >= self.max_in_flight:
                _, old = self.deliveries.popitem(last=False)
                old.dropped = True
                old.cancel.set()
                self._abort_locked(old)
                self.counters["dropped"] += 1
            self.deliveries[d.num] = d
            self.max_seen = max(self.max_seen, len(self.deliveries))
            d.thread = threading.Thread(target=self._run, args=(d,), daemon=True, name=f"webhook-{d.num}")
        try:
            d.thread.start()
        except RuntimeError:  # no more threads: as good as dropped
            with self.lock:
                if self.deliveries.pop(d.num, None) is not None:
                    self.counters["dropped"] += 1

    def close(self, timeout_s=2.0):
        """Stop every delivery (pending waits end, open connections are shut) and wait for them."""
        with self.lock:
            self.closed = True
            pending = list(self.deliveries.values())
            for d in pending:
                d.cancel.set()
                self._abort_locked(d)
        deadline = time.monotonic() + timeout_s
        for d in pending:
            if d.thread is not None and d.thread.ident is not None:
                d.thread.join(max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _abort_locked(d):
        conn = d.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self, d):
        outcome, wait_s = "failed", 0.0
        try:
            for attempt in range(d.retries + 1):
                if attempt and d.cancel.wait(max(d.delay_s, wait_s)):
                    outcome = "cancelled"
                    break
                if d.cancel.is_set():
                    outcome = "cancelled"
                    break
                started = time.time()
                status, wait_s, error = self._post(d)
                ok = status is not None and 200 <= status < 300
                with self.lock:
                    self.counters["attempts"] += 1
                    if attempt:
                        self.counters["retries"] += 1
                    self.log.append({"delivery": d.num, "attempt": attempt + 1, "url": d.url,
                                     "requestId": d.request_id, "status": status, "error": error,
                                     "startedMs": int(started * 1000),
                                     "ms": int((time.time() - started) * 1000), **d.meta})
                if ok:
                    outcome = "sent"
                    break
                if self.verbose:
                    print(f"webhook POST {d.url} attempt {attempt + 1} failed: {error or status}",
                          file=sys.stderr, flush=True)
        finally:
            with self.lock:
                self.deliveries.pop(d.num, None)
                if not d.dropped and outcome in ("sent", "failed"):
                    self.counters[outcome] += 1

    def _post(self, d):
        """One attempt: (status or None, Retry-After seconds, error text or None)."""
        p = d.parts
        if p.scheme == "https":
            conn = http.client.HTTPSConnection(p.hostname, p.port, timeout=self.timeout_s,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(p.hostname, p.port, timeout=self.timeout_s)
        with self.lock:
            if d.cancel.is_set():
                return None, 0.0, "cancelled"
            d.conn = conn
        try:
            conn.connect()
            if d.cancel.is_set():
                return None, 0.0, "cancelled"
            conn.putrequest("POST", d.path, skip_host=True, skip_accept_encoding=True)
            for name, value in d.headers:
                conn.putheader(name, value)
            conn.endheaders(d.body)
            resp = conn.getresponse()
            resp.read(RESPONSE_READ_MAX)
            return resp.status, parse_retry_after(resp.getheader("Retry-After")), None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return None, 0.0, f"{type(exc).__name__}: {exc}"
        finally:
            with self.lock:
                d.conn = None
            conn.close()
