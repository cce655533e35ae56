/*
 * test_schedule.c - unit tests for server/fetcher/schedule.c, the fetcher's
 * rules for what to ask WAHA next: whether a target's demand makes it due
 * (a reader waits, or readers keep reading it and it reached 80% of its
 * period), what a call out, a pending retry and the backoff after failures
 * make of that, the session list's urgency as the most urgent of its
 * sessions', how long a session's data stays fresh (shorter while nothing
 * pushes it, webhook.safety_interval while webhooks or WAHA's event stream
 * keep it current), when a QR code is asked for, and the backoff delays.
 *
 * Why: these rules are the whole of the gateway's promise to WAHA (calls
 * flat in the number of sessions and readers; none for what nobody reads)
 * and to its readers (fresh data without waiting). A target due while
 * nobody reads it, or during a backoff, is load the gateway exists to
 * spare; one not due while a reader waits leaves that reader hanging; a QR
 * asked for outside SCAN_QR_CODE waits up to 15 s for WAHA's 422 (docs/
 * waha-api.md 4, 9).
 *
 * The functions are pure: every time is an explicit monotonic millisecond
 * value, and the configuration is config_defaults() with explicit changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "schedule.h"

#define T0 10000000 /* a monotonic "now" far from 0 */
#define PERIOD 10000
#define AHEAD (PERIOD * CACHE_REFRESH_AHEAD_PERMILLE / 1000) /* 8000 */

static struct config cfg;

static struct demand_view dv(int64_t last_read, int64_t wanted, int64_t attempt_done)
{
    return (struct demand_view){
        .last_read_ms = last_read, .wanted_ms = wanted, .attempt_done_ms = attempt_done};
}

/*========================================================================
 * schedule_demand_due
 */

static void test_demand_wanted(void **state)
{
    struct demand_view dm;

    (void)state;
    /* A reader waits (wanted after the last attempt): due at once, with or
     * without data, whatever its age. */
    dm = dv(0, T0, T0 - 1);
    assert_int_equal(schedule_demand_due(false, 0, &dm, PERIOD, T0), DUE_WANTED);
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0), DUE_WANTED);
    dm = dv(0, 1, 0);
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0 + 1), DUE_WANTED);
    /* Wanted before (or as) the last attempt ended: that attempt answered
     * the reader. */
    dm = dv(0, T0, T0);
    assert_int_equal(schedule_demand_due(false, 0, &dm, PERIOD, T0 + 5), DUE_NO);
    dm = dv(0, T0 - 1, T0);
    assert_int_equal(schedule_demand_due(false, 0, &dm, PERIOD, T0 + 5), DUE_NO);
}

static void test_demand_ahead(void **state)
{
    struct demand_view dm = dv(T0 + 100, 0, T0);

    (void)state;
    /* Read since it was fetched and since the last attempt: due at 80% of
     * its period, and after. */
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0 + AHEAD - 1), DUE_NO);
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0 + AHEAD), DUE_AHEAD);
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0 + 3 * PERIOD),
                     DUE_AHEAD);
    /* The period decides: a shorter one is due sooner. */
    assert_int_equal(schedule_demand_due(true, T0, &dm, 1000, T0 + 800), DUE_AHEAD);
}

static void test_demand_nothing(void **state)
{
    struct demand_view dm;

    (void)state;
    /* Nobody read it since it was fetched: never due, however old. */
    dm = dv(T0 - 1, 0, T0);
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0 + 100 * PERIOD),
                     DUE_NO);
    dm = dv(0, 0, 0);
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0 + 100 * PERIOD),
                     DUE_NO);
    /* Read, but not since the last attempt (which failed): not again until
     * someone reads it again, so a failing WAHA is not called for it. */
    dm = dv(T0 + 100, 0, T0 + 200);
    assert_int_equal(schedule_demand_due(true, T0, &dm, PERIOD, T0 + PERIOD), DUE_NO);
    /* No data and no reader waiting: nothing to refresh. */
    dm = dv(T0 + 100, 0, 0);
    assert_int_equal(schedule_demand_due(false, 0, &dm, PERIOD, T0 + PERIOD), DUE_NO);
}

/*========================================================================
 * schedule_gate and schedule_backoff_ms
 */

