/*
 * test_json.c - unit tests for common/json.c, common/timeutil.c and the
 * helpers of server/http.c (http_query_param(), the response builders).
 *
 * Why: every response body the workers pre-render goes through struct jbuf
 * and jbuf_string(); a bound that lets a write through, or an escape that is
 * missed, turns into a corrupt or unsafe JSON answer. json_parse_bounded() is
 * the gate every WAHA body passes before it may replace cached data, so it
 * must reject truncated and trailing input. time_format_iso() prints the
 * fetchedAt / lastSuccessAt timestamps of the contract, and
 * http_query_param() picks ?session= and ?format= out of the request, and
 * the response builders must never write past their fixed slots.
 * The expected timestamps below were computed with `date -u -d @SECONDS`,
 * independently of the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "json.h"
#include "timeutil.h"

/*========================================================================
 * struct jbuf
 */

static void test_jbuf_appends_and_terminates(void **state)
{
    char storage[32];
    struct jbuf b;

    (void)state;
    memset(storage, 'Z', sizeof(storage));
    jbuf_init(&b, storage, sizeof(storage));
    assert_int_equal(b.len, 0);
    assert_false(b.overflow);
    assert_string_equal(storage, "");

    jbuf_raw(&b, "{\"a\":");
    jbuf_printf(&b, "%d,\"b\":%s", 42, "true");
    jbuf_mem(&b, "}xyz", 1);
    assert_false(b.overflow);
    assert_string_equal(storage, "{\"a\":42,\"b\":true}");
    assert_int_equal(b.len, strlen(storage));
}

static void test_jbuf_exact_fit(void **state)
{
    char storage[8];
    struct jbuf b;

    (void)state;
    jbuf_init(&b, storage, sizeof(storage));
    jbuf_raw(&b, "abcdefg"); /* 7 bytes + NUL == capacity */
    assert_false(b.overflow);
    assert_int_equal(b.len, 7);
    assert_string_equal(storage, "abcdefg");
}

static void test_jbuf_raw_overflow_keeps_data(void **state)
{
    char storage[8];
    struct jbuf b;

    (void)state;
    jbuf_init(&b, storage, sizeof(storage));
    jbuf_raw(&b, "abc");
    jbuf_raw(&b, "defgh"); /* 3 + 5 + NUL = 9 > 8 */
    assert_true(b.overflow);
    assert_int_equal(b.len, 3);
    assert_string_equal(storage, "abc");

    /* Once overflowed, even appends that would fit are refused. */
    jbuf_raw(&b, "x");
    jbuf_printf(&b, "%d", 1);
    assert_true(b.overflow);
    assert_int_equal(b.len, 3);
    assert_string_equal(storage, "abc");
}

static void test_jbuf_printf_overflow_keeps_data(void **state)
{
    char storage[8];
    struct jbuf b;

    (void)state;
    jbuf_init(&b, storage, sizeof(storage));
    jbuf_raw(&b, "abc");
    jbuf_printf(&b, "%s", "12345"); /* needs 6 bytes, 5 left */
    assert_true(b.overflow);
    assert_int_equal(b.len, 3);
    assert_string_equal(storage, "abc");
}

static void test_jbuf_mem_overflow_keeps_data(void **state)
{
    char storage[6];
    struct jbuf b;

    (void)state;
    jbuf_init(&b, storage, sizeof(storage));
    jbuf_mem(&b, "ab", 2);
    jbuf_mem(&b, "cdef", 4);
    assert_true(b.overflow);
    assert_int_equal(b.len, 2);
    assert_string_equal(storage, "ab");
}

static void test_jbuf_string_overflow_keeps_data(void **state)
{
    char storage[10];
    struct jbuf b;

    (void)state;
    jbuf_init(&b, storage, sizeof(storage));
    jbuf_raw(&b, "[");
    jbuf_string(&b, "too long for this");
    assert_true(b.overflow);
    assert_int_equal(b.len, 1);
    assert_string_equal(storage, "[");
}

/*========================================================================
 * jbuf_string / jbuf_time
 */

