/*
 * fetcher.c - the one process that calls WAHA: libcurl's multi interface
 * on a libevent loop, refreshing region entries on demand.
 *
 * DESIGN
 * Scheduling. Every FETCHER_TICK_MS the fetcher looks at each entry of the
 * region and applies cache_refresh_due(): an entry is refreshed when a
 * reader waits for it (wanted_ms), or when it was read since its last fetch
 * and has reached 80% of its period (refresh ahead, so readers never wait).
 * An entry nobody reads is not refreshed, so an idle gateway costs WAHA
 * nothing. Periods: sessions min(status_cache_duration,
 * session_cache_duration), health health_check_cache_duration, the session
 * list (upstream.sessions = *) session_cache_duration, hot whenever any
 * session was read since the list was fetched. Waiting readers are served
 * first. At most limits.max_concurrent_requests transfers run at once, at
 * most one per entry, and a failed entry waits FETCHER_FIRST_BACKOFF_MS,
 * doubling up to its period, before it is tried again. So the number of
 * calls WAHA sees depends on the configuration and the number of entries,
 * never on the number of clients, workers or connections.
 *
 * Transfers follow curl's multi-event.c: curl tells us which sockets to
 * watch (on_curl_socket) and when to call it back (on_curl_timer); libevent
 * calls curl_multi_socket_action(); finished transfers are collected in
 * collect_done(). Each transfer has a timeout (limits.request_timeout) and a
 * body bound (FETCHER_BODY_MAX); the connection pool of the multi handle
 * keeps connections to WAHA alive between refreshes.
 *
 * Results. An answer is validated by upstream.c before it may replace
 * cached data. A failure (network error, timeout, HTTP error, a body that is
 * not what WAHA sends) keeps the old data and records the error; readers
 * then get the old data flagged stale. WAHA's 404 for a tracked session is
 * an answer ("WAHA has no such session"), not a failure. Health uses
 * /health and switches to /ping for good when WAHA answers 422 (WAHA Core
 * has no /health). Entries are written under the region lock between
 * region_entry_begin_write() and region_entry_end_write(); only bytes are
 * copied while the lock is held.
 */
#include "fetcher.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "cache.h"
#include "log.h"
#include "timeutil.h"
#include "upstream.h"

enum job_kind { JOB_SESSION, JOB_HEALTH, JOB_LIST };

struct job {
    bool active;
    enum job_kind kind;
    int entry; /* region entry index */
    CURL *easy;
    char *body; /* FETCHER_BODY_MAX + 1 bytes */
    size_t len;
    bool too_large;
    char error[CURL_ERROR_SIZE];
};

/* The fetcher's own view of each entry. */
struct schedule {
    bool valid;   /* the snapshot below was taken */
    uint64_t seq; /* of the snapshot below */
    uint32_t kind;
    char name[REGION_NAME_MAX];
    bool has_data;
    int64_t fetched_mono_ms;
    bool in_flight;
    int failures;          /* in a row */
    int64_t not_before_ms; /* backoff after failures */
};

static struct {
    const struct config *cfg;
    struct region *region;
    struct region_proc *slot;
    struct event_base *base;
    struct event *tick;
    struct event *curl_timer;
    struct event *signals[3];
    CURLM *multi;
    struct curl_slist *headers;
    struct job *jobs; /* limits.max_concurrent_requests */
    int running;
    struct schedule sched[REGION_MAX_ENTRIES];
    bool health_uses_ping;
    bool warned_unauthorized;
    bool warned_too_many_sessions;
    struct session_record record; /* one answer being stored */
    struct session_record list[REGION_SESSION_MAX];
    char list_names[REGION_SESSION_MAX][REGION_NAME_MAX];
} f;

/*========================================================================
 * Storing results in the region.
 */

static int64_t period_of(int index)
{
    const struct config *cfg = f.cfg;

    if (index == REGION_ENTRY_HEALTH)
        return cfg->backend.health_check_cache_duration;
    if (index == REGION_ENTRY_LIST)
        return cfg->backend.session_cache_duration;
    return cfg->backend.status_cache_duration < cfg->backend.session_cache_duration
               ? cfg->backend.status_cache_duration
               : cfg->backend.session_cache_duration;
}

