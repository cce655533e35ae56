/*
 * fetcher.c - the one process that calls WAHA: libcurl's multi interface
 * on a libevent loop, refreshing region entries on demand.
 *
 * DESIGN
 * Scheduling. Every FETCHER_TICK_MS the fetcher looks at what readers
 * asked for (the demand times workers record in the region) and decides
 * what to call (schedule.c has the rules):
 *   - the session list, one GET /api/sessions?all=true, when any session's
 *     data is due: a reader waits for it, or it is read and has reached
 *     80% of its period (refresh ahead, so readers never wait). One call
 *     refreshes the status, me and object of every session, so WAHA's load
 *     does not grow with the number of sessions;
 *   - a session's details (its engine: GET /api/sessions/{name}) only when
 *     its whole object is read, at most once per session_cache_duration;
 *   - a session's QR code only while WAHA says SCAN_QR_CODE and the
 *     session is read;
 *   - WAHA's health, on its own period;
 *   - WAHA's /api/server/version and /api/server/status (served by the
 *     compat paths), on the health's period, only while they are read.
 * Due retries go first, then what readers wait for, then refresh-ahead. A
 * target nobody reads is never due: no calls to WAHA when no one looks.
 * Periods: a session min(status_cache_duration, session_cache_duration),
 * or webhook.safety_interval while pushed events keep it current; health
 * health_check_cache_duration. At most limits.max_concurrent_requests
 * calls run at once, at most one per target. So WAHA's load depends on the
 * configuration, never on the number of clients, workers, connections or
 * sessions.
 *
 * Sparing WAHA (backoff.c). A call that fails in a way a retry may mend
 * (network, timeout, 5xx, 429, a body that is not what WAHA sends) is
 * retried up to limits.max_retries times after a jittered delay, or after
 * WAHA's Retry-After. A refresh that still fails counts against the circuit
 * breaker; while it is open no call starts, except the one half-open probe.
 * A failed target also waits FETCHER_FIRST_BACKOFF_MS, doubling up to its
 * period, before its next refresh.
 *
 * Calls. A job is one call: its URL and headers are set here, transfers.c
 * runs it (curl's multi interface on libevent) and hands back the end
 * (on_transfer_done()). Each has a time limit (limits.request_timeout, or
 * limits.qr_timeout for QR codes: WAHA's QR endpoint waits up to 15 s) and
 * a body bound. answers.c stores what the answers mean; a failure keeps the
 * old data and records why.
 *
 * Pushes. pushed.c holds WAHA's WebSocket (upstream.events) while this
 * gateway calls WAHA, and fleet.c shares the work with other gateways
 * through Redis; both are driven from the tick.
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

#include "answers.h"
#include "backoff.h"
#include "fleet.h"
#include "log.h"
#include "pushed.h"
#include "schedule.h"
#include "store.h"
#include "timeutil.h"
#include "transfers.h"
#include "waha.h"

enum job_kind { JOB_HEALTH, JOB_LIST, JOB_DETAILS, JOB_QR_VALUE, JOB_QR_IMAGE, JOB_SERVER };

static const enum target_kind job_target[] = {
    [JOB_HEALTH] = TARGET_HEALTH,   [JOB_LIST] = TARGET_LIST,
    [JOB_DETAILS] = TARGET_DETAILS, [JOB_QR_VALUE] = TARGET_QR,
    [JOB_QR_IMAGE] = TARGET_QR, [JOB_SERVER] = TARGET_SERVER,
};

struct job {
    bool active;
    bool probe; /* the breaker's half-open probe */
    bool ping;  /* a health check that asked /ping */
    enum job_kind kind;
    int entry; /* region entry index */
    CURL *easy;
    struct transfer_body body;
    char error[CURL_ERROR_SIZE];
};

/* What scheduling needs from an entry, copied when its seq moves. */
struct snapshot {
    bool valid;
    uint64_t seq;
    uint32_t kind;
    char name[REGION_NAME_MAX];
    bool has_data, exists, has_details;
    int64_t fetched_mono_ms, details_mono_ms;
    char raw_status[REGION_STATUS_MAX];
    int64_t pending_since_mono_ms;
    int64_t pushed_mono_ms;
    int32_t qr_slot; /* + 1; 0: none */
    uint64_t qr_seq;
    struct qr_view qr;
};

