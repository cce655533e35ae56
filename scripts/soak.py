#!/usr/bin/python3
"""Soak test of wahagate (make soak): a long run under mixed load that fails
on memory growth, on a request that fails when it should not, or on more
calls to WAHA than the configuration allows.

Usage: scripts/soak.py [GATEWAY_BIN]      (default build/wahagate)
  SOAK_MINUTES=10   length of the run (default 10)
  SOAK_SECONDS=60   the same in seconds, for short checks (wins over minutes)
  SOAK_CLIENTS=48   keep-alive status pollers
  SOAK_KEEP=1       keep the work directory (gateway and simulator logs)

Built on the harness of the integration tests (tests/integration/conftest.py):
its Simulator, Gateway and ProcessStack start and stop the processes, its
KeepAliveClient, Stream and StatsSampler make the load and watch WAHA. Run
with Debian's /usr/bin/python3; standard library and python3-pytest (which
conftest imports).

DESIGN
The simulator (scripts/waha_sim.py, sessions default, shop, alpha, beta
and scan, the last waiting for a QR scan) and the gateway (2 workers, no
scaling, no rate limit, webhooks signed) run on 127.0.0.1 at free ports.
Threads, each with a bound on its iterations and on time, make the load:
  - pollers: keep-alive clients of /api/waha/status?session=X, half of
    them sending If-None-Match with the last ETag;
  - a misc client: health, session list, one session, the QR (PNG, JSON,
    raw), config, stats, metrics, the dashboard, HEAD;
  - SSE subscribers of /api/waha/events (all sessions or one) that stay
    2-15 s and reconnect, some with Last-Event-ID;
  - a webhook sender: signed session.status envelopes, plus duplicates, bad
    signatures, ignored events and untracked sessions;
  - the simulator changes session statuses (and delivers its own signed
    webhooks), and faults are switched on and off (500, 503 with
    Retry-After, down, slow, timeout);
  - a killer: SIGSTOP the youngest worker, note the client connections it
    holds (/proc/net/tcp and its fds), SIGKILL it, wait for the master to
    replace it. The oldest worker, the master and the fetcher live for
    the whole run, so a leak in them shows in the RSS.
  - samplers: total RSS of the gateway's processes every few seconds, the
    simulator's /_sim/stats every 0.5 s, its webhook log every 3 s.

What fails the run (see check_* below):
  - requests: a data path (status, health, sessions, QR) must answer 200,
    or 304 to If-None-Match; 503 only before that path's first 200 (the
    contract: no data yet; stale_if_error is a day). Config, stats,
    metrics and the dashboard: 200. Webhooks: 200 applied/duplicate, 202
    ignored/untracked, 401 for a bad signature, as sent. A connection
    error (reset, EOF, timeout after 30 s) is allowed only on a connection
    that the killed worker held when it was stopped and that was opened
    before; so there are at most as many as the victims held, counted.
    SSE: 200 text/event-stream, JSON data, non-decreasing ids (by
    event_id_key()), the first
    event within 15 s (unless resuming), no end that no kill explains.
  - processes: every killed worker replaced within 15 s; no other child
    death in the log; the fetcher is the same process from start to end;
    the master exits 0 on SIGTERM.
  - memory: after a warm-up (20% of the run, at least 60 s in runs of 5
    minutes or more) the median of the samples of the last 15% of the run
    must not be more than 5% above the median of the first 15% after the
    warm-up; the same for the long-lived processes alone.
  - WAHA: maxInFlight <= limits.max_concurrent_requests (the simulator's
    high-water mark, checked whenever it is reset and at the end; not
    during a timeout fault, where the calls the gateway gave up on still
    sleep in the simulator), and calls per session within the schedule
    (test_refresh.py's bound) in every clean window (no fault since
    SETTLE_S), plus one call per webhook applied to that session; in
    fault windows at most (window/0.5 s + 2 + webhooks) * (1 + max_retries).
  - at the end, with WAHA healthy again, the gateway shows every session's
    status as the simulator has it within 30 s.
Every process started here is stopped by its PID at the end, also on
failure or Ctrl-C (ProcessStack), and every thread is a conftest
Background, bounded in iterations and in time.
"""

import hashlib
import hmac
import http.client
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from conftest import (Background, KeepAliveClient, NoAnswer, ProcessStack,  # noqa: E402
                      StatsSampler, Stream, event_id_key, http_request, proc_rss_kb,
                      proc_start_time, proc_title, server_connections, stop_all,
                      wait_until)

HMAC_KEY = "soak-webhook-secret"
SESSIONS = ["default", "shop", "alpha", "beta"]  # polled, statuses change
QR_SESSION = "scan"                               # always SCAN_QR_CODE
ALL_SESSIONS = SESSIONS + [QR_SESSION]
WORKERS = 2
PERIOD_S = 2.0          # status_cache_duration = session_cache_duration
HEALTH_PERIOD_S = 5.0
MAX_CONC = 2
MAX_RETRIES = 2
REQUEST_TIMEOUT_S = 2.0
MAX_OPEN_S = 8.0
FIRST_BACKOFF_S = 0.5   # FETCHER_FIRST_BACKOFF_MS
SAFETY_S = 10.0         # webhook.safety_interval
# A window is clean SETTLE_S after a fault ended: the breaker's longest open
# period, two refresh periods and one refresh with all its retries.
SETTLE_S = MAX_OPEN_S + 2 * PERIOD_S + REQUEST_TIMEOUT_S * (1 + MAX_RETRIES) + 2.0
CLIENT_TIMEOUT_S = 30.0
SSE_TIMEOUT_S = 15.0    # the first bytes of a stream
RSS_GROWTH_MAX = 0.05
STATUS_CYCLE = ["WORKING", "STOPPED", "STARTING", "WORKING", "FAILED", "WORKING"]
FAULTS = [{"mode": "error", "status": 500},
          {"mode": "slow", "delayMs": 3000},   # longer than request_timeout
          {"mode": "down"},
          {"mode": "error", "status": 503, "retryAfter": 1},
          {"mode": "slow", "delayMs": 1200}]   # answers, slowly
