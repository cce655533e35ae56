/*
 * region.c - create, attach and lock the shared-memory region: its layout
 * and accessors, the instance lock, the robust mutex and the repair of what
 * a dead writer left torn, the write protocol of entries and QR slots, the
 * rules of an entry's data (reset, copies, flap smoothing), demand, the
 * digests of recent event ids, the per-process counters and the names of
 * region.h's enums.
 *
 * region.h's other functions live in two more files: region_sessions.c,
 * the session table (region_set_sessions(), the name hash index,
 * region_find_session()), and region_qr.c, the pool of QR slots lent to
 * sessions. Both use region.h only; this file calls one function of
 * region_sessions.c, rebuild_name_index(), after a repair discarded torn
 * entries (region_internal.h).
 *
 * DESIGN
 * The master creates the region before it forks anything, so every child
 * inherits the same mapping at the same address; nobody else attaches for
 * writing. `wahagate --stats` attaches read-only and only reads atomics.
 *
 * One instance per name: the master holds flock(LOCK_EX) on the shm object's
 * descriptor for its whole life (POSIX shm objects are files on Linux). A
 * second instance fails to get the lock and refuses to start, naming the
 * running master's pid from the header. When the lock can be taken but the
 * object exists, it is a leftover of a crashed run: it is unlinked and made
 * anew, because its mutex may be held by a dead process and its layout may be
 * an older version. Processes of the crashed run that still map it keep their
 * private, unlinked copy and cannot disturb the new one.
 *
 * The mutex is PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST. It is
 * initialised exactly once, at creation, and never again (a respawned child
 * must not re-initialise a mutex another process may hold). region_lock_at()
 * is the only place that calls pthread_mutex_lock(); its EOWNERDEAD branch
 * repairs the entries a dead writer left half-written before it calls
 * pthread_mutex_consistent().
 */
#include "region.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "region_internal.h"
#include "timeutil.h"

const char *const entry_kind_names[ENTRY_KIND_COUNT] = {
    [ENTRY_FREE] = "free",
    [ENTRY_HEALTH] = "health",
    [ENTRY_SESSION_LIST] = "list",
    [ENTRY_SESSION] = "session",
    [ENTRY_SERVER] = "server",
};

const char *const entry_source_names[SOURCE_COUNT] = {
    [SOURCE_NONE] = "none",
    [SOURCE_POLL] = "poll",
    [SOURCE_WEBHOOK] = "webhook",
    [SOURCE_EVENTS] = "events",
};

const char *const events_state_names[EVENTS_STATE_COUNT] = {
    [EVENTS_OFF] = "off",
    [EVENTS_CONNECTING] = "connecting",
    [EVENTS_CONNECTED] = "connected",
    [EVENTS_REFUSED] = "refused",
};

const char *const circuit_state_names[CIRCUIT_COUNT] = {
    [CIRCUIT_CLOSED] = "closed",
    [CIRCUIT_OPEN] = "open",
    [CIRCUIT_HALF_OPEN] = "half-open",
};

const char *const fleet_state_names[FLEET_STATE_COUNT] = {
    [FLEET_OFF] = "off",
    [FLEET_LEADER] = "leader",
    [FLEET_FOLLOWER] = "follower",
    [FLEET_DOWN] = "unreachable",
};

const char *const proc_role_names[ROLE_COUNT] = {
    [ROLE_NONE] = "none",
    [ROLE_MASTER] = "master",
    [ROLE_WORKER] = "worker",
    [ROLE_FETCHER] = "fetcher",
};

