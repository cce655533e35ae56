/*
 * fleet.h - several gateways, one fetcher: the Redis side of the fetcher.
 *
 * With redis.url set, the fetchers of all gateways that share a Redis elect
 * one leader with a lease; only the leader calls WAHA. Whatever a fetcher
 * stores is written to Redis and published, and every other gateway copies
 * it into its own region, so workers everywhere still serve from local
 * shared memory. Followers pass their readers' demand to the leader. When
 * Redis cannot be reached, every gateway fetches on its own, as a single
 * host does, until Redis is back.
 */
#ifndef WAHAGATE_FLEET_H
#define WAHAGATE_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "region.h"
#include "schedule.h"

/* fleet_start - connect to Redis when CFG has a redis.url. 0 or -1 (logged). */
int fleet_start(struct event_base *base, const struct config *cfg, struct region *region);

/* fleet_may_fetch - may this gateway call WAHA now? (Not when following.) */
bool fleet_may_fetch(void);

/*
 * fleet_forward - a follower's TARGET (of entry INDEX) is due: ask the
 * leader to refresh it (WANTED: a reader waits; else it is read and ahead
 * of expiry). Rate-limited per entry and target.
 */
void fleet_forward(enum target_kind target, int index, bool wanted, int64_t now);

/*
 * fleet_tick - share what changed in the region since the last tick: the
 * leader everything it stored, a follower the webhooks its workers applied.
 */
void fleet_tick(int64_t now);

/* fleet_stop - release the lease (so another gateway takes over at once). */
void fleet_stop(void);

#endif
