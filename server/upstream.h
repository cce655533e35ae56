/*
 * upstream.h - what the fetcher accepts from WAHA, turned into records.
 *
 * These functions take a WAHA HTTP answer (status code and body) and either
 * produce a validated record or a reason to reject it. They know WAHA's
 * shapes (waha-api.md) and nothing about event loops or the region, so they
 * can be tested and fuzzed on their own. A rejected answer never replaces
 * cached data.
 */
#ifndef WAHAGATE_UPSTREAM_H
#define WAHAGATE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "config.h"
#include "region.h"

#define UPSTREAM_WHY_MAX REGION_ERROR_MAX

/* One session as WAHA described it. */
struct session_record {
    char name[REGION_NAME_MAX];
    char status[REGION_STATUS_MAX];
    char me_json[REGION_ME_MAX]; /* {"id":..,"pushName":..} or null */
    size_t body_len;
    char body[REGION_BODY_MAX]; /* the whole object, compact */
};

/*
 * upstream_parse_session - GET /api/sessions/{name}. A 200 must be a JSON
 * object with string "name" equal to NAME and a string "status" of capital
 * letters, digits and '_' (an open set), and "me" null, absent or an object
 * with a string "id". Returns 0 and fills REC, or -1 with WHY.
 */
int upstream_parse_session(const char *name, const char *body, size_t len,
                           struct session_record *rec, char *why);

/*
 * upstream_render_me - WAHA's MeInfo ME (may be NULL for null) as the
 * status object's {"id":..,"pushName":..}, or "null", into OUT. Returns 0,
 * or -1 when ME is not an object with a string id or does not fit.
 */
int upstream_render_me(struct json_object *me, char *out, size_t out_size);

/*
 * upstream_parse_session_list - GET /api/sessions?all=true: a JSON array of
 * session objects, each valid as above. Fills up to MAX records (the rest
 * are ignored) and sets COUNT. Returns 0, or -1 with WHY when the body is
 * not such an array; then no record may be used.
 */
int upstream_parse_session_list(const char *body, size_t len, struct session_record *recs,
                                int max, int *count, char *why);

/*
 * upstream_health_verdict - WAHA's /health (terminus: 200 {"status":"ok"},
 * 503 {"status":"error"}) or /ping (200 {"message":"pong"}). Returns 1 for
 * healthy, 0 for an answer that says unhealthy, -1 for an answer that is not
 * what either endpoint sends (WHY). STATUS_OUT gets "ok", "error",
 * "shutting_down" or "pong".
 */
int upstream_health_verdict(bool ping, long http_code, const char *body, size_t len,
                            char *status_out, size_t status_size, char *why);

/*
 * upstream_describe_http_error - a short reason for a non-2xx answer, using
 * WAHA's "message" when the body has one: "HTTP 500: Session closed".
 */
void upstream_describe_http_error(long http_code, const char *body, size_t len,
                                  char *why);

#endif
