/*
 * fetcher.c - the one process that calls WAHA: libcurl's multi interface
 * on a libevent loop, refreshing region entries on demand.
 *
 * DESIGN
 * Scheduling. Every FETCHER_TICK_MS the fetcher looks at each target (an
 * entry of the region, or a session's QR slot) and decides what to call:
 *   1. retries that are due (a refresh is one call and its retries);
 *   2. targets a reader waits for (wanted_ms after the last attempt);
 *   3. refresh ahead: targets read since their last fetch that reached 80%
 *      of their period (cache_refresh_due()), so readers never wait.
 * A target nobody reads is never due: no calls to WAHA when no one looks.
 * Periods: a session min(status_cache_duration, session_cache_duration), or
 * webhook.safety_interval while webhooks keep it current; health
 * health_check_cache_duration; the session list (upstream.sessions = *)
 * session_cache_duration, hot whenever a session was read since the list
 * was fetched. A session's QR is fetched only while WAHA says SCAN_QR_CODE:
 * at once when a reader or a webhook asks, and again every
 * min(FETCHER_QR_PERIOD_MS, period) while the session is read.
 * At most limits.max_concurrent_requests transfers run at once, at most one
 * per target. So WAHA's load depends on the configuration and the number of
 * sessions, never on the number of clients, workers or connections.
 *
 * Sparing WAHA (backoff.c). A call that fails in a way a retry may mend
 * (network, timeout, 5xx, 429, a body that is not what WAHA sends) is
 * retried up to limits.max_retries times after a jittered delay, or after
 * WAHA's Retry-After. A refresh that still fails counts against the circuit
 * breaker; while it is open no call starts, except the one half-open probe.
 * A failed target also waits FETCHER_FIRST_BACKOFF_MS, doubling up to its
 * period, before its next refresh.
 *
 * Transfers follow curl's multi-event.c: curl says which sockets to watch
 * (on_curl_socket) and when to call it back (on_curl_timer); libevent calls
 * curl_multi_socket_action(); finished transfers are collected in
 * collect_done(). Each has a timeout (limits.request_timeout) and a body
 * bound (FETCHER_BODY_MAX). Answers are validated (common/waha.c) and written
 * by store.c; a failure keeps the old data and records why.
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

#include "backoff.h"
#include "cache.h"
#include "fleet.h"
#include "json.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "waha.h"

enum job_kind { JOB_SESSION, JOB_HEALTH, JOB_LIST, JOB_QR_VALUE, JOB_QR_IMAGE };

struct job {
    bool active;
    bool probe; /* the breaker's half-open probe */
    bool ping;  /* a health check that asked /ping */
    enum job_kind kind;
    int entry; /* region entry index */
    CURL *easy;
    char *body; /* FETCHER_BODY_MAX + 1 bytes */
    size_t len;
    bool too_large;
    char error[CURL_ERROR_SIZE];
};

/* The state of one refresh target: an entry, or a session's QR slot. */
struct refresh {
    bool in_flight;
    int attempt;           /* retries made in the current refresh */
    int64_t retry_at_ms;   /* a retry is pending; 0: none */
    int failures;          /* failed refreshes in a row */
    int64_t not_before_ms; /* backoff after failures */
};

/* What scheduling needs from an entry, copied when its seq moves. */
struct snapshot {
    bool valid;
    uint64_t seq;
    uint32_t kind;
    char name[REGION_NAME_MAX];
    bool has_data;
    int64_t fetched_mono_ms;
    char raw_status[REGION_STATUS_MAX];
    int64_t pending_since_mono_ms;
    int64_t webhook_mono_ms;
    uint64_t qr_seq;
    bool qr_valid;
    bool qr_has_value;
    bool qr_png_current;
    int64_t qr_fetched_mono_ms;
};

