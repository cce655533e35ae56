/*
 * pushed.c - what WAHA pushes: the fetcher's hold on WAHA's WebSocket, and
 * what its messages do (see pushed.h).
 *
 * DESIGN
 * With upstream.events = auto, the gateway that calls WAHA (alone, or the
 * fleet's leader; fleet.c) keeps one WebSocket to WAHA's /ws, subscribed
 * to session.status (events.c does the connecting, reconnecting and
 * framing). Each message is an event envelope, as a webhook's body, and
 * takes the webhooks' path: waha_parse_event(), then store_event(), which
 * orders events and drops duplicates. An event of a session the region
 * does not hold may announce a new one: with upstream.sessions = * the
 * list is asked for again.
 *
 * The stream's state goes to the region header, where the workers show it
 * and the scheduler reads it: while the stream is up, sessions fetched
 * since it came up are polled only every webhook.safety_interval
 * (schedule_session_period()). WAHA replays nothing, so each time the
 * stream comes up one list call catches up on what changed meanwhile.
 * A follower of a fleet holds no stream: the leader's entries carry it.
 */
#include "pushed.h"

#include <stdatomic.h>

#include "events.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "waha.h"

static struct {
    const struct config *cfg;
    struct region *region;
    bool started;  /* the WebSocket to WAHA's events is held */
    bool unusable; /* events_start() refused upstream.url: polling only */
} p;

/* A message on WAHA's WebSocket: an event envelope, as a webhook's body. */
static void on_event_message(const char *text, size_t len, void *arg)
{
    struct region_header *h = region_header(p.region);
    struct waha_event ev;
    char why[WAHA_WHY_MAX];

    (void)arg;
    atomic_fetch_add(&h->events_received, 1);
    switch (waha_parse_event(text, len, &ev, why)) {
    case WAHA_EVENT_STATUS:
        if (store_event(p.region, p.cfg, &ev, SOURCE_EVENTS) == STORE_EVENT_UNTRACKED &&
            p.cfg->upstream.all_sessions) /* maybe a new session: list again */
            region_want(p.region, REGION_ENTRY_LIST, DEMAND_DATA, time_mono_ms());
        break;
    case WAHA_EVENT_BAD:
        log_debug("ignored a message on WAHA's WebSocket: %s", why);
        break;
    case WAHA_EVENT_IGNORED:
    default: break;
    }
}

/* The stream's state, for the stats, the workers and the scheduler: while
 * it is up, pushed events keep the sessions current (schedule_session_period()). */
static void on_event_state(enum events_state state, const char *why, void *arg)
{
    struct region_header *h = region_header(p.region);

    (void)why; /* events.c logs each change, with its reason */
    (void)arg;
    atomic_store(&h->events, (uint32_t)state);
    atomic_store(&h->events_since_ms, state == EVENTS_CONNECTED ? time_mono_ms() : 0);
    /* WAHA does not replay what changed while no stream was up: one list
     * call catches up, then the stream keeps the cache current. */
    if (state == EVENTS_CONNECTED)
        region_want(p.region, REGION_ENTRY_LIST, DEMAND_DATA, time_mono_ms());
}

void pushed_keep(struct event_base *base, const struct config *cfg, struct region *region,
                 bool may_fetch)
{
    bool wanted = cfg->upstream.events && may_fetch && !p.unusable;
    struct events_options opt;

    p.cfg = cfg;
    p.region = region;
    if (wanted == p.started)
        return;
    if (!wanted) {
        pushed_stop();
        return;
    }
    events_options_defaults(&opt);
    opt.upstream_url = cfg->upstream.url;
    opt.api_key = cfg->upstream.api_key;
    p.started = events_start(base, &opt, on_event_message, on_event_state, NULL) == 0;
    /* Options it cannot use (logged by events_start()): polling only. */
    p.unusable = !p.started;
}

void pushed_stop(void)
{
    if (p.started)
        events_stop();
    p.started = false;
}
