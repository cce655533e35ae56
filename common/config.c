/*
 * config.c - the waha.ini key table, the line-counting inih reader, the
 * environment overrides and the checks that span several keys.
 *
 * DESIGN
 * Every key is one row of config_keys[]: section, key, the setter that
 * parses and checks a value (with the parsers of config_values.c), where
 * the value lives in struct config, its default as text and its numeric
 * range. Defaults go through the same setters as the file and the
 * environment, so a default can never be out of range.
 *
 * Loading is: defaults, then the file (inih calls handle_ini_pair() for each
 * "key = value"), then the environment, then validate_whole(). Debian's
 * libinih (r55) gives the handler no line number and cuts long lines in
 * silence, so read_counting_lines() hands lines to inih itself, counts them
 * and rejects lines that do not fit inih's buffer. Each setting remembers
 * where it came from ("waha.ini:12" or "environment WAHA_API_KEY") so every
 * message names its file and line or its variable. All errors are collected
 * (up to CONFIG_MAX_ERRORS), not just the first, so one `wahagate -t` run
 * shows everything that is wrong.
 *
 * Nothing here keeps state between calls; the code runs in the master (start,
 * reload, -t) and in tests.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>
#include <openssl/evp.h>

#include "config_values.h"
#include "log.h"
#include "region.h"

extern char **environ;

#define WHERE_MAX 160

struct config_key;

/* A setter parses VALUE into CFG, or writes the reason into WHY and fails. */
typedef int (*config_setter)(struct config *cfg, const struct config_key *k,
                             const char *value, char *why);

struct config_key {
    const char *section;
    const char *key;
    config_setter set;
    size_t offset;             /* of the field in struct config */
    size_t size;               /* of the field, for strings */
    const char *default_value; /* NULL: no default (repeatable keys) */
    double min, max;           /* numbers only */
    bool repeatable;
};

/*========================================================================
 * Setters: one per kind of value (parsed by config_values.c). Each writes
 * into the field its row names.
 */

static void *field(struct config *cfg, const struct config_key *k)
{
    return (char *)cfg + k->offset;
}

static int set_int(struct config *cfg, const struct config_key *k, const char *value,
                   char *why)
{
    int64_t v;

    if (config_parse_int64(value, &v) != 0) {
        config_why(why, "\"%s\" is not a whole number", value);
        return -1;
    }
    if ((double)v < k->min || (double)v > k->max) {
        config_why(why, "%lld is out of range (%.0f to %.0f)", (long long)v, k->min,
                   k->max);
        return -1;
    }
    *(int64_t *)field(cfg, k) = v;
    return 0;
}

static int set_double(struct config *cfg, const struct config_key *k, const char *value,
                      char *why)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(value, &end);
    if (value[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v)) {
        config_why(why, "\"%s\" is not a number", value);
        return -1;
    }
    if (v < k->min || v > k->max) {
        config_why(why, "%g is out of range (%g to %g)", v, k->min, k->max);
        return -1;
    }
    *(double *)field(cfg, k) = v;
    return 0;
}

static int set_bool(struct config *cfg, const struct config_key *k, const char *value,
                    char *why)
{
    if (config_parse_bool(value, (bool *)field(cfg, k)) != 0) {
        config_why(why, "\"%s\" is not true or false", value);
        return -1;
    }
    return 0;
}

static int set_string(struct config *cfg, const struct config_key *k, const char *value,
                      char *why)
{
    size_t len = strlen(value);

    if (len >= k->size) {
        config_why(why, "value is longer than %zu characters", k->size - 1);
        return -1;
    }
    memcpy(field(cfg, k), value, len + 1);
    return 0;
}

/* server.stats_token, and its SHA-256, which requests are compared with:
 * hashed here, in the master, so no worker needs libcrypto to start. */
static int set_stats_token(struct config *cfg, const struct config_key *k,
                           const char *value, char *why)
{
    if (set_string(cfg, k, value, why) != 0)
        return -1;
    EVP_Digest(value, strlen(value), cfg->server.stats_token_sha256, NULL, EVP_sha256(),
               NULL);
    return 0;
}

