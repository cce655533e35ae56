"""packaging/nginx/wahagate.conf in front of the gateway and WAHA (issue 17).

A real nginx (Debian's, from scripts/install-deps.sh) runs the shipped file,
with only its three addresses changed, in its own prefix under tmp_path
(pid, logs, temp dirs), and is stopped by its PID. A client of WAHA then
does its whole flow through that one URL: list the sessions, start one,
read its status until SCAN_QR_CODE, fetch the QR code, has it scanned (the
simulator's control API), reads WORKING and `me`, sends a text, logs out.
Reads must come from the gateway (X-Cache, nginx's upstream address),
writes from WAHA; the answers are the simulator's own; and a burst of reads
costs WAHA one period's calls.
"""

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (API_KEY, REPO, http_request, proc_children, proc_exists, stop_pid,
                      wait_until)

NGINX = "/usr/sbin/nginx"
CONF = REPO / "packaging" / "nginx" / "wahagate.conf"
KEY = {"X-Api-Key": API_KEY}
ME = {"id": "12025550100@c.us", "pushName": "Shop"}


def templated(text, gateway_port, waha_port, listen_port):
    """The shipped file with its three addresses changed, each exactly once."""
    for old, new in (("server 127.0.0.1:8080;", f"server 127.0.0.1:{gateway_port};"),
                     ("server 127.0.0.1:3000;", f"server 127.0.0.1:{waha_port};"),
                     ("listen 3001;", f"listen 127.0.0.1:{listen_port};")):
        assert text.count(old) == 1, f"wahagate.conf no longer has one {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    """Debian's nginx with wahagate.conf, in PREFIX; stopped by its PID."""

    def __init__(self, prefix, gateway_port, waha_port):
        from conftest import free_port
        assert os.path.exists(NGINX), "nginx is missing: run scripts/install-deps.sh"
        self.prefix = Path(prefix)
        self.port = free_port()
        for d in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.prefix / d).mkdir(parents=True)
        (self.prefix / "wahagate.conf").write_text(
            templated(CONF.read_text(), gateway_port, waha_port, self.port))
        user = "user root root;" if os.geteuid() == 0 else ""
        (self.prefix / "nginx.conf").write_text(f"""
daemon off;
master_process on;
worker_processes 1;
pid nginx.pid;
{user}
events {{ worker_connections 256; }}
http {{
    log_format route '$request_method $request_uri $status $upstream_addr';
    access_log access.log route;
    error_log error.log warn;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include wahagate.conf;
}}
""")
        self.log = open(self.prefix / "nginx.out", "wb")
        self.proc = subprocess.Popen(
            [NGINX, "-p", f"{self.prefix}/", "-c", "nginx.conf", "-e", "error.log"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        up = wait_until(lambda: self.proc.poll() is not None or self._answers(), 10)
        assert up and self.proc.poll() is None, f"nginx did not start:\n{self.errors()}"
        self.workers = proc_children(self.pid)

    def _answers(self):
        try:
            return http_request(self.port, "GET", "/ping", timeout=2)[0] == 200
        except OSError:
            return False

    def errors(self):
        out = []
        for name in ("nginx.out", "error.log"):
            p = self.prefix / name
            out.append(p.read_text(errors="replace") if p.exists() else "")
        return "\n".join(out)

    def routes(self):
        """(method, uri, status, upstream port) of each request nginx passed on."""
        rows = []
        for line in (self.prefix / "access.log").read_text().splitlines():
            m = re.match(r"^(\S+) (\S+) (\d+) 127\.0\.0\.1:(\d+)$", line)
            if m:
                rows.append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4))))
        return rows

    def stop(self):
        stop_pid(self.proc)
        self.log.close()
        assert wait_until(lambda: not any(proc_exists(p) for p in self.workers), 10), \
            "nginx workers outlived their master"


@pytest.fixture
def front(simulator, gateway, tmp_path):
    """WAHA, a gateway reading all its sessions, and nginx in front of both;
    WAHA's webhooks reach the gateway through nginx too."""
    sim = simulator("--start-delay-ms", "300", "--qr-first-ms", "600000", "--qr-gate-ms", "300",
                    "--stop-delay-ms", "100")
    period = 10000
    gw = gateway(sim, {"upstream": {"sessions": "*"},
                       "server": {"trusted_proxies": "127.0.0.1/32"},
                       "backend": {"status_cache_duration": period,
                                   "session_cache_duration": period,
                                   "health_check_cache_duration": period}})
    nginx = Nginx(tmp_path / "nginx", gw.port, sim.port)
    sim.control("POST", "/_sim/config",
                {"webhookUrl": f"http://127.0.0.1:{nginx.port}/api/waha/webhook"})
    yield sim, gw, nginx
    nginx.stop()


class Client:
    """A WAHA client whose base URL is nginx's: counts its reads."""

    def __init__(self, port):
        self.port, self.reads = port, 0

    def get(self, path, headers=None):
        self.reads += 1
        return http_request(self.port, "GET", path, dict(KEY, **(headers or {})))

    def post(self, path, body):
        return http_request(self.port, "POST", path,
                            dict(KEY, **{"Content-Type": "application/json"}),
                            json.dumps(body).encode())

    def status(self, name):
        code, _, body = self.get(f"/api/sessions/{name}")
        return json.loads(body)["status"] if code == 200 else None


