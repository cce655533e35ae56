/*
 * region.h - the POSIX shared-memory region every wahagate process shares.
 *
 * Layout (offsets from the start of the mapping, kept in the header; no
 * pointers inside), sized at start for server.max_sessions:
 *
 *   struct region_header      magic, layout version, counts, offsets, size,
 *                             instance id, the robust mutex and its
 *                             bookkeeping, the circuit breaker, the fetcher's
 *                             published states, digests of recent event ids
 *   struct region_entry[]     4 + max_sessions cached WAHA answers:
 *                             [0] health, [1] session list, [2] server
 *                             version, [3] server status, [4..] sessions
 *   struct entry_body[]       the bodies of those entries (objects, engine)
 *   struct region_qr[]        QR slots, lent to sessions waiting for a scan
 *   int32_t name_index[]      open-addressing hash of session names
 *   struct region_proc[]      REGION_MAX_PROCS per-process stat slots
 *   struct ratelimit_table    per-client token buckets, with their own lock
 *
 * Writers (the fetcher, and workers applying a webhook) change an entry
 * only while holding the lock, between region_entry_begin_write() and
 * region_entry_end_write(). begin makes the entry's sequence number odd and
 * end makes it even again, so a process that dies half-way leaves an odd
 * number behind; the next locker sees EOWNERDEAD, discards every entry with
 * an odd sequence and only then marks the mutex consistent.
 *
 * Readers compare the entry's sequence number (one atomic load) with the
 * one of the copy they keep, and take the lock to copy the entry only when
 * it changed. `generation` counts changes of what clients see (status, me,
 * health), so ETags and event ids stay the same across refreshes that bring
 * the same answer. Demand flows the other way without the lock: workers store
 * the time of the last read and, for a cold entry, the time they want fresh
 * data; the fetcher reads both on its timer.
 *
 * Stat slots have exactly one writer each (the process that owns the slot),
 * which updates its counters with relaxed atomic stores; anyone may sum them.
 */
#ifndef WAHAGATE_REGION_H
#define WAHAGATE_REGION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "ratelimit.h"

#define REGION_MAGIC 0x4554414741484157ull /* "WAHAGATE", little endian */
#define REGION_LAYOUT_VERSION 6

/* Entries: [0] WAHA's health, [1] the session list, [2] and [3] WAHA's
 * /api/server/version and /api/server/status (read by WAHA's own clients
 * through the compat paths), then server.max_sessions sessions
 * (REGION_SESSIONS_MAX at most). */
#define REGION_ENTRY_HEALTH 0
#define REGION_ENTRY_LIST 1
#define REGION_ENTRY_VERSION 2
#define REGION_ENTRY_SERVER 3
#define REGION_ENTRY_FIRST_SESSION 4
#define REGION_SESSIONS_MAX 100000
/* QR slots: one for each session that waits for a scan while it is read. */
#define REGION_QR_SLOTS_MAX 64
#define REGION_BODY_MAX 16384
#define REGION_NAME_MAX 64
#define REGION_STATUS_MAX 40
#define REGION_ME_MAX 512
#define REGION_ENGINE_MAX 1024
#define REGION_ERROR_MAX 160
#define REGION_QR_VALUE_MAX 1024
#define REGION_QR_PNG_MAX 32768
/* The envelopes (webhooks and WAHA's events) whose ids are remembered. */
#define REGION_EVENT_DIGESTS 1024
#define REGION_DIGEST_LEN 16

/* Master, fetcher, and up to twice max_workers while old ones retire. */
#define REGION_MAX_PROCS 136

enum entry_kind {
    ENTRY_FREE = 0,
    ENTRY_HEALTH,
    ENTRY_SESSION_LIST,
    ENTRY_SESSION,
    ENTRY_SERVER, /* WAHA's /api/server/version or /status (name: the path) */
    ENTRY_KIND_COUNT
};

/* Where an entry's data came from: polling, a webhook, WAHA's WebSocket. */
enum entry_source {
    SOURCE_NONE = 0,
    SOURCE_POLL,
    SOURCE_WEBHOOK,
    SOURCE_EVENTS,
    SOURCE_COUNT
};

