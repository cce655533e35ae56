/*
 * test_webhook.c - unit tests for common/waha.c: the X-Webhook-Hmac
 * check and the reading of WAHA's event envelopes.
 *
 * Why: POST /api/waha/webhook is the one endpoint through which anybody who
 * can reach the gateway changes what every client is told. With an
 * hmac_key set, a body that was not signed with it must be refused (401)
 * whatever the header looks like, and WAHA's own signature (hex
 * HMAC-SHA512 of the raw body, docs/waha-api.md 6.2, in either case of hex) must
 * be accepted. A session.status envelope (docs/waha-api.md 6.3) must yield
 * exactly the session, the status (an open set: PASSKEY_REQUIRED came in
 * 2026.7.1), "me", the timestamp that orders events, and the digest of the
 * id used to drop WAHA's retried deliveries (the first 16 bytes of the
 * SHA-256 of the id's JSON text, so ids of any length and type are told
 * apart); other events, and events of a session whose name the region
 * cannot hold, are valid but ignored (202), and anything that is not such
 * an envelope is refused with a reason (400) before it can reach the
 * region.
 *
 * The HMAC test vector is the one the WAHA docs give (body
 * {"event":"message","session":"default","engine":"WEBJS"}, key
 * my-secret-key); its full value was computed with
 *   printf '%s' BODY | openssl dgst -sha512 -hmac my-secret-key
 * and matches the documented 208f8a55...3fa89. The other digests were
 * computed with Python's hmac module, the id digests with
 *   hashlib.sha256(b'"evt_2"').digest()[:16]
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waha.h"

/*========================================================================
 * waha_signature_ok
 */

static const char vector_body[] = "{\"event\":\"message\",\"session\":\"default\","
                                  "\"engine\":\"WEBJS\"}";
static const char vector_key[] = "my-secret-key";
static const char vector_hmac[] =
    "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8"
    "097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89";
/* HMAC-SHA512 of vector_body under the empty key. */
static const char empty_key_hmac[] =
    "5f83a5241e826b34925f7378907c0dcb4ca910c991f80c27935190d199e4a659"
    "9c1e94d2ca8ae6d4db3d31bd768bbbd698ae70c220ec8fc2c2dc6d5b94cf2d72";
/* HMAC-SHA512 of the empty body under my-secret-key. */
static const char empty_body_hmac[] =
    "7954cba6521b397f8a1c3285906472ded6d240c2dc65dd714a64fc0800f9ce13"
    "dcfbdbd867c38fca5f0ed74cf5ec045798a99db81bda0d27dba5a81e7827cb6e";
/* HMAC-SHA512 under my-secret-key of the 12 bytes {"a":1}\0tail ... */
static const char nul_body_hmac[] =
    "8d50d3523ef570a205989a8d2bf5cd6eb7d59afe8df2f8282a59db2e8fa06997"
    "5730ba2d25c46265fff50c40c55beedfc46b2af57d8637095007a296e66846e7";
/* ... and of the first 7 of them, {"a":1}. */
static const char nul_prefix_hmac[] =
    "7ce7625a44ac89cdd7d93c5bd146f2bc41eb0c8e15fb7123c80165668a38b1fb"
    "3727af931ed91664385e5c91105ab824b20cdbf366c4f4a18193aa7a16d49d07";

static bool vector_ok(const char *header)
{
    return waha_signature_ok(vector_key, vector_body, strlen(vector_body), header);
}

static void test_hmac_vector(void **state)
{
    (void)state;
    assert_int_equal(strlen(vector_hmac), 128);
    assert_int_equal(strncmp(vector_hmac, "208f8a55", 8), 0);
    assert_string_equal(vector_hmac + 128 - 5, "3fa89");
    assert_true(vector_ok(vector_hmac));
}

static void test_hmac_hex_case(void **state)
{
    char upper[129], mixed[129];

    (void)state;
    for (int i = 0; i < 129; i++) {
        upper[i] = (char)toupper((unsigned char)vector_hmac[i]);
        mixed[i] = i % 2 ? upper[i] : vector_hmac[i];
    }
    assert_true(vector_ok(upper));
    assert_true(vector_ok(mixed));
}