/* A target the tick wants to start. */
struct candidate {
    enum target_kind target;
    int entry;
    enum due due;
};

static struct {
    const struct config *cfg;
    struct region *region;
    struct region_proc *slot;
    struct event_base *base;
    struct event *tick;
    struct event *signals[3];
    struct curl_slist *json_headers;
    struct curl_slist *png_headers;
    struct job *jobs; /* limits.max_concurrent_requests */
    int running;
    struct breaker breaker;
    int entries; /* region_entry_count() */
    struct refresh health, list;
    struct refresh server[2]; /* REGION_ENTRY_VERSION, REGION_ENTRY_SERVER */
    struct refresh *details, *qr; /* per entry */
    struct snapshot *snap;        /* per entry */
    struct candidate *candidates; /* 2 + 2 per entry */
    struct answers answers;
    int64_t ping_until_ms; /* health asks /ping until then (0: /health) */
    bool warned_unauthorized;
} f;

static struct refresh *refresh_of(enum target_kind target, int entry)
{
    switch (target) {
    case TARGET_HEALTH: return &f.health;
    case TARGET_LIST: return &f.list;
    case TARGET_DETAILS: return &f.details[entry];
    case TARGET_SERVER: return &f.server[entry == REGION_ENTRY_SERVER];
    case TARGET_QR:
    default: return &f.qr[entry];
    }
}

/* The period of session entry INDEX's data (schedule.h). */
static int64_t session_period(int index, int64_t now)
{
    const struct snapshot *s = &f.snap[index];

    return schedule_session_period(f.cfg, s->pushed_mono_ms, s->fetched_mono_ms,
                                   atomic_load(&region_header(f.region)->events_since_ms),
                                   now);
}

static int64_t period_of(enum target_kind target, int entry, int64_t now)
{
    switch (target) {
    case TARGET_HEALTH:
    case TARGET_SERVER: return f.cfg->backend.health_check_cache_duration;
    case TARGET_LIST:
    case TARGET_DETAILS: return f.cfg->backend.session_cache_duration;
    case TARGET_QR:
    default: return session_period(entry, now);
    }
}

/*========================================================================
 * Ending a refresh.
 */

static void attempt_done(int entry, enum demand_kind kind, int64_t now)
{
    atomic_store(&region_demand(f.region, entry, kind)->attempt_done_ms, now);
}

/* Waiting readers of J's target look at the region now. */
static void mark_attempt_done(const struct job *j)
{
    int64_t now = time_mono_ms();

    switch (job_target[j->kind]) {
    case TARGET_HEALTH: attempt_done(REGION_ENTRY_HEALTH, DEMAND_DATA, now); break;
    case TARGET_LIST:
        /* One list answers for every session. */
        attempt_done(REGION_ENTRY_LIST, DEMAND_DATA, now);
        for (int i = REGION_ENTRY_FIRST_SESSION; i < f.entries; i++)
            attempt_done(i, DEMAND_DATA, now);
        break;
    case TARGET_SERVER: attempt_done(j->entry, DEMAND_DATA, now); break;
    case TARGET_DETAILS:
        attempt_done(j->entry, DEMAND_DETAILS, now);
        attempt_done(j->entry, DEMAND_DATA, now);
        break;
    default: attempt_done(j->entry, DEMAND_QR, now); break;
    }
}

static const char *target_name(const struct job *j, char *out, size_t size)
{
    const char *name = f.snap[j->entry].name;

    switch (j->kind) {
    case JOB_HEALTH: snprintf(out, size, "GET %s", j->ping ? "/ping" : "/health"); break;
    case JOB_LIST: snprintf(out, size, "GET /api/sessions"); break;
    case JOB_DETAILS: snprintf(out, size, "GET /api/sessions/%.64s", name); break;
    case JOB_SERVER: snprintf(out, size, "GET %.64s", name); break;
    default: snprintf(out, size, "GET /api/%.64s/auth/qr", name); break;
    }
    return out;
}

/* A failed refresh keeps the data and records WHY where readers see it
 * (a failed QR call keeps the code it would have replaced). */