extern const char *const entry_kind_names[ENTRY_KIND_COUNT];
extern const char *const entry_source_names[SOURCE_COUNT];

/*
 * What readers of an entry want, one set of demand times each: the data
 * (a session's status, from WAHA's session list), a session's details (the
 * engine, which only GET /api/sessions/{name} gives) and its QR code.
 */
enum demand_kind { DEMAND_DATA = 0, DEMAND_DETAILS, DEMAND_QR, DEMAND_COUNT };

/* Demand times, monotonic, written without the lock. */
struct demand {
    _Atomic int64_t last_read_ms;    /* workers: a reader read it */
    _Atomic int64_t wanted_ms;       /* workers: a reader waits for it */
    _Atomic int64_t attempt_done_ms; /* fetcher: the last refresh attempt ended */
};

/* What a writer changes under the lock; readers copy it under the lock. */
struct entry_data {
    uint32_t kind;              /* enum entry_kind */
    uint32_t source;            /* enum entry_source */
    char name[REGION_NAME_MAX]; /* session name; for the health entry the
                                   endpoint that answered ("/health"), for
                                   a server entry WAHA's path */
    bool has_data;              /* a good answer was stored */
    bool healthy;               /* the last refresh attempt succeeded */
    bool exists;                /* WAHA knows the session */
    char status[REGION_STATUS_MAX];     /* the published status, "UNKNOWN" before
                                           data; health: "ok", "error" or "pong";
                                           list: the number of sessions */
    char raw_status[REGION_STATUS_MAX]; /* what WAHA said last */
    int64_t changed_at_real_ms;         /* when the published status changed */
    int64_t pending_since_mono_ms;      /* a change away from WORKING has been
                                           held since (flap_hold); 0: none */
    int64_t pushed_mono_ms;             /* last session.status pushed (webhook or
                                           WAHA's events); 0: never */
    int64_t event_ts_ms;                /* envelope timestamp of the newest
                                           session.status applied; 0: none */
    uint8_t event_digest[REGION_DIGEST_LEN]; /* digest of its envelope id */
    char me_json[REGION_ME_MAX];             /* {"id":..,"pushName":..} or null */
    int64_t fetched_real_ms;                 /* when the data was fetched */
    int64_t fetched_mono_ms;
    int64_t last_success_real_ms;      /* 0: never */
    char last_error[REGION_ERROR_MAX]; /* "" when the last attempt succeeded */
    char absent_reason[REGION_ERROR_MAX]; /* !exists: WAHA's words, when it gave
                                             some (WAHA Core's 422); "" for 404 */
    int32_t qr_slot;                      /* the session's QR slot + 1; 0: none */
    bool has_details;                     /* the engine was fetched */
    int64_t details_real_ms;
    int64_t details_mono_ms;
    uint32_t body_len;   /* bytes of the entry's body (struct entry_body) */
    uint32_t engine_len; /* bytes of its engine */
};

/*
 * What an entry holds that only some readers need, apart from struct
 * entry_data so that those who read statuses touch none of it: the session
 * as WAHA lists it (SessionInfo, compact, without "engine"), the engine of
 * its details, WAHA's health answer. Written with the entry (same lock,
 * same sequence number); entry_data's body_len and engine_len say how much
 * of it is used.
 */
struct entry_body {
    char body[REGION_BODY_MAX];
    char engine_json[REGION_ENGINE_MAX];
};

struct region_entry {
    _Atomic uint64_t seq;        /* odd while a writer is inside */
    _Atomic uint64_t generation; /* changes of the client-visible content */
    struct demand demand[DEMAND_COUNT];
    struct entry_data d; /* under the lock only */
};

/* entry_data_copy - copy SRC to DST (lock held on the source). */
void entry_data_copy(struct entry_data *dst, const struct entry_data *src);

/* entry_body_copy - copy the used part of SRC (lengths in D) to DST, each
 * part NUL-terminated (lock held on the source). */
void entry_body_copy(struct entry_body *dst, const struct entry_body *src,
                     const struct entry_data *d);