/* A target the tick wants to start; lower priority goes first. */
struct candidate {
    int entry;
    bool qr;
    int priority; /* 0 retry, 1 a reader waits, 2 refresh ahead */
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
    struct curl_slist *json_headers;
    struct curl_slist *png_headers;
    struct job *jobs; /* limits.max_concurrent_requests */
    int running;
    struct breaker breaker;
    struct refresh entry_refresh[REGION_MAX_ENTRIES];
    struct refresh qr_refresh[REGION_MAX_ENTRIES];
    struct snapshot snap[REGION_MAX_ENTRIES];
    bool health_uses_ping;
    bool warned_unauthorized;
    bool warned_too_many_sessions;
    struct session_record record; /* one answer being stored */
    struct session_record list[REGION_SESSION_MAX];
} f;

static const unsigned char png_signature[8] = {0x89, 'P',  'N',  'G',
                                               '\r', '\n', 0x1a, '\n'};

static bool is_qr(enum job_kind kind)
{
    return kind == JOB_QR_VALUE || kind == JOB_QR_IMAGE;
}

static struct refresh *refresh_of(int entry, bool qr)
{
    return qr ? &f.qr_refresh[entry] : &f.entry_refresh[entry];
}

static int64_t period_of(int index)
{
    const struct config *cfg = f.cfg;
    const struct snapshot *s = &f.snap[index];

    if (index == REGION_ENTRY_HEALTH)
        return cfg->backend.health_check_cache_duration;
    if (index == REGION_ENTRY_LIST)
        return cfg->backend.session_cache_duration;
    if (s->webhook_mono_ms != 0 &&
        time_mono_ms() - s->webhook_mono_ms < cfg->webhook.safety_interval)
        return cfg->webhook.safety_interval;
    return cfg->backend.status_cache_duration < cfg->backend.session_cache_duration
               ? cfg->backend.status_cache_duration
               : cfg->backend.session_cache_duration;
}

/*========================================================================
 * Ending a refresh.
 */

static void mark_attempt_done(int entry, bool qr)
{
    if (qr)
        atomic_store(&region_qr(f.region, entry)->attempt_done_ms, time_mono_ms());
    else
        atomic_store(&region_entry(f.region, entry)->attempt_done_ms, time_mono_ms());
}

static const char *target_name(const struct job *j, char *out, size_t size)
{
    const char *name = f.snap[j->entry].name;

    switch (j->kind) {
    case JOB_HEALTH: snprintf(out, size, "GET %s", j->ping ? "/ping" : "/health"); break;
    case JOB_LIST: snprintf(out, size, "GET /api/sessions"); break;
    case JOB_SESSION: snprintf(out, size, "GET /api/sessions/%s", name); break;
    default: snprintf(out, size, "GET /api/%s/auth/qr", name); break;
    }
    return out;
}

/*
 * The refresh of J's target is over: OK, or failed with WHY (then the old
 * data stays and says why). WAHA_FAULT tells the breaker it was WAHA's
 * failure (not, say, a wrong api key). NOT_BEFORE_MS, when not 0, is when
 * WAHA asked us to come back (Retry-After).
 */
static void finish_refresh(const struct job *j, bool ok, bool waha_fault, const char *why,
                           int64_t not_before_ms)
{
    struct refresh *r = refresh_of(j->entry, is_qr(j->kind));
    int64_t now = time_mono_ms();
    char what[96];

    r->attempt = 0;
    r->retry_at_ms = 0;
    if (ok) {
        if (r->failures > 0)
            log_info("%s works again", target_name(j, what, sizeof(what)));
        r->failures = 0;
        r->not_before_ms = 0;
        f.warned_unauthorized = false; /* report a later 401 again */
    } else {
        int64_t delay = FETCHER_FIRST_BACKOFF_MS;
        for (int i = 0; i < r->failures && delay < period_of(j->entry); i++)
            delay *= 2;
        if (delay > period_of(j->entry))
            delay = period_of(j->entry);
        if (r->failures == 0)
            log_warn(0, "%s failed: %s", target_name(j, what, sizeof(what)), why);
        r->failures++;
        r->not_before_ms = now + delay > not_before_ms ? now + delay : not_before_ms;
        if (!is_qr(j->kind))
            store_failure(f.region, j->entry, why);
    }
    if (ok || waha_fault)
        breaker_record(&f.breaker, ok, now);
    mark_attempt_done(j->entry, is_qr(j->kind));
}

