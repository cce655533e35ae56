/*
 * region_fixture.h - what the region tests (test_region*.c), the store
 * tests (test_store*.c), the answers tests (test_answers.c) and the rate
 * limiter's tests share: the regions under test, their names, the log
 * file, the setup and teardown of each test and of the group, and helpers:
 * put_data() (an answer as the fetcher stores it), set_sessions() and
 * track() (region_set_sessions() with its scratch array),
 * die_holding_lock() (a child that dies holding the lock in the middle of
 * a write) and expect_repair_logged().
 *
 * Every region is created under a name unique to this process
 * ("/wgunit-<pid>-<tag>", make_name()), for TEST_SESSIONS sessions unless
 * a test needs more, and destroyed, and each test's teardown unlinks its
 * names again, so no /dev/shm object is left even when a test fails. Log
 * lines go to a temporary file, which some tests read back. Include it
 * once, from the test file itself: its definitions are static, one copy
 * per test program; the helpers are inline because not every program uses
 * every one of them.
 */
#ifndef WAHAGATE_TESTS_REGION_FIXTURE_H
#define WAHAGATE_TESTS_REGION_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "region.h"
#include "timeutil.h"

#define REAL0 1764410400000LL /* 2025-11-29T10:00:00Z, any wall clock time */

/* server.max_sessions of the regions the tests create, unless a test needs
 * more: 2 + 8 entries and 8 QR slots. */
#define TEST_SESSIONS 8

static struct region reg, reg2;
static char names[4][64];
static int name_count;
static char log_path[64] = "";

static inline const char *make_name(const char *tag)
{
    assert_true(name_count < 4);
    snprintf(names[name_count], sizeof(names[0]), "/wgunit-%d-%s", (int)getpid(), tag);
    return names[name_count++];
}

static inline void log_clear(void)
{
    int fd = open(log_path, O_WRONLY | O_TRUNC);

    if (fd >= 0)
        close(fd);
}

/* The log file holds NEEDLE (else it is printed). */
static inline bool log_contains(const char *needle)
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

/* Store a complete answer in entry INDEX, as the fetcher would. Lock held. */
static inline void put_data(int index, const char *status)
{
    struct region_entry *e = region_entry(&reg, index);
    struct entry_body *b = region_body(&reg, index);

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
        (uint32_t)snprintf(b->body, sizeof(b->body), "{\"name\":\"%s\"}", e->d.name);
    region_entry_end_write(&reg, e, true);
}

/*
 * region_set_sessions() on REG with a scratch array of its size; INDEX_OUT
 * may be NULL. Lock held. Returns how many names found no room.
 */
static inline int set_sessions(const char (*list)[REGION_NAME_MAX], int count,
                               int *index_out)
{
    bool *scratch = calloc((size_t)region_entry_count(&reg), sizeof(bool));
    int missing;

    assert_non_null(scratch);
    /* Not zeroed by the caller: region_set_sessions() must not rely on it. */
    memset(scratch, 1, sizeof(bool) * (size_t)region_entry_count(&reg));
    missing = region_set_sessions(&reg, list, count, index_out, scratch);
    free(scratch);
    return missing;
}

/* Lock REG, set the sessions LIST (COUNT names, all of which must fit),
 * unlock; the entry of the first. */
static inline int track(const char (*list)[REGION_NAME_MAX], int count)
{
    int first;

    assert_int_equal(region_lock(&reg), 0);
    assert_int_equal(set_sessions(list, count, NULL), 0);
    first = region_find_session(&reg, list[0]);
    region_unlock(&reg);
    assert_true(first >= REGION_ENTRY_FIRST_SESSION);
    return first;
}

/*
 * Run TEAR(ARG) in a child that holds REG's lock, and let the child die
 * without unlocking: the next region_lock() finds the mutex EOWNERDEAD.
 * Returns the child's pid.
 */
static inline pid_t die_holding_lock(void (*tear)(int), int arg)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        if (region_lock(&reg) != 0)
            _exit(1);
        tear(arg);
        _exit(0); /* dies holding the lock */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(region_header(&reg)->lock_owner_pid, pid);
    return pid;
}

/* The log says the lock of dead PID was recovered with N torn entries. */
static inline void expect_repair_logged(pid_t pid, int n)
{
    char text[96];

    snprintf(text, sizeof(text), "held by pid %d, which died; %d torn entr%s", (int)pid,
             n, n == 1 ? "y" : "ies");
    assert_true(log_contains(text));
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

/* QR slot Q holds no QR, and is whole. */
static inline void expect_qr_cleared(const struct region_qr *q)
{
    assert_false(q->d.has_qr);
    assert_string_equal(q->d.value, "");
    assert_int_equal(q->d.png_len, 0);
    assert_true(q->d.fetched_mono_ms == 0);
    assert_true(q->d.fetched_real_ms == 0);
    assert_int_equal(q->seq % 2, 0);
}

#endif
