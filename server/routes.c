/*
 * routes.c - the handlers of the HTTP API, serving only from the region.
 *
 * DESIGN
 * Each worker keeps a private copy of every region entry it has served
 * (struct local_entry) together with the parts of its response that only
 * change when the entry changes: for a session, the status object up to
 * "ageMs". A request compares the entry's sequence number with the copy's
 * (one atomic load); only when they differ does it take the region lock,
 * copy the entry and render again. The per-request work is then the few
 * numbers that depend on the clock (ageMs, stale, Age, max-age, nextMs).
 *
 * Demand is reported without the lock: every read stores the time into the
 * entry's last_read_ms (so the fetcher refreshes it ahead of expiry), and a
 * read that finds the entry cold stores wanted_ms (so the fetcher fetches it
 * now). Whether a request waits is cache_judge()'s decision; waiting is the
 * worker's business (ROUTE_WAIT, see routes.h).
 *
 * Session names come from a private table of (kind, name) per entry that
 * is copied under the lock whenever the region's table_generation changes,
 * so lookups never read names while the fetcher renames entries.
 *
 * Everything here runs in one worker process, single-threaded; the static
 * state below is per process.
 */
#include "routes.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "json.h"
#include "log.h"

#define PREFIX_MAX (REGION_ME_MAX + REGION_ERROR_MAX + 1024)
#define SUFFIX_MAX 256
/* Every session body once, plus commas and brackets. */
#define SCRATCH_MAX (REGION_SESSION_MAX * (REGION_BODY_MAX + 1) + PREFIX_MAX)
/* A read is recorded when the last record is at least this old. */
#define READ_MARK_GRANULARITY_MS 10

struct local_entry {
    bool valid;
    uint64_t seq;
    uint64_t generation;
    size_t prefix_len;
    char prefix[PREFIX_MAX]; /* status object up to "ageMs": */
    struct entry_data d;     /* last, because only its used part is copied */
};

struct entry_name {
    uint32_t kind;
    char name[REGION_NAME_MAX];
};

static struct {
    const struct config *cfg;
    struct region *region;
    struct region_proc *slot;
    struct local_entry *entries; /* REGION_MAX_ENTRIES */
    bool names_valid;
    uint64_t names_generation;
    struct entry_name names[REGION_MAX_ENTRIES];
    char *scratch; /* SCRATCH_MAX bytes */
    size_t config_body_len;
    char config_body[256];
} rt;

/*========================================================================
 * The worker's copies of region entries.
 */

static void sync_names(void)
{
    struct region_header *h = region_header(rt.region);
    uint64_t gen = atomic_load(&h->table_generation);

    if (rt.names_valid && gen == rt.names_generation)
        return;
    if (region_lock(rt.region) != 0)
        return; /* keep the old table */
    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        const struct region_entry *e = region_entry(rt.region, i);
        rt.names[i].kind = e->d.kind;
        memcpy(rt.names[i].name, e->d.name, sizeof(rt.names[i].name));
    }
    rt.names_generation = atomic_load(&h->table_generation);
    region_unlock(rt.region);
    rt.names_valid = true;
}

static int find_session(const char *name)
{
    sync_names();
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++)
        if (rt.names[i].kind == ENTRY_SESSION && strcmp(rt.names[i].name, name) == 0)
            return i;
    return -1;
}

static int first_session(void)
{
    sync_names();
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++)
        if (rt.names[i].kind == ENTRY_SESSION)
            return i;
    return -1;
}

static void render_session_prefix(struct local_entry *le)
{
    const struct entry_data *d = &le->d;
    struct jbuf b;

    jbuf_init(&b, le->prefix, sizeof(le->prefix));
    jbuf_raw(&b, "{\"session\":");
    jbuf_string(&b, d->name);
    jbuf_raw(&b, ",\"status\":");
    jbuf_string(&b, d->status);
    jbuf_printf(&b, ",\"authenticated\":%s,\"me\":",
                strcmp(d->status, "WORKING") == 0 ? "true" : "false");
    jbuf_raw(&b, d->me_json);
    jbuf_printf(&b,
                ",\"upstream\":{\"healthy\":%s,\"circuit\":\"closed\","
                "\"lastSuccessAt\":",
                d->healthy ? "true" : "false");
    jbuf_time(&b, d->last_success_real_ms);
    jbuf_raw(&b, ",\"lastError\":");
    jbuf_string(&b, d->last_error[0] ? d->last_error : NULL);
    jbuf_raw(&b, "},\"cache\":{\"source\":");
    jbuf_string(&b, entry_source_names[d->source < SOURCE_COUNT ? d->source : 0]);
    jbuf_raw(&b, ",\"fetchedAt\":");
    jbuf_time(&b, d->fetched_real_ms);
    jbuf_raw(&b, ",\"ageMs\":");
    le->prefix_len = b.overflow ? 0 : b.len;
}

