/*
 * schedule.c - the fetcher's rules for what to ask WAHA next (see
 * schedule.h). No state and no clock: the fetcher passes in what it read
 * from the region and its own refresh state, and the unit tests do the
 * same (tests/unit/test_schedule.c).
 */
#include "schedule.h"

#include "cache.h"

const char *const target_kind_names[TARGET_KIND_COUNT] = {
    [TARGET_HEALTH] = "health",
    [TARGET_LIST] = "list",
    [TARGET_DETAILS] = "details",
    [TARGET_QR] = "qr",
    [TARGET_SERVER] = "server",
};

enum due schedule_demand_due(bool has_data, int64_t fetched_ms, const struct demand_view *dm,
                             int64_t period_ms, int64_t now)
{
    if (dm->wanted_ms > dm->attempt_done_ms)
        return DUE_WANTED;
    return cache_refresh_due(has_data, fetched_ms, dm->last_read_ms, dm->wanted_ms,
                             dm->attempt_done_ms, period_ms, now)
               ? DUE_AHEAD
               : DUE_NO;
}

enum due schedule_gate(const struct refresh *r, enum due due, int64_t now)
{
    if (r->in_flight)
        return DUE_NO;
    if (r->retry_at_ms != 0)
        return now >= r->retry_at_ms ? DUE_RETRY : DUE_NO;
    if (now < r->not_before_ms)
        return DUE_NO;
    return due;
}

enum due schedule_more_urgent(enum due a, enum due b)
{
    if (a == DUE_NO)
        return b;
    if (b == DUE_NO)
        return a;
    return a < b ? a : b;
}

int64_t schedule_session_period(const struct config *cfg, int64_t pushed_ms,
                                int64_t fetched_ms, int64_t stream_since_ms, int64_t now)
{
    int64_t base = cfg->backend.status_cache_duration < cfg->backend.session_cache_duration
                       ? cfg->backend.status_cache_duration
                       : cfg->backend.session_cache_duration;

    return cache_pushed_max_age(base, cfg->webhook.safety_interval, pushed_ms, fetched_ms,
                                stream_since_ms, now);
}

enum due schedule_qr_due(const struct refresh *r, const struct qr_view *qr,
                         const struct demand_view *dm, int64_t period_ms, int64_t now)
{
    int64_t qr_period = period_ms < SCHEDULE_QR_PERIOD_MS ? period_ms : SCHEDULE_QR_PERIOD_MS;
    int64_t read = dm->last_read_ms;
    enum due due = DUE_NO;

    if (!qr->scan)
        return DUE_NO;
    /* Asked for, or a new code whose image is still to come. */
    if (dm->wanted_ms > dm->attempt_done_ms || (qr->has_value && !qr->png_current))
        due = DUE_WANTED;
    else if (read >= now - period_ms &&
             (!qr->has_value || now - qr->fetched_ms >= qr_period))
        due = DUE_AHEAD;
    return schedule_gate(r, due, now);
}

int64_t schedule_backoff_ms(int failures, int64_t first_ms, int64_t period_ms)
{
    int64_t delay = first_ms;

    for (int i = 1; i < failures && delay < period_ms; i++)
        delay *= 2;
    return delay > period_ms ? period_ms : delay;
}
