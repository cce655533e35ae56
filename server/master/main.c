/*
 * main.c - the command line: run, check (-t), version (-V), stats.
 *
 * Nothing here belongs to a role: it parses arguments, loads the
 * configuration and hands over to master_run() or stats_print().
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "proc.h"
#include "stats.h"

#define INSTALLED_CONFIG "/etc/wahagate/waha.ini"

static void usage(FILE *out)
{
    fprintf(out, "usage: wahagate [-c FILE] [-t] [-V] [--stats [--json]]\n"
                 "  -c, --config FILE  waha.ini to use (default: ./waha.ini if it\n"
                 "                     exists, else " INSTALLED_CONFIG ")\n"
                 "  -t, --test         check the configuration and exit\n"
                 "  -V, --version      print the version and exit\n"
                 "      --stats        print the running instance's counters\n"
                 "      --json         with --stats: print the stats object\n"
                 "  -h, --help         this help\n");
}

static void print_errors(const struct config_errors *errs)
{
    for (int i = 0; i < errs->count; i++)
        fprintf(stderr, "%s\n", errs->message[i]);
    if (errs->truncated)
        fprintf(stderr, "(more errors not shown)\n");
}

static int run(int argc, char **argv, const struct config *cfg)
{
    proc_title_init(argc, argv);
    log_set_level((enum log_level)cfg->log.level);
    if (log_open(cfg->log.file) != 0) {
        fprintf(stderr, "wahagate: cannot open log file \"%s\": %m\n", cfg->log.file);
        return 1;
    }
    return master_run(cfg);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"stats", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool test = false, stats = false, json = false;
    struct config *cfg;
    struct config_errors *errs;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "c:tVh", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': test = true; break;
        case 'V': printf("wahagate %s\n", WAHAGATE_VERSION); return 0;
        case 'S': stats = true; break;
        case 'J': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wahagate: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (path == NULL)
        path = access("waha.ini", F_OK) == 0 ? "waha.ini" : INSTALLED_CONFIG;

    cfg = malloc(sizeof(*cfg));
    errs = malloc(sizeof(*errs));
    if (cfg == NULL || errs == NULL) {
        fprintf(stderr, "wahagate: out of memory\n");
        rc = 1;
    } else if (config_load(path, NULL, cfg, errs) != 0) {
        print_errors(errs);
        if (test)
            fprintf(stderr, "configuration test failed\n");
        rc = 1;
    } else if (test) {
        if (config_figures_open(cfg))
            fprintf(stderr, "wahagate: warning: %s: %s\n", path,
                    CONFIG_FIGURES_OPEN_WARNING);
        printf("configuration OK\n");
        rc = 0;
    } else if (stats) {
        rc = stats_print(cfg, json);
    } else {
        rc = run(argc, argv, cfg);
    }
    free(errs);
    free(cfg);
    return rc;
}
