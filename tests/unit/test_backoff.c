/*
 * test_backoff.c - unit tests for server/backoff.c: the retry delay with
 * full jitter, and the circuit breaker (closed, open, half-open) with the
 * counts it publishes in the region header.
 *
 * Why: the fetcher is the only process that calls WAHA, and these two
 * functions decide how hard it calls a WAHA that fails. A retry delay
 * beyond its cap (or an overflow at a large attempt number) stalls a
 * refresh; a delay of the wrong shape hammers WAHA. A breaker that opens
 * one failure too early or too late, lets two probes out at once, forgets
 * to lengthen its open period (frontend.backoff_multiplier, capped at
 * circuit.max_open_duration, docs/design.md "waha.ini") or never closes again
 * would either flood a sick WAHA or stop the gateway from noticing that it
 * recovered; and the status object's upstream.circuit and the stats'
 * circuit.opens are read from the header atomics checked here.
 *
 * Time is passed in explicitly, so every test is deterministic. The region
 * used for the published atomics has a name unique to this process
 * ("/wgunit-<pid>-<tag>") and is always destroyed; log lines go to a
 * temporary file, which some tests read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backoff.h"
#include "config.h"
#include "log.h"
#include "region.h"

static struct config *cfg;
static struct region reg;
static char shm_name[64] = "";
static char log_path[64] = "";

static int group_setup(void **state)
{
    int fd;

    (void)state;
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return -1;
    snprintf(log_path, sizeof(log_path), "/tmp/wgunit-backoff-log-XXXXXX");
    fd = mkstemp(log_path);
    if (fd < 0)
        return -1;
    close(fd);
    log_set_level(LOG_LEVEL_DEBUG);
    return log_open(log_path);
}

static int group_teardown(void **state)
{
    (void)state;
    log_open(NULL);
    unlink(log_path);
    free(cfg);
    return 0;
}

/* Defaults, then a small breaker: 3 failures open it for 1 s, x2, up to 5 s. */
static int test_setup(void **state)
{
    int fd;

    (void)state;
    config_defaults(cfg);
    cfg->circuit.failure_threshold = 3;
    cfg->circuit.open_duration = 1000;
    cfg->circuit.max_open_duration = 5000;
    cfg->frontend.backoff_multiplier = 2;
    memset(&reg, 0, sizeof(reg));
    reg.fd = -1;
    shm_name[0] = '\0';
    fd = open(log_path, O_WRONLY | O_TRUNC);
    if (fd >= 0)
        close(fd);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    if (reg.base != NULL)
        region_destroy(&reg);
    region_close_fd(&reg);
    if (shm_name[0] != '\0')
        shm_unlink(shm_name); /* already gone unless a test failed */
    return 0;
}

static struct region_header *make_region(const char *tag)
{
    snprintf(shm_name, sizeof(shm_name), "/wgunit-%d-%s", (int)getpid(), tag);
    /* The breaker publishes in the header only: one session is enough. */
    assert_int_equal(region_create(&reg, shm_name, 1), 0);
    return region_header(&reg);
}

