/*
 * test_upstream.c - unit tests for common/waha.c: validation of WAHA's
 * answers (session object, session list, /health and /ping) and the short
 * reason kept for a failed call.
 *
 * Why: the fetcher stores whatever these functions accept into the shared
 * region, and every worker then serves it as the contract's JSON. An answer
 * that slips through (wrong session, bad status, not JSON, too large for the
 * region's fixed buffers) would replace good cached data with garbage for
 * every client at once; an answer wrongly refused would make the gateway
 * report WAHA as failing. The bodies below are the shapes documented in
 * docs/waha-api.md (sections 2, 3.2, 3.3 and 5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waha.h"

/* docs/waha-api.md 3.2, with the elided webhook URL filled in. */
static const char real_session[] =
    "{\n"
    "  \"name\": \"default\",\n"
    "  \"status\": \"WORKING\",\n"
    "  \"config\": { \"webhooks\": [ {\"url\":\"https://example.com/hook\","
    "\"events\":[\"message\",\"session.status\"],\n"
    "                             \"hmac\":null,\"retries\":null,"
    "\"customHeaders\":null} ],\n"
    "              \"metadata\": {\"user.id\":\"123\"}, \"proxy\": null, "
    "\"debug\": false },\n"
    "  \"me\": { \"id\": \"79111111111@c.us\", \"pushName\": \"WAHA\", "
    "\"lid\": \"123123@lid\", \"jid\": \"79111111111:12@s.whatsapp.net\" },\n"
    "  \"assignedWorker\": \"waha1\",\n"
    "  \"presence\": \"online\",\n"
    "  \"timestamps\": { \"activity\": 1741249702485 },\n"
    "  \"engine\": { \"engine\": \"WEBJS\", \"WWebVersion\": \"2.3000.x\", "
    "\"state\": \"CONNECTED\" }\n"
    "}\n";

/* The "real 2026-08 response" of docs/waha-api.md 3.2. */
static const char starting_session[] =
    "{\"name\":\"default\",\"status\":\"STARTING\",\"config\":{},\"me\":null,"
    "\"presence\":null,\"timestamps\":{},\"engine\":{\"engine\":\"NOWEB\"}}";

static struct session_record rec;
static struct session_record recs[8];
static char why[WAHA_WHY_MAX];

/* Remove the blanks outside strings: an independent minifier. */
static void minify(const char *in, char *out)
{
    bool in_string = false;

    for (; *in; in++) {
        if (in_string) {
            *out++ = *in;
            if (*in == '\\')
                *out++ = *++in;
            else if (*in == '"')
                in_string = false;
        } else if (*in == '"') {
            in_string = true;
            *out++ = *in;
        } else if (*in != ' ' && *in != '\n' && *in != '\t' && *in != '\r') {
            *out++ = *in;
        }
    }
    *out = '\0';
}

static int parse(const char *name, const char *body)
{
    memset(&rec, 0, sizeof(rec));
    why[0] = '\0';
    return waha_parse_session(name, body, strlen(body), &rec, why);
}

static void expect_rejected(const char *name, const char *body, const char *why_part)
{
    int rc = parse(name, body);

    if (rc != -1)
        print_message("accepted: %s\n", body);
    assert_int_equal(rc, -1);
    assert_true(why[0] != '\0');
    if (why_part != NULL && strstr(why, why_part) == NULL)
        fail_msg("reason \"%s\" does not mention \"%s\"", why, why_part);
}

/*========================================================================
 * waha_parse_session
 */

static void test_session_real_object(void **state)
{
    static char compact[sizeof(real_session)];

    (void)state;
    assert_int_equal(parse("default", real_session), 0);
    assert_string_equal(rec.name, "default");
    assert_string_equal(rec.status, "WORKING");
    assert_string_equal(rec.me_json,
                        "{\"id\":\"79111111111@c.us\",\"pushName\":\"WAHA\"}");
    /* The body is the whole object, compact, '/' not escaped. */
    minify(real_session, compact);
    assert_string_equal(rec.body, compact);
    assert_int_equal(rec.body_len, strlen(rec.body));
    assert_non_null(strstr(rec.body, "\"url\":\"https://example.com/hook\""));
    assert_non_null(strstr(rec.body, "\"activity\":1741249702485"));
}

