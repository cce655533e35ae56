/*
 * test_waha.c - unit tests for common/waha.c: validation of WAHA's answers
 * (session object with its engine kept apart, session list item by item,
 * /health and /ping), the session names the region can hold, and the short
 * reason kept for a failed call.
 *
 * Why: the fetcher stores whatever these functions accept into the shared
 * region, and every worker then serves it as the contract's JSON. An answer
 * that slips through (wrong session, bad status, not JSON, too large for the
 * region's fixed buffers) would replace good cached data with garbage for
 * every client at once; an answer wrongly refused would make the gateway
 * report WAHA as failing; one list item the region cannot hold (a name
 * WAHA let through before 2025-08) must not spoil the others. The bodies
 * below are the shapes documented in docs/waha-api.md (sections 2, 3.2,
 * 3.3, 5 and 9).
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
    /* The body is the object without its "engine" (what WAHA's list gives),
     * compact, '/' not escaped; the engine is kept apart, compact. (Before
     * issue 16 the body was the whole object, engine included.) */
    minify(real_session, compact);
    *strstr(compact, ",\"engine\":") = '\0';
    strcat(compact, "}");
    assert_string_equal(rec.body, compact);
    assert_int_equal(rec.body_len, strlen(rec.body));
    assert_null(strstr(rec.body, "engine"));
    assert_non_null(strstr(rec.body, "\"url\":\"https://example.com/hook\""));
    assert_non_null(strstr(rec.body, "\"activity\":1741249702485"));
    assert_true(rec.has_engine);
    assert_string_equal(rec.engine_json, "{\"engine\":\"WEBJS\",\"WWebVersion\":"
                                         "\"2.3000.x\",\"state\":\"CONNECTED\"}");
    assert_int_equal(rec.engine_len, strlen(rec.engine_json));
}

static void test_session_starting_object(void **state)
{
    (void)state;
    assert_int_equal(parse("default", starting_session), 0);
    assert_string_equal(rec.status, "STARTING");
    assert_string_equal(rec.me_json, "null");
    assert_string_equal(rec.body, "{\"name\":\"default\",\"status\":\"STARTING\","
                                  "\"config\":{},\"me\":null,\"presence\":null,"
                                  "\"timestamps\":{}}");
    assert_int_equal(rec.body_len, strlen(rec.body));
    assert_true(rec.has_engine);
    assert_string_equal(rec.engine_json, "{\"engine\":\"NOWEB\"}");
}

static void test_session_engine_variants(void **state)
{
    char *body;
    size_t n;

    (void)state;
    /* No engine (a list item, or an old WAHA): none, and an empty one. */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":\"STOPPED\"}"),
                     0);
    assert_false(rec.has_engine);
    assert_int_equal(rec.engine_len, 0);
    assert_string_equal(rec.engine_json, "");
    /* A stopped session on WAHA Core: "engine": {} (docs/waha-api.md 10.3). */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":\"STOPPED\","
                                      "\"engine\":{}}"),
                     0);
    assert_true(rec.has_engine);
    assert_string_equal(rec.engine_json, "{}");
    assert_string_equal(rec.body, "{\"name\":\"default\",\"status\":\"STOPPED\"}");
    /* engine null, or a string: kept as WAHA sent it. */
    assert_int_equal(parse("default", "{\"name\":\"default\",\"status\":\"STOPPED\","
                                      "\"engine\":\"NOWEB\"}"),
                     0);
    assert_string_equal(rec.engine_json, "\"NOWEB\"");

    /* An engine that the region's REGION_ENGINE_MAX cannot hold. */
    body = malloc(REGION_ENGINE_MAX + 200);
    assert_non_null(body);
    n = (size_t)sprintf(body, "{\"name\":\"default\",\"status\":\"WORKING\","
                              "\"engine\":{\"x\":\"");
    memset(body + n, 'e', REGION_ENGINE_MAX);
    strcpy(body + n + REGION_ENGINE_MAX, "\"}}");
    expect_rejected("default", body, "engine");
    /* One that just fits: {"x":"eee..."} of REGION_ENGINE_MAX - 1 bytes. */
    n = (size_t)sprintf(body, "{\"name\":\"default\",\"status\":\"WORKING\","
                              "\"engine\":{\"x\":\"");
    memset(body + n, 'e', REGION_ENGINE_MAX - 1 - 8);
    strcpy(body + n + REGION_ENGINE_MAX - 1 - 8, "\"}}");
    assert_int_equal(parse("default", body), 0);
    assert_int_equal(rec.engine_len, REGION_ENGINE_MAX - 1);
    free(body);
}

