/*
 * timeutil.c - monotonic and wall-clock milliseconds, ISO-8601 formatting.
 *
 * Pure functions with no state; safe in every process. See timeutil.h for
 * why two clocks are kept apart.
 */
#include "timeutil.h"

#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t time_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_real_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

struct timeval time_timeval(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    return tv;
}

char *time_format_iso(int64_t real_ms, char *buf)
{
    time_t secs = (time_t)(real_ms / 1000);
    struct tm tm;

    unsigned millis = (unsigned)((uint64_t)real_ms % 1000u);

    gmtime_r(&secs, &tm);
    if (strftime(buf, TIME_ISO_LEN, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
        snprintf(buf, TIME_ISO_LEN, "1970-01-01T00:00:00.000Z");
        return buf;
    }
    snprintf(buf + 19, TIME_ISO_LEN - 19, ".%03uZ", millis);
    return buf;
}
