#!/usr/bin/python3
"""check_roles.py - the roles' boundaries, checked on the compiled objects.

    check_roles.py WORKER_OBJECTS... -- FETCHER_OBJECTS...

wahagate is one binary whose processes run different roles (ARCHITECTURE.md):
workers serve clients and must never call WAHA; the fetcher calls WAHA and
serves no client. The tree keeps their code apart (server/worker/,
server/fetcher/, with per-role include paths); this checks what the linker
would join: no worker object uses a symbol that a fetcher object defines, or
anything of libcurl, and no fetcher object uses a worker's symbol. Prints
each violation and exits 1, or exits 0 quietly.
"""
import subprocess
import sys


def symbols(objects, defined):
    flag = "--defined-only" if defined else "--undefined-only"
    out = subprocess.run(["nm", flag, "--format=posix", *objects], check=True,
                         capture_output=True, text=True).stdout
    found = {}
    current = None
    for line in out.splitlines():
        if line.endswith(":"):
            current = line[:-1].split("[")[-1].rstrip("]")
            continue
        fields = line.split()
        if len(fields) >= 2 and (not defined or fields[1] in "TDBRC"):
            found.setdefault(fields[0], set()).add(current)
    return found


def main(argv):
    if "--" not in argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    split = argv.index("--")
    worker, fetcher = argv[:split], argv[split + 1:]
    problems = []
    worker_defs, fetcher_defs = symbols(worker, True), symbols(fetcher, True)
    for sym, users in sorted(symbols(worker, False).items()):
        if sym.startswith("curl_") or sym in fetcher_defs:
            problems.append(f"worker code {', '.join(sorted(users))} uses {sym}")
    for sym, users in sorted(symbols(fetcher, False).items()):
        if sym in worker_defs:
            problems.append(f"fetcher code {', '.join(sorted(users))} uses {sym}")
    for p in problems:
        print("roles: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
