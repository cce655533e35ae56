/*
 * test_region_sessions.c - unit tests for the session table of
 * common/region_sessions.c: region_set_sessions() (names kept with their
 * data, freed, added with no data and no demand, INDEX_OUT, room for
 * server.max_sessions and the count of names beyond it),
 * region_find_session() through the name index (names with spaces, dots
 * and UTF-8, colliding hashes, a thousand sessions), region_name_hash(),
 * and region_event_seen() (common/region.c), the ring of the digests of
 * recent event ids that drops WAHA's retried deliveries.
 *
 * Why: every worker request and every WAHA answer finds its session through
 * the index; a name that is not found, or found in another session's entry,
 * serves one session's status as another's. A name that reuses a freed entry
 * must not inherit its data or its readers' demand. A digest forgotten too
 * early applies a retried event twice; one that never goes, or an all-zero
 * digest treated as an id, drops real events.
 *
 * The regions, their names, the log file and each test's setup and
 * teardown are region_fixture.h's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "region.h"

#include "region_fixture.h"

/*========================================================================
 * region_set_sessions
 */

static void test_set_sessions(void **state)
{
    static const char ab[2][REGION_NAME_MAX] = {"a", "b"};
    static const char ac[2][REGION_NAME_MAX] = {"a", "c"};
    struct region_header *h;
    int ia, ib, ic, out[2];
    uint64_t tg, gen_a;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("sessions"), TEST_SESSIONS), 0);
    h = region_header(&reg);
    assert_int_equal(region_lock(&reg), 0);

    /* Adds */
    tg = h->table_generation;
    assert_int_equal(set_sessions(ab, 2, out), 0);
    assert_int_equal(h->table_generation, tg + 1);
    ia = region_find_session(&reg, "a");
    ib = region_find_session(&reg, "b");
    assert_int_equal(out[0], ia);
    assert_int_equal(out[1], ib);
    assert_true(ia >= REGION_ENTRY_FIRST_SESSION && ia < region_entry_count(&reg));
    assert_true(ib >= REGION_ENTRY_FIRST_SESSION && ib < region_entry_count(&reg));
    assert_int_not_equal(ia, ib);
    assert_int_equal(region_find_session(&reg, "c"), -1);
    assert_int_equal(region_entry(&reg, ia)->d.kind, ENTRY_SESSION);
    assert_string_equal(region_entry(&reg, ia)->d.name, "a");
    assert_false(region_entry(&reg, ia)->d.has_data);
    assert_string_equal(region_entry(&reg, ia)->d.status, "UNKNOWN");
    assert_int_equal(region_entry(&reg, ia)->seq % 2, 0);

    put_data(ia, "WORKING");
    put_data(ib, "STOPPED");
    /* Demand of b, which must not leak to a name that reuses b's entry. */
    for (int k = 0; k < DEMAND_COUNT; k++) {
        struct demand *dm = region_demand(&reg, ib, (enum demand_kind)k);
        atomic_store(&dm->last_read_ms, 789);
        atomic_store(&dm->wanted_ms, 123);
        atomic_store(&dm->attempt_done_ms, 456);
    }
    gen_a = region_entry(&reg, ia)->generation;

    /* Keeps "a" with its data, frees "b", adds "c" */
    tg = h->table_generation;
    assert_int_equal(set_sessions(ac, 2, out), 0);
    assert_int_equal(h->table_generation, tg + 1);
    assert_int_equal(region_find_session(&reg, "a"), ia);
    assert_int_equal(out[0], ia);
    assert_true(region_entry(&reg, ia)->d.has_data);
    assert_string_equal(region_entry(&reg, ia)->d.status, "WORKING");
    assert_int_equal(region_entry(&reg, ia)->generation, gen_a);
    assert_int_equal(region_find_session(&reg, "b"), -1);
    assert_int_equal(region_entry(&reg, ib)->seq % 2, 0);
    if (region_entry(&reg, ib)->d.kind != ENTRY_FREE)
        assert_string_equal(region_entry(&reg, ib)->d.name, "c");
    /* "c" (which may reuse b's entry) starts empty: nothing of b's data,
     * nothing of its readers' demand. */
    ic = region_find_session(&reg, "c");
    assert_int_equal(out[1], ic);
    assert_true(ic >= REGION_ENTRY_FIRST_SESSION);
    assert_false(region_entry(&reg, ic)->d.has_data);
    assert_string_equal(region_entry(&reg, ic)->d.status, "UNKNOWN");
    assert_string_equal(region_entry(&reg, ic)->d.me_json, "null");
    assert_int_equal(region_entry(&reg, ic)->d.body_len, 0);
    for (int k = 0; k < DEMAND_COUNT; k++) {
        struct demand *dm = region_demand(&reg, ic, (enum demand_kind)k);
        assert_int_equal(dm->wanted_ms, 0);
        assert_int_equal(dm->attempt_done_ms, 0);
        assert_int_equal(dm->last_read_ms, 0);
    }
    assert_int_equal(region_entry(&reg, ic)->seq % 2, 0);

    /* The same list again: no change, no generation bump. */
    tg = h->table_generation;
    assert_int_equal(set_sessions(ac, 2, NULL), 0);
    assert_int_equal(h->table_generation, tg);
    assert_int_equal(region_entry(&reg, ia)->generation, gen_a);
    assert_true(region_entry(&reg, ia)->d.has_data);

    /* The health and list entries are never touched. */
    assert_int_equal(region_entry(&reg, REGION_ENTRY_HEALTH)->d.kind, ENTRY_HEALTH);
    assert_int_equal(region_entry(&reg, REGION_ENTRY_LIST)->d.kind, ENTRY_FREE);

    /* An empty list frees every session entry. */
    assert_int_equal(set_sessions(ac, 0, NULL), 0);
    assert_int_equal(h->table_generation, tg + 1);
    assert_int_equal(region_find_session(&reg, "a"), -1);
    assert_int_equal(region_find_session(&reg, "c"), -1);
    for (int i = REGION_ENTRY_FIRST_SESSION; i < region_entry_count(&reg); i++)
        assert_int_equal(region_entry(&reg, i)->d.kind, ENTRY_FREE);
    region_unlock(&reg);
}