static void test_session_wrong_name(void **state)
{
    (void)state;
    expect_rejected("shop", real_session, "name");
    expect_rejected("Default", real_session, "name");
    expect_rejected("default", "{\"status\":\"WORKING\"}", "name");
    expect_rejected("default", "{\"name\":7,\"status\":\"WORKING\"}", "name");
    expect_rejected("a b", "{\"name\":\"a  b\",\"status\":\"WORKING\"}", "name");
}

/*
 * Was: "bad.name" refused. WAHA holds names outside ^[a-zA-Z0-9_-]*$
 * (checked only since 2025-08, never on the deprecated start endpoint,
 * docs/waha-api.md 9): the region takes any UTF-8 name that fits.
 */
static void test_session_unusual_names(void **state)
{
    static const char *const names[] = {
        "sales.team", "a b", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "a/b", "100%"};
    char body[256], name[REGION_NAME_MAX + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":\"WORKING\"}",
                 names[i]);
        assert_int_equal(parse(names[i], body), 0);
        assert_string_equal(rec.name, names[i]);
    }
    /* REGION_NAME_MAX - 1 bytes fit; REGION_NAME_MAX do not. */
    memset(name, 'n', REGION_NAME_MAX - 1);
    name[REGION_NAME_MAX - 1] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":\"WORKING\"}", name);
    assert_int_equal(parse(name, body), 0);
    assert_string_equal(rec.name, name);
    name[REGION_NAME_MAX - 1] = 'n';
    name[REGION_NAME_MAX] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"status\":\"WORKING\"}", name);
    expect_rejected(name, body, "a session name of 64 bytes");
}

