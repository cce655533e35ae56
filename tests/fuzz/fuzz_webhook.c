/*
 * fuzz_webhook.c - libFuzzer target: POST /api/waha/webhook as routes.c
 * reads it (common/waha.c): the X-Webhook-Hmac check, then the envelope.
 *
 * Input: one selector byte, then the raw body. The selector chooses the
 * signature the body comes with: the right one in lower or upper case hex
 * (must pass), the right one with one digit changed (must fail), or one the
 * input brings itself (its first line, when it has one; the rest is the
 * body), which is checked against a digest computed here. The key is
 * tests/integration/test_webhooks.py's, or empty. The body is then parsed
 * as an envelope, NUL-terminated as conn.c hands it over, and what
 * waha_parse_event() fills is checked against waha.h and against the body
 * itself (parsed again here): the event is the envelope's, all of it; the
 * id digest is the first REGION_DIGEST_LEN bytes of the SHA-256 of the id's
 * JSON text (computed here again), all zero without an id (missing, null
 * or ""); the timestamp is the envelope's whole number, or 0; a
 * session.status event of a session the region can hold (1 to 63 bytes of
 * UTF-8) has that session, the payload's status, made of capital letters,
 * digits and '_', and an "me" that is an object or null in UTF-8 JSON;
 * any other valid envelope is ignored and carries no session.
 *
 * Nothing is kept between inputs.
 */
#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "waha.h"

enum signature { SIGN_LOWER, SIGN_UPPER, SIGN_ALTERED, SIGN_GIVEN, SIGN_KINDS };

static void hex(const unsigned char *digest, char *out, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

    for (int i = 0; i < 64; i++) {
        out[2 * i] = digits[digest[i] >> 4];
        out[2 * i + 1] = digits[digest[i] & 15];
    }
    out[128] = '\0';
}

/* The HMAC check as webhook.h describes it, written out plainly. */
static bool expected_hmac_ok(const unsigned char *digest, const char *header)
{
    char lower[129], given[129];

    if (strlen(header) != 128)
        return false;
    for (int i = 0; i < 128; i++) {
        if (!isxdigit((unsigned char)header[i]))
            return false;
        given[i] = (char)tolower((unsigned char)header[i]);
    }
    given[128] = '\0';
    hex(digest, lower, false);
    return strcmp(lower, given) == 0;
}

static void check_hmac(enum signature how, const char *key, const char *body, size_t len,
                       const char *given, unsigned pick)
{
    unsigned char digest[64];
    unsigned int digest_len = 0;
    char header[129];

    FUZZ_CHECK(HMAC(EVP_sha512(), key, (int)strlen(key), (const unsigned char *)body, len,
                    digest, &digest_len) != NULL &&
               digest_len == 64);
    switch (how) {
    case SIGN_LOWER:
    case SIGN_UPPER:
        hex(digest, header, how == SIGN_UPPER);
        FUZZ_CHECK(waha_signature_ok(key, body, len, header));
        break;
    case SIGN_ALTERED:
        hex(digest, header, false);
        header[pick % 128] = header[pick % 128] == '0' ? '1' : '0';
        FUZZ_CHECK(!waha_signature_ok(key, body, len, header));
        break;
    default:
        FUZZ_CHECK(waha_signature_ok(key, body, len, given) ==
                   expected_hmac_ok(digest, given));
        FUZZ_CHECK(!waha_signature_ok(key, body, len, NULL));
        break;
    }
}

/* The id digest waha.h promises for the envelope ENV. */
static void expected_digest(struct json_object *env, uint8_t out[REGION_DIGEST_LEN])
{
    unsigned char sha[32];
    struct json_object *id = NULL;
    const char *text;
    size_t len;

    memset(out, 0, REGION_DIGEST_LEN);
    if (!json_object_object_get_ex(env, "id", &id) || id == NULL ||
        (json_object_is_type(id, json_type_string) &&
         json_object_get_string_len(id) == 0))
        return;
    text = json_object_to_json_string_length(id, JSON_C_TO_STRING_PLAIN, &len);
    FUZZ_CHECK(text != NULL && EVP_Digest(text, len, sha, NULL, EVP_sha256(), NULL) == 1);
    memcpy(out, sha, REGION_DIGEST_LEN);
}

