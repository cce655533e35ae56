"""Running like a production daemon (issue 6): workers scale with load, killed
children are replaced, a process killed inside the region's critical section
leaves nothing torn behind, a child that keeps dying at start is respawned
with a growing delay, SIGHUP reloads under load, and the children drop root.

The crash tests use the test build (FAULTS_BIN, make faults): it kills itself
with SIGKILL at fault_point("NAME") when the file named by WG_FAULT_FILE holds
NAME, which no signal sent from outside could hit reliably."""

import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import time

import pytest

from conftest import (FAULTS_BIN, ISO_MS_RE, SANITIZED, SHM_PREFIX, http_request, proc_exists,
                      run_gateway_cli, server_connections, wait_until)

SLACK = 3.0 if SANITIZED else 1.0
ME = {"id": "49111222333@c.us", "pushName": "Daemon"}
HOOK_KEY = "daemon-hook-secret"
# Tests that count on two workers keep them: a gateway quiet for 10 s would
# otherwise retire one (min_workers defaults to 1).
TWO_WORKERS = {"workers": 2, "min_workers": 2}


def log_lines(gw, since=0):
    return gw.log_text().splitlines()[since:]


def log_has(gw, pattern, since=0):
    """The first log line (from line SINCE on) matching PATTERN, or None."""
    rx = re.compile(pattern)
    return next((line for line in log_lines(gw, since) if rx.search(line)), None)


def wait_log(gw, pattern, since=0, timeout=10):
    """log_has() once it finds the line (another process writes it, in its
    own time), or None after TIMEOUT seconds."""
    return wait_until(lambda: log_has(gw, pattern, since), timeout, 0.02)


def wait_metric(gw, name, predicate, timeout=5):
    """Wait until predicate(value of the metric NAME) holds: True if it did."""
    return wait_until(lambda: predicate(metric(gw.get("/metrics")[2].decode(), name)),
                      timeout, 0.05)


