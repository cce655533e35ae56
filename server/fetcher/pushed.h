/*
 * pushed.h - what WAHA pushes to the fetcher: its hold on WAHA's
 * WebSocket (events.c) and what the messages do to the cache.
 */
#ifndef WAHAGATE_PUSHED_H
#define WAHAGATE_PUSHED_H

#include <stdbool.h>

#include <event2/event.h>

#include "config.h"
#include "region.h"

/*
 * pushed_keep - called on every scheduling tick: hold the stream when
 * upstream.events is auto and this gateway calls WAHA (MAY_FETCH: alone,
 * or as the fleet's leader), let it go otherwise.
 */
void pushed_keep(struct event_base *base, const struct config *cfg, struct region *region,
                 bool may_fetch);

/* Let the stream go (the fetcher stops). */
void pushed_stop(void);

#endif
