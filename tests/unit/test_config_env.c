/*
 * test_config_env.c - unit tests for common/config.c: the error messages
 * of waha.ini (FILE:LINE: [section] key: reason, every bad line, not only
 * the first), the checks that span several keys, and the environment
 * overrides (the legacy WAHA_* names and WAHAGATE_<SECTION>_<KEY>, their
 * precedence, and errors that name the variable).
 *
 * Why: `wahagate -t`, packaging and SIGHUP reload depend on every bad line
 * being reported where it is and with its [section] key, and on the
 * precedence defaults < file < environment (docs/design.md "waha.ini"). The
 * fixture (config_fixture.h) gives every test its own environment array
 * and ini file, so the result never depends on the shell that runs it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

#include "config_fixture.h"

#define E(s) ((char *)(s))

/* 128 hex digits: the shape of WAHA's sha512:<hex> key hash. */
#define HEX128                                                                           \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"                   \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/*========================================================================
 * Errors in the file: FILE:LINE: [section] key: reason
 */

static void test_error_unknown_section(void **state)
{
    (void)state;
    expect_only_error("[server]\nworkers = 2\n[nosuch]\nfoo = 1\n", 4,
                      "[nosuch] foo: unknown section");
}

static void test_error_unknown_key(void **state)
{
    (void)state;
    expect_only_error("[server]\nworkers = 2\nworkres = 3\n", 3,
                      "[server] workres: unknown key");
}

static void test_error_key_outside_section(void **state)
{
    (void)state;
    assert_int_equal(load("workers = 2\n", no_env), -1);
    expect_error_at(1, "[] workers: unknown section");
}

static void test_error_not_a_number(void **state)
{
    (void)state;
    expect_only_error("[server]\nlisten = 127.0.0.1:8080\nworkers = abc\n", 3,
                      "[server] workers: \"abc\" is not a whole number");
    expect_only_error("[server]\nworkers = 2.5\n", 2,
                      "[server] workers: \"2.5\" is not a whole number");
    expect_only_error("[backend]\nflap_hold = 5s\n", 2,
                      "[backend] flap_hold: \"5s\" is not a whole number");
    expect_only_error("[ratelimit]\nrate = fast\n", 2,
                      "[ratelimit] rate: \"fast\" is not a number");
    expect_only_error("[ratelimit]\nenabled = maybe\n", 2,
                      "[ratelimit] enabled: \"maybe\" is not true or false");
    expect_only_error("[frontend]\nbackoff_multiplier = inf\n", 2,
                      "[frontend] backoff_multiplier:");
    expect_only_error("[log]\nlevel = verbose\n", 2, "[log] level:");
    expect_only_error("[upstream]\nevents = on\n", 2,
                      "[upstream] events: \"on\" is not auto or off");
    expect_only_error("[upstream]\nevents = yes\n", 2, "[upstream] events:");
    expect_only_error("[compat]\nwaha_api = perhaps\n", 2,
                      "[compat] waha_api: \"perhaps\" is not true or false");
    expect_only_error("[server]\nmax_sessions = many\n", 2,
                      "[server] max_sessions: \"many\" is not a whole number");
}