/* Retry J's target later if that may help; true when a retry is scheduled. */
static bool schedule_retry(const struct job *j, long http, int64_t retry_after_ms)
{
    struct refresh *r = refresh_of(j->entry, is_qr(j->kind));
    int64_t delay;

    if (j->probe || r->attempt >= f.cfg->limits.max_retries ||
        f.breaker.state != CIRCUIT_CLOSED)
        return false;
    delay = backoff_retry_delay_ms(
        r->attempt, http == 429 || http == 503 ? retry_after_ms : 0, random());
    if (delay > BACKOFF_RETRY_AFTER_MAX_MS)
        return false;
    r->attempt++;
    r->retry_at_ms = time_mono_ms() + delay;
    region_count(f.slot, COUNTER_UPSTREAM_RETRIES, 1);
    return true;
}

/*========================================================================
 * Finished transfers.
 */

enum outcome {
    OUTCOME_OK,        /* a valid answer, stored */
    OUTCOME_RETRYABLE, /* WAHA failed (network, 5xx, 429, garbage) */
    OUTCOME_FINAL,     /* a failure a retry will not mend (401, 4xx) */
    OUTCOME_NONE,      /* nothing to record (health switched to /ping) */
    OUTCOME_CHAINED    /* a new QR value: its image is fetched next */
};

/* An HTTP error a retry may mend (WAHA overloaded or failing), or not. */
static enum outcome http_error_outcome(long http)
{
    return http == 429 || http >= 500 ? OUTCOME_RETRYABLE : OUTCOME_FINAL;
}

static enum outcome session_outcome(struct job *j, long http, char *why)
{
    if (http == 200 &&
        waha_parse_session(f.snap[j->entry].name, j->body, j->len, &f.record, why) == 0) {
        store_session(f.region, f.cfg, j->entry, f.snap[j->entry].name, &f.record);
        return OUTCOME_OK;
    }
    if (http == 200)
        return OUTCOME_RETRYABLE;
    if (http == 404) {
        store_session(f.region, f.cfg, j->entry, f.snap[j->entry].name, NULL);
        return OUTCOME_OK;
    }
    waha_describe_error(http, j->body, j->len, why);
    return http_error_outcome(http);
}

static enum outcome health_outcome(struct job *j, long http, char *why)
{
    char status[16];

    if (!j->ping && http == 422) {
        log_info("WAHA has no /health (WAHA Core answers 422); checking /ping instead");
        f.health_uses_ping = true;
        atomic_store(&region_entry(f.region, REGION_ENTRY_HEALTH)->wanted_ms,
                     time_mono_ms() + 1);
        return OUTCOME_NONE;
    }
    if (waha_health_verdict(j->ping, http, j->body, j->len, status, sizeof(status),
                            why) >= 0) {
        store_health(f.region, j->ping, status, j->body, j->len);
        return OUTCOME_OK;
    }
    return http == 200 ? OUTCOME_RETRYABLE : http_error_outcome(http);
}

static enum outcome list_outcome(struct job *j, long http, char *why)
{
    int count, missing;

    if (http != 200) {
        waha_describe_error(http, j->body, j->len, why);
        return http_error_outcome(http);
    }
    if (waha_parse_session_list(j->body, j->len, f.list, REGION_SESSION_MAX, &count,
                                why) != 0)
        return OUTCOME_RETRYABLE;
    missing = store_session_list(f.region, f.cfg, f.list, count);
    if (missing > 0 && !f.warned_too_many_sessions) {
        log_warn(0, "WAHA lists more than %d sessions; %d are not tracked",
                 REGION_SESSION_MAX, missing);
        f.warned_too_many_sessions = true;
    }
    return OUTCOME_OK;
}

