/*
 * compat_waha.c - WAHA's own read paths, served from the cache
 * ([compat] waha_api), so that WAHA's clients (its dashboard, n8n's node,
 * its SDKs, health checks) gain the cache by changing only their base URL.
 *
 * DESIGN
 * Paths: GET (and HEAD) /api/sessions[?all=true], /api/sessions/{name},
 * /api/sessions/{name}/me, /api/{name}/auth/qr, /ping, /health,
 * /api/server/version, /api/version and /api/server/status. Each answers
 * what WAHA answers (docs/waha-api.md: bodies, status codes, NestJS's
 * error shapes, "application/json; charset=utf-8"), from the same entries,
 * with the same demand marks and verdicts as /api/waha/... (sessions.c,
 * status.c): a reader of /api/sessions/default and one of
 * /api/waha/status?session=default share one refresh, a cold entry parks
 * its readers until one WAHA call answers them all, and data kept while
 * WAHA fails is served in WAHA's shape with its age in the headers: Age,
 * Cache-Control and X-Cache (HIT: fresh at first look; STALE: kept while
 * WAHA fails; MISS: waited for, or nothing to serve).
 *
 * The doors are WAHA's (auth.c): with [auth] required, a client key,
 * scoped to its sessions (another session, or a server endpoint for a key
 * without *, is WAHA's 403); otherwise upstream.api_key itself when it is
 * set (401 without it), so that exactly those who could read WAHA can
 * read the gateway. /ping needs no key, as on WAHA. The list is filtered
 * to a scoped key's sessions, as WAHA filters it.
 *
 * Where the gateway cannot be WAHA it says so in WAHA's shape: a 503 when
 * it has no data yet, a 405 for writes (they go to WAHA: the nginx front
 * of packaging/nginx/wahagate.conf sends them there). WAHA's QR gate waits
 * up to 15 s for SCAN_QR_CODE; the cache knows the status and answers its
 * 422 at once.
 */
#include <stdio.h>
#include <string.h>

#include "compat_render.h"
#include "handlers.h"
#include "timeutil.h"
#include "waha.h"

#define WAHA_JSON "application/json; charset=utf-8"

/*========================================================================
 * Answers in WAHA's shapes.
 */

/* STATUS with a NestJS error body (MESSAGE NULL: the bare 401/403 shape). */
static enum route_result waha_error(struct http_response *resp, int status,
                                    const char *message, bool as_array)
{
    struct jbuf b;

    jbuf_init(&b, resp->small, sizeof(resp->small));
    compat_waha_error(&b, status, message, as_array);
    resp->status = status;
    resp->content_type = WAHA_JSON;
    resp->body = resp->small;
    resp->body_len = b.len;
    return ROUTE_DONE;
}

static void waha_json(struct http_response *resp, int status, const char *body,
                      size_t len)
{
    route_json(resp, body, len);
    resp->status = status;
    resp->content_type = WAHA_JSON;
}

static void x_cache(struct http_response *resp, enum cache_verdict v,
                    const struct http_request_view *req)
{
    http_response_header(resp, "X-Cache", "%s",
                         v == CACHE_STALE                   ? "STALE"
                         : v == CACHE_FRESH && !req->parked ? "HIT"
                                                            : "MISS");
}

/* Freshness headers without a validator (lists): Age, Cache-Control. */
static void freshness(struct http_response *resp, bool stale, int64_t max_age_ms,
                      int64_t age_ms)
{
    http_response_header(resp, "Cache-Control",
                         "max-age=%lld, stale-while-revalidate=%lld, stale-if-error=%lld",
                         stale ? 0LL
                               : (long long)cache_max_age_seconds(max_age_ms, age_ms),
                         (long long)(max_age_ms / 1000),
                         (long long)(rt.cfg->backend.stale_if_error / 1000));
    route_header_int(resp, "Age", age_ms / 1000);
}

/* The gateway has no data to answer with (verdict V on D): WAHA's shape of
 * a 503, with Retry-After. */
static enum route_result unavailable(struct http_response *resp, enum cache_verdict v,
                                     const struct entry_data *d, int64_t now)
{
    char message[REGION_ERROR_MAX + 96];

    route_unavailable(resp, v, d->last_error, "this", now); /* status and Retry-After */
    snprintf(message, sizeof(message), "%s%s%s",
             v == CACHE_TOO_OLD
                 ? "wahagate: WAHA's last answer is older than stale_if_error"
                 : "wahagate: no answer from WAHA yet",
             d->last_error[0] ? ": " : "", d->last_error);
    waha_error(resp, 503, message, false);
    http_response_header(resp, "X-Cache", "MISS");
    return ROUTE_DONE;
}