/*
 * More names than server.max_sessions: the first that fit get entries, the
 * rest are counted (answers.c publishes them as untracked_sessions) and
 * get -1 in INDEX_OUT. Names that leave free their entries before new ones
 * look for room.
 */
static void test_set_sessions_beyond_capacity(void **state)
{
    enum { EXTRA = 6, N = TEST_SESSIONS + EXTRA };
    static char many[N][REGION_NAME_MAX];
    int out[N], found = 0;

    (void)state;
    for (int i = 0; i < N; i++)
        snprintf(many[i], sizeof(many[i]), "s%d", i);
    assert_int_equal(region_create(&reg, make_name("many"), TEST_SESSIONS), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])many, N, out), EXTRA);
    for (int i = 0; i < N; i++) {
        int index = region_find_session(&reg, many[i]);
        assert_int_equal(out[i], index);
        if (index >= 0)
            found++;
    }
    assert_int_equal(found, TEST_SESSIONS);
    /* The first TEST_SESSIONS names got the entries. */
    assert_true(out[0] >= REGION_ENTRY_FIRST_SESSION);
    assert_true(out[TEST_SESSIONS - 1] >= REGION_ENTRY_FIRST_SESSION);
    for (int i = TEST_SESSIONS; i < N; i++)
        assert_int_equal(out[i], -1);
    /* The same list again: still EXTRA without room. */
    assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])many, N, out), EXTRA);
    /* Exactly TEST_SESSIONS fit. */
    assert_int_equal(
        set_sessions((const char(*)[REGION_NAME_MAX])many, TEST_SESSIONS, out), 0);
    /* The last TEST_SESSIONS: the first EXTRA leave, and their entries go
     * to the EXTRA newcomers in the same call. */
    assert_int_equal(
        set_sessions((const char(*)[REGION_NAME_MAX])many + EXTRA, TEST_SESSIONS, out),
        0);
    for (int i = 0; i < TEST_SESSIONS; i++) {
        assert_true(out[i] >= REGION_ENTRY_FIRST_SESSION);
        assert_int_equal(region_find_session(&reg, many[EXTRA + i]), out[i]);
    }
    for (int i = 0; i < EXTRA; i++)
        assert_int_equal(region_find_session(&reg, many[i]), -1);
    region_unlock(&reg);
}