const char *const counter_names[COUNTER_COUNT] = {
    [COUNTER_REQUESTS] = "requests",
    [COUNTER_CACHE_HITS] = "cache_hits",
    [COUNTER_CACHE_MISSES] = "cache_misses",
    [COUNTER_NOT_MODIFIED] = "not_modified",
    [COUNTER_RATE_LIMITED] = "rate_limited",
    [COUNTER_ERRORS] = "errors",
    [COUNTER_UPSTREAM_CALLS] = "upstream_calls",
    [COUNTER_UPSTREAM_ERRORS] = "upstream_errors",
    [COUNTER_UPSTREAM_RETRIES] = "upstream_retries",
    [COUNTER_WEBHOOKS] = "webhooks",
    [COUNTER_WEBHOOKS_REJECTED] = "webhooks_rejected",
    [COUNTER_WEBHOOKS_DUPLICATE] = "webhooks_duplicate",
    [COUNTER_BYTES_SENT] = "bytes_sent",
    [COUNTER_AUTH_FAILURES] = "auth_failures",
    [COUNTER_SCALE_UP] = "scale_up",
    [COUNTER_SCALE_DOWN] = "scale_down",
};

const char *const endpoint_names[ENDPOINT_COUNT] = {
    [ENDPOINT_STATUS] = "status",
    [ENDPOINT_HEALTH] = "health",
    [ENDPOINT_SESSIONS] = "sessions",
    [ENDPOINT_SESSION] = "session",
    [ENDPOINT_QR] = "qr",
    [ENDPOINT_CONFIG] = "config",
    [ENDPOINT_WEBHOOK] = "webhook",
    [ENDPOINT_EVENTS] = "events",
    [ENDPOINT_STATS] = "stats",
    [ENDPOINT_METRICS] = "metrics",
    [ENDPOINT_STATIC] = "static",
    [ENDPOINT_OTHER] = "other",
};

const int64_t latency_bucket_us[LATENCY_BUCKETS - 1] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000, 250000, 1000000,
};

const char *const upstream_endpoint_names[UPSTREAM_ENDPOINT_COUNT] = {
    [UPSTREAM_SESSION] = "session", [UPSTREAM_SESSIONS] = "sessions",
    [UPSTREAM_HEALTH] = "health",   [UPSTREAM_PING] = "ping",
    [UPSTREAM_QR] = "qr",           [UPSTREAM_SERVER] = "server",
};

const char *const upstream_result_names[RESULT_COUNT] = {
    [RESULT_OK] = "ok",           [RESULT_HTTP_ERROR] = "http_error",
    [RESULT_INVALID] = "invalid", [RESULT_TIMEOUT] = "timeout",
    [RESULT_NETWORK] = "network",
};

const int64_t upstream_bucket_ms[UPSTREAM_BUCKETS - 1] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
};

/* Offsets are rounded up to a cache line so entries do not share lines. */
#define REGION_ALIGN 64

static size_t align_up(size_t n)
{
    return (n + REGION_ALIGN - 1) & ~(size_t)(REGION_ALIGN - 1);
}

/* The sizes and offsets of a region with ENTRIES entries and QRS slots. */
struct layout {
    uint32_t entries, qrs, index_size;
    size_t entries_offset, bodies_offset, qrs_offset, index_offset, procs_offset,
        ratelimit_offset, size;
};

static struct layout layout_for(uint32_t entries, uint32_t qrs)
{
    struct layout l = {.entries = entries, .qrs = qrs, .index_size = 16};

    while (l.index_size < 2 * entries)
        l.index_size *= 2; /* a power of two, at most half full */
    l.entries_offset = align_up(sizeof(struct region_header));
    l.bodies_offset = l.entries_offset + align_up(sizeof(struct region_entry)) * entries;
    l.qrs_offset = l.bodies_offset + align_up(sizeof(struct entry_body)) * entries;
    l.index_offset = l.qrs_offset + align_up(sizeof(struct region_qr)) * qrs;
    l.procs_offset = l.index_offset + align_up(sizeof(int32_t) * l.index_size);
    l.ratelimit_offset =
        l.procs_offset + align_up(sizeof(struct region_proc)) * REGION_MAX_PROCS;
    l.size = l.ratelimit_offset + align_up(sizeof(struct ratelimit_table));
    return l;
}

struct region_header *region_header(const struct region *r)
{
    return r->base;
}

int region_entry_count(const struct region *r)
{
    return (int)region_header(r)->entry_count;
}

int region_qr_count(const struct region *r)
{
    return (int)region_header(r)->qr_count;
}