/*========================================================================
 * The doors.
 */

/* May REQ pass WAHA's door (SERVER: a server endpoint, which needs an
 * admin's key)? Else RESP is WAHA's 401 or 403. */
static bool door(const struct http_request_view *req, struct http_response *resp,
                 bool server)
{
    bool presented;

    rt.key = NULL;
    if (rt.cfg->auth.required) {
        rt.key = auth_key_of(req, &presented);
        if (rt.key == NULL) {
            auth_refused(req, presented);
            waha_error(resp, 401, NULL, false);
            return false;
        }
        if (server && !rt.key->all_sessions) {
            waha_error(resp, 403, NULL, false);
            return false;
        }
        return true;
    }
    if (rt.cfg->upstream.api_key[0] != '\0' && !auth_upstream_key(req, &presented)) {
        auth_refused(req, presented);
        waha_error(resp, 401, NULL, false);
        return false;
    }
    return true;
}

/*
 * The entry of session NAME for a WAHA path: LOOKUP_FOUND with *INDEX, or
 * *INDEX -1 when the gateway knows no such session (each path says that in
 * its own words); LOOKUP_ANSWERED (403, 503) or LOOKUP_WAIT otherwise.
 */
static enum lookup find(const char *name, const struct http_request_view *req,
                        struct http_response *resp, int *index)
{
    enum lookup found;

    if (!auth_allows(name)) {
        waha_error(resp, 403, NULL, false);
        return LOOKUP_ANSWERED;
    }
    *index = -1;
    if (!waha_name_ok(name))
        return LOOKUP_FOUND;
    found = lookup_session(name, req, resp, index);
    if (found == LOOKUP_ANSWERED && resp->status == 404) {
        *index = -1;
        return LOOKUP_FOUND;
    }
    return found;
}

/*========================================================================
 * Sessions.
 */

static enum route_result serve_list(const struct http_request_view *req,
                                    struct http_response *resp)
{
    char value[16];
    bool all = false, any_miss;
    int64_t oldest = 0;
    enum lookup list;
    struct jbuf b;
    int param = http_query_param(req->query, "all", value, sizeof(value));

    if (param == -2 || (param == 0 && compat_bool_param(value, &all) != 0))
        return waha_error(resp, 400, "all must be a boolean value", true);
    if (rt.cfg->upstream.all_sessions &&
        (list = session_list_judge(req, resp)) != LOOKUP_FOUND)
        return list == LOOKUP_WAIT ? ROUTE_WAIT : ROUTE_DONE;
    if (session_judge_all(req, &any_miss))
        return ROUTE_WAIT;
    route_count(any_miss || req->parked ? COUNTER_CACHE_MISSES : COUNTER_CACHE_HITS);
    if (!session_list_render(&b, !all, &oldest, req->now_mono_ms))
        return waha_error(resp, 500, "wahagate: out of memory for the session list",
                          false);
    freshness(resp, false, rt.cfg->backend.session_cache_duration, oldest);
    x_cache(resp, any_miss ? CACHE_STALE : CACHE_FRESH, req);
    waha_json(resp, 200, b.data, b.len);
    return ROUTE_DONE;
}

/* The data verdict of session INDEX's list item (LE), as /api/waha/sessions. */
static enum cache_verdict judge_item(int index, const struct local_entry *le,
                                     const struct http_request_view *req)
{
    int64_t now = req->now_mono_ms;

    replica_mark_read(index, DEMAND_DATA, now);
    return replica_judge(
        index, DEMAND_DATA, session_has_object(&le->d), le->d.fetched_mono_ms,
        route_session_max_age(&le->d, rt.cfg->backend.session_cache_duration, now),
        rt.cfg->backend.stale_if_error, now, req->may_wait);
}

/* Entry INDEX at its sequence number: validators, freshness, X-Cache;
 * true when RESP is now a 304. */
static bool entry_headers(struct http_response *resp, int index,
                          const struct local_entry *le, enum cache_verdict v,
                          const struct http_request_view *req)
{
    x_cache(resp, v, req);
    return route_cache_headers(resp, index, le->seq / 2, v == CACHE_STALE,
                               rt.cfg->backend.session_cache_duration,
                               cache_age_ms(le->d.fetched_mono_ms, req->now_mono_ms),
                               req);
}

/* GET /api/sessions/{name}: the list item with "engine" (sessions.c). */
static enum route_result serve_object(const struct http_request_view *req,
                                      struct http_response *resp, const char *name)
{
    struct local_entry *le;
    enum cache_verdict v;
    enum lookup found;
    struct jbuf b;
    int index;