static void test_error_out_of_range(void **state)
{
    (void)state;
    expect_only_error("[server]\nmin_workers = 1\nworkers = 0\n", 3,
                      "[server] workers: 0 is out of range (1 to 64)");
    expect_only_error("[server]\nmax_workers = 64\nworkers = 65\n", 3,
                      "[server] workers: 65 is out of range (1 to 64)");
    expect_only_error("[limits]\nmax_retries = -1\n", 2,
                      "[limits] max_retries: -1 is out of range");
    expect_only_error("[limits]\nmax_retries = 11\n", 2,
                      "[limits] max_retries: 11 is out of range");
    expect_only_error("[backend]\nstatus_cache_duration = 99\n", 2,
                      "[backend] status_cache_duration: 99 is out of range");
    expect_only_error("[frontend]\nbackoff_multiplier = 0.5\n", 2,
                      "[frontend] backoff_multiplier: 0.5 is out of range");
    expect_only_error("[frontend]\nbackoff_multiplier = 11\n", 2,
                      "[frontend] backoff_multiplier: 11 is out of range");
    expect_only_error("[ratelimit]\nrate = 0\n", 2,
                      "[ratelimit] rate: 0 is out of range");
    expect_only_error("[server]\nworkers = 99999999999999999999\n", 2,
                      "[server] workers:");
    /* server.max_sessions sizes the region: 1 to REGION_SESSIONS_MAX. */
    expect_only_error("[server]\nmax_sessions = 0\n", 2,
                      "[server] max_sessions: 0 is out of range (1 to 100000)");
    expect_only_error("[server]\nmax_sessions = 100001\n", 2,
                      "[server] max_sessions: 100001 is out of range (1 to 100000)");
    expect_only_error("[limits]\nqr_timeout = 99\n", 2,
                      "[limits] qr_timeout: 99 is out of range (100 to 300000)");
    expect_only_error("[limits]\nqr_timeout = 300001\n", 2,
                      "[limits] qr_timeout: 300001 is out of range");

    /* The bounds themselves are in range. */
    load_ok("[server]\nmin_workers = 64\nmax_workers = 64\nworkers = 64\n"
            "max_sessions = 100000\n"
            "[limits]\nmax_retries = 10\nqr_timeout = 300000\n"
            "[ratelimit]\nrate = 0.001\n",
            no_env);
    assert_int_equal(cfg->server.workers, 64);
    assert_int_equal(cfg->server.max_sessions, 100000);
    assert_int_equal(cfg->limits.max_retries, 10);
    assert_int_equal(cfg->limits.qr_timeout, 300000);
    load_ok("[server]\nmax_sessions = 1\n[limits]\nqr_timeout = 100\n", no_env);
    assert_int_equal(cfg->server.max_sessions, 1);
    assert_int_equal(cfg->limits.qr_timeout, 100);
}

static void test_error_bad_listen(void **state)
{
    (void)state;
    expect_only_error("[server]\nlisten = 127.0.0.1\n", 2,
                      "[server] listen: \"127.0.0.1\" has no :port");
    expect_only_error("[server]\nlisten = 127.0.0.1:0\n", 2,
                      "[server] listen: \"127.0.0.1:0\": port must be 1-65535");
    expect_only_error("[server]\nlisten = 127.0.0.1:70000\n", 2,
                      "[server] listen: \"127.0.0.1:70000\": port must be");
    expect_only_error("[server]\nlisten = 127.0.0.1:http\n", 2, "[server] listen:");
    expect_only_error("[server]\nlisten = :8080\n", 2,
                      "[server] listen: \":8080\" has no valid host");
    expect_only_error("[server]\nlisten = [::1]8080\n", 2,
                      "[server] listen: \"[::1]8080\" is not [ipv6]:port");
    expect_only_error("[server]\nlisten = no-such-host.invalid:8080\n", 2,
                      "[server] listen: host \"no-such-host.invalid\" does not "
                      "resolve");
    expect_only_error("[server]\nlisten = 127.0.0.1:8080, 127.0.0.1:0\n", 2,
                      "[server] listen: \"127.0.0.1:0\": port must be");
    expect_only_error("[server]\nlisten = 127.0.0.1:8080,,127.0.0.1:8081\n", 2,
                      "[server] listen: empty item");
    expect_only_error("[server]\nlisten =\n", 2, "[server] listen:");
    expect_only_error("[server]\nadmin_listen = 127.0.0.1\n", 2,
                      "[server] admin_listen: \"127.0.0.1\" has no :port");
}

static void test_error_bad_shm_name(void **state)
{
    (void)state;
    expect_only_error("[server]\nshm_name = wahagate\n", 2,
                      "[server] shm_name: \"wahagate\" must be '/'");
    expect_only_error("[server]\nshm_name = /\n", 2, "[server] shm_name:");
    expect_only_error("[server]\nshm_name = /a/b\n", 2, "[server] shm_name:");
    expect_only_error(
        "[server]\nshm_name = /"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        2, "[server] shm_name:");
}