/* server.user: an account that exists, or children could not start. */
static int set_user(struct config *cfg, const struct config_key *k, const char *value,
                    char *why)
{
    if (value[0] != '\0' && getpwnam(value) == NULL) {
        config_why(why, "user \"%s\" does not exist", value);
        return -1;
    }
    return set_string(cfg, k, value, why);
}

static int set_shm_name(struct config *cfg, const struct config_key *k, const char *value,
                        char *why)
{
    size_t len = strlen(value);

    if (value[0] != '/' || len < 2 || strchr(value + 1, '/') != NULL) {
        config_why(why, "\"%s\" must be '/' followed by a name without '/'", value);
        return -1;
    }
    return set_string(cfg, k, value, why);
}

static int set_upstream_url(struct config *cfg, const struct config_key *k,
                            const char *value, char *why)
{
    return config_parse_http_url(value, field(cfg, k), k->size, why);
}

static int set_redis_url(struct config *cfg, const struct config_key *k,
                         const char *value, char *why)
{
    if (value[0] != '\0' && config_parse_redis_url(value, &cfg->redis.address, why) != 0)
        return -1;
    return set_string(cfg, k, value, why);
}

static int set_log_level(struct config *cfg, const struct config_key *k,
                         const char *value, char *why)
{
    int level = log_level_parse(value);

    if (level < 0) {
        config_why(why, "\"%s\" is not one of error, warn, info, debug", value);
        return -1;
    }
    *(int *)field(cfg, k) = level;
    return 0;
}

struct listen_list {
    struct listen_addr *addrs;
    int count;
};

static int add_listen_item(const char *text, void *ctx, char *why)
{
    struct listen_list *list = ctx;

    if (list->count == CONFIG_MAX_LISTEN) {
        config_why(why, "at most %d addresses", CONFIG_MAX_LISTEN);
        return -1;
    }
    return config_parse_listen(text, &list->addrs[list->count++], why);
}

/* server.listen (required) and server.admin_listen (may be empty). */
static int set_listen(struct config *cfg, const struct config_key *k, const char *value,
                      char *why)
{
    bool admin = strcmp(k->key, "admin_listen") == 0;
    struct listen_addr addrs[CONFIG_MAX_LISTEN];
    struct listen_list list = {addrs, 0};

    /* All of it is copied into CFG: no stack garbage in a struct that is
     * compared and handed across fork(). */
    memset(addrs, 0, sizeof(addrs));
    if (value[0] == '\0' && !admin) {
        config_why(why, "at least one host:port is needed");
        return -1;
    }
    if (value[0] != '\0' && config_for_each_item(value, why, add_listen_item, &list) != 0)
        return -1;
    if (admin) {
        memcpy(cfg->server.admin_listen, addrs, sizeof(addrs));
        cfg->server.admin_listen_count = list.count;
    } else {
        memcpy(cfg->server.listen, addrs, sizeof(addrs));
        cfg->server.listen_count = list.count;
    }
    return 0;
}

static int add_session_item(const char *text, void *ctx, char *why)
{
    struct config *cfg = ctx;

    if (!config_valid_session_name(text)) {
        config_why(why,
                   "\"%s\" is not a session name (1 to %d bytes, no control "
                   "character or comma)",
                   text, CONFIG_SESSION_NAME_MAX - 1);
        return -1;
    }
    for (int i = 0; i < cfg->upstream.session_count; i++) {
        if (strcmp(cfg->upstream.sessions[i], text) == 0) {
            config_why(why, "session \"%s\" is listed twice", text);
            return -1;
        }
    }
    if (cfg->upstream.session_count == CONFIG_MAX_SESSIONS) {
        config_why(why, "at most %d sessions", CONFIG_MAX_SESSIONS);
        return -1;
    }
    snprintf(cfg->upstream.sessions[cfg->upstream.session_count++],
             CONFIG_SESSION_NAME_MAX, "%s", text);
    return 0;
}