    if ((found = find(name, req, resp, &index)) != LOOKUP_FOUND)
        return found == LOOKUP_WAIT ? ROUTE_WAIT : ROUTE_DONE;
    if (index < 0 || (le = replica_entry(index)) == NULL)
        return waha_error(resp, 404, "Session not found", false);
    replica_mark_read(index, DEMAND_DATA, req->now_mono_ms);
    if ((v = session_judge_object(index, le, req)) == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD)
        return unavailable(resp, v, &le->d, req->now_mono_ms);
    if (!le->d.exists) /* WAHA Core's 422 for another name, or its 404 */
        return le->d.absent_reason[0] != '\0'
                   ? waha_error(resp, 422, le->d.absent_reason, false)
                   : waha_error(resp, 404, "Session not found", false);
    if (entry_headers(resp, index, le, v, req))
        return ROUTE_DONE;
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    if ((le = replica_body(index)) == NULL || !session_render_object(le, &b))
        return waha_error(resp, 500, "wahagate: the session does not fit the buffer",
                          false);
    waha_json(resp, 200, b.data, b.len);
    return ROUTE_DONE;
}

/* GET /api/sessions/{name}/me: WAHA's MeInfo, an empty 200 while there is
 * none, 404 for a session that is not running. */
static enum route_result serve_me(const struct http_request_view *req,
                                  struct http_response *resp, const char *name)
{
    struct local_entry *le;
    enum cache_verdict v;
    enum lookup found;
    struct jbuf b, nr;
    int index, me;

    if ((found = find(name, req, resp, &index)) != LOOKUP_FOUND)
        return found == LOOKUP_WAIT ? ROUTE_WAIT : ROUTE_DONE;
    jbuf_init(&nr, resp->small, sizeof(resp->small));
    if (index >= 0 && (le = replica_entry(index)) != NULL) {
        if ((v = judge_item(index, le, req)) == CACHE_WAIT)
            return ROUTE_WAIT;
        route_count_verdict(v, req);
        if (v == CACHE_EMPTY || v == CACHE_TOO_OLD)
            return unavailable(resp, v, &le->d, req->now_mono_ms);
        if (le->d.exists && strcmp(le->d.raw_status, "STOPPED") != 0) {
            if (entry_headers(resp, index, le, v, req))
                return ROUTE_DONE;
            jbuf_init(&b, rt.scratch, rt.scratch_size);
            if ((le = replica_body(index)) == NULL ||
                (me = compat_member(&b, le->body, le->d.body_len, "me")) < 0)
                return waha_error(resp, 500, "wahagate: cannot read the cached session",
                                  false);
            waha_json(resp, 200, b.data, me == 1 ? b.len : 0);
            if (me == 0)
                resp->content_type = NULL; /* Nest's reply to a handler's null */
            return ROUTE_DONE;
        }
    }
    compat_not_running(&nr, name);
    waha_json(resp, 404, resp->small, nr.len);
    return ROUTE_DONE;
}

/*========================================================================
 * QR codes.
 */

/* WAHA's 422 from its status gate: the session does not exist (STATUS
 * NULL) or waits for no scan. */
static enum route_result qr_gate(struct http_response *resp, const char *name,
                                 const char *status)
{
    struct jbuf b;

    jbuf_init(&b, resp->small, sizeof(resp->small));
    compat_qr_gate(&b, name, status);
    waha_json(resp, 422, resp->small, b.len);
    return ROUTE_DONE;
}

/* The QR code of session INDEX (LE), which waits for a scan. */
static enum route_result send_code(const struct http_request_view *req,
                                   struct http_response *resp, int index,
                                   const struct local_entry *le)
{
    struct local_qr *lq;
    enum cache_verdict v;

    v = session_judge_qr_code(index, le, req, &lq);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    if (lq == NULL || !lq->d.has_qr) {
        waha_error(resp, 503, "wahagate: WAHA has not given this session's QR code yet",
                   false);
        http_response_header(resp, "Retry-After", "1");
        return ROUTE_DONE;
    }
    x_cache(resp, v, req);
    qr_send(req, resp, index, lq);
    if (resp->content_type != NULL && strcmp(resp->content_type, "application/json") == 0)
        resp->content_type = WAHA_JSON;
    return ROUTE_DONE;
}

/* GET /api/{name}/auth/qr: never for a client WAHA would refuse (door()
 * and find() ran first). */
