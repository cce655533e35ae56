/*
 * stats.c - print the counters of a running wahagate (wahagate --stats).
 *
 * DESIGN
 * Attaches the region read-only (PROT_READ), so it cannot change anything,
 * and reads only the per-process counters, which are atomics with a single
 * writer each; it never takes the region lock, so it cannot stall the
 * server whatever happens to it.
 */
#include "stats.h"

#include <stdatomic.h>
#include <stdio.h>

#include "region.h"
#include "timeutil.h"

int stats_print(const struct config *cfg)
{
    struct region r;
    char why[256];
    const struct region_header *h;
    int64_t now = time_mono_ms();

    if (region_attach_read_only(&r, cfg->server.shm_name, why, sizeof(why)) != 0) {
        fprintf(stderr, "wahagate: %s\n", why);
        return 1;
    }
    h = region_header(&r);
    printf("wahagate (master pid %d), up %.0f s, shm %s\n\n",
           (int)atomic_load(&((struct region_header *)h)->master_pid),
           (now - h->started_mono_ms) / 1000.0, cfg->server.shm_name);
    printf("%-6s %-8s %8s", "slot", "role", "pid");
    for (int c = 0; c < COUNTER_COUNT; c++)
        printf(" %15s", counter_names[c]);
    printf("\n");
    for (int i = 0; i < REGION_MAX_PROCS; i++) {
        struct region_proc *p = region_proc(&r, i);
        uint32_t role = atomic_load(&p->role);
        if (role == ROLE_NONE || role >= ROLE_COUNT)
            continue;
        printf("%-6d %-8s %8d", i, proc_role_names[role], (int)atomic_load(&p->pid));
        for (int c = 0; c < COUNTER_COUNT; c++)
            printf(" %15llu", (unsigned long long)atomic_load(&p->counters[c]));
        printf("\n");
    }
    printf("%-6s %-8s %8s", "total", "", "");
    for (int c = 0; c < COUNTER_COUNT; c++)
        printf(" %15llu", (unsigned long long)region_counter_sum(&r, c));
    printf("\n");
    region_detach(&r);
    return 0;
}
