/*
 * transfers.h - the fetcher's calls to WAHA in flight: curl's multi
 * interface driven by libevent, and the bounded buffers answers land in.
 *
 * fetcher.c decides what to call and what the answers mean; this module
 * only moves bytes. transfers_add() starts an easy handle that fetcher.c
 * set up; when it ends, DONE is called with the handle and curl's result,
 * and the handle is then removed and freed here.
 */
#ifndef WAHAGATE_TRANSFERS_H
#define WAHAGATE_TRANSFERS_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <event2/event.h>

typedef void (*transfers_done_fn)(CURL *easy, CURLcode result);

/* Set up the multi handle on BASE: at most MAX_CONNECTIONS at once. */
int transfers_init(struct event_base *base, long max_connections, transfers_done_fn done);

/* Start EASY (0), or -1: then EASY is still the caller's. */
int transfers_add(CURL *easy);

/* Stop EASY if it runs, and free it. */
void transfers_cancel(CURL *easy);

void transfers_free(void);

/*
 * An answer's body: it starts at FIRST bytes and doubles as bytes come, up
 * to MAX; beyond that the transfer is aborted and TOO_LARGE set. DATA
 * always has room for a terminating NUL.
 */
struct transfer_body {
    char *data;
    size_t len, cap, max;
    bool too_large;
};

int transfer_body_init(struct transfer_body *b, size_t first);
void transfer_body_reset(struct transfer_body *b, size_t max);
void transfer_body_free(struct transfer_body *b);

/* CURLOPT_WRITEFUNCTION for a struct transfer_body (CURLOPT_WRITEDATA). */
size_t transfer_body_write(char *data, size_t size, size_t nmemb, void *userp);

#endif
