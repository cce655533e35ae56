/*
 * test_region.c - unit tests for common/region.c: creation and layout of
 * the POSIX shared-memory region (sized by server.max_sessions: entries,
 * their bodies, the QR slots, the name index, the stat slots, the rate-limit
 * table), the one-instance-per-name rule, leftover objects of a crashed run,
 * read-only attachment, the lock, the entry write protocol, region_want(),
 * and recovery of the robust mutex from a process that died holding it:
 * torn entries (health, list and sessions) discarded, a torn session's QR
 * slot given back, the name index rebuilt.
 *
 * Why: the region is the only state the master, the workers and the fetcher
 * share. A layout that overlaps, a second instance that can open a running
 * instance's region, a leftover that is trusted, or a lock that stays dead
 * after a crash would corrupt or freeze every process at once; and a reader
 * must never be served an entry a dead writer left half-written.
 *
 * The session table and its name index, and the digests of recent event
 * ids, are test_region_sessions.c's; the QR slots test_region_qr.c's; the
 * flap smoothing test_region_flap.c's; common/store.c, which writes through
 * the region, has its own tests (test_store.c).
 *
 * The regions, their names, the log file and each test's setup and
 * teardown are region_fixture.h's: every region has a name unique to this
 * process and is unlinked again, even when a test fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "region.h"
#include "timeutil.h"

#include "region_fixture.h"

static bool shm_exists(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/*========================================================================
 * Creation and layout
 */

/* The N regions' parts (entries, bodies, QR slots, name index, stat
 * slots, rate-limit table) follow each other in this order, aligned to 64
 * bytes, without overlap, inside the mapping. */
static void expect_layout(const struct region *r, int sessions)
{
    const struct region_header *h = region_header(r);
    int entries = REGION_ENTRY_FIRST_SESSION + sessions;
    int qrs = sessions < REGION_QR_SLOTS_MAX ? sessions : REGION_QR_SLOTS_MAX;
    const char *base = r->base, *end = base + r->size;
    const uint64_t offsets[] = {h->entries_offset, h->bodies_offset, h->qrs_offset,
                                h->index_offset,   h->procs_offset,  h->ratelimit_offset};
    const size_t sizes[] = {sizeof(struct region_entry) * (size_t)entries,
                            sizeof(struct entry_body) * (size_t)entries,
                            sizeof(struct region_qr) * (size_t)qrs,
                            sizeof(int32_t) * h->index_size,
                            sizeof(struct region_proc) * REGION_MAX_PROCS,
                            sizeof(struct ratelimit_table)};

    assert_int_equal(h->entry_count, entries);
    assert_int_equal(region_entry_count(r), entries);
    assert_int_equal(h->qr_count, qrs);
    assert_int_equal(region_qr_count(r), qrs);
    assert_int_equal(h->proc_count, REGION_MAX_PROCS);
    assert_int_equal(h->size, r->size);
    /* The name index: a power of two, at most half full. */
    assert_true(h->index_size >= 2u * (uint32_t)entries);
    assert_int_equal(h->index_size & (h->index_size - 1), 0);
    assert_true(h->entries_offset >= sizeof(struct region_header));
    for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
        assert_int_equal(offsets[k] % 64, 0);
        if (k + 1 < sizeof(offsets) / sizeof(offsets[0]))
            assert_true(offsets[k] + sizes[k] <= offsets[k + 1]);
        else
            assert_true(base + offsets[k] + sizes[k] <= end);
    }
    /* Every entry, body and slot where its offset and a constant stride
     * put it, not sharing a cache line with the next. */
    for (int i = 0; i < entries; i++) {
        assert_ptr_equal((const char *)region_entry(r, i),
                         (const char *)region_entry(r, 0) +
                             (size_t)i * (size_t)((const char *)region_entry(r, 1) -
                                                  (const char *)region_entry(r, 0)));
        assert_int_equal((uintptr_t)region_entry(r, i) % 64, 0);
        assert_int_equal((uintptr_t)region_body(r, i) % 64, 0);
        assert_true((const char *)region_body(r, i) >= base + h->bodies_offset);
        assert_true((const char *)(region_body(r, i) + 1) <= base + h->qrs_offset);
        if (i > 0)
            assert_true((const char *)region_entry(r, i) >=
                        (const char *)(region_entry(r, i - 1) + 1));
    }
    assert_ptr_equal(region_entry(r, 0), base + h->entries_offset);
    assert_ptr_equal(region_body(r, 0), base + h->bodies_offset);
    for (int s = 0; s < qrs; s++) {
        assert_int_equal((uintptr_t)region_qr_slot(r, s) % 64, 0);
        assert_true((const char *)(region_qr_slot(r, s) + 1) <= base + h->index_offset);
    }
    assert_ptr_equal(region_proc(r, 0), base + h->procs_offset);
    for (int i = 1; i < REGION_MAX_PROCS; i++)
        assert_true((const char *)region_proc(r, i) >=
                    (const char *)(region_proc(r, i - 1) + 1));
    assert_true((const char *)(region_proc(r, REGION_MAX_PROCS - 1) + 1) <=
                base + h->ratelimit_offset);
    assert_ptr_equal(region_ratelimit(r), base + h->ratelimit_offset);
}

