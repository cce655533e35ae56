/*
 * routes.c - the handlers of the HTTP API, serving only from the region.
 *
 * DESIGN
 * Handlers read the worker's copies of region entries (replica.c) and
 * cache what they render from a copy: for a session, the status object up
 * to "ageMs", rendered again only when the copy's sequence number or the
 * circuit breaker's state changed. The per-request work is then the few
 * numbers that depend on the clock (ageMs, stale, Age, max-age, nextMs).
 *
 * Freshness is cache_judge()'s (via replica_judge(), which also records the
 * demand the fetcher acts on): FRESH is served; WAIT makes the handler
 * answer ROUTE_WAIT so that the worker parks the request; STALE is served
 * with cache.stale true; TOO_OLD and EMPTY are a 503 with Retry-After. A
 * session that webhooks keep current stays fresh for webhook.safety_interval.
 *
 * The webhook receiver checks the HMAC before it reads anything, parses the
 * envelope (webhook.c) and applies session.status events through store.c.
 * The QR endpoint serves what the fetcher prefetched while the session waits
 * for a scan: PNG, {"mimetype","data"} for Accept: application/json, or
 * {"value"} for ?format=raw, like WAHA.
 *
 * Everything here runs in one worker process, single-threaded.
 */
#include "routes.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "assets.h"
#include "cache.h"
#include "json.h"
#include "log.h"
#include "replica.h"
#include "stats.h"
#include "store.h"
#include "timeutil.h"
#include "webhook.h"

/* Every session body once, plus commas and brackets. */
#define SCRATCH_MAX (REGION_SESSION_MAX * (REGION_BODY_MAX + 1) + REPLICA_PREFIX_MAX)
/* base64 of the largest PNG, with the JSON around it. */
#define QR_JSON_MAX (4 * ((REGION_QR_PNG_MAX + 2) / 3) + 64)

static struct {
    const struct config *cfg;
    struct region *region;
    struct region_proc *slot;
    char *scratch; /* SCRATCH_MAX bytes */
    size_t config_body_len;
    char config_body[256];
    /* The key of the request being answered; NULL when no key is needed. */
    const struct auth_key *key;
} rt;

static void count(enum counter c)
{
    region_count(rt.slot, c, 1);
}

static void count_verdict(enum cache_verdict v, const struct http_request_view *req)
{
    count(v == CACHE_FRESH && !req->parked ? COUNTER_CACHE_HITS : COUNTER_CACHE_MISSES);
}

/*========================================================================
 * Shared response pieces.
 */

static void json_body(struct http_response *resp, const char *body, size_t len)
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

/* The 503 of EMPTY and TOO_OLD verdicts. */
static void unavailable(struct http_response *resp, enum cache_verdict v,
                        const struct entry_data *d, const char *what, int64_t now)
{
    char message[REGION_ERROR_MAX + 160];

    if (v == CACHE_TOO_OLD)
        snprintf(message, sizeof(message),
                 "the last data from WAHA for %s is older than backend.stale_if_error"
                 "%s%s",
                 what, d->last_error[0] ? ": " : "", d->last_error);
    else
        snprintf(message, sizeof(message), "no data from WAHA for %s yet%s%s", what,
                 d->last_error[0] ? ": " : "", d->last_error);
    http_response_error(resp, 503, v == CACHE_TOO_OLD ? "stale" : "no_data", message);
    http_response_header(resp, "Retry-After", "%lld", retry_after_seconds(now));
}

/* Header NAME with the number VALUE (no printf: on the path of every answer). */
static void header_int(struct http_response *resp, const char *name, long long value)
{
    struct jbuf b;

    jbuf_init(&b, http_response_header_add(resp, name), HTTP_HEADER_VALUE_MAX);
    jbuf_int(&b, value);
}

/*
 * Validators and freshness headers; true when the client's copy is current
 * and RESP is now a 304.
 */
static bool cache_headers(struct http_response *resp, int index, uint64_t version,
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
    header_int(resp, "Age", age_ms / 1000);
    if (!cache_etag_matches(req->if_none_match, etag))
        return false;
    resp->status = 304;
    resp->body = NULL;
    resp->body_len = 0;
    count(COUNTER_NOT_MODIFIED);
    return true;
}

/* How long a session's data is fresh: longer while webhooks keep it current. */
static int64_t session_max_age(const struct entry_data *d, int64_t base, int64_t now)
{
    if (d->webhook_mono_ms != 0 &&
        now - d->webhook_mono_ms < rt.cfg->webhook.safety_interval)
        return rt.cfg->webhook.safety_interval;
    return base;
}

