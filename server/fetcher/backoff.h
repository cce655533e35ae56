/*
 * backoff.h - how the fetcher spares a failing WAHA: retry delays with full
 * jitter, and the circuit breaker.
 *
 * The breaker counts consecutive failed refreshes (a refresh is one call and
 * its retries). At circuit.failure_threshold it opens: no calls at all for
 * the open period. When the period ends, the next call the fetcher wants to
 * make is let through alone as a half-open probe; its success closes the
 * breaker, its failure opens it again for a period longer by
 * frontend.backoff_multiplier, up to circuit.max_open_duration. State and
 * counts are published in the region header for workers (the status
 * object's upstream.circuit) and for the stats; each transition is logged
 * once.
 */
#ifndef WAHAGATE_BACKOFF_H
#define WAHAGATE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "region.h"

/* First retry waits up to this long (full jitter), doubling per retry... */
#define BACKOFF_RETRY_BASE_MS 200
/* ...up to this bound. */
#define BACKOFF_RETRY_CAP_MS 2000
/* A Retry-After longer than this ends the refresh instead of a retry. */
#define BACKOFF_RETRY_AFTER_MAX_MS 60000

/*
 * backoff_retry_delay_ms - the wait before retry number ATTEMPT (0 for the
 * first retry): a uniformly random time in [0, min(cap, base * 2^attempt)]
 * ("full jitter"), or RETRY_AFTER_MS when WAHA gave one (> 0). RANDOM is a
 * random 31-bit value from the caller, so the function stays pure.
 */
int64_t backoff_retry_delay_ms(int attempt, int64_t retry_after_ms, long random);

enum breaker_verdict {
    BREAKER_ALLOW, /* closed: call */
    BREAKER_PROBE, /* the open period is over: this one call may probe */
    BREAKER_DENY   /* open, or a probe is already out */
};

struct breaker {
    const struct config *cfg;
    struct region_header *published; /* NULL in unit tests */
    enum circuit_state state;
    int64_t failures;      /* consecutive failed refreshes */
    int64_t open_until_ms; /* monotonic */
    int64_t open_ms;       /* length of the current/next open period */
    bool probe_out;
    uint64_t opens;
    uint64_t transitions;
};

void breaker_init(struct breaker *b, const struct config *cfg,
                  struct region_header *published);

/* breaker_ask - may the fetcher start a call at NOW? A PROBE answer moves
 * the breaker to half-open: the caller must start that call. */
enum breaker_verdict breaker_ask(struct breaker *b, int64_t now);

/* breaker_record - a refresh finished: SUCCESS, or a failure of WAHA's. */
void breaker_record(struct breaker *b, bool success, int64_t now);

#endif
