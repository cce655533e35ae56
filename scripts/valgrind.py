#!/usr/bin/python3
"""Memcheck over wahagate's tests (make valgrind).

Usage: scripts/valgrind.py BUILD [pytest arguments...]

BUILD is a build directory holding wahagate, faults/wahagate (make faults)
and the unit tests (tests/test_*). Without pytest arguments the integration
tests run are DEFAULT_TESTS minus DESELECTED (below, with the reasons);
VALGRIND_TESTS="tests/integration/test_sse.py ..." in the environment or
arguments after BUILD choose others. VALGRIND_EXTRA adds valgrind options
(--track-origins=yes to find where an uninitialised value comes from).

DESIGN
- The unit tests (cmocka) run one by one under memcheck.
- The integration tests run unchanged with GATEWAY_BIN and FAULTS_BIN
  pointing at two wrapper scripts written here, BUILD/valgrind/wahagate and
  BUILD/valgrind/faults/wahagate, which exec valgrind on the real binaries.
  conftest.py sees "/valgrind/" in GATEWAY_BIN (its VALGRIND flag): it
  gives the timing checks the slack of a sanitized build and finds the
  children by their 15-character name, since under valgrind the command
  line is valgrind's and the title shows only in /proc/PID/comm.
- Every process (the master and each forked child: valgrind follows
  fork(), and --trace-children=yes follows exec) writes its own log,
  BUILD/valgrind/logs/<what>.<pid>.log. The verdict comes from these logs,
  not from exit codes: a worker killed by SIGKILL (the tests do that) never
  exits through valgrind, yet what it reported before is in its log.
- A log block is an error when it is not one of valgrind's own banners or
  summaries or a leak record of a kind other than "definitely lost". So
  any memcheck error (invalid read/write/free, uninitialised value,
  syscall parameter, overlap, mismatched free) and any definite leak fails,
  whatever the test said. Suppressions: tests/valgrind.supp, third-party
  noise only. Errors are grouped by stack and printed with it.
- Memcheck sees one process at a time. Bytes that another process wrote
  into the shared region keep, for the reader's memcheck, the definedness
  they had when it forked: the master must not write uninitialised bytes
  into the region (it did: region_entry_reset), and uninitialised bytes the
  fetcher writes there are invisible to the workers' memcheck.
- The exit status is 1 when a log holds an error, a unit test failed or
  pytest failed, else 0. Every process is started with a timeout; pytest's
  own fixtures stop what the tests start, by pid.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3"
SUPP = REPO / "tests" / "valgrind.supp"
ERROR_EXITCODE = 97
UNIT_TIMEOUT = 600
PYTEST_TIMEOUT = 4 * 3600

VALGRIND_ARGS = [
    "valgrind", "--tool=memcheck", "--trace-children=yes", "--leak-check=full",
    "--errors-for-leak-kinds=definite", f"--error-exitcode={ERROR_EXITCODE}",
    "--num-callers=30", f"--suppressions={SUPP}",
    # VALGRIND_EXTRA="--track-origins=yes" to see where an uninitialised value comes from.
    *os.environ.get("VALGRIND_EXTRA", "").split(),
]

# The integration tests run under memcheck: all of them but those below. The
# whole suite takes about 12 minutes under memcheck on the 2-core machine, so
# nothing is left out for time; what is left out cannot pass under valgrind.
DEFAULT_TESTS = ["tests/integration"]
DESELECTED = [
    # Builds and installs the .deb system-wide and runs /usr/sbin/wahagate,
    # not GATEWAY_BIN: nothing of it would run under valgrind.
    "--ignore=tests/integration/test_package.py",
    # Chromium driving the dashboard: the JavaScript is what it tests; the
    # C paths it uses (static assets, SSE, status) are covered by the
    # others, and Chromium and memcheck together overload two cores.
    "--ignore=tests/integration/test_browser.py",
    # The process title in /proc/PID/cmdline: under valgrind it is
    # valgrind's own command line.
    "--deselect=tests/integration/test_process.py::test_process_titles",
    "--deselect=tests/integration/test_process.py::test_killed_worker_is_replaced",
    # RLIMIT_NOFILE: valgrind keeps file descriptors for itself and shows
    # the client a lower limit than the one the gateway set.
    "--deselect=tests/integration/test_limits.py::"
    "test_open_file_limit_of_workers_covers_max_connections",
    "--deselect=tests/integration/test_limits.py::"
    "test_open_file_limit_below_max_connections_is_logged",
    # Rates and deadlines measured in windows of a second or two, or a
    # first WAHA call bounded by a request_timeout of 1 s: memcheck runs
    # the gateway 10-50 times slower (curl's first call alone takes more
    # than a second), which no slack for a sanitized build covers.
    "--deselect=tests/integration/test_flap.py",
    "--deselect=tests/integration/test_ratelimit.py::test_tokens_refill_at_the_configured_rate",
    "--deselect=tests/integration/test_webhooks.py::test_webhooks_relax_periodic_refresh",
    "--deselect=tests/integration/test_qr.py::test_qr_follows_rotation_while_read",
    "--deselect=tests/integration/test_fleet.py::"
    "test_without_redis_each_gateway_fetches_alone_then_rejoins",
    "--deselect=tests/integration/test_limits.py::"
    "test_client_that_does_not_read_is_closed_after_client_timeout",
    "--deselect=tests/integration/test_limits.py::test_slowloris_does_not_block_normal_clients",
    # A respawned worker is looked at before it has dropped its privileges
    # (or logged its obituary), a window memcheck widens to seconds.
    "--deselect=tests/integration/test_daemon.py::test_children_run_as_server_user",
    "--deselect=tests/integration/test_daemon.py::test_fetcher_killed_holding_the_lock",
]

WRAPPER = """#!/bin/sh
# Written by scripts/valgrind.py: {binary} under memcheck, one log per process.
exec {valgrind} --log-file={logs}/{tag}.%p.log {binary} "$@"
"""

# Blocks of a log that are valgrind talking, not reporting an error.
BANNER_RE = re.compile(
    r"^(Memcheck, a memory error detector|Copyright \(C\)|Using Valgrind-|Command: |"
    r"Parent PID: |HEAP SUMMARY:|LEAK SUMMARY:|ERROR SUMMARY:|All heap blocks were freed|"
    r"For lists of detected|For counts of detected|Reachable blocks|To see them, rerun|"
    r"Warning: |Process terminating with default action of signal|"
    r"Searching for pointers|Use --track-origins)")
LEAK_RE = re.compile(r" are (definitely|indirectly|possibly) lost| still reachable")
SUMMARY_RE = re.compile(r"ERROR SUMMARY: (\d+) errors")
FRAME_RE = re.compile(r"^\s+(at|by) 0x[0-9A-F]+: (.*)$")


def write_wrappers(build, logs):
    out = {}
    for tag, rel in (("wahagate", "wahagate"), ("faults", "faults/wahagate")):
        binary = (build / rel).resolve()
        if not binary.exists():
            sys.exit(f"valgrind: {binary} does not exist (make all faults)")
        wrapper = build / "valgrind" / rel
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(WRAPPER.format(binary=binary, logs=logs, tag=tag,
                                          valgrind=" ".join(VALGRIND_ARGS)))
        wrapper.chmod(0o755)
        out[tag] = wrapper
    return out


def run_unit_tests(build, logs):
    """Each cmocka test under memcheck: the names of those that failed."""
    failed = []
    for test in sorted((build / "tests").glob("test_*")):
        if test.suffix or not os.access(test, os.X_OK):
            continue
        args = VALGRIND_ARGS + [f"--log-file={logs}/unit-{test.name}.%p.log", str(test)]
        t = time.monotonic()
        try:
            p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=UNIT_TIMEOUT)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"  UNIT  {test.name} under memcheck: {rc} ({time.monotonic() - t:.1f} s)",
              flush=True)
        if rc != 0:
            failed.append(test.name)
            if rc != "timeout":
                sys.stdout.write(p.stdout.decode(errors="replace")[-3000:])
    return failed


def run_integration(wrappers, pytest_args):
    env = dict(os.environ, GATEWAY_BIN=str(wrappers["wahagate"].resolve()),
               FAULTS_BIN=str(wrappers["faults"].resolve()))
    cmd = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    print("  TEST  " + " ".join(cmd[3:]), flush=True)
    try:
        return subprocess.run(cmd, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL,
                              timeout=PYTEST_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        print(f"valgrind: pytest did not finish within {PYTEST_TIMEOUT} s")
        return 1


def log_blocks(text):
    """The blocks of a valgrind log (separated by "==PID== " empty lines),
    each a list of lines without the ==PID== prefix."""
    blocks, cur = [], []
    for line in text.splitlines():
        body = re.sub(r"^==\d+== ?", "", line)
        if not body.strip():
            if cur:
                blocks.append(cur)
            cur = []
        else:
            cur.append(body)
    if cur:
        blocks.append(cur)
    return blocks


def scan_log(path):
    """(errors, summarised count or None): errors are lists of lines."""
    text = path.read_text(errors="replace")
    errors = []
    for block in log_blocks(text):
        head = block[0].lstrip()
        if BANNER_RE.match(head):
            continue
        if LEAK_RE.search(head) and "definitely lost" not in head:
            continue
        errors.append(block)
    counts = [int(n) for n in SUMMARY_RE.findall(text)]
    return errors, (counts[-1] if counts else None)


def signature(block):
    """What identifies an error across processes: its kind and stack."""
    kind = re.sub(r"[\d,]+ \([\d,]+ direct, [\d,]+ indirect\) bytes|[\d,]+ bytes|"
                  r"in loss record \d+ of \d+|size \d+|0x[0-9A-Fa-f]+", "#", block[0])
    frames = [FRAME_RE.match(line).group(2) for line in block[1:] if FRAME_RE.match(line)]
    return kind, tuple(frames)


def report(logs):
    """Print every error grouped by signature; return how many distinct ones."""
    groups, unreported, n_logs = {}, [], 0
    for path in sorted(logs.glob("*.log")):
        n_logs += 1
        errors, summary = scan_log(path)
        for block in errors:
            groups.setdefault(signature(block), []).append((path.name, block))
        if summary and not errors:
            unreported.append(f"{path.name}: ERROR SUMMARY says {summary}")
    print(f"\nvalgrind: {n_logs} process logs in {logs}")
    for i, (sig, hits) in enumerate(sorted(groups.items(), key=lambda kv: -len(kv[1])), 1):
        names = sorted({name for name, _ in hits})
        print(f"\n--- error {i}: {len(hits)} time(s) in {len(names)} log(s), e.g. {names[0]}")
        print("\n".join(hits[0][1]))
    for line in unreported:
        print(line)
    return len(groups) + len(unreported)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    build = Path(argv[1])
    logs = (build / "valgrind" / "logs").resolve()
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    wrappers = write_wrappers(build, logs)
    pytest_args = argv[2:] or os.environ.get("VALGRIND_TESTS", "").split() \
        or DEFAULT_TESTS + DESELECTED
    t0 = time.monotonic()
    unit_failed = run_unit_tests(build, logs)
    rc = run_integration(wrappers, pytest_args)
    errors = report(logs)
    print(f"\nvalgrind: {errors} distinct memcheck error(s) or definite leak(s); "
          f"unit tests failed: {unit_failed or 'none'}; pytest exit code {rc}; "
          f"{(time.monotonic() - t0) / 60:.1f} min")
    return 1 if errors or unit_failed or rc != 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
