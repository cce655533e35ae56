"""Shared pieces of the WAHA simulator (scripts/waha_sim.py, whose docstring is the manual):
constants, WAHA's response bodies, the parsed request and the session record."""

import base64
import hashlib
import json
import os
import struct
import time
import zlib
from collections import deque
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

import waha_sim_auth as auth

VERSION = "2026.2.1"
ENGINE = "WEBJS"
BROWSER = "/usr/bin/chromium"
WWEB_VERSION = "2.3000.1031490220"
MAX_SESSIONS = 100000
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
ENGINE_STATE = {"WORKING": "CONNECTED", "SCAN_QR_CODE": "UNPAIRED", "STARTING": "OPENING"}
JSON_TYPE = "application/json; charset=utf-8"
# /_sim/config key -> Simulator attribute, for the integer knobs
CONFIG_KEYS = {"startDelayMs": "start_delay_ms", "qrFirstMs": "qr_first_ms", "qrNextMs": "qr_next_ms",
               "qrCount": "qr_count", "stopDelayMs": "stop_delay_ms", "engineDelayMs": "engine_delay_ms",
               "qrGateMs": "qr_gate_ms", "webhookRetries": "webhook_retries",
               "webhookRetryDelayMs": "webhook_retry_delay_ms"}

# --------------------------------------------------------------------------- helpers

def now_ms():
    return int(time.time() * 1000)


def _base32(value, length):
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(length)))


def ulid():
    """26 lowercase Crockford chars: 10 of millisecond time, 16 random."""
    return _base32(now_ms(), 10) + _base32(int.from_bytes(os.urandom(10), "big"), 16)


def derive_me(name):
    digits = str(int(hashlib.sha256(name.encode()).hexdigest(), 16))[-10:]
    return {"id": "1" + digits + "@c.us", "pushName": name[:1].upper() + name[1:]}


def new_qr_value():
    """Looks like a WEBJS QR string: 2@ref,noiseKey,identityKey,advSecret."""
    return "2@" + ",".join(base64.b64encode(os.urandom(n)).decode() for n in (48, 32, 32, 32))


def qr_png(value, modules=33, scale=4, border=4):
    """A valid greyscale PNG of a QR-looking module grid derived from `value`."""
    bits, seed = [], value.encode()
    while len(bits) < modules * modules:
        seed = hashlib.sha256(seed).digest()
        bits.extend((byte >> k) & 1 for byte in seed for k in range(8))
    grid = [bits[r * modules:(r + 1) * modules] for r in range(modules)]
    for r0, c0 in ((0, 0), (0, modules - 7), (modules - 7, 0)):  # finder patterns
        for r in range(-1, 8):
            for c in range(-1, 8):
                rr, cc = r0 + r, c0 + c
                if 0 <= rr < modules and 0 <= cc < modules:
                    inside = 0 <= r < 7 and 0 <= c < 7
                    grid[rr][cc] = 1 if inside and max(abs(r - 3), abs(c - 3)) != 2 else 0
    size = (modules + 2 * border) * scale
    raw = bytearray()
    for y in range(size):
        r = y // scale - border
        row = grid[r] if 0 <= r < modules else None
        raw.append(0)  # filter type: none
        for x in range(size):
            c = x // scale - border
            raw.append(0 if row is not None and 0 <= c < modules and row[c] else 255)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def to_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def resp_json(status, obj, headers=None):
    return (status, to_json(obj), JSON_TYPE, headers or {})


def resp_empty(status=200):
    return (status, b"", None, {})


def http_error(status, message):
    """NestJS HttpException body built with a string message."""
    return resp_json(status, {"message": message, "error": HTTPStatus(status).phrase, "statusCode": status})


def bad_request(messages):
    return http_error(400, list(messages))


UNAUTHORIZED = resp_json(401, {"message": "Unauthorized", "statusCode": 401})
FORBIDDEN = resp_json(403, {"message": "Forbidden", "statusCode": 403})


class HttpError(Exception):
    def __init__(self, resp):
        super().__init__(resp[0])
        self.resp = resp


NOT_FOUND = http_error(404, "Session not found")


def not_running(name):
    return http_error(404, f"We didn't find a session with name '{name}'.\n"
                           f"Please start it first by using POST /api/sessions/{name}/start request")


def status_not_expected(name, status):
    return resp_json(422, {"error": "Session status is not as expected. Try again later or restart the session",
                           "session": name, "status": status, "expected": ["SCAN_QR_CODE"]})


class Request:
    def __init__(self, method, raw_path, headers, body):
        parts = urlsplit(raw_path)
        self.method, self.raw_path, self.path = method, raw_path, parts.path
        self.query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers, self.body, self.params = headers, body, {}
        self.scope = auth.ADMIN  # or the frozenset of names a session-scoped key may use
        self._json = None

    @property
    def name(self):
        return unquote(self.params["name"]) if "name" in self.params else None

    def json(self):
        if self._json is not None:
            return self._json
        if not self.body.strip():
            self._json = {}
            return self._json
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(http_error(400, f"Unexpected token in JSON at position {getattr(exc, 'pos', 0)}"))
        if not isinstance(value, dict):
            raise HttpError(http_error(400, "Request body must be a JSON object"))
        self._json = value
        return value


# --------------------------------------------------------------------------- state

class Session:
    def __init__(self, name, status="STOPPED", me=None, config=None):
        self.name, self.status, self.me = name, status, me
        self.config = config if config is not None else {}
        self.statuses = deque(maxlen=3)
        self.activity = None
        self.qr, self.qr_index, self.qr_png = None, 0, None
        self.due, self.action = None, None  # one pending timer: (monotonic time, "boot" | "qr")

    @property
    def running(self):
        return self.status != "STOPPED"