/* How many lines of the log contain NEEDLE. */
static int log_count(const char *needle)
{
    char buf[16384];
    FILE *fp = fopen(log_path, "r");
    size_t n;
    int count = 0;

    if (fp == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    for (char *p = strstr(buf, needle); p != NULL; p = strstr(p + 1, needle))
        count++;
    return count;
}

/* The cap of retry ATTEMPT, computed independently: min(2000, 200 * 2^a). */
static int64_t expected_cap(int attempt)
{
    int64_t cap = BACKOFF_RETRY_BASE_MS;

    for (int i = 0; i < attempt; i++) {
        cap *= 2;
        if (cap >= BACKOFF_RETRY_CAP_MS)
            return BACKOFF_RETRY_CAP_MS;
    }
    return cap;
}

/*========================================================================
 * backoff_retry_delay_ms
 */

static void test_retry_constants(void **state)
{
    (void)state;
    /* The values the header documents; the tests below rely on them. */
    assert_int_equal(BACKOFF_RETRY_BASE_MS, 200);
    assert_int_equal(BACKOFF_RETRY_CAP_MS, 2000);
    assert_int_equal(expected_cap(0), 200);
    assert_int_equal(expected_cap(1), 400);
    assert_int_equal(expected_cap(3), 1600);
    assert_int_equal(expected_cap(4), 2000);
    assert_int_equal(expected_cap(10), 2000);
}

static void test_retry_after_wins(void **state)
{
    static const int64_t waits[] = {1, 500, 1999, 2000, 2001, 30000,
                                    BACKOFF_RETRY_AFTER_MAX_MS,
                                    /* Longer ones are returned as they are: the
                                     * caller ends the refresh instead. */
                                    BACKOFF_RETRY_AFTER_MAX_MS + 1, INT64_MAX / 2};
    static const long randoms[] = {0, 1, 1999, 2147483647L};

    (void)state;
    for (size_t w = 0; w < sizeof(waits) / sizeof(waits[0]); w++)
        for (int attempt = 0; attempt <= 10; attempt++)
            for (size_t r = 0; r < sizeof(randoms) / sizeof(randoms[0]); r++)
                assert_int_equal(backoff_retry_delay_ms(attempt, waits[w], randoms[r]),
                                 waits[w]);
}

static void test_retry_jitter_bounds(void **state)
{
    (void)state;
    for (int attempt = 0; attempt <= 10; attempt++) {
        int64_t cap = expected_cap(attempt);
        const long randoms[] = {0,
                                1,
                                (long)cap - 1,
                                (long)cap,
                                (long)cap + 1,
                                (long)cap + 2,
                                2 * (long)cap + 1,
                                12345,
                                LONG_MAX / 2,
                                LONG_MAX,
                                2147483647L,
                                1073741824L};

        for (size_t r = 0; r < sizeof(randoms) / sizeof(randoms[0]); r++) {
            /* retry_after 0 and negative both mean "WAHA gave none". */
            for (int64_t after = -1; after <= 0; after++) {
                int64_t d = backoff_retry_delay_ms(attempt, after, randoms[r]);
                if (d < 0 || d > cap)
                    fail_msg("attempt %d random %ld retry_after %lld: %lld not in "
                             "[0, %lld]",
                             attempt, randoms[r], (long long)after, (long long)d,
                             (long long)cap);
            }
        }
        /* Random 0 is no wait at all. */
        assert_int_equal(backoff_retry_delay_ms(attempt, 0, 0), 0);
    }
}

static void test_retry_jitter_covers_the_range(void **state)
{
    (void)state;
    /* "Full jitter": every value of [0, cap] is reachable, both ends included,
     * and nothing else is. */
    for (int attempt = 0; attempt <= 5; attempt++) {
        int64_t cap = expected_cap(attempt);
        static bool hit[BACKOFF_RETRY_CAP_MS + 1];
        int64_t lo = INT64_MAX, hi = -1;

        memset(hit, 0, sizeof(hit));
        for (long random = 0; random < 3 * (cap + 1); random++) {
            int64_t d = backoff_retry_delay_ms(attempt, 0, random);
            assert_true(d >= 0 && d <= cap);
            hit[d] = true;
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        assert_int_equal(lo, 0);
        assert_int_equal(hi, cap);
        for (int64_t v = 0; v <= cap; v++)
            if (!hit[v])
                fail_msg("attempt %d: delay %lld never produced", attempt, (long long)v);
    }
}

static void test_retry_large_attempts(void **state)
{
    static const int attempts[] = {11, 12, 30, 31,   32,          62,
                                   63, 64, 65, 1000, INT_MAX - 1, INT_MAX};
    static const long randoms[] = {0,    1,           1999,         2000,
                                   2001, 2147483647L, LONG_MAX / 2, LONG_MAX};

    (void)state;
    for (size_t a = 0; a < sizeof(attempts) / sizeof(attempts[0]); a++) {
        for (size_t r = 0; r < sizeof(randoms) / sizeof(randoms[0]); r++) {
            int64_t d = backoff_retry_delay_ms(attempts[a], 0, randoms[r]);
            if (d < 0 || d > BACKOFF_RETRY_CAP_MS)
                fail_msg("attempt %d random %ld: %lld", attempts[a], randoms[r],
                         (long long)d);
        }
        /* The cap itself is still reachable: the bound did not collapse. */
        assert_int_equal(backoff_retry_delay_ms(attempts[a], 0, BACKOFF_RETRY_CAP_MS),
                         BACKOFF_RETRY_CAP_MS);
    }
}

static void test_retry_negative_attempt(void **state)
{
    (void)state;
    /* Not a documented input; it behaves as the first retry (cap 200). */
    for (long random = 0; random < 1000; random++) {
        int64_t d = backoff_retry_delay_ms(-1, 0, random);
        assert_true(d >= 0 && d <= BACKOFF_RETRY_BASE_MS);
    }
    assert_int_equal(backoff_retry_delay_ms(INT_MIN, 0, 200), 200);
}

/*========================================================================
 * The breaker
 */

static void fail_n(struct breaker *b, int n, int64_t now)
{
    for (int i = 0; i < n; i++)
        breaker_record(b, false, now);
}

static void test_breaker_init(void **state)
{
    struct breaker b;

    (void)state;
    memset(&b, 0xA5, sizeof(b));
    breaker_init(&b, cfg, NULL);
    assert_ptr_equal(b.cfg, cfg);
    assert_null(b.published);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.open_ms, 1000);
    assert_false(b.probe_out);
    assert_int_equal(b.opens, 0);
    assert_int_equal(b.transitions, 0);
}

static void test_breaker_closed_allows(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, cfg, NULL);
    for (int64_t now = 1000; now < 1100; now++)
        assert_int_equal(breaker_ask(&b, now), BREAKER_ALLOW);
    /* Successes keep it closed and change nothing. */
    for (int i = 0; i < 10; i++)
        breaker_record(&b, true, 2000 + i);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    assert_int_equal(b.transitions, 0);
    assert_int_equal(breaker_ask(&b, 3000), BREAKER_ALLOW);
}