# What a call to the simulator's control API may raise.
SIM_ERRORS = (OSError, AssertionError, ValueError, http.client.HTTPException)

GATEWAY_SECTIONS = {
    "server": {"workers": WORKERS, "min_workers": WORKERS, "max_workers": WORKERS},
    "ratelimit": {"enabled": False},
    "upstream": {"sessions": ",".join(ALL_SESSIONS)},
    "backend": {"status_cache_duration": int(PERIOD_S * 1000),
                "session_cache_duration": int(PERIOD_S * 1000),
                "health_check_cache_duration": int(HEALTH_PERIOD_S * 1000),
                "flap_hold": 1000},
    "limits": {"max_concurrent_requests": MAX_CONC,
               "request_timeout": int(REQUEST_TIMEOUT_S * 1000),
               "max_retries": MAX_RETRIES},
    "circuit": {"failure_threshold": 5, "open_duration": 2000,
                "max_open_duration": int(MAX_OPEN_S * 1000)},
    "webhook": {"hmac_key": HMAC_KEY, "safety_interval": int(SAFETY_S * 1000)},
}


def now():
    return time.monotonic()


def median(values):
    return statistics.median(values) if values else 0


def role_of(pid):
    """master, fetcher or worker, from the process title."""
    title = proc_title(pid) or ""
    return title[10:].split()[0] if title.startswith("wahagate: ") and title[10:] else "?"


# --------------------------------------------------------------------------- the record of what happened