/*========================================================================
 * Client keys ([auth]): who may see which session.
 */

/* The key REQ presents (Bearer, X-Api-Key or ?access_token=), or NULL. */
static const struct auth_key *presented_key(const struct http_request_view *req,
                                            bool *presented)
{
    char token[256];
    const char *secret = NULL;
    unsigned char digest[32];
    const struct auth_key *found = NULL;

    if (req->authorization != NULL && strncmp(req->authorization, "Bearer ", 7) == 0)
        secret = req->authorization + 7;
    else if (req->api_key != NULL)
        secret = req->api_key;
    else if (http_query_param(req->query, "access_token", token, sizeof(token)) == 0)
        secret = token;
    *presented = secret != NULL && secret[0] != '\0';
    if (!*presented)
        return NULL;
    /* Digests of equal length, and every key compared: the time taken
     * tells nothing about which key, or how much of one, matched. */
    EVP_Digest(secret, strlen(secret), digest, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < rt.cfg->auth.key_count; i++)
        if (CRYPTO_memcmp(digest, rt.cfg->auth.keys[i].secret_sha256, sizeof(digest)) ==
            0)
            found = &rt.cfg->auth.keys[i];
    return found;
}

/*
 * With auth.required, a request for session data needs a known key: sets
 * rt.key, or answers 401 (counted and logged, without the secret).
 */
static bool authorize(const struct http_request_view *req, struct http_response *resp)
{
    bool presented;

    rt.key = NULL;
    if (!rt.cfg->auth.required)
        return true;
    rt.key = presented_key(req, &presented);
    if (rt.key != NULL)
        return true;
    if (!req->parked) {
        /* One line per kind, so that repeats collapse in the log. */
        count(COUNTER_AUTH_FAILURES);
        log_warn(0, "refused a request without a valid client key (%s)",
                 presented ? "unknown key" : "no key");
    }
    http_response_error(resp, 401, "unauthorized",
                        "this resource needs a client key: Authorization: Bearer <key>, "
                        "X-Api-Key: <key> or ?access_token=<key>");
    http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"wahagate\"");
    return false;
}

static bool in_scope(const char *session)
{
    return config_key_allows(rt.key, session);
}

static int first_session_in_scope(void)
{
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++)
        if (replica_is_session(i) && in_scope(replica_session_name(i)))
            return i;
    return -1;
}

/*
 * Find the session a request names (NAME, or the first tracked one when
 * NAME is NULL). With upstream.sessions = * an unknown name may be a session
 * WAHA just created, so the session list is consulted (and waited for) before
 * answering 404. Returns the entry index, -1 when RESP holds the answer, or
 * -2 for ROUTE_WAIT.
 */
static int resolve_session(const char *name, struct http_response *resp,
                           const struct http_request_view *req)
{
    char message[REGION_NAME_MAX + 64];
    int index;

    /* Out of scope is 403 whether or not the session exists: a key cannot
     * probe for the sessions of others. */
    if (name != NULL && !in_scope(name)) {
        snprintf(message, sizeof(message), "this key may not see session \"%s\"", name);
        http_response_error(resp, 403, "forbidden", message);
        return -1;
    }
    index = name ? replica_find_session(name) : first_session_in_scope();
    if (index >= 0)
        return index;
    if (rt.cfg->upstream.all_sessions) {
        struct local_entry *list = replica_entry(REGION_ENTRY_LIST);
        enum cache_verdict v;

        if (list == NULL) {
            http_response_error(resp, 500, "internal", "cannot read the cache");
            return -1;
        }
        replica_mark_read(REGION_ENTRY_LIST, false, req->now_mono_ms);
        v = replica_judge(REGION_ENTRY_LIST, false, list->d.has_data,
                          list->d.fetched_mono_ms, rt.cfg->backend.session_cache_duration,
                          rt.cfg->backend.stale_if_error, req->now_mono_ms,
                          req->may_wait);
        if (v == CACHE_WAIT)
            return -2;
        if (v == CACHE_EMPTY) {
            unavailable(resp, v, &list->d, "the session list", req->now_mono_ms);
            return -1;
        }
    }
    if (name == NULL) {
        http_response_error(resp, 503, "no_session", "WAHA lists no session");
        http_response_header(resp, "Retry-After", "1");
        return -1;
    }
    snprintf(message, sizeof(message), "session \"%s\" is not tracked", name);
    http_response_error(resp, 404, "session_not_found", message);
    return -1;
}

