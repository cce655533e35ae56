/*
 * test_ratelimit.c - unit tests for common/ratelimit.c: the per-client
 * token buckets every worker shares (docs/design.md ratelimit.rate and
 * ratelimit.burst), the client address a request counts as, and
 * server.trusted_proxies with X-Forwarded-For.
 *
 * Why: a bucket that refills too fast, holds more than the burst or forgets
 * a client lets one client take the gateway's whole capacity; one that
 * refills too slowly, or counts refused requests, shuts out well-behaved
 * dashboards with 429s; wrong Retry-After or RateLimit-* numbers make
 * clients retry at the wrong time. Believing X-Forwarded-For from anyone
 * lets a client pick a fresh address per request, while not believing it
 * from our own proxies puts every client behind them into one bucket. And
 * since the buckets live in shared memory, a bucket a dead process left
 * half-written (NaN, negative) or a lock it died holding must not refuse
 * or stop anyone.
 *
 * The table is the one of a real region (region_create() under a name
 * unique to this process, region_fixture.h), so its lock is set up the way
 * the gateway's is. Times are explicit milliseconds; the numbers are chosen
 * so that the token arithmetic is exact in binary floating point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "ratelimit.h"
#include "region.h"

#include "region_fixture.h"

#define T0 1000000 /* a monotonic "now" far from 0 */
#define RATE 10.0  /* tokens per second: one every 100 ms */
#define BURST 30

static struct ratelimit_table *table(void)
{
    assert_int_equal(region_create(&reg, make_name("rl"), TEST_SESSIONS), 0);
    return region_ratelimit(&reg);
}

/* An IPv4 address as a client_addr (v4-mapped). */
static struct client_addr addr4(const char *text)
{
    struct client_addr a;
    struct in_addr v4;

    memset(&a, 0, sizeof(a));
    assert_int_equal(inet_pton(AF_INET, text, &v4), 1);
    a.bytes[10] = a.bytes[11] = 0xff;
    memcpy(a.bytes + 12, &v4, 4);
    return a;
}

static struct client_addr addr6(const char *text)
{
    struct client_addr a;

    assert_int_equal(inet_pton(AF_INET6, text, a.bytes), 1);
    return a;
}

static struct ratelimit_verdict take(struct ratelimit_table *t,
                                     const struct client_addr *a, int64_t now)
{
    struct ratelimit_verdict v;

    memset(&v, 0x5a, sizeof(v)); /* every field must be written */
    assert_int_equal(ratelimit_take(t, a, RATE, BURST, now, &v), 0);
    return v;
}

/* Take N tokens of A at NOW, all allowed. */
static void drain(struct ratelimit_table *t, const struct client_addr *a, int n,
                  int64_t now)
{
    for (int i = 0; i < n; i++)
        if (!take(t, a, now).allowed)
            fail_msg("request %d of %d refused", i + 1, n);
}

/* The bucket that holds A, or NULL. */
static struct ratelimit_bucket *bucket_of(struct ratelimit_table *t,
                                          const struct client_addr *a)
{
    for (int i = 0; i < RATELIMIT_BUCKETS; i++)
        if (t->buckets[i].used && memcmp(&t->buckets[i].addr, a, sizeof(*a)) == 0)
            return &t->buckets[i];
    return NULL;
}

static void expect_verdict(struct ratelimit_verdict v, bool allowed, int64_t remaining,
                           int64_t retry_after_ms, int64_t reset_ms)
{
    assert_int_equal(v.allowed, allowed);
    assert_int_equal(v.limit, BURST);
    assert_int_equal(v.remaining, remaining);
    assert_int_equal(v.retry_after_ms, retry_after_ms);
    assert_int_equal(v.reset_ms, reset_ms);
}

/*========================================================================
 * Token buckets
 */

static void test_new_client_has_a_full_bucket(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");

    (void)state;
    /* One token taken of BURST; a full bucket again after 1/RATE s. */
    expect_verdict(take(t, &a, T0), true, BURST - 1, 0, 100);
    expect_verdict(take(t, &a, T0), true, BURST - 2, 0, 200);
}

static void test_burst_then_refused(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");

    (void)state;
    drain(t, &a, BURST - 1, T0);
    /* The last token: allowed, none left, full again in BURST / RATE s. */
    expect_verdict(take(t, &a, T0), true, 0, 0, 3000);
    /* Then refused, with the time until the next token (Retry-After). */
    expect_verdict(take(t, &a, T0), false, 0, 100, 3000);
    /* Half a token later: refused, half the wait. */
    expect_verdict(take(t, &a, T0 + 50), false, 0, 50, 2950);
}

