/*
 * events.c - one WebSocket to WAHA's /ws, kept up, for session.status push.
 *
 * DESIGN
 * What WAHA does (WAHA 2024.10.8 src/core/api/websocket.gateway.core.ts and
 * src/nestjs/ws/WebsocketHeartbeatJob.ts; 2026: src/api/websocket.gateway.core.ts
 * and src/core/auth/WebSocketAuth.ts; shared/waha-api.md 6.4 and 9): plain
 * RFC 6455 at /ws, filtered by ?session= and ?events=, the key in
 * ?x-api-key=; a bad key is upgraded and then closed with 1008
 * "Unauthorized"; every event is one text frame holding the webhook
 * envelope; the server pings every 60 s (10 s in 2024.10) and drops a client
 * that did not pong. 2024.10 accepts only session=* (else close 4001) and
 * events=* or session.status; we ask for exactly session=* and
 * events=session.status, which every version takes. A WAHA without /ws
 * answers the upgrade with Express's 404, whose body echoes the URL, key
 * included: no answer body is ever logged or kept.
 *
 * Layers. libevent bufferevents carry the bytes (bufferevent_openssl for
 * wss://, with the peer's certificate and host name verified); the HTTP/1.1
 * upgrade is written and checked here (head bounded to EVENTS_HEAD_MAX,
 * Sec-WebSocket-Accept checked); after the 101 libwslay does all the
 * framing: its recv/send callbacks read and write the bufferevent's
 * evbuffers, it masks our frames, reassembles and bounds messages
 * (wslay_event_config_set_max_recv_msg_length), checks UTF-8 and answers
 * pings and close frames. Host names are resolved with evdns (never a
 * blocking getaddrinfo in the fetcher's loop) and each address is tried in
 * turn within the attempt's time limit.
 *
 * One timer drives everything, by phase: IDLE, the next attempt;
 * RESOLVING/CONNECTING/HANDSHAKE and an OPEN link not yet confirmed, the
 * attempt's deadline (connect_timeout_ms); a confirmed OPEN link, the next
 * of our ping and the silence deadline. A link is "connected" only once
 * WAHA sent a frame after the 101 (we ping at once, so its pong does it):
 * a WAHA that upgrades and then closes with 1008 is never reported as
 * connected, and a refused key costs one log line, not two per attempt.
 *
 * Retries: "equal jitter" exponential backoff, half the delay fixed and
 * half random: delay = cap/2 + random(0..cap/2), cap = backoff_first_ms
 * doubling per failure up to backoff_max_ms, so a retry never comes sooner
 * than half its step (full jitter could retry at once after a drop). The
 * doubling restarts only after a link that stayed connected at least
 * backoff_max_ms, so a WAHA that accepts and drops at once is not hit
 * every second. A refusal (HTTP 401, 403, 404; close 1008, or 2024.10's
 * 4001) is not a failure to retry soon: it waits exactly backoff_max_ms,
 * every time, until something else happens.
 *
 * Reporting: state and reason are reported (callback and one log line)
 * only when the pair changes, so a WAHA that stays down or keeps refusing
 * is logged once. Reasons are our own words plus numbers (status codes,
 * errno, close codes); a close reason from WAHA is printable ASCII only and
 * withheld if it contains the key. The key exists only in ev.api_key and
 * in the request target, never in a reason or a log line.
 *
 * Bounds: response head EVENTS_HEAD_MAX, message opt.max_message (one
 * buffer of that size), input buffer EVENTS_IN_MAX (bufferevent
 * watermark), output EVENTS_OUT_MAX bytes and EVENTS_QUEUE_MAX frames
 * (only pings, pongs and a close are ever queued: past that WAHA does not
 * read and the link is dropped).
 */
#include "events.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <wslay/wslay.h>

#include "log.h"
#include "timeutil.h"

#ifndef WAHAGATE_VERSION
#define WAHAGATE_VERSION "dev"
#endif

#define EVENTS_HEAD_MAX 8192 /* the upgrade answer's status line and headers */
#define EVENTS_IN_MAX ((size_t)64 * 1024)  /* read no further while this much is unread */
#define EVENTS_OUT_MAX ((size_t)16 * 1024) /* stop handing wslay's frames to the socket */
#define EVENTS_QUEUE_MAX 16                /* frames wslay may hold for sending */
#define EVENTS_WHY_MAX 192
#define EVENTS_HOST_MAX 256
#define EVENTS_KEY_MAX 256
#define EVENTS_TARGET_MAX 2048
#define EVENTS_URL_MAX 640
#define EVENTS_FAILURES_CAP 64
#define EVENTS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Close codes that mean "not you, not with these parameters". */
#define CLOSE_POLICY 1008    /* WAHA 2026 WebSocketAuth: Unauthorized / Forbidden */
#define CLOSE_WAHA_2024 4001 /* WAHA 2024.10: session or events not allowed */

