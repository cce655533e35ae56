/*
 * conn.c - HTTP/1.1 connections on bufferevents, parsed with http_parser.
 *
 * DESIGN
 * Why not evhttp: libevent 2.1's evhttp cannot bound its connections,
 * answers malformed requests with HTML pages, has no 431, and costs more
 * per request than the whole budget of a cached answer. This file is the
 * small part of HTTP that wahagate needs, with every bound explicit.
 *
 * Parsing is stateless per request: a request is parsed only once its
 * whole head is in the input buffer (found by its blank line, and at most
 * CONN_MAX_HEAD bytes), together with its body when it has one. The head is
 * made contiguous (evbuffer_pullup) and given to a fresh http_parser, whose
 * callbacks copy the target and the few headers handlers need into one
 * per-worker struct parsed; on_message_complete pauses the parser, so the
 * bytes it consumed are exactly one request, which are then drained.
 * Pipelined requests stay in the input buffer until the one before is
 * answered. A connection is therefore small: a bufferevent and this struct.
 *
 * States: READING (waiting for a request), BUSY (a request is with the
 * worker: answered now, or parked until the cache has data), STREAM (an
 * event stream: only conn_stream_write()), CLOSING (written out, then
 * freed).
 *
 * Bounds and time: at most server.max_connections connections (more are
 * answered 503 and closed); a request head must arrive within
 * server.client_timeout of its first byte (slowloris: 408), an idle
 * keep-alive connection is closed after server.client_timeout, and so is a
 * connection whose output does not move for that long (a client that does
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <http_parser.h>

#include "log.h"
#include "timeutil.h"
#include "webhook.h"

enum conn_state { CONN_READING, CONN_BUSY, CONN_STREAM, CONN_CLOSING };

struct conn {
    struct bufferevent *bev;
    struct conn *prev, *next;
    enum conn_state state;
    bool admin; /* accepted on a server.admin_listen socket */
    struct client_addr peer;
    bool keep_alive;        /* of the current request */
    bool head;              /* the current request is a HEAD */
    int64_t activity_ms;    /* last request answered, or accepted */
    int64_t started_ms;     /* first byte of the request being read; 0: none */
    int64_t write_since_ms; /* output waiting since; 0: none */
};

/* What the parser's callbacks collect for the request being parsed. */
struct parsed {
    size_t target_len;
    char target[CONN_MAX_TARGET + 1];
    const char *field; /* the last header name seen, in the input */
    size_t field_len;
    int header_count;
    bool too_many_headers, target_too_long, body_too_large, expect_continue;
    bool has_inm, has_accept, has_hmac, has_authorization, has_origin, has_last_event_id,
        has_xff, has_api_key;
    size_t body_len;
    bool complete;
    /* Fields from here on are valid only when their has_ flag is set, so
     * they are not cleared between requests. */
    char if_none_match[256], accept[256], hmac[256], authorization[256], origin[256],
        last_event_id[64], xff[512], api_key[256];
};

static struct {
    const struct config *cfg;
    struct region_proc *slot;
    struct event_base *base;
    conn_request_cb on_request;
    conn_gone_cb on_gone;
    struct evconnlistener *listeners[LISTEN_MAX];
    bool listener_admin[LISTEN_MAX];
    int listener_count;
    struct event *sweep;
    struct event *resume; /* re-enables the listeners after EMFILE */
    struct conn *all;
    int open;
    bool draining;
    struct parsed parsed;
    char *body; /* WEBHOOK_BODY_MAX + 1 */
    char path[CONN_MAX_TARGET + 1];
    char date[40];
    time_t date_second;
} cs;

/*========================================================================
 * Connection life.
 */

static void free_conn(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        cs.all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
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

static void close_after_write(struct conn *c)
{
    c->state = CONN_CLOSING;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        free_conn(c);
    else
        bufferevent_disable(c->bev, EV_READ);
}

void conn_close(struct conn *c)
{
    close_after_write(c);
}

static const char *http_date(void)
{
    time_t now = time(NULL);
    struct tm tm;

    if (now != cs.date_second) {
        gmtime_r(&now, &tm);
        strftime(cs.date, sizeof(cs.date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cs.date_second = now;
    }
    return cs.date;
}

static void note_output(struct conn *c)
{
    if (c->write_since_ms == 0)
        c->write_since_ms = time_mono_ms();
}

/* Queue the status line and headers of RESP (BODY_LEN bytes of body). */
static void write_head(struct conn *c, const struct http_response *resp, bool stream,
                       size_t body_len)
{
    char head[4096];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nDate: %s\r\n", resp->status,
                     http_reason(resp->status), http_date());
    bool has_body = resp->status != 204 && resp->status != 304;

    if (resp->content_type != NULL && has_body)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n",
                      resp->content_type);
    if (has_body && !stream)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n",
                      body_len);
    for (int i = 0; i < resp->header_count && (size_t)n < sizeof(head); i++)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%s: %s\r\n",
                      resp->headers[i].name, resp->headers[i].value);
    if ((size_t)n < sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\r\n",
                      stream || !c->keep_alive ? "Connection: close\r\n" : "");
    if ((size_t)n >= sizeof(head)) {
        log_error(0, "a response head did not fit in %zu bytes", sizeof(head));
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 500 Internal Server Error\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n");
        c->keep_alive = false;
    }
    evbuffer_add(bufferevent_get_output(c->bev), head, (size_t)n);
    note_output(c);
}