static void test_create_layout(void **state)
{
    const char *name = make_name("layout");
    struct region_header *h;
    const int32_t *index;
    struct stat st;
    int fd;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    assert_non_null(reg.base);
    assert_true(reg.fd >= 0);
    assert_false(reg.read_only);
    assert_string_equal(reg.name, name);

    h = region_header(&reg);
    assert_ptr_equal(h, reg.base);
    assert_true(h->magic == REGION_MAGIC);
    assert_int_equal(h->layout_version, REGION_LAYOUT_VERSION);
    assert_int_equal(h->master_pid, getpid());
    assert_true(h->instance_id != 0);
    assert_int_equal(h->lock_recoveries, 0);
    assert_int_equal(h->lock_owner_pid, 0);
    assert_int_equal(h->table_generation, 0);
    assert_int_equal(h->untracked_sessions, 0);
    assert_int_equal(h->event_digest_next, 0);
    expect_layout(&reg, TEST_SESSIONS);

    /* The object's size is the mapping's. */
    fd = shm_open(name, O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    assert_int_equal((size_t)st.st_size, reg.size);

    /* Entry 0 is health, 2 and 3 WAHA's server version and status (named
     * by their paths); the list entry (1) and the sessions are free and
     * empty; no QR slot is lent; the name index is empty. */
    assert_int_equal(region_entry(&reg, REGION_ENTRY_HEALTH)->d.kind, ENTRY_HEALTH);
    assert_int_equal(region_entry(&reg, REGION_ENTRY_VERSION)->d.kind, ENTRY_SERVER);
    assert_string_equal(region_entry(&reg, REGION_ENTRY_VERSION)->d.name,
                        "/api/server/version");
    assert_int_equal(region_entry(&reg, REGION_ENTRY_SERVER)->d.kind, ENTRY_SERVER);
    assert_string_equal(region_entry(&reg, REGION_ENTRY_SERVER)->d.name, "/api/server/status");
    for (int i = 0; i < region_entry_count(&reg); i++) {
        struct region_entry *e = region_entry(&reg, i);
        if (i != REGION_ENTRY_HEALTH && i != REGION_ENTRY_VERSION && i != REGION_ENTRY_SERVER)
            assert_int_equal(e->d.kind, ENTRY_FREE);
        assert_false(e->d.has_data);
        assert_int_equal(e->seq % 2, 0);
        assert_int_equal(e->d.qr_slot, 0);
        assert_int_equal(e->d.body_len, 0);
        for (int k = 0; k < DEMAND_COUNT; k++)
            assert_int_equal(region_demand(&reg, i, (enum demand_kind)k)->wanted_ms, 0);
        if (i < REGION_ENTRY_FIRST_SESSION) {
            assert_string_equal(e->d.status, "UNKNOWN");
            assert_string_equal(e->d.me_json, "null");
        }
    }
    for (int s = 0; s < region_qr_count(&reg); s++) {
        assert_int_equal(region_qr_slot(&reg, s)->entry, 0);
        assert_false(region_qr_slot(&reg, s)->d.has_qr);
    }
    index = (const int32_t *)((const char *)reg.base + h->index_offset);
    for (uint32_t i = 0; i < h->index_size; i++)
        assert_int_equal(index[i], 0);
    for (int i = 0; i < REGION_MAX_PROCS; i++) {
        assert_int_equal(region_proc(&reg, i)->pid, 0);
        assert_int_equal(region_proc(&reg, i)->counters[COUNTER_REQUESTS], 0);
    }
    for (int c = 0; c < COUNTER_COUNT; c++)
        assert_int_equal(region_counter_sum(&reg, (enum counter)c), 0);

    region_destroy(&reg);
    assert_null(reg.base);
    assert_int_equal(reg.fd, -1);
    assert_false(shm_exists(name));
}

/* server.max_sessions sizes the region: one session at least, one QR slot
 * per session up to REGION_QR_SLOTS_MAX. */
static void test_create_sized_by_max_sessions(void **state)
{
    size_t small;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("size1"), 1), 0);
    expect_layout(&reg, 1);
    small = reg.size;
    region_destroy(&reg);

    /* 0 or less is taken as 1. */
    assert_int_equal(region_create(&reg, make_name("size0"), 0), 0);
    expect_layout(&reg, 1);
    assert_int_equal(reg.size, small);
    region_destroy(&reg);

    /* More sessions than QR slots: the pool stops at REGION_QR_SLOTS_MAX. */
    assert_int_equal(region_create(&reg, make_name("size100"), 100), 0);
    expect_layout(&reg, 100);
    assert_int_equal(region_qr_count(&reg), REGION_QR_SLOTS_MAX);
    assert_true(reg.size > small + 99 * sizeof(struct entry_body));
    region_destroy(&reg);

    assert_int_equal(region_create(&reg, make_name("size1000"), 1000), 0);
    expect_layout(&reg, 1000);
    /* The last entry and body are usable. */
    assert_int_equal(region_entry(&reg, 1001)->d.kind, ENTRY_FREE);
    region_body(&reg, 1001)->engine_json[REGION_ENGINE_MAX - 1] = 'x';
    assert_int_equal(region_qr_slot(&reg, 0)->entry, 0);
}

