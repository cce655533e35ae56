/*
 * schedule.h - the fetcher's rules for what to ask WAHA next, as pure
 * functions (no region, no clock, no event loop), pinned by unit tests.
 *
 * WAHA is asked five kinds of things (targets): its health; the session
 * list, one GET /api/sessions?all=true that brings the status, me and
 * object of every session at once; one session's details (its engine, which
 * only GET /api/sessions/{name} gives); one session's QR code; WAHA's
 * /api/server/version or /api/server/status (for the compat paths). A target is
 * due when a reader waits for it, or when readers keep reading it and it
 * has reached 80% of its period (refresh ahead, so readers never wait).
 * The list stands for all the sessions: it is due when any session's data
 * is. Nothing that nobody reads is ever due.
 */
#ifndef WAHAGATE_SCHEDULE_H
#define WAHAGATE_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* What the fetcher asks WAHA. */
enum target_kind {
    TARGET_HEALTH = 0, /* GET /health (or /ping) */
    TARGET_LIST,       /* GET /api/sessions?all=true: every session's data */
    TARGET_DETAILS,    /* GET /api/sessions/{name}: one session's engine */
    TARGET_QR,         /* GET /api/{name}/auth/qr: one session's QR code */
    TARGET_SERVER,     /* GET /api/server/version or /status: a server entry */
    TARGET_KIND_COUNT
};

extern const char *const target_kind_names[TARGET_KIND_COUNT];

enum due {
    DUE_NO = 0,
    DUE_RETRY,  /* a retry of a failed call whose time has come */
    DUE_WANTED, /* a reader waits */
    DUE_AHEAD   /* read and near its expiry: refresh ahead */
};

/* One target's demand, read from the region (struct demand). */
struct demand_view {
    int64_t last_read_ms;
    int64_t wanted_ms;
    int64_t attempt_done_ms;
};

/* A target's own refresh state, kept by the fetcher. */
struct refresh {
    bool in_flight;
    int attempt;           /* retries made in the current refresh */
    int64_t retry_at_ms;   /* a retry is pending; 0: none */
    int failures;          /* failed refreshes in a row */
    int64_t not_before_ms; /* backoff after failures */
};

/*
 * schedule_demand_due - does the demand DM want a target with data
 * HAS_DATA fetched at FETCHED_MS (its period PERIOD_MS) at NOW: DUE_WANTED
 * when a reader waits (wanted after the last attempt), DUE_AHEAD when it
 * was read since it was fetched and since the last attempt and reached 80%
 * of its period (cache_refresh_due()), else DUE_NO.
 */
enum due schedule_demand_due(bool has_data, int64_t fetched_ms, const struct demand_view *dm,
                             int64_t period_ms, int64_t now);

/*
 * schedule_gate - what the refresh state R of a target makes of DUE at
 * NOW: nothing while a call is out, a pending retry when its time comes
 * (and nothing before), nothing during the backoff after failures.
 */
enum due schedule_gate(const struct refresh *r, enum due due, int64_t now);

/* The more urgent of A and B (DUE_NO is the least). */
enum due schedule_more_urgent(enum due a, enum due b);

/*
 * schedule_session_period - how long a session's data stays fresh: the
 * shorter of backend.status_cache_duration and session_cache_duration, or
 * webhook.safety_interval while pushed events keep it current (one came
 * within safety_interval, PUSHED_MS; or WAHA's event stream is up since
 * STREAM_SINCE_MS, 0 when down, and the data is not older than the stream).
 */
int64_t schedule_session_period(const struct config *cfg, int64_t pushed_ms,
                                int64_t fetched_ms, int64_t stream_since_ms, int64_t now);

/* A session's QR code, as the fetcher last saw its slot. */
struct qr_view {
    bool scan;          /* WAHA says SCAN_QR_CODE */
    bool has_value;     /* a code was fetched */
    bool png_current;   /* its image too */
    int64_t fetched_ms; /* of the code */
};

/* WAHA shows a new QR code every 20 s after the first (docs/waha-api.md, 3.3). */
#define SCHEDULE_QR_PERIOD_MS 20000

/*
 * schedule_qr_due - a QR code is asked only while WAHA says SCAN_QR_CODE:
 * at once when a reader or an event wants it, or its new code's image is
 * missing; again every min(SCHEDULE_QR_PERIOD_MS, PERIOD_MS) while its
 * code, or the session's own status (a frontend that will ask for the code
 * next), was read within PERIOD_MS (DM's last_read_ms: workers mark both).
 */
enum due schedule_qr_due(const struct refresh *r, const struct qr_view *qr,
                         const struct demand_view *dm, int64_t period_ms, int64_t now);

/* After failed refreshes: wait FIRST_MS, doubling per failure, at most
 * PERIOD_MS. */
int64_t schedule_backoff_ms(int failures, int64_t first_ms, int64_t period_ms);

#endif
