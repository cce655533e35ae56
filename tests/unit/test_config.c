/*
 * test_config.c - unit tests for common/config.c: waha.ini loading, the
 * defaults of the docs/design.md key table, the environment overrides, the error
 * messages and the checks that span several keys.
 *
 * Why: waha.ini and its environment overrides are part of the contract
 * (docs/design.md "waha.ini"); packaging, `wahagate -t` and SIGHUP reload depend
 * on a default never changing silently, on every bad line being reported as
 * FILE:LINE with its [section] key (all of them, not only the first), and on
 * the precedence defaults < file < environment. Every test passes its own
 * environment array, so the result never depends on the shell that runs it,
 * and writes its ini file with mkstemp() under /tmp, removed after loading.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define E(s) ((char *)(s))

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
static void write_ini(const char *text)
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
static int load(const char *text, char *const *envp)
{
    int rc;

    write_ini(text);
    rc = config_load(ini_path, envp, cfg, errs);
    unlink(ini_path);
    return rc;
}

static void dump_errors(void)
{
    for (int i = 0; i < errs->count; i++)
        print_message("  error %d: %s\n", i, errs->message[i]);
}

static void load_ok(const char *text, char *const *envp)
{
    int rc = load(text, envp);

    if (rc != 0 || errs->count != 0) {
        dump_errors();
        fail_msg("config_load failed (%d errors)", errs->count);
    }
}

/* Some message starts with PREFIX. */
static void expect_error_prefix(const char *prefix)
{
    for (int i = 0; i < errs->count; i++)
        if (strncmp(errs->message[i], prefix, strlen(prefix)) == 0)
            return;
    dump_errors();
    fail_msg("no error starts with \"%s\"", prefix);
}

/* Some message starts with "<ini_path>:<LINE>: <REST>". */
static void expect_error_at(int line, const char *rest)
{
    char want[CONFIG_ERROR_MAX + 64];

    snprintf(want, sizeof(want), "%s:%d: %s", ini_path, line, rest);
    expect_error_prefix(want);
}

static void expect_error_containing(const char *part)
{
    for (int i = 0; i < errs->count; i++)
        if (strstr(errs->message[i], part) != NULL)
            return;
    dump_errors();
    fail_msg("no error contains \"%s\"", part);
}

/* Load TEXT expecting failure with exactly one error at LINE: REST. */
static void expect_only_error(const char *text, int line, const char *rest)
{
    assert_int_equal(load(text, no_env), -1);
    expect_error_at(line, rest);
    if (errs->count != 1) {
        dump_errors();
        fail_msg("expected 1 error, got %d", errs->count);
    }
}

/*========================================================================
 * Defaults and the file
 */

