/*
 * events.h - the fetcher's one WebSocket to WAHA's /ws, subscribed to
 * session.status, so status changes arrive as they happen (see events.c,
 * the connection's life, and events_ws.c, the protocol spoken on it).
 *
 * The module owns one connection and its reconnection; it hands each text
 * message to the caller unparsed and reports every change of its state.
 * Everything runs on the caller's event_base, in the caller's thread.
 * Nothing it logs, reports or exposes contains the API key.
 */
#ifndef WAHAGATE_EVENTS_H
#define WAHAGATE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "region.h" /* enum events_state, events_state_names */

struct event_base;

/*
 * The states (region.h, published in the region's header): EVENTS_OFF not
 * started or stopped; EVENTS_CONNECTING not (yet) receiving events:
 * connecting, or waiting to retry; EVENTS_CONNECTED upgraded and WAHA
 * answered: events arrive; EVENTS_REFUSED WAHA refused /ws (HTTP 404, 401,
 * 403, close 1008): retried only every backoff_max_ms.
 */

struct events_options {
    const char *upstream_url; /* config upstream.url: http[s]://host[:port][/prefix], no
                                  trailing slash; copied */
    const char *api_key;      /* may be ""; copied */
    int64_t ping_ms;          /* the client pings this often while connected */
    int64_t silence_ms;       /* nothing received this long: the connection is dropped */
    int64_t backoff_first_ms; /* first retry delay, doubling up to... */
    int64_t backoff_max_ms;   /* ...this, which is also the retry period when refused */
    int64_t connect_timeout_ms; /* connect + TLS + upgrade + WAHA's first frame */
    size_t max_message; /* largest message accepted (a bigger one drops the link) */
};

/* The defaults: 30 s pings, 90 s silence, 1 s to 60 s backoff, 10 s
 * connect timeout, 64 KiB messages (WEBHOOK_BODY_MAX). URL and key NULL. */
void events_options_defaults(struct events_options *opt);

/*
 * A text message: TEXT[LEN] is '\0' (so it can go to webhook_parse()); the
 * bytes are valid only during the call. Binary messages are ignored.
 */
typedef void (*events_message_cb)(const char *text, size_t len, void *arg);

/*
 * The state or its reason changed (never called twice in a row with the
 * same pair; every call is also one log line). WHY is a short text for
 * people ("connection lost: WAHA closed the connection", "HTTP 404: this
 * WAHA has no /ws"), "" when there is nothing to say.
 */
typedef void (*events_state_cb)(enum events_state state, const char *why, void *arg);

/*
 * events_start - connect to the /ws derived from OPT->upstream_url
 * (http -> ws, https -> wss with the certificate and host name verified
 * against the default CA paths, SSL_CERT_FILE and SSL_CERT_DIR included),
 * with ?session=*&events=session.status&x-api-key=<key>, and keep
 * reconnecting until events_stop(). Returns 0, or -1 when the options are
 * unusable (logged; the state stays EVENTS_OFF). ON_MESSAGE and ON_STATE
 * may be NULL. The callbacks must not call events_start() or
 * events_stop().
 */
int events_start(struct event_base *base, const struct events_options *opt,
                 events_message_cb on_message, events_state_cb on_state, void *arg);

/*
 * events_stop - close the connection (no close frame), cancel every timer,
 * free everything; the state is EVENTS_OFF. Harmless when not started.
 * A host name lookup in flight is cancelled, and libevent frees its request
 * only when the loop delivers the cancellation: a caller about to free the
 * event_base runs event_base_loop(base, EVLOOP_NONBLOCK) once before.
 */
void events_stop(void);

enum events_state events_current(void);

/* Counters for stats pages; all times CLOCK_MONOTONIC ms (timeutil.h). */
struct events_stats {
    enum events_state state;
    uint64_t attempts;       /* connections tried */
    uint64_t connects;       /* of which reached EVENTS_CONNECTED */
    uint64_t messages;       /* text messages handed to on_message */
    int64_t state_since_ms;  /* last change of state */
    int64_t next_attempt_ms; /* when the next attempt starts; 0 if none is waiting */
};

void events_stats(struct events_stats *out);

#endif