/*
 * sync_entry - the worker's copy of entry INDEX, refreshed under the lock if
 * the region's sequence number moved. NULL only if the lock is unusable and
 * there is no earlier copy.
 */
static struct local_entry *sync_entry(int index)
{
    struct region_entry *e = region_entry(rt.region, index);
    struct local_entry *le = &rt.entries[index];
    uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);

    if (le->valid && le->seq == seq)
        return le;
    if (region_lock(rt.region) != 0)
        return le->valid ? le : NULL;
    entry_data_copy(&le->d, &e->d);
    le->seq = atomic_load(&e->seq);
    le->generation = atomic_load(&e->generation);
    region_unlock(rt.region);
    le->valid = true;
    if (le->d.kind == ENTRY_SESSION)
        render_session_prefix(le);
    return le;
}

static void mark_read(int index, int64_t now)
{
    struct region_entry *e = region_entry(rt.region, index);
    int64_t last = atomic_load_explicit(&e->last_read_ms, memory_order_relaxed);

    if (now - last >= READ_MARK_GRANULARITY_MS)
        atomic_store_explicit(&e->last_read_ms, now, memory_order_relaxed);
}

static void mark_wanted(int index, int64_t now)
{
    struct region_entry *e = region_entry(rt.region, index);
    int64_t done = atomic_load(&e->attempt_done_ms);

    if (atomic_load(&e->wanted_ms) <= done)
        atomic_store(&e->wanted_ms, now > done ? now : done + 1);
}

/* Judge entry INDEX (copy LE) for REQ; ask the fetcher when it is cold. */
static enum cache_verdict judge(int index, const struct local_entry *le,
                                int64_t max_age_ms, const struct http_request_view *req)
{
    struct region_entry *e = region_entry(rt.region, index);
    struct cache_view view = {
        .has_data = le->d.has_data,
        .fetched_mono_ms = le->d.fetched_mono_ms,
        .attempt_done_ms = atomic_load(&e->attempt_done_ms),
    };
    enum cache_verdict v =
        cache_judge(&view, max_age_ms, req->now_mono_ms, req->may_wait);

    if (v != CACHE_FRESH)
        mark_wanted(index, req->now_mono_ms);
    return v;
}

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

static void no_data_yet(struct http_response *resp, const struct entry_data *d,
                        const char *what)
{
    char message[REGION_ERROR_MAX + 96];

    snprintf(message, sizeof(message), "no data from WAHA for %s yet%s%s", what,
             d->last_error[0] ? ": " : "", d->last_error);
    http_response_error(resp, 503, "no_data", message);
    http_response_header(resp, "Retry-After", "1");
}

/*
 * Validators and freshness headers for one entry; true when the client's
 * copy is current and RESP is now a 304.
 */
static bool cache_headers(struct http_response *resp, int index,
                          const struct local_entry *le, bool stale, int64_t max_age_ms,
                          int64_t age_ms, const struct http_request_view *req)
{
    char etag[CACHE_ETAG_MAX];

    cache_etag(etag, region_header(rt.region)->instance_id, index, le->generation, stale);
    http_response_header(resp, "ETag", "%s", etag);
    http_response_header(
        resp, "Cache-Control", "max-age=%lld",
        (long long)(stale ? 0 : cache_max_age_seconds(max_age_ms, age_ms)));
    http_response_header(resp, "Age", "%lld", (long long)(age_ms / 1000));
    if (!cache_etag_matches(req->if_none_match, etag))
        return false;
    resp->status = 304;
    resp->body = NULL;
    resp->body_len = 0;
    count(COUNTER_NOT_MODIFIED);
    return true;
}

