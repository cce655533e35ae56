/*
 * test_rules.c - unit tests for server/worker/rules.c, the pure rules of a
 * worker's answers: which Origin gets which CORS headers (server.cors_origins),
 * the status object's poll.nextMs (docs/design.md [frontend]), and the ids
 * of event streams (a stream's version, and whether a client that
 * reconnects with Last-Event-ID gets the current statuses again).
 *
 * Why: CORS headers for an origin that is not listed let any web page read
 * the API with the user's credentials, and none for a listed one breaks
 * the operator's dashboard. poll.nextMs is what every poller (poller.js)
 * waits before its next request: too short while WAHA fails is the load
 * the gateway exists to spare, too long hides a recovery. An event id that
 * does not grow with every change, or a resume decision that skips the
 * initial events of a client that missed some, leaves a dashboard showing
 * a status that is no longer true until the next change.
 *
 * The configurations are made with config_set(), as waha.ini lines would
 * make them, on top of config_defaults().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rules.h"

static struct config *cfg;
static struct config_errors *errs;

static int group_setup(void **state)
{
    (void)state;
    cfg = calloc(1, sizeof(*cfg));
    errs = calloc(1, sizeof(*errs));
    return cfg && errs ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(cfg);
    free(errs);
    return 0;
}

static int defaults(void **state)
{
    (void)state;
    config_defaults(cfg);
    return 0;
}

/* [SECTION] KEY = VALUE, which must be accepted. */
static void set(const char *section, const char *key, const char *value)
{
    memset(errs, 0, sizeof(*errs));
    if (config_set(cfg, section, key, value, "test", 0, errs) != 0)
        fail_msg("[%s] %s = %s: %s", section, key, value, errs->message[0]);
}

/*========================================================================
 * CORS: rules_cors, rules_cors_varies
 */

static void test_origin_nothing_configured(void **state)
{
    (void)state;
    /* The default: no cross-origin caller at all, and nothing varies. */
    assert_int_equal(cfg->server.cors_origin_count, 0);
    assert_false(cfg->server.cors_any);
    assert_int_equal(rules_cors(cfg, "https://app.example"), CORS_NONE);
    assert_int_equal(rules_cors(cfg, "null"), CORS_NONE);
    assert_int_equal(rules_cors(cfg, ""), CORS_NONE);
    assert_int_equal(rules_cors(cfg, NULL), CORS_NONE);
    assert_false(rules_cors_varies(cfg));
}

static void test_origin_listed(void **state)
{
    static const char *const others[] = {
        /* Anything else is another origin: compared whole, not as a prefix,
         * a suffix or a substring. */
        "https://app.example.evil.test",
        "https://evil.test/https://app.example",
        "https://evil-app.example",
        "https://app.exampl",
        "https://app.example/",
        "https://app.example:8443",
        "http://app.example",
        "http://localhost",
        "https://localhost:8080",
        "null",
        "",
    };

    (void)state;
    set("server", "cors_origins", "https://app.example, http://localhost:8080/");
    assert_true(rules_cors_varies(cfg));
    /* Listed: echoed, with credentials. */
    assert_int_equal(rules_cors(cfg, "https://app.example"), CORS_ORIGIN);
    /* The list's trailing slash is not part of the origin. */
    assert_int_equal(rules_cors(cfg, "http://localhost:8080"), CORS_ORIGIN);
    /* Scheme and host in any case. */
    assert_int_equal(rules_cors(cfg, "HTTPS://App.Example"), CORS_ORIGIN);
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (rules_cors(cfg, others[i]) != CORS_NONE)
            fail_msg("\"%s\" is allowed", others[i]);
    /* No Origin: not a cross-origin request from a browser. */
    assert_int_equal(rules_cors(cfg, NULL), CORS_NONE);
}

static void test_origin_any(void **state)
{
    (void)state;
    /* With *, any origin may read answers, without credentials: "*", never
     * the origin echoed with Access-Control-Allow-Credentials (the Fetch
     * standard; a page of any site could read a user's data with the
     * user's cookies or key otherwise). */
    set("server", "cors_origins", "*");
    assert_true(rules_cors_varies(cfg));
    assert_int_equal(rules_cors(cfg, "https://app.example"), CORS_ANY);
    assert_int_equal(rules_cors(cfg, "http://127.0.0.1:5173"), CORS_ANY);
    assert_int_equal(rules_cors(cfg, NULL), CORS_NONE);
    /* "null" (sandboxed pages, file: URLs) is anyone: never. */
    assert_int_equal(rules_cors(cfg, "null"), CORS_NONE);
    assert_int_equal(rules_cors(cfg, ""), CORS_NONE);
    /* A star among listed origins: the listed ones with credentials, any
     * other without. */
    set("server", "cors_origins", "https://app.example, *");
    assert_int_equal(rules_cors(cfg, "https://app.example"), CORS_ORIGIN);
    assert_int_equal(rules_cors(cfg, "https://other.example"), CORS_ANY);
    assert_int_equal(rules_cors(cfg, "null"), CORS_NONE);
    /* Setting the key again replaces the list. */
    set("server", "cors_origins", "https://other.example");
    assert_int_equal(rules_cors(cfg, "https://app.example"), CORS_NONE);
    assert_int_equal(rules_cors(cfg, "https://other.example"), CORS_ORIGIN);
}

