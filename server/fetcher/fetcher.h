/*
 * fetcher.h - the fetcher role's entry point and its bounds.
 *
 * The fetcher is the only process that calls WAHA. It decides what to
 * refresh from the demand workers record in the region, and writes what
 * WAHA answers into the region.
 */
#ifndef WAHAGATE_FETCHER_H
#define WAHAGATE_FETCHER_H

#include <stdnoreturn.h>

#include "proc.h"

/* How often the fetcher looks at demand in the region. */
#define FETCHER_TICK_MS 20
/* Largest WAHA answer read: a session object or the session list. */
#define FETCHER_BODY_MAX ((size_t)1 << 20)
/* After a failed refresh, wait 500 ms, doubling up to the entry's period. */
#define FETCHER_FIRST_BACKOFF_MS 500
/* WAHA shows a new QR code every 20 s after the first (docs/waha-api.md, 3.3). */
#define FETCHER_QR_PERIOD_MS 20000

/* fetcher_main - the entry point of the fetcher after fork(); ends in exit(). */
noreturn void fetcher_main(const struct heritage *h);

#endif