static void test_instance_ids_differ(void **state)
{
    const char *a = make_name("ida");
    const char *b = make_name("idb");

    (void)state;
    assert_int_equal(region_create(&reg, a, TEST_SESSIONS), 0);
    assert_int_equal(region_create(&reg2, b, TEST_SESSIONS), 0);
    assert_true(region_header(&reg)->instance_id != region_header(&reg2)->instance_id);
}

static void test_create_twice_fails_while_alive(void **state)
{
    const char *name = make_name("twice");
    uint64_t id;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    id = region_header(&reg)->instance_id;
    region_header(&reg)->workers_running = 3;

    assert_int_equal(region_create(&reg2, name, TEST_SESSIONS), -1);
    assert_null(reg2.base);
    assert_int_equal(reg2.fd, -1);
    /* The message names the running master. */
    {
        char pid_text[64];
        snprintf(pid_text, sizeof(pid_text), "master pid %d", (int)getpid());
        assert_true(log_contains(pid_text));
    }

    /* The running instance is untouched: same object, same content. */
    assert_true(shm_exists(name));
    assert_true(region_header(&reg)->magic == REGION_MAGIC);
    assert_true(region_header(&reg)->instance_id == id);
    assert_int_equal(region_header(&reg)->workers_running, 3);
    assert_int_equal(region_attach_read_only(&reg2, name, (char[128]){0}, 128), 0);
    assert_true(region_header(&reg2)->instance_id == id);
    region_detach(&reg2);
}

static void test_create_after_destroy(void **state)
{
    const char *name = make_name("again");

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    region_destroy(&reg);
    assert_false(shm_exists(name));
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    assert_true(region_header(&reg)->magic == REGION_MAGIC);
    assert_true(shm_exists(name));
}

static void test_leftover_is_recreated(void **state)
{
    const char *name = make_name("leftover");
    pid_t pid;
    int status;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct region r;
        if (region_create(&r, name, TEST_SESSIONS) != 0)
            _exit(1);
        region_header(&r)->workers_running = 4242;
        region_entry(&r, REGION_ENTRY_HEALTH)->d.has_data = true;
        _exit(0); /* crash: no destroy; the flock goes with the process */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(shm_exists(name));

    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    /* A new object, laid out afresh, not the crashed run's. */
    assert_true(region_header(&reg)->magic == REGION_MAGIC);
    assert_int_equal(region_header(&reg)->master_pid, getpid());
    assert_int_equal(region_header(&reg)->workers_running, 0);
    assert_false(region_entry(&reg, REGION_ENTRY_HEALTH)->d.has_data);
    assert_true(log_contains("left by a crashed run"));
}

