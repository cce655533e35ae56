/*
 * region.c - create, attach and lock the shared-memory region.
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
#include "timeutil.h"

const char *const entry_kind_names[ENTRY_KIND_COUNT] = {
    [ENTRY_FREE] = "free",
    [ENTRY_HEALTH] = "health",
    [ENTRY_SESSION_LIST] = "list",
    [ENTRY_SESSION] = "session",
};

const char *const entry_source_names[SOURCE_COUNT] = {
    [SOURCE_NONE] = "none",
    [SOURCE_POLL] = "poll",
    [SOURCE_WEBHOOK] = "webhook",
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
    [UPSTREAM_QR] = "qr",
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

static size_t entries_offset(void)
{
    return align_up(sizeof(struct region_header));
}

static size_t qrs_offset(void)
{
    return entries_offset() + align_up(sizeof(struct region_entry)) * REGION_MAX_ENTRIES;
}

static size_t procs_offset(void)
{
    return qrs_offset() + align_up(sizeof(struct region_qr)) * REGION_SESSION_MAX;
}

static size_t ratelimit_offset(void)
{
    return procs_offset() + align_up(sizeof(struct region_proc)) * REGION_MAX_PROCS;
}

static size_t region_size(void)
{
    return ratelimit_offset() + align_up(sizeof(struct ratelimit_table));
}

struct ratelimit_table *region_ratelimit(const struct region *r)
{
    return (struct ratelimit_table *)((char *)r->base + ratelimit_offset());
}

struct region_header *region_header(const struct region *r)
{
    return r->base;
}

struct region_entry *region_entry(const struct region *r, int index)
{
    assert(index >= 0 && index < REGION_MAX_ENTRIES);
    return (struct region_entry *)((char *)r->base + entries_offset() +
                                   align_up(sizeof(struct region_entry)) * (size_t)index);
}

struct region_qr *region_qr(const struct region *r, int entry_index)
{
    int i = entry_index - REGION_ENTRY_FIRST_SESSION;

    assert(i >= 0 && i < REGION_SESSION_MAX);
    return (struct region_qr *)((char *)r->base + qrs_offset() +
                                align_up(sizeof(struct region_qr)) * (size_t)i);
}

struct region_proc *region_proc(const struct region *r, int slot)
{
    assert(slot >= 0 && slot < REGION_MAX_PROCS);
    return (struct region_proc *)((char *)r->base + procs_offset() +
                                  align_up(sizeof(struct region_proc)) * (size_t)slot);
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
    memset(d, 0, offsetof(struct entry_data, body) + 1);
    d->kind = kind;
    d->source = SOURCE_NONE;
    memcpy(d->name, keep_name, sizeof(d->name));
    snprintf(d->status, sizeof(d->status), "UNKNOWN");
    snprintf(d->raw_status, sizeof(d->raw_status), "UNKNOWN");
    snprintf(d->me_json, sizeof(d->me_json), "null");
}

void qr_data_copy(struct qr_data *dst, const struct qr_data *src)
{
    size_t png_len = src->png_len < REGION_QR_PNG_MAX ? src->png_len : REGION_QR_PNG_MAX;

    memcpy(dst, src, offsetof(struct qr_data, png) + png_len);
    dst->png_len = (uint32_t)png_len;
}

void region_qr_clear(struct region_qr *q)
{
    memset(&q->d, 0, offsetof(struct qr_data, png));
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
    size_t body_len =
        src->body_len < REGION_BODY_MAX ? src->body_len : REGION_BODY_MAX - 1;

    memcpy(dst, src, offsetof(struct entry_data, body) + body_len);
    dst->body_len = (uint32_t)body_len;
    dst->body[body_len] = '\0';
}

static void lay_out(struct region *r)
{
    struct region_header *h = r->base;
    uint64_t id = 0;

    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint64_t)time_real_ms() ^ ((uint64_t)getpid() << 32);

    /* The object is fresh from ftruncate(), so every byte is zero. */
    h->layout_version = REGION_LAYOUT_VERSION;
    h->entry_count = REGION_MAX_ENTRIES;
    h->proc_count = REGION_MAX_PROCS;
    h->size = r->size;
    h->instance_id = id;
    h->entries_offset = entries_offset();
    h->procs_offset = procs_offset();
    h->master_pid = getpid();
    h->started_real_ms = time_real_ms();
    h->started_mono_ms = time_mono_ms();
    region_entry_reset(region_entry(r, REGION_ENTRY_HEALTH), ENTRY_HEALTH, "");
    region_entry_reset(region_entry(r, REGION_ENTRY_LIST), ENTRY_FREE, "");
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++)
        region_entry_reset(region_entry(r, i), ENTRY_FREE, "");
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

