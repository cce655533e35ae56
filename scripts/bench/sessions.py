#!/usr/bin/python3
"""sessions.py - the 1,000-session figures of `make bench`.

    scripts/bench/sessions.py BINARY [SESSIONS] [SECONDS] [CONNECTIONS]

Starts the WAHA simulator with SESSIONS sessions (default 1000: "default"
and s1..s999, all WORKING) and BINARY (2 workers, upstream.sessions = *,
server.max_sessions = SESSIONS, upstream.events = off: polling
alone, the costlier case) on loopback, reads every session's status
once, then runs wrk for SECONDS (10) at CONNECTIONS (64) with a Lua script
that asks for each session's /api/waha/status in turn. Prints requests/s,
p50/p99, the calls WAHA received during the run (per kind, and per period of
status_cache_duration), and the RSS of all wahagate processes. The
simulator and the gateway are stopped by pid at the end.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PERIOD_MS = 10000  # backend.status_cache_duration's default

LUA = """
counter = 0
request = function()
  counter = counter + 1
  local i = counter % SESSIONS
  local name = "s" .. i
  if i == 0 then name = "default" end
  return wrk.format("GET", "/api/waha/status?session=" .. name)
end
"""


def get_json(url):
    with urllib.request.urlopen(url, timeout=15) as resp:
        return json.loads(resp.read())


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def rss_kb(master):
    pids = [master]
    for task in os.listdir(f"/proc/{master}/task"):
        with open(f"/proc/{master}/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            pass
    return total


def latency(text, label):
    m = re.search(r"^\s*%s\s+(\S+)" % re.escape(label), text, re.M)
    return m.group(1) if m else "?"


def start_simulator(workdir, sessions):
    log = open(os.path.join(workdir, "sim.log"), "wb")
    sim = subprocess.Popen(["/usr/bin/python3", os.path.join(TOP, "scripts", "waha_sim.py"),
                            "--port", "0", "--api-key", "bench", "--engine-delay-ms", "0",
                            "--session-count", str(sessions - 1)],
                           stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    line = sim.stdout.readline().decode()
    m = re.match(r"listening on (\S+)", line)
    if not m:
        sim.kill()
        raise SystemExit(f"bench: the simulator did not start: {line!r}")
    return sim, "http://" + m.group(1)


def start_gateway(workdir, binary, sim_url, sessions):
    port = free_port()
    ini = os.path.join(workdir, "waha.ini")
    with open(ini, "w") as f:
        f.write(f"[server]\nlisten = 127.0.0.1:{port}\nworkers = 2\nmin_workers = 2\n"
                f"max_sessions = {sessions}\nshm_name = /wahagate-bench-sessions-{os.getpid()}\n"
                f"[upstream]\nurl = {sim_url}\napi_key = bench\nsessions = *\nevents = off\n"
                f"[ratelimit]\nenabled = false\n[log]\nlevel = warn\n")
    gw = subprocess.Popen([binary, "-c", ini], stdin=subprocess.DEVNULL,
                          stderr=open(os.path.join(workdir, "gateway.log"), "wb"))
    base = f"http://127.0.0.1:{port}"
    if not wait_for(lambda: get_json(base + "/api/waha/config"), 10):
        gw.kill()
        raise SystemExit("bench: the gateway did not start")
    return gw, base, port


def main(argv):
    binary = argv[1] if len(argv) > 1 else os.path.join(TOP, "build", "wahagate")
    sessions = int(argv[2]) if len(argv) > 2 else 1000
    seconds = int(argv[3]) if len(argv) > 3 else 10
    conns = int(argv[4]) if len(argv) > 4 else 64
    workdir = tempfile.mkdtemp(prefix="wahagate-bench-sessions.")
    sim, sim_url = start_simulator(workdir, sessions)
    gw = None
    try:
        gw, base, port = start_gateway(workdir, binary, sim_url, sessions)
        # Every session read once (the list brings them all).
        for i in range(sessions):
            name = "default" if i == 0 else f"s{i}"
            get_json(f"{base}/api/waha/status?session={name}")
        lua = os.path.join(workdir, "sessions.lua")
        with open(lua, "w") as f:
            f.write(LUA.replace("SESSIONS", str(sessions)))
        before = get_json(sim_url + "/_sim/stats")["calls"]
        t0 = time.monotonic()
        out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", lua,
                              base + "/"], capture_output=True, text=True, check=True).stdout
        elapsed = time.monotonic() - t0
        after = get_json(sim_url + "/_sim/stats")["calls"]
        calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        calls = {k: v for k, v in calls.items() if v}
        total = sum(calls.values())
        rps = re.search(r"Requests/sec:\s+(\S+)", out).group(1)
        stats = get_json(base + "/api/waha/monitoring/stats")
        print(f"{sessions} sessions (upstream.sessions = *), {conns} connections, {seconds} s, "
              "each request another session's status")
        print(f"  requests/s {rps}, p50 {latency(out, '50%')}, p99 {latency(out, '99%')}")
        print(f"  WAHA calls during the run: {total} {calls or ''} = "
              f"{total / (elapsed * 1000 / PERIOD_MS):.1f} per {PERIOD_MS // 1000} s period, "
              f"{total * 60 / elapsed:.1f} per minute")
        print(f"  untracked sessions: {stats['untrackedSessions']}; RSS of all wahagate "
              f"processes: {rss_kb(gw.pid) / 1024:.1f} MB")
        for line in out.splitlines():
            if "Non-2xx" in line or "Socket errors" in line:
                print("  " + line.strip())
    finally:
        for proc in (gw, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        subprocess.run(["rm", "-rf", workdir], check=False)


if __name__ == "__main__":
    main(sys.argv)