struct ratelimit_table *region_ratelimit(const struct region *r)
{
    return (struct ratelimit_table *)((char *)r->base +
                                      region_header(r)->ratelimit_offset);
}

struct region_entry *region_entry(const struct region *r, int index)
{
    const struct region_header *h = region_header(r);

    assert(index >= 0 && (uint32_t)index < h->entry_count);
    return (struct region_entry *)((char *)r->base + h->entries_offset +
                                   align_up(sizeof(struct region_entry)) * (size_t)index);
}

struct entry_body *region_body(const struct region *r, int index)
{
    const struct region_header *h = region_header(r);

    assert(index >= 0 && (uint32_t)index < h->entry_count);
    return (struct entry_body *)((char *)r->base + h->bodies_offset +
                                 align_up(sizeof(struct entry_body)) * (size_t)index);
}

struct region_qr *region_qr_slot(const struct region *r, int slot)
{
    const struct region_header *h = region_header(r);

    assert(slot >= 0 && (uint32_t)slot < h->qr_count);
    return (struct region_qr *)((char *)r->base + h->qrs_offset +
                                align_up(sizeof(struct region_qr)) * (size_t)slot);
}

struct region_proc *region_proc(const struct region *r, int slot)
{
    assert(slot >= 0 && slot < REGION_MAX_PROCS);
    return (struct region_proc *)((char *)r->base + region_header(r)->procs_offset +
                                  align_up(sizeof(struct region_proc)) * (size_t)slot);
}

struct demand *region_demand(const struct region *r, int index, enum demand_kind kind)
{
    return &region_entry(r, index)->demand[kind];
}

void region_want(struct region *r, int index, enum demand_kind kind, int64_t now)
{
    struct demand *dm = region_demand(r, index, kind);
    int64_t done = atomic_load(&dm->attempt_done_ms);

    /* Only after the last attempt: one call answers every waiting reader. */
    if (atomic_load(&dm->wanted_ms) <= done)
        atomic_store(&dm->wanted_ms, now > done ? now : done + 1);
}

/*========================================================================
 * Creation and attachment.
 */

static int init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int rc;

    if ((rc = pthread_mutexattr_init(&attr)) != 0)
        return rc;
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

void region_entry_reset(struct region_entry *e, enum entry_kind kind, const char *name)
{
    struct entry_data *d = &e->d;
    /* Zero-filled: all of it is copied into the shared region below, and
     * the bytes after the name must not be stack garbage. */
    char keep_name[REGION_NAME_MAX] = "";

    snprintf(keep_name, sizeof(keep_name), "%s", name);
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    d->source = SOURCE_NONE;
    memcpy(d->name, keep_name, sizeof(d->name));
    snprintf(d->status, sizeof(d->status), "UNKNOWN");
    snprintf(d->raw_status, sizeof(d->raw_status), "UNKNOWN");
    snprintf(d->me_json, sizeof(d->me_json), "null");
}

bool entry_observe_status(struct entry_data *d, const char *raw, int64_t now_mono,
                          int64_t now_real, int64_t flap_hold_ms)
{
    snprintf(d->raw_status, sizeof(d->raw_status), "%s", raw);
    if (strcmp(raw, d->status) == 0) {
        d->pending_since_mono_ms = 0; /* a held change that did not last */
        return false;
    }
    if (d->has_data && flap_hold_ms > 0 && strcmp(d->status, "WORKING") == 0) {
        if (d->pending_since_mono_ms == 0)
            d->pending_since_mono_ms = now_mono;
        if (now_mono - d->pending_since_mono_ms < flap_hold_ms)
            return false;
    }
    snprintf(d->status, sizeof(d->status), "%s", raw);
    d->changed_at_real_ms = now_real;
    d->pending_since_mono_ms = 0;
    return true;
}

bool entry_release_held_status(struct entry_data *d, int64_t now_mono, int64_t now_real,
                               int64_t flap_hold_ms)
{
    char raw[REGION_STATUS_MAX];

    if (d->pending_since_mono_ms == 0 ||
        now_mono - d->pending_since_mono_ms < flap_hold_ms)
        return false;
    memcpy(raw, d->raw_status, sizeof(raw)); /* observe writes raw_status */
    return entry_observe_status(d, raw, now_mono, now_real, flap_hold_ms);
}