static void test_defaults(void **state)
{
    (void)state;
    load_ok("", no_env);

    assert_string_equal(cfg->path, ini_path);
    assert_int_equal(cfg->server.listen_count, 1);
    assert_string_equal(cfg->server.listen[0].host, "127.0.0.1");
    assert_int_equal(cfg->server.listen[0].port, 8080);
    assert_int_equal(cfg->server.workers, 2);
    assert_int_equal(cfg->server.min_workers, 1);
    assert_int_equal(cfg->server.max_workers, 8);
    assert_string_equal(cfg->server.shm_name, "/wahagate");
    assert_string_equal(cfg->server.user, "");
    assert_string_equal(cfg->server.pid_file, "");
    assert_int_equal(cfg->server.client_timeout, 30000);
    assert_string_equal(cfg->server.stats_token, "");
    assert_int_equal(cfg->server.trusted_proxy_count, 0);
    assert_int_equal(cfg->server.admin_listen_count, 0);
    assert_int_equal(cfg->server.max_connections, 10000);
    assert_int_equal(cfg->server.cors_origin_count, 0);
    assert_false(cfg->server.cors_any);

    assert_string_equal(cfg->upstream.url, "http://127.0.0.1:3000");
    assert_string_equal(cfg->upstream.api_key, "");
    assert_false(cfg->upstream.all_sessions);
    assert_int_equal(cfg->upstream.session_count, 1);
    assert_string_equal(cfg->upstream.sessions[0], "default");

    assert_int_equal(cfg->backend.status_cache_duration, 10000);
    assert_int_equal(cfg->backend.session_cache_duration, 10000);
    assert_int_equal(cfg->backend.health_check_cache_duration, 30000);
    assert_int_equal(cfg->backend.stale_if_error, 86400000);
    assert_int_equal(cfg->backend.flap_hold, 5000);

    assert_int_equal(cfg->frontend.initial_check_delay, 5000);
    assert_int_equal(cfg->frontend.base_interval, 15000);
    assert_int_equal(cfg->frontend.authenticated_interval, 30000);
    assert_int_equal(cfg->frontend.max_interval, 60000);
    assert_true(cfg->frontend.backoff_multiplier == 2.0);

    assert_int_equal(cfg->limits.max_concurrent_requests, 2);
    assert_int_equal(cfg->limits.request_timeout, 5000);
    assert_int_equal(cfg->limits.max_retries, 3);

    assert_int_equal(cfg->circuit.failure_threshold, 5);
    assert_int_equal(cfg->circuit.open_duration, 30000);
    assert_int_equal(cfg->circuit.max_open_duration, 300000);

    assert_true(cfg->ratelimit.enabled);
    assert_true(cfg->ratelimit.rate == 10.0);
    assert_int_equal(cfg->ratelimit.burst, 30);

    assert_true(cfg->webhook.enabled);
    assert_string_equal(cfg->webhook.hmac_key, "");
    assert_int_equal(cfg->webhook.safety_interval, 300000);

    assert_false(cfg->auth.required);
    assert_int_equal(cfg->auth.key_count, 0);

    assert_string_equal(cfg->redis.url, "");
    assert_string_equal(cfg->redis.key_prefix, "wahagate:");
    assert_int_equal(cfg->redis.lock_ttl, 5000);

    assert_int_equal(cfg->log.level, LOG_LEVEL_INFO);
    assert_string_equal(cfg->log.file, "");
    assert_false(cfg->log.access);
}

static void test_config_defaults_function(void **state)
{
    (void)state;
    memset(cfg, 0x5a, sizeof(*cfg));
    config_defaults(cfg);
    assert_int_equal(cfg->server.workers, 2);
    assert_int_equal(cfg->server.listen_count, 1);
    assert_string_equal(cfg->upstream.sessions[0], "default");
    assert_int_equal(cfg->auth.key_count, 0);
    assert_int_equal(cfg->log.level, LOG_LEVEL_INFO);
}

