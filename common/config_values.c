/*
 * config_values.c - parse the values of waha.ini (see config_values.h).
 *
 * DESIGN
 * Pure text-to-struct functions, one per kind of value, shared by the
 * setters of config.c's key table. Lists are split at commas by
 * config_for_each_item() and each element is trimmed; every output is a
 * fixed-size field, so a value that does not fit is an error, never a cut.
 * Host names in listen addresses are resolved here (getaddrinfo), so that
 * `wahagate -t` reports a name that does not resolve.
 */
#include "config_values.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

void config_why(char *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, CONFIG_WHY_MAX, fmt, ap);
    va_end(ap);
}

/* Copy TEXT without surrounding blanks into OUT (size OUT_SIZE). */
int config_copy_trimmed(char *out, size_t out_size, const char *text, size_t len)
{
    while (len > 0 && isspace((unsigned char)*text)) {
        text++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    if (len >= out_size)
        return -1;
    memmove(out, text, len); /* OUT may be TEXT itself */
    out[len] = '\0';
    return 0;
}

/*
 * Split VALUE at commas and call ITEM for each trimmed, non-empty element.
 * Stops at the first failing ITEM.
 */
int config_for_each_item(const char *value, char *why,
                         int (*item)(const char *text, void *ctx, char *why), void *ctx)
{
    char buf[512];
    const char *p = value;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        if (config_copy_trimmed(buf, sizeof(buf), p, len) != 0) {
            config_why(why, "list item is too long");
            return -1;
        }
        if (buf[0] == '\0') {
            config_why(why, "empty item in list \"%s\"", value);
            return -1;
        }
        if (item(buf, ctx, why) != 0)
            return -1;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int config_parse_int64(const char *text, int64_t *out)
{
    char *end;
    long long v;

    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return -1;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int config_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

bool config_valid_session_name(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len >= CONFIG_SESSION_NAME_MAX || strcmp(name, "*") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == ',')
            return false;
    }
    return true;
}

/*
 * "host:port", "[v6]:port" or "*:port" into ADDR; the host must be an
 * address or a name that resolves.
 */
int config_parse_listen(const char *text, struct listen_addr *addr, char *why)
{
    const char *colon;
    const char *host = text;
    size_t host_len;
    int64_t port;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            config_why(why, "\"%s\" is not [ipv6]:port", text);
            return -1;
        }
        host = text + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            config_why(why, "\"%s\" has no :port", text);
            return -1;
        }
        host_len = (size_t)(colon - text);
    }
    if (host_len == 0 || host_len >= sizeof(addr->host)) {
        config_why(why, "\"%s\" has no valid host", text);
        return -1;
    }
    if (config_parse_int64(colon + 1, &port) != 0 || port < 1 || port > 65535) {
        config_why(why, "\"%s\": port must be 1-65535", text);
        return -1;
    }
    memcpy(addr->host, host, host_len);
    addr->host[host_len] = '\0';
    addr->port = (uint16_t)port;

    if (strcmp(addr->host, "*") != 0) {
        struct addrinfo hints = {
            .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(addr->host, NULL, &hints, &res);
        if (rc != 0) {
            config_why(why, "host \"%s\" does not resolve (%s)", addr->host,
                       gai_strerror(rc));
            return -1;
        }
        freeaddrinfo(res);
    }
    return 0;
}

int config_parse_cidr(const char *text, struct cidr *out, char *why)
{
    char addr[64];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    int64_t prefix;

    if (len >= sizeof(addr)) {
        config_why(why, "\"%s\" is not an address or CIDR", text);
        return -1;
    }
    memcpy(addr, text, len);
    addr[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
    } else {
        config_why(why, "\"%s\" is not an IPv4 or IPv6 address", addr);
        return -1;
    }
    if (slash != NULL) {
        if (config_parse_int64(slash + 1, &prefix) != 0 || prefix < 0 ||
            prefix > out->prefix) {
            config_why(why, "\"%s\": bad prefix length", text);
            return -1;
        }
        out->prefix = (int)prefix;
    }
    return 0;
}