static void test_refused_requests_cost_nothing(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");

    (void)state;
    drain(t, &a, BURST, T0);
    for (int i = 0; i < 100; i++)
        assert_false(take(t, &a, T0 + i / 2).allowed);
    /* Exactly one token has come after 1/RATE s, refusals or not. */
    expect_verdict(take(t, &a, T0 + 100), true, 0, 0, 3000);
    assert_false(take(t, &a, T0 + 100).allowed);
}

static void test_refill_at_rate(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");

    (void)state;
    drain(t, &a, BURST, T0);
    /* 75 ms: not yet a whole token (25 ms to go). */
    expect_verdict(take(t, &a, T0 + 75), false, 0, 25, 2925);
    /* One second: RATE tokens, one of them taken now. */
    expect_verdict(take(t, &a, T0 + 1000), true, 9, 0, 2100);
    drain(t, &a, 9, T0 + 1000);
    assert_false(take(t, &a, T0 + 1000).allowed);
    /* The refill counts from the last request, not from the first. */
    expect_verdict(take(t, &a, T0 + 1250), true, 1, 0, 2850);
}

static void test_refill_capped_at_burst(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    struct ratelimit_verdict v;

    (void)state;
    drain(t, &a, 5, T0);
    /* An hour idle: a full bucket, not 36000 tokens. */
    expect_verdict(take(t, &a, T0 + 3600000), true, BURST - 1, 0, 100);
    /* A smaller burst (a reload) caps a fuller bucket at once. */
    assert_int_equal(ratelimit_take(t, &a, RATE, 5, T0 + 3600000, &v), 0);
    assert_true(v.allowed);
    assert_int_equal(v.limit, 5);
    assert_int_equal(v.remaining, 4);
    assert_int_equal(v.reset_ms, 100);
}

static void test_earlier_time_changes_nothing(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    struct client_addr b = addr4("198.51.100.8");

    (void)state;
    /* Workers read the clock before they get the lock, so a request may
     * carry a time earlier than the bucket's last one: no tokens for it. */
    drain(t, &a, BURST, T0 + 1000);
    expect_verdict(take(t, &a, T0), false, 0, 100, 3000);
    /* Nor does it take any away. */
    expect_verdict(take(t, &b, T0 + 1000), true, BURST - 1, 0, 100);
    expect_verdict(take(t, &b, T0), true, BURST - 2, 0, 200);
}

static void test_fractional_rate(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    struct ratelimit_verdict v;

    (void)state;
    /* Half a token per second, a burst of 1: one request every 2 s. */
    assert_int_equal(ratelimit_take(t, &a, 0.5, 1, T0, &v), 0);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.reset_ms, 2000);
    assert_int_equal(ratelimit_take(t, &a, 0.5, 1, T0 + 1000, &v), 0);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_ms, 1000);
    assert_int_equal(ratelimit_take(t, &a, 0.5, 1, T0 + 2000, &v), 0);
    assert_true(v.allowed);
}

static void test_clients_have_their_own_buckets(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    struct client_addr b = addr4("198.51.100.8");
    struct client_addr b6 = addr6("::ffff:198.51.100.8");
    struct client_addr c = addr6("2001:db8::7");

    (void)state;
    drain(t, &a, BURST, T0);
    assert_false(take(t, &a, T0).allowed);
    expect_verdict(take(t, &b, T0), true, BURST - 1, 0, 100);
    expect_verdict(take(t, &c, T0), true, BURST - 1, 0, 100);
    /* The v4-mapped spelling of an IPv4 client is the same client. */
    expect_verdict(take(t, &b6, T0), true, BURST - 2, 0, 200);
    assert_false(take(t, &a, T0).allowed);
}

/*========================================================================
 * A bucket or a lock left by a process that died
 */

static void test_nan_and_negative_tokens_repaired(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    struct ratelimit_bucket *b;

    (void)state;
    take(t, &a, T0);
    b = bucket_of(t, &a);
    assert_non_null(b);

    /* NaN (a torn double): as if full; never a refusal, never NaN again. */
    b->tokens = NAN;
    expect_verdict(take(t, &a, T0), true, BURST - 1, 0, 100);
    assert_true(b->tokens == BURST - 1);

    b->tokens = INFINITY;
    expect_verdict(take(t, &a, T0), true, BURST - 1, 0, 100);

    /* Below zero: as if empty, and it is not kept below zero. */
    b->tokens = -5.0;
    expect_verdict(take(t, &a, T0), false, 0, 100, 3000);
    assert_true(b->tokens == 0.0);
    expect_verdict(take(t, &a, T0 + 100), true, 0, 0, 3000);
}

