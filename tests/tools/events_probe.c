/*
 * events_probe.c - server/fetcher/events.c (and events_ws.c) on its own, for
 * the tests (tests/integration/test_events_probe.py).
 *
 *   events_probe [--ping-ms N] [--silence-ms N] [--backoff-first-ms N]
 *                [--backoff-max-ms N] [--connect-timeout-ms N]
 *                [--max-message N] [--log-level L] URL
 *
 * URL is what upstream.url would be: http[s]://host[:port][/prefix]. The
 * API key comes from the environment variable EVENTS_PROBE_KEY, never from
 * the command line (anyone can read /proc/PID/cmdline). Options not given
 * keep events_options_defaults().
 *
 * DESIGN
 * One event_base, the module, and two signal events. Every state change and
 * every message is one line on stdout, flushed at once, led by the
 * monotonic time in ms so that tests can measure delays:
 *   <ms> state <name> <why>
 *   <ms> message <len> <text, CR and LF shown as spaces>
 * The module's log lines go to stderr. SIGTERM or SIGINT stops the module,
 * prints "<ms> stats attempts=A connects=C messages=M", frees everything
 * and exits 0, so that AddressSanitizer's leak check sees a clean end.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "events.h"
#include "log.h"
#include "timeutil.h"

static struct event_base *base;

static void on_state(enum events_state state, const char *why, void *arg)
{
    (void)arg;
    printf("%lld state %s %s\n", (long long)time_mono_ms(), events_state_names[state],
           why);
}

static void on_message(const char *text, size_t len, void *arg)
{
    (void)arg;
    printf("%lld message %zu ", (long long)time_mono_ms(), len);
    for (size_t i = 0; i < len; i++)
        putchar(text[i] == '\n' || text[i] == '\r' ? ' ' : text[i]);
    putchar('\n');
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopexit(base, NULL);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: events_probe [--ping-ms N] [--silence-ms N] "
            "[--backoff-first-ms N] [--backoff-max-ms N] [--connect-timeout-ms N] "
            "[--max-message N] [--log-level L] URL\n"
            "The API key is read from EVENTS_PROBE_KEY.\n");
    return 2;
}

/* The options into OPT; the URL's index in argv, or -1. */
static int parse_args(int argc, char **argv, struct events_options *opt)
{
    static const struct option longs[] = {
        {"ping-ms", required_argument, NULL, 'p'},
        {"silence-ms", required_argument, NULL, 's'},
        {"backoff-first-ms", required_argument, NULL, 'f'},
        {"backoff-max-ms", required_argument, NULL, 'm'},
        {"connect-timeout-ms", required_argument, NULL, 'c'},
        {"max-message", required_argument, NULL, 'x'},
        {"log-level", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    int c, level;

    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'p': opt->ping_ms = atoll(optarg); break;
        case 's': opt->silence_ms = atoll(optarg); break;
        case 'f': opt->backoff_first_ms = atoll(optarg); break;
        case 'm': opt->backoff_max_ms = atoll(optarg); break;
        case 'c': opt->connect_timeout_ms = atoll(optarg); break;
        case 'x': opt->max_message = (size_t)atoll(optarg); break;
        case 'l':
            level = log_level_parse(optarg);
            if (level < 0)
                return -1;
            log_set_level((enum log_level)level);
            break;
        default: return -1;
        }
    }
    return optind == argc - 1 ? optind : -1;
}

int main(int argc, char **argv)
{
    struct events_options opt;
    struct event *signals[2];
    struct events_stats stats;
    int url, status = 0;

    events_options_defaults(&opt);
    url = parse_args(argc, argv, &opt);
    if (url < 0)
        return usage();
    opt.upstream_url = argv[url];
    opt.api_key = getenv("EVENTS_PROBE_KEY");
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_open(NULL);
    log_set_role("probe");
    srandom((unsigned)getpid() ^ (unsigned)time_mono_us());
    base = event_base_new();
    if (base == NULL)
        return 1;
    signals[0] = evsignal_new(base, SIGTERM, on_signal, NULL);
    signals[1] = evsignal_new(base, SIGINT, on_signal, NULL);
    evsignal_add(signals[0], NULL);
    evsignal_add(signals[1], NULL);
    if (events_start(base, &opt, on_message, on_state, NULL) != 0)
        status = 1;
    else
        event_base_dispatch(base);
    events_stats(&stats);
    events_stop();
    event_base_loop(base, EVLOOP_NONBLOCK); /* delivers a cancelled lookup (events.h) */
    printf("%lld stats attempts=%llu connects=%llu messages=%llu\n",
           (long long)time_mono_ms(), (unsigned long long)stats.attempts,
           (unsigned long long)stats.connects, (unsigned long long)stats.messages);
    event_free(signals[0]);
    event_free(signals[1]);
    event_base_free(base);
    libevent_global_shutdown();
    return status;
}
