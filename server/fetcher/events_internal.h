/*
 * events_internal.h - what the two files of the fetcher's WebSocket client
 * share; nothing else includes it.
 *
 * events.c runs the connection's life (host lookup, TCP and TLS, the timer,
 * pings, backoff, reporting, the interface of events.h); events_ws.c is
 * what is said on the connection (upstream.url taken apart, the HTTP/1.1
 * upgrade, wslay's callbacks). Their design comments say why.
 *
 * The state they share is the module's one struct events_ctx, ev: the
 * fetcher keeps one WebSocket and is single-threaded, so one is enough.
 * The calls below are the only ones that cross between the two files.
 */
#ifndef WAHAGATE_EVENTS_INTERNAL_H
#define WAHAGATE_EVENTS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>
#include <wslay/wslay.h>

#include "events.h"

#define EVENTS_WHY_MAX 192
#define EVENTS_HOST_MAX 256
#define EVENTS_KEY_MAX 256
#define EVENTS_TARGET_MAX 2048
#define EVENTS_URL_MAX 640

enum phase {
    PHASE_IDLE,       /* waiting for the next attempt */
    PHASE_RESOLVING,  /* evdns looks the host up */
    PHASE_CONNECTING, /* TCP (and TLS) to one address */
    PHASE_HANDSHAKE,  /* the upgrade request is sent, its answer read */
    PHASE_OPEN        /* WebSocket frames, through wslay */
};

struct events_ctx {
    bool started;
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *tls; /* wss:// only */
    struct event *timer;
    struct events_options opt; /* the strings are not kept: see events_start() */
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
};

extern struct events_ctx ev;

/*========================================================================
 * events.c
 */

/* Format a reason into WHY (EVENTS_WHY_MAX bytes). */
void why_printf(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The attempt or the link is over: tear it down, report why and schedule
 * the next attempt. REFUSED: WAHA said no (see events.c's design comment).
 */
void connection_ended(bool refused, const char *why);

/* WAHA sent its first frame after the 101: the link is connected. */
void confirm(void);

/*========================================================================
 * events_ws.c
 */

/* Unreserved characters (RFC 3986) as they are, everything else %XX. */
void percent_encode(const char *in, char *out, size_t size);

/* Take upstream URL apart into ev's host, port, authority, log_url and
 * target (ev.secure, ev.api_key and ev.api_key_pct set before). 0, or -1
 * with WHY. */
int parse_url(const char *url, char *why);

/* Write the upgrade request (TCP and TLS are up). 0, or -1. */
int send_request(void);

/* The answer to the upgrade, once its head is complete. */
void read_head(void);

/* Read every complete frame that arrived, answer what must be answered. */
void pump(void);

/* Hand what wslay queued to the socket. 0, or -1 when the link was dropped. */
int flush(void);

#endif
