/*
 * test_answers.c - unit tests for server/fetcher/answers.c, what the fetcher
 * makes of WAHA's answers, against a real region (region_fixture.h): the
 * session list with a fixed upstream.sessions and with * (every listed
 * session stored, a tracked session WAHA does not list stored absent, an
 * item the region cannot hold skipped, sessions beyond server.max_sessions
 * counted, a list that is not WAHA's refused whole), a session's details
 * (the engine; 404 and WAHA Core's 422 as absences; other errors), the
 * health check (falling back to /ping where /health is not there for the
 * key) and QR codes (WAHA's 422 when the session no longer waits for a
 * scan).
 *
 * Why: the session list is the fetcher's one call that refreshes every
 * session; an answer read wrong marks sessions absent that exist, or
 * drops a whole WAHA's sessions for one name it cannot hold. An outcome
 * read wrong makes the fetcher retry what will not mend (or not retry what
 * would), or counts WAHA's own "no" against the circuit breaker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answers.h"
#include "config.h"
#include "region.h"
#include "store.h"

#include "region_fixture.h"
#include "store_fixture.h"

static struct answers ans_state;
static bool ans_ready;
static char why[WAHA_WHY_MAX];

/* A region for MAX_SESSIONS sessions and a configuration tracking SESSIONS
 * (a waha.ini value: "a, b" or "*"); the fixed names are tracked at once,
 * as the master does at start. */
static void setup_answers(const char *tag, int max_sessions, const char *sessions)
{
    static struct config_errors errs;
    char max[16];

    config_defaults(&store_cfg);
    snprintf(max, sizeof(max), "%d", max_sessions);
    assert_int_equal(
        config_set(&store_cfg, "server", "max_sessions", max, "test", 1, &errs), 0);
    assert_int_equal(
        config_set(&store_cfg, "upstream", "sessions", sessions, "test", 2, &errs), 0);
    assert_int_equal(region_create(&reg, make_name(tag), max_sessions), 0);
    if (!store_cfg.upstream.all_sessions) {
        assert_int_equal(region_lock(&reg), 0);
        assert_int_equal(
            set_sessions((const char(*)[REGION_NAME_MAX])store_cfg.upstream.sessions,
                         store_cfg.upstream.session_count, NULL),
            0);
        region_unlock(&reg);
    }
    assert_int_equal(answers_init(&ans_state, &store_cfg, &reg), 0);
    ans_ready = true;
}

static int answers_teardown(void **state)
{
    if (ans_ready)
        answers_free(&ans_state);
    ans_ready = false;
    return test_teardown(state);
}

static struct answer answer(long http, const char *body, int entry, const char *name)
{
    why[0] = '\0';
    return (struct answer){.http = http,
                           .body = body,
                           .len = body ? strlen(body) : 0,
                           .entry = entry,
                           .name = name};
}

static enum outcome list(long http, const char *body)
{
    struct answer a = answer(http, body, REGION_ENTRY_LIST, "");

    return answers_list(&ans_state, &a, why);
}

static int entry_of(const char *name)
{
    int index;

    assert_int_equal(region_lock(&reg), 0);
    index = region_find_session(&reg, name);
    region_unlock(&reg);
    return index;
}

static const struct entry_data *data_of(const char *name)
{
    int index = entry_of(name);

    if (index < 0)
        fail_msg("session \"%s\" is not tracked", name);
    return &region_entry(&reg, index)->d;
}

#define ITEM(name, status) "{\"name\":\"" name "\",\"status\":\"" status "\",\"me\":null}"
#define NAME70 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

/*========================================================================
 * The session list
 */