/*========================================================================
 * poll.nextMs: rules_next_poll_ms
 */

/* nextMs of STATUS, healthy, fresh, breaker closed. */
static int64_t next_ok(const char *status)
{
    return rules_next_poll_ms(cfg, status, true, false, CIRCUIT_CLOSED);
}

static void test_next_poll_by_status(void **state)
{
    static const char *const others[] = {
        "STARTING", "SCAN_QR_CODE", "FAILED",   "STOPPED",
        "UNKNOWN",  "working",      "WORKING2", ""};

    (void)state;
    /* The defaults of docs/design.md. */
    assert_int_equal(cfg->frontend.base_interval, 15000);
    assert_int_equal(cfg->frontend.authenticated_interval, 30000);
    assert_int_equal(cfg->frontend.max_interval, 60000);
    /* WORKING (authenticated): the authenticated interval. */
    assert_int_equal(next_ok("WORKING"), 30000);
    /* Anything else, including statuses WAHA may add: the base one. */
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (next_ok(others[i]) != 15000)
            fail_msg("\"%s\": %lld", others[i], (long long)next_ok(others[i]));

    set("frontend", "base_interval", "2000");
    set("frontend", "authenticated_interval", "45000");
    assert_int_equal(next_ok("WORKING"), 45000);
    assert_int_equal(next_ok("SCAN_QR_CODE"), 2000);
}

static void test_next_poll_backs_off(void **state)
{
    static const enum circuit_state not_closed[] = {CIRCUIT_OPEN, CIRCUIT_HALF_OPEN};

    (void)state;
    /* Stale data, an unhealthy entry, a breaker that is not closed: each
     * multiplies by backoff_multiplier (2). */
    assert_int_equal(rules_next_poll_ms(cfg, "STARTING", true, true, CIRCUIT_CLOSED),
                     30000);
    assert_int_equal(rules_next_poll_ms(cfg, "STARTING", false, false, CIRCUIT_CLOSED),
                     30000);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(rules_next_poll_ms(cfg, "STARTING", true, false, not_closed[i]),
                         30000);
        assert_int_equal(rules_next_poll_ms(cfg, "WORKING", true, false, not_closed[i]),
                         60000);
    }
    /* Once, not once per reason. */
    assert_int_equal(rules_next_poll_ms(cfg, "STARTING", false, true, CIRCUIT_OPEN),
                     30000);
    /* A fractional multiplier. */
    set("frontend", "backoff_multiplier", "1.5");
    assert_int_equal(rules_next_poll_ms(cfg, "STARTING", true, true, CIRCUIT_CLOSED),
                     22500);
    assert_int_equal(rules_next_poll_ms(cfg, "WORKING", false, false, CIRCUIT_CLOSED),
                     45000);
    /* 1: no back-off at all. */
    set("frontend", "backoff_multiplier", "1");
    assert_int_equal(rules_next_poll_ms(cfg, "WORKING", false, true, CIRCUIT_OPEN),
                     30000);
}

static void test_next_poll_capped_at_max(void **state)
{
    (void)state;
    set("frontend", "backoff_multiplier", "3");
    /* 30000 * 3 is over max_interval: max_interval. */
    assert_int_equal(rules_next_poll_ms(cfg, "WORKING", true, true, CIRCUIT_CLOSED),
                     60000);
    assert_int_equal(rules_next_poll_ms(cfg, "STARTING", true, true, CIRCUIT_CLOSED),
                     45000);
    /* Exactly at the cap. */
    set("frontend", "backoff_multiplier", "4");
    assert_int_equal(rules_next_poll_ms(cfg, "STARTING", true, true, CIRCUIT_CLOSED),
                     60000);
    set("frontend", "max_interval", "50000");
    assert_int_equal(rules_next_poll_ms(cfg, "STARTING", true, true, CIRCUIT_CLOSED),
                     50000);
    set("frontend", "backoff_multiplier", "10");
    assert_int_equal(rules_next_poll_ms(cfg, "WORKING", false, false, CIRCUIT_OPEN),
                     50000);
    /* Not backed off: the interval itself. */
    assert_int_equal(next_ok("WORKING"), 30000);
}

/*========================================================================
 * Event stream ids: rules_stream_version, rules_stream_id, rules_stream_resumes
 */

