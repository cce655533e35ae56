/*
 * worker.c - a worker process: libevent's evhttp on the inherited listen
 * sockets, answering through routes.c.
 *
 * DESIGN
 * One event_base per worker, created after fork. evhttp accepts on the
 * master's non-blocking listen sockets (shared by all workers; the kernel
 * hands each connection to one of them) and calls on_request() for every
 * request. on_request() turns the evhttp request into a struct
 * http_request_view (decoded path, query, the few headers handlers need),
 * asks routes_handle() and sends the prepared response.
 *
 * When a handler answers ROUTE_WAIT (the data is cold and the fetcher has
 * been asked for it), the request is parked: a copy of its view goes into a
 * bounded table, and a WORKER_PARK_TICK_MS timer asks the handler again
 * until it answers or the request has waited limits.request_timeout, after
 * which it is asked with may_wait false and answers with what there is. The
 * evhttp request stays valid while parked: evhttp only frees a request the
 * user has not answered when the reply is finally sent.
 *
 * Stopping (SIGTERM/SIGINT): stop accepting, answer every parked request at
 * once, add "Connection: close", and leave the loop when every started reply
 * has been written (evhttp's on-complete callback) or after WORKER_DRAIN_MS.
 */
#include "worker.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http.h"
#include "log.h"
#include "routes.h"
#include "sse.h"
#include "timeutil.h"
#include "webhook.h"

#define PATH_MAX_LEN 512
#define QUERY_MAX_LEN 512
#define HEADER_COPY_MAX 256

/* A request's view with its own storage, so it can be parked. */
struct pending {
    struct evhttp_request *req;
    int64_t arrived_mono_ms;
    int64_t arrived_us;
    enum http_method method;
    bool has_query, has_inm, has_accept, has_hmac, has_authorization, has_origin,
        has_last_event_id;
    bool admin; /* came in on an admin_listen socket */
    char path[PATH_MAX_LEN];
    char query[QUERY_MAX_LEN];
    char if_none_match[HEADER_COPY_MAX];
    char accept[HEADER_COPY_MAX];
    char hmac[HEADER_COPY_MAX];
    char authorization[HEADER_COPY_MAX];
    char origin[HEADER_COPY_MAX];
    char last_event_id[HEADER_COPY_MAX];
};

static struct {
    const struct heritage *h;
    const struct config *cfg;
    struct region_proc *slot;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp *admin_http; /* server.admin_listen; NULL without it */
    struct evhttp_bound_socket *bound[LISTEN_MAX];
    struct event *park_timer;
    struct event *drain_timer;
    struct event *signals[4];
    struct pending *parked; /* WORKER_MAX_PARKED */
    char *body;             /* WEBHOOK_BODY_MAX + 1: the POST being answered */
    int parked_count;
    int unfinished; /* replies not yet fully written */
    bool draining;
} w;

static enum http_method method_of(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: return HTTP_GET;
    case EVHTTP_REQ_HEAD: return HTTP_HEAD;
    case EVHTTP_REQ_POST: return HTTP_POST;
    case EVHTTP_REQ_OPTIONS: return HTTP_OPTIONS;
    default: return HTTP_OTHER;
    }
}

static void copy_header(struct evhttp_request *req, const char *name, char *out,
                        bool *present)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    size_t len = v ? strlen(v) : 0;

    *present = v != NULL && len < HEADER_COPY_MAX;
    if (*present)
        memcpy(out, v, len + 1);
}

/*
 * Fill P from REQ. Returns 0, or an HTTP status (400, 414) for a request
 * whose target cannot be used.
 */
