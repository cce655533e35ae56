"""The process model: titles, respawn of workers and fetcher, graceful stop,
one instance per shm_name."""

import json
import os
import signal
import subprocess
import threading
import time

from conftest import http_request, proc_children, proc_cmdline, proc_exists, wait_until


def test_process_titles(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 3}})
    assert proc_cmdline(gw.pid).startswith("wahagate: master"), proc_cmdline(gw.pid)
    assert wait_until(lambda: len(gw.child_pids("worker")) == 3, 10), gw.child_pids("worker")
    assert gw.wait_children("fetcher", 1), gw.child_pids("fetcher")
    # Nothing else hangs off the master (a child just forked shows the
    # master's title until it sets its own).
    assert wait_until(lambda: sorted(proc_children(gw.pid)) ==
                      sorted(gw.child_pids("worker") + gw.child_pids("fetcher")), 10), \
        [(k, proc_cmdline(k)) for k in proc_children(gw.pid)]
    with open(f"/proc/{gw.child_pids('worker')[0]}/comm") as f:
        assert f.read().startswith("wahagate: ")


def test_killed_worker_is_replaced(simulator, gateway, poller):
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 2}})
    assert gw.status()["status"] == "WORKING"
    before = gw.wait_children("worker", 2)
    assert len(before) == 2, gw.child_pids("worker")
    p = poller(gw.port, "/api/waha/status", interval=0.05)
    assert p.wait_for(lambda st, d: st == 200, 10)
    victim = before[0]
    gw.expect_child_deaths = True
    os.kill(victim, signal.SIGKILL)

    def replaced():
        now = gw.child_pids("worker")
        return now if len(now) == 2 and victim not in now else None
    now = wait_until(replaced, 10, 0.05)
    assert now, f"worker not replaced: {gw.child_pids('worker')}\n{gw.log_text()}"
    t_replaced = time.monotonic()
    new = set(now) - set(before)
    assert len(new) == 1, (before, now)
    assert wait_until(lambda: len([r for r in p.snapshot() if r[0] > t_replaced]) >= 20, 10)
    results = p.stop()
    after = [r for r in results if r[0] > t_replaced]
    failed = [r for r in after if r[2] != 200]
    assert not failed, f"requests failed after the replacement: {failed[:5]}"
    assert proc_cmdline(list(new)[0]).startswith("wahagate: worker")


def test_killed_fetcher_is_replaced_and_refreshes_continue(simulator, gateway, poller):
    sim = simulator()
    gw = gateway(sim, {"backend": {"status_cache_duration": 1000, "session_cache_duration": 1000},
                       "limits": {"request_timeout": 1000}})
    p = poller(gw.port, "/api/waha/status", interval=0.1)
    assert p.wait_for(lambda st, d: st == 200 and d["status"] == "WORKING", 10)
    old = gw.wait_children("fetcher", 1)
    assert len(old) == 1, gw.child_pids("fetcher")
    gw.expect_child_deaths = True
    os.kill(old[0], signal.SIGKILL)
    new = wait_until(lambda: (lambda f: f if len(f) == 1 and f != old else None)(gw.child_pids("fetcher")),
                     10, 0.05)
    assert new, f"fetcher not replaced\n{gw.log_text()}"
    t0 = time.monotonic()
    sim.set_session("default", "STOPPED")
    hit = p.wait_for(lambda st, d: st == 200 and d["status"] == "STOPPED", 1 + 1 + 8, since=t0)
    assert hit, f"no refresh after the fetcher was replaced; last {p.latest()}"
    assert hit[3]["cache"]["stale"] is False and hit[3]["upstream"]["healthy"] is True, hit
    results = p.stop()
    bad = [r for r in results if r[2] != 200]
    assert not bad, f"non-200 answers: {bad[:5]}"


def test_sigterm_stops_everything(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"server": {"workers": 3}})
    assert gw.status()["status"] == "WORKING"
    children = gw.wait_children("worker", 3) + gw.wait_children("fetcher", 1)
    assert len(children) == 4, (gw.child_pids("worker"), gw.child_pids("fetcher"))
    assert gw.shm_exists()
    t = time.monotonic()
    code = gw.stop(timeout=5)
    took = time.monotonic() - t
    assert code == 0, f"exit code {code} after {took:.1f} s\n{gw.log_text()}"
    assert not gw.shm_exists(), "shm object left behind"
    assert wait_until(lambda: not any(proc_exists(c) for c in children), 5), \
        [(c, proc_cmdline(c)) for c in children if proc_exists(c)]
    try:
        http_request(gw.port, "GET", "/api/waha/config", timeout=2)
        raise AssertionError("still answering after SIGTERM")
    except OSError:
        pass


def test_sigterm_with_a_parked_request(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"limits": {"request_timeout": 20000}})
    sim.fault("slow", delayMs=15000, paths="/api/sessions")
    outcome = {}

    def client():
        t = time.monotonic()
        try:
            code, _, body = http_request(gw.port, "GET", "/api/waha/status", timeout=30)
            outcome["answer"] = (code, body)
        except OSError as exc:
            outcome["error"] = repr(exc)
        outcome["took"] = time.monotonic() - t

    th = threading.Thread(target=client, daemon=True)
    th.start()
    # Parked: the fetcher is in its (slow) call to WAHA.
    assert wait_until(lambda: sim.stats()["inFlight"] >= 1, 10), sim.stats()
    time.sleep(0.2)
    assert th.is_alive(), outcome
    t = time.monotonic()
    os.kill(gw.pid, signal.SIGTERM)
    try:
        code = gw.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - t
    th.join(timeout=5)
    assert not th.is_alive(), "the parked client hangs after SIGTERM"
    assert code == 0, f"exit code {code} after {took:.1f} s\n{gw.log_text()}"
    assert not gw.shm_exists()
    if "answer" in outcome:
        status, body = outcome["answer"]
        assert status in (200, 503), outcome
        if status == 503:
            assert "error" in json.loads(body)