class Record:
    """What the threads observe and judge as they go, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.by_status = {}          # "kind status" -> n
        self.failures = []           # (time, what)
        self.first_ok = {}           # data path -> time its first 200 finished
        self.sse = {"streams": 0, "events": 0, "resumed": 0, "ended_by_client": 0,
                    "ended_by_kill": []}  # (time, local port, opened)
        self.webhooks = {"sent": 0, "by_result": {}, "applied": []}  # (start, end, session)
        self.kills = []              # {"pid", "t", "ports", "replaced_in"}
        self.status_changes = []     # (time, session, status)
        self.faults = []             # (t_on, t_off, fault)
        self.rss = []                # (time, total kB, long-lived kB, processes)
        self.sim_webhooks = {}       # envelope id -> (monotonic time, session)
        self.unchecked_inflight = [] # maxInFlight of segments with a timeout fault
        self.inflight_checked = []   # maxInFlight of checked segments
        self.current = {s: "WORKING" for s in SESSIONS}
        self.current[QR_SESSION] = "SCAN_QR_CODE"

    def fail(self, what):
        with self.lock:
            self.failures.append((now(), what))

    def count(self, kind, status):
        key = f"{kind} {status}"
        with self.lock:
            self.requests += 1
            self.by_status[key] = self.by_status.get(key, 0) + 1


# --------------------------------------------------------------------------- the load

DATA_KINDS = ("status", "head", "health", "sessions", "session", "qr")


def check_answer(rec, kind, path, status, headers, body, sent_inm, started):
    """Judge one answer of a GET path (see the header for the rules)."""
    rec.count(kind, status)
    if kind in DATA_KINDS:
        if status == 200:
            with rec.lock:
                rec.first_ok.setdefault(path, now())
        elif status == 304 and sent_inm:
            pass
        elif status == 503:
            with rec.lock:
                first = rec.first_ok.get(path)
            if first is not None and started > first:
                rec.fail(f"{path}: 503 after data existed: {body[:200]!r}")
        else:
            rec.fail(f"{path}: {status} {body[:200]!r}")
    elif status != 200:
        rec.fail(f"{path}: {status} {body[:200]!r}")
    if status == 200 and kind == "status":
        try:
            doc = json.loads(body)
            want = path.split("session=")[1] if "session=" in path else SESSIONS[0]
            if doc.get("session") != want or not isinstance(doc.get("status"), str):
                rec.fail(f"{path}: unexpected object {doc}")
            if "etag" not in headers:
                rec.fail(f"{path}: 200 without ETag")
        except ValueError:
            rec.fail(f"{path}: body is not JSON: {body[:200]!r}")


class Client(KeepAliveClient):
    """A keep-alive client of the soak, until the end of the run. Strict:
    with a fixed number of workers nothing closes a keep-alive connection
    but a kill, so a request without an answer is recorded with its
    connection (results), for the kill check."""

    def __init__(self, rec, port, seconds, intervals, **kw):
        self.rec = rec
        super().__init__(port, intervals=intervals, timeout=CLIENT_TIMEOUT_S,
                         max_requests=1_000_000, max_seconds=seconds, strict=True, **kw)

    def lost(self):
        """(time, local port, opened, what) of the requests without an answer."""
        return [(r[1], r[5], r[6], r[3]) for r in self.snapshot() if r[2] is None]


class Poller(Client):
    """Polls /api/waha/status?session=X, with If-None-Match when INM."""

    def __init__(self, rec, port, seconds, session, inm, intervals):
        self.path = f"/api/waha/status?session={session}"
        self.inm, self.etag, self.sent_inm = inm, None, False
        super().__init__(rec, port, seconds, intervals)

    def next_request(self, n):
        headers = {"If-None-Match": self.etag} if self.inm and self.etag else {}
        self.sent_inm = bool(headers)
        return "GET", self.path, headers, None

    def on_result(self, n, started, answer):
        if answer is None:
            return
        status, hdrs, body = answer
        check_answer(self.rec, "status", self.path, status, hdrs, body, self.sent_inm, started)
        if status == 200:
            self.etag = hdrs.get("etag")

    def latencies(self):
        return [(r[1] - r[0], r[0], r[2]) for r in self.snapshot() if r[2] is not None]


MISC_PATHS = [
    ("health", "GET", "/api/waha/health", {}),
    ("sessions", "GET", "/api/waha/sessions", {}),
    ("session", "GET", "/api/waha/sessions/shop", {}),
    ("qr", "GET", f"/api/waha/sessions/{QR_SESSION}/qr", {}),
    ("qr", "GET", f"/api/waha/sessions/{QR_SESSION}/qr?format=raw", {}),
    ("qr", "GET", f"/api/waha/sessions/{QR_SESSION}/qr#json", {"Accept": "application/json"}),
    ("static", "GET", "/api/waha/config", {}),
    ("static", "GET", "/api/waha/monitoring/stats", {}),
    ("static", "GET", "/metrics", {}),
    ("static", "GET", "/", {}),
    ("static", "GET", "/poller.js", {}),
    ("head", "HEAD", "/api/waha/status#head", {}),
    ("status", "GET", "/api/waha/status", {}),
]


class MiscClient(Client):
    def next_request(self, n):
        kind, method, path, headers = MISC_PATHS[n % len(MISC_PATHS)]
        return method, path.split("#")[0], headers, None

    def on_result(self, n, started, answer):
        if answer is not None:
            kind, _, path, _ = MISC_PATHS[n % len(MISC_PATHS)]
            check_answer(self.rec, kind, path, *answer, False, started)


def sign(body):
    return hmac.new(HMAC_KEY.encode(), body, hashlib.sha512).hexdigest()


def envelope(session, status, event="session.status", env_id=None):
    ts = int(time.time() * 1000)
    me = {"id": "1555000111@c.us", "pushName": session} if status == "WORKING" else None
    return {"id": env_id or "evt_soak" + os.urandom(9).hex(), "timestamp": ts, "event": event,
            "session": session, "me": me,
            "payload": {"name": session, "status": status,
                        "statuses": [{"status": status, "timestamp": ts}]},
            "engine": "WEBJS",
            "environment": {"version": "2026.2.1", "engine": "WEBJS", "tier": "PLUS",
                            "browser": None, "platform": "linux/x64", "worker": {"id": None}}}


class WebhookSender(Client):
    """Signed envelopes with the simulator's current status; every few a
    duplicate, a bad signature, an ignored event or an untracked session.
    Fresh connection per POST, as WAHA does."""

    def __init__(self, *a, **kw):
        self.last_body = None
        self.sending = None   # (kind, session, body, wanted) of the request under way
        super().__init__(*a, fresh=True, **kw)

    def next_request(self, n):
        with self.rec.lock:
            session = ALL_SESSIONS[n % len(ALL_SESSIONS)]
            status = self.rec.current[session]
        signature = None
        if n % 8 == 7 and self.last_body is not None:
            kind, body, want = "duplicate", self.last_body, (200, "duplicate")
        elif n % 10 == 9:
            kind, body, want = "bad-signature", json.dumps(envelope(session, status)).encode(), \
                (401, None)
            signature = "0" * 128
        elif n % 12 == 11:
            kind, body, want = "ignored", json.dumps(envelope(session, status, "message")).encode(), \
                (202, "ignored")
        elif n % 15 == 14:
            kind, body, want = "untracked", json.dumps(envelope("nobody", "WORKING")).encode(), \
                (202, "untracked")
        else:
            kind, body, want = "applied", json.dumps(envelope(session, status)).encode(), \
                (200, "applied")
        headers = {"Content-Type": "application/json", "X-Webhook-Hmac": signature or sign(body),
                   "X-Webhook-Hmac-Algorithm": "sha512"}
        self.sending = (kind, session, body, want)
        return "POST", "/api/waha/webhook", headers, body

    def on_result(self, n, started, answer):
        if self.sending is None:   # an idle close (none: fresh connections)
            return
        kind, session, body, want = self.sending
        self.sending = None
        if answer is None:
            if kind == "applied":  # it may have been applied before the kill
                with self.rec.lock:
                    self.rec.webhooks["applied"].append((started, now(), session))
            return
        status_code, _, out = answer
        self.rec.count("webhook", status_code)
        try:
            result = json.loads(out).get("result") if out else None
        except ValueError:
            result = None
        with self.rec.lock:
            self.rec.webhooks["sent"] += 1
            key = f"{kind} {status_code}"
            self.rec.webhooks["by_result"][key] = self.rec.webhooks["by_result"].get(key, 0) + 1
            if kind == "applied" and status_code == 200 and result == "applied":
                self.rec.webhooks["applied"].append((started, now(), session))
                self.last_body = body  # the next duplicate repeats one surely applied
        if status_code != want[0] or (want[1] is not None and result != want[1]):
            self.rec.fail(f"webhook {kind}: {status_code} {out[:200]!r}, wanted {want}")


class Subscriber(Background):
    """An SSE client: connects, reads events for 2-15 s, closes, again."""

    def __init__(self, rec, port, seconds, index):
        self.rec, self.port = rec, port
        self.random = random.Random(index)
        self.index = index
        self.last_id = None
        super().__init__(SSE_TIMEOUT_S, seconds)

    def _run(self):
        n = 0
        while self._going(n, 100000):
            n += 1
            self.stream(self.random.uniform(2.0, 15.0))
            self._stop.wait(self.random.uniform(0.1, 1.0))

    def stream(self, hold_s):
        scope = ALL_SESSIONS[self.index % len(ALL_SESSIONS)] if self.index % 2 else None
        path = "/api/waha/events" + (f"?session={scope}" if scope else "")
        resume = self.last_id is not None and self.random.random() < 0.3
        try:
            s = Stream(self.port, path, last_event_id=self.last_id if resume else None,
                       timeout=SSE_TIMEOUT_S, read_head=False)
        except OSError as exc:
            self.rec.fail(f"SSE connect: {exc!r}")
            return
        with self.rec.lock:
            self.rec.sse["streams"] += 1
            self.rec.sse["resumed"] += resume
        seen, last_id = 0, None
        end = s.opened + hold_s
        try:
            s.read_head()
            self.rec.count("sse", int(s.status_line[9:12]))
            if s.status_line[9:12] != "200" or \
                    not s.headers.get("content-type", "").startswith("text/event-stream") or \
                    "content-length" in s.headers or "transfer-encoding" in s.headers:
                self.rec.fail(f"SSE {path}: {s.status_line} {s.headers}")
                return
            while now() < end and not self._stop.is_set():
                events = s.events(max(0.05, min(1.0, end - now())))
                for event_id, _, doc in events[seen:]:
                    if not isinstance(doc, dict) or doc.get("session") not in ALL_SESSIONS or \
                            (scope and doc["session"] != scope):
                        self.rec.fail(f"SSE {path}: unexpected event {event_id} {doc}")
                    if event_id is not None:
                        if last_id is not None and \
                                event_id_key(event_id) < event_id_key(last_id):
                            self.rec.fail(f"SSE {path}: id {event_id} after {last_id}")
                        last_id = event_id
                seen = len(events)
                if s.closed:
                    raise NoAnswer(b"", "closed by the server")
                if seen == 0 and not resume and now() - s.opened > SSE_TIMEOUT_S:
                    self.rec.fail(f"SSE {path}: nothing within {SSE_TIMEOUT_S:.0f} s")
                    return
            with self.rec.lock:
                self.rec.sse["ended_by_client"] += 1
        except (NoAnswer, OSError) as exc:
            with self.rec.lock:
                self.rec.sse["ended_by_kill"].append((now(), s.local_port, s.opened, repr(exc)))
        except ValueError as exc:
            self.rec.fail(f"SSE {path}: bad event: {exc!r}")
        finally:
            s.close()
            with self.rec.lock:
                self.rec.sse["events"] += seen
            if last_id is not None:
                self.last_id = last_id


# --------------------------------------------------------------------------- chaos: statuses, faults, kills

class StatusChanger(Background):
    """Changes a session's status in the simulator every 2-5 s."""

    def __init__(self, rec, sim, seconds):
        self.rec, self.sim = rec, sim
        super().__init__(max_seconds=seconds)

    def _run(self):
        rnd, n = random.Random(1), 0
        while self._going(n, 100000):
            if self._stop.wait(rnd.uniform(2.0, 5.0)):
                return
            session = rnd.choice(SESSIONS)
            n += 1
            status = STATUS_CYCLE[n % len(STATUS_CYCLE)]
            try:
                self.sim.set_session(session, status)
            except SIM_ERRORS as exc:
                self.rec.fail(f"simulator status change: {exc!r}")
                continue
            with self.rec.lock:
                self.rec.current[session] = status
                self.rec.status_changes.append((now(), session, status))