/*
 * entry_observe_status - WAHA said RAW about D's session at NOW_MONO
 * (NOW_REAL on the wall clock). RAW is published as D->status at once,
 * except a change away from WORKING, which is held until it has lasted
 * FLAP_HOLD_MS (0: no hold); entry_release_held_status() publishes it then.
 * Returns true when the published status changed. Lock held.
 */
bool entry_observe_status(struct entry_data *d, const char *raw, int64_t now_mono,
                          int64_t now_real, int64_t flap_hold_ms);

/* entry_release_held_status - publish a held change whose hold is over;
 * true when it did. Lock held. */
bool entry_release_held_status(struct entry_data *d, int64_t now_mono, int64_t now_real,
                               int64_t flap_hold_ms);

/* A session's QR code while it waits for a scan; fetched ahead of demand. */
struct qr_data {
    bool has_qr;
    int64_t fetched_real_ms;
    int64_t fetched_mono_ms;
    char value[REGION_QR_VALUE_MAX]; /* WAHA's format=raw value */
    bool png_current;                /* the image shows `value` (not the last code) */
    uint32_t png_len;                /* 0: no image yet */
    unsigned char png[REGION_QR_PNG_MAX];
};

/*
 * A QR slot, lent to one session entry at a time (region_qr_claim()); the
 * entry's qr_slot and the slot's entry name each other. Same write
 * protocol as entries; the demand for a QR code is in the entry.
 */
struct region_qr {
    _Atomic uint64_t seq;
    _Atomic uint64_t generation;
    int32_t entry; /* the owner's entry index; 0 (never a session): free */
    struct qr_data d;
};

/* qr_data_copy - copy SRC's used bytes to DST (lock held on the source). */
void qr_data_copy(struct qr_data *dst, const struct qr_data *src);

enum circuit_state { CIRCUIT_CLOSED = 0, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN, CIRCUIT_COUNT };

extern const char *const circuit_state_names[CIRCUIT_COUNT];

/* The fetcher's WebSocket to WAHA's events; published in the header. */
enum events_state {
    EVENTS_OFF = 0,    /* upstream.events = off, or not started */
    EVENTS_CONNECTING, /* (re)connecting */
    EVENTS_CONNECTED,  /* the stream is up: WAHA pushes session.status */
    EVENTS_REFUSED,    /* WAHA refused it (no /ws, or the key): polling */
    EVENTS_STATE_COUNT
};

extern const char *const events_state_names[EVENTS_STATE_COUNT];

/* Where the gateway stands in a Redis fleet; the fetcher (fleet.c)
 * publishes it in the header. */
enum fleet_state {
    FLEET_OFF = 0,  /* no redis.url: a single host */
    FLEET_LEADER,   /* holds the lease: calls WAHA for the fleet */
    FLEET_FOLLOWER, /* another gateway calls WAHA; we copy its entries */
    FLEET_DOWN,     /* Redis unreachable: calling WAHA on our own */
    FLEET_STATE_COUNT
};

extern const char *const fleet_state_names[FLEET_STATE_COUNT];

enum proc_role { ROLE_NONE = 0, ROLE_MASTER, ROLE_WORKER, ROLE_FETCHER, ROLE_COUNT };

extern const char *const proc_role_names[ROLE_COUNT];

/* Counters of one process; every figure of the stats is a sum of these. */
enum counter {
    COUNTER_REQUESTS = 0,
    COUNTER_CACHE_HITS,
    COUNTER_CACHE_MISSES,
    COUNTER_NOT_MODIFIED,
    COUNTER_RATE_LIMITED,
    COUNTER_ERRORS, /* answers with status >= 500 */
    COUNTER_UPSTREAM_CALLS,
    COUNTER_UPSTREAM_ERRORS,
    COUNTER_UPSTREAM_RETRIES,
    COUNTER_WEBHOOKS,
    COUNTER_WEBHOOKS_REJECTED,
    COUNTER_WEBHOOKS_DUPLICATE,
    COUNTER_BYTES_SENT,
    COUNTER_AUTH_FAILURES, /* requests refused for no or an unknown key */
    COUNTER_SCALE_UP,      /* workers added for load (master) */
    COUNTER_SCALE_DOWN,    /* workers retired after a quiet period (master) */
    COUNTER_COUNT
};