def test_second_instance_with_same_shm_refuses(simulator, gateway):
    sim = simulator()
    first = gateway(sim)
    assert first.status()["status"] == "WORKING"
    second = gateway(sim, shm_name=first.shm_name, start=False)
    second.start(wait=False)
    try:
        code = second.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None
    assert code is not None and code != 0, f"second instance did not refuse:\n{second.log_text()}"
    log = second.log_text()
    assert first.shm_name in log or "another wahagate" in log, log
    # The first one is untouched.
    assert first.shm_exists()
    assert first.proc.poll() is None
    assert first.status()["status"] == "WORKING"
    code, _, _ = first.get("/api/waha/config")
    assert code == 200
    # Once the first stops, the same name is free again.
    assert first.stop() == 0
    third = gateway(sim, shm_name=first.shm_name)
    assert third.status()["status"] == "WORKING"
    assert third.stop() == 0
    assert not third.shm_exists()


def test_leftover_shm_of_a_killed_instance_is_reused(simulator, gateway):
    sim = simulator()
    first = gateway(sim)
    assert first.status()["status"] == "WORKING"
    children = first.wait_children("worker", 2) + first.wait_children("fetcher", 1)
    assert len(children) == 3, (first.child_pids("worker"), first.child_pids("fetcher"))
    first.expect_child_deaths = True
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert wait_until(lambda: not any(proc_exists(c) for c in children), 10)
    assert first.shm_exists()  # nobody removed it
    again = gateway(sim, shm_name=first.shm_name)
    assert again.status()["status"] == "WORKING"
    assert again.stop() == 0
    assert not again.shm_exists()


def test_sighup_with_a_bad_file_keeps_the_running_config(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"frontend": {"base_interval": 4321}})
    workers = gw.wait_children("worker", 2)
    fetcher = gw.wait_children("fetcher", 1)
    assert workers and fetcher, (gw.child_pids("worker"), gw.child_pids("fetcher"))
    good_text = open(gw.ini_path).read()
    with open(gw.ini_path, "a") as f:
        f.write("\n[server]\nno_such_key = 1\n")
    n_lines = len(gw.log_text().splitlines())
    os.kill(gw.pid, signal.SIGHUP)
    # The refusal is logged, naming the bad key.
    assert wait_until(lambda: any("no_such_key" in line
                                  for line in gw.log_text().splitlines()[n_lines:]), 10), gw.log_text()
    assert gw.proc.poll() is None
    assert gw.json("/api/waha/config")["baseInterval"] == 4321
    assert gw.status()["status"] == "WORKING"
    assert gw.child_pids("worker") == workers and gw.child_pids("fetcher") == fetcher
    with open(gw.ini_path, "w") as f:
        f.write(good_text)
    assert gw.stop() == 0


def test_sighup_applies_a_good_file(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, {"frontend": {"base_interval": 4321}})
    text = open(gw.ini_path).read()
    assert "base_interval = 4321" in text
    with open(gw.ini_path, "w") as f:
        f.write(text.replace("base_interval = 4321", "base_interval = 5432"))
    os.kill(gw.pid, signal.SIGHUP)
    got = wait_until(lambda: gw.json("/api/waha/config")["baseInterval"] == 5432, 10, 0.1)
    assert got, (f"SIGHUP did not apply the new [frontend] base_interval: "
                 f"{gw.json('/api/waha/config')}\n{gw.log_text()[-2000:]}")
    assert gw.status()["status"] == "WORKING"
    assert gw.stop() == 0


def test_sigusr1_reopens_the_log_file(simulator, gateway, tmp_path):
    sim = simulator()
    log_file = tmp_path / "wahagate.log"
    gw = gateway(sim, {"log": {"file": str(log_file), "access": True}})
    assert gw.status()["status"] == "WORKING"
    assert wait_until(lambda: log_file.exists() and "/api/waha/status" in log_file.read_text(), 10)
    rotated = tmp_path / "wahagate.log.1"
    os.rename(log_file, rotated)
    os.kill(gw.pid, signal.SIGUSR1)
    assert wait_until(log_file.exists, 10), "SIGUSR1 did not reopen the log file"

    batch = [0]

    def batch_lands_in_new_file():
        batch[0] += 1
        marker = f"reopen-{batch[0]}"
        for _ in range(10):
            assert gw.get(f"/api/waha/config?m={marker}")[0] == 200
        return wait_until(lambda: log_file.read_text().count(marker) == 10, 2)
    # Each worker reopens on its own time: wait until every access line lands
    # in the new file, then check once more that none goes to the old one.
    assert wait_until(batch_lands_in_new_file, 15, 0.05), \
        f"access lines still go to the rotated file:\n{rotated.read_text()[-2000:]}"
    old_size = rotated.stat().st_size
    for _ in range(20):
        assert gw.get("/api/waha/config?m=final")[0] == 200
    assert wait_until(lambda: log_file.read_text().count("m=final") == 20, 5), log_file.read_text()[-2000:]
    assert rotated.stat().st_size == old_size
    assert gw.stop() == 0
