/*
 * test_cache.c - unit tests for common/cache.c: the freshness verdict, Age
 * and max-age arithmetic, the ETag and If-None-Match rules, the fetcher's
 * refresh-ahead rule, and a session's max-age while pushed events (webhooks,
 * WAHA's event stream) keep it current.
 *
 * Why: these pure functions decide, for every request, whether a client gets
 * a cache hit, waits for the fetcher, or gets stale data; and, for the
 * fetcher, whether WAHA is called at all. A wrong boundary either serves data
 * older than max-age as fresh, makes clients wait on a fetcher that already
 * failed, or calls WAHA for entries nobody reads - exactly the load the
 * gateway exists to remove.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cache.h"

#define MAX_AGE 10000
#define STALE_LIMIT 86400000
#define T0 1000000 /* a monotonic "fetched at" far from 0 */

/*========================================================================
 * cache_judge
 */

static enum cache_verdict judge(bool has_data, int64_t fetched, int64_t attempt_done,
                                int64_t now, bool may_wait)
{
    struct cache_view v = {.has_data = has_data,
                           .fetched_mono_ms = fetched,
                           .attempt_done_ms = attempt_done};

    return cache_judge(&v, MAX_AGE, STALE_LIMIT, now, may_wait);
}

static void test_judge_fresh_below_max_age(void **state)
{
    (void)state;
    assert_int_equal(judge(true, T0, T0, T0, true), CACHE_FRESH);
    assert_int_equal(judge(true, T0, T0, T0 + 1, true), CACHE_FRESH);
    assert_int_equal(judge(true, T0, T0, T0 + MAX_AGE - 1, true), CACHE_FRESH);
    /* Fresh does not depend on may_wait. */
    assert_int_equal(judge(true, T0, T0, T0 + MAX_AGE - 1, false), CACHE_FRESH);
    /* A clock that reads earlier than fetched_at (age clamped to 0). */
    assert_int_equal(judge(true, T0, T0, T0 - 500, true), CACHE_FRESH);
}

static void test_judge_boundary_exactly_max_age(void **state)
{
    (void)state;
    /* At exactly max-age the data is no longer fresh. */
    assert_int_equal(judge(true, T0, T0, T0 + MAX_AGE, true), CACHE_WAIT);
    assert_int_equal(judge(true, T0, T0, T0 + MAX_AGE, false), CACHE_STALE);
}

static void test_judge_wait_when_expired_and_no_attempt_since(void **state)
{
    (void)state;
    /* The last attempt was the one that fetched the data. */
    assert_int_equal(judge(true, T0, T0, T0 + MAX_AGE + 5000, true), CACHE_WAIT);
    /* An attempt before expiry (e.g. a failed refresh-ahead). */
    assert_int_equal(judge(true, T0, T0 + MAX_AGE - 1, T0 + MAX_AGE + 1, true),
                     CACHE_WAIT);
    /* An attempt finished exactly at expiry is not "after" it. */
    assert_int_equal(judge(true, T0, T0 + MAX_AGE, T0 + MAX_AGE + 1, true), CACHE_WAIT);
    /* No data and no attempt ever: the first reader waits. */
    assert_int_equal(judge(false, 0, 0, T0, true), CACHE_WAIT);
}

static void test_judge_stale_after_failed_attempt(void **state)
{
    (void)state;
    /* The fetcher finished an attempt after expiry and the data is still
     * old: it failed, so waiting would only repeat that failure. */
    assert_int_equal(judge(true, T0, T0 + MAX_AGE + 1, T0 + MAX_AGE + 2, true),
                     CACHE_STALE);
    assert_int_equal(judge(true, T0, T0 + 3 * MAX_AGE, T0 + 3 * MAX_AGE, true),
                     CACHE_STALE);
}