/* upstream.api_key: the key itself, which WAHA's clients send. */
static int set_api_key(struct config *cfg, const struct config_key *k, const char *value,
                       char *why)
{
    /* WAHA_API_KEY=sha512:<hex> is how WAHA's docs advise WAHA to keep its
     * key (docs/waha-api.md, 1): WAHA compares the hash of what clients
     * send, so the gateway must send the plain key, which WAHA's .env
     * then has as WAHA_API_KEY_PLAIN. */
    if (strncmp(value, "sha512:", 7) == 0) {
        config_why(why,
                   "a sha512: value is the hash WAHA keeps, not the key clients send; "
                   "set WAHA_API_KEY_PLAIN (or upstream.api_key) to the plain key");
        return -1;
    }
    return set_string(cfg, k, value, why);
}

/* upstream.events: auto (WAHA's WebSocket, when WAHA offers it) or off. */
static int set_events(struct config *cfg, const struct config_key *k, const char *value,
                      char *why)
{
    (void)k;
    if (strcmp(value, "auto") != 0 && strcmp(value, "off") != 0) {
        config_why(why, "\"%s\" is not auto or off", value);
        return -1;
    }
    cfg->upstream.events = strcmp(value, "auto") == 0;
    return 0;
}

static int set_sessions(struct config *cfg, const struct config_key *k, const char *value,
                        char *why)
{
    (void)k;
    if (strcmp(value, "*") == 0) {
        cfg->upstream.all_sessions = true;
        cfg->upstream.session_count = 0;
        return 0;
    }
    cfg->upstream.all_sessions = false;
    cfg->upstream.session_count = 0;
    if (value[0] == '\0') {
        config_why(why, "name at least one session, or *");
        return -1;
    }
    /* On failure the list is half built, but then the whole load fails. */
    return config_for_each_item(value, why, add_session_item, cfg);
}

static int add_proxy_item(const char *text, void *ctx, char *why)
{
    struct config *cfg = ctx;

    if (cfg->server.trusted_proxy_count == CONFIG_MAX_PROXIES) {
        config_why(why, "at most %d entries", CONFIG_MAX_PROXIES);
        return -1;
    }
    return config_parse_cidr(
        text, &cfg->server.trusted_proxies[cfg->server.trusted_proxy_count++], why);
}

static int set_trusted_proxies(struct config *cfg, const struct config_key *k,
                               const char *value, char *why)
{
    (void)k;
    cfg->server.trusted_proxy_count = 0;
    if (value[0] == '\0')
        return 0;
    return config_for_each_item(value, why, add_proxy_item, cfg);
}

static int add_origin_item(const char *text, void *ctx, char *why)
{
    struct config *cfg = ctx;
    char url[CONFIG_ORIGIN_MAX];

    if (strcmp(text, "*") == 0) {
        cfg->server.cors_any = true;
        return 0;
    }
    if (config_parse_origin(text, url, sizeof(url), why) != 0)
        return -1;
    if (cfg->server.cors_origin_count == CONFIG_MAX_ORIGINS) {
        config_why(why, "at most %d origins", CONFIG_MAX_ORIGINS);
        return -1;
    }
    snprintf(cfg->server.cors_origins[cfg->server.cors_origin_count++], CONFIG_ORIGIN_MAX,
             "%s", url);
    return 0;
}

static int set_cors_origins(struct config *cfg, const struct config_key *k,
                            const char *value, char *why)
{
    (void)k;
    cfg->server.cors_origin_count = 0;
    cfg->server.cors_any = false;
    if (value[0] == '\0')
        return 0;
    return config_for_each_item(value, why, add_origin_item, cfg);
}

