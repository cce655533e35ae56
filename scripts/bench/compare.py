#!/usr/bin/python3
"""compare.py - wahagate against nginx, side by side: the figures of `make bench-compare`.

Three servers answer GET /api/waha/status on 127.0.0.1, all started here:

  wahagate      build/wahagate with 2 workers (min = max = 2, so scaling does
                not interfere), rate limiting off, log level warn, in front of
                the WAHA simulator (scripts/waha_sim.py)
  nginx-cache   Debian's nginx as a 10 s microcache in front of the same
                simulator, WAHA's /api/sessions/default mapped to the path
  nginx-static  the same nginx answering `return 200` with a copy of
                wahagate's body: the ceiling (nginx.conf.in says what differs)

For each round (R rounds) and each connection count, the three are measured
one after the other with `wrk --latency -t<T> -c<C> -d<D>s`, and each run
prints requests/s, p50, p99, the calls the simulator received during the run
(/_sim/stats), the server's CPU per request (utime+stime of the server's whole
process tree, read from /proc before and after the run, divided by the
requests wrk completed; wrk shares the two cores with the server, so
requests/s swings with the scheduler while the CPU a request costs the server
barely moves), the total RSS of the server's processes, and the ratios
wahagate/nginx.

Each round then runs the three again at the same offered load (--paced,
default 30,000 requests/s, well under what each of the three serves here):
each connection waits C/RATE seconds (rounded to whole milliseconds) after
an answer before its next request (a wrk Lua delay()). At full load much of
the latency wrk reports is wrk's own: the faster the server, the more of the
two cores wrk needs and the longer an answer waits in wrk's socket while wrk
is not scheduled (nginx's static `return 200` often has the worst p99 of the
three there). At the same offered load the cores are not saturated and
p50/p99 say more about the servers.

The summary takes the median over rounds and checks the targets of issue
10. Last, each server holds 10,000 idle keep-alive
connections (hold_conns.py) and the RSS of its processes is measured.

Debian's nginx and wrk are installed when missing (apt-get, as root or with
sudo). nginx is our own process (`-p` a temp prefix, `-c` the config made
from nginx.conf.in, `daemon off`), never the system service. Every process is
started with PR_SET_PDEATHSIG and stopped by its pid (SIGTERM, then SIGKILL
after 10 s), also on SIGINT/SIGTERM; the temp directory is removed.

  scripts/bench/compare.py [build/wahagate] [-d SECONDS] [-r ROUNDS]
                           [-c 64,256] [-t THREADS] [--hold N] [--paced RATE]
                           [--quick]

  environment (flags win):  BENCH_SECONDS=10  BENCH_ROUNDS=3
                            BENCH_CONNECTIONS=64,256  BENCH_THREADS=2
                            BENCH_HOLD=10000 (0: skip)
                            BENCH_PACED=30000 (0: skip)
                            BENCH_QUICK=1 (3 s runs, 1 round: checks that
                            the script works, figures not worth keeping)

With the defaults a run takes about 7 minutes, in quick mode under 2.
The output's tables are Markdown, ready for BENCHMARKS.md.
"""

import argparse
import ctypes
import getpass
import grp
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import proctree  # noqa: E402
from hold_conns import answer_complete  # noqa: E402

PYTHON = "/usr/bin/python3"
NGINX = "/usr/sbin/nginx"
PATH = "/api/waha/status"
API_KEY = "bench"
WORKERS = 2
MAX_CONNECTIONS = 10000
SERVERS = ("wahagate", "nginx-cache", "nginx-static")
TARGETS = {"cpu_us": 8.6, "rps_ratio": 1.25, "rss_10k_mb": 32.0}
PACKAGES = {"nginx": NGINX, "wrk": "/usr/bin/wrk"}


# --------------------------------------------------------------------------- options