static void test_list_fixed(void **state)
{
    const struct region_entry *le;

    (void)state;
    setup_answers("alfixed", TEST_SESSIONS, "a, b, gone");
    /* WAHA lists a and b (and c, which is not tracked); "gone" is not
     * listed: absent. */
    assert_int_equal(list(200, "[" ITEM("c", "WORKING") "," ITEM(
                                   "b", "SCAN_QR_CODE") "," ITEM("a", "WORKING") "]"),
                     OUTCOME_OK);
    assert_true(data_of("a")->has_data);
    assert_true(data_of("a")->exists);
    assert_string_equal(data_of("a")->status, "WORKING");
    assert_string_equal(body_of(entry_of("a"))->body,
                        "{\"name\":\"a\",\"status\":\"WORKING\",\"me\":null}");
    assert_string_equal(data_of("b")->status, "SCAN_QR_CODE");
    assert_true(data_of("gone")->has_data);
    assert_false(data_of("gone")->exists);
    assert_string_equal(data_of("gone")->absent_reason, "");
    assert_int_equal(entry_of("c"), -1);
    /* The list entry says how many WAHA listed. */
    le = region_entry(&reg, REGION_ENTRY_LIST);
    assert_true(le->d.has_data);
    assert_string_equal(le->d.status, "3");
    /* A fixed list counts nothing as untracked. */
    assert_int_equal(region_header(&reg)->untracked_sessions, 0);

    /* "gone" comes, a goes. */
    assert_int_equal(list(200, "[" ITEM("gone", "STARTING") "," ITEM("b", "WORKING") "]"),
                     OUTCOME_OK);
    assert_true(data_of("gone")->exists);
    assert_false(data_of("a")->exists);
    assert_string_equal(data_of("b")->status, "WORKING");
}

/*
 * With a fixed list, the tracked sessions are stored wherever WAHA lists
 * them, however many sessions WAHA has. Once a bug: only the first
 * server.max_sessions names of WAHA's list were considered, so a tracked
 * session listed after them was stored absent, although WAHA listed it.
 */
static void test_list_fixed_tracked_after_many(void **state)
{
    (void)state;
    setup_answers("alfixedmany", 2, "a, b");
    assert_int_equal(
        list(200,
             "[" ITEM("x", "WORKING") "," ITEM("y", "WORKING") "," ITEM(
                 "z", "WORKING") "," ITEM("b", "STOPPED") "," ITEM("a", "WORKING") "]"),
        OUTCOME_OK);
    assert_true(data_of("a")->exists);
    assert_string_equal(data_of("a")->status, "WORKING");
    assert_true(data_of("b")->exists);
    assert_string_equal(data_of("b")->status, "STOPPED");
    assert_string_equal(region_entry(&reg, REGION_ENTRY_LIST)->d.status, "5");
    assert_int_equal(region_header(&reg)->untracked_sessions, 0);
}

static void test_list_all(void **state)
{
    (void)state;
    setup_answers("alall", TEST_SESSIONS, "*");
    assert_int_equal(
        list(200, "[" ITEM("sales.team", "WORKING") "," ITEM("a b", "STOPPED") "," ITEM(
                      "caf\xc3\xa9", "SCAN_QR_CODE") "]"),
        OUTCOME_OK);
    assert_string_equal(data_of("sales.team")->status, "WORKING");
    assert_string_equal(data_of("a b")->status, "STOPPED");
    assert_string_equal(data_of("caf\xc3\xa9")->status, "SCAN_QR_CODE");
    assert_string_equal(region_entry(&reg, REGION_ENTRY_LIST)->d.status, "3");
    /* A session WAHA no longer lists is no longer tracked (not absent). */
    assert_int_equal(list(200, "[" ITEM("a b", "WORKING") "]"), OUTCOME_OK);
    assert_int_equal(entry_of("sales.team"), -1);
    assert_string_equal(data_of("a b")->status, "WORKING");
    /* An empty list: nothing tracked. */
    assert_int_equal(list(200, "[]"), OUTCOME_OK);
    assert_int_equal(entry_of("a b"), -1);
    assert_string_equal(region_entry(&reg, REGION_ENTRY_LIST)->d.status, "0");
}

