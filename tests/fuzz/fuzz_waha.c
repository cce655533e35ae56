/*
 * fuzz_waha.c - libFuzzer target: what WAHA answers, as the fetcher
 * validates it (common/waha.c) before it may replace cached data.
 *
 * Input: one selector byte, then the body. The selector picks the call the
 * fetcher makes for the endpoint (a session, the session list item by item,
 * /health, /ping, or the reason for an error status) and, for the last
 * three, the HTTP status it came with. The body is NUL-terminated, as the
 * fetcher's transfer buffer is. What comes back is checked against waha.h:
 * a record's body is one compact JSON object in UTF-8 without "engine",
 * whose "name" and "status" are exactly the record's, a name the region can
 * hold (waha_name_ok(): 1 to 63 bytes of UTF-8) and a status of capital
 * letters, digits and '_'; its "me" is an object or null; its engine, when
 * it has one, is one JSON value in UTF-8; a skipped list item is one whose
 * name the region cannot hold; a verdict is -1, 0 or 1 with a known status
 * word; every reason is a terminated string.
 *
 * Nothing is kept between inputs (the record is one static, written before
 * it is read).
 */
#include <ctype.h>

#include "fuzz.h"
#include "waha.h"

enum call { CALL_SESSION, CALL_LIST, CALL_HEALTH, CALL_PING, CALL_ERROR, CALL_KINDS };

static const long http_codes[] = {200, 503, 404, 401, 422, 429, 500, 502, 204, 301};

static struct session_record record;

/* A session name the region can hold, checked apart from waha_name_ok(). */
static bool name_holdable(const char *name)
{
    size_t len = strlen(name);

    return len > 0 && len < REGION_NAME_MAX && fuzz_utf8(name, len);
}

static void check_record(const struct session_record *rec, const char *want_name)
{
    struct json_object *obj;

    FUZZ_CHECK(fuzz_terminated(rec->name, sizeof(rec->name)));
    FUZZ_CHECK(fuzz_terminated(rec->status, sizeof(rec->status)));
    FUZZ_CHECK(fuzz_terminated(rec->me_json, sizeof(rec->me_json)));
    FUZZ_CHECK(rec->body_len < sizeof(rec->body) && rec->body[rec->body_len] == '\0');
    FUZZ_CHECK(name_holdable(rec->name));
    FUZZ_CHECK(waha_name_ok(rec->name));
    FUZZ_CHECK(want_name == NULL || strcmp(rec->name, want_name) == 0);
    FUZZ_CHECK(rec->status[0] != '\0');
    for (const char *p = rec->status; *p; p++)
        FUZZ_CHECK(isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_');
    FUZZ_CHECK(fuzz_json_is(rec->me_json, strlen(rec->me_json), json_type_object, true));
    FUZZ_CHECK(fuzz_json_is(rec->body, rec->body_len, json_type_object, false));
    obj = json_tokener_parse(rec->body);
    FUZZ_CHECK(fuzz_member_is(obj, "name", rec->name));
    FUZZ_CHECK(fuzz_member_is(obj, "status", rec->status));
    FUZZ_CHECK(!json_object_object_get_ex(obj, "engine", NULL));
    json_object_put(obj);
    if (rec->has_engine) {
        FUZZ_CHECK(rec->engine_len > 0 && rec->engine_len < sizeof(rec->engine_json));
        FUZZ_CHECK(rec->engine_json[rec->engine_len] == '\0');
        FUZZ_CHECK(strlen(rec->engine_json) == rec->engine_len);
        obj = json_tokener_parse(rec->engine_json);
        FUZZ_CHECK(fuzz_json_is(rec->engine_json, rec->engine_len,
                                obj ? json_object_get_type(obj) : json_type_null, true));
        json_object_put(obj);
    } else {
        FUZZ_CHECK(rec->engine_len == 0);
    }
}

/* The session list, item by item, as answers.c reads it. */
static void check_list(const char *body, size_t len)
{
    char why[WAHA_WHY_MAX];
    struct json_object *list, *item;
    size_t n;

    memset(why, 'x', sizeof(why));
    list = waha_list_open(body, len, why);
    if (list == NULL) {
        FUZZ_CHECK(fuzz_terminated(why, sizeof(why)) && why[0] != '\0');
        return;
    }
    FUZZ_CHECK(json_object_is_type(list, json_type_array));
    n = waha_list_length(list);
    for (size_t i = 0; i < n; i++) {
        const char *name;

        memset(why, 'x', sizeof(why));
        memset(&record, 'x', sizeof(record)); /* waha_list_item() fills what it says */
        item = json_object_array_get_idx(list, i);
        name = json_object_is_type(item, json_type_object)
                   ? json_object_get_string(json_object_object_get(item, "name"))
                   : NULL;
        switch (waha_list_item(list, i, &record, why)) {
        case WAHA_ITEM_OK: check_record(&record, NULL); break;
        case WAHA_ITEM_SKIPPED:
            /* Only a name (a string without NUL) the region cannot hold. */
            FUZZ_CHECK(fuzz_terminated(why, sizeof(why)) && why[0] != '\0');
            FUZZ_CHECK(name != NULL && !name_holdable(name));
            FUZZ_CHECK(fuzz_member_is(item, "name", name));
            break;
        case WAHA_ITEM_INVALID:
            FUZZ_CHECK(fuzz_terminated(why, sizeof(why)) && why[0] != '\0');
            break;
        default: FUZZ_CHECK(false);
        }
    }
    waha_list_close(list);
}

static void check_reason(const char *why)
{
    FUZZ_CHECK(fuzz_terminated(why, WAHA_WHY_MAX) && why[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[WAHA_WHY_MAX], status[32];
    enum call call;
    long http;
    char *body;
    size_t len;
    int rc;

    if (size < 1)
        return 0;
    call = (enum call)(data[0] % CALL_KINDS);
    http =
        http_codes[(data[0] / CALL_KINDS) % (sizeof(http_codes) / sizeof(http_codes[0]))];
    len = size - 1;
    body = malloc(len + 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, data + 1, len);
    body[len] = '\0';
    memset(why, 'x', sizeof(why));

    switch (call) {
    case CALL_SESSION:
        rc = waha_parse_session("default", body, len, &record, why);
        FUZZ_CHECK(rc == 0 || rc == -1);
        if (rc == 0)
            check_record(&record, "default");
        else
            check_reason(why);
        break;
    case CALL_LIST: check_list(body, len); break;
    case CALL_HEALTH:
    case CALL_PING:
        memset(status, 'x', sizeof(status));
        rc = waha_health_verdict(call == CALL_PING, http, body, len, status,
                                 sizeof(status), why);
        FUZZ_CHECK(rc >= -1 && rc <= 1);
        if (rc < 0) {
            check_reason(why);
        } else if (call == CALL_PING) {
            FUZZ_CHECK(rc == 1 && strcmp(status, "pong") == 0);
        } else {
            FUZZ_CHECK(strcmp(status, "ok") == 0 || strcmp(status, "error") == 0 ||
                       strcmp(status, "shutting_down") == 0);
            FUZZ_CHECK(rc == (http == 200 && strcmp(status, "ok") == 0));
        }
        break;
    default:
        waha_describe_error(http, body, len, why);
        check_reason(why);
        FUZZ_CHECK(strncmp(why, "HTTP ", 5) == 0);
        break;
    }
    free(body);
    return 0;
}