static void test_error_bad_url(void **state)
{
    (void)state;
    expect_only_error("[upstream]\nurl = ftp://waha:3000\n", 2,
                      "[upstream] url: \"ftp://waha:3000\" must start with "
                      "http:// or https://");
    expect_only_error("[upstream]\nurl = waha:3000\n", 2, "[upstream] url:");
    expect_only_error("[upstream]\nurl = http://\n", 2,
                      "[upstream] url: \"http://\" has no host");
    expect_only_error("[upstream]\nurl = http:///api\n", 2, "[upstream] url:");
    expect_only_error("[upstream]\nurl = http://wa ha:3000\n", 2, "[upstream] url:");
    expect_only_error("[upstream]\nurl =\n", 2, "[upstream] url:");
    expect_only_error("[redis]\nurl = http://127.0.0.1:6379\n", 2, "[redis] url:");
}

static void test_redis_url(void **state)
{
    const struct redis_address *a = &cfg->redis.address;

    (void)state;
    load_ok("[redis]\nurl = redis://:p@ss@cache.lan:6380/3\n", no_env);
    assert_string_equal(a->host, "cache.lan");
    assert_int_equal(a->port, 6380);
    assert_int_equal(a->db, 3);
    assert_string_equal(a->password, "p@ss");
    assert_string_equal(a->unix_path, "");
    load_ok("[redis]\nurl = redis://10.0.0.7\n", no_env);
    assert_string_equal(a->host, "10.0.0.7");
    assert_int_equal(a->port, 6379);
    assert_int_equal(a->db, 0);
    assert_string_equal(a->password, "");
    load_ok("[redis]\nurl = unix:/run/redis/redis.sock\n", no_env);
    assert_string_equal(a->unix_path, "/run/redis/redis.sock");

    expect_only_error("[redis]\nurl = redis://\n", 2,
                      "[redis] url: \"redis://\" has no host");
    expect_only_error("[redis]\nurl = redis://:pw@:6379/0\n", 2, "[redis] url:");
    expect_only_error("[redis]\nurl = redis://h:0\n", 2,
                      "[redis] url: \"redis://h:0\" has no valid port (1 to 65535)");
    expect_only_error("[redis]\nurl = redis://h:99999\n", 2, "[redis] url:");
    expect_only_error("[redis]\nurl = redis://h:12x\n", 2, "[redis] url:");
    expect_only_error(
        "[redis]\nurl = redis://h:6379/two\n", 2,
        "[redis] url: \"redis://h:6379/two\": the database after / must be a "
        "number");
    expect_only_error("[redis]\nurl = unix:\n", 2, "[redis] url:");
    expect_only_error("[redis]\nurl = unix:relative.sock\n", 2, "[redis] url:");
}

static void test_error_bad_session_name(void **state)
{
    char text[160];

    (void)state;
    /* Was: "bad.name" and "a b" refused as not WAHA's [A-Za-z0-9_-]{1,54};
     * issue 16 takes the names WAHA really holds (docs/waha-api.md, 9), so
     * only control bytes, the separator, "*" and length are refused. */
    expect_only_error("[upstream]\nsessions = default, bad\x01name\n", 2,
                      "[upstream] sessions: \"bad\x01name\" is not a session name "
                      "(1 to 63 bytes, no control character or comma)");
    snprintf(text, sizeof(text), "[upstream]\nsessions = %064d\n", 0);
    expect_only_error(text, 2, "[upstream] sessions: \"0000");
    expect_only_error("[upstream]\nsessions = a,,b\n", 2,
                      "[upstream] sessions: empty item");
    expect_only_error("[upstream]\nsessions = a, *\n", 2, "[upstream] sessions:");
    expect_only_error("[upstream]\nsessions =\n", 2, "[upstream] sessions:");

    /* Accepted as they are (inner spaces included; outer ones trimmed). */
    snprintf(text, sizeof(text), "[upstream]\nsessions = %063d, sales.team, a b\n", 0);
    load_ok(text, no_env);
    assert_int_equal(cfg->upstream.session_count, 3);
    assert_int_equal(strlen(cfg->upstream.sessions[0]), 63);
    assert_string_equal(cfg->upstream.sessions[1], "sales.team");
    assert_string_equal(cfg->upstream.sessions[2], "a b");
    assert_true(config_tracks_session(cfg, "a b"));
    assert_false(config_tracks_session(cfg, "a"));
}

