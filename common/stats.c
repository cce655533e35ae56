/*
 * stats.c - the stats object, the Prometheus metrics, and --stats.
 *
 * DESIGN
 * Counters live in the region's per-process slots (struct region_proc):
 * each slot has one writer, the process that owns it, and keeps its figures
 * after that process exits, so sums survive worker respawns and reloads.
 * Readers sum all slots with relaxed atomic loads and never lock; a sum may
 * be a moment behind, never torn. Gauges (in-flight requests, SSE clients,
 * memory) only count slots whose process runs. apiCallsPerMinute comes from
 * the header's per-second ring of WAHA calls (region_calls_last_minute()).
 */
#include "stats.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "timeutil.h"

/*========================================================================
 * Sums.
 */

static uint64_t load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* Live processes of ROLE (ROLE_NONE: any), their RSS and SSE clients. */
struct live {
    int workers;
    int64_t rss_bytes;
    int64_t sse_clients;
};

static int64_t rss_of(int pid)
{
    char path[64];
    long pages = 0, resident = 0;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(fp);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

static struct live live_processes(struct region *r)
{
    struct live l = {0, 0, 0};

    for (int i = 0; i < REGION_MAX_PROCS; i++) {
        struct region_proc *p = region_proc(r, i);
        int pid = atomic_load(&p->pid);
        if (pid == 0)
            continue;
        l.workers += atomic_load(&p->role) == ROLE_WORKER;
        l.sse_clients += atomic_load(&p->sse_clients);
        l.rss_bytes += rss_of(pid);
    }
    return l;
}

static double ratio(uint64_t part, uint64_t whole, double if_none)
{
    return whole == 0 ? if_none : (double)part / (double)whole;
}

/*========================================================================
 * The stats object.
 */

void stats_render_json(struct region *r, const struct config *cfg, struct jbuf *b)
{
    struct region_header *h = region_header(r);
    int64_t uptime_ms = time_mono_ms() - h->started_mono_ms;
    uint64_t requests = region_counter_sum(r, COUNTER_REQUESTS);
    uint64_t hits = region_counter_sum(r, COUNTER_CACHE_HITS);
    uint64_t misses = region_counter_sum(r, COUNTER_CACHE_MISSES);
    uint64_t errors = region_counter_sum(r, COUNTER_ERRORS);
    uint64_t calls = region_counter_sum(r, COUNTER_UPSTREAM_CALLS);
    uint32_t circuit = atomic_load(&h->circuit);
    struct live l = live_processes(r);

    jbuf_printf(b,
                "{\"uptimeSeconds\":%lld,\"totalRequests\":%llu,\"cacheHits\":%llu,"
                "\"cacheMisses\":%llu,\"cacheHitRate\":%.4f,\"notModified\":%llu,"
                "\"rateLimited\":%llu,\"errors\":%llu,\"errorRate\":%.4f,",
                (long long)(uptime_ms / 1000), (unsigned long long)requests,
                (unsigned long long)hits, (unsigned long long)misses,
                ratio(hits, hits + misses, 1.0),
                (unsigned long long)region_counter_sum(r, COUNTER_NOT_MODIFIED),
                (unsigned long long)region_counter_sum(r, COUNTER_RATE_LIMITED),
                (unsigned long long)errors, ratio(errors, requests, 0.0));
    jbuf_printf(b,
                "\"apiCalls\":%llu,\"apiCallErrors\":%llu,\"apiCallsPerMinute\":%llu,"
                "\"avgApiCallsPerMinute\":%.2f,\"webhooksReceived\":%llu,"
                "\"sseClients\":%lld,\"authFailures\":%llu,",
                (unsigned long long)calls,
                (unsigned long long)region_counter_sum(r, COUNTER_UPSTREAM_ERRORS),
                (unsigned long long)region_calls_last_minute(r),
                uptime_ms > 0 ? (double)calls * 60000.0 / (double)uptime_ms : 0.0,
                (unsigned long long)region_counter_sum(r, COUNTER_WEBHOOKS),
                (long long)l.sse_clients,
                (unsigned long long)region_counter_sum(r, COUNTER_AUTH_FAILURES));
    jbuf_printf(b, "\"redis\":\"%s\",\"untrackedSessions\":%llu,\"events\":\"%s\",",
                fleet_state_names[atomic_load(&h->fleet) % FLEET_STATE_COUNT],
                (unsigned long long)atomic_load(&h->untracked_sessions),
                events_state_names[atomic_load(&h->events) % EVENTS_STATE_COUNT]);
    jbuf_printf(b,
                "\"circuit\":{\"state\":\"%s\",\"opens\":%llu},"
                "\"workers\":{\"count\":%d,\"min\":%lld,\"max\":%lld},"
                "\"memory\":{\"rssBytes\":%lld}}",
                circuit_state_names[circuit < CIRCUIT_COUNT ? circuit : 0],
                (unsigned long long)atomic_load(&h->circuit_opens), l.workers,
                (long long)cfg->server.min_workers, (long long)cfg->server.max_workers,
                (long long)l.rss_bytes);
}

/*========================================================================
 * Prometheus text exposition (format 0.0.4).
 */

static void help(struct jbuf *b, const char *name, const char *type, const char *text)
{
    jbuf_printf(b, "# HELP wahagate_%s %s\n# TYPE wahagate_%s %s\n", name, text, name,
                type);
}

static void counter(struct jbuf *b, const char *name, const char *text, uint64_t value)
{
    help(b, name, "counter", text);
    jbuf_printf(b, "wahagate_%s %llu\n", name, (unsigned long long)value);
}

static void gauge(struct jbuf *b, const char *name, const char *text, double value)
{
    help(b, name, "gauge", text);
    jbuf_printf(b, "wahagate_%s %.17g\n", name, value);
}

/* A histogram from per-bucket (non-cumulative) counts summed over slots. */
static void histogram(struct jbuf *b, const char *name, const char *text,
                      const uint64_t *counts, int buckets, const int64_t *bounds,
                      double bound_scale, double sum)
{
    uint64_t cumulative = 0;

    help(b, name, "histogram", text);
    for (int i = 0; i < buckets - 1; i++) {
        cumulative += counts[i];
        jbuf_printf(b, "wahagate_%s_bucket{le=\"%g\"} %llu\n", name,
                    (double)bounds[i] * bound_scale, (unsigned long long)cumulative);
    }
    cumulative += counts[buckets - 1];
    jbuf_printf(b, "wahagate_%s_bucket{le=\"+Inf\"} %llu\n", name,
                (unsigned long long)cumulative);
    jbuf_printf(b, "wahagate_%s_sum %.6f\nwahagate_%s_count %llu\n", name, sum, name,
                (unsigned long long)cumulative);
}

static void request_metrics(struct region *r, struct jbuf *b)
{
    static const char *const classes[STATUS_CLASS_COUNT] = {"2xx", "3xx", "4xx", "5xx"};
    uint64_t latency[LATENCY_BUCKETS] = {0};
    double latency_sum = 0;

    help(b, "requests_total", "counter",
         "HTTP requests answered, by endpoint and status class.");
    for (int e = 0; e < ENDPOINT_COUNT; e++) {
        for (int c = 0; c < STATUS_CLASS_COUNT; c++) {
            uint64_t n = 0;
            for (int i = 0; i < REGION_MAX_PROCS; i++)
                n += load(&region_proc(r, i)->requests[e][c]);
            if (n > 0)
                jbuf_printf(b,
                            "wahagate_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
                            endpoint_names[e], classes[c], (unsigned long long)n);
        }
    }
    for (int i = 0; i < REGION_MAX_PROCS; i++) {
        struct region_proc *p = region_proc(r, i);
        for (int k = 0; k < LATENCY_BUCKETS; k++)
            latency[k] += load(&p->latency[k]);
        latency_sum += (double)load(&p->latency_sum_us) / 1e6;
    }
    histogram(b, "request_duration_seconds",
              "Time from reading a request to answering it.", latency, LATENCY_BUCKETS,
              latency_bucket_us, 1e-6, latency_sum);
}

static void upstream_metrics(struct region *r, struct jbuf *b)
{
    uint64_t latency[UPSTREAM_BUCKETS] = {0};
    double latency_sum = 0;

    help(b, "upstream_calls_total", "counter", "Calls to WAHA, by endpoint and result.");
    for (int e = 0; e < UPSTREAM_ENDPOINT_COUNT; e++) {
        for (int c = 0; c < RESULT_COUNT; c++) {
            uint64_t n = 0;
            for (int i = 0; i < REGION_MAX_PROCS; i++)
                n += load(&region_proc(r, i)->upstream[e][c]);
            if (n > 0)
                jbuf_printf(
                    b,
                    "wahagate_upstream_calls_total{endpoint=\"%s\",result=\"%s\"} "
                    "%llu\n",
                    upstream_endpoint_names[e], upstream_result_names[c],
                    (unsigned long long)n);
        }
    }
    for (int i = 0; i < REGION_MAX_PROCS; i++) {
        struct region_proc *p = region_proc(r, i);
        for (int k = 0; k < UPSTREAM_BUCKETS; k++)
            latency[k] += load(&p->upstream_latency[k]);
        latency_sum += (double)load(&p->upstream_latency_sum_ms) / 1e3;
    }
    histogram(b, "upstream_duration_seconds", "Time a call to WAHA took.", latency,
              UPSTREAM_BUCKETS, upstream_bucket_ms, 1e-3, latency_sum);
}

void stats_render_metrics(struct region *r, const struct config *cfg, struct jbuf *b)
{
    struct region_header *h = region_header(r);
    uint32_t circuit = atomic_load(&h->circuit);
    struct live l = live_processes(r);

    request_metrics(r, b);
    counter(b, "cache_hits_total", "Answers served from fresh cached data.",
            region_counter_sum(r, COUNTER_CACHE_HITS));
    counter(b, "cache_misses_total", "Answers that waited for WAHA or were stale.",
            region_counter_sum(r, COUNTER_CACHE_MISSES));
    counter(b, "not_modified_total", "304 answers to If-None-Match.",
            region_counter_sum(r, COUNTER_NOT_MODIFIED));
    counter(b, "rate_limited_total", "429 answers of the rate limiter.",
            region_counter_sum(r, COUNTER_RATE_LIMITED));
    counter(b, "response_body_bytes_total", "Bytes of response bodies sent.",
            region_counter_sum(r, COUNTER_BYTES_SENT));
    upstream_metrics(r, b);
    counter(b, "upstream_retries_total", "Retries of failed calls to WAHA.",
            region_counter_sum(r, COUNTER_UPSTREAM_RETRIES));
    gauge(b, "upstream_calls_last_minute", "Calls to WAHA during the last 60 s.",
          (double)region_calls_last_minute(r));
    help(b, "circuit_state", "gauge", "1 for the circuit breaker's current state.");
    for (int s = 0; s < CIRCUIT_COUNT; s++)
        jbuf_printf(b, "wahagate_circuit_state{state=\"%s\"} %d\n",
                    circuit_state_names[s], (uint32_t)s == circuit);
    counter(b, "circuit_opens_total", "Times the circuit breaker opened.",
            atomic_load(&h->circuit_opens));
    counter(b, "circuit_transitions_total", "Changes of the circuit breaker's state.",
            atomic_load(&h->circuit_transitions));
    counter(b, "auth_failures_total",
            "Requests refused for a missing or unknown client key.",
            region_counter_sum(r, COUNTER_AUTH_FAILURES));
    counter(b, "webhooks_received_total", "WAHA webhooks received.",
            region_counter_sum(r, COUNTER_WEBHOOKS));
    counter(b, "webhooks_rejected_total", "Webhooks refused (HMAC, size, shape).",
            region_counter_sum(r, COUNTER_WEBHOOKS_REJECTED));
    counter(b, "webhooks_duplicate_total",
            "Webhook deliveries not applied: seen before, or older than the data.",
            region_counter_sum(r, COUNTER_WEBHOOKS_DUPLICATE));
    gauge(b, "sse_clients", "Open Server-Sent Events connections.",
          (double)l.sse_clients);
    gauge(b, "sessions_untracked",
          "Sessions WAHA lists beyond server.max_sessions (not tracked).",
          (double)atomic_load(&h->untracked_sessions));
    gauge(b, "upstream_events_connected",
          "1 while the WebSocket to WAHA's events (/ws) is up.",
          atomic_load(&h->events) == EVENTS_CONNECTED);
    counter(b, "upstream_events_total", "Events received on WAHA's WebSocket.",
            atomic_load(&h->events_received));
    help(b, "redis_state", "gauge",
         "1 for the gateway's place in a Redis fleet (off: single host).");
    for (int s = 0; s < FLEET_STATE_COUNT; s++)
        jbuf_printf(b, "wahagate_redis_state{state=\"%s\"} %d\n", fleet_state_names[s],
                    (uint32_t)s == atomic_load(&h->fleet));
    gauge(b, "workers", "Worker processes running.", l.workers);
    help(b, "scaling_total", "counter",
         "Workers added for load (up) or retired when quiet (down).");
    jbuf_printf(b, "wahagate_scaling_total{direction=\"up\"} %llu\n",
                (unsigned long long)region_counter_sum(r, COUNTER_SCALE_UP));
    jbuf_printf(b, "wahagate_scaling_total{direction=\"down\"} %llu\n",
                (unsigned long long)region_counter_sum(r, COUNTER_SCALE_DOWN));
    gauge(b, "workers_max", "server.max_workers.", (double)cfg->server.max_workers);
    gauge(b, "resident_memory_bytes", "Resident memory of all wahagate processes.",
          (double)l.rss_bytes);
    gauge(b, "uptime_seconds", "Seconds since the gateway started.",
          (double)(time_mono_ms() - h->started_mono_ms) / 1000.0);
}

/* VALUE as a label value: \\, \" and \n escaped (the exposition format). */
static void label_value(struct jbuf *b, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            jbuf_mem(b, "\\", 1);
        if (*p == '\n')
            jbuf_raw(b, "\\n");
        else
            jbuf_mem(b, p, 1);
    }
}

