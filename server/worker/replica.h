/*
 * replica.h - a worker's private copies of the region's entries and QR
 * slots, its table of session names, and the demand it records.
 *
 * A handler asks for the copy of an entry; the copy is refreshed under the
 * region lock only when the entry's sequence number moved, so answering a
 * request normally costs one atomic load and no lock. Each copy remembers
 * the sequence number it was rendered for, so handlers can cache what they
 * build from it (see status.c).
 *
 * Workers only; single-threaded; the state is per process.
 */
#ifndef WAHAGATE_REPLICA_H
#define WAHAGATE_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "region.h"

#define REPLICA_PREFIX_MAX (REGION_ME_MAX + REGION_ERROR_MAX + 1024)

struct local_entry {
    bool valid;
    uint64_t seq;
    uint64_t generation;
    /* What status.c rendered, and for which seq and breaker state. */
    uint64_t rendered_seq;
    uint32_t rendered_circuit;
    size_t prefix_len;
    char prefix[REPLICA_PREFIX_MAX];
    struct entry_data d;
    /* The body and engine (struct entry_body), copied only for readers
     * that need them (replica_body()), for the seq BODY_SEQ. */
    uint64_t body_seq;
    char *body, *engine; /* d.body_len + 1, d.engine_len + 1 bytes used */
    size_t body_cap, engine_cap;
};

struct local_qr {
    bool valid;
    int owner; /* the entry the copy is of */
    uint64_t seq;
    uint64_t generation;
    uint64_t rendered_seq;
    size_t json_len; /* {"mimetype":"image/png","data":"<base64>"} */
    char *json;      /* allocated on first use */
    struct qr_data d;
};

/* replica_init - allocate the copies. Returns 0 or -1 (logged). */
int replica_init(struct region *r);
void replica_free(void);

/* The number of entries (2 + server.max_sessions) and of sessions now. */
int replica_entry_count(void);
int replica_session_count(void);

/* Entry index of session NAME, of the first tracked session, or -1. */
int replica_find_session(const char *name);
int replica_first_session(void);
bool replica_is_session(int index);

/* The name of session entry INDEX (valid until the next replica call). */
const char *replica_session_name(int index);

/* The region's table_generation the worker's names are of (it moves when
 * sessions come or go). */
uint64_t replica_names_generation(void);

/*
 * replica_entry - the up-to-date copy of entry INDEX. NULL only when the
 * lock is unusable and there is no earlier copy.
 */
struct local_entry *replica_entry(int index);

/*
 * replica_body - the up-to-date copy of entry INDEX with its body and
 * engine (LE->body, LE->engine, NUL-terminated; lengths in LE->d). NULL
 * when memory is short or the lock is unusable and there is no earlier
 * copy.
 */
struct local_entry *replica_body(int index);

/*
 * replica_qr - the up-to-date copy of session entry INDEX's QR code, or
 * NULL when it has none (no QR slot) or the lock is unusable.
 */
struct local_qr *replica_qr(int index);

/* The breaker's state as the workers see it. */
enum circuit_state replica_circuit(void);

/* The monotonic time WAHA's event stream is up since (0: down). */
int64_t replica_stream_since(void);

/* The state of the fetcher's WebSocket to WAHA's events. */
enum events_state replica_events(void);

/* Record a read of entry INDEX's KIND at NOW: demand for the fetcher. */
void replica_mark_read(int index, enum demand_kind kind, int64_t now);

/* Ask the fetcher for entry INDEX's KIND now. */
void replica_want(int index, enum demand_kind kind, int64_t now);

/*
 * replica_judge - cache_judge() for entry INDEX's KIND (HAS_DATA, fetched
 * at FETCHED_MONO_MS) and, when the answer is not FRESH, ask the fetcher
 * for fresh data.
 */
enum cache_verdict replica_judge(int index, enum demand_kind kind, bool has_data,
                                 int64_t fetched_mono_ms, int64_t max_age_ms,
                                 int64_t stale_limit_ms, int64_t now, bool may_wait);

#endif
