/*
 * test_region.c - unit tests for common/region.c: creation and layout of
 * the POSIX shared-memory region, the one-instance-per-name rule, leftover
 * objects of a crashed run, read-only attachment, the lock, the entry write
 * protocol, the session table, and recovery of the robust mutex from a
 * process that died holding it.
 *
 * Why: the region is the only state the master, the workers and the fetcher
 * share. A layout that overlaps, a second instance that can open a running
 * instance's region, a leftover that is trusted, or a lock that stays dead
 * after a crash would corrupt or freeze every process at once; and a reader
 * must never be served an entry a dead writer left half-written.
 *
 * Also tested here, because they live in the region: the flap smoothing of
 * published statuses (entry_observe_status(), docs/design.md
 * backend.flap_hold: a change away from WORKING is published only once it
 * has lasted that long), the ring of recent webhook ids that drops WAHA's
 * retried deliveries, and the QR slots (layout, copy, clearing, repair after
 * a writer died). A status published too early makes every dashboard flash
 * "disconnected" on a reconnect; one published too late hides a real
 * logout. common/store.c, which writes through the region, has its own
 * tests (test_store.c).
 *
 * The regions, their names, the log file and each test's setup and
 * teardown are region_fixture.h's (shared with test_store.c): every region
 * has a name unique to this process and is unlinked again, even when a test
 * fails. Times given to entry_observe_status() are explicit.
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

static void test_create_layout(void **state)
{
    const char *name = make_name("layout");
    struct region_header *h;
    struct stat st;
    char *base, *end;
    size_t stride;
    int fd;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    assert_non_null(reg.base);
    assert_true(reg.fd >= 0);
    assert_false(reg.read_only);
    assert_string_equal(reg.name, name);

    h = region_header(&reg);
    assert_ptr_equal(h, reg.base);
    assert_true(h->magic == REGION_MAGIC);
    assert_int_equal(h->layout_version, REGION_LAYOUT_VERSION);
    assert_int_equal(h->size, reg.size);
    assert_int_equal(h->entry_count, REGION_MAX_ENTRIES);
    assert_int_equal(h->proc_count, REGION_MAX_PROCS);
    assert_int_equal(h->master_pid, getpid());
    assert_true(h->instance_id != 0);
    assert_int_equal(h->lock_recoveries, 0);
    assert_int_equal(h->lock_owner_pid, 0);
    assert_int_equal(h->table_generation, 0);

    /* The object's size is the mapping's. */
    fd = shm_open(name, O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    assert_int_equal((size_t)st.st_size, reg.size);

    /* Fixed offsets: entries at entries_offset, a constant stride, procs
     * after the entries, nothing outside the mapping. */
    base = reg.base;
    end = base + reg.size;
    assert_true(h->entries_offset >= sizeof(struct region_header));
    assert_ptr_equal(region_entry(&reg, 0), base + h->entries_offset);
    stride = (size_t)((char *)region_entry(&reg, 1) - (char *)region_entry(&reg, 0));
    assert_true(stride >= sizeof(struct region_entry));
    for (int i = 1; i < REGION_MAX_ENTRIES; i++)
        assert_int_equal(
            (size_t)((char *)region_entry(&reg, i) - (char *)region_entry(&reg, i - 1)),
            stride);
    assert_true((char *)region_entry(&reg, REGION_MAX_ENTRIES - 1) +
                    sizeof(struct region_entry) <=
                base + h->procs_offset);
    assert_ptr_equal(region_proc(&reg, 0), base + h->procs_offset);
    stride = (size_t)((char *)region_proc(&reg, 1) - (char *)region_proc(&reg, 0));
    assert_true(stride >= sizeof(struct region_proc));
    for (int i = 1; i < REGION_MAX_PROCS; i++)
        assert_int_equal(
            (size_t)((char *)region_proc(&reg, i) - (char *)region_proc(&reg, i - 1)),
            stride);
    assert_true((char *)region_proc(&reg, REGION_MAX_PROCS - 1) +
                    sizeof(struct region_proc) <=
                end);
    /* Aligned: entries and slots do not share cache lines. */
    assert_int_equal(h->entries_offset % 64, 0);
    assert_int_equal(h->procs_offset % 64, 0);
    assert_int_equal(((uintptr_t)region_entry(&reg, 1)) % 64, 0);

    /* Entry 0 is health, the rest are free and empty. */
    assert_int_equal(region_entry(&reg, REGION_ENTRY_HEALTH)->d.kind, ENTRY_HEALTH);
    for (int i = 0; i < REGION_MAX_ENTRIES; i++) {
        struct region_entry *e = region_entry(&reg, i);
        if (i != REGION_ENTRY_HEALTH)
            assert_int_equal(e->d.kind, ENTRY_FREE);
        assert_false(e->d.has_data);
        assert_int_equal(e->seq % 2, 0);
        assert_string_equal(e->d.status, "UNKNOWN");
        assert_string_equal(e->d.me_json, "null");
    }
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

static void test_instance_ids_differ(void **state)
{
    const char *a = make_name("ida");
    const char *b = make_name("idb");

    (void)state;
    assert_int_equal(region_create(&reg, a), 0);
    assert_int_equal(region_create(&reg2, b), 0);
    assert_true(region_header(&reg)->instance_id != region_header(&reg2)->instance_id);
}

static void test_create_twice_fails_while_alive(void **state)
{
    const char *name = make_name("twice");
    uint64_t id;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    id = region_header(&reg)->instance_id;
    region_header(&reg)->workers_running = 3;

    assert_int_equal(region_create(&reg2, name), -1);
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
    assert_int_equal(region_create(&reg, name), 0);
    region_destroy(&reg);
    assert_false(shm_exists(name));
    assert_int_equal(region_create(&reg, name), 0);
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
        if (region_create(&r, name) != 0)
            _exit(1);
        region_header(&r)->workers_running = 4242;
        region_entry(&r, REGION_ENTRY_HEALTH)->d.has_data = true;
        _exit(0); /* crash: no destroy; the flock goes with the process */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(shm_exists(name));

    assert_int_equal(region_create(&reg, name), 0);
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

    assert_int_equal(region_create(&reg, name), 0);
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
    struct region_entry *e;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
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
    e = region_entry(&reg, REGION_ENTRY_HEALTH);
    put_data(e, "ok");
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
    assert_int_equal(region_create(&reg, probe), 0);
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
    assert_int_equal(region_create(&reg, name), 0);
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
    assert_int_equal(region_create(&reg, name), 0);
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
    assert_int_equal(region_create(&reg, name), 0);
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
    src.has_data = true;
    src.body_len = (uint32_t)snprintf(src.body, sizeof(src.body), "{\"a\":1}");
    entry_data_copy(&dst, &src);
    assert_string_equal(dst.name, "default");
    assert_string_equal(dst.status, "WORKING");
    assert_true(dst.has_data);
    assert_int_equal(dst.body_len, 7);
    assert_string_equal(dst.body, "{\"a\":1}");

    /* A body_len beyond the buffer is clamped, and the copy terminated. */
    memset(src.body, 'b', sizeof(src.body));
    src.body_len = REGION_BODY_MAX + 100;
    entry_data_copy(&dst, &src);
    assert_int_equal(dst.body_len, REGION_BODY_MAX - 1);
    assert_int_equal(dst.body[REGION_BODY_MAX - 1], '\0');
}

/*========================================================================
 * Session table
 */

static void test_set_sessions(void **state)
{
    const char *name = make_name("sessions");
    static const char ab[2][REGION_NAME_MAX] = {"a", "b"};
    static const char ac[2][REGION_NAME_MAX] = {"a", "c"};
    struct region_header *h;
    int ia, ib, ic;
    uint64_t tg, gen_a;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    h = region_header(&reg);
    assert_int_equal(region_lock(&reg), 0);

    /* Adds */
    tg = h->table_generation;
    assert_int_equal(region_set_sessions(&reg, ab, 2), 0);
    assert_int_equal(h->table_generation, tg + 1);
    ia = region_find_session(&reg, "a");
    ib = region_find_session(&reg, "b");
    assert_true(ia >= REGION_ENTRY_FIRST_SESSION && ia < REGION_MAX_ENTRIES);
    assert_true(ib >= REGION_ENTRY_FIRST_SESSION && ib < REGION_MAX_ENTRIES);
    assert_int_not_equal(ia, ib);
    assert_int_equal(region_find_session(&reg, "c"), -1);
    assert_int_equal(region_entry(&reg, ia)->d.kind, ENTRY_SESSION);
    assert_string_equal(region_entry(&reg, ia)->d.name, "a");
    assert_false(region_entry(&reg, ia)->d.has_data);
    assert_string_equal(region_entry(&reg, ia)->d.status, "UNKNOWN");
    assert_int_equal(region_entry(&reg, ia)->seq % 2, 0);

    put_data(region_entry(&reg, ia), "WORKING");
    put_data(region_entry(&reg, ib), "STOPPED");
    /* Demand marks of b, which must not leak to a name that reuses b's entry. */
    atomic_store(&region_entry(&reg, ib)->last_read_ms, 789);
    atomic_store(&region_entry(&reg, ib)->wanted_ms, 123);
    atomic_store(&region_entry(&reg, ib)->attempt_done_ms, 456);
    gen_a = region_entry(&reg, ia)->generation;

    /* Keeps "a" with its data, frees "b", adds "c" */
    tg = h->table_generation;
    assert_int_equal(region_set_sessions(&reg, ac, 2), 0);
    assert_int_equal(h->table_generation, tg + 1);
    assert_int_equal(region_find_session(&reg, "a"), ia);
    assert_true(region_entry(&reg, ia)->d.has_data);
    assert_string_equal(region_entry(&reg, ia)->d.status, "WORKING");
    assert_int_equal(region_entry(&reg, ia)->generation, gen_a);
    assert_int_equal(region_find_session(&reg, "b"), -1);
    assert_int_equal(region_entry(&reg, ib)->seq % 2, 0);
    if (region_entry(&reg, ib)->d.kind != ENTRY_FREE)
        assert_string_equal(region_entry(&reg, ib)->d.name, "c");
    /* "c" (which may reuse b's entry) starts empty: nothing of b's data. */
    ic = region_find_session(&reg, "c");
    assert_true(ic >= REGION_ENTRY_FIRST_SESSION);
    assert_false(region_entry(&reg, ic)->d.has_data);
    assert_string_equal(region_entry(&reg, ic)->d.status, "UNKNOWN");
    assert_string_equal(region_entry(&reg, ic)->d.me_json, "null");
    assert_int_equal(region_entry(&reg, ic)->wanted_ms, 0);
    assert_int_equal(region_entry(&reg, ic)->attempt_done_ms, 0);
    assert_int_equal(region_entry(&reg, ic)->last_read_ms, 0);
    assert_int_equal(region_entry(&reg, ic)->seq % 2, 0);

    /* The same list again: no change, no generation bump. */
    tg = h->table_generation;
    assert_int_equal(region_set_sessions(&reg, ac, 2), 0);
    assert_int_equal(h->table_generation, tg);
    assert_int_equal(region_entry(&reg, ia)->generation, gen_a);
    assert_true(region_entry(&reg, ia)->d.has_data);

    /* The health and list entries are never touched. */
    assert_int_equal(region_entry(&reg, REGION_ENTRY_HEALTH)->d.kind, ENTRY_HEALTH);

    /* An empty list frees every session entry. */
    assert_int_equal(region_set_sessions(&reg, ac, 0), 0);
    assert_int_equal(h->table_generation, tg + 1);
    assert_int_equal(region_find_session(&reg, "a"), -1);
    assert_int_equal(region_find_session(&reg, "c"), -1);
    region_unlock(&reg);
}

static void test_set_sessions_too_many(void **state)
{
    const char *name = make_name("many");
    static char many[REGION_SESSION_MAX + 6][REGION_NAME_MAX];
    int found = 0;

    (void)state;
    for (int i = 0; i < REGION_SESSION_MAX + 6; i++)
        snprintf(many[i], sizeof(many[i]), "s%d", i);
    assert_int_equal(region_create(&reg, name), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_set_sessions(&reg, (const char(*)[REGION_NAME_MAX])many,
                                         REGION_SESSION_MAX + 6),
                     6);
    for (int i = 0; i < REGION_SESSION_MAX + 6; i++)
        if (region_find_session(&reg, many[i]) >= 0)
            found++;
    assert_int_equal(found, REGION_SESSION_MAX);
    /* The first REGION_SESSION_MAX names got the entries. */
    assert_true(region_find_session(&reg, "s0") >= 0);
    assert_true(region_find_session(&reg, "s63") >= 0);
    assert_int_equal(region_find_session(&reg, "s64"), -1);
    /* Exactly REGION_SESSION_MAX fit. */
    assert_int_equal(region_set_sessions(&reg, (const char(*)[REGION_NAME_MAX])many,
                                         REGION_SESSION_MAX),
                     0);
    region_unlock(&reg);
}

/*========================================================================
 * Robust mutex: a writer dies holding the lock in the middle of a write.
 */

static void test_robust_mutex_recovery(void **state)
{
    const char *name = make_name("robust");
    static const char two[2][REGION_NAME_MAX] = {"s1", "s2"};
    struct region_header *h;
    struct region_entry *e1, *e2, *health;
    uint64_t seq1, gen1, seq2, gen2, health_seq;
    int64_t before;
    pid_t pid;
    int status, i1;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    h = region_header(&reg);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_set_sessions(&reg, two, 2), 0);
    i1 = region_find_session(&reg, "s1");
    assert_true(i1 >= REGION_ENTRY_FIRST_SESSION);
    e1 = region_entry(&reg, i1);
    e2 = region_entry(&reg, region_find_session(&reg, "s2"));
    health = region_entry(&reg, REGION_ENTRY_HEALTH);
    put_data(e1, "WORKING");
    put_data(e2, "SCAN_QR_CODE");
    put_data(health, "ok");
    region_unlock(&reg);
    seq1 = e1->seq;
    gen1 = e1->generation;
    seq2 = e2->seq;
    gen2 = e2->generation;
    health_seq = health->seq;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (region_lock(&reg) != 0)
            _exit(1);
        region_entry_begin_write(&reg, e1);
        snprintf(e1->d.status, sizeof(e1->d.status), "HALF_WRITT");
        memset(e1->d.body, '#', 100);
        _exit(0); /* dies holding the lock, entry torn */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(e1->seq % 2, 1);
    assert_int_equal(h->lock_owner_pid, pid);

    before = time_mono_ms();
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(h->lock_recoveries, 1);
    assert_int_equal(h->lock_owner_pid, getpid());

    /* The torn entry is discarded, kept as a session to refresh. */
    assert_int_equal(e1->seq % 2, 0);
    assert_true(e1->seq > seq1);
    assert_false(e1->d.has_data);
    assert_int_equal(e1->d.kind, ENTRY_SESSION);
    assert_string_equal(e1->d.name, "s1");
    assert_string_equal(e1->d.status, "UNKNOWN");
    assert_string_equal(e1->d.me_json, "null");
    assert_true(e1->wanted_ms >= before);
    assert_true(e1->generation > gen1);
    assert_int_equal(region_find_session(&reg, "s1"), i1);

    /* The others are untouched. */
    assert_int_equal(e2->seq, seq2);
    assert_int_equal(e2->generation, gen2);
    assert_true(e2->d.has_data);
    assert_string_equal(e2->d.status, "SCAN_QR_CODE");
    assert_int_equal(health->seq, health_seq);
    assert_true(health->d.has_data);
    assert_string_equal(health->d.status, "ok");
    region_unlock(&reg);

    {
        char text[96];
        snprintf(text, sizeof(text), "held by pid %d, which died; 1 torn entry",
                 (int)pid);
        assert_true(log_contains(text));
    }

    /* The mutex is consistent again: plain lock/unlock, no more recoveries. */
    assert_int_equal(region_lock(&reg), 0);
    region_unlock(&reg);
    assert_int_equal(region_lock(&reg), 0);
    region_unlock(&reg);
    assert_int_equal(h->lock_recoveries, 1);
}

