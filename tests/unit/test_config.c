/*
 * test_config.c - unit tests for common/config.c: waha.ini loading, the
 * defaults of the docs/design.md key table, the file over the defaults,
 * and the keys with a syntax of their own (sessions, [auth] key, listen,
 * trusted_proxies, cors_origins). The error messages of the file, the
 * checks that span several keys and the environment overrides are in
 * test_config_env.c.
 *
 * Why: waha.ini is part of the contract (docs/design.md "waha.ini");
 * packaging, `wahagate -t` and SIGHUP reload depend on a default never
 * changing silently and on every key meaning what the contract says. The
 * fixture (config_fixture.h) gives every test its own environment array
 * and ini file, so the result never depends on the shell that runs it.
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

#include "config_fixture.h"

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
    assert_int_equal(cfg->server.max_sessions, 1000);
    assert_int_equal(cfg->server.cors_origin_count, 0);
    assert_false(cfg->server.cors_any);

    assert_string_equal(cfg->upstream.url, "http://127.0.0.1:3000");
    assert_string_equal(cfg->upstream.api_key, "");
    assert_false(cfg->upstream.all_sessions);
    assert_int_equal(cfg->upstream.session_count, 1);
    assert_string_equal(cfg->upstream.sessions[0], "default");
    assert_true(cfg->upstream.events); /* auto */

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
    assert_int_equal(cfg->limits.qr_timeout, 20000);
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

    assert_true(cfg->compat.waha_api);
    assert_true(cfg->compat.seed_api);

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
            "qr_timeout = 30000\n"
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
            "max_sessions = 5000\n"
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
            "events = off\n"
            "[compat]\n"
            "waha_api = false\n"
            "seed_api = no\n"
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
    assert_int_equal(cfg->limits.qr_timeout, 30000);
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
    assert_int_equal(cfg->server.max_sessions, 5000);
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
    assert_false(cfg->upstream.events);
    assert_false(cfg->compat.waha_api);
    assert_false(cfg->compat.seed_api);
    assert_true(cfg->auth.required);
    assert_int_equal(cfg->auth.key_count, 1);
}

static void test_upstream_api_key_sha512_refused(void **state)
{
    (void)state;
    /* WAHA keeps its key as sha512:<hex> and compares the hash of what
     * clients send: the gateway must send the key itself. */
    expect_only_error("[upstream]\napi_key = sha512:abcdef\n", 2,
                      "[upstream] api_key: a sha512: value is the hash WAHA keeps, "
                      "not the key clients send; set WAHA_API_KEY_PLAIN");
    /* Only the prefix: a key that merely contains it is a key. */
    load_ok("[upstream]\napi_key = my-sha512:key\n", no_env);
    assert_string_equal(cfg->upstream.api_key, "my-sha512:key");
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
    char name[CONFIG_SESSION_NAME_MAX + 1];

    (void)state;
    /* Up to CONFIG_SESSION_NAME_MAX - 1 (63) bytes, what the region holds
     * (was WAHA's 54 characters: issue 16 follows the names WAHA really
     * has, which its rule did not always check). */
    memset(name, 'a', CONFIG_SESSION_NAME_MAX - 1);
    name[CONFIG_SESSION_NAME_MAX - 1] = '\0';
    assert_true(config_valid_session_name(name));
    name[CONFIG_SESSION_NAME_MAX - 1] = 'a';
    name[CONFIG_SESSION_NAME_MAX] = '\0';
    assert_false(config_valid_session_name(name));

    assert_true(config_valid_session_name("a"));
    assert_true(config_valid_session_name("default"));
    assert_true(config_valid_session_name("my-session"));
    assert_true(config_valid_session_name("my_session"));
    assert_true(config_valid_session_name("-"));
    assert_true(config_valid_session_name("_"));
    assert_true(config_valid_session_name("Session_01-A"));
    /* Names WAHA holds although its own rule refuses them now
     * (docs/waha-api.md, 9): dots, spaces, UTF-8, other punctuation. */
    assert_true(config_valid_session_name("sales.team"));
    assert_true(config_valid_session_name("a.b"));
    assert_true(config_valid_session_name("."));
    assert_true(config_valid_session_name("a b"));
    assert_true(config_valid_session_name("a/b"));
    assert_true(config_valid_session_name("a:b"));
    assert_true(config_valid_session_name("caf\xc3\xa9"));
    assert_true(config_valid_session_name("**"));
    /* Never: empty, "*" (all sessions), the list separator, control
     * bytes (a log line or a header could be forged with them). */
    assert_false(config_valid_session_name(""));
    assert_false(config_valid_session_name("*"));
    assert_false(config_valid_session_name("a,b"));
    assert_false(config_valid_session_name(","));
    assert_false(config_valid_session_name("a\tb"));
    assert_false(config_valid_session_name("a\nb"));
    assert_false(config_valid_session_name("\x01"));
    assert_false(config_valid_session_name("a\x1f"));
    assert_false(config_valid_session_name("a\x7f"));
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
 * around the colons and a list of sessions. The SESSIONS part is trimmed
 * in place (config_copy_trimmed()), which once copied with memcpy() between
 * overlapping ranges: undefined behaviour, which with glibc turned
 * "default, shop" into "defaut,shop" (and ASan reported
 * memcpy-param-overlap). Run in a child so that a sanitizer report ends
 * this test only.
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
    /* A dot is allowed in a session name now (issue 16); a control byte
     * is not. */
    expect_only_error("[auth]\nkey = web : secret : bad\x01name\n", 2,
                      "[auth] key: \"bad\x01name\" is not a session name");
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
    /* The opaque origin: any page can send it (issue 15). */
    expect_only_error("[server]\ncors_origins = https://a.example, null\n", 2,
                      "[server] cors_origins: the origin null (sandboxed pages, file: "
                      "URLs) cannot be allowed");
    expect_only_error("[server]\ncors_origins = NULL\n", 2,
                      "[server] cors_origins: the origin null");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_config_defaults_function),
        cmocka_unit_test(test_file_overrides_defaults),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_sessions_star),
        cmocka_unit_test(test_sessions_list_trimmed),
        cmocka_unit_test(test_sessions_too_many),
        cmocka_unit_test(test_valid_session_name),
        cmocka_unit_test(test_upstream_api_key_sha512_refused),
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