static void session_label(struct jbuf *b, const char *name, const struct stats_session *s)
{
    jbuf_printf(b, "wahagate_%s{session=\"", name);
    label_value(b, s->name);
    jbuf_raw(b, "\"");
}

void stats_render_session_metrics(struct jbuf *b, const struct stats_session *sessions,
                                  int count, int64_t stale_after_ms)
{
    help(b, "session_authenticated", "gauge",
         "1 while the session's published status is WORKING.");
    for (int i = 0; i < count; i++) {
        session_label(b, "session_authenticated", &sessions[i]);
        jbuf_printf(b, "} %d\n", strcmp(sessions[i].status, "WORKING") == 0);
    }
    help(b, "session_status", "gauge", "1 for the session's published status.");
    for (int i = 0; i < count; i++) {
        session_label(b, "session_status", &sessions[i]);
        jbuf_raw(b, ",status=\"");
        label_value(b, sessions[i].status);
        jbuf_raw(b, "\"} 1\n");
    }
    help(b, "session_data_age_seconds", "gauge",
         "Age of the cached data of the session.");
    for (int i = 0; i < count; i++) {
        session_label(b, "session_data_age_seconds", &sessions[i]);
        jbuf_printf(b, "} %.3f\n", sessions[i].age_ms / 1000.0);
    }
    help(b, "session_stale", "gauge",
         "1 while the session's data is older than backend.status_cache_duration.");
    for (int i = 0; i < count; i++) {
        session_label(b, "session_stale", &sessions[i]);
        jbuf_printf(b, "} %d\n", sessions[i].age_ms >= stale_after_ms);
    }
}