def metric(text, name):
    """Value of the sample NAME (with its labels) in a Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in the metrics:\n{text[:3000]}")


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def whole_status(doc, status, me):
    """An answer is whole: every field of the status object, consistent."""
    assert doc["session"] == "default", doc
    assert doc["status"] == status and doc["rawStatus"] == status, doc
    assert doc["authenticated"] is (status == "WORKING"), doc
    assert doc["me"] == me, doc
    assert doc["upstream"]["healthy"] is True and doc["upstream"]["lastError"] is None, doc
    assert doc["cache"]["source"] in ("poll", "webhook"), doc
    assert ISO_MS_RE.match(doc["cache"]["fetchedAt"]), doc
    assert ISO_MS_RE.match(doc["upstream"]["lastSuccessAt"]), doc


def fault_gateway(simulator, gateway, tmp_path, timeout_ms, **sections):
    """A simulator whose session is WORKING and a gateway of the test build
    with fault points (FAULTS_BIN), armed through the file it returns (write
    a point's name into it): (sim, gw, fault)."""
    assert os.path.exists(FAULTS_BIN), (f"FAULTS_BIN {FAULTS_BIN} does not exist: "
                                        "run make faults (the Makefile's integration target does)")
    sim = simulator()
    sim.set_session("default", "WORKING", me=ME)
    fault = tmp_path / "fault"
    gw = gateway(sim, {"server": TWO_WORKERS, "limits": {"request_timeout": timeout_ms},
                       **sections},
                 binary=FAULTS_BIN, env_extra={"WG_FAULT_FILE": str(fault)})
    return sim, gw, fault


# --------------------------------------------------------------------------- scaling

def test_scaling_up_under_load_and_down_when_quiet(simulator, gateway, poller, keepalive_client,
                                                   load_clients):
    """The load is requests on fresh connections from three other processes
    (one Python process cannot keep even one worker busy, and connections
    waiting in the listen queue are one of the two signals the master scales
    by). Meanwhile a poller on fresh connections and browser-like keep-alive
    clients (which retry a request only when their idle connection was
    closed under them, as HTTP clients do; see KeepAliveClient) must get 200
    every time, through the scale-up and the retirement of a worker, which
    holds keep-alive connections of its own when it is told to stop."""
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 1, "min_workers": 1, "max_workers": 3}})
    assert gw.status()["status"] == "WORKING"
    first = gw.wait_children("worker", 1)
    assert len(first) == 1, gw.child_pids("worker")
    assert gw.json("/api/waha/monitoring/stats")["workers"] == {"count": 1, "min": 1, "max": 3}
    start_line = len(log_lines(gw))
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    clients = [keepalive_client(gw.port, path="/api/waha/status")]
    load = load_clients(gw.port, processes=3, threads=4,
                        paths=("/api/waha/status", "/api/waha/sessions/default", "/metrics"))
    t_load = time.monotonic()
    # Three busy one-second samples in a row add a worker; give it time.
    up = wait_until(lambda: log_has(gw, r"master: scaling up to 2 workers", start_line), 45, 0.05)
    load_seconds = time.monotonic() - t_load
    results = load.stop()
    t_quiet = time.monotonic()
    assert up, f"no scale-up after {load_seconds:.0f} s of load:\n" + "\n".join(log_lines(gw)[-30:])
    two = wait_until(lambda: (lambda w: w if len(w) == 2 else None)(gw.child_pids("worker")), 10)
    assert two and first[0] in two, (first, gw.child_pids("worker"))
    # The master publishes the count in its own time.
    assert wait_until(lambda: gw.json("/api/waha/monitoring/stats")["workers"]["count"] == 2, 5), \
        gw.json("/api/waha/monitoring/stats")["workers"]
    assert wait_metric(gw, 'wahagate_scaling_total{direction="up"}', lambda v: v >= 1)
    assert wait_metric(gw, "wahagate_workers", lambda v: v == 2)
    assert results["errorCount"] == 0, results["errors"]
    assert set(results["statuses"]) == {"200"}, results
    assert results["requests"] > 1000, results

    # More keep-alive clients, until each worker holds at least one of them.
    def holder(client):
        held = server_connections(gw.port, two)
        return next((pid for pid, ports in held.items() if client.local_port in ports), None)
    # They come in bursts: a worker takes one connection per wakeup, so a
    # burst wakes both, where one connection at a time may always find the
    # same worker idle first.
    owners = {}
    for _ in range(5):
        burst = [keepalive_client(gw.port, path="/api/waha/status") for _ in range(6)]
        clients.extend(burst)
        for c in burst:
            owner = wait_until(lambda: holder(c), 5)
            assert owner, "a keep-alive connection that no worker holds"
            owners[c] = owner
        if set(owners.values()) == set(two):
            break
    assert set(owners.values()) == set(two), owners

    # Quiet (only the poller and the keep-alive clients): one worker retires.
    down = wait_until(lambda: log_has(gw, r"master: scaling down to 1 workers", start_line),
                      40, 0.1)
    assert down, "no scale-down when quiet:\n" + "\n".join(log_lines(gw)[-30:])
    quiet_for = time.monotonic() - t_quiet
    assert quiet_for >= 8, f"scaled down {quiet_for:.1f} s after the load stopped: {down}"
    retired = int(re.search(r"worker (\d+) finishes its work", down).group(1))
    assert retired in two, (down, two)
    assert wait_until(lambda: not proc_exists(retired), 10), f"worker {retired} did not stop"
    one = gw.child_pids("worker")
    assert len(one) == 1 and retired not in one, (retired, one)
    assert wait_until(lambda: gw.json("/api/waha/monitoring/stats")["workers"]["count"] == 1, 5)
    assert wait_metric(gw, 'wahagate_scaling_total{direction="down"}', lambda v: v >= 1)
    # Keep polling a little after the retirement, then count.
    t_end = time.monotonic()
    assert p.wait_for(lambda st, d: True, 5, since=t_end + 1)
    polled = p.stop()
    bad = [r for r in polled if r[2] != 200]
    assert not bad, f"{len(bad)} of {len(polled)} polls failed: {bad[:5]}"
    for c in clients:
        kept = c.stop()
        failed = [r for r in kept if r[2] != 200]
        assert not failed, (f"{len(failed)} of {len(kept)} keep-alive requests failed "
                            f"(idle closes {c.idle_closes}, retries {c.retries}): {failed[:5]}")
        assert len(kept) >= 5, kept
        if owners.get(c) == retired:
            # Its worker let it go (Connection: close, or closed while idle): it reconnected.
            assert c.connections >= 2, (c.connections, c.idle_closes, kept[-5:])
    assert gw.status()["status"] == "WORKING"