static void test_file_overrides_defaults(void **state)
{
    (void)state;
    /* Sections in an unusual order, comments of both kinds, blanks. */
    load_ok("; wahagate test file\n"
            "# another comment\n"
            "\n"
            "[log]\n"
            "level = debug\n"
            "file = /tmp/wahagate-test.log\n"
            "access = yes\n"
            "[redis]\n"
            "url = redis://:pw@127.0.0.1:6379/2\n"
            "key_prefix = wg:\n"
            "lock_ttl = 7000\n"
            "[limits]\n"
            "max_concurrent_requests = 4   ; inline comment\n"
            "request_timeout = 2500\n"
            "max_retries = 0\n"
            "[frontend]\n"
            "initial_check_delay = 0\n"
            "base_interval = 20000\n"
            "authenticated_interval = 40000\n"
            "max_interval = 120000\n"
            "backoff_multiplier = 1.5\n"
            "[backend]\n"
            "  status_cache_duration   =   2000  \n"
            "session_cache_duration = 3000\n"
            "health_check_cache_duration = 4000\n"
            "stale_if_error = 0\n"
            "flap_hold = 0\n"
            "[server]\n"
            "listen = 0.0.0.0:9090\n"
            "workers = 3\n"
            "min_workers = 2\n"
            "max_workers = 16\n"
            "shm_name = /wgtest\n"
            "user = nobody\n"
            "pid_file = /run/wg.pid\n"
            "client_timeout = 1000\n"
            "stats_token = tok\n"
            "max_connections = 50\n"
            "[circuit]\n"
            "failure_threshold = 2\n"
            "open_duration = 1000\n"
            "max_open_duration = 2000\n"
            "[ratelimit]\n"
            "enabled = off\n"
            "rate = 0.5\n"
            "burst = 1\n"
            "[webhook]\n"
            "enabled = false\n"
            "hmac_key = s3cret\n"
            "safety_interval = 60000\n"
            "[upstream]\n"
            "url = https://waha.example:8443/\n"
            "api_key = key123\n"
            "sessions = shop\n"
            "[auth]\n"
            "required = true\n"
            "key = web : pw : shop\n",
            no_env);

    assert_int_equal(cfg->log.level, LOG_LEVEL_DEBUG);
    assert_string_equal(cfg->log.file, "/tmp/wahagate-test.log");
    assert_true(cfg->log.access);
    assert_string_equal(cfg->redis.url, "redis://:pw@127.0.0.1:6379/2");
    assert_string_equal(cfg->redis.key_prefix, "wg:");
    assert_int_equal(cfg->redis.lock_ttl, 7000);
    assert_int_equal(cfg->limits.max_concurrent_requests, 4);
    assert_int_equal(cfg->limits.request_timeout, 2500);
    assert_int_equal(cfg->limits.max_retries, 0);
    assert_int_equal(cfg->frontend.initial_check_delay, 0);
    assert_int_equal(cfg->frontend.base_interval, 20000);
    assert_int_equal(cfg->frontend.authenticated_interval, 40000);
    assert_int_equal(cfg->frontend.max_interval, 120000);
    assert_true(cfg->frontend.backoff_multiplier == 1.5);
    assert_int_equal(cfg->backend.status_cache_duration, 2000);
    assert_int_equal(cfg->backend.session_cache_duration, 3000);
    assert_int_equal(cfg->backend.health_check_cache_duration, 4000);
    assert_int_equal(cfg->backend.stale_if_error, 0);
    assert_int_equal(cfg->backend.flap_hold, 0);
    assert_int_equal(cfg->server.listen_count, 1);
    assert_string_equal(cfg->server.listen[0].host, "0.0.0.0");
    assert_int_equal(cfg->server.listen[0].port, 9090);
    assert_int_equal(cfg->server.workers, 3);
    assert_int_equal(cfg->server.min_workers, 2);
    assert_int_equal(cfg->server.max_workers, 16);
    assert_string_equal(cfg->server.shm_name, "/wgtest");
    assert_string_equal(cfg->server.user, "nobody");
    assert_string_equal(cfg->server.pid_file, "/run/wg.pid");
    assert_int_equal(cfg->server.client_timeout, 1000);
    assert_string_equal(cfg->server.stats_token, "tok");
    assert_int_equal(cfg->server.max_connections, 50);
    assert_int_equal(cfg->circuit.failure_threshold, 2);
    assert_int_equal(cfg->circuit.open_duration, 1000);
    assert_int_equal(cfg->circuit.max_open_duration, 2000);
    assert_false(cfg->ratelimit.enabled);
    assert_true(cfg->ratelimit.rate == 0.5);
    assert_int_equal(cfg->ratelimit.burst, 1);
    assert_false(cfg->webhook.enabled);
    assert_string_equal(cfg->webhook.hmac_key, "s3cret");
    assert_int_equal(cfg->webhook.safety_interval, 60000);
    assert_string_equal(cfg->upstream.url, "https://waha.example:8443");
    assert_string_equal(cfg->upstream.api_key, "key123");
    assert_int_equal(cfg->upstream.session_count, 1);
    assert_string_equal(cfg->upstream.sessions[0], "shop");
    assert_true(cfg->auth.required);
    assert_int_equal(cfg->auth.key_count, 1);
}

