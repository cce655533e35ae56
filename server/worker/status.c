/*
 * status.c - the status object, WAHA's health, the frontend's config, and
 * the requests for an event stream.
 *
 * DESIGN
 * The status object of a session is what frontends poll. Most of it
 * changes only when the entry changes, so it is rendered up to "ageMs"
 * once per change of the worker's copy (or of the breaker's state) and
 * kept in the copy (struct local_entry's prefix); per request only the
 * numbers that depend on the clock are appended (ageMs, stale, nextMs),
 * with jbuf_int() and no printf. The same rendering feeds the event
 * streams (routes_render_status(), for sse.c).
 *
 * Freshness is cache_judge()'s, through replica_judge(), which also
 * records the demand the fetcher acts on: FRESH is served; WAIT answers
 * ROUTE_WAIT so the worker parks the request; STALE is served with
 * cache.stale true; TOO_OLD and EMPTY are a 503 with Retry-After. A
 * session that webhooks keep current stays fresh for
 * webhook.safety_interval.
 */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "log.h"
#include "rules.h"

/* What the health object says in place of WAHA's error text to a reader
 * that may not see it (health_error_shown()). */
static const char error_hidden[] = "WAHA's last call failed; a client key shows why";

/* The end of the "upstream" member and the start of "cache" that the
 * status object and the health object share: D's last success, its last
 * error as LAST_ERROR says it ("": none), and where and when its data came
 * from. */
static void render_sources(struct jbuf *b, const struct entry_data *d,
                           const char *last_error)
{
    jbuf_time(b, d->last_success_real_ms);
    jbuf_raw(b, ",\"lastError\":");
    jbuf_string(b, last_error[0] ? last_error : NULL);
    jbuf_raw(b, "},\"cache\":{\"source\":");
    jbuf_string(b, entry_source_names[d->source < SOURCE_COUNT ? d->source : 0]);
    jbuf_raw(b, ",\"fetchedAt\":");
    jbuf_time(b, d->fetched_real_ms);
}

/* The [frontend] values as JSON, rendered once (status_init()). */
static char config_body[256];
static size_t config_body_len;

static void render_status_prefix(struct local_entry *le, enum circuit_state circuit)
{
    const struct entry_data *d = &le->d;
    struct jbuf b;

    jbuf_init(&b, le->prefix, sizeof(le->prefix));
    jbuf_raw(&b, "{\"session\":");
    jbuf_string(&b, d->name);
    jbuf_raw(&b, ",\"status\":");
    jbuf_string(&b, d->status);
    jbuf_raw(&b, ",\"rawStatus\":");
    jbuf_string(&b, d->raw_status);
    jbuf_raw(&b, ",\"changedAt\":");
    jbuf_time(&b, d->changed_at_real_ms);
    jbuf_printf(&b, ",\"authenticated\":%s,\"me\":",
                strcmp(d->status, "WORKING") == 0 ? "true" : "false");
    jbuf_raw(&b, d->me_json);
    jbuf_printf(&b, ",\"upstream\":{\"healthy\":%s,\"circuit\":\"%s\",\"lastSuccessAt\":",
                d->healthy && circuit == CIRCUIT_CLOSED ? "true" : "false",
                circuit_state_names[circuit]);
    render_sources(&b, d, d->last_error);
    jbuf_raw(&b, ",\"ageMs\":");
    le->prefix_len = b.overflow ? 0 : b.len;
    le->rendered_seq = le->seq;
    le->rendered_circuit = circuit;
}

/* The status object of LE: its pre-rendered part and the clock's numbers. */
static void append_status(struct jbuf *b, const struct local_entry *le, bool stale,
                          int64_t age, enum circuit_state circuit)
{
    int64_t next_ms =
        rules_next_poll_ms(rt.cfg, le->d.status, le->d.healthy, stale, circuit);

    jbuf_mem(b, le->prefix, le->prefix_len);
    jbuf_int(b, age);
    jbuf_raw(b, ",\"maxAgeMs\":");
    jbuf_int(b, rt.cfg->backend.status_cache_duration);
    jbuf_raw(b, stale ? ",\"stale\":true},\"poll\":{\"nextMs\":"
                      : ",\"stale\":false},\"poll\":{\"nextMs\":");
    jbuf_int(b, next_ms);
    jbuf_raw(b, "}}");
}