static int read_request(struct evhttp_request *req, struct pending *p)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    size_t len = 0;
    char *decoded;

    p->req = req;
    p->path[0] = '\0';
    p->has_query = false;
    p->arrived_us = time_mono_us();
    p->arrived_mono_ms = p->arrived_us / 1000;
    p->method = method_of(req);
    copy_header(req, "If-None-Match", p->if_none_match, &p->has_inm);
    copy_header(req, "Accept", p->accept, &p->has_accept);
    copy_header(req, "X-Webhook-Hmac", p->hmac, &p->has_hmac);
    copy_header(req, "Authorization", p->authorization, &p->has_authorization);
    copy_header(req, "Origin", p->origin, &p->has_origin);
    copy_header(req, "Last-Event-ID", p->last_event_id, &p->has_last_event_id);
    if (uri == NULL)
        return 400;
    if (raw_path == NULL || raw_path[0] == '\0')
        raw_path = "/";
    if (strlen(raw_path) >= PATH_MAX_LEN ||
        (query != NULL && strlen(query) >= QUERY_MAX_LEN))
        return 414;
    decoded = evhttp_uridecode(raw_path, 0, &len);
    if (decoded == NULL)
        return 400;
    if (len != strlen(decoded)) { /* an encoded NUL */
        free(decoded);
        return 400;
    }
    memcpy(p->path, decoded, len + 1);
    free(decoded);
    p->has_query = query != NULL;
    if (p->has_query)
        memcpy(p->query, query, strlen(query) + 1);
    return 0;
}

/* Send RESP for P, count it, and log it when log.access is on. */
static void send_response(const struct pending *p, const struct http_response *resp)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "OPTIONS", "OTHER"};
    struct evhttp_request *req = p->req;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    int64_t latency_us = time_mono_us() - p->arrived_us;

    if (resp->content_type != NULL && resp->status != 304)
        evhttp_add_header(out, "Content-Type", resp->content_type);
    for (int i = 0; i < resp->header_count; i++)
        evhttp_add_header(out, resp->headers[i].name, resp->headers[i].value);
    if (w.draining)
        evhttp_add_header(out, "Connection", "close");
    if (resp->body_len > 0 && resp->status != 304)
        evbuffer_add(evhttp_request_get_output_buffer(req), resp->body, resp->body_len);
    region_count(w.slot, COUNTER_BYTES_SENT, resp->body_len);
    region_count_request(w.slot, resp->endpoint, resp->status, latency_us);
    if (w.cfg->log.access)
        log_msg(LOG_LEVEL_INFO, 0, "%s %s%s%s %d %zu %.3fms", names[p->method], p->path,
                p->has_query ? "?" : "", p->has_query ? p->query : "", resp->status,
                resp->body_len, latency_us / 1000.0);
    evhttp_send_reply(req, resp->status, http_reason(resp->status), NULL);
}

/*
 * Hand P over to sse.c as an event stream. A stream is not an unfinished
 * reply: it ends when the client or the worker ends it.
 */
static void start_stream(const struct pending *p, struct http_response *resp)
{
    if (w.draining ||
        sse_subscribe(p->req, resp->stream_session,
                      p->has_last_event_id ? p->last_event_id : NULL, resp) != 0) {
        resp->header_count = 0;
        http_response_error(resp, 503, "busy", "this worker cannot hold another stream");
        http_response_header(resp, "Retry-After", "1");
        send_response(p, resp);
        return;
    }
    evhttp_request_set_on_complete_cb(p->req, NULL, NULL);
    w.unfinished--;
    atomic_store_explicit(&w.slot->in_flight, w.unfinished, memory_order_relaxed);
    region_count_request(w.slot, ENDPOINT_EVENTS, 200, time_mono_us() - p->arrived_us);
}

/*
 * Ask the handlers about P; true when P was answered. A POST's body is read
 * into the worker's body buffer (no handler that reads a body waits, so one
 * buffer is enough).
 */