static void render_string(const char *text, char *out, size_t out_size)
{
    struct jbuf b;

    jbuf_init(&b, out, out_size);
    jbuf_string(&b, text);
    assert_false(b.overflow);
}

static void test_jbuf_string_escapes(void **state)
{
    char out[128];

    (void)state;
    render_string("plain", out, sizeof(out));
    assert_string_equal(out, "\"plain\"");

    render_string("say \"hi\"", out, sizeof(out));
    assert_string_equal(out, "\"say \\\"hi\\\"\"");

    render_string("C:\\dir", out, sizeof(out));
    assert_string_equal(out, "\"C:\\\\dir\"");

    render_string("a\nb\tc\rd", out, sizeof(out));
    assert_string_equal(out, "\"a\\nb\\tc\\rd\"");

    /* Other control characters become \u00XX. */
    render_string("x\001y\037z", out, sizeof(out));
    assert_string_equal(out, "\"x\\u0001y\\u001fz\"");

    /* '/' is not escaped (URLs stay readable). */
    render_string("http://a/b", out, sizeof(out));
    assert_string_equal(out, "\"http://a/b\"");

    render_string("", out, sizeof(out));
    assert_string_equal(out, "\"\"");
}

static void test_jbuf_string_utf8_passes_through(void **state)
{
    char out[128];

    (void)state;
    /* "Café €" and an emoji, as raw UTF-8 bytes. */
    render_string("Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", out, sizeof(out));
    assert_string_equal(out, "\"Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

static void test_jbuf_string_null(void **state)
{
    char out[16];
    struct jbuf b;

    (void)state;
    jbuf_init(&b, out, sizeof(out));
    jbuf_string(&b, NULL);
    assert_false(b.overflow);
    assert_string_equal(out, "null");
}

static void test_jbuf_time(void **state)
{
    char out[64];
    struct jbuf b;

    (void)state;
    jbuf_init(&b, out, sizeof(out));
    jbuf_time(&b, 0);
    assert_string_equal(out, "null");

    jbuf_init(&b, out, sizeof(out));
    jbuf_time(&b, 1795940400123LL);
    assert_false(b.overflow);
    assert_string_equal(out, "\"2026-11-29T08:20:00.123Z\"");
}

/*========================================================================
 * time_format_iso
 */

static void test_time_format_iso_known_values(void **state)
{
    static const struct {
        int64_t ms;
        const char *iso;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {999, "1970-01-01T00:00:00.999Z"},
        {1000, "1970-01-01T00:00:01.000Z"},
        {1700000000000LL, "2023-11-14T22:13:20.000Z"},
        {1795940400123LL, "2026-11-29T08:20:00.123Z"},
        {951782400999LL, "2000-02-29T00:00:00.999Z"}, /* leap day */
        {4102444799999LL, "2099-12-31T23:59:59.999Z"},
        {253402300799000LL, "9999-12-31T23:59:59.000Z"},
    };
    char buf[TIME_ISO_LEN];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(buf, 'Z', sizeof(buf));
        assert_ptr_equal(time_format_iso(cases[i].ms, buf), buf);
        assert_string_equal(buf, cases[i].iso);
        assert_int_equal(strlen(buf), TIME_ISO_LEN - 1);
    }
}

static void test_time_clocks(void **state)
{
    int64_t m1, m2, r;

    (void)state;
    m1 = time_mono_ms();
    m2 = time_mono_ms();
    r = time_real_ms();
    assert_true(m1 > 0);
    assert_true(m2 >= m1);
    /* After 2020-01-01: the real clock is in milliseconds, not seconds. */
    assert_true(r > 1577836800000LL);
}

/*========================================================================
 * json_error_body
 */

static void test_json_error_body(void **state)
{
    char out[256];
    size_t n;

    (void)state;
    n = json_error_body(out, sizeof(out), "not_found", "no session \"x\"");
    assert_string_equal(out, "{\"error\":{\"code\":\"not_found\","
                             "\"message\":\"no session \\\"x\\\"\"}}");
    assert_int_equal(n, strlen(out));
}

static void test_json_error_body_too_long(void **state)
{
    char out[100];
    char message[300];
    size_t n;

    (void)state;
    memset(message, 'm', sizeof(message) - 1);
    message[sizeof(message) - 1] = '\0';
    n = json_error_body(out, sizeof(out), "bad_request", message);
    assert_string_equal(out, "{\"error\":{\"code\":\"internal\",\"message\":"
                             "\"error message too long\"}}");
    assert_int_equal(n, strlen(out));
}

/*========================================================================
 * json_parse_bounded
 */

static struct json_object *parse(const char *text, char *why)
{
    return json_parse_bounded(text, strlen(text), why, 128);
}

static void test_parse_complete_value(void **state)
{
    char why[128] = "";
    struct json_object *o;

    (void)state;
    o = parse("{\"a\":1,\"b\":[true,null,\"x\"]}", why);
    assert_non_null(o);
    assert_true(json_object_is_type(o, json_type_object));
    assert_int_equal(json_object_object_length(o), 2);
    json_object_put(o);

    o = parse("[1,2,3]", why);
    assert_non_null(o);
    assert_int_equal(json_object_array_length(o), 3);
    json_object_put(o);

    o = parse("\"str\"", why);
    assert_non_null(o);
    assert_string_equal(json_object_get_string(o), "str");
    json_object_put(o);
}

static void test_parse_trailing_blanks_ok(void **state)
{
    char why[128] = "";
    struct json_object *o;

    (void)state;
    o = parse("{\"status\":\"ok\"} \t\r\n\n", why);
    assert_non_null(o);
    assert_string_equal(json_get_string(o, "status"), "ok");
    json_object_put(o);
}

static void test_parse_trailing_data_rejected(void **state)
{
    char why[128] = "";

    (void)state;
    assert_null(parse("{\"status\":\"ok\"} x", why));
    assert_non_null(strstr(why, "not JSON"));

    why[0] = '\0';
    assert_null(parse("{\"a\":1}{\"a\":2}", why));
    assert_true(why[0] != '\0');

    why[0] = '\0';
    assert_null(parse("[1] [2]", why));
    assert_true(why[0] != '\0');
}

static void test_parse_truncated_rejected(void **state)
{
    char why[128] = "";

    (void)state;
    assert_null(parse("{\"status\":\"o", why));
    assert_non_null(strstr(why, "not JSON"));

    why[0] = '\0';
    assert_null(parse("{\"status\":", why));
    assert_true(why[0] != '\0');

    why[0] = '\0';
    assert_null(parse("[1,2", why));
    assert_true(why[0] != '\0');

    why[0] = '\0';
    assert_null(parse("", why));
    assert_true(why[0] != '\0');
}

static void test_parse_garbage_rejected(void **state)
{
    char why[128] = "";

    (void)state;
    assert_null(parse("<html>502 Bad Gateway</html>", why));
    assert_true(why[0] != '\0');
    why[0] = '\0';
    assert_null(parse("{\"a\" 1}", why));
    assert_true(why[0] != '\0');
}

/*
 * Only JSON is JSON. json-c's default tokener is lax: it takes single
 * quotes, trailing commas, comments, NaN and Infinity, and json-c then writes
 * NaN/Infinity back out as bare words, so a body accepted here is cached and
 * served as "application/json" that no browser can JSON.parse().
 * Single quotes are the one laxity json-c's strict mode keeps; see
 * test_parse_single_quotes_come_out_as_json.
 */
static void test_parse_rejects_lax_syntax(void **state)
{
    static const char *const not_json[] = {
        "[1,2,]",      "{\"a\":1,}", "/* c */ {\"a\":1}",
        "{\"a\":NaN}", "[Infinity]", "{\"a\":01}",
    };
    int accepted = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
        char why[128] = "";
        struct json_object *o = parse(not_json[i], why);
        if (o != NULL) {
            print_message("accepted as JSON: %s -> %s\n", not_json[i],
                          json_object_to_json_string(o));
            accepted++;
        }
        json_object_put(o);
    }
    assert_int_equal(accepted, 0);
}

