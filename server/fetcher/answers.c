/*
 * answers.c - store what WAHA answered (see answers.h).
 *
 * DESIGN
 * The session list is the fetcher's main call: one GET
 * /api/sessions?all=true per period brings the status, me and object of
 * every session, so WAHA's load does not grow with the number of sessions.
 * It is read twice: first the names (with upstream.sessions = * they become
 * the region's session entries, region_set_sessions(); with a fixed list
 * they are looked up), then each item is stored in its entry. An item whose
 * name the region cannot hold (longer than its limit, or not UTF-8) is
 * skipped and logged once; sessions beyond server.max_sessions are counted
 * (untracked_sessions in the header) and logged once; the rest is served
 * as usual. A tracked session that WAHA does not list is absent.
 *
 * A session's details (GET /api/sessions/{name}) bring its engine, and its
 * data too. WAHA's 404 is an answer (the session does not exist), and so is
 * WAHA Core's 422 for a session other than "default" (docs/waha-api.md, 9):
 * the session is not available there, which readers are told in WAHA's
 * words.
 *
 * WAHA's /api/server/version and /api/server/status (for the clients of
 * the compat paths, which serve them) are kept as WAHA sent them, once
 * they are known to be JSON objects; so is WAHA's refusal of /health.
 *
 * The QR endpoint waits up to 15 s before its 422 when the session is no
 * longer waiting for a scan (4, 9): that 422 is an answer too (the status
 * moved on), and asks for the session's data at once instead of failing
 * readers or counting against the circuit breaker.
 */
#include "answers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"

static const unsigned char png_signature[8] = {0x89, 'P',  'N',  'G',
                                               '\r', '\n', 0x1a, '\n'};

int answers_init(struct answers *a, const struct config *cfg, struct region *region)
{
    int sessions = region_entry_count(region) - REGION_ENTRY_FIRST_SESSION;

    memset(a, 0, sizeof(*a));
    a->cfg = cfg;
    a->region = region;
    a->names = calloc((size_t)sessions, sizeof(*a->names));
    a->indices = calloc((size_t)sessions, sizeof(*a->indices));
    a->seen = calloc((size_t)region_entry_count(region), sizeof(*a->seen));
    return a->names && a->indices && a->seen ? 0 : -1;
}

void answers_free(struct answers *a)
{
    free(a->names);
    free(a->indices);
    free(a->seen);
    memset(a, 0, sizeof(*a));
}

enum outcome answers_http_error(long http)
{
    return http == 429 || http >= 500 ? OUTCOME_RETRYABLE : OUTCOME_FINAL;
}

/*========================================================================
 * The session list.
 */

/* Log once (per name, among the last 64) that an item was skipped. */
static void warn_skipped(struct answers *a, struct json_object *list, size_t i,
                         const char *why)
{
    const char *name = json_get_string(json_object_array_get_idx(list, i), "name");
    uint32_t hash = region_name_hash(name ? name : "");

    for (size_t k = 0; k < sizeof(a->warned) / sizeof(a->warned[0]); k++)
        if (a->warned[k] == hash)
            return;
    memmove(a->warned + 1, a->warned, sizeof(a->warned) - sizeof(a->warned[0]));
    a->warned[0] = hash;
    log_warn(0, "WAHA lists a session that is not tracked: %s (\"%.80s...\")", why,
             name ? name : "");
}

/* The names of LIST's sessions that are tracked into A->names (at most
 * max_sessions; the rest are counted in *BEYOND). -1 with WHY when LIST is
 * not WAHA's. */
static int read_names(struct answers *a, struct json_object *list, int *count, int *beyond,
                      char *why)
{
    int capacity = region_entry_count(a->region) - REGION_ENTRY_FIRST_SESSION;
    size_t n = waha_list_length(list);

    *count = *beyond = 0;
    for (size_t i = 0; i < n; i++) {
        switch (waha_list_item(list, i, &a->record, why)) {
        case WAHA_ITEM_INVALID: return -1;
        case WAHA_ITEM_SKIPPED: warn_skipped(a, list, i, why); break;
        case WAHA_ITEM_OK:
            if (*count < capacity && config_tracks_session(a->cfg, a->record.name))
                memcpy(a->names[(*count)++], a->record.name, REGION_NAME_MAX);
            else
                (*beyond)++;
            break;
        }
    }
    return 0;
}

/* With a fixed upstream.sessions, the entries of the listed names (-1 for
 * a session that is not tracked). */
