/*
 * sessions.c - WAHA's session objects, the session list and QR codes, as
 * cached; and finding the session a request names.
 *
 * DESIGN
 * A session object is served as WAHA sent it (re-serialised compactly by
 * waha.c), from the worker's copy of its entry. Its validator is the copy's
 * sequence number: the object changes with every refresh (engine state,
 * activity), unlike the status object, whose ETag follows the generation.
 * A session.status webhook brings a status but not the object, so an entry
 * fed by webhooks only is not "data" for these endpoints until the fetcher
 * brought the object.
 *
 * The QR endpoint serves what the fetcher prefetched while the session
 * waits for a scan, as WAHA does: PNG, {"mimetype","data"} for exactly
 * "Accept: application/json" (rendered once per code), or {"value"} for
 * ?format=raw. Whether there is a QR at all depends on the status, so a
 * QR request needs the session's status to be current first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "handlers.h"
#include "waha.h"

/* base64 of the largest PNG, with the JSON around it. */
#define QR_JSON_MAX (4 * ((REGION_QR_PNG_MAX + 2) / 3) + 64)
/* A reader waiting for a QR code asks for the session's status too, when
 * that is older than this. */
#define QR_STATUS_RECHECK_MS 1000

/*========================================================================
 * Finding a session.
 */

static int first_session_in_scope(void)
{
    if (rt.key == NULL)
        return replica_first_session();
    for (int i = REGION_ENTRY_FIRST_SESSION; i < replica_entry_count(); i++)
        if (replica_is_session(i) && auth_allows(replica_session_name(i)))
            return i;
    return -1;
}

/*
 * With upstream.sessions = *, WAHA's session list says which sessions there
 * are: it must be there (or be waited for). LOOKUP_FOUND when it may be
 * used, even stale.
 */
enum lookup session_list_judge(const struct http_request_view *req,
                               struct http_response *resp)
{
    struct local_entry *list = replica_entry(REGION_ENTRY_LIST);
    enum cache_verdict v;

    if (list == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return LOOKUP_ANSWERED;
    }
    replica_mark_read(REGION_ENTRY_LIST, DEMAND_DATA, req->now_mono_ms);
    v = replica_judge(REGION_ENTRY_LIST, DEMAND_DATA, list->d.has_data,
                      list->d.fetched_mono_ms, rt.cfg->backend.session_cache_duration,
                      rt.cfg->backend.stale_if_error, req->now_mono_ms, req->may_wait);
    if (v == CACHE_WAIT)
        return LOOKUP_WAIT;
    if (v == CACHE_EMPTY) {
        route_unavailable(resp, v, list->d.last_error, "the session list",
                          req->now_mono_ms);
        return LOOKUP_ANSWERED;
    }
    return LOOKUP_FOUND;
}

enum lookup lookup_session(const char *name, const struct http_request_view *req,
                           struct http_response *resp, int *index)
{
    char message[REGION_NAME_MAX + 64];
    enum lookup list;

    /* Out of scope is 403 whether or not the session exists: a key cannot
     * probe for the sessions of others. */
    if (name != NULL && !auth_allows(name)) {
        snprintf(message, sizeof(message), "this key may not see session \"%s\"", name);
        http_response_error(resp, 403, "forbidden", message);
        return LOOKUP_ANSWERED;
    }
    *index = name ? replica_find_session(name) : first_session_in_scope();
    if (*index >= 0)
        return LOOKUP_FOUND;
    if (rt.cfg->upstream.all_sessions &&
        (list = session_list_judge(req, resp)) != LOOKUP_FOUND)
        return list;
    if (name == NULL) {
        http_response_error(resp, 503, "no_session", "WAHA lists no session");
        http_response_header(resp, "Retry-After", "1");
        return LOOKUP_ANSWERED;
    }
    snprintf(message, sizeof(message), "session \"%s\" is not tracked", name);
    http_response_error(resp, 404, "session_not_found", message);
    return LOOKUP_ANSWERED;
}

enum lookup lookup_session_of_query(const struct http_request_view *req,
                                    struct http_response *resp, int *index)
{
    char name[REGION_NAME_MAX];
    int param = http_query_param(req->query, "session", name, sizeof(name));

    if (param == -2 || (param == 0 && !waha_name_ok(name))) {
        http_response_error(resp, 404, "session_not_found", "not a WAHA session name");
        return LOOKUP_ANSWERED;
    }
    return lookup_session(param == 0 ? name : NULL, req, resp, index);
}

/*
 * What serve_session() and serve_qr() share: the entry of the session a
 * path names (*INDEX) and the worker's copy of it (*LE), marked read.
 */