static void test_judge_empty_after_failed_attempt(void **state)
{
    (void)state;
    assert_int_equal(judge(false, 0, T0, T0 + 1, true), CACHE_EMPTY);
    assert_int_equal(judge(false, 0, 1, T0, true), CACHE_EMPTY);
}

static void test_judge_may_wait_false(void **state)
{
    (void)state;
    /* A request that may not wait gets what is there, now. */
    assert_int_equal(judge(true, T0, T0, T0 + MAX_AGE + 5000, false), CACHE_STALE);
    assert_int_equal(judge(false, 0, 0, T0, false), CACHE_EMPTY);
    assert_int_equal(judge(true, T0, T0 + MAX_AGE + 1, T0 + MAX_AGE + 2, false),
                     CACHE_STALE);
}

static void test_judge_no_data_is_never_fresh(void **state)
{
    struct cache_view v = {
        .has_data = false, .fetched_mono_ms = T0, .attempt_done_ms = 0};

    (void)state;
    /* Even with a "fetched" time that would be young. */
    assert_int_not_equal(cache_judge(&v, MAX_AGE, STALE_LIMIT, T0 + 1, true),
                         CACHE_FRESH);
    assert_int_not_equal(cache_judge(&v, MAX_AGE, STALE_LIMIT, T0 + 1, false),
                         CACHE_FRESH);
}

/* While the breaker keeps the fetcher from calling, waiting cannot help. */
static void test_judge_no_wait_while_upstream_down(void **state)
{
    struct cache_view v = {.has_data = true,
                           .fetched_mono_ms = T0,
                           .attempt_done_ms = T0,
                           .upstream_down = true};
    struct cache_view empty = {.has_data = false, .upstream_down = true};

    (void)state;
    assert_int_equal(cache_judge(&v, MAX_AGE, STALE_LIMIT, T0 + MAX_AGE, true),
                     CACHE_STALE);
    assert_int_equal(cache_judge(&empty, MAX_AGE, STALE_LIMIT, T0, true), CACHE_EMPTY);
    /* Fresh data stays fresh whatever the breaker says. */
    assert_int_equal(cache_judge(&v, MAX_AGE, STALE_LIMIT, T0 + 1, true), CACHE_FRESH);
}

/* Stale data is served for backend.stale_if_error, then no more. */
static void test_judge_too_old_after_stale_limit(void **state)
{
    struct cache_view v = {
        .has_data = true, .fetched_mono_ms = T0, .attempt_done_ms = T0 + 2 * MAX_AGE};

    (void)state;
    assert_int_equal(cache_judge(&v, MAX_AGE, 60000, T0 + 60000, true), CACHE_STALE);
    assert_int_equal(cache_judge(&v, MAX_AGE, 60000, T0 + 60001, true), CACHE_TOO_OLD);
    assert_int_equal(cache_judge(&v, MAX_AGE, 0, T0 + MAX_AGE, false), CACHE_TOO_OLD);
}

/*========================================================================
 * cache_age_ms / cache_max_age_seconds
 */

static void test_age_never_negative(void **state)
{
    (void)state;
    assert_int_equal(cache_age_ms(T0, T0), 0);
    assert_int_equal(cache_age_ms(T0, T0 + 1234), 1234);
    assert_true(cache_age_ms(T0, T0 - 1) == 0);
    assert_true(cache_age_ms(T0, 0) == 0);
    assert_true(cache_age_ms(INT64_MAX, 0) == 0);
}

static void test_max_age_seconds(void **state)
{
    (void)state;
    assert_int_equal(cache_max_age_seconds(10000, 0), 10);
    assert_int_equal(cache_max_age_seconds(10000, 1), 9);    /* 9.999 s left */
    assert_int_equal(cache_max_age_seconds(10000, 1234), 8); /* 8.766 s left */
    assert_int_equal(cache_max_age_seconds(10000, 9000), 1);
    assert_int_equal(cache_max_age_seconds(10000, 9001), 0);
    assert_int_equal(cache_max_age_seconds(10000, 10000), 0);
    assert_int_equal(cache_max_age_seconds(10000, 50000), 0); /* never < 0 */
    assert_int_equal(cache_max_age_seconds(0, 0), 0);
}