static void attempt_finished(int index, bool ok)
{
    struct schedule *s = &f.sched[index];
    int64_t now = time_mono_ms();

    atomic_store(&region_entry(f.region, index)->attempt_done_ms, now);
    if (ok) {
        s->failures = 0;
        s->not_before_ms = 0;
        return;
    }
    int64_t delay = FETCHER_FIRST_BACKOFF_MS;
    for (int i = 1; i < s->failures && delay < period_of(index); i++)
        delay *= 2;
    s->failures++;
    s->not_before_ms = now + (delay < period_of(index) ? delay : period_of(index));
}

/* Store a good session answer (REC), or WAHA's "no such session" (REC NULL). */
static void store_session(int index, const struct session_record *rec)
{
    struct region_entry *e = region_entry(f.region, index);
    struct entry_data *d = &e->d;
    bool changed;

    if (region_lock(f.region) != 0)
        return;
    if (d->kind != ENTRY_SESSION || strcmp(d->name, f.sched[index].name) != 0) {
        region_unlock(f.region); /* the entry was freed meanwhile */
        return;
    }
    region_entry_begin_write(f.region, e);
    changed = !d->has_data || !d->healthy || d->last_error[0] != '\0' ||
              d->exists != (rec != NULL) || d->source != SOURCE_POLL ||
              strcmp(d->status, rec ? rec->status : "UNKNOWN") != 0 ||
              strcmp(d->me_json, rec ? rec->me_json : "null") != 0;
    d->has_data = true;
    d->healthy = true;
    d->exists = rec != NULL;
    d->source = SOURCE_POLL;
    d->fetched_real_ms = time_real_ms();
    d->fetched_mono_ms = time_mono_ms();
    d->last_success_real_ms = d->fetched_real_ms;
    if (rec != NULL) {
        snprintf(d->status, sizeof(d->status), "%s", rec->status);
        snprintf(d->me_json, sizeof(d->me_json), "%s", rec->me_json);
        memcpy(d->body, rec->body, rec->body_len + 1);
        d->body_len = (uint32_t)rec->body_len;
        d->last_error[0] = '\0';
    } else {
        snprintf(d->status, sizeof(d->status), "UNKNOWN");
        snprintf(d->me_json, sizeof(d->me_json), "null");
        d->body[0] = '\0';
        d->body_len = 0;
        snprintf(d->last_error, sizeof(d->last_error), "WAHA has no session \"%s\"",
                 d->name);
    }
    region_entry_end_write(f.region, e, changed);
    region_unlock(f.region);
}

static void store_health(bool ping, const char *status, const char *body, size_t len)
{
    struct region_entry *e = region_entry(f.region, REGION_ENTRY_HEALTH);
    struct entry_data *d = &e->d;
    const char *endpoint = ping ? "/ping" : "/health";
    bool changed;

    if (len >= sizeof(d->body))
        len = 0; /* the verdict is what matters; a huge body is not kept */
    if (region_lock(f.region) != 0)
        return;
    region_entry_begin_write(f.region, e);
    changed = !d->has_data || !d->healthy || strcmp(d->status, status) != 0 ||
              strcmp(d->name, endpoint) != 0;
    d->has_data = true;
    d->healthy = true;
    d->exists = true;
    d->source = SOURCE_POLL;
    snprintf(d->name, sizeof(d->name), "%s", endpoint);
    snprintf(d->status, sizeof(d->status), "%s", status);
    d->fetched_real_ms = time_real_ms();
    d->fetched_mono_ms = time_mono_ms();
    d->last_success_real_ms = d->fetched_real_ms;
    d->last_error[0] = '\0';
    memcpy(d->body, body, len);
    d->body[len] = '\0';
    d->body_len = (uint32_t)len;
    region_entry_end_write(f.region, e, changed);
    region_unlock(f.region);
}

