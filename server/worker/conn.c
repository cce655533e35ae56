/*
 * conn.c - HTTP/1.1 connections on libevent, parsed with http_parser.
 *
 * DESIGN
 * Why not evhttp: libevent 2.1's evhttp cannot bound its connections,
 * answers malformed requests with HTML pages, has no 431, and costs more
 * per request than the whole budget of a cached answer. Why not
 * bufferevents either: they cost three system calls per request beyond
 * the read and the write (an ioctl(FIONREAD) before each read, and an
 * epoll_ctl to add and another to remove the write event around each
 * answer), which is a third of the CPU time of a cached answer. This file
 * is the small part of HTTP that wahagate needs, with every bound explicit.
 *
 * I/O: each connection has one persistent read event, registered when it
 * is accepted, and a write event that is added only while the socket
 * does not take an answer at once. A read goes into one per-worker chunk;
 * when the connection has nothing buffered (the usual case: one request per
 * read) the request is parsed straight from there, and only a partial or a
 * pipelined request is copied into the connection's input evbuffer. An
 * answer (head and body) is written with one writev(); only what the
 * socket did not take is copied into the connection's output evbuffer.
 * Both evbuffers are created when first needed, so an idle keep-alive
 * connection costs a struct conn and one struct event (the write event,
 * too, is created the first time the socket does not take an answer).
 *
 * Parsing is request.c's: request_parse() takes the bytes of a
 * connection and says whether they hold one whole request (copied into the
 * per-worker struct http_request, body included), need more, or are
 * refused. What follows a request (a pipelined one) waits in the input
 * buffer until the request before it is answered.
 *
 * States: READING (waiting for a request), BUSY (a request is with the
 * worker: answered now, or parked until the cache has data), STREAM (an
 * event stream: only conn_stream_write()), CLOSING (written out, then
 * freed).
 *
 * One client cannot hold the loop (issue 15). Work per connection and per
 * loop turn is bounded, so the loop gets back to its other sockets and its
 * timers (client_timeout, the stall cut, the load sample) on time, whatever
 * one client sends:
 * - a connection is read only while its input holds no whole request
 *   waiting to be parsed (nothing, or the start of one), and never beyond
 *   CONN_MAX_INPUT: the client's bytes wait in the kernel, where TCP's
 *   window stops it;
 * - one loop turn answers at most CONN_PIPELINE_BATCH pipelined requests of
 *   a connection; the next ones are taken on the next turn (serve_later():
 *   one zero-timeout timer for all such connections, which runs after the
 *   loop has polled the sockets again, unlike event_active());
 * - nothing more is parsed while a connection's unsent output is over
 *   CONN_MAX_OUTPUT (a client that sends requests and does not read the
 *   answers): on_writable() goes on once it is written, and the stall rule
 *   below cuts a client that never reads;
 * - an event stream's client that sends more than CONN_MAX_INPUT is cut.
 *
 * A client that half-closes (shutdown(SHUT_WR), its FIN) still gets every
 * answer to what it sent before: the EOF stops the reading, the requests
 * in the input (and a parked one) are answered in order, then the
 * connection closes. Only a failed read or write (a reset) drops it.
 *
 * Connections come from accept.c (one per wakeup of the listen sockets);
 * answer heads are formatted by http.c's http_response_head().
 *
 * Bounds and time: at most server.max_connections connections (more are
 * answered 503 and closed); a connection buffers at most CONN_MAX_INPUT of
 * input (one largest request) and parses nothing while more than
 * CONN_MAX_OUTPUT of output waits; a request head must arrive within
 * server.client_timeout of its first byte (slowloris: 408), an idle
 * keep-alive connection is closed after server.client_timeout, and so is
 * a connection whose output has been waiting that long (a client that does
 * not read). One sweep per second checks all of it, so connections need no
 * timer of their own.
 */
#include "conn.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "accept.h"
#include "log.h"
#include "timeutil.h"

/* One read() takes at most this much: a whole request, usually. */
#define CONN_READ_CHUNK 16384
/* A connection closed on an error is drained this long at most (see
 * finish_closing()); at most this many connections over the limit are
 * kept for that while being refused with a 503. */