static void test_hmac_wrong_key(void **state)
{
    size_t len = strlen(vector_body);

    (void)state;
    assert_false(waha_signature_ok("my-secret-kez", vector_body, len, vector_hmac));
    assert_false(waha_signature_ok("my-secret-key ", vector_body, len, vector_hmac));
    assert_false(waha_signature_ok("my-secret-ke", vector_body, len, vector_hmac));
    assert_false(waha_signature_ok("MY-SECRET-KEY", vector_body, len, vector_hmac));
    assert_false(waha_signature_ok(NULL, vector_body, len, vector_hmac));
}

static void test_hmac_body_changed(void **state)
{
    char body[sizeof(vector_body)];
    size_t len = strlen(vector_body);

    (void)state;
    /* One flipped bit anywhere in the body. */
    for (size_t i = 0; i < len; i++) {
        memcpy(body, vector_body, sizeof(body));
        body[i] ^= 0x01;
        if (waha_signature_ok(vector_key, body, len, vector_hmac))
            fail_msg("byte %zu flipped and still accepted", i);
    }
    /* Only LEN bytes are signed: one byte fewer or more does not match. */
    assert_false(waha_signature_ok(vector_key, vector_body, len - 1, vector_hmac));
    assert_false(waha_signature_ok(vector_key, vector_body, len + 1, vector_hmac));
    /* A body signed for another one. */
    assert_false(waha_signature_ok(vector_key, "", 0, vector_hmac));
}

static void test_hmac_uses_len_not_strlen(void **state)
{
    static const char body[] = "{\"a\":1}\0tail";
    size_t len = sizeof(body) - 1; /* 12 bytes, a NUL inside */

    (void)state;
    assert_int_equal(len, 12);
    assert_true(waha_signature_ok(vector_key, body, len, nul_body_hmac));
    assert_false(waha_signature_ok(vector_key, body, len, nul_prefix_hmac));
    assert_true(waha_signature_ok(vector_key, body, 7, nul_prefix_hmac));
    assert_false(waha_signature_ok(vector_key, body, 7, nul_body_hmac));
}

static void test_hmac_empty_body(void **state)
{
    (void)state;
    assert_true(waha_signature_ok(vector_key, "", 0, empty_body_hmac));
    assert_false(waha_signature_ok(vector_key, "", 0, vector_hmac));
}

static void test_hmac_malformed_header(void **state)
{
    char h[300];

    (void)state;
    assert_false(vector_ok(NULL));
    assert_false(vector_ok(""));

    /* Truncated: one, two and 64 hex digits fewer. */
    for (size_t cut = 1; cut <= 64; cut++) {
        snprintf(h, sizeof(h), "%.*s", (int)(128 - cut), vector_hmac);
        if (vector_ok(h))
            fail_msg("header cut by %zu accepted", cut);
    }
    /* Too long: a digit, a newline, a blank, a second digest. */
    snprintf(h, sizeof(h), "%s0", vector_hmac);
    assert_false(vector_ok(h));
    snprintf(h, sizeof(h), "%s\n", vector_hmac);
    assert_false(vector_ok(h));
    snprintf(h, sizeof(h), "%s ", vector_hmac);
    assert_false(vector_ok(h));
    snprintf(h, sizeof(h), " %s", vector_hmac);
    assert_false(vector_ok(h));
    snprintf(h, sizeof(h), "%s%s", vector_hmac, vector_hmac);
    assert_false(vector_ok(h));
    /* Prefixes WAHA does not send. */
    snprintf(h, sizeof(h), "sha512=%s", vector_hmac);
    assert_false(vector_ok(h));
    snprintf(h, sizeof(h), "0x%.126s", vector_hmac);
    assert_false(vector_ok(h));

    /* Right length, one character that is not hex, at every position. */
    for (size_t i = 0; i < 128; i++) {
        static const char bad[] = {'g', 'G', 'x', ' ', '-', ':', '/', '@', '\x80'};
        for (size_t b = 0; b < sizeof(bad); b++) {
            memcpy(h, vector_hmac, 129);
            h[i] = bad[b];
            if (vector_ok(h))
                fail_msg("non-hex 0x%02x at %zu accepted", (unsigned char)bad[b], i);
        }
    }
    /* Right length and hex, wrong digest: each digit changed in turn. */
    for (size_t i = 0; i < 128; i++) {
        memcpy(h, vector_hmac, 129);
        h[i] = h[i] == '0' ? '1' : '0';
        if (vector_ok(h))
            fail_msg("digit %zu changed and still accepted", i);
    }
    memset(h, '0', 128);
    h[128] = '\0';
    assert_false(vector_ok(h));
}