# --------------------------------------------------------------------------- kill -9

def test_kill_9_worker_while_clients_poll(simulator, gateway, poller):
    sim = simulator()
    gw = gateway(sim, {"server": TWO_WORKERS})
    assert gw.status()["status"] == "WORKING"
    before = gw.wait_children("worker", 2)
    assert len(before) == 2, gw.child_pids("worker")
    pollers = [poller(gw.port, "/api/waha/status", interval=0.02) for _ in range(4)]
    assert all(p.wait_for(lambda st, d: st == 200, 10) for p in pollers)
    gw.expect_child_deaths = True
    victim = before[0]
    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: not proc_exists(victim), 5, 0.005)
    t_dead = time.monotonic()
    now = wait_until(lambda: (lambda w: w if len(w) == 2 and victim not in w else None)(
        gw.child_pids("worker")), 10, 0.01)
    assert now, f"worker not replaced: {gw.child_pids('worker')}\n{gw.log_text()[-2000:]}"
    t_replaced = time.monotonic()
    assert wait_log(gw, rf"master: worker {victim} was killed by signal 9"), gw.log_text()[-2000:]
    for p in pollers:
        assert p.wait_for(lambda st, d: st == 200, 10, since=t_replaced + 0.5)
    results = [r for p in pollers for r in p.stop()]
    # Only a request the killed worker had accepted may fail: one per client at most.
    failed = [r for r in results if r[2] != 200]
    assert all(r[0] <= t_dead and r[1] >= t_kill for r in failed), \
        (t_kill, t_dead, failed[:5])
    assert len(failed) <= len(pollers), failed
    after = [r for r in results if r[0] > t_replaced]
    assert len(after) >= 20 and all(r[2] == 200 for r in after), after[:5]


def test_kill_9_fetcher_while_clients_poll(simulator, gateway, poller):
    sim = simulator()
    gw = gateway(sim, {"server": TWO_WORKERS})
    pollers = [poller(gw.port, "/api/waha/status", interval=0.02) for _ in range(3)]
    assert all(p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING", 10)
               for p in pollers)
    old = gw.wait_children("fetcher", 1)
    assert len(old) == 1, gw.child_pids("fetcher")
    gw.expect_child_deaths = True
    os.kill(old[0], signal.SIGKILL)
    new = wait_until(lambda: (lambda f: f if len(f) == 1 and f != old else None)(
        gw.child_pids("fetcher")), 10, 0.01)
    assert new, f"fetcher not replaced\n{gw.log_text()[-2000:]}"
    assert wait_log(gw, rf"master: fetcher {old[0]} was killed by signal 9"), gw.log_text()[-2000:]
    # The replacement keeps refreshing: WAHA sees calls again, and a change shows.
    n0 = sim.session_calls()
    assert wait_until(lambda: sim.session_calls() >= n0 + 3, 3 * (1 + SLACK), 0.05), \
        (n0, sim.session_calls())
    t0 = time.monotonic()
    sim.set_session("default", "STOPPED")
    for p in pollers:
        hit = p.wait_for(lambda st, d: st == 200 and d["status"] == "STOPPED", 1 + 1 + 2 * SLACK,
                         since=t0)
        assert hit and hit[3]["cache"]["stale"] is False, p.latest()
    results = [r for p in pollers for r in p.stop()]
    # The workers answer from the region: not one request failed.
    bad = [r for r in results if r[2] != 200]
    assert not bad, f"{len(bad)} of {len(results)} failed: {bad[:5]}"


# --------------------------------------------------------------------------- killed in the lock

