/*
 * routes.h - the HTTP API of wahagate, free of any transport type.
 *
 * A worker calls routes_handle() for each request with a struct
 * http_request_view and sends the struct http_response it gets back. A
 * handler that needs data the fetcher has not brought yet answers
 * ROUTE_WAIT; the worker parks the request and calls routes_handle() again
 * when the region changes or the wait is over (then with may_wait false).
 */
#ifndef WAHAGATE_ROUTES_H
#define WAHAGATE_ROUTES_H

#include "config.h"
#include "http.h"
#include "json.h"
#include "region.h"

enum route_result {
    ROUTE_DONE,  /* RESP is the answer */
    ROUTE_WAIT,  /* park the request and ask again */
    ROUTE_STREAM /* hand the request to sse_subscribe() with RESP's headers */
};

/*
 * routes_init - remember the configuration, the region and the stat slot of
 * the calling worker; allocate the worker's copies of the entries. Returns
 * 0 or -1 (logged). Worker processes only, after fork.
 */
int routes_init(const struct config *cfg, struct region *region,
                struct region_proc *slot);

/* routes_handle - answer REQ into RESP, or ROUTE_WAIT (see above). */
enum route_result routes_handle(const struct http_request_view *req,
                                struct http_response *resp);

/*
 * routes_render_status - append the status object of session entry INDEX,
 * as /api/waha/status would serve it at NOW (without waiting), to B. For
 * the event stream (sse.c). False when INDEX is not a session.
 */
bool routes_render_status(int index, int64_t now, struct jbuf *b);

/*
 * routes_note_reader - a reader that does not ask (an event stream) watches
 * session entry INDEX (ONE_SESSION: that session alone, as a frontend of
 * one session does): record the read, and ask the fetcher for fresh data
 * when the entry is cold, as a request would.
 */
void routes_note_reader(int index, bool one_session, int64_t now);

/* routes_free - release what routes_init() allocated. */
void routes_free(void);

#endif