static enum outcome qr_outcome(struct job *j, long http, char *why)
{
    if (http == 422 || http == 404) {
        /* WAHA no longer waits for a scan: the session's status moved on. */
        store_qr_gone(f.region, j->entry);
        atomic_store(&region_entry(f.region, j->entry)->wanted_ms, time_mono_ms() + 1);
        return OUTCOME_OK;
    }
    if (http != 200) {
        waha_describe_error(http, j->body, j->len, why);
        return http_error_outcome(http);
    }
    if (j->kind == JOB_QR_IMAGE) {
        if (j->len < sizeof(png_signature) || j->len > REGION_QR_PNG_MAX ||
            memcmp(j->body, png_signature, sizeof(png_signature)) != 0) {
            snprintf(why, WAHA_WHY_MAX, "QR image is not a PNG of at most %d bytes",
                     REGION_QR_PNG_MAX);
            return OUTCOME_RETRYABLE;
        }
        store_qr_png(f.region, j->entry, (const unsigned char *)j->body, j->len);
        return OUTCOME_OK;
    }
    struct json_object *obj = json_parse_bounded(j->body, j->len, why, WAHA_WHY_MAX);
    const char *value = obj ? json_get_string(obj, "value") : NULL;
    enum outcome result = OUTCOME_RETRYABLE;

    if (value != NULL && value[0] != '\0' && strlen(value) < REGION_QR_VALUE_MAX) {
        result = store_qr_value(f.region, j->entry, value) ? OUTCOME_CHAINED : OUTCOME_OK;
    } else if (obj != NULL) {
        snprintf(why, WAHA_WHY_MAX, "QR answer has no valid \"value\"");
    }
    json_object_put(obj);
    return result;
}

/* Count the call J made: what it asked, how it ended, how long it took. */
static void count_call(const struct job *j, CURLcode code, long http,
                       enum outcome outcome)
{
    static const enum upstream_endpoint endpoints[] = {
        [JOB_SESSION] = UPSTREAM_SESSION, [JOB_HEALTH] = UPSTREAM_HEALTH,
        [JOB_LIST] = UPSTREAM_SESSIONS,   [JOB_QR_VALUE] = UPSTREAM_QR,
        [JOB_QR_IMAGE] = UPSTREAM_QR,
    };
    enum upstream_endpoint endpoint = endpoints[j->kind];
    enum upstream_result result;
    curl_off_t total_us = 0;

    if (j->ping)
        endpoint = UPSTREAM_PING;
    if (outcome == OUTCOME_OK || outcome == OUTCOME_CHAINED || outcome == OUTCOME_NONE)
        result = RESULT_OK;
    else if (j->too_large)
        result = RESULT_INVALID;
    else if (code == CURLE_OPERATION_TIMEDOUT)
        result = RESULT_TIMEOUT;
    else if (code != CURLE_OK)
        result = RESULT_NETWORK;
    else
        result = http >= 200 && http < 300 ? RESULT_INVALID : RESULT_HTTP_ERROR;
    curl_easy_getinfo(j->easy, CURLINFO_TOTAL_TIME_T, &total_us);
    region_count_upstream(f.region, f.slot, endpoint, result, (int64_t)total_us / 1000);
}

static void handle_result(struct job *j, CURLcode code)
{
    char why[WAHA_WHY_MAX] = "";
    curl_off_t retry_after = 0;
    enum outcome outcome;
    long http = 0;

    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &retry_after);
    j->body[j->len] = '\0';

    if (j->too_large) {
        snprintf(why, sizeof(why), "answer larger than %zu bytes", FETCHER_BODY_MAX);
        outcome = OUTCOME_RETRYABLE;
    } else if (code != CURLE_OK) {
        snprintf(why, sizeof(why), "%.150s",
                 j->error[0] ? j->error : curl_easy_strerror(code));
        outcome = OUTCOME_RETRYABLE;
    } else if (http == 401) {
        snprintf(why, sizeof(why), "WAHA refused upstream.api_key (HTTP 401)");
        if (!f.warned_unauthorized)
            log_error(0, "WAHA answers 401 Unauthorized: upstream.api_key (or "
                         "WAHA_API_KEY) is wrong or missing");
        f.warned_unauthorized = true;
        outcome = OUTCOME_FINAL;
    } else {
        switch (j->kind) {
        case JOB_SESSION: outcome = session_outcome(j, http, why); break;
        case JOB_HEALTH: outcome = health_outcome(j, http, why); break;
        case JOB_LIST: outcome = list_outcome(j, http, why); break;
        default: outcome = qr_outcome(j, http, why); break;
        }
    }

    count_call(j, code, http, outcome);
    if (outcome == OUTCOME_NONE) {
        if (j->probe)
            f.breaker.probe_out = false;
        return;
    }
    if (outcome == OUTCOME_CHAINED) {
        /* The refresh goes on with the image (qr_due() sees it missing). */
        breaker_record(&f.breaker, true, time_mono_ms());
        return;
    }
    if (outcome == OUTCOME_RETRYABLE &&
        schedule_retry(j, http, (int64_t)retry_after * 1000))
        return;
    finish_refresh(j, outcome == OUTCOME_OK, outcome == OUTCOME_RETRYABLE, why,
                   (http == 429 || http == 503) && retry_after > 0
                       ? time_mono_ms() + (int64_t)retry_after * 1000
                       : 0);
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
        refresh_of(j->entry, is_qr(j->kind))->in_flight = false;
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

