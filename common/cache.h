/*
 * cache.h - the freshness rules of wahagate, as pure functions.
 *
 * Workers use them to decide, per request, whether an entry is fresh, whether
 * the request should wait for the fetcher, or whether it gets the last data
 * flagged stale; and to compute the ETag, Age and max-age they send. The
 * fetcher uses cache_refresh_due() to decide what to refresh ahead of expiry.
 * Keeping the rules here, free of I/O, lets the unit tests pin them down.
 */
#ifndef WAHAGATE_CACHE_H
#define WAHAGATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cache_verdict {
    CACHE_FRESH,   /* younger than max-age: serve, a cache hit */
    CACHE_WAIT,    /* expired or empty, and a refresh may come: wait */
    CACHE_STALE,   /* expired; serve the last data flagged stale */
    CACHE_TOO_OLD, /* stale longer than backend.stale_if_error: 503 */
    CACHE_EMPTY    /* no data and none coming soon: 503 */
};

/* What the verdict depends on, read from an entry. */
struct cache_view {
    bool has_data;
    int64_t fetched_mono_ms;
    int64_t attempt_done_ms; /* when the fetcher last finished trying */
    bool upstream_down;      /* the circuit breaker is not closed */
};

/*
 * cache_judge - FRESH when the data is younger than MAX_AGE_MS. Otherwise a
 * request waits (when MAY_WAIT) unless waiting cannot help: the fetcher
 * already finished an attempt after the data expired without bringing
 * fresh data, or the circuit breaker keeps it from calling WAHA. Then the
 * answer is STALE, or TOO_OLD once the data is older than STALE_LIMIT_MS
 * (backend.stale_if_error), or EMPTY when there never was data.
 */
enum cache_verdict cache_judge(const struct cache_view *v, int64_t max_age_ms,
                               int64_t stale_limit_ms, int64_t now_ms, bool may_wait);

/* Age of data fetched at FETCHED_MS, never negative. */
int64_t cache_age_ms(int64_t fetched_ms, int64_t now_ms);

/* Whole seconds of freshness left, for Cache-Control: max-age. */
int64_t cache_max_age_seconds(int64_t max_age_ms, int64_t age_ms);

/*
 * cache_etag - a weak ETag naming one version of one entry:
 * W/"<instance>-<entry>-<generation>[-stale]". The instance id changes with
 * every region, so tags from an earlier run never match. Returns the length.
 */
#define CACHE_ETAG_MAX 64
size_t cache_etag(char *out, uint64_t instance, int entry, uint64_t generation,
                  bool stale);

/*
 * cache_etag_matches - true when the If-None-Match header value HEADER lists
 * ETAG ("*", a single tag or a comma list; weak comparison).
 */
bool cache_etag_matches(const char *header, const char *etag);

/*
 * cache_refresh_due - the fetcher's rule for one entry. An entry is due when
 * a reader waits for it (WANTED_MS after the last attempt), or when it was
 * read since it was fetched and since the fetcher last tried (hot) and has
 * reached REFRESH_AHEAD_PERMILLE of PERIOD_MS, so readers find fresh data
 * without waiting. An entry nobody reads is never due: no calls to WAHA
 * when no one is looking, even while WAHA fails.
 */
#define CACHE_REFRESH_AHEAD_PERMILLE 800
bool cache_refresh_due(bool has_data, int64_t fetched_mono_ms, int64_t last_read_ms,
                       int64_t wanted_ms, int64_t attempt_done_ms, int64_t period_ms,
                       int64_t now_ms);

/*
 * cache_pushed_max_age - how long a session's data is fresh: BASE_MS, or
 * SAFETY_MS (webhook.safety_interval) while pushed events keep it current:
 * one came within SAFETY_MS (PUSHED_MS, 0: never), or WAHA's event stream
 * is up since STREAM_SINCE_MS (0: down) and the data (FETCHED_MS) is not
 * older than the stream, so every change since has been pushed.
 */
int64_t cache_pushed_max_age(int64_t base_ms, int64_t safety_ms, int64_t pushed_ms,
                             int64_t fetched_ms, int64_t stream_since_ms, int64_t now_ms);

#endif
