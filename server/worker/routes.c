/*
 * routes.c - the HTTP API of a worker: which handler answers a request,
 * and what every answer carries (rate limits, CORS).
 *
 * DESIGN
 * routes[] maps each path of the API to its handler, the method it
 * answers (GET also answers HEAD; anything else gets 405 with Allow) and
 * whether it serves session data, which [auth] protects; the paths under
 * /api/waha/sessions/ and the static assets are matched after it. With
 * server.admin_listen the stats and metrics are served there and only
 * there. WAHA's own read paths and the original backend's routes come
 * last ([compat]: compat_waha.c, compat_seed.c). Before a handler runs,
 * the request is charged to its client's token bucket (ratelimit.*; a
 * parked request was charged when it arrived and shows that verdict);
 * after it, an allowed Origin gets its CORS headers (rules_cors(): listed
 * origins echoed with credentials, any other "*" when cors_origins has
 * it, Vary: Origin on every answer when CORS is on). The handlers
 * themselves live by subject in status.c, sessions.c, webhook.c, admin.c
 * and compat_*.c (handlers.h), with the shared pieces of answers defined
 * here.
 *
 * Everything here runs in one worker process, single-threaded.
 */
#include "routes.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "assets.h"
#include "handlers.h"
#include "log.h"
#include "rules.h"
#include "timeutil.h"

struct routes_state rt;

char *route_scratch(size_t need)
{
    if (need > rt.scratch_size) {
        char *grown = realloc(rt.scratch, need);
        if (grown == NULL)
            return NULL;
        rt.scratch = grown;
        rt.scratch_size = need;
    }
    return rt.scratch;
}

void route_count(enum counter c)
{
    region_count(rt.slot, c, 1);
}

void route_count_verdict(enum cache_verdict v, const struct http_request_view *req)
{
    route_count(v == CACHE_FRESH && !req->parked ? COUNTER_CACHE_HITS
                                                 : COUNTER_CACHE_MISSES);
}

void route_json(struct http_response *resp, const char *body, size_t len)
{
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = body;
    resp->body_len = len;
}

/* Seconds a client should wait before asking again while WAHA fails. */
static long long retry_after_seconds(int64_t now)
{
    int64_t until = atomic_load(&region_header(rt.region)->circuit_retry_ms);

    return until > now ? (until - now + 999) / 1000 : 1;
}

void route_unavailable(struct http_response *resp, enum cache_verdict v, const char *why,
                       const char *what, int64_t now)
{
    char message[REGION_ERROR_MAX + 160];

    if (v == CACHE_TOO_OLD)
        snprintf(message, sizeof(message),
                 "the last data from WAHA for %s is older than backend.stale_if_error"
                 "%s%s",
                 what, why[0] ? ": " : "", why);
    else
        snprintf(message, sizeof(message), "no data from WAHA for %s yet%s%s", what,
                 why[0] ? ": " : "", why);
    http_response_error(resp, 503, v == CACHE_TOO_OLD ? "stale" : "no_data", message);
    http_response_header(resp, "Retry-After", "%lld", retry_after_seconds(now));
}

void route_header_int(struct http_response *resp, const char *name, long long value)
{
    struct jbuf b;

    jbuf_init(&b, http_response_header_add(resp, name), HTTP_HEADER_VALUE_MAX);
    jbuf_int(&b, value);
}

bool route_cache_headers(struct http_response *resp, int index, uint64_t version,
                         bool stale, int64_t max_age_ms, int64_t age_ms,
                         const struct http_request_view *req)
{
    char etag[CACHE_ETAG_MAX];
    struct jbuf b;

    /* The breaker's state is part of what the status object shows, so it is
     * part of the validator too. */
    cache_etag(etag, region_header(rt.region)->instance_id, index,
               version * CIRCUIT_COUNT + replica_circuit(), stale);
    memcpy(http_response_header_add(resp, "ETag"), etag, strlen(etag) + 1);
    jbuf_init(&b, http_response_header_add(resp, "Cache-Control"), HTTP_HEADER_VALUE_MAX);
    jbuf_raw(&b, "max-age=");
    jbuf_int(&b, stale ? 0 : cache_max_age_seconds(max_age_ms, age_ms));
    jbuf_raw(&b, ", stale-while-revalidate=");
    jbuf_int(&b, max_age_ms / 1000);
    jbuf_raw(&b, ", stale-if-error=");
    jbuf_int(&b, rt.cfg->backend.stale_if_error / 1000);
    route_header_int(resp, "Age", age_ms / 1000);
    if (!cache_etag_matches(req->header[HEADER_IF_NONE_MATCH], etag))
        return false;
    resp->status = 304;
    resp->body = NULL;
    resp->body_len = 0;
    route_count(COUNTER_NOT_MODIFIED);
    return true;
}

int64_t route_session_max_age(const struct entry_data *d, int64_t base, int64_t now)
{
    return cache_pushed_max_age(base, rt.cfg->webhook.safety_interval, d->pushed_mono_ms,
                                d->fetched_mono_ms, replica_stream_since(), now);
}

/*========================================================================
 * Dispatch.
 */