static void parse_next(struct conn *c);

void conn_send(struct conn *c, const struct http_response *resp)
{
    bool has_body = !c->head && resp->status != 204 && resp->status != 304;

    if (cs.draining)
        c->keep_alive = false;
    write_head(c, resp, false, resp->body_len);
    if (has_body && resp->body_len > 0)
        evbuffer_add(bufferevent_get_output(c->bev), resp->body, resp->body_len);
    c->activity_ms = time_mono_ms();
    c->started_ms = 0;
    if (!c->keep_alive) {
        close_after_write(c);
        return;
    }
    c->state = CONN_READING;
    /* A pipelined request may be waiting: read it on the next loop turn,
     * not from inside the caller. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
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
    region_count_request(cs.slot, ENDPOINT_OTHER, status, 0);
    conn_send(c, &resp);
}

void conn_stream_start(struct conn *c, const struct http_response *resp)
{
    struct http_response head = *resp;

    head.status = 200;
    head.content_type = "text/event-stream";
    write_head(c, &head, true, 0);
    c->state = CONN_STREAM;
    c->keep_alive = false;
    /* Nothing more is read from a stream; an EOF still ends it. */
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
}

int conn_stream_write(struct conn *c, const char *text, size_t len, size_t max_unsent)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (evbuffer_get_length(out) > max_unsent) {
        free_conn(c);
        return -1;
    }
    evbuffer_add(out, text, len);
    note_output(c);
    return 0;
}

/*========================================================================
 * Parsing one request.
 */

static bool field_is(const char *name)
{
    size_t len = strlen(name);

    return cs.parsed.field_len == len && strncasecmp(cs.parsed.field, name, len) == 0;
}