class FaultSwitcher(Background):
    """Clean periods and WAHA faults in turn, the last fault ending SETTLE_S
    before the end. Around a fault longer than the request timeout the
    simulator's counters are reset (through the sampler), so that its
    maxInFlight is checked everywhere but there."""

    def __init__(self, rec, sim, sampler, end, short):
        self.rec, self.sim, self.sampler, self.end = rec, sim, sampler, end
        self.clean_s = (10, 16) if short else (35, 50)
        self.fault_s = (3, 6) if short else (6, 12)
        super().__init__(max_seconds=end - now())

    def _run(self):
        rnd, n = random.Random(2), 0
        while self._going(n, 10000):
            n += 1
            if self._stop.wait(rnd.uniform(*self.clean_s)):
                return
            hold = rnd.uniform(*self.fault_s)
            if now() + hold + SETTLE_S > self.end:
                return
            fault = FAULTS[(n - 1) % len(FAULTS)]
            timeout = fault["mode"] == "slow" and fault["delayMs"] > REQUEST_TIMEOUT_S * 1000
            if timeout:
                with self.rec.lock:
                    self.rec.inflight_checked.append(self.sampler.reset_counters()["maxInFlight"])
            t_on = now()
            self.sim.fault(**fault)
            self._stop.wait(hold)
            self.sim.fault("none")
            with self.rec.lock:
                self.rec.faults.append((t_on, now(), fault))
            if timeout:
                # The calls the gateway gave up on still sleep in the simulator.
                wait_until(lambda: not self.sim.stats()["inFlight"], 30, 0.1)
                with self.rec.lock:
                    self.rec.unchecked_inflight.append(
                        self.sampler.reset_counters()["maxInFlight"])


