/*
 * compat_render.c - the region-free bytes of the compat paths' answers
 * (see compat_render.h).
 *
 * DESIGN
 * WAHA's bodies are written the way NestJS writes them (JSON.stringify:
 * compact, keys in the order given, '/' unescaped, which jbuf_string()
 * does too), so that a client comparing bytes sees WAHA's. Numbers that
 * the seed backend turned into strings (toFixed(2)) are printed with
 * "%.2f". Nothing here allocates except json-c's parse of a cached object
 * in compat_member() and compat_status_code().
 */
#include "compat_render.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

const char *compat_reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void compat_waha_error(struct jbuf *b, int status, const char *message, bool as_array)
{
    jbuf_raw(b, "{\"message\":");
    if (message == NULL) {
        jbuf_string(b, compat_reason(status));
    } else {
        jbuf_raw(b, as_array ? "[" : "");
        jbuf_string(b, message);
        jbuf_raw(b, as_array ? "],\"error\":" : ",\"error\":");
        jbuf_string(b, compat_reason(status));
    }
    jbuf_raw(b, ",\"statusCode\":");
    jbuf_int(b, status);
    jbuf_raw(b, "}");
}

void compat_not_running(struct jbuf *b, const char *name)
{
    char message[256];

    snprintf(message, sizeof(message),
             "We didn't find a session with name '%s'.\nPlease start it first by using "
             "POST /api/sessions/%s/start request",
             name, name);
    compat_waha_error(b, 404, message, false);
}

void compat_qr_gate(struct jbuf *b, const char *name, const char *status)
{
    char message[128];

    if (status == NULL) {
        snprintf(message, sizeof(message), "Session \"%s\" does not exist", name);
        jbuf_raw(b, "{\"error\":");
        jbuf_string(b, message);
        jbuf_raw(b, ",\"session\":");
        jbuf_string(b, name);
        jbuf_raw(b, "}");
        return;
    }
    jbuf_raw(b, "{\"error\":\"Session status is not as expected. Try again later or "
                "restart the session\",\"session\":");
    jbuf_string(b, name);
    jbuf_raw(b, ",\"status\":");
    jbuf_string(b, status);
    jbuf_raw(b, ",\"expected\":[\"SCAN_QR_CODE\"]}");
}

