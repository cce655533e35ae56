/*
 * test_region_flap.c - unit tests for the flap smoothing of published
 * statuses in common/region.c: entry_observe_status() and
 * entry_release_held_status() (docs/design.md backend.flap_hold: a change
 * away from WORKING is published only once it has lasted that long; a
 * change to WORKING, and between other statuses, at once).
 *
 * Why: a status published too early makes every dashboard flash
 * "disconnected" on a reconnect; one published too late hides a real
 * logout; a hold that restarts, or that survives a return to WORKING,
 * shows the wrong one. The functions work on an entry's data alone, so the
 * tests give them explicit times on an entry outside any region (the
 * fixture of region_fixture.h only sets up the log file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "region.h"

#include "region_fixture.h"

/*========================================================================
 * Flap smoothing: entry_observe_status / entry_release_held_status
 */

#define HOLD 5000

static struct region_entry obs;

/* A session entry with no data yet, as region_set_sessions leaves it. */
static struct entry_data *fresh_entry(void)
{
    region_entry_reset(&obs, ENTRY_SESSION, "default");
    return &obs.d;
}

/* A session entry whose published status is STATUS since mono 1000. */
static struct entry_data *entry_with(const char *status)
{
    struct entry_data *d = fresh_entry();

    assert_true(entry_observe_status(d, status, 1000, REAL0, HOLD));
    d->has_data = true; /* the caller (store.c) sets it after observing */
    return d;
}

static void test_observe_first_data_at_once(void **state)
{
    static const char *const firsts[] = {"STARTING",     "WORKING", "FAILED",
                                         "SCAN_QR_CODE", "STOPPED", "PASSKEY_REQUIRED"};

    (void)state;
    for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
        struct entry_data *d = fresh_entry();

        assert_false(d->has_data);
        assert_string_equal(d->status, "UNKNOWN");
        assert_true(entry_observe_status(d, firsts[i], 777, REAL0 + 5, HOLD));
        assert_string_equal(d->status, firsts[i]);
        assert_string_equal(d->raw_status, firsts[i]);
        assert_true(d->changed_at_real_ms == REAL0 + 5);
        assert_true(d->pending_since_mono_ms == 0);
    }
    /* Even when the entry says WORKING before its first data (e.g. an entry
     * whose status was written by hand): no data, no hold. */
    {
        struct entry_data *d = fresh_entry();
        snprintf(d->status, sizeof(d->status), "WORKING");
        assert_true(entry_observe_status(d, "FAILED", 777, REAL0, HOLD));
        assert_string_equal(d->status, "FAILED");
    }
}

static void test_observe_same_status(void **state)
{
    struct entry_data *d = entry_with("WORKING");

    (void)state;
    assert_false(entry_observe_status(d, "WORKING", 2000, REAL0 + 1000, HOLD));
    assert_string_equal(d->status, "WORKING");
    assert_true(d->changed_at_real_ms == REAL0); /* not moved */
    d = entry_with("STARTING");
    assert_false(entry_observe_status(d, "STARTING", 2000, REAL0 + 1000, HOLD));
    assert_true(d->changed_at_real_ms == REAL0);
}

static void test_observe_to_working_at_once(void **state)
{
    static const char *const froms[] = {"STARTING", "SCAN_QR_CODE", "FAILED", "STOPPED",
                                        "PASSKEY_REQUIRED"};

    (void)state;
    for (size_t i = 0; i < sizeof(froms) / sizeof(froms[0]); i++) {
        struct entry_data *d = entry_with(froms[i]);

        assert_true(entry_observe_status(d, "WORKING", 1001, REAL0 + 1, HOLD));
        assert_string_equal(d->status, "WORKING");
        assert_string_equal(d->raw_status, "WORKING");
        assert_true(d->changed_at_real_ms == REAL0 + 1);
        assert_true(d->pending_since_mono_ms == 0);
    }
}

static void test_observe_away_from_working_is_held(void **state)
{
    static const char *const tos[] = {"STARTING", "FAILED",           "SCAN_QR_CODE",
                                      "STOPPED",  "PASSKEY_REQUIRED", "UNKNOWN"};

    (void)state;
    for (size_t i = 0; i < sizeof(tos) / sizeof(tos[0]); i++) {
        struct entry_data *d = entry_with("WORKING");

        /* Seen at 2000: held. */
        assert_false(entry_observe_status(d, tos[i], 2000, REAL0 + 1000, HOLD));
        assert_string_equal(d->status, "WORKING");
        assert_string_equal(d->raw_status, tos[i]);
        assert_true(d->pending_since_mono_ms == 2000);
        assert_true(d->changed_at_real_ms == REAL0);

        /* Seen again within the hold: still held, the hold not restarted. */
        assert_false(
            entry_observe_status(d, tos[i], 2000 + HOLD - 1, REAL0 + 2000, HOLD));
        assert_string_equal(d->status, "WORKING");
        assert_true(d->pending_since_mono_ms == 2000);

        /* Once it has lasted HOLD: published, with the time it was published. */
        assert_true(entry_observe_status(d, tos[i], 2000 + HOLD, REAL0 + 9000, HOLD));
        assert_string_equal(d->status, tos[i]);
        assert_string_equal(d->raw_status, tos[i]);
        assert_true(d->changed_at_real_ms == REAL0 + 9000);
        assert_true(d->pending_since_mono_ms == 0);
    }
}