enum phase {
    PHASE_IDLE,       /* waiting for the next attempt */
    PHASE_RESOLVING,  /* evdns looks the host up */
    PHASE_CONNECTING, /* TCP (and TLS) to one address */
    PHASE_HANDSHAKE,  /* the upgrade request is sent, its answer read */
    PHASE_OPEN        /* WebSocket frames, through wslay */
};

static struct {
    bool started;
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *tls; /* wss:// only */
    struct event *timer;
    struct events_options opt; /* the strings are not kept: see below */
    events_message_cb on_message;
    events_state_cb on_state;
    void *arg;

    /* upstream_url, taken apart */
    bool secure;
    bool host_is_ip;
    char host[EVENTS_HOST_MAX];          /* to connect to and to verify: no brackets */
    char port[8];                        /* decimal */
    char authority[EVENTS_HOST_MAX + 8]; /* the Host header: host[:port] as written */
    char log_url[EVENTS_URL_MAX];        /* ws[s]://authority/prefix/ws: no query */
    char target[EVENTS_TARGET_MAX];      /* /prefix/ws?...&x-api-key=...: has the key */
    char api_key[EVENTS_KEY_MAX];
    char api_key_pct[3 * EVENTS_KEY_MAX];

    /* the current attempt and link */
    enum phase phase;
    struct evdns_getaddrinfo_request *dns_req;
    struct evutil_addrinfo *addrs; /* all the addresses of the host */
    struct evutil_addrinfo *addr;  /* the one being tried */
    struct bufferevent *bev;
    wslay_event_context_ptr ws;
    char accept[32]; /* the Sec-WebSocket-Accept we expect */
    bool confirmed;  /* WAHA sent a frame after the 101 */
    int64_t attempt_ms;
    int64_t connected_ms;
    int64_t last_rx_ms;
    int64_t next_ping_ms;
    uint16_t close_code;
    char close_reason[128];
    char *message; /* opt.max_message + 1 */

    /* what is reported */
    enum events_state state;
    char why[EVENTS_WHY_MAX];
    int failures; /* attempts failed since the last stable link */
    struct events_stats stats;
} ev;

static void connection_ended(bool refused, const char *why);
static void pump(void);

/*========================================================================
 * Small helpers
 */

static void why_printf(char *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void why_printf(char *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, EVENTS_WHY_MAX, fmt, ap);
    va_end(ap);
}

static void arm_in(int64_t delay_ms)
{
    struct timeval tv = time_timeval(delay_ms < 0 ? 0 : delay_ms);

    evtimer_add(ev.timer, &tv);
}

static void arm_at(int64_t at_ms)
{
    arm_in(at_ms - time_mono_ms());
}

/* Unreserved characters (RFC 3986) as they are, everything else %XX. */
static void percent_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 <= size; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* A reason WAHA sent, made safe to show: printable ASCII, never the key. */
static void copy_reason(char *out, size_t size, const uint8_t *in, size_t len)
{
    size_t n = len < size - 1 ? len : size - 1;

    for (size_t i = 0; i < n; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? (char)in[i] : '?';
    out[n] = '\0';
    if (ev.api_key[0] != '\0' &&
        (strstr(out, ev.api_key) != NULL || strstr(out, ev.api_key_pct) != NULL))
        snprintf(out, size, "(reason withheld: it holds the key)");
}

/*========================================================================
 * The URL: http[s]://host[:port][/prefix] -> ws[s]://host[:port][/prefix]/ws
 */

/* The port after "host:" (LEN characters), or the scheme's default when TEXT is NULL. */
static int parse_port(const char *text, size_t len, char *why)
{
    long value = 0;

    if (text == NULL) {
        snprintf(ev.port, sizeof(ev.port), "%s", ev.secure ? "443" : "80");
        return 0;
    }
    for (size_t i = 0; i < len && i < 6; i++) {
        if (!isdigit((unsigned char)text[i])) {
            value = -1;
            break;
        }
        value = value * 10 + (text[i] - '0');
    }
    if (len == 0 || len > 5 || value < 1 || value > 65535) {
        why_printf(why, "upstream.url has a bad port");
        return -1;
    }
    snprintf(ev.port, sizeof(ev.port), "%ld", value);
    return 0;
}

/* host[:port] or [v6address][:port], LEN characters: ev.host and ev.port. */
static int split_authority(const char *auth, size_t len, char *why)
{
    const char *end = auth + len, *host = auth, *port;
    size_t host_len;
    struct in6_addr any;

    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', len);

        if (close == NULL || (close + 1 < end && close[1] != ':')) {
            why_printf(why, "upstream.url has a bad IPv6 address");
            return -1;
        }
        host = auth + 1;
        host_len = (size_t)(close - host);
        port = close + 1 < end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(auth, ':', len);

        host_len = colon != NULL ? (size_t)(colon - auth) : len;
        port = colon != NULL ? colon + 1 : NULL;
    }
    if (host_len == 0 || host_len >= sizeof(ev.host)) {
        why_printf(why, "upstream.url has no host, or one too long");
        return -1;
    }
    memcpy(ev.host, host, host_len);
    ev.host[host_len] = '\0';
    ev.host_is_ip =
        inet_pton(AF_INET, ev.host, &any) == 1 || inet_pton(AF_INET6, ev.host, &any) == 1;
    return parse_port(port, port != NULL ? (size_t)(end - port) : 0, why);
}

