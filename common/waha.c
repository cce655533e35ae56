/*
 * waha.c - validate WAHA's payloads before they may replace cached data.
 *
 * DESIGN
 * Called by the fetcher when a transfer completes or an event arrives on
 * WAHA's WebSocket, by workers for webhooks, and by unit tests and fuzzers
 * directly. Each function parses with json_parse_bounded() (depth and size
 * bounds), checks the shape it needs, and writes a compact re-serialisation
 * that fits the region's fixed buffers. Anything else is a reason string,
 * never a partial record: the caller keeps its old data.
 *
 * Event envelopes (docs/waha-api.md, 6.3) are {id, timestamp, event,
 * session, me, payload, ...}; only session.status events carry something
 * wahagate caches (payload.status and the envelope's me); other events are
 * valid but ignored. WAHA signs a webhook, when the session's webhook has
 * an hmac key, with X-Webhook-Hmac: hex(HMAC-SHA512(key, raw body)) (6.2):
 * waha_signature_ok() recomputes the digest with OpenSSL and compares the
 * decoded bytes with CRYPTO_memcmp(), whose time does not depend on where
 * they differ. Nothing here allocates beyond json-c's parse of one bounded
 * body.
 */
#include "waha.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"
#include "json.h"

bool waha_valid_status(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len >= REGION_STATUS_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isupper((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

int waha_render_me(struct json_object *me, char *out, size_t out_size)
{
    struct jbuf b;

    jbuf_init(&b, out, out_size);
    if (me == NULL) {
        jbuf_raw(&b, "null");
        return b.overflow ? -1 : 0;
    }
    if (!json_object_is_type(me, json_type_object) || json_get_string(me, "id") == NULL)
        return -1;
    jbuf_raw(&b, "{\"id\":");
    jbuf_string(&b, json_get_string(me, "id"));
    jbuf_raw(&b, ",\"pushName\":");
    jbuf_string(&b, json_get_string(me, "pushName"));
    jbuf_raw(&b, "}");
    return b.overflow ? -1 : 0;
}

/* me_json of a session object: its "me", or null when absent. */
static int render_me(struct json_object *session, char *out, size_t out_size, char *why)
{
    struct json_object *me = NULL;

    json_object_object_get_ex(session, "me", &me);
    if (waha_render_me(me, out, out_size) != 0) {
        snprintf(why, WAHA_WHY_MAX, "\"me\" is not an object with an id");
        return -1;
    }
    return 0;
}

/* Fill REC from a parsed session object; NAME, when given, must match. */
static int record_from_object(struct json_object *obj, const char *name,
                              struct session_record *rec, char *why)
{
    const char *got_name = json_get_string(obj, "name");
    const char *status = json_get_string(obj, "status");
    const char *text;
    size_t text_len;

    if (!json_object_is_type(obj, json_type_object)) {
        snprintf(why, WAHA_WHY_MAX, "session is not a JSON object");
        return -1;
    }
    if (got_name == NULL || !config_valid_session_name(got_name) ||
        (name != NULL && strcmp(got_name, name) != 0)) {
        snprintf(why, WAHA_WHY_MAX, "session object has no valid \"name\"%s%s",
                 name ? " " : "", name ? name : "");
        return -1;
    }
    if (status == NULL || !waha_valid_status(status)) {
        snprintf(why, WAHA_WHY_MAX, "session \"%s\" has no valid \"status\"", got_name);
        return -1;
    }
    if (render_me(obj, rec->me_json, sizeof(rec->me_json), why) != 0)
        return -1;
    text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &text_len);
    if (text == NULL || text_len >= sizeof(rec->body)) {
        snprintf(why, WAHA_WHY_MAX, "session \"%s\" is larger than %zu bytes", got_name,
                 sizeof(rec->body) - 1);
        return -1;
    }
    snprintf(rec->name, sizeof(rec->name), "%s", got_name);
    snprintf(rec->status, sizeof(rec->status), "%s", status);
    memcpy(rec->body, text, text_len + 1);
    rec->body_len = text_len;
    return 0;
}

int waha_parse_session(const char *name, const char *body, size_t len,
                       struct session_record *rec, char *why)
{
    struct json_object *obj = json_parse_bounded(body, len, why, WAHA_WHY_MAX);
    int rc;

    if (obj == NULL)
        return -1;
    rc = record_from_object(obj, name, rec, why);
    json_object_put(obj);
    return rc;
}

int waha_parse_session_list(const char *body, size_t len, struct session_record *recs,
                            int max, int *count, char *why)
{
    struct json_object *arr = json_parse_bounded(body, len, why, WAHA_WHY_MAX);
    size_t n;

    *count = 0;
    if (arr == NULL)
        return -1;
    if (!json_object_is_type(arr, json_type_array)) {
        snprintf(why, WAHA_WHY_MAX, "session list is not a JSON array");
        json_object_put(arr);
        return -1;
    }
    n = json_object_array_length(arr);
    for (size_t i = 0; i < n && *count < max; i++) {
        if (record_from_object(json_object_array_get_idx(arr, i), NULL, &recs[*count],
                               why) != 0) {
            json_object_put(arr);
            return -1;
        }
        (*count)++;
    }
    json_object_put(arr);
    return 0;
}

int waha_health_verdict(bool ping, long http_code, const char *body, size_t len,
                        char *status_out, size_t status_size, char *why)
{
    struct json_object *obj;
    const char *field;
    int verdict = -1;

    if (ping ? http_code != 200 : (http_code != 200 && http_code != 503)) {
        waha_describe_error(http_code, body, len, why);
        return -1;
    }
    obj = json_parse_bounded(body, len, why, WAHA_WHY_MAX);
    if (obj == NULL)
        return -1;
    field = json_get_string(obj, ping ? "message" : "status");
    if (ping && field != NULL && strcmp(field, "pong") == 0) {
        verdict = 1;
    } else if (!ping && field != NULL &&
               (strcmp(field, "ok") == 0 || strcmp(field, "error") == 0 ||
                strcmp(field, "shutting_down") == 0)) {
        verdict = http_code == 200 && strcmp(field, "ok") == 0;
    } else {
        snprintf(why, WAHA_WHY_MAX, "%s answer has no valid \"%s\"",
                 ping ? "/ping" : "/health", ping ? "message" : "status");
    }
    if (verdict >= 0)
        snprintf(status_out, status_size, "%s", field);
    json_object_put(obj);
    return verdict;
}

void waha_describe_error(long http_code, const char *body, size_t len, char *why)
{
    char ignored[WAHA_WHY_MAX];
    struct json_object *obj = json_parse_bounded(body, len, ignored, sizeof(ignored));
    const char *message = obj ? json_get_string(obj, "message") : NULL;
    struct json_object *exception;

    /* WAHA's 500s carry the reason in exception.message (docs/waha-api.md, 5). */
    if (message == NULL && obj != NULL &&
        json_object_object_get_ex(obj, "exception", &exception))
        message = json_get_string(exception, "message");
    if (message == NULL && obj != NULL)
        message = json_get_string(obj, "error");
    if (message != NULL)
        snprintf(why, WAHA_WHY_MAX, "HTTP %ld: %.100s", http_code, message);
    else
        snprintf(why, WAHA_WHY_MAX, "HTTP %ld", http_code);
    json_object_put(obj);
}

/*========================================================================
 * Event envelopes and their signature.
 */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool waha_signature_ok(const char *key, const char *body, size_t len, const char *header)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[64];
    unsigned int want_len = 0;

    if (header == NULL || strlen(header) != 128 || key == NULL)
        return false;
    for (size_t i = 0; i < 64; i++) {
        int hi = hex_value(header[2 * i]), lo = hex_value(header[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        got[i] = (unsigned char)(hi << 4 | lo);
    }
    if (HMAC(EVP_sha512(), key, (int)strlen(key), (const unsigned char *)body, len, want,
             &want_len) == NULL ||
        want_len != 64)
        return false;
    return CRYPTO_memcmp(want, got, 64) == 0;
}

static void copy_bounded(char *out, size_t size, const char *text)
{
    snprintf(out, size, "%s", text ? text : "");
}

enum waha_event_kind waha_parse_event(const char *body, size_t len, struct waha_event *ev,
                                      char *why)
{
    struct json_object *env = json_parse_bounded(body, len, why, WAHA_WHY_MAX);
    struct json_object *payload, *me, *ts;
    const char *event, *session, *status;
    enum waha_event_kind result = WAHA_EVENT_BAD;
    memset(ev, 0, sizeof(*ev));
    if (env == NULL)
        return WAHA_EVENT_BAD;
    event = json_get_string(env, "event");
    session = json_get_string(env, "session");
    if (!json_object_is_type(env, json_type_object) || event == NULL || session == NULL) {
        snprintf(why, WAHA_WHY_MAX,
                 "not a WAHA event envelope (needs "
                 "\"event\" and \"session\")");
        goto done;
    }
    if (strlen(event) >= sizeof(ev->event) || !config_valid_session_name(session)) {
        snprintf(why, WAHA_WHY_MAX, "event name too long or session name invalid");
        goto done;
    }
    copy_bounded(ev->event, sizeof(ev->event), event);
    copy_bounded(ev->session, sizeof(ev->session), session);
    if (json_get_string(env, "id") != NULL &&
        strlen(json_get_string(env, "id")) < sizeof(ev->id))
        copy_bounded(ev->id, sizeof(ev->id), json_get_string(env, "id"));
    if (json_object_object_get_ex(env, "timestamp", &ts) &&
        json_object_is_type(ts, json_type_int))
        ev->timestamp_ms = json_object_get_int64(ts);
    if (strcmp(event, "session.status") != 0) {
        result = WAHA_EVENT_IGNORED;
        goto done;
    }

    status = json_object_object_get_ex(env, "payload", &payload)
                 ? json_get_string(payload, "status")
                 : NULL;
    if (status == NULL || status[0] == '\0' || strlen(status) >= sizeof(ev->status)) {
        snprintf(why, WAHA_WHY_MAX,
                 "session.status event without a valid "
                 "payload.status");
        goto done;
    }
    if (!waha_valid_status(status)) {
        snprintf(why, WAHA_WHY_MAX, "payload.status is not a WAHA status");
        goto done;
    }
    copy_bounded(ev->status, sizeof(ev->status), status);

    if (json_object_object_get_ex(env, "me", &me))
        ev->has_me = waha_render_me(me, ev->me_json, sizeof(ev->me_json)) == 0;
    result = WAHA_EVENT_STATUS;
done:
    json_object_put(env);
    return result;
}
