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

bool waha_name_ok(const char *name)
{
    size_t len = strlen(name);

    return len > 0 && len < REGION_NAME_MAX && json_valid_utf8(name, len);
}

/* OBJ's member KEY compact into OUT (OUT_SIZE bytes); its length, or 0 when
 * it does not fit. */
static size_t compact(struct json_object *obj, char *out, size_t out_size)
{
    size_t len;
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (text == NULL || len >= out_size)
        return 0;
    memcpy(out, text, len + 1);
    return len;
}

/* REC's engine: OBJ's "engine", taken out of OBJ. */
static int take_engine(struct json_object *obj, struct session_record *rec, char *why)
{
    struct json_object *engine;

    rec->has_engine = json_object_object_get_ex(obj, "engine", &engine);
    rec->engine_len = 0;
    rec->engine_json[0] = '\0';
    if (!rec->has_engine)
        return 0;
    rec->engine_len = compact(engine, rec->engine_json, sizeof(rec->engine_json));
    if (rec->engine_len == 0) {
        snprintf(why, WAHA_WHY_MAX,
                 "session \"%.64s\" has an \"engine\" larger than %zu bytes", rec->name,
                 sizeof(rec->engine_json) - 1);
        return -1;
    }
    json_object_object_del(obj, "engine");
    return 0;
}

/*
 * Fill REC from the parsed session object OBJ (changed: its "engine" is
 * taken out); NAME, when given, must be its name. SKIPPED: a name the
 * region cannot hold (the region's name limit, or not UTF-8).
 */
static enum waha_item record_from_object(struct json_object *obj, const char *name,
                                         struct session_record *rec, char *why)
{
    const char *got_name = json_get_string(obj, "name");
    const char *status = json_get_string(obj, "status");

    if (!json_object_is_type(obj, json_type_object) || got_name == NULL) {
        snprintf(why, WAHA_WHY_MAX, "session is not a JSON object with a \"name\"");
        return WAHA_ITEM_INVALID;
    }
    if (!waha_name_ok(got_name)) {
        snprintf(why, WAHA_WHY_MAX, "a session name of %zu bytes%s", strlen(got_name),
                 json_valid_utf8(got_name, strlen(got_name)) ? "" : " that is not UTF-8");
        return WAHA_ITEM_SKIPPED;
    }
    snprintf(rec->name, sizeof(rec->name), "%s", got_name);
    if (name != NULL && strcmp(got_name, name) != 0) {
        snprintf(why, WAHA_WHY_MAX, "session object has another \"name\"");
        return WAHA_ITEM_INVALID;
    }
    if (status == NULL || !waha_valid_status(status)) {
        snprintf(why, WAHA_WHY_MAX, "session has no valid \"status\"");
        return WAHA_ITEM_INVALID;
    }
    snprintf(rec->status, sizeof(rec->status), "%s", status);
    if (render_me(obj, rec->me_json, sizeof(rec->me_json), why) != 0 ||
        take_engine(obj, rec, why) != 0)
        return WAHA_ITEM_INVALID;
    rec->body_len = compact(obj, rec->body, sizeof(rec->body));
    if (rec->body_len == 0) {
        snprintf(why, WAHA_WHY_MAX, "session is larger than %zu bytes",
                 sizeof(rec->body) - 1);
        return WAHA_ITEM_INVALID;
    }
    return WAHA_ITEM_OK;
}

int waha_parse_session(const char *name, const char *body, size_t len,
                       struct session_record *rec, char *why)
{
    struct json_object *obj = json_parse_bounded(body, len, why, WAHA_WHY_MAX);
    enum waha_item item;

    if (obj == NULL)
        return -1;
    item = record_from_object(obj, name, rec, why);
    json_object_put(obj);
    return item == WAHA_ITEM_OK ? 0 : -1;
}

struct json_object *waha_list_open(const char *body, size_t len, char *why)
{
    struct json_object *arr = json_parse_bounded(body, len, why, WAHA_WHY_MAX);