static void test_hmac_empty_key(void **state)
{
    size_t len = strlen(vector_body);

    (void)state;
    /*
     * The function does not treat "" as "no check": it is a key of zero
     * bytes, so only the HMAC under the empty key is accepted, and a missing
     * header is still refused. Turning the check off when
     * webhook.hmac_key is empty is the caller's choice (routes.c skips the
     * call then).
     */
    assert_true(waha_signature_ok("", vector_body, len, empty_key_hmac));
    assert_false(waha_signature_ok("", vector_body, len, vector_hmac));
    assert_false(waha_signature_ok("", vector_body, len, NULL));
    assert_false(waha_signature_ok("", vector_body, len, ""));
}

/*========================================================================
 * webhook_parse
 */

static struct waha_event ev;
static char why[REGION_ERROR_MAX];
static char buf[8192];

/* Parse TEXT with a NUL after it, as the HTTP layer keeps one. */
static enum waha_event_kind parse(const char *text)
{
    size_t len = strlen(text);

    assert_true(len < sizeof(buf));
    memcpy(buf, text, len + 1);
    memset(&ev, 0x5A, sizeof(ev)); /* webhook_parse must clear it */
    memset(why, 0, sizeof(why));
    return waha_parse_event(buf, len, &ev, why);
}

static void expect_bad(const char *text, const char *reason_part)
{
    enum waha_event_kind r = parse(text);

    if (r != WAHA_EVENT_BAD)
        fail_msg("accepted (%d): %s", (int)r, text);
    if (why[0] == '\0')
        fail_msg("no reason for: %s", text);
    if (reason_part != NULL && strstr(why, reason_part) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\" for: %s", why, reason_part, text);
}

static const uint8_t no_digest[REGION_DIGEST_LEN];
/* SHA-256 of "evt_01jz8m3k5q7r9t1v3x5z7b9d1f" (quotes included), of "evt_2",
 * and of the number 123, cut to REGION_DIGEST_LEN bytes. */
static const uint8_t digest_real[REGION_DIGEST_LEN] = {0xbf, 0x3c, 0x12, 0x04, 0x97, 0xa4,
                                                       0x60, 0x28, 0x95, 0x1c, 0xca, 0xa9,
                                                       0x43, 0x7c, 0x5d, 0x18};
static const uint8_t digest_evt_2[REGION_DIGEST_LEN] = {
    0x41, 0xdc, 0xd4, 0x29, 0x04, 0xf9, 0xa4, 0x21,
    0xd2, 0xf6, 0x68, 0x05, 0x11, 0xab, 0x9a, 0xf3};
static const uint8_t digest_123[REGION_DIGEST_LEN] = {0xa6, 0x65, 0xa4, 0x59, 0x20, 0x42,
                                                      0x2f, 0x9d, 0x41, 0x7e, 0x48, 0x67,
                                                      0xef, 0xdc, 0x4f, 0xb8};

/* A session.status envelope, as WAHA sends it (docs/waha-api.md 6.3). */
static const char real_status[] =
    "{\"id\":\"evt_01jz8m3k5q7r9t1v3x5z7b9d1f\",\"timestamp\":1741249702485,"
    "\"event\":\"session.status\",\"session\":\"default\","
    "\"metadata\":{\"user.id\":\"123\"},"
    "\"me\":{\"id\":\"7911111@c.us\",\"pushName\":\"~\"},"
    "\"payload\":{\"name\":\"default\",\"status\":\"WORKING\",\"statuses\":["
    "{\"status\":\"STOPPED\",\"timestamp\":1741249700000},"
    "{\"status\":\"STARTING\",\"timestamp\":1741249701000},"
    "{\"status\":\"WORKING\",\"timestamp\":1741249702485}],\"data\":null},"
    "\"engine\":\"WEBJS\","
    "\"environment\":{\"version\":\"2026.2.1\",\"engine\":\"WEBJS\",\"tier\":\"CORE\","
    "\"browser\":null,\"platform\":\"linux/x64\",\"worker\":{\"id\":null}}}";