/* ev.log_url (no query) and ev.target (with the query, and the key). */
static int build_target(const char *prefix, size_t len, char *why)
{
    int n = snprintf(ev.log_url, sizeof(ev.log_url), "%s://%s%.*s/ws",
                     ev.secure ? "wss" : "ws", ev.authority, (int)len, prefix);

    if (n < 0 || (size_t)n >= sizeof(ev.log_url)) {
        why_printf(why, "upstream.url is too long");
        return -1;
    }
    n = snprintf(ev.target, sizeof(ev.target),
                 "%.*s/ws?session=*&events=session.status%s%s", (int)len, prefix,
                 ev.api_key[0] ? "&x-api-key=" : "", ev.api_key_pct);
    if (n < 0 || (size_t)n >= sizeof(ev.target)) {
        why_printf(why, "upstream.url is too long");
        return -1;
    }
    return 0;
}

static int parse_url(const char *url, char *why)
{
    const char *auth, *slash, *prefix;
    size_t auth_len, prefix_len;

    if (strncmp(url, "http://", 7) == 0) {
        auth = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        auth = url + 8;
        ev.secure = true;
    } else {
        why_printf(why, "upstream.url must start with http:// or https://");
        return -1;
    }
    /* Never echo the URL: it might hold a password. */
    if (strpbrk(url, "?#@ \t\r\n") != NULL) {
        why_printf(why, "upstream.url with user:password@, a query or a fragment "
                        "is not supported for the WebSocket");
        return -1;
    }
    slash = strchr(auth, '/');
    auth_len = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
    if (auth_len == 0 || auth_len >= sizeof(ev.authority)) {
        why_printf(why, "upstream.url has no host, or one too long");
        return -1;
    }
    memcpy(ev.authority, auth, auth_len);
    ev.authority[auth_len] = '\0';
    if (split_authority(auth, auth_len, why) != 0)
        return -1;
    prefix = slash != NULL ? slash : "";
    prefix_len = strlen(prefix);
    while (prefix_len > 0 && prefix[prefix_len - 1] == '/')
        prefix_len--;
    return build_target(prefix, prefix_len, why);
}

/*========================================================================
 * Reporting
 */

static void report(enum events_state state, const char *why, int64_t retry_ms)
{
    int64_t now = time_mono_ms();

    if (state == ev.state && strcmp(why, ev.why) == 0) {
        log_debug("WebSocket %s: %s again; retrying in %.1f s", ev.log_url, why,
                  retry_ms / 1000.0);
        return;
    }
    if (state != ev.state)
        ev.stats.state_since_ms = now;
    ev.state = state;
    ev.stats.state = state;
    snprintf(ev.why, sizeof(ev.why), "%s", why);
    switch (state) {
    case EVENTS_OFF: log_info("WebSocket %s: stopped", ev.log_url); break;
    case EVENTS_CONNECTED:
        log_info("WebSocket %s: connected, session.status is pushed", ev.log_url);
        break;
    case EVENTS_REFUSED:
        log_warn(0, "WebSocket %s: refused (%s); trying again every %g s", ev.log_url,
                 why, ev.opt.backoff_max_ms / 1000.0);
        break;
    case EVENTS_CONNECTING:
    default:
        if (why[0] == '\0')
            log_info("WebSocket %s: connecting", ev.log_url);
        else
            log_warn(0, "WebSocket %s: %s; retrying in %.1f s", ev.log_url, why,
                     retry_ms / 1000.0);
        break;
    }
    if (ev.on_state != NULL)
        ev.on_state(state, ev.why, ev.arg);
}

/*========================================================================
 * Attempts, backoff, teardown
 */