/*
 * json-c (0.16) accepts single-quoted strings even in strict mode. What is
 * cached is the re-serialisation, which must then be real JSON.
 */
static void test_parse_single_quotes_come_out_as_json(void **state)
{
    char why[128] = "";
    struct json_object *o = parse("{'a':1}", why);
    const char *text;

    (void)state;
    assert_non_null(o);
    text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    assert_string_equal(text, "{\"a\":1}");
    json_object_put(o);
}

static void test_parse_only_len_bytes(void **state)
{
    /* Only LEN bytes are the input: what follows in memory is not read. */
    const char *text = "{\"a\":\"b\"}GARBAGE";
    char why[128] = "";
    struct json_object *o = json_parse_bounded(text, 9, why, sizeof(why));

    (void)state;
    assert_non_null(o);
    assert_string_equal(json_get_string(o, "a"), "b");
    json_object_put(o);

    /* And a LEN that cuts the value is a truncated value. */
    assert_null(json_parse_bounded(text, 8, why, sizeof(why)));
}

static void nested(char *out, int depth)
{
    int n = 0;

    for (int i = 0; i < depth; i++)
        out[n++] = '[';
    for (int i = 0; i < depth; i++)
        out[n++] = ']';
    out[n] = '\0';
}

static void test_parse_depth_bound(void **state)
{
    char text[256];
    char why[128] = "";
    struct json_object *o;

    (void)state;
    nested(text, 20);
    o = parse(text, why);
    assert_non_null(o);
    json_object_put(o);

    /* Exactly JSON_MAX_DEPTH levels are allowed, one more is not. */
    nested(text, JSON_MAX_DEPTH);
    o = parse(text, why);
    assert_non_null(o);
    json_object_put(o);

    nested(text, JSON_MAX_DEPTH + 1);
    assert_null(parse(text, why));
    assert_non_null(strstr(why, "deep"));

    nested(text, JSON_MAX_DEPTH + 40);
    assert_null(parse(text, why));
}