static void test_breaker_opens_at_threshold(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, cfg, NULL);
    /* threshold - 1 failures: still closed. */
    fail_n(&b, 2, 1000);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    assert_int_equal(b.failures, 2);
    assert_int_equal(breaker_ask(&b, 1000), BREAKER_ALLOW);
    assert_int_equal(b.opens, 0);

    /* A success in between resets the count. */
    breaker_record(&b, true, 1001);
    assert_int_equal(b.failures, 0);
    fail_n(&b, 2, 1002);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    assert_int_equal(breaker_ask(&b, 1002), BREAKER_ALLOW);

    /* The threshold-th consecutive failure opens it, at that moment. */
    breaker_record(&b, false, 1003);
    assert_int_equal(b.state, CIRCUIT_OPEN);
    assert_int_equal(b.failures, 3);
    assert_int_equal(b.open_until_ms, 1003 + 1000);
    assert_int_equal(b.opens, 1);
    assert_int_equal(b.transitions, 1);
    assert_int_equal(breaker_ask(&b, 1003), BREAKER_DENY);
}

static void test_breaker_threshold_one(void **state)
{
    struct breaker b;

    (void)state;
    cfg->circuit.failure_threshold = 1;
    breaker_init(&b, cfg, NULL);
    breaker_record(&b, false, 500);
    assert_int_equal(b.state, CIRCUIT_OPEN);
    assert_int_equal(breaker_ask(&b, 500), BREAKER_DENY);
}