static void test_list_skips_name_too_long(void **state)
{
    (void)state;
    setup_answers("alskip", TEST_SESSIONS, "*");
    log_clear();
    assert_int_equal(list(200, "[" ITEM("a", "WORKING") "," ITEM(
                                   NAME70, "WORKING") "," ITEM("b", "FAILED") "]"),
                     OUTCOME_OK);
    assert_string_equal(data_of("a")->status, "WORKING");
    assert_string_equal(data_of("b")->status, "FAILED");
    assert_true(log_contains("not tracked: a session name of 70 bytes"));
    /* Logged once, not at every list (another line in between, or the
     * log's own repeat filter would hide a second one). */
    log_clear();
    log_warn(0, "test: the same list again");
    assert_int_equal(list(200, "[" ITEM("a", "WORKING") "," ITEM(
                                   NAME70, "WORKING") "," ITEM("b", "FAILED") "]"),
                     OUTCOME_OK);
    {
        char buf[256] = "";
        FILE *fp = fopen(log_path, "r");
        assert_non_null(fp);
        buf[fread(buf, 1, sizeof(buf) - 1, fp)] = '\0';
        fclose(fp);
        assert_null(strstr(buf, "70 bytes"));
    }
    /* The same with a fixed list: the others are stored. */
    answers_free(&ans_state);
    ans_ready = false;
    region_destroy(&reg);
    setup_answers("alskipfixed", TEST_SESSIONS, "a, b");
    assert_int_equal(list(200, "[" ITEM(NAME70, "WORKING") "," ITEM(
                                   "b", "FAILED") "," ITEM("a", "WORKING") "]"),
                     OUTCOME_OK);
    assert_string_equal(data_of("a")->status, "WORKING");
    assert_string_equal(data_of("b")->status, "FAILED");
}

static void test_list_beyond_max_sessions(void **state)
{
    char body[1024];
    int n = 0;

    (void)state;
    setup_answers("albeyond", 3, "*");
    log_clear();
    n += snprintf(body + n, sizeof(body) - (size_t)n, "[");
    for (int i = 0; i < 5; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n,
                      "%s{\"name\":\"s%d\",\"status\":\"WORKING\"}", i ? "," : "", i);
    snprintf(body + n, sizeof(body) - (size_t)n, "]");
    assert_int_equal(list(200, body), OUTCOME_OK);
    /* The first three are tracked and stored; two are counted. */
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "s%d", i);
        assert_true(data_of(name)->has_data);
    }
    assert_int_equal(entry_of("s3"), -1);
    assert_int_equal(entry_of("s4"), -1);
    assert_int_equal(region_header(&reg)->untracked_sessions, 2);
    assert_string_equal(region_entry(&reg, REGION_ENTRY_LIST)->d.status, "5");
    assert_true(log_contains("WAHA has 2 sessions more than server.max_sessions (3)"));
    /* Fewer again: the count follows. */
    assert_int_equal(list(200, "[" ITEM("s0", "WORKING") "]"), OUTCOME_OK);
    assert_int_equal(region_header(&reg)->untracked_sessions, 0);
}

static void test_list_invalid_item_fails_whole(void **state)
{
    (void)state;
    setup_answers("alinvalid", TEST_SESSIONS, "*");
    assert_int_equal(list(200, "[" ITEM("a", "WORKING") "]"), OUTCOME_OK);
    /* One item that is not a session object: the list is not WAHA's;
     * nothing of it is stored, the table stays. */
    assert_int_equal(
        list(200, "[" ITEM("a", "FAILED") "," ITEM("b", "WORKING") ",{\"name\":\"c\"}]"),
        OUTCOME_RETRYABLE);
    assert_true(why[0] != '\0');
    assert_string_equal(data_of("a")->raw_status, "WORKING");
    assert_int_equal(entry_of("b"), -1);
    assert_string_equal(region_entry(&reg, REGION_ENTRY_LIST)->d.status, "1");
    /* Not an array, not JSON. */
    assert_int_equal(list(200, "{\"name\":\"a\"}"), OUTCOME_RETRYABLE);
    assert_non_null(strstr(why, "array"));
    assert_int_equal(list(200, "<html>"), OUTCOME_RETRYABLE);
    assert_string_equal(data_of("a")->status, "WORKING");
}

