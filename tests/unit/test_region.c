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
 * Also tested here, because they live in or write through the region: the
 * flap smoothing of published statuses (entry_observe_status(), docs/design.md
 * backend.flap_hold: a change away from WORKING is published only once it
 * has lasted that long), the ring of recent webhook ids that drops WAHA's
 * retried deliveries, the QR slots (layout, copy, clearing, repair after a
 * writer died), and common/store.c, the code through which the fetcher and
 * the workers write answers, failures, webhooks and QR codes. A status
 * published too early makes every dashboard flash "disconnected" on a
 * reconnect; one published too late hides a real logout; a generation that
 * moves when nothing changed defeats ETags and wakes every SSE client; a
 * stale QR served after the session moved on shows users a code that no
 * longer works.
 *
 * Every region is created under a name unique to this process
 * ("/wgunit-<pid>-<tag>") and destroyed, and each test's teardown unlinks
 * its names again, so no /dev/shm object is left even when a test fails.
 * Log lines go to a temporary file, which some tests read back. Times given
 * to entry_observe_status() are explicit; store.c reads the clocks itself,
 * so the store tests move a held change's start back instead of sleeping.
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

#include "config.h"
#include "log.h"
#include "region.h"
#include "store.h"
#include "timeutil.h"

static struct region reg, reg2;
static char names[4][64];
static int name_count;
static char log_path[64] = "";

static const char *make_name(const char *tag)
{
    assert_true(name_count < 4);
    snprintf(names[name_count], sizeof(names[0]), "/wgunit-%d-%s", (int)getpid(), tag);
    return names[name_count++];
}

static bool shm_exists(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static void log_clear(void)
{
    int fd = open(log_path, O_WRONLY | O_TRUNC);

    if (fd >= 0)
        close(fd);
}

static bool log_contains(const char *needle)
{
    char buf[8192];
    FILE *fp = fopen(log_path, "r");
    size_t n;

    if (fp == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    if (strstr(buf, needle) == NULL) {
        print_message("log does not contain \"%s\":\n%s", needle, buf);
        return false;
    }
    return true;
}

static int group_setup(void **state)
{
    int fd;

    (void)state;
    snprintf(log_path, sizeof(log_path), "/tmp/wgunit-region-log-XXXXXX");
    fd = mkstemp(log_path);
    if (fd < 0)
        return -1;
    close(fd);
    log_set_level(LOG_LEVEL_DEBUG);
    return log_open(log_path);
}

static int group_teardown(void **state)
{
    (void)state;
    log_open(NULL);
    unlink(log_path);
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    memset(&reg, 0, sizeof(reg));
    memset(&reg2, 0, sizeof(reg2));
    reg.fd = reg2.fd = -1;
    name_count = 0;
    log_clear();
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    if (reg2.base != NULL) {
        if (reg2.read_only)
            region_detach(&reg2);
        else
            region_destroy(&reg2);
    }
    if (reg.base != NULL)
        region_destroy(&reg);
    region_close_fd(&reg);
    region_close_fd(&reg2);
    for (int i = 0; i < name_count; i++)
        shm_unlink(names[i]); /* already gone unless a test failed */
    name_count = 0;
    return 0;
}

/* Store a complete answer in entry E, as the fetcher would. Lock held. */
static void put_data(struct region_entry *e, const char *status)
{
    region_entry_begin_write(&reg, e);
    e->d.has_data = true;
    e->d.healthy = true;
    e->d.exists = true;
    e->d.source = SOURCE_POLL;
    snprintf(e->d.status, sizeof(e->d.status), "%s", status);
    snprintf(e->d.me_json, sizeof(e->d.me_json), "{\"id\":\"1@c.us\"}");
    e->d.fetched_mono_ms = time_mono_ms();
    e->d.fetched_real_ms = time_real_ms();
    e->d.body_len =
        (uint32_t)snprintf(e->d.body, sizeof(e->d.body), "{\"name\":\"%s\"}", e->d.name);
    region_entry_end_write(&reg, e, true);
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
 * Flap smoothing: entry_observe_status / entry_release_held_status
 */

#define REAL0 1764410400000LL /* 2025-11-29T10:00:00Z, any wall clock time */
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
     * BUG (common/region.c, entry_release_held_status): it calls
     * entry_observe_status(d, d->raw_status, ...), whose first statement is
     * snprintf(d->raw_status, ..., "%s", raw) with RAW == d->raw_status:
     * source and destination overlap, which C11 leaves undefined, and glibc
     * empties the buffer. The release then publishes "" as the status (and
     * raw_status becomes ""), instead of the held status. This test fails at
     * the first assert_string_equal after the release until that is fixed.
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

static void expect_qr_cleared(const struct region_qr *q)
{
    assert_false(q->d.has_qr);
    assert_string_equal(q->d.value, "");
    assert_int_equal(q->d.png_len, 0);
    assert_true(q->d.fetched_mono_ms == 0);
    assert_true(q->d.fetched_real_ms == 0);
    assert_int_equal(q->seq % 2, 0);
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

/*========================================================================
 * common/store.c through the region
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
     * BUG (common/store.c, store_session): WAHA answering 404 again is the
     * same answer, so nothing a client sees changes and the generation must
     * stay (store.h: "bumps the entry's generation only when something a
     * client sees changed"). store_session() computes `changed` with
     * `d->last_error[0] != '\0'`, and a 404 itself leaves last_error set
     * ("WAHA has no session ..."), so every later 404 counts as a change:
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
     * publishes the held status. BUG: fails today because of the
     * entry_release_held_status() bug (see test_release_held_status): the
     * status published is "", raw_status becomes "", and because "" is not
     * SCAN_QR_CODE store_release_held() also drops the QR the user is about
     * to scan.
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
        T(test_observe_first_data_at_once),
        T(test_observe_same_status),
        T(test_observe_to_working_at_once),
        T(test_observe_away_from_working_is_held),
        T(test_observe_held_change_reverts),
        T(test_observe_hold_counts_from_first_departure),
        T(test_observe_no_hold),
        T(test_observe_between_non_working_at_once),
        T(test_release_held_status),
        T(test_webhook_seen),
        T(test_webhook_seen_ring),
        T(test_webhook_seen_long_ids),
        T(test_qr_slots_layout),
        T(test_qr_data_copy),
        T(test_qr_clear),
        T(test_set_sessions_clears_qr),
        T(test_robust_mutex_repairs_torn_qr),
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

    return cmocka_run_group_tests_name("region", tests, group_setup, group_teardown);
}
