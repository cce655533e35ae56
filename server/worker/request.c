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
 * http_parser is lenient where leniency lets a request mean one thing here
 * and another to a proxy in front (request smuggling), so check_head()
 * reads the raw head first and refuses with 400 what RFC 9112 says a
 * server must refuse or may not guess at: a field name with a blank
 * before its colon (5.1), obs-fold (5.2), control characters in a field
 * value, Transfer-Encoding other than one final chunked (6.1, 6.3; no
 * other coding is accepted), Transfer-Encoding with Content-Length, more
 * than one Content-Length, and a Host twice (3.2); after the parse, a
 * 1.1 request without Host (3.2). Field values lose their trailing
 * blanks (5.5); fields of a chunked body's trailer are dropped. The
 * target may be origin-form (/path?query), absolute-form
 * (http://host/path: its host stands for Host, 3.2.2) or, for OPTIONS
 * only, the asterisk-form (*).
 *
 * Everything the parser or the bounds refuse becomes a REQUEST_REFUSED
 * outcome with the status the RFCs give (400 malformed, 413 body, as soon
 * as a Content-Length or a chunk size says so, 414 target, 431 head),
 * which the transport answers and then closes.
 */
#include "request.h"

#include <ctype.h>
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
    int hosts; /* Host fields in the head (check_head()) */
    bool too_many_headers, target_too_long, body_too_large, expect_continue, is_expect;
    bool headers_done; /* what follows is a trailer: not kept */
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
    st->is_expect = false;
    if (st->headers_done)
        return 0; /* a trailer field: dropped, never merged into the head */
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

    while (len > 0 && (at[len - 1] == ' ' || at[len - 1] == '\t'))
        len--; /* OWS is not part of the value (RFC 9112, 5.1) */
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

    st->headers_done = true;
    if (p->content_length > REQUEST_MAX_BODY && p->content_length != ULLONG_MAX) {
        st->body_too_large = true;
        http_parser_pause(p, 1);
    }
    return 0;
}

/* A chunk's size line: refused at once when the chunk would not fit. */
static int on_chunk_header(http_parser *p)
{
    struct parse_state *st = p->data;

    if (p->content_length > REQUEST_MAX_BODY - st->req->body_len) {
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
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/*========================================================================
 * The raw head (see DESIGN).
 */

/* RFC 9110 5.6.2: the characters of a token (a field name). */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 3986 uri-host [":" port], or nothing: what Host may say. */
static bool valid_host(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && strchr("-._~!$&'()*+,;=%:[]", c) == NULL)
            return false;
    }
    return true;
}

/* The framing and host fields of a head (check_head()). */
struct head_facts {
    int lengths;     /* Content-Length fields */
    int encodings;   /* Transfer-Encoding fields */
    int chunked;     /* "chunked" codings in them */
    bool other_code; /* a coding that is not chunked, or chunked not last */
};

/* Count the codings of a Transfer-Encoding value V (LEN bytes) into F. */
static void count_codings(const char *v, size_t len, struct head_facts *f)
{
    size_t i = 0;

    while (i < len) {
        size_t start, end;

        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        start = i;
        while (i < len && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end == start)
            continue;
        if (f->chunked > 0)
            f->other_code = true; /* anything after chunked */
        if (end - start == 7 && strncasecmp(v + start, "chunked", 7) == 0)
            f->chunked++;
        else
            f->other_code = true;
    }
}

/* One field line LINE (LEN bytes, without its line end); NULL or why not. */
static const char *check_field_line(const char *line, size_t len, struct parse_state *st,
                                    struct head_facts *f)
{
    const char *colon = memchr(line, ':', len), *value;
    size_t name_len, value_len;

    if (line[0] == ' ' || line[0] == '\t')
        return "a header line folded onto the next (obs-fold) is not accepted";
    if (colon == NULL || colon == line)
        return "a header line without a field name and a colon";
    name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)line[i]))
            return "a header field name with a blank or a character a name cannot have";
    value = colon + 1;
    value_len = len - name_len - 1;
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return "a control character in a header value";
    }
    while (value_len > 0 && (*value == ' ' || *value == '\t'))
        value++, value_len--;
    while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
        value_len--;
    if (name_len == 4 && strncasecmp(line, "Host", 4) == 0) {
        st->hosts++;
        if (!valid_host(value, value_len))
            return "the Host header is not a host and port";
    } else if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        f->lengths++;
    } else if (name_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        f->encodings++;
        count_codings(value, value_len, f);
    }
    return NULL;
}

/*
 * Check the field lines of the head at the start of DATA (LEN bytes, its
 * blank line among them) and count its Host fields into ST. NULL, or why
 * the request is refused (400).
 */
