"""The Debian package (packaging/): make deb, lintian, the systemd unit, and a
round trip through dpkg.

test_package_round_trip builds the package with `make deb`, checks it with
lintian (no error, no warning), checks the unit with `systemd-analyze verify`
and its exposure with `systemd-analyze security --offline` (2.0 or lower),
installs it with dpkg -i, runs the installed binary as the user wahagate
against the WAHA simulator, and purges it, checking that nothing is left
behind. systemd need not be running (CI's containers have none).

It needs root (dpkg, setpriv); CI runs as root. Whatever happens, it purges
the package before it ends. It refuses to start when the package is
installed already or a user wahagate exists, since the purge would remove
them.
"""

import gzip
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import (API_KEY, REPO, SHM_PREFIX, START_TIMEOUT, STOP_TIMEOUT, clean_env,
                      free_port, http_request, proc_children, proc_cmdline, proc_exists,
                      stop_pid, wait_until, write_ini)

VERSION = (REPO / "VERSION").read_text().strip()
UNIT_SOURCE = REPO / "packaging" / "debian" / "wahagate.service"
SBIN = "/usr/sbin/wahagate"
CONFFILE = "/etc/wahagate/waha.ini"
UNIT = "/lib/systemd/system/wahagate.service"
WANTS_LINK = "/etc/systemd/system/multi-user.target.wants/wahagate.service"
MAN_PAGES = ["/usr/share/man/man8/wahagate.8.gz", "/usr/share/man/man5/waha.ini.5.gz"]
DOCS = ["/usr/share/doc/wahagate/README.md.gz", "/usr/share/doc/wahagate/changelog.gz",
        "/usr/share/doc/wahagate/copyright"]
# The nginx front (README: "Put it in front of existing clients"), as shipped.
NGINX_EXAMPLE = "/usr/share/doc/wahagate/examples/wahagate.conf"
NGINX_SOURCE = REPO / "packaging" / "nginx" / "wahagate.conf"
# Everything the package or its maintainer scripts may create.
INSTALLED_PATHS = [SBIN, CONFFILE, UNIT, WANTS_LINK, *MAN_PAGES, *DOCS, NGINX_EXAMPLE]
LEFTOVER_PATHS = [SBIN, "/etc/wahagate", UNIT, WANTS_LINK, *MAN_PAGES,
                  "/usr/share/doc/wahagate",
                  "/var/lib/systemd/deb-systemd-helper-enabled/wahagate.service.dsh-also",
                  "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/"
                  "wahagate.service",
                  "/var/lib/wahagate", "/var/log/wahagate", "/run/wahagate"]
CLIENT_SECRET = "pkg-test-secret-4f1c9a"

MAKE_TIMEOUT = 600
DPKG_TIMEOUT = 180


def run(cmd, timeout=120, env=None, cwd=None):
    """Run CMD: (exit code, stdout and stderr together)."""
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, env=env,
                       cwd=str(cwd) if cwd else None)
    return p.returncode, p.stdout.decode(errors="replace")


def dpkg_status():
    """dpkg's status of wahagate ("install ok installed", ...) or ""."""
    code, out = run(["dpkg-query", "-W", "-f=${Status}", "wahagate"])
    return out.strip() if code == 0 else ""


def account_exists():
    try:
        pwd.getpwnam("wahagate")
        return True
    except KeyError:
        pass
    try:
        grp.getgrnam("wahagate")
        return True
    except KeyError:
        return False


# The shm objects the package's gateways can make: the packaged waha.ini's
# and check_run_as_wahagate()'s. Others named wahagate* may belong to what
# else runs on the machine (make bench, another test).
PACKAGE_SHM = ("wahagate", f"{SHM_PREFIX}pkg")


def shm_wahagate():
    return sorted(n for n in os.listdir("/dev/shm") if n in PACKAGE_SHM)


def purge():
    """dpkg --purge wahagate: (exit code, output)."""
    return run(["dpkg", "--purge", "wahagate"], timeout=DPKG_TIMEOUT,
               env=clean_env({"DEBIAN_FRONTEND": "noninteractive"}))