class SimWebhooks(Background):
    """The simulator's webhook log (its last envelopes) every 3 s."""

    def __init__(self, rec, sim, seconds):
        self.rec, self.sim = rec, sim
        super().__init__(max_seconds=seconds)

    def _run(self):
        n = 0
        while self._going(n, 100000):
            n += 1
            if self._stop.wait(3.0):
                return
            try:
                self.sample()
            except SIM_ERRORS as exc:
                self.rec.fail(f"simulator webhooks: {exc!r}")

    def sample(self):
        offset = time.time() - now()
        for env in self.sim.control("GET", "/_sim/webhooks"):
            with self.rec.lock:
                self.rec.sim_webhooks.setdefault(
                    env["id"], (env["timestamp"] / 1000.0 - offset, env["session"]))


class WorkerKiller(Background):
    """Every KILL_EVERY s: SIGSTOP the youngest worker, note the client
    connections it holds, SIGKILL it, wait for the master to replace it."""

    def __init__(self, rec, gw, end, kill_every):
        self.rec, self.gw, self.end, self.kill_every = rec, gw, end, kill_every
        super().__init__(max_seconds=end - now())

    def _run(self):
        n = 0
        while self._going(n, 10000):
            n += 1
            if self._stop.wait(self.kill_every) or now() > self.end - 10:
                return
            workers = self.gw.child_pids("worker")
            if len(workers) != WORKERS:
                self.rec.fail(f"{len(workers)} workers before kill {n}: {workers}")
                continue
            victim = max(workers, key=lambda p: (proc_start_time(p), p))
            # Stopped, it accepts nothing more: the connections it holds
            # are exactly those the kill will cut.
            try:
                os.kill(victim, signal.SIGSTOP)
                try:
                    ports = server_connections(self.gw.port, [victim])[victim]
                finally:
                    t_kill = now()
                    os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                self.rec.fail(f"worker {victim} vanished before the kill")
                continue

            def replaced():
                current = self.gw.child_pids("worker")
                return len(current) == WORKERS and victim not in current
            done = wait_until(lambda: "replaced" if replaced() else self._stop.is_set(), 15, 0.05)
            replaced_in = now() - t_kill if done == "replaced" else None
            with self.rec.lock:
                self.rec.kills.append({"pid": victim, "t": t_kill, "ports": ports,
                                       "replaced_in": replaced_in})
            if replaced_in is None and not self._stop.is_set():
                self.rec.fail(f"worker {victim} not replaced within 15 s")


class RssSampler(Background):
    """The RSS of all the gateway's processes, and of LONG_LIVED, every EVERY s."""

    def __init__(self, rec, gw, t0, every, long_lived, seconds):
        self.rec, self.gw, self.t0, self.every, self.long_lived = rec, gw, t0, every, long_lived
        super().__init__(max_seconds=seconds)

    def _run(self):
        n = 0
        while self._going(n, 100000):
            n += 1
            pids = self.gw.pids()
            total = sum(proc_rss_kb(p) for p in pids)
            lasting = sum(proc_rss_kb(p) for p in self.long_lived)
            with self.rec.lock:
                self.rec.rss.append((now() - self.t0, total, lasting, len(pids)))
            self._stop.wait(self.every)


# --------------------------------------------------------------------------- checks


def explained_by_kill(rec, t_err, local_port, opened):
    """Did a killed worker hold this connection when it was stopped?"""
    return any(local_port in k["ports"] and opened <= k["t"] <= t_err for k in rec.kills)


def check_connections(rec, lost):
    """LOST: (time, local port, opened, what) of the requests without an answer."""
    allowed, bad = 0, []
    for t, port, opened, what in lost:
        if port is not None and explained_by_kill(rec, t, port, opened):
            allowed += 1
        else:
            bad.append(f"connection error no kill explains (port {port}): {what}")
    sse_allowed = 0
    for t, port, opened, what in rec.sse["ended_by_kill"]:
        if explained_by_kill(rec, t, port, opened):
            sse_allowed += 1
        else:
            bad.append(f"SSE stream ended and no kill explains it (port {port}): {what}")
    held = sum(len(k["ports"]) for k in rec.kills)
    if allowed + sse_allowed > held:  # cannot happen: each connection fails once
        bad.append(f"{allowed + sse_allowed} connection errors for {held} killed connections")
    return allowed, sse_allowed, held, bad


def check_rss(rec, duration, warmup):
    """(ok, lines): medians of the first 15% after warm-up and the last 15%."""
    span = 0.15 * duration
    lines, ok = [], True
    for col, name in ((1, "total"), (2, "long-lived (master, fetcher, oldest worker)")):
        base = [r[col] for r in rec.rss if warmup <= r[0] < warmup + span]
        last = [r[col] for r in rec.rss if r[0] >= duration - span]
        if len(base) < 3 or len(last) < 3:
            lines.append(f"RSS {name}: too few samples ({len(base)}, {len(last)})")
            ok = False
            continue
        b, l = median(base), median(last)
        growth = (l - b) / b if b else 0
        verdict = "ok" if growth <= RSS_GROWTH_MAX else "FAIL"
        ok &= growth <= RSS_GROWTH_MAX
        lines.append(f"RSS {name}: median {b / 1024:.1f} MB after warm-up, "
                     f"{l / 1024:.1f} MB at the end: {growth * 100:+.1f}% "
                     f"(limit +{RSS_GROWTH_MAX * 100:.0f}%) {verdict}")
    return ok, lines


