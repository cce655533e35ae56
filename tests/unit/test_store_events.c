/*
 * test_store_events.c - unit tests for the pushed events of common/store.c
 * (store_event(): session.status from a webhook or WAHA's WebSocket) and
 * for the entries another gateway of the fleet stored (store_remote(),
 * store_remote_qr()).
 *
 * Why: an event is applied at once, for every client. One applied twice
 * (WAHA retries a delivery up to 15 times), one older than what the entry
 * holds (a late retry, a replay, an event older than a poll made well
 * after it) or one for a session the gateway does not track shows a status
 * that is no longer true; the demand an event records makes the fetcher
 * call WAHA, so it must ask only for what the event does not bring. A
 * fleet member must take another's entry only when it is newer.
 *
 * Event ids are digests: waha_parse_event() makes them from the id's JSON
 * text (test_webhook.c); here make_hook() derives one from a string, and
 * the duplicates of ids of any length go through waha_parse_event() itself.
 * The regions, sessions and records are region_fixture.h's and
 * store_fixture.h's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "region.h"
#include "store.h"
#include "timeutil.h"
#include "waha.h"

#include "region_fixture.h"
#include "store_fixture.h"

static struct demand *demand(int i, enum demand_kind kind)
{
    return region_demand(&reg, i, kind);
}

/*========================================================================
 * Applying events
 */

static void test_event_applied(void **state)
{
    static const char tracked[2][REGION_NAME_MAX] = {"default", "second"};
    int i = store_region("evapply", tracked, 2);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    int64_t mono0 = time_mono_ms(), ts;
    uint64_t gen, seq;

    (void)state;
    gen = e->generation;
    assert_int_equal(store_event(&reg, &store_cfg,
                                 make_hook("evt_1", "default", "WORKING", ME_A),
                                 SOURCE_EVENTS),
                     STORE_EVENT_APPLIED);
    assert_true(d->has_data);
    assert_true(d->exists);
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "WORKING");
    assert_string_equal(d->me_json, ME_A);
    assert_int_equal(d->source, SOURCE_EVENTS);
    assert_true(d->pushed_mono_ms >= mono0);
    assert_true(d->fetched_mono_ms >= mono0);
    assert_true(d->event_ts_ms == hook.timestamp_ms);
    assert_memory_equal(d->event_digest, hook.id_digest, REGION_DIGEST_LEN);
    assert_int_equal(e->generation, gen + 1);
    assert_int_equal(e->seq % 2, 0);
    /* The entry had no object: the rest of it is wanted from WAHA's list;
     * no QR is. */
    assert_true(demand(i, DEMAND_DATA)->wanted_ms >= mono0);
    assert_int_equal(demand(i, DEMAND_QR)->wanted_ms, 0);
    assert_int_equal(demand(i, DEMAND_DETAILS)->wanted_ms, 0);
    assert_int_equal(region_header(&reg)->lock_owner_pid, 0);

    /* WAHA retries the same envelope (same id, same timestamp): applied
     * once. */
    gen = e->generation;
    seq = e->seq;
    ts = hook.timestamp_ms;
    make_hook("evt_1", "default", "FAILED", "null");
    hook.timestamp_ms = ts;
    assert_int_equal(push(&hook), STORE_EVENT_DUPLICATE);
    assert_int_equal(e->seq, seq);
    assert_int_equal(e->generation, gen);
    assert_string_equal(d->raw_status, "WORKING");

    /* A session this gateway does not track. */
    assert_int_equal(push(make_hook("evt_2", "elsewhere", "WORKING", NULL)),
                     STORE_EVENT_UNTRACKED);
    assert_int_equal(e->seq, seq);

    /* No id: applied every time. Without me, me is kept. */
    assert_int_equal(push(make_hook("", "default", "WORKING", NULL)),
                     STORE_EVENT_APPLIED);
    assert_int_equal(push(make_hook("", "default", "WORKING", NULL)),
                     STORE_EVENT_APPLIED);
    assert_int_equal(e->generation, gen); /* the same status again */
    assert_string_equal(d->me_json, ME_A);
    assert_int_equal(d->source, SOURCE_WEBHOOK);
    assert_true(e->seq > seq);

    /* me null (logged out) replaces me. */
    assert_int_equal(push(make_hook("evt_3", "default", "WORKING", "null")),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->me_json, "null");
    assert_int_equal(e->generation, gen + 1);

    /* The other session's entry was never touched. */
    {
        int i2 = region_find_session(&reg, "second");
        assert_false(region_entry(&reg, i2)->d.has_data);
        assert_int_equal(demand(i2, DEMAND_DATA)->wanted_ms, 0);
    }
}