static void test_gate(void **state)
{
    struct refresh r;
    static const enum due dues[] = {DUE_NO, DUE_WANTED, DUE_AHEAD};

    (void)state;
    for (size_t k = 0; k < sizeof(dues) / sizeof(dues[0]); k++) {
        /* Nothing in the way: the demand decides. */
        memset(&r, 0, sizeof(r));
        assert_int_equal(schedule_gate(&r, dues[k], T0), dues[k]);
        /* A call is out: nothing, not even a retry. */
        r.in_flight = true;
        r.retry_at_ms = T0 - 1;
        assert_int_equal(schedule_gate(&r, dues[k], T0), DUE_NO);
        /* A retry pending: nothing before its time, then the retry, whatever
         * the demand (the refresh it belongs to was wanted). */
        memset(&r, 0, sizeof(r));
        r.retry_at_ms = T0 + 500;
        assert_int_equal(schedule_gate(&r, dues[k], T0), DUE_NO);
        assert_int_equal(schedule_gate(&r, dues[k], T0 + 499), DUE_NO);
        assert_int_equal(schedule_gate(&r, dues[k], T0 + 500), DUE_RETRY);
        assert_int_equal(schedule_gate(&r, dues[k], T0 + 9999), DUE_RETRY);
        /* The retry's time has come even during a backoff. */
        r.not_before_ms = T0 + 100000;
        assert_int_equal(schedule_gate(&r, dues[k], T0 + 500), DUE_RETRY);
        /* A backoff after failures: nothing until it ends, a reader waiting
         * or not. */
        memset(&r, 0, sizeof(r));
        r.failures = 3;
        r.not_before_ms = T0 + 2000;
        assert_int_equal(schedule_gate(&r, dues[k], T0), DUE_NO);
        assert_int_equal(schedule_gate(&r, dues[k], T0 + 1999), DUE_NO);
        assert_int_equal(schedule_gate(&r, dues[k], T0 + 2000), dues[k]);
    }
}

static void test_backoff(void **state)
{
    (void)state;
    /* FIRST_MS, doubling per failure... */
    assert_int_equal(schedule_backoff_ms(1, 1000, 60000), 1000);
    assert_int_equal(schedule_backoff_ms(2, 1000, 60000), 2000);
    assert_int_equal(schedule_backoff_ms(3, 1000, 60000), 4000);
    assert_int_equal(schedule_backoff_ms(6, 1000, 60000), 32000);
    /* ...at most the period, and never past it however many failures. */
    assert_int_equal(schedule_backoff_ms(7, 1000, 60000), 60000);
    assert_int_equal(schedule_backoff_ms(1000, 1000, 60000), 60000);
    assert_int_equal(schedule_backoff_ms(2147483647, 1000, 60000), 60000);
    assert_int_equal(schedule_backoff_ms(3, 1000, 3000), 3000);
    /* A first delay longer than the period is the period. */
    assert_int_equal(schedule_backoff_ms(1, 5000, 3000), 3000);
    /* No failure yet: the first delay. */
    assert_int_equal(schedule_backoff_ms(0, 1000, 60000), 1000);
}

/*========================================================================
 * The list's urgency
 */

static void test_more_urgent(void **state)
{
    static const enum due all[] = {DUE_NO, DUE_RETRY, DUE_WANTED, DUE_AHEAD};

    (void)state;
    /* Nothing is the least urgent: anything wins over it. */
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(schedule_more_urgent(DUE_NO, all[k]), all[k]);
        assert_int_equal(schedule_more_urgent(all[k], DUE_NO), all[k]);
        assert_int_equal(schedule_more_urgent(all[k], all[k]), all[k]);
    }
    /* A retry before a waiting reader before a refresh ahead, either way
     * round. */
    assert_int_equal(schedule_more_urgent(DUE_WANTED, DUE_AHEAD), DUE_WANTED);
    assert_int_equal(schedule_more_urgent(DUE_AHEAD, DUE_WANTED), DUE_WANTED);
    assert_int_equal(schedule_more_urgent(DUE_RETRY, DUE_WANTED), DUE_RETRY);
    assert_int_equal(schedule_more_urgent(DUE_AHEAD, DUE_RETRY), DUE_RETRY);
}