def test_fetcher_killed_holding_the_lock(simulator, gateway, poller, tmp_path):
    sim, gw, fault = fault_gateway(simulator, gateway, tmp_path, 3000)
    gw.expect_child_deaths = True
    fetcher = gw.wait_children("fetcher", 1)
    assert len(fetcher) == 1, gw.child_pids("fetcher")
    cfg = poller(gw.port, "/api/waha/config", interval=0.05)
    fault.write_text("store_session\n")
    t0 = time.monotonic()
    # A cold read: the fetcher calls WAHA and stores the answer, and dies there.
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert wait_until(lambda: not fault.exists() and not proc_exists(fetcher[0]), 10), \
        f"the fetcher did not die at store_session\n{gw.log_text()}"
    # Two lines, of two processes: the repair (whoever takes the lock next)
    # and the master's when it reaps the fetcher, in either order.
    repair = wait_log(gw,
                      rf"region lock was held by pid {fetcher[0]}, which died; [1-9]\d* torn entr")
    assert repair, gw.log_text()
    assert wait_log(gw, rf"master: fetcher {fetcher[0]} was killed by signal 9"), gw.log_text()
    # The workers answer meanwhile, without the lock.
    code, _, body = gw.get("/api/waha/config", timeout=5)
    assert code == 200, body
    new = wait_until(lambda: (lambda f: f if len(f) == 1 and f != fetcher else None)(
        gw.child_pids("fetcher")), 10)
    assert new, gw.log_text()
    first = p.wait_for(lambda st, d: st == 200, 3 + 2 * SLACK, since=t0)
    assert first, f"no answer with data; last {p.latest()}\n{gw.log_text()}"
    # The first answer with data is whole and what WAHA says.
    whole_status(first[3], "WORKING", ME)
    assert first[3]["cache"]["stale"] is False, first
    t_first = first[0]
    assert p.wait_for(lambda st, d: True, 5, since=time.monotonic() + 0.5)
    results = p.stop()
    for r in results:
        assert r[4] is None, r
        assert r[1] - r[0] <= 3 + SLACK, f"a request waited {r[1] - r[0]:.1f} s: {r}"
        if r[2] == 200:
            whole_status(r[3], "WORKING", ME)
        else:
            # Before the first data only: 503 with a JSON error.
            assert r[2] == 503 and r[0] <= t_first and set(r[3]) == {"error"}, r
    code, _, body = gw.get("/api/waha/sessions/default")
    assert code == 200, body
    doc = json.loads(body)
    assert doc["name"] == "default" and doc["status"] == "WORKING" and doc["me"] == ME, doc
    assert gw.child_pids("fetcher") == new
    answered_fast(cfg.stop())


def test_fetcher_killed_holding_the_lock_during_a_refresh(simulator, gateway, poller, tmp_path):
    """Warm data this time: the fetcher dies storing a refresh. The entry it
    was writing is discarded and fetched again, slowly (WAHA takes 0.8 s):
    meanwhile readers wait for that fetch as for any cold read. None is told
    there is no data, none gets a torn answer."""
    sim, gw, fault = fault_gateway(simulator, gateway, tmp_path, 4000)
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING", 10)
    fetcher = gw.wait_children("fetcher", 1)
    assert len(fetcher) == 1, gw.child_pids("fetcher")
    gw.expect_child_deaths = True
    sim.fault("slow", delayMs=800, paths="/api/sessions")
    t_armed = time.monotonic()
    fault.write_text("store_session\n")
    # The next refresh (status_cache_duration is 1 s) ends there.
    assert wait_until(lambda: not fault.exists() and not proc_exists(fetcher[0]), 5 + SLACK), \
        f"the fetcher did not die at store_session\n{gw.log_text()}"
    assert wait_until(lambda: log_has(
        gw, rf"region lock was held by pid {fetcher[0]}, which died; [1-9]\d* torn entr"), 10), \
        gw.log_text()
    new = gw.wait_children("fetcher", 1)
    assert new and new != fetcher, gw.log_text()
    # Past the fetch that follows the repair, and some more polls.
    assert p.wait_for(lambda st, d: True, 5 + SLACK, since=time.monotonic() + 2.0)
    results = p.stop()
    bad = [r for r in results if r[2] != 200]
    assert not bad, (f"{len(bad)} of {len(results)} polls answered {bad[0][2]} "
                     f"{bad[0][3] or bad[0][4]} from {bad[0][0] - t_armed:.3f} s to "
                     f"{bad[-1][1] - t_armed:.3f} s after the fault was armed, while the "
                     f"discarded entry was fetched again")
    for r in results:
        whole_status(r[3], "WORKING", ME)
    assert gw.child_pids("fetcher") == new


