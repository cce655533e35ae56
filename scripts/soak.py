#!/usr/bin/python3
"""Soak test of wahagate (make soak): a long run under mixed load that fails
on memory growth, on a request that fails when it should not, or on more
calls to WAHA than the configuration allows.

Usage: scripts/soak.py [GATEWAY_BIN]      (default build/wahagate)
  SOAK_MINUTES=10   length of the run (default 10)
  SOAK_SECONDS=60   the same in seconds, for short checks (wins over minutes)
  SOAK_CLIENTS=48   keep-alive status pollers
  SOAK_KEEP=1       keep the work directory (gateway and simulator logs)

Standard library only; run with Debian's /usr/bin/python3.

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
    SSE: 200 text/event-stream, JSON data, non-decreasing ids, the first
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
failure or Ctrl-C.
"""

import hashlib
import hmac
import json
import os
import random
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIMULATOR = REPO / "scripts" / "waha_sim.py"
PYTHON = "/usr/bin/python3"

API_KEY = "simkey"
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
RSS_GROWTH_MAX = 0.05
SESSION_CALL = "GET /api/sessions/{name}"
STATUS_CYCLE = ["WORKING", "STOPPED", "STARTING", "WORKING", "FAILED", "WORKING"]
FAULTS = [{"mode": "error", "status": 500},
          {"mode": "slow", "delayMs": 3000},   # longer than request_timeout
          {"mode": "down"},
          {"mode": "error", "status": 503, "retryAfter": 1},
          {"mode": "slow", "delayMs": 1200}]   # answers, slowly


# --------------------------------------------------------------------------- small helpers

def now():
    return time.monotonic()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    """os.environ without WAHAGATE_* and WAHA_* (they configure the gateway)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("WAHAGATE_") and not k.startswith("WAHA_")}


def proc_stat(pid):
    """(state, ppid, start time in ticks) of PID, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def start_key(pid):
    """Order of start: (start time, pid), so that two never tie."""
    return (proc_stat(pid) or (0, 0, 0))[2], pid


