/*
 * test_store.c - unit tests for common/store.c, the code through which the
 * fetcher and the workers write the region: WAHA's session answers and its
 * 404s, failures, webhooks (duplicates, untracked sessions, the demand they
 * record, flap smoothing), the release of held statuses, and QR codes.
 *
 * Why: store.c decides what a client sees and when it changes. A generation
 * that moves when nothing changed defeats ETags and wakes every SSE client;
 * one that does not move hides a change; a status published too early
 * makes every dashboard flash "disconnected" on a reconnect; a retried
 * webhook applied twice, or a stale QR served after the session moved on,
 * shows users what is no longer true.
 *
 * The regions, their names, the log file and each test's setup and
 * teardown are region_fixture.h's (shared with test_region.c). store.c
 * reads the clocks itself, so the tests move a held change's start back by
 * flap_hold instead of sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "region.h"
#include "store.h"
#include "timeutil.h"

#include "region_fixture.h"

/*========================================================================
 * A region with sessions, WAHA's answers and webhooks as the callers of
 * store.c make them
 */

static struct config store_cfg;
static struct session_record rec;

/* A region tracking NAMES (COUNT of them); the index of the first. */
static int store_region(const char *tag, const char (*tracked)[REGION_NAME_MAX],
                        int count)
{
    const char *name = make_name(tag);
    int index;

    config_defaults(&store_cfg);
    assert_int_equal(store_cfg.backend.flap_hold, 5000);
    assert_int_equal(region_create(&reg, name), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_set_sessions(&reg, tracked, count), 0);
    index = region_find_session(&reg, tracked[0]);
    region_unlock(&reg);
    assert_true(index >= REGION_ENTRY_FIRST_SESSION);
    return index;
}

/* What waha_parse_session() would make of WAHA's session object. */
static const struct session_record *make_rec(const char *name, const char *status,
                                             const char *me_json)
{
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.name, sizeof(rec.name), "%s", name);
    snprintf(rec.status, sizeof(rec.status), "%s", status);
    snprintf(rec.me_json, sizeof(rec.me_json), "%s", me_json);
    rec.body_len = (size_t)snprintf(rec.body, sizeof(rec.body),
                                    "{\"name\":\"%s\",\"status\":\"%s\",\"config\":{},"
                                    "\"me\":%s}",
                                    name, status, me_json);
    return &rec;
}

static struct waha_event hook;

static const struct waha_event *make_hook(const char *id, const char *session,
                                          const char *status, const char *me_json)
{
    memset(&hook, 0, sizeof(hook));
    snprintf(hook.id, sizeof(hook.id), "%s", id);
    snprintf(hook.event, sizeof(hook.event), "session.status");
    snprintf(hook.session, sizeof(hook.session), "%s", session);
    snprintf(hook.status, sizeof(hook.status), "%s", status);
    if (me_json != NULL) {
        snprintf(hook.me_json, sizeof(hook.me_json), "%s", me_json);
        hook.has_me = true;
    }
    hook.timestamp_ms = REAL0;
    return &hook;
}

#define ME_A "{\"id\":\"11111111111@c.us\",\"pushName\":\"Shop\"}"
#define ME_B "{\"id\":\"22222222222@c.us\",\"pushName\":\"Other\"}"

static const char one_default[1][REGION_NAME_MAX] = {"default"};