static const char *check_head(const char *data, size_t len, struct parse_state *st)
{
    struct head_facts f = {0};
    const char *p = data, *end = data + len, *why = NULL;
    bool request_line = true;

    while (p < end && why == NULL) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        size_t n = lf != NULL ? (size_t)(lf - p) : (size_t)(end - p);

        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (request_line)
            request_line = n == 0; /* empty lines before it are skipped */
        else if (n == 0)
            break; /* the end of the head */
        else
            why = check_field_line(p, n, st, &f);
        if (lf == NULL)
            break;
        p = lf + 1;
    }
    if (why != NULL)
        return why;
    if (st->hosts > 1)
        return "more than one Host header";
    if (f.lengths > 1)
        return "more than one Content-Length header";
    if (f.encodings > 0 && f.lengths > 0)
        return "both Transfer-Encoding and Content-Length";
    if (f.encodings > 0 && (f.other_code || f.chunked != 1))
        return "the only transfer coding accepted is chunked, once and last";
    return NULL;
}

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

/*
 * An absolute-form target (http://host/path?query, RFC 9112 3.2.2) at
 * *TARGET (*LEN bytes): its host becomes REQ's Host (the Host header is
 * ignored), and *TARGET and *LEN become its path and query. False when it
 * is no http or https URI with a host.
 */
static bool absolute_form(struct http_request *req, const char **target, size_t *len)
{
    const char *t = *target, *host, *end = *target + *len;
    size_t scheme, host_len;

    if (*len > 7 && strncasecmp(t, "http://", 7) == 0)
        scheme = 7;
    else if (*len > 8 && strncasecmp(t, "https://", 8) == 0)
        scheme = 8;
    else
        return false;
    host = t + scheme;
    host_len = strcspn(host, "/?");
    if (host + host_len > end)
        host_len = (size_t)(end - host);
    if (host_len == 0 || host_len > request_fields[HEADER_HOST].max ||
        memchr(host, '@', host_len) != NULL || !valid_host(host, host_len) ||
        req->values_len + host_len + 1 > sizeof(req->values))
        return false;
    memcpy(req->values + req->values_len, host, host_len);
    req->values[req->values_len + host_len] = '\0';
    req->field_at[HEADER_HOST] = (uint16_t)(req->values_len + 1);
    req->values_len += host_len + 1;
    *target = host + host_len;
    *len = (size_t)(end - *target);
    return true;
}

/*
 * The target of ST into REQ's decoded path and raw query: origin-form as
 * it is, absolute-form by its path ("/" when it has none), "*" only for
 * OPTIONS (the path is then "*"). False: none of these, or a path that
 * decodes to a NUL.
 */
static bool store_target(struct parse_state *st, struct http_request *req, bool options)
{
    const char *t = st->target, *query;
    size_t len = st->target_len, path_len;
    long decoded;

    if (len == 1 && t[0] == '*' && options) {
        memcpy(req->target, "*\0", 3); /* no query */
        req->path_len = 1;
        req->has_query = false;
        return true;
    }
    if (len == 0 || (t[0] != '/' && !absolute_form(req, &t, &len)))
        return false;
    query = memchr(t, '?', len);
    path_len = query ? (size_t)(query - t) : len;
    if (path_len == 0) {
        memcpy(req->target, "/", 2); /* http://host or http://host?query */
        decoded = 1;
    } else {
        decoded = decode_path(t, path_len, req->target);
    }
    if (decoded < 0)
        return false;
    req->path_len = (size_t)decoded;
    req->has_query = query != NULL;
    /* The decoded path (or "/" for none) is never longer than the raw
     * target before the query: the query fits. */
    if (query != NULL)
        memcpy(req->target + req->path_len + 1, query + 1,
               len - path_len); /* with the raw target's NUL */
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
    if (parser->http_minor == 1 && st->hosts == 0) {
        refused(out, 400, "bad_request", "an HTTP/1.1 request needs a Host header");
        return;
    }
    if (parser->http_minor == 0 && (parser->flags & F_CHUNKED)) {
        refused(out, 400, "bad_request", "chunked needs HTTP/1.1");
        return;
    }
    if (!store_target(st, req, parser->method == HTTP_OPTIONS)) {
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
    size_t lead = 0, head, window, nparsed;
    const char *why;
    http_parser parser;

    memset(out, 0, sizeof(*out));
    while (lead < have && lead < REQUEST_MAX_HEAD &&
           (data[lead] == '\r' || data[lead] == '\n'))
        lead++; /* empty lines before the request line (RFC 9112, 2.2) */
    head = lead < have
               ? head_length(data + lead,
                             (have < REQUEST_MAX_HEAD ? have : REQUEST_MAX_HEAD) - lead)
               : 0;
    if (head == 0) {
        if (have >= REQUEST_MAX_HEAD)
            refused(out, 431, "header_too_large",
                    "the request line and headers are larger than 8 KiB");
        else
            out->status = REQUEST_INCOMPLETE; /* the rest of the head is to come */
        return;
    }
    head += lead;
    why = check_head(data, head, &st);
    if (why != NULL) {
        refused(out, 400, "bad_request", why);
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