static void test_robust_mutex_dead_holder_without_write(void **state)
{
    const char *name = make_name("robust2");
    static const char one[1][REGION_NAME_MAX] = {"s1"};
    struct region_entry *e1;
    uint64_t seq1;
    pid_t pid;
    int status;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_set_sessions(&reg, one, 1), 0);
    e1 = region_entry(&reg, region_find_session(&reg, "s1"));
    put_data(e1, "WORKING");
    region_unlock(&reg);
    seq1 = e1->seq;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (region_lock(&reg) != 0)
            _exit(1);
        _exit(0); /* dies holding the lock, between writes */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(region_header(&reg)->lock_recoveries, 1);
    assert_true(e1->d.has_data);
    assert_int_equal(e1->seq, seq1);
    region_unlock(&reg);
}

/*========================================================================
 * Recent webhook ids
 */

static void test_webhook_seen(void **state)
{
    const char *name = make_name("hookids");
    struct region_header *h;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    h = region_header(&reg);
    assert_int_equal(region_lock(&reg), 0);
    assert_false(region_webhook_seen(&reg, "evt_01jz8m3k5q7r9t1v3x5z7b9d1f"));
    assert_true(region_webhook_seen(&reg, "evt_01jz8m3k5q7r9t1v3x5z7b9d1f"));
    assert_true(region_webhook_seen(&reg, "evt_01jz8m3k5q7r9t1v3x5z7b9d1f"));
    /* A prefix or an extension of a recorded id is another id. */
    assert_false(region_webhook_seen(&reg, "evt_01jz8m3k5q7r9t1v3x5z7b9d1"));
    assert_false(region_webhook_seen(&reg, "evt_01jz8m3k5q7r9t1v3x5z7b9d1fx"));
    assert_int_equal(h->webhook_id_next, 3);

    /* An empty id (an envelope without one) is never a duplicate, and
     * takes no place in the ring. */
    assert_false(region_webhook_seen(&reg, ""));
    assert_false(region_webhook_seen(&reg, ""));
    assert_int_equal(h->webhook_id_next, 3);
    region_unlock(&reg);
}

