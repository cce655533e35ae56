/*
 * request.h - one HTTP/1.1 request, parsed from bytes into a copy the
 * worker owns.
 *
 * The transport (conn.c) hands request_parse() the bytes a connection has
 * received; it answers that more is needed, that the bytes are one whole
 * request (and how many of them it took), or that the request is refused
 * with a status and a reason. A parsed request is a struct http_request:
 * the decoded path, the query and the header fields of request_fields[],
 * with storage of its own, so a parked request (worker.c) is a plain copy
 * of it, and every struct http_request_view handlers see is made from one
 * by http_request_view_of(). No sockets, no event loop: the unit tests and
 * the fuzzers call these functions directly.
 */
#ifndef WAHAGATE_REQUEST_H
#define WAHAGATE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* The request head (request line and headers) may not be larger. */
#define REQUEST_MAX_HEAD 8192
/* Nor may it have more header fields than this. */
#define REQUEST_MAX_HEADERS 100
/* Request targets (path and query) longer than this get 414. */
#define REQUEST_MAX_TARGET 2048
/* Request bodies (WAHA's webhooks: about 1 KiB) larger than this get 413. */
#define REQUEST_MAX_BODY 65536
/* The most bytes one request can take: head, body and chunk framing. */
#define REQUEST_MAX_BYTES (REQUEST_MAX_HEAD + REQUEST_MAX_BODY + 64)
/* Room for the kept header values (the sum of request_fields[]'s maxima). */
#define REQUEST_HEADER_SPACE 3072

/* A header field wahagate keeps; a longer value counts as absent. */
struct request_field {
    const char *name;
    size_t max; /* longest value kept, in bytes */
};

extern const struct request_field request_fields[HEADER_FIELD_COUNT];

/* A parsed request, with storage of its own (a plain struct: copy it). */
struct http_request {
    enum request_method method;
    bool head;       /* HEAD: answered without a body */
    bool keep_alive; /* the connection stays open after the answer */
    bool has_query;
    size_t path_len;
    /* The decoded path, a NUL, then the raw query and a NUL. */
    char target[REQUEST_MAX_TARGET + 2];
    /* Offset + 1 of each kept header's value in VALUES; 0: absent. */
    uint16_t field_at[HEADER_FIELD_COUNT];
    size_t values_len;
    char values[REQUEST_HEADER_SPACE];
    size_t body_len; /* the body is in the caller's buffer */
    /* Set by the transport, not by request_parse(): */
    struct client_addr client; /* who the request counts as (rate limits) */
    bool admin;                /* arrived on a server.admin_listen socket */
};

enum request_status {
    REQUEST_INCOMPLETE, /* more bytes are needed */
    REQUEST_COMPLETE,   /* CONSUMED bytes are one request */
    REQUEST_REFUSED     /* answer STATUS with CODE and MESSAGE, then close */
};

struct request_outcome {
    enum request_status status;
    size_t consumed;      /* COMPLETE: bytes of the request */
    bool expect_continue; /* INCOMPLETE: the client waits for 100 Continue */
    int http_status;      /* REFUSED */
    const char *code;     /* REFUSED: the JSON error's code */
    char message[96];     /* REFUSED: the JSON error's message */
};

/*
 * request_parse - parse the request at the start of DATA (HAVE bytes;
 * DATA[HAVE] need not be readable) into REQ, its body into BODY (at least
 * REQUEST_MAX_BODY + 1 bytes, NUL-terminated), and say what came of it
 * in OUT. Looks at no more than REQUEST_MAX_BYTES.
 */
void request_parse(const char *data, size_t have, struct http_request *req, char *body,
                   struct request_outcome *out);

/* request_field_value - the value of field F of REQ, or NULL. */
const char *request_field_value(const struct http_request *req, enum header_field f);

/*
 * http_request_view_of - the view of REQ handlers see (method, path,
 * query, fields, client, admin); the caller sets the rest (body, times).
 */
void http_request_view_of(const struct http_request *req, struct http_request_view *view);

#endif