def calls_at(samples, i, session=None, key=None):
    stats = samples[i][1]
    if session is not None:
        return stats["bySession"].get(session, 0)
    if key is not None:
        return stats["calls"].get(key, 0)
    return stats["total"]


def webhooks_for(rec, session, ta, tb):
    """Webhooks that may have asked for a fetch of SESSION between TA and
    TB: ours that were applied, and the simulator's (delivered up to 10 s
    after they were emitted, with retries)."""
    ours = sum(1 for s, e, name in rec.webhooks["applied"] if name == session and e >= ta and s <= tb)
    sims = sum(1 for t, name in rec.sim_webhooks.values() if name == session and ta - 10 <= t <= tb)
    return ours + sims


def windows(rec, t_start, t_end):
    """Clean windows (no fault for SETTLE_S) and fault windows, as
    (kind, start, end), covering [t_start, t_end]."""
    out, t = [], t_start
    for t_on, t_off, fault in sorted(rec.faults, key=lambda f: f[0]):
        if t_on > t:
            out.append(("clean", t, t_on))
        out.append(("fault", max(t, t_on), t_off + SETTLE_S))
        t = t_off + SETTLE_S
    if t < t_end:
        out.append(("clean", t, t_end))
    return out


def check_upstream(rec, samples):
    """Per window and session: calls within the bound, in SAMPLES (the
    sampler's, counting on across resets). Returns (lines, failures)."""
    lines, bad = [], []
    worst = {}
    for kind, a, b in windows(rec, samples[0][0] + SETTLE_S, samples[-1][0]):
        idx = [i for i, s in enumerate(samples) if a <= s[0] <= b]
        if len(idx) < 2:
            continue
        i, j = idx[0], idx[-1]
        ta, tb = samples[i][0], samples[j][0]
        w = tb - ta
        for session in ALL_SESSIONS:
            hooks = webhooks_for(rec, session, ta, tb)
            calls = calls_at(samples, j, session) - calls_at(samples, i, session)
            if kind == "clean":
                bound = int(w / (0.8 * PERIOD_S)) + 2 + hooks
                if session == QR_SESSION:  # and its QR: value and image per period
                    bound += 2 * (int(w / PERIOD_S) + 2 + hooks)
            else:
                per = 3 if session == QR_SESSION else 1
                bound = per * (int(w / FIRST_BACKOFF_S) + 2 + hooks) * (1 + MAX_RETRIES)
            worst_key = (kind, session)
            ratio = calls / bound if bound else 0
            if ratio >= worst.get(worst_key, (0,))[0]:
                worst[worst_key] = (ratio, calls, bound, w)
            if calls > bound:
                bad.append(f"{session}: {calls} WAHA calls in a {kind} window of {w:.1f} s "
                           f"(bound {bound}, {hooks} webhooks)")
        if kind == "clean":
            health = calls_at(samples, j, key="GET /health") - calls_at(samples, i, key="GET /health")
            hbound = int(w / (0.8 * HEALTH_PERIOD_S)) + 2
            if health > hbound:
                bad.append(f"GET /health: {health} calls in a clean window of {w:.1f} s "
                           f"(bound {hbound})")
    for (kind, session), (ratio, calls, bound, w) in sorted(worst.items()):
        lines.append(f"  {kind:5} {session:8} busiest window: {calls} calls of {bound} allowed "
                     f"in {w:.0f} s")
    return lines, bad


def check_log(gw, rec):
    bad = []
    text = gw.log_text()
    kills = len(re.findall(r"worker \d+ was killed by signal 9\b", text))
    victims = {k["pid"] for k in rec.kills}
    for m in re.finditer(r"\b(worker|fetcher) (\d+) (was killed by signal \d+|exited with code [1-9]\d*)",
                         text):
        if not (m.group(1) == "worker" and int(m.group(2)) in victims
                and m.group(3) == "was killed by signal 9"):
            bad.append(f"unexpected child death: {m.group(0)}")
    if kills != len(rec.kills):
        bad.append(f"{kills} kills in the log, {len(rec.kills)} made")
    errors = [line for line in text.splitlines() if "[error]" in line]
    return bad, errors


def converge(sim, gw, rec, timeout=30.0):
    """With WAHA healthy, the gateway shows what the simulator says."""
    sim.fault("none")
    last = {}

    def shown():
        for session in SESSIONS:
            try:
                status, _, body = http_request(gw.port, "GET", f"/api/waha/status?session={session}",
                                               timeout=10)
                doc = json.loads(body) if status == 200 else {}
            except (OSError, http.client.HTTPException, ValueError):
                doc = {}
            last[session] = doc.get("rawStatus")
        return all(last[session] == rec.current[session] for session in SESSIONS)
    if wait_until(shown, timeout, 0.5):
        return None
    return f"the gateway does not show the simulator's statuses: {last} vs {rec.current}"


# --------------------------------------------------------------------------- main

def duration_from_env():
    if os.environ.get("SOAK_SECONDS"):
        return float(os.environ["SOAK_SECONDS"])
    return 60.0 * float(os.environ.get("SOAK_MINUTES") or 10)


