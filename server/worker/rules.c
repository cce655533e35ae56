/*
 * rules.c - pure rules of a worker's answers (see rules.h), taken out of
 * routes.c (CORS), status.c (poll.nextMs) and sse.c (event ids) so that
 * tests/unit/test_rules.c pins them down.
 */
#include "rules.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum cors_grant rules_cors(const struct config *cfg, const char *origin)
{
    if (origin == NULL || origin[0] == '\0' || strcmp(origin, "null") == 0)
        return CORS_NONE;
    for (int i = 0; i < cfg->server.cors_origin_count; i++)
        if (strcasecmp(origin, cfg->server.cors_origins[i]) == 0)
            return CORS_ORIGIN;
    return cfg->server.cors_any ? CORS_ANY : CORS_NONE;
}

bool rules_cors_varies(const struct config *cfg)
{
    return cfg->server.cors_any || cfg->server.cors_origin_count > 0;
}

int64_t rules_next_poll_ms(const struct config *cfg, const char *status, bool healthy,
                           bool stale, enum circuit_state circuit)
{
    int64_t next_ms = strcmp(status, "WORKING") == 0
                          ? cfg->frontend.authenticated_interval
                          : cfg->frontend.base_interval;

    if (stale || !healthy || circuit != CIRCUIT_CLOSED) {
        double backed_off = (double)next_ms * cfg->frontend.backoff_multiplier;
        next_ms = backed_off > (double)cfg->frontend.max_interval
                      ? cfg->frontend.max_interval
                      : (int64_t)backed_off;
    }
    return next_ms;
}

uint64_t rules_stream_version(uint64_t transitions, const uint64_t *generations,
                              int count)
{
    uint64_t v = transitions;

    for (int i = 0; i < count; i++)
        v += generations[i];
    return v;
}

void rules_stream_id(char *out, uint64_t instance, uint64_t table_generation,
                     uint64_t version)
{
    snprintf(out, RULES_STREAM_ID_MAX, "%016llx-%llu-%llu", (unsigned long long)instance,
             (unsigned long long)table_generation, (unsigned long long)version);
}

bool rules_stream_resumes(const char *last_event_id, const char *id)
{
    /* Byte for byte: anything else ("", "abc", a number, a blank more) is
     * no id of ours now, and gets the statuses. */
    return last_event_id != NULL && strcmp(last_event_id, id) == 0;
}
