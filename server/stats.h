/*
 * stats.h - `wahagate --stats`: read the running instance's counters from
 * its region, like varnishstat, without HTTP and without the cache lock.
 */
#ifndef WAHAGATE_STATS_H
#define WAHAGATE_STATS_H

#include "config.h"

/*
 * stats_print - attach CFG's region read-only and print the counters of
 * every process slot and their sums. Returns the exit code: 0, or 1 when no
 * instance runs with server.shm_name.
 */
int stats_print(const struct config *cfg);

#endif