/* Equal jitter: half of the step fixed, half random. */
static int64_t retry_delay_ms(void)
{
    int64_t cap = ev.opt.backoff_first_ms;

    for (int i = 0; i < ev.failures && cap < ev.opt.backoff_max_ms; i++)
        cap *= 2;
    if (cap > ev.opt.backoff_max_ms)
        cap = ev.opt.backoff_max_ms;
    return cap / 2 + (int64_t)(random() % (cap / 2 + 1));
}

static void close_link(void)
{
    if (ev.ws != NULL) {
        wslay_event_context_free(ev.ws);
        ev.ws = NULL;
    }
    if (ev.bev != NULL) {
        bufferevent_free(ev.bev); /* closes the socket, frees the SSL */
        ev.bev = NULL;
    }
    ERR_clear_error();
}

static void teardown(void)
{
    close_link();
    if (ev.dns_req != NULL) {
        struct evdns_getaddrinfo_request *req = ev.dns_req;

        ev.dns_req = NULL;
        evdns_getaddrinfo_cancel(req); /* on_resolved() sees EVUTIL_EAI_CANCEL */
    }
    if (ev.addrs != NULL) {
        evutil_freeaddrinfo(ev.addrs);
        ev.addrs = ev.addr = NULL;
    }
    if (ev.timer != NULL)
        evtimer_del(ev.timer);
    ev.phase = PHASE_IDLE;
    ev.confirmed = false;
}

/*
 * The attempt or the link is over: tear it down, report why and schedule
 * the next attempt. REFUSED: WAHA said no (see the design comment).
 */
static void connection_ended(bool refused, const char *why)
{
    int64_t now = time_mono_ms();
    bool stable = ev.confirmed && now - ev.connected_ms >= ev.opt.backoff_max_ms;
    bool was_connected = ev.confirmed;
    char text[EVENTS_WHY_MAX];
    int64_t delay;

    teardown();
    if (refused) {
        ev.failures = EVENTS_FAILURES_CAP;
        delay = ev.opt.backoff_max_ms;
    } else {
        if (stable)
            ev.failures = 0;
        delay = retry_delay_ms();
        if (ev.failures < EVENTS_FAILURES_CAP)
            ev.failures++;
    }
    ev.stats.next_attempt_ms = now + delay;
    arm_in(delay);
    if (refused) {
        report(EVENTS_REFUSED, why, delay);
    } else {
        snprintf(text, sizeof(text), "%s%s", was_connected ? "connection lost: " : "",
                 why);
        report(EVENTS_CONNECTING, text, delay);
    }
}

/*========================================================================
 * TCP and TLS
 */

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* A new SSL for one connection: SNI, and the name or address to verify. */
static SSL *new_ssl(void)
{
    SSL *ssl = SSL_new(ev.tls);
    X509_VERIFY_PARAM *param;

    if (ssl == NULL)
        return NULL;
    param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (ev.host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, ev.host) != 1) {
            SSL_free(ssl);
            return NULL;
        }
    } else if (SSL_set_tlsext_host_name(ssl, ev.host) != 1 ||
               X509_VERIFY_PARAM_set1_host(param, ev.host, 0) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* Connect to ev.addr; on failure to start, move on to the next address. */
static void connect_addr(void)
{
    const int options = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    char why[EVENTS_WHY_MAX];
    int err = 0;

    for (; ev.addr != NULL; ev.addr = ev.addr->ai_next) {
        close_link();
        if (ev.secure) {
            SSL *ssl = new_ssl();

            if (ssl == NULL) {
                connection_ended(false, "TLS: cannot set up a session");
                return;
            }
            ev.bev = bufferevent_openssl_socket_new(ev.base, -1, ssl,
                                                    BUFFEREVENT_SSL_CONNECTING, options);
            if (ev.bev == NULL)
                SSL_free(ssl);
            else
                bufferevent_openssl_set_allow_dirty_shutdown(ev.bev, 1);
        } else {
            ev.bev = bufferevent_socket_new(ev.base, -1, options);
        }
        if (ev.bev == NULL) {
            connection_ended(false, "out of memory");
            return;
        }
        bufferevent_setcb(ev.bev, on_read, on_write, on_event, NULL);
        bufferevent_setwatermark(ev.bev, EV_READ, 0, EVENTS_IN_MAX);
        bufferevent_enable(ev.bev, EV_READ | EV_WRITE);
        ev.phase = PHASE_CONNECTING;
        if (bufferevent_socket_connect(ev.bev, ev.addr->ai_addr,
                                       (int)ev.addr->ai_addrlen) == 0)
            return;
        err = EVUTIL_SOCKET_ERROR();
    }
    why_printf(why, "connect: %s", evutil_socket_error_to_string(err));
    connection_ended(false, why);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    char why[EVENTS_WHY_MAX];

    (void)arg;
    if (result == EVUTIL_EAI_CANCEL) {
        if (res != NULL)
            evutil_freeaddrinfo(res);
        return;
    }
    ev.dns_req = NULL;
    if (result != 0 || res == NULL) {
        if (res != NULL)
            evutil_freeaddrinfo(res);
        why_printf(why, "cannot resolve %s: %s", ev.host, evutil_gai_strerror(result));
        connection_ended(false, why);
        return;
    }
    ev.addrs = ev.addr = res;
    connect_addr();
}

static void attempt(void)
{
    struct evutil_addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct evdns_getaddrinfo_request *req;

    ev.stats.attempts++;
    ev.stats.next_attempt_ms = 0;
    ev.attempt_ms = time_mono_ms();
    ev.phase = PHASE_RESOLVING;
    arm_at(ev.attempt_ms + ev.opt.connect_timeout_ms);
    /* Answered at once (an address, /etc/hosts) it returns NULL. */
    req = evdns_getaddrinfo(ev.dns, ev.host, ev.port, &hints, on_resolved, NULL);
    if (req != NULL)
        ev.dns_req = req;
    else if (ev.phase == PHASE_RESOLVING) /* neither answered nor pending */
        connection_ended(false, "cannot resolve the host");
}

/* Why the link failed: TLS_ERROR (OpenSSL's, or 0) or ERR (errno, or 0). */
static void describe_error(struct bufferevent *bev, unsigned long tls_error, int err,
                           char *why)
{
    if (tls_error != 0) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
        char text[128];

        if (verify != X509_V_OK) {
            why_printf(why, "TLS: certificate not accepted: %s",
                       X509_verify_cert_error_string(verify));
        } else {
            ERR_error_string_n(tls_error, text, sizeof(text));
            why_printf(why, "TLS: %s", text);
        }
        for (int i = 0; i < 16 && bufferevent_get_openssl_error(bev) != 0; i++)
            continue; /* drain the rest */
    } else if (ev.phase == PHASE_CONNECTING && ev.secure && err == 0) {
        why_printf(why, "TLS: handshake failed");
    } else {
        why_printf(why, "%s: %s", ev.phase == PHASE_CONNECTING ? "connect" : "read/write",
                   err != 0 ? evutil_socket_error_to_string(err) : "error");
    }
}

