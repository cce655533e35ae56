/*
 * handlers.h - what the route handlers of a worker share.
 *
 * routes.c finds the handler of a request and wraps its answer (rate
 * limits, CORS); the handlers live by subject: status.c (the status object,
 * WAHA's health, the frontend config, event streams), sessions.c (WAHA's
 * session objects, the list and QR codes), webhook.c (WAHA's webhooks),
 * admin.c (stats and metrics). They read the worker's copies of the region
 * (replica.h) and fill a struct http_response; none sees the transport.
 *
 * The state they share is the worker's one struct routes_state, rt: the
 * configuration, the region, the worker's stat slot, a scratch buffer for
 * bodies rendered per request, and the client key of the request being
 * answered. A worker is single-threaded, so one is enough.
 */
#ifndef WAHAGATE_HANDLERS_H
#define WAHAGATE_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "http.h"
#include "json.h"
#include "region.h"
#include "replica.h"
#include "routes.h"

struct routes_state {
    const struct config *cfg;
    struct region *region;
    struct region_proc *slot;
    char *scratch; /* bodies rendered per request (route_scratch()) */
    size_t scratch_size;
    /* The key of the request being answered; NULL when none is needed. */
    const struct auth_key *key;
};

/* The scratch buffer's first size; it grows for larger bodies. */
#define ROUTES_SCRATCH_FIRST ((size_t)64 << 10)

extern struct routes_state rt;

typedef enum route_result (*route_handler)(const struct http_request_view *req,
                                           struct http_response *resp);

/*========================================================================
 * Shared pieces of answers (routes.c).
 */

/*
 * route_scratch - the worker's scratch buffer, at least NEED bytes (it
 * grows, and stays grown), or NULL when memory is short. What is rendered
 * there must be sent before the next call.
 */
char *route_scratch(size_t need);

/* Count C once in the worker's stat slot. */
void route_count(enum counter c);

/* A cache hit (fresh, first look) or a miss. */
void route_count_verdict(enum cache_verdict v, const struct http_request_view *req);

/* A 200 with the JSON BODY (LEN bytes), which must outlive the answer. */
void route_json(struct http_response *resp, const char *body, size_t len);

/* The 503 of the EMPTY and TOO_OLD verdicts, about WHAT; WHY is the last
 * error ("" for none). */
void route_unavailable(struct http_response *resp, enum cache_verdict v, const char *why,
                       const char *what, int64_t now);

/* Header NAME with the number VALUE (no printf: on every answer's path). */
void route_header_int(struct http_response *resp, const char *name, long long value);

/*
 * Validators (ETag of entry INDEX at VERSION) and freshness headers (Age,
 * Cache-Control); true when the client's copy is current and RESP is now a
 * 304.
 */
bool route_cache_headers(struct http_response *resp, int index, uint64_t version,
                         bool stale, int64_t max_age_ms, int64_t age_ms,
                         const struct http_request_view *req);

/* How long session data D is fresh: BASE, or longer while webhooks (or
 * WAHA's events) keep it current. */
int64_t route_session_max_age(const struct entry_data *d, int64_t base, int64_t now);

/*========================================================================
 * Client keys (auth.c).
 */

/*
 * auth_client - with auth.required, a request for session data needs a
 * known client key: sets rt.key, or makes RESP the 401 and returns false.
 */
bool auth_client(const struct http_request_view *req, struct http_response *resp);

/*
 * auth_key_of - the client key REQ presents (Authorization: Bearer,
 * X-Api-Key or ?access_token=) among [auth]'s, or NULL; *PRESENTED says
 * whether it presented one at all.
 */
const struct auth_key *auth_key_of(const struct http_request_view *req, bool *presented);

/*
 * auth_upstream_key - does REQ present upstream.api_key, as WAHA's clients
 * send it (X-Api-Key, or ?x-api-key= since WAHA 2026.4.3)? Compared in
 * constant time. *PRESENTED as above.
 */
bool auth_upstream_key(const struct http_request_view *req, bool *presented);

/* auth_refused - count and log (without the secret) a refused request. */
void auth_refused(const struct http_request_view *req, bool presented);

/* auth_allows - may the request's key (rt.key) see SESSION? */
bool auth_allows(const char *session);

/* auth_stats_token - server.stats_token, when set, as a Bearer token; or
 * RESP is the 401. */
bool auth_stats_token(const struct http_request_view *req, struct http_response *resp);

/*========================================================================
 * Finding the session a request names (sessions.c).
 */