static void test_list_http_errors(void **state)
{
    (void)state;
    setup_answers("alhttp", TEST_SESSIONS, "a");
    assert_int_equal(
        list(500, "{\"statusCode\":500,\"exception\":{\"message\":\"boom\"}}"),
        OUTCOME_RETRYABLE);
    assert_string_equal(why, "HTTP 500: boom");
    assert_int_equal(list(429, ""), OUTCOME_RETRYABLE);
    assert_int_equal(list(401, "{\"message\":\"Unauthorized\"}"), OUTCOME_FINAL);
    assert_string_equal(why, "HTTP 401: Unauthorized");
    assert_int_equal(list(404, ""), OUTCOME_FINAL);
    /* Nothing stored: "a" is not absent for it. */
    assert_false(data_of("a")->has_data);
    assert_int_equal(answers_http_error(503), OUTCOME_RETRYABLE);
    assert_int_equal(answers_http_error(499), OUTCOME_FINAL);
    assert_int_equal(answers_http_error(0), OUTCOME_FINAL);
}

/*========================================================================
 * A session's details
 */

static enum outcome details(long http, const char *body, const char *name)
{
    struct answer a = answer(http, body, entry_of(name), name);

    return answers_details(&ans_state, &a, why);
}

static void test_details_200(void **state)
{
    (void)state;
    setup_answers("addetails", TEST_SESSIONS, "default");
    assert_int_equal(details(200,
                             "{\"name\":\"default\",\"status\":\"WORKING\",\"me\":null,"
                             "\"engine\":{\"engine\":\"NOWEB\"}}",
                             "default"),
                     OUTCOME_OK);
    assert_true(data_of("default")->has_details);
    assert_string_equal(body_of(entry_of("default"))->engine_json,
                        "{\"engine\":\"NOWEB\"}");
    assert_string_equal(data_of("default")->status, "WORKING");
    /* No engine at all (an old WAHA, a stopped session): still the details,
     * with none. */
    assert_int_equal(
        details(200, "{\"name\":\"default\",\"status\":\"STOPPED\"}", "default"),
        OUTCOME_OK);
    assert_string_equal(data_of("default")->raw_status, "STOPPED"); /* held: flap_hold */
    assert_true(data_of("default")->has_details);
    assert_int_equal(data_of("default")->engine_len, 0);
    /* Another session's object, or garbage: retried, nothing stored. */
    assert_int_equal(
        details(200, "{\"name\":\"other\",\"status\":\"WORKING\"}", "default"),
        OUTCOME_RETRYABLE);
    assert_int_equal(details(200, "[]", "default"), OUTCOME_RETRYABLE);
    assert_string_equal(data_of("default")->raw_status, "STOPPED");
}