/* The session named by ?session=, or the first one; see resolve_session(). */
static int session_of_query(const struct http_request_view *req,
                            struct http_response *resp)
{
    char name[REGION_NAME_MAX];
    int param = http_query_param(req->query, "session", name, sizeof(name));

    if (param == -2 || (param == 0 && !config_valid_session_name(name))) {
        http_response_error(resp, 404, "session_not_found", "not a WAHA session name");
        return -1;
    }
    return resolve_session(param == 0 ? name : NULL, resp, req);
}

/*========================================================================
 * The status object.
 */

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
    jbuf_time(&b, d->last_success_real_ms);
    jbuf_raw(&b, ",\"lastError\":");
    jbuf_string(&b, d->last_error[0] ? d->last_error : NULL);
    jbuf_raw(&b, "},\"cache\":{\"source\":");
    jbuf_string(&b, entry_source_names[d->source < SOURCE_COUNT ? d->source : 0]);
    jbuf_raw(&b, ",\"fetchedAt\":");
    jbuf_time(&b, d->fetched_real_ms);
    jbuf_raw(&b, ",\"ageMs\":");
    le->prefix_len = b.overflow ? 0 : b.len;
    le->rendered_seq = le->seq;
    le->rendered_circuit = circuit;
}

/* The status object of LE: its pre-rendered part and the clock's numbers. */
static void append_status(struct jbuf *b, const struct local_entry *le, bool stale,
                          int64_t age, enum circuit_state circuit)
{
    int64_t next_ms = strcmp(le->d.status, "WORKING") == 0
                          ? rt.cfg->frontend.authenticated_interval
                          : rt.cfg->frontend.base_interval;

    if (stale || !le->d.healthy || circuit != CIRCUIT_CLOSED) {
        double backed_off = (double)next_ms * rt.cfg->frontend.backoff_multiplier;
        next_ms = backed_off > (double)rt.cfg->frontend.max_interval
                      ? rt.cfg->frontend.max_interval
                      : (int64_t)backed_off;
    }
    jbuf_mem(b, le->prefix, le->prefix_len);
    jbuf_int(b, age);
    jbuf_raw(b, ",\"maxAgeMs\":");
    jbuf_int(b, rt.cfg->backend.status_cache_duration);
    jbuf_raw(b, stale ? ",\"stale\":true},\"poll\":{\"nextMs\":"
                      : ",\"stale\":false},\"poll\":{\"nextMs\":");
    jbuf_int(b, next_ms);
    jbuf_raw(b, "}}");
}

static enum route_result serve_status(const struct http_request_view *req,
                                      struct http_response *resp)
{
    enum circuit_state circuit = replica_circuit();
    int64_t now = req->now_mono_ms, max_age, age;
    struct local_entry *le;
    enum cache_verdict v;
    bool stale;
    int index;
    struct jbuf b;

    index = session_of_query(req, resp);
    if (index == -2)
        return ROUTE_WAIT;
    if (index < 0)
        return ROUTE_DONE;
    le = replica_entry(index);
    if (le == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    if (le->rendered_seq != le->seq || le->rendered_circuit != circuit ||
        le->prefix_len == 0)
        render_status_prefix(le, circuit);
    replica_mark_read(index, false, now);
    max_age = session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now);
    v = replica_judge(index, false, le->d.has_data, le->d.fetched_mono_ms, max_age,
                      rt.cfg->backend.stale_if_error, now, req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        unavailable(resp, v, &le->d, "this session", now);
        return ROUTE_DONE;
    }
    stale = v == CACHE_STALE;
    age = cache_age_ms(le->d.fetched_mono_ms, now);
    if (cache_headers(resp, index, le->generation, stale,
                      rt.cfg->backend.status_cache_duration, age, req))
        return ROUTE_DONE;
    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    append_status(&b, le, stale, age, circuit);
    json_body(resp, b.data, b.len);
    return ROUTE_DONE;
}

void routes_note_reader(int index, int64_t now)
{
    struct local_entry *le = replica_entry(index);

    if (le == NULL)
        return;
    replica_mark_read(index, false, now);
    replica_judge(index, false, le->d.has_data, le->d.fetched_mono_ms,
                  session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now),
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
    max_age = session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now);
    append_status(b, le, le->d.has_data && age >= max_age, age, circuit);
    return !b->overflow;
}

