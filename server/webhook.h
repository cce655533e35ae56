/*
 * webhook.h - WAHA's webhook envelopes: check the HMAC, read the event.
 *
 * Pure functions (no region, no event loop) so they can be unit-tested and
 * fuzzed. routes.c calls them for POST /api/waha/webhook and applies what
 * they return to the region.
 */
#ifndef WAHAGATE_WEBHOOK_H
#define WAHAGATE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region.h"

#define WEBHOOK_ID_MAX 64
#define WEBHOOK_EVENT_MAX 48
/* Largest body accepted: WAHA's session.status envelopes are about 1 KiB. */
#define WEBHOOK_BODY_MAX 65536

struct webhook_event {
    char id[WEBHOOK_ID_MAX];       /* envelope id, "" when absent */
    char event[WEBHOOK_EVENT_MAX]; /* "session.status", ... */
    char session[REGION_NAME_MAX];
    char status[REGION_STATUS_MAX]; /* payload.status (session.status) */
    char me_json[REGION_ME_MAX];    /* {"id":..,"pushName":..} or null */
    bool has_me;                    /* the envelope carried "me" */
    int64_t timestamp_ms;           /* envelope timestamp, 0 if absent */
};

enum webhook_result {
    WEBHOOK_STATUS = 0,  /* a session.status event: apply it */
    WEBHOOK_IGNORED = 1, /* a valid envelope of another event: 202 */
    WEBHOOK_BAD = -1     /* not a WAHA envelope: 400 */
};

/*
 * webhook_hmac_ok - true when HEADER (the X-Webhook-Hmac value) is the hex
 * HMAC-SHA512 of BODY under KEY. Compared in constant time; a missing or
 * malformed header is false.
 */
bool webhook_hmac_ok(const char *key, const char *body, size_t len, const char *header);

/*
 * webhook_parse - read the envelope BODY (LEN bytes, BODY[LEN] readable).
 * Fills EV for session.status events; returns a webhook_result, with a
 * reason in WHY (REGION_ERROR_MAX bytes) for WEBHOOK_BAD.
 */
enum webhook_result webhook_parse(const char *body, size_t len, struct webhook_event *ev,
                                  char *why);

#endif