def answered_fast(results):
    """Every request of a poller of /api/waha/config (no data needed) was
    answered 200, without waiting on the lock or the fetcher (the bound is
    loose for a busy machine; a worker stuck on the lock would not answer)."""
    assert len(results) >= 5, results
    slow_or_bad = [r for r in results if r[2] != 200 or r[1] - r[0] > 2 + 2 * SLACK]
    assert not slow_or_bad, slow_or_bad[:5]


def sign(body):
    return hmac.new(HOOK_KEY.encode(), body, hashlib.sha512).hexdigest()


def status_envelope(status):
    now = int(time.time() * 1000)
    return json.dumps({
        "id": "evt_" + os.urandom(13).hex(), "timestamp": now, "event": "session.status",
        "session": "default", "me": None, "engine": "WEBJS",
        "payload": {"name": "default", "status": status,
                    "statuses": [{"status": status, "timestamp": now}]},
    }, separators=(",", ":")).encode()


def test_worker_killed_holding_the_lock_while_applying_a_webhook(simulator, gateway, poller,
                                                                 tmp_path):
    """The entry the dead worker was writing is discarded and fetched again
    from WAHA, which is slow here (1 s): meanwhile readers wait for that
    fetch as for any cold read, and get the new data; none is told there
    is no data, and none gets a torn answer."""
    sim, gw, fault = fault_gateway(simulator, gateway, tmp_path, 4000,
                                   webhook={"hmac_key": HOOK_KEY})
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING", 10)
    workers = gw.wait_children("worker", 2)
    assert len(workers) == 2, gw.child_pids("worker")
    gw.expect_child_deaths = True
    # WAHA's truth changes, and it says so by webhook; the worker that
    # applies it dies half-way.
    sim.set_session("default", "STOPPED", me=None)
    sim.fault("slow", delayMs=1000, paths="/api/sessions")
    body = status_envelope("STOPPED")
    headers = {"Content-Type": "application/json", "X-Webhook-Hmac": sign(body),
               "X-Webhook-Hmac-Algorithm": "sha512"}
    fault.write_text("store_webhook\n")
    t_post = time.monotonic()
    try:
        outcome = http_request(gw.port, "POST", "/api/waha/webhook", headers, body, timeout=10)
    except (OSError, http.client.HTTPException) as exc:
        outcome = exc
    t_answer = time.monotonic()
    assert not fault.exists(), "no worker reached store_webhook"
    assert isinstance(outcome, Exception), f"the webhook was answered: {outcome}"
    dead = wait_until(lambda: [w for w in workers if not proc_exists(w)], 5)
    assert len(dead) == 1, (workers, dead)
    t_dead = time.monotonic()
    assert wait_until(lambda: (lambda w: len(w) == 2 and dead[0] not in w)(gw.child_pids("worker")),
                      10), gw.log_text()
    assert wait_log(gw, rf"master: worker {dead[0]} was killed by signal 9"), gw.log_text()
    # Another process repairs what it left: the entry is discarded and refetched.
    repair = wait_until(lambda: log_has(
        gw, rf"region lock was held by pid {dead[0]}, which died; [1-9]\d* torn entr"), 10)
    assert repair, gw.log_text()
    hit = p.wait_for(lambda st, d: st == 200 and d["status"] == "STOPPED", 6 + SLACK, since=t_post)
    assert hit, f"never STOPPED; last {p.latest()}\n{gw.log_text()}"
    whole_status(hit[3], "STOPPED", None)
    # WAHA delivers again what got no answer: accepted, and the status holds.
    code, _, answer = http_request(gw.port, "POST", "/api/waha/webhook", headers, body)
    assert code == 200, answer
    assert json.loads(answer)["result"] in ("applied", "duplicate"), answer
    assert p.wait_for(lambda st, d: True, 5, since=time.monotonic() + 0.5)
    results = p.stop()
    t_stopped = hit[0]
    for r in results:
        if r[0] >= t_stopped:
            assert r[2] == 200, r
            whole_status(r[3], "STOPPED", None)
        elif r[2] == 200:
            assert r[3]["status"] in ("WORKING", "STOPPED"), r
            whole_status(r[3], r[3]["status"], ME if r[3]["status"] == "WORKING" else None)
        else:
            assert r[2] is None, (
                f"answered {r[2]} {r[3]} {r[0] - t_post:.3f} s after the webhook was posted, "
                f"while the discarded entry was fetched again; "
                f"{sum(1 for x in results if x[2] == 503)} polls got 503")
            # Only a poll the dying worker had accepted may go unanswered.
            assert r[0] <= t_dead and r[1] >= t_post, (r, t_post, t_answer)
    assert gw.status()["status"] == "STOPPED"


