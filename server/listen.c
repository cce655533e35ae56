/*
 * listen.c - resolve "host:port" and open non-blocking listening sockets.
 *
 * DESIGN
 * Sockets are non-blocking because every worker polls the same socket and
 * libevent 2.1 does not use EPOLLEXCLUSIVE: all workers wake for a new
 * connection, one accept() wins and the others must get EAGAIN rather than
 * block. SO_REUSEADDR lets a restarted gateway bind while old connections
 * are in TIME_WAIT. "*" means every IPv4 address.
 */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define LISTEN_BACKLOG 1024

static int open_one(const struct listen_addr *a)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    int fd = -1, one = 1, rc;

    snprintf(port, sizeof(port), "%u", a->port);
    if (strcmp(a->host, "*") == 0)
        hints.ai_family = AF_INET;
    rc = getaddrinfo(strcmp(a->host, "*") == 0 ? NULL : a->host, port, &hints, &res);
    if (rc != 0) {
        log_error(0, "cannot resolve listen address %s:%u: %s", a->host, a->port,
                  gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                res->ai_protocol);
    if (fd < 0) {
        log_error(errno, "socket() for %s:%u failed", a->host, a->port);
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        log_error(errno, "bind() to %s:%u failed", a->host, a->port);
        goto fail;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        log_error(errno, "listen() on %s:%u failed", a->host, a->port);
        goto fail;
    }
    freeaddrinfo(res);
    return fd;

fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

int listen_open(const struct listen_addr *addrs, int count, int *fds)
{
    for (int i = 0; i < count; i++) {
        fds[i] = open_one(&addrs[i]);
        if (fds[i] < 0) {
            listen_close(fds, i);
            return -1;
        }
    }
    return 0;
}

void listen_close(int *fds, int count)
{
    for (int i = 0; i < count; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}