def parse_args():
    env = os.environ.get
    quick = env("BENCH_QUICK", "") not in ("", "0")
    p = argparse.ArgumentParser(description="wahagate against nginx (microcache and static) with wrk")
    p.add_argument("binary", nargs="?", default=os.path.join(TOP, "build", "wahagate"))
    p.add_argument("-d", "--seconds", type=int, default=None, help="seconds per wrk run (10; quick: 3)")
    p.add_argument("-r", "--rounds", type=int, default=None, help="rounds (3; quick: 1)")
    p.add_argument("-c", "--connections", default=env("BENCH_CONNECTIONS", "64,256"))
    p.add_argument("-t", "--threads", type=int, default=int(env("BENCH_THREADS", "2")))
    p.add_argument("--hold", type=int, default=int(env("BENCH_HOLD", "10000")),
                   help="idle keep-alive connections for the memory check (0: skip)")
    p.add_argument("--paced", type=int, default=int(env("BENCH_PACED", "30000")),
                   help="offered requests/s of the equal-load runs (0: skip them)")
    p.add_argument("--quick", action="store_true", default=quick, help="3 s runs, 1 round")
    a = p.parse_args()
    if a.seconds is None:
        a.seconds = int(env("BENCH_SECONDS", "3" if a.quick else "10"))
    if a.rounds is None:
        a.rounds = int(env("BENCH_ROUNDS", "1" if a.quick else "3"))
    a.connections = [int(c) for c in a.connections.split(",") if c.strip()]
    return a


# --------------------------------------------------------------------------- machine

def ensure_packages():
    missing = [pkg for pkg, path in PACKAGES.items() if not os.access(path, os.X_OK)]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"compare: installing {' '.join(missing)} (Debian packages)", flush=True)
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                   check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def output_of(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip()
    except OSError:
        return "?"


def machine(binary):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/etc/debian_version") as f:
        debian = f.read().strip()
    return {
        "cpu": model, "cores": os.cpu_count(), "kernel": os.uname().release, "debian": debian,
        "nginx": output_of([NGINX, "-v"]).split("/")[-1],
        "wrk": output_of(["wrk", "-v"]).split()[1],
        "libevent": output_of(["pkg-config", "--modversion", "libevent"]),
        "wahagate": output_of([binary, "-V"]).split()[-1],
    }


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


# --------------------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Procs:
    """The processes this script started, stopped by pid in reverse order."""

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, log):
        with open(log, "ab") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 preexec_fn=_die_with_parent)
        self.procs.append((name, p))
        return p

    def stop_all(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"compare: {name} ({p.pid}) ignored SIGTERM, killing it", file=sys.stderr)
                    p.kill()
                    p.wait()
        self.procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read()


