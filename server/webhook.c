/*
 * webhook.c - verify and read WAHA's webhook envelopes (waha-api.md, 6).
 *
 * DESIGN
 * WAHA signs a webhook, when the session's webhook has an hmac key, with
 * X-Webhook-Hmac: hex(HMAC-SHA512(key, raw body)). The check recomputes the
 * digest with OpenSSL and compares the decoded bytes with CRYPTO_memcmp(),
 * whose time does not depend on where they differ. Parsing accepts the
 * envelope {id, timestamp, event, session, me, payload, ...}; only
 * session.status events carry something wahagate caches (payload.status and
 * the envelope's me); other events are valid but ignored. Nothing here
 * allocates beyond json-c's parse of one bounded body.
 */
#include "webhook.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"
#include "json.h"
#include "upstream.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool webhook_hmac_ok(const char *key, const char *body, size_t len, const char *header)
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

enum webhook_result webhook_parse(const char *body, size_t len, struct webhook_event *ev,
                                  char *why)
{
    struct json_object *env = json_parse_bounded(body, len, why, REGION_ERROR_MAX);
    struct json_object *payload, *me, *ts;
    const char *event, *session, *status;
    enum webhook_result result = WEBHOOK_BAD;
    memset(ev, 0, sizeof(*ev));
    if (env == NULL)
        return WEBHOOK_BAD;
    event = json_get_string(env, "event");
    session = json_get_string(env, "session");
    if (!json_object_is_type(env, json_type_object) || event == NULL || session == NULL) {
        snprintf(why, REGION_ERROR_MAX,
                 "not a WAHA event envelope (needs "
                 "\"event\" and \"session\")");
        goto done;
    }
    if (strlen(event) >= sizeof(ev->event) || !config_valid_session_name(session)) {
        snprintf(why, REGION_ERROR_MAX, "event name too long or session name invalid");
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
        result = WEBHOOK_IGNORED;
        goto done;
    }

    status = json_object_object_get_ex(env, "payload", &payload)
                 ? json_get_string(payload, "status")
                 : NULL;
    if (status == NULL || status[0] == '\0' || strlen(status) >= sizeof(ev->status)) {
        snprintf(why, REGION_ERROR_MAX,
                 "session.status event without a valid "
                 "payload.status");
        goto done;
    }
    for (const char *p = status; *p; p++) {
        if (!isupper((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_') {
            snprintf(why, REGION_ERROR_MAX, "payload.status is not a WAHA status");
            goto done;
        }
    }
    copy_bounded(ev->status, sizeof(ev->status), status);

    if (json_object_object_get_ex(env, "me", &me))
        ev->has_me = upstream_render_me(me, ev->me_json, sizeof(ev->me_json)) == 0;
    result = WEBHOOK_STATUS;
done:
    json_object_put(env);
    return result;
}
