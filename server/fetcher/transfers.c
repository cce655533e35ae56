/*
 * transfers.c - curl's multi interface on libevent (see transfers.h).
 *
 * DESIGN
 * After curl's docs/examples/multi-event.c: curl says which sockets to
 * watch (on_curl_socket(), one persistent libevent event per socket, kept
 * in curl's socket pointer) and when to call it back (on_curl_timer(), one
 * timer); libevent calls curl_multi_socket_action() when a socket is
 * ready or the timer fires, and every finished transfer is handed to the
 * fetcher's DONE callback (collect_done()), then removed and freed.
 *
 * One module-wide state, because a fetcher has one event loop and one
 * multi handle. Answers are written into a struct transfer_body, whose
 * bound is the caller's (a session list is larger than one session).
 */
#include "transfers.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"

static struct {
    struct event_base *base;
    struct event *timer;
    CURLM *multi;
    transfers_done_fn done;
} t;

static void collect_done(void)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(t.multi, &left)) != NULL) {
        CURL *easy = msg->easy_handle;

        if (msg->msg != CURLMSG_DONE)
            continue;
        t.done(easy, msg->data.result);
        curl_multi_remove_handle(t.multi, easy);
        curl_easy_cleanup(easy);
    }
}

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
    int action =
        (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int still;

    (void)arg;
    curl_multi_socket_action(t.multi, fd, action, &still);
    collect_done();
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                          void *socketp)
{
    struct event *ev = socketp;
    short kind;

    (void)easy;
    (void)userp;
    if (what == CURL_POLL_REMOVE) {
        if (ev != NULL) {
            event_free(ev);
            curl_multi_assign(t.multi, s, NULL);
        }
        return 0;
    }
    kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                   ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (ev != NULL)
        event_free(ev);
    ev = event_new(t.base, s, kind, on_socket_ready, NULL);
    if (ev == NULL || event_add(ev, NULL) != 0) {
        log_error(0, "cannot watch a socket to WAHA");
        if (ev)
            event_free(ev);
        curl_multi_assign(t.multi, s, NULL);
        return -1;
    }
    curl_multi_assign(t.multi, s, ev);
    return 0;
}

static void on_curl_timeout(evutil_socket_t fd, short what, void *arg)
{
    int still;

    (void)fd;
    (void)what;
    (void)arg;
    curl_multi_socket_action(t.multi, CURL_SOCKET_TIMEOUT, 0, &still);
    collect_done();
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct timeval tv = time_timeval(timeout_ms);

    (void)multi;
    (void)userp;
    if (timeout_ms < 0)
        evtimer_del(t.timer);
    else
        evtimer_add(t.timer, &tv);
    return 0;
}

int transfers_init(struct event_base *base, long max_connections, transfers_done_fn done)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error(0, "curl_global_init() failed");
        return -1;
    }
    t.base = base;
    t.done = done;
    t.multi = curl_multi_init();
    t.timer = evtimer_new(base, on_curl_timeout, NULL);
    if (t.multi == NULL || t.timer == NULL)
        return -1;
    curl_multi_setopt(t.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(t.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(t.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
    return 0;
}

int transfers_add(CURL *easy)
{
    return curl_multi_add_handle(t.multi, easy) == CURLM_OK ? 0 : -1;
}

void transfers_cancel(CURL *easy)
{
    if (t.multi != NULL)
        curl_multi_remove_handle(t.multi, easy);
    curl_easy_cleanup(easy);
}

void transfers_free(void)
{
    if (t.multi)
        curl_multi_cleanup(t.multi);
    if (t.timer)
        event_free(t.timer);
    memset(&t, 0, sizeof(t));
    curl_global_cleanup();
}

/*========================================================================
 * Answer bodies.
 */

int transfer_body_init(struct transfer_body *b, size_t first)
{
    memset(b, 0, sizeof(*b));
    b->cap = first;
    b->max = first;
    b->data = malloc(first + 1);
    return b->data != NULL ? 0 : -1;
}

void transfer_body_reset(struct transfer_body *b, size_t max)
{
    b->len = 0;
    b->max = max;
    b->too_large = false;
}

void transfer_body_free(struct transfer_body *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

size_t transfer_body_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct transfer_body *b = userp;
    size_t n = size * nmemb;

    if (n > b->max - b->len) {
        b->too_large = true;
        return 0; /* aborts the transfer */
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap;
        char *grown;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->max)
            cap = b->max;
        if ((grown = realloc(b->data, cap + 1)) == NULL) {
            b->too_large = true;
            return 0;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return n;
}