/* http:// or https:// followed by a host; stored without trailing '/'. */
int config_parse_http_url(const char *text, char *out, size_t out_size, char *why)
{
    size_t len = strlen(text);
    const char *rest;

    if (strncmp(text, "http://", 7) == 0)
        rest = text + 7;
    else if (strncmp(text, "https://", 8) == 0)
        rest = text + 8;
    else {
        config_why(why, "\"%s\" must start with http:// or https://", text);
        return -1;
    }
    if (rest[0] == '\0' || rest[0] == '/' || rest[0] == ':') {
        config_why(why, "\"%s\" has no host", text);
        return -1;
    }
    for (const char *p = text; *p; p++) {
        if (isspace((unsigned char)*p) || !isprint((unsigned char)*p)) {
            config_why(why, "URL contains a blank or control character");
            return -1;
        }
    }
    while (len > 0 && text[len - 1] == '/')
        len--;
    if (len >= out_size) {
        config_why(why, "URL is longer than %zu characters", out_size - 1);
        return -1;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    return 0;
}

int config_parse_origin(const char *text, char *out, size_t out_size, char *why)
{
    if (strcasecmp(text, "null") == 0) {
        config_why(why,
                   "the origin null (sandboxed pages, file: URLs) cannot be allowed: "
                   "any page can send it");
        return -1;
    }
    if (config_parse_http_url(text, out, out_size, why) != 0)
        return -1;
    if (strchr(strstr(out, "://") + 3, '/') != NULL) {
        config_why(why, "origin \"%s\" must not have a path", text);
        return -1;
    }
    return 0;
}

/* TEXT as a struct redis_address, or -1 with WHY. */
int config_parse_redis_url(const char *text, struct redis_address *out, char *why)
{
    const char *p, *at, *colon, *slash, *end;
    int64_t number;
    char digits[16];

    memset(out, 0, sizeof(*out));
    if (strncmp(text, "unix:", 5) == 0) {
        if (text[5] != '/' || strlen(text + 5) >= sizeof(out->unix_path)) {
            config_why(
                why,
                "\"%s\" must be unix: and an absolute path of at most %zu characters",
                text, sizeof(out->unix_path) - 1);
            return -1;
        }
        snprintf(out->unix_path, sizeof(out->unix_path), "%s", text + 5);
        return 0;
    }
    if (strncmp(text, "redis://", 8) != 0) {
        config_why(why, "\"%s\" must be redis://[:password@]host:port/db or unix:/path",
                   text);
        return -1;
    }
    p = text + 8;
    at = strrchr(p, '@');
    if (at != NULL) {
        const char *pw = *p == ':' ? p + 1 : p;
        if ((size_t)(at - pw) >= sizeof(out->password)) {
            config_why(why, "the password in \"%s\" is too long", text);
            return -1;
        }
        snprintf(out->password, sizeof(out->password), "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    slash = strchr(p, '/');
    end = slash ? slash : p + strlen(p);
    colon = memchr(p, ':', (size_t)(end - p));
    if ((colon ? colon : end) == p ||
        (size_t)((colon ? colon : end) - p) >= sizeof(out->host)) {
        config_why(why, "\"%s\" has no host", text);
        return -1;
    }
    snprintf(out->host, sizeof(out->host), "%.*s", (int)((colon ? colon : end) - p), p);
    out->port = 6379;
    if (colon != NULL) {
        snprintf(digits, sizeof(digits), "%.*s", (int)(end - colon - 1), colon + 1);
        if (end - colon - 1 >= (long)sizeof(digits) ||
            config_parse_int64(digits, &number) != 0 || number < 1 || number > 65535) {
            config_why(why, "\"%s\" has no valid port (1 to 65535)", text);
            return -1;
        }
        out->port = (int)number;
    }
    if (slash != NULL && slash[1] != '\0') {
        if (config_parse_int64(slash + 1, &number) != 0 || number < 0 ||
            number > INT_MAX) {
            config_why(why, "\"%s\": the database after / must be a number", text);
            return -1;
        }
        out->db = (int)number;
    }
    return 0;
}

int config_sha256_hex_decode(const char *hex, uint8_t out[32])
{
    if (strlen(hex) != 64)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        unsigned int byte;
        if (!isxdigit((unsigned char)hex[2 * i]) ||
            !isxdigit((unsigned char)hex[2 * i + 1]) ||
            sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return -1;
        out[i] = (uint8_t)byte;
    }
    return 0;
}

/* The three parts of NAME : SECRET : SESSIONS, trimmed, into PARTS. */
static int split_auth_key(const char *value, char parts[3][512], char *why)
{
    const char *p = value;

    for (int i = 0; i < 3; i++) {
        const char *colon = i < 2 ? strchr(p, ':') : NULL;
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if ((i < 2 && colon == NULL) ||
            config_copy_trimmed(parts[i], sizeof(parts[i]), p, len) != 0) {
            config_why(why, "expected NAME : SECRET : SESSIONS");
            return -1;
        }
        p = colon ? colon + 1 : p + len;
    }
    return 0;
}

/*
 * The secret of PARTS into KEY's digest: PARTS[1] in clear, or (PARTS[1]
 * "sha256") the 64 hex digits that "sha256:<hex>" put at the start of
 * PARTS[2], which is then left with the sessions alone.
 */
static int auth_secret(char parts[3][512], struct auth_key *key, char *why)
{
    if (strcmp(parts[1], "sha256") == 0) {
        const char *colon = strchr(parts[2], ':');
        char hex[128];
        if (colon == NULL ||
            config_copy_trimmed(hex, sizeof(hex), parts[2], (size_t)(colon - parts[2])) !=
                0 ||
            config_sha256_hex_decode(hex, key->secret_sha256) != 0) {
            config_why(why, "sha256: must be followed by 64 hex digits");
            return -1;
        }
        memmove(parts[2], colon + 1, strlen(colon + 1) + 1);
        config_copy_trimmed(parts[2], sizeof(parts[2]), parts[2], strlen(parts[2]));
        return 0;
    }
    if (parts[1][0] == '\0') {
        config_why(why, "the secret of key \"%s\" is empty", parts[0]);
        return -1;
    }
    EVP_Digest(parts[1], strlen(parts[1]), key->secret_sha256, NULL, EVP_sha256(), NULL);
    return 0;
}

/* LIST ("*" or "a, b, c") as KEY's sessions, kept as "a,b,c". */
static int auth_sessions(char *list, struct auth_key *key, char *why)
{
    char *save = NULL;
    size_t used = 0;

    if (strcmp(list, "*") == 0) {
        key->all_sessions = true;
        return 0;
    }
    for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        char name[CONFIG_SESSION_NAME_MAX];
        if (config_copy_trimmed(name, sizeof(name), s, strlen(s)) != 0 ||
            !config_valid_session_name(name)) {
            config_why(why, "\"%s\" is not a session name", s);
            return -1;
        }
        used += (size_t)snprintf(key->sessions + used, sizeof(key->sessions) - used,
                                 "%s%s", used ? "," : "", name);
        if (used >= sizeof(key->sessions)) {
            config_why(why, "session list is too long");
            return -1;
        }
    }
    /* "" and "," alike name nothing (strtok_r skips empty items). */
    if (used == 0) {
        config_why(why, "key \"%s\" names no sessions (use *)", key->name);
        return -1;
    }
    return 0;
}

int config_parse_auth_key(const char *value, struct auth_key *key, char *why)
{
    char parts[3][512];

    memset(key, 0, sizeof(*key));
    if (split_auth_key(value, parts, why) != 0 || auth_secret(parts, key, why) != 0)
        return -1;
    if (parts[0][0] == '\0' || strlen(parts[0]) >= sizeof(key->name)) {
        config_why(why, "key name must be 1 to %zu characters", sizeof(key->name) - 1);
        return -1;
    }
    snprintf(key->name, sizeof(key->name), "%s", parts[0]);
    return auth_sessions(parts[2], key, why);
}