static void test_store_session(void **state)
{
    int i = store_region("stsession", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    int64_t mono0 = time_mono_ms(), real0 = time_real_ms();
    uint64_t gen = e->generation, seq = e->seq;

    (void)state;
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    assert_true(d->has_data);
    assert_true(d->healthy);
    assert_true(d->exists);
    assert_int_equal(d->source, SOURCE_POLL);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "WORKING");
    assert_string_equal(d->me_json, ME_A);
    assert_string_equal(d->body, rec.body);
    assert_int_equal(d->body_len, rec.body_len);
    assert_string_equal(d->last_error, "");
    assert_true(d->fetched_mono_ms >= mono0);
    assert_true(d->fetched_real_ms >= real0);
    assert_true(d->last_success_real_ms >= real0);
    assert_true(d->changed_at_real_ms >= real0);
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq, seq + 2);
    assert_int_equal(region_header(&reg)->lock_owner_pid, 0); /* unlocked */

    /* The same answer again: a refresh, not a change. */
    gen = e->generation;
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    assert_int_equal(e->generation, gen);
    assert_int_equal(e->seq % 2, 0);

    /* Another me: a change. */
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_B));
    assert_int_equal(e->generation, gen + 1);
    assert_string_equal(d->me_json, ME_B);

    /* A name that is no longer the entry's: nothing is written. */
    gen = e->generation;
    seq = e->seq;
    store_session(&reg, &store_cfg, i, "other", make_rec("other", "FAILED", "null"));
    assert_int_equal(e->seq, seq);
    assert_int_equal(e->generation, gen);
    assert_string_equal(d->status, "WORKING");
}

static void test_store_session_404(void **state)
{
    int i = store_region("st404", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    uint64_t gen;

    (void)state;
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "STARTING", ME_A));
    gen = e->generation;

    store_session(&reg, &store_cfg, i, "default", NULL);
    assert_true(d->has_data);
    assert_true(d->healthy); /* WAHA answered */
    assert_false(d->exists);
    assert_string_equal(d->status, "UNKNOWN");
    assert_string_equal(d->raw_status, "UNKNOWN");
    assert_string_equal(d->me_json, "null");
    assert_int_equal(d->body_len, 0);
    assert_string_equal(d->body, "");
    assert_string_equal(d->last_error, "WAHA has no session \"default\"");
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq % 2, 0);

    /* The session comes back. */
    store_session(&reg, &store_cfg, i, "default",
                  make_rec("default", "STARTING", "null"));
    assert_true(d->exists);
    assert_string_equal(d->status, "STARTING");
    assert_string_equal(d->last_error, "");
    assert_int_equal(e->generation, gen + 2);
}

static void test_store_session_404_repeated(void **state)
{
    int i = store_region("st404again", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    uint64_t gen;

    (void)state;
    store_session(&reg, &store_cfg, i, "default", NULL);
    assert_false(e->d.exists);
    gen = e->generation;
    /*
     * WAHA answering 404 again is the same answer, so nothing a client
     * sees changes and the generation must stay (store.h: "bumps the
     * entry's generation only when something a client sees changed"). Once
     * a bug: store_session() computed `changed` with
     * `d->last_error[0] != '\0'`, and a 404 itself leaves last_error set
     * ("WAHA has no session ..."), so every later 404 counted as a change:
     * a new ETag and an SSE event on every refresh of an unknown session.
     */
    store_session(&reg, &store_cfg, i, "default", NULL);
    assert_int_equal(e->generation, gen);
}

static void test_store_session_404_while_working(void **state)
{
    int i = store_region("st404work", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;

    (void)state;
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    /* A 404 is a change away from WORKING like any other: it is held for
     * flap_hold, while exists and me already say the session is gone. */
    store_session(&reg, &store_cfg, i, "default", NULL);
    assert_false(d->exists);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "UNKNOWN");
    assert_true(d->pending_since_mono_ms > 0);
    assert_string_equal(d->me_json, "null");

    /* A 404 that lasts flap_hold is published by the next poll (the start of
     * the hold is moved back by flap_hold instead of sleeping). */
    assert_int_equal(region_lock(&reg), 0);
    d->pending_since_mono_ms -= store_cfg.backend.flap_hold;
    region_unlock(&reg);
    store_session(&reg, &store_cfg, i, "default", NULL);
    assert_string_equal(d->status, "UNKNOWN");
    assert_true(d->pending_since_mono_ms == 0);
}

static void test_store_failure(void **state)
{
    int i = store_region("stfail", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    uint64_t gen, seq;

    (void)state;
    /* Before any data. */
    gen = e->generation;
    store_failure(&reg, i, "connect: Connection refused");
    assert_false(d->has_data);
    assert_false(d->healthy);
    assert_string_equal(d->last_error, "connect: Connection refused");
    assert_int_equal(e->generation, gen + 1);

    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    assert_true(d->healthy);
    assert_string_equal(d->last_error, "");

    /* The data is kept; healthy and the reason change. */
    gen = e->generation;
    seq = e->seq;
    store_failure(&reg, i, "HTTP 500: Session closed");
    assert_true(d->has_data);
    assert_true(d->exists);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->me_json, ME_A);
    assert_string_equal(d->body, rec.body);
    assert_false(d->healthy);
    assert_string_equal(d->last_error, "HTTP 500: Session closed");
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq, seq + 2);

    /* The same failure again: no change. */
    store_failure(&reg, i, "HTTP 500: Session closed");
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq, seq + 4);

    /* Another reason: a change. */
    store_failure(&reg, i, "timeout after 5000 ms");
    assert_int_equal(e->generation, gen + 2);
    assert_string_equal(d->last_error, "timeout after 5000 ms");

    /* A success clears it. */
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    assert_true(d->healthy);
    assert_string_equal(d->last_error, "");
    assert_int_equal(e->generation, gen + 3);
}