static void test_details_absent(void **state)
{
    static const char core[] =
        "{\"message\":\"WAHA Core support only 'default' session. You tried to access "
        "'shop' session (base64: c2hvcA==). If you want to run more then one WhatsApp "
        "account - please get WAHA PLUS version. Check this out: "
        "https://waha.devlike.pro/\",\"error\":\"Unprocessable "
        "Entity\",\"statusCode\":422}";

    (void)state;
    setup_answers("adabsent", TEST_SESSIONS, "default, shop");
    /* 404: WAHA has no such session, a plain absence. */
    assert_int_equal(details(404, "{\"message\":\"Session not found\"}", "default"),
                     OUTCOME_OK);
    assert_false(data_of("default")->exists);
    assert_true(data_of("default")->has_data);
    assert_string_equal(data_of("default")->absent_reason, "");
    /* WAHA Core's 422: absent, in WAHA's words (cut to the region's size). */
    assert_int_equal(details(422, core, "shop"), OUTCOME_OK);
    assert_false(data_of("shop")->exists);
    assert_non_null(strstr(data_of("shop")->absent_reason,
                           "WAHA Core support only 'default' session. You tried to "
                           "access 'shop' session"));
    assert_int_equal(strlen(data_of("shop")->absent_reason), REGION_ERROR_MAX - 1);
    /* 2024.10's shorter text too. */
    assert_int_equal(details(422,
                             "{\"message\":\"WAHA Core support only 'default' session. "
                             "If you want to run more then one WhatsApp account - please "
                             "get WAHA PLUS version.\"}",
                             "shop"),
                     OUTCOME_OK);
    assert_false(data_of("shop")->exists);
}

static void test_details_other_errors(void **state)
{
    (void)state;
    setup_answers("aderr", TEST_SESSIONS, "default");
    /* Another 422 is WAHA refusing the call: final, not an absence. */
    assert_int_equal(
        details(422, "{\"message\":\"Unprocessable\",\"statusCode\":422}", "default"),
        OUTCOME_FINAL);
    assert_string_equal(why, "HTTP 422: Unprocessable");
    assert_int_equal(details(422, "not json", "default"), OUTCOME_FINAL);
    assert_int_equal(details(403, "{\"message\":\"Forbidden\"}", "default"),
                     OUTCOME_FINAL);
    assert_int_equal(details(502, "", "default"), OUTCOME_RETRYABLE);
    assert_false(data_of("default")->has_data);
}

/*========================================================================
 * Health and QR codes
 */

static enum outcome health(bool ping, long http, const char *body, bool *use_ping)
{
    struct answer a = answer(http, body, REGION_ENTRY_HEALTH, "");

    a.ping = ping;
    *use_ping = false;
    return answers_health(&ans_state, &a, use_ping, why);
}

static void test_health(void **state)
{
    static const long no_health[] = {401, 403, 404, 422};
    const struct entry_data *h;
    bool use_ping;

    (void)state;
    setup_answers("ahealth", TEST_SESSIONS, "default");
    h = &region_entry(&reg, REGION_ENTRY_HEALTH)->d;
    assert_int_equal(health(false, 200, "{\"status\":\"ok\"}", &use_ping), OUTCOME_OK);
    assert_false(use_ping);
    assert_string_equal(h->status, "ok");
    assert_string_equal(h->name, "/health");
    /* WAHA says it is unhealthy: an answer, stored. */
    assert_int_equal(health(false, 503, "{\"status\":\"error\"}", &use_ping), OUTCOME_OK);
    assert_string_equal(h->status, "error");
    /* /health not there for this key (scoped key 403, Core 422, 401, an old
     * WAHA's 404): ask /ping instead, nothing recorded. */
    for (size_t k = 0; k < sizeof(no_health) / sizeof(no_health[0]); k++) {
        assert_int_equal(health(false, no_health[k], "{}", &use_ping), OUTCOME_NONE);
        assert_true(use_ping);
        assert_string_equal(h->status, "error");
    }
    assert_int_equal(health(true, 200, "{\"message\":\"pong\"}", &use_ping), OUTCOME_OK);
    assert_false(use_ping);
    assert_string_equal(h->status, "pong");
    assert_string_equal(h->name, "/ping");
    /* /ping's own errors are errors. */
    assert_int_equal(health(true, 401, "{}", &use_ping), OUTCOME_FINAL);
    assert_false(use_ping);
    assert_int_equal(health(true, 200, "pong", &use_ping), OUTCOME_RETRYABLE);
    assert_int_equal(health(false, 200, "{\"status\":\"fine\"}", &use_ping),
                     OUTCOME_RETRYABLE);
    assert_int_equal(health(false, 500, "", &use_ping), OUTCOME_RETRYABLE);
    assert_string_equal(h->status, "pong");
}