static int start_job(int index, enum job_kind kind, bool probe)
{
    char url[sizeof(f.cfg->upstream.url) + 128];
    const char *name = f.snap[index].name;
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
        snprintf(url, sizeof(url), "%s/api/sessions/%s", f.cfg->upstream.url, name);
        break;
    case JOB_QR_VALUE:
        snprintf(url, sizeof(url), "%s/api/%s/auth/qr?format=raw", f.cfg->upstream.url,
                 name);
        break;
    case JOB_QR_IMAGE:
        snprintf(url, sizeof(url), "%s/api/%s/auth/qr?format=image", f.cfg->upstream.url,
                 name);
        break;
    }
    j->easy = curl_easy_init();
    if (j->easy == NULL)
        return -1;
    j->kind = kind;
    j->entry = index;
    j->probe = probe;
    j->ping = kind == JOB_HEALTH && f.health_uses_ping;
    j->len = 0;
    j->too_large = false;
    j->error[0] = '\0';
    curl_easy_setopt(j->easy, CURLOPT_URL, url);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER,
                     kind == JOB_QR_IMAGE ? f.png_headers : f.json_headers);
    curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "wahagate/" WAHAGATE_VERSION);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->error);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)f.cfg->limits.request_timeout);
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A fresh connection per call: on a kept-alive connection that WAHA
     * (Node's 5 s keep-alive timeout) closes just then, libcurl silently
     * sends the request again, and WAHA would see more calls than we make. */
    curl_easy_setopt(j->easy, CURLOPT_FORBID_REUSE, 1L);
    if (curl_multi_add_handle(f.multi, j->easy) != CURLM_OK) {
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
        return -1;
    }
    j->active = true;
    refresh_of(index, is_qr(kind))->in_flight = true;
    f.running++;
    return 0;
}

/* Copy what scheduling needs from entries that changed since last time. */
static void snapshot_entries(void)
{
    bool locked = false;

    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        struct region_entry *e = region_entry(f.region, i);
        struct snapshot *s = &f.snap[i];
        struct region_qr *q =
            i >= REGION_ENTRY_FIRST_SESSION ? region_qr(f.region, i) : NULL;
        uint64_t seq = atomic_load(&e->seq);
        uint64_t qr_seq = q ? atomic_load(&q->seq) : 0;

        if (s->valid && seq == s->seq &&
            (q == NULL || (s->qr_valid && qr_seq == s->qr_seq)))
            continue;
        if (!locked && region_lock(f.region) != 0)
            return;
        locked = true;
        if (s->kind != e->d.kind || strcmp(s->name, e->d.name) != 0) {
            /* Another session (or none) now: its refresh state starts over. */
            memset(&f.entry_refresh[i], 0, sizeof(f.entry_refresh[i]));
            memset(&f.qr_refresh[i], 0, sizeof(f.qr_refresh[i]));
        }
        s->valid = true;
        s->seq = atomic_load(&e->seq);
        s->kind = e->d.kind;
        memcpy(s->name, e->d.name, sizeof(s->name));
        s->has_data = e->d.has_data;
        s->fetched_mono_ms = e->d.fetched_mono_ms;
        memcpy(s->raw_status, e->d.raw_status, sizeof(s->raw_status));
        s->pending_since_mono_ms = e->d.pending_since_mono_ms;
        s->webhook_mono_ms = e->d.webhook_mono_ms;
        if (q != NULL) {
            s->qr_valid = true;
            s->qr_seq = atomic_load(&q->seq);
            s->qr_has_value = q->d.value[0] != '\0';
            s->qr_png_current = q->d.png_current;
            s->qr_fetched_mono_ms = q->d.fetched_mono_ms;
        }
    }
    if (locked)
        region_unlock(f.region);
}