def build_deb():
    """make deb in this tree; the .deb's path."""
    env = {k: v for k, v in clean_env().items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    code, out = run(["make", "deb"], timeout=MAKE_TIMEOUT, env=env, cwd=REPO)
    assert code == 0, f"make deb failed ({code}):\n{out[-6000:]}"
    code, arch = run(["dpkg", "--print-architecture"])
    deb = REPO / "build" / "deb" / f"wahagate_{VERSION}_{arch.strip()}.deb"
    assert deb.is_file(), f"make deb did not make {deb}:\n{out[-3000:]}"
    return deb


def check_deb_contents(deb):
    code, out = run(["dpkg-deb", "-f", str(deb), "Version", "Depends"])
    assert code == 0, out
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert fields["Version"] == VERSION, f"package version {fields['Version']} != {VERSION}"
    # ${shlibs:Depends} at work: the libraries come from the binary.
    for lib in ("libevent", "libcurl", "libjson-c", "libinih", "libssl", "libsystemd",
                "libhttp-parser", "adduser"):
        assert lib in fields["Depends"], f"Depends lacks {lib}: {fields['Depends']}"

    code, out = run(["dpkg-deb", "--contents", str(deb)])
    assert code == 0, out
    listed = {line.split()[-1].lstrip(".") for line in out.splitlines()}
    for path in INSTALLED_PATHS:
        if path != WANTS_LINK:
            assert path in listed, f"{path} is not in the package:\n{out}"

    workdir = Path(tempfile.mkdtemp(prefix="wahagate-ctrl-"))
    try:
        code, out = run(["dpkg-deb", "--control", str(deb), str(workdir)])
        assert code == 0, out
        conffiles = (workdir / "conffiles").read_text().split()
        assert conffiles == [CONFFILE], conffiles
    finally:
        shutil.rmtree(workdir)


def check_lintian(deb):
    code, out = run(["lintian", "--fail-on", "error,warning", "--display-level", ">=warning",
                     str(deb)], timeout=300)
    tags = [line for line in out.splitlines() if re.match(r"^[EW]: ", line)]
    assert code == 0 and not tags, f"lintian ({code}):\n{out}"


def check_unit_security():
    """systemd-analyze security, offline: overall exposure 2.0 or lower."""
    code, out = run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
                     "--no-pager", str(UNIT_SOURCE)])
    m = re.search(r"Overall exposure level for wahagate\.service: (\d+\.\d+)", out)
    assert m, f"no exposure level from systemd-analyze security ({code}):\n{out}"
    assert float(m.group(1)) <= 2.0 and code == 0, \
        f"exposure {m.group(1)} is above 2.0:\n{out}"


def check_unit_verify():
    """systemd-analyze verify on the installed unit (it needs the ExecStart
    binary): no complaint at all. Its check of Documentation= would run man,
    which leaves pages in man-db's cache: man -w checks them instead."""
    assert Path(UNIT).read_bytes() == UNIT_SOURCE.read_bytes(), \
        f"{UNIT} differs from {UNIT_SOURCE}"
    code, out = run(["systemd-analyze", "verify", "--man=no", UNIT])
    assert code == 0 and not out.strip(), f"systemd-analyze verify ({code}):\n{out}"
    documentation = re.search(r"^Documentation=(.*)$", UNIT_SOURCE.read_text(), re.M)
    pages = re.findall(r"man:([\w.-]+)\((\d)\)", documentation.group(1))
    assert len(pages) == 2, documentation.group(0)
    for name, section in pages:
        code, out = run(["man", "-w", section, name])
        assert code == 0 and out.strip() in MAN_PAGES, f"man -w {section} {name}: {out}"