/* A session name the region can hold, checked apart from waha_name_ok(). */
static bool name_holdable(const char *name, size_t len)
{
    return len > 0 && len < REGION_NAME_MAX && strlen(name) == len &&
           fuzz_utf8(name, len);
}

static bool status_chars(const char *s)
{
    for (; *s; s++)
        if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static void check_envelope(const char *body, size_t len)
{
    struct waha_event ev;
    char why[REGION_ERROR_MAX];
    enum waha_event_kind result;
    struct json_object *env, *payload = NULL, *session, *ts;
    uint8_t digest[REGION_DIGEST_LEN];

    memset(why, 'x', sizeof(why));
    memset(&ev, 'x', sizeof(ev)); /* waha_parse_event() must fill all of it */
    result = waha_parse_event(body, len, &ev, why);
    FUZZ_CHECK(result == WAHA_EVENT_STATUS || result == WAHA_EVENT_IGNORED ||
               result == WAHA_EVENT_BAD);
    if (result == WAHA_EVENT_BAD) {
        FUZZ_CHECK(fuzz_terminated(why, sizeof(why)) && why[0] != '\0');
        return;
    }
    FUZZ_CHECK(fuzz_terminated(ev.event, sizeof(ev.event))); /* "" is another event */
    FUZZ_CHECK(fuzz_terminated(ev.session, sizeof(ev.session)));
    env = json_tokener_parse(body);
    FUZZ_CHECK(fuzz_member_is(env, "event", ev.event));
    expected_digest(env, digest);
    FUZZ_CHECK(memcmp(ev.id_digest, digest, REGION_DIGEST_LEN) == 0);
    FUZZ_CHECK(json_object_object_get_ex(env, "timestamp", &ts) &&
                       json_object_is_type(ts, json_type_int)
                   ? ev.timestamp_ms == json_object_get_int64(ts)
                   : ev.timestamp_ms == 0);
    FUZZ_CHECK(json_object_object_get_ex(env, "session", &session) &&
               json_object_is_type(session, json_type_string));
    if (result == WAHA_EVENT_IGNORED) {
        FUZZ_CHECK(strcmp(ev.event, "session.status") != 0 ||
                   !name_holdable(json_object_get_string(session),
                                  (size_t)json_object_get_string_len(session)));
        FUZZ_CHECK(ev.session[0] == '\0');
        FUZZ_CHECK(ev.status[0] == '\0' && !ev.has_me);
    } else {
        FUZZ_CHECK(strcmp(ev.event, "session.status") == 0);
        FUZZ_CHECK(fuzz_member_is(env, "session", ev.session));
        FUZZ_CHECK(name_holdable(ev.session, strlen(ev.session)));
        FUZZ_CHECK(fuzz_terminated(ev.status, sizeof(ev.status)) && ev.status[0] != '\0');
        FUZZ_CHECK(status_chars(ev.status));
        FUZZ_CHECK(json_object_object_get_ex(env, "payload", &payload));
        FUZZ_CHECK(fuzz_member_is(payload, "status", ev.status));
        if (ev.has_me) {
            FUZZ_CHECK(fuzz_terminated(ev.me_json, sizeof(ev.me_json)));
            FUZZ_CHECK(
                fuzz_json_is(ev.me_json, strlen(ev.me_json), json_type_object, true));
        }
    }
    json_object_put(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum signature how;
    const char *key;
    const char *start, *newline;
    char *given = NULL, *body;
    size_t len;

    if (size < 1)
        return 0;
    how = (enum signature)(data[0] % SIGN_KINDS);
    key = (data[0] / SIGN_KINDS) % 2 ? "" : "wh-test-secret";
    start = (const char *)data + 1;
    len = size - 1;
    newline = how == SIGN_GIVEN ? memchr(start, '\n', len) : NULL;
    if (newline != NULL) {
        given = strndup(start, (size_t)(newline - start));
        len -= (size_t)(newline - start) + 1;
        start = newline + 1;
    }
    body = malloc(len + 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, start, len);
    body[len] = '\0';

    check_hmac(how, key, body, len, given ? given : "", size > 1 ? data[1] : 0);
    check_envelope(body, len);

    free(body);
    free(given);
    return 0;
}