static bool entry_due(int index, int64_t now, int64_t last_read, int *priority)
{
    struct region_entry *e = region_entry(f.region, index);
    const struct snapshot *s = &f.snap[index];
    int64_t wanted_ms = atomic_load(&e->wanted_ms);
    int64_t done_ms = atomic_load(&e->attempt_done_ms);

    *priority = wanted_ms > done_ms ? 1 : 2;
    return cache_refresh_due(s->has_data, s->fetched_mono_ms, last_read, wanted_ms,
                             done_ms, period_of(index), now);
}

/* Is the QR of session entry INDEX due? Only while WAHA says SCAN_QR_CODE. */
static bool qr_due(int index, int64_t now, int *priority)
{
    const struct snapshot *s = &f.snap[index];
    struct region_qr *q = region_qr(f.region, index);
    int64_t read = atomic_load(&region_entry(f.region, index)->last_read_ms);
    int64_t qr_read = atomic_load(&q->last_read_ms);
    int64_t period = period_of(index);
    int64_t qr_period = period < FETCHER_QR_PERIOD_MS ? period : FETCHER_QR_PERIOD_MS;

    if (s->kind != ENTRY_SESSION || strcmp(s->raw_status, "SCAN_QR_CODE") != 0)
        return false;
    *priority = 1;
    if (atomic_load(&q->wanted_ms) > atomic_load(&q->attempt_done_ms))
        return true;
    if (s->qr_has_value && !s->qr_png_current)
        return true; /* a new code whose image is still to come */
    *priority = 2;
    if ((qr_read > read ? qr_read : read) < now - period)
        return false; /* nobody looks at this session */
    return !s->qr_has_value || now - s->qr_fetched_mono_ms >= qr_period;
}

/* Release held status changes whose flap_hold is over. */
static void release_held_statuses(int64_t now)
{
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        const struct snapshot *s = &f.snap[i];
        if (s->kind == ENTRY_SESSION && s->pending_since_mono_ms != 0 &&
            now - s->pending_since_mono_ms >= f.cfg->backend.flap_hold)
            store_release_held(f.region, f.cfg, i);
    }
}

static int compare_candidates(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;

    return x->priority - y->priority;
}

static enum job_kind job_kind_of(const struct candidate *c)
{
    const struct snapshot *s = &f.snap[c->entry];

    if (c->qr)
        return s->qr_has_value && !s->qr_png_current ? JOB_QR_IMAGE : JOB_QR_VALUE;
    if (c->entry == REGION_ENTRY_HEALTH)
        return JOB_HEALTH;
    return c->entry == REGION_ENTRY_LIST ? JOB_LIST : JOB_SESSION;
}

static void consider(struct candidate *list, int *n, int entry, bool qr, int64_t now,
                     int64_t last_read)
{
    struct refresh *r = refresh_of(entry, qr);
    int priority = 2;
    bool due;

    if (r->in_flight)
        return;
    if (r->retry_at_ms != 0) {
        due = now >= r->retry_at_ms;
        priority = 0;
    } else if (now < r->not_before_ms) {
        return;
    } else {
        due = qr ? qr_due(entry, now, &priority)
                 : entry_due(entry, now, last_read, &priority);
    }
    if (due)
        list[(*n)++] = (struct candidate){.entry = entry, .qr = qr, .priority = priority};
}