static void test_error_duplicate_session(void **state)
{
    (void)state;
    expect_only_error("[upstream]\nsessions = a, b, a\n", 2,
                      "[upstream] sessions: session \"a\" is listed twice");
}

static void test_error_key_set_twice(void **state)
{
    char rest[256];

    (void)state;
    assert_int_equal(load("[server]\nworkers = 2\n; again\nworkers = 3\n", no_env), -1);
    snprintf(rest, sizeof(rest), "[server] workers: set twice (first at %s:2)", ini_path);
    expect_error_at(4, rest);
    assert_int_equal(errs->count, 1);

    /* Also across two [server] sections. */
    assert_int_equal(load("[server]\nmax_workers = 8\n[log]\nlevel = info\n"
                          "[server]\nmax_workers = 9\n",
                          no_env),
                     -1);
    expect_error_at(6, "[server] max_workers: set twice");
}

/* Build "KEY = " + filler + TAIL so that the first BEFORE_TAIL bytes are
 * "KEY = xxx..." and TAIL follows them on the same line. */
static void long_line(char *out, const char *key, size_t before_tail, const char *tail)
{
    size_t n = (size_t)sprintf(out, "%s = ", key);

    while (n < before_tail)
        out[n++] = 'x';
    strcpy(out + n, tail);
}

static void test_error_line_too_long(void **state)
{
    char text[1024], line[700];

    (void)state;
    /* inih reads 199 bytes at a time; if the line were split, the tail
     * "max_workers = 3" would be a setting of its own. */
    long_line(line, "stats_token", 199, "max_workers = 3");
    snprintf(text, sizeof(text), "[server]\n; comment\n%s\nworkers = 3\nbogus = 1\n",
             line);
    assert_int_equal(load(text, no_env), -1);
    expect_error_at(3, "line is longer than");
    /* The line counter keeps counting after the long line. */
    expect_error_at(5, "[server] bogus: unknown key");
    assert_int_equal(errs->count, 2);
    assert_int_equal(cfg->server.max_workers, 8);
    assert_string_equal(cfg->server.stats_token, "");
    assert_int_equal(cfg->server.workers, 3);

    /* Much longer than two buffers. */
    long_line(line, "stats_token", 600, "");
    snprintf(text, sizeof(text), "[server]\n%s\nnope = 1\n", line);
    assert_int_equal(load(text, no_env), -1);
    expect_error_at(2, "line is longer than");
    expect_error_at(3, "[server] nope: unknown key");
    assert_int_equal(errs->count, 2);
    assert_string_equal(cfg->server.stats_token, "");

    /* The last line of the file, without a newline. */
    long_line(line, "stats_token", 300, "");
    snprintf(text, sizeof(text), "[server]\n%s", line);
    assert_int_equal(load(text, no_env), -1);
    expect_error_at(2, "line is longer than");
    assert_int_equal(errs->count, 1);
}

static void test_line_that_fits_is_accepted(void **state)
{
    char text[512], line[256];

    (void)state;
    /* 199 characters and the newline fill inih's 200-byte buffer. */
    long_line(line, "stats_token", 199, "");
    assert_int_equal(strlen(line), 199);
    snprintf(text, sizeof(text), "[server]\n%s\nworkers = 3\n", line);
    load_ok(text, no_env);
    assert_int_equal(strlen(cfg->server.stats_token), 199 - strlen("stats_token = "));
    assert_int_equal(cfg->server.workers, 3);
}

static void test_error_syntax(void **state)
{
    (void)state;
    assert_int_equal(load("[server]\nworkers = 2\nthis line has no equals\n", no_env),
                     -1);
    expect_error_at(3, "syntax error");

    assert_int_equal(load("; ok\n[server\nworkers = 2\n", no_env), -1);
    expect_error_at(2, "syntax error");
}