/* An envelope with a chosen session, status and "me" member (or none). */
static const char *envelope(const char *session, const char *status, const char *me)
{
    static char text[4096];

    snprintf(text, sizeof(text),
             "{\"id\":\"evt_1\",\"timestamp\":1700000000000,\"event\":\"session.status\","
             "\"session\":\"%s\"%s%s,\"payload\":{\"name\":\"%s\",\"status\":\"%s\"},"
             "\"engine\":\"NOWEB\"}",
             session, me ? ",\"me\":" : "", me ? me : "", session, status);
    return text;
}

static void test_parse_real_status(void **state)
{
    (void)state;
    assert_int_equal(parse(real_status), WAHA_EVENT_STATUS);
    assert_memory_equal(ev.id_digest, digest_real, REGION_DIGEST_LEN);
    assert_string_equal(ev.event, "session.status");
    assert_string_equal(ev.session, "default");
    assert_string_equal(ev.status, "WORKING");
    assert_string_equal(ev.me_json, "{\"id\":\"7911111@c.us\",\"pushName\":\"~\"}");
    assert_true(ev.has_me);
    assert_true(ev.timestamp_ms == 1741249702485LL);
}

static void test_parse_pretty_printed(void **state)
{
    (void)state;
    assert_int_equal(parse("\n  {\n \"event\" : \"session.status\",\r\n"
                           "  \"session\":\"s-1_A\",\t\"payload\" : { \"status\" : "
                           "\"SCAN_QR_CODE\" } ,\"me\":null}\n\n  "),
                     WAHA_EVENT_STATUS);
    assert_string_equal(ev.session, "s-1_A");
    assert_string_equal(ev.status, "SCAN_QR_CODE");
    assert_memory_equal(ev.id_digest, no_digest, REGION_DIGEST_LEN); /* no id */
    assert_true(ev.timestamp_ms == 0);
}

static void test_parse_me_variants(void **state)
{
    (void)state;
    /* me null: the session is not authenticated; that is news too. */
    assert_int_equal(parse(envelope("default", "STARTING", "null")), WAHA_EVENT_STATUS);
    assert_true(ev.has_me);
    assert_string_equal(ev.me_json, "null");

    /* me absent: nothing is known about it. */
    assert_int_equal(parse(envelope("default", "STARTING", NULL)), WAHA_EVENT_STATUS);
    assert_false(ev.has_me);

    /* NOWEB/GOWS extras are dropped; a missing pushName is null. */
    assert_int_equal(
        parse(envelope("default", "WORKING",
                       "{\"id\":\"1@c.us\",\"pushName\":\"Shop\","
                       "\"lid\":\"123@lid\",\"jid\":\"1:12@s.whatsapp.net\"}")),
        WAHA_EVENT_STATUS);
    assert_true(ev.has_me);
    assert_string_equal(ev.me_json, "{\"id\":\"1@c.us\",\"pushName\":\"Shop\"}");
    assert_int_equal(parse(envelope("default", "WORKING", "{\"id\":\"1@c.us\"}")),
                     WAHA_EVENT_STATUS);
    assert_string_equal(ev.me_json, "{\"id\":\"1@c.us\",\"pushName\":null}");

    /* A "me" that is not MeInfo is not used, but the status still is. */
    assert_int_equal(parse(envelope("default", "WORKING", "{\"pushName\":\"x\"}")),
                     WAHA_EVENT_STATUS);
    assert_false(ev.has_me);
    assert_string_equal(ev.status, "WORKING");
    assert_int_equal(parse(envelope("default", "WORKING", "\"1@c.us\"")),
                     WAHA_EVENT_STATUS);
    assert_false(ev.has_me);
    assert_int_equal(parse(envelope("default", "WORKING", "{\"id\":42}")),
                     WAHA_EVENT_STATUS);
    assert_false(ev.has_me);
}

static void test_parse_me_too_long(void **state)
{
    static char me[REGION_ME_MAX + 64];
    int n;

    (void)state;
    n = snprintf(me, sizeof(me), "{\"id\":\"1@c.us\",\"pushName\":\"");
    memset(me + n, 'p', REGION_ME_MAX);
    snprintf(me + n + REGION_ME_MAX, sizeof(me) - (size_t)n - REGION_ME_MAX, "\"}");
    /* It does not fit me_json: not used, the status is. */
    assert_int_equal(parse(envelope("default", "WORKING", me)), WAHA_EVENT_STATUS);
    assert_false(ev.has_me);
    assert_string_equal(ev.status, "WORKING");
}

