"""Test controls of the WAHA simulator (/_sim/*; scripts/waha_sim.py's docstring lists them)."""

import re
from urllib.parse import unquote

import waha_sim_auth as auth
from waha_sim_base import CONFIG_KEYS, HttpError, derive_me, resp_json

FAULT_MODES = ("none", "down", "slow", "error", "garbage", "oversized", "unauthorized", "health")


def handle_control(sim, req):
    p, m = req.path.rstrip("/"), req.method
    if p == "/_sim/stats" and m == "GET":
        with sim.lock:
            return resp_json(200, sim.stats_locked())
    if p == "/_sim/reset" and m == "POST":
        with sim.lock:
            sim.reset_stats()
            sim.webhook_log.clear()
            return resp_json(200, sim.stats_locked())
    if p == "/_sim/fault" and m in ("GET", "POST"):
        if m == "POST":
            sim_set_fault(sim, req.json())
        with sim.lock:
            return resp_json(200, dict(sim.fault))
    if p == "/_sim/webhooks" and m == "GET":
        with sim.lock:
            return resp_json(200, list(sim.webhook_log))
    if p == "/_sim/messages" and m == "GET":
        with sim.lock:
            return resp_json(200, list(sim.sent_messages))
    if p == "/_sim/deliveries" and m == "GET":
        return resp_json(200, sim.sender.attempts_log())
    if p == "/_sim/config" and m in ("GET", "POST"):
        if m == "POST":
            sim_set_config(sim, req.json())
        with sim.lock:
            return resp_json(200, sim_config(sim))
    found = re.fullmatch(r"/_sim/sessions/([^/]+)", p)
    if found and m in ("POST", "DELETE"):
        name = unquote(found.group(1))
        if m == "DELETE":
            with sim.lock:
                return resp_json(200, {"deleted": sim.remove_locked(name) is not None})
        return sim_set_session(sim, name, req.json())
    return resp_json(404, {"error": f"unknown control {m} {req.path}"})


def control_error(message):
    return HttpError(resp_json(400, {"error": message}))


def sim_set_fault(sim, body):
    mode = body.get("mode")
    if mode not in FAULT_MODES:
        raise control_error(f"mode must be one of {', '.join(FAULT_MODES)}")
    fault = {"mode": mode}
    if mode != "none":
        try:
            fault["delayMs"] = max(0, int(body.get("delayMs", 3000)))
            fault["status"] = int(body.get("status", 500))
        except (TypeError, ValueError):
            raise control_error("delayMs and status must be integers")
        if not 100 <= fault["status"] <= 599:
            raise control_error("status must be 100..599")
        if body.get("retryAfter") is not None:
            fault["retryAfter"] = body["retryAfter"]
        if body.get("paths"):
            fault["paths"] = str(body["paths"])
    with sim.lock:
        sim.fault = fault


def sim_config(sim):
    conf = {k: getattr(sim, attr) for k, attr in CONFIG_KEYS.items()}
    conf.update(sim.keys.describe())
    conf.update(webhookUrl=sim.webhook_url, webhookHmacKey=sim.webhook_hmac_key,
                legacyWebhooks=sim.legacy_webhooks, webhookMaxInFlight=sim.sender.max_in_flight,
                qrRunningMs=sim.qr_running_ms, core=sim.core)
    return conf


def _int_knob(key, value, minimum=0):
    try:
        return max(minimum, int(value))
    except (TypeError, ValueError):
        raise control_error(f"{key} must be an integer")


def sim_set_config(sim, body):
    """Validate everything first, then apply it all at once."""
    changes = {}
    for key, attr in CONFIG_KEYS.items():
        if key in body:
            changes[attr] = _int_knob(key, body[key], 1 if key == "qrCount" else 0)
    if "qrRunningMs" in body:
        running = body["qrRunningMs"]
        changes["qr_running_ms"] = None if running is None else _int_knob("qrRunningMs", running)
    max_in_flight = _int_knob("webhookMaxInFlight", body["webhookMaxInFlight"], 1) \
        if "webhookMaxInFlight" in body else None
    if "legacyWebhooks" in body:
        changes["legacy_webhooks"] = bool(body["legacyWebhooks"])
    for key, attr in (("webhookUrl", "webhook_url"), ("webhookHmacKey", "webhook_hmac_key")):
        if key in body:
            changes[attr] = str(body[key]) if body[key] else None
    admin, session_keys = sim.keys.admin, sim.keys.session_keys
    try:
        if "apiKey" in body:
            admin = auth.Key(str(body["apiKey"])) if body["apiKey"] else None
        if "sessionKeys" in body:
            given = body["sessionKeys"] or {}
            if not isinstance(given, dict) or not all(isinstance(v, list) for v in given.values()):
                raise ValueError('sessionKeys must be {"KEY": ["name", ...]} or null')
            session_keys = [(auth.Key(k), frozenset(str(n) for n in v)) for k, v in given.items()]
    except ValueError as exc:
        raise control_error(str(exc))
    with sim.lock:
        for attr, value in changes.items():
            setattr(sim, attr, value)
        sim.keys = auth.Keys(admin, session_keys)
        if max_in_flight is not None:
            sim.sender.max_in_flight = max_in_flight


def sim_set_session(sim, name, body):
    status = body.get("status")
    if not isinstance(status, str) or not status:
        return resp_json(400, {"error": "status (string) is required"})
    with sim.lock:
        s = sim.sessions.get(name) or sim.create_locked(name)
        s.due = None
        if "me" in body:
            s.me = body["me"]
        elif status == "WORKING" and not s.me:
            s.me = derive_me(name)
        if status == "SCAN_QR_CODE":
            sim.enter_qr_locked(s)
        else:
            sim.set_status_locked(s, status)
        return resp_json(200, sim.info_locked(s))
