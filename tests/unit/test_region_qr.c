/*
 * test_region_qr.c - unit tests for the QR slots of common/region_qr.c: a
 * pool of min(server.max_sessions, REGION_QR_SLOTS_MAX) slots lent to
 * sessions waiting for a scan. Their place in the layout (region.c),
 * qr_data_copy(), region_qr_claim() (the session's own slot, else a free
 * one, else the one whose code was read longest ago), region_qr_release(),
 * region_qr_of() (entry and slot must name each other), their return when
 * region_set_sessions() frees an entry, and their repair (region.c) when a
 * writer died holding the lock in the middle of a QR write.
 *
 * Why: a slot that overlaps an entry or a stat slot corrupts both; a QR
 * inherited by the session that takes a freed entry, a slot taken from a
 * session while others are free, or a torn image left after a crash, shows
 * users a code that does not work (or another session's), or costs WAHA a
 * QR call for nothing. The regions, their names, the log file and each
 * test's setup and teardown are region_fixture.h's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "region.h"
#include "timeutil.h"

#include "region_fixture.h"

/* Store a QR (VALUE and a LEN-byte image of FILL) in slot Q. Lock held. */
static void put_qr(struct region_qr *q, const char *value, size_t len, int fill)
{
    region_qr_begin_write(&reg, q);
    q->d.has_qr = true;
    q->d.png_current = true;
    q->d.fetched_mono_ms = time_mono_ms();
    q->d.fetched_real_ms = time_real_ms();
    snprintf(q->d.value, sizeof(q->d.value), "%s", value);
    memset(q->d.png, fill, len);
    q->d.png_len = (uint32_t)len;
    region_qr_end_write(&reg, q, true);
}

/* The slot number of Q. */
static int slot_of(const struct region_qr *q)
{
    for (int s = 0; s < region_qr_count(&reg); s++)
        if (region_qr_slot(&reg, s) == q)
            return s;
    fail_msg("not a QR slot");
    return -1;
}