/*========================================================================
 * cache_etag / cache_etag_matches
 */

static void test_etag_format(void **state)
{
    char tag[CACHE_ETAG_MAX];
    size_t n;

    (void)state;
    n = cache_etag(tag, 0x1234abcdULL, 3, 42, false);
    assert_string_equal(tag, "W/\"1234abcd-3-42\"");
    assert_int_equal(n, strlen(tag));

    /* The instance is printed as 8 hex digits (the low 32 bits). */
    n = cache_etag(tag, 0x7ULL, 0, 0, false);
    assert_string_equal(tag, "W/\"00000007-0-0\"");
    assert_int_equal(n, strlen(tag));

    n = cache_etag(tag, 0xdeadbeef00c0ffeeULL, 2, 7, false);
    assert_string_equal(tag, "W/\"00c0ffee-2-7\"");
    assert_int_equal(n, strlen(tag));
}

static void test_etag_stale_suffix(void **state)
{
    char fresh[CACHE_ETAG_MAX], stale[CACHE_ETAG_MAX];

    (void)state;
    cache_etag(fresh, 0xabcdef01ULL, 5, 9, false);
    cache_etag(stale, 0xabcdef01ULL, 5, 9, true);
    assert_string_equal(stale, "W/\"abcdef01-5-9-stale\"");
    assert_string_not_equal(fresh, stale);
    assert_false(cache_etag_matches(fresh, stale));
    assert_false(cache_etag_matches(stale, fresh));
}

static void test_etag_instance_distinguishes_runs(void **state)
{
    char a[CACHE_ETAG_MAX], b[CACHE_ETAG_MAX];

    (void)state;
    cache_etag(a, 0x11111111ULL, 2, 1, false);
    cache_etag(b, 0x22222222ULL, 2, 1, false);
    assert_string_not_equal(a, b);
    assert_false(cache_etag_matches(a, b));
}

static void test_etag_largest_values_fit(void **state)
{
    char tag[CACHE_ETAG_MAX];
    size_t n;

    (void)state;
    n = cache_etag(tag, UINT64_MAX, 65, UINT64_MAX, true);
    assert_true(n < CACHE_ETAG_MAX);
    assert_string_equal(tag, "W/\"ffffffff-65-18446744073709551615-stale\"");
}

static void test_etag_matches_exact(void **state)
{
    (void)state;
    assert_true(cache_etag_matches("W/\"1234abcd-3-42\"", "W/\"1234abcd-3-42\""));
    assert_false(cache_etag_matches("W/\"1234abcd-3-43\"", "W/\"1234abcd-3-42\""));
    assert_false(cache_etag_matches("W/\"1234abcd-3-4\"", "W/\"1234abcd-3-42\""));
    assert_false(cache_etag_matches("W/\"1234abcd-3-420\"", "W/\"1234abcd-3-42\""));
}

static void test_etag_matches_weak_vs_strong(void **state)
{
    (void)state;
    /* If-None-Match uses the weak comparison: W/ is ignored on both sides. */
    assert_true(cache_etag_matches("\"1234abcd-3-42\"", "W/\"1234abcd-3-42\""));
    assert_true(cache_etag_matches("W/\"1234abcd-3-42\"", "\"1234abcd-3-42\""));
    /* But the quotes are part of the tag. */
    assert_false(cache_etag_matches("1234abcd-3-42", "W/\"1234abcd-3-42\""));
}