/* A name WAHA lists twice takes one entry, and both places in INDEX_OUT
 * name it ("each name's entry, or -1 when there was no room"). */
static void test_set_sessions_name_twice(void **state)
{
    static const char twice[3][REGION_NAME_MAX] = {"x", "y", "x"};
    int out[3];

    (void)state;
    assert_int_equal(region_create(&reg, make_name("twice"), TEST_SESSIONS), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(set_sessions(twice, 3, out), 0);
    assert_true(out[0] >= REGION_ENTRY_FIRST_SESSION);
    assert_int_equal(out[2], out[0]);
    assert_int_not_equal(out[1], out[0]);
    /* Tracked already: the same. */
    assert_int_equal(set_sessions(twice, 3, out), 0);
    assert_int_equal(out[2], out[0]);
    region_unlock(&reg);
}

/*========================================================================
 * The name index
 */

/* Names WAHA holds although its rule refuses them now (docs/waha-api.md 9),
 * and names that differ from them only slightly. */
static void test_find_unusual_names(void **state)
{
    static const char odd[8][REGION_NAME_MAX] = {
        "sales.team",
        "a b",
        "caf\xc3\xa9",
        "\xe6\x97\xa5\xe6\x9c\xac",
        "A",
        "a",
        "123456789012345678901234567890123456789012345678901234567890123",
        "a/b%20"};
    static const char *const others[] = {"sales",        "salesteam", "a  b", "a b ",
                                         "cafe\xcc\x81", "caf",       "aa",   "",
                                         "/health",      "a/b%2",     "b"};
    int out[8];

    (void)state;
    assert_int_equal(strlen(odd[6]), REGION_NAME_MAX - 1);
    assert_int_equal(region_create(&reg, make_name("unusual"), TEST_SESSIONS), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(set_sessions(odd, 8, out), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(region_find_session(&reg, odd[i]), out[i]);
        assert_string_equal(region_entry(&reg, out[i])->d.name, odd[i]);
    }
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (region_find_session(&reg, others[i]) != -1)
            fail_msg("\"%s\" found", others[i]);
    region_unlock(&reg);
}

/* NAMES_OUT gets COUNT names whose hashes fall in the same slot of REG's
 * name index. */
static void colliding_names(char (*names_out)[REGION_NAME_MAX], int count)
{
    uint32_t mask = region_header(&reg)->index_size - 1, home;
    int found = 0;

    snprintf(names_out[0], REGION_NAME_MAX, "c0");
    home = region_name_hash(names_out[0]) & mask;
    found = 1;
    for (int i = 1; found < count && i < 100000; i++) {
        char name[REGION_NAME_MAX];
        snprintf(name, sizeof(name), "c%d", i);
        if ((region_name_hash(name) & mask) == home)
            memcpy(names_out[found++], name, REGION_NAME_MAX);
    }
    assert_int_equal(found, count);
}

/* Open addressing: names that collide are all found, also after the one
 * in their home slot leaves. */
static void test_find_colliding_names(void **state)
{
    static char c[4][REGION_NAME_MAX];
    int out[4];

    (void)state;
    assert_int_equal(region_create(&reg, make_name("collide"), TEST_SESSIONS), 0);
    assert_int_equal(region_lock(&reg), 0);
    colliding_names(c, 4);
    assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])c, 4, out), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(region_find_session(&reg, c[i]), out[i]);
    /* c[0] and c[2] leave. */
    memcpy(c[0], c[3], REGION_NAME_MAX);
    assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])c, 2, out), 0);
    assert_int_equal(region_find_session(&reg, c[1]), out[1]);
    assert_int_equal(region_find_session(&reg, c[0]), out[0]);
    assert_int_equal(region_find_session(&reg, "c0"), -1);
    region_unlock(&reg);
}