def check_installed():
    user = pwd.getpwnam("wahagate")
    group = grp.getgrnam("wahagate")
    assert user.pw_gid == group.gr_gid, "wahagate's primary group is not wahagate"
    assert user.pw_uid < 1000, f"wahagate is not a system user (uid {user.pw_uid})"
    assert user.pw_dir == "/nonexistent" and not os.path.exists("/nonexistent")
    assert user.pw_shell.endswith("nologin"), user.pw_shell

    for path in INSTALLED_PATHS:
        assert os.path.lexists(path), f"{path} is not installed"
    st = os.stat(CONFFILE)
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, group.gr_gid), (st.st_uid, st.st_gid)
    for page in MAN_PAGES:
        text = gzip.decompress(Path(page).read_bytes()).decode()
        assert "@VERSION@" not in text and f"wahagate {VERSION}" in text, page

    code, out = run([SBIN, "-V"])
    assert code == 0 and out.strip() == f"wahagate {VERSION}", out
    check_nginx_example()

    # The packaged configuration: what the service needs, and it passes -t,
    # also as the user wahagate (as ExecStartPre= runs it).
    text = Path(CONFFILE).read_text()
    for line in ["required = true", "user =", "pid_file =", "file =",
                 "shm_name = /wahagate",
                 "key = placeholder : sha256:" + "0" * 64 + " : *"]:
        assert re.search("^" + re.escape(line) + "$", text, re.M), \
            f"{CONFFILE} lacks the line {line!r}"
    tree_keys = set(re.findall(r"^(\w+) =", (REPO / "waha.ini").read_text(), re.M))
    assert tree_keys <= set(re.findall(r"^(\w+) =", text, re.M)), \
        f"{CONFFILE} lacks keys of the tree's waha.ini"
    code, out = run([SBIN, "-t", "-c", CONFFILE], env=clean_env())
    assert code == 0 and "configuration OK" in out, out
    code, out = run(["setpriv", "--reuid=wahagate", "--regid=wahagate", "--clear-groups",
                     SBIN, "-t", "-c", CONFFILE], env=clean_env())
    assert code == 0 and "configuration OK" in out, out


def check_nginx_example():
    """The nginx example is the tree's file, uncompressed, and nginx -t takes
    it as it is, included in an http block as /etc/nginx/conf.d/ files are."""
    assert Path(NGINX_EXAMPLE).read_bytes() == NGINX_SOURCE.read_bytes()
    assert stat.S_IMODE(os.stat(NGINX_EXAMPLE).st_mode) == 0o644
    prefix = Path(tempfile.mkdtemp(prefix="wahagate-nginx-"))
    try:
        (prefix / "nginx.conf").write_text(
            "pid nginx.pid;\nerror_log error.log;\nevents {}\n"
            f"http {{ access_log off; include {NGINX_EXAMPLE}; }}\n")
        code, out = run(["/usr/sbin/nginx", "-t", "-p", f"{prefix}/", "-c", "nginx.conf",
                         "-e", "error.log"])
        assert code == 0 and "test is successful" in out, out
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def check_run_as_wahagate(sim, workdir):
    """The installed binary, as wahagate, against the simulator: a status
    through it with a client key, then a graceful stop by PID."""
    port = free_port()
    shm_name = "/" + PACKAGE_SHM[1]
    ini = write_ini(workdir / "waha.ini", {
        "server": {"listen": f"127.0.0.1:{port}", "shm_name": shm_name, "workers": 2},
        "upstream": {"url": sim.url, "api_key": API_KEY},
        "ratelimit": {"enabled": False},
        "auth": {"required": True, "key": [f"test : {CLIENT_SECRET} : default"]},
        "log": {"level": "info"},
    })
    os.chmod(ini, 0o644)
    log_path = workdir / "gateway.log"
    uid = pwd.getpwnam("wahagate").pw_uid
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["setpriv", "--reuid=wahagate", "--regid=wahagate",
                                 "--clear-groups", SBIN, "-c", ini],
                                stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=clean_env(), cwd=str(workdir))
    children = set()
    try:
        def ready():
            if proc.poll() is not None:
                return "exited"
            try:
                return http_request(port, "GET", "/api/waha/config", timeout=2.0)[0] == 200
            except OSError:
                return False
        assert wait_until(ready, START_TIMEOUT, 0.05) is True, \
            f"installed wahagate did not start:\n{log_path.read_text(errors='replace')}"

        children.update(proc_children(proc.pid))
        for pid in [proc.pid, *children]:
            assert _uid_of(pid) == uid, f"process {pid} ({proc_cmdline(pid)}) is not wahagate"
        assert os.stat("/dev/shm/" + shm_name.lstrip("/")).st_uid == uid

        status, _, body = http_request(port, "GET", "/api/waha/status")
        assert status == 401, (status, body)
        status, _, body = http_request(port, "GET", "/api/waha/status?session=default",
                                       {"Authorization": f"Bearer {CLIENT_SECRET}"})
        assert status == 200 and b'"status":"WORKING"' in body, (status, body)

        code, out = run([SBIN, "--stats", "--json", "-c", ini], env=clean_env())
        assert code == 0 and '"totalRequests"' in out, out

        children.update(proc_children(proc.pid))
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, log_path.read_text(errors="replace")
        assert not os.path.exists("/dev/shm/" + shm_name.lstrip("/")), "shm object left"
    finally:
        stop_pid(proc)
        for pid in children:
            cmd = proc_cmdline(pid)
            if proc_exists(pid) and cmd and cmd.startswith("wahagate"):
                os.kill(pid, signal.SIGKILL)