/* auth.key = NAME : SECRET : SESSIONS (config_parse_auth_key()). */
static int set_auth_key(struct config *cfg, const struct config_key *k, const char *value,
                        char *why)
{
    struct auth_key key;

    (void)k;
    if (config_parse_auth_key(value, &key, why) != 0)
        return -1;
    for (int i = 0; i < cfg->auth.key_count; i++) {
        if (strcmp(cfg->auth.keys[i].name, key.name) == 0) {
            config_why(why, "key name \"%s\" is used twice", key.name);
            return -1;
        }
    }
    if (cfg->auth.key_count == CONFIG_MAX_AUTH_KEYS) {
        config_why(why, "at most %d keys", CONFIG_MAX_AUTH_KEYS);
        return -1;
    }
    cfg->auth.keys[cfg->auth.key_count++] = key;
    return 0;
}

/*========================================================================
 * The key table. The defaults are the contract in docs/design.md and waha.ini.
 */

#define OFF(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define DAY_MS 86400000.0

static const struct config_key config_keys[] = {
    {"server", "listen", set_listen, OFF(server.listen), "127.0.0.1:8080", 0, 0, false},
    {"server", "workers", set_int, OFF(server.workers), "2", 1, 64, false},
    {"server", "min_workers", set_int, OFF(server.min_workers), "1", 1, 64, false},
    {"server", "max_workers", set_int, OFF(server.max_workers), "8", 1, 64, false},
    {"server", "shm_name", set_shm_name, OFF(server.shm_name), "/wahagate", 0, 0, false},
    {"server", "user", set_user, OFF(server.user), "", 0, 0, false},
    {"server", "pid_file", set_string, OFF(server.pid_file), "", 0, 0, false},
    {"server", "client_timeout", set_int, OFF(server.client_timeout), "30000", 100,
     3600000, false},
    {"server", "stats_token", set_stats_token, OFF(server.stats_token), "", 0, 0, false},
    {"server", "trusted_proxies", set_trusted_proxies, OFF(server.trusted_proxies), "", 0,
     0, false},
    {"server", "admin_listen", set_listen, OFF(server.admin_listen), "", 0, 0, false},
    {"server", "max_connections", set_int, OFF(server.max_connections), "10000", 1,
     1000000, false},
    {"server", "cors_origins", set_cors_origins, OFF(server.cors_origins), "", 0, 0,
     false},
    {"server", "max_sessions", set_int, OFF(server.max_sessions), "1000", 1,
     REGION_SESSIONS_MAX, false},

    {"upstream", "url", set_upstream_url, OFF(upstream.url), "http://127.0.0.1:3000", 0,
     0, false},
    {"upstream", "api_key", set_api_key, OFF(upstream.api_key), "", 0, 0, false},
    {"upstream", "sessions", set_sessions, OFF(upstream.sessions), "default", 0, 0,
     false},
    {"upstream", "events", set_events, OFF(upstream.events), "auto", 0, 0, false},

    {"backend", "status_cache_duration", set_int, OFF(backend.status_cache_duration),
     "10000", 100, DAY_MS, false},
    {"backend", "session_cache_duration", set_int, OFF(backend.session_cache_duration),
     "10000", 100, DAY_MS, false},
    {"backend", "health_check_cache_duration", set_int,
     OFF(backend.health_check_cache_duration), "30000", 100, DAY_MS, false},
    {"backend", "stale_if_error", set_int, OFF(backend.stale_if_error), "86400000", 0,
     30 * DAY_MS, false},
    {"backend", "flap_hold", set_int, OFF(backend.flap_hold), "5000", 0, 600000, false},

    {"frontend", "initial_check_delay", set_int, OFF(frontend.initial_check_delay),
     "5000", 0, DAY_MS, false},
    {"frontend", "base_interval", set_int, OFF(frontend.base_interval), "15000", 100,
     DAY_MS, false},
    {"frontend", "authenticated_interval", set_int, OFF(frontend.authenticated_interval),
     "30000", 100, DAY_MS, false},
    {"frontend", "max_interval", set_int, OFF(frontend.max_interval), "60000", 100,
     DAY_MS, false},
    {"frontend", "backoff_multiplier", set_double, OFF(frontend.backoff_multiplier), "2",
     1, 10, false},

    {"limits", "max_concurrent_requests", set_int, OFF(limits.max_concurrent_requests),
     "2", 1, 64, false},
    {"limits", "request_timeout", set_int, OFF(limits.request_timeout), "5000", 100,
     300000, false},
    {"limits", "qr_timeout", set_int, OFF(limits.qr_timeout), "20000", 100, 300000,
     false},
    {"limits", "max_retries", set_int, OFF(limits.max_retries), "3", 0, 10, false},

    {"circuit", "failure_threshold", set_int, OFF(circuit.failure_threshold), "5", 1,
     1000, false},
    {"circuit", "open_duration", set_int, OFF(circuit.open_duration), "30000", 100,
     DAY_MS, false},
    {"circuit", "max_open_duration", set_int, OFF(circuit.max_open_duration), "300000",
     100, DAY_MS, false},

    {"ratelimit", "enabled", set_bool, OFF(ratelimit.enabled), "true", 0, 0, false},
    {"ratelimit", "rate", set_double, OFF(ratelimit.rate), "10", 0.001, 1000000, false},
    {"ratelimit", "burst", set_int, OFF(ratelimit.burst), "30", 1, 1000000, false},

    {"webhook", "enabled", set_bool, OFF(webhook.enabled), "true", 0, 0, false},
    {"webhook", "hmac_key", set_string, OFF(webhook.hmac_key), "", 0, 0, false},
    {"webhook", "safety_interval", set_int, OFF(webhook.safety_interval), "300000", 1000,
     DAY_MS, false},

    {"auth", "required", set_bool, OFF(auth.required), "false", 0, 0, false},
    {"auth", "key", set_auth_key, OFF(auth.keys), NULL, 0, 0, true},

    {"compat", "waha_api", set_bool, OFF(compat.waha_api), "true", 0, 0, false},
    {"compat", "seed_api", set_bool, OFF(compat.seed_api), "true", 0, 0, false},

    {"redis", "url", set_redis_url, OFF(redis.url), "", 0, 0, false},
    {"redis", "key_prefix", set_string, OFF(redis.key_prefix), "wahagate:", 0, 0, false},
    {"redis", "lock_ttl", set_int, OFF(redis.lock_ttl), "5000", 500, 600000, false},

    {"log", "level", set_log_level, OFF(log.level), "info", 0, 0, false},
    {"log", "file", set_string, OFF(log.file), "", 0, 0, false},
    {"log", "access", set_bool, OFF(log.access), "false", 0, 0, false},
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))