static bool try_answer(struct pending *p, bool parked, bool may_wait)
{
    struct http_response resp;
    struct http_request_view view = {
        .method = p->method,
        .path = p->path,
        .query = p->has_query ? p->query : NULL,
        .if_none_match = p->has_inm ? p->if_none_match : NULL,
        .accept = p->has_accept ? p->accept : NULL,
        .webhook_hmac = p->has_hmac ? p->hmac : NULL,
        .authorization = p->has_authorization ? p->authorization : NULL,
        .origin = p->has_origin ? p->origin : NULL,
        .last_event_id = p->has_last_event_id ? p->last_event_id : NULL,
        .admin = p->admin,
        .now_mono_ms = time_mono_ms(),
        .parked = parked,
        .may_wait = may_wait,
    };

    if (p->method == HTTP_POST && !parked) {
        struct evbuffer *in = evhttp_request_get_input_buffer(p->req);
        size_t len = evbuffer_get_length(in);

        view.body_too_large = len > WEBHOOK_BODY_MAX;
        if (!view.body_too_large && len > 0 &&
            evbuffer_copyout(in, w.body, len) == (ev_ssize_t)len) {
            w.body[len] = '\0';
            view.body = w.body;
            view.body_len = len;
        }
    }

    switch (routes_handle(&view, &resp)) {
    case ROUTE_WAIT: return false;
    case ROUTE_STREAM: start_stream(p, &resp); return true;
    case ROUTE_DONE:
    default: send_response(p, &resp); return true;
    }
}

static void park_tick(evutil_socket_t fd, short what, void *arg);

static void park(const struct pending *p)
{
    struct timeval tick = time_timeval(WORKER_PARK_TICK_MS);

    w.parked[w.parked_count++] = *p;
    if (!evtimer_pending(w.park_timer, NULL))
        evtimer_add(w.park_timer, &tick);
}

static void park_tick(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tick = time_timeval(WORKER_PARK_TICK_MS);
    int64_t now = time_mono_ms();

    (void)fd;
    (void)what;
    (void)arg;
    for (int i = 0; i < w.parked_count;) {
        struct pending *p = &w.parked[i];
        bool may_wait =
            !w.draining && now - p->arrived_mono_ms < w.cfg->limits.request_timeout;

        if (try_answer(p, true, may_wait) || !may_wait) {
            /* !may_wait always answers; the check keeps the loop bounded. */
            w.parked[i] = w.parked[--w.parked_count];
            continue;
        }
        i++;
    }
    if (w.parked_count > 0)
        evtimer_add(w.park_timer, &tick);
}

static void check_drained(void)
{
    if (w.draining && w.parked_count == 0 && w.unfinished == 0)
        event_base_loopbreak(w.base);
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    (void)req;
    (void)arg;
    w.unfinished--;
    atomic_store_explicit(&w.slot->in_flight, w.unfinished, memory_order_relaxed);
    check_drained();
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct pending p;
    int bad;

    w.unfinished++;
    atomic_store_explicit(&w.slot->in_flight, w.unfinished, memory_order_relaxed);
    evhttp_request_set_on_complete_cb(req, on_complete, NULL);

    bad = read_request(req, &p);
    p.admin = *(const bool *)arg;
    if (bad != 0) {
        struct http_response resp;
        http_response_error(&resp, bad, bad == 414 ? "uri_too_long" : "bad_request",
                            bad == 414 ? "the request target is too long"
                                       : "the request target cannot be decoded");
        resp.header_count = 0;
        resp.endpoint = ENDPOINT_OTHER;
        send_response(&p, &resp);
        return;
    }
    if (try_answer(&p, false, !w.draining && w.parked_count < WORKER_MAX_PARKED))
        return;
    park(&p);
}

static void drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_warn(0, "%d replies still unfinished after %d ms; stopping anyway", w.unfinished,
             WORKER_DRAIN_MS);
    event_base_loopbreak(w.base);
}

static void start_drain(void)
{
    struct timeval limit = time_timeval(WORKER_DRAIN_MS);

    if (w.draining)
        return;
    w.draining = true;
    for (int i = 0; i < w.h->listeners.count; i++) {
        if (w.bound[i] != NULL)
            evhttp_del_accept_socket(w.h->listeners.admin[i] ? w.admin_http : w.http,
                                     w.bound[i]);
        w.bound[i] = NULL;
    }
    park_tick(-1, 0, NULL); /* answers every parked request now */
    sse_close_all();        /* the clients reconnect to another worker */
    evtimer_add(w.drain_timer, &limit);
    check_drained();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGTERM || sig == SIGINT) {
        start_drain();
    } else if (sig == SIGUSR1) {
        if (log_open(w.cfg->log.file) != 0)
            log_error(errno, "cannot reopen log file \"%s\"", w.cfg->log.file);
    }
}