def test_a_client_s_whole_flow_through_one_url(front):
    sim, gw, nginx = front
    client = Client(nginx.port)

    # List the sessions: the gateway's answer, WAHA's bytes.
    code, headers, body = client.get("/api/sessions?all=true")
    assert code == 200 and "X-Cache" in headers
    assert body == http_request(sim.port, "GET", "/api/sessions?all=true", KEY)[2]

    # Start one: a write, WAHA's answer (201, Express).
    code, headers, body = client.post("/api/sessions", {"name": "shop", "start": True})
    assert code == 201 and "X-Cache" not in headers, body
    assert json.loads(body)["name"] == "shop"

    # Its status until SCAN_QR_CODE, then the QR code as WAHA's dashboard asks it.
    assert wait_until(lambda: client.status("shop") == "SCAN_QR_CODE", 20, 0.1), \
        gw.log_text()[-2000:]
    code, headers, body = client.get("/api/shop/auth/qr", {"Accept": "application/json"})
    assert code == 200 and "X-Cache" in headers
    qr = json.loads(body)
    assert list(qr) == ["mimetype", "data"] and qr["mimetype"] == "image/png"
    assert body == http_request(sim.port, "GET", "/api/shop/auth/qr",
                                dict(KEY, Accept="application/json"))[2]

    # Scanned on the phone: WORKING, and `me`.
    sim.set_session("shop", "WORKING", me=ME)
    assert wait_until(lambda: client.status("shop") == "WORKING", 20, 0.1)
    assert wait_until(lambda: client.get("/api/sessions/shop/me")[2] == json.dumps(
        ME, separators=(",", ":")).encode(), 10, 0.1)
    code, headers, _ = client.get("/api/sessions/shop/me")
    assert code == 200 and headers["X-Cache"] in ("HIT", "MISS")

    # Send a text: WAHA's.
    code, headers, body = client.post("/api/sendText",
                                      {"session": "shop", "chatId": "12025550199", "text": "hi"})
    assert code == 201 and "X-Cache" not in headers, body
    assert json.loads(body)["body"] == "hi"
    assert sim.control("GET", "/_sim/messages")[-1] == \
        {"session": "shop", "chatId": "12025550199", "text": "hi"}

    # Log out: WAHA's; the cache follows (me gone, no longer WORKING).
    code, headers, _ = client.post("/api/sessions/shop/logout", {})
    assert code == 201 and "X-Cache" not in headers
    assert wait_until(lambda: client.status("shop") not in (None, "WORKING"), 20, 0.1)
    assert wait_until(lambda: client.get("/api/sessions/shop/me")[2] == b"", 10, 0.1)

    # nginx sent every read to the gateway, every write to WAHA (it logs a
    # request just after its answer: wait for the last line).
    assert wait_until(lambda: sum(r[0] == "GET" and r[1] != "/ping" for r in nginx.routes())
                      >= client.reads, 10)
    routes = nginx.routes()
    reads = [r for r in routes if r[0] == "GET" and r[1] != "/ping"]  # not nginx's start
    writes = [r for r in routes if r[0] == "POST" and not r[1].startswith("/api/waha/")]
    assert len(reads) == client.reads and all(r[3] == gw.port for r in reads), reads
    assert [w[1] for w in writes] == ["/api/sessions", "/api/sendText",
                                      "/api/sessions/shop/logout"]
    assert all(w[3] == sim.port for w in writes)
    # WAHA's webhooks came in through nginx to the gateway.
    hooks = [r for r in routes if r[1] == "/api/waha/webhook"]
    assert hooks and all(r[3] == gw.port and r[2] < 300 for r in hooks), hooks

    # What the reads cost WAHA: never one call per read, and no /me at all.
    calls = sim.stats()["calls"]
    read_calls = sum(n for k, n in calls.items() if k.startswith("GET "))
    assert calls.get("GET /api/sessions/{name}/me", 0) == 0, calls
    assert read_calls < client.reads, (read_calls, client.reads, calls)


def test_reads_through_nginx_cost_one_period(front):
    sim, gw, nginx = front
    client = Client(nginx.port)
    assert client.get("/api/sessions/default")[0] == 200  # warm: list + details
    assert sim.wait_quiet(0.5, 15)
    sim.reset()
    started, errors = time.monotonic(), []
    paths = ["/api/sessions", "/api/sessions/default", "/api/sessions/default/me",
             "/api/sessions?all=true", "/api/v1/waha/status", "/api/waha/status"]

    def reads(offset):
        for n in range(40):
            code, headers, _ = http_request(nginx.port, "GET", paths[(n + offset) % len(paths)],
                                            KEY)
            if code != 200 or "X-Cache" not in headers and "ETag" not in headers:
                errors.append((paths[(n + offset) % len(paths)], code))
    threads = [threading.Thread(target=reads, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert time.monotonic() - started < 8, "too slow to judge within one period"
    calls = sim.stats()["calls"]
    assert sum(calls.values()) <= 2, calls  # 160 reads: at most a list and a details call