/*
 * The names WAHA's TypeScript backend used, kept as aliases, and WAHA's own
 * key variables, so the gateway can share WAHA's .env: WAHA_API_KEY may be
 * the sha512: form, with the key itself in WAHA_API_KEY_PLAIN, which then
 * wins (an alias is skipped when its UNLESS variable is set).
 */
static const struct {
    const char *variable;
    const char *section;
    const char *key;
    const char *unless;
} legacy_env[] = {
    {"WAHA_STATUS_CACHE_DURATION", "backend", "status_cache_duration", NULL},
    {"WAHA_POLLING_INTERVAL", "frontend", "base_interval", NULL},
    {"WAHA_MAX_POLLING_INTERVAL", "frontend", "max_interval", NULL},
    {"WAHA_API_KEY", "upstream", "api_key", "WAHA_API_KEY_PLAIN"},
    {"WAHA_API_KEY_PLAIN", "upstream", "api_key", NULL},
};

/*========================================================================
 * Loading: error collection, the inih reader and handler, the environment.
 */

struct load_state {
    struct config *cfg;
    struct config_errors *errs;
    const char *path;
    FILE *fp;
    int line;                                        /* lines read so far */
    char where[CONFIG_KEY_COUNT][WHERE_MAX];         /* source of each setting */
    char key_where[CONFIG_MAX_AUTH_KEYS][WHERE_MAX]; /* of each auth.key */
};