static void test_parse_other_events_ignored(void **state)
{
    static const char *const events[] = {"message",
                                         "message.any",
                                         "state.change",
                                         "engine.event",
                                         "session.status.x",
                                         "Session.Status",
                                         ""};
    char text[512];

    (void)state;
    assert_int_equal(parse(vector_body), WAHA_EVENT_IGNORED);
    assert_string_equal(ev.event, "message");
    /* Was "default": the session is copied only for a session.status the
     * region can hold now (nothing reads it for an ignored event). */
    assert_string_equal(ev.session, "");

    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"id\":\"evt_2\",\"timestamp\":5,\"event\":\"%s\",\"session\":"
                 "\"default\",\"payload\":{\"status\":\"WORKING\"}}",
                 events[i]);
        if (parse(text) != WAHA_EVENT_IGNORED)
            fail_msg("event \"%s\" not ignored", events[i]);
        assert_string_equal(ev.event, events[i]);
        assert_memory_equal(ev.id_digest, digest_evt_2, REGION_DIGEST_LEN);
        assert_true(ev.timestamp_ms == 5);
        /* Nothing of a session.status is filled in. */
        assert_string_equal(ev.status, "");
        assert_false(ev.has_me);
    }
    /* An ignored event needs no payload at all. */
    assert_int_equal(parse("{\"event\":\"message\",\"session\":\"default\"}"),
                     WAHA_EVENT_IGNORED);
}

static void test_parse_open_set_statuses(void **state)
{
    static const char *const statuses[] = {
        "STOPPED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED", "PASSKEY_REQUIRED",
        "PASSKEY_CONFIRMATION_REQUIRED", "NEW_STATUS_2027", "X",
        /* REGION_STATUS_MAX - 1 = 39 characters */
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789_A"};

    (void)state;
    assert_int_equal(strlen(statuses[9]), REGION_STATUS_MAX - 1);
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (parse(envelope("default", statuses[i], NULL)) != WAHA_EVENT_STATUS)
            fail_msg("status %s refused: %s", statuses[i], why);
        assert_string_equal(ev.status, statuses[i]);
    }
}

static void test_parse_bad_statuses(void **state)
{
    (void)state;
    expect_bad(envelope("default", "working", NULL), "payload.status");
    expect_bad(envelope("default", "Working", NULL), "payload.status");
    expect_bad(envelope("default", "SCAN QR", NULL), "payload.status");
    expect_bad(envelope("default", " WORKING", NULL), "payload.status");
    expect_bad(envelope("default", "WORKING\\n", NULL), "payload.status");
    expect_bad(envelope("default", "WORK-ING", NULL), "payload.status");
    expect_bad(envelope("default", "", NULL), "payload.status");
    /* REGION_STATUS_MAX characters: does not fit. */
    expect_bad(envelope("default", "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789_AB", NULL),
               "payload.status");
    /* Not a string, or no payload.status at all. */
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\","
               "\"payload\":{\"status\":1}}",
               "payload.status");
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\","
               "\"payload\":{\"status\":null}}",
               "payload.status");
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\","
               "\"payload\":{\"name\":\"default\"}}",
               "payload.status");
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\"}",
               "payload.status");
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\","
               "\"payload\":\"WORKING\"}",
               "payload.status");
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\",\"status\":"
               "\"WORKING\"}",
               "payload.status");
}

static void test_parse_missing_event_or_session(void **state)
{
    (void)state;
    expect_bad("{\"session\":\"default\",\"payload\":{\"status\":\"WORKING\"}}",
               "envelope");
    expect_bad("{\"event\":\"session.status\",\"payload\":{\"status\":\"WORKING\"}}",
               "envelope");
    expect_bad("{\"event\":null,\"session\":\"default\"}", "envelope");
    expect_bad("{\"event\":\"session.status\",\"session\":7,"
               "\"payload\":{\"status\":\"WORKING\"}}",
               "envelope");
    expect_bad("{\"event\":[\"session.status\"],\"session\":\"default\"}", "envelope");
    expect_bad("{}", "envelope");
}

/*
 * Was test_parse_bad_session_name: names outside WAHA's ^[a-zA-Z0-9_-]{1,54}$
 * were refused (400). WAHA holds such names (docs/waha-api.md 9), so they are
 * applied now; a name the region cannot hold (empty, 64 bytes or more) is
 * not WAHA's error: its events are acknowledged and ignored, never refused
 * (WAHA would retry a refused delivery 15 times).
 */