/*========================================================================
 * The upgrade (RFC 6455 section 4)
 */

static int send_request(void)
{
    unsigned char nonce[16], digest[EVP_MAX_MD_SIZE];
    char key[32], input[sizeof(key) + sizeof(EVENTS_GUID)];
    unsigned int digest_len = 0;

    if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        return -1;
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce)); /* 24 characters */
    snprintf(input, sizeof(input), "%s%s", key, EVENTS_GUID);
    if (EVP_Digest(input, strlen(input), digest, &digest_len, EVP_sha1(), NULL) != 1 ||
        digest_len != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)ev.accept, digest, (int)digest_len); /* 28 */
    if (evbuffer_add_printf(bufferevent_get_output(ev.bev),
                            "GET %s HTTP/1.1\r\n"
                            "Host: %s\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "User-Agent: wahagate/%s\r\n"
                            "\r\n",
                            ev.target, ev.authority, key, WAHAGATE_VERSION) < 0)
        return -1;
    ev.phase = PHASE_HANDSHAKE;
    return 0;
}

/* True when the comma-separated LIST holds TOKEN (case-insensitive). */
static bool has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);

    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, token, tlen) == 0) {
            const char *q = p + tlen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == ',' || *q == '\0')
                return true;
        }
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/*
 * Check the answer's head (NUL-terminated, lines ending in CRLF). Returns
 * its status code (101 only when the upgrade is valid), or -1; WHY says
 * what is wrong with a 101.
 */
static int check_head(char *head, char *why)
{
    bool upgrade = false, connection = false, accept = false, extra = false;
    char *line = head, *end;
    int status;

    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
        line[8] != ' ' || !isdigit((unsigned char)line[9]) ||
        !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
        (line[12] != ' ' && line[12] != '\r')) {
        why_printf(why, "not an HTTP answer");
        return -1;
    }
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status != 101)
        return status;
    for (int i = 0; i < 200 && (end = strstr(line, "\r\n")) != NULL && end != line; i++) {
        char *colon, *value, *tail;

        *end = '\0';
        if (i > 0 && (colon = strchr(line, ':')) != NULL) {
            *colon = '\0';
            value = colon + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            tail = value + strlen(value);
            while (tail > value && (tail[-1] == ' ' || tail[-1] == '\t'))
                *--tail = '\0';
            if (strcasecmp(line, "Upgrade") == 0)
                upgrade = strcasecmp(value, "websocket") == 0;
            else if (strcasecmp(line, "Connection") == 0)
                connection = has_token(value, "upgrade");
            else if (strcasecmp(line, "Sec-WebSocket-Accept") == 0)
                accept = strcmp(value, ev.accept) == 0;
            else if (strcasecmp(line, "Sec-WebSocket-Extensions") == 0 ||
                     strcasecmp(line, "Sec-WebSocket-Protocol") == 0)
                extra = extra || value[0] != '\0';
        }
        line = end + 2;
    }
    if (!upgrade || !connection)
        why_printf(why, "101 without Upgrade: websocket and Connection: Upgrade");
    else if (!accept)
        why_printf(why, "101 with a wrong or no Sec-WebSocket-Accept");
    else if (extra)
        why_printf(why, "101 with an extension or subprotocol that was not asked for");
    else
        return 101;
    return -1;
}