static void test_webhook_seen_ring(void **state)
{
    const char *name = make_name("hookring");
    char id[32];

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    assert_int_equal(region_lock(&reg), 0);
    for (int i = 0; i < REGION_WEBHOOK_IDS; i++) {
        snprintf(id, sizeof(id), "evt_%d", i);
        assert_false(region_webhook_seen(&reg, id));
    }
    /* All REGION_WEBHOOK_IDS are remembered. */
    for (int i = 0; i < REGION_WEBHOOK_IDS; i++) {
        snprintf(id, sizeof(id), "evt_%d", i);
        if (!region_webhook_seen(&reg, id))
            fail_msg("%s forgotten too early", id);
    }
    /* One more: the oldest goes, the rest stay. */
    assert_false(region_webhook_seen(&reg, "evt_new"));
    assert_true(region_webhook_seen(&reg, "evt_new"));
    assert_true(region_webhook_seen(&reg, "evt_1"));
    snprintf(id, sizeof(id), "evt_%d", REGION_WEBHOOK_IDS - 1);
    assert_true(region_webhook_seen(&reg, id));
    assert_false(region_webhook_seen(&reg, "evt_0")); /* recorded again now... */
    assert_true(region_webhook_seen(&reg, "evt_0"));
    assert_false(region_webhook_seen(&reg, "evt_1")); /* ...which pushed out evt_1 */
    assert_false(region_webhook_seen(&reg, "evt_2")); /* and evt_1 pushed out evt_2 */
    region_unlock(&reg);
}

