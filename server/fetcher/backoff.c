/*
 * backoff.c - retry delays and the circuit breaker (see backoff.h).
 *
 * DESIGN
 * The breaker lives in the fetcher, the only process that calls WAHA, so
 * its state needs no lock; every change is also stored in the region
 * header's atomics (circuit, circuit_opens, circuit_transitions) for the
 * workers and the stats to read. Nothing here does I/O except the one log
 * line per transition.
 */
#include "backoff.h"

#include <stdatomic.h>

#include "log.h"

int64_t backoff_retry_delay_ms(int attempt, int64_t retry_after_ms, long random)
{
    int64_t cap = BACKOFF_RETRY_BASE_MS;

    if (retry_after_ms > 0)
        return retry_after_ms;
    for (int i = 0; i < attempt && cap < BACKOFF_RETRY_CAP_MS; i++)
        cap *= 2;
    if (cap > BACKOFF_RETRY_CAP_MS)
        cap = BACKOFF_RETRY_CAP_MS;
    return (int64_t)(random % (cap + 1));
}

static void publish(struct breaker *b)
{
    if (b->published == NULL)
        return;
    atomic_store(&b->published->circuit, (uint32_t)b->state);
    atomic_store(&b->published->circuit_opens, b->opens);
    atomic_store(&b->published->circuit_transitions, b->transitions);
    atomic_store(&b->published->circuit_retry_ms,
                 b->state == CIRCUIT_CLOSED ? 0 : b->open_until_ms);
}

static void move_to(struct breaker *b, enum circuit_state to, int64_t now)
{
    enum circuit_state from = b->state;

    if (from == to)
        return;
    b->state = to;
    b->transitions++;
    if (to == CIRCUIT_OPEN) {
        b->opens++;
        b->open_until_ms = now + b->open_ms;
        log_warn(0,
                 "circuit %s -> open: WAHA failed %lld refresh%s in a row; no "
                 "calls for %.1f s",
                 circuit_state_names[from], (long long)b->failures,
                 b->failures == 1 ? "" : "es", b->open_ms / 1000.0);
    } else if (to == CIRCUIT_HALF_OPEN) {
        log_info("circuit open -> half-open: probing WAHA with one call");
    } else {
        log_info("circuit %s -> closed: WAHA answers again", circuit_state_names[from]);
    }
    publish(b);
}

void breaker_init(struct breaker *b, const struct config *cfg,
                  struct region_header *published)
{
    *b = (struct breaker){.cfg = cfg, .published = published, .state = CIRCUIT_CLOSED};
    b->open_ms = cfg->circuit.open_duration;
    if (published != NULL) {
        /* A respawned fetcher continues the counts of the one it replaces. */
        b->opens = atomic_load(&published->circuit_opens);
        b->transitions = atomic_load(&published->circuit_transitions);
    }
    publish(b);
}

enum breaker_verdict breaker_ask(struct breaker *b, int64_t now)
{
    switch (b->state) {
    case CIRCUIT_CLOSED: return BREAKER_ALLOW;
    case CIRCUIT_OPEN:
        if (now < b->open_until_ms)
            return BREAKER_DENY;
        move_to(b, CIRCUIT_HALF_OPEN, now);
        b->probe_out = true;
        return BREAKER_PROBE;
    case CIRCUIT_HALF_OPEN:
    default:
        if (b->probe_out)
            return BREAKER_DENY;
        b->probe_out = true;
        return BREAKER_PROBE;
    }
}

void breaker_record(struct breaker *b, bool success, int64_t now)
{
    if (success) {
        b->failures = 0;
        b->probe_out = false;
        b->open_ms = b->cfg->circuit.open_duration;
        move_to(b, CIRCUIT_CLOSED, now);
        return;
    }
    b->failures++;
    if (b->state == CIRCUIT_HALF_OPEN) {
        double longer = (double)b->open_ms * b->cfg->frontend.backoff_multiplier;
        b->open_ms = longer > (double)b->cfg->circuit.max_open_duration
                         ? b->cfg->circuit.max_open_duration
                         : (int64_t)longer;
        b->probe_out = false;
        move_to(b, CIRCUIT_OPEN, now);
    } else if (b->state == CIRCUIT_CLOSED &&
               b->failures >= b->cfg->circuit.failure_threshold) {
        move_to(b, CIRCUIT_OPEN, now);
    }
}