/*========================================================================
 * wahagate --stats
 */

int stats_print(const struct config *cfg, bool json)
{
    static char out[16384];
    struct region r;
    char why[256];
    struct region_header *h;
    struct jbuf b;

    if (region_attach_read_only(&r, cfg->server.shm_name, why, sizeof(why)) != 0) {
        fprintf(stderr, "wahagate: %s\n", why);
        return 1;
    }
    h = region_header(&r);
    if (json) {
        jbuf_init(&b, out, sizeof(out));
        stats_render_json(&r, cfg, &b);
        printf("%s\n", out);
        region_detach(&r);
        return 0;
    }
    printf("wahagate (master pid %d), up %.0f s, shm %s, circuit %s\n\n",
           (int)atomic_load(&h->master_pid),
           (time_mono_ms() - h->started_mono_ms) / 1000.0, cfg->server.shm_name,
           circuit_state_names[atomic_load(&h->circuit) % CIRCUIT_COUNT]);
    printf("%-24s %15s", "counter", "total");
    for (int i = 0; i < REGION_MAX_PROCS; i++) {
        uint32_t role = atomic_load(&region_proc(&r, i)->role);
        if (role != ROLE_NONE && role < ROLE_COUNT)
            printf(" %9.9s/%-3d", proc_role_names[role], i);
    }
    printf("\n");
    for (int c = 0; c < COUNTER_COUNT; c++) {
        printf("%-24s %15llu", counter_names[c],
               (unsigned long long)region_counter_sum(&r, (enum counter)c));
        for (int i = 0; i < REGION_MAX_PROCS; i++) {
            struct region_proc *p = region_proc(&r, i);
            uint32_t role = atomic_load(&p->role);
            if (role != ROLE_NONE && role < ROLE_COUNT)
                printf(" %13llu", (unsigned long long)load(&p->counters[c]));
        }
        printf("\n");
    }
    printf("%-24s %15llu\n", "upstream_calls_last_min",
           (unsigned long long)region_calls_last_minute(&r));
    region_detach(&r);
    return 0;
}
