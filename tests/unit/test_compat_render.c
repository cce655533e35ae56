/*
 * test_compat_render.c - unit tests for server/worker/compat_render.c, the
 * region-free bytes of the compat paths: WAHA's error bodies (NestJS's
 * shapes), its QR gate's 422 objects, its boolean query values, a member
 * of a cached object, /api/server/status with its uptime brought up to
 * date, and the original backend's envelope, percentages and rates.
 *
 * Why: clients of WAHA and of the seed backend parse these bytes; a key
 * out of order, a number where a string was ("cacheHitRate":"99.50%"), a
 * '/' escaped or a statusCode missing breaks a client that worked against
 * the real thing. The expected texts are WAHA's (docs/waha-api.md 4, 5;
 * the simulator's copies of them) and the seed's (docs/seed-backend.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "compat_render.h"

static char out[4096];
static struct jbuf b;

static void reset(void)
{
    jbuf_init(&b, out, sizeof(out));
}

static void test_waha_errors(void **state)
{
    (void)state;
    reset();
    compat_waha_error(&b, 404, "Session not found", false);
    assert_string_equal(out, "{\"message\":\"Session not found\",\"error\":\"Not Found\","
                             "\"statusCode\":404}");
    reset();
    compat_waha_error(&b, 401, NULL, false);
    assert_string_equal(out, "{\"message\":\"Unauthorized\",\"statusCode\":401}");
    reset();
    compat_waha_error(&b, 403, NULL, false);
    assert_string_equal(out, "{\"message\":\"Forbidden\",\"statusCode\":403}");
    /* A validation failure's message is an array. */
    reset();
    compat_waha_error(&b, 400, "all must be a boolean value", true);
    assert_string_equal(out, "{\"message\":[\"all must be a boolean value\"],"
                             "\"error\":\"Bad Request\",\"statusCode\":400}");
    reset();
    compat_waha_error(&b, 422, "x", false);
    assert_string_equal(out, "{\"message\":\"x\",\"error\":\"Unprocessable Entity\","
                             "\"statusCode\":422}");
}

static void test_not_running(void **state)
{
    (void)state;
    reset();
    compat_not_running(&b, "sales.team");
    /* '/' as it is, the newline escaped: JSON.stringify's bytes. */
    assert_string_equal(out, "{\"message\":\"We didn't find a session with name "
                             "'sales.team'.\\nPlease start it first by using POST "
                             "/api/sessions/sales.team/start request\",\"error\":\"Not "
                             "Found\",\"statusCode\":404}");
}

static void test_qr_gate(void **state)
{
    (void)state;
    reset();
    compat_qr_gate(&b, "default", "WORKING");
    assert_string_equal(out, "{\"error\":\"Session status is not as expected. Try again "
                             "later or restart the session\",\"session\":\"default\","
                             "\"status\":\"WORKING\",\"expected\":[\"SCAN_QR_CODE\"]}");
    reset();
    compat_qr_gate(&b, "a\"b", NULL);
    assert_string_equal(out, "{\"error\":\"Session \\\"a\\\"b\\\" does not exist\","
                             "\"session\":\"a\\\"b\"}");
}

static void test_bool_param(void **state)
{
    static const char *const good[] = {"true", "True", "1", "false", "False", "0"};
    static const char *const bad[] = {"", "TRUE", "yes", "2", "true ", "tru"};
    bool v;

    (void)state;
    for (size_t i = 0; i < 6; i++) {
        v = i >= 3;
        assert_int_equal(compat_bool_param(good[i], &v), 0);
        assert_int_equal(v, i < 3);
    }
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(compat_bool_param(bad[i], &v), -1);
}

