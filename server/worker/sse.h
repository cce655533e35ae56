/*
 * sse.h - Server-Sent Events: GET /api/waha/events streams held open in a
 * worker's event loop.
 *
 * routes.c decides whether a request may have a stream (and of which
 * sessions); the worker then hands the request to sse_subscribe(), and from
 * there on this module writes to it: the current status object of each
 * session in scope at once, then an event each time one of them changes,
 * and a comment every SSE_HEARTBEAT_MS so proxies keep the connection.
 */
#ifndef WAHAGATE_SSE_H
#define WAHAGATE_SSE_H

#include <stdbool.h>

#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "http.h"
#include "region.h"

#define SSE_TICK_MS 25
#define SSE_HEARTBEAT_MS 15000
/* A subscriber with more unsent bytes than this is too slow: dropped. */
#define SSE_MAX_BUFFERED ((size_t)64 * 1024)

/* sse_init - the worker's stream state and its timer. 0, or -1 (logged). */
int sse_init(struct event_base *base, const struct config *cfg, struct region *region,
             struct region_proc *slot);

/*
 * sse_subscribe - turn connection C into an event stream of SESSION (an
 * entry index, or -1 for every tracked session that KEY may see; KEY NULL:
 * every one), answered with the headers
 * of RESP (CORS) and resumed after LAST_EVENT_ID (may be NULL). Returns 0,
 * or -1 when the worker holds its maximum of streams (the caller answers 503).
 */
int sse_subscribe(struct conn *c, int session, const struct auth_key *key,
                  const char *last_event_id, const struct http_response *resp);

/* sse_forget - the client of stream C went away. */
void sse_forget(struct conn *c);

/* sse_count - open streams of this worker. */
int sse_count(void);

/* sse_close_all - end every stream with a short retry hint: the clients
 * reconnect (to another worker) and resume by Last-Event-ID. */
void sse_close_all(void);

void sse_free(void);

#endif