static void test_parse_unusual_session_names(void **state)
{
    static const char *const names[] = {"my session", "a.b",        "caf\xc3\xa9",
                                        "../x",       "sales.team", "\xe6\x97\xa5"};
    char name[80];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (parse(envelope(names[i], "WORKING", NULL)) != WAHA_EVENT_STATUS)
            fail_msg("\"%s\" not applied: %s", names[i], why);
        assert_string_equal(ev.session, names[i]);
        assert_string_equal(ev.status, "WORKING");
    }
    /* 55 to 63 bytes: applied (WAHA's 54 is not the region's limit). */
    memset(name, 'n', 63);
    name[63] = '\0';
    assert_int_equal(parse(envelope(name, "WORKING", NULL)), WAHA_EVENT_STATUS);
    assert_string_equal(ev.session, name);
    name[55] = '\0';
    assert_int_equal(parse(envelope(name, "WORKING", NULL)), WAHA_EVENT_STATUS);
    assert_string_equal(ev.session, name);
    /* 64 bytes, and the empty name: ignored, nothing to apply. */
    memset(name, 'n', 64);
    name[64] = '\0';
    assert_int_equal(parse(envelope(name, "WORKING", NULL)), WAHA_EVENT_IGNORED);
    assert_string_equal(ev.session, "");
    assert_string_equal(ev.status, "");
    assert_int_equal(parse(envelope("", "WORKING", NULL)), WAHA_EVENT_IGNORED);
    assert_string_equal(ev.session, "");
    /* Even with a status that would be refused: the name decides first. */
    assert_int_equal(parse(envelope(name, "bad status", NULL)), WAHA_EVENT_IGNORED);
}

static void test_parse_event_name_too_long(void **state)
{
    char text[256], event[WAHA_EVENT_NAME_MAX + 1];

    (void)state;
    memset(event, 'e', WAHA_EVENT_NAME_MAX);
    event[WAHA_EVENT_NAME_MAX] = '\0';
    snprintf(text, sizeof(text), "{\"event\":\"%s\",\"session\":\"default\"}", event);
    expect_bad(text, "event name");
    event[WAHA_EVENT_NAME_MAX - 1] = '\0';
    snprintf(text, sizeof(text), "{\"event\":\"%s\",\"session\":\"default\"}", event);
    assert_int_equal(parse(text), WAHA_EVENT_IGNORED);
    assert_string_equal(ev.event, event);
}

static void test_parse_not_an_envelope(void **state)
{
    (void)state;
    expect_bad("", "not JSON");
    expect_bad("   ", NULL);
    expect_bad("event=session.status&session=default", "not JSON");
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\"", "not JSON");
    expect_bad("null", NULL);
    expect_bad("true", "envelope");
    expect_bad("42", "envelope");
    expect_bad("\"session.status\"", "envelope");
    /* A JSON array, even of envelopes. */
    expect_bad("[]", "envelope");
    {
        char text[2048];
        snprintf(text, sizeof(text), "[%s]", real_status);
        expect_bad(text, "envelope");
    }
    /* Strict mode: no comments, no trailing commas. */
    expect_bad("{\"event\":\"session.status\",\"session\":\"default\","
               "\"payload\":{\"status\":\"WORKING\"},}",
               NULL);
    expect_bad("/* hi */{\"event\":\"message\",\"session\":\"default\"}", NULL);
}

static void test_parse_trailing_garbage(void **state)
{
    char text[2048];

    (void)state;
    snprintf(text, sizeof(text), "%s x", real_status);
    expect_bad(text, NULL);
    snprintf(text, sizeof(text), "%s%s", real_status, real_status);
    expect_bad(text, NULL);
    snprintf(text, sizeof(text), "%s}", real_status);
    expect_bad(text, NULL);
    /* Trailing blanks are fine. */
    snprintf(text, sizeof(text), "%s \r\n\t", real_status);
    assert_int_equal(parse(text), WAHA_EVENT_STATUS);
}

