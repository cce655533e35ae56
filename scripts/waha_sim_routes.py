"""WAHA's routes in the WAHA simulator (scripts/waha_sim.py, whose docstring is the manual).
Each handler takes (sim, req) and returns (status, body bytes, content type, headers)."""

import base64
import os
import re
import shutil
import time

import waha_sim_auth as auth
from waha_sim_base import (ENGINE, NOT_FOUND, UNAUTHORIZED, FORBIDDEN, JSON_TYPE, HttpError, Session,
                           bad_request, http_error, not_running, now_ms, qr_png, resp_empty, resp_json,
                           status_not_expected, ulid)

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]*$")
BOOL_VALUES = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}
ROUTES = []  # (method, compiled path regex, stats key "METHOD /template", handler)


def route(method, template):
    """Decorator registering a WAHA route; `{name}` in the template is the session name."""
    regex = re.compile("^" + re.escape(template).replace(r"\{name\}", "(?P<name>[^/]+)") + "/?$")

    def register(fn):
        ROUTES.append((method, regex, f"{method} {template}", fn))
        return fn
    return register


def core_guard(sim, name):
    """WAHA Core's OnlyDefaultSessionIsAllowed: the text of src/core/manager.core.ts in 2026.2.1
    (waha-api.md 3.1: with the name and its base64; 2024.10.8 had neither)."""
    if sim.core and name != "default":
        b64 = base64.b64encode(name.encode()).decode()
        raise HttpError(http_error(422, f"WAHA Core support only 'default' session. You tried to access '{name}' "
                                        f"session (base64: {b64}). If you want to run more then one WhatsApp account"
                                        f" - please get WAHA PLUS version. Check this out: https://waha.devlike.pro/"))


def check_scope(req, name):
    """403 when a session-scoped key asks for another session (policies.guard.ts, waha-api.md 1)."""
    if req.scope is not auth.ADMIN and name not in req.scope:
        raise HttpError(FORBIDDEN)


def validate_name(name):
    """SessionCreateRequest's name checks (since 2025-08-05, commit a043a464, waha-api.md 9)."""
    if not isinstance(name, str):
        raise HttpError(bad_request(["name must be a string"]))
    errors = (["name must be shorter than or equal to 54 characters"] if len(name) > 54 else []) + \
             ([] if NAME_RE.match(name) else ["name must match /^[a-zA-Z0-9_-]*$/ regular expression"])
    if errors:
        raise HttpError(bad_request(errors))


def body_config(body):
    config = body.get("config")
    return config if isinstance(config, dict) else {}


@route("GET", "/ping")
def r_ping(sim, req):
    return resp_json(200, {"message": "pong"})


@route("GET", "/health")
def r_health(sim, req):
    if sim.core:
        return http_error(422, f"The feature is available only in Plus version for '{ENGINE}' engine. "
                               f"Check this out: https://waha.devlike.pro/")
    fault = sim.fault_for(req.path)
    broken = fault is not None and fault["mode"] == "health"
    free = shutil.disk_usage("/").free
    details = {key: {"status": "up", "path": path, "diskPath": "/", "free": free, "threshold": 104857600}
               for key, path in (("mediaFiles.space", "/app/.media"), ("sessionsFiles.space", "/app/.sessions"))}
    if broken:
        details["sessionsFiles.space"].update(status="down", message="Used disk storage exceeded the set threshold")
    return resp_json(503 if broken else 200, {
        "status": "error" if broken else "ok", "details": details,
        "info": {k: v for k, v in details.items() if v["status"] == "up"},
        "error": {k: v for k, v in details.items() if v["status"] != "up"}})


@route("GET", "/api/server/version")
@route("GET", "/api/version")
def r_server_version(sim, req):
    return resp_json(200, sim.environment())


@route("GET", "/api/server/status")
def r_server_status(sim, req):
    return resp_json(200, {"startTimestamp": sim.started_ms, "uptime": now_ms() - sim.started_ms,
                           "worker": {"id": ""}})


@route("GET", "/api/sessions")
def r_sessions_list(sim, req):
    """The list never calls the engine: no engine delay, no `engine` (waha-api.md 3.2)."""
    show_all = BOOL_VALUES.get(req.query.get("all", "false"))
    if show_all is None:
        return bad_request(["all must be a boolean value"])
    scope = req.scope
    with sim.lock:
        items = [sim.info_locked(s, detailed=False) for s in sim.sessions.values()
                 if (show_all or s.running) and (scope is auth.ADMIN or s.name in scope)]
    return resp_json(200, items)


