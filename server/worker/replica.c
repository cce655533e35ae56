/*
 * replica.c - a worker's copies of region entries and QR slots (see
 * replica.h).
 *
 * DESIGN
 * Copies are refreshed by sequence number: one atomic load per request;
 * the lock only after a writer changed the entry. Session names come from
 * a private table of (kind, name) per entry, with a hash index over it,
 * copied under the lock when the region's table_generation moves, so
 * lookups never read names while the fetcher reassigns entries, and cost
 * one hash whatever the number of sessions. Demand goes the other way
 * without the lock: last_read_ms is stored at most every
 * READ_MARK_GRANULARITY_MS, wanted_ms when a reader found the data cold.
 *
 * A session's QR code lives in a QR slot lent to it while it waits for a
 * scan; the copy of its entry says which (qr_slot), and the copy of that
 * slot is taken only when the slot still names the entry as its owner.
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
    int entries, qrs;
    struct local_entry *copies; /* per entry */
    struct local_qr *qr_copies; /* per QR slot */
    bool names_valid;
    uint64_t names_generation;
    struct entry_name *names; /* per entry */
    int32_t *index;           /* entry + 1 per slot, 0 empty; INDEX_SIZE slots */
    uint32_t index_size;
    int first_session, session_count;
} rp;

int replica_init(struct region *r)
{
    memset(&rp, 0, sizeof(rp));
    rp.region = r;
    rp.entries = region_entry_count(r);
    rp.qrs = region_qr_count(r);
    for (rp.index_size = 16; rp.index_size < 2 * (uint32_t)rp.entries;)
        rp.index_size *= 2;
    rp.copies = calloc((size_t)rp.entries, sizeof(*rp.copies));
    rp.qr_copies = calloc((size_t)rp.qrs, sizeof(*rp.qr_copies));
    rp.names = calloc((size_t)rp.entries, sizeof(*rp.names));
    rp.index = calloc(rp.index_size, sizeof(*rp.index));
    if (rp.copies == NULL || (rp.qr_copies == NULL && rp.qrs > 0) || rp.names == NULL ||
        rp.index == NULL) {
        log_error(0, "out of memory for the worker's copies of the cache");
        replica_free();
        return -1;
    }
    return 0;
}

void replica_free(void)
{
    if (rp.qr_copies != NULL)
        for (int i = 0; i < rp.qrs; i++)
            free(rp.qr_copies[i].json);
    if (rp.copies != NULL)
        for (int i = 0; i < rp.entries; i++) {
            free(rp.copies[i].body);
            free(rp.copies[i].engine);
        }
    free(rp.copies);
    free(rp.qr_copies);
    free(rp.names);
    free(rp.index);
    memset(&rp, 0, sizeof(rp));
}

int replica_entry_count(void)
{
    return rp.entries;
}

/* The hash index over the session names of the table. */
static void index_names(void)
{
    uint32_t mask = rp.index_size - 1;

    memset(rp.index, 0, sizeof(*rp.index) * rp.index_size);
    rp.first_session = -1;
    rp.session_count = 0;
    for (int i = REGION_ENTRY_FIRST_SESSION; i < rp.entries; i++) {
        uint32_t at;
        if (rp.names[i].kind != ENTRY_SESSION)
            continue;
        for (at = region_name_hash(rp.names[i].name) & mask; rp.index[at] != 0;
             at = (at + 1) & mask)
            ;
        rp.index[at] = i + 1;
        if (rp.first_session < 0)
            rp.first_session = i;
        rp.session_count++;
    }
}

static void sync_names(void)
{
    struct region_header *h = region_header(rp.region);
    uint64_t gen = atomic_load(&h->table_generation);

    if (rp.names_valid && gen == rp.names_generation)
        return;
    if (region_lock(rp.region) != 0)
        return; /* keep the old table */
    for (int i = 0; i < rp.entries; i++) {
        const struct region_entry *e = region_entry(rp.region, i);
        rp.names[i].kind = e->d.kind;
        memcpy(rp.names[i].name, e->d.name, sizeof(rp.names[i].name));
    }
    rp.names_generation = atomic_load(&h->table_generation);
    region_unlock(rp.region);
    rp.names_valid = true;
    index_names();
}

int replica_session_count(void)
{
    sync_names();
    return rp.session_count;
}

int replica_find_session(const char *name)
{
    uint32_t mask = rp.index_size - 1;

    sync_names();
    for (uint32_t at = region_name_hash(name) & mask; rp.index[at] != 0;
         at = (at + 1) & mask)
        if (strcmp(rp.names[rp.index[at] - 1].name, name) == 0)
            return rp.index[at] - 1;
    return -1;
}