static void start_websocket(void);

/* The answer to the upgrade, once its head is complete. */
static void read_head(void)
{
    struct evbuffer *in = bufferevent_get_input(ev.bev);
    struct evbuffer_ptr found = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    char head[EVENTS_HEAD_MAX + 1], why[EVENTS_WHY_MAX];
    size_t len;
    int status;

    if (found.pos < 0) {
        if (evbuffer_get_length(in) > EVENTS_HEAD_MAX)
            connection_ended(false, "the upgrade answer's head is over 8 KiB");
        return;
    }
    len = (size_t)found.pos + 4;
    if (len > EVENTS_HEAD_MAX) {
        connection_ended(false, "the upgrade answer's head is over 8 KiB");
        return;
    }
    evbuffer_remove(in, head, len);
    head[len] = '\0';
    if (memchr(head, '\0', len) != NULL) {
        connection_ended(false, "not an HTTP answer");
        return;
    }
    why[0] = '\0';
    status = check_head(head, why);
    if (status == 101) {
        start_websocket();
    } else if (status == 404) {
        connection_ended(true, "HTTP 404: this WAHA has no /ws");
    } else if (status == 401 || status == 403) {
        why_printf(why, "HTTP %d: the API key is not accepted", status);
        connection_ended(true, why);
    } else if (status > 0) {
        why_printf(why, "HTTP %d instead of 101 Switching Protocols", status);
        connection_ended(false, why);
    } else {
        connection_ended(false, why);
    }
}