static void test_store_webhook(void **state)
{
    static const char tracked[2][REGION_NAME_MAX] = {"default", "second"};
    int i = store_region("sthook", tracked, 2);
    struct region_entry *e = region_entry(&reg, i);
    struct region_qr *q = region_qr(&reg, i);
    struct entry_data *d = &e->d;
    int64_t mono0 = time_mono_ms();
    uint64_t gen, seq;

    (void)state;
    gen = e->generation;
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_1", "default", "WORKING", ME_A),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_true(d->has_data);
    assert_true(d->exists);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "WORKING");
    assert_string_equal(d->me_json, ME_A);
    assert_int_equal(d->source, SOURCE_WEBHOOK);
    assert_true(d->webhook_mono_ms >= mono0);
    assert_true(d->fetched_mono_ms >= mono0);
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq % 2, 0);
    /* The session's details are wanted from WAHA now; no QR is. */
    assert_true(e->wanted_ms >= mono0);
    assert_int_equal(q->wanted_ms, 0);
    assert_int_equal(region_header(&reg)->lock_owner_pid, 0);

    /* WAHA retries the same envelope: applied once. */
    gen = e->generation;
    seq = e->seq;
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_1", "default", "FAILED", "null"),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_DUPLICATE);
    assert_int_equal(e->seq, seq);
    assert_int_equal(e->generation, gen);
    assert_string_equal(d->raw_status, "WORKING");

    /* A session this gateway does not track. */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_2", "elsewhere", "WORKING", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_UNTRACKED);
    assert_int_equal(e->seq, seq);

    /* No id: applied every time. Without me, me is kept. */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("", "default", "WORKING", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("", "default", "WORKING", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_int_equal(e->generation, gen); /* the same status again */
    assert_string_equal(d->me_json, ME_A);
    assert_true(e->seq > seq);

    /* me null (logged out) replaces me. */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_3", "default", "WORKING", "null"),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->me_json, "null");
    assert_int_equal(e->generation, gen + 1);

    /* The other session's entry was never touched. */
    {
        struct region_entry *e2 = region_entry(&reg, region_find_session(&reg, "second"));
        assert_false(e2->d.has_data);
        assert_int_equal(e2->wanted_ms, 0);
    }
}

static void test_store_webhook_wants_after_last_attempt(void **state)
{
    int i = store_region("sthookwant", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct region_qr *q = region_qr(&reg, i);
    int64_t future = time_mono_ms() + 1000000;

    (void)state;
    /* The fetcher's last attempt ended "later" than now (clocks of two
     * processes): the want must still be newer than that attempt. */
    atomic_store(&e->attempt_done_ms, future);
    atomic_store(&q->attempt_done_ms, future + 10);
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_q", "default", "SCAN_QR_CODE", "null"),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_true(e->wanted_ms == future + 1);
    /* SCAN_QR_CODE announces a new QR: it is wanted too. */
    assert_true(q->wanted_ms == future + 11);
}

static void test_store_webhook_untracked_then_tracked(void **state)
{
    static const char both[2][REGION_NAME_MAX] = {"default", "newone"};
    int i = store_region("sthooknew", one_default, 1), inew;

    (void)state;
    (void)i;
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_n", "newone", "WORKING", ME_A),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_UNTRACKED);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_set_sessions(&reg, both, 2), 0);
    inew = region_find_session(&reg, "newone");
    region_unlock(&reg);
    /*
     * An event for a session that was not tracked is not recorded: delivered
     * again once the session is tracked (routes.c asks for a new session
     * list on UNTRACKED with sessions = *), it is applied.
     */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_n", "newone", "WORKING", ME_A),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_true(region_entry(&reg, inew)->d.has_data);
    assert_string_equal(region_entry(&reg, inew)->d.status, "WORKING");
}

static void test_store_webhook_flap_hold(void **state)
{
    int i = store_region("sthookflap", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    int64_t mono0;
    uint64_t gen;

    (void)state;
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    gen = e->generation;

    /* WORKING -> STARTING by webhook: held like a polled one. */
    mono0 = time_mono_ms();
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("w1", "default", "STARTING", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "STARTING");
    assert_true(d->pending_since_mono_ms >= mono0);
    assert_int_equal(d->source, SOURCE_WEBHOOK);
    assert_int_equal(e->generation, gen); /* nothing a client sees changed */

    /* Not over yet: nothing released. */
    store_release_held(&reg, &store_cfg, i);
    assert_string_equal(d->status, "WORKING");
    assert_int_equal(e->generation, gen);

    /* Back to WORKING within the hold: the flap is never shown. */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("w2", "default", "WORKING", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_true(d->pending_since_mono_ms == 0);
    assert_int_equal(e->generation, gen);

    /* Away again, and this time it lasts (the hold's start is moved back
     * by flap_hold instead of sleeping): the next webhook saying so
     * publishes it. */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("w3", "default", "FAILED", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_int_equal(region_lock(&reg), 0);
    d->pending_since_mono_ms -= store_cfg.backend.flap_hold;
    region_unlock(&reg);
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("w3b", "default", "FAILED", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "FAILED");
    assert_true(d->pending_since_mono_ms == 0);
    assert_int_equal(e->generation, gen + 1);

    /* A webhook back to WORKING is published at once. */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("w4", "default", "WORKING", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_int_equal(e->generation, gen + 2);

    /* With flap_hold 0 nothing is held. */
    store_cfg.backend.flap_hold = 0;
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("w5", "default", "STARTING", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "STARTING");
    assert_int_equal(e->generation, gen + 3);
}

static void test_store_release_held(void **state)
{
    int i = store_region("strelease", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct region_qr *q = region_qr(&reg, i);
    struct entry_data *d = &e->d;
    static unsigned char png[64];
    int64_t real0;
    uint64_t gen;

    (void)state;
    memset(png, 0x55, sizeof(png));
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    /* Nothing held: nothing to release, no generation change. */
    gen = e->generation;
    store_release_held(&reg, &store_cfg, i);
    assert_int_equal(e->generation, gen);
    assert_string_equal(d->status, "WORKING");

    /* WORKING -> SCAN_QR_CODE (logged out on the phone) is held; the new QR
     * is fetched meanwhile. */
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("r1", "default", "SCAN_QR_CODE", "null"),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "SCAN_QR_CODE");
    assert_true(store_qr_value(&reg, i, "2@relogin"));
    store_qr_png(&reg, i, png, sizeof(png));
    assert_true(q->d.has_qr);
    gen = e->generation;

    /* Not over: nothing. */
    store_release_held(&reg, &store_cfg, i);
    assert_string_equal(d->status, "WORKING");
    assert_int_equal(e->generation, gen);

    /*
     * Over (the hold's start moved back by flap_hold): the fetcher's timer
     * publishes the held status. With the entry_release_held_status() bug
     * of old (see test_release_held_status in test_region_flap.c) the status
     * published was "", raw_status became "", and because "" is not
     * SCAN_QR_CODE store_release_held() also dropped the QR the user was
     * about to scan.
     */
    assert_int_equal(region_lock(&reg), 0);
    d->pending_since_mono_ms -= store_cfg.backend.flap_hold;
    region_unlock(&reg);
    real0 = time_real_ms();
    store_release_held(&reg, &store_cfg, i);
    assert_string_equal(d->status, "SCAN_QR_CODE");
    assert_string_equal(d->raw_status, "SCAN_QR_CODE");
    assert_true(d->pending_since_mono_ms == 0);
    assert_true(d->changed_at_real_ms >= real0);
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq % 2, 0);
    assert_true(q->d.has_qr);
    assert_string_equal(q->d.value, "2@relogin");
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static void test_store_qr(void **state)
{
    int i = store_region("stqr", one_default, 1);
    struct region_qr *q = region_qr(&reg, i);
    static unsigned char png1[300], png2[400];
    static char long_value[REGION_QR_VALUE_MAX + 1];
    uint64_t gen, seq;
    int64_t mono0 = time_mono_ms();

    (void)state;
    memset(png1, 0x11, sizeof(png1));
    memset(png2, 0x22, sizeof(png2));
    memcpy(png1, png_sig, sizeof(png_sig));
    memcpy(png2, png_sig, sizeof(png_sig));

    /* The value comes first: no QR to show until its image is there. */
    gen = q->generation;
    assert_true(store_qr_value(&reg, i, "2@first,code=="));
    assert_false(q->d.has_qr);
    assert_string_equal(q->d.value, "2@first,code==");
    assert_int_equal(q->d.png_len, 0);
    assert_true(q->d.fetched_mono_ms >= mono0);
    assert_int_equal(q->generation, gen + 1);
    assert_int_equal(q->seq % 2, 0);

    store_qr_png(&reg, i, png1, sizeof(png1));
    assert_true(q->d.has_qr);
    assert_int_equal(q->d.png_len, sizeof(png1));
    assert_memory_equal(q->d.png, png1, sizeof(png1));
    assert_int_equal(q->generation, gen + 2);

    /* The same value again: the image is still good, nothing changes. */
    assert_false(store_qr_value(&reg, i, "2@first,code=="));
    assert_true(q->d.has_qr);
    assert_int_equal(q->d.png_len, sizeof(png1));
    store_qr_png(&reg, i, png1, sizeof(png1));
    assert_int_equal(q->generation, gen + 2);

    /* A new code: the last image is served until the new one is fetched,
     * so readers never go without a QR during a rotation. */
    assert_true(store_qr_value(&reg, i, "2@second,code=="));
    assert_true(q->d.has_qr);
    assert_false(q->d.png_current);
    assert_int_equal(q->d.png_len, sizeof(png1));
    assert_string_equal(q->d.value, "2@second,code==");
    assert_int_equal(q->generation, gen + 3);
    /* ...and asking again still says the image is needed. */
    assert_true(store_qr_value(&reg, i, "2@second,code=="));
    store_qr_png(&reg, i, png2, sizeof(png2));
    assert_true(q->d.has_qr);
    assert_true(q->d.png_current);
    assert_int_equal(q->d.png_len, sizeof(png2));
    assert_int_equal(q->generation, gen + 4);

    /* What does not fit is refused without a write. */
    seq = q->seq;
    store_qr_png(&reg, i, png2, REGION_QR_PNG_MAX + 1);
    memset(long_value, 'v', REGION_QR_VALUE_MAX);
    assert_false(store_qr_value(&reg, i, long_value));
    assert_int_equal(q->seq, seq);
    assert_string_equal(q->d.value, "2@second,code==");
    assert_int_equal(q->d.png_len, sizeof(png2));

    /* No QR any more. */
    store_qr_gone(&reg, i);
    expect_qr_cleared(q);
    assert_int_equal(q->generation, gen + 5);
    seq = q->seq;
    store_qr_gone(&reg, i); /* nothing to forget: no write */
    assert_int_equal(q->seq, seq);
    assert_int_equal(q->generation, gen + 5);
}

static void test_store_qr_png_before_value(void **state)
{
    int i = store_region("stqrpng", one_default, 1);
    struct region_qr *q = region_qr(&reg, i);
    static unsigned char png[100];

    (void)state;
    memset(png, 0x33, sizeof(png));
    /* An image without a value is kept but not shown... */
    store_qr_png(&reg, i, png, sizeof(png));
    assert_false(q->d.has_qr);
    assert_int_equal(q->d.png_len, sizeof(png));
    /* ...and a value arriving afterwards is a new code: its image is
     * fetched again (the one there is served meanwhile). */
    assert_true(store_qr_value(&reg, i, "2@late"));
    assert_false(q->d.png_current);
    assert_true(q->d.has_qr);
    assert_int_equal(q->d.png_len, sizeof(png));
}

static void test_store_session_drops_qr(void **state)
{
    int i = store_region("stqrdrop", one_default, 1);
    struct region_qr *q = region_qr(&reg, i);
    static unsigned char png[200];
    uint64_t gen, seq;

    (void)state;
    memset(png, 0x44, sizeof(png));
    store_session(&reg, &store_cfg, i, "default",
                  make_rec("default", "SCAN_QR_CODE", "null"));
    assert_true(store_qr_value(&reg, i, "2@scan"));
    store_qr_png(&reg, i, png, sizeof(png));
    assert_true(q->d.has_qr);

    /* Still waiting for a scan: the QR stays. */
    gen = q->generation;
    seq = q->seq;
    store_session(&reg, &store_cfg, i, "default",
                  make_rec("default", "SCAN_QR_CODE", "null"));
    assert_true(q->d.has_qr);
    assert_int_equal(q->seq, seq);
    assert_int_equal(q->generation, gen);

    /* Scanned: WORKING, and the QR goes at once. */
    store_session(&reg, &store_cfg, i, "default", make_rec("default", "WORKING", ME_A));
    expect_qr_cleared(q);
    assert_int_equal(q->generation, gen + 1);

    /* A webhook with a status other than SCAN_QR_CODE drops it too. */
    assert_true(store_qr_value(&reg, i, "2@again"));
    store_qr_png(&reg, i, png, sizeof(png));
    assert_true(q->d.has_qr);
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_s", "default", "FAILED", NULL),
                                 SOURCE_WEBHOOK),
                     STORE_EVENT_APPLIED);
    expect_qr_cleared(q);

    /* And a 404. */
    assert_true(store_qr_value(&reg, i, "2@third"));
    store_qr_png(&reg, i, png, sizeof(png));
    store_session(&reg, &store_cfg, i, "default", NULL);
    expect_qr_cleared(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_store_session),
        T(test_store_session_404),
        T(test_store_session_404_repeated),
        T(test_store_session_404_while_working),
        T(test_store_failure),
        T(test_store_webhook),
        T(test_store_webhook_wants_after_last_attempt),
        T(test_store_webhook_untracked_then_tracked),
        T(test_store_webhook_flap_hold),
        T(test_store_release_held),
        T(test_store_qr),
        T(test_store_qr_png_before_value),
        T(test_store_session_drops_qr),
#undef T
    };

    return cmocka_run_group_tests_name("store", tests, group_setup, group_teardown);
}