@route("POST", "/api/sessions")
def r_session_create(sim, req):
    body = req.json()
    if body.get("name") is not None:
        validate_name(body["name"])
    name = body.get("name") or "session_" + ulid()
    check_scope(req, name)
    core_guard(sim, name)
    with sim.lock:
        if name in sim.sessions:
            return http_error(422, f"Session '{name}' already exists. Use PUT to update it.")
        s = sim.create_locked(name, body_config(body))
        if body.get("start"):
            sim.start_locked(s)
        return resp_json(201, sim.info_locked(s))


def _legacy_name(sim, req):
    """SessionStartDeprecatedRequest & co. only say @IsString() name (src/structures/
    sessions.deprecated.dto.ts, 2024.10.8; waha-api.md 9): no pattern, no length."""
    name = req.json().get("name")
    if name is None or name == "":
        raise HttpError(http_error(422, "Session name is required"))
    if not isinstance(name, str):
        raise HttpError(bad_request(["name must be a string"]))
    check_scope(req, name)
    core_guard(sim, name)
    return name


@route("POST", "/api/sessions/start")
def r_legacy_start(sim, req):
    body = req.json()
    name = _legacy_name(sim, req)
    with sim.lock:
        s = sim.sessions.get(name) or sim.create_locked(name)
        if s.running:
            return http_error(422, f"Session '{name}' is already started.")
        if "config" in body:
            s.config = body_config(body)
        sim.start_locked(s)
        return resp_json(201, sim.info_locked(s))


def _legacy_stop(sim, name, delete):
    """Legacy stop (and logout, which also deletes): 201 with no body, no 404."""
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return resp_empty(201)
        sim.stop_locked(s)
    time.sleep(sim.stop_delay_ms / 1000.0)
    if delete:
        with sim.lock:
            sim.remove_locked(name)
    return resp_empty(201)


@route("POST", "/api/sessions/stop")
def r_legacy_stop(sim, req):
    return _legacy_stop(sim, _legacy_name(sim, req), delete=bool(req.json().get("logout")))


@route("POST", "/api/sessions/logout")
def r_legacy_logout(sim, req):
    return _legacy_stop(sim, _legacy_name(sim, req), delete=True)


@route("GET", "/api/sessions/{name}")
def r_session_get(sim, req):
    with sim.lock:
        s = sim.sessions.get(req.name)
        if s is None:
            return NOT_FOUND
        running = s.running
    if running:  # getEngineInfo() only for a running session (manager.core.ts fetchEngineInfo)
        time.sleep(sim.engine_delay_ms / 1000.0)
    with sim.lock:
        s = sim.sessions.get(req.name)
        return resp_json(200, sim.info_locked(s)) if s else NOT_FOUND


def _stop_then(sim, name, restart, status=201, mutate=None, always_sleep=True):
    """Stop a session, sleep stop-delay (outside the lock), then start it again when `restart` says so
    ("always" or "if_running"). `mutate(session)` runs before the stop (logout, PUT)."""
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return NOT_FOUND
        was_running = s.running
        if mutate:
            mutate(s)
        sim.stop_locked(s)
    if always_sleep or was_running:
        time.sleep(sim.stop_delay_ms / 1000.0)
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return NOT_FOUND
        if (restart == "always" or (restart == "if_running" and was_running)) and not s.running:
            sim.start_locked(s)
        return resp_json(status, sim.info_locked(s))


@route("PUT", "/api/sessions/{name}")
def r_session_update(sim, req):
    config = body_config(req.json())
    return _stop_then(sim, req.name, "if_running", status=200, always_sleep=False,
                      mutate=lambda s: setattr(s, "config", config))


@route("DELETE", "/api/sessions/{name}")
def r_session_delete(sim, req):
    with sim.lock:
        s = sim.sessions.get(req.name)
        was_running = s is not None and s.running
        if was_running:
            sim.stop_locked(s)
    if was_running:
        time.sleep(sim.stop_delay_ms / 1000.0)
    with sim.lock:
        sim.remove_locked(req.name)
    return resp_empty(200)


