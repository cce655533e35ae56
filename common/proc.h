/*
 * proc.h - what crosses fork(), and what every child does first.
 *
 * The master forks children from one place (master.c); a child starts in
 * proc_child_start() and then runs its role's entry point (worker_main()
 * in server/worker/worker.h, fetcher_main() in server/fetcher/fetcher.h),
 * which never returns. Everything a child inherits is written down in struct
 * heritage, so there is one list to read when asking "what does a worker
 * share with the master?".
 */
#ifndef WAHAGATE_PROC_H
#define WAHAGATE_PROC_H

#include "config.h"
#include "listen.h"
#include "region.h"

/* Exit codes of children. */
enum proc_exit {
    PROC_EXIT_OK = 0,
    PROC_EXIT_FAILURE = 1, /* could not start; respawned with backoff */
};

struct heritage {
    const struct config *cfg;   /* the master's copy, read-only */
    struct region *region;      /* mapped before fork, same address */
    struct listeners listeners; /* non-blocking, shared by the workers */
    int slot;                   /* the child's stat slot in the region */
    int master_pid;
};

/*
 * proc_title_init - remember where argv lives so proc_title_set() can
 * overwrite it (moving the environment out of the way). Call once in main()
 * before anything reads argv again.
 */
void proc_title_init(int argc, char **argv);

/* proc_title_set - the title ps shows: "wahagate: worker". */
void proc_title_set(const char *title);

/*
 * proc_child_start - the first steps of every child: default signal
 * dispositions and an empty mask, die with the master (PR_SET_PDEATHSIG),
 * close the region's descriptor, set the title and log role, drop
 * privileges to server.user, and claim stat slot H->slot. Returns 0 or -1
 * (logged); on -1 the child exits with PROC_EXIT_FAILURE.
 */
int proc_child_start(const struct heritage *h, enum proc_role role);

#endif
