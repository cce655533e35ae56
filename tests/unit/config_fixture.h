/*
 * config_fixture.h - what the tests of common/config.c (test_config.c and
 * test_config_env.c) share: the configuration and error list under test,
 * loading an ini text with an environment array, and the checks of the
 * error messages ("FILE:LINE: [section] key: reason").
 *
 * Every test passes its own environment array, so the result never depends
 * on the shell that runs it, and writes its ini file with mkstemp() under
 * /tmp, removed after loading. Include it once, from the
 * test file itself: its definitions are static, one copy per test program;
 * the helpers are inline because not every program uses every one of them.
 */
#ifndef WAHAGATE_TESTS_CONFIG_FIXTURE_H
#define WAHAGATE_TESTS_CONFIG_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static struct config *cfg;
static struct config_errors *errs;
static char ini_path[64];
static char *const no_env[] = {NULL};

static int group_setup(void **state)
{
    (void)state;
    cfg = calloc(1, sizeof(*cfg));
    errs = calloc(1, sizeof(*errs));
    return cfg && errs ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(cfg);
    free(errs);
    return 0;
}

/* Write TEXT to a new temporary file; its name goes to ini_path. */
static inline void write_ini(const char *text)
{
    size_t len = strlen(text);
    int fd;

    snprintf(ini_path, sizeof(ini_path), "/tmp/wgunit-config-XXXXXX");
    fd = mkstemp(ini_path);
    assert_true(fd >= 0);
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        unlink(ini_path);
        fail_msg("cannot write %s", ini_path);
    }
    close(fd);
}

/* config_load() TEXT with ENVP; the file is gone when this returns. */
static inline int load(const char *text, char *const *envp)
{
    int rc;

    write_ini(text);
    rc = config_load(ini_path, envp, cfg, errs);
    unlink(ini_path);
    return rc;
}

static inline void dump_errors(void)
{
    for (int i = 0; i < errs->count; i++)
        print_message("  error %d: %s\n", i, errs->message[i]);
}

static inline void load_ok(const char *text, char *const *envp)
{
    int rc = load(text, envp);

    if (rc != 0 || errs->count != 0) {
        dump_errors();
        fail_msg("config_load failed (%d errors)", errs->count);
    }
}

/* Some message starts with PREFIX. */
static inline void expect_error_prefix(const char *prefix)
{
    for (int i = 0; i < errs->count; i++)
        if (strncmp(errs->message[i], prefix, strlen(prefix)) == 0)
            return;
    dump_errors();
    fail_msg("no error starts with \"%s\"", prefix);
}

/* Some message starts with "<ini_path>:<LINE>: <REST>". */
static inline void expect_error_at(int line, const char *rest)
{
    char want[CONFIG_ERROR_MAX + 64];

    snprintf(want, sizeof(want), "%s:%d: %s", ini_path, line, rest);
    expect_error_prefix(want);
}

static inline void expect_error_containing(const char *part)
{
    for (int i = 0; i < errs->count; i++)
        if (strstr(errs->message[i], part) != NULL)
            return;
    dump_errors();
    fail_msg("no error contains \"%s\"", part);
}

/* Load TEXT expecting failure with exactly one error at LINE: REST. */
static inline void expect_only_error(const char *text, int line, const char *rest)
{
    assert_int_equal(load(text, no_env), -1);
    expect_error_at(line, rest);
    if (errs->count != 1) {
        dump_errors();
        fail_msg("expected 1 error, got %d", errs->count);
    }
}

#endif