enum route_result serve_status(const struct http_request_view *req,
                               struct http_response *resp)
{
    enum circuit_state circuit = replica_circuit();
    int64_t now = req->now_mono_ms, max_age, age;
    struct local_entry *le;
    enum cache_verdict v;
    bool stale;
    int index;
    struct jbuf b;

    switch (lookup_session_of_query(req, resp, &index)) {
    case LOOKUP_WAIT: return ROUTE_WAIT;
    case LOOKUP_ANSWERED: return ROUTE_DONE;
    case LOOKUP_FOUND: break;
    }
    le = replica_entry(index);
    if (le == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    if (le->rendered_seq != le->seq || le->rendered_circuit != circuit ||
        le->prefix_len == 0)
        render_status_prefix(le, circuit);
    replica_mark_read(index, DEMAND_DATA, now);
    /* A frontend that polls a session's status asks for its QR code next,
     * while the session waits for a scan: the fetcher prefetches it. */
    replica_mark_read(index, DEMAND_QR, now);
    max_age = route_session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now);
    v = replica_judge(index, DEMAND_DATA, le->d.has_data, le->d.fetched_mono_ms, max_age,
                      rt.cfg->backend.stale_if_error, now, req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        route_unavailable(resp, v, le->d.last_error, "this session", now);
        return ROUTE_DONE;
    }
    stale = v == CACHE_STALE;
    age = cache_age_ms(le->d.fetched_mono_ms, now);
    if (route_cache_headers(resp, index, le->generation, stale,
                            rt.cfg->backend.status_cache_duration, age, req))
        return ROUTE_DONE;
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    append_status(&b, le, stale, age, circuit);
    route_json(resp, b.data, b.len);
    return ROUTE_DONE;
}

void routes_note_reader(int index, bool one_session, int64_t now)
{
    struct local_entry *le = replica_entry(index);

    if (le == NULL)
        return;
    replica_mark_read(index, DEMAND_DATA, now);
    if (one_session)
        replica_mark_read(index, DEMAND_QR, now); /* as serve_status() does */
    replica_judge(
        index, DEMAND_DATA, le->d.has_data, le->d.fetched_mono_ms,
        route_session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now),
        rt.cfg->backend.stale_if_error, now, false);
}

bool routes_render_status(int index, int64_t now, struct jbuf *b)
{
    enum circuit_state circuit = replica_circuit();
    struct local_entry *le = replica_entry(index);
    int64_t age, max_age;

    if (le == NULL || le->d.kind != ENTRY_SESSION)
        return false;
    if (le->rendered_seq != le->seq || le->rendered_circuit != circuit ||
        le->prefix_len == 0)
        render_status_prefix(le, circuit);
    age = le->d.has_data ? cache_age_ms(le->d.fetched_mono_ms, now) : 0;
    max_age = route_session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now);
    append_status(b, le, le->d.has_data && age >= max_age, age, circuit);
    return !b->overflow;
}

/*========================================================================
 * WAHA's health, the frontend's config, event streams.
 */

/*
 * May REQ's reader see WAHA's error text in the health object? The health
 * is public; under auth.required that text (addresses, WAHA's own words)
 * is for a reader with a client key only, as the status object is.
 */
static bool health_error_shown(const struct http_request_view *req)
{
    bool presented;

    return !rt.cfg->auth.required || auth_key_of(req, &presented) != NULL;
}

enum route_result serve_health(const struct http_request_view *req,
                               struct http_response *resp)
{
    enum circuit_state circuit = replica_circuit();
    int64_t now = req->now_mono_ms, max_age = rt.cfg->backend.health_check_cache_duration;
    struct local_entry *le = replica_entry(REGION_ENTRY_HEALTH);
    const struct entry_data *d;
    enum cache_verdict v;
    bool stale, healthy, error_shown = health_error_shown(req);
    const char *why;
    int64_t age;
    struct jbuf b;