/*
 * A top-level number is a complete JSON value (RFC 8259), and "parse exactly
 * LEN bytes as one JSON value" must accept it. json-c only knows a number has
 * ended when it sees the next byte, so a parser that stops at LEN bytes has
 * to finish the value itself.
 */
static void test_parse_top_level_scalars(void **state)
{
    char why[128] = "";
    struct json_object *o;

    (void)state;
    /* With a blank after it json-c sees the end of the number. */
    o = parse("12.5 ", why);
    assert_non_null(o);
    json_object_put(o);

    o = parse("true", why);
    if (o == NULL)
        print_message("json_parse_bounded(\"true\", 4) rejected: %s\n", why);
    assert_non_null(o);
    assert_true(json_object_get_boolean(o));
    json_object_put(o);

    why[0] = '\0';
    o = parse("123", why);
    if (o == NULL)
        print_message("json_parse_bounded(\"123\", 3) rejected: %s\n", why);
    assert_non_null(o);
    assert_int_equal(json_object_get_int(o), 123);
    json_object_put(o);
}

static void test_json_get_string(void **state)
{
    char why[128];
    struct json_object *o = parse("{\"s\":\"x\",\"n\":1,\"z\":null}", why);

    (void)state;
    assert_non_null(o);
    assert_string_equal(json_get_string(o, "s"), "x");
    assert_null(json_get_string(o, "n"));
    assert_null(json_get_string(o, "z"));
    assert_null(json_get_string(o, "missing"));
    json_object_put(o);

    o = parse("[\"s\"]", why);
    assert_null(json_get_string(o, "s"));
    json_object_put(o);

    /* A NUL inside: C would read "a" where JSON has "a\0b" (fuzz_webhook). */
    o = parse("{\"s\":\"a\\u0000b\"}", why);
    assert_non_null(o);
    assert_null(json_get_string(o, "s"));
    json_object_put(o);
}