static void test_missing_file(void **state)
{
    (void)state;
    assert_int_equal(config_load("/tmp/wgunit-no-such-dir/waha.ini", no_env, cfg, errs),
                     -1);
    assert_int_equal(errs->count, 1);
    expect_error_prefix("/tmp/wgunit-no-such-dir/waha.ini:0: cannot open");
}

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

    /* The bounds themselves are in range. */
    load_ok("[server]\nmin_workers = 64\nmax_workers = 64\nworkers = 64\n"
            "[limits]\nmax_retries = 10\n[ratelimit]\nrate = 0.001\n",
            no_env);
    assert_int_equal(cfg->server.workers, 64);
    assert_int_equal(cfg->limits.max_retries, 10);
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
    (void)state;
    expect_only_error("[upstream]\nsessions = default, bad.name\n", 2,
                      "[upstream] sessions: \"bad.name\" is not a WAHA session "
                      "name");
    expect_only_error("[upstream]\nsessions = a b\n", 2, "[upstream] sessions:");
    expect_only_error("[upstream]\nsessions = a,,b\n", 2,
                      "[upstream] sessions: empty item");
    expect_only_error("[upstream]\nsessions = a, *\n", 2, "[upstream] sessions:");
    expect_only_error("[upstream]\nsessions =\n", 2, "[upstream] sessions:");
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
                          "sessions = a.b\n"
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

/*========================================================================
 * Sessions
 */

static void test_sessions_star(void **state)
{
    (void)state;
    load_ok("[upstream]\nsessions = *\n", no_env);
    assert_true(cfg->upstream.all_sessions);
    assert_int_equal(cfg->upstream.session_count, 0);
    assert_true(config_tracks_session(cfg, "default"));
    assert_true(config_tracks_session(cfg, "anything"));
}

static void test_sessions_list_trimmed(void **state)
{
    (void)state;
    load_ok("[upstream]\nsessions =   shop ,b_2,  c-3  ,default\n", no_env);
    assert_false(cfg->upstream.all_sessions);
    assert_int_equal(cfg->upstream.session_count, 4);
    assert_string_equal(cfg->upstream.sessions[0], "shop");
    assert_string_equal(cfg->upstream.sessions[1], "b_2");
    assert_string_equal(cfg->upstream.sessions[2], "c-3");
    assert_string_equal(cfg->upstream.sessions[3], "default");
    assert_true(config_tracks_session(cfg, "shop"));
    assert_true(config_tracks_session(cfg, "c-3"));
    assert_false(config_tracks_session(cfg, " shop"));
    assert_false(config_tracks_session(cfg, "Shop"));
    assert_false(config_tracks_session(cfg, "other"));
    assert_false(config_tracks_session(cfg, ""));
}

static void test_sessions_too_many(void **state)
{
    char text[8192];
    int n;

    (void)state;
    /* Through the environment: a file line could not hold 65 names. */
    n = snprintf(text, sizeof(text), "WAHAGATE_UPSTREAM_SESSIONS=");
    for (int i = 0; i < CONFIG_MAX_SESSIONS + 1; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "%ss%d", i ? "," : "", i);
    {
        char *const env[] = {text, NULL};
        assert_int_equal(load("", env), -1);
        expect_error_prefix("environment WAHAGATE_UPSTREAM_SESSIONS: [upstream] "
                            "sessions: at most");
    }
}