static void test_leftover_garbage_is_recreated(void **state)
{
    const char *name = make_name("garbage");
    int fd;

    (void)state;
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 100), 0);
    assert_int_equal(write(fd, "not a region", 12), 12);
    close(fd);

    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    assert_true(region_header(&reg)->magic == REGION_MAGIC);
    assert_int_equal(region_header(&reg)->size, reg.size);
}

/*========================================================================
 * Read-only attachment
 */

static void test_attach_read_only_sees_writer(void **state)
{
    const char *name = make_name("ro");
    char why[256] = "";
    struct region_proc *p3, *p7;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    p3 = region_proc(&reg, 3);
    p7 = region_proc(&reg, 7);
    p3->pid = 1003;
    p3->role = ROLE_WORKER;
    region_count(p3, COUNTER_REQUESTS, 5);
    region_count(p7, COUNTER_REQUESTS, 2);
    region_count(p7, COUNTER_CACHE_HITS, 9);
    region_header(&reg)->workers_running = 2;

    assert_int_equal(region_attach_read_only(&reg2, name, why, sizeof(why)), 0);
    assert_true(reg2.read_only);
    assert_int_equal(reg2.size, reg.size);
    assert_true(region_header(&reg2)->instance_id == region_header(&reg)->instance_id);
    assert_int_equal(region_counter_sum(&reg2, COUNTER_REQUESTS), 7);
    assert_int_equal(region_counter_sum(&reg2, COUNTER_CACHE_HITS), 9);
    assert_int_equal(region_counter_sum(&reg2, COUNTER_ERRORS), 0);
    assert_int_equal(region_proc(&reg2, 3)->pid, 1003);
    assert_int_equal(region_header(&reg2)->workers_running, 2);

    /* Later stores are seen through the shared mapping. */
    region_count(p3, COUNTER_REQUESTS, 10);
    assert_int_equal(region_counter_sum(&reg2, COUNTER_REQUESTS), 17);
    assert_int_equal(region_lock(&reg), 0);
    put_data(REGION_ENTRY_HEALTH, "ok");
    region_unlock(&reg);
    assert_true(region_entry(&reg2, REGION_ENTRY_HEALTH)->d.has_data);
    assert_string_equal(region_entry(&reg2, REGION_ENTRY_HEALTH)->d.status, "ok");

    region_detach(&reg2);
    assert_null(reg2.base);
    /* Detaching the reader leaves the writer's object alone. */
    assert_true(shm_exists(name));
}

static void test_attach_missing_name(void **state)
{
    const char *name = make_name("missing");
    char why[256] = "";

    (void)state;
    assert_int_equal(region_attach_read_only(&reg2, name, why, sizeof(why)), -1);
    assert_null(reg2.base);
    assert_non_null(strstr(why, name));
}

static void make_object(const char *name, size_t size, const void *head, size_t head_len)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    if (head_len > 0)
        assert_int_equal(pwrite(fd, head, head_len, 0), (ssize_t)head_len);
    close(fd);
}

static void test_attach_rejects_other_objects(void **state)
{
    const char *probe = make_name("probe");
    const char *zero = make_name("zero");
    const char *small = make_name("small");
    const char *version = make_name("version");
    char why[256];
    size_t size;
    struct region_header h;

    (void)state;
    /* Learn the region's size from a real one. */
    assert_int_equal(region_create(&reg, probe, TEST_SESSIONS), 0);
    size = reg.size;
    h = *region_header(&reg);
    region_destroy(&reg);

    /* Right size, all zero: wrong magic. */
    make_object(zero, size, NULL, 0);
    why[0] = '\0';
    assert_int_equal(region_attach_read_only(&reg2, zero, why, sizeof(why)), -1);
    assert_null(reg2.base);
    assert_non_null(strstr(why, zero));

    /* Smaller than a header. */
    make_object(small, 16, "WAHAGATE", 8);
    why[0] = '\0';
    assert_int_equal(region_attach_read_only(&reg2, small, why, sizeof(why)), -1);
    assert_null(reg2.base);
    assert_non_null(strstr(why, "not a wahagate region"));

    /* Right magic and size, another layout version. */
    h.layout_version = REGION_LAYOUT_VERSION + 1;
    make_object(version, size, &h, sizeof(h));
    why[0] = '\0';
    assert_int_equal(region_attach_read_only(&reg2, version, why, sizeof(why)), -1);
    assert_null(reg2.base);
    assert_non_null(strstr(why, "layout"));

    assert_int_equal(shm_unlink(zero), 0);
    assert_int_equal(shm_unlink(small), 0);
    assert_int_equal(shm_unlink(version), 0);
}

