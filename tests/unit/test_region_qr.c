/*
 * test_region_qr.c - unit tests for the QR slots of common/region.c: their
 * place in the layout, qr_data_copy(), region_qr_clear(), their clearing
 * when region_set_sessions() frees or reassigns an entry, and their repair
 * when a writer died holding the lock in the middle of a QR write.
 *
 * Why: a slot that overlaps an entry or a stat slot corrupts both; a QR
 * inherited by the session that takes a freed entry, or a torn image left
 * after a crash, shows users a code that does not work (or another
 * session's). The regions, their names, the log file and each test's setup
 * and teardown are region_fixture.h's.
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

/*========================================================================
 * QR slots
 */

/* Store a QR (VALUE and a LEN-byte image of FILL) in slot Q. Lock held. */
static void put_qr(struct region_qr *q, const char *value, size_t len, int fill)
{
    region_qr_begin_write(&reg, q);
    q->d.has_qr = true;
    q->d.fetched_mono_ms = time_mono_ms();
    q->d.fetched_real_ms = time_real_ms();
    snprintf(q->d.value, sizeof(q->d.value), "%s", value);
    memset(q->d.png, fill, len);
    q->d.png_len = (uint32_t)len;
    region_qr_end_write(&reg, q, true);
}

static void test_qr_slots_layout(void **state)
{
    const char *name = make_name("qrlayout");
    struct region_header *h;
    char *base, *entries_end, *procs;
    size_t stride;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    h = region_header(&reg);
    base = reg.base;
    entries_end =
        (char *)region_entry(&reg, REGION_MAX_ENTRIES - 1) + sizeof(struct region_entry);
    procs = base + h->procs_offset;
    stride = (size_t)((char *)region_qr(&reg, REGION_ENTRY_FIRST_SESSION + 1) -
                      (char *)region_qr(&reg, REGION_ENTRY_FIRST_SESSION));
    assert_true(stride >= sizeof(struct region_qr));
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        char *q = (char *)region_qr(&reg, i);

        /* Inside the mapping, after the entries, before the stat slots. */
        assert_true(q >= entries_end);
        assert_true(q + sizeof(struct region_qr) <= procs);
        assert_true(q + sizeof(struct region_qr) <= base + reg.size);
        assert_int_equal((uintptr_t)q % 64, 0);
        /* Distinct and not overlapping: a constant stride. */
        if (i > REGION_ENTRY_FIRST_SESSION)
            assert_int_equal((size_t)(q - (char *)region_qr(&reg, i - 1)), stride);
        /* Fresh: no QR. */
        assert_false(region_qr(&reg, i)->d.has_qr);
        assert_int_equal(region_qr(&reg, i)->seq, 0);
        assert_int_equal(region_qr(&reg, i)->d.png_len, 0);
    }
    /* Writing the last slot's last byte touches neither a proc slot nor
     * the last session entry. */
    {
        struct region_qr *last = region_qr(&reg, REGION_MAX_ENTRIES - 1);
        struct region_entry *e = region_entry(&reg, REGION_MAX_ENTRIES - 1);
        uint64_t seq = e->seq;

        last->d.png[REGION_QR_PNG_MAX - 1] = 0xFF;
        assert_int_equal(region_proc(&reg, 0)->pid, 0);
        assert_int_equal(e->seq, seq);
        assert_int_equal(e->d.kind, ENTRY_FREE);
    }
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

static void test_qr_clear(void **state)
{
    const char *name = make_name("qrclear");
    struct region_qr *q;
    uint64_t gen;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    q = region_qr(&reg, REGION_ENTRY_FIRST_SESSION + 5);
    assert_int_equal(region_lock(&reg), 0);
    put_qr(q, "2@value", 1000, 0x89);
    assert_true(q->d.has_qr);
    gen = q->generation;
    region_qr_begin_write(&reg, q);
    assert_int_equal(q->seq % 2, 1);
    region_qr_clear(q);
    region_qr_end_write(&reg, q, true);
    region_unlock(&reg);
    expect_qr_cleared(q);
    assert_int_equal(q->generation, gen + 1);
}