def _uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def check_nothing_left(shm_before):
    assert dpkg_status() in ("", "unknown ok not-installed"), dpkg_status()
    left = [p for p in LEFTOVER_PATHS if os.path.lexists(p)]
    assert not left, f"left after purge: {left}"
    assert not account_exists(), "the user or group wahagate is left after purge"
    new_shm = sorted(set(shm_wahagate()) - set(shm_before))
    assert not new_shm, f"shm objects left after purge: {new_shm}"


def test_package_round_trip(simulator, tmp_path):
    assert os.geteuid() == 0, \
        "test_package.py installs and purges the .deb with dpkg: run the tests as root (CI does)"
    assert dpkg_status() in ("", "unknown ok not-installed"), \
        (f"the package wahagate is on this machine already ({dpkg_status()}); this test "
         "installs and purges it: remove it first (dpkg --purge wahagate)")
    assert not account_exists(), \
        ("a user or group wahagate exists already; purging the package would remove it: "
         "remove it first (deluser --system wahagate)")
    started = time.monotonic()
    shm_before = shm_wahagate()

    deb = build_deb()
    check_deb_contents(deb)
    check_lintian(deb)
    check_unit_security()

    sim = simulator()
    workdir = Path(tempfile.mkdtemp(prefix="wahagate-pkg-"))
    os.chmod(workdir, 0o755)  # the user wahagate reads the ini here
    installed = False
    try:
        code, out = run(["dpkg", "-i", str(deb)], timeout=DPKG_TIMEOUT,
                        env=clean_env({"DEBIAN_FRONTEND": "noninteractive"}))
        installed = True
        assert code == 0, f"dpkg -i failed ({code}):\n{out}"
        check_installed()
        check_unit_verify()
        check_run_as_wahagate(sim, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if installed:
            code, out = purge()
            assert code == 0, f"dpkg --purge failed ({code}):\n{out}"
    check_nothing_left(shm_before)
    elapsed = time.monotonic() - started
    assert elapsed < 180, f"the package round trip took {elapsed:.0f} s (budget 180 s)"


def test_man_page_documents_every_key():
    """waha.ini(5) has an entry for every key of the tree's waha.ini, under
    its section."""
    page = (REPO / "packaging" / "man" / "waha.ini.5").read_text()
    sections = {}
    for m in re.finditer(r"^\.SH \[(\w+)\]\n(.*?)(?=^\.SH )", page, re.M | re.S):
        sections[m.group(1)] = set(re.findall(r"^\.BR (\w+) ", m.group(2), re.M)) | \
            set(re.findall(r'^\.BR \w+ " / " (\w+) ', m.group(2), re.M))
    section = None
    missing = []
    for line in (REPO / "waha.ini").read_text().splitlines():
        s = re.match(r"^\[(\w+)\]", line)
        if s:
            section = s.group(1)
            continue
        k = re.match(r"^;?\s*(\w+) =", line)
        if k and section and not line.startswith(";"):
            if k.group(1) not in sections.get(section, set()):
                missing.append(f"[{section}] {k.group(1)}")
    assert not missing, f"packaging/man/waha.ini.5 does not document: {missing}"