/*========================================================================
 * Lock and entry writes
 */

static void test_lock_unlock(void **state)
{
    const char *name = make_name("lock");
    struct region_header *h;
    uint64_t before;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    h = region_header(&reg);
    before = h->lock_acquisitions;
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(h->lock_owner_pid, getpid());
    region_assert_held(&reg); /* does not abort */
    region_unlock(&reg);
    assert_int_equal(h->lock_owner_pid, 0);
    assert_int_equal(region_lock(&reg), 0);
    region_unlock(&reg);
    assert_int_equal(h->lock_acquisitions, before + 2);
    assert_int_equal(h->lock_recoveries, 0);
}

static void test_assert_held_aborts_without_lock(void **state)
{
    const char *name = make_name("assert");
    pid_t pid;
    int status;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core); /* the abort is expected */
        region_assert_held(&reg);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_entry_write_seq_and_generation(void **state)
{
    const char *name = make_name("seq");
    struct region_entry *e;
    uint64_t seq, gen;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    e = region_entry(&reg, REGION_ENTRY_HEALTH);
    seq = e->seq;
    gen = e->generation;
    assert_int_equal(seq % 2, 0);

    assert_int_equal(region_lock(&reg), 0);
    region_entry_begin_write(&reg, e);
    assert_int_equal(e->seq, seq + 1);
    assert_int_equal(e->seq % 2, 1);
    region_entry_end_write(&reg, e, false);
    assert_int_equal(e->seq, seq + 2);
    assert_int_equal(e->generation, gen); /* nothing a client sees changed */

    region_entry_begin_write(&reg, e);
    assert_int_equal(e->seq % 2, 1);
    region_entry_end_write(&reg, e, true);
    assert_int_equal(e->seq, seq + 4);
    assert_int_equal(e->generation, gen + 1);
    region_unlock(&reg);
}

static void test_entry_data_copy(void **state)
{
    static struct entry_data src, dst;

    (void)state;
    memset(&src, 0, sizeof(src));
    memset(&dst, 'X', sizeof(dst));
    snprintf(src.name, sizeof(src.name), "default");
    snprintf(src.status, sizeof(src.status), "WORKING");
    snprintf(src.absent_reason, sizeof(src.absent_reason), "no");
    src.has_data = true;
    src.qr_slot = 3;
    src.body_len = 7;
    src.engine_len = 2;
    entry_data_copy(&dst, &src);
    assert_string_equal(dst.name, "default");
    assert_string_equal(dst.status, "WORKING");
    assert_string_equal(dst.absent_reason, "no");
    assert_true(dst.has_data);
    assert_int_equal(dst.qr_slot, 3);
    assert_int_equal(dst.body_len, 7);
    assert_int_equal(dst.engine_len, 2);

    /* Lengths beyond the buffers are clamped, and the name terminated. */
    memset(src.name, 'n', sizeof(src.name));
    src.body_len = REGION_BODY_MAX + 100;
    src.engine_len = REGION_ENGINE_MAX;
    entry_data_copy(&dst, &src);
    assert_int_equal(dst.body_len, REGION_BODY_MAX - 1);
    assert_int_equal(dst.engine_len, REGION_ENGINE_MAX - 1);
    assert_int_equal(strlen(dst.name), REGION_NAME_MAX - 1);
}