static void copy_value(char *out, size_t size, bool *present, const char *at, size_t len)
{
    *present = len < size;
    if (*present) {
        memcpy(out, at, len);
        out[len] = '\0';
    }
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parsed *r = &cs.parsed;

    (void)p;
    if (r->target_len + len > CONN_MAX_TARGET) {
        r->target_too_long = true;
        return -1;
    }
    memcpy(r->target + r->target_len, at, len);
    r->target_len += len;
    r->target[r->target_len] = '\0';
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    (void)p;
    if (++cs.parsed.header_count > CONN_MAX_HEADERS) {
        cs.parsed.too_many_headers = true;
        return -1;
    }
    cs.parsed.field = at;
    cs.parsed.field_len = len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parsed *r = &cs.parsed;

    (void)p;
    if (field_is("If-None-Match"))
        copy_value(r->if_none_match, sizeof(r->if_none_match), &r->has_inm, at, len);
    else if (field_is("Accept"))
        copy_value(r->accept, sizeof(r->accept), &r->has_accept, at, len);
    else if (field_is("X-Webhook-Hmac"))
        copy_value(r->hmac, sizeof(r->hmac), &r->has_hmac, at, len);
    else if (field_is("Authorization"))
        copy_value(r->authorization, sizeof(r->authorization), &r->has_authorization, at,
                   len);
    else if (field_is("Origin"))
        copy_value(r->origin, sizeof(r->origin), &r->has_origin, at, len);
    else if (field_is("Last-Event-ID"))
        copy_value(r->last_event_id, sizeof(r->last_event_id), &r->has_last_event_id, at,
                   len);
    else if (field_is("X-Api-Key"))
        copy_value(r->api_key, sizeof(r->api_key), &r->has_api_key, at, len);
    else if (field_is("X-Forwarded-For"))
        copy_value(r->xff, sizeof(r->xff), &r->has_xff, at, len);
    else if (field_is("Expect"))
        r->expect_continue = len == 12 && strncasecmp(at, "100-continue", 12) == 0;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    if (p->content_length > WEBHOOK_BODY_MAX && p->content_length != ULLONG_MAX) {
        cs.parsed.body_too_large = true;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct parsed *r = &cs.parsed;

    if (r->body_len + len > WEBHOOK_BODY_MAX) {
        r->body_too_large = true;
        http_parser_pause(p, 1);
        return 0;
    }
    memcpy(cs.body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    cs.parsed.complete = true;
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

/* Hand the parsed request of C to the worker. */
static void dispatch(struct conn *c, const http_parser *p)
{
    struct parsed *r = &cs.parsed;
    char *query = strchr(r->target, '?');
    size_t path_len = 0;
    char *decoded;
    struct http_request_view view;

    if (p->http_major != 1 || p->http_minor > 1) {
        refuse(c, 400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are spoken here");
        return;
    }
    if (query != NULL)
        *query++ = '\0';
    decoded = evhttp_uridecode(r->target[0] ? r->target : "/", 0, &path_len);
    if (decoded == NULL || path_len != strlen(decoded) || r->target[0] != '/') {
        free(decoded);
        refuse(c, 400, "bad_request", "the request target cannot be decoded");
        return;
    }
    memcpy(cs.path, decoded, path_len + 1);
    free(decoded);
    view = (struct http_request_view){
        .method = method_of(p->method),
        .path = cs.path,
        .query = query,
        .if_none_match = r->has_inm ? r->if_none_match : NULL,
        .accept = r->has_accept ? r->accept : NULL,
        .webhook_hmac = r->has_hmac ? r->hmac : NULL,
        .authorization = r->has_authorization ? r->authorization : NULL,
        .api_key = r->has_api_key ? r->api_key : NULL,
        .origin = r->has_origin ? r->origin : NULL,
        .last_event_id = r->has_last_event_id ? r->last_event_id : NULL,
        .admin = c->admin,
        .body = p->method == HTTP_POST ? cs.body : NULL,
        .body_len = r->body_len,
        .now_mono_ms = time_mono_ms(),
    };
    ratelimit_client(cs.cfg, &c->peer, r->has_xff ? r->xff : NULL, &view.client);
    cs.body[r->body_len] = '\0';
    c->state = CONN_BUSY;
    c->head = p->method == HTTP_HEAD;
    c->keep_alive = http_should_keep_alive(p) != 0;
    cs.on_request(c, &view);
}

/* Find the end of the request head in IN: its length, or 0 if not there. */
static size_t head_length(struct evbuffer *in)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);

    if (end.pos >= 0)
        return (size_t)end.pos + 4;
    end = evbuffer_search(in, "\n\n", 2, NULL); /* bare LF, which http_parser takes */
    return end.pos >= 0 ? (size_t)end.pos + 2 : 0;
}

/* Parse and dispatch the next request of C, if all of it is there. */
static void parse_next(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t have = evbuffer_get_length(in), head, nparsed, window;
    http_parser parser;
    unsigned char *data;

    if (c->state != CONN_READING || have == 0)
        return;
    if (c->started_ms == 0)
        c->started_ms = time_mono_ms();
    head = head_length(in);
    if (head == 0 || head > CONN_MAX_HEAD) {
        if (head > CONN_MAX_HEAD || have > CONN_MAX_HEAD)
            refuse(c, 431, "header_too_large",
                   "the request line and headers are larger than 8 KiB");
        return; /* the rest of the head is still to come */
    }
    window = have < head + WEBHOOK_BODY_MAX + 64 ? have : head + WEBHOOK_BODY_MAX + 64;
    data = evbuffer_pullup(in, (ev_ssize_t)window);
    memset(&cs.parsed, 0, offsetof(struct parsed, if_none_match));
    http_parser_init(&parser, HTTP_REQUEST);
    nparsed = http_parser_execute(&parser, &settings, (const char *)data, window);

    if (cs.parsed.body_too_large) {
        refuse(c, 413, "payload_too_large", "the request body is larger than 64 KiB");
        return;
    }
    if (cs.parsed.complete) {
        if (parser.upgrade) {
            refuse(c, 400, "bad_request", "protocol upgrades are not supported");
            return;
        }
        evbuffer_drain(in, nparsed);
        dispatch(c, &parser);
        return;
    }
    if (cs.parsed.target_too_long) {
        refuse(c, 414, "uri_too_long", "the request target is longer than 2 KiB");
    } else if (cs.parsed.too_many_headers) {
        refuse(c, 431, "header_too_large", "the request has more than 100 header fields");
    } else if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) {
        char message[96];
        snprintf(message, sizeof(message), "malformed request (%s)",
                 http_errno_name(HTTP_PARSER_ERRNO(&parser)));
        refuse(c, 400, "bad_request", message);
    } else if (cs.parsed.expect_continue && nparsed == window && window == have) {
        /* Headers are in and the client waits for our go to send the body. */
        evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        note_output(c);
    }
    /* Otherwise the body is still coming. */
}

/*========================================================================
 * Callbacks: bufferevents, listeners, the sweep.
 */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (c->state == CONN_READING)
        parse_next(c);
    else if (c->state == CONN_STREAM)
        evbuffer_drain(bufferevent_get_input(bev),
                       evbuffer_get_length(bufferevent_get_input(bev)));
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    c->write_since_ms = 0; /* all written */
    if (c->state == CONN_CLOSING)
        free_conn(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        lost(arg);
}

static void pause_listeners(bool paused)
{
    for (int i = 0; i < cs.listener_count; i++) {
        if (cs.listeners[i] == NULL)
            continue;
        if (paused)
            evconnlistener_disable(cs.listeners[i]);
        else
            evconnlistener_enable(cs.listeners[i]);
    }
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd,
                      struct sockaddr *addr, int socklen, void *arg)
{
    static const char full[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                               "application/json\r\nContent-Length: 74\r\nRetry-After: "
                               "1\r\nConnection: close\r\n\r\n{\"error\":{\"code\":"
                               "\"busy\",\"message\":\"too many open connections\"}}";
    struct conn *c;

    (void)listener;
    (void)socklen;
    if (cs.open >= cs.cfg->server.max_connections || cs.draining) {
        ssize_t sent = send(fd, full, sizeof(full) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)sent;
        close(fd);
        region_count_request(cs.slot, ENDPOINT_OTHER, 503, 0);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->bev = bufferevent_socket_new(cs.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c == NULL || c->bev == NULL) {
        log_error(errno, "out of memory for a connection");
        free(c);
        close(fd);
        return;
    }
    c->admin = *(const bool *)arg;
    ratelimit_addr_from_sockaddr(addr, &c->peer);
    c->state = CONN_READING;
    c->activity_ms = time_mono_ms();
    c->next = cs.all;
    if (cs.all)
        cs.all->prev = c;
    cs.all = c;
    cs.open++;
    atomic_store_explicit(&cs.slot->connections, cs.open, memory_order_relaxed);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    static const struct timeval pause = {0, 100000};
    int err = EVUTIL_SOCKET_ERROR();

    (void)listener;
    (void)arg;
    /* Out of descriptors: stop accepting for a moment (the connection waits
     * in the queue, maybe for another worker) instead of spinning. */
    log_warn(err, "accept() failed; pausing for 100 ms");
    pause_listeners(true);
    evtimer_add(cs.resume, &pause);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!cs.draining)
        pause_listeners(false);
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
        } else if (c->state == CONN_READING && c->started_ms == 0 &&
                   now - c->activity_ms > limit) {
            free_conn(c); /* idle keep-alive connection */
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
    static const bool is_admin = true, is_api = false;
    struct timeval second = {1, 0};

    memset(&cs, 0, sizeof(cs));
    cs.cfg = cfg;
    cs.slot = slot;
    cs.base = base;
    cs.on_request = on_request;
    cs.on_gone = on_gone;
    cs.body = malloc(WEBHOOK_BODY_MAX + 1);
    cs.sweep = event_new(base, -1, EV_PERSIST, on_sweep, NULL);
    cs.resume = evtimer_new(base, on_resume, NULL);
    if (cs.body == NULL || cs.sweep == NULL || cs.resume == NULL ||
        event_add(cs.sweep, &second) != 0) {
        log_error(0, "cannot set up the HTTP server");
        return -1;
    }
    for (int i = 0; i < ls->count; i++) {
        cs.listener_admin[i] = ls->admin[i];
        cs.listeners[i] = evconnlistener_new(
            base, on_accept, (void *)(ls->admin[i] ? &is_admin : &is_api),
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, ls->fds[i]);
        if (cs.listeners[i] == NULL) {
            log_error(0, "cannot accept on %s:%u", ls->addrs[i].host, ls->addrs[i].port);
            return -1;
        }
        evconnlistener_set_error_cb(cs.listeners[i], on_accept_error);
        cs.listener_count++;
    }
    return 0;
}

int conn_server_drain(void)
{
    cs.draining = true;
    for (int i = 0; i < cs.listener_count; i++) {
        if (cs.listeners[i] != NULL)
            evconnlistener_free(cs.listeners[i]);
        cs.listeners[i] = NULL;
    }
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

void conn_server_stop(void)
{
    for (int i = 0; i < cs.listener_count; i++)
        if (cs.listeners[i] != NULL)
            evconnlistener_free(cs.listeners[i]);
    cs.listener_count = 0;
    for (struct conn *c = cs.all, *next; c != NULL; c = next) {
        next = c->next;
        bufferevent_free(c->bev);
        free(c);
    }
    cs.all = NULL;
    cs.open = 0;
    if (cs.sweep)
        event_free(cs.sweep);
    if (cs.resume)
        event_free(cs.resume);
    free(cs.body);
    memset(&cs, 0, sizeof(cs));
}