static void add_error(struct config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_error(struct config_errors *errs, const char *fmt, ...)
{
    va_list ap;

    if (errs->count == CONFIG_MAX_ERRORS) {
        errs->truncated = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errs->message[errs->count++], CONFIG_ERROR_MAX, fmt, ap);
    va_end(ap);
}

static const struct config_key *find_key(const char *section, const char *key,
                                         bool *section_known)
{
    *section_known = false;
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        if (strcmp(config_keys[i].section, section) != 0)
            continue;
        *section_known = true;
        if (strcmp(config_keys[i].key, key) == 0)
            return &config_keys[i];
    }
    return NULL;
}

static int apply(struct load_state *st, const char *section, const char *key,
                 const char *value, const char *where)
{
    bool section_known;
    const struct config_key *k = find_key(section, key, &section_known);
    char why[CONFIG_WHY_MAX] = "";
    size_t idx;

    if (k == NULL) {
        add_error(st->errs, "%s: [%s] %s: unknown %s", where, section, key,
                  section_known ? "key" : "section");
        return -1;
    }
    idx = (size_t)(k - config_keys);
    if (!k->repeatable && st->where[idx][0] != '\0' &&
        strncmp(st->where[idx], "environment", 11) != 0 &&
        strncmp(where, "environment", 11) != 0) {
        add_error(st->errs, "%s: [%s] %s: set twice (first at %s)", where, section, key,
                  st->where[idx]);
        return -1;
    }
    if (k->set(st->cfg, k, value, why) != 0) {
        add_error(st->errs, "%s: [%s] %s: %s", where, section, key, why);
        return -1;
    }
    snprintf(st->where[idx], WHERE_MAX, "%s", where);
    if (k->set == set_auth_key)
        snprintf(st->key_where[st->cfg->auth.key_count - 1], WHERE_MAX, "%s", where);
    return 0;
}

int config_set(struct config *cfg, const char *section, const char *key,
               const char *value, const char *source, int line,
               struct config_errors *errs)
{
    struct load_state *st = calloc(1, sizeof(*st));
    char where[WHERE_MAX];
    int rc;

    if (st == NULL) {
        add_error(errs, "%s:%d: out of memory", source, line);
        return -1;
    }
    st->cfg = cfg;
    st->errs = errs;
    snprintf(where, sizeof(where), "%s:%d", source, line);
    rc = apply(st, section, key, value, where);
    free(st);
    return rc;
}

/*
 * inih's reader: one line per call, counted. A line that does not fit in
 * inih's buffer (NUM bytes) is reported and replaced by an empty line, so it
 * is never split into two settings.
 */
static char *read_counting_lines(char *str, int num, void *stream)
{
    struct load_state *st = stream;
    size_t len;
    int c;

    if (fgets(str, num, st->fp) == NULL)
        return NULL;
    st->line++;
    len = strlen(str);
    if (len > 0 && str[len - 1] != '\n' && len == (size_t)num - 1) {
        c = fgetc(st->fp);
        if (c != '\n' && c != EOF) {
            while (c != '\n' && c != EOF)
                c = fgetc(st->fp);
            add_error(st->errs, "%s:%d: line is longer than %d characters", st->path,
                      st->line, num - 1);
            str[0] = '\0';
        }
    }
    return str;
}

static int handle_ini_pair(void *user, const char *section, const char *key,
                           const char *value)
{
    struct load_state *st = user;
    char where[WHERE_MAX];

    snprintf(where, sizeof(where), "%s:%d", st->path, st->line);
    apply(st, section, key, value, where);
    return 1; /* keep going: report every error, not only the first */
}

/* "WAHAGATE_SERVER_WORKERS" -> section "server", key "workers". */
static int split_env_name(const char *name, char *section, size_t section_size, char *key,
                          size_t key_size)
{
    const char *rest = name + strlen("WAHAGATE_");
    const char *underscore = strchr(rest, '_');
    size_t slen, klen;

    if (underscore == NULL)
        return -1;
    slen = (size_t)(underscore - rest);
    klen = strlen(underscore + 1);
    if (slen == 0 || slen >= section_size || klen == 0 || klen >= key_size)
        return -1;
    for (size_t i = 0; i < slen; i++)
        section[i] = (char)tolower((unsigned char)rest[i]);
    section[slen] = '\0';
    for (size_t i = 0; i < klen; i++)
        key[i] = (char)tolower((unsigned char)underscore[1 + i]);
    key[klen] = '\0';
    return 0;
}