static void test_lock_of_dead_holder_recovered(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    pid_t pid;
    int status;

    (void)state;
    drain(t, &a, 3, T0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pthread_mutex_lock(&t->lock);
        _exit(0); /* dies holding the table's lock */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* The next request goes on, with the bucket as it was... */
    expect_verdict(take(t, &a, T0), true, BURST - 4, 0, 400);
    /* ...and so do the ones after it: the mutex is consistent again. */
    expect_verdict(take(t, &a, T0), true, BURST - 5, 0, 500);
}

static void test_unusable_lock_allows(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    struct ratelimit_verdict v;
    pid_t pid;
    int status;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pthread_mutex_lock(&t->lock);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* Unlocked without being made consistent: unusable for good. */
    assert_int_equal(pthread_mutex_lock(&t->lock), EOWNERDEAD);
    pthread_mutex_unlock(&t->lock);

    /* Our fault, not the client's: -1, and the request is allowed. */
    for (int i = 0; i < BURST + 5; i++) {
        memset(&v, 0, sizeof(v));
        assert_int_equal(ratelimit_take(t, &a, RATE, BURST, T0, &v), -1);
        assert_true(v.allowed);
        assert_int_equal(v.limit, BURST);
        assert_int_equal(v.remaining, BURST);
    }
}

/*========================================================================
 * A full table
 */

/* The slot A takes in an empty table (the start of its probe window). */
static int home_of(struct ratelimit_table *t, const struct client_addr *a)
{
    struct ratelimit_bucket *b;

    take(t, a, T0);
    b = bucket_of(t, a);
    assert_non_null(b);
    memset(b, 0, sizeof(*b));
    return (int)(b - t->buckets);
}

/* Slot K of the probe window that starts at HOME. */
static struct ratelimit_bucket *probe(struct ratelimit_table *t, int home, int k)
{
    return &t->buckets[(home + k) % RATELIMIT_BUCKETS];
}

/* Fill the window at HOME with other clients, used at T0 + 10 * K. */
static void fill_window(struct ratelimit_table *t, int home)
{
    for (int k = 0; k < RATELIMIT_PROBES; k++) {
        struct ratelimit_bucket *b = probe(t, home, k);
        char text[64];

        snprintf(text, sizeof(text), "2001:db8::%x", k + 1);
        b->used = true;
        b->addr = addr6(text);
        b->tokens = 3.0;
        b->last_ms = T0 + 10 * k;
    }
}

static void test_full_window_reuses_least_recently_used(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    int home = home_of(t, &a);

    (void)state;
    fill_window(t, home);
    /* Slot 5 was used least recently (not slot 0, the oldest by place). */
    probe(t, home, 5)->last_ms = T0 - 1000;

    /* A new client, no free slot: it takes slot 5, with a full bucket. */
    expect_verdict(take(t, &a, T0 + 500), true, BURST - 1, 0, 100);
    assert_ptr_equal(bucket_of(t, &a), probe(t, home, 5));
    assert_true(probe(t, home, 5)->last_ms == T0 + 500);
    for (int k = 0; k < RATELIMIT_PROBES; k++) {
        char text[64];
        struct client_addr other;

        if (k == 5)
            continue;
        snprintf(text, sizeof(text), "2001:db8::%x", k + 1);
        other = addr6(text);
        assert_memory_equal(&probe(t, home, k)->addr, &other, sizeof(other));
        assert_true(probe(t, home, k)->tokens == 3.0);
        assert_true(probe(t, home, k)->last_ms == T0 + 10 * k);
    }
    /* Nothing outside the window was touched. */
    assert_false(probe(t, home, RATELIMIT_PROBES)->used);
    /* The client is found again in its slot: its bucket goes on. */
    expect_verdict(take(t, &a, T0 + 500), true, BURST - 2, 0, 200);
    assert_ptr_equal(bucket_of(t, &a), probe(t, home, 5));
}

static void test_free_slot_before_reuse(void **state)
{
    struct ratelimit_table *t = table();
    struct client_addr a = addr4("198.51.100.7");
    int home = home_of(t, &a);

    (void)state;
    fill_window(t, home);
    probe(t, home, 1)->last_ms = T0 - 1000; /* the least recently used */
    memset(probe(t, home, 4), 0, sizeof(struct ratelimit_bucket));

    /* A free slot in the window is taken before anyone's bucket. */
    expect_verdict(take(t, &a, T0 + 500), true, BURST - 1, 0, 100);
    assert_ptr_equal(bucket_of(t, &a), probe(t, home, 4));
    assert_true(probe(t, home, 1)->used);
    assert_true(probe(t, home, 1)->tokens == 3.0);
    /* Found past the other clients of its window the next time. */
    expect_verdict(take(t, &a, T0 + 500), true, BURST - 2, 0, 200);
}

/*========================================================================
 * Client addresses
 */

static void test_addr_from_sockaddr(void **state)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr_un sun;
    struct client_addr a, want;

    (void)state;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(4242);
    assert_int_equal(inet_pton(AF_INET, "192.0.2.33", &sin.sin_addr), 1);
    assert_true(ratelimit_addr_from_sockaddr((struct sockaddr *)&sin, &a));
    /* IPv4 as ::ffff:a.b.c.d; the port is not part of the client. */
    want = addr6("::ffff:192.0.2.33");
    assert_memory_equal(&a, &want, sizeof(a));

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(4243);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1:2", &sin6.sin6_addr), 1);
    assert_true(ratelimit_addr_from_sockaddr((struct sockaddr *)&sin6, &a));
    want = addr6("2001:db8::1:2");
    assert_memory_equal(&a, &want, sizeof(a));

    /* A v4-mapped IPv6 peer (a dual-stack socket) is the same client as
     * the IPv4 one. */
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.33", &sin6.sin6_addr), 1);
    assert_true(ratelimit_addr_from_sockaddr((struct sockaddr *)&sin6, &a));
    want = addr4("192.0.2.33");
    assert_memory_equal(&a, &want, sizeof(a));

    /* Another family: no address (and no stale bytes). */
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memset(&a, 0x77, sizeof(a));
    assert_false(ratelimit_addr_from_sockaddr((struct sockaddr *)&sun, &a));
    memset(&want, 0, sizeof(want));
    assert_memory_equal(&a, &want, sizeof(a));
}