/*========================================================================
 * WAHA's session objects and health.
 */

static enum route_result serve_session(const struct http_request_view *req,
                                       struct http_response *resp, const char *name)
{
    int64_t now = req->now_mono_ms, max_age;
    struct local_entry *le;
    enum cache_verdict v;
    char message[REGION_NAME_MAX + 64];
    int index;

    if (!config_valid_session_name(name)) {
        http_response_error(resp, 404, "session_not_found", "not a WAHA session name");
        return ROUTE_DONE;
    }
    index = resolve_session(name, resp, req);
    if (index == -2)
        return ROUTE_WAIT;
    if (index < 0)
        return ROUTE_DONE;
    le = replica_entry(index);
    if (le == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    replica_mark_read(index, false, now);
    max_age = session_max_age(&le->d, rt.cfg->backend.session_cache_duration, now);
    /* A webhook brings a status but not the object: that needs a fetch. */
    v = replica_judge(index, false,
                      le->d.has_data && (le->d.body_len > 0 || !le->d.exists),
                      le->d.fetched_mono_ms, max_age, rt.cfg->backend.stale_if_error, now,
                      req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        unavailable(resp, v, &le->d, "this session", now);
        return ROUTE_DONE;
    }
    if (!le->d.exists) {
        snprintf(message, sizeof(message), "WAHA has no session \"%s\"", name);
        http_response_error(resp, 404, "session_not_found", message);
        return ROUTE_DONE;
    }
    /* The object changes with every refresh (engine state, activity), so
     * its validator is the copy's sequence number, not the generation. */
    if (cache_headers(resp, index, le->seq / 2, v == CACHE_STALE,
                      rt.cfg->backend.session_cache_duration,
                      cache_age_ms(le->d.fetched_mono_ms, now), req))
        return ROUTE_DONE;
    json_body(resp, le->d.body, le->d.body_len);
    return ROUTE_DONE;
}

static enum route_result serve_sessions(const struct http_request_view *req,
                                        struct http_response *resp)
{
    int64_t now = req->now_mono_ms;
    bool wait = false, any_miss = false;
    struct jbuf b;

    /* With sessions = *, the list says which sessions there are. */
    if (rt.cfg->upstream.all_sessions) {
        struct local_entry *list = replica_entry(REGION_ENTRY_LIST);
        enum cache_verdict v;

        if (list == NULL) {
            http_response_error(resp, 500, "internal", "cannot read the cache");
            return ROUTE_DONE;
        }
        replica_mark_read(REGION_ENTRY_LIST, false, now);
        v = replica_judge(REGION_ENTRY_LIST, false, list->d.has_data,
                          list->d.fetched_mono_ms, rt.cfg->backend.session_cache_duration,
                          rt.cfg->backend.stale_if_error, now, req->may_wait);
        if (v == CACHE_WAIT)
            return ROUTE_WAIT;
        if (v == CACHE_EMPTY) {
            unavailable(resp, v, &list->d, "the session list", now);
            return ROUTE_DONE;
        }
    }
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        struct local_entry *le;
        enum cache_verdict v;

        if (!replica_is_session(i) || !in_scope(replica_session_name(i)) ||
            (le = replica_entry(i)) == NULL)
            continue;
        replica_mark_read(i, false, now);
        v = replica_judge(
            i, false, le->d.has_data && (le->d.body_len > 0 || !le->d.exists),
            le->d.fetched_mono_ms,
            session_max_age(&le->d, rt.cfg->backend.session_cache_duration, now),
            rt.cfg->backend.stale_if_error, now, req->may_wait);
        wait |= v == CACHE_WAIT;
        any_miss |= v != CACHE_FRESH;
    }
    if (wait)
        return ROUTE_WAIT;
    count(any_miss || req->parked ? COUNTER_CACHE_MISSES : COUNTER_CACHE_HITS);

    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    jbuf_raw(&b, "[");
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        const struct local_entry *le =
            replica_is_session(i) && in_scope(replica_session_name(i)) ? replica_entry(i)
                                                                       : NULL;
        if (le == NULL || !le->d.has_data || !le->d.exists || le->d.body_len == 0)
            continue;
        if (b.len > 1)
            jbuf_raw(&b, ",");
        jbuf_mem(&b, le->d.body, le->d.body_len);
    }
    jbuf_raw(&b, "]");
    http_response_header(resp, "Cache-Control", "max-age=0");
    json_body(resp, b.data, b.len);
    return ROUTE_DONE;
}

