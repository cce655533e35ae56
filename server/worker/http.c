/*
 * http.c - helpers for building a struct http_response; no I/O here.
 */
#include "http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "json.h"

char *http_response_header_add(struct http_response *resp, const char *name)
{
    static char discarded[HTTP_HEADER_VALUE_MAX];
    struct http_header *h;

    if (resp->header_count == HTTP_MAX_HEADERS)
        return discarded; /* a programming error; the table is sized for every route */
    h = &resp->headers[resp->header_count++];
    h->name = name;
    h->value[0] = '\0';
    return h->value;
}

void http_response_header(struct http_response *resp, const char *name, const char *fmt,
                          ...)
{
    struct http_header *h;
    va_list ap;

    if (resp->header_count == HTTP_MAX_HEADERS)
        return; /* a programming error; the table is sized for every route */
    h = &resp->headers[resp->header_count++];
    h->name = name;
    va_start(ap, fmt);
    vsnprintf(h->value, sizeof(h->value), fmt, ap);
    va_end(ap);
}

void http_response_error(struct http_response *resp, int status, const char *code,
                         const char *message)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body_len = json_error_body(resp->small, sizeof(resp->small), code, message);
    resp->body = resp->small;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* The Date header's value, formatted once a second. */
static const char *http_date(void)
{
    static char date[40];
    static time_t date_second;
    time_t now = time(NULL);
    struct tm tm;

    if (now != date_second) {
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        date_second = now;
    }
    return date;
}

size_t http_response_head(char *out, size_t size, const struct http_response *resp,
                          size_t body_len, bool stream, bool close)
{
    bool has_body = resp->status != 204 && resp->status != 304;
    struct jbuf b;

    /* Appends, not printf: this runs for every answer. */
    jbuf_init(&b, out, size);
    jbuf_raw(&b, "HTTP/1.1 ");
    jbuf_int(&b, resp->status);
    jbuf_raw(&b, " ");
    jbuf_raw(&b, http_reason(resp->status));
    jbuf_raw(&b, "\r\nDate: ");
    jbuf_raw(&b, http_date());
    if (resp->content_type != NULL && has_body) {
        jbuf_raw(&b, "\r\nContent-Type: ");
        jbuf_raw(&b, resp->content_type);
    }
    if (has_body && !stream) {
        jbuf_raw(&b, "\r\nContent-Length: ");
        jbuf_uint(&b, body_len);
    }
    for (int i = 0; i < resp->header_count; i++) {
        jbuf_raw(&b, "\r\n");
        jbuf_raw(&b, resp->headers[i].name);
        jbuf_raw(&b, ": ");
        jbuf_raw(&b, resp->headers[i].value);
    }
    jbuf_raw(&b, close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n");
    return b.overflow ? 0 : b.len;
}

int http_query_param(const char *query, const char *key, char *out, size_t out_size)
{
    size_t key_len = strlen(key);

    /* Split at '&' ourselves: libevent's evhttp_parse_query_str() rejects a
     * whole query when one parameter has no '=' ("?session=a&debug"). */
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);

        if (len > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
            char raw[HTTP_QUERY_VALUE_MAX];
            size_t raw_len = len - key_len - 1, decoded_len = 0;
            char *decoded;
            int rc = -2;

            if (raw_len >= sizeof(raw))
                return -2;
            memcpy(raw, p + key_len + 1, raw_len);
            raw[raw_len] = '\0';
            decoded = evhttp_uridecode(raw, 1, &decoded_len);
            if (decoded != NULL && decoded_len < out_size &&
                strlen(decoded) == decoded_len) {
                memcpy(out, decoded, decoded_len + 1);
                rc = 0;
            }
            free(decoded);
            return rc;
        }
        p = amp ? amp + 1 : NULL;
    }
    return -1;
}

/* Whether the parameter name NAME (LEN raw bytes) names a secret (see
 * http.h): its decoded end is compared, in any case. */
static bool secret_name(const char *name, size_t len)
{
    static const char *const suffixes[] = {"key", "token", "secret", "password"};
    char tail[8]; /* the last decoded bytes: the longest suffix */
    size_t decoded = 0;

    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (c == '%' && i + 2 < len && isxdigit((unsigned char)name[i + 1]) &&
            isxdigit((unsigned char)name[i + 2])) {
            char hex[3] = {name[i + 1], name[i + 2], '\0'};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        memmove(tail, tail + 1, sizeof(tail) - 1);
        tail[sizeof(tail) - 1] = c;
        decoded++;
    }
    for (size_t s = 0; s < sizeof(suffixes) / sizeof(suffixes[0]); s++) {
        size_t n = strlen(suffixes[s]);
        if (decoded >= n && strncasecmp(tail + sizeof(tail) - n, suffixes[s], n) == 0)
            return true;
    }
    return false;
}

void http_query_redacted(char *out, size_t out_size, const char *query)
{
    struct jbuf b;

    if (out_size == 0)
        return;
    jbuf_init(&b, out, out_size);
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);

        if (eq != NULL && secret_name(p, (size_t)(eq - p))) {
            jbuf_mem(&b, p, (size_t)(eq - p) + 1);
            jbuf_raw(&b, "[REDACTED]");
        } else {
            jbuf_mem(&b, p, len);
        }
        if (amp != NULL)
            jbuf_raw(&b, "&");
        p = amp ? amp + 1 : NULL;
    }
    /* What did not fit is left out: never part of a value. */
}

void http_printable(char *out, size_t out_size, const char *text)
{
    size_t n = 0;

    if (out_size == 0)
        return;
    for (; text[n] != '\0' && n + 1 < out_size; n++) {
        unsigned char c = (unsigned char)text[n];
        out[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
}