/* A thousand sessions, half of them leaving, half as many coming. */
static void test_find_at_scale(void **state)
{
    enum { N = 1000 };
    static char list[N][REGION_NAME_MAX];
    static int out[N];
    static bool used[REGION_ENTRY_FIRST_SESSION + N];

    (void)state;
    for (int i = 0; i < N; i++)
        snprintf(list[i], sizeof(list[i]), "session-%d", i);
    assert_int_equal(region_create(&reg, make_name("scale"), N), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])list, N, out), 0);
    memset(used, 0, sizeof(used));
    for (int i = 0; i < N; i++) {
        assert_true(out[i] >= REGION_ENTRY_FIRST_SESSION && out[i] < REGION_ENTRY_FIRST_SESSION + N);
        assert_false(used[out[i]]);
        used[out[i]] = true;
        if (region_find_session(&reg, list[i]) != out[i])
            fail_msg("%s not found at %d", list[i], out[i]);
    }
    /* The odd ones stay, the even ones go; newcomers take their places. */
    for (int i = 0; i < N / 2; i++)
        memcpy(list[i], list[2 * i + 1], REGION_NAME_MAX);
    for (int i = N / 2; i < N; i++)
        snprintf(list[i], sizeof(list[i]), "new.%d", i);
    assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])list, N, out), 0);
    for (int i = 0; i < N; i++)
        if (region_find_session(&reg, list[i]) != out[i] || out[i] < 0)
            fail_msg("%s not found", list[i]);
    for (int i = 0; i < N; i += 2) {
        char gone[REGION_NAME_MAX];
        snprintf(gone, sizeof(gone), "session-%d", i);
        assert_int_equal(region_find_session(&reg, gone), -1);
    }
    region_unlock(&reg);
}

/* The index's slots in use. */
static int index_used(void)
{
    const struct region_header *h = region_header(&reg);
    const int32_t *ix = (const int32_t *)((const char *)reg.base + h->index_offset);
    int used = 0;

    for (uint32_t i = 0; i < h->index_size; i++)
        used += ix[i] != 0;
    return used;
}

/* Sessions that come and go for a long time: the index holds exactly the
 * tracked names, never the ones that went (it would fill up, and then a
 * lookup of a name that is not there would never end). */
static void test_index_after_churn(void **state)
{
    static char list[TEST_SESSIONS][REGION_NAME_MAX];
    int out[TEST_SESSIONS];

    (void)state;
    assert_int_equal(region_create(&reg, make_name("churn"), TEST_SESSIONS), 0);
    assert_int_equal(region_lock(&reg), 0);
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < TEST_SESSIONS; i++)
            snprintf(list[i], sizeof(list[i]), "r%d-%d", round, i);
        /* Half the names new each round, the other half the round before's. */
        if (round > 0)
            for (int i = 0; i < TEST_SESSIONS; i += 2)
                snprintf(list[i], sizeof(list[i]), "r%d-%d", round - 1, i + 1);
        assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])list,
                                      round % 3 == 2 ? TEST_SESSIONS / 2 : TEST_SESSIONS,
                                      out),
                         0);
        for (int i = 0; i < (round % 3 == 2 ? TEST_SESSIONS / 2 : TEST_SESSIONS); i++)
            assert_int_equal(region_find_session(&reg, list[i]), out[i]);
        assert_int_equal(index_used(),
                         round % 3 == 2 ? TEST_SESSIONS / 2 : TEST_SESSIONS);
        assert_int_equal(region_find_session(&reg, "never-listed"), -1);
    }
    region_unlock(&reg);
}

