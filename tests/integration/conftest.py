"""Harness of wahagate's integration tests.

Everything runs on 127.0.0.1 with free ports. A test starts the WAHA simulator
(scripts/waha_sim.py) and one or more gateways (GATEWAY_BIN, default
build/wahagate of this repository) through the `simulator` and `gateway`
fixture factories; every process they start is stopped by its PID when the
test ends, pass or fail. Each gateway gets its own shm_name
(/wgtest-<pytest pid>-<n>), and the session checks at the end that none of
them is left in /dev/shm. scripts/soak.py (make soak) is built on the same
classes, imported from here outside pytest.

Rules kept here so that the tests hold on a busy 2-core machine:
- never sleep a fixed time and then assert: wait_until() a condition with a
  deadline;
- the child environment is os.environ without any WAHAGATE_* or WAHA_*
  variable (those configure the gateway); only tests about environment
  overrides add some back, explicitly;
- standard library only.
"""

import http.client
import itertools
import json
import os
import re
import select
import selectors
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
GATEWAY_BIN = os.environ.get("GATEWAY_BIN") or str(REPO / "build" / "wahagate")
# The test build with fault points (make faults): build/faults/wahagate next
# to GATEWAY_BIN unless FAULTS_BIN says otherwise.
FAULTS_BIN = os.environ.get("FAULTS_BIN") or str(Path(GATEWAY_BIN).parent / "faults" / "wahagate")
SIMULATOR = str(REPO / "scripts" / "waha_sim.py")
PYTHON = "/usr/bin/python3"
API_KEY = "simkey"
SHM_PREFIX = f"wgtest-{os.getpid()}-"


def _sanitized(path):
    """A sanitized build: "sanitize" in its path, or AddressSanitizer linked in
    (so that build/it-helper-san and the like are recognised too)."""
    if "sanitize" in path:
        return True
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# make valgrind (scripts/valgrind.py) runs the gateway under memcheck through
# a wrapper script, .../valgrind/wahagate: slower still than a sanitized
# build, so the same slack and a longer start. Under valgrind the command
# line is valgrind's: the title shows only in /proc/PID/comm (proc_title).
VALGRIND = "/valgrind/" in GATEWAY_BIN
SANITIZED = _sanitized(GATEWAY_BIN) or VALGRIND

# Generous bounds: the sanitized build is several times slower.
START_TIMEOUT = 30.0 if VALGRIND else 10.0
HTTP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

ISO_MS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

_shm_counter = itertools.count(1)


# --------------------------------------------------------------------------- helpers

def wait_until(predicate, timeout, interval=0.02):
    """Call predicate() until it returns something truthy or TIMEOUT seconds
    pass. Returns that value, or the last (falsy) value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def clean_env(extra=None):
    """os.environ without WAHAGATE_* and WAHA_*, plus EXTRA."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WAHAGATE_") and not k.startswith("WAHA_")}
    if extra:
        env.update(extra)
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_iso_ms(text):
    """Seconds since the epoch of an ISO-8601 UTC time with milliseconds."""
    import calendar
    assert ISO_MS_RE.match(text), f"not ISO-8601 with ms and Z: {text!r}"
    base = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(base) + int(text[20:23]) / 1000.0


