/*
 * compat_seed.c - the original TypeScript backend's routes ([compat]
 * seed_api), so that its React frontend can point at the gateway
 * unchanged (docs/seed-backend.md has their shapes).
 *
 * DESIGN
 * The backend mounted one router at /api/v1/waha and at /api/v1/whatsapp:
 * GET status (and connection-status), monitoring/stats, qr (POST auth/qr
 * ran the same handler) and health, each answer in its envelope
 * {"success":true,"data":...}. They are served from the same entries, with
 * the same demand marks and verdicts, as /api/waha/status, /api/waha/health
 * and the QR codes (a cold entry parks its readers until one WAHA call
 * answers them all), and pass the same door as /api/waha/status ([auth]
 * client keys); the stats also need server.stats_token when it is set.
 *
 * The backend never let WAHA's failures become HTTP errors: status and
 * health stay 200 and say "disconnected" or "error", healthy false. Only
 * a QR code that is not there was its 500 {"success":false,"error":...},
 * and still is. The session is the backend's one session: the first the
 * key may see (upstream.sessions' first). Freshness is in the headers
 * (Age, Cache-Control, X-Cache) as on WAHA's paths.
 */
#include <stdio.h>
#include <string.h>

#include "compat_render.h"
#include "handlers.h"
#include "stats.h"
#include "timeutil.h"

#define SEED_JSON "application/json; charset=utf-8"

static enum route_result seed_error(struct http_response *resp, int status,
                                    const char *message)
{
    struct jbuf b;

    jbuf_init(&b, resp->small, sizeof(resp->small));
    compat_seed_error(&b, message);
    resp->status = status;
    resp->content_type = SEED_JSON;
    resp->body = resp->small;
    resp->body_len = b.len;
    return ROUTE_DONE;
}

static void seed_json(struct http_response *resp, const struct jbuf *b)
{
    route_json(resp, b->data, b->len);
    resp->content_type = SEED_JSON;
}

static void seed_headers(struct http_response *resp, enum cache_verdict v,
                         const struct http_request_view *req, int64_t max_age_ms,
                         int64_t age_ms)
{
    bool stale = v != CACHE_FRESH && !req->parked;

    http_response_header(resp, "Cache-Control", "max-age=%lld",
                         stale ? 0LL
                               : (long long)cache_max_age_seconds(max_age_ms, age_ms));
    route_header_int(resp, "Age", age_ms / 1000);
    http_response_header(resp, "X-Cache", "%s",
                         v == CACHE_FRESH && !req->parked ? "HIT"
                         : v == CACHE_STALE               ? "STALE"
                                                          : "MISS");
}

/* The door of /api/waha/status ([auth] client keys), in the envelope. */
static bool seed_door(const struct http_request_view *req, struct http_response *resp)
{
    if (auth_client(req, resp))
        return true;
    seed_error(resp, 401, "Unauthorized");
    return false;
}

/*========================================================================
 * status, connection-status.
 */

/* The session's figures from its copy LE (NULL: none) and verdict V. */
static void status_figures(const struct local_entry *le, enum cache_verdict v,
                           struct seed_status *s)
{
    bool data = le != NULL && le->d.has_data && v != CACHE_EMPTY && v != CACHE_TOO_OLD;
    bool reachable =
        data && v == CACHE_FRESH && le->d.healthy && replica_circuit() == CIRCUIT_CLOSED;

    memset(s, 0, sizeof(*s));
    s->now_real_ms = time_real_ms();
    s->service = data ? "error" : "disconnected";
    if (!data || !le->d.exists || strcmp(le->d.status, "UNKNOWN") == 0)
        return;
    s->service = le->d.status;
    s->authenticated = strcmp(le->d.status, "WORKING") == 0;
    s->connected = reachable && s->authenticated;
    s->qr_available = strcmp(le->d.status, "SCAN_QR_CODE") == 0;
    s->heartbeat_real_ms = le->d.fetched_real_ms;
}

