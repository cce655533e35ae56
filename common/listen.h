/*
 * listen.h - the listen sockets named by server.listen and
 * server.admin_listen.
 *
 * The master opens them before it forks, so every worker (and every
 * respawned worker) accepts from the same sockets and their queues survive a
 * worker's death. On reload, an address that stays keeps its socket.
 */
#ifndef WAHAGATE_LISTEN_H
#define WAHAGATE_LISTEN_H

#include <stdbool.h>

#include "config.h"

#define LISTEN_MAX (2 * CONFIG_MAX_LISTEN)

struct listeners {
    int count;
    struct listen_addr addrs[LISTEN_MAX];
    bool admin[LISTEN_MAX]; /* serves only the stats and the metrics */
    int fds[LISTEN_MAX];    /* non-blocking listening sockets */
};

/*
 * listeners_open - the sockets CFG asks for (server.listen, then
 * server.admin_listen) into NEXT. An address that CURRENT (may be NULL) has
 * keeps CURRENT's socket. Returns 0, or -1 (logged) having closed only what
 * it opened.
 */
int listeners_open(const struct config *cfg, const struct listeners *current,
                   struct listeners *next);

/* listeners_close - close SET's sockets, except those KEEP (may be NULL) has. */
void listeners_close(const struct listeners *set, const struct listeners *keep);

#endif