int compat_bool_param(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "True", "1"}, *const no[] = {"false", "False", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(text, yes[i]) == 0 || strcmp(text, no[i]) == 0) {
            *out = strcmp(text, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

int compat_status_code(const char *body, size_t len)
{
    char why[64];
    struct json_object *obj = json_parse_bounded(body, len, why, sizeof(why)), *code;
    int status = 0;

    if (obj != NULL && json_object_is_type(obj, json_type_object) &&
        json_object_object_get_ex(obj, "statusCode", &code) &&
        json_object_is_type(code, json_type_int))
        status = json_object_get_int(code);
    json_object_put(obj);
    return status >= 100 && status <= 599 ? status : 0;
}

int compat_member(struct jbuf *b, const char *body, size_t len, const char *key)
{
    char why[64];
    struct json_object *obj = json_parse_bounded(body, len, why, sizeof(why)), *member;
    int found = -1;

    if (obj != NULL && json_object_is_type(obj, json_type_object)) {
        found = 0;
        if (json_object_object_get_ex(obj, key, &member) && member != NULL) {
            jbuf_raw(b, json_object_to_json_string_ext(member, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
            found = b->overflow ? -1 : 1;
        }
    }
    json_object_put(obj);
    return found;
}

void compat_server_status(struct jbuf *b, const char *body, size_t len, int64_t add_ms)
{
    static const char key[] = "\"uptime\":";
    const char *at = memmem(body, len, key, sizeof(key) - 1), *digits, *end;
    long long uptime;

    if (at == NULL) {
        jbuf_mem(b, body, len);
        return;
    }
    digits = at + sizeof(key) - 1;
    for (end = digits; end < body + len && *end >= '0' && *end <= '9'; end++)
        ;
    if (end == digits || end - digits > 15) {
        jbuf_mem(b, body, len);
        return;
    }
    uptime = strtoll(digits, NULL, 10);
    jbuf_mem(b, body, (size_t)(digits - body));
    jbuf_int(b, uptime + (add_ms > 0 ? add_ms : 0));
    jbuf_mem(b, end, (size_t)(body + len - end));
}

void compat_percent(char *out, size_t size, uint64_t part, uint64_t whole)
{
    if (whole == 0)
        snprintf(out, size, "0%%");
    else
        snprintf(out, size, "%.2f%%", 100.0 * (double)part / (double)whole);
}

void compat_per_minute(char *out, size_t size, uint64_t calls, int64_t uptime_ms)
{
    snprintf(out, size, "%.2f",
             uptime_ms > 0 ? (double)calls * 60000.0 / (double)uptime_ms : 0.0);
}

void compat_seed_error(struct jbuf *b, const char *message)
{
    jbuf_raw(b, "{\"success\":false,\"error\":");
    jbuf_string(b, message);
    jbuf_raw(b, "}");
}

void compat_seed_status(struct jbuf *b, const struct seed_status *s)
{
    const char *yes_no[] = {"false", "true"};
    int64_t when = s->heartbeat_real_ms != 0 ? s->heartbeat_real_ms : s->now_real_ms;

    jbuf_raw(b, "{\"success\":true,\"data\":{\"connected\":");
    jbuf_raw(b, yes_no[s->connected]);
    jbuf_raw(b, ",\"authenticated\":");
    jbuf_raw(b, yes_no[s->authenticated]);
    jbuf_raw(b, ",\"lastHeartbeat\":");
    jbuf_time(b, s->heartbeat_real_ms);
    jbuf_raw(b, ",\"serviceStatus\":");
    jbuf_string(b, s->service);
    jbuf_raw(b, ",\"isReady\":");
    jbuf_raw(b, yes_no[s->connected]);
    jbuf_raw(b, ",\"isClientReady\":");
    jbuf_raw(b, yes_no[s->connected]);
    jbuf_raw(b, ",\"qrAvailable\":");
    jbuf_raw(b, yes_no[s->qr_available]);
    jbuf_raw(b, ",\"timestamp\":");
    jbuf_time(b, when);
    jbuf_raw(b, ",\"monitoredKeywords\":[],\"serviceType\":\"waha\"}}");
}

void compat_seed_stats(struct jbuf *b, const struct seed_stats *s)
{
    char rate[32], per_minute[32];

    compat_percent(rate, sizeof(rate), s->hits, s->hits + s->misses);
    compat_per_minute(per_minute, sizeof(per_minute), s->calls, s->uptime_ms);
    jbuf_raw(b, "{\"success\":true,\"data\":{\"totalRequests\":");
    jbuf_uint(b, s->requests);
    jbuf_raw(b, ",\"cacheHits\":");
    jbuf_uint(b, s->hits);
    jbuf_raw(b, ",\"cacheMisses\":");
    jbuf_uint(b, s->misses);
    jbuf_raw(b, ",\"apiCalls\":");
    jbuf_uint(b, s->calls);
    jbuf_raw(b, ",\"errors\":");
    jbuf_uint(b, s->errors);
    jbuf_raw(b, ",\"lastReset\":");
    jbuf_time(b, s->started_real_ms);
    jbuf_raw(b, ",\"uptime\":");
    jbuf_int(b, s->uptime_ms);
    jbuf_raw(b, ",\"cacheHitRate\":");
    jbuf_string(b, rate);
    jbuf_raw(b, ",\"averageApiCallsPerMinute\":");
    jbuf_string(b, per_minute);
    jbuf_raw(b, "}}");
}

void compat_seed_qr(struct jbuf *b, const unsigned char *png, size_t len)
{
    size_t room = 4 * ((len + 2) / 3) + 1;

    jbuf_raw(b, "{\"success\":true,\"data\":{\"qrCode\":\"data:image/png;base64,");
    if (b->overflow || room > b->cap - b->len || len > INT32_MAX) {
        b->overflow = true;
        return;
    }
    b->len += (size_t)EVP_EncodeBlock((unsigned char *)b->data + b->len, png, (int)len);
    jbuf_raw(b, "\",\"message\":\"QR code generated successfully\"}}");
}

void compat_seed_health(struct jbuf *b, bool healthy, const char *endpoint,
                        int64_t checked_real_ms, int64_t now_real_ms)
{
    jbuf_raw(b, healthy ? "{\"success\":true,\"data\":{\"waha\":{\"healthy\":true"
                        : "{\"success\":true,\"data\":{\"waha\":{\"healthy\":false");
    jbuf_raw(b, ",\"details\":{\"endpoints\":[");
    jbuf_string(b, endpoint);
    jbuf_raw(b, "],\"lastCheck\":");
    jbuf_time(b, checked_real_ms);
    jbuf_raw(b, "}},\"timestamp\":");
    jbuf_time(b, now_real_ms);
    jbuf_raw(b, "}}");
}