/* The session list stands for all its sessions: its urgency is the most
 * urgent of theirs, folded as the fetcher folds them (a list call is due
 * when any one session's data is, and only then). */
static enum due fold(const enum due *dues, size_t n)
{
    enum due list = DUE_NO;

    for (size_t k = 0; k < n; k++)
        list = schedule_more_urgent(list, dues[k]);
    return list;
}

static void test_list_urgency(void **state)
{
    enum due sessions[1000];
    struct demand_view read = dv(T0 + 100, 0, T0), idle = dv(0, 0, T0),
                       waiting = dv(0, T0 + 50, T0);

    (void)state;
    /* A thousand sessions nobody reads: no list call. */
    for (int k = 0; k < 1000; k++)
        sessions[k] = schedule_demand_due(true, T0, &idle, PERIOD, T0 + 5 * PERIOD);
    assert_int_equal(fold(sessions, 1000), DUE_NO);
    /* One of them read and near its expiry: the list is due ahead. */
    sessions[700] = schedule_demand_due(true, T0, &read, PERIOD, T0 + AHEAD);
    assert_int_equal(fold(sessions, 1000), DUE_AHEAD);
    /* Another one's reader waits: the list is wanted, whatever the order. */
    sessions[3] = schedule_demand_due(true, T0, &waiting, PERIOD, T0 + 60);
    assert_int_equal(fold(sessions, 1000), DUE_WANTED);
    sessions[3] = DUE_NO;
    sessions[999] = DUE_WANTED;
    assert_int_equal(fold(sessions, 1000), DUE_WANTED);
    assert_int_equal(fold(sessions, 0), DUE_NO);
}

/*========================================================================
 * schedule_session_period
 */

static void test_session_period(void **state)
{
    (void)state;
    config_defaults(&cfg);
    cfg.backend.status_cache_duration = 10000;
    cfg.backend.session_cache_duration = 20000;
    cfg.webhook.safety_interval = 300000;
    /* Nothing pushed: the shorter of the two cache durations. */
    assert_int_equal(schedule_session_period(&cfg, 0, T0, 0, T0 + 1), 10000);
    cfg.backend.status_cache_duration = 30000;
    assert_int_equal(schedule_session_period(&cfg, 0, T0, 0, T0 + 1), 20000);

    /* A status pushed within safety_interval keeps the data current: the
     * list is asked only every safety_interval. */
    assert_int_equal(schedule_session_period(&cfg, T0, T0 - 5000, 0, T0 + 1000), 300000);
    assert_int_equal(schedule_session_period(&cfg, T0, T0 - 5000, 0, T0 + 299999),
                     300000);
    /* ...and no longer after it. */
    assert_int_equal(schedule_session_period(&cfg, T0, T0 - 5000, 0, T0 + 300000), 20000);

    /* WAHA's event stream up since before the data was fetched: every
     * change since has been pushed. */
    assert_int_equal(schedule_session_period(&cfg, 0, T0, T0 - 1, T0 + 1000), 300000);
    assert_int_equal(schedule_session_period(&cfg, 0, T0, T0, T0 + 1000), 300000);
    /* Data older than the stream (changes before it may be missing), or
     * the stream down: the short period. */
    assert_int_equal(schedule_session_period(&cfg, 0, T0, T0 + 1, T0 + 1000), 20000);
    assert_int_equal(schedule_session_period(&cfg, 0, T0, 0, T0 + 1000), 20000);
}

/*========================================================================
 * schedule_qr_due
 */

static void test_qr_only_while_scan(void **state)
{
    struct refresh r = {0};
    struct qr_view qr = {.scan = false};
    struct demand_view wanted = dv(T0, T0, 0);

    (void)state;
    /* Not SCAN_QR_CODE: never, even with a reader waiting or an image
     * missing (WAHA would answer 422 after up to 15 s). */
    assert_int_equal(schedule_qr_due(&r, &qr, &wanted, PERIOD, T0 + 1), DUE_NO);
    qr.has_value = true;
    assert_int_equal(schedule_qr_due(&r, &qr, &wanted, PERIOD, T0 + 1), DUE_NO);
    /* SCAN_QR_CODE and wanted: at once. */
    qr = (struct qr_view){.scan = true};
    assert_int_equal(schedule_qr_due(&r, &qr, &wanted, PERIOD, T0 + 1), DUE_WANTED);
}