int replica_first_session(void)
{
    sync_names();
    return rp.first_session;
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
    struct local_entry *le = &rp.copies[index];
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

/* *BUF of *CAP bytes, grown to hold NEED bytes; false when memory is short. */
static bool reserve(char **buf, size_t *cap, size_t need)
{
    char *grown;

    if (need <= *cap)
        return true;
    if ((grown = realloc(*buf, need)) == NULL)
        return false;
    *buf = grown;
    *cap = need;
    return true;
}

struct local_entry *replica_body(int index)
{
    struct region_entry *e = region_entry(rp.region, index);
    const struct entry_body *b = region_body(rp.region, index);
    struct local_entry *le = replica_entry(index);

    if (le == NULL || (le->body_seq == le->seq && le->body != NULL))
        return le;
    if (region_lock(rp.region) != 0)
        return le->body != NULL ? le : NULL;
    entry_data_copy(&le->d, &e->d); /* what goes with this body */
    le->seq = atomic_load(&e->seq);
    le->generation = atomic_load(&e->generation);
    if (!reserve(&le->body, &le->body_cap, le->d.body_len + 1) ||
        !reserve(&le->engine, &le->engine_cap, le->d.engine_len + 1)) {
        region_unlock(rp.region);
        return NULL;
    }
    memcpy(le->body, b->body, le->d.body_len);
    le->body[le->d.body_len] = '\0';
    memcpy(le->engine, b->engine_json, le->d.engine_len);
    le->engine[le->d.engine_len] = '\0';
    le->body_seq = le->seq;
    region_unlock(rp.region);
    return le;
}

struct local_qr *replica_qr(int index)
{
    struct local_entry *le = replica_entry(index);
    struct region_qr *q;
    struct local_qr *lq;
    int slot;
    uint64_t seq;

    if (le == NULL || le->d.qr_slot <= 0 || le->d.qr_slot > rp.qrs)
        return NULL;
    slot = le->d.qr_slot - 1;
    q = region_qr_slot(rp.region, slot);
    lq = &rp.qr_copies[slot];
    seq = atomic_load_explicit(&q->seq, memory_order_acquire);
    if (lq->valid && lq->seq == seq)
        return lq->owner == index ? lq : NULL;
    if (region_lock(rp.region) != 0)
        return lq->valid && lq->owner == index ? lq : NULL;
    qr_data_copy(&lq->d, &q->d);
    lq->owner = q->entry;
    lq->seq = atomic_load(&q->seq);
    lq->generation = atomic_load(&q->generation);
    region_unlock(rp.region);
    lq->valid = true;
    return lq->owner == index ? lq : NULL;
}

enum circuit_state replica_circuit(void)
{
    uint32_t c =
        atomic_load_explicit(&region_header(rp.region)->circuit, memory_order_relaxed);

    return c < CIRCUIT_COUNT ? (enum circuit_state)c : CIRCUIT_CLOSED;
}

int64_t replica_stream_since(void)
{
    return atomic_load_explicit(&region_header(rp.region)->events_since_ms,
                                memory_order_relaxed);
}

enum events_state replica_events(void)
{
    uint32_t e = atomic_load_explicit(&region_header(rp.region)->events, memory_order_relaxed);

    return e < EVENTS_STATE_COUNT ? (enum events_state)e : EVENTS_OFF;
}

void replica_mark_read(int index, enum demand_kind kind, int64_t now)
{
    _Atomic int64_t *last = &region_demand(rp.region, index, kind)->last_read_ms;

    if (now - atomic_load_explicit(last, memory_order_relaxed) >= READ_MARK_GRANULARITY_MS)
        atomic_store_explicit(last, now, memory_order_relaxed);
}

void replica_want(int index, enum demand_kind kind, int64_t now)
{
    region_want(rp.region, index, kind, now);
}

enum cache_verdict replica_judge(int index, enum demand_kind kind, bool has_data,
                                 int64_t fetched_mono_ms, int64_t max_age_ms,
                                 int64_t stale_limit_ms, int64_t now, bool may_wait)
{
    struct cache_view view = {
        .has_data = has_data,
        .fetched_mono_ms = fetched_mono_ms,
        .attempt_done_ms =
            atomic_load(&region_demand(rp.region, index, kind)->attempt_done_ms),
        .upstream_down = replica_circuit() != CIRCUIT_CLOSED};
    enum cache_verdict v = cache_judge(&view, max_age_ms, stale_limit_ms, now, may_wait);

    if (v != CACHE_FRESH)
        replica_want(index, kind, now);
    return v;
}
