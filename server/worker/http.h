/*
 * http.h - the request view and the prepared response that connect the
 * transport (conn.c and worker.c) with the route handlers (routes.c).
 * Handlers never see the transport's types, so the transport can be
 * replaced without touching them.
 */
#ifndef WAHAGATE_HTTP_H
#define WAHAGATE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ratelimit.h"
#include "region.h"

enum request_method {
    METHOD_GET = 0,
    METHOD_HEAD,
    METHOD_POST,
    METHOD_OPTIONS,
    METHOD_OTHER
};

/*
 * The request header fields wahagate keeps, one row each in
 * request_fields[] (request.c, like nginx's headers_in[]): a header that
 * is not in this list is parsed and dropped. A new header is one enum value
 * and one row.
 */
enum header_field {
    HEADER_HOST = 0,
    HEADER_IF_NONE_MATCH,
    HEADER_ACCEPT,
    HEADER_AUTHORIZATION,
    HEADER_X_API_KEY,
    HEADER_ORIGIN,
    HEADER_LAST_EVENT_ID, /* SSE resumption */
    HEADER_X_WEBHOOK_HMAC,
    HEADER_X_FORWARDED_FOR,
    HEADER_FIELD_COUNT
};

/* What a handler may know about a request. All strings are NUL-terminated. */
struct http_request_view {
    enum request_method method;
    const char *path;  /* decoded, no query: "/api/waha/status"; "*" for OPTIONS * */
    const char *query; /* raw query string without '?', or NULL */
    const char *header[HEADER_FIELD_COUNT]; /* values, or NULL when absent */
    struct client_addr client;              /* who the request counts as (rate limits) */
    bool admin;                             /* arrived on a server.admin_listen socket */
    const char *body;                       /* request body, NUL-terminated, or NULL */
    size_t body_len;
    int64_t now_mono_ms;
    bool parked;   /* this is a second look after waiting */
    bool may_wait; /* false: answer now with what is there */
    /* Where the rate limit's verdict is kept from the first look (when the
     * request is charged) to the answer after parking, which shows it in
     * its RateLimit-* headers; NULL: nowhere. */
    struct ratelimit_verdict *rate;
};

#define HTTP_MAX_HEADERS 16
#define HTTP_HEADER_VALUE_MAX 192
#define HTTP_SMALL_BODY_MAX 1024

struct http_header {
    const char *name; /* a string literal */
    char value[HTTP_HEADER_VALUE_MAX];
};

/*
 * A prepared response. BODY points either into SMALL or into memory the
 * handlers own that stays valid until the next call of routes_handle().
 */
struct http_response {
    int status;
    enum endpoint endpoint;            /* for the request counters */
    int stream_session;                /* ROUTE_STREAM: entry index, or -1 for all */
    const struct auth_key *stream_key; /* ROUTE_STREAM: the client's key, or NULL */
    const char *content_type;
    int header_count;
    struct http_header headers[HTTP_MAX_HEADERS];
    const char *body;
    size_t body_len;
    char small[HTTP_SMALL_BODY_MAX];
};

/*
 * http_response_header_add - add header NAME (a string literal) and return
 * its value's storage (HTTP_HEADER_VALUE_MAX bytes, empty) for the caller
 * to fill; the per-request headers are written this way, without printf.
 */
char *http_response_header_add(struct http_response *resp, const char *name);

void http_response_header(struct http_response *resp, const char *name, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));

/* http_response_error - status STATUS with the project's JSON error body. */
void http_response_error(struct http_response *resp, int status, const char *code,
                         const char *message);

const char *http_reason(int status);

/*
 * http_response_head - the status line and headers of RESP into OUT (SIZE
 * bytes): Date, Content-Type, Content-Length BODY_LEN (not for a STREAM,
 * whose body ends with the connection; not for a 204 or 304), RESP's
 * headers, and Connection: close when CLOSE. Returns its length, or 0 when
 * it does not fit.
 */
size_t http_response_head(char *out, size_t size, const struct http_response *resp,
                          size_t body_len, bool stream, bool close);

/*
 * http_query_param - the decoded value of the first KEY=value in the raw
 * query string QUERY (may be NULL) into OUT (OUT_SIZE bytes). Returns 0 when
 * found, -1 when absent, -2 when the value is too long for OUT (or for
 * HTTP_QUERY_VALUE_MAX) or decodes to something with a NUL in it.
 */
#define HTTP_QUERY_VALUE_MAX 512
int http_query_param(const char *query, const char *key, char *out, size_t out_size);

/*
 * http_query_redacted - the raw query string QUERY for a log line, into OUT
 * (OUT_SIZE bytes, cut to fit): the value of each parameter whose name,
 * percent-decoded and in any case, ends in "key", "token", "secret" or
 * "password" (access_token, x-api-key, api_key...) becomes [REDACTED], so
 * that no client key reaches the log, right or wrong.
 */
void http_query_redacted(char *out, size_t out_size, const char *query);

/*
 * http_printable - TEXT for an error message: printable ASCII kept, any
 * other byte (control characters, bytes that may not be UTF-8) written as
 * '?', cut to fit OUT (OUT_SIZE bytes). So a client's bytes echoed in a
 * JSON error can never make it invalid UTF-8.
 */
void http_printable(char *out, size_t out_size, const char *text);

#endif