QUICK_DEATH_RE = re.compile(
    r"^(\S+) \[warn\] \d+ master: fetcher (\d+) was killed by signal 9 after ([\d.]+) s "
    r"\((\d+) quick deaths? in a row\); starting a new one in ([\d.]+) s")


def log_time(stamp):
    import calendar
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + int(stamp[20:23]) / 1e3


def test_crash_loop_is_respawned_with_growing_delay(simulator, gateway, poller, tmp_path):
    """A fetcher that dies at start, again and again: each one dies at its
    first store, which a reader makes happen at once (the fault point is
    armed again each time it fired, ARMS times in all). The master must
    space the restarts: 0.1 s, 0.2 s, 0.4 s, ... and say why."""
    arms = 5
    sim, gw, fault = fault_gateway(simulator, gateway, tmp_path, 3000)
    gw.expect_child_deaths = True
    cfg = poller(gw.port, "/api/waha/config", interval=0.05)
    fault.write_text("store_session\n")
    armed = 1
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    deadline = time.monotonic() + 30 + 10 * SLACK
    while time.monotonic() < deadline:
        if not fault.exists():
            if armed == arms:
                break
            fault.write_text("store_session\n")
            armed += 1
        time.sleep(0.005)
    assert armed == arms and not fault.exists(), f"armed {armed}, fired {armed - fault.exists()}"

    def deaths():
        return [line for line in log_lines(gw)
                if re.search(r"master: fetcher \d+ was killed", line)]
    assert wait_until(lambda: len(deaths()) == arms, 10), gw.log_text()
    quick = [m for m in map(QUICK_DEATH_RE.match, deaths()) if m]
    assert len(quick) >= arms - 1, gw.log_text()
    counts = [int(m.group(4)) for m in quick]
    delays = [float(m.group(5)) for m in quick]
    # Every quick death doubles the delay: 0.1 s, 0.2 s, 0.4 s, ...
    for c, d in zip(counts, delays):
        assert d == pytest.approx(min(0.1 * 2 ** (c - 1), 30.0)), (c, d, quick)
    # Each fetcher died well within 2 s of its start: one run of quick deaths.
    assert counts == list(range(1, len(counts) + 1)), (counts, gw.log_text())
    # And the master really waited that long before the next start.
    for a, b in zip(quick, quick[1:]):
        if int(b.group(4)) == int(a.group(4)) + 1:
            gap = log_time(b.group(1)) - log_time(a.group(1))
            assert gap >= float(a.group(5)) - 0.005, (gap, a.group(0), b.group(0))
    # Disarmed: the last one lives, and the data becomes fresh.
    fetcher = wait_until(lambda: gw.child_pids("fetcher"), 5)
    hit = p.wait_for(lambda st, d: st == 200 and d["cache"]["stale"] is False, 5 + 2 * SLACK,
                     since=time.monotonic())
    assert hit, f"no fresh data after the crash loop; last {p.latest()}\n{gw.log_text()[-3000:]}"
    whole_status(hit[3], "WORKING", ME)
    assert gw.child_pids("fetcher") == fetcher
    results = p.stop()
    # The workers answered all along: data, or 503 while there was none.
    for r in results:
        assert r[4] is None and r[2] in (200, 503), r
        assert r[1] - r[0] <= 3 + SLACK, r
        if r[2] == 200:
            whole_status(r[3], "WORKING", ME)
        else:
            assert set(r[3]) == {"error"}, r
    answered_fast(cfg.stop())