static void find_tracked(struct answers *a, int count)
{
    if (region_lock(a->region) != 0) {
        for (int k = 0; k < count; k++)
            a->indices[k] = -1;
        return;
    }
    for (int k = 0; k < count; k++)
        a->indices[k] = region_find_session(a->region, a->names[k]);
    region_unlock(a->region);
}

/* Sessions WAHA has beyond server.max_sessions: counted, logged once. */
static void count_untracked(struct answers *a, uint64_t untracked)
{
    atomic_store(&region_header(a->region)->untracked_sessions, untracked);
    if (untracked > a->untracked_warned)
        log_warn(0,
                 "WAHA has %llu sessions more than server.max_sessions (%lld): they are "
                 "not tracked; raise server.max_sessions (applied at restart)",
                 (unsigned long long)untracked, (long long)a->cfg->server.max_sessions);
    a->untracked_warned = untracked;
}

/* Store every listed item that has an entry; a tracked session that WAHA
 * did not list is absent (fixed upstream.sessions only). */
static void store_items(struct answers *a, struct json_object *list)
{
    int64_t fetched_real = time_real_ms(), fetched_mono = time_mono_ms();
    size_t n = waha_list_length(list);
    int k = 0, capacity = region_entry_count(a->region) - REGION_ENTRY_FIRST_SESSION;
    char why[WAHA_WHY_MAX];

    memset(a->seen, 0, sizeof(*a->seen) * (size_t)region_entry_count(a->region));
    for (size_t i = 0; i < n && k < capacity; i++) {
        if (waha_list_item(list, i, &a->record, why) != WAHA_ITEM_OK ||
            !config_tracks_session(a->cfg, a->record.name))
            continue; /* as read_names() did */
        int index = a->indices[k++];
        if (index < 0)
            continue;
        a->seen[index] = true;
        store_session(a->region, a->cfg, index, &a->record, fetched_real, fetched_mono);
    }
    if (a->cfg->upstream.all_sessions)
        return;
    for (int c = 0; c < a->cfg->upstream.session_count; c++) {
        int index;
        if (region_lock(a->region) != 0)
            return;
        index = region_find_session(a->region, a->cfg->upstream.sessions[c]);
        region_unlock(a->region);
        if (index >= 0 && !a->seen[index])
            store_unlisted(a->region, a->cfg, index, a->cfg->upstream.sessions[c]);
    }
}

enum outcome answers_list(struct answers *a, const struct answer *ans, char *why)
{
    struct json_object *list;
    int count, beyond, missing = 0;

    if (ans->http != 200) {
        waha_describe_error(ans->http, ans->body, ans->len, why);
        return answers_http_error(ans->http);
    }
    if ((list = waha_list_open(ans->body, ans->len, why)) == NULL)
        return OUTCOME_RETRYABLE;
    if (read_names(a, list, &count, &beyond, why) != 0) {
        waha_list_close(list);
        return OUTCOME_RETRYABLE;
    }
    if (a->cfg->upstream.all_sessions) {
        if (region_lock(a->region) == 0) {
            missing = region_set_sessions(a->region, (const char(*)[REGION_NAME_MAX])a->names,
                                          count, a->indices, a->seen);
            region_unlock(a->region);
        }
        count_untracked(a, (uint64_t)missing + (uint64_t)beyond);
    } else {
        find_tracked(a, count);
    }
    store_items(a, list);
    waha_list_close(list);
    store_list(a->region, count + beyond);
    return OUTCOME_OK;
}

/*========================================================================
 * A session's details.
 */

/* WAHA Core refuses sessions other than "default" with this 422. */
static bool core_refuses(long http, const char *body, size_t len, char *message,
                         size_t size)
{
    char ignored[WAHA_WHY_MAX];
    struct json_object *obj;
    const char *text;

    if (http != 422 || (obj = json_parse_bounded(body, len, ignored, sizeof(ignored))) == NULL)
        return false;
    text = json_get_string(obj, "message");
    if (text != NULL && strstr(text, "only 'default' session") != NULL)
        snprintf(message, size, "%s", text);
    json_object_put(obj);
    return text != NULL && message[0] != '\0';
}

enum outcome answers_details(struct answers *a, const struct answer *ans, char *why)
{
    char refused[REGION_ERROR_MAX] = "";