static void test_name_hash(void **state)
{
    (void)state;
    /* FNV-1a, 32 bits: the published test vectors. */
    assert_int_equal(region_name_hash(""), 0x811c9dc5u);
    assert_int_equal(region_name_hash("a"), 0xe40c292cu);
    assert_int_equal(region_name_hash("foobar"), 0xbf9cf968u);
    /* Bytes above 0x7f count as unsigned (what other processes computing
     * the same hash, and the index across a restart, rely on). */
    assert_int_equal(region_name_hash("caf\xc3\xa9"), 0xa82b5049u);
    assert_int_equal(region_name_hash("\xe6\x97\xa5\xe6\x9c\xac"), 0x9f26ee51u);
}

/*========================================================================
 * Digests of recent event ids
 */

/* A digest made of N (any number: distinct N, distinct digests). */
static const uint8_t *digest(uint32_t n)
{
    static uint8_t d[REGION_DIGEST_LEN];

    memset(d, 0xa5, sizeof(d));
    memcpy(d + 3, &n, sizeof(n));
    return d;
}

static void test_event_seen(void **state)
{
    static const uint8_t zero[REGION_DIGEST_LEN];
    struct region_header *h;
    uint8_t d[REGION_DIGEST_LEN];

    (void)state;
    assert_int_equal(region_create(&reg, make_name("digests"), TEST_SESSIONS), 0);
    h = region_header(&reg);
    assert_int_equal(region_lock(&reg), 0);
    memcpy(d, digest(1), sizeof(d));
    assert_false(region_event_seen(&reg, d));
    assert_true(region_event_seen(&reg, d));
    assert_true(region_event_seen(&reg, d));
    assert_int_equal(h->event_digest_next, 1);
    /* One bit apart, first or last byte: another id. */
    d[0] ^= 1;
    assert_false(region_event_seen(&reg, d));
    d[0] ^= 1;
    d[REGION_DIGEST_LEN - 1] ^= 0x80;
    assert_false(region_event_seen(&reg, d));
    assert_int_equal(h->event_digest_next, 3);

    /* All zero (an envelope without an id) is never a duplicate, and takes
     * no place in the ring, although the ring starts out all zero. */
    assert_false(region_event_seen(&reg, zero));
    assert_false(region_event_seen(&reg, zero));
    assert_int_equal(h->event_digest_next, 3);
    region_unlock(&reg);
}

static void test_event_seen_ring(void **state)
{
    (void)state;
    assert_int_equal(region_create(&reg, make_name("ring"), TEST_SESSIONS), 0);
    assert_int_equal(region_lock(&reg), 0);
    for (uint32_t i = 0; i < REGION_EVENT_DIGESTS; i++)
        assert_false(region_event_seen(&reg, digest(i)));
    /* All REGION_EVENT_DIGESTS are remembered. */
    for (uint32_t i = 0; i < REGION_EVENT_DIGESTS; i++)
        if (!region_event_seen(&reg, digest(i)))
            fail_msg("digest %u forgotten too early", i);
    assert_int_equal(region_header(&reg)->event_digest_next, 0); /* wrapped */
    /* One more: the oldest goes, the rest stay. */
    assert_false(region_event_seen(&reg, digest(100000)));
    assert_true(region_event_seen(&reg, digest(100000)));
    assert_true(region_event_seen(&reg, digest(1)));
    assert_true(region_event_seen(&reg, digest(REGION_EVENT_DIGESTS - 1)));
    assert_false(region_event_seen(&reg, digest(0))); /* recorded again now... */
    assert_true(region_event_seen(&reg, digest(0)));
    assert_false(region_event_seen(&reg, digest(1))); /* ...which pushed out 1 */
    assert_false(region_event_seen(&reg, digest(2))); /* and 1 pushed out 2 */
    assert_true(region_event_seen(&reg, digest(4)));  /* 2 pushed out 3, not 4 */
    region_unlock(&reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_set_sessions),
        T(test_set_sessions_beyond_capacity),
        T(test_set_sessions_name_twice),
        T(test_find_unusual_names),
        T(test_find_colliding_names),
        T(test_find_at_scale),
        T(test_index_after_churn),
        T(test_name_hash),
        T(test_event_seen),
        T(test_event_seen_ring),
#undef T
    };

    return cmocka_run_group_tests_name("region_sessions", tests, group_setup,
                                       group_teardown);
}
