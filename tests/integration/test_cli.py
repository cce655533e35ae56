"""The command line: -t, -V, environment overrides, --stats."""

import re
import subprocess

import pytest

from conftest import REPO, SHM_PREFIX, run_gateway_cli, write_ini

GOOD = {
    "server": {"listen": "127.0.0.1:18080", "workers": 2, "shm_name": "/wgtest-cli-unused"},
    "upstream": {"url": "http://127.0.0.1:3000", "api_key": "k", "sessions": "default,other"},
    "backend": {"status_cache_duration": 1000},
    "frontend": {"backoff_multiplier": 1.5},
    "log": {"level": "debug"},
}


def test_check_good_file(tmp_path):
    path = write_ini(tmp_path / "good.ini", GOOD)
    code, out, err = run_gateway_cli(["-t", "-c", path])
    assert code == 0, (out, err)
    assert "configuration OK" in out, (out, err)


def test_check_reports_every_error_with_file_and_line(tmp_path):
    path = tmp_path / "bad.ini"
    path.write_text(
        "[server]\n"                              # 1
        "workers = 2\n"                           # 2
        "bogus_key = 1\n"                         # 3 unknown key
        "[backend]\n"                             # 4
        "status_cache_duration = abc\n"           # 5 not a number
        "[limits]\n"                              # 6
        "max_concurrent_requests = 100000\n"      # 7 out of range
        "[nosuchsection]\n"                       # 8
        "x = 1\n"                                 # 9 unknown section/key
        "[log]\n"                                 # 10
        "level = loud\n"                          # 11 not a level
    )
    code, out, err = run_gateway_cli(["-t", "-c", str(path)])
    text = out + err
    assert code == 1, (code, text)
    assert "configuration OK" not in text
    expected = [(3, "server", "bogus_key"), (5, "backend", "status_cache_duration"),
                (7, "limits", "max_concurrent_requests"), (9, "nosuchsection", "x"),
                (11, "log", "level")]
    for line, section, key in expected:
        pattern = re.escape(f"{path}:{line}: [{section}] {key}: ") + r"\S"
        assert re.search(pattern, text, re.M), f"no error for line {line}:\n{text}"
    assert re.search(r"abc", text) and re.search(r"100000", text), text


def test_check_missing_file(tmp_path):
    code, out, err = run_gateway_cli(["-t", "-c", str(tmp_path / "none.ini")])
    assert code == 1
    assert str(tmp_path / "none.ini") in out + err


def test_version():
    code, out, err = run_gateway_cli(["-V"])
    assert code == 0, err
    version = (REPO / "VERSION").read_text().strip()
    assert re.match(r"^wahagate \d+\.\d+\.\d+", out), out
    assert out.strip() == f"wahagate {version}", out


@pytest.mark.parametrize("env,name", [
    ({"WAHAGATE_SERVER_WORKERS": "abc"}, "WAHAGATE_SERVER_WORKERS"),
    ({"WAHAGATE_SERVER_WORKERS": "0"}, "WAHAGATE_SERVER_WORKERS"),
    ({"WAHAGATE_SERVER_NO_SUCH_KEY": "1"}, "WAHAGATE_SERVER_NO_SUCH_KEY"),
    ({"WAHAGATE_BOGUS": "1"}, "WAHAGATE_BOGUS"),
    ({"WAHA_STATUS_CACHE_DURATION": "soon"}, "WAHA_STATUS_CACHE_DURATION"),
], ids=["not-a-number", "out-of-range", "unknown-key", "no-key", "legacy-bad"])
def test_environment_errors_name_the_variable(tmp_path, env, name):
    path = write_ini(tmp_path / "good.ini", GOOD)
    code, out, err = run_gateway_cli(["-t", "-c", path], env_extra=env)
    assert code == 1, (code, out, err)
    assert name in out + err, out + err
    assert "configuration OK" not in out


def test_environment_override_ok(tmp_path):
    path = write_ini(tmp_path / "good.ini", GOOD)
    code, out, err = run_gateway_cli(["-t", "-c", path],
                                     env_extra={"WAHAGATE_SERVER_WORKERS": "4",
                                                "WAHA_STATUS_CACHE_DURATION": "2000"})
    assert code == 0, (out, err)
    assert "configuration OK" in out


def test_environment_error_stops_a_start(simulator, gateway):
    sim = simulator()
    gw = gateway(sim, start=False, env_extra={"WAHAGATE_SERVER_WORKERS": "abc"})
    gw.start(wait=False)
    try:
        code = gw.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None
    assert code is not None and code != 0, gw.log_text()
    assert "WAHAGATE_SERVER_WORKERS" in gw.log_text()
    assert not gw.shm_exists()


def test_stats_of_a_running_instance(simulator, gateway):
    sim = simulator()
    gw = gateway(sim)
    made = 0
    for i in range(30):
        code, _, _ = gw.get("/api/waha/status" if i % 3 else "/api/waha/config")
        assert code == 200
        made += 1
    code, out, err = run_gateway_cli(["--stats", "-c", gw.ini_path])
    assert code == 0, (out, err)
    lines = out.splitlines()
    # A header "counter total role/slot..." then one row per counter.
    header = next((l.split() for l in lines if l.split()[:2] == ["counter", "total"]), None)
    assert header, out
    processes = header[2:]
    rows = {}
    for line in lines:
        fields = line.split()
        if fields and fields[0] in ("requests", "cache_hits", "upstream_calls"):
            rows[fields[0]] = fields[1:]
    assert set(rows) == {"requests", "cache_hits", "upstream_calls"}, out
    assert all(len(v) == 1 + len(processes) and all(x.isdigit() for x in v)
               for v in rows.values()), out
    assert int(rows["requests"][0]) >= made, out
    # The total is the sum of the processes' columns.
    assert int(rows["requests"][0]) == sum(int(x) for x in rows["requests"][1:]), out
    # One column per process: the master, the fetcher and the workers.
    roles = [p.split("/")[0] for p in processes]
    assert roles.count("worker") == 2 and roles.count("fetcher") == 1, out
    assert roles.count("master") == 1, out


def test_stats_without_running_instance(tmp_path):
    cfg = dict(GOOD)
    cfg["server"] = dict(GOOD["server"], shm_name=f"/{SHM_PREFIX}nobody")
    path = write_ini(tmp_path / "good.ini", cfg)
    code, out, err = run_gateway_cli(["--stats", "-c", path])
    assert code != 0, out
    assert f"{SHM_PREFIX}nobody" in err or "no running" in err, (out, err)
    assert err.strip(), "no message"