/* Sessions s0..s(N-1) in a region for N sessions; their entries in IX. */
static void sessions_region(const char *tag, int n, int *ix)
{
    static char list[100][REGION_NAME_MAX];

    assert_true(n <= 100);
    for (int i = 0; i < n; i++)
        snprintf(list[i], sizeof(list[i]), "s%d", i);
    assert_int_equal(region_create(&reg, make_name(tag), n), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(set_sessions((const char(*)[REGION_NAME_MAX])list, n, ix), 0);
    region_unlock(&reg);
}

static void read_qr_at(int index, int64_t when)
{
    atomic_store(&region_demand(&reg, index, DEMAND_QR)->last_read_ms, when);
}

/*========================================================================
 * Layout and copy
 */

static void test_qr_slots_layout(void **state)
{
    const char *name = make_name("qrlayout");
    struct region_header *h;
    char *base, *bodies_end, *index;
    size_t stride;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    h = region_header(&reg);
    base = reg.base;
    assert_int_equal(region_qr_count(&reg), TEST_SESSIONS);
    bodies_end = (char *)(region_body(&reg, region_entry_count(&reg) - 1) + 1);
    index = base + h->index_offset;
    stride = (size_t)((char *)region_qr_slot(&reg, 1) - (char *)region_qr_slot(&reg, 0));
    assert_true(stride >= sizeof(struct region_qr));
    for (int s = 0; s < region_qr_count(&reg); s++) {
        char *q = (char *)region_qr_slot(&reg, s);

        /* Inside the mapping, after the bodies, before the name index. */
        assert_true(q >= bodies_end);
        assert_true(q + sizeof(struct region_qr) <= index);
        assert_int_equal((uintptr_t)q % 64, 0);
        if (s > 0)
            assert_int_equal((size_t)(q - (char *)region_qr_slot(&reg, s - 1)), stride);
        /* Fresh: lent to nobody, no QR. */
        assert_int_equal(region_qr_slot(&reg, s)->entry, 0);
        assert_false(region_qr_slot(&reg, s)->d.has_qr);
        assert_int_equal(region_qr_slot(&reg, s)->seq, 0);
        assert_int_equal(region_qr_slot(&reg, s)->d.png_len, 0);
    }
    /* Writing the last slot's last byte touches neither the name index nor
     * the last body. */
    region_qr_slot(&reg, region_qr_count(&reg) - 1)->d.png[REGION_QR_PNG_MAX - 1] = 0xFF;
    for (uint32_t i = 0; i < h->index_size; i++)
        assert_int_equal(((int32_t *)index)[i], 0);
    assert_int_equal(region_proc(&reg, 0)->pid, 0);
}

static void test_qr_data_copy(void **state)
{
    static struct qr_data src, dst;

    (void)state;
    memset(&src, 0, sizeof(src));
    memset(&dst, 'X', sizeof(dst));
    src.has_qr = true;
    src.fetched_real_ms = REAL0;
    src.fetched_mono_ms = 4242;
    snprintf(src.value, sizeof(src.value), "2@abcdef==,xyz==,123==");
    for (int i = 0; i < 300; i++)
        src.png[i] = (unsigned char)(i * 7);
    memset(src.png + 300, 'S', sizeof(src.png) - 300);
    src.png_len = 300;

    qr_data_copy(&dst, &src);
    assert_true(dst.has_qr);
    assert_true(dst.fetched_real_ms == REAL0);
    assert_true(dst.fetched_mono_ms == 4242);
    assert_string_equal(dst.value, src.value);
    assert_int_equal(dst.png_len, 300);
    assert_memory_equal(dst.png, src.png, 300);
    /* Only png_len bytes of the image: the rest of DST is untouched. */
    for (size_t i = 300; i < sizeof(dst.png); i++)
        if (dst.png[i] != 'X')
            fail_msg("dst.png[%zu] overwritten", i);

    /* An empty image copies none of it. */
    memset(&dst, 'X', sizeof(dst));
    src.png_len = 0;
    qr_data_copy(&dst, &src);
    assert_int_equal(dst.png_len, 0);
    assert_int_equal(dst.png[0], 'X');

    /* A png_len beyond the buffer is clamped. */
    src.png_len = REGION_QR_PNG_MAX + 100;
    qr_data_copy(&dst, &src);
    assert_int_equal(dst.png_len, REGION_QR_PNG_MAX);
    assert_memory_equal(dst.png, src.png, REGION_QR_PNG_MAX);
}

/*========================================================================
 * Claim, release, and who owns a slot
 */

static void test_qr_claim_and_release(void **state)
{
    int ix[4];
    struct region_qr *qa, *qb;
    struct region_entry *ea;
    uint64_t eseq, egen, qgen, qseq;

    (void)state;
    sessions_region("qrclaim", 4, ix);
    ea = region_entry(&reg, ix[0]);
    assert_int_equal(region_lock(&reg), 0);
    assert_null(region_qr_of(&reg, ix[0]));

    /* A first claim lends a slot: the entry and the slot name each other;
     * the entry's write is not a change clients see. */
    eseq = ea->seq;
    egen = ea->generation;
    qa = region_qr_claim(&reg, ix[0]);
    assert_non_null(qa);
    assert_int_equal(qa->entry, ix[0]);
    assert_int_equal(ea->d.qr_slot, slot_of(qa) + 1);
    assert_ptr_equal(region_qr_of(&reg, ix[0]), qa);
    assert_int_equal(ea->seq, eseq + 2);
    assert_int_equal(ea->generation, egen);
    assert_int_equal(qa->seq % 2, 0);
    expect_qr_cleared(qa);

    /* Its own slot again, as it is: no write. */
    put_qr(qa, "2@a", 100, 'a');
    qseq = qa->seq;
    assert_ptr_equal(region_qr_claim(&reg, ix[0]), qa);
    assert_int_equal(qa->seq, qseq);
    assert_string_equal(qa->d.value, "2@a");

    /* Another session: another slot. */
    qb = region_qr_claim(&reg, ix[1]);
    assert_non_null(qb);
    assert_ptr_not_equal(qb, qa);
    assert_int_equal(qb->entry, ix[1]);
    assert_null(region_qr_of(&reg, ix[2]));

    /* Released: the slot is free and empty, the entry has none. */
    qgen = qa->generation;
    region_qr_release(&reg, ix[0]);
    assert_null(region_qr_of(&reg, ix[0]));
    assert_int_equal(ea->d.qr_slot, 0);
    assert_int_equal(qa->entry, 0);
    assert_int_equal(qa->generation, qgen + 1);
    expect_qr_cleared(qa);
    /* Released again (nothing to give back): no write at all. */
    qseq = qa->seq;
    eseq = ea->seq;
    region_qr_release(&reg, ix[0]);
    assert_int_equal(qa->seq, qseq);
    assert_int_equal(ea->seq, eseq);
    assert_int_equal(qb->entry, ix[1]);
    region_unlock(&reg);
}

/*
 * A session's slot is taken from it only when no slot is free. Once a
 * bug: a session that held a slot but whose code nobody had read yet (a
 * SCAN_QR_CODE event asks for the code before anyone reads it) counted as
 * "read at 0", the same as a free slot, and region_qr_claim() stopped at
 * it: the next session took that slot although others were free, and the
 * first one's code was fetched again when it was read.
 */
static void test_qr_claim_prefers_free_slot(void **state)
{
    int ix[4];
    struct region_qr *qa, *qb, *qc;

    (void)state;
    sessions_region("qrfree", 4, ix);
    assert_int_equal(region_lock(&reg), 0);
    qa = region_qr_claim(&reg, ix[0]); /* never read */
    put_qr(qa, "2@a", 10, 'a');
    qb = region_qr_claim(&reg, ix[1]);
    assert_ptr_not_equal(qb, qa);
    assert_ptr_equal(region_qr_of(&reg, ix[0]), qa);
    assert_string_equal(qa->d.value, "2@a");
    /* A read session with a free slot left: the free one too. */
    read_qr_at(ix[1], 5000);
    qc = region_qr_claim(&reg, ix[2]);
    assert_ptr_not_equal(qc, qa);
    assert_ptr_not_equal(qc, qb);
    assert_ptr_equal(region_qr_of(&reg, ix[0]), qa);
    assert_ptr_equal(region_qr_of(&reg, ix[1]), qb);
    region_unlock(&reg);
}

static void test_qr_claim_evicts_least_recently_read(void **state)
{
    enum { N = REGION_QR_SLOTS_MAX + 4 };
    int ix[N], victim;
    struct region_qr *q, *taken;
    uint64_t vseq;

    (void)state;
    sessions_region("qrevict", N, ix);
    assert_int_equal(region_qr_count(&reg), REGION_QR_SLOTS_MAX);
    assert_int_equal(region_lock(&reg), 0);
    /* Every slot lent; each session read at its own time, s7 longest ago. */
    for (int i = 0; i < REGION_QR_SLOTS_MAX; i++) {
        read_qr_at(ix[i], i == 7 ? 100 : 1000 + i);
        q = region_qr_claim(&reg, ix[i]);
        assert_non_null(q);
        put_qr(q, "2@code", 50, i);
    }
    taken = region_qr_of(&reg, ix[7]);
    vseq = region_entry(&reg, ix[7])->seq;

    /* One more: s7 loses its slot, which comes empty to the new one. */
    read_qr_at(ix[REGION_QR_SLOTS_MAX], 99999);
    q = region_qr_claim(&reg, ix[REGION_QR_SLOTS_MAX]);
    assert_ptr_equal(q, taken);
    assert_int_equal(q->entry, ix[REGION_QR_SLOTS_MAX]);
    expect_qr_cleared(q);
    assert_null(region_qr_of(&reg, ix[7]));
    assert_int_equal(region_entry(&reg, ix[7])->d.qr_slot, 0);
    assert_true(region_entry(&reg, ix[7])->seq > vseq);
    /* The others keep theirs and their codes. */
    for (int i = 0; i < REGION_QR_SLOTS_MAX; i++) {
        if (i == 7)
            continue;
        assert_non_null(region_qr_of(&reg, ix[i]));
        assert_string_equal(region_qr_of(&reg, ix[i])->d.value, "2@code");
    }

    /* Next: the least recently read is now s0 (read at 1000). */
    q = region_qr_claim(&reg, ix[REGION_QR_SLOTS_MAX + 1]);
    assert_null(region_qr_of(&reg, ix[0]));
    assert_int_equal(q->entry, ix[REGION_QR_SLOTS_MAX + 1]);

    /* A session whose code was never read goes before any that was. */
    victim = ix[REGION_QR_SLOTS_MAX + 1]; /* holds a slot, never read */
    read_qr_at(ix[1], 1);
    q = region_qr_claim(&reg, ix[REGION_QR_SLOTS_MAX + 2]);
    assert_null(region_qr_of(&reg, victim));
    assert_non_null(region_qr_of(&reg, ix[1]));
    assert_int_equal(q->entry, ix[REGION_QR_SLOTS_MAX + 2]);
    region_unlock(&reg);
}

/* region_qr_of() trusts neither side alone: the entry's qr_slot must name
 * a slot that names the entry back. */
static void test_qr_of_needs_both_sides(void **state)
{
    int ix[3];
    struct region_qr *q;
    struct region_entry *e;

    (void)state;
    sessions_region("qrof", 3, ix);
    assert_int_equal(region_lock(&reg), 0);
    q = region_qr_claim(&reg, ix[0]);
    e = region_entry(&reg, ix[1]);
    /* An entry that says it has the slot of another. */
    region_entry_begin_write(&reg, e);
    e->d.qr_slot = slot_of(q) + 1;
    region_entry_end_write(&reg, e, false);
    assert_null(region_qr_of(&reg, ix[1]));
    /* Out of range either way. */
    region_entry_begin_write(&reg, e);
    e->d.qr_slot = region_qr_count(&reg) + 1;
    region_entry_end_write(&reg, e, false);
    assert_null(region_qr_of(&reg, ix[1]));
    region_entry_begin_write(&reg, e);
    e->d.qr_slot = -5;
    region_entry_end_write(&reg, e, false);
    assert_null(region_qr_of(&reg, ix[1]));
    /* Releasing such an entry leaves the real owner's slot alone. */
    region_qr_release(&reg, ix[1]);
    assert_int_equal(e->d.qr_slot, 0);
    assert_ptr_equal(region_qr_of(&reg, ix[0]), q);
    region_unlock(&reg);
}

/* A slot that names no valid entry (only a damaged region has one) counts
 * as free, and is handed over empty. */
static void test_qr_claim_slot_of_no_entry(void **state)
{
    int ix[2];
    struct region_qr *q;

    (void)state;
    sessions_region("qrnoentry", 2, ix);
    assert_int_equal(region_lock(&reg), 0);
    for (int s = 0; s < region_qr_count(&reg); s++) {
        put_qr(region_qr_slot(&reg, s), "2@stray", 30, 's');
        region_qr_slot(&reg, s)->entry = region_entry_count(&reg) + s;
    }
    q = region_qr_claim(&reg, ix[0]);
    assert_non_null(q);
    assert_int_equal(q->entry, ix[0]);
    expect_qr_cleared(q);
    region_unlock(&reg);
}

static void test_set_sessions_releases_qr(void **state)
{
    static const char ab[2][REGION_NAME_MAX] = {"a", "b"};
    static const char ac[2][REGION_NAME_MAX] = {"a", "c"};
    struct region_qr *qa, *qb;
    uint64_t gen_a, seq_a, gen_b;
    int ia, ib, ic;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("qrsessions"), 2), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(set_sessions(ab, 2, NULL), 0);
    ia = region_find_session(&reg, "a");
    ib = region_find_session(&reg, "b");
    qa = region_qr_claim(&reg, ia);
    qb = region_qr_claim(&reg, ib);
    put_qr(qa, "2@a", 500, 'a');
    put_qr(qb, "2@b", 600, 'b');
    gen_a = qa->generation;
    seq_a = qa->seq;
    gen_b = qb->generation;

    /* b is freed: its slot goes back, empty; a keeps its slot and code. */
    assert_int_equal(set_sessions(ac, 2, NULL), 0);
    expect_qr_cleared(qb);
    assert_true(qb->generation > gen_b);
    assert_true(qa->d.has_qr);
    assert_string_equal(qa->d.value, "2@a");
    assert_int_equal(qa->d.png_len, 500);
    assert_int_equal(qa->seq, seq_a);
    assert_int_equal(qa->generation, gen_a);
    assert_ptr_equal(region_qr_of(&reg, ia), qa);
    /* c takes b's entry (the only free one) and no QR with it. */
    ic = region_find_session(&reg, "c");
    assert_int_equal(ic, ib);
    assert_null(region_qr_of(&reg, ic));
    assert_int_equal(region_entry(&reg, ic)->d.qr_slot, 0);
    /* Its claim gets an empty slot (b's, free again). */
    assert_ptr_equal(region_qr_claim(&reg, ic), qb);
    expect_qr_cleared(qb);
    region_unlock(&reg);
}