/* The list answered: make the session entries match it, seed new ones. */
static void store_list(int count)
{
    struct region_entry *list = region_entry(f.region, REGION_ENTRY_LIST);
    int missing;

    for (int i = 0; i < count; i++)
        snprintf(f.list_names[i], REGION_NAME_MAX, "%s", f.list[i].name);
    if (region_lock(f.region) != 0)
        return;
    missing = region_set_sessions(f.region, (const char(*)[REGION_NAME_MAX])f.list_names,
                                  count);
    region_entry_begin_write(f.region, list);
    list->d.kind = ENTRY_SESSION_LIST;
    list->d.has_data = true;
    list->d.healthy = true;
    list->d.exists = true;
    list->d.source = SOURCE_POLL;
    list->d.fetched_real_ms = time_real_ms();
    list->d.fetched_mono_ms = time_mono_ms();
    list->d.last_success_real_ms = list->d.fetched_real_ms;
    list->d.last_error[0] = '\0';
    snprintf(list->d.status, sizeof(list->d.status), "%d", count);
    region_entry_end_write(f.region, list, false);
    region_unlock(f.region);

    if (missing > 0 && !f.warned_too_many_sessions) {
        log_warn(0, "WAHA lists more than %d sessions; %d are not tracked",
                 REGION_SESSION_MAX, missing);
        f.warned_too_many_sessions = true;
    }
    /* A new entry starts with what the list said about its session. */
    for (int i = 0; i < count; i++) {
        int index;
        if (region_lock(f.region) != 0)
            return;
        index = region_find_session(f.region, f.list[i].name);
        bool empty = index >= 0 && !region_entry(f.region, index)->d.has_data;
        region_unlock(f.region);
        if (empty) {
            snprintf(f.sched[index].name, REGION_NAME_MAX, "%s", f.list[i].name);
            store_session(index, &f.list[i]);
        }
    }
}

/* Keep the old data; record why the refresh failed. */
static void store_failure(int index, const char *why)
{
    struct region_entry *e = region_entry(f.region, index);
    struct entry_data *d = &e->d;
    bool changed;

    if (region_lock(f.region) != 0)
        return;
    region_entry_begin_write(f.region, e);
    changed = d->healthy || strcmp(d->last_error, why) != 0;
    d->healthy = false;
    snprintf(d->last_error, sizeof(d->last_error), "%s", why);
    region_entry_end_write(f.region, e, changed);
    region_unlock(f.region);
}

/*========================================================================
 * Finished transfers.
 */

static const char *job_path_name(const struct job *j)
{
    switch (j->kind) {
    case JOB_HEALTH: return f.health_uses_ping ? "/ping" : "/health";
    case JOB_LIST: return "/api/sessions";
    default: return "/api/sessions/{name}";
    }
}

