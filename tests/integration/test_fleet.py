"""Several gateways, one fetcher, through a real Redis (issue 9).

Each test starts its own redis-server on a free loopback port (and a unix
socket), a simulator, and gateways that share the Redis under one key
prefix. The tests check what a fleet behind a load balancer relies on: one
leader calls WAHA and the fleet's upstream calls follow the single-host
schedule; a leader that dies or stops is replaced within redis.lock_ttl; a
webhook given to any gateway reaches the SSE clients of every other, once;
a gateway that starts loads the fleet's entries from Redis; records older
than what a gateway has never replace it; without Redis every gateway falls
back to fetching on its own, says so once, and rejoins when Redis is back.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import SANITIZED, Stream, free_port, proc_children, proc_exists, stop_pid, wait_until
from test_webhooks import encode, envelope

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
LOCK_TTL = 1500
SLACK = 3.0 if SANITIZED else 1.5
SESSION_CALL = "GET /api/sessions"  # the list: one call refreshes every session


# --------------------------------------------------------------------------- redis

class Redis:
    """A redis-server of our own on 127.0.0.1:PORT and a unix socket."""

    def __init__(self, workdir, port=None, password=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.unix_path = str(workdir / f"redis-{self.port}.sock")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--unixsocket", self.unix_path, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", str(self.workdir)] +
            (["--requirepass", self.password] if self.password else []),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert wait_until(lambda: self._ping(), 10, 0.05), "redis-server did not start"

    def _ping(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def stop(self):
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None
            self.log.close()

    def command(self, *args, db=0):
        """One command over RESP, in database DB; the reply as str / int /
        list / None."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            if self.password:
                s.sendall(_encode("AUTH", self.password))
                assert _read_reply(f) == "OK"
            if db:
                s.sendall(_encode("SELECT", db))
                assert _read_reply(f) == "OK"
            s.sendall(_encode(*args))
            return _read_reply(f)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


def _encode(*args):
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        return [_read_reply(f) for _ in range(int(rest))]
    raise AssertionError(f"unexpected reply {line!r}")


@pytest.fixture
def redis(tmp_path):
    assert os.path.exists(REDIS_SERVER), "redis-server is not installed (scripts/install-deps.sh)"
    servers = []

    def make(port=None, password=None):
        r = Redis(tmp_path, port, password)
        servers.append(r)
        return r
    yield make
    for r in servers:
        r.stop()


_prefixes = iter(range(1, 1000))


def fleet(gateway, sim, url, count=3, sessions="default,other", extra=None, **kw):
    """COUNT gateways sharing URL under one fresh key prefix."""
    prefix = f"wgtest{os.getpid()}-{next(_prefixes)}:"
    sections = {
        "upstream": {"sessions": sessions},
        "redis": {"url": url, "key_prefix": prefix, "lock_ttl": LOCK_TTL},
    }
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    return [gateway(sim, sections, **kw) for _ in range(count)]


def role(gw):
    return gw.json("/api/waha/monitoring/stats")["redis"]


def roles(gws):
    return sorted(role(g) for g in gws)


def one_leader(gws, timeout=10):
    """Wait for one leader and followers only; return the leader."""
    want = sorted(["leader"] + ["follower"] * (len(gws) - 1))
    assert wait_until(lambda: roles(gws) == want, timeout, 0.05), roles(gws)
    return next(g for g in gws if role(g) == "leader")


def settles(g, want, session=None, timeout=10):
    """Wait until G serves session SESSION with status WANT. A gateway's first
    read is cold (it waits for the fleet's fetch): on a slow build (ASan,
    valgrind) that can outlast limits.request_timeout and be a 503 first."""
    def ok():
        code, _, body = g.request("GET", "/api/waha/status" + (f"?session={session}" if session
                                                               else ""))
        return code == 200 and json.loads(body)["status"] == want
    return wait_until(ok, timeout + SLACK, 0.05)