static void test_entry_body_copy(void **state)
{
    static struct entry_body src, dst;
    struct entry_data d;

    (void)state;
    memset(&src, 'S', sizeof(src));
    memset(&dst, 'X', sizeof(dst));
    memset(&d, 0, sizeof(d));
    memcpy(src.body, "{\"a\":1}", 7);
    memcpy(src.engine_json, "{}", 2);
    d.body_len = 7;
    d.engine_len = 2;
    entry_body_copy(&dst, &src, &d);
    assert_string_equal(dst.body, "{\"a\":1}");
    assert_string_equal(dst.engine_json, "{}");
    /* Only the used bytes and a NUL: the rest of DST is untouched. */
    assert_int_equal(dst.body[8], 'X');
    assert_int_equal(dst.engine_json[3], 'X');

    /* Nothing used: two empty strings. */
    d.body_len = d.engine_len = 0;
    entry_body_copy(&dst, &src, &d);
    assert_string_equal(dst.body, "");
    assert_string_equal(dst.engine_json, "");

    /* The largest lengths entry_data_copy() lets through. */
    d.body_len = REGION_BODY_MAX - 1;
    d.engine_len = REGION_ENGINE_MAX - 1;
    entry_body_copy(&dst, &src, &d);
    assert_int_equal(strlen(dst.body), REGION_BODY_MAX - 1);
    assert_int_equal(strlen(dst.engine_json), REGION_ENGINE_MAX - 1);
}

static void test_want(void **state)
{
    struct demand *dm;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("want"), TEST_SESSIONS), 0);
    dm = region_demand(&reg, 2, DEMAND_DETAILS);
    /* Nothing attempted yet: wanted now. */
    region_want(&reg, 2, DEMAND_DETAILS, 5000);
    assert_int_equal(dm->wanted_ms, 5000);
    /* Wanted again before an attempt ended: the first want stands, so one
     * attempt answers both readers. */
    region_want(&reg, 2, DEMAND_DETAILS, 6000);
    assert_int_equal(dm->wanted_ms, 5000);
    /* An attempt ended at 7000: a new want is after it. */
    atomic_store(&dm->attempt_done_ms, 7000);
    region_want(&reg, 2, DEMAND_DETAILS, 8000);
    assert_int_equal(dm->wanted_ms, 8000);
    /* An attempt that ended "later" than the reader's now (another
     * process's clock reading): the want is still newer than it. */
    atomic_store(&dm->attempt_done_ms, 9000);
    region_want(&reg, 2, DEMAND_DETAILS, 8500);
    assert_int_equal(dm->wanted_ms, 9001);
    /* The other kinds and entries are untouched. */
    assert_int_equal(region_demand(&reg, 2, DEMAND_DATA)->wanted_ms, 0);
    assert_int_equal(region_demand(&reg, 2, DEMAND_QR)->wanted_ms, 0);
    assert_int_equal(region_demand(&reg, 3, DEMAND_DETAILS)->wanted_ms, 0);
    assert_ptr_equal(region_demand(&reg, 3, DEMAND_QR),
                     &region_entry(&reg, 3)->demand[DEMAND_QR]);
}

/*========================================================================
 * Robust mutex: a writer dies holding the lock in the middle of a write.
 */

/* What the dying writers below leave half-written. */
static void tear_entry(int index)
{
    struct region_entry *e = region_entry(&reg, index);

    region_entry_begin_write(&reg, e);
    snprintf(e->d.status, sizeof(e->d.status), "HALF_WRITT");
    e->d.has_data = true;
    memset(region_body(&reg, index)->body, '#', 100);
}

static void tear_health_and_list(int unused)
{
    (void)unused;
    tear_entry(REGION_ENTRY_HEALTH);
    tear_entry(REGION_ENTRY_LIST);
}

/* Dies inside region_set_sessions(): the free entry INDEX half given to
 * "s4", which is not in the name index yet. */
static void tear_take_entry(int index)
{
    struct region_entry *e = region_entry(&reg, index);

    region_entry_begin_write(&reg, e);
    region_entry_reset(e, ENTRY_SESSION, "s4");
}

/* Entry I, repaired: whole again, no data, its kind and name kept, its
 * data and details asked for anew (since BEFORE), readable again. */
