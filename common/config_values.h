/*
 * config_values.h - the value parsers of config.c: lists, numbers,
 * addresses, URLs and client keys as waha.ini writes them.
 *
 * Each parser reads one text value and either fills its output or writes
 * why it cannot into WHY (CONFIG_WHY_MAX bytes) and returns -1. They keep
 * no state and know nothing of sections, keys or where a value came from:
 * config.c's setters call them and name the file, line and key.
 */
#ifndef WAHAGATE_CONFIG_VALUES_H
#define WAHAGATE_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CONFIG_WHY_MAX 192

/* config_why - printf into WHY (CONFIG_WHY_MAX bytes). */
void config_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy LEN bytes of TEXT without surrounding blanks into OUT (OUT_SIZE
 * bytes; OUT may be TEXT). -1 when they do not fit. */
int config_copy_trimmed(char *out, size_t out_size, const char *text, size_t len);

/* Split VALUE at commas and call ITEM for each trimmed element; an empty
 * element is an error. Stops at the first failing ITEM. */
int config_for_each_item(const char *value, char *why,
                         int (*item)(const char *text, void *ctx, char *why), void *ctx);

/* A whole decimal number (no blanks), or -1. */
int config_parse_int64(const char *text, int64_t *out);

/* true/yes/on/1 or false/no/off/0, any case, or -1. */
int config_parse_bool(const char *text, bool *out);

/* "host:port", "[v6]:port" or "*:port"; the host must resolve. */
int config_parse_listen(const char *text, struct listen_addr *addr, char *why);

/* An IPv4 or IPv6 address with an optional /prefix. */
int config_parse_cidr(const char *text, struct cidr *out, char *why);

/* http:// or https:// and a host, into OUT without trailing slashes. */
int config_parse_http_url(const char *text, char *out, size_t out_size, char *why);

/* A browser origin: http:// or https:// and a host, no path; never "null". */
int config_parse_origin(const char *text, char *out, size_t out_size, char *why);

/* redis://[:password@]host[:port][/db] or unix:/path. */
int config_parse_redis_url(const char *text, struct redis_address *out, char *why);

/* 64 hex digits into 32 bytes, or -1. */
int config_sha256_hex_decode(const char *hex, uint8_t out[32]);

/*
 * config_parse_auth_key - NAME : SECRET : SESSIONS, SECRET in clear or
 * sha256:<hex>, SESSIONS a comma list or *, into KEY (the secret kept only
 * as its SHA-256).
 */
int config_parse_auth_key(const char *value, struct auth_key *key, char *why);

#endif
