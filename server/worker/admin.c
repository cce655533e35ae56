/*
 * admin.c - the gateway's own figures: GET /api/waha/monitoring/stats (the
 * stats object) and GET /metrics (Prometheus text).
 *
 * DESIGN
 * Both are rendered by common/stats.c from the region's counters, which
 * every process keeps in its own stat slot; this file only checks who may
 * ask (server.stats_token; server.admin_listen is routes.c's) and hands
 * stats.c the per-session figures this worker's copies hold, so that all
 * Prometheus text is written in one place. Under auth.required with the
 * figures open to anyone, a session's series are shown only to a reader
 * whose client key allows that session (session_figures()).
 */
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "stats.h"

enum route_result serve_stats(const struct http_request_view *req,
                              struct http_response *resp)
{
    struct jbuf b;

    if (!auth_stats_token(req, resp))
        return ROUTE_DONE;
    jbuf_init(&b, rt.scratch, rt.scratch_size);
    stats_render_json(rt.region, rt.cfg, &b);
    http_response_header(resp, "Cache-Control", "no-store");
    route_json(resp, b.data, b.len);
    return ROUTE_DONE;
}

/*
 * The sessions this worker's copies hold that REQ's reader may see, for the
 * per-session gauges: all of them, unless the figures are open to anyone
 * under auth.required (config_figures_open()); then those of the client key
 * REQ presents, and none without one, so that a session's name and status
 * are not shown to a reader that could not read them at /api/waha/status.
 */
static int session_figures(const struct http_request_view *req, struct stats_session *out)
{
    const struct auth_key *key = NULL;
    bool presented;
    int n = 0;

    if (config_figures_open(rt.cfg) && (key = auth_key_of(req, &presented)) == NULL)
        return 0;
    for (int i = REGION_ENTRY_FIRST_SESSION; i < replica_entry_count(); i++) {
        const struct local_entry *le = replica_is_session(i) ? replica_entry(i) : NULL;
        if (le == NULL || !le->d.has_data || !config_key_allows(key, le->d.name))
            continue;
        out[n].name = le->d.name;
        out[n].status = le->d.status;
        out[n].age_ms = cache_age_ms(le->d.fetched_mono_ms, req->now_mono_ms);
        n++;
    }
    return n;
}

/* The process-wide metrics and, for COUNT sessions, theirs: the bytes
 * they may take (a session's name escaped, in four gauges). */
static size_t metrics_size(int count)
{
    return (size_t)64 * 1024 + (size_t)count * 4 * (2 * REGION_NAME_MAX + 2 * REGION_STATUS_MAX + 96);
}

enum route_result serve_metrics(const struct http_request_view *req,
                                struct http_response *resp)
{
    static struct stats_session *sessions;
    struct jbuf b;
    int count;
    char *out;

    if (!auth_stats_token(req, resp))
        return ROUTE_DONE;
    if (sessions == NULL)
        sessions = calloc((size_t)replica_entry_count(), sizeof(*sessions));
    count = sessions ? session_figures(req, sessions) : 0;
    if (sessions == NULL || (out = route_scratch(metrics_size(count))) == NULL) {
        http_response_error(resp, 500, "internal", "out of memory for the metrics");
        return ROUTE_DONE;
    }
    jbuf_init(&b, out, metrics_size(count));
    stats_render_metrics(rt.region, rt.cfg, &b);
    stats_render_session_metrics(&b, sessions, count, rt.cfg->backend.status_cache_duration);
    if (b.overflow) {
        http_response_error(resp, 500, "internal", "metrics do not fit the buffer");
        return ROUTE_DONE;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = b.data;
    resp->body_len = b.len;
    http_response_header(resp, "Cache-Control", "no-store");
    return ROUTE_DONE;
}