#define CONN_LINGER_MS 2000
#define CONN_MAX_REFUSING 64
/* A response head (status line and headers) is at most this large: room
 * for every header a response can have, each as long as it can be. */
#define CONN_MAX_RESPONSE_HEAD 8192
_Static_assert(CONN_MAX_RESPONSE_HEAD >=
                   HTTP_MAX_HEADERS * (HTTP_HEADER_VALUE_MAX + 40) + 512,
               "a response head always fits");

enum conn_state { CONN_READING, CONN_BUSY, CONN_STREAM, CONN_CLOSING };

struct conn {
    evutil_socket_t fd;
    struct event *readable;  /* persistent; not pending while reading_paused */
    struct event *writable;  /* added while output waits for the socket
                               (NULL until that first happens) */
    struct evbuffer *in;     /* unparsed bytes (NULL until needed) */
    struct evbuffer *out;    /* unsent bytes (NULL until needed) */
    bool reading_paused;     /* readable is not pending (wants_input()) */
    bool need_more;          /* the input holds the start of a request only */
    bool eof;                /* the client's FIN came: nothing more is read */
    bool failed;             /* a write failed: the next loop turn drops it */
    bool linger;             /* closing on an error: drain before closing */
    bool continued;          /* 100 Continue was sent for the current request */
    bool in_callback;        /* the worker's on_request() runs for it... */
    bool doomed;             /* ...and closed it: freed when that returns */
    bool later_queued;       /* in the serve_later() queue */
    int64_t linger_until_ms; /* half-closed, draining until; 0: not yet */
    struct conn *prev, *next;
    struct conn *later_prev, *later_next; /* the serve_later() queue */
    uint64_t later_turn;                  /* the later turn it was queued in */
    enum conn_state state;
    bool admin; /* accepted on a server.admin_listen socket */
    struct client_addr peer;
    bool keep_alive;        /* of the current request */
    bool head;              /* the current request is a HEAD */
    size_t dropped;         /* bytes a stream's client sent: dropped */
    int64_t activity_ms;    /* last request answered, or accepted */
    int64_t started_ms;     /* first byte of the request being read; 0: none */
    int64_t write_since_ms; /* output waiting since; 0: none */
};

static struct {
    const struct config *cfg;
    struct region_proc *slot;
    struct event_base *base;
    conn_request_cb on_request;
    conn_gone_cb on_gone;
    struct event *sweep;
    struct event *later; /* zero timeout: the serve_later() queue */
    struct conn *later_head, *later_tail;
    uint64_t later_turn;
    struct conn *all;
    int open;
    bool draining;
    struct http_request request; /* the request being parsed */
    char chunk[CONN_READ_CHUNK];
    char *body; /* REQUEST_MAX_BODY + 1 */
} cs;

static void serve_input(struct conn *c, int served);

/*========================================================================
 * Connection life.
 */

static size_t input_length(const struct conn *c)
{
    return c->in != NULL ? evbuffer_get_length(c->in) : 0;
}

static size_t output_length(const struct conn *c)
{
    return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}

/* The evbuffer *B, created when first needed. NULL: out of memory. */
static struct evbuffer *buffer(struct evbuffer **b)
{
    if (*b == NULL)
        *b = evbuffer_new();
    return *b;
}

static void destroy_conn(struct conn *c)
{
    if (c->readable != NULL)
        event_free(c->readable);
    if (c->writable != NULL)
        event_free(c->writable);
    if (c->in != NULL)
        evbuffer_free(c->in);
    if (c->out != NULL)
        evbuffer_free(c->out);
    close(c->fd);
    free(c);
}

/* Take C out of the serve_later() queue. */
static void unqueue(struct conn *c)
{
    if (!c->later_queued)
        return;
    if (c->later_prev)
        c->later_prev->later_next = c->later_next;
    else
        cs.later_head = c->later_next;
    if (c->later_next)
        c->later_next->later_prev = c->later_prev;
    else
        cs.later_tail = c->later_prev;
    c->later_prev = c->later_next = NULL;
    c->later_queued = false;
}