static enum lookup named_session(const char *name, const struct http_request_view *req,
                                 struct http_response *resp, int *index,
                                 struct local_entry **le)
{
    enum lookup found;

    if (!waha_name_ok(name)) {
        http_response_error(resp, 404, "session_not_found", "not a WAHA session name");
        return LOOKUP_ANSWERED;
    }
    found = lookup_session(name, req, resp, index);
    if (found != LOOKUP_FOUND)
        return found;
    *le = replica_entry(*index);
    if (*le == NULL) {
        http_response_error(resp, 500, "internal", "cannot read the cache");
        return LOOKUP_ANSWERED;
    }
    replica_mark_read(*index, DEMAND_DATA, req->now_mono_ms);
    return LOOKUP_FOUND;
}

static enum route_result route_of(enum lookup found)
{
    return found == LOOKUP_WAIT ? ROUTE_WAIT : ROUTE_DONE;
}

/* The list item of a session is data once the fetcher brought it, or
 * learned that WAHA has no such session (a webhook brings a status, not
 * the object). */
bool session_has_object(const struct entry_data *d)
{
    return d->has_data && (d->body_len > 0 || !d->exists);
}

/* NAME is not a session WAHA has: 404, in WAHA's words when it gave some
 * (WAHA Core refuses sessions other than "default"). */
static enum route_result absent(struct http_response *resp, const struct entry_data *d,
                                const char *name)
{
    char message[REGION_NAME_MAX + REGION_ERROR_MAX + 64];

    if (d->absent_reason[0] != '\0') {
        http_response_error(resp, 404, "session_not_available", d->absent_reason);
        return ROUTE_DONE;
    }
    snprintf(message, sizeof(message), "WAHA has no session \"%s\"", name);
    http_response_error(resp, 404, "session_not_found", message);
    return ROUTE_DONE;
}

/* Judge the data and the details of session INDEX's object: the verdict
 * that decides (the worse of the two). */
enum cache_verdict session_judge_object(int index, const struct local_entry *le,
                                        const struct http_request_view *req)
{
    int64_t now = req->now_mono_ms, period = rt.cfg->backend.session_cache_duration;
    enum cache_verdict data, details;

    replica_mark_read(index, DEMAND_DETAILS, now);
    data =
        replica_judge(index, DEMAND_DATA, session_has_object(&le->d),
                      le->d.fetched_mono_ms, route_session_max_age(&le->d, period, now),
                      rt.cfg->backend.stale_if_error, now, req->may_wait);
    /* The details of a session WAHA has; of one its list lacks, WAHA's
     * word on why (store_unlisted()). */
    details = !le->d.has_data
                  ? CACHE_FRESH
                  : replica_judge(index, DEMAND_DETAILS, le->d.has_details,
                                  le->d.details_mono_ms, period,
                                  rt.cfg->backend.stale_if_error, now, req->may_wait);
    if (data == CACHE_WAIT || details == CACHE_WAIT)
        return CACHE_WAIT;
    return data > details ? data : details; /* FRESH < STALE < TOO_OLD < EMPTY */
}

/* The object: the list item, with the details' "engine" last, as WAHA's
 * GET /api/sessions/{name} has it ({...session, engine}). */
bool session_render_object(const struct local_entry *le, struct jbuf *b)
{
    const struct entry_data *d = &le->d;

    if (d->engine_len == 0 || d->body_len < 2) {
        jbuf_mem(b, le->body, d->body_len);
    } else {
        jbuf_mem(b, le->body, d->body_len - 1);
        jbuf_raw(b, d->body_len > 2 ? ",\"engine\":" : "\"engine\":");
        jbuf_mem(b, le->engine, d->engine_len);
        jbuf_raw(b, "}");
    }
    return !b->overflow;
}

/*========================================================================
 * Session objects.
 */

enum route_result serve_session(const struct http_request_view *req,
                                struct http_response *resp, const char *name)
{
    int64_t now = req->now_mono_ms;
    struct local_entry *le = NULL;
    enum cache_verdict v;
    enum lookup found;
    struct jbuf b;
    int index;

    found = named_session(name, req, resp, &index, &le);
    if (found != LOOKUP_FOUND)
        return route_of(found);
    v = session_judge_object(index, le, req);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    if (v == CACHE_EMPTY || v == CACHE_TOO_OLD) {
        route_unavailable(resp, v, le->d.last_error, "this session", now);
        return ROUTE_DONE;
    }
    if (!le->d.exists)
        return absent(resp, &le->d, name);
    if (route_cache_headers(resp, index, le->seq / 2, v == CACHE_STALE,
                            rt.cfg->backend.session_cache_duration,
                            cache_age_ms(le->d.fetched_mono_ms, now), req))
        return ROUTE_DONE;
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    if ((le = replica_body(index)) == NULL || !session_render_object(le, &b)) {
        http_response_error(resp, 500, "internal", "the session does not fit the buffer");
        return ROUTE_DONE;
    }
    route_json(resp, b.data, b.len);
    return ROUTE_DONE;
}

