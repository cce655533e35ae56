/*
 * test_http.c - unit tests for server/worker/http.c's helpers of the
 * transport and the log: http_response_head() (the head of every answer)
 * and http_query_redacted() (the query of an access log line).
 *
 * Why: a response head that lacks its Content-Length, or carries one for
 * a 204 or an event stream, desynchronises every later answer on a
 * keep-alive connection; one that overflows its buffer unnoticed sends a
 * truncated head. A client key in ?access_token= that reaches the access
 * log is a secret in a file that many can read (issue 15): every way of
 * writing the parameter's name must be redacted, and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http.h"

/*========================================================================
 * http_query_redacted
 */

static const char *redacted(const char *query)
{
    static char out[512];

    memset(out, 'x', sizeof(out));
    http_query_redacted(out, sizeof(out), query);
    return out;
}

static void test_redacts_keys_and_tokens(void **state)
{
    (void)state;
    assert_string_equal(redacted("access_token=SECRET"), "access_token=[REDACTED]");
    assert_string_equal(redacted("session=default&access_token=SECRET&format=raw"),
                        "session=default&access_token=[REDACTED]&format=raw");
    assert_string_equal(redacted("x-api-key=SECRET&X-API-KEY=S2"),
                        "x-api-key=[REDACTED]&X-API-KEY=[REDACTED]");
    assert_string_equal(redacted("api_key=a&apikey=b&key=c&token=d&client_secret=e&"
                                 "password=f"),
                        "api_key=[REDACTED]&apikey=[REDACTED]&key=[REDACTED]&"
                        "token=[REDACTED]&client_secret=[REDACTED]&password=[REDACTED]");
    /* The name percent-encoded, or in another case: still a key. */
    assert_string_equal(redacted("access%5Ftoken=SECRET&ACCESS_TOKEN=S&x-api-%4Bey=K"),
                        "access%5Ftoken=[REDACTED]&ACCESS_TOKEN=[REDACTED]&"
                        "x-api-%4Bey=[REDACTED]");
    /* A value with '=' in it is the value all the same. */
    assert_string_equal(redacted("token=a=b=c&n=1"), "token=[REDACTED]&n=1");
    /* An empty value is redacted too (nothing is left to show). */
    assert_string_equal(redacted("access_token="), "access_token=[REDACTED]");
}

static void test_leaves_the_rest(void **state)
{
    (void)state;
    assert_string_equal(redacted("session=default&format=raw"),
                        "session=default&format=raw");
    /* A name that only contains one of the words, or no value at all. */
    assert_string_equal(redacted("keys=1&tokens=2&token&a&&b="),
                        "keys=1&tokens=2&token&a&&b=");
    assert_string_equal(redacted(""), "");
    assert_string_equal(redacted(NULL), "");
}

static void test_cut_to_fit_never_inside_a_secret(void **state)
{
    char small[24];

    (void)state;
    http_query_redacted(small, sizeof(small), "session=default&access_token=SECRET");
    assert_string_equal(small, "session=default&");
    http_query_redacted(small, sizeof(small), "a=1&token=SECRETSECRETSECRETSECRET");
    assert_string_equal(small, "a=1&token=[REDACTED]");
    assert_null(strstr(small, "SECRET"));
}

/*========================================================================
 * http_response_head
 */

static void test_head_of_an_answer(void **state)
{
    struct http_response resp = {.status = 200, .content_type = "application/json"};
    char head[1024];
    size_t len;

    (void)state;
    http_response_header(&resp, "ETag", "%s", "W/\"1\"");
    len = http_response_head(head, sizeof(head), &resp, 42, false, false);
    assert_int_equal(len, strlen(head));
    assert_true(strncmp(head, "HTTP/1.1 200 OK\r\nDate: ", 23) == 0);
    assert_non_null(strstr(head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(head, "\r\nContent-Length: 42\r\nETag: W/\"1\"\r\n\r\n"));
    assert_null(strstr(head, "Connection"));
    /* Closing: said so. An event stream: no length, closing. */
    http_response_head(head, sizeof(head), &resp, 42, false, true);
    assert_non_null(strstr(head, "\r\nConnection: close\r\n\r\n"));
    http_response_head(head, sizeof(head), &resp, 0, true, true);
    assert_null(strstr(head, "Content-Length"));
    assert_non_null(strstr(head, "\r\nConnection: close\r\n\r\n"));
    /* 204 and 304 have no body: no length, no type. */
    resp.status = 204;
    http_response_head(head, sizeof(head), &resp, 0, false, false);
    assert_true(strncmp(head, "HTTP/1.1 204 No Content\r\n", 25) == 0);
    assert_null(strstr(head, "Content-Length"));
    assert_null(strstr(head, "Content-Type"));
    /* Too small: 0, not a cut head. */
    assert_int_equal(http_response_head(head, 40, &resp, 0, false, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redacts_keys_and_tokens),
        cmocka_unit_test(test_leaves_the_rest),
        cmocka_unit_test(test_cut_to_fit_never_inside_a_secret),
        cmocka_unit_test(test_head_of_an_answer),
    };

    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
