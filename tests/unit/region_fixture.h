/*
 * region_fixture.h - what the region tests (test_region.c) and the store
 * tests (test_store.c) share: the regions under test, their names, the log
 * file, the setup and teardown of each test and of the group, and a few
 * helpers.
 *
 * Every region is created under a name unique to this process
 * ("/wgunit-<pid>-<tag>", make_name()) and destroyed, and each test's
 * teardown unlinks its names again, so no /dev/shm object is left even when
 * a test fails. Log lines go to a temporary file, which some tests read
 * back. Include it once, from the test file itself: its
 * definitions are static, one copy per test program; the helpers are
 * inline because not every program uses every one of them.
 */
#ifndef WAHAGATE_TESTS_REGION_FIXTURE_H
#define WAHAGATE_TESTS_REGION_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "region.h"
#include "timeutil.h"

#define REAL0 1764410400000LL /* 2025-11-29T10:00:00Z, any wall clock time */

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

/* Store a complete answer in entry E, as the fetcher would. Lock held. */
static inline void put_data(struct region_entry *e, const char *status)
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