static void test_qr_image_missing(void **state)
{
    struct refresh r = {0};
    struct qr_view qr = {
        .scan = true, .has_value = true, .png_current = false, .fetched_ms = T0};
    struct demand_view unread = dv(0, 0, T0);

    (void)state;
    /* A new code whose image is still to come: at once, read or not. */
    assert_int_equal(schedule_qr_due(&r, &qr, &unread, PERIOD, T0 + 1), DUE_WANTED);
    /* But not while the call for it is out. */
    r.in_flight = true;
    assert_int_equal(schedule_qr_due(&r, &qr, &unread, PERIOD, T0 + 1), DUE_NO);
    /* The image there: nothing for a session nobody reads. */
    r.in_flight = false;
    qr.png_current = true;
    assert_int_equal(schedule_qr_due(&r, &qr, &unread, PERIOD, T0 + 10 * PERIOD), DUE_NO);
}

static void test_qr_period_while_read(void **state)
{
    struct refresh r = {0};
    struct qr_view qr = {
        .scan = true, .has_value = true, .png_current = true, .fetched_ms = T0};
    struct demand_view dm;
    int64_t period = 60000; /* longer than WAHA's 20 s rotation */

    (void)state;
    /* Read within the period: again every SCHEDULE_QR_PERIOD_MS (WAHA
     * shows a new code every 20 s). */
    dm = dv(T0 + 5000, 0, T0);
    assert_int_equal(
        schedule_qr_due(&r, &qr, &dm, period, T0 + SCHEDULE_QR_PERIOD_MS - 1), DUE_NO);
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, period, T0 + SCHEDULE_QR_PERIOD_MS),
                     DUE_AHEAD);
    /* A shorter period than 20 s is the QR's period too. */
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, 8000, T0 + 8000), DUE_AHEAD);
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, 8000, T0 + 7999), DUE_NO);
    /* No code yet and read: at once (the reader will ask for it). */
    qr.has_value = false;
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, period, T0 + 5001), DUE_AHEAD);
    /* Read longer ago than the period: nobody is looking any more. */
    qr.has_value = true;
    dm = dv(T0, 0, T0);
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, period, T0 + period), DUE_AHEAD);
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, period, T0 + period + 1), DUE_NO);
    qr.has_value = false;
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, period, T0 + period + 1), DUE_NO);
    /* Never read at all. */
    dm = dv(0, 0, 0);
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, period, T0), DUE_NO);
}

static void test_qr_gated(void **state)
{
    struct refresh r = {0};
    struct qr_view qr = {.scan = true};
    struct demand_view dm = dv(T0, T0 + 1, T0);

    (void)state;
    /* Backoff after failures: not even a waiting reader's. */
    r.not_before_ms = T0 + 1000;
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, PERIOD, T0 + 2), DUE_NO);
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, PERIOD, T0 + 1000), DUE_WANTED);
    /* A pending retry comes when its time does. */
    r = (struct refresh){.retry_at_ms = T0 + 300};
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, PERIOD, T0 + 299), DUE_NO);
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, PERIOD, T0 + 300), DUE_RETRY);
    /* Out of SCAN_QR_CODE, a pending retry is dropped too. */
    qr.scan = false;
    assert_int_equal(schedule_qr_due(&r, &qr, &dm, PERIOD, T0 + 300), DUE_NO);
}

static void test_target_names(void **state)
{
    (void)state;
    assert_string_equal(target_kind_names[TARGET_HEALTH], "health");
    assert_string_equal(target_kind_names[TARGET_LIST], "list");
    assert_string_equal(target_kind_names[TARGET_DETAILS], "details");
    assert_string_equal(target_kind_names[TARGET_QR], "qr");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demand_wanted),
        cmocka_unit_test(test_demand_ahead),
        cmocka_unit_test(test_demand_nothing),
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_more_urgent),
        cmocka_unit_test(test_list_urgency),
        cmocka_unit_test(test_session_period),
        cmocka_unit_test(test_qr_only_while_scan),
        cmocka_unit_test(test_qr_image_missing),
        cmocka_unit_test(test_qr_period_while_read),
        cmocka_unit_test(test_qr_gated),
        cmocka_unit_test(test_target_names),
    };

    return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
