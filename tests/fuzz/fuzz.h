/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each target is one fuzz_<name>.c with LLVMFuzzerTestOneInput() (and, when
 * it needs set-up, LLVMFuzzerInitialize()), built and run by `make fuzz`.
 * Besides the sanitizers (address, undefined), a target checks what the code
 * promises about its output; FUZZ_CHECK() turns a broken promise into a
 * crash that libFuzzer saves like any other.
 *
 * Seeds are in corpus/<name>/: real requests, WAHA's bodies and envelopes,
 * configuration files. A regression-* seed is an input that once broke a
 * promise; it must keep passing. <name>.dict are libFuzzer dictionaries.
 */
#ifndef WAHAGATE_FUZZ_H
#define WAHAGATE_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* TEXT is NUL-terminated within SIZE bytes. */
static inline bool fuzz_terminated(const char *text, size_t size)
{
    return memchr(text, '\0', size) != NULL;
}

/* TEXT (LEN bytes) is well-formed UTF-8: what a JSON text must be. Written
 * apart from common/json.c's valid_utf8() on purpose: it is what checks it. */
static inline bool fuzz_utf8(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;

    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n; /* continuation bytes */

        if (c < 0x80)
            n = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            n = 1;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3;
        else
            return false;
        if (n >= len - i)
            return false; /* cut short */
        for (size_t k = 1; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] > 0x8f))
            return false; /* overlong, surrogate, beyond U+10FFFF */
        i += n + 1;
    }
    return true;
}

/*
 * TEXT (LEN bytes, then a NUL) is one JSON value of TYPE (or null when
 * NULL_OK), in UTF-8. The NUL goes to json-c too: it ends a bare literal.
 */
static inline bool fuzz_json_is(const char *text, size_t len, enum json_type type,
                                bool null_ok)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *obj;
    bool ok;

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    obj = json_tokener_parse_ex(tok, text, (int)len + 1);
    ok = json_tokener_get_error(tok) == json_tokener_success &&
         json_tokener_get_parse_end(tok) == len &&
         (obj == NULL ? null_ok : json_object_is_type(obj, type)) && fuzz_utf8(text, len);
    json_object_put(obj);
    json_tokener_free(tok);
    return ok;
}

/* The string member KEY of OBJ is TEXT, all of it (no NUL inside). */
static inline bool fuzz_member_is(struct json_object *obj, const char *key,
                                  const char *text)
{
    struct json_object *v;

    return json_object_object_get_ex(obj, key, &v) &&
           json_object_is_type(v, json_type_string) &&
           (size_t)json_object_get_string_len(v) == strlen(text) &&
           strcmp(json_object_get_string(v), text) == 0;
}

#endif