static void test_stream_version_is_the_sum(void **state)
{
    const uint64_t gens[] = {5, 7, 1};

    (void)state;
    assert_true(rules_stream_version(0, NULL, 0) == 0);
    assert_true(rules_stream_version(4, NULL, 0) == 4);
    /* One session's stream: its generation plus the breaker's moves. */
    assert_true(rules_stream_version(0, gens, 1) == 5);
    assert_true(rules_stream_version(2, gens + 1, 1) == 9);
    /* Every session's stream: the sum of their generations. */
    assert_true(rules_stream_version(3, gens, 3) == 16);
}

static void test_stream_version_grows_with_every_change(void **state)
{
    uint64_t gens[4] = {1, 1, 1, 1};
    uint64_t transitions = 0;
    uint64_t last = rules_stream_version(transitions, gens, 4);

    (void)state;
    /* Any change a subscriber can see (a session's generation, the
     * breaker) gives a new, larger id; so does every later one. */
    for (int step = 0; step < 200; step++) {
        uint64_t v;

        if (step % 7 == 3)
            transitions++;
        else
            gens[(step * 5) % 4] += (uint64_t)(1 + step % 3);
        v = rules_stream_version(transitions, gens, 4);
        if (v <= last)
            fail_msg("step %d: version %llu after %llu", step, (unsigned long long)v,
                     (unsigned long long)last);
        last = v;
    }
}

/* The id of (INSTANCE, TABLE, VERSION) (static; the last one returned). */
static const char *id_of(uint64_t instance, uint64_t table, uint64_t version)
{
    static char id[RULES_STREAM_ID_MAX];

    rules_stream_id(id, instance, table, version);
    return id;
}

static void test_stream_id(void **state)
{
    char a[RULES_STREAM_ID_MAX];

    (void)state;
    assert_string_equal(id_of(0x1234abcd, 0, 16), "000000001234abcd-0-16");
    assert_string_equal(id_of(UINT64_MAX, UINT64_MAX, UINT64_MAX),
                        "ffffffffffffffff-18446744073709551615-18446744073709551615");
    /* The same version after sessions came or went, or in another
     * instance (a restarted gateway, another host), is another id: when
     * sessions go, a sum of generations can come back to an old value for
     * another state. */
    strcpy(a, id_of(7, 3, 16));
    assert_string_not_equal(a, id_of(7, 4, 16));
    assert_string_not_equal(a, id_of(8, 3, 16));
    assert_string_not_equal(a, id_of(7, 3, 17));
    assert_string_equal(a, id_of(7, 3, 16));
    /* No two (table, version) pairs print alike. */
    strcpy(a, id_of(7, 1, 23));
    assert_string_not_equal(a, id_of(7, 12, 3));
}

static void test_stream_resume_same_id(void **state)
{
    char id[RULES_STREAM_ID_MAX];

    (void)state;
    strcpy(id, id_of(0xbeef, 2, 16));
    /* The client saw this id: nothing to send again. */
    assert_true(rules_stream_resumes("000000000000beef-2-16", id));
    /* An older or a newer version, the same version of another table or
     * another instance: the current statuses. */
    assert_false(rules_stream_resumes("000000000000beef-2-15", id));
    assert_false(rules_stream_resumes("000000000000beef-2-17", id));
    assert_false(rules_stream_resumes("000000000000beef-1-16", id));
    assert_false(rules_stream_resumes("000000000000beee-2-16", id));
    /* A first connection. */
    assert_false(rules_stream_resumes(NULL, id));
}

static void test_stream_resume_only_our_ids(void **state)
{
    char id[RULES_STREAM_ID_MAX];

    (void)state;
    strcpy(id, id_of(0xbeef, 2, 16));
    /*
     * EventSource sends back the id it was given, byte for byte; anything
     * else is no id of ours and gets the current statuses: the version
     * alone (the ids of an older gateway), other case, blanks, signs,
     * zeros, a prefix or more.
     */
    assert_false(rules_stream_resumes("", id));
    assert_false(rules_stream_resumes("16", id));
    assert_false(rules_stream_resumes("000000000000BEEF-2-16", id));
    assert_false(rules_stream_resumes(" 000000000000beef-2-16", id));
    assert_false(rules_stream_resumes("000000000000beef-2-16 ", id));
    assert_false(rules_stream_resumes("000000000000beef-2-016", id));
    assert_false(rules_stream_resumes("000000000000beef-+2-16", id));
    assert_false(rules_stream_resumes("000000000000beef-2-1", id));
    assert_false(rules_stream_resumes("000000000000beef-2-160", id));
    assert_false(rules_stream_resumes("beef-2-16", id));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup(f, defaults)
        T(test_origin_nothing_configured),
        T(test_origin_listed),
        T(test_origin_any),
        T(test_next_poll_by_status),
        T(test_next_poll_backs_off),
        T(test_next_poll_capped_at_max),
        T(test_stream_version_is_the_sum),
        T(test_stream_version_grows_with_every_change),
        T(test_stream_id),
        T(test_stream_resume_same_id),
        T(test_stream_resume_only_our_ids),
#undef T
    };

    return cmocka_run_group_tests_name("rules", tests, group_setup, group_teardown);
}
