/*
 * store_fixture.h - what the tests of common/store.c (test_store.c,
 * test_store_events.c) and of the fetcher's answers (test_answers.c)
 * share, on top of region_fixture.h: a configuration with the defaults, a
 * region tracking a few sessions, WAHA's session objects as
 * waha_parse_session() makes them, session.status events as
 * waha_parse_event() makes them, and the QR slot of a session.
 *
 * Events get increasing envelope timestamps from the wall clock (store.c
 * orders them by timestamp, and ignores those older than polled data), so
 * that a test never depends on the order of two events by accident. Include
 * it once, after region_fixture.h.
 */
#ifndef WAHAGATE_TESTS_STORE_FIXTURE_H
#define WAHAGATE_TESTS_STORE_FIXTURE_H

#include "config.h"
#include "region.h"
#include "store.h"
#include "timeutil.h"
#include "waha.h"

static struct config store_cfg;
static struct session_record rec;
static struct waha_event hook;
static int64_t next_ts;

#define ME_A "{\"id\":\"11111111111@c.us\",\"pushName\":\"Shop\"}"
#define ME_B "{\"id\":\"22222222222@c.us\",\"pushName\":\"Other\"}"

static const char one_default[1][REGION_NAME_MAX] = {"default"};

/* A region (tag TAG) tracking the COUNT names TRACKED; the first's index. */
static inline int store_region(const char *tag, const char (*tracked)[REGION_NAME_MAX],
                               int count)
{
    config_defaults(&store_cfg);
    assert_int_equal(store_cfg.backend.flap_hold, 5000);
    assert_int_equal(region_create(&reg, make_name(tag), TEST_SESSIONS), 0);
    next_ts = time_real_ms();
    return track(tracked, count);
}

/* What waha_parse_session() or waha_list_item() would make of WAHA's
 * session object: a list item (no engine), or with ENGINE the details. */
static inline const struct session_record *make_rec_engine(const char *name,
                                                           const char *status,
                                                           const char *me_json,
                                                           const char *engine)
{
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.name, sizeof(rec.name), "%s", name);
    snprintf(rec.status, sizeof(rec.status), "%s", status);
    snprintf(rec.me_json, sizeof(rec.me_json), "%s", me_json);
    rec.body_len = (size_t)snprintf(rec.body, sizeof(rec.body),
                                    "{\"name\":\"%s\",\"status\":\"%s\",\"config\":{},"
                                    "\"me\":%s}",
                                    name, status, me_json);
    if (engine != NULL) {
        rec.has_engine = true;
        rec.engine_len =
            (size_t)snprintf(rec.engine_json, sizeof(rec.engine_json), "%s", engine);
    }
    return &rec;
}

static inline const struct session_record *make_rec(const char *name, const char *status,
                                                    const char *me_json)
{
    return make_rec_engine(name, status, me_json, NULL);
}

/* WAHA's session list said REC about entry I, just now. */
static inline void poll(int i, const struct session_record *r)
{
    store_session(&reg, &store_cfg, i, r, time_real_ms(), time_mono_ms());
}

/* A session.status event; ID "" for none (an all-zero digest), else a
 * digest of its bytes; the next envelope timestamp. */
static inline const struct waha_event *make_hook(const char *id, const char *session,
                                                 const char *status, const char *me_json)
{
    memset(&hook, 0, sizeof(hook));
    for (size_t i = 0; id[i] != '\0'; i++)
        hook.id_digest[i % REGION_DIGEST_LEN] ^= (uint8_t)(id[i] + 31 * i + 1);
    snprintf(hook.event, sizeof(hook.event), "session.status");
    snprintf(hook.session, sizeof(hook.session), "%s", session);
    snprintf(hook.status, sizeof(hook.status), "%s", status);
    if (me_json != NULL) {
        snprintf(hook.me_json, sizeof(hook.me_json), "%s", me_json);
        hook.has_me = true;
    }
    hook.timestamp_ms = ++next_ts;
    return &hook;
}

static inline enum store_event_result push(const struct waha_event *ev)
{
    return store_event(&reg, &store_cfg, ev, SOURCE_WEBHOOK);
}

/* Entry I's QR slot, or NULL (takes the lock). */
static inline struct region_qr *qr_of(int i)
{
    struct region_qr *q;

    assert_int_equal(region_lock(&reg), 0);
    q = region_qr_of(&reg, i);
    region_unlock(&reg);
    return q;
}

static inline struct entry_body *body_of(int i)
{
    return region_body(&reg, i);
}

#endif