static enum route_result serve_health(const struct http_request_view *req,
                                      struct http_response *resp)
{
    enum circuit_state circuit = replica_circuit();
    int64_t now = req->now_mono_ms, max_age = rt.cfg->backend.health_check_cache_duration;
    struct local_entry *le = replica_entry(REGION_ENTRY_HEALTH);
    const struct entry_data *d;
    enum cache_verdict v;
    bool stale, healthy;
    int64_t age;
    struct jbuf b;

    if (le == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    d = &le->d;
    replica_mark_read(REGION_ENTRY_HEALTH, false, now);
    v = replica_judge(REGION_ENTRY_HEALTH, false, d->has_data, d->fetched_mono_ms,
                      max_age, rt.cfg->backend.stale_if_error, now, req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        unavailable(resp, v, d, "WAHA's health", now);
        return ROUTE_DONE;
    }
    stale = v == CACHE_STALE;
    healthy = d->healthy && !stale && circuit == CIRCUIT_CLOSED &&
              (strcmp(d->status, "ok") == 0 || strcmp(d->status, "pong") == 0);
    age = cache_age_ms(d->fetched_mono_ms, now);
    if (cache_headers(resp, REGION_ENTRY_HEALTH, le->generation, stale, max_age, age,
                      req))
        return ROUTE_DONE;

    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    jbuf_printf(&b, "{\"healthy\":%s,\"upstream\":{\"healthy\":%s,\"endpoint\":",
                healthy ? "true" : "false",
                d->healthy && circuit == CIRCUIT_CLOSED ? "true" : "false");
    jbuf_string(&b, d->name);
    jbuf_raw(&b, ",\"status\":");
    jbuf_string(&b, d->status);
    jbuf_printf(&b,
                ",\"circuit\":\"%s\",\"lastSuccessAt\":", circuit_state_names[circuit]);
    jbuf_time(&b, d->last_success_real_ms);
    jbuf_raw(&b, ",\"lastError\":");
    jbuf_string(&b, d->last_error[0] ? d->last_error : NULL);
    jbuf_raw(&b, "},\"cache\":{\"source\":");
    jbuf_string(&b, entry_source_names[d->source < SOURCE_COUNT ? d->source : 0]);
    jbuf_raw(&b, ",\"fetchedAt\":");
    jbuf_time(&b, d->fetched_real_ms);
    jbuf_printf(&b, ",\"ageMs\":%lld,\"maxAgeMs\":%lld,\"stale\":%s}}", (long long)age,
                (long long)max_age, stale ? "true" : "false");
    json_body(resp, b.data, b.len);
    return ROUTE_DONE;
}

static enum route_result serve_config(const struct http_request_view *req,
                                      struct http_response *resp)
{
    (void)req;
    http_response_header(resp, "Cache-Control", "max-age=60");
    json_body(resp, rt.config_body, rt.config_body_len);
    return ROUTE_DONE;
}

/*========================================================================
 * The QR code of a session waiting for a scan.
 */

/* {"mimetype":"image/png","data":"<base64>"}, rendered once per QR. */
static bool render_qr_json(struct local_qr *lq)
{
    int n;

    if (lq->json == NULL && (lq->json = malloc(QR_JSON_MAX)) == NULL)
        return false;
    n = snprintf(lq->json, QR_JSON_MAX, "{\"mimetype\":\"image/png\",\"data\":\"");
    n += EVP_EncodeBlock((unsigned char *)lq->json + n, lq->d.png, (int)lq->d.png_len);
    n += snprintf(lq->json + n, QR_JSON_MAX - (size_t)n, "\"}");
    lq->json_len = (size_t)n;
    lq->rendered_seq = lq->seq;
    return true;
}

static enum route_result serve_qr(const struct http_request_view *req,
                                  struct http_response *resp, const char *name)
{
    int64_t now = req->now_mono_ms;
    struct local_entry *le;
    struct local_qr *lq;
    enum cache_verdict v;
    char format[16], message[REGION_NAME_MAX + REGION_STATUS_MAX + 80],
        etag[CACHE_ETAG_MAX];
    bool raw = http_query_param(req->query, "format", format, sizeof(format)) == 0 &&
               strcmp(format, "raw") == 0;
    int index;
    struct jbuf b;

