/*
 * events.c - one WebSocket to WAHA's /ws, kept up, for session.status push:
 * the connection's life (host lookup, TCP and TLS, the one timer, pings and
 * the silence deadline, backoff, reporting) and the interface of events.h.
 *
 * The module is two files that share events_internal.h (its one state, ev,
 * and the calls between them): this one makes the connection and keeps it
 * up; events_ws.c is what is said on it (upstream.url taken apart, the
 * HTTP/1.1 upgrade, wslay's callbacks). This file calls parse_url() and
 * percent_encode() when started, send_request() once TCP (and TLS) is up,
 * read_head() or pump() when bytes arrive, flush() when a ping is due or the
 * socket can take more; events_ws.c calls back confirm() at WAHA's first
 * frame and connection_ended() when the attempt or the link is over.
 *
 * DESIGN
 * What WAHA does (WAHA 2024.10.8 src/core/api/websocket.gateway.core.ts and
 * src/nestjs/ws/WebsocketHeartbeatJob.ts; 2026: src/api/websocket.gateway.core.ts
 * and src/core/auth/WebSocketAuth.ts; docs/waha-api.md 6.4 and 9): plain
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
 * wss://, with the peer's certificate and host name verified); the upgrade
 * and, after the 101, libwslay's framing are events_ws.c's. Host names are
 * resolved with evdns (never a blocking getaddrinfo in the fetcher's loop)
 * and each address is tried in turn within the attempt's time limit.
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

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <wslay/wslay.h>

#include "events_internal.h"
#include "log.h"
#include "timeutil.h"

#define EVENTS_IN_MAX ((size_t)64 * 1024) /* read no further while this much is unread */
#define EVENTS_FAILURES_CAP 64

struct events_ctx ev;

/*========================================================================
 * Small helpers
 */

void why_printf(char *why, const char *fmt, ...)
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
void connection_ended(bool refused, const char *why)
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
 * The confirmed link: our pings, WAHA's silence
 */

/* The timer of a confirmed link: our next ping, or the silence deadline. */
static void arm_open(void)
{
    int64_t silent_at = ev.last_rx_ms + ev.opt.silence_ms;

    arm_at(ev.next_ping_ms < silent_at ? ev.next_ping_ms : silent_at);
}

void confirm(void)
{
    int64_t now = time_mono_ms();

    ev.confirmed = true;
    ev.connected_ms = now;
    ev.next_ping_ms = now + ev.opt.ping_ms;
    ev.stats.connects++;
    arm_open();
    report(EVENTS_CONNECTED, "", 0);
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