static enum route_result serve_seed_status(const struct http_request_view *req,
                                           struct http_response *resp)
{
    int64_t now = req->now_mono_ms, max_age = rt.cfg->backend.status_cache_duration;
    const struct local_entry *le = NULL;
    enum cache_verdict v = CACHE_EMPTY;
    struct seed_status s;
    int index, headers = resp->header_count;
    struct jbuf b;

    switch (lookup_session(NULL, req, resp, &index)) {
    case LOOKUP_WAIT: return ROUTE_WAIT;
    case LOOKUP_ANSWERED: index = -1; break; /* no session: "error" */
    case LOOKUP_FOUND: break;
    }
    resp->header_count = headers; /* not the Retry-After of a 503 */
    if (index >= 0 && (le = replica_entry(index)) != NULL) {
        replica_mark_read(index, DEMAND_DATA, now);
        replica_mark_read(index, DEMAND_QR, now); /* its QR code is asked next */
        max_age = route_session_max_age(&le->d, max_age, now);
        v = replica_judge(index, DEMAND_DATA, le->d.has_data, le->d.fetched_mono_ms,
                          max_age, rt.cfg->backend.stale_if_error, now, req->may_wait);
        if (v == CACHE_WAIT)
            return ROUTE_WAIT;
    }
    route_count_verdict(v, req);
    status_figures(le, v, &s);
    seed_headers(resp, v, req, max_age,
                 le != NULL && le->d.has_data ? cache_age_ms(le->d.fetched_mono_ms, now)
                                              : 0);
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    compat_seed_status(&b, &s);
    seed_json(resp, &b);
    return ROUTE_DONE;
}

/*========================================================================
 * qr, health, monitoring/stats.
 */

static enum route_result serve_seed_qr(const struct http_request_view *req,
                                       struct http_response *resp)
{
    int64_t now = req->now_mono_ms;
    struct local_entry *le;
    struct local_qr *lq;
    enum cache_verdict v;
    char message[REGION_STATUS_MAX + 64];
    struct jbuf b;
    int index;

    switch (lookup_session(NULL, req, resp, &index)) {
    case LOOKUP_WAIT: return ROUTE_WAIT;
    case LOOKUP_ANSWERED:
        return seed_error(resp, 500, "No WhatsApp session to show a QR code of");
    case LOOKUP_FOUND: break;
    }
    if ((le = replica_entry(index)) == NULL)
        return seed_error(resp, 500, "Failed to read the cache");
    v = session_judge_qr_status(index, le, req);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD ||
        strcmp(le->d.raw_status, "SCAN_QR_CODE") != 0) {
        route_count_verdict(v, req);
        snprintf(message, sizeof(message), "QR code not available (session status: %s)",
                 v == CACHE_EMPTY || v == CACHE_TOO_OLD ? "disconnected"
                                                        : le->d.raw_status);
        return seed_error(resp, 500, message);
    }
    lq = replica_qr(index);
    v = replica_judge(index, DEMAND_QR, lq != NULL && lq->d.has_qr,
                      lq ? lq->d.fetched_mono_ms : 0, INT64_MAX / 4, INT64_MAX / 4, now,
                      req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    if (lq == NULL || !lq->d.has_qr)
        return seed_error(resp, 500, "QR code not available yet");
    jbuf_init(&b, route_scratch(COMPAT_SEED_QR_SIZE(lq->d.png_len)),
              COMPAT_SEED_QR_SIZE(lq->d.png_len));
    if (b.data == NULL)
        return seed_error(resp, 500, "Failed to get QR code");
    compat_seed_qr(&b, lq->d.png, lq->d.png_len);
    http_response_header(resp, "Cache-Control", "no-cache");
    seed_json(resp, &b);
    return ROUTE_DONE;
}

static enum route_result serve_seed_health(const struct http_request_view *req,
                                           struct http_response *resp)
{
    int64_t now = req->now_mono_ms, max_age = rt.cfg->backend.health_check_cache_duration;
    struct local_entry *le = replica_entry(REGION_ENTRY_HEALTH);
    enum cache_verdict v;
    bool healthy;
    struct jbuf b;

