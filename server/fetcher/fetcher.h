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
/* Answers are read into a buffer of this size first, grown as needed... */
#define FETCHER_BODY_FIRST ((size_t)64 << 10)
/* ...up to this bound for one session, its QR code or WAHA's health... */
#define FETCHER_BODY_MAX ((size_t)1 << 20)
/* ...and this one for the session list of a region of ENTRIES entries. */
#define FETCHER_LIST_MAX(entries) (FETCHER_BODY_MAX + (size_t)(entries) * 16384)
/* /health refused (WAHA Core, a scoped key): /ping instead, for this long. */
#define FETCHER_HEALTH_RETRY_MS 3600000
/* After a failed refresh, wait 500 ms, doubling up to the entry's period. */
#define FETCHER_FIRST_BACKOFF_MS 500

/* fetcher_main - the entry point of the fetcher after fork(); ends in exit(). */
noreturn void fetcher_main(const struct heritage *h);

#endif