static void record_failure(const struct job *j, const char *why)
{
    if (j->kind == JOB_HEALTH) {
        store_failure(f.region, REGION_ENTRY_HEALTH, why);
    } else if (j->kind == JOB_DETAILS || j->kind == JOB_SERVER) {
        store_failure(f.region, j->entry, why);
    } else if (j->kind == JOB_LIST) {
        store_failure(f.region, REGION_ENTRY_LIST, why);
        for (int i = REGION_ENTRY_FIRST_SESSION; i < f.entries; i++)
            if (f.snap[i].kind == ENTRY_SESSION)
                store_failure(f.region, i, why);
    }
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
    struct refresh *r = refresh_of(job_target[j->kind], j->entry);
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
        int64_t delay =
            schedule_backoff_ms(r->failures + 1, FETCHER_FIRST_BACKOFF_MS,
                                period_of(job_target[j->kind], j->entry, now));
        if (r->failures == 0)
            log_warn(0, "%s failed: %s", target_name(j, what, sizeof(what)), why);
        r->failures++;
        r->not_before_ms = now + delay > not_before_ms ? now + delay : not_before_ms;
        record_failure(j, why);
    }
    if (ok || waha_fault)
        breaker_record(&f.breaker, ok, now);
    mark_attempt_done(j);
}