static void test_several_errors_all_reported(void **state)
{
    (void)state;
    assert_int_equal(load("[server]\n"
                          "workers = abc\n"
                          "listen = 127.0.0.1:0\n"
                          "foo = 1\n"
                          "[upstream]\n"
                          "url = gopher://x\n"
                          "sessions = a, *\n"
                          "[nosuch]\n"
                          "x = 1\n",
                          no_env),
                     -1);
    expect_error_at(2, "[server] workers:");
    expect_error_at(3, "[server] listen:");
    expect_error_at(4, "[server] foo: unknown key");
    expect_error_at(6, "[upstream] url:");
    expect_error_at(7, "[upstream] sessions:");
    expect_error_at(9, "[nosuch] x: unknown section");
    assert_int_equal(errs->count, 6);
    assert_false(errs->truncated);
}

static void test_error_count_truncated(void **state)
{
    char text[4096];
    int n = 0;

    (void)state;
    n += snprintf(text + n, sizeof(text) - (size_t)n, "[server]\n");
    for (int i = 0; i < CONFIG_MAX_ERRORS + 5; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "nokey%d = 1\n", i);
    assert_int_equal(load(text, no_env), -1);
    assert_int_equal(errs->count, CONFIG_MAX_ERRORS);
    assert_true(errs->truncated);
}

/*========================================================================
 * Checks across keys
 */

static void test_cross_min_above_max_workers(void **state)
{
    (void)state;
    assert_int_equal(load("[server]\nmin_workers = 5\nmax_workers = 3\n"
                          "workers = 4\n",
                          no_env),
                     -1);
    expect_error_at(2, "[server] min_workers: 5 is above max_workers 3");
}

static void test_cross_workers_outside_bounds(void **state)
{
    (void)state;
    assert_int_equal(load("[server]\nworkers = 9\n", no_env), -1);
    expect_error_at(2, "[server] workers: 9 is outside min_workers..max_workers "
                       "(1..8)");
    assert_int_equal(errs->count, 1);

    assert_int_equal(load("[server]\nmin_workers = 3\n", no_env), -1);
    expect_error_containing("[server] workers: 2 is outside");

    load_ok("[server]\nmin_workers = 3\nworkers = 3\nmax_workers = 3\n", no_env);
}

static void test_cross_intervals(void **state)
{
    (void)state;
    assert_int_equal(load("[frontend]\nbase_interval = 70000\n", no_env), -1);
    expect_error_at(2, "[frontend] base_interval: 70000 is above max_interval "
                       "60000");
    assert_int_equal(errs->count, 1);

    assert_int_equal(load("[frontend]\n\nauthenticated_interval = 60001\n", no_env), -1);
    expect_error_at(3, "[frontend] authenticated_interval: 60001 is above "
                       "max_interval 60000");
    assert_int_equal(errs->count, 1);

    /* Equal is fine. */
    load_ok("[frontend]\nbase_interval = 60000\nauthenticated_interval = 60000\n",
            no_env);
}

static void test_cross_open_duration(void **state)
{
    (void)state;
    assert_int_equal(load("[circuit]\nopen_duration = 400000\n", no_env), -1);
    expect_error_at(2, "[circuit] open_duration: 400000 is above "
                       "max_open_duration 300000");
    assert_int_equal(errs->count, 1);
    load_ok("[circuit]\nopen_duration = 300000\n", no_env);
}

static void test_cross_sessions_above_max_sessions(void **state)
{
    (void)state;
    /* A fixed list that the region could not hold is refused at load. */
    assert_int_equal(
        load("[server]\nmax_sessions = 2\n[upstream]\nsessions = a, b, c\n", no_env), -1);
    expect_error_at(4, "[upstream] sessions: 3 sessions, more than "
                       "server.max_sessions (2)");
    assert_int_equal(errs->count, 1);
    /* As many as there is room for, or * (WAHA's list decides). */
    load_ok("[server]\nmax_sessions = 2\n[upstream]\nsessions = a, b\n", no_env);
    load_ok("[server]\nmax_sessions = 1\n[upstream]\nsessions = *\n", no_env);
}

static void test_cross_auth_required_without_key(void **state)
{
    (void)state;
    assert_int_equal(load("[auth]\nrequired = true\n", no_env), -1);
    expect_error_at(2, "[auth] required: true, but no [auth] key");
    assert_int_equal(errs->count, 1);
}

/*========================================================================
 * Environment
 */