static void test_parse_reads_only_len_bytes(void **state)
{
    char text[2048];
    size_t len = strlen(real_status);

    (void)state;
    /* Garbage right after LEN bytes (no NUL there) is not part of the body. */
    snprintf(text, sizeof(text), "%s{{{garbage", real_status);
    memset(&ev, 0, sizeof(ev));
    assert_int_equal(waha_parse_event(text, len, &ev, why), WAHA_EVENT_STATUS);
    assert_string_equal(ev.status, "WORKING");
    /* And a body cut short is refused. */
    assert_int_equal(waha_parse_event(text, len - 1, &ev, why), WAHA_EVENT_BAD);
    assert_true(why[0] != '\0');
}

static void test_parse_deep_nesting(void **state)
{
    char text[4096];
    int n;

    (void)state;
    /* 40 levels inside the payload: beyond JSON_MAX_DEPTH (32). */
    n = snprintf(text, sizeof(text),
                 "{\"event\":\"session.status\",\"session\":\"default\","
                 "\"payload\":{\"status\":\"WORKING\",\"x\":");
    for (int i = 0; i < 40; i++)
        text[n++] = '[';
    for (int i = 0; i < 40; i++)
        text[n++] = ']';
    snprintf(text + n, sizeof(text) - (size_t)n, "}}");
    expect_bad(text, NULL);

    /* 10 levels are fine. */
    n = snprintf(text, sizeof(text),
                 "{\"event\":\"session.status\",\"session\":\"default\","
                 "\"payload\":{\"status\":\"WORKING\",\"x\":");
    for (int i = 0; i < 10; i++)
        text[n++] = '[';
    for (int i = 0; i < 10; i++)
        text[n++] = ']';
    snprintf(text + n, sizeof(text) - (size_t)n, "}}");
    assert_int_equal(parse(text), WAHA_EVENT_STATUS);

    /* Very deep, on its own. */
    memset(text, '[', 3000);
    text[3000] = '\0';
    expect_bad(text, NULL);
}

/* The id digest of an envelope with the JSON value ID (text) as its id. */
static void digest_of(const char *id, uint8_t out[REGION_DIGEST_LEN])
{
    char *text = malloc(strlen(id) + 256);

    assert_non_null(text);
    sprintf(text,
            "{\"id\":%s,\"event\":\"session.status\",\"session\":\"default\","
            "\"payload\":{\"status\":\"FAILED\"}}",
            id);
    assert_int_equal(parse(text), WAHA_EVENT_STATUS);
    assert_string_equal(ev.status, "FAILED");
    memcpy(out, ev.id_digest, REGION_DIGEST_LEN);
    free(text);
}

/*
 * Was: an id of WAHA_EVENT_ID_MAX (64) characters or more, or one that is
 * not a string, was no id at all (never a duplicate). The id is now
 * digested whatever its length and type, so every retried delivery is
 * recognised; only a missing or null id (WAHA before 2024-11) has none.
 */
static void test_parse_ids(void **state)
{
    static uint8_t d[8][REGION_DIGEST_LEN];
    char *id = malloc(2000);

    (void)state;
    assert_non_null(id);
    digest_of("\"evt_2\"", d[0]);
    assert_memory_equal(d[0], digest_evt_2, REGION_DIGEST_LEN);
    digest_of("123", d[1]);
    assert_memory_equal(d[1], digest_123, REGION_DIGEST_LEN);
    /* The string "123" is another id than the number 123. */
    digest_of("\"123\"", d[2]);
    assert_memory_not_equal(d[2], d[1], REGION_DIGEST_LEN);

    /* 63, 64 and 1000 characters; and a 1000-character id with its last
     * character changed: all digested, all different. */
    id[0] = '"';
    memset(id + 1, 'i', 63);
    strcpy(id + 64, "\"");
    digest_of(id, d[3]);
    memset(id + 1, 'i', 64);
    strcpy(id + 65, "\"");
    digest_of(id, d[4]);
    memset(id + 1, 'i', 1000);
    strcpy(id + 1001, "\"");
    digest_of(id, d[5]);
    id[1000] = 'j';
    digest_of(id, d[6]);
    for (int a = 0; a < 7; a++) {
        assert_memory_not_equal(d[a], no_digest, REGION_DIGEST_LEN);
        for (int b = a + 1; b < 7; b++)
            if (memcmp(d[a], d[b], REGION_DIGEST_LEN) == 0)
                fail_msg("ids %d and %d have the same digest", a, b);
    }
    /* The same id in another envelope (a retry of the delivery, or another
     * member order): the same digest. */
    assert_int_equal(parse("{\"session\":\"default\",\"payload\":{\"status\":"
                           "\"WORKING\"},\"event\":\"session.status\",\"id\":\"evt_2\"}"),
                     WAHA_EVENT_STATUS);
    assert_memory_equal(ev.id_digest, digest_evt_2, REGION_DIGEST_LEN);
    /* Objects and arrays are ids too. */
    digest_of("{\"a\":1}", d[7]);
    assert_memory_not_equal(d[7], no_digest, REGION_DIGEST_LEN);

    /* null and no id: no digest (never a duplicate, region_event_seen()). */
    digest_of("null", d[7]);
    assert_memory_equal(d[7], no_digest, REGION_DIGEST_LEN);
    free(id);
}