static void test_valid_session_name(void **state)
{
    char name[64];

    (void)state;
    memset(name, 'a', 54);
    name[54] = '\0';
    assert_true(config_valid_session_name(name));
    name[54] = 'a';
    name[55] = '\0';
    assert_false(config_valid_session_name(name));

    assert_true(config_valid_session_name("a"));
    assert_true(config_valid_session_name("default"));
    assert_true(config_valid_session_name("my-session"));
    assert_true(config_valid_session_name("my_session"));
    assert_true(config_valid_session_name("-"));
    assert_true(config_valid_session_name("_"));
    assert_true(config_valid_session_name("Session_01-A"));
    assert_false(config_valid_session_name(""));
    assert_false(config_valid_session_name("a.b"));
    assert_false(config_valid_session_name("."));
    assert_false(config_valid_session_name("a b"));
    assert_false(config_valid_session_name("a/b"));
    assert_false(config_valid_session_name("a:b"));
    assert_false(config_valid_session_name("caf\xc3\xa9"));
}

/*========================================================================
 * [auth] key
 */

static const uint8_t sha256_abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                       0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                       0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                       0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};

#define HEX_S3CRET "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"

static void hex_to_bytes(const char *hex, uint8_t *out)
{
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void test_auth_key_clear_secret(void **state)
{
    (void)state;
    load_ok("[auth]\nrequired = true\nkey = web : abc : default\n", no_env);
    assert_int_equal(cfg->auth.key_count, 1);
    assert_string_equal(cfg->auth.keys[0].name, "web");
    assert_memory_equal(cfg->auth.keys[0].secret_sha256, sha256_abc, 32);
    assert_false(cfg->auth.keys[0].all_sessions);
    assert_string_equal(cfg->auth.keys[0].sessions, "default");
}

static void test_auth_key_sha256_and_star(void **state)
{
    uint8_t want[32];

    (void)state;
    hex_to_bytes(HEX_S3CRET, want);
    load_ok("[auth]\nkey = ops : sha256:" HEX_S3CRET " : *\n"
            "key=plain:abc:*\n",
            no_env);
    assert_int_equal(cfg->auth.key_count, 2);
    assert_string_equal(cfg->auth.keys[0].name, "ops");
    assert_memory_equal(cfg->auth.keys[0].secret_sha256, want, 32);
    assert_true(cfg->auth.keys[0].all_sessions);
    assert_string_equal(cfg->auth.keys[0].sessions, "");
    assert_string_equal(cfg->auth.keys[1].name, "plain");
    assert_memory_equal(cfg->auth.keys[1].secret_sha256, sha256_abc, 32);
    assert_true(cfg->auth.keys[1].all_sessions);
}

static void test_auth_key_sha256_uppercase_hex(void **state)
{
    char upper[65];
    char text[256];

    (void)state;
    for (int i = 0; i < 64; i++)
        upper[i] = (char)((HEX_S3CRET[i] >= 'a' && HEX_S3CRET[i] <= 'f')
                              ? HEX_S3CRET[i] - 'a' + 'A'
                              : HEX_S3CRET[i]);
    upper[64] = '\0';
    snprintf(text, sizeof(text), "[auth]\nkey = ops : sha256:%s : *\n", upper);
    load_ok(text, no_env);
    {
        uint8_t want[32];
        hex_to_bytes(HEX_S3CRET, want);
        assert_memory_equal(cfg->auth.keys[0].secret_sha256, want, 32);
    }
}

/*
 * The contract's spelling "NAME : sha256:<hex> : SESSIONS" with blanks
 * around the colons and a list of sessions. set_auth_key() trims the
 * SESSIONS part in place with copy_trimmed(), whose memcpy() then copies
 * between overlapping ranges: undefined behaviour, which with glibc turns
 * "default, shop" into "defaut,shop" (and ASan reports memcpy-param-overlap).
 * Run in a child so that a sanitizer report ends this test only.
 */
static void test_auth_key_sha256_with_session_list(void **state)
{
    pid_t pid;
    int status;

    (void)state;
    write_ini("[upstream]\nsessions = default, shop\n"
              "[auth]\nkey = ops : sha256:" HEX_S3CRET " : default, shop\n");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t want[32];
        int rc = config_load(ini_path, no_env, cfg, errs);
        hex_to_bytes(HEX_S3CRET, want);
        for (int i = 0; i < errs->count; i++)
            fprintf(stderr, "  child error %d: %s\n", i, errs->message[i]);
        if (cfg->auth.key_count == 1)
            fprintf(stderr,
                    "  child: key \"%s\" sessions \"%s\" (want "
                    "\"default,shop\")\n",
                    cfg->auth.keys[0].name, cfg->auth.keys[0].sessions);
        if (rc != 0)
            _exit(10);
        if (cfg->auth.key_count != 1 ||
            strcmp(cfg->auth.keys[0].sessions, "default,shop") != 0)
            _exit(11);
        if (memcmp(cfg->auth.keys[0].secret_sha256, want, 32) != 0)
            _exit(12);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(ini_path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        print_message("config_load in the child: %s %d (10: failed, 11: wrong "
                      "sessions, 12: wrong digest, other: sanitizer report on "
                      "stderr)\n",
                      WIFEXITED(status) ? "exit" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_auth_key_session_list(void **state)
{
    (void)state;
    load_ok("[upstream]\nsessions = default, shop, b\n"
            "[auth]\nkey = multi : pw : default ,shop,  b\n",
            no_env);
    assert_string_equal(cfg->auth.keys[0].sessions, "default,shop,b");
    assert_false(cfg->auth.keys[0].all_sessions);
}

static void test_auth_key_duplicate_name(void **state)
{
    (void)state;
    assert_int_equal(load("[auth]\nkey = web : a : *\nkey = api : b : *\n"
                          "key = web : c : *\n",
                          no_env),
                     -1);
    expect_error_at(4, "[auth] key: key name \"web\" is used twice");
    assert_int_equal(errs->count, 1);
}

static void test_auth_key_empty_secret(void **state)
{
    (void)state;
    expect_only_error("[auth]\nkey = web :  : default\n", 2,
                      "[auth] key: the secret of key \"web\" is empty");
}

static void test_auth_key_malformed(void **state)
{
    (void)state;
    expect_only_error("[auth]\nkey = web : secret\n", 2,
                      "[auth] key: expected NAME : SECRET : SESSIONS");
    expect_only_error("[auth]\nkey = web\n", 2, "[auth] key: expected NAME");
    expect_only_error("[auth]\nkey =  : secret : *\n", 2, "[auth] key: key name");
    expect_only_error("[auth]\nkey = web : secret :\n", 2,
                      "[auth] key: key \"web\" names no sessions");
    /* Found by fuzz_config: "," was a key for no session at all. */
    expect_only_error("[auth]\nkey = web : secret : ,\n", 2,
                      "[auth] key: key \"web\" names no sessions");
    expect_only_error("[auth]\nkey = web : secret : bad.name\n", 2,
                      "[auth] key: \"bad.name\" is not a session name");
}

static void test_auth_key_session_not_tracked(void **state)
{
    (void)state;
    assert_int_equal(load("[upstream]\nsessions = default, shop\n"
                          "[auth]\n"
                          "key = good : a : shop\n"
                          "key = bad : b : default, other\n",
                          no_env),
                     -1);
    expect_error_at(5, "[auth] key: key \"bad\" names session \"other\", which "
                       "upstream.sessions does not track");
    assert_int_equal(errs->count, 1);

    /* With sessions = * every name is tracked. */
    load_ok("[upstream]\nsessions = *\n[auth]\nkey = k : a : other\n", no_env);
}

static void test_auth_key_bad_hex(void **state)
{
    (void)state;
    /* 64 characters, not all hex */
    expect_only_error("[auth]\nkey = ops : sha256:"
                      "zz"
                      "c1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
                      " : *\n",
                      2, "[auth] key: sha256: must be followed by 64 hex digits");
    /* 63 characters */
    expect_only_error("[auth]\nkey = ops : sha256:"
                      "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba"
                      " : *\n",
                      2, "[auth] key: sha256: must be followed by 64 hex digits");
    /* 65 characters */
    expect_only_error("[auth]\nkey = ops : sha256:" HEX_S3CRET "0 : *\n", 2,
                      "[auth] key: sha256:");
    /* no sessions after the digest */
    expect_only_error("[auth]\nkey = ops : sha256:" HEX_S3CRET "\n", 2, "[auth] key:");
}

/*========================================================================
 * listen, trusted_proxies, cors_origins
 */

static void test_listen_several(void **state)
{
    (void)state;
    load_ok("[server]\nlisten = 127.0.0.1:8080, [::1]:8081,*:9000 , "
            "localhost:1\nadmin_listen = 127.0.0.1:9100\n",
            no_env);
    assert_int_equal(cfg->server.listen_count, 4);
    assert_string_equal(cfg->server.listen[0].host, "127.0.0.1");
    assert_int_equal(cfg->server.listen[0].port, 8080);
    assert_string_equal(cfg->server.listen[1].host, "::1");
    assert_int_equal(cfg->server.listen[1].port, 8081);
    assert_string_equal(cfg->server.listen[2].host, "*");
    assert_int_equal(cfg->server.listen[2].port, 9000);
    assert_string_equal(cfg->server.listen[3].host, "localhost");
    assert_int_equal(cfg->server.listen[3].port, 1);
    assert_int_equal(cfg->server.admin_listen_count, 1);
    assert_int_equal(cfg->server.admin_listen[0].port, 9100);
}

static void test_listen_too_many(void **state)
{
    (void)state;
    assert_int_equal(load("[server]\nlisten = *:1,*:2,*:3,*:4,*:5,*:6,*:7,*:8,"
                          "*:9\n",
                          no_env),
                     -1);
    expect_error_at(2, "[server] listen: at most 8 addresses");
}

static void test_trusted_proxies(void **state)
{
    (void)state;
    load_ok("[server]\ntrusted_proxies = 10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1\n",
            no_env);
    assert_int_equal(cfg->server.trusted_proxy_count, 4);
    assert_int_equal(cfg->server.trusted_proxies[0].family, AF_INET);
    assert_int_equal(cfg->server.trusted_proxies[0].prefix, 8);
    assert_int_equal(cfg->server.trusted_proxies[0].addr[0], 10);
    assert_int_equal(cfg->server.trusted_proxies[1].family, AF_INET);
    assert_int_equal(cfg->server.trusted_proxies[1].prefix, 32);
    assert_int_equal(cfg->server.trusted_proxies[1].addr[0], 192);
    assert_int_equal(cfg->server.trusted_proxies[1].addr[3], 7);
    assert_int_equal(cfg->server.trusted_proxies[2].family, AF_INET6);
    assert_int_equal(cfg->server.trusted_proxies[2].prefix, 8);
    assert_int_equal(cfg->server.trusted_proxies[2].addr[0], 0xfd);
    assert_int_equal(cfg->server.trusted_proxies[3].family, AF_INET6);
    assert_int_equal(cfg->server.trusted_proxies[3].prefix, 128);
    assert_int_equal(cfg->server.trusted_proxies[3].addr[15], 1);

    load_ok("[server]\ntrusted_proxies = 0.0.0.0/0\n", no_env);
    assert_int_equal(cfg->server.trusted_proxies[0].prefix, 0);
}

static void test_trusted_proxies_bad(void **state)
{
    (void)state;
    expect_only_error("[server]\ntrusted_proxies = 10.0.0.0/33\n", 2,
                      "[server] trusted_proxies: \"10.0.0.0/33\": bad prefix");
    expect_only_error("[server]\ntrusted_proxies = ::1/129\n", 2,
                      "[server] trusted_proxies: \"::1/129\": bad prefix");
    expect_only_error("[server]\ntrusted_proxies = 10.0.0.0/\n", 2,
                      "[server] trusted_proxies:");
    expect_only_error("[server]\ntrusted_proxies = 10.0.0.0/-1\n", 2,
                      "[server] trusted_proxies:");
    expect_only_error("[server]\ntrusted_proxies = proxy.local\n", 2,
                      "[server] trusted_proxies: \"proxy.local\" is not an IPv4 "
                      "or IPv6 address");
    expect_only_error("[server]\ntrusted_proxies = 10.0.0.256\n", 2,
                      "[server] trusted_proxies:");
    expect_only_error("[server]\ntrusted_proxies = 10.0.0.1, , 10.0.0.2\n", 2,
                      "[server] trusted_proxies: empty item");
}

static void test_cors_origins(void **state)
{
    (void)state;
    load_ok("[server]\ncors_origins = https://app.example, http://b.example:8080/\n",
            no_env);
    assert_int_equal(cfg->server.cors_origin_count, 2);
    assert_false(cfg->server.cors_any);
    assert_string_equal(cfg->server.cors_origins[0], "https://app.example");
    assert_string_equal(cfg->server.cors_origins[1], "http://b.example:8080");

    load_ok("[server]\ncors_origins = *\n", no_env);
    assert_true(cfg->server.cors_any);
    assert_int_equal(cfg->server.cors_origin_count, 0);
}

static void test_cors_origins_bad(void **state)
{
    (void)state;
    expect_only_error("[server]\ncors_origins = https://app.example/path\n", 2,
                      "[server] cors_origins: origin \"https://app.example/path\" "
                      "must not have a path");
    expect_only_error("[server]\ncors_origins = app.example\n", 2,
                      "[server] cors_origins:");
    expect_only_error("[server]\ncors_origins = https://a.example,,https://b\n", 2,
                      "[server] cors_origins: empty item");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_config_defaults_function),
        cmocka_unit_test(test_file_overrides_defaults),
        cmocka_unit_test(test_missing_file),
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
        cmocka_unit_test(test_cross_auth_required_without_key),
        cmocka_unit_test(test_env_legacy_names),
        cmocka_unit_test(test_env_wahagate_names),
        cmocka_unit_test(test_env_precedence),
        cmocka_unit_test(test_env_wahagate_wins_over_legacy),
        cmocka_unit_test(test_env_unknown_key),
        cmocka_unit_test(test_env_malformed_name),
        cmocka_unit_test(test_env_bad_value_names_variable),
        cmocka_unit_test(test_env_cross_check_names_variable),
        cmocka_unit_test(test_env_other_variables_ignored),
        cmocka_unit_test(test_config_set),
        cmocka_unit_test(test_sessions_star),
        cmocka_unit_test(test_sessions_list_trimmed),
        cmocka_unit_test(test_sessions_too_many),
        cmocka_unit_test(test_valid_session_name),
        cmocka_unit_test(test_auth_key_clear_secret),
        cmocka_unit_test(test_auth_key_sha256_and_star),
        cmocka_unit_test(test_auth_key_sha256_uppercase_hex),
        cmocka_unit_test(test_auth_key_sha256_with_session_list),
        cmocka_unit_test(test_auth_key_session_list),
        cmocka_unit_test(test_auth_key_duplicate_name),
        cmocka_unit_test(test_auth_key_empty_secret),
        cmocka_unit_test(test_auth_key_malformed),
        cmocka_unit_test(test_auth_key_session_not_tracked),
        cmocka_unit_test(test_auth_key_bad_hex),
        cmocka_unit_test(test_listen_several),
        cmocka_unit_test(test_listen_too_many),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_trusted_proxies_bad),
        cmocka_unit_test(test_cors_origins),
        cmocka_unit_test(test_cors_origins_bad),
    };

    return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}