static void test_session_starting_object(void **state)
{
    (void)state;
    assert_int_equal(parse("default", starting_session), 0);
    assert_string_equal(rec.status, "STARTING");
    assert_string_equal(rec.me_json, "null");
    assert_string_equal(rec.body, starting_session);
    assert_int_equal(rec.body_len, strlen(starting_session));
}

static void test_session_wrong_name(void **state)
{
    (void)state;
    expect_rejected("shop", real_session, "name");
    expect_rejected("Default", real_session, "name");
    expect_rejected("default", "{\"status\":\"WORKING\"}", "name");
    expect_rejected("default", "{\"name\":7,\"status\":\"WORKING\"}", "name");
    expect_rejected("bad.name", "{\"name\":\"bad.name\",\"status\":\"WORKING\"}", "name");
}

static void test_session_status_missing_or_invalid(void **state)
{
    char body[256];
    char status[REGION_STATUS_MAX + 2];

    (void)state;
    expect_rejected("default", "{\"name\":\"default\"}", "status");
    expect_rejected("default", "{\"name\":\"default\",\"status\":null}", "status");
    expect_rejected("default", "{\"name\":\"default\",\"status\":1}", "status");
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"working\"}", "status");
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"Working\"}", "status");
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"\"}", "status");
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"SCAN QR\"}", "status");
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"WORKING\\n\"}",
                    "status");

    /* REGION_STATUS_MAX - 1 characters fit, REGION_STATUS_MAX do not. */
    memset(status, 'A', REGION_STATUS_MAX - 1);
    status[REGION_STATUS_MAX - 1] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"default\",\"status\":\"%s\"}", status);
    assert_int_equal(parse("default", body), 0);
    assert_string_equal(rec.status, status);

    memset(status, 'A', REGION_STATUS_MAX);
    status[REGION_STATUS_MAX] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"default\",\"status\":\"%s\"}", status);
    expect_rejected("default", body, "status");
}

static void test_session_open_set_statuses(void **state)
{
    static const char *const statuses[] = {
        "STOPPED",
        "STARTING",
        "SCAN_QR_CODE",
        "WORKING",
        "FAILED",
        "PASSKEY_REQUIRED",
        "PASSKEY_CONFIRMATION_REQUIRED",
        "STATUS_2027",
    };
    char body[256];

    (void)state;
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"default\",\"status\":\"%s\",\"me\":null}", statuses[i]);
        assert_int_equal(parse("default", body), 0);
        assert_string_equal(rec.status, statuses[i]);
    }
}

static void test_session_me_variants(void **state)
{
    (void)state;
    /* null */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":"
                                      "\"STARTING\",\"me\":null}"),
                     0);
    assert_string_equal(rec.me_json, "null");

    /* absent */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":"
                                      "\"STOPPED\"}"),
                     0);
    assert_string_equal(rec.me_json, "null");

    /* pushName missing: null in me_json */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":"
                                      "\"WORKING\",\"me\":{\"id\":"
                                      "\"11111111111@c.us\"}}"),
                     0);
    assert_string_equal(rec.me_json, "{\"id\":\"11111111111@c.us\",\"pushName\":null}");

    /* pushName null */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":"
                                      "\"WORKING\",\"me\":{\"id\":\"1@c.us\","
                                      "\"pushName\":null}}"),
                     0);
    assert_string_equal(rec.me_json, "{\"id\":\"1@c.us\",\"pushName\":null}");

    /* pushName that needs escaping, and UTF-8 */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":\"WORKING\","
                                      "\"me\":{\"id\":\"1@c.us\",\"pushName\":"
                                      "\"Bob \\\"B\\\" Caf\xc3\xa9\"}}"),
                     0);
    assert_string_equal(rec.me_json, "{\"id\":\"1@c.us\",\"pushName\":\"Bob \\\"B\\\" "
                                     "Caf\xc3\xa9\"}");

    /* object without id, id not a string, me not an object */
    expect_rejected("default",
                    "{\"name\":\"default\",\"status\":\"WORKING\","
                    "\"me\":{}}",
                    "me");
    expect_rejected("default",
                    "{\"name\":\"default\",\"status\":\"WORKING\","
                    "\"me\":{\"pushName\":\"x\"}}",
                    "me");
    expect_rejected("default",
                    "{\"name\":\"default\",\"status\":\"WORKING\","
                    "\"me\":{\"id\":5}}",
                    "me");
    expect_rejected("default",
                    "{\"name\":\"default\",\"status\":\"WORKING\","
                    "\"me\":\"1@c.us\"}",
                    "me");
}