def wait_until(what, check, proc, log, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    with open(log, errors="replace") as f:
        sys.stderr.write(f.read()[-3000:])
    raise SystemExit(f"compare: {what} did not start")


def answer_size(port):
    """Bytes of one whole answer (head and body) on a keep-alive connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while not answer_complete(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return len(data)


def start_simulator(procs, tmp):
    log = os.path.join(tmp, "sim.log")
    p = procs.start("simulator", [PYTHON, os.path.join(TOP, "scripts", "waha_sim.py"),
                                  "--port", "0", "--api-key", API_KEY], log)

    def listening():
        with open(log) as f:
            return re.search(r"^listening on \S+:(\d+)$", f.read(), re.M)
    wait_until("the simulator", listening, p, log)
    return int(listening().group(1))


def start_wahagate(procs, tmp, binary, sim_port):
    port = free_port()
    ini = os.path.join(tmp, "waha.ini")
    with open(ini, "w") as f:
        f.write(f"""[server]
listen = 127.0.0.1:{port}
workers = {WORKERS}
min_workers = {WORKERS}
max_workers = {WORKERS}
shm_name = /wahagate-compare-{os.getpid()}
; like nginx.conf.in's keepalive_timeout
client_timeout = 60000
max_connections = {MAX_CONNECTIONS}
[upstream]
url = http://127.0.0.1:{sim_port}
api_key = {API_KEY}
[ratelimit]
; every wrk connection comes from 127.0.0.1
enabled = false
[log]
level = warn
""")
    log = os.path.join(tmp, "wahagate.log")
    p = procs.start("wahagate", [binary, "-c", ini], log)
    wait_until("wahagate", lambda: http_get(f"http://127.0.0.1:{port}{PATH}")[0] == 200, p, log)
    return p, port


def start_nginx(procs, tmp, sim_port, body):
    text = body.decode()
    if "$" in text:
        raise SystemExit("compare: the status body holds '$', which nginx's return would expand")
    prefix = os.path.join(tmp, "nginx")
    for d in ("tmp", "cache"):
        os.makedirs(os.path.join(prefix, d))
    cache_port, static_port = free_port(), free_port()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 2 * MAX_CONNECTIONS + 1000 if nofile == resource.RLIM_INFINITY else min(nofile, 2 * MAX_CONNECTIONS + 1000)
    fields = {
        "WORKERS": str(WORKERS), "NOFILE": str(nofile),
        "WORKER_CONNECTIONS": str(min(MAX_CONNECTIONS + 240, nofile - 100)),
        "USER": f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};",
        "SIM_PORT": str(sim_port), "CACHE_PORT": str(cache_port), "STATIC_PORT": str(static_port),
        "API_KEY": API_KEY, "STATUS_BODY": text.replace("\\", "\\\\").replace("'", "\\'"),
    }
    with open(os.path.join(HERE, "nginx.conf.in")) as f:
        conf = re.sub(r"@([A-Z_]+)@", lambda m: fields[m.group(1)], f.read())
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(conf)
    log = os.path.join(tmp, "nginx.log")
    errlog = os.path.join(prefix, "error.log")
    p = procs.start("nginx", [NGINX, "-p", prefix + "/", "-c", "nginx.conf", "-e", errlog], log)

    def up():
        return all(http_get(f"http://127.0.0.1:{port}{PATH}")[0] == 200 for port in (cache_port, static_port))
    wait_until("nginx", up, p, errlog)
    return p, cache_port, static_port


# --------------------------------------------------------------------------- measuring

def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(port, conns, seconds, threads, script=None):
    cmd = ["wrk", "--latency", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{seconds}s",
           f"http://127.0.0.1:{port}{PATH}"] + (["-s", script] if script else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.findall(r"^\s+(Non-2xx or 3xx responses: \d+|Socket errors: .*)$", out, re.M)
    return {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "rps": float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1)),
            "p50": to_ms(pct["50"]), "p99": to_ms(pct["99"]), "errors": errors}


def sim_calls(sim_port):
    return json.loads(http_get(f"http://127.0.0.1:{sim_port}/_sim/stats")[1])["total"]


def pacing_script(tmp, conns, rate):
    """A wrk script that makes CONNS connections offer RATE requests/s in all."""
    path = os.path.join(tmp, f"paced-{conns}.lua")
    with open(path, "w") as f:
        f.write("-- each connection waits this many ms after an answer\n"
                f"function delay() return {max(1, round(conns * 1000 / rate))} end\n")
    return path


def measure(pid, port, sim_port, conns, a, script=None):
    calls, ticks = sim_calls(sim_port), proctree.cpu_ticks(pid)
    r = wrk(port, conns, a.seconds, a.threads, script)
    time.sleep(0.3)  # let the server finish closing wrk's connections
    r["cpu_us"] = (proctree.cpu_ticks(pid) - ticks) / proctree.CLK_TCK / max(r["requests"], 1) * 1e6
    r["calls"] = sim_calls(sim_port) - calls
    r["rss_mb"] = proctree.rss_kb(pid) / 1024
    return r


def ratios(wg, other):
    return {"rps": wg["rps"] / other["rps"], "p99": wg["p99"] / other["p99"],
            "cpu_us": wg["cpu_us"] / other["cpu_us"] if other["cpu_us"] else float("inf")}


def hold(pid, port, n):
    out = subprocess.run([PYTHON, os.path.join(HERE, "hold_conns.py"), f"127.0.0.1:{port}", PATH,
                          str(n), str(pid)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit("compare: hold_conns.py failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report

HEAD = f"{'round':>5} {'conns':>5}  {'server':<19} {'req/s':>9} {'p50':>8} {'p99':>8} " \
       f"{'upstream':>8} {'CPU/req':>9} {'RSS':>8}"


def row(rnd, conns, name, r):
    return (f"{rnd:>5} {conns:>5}  {name:<19} {r['rps']:>9,.0f} {r['p50']:>6.2f}ms {r['p99']:>6.2f}ms "
            f"{r['calls']:>8} {r['cpu_us']:>7.2f}us {r['rss_mb']:>5.1f} MB")


def ratio_text(q):
    return f"req/s {q['rps']:.2f}x, p99 {q['p99']:.2f}x, CPU/req {q['cpu_us']:.2f}x"


def median_of(runs):
    return {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "calls", "cpu_us", "rss_mb")}


def median_table(results, a, full):
    """Print the medians of RESULTS as a Markdown table (FULL: with upstream
    calls and RSS) and return them."""
    print("| connections | server | requests/s | p50 | p99 |" + (" upstream calls |" if full else "") +
          " CPU/request |" + (" RSS (all processes) |" if full else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if full else ""))
    med = {}
    for conns in a.connections:
        for name in SERVERS:
            m = med[conns, name] = median_of(results[conns, name])
            print(f"| {conns} | {name} | {m['rps']:,.0f} | {m['p50']:.2f} ms | {m['p99']:.2f} ms | " +
                  (f"{m['calls']:g} | " if full else "") + f"{m['cpu_us']:.2f} µs |" +
                  (f" {m['rss_mb']:.1f} MB |" if full else ""))
    return med


def summary(results, a):
    print(f"\n## Summary: median of {a.rounds} round(s), {a.seconds} s runs, "
          f"wrk -t{a.threads}, {WORKERS} workers each\n")
    med = median_table(results, a, full=True)
    if a.rounds > 1:
        print(f"\nSpread over the {a.rounds} rounds (max/min - 1): requests/s swings with the "
              "scheduler, CPU/request much less.\n")
        print("| connections | server | requests/s min–max | spread | CPU/request min–max | spread |")
        print("|---|---|---|---|---|---|")
        for conns in a.connections:
            for name in SERVERS:
                rps = [r["rps"] for r in results[conns, name]]
                cpu = [r["cpu_us"] for r in results[conns, name]]
                print(f"| {conns} | {name} | {min(rps):,.0f}–{max(rps):,.0f} | {max(rps) / min(rps) - 1:.0%} | "
                      f"{min(cpu):.2f}–{max(cpu):.2f} µs | {max(cpu) / min(cpu) - 1:.0%} |")
    print("\n| connections | wahagate / nginx-cache | wahagate / nginx-static |")
    print("|---|---|---|")
    for conns in a.connections:
        wg = med[conns, "wahagate"]
        print(f"| {conns} | {ratio_text(ratios(wg, med[conns, 'nginx-cache']))} | "
              f"{ratio_text(ratios(wg, med[conns, 'nginx-static']))} |")
    return med


def paced_summary(paced, a):
    print(f"\n## The same offered load: {a.paced:,} requests/s (median of {a.rounds} round(s))\n")
    return median_table(paced, a, full=False)


def verdict(ok, text):
    print(f"- {'met   ' if ok else 'MISSED'} {text}")


def targets(med, paced, held, a):
    print("\n## Targets (issue 10)\n")
    for conns in a.connections:
        wg, nc = med[conns, "wahagate"], med[conns, "nginx-cache"]
        cpu = wg["cpu_us"]
        verdict(cpu <= TARGETS["cpu_us"], f"{conns} conns: CPU/request {cpu:.2f} µs <= {TARGETS['cpu_us']} µs"
                + ("" if cpu <= TARGETS["cpu_us"] else f" (over by {cpu - TARGETS['cpu_us']:.2f} µs, "
                   f"{cpu / TARGETS['cpu_us']:.2f}x)"))
        q = wg["rps"] / nc["rps"]
        verdict(q >= TARGETS["rps_ratio"], f"{conns} conns: requests/s {q:.2f}x nginx-cache >= "
                f"{TARGETS['rps_ratio']}x" + ("" if q >= TARGETS["rps_ratio"] else
                                              f" (short by {(TARGETS['rps_ratio'] - q) / TARGETS['rps_ratio']:.0%})"))
        verdict(wg["p99"] <= nc["p99"], f"{conns} conns, full load: p99 {wg['p99']:.2f} ms <= "
                f"nginx-cache's {nc['p99']:.2f} ms" +
                ("" if wg["p99"] <= nc["p99"] else f" ({wg['p99'] / nc['p99']:.2f}x)"))
        if paced:
            wg, nc = paced[conns, "wahagate"], paced[conns, "nginx-cache"]
            verdict(wg["p99"] <= nc["p99"], f"{conns} conns, {a.paced:,} requests/s offered: p99 "
                    f"{wg['p99']:.2f} ms <= nginx-cache's {nc['p99']:.2f} ms" +
                    ("" if wg["p99"] <= nc["p99"] else f" ({wg['p99'] / nc['p99']:.2f}x)"))
    if "wahagate" in held:
        h = held["wahagate"]
        mb = h["rss_kb"] / 1024
        verdict(mb <= TARGETS["rss_10k_mb"] and h["held"] == a.hold,
                f"{a.hold} connections: RSS {mb:.1f} MB <= {TARGETS['rss_10k_mb']:g} MB "
                f"({h['held']} held)" + ("" if mb <= TARGETS["rss_10k_mb"] else
                                         f" (over by {mb - TARGETS['rss_10k_mb']:.1f} MB)"))


# --------------------------------------------------------------------------- main

def run(a, procs, tmp):
    info = machine(a.binary)
    print(f"# wahagate {info['wahagate']} against nginx {info['nginx']}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"CPU: {info['cpu']}, {info['cores']} cores; kernel {info['kernel']}; Debian {info['debian']}; "
          f"wrk {info['wrk']}; libevent {info['libevent']}")
    print(f"load average at start: {load()}")
    print(f"{a.rounds} round(s) x {a.connections} connections x {SERVERS}, {a.seconds} s each, "
          f"wrk -t{a.threads}\n", flush=True)

    sim_port = start_simulator(procs, tmp)
    wg, wg_port = start_wahagate(procs, tmp, a.binary, sim_port)
    body = http_get(f"http://127.0.0.1:{wg_port}{PATH}")[1]
    ng, cache_port, static_port = start_nginx(procs, tmp, sim_port, body)
    servers = {"wahagate": (wg.pid, wg_port), "nginx-cache": (ng.pid, cache_port),
               "nginx-static": (ng.pid, static_port)}
    for name, (pid, port) in servers.items():
        print(f"{name:<13} pid {pid}, port {port}, answer {answer_size(port)} bytes (head and body)")
        wrk(port, max(a.connections), 1, a.threads)  # warm up, not counted

    print("\n" + HEAD, flush=True)
    results = {(c, s): [] for c in a.connections for s in SERVERS}
    paced = {(c, s): [] for c in a.connections for s in SERVERS}
    for rnd in range(1, a.rounds + 1):
        for conns in a.connections:
            runs = [("", None, results)]
            if a.paced:
                runs.append((" paced", pacing_script(tmp, conns, a.paced), paced))
            for label, script, into in runs:
                now = {}
                for name in SERVERS:
                    pid, port = servers[name]
                    time.sleep(1.0)
                    r = now[name] = measure(pid, port, sim_port, conns, a, script)
                    into[conns, name].append(r)
                    print(row(rnd, conns, name + label, r), flush=True)
                    for e in r["errors"]:
                        print(f"{'':>13}  ! {e}")
                print(f"{'':>13}  wahagate/nginx-cache: "
                      f"{ratio_text(ratios(now['wahagate'], now['nginx-cache']))}; "
                      f"/nginx-static: {ratio_text(ratios(now['wahagate'], now['nginx-static']))}",
                      flush=True)

    med = summary(results, a)
    paced_med = paced_summary(paced, a) if a.paced else {}

    held = {}
    if a.hold:
        print(f"\n## {a.hold:,} idle keep-alive connections ({WORKERS} workers each)\n")
        print("| server | RSS idle | RSS holding | PSS holding | held | closed by server | open time |")
        print("|---|---|---|---|---|---|---|")
        for name in ("wahagate", "nginx-cache"):
            pid, port = servers[name]
            idle = proctree.rss_kb(pid) / 1024
            h = held[name] = hold(pid, port, a.hold)
            label = "nginx" if name == "nginx-cache" else name
            print(f"| {label} | {idle:.1f} MB | {h['rss_kb'] / 1024:.1f} MB | {h['pss_kb'] / 1024:.1f} MB | "
                  f"{h['held']:,} | {h['closed_by_server']} | {h['open_s']:.1f} s |", flush=True)
            time.sleep(1.0)

    targets(med, paced_med, held, a)
    print(f"\nload average at end: {load()}")


def main():
    a = parse_args()
    a.binary = os.path.abspath(a.binary)
    if not os.access(a.binary, os.X_OK):
        raise SystemExit(f"compare: {a.binary} is missing (make)")
    ensure_packages()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by nginx and wahagate
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="wahagate-compare.")
    try:
        run(a, procs, tmp)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