static void test_env_legacy_names(void **state)
{
    char *const env[] = {E("PATH=/usr/bin"),
                         E("WAHA_STATUS_CACHE_DURATION=2500"),
                         E("WAHA_POLLING_INTERVAL=20000"),
                         E("WAHA_MAX_POLLING_INTERVAL=90000"),
                         E("WAHA_API_KEY=legacy-key"),
                         NULL};

    (void)state;
    load_ok("", env);
    assert_int_equal(cfg->backend.status_cache_duration, 2500);
    assert_int_equal(cfg->frontend.base_interval, 20000);
    assert_int_equal(cfg->frontend.max_interval, 90000);
    assert_string_equal(cfg->upstream.api_key, "legacy-key");
}

static void test_env_wahagate_names(void **state)
{
    char *const env[] = {E("WAHAGATE_SERVER_WORKERS=4"),
                         E("WAHAGATE_UPSTREAM_URL=http://waha:3000/"),
                         E("WAHAGATE_BACKEND_STATUS_CACHE_DURATION=1234"),
                         E("WAHAGATE_RATELIMIT_ENABLED=false"),
                         E("WAHAGATE_LOG_LEVEL=warn"),
                         E("WAHAGATE_UPSTREAM_SESSIONS=a, b"),
                         E("WAHAGATE_SERVER_LISTEN=127.0.0.1:9999"),
                         NULL};

    (void)state;
    load_ok("", env);
    assert_int_equal(cfg->server.workers, 4);
    assert_string_equal(cfg->upstream.url, "http://waha:3000");
    assert_int_equal(cfg->backend.status_cache_duration, 1234);
    assert_false(cfg->ratelimit.enabled);
    assert_int_equal(cfg->log.level, LOG_LEVEL_WARN);
    assert_int_equal(cfg->upstream.session_count, 2);
    assert_string_equal(cfg->upstream.sessions[1], "b");
    assert_int_equal(cfg->server.listen[0].port, 9999);
}

static void test_env_precedence(void **state)
{
    char *const env[] = {E("WAHAGATE_SERVER_WORKERS=4"), E("WAHA_API_KEY=from-env"),
                         NULL};

    (void)state;
    /* defaults < file */
    load_ok("[server]\nworkers = 3\n[upstream]\napi_key = from-file\n"
            "[backend]\nflap_hold = 100\n",
            no_env);
    assert_int_equal(cfg->server.workers, 3);
    assert_string_equal(cfg->upstream.api_key, "from-file");

    /* file < environment, and not a "set twice" */
    load_ok("[server]\nworkers = 3\n[upstream]\napi_key = from-file\n"
            "[backend]\nflap_hold = 100\n",
            env);
    assert_int_equal(cfg->server.workers, 4);
    assert_string_equal(cfg->upstream.api_key, "from-env");
    assert_int_equal(cfg->backend.flap_hold, 100);
}

static void test_env_wahagate_wins_over_legacy(void **state)
{
    /* Both orders in the environment block. */
    char *const env1[] = {
        E("WAHA_POLLING_INTERVAL=20000"), E("WAHAGATE_FRONTEND_BASE_INTERVAL=25000"),
        E("WAHA_API_KEY=legacy"), E("WAHAGATE_UPSTREAM_API_KEY=new"), NULL};
    char *const env2[] = {
        E("WAHAGATE_FRONTEND_BASE_INTERVAL=25000"), E("WAHAGATE_UPSTREAM_API_KEY=new"),
        E("WAHA_POLLING_INTERVAL=20000"), E("WAHA_API_KEY=legacy"), NULL};

    (void)state;
    load_ok("[frontend]\nbase_interval = 16000\n", env1);
    assert_int_equal(cfg->frontend.base_interval, 25000);
    assert_string_equal(cfg->upstream.api_key, "new");

    load_ok("[frontend]\nbase_interval = 16000\n", env2);
    assert_int_equal(cfg->frontend.base_interval, 25000);
    assert_string_equal(cfg->upstream.api_key, "new");
}