static enum route_result serve_code(const struct http_request_view *req,
                                    struct http_response *resp, const char *name)
{
    int64_t now = req->now_mono_ms;
    char format[16];
    struct local_entry *le;
    enum cache_verdict v;
    enum lookup found;
    int index;

    int param = http_query_param(req->query, "format", format, sizeof(format));

    if (param == -2 ||
        (param == 0 && strcmp(format, "image") != 0 && strcmp(format, "raw") != 0))
        return waha_error(resp, 400,
                          "format must be one of the following values: image, raw", true);
    if ((found = find(name, req, resp, &index)) != LOOKUP_FOUND)
        return found == LOOKUP_WAIT ? ROUTE_WAIT : ROUTE_DONE;
    if (index < 0 || (le = replica_entry(index)) == NULL)
        return qr_gate(resp, name, NULL);
    v = session_judge_qr_status(index, le, req);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        route_count_verdict(v, req);
        return unavailable(resp, v, &le->d, now);
    }
    if (!le->d.exists)
        return qr_gate(resp, name, NULL);
    if (strcmp(le->d.raw_status, "SCAN_QR_CODE") != 0) {
        route_count_verdict(v, req);
        return qr_gate(resp, name, le->d.raw_status);
    }
    return send_code(req, resp, index, le);
}

/*========================================================================
 * WAHA's server: /health, /api/server/version, /api/server/status.
 */

/* Entry INDEX (health or a server entry), judged on the health period:
 * its copy with its body, or NULL when RESP holds the answer (*RESULT). */
static struct local_entry *server_entry(const struct http_request_view *req,
                                        struct http_response *resp, int index,
                                        enum route_result *result)
{
    int64_t now = req->now_mono_ms, period = rt.cfg->backend.health_check_cache_duration;
    struct local_entry *le = replica_entry(index);
    enum cache_verdict v;

    *result = ROUTE_DONE;
    if (le == NULL) {
        waha_error(resp, 500, "wahagate: cannot read the cache", false);
        return NULL;
    }
    replica_mark_read(index, DEMAND_DATA, now);
    v = replica_judge(index, DEMAND_DATA, le->d.has_data, le->d.fetched_mono_ms, period,
                      rt.cfg->backend.stale_if_error, now, req->may_wait);
    if (v == CACHE_WAIT) {
        *result = ROUTE_WAIT;
        return NULL;
    }
    route_count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        unavailable(resp, v, &le->d, now);
        return NULL;
    }
    x_cache(resp, v, req);
    if (route_cache_headers(resp, index, le->seq / 2, v == CACHE_STALE, period,
                            cache_age_ms(le->d.fetched_mono_ms, now), req))
        return NULL;
    if ((le = replica_body(index)) == NULL)
        waha_error(resp, 500, "wahagate: cannot read the cache", false);
    return le;
}

/* GET /health: WAHA's terminus answer (200 ok, 503 otherwise), or its
 * refusal of /health (WAHA Core's 422) when the fetcher checks /ping. */
static enum route_result serve_waha_health(const struct http_request_view *req,
                                           struct http_response *resp)
{
    enum route_result result;
    struct local_entry *le;
    int status;

    if (!door(req, resp, true))
        return ROUTE_DONE;
    if ((le = server_entry(req, resp, REGION_ENTRY_HEALTH, &result)) == NULL)
        return result;
    if (strcmp(le->d.name, "/health") == 0) {
        waha_json(resp, strcmp(le->d.status, "ok") == 0 ? 200 : 503, le->body,
                  le->d.body_len);
        return ROUTE_DONE;
    }
    status = le->d.engine_len > 0 ? compat_status_code(le->engine, le->d.engine_len) : 0;
    if (status == 0)
        return waha_error(resp, 404, "Cannot GET /health", false);
    waha_json(resp, status, le->engine, le->d.engine_len);
    return ROUTE_DONE;
}

/* GET /api/server/version (and /api/version), /api/server/status. */
static enum route_result serve_server(const struct http_request_view *req,
                                      struct http_response *resp, int index)
{
    enum route_result result;
    struct local_entry *le;
    struct jbuf b;

    if (!door(req, resp, true))
        return ROUTE_DONE;
    if ((le = server_entry(req, resp, index, &result)) == NULL)
        return result;
    if (index == REGION_ENTRY_VERSION) {
        waha_json(resp, 200, le->body, le->d.body_len);
        return ROUTE_DONE;
    }
    /* WAHA's uptime is its clock's: the time since the fetch is added. */
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    compat_server_status(&b, le->body, le->d.body_len,
                         cache_age_ms(le->d.fetched_mono_ms, req->now_mono_ms));
    waha_json(resp, 200, b.data, b.len);
    return ROUTE_DONE;
}