def fault_name(fault):
    return fault["mode"] + "".join(f"/{fault[k]}{unit}" for k, unit in
                                   (("status", ""), ("delayMs", "ms")) if k in fault)


def print_summary(rec, gateway_bin, samples, latencies, duration, warmup, started_at, t0, extra):
    print("\n==================== soak summary ====================")
    print(f"duration {duration:.0f} s (warm-up {warmup:.0f} s), gateway {gateway_bin}, "
          f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started_at))}")
    print(f"requests: {rec.requests}")
    for key in sorted(rec.by_status):
        print(f"  {key:12} {rec.by_status[key]}")
    lat = sorted(latencies)
    if lat:
        print(f"status latency: p50 {lat[len(lat) // 2][0] * 1000:.1f} ms, "
              f"p99 {lat[int(len(lat) * 0.99)][0] * 1000:.1f} ms; slowest: "
              + ", ".join(f"{d * 1000:.0f} ms ({st}) at {t - t0:.0f} s" for d, t, st in lat[-3:]))
    s = rec.sse
    print(f"SSE: {s['streams']} streams ({s['resumed']} resumed), {s['events']} events, "
          f"{s['ended_by_client']} closed by the client, {len(s['ended_by_kill'])} cut by kills")
    print(f"webhooks sent by the soak: {rec.webhooks['sent']} {rec.webhooks['by_result']}")
    if samples:
        final = samples[-1][1]
        print(f"webhooks from the simulator: {final['webhooks']}")
        print(f"WAHA calls: {final['total']} {final['calls']}")
        print(f"WAHA calls by session: {final['bySession']}")
    print(f"status changes in the simulator: {len(rec.status_changes)}")
    print("faults: " + ", ".join(fault_name(f) + f" {b - a:.0f}s" for a, b, f in rec.faults))
    print(f"kills: {len(rec.kills)}, replaced in "
          + ", ".join(f"{k['replaced_in']:.2f}s" if k["replaced_in"] else "never"
                      for k in rec.kills))
    for line in extra:
        print(line)
    print("RSS series (s, total MB, long-lived MB, processes):")
    row = []
    for t, total, lasting, n in rec.rss:
        row.append(f"{t:4.0f}:{total / 1024:5.1f}/{lasting / 1024:5.1f}/{n}")
        if len(row) == 6:
            print("  " + "  ".join(row))
            row = []
    if row:
        print("  " + "  ".join(row))


def start(stack, gateway_bin):
    """The simulator, and the gateway once its workers and fetcher are up."""
    sim = stack.simulator(
        "--sessions", ",".join([f"{s}:WORKING" for s in SESSIONS] + [f"{QR_SESSION}:SCAN_QR_CODE"]),
        "--qr-first-ms", "15000", "--qr-next-ms", "15000", "--qr-count", "1000000",
        # the timings this soak was calibrated with: 4 attempts per webhook (the
        # simulator's default is WAHA's 16); conftest's Simulator already
        # passes --engine-delay-ms 0
        "--webhook-retries", "3")
    gw = stack.gateway(sim, GATEWAY_SECTIONS, start=False, defaults=False, binary=gateway_bin,
                       shm_name=f"/wgsoak-{os.getpid()}")
    gw.expect_child_deaths = True   # check_log() judges them
    gw.start(wait=False)
    gw.wait_ready(timeout=30)
    if not gw.wait_children("worker", WORKERS, 30) or not gw.wait_children("fetcher", 1, 30):
        raise RuntimeError(f"gateway without its {WORKERS} workers and fetcher:\n{gw.log_text()}")
    sim.control("POST", "/_sim/config", {"webhookUrl": f"{gw.url}/api/waha/webhook",
                                         "webhookHmacKey": HMAC_KEY})
    return sim, gw