static void test_session_not_json(void **state)
{
    (void)state;
    expect_rejected("default", "", NULL);
    expect_rejected("default", "<html><body>502 Bad Gateway</body></html>", NULL);
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"WORKING\"", NULL);
    /* trailing garbage after a valid object */
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"WORKING\"} garbage",
                    NULL);
    expect_rejected("default", "{\"name\":\"default\",\"status\":\"WORKING\"}{}", NULL);
}

static void test_session_not_an_object(void **state)
{
    (void)state;
    expect_rejected("default", "[{\"name\":\"default\",\"status\":\"WORKING\"}]", NULL);
    expect_rejected("default", "\"default\"", NULL);
    expect_rejected("default", "[]", NULL);
}

static void test_session_nesting_bound(void **state)
{
    char body[512];
    int n;

    (void)state;
    /* 10 levels inside the object: fine. */
    n = snprintf(body, sizeof(body),
                 "{\"name\":\"default\",\"status\":\"WORKING\",\"x\":");
    for (int i = 0; i < 10; i++)
        body[n++] = '[';
    for (int i = 0; i < 10; i++)
        body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    assert_int_equal(parse("default", body), 0);

    /* 40 levels: beyond the 32-level bound. */
    n = snprintf(body, sizeof(body),
                 "{\"name\":\"default\",\"status\":\"WORKING\",\"x\":");
    for (int i = 0; i < 40; i++)
        body[n++] = '[';
    for (int i = 0; i < 40; i++)
        body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    expect_rejected("default", body, NULL);
}

/* A compact session object whose serialisation is exactly LEN bytes. */
static char *body_of_length(size_t len)
{
    static const char head[] = "{\"name\":\"default\",\"status\":\"WORKING\","
                               "\"pad\":\"";
    static const char tail[] = "\"}";
    size_t pad = len - (sizeof(head) - 1) - (sizeof(tail) - 1);
    char *body = malloc(len + 1);

    assert_non_null(body);
    memcpy(body, head, sizeof(head) - 1);
    memset(body + sizeof(head) - 1, 'p', pad);
    memcpy(body + sizeof(head) - 1 + pad, tail, sizeof(tail));
    assert_int_equal(strlen(body), len);
    return body;
}

static void test_session_body_size_bound(void **state)
{
    char *body;

    (void)state;
    /* REGION_BODY_MAX - 1 bytes and the NUL fill the record exactly. */
    body = body_of_length(REGION_BODY_MAX - 1);
    assert_int_equal(parse("default", body), 0);
    assert_int_equal(rec.body_len, REGION_BODY_MAX - 1);
    assert_string_equal(rec.body, body);
    free(body);

    body = body_of_length(REGION_BODY_MAX);
    expect_rejected("default", body, "larger");
    free(body);

    body = body_of_length(4 * REGION_BODY_MAX);
    expect_rejected("default", body, NULL);
    free(body);
}

/*
 * The stored body is served to browsers as application/json. json-c's lax
 * tokener takes NaN and Infinity (and writes them back as bare words); such
 * a body must be refused, not cached.
 */
static void test_session_non_json_numbers_rejected(void **state)
{
    int rc;

    (void)state;
    rc = parse("default", "{\"name\":\"default\",\"status\":\"WORKING\",\"x\":NaN}");
    if (rc == 0)
        print_message("accepted and would cache: %s\n", rec.body);
    assert_int_equal(rc, -1);

    rc = parse("default", "{'name':'default','status':'WORKING'}");
    if (rc == 0)
        print_message("accepted and would cache: %s\n", rec.body);
    assert_int_equal(rc, -1);
}

/*========================================================================
 * waha_parse_session_list
 */

static int parse_list(const char *body, int max, int *count)
{
    memset(recs, 0, sizeof(recs));
    why[0] = '\0';
    *count = -1;
    return waha_parse_session_list(body, strlen(body), recs, max, count, why);
}