static void test_breaker_default_threshold(void **state)
{
    struct breaker b;

    (void)state;
    config_defaults(cfg); /* docs/design.md: 5 failures, 30 s, x2, 300 s */
    assert_int_equal(cfg->circuit.failure_threshold, 5);
    assert_int_equal(cfg->circuit.open_duration, 30000);
    assert_int_equal(cfg->circuit.max_open_duration, 300000);
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 4, 10);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    breaker_record(&b, false, 10);
    assert_int_equal(b.state, CIRCUIT_OPEN);
    assert_int_equal(b.open_until_ms, 10 + 30000);
    assert_int_equal(breaker_ask(&b, 30009), BREAKER_DENY);
    assert_int_equal(breaker_ask(&b, 30010), BREAKER_PROBE);
}

static void test_breaker_open_period_then_one_probe(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 3, 10000);
    assert_int_equal(b.state, CIRCUIT_OPEN);

    /* Denied for the whole open period, to the last millisecond. */
    for (int64_t now = 10000; now < 11000; now += 37)
        assert_int_equal(breaker_ask(&b, now), BREAKER_DENY);
    assert_int_equal(breaker_ask(&b, 10999), BREAKER_DENY);
    assert_int_equal(b.state, CIRCUIT_OPEN);

    /* The period is over: exactly one probe. */
    assert_int_equal(breaker_ask(&b, 11000), BREAKER_PROBE);
    assert_int_equal(b.state, CIRCUIT_HALF_OPEN);
    assert_true(b.probe_out);
    assert_int_equal(b.transitions, 2);
    assert_int_equal(b.opens, 1);
    for (int64_t now = 11000; now < 20000; now += 500)
        assert_int_equal(breaker_ask(&b, now), BREAKER_DENY);
    assert_int_equal(b.state, CIRCUIT_HALF_OPEN);
    assert_int_equal(b.transitions, 2);
}

static void test_breaker_probe_asked_late(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 3, 1);
    /* Long after the period: still a single probe, not ALLOW. */
    assert_int_equal(breaker_ask(&b, 1000000), BREAKER_PROBE);
    assert_int_equal(breaker_ask(&b, 1000001), BREAKER_DENY);
}

static void test_breaker_failed_probes_back_off(void **state)
{
    static const int64_t periods[] = {1000, 2000, 4000, 5000, 5000, 5000};
    struct breaker b;
    int64_t now = 100;

    (void)state;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 3, now);
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        int64_t until = now + periods[i];

        assert_int_equal(b.state, CIRCUIT_OPEN);
        assert_int_equal(b.open_until_ms, until);
        assert_int_equal(b.opens, i + 1);
        assert_int_equal(breaker_ask(&b, until - 1), BREAKER_DENY);
        assert_int_equal(breaker_ask(&b, until), BREAKER_PROBE);
        assert_int_equal(breaker_ask(&b, until), BREAKER_DENY);
        /* The probe fails a little later; the next period starts then. */
        now = until + 25;
        breaker_record(&b, false, now);
    }
    assert_int_equal(b.opens, 7);
    /* open, then (half-open, open) per failed probe. */
    assert_int_equal(b.transitions, 1 + 2 * 6);
    assert_int_equal(b.open_ms, 5000);
}

static void test_breaker_fractional_multiplier(void **state)
{
    struct breaker b;
    int64_t now = 0;

    (void)state;
    cfg->frontend.backoff_multiplier = 1.5;
    cfg->circuit.max_open_duration = 3000;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 3, 1);
    now = b.open_until_ms;
    assert_int_equal(breaker_ask(&b, now), BREAKER_PROBE);
    breaker_record(&b, false, now);
    assert_int_equal(b.open_until_ms, now + 1500);
    now = b.open_until_ms;
    assert_int_equal(breaker_ask(&b, now), BREAKER_PROBE);
    breaker_record(&b, false, now);
    assert_int_equal(b.open_until_ms, now + 2250);
    now = b.open_until_ms;
    assert_int_equal(breaker_ask(&b, now), BREAKER_PROBE);
    breaker_record(&b, false, now);
    assert_int_equal(b.open_until_ms, now + 3000); /* 3375 capped */
}

