"""A writer that dies inside the entries before the sessions (issue 14).

The region's crash repair (common/region.c, repair_torn_entries()) discards
every entry a dead writer left half-written: WAHA's health (entry 0) and
the session list (entry 1) as much as the sessions after them. The fetcher
of the test build (FAULTS_BIN, make faults) kills itself with SIGKILL at
fault_point("store_health") or fault_point("store_session_list"), inside
those entries' writes, when the file named by WG_FAULT_FILE holds the
point's name. The repair must find the torn entry (the log counts it), no
reader may be answered from it, and the entry must be fetched again."""

import os
import re

from conftest import FAULTS_BIN, SANITIZED, proc_exists, wait_until

SLACK = 3.0 if SANITIZED else 1.0


def fault_gateway(simulator, gateway, tmp_path, *sim_args, **sections):
    assert os.path.exists(FAULTS_BIN), (f"FAULTS_BIN {FAULTS_BIN} does not exist: "
                                        "run make faults (the Makefile's integration target does)")
    sim = simulator(*sim_args)
    fault = tmp_path / "fault"
    gw = gateway(sim, sections=sections, binary=FAULTS_BIN,
                 env_extra={"WG_FAULT_FILE": str(fault)})
    gw.expect_child_deaths = True
    return sim, gw, fault


def repair_line(gw, pid):
    rx = re.compile(rf"region lock was held by pid {pid}, which died; (\d+) torn entr")
    for line in gw.log_text().splitlines():
        m = rx.search(line)
        if m:
            return int(m.group(1))
    return None


def die_at(gw, fault, point, read):
    """Arm POINT, then make the fetcher reach it with READ() (nothing calls
    WAHA while nobody reads, so the first fetch is READ's), wait for its
    death and the repair: (the dead fetcher's pid, torn entries discarded)."""
    fetcher = gw.wait_children("fetcher", 1)
    assert len(fetcher) == 1, gw.child_pids("fetcher")
    fault.write_text(point + "\n")
    read()
    assert wait_until(lambda: not fault.exists() and not proc_exists(fetcher[0]), 10 + SLACK), \
        f"the fetcher did not die at {point}\n{gw.log_text()}"
    torn = wait_until(lambda: repair_line(gw, fetcher[0]), 10)
    assert torn is not None, gw.log_text()
    return fetcher[0], torn


def test_writer_dies_inside_the_health_entry(simulator, gateway, poller, tmp_path):
    """The fetcher dies storing WAHA's first /health answer, after the time
    of the fetch and before the answer itself: the entry would say "fresh
    data" with no endpoint and no status. It is discarded, fetched again,
    and no reader is answered from it."""
    sim, gw, fault = fault_gateway(simulator, gateway, tmp_path)
    readers = []
    pid, torn = die_at(gw, fault, "store_health", lambda: readers.append(
        poller(gw.port, "/api/waha/health", interval=0.05)))
    health = readers[0]
    assert torn >= 1, f"the torn health entry was not discarded\n{gw.log_text()}"
    new = gw.wait_children("fetcher", 1)
    assert new and new != [pid], gw.log_text()
    good = health.wait_for(lambda st, d: st == 200 and d["upstream"]["status"] == "ok",
                           10 + SLACK)
    assert good, f"no health after the repair; last {health.latest()}\n{gw.log_text()}"
    for started, _, status, doc, error in health.stop():
        assert error is None, error
        if status == 200:
            assert doc["upstream"]["endpoint"] in ("/health", "/ping"), doc
            assert doc["upstream"]["status"] in ("ok", "pong"), doc
        else:
            assert status == 503 and set(doc) == {"error"}, (status, doc)


def test_writer_dies_inside_the_session_list_entry(simulator, gateway, poller, tmp_path):
    """With upstream.sessions = *, the fetcher dies inside the session
    list's entry. The repair discards it (1 torn entry) and asks for it at
    once, and the sessions WAHA lists are served afterwards."""
    sim, gw, fault = fault_gateway(simulator, gateway, tmp_path,
                                   "--sessions", "default:WORKING,second:WORKING",
                                   upstream={"sessions": "*"})
    readers = []
    pid, torn = die_at(gw, fault, "store_session_list", lambda: readers.append(
        poller(gw.port, "/api/waha/sessions", interval=0.05)))
    sessions = readers[0]
    assert torn >= 1, f"the torn session list entry was not discarded\n{gw.log_text()}"
    new = gw.wait_children("fetcher", 1)
    assert new and new != [pid], gw.log_text()
    listed = sessions.wait_for(
        lambda st, d: st == 200 and sorted(s["name"] for s in d) == ["default", "second"],
        10 + SLACK)
    assert listed, f"the sessions are not served after the repair; last {sessions.latest()}"
    for _, _, status, doc, error in sessions.stop():
        assert error is None, error
        assert status in (200, 503), (status, doc)
    status = gw.status("second")
    assert status["status"] == "WORKING", status