/* An evhttp for the API (ADMIN false) or for the admin listeners. */
static struct evhttp *new_http(const struct config *cfg, bool admin)
{
    static const bool is_admin = true, is_api = false;
    struct timeval timeout = time_timeval(cfg->server.client_timeout);
    struct evhttp *http = evhttp_new(w.base);

    if (http == NULL)
        return NULL;
    evhttp_set_timeout_tv(http, &timeout);
    evhttp_set_max_headers_size(http, 8192);
    /* Bodies between WEBHOOK_BODY_MAX and this get our JSON 413. */
    evhttp_set_max_body_size(http, WORKER_MAX_BODY);
    /* Every method reaches the handlers, which answer 405 in JSON. */
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http, "application/json");
    evhttp_set_gencb(http, on_request, (void *)(admin ? &is_admin : &is_api));
    return http;
}

static int setup(const struct heritage *h)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};
    const struct listeners *ls = &h->listeners;

    w.h = h;
    w.cfg = h->cfg;
    w.slot = region_proc(h->region, h->slot);
    w.parked = calloc(WORKER_MAX_PARKED, sizeof(*w.parked));
    w.body = malloc(WEBHOOK_BODY_MAX + 1);
    w.base = event_base_new();
    if (w.parked == NULL || w.body == NULL || w.base == NULL ||
        (w.http = new_http(h->cfg, false)) == NULL ||
        (h->cfg->server.admin_listen_count > 0 &&
         (w.admin_http = new_http(h->cfg, true)) == NULL)) {
        log_error(0, "cannot create the event loop");
        return -1;
    }
    if (routes_init(h->cfg, h->region, w.slot) != 0 ||
        sse_init(w.base, h->cfg, h->region, w.slot) != 0)
        return -1;
    for (int i = 0; i < ls->count; i++) {
        w.bound[i] = evhttp_accept_socket_with_handle(
            ls->admin[i] ? w.admin_http : w.http, ls->fds[i]);
        if (w.bound[i] == NULL) {
            log_error(0, "evhttp cannot accept on %s:%u", ls->addrs[i].host,
                      ls->addrs[i].port);
            return -1;
        }
    }
    w.park_timer = evtimer_new(w.base, park_tick, NULL);
    w.drain_timer = evtimer_new(w.base, drain_timeout, NULL);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        w.signals[i] = evsignal_new(w.base, sigs[i], on_signal, NULL);
        if (w.signals[i] == NULL || evsignal_add(w.signals[i], NULL) != 0) {
            log_error(0, "cannot watch signal %d", sigs[i]);
            return -1;
        }
    }
    return w.park_timer && w.drain_timer ? 0 : -1;
}

static void teardown(void)
{
    for (size_t i = 0; i < sizeof(w.signals) / sizeof(w.signals[0]); i++)
        if (w.signals[i])
            event_free(w.signals[i]);
    if (w.park_timer)
        event_free(w.park_timer);
    if (w.drain_timer)
        event_free(w.drain_timer);
    if (w.http)
        evhttp_free(w.http);
    if (w.admin_http)
        evhttp_free(w.admin_http);
    if (w.base)
        event_base_free(w.base);
    sse_free();
    routes_free();
    free(w.parked);
    free(w.body);
}

noreturn void worker_main(const struct heritage *h)
{
    int code = PROC_EXIT_OK;

    if (proc_child_start(h, ROLE_WORKER) != 0 || setup(h) != 0) {
        teardown();
        exit(PROC_EXIT_FAILURE);
    }
    log_debug("serving");
    if (event_base_dispatch(w.base) < 0) {
        log_error(0, "event loop failed");
        code = PROC_EXIT_FAILURE;
    }
    atomic_store(&region_proc(h->region, h->slot)->in_flight, 0);
    atomic_store(&region_proc(h->region, h->slot)->pid, 0);
    teardown();
    exit(code);
}