static const char sessions_prefix[] = "/api/waha/sessions/";

static const struct route {
    const char *path;
    enum request_method method; /* GET also answers HEAD */
    enum endpoint endpoint;
    bool needs_key; /* session data, which [auth] protects */
    route_handler handler;
} routes[] = {
    {"/api/waha/status", METHOD_GET, ENDPOINT_STATUS, true, serve_status},
    {"/api/waha/health", METHOD_GET, ENDPOINT_HEALTH, false, serve_health},
    {"/api/waha/sessions", METHOD_GET, ENDPOINT_SESSIONS, true, serve_sessions},
    {"/api/waha/config", METHOD_GET, ENDPOINT_CONFIG, false, serve_config},
    {"/api/waha/webhook", METHOD_POST, ENDPOINT_WEBHOOK, false, serve_webhook},
    {"/api/waha/monitoring/stats", METHOD_GET, ENDPOINT_STATS, false, serve_stats},
    {"/metrics", METHOD_GET, ENDPOINT_METRICS, false, serve_metrics},
    {"/api/waha/events", METHOD_GET, ENDPOINT_EVENTS, true, serve_events},
};

/* The dashboard and the poller (assets.h); false when PATH is neither. */
static bool serve_asset(const struct http_request_view *req, struct http_response *resp)
{
    for (int i = 0; i < asset_count; i++) {
        const struct asset *a = &assets[i];
        if (strcmp(req->path, a->path) != 0)
            continue;
        resp->endpoint = ENDPOINT_STATIC;
        http_response_header(resp, "ETag", "%s", a->etag);
        http_response_header(resp, "Cache-Control", "no-cache");
        if (cache_etag_matches(req->header[HEADER_IF_NONE_MATCH], a->etag)) {
            resp->status = 304;
            route_count(COUNTER_NOT_MODIFIED);
            return true;
        }
        resp->status = 200;
        resp->content_type = a->content_type;
        resp->body = (const char *)a->data;
        resp->body_len = a->len;
        return true;
    }
    return false;
}

/* With server.admin_listen, the stats and metrics live there and only there. */
static bool served_here(const struct route *route, const struct http_request_view *req)
{
    bool admin_route =
        route->endpoint == ENDPOINT_STATS || route->endpoint == ENDPOINT_METRICS;

    if (rt.cfg->server.admin_listen_count == 0)
        return true;
    return admin_route == req->admin;
}

static void method_not_allowed(struct http_response *resp, enum request_method allowed)
{
    http_response_error(resp, 405, "method_not_allowed",
                        allowed == METHOD_POST
                            ? "this resource only answers POST"
                            : "this resource only answers GET and HEAD");
    http_response_header(resp, "Allow", "%s",
                         allowed == METHOD_POST ? "POST" : "GET, HEAD");
}

/*
 * /api/waha/sessions/NAME and /api/waha/sessions/NAME/qr; false when REST
 * (the path after the prefix) is neither.
 */
static bool dispatch_session_path(const struct http_request_view *req,
                                  struct http_response *resp, const char *rest,
                                  bool read_method, enum route_result *result)
{
    char name[REGION_NAME_MAX];
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);

    if (len >= sizeof(name) || (slash != NULL && strcmp(slash, "/qr") != 0))
        return false;
    memcpy(name, rest, len);
    name[len] = '\0';
    resp->endpoint = slash ? ENDPOINT_QR : ENDPOINT_SESSION;
    if (!read_method) {
        method_not_allowed(resp, METHOD_GET);
        *result = ROUTE_DONE;
    } else if (!auth_client(req, resp)) {
        *result = ROUTE_DONE;
    } else {
        *result = slash ? serve_qr(req, resp, name) : serve_session(req, resp, name);
    }
    return true;
}

static enum route_result dispatch(const struct http_request_view *req,
                                  struct http_response *resp)
{
    const char *path = req->path;
    bool read_method = req->method == METHOD_GET || req->method == METHOD_HEAD;
    char message[160], shown[121];

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if ((routes[i].method == METHOD_POST && !rt.cfg->webhook.enabled) ||
            !served_here(&routes[i], req))
            break; /* no such resource here */
        resp->endpoint = routes[i].endpoint;
        if (routes[i].method == METHOD_GET ? read_method
                                           : req->method == routes[i].method) {
            rt.key = NULL;
            if (routes[i].needs_key && !auth_client(req, resp))
                return ROUTE_DONE;
            return routes[i].handler(req, resp);
        }
        method_not_allowed(resp, routes[i].method);
        return ROUTE_DONE;
    }
    if (!req->admin && read_method && serve_asset(req, resp))
        return ROUTE_DONE;
    if (!req->admin && strncmp(path, sessions_prefix, sizeof(sessions_prefix) - 1) == 0) {
        enum route_result result;
        if (dispatch_session_path(req, resp, path + sizeof(sessions_prefix) - 1,
                                  read_method, &result))
            return result;
    }
    {
        enum route_result result; /* WAHA's own paths, the seed's ([compat]) */
        if (compat_dispatch(req, resp, &result))
            return result;
    }
    http_printable(shown, sizeof(shown), path);
    snprintf(message, sizeof(message), "no resource at %s", shown);
    http_response_error(resp, 404, "not_found", message);
    return ROUTE_DONE;
}