def test_unknown_server_user_is_a_config_error(simulator, gateway):
    """A server.user that does not exist would let the master bind its
    sockets and then every child fail at start: refused at load instead,
    by -t and by the daemon, naming file, line and key."""
    sim = simulator()
    user = f"wgtest-no-user-{os.getpid()}"
    gw = gateway(sim, {"server": {"workers": 1, "user": user}}, start=False)
    code, out, err = run_gateway_cli(["-t", "-c", gw.ini_path])
    assert code != 0, (out, err)
    want = re.compile(re.escape(gw.ini_path) + r":\d+: \[server\] user: user \"" +
                      re.escape(user) + r"\" does not exist")
    assert want.search(out + err), (out, err)
    gw.start(wait=False)
    assert gw.proc.wait(timeout=10) != 0
    assert want.search(gw.log_text()), gw.log_text()
    assert not gw.shm_exists()


# --------------------------------------------------------------------------- SIGHUP under load

def test_sighup_under_load(simulator, gateway, poller):
    sim = simulator()
    gw = gateway(sim, {"server": TWO_WORKERS, "frontend": {"base_interval": 4321}})
    pollers = [poller(gw.port, "/api/waha/status", interval=0.02) for _ in range(3)]
    config = poller(gw.port, "/api/waha/config", interval=0.02)
    assert all(p.wait_for(lambda st, d: st == 200, 10) for p in pollers + [config])
    good = open(gw.ini_path).read()
    assert "base_interval = 4321" in good

    # (a) a good, changed file: a new generation of children.
    workers, fetcher = gw.wait_children("worker", 2), gw.wait_children("fetcher", 1)
    assert len(workers) == 2 and len(fetcher) == 1, (workers, fetcher)
    mark = len(log_lines(gw))
    with open(gw.ini_path, "w") as f:
        f.write(good.replace("base_interval = 4321", "base_interval = 5432"))
    t_hup = time.monotonic()
    os.kill(gw.pid, signal.SIGHUP)
    hit = config.wait_for(lambda st, d: st == 200 and d["baseInterval"] == 5432, 5 + SLACK,
                          since=t_hup)
    assert hit, f"not applied; last {config.latest()}\n{gw.log_text()[-2000:]}"
    assert wait_until(lambda: not any(proc_exists(w) for w in workers + fetcher), 10), \
        [w for w in workers + fetcher if proc_exists(w)]
    new_workers = wait_until(lambda: (lambda w: w if len(w) == 2 else None)(
        gw.child_pids("worker")), 5)
    assert new_workers and not set(new_workers) & set(workers), (workers, new_workers)
    new_fetcher = gw.wait_children("fetcher", 1)
    assert new_fetcher and new_fetcher != fetcher, (fetcher, new_fetcher)
    assert wait_log(gw, r"master: reload: generation \d+ from ", mark), gw.log_text()[-2000:]
    t_new = time.monotonic()
    assert config.wait_for(lambda st, d: True, 5, since=t_new + 0.5)
    stale = [r for r in config.snapshot()
             if r[0] > t_new and (r[3] or {}).get("baseInterval") != 5432]
    assert not stale, stale[:3]

    # (b) a bad file: refused, the running configuration keeps serving.
    mark = len(log_lines(gw))
    with open(gw.ini_path, "a") as f:
        f.write("\n[server]\nno_such_key = 1\n")
    t_bad = time.monotonic()
    os.kill(gw.pid, signal.SIGHUP)
    assert wait_log(gw, r"keeping the running configuration", mark), gw.log_text()[-2000:]
    # The errors follow that line.
    assert wait_log(gw, r"no_such_key", mark), gw.log_text()[-2000:]
    assert config.wait_for(lambda st, d: True, 5, since=time.monotonic() + 1.0)
    assert gw.child_pids("worker") == new_workers
    changed = [r for r in config.snapshot()
               if r[0] > t_bad and (r[3] or {}).get("baseInterval") != 5432]
    assert not changed, changed[:3]

    # (c) server.shm_name needs a restart: reported, ignored.
    mark = len(log_lines(gw))
    other = f"/{SHM_PREFIX}reload-{os.getpid()}"
    with open(gw.ini_path, "w") as f:
        f.write(good.replace(f"shm_name = {gw.shm_name}", f"shm_name = {other}")
                .replace("base_interval = 4321", "base_interval = 6543"))
    assert f"shm_name = {other}" in open(gw.ini_path).read()
    t_shm = time.monotonic()
    os.kill(gw.pid, signal.SIGHUP)
    assert wait_until(lambda: log_has(gw, r"server\.shm_name changes only at restart", mark), 10), \
        gw.log_text()[-2000:]
    assert config.wait_for(lambda st, d: st == 200 and d["baseInterval"] == 6543, 5 + SLACK,
                           since=t_shm), config.latest()
    assert gw.shm_exists() and not os.path.exists("/dev/shm/" + other.lstrip("/"))

    results = [r for p in pollers + [config] for r in p.stop()]
    bad = [r for r in results if r[2] != 200]
    assert not bad, f"{len(bad)} of {len(results)} requests failed: {bad[:5]}"
    assert len(results) > 200, len(results)
    assert gw.status()["status"] == "WORKING"
    with open(gw.ini_path, "w") as f:
        f.write(good)
    assert gw.stop() == 0
    assert not gw.shm_exists()


