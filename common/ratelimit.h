/*
 * ratelimit.h - per-client token buckets shared by all workers.
 *
 * Each client address has a bucket of ratelimit.burst tokens refilled at
 * ratelimit.rate tokens per second; a request takes one or is refused (429).
 * The buckets live in the shared region (struct ratelimit_table), so a
 * client is limited across every worker. The table is bounded: when it is
 * full, the bucket that was used least recently among the ones a new client
 * could take is given to it (a client that comes back after that starts
 * with a full bucket, which only favours the client).
 */
#ifndef WAHAGATE_RATELIMIT_H
#define WAHAGATE_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

#define RATELIMIT_BUCKETS 8192
#define RATELIMIT_PROBES 16

/* A client address: IPv4 as a v4-mapped IPv6 address, so all are 16 bytes. */
struct client_addr {
    uint8_t bytes[16];
};

struct ratelimit_bucket {
    struct client_addr addr;
    bool used;
    double tokens;
    int64_t last_ms; /* monotonic: last refill */
};

/* Lives in the region; its own robust mutex (set up by region.c, like the
 * region's), so it never waits on the cache. */
struct ratelimit_table {
    pthread_mutex_t lock;
    struct ratelimit_bucket buckets[RATELIMIT_BUCKETS];
};

struct ratelimit_verdict {
    bool allowed;
    int64_t limit;          /* the burst */
    int64_t remaining;      /* whole tokens left */
    int64_t retry_after_ms; /* until the next token (refused) */
    int64_t reset_ms;       /* until the bucket is full again */
};

/*
 * ratelimit_take - charge one request of ADDR at NOW_MS against RATE tokens
 * per second and BURST. Fills V. Returns 0, or -1 when the table's lock is
 * unusable (then V says allowed: never refuse a client for our fault).
 */
int ratelimit_take(struct ratelimit_table *t, const struct client_addr *addr, double rate,
                   int64_t burst, int64_t now_ms, struct ratelimit_verdict *v);

/* ratelimit_addr_from_sockaddr - ADDR of a peer (AF_INET or AF_INET6). */
bool ratelimit_addr_from_sockaddr(const struct sockaddr *sa, struct client_addr *addr);

/*
 * ratelimit_client - the client a request counts as: PEER, or, when PEER is
 * in server.trusted_proxies and X-Forwarded-For (XFF, may be NULL) is
 * given, the right-most address of XFF that is not itself a trusted proxy
 * (what the first untrusted hop told us). An unparsable XFF keeps PEER.
 */
void ratelimit_client(const struct config *cfg, const struct client_addr *peer,
                      const char *xff, struct client_addr *out);

#endif