static void expect_repaired(int i, enum entry_kind kind, const char *name, uint64_t seq,
                            uint64_t gen, int64_t before)
{
    struct region_entry *e = region_entry(&reg, i);

    assert_int_equal(e->seq % 2, 0);
    assert_true(e->seq > seq);
    assert_true(e->generation > gen);
    assert_false(e->d.has_data);
    assert_int_equal(e->d.kind, kind);
    assert_string_equal(e->d.name, name);
    assert_string_equal(e->d.status, "UNKNOWN");
    assert_string_equal(e->d.me_json, "null");
    assert_int_equal(e->d.body_len, 0);
    assert_int_equal(e->d.qr_slot, 0);
    for (int k = DEMAND_DATA; k <= DEMAND_DETAILS; k++) {
        assert_true(region_demand(&reg, i, (enum demand_kind)k)->wanted_ms >= before);
        assert_int_equal(region_demand(&reg, i, (enum demand_kind)k)->attempt_done_ms, 0);
    }
}

static void test_robust_mutex_recovery(void **state)
{
    static const char three[3][REGION_NAME_MAX] = {"s1", "s2", "s3"};
    struct region_header *h;
    struct region_entry *e1, *e2, *health;
    struct region_qr *q1;
    uint64_t seq1, gen1, seq2, gen2, health_seq, qgen;
    int64_t before;
    pid_t pid;
    int i1, i2;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("robust"), TEST_SESSIONS), 0);
    h = region_header(&reg);
    i1 = track(three, 3);
    assert_int_equal(region_lock(&reg), 0);
    i2 = region_find_session(&reg, "s2");
    e1 = region_entry(&reg, i1);
    e2 = region_entry(&reg, i2);
    health = region_entry(&reg, REGION_ENTRY_HEALTH);
    put_data(i1, "SCAN_QR_CODE");
    put_data(i2, "SCAN_QR_CODE");
    put_data(REGION_ENTRY_HEALTH, "ok");
    /* s1 waits for a scan with a QR slot of its own. */
    q1 = region_qr_claim(&reg, i1);
    assert_non_null(q1);
    assert_non_null(region_qr_claim(&reg, i2));
    region_unlock(&reg);
    seq1 = e1->seq;
    gen1 = e1->generation;
    seq2 = e2->seq;
    gen2 = e2->generation;
    health_seq = health->seq;
    qgen = q1->generation;

    pid = die_holding_lock(tear_entry, i1);
    assert_int_equal(e1->seq % 2, 1);

    before = time_mono_ms();
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(h->lock_recoveries, 1);
    assert_int_equal(h->lock_owner_pid, getpid());

    /* The torn entry is discarded, kept as a session to refresh, and its
     * QR slot is given back (its code belonged to the data discarded). */
    expect_repaired(i1, ENTRY_SESSION, "s1", seq1, gen1, before);
    assert_int_equal(region_find_session(&reg, "s1"), i1);
    assert_null(region_qr_of(&reg, i1));
    assert_int_equal(q1->entry, 0);
    assert_true(q1->generation > qgen);
    assert_int_equal(q1->seq % 2, 0);

    /* The others are untouched, s2's QR slot too. */
    assert_int_equal(e2->seq, seq2);
    assert_int_equal(e2->generation, gen2);
    assert_true(e2->d.has_data);
    assert_string_equal(e2->d.status, "SCAN_QR_CODE");
    assert_non_null(region_qr_of(&reg, i2));
    assert_int_equal(health->seq, health_seq);
    assert_true(health->d.has_data);
    assert_string_equal(health->d.status, "ok");
    assert_int_equal(region_find_session(&reg, "s2"), i2);
    assert_true(region_find_session(&reg, "s3") >= REGION_ENTRY_FIRST_SESSION);
    region_unlock(&reg);
    expect_repair_logged(pid, 1);

    /* The mutex is consistent again: plain lock/unlock, no more recoveries. */
    assert_int_equal(region_lock(&reg), 0);
    region_unlock(&reg);
    assert_int_equal(region_lock(&reg), 0);
    region_unlock(&reg);
    assert_int_equal(h->lock_recoveries, 1);
}

/* Entries 0 (health) and 1 (the session list) are repaired like the
 * sessions, keeping their kinds (and the health entry its endpoint). */