/*========================================================================
 * The client behind trusted proxies
 */

static struct config *cfg;

/* A configuration whose server.trusted_proxies is PROXIES ("" for none). */
static const struct config *with_proxies(const char *proxies)
{
    struct config_errors *errs = calloc(1, sizeof(*errs));

    if (cfg == NULL)
        cfg = calloc(1, sizeof(*cfg));
    assert_non_null(cfg);
    assert_non_null(errs);
    config_defaults(cfg);
    if (proxies[0] != '\0' &&
        config_set(cfg, "server", "trusted_proxies", proxies, "test", 0, errs) != 0)
        fail_msg("trusted_proxies = %s: %s", proxies, errs->message[0]);
    free(errs);
    return cfg;
}

static int free_cfg(void **state)
{
    (void)state;
    free(cfg);
    cfg = NULL;
    return 0;
}

/* The client a request from PEER with X-Forwarded-For XFF counts as is WANT. */
static void expect_client(const struct config *c, const char *peer, const char *xff,
                          const char *want)
{
    struct client_addr p = strchr(peer, ':') ? addr6(peer) : addr4(peer);
    struct client_addr w = strchr(want, ':') ? addr6(want) : addr4(want);
    struct client_addr out;

    memset(&out, 0x77, sizeof(out));
    ratelimit_client(c, &p, xff, &out);
    if (memcmp(&out, &w, sizeof(w)) != 0) {
        char got[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, out.bytes, got, sizeof(got));
        fail_msg("peer %s, X-Forwarded-For \"%s\": counted as %s, not %s", peer,
                 xff ? xff : "(none)", got, want);
    }
}

static void test_client_without_trusted_proxies(void **state)
{
    const struct config *c = with_proxies("");

    (void)state;
    /* Nobody is trusted: X-Forwarded-For is anyone's to write. */
    expect_client(c, "203.0.113.9", NULL, "203.0.113.9");
    expect_client(c, "203.0.113.9", "198.51.100.1", "203.0.113.9");
    expect_client(c, "10.0.0.1", "198.51.100.1", "10.0.0.1");
}

static void test_client_from_untrusted_peer(void **state)
{
    const struct config *c = with_proxies("10.0.0.0/8");

    (void)state;
    expect_client(c, "203.0.113.9", "198.51.100.1", "203.0.113.9");
    expect_client(c, "11.0.0.1", "198.51.100.1", "11.0.0.1");
    /* A trusted proxy without the header is the client itself. */
    expect_client(c, "10.0.0.1", NULL, "10.0.0.1");
}