extern const char *const counter_names[COUNTER_COUNT];

/* What a request asked for: the label of the request counters. */
enum endpoint {
    ENDPOINT_STATUS = 0,
    ENDPOINT_HEALTH,
    ENDPOINT_SESSIONS,
    ENDPOINT_SESSION,
    ENDPOINT_QR,
    ENDPOINT_CONFIG,
    ENDPOINT_WEBHOOK,
    ENDPOINT_EVENTS,
    ENDPOINT_STATS,
    ENDPOINT_METRICS,
    ENDPOINT_STATIC,
    ENDPOINT_OTHER,
    ENDPOINT_COUNT
};

extern const char *const endpoint_names[ENDPOINT_COUNT];

/* 1xx-2xx, 3xx, 4xx, 5xx. */
#define STATUS_CLASS_COUNT 4

/* Upper bounds of the request latency buckets, in microseconds (+Inf last). */
#define LATENCY_BUCKETS 12
extern const int64_t latency_bucket_us[LATENCY_BUCKETS - 1];

/* Calls to WAHA, by what was asked and how it ended. */
enum upstream_endpoint {
    UPSTREAM_SESSION = 0,
    UPSTREAM_SESSIONS,
    UPSTREAM_HEALTH,
    UPSTREAM_PING,
    UPSTREAM_QR,
    UPSTREAM_SERVER, /* /api/server/version and /api/server/status */
    UPSTREAM_ENDPOINT_COUNT
};

enum upstream_result {
    RESULT_OK = 0,     /* a valid answer */
    RESULT_HTTP_ERROR, /* an HTTP error status */
    RESULT_INVALID,    /* a body that is not what WAHA sends */
    RESULT_TIMEOUT,
    RESULT_NETWORK, /* refused, reset, DNS... */
    RESULT_COUNT
};

extern const char *const upstream_endpoint_names[UPSTREAM_ENDPOINT_COUNT];
extern const char *const upstream_result_names[RESULT_COUNT];

/* Upper bounds of the upstream latency buckets, in milliseconds (+Inf last). */
#define UPSTREAM_BUCKETS 12
extern const int64_t upstream_bucket_ms[UPSTREAM_BUCKETS - 1];

struct region_proc {
    _Atomic int32_t pid;   /* 0: the slot's process is not running */
    _Atomic uint32_t role; /* enum proc_role */
    _Atomic int64_t started_mono_ms;
    _Atomic int32_t in_flight;   /* requests being answered (gauge) */
    _Atomic int32_t sse_clients; /* gauge */
    _Atomic int32_t connections; /* open client connections (gauge) */
    _Atomic int32_t serving;     /* a worker: accepting on the listen sockets */
    _Atomic uint64_t busy_us;    /* CPU time used, updated each second (scaling) */
    _Atomic uint64_t counters[COUNTER_COUNT];
    /* Breakdowns for /metrics (workers: requests; fetcher: upstream). */
    _Atomic uint64_t requests[ENDPOINT_COUNT][STATUS_CLASS_COUNT];
    _Atomic uint64_t latency[LATENCY_BUCKETS]; /* not cumulative */
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t upstream[UPSTREAM_ENDPOINT_COUNT][RESULT_COUNT];
    _Atomic uint64_t upstream_latency[UPSTREAM_BUCKETS]; /* not cumulative */
    _Atomic uint64_t upstream_latency_sum_ms;
};

/* Calls to WAHA per second for the last minute (apiCallsPerMinute). */
#define REGION_CALL_RING 60

