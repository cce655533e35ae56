/*
 * ratelimit.c - token buckets in shared memory (see ratelimit.h).
 *
 * DESIGN
 * Open addressing: a client's bucket is one of RATELIMIT_PROBES slots from
 * the hash of its address; a new client takes a free slot there, or the
 * least recently used one. Every operation is a few loads and stores under
 * the table's own process-shared robust mutex, held for well under a
 * microsecond; a process that dies holding it leaves buckets that are at
 * worst a refill out of date, so the next locker simply marks the mutex
 * consistent. The refill is lazy: tokens += elapsed * rate, capped at the
 * burst, when the bucket is used.
 */
#include "ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <string.h>

static uint32_t hash(const struct client_addr *a)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (int i = 0; i < 16; i++)
        h = (h ^ a->bytes[i]) * 16777619u;
    return h;
}

static struct ratelimit_bucket *find(struct ratelimit_table *t,
                                     const struct client_addr *a)
{
    uint32_t start = hash(a);
    struct ratelimit_bucket *oldest = NULL;

    for (uint32_t i = 0; i < RATELIMIT_PROBES; i++) {
        struct ratelimit_bucket *b = &t->buckets[(start + i) % RATELIMIT_BUCKETS];
        if (b->used && memcmp(&b->addr, a, sizeof(*a)) == 0)
            return b;
        if (!b->used) {
            oldest = b;
            break;
        }
        if (oldest == NULL || b->last_ms < oldest->last_ms)
            oldest = b;
    }
    /* A new client: a free slot, or the least recently used one. */
    oldest->used = false;
    return oldest;
}

int ratelimit_take(struct ratelimit_table *t, const struct client_addr *addr, double rate,
                   int64_t burst, int64_t now_ms, struct ratelimit_verdict *v)
{
    struct ratelimit_bucket *b;
    int rc = pthread_mutex_lock(&t->lock);

    *v = (struct ratelimit_verdict){.allowed = true, .limit = burst, .remaining = burst};
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&t->lock);
    if (rc != 0)
        return -1;
    b = find(t, addr);
    if (!b->used) {
        b->used = true;
        b->addr = *addr;
        b->tokens = (double)burst;
        b->last_ms = now_ms;
    }
    if (now_ms > b->last_ms)
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
    if (!(b->tokens <= (double)burst)) /* also repairs a NaN */
        b->tokens = (double)burst;
    if (b->tokens < 0)
        b->tokens = 0;
    b->last_ms = now_ms;
    v->allowed = b->tokens >= 1.0;
    if (v->allowed)
        b->tokens -= 1.0;
    v->remaining = (int64_t)floor(b->tokens);
    v->retry_after_ms = v->allowed ? 0 : (int64_t)ceil((1.0 - b->tokens) * 1000.0 / rate);
    v->reset_ms = (int64_t)ceil(((double)burst - b->tokens) * 1000.0 / rate);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

bool ratelimit_addr_from_sockaddr(const struct sockaddr *sa, struct client_addr *addr)
{
    memset(addr, 0, sizeof(*addr));
    if (sa->sa_family == AF_INET6) {
        memcpy(addr->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    if (sa->sa_family == AF_INET) {
        addr->bytes[10] = addr->bytes[11] = 0xff;
        memcpy(addr->bytes + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    return false;
}

static bool parse_addr(const char *text, size_t len, struct client_addr *out)
{
    char buf[64];
    struct in_addr v4;

    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        out->bytes[10] = out->bytes[11] = 0xff;
        memcpy(out->bytes + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, buf, out->bytes) == 1;
}

static bool trusted(const struct config *cfg, const struct client_addr *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool v4 = memcmp(a->bytes, mapped, sizeof(mapped)) == 0;

    for (int i = 0; i < cfg->server.trusted_proxy_count; i++) {
        const struct cidr *c = &cfg->server.trusted_proxies[i];
        const uint8_t *bytes = c->family == AF_INET ? a->bytes + 12 : a->bytes;
        int bits = c->prefix;

        if ((c->family == AF_INET) != v4)
            continue;
        if (memcmp(bytes, c->addr, (size_t)bits / 8) != 0)
            continue;
        if (bits % 8 != 0) {
            uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));
            if ((bytes[bits / 8] & mask) != (c->addr[bits / 8] & mask))
                continue;
        }
        return true;
    }
    return false;
}

void ratelimit_client(const struct config *cfg, const struct client_addr *peer,
                      const char *xff, struct client_addr *out)
{
    const char *end;

    *out = *peer;
    if (xff == NULL || !trusted(cfg, peer))
        return;
    /* From the right: skip our own proxies; the first other hop is the client. */
    end = xff + strlen(xff);
    while (end > xff) {
        const char *comma = end;
        struct client_addr hop;

        while (comma > xff && comma[-1] != ',')
            comma--;
        if (!parse_addr(comma, (size_t)(end - comma), &hop)) {
            *out = *peer; /* garbage: not even our proxies' hops are sure */
            return;
        }
        *out = hop;
        if (!trusted(cfg, &hop))
            return;
        end = comma > xff ? comma - 1 : xff;
    }
}