    if (arr != NULL && !json_object_is_type(arr, json_type_array)) {
        snprintf(why, WAHA_WHY_MAX, "session list is not a JSON array");
        json_object_put(arr);
        return NULL;
    }
    return arr;
}

size_t waha_list_length(struct json_object *list)
{
    return json_object_array_length(list);
}

void waha_list_close(struct json_object *list)
{
    json_object_put(list);
}

enum waha_item waha_list_item(struct json_object *list, size_t i,
                              struct session_record *rec, char *why)
{
    /* Items have no "engine" in WAHA's source (only GET
     * /api/sessions/{name} asks the engine); its docs show one: then it is
     * as good as the details (REC->has_engine). */
    return record_from_object(json_object_array_get_idx(list, i), NULL, rec, why);
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

/* EV's id digest: SHA-256 of the envelope's "id" as JSON text, so that
 * ids of any length or type are told apart. */
static void digest_id(struct json_object *env, struct waha_event *ev)
{
    unsigned char sha[32];
    struct json_object *id;
    const char *text;
    size_t len;

    if (!json_object_object_get_ex(env, "id", &id) || id == NULL ||
        (json_object_is_type(id, json_type_string) &&
         json_object_get_string_len(id) == 0))
        return; /* no id (WAHA Core before 2024-11), or "": all zero */
    text = json_object_to_json_string_length(id, JSON_C_TO_STRING_PLAIN, &len);
    if (text == NULL || EVP_Digest(text, len, sha, NULL, EVP_sha256(), NULL) != 1)
        return;
    memcpy(ev->id_digest, sha, sizeof(ev->id_digest));
}

/* The session.status part of the envelope ENV into EV: WAHA_EVENT_STATUS,
 * or WAHA_EVENT_BAD with WHY. */
static enum waha_event_kind status_event(struct json_object *env, struct waha_event *ev,
                                         char *why)
{
    struct json_object *payload, *me;
    const char *status = json_object_object_get_ex(env, "payload", &payload)
                             ? json_get_string(payload, "status")
                             : NULL;

    if (status == NULL || !waha_valid_status(status)) {
        snprintf(why, WAHA_WHY_MAX,
                 "session.status event without a valid payload.status");
        return WAHA_EVENT_BAD;
    }
    snprintf(ev->status, sizeof(ev->status), "%s", status);
    if (json_object_object_get_ex(env, "me", &me))
        ev->has_me = waha_render_me(me, ev->me_json, sizeof(ev->me_json)) == 0;
    return WAHA_EVENT_STATUS;
}

enum waha_event_kind waha_parse_event(const char *body, size_t len, struct waha_event *ev,
                                      char *why)
{
    struct json_object *env = json_parse_bounded(body, len, why, WAHA_WHY_MAX);
    struct json_object *ts;
    const char *event, *session;
    enum waha_event_kind result = WAHA_EVENT_BAD;

    memset(ev, 0, sizeof(*ev));
    if (env == NULL)
        return WAHA_EVENT_BAD;
    event = json_get_string(env, "event");
    session = json_get_string(env, "session");
    if (!json_object_is_type(env, json_type_object) || event == NULL || session == NULL) {
        snprintf(why, WAHA_WHY_MAX,
                 "not a WAHA event envelope (needs \"event\" and \"session\")");
    } else if (strlen(event) >= sizeof(ev->event)) {
        snprintf(why, WAHA_WHY_MAX, "event name too long");
    } else {
        snprintf(ev->event, sizeof(ev->event), "%s", event);
        digest_id(env, ev);
        if (json_object_object_get_ex(env, "timestamp", &ts) &&
            json_object_is_type(ts, json_type_int))
            ev->timestamp_ms = json_object_get_int64(ts);
        /* A session the region cannot hold is not an error of WAHA's: its
         * events are acknowledged and ignored, so WAHA does not retry them. */
        if (strcmp(event, "session.status") != 0 || !waha_name_ok(session)) {
            result = WAHA_EVENT_IGNORED;
        } else {
            snprintf(ev->session, sizeof(ev->session), "%s", session);
            result = status_event(env, ev, why);
        }
    }
    json_object_put(env);
    return result;
}