def kill_gateway(gw):
    """SIGKILL a gateway's every process, as when its host dies."""
    gw.expect_child_deaths = True
    pids = proc_children(gw.pid)  # every child, whether or not it has its title yet
    os.kill(gw.pid, signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    gw.proc.wait(timeout=10)
    assert wait_until(lambda: not any(proc_exists(p) for p in pids), 10, 0.02), pids
    os.unlink("/dev/shm/" + gw.shm_name.lstrip("/"))  # nobody was left to do it


# --------------------------------------------------------------------------- tests

def test_fleet_makes_the_calls_of_one_gateway(simulator, gateway, redis, keepalive_client):
    period_s, window_s = 1.0, 6.0
    r = redis()
    sim = simulator("--sessions", "default:WORKING,other:STOPPED")
    gws = fleet(gateway, sim, r.url)
    leader = one_leader(gws)
    for g in gws:
        assert settles(g, "WORKING") and settles(g, "STOPPED", "other"), g.status()
    sim.reset()
    t_reset = time.monotonic()

    # 30 clients, spread over the three gateways as a load balancer would.
    paths = ["/api/waha/status", "/api/waha/status?session=other"]
    clients = [keepalive_client(gws[i % 3].port, paths=paths, first=i, intervals=(0.02,),
                                max_requests=3000) for i in range(30)]
    time.sleep(window_s)
    stats = sim.stats()
    window = time.monotonic() - t_reset
    by_gw = [0, 0, 0]
    for i, c in enumerate(clients):
        by_gw[i % 3] += sum(1 for r in c.stop() if r[2] == 200)
    bad = [r for c in clients for r in c.failures()]
    assert not bad, bad[:5]
    assert min(by_gw) >= 50, by_gw

    # The bound of test_refresh.py for one gateway: the fleet is one.
    bound = int(window / (0.8 * period_s)) + 2
    # One list call refreshes both sessions.
    lists = stats["calls"].get(SESSION_CALL, 0)
    assert lists <= bound, (window, stats)
    assert lists >= 2, stats  # and it kept refreshing
    assert stats["maxInFlight"] <= 2, stats
    # Only the leader's fetcher called.
    assert leader.json("/api/waha/monitoring/stats")["apiCalls"] >= 2
    for g in gws:
        if g is not leader:
            assert g.json("/api/waha/monitoring/stats")["apiCalls"] == 0, g.log_text()

    # A change on WAHA reaches every gateway through the leader.
    sim.set_session("other", "WORKING")
    for g in gws:
        assert wait_until(lambda: g.status("other")["status"] == "WORKING", 5 + SLACK, 0.05), \
            g.status("other")
    for g in gws:
        metrics = g.get("/metrics")[2].decode()
        want = "leader" if g is leader else "follower"
        assert f'wahagate_redis_state{{state="{want}"}} 1' in metrics, metrics


def test_killed_leader_is_replaced_within_the_lease(simulator, gateway, redis):
    r = redis()
    sim = simulator("--sessions", "default:WORKING,other:STOPPED")
    gws = fleet(gateway, sim, r.url)
    leader = one_leader(gws)
    rest = [g for g in gws if g is not leader]
    for g in rest:
        assert settles(g, "WORKING"), g.status()

    kill_gateway(leader)
    t_killed = time.monotonic()
    assert wait_until(lambda: "leader" in roles(rest), LOCK_TTL / 1000 + 5 + SLACK, 0.02), \
        roles(rest)
    took = time.monotonic() - t_killed
    # The lease runs out lock_ttl after its last renewal, and a follower
    # tries every lock_ttl/5: within the lease and one try (plus slack).
    assert took <= LOCK_TTL / 1000 * 1.2 + SLACK, f"takeover took {took:.2f} s"
    assert roles(rest) == ["follower", "leader"], roles(rest)

    # The new leader calls WAHA for the others.
    sim.set_session("default", "STOPPED")
    for g in rest:
        assert wait_until(lambda: g.status()["status"] == "STOPPED", 5 + SLACK, 0.05), g.status()


def test_stopped_leader_hands_over_at_once(simulator, gateway, redis):
    r = redis()
    sim = simulator("--sessions", "default:WORKING")
    gws = fleet(gateway, sim, r.url, sessions="default", extra={"redis": {"lock_ttl": 10000}})
    leader = one_leader(gws)
    rest = [g for g in gws if g is not leader]
    token = r.command("GET", leader.sections["redis"]["key_prefix"] + "lease")
    assert token, "the leader holds no lease key"

    assert leader.stop() == 0
    t_stopped = time.monotonic()
    assert wait_until(lambda: "leader" in roles(rest), 10 + SLACK, 0.02), roles(rest)
    took = time.monotonic() - t_stopped
    # Released by the compare-and-delete script: no waiting for the 10 s
    # lease, only for a follower's next try (every 2 s).
    assert took < 2 + SLACK, f"takeover after a clean stop took {took:.2f} s"
    assert r.command("GET", leader.sections["redis"]["key_prefix"] + "lease") != token


def test_webhook_to_one_gateway_reaches_sse_clients_of_another(simulator, gateway, redis):
    r = redis()
    sim = simulator("--sessions", "default:WORKING")
    gws = fleet(gateway, sim, r.url, sessions="default",
                extra={"backend": {"status_cache_duration": 30000,
                                   "session_cache_duration": 30000},
                       "webhook": {"safety_interval": 60000}})
    one_leader(gws)
    for g in gws:
        assert settles(g, "WORKING"), g.status()
    streams = [Stream(g.port) for g in gws]
    try:
        for s in streams:
            assert s.wait_for(lambda e: e[2].get("status") == "WORKING", 10), s.events()
        # WAHA delivers to whichever gateway the load balancer picks.
        sim.set_session("default", "STOPPED")
        hook = encode(envelope("default", "STOPPED"))
        code, _, body = gws[2].request("POST", "/api/waha/webhook",
                                       {"Content-Type": "application/json"}, hook)
        assert code == 200 and json.loads(body) == {"result": "applied"}, body
        for s in streams:
            assert s.wait_for(lambda e: e[2].get("status") == "STOPPED", 3 + SLACK), s.events()
        for g in gws:
            assert wait_until(lambda: g.status()["status"] == "STOPPED", 3 + SLACK, 0.05)

        # WAHA retries the same envelope at another gateway: applied once.
        def retried(g):
            code, _, body = g.request("POST", "/api/waha/webhook",
                                      {"Content-Type": "application/json"}, hook)
            return code, json.loads(body)
        changed_at = gws[0].status()["changedAt"]
        assert retried(gws[0]) == (200, {"result": "duplicate"})
        assert retried(gws[1]) == (200, {"result": "duplicate"})
        assert gws[0].status()["changedAt"] == changed_at
    finally:
        for s in streams:
            s.close()


def test_only_the_leader_holds_wahas_stream(simulator, gateway, redis):
    """Issue 18: with upstream.events = auto, the leader alone keeps a
    WebSocket to WAHA; what it brings reaches every gateway as shared
    entries; when the leader dies, the new leader opens the one stream."""
    r = redis()
    sim = simulator("--sessions", "default:WORKING")
    gws = fleet(gateway, sim, r.url, sessions="default",
                extra={"upstream": {"events": "auto"},
                       "backend": {"status_cache_duration": 30000,
                                   "session_cache_duration": 30000},
                       "webhook": {"safety_interval": 60000}})
    leader = one_leader(gws)
    ws = lambda: sim.control("GET", "/_sim/ws")  # noqa: E731
    assert wait_until(lambda: ws()["connections"] == 1, 10 + SLACK, 0.05), ws()
    assert wait_until(lambda: leader.json("/api/waha/monitoring/stats")["events"] == "connected",
                      10 + SLACK, 0.05)
    for g in gws:
        assert settles(g, "WORKING"), g.status()
    sim.set_session("default", "STOPPED")  # one frame, to the leader's stream
    # (with 30 s periods and no webhook, only the frame brings it this soon)
    for g in gws:
        assert wait_until(lambda: g.status()["status"] == "STOPPED", 3 + SLACK, 0.05), g.status()
        received = re.search(r"^wahagate_upstream_events_total (\d+)$",
                             g.get("/metrics")[2].decode(), re.M)
        assert received and int(received.group(1)) == (1 if g is leader else 0), received
    # One stream open; the followers hold none. (A slow build can see the
    # lease change hands while the fleet starts, and a stream closed with it.)
    stats = ws()
    assert stats["connections"] == 1, stats
    for g in gws:
        if g is not leader:
            assert g.json("/api/waha/monitoring/stats")["events"] != "connected"

    kill_gateway(leader)
    rest = [g for g in gws if g is not leader]
    assert wait_until(lambda: "leader" in roles(rest), LOCK_TTL / 1000 + 5 + SLACK, 0.02)
    assert wait_until(lambda: ws()["connectsTotal"] > stats["connectsTotal"] and
                      ws()["connections"] == 1, 10 + SLACK, 0.05), ws()
    sim.set_session("default", "WORKING")
    for g in rest:
        assert wait_until(lambda: g.status()["status"] == "WORKING", 3 + SLACK, 0.05), g.status()
    assert ws()["connections"] == 1, ws()


def test_a_new_gateway_loads_the_fleet_entries_first(simulator, gateway, redis, tmp_path):
    r = redis()
    sim = simulator("--sessions", "default:WORKING")
    gws = fleet(gateway, sim, r.url, sessions="default")
    one_leader(gws)
    first = gws[0].status()
    assert first["status"] == "WORKING"
    # A gateway that cannot reach WAHA at all, through the unix socket:
    # as a follower it serves what the fleet has, from its first request.
    late = gateway(None, {"upstream": {"sessions": "default"},
                          "redis": {"url": "unix:" + r.unix_path,
                                    "key_prefix": gws[0].sections["redis"]["key_prefix"],
                                    "lock_ttl": LOCK_TTL}},
                   upstream_url=f"http://127.0.0.1:{free_port()}")
    assert wait_until(lambda: role(late) == "follower", 5 + SLACK, 0.05), role(late)
    d = late.status()
    assert d["status"] == "WORKING" and d["cache"]["fetchedAt"] >= first["cache"]["fetchedAt"], d


def test_older_records_never_replace_fresher_ones(simulator, gateway, redis):
    r = redis()
    sim = simulator("--sessions", "default:WORKING")
    gws = fleet(gateway, sim, r.url, count=1, sessions="default",
                extra={"backend": {"status_cache_duration": 30000,
                                   "session_cache_duration": 30000}})
    gw = gws[0]
    one_leader(gws)
    d = gw.status()
    assert d["status"] == "WORKING"
    prefix = gw.sections["redis"]["key_prefix"]
    assert wait_until(lambda: r.command("HGET", prefix + "entries", "default"), 3 + SLACK, 0.02)
    record = json.loads(r.command("HGET", prefix + "entries", "default"))
    assert record["status"] == "WORKING" and record["kind"] == "session", record

    # Another gateway's record, fetched before ours: ignored. (Garbage
    # after it, on the same channel, shows when it has been handled.)
    old = dict(record, origin="elsewhere", status="FAILED", rawStatus="FAILED",
               fetchedAt=record["fetchedAt"] - 60000)
    assert r.command("PUBLISH", prefix + "changes", json.dumps(old)) == 1
    assert r.command("PUBLISH", prefix + "changes", "{not json") == 1
    assert wait_until(lambda: "ignored a record from Redis" in gw.log_text(), 3 + SLACK, 0.02)
    after = gw.status()
    assert after["status"] == "WORKING", after
    assert after["cache"]["fetchedAt"] == d["cache"]["fetchedAt"], (d, after)
    # A newer one is taken, so the check above could have failed.
    new = dict(record, origin="elsewhere", status="STOPPED", rawStatus="STOPPED",
               fetchedAt=int(time.time() * 1000), changedAt=int(time.time() * 1000))
    assert r.command("PUBLISH", prefix + "changes", json.dumps(new)) == 1
    assert wait_until(lambda: gw.status()["status"] == "STOPPED", 3 + SLACK, 0.05), gw.status()
    # A record with a name WAHA would refuse changes nothing.
    assert r.command("PUBLISH", prefix + "changes",
                     json.dumps(dict(new, name="../x", status="FAILED"))) == 1
    assert r.command("PUBLISH", prefix + "changes", "[]") == 1
    assert wait_until(lambda: gw.log_text().count("ignored a record from Redis") >= 2, 3, 0.02)
    assert gw.status()["status"] == "STOPPED"


def test_without_redis_each_gateway_fetches_alone_then_rejoins(simulator, gateway, redis):
    r = redis()
    sim = simulator("--sessions", "default:WORKING")
    gws = fleet(gateway, sim, r.url, sessions="default")
    one_leader(gws)
    port = r.port

    r.stop()
    assert wait_until(lambda: roles(gws) == ["unreachable"] * 3, 5 + SLACK, 0.05), roles(gws)
    for g in gws:
        metrics = g.get("/metrics")[2].decode()
        assert 'wahagate_redis_state{state="unreachable"} 1' in metrics, metrics
    # Every gateway keeps serving, and follows WAHA on its own.
    sim.set_session("default", "STOPPED")
    for g in gws:
        assert wait_until(lambda: g.status()["status"] == "STOPPED", 5 + SLACK, 0.05), g.status()
    sim.reset()

    def each_fetches():  # while read: refresh is demand-driven
        for g in gws:
            g.status()
        return (all(g.json("/api/waha/monitoring/stats")["apiCalls"] > 0 for g in gws)
                and sim.stats()["calls"].get(SESSION_CALL, 0) >= 3)
    assert wait_until(each_fetches, 5 + SLACK, 0.1), sim.stats()
    # Reconnects are tried every second; the outage is logged once.
    for g in gws:
        assert wait_until(lambda: "is unreachable" in g.log_text(), 5 + SLACK, 0.05), g.log_text()
    time.sleep(2.5)  # let a few reconnect attempts fail (what is measured here)
    for g in gws:
        assert g.log_text().count("is unreachable") == 1, g.log_text()

    r2 = redis(port)
    leader = one_leader(gws, timeout=10 + SLACK)
    sim.reset()
    sim.set_session("default", "WORKING")
    for g in gws:
        assert wait_until(lambda: g.status()["status"] == "WORKING", 5 + SLACK, 0.05), g.status()
    time.sleep(1.0)
    calls = {g.port: g.json("/api/waha/monitoring/stats")["apiCalls"] for g in gws}
    time.sleep(2.0)
    after = {g.port: g.json("/api/waha/monitoring/stats")["apiCalls"] for g in gws}
    for g in gws:
        if g is not leader:
            assert after[g.port] == calls[g.port], (calls, after)
    assert r2.command("HGET", gws[0].sections["redis"]["key_prefix"] + "entries", "default")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://", "redis://:pw@:6379/0",
                                 "unix:"])