/*========================================================================
 * Dispatch.
 */

enum waha_path {
    P_NONE,
    P_PING,
    P_HEALTH,
    P_VERSION,
    P_STATUS,
    P_LIST,
    P_OBJECT,
    P_ME,
    P_QR
};

/* Which WAHA path PATH is; the session it names into NAME. */
static enum waha_path waha_path_of(const char *path, char *name, size_t size)
{
    static const char sessions[] = "/api/sessions/", qr[] = "/auth/qr";
    const char *rest, *slash;
    size_t len;

    if (strcmp(path, "/ping") == 0)
        return P_PING;
    if (strcmp(path, "/health") == 0)
        return P_HEALTH;
    if (strcmp(path, "/api/server/version") == 0 || strcmp(path, "/api/version") == 0)
        return P_VERSION;
    if (strcmp(path, "/api/server/status") == 0)
        return P_STATUS;
    if (strcmp(path, "/api/sessions") == 0)
        return P_LIST;
    if (strncmp(path, sessions, sizeof(sessions) - 1) == 0) {
        rest = path + sizeof(sessions) - 1;
        slash = strchr(rest, '/');
        len = slash ? (size_t)(slash - rest) : strlen(rest);
        if (len == 0 || len >= size || (slash != NULL && strcmp(slash, "/me") != 0))
            return P_NONE;
        memcpy(name, rest, len);
        name[len] = '\0';
        return slash ? P_ME : P_OBJECT;
    }
    len = strlen(path);
    if (strncmp(path, "/api/", 5) != 0 || len <= 5 + sizeof(qr) - 1 ||
        strcmp(path + len - (sizeof(qr) - 1), qr) != 0)
        return P_NONE;
    len -= 5 + sizeof(qr) - 1;
    if (len >= size || memchr(path + 5, '/', len) != NULL)
        return P_NONE;
    memcpy(name, path + 5, len);
    name[len] = '\0';
    return P_QR;
}

static enum route_result waha_route(const struct http_request_view *req,
                                    struct http_response *resp, enum waha_path p,
                                    const char *name)
{
    switch (p) {
    case P_PING: waha_json(resp, 200, "{\"message\":\"pong\"}", 18); return ROUTE_DONE;
    case P_HEALTH: return serve_waha_health(req, resp);
    case P_VERSION: return serve_server(req, resp, REGION_ENTRY_VERSION);
    case P_STATUS: return serve_server(req, resp, REGION_ENTRY_SERVER);
    default: break;
    }
    if (!door(req, resp, false))
        return ROUTE_DONE;
    switch (p) {
    case P_LIST: return serve_list(req, resp);
    case P_OBJECT: return serve_object(req, resp, name);
    case P_ME: return serve_me(req, resp, name);
    default: return serve_code(req, resp, name);
    }
}

bool compat_dispatch(const struct http_request_view *req, struct http_response *resp,
                     enum route_result *result)
{
    static const enum endpoint endpoints[] = {
        [P_PING] = ENDPOINT_OTHER,     [P_HEALTH] = ENDPOINT_HEALTH,
        [P_VERSION] = ENDPOINT_HEALTH, [P_STATUS] = ENDPOINT_HEALTH,
        [P_LIST] = ENDPOINT_SESSIONS,  [P_OBJECT] = ENDPOINT_SESSION,
        [P_ME] = ENDPOINT_SESSION,     [P_QR] = ENDPOINT_QR,
    };
    char path[256], name[REGION_NAME_MAX]; /* longer paths are none of WAHA's */
    size_t len = strlen(req->path);
    enum waha_path p;

    if (req->admin)
        return false;
    if (rt.cfg->compat.seed_api && seed_dispatch(req, resp, result))
        return true;
    /* Express routes /api/sessions/ as /api/sessions. */
    if (!rt.cfg->compat.waha_api || len >= sizeof(path))
        return false;
    memcpy(path, req->path, len + 1);
    if (len > 1 && path[len - 1] == '/')
        path[len - 1] = '\0';
    if ((p = waha_path_of(path, name, sizeof(name))) == P_NONE)
        return false;
    resp->endpoint = endpoints[p];
    if (req->method != METHOD_GET && req->method != METHOD_HEAD) {
        waha_error(resp, 405, "wahagate serves WAHA's reads only: send this to WAHA",
                   false);
        http_response_header(resp, "Allow", "GET, HEAD");
        *result = ROUTE_DONE;
        return true;
    }
    *result = waha_route(req, resp, p, name);
    return true;
}