static void test_name_ok(void **state)
{
    char name[REGION_NAME_MAX + 1];

    (void)state;
    assert_true(waha_name_ok("default"));
    assert_true(waha_name_ok("x"));
    assert_true(waha_name_ok("sales.team"));
    assert_true(waha_name_ok("a b"));
    assert_true(waha_name_ok("caf\xc3\xa9"));
    assert_true(waha_name_ok("\xf0\x9f\x98\x80")); /* U+1F600, 4 bytes */
    assert_false(waha_name_ok(""));
    /* Bytes, not characters: 63 fit. */
    memset(name, 'n', REGION_NAME_MAX - 1);
    name[REGION_NAME_MAX - 1] = '\0';
    assert_true(waha_name_ok(name));
    name[REGION_NAME_MAX - 1] = 'n';
    name[REGION_NAME_MAX] = '\0';
    assert_false(waha_name_ok(name));
    /* 31 two-byte characters (62 bytes) fit; 32 (64 bytes) do not. */
    for (int i = 0; i < 32; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[64] = '\0';
    assert_false(waha_name_ok(name));
    name[62] = '\0';
    assert_true(waha_name_ok(name));
    /* Not UTF-8: a lone continuation byte, a cut sequence, an overlong
     * form, a surrogate, beyond U+10FFFF. */
    assert_false(waha_name_ok("a\x80"));
    assert_false(waha_name_ok("caf\xc3"));
    assert_false(waha_name_ok("\xc0\xaf"));
    assert_false(waha_name_ok("\xed\xa0\x80"));
    assert_false(waha_name_ok("\xf4\x90\x80\x80"));
    assert_false(waha_name_ok("\xff"));
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
 * The session list: waha_list_open / waha_list_item
 */

static struct json_object *list;

/* Open BODY as the session list (NULL with WHY when it is not one). */
static struct json_object *open_list(const char *body)
{
    why[0] = '\0';
    list = waha_list_open(body, body ? strlen(body) : 0, why);
    return list;
}

static enum waha_item item(size_t i)
{
    memset(&rec, 0, sizeof(rec));
    why[0] = '\0';
    return waha_list_item(list, i, &rec, why);
}

static void close_list(void)
{
    if (list != NULL)
        waha_list_close(list);
    list = NULL;
}

static void test_list_array(void **state)
{
    (void)state;
    assert_non_null(open_list("[{\"name\":\"default\",\"status\":\"WORKING\","
                              "\"me\":{\"id\":\"1@c.us\",\"pushName\":\"A\"}},"
                              "{\"name\":\"shop\",\"status\":\"SCAN_QR_CODE\","
                              "\"me\":null},"
                              "{\"name\":\"s_3\",\"status\":\"STOPPED\"}]"));
    assert_int_equal(waha_list_length(list), 3);
    assert_int_equal(item(0), WAHA_ITEM_OK);
    assert_string_equal(rec.name, "default");
    assert_string_equal(rec.status, "WORKING");
    assert_string_equal(rec.me_json, "{\"id\":\"1@c.us\",\"pushName\":\"A\"}");
    assert_false(rec.has_engine); /* list items have none (docs/waha-api.md 9) */
    assert_int_equal(item(1), WAHA_ITEM_OK);
    assert_string_equal(rec.name, "shop");
    assert_string_equal(rec.status, "SCAN_QR_CODE");
    assert_string_equal(rec.me_json, "null");
    assert_int_equal(item(2), WAHA_ITEM_OK);
    assert_string_equal(rec.name, "s_3");
    assert_string_equal(rec.body, "{\"name\":\"s_3\",\"status\":\"STOPPED\"}");
    assert_int_equal(rec.body_len, strlen(rec.body));
    /* An item read twice reads the same (the engine is taken out of the
     * parsed object once, the rest stays). */
    assert_int_equal(item(0), WAHA_ITEM_OK);
    assert_string_equal(rec.name, "default");
    close_list();
}

static void test_list_item_with_engine(void **state)
{
    (void)state;
    /* WAHA's docs show list items with an engine: then it is kept apart,
     * as good as the details. */
    assert_non_null(open_list("[{\"name\":\"a\",\"status\":\"WORKING\","
                              "\"engine\":{\"engine\":\"GOWS\"}}]"));
    assert_int_equal(item(0), WAHA_ITEM_OK);
    assert_true(rec.has_engine);
    assert_string_equal(rec.engine_json, "{\"engine\":\"GOWS\"}");
    assert_string_equal(rec.body, "{\"name\":\"a\",\"status\":\"WORKING\"}");
    close_list();
}

static void test_list_empty(void **state)
{
    (void)state;
    assert_non_null(open_list("[]"));
    assert_int_equal(waha_list_length(list), 0);
    close_list();
    assert_non_null(open_list(" [ ]\n"));
    assert_int_equal(waha_list_length(list), 0);
    close_list();
}

static void test_list_not_array(void **state)
{
    (void)state;
    assert_null(open_list("{\"name\":\"default\",\"status\":\"WORKING\"}"));
    assert_non_null(strstr(why, "array"));
    assert_null(open_list("not json"));
    assert_true(why[0] != '\0');
    assert_null(open_list("[{\"name\":\"a\",\"status\":\"WORKING\"}"));
    assert_null(open_list("[] []"));
    assert_null(open_list("null"));
    assert_null(open_list(""));
}

static void test_list_invalid_item(void **state)
{
    (void)state;
    /* Not a session object: the list is not WAHA's (the caller drops all
     * of it, answers.c). */
    assert_non_null(open_list("[{\"name\":\"a\",\"status\":\"WORKING\"},"
                              "{\"name\":\"b\"},"
                              "null,"
                              "\"a\","
                              "{\"name\":\"c\",\"status\":\"WORKING\",\"me\":{}},"
                              "{\"status\":\"WORKING\"},"
                              "{\"name\":\"d\",\"status\":\"working\"}]"));
    assert_int_equal(item(0), WAHA_ITEM_OK);
    for (size_t i = 1; i < 7; i++) {
        if (item(i) != WAHA_ITEM_INVALID)
            fail_msg("item %zu is not INVALID", i);
        assert_true(why[0] != '\0');
    }
    close_list();
}

static void test_list_item_skipped(void **state)
{
    char body[512], name[REGION_NAME_MAX + 8];

    (void)state;
    /* A name the region cannot hold (70 bytes) is skipped, saying why; the
     * items around it are read as usual. "a b" is a name like another
     * (was: the whole list refused). */
    memset(name, 'x', 70);
    name[70] = '\0';
    snprintf(body, sizeof(body),
             "[{\"name\":\"a b\",\"status\":\"WORKING\"},"
             "{\"name\":\"%s\",\"status\":\"WORKING\"},"
             "{\"name\":\"sales.team\",\"status\":\"STOPPED\"}]",
             name);
    assert_non_null(open_list(body));
    assert_int_equal(item(0), WAHA_ITEM_OK);
    assert_string_equal(rec.name, "a b");
    assert_int_equal(item(1), WAHA_ITEM_SKIPPED);
    assert_non_null(strstr(why, "a session name of 70 bytes"));
    assert_int_equal(item(2), WAHA_ITEM_OK);
    assert_string_equal(rec.name, "sales.team");
    close_list();

    /* A lone surrogate escaped in the JSON text: json-c (0.16) makes it
     * U+FFFD, an older one may leave bytes that are not UTF-8 (skipped);
     * either way the item is never INVALID for the whole list, and a name
     * that is kept is UTF-8. */
    assert_non_null(open_list("[{\"name\":\"x\\ud800y\",\"status\":\"WORKING\"},"
                              "{\"name\":\"ok\",\"status\":\"WORKING\"}]"));
    assert_true(item(0) != WAHA_ITEM_INVALID);
    if (rec.name[0] != '\0')
        assert_true(waha_name_ok(rec.name));
    assert_int_equal(item(1), WAHA_ITEM_OK);
    close_list();
}

/* Was test_list_more_items_than_max: waha_parse_session_list() filled at
 * most MAX records. The list is now read item by item and the capacity
 * (server.max_sessions) is answers.c's (test_answers.c): any length is read. */
static void test_list_long(void **state)
{
    size_t size = 200 * 48 + 8, n = 0;
    char *body = malloc(size);

    (void)state;
    assert_non_null(body);
    body[n++] = '[';
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(body + n, size - n,
                              "%s{\"name\":\"s%d\",\"status\":\"WORKING\"}", i ? "," : "",
                              i);
    body[n++] = ']';
    body[n] = '\0';
    assert_non_null(open_list(body));
    free(body);
    assert_int_equal(waha_list_length(list), 200);
    assert_int_equal(item(199), WAHA_ITEM_OK);
    assert_string_equal(rec.name, "s199");
    close_list();
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

    (void)state;
    why[0] = '\0';
    waha_describe_error(502, NULL, 0, why);
    assert_string_equal(why, "HTTP 502");
    why[0] = '\0';
    assert_int_equal(waha_parse_session("default", NULL, 0, &rec, why), -1);
    assert_true(why[0] != '\0');
    assert_null(waha_list_open(NULL, 0, why));
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
        cmocka_unit_test(test_session_engine_variants),
        cmocka_unit_test(test_session_wrong_name),
        cmocka_unit_test(test_session_unusual_names),
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test(test_session_status_missing_or_invalid),
        cmocka_unit_test(test_session_open_set_statuses),
        cmocka_unit_test(test_session_me_variants),
        cmocka_unit_test(test_session_not_json),
        cmocka_unit_test(test_session_not_an_object),
        cmocka_unit_test(test_session_nesting_bound),
        cmocka_unit_test(test_session_body_size_bound),
        cmocka_unit_test(test_session_non_json_numbers_rejected),
        cmocka_unit_test(test_list_array),
        cmocka_unit_test(test_list_item_with_engine),
        cmocka_unit_test(test_list_empty),
        cmocka_unit_test(test_list_not_array),
        cmocka_unit_test(test_list_invalid_item),
        cmocka_unit_test(test_list_item_skipped),
        cmocka_unit_test(test_list_long),
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

    return cmocka_run_group_tests_name("waha", tests, NULL, NULL);
}