static void test_etag_matches_list(void **state)
{
    const char *tag = "W/\"1234abcd-3-42\"";

    (void)state;
    assert_true(cache_etag_matches("W/\"x-1-1\", W/\"1234abcd-3-42\"", tag));
    assert_true(cache_etag_matches("W/\"1234abcd-3-42\",W/\"x-1-1\"", tag));
    assert_true(cache_etag_matches("  W/\"x-1-1\" ,\t W/\"1234abcd-3-42\"  ", tag));
    assert_true(cache_etag_matches("\"a\", \"b\", \"1234abcd-3-42\"", tag));
    assert_false(cache_etag_matches("W/\"x-1-1\", W/\"y-2-2\"", tag));
}

static void test_etag_matches_star(void **state)
{
    (void)state;
    assert_true(cache_etag_matches("*", "W/\"1234abcd-3-42\""));
    assert_true(cache_etag_matches(" * ", "W/\"1234abcd-3-42\""));
    assert_true(cache_etag_matches("W/\"x-1-1\", *", "W/\"1234abcd-3-42\""));
}

static void test_etag_matches_none(void **state)
{
    (void)state;
    assert_false(cache_etag_matches(NULL, "W/\"1234abcd-3-42\""));
    assert_false(cache_etag_matches("", "W/\"1234abcd-3-42\""));
    assert_false(cache_etag_matches(" , ", "W/\"1234abcd-3-42\""));
    assert_false(cache_etag_matches("W/", "W/\"1234abcd-3-42\""));
    assert_false(cache_etag_matches("\"*\"", "W/\"1234abcd-3-42\""));
}

/*========================================================================
 * cache_refresh_due
 */

#define PERIOD 10000

static void test_refresh_due_when_wanted_after_attempt(void **state)
{
    (void)state;
    /* A reader waits (wanted after the last attempt): due, data or not. */
    assert_true(cache_refresh_due(false, 0, 0, T0 + 1, T0, PERIOD, T0 + 2));
    assert_true(cache_refresh_due(true, T0, 0, T0 + 1, T0, PERIOD, T0 + 2));
    /* Even when the data is young and nobody read it since. */
    assert_true(cache_refresh_due(true, T0, 0, T0 + 1, T0, PERIOD, T0 + 1));
    /* Wanted before (or at) the last attempt: that attempt answered it. */
    assert_false(cache_refresh_due(false, 0, 0, T0, T0, PERIOD, T0 + 2));
    assert_false(cache_refresh_due(false, 0, 0, T0 - 1, T0, PERIOD, T0 + 2));
}

static void test_refresh_not_hot_never_due(void **state)
{
    (void)state;
    /* Nobody read it since it was fetched: never due, however old. */
    assert_false(cache_refresh_due(true, T0, T0 - 1, 0, T0, PERIOD, T0 + PERIOD));
    assert_false(cache_refresh_due(true, T0, T0 - 1, 0, T0, PERIOD, T0 + 1000 * PERIOD));
    assert_false(cache_refresh_due(true, T0, 0, 0, T0, PERIOD, INT64_MAX / 2));
}

static void test_refresh_hot_at_80_percent_due(void **state)
{
    int64_t ahead = PERIOD * CACHE_REFRESH_AHEAD_PERMILLE / 1000;

    (void)state;
    assert_int_equal(ahead, 8000);
    /* Read after the fetch (hot) and 80 % of the period old. */
    assert_true(cache_refresh_due(true, T0, T0 + 100, 0, T0, PERIOD, T0 + ahead));
    assert_true(cache_refresh_due(true, T0, T0 + 100, 0, T0, PERIOD, T0 + PERIOD));
    assert_true(cache_refresh_due(true, T0, T0 + 100, 0, T0, PERIOD, T0 + 5 * PERIOD));
    /* A read at the very millisecond of the fetch counts as hot. */
    assert_true(cache_refresh_due(true, T0, T0, 0, T0, PERIOD, T0 + ahead));
}