    if (le == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    d = &le->d;
    why = error_shown || d->last_error[0] == '\0' ? d->last_error : error_hidden;
    if (rt.cfg->auth.required)
        http_response_header(resp, "Vary", "Authorization, X-Api-Key");
    replica_mark_read(REGION_ENTRY_HEALTH, DEMAND_DATA, now);
    v = replica_judge(REGION_ENTRY_HEALTH, DEMAND_DATA, d->has_data, d->fetched_mono_ms,
                      max_age, rt.cfg->backend.stale_if_error, now, req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        route_unavailable(resp, v, why, "WAHA's health", now);
        return ROUTE_DONE;
    }
    stale = v == CACHE_STALE;
    healthy = d->healthy && !stale && circuit == CIRCUIT_CLOSED &&
              (strcmp(d->status, "ok") == 0 || strcmp(d->status, "pong") == 0);
    age = cache_age_ms(d->fetched_mono_ms, now);
    /* The two bodies, with and without the error text, have two validators. */
    if (route_cache_headers(resp, REGION_ENTRY_HEALTH, le->generation * 2 + error_shown,
                            stale, max_age, age, req))
        return ROUTE_DONE;

    jbuf_init(&b, rt.scratch, rt.scratch_size);
    jbuf_printf(&b, "{\"healthy\":%s,\"upstream\":{\"healthy\":%s,\"endpoint\":",
                healthy ? "true" : "false",
                d->healthy && circuit == CIRCUIT_CLOSED ? "true" : "false");
    jbuf_string(&b, d->name);
    jbuf_raw(&b, ",\"status\":");
    jbuf_string(&b, d->status);
    jbuf_printf(&b, ",\"circuit\":\"%s\",\"events\":\"%s\",\"lastSuccessAt\":",
                circuit_state_names[circuit], events_state_names[replica_events()]);
    render_sources(&b, d, why);
    jbuf_printf(&b, ",\"ageMs\":%lld,\"maxAgeMs\":%lld,\"stale\":%s}}", (long long)age,
                (long long)max_age, stale ? "true" : "false");
    route_json(resp, b.data, b.len);
    return ROUTE_DONE;
}

enum route_result serve_config(const struct http_request_view *req,
                               struct http_response *resp)
{
    (void)req;
    http_response_header(resp, "Cache-Control", "max-age=60");
    route_json(resp, config_body, config_body_len);
    return ROUTE_DONE;
}

/* GET /api/waha/events: which sessions a stream shows; sse.c does the rest. */
enum route_result serve_events(const struct http_request_view *req,
                               struct http_response *resp)
{
    char name[REGION_NAME_MAX];
    int param = http_query_param(req->query, "session", name, sizeof(name));
    int index = -1;

    if (param != -1) {
        switch (lookup_session_of_query(req, resp, &index)) {
        case LOOKUP_WAIT: return ROUTE_WAIT;
        case LOOKUP_ANSWERED: return ROUTE_DONE;
        case LOOKUP_FOUND: break;
        }
    }
    resp->stream_session = index;
    resp->stream_key = rt.key;
    return ROUTE_STREAM;
}

int status_init(void)
{
    const struct config *cfg = rt.cfg;
    struct jbuf b;

    jbuf_init(&b, config_body, sizeof(config_body));
    jbuf_printf(&b,
                "{\"initialCheckDelay\":%lld,\"baseInterval\":%lld,"
                "\"authenticatedInterval\":%lld,\"maxInterval\":%lld,"
                "\"backoffMultiplier\":%g}",
                (long long)cfg->frontend.initial_check_delay,
                (long long)cfg->frontend.base_interval,
                (long long)cfg->frontend.authenticated_interval,
                (long long)cfg->frontend.max_interval, cfg->frontend.backoff_multiplier);
    config_body_len = b.len;
    return b.overflow ? -1 : 0;
}
