/*
 * json.c - bounded JSON output and input on top of json-c.
 *
 * DESIGN
 * Rendering is done into fixed buffers that the caller owns (a worker's
 * pre-rendered responses, a stack buffer for an error), so no response path
 * allocates except through json-c when a string has to be escaped, which
 * happens when content changes, not per request. Parsing uses a json_tokener
 * with a depth bound and insists that the whole input is one value.
 */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "timeutil.h"

void jbuf_init(struct jbuf *b, char *storage, size_t cap)
{
    b->data = storage;
    b->len = 0;
    b->cap = cap;
    b->overflow = false;
    if (cap > 0)
        storage[0] = '\0';
}

void jbuf_mem(struct jbuf *b, const char *data, size_t len)
{
    if (b->overflow || len + 1 > b->cap - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void jbuf_raw(struct jbuf *b, const char *text)
{
    jbuf_mem(b, text, strlen(text));
}

void jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->data[b->len] = '\0';
        b->overflow = true;
        return;
    }
    b->len += (size_t)n;
}

void jbuf_uint(struct jbuf *b, unsigned long long v)
{
    char digits[24];
    size_t i = sizeof(digits);

    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    jbuf_mem(b, digits + i, sizeof(digits) - i);
}

void jbuf_int(struct jbuf *b, long long v)
{
    if (v < 0) {
        jbuf_mem(b, "-", 1);
        jbuf_uint(b, 0ull - (unsigned long long)v);
    } else {
        jbuf_uint(b, (unsigned long long)v);
    }
}

void jbuf_string(struct jbuf *b, const char *text)
{
    struct json_object *s;

    if (text == NULL) {
        jbuf_raw(b, "null");
        return;
    }
    s = json_object_new_string(text);
    if (s == NULL) {
        b->overflow = true;
        return;
    }
    jbuf_raw(b, json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(s);
}

void jbuf_time(struct jbuf *b, long long real_ms)
{
    char iso[TIME_ISO_LEN];

    if (real_ms == 0) {
        jbuf_raw(b, "null");
        return;
    }
    jbuf_printf(b, "\"%s\"", time_format_iso(real_ms, iso));
}

size_t json_error_body(char *out, size_t out_size, const char *code, const char *message)
{
    struct jbuf b;

    jbuf_init(&b, out, out_size);
    jbuf_raw(&b, "{\"error\":{\"code\":");
    jbuf_string(&b, code);
    jbuf_raw(&b, ",\"message\":");
    jbuf_string(&b, message);
    jbuf_raw(&b, "}}");
    if (b.overflow) {
        jbuf_init(&b, out, out_size);
        jbuf_raw(&b, "{\"error\":{\"code\":\"internal\",\"message\":\"error "
                     "message too long\"}}");
    }
    return b.len;
}

/* json-c accepts NaN and Infinity even in strict mode; JSON has neither. */
static bool all_numbers_finite(struct json_object *obj, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return false;
    switch (json_object_get_type(obj)) {
    case json_type_double: return isfinite(json_object_get_double(obj));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(obj); i++)
            if (!all_numbers_finite(json_object_array_get_idx(obj, i), depth + 1))
                return false;
        return true;
    case json_type_object: {
        json_object_object_foreach(obj, key, value)
        {
            (void)key;
            if (!all_numbers_finite(value, depth + 1))
                return false;
        }
        return true;
    }
    default: return true;
    }
}

/*
 * TEXT (LEN bytes) is UTF-8 as RFC 3629 has it: no overlong forms, no
 * surrogates, nothing above U+10FFFF. json-c's own check
 * (JSON_TOKENER_VALIDATE_UTF8) lets all three through.
 */
bool json_valid_utf8(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;

    for (size_t i = 0; i < len;) {
        unsigned char c = s[i], lo = 0x80, hi = 0xbf; /* lo, hi: of the 2nd byte */
        size_t more;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            more = 1;
        else if (c >= 0xe0 && c <= 0xef)
            more = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            more = 3;
        else
            return false;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
        else if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
        if (more >= len - i || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += more + 1;
    }
    return true;
}

struct json_object *json_parse_bounded(const char *text, size_t len, char *why,
                                       size_t why_size)
{
    struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    struct json_object *obj;
    enum json_tokener_error err;

    if (tok == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    if (text == NULL) {
        snprintf(why, why_size, "no body");
        json_tokener_free(tok);
        return NULL;
    }
    if (len > (size_t)0x7fffffff) {
        snprintf(why, why_size, "too large");
        json_tokener_free(tok);
        return NULL;
    }
    /* What is parsed here (WAHA's answers, webhooks) is served again as
     * JSON, and all JSON is UTF-8. */
    if (!json_valid_utf8(text, len)) {
        snprintf(why, why_size, "not JSON: not UTF-8");
        json_tokener_free(tok);
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* A NUL right after the text tells json-c where a bare number ends. */
    obj = json_tokener_parse_ex(tok, text, (int)len + (text[len] == '\0'));
    err = json_tokener_get_error(tok);
    if (obj == NULL || err != json_tokener_success) {
        snprintf(why, why_size, "not JSON: %s",
                 err == json_tokener_continue  ? "unexpected end"
                 : err == json_tokener_success ? "a bare null"
                                               : json_tokener_error_desc(err));
        json_object_put(obj);
        json_tokener_free(tok);
        return NULL;
    }
    if (!all_numbers_finite(obj, 0)) {
        snprintf(why, why_size, "not JSON: NaN or Infinity");
        json_object_put(obj);
        json_tokener_free(tok);
        return NULL;
    }
    /* Only blanks may follow the value. */
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n') {
            snprintf(why, why_size, "not JSON: trailing data");
            json_object_put(obj);
            json_tokener_free(tok);
            return NULL;
        }
    }
    json_tokener_free(tok);
    return obj;
}

const char *json_get_string(struct json_object *obj, const char *key)
{
    struct json_object *v;
    const char *s;

    if (!json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    /* "\u0000" inside: C would read a shorter string than JSON has, and
     * check one thing while another is stored and served. */
    s = json_object_get_string(v);
    return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}