/*========================================================================
 * A writer dies in the middle of a QR write
 */

static struct region_qr *torn_q;

static void tear_qr(int unused)
{
    (void)unused;
    region_qr_begin_write(&reg, torn_q);
    snprintf(torn_q->d.value, sizeof(torn_q->d.value), "2@half");
    memset(torn_q->d.png, '#', 100);
}

static void test_robust_mutex_repairs_torn_qr(void **state)
{
    static const char two[2][REGION_NAME_MAX] = {"s1", "s2"};
    struct region_header *h;
    struct region_qr *q1, *q2;
    struct region_entry *e1, *e2;
    uint64_t qseq1, qgen1, qseq2, qgen2, eseq1, eseq2;
    int64_t before;
    pid_t pid;
    int i1, i2;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("robustqr"), TEST_SESSIONS), 0);
    h = region_header(&reg);
    i1 = track(two, 2);
    i2 = region_find_session(&reg, "s2");
    e1 = region_entry(&reg, i1);
    e2 = region_entry(&reg, i2);
    assert_int_equal(region_lock(&reg), 0);
    put_data(i1, "SCAN_QR_CODE");
    put_data(i2, "SCAN_QR_CODE");
    q1 = region_qr_claim(&reg, i1);
    q2 = region_qr_claim(&reg, i2);
    put_qr(q1, "2@one", 800, 1);
    put_qr(q2, "2@two", 900, 2);
    region_unlock(&reg);
    qseq1 = q1->seq;
    qgen1 = q1->generation;
    qseq2 = q2->seq;
    qgen2 = q2->generation;
    eseq1 = e1->seq;
    eseq2 = e2->seq;

    torn_q = q1;
    pid = die_holding_lock(tear_qr, 0);
    assert_int_equal(q1->seq % 2, 1);

    before = time_mono_ms();
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(h->lock_recoveries, 1);
    /* The torn slot is cleared, whole again, still s1's, and s1's code is
     * asked for anew. */
    expect_qr_cleared(q1);
    assert_true(q1->seq > qseq1);
    assert_true(q1->generation > qgen1);
    assert_ptr_equal(region_qr_of(&reg, i1), q1);
    assert_true(region_demand(&reg, i1, DEMAND_QR)->wanted_ms >= before);
    assert_int_equal(region_demand(&reg, i1, DEMAND_QR)->attempt_done_ms, 0);
    /* Nothing else was touched: the other slot, both entries. */
    assert_int_equal(q2->seq, qseq2);
    assert_int_equal(q2->generation, qgen2);
    assert_true(q2->d.has_qr);
    assert_string_equal(q2->d.value, "2@two");
    assert_int_equal(q2->d.png_len, 900);
    assert_int_equal(e1->seq, eseq1);
    assert_true(e1->d.has_data);
    assert_int_equal(e2->seq, eseq2);
    assert_int_equal(region_demand(&reg, i2, DEMAND_QR)->wanted_ms, 0);
    region_unlock(&reg);
    expect_repair_logged(pid, 1);
    assert_int_equal(region_lock(&reg), 0);
    region_unlock(&reg);
    assert_int_equal(h->lock_recoveries, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_qr_slots_layout),
        T(test_qr_data_copy),
        T(test_qr_claim_and_release),
        T(test_qr_claim_prefers_free_slot),
        T(test_qr_claim_evicts_least_recently_read),
        T(test_qr_of_needs_both_sides),
        T(test_qr_claim_slot_of_no_entry),
        T(test_set_sessions_releases_qr),
        T(test_robust_mutex_repairs_torn_qr),
#undef T
    };

    return cmocka_run_group_tests_name("region_qr", tests, group_setup, group_teardown);
}