def main():
    gateway_bin = str(Path(sys.argv[1]).resolve()) if len(sys.argv) > 1 \
        else str(REPO / "build" / "wahagate")
    if not os.access(gateway_bin, os.X_OK):
        sys.exit(f"soak: {gateway_bin} is not executable (make)")
    duration = duration_from_env()
    warmup = 0.2 * duration if duration < 300 else max(60.0, 0.2 * duration)
    n_clients = int(os.environ.get("SOAK_CLIENTS") or 48)
    workdir = Path(tempfile.mkdtemp(prefix="wahagate-soak-"))
    rec = Record()
    stack = ProcessStack(workdir)
    gw = sampler = sim_webhooks = None
    clients, threads = [], []   # every thread is in THREADS as soon as it runs
    started_at = time.time()
    exit_code = rss_now = None
    t0 = now()

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sim, gw = start(stack, gateway_bin)
        t0 = now()
        end = t0 + duration
        fetcher = gw.child_pids("fetcher")
        long_lived = [gw.pid, *fetcher,
                      min(gw.child_pids("worker"), key=lambda p: (proc_start_time(p), p))]
        print(f"soak: {duration:.0f} s against {gateway_bin} (pid {gw.pid}, "
              f"port {gw.port}), simulator on {sim.port}, logs in {workdir}", flush=True)

        def run(thread):
            threads.append(thread)
            return thread
        intervals = [(0.02, 0.1, 0.3, 0.05, 0.5), (0.2, 0.05, 0.7, 0.1), (1.0, 0.3, 0.02)]
        for i in range(n_clients):
            clients.append(run(Poller(rec, gw.port, duration, ALL_SESSIONS[i % len(ALL_SESSIONS)],
                                      i % 2 == 1, intervals[i % len(intervals)])))
        for i in range(2):
            clients.append(run(MiscClient(rec, gw.port, duration, (0.1, 0.25, 0.05))))
        clients.append(run(WebhookSender(rec, gw.port, duration, (0.5, 1.0, 1.5))))
        for i in range(8):
            run(Subscriber(rec, gw.port, duration, i))
        sampler = run(StatsSampler(sim, interval=0.5, max_samples=100000,
                                   max_seconds=duration + 60))
        sim_webhooks = run(SimWebhooks(rec, sim, duration + 60))
        run(StatusChanger(rec, sim, duration))
        run(FaultSwitcher(rec, sim, sampler, end, duration < 300))
        run(WorkerKiller(rec, gw, end, max(5.0, min(30.0, duration / 8))))
        run(RssSampler(rec, gw, t0, 5.0 if duration >= 300 else max(1.0, duration / 40),
                       long_lived, duration + 60))

        next_report = t0 + 60
        while now() < end:
            time.sleep(min(1.0, max(0.0, end - now())))
            if now() >= next_report:
                next_report += 60
                with rec.lock:
                    rss = rec.rss[-1][1] / 1024 if rec.rss else 0
                    print(f"soak: {now() - t0:4.0f} s, {rec.requests} requests, "
                          f"{len(rec.failures)} failures, {len(rec.kills)} kills, "
                          f"RSS {rss:.1f} MB", flush=True)
            if gw.proc.poll() is not None:
                rec.fail(f"the master exited with {gw.proc.returncode}")
                break
        alive = stop_all(threads, CLIENT_TIMEOUT_S + 10)
        if alive:
            rec.fail(f"{len(alive)} threads did not stop")

        sim_webhooks.sample()
        rss_now = ", ".join(f"{role_of(p)} {p} {proc_rss_kb(p) / 1024:.1f} MB" for p in gw.pids())
        problem = converge(sim, gw, rec)
        if problem:
            rec.fail(problem)
        if gw.child_pids("fetcher") != fetcher:
            rec.fail(f"the fetcher changed: {fetcher} -> {gw.child_pids('fetcher')}")
        final = sim.stats()
        rec.inflight_checked.append(final["maxInFlight"])
        failed = sampler.plus(sampler.base, final)["webhooks"]["failed"]
        if failed:
            rec.fail(f"the simulator failed to deliver {failed} webhooks (4 attempts each)")
    except KeyboardInterrupt:
        rec.fail("interrupted")
    except Exception as exc:  # report it like any failure, and stop everything
        import traceback
        traceback.print_exc()
        rec.fail(f"soak error: {exc!r}")
    finally:
        stop_all(threads, 5)
        exit_code = gw.stop(timeout=15) if gw is not None else None
        try:
            stack.close()  # by PID: the master if it did not stop, its children, the simulator
        except AssertionError as exc:
            rec.fail(f"stopping the processes: {exc}")
        if gw is not None and gw.shm_exists():
            os.unlink("/dev/shm/" + gw.shm_name.lstrip("/"))
        stop_all(threads, 5)  # unblocked by the end of the processes

    for t in threads:
        if t.exception is not None:
            rec.fail(f"thread {type(t).__name__} failed: {t.exception!r}")
    for error in sampler.errors if sampler else []:
        rec.fail(f"simulator stats: {error}")
    extra = [f"RSS by process at the end: {rss_now}"] if rss_now else []
    lost = [x for c in clients for x in c.lost()]
    allowed, sse_allowed, held, bad = check_connections(rec, lost)
    for b in bad:
        rec.fail(b)
    extra.append(f"connection errors from kills: {allowed} requests and {sse_allowed} SSE "
                 f"streams (the victims held {held} connections)")
    if rec.rss:
        ok, lines = check_rss(rec, duration, warmup)
        extra += lines
        if not ok:
            rec.fail("RSS grew: " + "; ".join(lines))
    samples = sampler.snapshot() if sampler else []
    if samples:
        lines, bad = check_upstream(rec, samples)
        extra.append(f"WAHA calls within the schedule ({len(bad)} windows over):")
        extra += lines
        for b in bad:
            rec.fail(b)
    over = [m for m in rec.inflight_checked if m > MAX_CONC]
    extra.append(f"WAHA maxInFlight {max(rec.inflight_checked or [0])} (limit {MAX_CONC}); "
                 f"not checked during timeout faults: {rec.unchecked_inflight}")
    if over:
        rec.fail(f"WAHA maxInFlight {over} above limits.max_concurrent_requests {MAX_CONC}")
    if gw is not None:
        log_bad, errors = check_log(gw, rec)
        for b in log_bad:
            rec.fail(b)
        extra.append(f"gateway log: {len(errors)} [error] lines" +
                     "".join(f"\n    {line}" for line in errors[:10]))
    if exit_code != 0:
        rec.fail(f"the master's exit code on SIGTERM: {exit_code}")

    latencies = [x for c in clients if isinstance(c, Poller) for x in c.latencies()]
    print_summary(rec, gateway_bin, samples, latencies, duration, warmup, started_at, t0, extra)
    if rec.failures:
        print(f"\nFAILED: {len(rec.failures)} failures")
        for t, what in rec.failures[:40]:
            print(f"  - {what}")
        print(f"logs kept in {workdir}")
        return 1
    print("\nOK: no failed request, no growth, WAHA within its limits")
    if os.environ.get("SOAK_KEEP"):
        print(f"logs kept in {workdir}")
    else:
        for p in workdir.iterdir():
            p.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