static void test_refresh_hot_below_80_percent_not_due(void **state)
{
    int64_t ahead = PERIOD * CACHE_REFRESH_AHEAD_PERMILLE / 1000;

    (void)state;
    assert_false(cache_refresh_due(true, T0, T0 + 100, 0, T0, PERIOD, T0 + ahead - 1));
    assert_false(cache_refresh_due(true, T0, T0 + 100, 0, T0, PERIOD, T0 + 1));
    assert_false(cache_refresh_due(true, T0, T0 + 100, 0, T0, PERIOD, T0));
}

static void test_refresh_no_data_not_wanted_not_due(void **state)
{
    (void)state;
    assert_false(cache_refresh_due(false, 0, 0, 0, 0, PERIOD, T0));
    assert_false(cache_refresh_due(false, 0, T0, 0, 0, PERIOD, T0 + PERIOD));
    assert_false(cache_refresh_due(false, 0, T0, T0 - 5, T0, PERIOD, T0 + PERIOD));
}

/*========================================================================
 * cache_pushed_max_age
 */

#define BASE 10000
#define SAFETY 300000

static void test_pushed_recently(void **state)
{
    (void)state;
    /* Nothing pushed (0: never): the base. */
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, 0, T0, 0, T0 + 1), BASE);
    /* A status pushed within SAFETY: the data is kept current by pushes. */
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, T0, T0 - 1, 0, T0), SAFETY);
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, T0, T0 - 1, 0, T0 + SAFETY - 1),
                     SAFETY);
    /* SAFETY after the last push: back to polling at the base. */
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, T0, T0 - 1, 0, T0 + SAFETY),
                     BASE);
}

static void test_pushed_stream_up(void **state)
{
    (void)state;
    /* The stream is up since before (or when) the data was fetched. */
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, 0, T0, T0 - 1, T0 + 5), SAFETY);
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, 0, T0, T0, T0 + 5), SAFETY);
    /* However long ago: the stream pushes every change. */
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, 0, T0, 1, T0 + 100 * SAFETY),
                     SAFETY);
    /* Data older than the stream: what changed before it came up may be
     * missing. */
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, 0, T0, T0 + 1, T0 + 5), BASE);
    /* Stream down (0). */
    assert_int_equal(cache_pushed_max_age(BASE, SAFETY, 0, T0, 0, T0 + 5), BASE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_fresh_below_max_age),
        cmocka_unit_test(test_judge_boundary_exactly_max_age),
        cmocka_unit_test(test_judge_wait_when_expired_and_no_attempt_since),
        cmocka_unit_test(test_judge_stale_after_failed_attempt),
        cmocka_unit_test(test_judge_empty_after_failed_attempt),
        cmocka_unit_test(test_judge_may_wait_false),
        cmocka_unit_test(test_judge_no_data_is_never_fresh),
        cmocka_unit_test(test_judge_no_wait_while_upstream_down),
        cmocka_unit_test(test_judge_too_old_after_stale_limit),
        cmocka_unit_test(test_age_never_negative),
        cmocka_unit_test(test_max_age_seconds),
        cmocka_unit_test(test_etag_format),
        cmocka_unit_test(test_etag_stale_suffix),
        cmocka_unit_test(test_etag_instance_distinguishes_runs),
        cmocka_unit_test(test_etag_largest_values_fit),
        cmocka_unit_test(test_etag_matches_exact),
        cmocka_unit_test(test_etag_matches_weak_vs_strong),
        cmocka_unit_test(test_etag_matches_list),
        cmocka_unit_test(test_etag_matches_star),
        cmocka_unit_test(test_etag_matches_none),
        cmocka_unit_test(test_refresh_due_when_wanted_after_attempt),
        cmocka_unit_test(test_refresh_not_hot_never_due),
        cmocka_unit_test(test_refresh_hot_at_80_percent_due),
        cmocka_unit_test(test_refresh_hot_below_80_percent_not_due),
        cmocka_unit_test(test_refresh_no_data_not_wanted_not_due),
        cmocka_unit_test(test_pushed_recently),
        cmocka_unit_test(test_pushed_stream_up),
    };

    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