/*========================================================================
 * WebSocket frames: wslay's callbacks on the bufferevent's buffers
 */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    int n = evbuffer_remove(bufferevent_get_input(ev.bev), buf, len);

    (void)flags;
    (void)user;
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                       int flags, void *user)
{
    (void)flags;
    (void)user;
    if (evbuffer_get_length(bufferevent_get_output(ev.bev)) >= EVENTS_OUT_MAX) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (bufferevent_write(ev.bev, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)user;
    if (getrandom(buf, len, 0) != (ssize_t)len) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/* The timer of a confirmed link: our next ping, or the silence deadline. */
static void arm_open(void)
{
    int64_t silent_at = ev.last_rx_ms + ev.opt.silence_ms;

    arm_at(ev.next_ping_ms < silent_at ? ev.next_ping_ms : silent_at);
}

static void confirm(void)
{
    int64_t now = time_mono_ms();

    ev.confirmed = true;
    ev.connected_ms = now;
    ev.next_ping_ms = now + ev.opt.ping_ms;
    ev.stats.connects++;
    arm_open();
    report(EVENTS_CONNECTED, "", 0);
}

/* Any frame is a sign of life; the first that is not a close confirms the link. */
static void ws_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user)
{
    (void)ctx;
    (void)user;
    ev.last_rx_ms = time_mono_ms();
    if (!ev.confirmed && arg->opcode != WSLAY_CONNECTION_CLOSE)
        confirm();
}

static void ws_message(wslay_event_context_ptr ctx,
                       const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    (void)user;
    if (arg->opcode == WSLAY_TEXT_FRAME && arg->msg_length <= ev.opt.max_message) {
        if (arg->msg_length > 0)
            memcpy(ev.message, arg->msg, arg->msg_length);
        ev.message[arg->msg_length] = '\0';
        ev.stats.messages++;
        if (ev.on_message != NULL)
            ev.on_message(ev.message, arg->msg_length, ev.arg);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ev.close_code = arg->status_code;
        if (arg->msg_length > 2)
            copy_reason(ev.close_reason, sizeof(ev.close_reason), arg->msg + 2,
                        arg->msg_length - 2);
    }
}

static void start_websocket(void)
{
    const struct wslay_event_callbacks callbacks = {
        .recv_callback = ws_recv,
        .send_callback = ws_send,
        .genmask_callback = ws_genmask,
        .on_frame_recv_start_callback = ws_frame_start,
        .on_msg_recv_callback = ws_message,
    };
    const struct wslay_event_msg ping = {.opcode = WSLAY_PING};

    if (wslay_event_context_client_init(&ev.ws, &callbacks, NULL) != 0) {
        ev.ws = NULL;
        connection_ended(false, "out of memory");
        return;
    }
    wslay_event_config_set_max_recv_msg_length(ev.ws, ev.opt.max_message);
    ev.phase = PHASE_OPEN;
    ev.close_code = 0;
    ev.close_reason[0] = '\0';
    ev.last_rx_ms = time_mono_ms();
    wslay_event_queue_msg(ev.ws, &ping); /* its pong confirms the link */
    pump();
}

/* Hand what wslay queued to the socket. 0, or -1 when the link was dropped. */
static int flush(void)
{
    if (wslay_event_send(ev.ws) != 0) {
        connection_ended(false, "WebSocket: cannot send");
        return -1;
    }
    if (wslay_event_get_queued_msg_count(ev.ws) > EVENTS_QUEUE_MAX) {
        connection_ended(false, "WAHA does not read what is sent to it");
        return -1;
    }
    return 0;
}

/* WAHA sent a close frame. */
static void peer_closed(void)
{
    char why[EVENTS_WHY_MAX];
    unsigned code = ev.close_code;

    if (code == 0)
        why_printf(why, "WAHA closed the WebSocket without a code");
    else
        why_printf(why, "WAHA closed the WebSocket with %u%s%s", code,
                   ev.close_reason[0] ? " " : "", ev.close_reason);
    connection_ended(code == CLOSE_POLICY || code == CLOSE_WAHA_2024, why);
}

/* Why wslay stopped reading, from the close code it sent. */
static void protocol_error(char *why)
{
    unsigned code = wslay_event_get_status_code_sent(ev.ws);

    if (code == WSLAY_CODE_MESSAGE_TOO_BIG)
        why_printf(why, "WAHA sent a message over %zu bytes (closed with %u)",
                   ev.opt.max_message, code);
    else if (code == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA)
        why_printf(why, "WAHA sent text that is not UTF-8 (closed with %u)", code);
    else
        why_printf(why, "WAHA broke the WebSocket protocol (closed with %u)", code);
}

/* Read every complete frame that arrived, answer what must be answered. */
static void pump(void)
{
    char why[EVENTS_WHY_MAX];
    int r = wslay_event_recv(ev.ws);

    if (r != 0) {
        why_printf(why, "WebSocket: %s",
                   r == WSLAY_ERR_NOMEM ? "out of memory" : "cannot receive");
        connection_ended(false, why);
        return;
    }
    if (wslay_event_get_close_received(ev.ws)) {
        wslay_event_send(ev.ws); /* our close frame, if the socket takes it */
        peer_closed();
        return;
    }
    if (!wslay_event_get_read_enabled(ev.ws)) {
        /* wslay found a protocol error or a message too big, and queued a close */
        wslay_event_send(ev.ws);
        protocol_error(why);
        connection_ended(false, why);
        return;
    }
    flush();
}

/*========================================================================
 * libevent callbacks
 */

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    (void)arg;
    if (ev.phase == PHASE_HANDSHAKE)
        read_head();
    else if (ev.phase == PHASE_OPEN)
        pump();
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    (void)arg;
    if (ev.phase == PHASE_OPEN && wslay_event_want_write(ev.ws))
        flush();
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR(); /* first: anything below may change it */
    unsigned long tls_error = 0;
    char why[EVENTS_WHY_MAX];

    (void)arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (send_request() != 0)
            connection_ended(false, "cannot write the upgrade request");
        return;
    }
    if (ev.secure)
        tls_error = bufferevent_get_openssl_error(bev);
    if (what & BEV_EVENT_EOF) {
        why_printf(why, "WAHA closed the connection%s",
                   ev.phase == PHASE_OPEN ? "" : " before the upgrade was done");
    } else if (ev.phase == PHASE_CONNECTING && tls_error == 0 && ev.addr != NULL &&
               ev.addr->ai_next != NULL) {
        ev.addr = ev.addr->ai_next; /* this address failed: the next one */
        connect_addr();
        return;
    } else {
        describe_error(bev, tls_error, err, why);
    }
    connection_ended(false, why);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    char why[EVENTS_WHY_MAX];
    int64_t now = time_mono_ms();

    (void)fd;
    (void)what;
    (void)arg;
    if (ev.phase == PHASE_IDLE) {
        attempt();
        return;
    }
    if (ev.phase != PHASE_OPEN || !ev.confirmed) {
        why_printf(why, "no answer within %.1f s", ev.opt.connect_timeout_ms / 1000.0);
        connection_ended(false, why);
        return;
    }
    if (now - ev.last_rx_ms >= ev.opt.silence_ms) {
        why_printf(why, "nothing received for %.1f s", ev.opt.silence_ms / 1000.0);
        connection_ended(false, why);
        return;
    }
    if (now >= ev.next_ping_ms) {
        const struct wslay_event_msg ping = {.opcode = WSLAY_PING};

        wslay_event_queue_msg(ev.ws, &ping);
        ev.next_ping_ms = now + ev.opt.ping_ms;
        if (flush() != 0)
            return;
    }
    arm_open();
}

