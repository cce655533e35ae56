/*
 * request.c - parse one HTTP/1.1 request (see request.h).
 *
 * DESIGN
 * A request is parsed only once its whole head has arrived (found by its
 * blank line, within REQUEST_MAX_HEAD bytes), together with its body when
 * it has one, by a fresh http_parser (Debian's libhttp-parser) whose
 * callbacks copy the target, the fields of request_fields[] and the body
 * into the caller's struct http_request; on_message_complete pauses the
 * parser, so the bytes it consumed are exactly one request, and what
 * follows (a pipelined request) is left for the next call. So parsing is
 * stateless between calls: a partial request is parsed again from its
 * start when more bytes have come, which costs little because heads are
 * small and a request normally arrives in one read.
 *
 * Everything the parser or the bounds refuse becomes a REQUEST_REFUSED
 * outcome with the status the RFCs give (400 malformed, 413 body, 414
 * target, 431 head), which the transport answers and then closes.
 */
#include "request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

const struct request_field request_fields[HEADER_FIELD_COUNT] = {
    [HEADER_HOST] = {"Host", 255},
    [HEADER_IF_NONE_MATCH] = {"If-None-Match", 255},
    [HEADER_ACCEPT] = {"Accept", 255},
    [HEADER_AUTHORIZATION] = {"Authorization", 511},
    [HEADER_X_API_KEY] = {"X-Api-Key", 255},
    [HEADER_ORIGIN] = {"Origin", 255},
    [HEADER_LAST_EVENT_ID] = {"Last-Event-ID", 63},
    [HEADER_X_WEBHOOK_HMAC] = {"X-Webhook-Hmac", 255},
    [HEADER_X_FORWARDED_FOR] = {"X-Forwarded-For", 511},
};

/* What the parser's callbacks work on for the request being parsed. */
struct parse_state {
    struct http_request *req;
    char *body;
    size_t target_len;
    char target[REQUEST_MAX_TARGET + 1]; /* raw, until it is decoded */
    int field;                           /* the field being read, or -1 */
    int header_count;
    bool too_many_headers, target_too_long, body_too_large, expect_continue, is_expect;
    bool complete;
};

