"""proctree.py - CPU time and memory of a server's whole process tree, from /proc.

A server here is a master and everything it forked (wahagate: fetcher and
workers; nginx: workers, cache manager and loader). The benchmark charges a
server for all of them:

- cpu_ticks(pid): utime+stime+cutime+cstime of the master and of every live
  descendant, in clock ticks. A child that exits during a run is not lost:
  once reaped, its time is in its parent's cutime/cstime, which is summed too.
  Take it before and after a run; the difference is the server's CPU time.
- rss_kb(pid): the sum of VmRSS of the same processes (shared pages, such as
  wahagate's region or nginx's cache zone, count once per process that
  touched them: the figure the issue's targets use).
- pss_kb(pid): the sum of Pss (shared pages split between their users): what
  the tree really costs the machine.

Only the standard library; imported by compare.py and hold_conns.py.
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree(pid):
    """pid and all its live descendants (children of every thread, recursively)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def _stat_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            # the command may hold spaces and parentheses: split after the last ')'
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14..17
    return sum(int(x) for x in fields[11:15])


def cpu_ticks(pid):
    return sum(_stat_ticks(p) for p in tree(pid))


def _field_kb(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid):
    return sum(_field_kb(f"/proc/{p}/status", "VmRSS:") for p in tree(pid))


def pss_kb(pid):
    return sum(_field_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in tree(pid))