static void test_robust_mutex_repairs_health_and_list(void **state)
{
    struct region_entry *health, *list;
    uint64_t hseq, hgen, lseq, lgen;
    int64_t before;
    pid_t pid;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("robusthl"), TEST_SESSIONS), 0);
    health = region_entry(&reg, REGION_ENTRY_HEALTH);
    list = region_entry(&reg, REGION_ENTRY_LIST);
    assert_int_equal(region_lock(&reg), 0);
    region_entry_begin_write(&reg, health);
    snprintf(health->d.name, sizeof(health->d.name), "/ping");
    region_entry_end_write(&reg, health, false);
    put_data(REGION_ENTRY_HEALTH, "pong");
    region_entry_begin_write(&reg, list);
    list->d.kind = ENTRY_SESSION_LIST;
    region_entry_end_write(&reg, list, false);
    put_data(REGION_ENTRY_LIST, "3");
    region_unlock(&reg);
    hseq = health->seq;
    hgen = health->generation;
    lseq = list->seq;
    lgen = list->generation;

    pid = die_holding_lock(tear_health_and_list, 0);
    before = time_mono_ms();
    assert_int_equal(region_lock(&reg), 0);
    expect_repaired(REGION_ENTRY_HEALTH, ENTRY_HEALTH, "/ping", hseq, hgen, before);
    expect_repaired(REGION_ENTRY_LIST, ENTRY_SESSION_LIST, "", lseq, lgen, before);
    region_unlock(&reg);
    expect_repair_logged(pid, 2);
}

/* A writer that died inside region_set_sessions(), an entry half given to
 * a new name: the entry is kept for that name, and the name index, which
 * did not have it yet, is rebuilt with it. */
static void test_robust_mutex_rebuilds_name_index(void **state)
{
    static const char three[3][REGION_NAME_MAX] = {"s1", "s2", "s3"};
    int free_entry = -1;
    pid_t pid;

    (void)state;
    assert_int_equal(region_create(&reg, make_name("robustix"), TEST_SESSIONS), 0);
    track(three, 3);
    for (int i = REGION_ENTRY_FIRST_SESSION; i < region_entry_count(&reg); i++)
        if (region_entry(&reg, i)->d.kind == ENTRY_FREE && free_entry < 0)
            free_entry = i;
    assert_true(free_entry > 0);

    pid = die_holding_lock(tear_take_entry, free_entry);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_find_session(&reg, "s4"), free_entry);
    for (int n = 0; n < 3; n++)
        assert_true(region_find_session(&reg, three[n]) >= REGION_ENTRY_FIRST_SESSION);
    assert_int_equal(region_entry(&reg, free_entry)->seq % 2, 0);
    region_unlock(&reg);
    expect_repair_logged(pid, 1);
}

static void tear_nothing(int unused)
{
    (void)unused; /* dies holding the lock, between writes */
}

static void test_robust_mutex_dead_holder_without_write(void **state)
{
    const char *name = make_name("robust2");
    static const char one[1][REGION_NAME_MAX] = {"s1"};
    struct region_entry *e1;
    uint64_t seq1;
    int i1;

    (void)state;
    assert_int_equal(region_create(&reg, name, TEST_SESSIONS), 0);
    i1 = track(one, 1);
    e1 = region_entry(&reg, i1);
    assert_int_equal(region_lock(&reg), 0);
    put_data(i1, "WORKING");
    region_unlock(&reg);
    seq1 = e1->seq;

    die_holding_lock(tear_nothing, 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_header(&reg)->lock_recoveries, 1);
    assert_true(e1->d.has_data);
    assert_int_equal(e1->seq, seq1);
    region_unlock(&reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_create_layout),
        T(test_create_sized_by_max_sessions),
        T(test_instance_ids_differ),
        T(test_create_twice_fails_while_alive),
        T(test_create_after_destroy),
        T(test_leftover_is_recreated),
        T(test_leftover_garbage_is_recreated),
        T(test_attach_read_only_sees_writer),
        T(test_attach_missing_name),
        T(test_attach_rejects_other_objects),
        T(test_lock_unlock),
        T(test_assert_held_aborts_without_lock),
        T(test_entry_write_seq_and_generation),
        T(test_entry_data_copy),
        T(test_entry_body_copy),
        T(test_want),
        T(test_robust_mutex_recovery),
        T(test_robust_mutex_repairs_health_and_list),
        T(test_robust_mutex_rebuilds_name_index),
        T(test_robust_mutex_dead_holder_without_write),
#undef T
    };

    return cmocka_run_group_tests_name("region", tests, group_setup, group_teardown);
}