/* What json-c lets through but is not UTF-8 (found by fuzz_upstream). */
static void test_parse_rejects_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "{\"s\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"s\":\"\xe0\x80\xaf\"}",     /* overlong, 3 bytes */
        "{\"s\":\"\xed\xa0\x80\"}",     /* a surrogate */
        "{\"s\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
        "{\"s\":\"\xe2\x82\"}",         /* cut short */
        "{\"s\":\"\xff\"}",
    };
    char why[128];
    struct json_object *o;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        assert_null(parse(bad[i], why));
        assert_string_equal(why, "not JSON: not UTF-8");
    }
    o = parse("{\"s\":\"Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", why);
    assert_non_null(o);
    json_object_put(o);
}

static void test_parse_length_bound(void **state)
{
    char why[128] = "";

    (void)state;
    /* Refused before a byte is read. */
    assert_null(json_parse_bounded("{}", (size_t)1 << 32, why, sizeof(why)));
    assert_non_null(strstr(why, "too large"));
}

/*========================================================================
 * server/http.c: response helpers and http_query_param
 */

static void test_http_response_error(void **state)
{
    static struct http_response resp;

    (void)state;
    memset(&resp, 0, sizeof(resp));
    http_response_error(&resp, 404, "not_found", "session \"x\" is not tracked");
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.content_type, "application/json");
    assert_ptr_equal(resp.body, resp.small);
    assert_string_equal(resp.body, "{\"error\":{\"code\":\"not_found\","
                                   "\"message\":\"session \\\"x\\\" is not "
                                   "tracked\"}}");
    assert_int_equal(resp.body_len, strlen(resp.small));
}

static void test_http_response_header(void **state)
{
    static struct http_response resp;
    char long_value[HTTP_HEADER_VALUE_MAX * 2];

    (void)state;
    memset(&resp, 0, sizeof(resp));
    http_response_header(&resp, "Cache-Control", "max-age=%d", 8);
    assert_int_equal(resp.header_count, 1);
    assert_string_equal(resp.headers[0].name, "Cache-Control");
    assert_string_equal(resp.headers[0].value, "max-age=8");

    /* A value longer than the slot is cut, never overflows. */
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    http_response_header(&resp, "X-Long", "%s", long_value);
    assert_int_equal(strlen(resp.headers[1].value), HTTP_HEADER_VALUE_MAX - 1);

    /* The table never grows past HTTP_MAX_HEADERS. */
    for (int i = 0; i < HTTP_MAX_HEADERS + 3; i++)
        http_response_header(&resp, "X-N", "%d", i);
    assert_int_equal(resp.header_count, HTTP_MAX_HEADERS);
}

static void test_http_reason(void **state)
{
    (void)state;
    assert_string_equal(http_reason(200), "OK");
    assert_string_equal(http_reason(304), "Not Modified");
    assert_string_equal(http_reason(404), "Not Found");
    assert_string_equal(http_reason(429), "Too Many Requests");
    assert_string_equal(http_reason(503), "Service Unavailable");
    assert_string_equal(http_reason(299), "Unknown");
}