    if (ans->http == 200) {
        if (waha_parse_session(ans->name, ans->body, ans->len, &a->record, why) != 0)
            return OUTCOME_RETRYABLE;
        a->record.has_engine = true; /* these are the details, engine or none */
        store_session(a->region, a->cfg, ans->entry, &a->record, time_real_ms(),
                      time_mono_ms());
        return OUTCOME_OK;
    }
    if (ans->http == 404 ||
        core_refuses(ans->http, ans->body, ans->len, refused, sizeof(refused))) {
        store_absent(a->region, a->cfg, ans->entry, ans->name, refused);
        return OUTCOME_OK;
    }
    waha_describe_error(ans->http, ans->body, ans->len, why);
    return answers_http_error(ans->http);
}

/*========================================================================
 * Health and QR codes.
 */

enum outcome answers_health(struct answers *a, const struct answer *ans, bool *use_ping,
                            char *why)
{
    char status[16];

    /* WAHA Core answers /health with 422; a session-scoped key gets 403
     * (health.controller.ts needs server rights); an old WAHA has none. */
    if (!ans->ping && (ans->http == 401 || ans->http == 403 || ans->http == 404 ||
                       ans->http == 422)) {
        /* Kept: GET /health on the gateway answers what WAHA answered. */
        store_health_refused(a->region, ans->body, ans->len);
        *use_ping = true;
        return OUTCOME_NONE;
    }
    if (waha_health_verdict(ans->ping, ans->http, ans->body, ans->len, status,
                            sizeof(status), why) >= 0) {
        store_health(a->region, ans->ping, status, ans->body, ans->len);
        return OUTCOME_OK;
    }
    return ans->http == 200 ? OUTCOME_RETRYABLE : answers_http_error(ans->http);
}

enum outcome answers_server(struct answers *a, const struct answer *ans, char *why)
{
    struct json_object *obj;
    bool object;

    if (ans->http != 200) {
        waha_describe_error(ans->http, ans->body, ans->len, why);
        return answers_http_error(ans->http);
    }
    if ((obj = json_parse_bounded(ans->body, ans->len, why, WAHA_WHY_MAX)) == NULL)
        return OUTCOME_RETRYABLE;
    object = json_object_is_type(obj, json_type_object);
    json_object_put(obj);
    if (!object || ans->len >= REGION_BODY_MAX) {
        snprintf(why, WAHA_WHY_MAX, "%s is not a JSON object of at most %d bytes",
                 ans->name, REGION_BODY_MAX - 1);
        return OUTCOME_RETRYABLE;
    }
    /* Kept as WAHA sent it: clients get WAHA's bytes. */
    store_server(a->region, ans->entry, ans->body, ans->len);
    return OUTCOME_OK;
}

static enum outcome qr_image(struct answers *a, const struct answer *ans, char *why)
{
    if (ans->len < sizeof(png_signature) || ans->len > REGION_QR_PNG_MAX ||
        memcmp(ans->body, png_signature, sizeof(png_signature)) != 0) {
        snprintf(why, WAHA_WHY_MAX, "QR image is not a PNG of at most %d bytes",
                 REGION_QR_PNG_MAX);
        return OUTCOME_RETRYABLE;
    }
    store_qr_png(a->region, ans->entry, (const unsigned char *)ans->body, ans->len);
    return OUTCOME_OK;
}

static enum outcome qr_value(struct answers *a, const struct answer *ans, char *why)
{
    struct json_object *obj = json_parse_bounded(ans->body, ans->len, why, WAHA_WHY_MAX);
    const char *value = obj ? json_get_string(obj, "value") : NULL;
    enum outcome result = OUTCOME_RETRYABLE;

    if (value != NULL && value[0] != '\0' && strlen(value) < REGION_QR_VALUE_MAX)
        result = store_qr_value(a->region, ans->entry, value) ? OUTCOME_CHAINED : OUTCOME_OK;
    else if (obj != NULL)
        snprintf(why, WAHA_WHY_MAX, "QR answer has no valid \"value\"");
    json_object_put(obj);
    return result;
}

enum outcome answers_qr(struct answers *a, const struct answer *ans, bool image, char *why)
{
    if (ans->http == 422 || ans->http == 404) {
        /* WAHA no longer waits for a scan: the session's status moved on. */
        store_qr_gone(a->region, ans->entry);
        region_want(a->region, ans->entry, DEMAND_DATA, time_mono_ms());
        return OUTCOME_OK;
    }
    if (ans->http != 200) {
        waha_describe_error(ans->http, ans->body, ans->len, why);
        return answers_http_error(ans->http);
    }
    return image ? qr_image(a, ans, why) : qr_value(a, ans, why);
}
