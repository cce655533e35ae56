/*
 * replica.c - a worker's copies of region entries and QR slots (see
 * replica.h).
 *
 * DESIGN
 * Copies are refreshed by sequence number: one atomic load per request;
 * the lock only after a writer changed the entry. Session names come from
 * a private table of (kind, name) per entry, copied under the lock when the
 * region's table_generation moves, so lookups never read names while the
 * fetcher reassigns entries. Demand goes the other way without the lock:
 * last_read_ms is stored at most every READ_MARK_GRANULARITY_MS, wanted_ms
 * when a reader found the data cold.
 */
#include "replica.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* A read is recorded when the last record is at least this old. */
#define READ_MARK_GRANULARITY_MS 10

struct entry_name {
    uint32_t kind;
    char name[REGION_NAME_MAX];
};

static struct {
    struct region *region;
    struct local_entry *entries; /* REGION_MAX_ENTRIES */
    struct local_qr *qrs;        /* REGION_MAX_ENTRIES, sessions only */
    bool names_valid;
    uint64_t names_generation;
    struct entry_name names[REGION_MAX_ENTRIES];
} rp;

int replica_init(struct region *r)
{
    memset(&rp, 0, sizeof(rp));
    rp.region = r;
    rp.entries = calloc(REGION_MAX_ENTRIES, sizeof(*rp.entries));
    rp.qrs = calloc(REGION_MAX_ENTRIES, sizeof(*rp.qrs));
    if (rp.entries == NULL || rp.qrs == NULL) {
        log_error(0, "out of memory for the worker's copies of the cache");
        replica_free();
        return -1;
    }
    return 0;
}

void replica_free(void)
{
    if (rp.qrs != NULL)
        for (int i = 0; i < REGION_MAX_ENTRIES; i++)
            free(rp.qrs[i].json);
    free(rp.entries);
    free(rp.qrs);
    rp.entries = NULL;
    rp.qrs = NULL;
}

static void sync_names(void)
{
    struct region_header *h = region_header(rp.region);
    uint64_t gen = atomic_load(&h->table_generation);

    if (rp.names_valid && gen == rp.names_generation)
        return;
    if (region_lock(rp.region) != 0)
        return; /* keep the old table */
    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        const struct region_entry *e = region_entry(rp.region, i);
        rp.names[i].kind = e->d.kind;
        memcpy(rp.names[i].name, e->d.name, sizeof(rp.names[i].name));
    }
    rp.names_generation = atomic_load(&h->table_generation);
    region_unlock(rp.region);
    rp.names_valid = true;
}

int replica_find_session(const char *name)
{
    sync_names();
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++)
        if (rp.names[i].kind == ENTRY_SESSION && strcmp(rp.names[i].name, name) == 0)
            return i;
    return -1;
}

int replica_first_session(void)
{
    sync_names();
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++)
        if (rp.names[i].kind == ENTRY_SESSION)
            return i;
    return -1;
}

bool replica_is_session(int index)
{
    sync_names();
    return rp.names[index].kind == ENTRY_SESSION;
}

const char *replica_session_name(int index)
{
    sync_names();
    return rp.names[index].name;
}

uint64_t replica_names_generation(void)
{
    sync_names();
    return rp.names_generation;
}

struct local_entry *replica_entry(int index)
{
    struct region_entry *e = region_entry(rp.region, index);
    struct local_entry *le = &rp.entries[index];
    uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);

    if (le->valid && le->seq == seq)
        return le;
    if (region_lock(rp.region) != 0)
        return le->valid ? le : NULL;
    entry_data_copy(&le->d, &e->d);
    le->seq = atomic_load(&e->seq);
    le->generation = atomic_load(&e->generation);
    region_unlock(rp.region);
    le->valid = true;
    return le;
}

struct local_qr *replica_qr(int index)
{
    struct region_qr *q = region_qr(rp.region, index);
    struct local_qr *lq = &rp.qrs[index];
    uint64_t seq = atomic_load_explicit(&q->seq, memory_order_acquire);

    if (lq->valid && lq->seq == seq)
        return lq;
    if (region_lock(rp.region) != 0)
        return lq->valid ? lq : NULL;
    qr_data_copy(&lq->d, &q->d);
    lq->seq = atomic_load(&q->seq);
    lq->generation = atomic_load(&q->generation);
    region_unlock(rp.region);
    lq->valid = true;
    return lq;
}

enum circuit_state replica_circuit(void)
{
    uint32_t c =
        atomic_load_explicit(&region_header(rp.region)->circuit, memory_order_relaxed);

    return c < CIRCUIT_COUNT ? (enum circuit_state)c : CIRCUIT_CLOSED;
}

void replica_mark_read(int index, bool qr, int64_t now)
{
    _Atomic int64_t *last = qr ? &region_qr(rp.region, index)->last_read_ms
                               : &region_entry(rp.region, index)->last_read_ms;

    if (now - atomic_load_explicit(last, memory_order_relaxed) >=
        READ_MARK_GRANULARITY_MS)
        atomic_store_explicit(last, now, memory_order_relaxed);
}

static _Atomic int64_t *attempt_done_of(int index, bool qr)
{
    return qr ? &region_qr(rp.region, index)->attempt_done_ms
              : &region_entry(rp.region, index)->attempt_done_ms;
}

void replica_want(int index, bool qr, int64_t now)
{
    _Atomic int64_t *wanted = qr ? &region_qr(rp.region, index)->wanted_ms
                                 : &region_entry(rp.region, index)->wanted_ms;
    int64_t done = atomic_load(attempt_done_of(index, qr));

    /* Only after the last attempt: one call answers every waiting reader. */
    if (atomic_load(wanted) <= done)
        atomic_store(wanted, now > done ? now : done + 1);
}

enum cache_verdict replica_judge(int index, bool qr, bool has_data,
                                 int64_t fetched_mono_ms, int64_t max_age_ms,
                                 int64_t stale_limit_ms, int64_t now, bool may_wait)
{
    struct cache_view view = {.has_data = has_data,
                              .fetched_mono_ms = fetched_mono_ms,
                              .attempt_done_ms = atomic_load(attempt_done_of(index, qr)),
                              .upstream_down = replica_circuit() != CIRCUIT_CLOSED};
    enum cache_verdict v = cache_judge(&view, max_age_ms, stale_limit_ms, now, may_wait);

    if (v != CACHE_FRESH)
        replica_want(index, qr, now);
    return v;
}
