/*
 * fuzz_config.c - libFuzzer target: loading waha.ini and the environment
 * (common/config.c: config_load(), as the master and `wahagate -t` run it).
 *
 * Input: the file, then optionally a NUL byte and environment entries
 * ("NAME=value"), one per line. The file is written to a memfd that
 * config_load() opens by its /proc/self/fd path, so it reads through
 * inih exactly as it reads a real file; the entries are its ENVP (the
 * process environment is never used). Checks: the result and the error
 * count agree, every message is terminated and names its file or
 * variable, a configuration that loads keeps the promises validate_whole()
 * makes, and a second load of the same input gives the same bytes
 * (config.c keeps no state between calls).
 *
 * Host names: server.listen and admin_listen resolve their hosts. So that
 * the fuzzer sends no DNS queries, this file replaces getaddrinfo() with
 * one that resolves numeric addresses and "localhost" only (libc's, with
 * AI_NUMERICHOST).
 */
#include <dlfcn.h>
#include <netdb.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "region.h"

#define ENV_MAX 32

static int ini_fd = -1;
static char ini_path[64];
static struct config loaded[2];
static struct config_errors errors[2];

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static getaddrinfo_fn libc_getaddrinfo;
    struct addrinfo numeric = {0};

    if (libc_getaddrinfo == NULL)
        libc_getaddrinfo = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (hints != NULL)
        numeric = *hints;
    numeric.ai_flags |= AI_NUMERICHOST;
    if (node != NULL && strcmp(node, "localhost") == 0)
        node = "127.0.0.1";
    return libc_getaddrinfo(node, service, &numeric, res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ini_fd = memfd_create("waha.ini", MFD_CLOEXEC);
    FUZZ_CHECK(ini_fd >= 0);
    snprintf(ini_path, sizeof(ini_path), "/proc/self/fd/%d", ini_fd);
    return 0;
}

static void check_errors(const struct config_errors *errs, int rc)
{
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK((rc == 0) == (errs->count == 0));
    FUZZ_CHECK(errs->count >= 0 && errs->count <= CONFIG_MAX_ERRORS);
    FUZZ_CHECK(!errs->truncated || errs->count == CONFIG_MAX_ERRORS);
    for (int i = 0; i < errs->count; i++) {
        const char *m = errs->message[i];
        FUZZ_CHECK(fuzz_terminated(m, CONFIG_ERROR_MAX));
        FUZZ_CHECK(strncmp(m, ini_path, strlen(ini_path)) == 0 ||
                   strncmp(m, "environment ", 12) == 0);
    }
}

/* What a configuration that loads promises (config.h, validate_whole()). */
static void check_config(const struct config *cfg)
{
    FUZZ_CHECK(cfg->server.listen_count >= 1 &&
               cfg->server.listen_count <= CONFIG_MAX_LISTEN);
    FUZZ_CHECK(cfg->server.admin_listen_count >= 0 &&
               cfg->server.admin_listen_count <= CONFIG_MAX_LISTEN);
    FUZZ_CHECK(cfg->server.min_workers <= cfg->server.workers &&
               cfg->server.workers <= cfg->server.max_workers);
    FUZZ_CHECK(cfg->frontend.base_interval <= cfg->frontend.max_interval);
    FUZZ_CHECK(cfg->circuit.open_duration <= cfg->circuit.max_open_duration);
    FUZZ_CHECK(cfg->server.trusted_proxy_count <= CONFIG_MAX_PROXIES);
    FUZZ_CHECK(cfg->server.cors_origin_count <= CONFIG_MAX_ORIGINS);
    FUZZ_CHECK(cfg->auth.key_count <= CONFIG_MAX_AUTH_KEYS);
    FUZZ_CHECK(!cfg->auth.required || cfg->auth.key_count > 0);
    FUZZ_CHECK(cfg->upstream.all_sessions ||
               (cfg->upstream.session_count >= 1 &&
                cfg->upstream.session_count <= CONFIG_MAX_SESSIONS));
    for (int i = 0; i < cfg->upstream.session_count; i++)
        FUZZ_CHECK(config_valid_session_name(cfg->upstream.sessions[i]));
    /* The region is sized by max_sessions: a fixed list fits in it. */
    FUZZ_CHECK(cfg->server.max_sessions >= 1 &&
               cfg->server.max_sessions <= REGION_SESSIONS_MAX);
    FUZZ_CHECK(cfg->upstream.all_sessions ||
               cfg->upstream.session_count <= cfg->server.max_sessions);
    /* The key sent to WAHA is never the sha512: hash WAHA keeps. */
    FUZZ_CHECK(strncmp(cfg->upstream.api_key, "sha512:", 7) != 0);
    FUZZ_CHECK(cfg->limits.qr_timeout >= 100 && cfg->limits.qr_timeout <= 300000);
    for (int i = 0; i < cfg->server.listen_count; i++)
        FUZZ_CHECK(cfg->server.listen[i].port > 0 &&
                   cfg->server.listen[i].host[0] != '\0');
    FUZZ_CHECK(strncmp(cfg->upstream.url, "http://", 7) == 0 ||
               strncmp(cfg->upstream.url, "https://", 8) == 0);
    FUZZ_CHECK(cfg->server.shm_name[0] == '/');
    for (int i = 0; i < cfg->auth.key_count; i++) {
        const struct auth_key *k = &cfg->auth.keys[i];
        FUZZ_CHECK(k->name[0] != '\0' && fuzz_terminated(k->name, sizeof(k->name)));
        FUZZ_CHECK(fuzz_terminated(k->sessions, sizeof(k->sessions)));
        FUZZ_CHECK(k->all_sessions || k->sessions[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nul = memchr(data, '\0', size);
    size_t file_len = nul ? (size_t)(nul - (const char *)data) : size;
    char *env_text = NULL;
    char *envp[ENV_MAX + 1];
    int env_count = 0, rc[2];

    FUZZ_CHECK(ftruncate(ini_fd, 0) == 0);
    FUZZ_CHECK(pwrite(ini_fd, data, file_len, 0) == (ssize_t)file_len);
    if (nul != NULL) {
        char *save = NULL;
        env_text = strndup(nul + 1, size - file_len - 1); /* stops at a NUL */
        FUZZ_CHECK(env_text != NULL);
        for (char *e = strtok_r(env_text, "\n", &save); e && env_count < ENV_MAX;
             e = strtok_r(NULL, "\n", &save))
            envp[env_count++] = e;
    }
    envp[env_count] = NULL;

    for (int i = 0; i < 2; i++) {
        rc[i] = config_load(ini_path, envp, &loaded[i], &errors[i]);
        check_errors(&errors[i], rc[i]);
    }
    FUZZ_CHECK(rc[0] == rc[1]);
    FUZZ_CHECK(memcmp(&errors[0], &errors[1], sizeof(errors[0])) == 0);
    if (rc[0] == 0) {
        check_config(&loaded[0]);
        for (size_t i = 0; i < sizeof(loaded[0]); i++) {
            if (((const char *)&loaded[0])[i] != ((const char *)&loaded[1])[i]) {
                fprintf(stderr, "loads differ at byte %zu of struct config\n", i);
                FUZZ_CHECK(!"two loads of one input give the same configuration");
            }
        }
    }
    free(env_text);
    return 0;
}
