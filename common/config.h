/*
 * config.h - waha.ini: the key table, loading, environment overrides and
 * validation.
 *
 * A configuration is one plain struct with no pointers, so it can be copied,
 * compared and handed across fork() as it is. config_load() builds a complete
 * new struct config (defaults, then the file, then the environment, then the
 * checks that involve several keys) and reports every problem it finds; the
 * caller swaps it in only when there were none. `wahagate -t` runs the same
 * path and starts nothing.
 */
#ifndef WAHAGATE_CONFIG_H
#define WAHAGATE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define CONFIG_MAX_LISTEN 8
#define CONFIG_MAX_SESSIONS 64
#define CONFIG_SESSION_NAME_MAX 64 /* REGION_NAME_MAX: 63 bytes and a NUL */
#define CONFIG_MAX_PROXIES 32
#define CONFIG_MAX_ORIGINS 16
#define CONFIG_ORIGIN_MAX 128
#define CONFIG_MAX_AUTH_KEYS 64
#define CONFIG_MAX_ERRORS 32
#define CONFIG_ERROR_MAX 320

struct listen_addr {
    char host[128]; /* "127.0.0.1", "::1", "*" or a name */
    uint16_t port;
};

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

/* redis.url, taken apart: redis://[:password@]host[:port][/db] or unix:/path. */
struct redis_address {
    char host[256];
    int port;
    int db;
    char password[128];
    char unix_path[108]; /* sun_path; when set, host and port are unused */
};

struct auth_key {
    char name[64];
    uint8_t secret_sha256[32]; /* the secret is kept only as its digest */
    bool all_sessions;
    char sessions[512]; /* "a,b,c" without spaces, or "" with * */
};

struct config {
    char path[PATH_MAX];

    struct {
        struct listen_addr listen[CONFIG_MAX_LISTEN];
        int listen_count;
        int64_t workers, min_workers, max_workers;
        char shm_name[64];
        char user[64];
        char pid_file[PATH_MAX];
        int64_t client_timeout;
        char stats_token[256];
        unsigned char stats_token_sha256[32]; /* its SHA-256, when set */
        struct cidr trusted_proxies[CONFIG_MAX_PROXIES];
        int trusted_proxy_count;
        struct listen_addr admin_listen[CONFIG_MAX_LISTEN];
        int admin_listen_count;
        int64_t max_connections;
        int64_t max_sessions; /* sizes the region: applied at restart */
        char cors_origins[CONFIG_MAX_ORIGINS][CONFIG_ORIGIN_MAX];
        int cors_origin_count;
        bool cors_any;
    } server;

    struct {
        char url[512]; /* no trailing slash */
        char api_key[256];
        char sessions[CONFIG_MAX_SESSIONS][CONFIG_SESSION_NAME_MAX];
        int session_count;
        bool all_sessions; /* sessions = * */
        bool events;       /* events = auto: WAHA's WebSocket /ws; off: poll only */
    } upstream;

    struct {
        int64_t status_cache_duration;
        int64_t session_cache_duration;
        int64_t health_check_cache_duration;
        int64_t stale_if_error;
        int64_t flap_hold;
    } backend;

    struct {
        int64_t initial_check_delay;
        int64_t base_interval;
        int64_t authenticated_interval;
        int64_t max_interval;
        double backoff_multiplier;
    } frontend;

    struct {
        int64_t max_concurrent_requests;
        int64_t request_timeout;
        int64_t qr_timeout; /* WAHA's QR endpoint waits up to 15 s */
        int64_t max_retries;
    } limits;

    struct {
        int64_t failure_threshold;
        int64_t open_duration;
        int64_t max_open_duration;
    } circuit;

    struct {
        bool enabled;
        double rate;
        int64_t burst;
    } ratelimit;

    struct {
        bool enabled;
        char hmac_key[256];
        int64_t safety_interval;
    } webhook;

    struct {
        bool required;
        struct auth_key keys[CONFIG_MAX_AUTH_KEYS];
        int key_count;
    } auth;

    struct {
        bool waha_api; /* serve WAHA's own read paths from the cache */
        bool seed_api; /* serve the original backend's /api/v1/waha/... */
    } compat;

    struct {
        char url[512];
        struct redis_address address; /* url, taken apart (when set) */
        char key_prefix[64];
        int64_t lock_ttl;
    } redis;

    struct {
        int level; /* enum log_level */
        char file[PATH_MAX];
        bool access;
    } log;
};

struct config_errors {
    int count;
    bool truncated; /* more than CONFIG_MAX_ERRORS were found */
    char message[CONFIG_MAX_ERRORS][CONFIG_ERROR_MAX];
};

/* config_defaults - fill CFG with the default of every key. */
void config_defaults(struct config *cfg);

/*
 * config_load - build a configuration from PATH and the environment ENVP
 * (NULL: the process environment). Returns 0 when CFG is complete and valid,
 * -1 when ERRS holds at least one message of the form
 *   "FILE:LINE: [section] key: reason"   (file)
 *   "environment NAME: reason"           (environment)
 * CFG is unusable after -1. Callable from any process; it does no I/O other
 * than reading PATH and resolving listen host names.
 */
int config_load(const char *path, char *const *envp, struct config *cfg,
                struct config_errors *errs);

/*
 * config_set - apply one "section.key = value" to CFG as if it came from
 * SOURCE (a label used in error messages, with LINE or 0). Returns 0 or -1
 * with a message added to ERRS. For tests and the loaders above.
 */
int config_set(struct config *cfg, const char *section, const char *key,
               const char *value, const char *source, int line,
               struct config_errors *errs);

/* config_tracks_session - true when NAME is in upstream.sessions (or *). */
bool config_tracks_session(const struct config *cfg, const char *name);

/*
 * config_figures_open - auth.required, yet neither server.stats_token nor
 * server.admin_listen keeps the stats and the metrics from anyone. /metrics
 * then shows a session's series only to a reader whose client key allows
 * that session, /api/waha/health shows WAHA's error text only to a reader
 * with a client key, and the master (at start and at reload) and -t warn
 * with CONFIG_FIGURES_OPEN_WARNING.
 */
static inline bool config_figures_open(const struct config *cfg)
{
    return cfg->auth.required && cfg->server.stats_token[0] == '\0' &&
           cfg->server.admin_listen_count == 0;
}

#define CONFIG_FIGURES_OPEN_WARNING                                                      \
    "[auth] required is true, but neither server.stats_token nor "                       \
    "server.admin_listen is set: the stats and /metrics are open to anyone "             \
    "(session series only for a reader with a client key); set one of them"

/*
 * config_key_allows - may a client holding KEY see SESSION? A NULL KEY (no
 * key needed: auth.required is false) may see every session.
 */
bool config_key_allows(const struct auth_key *key, const char *session);

/*
 * config_valid_session_name - a session name waha.ini can list: 1 to
 * CONFIG_SESSION_NAME_MAX - 1 bytes, no control character, no comma (the
 * list separator), not "*". WAHA's own rule ([A-Za-z0-9_-]{1,54}) is
 * newer than many installations' names ("sales.team"), so it is not
 * imposed here.
 */
bool config_valid_session_name(const char *name);

#endif