/* Retry J's target later if that may help; true when a retry is scheduled. */
static bool schedule_retry(const struct job *j, long http, int64_t retry_after_ms)
{
    struct refresh *r = refresh_of(job_target[j->kind], j->entry);
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

/* Count the call J made: what it asked, how it ended, how long it took. */
static void count_call(const struct job *j, CURLcode code, long http,
                       enum outcome outcome)
{
    static const enum upstream_endpoint endpoints[] = {
        [JOB_DETAILS] = UPSTREAM_SESSION, [JOB_HEALTH] = UPSTREAM_HEALTH,
        [JOB_LIST] = UPSTREAM_SESSIONS,   [JOB_QR_VALUE] = UPSTREAM_QR,
        [JOB_QR_IMAGE] = UPSTREAM_QR,     [JOB_SERVER] = UPSTREAM_SERVER,
    };
    enum upstream_endpoint endpoint = j->ping ? UPSTREAM_PING : endpoints[j->kind];
    enum upstream_result result;
    curl_off_t total_us = 0;

    if (outcome == OUTCOME_OK || outcome == OUTCOME_CHAINED || outcome == OUTCOME_NONE)
        result = RESULT_OK;
    else if (j->body.too_large)
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

/* What J's answer means (answers.c), once the transfer itself succeeded. */
static enum outcome interpret(struct job *j, long http, char *why)
{
    struct answer ans = {.http = http,
                         .body = j->body.data,
                         .len = j->body.len,
                         .entry = j->entry,
                         .name = f.snap[j->entry].name,
                         .ping = j->ping};
    bool use_ping = false;
    enum outcome outcome;

    switch (j->kind) {
    case JOB_LIST: return answers_list(&f.answers, &ans, why);
    case JOB_DETAILS: return answers_details(&f.answers, &ans, why);
    case JOB_SERVER: return answers_server(&f.answers, &ans, why);
    case JOB_QR_VALUE:
    case JOB_QR_IMAGE: return answers_qr(&f.answers, &ans, j->kind == JOB_QR_IMAGE, why);
    case JOB_HEALTH:
    default:
        outcome = answers_health(&f.answers, &ans, &use_ping, why);
        if (use_ping) {
            log_info(
                "WAHA answers /health with %ld (WAHA Core, or a session-scoped key); "
                "checking /ping instead, and /health again in an hour",
                http);
            f.ping_until_ms = time_mono_ms() + FETCHER_HEALTH_RETRY_MS;
            region_want(f.region, REGION_ENTRY_HEALTH, DEMAND_DATA, time_mono_ms() + 1);
        }
        return outcome;
    }
}

static enum outcome transfer_outcome(struct job *j, CURLcode code, long http, char *why)
{
    if (j->body.too_large) {
        snprintf(why, WAHA_WHY_MAX, "answer larger than %zu bytes", j->body.max);
        return OUTCOME_RETRYABLE;
    }
    if (code != CURLE_OK) {
        snprintf(why, WAHA_WHY_MAX, "%.150s",
                 j->error[0] ? j->error : curl_easy_strerror(code));
        return OUTCOME_RETRYABLE;
    }
    if (http == 401) {
        snprintf(why, WAHA_WHY_MAX, "WAHA refused upstream.api_key (HTTP 401)");
        if (!f.warned_unauthorized && !(j->kind == JOB_HEALTH && !j->ping)) {
            log_error(0, "WAHA answers 401 Unauthorized: upstream.api_key (or "
                         "WAHA_API_KEY_PLAIN, WAHA_API_KEY) is wrong or missing");
            f.warned_unauthorized = true;
        }
        if (!(j->kind == JOB_HEALTH && !j->ping))
            return OUTCOME_FINAL;
    }
    return interpret(j, http, why);
}

static void handle_result(struct job *j, CURLcode code)
{
    char why[WAHA_WHY_MAX] = "";
    curl_off_t retry_after = 0;
    enum outcome outcome;
    long http = 0;

    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &retry_after);
    j->body.data[j->body.len] = '\0';
    outcome = transfer_outcome(j, code, http, why);
    count_call(j, code, http, outcome);
    if (outcome == OUTCOME_NONE) {
        if (j->probe)
            f.breaker.probe_out = false;
        return;
    }
    if (outcome == OUTCOME_CHAINED) {
        /* The refresh goes on with the image (schedule_qr_due() sees it
         * missing). */
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

/* A transfer ended (transfers.c frees its handle next). */
static void on_transfer_done(CURL *easy, CURLcode result)
{
    struct job *j = NULL;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&j);
    handle_result(j, result);
    j->easy = NULL;
    j->active = false;
    refresh_of(job_target[j->kind], j->entry)->in_flight = false;
    f.running--;
}

/*========================================================================
 * Starting transfers.
 */

/* The URL of a call of KIND for entry INDEX into URL (SIZE bytes). */
static void url_of(enum job_kind kind, int index, bool ping, char *url, size_t size)
{
    const char *base = f.cfg->upstream.url;
    char *name = NULL;

    /* Session names are percent-encoded: WAHA holds names like "sales.team"
     * or "a b" (docs/waha-api.md, 9). */
    if (kind != JOB_HEALTH && kind != JOB_LIST && kind != JOB_SERVER)
        name = curl_easy_escape(NULL, f.snap[index].name, 0);
    switch (kind) {
    case JOB_HEALTH: snprintf(url, size, "%s%s", base, ping ? "/ping" : "/health"); break;
    case JOB_LIST: snprintf(url, size, "%s/api/sessions?all=true", base); break;
    case JOB_SERVER:
        snprintf(url, size, "%s%s", base,
                 index == REGION_ENTRY_SERVER ? "/api/server/status" : "/api/server/version");
        break;
    case JOB_DETAILS:
        snprintf(url, size, "%s/api/sessions/%s", base, name ? name : "");
        break;
    case JOB_QR_VALUE:
        snprintf(url, size, "%s/api/%s/auth/qr?format=raw", base, name ? name : "");
        break;
    case JOB_QR_IMAGE:
        snprintf(url, size, "%s/api/%s/auth/qr?format=image", base, name ? name : "");
        break;
    }
    curl_free(name);
}

static struct job *free_job(void)
{
    for (int i = 0; i < f.cfg->limits.max_concurrent_requests; i++)
        if (!f.jobs[i].active)
            return &f.jobs[i];
    return NULL;
}

static int start_job(int index, enum job_kind kind, bool probe)
{
    char url[sizeof(f.cfg->upstream.url) + (size_t)3 * REGION_NAME_MAX + 64];
    bool qr = kind == JOB_QR_VALUE || kind == JOB_QR_IMAGE;
    struct job *j = free_job();

    if (j == NULL || (j->easy = curl_easy_init()) == NULL)
        return -1;
    j->kind = kind;
    j->entry = index;
    j->probe = probe;
    j->ping = kind == JOB_HEALTH && time_mono_ms() < f.ping_until_ms;
    transfer_body_reset(&j->body, kind == JOB_LIST ? FETCHER_LIST_MAX(f.entries)
                                                   : FETCHER_BODY_MAX);
    j->error[0] = '\0';
    url_of(kind, index, j->ping, url, sizeof(url));
    curl_easy_setopt(j->easy, CURLOPT_URL, url);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER,
                     kind == JOB_QR_IMAGE ? f.png_headers : f.json_headers);
    curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "wahagate/" WAHAGATE_VERSION);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, transfer_body_write);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, &j->body);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->error);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(
        j->easy, CURLOPT_TIMEOUT_MS,
        (long)(qr ? f.cfg->limits.qr_timeout : f.cfg->limits.request_timeout));
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A fresh connection per call: on a kept-alive connection that WAHA
     * (Node's 5 s keep-alive timeout) closes just then, libcurl silently
     * sends the request again, and WAHA would see more calls than we make. */
    curl_easy_setopt(j->easy, CURLOPT_FORBID_REUSE, 1L);
    if (transfers_add(j->easy) != 0) {
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
        return -1;
    }
    j->active = true;
    refresh_of(job_target[kind], index)->in_flight = true;
    f.running++;
    return 0;
}

