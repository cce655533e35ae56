/*
 * accept.h - the worker's side of the listen sockets: new connections,
 * handed to the transport (conn.c) one per wakeup.
 */
#ifndef WAHAGATE_ACCEPT_H
#define WAHAGATE_ACCEPT_H

#include <stdbool.h>

#include <sys/socket.h>

#include <event2/event.h>

#include "listen.h"

/* Called with each accepted connection FD (non-blocking, close-on-exec),
 * its peer ADDR, and whether it came on a server.admin_listen socket. */
typedef void (*accept_cb)(int fd, const struct sockaddr *addr, bool admin);

/*
 * accept_start - poll every socket of LISTENERS on BASE and call ON_ACCEPT
 * for each connection. Returns 0, or -1 (logged; what was set up stays
 * until accept_stop()).
 */
int accept_start(struct event_base *base, const struct listeners *listeners,
                 accept_cb on_accept);

/* accept_stop - stop accepting and close this process's copies of the
 * listen sockets (the other processes keep theirs). */
void accept_stop(void);

#endif