static void test_set_sessions_clears_qr(void **state)
{
    const char *name = make_name("qrsessions");
    static const char ab[2][REGION_NAME_MAX] = {"a", "b"};
    static const char ac[2][REGION_NAME_MAX] = {"a", "c"};
    static const char acd[3][REGION_NAME_MAX] = {"a", "c", "d"};
    struct region_qr *qa, *qb;
    uint64_t gen_a, seq_a, gen_b;
    int ia, ib, ic, id, next_free = -1;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_set_sessions(&reg, ab, 2), 0);
    ia = region_find_session(&reg, "a");
    ib = region_find_session(&reg, "b");
    qa = region_qr(&reg, ia);
    qb = region_qr(&reg, ib);
    put_qr(qa, "2@a", 500, 'a');
    put_qr(qb, "2@b", 600, 'b');
    gen_a = qa->generation;
    seq_a = qa->seq;
    gen_b = qb->generation;

    /* b is freed: its QR goes with it; a keeps its QR. */
    assert_int_equal(region_set_sessions(&reg, ac, 2), 0);
    expect_qr_cleared(qb);
    assert_true(qb->generation > gen_b);
    assert_true(qa->d.has_qr);
    assert_string_equal(qa->d.value, "2@a");
    assert_int_equal(qa->d.png_len, 500);
    assert_int_equal(qa->seq, seq_a);
    assert_int_equal(qa->generation, gen_a);
    /* c, wherever it went, starts without a QR. */
    ic = region_find_session(&reg, "c");
    assert_true(ic >= REGION_ENTRY_FIRST_SESSION);
    expect_qr_cleared(region_qr(&reg, ic));

    /* A stale QR in the slot of a free entry is not inherited by the name
     * that takes the entry. */
    for (int i = REGION_ENTRY_FIRST_SESSION; i < REGION_MAX_ENTRIES; i++) {
        if (region_entry(&reg, i)->d.kind == ENTRY_FREE) {
            next_free = i;
            break;
        }
    }
    assert_true(next_free >= REGION_ENTRY_FIRST_SESSION);
    put_qr(region_qr(&reg, next_free), "2@stale", 700, 's');
    assert_int_equal(region_set_sessions(&reg, acd, 3), 0);
    id = region_find_session(&reg, "d");
    assert_int_equal(id, next_free);
    expect_qr_cleared(region_qr(&reg, id));
    assert_true(qa->d.has_qr);
    region_unlock(&reg);
}

static void test_robust_mutex_repairs_torn_qr(void **state)
{
    const char *name = make_name("robustqr");
    static const char two[2][REGION_NAME_MAX] = {"s1", "s2"};
    struct region_header *h;
    struct region_qr *q1, *q2;
    struct region_entry *e1, *e2;
    uint64_t qseq1, qgen1, qseq2, qgen2, eseq1, eseq2;
    int64_t before;
    pid_t pid;
    int status;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    h = region_header(&reg);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_set_sessions(&reg, two, 2), 0);
    e1 = region_entry(&reg, region_find_session(&reg, "s1"));
    e2 = region_entry(&reg, region_find_session(&reg, "s2"));
    q1 = region_qr(&reg, region_find_session(&reg, "s1"));
    q2 = region_qr(&reg, region_find_session(&reg, "s2"));
    put_data(e1, "SCAN_QR_CODE");
    put_data(e2, "SCAN_QR_CODE");
    put_qr(q1, "2@one", 800, 1);
    put_qr(q2, "2@two", 900, 2);
    region_unlock(&reg);
    qseq1 = q1->seq;
    qgen1 = q1->generation;
    qseq2 = q2->seq;
    qgen2 = q2->generation;
    eseq1 = e1->seq;
    eseq2 = e2->seq;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (region_lock(&reg) != 0)
            _exit(1);
        region_qr_begin_write(&reg, q1);
        snprintf(q1->d.value, sizeof(q1->d.value), "2@half");
        memset(q1->d.png, '#', 100);
        _exit(0); /* dies holding the lock, QR slot torn */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(q1->seq % 2, 1);

    before = time_mono_ms();
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(h->lock_recoveries, 1);
    /* The torn slot is cleared, whole again, and asked for anew. */
    expect_qr_cleared(q1);
    assert_true(q1->seq > qseq1);
    assert_true(q1->generation > qgen1);
    assert_true(q1->wanted_ms >= before);
    /* Nothing else was touched: the other slot, both entries. */
    assert_int_equal(q2->seq, qseq2);
    assert_int_equal(q2->generation, qgen2);
    assert_true(q2->d.has_qr);
    assert_string_equal(q2->d.value, "2@two");
    assert_int_equal(q2->d.png_len, 900);
    assert_int_equal(e1->seq, eseq1);
    assert_true(e1->d.has_data);
    assert_int_equal(e2->seq, eseq2);
    region_unlock(&reg);
    {
        char text[96];
        snprintf(text, sizeof(text), "held by pid %d, which died; 1 torn entry",
                 (int)pid);
        assert_true(log_contains(text));
    }
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
        T(test_qr_clear),
        T(test_set_sessions_clears_qr),
        T(test_robust_mutex_repairs_torn_qr),
#undef T
    };

    return cmocka_run_group_tests_name("region_qr", tests, group_setup, group_teardown);
}