static void test_client_right_most_untrusted_hop(void **state)
{
    const struct config *c = with_proxies("10.0.0.0/8, fd00::/8");

    (void)state;
    expect_client(c, "10.0.0.1", "198.51.100.1", "198.51.100.1");
    /* What the client wrote itself (left of the first untrusted hop) is
     * not believed: the right-most address that is not ours is. */
    expect_client(c, "10.0.0.1", "1.2.3.4, 198.51.100.1", "198.51.100.1");
    expect_client(c, "10.0.0.1", "1.2.3.4, 198.51.100.1, 10.9.8.7, 10.0.0.2",
                  "198.51.100.1");
    /* Blanks around the items, IPv6 hops and proxies. */
    expect_client(c, "10.0.0.1", "1.2.3.4,\t198.51.100.1 ,  10.0.0.2 ", "198.51.100.1");
    expect_client(c, "fd00::1", "2001:db8::5, fd12::9", "2001:db8::5");
    expect_client(c, "::ffff:10.0.0.1", "2001:db8::5", "2001:db8::5");
    /* Every hop is ours: the left-most one is as far as we can see. */
    expect_client(c, "10.0.0.1", "10.1.1.1, 10.0.0.2", "10.1.1.1");
}

static void test_client_cidr_prefixes(void **state)
{
    const struct config *c =
        with_proxies("192.168.0.0/23, 172.16.5.4, 2001:db8:ab00::/40");

    (void)state;
    /* /23: 192.168.0.x and 192.168.1.x are ours, 192.168.2.x is not. */
    expect_client(c, "192.168.1.200", "198.51.100.1", "198.51.100.1");
    expect_client(c, "192.168.0.1", "198.51.100.1", "198.51.100.1");
    expect_client(c, "192.168.2.1", "198.51.100.1", "192.168.2.1");
    /* A bare address is a /32. */
    expect_client(c, "172.16.5.4", "198.51.100.1", "198.51.100.1");
    expect_client(c, "172.16.5.5", "198.51.100.1", "172.16.5.5");
    /* /40 of IPv6: the first five bytes. */
    expect_client(c, "2001:db8:abff::1", "198.51.100.1", "198.51.100.1");
    expect_client(c, "2001:db8:ac00::1", "198.51.100.1", "2001:db8:ac00::1");
    /* An IPv4 proxy list says nothing of IPv6 peers, and the other way. */
    expect_client(c, "::c0a8:1", "198.51.100.1", "::c0a8:1");
}

static void test_client_unparsable_xff_keeps_peer(void **state)
{
    const struct config *c = with_proxies("10.0.0.0/8");

    (void)state;
    expect_client(c, "10.0.0.1", "", "10.0.0.1");
    expect_client(c, "10.0.0.1", "unknown", "10.0.0.1");
    expect_client(c, "10.0.0.1", "198.51.100.1:4242", "10.0.0.1");
    expect_client(c, "10.0.0.1", "198.51.100.1,", "10.0.0.1");
    expect_client(c, "10.0.0.1", ",", "10.0.0.1");
    expect_client(c, "10.0.0.1", "198.51.100.1, , 10.0.0.2", "10.0.0.1");
    expect_client(c, "10.0.0.1", "198.51.100.300", "10.0.0.1");
    /* Garbage behind one of our proxies: still the peer, not that proxy. */
    expect_client(c, "10.0.0.1", "garbage, 10.0.0.2", "10.0.0.1");
    /* Garbage further left than the client's hop does not matter. */
    expect_client(c, "10.0.0.1", "garbage, 198.51.100.1", "198.51.100.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
        T(test_new_client_has_a_full_bucket),
        T(test_burst_then_refused),
        T(test_refused_requests_cost_nothing),
        T(test_refill_at_rate),
        T(test_refill_capped_at_burst),
        T(test_earlier_time_changes_nothing),
        T(test_fractional_rate),
        T(test_clients_have_their_own_buckets),
        T(test_nan_and_negative_tokens_repaired),
        T(test_lock_of_dead_holder_recovered),
        T(test_unusable_lock_allows),
        T(test_full_window_reuses_least_recently_used),
        T(test_free_slot_before_reuse),
        T(test_addr_from_sockaddr),
#undef T
#define C(f) cmocka_unit_test_teardown(f, free_cfg)
        C(test_client_without_trusted_proxies),
        C(test_client_from_untrusted_peer),
        C(test_client_right_most_untrusted_hop),
        C(test_client_cidr_prefixes),
        C(test_client_unparsable_xff_keeps_peer),
#undef C
    };

    return cmocka_run_group_tests_name("ratelimit", tests, group_setup, group_teardown);
}
