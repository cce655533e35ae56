/*
 * cache.c - freshness, ETag and refresh rules (see cache.h). No state, no
 * I/O, no locks: callers pass in what they read from the region.
 */
#include "cache.h"

#include <stdio.h>
#include <string.h>

#include "json.h"

enum cache_verdict cache_judge(const struct cache_view *v, int64_t max_age_ms,
                               int64_t stale_limit_ms, int64_t now_ms, bool may_wait)
{
    int64_t age = cache_age_ms(v->fetched_mono_ms, now_ms);
    int64_t expired_at;

    if (v->has_data && age < max_age_ms)
        return CACHE_FRESH;
    expired_at = v->has_data ? v->fetched_mono_ms + max_age_ms : 0;
    if (may_wait && !v->upstream_down && v->attempt_done_ms <= expired_at)
        return CACHE_WAIT;
    if (!v->has_data)
        return CACHE_EMPTY;
    return age > stale_limit_ms ? CACHE_TOO_OLD : CACHE_STALE;
}

int64_t cache_age_ms(int64_t fetched_ms, int64_t now_ms)
{
    return now_ms > fetched_ms ? now_ms - fetched_ms : 0;
}

int64_t cache_max_age_seconds(int64_t max_age_ms, int64_t age_ms)
{
    return age_ms >= max_age_ms ? 0 : (max_age_ms - age_ms) / 1000;
}

size_t cache_etag(char *out, uint64_t instance, int entry, uint64_t generation,
                  bool stale)
{
    static const char hex[] = "0123456789abcdef";
    struct jbuf b;
    char id[8];

    /* W/"<instance, 8 hex digits>-<entry>-<generation>[-stale]", built
     * without printf: this is on the path of every cached answer. */
    for (int i = 7; i >= 0; i--, instance >>= 4)
        id[i] = hex[instance & 0xf];
    jbuf_init(&b, out, CACHE_ETAG_MAX);
    jbuf_raw(&b, "W/\"");
    jbuf_mem(&b, id, sizeof(id));
    jbuf_raw(&b, "-");
    jbuf_int(&b, entry);
    jbuf_raw(&b, "-");
    jbuf_uint(&b, generation);
    jbuf_raw(&b, stale ? "-stale\"" : "\"");
    return b.overflow ? 0 : b.len;
}

/* The opaque part of a tag: without W/ and blanks. */
static void opaque_tag(const char *tag, size_t len, const char **start, size_t *out_len)
{
    while (len > 0 && (*tag == ' ' || *tag == '\t')) {
        tag++;
        len--;
    }
    while (len > 0 && (tag[len - 1] == ' ' || tag[len - 1] == '\t'))
        len--;
    if (len >= 2 && tag[0] == 'W' && tag[1] == '/') {
        tag += 2;
        len -= 2;
    }
    *start = tag;
    *out_len = len;
}

bool cache_etag_matches(const char *header, const char *etag)
{
    const char *want, *p = header;
    size_t want_len;

    if (header == NULL)
        return false;
    opaque_tag(etag, strlen(etag), &want, &want_len);
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *got;
        size_t got_len;

        opaque_tag(p, len, &got, &got_len);
        if ((got_len == 1 && got[0] == '*') ||
            (got_len == want_len && memcmp(got, want, want_len) == 0))
            return true;
        if (comma == NULL)
            return false;
        p = comma + 1;
    }
}

bool cache_refresh_due(bool has_data, int64_t fetched_mono_ms, int64_t last_read_ms,
                       int64_t wanted_ms, int64_t attempt_done_ms, int64_t period_ms,
                       int64_t now_ms)
{
    int64_t ahead = period_ms * CACHE_REFRESH_AHEAD_PERMILLE / 1000;

    if (wanted_ms > attempt_done_ms)
        return true;
    if (!has_data)
        return false;
    /* Hot: read since the last fetch and since the last attempt, so that a
     * WAHA that keeps failing is not called for an entry nobody reads. */
    return last_read_ms >= fetched_mono_ms && last_read_ms >= attempt_done_ms &&
           cache_age_ms(fetched_mono_ms, now_ms) >= ahead;
}

int64_t cache_pushed_max_age(int64_t base_ms, int64_t safety_ms, int64_t pushed_ms,
                             int64_t fetched_ms, int64_t stream_since_ms, int64_t now_ms)
{
    if (pushed_ms != 0 && now_ms - pushed_ms < safety_ms)
        return safety_ms;
    if (stream_since_ms != 0 && fetched_ms >= stream_since_ms)
        return safety_ms;
    return base_ms;
}