    if (!config_valid_session_name(name)) {
        http_response_error(resp, 404, "session_not_found", "not a WAHA session name");
        return ROUTE_DONE;
    }
    index = resolve_session(name, resp, req);
    if (index == -2)
        return ROUTE_WAIT;
    if (index < 0)
        return ROUTE_DONE;
    le = replica_entry(index);
    lq = replica_qr(index);
    if (le == NULL || lq == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    /* The status decides whether there is a QR: it must be current. */
    replica_mark_read(index, false, now);
    replica_mark_read(index, true, now);
    v = replica_judge(index, false, le->d.has_data, le->d.fetched_mono_ms,
                      session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now),
                      rt.cfg->backend.stale_if_error, now, req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    if (v == CACHE_EMPTY) {
        unavailable(resp, v, &le->d, "this session", now);
        return ROUTE_DONE;
    }
    if (strcmp(le->d.raw_status, "SCAN_QR_CODE") != 0) {
        snprintf(message, sizeof(message),
                 "session \"%s\" is not waiting for a QR scan (status %s)", name,
                 le->d.raw_status);
        http_response_error(resp, 404, "no_qr", message);
        return ROUTE_DONE;
    }
    v = replica_judge(index, true, lq->d.has_qr, lq->d.fetched_mono_ms, INT64_MAX / 4,
                      INT64_MAX / 4, now, req->may_wait);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    count_verdict(v, req);
    if (!lq->d.has_qr) {
        http_response_error(resp, 503, "qr_not_ready",
                            "WAHA has not given this session's QR code yet");
        http_response_header(resp, "Retry-After", "1");
        return ROUTE_DONE;
    }
    /* QR tags are numbered after the entries' so the two never collide. */
    cache_etag(etag, region_header(rt.region)->instance_id, REGION_MAX_ENTRIES + index,
               lq->generation, false);
    http_response_header(resp, "ETag", "%s", etag);
    http_response_header(resp, "Cache-Control", "no-cache");
    if (cache_etag_matches(req->if_none_match, etag)) {
        resp->status = 304;
        count(COUNTER_NOT_MODIFIED);
        return ROUTE_DONE;
    }
    if (raw) {
        jbuf_init(&b, rt.scratch, SCRATCH_MAX);
        jbuf_raw(&b, "{\"value\":");
        jbuf_string(&b, lq->d.value);
        jbuf_raw(&b, "}");
        json_body(resp, b.data, b.len);
    } else if (req->accept != NULL && strcmp(req->accept, "application/json") == 0) {
        if (lq->rendered_seq != lq->seq && !render_qr_json(lq)) {
            http_response_error(resp, 500, "internal", "out of memory");
            return ROUTE_DONE;
        }
        json_body(resp, lq->json, lq->json_len);
    } else {
        resp->status = 200;
        resp->content_type = "image/png";
        resp->body = (const char *)lq->d.png;
        resp->body_len = lq->d.png_len;
    }
    return ROUTE_DONE;
}

/*========================================================================
 * WAHA's webhooks.
 */

static enum route_result serve_webhook(const struct http_request_view *req,
                                       struct http_response *resp)
{
    struct webhook_event ev;
    char why[REGION_ERROR_MAX];
    enum webhook_result parsed;