void entry_data_copy(struct entry_data *dst, const struct entry_data *src)
{
    memcpy(dst, src, sizeof(*dst));
    dst->name[sizeof(dst->name) - 1] = '\0';
    if (dst->body_len >= REGION_BODY_MAX)
        dst->body_len = REGION_BODY_MAX - 1;
    if (dst->engine_len >= REGION_ENGINE_MAX)
        dst->engine_len = REGION_ENGINE_MAX - 1;
}

void entry_body_copy(struct entry_body *dst, const struct entry_body *src,
                     const struct entry_data *d)
{
    memcpy(dst->body, src->body, d->body_len);
    dst->body[d->body_len] = '\0';
    memcpy(dst->engine_json, src->engine_json, d->engine_len);
    dst->engine_json[d->engine_len] = '\0';
}

static void lay_out(struct region *r, const struct layout *l)
{
    struct region_header *h = r->base;
    uint64_t id = 0;

    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint64_t)time_real_ms() ^ ((uint64_t)getpid() << 32);

    /* The object is fresh from ftruncate(), so every byte is zero, which is
     * what a free session entry, a free QR slot and the empty name index
     * are: they are not written (so not touched) here. */
    h->layout_version = REGION_LAYOUT_VERSION;
    h->entry_count = l->entries;
    h->qr_count = l->qrs;
    h->proc_count = REGION_MAX_PROCS;
    h->size = l->size;
    h->instance_id = id;
    h->entries_offset = l->entries_offset;
    h->bodies_offset = l->bodies_offset;
    h->qrs_offset = l->qrs_offset;
    h->index_offset = l->index_offset;
    h->index_size = l->index_size;
    h->procs_offset = l->procs_offset;
    h->ratelimit_offset = l->ratelimit_offset;
    h->master_pid = getpid();
    h->started_real_ms = time_real_ms();
    h->started_mono_ms = time_mono_ms();
    region_entry_reset(region_entry(r, REGION_ENTRY_HEALTH), ENTRY_HEALTH, "");
    region_entry_reset(region_entry(r, REGION_ENTRY_LIST), ENTRY_FREE, "");
    region_entry_reset(region_entry(r, REGION_ENTRY_VERSION), ENTRY_SERVER,
                       "/api/server/version");
    region_entry_reset(region_entry(r, REGION_ENTRY_SERVER), ENTRY_SERVER,
                       "/api/server/status");
    /* The magic goes last: a reader that sees it sees a laid-out region. */
    atomic_thread_fence(memory_order_release);
    h->magic = REGION_MAGIC;
}

static void report_running(int fd, const char *name)
{
    struct region_header h;
    ssize_t n = fd >= 0 ? pread(fd, &h, sizeof(h), 0) : -1;

    if (n == (ssize_t)sizeof(h) && h.magic == REGION_MAGIC)
        log_error(0,
                  "another wahagate (master pid %d) is running with shm_name "
                  "\"%s\"; stop it or choose another server.shm_name",
                  (int)h.master_pid, name);
    else
        log_error(0,
                  "another wahagate is running (or starting) with shm_name "
                  "\"%s\"; stop it or choose another server.shm_name",
                  name);
}

/*
 * Open NAME for the master and take the instance lock; fd or -1. Whoever
 * holds the flock owns the name. An object that is locked by no one but has
 * a size was left by a crashed run: it is replaced by a new one, and the old
 * one stays locked until the new one is, so that of several instances
 * starting at once exactly one wins.
 */