static void test_breaker_probe_success_closes_and_resets(void **state)
{
    struct breaker b;
    int64_t now = 50;

    (void)state;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 3, now);
    /* Two failed probes: the next period would be 4 s. */
    for (int i = 0; i < 2; i++) {
        now = b.open_until_ms;
        assert_int_equal(breaker_ask(&b, now), BREAKER_PROBE);
        breaker_record(&b, false, now);
    }
    assert_int_equal(b.open_until_ms - now, 4000);

    now = b.open_until_ms;
    assert_int_equal(breaker_ask(&b, now), BREAKER_PROBE);
    breaker_record(&b, true, now + 10);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_false(b.probe_out);
    assert_int_equal(b.open_ms, 1000);
    assert_int_equal(breaker_ask(&b, now + 11), BREAKER_ALLOW);
    assert_int_equal(breaker_ask(&b, now + 12), BREAKER_ALLOW);

    /* The count starts again from zero, and the next open period is the first
     * one again, not the 4 s or 8 s it had reached. */
    now += 100;
    fail_n(&b, 2, now);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    breaker_record(&b, false, now);
    assert_int_equal(b.state, CIRCUIT_OPEN);
    assert_int_equal(b.open_until_ms, now + 1000);
    assert_int_equal(b.opens, 4);
}

static void test_breaker_success_while_open_closes(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 3, 1000);
    assert_int_equal(b.state, CIRCUIT_OPEN);
    /* A call started before it opened succeeds: WAHA answers again. */
    breaker_record(&b, true, 1200);
    assert_int_equal(b.state, CIRCUIT_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.transitions, 2);
    assert_int_equal(b.opens, 1);
    assert_int_equal(breaker_ask(&b, 1201), BREAKER_ALLOW);
}

static void test_breaker_failures_while_open(void **state)
{
    struct breaker b;

    (void)state;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 3, 1000);
    /* Late failures of calls already out neither reopen nor extend it. */
    fail_n(&b, 5, 1500);
    assert_int_equal(b.state, CIRCUIT_OPEN);
    assert_int_equal(b.opens, 1);
    assert_int_equal(b.transitions, 1);
    assert_int_equal(b.open_until_ms, 2000);
    assert_int_equal(breaker_ask(&b, 2000), BREAKER_PROBE);
}

static void test_breaker_counts_and_logs(void **state)
{
    struct breaker b;
    int64_t now = 1;

    (void)state;
    breaker_init(&b, cfg, NULL);
    fail_n(&b, 10, now); /* one open, however many failures */
    now = b.open_until_ms;
    assert_int_equal(breaker_ask(&b, now), BREAKER_PROBE);
    assert_int_equal(breaker_ask(&b, now), BREAKER_DENY);
    breaker_record(&b, false, now); /* reopen */
    now = b.open_until_ms;
    assert_int_equal(breaker_ask(&b, now), BREAKER_PROBE);
    breaker_record(&b, true, now); /* close */
    assert_int_equal(b.opens, 2);
    assert_int_equal(b.transitions, 5);

    /* Each transition is logged once. */
    assert_int_equal(log_count("circuit closed -> open"), 1);
    assert_int_equal(log_count("circuit open -> half-open"), 2);
    assert_int_equal(log_count("circuit half-open -> open"), 1);
    assert_int_equal(log_count("circuit half-open -> closed"), 1);
    assert_int_equal(log_count("circuit "), 5);
}

/*========================================================================
 * The published atomics in a real region header
 */