    count(COUNTER_WEBHOOKS);
    if (req->body_too_large) {
        count(COUNTER_WEBHOOKS_REJECTED);
        http_response_error(resp, 413, "payload_too_large", "webhook body is too large");
        return ROUTE_DONE;
    }
    if (rt.cfg->webhook.hmac_key[0] != '\0' &&
        !webhook_hmac_ok(rt.cfg->webhook.hmac_key, req->body ? req->body : "",
                         req->body_len, req->webhook_hmac)) {
        count(COUNTER_WEBHOOKS_REJECTED);
        http_response_error(resp, 401, "bad_signature",
                            "X-Webhook-Hmac is missing or does not match the body");
        return ROUTE_DONE;
    }
    if (req->body == NULL) {
        count(COUNTER_WEBHOOKS_REJECTED);
        http_response_error(resp, 400, "bad_request", "webhook without a body");
        return ROUTE_DONE;
    }
    parsed = webhook_parse(req->body, req->body_len, &ev, why);
    if (parsed == WEBHOOK_BAD) {
        count(COUNTER_WEBHOOKS_REJECTED);
        http_response_error(resp, 400, "bad_request", why);
        return ROUTE_DONE;
    }
    if (parsed == WEBHOOK_IGNORED) {
        resp->status = 202;
        resp->content_type = "application/json";
        resp->body = "{\"result\":\"ignored\"}";
        resp->body_len = strlen(resp->body);
        return ROUTE_DONE;
    }
    switch (store_webhook(rt.region, rt.cfg, &ev)) {
    case STORE_WEBHOOK_APPLIED:
        json_body(resp, "{\"result\":\"applied\"}", strlen("{\"result\":\"applied\"}"));
        break;
    case STORE_WEBHOOK_DUPLICATE:
        count(COUNTER_WEBHOOKS_DUPLICATE);
        json_body(resp, "{\"result\":\"duplicate\"}",
                  strlen("{\"result\":\"duplicate\"}"));
        break;
    case STORE_WEBHOOK_UNTRACKED:
    default:
        if (rt.cfg->upstream.all_sessions) /* maybe a new session: list again */
            replica_want(REGION_ENTRY_LIST, false, req->now_mono_ms);
        resp->status = 202;
        resp->content_type = "application/json";
        resp->body = "{\"result\":\"untracked\"}";
        resp->body_len = strlen(resp->body);
        break;
    }
    return ROUTE_DONE;
}

/*========================================================================
 * Server-Sent Events: the stream itself is sse.c's.
 */

static enum route_result serve_events(const struct http_request_view *req,
                                      struct http_response *resp)
{
    char name[REGION_NAME_MAX];
    int param = http_query_param(req->query, "session", name, sizeof(name));
    int index = -1;

    if (param != -1) {
        index = session_of_query(req, resp);
        if (index == -2)
            return ROUTE_WAIT;
        if (index < 0)
            return ROUTE_DONE;
    }
    resp->stream_session = index;
    resp->stream_key = rt.key;
    return ROUTE_STREAM;
}

/*========================================================================
 * The gateway's own figures: stats and metrics.
 */

/* server.stats_token, when set, as "Authorization: Bearer <token>". */
static bool token_ok(const struct http_request_view *req)
{
    unsigned char got[32];
    const char *presented;

    if (rt.cfg->server.stats_token[0] == '\0')
        return true;
    if (req->authorization == NULL || strncmp(req->authorization, "Bearer ", 7) != 0)
        return false;
    presented = req->authorization + 7;
    /* Digests have one length, so the comparison time tells nothing. */
    EVP_Digest(presented, strlen(presented), got, NULL, EVP_sha256(), NULL);
    return CRYPTO_memcmp(got, rt.cfg->server.stats_token_sha256, sizeof(got)) == 0;
}

static bool admin_checks(const struct http_request_view *req, struct http_response *resp)
{
    if (token_ok(req))
        return true;
    http_response_error(resp, 401, "unauthorized",
                        "this resource needs Authorization: Bearer <server.stats_token>");
    http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"wahagate\"");
    return false;
}

static enum route_result serve_stats(const struct http_request_view *req,
                                     struct http_response *resp)
{
    struct jbuf b;

    if (!admin_checks(req, resp))
        return ROUTE_DONE;
    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    stats_render_json(rt.region, rt.cfg, &b);
    http_response_header(resp, "Cache-Control", "no-store");
    json_body(resp, b.data, b.len);
    return ROUTE_DONE;
}

/* Per-session gauges, from this worker's copies of the entries. */
static void session_metrics(struct jbuf *b, int64_t now)
{
    static const char *const names[] = {"session_authenticated", "session_status",
                                        "session_data_age_seconds", "session_stale"};
    static const char *const helps[] = {
        "1 while the session's published status is WORKING.",
        "1 for the session's published status.", "Age of the cached data of the session.",
        "1 while the session's data is older than backend.status_cache_duration."};

    for (int m = 0; m < 4; m++) {
        jbuf_printf(b, "# HELP wahagate_%s %s\n# TYPE wahagate_%s gauge\n", names[m],
                    helps[m], names[m]);
        for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
            const struct local_entry *le =
                replica_is_session(i) ? replica_entry(i) : NULL;
            int64_t age;
            if (le == NULL || !le->d.has_data)
                continue;
            age = cache_age_ms(le->d.fetched_mono_ms, now);
            if (m == 0)
                jbuf_printf(b, "wahagate_%s{session=\"%s\"} %d\n", names[m], le->d.name,
                            strcmp(le->d.status, "WORKING") == 0);
            else if (m == 1)
                jbuf_printf(b, "wahagate_%s{session=\"%s\",status=\"%s\"} 1\n", names[m],
                            le->d.name, le->d.status);
            else if (m == 2)
                jbuf_printf(b, "wahagate_%s{session=\"%s\"} %.3f\n", names[m], le->d.name,
                            age / 1000.0);
            else
                jbuf_printf(b, "wahagate_%s{session=\"%s\"} %d\n", names[m], le->d.name,
                            age >= rt.cfg->backend.status_cache_duration);
        }
    }
}