static int open_exclusive(const char *name, bool *leftover)
{
    struct stat st;
    int fd, fresh;

    fd = shm_open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error(errno, "shm_open(\"%s\") failed", name);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        report_running(fd, name);
        close(fd);
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        log_error(errno, "fstat(\"%s\") failed", name);
        close(fd);
        return -1;
    }
    if (st.st_size == 0)
        return fd; /* new, or left empty: ours to lay out */

    *leftover = true;
    shm_unlink(name);
    fresh = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fresh >= 0 && flock(fresh, LOCK_EX | LOCK_NB) == 0) {
        close(fd);
        return fresh;
    }
    if (fresh < 0 && errno != EEXIST)
        log_error(errno, "shm_open(\"%s\") failed", name);
    else
        report_running(fresh, name); /* the new object's creator won */
    if (fresh >= 0)
        close(fresh);
    close(fd);
    return -1;
}

int region_create(struct region *r, const char *name, int max_sessions)
{
    uint32_t sessions = (uint32_t)(max_sessions < 1 ? 1 : max_sessions);
    struct layout l =
        layout_for(REGION_ENTRY_FIRST_SESSION + sessions,
                   sessions < REGION_QR_SLOTS_MAX ? sessions : REGION_QR_SLOTS_MAX);
    bool leftover = false;
    int fd, rc;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->size = l.size;

    fd = open_exclusive(name, &leftover);
    if (fd < 0)
        return -1;
    if (leftover)
        log_warn(0,
                 "shm object \"%s\" was left by a crashed run; created it "
                 "anew",
                 name);
    if (ftruncate(fd, (off_t)r->size) != 0) {
        log_error(errno, "ftruncate(\"%s\", %zu) failed", name, r->size);
        goto fail;
    }
    r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r->base == MAP_FAILED) {
        r->base = NULL;
        log_error(errno, "mmap(\"%s\") failed", name);
        goto fail;
    }
    /* The rate-limit table, zeroed like the rest, needs only its own lock. */
    rc = init_mutex(&((struct region_header *)r->base)->lock);
    if (rc == 0)
        rc = init_mutex(
            &((struct ratelimit_table *)((char *)r->base + l.ratelimit_offset))->lock);
    if (rc != 0) {
        log_error(rc, "pthread_mutex_init() for the region failed");
        goto fail;
    }
    r->fd = fd;
    lay_out(r, &l);
    return 0;

fail:
    if (r->base != NULL)
        munmap(r->base, r->size);
    r->base = NULL;
    shm_unlink(name);
    close(fd);
    return -1;
}

int region_attach_read_only(struct region *r, const char *name, char *why,
                            size_t why_size)
{
    struct stat st;
    const struct region_header *h;
    int fd;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    r->read_only = true;
    snprintf(r->name, sizeof(r->name), "%s", name);
    fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, why_size,
                 "no running wahagate uses shm_name \"%s\" "
                 "(shm_open: %s)",
                 name, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(struct region_header)) {
        snprintf(why, why_size, "shm object \"%s\" is not a wahagate region", name);
        close(fd);
        return -1;
    }
    r->size = (size_t)st.st_size;
    r->base = mmap(NULL, r->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (r->base == MAP_FAILED) {
        r->base = NULL;
        snprintf(why, why_size, "mmap(\"%s\") failed: %s", name, strerror(errno));
        return -1;
    }
    h = r->base;
    if (h->magic != REGION_MAGIC || h->layout_version != REGION_LAYOUT_VERSION ||
        h->size != r->size || h->size != layout_for(h->entry_count, h->qr_count).size) {
        snprintf(why, why_size,
                 "shm object \"%s\" has another layout (version "
                 "%u, this program reads %d): use the wahagate that made it",
                 name, h->layout_version, REGION_LAYOUT_VERSION);
        region_detach(r);
        return -1;
    }
    return 0;
}