static void test_webhook_seen_long_ids(void **state)
{
    const char *name = make_name("hooklong");
    struct region_header *h;
    char id[REGION_WEBHOOK_ID_MAX + 40];
    uint32_t next;

    (void)state;
    assert_int_equal(region_create(&reg, name), 0);
    h = region_header(&reg);
    assert_int_equal(region_lock(&reg), 0);

    /* REGION_WEBHOOK_ID_MAX - 1 characters: stored whole, found again. */
    memset(id, 'a', REGION_WEBHOOK_ID_MAX - 1);
    id[REGION_WEBHOOK_ID_MAX - 1] = '\0';
    assert_false(region_webhook_seen(&reg, id));
    assert_true(region_webhook_seen(&reg, id));

    /*
     * Longer ids cannot be kept whole, so they are neither recorded nor ever
     * a duplicate (waha_parse_event() drops them before they get here).
     */
    memset(id, 'b', REGION_WEBHOOK_ID_MAX + 20);
    id[REGION_WEBHOOK_ID_MAX + 20] = '\0';
    next = h->webhook_id_next;
    assert_false(region_webhook_seen(&reg, id));
    assert_false(region_webhook_seen(&reg, id)); /* not a duplicate */
    assert_int_equal(h->webhook_id_next, next);  /* and the ring did not move */
    /* An id of exactly REGION_WEBHOOK_ID_MAX characters is too long as well. */
    id[REGION_WEBHOOK_ID_MAX] = '\0';
    assert_false(region_webhook_seen(&reg, id));
    assert_false(region_webhook_seen(&reg, id));
    region_unlock(&reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_create_layout),
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
        T(test_set_sessions),
        T(test_set_sessions_too_many),
        T(test_robust_mutex_recovery),
        T(test_robust_mutex_dead_holder_without_write),
        T(test_webhook_seen),
        T(test_webhook_seen_ring),
        T(test_webhook_seen_long_ids),
#undef T
    };

    return cmocka_run_group_tests_name("region", tests, group_setup, group_teardown);
}