@route("GET", "/api/sessions/{name}/me")
def r_session_me(sim, req):
    with sim.lock:
        s = sim.sessions.get(req.name)
        if s is None or not s.running:
            return not_running(req.name)
        if s.status == "WORKING" and s.me:
            return resp_json(200, s.me)
    return resp_empty(200)


@route("POST", "/api/sessions/{name}/start")
def r_session_start(sim, req):
    with sim.lock:
        s = sim.sessions.get(req.name)
        if s is None:
            return NOT_FOUND
        if s.running and sim.core:
            return http_error(422, f"Session '{req.name}' is already started.")
        if not s.running:
            sim.start_locked(s)
        return resp_json(201, sim.info_locked(s))


@route("POST", "/api/sessions/{name}/stop")
def r_session_stop(sim, req):
    return _stop_then(sim, req.name, "never")


@route("POST", "/api/sessions/{name}/restart")
def r_session_restart(sim, req):
    return _stop_then(sim, req.name, "always")


@route("POST", "/api/sessions/{name}/logout")
def r_session_logout(sim, req):
    return _stop_then(sim, req.name, "if_running", mutate=lambda s: setattr(s, "me", None))


@route("GET", "/api/{name}/auth/qr")
def r_auth_qr(sim, req):
    """QRCodeSessionPipe -> waitUntilStatus(['SCAN_QR_CODE']) (src/nestjs/pipes/SessionPipe.ts;
    the 5 s + 10 s of 2026.2.1 per waha-api.md 4; 2024.10.8 waited 5 s for the status only)."""
    name, fmt = req.name, req.query.get("format", "image")
    if fmt not in ("image", "raw"):
        return bad_request(["format must be one of the following values: image, raw"])
    wait_running, wait_status, poll = sim.gate_timing()
    missing = resp_json(422, {"error": f'Session "{name}" does not exist', "session": name})
    if not sim.wait_for(lambda: name in sim.sessions and sim.sessions[name].running, wait_running, poll):
        with sim.lock:
            s = sim.sessions.get(name)
            return status_not_expected(name, s.status) if s else missing
    sim.wait_for(lambda: name not in sim.sessions or sim.sessions[name].status == "SCAN_QR_CODE",
                 wait_status, poll)
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None:
            return missing
        if s.status != "SCAN_QR_CODE" or not s.qr:
            return status_not_expected(name, s.status)
        if fmt == "raw":
            return resp_json(200, {"value": s.qr})
        if s.qr_png is None:
            s.qr_png = qr_png(s.qr)
        png = s.qr_png
    if req.headers.get("Accept") == "application/json":
        return resp_json(200, {"mimetype": "image/png", "data": base64.b64encode(png).decode()})
    return (200, png, "image/png", {})


@route("POST", "/api/{name}/auth/request-code")
def r_auth_request_code(sim, req):
    name, body = req.name, req.json()
    if not isinstance(body.get("phoneNumber"), str):
        return bad_request(["phoneNumber must be a string"])
    with sim.lock:
        if name not in sim.sessions or not sim.sessions[name].running:
            return not_running(name)
    _, wait_status, poll = sim.gate_timing()
    sim.wait_for(lambda: name not in sim.sessions or sim.sessions[name].status != "STARTING", wait_status, poll)
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None or not s.running:
            return not_running(name)
        if s.status != "SCAN_QR_CODE":
            return http_error(422, f"Can request code only in SCAN_QR_CODE status. The current status is {s.status}")
    letters = "".join("ABCDEFGHJKLMNPQRSTVWXYZ"[b % 23] for b in os.urandom(8))
    return resp_json(201, {"code": letters[:4] + "-" + letters[4:]})


