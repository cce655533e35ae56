/*
 * rules.h - pure rules of a worker's answers, kept apart from the event
 * loop and the replica so that the unit tests can call them: which Origin
 * may call the API (CORS), the status object's next-poll interval, and the
 * ids of event streams.
 *
 * Each takes what it decides on as arguments and returns the decision; no
 * region, no clock, no state.
 */
#ifndef WAHAGATE_RULES_H
#define WAHAGATE_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "region.h"

/* What an answer says to a page of another origin (the Fetch standard). */
enum cors_grant {
    CORS_NONE,   /* nothing: the browser keeps the answer from the page */
    CORS_ANY,    /* Access-Control-Allow-Origin: *, without credentials */
    CORS_ORIGIN, /* the origin echoed, with Access-Control-Allow-Credentials */
};

/*
 * rules_cors - what a page of ORIGIN (the Origin header, NULL when absent)
 * may do with an answer (server.cors_origins: listed origins, compared
 * whole and in any case, get CORS_ORIGIN; with `*` any other gets
 * CORS_ANY). "null" (sandboxed pages, file: URLs: anyone can send it)
 * gets CORS_NONE, whatever the configuration.
 */
enum cors_grant rules_cors(const struct config *cfg, const char *origin);

/*
 * rules_cors_varies - whether answers depend on the Origin header at all
 * (server.cors_origins is set): then every answer, to an origin refused
 * or to none, carries Vary: Origin, so that no cache serves one origin's
 * answer to another.
 */
bool rules_cors_varies(const struct config *cfg);

/*
 * rules_next_poll_ms - the status object's poll.nextMs: the frontend's
 * authenticated_interval while STATUS is WORKING, its base_interval
 * otherwise; while the data is STALE, the entry is not HEALTHY or the
 * breaker (CIRCUIT) is not closed, that times backoff_multiplier, at most
 * max_interval.
 */
int64_t rules_next_poll_ms(const struct config *cfg, const char *status, bool healthy,
                           bool stale, enum circuit_state circuit);

/*
 * rules_stream_version - the version of an event stream: the breaker's
 * TRANSITIONS plus the sum of the COUNT GENERATIONS of the sessions in the
 * stream's scope. Each only grows, so the version grows with every change
 * a subscriber can see, as long as the set of sessions stays the same.
 */
uint64_t rules_stream_version(uint64_t transitions, const uint64_t *generations,
                              int count);

/* The longest event id, with its NUL. */
#define RULES_STREAM_ID_MAX 64

/*
 * rules_stream_id - the event id of a stream in OUT (RULES_STREAM_ID_MAX
 * bytes): the region's INSTANCE (16 hex digits: a restarted or another
 * gateway counts anew), its TABLE_GENERATION (which moves when sessions
 * come or go, when a sum of generations could come back to an old value)
 * and the stream's VERSION, as "INSTANCE-TABLE-VERSION". So an id never
 * stands for two different states; ids are compared whole, never as
 * numbers.
 */
void rules_stream_id(char *out, uint64_t instance, uint64_t table_generation,
                     uint64_t version);

/*
 * rules_stream_resumes - true when a client reconnecting with
 * LAST_EVENT_ID (the Last-Event-ID header, NULL when absent) has seen the
 * stream's current ID already, i.e. LAST_EVENT_ID is ID exactly, byte for
 * byte as the events carry it: it gets no initial events. Otherwise it
 * gets the current status of every session in scope.
 */
bool rules_stream_resumes(const char *last_event_id, const char *id);

#endif