static void test_status_code(void **state)
{
    static const char core[] = "{\"message\":\"The feature is available only in Plus\","
                               "\"error\":\"Unprocessable Entity\",\"statusCode\":422}";
    static const char none[] = "{\"message\":\"x\"}";
    static const char text[] = "Cannot GET /health";
    static const char odd[] = "{\"statusCode\":\"422\"}";

    (void)state;
    assert_int_equal(compat_status_code(core, sizeof(core) - 1), 422);
    assert_int_equal(compat_status_code(none, sizeof(none) - 1), 0);
    assert_int_equal(compat_status_code(text, sizeof(text) - 1), 0);
    assert_int_equal(compat_status_code(odd, sizeof(odd) - 1), 0);
}

static void test_member(void **state)
{
    static const char item[] =
        "{\"name\":\"default\",\"status\":\"WORKING\",\"config\":{\"webhooks\":"
        "[{\"url\":\"http://h/x\"}]},\"me\":{\"id\":\"1@c.us\",\"pushName\":\"Caf\xc3\xa9/1\","
        "\"lid\":\"2@lid\"},\"presence\":null}";
    static const char no_me[] = "{\"name\":\"s\",\"me\":null}";
    static const char array[] = "[1]";

    (void)state;
    reset();
    assert_int_equal(compat_member(&b, item, sizeof(item) - 1, "me"), 1);
    /* UTF-8 and '/' as they were: WAHA's bytes. */
    assert_string_equal(out, "{\"id\":\"1@c.us\",\"pushName\":\"Caf\xc3\xa9/1\","
                             "\"lid\":\"2@lid\"}");
    reset();
    assert_int_equal(compat_member(&b, no_me, sizeof(no_me) - 1, "me"), 0);
    assert_int_equal(b.len, 0);
    reset();
    assert_int_equal(compat_member(&b, item, sizeof(item) - 1, "absent"), 0);
    reset();
    assert_int_equal(compat_member(&b, array, sizeof(array) - 1, "me"), -1);
    /* A member that does not fit is an error, not a cut body. */
    jbuf_init(&b, out, 8);
    assert_int_equal(compat_member(&b, item, sizeof(item) - 1, "me"), -1);
}

static void test_server_status(void **state)
{
    static const char body[] = "{\"startTimestamp\":1723788847247,\"uptime\":3600000,"
                               "\"worker\":{\"id\":\"\"}}";
    static const char no_uptime[] = "{\"startTimestamp\":1}";
    static const char odd[] = "{\"uptime\":\"x\"}";

    (void)state;
    reset();
    compat_server_status(&b, body, sizeof(body) - 1, 1234);
    assert_string_equal(out, "{\"startTimestamp\":1723788847247,\"uptime\":3601234,"
                             "\"worker\":{\"id\":\"\"}}");
    reset();
    compat_server_status(&b, body, sizeof(body) - 1, -5); /* never backwards */
    assert_string_equal(out, body);
    reset();
    compat_server_status(&b, no_uptime, sizeof(no_uptime) - 1, 10);
    assert_string_equal(out, no_uptime);
    reset();
    compat_server_status(&b, odd, sizeof(odd) - 1, 10);
    assert_string_equal(out, odd);
}

static void test_percent_and_rate(void **state)
{
    char text[32];

    (void)state;
    compat_percent(text, sizeof(text), 0, 0);
    assert_string_equal(text, "0%");
    compat_percent(text, sizeof(text), 4, 12);
    assert_string_equal(text, "33.33%");
    compat_percent(text, sizeof(text), 199, 200);
    assert_string_equal(text, "99.50%");
    compat_percent(text, sizeof(text), 5, 5);
    assert_string_equal(text, "100.00%");
    compat_per_minute(text, sizeof(text), 8, 600000);
    assert_string_equal(text, "0.80");
    compat_per_minute(text, sizeof(text), 8, 0);
    assert_string_equal(text, "0.00");
}

