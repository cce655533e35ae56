/*
 * worker.c - a worker process: the HTTP transport (conn.c) on the inherited
 * listen sockets, answering through routes.c.
 *
 * DESIGN
 * One event_base per worker, created after fork. conn.c accepts on the
 * master's non-blocking listen sockets (shared by all workers; the kernel
 * hands each connection to one of them), parses requests and calls
 * on_request() with a struct http_request_view. The worker asks
 * routes_handle() and sends what it prepared, counting every answer in the
 * worker's stat slot.
 *
 * When a handler answers ROUTE_WAIT (the data is cold and the fetcher has
 * been asked for it), the request is parked: a copy of the request
 * (struct http_request, request.h) goes into a bounded table, its view is
 * made again from that copy by the same http_request_view_of() the
 * transport uses, and a WORKER_PARK_TICK_MS timer asks the handler again
 * until it answers or the request has waited limits.request_timeout, after
 * which it is asked with may_wait false and answers with what there is. A
 * parked connection that closes is forgotten (on_gone()). ROUTE_STREAM hands
 * the connection to sse.c.
 *
 * Stopping (SIGTERM/SIGINT, the gateway stops) and retiring (SIGUSR2: a
 * reload or scaling down): stop accepting, end the event streams (their
 * clients reconnect elsewhere), answer what still arrives on open
 * connections with Connection: close, close connections idle for
 * WORKER_DRAIN_IDLE_MS, and leave the loop when none is left or after
 * WORKER_DRAIN_MS. Stopping answers parked requests at once; retiring lets
 * them wait for their data, as the fetcher goes on.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conn.h"
#include "http.h"
#include "log.h"
#include "routes.h"
#include "sse.h"
#include "timeutil.h"

/* A parked request: its own copy of the request (request.h). */
struct parked {
    struct conn *conn;
    int64_t arrived_mono_ms;
    int64_t arrived_us;
    struct ratelimit_verdict rate; /* charged on arrival, shown in the answer */
    struct http_request req;
};

static struct {
    const struct heritage *h;
    const struct config *cfg;
    struct region_proc *slot;
    struct event_base *base;
    struct event *park_timer;
    struct event *drain_timer;
    struct event *signals[5];
    struct parked *parked; /* WORKER_MAX_PARKED */
    int parked_count;
    bool draining;
    bool retiring; /* draining while the gateway goes on */
} w;

static const char *const method_names[] = {"GET", "HEAD", "POST", "OPTIONS", "OTHER"};

static void set_in_flight(void)
{
    atomic_store_explicit(&w.slot->in_flight, w.parked_count, memory_order_relaxed);
}

/* Send RESP on C, count it, and log it when log.access is on. */
static void answer(struct conn *c, const struct http_request_view *view,
                   const struct http_response *resp, int64_t arrived_us)
{
    int64_t latency_us = time_mono_us() - arrived_us;
    char query[REQUEST_MAX_TARGET + 64];

    region_count(w.slot, COUNTER_BYTES_SENT, resp->body_len);
    region_count_request(w.slot, resp->endpoint, resp->status, latency_us);
    if (w.cfg->log.access) {
        /* Client keys in the query (?access_token=) are left out. */
        http_query_redacted(query, sizeof(query), view->query);
        log_msg(LOG_LEVEL_INFO, 0, "%s %s%s%s %d %zu %.3fms", method_names[view->method],
                view->path, view->query ? "?" : "", query, resp->status, resp->body_len,
                latency_us / 1000.0);
    }
    conn_send(c, resp);
}

static void start_stream(struct conn *c, const struct http_request_view *view,
                         struct http_response *resp, int64_t arrived_us)
{
    if (w.draining || sse_subscribe(c, resp->stream_session, resp->stream_key,
                                    view->header[HEADER_LAST_EVENT_ID], resp) != 0) {
        resp->header_count = 0;
        http_response_error(resp, 503, "busy", "this worker cannot hold another stream");
        http_response_header(resp, "Retry-After", "1");
        answer(c, view, resp, arrived_us);
        return;
    }
    region_count_request(w.slot, ENDPOINT_EVENTS, 200, time_mono_us() - arrived_us);
}

/* Ask the handlers about VIEW on C; true when it was answered. */
static bool try_answer(struct conn *c, const struct http_request_view *view,
                       int64_t arrived_us)
{
    struct http_response resp;

    switch (routes_handle(view, &resp)) {
    case ROUTE_WAIT: return false;
    case ROUTE_STREAM: start_stream(c, view, &resp, arrived_us); return true;
    case ROUTE_DONE:
    default: answer(c, view, &resp, arrived_us); return true;
    }
}

static void park(struct conn *c, const struct http_request *req,
                 const struct http_request_view *view, int64_t arrived_us)
{
    struct parked *p = &w.parked[w.parked_count++];
    struct timeval tick = time_timeval(WORKER_PARK_TICK_MS);

    p->conn = c;
    p->arrived_us = arrived_us;
    p->arrived_mono_ms = arrived_us / 1000;
    p->rate = view->rate != NULL ? *view->rate : (struct ratelimit_verdict){0};
    p->req = *req; /* its body stays behind: requests with one never wait */
    p->req.body_len = 0;
    set_in_flight();
    if (!evtimer_pending(w.park_timer, NULL))
        evtimer_add(w.park_timer, &tick);
}

static void unpark(int i)
{
    w.parked[i] = w.parked[--w.parked_count];
    set_in_flight();
}

