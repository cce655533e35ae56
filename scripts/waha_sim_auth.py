"""API keys of the WAHA simulator (scripts/waha_sim.py), imported by it.

WAHA (waha-api.md 1 and 9; src/core/auth/ApiKeyAuthFactory.ts, policies.guard.ts, casl.rules.ts,
2026.2.1): `WAHA_API_KEY` is either the plain key, compared in constant time, or `sha512:<hex>`,
in which case the client still sends the plain key and WAHA compares the hex SHA-512 of what it
got. With no key at all (WAHA_NO_API_KEY) every request is an admin's. Per-session keys may use
only their sessions: `GET /api/sessions` is filtered for them, and another session's routes and
the server endpoints (`/health`, `/api/server/*`, `/api/version`) answer 403
`{"message":"Forbidden","statusCode":403}`.
"""

import hashlib
import hmac
import re

HEX512 = re.compile(r"^[0-9a-fA-F]{128}$")
ADMIN = "admin"


class Key:
    """One configured key: plain text, or `sha512:<128 hex digits>`."""

    def __init__(self, text):
        if not isinstance(text, str) or not text:
            raise ValueError("a key must be a non-empty string")
        self.text = text
        if text.startswith("sha512:"):
            digest = text[len("sha512:"):]
            if not HEX512.match(digest):
                raise ValueError("sha512: must be followed by 128 hex digits")
            self.hashed, self.secret = True, digest.lower().encode()
        else:
            self.hashed, self.secret = False, text.encode()

    def matches(self, given):
        """GIVEN (bytes, the key the client sent) is this key; constant time."""
        if self.hashed:
            given = hashlib.sha512(given).hexdigest().encode()
        return hmac.compare_digest(given, self.secret)


def parse_session_key(text):
    """`KEY:s1,s2` -> (Key, frozenset of names). The names follow the LAST `:` (session names
    hold no `:`), so a hashed key `sha512:<hex>:s1` works too."""
    key, sep, names = text.rpartition(":")
    scope = frozenset(n.strip() for n in names.split(",") if n.strip())
    if not sep or not key or not scope:
        raise ValueError(f"session key {text!r} is not KEY:NAME[,NAME...]")
    return Key(key), scope


class Keys:
    """The admin key (None: no authentication) and the session-scoped keys."""

    def __init__(self, admin=None, session_keys=()):
        self.admin = admin
        self.session_keys = list(session_keys)

    def check(self, given):
        """ADMIN, a frozenset of session names (a scoped key), or None (401). GIVEN: str or None."""
        if self.admin is None:
            return ADMIN
        raw = (given or "").encode("utf-8", "replace")
        if self.admin.matches(raw):
            return ADMIN
        found = None
        for key, scope in self.session_keys:  # all compared: no early exit on a match
            if key.matches(raw) and found is None:
                found = scope
        return found

    def describe(self):
        return {"apiKey": self.admin.text if self.admin else None,
                "sessionKeys": {k.text: sorted(scope) for k, scope in self.session_keys}}


def server_path(path):
    """Server endpoints a session-scoped key may not use (casl.rules.ts: server rights)."""
    return path in ("/health", "/api/version") or path.startswith(("/health/", "/api/server/"))
