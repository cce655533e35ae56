/*
 * test_request.c - unit tests for server/worker/request.c: request_parse()
 * (whole, partial, refused and pipelined requests, the header table, the
 * decoded path and the raw query, keep-alive, HEAD, Expect: 100-continue,
 * the HTTP versions, RFC 9112's rules against request smuggling, Host, the
 * target forms, trailing blanks, chunk sizes) and http_request_view_of().
 *
 * Why: every byte a client sends goes through request_parse() first. A
 * partial request taken for a whole one (or the other way round) answers
 * garbage or hangs the connection; a pipelined request that consumes more
 * or less than its own bytes shifts every later request on the connection;
 * a wrong status for an oversized request (400 instead of 413, 414, 431)
 * tells the client the wrong thing to fix; a header value longer than its
 * slot that is cut instead of dropped becomes another value (an ETag that
 * matches, a key that is accepted); a path whose %00 decodes into a NUL
 * ends early and names another resource; a connection kept alive after
 * HTTP/1.0 without keep-alive leaves the client waiting for the close.
 *
 * Each input is copied into a buffer of exactly its length, so reading
 * beyond what request_parse() was given is caught under ASan (make unit
 * SANITIZE=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "request.h"

static struct http_request req;
static char body[REQUEST_MAX_BODY + 1];
static struct request_outcome out;

/* request_parse() the first LEN bytes of DATA, from a buffer of LEN bytes. */
static enum request_status parse_n(const char *data, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);

    assert_non_null(copy);
    memcpy(copy, data, len);
    memset(&req, 0x5a, sizeof(req));            /* nothing of a last request is kept */
    memset(&req.client, 0, sizeof(req.client)); /* the transport's to set */
    req.admin = false;
    request_parse(copy, len, &req, body, &out);
    free(copy);
    return out.status;
}

static enum request_status parse(const char *text)
{
    return parse_n(text, strlen(text));
}

static void expect_complete(const char *text)
{
    if (parse(text) != REQUEST_COMPLETE)
        fail_msg("not complete (%d, %d %s: %s): %s", out.status, out.http_status,
                 out.code ? out.code : "", out.message, text);
    assert_int_equal(out.consumed, strlen(text));
}

static void expect_refused(const char *text, int status, const char *code)
{
    if (parse(text) != REQUEST_REFUSED)
        fail_msg("not refused (%d): %.200s", out.status, text);
    assert_int_equal(out.http_status, status);
    assert_string_equal(out.code, code);
    assert_true(out.message[0] != '\0');
}

static const char *path(void)
{
    return req.target;
}

static const char *query(void)
{
    struct http_request_view v;

    http_request_view_of(&req, &v);
    return v.query;
}

static const char *field(enum header_field f)
{
    return request_field_value(&req, f);
}

/* A string of N copies of C (static; the last one returned). */
static const char *repeat(char c, size_t n)
{
    static char buf[REQUEST_MAX_BODY + 2];

    assert_true(n < sizeof(buf));
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* TEXT built with printf into a buffer of its own (up to 96 KiB). */
static const char *fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *format, ...)
{
    static char buf[REQUEST_MAX_BYTES + 32768];
    va_list ap;
    int n;

    va_start(ap, format);
    n = vsnprintf(buf, sizeof(buf), format, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(buf));
    return buf;
}

/*========================================================================
 * Complete, incomplete, pipelined
 */

static void test_complete_get(void **state)
{
    (void)state;
    expect_complete("GET /api/waha/status?session=default HTTP/1.1\r\n"
                    "Host: gw.example\r\nAccept: */*\r\n\r\n");
    assert_int_equal(req.method, METHOD_GET);
    assert_false(req.head);
    assert_true(req.keep_alive);
    assert_string_equal(path(), "/api/waha/status");
    assert_int_equal(req.path_len, strlen("/api/waha/status"));
    assert_true(req.has_query);
    assert_string_equal(query(), "session=default");
    assert_string_equal(field(HEADER_HOST), "gw.example");
    assert_string_equal(field(HEADER_ACCEPT), "*/*");
    assert_null(field(HEADER_ORIGIN));
    assert_int_equal(req.body_len, 0);
    assert_string_equal(body, "");
}