static void handle_result(struct job *j, CURLcode code)
{
    long http = 0;
    char why[UPSTREAM_WHY_MAX];
    int count;
    bool ok = false;

    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
    j->body[j->len] = '\0';
    region_count(f.slot, COUNTER_UPSTREAM_CALLS, 1);

    if (j->too_large) {
        snprintf(why, sizeof(why), "answer larger than %zu bytes", FETCHER_BODY_MAX);
    } else if (code != CURLE_OK) {
        snprintf(why, sizeof(why), "%.150s",
                 j->error[0] ? j->error : curl_easy_strerror(code));
    } else if (http == 401) {
        snprintf(why, sizeof(why), "WAHA refused upstream.api_key (HTTP 401)");
        if (!f.warned_unauthorized)
            log_error(0, "WAHA answers 401 Unauthorized: upstream.api_key (or "
                         "WAHA_API_KEY) is wrong or missing");
        f.warned_unauthorized = true;
    } else if (j->kind == JOB_SESSION) {
        if (http == 200 && upstream_parse_session(f.sched[j->entry].name, j->body, j->len,
                                                  &f.record, why) == 0) {
            store_session(j->entry, &f.record);
            ok = true;
        } else if (http == 404) {
            store_session(j->entry, NULL);
            ok = true;
        } else if (http != 200) {
            upstream_describe_http_error(http, j->body, j->len, why);
        }
    } else if (j->kind == JOB_HEALTH) {
        char status[16];
        int verdict;
        if (!f.health_uses_ping && http == 422) {
            log_info("WAHA has no /health (WAHA Core answers 422); checking "
                     "/ping instead");
            f.health_uses_ping = true;
            atomic_store(&region_entry(f.region, REGION_ENTRY_HEALTH)->wanted_ms,
                         time_mono_ms() + 1);
            return; /* not a failure: ask /ping on the next tick */
        }
        verdict = upstream_health_verdict(f.health_uses_ping, http, j->body, j->len,
                                          status, sizeof(status), why);
        if (verdict >= 0) {
            store_health(f.health_uses_ping, status, j->body, j->len);
            ok = true;
        }
    } else if (http != 200) {
        upstream_describe_http_error(http, j->body, j->len, why);
    } else if (upstream_parse_session_list(j->body, j->len, f.list, REGION_SESSION_MAX,
                                           &count, why) == 0) {
        store_list(count);
        ok = true;
    }

    if (ok) {
        if (f.sched[j->entry].failures > 0)
            log_info("GET %s works again", job_path_name(j));
        f.warned_unauthorized = false; /* report a later 401 again */
    } else {
        region_count(f.slot, COUNTER_UPSTREAM_ERRORS, 1);
        store_failure(j->entry, why);
        if (f.sched[j->entry].failures == 0)
            log_warn(0, "GET %s%s%s failed: %s", job_path_name(j),
                     j->kind == JOB_SESSION ? " for " : "",
                     j->kind == JOB_SESSION ? f.sched[j->entry].name : "", why);
    }
    attempt_finished(j->entry, ok);
}

static void collect_done(void)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(f.multi, &left)) != NULL) {
        struct job *j = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        handle_result(j, msg->data.result);
        curl_multi_remove_handle(f.multi, j->easy);
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
        j->active = false;
        f.sched[j->entry].in_flight = false;
        f.running--;
    }
}

/*========================================================================
 * curl on libevent (after curl's docs/examples/multi-event.c).
 */

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
    int action =
        (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int still;

    (void)arg;
    curl_multi_socket_action(f.multi, fd, action, &still);
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
            curl_multi_assign(f.multi, s, NULL);
        }
        return 0;
    }
    kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                   ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (ev != NULL)
        event_free(ev);
    ev = event_new(f.base, s, kind, on_socket_ready, NULL);
    if (ev == NULL || event_add(ev, NULL) != 0) {
        log_error(0, "cannot watch a socket to WAHA");
        if (ev)
            event_free(ev);
        curl_multi_assign(f.multi, s, NULL);
        return -1;
    }
    curl_multi_assign(f.multi, s, ev);
    return 0;
}

static void on_curl_timeout(evutil_socket_t fd, short what, void *arg)
{
    int still;

    (void)fd;
    (void)what;
    (void)arg;
    curl_multi_socket_action(f.multi, CURL_SOCKET_TIMEOUT, 0, &still);
    collect_done();
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct timeval tv = time_timeval(timeout_ms);

    (void)multi;
    (void)userp;
    if (timeout_ms < 0)
        evtimer_del(f.curl_timer);
    else
        evtimer_add(f.curl_timer, &tv);
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct job *j = userp;
    size_t n = size * nmemb;

    if (n > FETCHER_BODY_MAX - j->len) {
        j->too_large = true;
        return 0; /* aborts the transfer */
    }
    memcpy(j->body + j->len, data, n);
    j->len += n;
    return n;
}

/*========================================================================
 * Starting transfers.
 */