/*========================================================================
 * Interface
 */

void events_options_defaults(struct events_options *opt)
{
    *opt = (struct events_options){
        .ping_ms = 30000,
        .silence_ms = 90000,
        .backoff_first_ms = 1000,
        .backoff_max_ms = 60000,
        .connect_timeout_ms = 10000,
        .max_message = 65536,
    };
}

static int check_options(const struct events_options *opt, char *why)
{
    if (opt->upstream_url == NULL) {
        why_printf(why, "no upstream.url");
        return -1;
    }
    if (opt->ping_ms < 10 || opt->silence_ms < opt->ping_ms ||
        opt->backoff_first_ms < 2 || opt->backoff_max_ms < opt->backoff_first_ms ||
        opt->connect_timeout_ms < 10 || opt->backoff_max_ms > 24LL * 3600 * 1000 ||
        opt->max_message < 16 || opt->max_message > (size_t)64 * 1024 * 1024) {
        why_printf(why, "bad timing or size options");
        return -1;
    }
    if (opt->api_key != NULL && strlen(opt->api_key) >= EVENTS_KEY_MAX) {
        why_printf(why, "the API key is longer than %d characters", EVENTS_KEY_MAX - 1);
        return -1;
    }
    return 0;
}

static int setup(struct event_base *base, char *why)
{
    ev.timer = evtimer_new(base, on_timer, NULL);
    ev.dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                      EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    ev.message = malloc(ev.opt.max_message + 1);
    if (ev.timer == NULL || ev.dns == NULL || ev.message == NULL) {
        why_printf(why, "out of memory, or no resolver");
        return -1;
    }
    if (ev.secure) {
        ev.tls = SSL_CTX_new(TLS_client_method());
        if (ev.tls == NULL || SSL_CTX_set_default_verify_paths(ev.tls) != 1 ||
            SSL_CTX_set_min_proto_version(ev.tls, TLS1_2_VERSION) != 1) {
            why_printf(why, "cannot set up TLS");
            return -1;
        }
        SSL_CTX_set_verify(ev.tls, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

int events_start(struct event_base *base, const struct events_options *opt,
                 events_message_cb on_message, events_state_cb on_state, void *arg)
{
    char why[EVENTS_WHY_MAX] = "";

    events_stop();
    memset(&ev, 0, sizeof(ev));
    if (check_options(opt, why) != 0)
        goto fail;
    ev.opt = *opt;
    ev.opt.upstream_url = NULL; /* not kept: copied into the fields below */
    ev.opt.api_key = NULL;
    snprintf(ev.api_key, sizeof(ev.api_key), "%s", opt->api_key ? opt->api_key : "");
    percent_encode(ev.api_key, ev.api_key_pct, sizeof(ev.api_key_pct));
    if (parse_url(opt->upstream_url, why) != 0)
        goto fail;
    ev.base = base;
    ev.on_message = on_message;
    ev.on_state = on_state;
    ev.arg = arg;
    if (setup(base, why) != 0)
        goto fail;
    ev.started = true;
    report(EVENTS_CONNECTING, "", 0);
    attempt();
    return 0;

fail:
    log_error(0, "WebSocket to WAHA not started: %s", why);
    ev.started = true; /* so that events_stop() frees what setup() made */
    ev.state = EVENTS_OFF;
    ev.on_state = NULL;
    events_stop();
    return -1;
}

void events_stop(void)
{
    if (!ev.started)
        return;
    teardown();
    if (ev.state != EVENTS_OFF)
        report(EVENTS_OFF, "stopped", 0);
    if (ev.timer != NULL)
        event_free(ev.timer);
    if (ev.dns != NULL)
        evdns_base_free(ev.dns, 1);
    if (ev.tls != NULL)
        SSL_CTX_free(ev.tls);
    free(ev.message);
    OPENSSL_cleanse(&ev, sizeof(ev)); /* the key is in there */
}

enum events_state events_current(void)
{
    return ev.state;
}

void events_stats(struct events_stats *out)
{
    *out = ev.stats;
    out->state = ev.state;
}