static void test_observe_held_change_reverts(void **state)
{
    struct entry_data *d = entry_with("WORKING");

    (void)state;
    assert_false(entry_observe_status(d, "STARTING", 10000, REAL0 + 1, HOLD));
    assert_true(d->pending_since_mono_ms == 10000);
    /* Back to WORKING before the hold is over: the flap is never shown. */
    assert_false(entry_observe_status(d, "WORKING", 12000, REAL0 + 2, HOLD));
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "WORKING");
    assert_true(d->pending_since_mono_ms == 0);
    assert_true(d->changed_at_real_ms == REAL0);
    assert_false(entry_release_held_status(d, 10000 + HOLD, REAL0 + 3, HOLD));
    assert_string_equal(d->status, "WORKING");

    /* A new departure starts a new hold, not one from 10000. */
    assert_false(entry_observe_status(d, "STARTING", 13000, REAL0 + 4, HOLD));
    assert_true(d->pending_since_mono_ms == 13000);
    assert_false(entry_observe_status(d, "STARTING", 13000 + HOLD - 1, REAL0 + 5, HOLD));
    assert_string_equal(d->status, "WORKING");
    assert_true(entry_observe_status(d, "STARTING", 13000 + HOLD, REAL0 + 6, HOLD));
    assert_string_equal(d->status, "STARTING");
}

static void test_observe_hold_counts_from_first_departure(void **state)
{
    struct entry_data *d = entry_with("WORKING");

    (void)state;
    /* WORKING -> STARTING -> FAILED: one departure from WORKING; the hold
     * counts from the first, and what is published is the latest status. */
    assert_false(entry_observe_status(d, "STARTING", 1000, REAL0 + 1, HOLD));
    assert_false(entry_observe_status(d, "FAILED", 3000, REAL0 + 2, HOLD));
    assert_string_equal(d->status, "WORKING");
    assert_string_equal(d->raw_status, "FAILED");
    assert_true(d->pending_since_mono_ms == 1000);
    assert_false(entry_observe_status(d, "FAILED", 1000 + HOLD - 1, REAL0 + 3, HOLD));
    assert_true(entry_observe_status(d, "FAILED", 1000 + HOLD, REAL0 + 4, HOLD));
    assert_string_equal(d->status, "FAILED");
    assert_true(d->changed_at_real_ms == REAL0 + 4);
}

static void test_observe_no_hold(void **state)
{
    struct entry_data *d = entry_with("WORKING");

    (void)state;
    assert_true(entry_observe_status(d, "STARTING", 2000, REAL0 + 1, 0));
    assert_string_equal(d->status, "STARTING");
    assert_true(d->pending_since_mono_ms == 0);
    assert_true(d->changed_at_real_ms == REAL0 + 1);
}

static void test_observe_between_non_working_at_once(void **state)
{
    struct entry_data *d = entry_with("STARTING");

    (void)state;
    assert_true(entry_observe_status(d, "SCAN_QR_CODE", 1500, REAL0 + 1, HOLD));
    assert_string_equal(d->status, "SCAN_QR_CODE");
    assert_true(entry_observe_status(d, "FAILED", 1600, REAL0 + 2, HOLD));
    assert_string_equal(d->status, "FAILED");
    assert_true(d->changed_at_real_ms == REAL0 + 2);
    assert_true(entry_observe_status(d, "STOPPED", 1700, REAL0 + 3, HOLD));
    assert_string_equal(d->status, "STOPPED");
    assert_true(d->pending_since_mono_ms == 0);
}

static void test_release_held_status(void **state)
{
    struct entry_data *d = entry_with("WORKING");

    (void)state;
    /*
     * Once a bug (common/region.c, entry_release_held_status): it called
     * entry_observe_status(d, d->raw_status, ...), whose first statement is
     * snprintf(d->raw_status, ..., "%s", raw) with RAW == d->raw_status:
     * source and destination overlapped, which C11 leaves undefined, and
     * glibc emptied the buffer. The release then published "" as the status
     * (and raw_status became ""), instead of the held status; the release
     * now observes a copy of raw_status.
     */
    /* Nothing held: nothing to release, at any time. */
    assert_false(entry_release_held_status(d, 1000000, REAL0 + 1, HOLD));
    assert_string_equal(d->status, "WORKING");

    assert_false(entry_observe_status(d, "FAILED", 4000, REAL0 + 2, HOLD));
    assert_false(entry_release_held_status(d, 4000, REAL0 + 3, HOLD));
    assert_false(entry_release_held_status(d, 4000 + HOLD - 1, REAL0 + 4, HOLD));
    assert_string_equal(d->status, "WORKING");
    assert_true(d->pending_since_mono_ms == 4000);
    assert_true(d->changed_at_real_ms == REAL0);

    assert_true(entry_release_held_status(d, 4000 + HOLD, REAL0 + 5, HOLD));
    assert_string_equal(d->status, "FAILED");
    assert_string_equal(d->raw_status, "FAILED");
    assert_true(d->changed_at_real_ms == REAL0 + 5);
    assert_true(d->pending_since_mono_ms == 0);
    /* Released once. */
    assert_false(entry_release_held_status(d, 4000 + 2 * HOLD, REAL0 + 6, HOLD));
    assert_true(d->changed_at_real_ms == REAL0 + 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_observe_first_data_at_once),
        T(test_observe_same_status),
        T(test_observe_to_working_at_once),
        T(test_observe_away_from_working_is_held),
        T(test_observe_held_change_reverts),
        T(test_observe_hold_counts_from_first_departure),
        T(test_observe_no_hold),
        T(test_observe_between_non_working_at_once),
        T(test_release_held_status),
#undef T
    };

    return cmocka_run_group_tests_name("region_flap", tests, group_setup, group_teardown);
}