static int start_job(int index, enum job_kind kind)
{
    char url[sizeof(f.cfg->upstream.url) + 128];
    struct job *j = NULL;

    for (int i = 0; i < f.cfg->limits.max_concurrent_requests; i++) {
        if (!f.jobs[i].active) {
            j = &f.jobs[i];
            break;
        }
    }
    if (j == NULL)
        return -1;
    switch (kind) {
    case JOB_HEALTH:
        snprintf(url, sizeof(url), "%s%s", f.cfg->upstream.url,
                 f.health_uses_ping ? "/ping" : "/health");
        break;
    case JOB_LIST:
        snprintf(url, sizeof(url), "%s/api/sessions?all=true", f.cfg->upstream.url);
        break;
    case JOB_SESSION:
        snprintf(url, sizeof(url), "%s/api/sessions/%s", f.cfg->upstream.url,
                 f.sched[index].name);
        break;
    }
    j->easy = curl_easy_init();
    if (j->easy == NULL)
        return -1;
    j->kind = kind;
    j->entry = index;
    j->len = 0;
    j->too_large = false;
    j->error[0] = '\0';
    curl_easy_setopt(j->easy, CURLOPT_URL, url);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, f.headers);
    curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "wahagate/" WAHAGATE_VERSION);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->error);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)f.cfg->limits.request_timeout);
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(j->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    if (curl_multi_add_handle(f.multi, j->easy) != CURLM_OK) {
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
        return -1;
    }
    j->active = true;
    f.sched[index].in_flight = true;
    f.running++;
    return 0;
}

/* Copy what scheduling needs from entries that changed since last time. */
static void snapshot_entries(void)
{
    bool locked = false;

    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        struct region_entry *e = region_entry(f.region, i);
        struct schedule *s = &f.sched[i];
        uint64_t seq = atomic_load(&e->seq);

        if (s->valid && seq == s->seq)
            continue;
        if (!locked && region_lock(f.region) != 0)
            return;
        locked = true;
        if (s->kind != e->d.kind || strcmp(s->name, e->d.name) != 0) {
            s->failures = 0; /* a different entry now */
            s->not_before_ms = 0;
        }
        s->valid = true;
        s->seq = atomic_load(&e->seq);
        s->kind = e->d.kind;
        memcpy(s->name, e->d.name, sizeof(s->name));
        s->has_data = e->d.has_data;
        s->fetched_mono_ms = e->d.fetched_mono_ms;
    }
    if (locked)
        region_unlock(f.region);
}

static bool due(int index, int64_t now, int64_t last_read, bool *wanted)
{
    struct region_entry *e = region_entry(f.region, index);
    struct schedule *s = &f.sched[index];
    int64_t wanted_ms = atomic_load(&e->wanted_ms);
    int64_t done_ms = atomic_load(&e->attempt_done_ms);

    if (s->in_flight || now < s->not_before_ms)
        return false;
    *wanted = wanted_ms > done_ms;
    return cache_refresh_due(s->has_data, s->fetched_mono_ms, last_read, wanted_ms,
                             done_ms, period_of(index), now);
}

static void schedule_tick(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = time_mono_ms();
    int64_t any_read = 0;
    int candidates[REGION_MAX_ENTRIES];
    bool wanted[REGION_MAX_ENTRIES];
    int n = 0;

    (void)fd;
    (void)what;
    (void)arg;
    snapshot_entries();
    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        struct schedule *s = &f.sched[i];
        int64_t last_read = atomic_load(&region_entry(f.region, i)->last_read_ms);
        bool w = false;

        if (s->kind == ENTRY_SESSION && last_read > any_read)
            any_read = last_read;
        if (i == REGION_ENTRY_LIST ||
            (s->kind != ENTRY_SESSION && i != REGION_ENTRY_HEALTH))
            continue;
        if (due(i, now, last_read, &w)) {
            candidates[n] = i;
            wanted[n++] = w;
        }
    }
    if (f.cfg->upstream.all_sessions) {
        int64_t list_read =
            atomic_load(&region_entry(f.region, REGION_ENTRY_LIST)->last_read_ms);
        bool w = false;
        if (due(REGION_ENTRY_LIST, now, any_read > list_read ? any_read : list_read,
                &w)) {
            candidates[n] = REGION_ENTRY_LIST;
            wanted[n++] = w;
        }
    }
    /* Waiting readers first, then refresh-ahead. */
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < n && f.running < f.cfg->limits.max_concurrent_requests; k++) {
            int i = candidates[k];
            if (wanted[k] != (pass == 0) || f.sched[i].in_flight)
                continue;
            start_job(i, i == REGION_ENTRY_HEALTH ? JOB_HEALTH
                         : i == REGION_ENTRY_LIST ? JOB_LIST
                                                  : JOB_SESSION);
        }
    }
}