static void on_request(struct conn *c, const struct http_request *req,
                       const struct http_request_view *view)
{
    struct http_request_view first = *view;
    struct ratelimit_verdict rate = {0};
    int64_t arrived_us = time_mono_us();

    first.rate = &rate;
    first.may_wait = !w.draining && w.parked_count < WORKER_MAX_PARKED;
    if (!try_answer(c, &first, arrived_us))
        park(c, req, &first, arrived_us);
}

static void park_tick(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tick = time_timeval(WORKER_PARK_TICK_MS);
    int64_t now = time_mono_ms();

    (void)fd;
    (void)what;
    (void)arg;
    for (int i = 0; i < w.parked_count;) {
        struct parked *p = &w.parked[i];
        struct http_request_view view;

        http_request_view_of(&p->req, &view);
        view.rate = &p->rate;
        view.now_mono_ms = now;
        view.parked = true;
        view.may_wait = (!w.draining || w.retiring) &&
                        now - p->arrived_mono_ms < w.cfg->limits.request_timeout;

        /* With may_wait false the handlers always answer: the loop ends. */
        if (try_answer(p->conn, &view, p->arrived_us))
            unpark(i);
        else
            i++;
    }
    if (w.parked_count > 0)
        evtimer_add(w.park_timer, &tick);
}

/* A connection the worker holds on to went away. */
static void on_gone(struct conn *c)
{
    for (int i = 0; i < w.parked_count; i++) {
        if (w.parked[i].conn == c) {
            unpark(i);
            return;
        }
    }
    sse_forget(c);
}

static void check_drained(evutil_socket_t fd, short what, void *arg)
{
    struct timeval again = time_timeval(50);

    (void)fd;
    (void)what;
    conn_server_close_idle(WORKER_DRAIN_IDLE_MS);
    if (conn_server_open() == 0 || time_mono_ms() >= *(int64_t *)arg) {
        if (conn_server_open() > 0)
            log_warn(0, "%d connections still open after %d ms; stopping anyway",
                     conn_server_open(), WORKER_DRAIN_MS);
        event_base_loopbreak(w.base);
        return;
    }
    evtimer_add(w.drain_timer, &again);
}

/*
 * Stop serving. RETIRING (SIGUSR2: a reload or scaling down; the gateway
 * goes on) lets parked requests wait for their data as usual, since a
 * fetcher still runs; stopping (SIGTERM: the whole gateway stops) answers
 * them at once with what there is.
 */
static void start_drain(bool retiring)
{
    static int64_t deadline;
    struct timeval now = {0, 0};

    if (w.draining)
        return;
    w.draining = true;
    w.retiring = retiring;
    atomic_store(&w.slot->serving, 0);
    deadline =
        time_mono_ms() + WORKER_DRAIN_MS + (retiring ? w.cfg->limits.request_timeout : 0);
    conn_server_drain();
    park_tick(-1, 0, NULL); /* stopping: answers every parked request now */
    sse_close_all();        /* the clients reconnect to another worker */
    event_assign(w.drain_timer, w.base, -1, 0, check_drained, &deadline);
    evtimer_add(w.drain_timer, &now);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGTERM || sig == SIGINT || sig == SIGUSR2) {
        start_drain(sig == SIGUSR2);
    } else if (sig == SIGUSR1) {
        if (log_open(w.cfg->log.file) != 0)
            log_error(errno, "cannot reopen log file \"%s\"", w.cfg->log.file);
    }
}

static int setup(const struct heritage *h)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP};

    w.h = h;
    w.cfg = h->cfg;
    w.slot = region_proc(h->region, h->slot);
    w.parked = calloc(WORKER_MAX_PARKED, sizeof(*w.parked));
    w.base = event_base_new();
    if (w.parked == NULL || w.base == NULL) {
        log_error(0, "cannot create the event loop");
        return -1;
    }
    w.park_timer = evtimer_new(w.base, park_tick, NULL);
    w.drain_timer = evtimer_new(w.base, check_drained, NULL);
    if (w.park_timer == NULL || w.drain_timer == NULL ||
        routes_init(h->cfg, h->region, w.slot) != 0 ||
        sse_init(w.base, h->cfg, h->region, w.slot) != 0 ||
        conn_server_start(w.base, h->cfg, &h->listeners, w.slot, on_request, on_gone) !=
            0)
        return -1;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        w.signals[i] = evsignal_new(w.base, sigs[i], on_signal, NULL);
        if (w.signals[i] == NULL || evsignal_add(w.signals[i], NULL) != 0) {
            log_error(0, "cannot watch signal %d", sigs[i]);
            return -1;
        }
    }
    return 0;
}

static void teardown(void)
{
    conn_server_stop();
    for (size_t i = 0; i < sizeof(w.signals) / sizeof(w.signals[0]); i++)
        if (w.signals[i])
            event_free(w.signals[i]);
    if (w.park_timer)
        event_free(w.park_timer);
    if (w.drain_timer)
        event_free(w.drain_timer);
    sse_free();
    routes_free();
    if (w.base)
        event_base_free(w.base);
    free(w.parked);
}

noreturn void worker_main(const struct heritage *h)
{
    int code = PROC_EXIT_OK;

    if (proc_child_start(h, ROLE_WORKER) != 0 || setup(h) != 0) {
        teardown();
        exit(PROC_EXIT_FAILURE);
    }
    atomic_store(&w.slot->serving, 1);
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
