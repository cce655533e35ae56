/*
 * test_store.c - unit tests for common/store.c, the code through which the
 * fetcher writes WAHA's answers into the region: a session as WAHA's list
 * gives it and its details (the engine, kept apart from list refreshes),
 * a session WAHA does not have (404, not listed, or WAHA Core's 422 with
 * WAHA's words), failures, the release of held statuses, health, the list
 * entry, and QR codes in their lent slots. Pushed events and the entries
 * of another gateway of the fleet are test_store_events.c's.
 *
 * Why: store.c decides what a client sees and when it changes. A generation
 * that moves when nothing changed defeats ETags and wakes every SSE client;
 * one that does not move hides a change; a status published too early
 * makes every dashboard flash "disconnected" on a reconnect; details lost
 * at each list refresh make every object read cost WAHA a call; a stale QR
 * served after the session moved on shows users what is no longer true.
 *
 * The regions, their names, the log file and each test's setup and
 * teardown are region_fixture.h's, the sessions and records
 * store_fixture.h's. store.c reads the clocks itself, so the tests move a
 * held change's start back by flap_hold instead of sleeping.
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
#include "store_fixture.h"

/*========================================================================
 * A session's data and details
 */

static void test_store_session(void **state)
{
    int i = store_region("stsession", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    int64_t real = time_real_ms() - 1500, mono = time_mono_ms() - 1500;
    uint64_t gen = e->generation, seq = e->seq;

    (void)state;
    store_session(&reg, &store_cfg, i, make_rec("default", "WORKING", ME_A), real, mono);
    assert_true(d->has_data);
    assert_true(d->healthy);
    assert_true(d->exists);
    assert_int_equal(d->source, SOURCE_POLL);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "WORKING");
    assert_string_equal(d->me_json, ME_A);
    assert_string_equal(body_of(i)->body, rec.body);
    assert_int_equal(d->body_len, rec.body_len);
    assert_string_equal(d->last_error, "");
    assert_string_equal(d->absent_reason, "");
    /* The times are those of the list call, given by the caller. */
    assert_true(d->fetched_mono_ms == mono);
    assert_true(d->fetched_real_ms == real);
    assert_true(d->last_success_real_ms == real);
    assert_true(d->changed_at_real_ms == real);
    /* A list item has no engine: no details yet. */
    assert_false(d->has_details);
    assert_int_equal(d->engine_len, 0);
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq, seq + 2);
    assert_int_equal(region_header(&reg)->lock_owner_pid, 0); /* unlocked */

    /* The same answer again: a refresh, not a change. */
    gen = e->generation;
    poll(i, make_rec("default", "WORKING", ME_A));
    assert_int_equal(e->generation, gen);
    assert_int_equal(e->seq % 2, 0);

    /* Another me: a change. */
    poll(i, make_rec("default", "WORKING", ME_B));
    assert_int_equal(e->generation, gen + 1);
    assert_string_equal(d->me_json, ME_B);

    /* A record of another name than the entry's (the entry was given to
     * another session meanwhile): nothing is written. */
    gen = e->generation;
    seq = e->seq;
    poll(i, make_rec("other", "FAILED", "null"));
    assert_int_equal(e->seq, seq);
    assert_int_equal(e->generation, gen);
    assert_string_equal(d->status, "WORKING");
}

/* GET /api/sessions/{name} brings the engine; the list's refreshes that
 * follow replace the object but keep the details and their age. */