# --------------------------------------------------------------------------- privileges

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs to start as root")


@needs_root
def test_children_run_as_server_user(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 2, "min_workers": 2, "user": "nobody"}})
    assert gw.status()["status"] == "WORKING"
    assert uid_of(gw.pid) == [0, 0, 0, 0]
    children = gw.wait_children("worker", 2) + gw.wait_children("fetcher", 1)
    assert len(children) == 3, children
    assert wait_until(lambda: all(uid_of(pid) == [65534] * 4 for pid in children), 5), \
        [(pid, uid_of(pid)) for pid in children]
    assert not log_has(gw, r"running as root"), gw.log_text()
    # A replacement drops privileges too.
    gw.expect_child_deaths = True
    victim = gw.child_pids("worker")[0]
    os.kill(victim, signal.SIGKILL)
    now = wait_until(lambda: (lambda w: w if len(w) == 2 and victim not in w else None)(
        gw.child_pids("worker")), 10)
    assert now, gw.log_text()
    # The master lists a child from fork() on; it drops its ids a moment later.
    assert wait_until(lambda: all(uid_of(pid) == [65534] * 4 for pid in now), 5), \
        [(pid, uid_of(pid)) for pid in now]
    for _ in range(4):
        code, _, body = gw.get("/api/waha/status")
        assert code == 200, body
    assert gw.stop() == 0
    assert not gw.shm_exists()


@needs_root
def test_root_without_server_user_warns_once(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"server": TWO_WORKERS})
    assert gw.status()["status"] == "WORKING"
    children = gw.wait_children("worker", 2) + gw.wait_children("fetcher", 1)
    assert len(children) == 3, children
    for pid in children:
        assert uid_of(pid)[0] == 0
    # Once: not again for a reload or for the children.
    os.kill(gw.pid, signal.SIGHUP)
    assert wait_until(lambda: log_has(gw, r"reload: generation"), 10), gw.log_text()
    warnings = [line for line in log_lines(gw) if "running as root" in line]
    assert len(warnings) == 1, warnings
    assert "[warn]" in warnings[0] and "master" in warnings[0] and "server.user" in warnings[0], \
        warnings