static void expect_published(const struct region_header *h, enum circuit_state state,
                             uint64_t opens, uint64_t transitions, int64_t retry_ms)
{
    assert_int_equal(atomic_load(&h->circuit), state);
    assert_int_equal(atomic_load(&h->circuit_opens), opens);
    assert_int_equal(atomic_load(&h->circuit_transitions), transitions);
    assert_int_equal(atomic_load(&h->circuit_retry_ms), retry_ms);
}

static void test_breaker_publishes(void **state)
{
    struct region_header *h = make_region("breaker");
    struct breaker b;

    (void)state;
    /* Something other than closed, to see that init publishes. */
    atomic_store(&h->circuit, CIRCUIT_OPEN);
    atomic_store(&h->circuit_retry_ms, 99);
    breaker_init(&b, cfg, h);
    assert_ptr_equal(b.published, h);
    expect_published(h, CIRCUIT_CLOSED, 0, 0, 0);

    fail_n(&b, 2, 5000);
    expect_published(h, CIRCUIT_CLOSED, 0, 0, 0);
    breaker_record(&b, false, 5000);
    expect_published(h, CIRCUIT_OPEN, 1, 1, 6000);

    assert_int_equal(breaker_ask(&b, 5999), BREAKER_DENY);
    expect_published(h, CIRCUIT_OPEN, 1, 1, 6000);
    assert_int_equal(breaker_ask(&b, 6000), BREAKER_PROBE);
    assert_int_equal(atomic_load(&h->circuit), CIRCUIT_HALF_OPEN);
    assert_int_equal(atomic_load(&h->circuit_transitions), 2);
    assert_int_equal(atomic_load(&h->circuit_opens), 1);

    breaker_record(&b, false, 6100);
    expect_published(h, CIRCUIT_OPEN, 2, 3, 6100 + 2000);

    assert_int_equal(breaker_ask(&b, 8100), BREAKER_PROBE);
    breaker_record(&b, true, 8200);
    expect_published(h, CIRCUIT_CLOSED, 2, 5, 0);
}

static void test_breaker_respawn_continues_counts(void **state)
{
    struct region_header *h = make_region("respawn");
    struct breaker b, b2;

    (void)state;
    breaker_init(&b, cfg, h);
    fail_n(&b, 3, 100);
    assert_int_equal(breaker_ask(&b, 1100), BREAKER_PROBE);
    breaker_record(&b, false, 1100);
    expect_published(h, CIRCUIT_OPEN, 2, 3, 3100);

    /* The fetcher dies and a new one starts: counts continue, state closed. */
    breaker_init(&b2, cfg, h);
    assert_int_equal(b2.state, CIRCUIT_CLOSED);
    assert_int_equal(b2.opens, 2);
    assert_int_equal(b2.transitions, 3);
    expect_published(h, CIRCUIT_CLOSED, 2, 3, 0);
    fail_n(&b2, 3, 5000);
    expect_published(h, CIRCUIT_OPEN, 3, 4, 6000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_retry_constants),
        T(test_retry_after_wins),
        T(test_retry_jitter_bounds),
        T(test_retry_jitter_covers_the_range),
        T(test_retry_large_attempts),
        T(test_retry_negative_attempt),
        T(test_breaker_init),
        T(test_breaker_closed_allows),
        T(test_breaker_opens_at_threshold),
        T(test_breaker_threshold_one),
        T(test_breaker_default_threshold),
        T(test_breaker_open_period_then_one_probe),
        T(test_breaker_probe_asked_late),
        T(test_breaker_failed_probes_back_off),
        T(test_breaker_fractional_multiplier),
        T(test_breaker_probe_success_closes_and_resets),
        T(test_breaker_success_while_open_closes),
        T(test_breaker_failures_while_open),
        T(test_breaker_counts_and_logs),
        T(test_breaker_publishes),
        T(test_breaker_respawn_continues_counts),
#undef T
    };

    return cmocka_run_group_tests_name("backoff", tests, group_setup, group_teardown);
}