static void test_query_param_present(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(http_query_param("session=default", "session", out, sizeof(out)), 0);
    assert_string_equal(out, "default");

    assert_int_equal(
        http_query_param("a=1&session=shop&format=raw", "format", out, sizeof(out)), 0);
    assert_string_equal(out, "raw");

    assert_int_equal(
        http_query_param("a=1&session=shop&format=raw", "session", out, sizeof(out)), 0);
    assert_string_equal(out, "shop");

    /* The first of repeated keys. */
    assert_int_equal(http_query_param("session=a&session=b", "session", out, sizeof(out)),
                     0);
    assert_string_equal(out, "a");

    /* Present but empty. */
    assert_int_equal(http_query_param("session=", "session", out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void test_query_param_absent(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(http_query_param("format=raw", "session", out, sizeof(out)), -1);
    assert_int_equal(http_query_param("", "session", out, sizeof(out)), -1);
    assert_int_equal(http_query_param("sessions=x", "session", out, sizeof(out)), -1);
}

static void test_query_param_null_query(void **state)
{
    char out[8] = "keep";

    (void)state;
    assert_int_equal(http_query_param(NULL, "session", out, sizeof(out)), -1);
    assert_string_equal(out, "keep");
}

static void test_query_param_percent_decoded(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(http_query_param("session=my%2Dshop", "session", out, sizeof(out)),
                     0);
    assert_string_equal(out, "my-shop");
    assert_int_equal(http_query_param("q=a%20b%26c", "q", out, sizeof(out)), 0);
    assert_string_equal(out, "a b&c");
    assert_int_equal(http_query_param("q=a+b", "q", out, sizeof(out)), 0);
    assert_string_equal(out, "a b");
}

static void test_query_param_too_long(void **state)
{
    char out[8];

    (void)state;
    memset(out, 'Q', sizeof(out));
    /* 7 characters + NUL fit exactly. */
    assert_int_equal(http_query_param("session=abcdefg", "session", out, sizeof(out)), 0);
    assert_string_equal(out, "abcdefg");
    /* 8 do not, and nothing is written past the buffer. */
    assert_int_equal(http_query_param("session=abcdefgh", "session", out, sizeof(out)),
                     -2);
}

/*
 * A parameter without '=' elsewhere in the query ("?session=shop&debug", or
 * a cache-buster like "?session=shop&1700000000") must not hide the
 * parameters that are there: otherwise /api/waha/status answers for the
 * default session instead of "shop".
 */
static void test_query_param_with_valueless_neighbour(void **state)
{
    char out[64] = "";

    (void)state;
    assert_int_equal(http_query_param("session=shop&debug", "session", out, sizeof(out)),
                     0);
    assert_string_equal(out, "shop");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jbuf_appends_and_terminates),
        cmocka_unit_test(test_jbuf_exact_fit),
        cmocka_unit_test(test_jbuf_raw_overflow_keeps_data),
        cmocka_unit_test(test_jbuf_printf_overflow_keeps_data),
        cmocka_unit_test(test_jbuf_mem_overflow_keeps_data),
        cmocka_unit_test(test_jbuf_string_overflow_keeps_data),
        cmocka_unit_test(test_jbuf_string_escapes),
        cmocka_unit_test(test_jbuf_string_utf8_passes_through),
        cmocka_unit_test(test_jbuf_string_null),
        cmocka_unit_test(test_jbuf_time),
        cmocka_unit_test(test_time_format_iso_known_values),
        cmocka_unit_test(test_time_clocks),
        cmocka_unit_test(test_json_error_body),
        cmocka_unit_test(test_json_error_body_too_long),
        cmocka_unit_test(test_parse_complete_value),
        cmocka_unit_test(test_parse_trailing_blanks_ok),
        cmocka_unit_test(test_parse_trailing_data_rejected),
        cmocka_unit_test(test_parse_truncated_rejected),
        cmocka_unit_test(test_parse_garbage_rejected),
        cmocka_unit_test(test_parse_rejects_lax_syntax),
        cmocka_unit_test(test_parse_single_quotes_come_out_as_json),
        cmocka_unit_test(test_parse_only_len_bytes),
        cmocka_unit_test(test_parse_depth_bound),
        cmocka_unit_test(test_parse_top_level_scalars),
        cmocka_unit_test(test_json_get_string),
        cmocka_unit_test(test_parse_rejects_invalid_utf8),
        cmocka_unit_test(test_parse_length_bound),
        cmocka_unit_test(test_http_response_error),
        cmocka_unit_test(test_http_response_header),
        cmocka_unit_test(test_http_reason),
        cmocka_unit_test(test_query_param_present),
        cmocka_unit_test(test_query_param_absent),
        cmocka_unit_test(test_query_param_null_query),
        cmocka_unit_test(test_query_param_percent_decoded),
        cmocka_unit_test(test_query_param_too_long),
        cmocka_unit_test(test_query_param_with_valueless_neighbour),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