/*========================================================================
 * Looking at the region.
 */

/* Copy what scheduling needs from entry I (lock held). */
static void take_snapshot(int i, struct snapshot *s)
{
    const struct region_entry *e = region_entry(f.region, i);
    struct region_qr *q;

    if (s->kind != e->d.kind || strcmp(s->name, e->d.name) != 0) {
        /* Another session (or none) now: its refresh state starts over. */
        memset(&f.details[i], 0, sizeof(f.details[i]));
        memset(&f.qr[i], 0, sizeof(f.qr[i]));
    }
    s->valid = true;
    s->seq = atomic_load(&e->seq);
    s->kind = e->d.kind;
    memcpy(s->name, e->d.name, sizeof(s->name));
    s->has_data = e->d.has_data;
    s->exists = e->d.exists;
    s->has_details = e->d.has_details;
    s->fetched_mono_ms = e->d.fetched_mono_ms;
    s->details_mono_ms = e->d.details_mono_ms;
    memcpy(s->raw_status, e->d.raw_status, sizeof(s->raw_status));
    s->pending_since_mono_ms = e->d.pending_since_mono_ms;
    s->pushed_mono_ms = e->d.pushed_mono_ms;
    s->qr_slot = e->d.qr_slot;
    s->qr = (struct qr_view){.scan = strcmp(e->d.raw_status, "SCAN_QR_CODE") == 0};
    q = i >= REGION_ENTRY_FIRST_SESSION ? region_qr_of(f.region, i) : NULL;
    s->qr_seq = q ? atomic_load(&q->seq) : 0;
    if (q != NULL) {
        s->qr.has_value = q->d.value[0] != '\0';
        s->qr.png_current = q->d.png_current;
        s->qr.fetched_ms = q->d.fetched_mono_ms;
    }
}

/* Copy what scheduling needs from entries that changed since last time. */
static void snapshot_entries(void)
{
    bool locked = false;

    for (int i = 0; i < f.entries; i++) {
        struct snapshot *s = &f.snap[i];
        uint64_t seq = atomic_load(&region_entry(f.region, i)->seq);
        uint64_t qr_seq =
            s->qr_slot > 0 && s->qr_slot <= region_qr_count(f.region)
                ? atomic_load(&region_qr_slot(f.region, s->qr_slot - 1)->seq)
                : 0;

        if (s->valid && seq == s->seq && qr_seq == s->qr_seq)
            continue;
        if (!locked && region_lock(f.region) != 0)
            return;
        locked = true;
        take_snapshot(i, s);
    }
    if (locked)
        region_unlock(f.region);
}

static struct demand_view demand_of(int entry, enum demand_kind kind)
{
    const struct demand *dm = region_demand(f.region, entry, kind);

    return (struct demand_view){.last_read_ms = atomic_load(&dm->last_read_ms),
                                .wanted_ms = atomic_load(&dm->wanted_ms),
                                .attempt_done_ms = atomic_load(&dm->attempt_done_ms)};
}

/* Release held status changes whose flap_hold is over. */
static void release_held_statuses(int64_t now)
{
    for (int i = REGION_ENTRY_FIRST_SESSION; i < f.entries; i++) {
        const struct snapshot *s = &f.snap[i];
        if (s->kind == ENTRY_SESSION && s->pending_since_mono_ms != 0 &&
            now - s->pending_since_mono_ms >= f.cfg->backend.flap_hold)
            store_release_held(f.region, f.cfg, i);
    }
}

static void add(int *n, enum target_kind target, int entry, enum due due)
{
    if (due != DUE_NO)
        f.candidates[(*n)++] =
            (struct candidate){.target = target, .entry = entry, .due = due};
}