void region_close_fd(struct region *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

void region_detach(struct region *r)
{
    if (r->base != NULL)
        munmap(r->base, r->size);
    r->base = NULL;
}

void region_destroy(struct region *r)
{
    if (r->base == NULL)
        return;
    shm_unlink(r->name);
    region_detach(r);
    region_close_fd(r);
}

/*========================================================================
 * The lock and the entry write protocol.
 */

/* As if entry INDEX's KIND had never been fetched: readers wait for the
 * refetch (cache_judge()) instead of being told there is no data. */
static void refetch(struct region *r, int index, enum demand_kind kind)
{
    struct demand *dm = region_demand(r, index, kind);

    atomic_store(&dm->attempt_done_ms, 0);
    atomic_store(&dm->wanted_ms, time_mono_ms());
}

/* Discard every entry and QR slot a dead writer left half-written. Lock
 * held. Returns how many. */
static int repair_torn_entries(struct region *r)
{
    int repaired = 0;

    for (int s = 0; s < region_qr_count(r); s++) {
        struct region_qr *q = region_qr_slot(r, s);
        uint64_t seq = atomic_load(&q->seq);

        if ((seq & 1) == 0)
            continue;
        memset(&q->d, 0, offsetof(struct qr_data, png));
        if (q->entry > 0 && q->entry < region_entry_count(r))
            refetch(r, q->entry, DEMAND_QR);
        atomic_fetch_add(&q->generation, 1);
        atomic_store(&q->seq, seq + 1);
        repaired++;
    }
    for (int i = 0; i < region_entry_count(r); i++) {
        struct region_entry *e = region_entry(r, i);
        uint64_t seq = atomic_load(&e->seq);

        if ((seq & 1) == 0)
            continue;
        e->d.name[REGION_NAME_MAX - 1] = '\0';
        if (e->d.kind == ENTRY_SESSION)
            region_qr_release(r, i);
        /* Keep kind and name so the fetcher knows to refresh it. */
        region_entry_reset(e, (enum entry_kind)e->d.kind, e->d.name);
        refetch(r, i, DEMAND_DATA);
        refetch(r, i, DEMAND_DETAILS);
        atomic_fetch_add(&e->generation, 1);
        atomic_store(&e->seq, seq + 1);
        repaired++;
    }
    if (repaired > 0)
        rebuild_name_index(r);
    return repaired;
}

int region_lock_at(struct region *r, const char *func, int line)
{
    struct region_header *h = region_header(r);
    int rc = pthread_mutex_lock(&h->lock);

    assert(!r->read_only);
    if (rc == EOWNERDEAD) {
        int dead = atomic_load(&h->lock_owner_pid);
        int repaired;

        /* Ours now: the repair writes (region_qr_release()) assert it. */
        atomic_store(&h->lock_owner_pid, getpid());
        repaired = repair_torn_entries(r);

        rc = pthread_mutex_consistent(&h->lock);
        atomic_fetch_add(&h->lock_recoveries, 1);
        log_warn(0,
                 "region lock was held by pid %d, which died; %d torn "
                 "entr%s discarded (%s:%d)",
                 dead, repaired, repaired == 1 ? "y" : "ies", func, line);
        if (rc != 0) {
            log_error(rc, "pthread_mutex_consistent() failed");
            pthread_mutex_unlock(&h->lock);
            return -1;
        }
    } else if (rc != 0) {
        log_error(rc, "pthread_mutex_lock() failed at %s:%d", func, line);
        return -1;
    }
    atomic_store(&h->lock_owner_pid, getpid());
    atomic_fetch_add_explicit(&h->lock_acquisitions, 1, memory_order_relaxed);
    return 0;
}

void region_unlock(struct region *r)
{
    struct region_header *h = region_header(r);

    atomic_store(&h->lock_owner_pid, 0);
    pthread_mutex_unlock(&h->lock);
}

void region_assert_held(const struct region *r)
{
    const struct region_header *h = region_header(r);

    if (atomic_load(&((struct region_header *)h)->lock_owner_pid) != getpid())
        abort();
}

void region_entry_begin_write(struct region *r, struct region_entry *e)
{
    region_assert_held(r);
    atomic_fetch_add(&e->seq, 1); /* now odd */
}

void region_entry_end_write(struct region *r, struct region_entry *e,
                            bool content_changed)
{
    region_assert_held(r);
    if (content_changed)
        atomic_fetch_add(&e->generation, 1);
    atomic_fetch_add(&e->seq, 1); /* even again: the entry is whole */
}

void region_qr_begin_write(struct region *r, struct region_qr *q)
{
    region_assert_held(r);
    atomic_fetch_add(&q->seq, 1);
}

void region_qr_end_write(struct region *r, struct region_qr *q, bool content_changed)
{
    region_assert_held(r);
    if (content_changed)
        atomic_fetch_add(&q->generation, 1);
    atomic_fetch_add(&q->seq, 1);
}

/*========================================================================
 * Recent event ids, and the per-process counters.
 */

bool region_event_seen(struct region *r, const uint8_t digest[REGION_DIGEST_LEN])
{
    static const uint8_t none[REGION_DIGEST_LEN];
    struct region_header *h = region_header(r);

    region_assert_held(r);
    if (memcmp(digest, none, REGION_DIGEST_LEN) == 0)
        return false; /* no id: cannot tell */
    for (int i = 0; i < REGION_EVENT_DIGESTS; i++)
        if (memcmp(h->event_digests[i], digest, REGION_DIGEST_LEN) == 0)
            return true;
    memcpy(h->event_digests[h->event_digest_next % REGION_EVENT_DIGESTS], digest,
           REGION_DIGEST_LEN);
    h->event_digest_next = (h->event_digest_next + 1) % REGION_EVENT_DIGESTS;
    return false;
}

static void add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter,
                          atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

void region_count_request(struct region_proc *p, enum endpoint endpoint, int status,
                          int64_t latency_us)
{
    int bucket = 0;
    int class = status < 300 ? 0 : status < 400 ? 1 : status < 500 ? 2 : 3;

    while (bucket < LATENCY_BUCKETS - 1 && latency_us > latency_bucket_us[bucket])
        bucket++;
    add(&p->counters[COUNTER_REQUESTS], 1);
    if (status >= 500)
        add(&p->counters[COUNTER_ERRORS], 1);
    add(&p->requests[endpoint][class], 1);
    add(&p->latency[bucket], 1);
    add(&p->latency_sum_us, latency_us > 0 ? (uint64_t)latency_us : 0);
}

void region_count_upstream(struct region *r, struct region_proc *p,
                           enum upstream_endpoint endpoint, enum upstream_result result,
                           int64_t latency_ms)
{
    struct region_header *h = region_header(r);
    int64_t second = time_mono_ms() / 1000;
    int i = (int)(second % REGION_CALL_RING);
    int bucket = 0;

    while (bucket < UPSTREAM_BUCKETS - 1 && latency_ms > upstream_bucket_ms[bucket])
        bucket++;
    add(&p->counters[COUNTER_UPSTREAM_CALLS], 1);
    if (result != RESULT_OK)
        add(&p->counters[COUNTER_UPSTREAM_ERRORS], 1);
    add(&p->upstream[endpoint][result], 1);
    add(&p->upstream_latency[bucket], 1);
    add(&p->upstream_latency_sum_ms, latency_ms > 0 ? (uint64_t)latency_ms : 0);
    /* The ring's slot for this second: start it over if it holds an older
     * second. (Two fetchers overlap for a moment during a reload; the
     * figure is a rate, a lost call then does not matter.) */
    if (atomic_load(&h->call_ring[i].second) != second) {
        atomic_store(&h->call_ring[i].calls, 0);
        atomic_store(&h->call_ring[i].second, second);
    }
    atomic_fetch_add(&h->call_ring[i].calls, 1);
}

uint64_t region_calls_last_minute(const struct region *r)
{
    struct region_header *h = region_header(r);
    int64_t now = time_mono_ms() / 1000;
    uint64_t sum = 0;

    for (int i = 0; i < REGION_CALL_RING; i++) {
        int64_t second = atomic_load(&h->call_ring[i].second);
        if (now - second < REGION_CALL_RING && second <= now)
            sum += atomic_load(&h->call_ring[i].calls);
    }
    return sum;
}

uint64_t region_counter_sum(const struct region *r, enum counter c)
{
    uint64_t sum = 0;

    for (int i = 0; i < REGION_MAX_PROCS; i++)
        sum +=
            atomic_load_explicit(&region_proc(r, i)->counters[c], memory_order_relaxed);
    return sum;
}
