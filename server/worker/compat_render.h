/*
 * compat_render.h - the bytes of the compat paths' answers that do not
 * depend on the region: WAHA's error bodies (NestJS's HttpException
 * shapes, docs/waha-api.md 5), WAHA's /api/server/status with its uptime
 * brought up to date, a member of a cached WAHA object, and the original
 * backend's envelope and figures (docs/seed-backend.md: percentages and
 * per-minute rates as strings).
 *
 * Pure functions over a struct jbuf: no region, no clock, no request, so
 * the unit tests (tests/unit/test_compat_render.c) call them directly.
 */
#ifndef WAHAGATE_COMPAT_RENDER_H
#define WAHAGATE_COMPAT_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

/* NestJS's reason phrase of STATUS (the "error" of its bodies). */
const char *compat_reason(int status);

/*
 * compat_waha_error - NestJS's body for an HttpException of STATUS: with a
 * MESSAGE, {"message":MESSAGE,"error":REASON,"statusCode":STATUS}; with
 * none (NULL), {"message":REASON,"statusCode":STATUS}, as WAHA's 401 and
 * 403 are. With AS_ARRAY the message is a one-item array, as a
 * validation failure's (400) is.
 */
void compat_waha_error(struct jbuf *b, int status, const char *message, bool as_array);

/* WAHA's 404 for a session that is not running (manager.core.ts getSession). */
void compat_not_running(struct jbuf *b, const char *name);

/*
 * WAHA's 422 from the QR endpoint's status gate (SessionPipe.ts
 * waitUntilStatus): STATUS NULL for a session that does not exist, else
 * its status. The object itself, without statusCode.
 */
void compat_qr_gate(struct jbuf *b, const char *name, const char *status);

/*
 * compat_bool_param - WAHA's boolean query values (true, True, 1, false,
 * False, 0) into *OUT; -1 for anything else.
 */
int compat_bool_param(const char *text, bool *out);

/*
 * compat_status_code - the "statusCode" of WAHA's error body BODY (LEN
 * bytes, BODY[LEN] readable), or 0 when it has none.
 */
int compat_status_code(const char *body, size_t len);

/*
 * compat_member - the member KEY of the JSON object BODY (LEN bytes,
 * BODY[LEN] readable), compact, into B: 1 when written, 0 when it is null
 * or absent, -1 when BODY is not an object or the member does not fit.
 */
int compat_member(struct jbuf *b, const char *body, size_t len, const char *key);

/*
 * compat_server_status - WAHA's /api/server/status answer BODY (LEN bytes)
 * with its "uptime" ADD_MS larger (the time since it was fetched); BODY as
 * it is when it has no number there.
 */
void compat_server_status(struct jbuf *b, const char *body, size_t len, int64_t add_ms);

/* The seed's percentage: 100 * PART / WHOLE with 2 decimals and "%", or
 * "0%" when WHOLE is 0 ("99.50%"). */
void compat_percent(char *out, size_t size, uint64_t part, uint64_t whole);

/* The seed's average per minute, 2 decimals: CALLS over UPTIME_MS. */
void compat_per_minute(char *out, size_t size, uint64_t calls, int64_t uptime_ms);

/* The seed's failure: {"success":false,"error":MESSAGE}. */
void compat_seed_error(struct jbuf *b, const char *message);

/* GET /api/v1/waha/status's figures (docs/seed-backend.md). */
struct seed_status {
    bool connected;            /* WAHA reachable and the session WORKING */
    bool authenticated;        /* WORKING */
    bool qr_available;         /* SCAN_QR_CODE */
    const char *service;       /* WAHA's status, "disconnected" or "error" */
    int64_t heartbeat_real_ms; /* when the data was fetched; 0: never */
    int64_t now_real_ms;       /* the timestamp when there is no data */
};

void compat_seed_status(struct jbuf *b, const struct seed_status *s);

/* GET /api/v1/waha/monitoring/stats's figures. */
struct seed_stats {
    uint64_t requests, hits, misses, calls, errors;
    int64_t started_real_ms; /* lastReset */
    int64_t uptime_ms;
};

void compat_seed_stats(struct jbuf *b, const struct seed_stats *s);

/*
 * compat_seed_qr - {"success":true,"data":{"qrCode":"data:image/png;base64,
 * <PNG>","message":...}} for the PNG (LEN bytes) into B.
 */
void compat_seed_qr(struct jbuf *b, const unsigned char *png, size_t len);

/* The room compat_seed_qr() needs for a PNG of LEN bytes. */
#define COMPAT_SEED_QR_SIZE(len) (4 * (((size_t)(len) + 2) / 3) + 160)

/*
 * compat_seed_health - {"success":true,"data":{"waha":{"healthy":HEALTHY,
 * "details":{"endpoints":[ENDPOINT],"lastCheck":..}},"timestamp":..}}.
 */
void compat_seed_health(struct jbuf *b, bool healthy, const char *endpoint,
                        int64_t checked_real_ms, int64_t now_real_ms);

#endif