/* Session I's details and QR code, and what its data asks of the list. */
static enum due consider_session(int i, int *n, int64_t now)
{
    const struct snapshot *s = &f.snap[i];
    struct demand_view data = demand_of(i, DEMAND_DATA), details, qr;
    int64_t period = session_period(i, now);

    details = demand_of(i, DEMAND_DETAILS);
    add(n, TARGET_DETAILS, i,
        schedule_gate(&f.details[i],
                      schedule_demand_due(s->has_details, s->details_mono_ms, &details,
                                          f.cfg->backend.session_cache_duration, now),
                      now));
    qr = demand_of(i, DEMAND_QR);
    add(n, TARGET_QR, i, schedule_qr_due(&f.qr[i], &s->qr, &qr, period, now));
    return schedule_demand_due(s->has_data, s->fetched_mono_ms, &data, period, now);
}

/* The targets due now, into f.candidates: their number. */
static int gather_candidates(int64_t now)
{
    struct demand_view dm = demand_of(REGION_ENTRY_HEALTH, DEMAND_DATA);
    const struct snapshot *h = &f.snap[REGION_ENTRY_HEALTH];
    enum due list = DUE_NO;
    int n = 0;

    add(&n, TARGET_HEALTH, REGION_ENTRY_HEALTH,
        schedule_gate(&f.health,
                      schedule_demand_due(h->has_data, h->fetched_mono_ms, &dm,
                                          f.cfg->backend.health_check_cache_duration,
                                          now),
                      now));
    for (int i = REGION_ENTRY_FIRST_SESSION; i < f.entries; i++)
        if (f.snap[i].kind == ENTRY_SESSION)
            list = schedule_more_urgent(list, consider_session(i, &n, now));
    /* The list's own demand: readers of a name the list may bring
     * (upstream.sessions = *), and the fleet's followers. */
    dm = demand_of(REGION_ENTRY_LIST, DEMAND_DATA);
    list = schedule_more_urgent(
        list, schedule_demand_due(f.snap[REGION_ENTRY_LIST].has_data,
                                  f.snap[REGION_ENTRY_LIST].fetched_mono_ms, &dm,
                                  f.cfg->backend.session_cache_duration, now));
    add(&n, TARGET_LIST, REGION_ENTRY_LIST, schedule_gate(&f.list, list, now));
    for (int i = REGION_ENTRY_VERSION; i <= REGION_ENTRY_SERVER; i++) {
        dm = demand_of(i, DEMAND_DATA);
        add(&n, TARGET_SERVER, i,
            schedule_gate(&f.server[i == REGION_ENTRY_SERVER],
                          schedule_demand_due(f.snap[i].has_data, f.snap[i].fetched_mono_ms,
                                              &dm, period_of(TARGET_SERVER, i, now), now),
                          now));
    }
    return n;
}

static int compare_candidates(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;

    return (int)x->due - (int)y->due;
}

static enum job_kind job_kind_of(const struct candidate *c)
{
    const struct snapshot *s = &f.snap[c->entry];

    switch (c->target) {
    case TARGET_HEALTH: return JOB_HEALTH;
    case TARGET_LIST: return JOB_LIST;
    case TARGET_DETAILS: return JOB_DETAILS;
    case TARGET_SERVER: return JOB_SERVER;
    case TARGET_QR:
    default: return s->qr.has_value && !s->qr.png_current ? JOB_QR_IMAGE : JOB_QR_VALUE;
    }
}

/* Start what is due, as far as the breaker and the concurrency allow. */
static void start_candidates(int n, int64_t now)
{
    for (int k = 0; k < n && f.running < f.cfg->limits.max_concurrent_requests; k++) {
        const struct candidate *c = &f.candidates[k];
        struct refresh *r = refresh_of(c->target, c->entry);
        enum breaker_verdict verdict = breaker_ask(&f.breaker, now);

        if (verdict == BREAKER_DENY) {
            /* No calls now. A retry that cannot happen ends its refresh. */
            if (r->retry_at_ms != 0) {
                struct job stand_in = {.kind = job_kind_of(c), .entry = c->entry};
                finish_refresh(&stand_in, false, false,
                               "circuit open: WAHA is not called", 0);
            }
            continue;
        }
        r->retry_at_ms = 0;
        if (start_job(c->entry, job_kind_of(c), verdict == BREAKER_PROBE) != 0 &&
            verdict == BREAKER_PROBE)
            f.breaker.probe_out = false;
    }
}

