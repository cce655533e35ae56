/*
 * listen.c - resolve "host:port" and open non-blocking listening sockets.
 *
 * DESIGN
 * Sockets are non-blocking because every worker polls the same socket and
 * libevent 2.1 does not use EPOLLEXCLUSIVE: all workers wake for a new
 * connection, one accept() wins and the others must get EAGAIN rather than
 * block. SO_REUSEADDR lets a restarted gateway bind while old connections
 * are in TIME_WAIT. "*" means every IPv4 address. A reload passes the
 * current set so that addresses that stay keep their sockets (and queues).
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

static int find(const struct listeners *set, const struct listen_addr *a, bool admin)
{
    for (int i = 0; set != NULL && i < set->count; i++)
        if (set->admin[i] == admin && set->addrs[i].port == a->port &&
            strcmp(set->addrs[i].host, a->host) == 0)
            return i;
    return -1;
}

static int add(const struct listeners *current, struct listeners *next,
               const struct listen_addr *a, bool admin)
{
    int i = next->count, old = find(current, a, admin);

    next->addrs[i] = *a;
    next->admin[i] = admin;
    next->fds[i] = old >= 0 ? current->fds[old] : open_one(a);
    if (next->fds[i] < 0)
        return -1;
    next->count++;
    return 0;
}

int listeners_open(const struct config *cfg, const struct listeners *current,
                   struct listeners *next)
{
    next->count = 0;
    for (int i = 0; i < cfg->server.listen_count; i++)
        if (add(current, next, &cfg->server.listen[i], false) != 0)
            goto fail;
    for (int i = 0; i < cfg->server.admin_listen_count; i++)
        if (add(current, next, &cfg->server.admin_listen[i], true) != 0)
            goto fail;
    return 0;
fail:
    listeners_close(next, current);
    next->count = 0;
    return -1;
}

void listeners_close(const struct listeners *set, const struct listeners *keep)
{
    for (int i = 0; i < set->count; i++) {
        bool kept = false;
        for (int j = 0; keep != NULL && j < keep->count; j++)
            kept |= keep->fds[j] == set->fds[i];
        if (!kept && set->fds[i] >= 0)
            close(set->fds[i]);
    }
}
