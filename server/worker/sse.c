/*
 * sse.c - Server-Sent Events streams in a worker (see sse.h).
 *
 * DESIGN
 * Streams are connections of conn.c answered with conn_stream_start() and
 * kept open; events are written with conn_stream_write(). A timer
 * (SSE_TICK_MS) compares, for each session, the entry's generation and the
 * breaker's transition count with what was last sent: the cost of a quiet
 * tick is two atomic loads per session. When something changed, the status
 * object is rendered once (routes_render_status()) and written to every
 * stream whose scope holds that session, so a change reaches all
 * subscribers within one tick of the region update.
 *
 * Event ids: a stream's version is the sum of the generations of the
 * sessions in its scope plus the breaker's transitions. Both only grow, so
 * the version grows with every change a subscriber can see. A client that
 * reconnects with Last-Event-ID equal to the current version has missed
 * nothing and gets no initial events; otherwise it gets the current status
 * of every session in scope.
 *
 * Bounds: at most server.max_connections streams per worker; a stream whose
 * connection holds more than SSE_MAX_BUFFERED unsent bytes is dropped
 * rather than allowed to grow memory (and its socket's send buffer is
 * fixed, CONN_STREAM_SNDBUF, so the kernel does not hold megabytes for it
 * first). Streams count as readers of their
 * sessions (last_read_ms), so the fetcher keeps them fresh.
 *
 * A stream ends in one of two ways: the client goes away (conn.c calls the
 * worker's on_gone(), which calls sse_forget()), or the worker ends it
 * (dropped for being slow, or stopping: conn_close() after a last retry
 * hint).
 */
#include "sse.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "replica.h"
#include "routes.h"
#include "rules.h"
#include "timeutil.h"

#define EVENT_MAX (REPLICA_PREFIX_MAX + 512)

struct stream {
    struct conn *conn;
    int session;                /* entry index, or -1: every session... */
    const struct auth_key *key; /* ...that this key may see (NULL: all) */
};

static struct {
    const struct config *cfg;
    struct region *region;
    struct region_proc *slot;
    struct event *tick;
    struct stream *streams; /* server.max_connections */
    int count;
    int max;
    int entries;               /* replica_entry_count() */
    int *watchers;             /* per entry: streams of that one session */
    int watchers_all;          /* streams of every session */
    uint64_t *sent_generation; /* per entry */
    uint64_t *generations;     /* per entry: scratch of version_of() */
    uint64_t sent_transitions;
    int64_t last_heartbeat_ms;
} s;

static uint64_t transitions(void)
{
    return atomic_load(&region_header(s.region)->circuit_transitions);
}

static uint64_t generation_of(int index)
{
    return atomic_load(&region_entry(s.region, index)->generation);
}

static bool in_scope(const struct stream *st, int index)
{
    if (st->session >= 0)
        return st->session == index;
    return replica_is_session(index) &&
           config_key_allows(st->key, replica_session_name(index));
}

/* The version of a stream of scope SESSION (-1: all): see DESIGN. */
static uint64_t version_of(int session)
{
    uint64_t *generations = s.generations;
    int count = 0;

    if (session >= 0)
        generations[count++] = generation_of(session);
    else
        for (int i = REGION_ENTRY_FIRST_SESSION; i < s.entries; i++)
            if (replica_is_session(i))
                generations[count++] = generation_of(i);
    return rules_stream_version(transitions(), generations, count);
}

static void publish_count(void)
{
    atomic_store_explicit(&s.slot->sse_clients, s.count, memory_order_relaxed);
}

static void watch(int session, int delta)
{
    if (session < 0)
        s.watchers_all += delta;
    else
        s.watchers[session] += delta;
}

/* Forget stream I (its request is gone or ended). */
static void remove_stream(int i)
{
    watch(s.streams[i].session, -1);
    s.streams[i] = s.streams[--s.count];
    publish_count();
}

void sse_forget(struct conn *c)
{
    for (int i = 0; i < s.count; i++) {
        if (s.streams[i].conn == c) {
            remove_stream(i);
            return;
        }
    }
}

/* End stream I from our side, with TEXT as its last words. */
static void end_stream(int i, const char *text)
{
    struct conn *c = s.streams[i].conn;

    remove_stream(i);
    if (conn_stream_write(c, text, strlen(text), SSE_MAX_BUFFERED) == 0)
        conn_close(c);
}

/* Write TEXT to stream I; false when the stream was dropped for being slow. */
static bool send_text(int i, const char *text, size_t len)
{
    if (conn_stream_write(s.streams[i].conn, text, len, SSE_MAX_BUFFERED) == 0)
        return true;
    log_debug("dropped a slow event stream");
    remove_stream(i); /* conn.c closed it */
    return false;
}

/* "id: V\nevent: status\ndata: {...}\n\n" for session INDEX into OUT. */
static size_t render_event(int index, uint64_t version, int64_t now, char *out,
                           size_t size)
{
    struct jbuf b;

    jbuf_init(&b, out, size);
    jbuf_printf(&b, "id: %llu\nevent: status\ndata: ", (unsigned long long)version);
    if (!routes_render_status(index, now, &b))
        return 0;
    jbuf_raw(&b, "\n\n");
    return b.overflow ? 0 : b.len;
}

