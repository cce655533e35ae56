/*
 * stats.h - what the gateway tells about itself: the stats object of
 * GET /api/waha/monitoring/stats, the Prometheus exposition of GET
 * /metrics, and `wahagate --stats`.
 *
 * Every figure is computed from the region: per-process counters (one
 * writer each, summed here), the breaker's state and the call ring in the
 * header. Nothing here takes the region lock, so a reader can never stall
 * the server, and `wahagate --stats` can use a read-only mapping.
 */
#ifndef WAHAGATE_STATS_H
#define WAHAGATE_STATS_H

#include <stdbool.h>

#include "config.h"
#include "json.h"
#include "region.h"

/* stats_render_json - the contract's stats object into B. */
void stats_render_json(struct region *r, const struct config *cfg, struct jbuf *b);

/* stats_render_metrics - the process-wide metrics, Prometheus text format. */
void stats_render_metrics(struct region *r, const struct config *cfg, struct jbuf *b);

/* One session, for the per-session gauges of /metrics. */
struct stats_session {
    const char *name;
    const char *status; /* the published status */
    int64_t age_ms;     /* of its cached data */
};

/*
 * stats_render_session_metrics - the per-session gauges of the COUNT
 * SESSIONS (authenticated, status, data age, stale after STALE_AFTER_MS),
 * Prometheus text format, into B.
 */
void stats_render_session_metrics(struct jbuf *b, const struct stats_session *sessions,
                                  int count, int64_t stale_after_ms);

/*
 * stats_print - attach CFG's region read-only and print its counters as a
 * table, or (JSON) the stats object. Returns the exit code: 0, or 1 when no
 * instance runs with server.shm_name.
 */
int stats_print(const struct config *cfg, bool json);

#endif