int region_create(struct region *r, const char *name)
{
    bool leftover = false;
    int fd, rc;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->size = region_size();

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
    rc = init_mutex(&region_header(r)->lock);
    if (rc == 0)
        rc = init_mutex(&region_ratelimit(r)->lock);
    if (rc != 0) {
        log_error(rc, "pthread_mutex_init() for the region failed");
        goto fail;
    }
    r->fd = fd;
    lay_out(r);
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
        h->size != r->size || h->size != region_size()) {
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

/* Discard every entry a dead writer left half-written. Lock held. */
static int repair_torn_entries(struct region *r)
{
    int repaired = 0;

    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        struct region_qr *q = region_qr(r, i);
        uint64_t seq = atomic_load(&q->seq);

        if ((seq & 1) == 0)
            continue;
        region_qr_clear(q);
        /* As if never fetched: readers wait for the refetch (cache_judge). */
        atomic_store(&q->attempt_done_ms, 0);
        atomic_store(&q->wanted_ms, time_mono_ms());
        atomic_fetch_add(&q->generation, 1);
        atomic_store(&q->seq, seq + 1);
        repaired++;
    }
    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        struct region_entry *e = region_entry(r, i);
        uint64_t seq = atomic_load(&e->seq);

        if ((seq & 1) == 0)
            continue;
        /* Keep kind and name so the fetcher knows to refresh it. */
        region_entry_reset(e, (enum entry_kind)e->d.kind, e->d.name);
        /* As if never fetched: readers wait for the refetch (cache_judge)
         * instead of being told there is no data. */
        atomic_store(&e->attempt_done_ms, 0);
        atomic_store(&e->wanted_ms, time_mono_ms());
        atomic_fetch_add(&e->generation, 1);
        atomic_store(&e->seq, seq + 1);
        repaired++;
    }
    return repaired;
}

int region_lock_at(struct region *r, const char *func, int line)
{
    struct region_header *h = region_header(r);
    int rc = pthread_mutex_lock(&h->lock);

    assert(!r->read_only);
    if (rc == EOWNERDEAD) {
        int dead = atomic_load(&h->lock_owner_pid);
        int repaired = repair_torn_entries(r);

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

static void forget_qr(struct region *r, int entry_index)
{
    struct region_qr *q = region_qr(r, entry_index);

    region_qr_begin_write(r, q);
    region_qr_clear(q);
    atomic_store(&q->wanted_ms, 0);
    atomic_store(&q->attempt_done_ms, 0);
    region_qr_end_write(r, q, true);
}

static bool listed(const char (*names)[REGION_NAME_MAX], int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

int region_set_sessions(struct region *r, const char (*names)[REGION_NAME_MAX], int count)
{
    struct region_header *h = region_header(r);
    bool changed = false;
    int missing = 0;

    region_assert_held(r);
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        struct region_entry *e = region_entry(r, i);
        if (e->d.kind != ENTRY_SESSION || listed(names, count, e->d.name))
            continue;
        region_entry_begin_write(r, e);
        region_entry_reset(e, ENTRY_FREE, "");
        region_entry_end_write(r, e, true);
        forget_qr(r, i);
        changed = true;
    }
    for (int n = 0; n < count; n++) {
        int free_index = -1;
        if (region_find_session(r, names[n]) >= 0)
            continue;
        for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
            if (region_entry(r, i)->d.kind == ENTRY_FREE) {
                free_index = i;
                break;
            }
        }
        if (free_index < 0) {
            missing++;
            continue;
        }
        struct region_entry *e = region_entry(r, free_index);
        region_entry_begin_write(r, e);
        region_entry_reset(e, ENTRY_SESSION, names[n]);
        atomic_store(&e->last_read_ms, 0);
        atomic_store(&e->wanted_ms, 0);
        atomic_store(&e->attempt_done_ms, 0);
        region_entry_end_write(r, e, true);
        forget_qr(r, free_index);
        changed = true;
    }
    if (changed)
        atomic_fetch_add(&h->table_generation, 1);
    return missing;
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

bool region_webhook_seen(struct region *r, const char *id)
{
    struct region_header *h = region_header(r);

    region_assert_held(r);
    if (id[0] == '\0' || strlen(id) >= REGION_WEBHOOK_ID_MAX)
        return false; /* no id, or one too long to keep: cannot tell */
    for (int i = 0; i < REGION_WEBHOOK_IDS; i++)
        if (strncmp(h->webhook_ids[i], id, REGION_WEBHOOK_ID_MAX) == 0)
            return true;
    snprintf(h->webhook_ids[h->webhook_id_next % REGION_WEBHOOK_IDS],
             REGION_WEBHOOK_ID_MAX, "%s", id);
    h->webhook_id_next = (h->webhook_id_next + 1) % REGION_WEBHOOK_IDS;
    return false;
}

int region_find_session(const struct region *r, const char *name)
{
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        const struct region_entry *e = region_entry(r, i);
        if (e->d.kind == ENTRY_SESSION && strcmp(e->d.name, name) == 0)
            return i;
    }
    return -1;
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
