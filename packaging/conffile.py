#!/usr/bin/python3
"""conffile.py - make the packaged /etc/wahagate/waha.ini from the tree's.

Usage: conffile.py IN OUT

The waha.ini at the top of the tree lists every key with its default and a
comment; the package ships the same file, so that it stays complete as keys
are added, with the values a system service needs:

  [server] user     empty: wahagate.service runs wahagate as the user
                    wahagate already (User=), there is no root to drop
  [server] pid_file empty: systemd tracks the master (Type=notify)
  [server] shm_name /wahagate
  [log] file        empty: standard error, which systemd sends to the journal
  [auth] required   true, with one placeholder key that no client can present
                    (required = true without any key is a configuration error)

Each of those lines must be found exactly once in IN; if the tree's file
changes shape, this fails instead of shipping something unchecked.
"""

import sys

HEADER = """\
;
; This is the Debian package's copy (/etc/wahagate/waha.ini, a conffile:
; your changes are kept on upgrades). wahagate.service runs wahagate as the
; system user wahagate and checks this file before each start. After a
; change, check it and apply it:
;   wahagate -t -c /etc/wahagate/waha.ini
;   systemctl reload wahagate
; The log goes to the journal: journalctl -u wahagate. See waha.ini(5).
"""

USER_COMMENT = """\
; Leave it empty with the packaged service: wahagate.service starts wahagate
; as the user wahagate already, so there is no root to drop.
"""

PLACEHOLDER = """\
;
; ************************************************************************
; The package requires client keys. Until you add one, no client can read
; session data: the placeholder key below cannot be presented by anyone
; (its secret is given as a SHA-256 of all zeros, which no known secret
; hashes to); it is here only because "required = true" without any key
; is a configuration error. To add a key for a client:
;   secret=$(openssl rand -hex 24)     # give this secret to the client
;   printf %s "$secret" | sha256sum    # put these 64 hex digits below
; key = myapp : sha256:<the 64 hex digits> : default
; then check the file and run "systemctl reload wahagate". Once you have a
; key of your own, you may remove the placeholder.
; ************************************************************************
key = placeholder : sha256:0000000000000000000000000000000000000000000000000000000000000000 : *
"""

# (section, key) -> value written in the packaged file.
FORCE = {
    ("server", "user"): "",
    ("server", "pid_file"): "",
    ("server", "shm_name"): "/wahagate",
    ("log", "file"): "",
    ("auth", "required"): "true",
}


def fail(message):
    sys.exit(f"conffile.py: {message}")


def convert(lines):
    out = []
    section = None
    seen = {k: 0 for k in FORCE}
    header_done = False
    example_key_seen = False
    for line in lines:
        stripped = line.strip()
        # The header is the first block of comment lines: ours follows it.
        if not header_done and not stripped.startswith(";"):
            out.append(HEADER)
            header_done = True
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        elif "=" in stripped and not stripped.startswith((";", "#")):
            key = stripped.split("=", 1)[0].strip()
            if (section, key) in FORCE:
                seen[(section, key)] += 1
                if (section, key) == ("server", "user"):
                    out.append(USER_COMMENT)
                value = FORCE[(section, key)]
                line = f"{key} = {value}".rstrip() + "\n"
            elif section == "auth" and key == "key":
                fail("the tree's waha.ini sets an [auth] key; the package ships none")
        out.append(line)
        # The example key of the tree's file ends the [auth] comments.
        if section == "auth" and stripped.startswith("; key ="):
            if example_key_seen:
                fail("more than one commented example key in [auth]")
            example_key_seen = True
            out.append(PLACEHOLDER)
    for (sec, key), count in seen.items():
        if count != 1:
            fail(f"[{sec}] {key} appears {count} times in the tree's waha.ini, "
                 "expected once")
    if not example_key_seen:
        fail("no commented example key (\"; key = ...\") in [auth] of the tree's waha.ini")
    return "".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: conffile.py IN OUT")
    with open(sys.argv[1], encoding="utf-8") as f:
        text = convert(f.readlines())
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
