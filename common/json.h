/*
 * json.h - the JSON helpers wahagate's roles share: a bounded output
 * buffer that knows how to write JSON strings, the error body, and a bounded
 * parser front end. Escaping and parsing are json-c's; this file only adds
 * bounds and the project's shapes.
 */
#ifndef WAHAGATE_JSON_H
#define WAHAGATE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/*
 * A bounded output buffer over caller-owned storage. Appends that do not fit
 * set `overflow` and leave the buffer as it was before that append; check it
 * once at the end.
 */
struct jbuf {
    char *data;
    size_t len;
    size_t cap;
    bool overflow;
};

void jbuf_init(struct jbuf *b, char *storage, size_t cap);
void jbuf_raw(struct jbuf *b, const char *text);
void jbuf_mem(struct jbuf *b, const char *data, size_t len);
void jbuf_printf(struct jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append V in decimal: what jbuf_printf(b, "%lld", v) does, without the
 * cost of a format (it is on the path of every cached answer). */
void jbuf_int(struct jbuf *b, long long v);
void jbuf_uint(struct jbuf *b, unsigned long long v);

/* Append TEXT as a JSON string literal (quoted, escaped), or null if NULL. */
void jbuf_string(struct jbuf *b, const char *text);

/* Append an ISO-8601 time for REAL_MS, or null when REAL_MS is 0. */
void jbuf_time(struct jbuf *b, long long real_ms);

/*
 * json_error_body - {"error":{"code":CODE,"message":MESSAGE}} into OUT
 * (OUT_SIZE bytes). Returns the length written.
 */
size_t json_error_body(char *out, size_t out_size, const char *code, const char *message);

/*
 * json_parse_bounded - parse exactly LEN bytes of TEXT as one JSON value,
 * nested at most JSON_MAX_DEPTH deep, in json-c's strict mode (no trailing
 * commas, comments or leading zeros) and without NaN or Infinity. TEXT[LEN]
 * must be readable; every caller keeps a NUL there. Returns a new reference,
 * or NULL with a reason in WHY (WHY_SIZE bytes) when the text is not one
 * complete JSON value (a bare null, too, gives NULL). json-c still accepts
 * single-quoted strings; they come out double-quoted when re-serialised.
 */
#define JSON_MAX_DEPTH 32
struct json_object *json_parse_bounded(const char *text, size_t len, char *why,
                                       size_t why_size);

/*
 * json_valid_utf8 - TEXT (LEN bytes) is UTF-8 as RFC 3629 has it: no
 * overlong forms, no surrogates, nothing above U+10FFFF (json-c's own
 * check lets all three through).
 */
bool json_valid_utf8(const char *text, size_t len);

/* json_get_string - the string member KEY of OBJ (without a NUL inside),
 * or NULL. */
const char *json_get_string(struct json_object *obj, const char *key);

#endif