/*
 * Send session INDEX's new status to every stream that watches it. The
 * event is rendered once for the streams of all sessions and once for the
 * streams of this session alone: only their ids differ.
 */
static void broadcast(int index, uint64_t version_all, int64_t now)
{
    static char all[EVENT_MAX], one[EVENT_MAX];
    size_t all_len = 0, one_len = 0;

    for (int i = 0; i < s.count;) {
        const struct stream *st = &s.streams[i];
        bool sent_ok = true;

        if (st->session < 0 && in_scope(st, index)) {
            if (all_len == 0)
                all_len = render_event(index, version_all, now, all, sizeof(all));
            sent_ok = all_len == 0 || send_text(i, all, all_len);
        } else if (st->session == index) {
            if (one_len == 0)
                one_len = render_event(index, version_of(index), now, one, sizeof(one));
            sent_ok = one_len == 0 || send_text(i, one, one_len);
        }
        if (sent_ok)
            i++; /* else stream I was dropped and another took its place */
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    uint64_t trans = transitions();
    bool breaker_moved = trans != s.sent_transitions;
    uint64_t version_all = version_of(-1);
    int64_t now = time_mono_ms();

    (void)fd;
    (void)what;
    (void)arg;
    for (int index = REGION_ENTRY_FIRST_SESSION; index < s.entries; index++) {
        uint64_t gen = generation_of(index);
        bool watched = s.watchers_all > 0 || s.watchers[index] > 0;

        if (!replica_is_session(index))
            continue;
        if (watched) /* subscribers are readers */
            routes_note_reader(index, s.watchers[index] > 0, now);
        if (watched && (gen != s.sent_generation[index] || breaker_moved))
            broadcast(index, version_all, now);
        s.sent_generation[index] = gen;
    }
    s.sent_transitions = trans;
    if (now - s.last_heartbeat_ms >= SSE_HEARTBEAT_MS) {
        s.last_heartbeat_ms = now;
        for (int i = 0; i < s.count;)
            if (send_text(i, ": keep-alive\n\n", 14))
                i++;
    }
}

int sse_subscribe(struct conn *c, int session, const struct auth_key *key,
                  const char *last_event_id, const struct http_response *resp)
{
    static char event[EVENT_MAX];
    struct http_response head = *resp;
    uint64_t version = version_of(session);
    char text[64];
    int64_t now = time_mono_ms();
    int i;

    if (s.count == s.max)
        return -1;
    http_response_header(&head, "Cache-Control", "no-cache");
    http_response_header(&head, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    conn_stream_start(c, &head);
    i = s.count++;
    s.streams[i] = (struct stream){.conn = c, .session = session, .key = key};
    watch(session, 1);
    publish_count();

    /* Reconnect after 1 to 3 s, so that clients of a worker that went away
     * do not all come back in the same millisecond. */
    snprintf(text, sizeof(text), "retry: %ld\n\n", 1000 + random() % 2000);
    if (!send_text(i, text, strlen(text)))
        return 0;
    if (rules_stream_resumes(last_event_id, version))
        return 0; /* nothing happened since the client's last event */
    for (int index = REGION_ENTRY_FIRST_SESSION; index < s.entries; index++) {
        size_t len;
        if (!in_scope(&s.streams[i], index))
            continue;
        routes_note_reader(index, session >= 0, now);
        len = render_event(index, version, now, event, sizeof(event));
        if (len > 0 && !send_text(i, event, len))
            break;
    }
    return 0;
}

int sse_count(void)
{
    return s.count;
}

void sse_close_all(void)
{
    while (s.count > 0)
        end_stream(s.count - 1, "retry: 500\n\n");
}

int sse_init(struct event_base *base, const struct config *cfg, struct region *region,
             struct region_proc *slot)
{
    struct timeval tv = time_timeval(SSE_TICK_MS);

    memset(&s, 0, sizeof(s));
    s.cfg = cfg;
    s.region = region;
    s.slot = slot;
    s.max = (int)cfg->server.max_connections;
    s.entries = replica_entry_count();
    s.streams = calloc((size_t)s.max, sizeof(*s.streams));
    s.watchers = calloc((size_t)s.entries, sizeof(*s.watchers));
    s.sent_generation = calloc((size_t)s.entries, sizeof(*s.sent_generation));
    s.generations = calloc((size_t)s.entries, sizeof(*s.generations));
    s.tick = event_new(base, -1, EV_PERSIST, tick, NULL);
    s.last_heartbeat_ms = time_mono_ms();
    s.sent_transitions = transitions();
    if (s.streams == NULL || s.watchers == NULL || s.sent_generation == NULL ||
        s.generations == NULL || s.tick == NULL || event_add(s.tick, &tv) != 0) {
        log_error(0, "cannot set up event streams");
        return -1;
    }
    for (int i = 0; i < s.entries; i++)
        s.sent_generation[i] = generation_of(i);
    publish_count();
    return 0;
}

void sse_free(void)
{
    if (s.tick != NULL)
        event_free(s.tick);
    free(s.streams);
    free(s.watchers);
    free(s.sent_generation);
    free(s.generations);
    memset(&s, 0, sizeof(s));
}