/* Judge every session in scope; true when one of them must be waited for. */
bool session_judge_all(const struct http_request_view *req, bool *any_miss)
{
    int64_t now = req->now_mono_ms;
    bool wait = false;

    *any_miss = false;
    for (int i = REGION_ENTRY_FIRST_SESSION; i < replica_entry_count(); i++) {
        struct local_entry *le;
        enum cache_verdict v;

        if (!replica_is_session(i) || !auth_allows(replica_session_name(i)) ||
            (le = replica_entry(i)) == NULL)
            continue;
        replica_mark_read(i, DEMAND_DATA, now);
        v = replica_judge(
            i, DEMAND_DATA, session_has_object(&le->d), le->d.fetched_mono_ms,
            route_session_max_age(&le->d, rt.cfg->backend.session_cache_duration, now),
            rt.cfg->backend.stale_if_error, now, req->may_wait);
        wait |= v == CACHE_WAIT;
        *any_miss |= v != CACHE_FRESH;
    }
    return wait;
}

/* The sessions in scope as WAHA lists them (without "engine", as WAHA's
 * GET /api/sessions; without the STOPPED ones when RUNNING_ONLY), into B
 * over at most SIZE bytes of the scratch buffer; with SIZE 0, only the
 * size it takes (*NEED). *OLDEST grows to the age of the oldest item. */
static bool list_bodies(struct jbuf *b, size_t size, size_t *need, bool running_only,
                        int64_t *oldest, int64_t now)
{
    char *out = size > 0 ? route_scratch(size) : NULL;

    *need = 2;
    if (size > 0 && out == NULL)
        return false;
    jbuf_init(b, out, size);
    jbuf_raw(b, "[");
    for (int i = REGION_ENTRY_FIRST_SESSION; i < replica_entry_count(); i++) {
        const struct local_entry *le =
            replica_is_session(i) && auth_allows(replica_session_name(i))
                ? replica_body(i)
                : NULL;
        if (le == NULL || !le->d.has_data || !le->d.exists || le->d.body_len == 0 ||
            (running_only && strcmp(le->d.raw_status, "STOPPED") == 0))
            continue;
        *need += le->d.body_len + 1;
        if (cache_age_ms(le->d.fetched_mono_ms, now) > *oldest)
            *oldest = cache_age_ms(le->d.fetched_mono_ms, now);
        if (b->len > 1)
            jbuf_raw(b, ",");
        jbuf_mem(b, le->body, le->d.body_len);
    }
    jbuf_raw(b, "]");
    return size > 0 && !b->overflow;
}

bool session_list_render(struct jbuf *b, bool running_only, int64_t *oldest, int64_t now)
{
    size_t need = 0;

    /* Measured, then written (again, larger, should an entry have grown in
     * between). */
    list_bodies(b, 0, &need, running_only, oldest, now);
    for (int attempt = 0; attempt < 4; attempt++, need *= 2)
        if (list_bodies(b, need, &need, running_only, oldest, now))
            return true;
    return false;
}

enum route_result serve_sessions(const struct http_request_view *req,
                                 struct http_response *resp)
{
    bool any_miss;
    int64_t oldest = 0;
    enum lookup list;
    struct jbuf b;

    if (rt.cfg->upstream.all_sessions &&
        (list = session_list_judge(req, resp)) != LOOKUP_FOUND)
        return route_of(list);
    if (session_judge_all(req, &any_miss))
        return ROUTE_WAIT;
    route_count(any_miss || req->parked ? COUNTER_CACHE_MISSES : COUNTER_CACHE_HITS);

    if (!session_list_render(&b, false, &oldest, req->now_mono_ms)) {
        http_response_error(resp, 500, "internal", "out of memory for the session list");
        return ROUTE_DONE;
    }
    http_response_header(resp, "Cache-Control", "max-age=0");
    route_json(resp, b.data, b.len);
    return ROUTE_DONE;
}

