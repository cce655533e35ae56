/*
 * waha.h - WAHA's payloads as wahagate reads them: session objects, the
 * session list, /health and /ping answers, error bodies, and the event
 * envelope of webhooks and of WAHA's WebSocket (docs/waha-api.md).
 *
 * These functions take what WAHA sent (a status code and a body, or an
 * envelope) and either produce a validated record or a reason to reject
 * it. They know WAHA's shapes and nothing about event loops, processes or
 * the region, so they can be tested and fuzzed on their own. The fetcher
 * uses them for WAHA's answers, workers for the webhooks they receive. A
 * rejected answer never replaces cached data.
 */
#ifndef WAHAGATE_WAHA_H
#define WAHAGATE_WAHA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "region.h"

#define WAHA_WHY_MAX REGION_ERROR_MAX

/* One session as WAHA described it. */
struct session_record {
    char name[REGION_NAME_MAX];
    char status[REGION_STATUS_MAX];
    char me_json[REGION_ME_MAX]; /* {"id":..,"pushName":..} or null */
    bool has_engine;             /* the object had "engine" */
    size_t engine_len;
    char engine_json[REGION_ENGINE_MAX]; /* its "engine", compact */
    size_t body_len;
    char body[REGION_BODY_MAX]; /* the object without "engine", compact */
};

/*
 * waha_name_ok - a session name the region can hold: 1 to
 * REGION_NAME_MAX - 1 bytes of UTF-8. WAHA checks names
 * (^[a-zA-Z0-9_-]*$) only since 2025-08 and never on the deprecated POST
 * /api/sessions/start (docs/waha-api.md, 9): "sales.team" or "a b" are
 * real names.
 */
bool waha_name_ok(const char *name);

/*
 * waha_parse_session - GET /api/sessions/{name}. A 200 must be a JSON
 * object with a string "name" equal to NAME and a string "status" of
 * capital letters, digits and '_' (an open set), and "me" null, absent or
 * an object with a string "id". Its "engine" (only this call has it) is
 * kept apart from the rest. Returns 0 and fills REC, or -1 with WHY.
 */
int waha_parse_session(const char *name, const char *body, size_t len,
                       struct session_record *rec, char *why);

/*
 * waha_render_me - WAHA's MeInfo ME (may be NULL for null) as the status
 * object's {"id":..,"pushName":..}, or "null", into OUT. Returns 0, or -1
 * when ME is not an object with a string id or does not fit.
 */
int waha_render_me(struct json_object *me, char *out, size_t out_size);

/*
 * GET /api/sessions?all=true: a JSON array of session objects (without
 * "engine"). waha_list_open() parses it (NULL with WHY when it is not an
 * array), waha_list_item() reads item I into REC, waha_list_close() frees
 * it. One item whose name the region cannot hold does not spoil the list.
 */
struct json_object *waha_list_open(const char *body, size_t len, char *why);
size_t waha_list_length(struct json_object *list);
void waha_list_close(struct json_object *list);

enum waha_item {
    WAHA_ITEM_OK,      /* REC holds the session */
    WAHA_ITEM_SKIPPED, /* a name the region cannot hold: WHY says which */
    WAHA_ITEM_INVALID  /* not a session object: the list is not WAHA's */
};
enum waha_item waha_list_item(struct json_object *list, size_t i,
                              struct session_record *rec, char *why);

/*
 * waha_health_verdict - WAHA's /health (terminus: 200 {"status":"ok"},
 * 503 {"status":"error"}) or /ping (200 {"message":"pong"}). Returns 1 for
 * healthy, 0 for an answer that says unhealthy, -1 for an answer that is not
 * what either endpoint sends (WHY). STATUS_OUT gets "ok", "error",
 * "shutting_down" or "pong".
 */
int waha_health_verdict(bool ping, long http_code, const char *body, size_t len,
                        char *status_out, size_t status_size, char *why);

/*
 * waha_describe_error - a short reason for a non-2xx answer, using WAHA's
 * "message" when the body has one: "HTTP 500: Session closed".
 */
void waha_describe_error(long http_code, const char *body, size_t len, char *why);

/* waha_valid_status - an open set: capital letters, digits and '_'. */
bool waha_valid_status(const char *status);

/*========================================================================
 * Event envelopes: {id, timestamp, event, session, me, payload, ...}, the
 * same from a webhook and from WAHA's WebSocket.
 */

#define WAHA_EVENT_NAME_MAX 48

struct waha_event {
    /* The first bytes of the SHA-256 of the envelope's "id" as JSON text
     * (any length, any type); all zero when there is no id. */
    uint8_t id_digest[REGION_DIGEST_LEN];
    char event[WAHA_EVENT_NAME_MAX]; /* "session.status", ... */
    char session[REGION_NAME_MAX];
    char status[REGION_STATUS_MAX]; /* payload.status (session.status) */
    char me_json[REGION_ME_MAX];    /* {"id":..,"pushName":..} or null */
    bool has_me;                    /* the envelope carried "me" */
    int64_t timestamp_ms;           /* envelope timestamp, 0 if absent */
};

enum waha_event_kind {
    WAHA_EVENT_STATUS = 0,  /* a session.status event: apply it */
    WAHA_EVENT_IGNORED = 1, /* a valid envelope of another event, or of a
                               session whose name the region cannot hold */
    WAHA_EVENT_BAD = -1     /* not a WAHA envelope */
};

/*
 * waha_signature_ok - true when HEADER (the X-Webhook-Hmac value) is the
 * hex HMAC-SHA512 of BODY under KEY. Compared in constant time; a missing
 * or malformed header is false.
 */
bool waha_signature_ok(const char *key, const char *body, size_t len, const char *header);

/*
 * waha_parse_event - read the envelope BODY (LEN bytes, BODY[LEN] readable).
 * Fills EV for session.status events; returns a waha_event_kind, with a
 * reason in WHY (WAHA_WHY_MAX bytes) for WAHA_EVENT_BAD.
 */
enum waha_event_kind waha_parse_event(const char *body, size_t len, struct waha_event *ev,
                                      char *why);

#endif