static void test_list_array(void **state)
{
    int count;

    (void)state;
    assert_int_equal(parse_list("[{\"name\":\"default\",\"status\":\"WORKING\","
                                "\"me\":{\"id\":\"1@c.us\",\"pushName\":\"A\"}},"
                                "{\"name\":\"shop\",\"status\":\"SCAN_QR_CODE\","
                                "\"me\":null},"
                                "{\"name\":\"s_3\",\"status\":\"STOPPED\"}]",
                                8, &count),
                     0);
    assert_int_equal(count, 3);
    assert_string_equal(recs[0].name, "default");
    assert_string_equal(recs[0].status, "WORKING");
    assert_string_equal(recs[0].me_json, "{\"id\":\"1@c.us\",\"pushName\":\"A\"}");
    assert_string_equal(recs[1].name, "shop");
    assert_string_equal(recs[1].status, "SCAN_QR_CODE");
    assert_string_equal(recs[1].me_json, "null");
    assert_string_equal(recs[2].name, "s_3");
    assert_string_equal(recs[2].body, "{\"name\":\"s_3\",\"status\":\"STOPPED\"}");
}

static void test_list_empty(void **state)
{
    int count;

    (void)state;
    assert_int_equal(parse_list("[]", 8, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(parse_list(" [ ]\n", 8, &count), 0);
    assert_int_equal(count, 0);
}

static void test_list_not_array(void **state)
{
    int count;

    (void)state;
    assert_int_equal(
        parse_list("{\"name\":\"default\",\"status\":\"WORKING\"}", 8, &count), -1);
    assert_int_equal(count, 0);
    assert_non_null(strstr(why, "array"));

    assert_int_equal(parse_list("not json", 8, &count), -1);
    assert_int_equal(count, 0);
    assert_int_equal(parse_list("[{\"name\":\"a\",\"status\":\"WORKING\"}", 8, &count),
                     -1);
    assert_int_equal(parse_list("[] []", 8, &count), -1);
}

static void test_list_invalid_item(void **state)
{
    int count;

    (void)state;
    assert_int_equal(parse_list("[{\"name\":\"a\",\"status\":\"WORKING\"},"
                                "{\"name\":\"b\"}]",
                                8, &count),
                     -1);
    assert_true(why[0] != '\0');
    assert_int_equal(
        parse_list("[{\"name\":\"a\",\"status\":\"WORKING\"},null]", 8, &count), -1);
    assert_int_equal(parse_list("[\"a\"]", 8, &count), -1);
    assert_int_equal(parse_list("[{\"name\":\"a b\",\"status\":\"WORKING\"}]", 8, &count),
                     -1);
    assert_int_equal(parse_list("[{\"name\":\"a\",\"status\":\"WORKING\","
                                "\"me\":{}}]",
                                8, &count),
                     -1);
}

static void test_list_more_items_than_max(void **state)
{
    int count;

    (void)state;
    assert_int_equal(parse_list("[{\"name\":\"a\",\"status\":\"WORKING\"},"
                                "{\"name\":\"b\",\"status\":\"WORKING\"},"
                                "{\"name\":\"c\",\"status\":\"WORKING\"},"
                                "{\"name\":\"d\",\"status\":\"WORKING\"},"
                                "{\"name\":\"e\",\"status\":\"WORKING\"}]",
                                3, &count),
                     0);
    assert_int_equal(count, 3);
    assert_string_equal(recs[0].name, "a");
    assert_string_equal(recs[2].name, "c");
    /* Nothing is written past MAX records. */
    assert_string_equal(recs[3].name, "");
}

/*========================================================================
 * waha_health_verdict
 */

static char status_out[32];

static int health(bool ping, long code, const char *body)
{
    memset(status_out, 0, sizeof(status_out));
    why[0] = '\0';
    return waha_health_verdict(ping, code, body, strlen(body), status_out,
                               sizeof(status_out), why);
}

static void test_health_200_ok(void **state)
{
    (void)state;
    assert_int_equal(health(false, 200,
                            "{\"status\":\"ok\",\"info\":{\"mediaFiles"
                            ".space\":{\"status\":\"up\"}},"
                            "\"error\":{},\"details\":{}}"),
                     1);
    assert_string_equal(status_out, "ok");
}

static void test_health_503_error(void **state)
{
    (void)state;
    assert_int_equal(health(false, 503,
                            "{\"status\":\"error\",\"info\":{},"
                            "\"error\":{\"mongodb\":{\"status\":"
                            "\"down\"}},\"details\":{}}"),
                     0);
    assert_string_equal(status_out, "error");

    assert_int_equal(health(false, 503, "{\"status\":\"shutting_down\"}"), 0);
    assert_string_equal(status_out, "shutting_down");
}

static void test_health_200_with_status_error(void **state)
{
    (void)state;
    assert_int_equal(health(false, 200, "{\"status\":\"error\"}"), 0);
    assert_string_equal(status_out, "error");
}

static void test_health_garbage(void **state)
{
    (void)state;
    assert_int_equal(health(false, 200, "<html>ok</html>"), -1);
    assert_true(why[0] != '\0');
    assert_int_equal(health(false, 200, "{\"status\":\"fine\"}"), -1);
    assert_non_null(strstr(why, "status"));
    assert_int_equal(health(false, 200, "{\"status\":1}"), -1);
    assert_int_equal(health(false, 200, "{\"message\":\"pong\"}"), -1);
    assert_int_equal(health(false, 200, ""), -1);
    assert_int_equal(health(false, 503, "Service Unavailable"), -1);
}

static void test_health_ping_pong(void **state)
{
    (void)state;
    assert_int_equal(health(true, 200, "{\"message\":\"pong\"}"), 1);
    assert_string_equal(status_out, "pong");
}

static void test_health_ping_other_message(void **state)
{
    (void)state;
    assert_int_equal(health(true, 200, "{\"message\":\"hello\"}"), -1);
    assert_non_null(strstr(why, "message"));
    assert_int_equal(health(true, 200, "{\"status\":\"ok\"}"), -1);
    assert_int_equal(health(true, 200, "pong"), -1);
    /* /ping answers only 200. */
    assert_int_equal(health(true, 503, "{\"message\":\"pong\"}"), -1);
}

static void test_health_401(void **state)
{
    const char *body = "{\"message\":\"Unauthorized\",\"statusCode\":401}";

    (void)state;
    assert_int_equal(health(false, 401, body), -1);
    assert_string_equal(why, "HTTP 401: Unauthorized");
    assert_int_equal(health(true, 401, body), -1);
    assert_string_equal(why, "HTTP 401: Unauthorized");
}

static void test_health_core_422(void **state)
{
    (void)state;
    /* WAHA Core <= 2026.5 answers /health with 422. */
    assert_int_equal(health(false, 422,
                            "{\"message\":\"The feature is available "
                            "only in Plus version for 'WEBJS' "
                            "engine. Check this out: https://waha."
                            "devlike.pro/\",\"error\":\"Unprocessable"
                            " Entity\",\"statusCode\":422}"),
                     -1);
    assert_non_null(strstr(why, "HTTP 422: The feature is available only in Plus"));
}

/*========================================================================
 * waha_describe_error
 */

static const char *describe(long code, const char *body)
{
    why[0] = '\0';
    waha_describe_error(code, body, strlen(body), why);
    return why;
}

static void test_describe_404(void **state)
{
    (void)state;
    assert_string_equal(describe(404, "{\"message\":\"Session not found\","
                                      "\"error\":\"Not Found\",\"statusCode\":404}"),
                        "HTTP 404: Session not found");
    assert_string_equal(describe(404, "{\"message\":\"Cannot GET /api/foo\","
                                      "\"error\":\"Not Found\",\"statusCode\":404}"),
                        "HTTP 404: Cannot GET /api/foo");
}

/*
 * WAHA's 500 (docs/waha-api.md section 5) carries its message in
 * exception.message; upstream.h documents the result as
 * "HTTP 500: Session closed".
 */
static void test_describe_waha_500(void **state)
{
    (void)state;
    assert_string_equal(
        describe(500, "{\"statusCode\":500,\"timestamp\":\"2023-07-12T10:00:45.551Z\","
                      "\"exception\":{\"message\":\"Session closed\",\"name\":"
                      "\"Error\",\"stack\":\"Error: Session closed\\n    at x\"},"
                      "\"request\":{\"path\":\"/api/sessions/default\",\"method\":"
                      "\"GET\",\"body\":{},\"query\":{}},\"version\":{\"version\":"
                      "\"2026.2.1\",\"engine\":\"WEBJS\",\"tier\":\"CORE\","
                      "\"browser\":null,\"platform\":\"linux/x64\",\"worker\":"
                      "{\"id\":null}}}"),
        "HTTP 500: Session closed");
}

static void test_describe_non_json(void **state)
{
    (void)state;
    assert_string_equal(describe(502, "<html><body>Bad Gateway</body></html>"),
                        "HTTP 502");
    assert_string_equal(describe(500, ""), "HTTP 500");
    assert_string_equal(describe(503, "{\"message\":"), "HTTP 503");
    assert_string_equal(describe(500, "[\"x\"]"), "HTTP 500");
}

/* A transfer that ended without a body hands over NULL and 0. */
static void test_no_body(void **state)
{
    char out[16] = "";
    int count = -1;

    (void)state;
    why[0] = '\0';
    waha_describe_error(502, NULL, 0, why);
    assert_string_equal(why, "HTTP 502");
    why[0] = '\0';
    assert_int_equal(waha_parse_session("default", NULL, 0, &rec, why), -1);
    assert_true(why[0] != '\0');
    assert_int_equal(waha_parse_session_list(NULL, 0, recs, 8, &count, why), -1);
    assert_int_equal(count, 0);
    assert_int_equal(waha_health_verdict(false, 200, NULL, 0, out, sizeof(out), why), -1);
}

static void test_describe_other_shapes(void **state)
{
    char body[512];
    char expect[160];

    (void)state;
    /* Validation failure: message is an array, error the reason phrase. */
    assert_string_equal(describe(400, "{\"message\":[\"name must be shorter\"],"
                                      "\"error\":\"Bad Request\","
                                      "\"statusCode\":400}"),
                        "HTTP 400: Bad Request");
    assert_string_equal(describe(403, "{\"message\":\"Forbidden\","
                                      "\"statusCode\":403}"),
                        "HTTP 403: Forbidden");

    /* A long message is cut to 100 characters and never overflows. */
    snprintf(body, sizeof(body), "{\"message\":\"%0300d\"}", 0);
    describe(500, body);
    snprintf(expect, sizeof(expect), "HTTP 500: %0100d", 0);
    assert_string_equal(why, expect);
    assert_true(strlen(why) < WAHA_WHY_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_real_object),
        cmocka_unit_test(test_session_starting_object),
        cmocka_unit_test(test_session_wrong_name),
        cmocka_unit_test(test_session_status_missing_or_invalid),
        cmocka_unit_test(test_session_open_set_statuses),
        cmocka_unit_test(test_session_me_variants),
        cmocka_unit_test(test_session_not_json),
        cmocka_unit_test(test_session_not_an_object),
        cmocka_unit_test(test_session_nesting_bound),
        cmocka_unit_test(test_session_body_size_bound),
        cmocka_unit_test(test_session_non_json_numbers_rejected),
        cmocka_unit_test(test_list_array),
        cmocka_unit_test(test_list_empty),
        cmocka_unit_test(test_list_not_array),
        cmocka_unit_test(test_list_invalid_item),
        cmocka_unit_test(test_list_more_items_than_max),
        cmocka_unit_test(test_health_200_ok),
        cmocka_unit_test(test_health_503_error),
        cmocka_unit_test(test_health_200_with_status_error),
        cmocka_unit_test(test_health_garbage),
        cmocka_unit_test(test_health_ping_pong),
        cmocka_unit_test(test_health_ping_other_message),
        cmocka_unit_test(test_health_401),
        cmocka_unit_test(test_health_core_422),
        cmocka_unit_test(test_describe_404),
        cmocka_unit_test(test_describe_waha_500),
        cmocka_unit_test(test_describe_non_json),
        cmocka_unit_test(test_describe_other_shapes),
        cmocka_unit_test(test_no_body),
    };

    return cmocka_run_group_tests_name("upstream", tests, NULL, NULL);
}