/*========================================================================
 * QR codes.
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

enum cache_verdict session_judge_qr_code(int index, const struct local_entry *le,
                                         const struct http_request_view *req,
                                         struct local_qr **lq)
{
    int64_t now = req->now_mono_ms;
    enum cache_verdict v;

    *lq = replica_qr(index); /* NULL: no code fetched yet */
    v = replica_judge(index, DEMAND_QR, *lq != NULL && (*lq)->d.has_qr,
                      *lq ? (*lq)->d.fetched_mono_ms : 0, INT64_MAX / 4, INT64_MAX / 4,
                      now, req->may_wait);
    /* After a scan WAHA's QR call takes 10-15 s to say the session moved
     * on (docs/waha-api.md, 9): its status, asked meanwhile, says it at
     * once, and this reader is answered then. */
    if (v == CACHE_WAIT &&
        cache_age_ms(le->d.fetched_mono_ms, now) >= QR_STATUS_RECHECK_MS)
        replica_want(index, DEMAND_DATA, now);
    return v;
}

enum cache_verdict session_judge_qr_status(int index, const struct local_entry *le,
                                           const struct http_request_view *req)
{
    int64_t now = req->now_mono_ms;

    /* The status decides whether there is a QR: it must be current. The
     * code is read too: it is fetched ahead while WAHA waits for a scan. */
    replica_mark_read(index, DEMAND_DATA, now);
    replica_mark_read(index, DEMAND_QR, now);
    return replica_judge(
        index, DEMAND_DATA, le->d.has_data, le->d.fetched_mono_ms,
        route_session_max_age(&le->d, rt.cfg->backend.status_cache_duration, now),
        rt.cfg->backend.stale_if_error, now, req->may_wait);
}

/* The QR LQ of entry INDEX in the form REQ asks for. */
enum route_result qr_send(const struct http_request_view *req, struct http_response *resp,
                          int index, struct local_qr *lq)
{
    char format[16], etag[CACHE_ETAG_MAX];
    const char *accept = req->header[HEADER_ACCEPT];
    struct jbuf b;

    /* QR tags are numbered after the entries' so the two never collide. */
    cache_etag(etag, region_header(rt.region)->instance_id, replica_entry_count() + index,
               lq->generation, false);
    http_response_header(resp, "ETag", "%s", etag);
    http_response_header(resp, "Cache-Control", "no-cache");
    if (cache_etag_matches(req->header[HEADER_IF_NONE_MATCH], etag)) {
        resp->status = 304;
        route_count(COUNTER_NOT_MODIFIED);
    } else if (http_query_param(req->query, "format", format, sizeof(format)) == 0 &&
               strcmp(format, "raw") == 0) {
        jbuf_init(&b, rt.scratch, rt.scratch_size);
        jbuf_raw(&b, "{\"value\":");
        jbuf_string(&b, lq->d.value);
        jbuf_raw(&b, "}");
        route_json(resp, b.data, b.len);
    } else if (accept != NULL && strcmp(accept, "application/json") == 0) {
        if (lq->rendered_seq != lq->seq && !render_qr_json(lq)) {
            http_response_error(resp, 500, "internal", "out of memory");
            return ROUTE_DONE;
        }
        route_json(resp, lq->json, lq->json_len);
    } else {
        resp->status = 200;
        resp->content_type = "image/png";
        resp->body = (const char *)lq->d.png;
        resp->body_len = lq->d.png_len;
    }
    return ROUTE_DONE;
}

enum route_result serve_qr(const struct http_request_view *req,
                           struct http_response *resp, const char *name)
{
    int64_t now = req->now_mono_ms;
    struct local_entry *le = NULL;
    struct local_qr *lq;
    enum cache_verdict v;
    enum lookup found;
    char message[REGION_NAME_MAX + REGION_STATUS_MAX + 80];
    int index;

    found = named_session(name, req, resp, &index, &le);
    if (found != LOOKUP_FOUND)
        return route_of(found);
    v = session_judge_qr_status(index, le, req);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    if (v == CACHE_EMPTY) {
        route_unavailable(resp, v, le->d.last_error, "this session", now);
        return ROUTE_DONE;
    }
    if (strcmp(le->d.raw_status, "SCAN_QR_CODE") != 0) {
        snprintf(message, sizeof(message),
                 "session \"%s\" is not waiting for a QR scan (status %s)", name,
                 le->d.raw_status);
        http_response_error(resp, 404, "no_qr", message);
        return ROUTE_DONE;
    }
    v = session_judge_qr_code(index, le, req, &lq);
    if (v == CACHE_WAIT)
        return ROUTE_WAIT;
    route_count_verdict(v, req);
    if (lq == NULL || !lq->d.has_qr) {
        http_response_error(resp, 503, "qr_not_ready",
                            "WAHA has not given this session's QR code yet");
        http_response_header(resp, "Retry-After", "1");
        return ROUTE_DONE;
    }
    return qr_send(req, resp, index, lq);
}