/*
 * Go on with C on the next loop turn (its next pipelined requests, or the
 * failure of a write): after the loop has polled the sockets and run the
 * timers that are due, so one client cannot keep them waiting.
 */
static void serve_later(struct conn *c)
{
    static const struct timeval now = {0, 0};

    if (c->later_queued)
        return;
    c->later_queued = true;
    c->later_turn = cs.later_turn;
    c->later_prev = cs.later_tail;
    c->later_next = NULL;
    if (cs.later_tail)
        cs.later_tail->later_next = c;
    else
        cs.later_head = c;
    cs.later_tail = c;
    if (!evtimer_pending(cs.later, NULL))
        evtimer_add(cs.later, &now);
}

static void free_conn(struct conn *c)
{
    if (c->in_callback) {
        c->doomed = true; /* dispatch() frees it when the worker returns */
        return;
    }
    unqueue(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        cs.all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    destroy_conn(c);
    cs.open--;
    atomic_store_explicit(&cs.slot->connections, cs.open, memory_order_relaxed);
}

/* The client went away, or the connection failed. */
static void lost(struct conn *c)
{
    if (c->state == CONN_BUSY || c->state == CONN_STREAM)
        cs.on_gone(c);
    free_conn(c);
}

/* Whether C's socket is to be read now (see DESIGN). */
static bool wants_input(const struct conn *c)
{
    if (c->eof || c->failed)
        return false;
    switch (c->state) {
    case CONN_STREAM:
    case CONN_CLOSING: return true; /* read and dropped, for the client's EOF */
    case CONN_BUSY: return input_length(c) < CONN_MAX_INPUT;
    case CONN_READING:
    default:
        return input_length(c) < CONN_MAX_INPUT && output_length(c) <= CONN_MAX_OUTPUT &&
               (input_length(c) == 0 || c->need_more);
    }
}

static void update_reading(struct conn *c)
{
    bool want = wants_input(c);

    if (want != c->reading_paused)
        return; /* as it should be */
    c->reading_paused = !want;
    if (want)
        event_add(c->readable, NULL);
    else
        event_del(c->readable);
}

/*
 * C is CLOSING and all its output is written. A connection we close on an
 * error may still have the client sending (a body we refused, a request
 * we never read): closing it now would reset it, and the reset can destroy
 * our answer before the client reads it (RFC 9112, 9.6). So it is
 * half-closed and read (and dropped) until the client's EOF, for
 * CONN_LINGER_MS at most, like nginx's lingering close.
 */
static void finish_closing(struct conn *c)
{
    if (!c->linger || c->eof) {
        free_conn(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->linger_until_ms = time_mono_ms() + CONN_LINGER_MS;
    update_reading(c);
}

static void close_after_write(struct conn *c)
{
    c->state = CONN_CLOSING;
    if (output_length(c) == 0)
        finish_closing(c);
}

void conn_close(struct conn *c)
{
    close_after_write(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* A write to C failed: it is dropped on the next loop turn, so that no
 * caller sees C freed under it. */
static void write_failed(struct conn *c)
{
    c->failed = true;
    serve_later(c);
}

/*
 * Write the IOVCNT pieces of IOV to C: at once with one writev() when
 * nothing is waiting before them, and whatever the socket does not take
 * into C's output buffer, written when the socket is writable again.
 */
static void send_iov(struct conn *c, const struct iovec *iov, int iovcnt)
{
    ssize_t written = 0;

    if (output_length(c) == 0) {
        written = writev(c->fd, iov, iovcnt);
        if (written < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                write_failed(c);
                return;
            }
            written = 0;
        }
    }
    for (int i = 0; i < iovcnt; i++) {
        size_t skip = (size_t)written < iov[i].iov_len ? (size_t)written : iov[i].iov_len;
        written -= (ssize_t)skip;
        if (iov[i].iov_len > skip &&
            (buffer(&c->out) == NULL ||
             evbuffer_add(c->out, (const char *)iov[i].iov_base + skip,
                          iov[i].iov_len - skip) != 0)) {
            log_error(errno, "out of memory for a connection's output");
            write_failed(c);
            return;
        }
    }
    if (output_length(c) > 0) {
        if (c->write_since_ms == 0)
            c->write_since_ms = time_mono_ms();
        if (c->writable == NULL)
            c->writable =
                event_new(cs.base, c->fd, EV_WRITE | EV_PERSIST, on_writable, c);
        if (c->writable == NULL || event_add(c->writable, NULL) != 0) {
            log_error(errno, "cannot wait for a connection to take its output");
            write_failed(c);
        }
    }
}

static void send_bytes(struct conn *c, const char *bytes, size_t len)
{
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};

    send_iov(c, &iov, 1);
}

static const char head_failed[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";

/* The head of RESP for C into HEAD (CONN_MAX_RESPONSE_HEAD bytes): its
 * length, or 0 if it did not fit, which the sizes above rule out
 * (conn_send() would answer 500). */
static size_t format_head(struct conn *c, const struct http_response *resp, bool stream,
                          size_t body_len, char *head)
{
    size_t len = http_response_head(head, CONN_MAX_RESPONSE_HEAD, resp, body_len, stream,
                                    stream || !c->keep_alive);

    if (len == 0)
        log_error(0, "a response head did not fit in %d bytes", CONN_MAX_RESPONSE_HEAD);
    return len;
}

void conn_send(struct conn *c, const struct http_response *resp)
{
    bool has_body = !c->head && resp->status != 204 && resp->status != 304;
    char head[CONN_MAX_RESPONSE_HEAD];
    struct iovec iov[2];

    if (cs.draining)
        c->keep_alive = false;
    iov[0].iov_base = head;
    iov[0].iov_len = format_head(c, resp, false, resp->body_len, head);
    iov[1].iov_base = (void *)resp->body;
    iov[1].iov_len = has_body ? resp->body_len : 0;
    if (iov[0].iov_len == 0) {
        send_bytes(c, head_failed, sizeof(head_failed) - 1);
        c->keep_alive = false;
    } else {
        send_iov(c, iov, iov[1].iov_len > 0 ? 2 : 1);
    }
    c->activity_ms = time_mono_ms();
    c->started_ms = 0;
    c->continued = false;
    if (!c->keep_alive) {
        close_after_write(c);
        return;
    }
    c->state = CONN_READING;
    /* Answered from inside dispatch(): serve_input() goes on. Answered
     * later (a parked request): go on with what the client sent since on
     * the next loop turn, not from inside the caller. */
    if (!c->in_callback)
        serve_later(c);
}

/* An error answer from the transport itself; the connection then closes. */
static void refuse(struct conn *c, int status, const char *code, const char *message)
{
    struct http_response resp;

    http_response_error(&resp, status, code, message);
    resp.header_count = 0;
    resp.endpoint = ENDPOINT_OTHER;
    c->keep_alive = false;
    c->head = false;
    c->linger = true;
    region_count_request(cs.slot, ENDPOINT_OTHER, status, 0);
    conn_send(c, &resp);
}

void conn_stream_start(struct conn *c, const struct http_response *resp)
{
    struct http_response head = *resp;
    char text[CONN_MAX_RESPONSE_HEAD];

    head.status = 200;
    head.content_type = "text/event-stream";
    /* A fixed send buffer: for a client that stops reading, the kernel
     * would otherwise grow it to net.ipv4.tcp_wmem's maximum (4 MiB), memory
     * that conn_stream_write()'s bound does not see. Events are small;
     * this holds many of them. */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &(int){CONN_STREAM_SNDBUF}, sizeof(int));
    c->state = CONN_STREAM;
    c->keep_alive = false;
    send_bytes(c, text, format_head(c, &head, true, 0, text));
    /* Nothing more is read from a stream; an EOF still ends it. */
    if (c->in != NULL)
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
}

int conn_stream_writev(struct conn *c, const struct iovec *iov, int iovcnt,
                       size_t max_unsent)
{
    if (output_length(c) > max_unsent) {
        free_conn(c);
        return -1;
    }
    send_iov(c, iov, iovcnt);
    return 0;
}

int conn_stream_write(struct conn *c, const char *text, size_t len, size_t max_unsent)
{
    struct iovec iov = {.iov_base = (void *)text, .iov_len = len};

    return conn_stream_writev(c, &iov, 1, max_unsent);
}

/*========================================================================
 * Parsing one request (request.c) and handing it to the worker.
 */

/*
 * Hand C's parsed request (cs.request, body in cs.body) to the worker.
 * False when C is gone: the worker answered it and it closed.
 */
static bool dispatch(struct conn *c)
{
    struct http_request *req = &cs.request;
    struct http_request_view view;

    ratelimit_client(cs.cfg, &c->peer, request_field_value(req, HEADER_X_FORWARDED_FOR),
                     &req->client);
    req->admin = c->admin;
    http_request_view_of(req, &view);
    view.body = req->method == METHOD_POST ? cs.body : NULL;
    view.body_len = req->body_len;
    view.now_mono_ms = time_mono_ms();
    c->state = CONN_BUSY;
    c->head = req->head;
    c->keep_alive = req->keep_alive;
    c->in_callback = true;
    cs.on_request(c, req, &view);
    c->in_callback = false;
    if (!c->doomed)
        return true;
    free_conn(c);
    return false;
}

/* Keep LEN bytes of DATA (from the read chunk) in C's input buffer. */
static int keep_input(struct conn *c, const char *data, size_t len)
{
    if (buffer(&c->in) == NULL || evbuffer_add(c->in, data, len) != 0) {
        log_error(errno, "out of memory for a connection's input");
        free_conn(c);
        return -1;
    }
    c->need_more = false; /* new bytes: parse again */
    return 0;
}

enum parsed {
    PARSED_DISPATCHED, /* a request went to the worker; C is still there */
    PARSED_MORE,       /* the input holds the start of a request only */
    PARSED_STOP        /* refused, or C is gone: leave it alone */
};

/*
 * Parse the next request of C from DATA (HAVE bytes: the read chunk when
 * FROM_CHUNK, else C's input buffer made contiguous) and dispatch it, if
 * all of it is there. Whatever is not consumed ends up in C's input
 * buffer.
 */
static enum parsed parse_request(struct conn *c, const char *data, size_t have,
                                 bool from_chunk)
{
    struct request_outcome out;

    if (c->started_ms == 0)
        c->started_ms = time_mono_ms();
    request_parse(data, have, &cs.request, cs.body, &out);
    switch (out.status) {
    case REQUEST_REFUSED:
        refuse(c, out.http_status, out.code, out.message);
        return PARSED_STOP;
    case REQUEST_INCOMPLETE:
        if (from_chunk && keep_input(c, data, have) != 0)
            return PARSED_STOP;
        c->need_more = true;
        if (out.expect_continue && !c->continued) {
            c->continued = true; /* go on, send it */
            send_bytes(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        return PARSED_MORE;
    case REQUEST_COMPLETE:
    default:
        /* The request is copied out: its bytes can go. */
        if (!from_chunk)
            evbuffer_drain(c->in, out.consumed);
        else if (out.consumed < have &&
                 keep_input(c, data + out.consumed, have - out.consumed) != 0)
            return PARSED_STOP;
        return dispatch(c) ? PARSED_DISPATCHED : PARSED_STOP;
    }
}

/*
 * Go on with C's pipelined requests: parse and dispatch what its input
 * holds, CONN_PIPELINE_BATCH requests in this loop turn at most (SERVED of
 * them already), the rest on the next turn. Nothing is parsed while more
 * than CONN_MAX_OUTPUT of C's output waits (on_writable() goes on). A
 * client whose EOF came is closed once all it sent is answered. C may be
 * gone when this returns.
 */
static void serve_input(struct conn *c, int served)
{
    while (c->state == CONN_READING && input_length(c) > 0 && !c->need_more &&
           !c->failed) {
        if (output_length(c) > CONN_MAX_OUTPUT)
            break;
        if (served == CONN_PIPELINE_BATCH) {
            serve_later(c);
            break;
        }
        if (parse_request(c, (const char *)evbuffer_pullup(c->in, -1), input_length(c),
                          false) == PARSED_STOP)
            return;
        served++;
    }
    if (c->state == CONN_READING && c->eof && (input_length(c) == 0 || c->need_more)) {
        close_after_write(c); /* all it sent is answered (a partial request is not) */
        return;
    }
    update_reading(c);
}

/*========================================================================
 * Callbacks: the sockets, the sweep.
 */

/* The client's FIN (read() returned 0). */
static void client_done(struct conn *c)
{
    c->eof = true;
    if (c->state == CONN_STREAM) {
        lost(c); /* an event stream ends with its client */
    } else if (c->state == CONN_CLOSING) {
        if (output_length(c) == 0)
            free_conn(c);
        else
            update_reading(c); /* on_writable() finishes it */
    } else if (c->state == CONN_READING) {
        serve_input(c, 0);
    } else {
        update_reading(c); /* BUSY: its answer, then the rest, then closed */
    }
}

/* N bytes read into cs.chunk for C (READING or BUSY). */
static void took_input(struct conn *c, size_t n)
{
    if (c->state == CONN_READING && input_length(c) == 0) {
        /* The usual case: the request is parsed from the chunk. */
        switch (parse_request(c, cs.chunk, n, true)) {
        case PARSED_DISPATCHED: serve_input(c, 1); return;
        case PARSED_MORE: update_reading(c); return;
        case PARSED_STOP:
        default: return;
        }
    }
    if (keep_input(c, cs.chunk, n) != 0)
        return;
    if (c->state == CONN_READING)
        serve_input(c, 0);
    else
        update_reading(c); /* BUSY: up to CONN_MAX_INPUT waits */
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    bool parsing = c->state == CONN_READING || c->state == CONN_BUSY;
    size_t room = parsing ? CONN_MAX_INPUT - input_length(c) : sizeof(cs.chunk);
    ssize_t n;

    (void)what;
    if (c->failed) {
        lost(c);
        return;
    }
    if (room == 0) {
        update_reading(c); /* full: not read until the input is parsed */
        return;
    }
    n = read(fd, cs.chunk, room < sizeof(cs.chunk) ? room : sizeof(cs.chunk));
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            lost(c); /* reset: the client is gone */
        return;
    }
    if (n == 0) {
        client_done(c);
    } else if (c->state == CONN_STREAM || c->state == CONN_CLOSING) {
        /* Nothing more is read: the bytes are dropped. A stream's client
         * has nothing to say; one that sends on is cut. */
        c->dropped += (size_t)n;
        if (c->state == CONN_STREAM && c->dropped > CONN_MAX_INPUT)
            lost(c);
    } else {
        took_input(c, (size_t)n);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)what;
    if (evbuffer_write(c->out, fd) < 0 && errno != EAGAIN && errno != EINTR) {
        lost(c);
        return;
    }
    if (evbuffer_get_length(c->out) > 0)
        return; /* the event stays: more to write */
    event_del(c->writable);
    c->write_since_ms = 0; /* all written */
    if (c->state == CONN_CLOSING)
        finish_closing(c);
    else if (c->state == CONN_READING)
        serve_input(c, 0); /* its requests waited for the output */
}

/* The serve_later() queue: the connections queued before this turn. */
static void on_later(evutil_socket_t fd, short what, void *arg)
{
    uint64_t turn = ++cs.later_turn;

    (void)fd;
    (void)what;
    (void)arg;
    while (cs.later_head != NULL && cs.later_head->later_turn != turn) {
        struct conn *c = cs.later_head;

        unqueue(c);
        if (c->failed)
            lost(c);
        else if (c->state == CONN_READING)
            serve_input(c, 0);
    }
}

static void accept_conn(int fd, const struct sockaddr *addr, bool admin)
{
    struct conn *c;
    int one = 1;

    if (cs.open >= cs.cfg->server.max_connections + CONN_MAX_REFUSING) {
        close(fd); /* not even room to refuse it properly */
        region_count_request(cs.slot, ENDPOINT_OTHER, 503, 0);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->fd = fd;
        c->readable = event_new(cs.base, fd, EV_READ | EV_PERSIST, on_readable, c);
    }
    if (c == NULL || c->readable == NULL || event_add(c->readable, NULL) != 0) {
        log_error(errno, "out of memory for a connection");
        if (c != NULL)
            destroy_conn(c);
        else
            close(fd);
        return;
    }
    /* Answers are written whole: Nagle would only hold back the second of
     * two pipelined answers until the client's delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->admin = admin;
    ratelimit_addr_from_sockaddr(addr, &c->peer);
    c->state = CONN_READING;
    c->activity_ms = time_mono_ms();
    c->next = cs.all;
    if (cs.all)
        cs.all->prev = c;
    cs.all = c;
    cs.open++;
    atomic_store_explicit(&cs.slot->connections, cs.open, memory_order_relaxed);
    if (cs.open > cs.cfg->server.max_connections) {
        struct http_response resp = {.endpoint = ENDPOINT_OTHER};
        http_response_error(&resp, 503, "busy", "too many open connections");
        http_response_header(&resp, "Retry-After", "1");
        c->linger = true;
        region_count_request(cs.slot, ENDPOINT_OTHER, 503, 0);
        conn_send(c, &resp); /* keep_alive is false: it closes */
    }
}

/* The load the master scales by: the CPU time this worker has used. */
static void publish_cpu_time(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return;
    atomic_store_explicit(&cs.slot->busy_us,
                          (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
                              (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec),
                          memory_order_relaxed);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = time_mono_ms(), limit = cs.cfg->server.client_timeout;

    (void)fd;
    (void)what;
    (void)arg;
    publish_cpu_time();
    for (struct conn *c = cs.all, *next; c != NULL; c = next) {
        next = c->next;
        if (c->write_since_ms != 0 && now - c->write_since_ms > limit) {
            lost(c); /* the client does not read what we send */
        } else if (c->state == CONN_READING && c->started_ms != 0 &&
                   now - c->started_ms > limit) {
            refuse(c, 408, "request_timeout", "the request did not arrive in time");
        } else if ((c->state == CONN_READING && c->started_ms == 0 &&
                    now - c->activity_ms > limit) || /* idle keep-alive connection */
                   (c->linger_until_ms != 0 && now >= c->linger_until_ms)) { /* drained */
            free_conn(c);
        }
    }
}

/*========================================================================
 * The server.
 */

int conn_server_start(struct event_base *base, const struct config *cfg,
                      const struct listeners *ls, struct region_proc *slot,
                      conn_request_cb on_request, conn_gone_cb on_gone)
{
    struct timeval second = {1, 0};

    memset(&cs, 0, sizeof(cs));
    cs.cfg = cfg;
    cs.slot = slot;
    cs.base = base;
    cs.on_request = on_request;
    cs.on_gone = on_gone;
    cs.body = malloc(REQUEST_MAX_BODY + 1);
    cs.sweep = event_new(base, -1, EV_PERSIST, on_sweep, NULL);
    cs.later = evtimer_new(base, on_later, NULL);
    if (cs.body == NULL || cs.sweep == NULL || cs.later == NULL ||
        event_add(cs.sweep, &second) != 0) {
        log_error(0, "cannot set up the HTTP server");
        return -1;
    }
    return accept_start(base, ls, accept_conn);
}

int conn_server_drain(void)
{
    cs.draining = true;
    accept_stop();
    return cs.open;
}

void conn_server_close_idle(int64_t grace_ms)
{
    int64_t now = time_mono_ms();

    for (struct conn *c = cs.all, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == CONN_READING && c->started_ms == 0 &&
            now - c->activity_ms >= grace_ms)
            close_after_write(c);
    }
}

int conn_server_open(void)
{
    return cs.open;
}

size_t conn_server_buffered(void)
{
    size_t n = 0;

    for (const struct conn *c = cs.all; c != NULL; c = c->next)
        n += input_length(c) + output_length(c);
    return n;
}

void conn_server_stop(void)
{
    accept_stop();
    for (struct conn *c = cs.all, *next; c != NULL; c = next) {
        next = c->next;
        destroy_conn(c);
    }
    cs.all = NULL;
    cs.open = 0;
    if (cs.sweep)
        event_free(cs.sweep);
    if (cs.later)
        event_free(cs.later);
    free(cs.body);
    memset(&cs, 0, sizeof(cs));
}