/*
 * The list item is asked for only when the event says another status than
 * the object the entry holds. Was: every event asked for the session's
 * details (one GET /api/sessions/{name} per event); now one list call
 * refreshes every session, and an event that agrees with it needs none.
 */
static void test_event_wants_data_only_when_body_behind(void **state)
{
    int i = store_region("evbehind", one_default, 1);
    struct demand *dm = demand(i, DEMAND_DATA);

    (void)state;
    poll(i, make_rec("default", "WORKING", ME_A));
    assert_int_equal(push(make_hook("b1", "default", "WORKING", ME_A)),
                     STORE_EVENT_APPLIED);
    assert_int_equal(dm->wanted_ms, 0);
    assert_int_equal(demand(i, DEMAND_DETAILS)->wanted_ms, 0);
    assert_int_equal(push(make_hook("b2", "default", "STARTING", NULL)),
                     STORE_EVENT_APPLIED);
    assert_true(dm->wanted_ms > 0);
    assert_int_equal(demand(i, DEMAND_DETAILS)->wanted_ms, 0);
}

static void test_event_wants_after_last_attempt(void **state)
{
    int i = store_region("evwant", one_default, 1);
    int64_t future = time_mono_ms() + 1000000;

    (void)state;
    /* The fetcher's last attempt ended "later" than now (clocks of two
     * processes): the want must still be newer than that attempt. */
    atomic_store(&demand(i, DEMAND_DATA)->attempt_done_ms, future);
    atomic_store(&demand(i, DEMAND_QR)->attempt_done_ms, future + 10);
    assert_int_equal(push(make_hook("evt_q", "default", "SCAN_QR_CODE", "null")),
                     STORE_EVENT_APPLIED);
    assert_true(demand(i, DEMAND_DATA)->wanted_ms == future + 1);
    /* SCAN_QR_CODE announces a new QR: it is wanted too. */
    assert_true(demand(i, DEMAND_QR)->wanted_ms == future + 11);
}

static void test_event_untracked_then_tracked(void **state)
{
    static const char both[2][REGION_NAME_MAX] = {"default", "newone"};
    int inew;

    (void)state;
    store_region("evnew", one_default, 1);
    assert_int_equal(push(make_hook("evt_n", "newone", "WORKING", ME_A)),
                     STORE_EVENT_UNTRACKED);
    track(both, 2);
    inew = region_find_session(&reg, "newone");
    /*
     * An event for a session that was not tracked is not recorded: delivered
     * again once the session is tracked (the worker asks for a new session
     * list on UNTRACKED with sessions = *), it is applied.
     */
    make_hook("evt_n", "newone", "WORKING", ME_A);
    hook.timestamp_ms--; /* the very same envelope */
    assert_int_equal(push(&hook), STORE_EVENT_APPLIED);
    assert_true(region_entry(&reg, inew)->d.has_data);
    assert_string_equal(region_entry(&reg, inew)->d.status, "WORKING");
}