static void test_env_waha_api_key_plain(void **state)
{
    /* WAHA's own .env: the hash in WAHA_API_KEY, the key in
     * WAHA_API_KEY_PLAIN, in either order; the plain key is what is sent. */
    char *const env1[] = {E("WAHA_API_KEY=sha512:" HEX128), E("WAHA_API_KEY_PLAIN=k1"),
                          NULL};
    char *const env2[] = {E("WAHA_API_KEY_PLAIN=k2"), E("WAHA_API_KEY=sha512:" HEX128),
                          NULL};
    /* PLAIN wins over a plain WAHA_API_KEY too. */
    char *const env3[] = {E("WAHA_API_KEY=other"), E("WAHA_API_KEY_PLAIN=k3"), NULL};
    char *const env4[] = {E("WAHA_API_KEY_PLAIN=k4"), NULL};
    /* WAHAGATE_UPSTREAM_API_KEY wins over both. */
    char *const env5[] = {E("WAHAGATE_UPSTREAM_API_KEY=k5"), E("WAHA_API_KEY_PLAIN=k4"),
                          E("WAHA_API_KEY=sha512:" HEX128), NULL};
    /* The hash alone cannot be sent: an error that says what to set. */
    char *const env6[] = {E("WAHA_API_KEY=sha512:" HEX128), NULL};

    (void)state;
    load_ok("", env1);
    assert_string_equal(cfg->upstream.api_key, "k1");
    load_ok("", env2);
    assert_string_equal(cfg->upstream.api_key, "k2");
    load_ok("", env3);
    assert_string_equal(cfg->upstream.api_key, "k3");
    load_ok("[upstream]\napi_key = from-file\n", env4);
    assert_string_equal(cfg->upstream.api_key, "k4");
    load_ok("", env5);
    assert_string_equal(cfg->upstream.api_key, "k5");
    assert_int_equal(load("", env6), -1);
    expect_error_prefix("environment WAHA_API_KEY: [upstream] api_key: a sha512: value "
                        "is the hash WAHA keeps");
    expect_error_containing("WAHA_API_KEY_PLAIN");
    assert_int_equal(errs->count, 1);
}

static void test_env_unknown_key(void **state)
{
    char *const env1[] = {E("WAHAGATE_FOO_BAR=1"), NULL};
    char *const env2[] = {E("WAHAGATE_SERVER_NOPE=1"), NULL};

    (void)state;
    assert_int_equal(load("", env1), -1);
    expect_error_prefix("environment WAHAGATE_FOO_BAR: [foo] bar: unknown "
                        "section");
    assert_int_equal(errs->count, 1);

    assert_int_equal(load("", env2), -1);
    expect_error_prefix("environment WAHAGATE_SERVER_NOPE: [server] nope: "
                        "unknown key");
}

static void test_env_malformed_name(void **state)
{
    char *const env1[] = {E("WAHAGATE_X=1"), NULL};
    char *const env2[] = {E("WAHAGATE_SERVER_=1"), NULL};
    char *const env3[] = {E("WAHAGATE__WORKERS=1"), NULL};

    (void)state;
    assert_int_equal(load("", env1), -1);
    expect_error_prefix("environment WAHAGATE_X: not of the form "
                        "WAHAGATE_<SECTION>_<KEY>");
    assert_int_equal(errs->count, 1);

    assert_int_equal(load("", env2), -1);
    expect_error_prefix("environment WAHAGATE_SERVER_:");
    assert_int_equal(load("", env3), -1);
    expect_error_prefix("environment WAHAGATE__WORKERS:");
}

static void test_env_bad_value_names_variable(void **state)
{
    char *const env1[] = {E("WAHAGATE_SERVER_WORKERS=many"), NULL};
    char *const env2[] = {E("WAHA_POLLING_INTERVAL=soon"), NULL};
    char *const env3[] = {E("WAHAGATE_SERVER_WORKERS=0"), NULL};
    char *const env4[] = {E("WAHA_STATUS_CACHE_DURATION=50"), NULL};

    (void)state;
    assert_int_equal(load("", env1), -1);
    expect_error_prefix("environment WAHAGATE_SERVER_WORKERS: [server] workers: "
                        "\"many\" is not a whole number");

    assert_int_equal(load("", env2), -1);
    expect_error_prefix("environment WAHA_POLLING_INTERVAL: [frontend] "
                        "base_interval: \"soon\" is not a whole number");

    assert_int_equal(load("", env3), -1);
    expect_error_prefix("environment WAHAGATE_SERVER_WORKERS: [server] workers: "
                        "0 is out of range");

    assert_int_equal(load("", env4), -1);
    expect_error_prefix("environment WAHA_STATUS_CACHE_DURATION: [backend] "
                        "status_cache_duration: 50 is out of range");
}