    if (le == NULL)
        return seed_error(resp, 500, "Failed to check WAHA health");
    replica_mark_read(REGION_ENTRY_HEALTH, DEMAND_DATA, now);
    v = replica_judge(REGION_ENTRY_HEALTH, DEMAND_DATA, le->d.has_data,
                      le->d.fetched_mono_ms, max_age, rt.cfg->backend.stale_if_error, now,
                      req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    healthy = v == CACHE_FRESH && le->d.healthy && replica_circuit() == CIRCUIT_CLOSED &&
              (strcmp(le->d.status, "ok") == 0 || strcmp(le->d.status, "pong") == 0);
    seed_headers(resp, v, req, max_age,
                 le->d.has_data ? cache_age_ms(le->d.fetched_mono_ms, now) : 0);
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    compat_seed_health(&b, healthy, le->d.name[0] ? le->d.name : "/health",
                       le->d.has_data ? le->d.fetched_real_ms : 0, time_real_ms());
    seed_json(resp, &b);
    return ROUTE_DONE;
}

static enum route_result serve_seed_stats(const struct http_request_view *req,
                                          struct http_response *resp)
{
    struct region_header *h = region_header(rt.region);
    struct seed_stats s = {
        .requests = region_counter_sum(rt.region, COUNTER_REQUESTS),
        .hits = region_counter_sum(rt.region, COUNTER_CACHE_HITS),
        .misses = region_counter_sum(rt.region, COUNTER_CACHE_MISSES),
        .calls = region_counter_sum(rt.region, COUNTER_UPSTREAM_CALLS),
        .errors = region_counter_sum(rt.region, COUNTER_ERRORS),
        .started_real_ms = h->started_real_ms,
        .uptime_ms = req->now_mono_ms - h->started_mono_ms,
    };
    struct jbuf b;

    if (!auth_stats_token(req, resp))
        return seed_error(resp, 401, "Unauthorized");
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    compat_seed_stats(&b, &s);
    http_response_header(resp, "Cache-Control", "no-store");
    seed_json(resp, &b);
    return ROUTE_DONE;
}

/*========================================================================
 * Dispatch.
 */

bool seed_dispatch(const struct http_request_view *req, struct http_response *resp,
                   enum route_result *result)
{
    static const char *const mounts[] = {"/api/v1/waha/", "/api/v1/whatsapp/"};
    static const struct {
        const char *path;
        enum endpoint endpoint;
        enum route_result (*handler)(const struct http_request_view *,
                                     struct http_response *);
    } seed_routes[] = {
        {"status", ENDPOINT_STATUS, serve_seed_status},
        {"connection-status", ENDPOINT_STATUS, serve_seed_status},
        {"monitoring/stats", ENDPOINT_STATS, serve_seed_stats},
        {"qr", ENDPOINT_QR, serve_seed_qr},
        {"auth/qr", ENDPOINT_QR, serve_seed_qr}, /* POST, the same handler */
        {"health", ENDPOINT_HEALTH, serve_seed_health},
    };
    const char *rest = NULL;

    for (size_t m = 0; m < sizeof(mounts) / sizeof(mounts[0]) && rest == NULL; m++)
        if (strncmp(req->path, mounts[m], strlen(mounts[m])) == 0)
            rest = req->path + strlen(mounts[m]);
    for (size_t i = 0; rest != NULL && i < sizeof(seed_routes) / sizeof(seed_routes[0]);
         i++) {
        bool post = strcmp(seed_routes[i].path, "auth/qr") == 0;
        if (strcmp(rest, seed_routes[i].path) != 0)
            continue;
        resp->endpoint = seed_routes[i].endpoint;
        *result = ROUTE_DONE;
        if (post ? req->method != METHOD_POST
                 : req->method != METHOD_GET && req->method != METHOD_HEAD) {
            seed_error(resp, 405, "Method not allowed");
            http_response_header(resp, "Allow", "%s", post ? "POST" : "GET, HEAD");
        } else if (seed_door(req, resp)) {
            *result = seed_routes[i].handler(req, resp);
        }
        return true;
    }
    return false;
}
