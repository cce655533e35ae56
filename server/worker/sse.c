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
 * sessions in its scope (its session, or those its key may see) plus the
 * breaker's transitions. Both only grow, so the version grows with every
 * change a subscriber can see, and with no change outside its scope. Its
 * id (rules_stream_id()) adds the region's instance and table_generation,
 * which moves when sessions come or go (when a sum could come back to an
 * old value), so an id never stands for two states. A client that
 * reconnects with Last-Event-ID equal to the current id has missed
 * nothing and gets no initial events; otherwise it gets the current status
 * of every session in scope. The event is rendered once per change; only
 * its id line is written per stream (ids are computed once per scope).
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
#include <sys/uio.h>

#include "json.h"
#include "log.h"
#include "replica.h"
#include "routes.h"
#include "rules.h"
#include "timeutil.h"

#define EVENT_MAX (REPLICA_PREFIX_MAX + 512)
/* "id: " RULES_STREAM_ID_MAX "\n" */
#define ID_LINE_MAX (RULES_STREAM_ID_MAX + 8)
/* Scopes (a session, or a key's sessions) whose id one broadcast keeps. */
#define ID_CACHE_MAX 16

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
    uint64_t *generations;     /* per entry: scratch of id_line() */
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

/* The id of stream ST now, as its "id: ...\n" line in OUT: its length. */
static size_t id_line(const struct stream *st, char *out)
{
    uint64_t *generations = s.generations;
    char id[RULES_STREAM_ID_MAX];
    int count = 0;

    for (int i = REGION_ENTRY_FIRST_SESSION; i < s.entries; i++)
        if (in_scope(st, i))
            generations[count++] = generation_of(i);
    rules_stream_id(id, region_header(s.region)->instance_id, replica_names_generation(),
                    rules_stream_version(transitions(), generations, count));
    return (size_t)snprintf(out, ID_LINE_MAX, "id: %s\n", id);
}

/* The id lines of the scopes seen in one broadcast, so each is computed
 * once however many streams share it. */
struct id_cache {
    int count;
    struct {
        int session;
        const struct auth_key *key;
        size_t len;
        char line[ID_LINE_MAX];
    } scope[ID_CACHE_MAX];
};

static const char *cached_id_line(struct id_cache *cache, const struct stream *st,
                                  size_t *len)
{
    static char line[ID_LINE_MAX];
    int i;

    for (i = 0; i < cache->count; i++)
        if (cache->scope[i].session == st->session && cache->scope[i].key == st->key) {
            *len = cache->scope[i].len;
            return cache->scope[i].line;
        }
    if (cache->count == ID_CACHE_MAX) {
        *len = id_line(st, line); /* not kept: many scopes at once */
        return line;
    }
    i = cache->count++;
    cache->scope[i].session = st->session;
    cache->scope[i].key = st->key;
    cache->scope[i].len = id_line(st, cache->scope[i].line);
    *len = cache->scope[i].len;
    return cache->scope[i].line;
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

/* Write the COUNT pieces of IOV to stream I; false when the stream was
 * dropped for being slow. */
static bool send_iov(int i, const struct iovec *iov, int count)
{
    if (conn_stream_writev(s.streams[i].conn, iov, count, SSE_MAX_BUFFERED) == 0)
        return true;
    log_debug("dropped a slow event stream");
    remove_stream(i); /* conn.c closed it */
    return false;
}

static bool send_text(int i, const char *text, size_t len)
{
    struct iovec iov = {.iov_base = (void *)text, .iov_len = len};

    return send_iov(i, &iov, 1);
}

/* Session INDEX's event without its id, "event: status\ndata: {...}\n\n",
 * into OUT: its length, or 0. */
static size_t render_event(int index, int64_t now, char *out, size_t size)
{
    struct jbuf b;

    jbuf_init(&b, out, size);
    jbuf_raw(&b, "event: status\ndata: ");
    if (!routes_render_status(index, now, &b))
        return 0;
    jbuf_raw(&b, "\n\n");
    return b.overflow ? 0 : b.len;
}

/* Send EVENT (LEN bytes) to stream I after the id line LINE (LINE_LEN). */
static bool send_event(int i, const char *line, size_t line_len, const char *event,
                       size_t len)
{
    struct iovec iov[2] = {{.iov_base = (void *)line, .iov_len = line_len},
                           {.iov_base = (void *)event, .iov_len = len}};

    return send_iov(i, iov, 2);
}

/*
 * Send session INDEX's new status to every stream that watches it: the
 * event is rendered once, each stream gets it with its own id.
 */
static void broadcast(int index, int64_t now)
{
    static char event[EVENT_MAX];
    static struct id_cache cache;
    size_t len = 0;

    cache.count = 0;
    for (int i = 0; i < s.count;) {
        const struct stream *st = &s.streams[i];
        const char *line;
        size_t line_len;

        if (!in_scope(st, index)) {
            i++;
            continue;
        }
        if (len == 0)
            len = render_event(index, now, event, sizeof(event));
        line = cached_id_line(&cache, st, &line_len);
        if (len == 0 || send_event(i, line, line_len, event, len))
            i++; /* else stream I was dropped and another took its place */
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    uint64_t trans = transitions();
    bool breaker_moved = trans != s.sent_transitions;
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
            broadcast(index, now);
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
    char text[64], line[ID_LINE_MAX];
    size_t line_len;
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
    line_len = id_line(&s.streams[i], line);
    /* The id without "id: " and its line end. */
    line[line_len - 1] = '\0';
    if (rules_stream_resumes(last_event_id, line + 4))
        return 0; /* nothing happened since the client's last event */
    line[line_len - 1] = '\n';
    for (int index = REGION_ENTRY_FIRST_SESSION; index < s.entries; index++) {
        size_t len;
        if (!in_scope(&s.streams[i], index))
            continue;
        routes_note_reader(index, session >= 0, now);
        len = render_event(index, now, event, sizeof(event));
        if (len > 0 && !send_event(i, line, line_len, event, len))
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