static enum route_result serve_metrics(const struct http_request_view *req,
                                       struct http_response *resp)
{
    struct jbuf b;

    if (!admin_checks(req, resp))
        return ROUTE_DONE;
    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    stats_render_metrics(rt.region, rt.cfg, &b);
    session_metrics(&b, req->now_mono_ms);
    if (b.overflow) {
        http_response_error(resp, 500, "internal", "metrics do not fit the buffer");
        return ROUTE_DONE;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = b.data;
    resp->body_len = b.len;
    http_response_header(resp, "Cache-Control", "no-store");
    return ROUTE_DONE;
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
    enum route_result (*handler)(const struct http_request_view *req,
                                 struct http_response *resp);
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
        if (cache_etag_matches(req->if_none_match, a->etag)) {
            resp->status = 304;
            count(COUNTER_NOT_MODIFIED);
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
    } else if (!authorize(req, resp)) {
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
            if (routes[i].needs_key && !authorize(req, resp))
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
    http_printable(shown, sizeof(shown), path);
    snprintf(message, sizeof(message), "no resource at %s", shown);
    http_response_error(resp, 404, "not_found", message);
    return ROUTE_DONE;
}

/*========================================================================
 * Cross-origin requests (server.cors_origins).
 */

static bool origin_allowed(const char *origin)
{
    if (origin == NULL || rt.cfg->server.cors_origin_count + rt.cfg->server.cors_any == 0)
        return false;
    if (rt.cfg->server.cors_any)
        return true;
    for (int i = 0; i < rt.cfg->server.cors_origin_count; i++)
        if (strcasecmp(origin, rt.cfg->server.cors_origins[i]) == 0)
            return true;
    return false;
}

/* The origin is echoed, never "*": answers may carry credentials. */
static void cors_headers(const struct http_request_view *req, struct http_response *resp)
{
    if (!origin_allowed(req->origin))
        return;
    http_response_header(resp, "Access-Control-Allow-Origin", "%s", req->origin);
    http_response_header(resp, "Access-Control-Allow-Credentials", "true");
    http_response_header(resp, "Access-Control-Expose-Headers", "ETag, Age, Retry-After");
    http_response_header(resp, "Vary", "Origin");
}

/* OPTIONS: a browser's preflight before a cross-origin request. */
static void preflight(const struct http_request_view *req, struct http_response *resp)
{
    resp->status = 204;
    resp->content_type = NULL;
    http_response_header(resp, "Allow", "GET, HEAD, POST, OPTIONS");
    if (!origin_allowed(req->origin))
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
    header_int(resp, "RateLimit-Limit", v->limit);
    header_int(resp, "RateLimit-Remaining", v->remaining);
    header_int(resp, "RateLimit-Reset", (v->reset_ms + 999) / 1000);
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
        count(COUNTER_RATE_LIMITED);
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
    struct jbuf b;

    memset(&rt, 0, sizeof(rt));
    rt.cfg = cfg;
    rt.region = region;
    rt.slot = slot;
    rt.scratch = malloc(SCRATCH_MAX);
    if (rt.scratch == NULL || replica_init(region) != 0) {
        log_error(0, "out of memory for the worker's response cache");
        routes_free();
        return -1;
    }
    jbuf_init(&b, rt.config_body, sizeof(rt.config_body));
    jbuf_printf(&b,
                "{\"initialCheckDelay\":%lld,\"baseInterval\":%lld,"
                "\"authenticatedInterval\":%lld,\"maxInterval\":%lld,"
                "\"backoffMultiplier\":%g}",
                (long long)cfg->frontend.initial_check_delay,
                (long long)cfg->frontend.base_interval,
                (long long)cfg->frontend.authenticated_interval,
                (long long)cfg->frontend.max_interval, cfg->frontend.backoff_multiplier);
    rt.config_body_len = b.len;
    return 0;
}

void routes_free(void)
{
    replica_free();
    free(rt.scratch);
    rt.scratch = NULL;
}