/*========================================================================
 * Start and stop.
 */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGUSR1) {
        if (log_open(f.cfg->log.file) != 0)
            log_error(errno, "cannot reopen log file \"%s\"", f.cfg->log.file);
        return;
    }
    event_base_loopbreak(f.base);
}

static int setup(const struct heritage *h)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    struct timeval tick = time_timeval(FETCHER_TICK_MS);
    char key_header[sizeof(h->cfg->upstream.api_key) + 16];

    f.cfg = h->cfg;
    f.region = h->region;
    f.slot = region_proc(h->region, h->slot);
    for (int i = 0; i < h->listen_count; i++)
        close(h->listen_fds[i]); /* the fetcher serves no one */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error(0, "curl_global_init() failed");
        return -1;
    }
    f.jobs = calloc((size_t)h->cfg->limits.max_concurrent_requests, sizeof(*f.jobs));
    f.base = event_base_new();
    f.multi = curl_multi_init();
    if (f.jobs == NULL || f.base == NULL || f.multi == NULL) {
        log_error(0, "cannot create the fetcher's event loop");
        return -1;
    }
    for (int i = 0; i < h->cfg->limits.max_concurrent_requests; i++) {
        f.jobs[i].body = malloc(FETCHER_BODY_MAX + 1);
        if (f.jobs[i].body == NULL)
            return -1;
    }
    if (h->cfg->upstream.api_key[0] != '\0') {
        snprintf(key_header, sizeof(key_header), "X-Api-Key: %s",
                 h->cfg->upstream.api_key);
        f.headers = curl_slist_append(f.headers, key_header);
    }
    f.headers = curl_slist_append(f.headers, "Accept: application/json");
    curl_multi_setopt(f.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(f.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(f.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)h->cfg->limits.max_concurrent_requests);
    f.curl_timer = evtimer_new(f.base, on_curl_timeout, NULL);
    f.tick = event_new(f.base, -1, EV_PERSIST, schedule_tick, NULL);
    if (f.headers == NULL || f.curl_timer == NULL || f.tick == NULL ||
        event_add(f.tick, &tick) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        f.signals[i] = evsignal_new(f.base, sigs[i], on_signal, NULL);
        if (f.signals[i] == NULL || evsignal_add(f.signals[i], NULL) != 0)
            return -1;
    }
    return 0;
}

static void teardown(void)
{
    if (f.jobs != NULL) {
        for (int i = 0; i < f.cfg->limits.max_concurrent_requests; i++) {
            if (f.jobs[i].easy != NULL) {
                curl_multi_remove_handle(f.multi, f.jobs[i].easy);
                curl_easy_cleanup(f.jobs[i].easy);
            }
            free(f.jobs[i].body);
        }
    }
    if (f.multi)
        curl_multi_cleanup(f.multi);
    curl_slist_free_all(f.headers);
    for (size_t i = 0; i < sizeof(f.signals) / sizeof(f.signals[0]); i++)
        if (f.signals[i])
            event_free(f.signals[i]);
    if (f.tick)
        event_free(f.tick);
    if (f.curl_timer)
        event_free(f.curl_timer);
    if (f.base)
        event_base_free(f.base);
    free(f.jobs);
    curl_global_cleanup();
}

noreturn void fetcher_main(const struct heritage *h)
{
    int code = PROC_EXIT_OK;

    if (proc_child_start(h, ROLE_FETCHER) != 0 || setup(h) != 0) {
        log_error(0, "the fetcher cannot start");
        teardown();
        exit(PROC_EXIT_FAILURE);
    }
    log_debug("fetching from %s", h->cfg->upstream.url);
    if (event_base_dispatch(f.base) < 0) {
        log_error(0, "event loop failed");
        code = PROC_EXIT_FAILURE;
    }
    atomic_store(&f.slot->pid, 0);
    teardown();
    exit(code);
}