static void test_env_cross_check_names_variable(void **state)
{
    char *const env1[] = {E("WAHAGATE_SERVER_WORKERS=20"), NULL};
    char *const env2[] = {E("WAHA_POLLING_INTERVAL=70000"), NULL};

    (void)state;
    assert_int_equal(load("", env1), -1);
    expect_error_prefix("environment WAHAGATE_SERVER_WORKERS: [server] workers: "
                        "20 is outside");
    assert_int_equal(load("", env2), -1);
    expect_error_prefix("environment WAHA_POLLING_INTERVAL: [frontend] "
                        "base_interval: 70000 is above max_interval");
}

static void test_env_other_variables_ignored(void **state)
{
    char *const env[] = {E("HOME=/root"),       E("WAHAGATEX=1"),
                         E("WAHA_OTHER=1"),     E("WAHAGATE_SERVER_WORKERS"),
                         E("X_WAHAGATE_A_B=1"), NULL};

    (void)state;
    load_ok("", env);
    assert_int_equal(cfg->server.workers, 2);
}

static void test_config_set(void **state)
{
    (void)state;
    config_defaults(cfg);
    memset(errs, 0, sizeof(*errs));
    assert_int_equal(config_set(cfg, "server", "workers", "7", "test", 0, errs), 0);
    assert_int_equal(cfg->server.workers, 7);
    assert_int_equal(errs->count, 0);
    assert_int_equal(config_set(cfg, "server", "workers", "x", "src", 12, errs), -1);
    expect_error_prefix("src:12: [server] workers: \"x\" is not a whole number");
    assert_int_equal(config_set(cfg, "nope", "x", "1", "src", 13, errs), -1);
    expect_error_prefix("src:13: [nope] x: unknown section");
    assert_int_equal(errs->count, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_unknown_section),
        cmocka_unit_test(test_error_unknown_key),
        cmocka_unit_test(test_error_key_outside_section),
        cmocka_unit_test(test_error_not_a_number),
        cmocka_unit_test(test_error_out_of_range),
        cmocka_unit_test(test_error_bad_listen),
        cmocka_unit_test(test_error_bad_shm_name),
        cmocka_unit_test(test_error_bad_url),
        cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_error_bad_session_name),
        cmocka_unit_test(test_error_duplicate_session),
        cmocka_unit_test(test_error_key_set_twice),
        cmocka_unit_test(test_error_line_too_long),
        cmocka_unit_test(test_line_that_fits_is_accepted),
        cmocka_unit_test(test_error_syntax),
        cmocka_unit_test(test_several_errors_all_reported),
        cmocka_unit_test(test_error_count_truncated),
        cmocka_unit_test(test_cross_min_above_max_workers),
        cmocka_unit_test(test_cross_workers_outside_bounds),
        cmocka_unit_test(test_cross_intervals),
        cmocka_unit_test(test_cross_open_duration),
        cmocka_unit_test(test_cross_sessions_above_max_sessions),
        cmocka_unit_test(test_cross_auth_required_without_key),
        cmocka_unit_test(test_env_legacy_names),
        cmocka_unit_test(test_env_wahagate_names),
        cmocka_unit_test(test_env_precedence),
        cmocka_unit_test(test_env_wahagate_wins_over_legacy),
        cmocka_unit_test(test_env_waha_api_key_plain),
        cmocka_unit_test(test_env_unknown_key),
        cmocka_unit_test(test_env_malformed_name),
        cmocka_unit_test(test_env_bad_value_names_variable),
        cmocka_unit_test(test_env_cross_check_names_variable),
        cmocka_unit_test(test_env_other_variables_ignored),
        cmocka_unit_test(test_config_set),
    };

    return cmocka_run_group_tests_name("config_env", tests, group_setup, group_teardown);
}
