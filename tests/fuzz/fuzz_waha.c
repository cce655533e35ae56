/*
 * fuzz_upstream.c - libFuzzer target: what WAHA answers, as the fetcher
 * validates it (common/waha.c) before it may replace cached data.
 *
 * Input: one selector byte, then the body. The selector picks the call the
 * fetcher makes for the endpoint (a session, the session list, /health,
 * /ping, or the reason for an error status) and, for the last three, the
 * HTTP status it came with. The body is NUL-terminated, as the fetcher's
 * transfer buffer is. What comes back is checked against upstream.h: a
 * record's body is one compact JSON object in UTF-8 whose "name" and
 * "status" are exactly the record's, a valid session name and a status of
 * capital letters, digits and '_'; its "me" is an object or null; a verdict
 * is -1, 0 or 1 with a known status word; every reason is a terminated
 * string.
 *
 * Nothing is kept between inputs (the session list's records are one
 * static array, written before they are read).
 */
#include <ctype.h>

#include "config.h"
#include "fuzz.h"
#include "waha.h"

enum call { CALL_SESSION, CALL_LIST, CALL_HEALTH, CALL_PING, CALL_ERROR, CALL_KINDS };

static const long http_codes[] = {200, 503, 404, 401, 422, 429, 500, 502, 204, 301};

static struct session_record records[REGION_SESSION_MAX];

static void check_record(const struct session_record *rec, const char *want_name)
{
    struct json_object *obj;

    FUZZ_CHECK(fuzz_terminated(rec->name, sizeof(rec->name)));
    FUZZ_CHECK(fuzz_terminated(rec->status, sizeof(rec->status)));
    FUZZ_CHECK(fuzz_terminated(rec->me_json, sizeof(rec->me_json)));
    FUZZ_CHECK(rec->body_len < sizeof(rec->body) && rec->body[rec->body_len] == '\0');
    FUZZ_CHECK(config_valid_session_name(rec->name));
    FUZZ_CHECK(want_name == NULL || strcmp(rec->name, want_name) == 0);
    FUZZ_CHECK(rec->status[0] != '\0');
    for (const char *p = rec->status; *p; p++)
        FUZZ_CHECK(isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_');
    FUZZ_CHECK(fuzz_json_is(rec->me_json, strlen(rec->me_json), json_type_object, true));
    FUZZ_CHECK(fuzz_json_is(rec->body, rec->body_len, json_type_object, false));
    obj = json_tokener_parse(rec->body);
    FUZZ_CHECK(fuzz_member_is(obj, "name", rec->name));
    FUZZ_CHECK(fuzz_member_is(obj, "status", rec->status));
    json_object_put(obj);
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
    int rc, count;

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
        rc = waha_parse_session("default", body, len, &records[0], why);
        FUZZ_CHECK(rc == 0 || rc == -1);
        if (rc == 0)
            check_record(&records[0], "default");
        else
            check_reason(why);
        break;
    case CALL_LIST:
        count = -1;
        rc = waha_parse_session_list(body, len, records, REGION_SESSION_MAX, &count, why);
        FUZZ_CHECK(rc == 0 || rc == -1);
        FUZZ_CHECK(count >= 0 && count <= REGION_SESSION_MAX);
        if (rc == 0) {
            for (int i = 0; i < count; i++)
                check_record(&records[i], NULL);
        } else {
            check_reason(why);
        }
        break;
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
