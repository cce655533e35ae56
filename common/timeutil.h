/*
 * timeutil.h - the two clocks wahagate uses, in milliseconds.
 *
 * Ages and deadlines use CLOCK_MONOTONIC, which is the same clock in every
 * process of the machine, so a time stored in the shared region by the
 * fetcher can be compared with "now" in a worker. Timestamps shown to people
 * (fetchedAt, log lines) use CLOCK_REALTIME, formatted as ISO-8601 UTC with
 * milliseconds, the way JavaScript's Date.toISOString() prints them.
 */
#ifndef WAHAGATE_TIMEUTIL_H
#define WAHAGATE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Length of "2026-11-29T10:00:00.000Z" plus the terminating NUL. */
#define TIME_ISO_LEN 25

int64_t time_mono_ms(void);
int64_t time_mono_us(void);
int64_t time_real_ms(void);

/*
 * time_format_iso - write REAL_MS (ms since the epoch) as
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" into BUF (at least TIME_ISO_LEN bytes).
 * Returns BUF.
 */
char *time_format_iso(int64_t real_ms, char *buf);

/* time_timeval - MS milliseconds as a struct timeval (for libevent timers). */
struct timeval time_timeval(int64_t ms);

#endif