static void json_body(struct http_response *resp, const char *body, size_t len)
{
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = body;
    resp->body_len = len;
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
    int index = name ? find_session(name) : first_session();
    char message[REGION_NAME_MAX + 64];

    if (index >= 0)
        return index;
    if (rt.cfg->upstream.all_sessions) {
        struct local_entry *list = sync_entry(REGION_ENTRY_LIST);
        enum cache_verdict v;

        if (list == NULL) {
            http_response_error(resp, 500, "internal", "region lock unusable");
            return -1;
        }
        mark_read(REGION_ENTRY_LIST, req->now_mono_ms);
        v = judge(REGION_ENTRY_LIST, list, rt.cfg->backend.session_cache_duration, req);
        if (v == CACHE_WAIT)
            return -2;
        if (v == CACHE_EMPTY) {
            no_data_yet(resp, &list->d, "the session list");
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

/*========================================================================
 * Handlers.
 */

static enum route_result serve_status(const struct http_request_view *req,
                                      struct http_response *resp)
{
    char name[REGION_NAME_MAX];
    int param = http_query_param(req->query, "session", name, sizeof(name));
    int64_t max_age = rt.cfg->backend.status_cache_duration;
    int64_t age, next_ms;
    struct local_entry *le;
    enum cache_verdict v;
    bool stale;
    int index;
    struct jbuf b;

    if (param == -2 || (param == 0 && !config_valid_session_name(name))) {
        http_response_error(resp, 404, "session_not_found", "not a WAHA session name");
        return ROUTE_DONE;
    }
    index = resolve_session(param == 0 ? name : NULL, resp, req);
    if (index == -2)
        return ROUTE_WAIT;
    if (index < 0)
        return ROUTE_DONE;
    le = sync_entry(index);
    if (le == NULL || le->prefix_len == 0) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    mark_read(index, req->now_mono_ms);
    v = judge(index, le, max_age, req);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    count_verdict(v, req);
    if (v == CACHE_EMPTY) {
        no_data_yet(resp, &le->d, "this session");
        return ROUTE_DONE;
    }
    stale = v == CACHE_STALE;
    age = cache_age_ms(le->d.fetched_mono_ms, req->now_mono_ms);
    if (cache_headers(resp, index, le, stale, max_age, age, req))
        return ROUTE_DONE;

    next_ms = strcmp(le->d.status, "WORKING") == 0
                  ? rt.cfg->frontend.authenticated_interval
                  : rt.cfg->frontend.base_interval;
    if (stale || !le->d.healthy) {
        double backed_off = (double)next_ms * rt.cfg->frontend.backoff_multiplier;
        next_ms = backed_off > (double)rt.cfg->frontend.max_interval
                      ? rt.cfg->frontend.max_interval
                      : (int64_t)backed_off;
    }
    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    jbuf_mem(&b, le->prefix, le->prefix_len);
    jbuf_printf(&b, "%lld,\"maxAgeMs\":%lld,\"stale\":%s},\"poll\":{\"nextMs\":%lld}}",
                (long long)age, (long long)max_age, stale ? "true" : "false",
                (long long)next_ms);
    json_body(resp, b.data, b.len);
    return ROUTE_DONE;
}

static enum route_result serve_session(const struct http_request_view *req,
                                       struct http_response *resp, const char *name)
{
    int64_t max_age = rt.cfg->backend.session_cache_duration;
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
    le = sync_entry(index);
    if (le == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return ROUTE_DONE;
    }
    mark_read(index, req->now_mono_ms);
    v = judge(index, le, max_age, req);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    count_verdict(v, req);
    if (v == CACHE_EMPTY) {
        no_data_yet(resp, &le->d, "this session");
        return ROUTE_DONE;
    }
    if (!le->d.exists) {
        snprintf(message, sizeof(message), "WAHA has no session \"%s\"", name);
        http_response_error(resp, 404, "session_not_found", message);
        return ROUTE_DONE;
    }
    if (cache_headers(resp, index, le, v == CACHE_STALE, max_age,
                      cache_age_ms(le->d.fetched_mono_ms, req->now_mono_ms), req))
        return ROUTE_DONE;
    json_body(resp, le->d.body, le->d.body_len);
    return ROUTE_DONE;
}

static enum route_result serve_sessions(const struct http_request_view *req,
                                        struct http_response *resp)
{
    int64_t max_age = rt.cfg->backend.session_cache_duration;
    bool wait = false, any_miss = false;
    struct jbuf b;

    /* With sessions = *, the list says which sessions there are. */
    if (rt.cfg->upstream.all_sessions) {
        struct local_entry *list = sync_entry(REGION_ENTRY_LIST);
        enum cache_verdict v;

        if (list == NULL) {
            http_response_error(resp, 500, "internal", "cannot read the cache");
            return ROUTE_DONE;
        }
        mark_read(REGION_ENTRY_LIST, req->now_mono_ms);
        v = judge(REGION_ENTRY_LIST, list, max_age, req);
        if (v == CACHE_WAIT)
            return ROUTE_WAIT;
        if (v == CACHE_EMPTY) {
            no_data_yet(resp, &list->d, "the session list");
            return ROUTE_DONE;
        }
    }
    sync_names();
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        struct local_entry *le;
        enum cache_verdict v;

        if (rt.names[i].kind != ENTRY_SESSION || (le = sync_entry(i)) == NULL)
            continue;
        mark_read(i, req->now_mono_ms);
        v = judge(i, le, max_age, req);
        wait |= v == CACHE_WAIT;
        any_miss |= v != CACHE_FRESH;
    }
    if (wait)
        return ROUTE_WAIT;
    count(any_miss || req->parked ? COUNTER_CACHE_MISSES : COUNTER_CACHE_HITS);

    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    jbuf_raw(&b, "[");
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        const struct local_entry *le = &rt.entries[i];
        if (rt.names[i].kind != ENTRY_SESSION || !le->valid || !le->d.has_data ||
            !le->d.exists)
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
    int64_t max_age = rt.cfg->backend.health_check_cache_duration;
    struct local_entry *le = sync_entry(REGION_ENTRY_HEALTH);
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
    mark_read(REGION_ENTRY_HEALTH, req->now_mono_ms);
    v = judge(REGION_ENTRY_HEALTH, le, max_age, req);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    count_verdict(v, req);
    if (v == CACHE_EMPTY) {
        no_data_yet(resp, d, "WAHA's health");
        return ROUTE_DONE;
    }
    stale = v == CACHE_STALE;
    healthy = d->healthy && !stale &&
              (strcmp(d->status, "ok") == 0 || strcmp(d->status, "pong") == 0);
    age = cache_age_ms(d->fetched_mono_ms, req->now_mono_ms);
    if (cache_headers(resp, REGION_ENTRY_HEALTH, le, stale, max_age, age, req))
        return ROUTE_DONE;

    jbuf_init(&b, rt.scratch, SCRATCH_MAX);
    jbuf_printf(&b, "{\"healthy\":%s,\"upstream\":{\"healthy\":%s,\"endpoint\":",
                healthy ? "true" : "false", d->healthy ? "true" : "false");
    jbuf_string(&b, d->name);
    jbuf_raw(&b, ",\"status\":");
    jbuf_string(&b, d->status);
    jbuf_raw(&b, ",\"circuit\":\"closed\",\"lastSuccessAt\":");
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
 * Dispatch.
 */

static const char sessions_prefix[] = "/api/waha/sessions/";

static const struct route {
    const char *path;
    enum route_result (*handler)(const struct http_request_view *req,
                                 struct http_response *resp);
} routes[] = {
    {"/api/waha/status", serve_status},
    {"/api/waha/health", serve_health},
    {"/api/waha/sessions", serve_sessions},
    {"/api/waha/config", serve_config},
};

static enum route_result dispatch(const struct http_request_view *req,
                                  struct http_response *resp)
{
    const char *path = req->path;
    bool read_method = req->method == HTTP_GET || req->method == HTTP_HEAD;
    bool known = false;
    char message[160], shown[121];

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (read_method)
            return routes[i].handler(req, resp);
        known = true;
    }
    if (!known && strncmp(path, sessions_prefix, sizeof(sessions_prefix) - 1) == 0) {
        const char *name = path + sizeof(sessions_prefix) - 1;
        if (read_method && strchr(name, '/') == NULL)
            return serve_session(req, resp, name);
        known = strchr(name, '/') == NULL;
    }
    if (known) {
        http_response_error(resp, 405, "method_not_allowed",
                            "this resource only answers GET and HEAD");
        http_response_header(resp, "Allow", "GET, HEAD");
        return ROUTE_DONE;
    }
    http_printable(shown, sizeof(shown), path);
    snprintf(message, sizeof(message), "no resource at %s", shown);
    http_response_error(resp, 404, "not_found", message);
    return ROUTE_DONE;
}

enum route_result routes_handle(const struct http_request_view *req,
                                struct http_response *resp)
{
    enum route_result result;

    resp->status = 200;
    resp->content_type = "application/json";
    resp->header_count = 0;
    resp->body = NULL;
    resp->body_len = 0;
    result = dispatch(req, resp);
    if (result == ROUTE_WAIT)
        return result;
    count(COUNTER_REQUESTS);
    if (resp->status >= 400)
        count(COUNTER_ERRORS);
    return result;
}

int routes_init(const struct config *cfg, struct region *region, struct region_proc *slot)
{
    struct jbuf b;

    memset(&rt, 0, sizeof(rt));
    rt.cfg = cfg;
    rt.region = region;
    rt.slot = slot;
    rt.entries = calloc(REGION_MAX_ENTRIES, sizeof(*rt.entries));
    rt.scratch = malloc(SCRATCH_MAX);
    if (rt.entries == NULL || rt.scratch == NULL) {
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
    free(rt.entries);
    free(rt.scratch);
    rt.entries = NULL;
    rt.scratch = NULL;
}
