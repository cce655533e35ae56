/*
 * proc.c - process titles and the common start of every child.
 *
 * DESIGN
 * Titles: Linux shows a process's argv memory as its command line, so the
 * title is written over argv, extended over the environment strings that
 * follow it (nginx's technique). The environment is copied elsewhere first
 * and `environ` pointed at the copy, so getenv() keeps working. prctl
 * PR_SET_NAME sets the short name that top shows.
 *
 * Child start: the master blocks every signal while it forks, so a child
 * starts with signals blocked and the master's handlers installed. The child
 * restores default dispositions and then unblocks, asks the kernel for
 * SIGTERM when the master dies, and leaves the region's descriptor (whose
 * flock marks the running instance) to the master alone.
 */
#include "proc.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

extern char **environ;

static char *title_start;
static size_t title_space;
/* The environment's copy, for the life of the process. Kept here too
 * because environ alone does not hold it: glibc's exit-time cleanup
 * (__libc_freeres, which valgrind runs) sets environ to NULL. volatile:
 * a variable only written to would be optimised away. */
static char **volatile title_env;

void proc_title_init(int argc, char **argv)
{
    char *end;
    size_t env_count = 0;
    char **new_env;

    if (argc == 0 || argv[0] == NULL)
        return;
    end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
    for (char **e = environ; *e; e++, env_count++)
        if (*e == end)
            end = *e + strlen(*e) + 1;

    new_env = calloc(env_count + 1, sizeof(char *));
    if (new_env == NULL)
        return;
    for (size_t i = 0; i < env_count; i++) {
        new_env[i] = strdup(environ[i]);
        if (new_env[i] == NULL) {
            /* Leave argv alone: titles are a convenience. */
            for (size_t j = 0; j < i; j++)
                free(new_env[j]);
            free(new_env);
            return;
        }
    }
    environ = title_env = new_env;
    /* argv[1..] point into the space we will overwrite: keep copies. */
    for (int i = 1; i < argc; i++)
        argv[i] = strdup(argv[i]);
    title_start = argv[0];
    title_space = (size_t)(end - argv[0]);
}

void proc_title_set(const char *title)
{
    prctl(PR_SET_NAME, title, 0, 0, 0);
    if (title_start == NULL || title_space < 2)
        return;
    memset(title_start, 0, title_space);
    snprintf(title_start, title_space, "%s", title);
}

static int reset_signals(void)
{
    static const int signals[] = {SIGTERM, SIGINT,  SIGHUP,  SIGUSR1,
                                  SIGUSR2, SIGCHLD, SIGALRM, SIGQUIT};
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        sigaction(signals[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}

static int drop_privileges(const char *user)
{
    struct passwd *pw;

    if (user[0] == '\0' || geteuid() != 0)
        return 0;
    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        log_error(errno, "server.user \"%s\" does not exist", user);
        return -1;
    }
    if (initgroups(user, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        log_error(errno, "cannot switch to user \"%s\"", user);
        return -1;
    }
    return 0;
}

int proc_child_start(const struct heritage *h, enum proc_role role)
{
    struct region_proc *slot = region_proc(h->region, h->slot);
    char title[64];

    log_set_role(proc_role_names[role]);
    snprintf(title, sizeof(title), "wahagate: %s", proc_role_names[role]);
    proc_title_set(title);
    if (reset_signals() != 0) {
        log_error(errno, "sigprocmask() failed");
        return -1;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0 || getppid() != h->master_pid) {
        log_error(errno, "the master is gone");
        return -1;
    }
    region_close_fd(h->region);
    if (drop_privileges(h->cfg->server.user) != 0)
        return -1;

    /* The slot's counters continue from the process it replaces. */
    atomic_store(&slot->role, role);
    atomic_store(&slot->started_mono_ms, time_mono_ms());
    atomic_store(&slot->in_flight, 0);
    atomic_store(&slot->sse_clients, 0);
    atomic_store(&slot->serving, 0);
    atomic_store(&slot->pid, getpid());
    return 0;
}