def test_bad_redis_url_is_a_config_error(gateway, url):
    gw = gateway(None, {"redis": {"url": url}}, start=False)
    gw.start(wait=False)
    assert gw.proc.wait(timeout=10) != 0
    text = gw.log_text()
    assert "redis" in text and "url" in text and gw.ini_path.split("/")[-1] in text, text


def test_password_is_used_and_never_logged(simulator, gateway, redis):
    secret = "s3cret-Redis-pw"
    r = redis(password=secret)
    sim = simulator("--sessions", "default:WORKING")
    good = fleet(gateway, sim, f"redis://:{secret}@127.0.0.1:{r.port}/2", count=1,
                 sessions="default", extra={"log": {"level": "debug"}})[0]
    bad = gateway(sim, {"upstream": {"sessions": "default"},
                        "redis": {"url": f"redis://:wrong@127.0.0.1:{r.port}/0",
                                  "key_prefix": good.sections["redis"]["key_prefix"]}})
    one_leader([good])
    assert good.status()["status"] == "WORKING"
    entries = good.sections["redis"]["key_prefix"] + "entries"
    assert wait_until(lambda: r.command("HGET", entries, "default", db=2), 3 + SLACK, 0.02)
    assert r.command("EXISTS", entries) == 0  # database 0: the bad one never wrote
    # A wrong password: said once, and the gateway works on its own.
    assert wait_until(lambda: "refused the password" in bad.log_text(), 5 + SLACK, 0.05)
    assert role(bad) == "unreachable"
    assert bad.status()["status"] == "WORKING"
    time.sleep(2.5)  # a few more reconnects, refused too (what is measured)
    assert bad.log_text().count("refused the password") == 1, bad.log_text()
    assert role(bad) == "unreachable"
    for g in (good, bad):
        assert secret not in g.log_text() and ":wrong@" not in g.log_text(), g.log_text()