static void schedule_tick(evutil_socket_t fd, short what, void *arg)
{
    struct candidate list[2 * REGION_MAX_ENTRIES];
    int64_t now = time_mono_ms();
    int64_t any_read = 0;
    int n = 0;

    (void)fd;
    (void)what;
    (void)arg;
    snapshot_entries();
    release_held_statuses(now);
    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        int64_t last_read = atomic_load(&region_entry(f.region, i)->last_read_ms);
        if (f.snap[i].kind == ENTRY_SESSION) {
            any_read = last_read > any_read ? last_read : any_read;
            consider(list, &n, i, false, now, last_read);
            consider(list, &n, i, true, now, last_read);
        } else if (i == REGION_ENTRY_HEALTH) {
            consider(list, &n, i, false, now, last_read);
        }
    }
    if (f.cfg->upstream.all_sessions) {
        int64_t list_read =
            atomic_load(&region_entry(f.region, REGION_ENTRY_LIST)->last_read_ms);
        consider(list, &n, REGION_ENTRY_LIST, false, now,
                 any_read > list_read ? any_read : list_read);
    }
    qsort(list, (size_t)n, sizeof(list[0]), compare_candidates);
    fleet_tick(now);
    if (!fleet_may_fetch()) {
        /* Another gateway calls WAHA: ask it for what our readers need. */
        for (int k = 0; k < n; k++)
            fleet_forward(list[k].entry, list[k].qr, list[k].priority <= 1, now);
        return;
    }

    for (int k = 0; k < n && f.running < f.cfg->limits.max_concurrent_requests; k++) {
        struct refresh *r = refresh_of(list[k].entry, list[k].qr);
        enum breaker_verdict verdict = breaker_ask(&f.breaker, now);

        if (verdict == BREAKER_DENY) {
            /* No calls now. A retry that cannot happen ends its refresh. */
            if (r->retry_at_ms != 0) {
                struct job stand_in = {.kind = job_kind_of(&list[k]),
                                       .entry = list[k].entry};
                finish_refresh(&stand_in, false, false,
                               "circuit open: WAHA is not called", 0);
            }
            continue;
        }
        r->retry_at_ms = 0;
        if (start_job(list[k].entry, job_kind_of(&list[k]), verdict == BREAKER_PROBE) !=
                0 &&
            verdict == BREAKER_PROBE)
            f.breaker.probe_out = false;
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

static struct curl_slist *headers(const char *api_key, const char *accept)
{
    char key_header[sizeof(f.cfg->upstream.api_key) + 16];
    struct curl_slist *list = NULL, *next;

    if (api_key[0] != '\0') {
        snprintf(key_header, sizeof(key_header), "X-Api-Key: %s", api_key);
        list = curl_slist_append(list, key_header);
        if (list == NULL)
            return NULL;
    }
    next = curl_slist_append(list, accept);
    if (next == NULL)
        curl_slist_free_all(list);
    return next;
}

static int setup(const struct heritage *h)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    struct timeval tick = time_timeval(FETCHER_TICK_MS);

    f.cfg = h->cfg;
    f.region = h->region;
    f.slot = region_proc(h->region, h->slot);
    listeners_close(&h->listeners, NULL); /* the fetcher serves no one */
    srandom((unsigned)(getpid() ^ time_real_ms()));
    breaker_init(&f.breaker, h->cfg, region_header(h->region));
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
    f.json_headers = headers(h->cfg->upstream.api_key, "Accept: application/json");
    f.png_headers = headers(h->cfg->upstream.api_key, "Accept: image/png");
    curl_multi_setopt(f.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(f.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(f.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)h->cfg->limits.max_concurrent_requests);
    f.curl_timer = evtimer_new(f.base, on_curl_timeout, NULL);
    f.tick = event_new(f.base, -1, EV_PERSIST, schedule_tick, NULL);
    if (f.json_headers == NULL || f.png_headers == NULL || f.curl_timer == NULL ||
        f.tick == NULL || event_add(f.tick, &tick) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        f.signals[i] = evsignal_new(f.base, sigs[i], on_signal, NULL);
        if (f.signals[i] == NULL || evsignal_add(f.signals[i], NULL) != 0)
            return -1;
    }
    return fleet_start(f.base, h->cfg, h->region);
}

static void teardown(void)
{
    fleet_stop();
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
    curl_slist_free_all(f.json_headers);
    curl_slist_free_all(f.png_headers);
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