def http_request(port, method, path, headers=None, body=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection: (status, headers, body bytes).
    Headers is an http.client.HTTPMessage (case-insensitive .get)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


def raw_exchange(port, data, timeout=10.0):
    """Send DATA on a raw socket and read until the peer closes or TIMEOUT.
    Returns (bytes received, how) with how in "closed", "reset", "timeout"."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            return b"", "reset"
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"".join(chunks), "timeout"
            s.settimeout(remaining)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return b"".join(chunks), "timeout"
            except ConnectionResetError:
                return b"".join(chunks), "reset"
            if not chunk:
                return b"".join(chunks), "closed"
            chunks.append(chunk)
            # One complete answer is enough: stop when headers and body are in.
            got = b"".join(chunks)
            head, sep, rest = got.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    return got, "answered"


def proc_exists(pid):
    """True while PID exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def proc_title(pid):
    """The title of a gateway process: its command line, or under valgrind
    its name (prctl PR_SET_NAME: the first 15 characters of the title)."""
    if not VALGRIND:
        return proc_cmdline(pid)
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def proc_children(ppid):
    """PIDs of the live children of PPID, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        end = stat.rfind(b")")
        fields = stat[end + 2:].split()
        if len(fields) >= 2 and fields[0] not in (b"Z", b"X") and int(fields[1]) == ppid:
            out.append(int(entry))
    return out


def proc_start_time(pid):
    """When PID started, in clock ticks since boot (0 if it is gone): with
    the pid, an order of start that never ties, (proc_start_time(p), p)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    return int(stat[stat.rfind(b")") + 2:].split()[19])


def proc_rss_kb(pid):
    """The resident memory of PID in kB (VmRSS), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop_pid(popen, timeout=STOP_TIMEOUT):
    """SIGTERM, wait up to TIMEOUT, then SIGKILL. Returns the exit code."""
    if popen.poll() is None:
        try:
            os.kill(popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return popen.wait(timeout=timeout)
    return popen.returncode


def shm_leftovers():
    try:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(SHM_PREFIX))
    except FileNotFoundError:
        return []


def run_gateway_cli(args, env_extra=None, timeout=30.0):
    """Run GATEWAY_BIN ARGS to completion: (exit code, stdout, stderr)."""
    p = subprocess.run([GATEWAY_BIN, *args], env=clean_env(env_extra), cwd=str(REPO),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def write_ini(path, sections):
    """Write SECTIONS ({section: {key: value}}) as an ini file."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            if isinstance(value, (list, tuple)):
                for item in value:  # repeatable keys
                    lines.append(f"{key} = {item}")
                continue
            lines.append(f"{key} = {value}")
        lines.append("")
    Path(path).write_text("\n".join(lines))
    return str(path)


def merge_sections(base, extra):
    out = {s: dict(k) for s, k in base.items()}
    for section, keys in (extra or {}).items():
        out.setdefault(section, {}).update(keys)
    return out


# --------------------------------------------------------------------------- simulator

class Simulator:
    """scripts/waha_sim.py on a free port, with its /_sim/ control API."""

    def __init__(self, workdir, args=(), api_key=API_KEY, engine_delay_ms=0):
        self.log_path = Path(workdir) / f"sim-{next(_shm_counter)}.log"
        self._log = open(self.log_path, "wb")
        # WAHA's GET /api/sessions/{name} spends up to 1 s on engine info, and so does
        # the simulator by default; the gateway tests time their own schedules, so they
        # run without it unless they ask (engine_delay_ms=N, or None: the simulator's).
        delay = () if engine_delay_ms is None else ("--engine-delay-ms", str(engine_delay_ms))
        cmd = [PYTHON, SIMULATOR, "--port", "0", "--api-key", api_key, *delay, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, env=clean_env(), cwd=str(REPO))
        self.pid = self.proc.pid
        line = self._first_line(10.0)
        m = re.match(r"^listening on ([0-9.]+):(\d+)\s*$", line)
        if not m:
            self.stop()
            raise AssertionError(f"simulator did not start: {line!r}\n{self.log_text()}")
        self.port = int(m.group(2))
        self.url = f"http://127.0.0.1:{self.port}"

    def _first_line(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    break
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        finally:
            sel.close()
        return buf.decode(errors="replace").split("\n")[0]

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        status, _, out = http_request(self.port, method, path, headers, data, timeout=10.0)
        assert status == 200, f"simulator {method} {path} -> {status} {out!r}"
        return json.loads(out)

    def stats(self):
        return self.control("GET", "/_sim/stats")

    def reset(self):
        return self.control("POST", "/_sim/reset")

    def fault(self, mode, **kw):
        return self.control("POST", "/_sim/fault", dict(kw, mode=mode))

    _OMIT = object()

    def set_session(self, name, status, me=_OMIT):
        body = {"status": status}
        if me is not Simulator._OMIT:
            body["me"] = me
        return self.control("POST", f"/_sim/sessions/{quote(name, safe='')}", body)

    def delete_session(self, name):
        return self.control("DELETE", f"/_sim/sessions/{quote(name, safe='')}")

    # The calls that refresh a session's data: the session list (one for
    # every session) and a session's own details.
    SESSION_CALLS = ("GET /api/sessions", "GET /api/sessions/{name}")

    def session_calls(self, stats=None):
        stats = stats or self.stats()
        return sum(stats["calls"].get(k, 0) for k in self.SESSION_CALLS)

    def wait_quiet(self, quiet_s, timeout):
        """Wait until WAHA got no call for QUIET_S seconds and has none under
        way; True when it did, False at the deadline."""
        last = [None, time.monotonic()]

        def settled():
            stats = self.stats()
            if stats["total"] != last[0] or stats["inFlight"]:
                last[:] = [stats["total"], time.monotonic()]
            return time.monotonic() - last[1] >= quiet_s
        return wait_until(settled, timeout, 0.05)

    def stop(self):
        try:
            return stop_pid(self.proc)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
            self._log.close()


# --------------------------------------------------------------------------- gateway

DEFAULT_SECTIONS = {
    "server": {"workers": 2},
    # Polling, whose schedule most tests check; WAHA's event stream (the
    # default for users, events = auto) has its own tests (test_events.py).
    "upstream": {"events": "off"},
    # Every client of these tests is 127.0.0.1: per-IP rate limiting would
    # turn the load tests into rate-limit tests.
    "ratelimit": {"enabled": False},
    # Publish status changes at once; flap smoothing has its own tests.
    "backend": {"status_cache_duration": 1000, "session_cache_duration": 1000,
                "health_check_cache_duration": 1000, "flap_hold": 0},
    "limits": {"request_timeout": 2000, "max_concurrent_requests": 2},
}


class Gateway:
    """One wahagate master started from a generated waha.ini."""

    def __init__(self, workdir, sim=None, sections=None, shm_name=None, env_extra=None,
                 upstream_url=None, defaults=True, binary=None, preexec_fn=None):
        n = next(_shm_counter)
        # BINARY: another build to run (FAULTS_BIN for the fault points);
        # PREEXEC_FN: called in the child before exec (resource limits).
        self.binary = binary or GATEWAY_BIN
        self.preexec_fn = preexec_fn
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.shm_name = shm_name or f"/{SHM_PREFIX}{n}"
        base = {
            "server": {"listen": f"127.0.0.1:{self.port}", "shm_name": self.shm_name},
            "log": {"level": "info"},
            "upstream": {"url": upstream_url or (sim.url if sim else "http://127.0.0.1:9"),
                         "api_key": API_KEY},
        }
        merged = merge_sections(DEFAULT_SECTIONS, base) if defaults else base
        self.sections = merge_sections(merged, sections)
        self.ini_path = write_ini(self.workdir / f"waha-{n}.ini", self.sections)
        self.log_path = self.workdir / f"gateway-{n}.log"
        self.env_extra = env_extra
        self.proc = None
        self.pid = None
        self.seen_children = set()
        # Tests that kill children on purpose set this; otherwise a child
        # that dies of a signal or fails is a crash, reported at teardown.
        self.expect_child_deaths = False

    # ---- life cycle
    def start(self, wait=True):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.ini_path], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=clean_env(self.env_extra), cwd=str(self.workdir),
                                     preexec_fn=self.preexec_fn)
        self.pid = self.proc.pid
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                status, _, _ = self.get("/api/waha/config", timeout=2.0)
                return status == 200
            except OSError:
                return False
        result = wait_until(ready, timeout, 0.05)
        assert result is True, (f"gateway not ready within {timeout} s "
                                f"(exit code {self.proc.poll()}):\n{self.log_text()}")
        self.child_pids("worker")
        self.child_pids("fetcher")

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM the master and wait: its exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.child_pids("worker")
        self.child_pids("fetcher")
        if self.proc.poll() is not None:
            return self.proc.returncode
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def cleanup(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.child_pids("worker")
            self.child_pids("fetcher")
        stop_pid(self.proc)
        for pid in self.seen_children:
            cmd = proc_title(pid)
            if proc_exists(pid) and cmd and cmd.startswith("wahagate"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()
        problems = self.log_problems()
        assert not problems, f"gateway {self.log_path}:\n" + "\n".join(problems)

    SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|"
                              r"SUMMARY: \w+Sanitizer")
    CHILD_DEATH_RE = re.compile(r"\b(worker|fetcher) \d+ (was killed by signal|exited with code [1-9])")

    def log_problems(self):
        """Sanitizer reports, and children that crashed when no test killed them."""
        out = []
        for line in self.log_text().splitlines():
            if self.SANITIZER_RE.search(line):
                out.append(line)
            elif not self.expect_child_deaths and self.CHILD_DEATH_RE.search(line):
                out.append(line)
        return out[:50]

    # ---- introspection
    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def child_pids(self, role):
        """Live children of the master whose title is "wahagate: ROLE"."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        out = []
        for pid in proc_children(self.pid):
            cmd = proc_title(pid)
            if cmd and cmd.startswith(f"wahagate: {role}"[:15 if VALGRIND else None]):
                out.append(pid)
        self.seen_children.update(out)
        return sorted(out)

    def pids(self):
        """The master and its live children, of every role."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.pid, *proc_children(self.pid)]

    def wait_children(self, role, count, timeout=10.0):
        """The pids of the COUNT live children of ROLE, once there are that
        many (a child just forked may not have its title yet), or []."""
        got = wait_until(lambda: (lambda p: p if len(p) == count else None)(self.child_pids(role)),
                         timeout, 0.02)
        return got or []

    def shm_exists(self):
        return os.path.exists("/dev/shm/" + self.shm_name.lstrip("/"))

    # ---- HTTP
    def get(self, path, headers=None, timeout=HTTP_TIMEOUT):
        return http_request(self.port, "GET", path, headers, timeout=timeout)

    def request(self, method, path, headers=None, body=None, timeout=HTTP_TIMEOUT):
        return http_request(self.port, method, path, headers, body, timeout=timeout)

    def json(self, path, headers=None, expect=200):
        status, hdrs, body = self.get(path, headers)
        assert status == expect, f"GET {path} -> {status} {body[:500]!r}"
        return json.loads(body)

    def status(self, session=None):
        return self.json("/api/waha/status" + (f"?session={session}" if session else ""))


# --------------------------------------------------------------------------- fixtures

class ProcessStack:
    """Every simulator and gateway started for one scope, stopped in reverse."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.items = []

    def simulator(self, *args, **kw):
        sim = Simulator(self.workdir, args, **kw)
        self.items.append(sim)
        return sim

    def gateway(self, sim=None, sections=None, start=True, **kw):
        gw = Gateway(self.workdir, sim, sections, **kw)
        self.items.append(gw)
        if start:
            gw.start()
        return gw

    def close(self):
        errors = []
        for item in reversed(self.items):
            try:
                item.cleanup() if isinstance(item, Gateway) else item.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(repr(exc))
        self.items.clear()
        assert not errors, f"cleanup failed: {errors}"


@pytest.fixture
def procs(tmp_path):
    stack = ProcessStack(tmp_path)
    yield stack
    stack.close()


@pytest.fixture
def simulator(procs):
    """Factory: simulator(*extra_args) -> Simulator (stopped at teardown)."""
    return procs.simulator


@pytest.fixture
def gateway(procs):
    """Factory: gateway(sim, sections=None, start=True, **kw) -> Gateway."""
    return procs.gateway


@pytest.fixture(scope="module")
def module_procs(tmp_path_factory, request):
    stack = ProcessStack(tmp_path_factory.mktemp(request.module.__name__.split(".")[-1]))
    yield stack
    stack.close()


@pytest.fixture(scope="session", autouse=True)
def no_leftover_shm():
    """At the end of the run none of this run's shm objects may remain."""
    assert os.path.exists(GATEWAY_BIN), f"GATEWAY_BIN {GATEWAY_BIN} does not exist: run make"
    yield
    left = shm_leftovers()
    for name in left:  # do not leave them behind for the next run
        try:
            os.unlink("/dev/shm/" + name)
        except OSError:
            pass
    assert not left, f"shm objects left in /dev/shm: {left}"


# --------------------------------------------------------------------------- background threads

class Background:
    """A daemon thread running the subclass's _run(), a loop bounded by its
    own count that ends when self._stop is set, or after MAX_SECONDS when
    given: `while self._going(n, limit)`. What it records (_record())
    tests read with snapshot(); stop() ends it and returns the records.
    An exception that ends _run() is kept in self.exception (and printed).
    Subclasses set their fields, then call Background.__init__, which starts
    the thread."""

    def __init__(self, timeout=HTTP_TIMEOUT, max_seconds=None):
        self.timeout = timeout
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.results = []
        self.exception = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def _main(self):
        try:
            self._run()
        except BaseException as exc:
            self.exception = exc
            raise

    def _going(self, n, limit):
        """Loop condition: not stopped, fewer than LIMIT rounds, before the deadline."""
        return (not self._stop.is_set() and n < limit
                and (self.deadline is None or time.monotonic() < self.deadline))

    def _record(self, item):
        with self._lock:
            self.results.append(item)

    def snapshot(self):
        with self._lock:
            return list(self.results)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        assert not self._thread.is_alive(), f"{type(self).__name__} thread did not stop"
        return self.snapshot()


def stop_all(threads, timeout=HTTP_TIMEOUT + 5):
    """Stop every Background of THREADS, all at once, and wait for them
    for at most TIMEOUT seconds in all: those still running."""
    for t in threads:
        t._stop.set()
    deadline = time.monotonic() + timeout
    for t in threads:
        t._thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return [t for t in threads if t._thread.is_alive()]


def stopped_at_teardown(cls):
    """The body of a fixture that hands out CLS(...) and stops every one at
    teardown, before the processes, so none outlives its gateway."""
    started = []

    def make(*args, **kw):
        started.append(cls(*args, **kw))
        return started[-1]
    yield make
    stop_all(started)


class Poller(Background):
    """A client thread that GETs PATH every INTERVAL seconds on a fresh
    connection and records (started, finished, status, json or None, error)."""

    def __init__(self, port, path="/api/waha/status", interval=0.1, timeout=HTTP_TIMEOUT,
                 max_requests=100000, max_seconds=None):
        self.port, self.path, self.interval = port, path, interval
        self.max_requests = max_requests
        super().__init__(timeout, max_seconds)

    def _run(self):
        n = 0
        while self._going(n, self.max_requests):
            n += 1
            started = time.monotonic()
            status, doc, error = None, None, None
            try:
                status, _, body = http_request(self.port, "GET", self.path, timeout=self.timeout)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
            except (OSError, http.client.HTTPException) as exc:
                error = repr(exc)
            self._record((started, time.monotonic(), status, doc, error))
            self._stop.wait(self.interval)

    def latest(self):
        with self._lock:
            return self.results[-1] if self.results else None

    def wait_for(self, predicate, timeout, since=0.0):
        """Wait until a result started at or after SINCE satisfies
        predicate(status, doc); returns that result or None."""
        def found():
            for r in self.snapshot():
                if r[0] >= since and predicate(r[2], r[3]):
                    return r
            return None
        return wait_until(found, timeout, 0.02)


@pytest.fixture
def poller(procs):
    """Factory: poller(port, path=..., interval=...) -> Poller."""
    yield from stopped_at_teardown(Poller)


# --------------------------------------------------------------------------- WAHA call timeline

class StatsSampler(Background):
    """A thread that reads the simulator's /_sim/stats every INTERVAL seconds
    and records (monotonic time, stats): when WAHA was called, to within an
    interval, without any help from the gateway.

    reset_counters() resets the simulator's counters (and its maxInFlight)
    between two samples, and the samples go on counting from where they
    were: their "total", "calls", "bySession" and "webhooks" (but "queued")
    include what was counted before; the other fields are the simulator's."""

    def __init__(self, sim, interval=0.01, max_samples=200000, max_seconds=None):
        self.sim, self.interval, self.max_samples = sim, interval, max_samples
        self.errors = []
        self.base = None            # the counts from before the last reset_counters()
        self._sim_lock = threading.Lock()
        super().__init__(max_seconds=max_seconds)

    def _run(self):
        n = 0
        while self._going(n, self.max_samples):
            n += 1
            try:
                stats = self.read()
            except (OSError, AssertionError, ValueError, http.client.HTTPException) as exc:
                self.errors.append(repr(exc))
            else:
                self._record((time.monotonic(), stats))
            self._stop.wait(self.interval)

    def read(self):
        """The simulator's stats now, with the counts from before the resets."""
        with self._sim_lock:
            return self.plus(self.base, self.sim.stats())

    def reset_counters(self):
        """Reset the simulator's counters; returns its stats just before."""
        with self._sim_lock:
            stats = self.sim.stats()
            self.sim.reset()
            self.base = self.plus(self.base, stats)
        return stats

    @staticmethod
    def plus(base, stats):
        """STATS with the counts of BASE (None: none) added."""
        if base is None:
            return stats
        out = dict(stats, total=base["total"] + stats["total"])
        for key in ("calls", "bySession", "webhooks"):
            out[key] = dict(base[key])
            for k, v in stats[key].items():
                out[key][k] = out[key].get(k, 0) + v if k != "queued" else v
        return out

    @staticmethod
    def count_of(stats, key=None):
        """The total number of calls, or those of route KEY ("GET /api/sessions/{name}")."""
        return stats["total"] if key is None else stats["calls"].get(key, 0)

    def count(self, key=None):
        snap = self.snapshot()
        return self.count_of(snap[-1][1], key) if snap else 0

    def call_times(self, key=None):
        """One time per call: the first sample that counted it (a reset of
        the simulator's counters starts the count again)."""
        times, last = [], 0
        for t, stats in self.snapshot():
            n = self.count_of(stats, key)
            if n < last:
                last = 0
            times.extend([t] * (n - last))
            last = n
        return times

    def wait_calls(self, n, timeout, key=None):
        """Wait until at least N calls were seen; returns the call times or None."""
        ok = wait_until(lambda: self.count(key) >= n, timeout, 0.005)
        return self.call_times(key) if ok else None


@pytest.fixture
def stats_sampler(procs):
    """Factory: stats_sampler(sim, interval=0.01) -> StatsSampler."""
    yield from stopped_at_teardown(StatsSampler)


# --------------------------------------------------------------------------- load processes

LOADGEN = str(Path(__file__).resolve().parent / "loadgen.py")


class LoadProcesses:
    """PROCESSES load generators (loadgen.py), each with THREADS threads
    making requests on fresh connections to PATHS until stop() or
    MAX_SECONDS. stop() returns the merged results."""

    def __init__(self, port, processes=3, threads=4, paths=("/api/waha/status",),
                 max_seconds=60.0):
        self.procs = []
        for _ in range(processes):
            self.procs.append(subprocess.Popen(
                [PYTHON, LOADGEN, str(port), str(threads), str(max_seconds), ",".join(paths)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=clean_env(), cwd=str(REPO)))
        self.results = None

    def stop(self, timeout=HTTP_TIMEOUT + 10):
        """Close their stdin (the signal to stop), wait, merge what they report:
        {"requests", "statuses", "errors", "errorCount", "stderr"}."""
        if self.results is not None:
            return self.results
        merged = {"requests": 0, "statuses": {}, "errors": [], "errorCount": 0, "stderr": []}
        for p in self.procs:
            try:
                out, err = p.communicate(input=b"", timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_pid(p)
                out, err = p.communicate()
                merged["errors"].append(f"load process {p.pid} did not stop")
                merged["errorCount"] += 1
            if err.strip():
                merged["stderr"].append(err.decode(errors="replace")[-2000:])
            lines = out.decode(errors="replace").strip().splitlines()
            if p.returncode != 0 or not lines:
                merged["errors"].append(f"load process {p.pid} exited {p.returncode}")
                merged["errorCount"] += 1
                continue
            r = json.loads(lines[-1])
            merged["requests"] += r["requests"]
            merged["errorCount"] += r["errorCount"]
            merged["errors"] += r["errors"]
            for code, n in r["statuses"].items():
                merged["statuses"][code] = merged["statuses"].get(code, 0) + n
        self.results = merged
        return merged

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                stop_pid(p)
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()


@pytest.fixture
def load_clients(procs):
    """Factory: load_clients(port, processes=3, threads=4, paths=(...)) ->
    LoadProcesses, stopped by PID at teardown (before the gateways)."""
    started = []

    def make(port, **kw):
        lp = LoadProcesses(port, **kw)
        started.append(lp)
        return lp
    yield make
    for lp in started:
        lp.kill()


# --------------------------------------------------------------------------- keep-alive client

class NoAnswer(Exception):
    """The connection ended before a whole answer arrived."""

    def __init__(self, got, why):
        super().__init__(f"{why} after {len(got)} bytes: {got[:120]!r}")
        self.got = got


class HttpConnection:
    """One HTTP/1.1 keep-alive connection on a raw socket, as clients hold
    them: request() sends one request and reads its answer, (status,
    {lower-case header: value}, body); NoAnswer when the connection ends
    or times out first, or the answer is not what HTTP allows (bytes after
    it, no Content-Length). local_port and opened (monotonic) tell which
    connection it was."""

    def __init__(self, port, timeout=HTTP_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.opened = time.monotonic()
        self.buf = b""

    def close(self):
        self.sock.close()

    def closed_by_peer(self):
        """True when the server closed it (EOF or reset waiting to be read)."""
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
        except OSError as exc:  # socket.timeout too
            raise NoAnswer(self.buf, repr(exc))
        if not chunk:
            raise NoAnswer(self.buf, "closed")
        self.buf += chunk

    def request(self, method, path, headers=None, body=None):
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        self.buf = b""
        try:
            self.sock.sendall((head + "\r\n").encode() + (body or b""))
        except OSError as exc:
            raise NoAnswer(b"", repr(exc))
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        if not re.match(r"HTTP/1\.[01] \d{3}", lines[0]):
            raise NoAnswer(self.buf, "not an HTTP answer")
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
            raise NoAnswer(self.buf, f"answer {status} without Content-Length")
        while len(self.buf) - len(raw) - 4 < length:
            self._fill()
        rest = self.buf[len(raw) + 4:]
        if len(rest) > length:
            raise NoAnswer(self.buf, "bytes after the answer")
        return status, hdrs, rest


class KeepAliveClient(Background):
    """A thread that polls PATH on one keep-alive connection the way browsers
    and HTTP client libraries do, waiting INTERVALS[i % len] between requests.
    With PATHS, it asks for each in turn instead, from PATHS[FIRST % len].
    A subclass may make other requests (next_request()) and look at each
    answer (on_result()).

    A server may close a keep-alive connection that is idle (a draining
    worker does after 500 ms); a client then either sees the close before
    it sends (reconnect: counted in idle_closes) or sends into a connection
    that is being closed and gets no answer: HTTP clients retry such a
    request once on a fresh connection, and so does this one, but only
    when the connection had been idle long enough for the server to close
    it (IDLE_CLOSE_S, measured from the answer before, so never shorter than
    what the server measured). Any other request without an answer is a
    failure. With STRICT (a server that must not close an idle connection
    on its own, say with a fixed number of workers), an idle close is a
    failure too (of the request about to be sent) and there is no retry.
    With FRESH, every request goes on a new connection, closed after it
    (the way WAHA posts its webhooks).

    results: (started, finished, status, error, how, local port, opened)
    with how in "reused", "fresh", "retry", and the local port and opening
    time (monotonic) of the connection the request went on, or the last
    one tried."""

    IDLE_CLOSE_S = 0.45

    def __init__(self, port, path="/api/waha/status", intervals=(0.05, 0.3, 0.7, 0.15, 1.0),
                 timeout=HTTP_TIMEOUT, max_requests=100000, paths=None, first=0,
                 max_seconds=None, strict=False, fresh=False):
        self.port, self.intervals = port, intervals
        self.max_requests = max_requests
        self.paths = list(paths or [path])
        self.first = first
        self.strict, self.fresh = strict, fresh
        self.idle_closes = 0   # closed by the server while idle, seen before sending
        self.retries = 0       # requests retried after an idle-close race
        self.connections = 0
        self.local_port = None  # of the current connection
        super().__init__(timeout, max_seconds)

    def next_request(self, n):
        """The Nth request: (method, path, headers, body)."""
        return "GET", self.paths[(self.first + n) % len(self.paths)], None, None

    def on_result(self, n, started, answer):
        """Called after each request with its (status, headers, body), or
        None when it got no answer."""

    def _connect(self):
        conn = HttpConnection(self.port, self.timeout)
        self.connections += 1
        self.local_port = conn.local_port
        return conn

    def _fail(self, started, error, how, conn):
        self._record((started, time.monotonic(), None, error, how,
                      conn.local_port if conn else None, conn.opened if conn else None))

    @staticmethod
    def _drop(conn):
        if conn is not None:
            conn.close()
        return None

    def _run(self):
        conn, answered_at, n = None, 0.0, 0
        while self._going(n, self.max_requests):
            started = time.monotonic()
            if conn is not None and conn.closed_by_peer():
                self.idle_closes += 1
                lost, conn = conn, self._drop(conn)
                if self.strict:
                    self._fail(started, "closed by the server while idle", "reused", lost)
                    self.on_result(n, started, None)
                    self._stop.wait(self.intervals[n % len(self.intervals)])
                    n += 1
                    continue
            how = "reused" if conn is not None else "fresh"
            method, path, headers, body = self.next_request(n)
            idle = started - answered_at
            answer, tried = None, conn
            try:
                if conn is None:
                    conn = tried = self._connect()
                answer = conn.request(method, path, headers, body)
            except (OSError, NoAnswer) as exc:
                conn = self._drop(conn)
                raced = (not self.strict and how == "reused" and idle >= self.IDLE_CLOSE_S
                         and isinstance(exc, NoAnswer) and not exc.got)
                if not raced:
                    self._fail(started, repr(exc), how, tried)
                else:
                    self.retries += 1
                    how = "retry"
                    try:
                        conn = tried = self._connect()
                        answer = conn.request(method, path, headers, body)
                    except (OSError, NoAnswer) as exc2:
                        conn = self._drop(conn)
                        self._fail(started, f"retry failed: {exc2!r}", how, tried)
            if answer is not None:
                answered_at = time.monotonic()
                self._record((started, answered_at, answer[0], None, how,
                              conn.local_port, conn.opened))
                if self.fresh or answer[1].get("connection", "").lower() == "close":
                    conn = self._drop(conn)
            self.on_result(n, started, answer)
            self._stop.wait(self.intervals[n % len(self.intervals)])
            n += 1
        self._drop(conn)

    def failures(self):
        return [r for r in self.snapshot() if r[2] != 200]


@pytest.fixture
def keepalive_client(procs):
    """Factory: keepalive_client(port, path=..., intervals=...) -> KeepAliveClient."""
    yield from stopped_at_teardown(KeepAliveClient)


# --------------------------------------------------------------------------- SSE client

def event_id_key(event_id):
    """An event id, "INSTANCE-TABLE-VERSION" (sse.c, rules_stream_id()), as
    (instance, table, version): the ids of one gateway's stream only grow in
    this order. Ids are otherwise compared whole, as strings."""
    instance, table, version = event_id.split("-")
    assert len(instance) == 16, event_id
    return int(instance, 16), int(table), int(version)


class Stream:
    """A Server-Sent Events client on a raw socket, as a browser's
    EventSource sees the stream: events() are (id, event, data dict).
    local_port and opened (monotonic) tell which connection it is."""

    def __init__(self, port, path="/api/waha/events", last_event_id=None, timeout=15,
                 read_head=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.opened = time.monotonic()
        headers = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if last_event_id is not None:
            headers += f"Last-Event-ID: {last_event_id}\r\n"
        self.buf = b""
        self.status_line, self.headers = None, None
        self.retry = None
        self.closed = False
        try:
            self.sock.sendall((headers + "\r\n").encode())
            if read_head:
                self.read_head()
        except BaseException:
            self.sock.close()
            raise

    def read_head(self):
        """Read the status line and the headers (the constructor does,
        unless READ_HEAD is false); NoAnswer if the stream ends first."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise NoAnswer(self.buf, "closed before the headers")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status_line = lines[0]
        self.headers = {k.lower(): v for k, v in (l.split(": ", 1) for l in lines[1:])}

    def _text(self):
        """The body so far, with chunked framing removed when it is used."""
        if self.headers.get("transfer-encoding") != "chunked":
            return self.buf.decode(errors="replace")
        out, rest = [], self.buf
        while True:
            size_line, sep, after = rest.partition(b"\r\n")
            if not sep:
                break
            size = int(size_line, 16)
            if size == 0:
                self.closed = True
                break
            if len(after) < size + 2:
                break
            out.append(after[:size])
            rest = after[size + 2:]
        return b"".join(out).decode(errors="replace")

    def events(self, wait=0.0):
        """Every complete event received so far, after reading for WAIT s."""
        deadline = time.monotonic() + wait
        self.sock.settimeout(0.05)
        while True:
            try:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.closed = True
                self.buf += chunk
            except socket.timeout:
                pass
            if time.monotonic() >= deadline or self.closed:
                break
        out = []
        for block in self._text().split("\n\n")[:-1]:
            ev = {"id": None, "event": "message", "data": []}
            for line in block.split("\n"):
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(": ")
                if field == "retry":
                    self.retry = int(value)
                elif field == "data":
                    ev["data"].append(value)
                elif field in ("id", "event"):
                    ev[field] = value
            if ev["data"]:
                out.append((ev["id"], ev["event"], json.loads("\n".join(ev["data"]))))
        return out

    def wait_for(self, predicate, timeout):
        return wait_until(lambda: [e for e in self.events(0.05) if predicate(e)], timeout, 0)

    def close(self):
        self.sock.close()



# --------------------------------------------------------------------------- connection owners

def _read_whole(path):
    """A /proc file in as few read() calls as possible: the kernel walks
    /proc/net/tcp again for each call, and entries can be skipped between
    two calls when other sockets come and go meanwhile."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 16 << 20)
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)
    finally:
        os.close(fd)


def _tcp_table():
    """Rows of /proc/net/tcp and tcp6: (local port, remote port, state, inode)."""
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = _read_whole(name).splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            lport = int(fields[1].rsplit(":", 1)[1], 16)
            rport = int(fields[2].rsplit(":", 1)[1], 16)
            rows.append((lport, rport, int(fields[3], 16), int(fields[9])))
    return rows


def socket_inodes(pid):
    """Inodes of the sockets PID has open."""
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


TCP_LISTEN = 0x0A


def server_connections(port, pids, reads=2):
    """{pid: set of client ports} of the accepted connections on PORT that
    each of PIDS holds open (the union of READS looks, so that one look that
    missed an entry does not make a connection look closed)."""
    out = {pid: set() for pid in pids}
    for _ in range(reads):
        by_inode = {inode: rport for lport, rport, state, inode in _tcp_table()
                    if lport == port and state != TCP_LISTEN and inode != 0}
        for pid in pids:
            out[pid] |= {by_inode[i] for i in socket_inodes(pid) if i in by_inode}
    return out