/* The value of NAME in ENVP, or NULL. */
static const char *env_value(char *const *envp, const char *name)
{
    size_t len = strlen(name);

    for (char *const *e = envp; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

static void apply_environment(struct load_state *st, char *const *envp)
{
    char where[WHERE_MAX];

    /* The legacy names first, so WAHAGATE_* wins when both are set. */
    for (size_t i = 0; i < sizeof(legacy_env) / sizeof(legacy_env[0]); i++) {
        const char *value = env_value(envp, legacy_env[i].variable);
        if (value == NULL || (legacy_env[i].unless != NULL &&
                              env_value(envp, legacy_env[i].unless) != NULL))
            continue;
        snprintf(where, sizeof(where), "environment %s", legacy_env[i].variable);
        apply(st, legacy_env[i].section, legacy_env[i].key, value, where);
    }
    for (char *const *e = envp; *e; e++) {
        char name[128], section[32], key[64];
        const char *eq = strchr(*e, '=');
        size_t len;

        if (strncmp(*e, "WAHAGATE_", 9) != 0 || eq == NULL)
            continue;
        len = (size_t)(eq - *e);
        if (len >= sizeof(name)) {
            add_error(st->errs, "environment %.40s...: name is too long", *e);
            continue;
        }
        memcpy(name, *e, len);
        name[len] = '\0';
        snprintf(where, sizeof(where), "environment %s", name);
        if (split_env_name(name, section, sizeof(section), key, sizeof(key)) != 0) {
            add_error(st->errs, "%s: not of the form WAHAGATE_<SECTION>_<KEY>", where);
            continue;
        }
        apply(st, section, key, eq + 1, where);
    }
}

/* Where a key was set, for messages about several keys; the file if unset. */
static const char *where_of(struct load_state *st, const char *section, const char *key)
{
    bool known;
    const struct config_key *k = find_key(section, key, &known);
    const char *w = k ? st->where[k - config_keys] : "";

    return w[0] ? w : st->path;
}

/* Pairs of numbers where the first may not be above the second. */
static const struct {
    const char *section, *low, *high;
    size_t low_offset, high_offset;
} ordered[] = {
    {"server", "min_workers", "max_workers", offsetof(struct config, server.min_workers),
     offsetof(struct config, server.max_workers)},
    {"frontend", "base_interval", "max_interval",
     offsetof(struct config, frontend.base_interval),
     offsetof(struct config, frontend.max_interval)},
    {"frontend", "authenticated_interval", "max_interval",
     offsetof(struct config, frontend.authenticated_interval),
     offsetof(struct config, frontend.max_interval)},
    {"circuit", "open_duration", "max_open_duration",
     offsetof(struct config, circuit.open_duration),
     offsetof(struct config, circuit.max_open_duration)},
};

static int64_t number_at(const struct config *cfg, size_t offset)
{
    return *(const int64_t *)((const char *)cfg + offset);
}

/* Checks that involve more than one key. */
static void validate_whole(struct load_state *st)
{
    struct config *cfg = st->cfg;

    for (size_t i = 0; i < sizeof(ordered) / sizeof(ordered[0]); i++) {
        int64_t low = number_at(cfg, ordered[i].low_offset);
        int64_t high = number_at(cfg, ordered[i].high_offset);
        if (low > high)
            add_error(st->errs, "%s: [%s] %s: %lld is above %s %lld",
                      where_of(st, ordered[i].section, ordered[i].low),
                      ordered[i].section, ordered[i].low, (long long)low, ordered[i].high,
                      (long long)high);
    }
    if (cfg->server.workers < cfg->server.min_workers ||
        cfg->server.workers > cfg->server.max_workers)
        add_error(st->errs,
                  "%s: [server] workers: %lld is outside "
                  "min_workers..max_workers (%lld..%lld)",
                  where_of(st, "server", "workers"), (long long)cfg->server.workers,
                  (long long)cfg->server.min_workers, (long long)cfg->server.max_workers);
    for (int i = 0; i < cfg->server.admin_listen_count; i++) {
        for (int j = 0; j < cfg->server.listen_count; j++) {
            if (cfg->server.admin_listen[i].port == cfg->server.listen[j].port &&
                strcmp(cfg->server.admin_listen[i].host, cfg->server.listen[j].host) == 0)
                add_error(st->errs, "%s: [server] admin_listen: %s:%u is also in listen",
                          where_of(st, "server", "admin_listen"),
                          cfg->server.admin_listen[i].host,
                          cfg->server.admin_listen[i].port);
        }
    }
    if (!cfg->upstream.all_sessions &&
        cfg->upstream.session_count > cfg->server.max_sessions)
        add_error(st->errs,
                  "%s: [upstream] sessions: %d sessions, more than server.max_sessions "
                  "(%lld)",
                  where_of(st, "upstream", "sessions"), cfg->upstream.session_count,
                  (long long)cfg->server.max_sessions);
    if (cfg->auth.required && cfg->auth.key_count == 0)
        add_error(st->errs,
                  "%s: [auth] required: true, but no [auth] key is "
                  "configured",
                  where_of(st, "auth", "required"));
    if (!cfg->upstream.all_sessions) {
        for (int i = 0; i < cfg->auth.key_count; i++) {
            const struct auth_key *key = &cfg->auth.keys[i];
            for (const char *p = key->sessions; *p && !key->all_sessions;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                char name[CONFIG_SESSION_NAME_MAX];
                snprintf(name, sizeof(name), "%.*s", (int)len, p);
                if (!config_tracks_session(cfg, name))
                    add_error(st->errs,
                              "%s: [auth] key: key \"%s\" names "
                              "session \"%s\", which upstream.sessions does "
                              "not track",
                              st->key_where[i], key->name, name);
                p = comma ? comma + 1 : p + len;
            }
        }
    }
}

void config_defaults(struct config *cfg)
{
    char why[CONFIG_WHY_MAX];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->default_value != NULL && k->set(cfg, k, k->default_value, why) != 0) {
            /* A default that fails its own check is a programming error. */
            fprintf(stderr, "wahagate: bad default for [%s] %s: %s\n", k->section, k->key,
                    why);
            abort();
        }
    }
}