/*========================================================================
 * The parser's callbacks.
 */

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parse_state *st = p->data;

    if (st->target_len + len > REQUEST_MAX_TARGET) {
        st->target_too_long = true;
        return -1;
    }
    memcpy(st->target + st->target_len, at, len);
    st->target_len += len;
    st->target[st->target_len] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct parse_state *st = p->data;

    if (++st->header_count > REQUEST_MAX_HEADERS) {
        st->too_many_headers = true;
        return -1;
    }
    st->field = -1;
    st->is_expect = len == 6 && strncasecmp(at, "Expect", 6) == 0;
    for (int f = 0; f < HEADER_FIELD_COUNT; f++) {
        if (strlen(request_fields[f].name) == len &&
            strncasecmp(at, request_fields[f].name, len) == 0) {
            st->field = f;
            break;
        }
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parse_state *st = p->data;
    struct http_request *req = st->req;

    if (st->is_expect)
        st->expect_continue = len == 12 && strncasecmp(at, "100-continue", 12) == 0;
    if (st->field < 0 || len > request_fields[st->field].max ||
        req->values_len + len + 1 > sizeof(req->values))
        return 0; /* not kept, or too long: as if absent */
    memcpy(req->values + req->values_len, at, len);
    req->values[req->values_len + len] = '\0';
    req->field_at[st->field] = (uint16_t)(req->values_len + 1);
    req->values_len += len + 1;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct parse_state *st = p->data;

    if (p->content_length > REQUEST_MAX_BODY && p->content_length != ULLONG_MAX) {
        st->body_too_large = true;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct parse_state *st = p->data;
    struct http_request *req = st->req;

    if (req->body_len + len > REQUEST_MAX_BODY) {
        st->body_too_large = true;
        http_parser_pause(p, 1);
        return 0;
    }
    memcpy(st->body + req->body_len, at, len);
    req->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct parse_state *st = p->data;

    st->complete = true;
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/*========================================================================
 * The target.
 */

static enum request_method method_of(unsigned int m)
{
    switch (m) {
    case HTTP_GET: return METHOD_GET;
    case HTTP_HEAD: return METHOD_HEAD;
    case HTTP_POST: return METHOD_POST;
    case HTTP_OPTIONS: return METHOD_OPTIONS;
    default: return METHOD_OTHER;
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decode the LEN bytes of PATH into OUT (as large as PATH): %XX
 * becomes its byte, any other '%' stays as it is, '+' is not a space in a
 * path. Returns the decoded length, or -1 when it decodes to a NUL byte.
 */
static long decode_path(const char *path, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int high = path[i] == '%' && i + 2 < len ? hex_value(path[i + 1]) : -1;
        int low = high >= 0 ? hex_value(path[i + 2]) : -1;
        if (low >= 0) {
            out[n] = (char)(high * 16 + low);
            i += 2;
            if (out[n] == '\0')
                return -1;
        } else {
            out[n] = path[i];
        }
        n++;
    }
    out[n] = '\0';
    return (long)n;
}

/* Split the raw target of ST into REQ's decoded path and raw query. */
static bool store_target(struct parse_state *st, struct http_request *req)
{
    char *query = memchr(st->target, '?', st->target_len);
    size_t path_len = query ? (size_t)(query - st->target) : st->target_len;
    long decoded;

    if (path_len == 0 || st->target[0] != '/')
        return false;
    decoded = decode_path(st->target, path_len, req->target);
    if (decoded < 0)
        return false;
    req->path_len = (size_t)decoded;
    req->has_query = query != NULL;
    /* The decoded path is never longer than the raw one: the query fits. */
    if (query != NULL)
        memcpy(req->target + req->path_len + 1, query + 1,
               st->target_len - path_len); /* with the raw target's NUL */
    else
        req->target[req->path_len + 1] = '\0';
    return true;
}

/*========================================================================
 * One request.
 */

/* The length of the request head at the start of DATA, or 0 if its end
 * is not there. Bare LF line ends count too, as http_parser takes them. */
static size_t head_length(const char *data, size_t len)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4);

    if (end != NULL)
        return (size_t)(end - data) + 4;
    end = memmem(data, len, "\n\n", 2);
    return end != NULL ? (size_t)(end - data) + 2 : 0;
}

static void refused(struct request_outcome *out, int status, const char *code,
                    const char *message)
{
    out->status = REQUEST_REFUSED;
    out->http_status = status;
    out->code = code;
    snprintf(out->message, sizeof(out->message), "%s", message);
}

/* The parser stopped on a complete message: check it and fill REQ. */
static void complete(const http_parser *parser, struct parse_state *st,
                     struct http_request *req, size_t nparsed,
                     struct request_outcome *out)
{
    if (parser->upgrade) {
        refused(out, 400, "bad_request", "protocol upgrades are not supported");
        return;
    }
    if (parser->http_major != 1 || parser->http_minor > 1) {
        refused(out, 400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are spoken here");
        return;
    }
    if (!store_target(st, req)) {
        refused(out, 400, "bad_request", "the request target cannot be decoded");
        return;
    }
    req->method = method_of(parser->method);
    req->head = parser->method == HTTP_HEAD;
    req->keep_alive = http_should_keep_alive(parser) != 0;
    st->body[req->body_len] = '\0';
    out->status = REQUEST_COMPLETE;
    out->consumed = nparsed;
}

/* The parser stopped before the end of the message: why? */
static void incomplete(const http_parser *parser, const struct parse_state *st,
                       size_t nparsed, size_t window, size_t have,
                       struct request_outcome *out)
{
    if (st->target_too_long) {
        refused(out, 414, "uri_too_long", "the request target is longer than 2 KiB");
    } else if (st->too_many_headers) {
        refused(out, 431, "header_too_large",
                "the request has more than 100 header fields");
    } else if (HTTP_PARSER_ERRNO(parser) != HPE_OK) {
        char message[80];
        snprintf(message, sizeof(message), "malformed request (%s)",
                 http_errno_name(HTTP_PARSER_ERRNO(parser)));
        refused(out, 400, "bad_request", message);
    } else if (window < have || have >= REQUEST_MAX_BYTES) {
        /* Not complete in the largest request there may be (a chunked
         * body whose framing outgrows it). */
        refused(out, 413, "payload_too_large", "the request body is larger than 64 KiB");
    } else {
        out->status = REQUEST_INCOMPLETE; /* the body is still coming */
        out->expect_continue = st->expect_continue && nparsed == window && window == have;
    }
}

void request_parse(const char *data, size_t have, struct http_request *req, char *body,
                   struct request_outcome *out)
{
    struct parse_state st = {.req = req, .body = body, .field = -1};
    size_t head, window, nparsed;
    http_parser parser;

    memset(out, 0, sizeof(*out));
    head = head_length(data, have < REQUEST_MAX_HEAD ? have : REQUEST_MAX_HEAD);
    if (head == 0) {
        if (have >= REQUEST_MAX_HEAD)
            refused(out, 431, "header_too_large",
                    "the request line and headers are larger than 8 KiB");
        else
            out->status = REQUEST_INCOMPLETE; /* the rest of the head is to come */
        return;
    }
    memset(req->field_at, 0, sizeof(req->field_at));
    req->values_len = 0;
    req->body_len = 0;
    window = have < head + REQUEST_MAX_BODY + 64 ? have : head + REQUEST_MAX_BODY + 64;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &st;
    nparsed = http_parser_execute(&parser, &settings, data, window);
    if (st.body_too_large)
        refused(out, 413, "payload_too_large", "the request body is larger than 64 KiB");
    else if (st.complete)
        complete(&parser, &st, req, nparsed, out);
    else
        incomplete(&parser, &st, nparsed, window, have, out);
}

const char *request_field_value(const struct http_request *req, enum header_field f)
{
    return req->field_at[f] != 0 ? req->values + req->field_at[f] - 1 : NULL;
}

void http_request_view_of(const struct http_request *req, struct http_request_view *view)
{
    memset(view, 0, sizeof(*view));
    view->method = req->method;
    view->path = req->target;
    view->query = req->has_query ? req->target + req->path_len + 1 : NULL;
    for (int f = 0; f < HEADER_FIELD_COUNT; f++)
        view->header[f] = request_field_value(req, (enum header_field)f);
    view->client = req->client;
    view->admin = req->admin;
}