def proc_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(ppid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[1] == ppid and st[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


def client_ports_of(pid, port):
    """Client ports of the connections to PORT that PID holds open."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    except OSError:
        return set()
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10:
                continue
            lport = int(fields[1].rsplit(":", 1)[1], 16)
            if lport == port and int(fields[3], 16) != 0x0A and int(fields[9]) in inodes:
                out.add(int(fields[2].rsplit(":", 1)[1], 16))
    return out


def median(values):
    return statistics.median(values) if values else 0


class ConnError(Exception):
    """A request got no complete answer (reset, EOF, timeout)."""


# --------------------------------------------------------------------------- HTTP on one socket

class Conn:
    """One HTTP/1.1 keep-alive connection: request() -> (status, headers, body)."""

    def __init__(self, port, timeout=CLIENT_TIMEOUT_S):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.opened = now()
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def closed_by_peer(self):
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ConnError("timeout")
        except OSError as exc:
            raise ConnError(repr(exc))
        if not chunk:
            raise ConnError(f"closed after {len(self.buf)} bytes")
        self.buf += chunk

    def request(self, method, path, headers=None, body=None):
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode() + (body or b"")
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConnError(repr(exc))
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0][9:12])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if method == "HEAD" or status in (204, 304) or status < 200:
            length = 0
        elif "content-length" in hdrs:
            length = int(hdrs["content-length"])
        else:
            raise ConnError(f"answer {status} without Content-Length")
        while len(self.buf) < length:
            self._fill()
        out, self.buf = self.buf[:length], self.buf[length:]
        return status, hdrs, out


# --------------------------------------------------------------------------- the record of what happened

class Record:
    """Everything the threads observe, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.by_status = {}          # "kind status" -> n
        self.failures = []           # (time, what)
        self.conn_errors = []        # (time, local port, opened, what)
        self.first_ok = {}           # data path -> time its first 200 finished
        self.latencies = []
        self.sse = {"streams": 0, "events": 0, "resumed": 0, "ended_by_client": 0,
                    "ended_by_kill": []}  # (time, local port, opened)
        self.webhooks = {"sent": 0, "by_result": {}, "applied": []}  # (start, end, session)
        self.kills = []              # {"pid", "t", "ports", "replaced_in"}
        self.status_changes = []     # (time, session, status)
        self.faults = []             # (t_on, t_off, fault)
        self.rss = []                # (time, total kB, long-lived kB)
        self.sim_samples = []        # (time, cumulative stats)
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


# --------------------------------------------------------------------------- processes

class Processes:
    """The simulator and the gateway; stop() ends both by PID."""

    def __init__(self, gateway_bin, workdir):
        self.gateway_bin, self.workdir = gateway_bin, workdir
        self.sim = self.gw = None
        self.seen_children = set()
        self.shm_name = f"/wgsoak-{os.getpid()}"
        self.port = free_port()

    def start_simulator(self):
        self.sim_log = open(self.workdir / "sim.log", "wb")
        sessions = ",".join([f"{s}:WORKING" for s in SESSIONS] + [f"{QR_SESSION}:SCAN_QR_CODE"])
        self.sim = subprocess.Popen(
            [PYTHON, str(SIMULATOR), "--port", "0", "--api-key", API_KEY,
             "--sessions", sessions, "--qr-first-ms", "15000", "--qr-next-ms", "15000",
             "--qr-count", "1000000",
             # the timings this soak was calibrated with: no engine-info delay, 4 attempts
             # per webhook (the simulator now defaults to WAHA's 1 s and 16)
             "--engine-delay-ms", "0", "--webhook-retries", "3"],
            stdout=subprocess.PIPE, stderr=self.sim_log, stdin=subprocess.DEVNULL,
            env=clean_env(), cwd=str(REPO))
        line = b""
        deadline = now() + 15
        while not line.endswith(b"\n") and now() < deadline:
            r, _, _ = select.select([self.sim.stdout], [], [], 0.5)
            if r:
                chunk = os.read(self.sim.stdout.fileno(), 1)
                if not chunk:
                    break
                line += chunk
        m = re.match(rb"^listening on [0-9.]+:(\d+)", line)
        if not m:
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.sim_port = int(m.group(1))

    def write_ini(self):
        sections = {
            "server": {"listen": f"127.0.0.1:{self.port}", "shm_name": self.shm_name,
                       "workers": WORKERS, "min_workers": WORKERS, "max_workers": WORKERS},
            "ratelimit": {"enabled": "false"},
            "upstream": {"url": f"http://127.0.0.1:{self.sim_port}", "api_key": API_KEY,
                         "sessions": ",".join(ALL_SESSIONS)},
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
            "log": {"level": "info"},
        }
        text = ""
        for section, keys in sections.items():
            text += f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) + "\n"
        path = self.workdir / "waha.ini"
        path.write_text(text)
        return path

    def start_gateway(self):
        ini = self.write_ini()
        self.gw_log_path = self.workdir / "gateway.log"
        self.gw_log = open(self.gw_log_path, "ab")
        self.gw = subprocess.Popen([self.gateway_bin, "-c", str(ini)], stdout=self.gw_log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=clean_env(), cwd=str(self.workdir))
        deadline = now() + 30
        while now() < deadline:
            if self.gw.poll() is not None:
                raise RuntimeError(f"gateway exited {self.gw.returncode}:\n{self.log_text()}")
            try:
                c = Conn(self.port, timeout=2)
                status, _, _ = c.request("GET", "/api/waha/config")
                c.close()
                if status == 200 and len(self.workers()) == WORKERS and self.fetchers():
                    return
            except (OSError, ConnError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready in 30 s:\n{self.log_text()}")

    def log_text(self):
        try:
            return self.gw_log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def role_pids(self, role):
        """Live children of the master named "wahagate: ROLE" (the comm, 15
        characters, is what prctl sets; it holds the role)."""
        if self.gw is None or self.gw.poll() is not None:
            return []
        out = [pid for pid in children(self.gw.pid)
               if proc_comm(pid).startswith(f"wahagate: {role}"[:15])]
        self.seen_children.update(out)
        return sorted(out)

    def workers(self):
        return self.role_pids("worker")

    def fetchers(self):
        return self.role_pids("fetcher")

    def all_pids(self):
        if self.gw is None or self.gw.poll() is not None:
            return []
        return [self.gw.pid] + children(self.gw.pid)

    def sim_request(self, method, path, body=None):
        c = Conn(self.sim_port, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            status, _, out = c.request(method, path, hdrs, data)
        finally:
            c.close()
        if status != 200:
            raise RuntimeError(f"simulator {method} {path} -> {status} {out[:200]!r}")
        return json.loads(out)

    def stop(self):
        """SIGTERM the master (its exit code, None if it had to be killed),
        then SIGKILL any child left, then the simulator. By PID only."""
        code = None
        if self.gw is not None:
            self.role_pids("worker")
            self.role_pids("fetcher")
            if self.gw.poll() is None:
                os.kill(self.gw.pid, signal.SIGTERM)
                try:
                    code = self.gw.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(self.gw.pid, signal.SIGKILL)
                    self.gw.wait(timeout=10)
            else:
                code = self.gw.returncode
            for pid in self.seen_children:
                if proc_alive(pid) and proc_comm(pid).startswith("wahagate"):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.gw_log.close()
            shm = Path("/dev/shm") / self.shm_name.lstrip("/")
            if shm.exists():
                shm.unlink()
        if self.sim is not None and self.sim.poll() is None:
            self.sim.terminate()
            try:
                self.sim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait(timeout=10)
            self.sim.stdout.close()
            self.sim_log.close()
        return code


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


class Client:
    """A keep-alive client thread: run(stop) calls one_request() until STOP,
    the deadline or MAX_REQUESTS; a request without an answer is recorded
    with its connection for the kill check."""

    def __init__(self, rec, port, deadline, intervals, max_requests=1_000_000):
        self.rec, self.port, self.deadline = rec, port, deadline
        self.intervals, self.max_requests = intervals, max_requests
        self.conn = None
        self.n = 0

    def exchange(self, method, path, headers=None, body=None):
        """One request on the connection (opened if needed): the answer, or
        None after a connection error (recorded)."""
        if self.conn is not None and self.conn.closed_by_peer():
            # Nothing closes an active keep-alive connection but a kill:
            # the request we would send now has failed the same way.
            self._lost(self.conn, "closed while idle")
            return None
        try:
            if self.conn is None:
                self.conn = Conn(self.port)
            answer = self.conn.request(method, path, headers, body)
        except (ConnError, OSError) as exc:
            self._lost(self.conn, repr(exc))
            return None
        except ValueError as exc:  # not HTTP: a failure, not a lost connection
            self.rec.fail(f"{method} {path}: malformed answer: {exc!r}")
            self.conn.close()
            self.conn = None
            return None
        if answer[1].get("connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return answer

    def _lost(self, conn, what):
        with self.rec.lock:
            self.rec.conn_errors.append((now(), conn.local_port if conn else None,
                                         conn.opened if conn else now(), what))
        if conn is not None:
            conn.close()
        self.conn = None

    def run(self, stop):
        while not stop.is_set() and now() < self.deadline and self.n < self.max_requests:
            self.one_request()
            stop.wait(self.intervals[self.n % len(self.intervals)])
            self.n += 1
        if self.conn is not None:
            self.conn.close()


class Poller(Client):
    """Polls /api/waha/status?session=X, with If-None-Match when INM."""

    def __init__(self, rec, port, deadline, session, inm, intervals):
        super().__init__(rec, port, deadline, intervals)
        self.path = f"/api/waha/status?session={session}"
        self.inm, self.etag = inm, None

    def one_request(self):
        headers = {"If-None-Match": self.etag} if self.inm and self.etag else {}
        started = now()
        answer = self.exchange("GET", self.path, headers)
        if answer is None:
            return
        status, hdrs, body = answer
        with self.rec.lock:
            self.rec.latencies.append((now() - started, started, status))
        check_answer(self.rec, "status", self.path, status, hdrs, body, bool(headers), started)
        if status == 200:
            self.etag = hdrs.get("etag")


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
    def one_request(self):
        kind, method, path, headers = MISC_PATHS[self.n % len(MISC_PATHS)]
        wire_path = path.split("#")[0]
        started = now()
        answer = self.exchange(method, wire_path, headers)
        if answer is None:
            return
        status, hdrs, body = answer
        check_answer(self.rec, kind, path, status, hdrs, body, False, started)


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
        super().__init__(*a, **kw)
        self.last_body = None

    def one_request(self):
        n = self.n
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
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        started = now()
        answer = self.exchange("POST", "/api/waha/webhook", headers, body)
        if self.conn is not None:
            self.conn.close()
            self.conn = None
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


class Subscriber:
    """An SSE client: connects, reads events for 2-15 s, closes, again."""

    def __init__(self, rec, port, deadline, index):
        self.rec, self.port, self.deadline = rec, port, deadline
        self.random = random.Random(index)
        self.index = index
        self.last_id = None

    def run(self, stop):
        n = 0
        while not stop.is_set() and now() < self.deadline and n < 100000:
            n += 1
            self.stream(stop, self.random.uniform(2.0, 15.0))
            stop.wait(self.random.uniform(0.1, 1.0))

    def stream(self, stop, hold_s):
        scope = ALL_SESSIONS[self.index % len(ALL_SESSIONS)] if self.index % 2 else None
        path = "/api/waha/events" + (f"?session={scope}" if scope else "")
        resume = self.last_id is not None and self.random.random() < 0.3
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if resume:
            head += f"Last-Event-ID: {self.last_id}\r\n"
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=CLIENT_TIMEOUT_S)
        except OSError as exc:
            self.rec.fail(f"SSE connect: {exc!r}")
            return
        local_port, opened = sock.getsockname()[1], now()
        with self.rec.lock:
            self.rec.sse["streams"] += 1
            self.rec.sse["resumed"] += resume
        buf, events, last_id, got_head = b"", 0, None, False
        end = opened + hold_s
        try:
            sock.sendall((head + "\r\n").encode())
            while now() < end and not stop.is_set():
                sock.settimeout(max(0.05, min(1.0, end - now())))
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    if not got_head and now() - opened > 15 or \
                            got_head and events == 0 and not resume and now() - opened > 15:
                        self.rec.fail(f"SSE {path}: nothing within 15 s")
                        return
                    continue
                if not chunk:
                    raise ConnError("closed by the server")
                buf += chunk
                if not got_head:
                    if b"\r\n\r\n" not in buf:
                        continue
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    lines = raw.decode("latin-1").split("\r\n")
                    hdrs = {k.strip().lower(): v.strip() for k, _, v in
                            (line.partition(":") for line in lines[1:])}
                    got_head = True
                    self.rec.count("sse", int(lines[0][9:12]))
                    if lines[0][9:12] != "200" or \
                            not hdrs.get("content-type", "").startswith("text/event-stream") or \
                            "content-length" in hdrs or "transfer-encoding" in hdrs:
                        self.rec.fail(f"SSE {path}: {lines[0]} {hdrs}")
                        return
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    fields = {}
                    for line in block.decode().split("\n"):
                        if line.startswith(":"):
                            continue
                        k, _, v = line.partition(":")
                        fields[k] = v[1:] if v.startswith(" ") else v
                    if "data" not in fields:
                        continue
                    events += 1
                    doc = json.loads(fields["data"])
                    if not isinstance(doc, dict) or doc.get("session") not in ALL_SESSIONS or \
                            (scope and doc["session"] != scope):
                        self.rec.fail(f"SSE {path}: unexpected event {fields}")
                    if "id" in fields:
                        if last_id is not None and int(fields["id"]) < last_id:
                            self.rec.fail(f"SSE {path}: id {fields['id']} after {last_id}")
                        last_id = int(fields["id"])
            with self.rec.lock:
                self.rec.sse["ended_by_client"] += 1
        except (ConnError, OSError) as exc:
            with self.rec.lock:
                self.rec.sse["ended_by_kill"].append((now(), local_port, opened, repr(exc)))
        except ValueError as exc:
            self.rec.fail(f"SSE {path}: bad event: {exc!r}")
        finally:
            sock.close()
            with self.rec.lock:
                self.rec.sse["events"] += events
            if last_id is not None:
                self.last_id = last_id


# --------------------------------------------------------------------------- chaos: statuses, faults, kills

class Chaos:
    def __init__(self, rec, procs, t0, duration):
        self.rec, self.procs, self.t0, self.duration = rec, procs, t0, duration
        self.end = t0 + duration
        short = duration < 300
        self.clean_s = (10, 16) if short else (35, 50)
        self.fault_s = (3, 6) if short else (6, 12)
        self.kill_every = max(5.0, min(30.0, duration / 8))
        self.sim_lock = threading.Lock()   # the sampler vs the reset of the counters
        self.base = None                   # counts from before the last reset

    # -- simulator statuses
    def statuses(self, stop):
        rnd, n = random.Random(1), 0
        while not stop.is_set() and now() < self.end and n < 100000:
            stop.wait(rnd.uniform(2.0, 5.0))
            session = rnd.choice(SESSIONS)
            n += 1
            status = STATUS_CYCLE[n % len(STATUS_CYCLE)]
            try:
                self.procs.sim_request("POST", f"/_sim/sessions/{session}", {"status": status})
            except (OSError, ConnError, RuntimeError) as exc:
                self.rec.fail(f"simulator status change: {exc!r}")
                continue
            with self.rec.lock:
                self.rec.current[session] = status
                self.rec.status_changes.append((now(), session, status))

    # -- faults
    def faults(self, stop):
        rnd, n = random.Random(2), 0
        while not stop.is_set() and n < 10000 and now() < self.end:
            n += 1
            if stop.wait(rnd.uniform(*self.clean_s)):
                return
            hold = rnd.uniform(*self.fault_s)
            if now() + hold + SETTLE_S > self.end:
                return
            fault = FAULTS[(n - 1) % len(FAULTS)]
            timeout = fault["mode"] == "slow" and fault["delayMs"] > REQUEST_TIMEOUT_S * 1000
            if timeout:
                self.reset_sim_counts(checked=True)
            t_on = now()
            self.procs.sim_request("POST", "/_sim/fault", fault)
            stop.wait(hold)
            self.procs.sim_request("POST", "/_sim/fault", {"mode": "none"})
            with self.rec.lock:
                self.rec.faults.append((t_on, now(), fault))
            if timeout:
                # The calls the gateway gave up on still sleep in the simulator.
                deadline = now() + 30
                while now() < deadline and self.procs.sim_request("GET", "/_sim/stats")["inFlight"]:
                    time.sleep(0.1)
                self.reset_sim_counts(checked=False)

    def reset_sim_counts(self, checked):
        """Reset the simulator's counters (and its maxInFlight), carrying the
        counts over; CHECKED: the high-water mark of the segment counts."""
        with self.sim_lock:
            stats = self.procs.sim_request("GET", "/_sim/stats")
            self.procs.sim_request("POST", "/_sim/reset")
            with self.rec.lock:
                (self.rec.inflight_checked if checked else self.rec.unchecked_inflight) \
                    .append(stats["maxInFlight"])
            self.base = self.add(self.base, stats)

    @staticmethod
    def add(a, b):
        """Counts A (None: none) plus the simulator's stats B."""
        a = a or {"total": 0, "calls": {}, "bySession": {}, "webhooks": {}}
        out = {"total": a["total"] + b["total"]}
        for key in ("calls", "bySession", "webhooks"):
            out[key] = dict(a[key])
            for k, v in b[key].items():
                out[key][k] = out[key].get(k, 0) + v if k != "queued" else v
        return out

    def sample_sim(self, stop):
        n = 0
        while not stop.is_set() and n < 100000 and now() < self.end + 60:
            n += 1
            try:
                with self.sim_lock:
                    stats = self.procs.sim_request("GET", "/_sim/stats")
                    cumulative = self.add(self.base, stats)
                with self.rec.lock:
                    self.rec.sim_samples.append((now(), cumulative))
                if n % 6 == 0:
                    self.sample_sim_webhooks()
            except (OSError, ConnError, RuntimeError) as exc:
                self.rec.fail(f"simulator stats: {exc!r}")
            stop.wait(0.5)

    def sample_sim_webhooks(self):
        offset = time.time() - now()
        for env in self.procs.sim_request("GET", "/_sim/webhooks"):
            with self.rec.lock:
                self.rec.sim_webhooks.setdefault(
                    env["id"], (env["timestamp"] / 1000.0 - offset, env["session"]))

    # -- worker kills
    def kills(self, stop):
        n = 0
        while not stop.is_set() and n < 10000 and now() < self.end:
            n += 1
            if stop.wait(self.kill_every) or now() > self.end - 10:
                return
            workers = self.procs.workers()
            if len(workers) != WORKERS:
                self.rec.fail(f"{len(workers)} workers before kill {n}: {workers}")
                continue
            victim = max(workers, key=start_key)
            # Stopped, it accepts nothing more: the connections it holds
            # are exactly those the kill will cut.
            try:
                os.kill(victim, signal.SIGSTOP)
                try:
                    ports = client_ports_of(victim, self.procs.port)
                finally:
                    t_kill = now()
                    os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                self.rec.fail(f"worker {victim} vanished before the kill")
                continue
            deadline = now() + 15
            replaced = None
            while now() < deadline and not stop.is_set():
                current = self.procs.workers()
                if len(current) == WORKERS and victim not in current:
                    replaced = now() - t_kill
                    break
                time.sleep(0.05)
            with self.rec.lock:
                self.rec.kills.append({"pid": victim, "t": t_kill, "ports": ports,
                                       "replaced_in": replaced})
            if replaced is None and not stop.is_set():
                self.rec.fail(f"worker {victim} not replaced within 15 s")

    # -- memory
    def sample_rss(self, stop, every, long_lived):
        n = 0
        while not stop.is_set() and n < 100000 and now() < self.end + 60:
            n += 1
            pids = self.procs.all_pids()
            total = sum(proc_rss_kb(p) for p in pids)
            lasting = sum(proc_rss_kb(p) for p in long_lived)
            with self.rec.lock:
                self.rec.rss.append((now() - self.t0, total, lasting, len(pids)))
            stop.wait(every)


# --------------------------------------------------------------------------- checks

def explained_by_kill(rec, t_err, local_port, opened):
    """Did a killed worker hold this connection when it was stopped?"""
    return any(local_port in k["ports"] and opened <= k["t"] <= t_err for k in rec.kills)


def check_connections(rec):
    allowed, bad = 0, []
    for t, port, opened, what in rec.conn_errors:
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


def check_upstream(rec, t_first):
    """Per window and session: calls within the bound. Returns (lines, failures)."""
    samples = rec.sim_samples
    lines, bad = [], []
    worst = {}
    for kind, a, b in windows(rec, t_first + SETTLE_S, samples[-1][0] if samples else 0):
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


def check_log(procs, rec):
    bad = []
    text = procs.log_text()
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


def converge(procs, rec, timeout=30.0):
    """With WAHA healthy, the gateway shows what the simulator says."""
    procs.sim_request("POST", "/_sim/fault", {"mode": "none"})
    deadline, last = now() + timeout, {}
    while now() < deadline:
        ok = True
        for session in SESSIONS:
            try:
                c = Conn(procs.port, timeout=10)
                status, _, body = c.request("GET", f"/api/waha/status?session={session}")
                c.close()
                doc = json.loads(body) if status == 200 else {}
            except (OSError, ConnError, ValueError):
                doc = {}
            last[session] = doc.get("rawStatus")
            ok &= last[session] == rec.current[session]
        if ok:
            return None
        time.sleep(0.5)
    return f"the gateway does not show the simulator's statuses: {last} vs {rec.current}"


# --------------------------------------------------------------------------- main

def guarded(rec, job, stop):
    """Run a load or chaos thread; an exception in it is a failure."""
    try:
        job(stop)
    except Exception as exc:
        import traceback
        traceback.print_exc()
        rec.fail(f"thread {getattr(job, '__qualname__', job)} failed: {exc!r}")


def duration_from_env():
    if os.environ.get("SOAK_SECONDS"):
        return float(os.environ["SOAK_SECONDS"])
    return 60.0 * float(os.environ.get("SOAK_MINUTES") or 10)


def fault_name(fault):
    return fault["mode"] + "".join(f"/{fault[k]}{unit}" for k, unit in
                                   (("status", ""), ("delayMs", "ms")) if k in fault)


def print_summary(rec, procs, duration, warmup, started_at, t0, extra):
    print("\n==================== soak summary ====================")
    print(f"duration {duration:.0f} s (warm-up {warmup:.0f} s), gateway {procs.gateway_bin}, "
          f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started_at))}")
    print(f"requests: {rec.requests}")
    for key in sorted(rec.by_status):
        print(f"  {key:12} {rec.by_status[key]}")
    lat = sorted(rec.latencies)
    if lat:
        print(f"status latency: p50 {lat[len(lat) // 2][0] * 1000:.1f} ms, "
              f"p99 {lat[int(len(lat) * 0.99)][0] * 1000:.1f} ms; slowest: "
              + ", ".join(f"{d * 1000:.0f} ms ({st}) at {t - t0:.0f} s" for d, t, st in lat[-3:]))
    s = rec.sse
    print(f"SSE: {s['streams']} streams ({s['resumed']} resumed), {s['events']} events, "
          f"{s['ended_by_client']} closed by the client, {len(s['ended_by_kill'])} cut by kills")
    print(f"webhooks sent by the soak: {rec.webhooks['sent']} {rec.webhooks['by_result']}")
    if rec.sim_samples:
        final = rec.sim_samples[-1][1]
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
    procs = Processes(gateway_bin, workdir)
    stop = threading.Event()
    threads = []
    started_at = time.time()
    exit_code = rss_now = None
    t0 = now()

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        procs.start_simulator()
        procs.start_gateway()
        procs.sim_request("POST", "/_sim/config", {
            "webhookUrl": f"http://127.0.0.1:{procs.port}/api/waha/webhook",
            "webhookHmacKey": HMAC_KEY})
        t0 = now()
        end = t0 + duration
        fetcher = procs.fetchers()
        workers = procs.workers()
        long_lived = [procs.gw.pid, *fetcher, min(workers, key=start_key)]
        print(f"soak: {duration:.0f} s against {gateway_bin} (pid {procs.gw.pid}, "
              f"port {procs.port}), simulator on {procs.sim_port}, logs in {workdir}", flush=True)

        chaos = Chaos(rec, procs, t0, duration)
        intervals = [(0.02, 0.1, 0.3, 0.05, 0.5), (0.2, 0.05, 0.7, 0.1), (1.0, 0.3, 0.02)]
        jobs = []
        for i in range(n_clients):
            session = ALL_SESSIONS[i % len(ALL_SESSIONS)]
            jobs.append(Poller(rec, procs.port, end, session, i % 2 == 1,
                               intervals[i % len(intervals)]).run)
        for i in range(2):
            jobs.append(MiscClient(rec, procs.port, end, (0.1, 0.25, 0.05)).run)
        jobs.append(WebhookSender(rec, procs.port, end, (0.5, 1.0, 1.5)).run)
        for i in range(8):
            jobs.append(Subscriber(rec, procs.port, end, i).run)
        rss_every = 5.0 if duration >= 300 else max(1.0, duration / 40)
        jobs += [chaos.statuses, chaos.faults, chaos.kills, chaos.sample_sim,
                 lambda s: chaos.sample_rss(s, rss_every, long_lived)]
        for job in jobs:
            t = threading.Thread(target=guarded, args=(rec, job, stop), daemon=True)
            t.start()
            threads.append(t)

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
            if procs.gw.poll() is not None:
                rec.fail(f"the master exited with {procs.gw.returncode}")
                break
        stop.set()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT_S + 10)
        alive = [t for t in threads if t.is_alive()]
        if alive:
            rec.fail(f"{len(alive)} threads did not stop")

        chaos.sample_sim_webhooks()
        roles = {"maste": "master", "fetch": "fetcher", "worke": "worker"}
        rss_now = ", ".join(f"{roles.get(proc_comm(p)[10:], '?')} {p} "
                            f"{proc_rss_kb(p) / 1024:.1f} MB" for p in procs.all_pids())
        problem = converge(procs, rec)
        if problem:
            rec.fail(problem)
        if procs.fetchers() != fetcher:
            rec.fail(f"the fetcher changed: {fetcher} -> {procs.fetchers()}")
        final = procs.sim_request("GET", "/_sim/stats")
        rec.inflight_checked.append(final["maxInFlight"])
        failed = chaos.add(chaos.base, final)["webhooks"]["failed"]
        if failed:
            rec.fail(f"the simulator failed to deliver {failed} webhooks (4 attempts each)")
    except KeyboardInterrupt:
        rec.fail("interrupted")
    except Exception as exc:  # report it like any failure, and stop everything
        import traceback
        traceback.print_exc()
        rec.fail(f"soak error: {exc!r}")
    finally:
        stop.set()
        deadline = now() + 5
        for t in threads:
            t.join(timeout=max(0.0, deadline - now()))
        exit_code = procs.stop()
        for t in threads:  # unblocked by the end of the processes
            t.join(timeout=max(0.0, deadline + 5 - now()))

    extra = [f"RSS by process at the end: {rss_now}"] if rss_now else []
    allowed, sse_allowed, held, bad = check_connections(rec)
    for b in bad:
        rec.fail(b)
    extra.append(f"connection errors from kills: {allowed} requests and {sse_allowed} SSE "
                 f"streams (the victims held {held} connections)")
    if rec.rss:
        ok, lines = check_rss(rec, duration, warmup)
        extra += lines
        if not ok:
            rec.fail("RSS grew: " + "; ".join(lines))
    if rec.sim_samples:
        lines, bad = check_upstream(rec, rec.sim_samples[0][0])
        extra.append(f"WAHA calls within the schedule ({len(bad)} windows over):")
        extra += lines
        for b in bad:
            rec.fail(b)
    over = [m for m in rec.inflight_checked if m > MAX_CONC]
    extra.append(f"WAHA maxInFlight {max(rec.inflight_checked or [0])} (limit {MAX_CONC}); "
                 f"not checked during timeout faults: {rec.unchecked_inflight}")
    if over:
        rec.fail(f"WAHA maxInFlight {over} above limits.max_concurrent_requests {MAX_CONC}")
    if procs.gw is not None:
        log_bad, errors = check_log(procs, rec)
        for b in log_bad:
            rec.fail(b)
        extra.append(f"gateway log: {len(errors)} [error] lines" +
                     "".join(f"\n    {line}" for line in errors[:10]))
    if exit_code != 0:
        rec.fail(f"the master's exit code on SIGTERM: {exit_code}")

    print_summary(rec, procs, duration, warmup, started_at, t0, extra)
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