enum lookup {
    LOOKUP_FOUND,    /* *INDEX is the session's entry */
    LOOKUP_ANSWERED, /* RESP holds the answer (403, 404, 503) */
    LOOKUP_WAIT      /* the session list is being fetched: ROUTE_WAIT */
};

/*
 * lookup_session - the entry of session NAME, or of the first session the
 * key may see when NAME is NULL. With upstream.sessions = * an unknown name
 * may be a session WAHA just created, so the session list is consulted (and
 * waited for) before answering 404.
 */
enum lookup lookup_session(const char *name, const struct http_request_view *req,
                           struct http_response *resp, int *index);

/* lookup_session_of_query - the same for ?session=NAME (or none). */
enum lookup lookup_session_of_query(const struct http_request_view *req,
                                    struct http_response *resp, int *index);

/*========================================================================
 * The handlers.
 */

/* status.c */
enum route_result serve_status(const struct http_request_view *req,
                               struct http_response *resp);
enum route_result serve_health(const struct http_request_view *req,
                               struct http_response *resp);
enum route_result serve_config(const struct http_request_view *req,
                               struct http_response *resp);
enum route_result serve_events(const struct http_request_view *req,
                               struct http_response *resp);
int status_init(void);

/*
 * sessions.c: what the compat paths (compat_waha.c, compat_seed.c) share
 * with /api/waha/sessions...: with upstream.sessions = *, the session list
 * must be there (session_list_judge(): LOOKUP_FOUND when it may be used);
 * a session's object is data once the fetcher brought it
 * (session_has_object()); the verdict on an object and its details
 * (session_judge_object()) and the object as WAHA's GET
 * /api/sessions/{name} has it (session_render_object()); the verdict on
 * every session in the key's scope, true when one must be waited for
 * (session_judge_all()); the sessions in scope as WAHA's GET
 * /api/sessions lists them, without the STOPPED ones when RUNNING_ONLY,
 * *OLDEST the age of the oldest (session_list_render(), in the scratch
 * buffer; false when memory is short); the verdict on the status of a
 * session whose QR code is read, marking both read
 * (session_judge_qr_status()), and on its code, *LQ (a reader waiting
 * for it asks for the status too: session_judge_qr_code()); QR code LQ of
 * entry INDEX in the form REQ asks for, as WAHA answers (qr_send()).
 */
enum lookup session_list_judge(const struct http_request_view *req,
                               struct http_response *resp);
bool session_has_object(const struct entry_data *d);
enum cache_verdict session_judge_object(int index, const struct local_entry *le,
                                        const struct http_request_view *req);
bool session_render_object(const struct local_entry *le, struct jbuf *b);
bool session_judge_all(const struct http_request_view *req, bool *any_miss);
bool session_list_render(struct jbuf *b, bool running_only, int64_t *oldest, int64_t now);
enum cache_verdict session_judge_qr_status(int index, const struct local_entry *le,
                                           const struct http_request_view *req);
enum cache_verdict session_judge_qr_code(int index, const struct local_entry *le,
                                         const struct http_request_view *req,
                                         struct local_qr **lq);
enum route_result qr_send(const struct http_request_view *req, struct http_response *resp,
                          int index, struct local_qr *lq);

/* sessions.c: the list, and NAME's object or QR code */
enum route_result serve_sessions(const struct http_request_view *req,
                                 struct http_response *resp);
enum route_result serve_session(const struct http_request_view *req,
                                struct http_response *resp, const char *name);
enum route_result serve_qr(const struct http_request_view *req,
                           struct http_response *resp, const char *name);

/*
 * compat_waha.c, compat_seed.c: WAHA's own read paths ([compat] waha_api)
 * and the original backend's routes ([compat] seed_api). compat_dispatch()
 * answers REQ when its path is one of theirs and the family is on (true,
 * with *RESULT); false otherwise, and the request is routes.c's 404.
 */
bool compat_dispatch(const struct http_request_view *req, struct http_response *resp,
                     enum route_result *result);
bool seed_dispatch(const struct http_request_view *req, struct http_response *resp,
                   enum route_result *result);

/* webhook.c */
enum route_result serve_webhook(const struct http_request_view *req,
                                struct http_response *resp);

/* admin.c */
enum route_result serve_stats(const struct http_request_view *req,
                              struct http_response *resp);
enum route_result serve_metrics(const struct http_request_view *req,
                                struct http_response *resp);

#endif