static enum outcome qr(long http, const char *body, size_t len, bool image, int entry)
{
    struct answer a = answer(http, body, entry, "default");

    a.len = len;
    return answers_qr(&ans_state, &a, image, why);
}

static void test_qr(void **state)
{
    static const char png[] = "\x89PNG\r\n\x1a\nimage-bytes";
    static const char value[] = "{\"value\":\"2@abc,def==\"}";
    struct region_qr *q;
    int i;

    (void)state;
    setup_answers("aqr", TEST_SESSIONS, "default");
    i = entry_of("default");
    poll(i, make_rec("default", "SCAN_QR_CODE", "null"));
    /* A new code: its image is fetched next. */
    assert_int_equal(qr(200, value, strlen(value), false, i), OUTCOME_CHAINED);
    q = qr_of(i);
    assert_non_null(q);
    assert_string_equal(q->d.value, "2@abc,def==");
    assert_int_equal(qr(200, png, sizeof(png) - 1, true, i), OUTCOME_OK);
    assert_true(q->d.has_qr);
    assert_int_equal(q->d.png_len, sizeof(png) - 1);
    /* The same code: nothing more to fetch. */
    assert_int_equal(qr(200, value, strlen(value), false, i), OUTCOME_OK);
    /* Not a PNG, no value, not JSON: retried, the QR kept. */
    assert_int_equal(qr(200, "GIF89a....", 10, true, i), OUTCOME_RETRYABLE);
    assert_int_equal(qr(200, "{\"value\":\"\"}", 12, false, i), OUTCOME_RETRYABLE);
    assert_int_equal(qr(200, "{\"mimetype\":\"image/png\"}", 24, false, i),
                     OUTCOME_RETRYABLE);
    assert_true(q->d.has_qr);
    assert_int_equal(qr(500, "", 0, false, i), OUTCOME_RETRYABLE);
    assert_int_equal(qr(401, "", 0, false, i), OUTCOME_FINAL);
    assert_true(q->d.has_qr);

    /* WAHA's 422 (no longer waiting for a scan): an answer; the slot goes
     * back and the session's data is wanted at once. */
    assert_int_equal(region_demand(&reg, i, DEMAND_DATA)->wanted_ms, 0);
    assert_int_equal(
        qr(422, "{\"message\":\"Session status is not as expected\"}", 45, false, i),
        OUTCOME_OK);
    assert_null(qr_of(i));
    assert_int_equal(q->entry, 0);
    assert_true(region_demand(&reg, i, DEMAND_DATA)->wanted_ms > 0);
    /* 404 (the session is not running) likewise. */
    poll(i, make_rec("default", "SCAN_QR_CODE", "null"));
    assert_int_equal(qr(200, value, strlen(value), false, i), OUTCOME_CHAINED);
    assert_int_equal(qr(404, "{}", 2, true, i), OUTCOME_OK);
    assert_null(qr_of(i));
    /* A code for a session that moved on meanwhile: no slot taken. */
    poll(i, make_rec("default", "WORKING", "null"));
    assert_int_equal(qr(200, value, strlen(value), false, i), OUTCOME_OK);
    assert_null(qr_of(i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, answers_teardown)
        T(test_list_fixed),
        T(test_list_fixed_tracked_after_many),
        T(test_list_all),
        T(test_list_skips_name_too_long),
        T(test_list_beyond_max_sessions),
        T(test_list_invalid_item_fails_whole),
        T(test_list_http_errors),
        T(test_details_200),
        T(test_details_absent),
        T(test_details_other_errors),
        T(test_health),
        T(test_qr),
#undef T
    };

    return cmocka_run_group_tests_name("answers", tests, group_setup, group_teardown);
}