struct region_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t entry_count; /* 4 + server.max_sessions */
    uint32_t qr_count;
    uint32_t proc_count;
    uint64_t size;
    uint64_t instance_id; /* random per creation; ETags use it */
    uint64_t entries_offset, bodies_offset, qrs_offset, index_offset, procs_offset,
        ratelimit_offset;
    uint32_t index_size; /* slots of the name index, a power of two */
    _Atomic int32_t master_pid;
    int64_t started_real_ms;
    int64_t started_mono_ms;

    pthread_mutex_t lock; /* robust, process-shared */
    _Atomic int32_t lock_owner_pid;
    _Atomic uint64_t lock_acquisitions;
    _Atomic uint64_t lock_recoveries;

    _Atomic uint64_t table_generation; /* entries added or removed */
    _Atomic int32_t workers_running;
    _Atomic uint32_t fleet;  /* enum fleet_state */
    _Atomic uint32_t events;         /* enum events_state */
    _Atomic int64_t events_since_ms; /* monotonic: the stream is up since; 0: down */
    _Atomic uint64_t events_received;
    /* Sessions WAHA lists beyond server.max_sessions, at the last list. */
    _Atomic uint64_t untracked_sessions;

    /* Calls to WAHA per monotonic second, a ring written by the fetcher. */
    struct {
        _Atomic int64_t second;
        _Atomic uint64_t calls;
    } call_ring[REGION_CALL_RING];

    /* WAHA's circuit breaker, written by the fetcher only. */
    _Atomic uint32_t circuit; /* enum circuit_state */
    _Atomic uint64_t circuit_opens;
    _Atomic uint64_t circuit_transitions;
    _Atomic int64_t circuit_retry_ms; /* monotonic end of the open period */

    /* Digests of the ids of recent event envelopes (under the lock), so
     * that WAHA's retried deliveries are applied once. A ring: the oldest
     * goes. */
    uint32_t event_digest_next;
    uint8_t event_digests[REGION_EVENT_DIGESTS][REGION_DIGEST_LEN];
};

/* A process's handle on the region (process-local, not shared). */
struct region {
    void *base;
    size_t size;
    int fd; /* -1 once closed */
    bool read_only;
    char name[64];
};

/*
 * region_create - create the shm object NAME for MAX_SESSIONS sessions
 * (server.max_sessions), lay it out and initialise the mutexes. Exclusive:
 * while another live instance holds NAME this fails with a message naming
 * its pid. A leftover object from a crashed run (no live holder) is
 * unlinked and created again, never trusted. Master only; the children
 * inherit the mapping across fork(). Returns 0 or -1 (logged).
 */
int region_create(struct region *r, const char *name, int max_sessions);

/*
 * region_attach_read_only - map an existing region for reading (wahagate
 * --stats). Checks magic, layout version and size. Never takes the lock.
 * Returns 0 or -1 with a message in WHY (WHY_SIZE bytes).
 */
int region_attach_read_only(struct region *r, const char *name, char *why,
                            size_t why_size);

/* region_close_fd - children drop the descriptor (and its instance lock). */
void region_close_fd(struct region *r);

/* region_detach - unmap; region_destroy also unlinks (master, clean exit). */
void region_detach(struct region *r);
void region_destroy(struct region *r);

struct region_header *region_header(const struct region *r);
struct ratelimit_table *region_ratelimit(const struct region *r);
struct region_proc *region_proc(const struct region *r, int slot);

/* The number of entries (4 + server.max_sessions) and of QR slots. */
int region_entry_count(const struct region *r);
int region_qr_count(const struct region *r);

struct region_entry *region_entry(const struct region *r, int index);
struct entry_body *region_body(const struct region *r, int index);
struct region_qr *region_qr_slot(const struct region *r, int slot);

/* region_demand - entry INDEX's demand times of KIND (no lock needed). */
struct demand *region_demand(const struct region *r, int index, enum demand_kind kind);

/*
 * region_want - ask the fetcher for entry INDEX's KIND now, as a reader
 * that waits does: wanted_ms becomes newer than the last attempt, so one
 * attempt answers every reader that asked before it ended. No lock.
 */
void region_want(struct region *r, int index, enum demand_kind kind, int64_t now);

/*
 * region_lock - take the robust mutex; FUNC and LINE are recorded for
 * debugging. On EOWNERDEAD it logs which pid died holding it, discards
 * torn entries and QR slots (odd sequence), then marks the mutex
 * consistent. Only bytes are copied while it is held: no allocation, no
 * I/O, no logging except that repair. Returns 0, or -1 if the mutex is
 * unusable.
 */
#define region_lock(r) region_lock_at((r), __func__, __LINE__)
int region_lock_at(struct region *r, const char *func, int line);
void region_unlock(struct region *r);