static void test_seed_stats(void **state)
{
    /* docs/seed-backend.md's example, key for key. */
    struct seed_stats s = {.requests = 12, .hits = 4, .misses = 8, .calls = 8, .errors = 0,
                           .started_real_ms = 1795945800000LL, .uptime_ms = 600000};

    (void)state;
    reset();
    compat_seed_stats(&b, &s);
    assert_string_equal(out, "{\"success\":true,\"data\":{\"totalRequests\":12,"
                             "\"cacheHits\":4,\"cacheMisses\":8,\"apiCalls\":8,\"errors\":0,"
                             "\"lastReset\":\"2026-11-29T09:50:00.000Z\",\"uptime\":600000,"
                             "\"cacheHitRate\":\"33.33%\","
                             "\"averageApiCallsPerMinute\":\"0.80\"}}");
}

static void test_seed_status(void **state)
{
    struct seed_status s = {.connected = true, .authenticated = true, .service = "WORKING",
                            .heartbeat_real_ms = 1795946400000LL, .now_real_ms = 1};

    (void)state;
    reset();
    compat_seed_status(&b, &s);
    assert_string_equal(
        out, "{\"success\":true,\"data\":{\"connected\":true,\"authenticated\":true,"
             "\"lastHeartbeat\":\"2026-11-29T10:00:00.000Z\",\"serviceStatus\":\"WORKING\","
             "\"isReady\":true,\"isClientReady\":true,\"qrAvailable\":false,"
             "\"timestamp\":\"2026-11-29T10:00:00.000Z\",\"monitoredKeywords\":[],"
             "\"serviceType\":\"waha\"}}");
    /* No data: everything false, "disconnected", the timestamp is now. */
    s = (struct seed_status){.service = "disconnected", .now_real_ms = 1795946400000LL};
    reset();
    compat_seed_status(&b, &s);
    assert_string_equal(
        out, "{\"success\":true,\"data\":{\"connected\":false,\"authenticated\":false,"
             "\"lastHeartbeat\":null,\"serviceStatus\":\"disconnected\",\"isReady\":false,"
             "\"isClientReady\":false,\"qrAvailable\":false,"
             "\"timestamp\":\"2026-11-29T10:00:00.000Z\",\"monitoredKeywords\":[],"
             "\"serviceType\":\"waha\"}}");
}

static void test_seed_qr_health_error(void **state)
{
    static const unsigned char png[] = {0x89, 'P', 'N', 'G'};

    (void)state;
    reset();
    compat_seed_qr(&b, png, sizeof(png));
    assert_string_equal(out, "{\"success\":true,\"data\":{\"qrCode\":\"data:image/png;base64,"
                             "iVBORw==\",\"message\":\"QR code generated successfully\"}}");
    assert_true(b.len < COMPAT_SEED_QR_SIZE(sizeof(png)));
    jbuf_init(&b, out, 40); /* too small: overflow, never a cut body */
    compat_seed_qr(&b, png, sizeof(png));
    assert_true(b.overflow);
    reset();
    compat_seed_health(&b, false, "/ping", 0, 1795946400000LL);
    assert_string_equal(out, "{\"success\":true,\"data\":{\"waha\":{\"healthy\":false,"
                             "\"details\":{\"endpoints\":[\"/ping\"],\"lastCheck\":null}},"
                             "\"timestamp\":\"2026-11-29T10:00:00.000Z\"}}");
    reset();
    compat_seed_error(&b, "Failed to get WhatsApp status");
    assert_string_equal(out, "{\"success\":false,\"error\":\"Failed to get WhatsApp status\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waha_errors),        cmocka_unit_test(test_not_running),
        cmocka_unit_test(test_qr_gate),            cmocka_unit_test(test_bool_param),
        cmocka_unit_test(test_status_code),        cmocka_unit_test(test_member),
        cmocka_unit_test(test_server_status),      cmocka_unit_test(test_percent_and_rate),
        cmocka_unit_test(test_seed_stats),         cmocka_unit_test(test_seed_status),
        cmocka_unit_test(test_seed_qr_health_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