static void test_store_details_kept_apart(void **state)
{
    static const char engine[] = "{\"engine\":\"WEBJS\",\"state\":\"CONNECTED\"}";
    int i = store_region("stdetails", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    int64_t mono0 = time_mono_ms(), real0 = time_real_ms(), details_mono;
    uint64_t gen;

    (void)state;
    poll(i, make_rec("default", "WORKING", ME_A));
    gen = e->generation;
    poll(i, make_rec_engine("default", "WORKING", ME_A, engine));
    assert_true(d->has_details);
    assert_true(d->details_mono_ms >= mono0);
    assert_true(d->details_real_ms >= real0);
    assert_int_equal(d->engine_len, strlen(engine));
    assert_string_equal(body_of(i)->engine_json, engine);
    assert_string_equal(body_of(i)->body, rec.body);
    /* The engine is not part of the status object: no change. */
    assert_int_equal(e->generation, gen);
    details_mono = d->details_mono_ms;

    /* A list refresh with another object: the body follows, the details
     * stay as they were, with their own age. */
    store_session(&reg, &store_cfg, i,
                  make_rec("default", "WORKING", "{\"id\":\"1@c.us\",\"pushName\":null}"),
                  time_real_ms() + 10, time_mono_ms() + 10);
    assert_string_equal(body_of(i)->body, rec.body);
    assert_true(d->has_details);
    assert_string_equal(body_of(i)->engine_json, engine);
    assert_int_equal(d->engine_len, strlen(engine));
    assert_true(d->details_mono_ms == details_mono);
    assert_true(d->fetched_mono_ms > details_mono);

    /* Details of a stopped Core session: "engine": {} replaces them. */
    poll(i, make_rec_engine("default", "STOPPED", "null", "{}"));
    assert_string_equal(body_of(i)->engine_json, "{}");
    assert_int_equal(d->engine_len, 2);
}

/*========================================================================
 * A session WAHA does not have
 */

static void test_store_absent(void **state)
{
    int i = store_region("stabsent", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    int64_t real0 = time_real_ms();
    uint64_t gen;

    (void)state;
    poll(i, make_rec_engine("default", "STARTING", ME_A, "{\"engine\":\"NOWEB\"}"));
    gen = e->generation;

    store_absent(&reg, &store_cfg, i, "default", "");
    assert_true(d->has_data);
    assert_true(d->healthy); /* WAHA answered */
    assert_false(d->exists);
    assert_string_equal(d->absent_reason, "");
    assert_string_equal(d->status, "UNKNOWN");
    assert_string_equal(d->raw_status, "UNKNOWN");
    assert_string_equal(d->me_json, "null");
    assert_int_equal(d->body_len, 0);
    assert_string_equal(body_of(i)->body, "");
    /* Nothing more to ask about it: empty details, fetched now. */
    assert_true(d->has_details);
    assert_int_equal(d->engine_len, 0);
    assert_string_equal(body_of(i)->engine_json, "");
    assert_true(d->details_real_ms >= real0);
    assert_true(d->fetched_real_ms >= real0);
    assert_string_equal(d->last_error, "WAHA has no session \"default\"");
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq % 2, 0);

    /* The session comes back. */
    poll(i, make_rec("default", "STARTING", "null"));
    assert_true(d->exists);
    assert_string_equal(d->status, "STARTING");
    assert_string_equal(d->last_error, "");
    assert_int_equal(e->generation, gen + 2);

    /* Another name than the entry's: nothing written. */
    gen = e->generation;
    store_absent(&reg, &store_cfg, i, "other", "");
    assert_true(d->exists);
    assert_int_equal(e->generation, gen);
}

/* WAHA Core's 422 for a session other than "default": absent, with WAHA's
 * words for the readers (docs/waha-api.md 9, 10.4). */
static void test_store_absent_reason(void **state)
{
    static const char core[] = "WAHA Core support only 'default' session. If you want "
                               "to run more then one WhatsApp account - please get WAHA "
                               "PLUS version.";
    static char longer[REGION_ERROR_MAX + 50];
    int i = store_region("streason", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    uint64_t gen;

    (void)state;
    store_absent(&reg, &store_cfg, i, "default", core);
    assert_false(d->exists);
    assert_string_equal(d->absent_reason, core);
    gen = e->generation;
    /* The same words again: no change. */
    store_absent(&reg, &store_cfg, i, "default", core);
    assert_int_equal(e->generation, gen);
    /* A plain absence instead: a change readers see. */
    store_absent(&reg, &store_cfg, i, "default", "");
    assert_string_equal(d->absent_reason, "");
    assert_int_equal(e->generation, gen + 1);
    /* Words longer than the region keeps: cut, terminated. */
    memset(longer, 'w', sizeof(longer) - 1);
    store_absent(&reg, &store_cfg, i, "default", longer);
    assert_int_equal(strlen(d->absent_reason), REGION_ERROR_MAX - 1);
    /* Listed again: the reason goes. */
    poll(i, make_rec("default", "WORKING", "null"));
    assert_true(d->exists);
    assert_string_equal(d->absent_reason, "");
}

/* WAHA's list without a session: absent, but its details are left to ask
 * for (why it is gone is said only there), and the words a details call
 * gave stay while the list still lacks it. */
static void test_store_unlisted(void **state)
{
    static const char core[] = "WAHA Core support only 'default' session.";
    int i = store_region("stunlisted", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    uint64_t gen;

    (void)state;
    poll(i, make_rec_engine("default", "WORKING", ME_A, "{\"engine\":\"NOWEB\"}"));
    assert_true(d->has_details);

    store_unlisted(&reg, &store_cfg, i, "default");
    assert_true(d->has_data);
    assert_false(d->exists);
    assert_string_equal(d->absent_reason, "");
    assert_string_equal(d->raw_status, "UNKNOWN");
    assert_int_equal(d->body_len, 0);
    assert_false(d->has_details); /* a reader of the object asks WAHA why */
    assert_int_equal(d->engine_len, 0);
    assert_string_equal(body_of(i)->engine_json, "");

    /* The details call answers with Core's words: nothing more to ask. */
    store_absent(&reg, &store_cfg, i, "default", core);
    assert_true(d->has_details);
    assert_string_equal(d->absent_reason, core);
    gen = e->generation;

    /* The next list still lacks it: the words stay, nothing changed. */
    store_unlisted(&reg, &store_cfg, i, "default");
    assert_false(d->exists);
    assert_string_equal(d->absent_reason, core);
    assert_true(d->has_details);
    assert_int_equal(e->generation, gen);

    /* Another name than the entry's: nothing written. */
    store_unlisted(&reg, &store_cfg, i, "other");
    assert_int_equal(e->generation, gen);

    /* Listed again: present, the words gone. */
    poll(i, make_rec("default", "WORKING", "null"));
    assert_true(d->exists);
    assert_string_equal(d->absent_reason, "");
}

static void test_store_absent_repeated(void **state)
{
    int i = store_region("stabsentagain", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    uint64_t gen;

    (void)state;
    store_absent(&reg, &store_cfg, i, "default", "");
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
    store_absent(&reg, &store_cfg, i, "default", "");
    assert_int_equal(e->generation, gen);
}

static void test_store_absent_while_working(void **state)
{
    int i = store_region("stabsentwork", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;

    (void)state;
    poll(i, make_rec("default", "WORKING", ME_A));
    /* An absence is a change away from WORKING like any other: it is held
     * for flap_hold, while exists and me already say the session is gone. */
    store_absent(&reg, &store_cfg, i, "default", "");
    assert_false(d->exists);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "UNKNOWN");
    assert_true(d->pending_since_mono_ms > 0);
    assert_string_equal(d->me_json, "null");

    /* One that lasts flap_hold is published by the next poll (the start of
     * the hold is moved back by flap_hold instead of sleeping). */
    assert_int_equal(region_lock(&reg), 0);
    d->pending_since_mono_ms -= store_cfg.backend.flap_hold;
    region_unlock(&reg);
    store_absent(&reg, &store_cfg, i, "default", "");
    assert_string_equal(d->status, "UNKNOWN");
    assert_true(d->pending_since_mono_ms == 0);
}

/*========================================================================
 * Failures, health, the list entry
 */

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

    poll(i, make_rec("default", "WORKING", ME_A));
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
    assert_string_equal(body_of(i)->body, rec.body);
    assert_false(d->healthy);
    assert_string_equal(d->last_error, "HTTP 500: Session closed");
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq, seq + 2);

    /* The same failure again: no write at all. */
    store_failure(&reg, i, "HTTP 500: Session closed");
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq, seq + 2);

    /* Another reason: a change. */
    store_failure(&reg, i, "timeout after 5000 ms");
    assert_int_equal(e->generation, gen + 2);
    assert_string_equal(d->last_error, "timeout after 5000 ms");

    /* A success clears it. */
    poll(i, make_rec("default", "WORKING", ME_A));
    assert_true(d->healthy);
    assert_string_equal(d->last_error, "");
    assert_int_equal(e->generation, gen + 3);
}

static void test_store_health(void **state)
{
    struct region_entry *e;
    uint64_t gen;

    (void)state;
    store_region("sthealth", one_default, 1);
    e = region_entry(&reg, REGION_ENTRY_HEALTH);
    gen = e->generation;
    store_health(&reg, false, "ok", "{\"status\":\"ok\"}", 15);
    assert_true(e->d.has_data);
    assert_true(e->d.healthy);
    assert_string_equal(e->d.name, "/health");
    assert_string_equal(e->d.status, "ok");
    assert_string_equal(body_of(REGION_ENTRY_HEALTH)->body, "{\"status\":\"ok\"}");
    assert_int_equal(e->generation, gen + 1);
    /* The same: no change. */
    store_health(&reg, false, "ok", "{\"status\":\"ok\"}", 15);
    assert_int_equal(e->generation, gen + 1);
    /* /ping instead (WAHA Core, a scoped key): the endpoint is news. */
    store_health(&reg, true, "pong", "{\"message\":\"pong\"}", 18);
    assert_string_equal(e->d.name, "/ping");
    assert_string_equal(e->d.status, "pong");
    assert_int_equal(e->generation, gen + 2);
    /* A body the region cannot hold is dropped, the verdict kept. */
    store_health(&reg, false, "error", "x", REGION_BODY_MAX);
    assert_string_equal(e->d.status, "error");
    assert_int_equal(e->d.body_len, 0);
}

static void test_store_list(void **state)
{
    static const char three[3][REGION_NAME_MAX] = {"a", "b", "c"};
    struct region_entry *e;
    int64_t mono0 = time_mono_ms();

    (void)state;
    store_region("stlist", three, 3);
    e = region_entry(&reg, REGION_ENTRY_LIST);
    store_failure(&reg, REGION_ENTRY_LIST, "HTTP 502");
    store_list(&reg, 1003);
    assert_int_equal(e->d.kind, ENTRY_SESSION_LIST);
    assert_true(e->d.has_data);
    assert_true(e->d.healthy);
    assert_string_equal(e->d.last_error, "");
    /* The number WAHA listed, untracked ones included. */
    assert_string_equal(e->d.status, "1003");
    assert_true(e->d.fetched_mono_ms >= mono0);
    assert_int_equal(e->seq % 2, 0);
    /* The session entries are untouched. */
    assert_false(region_entry(&reg, region_find_session(&reg, "a"))->d.has_data);
}

static void test_store_release_held(void **state)
{
    int i = store_region("strelease", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    struct region_qr *q;
    static unsigned char png[64];
    int64_t real0;
    uint64_t gen;

    (void)state;
    memset(png, 0x55, sizeof(png));
    poll(i, make_rec("default", "WORKING", ME_A));
    /* Nothing held: nothing to release, no generation change. */
    gen = e->generation;
    store_release_held(&reg, &store_cfg, i);
    assert_int_equal(e->generation, gen);
    assert_string_equal(d->status, "WORKING");

    /* WORKING -> SCAN_QR_CODE (logged out on the phone) is held; the new QR
     * is fetched meanwhile (WAHA says SCAN_QR_CODE: raw_status). */
    assert_int_equal(push(make_hook("r1", "default", "SCAN_QR_CODE", "null")),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "SCAN_QR_CODE");
    assert_true(store_qr_value(&reg, i, "2@relogin"));
    store_qr_png(&reg, i, png, sizeof(png));
    q = qr_of(i);
    assert_non_null(q);
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
    assert_ptr_equal(qr_of(i), q);
    assert_true(q->d.has_qr);
    assert_string_equal(q->d.value, "2@relogin");
}

/*========================================================================
 * QR codes
 */

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static void test_store_qr(void **state)
{
    int i = store_region("stqr", one_default, 1);
    struct region_qr *q;
    static unsigned char png1[300], png2[400];
    static char long_value[REGION_QR_VALUE_MAX + 1];
    uint64_t gen, seq;
    int64_t mono0 = time_mono_ms();

    (void)state;
    memset(png1, 0x11, sizeof(png1));
    memset(png2, 0x22, sizeof(png2));
    memcpy(png1, png_sig, sizeof(png_sig));
    memcpy(png2, png_sig, sizeof(png_sig));
    poll(i, make_rec("default", "SCAN_QR_CODE", "null"));
    assert_null(qr_of(i));

    /* The value comes first and takes a slot: no QR to show until its
     * image is there. */
    assert_true(store_qr_value(&reg, i, "2@first,code=="));
    q = qr_of(i);
    assert_non_null(q);
    assert_int_equal(q->entry, i);
    gen = q->generation;
    assert_false(q->d.has_qr);
    assert_string_equal(q->d.value, "2@first,code==");
    assert_int_equal(q->d.png_len, 0);
    assert_true(q->d.fetched_mono_ms >= mono0);
    assert_int_equal(q->seq % 2, 0);

    store_qr_png(&reg, i, png1, sizeof(png1));
    assert_true(q->d.has_qr);
    assert_true(q->d.png_current);
    assert_int_equal(q->d.png_len, sizeof(png1));
    assert_memory_equal(q->d.png, png1, sizeof(png1));
    assert_int_equal(q->generation, gen + 1);

    /* The same value again: the image is still good, nothing changes. */
    assert_false(store_qr_value(&reg, i, "2@first,code=="));
    assert_true(q->d.has_qr);
    assert_int_equal(q->d.png_len, sizeof(png1));
    store_qr_png(&reg, i, png1, sizeof(png1));
    assert_int_equal(q->generation, gen + 1);

    /* A new code: the last image is served until the new one is fetched,
     * so readers never go without a QR during a rotation. */
    assert_true(store_qr_value(&reg, i, "2@second,code=="));
    assert_true(q->d.has_qr);
    assert_false(q->d.png_current);
    assert_int_equal(q->d.png_len, sizeof(png1));
    assert_string_equal(q->d.value, "2@second,code==");
    assert_int_equal(q->generation, gen + 2);
    /* ...and asking again still says the image is needed. */
    assert_true(store_qr_value(&reg, i, "2@second,code=="));
    store_qr_png(&reg, i, png2, sizeof(png2));
    assert_true(q->d.has_qr);
    assert_true(q->d.png_current);
    assert_int_equal(q->d.png_len, sizeof(png2));
    assert_int_equal(q->generation, gen + 3);

    /* What does not fit is refused without a write. */
    seq = q->seq;
    store_qr_png(&reg, i, png2, REGION_QR_PNG_MAX + 1);
    memset(long_value, 'v', REGION_QR_VALUE_MAX);
    assert_false(store_qr_value(&reg, i, long_value));
    assert_int_equal(q->seq, seq);
    assert_string_equal(q->d.value, "2@second,code==");
    assert_int_equal(q->d.png_len, sizeof(png2));

    /* No QR any more: the slot goes back, empty. */
    store_qr_gone(&reg, i);
    assert_null(qr_of(i));
    assert_int_equal(q->entry, 0);
    expect_qr_cleared(q);
    assert_int_equal(q->generation, gen + 4);
    seq = q->seq;
    store_qr_gone(&reg, i); /* nothing to give back: no write */
    assert_int_equal(q->seq, seq);
    assert_int_equal(q->generation, gen + 4);
}

/*
 * A QR slot is taken only while WAHA says SCAN_QR_CODE. Was
 * test_store_qr_png_before_value: an image without a value was kept (not
 * shown) in the session's own slot; with slots lent by the value, an
 * image for a session without a slot has nowhere to go and is dropped.
 */
static void test_store_qr_needs_scan(void **state)
{
    int i = store_region("stqrscan", one_default, 1);
    static unsigned char png[100];

    (void)state;
    memset(png, 0x33, sizeof(png));
    /* No data yet, then WORKING: a value (a late answer) takes no slot. */
    assert_false(store_qr_value(&reg, i, "2@late"));
    assert_null(qr_of(i));
    poll(i, make_rec("default", "WORKING", ME_A));
    assert_false(store_qr_value(&reg, i, "2@late"));
    assert_null(qr_of(i));
    /* An image for a session without a slot is dropped. */
    store_qr_png(&reg, i, png, sizeof(png));
    assert_null(qr_of(i));
    for (int s = 0; s < region_qr_count(&reg); s++)
        assert_int_equal(region_qr_slot(&reg, s)->entry, 0);
}

static void test_store_session_drops_qr(void **state)
{
    int i = store_region("stqrdrop", one_default, 1);
    struct region_qr *q;
    static unsigned char png[200];
    uint64_t gen, seq;

    (void)state;
    memset(png, 0x44, sizeof(png));
    poll(i, make_rec("default", "SCAN_QR_CODE", "null"));
    assert_true(store_qr_value(&reg, i, "2@scan"));
    store_qr_png(&reg, i, png, sizeof(png));
    q = qr_of(i);
    assert_true(q->d.has_qr);

    /* Still waiting for a scan: the QR stays. */
    gen = q->generation;
    seq = q->seq;
    poll(i, make_rec("default", "SCAN_QR_CODE", "null"));
    assert_true(q->d.has_qr);
    assert_int_equal(q->seq, seq);
    assert_int_equal(q->generation, gen);

    /* Scanned: WORKING, and the slot goes back at once. */
    poll(i, make_rec("default", "WORKING", ME_A));
    expect_qr_cleared(q);
    assert_null(qr_of(i));
    assert_int_equal(q->generation, gen + 1);

    /* An event with a status other than SCAN_QR_CODE gives it back too. */
    poll(i, make_rec("default", "SCAN_QR_CODE", "null"));
    assert_true(store_qr_value(&reg, i, "2@again"));
    store_qr_png(&reg, i, png, sizeof(png));
    assert_true(qr_of(i)->d.has_qr);
    assert_int_equal(push(make_hook("evt_s", "default", "FAILED", NULL)),
                     STORE_EVENT_APPLIED);
    assert_null(qr_of(i));

    /* And an absence. */
    assert_int_equal(push(make_hook("evt_t", "default", "SCAN_QR_CODE", NULL)),
                     STORE_EVENT_APPLIED);
    assert_true(store_qr_value(&reg, i, "2@third"));
    store_qr_png(&reg, i, png, sizeof(png));
    assert_non_null(qr_of(i));
    store_absent(&reg, &store_cfg, i, "default", "");
    assert_null(qr_of(i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_store_session),
        T(test_store_details_kept_apart),
        T(test_store_absent),
        T(test_store_absent_reason),
        T(test_store_unlisted),
        T(test_store_absent_repeated),
        T(test_store_absent_while_working),
        T(test_store_failure),
        T(test_store_health),
        T(test_store_list),
        T(test_store_release_held),
        T(test_store_qr),
        T(test_store_qr_needs_scan),
        T(test_store_session_drops_qr),
#undef T
    };

    return cmocka_run_group_tests_name("store", tests, group_setup, group_teardown);
}