static void schedule_tick(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = time_mono_ms();
    int n;

    (void)fd;
    (void)what;
    (void)arg;
    snapshot_entries();
    release_held_statuses(now);
    n = gather_candidates(now);
    qsort(f.candidates, (size_t)n, sizeof(f.candidates[0]), compare_candidates);
    fleet_tick(now);
    pushed_keep(f.base, f.cfg, f.region, fleet_may_fetch());
    if (!fleet_may_fetch()) {
        /* Another gateway calls WAHA: ask it for what our readers need. */
        for (int k = 0; k < n; k++)
            fleet_forward(f.candidates[k].target, f.candidates[k].entry,
                          f.candidates[k].due <= DUE_WANTED, now);
        return;
    }
    start_candidates(n, now);
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

/* The per-entry tables and the jobs' buffers. */
static int allocate(void)
{
    size_t entries = (size_t)f.entries;

    f.details = calloc(entries, sizeof(*f.details));
    f.qr = calloc(entries, sizeof(*f.qr));
    f.snap = calloc(entries, sizeof(*f.snap));
    f.candidates = calloc(2 * entries + 2, sizeof(*f.candidates));
    f.jobs = calloc((size_t)f.cfg->limits.max_concurrent_requests, sizeof(*f.jobs));
    if (f.details == NULL || f.qr == NULL || f.snap == NULL || f.candidates == NULL ||
        f.jobs == NULL || answers_init(&f.answers, f.cfg, f.region) != 0)
        return -1;
    for (int i = 0; i < f.cfg->limits.max_concurrent_requests; i++)
        if (transfer_body_init(&f.jobs[i].body, FETCHER_BODY_FIRST) != 0)
            return -1;
    return 0;
}

static int setup_curl(void)
{
    if (transfers_init(f.base, (long)f.cfg->limits.max_concurrent_requests,
                       on_transfer_done) != 0)
        return -1;
    f.json_headers = headers(f.cfg->upstream.api_key, "Accept: application/json");
    f.png_headers = headers(f.cfg->upstream.api_key, "Accept: image/png");
    return f.json_headers != NULL && f.png_headers != NULL ? 0 : -1;
}

static int setup(const struct heritage *h)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    struct timeval tick = time_timeval(FETCHER_TICK_MS);

    f.cfg = h->cfg;
    f.region = h->region;
    f.slot = region_proc(h->region, h->slot);
    f.entries = region_entry_count(h->region);
    listeners_close(&h->listeners, NULL); /* the fetcher serves no one */
    srandom((unsigned)(getpid() ^ time_real_ms()));
    breaker_init(&f.breaker, h->cfg, region_header(h->region));
    f.base = event_base_new();
    if (f.base == NULL || allocate() != 0 || setup_curl() != 0) {
        log_error(0, "cannot create the fetcher's event loop");
        return -1;
    }
    f.tick = event_new(f.base, -1, EV_PERSIST, schedule_tick, NULL);
    if (f.tick == NULL || event_add(f.tick, &tick) != 0)
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
    pushed_stop();
    if (f.base != NULL) /* events.c frees a host lookup it cancelled on this turn */
        event_base_loop(f.base, EVLOOP_NONBLOCK);
    fleet_stop();
    if (f.jobs != NULL) {
        for (int i = 0; i < f.cfg->limits.max_concurrent_requests; i++) {
            if (f.jobs[i].easy != NULL)
                transfers_cancel(f.jobs[i].easy);
            transfer_body_free(&f.jobs[i].body);
        }
    }
    transfers_free();
    curl_slist_free_all(f.json_headers);
    curl_slist_free_all(f.png_headers);
    for (size_t i = 0; i < sizeof(f.signals) / sizeof(f.signals[0]); i++)
        if (f.signals[i])
            event_free(f.signals[i]);
    if (f.tick)
        event_free(f.tick);
    if (f.base)
        event_base_free(f.base);
    free(f.jobs);
    free(f.details);
    free(f.qr);
    free(f.snap);
    free(f.candidates);
    answers_free(&f.answers);
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