static void test_event_flap_hold(void **state)
{
    int i = store_region("evflap", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    struct entry_data *d = &e->d;
    int64_t mono0;
    uint64_t gen;

    (void)state;
    poll(i, make_rec("default", "WORKING", ME_A));
    gen = e->generation;

    /* WORKING -> STARTING by an event: held like a polled one. */
    mono0 = time_mono_ms();
    assert_int_equal(push(make_hook("w1", "default", "STARTING", NULL)),
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
    assert_int_equal(push(make_hook("w2", "default", "WORKING", NULL)),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_true(d->pending_since_mono_ms == 0);
    assert_int_equal(e->generation, gen);

    /* Away again, and this time it lasts (the hold's start is moved back
     * by flap_hold instead of sleeping): the next event saying so
     * publishes it. */
    assert_int_equal(push(make_hook("w3", "default", "FAILED", NULL)),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_int_equal(region_lock(&reg), 0);
    d->pending_since_mono_ms -= store_cfg.backend.flap_hold;
    region_unlock(&reg);
    assert_int_equal(push(make_hook("w3b", "default", "FAILED", NULL)),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "FAILED");
    assert_true(d->pending_since_mono_ms == 0);
    assert_int_equal(e->generation, gen + 1);

    /* An event back to WORKING is published at once. */
    assert_int_equal(push(make_hook("w4", "default", "WORKING", NULL)),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "WORKING");
    assert_int_equal(e->generation, gen + 2);

    /* With flap_hold 0 nothing is held. */
    store_cfg.backend.flap_hold = 0;
    assert_int_equal(push(make_hook("w5", "default", "STARTING", NULL)),
                     STORE_EVENT_APPLIED);
    assert_string_equal(d->status, "STARTING");
    assert_int_equal(e->generation, gen + 3);
}

/*========================================================================
 * Order: envelope timestamps, and polled data
 */

/* An event with envelope timestamp TS (0: none) and id ID. */
static enum store_event_result push_at(const char *id, const char *status, int64_t ts)
{
    make_hook(id, "default", status, NULL);
    hook.timestamp_ms = ts;
    return push(&hook);
}

static void test_event_order_by_timestamp(void **state)
{
    int i = store_region("evorder", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    int64_t t = time_real_ms();
    uint64_t seq;

    (void)state;
    store_cfg.backend.flap_hold = 0;
    assert_int_equal(push_at("o1", "STARTING", t), STORE_EVENT_APPLIED);
    assert_true(e->d.event_ts_ms == t);
    /* WAHA's retries of an older delivery arrive after a newer one:
     * older, or the same time, is outdated and changes nothing. */
    seq = e->seq;
    assert_int_equal(push_at("o0", "STOPPED", t - 1), STORE_EVENT_OUTDATED);
    assert_int_equal(push_at("o0b", "STOPPED", t), STORE_EVENT_OUTDATED);
    assert_int_equal(e->seq, seq);
    assert_string_equal(e->d.status, "STARTING");
    /* Newer: applied. */
    assert_int_equal(push_at("o2", "SCAN_QR_CODE", t + 100), STORE_EVENT_APPLIED);
    assert_string_equal(e->d.status, "SCAN_QR_CODE");
    /* No timestamp (WAHA before 2024-11): no order, applied; and it does
     * not move the newest timestamp back. */
    assert_int_equal(push_at("o3", "WORKING", 0), STORE_EVENT_APPLIED);
    assert_string_equal(e->d.status, "WORKING");
    assert_true(e->d.event_ts_ms == t + 100);
    assert_int_equal(push_at("o4", "FAILED", t + 50), STORE_EVENT_OUTDATED);
    assert_string_equal(e->d.status, "WORKING");
    /* A negative timestamp is no timestamp either. */
    assert_int_equal(push_at("o5", "FAILED", -5), STORE_EVENT_APPLIED);
    assert_string_equal(e->d.status, "FAILED");
}

/* An event older than polled data fetched more than the slack after it
 * says less than the poll did. */
static void test_event_older_than_polled_data(void **state)
{
    int i = store_region("evpolled", one_default, 1);
    struct region_entry *e = region_entry(&reg, i);
    int64_t fetched = time_real_ms();

    (void)state;
    store_cfg.backend.flap_hold = 0;
    /* No data yet: nothing to be older than. */
    assert_int_equal(push_at("p0", "STARTING", fetched - 10 * STORE_EVENT_CLOCK_SLACK_MS),
                     STORE_EVENT_APPLIED);
    store_session(&reg, &store_cfg, i, make_rec("default", "WORKING", ME_A), fetched,
                  time_mono_ms());
    assert_int_equal(push_at("p1", "STOPPED", fetched - STORE_EVENT_CLOCK_SLACK_MS - 1),
                     STORE_EVENT_OUTDATED);
    assert_string_equal(e->d.status, "WORKING");
    /* Within the slack (the two hosts' clocks, WAHA's 15 x 2 s retries):
     * applied. */
    assert_int_equal(push_at("p2", "STOPPED", fetched - STORE_EVENT_CLOCK_SLACK_MS),
                     STORE_EVENT_APPLIED);
    assert_string_equal(e->d.status, "STOPPED");
    /* Without a timestamp: applied whatever the poll's age. */
    store_session(&reg, &store_cfg, i, make_rec("default", "WORKING", ME_A), fetched,
                  time_mono_ms());
    assert_int_equal(push_at("p3", "FAILED", 0), STORE_EVENT_APPLIED);
    assert_string_equal(e->d.status, "FAILED");
    /* After an absence too (polled: WAHA had no such session). */
    store_absent(&reg, &store_cfg, i, "default", "");
    assert_int_equal(
        push_at("p4", "WORKING", time_real_ms() - 2 * STORE_EVENT_CLOCK_SLACK_MS),
        STORE_EVENT_OUTDATED);
    assert_false(e->d.exists);
}

/*========================================================================
 * Duplicates by digest, for ids of any length
 */

/* session.status of "default" with the id ID (JSON text), STATUS and the
 * envelope timestamp TS, through waha_parse_event(). */
static enum store_event_result deliver(const char *id, const char *status, int64_t ts)
{
    size_t size = strlen(id) + 256;
    char *body = malloc(size), why[WAHA_WHY_MAX];
    int n;

    assert_non_null(body);
    n = snprintf(body, size,
                 "{\"id\":%s,\"timestamp\":%lld,\"event\":\"session.status\","
                 "\"session\":\"default\",\"payload\":{\"status\":\"%s\"}}",
                 id, (long long)ts, status);
    assert_int_equal(waha_parse_event(body, (size_t)n, &hook, why), WAHA_EVENT_STATUS);
    free(body);
    return push(&hook);
}

static void test_event_duplicates_any_id(void **state)
{
    static const size_t lengths[] = {1, 63, 64, 65, 200, 1000};
    char *id = malloc(1100);
    int64_t t = time_real_ms();

    (void)state;
    assert_non_null(id);
    store_region("evdup", one_default, 1);
    store_cfg.backend.flap_hold = 0;
    for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
        size_t len = lengths[k];
        id[0] = '"';
        memset(id + 1, 'a' + (int)k, len);
        strcpy(id + 1 + len, "\"");
        t += 10;
        assert_int_equal(deliver(id, "STARTING", t), STORE_EVENT_APPLIED);
        /* The retry, byte for byte: a duplicate (not merely outdated). */
        assert_int_equal(deliver(id, "STARTING", t), STORE_EVENT_DUPLICATE);
        /* The id with its last character changed: another event. */
        id[len] = 'Z';
        assert_int_equal(deliver(id, "WORKING", t + 1), STORE_EVENT_APPLIED);
        assert_int_equal(deliver(id, "WORKING", t + 1), STORE_EVENT_DUPLICATE);
        t += 1;
    }
    /* A number and a string of the same digits are two ids. */
    assert_int_equal(deliver("4242", "STARTING", t + 10), STORE_EVENT_APPLIED);
    assert_int_equal(deliver("\"4242\"", "WORKING", t + 20), STORE_EVENT_APPLIED);
    /* No id: never a duplicate (and no timestamp: no order). */
    assert_int_equal(deliver("null", "WORKING", 0), STORE_EVENT_APPLIED);
    assert_int_equal(deliver("null", "WORKING", 0), STORE_EVENT_APPLIED);
    free(id);
}

/*========================================================================
 * Entries of another gateway of the fleet
 */

static struct entry_data remote;
static struct entry_body remote_body;

/* What another gateway holds for session "default", fetched at REAL. */
static void make_remote(const char *status, int64_t real, const char *engine)
{
    memset(&remote, 0, sizeof(remote));
    memset(&remote_body, 0, sizeof(remote_body));
    remote.kind = ENTRY_SESSION;
    remote.source = SOURCE_POLL;
    snprintf(remote.name, sizeof(remote.name), "default");
    remote.has_data = remote.healthy = remote.exists = true;
    snprintf(remote.status, sizeof(remote.status), "%s", status);
    snprintf(remote.raw_status, sizeof(remote.raw_status), "%s", status);
    snprintf(remote.me_json, sizeof(remote.me_json), "null");
    remote.fetched_real_ms = real;
    remote.body_len =
        (uint32_t)snprintf(remote_body.body, sizeof(remote_body.body),
                           "{\"name\":\"default\",\"status\":\"%s\"}", status);
    if (engine != NULL) {
        remote.has_details = true;
        remote.details_real_ms = real;
        remote.engine_len = (uint32_t)snprintf(
            remote_body.engine_json, sizeof(remote_body.engine_json), "%s", engine);
    }
}

static void test_store_remote(void **state)
{
    int i = store_region("remote", one_default, 1);
    struct entry_data *d = &region_entry(&reg, i)->d;
    int64_t real = time_real_ms();

    (void)state;
    poll(i, make_rec("default", "STARTING", "null"));
    /* Newer: taken, body and engine with it; waiting readers look now. */
    make_remote("WORKING", real + 1000, "{\"engine\":\"GOWS\"}");
    assert_true(store_remote(&reg, i, &remote, &remote_body));
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(body_of(i)->body, remote_body.body);
    assert_true(d->has_details);
    assert_string_equal(body_of(i)->engine_json, "{\"engine\":\"GOWS\"}");
    assert_true(d->fetched_real_ms == real + 1000);
    assert_true(d->fetched_mono_ms <= time_mono_ms());
    assert_true(demand(i, DEMAND_DATA)->attempt_done_ms > 0);
    assert_true(demand(i, DEMAND_DETAILS)->attempt_done_ms > 0);
    /* Older or as old (and as healthy): not taken. */
    make_remote("FAILED", real + 500, NULL);
    assert_false(store_remote(&reg, i, &remote, &remote_body));
    make_remote("FAILED", real + 1000, NULL);
    assert_false(store_remote(&reg, i, &remote, &remote_body));
    assert_string_equal(d->status, "WORKING");
    /* Another session's, or another kind: not taken. */
    make_remote("FAILED", real + 2000, NULL);
    snprintf(remote.name, sizeof(remote.name), "other");
    assert_false(store_remote(&reg, i, &remote, &remote_body));
    make_remote("FAILED", real + 2000, NULL);
    remote.kind = ENTRY_HEALTH;
    assert_false(store_remote(&reg, i, &remote, &remote_body));
    /* Without details: ours stay. */
    make_remote("FAILED", real + 2000, NULL);
    assert_true(store_remote(&reg, i, &remote, &remote_body));
    assert_string_equal(d->status, "FAILED");
    assert_string_equal(body_of(i)->engine_json, "{\"engine\":\"GOWS\"}");
}

/* The list entry is free until a list is stored: another gateway's list
 * takes it (within the write protocol), anything else does not. */
static void test_store_remote_first_list(void **state)
{
    struct region_entry *list;

    (void)state;
    store_region("remote-list", one_default, 1);
    list = region_entry(&reg, REGION_ENTRY_LIST);
    assert_int_equal(list->d.kind, ENTRY_FREE);
    make_remote("WORKING", time_real_ms(), NULL);
    remote.kind = ENTRY_HEALTH;
    assert_false(store_remote(&reg, REGION_ENTRY_LIST, &remote, &remote_body));
    assert_int_equal(list->d.kind, ENTRY_FREE);
    remote.kind = ENTRY_SESSION_LIST;
    snprintf(remote.status, sizeof(remote.status), "1");
    assert_true(store_remote(&reg, REGION_ENTRY_LIST, &remote, &remote_body));
    assert_int_equal(list->d.kind, ENTRY_SESSION_LIST);
    assert_true(list->d.has_data);
    assert_int_equal(list->seq % 2, 0); /* not left open for writing */
}

/* An event the other gateway applied: a retried delivery of it to this one
 * is a duplicate, and an older event is outdated. */
static void test_store_remote_event(void **state)
{
    int i = store_region("remoteev", one_default, 1);
    int64_t t = time_real_ms();

    (void)state;
    make_remote("WORKING", t, NULL);
    remote.source = SOURCE_WEBHOOK;
    remote.event_ts_ms = t - 5;
    memset(remote.event_digest, 0x77, REGION_DIGEST_LEN);
    assert_true(store_remote(&reg, i, &remote, &remote_body));
    assert_true(region_entry(&reg, i)->d.pushed_mono_ms > 0);
    make_hook("", "default", "STOPPED", NULL);
    memset(hook.id_digest, 0x77, REGION_DIGEST_LEN);
    hook.timestamp_ms = t - 5;
    assert_int_equal(push(&hook), STORE_EVENT_DUPLICATE);
    assert_int_equal(push_at("older", "STOPPED", t - 6), STORE_EVENT_OUTDATED);
    assert_string_equal(region_entry(&reg, i)->d.status, "WORKING");
}

static void test_store_remote_qr(void **state)
{
    static const unsigned char png[16] = {0x89, 'P', 'N', 'G'};
    int i = store_region("remoteqr", one_default, 1);
    int64_t t = time_real_ms();
    struct region_qr *q;

    (void)state;
    /* Not waiting for a scan here: no slot taken. */
    poll(i, make_rec("default", "WORKING", "null"));
    assert_false(store_remote_qr(&reg, i, "2@r", png, sizeof(png), t));
    assert_null(qr_of(i));
    poll(i, make_rec("default", "SCAN_QR_CODE", "null"));
    assert_true(store_remote_qr(&reg, i, "2@r", png, sizeof(png), t));
    q = qr_of(i);
    assert_non_null(q);
    assert_true(q->d.has_qr);
    assert_true(q->d.png_current);
    assert_string_equal(q->d.value, "2@r");
    assert_int_equal(q->d.png_len, sizeof(png));
    assert_true(demand(i, DEMAND_QR)->attempt_done_ms > 0);
    /* Older: not taken. Newer: taken. */
    assert_false(store_remote_qr(&reg, i, "2@old", png, sizeof(png), t - 1));
    assert_string_equal(q->d.value, "2@r");
    assert_true(store_remote_qr(&reg, i, "2@new", png, sizeof(png), t + 1));
    assert_string_equal(q->d.value, "2@new");
    /* Too large: refused. */
    assert_false(store_remote_qr(&reg, i, "2@big", png, REGION_QR_PNG_MAX + 1, t + 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_event_applied),
        T(test_event_wants_data_only_when_body_behind),
        T(test_event_wants_after_last_attempt),
        T(test_event_untracked_then_tracked),
        T(test_event_flap_hold),
        T(test_event_order_by_timestamp),
        T(test_event_older_than_polled_data),
        T(test_event_duplicates_any_id),
        T(test_store_remote),
        T(test_store_remote_first_list),
        T(test_store_remote_event),
        T(test_store_remote_qr),
#undef T
    };

    return cmocka_run_group_tests_name("store_events", tests, group_setup,
                                       group_teardown);
}
