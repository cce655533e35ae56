/*
 * worker.h - the worker role's entry point and its bounds.
 *
 * A worker serves HTTP on the listen sockets it inherited, from the region
 * only; it never opens a connection to WAHA.
 */
#ifndef WAHAGATE_WORKER_H
#define WAHAGATE_WORKER_H

#include <stdnoreturn.h>

#include "proc.h"

/* How often parked requests look at the region again. */
#define WORKER_PARK_TICK_MS 10
/* Parked requests per worker; beyond this a request is answered at once. */
#define WORKER_MAX_PARKED 4096
/* While draining, a connection without a request for this long is closed. */
#define WORKER_DRAIN_IDLE_MS 500
/* After SIGTERM, at most this long to finish replies already started. */
#define WORKER_DRAIN_MS 3000

/* worker_main - the entry point of a worker after fork(); ends in exit(). */
noreturn void worker_main(const struct heritage *h);

#endif