static void test_every_prefix_is_incomplete(void **state)
{
    static const char *const requests[] = {
        "GET /api/waha/status HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n\r\n",
        "POST /api/waha/webhook HTTP/1.1\r\nHost: h\r\nContent-Length: "
        "11\r\n\r\n{\"a\":\"bc\"}\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
        "chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    };

    (void)state;
    for (size_t r = 0; r < sizeof(requests) / sizeof(requests[0]); r++) {
        size_t len = strlen(requests[r]);

        for (size_t n = 0; n < len; n++) {
            if (parse_n(requests[r], n) != REQUEST_INCOMPLETE)
                fail_msg("%zu of %zu bytes of request %zu: status %d (%d %s)", n, len, r,
                         out.status, out.http_status, out.message);
            assert_false(out.expect_continue);
        }
        expect_complete(requests[r]);
    }
}

static void test_body(void **state)
{
    (void)state;
    expect_complete(
        "POST /api/waha/webhook HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n"
        "{\"a\":1}");
    assert_int_equal(req.method, METHOD_POST);
    assert_int_equal(req.body_len, 7);
    assert_string_equal(body, "{\"a\":1}"); /* NUL-terminated */

    /* Chunked: the body is the chunks' data, the framing is consumed. */
    expect_complete(
        "POST /api/waha/webhook HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        "\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n");
    assert_int_equal(req.body_len, 7);
    assert_string_equal(body, "{\"a\":1}");

    /* The body is not taken for the next request: its bytes are consumed. */
    expect_complete("POST /w HTTP/1.1\r\nHost: h\r\nContent-Length: 18\r\n\r\nGET / "
                    "HTTP/1.1\r\n\r\n");
    assert_int_equal(req.body_len, 18);
}

static void test_pipelined(void **state)
{
    const char *first = "GET /a?x=1 HTTP/1.1\r\nHost: one\r\nAccept: a\r\n\r\n";
    const char *second =
        "POST /b HTTP/1.1\r\nHost: two\r\nContent-Length: 3\r\nOrigin: o\r\n\r\nxyz";
    const char *third = "HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *all = fmt("%s%s%s", first, second, third);
    size_t at = 0, total = strlen(all);

    (void)state;
    /* Each call takes exactly one request, whatever follows it. */
    assert_int_equal(parse_n(all, total), REQUEST_COMPLETE);
    assert_int_equal(out.consumed, strlen(first));
    assert_string_equal(path(), "/a");
    assert_string_equal(field(HEADER_HOST), "one");
    at += out.consumed;

    assert_int_equal(parse_n(all + at, total - at), REQUEST_COMPLETE);
    assert_int_equal(out.consumed, strlen(second));
    assert_string_equal(path(), "/b");
    assert_string_equal(body, "xyz");
    /* Nothing of the request before: its own Host, no Accept, no query. */
    assert_string_equal(field(HEADER_HOST), "two");
    assert_null(field(HEADER_ACCEPT));
    assert_string_equal(field(HEADER_ORIGIN), "o");
    assert_false(req.has_query);
    assert_null(query());
    at += out.consumed;

    assert_int_equal(parse_n(all + at, total - at), REQUEST_COMPLETE);
    assert_int_equal(out.consumed, strlen(third));
    assert_true(req.head);
    assert_null(field(HEADER_ORIGIN));
    assert_int_equal(req.body_len, 0);

    /* A whole request followed by part of the next: the whole one. */
    assert_int_equal(parse_n(all, strlen(first) + 10), REQUEST_COMPLETE);
    assert_int_equal(out.consumed, strlen(first));
}

static void test_bare_lf_line_ends(void **state)
{
    (void)state;
    expect_complete("GET /x HTTP/1.1\nHost: lf\n\n");
    assert_string_equal(path(), "/x");
    assert_string_equal(field(HEADER_HOST), "lf");
}

/*========================================================================
 * Refused
 */

static void test_refused_malformed_400(void **state)
{
    (void)state;
    expect_refused("GARBAGE\r\n\r\n", 400, "bad_request");
    assert_non_null(strstr(out.message, "malformed request ("));
    expect_refused("GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n", 400,
                   "bad_request");
    expect_refused("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400,
                   "bad_request");
    expect_refused(
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400, "bad_request");
    /* Targets that are not a path (absolute-form: test_target_forms). */
    expect_refused("GET ftp://gw.example/api/waha/status HTTP/1.1\r\nHost: h\r\n\r\n",
                   400, "bad_request");
    assert_string_equal(out.message, "the request target cannot be decoded");
    expect_refused("GET ?a=1 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
    /* Protocol upgrades (WebSocket, h2c). */
    expect_refused("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: "
                   "websocket\r\n\r\n",
                   400, "bad_request");
    assert_string_equal(out.message, "protocol upgrades are not supported");
}

static void test_refused_body_413(void **state)
{
    (void)state;
    /* A Content-Length over the limit is refused before the body comes. */
    expect_refused(fmt("POST /w HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
                       REQUEST_MAX_BODY + 1),
                   413, "payload_too_large");
    /* At the limit: taken whole. */
    expect_complete(fmt("POST /w HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s",
                        REQUEST_MAX_BODY, repeat('b', REQUEST_MAX_BODY)));
    assert_int_equal(req.body_len, REQUEST_MAX_BODY);
    assert_int_equal(body[REQUEST_MAX_BODY], '\0');
    /* Chunked, over the limit. */
    expect_refused(fmt("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                       "chunked\r\n\r\n%x\r\n%s\r\n",
                       REQUEST_MAX_BODY + 1, repeat('c', REQUEST_MAX_BODY + 1)),
                   413, "payload_too_large");
    /* Chunked, under the limit in data but not complete in the most bytes a
     * request may take (its framing outgrows them). */
    {
        static char many[REQUEST_MAX_BYTES + 8192];
        size_t n = (size_t)snprintf(
            many, sizeof(many),
            "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        while (n + 6 < sizeof(many)) {
            memcpy(many + n, "1\r\nz\r\n", 6);
            n += 6;
        }
        many[n] = '\0';
        expect_refused(many, 413, "payload_too_large");
    }
}

static void test_refused_target_414(void **state)
{
    const char *head = "GET /";
    size_t room = REQUEST_MAX_TARGET - 1; /* the target's bytes after "/" */

    (void)state;
    /* Path and query count together; REQUEST_MAX_TARGET bytes are taken. */
    expect_complete(fmt("%s%s HTTP/1.1\r\nHost: h\r\n\r\n", head, repeat('p', room)));
    assert_int_equal(req.path_len, REQUEST_MAX_TARGET);
    expect_complete(fmt("GET /a?%s HTTP/1.1\r\nHost: h\r\n\r\n", repeat('q', room - 2)));
    assert_int_equal(strlen(query()), room - 2);
    /* One more is refused. */
    expect_refused(fmt("%s%s HTTP/1.1\r\nHost: h\r\n\r\n", head, repeat('p', room + 1)),
                   414, "uri_too_long");
    expect_refused(fmt("GET /a?%s HTTP/1.1\r\nHost: h\r\n\r\n", repeat('q', room - 1)),
                   414, "uri_too_long");
}

static void test_refused_head_431(void **state)
{
    const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    size_t fixed = strlen(start) + 4; /* and the final "\r\n\r\n" */

    (void)state;
    /* A head of exactly REQUEST_MAX_HEAD bytes is taken... */
    expect_complete(fmt("%s%s\r\n\r\n", start, repeat('h', REQUEST_MAX_HEAD - fixed)));
    /* ...one byte more is refused, */
    expect_refused(fmt("%s%s\r\n\r\n", start, repeat('h', REQUEST_MAX_HEAD - fixed + 1)),
                   431, "header_too_large");
    /* as is a head whose end has not come within REQUEST_MAX_HEAD bytes. */
    expect_refused(fmt("%s%s", start, repeat('h', REQUEST_MAX_HEAD)), 431,
                   "header_too_large");
    /* Below that it may still come. */
    assert_int_equal(parse(fmt("%s%s", start, repeat('h', REQUEST_MAX_HEAD - 100))),
                     REQUEST_INCOMPLETE);
}

static void test_refused_too_many_headers_431(void **state)
{
    static char text[REQUEST_MAX_HEAD];
    size_t n;

    (void)state;
    n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < REQUEST_MAX_HEADERS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "X-%d: v\r\n", i);
    snprintf(text + n, sizeof(text) - n, "\r\n");
    /* REQUEST_MAX_HEADERS fields: taken. */
    expect_complete(text);
    /* One more: refused. */
    snprintf(text + n, sizeof(text) - n, "X-Last: v\r\n\r\n");
    expect_refused(text, 431, "header_too_large");
    assert_string_equal(out.message, "the request has more than 100 header fields");
}

/*========================================================================
 * Versions, methods, keep-alive, Expect
 */

static void test_http_versions(void **state)
{
    (void)state;
    expect_complete("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_complete("GET / HTTP/1.0\r\n\r\n");
    expect_refused("GET / HTTP/2.0\r\n\r\n", 400, "bad_request");
    assert_string_equal(out.message, "only HTTP/1.0 and HTTP/1.1 are spoken here");
    expect_refused("GET / HTTP/1.2\r\n\r\n", 400, "bad_request");
    expect_refused("GET / HTTP/0.9\r\n\r\n", 400, "bad_request");
    expect_refused("GET / HTTP/3.0\r\n\r\n", 400, "bad_request");
}

static void test_methods(void **state)
{
    (void)state;
    expect_complete("HEAD /api/waha/status HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(req.method, METHOD_HEAD);
    assert_true(req.head);
    expect_complete("OPTIONS /api/waha/status HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(req.method, METHOD_OPTIONS);
    assert_false(req.head);
    expect_complete(
        "POST /api/waha/webhook HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(req.method, METHOD_POST);
    expect_complete("DELETE /api/waha/status HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(req.method, METHOD_OTHER);
    expect_complete("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx");
    assert_int_equal(req.method, METHOD_OTHER);
}

static void test_keep_alive(void **state)
{
    (void)state;
    /* HTTP/1.1: kept unless the client says close. */
    expect_complete("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_true(req.keep_alive);
    expect_complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_false(req.keep_alive);
    expect_complete("GET / HTTP/1.1\r\nHost: h\r\nconnection: Close\r\n\r\n");
    assert_false(req.keep_alive);
    /* HTTP/1.0: closed unless the client asks to keep it. */
    expect_complete("GET / HTTP/1.0\r\n\r\n");
    assert_false(req.keep_alive);
    expect_complete("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(req.keep_alive);
}

static void test_expect_continue(void **state)
{
    const char *with = "POST /w HTTP/1.1\r\nHost: h\r\nExpect: "
                       "100-continue\r\nContent-Length: 5\r\n\r\n";

    (void)state;
    /* The head alone, with Expect: the client waits for 100 Continue. */
    assert_int_equal(parse(with), REQUEST_INCOMPLETE);
    assert_true(out.expect_continue);
    assert_int_equal(parse("POST /w HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\n"
                           "Content-Length: 5\r\n\r\n"),
                     REQUEST_INCOMPLETE);
    assert_true(out.expect_continue);
    /* Without it, or with another expectation: it does not. */
    assert_int_equal(parse("POST /w HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"),
                     REQUEST_INCOMPLETE);
    assert_false(out.expect_continue);
    assert_int_equal(parse("POST /w HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n"
                           "Content-Length: 5\r\n\r\n"),
                     REQUEST_INCOMPLETE);
    assert_false(out.expect_continue);
    /* The body came anyway: a whole request. */
    expect_complete(fmt("%s12345", with));
    assert_string_equal(body, "12345");
}

/*========================================================================
 * The header table
 */

static void test_header_names_case_insensitive(void **state)
{
    (void)state;
    expect_complete("GET / HTTP/1.1\r\nhOST: h\r\nIF-NONE-MATCH: \"e\"\r\n"
                    "last-event-id: 42\r\nx-api-key: k\r\nX-FORWARDED-FOR: 1.2.3.4\r\n"
                    "authorization: Bearer t\r\norigin: https://a\r\n"
                    "x-webhook-hmac: ab\r\n\r\n");
    assert_string_equal(field(HEADER_HOST), "h");
    assert_string_equal(field(HEADER_IF_NONE_MATCH), "\"e\"");
    assert_string_equal(field(HEADER_LAST_EVENT_ID), "42");
    assert_string_equal(field(HEADER_X_API_KEY), "k");
    assert_string_equal(field(HEADER_X_FORWARDED_FOR), "1.2.3.4");
    assert_string_equal(field(HEADER_AUTHORIZATION), "Bearer t");
    assert_string_equal(field(HEADER_ORIGIN), "https://a");
    assert_string_equal(field(HEADER_X_WEBHOOK_HMAC), "ab");
    /* Names that only start like one are other headers (HTTP/1.0: no Host
     * needed). */
    expect_complete("GET / HTTP/1.0\r\nHostname: h\r\nOrigin-X: o\r\nX-Api: k\r\n\r\n");
    assert_null(field(HEADER_HOST));
    assert_null(field(HEADER_ORIGIN));
    assert_null(field(HEADER_X_API_KEY));
}

static void test_header_too_long_is_absent(void **state)
{
    (void)state;
    for (int f = 0; f < HEADER_FIELD_COUNT; f++) {
        size_t max = request_fields[f].max;

        assert_non_null(request_fields[f].name);
        /* At the maximum: kept whole. */
        expect_complete(fmt("GET / HTTP/1.0\r\n%s: %s\r\n\r\n", request_fields[f].name,
                            repeat('v', max)));
        if (field((enum header_field)f) == NULL ||
            strlen(field((enum header_field)f)) != max)
            fail_msg("%s of %zu bytes not kept", request_fields[f].name, max);
        /* One byte longer: absent, not cut. */
        expect_complete(fmt("GET / HTTP/1.0\r\n%s: %s\r\n\r\n", request_fields[f].name,
                            repeat('v', max + 1)));
        if (field((enum header_field)f) != NULL)
            fail_msg("%s of %zu bytes kept", request_fields[f].name, max + 1);
    }
    /* The longest Last-Event-ID is 63 bytes. */
    assert_int_equal(request_fields[HEADER_LAST_EVENT_ID].max, 63);
}

static void test_headers_all_at_their_maximum(void **state)
{
    static char text[REQUEST_MAX_HEAD];
    size_t n;

    (void)state;
    /* Every kept field at its longest at once fits the value space. */
    n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\n");
    for (int f = 0; f < HEADER_FIELD_COUNT; f++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s: %s\r\n",
                              request_fields[f].name,
                              repeat((char)('a' + f), request_fields[f].max));
    snprintf(text + n, sizeof(text) - n, "\r\n");
    expect_complete(text);
    for (int f = 0; f < HEADER_FIELD_COUNT; f++) {
        const char *v = field((enum header_field)f);
        assert_non_null(v);
        assert_int_equal(strlen(v), request_fields[f].max);
        assert_int_equal(v[0], 'a' + f);
    }
}

/*========================================================================
 * The path and the query
 */

static void test_path_percent_decoded(void **state)
{
    (void)state;
    expect_complete(
        "GET /api/waha/sessions/my%20session%2Fqr HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/api/waha/sessions/my session/qr");
    assert_int_equal(req.path_len, strlen("/api/waha/sessions/my session/qr"));
    expect_complete("GET /%41%62%4a%6b HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/AbJk");
    /* '+' is not a space in a path; a '%' without two hex digits stays. */
    expect_complete("GET /a+b%zz%4%g1%%41 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/a+b%zz%4%g1%A");
    expect_complete("GET /end% HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/end%");
    expect_complete("GET /end%4 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/end%4");
    /* Every byte but NUL, in hex digits of either case. */
    for (int c = 1; c < 256; c++) {
        for (int upper = 0; upper < 2; upper++) {
            expect_complete(fmt(upper ? "GET /%%%02X HTTP/1.1\r\nHost: h\r\n\r\n"
                                      : "GET /%%%02x HTTP/1.1\r\nHost: h\r\n\r\n",
                                c));
            if (req.path_len != 2 || (unsigned char)path()[1] != c)
                fail_msg("%%%02x decoded to %zu bytes", c, req.path_len);
        }
    }
    /* Decoded once: %2541 is "%41", not "A". */
    expect_complete("GET /%2541 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/%41");
}

static void test_path_nul_refused(void **state)
{
    (void)state;
    expect_refused("GET /api/waha/status%00.json HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                   "bad_request");
    assert_string_equal(out.message, "the request target cannot be decoded");
    expect_refused("GET /%00 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
    /* In the query it is the handler's to decode (and refuse). */
    expect_complete("GET /a?x=%00 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(query(), "x=%00");
}

static void test_query_kept_raw(void **state)
{
    (void)state;
    expect_complete(
        "GET /api/waha/status?session=a%20b&format=raw+x&e= HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/api/waha/status");
    assert_string_equal(query(), "session=a%20b&format=raw+x&e=");
    /* The path before '?' is decoded, the query after it is not. */
    expect_complete("GET /a%3Fb?c%3Fd HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/a?b");
    assert_string_equal(query(), "c%3Fd");
    /* An empty query is a query; none is NULL. */
    expect_complete("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_true(req.has_query);
    assert_string_equal(query(), "");
    expect_complete("GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_false(req.has_query);
    assert_null(query());
    /* A second '?' belongs to the query. */
    expect_complete("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/a");
    assert_string_equal(query(), "b?c");
}

/*========================================================================
 * The view
 */

static void test_view_of(void **state)
{
    struct http_request_view v;

    (void)state;
    expect_complete(
        "POST /api/waha/webhook?x=1 HTTP/1.1\r\nHost: h\r\nX-Webhook-Hmac: ff\r\n"
        "Content-Length: 2\r\n\r\nok");
    memset(&req.client, 0, sizeof(req.client));
    req.client.bytes[15] = 9;
    req.admin = true;
    memset(&v, 0x5a, sizeof(v));
    http_request_view_of(&req, &v);
    assert_int_equal(v.method, METHOD_POST);
    assert_ptr_equal(v.path, req.target);
    assert_string_equal(v.path, "/api/waha/webhook");
    assert_string_equal(v.query, "x=1");
    for (int f = 0; f < HEADER_FIELD_COUNT; f++)
        if (f != HEADER_X_WEBHOOK_HMAC && f != HEADER_HOST)
            assert_null(v.header[f]);
    assert_string_equal(v.header[HEADER_HOST], "h");
    assert_string_equal(v.header[HEADER_X_WEBHOOK_HMAC], "ff");
    assert_int_equal(v.client.bytes[15], 9);
    assert_true(v.admin);
    /* The rest is the caller's: cleared. */
    assert_null(v.body);
    assert_int_equal(v.body_len, 0);
    assert_null(v.rate);
    assert_false(v.parked);
    assert_false(v.may_wait);
    assert_int_equal(v.now_mono_ms, 0);

    /* A copy of the request (a parked one) has a view of its own. */
    {
        static struct http_request copy;
        struct http_request_view cv;

        copy = req;
        memset(&req, 0, sizeof(req));
        http_request_view_of(&copy, &cv);
        assert_string_equal(cv.path, "/api/waha/webhook");
        assert_string_equal(cv.query, "x=1");
        assert_string_equal(cv.header[HEADER_X_WEBHOOK_HMAC], "ff");
    }
}

/*
 * Issue 14's regression: a parked request once lost Last-Event-ID (its copy
 * kept fewer fields than the transport's), so a stream that had to wait
 * for the fetcher could get an event it already had. A copy of a request
 * shows every field of request_fields[] as the original did.
 */
static void test_a_parked_copy_keeps_every_field(void **state)
{
    static struct http_request copy;
    struct http_request_view v;
    char head[2048], want[32];
    size_t len;

    (void)state;
    len = (size_t)snprintf(head, sizeof(head), "GET /api/waha/events HTTP/1.1\r\n");
    for (int f = 0; f < HEADER_FIELD_COUNT; f++)
        len += (size_t)snprintf(head + len, sizeof(head) - len, "%s: value-%d\r\n",
                                request_fields[f].name, f);
    snprintf(head + len, sizeof(head) - len, "\r\n");
    expect_complete(head);
    copy = req;
    memset(&req, 0, sizeof(req));
    http_request_view_of(&copy, &v);
    for (int f = 0; f < HEADER_FIELD_COUNT; f++) {
        snprintf(want, sizeof(want), "value-%d", f);
        if (v.header[f] == NULL || strcmp(v.header[f], want) != 0)
            fail_msg("%s: %s", request_fields[f].name,
                     v.header[f] ? v.header[f] : "(none)");
    }
    snprintf(want, sizeof(want), "value-%d", HEADER_LAST_EVENT_ID);
    assert_string_equal(v.header[HEADER_LAST_EVENT_ID], want);
}

/*========================================================================
 * RFC 9112's rules for a head (issue 15): smuggling, Host, target forms
 */

static void test_smuggling_heads_400(void **state)
{
    static const char *const heads[] = {
        /* A blank before the colon (5.1): http_parser honoured both. */
        "POST /w HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nOrigin\t: o\r\n\r\n",
        /* obs-fold (5.2). */
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nOrigin: https://a\r\n X-Injected: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n",
        /* Control characters in a value: a bare CR, NUL, DEL, ESC. */
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[2J\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: \x7f\r\n\r\n",
        /* Framing (6.1, 6.3): chunked once and last, nothing else, never
         * with a Content-Length, never in HTTP/1.0; one Content-Length. */
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, "
        "chunked\r\n\r\n0\r\n\r\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
        "chunked\r\n\r\n0\r\n\r\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
        "gzip\r\n\r\n0\r\n\r\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: "
        "5\r\n"
        "\r\n0\r\n\r\n",
        "POST /w HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /w HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: "
        "3\r\n\r\nabc",
        /* Empty lines before the request line do not hide the head. */
        "\r\n\r\nPOST /w HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc",
        "\n\nGET / HTTP/1.1\r\nHost: h\r\n Host: x\r\n\r\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        if (parse(heads[i]) != REQUEST_REFUSED || out.http_status != 400)
            fail_msg("head %zu not refused with 400 (%d, %d): %s", i, out.status,
                     out.http_status, heads[i]);
        assert_string_equal(out.code, "bad_request");
    }
    /* Refused as soon as the head is there, before its body. */
    assert_int_equal(
        parse("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        REQUEST_REFUSED);
    /* chunked in any case and with blanks is chunked; an empty line before
     * the request line is ignored (RFC 9112, 2.2). */
    expect_complete("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  ChunKed \r\n\r\n"
                    "1\r\na\r\n0\r\n\r\n");
    assert_string_equal(body, "a");
    expect_complete("\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_string_equal(path(), "/x");
}

static void test_host_once_in_1_1(void **state)
{
    (void)state;
    expect_refused("GET / HTTP/1.1\r\n\r\n", 400, "bad_request");
    assert_string_equal(out.message, "an HTTP/1.1 request needs a Host header");
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "bad_request");
    assert_string_equal(out.message, "more than one Host header");
    expect_refused("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, "bad_request");
    expect_refused("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, "bad_request");
    expect_refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad_request");
    /* HTTP/1.0 may go without; an empty Host is a Host (RFC 9112, 3.2). */
    expect_complete("GET / HTTP/1.0\r\n\r\n");
    expect_complete("GET / HTTP/1.1\r\nHost:\r\n\r\n");
    expect_complete("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_string_equal(field(HEADER_HOST), "[::1]:8080");
}

static void test_target_forms(void **state)
{
    (void)state;
    /* absolute-form (3.2.2): its path and query, its host for Host. */
    expect_complete("GET http://gw.example:8080/api/waha/status?session=a HTTP/1.1\r\n"
                    "Host: other\r\n\r\n");
    assert_string_equal(path(), "/api/waha/status");
    assert_string_equal(query(), "session=a");
    assert_string_equal(field(HEADER_HOST), "gw.example:8080");
    expect_complete("GET HTTPS://gw.example/a%20b HTTP/1.1\r\nHost: gw.example\r\n\r\n");
    assert_string_equal(path(), "/a b");
    assert_false(req.has_query);
    expect_complete("GET http://gw.example HTTP/1.1\r\nHost: gw.example\r\n\r\n");
    assert_string_equal(path(), "/");
    expect_complete("GET http://gw.example?x=1 HTTP/1.1\r\nHost: gw.example\r\n\r\n");
    assert_string_equal(path(), "/");
    assert_string_equal(query(), "x=1");
    expect_refused("GET http://user@gw.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                   "bad_request");
    expect_refused("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
    /* asterisk-form: OPTIONS only. */
    expect_complete("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(req.method, METHOD_OPTIONS);
    assert_string_equal(path(), "*");
    assert_null(query());
    expect_refused("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request");
}

static void test_values_lose_trailing_blanks(void **state)
{
    (void)state;
    expect_complete("GET / HTTP/1.1\r\nHost: h \r\nAuthorization:  Bearer t \t\r\n"
                    "Origin: https://a.example  \r\nExpect: 100-continue \r\n\r\n");
    assert_string_equal(field(HEADER_HOST), "h");
    assert_string_equal(field(HEADER_AUTHORIZATION), "Bearer t");
    assert_string_equal(field(HEADER_ORIGIN), "https://a.example");
    assert_int_equal(parse("POST /w HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                           "Expect: 100-continue\t\r\n\r\n"),
                     REQUEST_INCOMPLETE);
    assert_true(out.expect_continue);
}

static void test_chunk_size_over_the_limit_413_at_once(void **state)
{
    (void)state;
    /* The size line alone says it: no need to wait for the data. */
    expect_refused(fmt("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "%x\r\n",
                       REQUEST_MAX_BODY + 1),
                   413, "payload_too_large");
    expect_refused("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "fffffffffff\r\nabc",
                   413, "payload_too_large");
    /* Two chunks that together go over. */
    expect_refused(fmt("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "1\r\na\r\n%x\r\n",
                       REQUEST_MAX_BODY),
                   413, "payload_too_large");
    /* At the limit, it may still come. */
    assert_int_equal(parse(fmt("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                               "\r\n\r\n%x\r\n",
                               REQUEST_MAX_BODY)),
                     REQUEST_INCOMPLETE);
}

static void test_trailer_fields_dropped(void **state)
{
    (void)state;
    expect_complete("POST /w HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                    "Origin: https://a.example\r\n\r\n1\r\nz\r\n0\r\n"
                    "Origin: https://evil.example\r\nX-Api-Key: k\r\n\r\n");
    assert_string_equal(field(HEADER_ORIGIN), "https://a.example");
    assert_null(field(HEADER_X_API_KEY));
    assert_string_equal(body, "z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_get),
        cmocka_unit_test(test_every_prefix_is_incomplete),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_bare_lf_line_ends),
        cmocka_unit_test(test_refused_malformed_400),
        cmocka_unit_test(test_refused_body_413),
        cmocka_unit_test(test_refused_target_414),
        cmocka_unit_test(test_refused_head_431),
        cmocka_unit_test(test_refused_too_many_headers_431),
        cmocka_unit_test(test_http_versions),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_header_names_case_insensitive),
        cmocka_unit_test(test_header_too_long_is_absent),
        cmocka_unit_test(test_headers_all_at_their_maximum),
        cmocka_unit_test(test_path_percent_decoded),
        cmocka_unit_test(test_path_nul_refused),
        cmocka_unit_test(test_query_kept_raw),
        cmocka_unit_test(test_view_of),
        cmocka_unit_test(test_a_parked_copy_keeps_every_field),
        cmocka_unit_test(test_smuggling_heads_400),
        cmocka_unit_test(test_host_once_in_1_1),
        cmocka_unit_test(test_target_forms),
        cmocka_unit_test(test_values_lose_trailing_blanks),
        cmocka_unit_test(test_chunk_size_over_the_limit_413_at_once),
        cmocka_unit_test(test_trailer_fields_dropped),
    };

    return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
