/*
 * accept.c - the listen sockets in a worker (see accept.h).
 *
 * DESIGN
 * Every worker polls the same listening sockets (opened by the master) and
 * takes one connection per wakeup (nginx's default, without multi_accept).
 * A worker that drained the whole queue at once would keep a burst of new
 * clients (a load balancer opening its pool, wrk starting) to itself while
 * the other workers idle, and serve them all with the latency of one busy
 * loop; one at a time, the workers woken together share the burst.
 *
 * Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), a worker
 * stops accepting for 100 ms instead of spinning on a socket that stays
 * readable; the connection waits in the queue, maybe for another worker.
 */
#include "accept.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static struct {
    struct listener {
        struct event *readable; /* NULL once closed */
        int fd;
        bool admin; /* server.admin_listen: stats and metrics only */
    } listeners[LISTEN_MAX];
    int count;
    struct event *resume; /* re-enables the listeners after EMFILE */
    accept_cb on_accept;
    bool stopped;
} ac;

static void pause_listeners(bool paused)
{
    for (int i = 0; i < ac.count; i++) {
        if (ac.listeners[i].readable == NULL)
            continue;
        if (paused)
            event_del(ac.listeners[i].readable);
        else
            event_add(ac.listeners[i].readable, NULL);
    }
}

static void on_listener_readable(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval pause = {0, 100000};
    const struct listener *l = arg;
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof(addr);
    int conn_fd;

    (void)what;
    conn_fd =
        accept4(fd, (struct sockaddr *)&addr, &addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn_fd >= 0) {
        ac.on_accept(conn_fd, (struct sockaddr *)&addr, l->admin);
        return;
    }
    if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR)
        return; /* another worker took it, or the client gave up while it waited */
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        log_warn(errno, "accept() failed; pausing for 100 ms");
        pause_listeners(true);
        evtimer_add(ac.resume, &pause);
        return;
    }
    log_warn(errno, "accept() failed"); /* an error of that connection, passed on */
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!ac.stopped)
        pause_listeners(false);
}

int accept_start(struct event_base *base, const struct listeners *ls, accept_cb on_accept)
{
    memset(&ac, 0, sizeof(ac));
    ac.on_accept = on_accept;
    ac.resume = evtimer_new(base, on_resume, NULL);
    if (ac.resume == NULL) {
        log_error(0, "cannot set up the listen sockets");
        return -1;
    }
    for (int i = 0; i < ls->count; i++) {
        struct listener *l = &ac.listeners[i];

        l->fd = ls->fds[i];
        l->admin = ls->admin[i];
        l->readable =
            event_new(base, l->fd, EV_READ | EV_PERSIST, on_listener_readable, l);
        if (l->readable == NULL || event_add(l->readable, NULL) != 0) {
            log_error(0, "cannot accept on %s:%u", ls->addrs[i].host, ls->addrs[i].port);
            if (l->readable != NULL)
                event_free(l->readable);
            l->readable = NULL;
            return -1;
        }
        ac.count++;
    }
    return 0;
}

void accept_stop(void)
{
    ac.stopped = true;
    for (int i = 0; i < ac.count; i++) {
        if (ac.listeners[i].readable == NULL)
            continue;
        event_free(ac.listeners[i].readable);
        close(ac.listeners[i].fd); /* this process's copy: the others keep theirs */
        ac.listeners[i].readable = NULL;
    }
    if (ac.resume != NULL)
        event_free(ac.resume);
    ac.resume = NULL;
}
