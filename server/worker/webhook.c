/*
 * webhook.c - POST /api/waha/webhook: WAHA's webhooks, checked and applied.
 *
 * DESIGN
 * WAHA signs a webhook, when the session's webhook has an hmac key, with
 * X-Webhook-Hmac: hex(HMAC-SHA512(key, raw body)) (docs/waha-api.md, 6.2).
 * With webhook.hmac_key set, the signature is checked before anything else
 * is read (waha_signature_ok(), in constant time). The envelope is then read by waha_parse_event() (common/waha.c,
 * which the fetcher uses for WAHA's WebSocket too) and a session.status
 * event is applied at once by store_event() (common/store.c); other events
 * are valid but ignored (202), so WAHA does not retry them.
 */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "log.h"
#include "store.h"
#include "waha.h"

/*
 * A webhook without X-Webhook-Hmac while webhook.hmac_key is set: WAHA Core
 * before 2024-11 signs none (docs/waha-api.md, 9). Said once per worker,
 * with what to change.
 */
static void warn_unsigned(void)
{
    static bool warned;

    if (warned)
        return;
    warned = true;
    log_warn(0, "refused a webhook without X-Webhook-Hmac: webhook.hmac_key is set, but "
                "this WAHA does not sign its webhooks (WAHA Core before 2024.11 cannot); "
                "give WAHA the same key (the webhook's hmac.key, or "
                "WHATSAPP_HOOK_HMAC_KEY), or empty webhook.hmac_key");
}

/* A JSON answer {"result":RESULT} with status STATUS (202: not applied). */
static void result(struct http_response *resp, int status, const char *body)
{
    route_json(resp, body, strlen(body));
    resp->status = status;
}

static void rejected(struct http_response *resp, int status, const char *code,
                     const char *message)
{
    route_count(COUNTER_WEBHOOKS_REJECTED);
    http_response_error(resp, status, code, message);
}

enum route_result serve_webhook(const struct http_request_view *req,
                                struct http_response *resp)
{
    struct waha_event ev;
    char why[WAHA_WHY_MAX];
    enum waha_event_kind kind;

    route_count(COUNTER_WEBHOOKS);
    if (rt.cfg->webhook.hmac_key[0] != '\0' &&
        !waha_signature_ok(rt.cfg->webhook.hmac_key, req->body ? req->body : "",
                           req->body_len, req->header[HEADER_X_WEBHOOK_HMAC])) {
        if (req->header[HEADER_X_WEBHOOK_HMAC] == NULL)
            warn_unsigned();
        rejected(resp, 401, "bad_signature",
                 "X-Webhook-Hmac is missing or does not match the body");
        return ROUTE_DONE;
    }
    if (req->body == NULL) {
        rejected(resp, 400, "bad_request", "webhook without a body");
        return ROUTE_DONE;
    }
    kind = waha_parse_event(req->body, req->body_len, &ev, why);
    if (kind == WAHA_EVENT_BAD) {
        rejected(resp, 400, "bad_request", why);
        return ROUTE_DONE;
    }
    if (kind == WAHA_EVENT_IGNORED) {
        result(resp, 202, "{\"result\":\"ignored\"}");
        return ROUTE_DONE;
    }
    switch (store_event(rt.region, rt.cfg, &ev, SOURCE_WEBHOOK)) {
    case STORE_EVENT_APPLIED: result(resp, 200, "{\"result\":\"applied\"}"); break;
    case STORE_EVENT_DUPLICATE:
        route_count(COUNTER_WEBHOOKS_DUPLICATE);
        result(resp, 200, "{\"result\":\"duplicate\"}");
        break;
    case STORE_EVENT_OUTDATED:
        /* A late retry or a replay: acknowledged, so WAHA stops retrying. */
        route_count(COUNTER_WEBHOOKS_DUPLICATE);
        result(resp, 200, "{\"result\":\"outdated\"}");
        break;
    case STORE_EVENT_UNTRACKED:
    default:
        if (rt.cfg->upstream.all_sessions) /* maybe a new session: list again */
            replica_want(REGION_ENTRY_LIST, DEMAND_DATA, req->now_mono_ms);
        result(resp, 202, "{\"result\":\"untracked\"}");
        break;
    }
    return ROUTE_DONE;
}