/* region_assert_held - abort unless the calling process holds the lock. */
void region_assert_held(const struct region *r);

/*
 * Entry writes, under the lock only. end_write bumps the generation when
 * CONTENT_CHANGED (something a client sees changed).
 */
void region_entry_begin_write(struct region *r, struct region_entry *e);
void region_entry_end_write(struct region *r, struct region_entry *e,
                            bool content_changed);

/* Same for a QR slot. */
void region_qr_begin_write(struct region *r, struct region_qr *q);
void region_qr_end_write(struct region *r, struct region_qr *q, bool content_changed);

/*
 * region_qr_of - the QR slot of session entry INDEX, or NULL when it has
 * none. Lock held.
 */
struct region_qr *region_qr_of(struct region *r, int index);

/*
 * region_qr_claim - a QR slot for session entry INDEX: its own, a free one,
 * or the one whose session's code was read longest ago (that session loses
 * it). Lock held. NULL only when there are no slots.
 */
struct region_qr *region_qr_claim(struct region *r, int index);

/* region_qr_release - session entry INDEX gives its QR slot back. Lock held. */
void region_qr_release(struct region *r, int index);

/*
 * region_event_seen - true when an envelope whose id has DIGEST was
 * recorded already; else records it (the oldest of REGION_EVENT_DIGESTS
 * goes). An all-zero DIGEST (no id) is never a duplicate. Lock held.
 */
bool region_event_seen(struct region *r, const uint8_t digest[REGION_DIGEST_LEN]);

/* region_entry_reset - clear an entry to "no data" (under the lock). */
void region_entry_reset(struct region_entry *e, enum entry_kind kind, const char *name);

/*
 * region_set_sessions - make the session entries exactly the COUNT names in
 * NAMES: entries of names no longer listed are freed, new names take free
 * entries (with no data yet), entries of names still listed keep their
 * data. INDEX_OUT (COUNT ints, may be NULL) gets each name's entry, or -1
 * when there was no room; SCRATCH is region_entry_count() bools of the
 * caller's. Bumps table_generation when anything changed. Lock held.
 * Returns how many names found no room (more than server.max_sessions).
 */
int region_set_sessions(struct region *r, const char (*names)[REGION_NAME_MAX], int count,
                        int *index_out, bool *scratch);

/*
 * region_find_session - index of the session entry NAME, or -1 (a hash
 * lookup). Call with the lock held: the fetcher renames entries when WAHA's
 * session list changes (and then bumps table_generation).
 */
int region_find_session(const struct region *r, const char *name);

/* region_server_entry - the server entry (REGION_ENTRY_VERSION or
 * REGION_ENTRY_SERVER) of WAHA's path PATH, or -1. */
static inline int region_server_entry(const char *path)
{
    if (strcmp(path, "/api/server/version") == 0)
        return REGION_ENTRY_VERSION;
    return strcmp(path, "/api/server/status") == 0 ? REGION_ENTRY_SERVER : -1;
}

/* region_name_hash - the hash of session names (FNV-1a), for the region's
 * index and the workers' tables. */
uint32_t region_name_hash(const char *name);

/* Counters: only the slot's owner adds; anyone sums. */
static inline void region_count(struct region_proc *p, enum counter c, uint64_t n)
{
    uint64_t v = atomic_load_explicit(&p->counters[c], memory_order_relaxed);
    atomic_store_explicit(&p->counters[c], v + n, memory_order_relaxed);
}

uint64_t region_counter_sum(const struct region *r, enum counter c);

/* Record in slot P one request to ENDPOINT answered STATUS after LATENCY_US. */
void region_count_request(struct region_proc *p, enum endpoint endpoint, int status,
                          int64_t latency_us);

/* Record in slot P one call to WAHA and count it in the region's ring. */
void region_count_upstream(struct region *r, struct region_proc *p,
                           enum upstream_endpoint endpoint, enum upstream_result result,
                           int64_t latency_ms);

/* Calls to WAHA during the last 60 s (from the ring). */
uint64_t region_calls_last_minute(const struct region *r);

#endif
