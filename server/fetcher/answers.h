/*
 * answers.h - what the fetcher makes of WAHA's answers: each function takes
 * one finished call (its HTTP status and body), stores what it means in the
 * region (common/store.c) and says how the call went, so the fetcher knows
 * whether to retry and what to tell the circuit breaker.
 *
 * No libcurl and no event loop here: the fetcher (fetcher.c) makes the
 * calls; these functions only read their results. They run in the fetcher
 * process only.
 */
#ifndef WAHAGATE_ANSWERS_H
#define WAHAGATE_ANSWERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "region.h"
#include "waha.h"

enum outcome {
    OUTCOME_OK,        /* a valid answer, stored */
    OUTCOME_RETRYABLE, /* WAHA failed (network, 5xx, 429, garbage) */
    OUTCOME_FINAL,     /* a failure a retry will not mend (401, 4xx) */
    OUTCOME_NONE,      /* nothing to record (the health check changed endpoint) */
    OUTCOME_CHAINED    /* a new QR value: its image is fetched next */
};

/* One finished call: what it asked and what came back. */
struct answer {
    long http;        /* 0 when there was no HTTP answer */
    const char *body; /* BODY[LEN] is readable (a NUL) */
    size_t len;
    int entry;        /* the region entry it was for */
    const char *name; /* that session's name ("" for health and the list) */
    bool ping;        /* a health check that asked /ping */
};

/* State the answers keep between calls (owned by the fetcher). */
struct answers {
    const struct config *cfg;
    struct region *region;
    struct session_record record;         /* one session being stored */
    char (*names)[REGION_NAME_MAX];       /* max_sessions names of a list */
    int *indices;                         /* their entries */
    bool *seen;                           /* region_entry_count(): scratch */
    uint32_t warned[64];                  /* hashes of names logged as skipped */
    uint64_t untracked_warned;            /* untracked sessions last logged */
};

/* answers_init / answers_free - the buffers of A for REGION's size. */
int answers_init(struct answers *a, const struct config *cfg, struct region *region);
void answers_free(struct answers *a);

/* An HTTP error a retry may mend (WAHA overloaded or failing), or not. */
enum outcome answers_http_error(long http);

/* GET /api/sessions?all=true. */
enum outcome answers_list(struct answers *a, const struct answer *ans, char *why);

/* GET /api/sessions/{name}: the details (engine), and the data with them. */
enum outcome answers_details(struct answers *a, const struct answer *ans, char *why);

/*
 * GET /health or /ping. *USE_PING becomes true when /health is not there
 * for this key (401, 403, 404, 422: WAHA Core, or a session-scoped key)
 * and /ping should be asked instead (OUTCOME_NONE).
 */
enum outcome answers_health(struct answers *a, const struct answer *ans, bool *use_ping,
                            char *why);

/* GET /api/server/version or /api/server/status (ANS->name: the path). */
enum outcome answers_server(struct answers *a, const struct answer *ans, char *why);

/* GET /api/{name}/auth/qr?format=raw (IMAGE false) or the PNG (IMAGE true). */
enum outcome answers_qr(struct answers *a, const struct answer *ans, bool image, char *why);

#endif
