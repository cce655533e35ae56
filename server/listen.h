/*
 * listen.h - open the listen sockets named by server.listen.
 *
 * The master opens them before it forks, so every worker (and every
 * respawned worker) accepts from the same sockets and their queues survive a
 * worker's death.
 */
#ifndef WAHAGATE_LISTEN_H
#define WAHAGATE_LISTEN_H

#include "config.h"

/*
 * listen_open - a non-blocking listening TCP socket for each of the COUNT
 * addresses, stored in FDS. Returns 0, or -1 (logged, nothing left open).
 */
int listen_open(const struct listen_addr *addrs, int count, int *fds);

void listen_close(int *fds, int count);

#endif