/*
 * An empty id identifies nothing: like a missing one, it has no digest.
 * (The id before issue 16 was "" for it, never a duplicate; digesting ""
 * made every later envelope with "id":"" a duplicate of the first, so a
 * sender that fills the member with "" had all its status changes but the
 * first dropped.)
 */
static void test_parse_empty_id_is_no_id(void **state)
{
    uint8_t d[REGION_DIGEST_LEN];

    (void)state;
    digest_of("\"\"", d);
    assert_memory_equal(d, no_digest, REGION_DIGEST_LEN);
}

static void test_parse_timestamps(void **state)
{
    (void)state;
    assert_int_equal(parse("{\"timestamp\":\"1741249702485\",\"event\":\"message\","
                           "\"session\":\"default\"}"),
                     WAHA_EVENT_IGNORED);
    assert_true(ev.timestamp_ms == 0);
    assert_int_equal(parse("{\"timestamp\":1741249702485.5,\"event\":\"message\","
                           "\"session\":\"default\"}"),
                     WAHA_EVENT_IGNORED);
    assert_true(ev.timestamp_ms == 0);
    assert_int_equal(parse("{\"timestamp\":null,\"event\":\"message\","
                           "\"session\":\"default\"}"),
                     WAHA_EVENT_IGNORED);
    assert_true(ev.timestamp_ms == 0);
}

static void test_parse_clears_event(void **state)
{
    (void)state;
    /* A refused body leaves no stale fields from earlier parses. */
    assert_int_equal(parse(real_status), WAHA_EVENT_STATUS);
    memset(why, 0, sizeof(why));
    assert_int_equal(waha_parse_event("{\"x\":1}", 7, &ev, why), WAHA_EVENT_BAD);
    assert_memory_equal(ev.id_digest, no_digest, REGION_DIGEST_LEN);
    assert_true(ev.timestamp_ms == 0);
    assert_string_equal(ev.session, "");
    assert_string_equal(ev.status, "");
    assert_false(ev.has_me);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_vector),
        cmocka_unit_test(test_hmac_hex_case),
        cmocka_unit_test(test_hmac_wrong_key),
        cmocka_unit_test(test_hmac_body_changed),
        cmocka_unit_test(test_hmac_uses_len_not_strlen),
        cmocka_unit_test(test_hmac_empty_body),
        cmocka_unit_test(test_hmac_malformed_header),
        cmocka_unit_test(test_hmac_empty_key),
        cmocka_unit_test(test_parse_real_status),
        cmocka_unit_test(test_parse_pretty_printed),
        cmocka_unit_test(test_parse_me_variants),
        cmocka_unit_test(test_parse_me_too_long),
        cmocka_unit_test(test_parse_other_events_ignored),
        cmocka_unit_test(test_parse_open_set_statuses),
        cmocka_unit_test(test_parse_bad_statuses),
        cmocka_unit_test(test_parse_missing_event_or_session),
        cmocka_unit_test(test_parse_unusual_session_names),
        cmocka_unit_test(test_parse_event_name_too_long),
        cmocka_unit_test(test_parse_not_an_envelope),
        cmocka_unit_test(test_parse_trailing_garbage),
        cmocka_unit_test(test_parse_reads_only_len_bytes),
        cmocka_unit_test(test_parse_deep_nesting),
        cmocka_unit_test(test_parse_ids),
        cmocka_unit_test(test_parse_empty_id_is_no_id),
        cmocka_unit_test(test_parse_timestamps),
        cmocka_unit_test(test_parse_clears_event),
    };

    return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