@route("POST", "/api/sendText")
def r_send_text(sim, req):
    """src/api/chatting.controller.ts sendText (2024.10.8, github:devlikeapro/waha branch core):
    getWorkingSession(request.session) is manager.abc.ts waitUntilStatus(name, ['WORKING']):
    getSession() first (404 "We didn't find a session..." when not running), then the wait for
    WORKING, then 422 {error, session, status, expected:["WORKING"]}; `session` defaults to
    "default" (structures/base.dto.ts SessionBaseRequest), `text` to "Hi there!"
    (chatting.dto.ts MessageTextRequest). The answer is the engine's message, 201 (a POST): for
    WEBJS whatsapp-web.js's Message, of which these are the fields clients read
    (structures/responses.dto.ts WAMessage: id, timestamp, from, fromMe, to, body, hasMedia, ack)."""
    body = req.json()
    name = body.get("session") or "default"
    chat_id, text = body.get("chatId"), body.get("text", "Hi there!")
    if not isinstance(name, str) or not isinstance(chat_id, str) or not isinstance(text, str):
        return bad_request(["chatId must be a string"])
    check_scope(req, name)
    core_guard(sim, name)
    with sim.lock:
        if name not in sim.sessions or not sim.sessions[name].running:
            return not_running(name)
    _, wait_status, poll = sim.gate_timing()
    sim.wait_for(lambda: name not in sim.sessions or sim.sessions[name].status == "WORKING",
                 wait_status, poll)
    with sim.lock:
        s = sim.sessions.get(name)
        if s is None or not s.running:
            return not_running(name)
        if s.status != "WORKING":
            return resp_json(422, {"error": "Session status is not as expected. Try again later or restart "
                                            "the session", "session": name, "status": s.status,
                                   "expected": ["WORKING"]})
        me = (s.me or {}).get("id", "")
        sim.sent_messages.append({"session": name, "chatId": chat_id, "text": text})
    to = chat_id if "@" in chat_id else chat_id + "@c.us"  # ensureSuffix()
    key = os.urandom(10).hex().upper()
    return resp_json(201, {
        "id": {"fromMe": True, "remote": to, "id": key, "_serialized": f"true_{to}_{key}"},
        "ack": 0, "hasMedia": False, "body": text, "type": "chat", "timestamp": now_ms() // 1000,
        "from": me, "to": to, "deviceType": "web", "isForwarded": False, "forwardingScore": 0,
        "isStatus": False, "isStarred": False, "fromMe": True, "hasQuotedMsg": False,
        "hasReaction": False, "vCards": [], "mentionedIds": [], "links": []})


def match_route(method, path):
    for m, regex, key, fn in ROUTES:
        if m == method:
            found = regex.match(path)
            if found:
                return key, fn, found.groupdict()
    return None, None, {}


def needs_auth(path):
    return path in ("/api", "/health") or path.startswith(("/api/", "/health/"))


def error_500(sim, req, status, message):
    """WAHA's AllExceptionsFilter body for a non-HttpException."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".%03dZ" % (now_ms() % 1000)
    return {"statusCode": status, "timestamp": ts,
            "exception": {"message": message, "name": "Error", "stack": f"Error: {message}\n    at Simulator"},
            "request": {"path": req.path, "method": req.method, "body": {}, "query": req.query},
            "version": sim.environment()}


def handle_waha(sim, req, fn):
    """Faults, then auth (401), then the route's guard (403), then the route. Returns a response
    tuple, or None to drop the connection."""
    fault = sim.fault_for(req.path)
    mode = fault["mode"] if fault else "none"
    if mode == "down":
        return None
    if mode == "slow":
        time.sleep(fault["delayMs"] / 1000.0)
    elif mode == "error":
        headers = {"Retry-After": str(fault["retryAfter"])} if "retryAfter" in fault else {}
        return resp_json(fault["status"], error_500(sim, req, fault["status"], "Simulated failure"), headers)
    elif mode == "garbage":
        return (200, b"<html>oops", JSON_TYPE, {})
    elif mode == "oversized":
        with sim.lock:
            base = sim.info_locked(next(iter(sim.sessions.values()), Session("default")))
        base["padding"] = "x" * (2 * 1024 * 1024)
        return resp_json(200, base)
    elif mode == "unauthorized":
        return UNAUTHORIZED
    if needs_auth(req.path):
        req.scope = sim.auth_scope(req)
        if req.scope is None:
            sim.count_auth("unauthorized")
            return UNAUTHORIZED
    if fn is None:
        return http_error(404, f"Cannot {req.method} {req.raw_path}")
    try:
        if req.scope is not auth.ADMIN and auth.server_path(req.path):
            raise HttpError(FORBIDDEN)
        if req.name is not None:
            check_scope(req, req.name)
            core_guard(sim, req.name)
        return fn(sim, req)
    except HttpError as exc:
        if exc.resp is FORBIDDEN:
            sim.count_auth("forbidden")
        return exc.resp