/*========================================================================
 * Cross-origin requests (server.cors_origins).
 */

/*
 * The Fetch standard's answer to ORIGIN (rules_cors()): listed origins are
 * echoed with credentials; with `*`, any other gets "*" and no
 * credentials (a browser never sends them to "*" anyway); "null" never
 * gets anything. When CORS is on at all, every answer says Vary: Origin.
 */
static void cors_headers(const struct http_request_view *req, struct http_response *resp)
{
    const char *origin = req->header[HEADER_ORIGIN];
    enum cors_grant grant = rules_cors(rt.cfg, origin);

    if (rules_cors_varies(rt.cfg))
        http_response_header(resp, "Vary", "Origin");
    if (grant == CORS_NONE)
        return;
    http_response_header(resp, "Access-Control-Allow-Origin", "%s",
                         grant == CORS_ANY ? "*" : origin);
    if (grant == CORS_ORIGIN)
        http_response_header(resp, "Access-Control-Allow-Credentials", "true");
    http_response_header(resp, "Access-Control-Expose-Headers", "ETag, Age, Retry-After, X-Cache");
}

/* OPTIONS: a browser's preflight before a cross-origin request (its CORS
 * headers come from cors_headers()), or OPTIONS *. */
static void preflight(const struct http_request_view *req, struct http_response *resp)
{
    resp->status = 204;
    resp->content_type = NULL;
    http_response_header(resp, "Allow", "GET, HEAD, POST, OPTIONS");
    if (rules_cors(rt.cfg, req->header[HEADER_ORIGIN]) == CORS_NONE)
        return;
    http_response_header(resp, "Access-Control-Allow-Methods",
                         "GET, HEAD, POST, OPTIONS");
    http_response_header(resp, "Access-Control-Allow-Headers",
                         "If-None-Match, Cache-Control, Last-Event-ID, Authorization, "
                         "X-Api-Key, Content-Type");
    http_response_header(resp, "Access-Control-Max-Age", "600");
}

static void rate_headers(struct http_response *resp, const struct ratelimit_verdict *v)
{
    route_header_int(resp, "RateLimit-Limit", v->limit);
    route_header_int(resp, "RateLimit-Remaining", v->remaining);
    route_header_int(resp, "RateLimit-Reset", (v->reset_ms + 999) / 1000);
}

/*
 * ratelimit.*: charge a request to its client. False when RESP is now the
 * 429. WAHA's webhooks (signed) and the admin listener are not limited. A
 * parked request was charged when it arrived: its answer shows what that
 * verdict said.
 */
static bool rate_ok(const struct http_request_view *req, struct http_response *resp)
{
    struct ratelimit_verdict v;

    if (!rt.cfg->ratelimit.enabled || req->admin ||
        strcmp(req->path, "/api/waha/webhook") == 0)
        return true;
    if (req->parked) {
        if (req->rate != NULL && req->rate->limit > 0)
            rate_headers(resp, req->rate);
        return true;
    }
    ratelimit_take(region_ratelimit(rt.region), &req->client, rt.cfg->ratelimit.rate,
                   rt.cfg->ratelimit.burst, req->now_mono_ms, &v);
    if (req->rate != NULL)
        *req->rate = v;
    if (!v.allowed) {
        route_count(COUNTER_RATE_LIMITED);
        http_response_error(resp, 429, "rate_limited",
                            "too many requests from this client; see Retry-After");
        http_response_header(resp, "Retry-After", "%lld",
                             (long long)((v.retry_after_ms + 999) / 1000));
    }
    rate_headers(resp, &v);
    return v.allowed;
}

enum route_result routes_handle(const struct http_request_view *req,
                                struct http_response *resp)
{
    enum route_result result = ROUTE_DONE;

    resp->status = 200;
    resp->endpoint = ENDPOINT_OTHER;
    resp->stream_session = -1;
    resp->content_type = "application/json";
    resp->header_count = 0;
    resp->body = NULL;
    resp->body_len = 0;
    if (!rate_ok(req, resp))
        result = ROUTE_DONE;
    else if (req->method == METHOD_OPTIONS)
        preflight(req, resp);
    else
        result = dispatch(req, resp);
    if (result != ROUTE_WAIT)
        cors_headers(req, resp);
    return result;
}

int routes_init(const struct config *cfg, struct region *region, struct region_proc *slot)
{
    memset(&rt, 0, sizeof(rt));
    rt.cfg = cfg;
    rt.region = region;
    rt.slot = slot;
    rt.scratch = malloc(ROUTES_SCRATCH_FIRST);
    rt.scratch_size = ROUTES_SCRATCH_FIRST;
    if (rt.scratch == NULL || replica_init(region) != 0 || status_init() != 0) {
        log_error(0, "out of memory for the worker's response cache");
        routes_free();
        return -1;
    }
    return 0;
}

void routes_free(void)
{
    replica_free();
    free(rt.scratch);
    rt.scratch = NULL;
}