int config_load(const char *path, char *const *envp, struct config *cfg,
                struct config_errors *errs)
{
    struct load_state *st;
    int rc;

    memset(errs, 0, sizeof(*errs));
    config_defaults(cfg);
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);

    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        add_error(errs, "%s: out of memory", path);
        return -1;
    }
    st->cfg = cfg;
    st->errs = errs;
    st->path = path;
    st->fp = fopen(path, "r");
    if (st->fp == NULL) {
        add_error(errs, "%s:0: cannot open: %s", path, strerror(errno));
        free(st);
        return -1;
    }
    rc = ini_parse_stream(read_counting_lines, st, handle_ini_pair, st);
    fclose(st->fp);
    if (rc > 0)
        add_error(errs,
                  "%s:%d: syntax error: expected [section], "
                  "key = value, or a comment",
                  path, rc);
    else if (rc < 0)
        add_error(errs, "%s:0: cannot read the file", path);

    apply_environment(st, envp ? envp : environ);
    validate_whole(st);
    free(st);
    return errs->count == 0 ? 0 : -1;
}

bool config_tracks_session(const struct config *cfg, const char *name)
{
    if (cfg->upstream.all_sessions)
        return true;
    for (int i = 0; i < cfg->upstream.session_count; i++)
        if (strcmp(cfg->upstream.sessions[i], name) == 0)
            return true;
    return false;
}

bool config_key_allows(const struct auth_key *key, const char *session)
{
    size_t n = strlen(session);

    if (key == NULL || key->all_sessions)
        return true;
    for (const char *p = key->sessions; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, session, n) == 0)
            return true;
        p = comma ? comma + 1 : p + len;
    }
    return false;
}
