/*
 * master.c - the master process: region, listen sockets, process table,
 * respawn, reload, signals and the stop sequence.
 *
 * DESIGN
 * Start: open the log, create the region (refusing to start when another
 * instance holds the same shm_name), create the entries of the configured
 * sessions, open the listen sockets, write the pid file, then fork the
 * fetcher and server.workers workers through spawn(), the only place that
 * forks. Children start in proc_child_start() and never return.
 *
 * The process table procs[] has one row per stat slot of the region; slot 0
 * is the master. A child runs one configuration generation. A respawned
 * child takes over the slot of the one it replaces, so its counters continue;
 * after a reload the new children take free slots and the old slots keep
 * their counters, so the sums stay right.
 *
 * Signals only set flags (volatile sig_atomic_t). The master keeps every
 * signal blocked except while it sleeps in ppoll(), which unblocks them
 * atomically, so a signal can never arrive between testing the flags and
 * going to sleep. After waking it handles, in order: dead children, stop,
 * log reopen, reload, respawns that are due.
 *
 * Respawn: a child of the current generation that dies is replaced. One that
 * dies within QUICK_DEATH_MS of its start counts as a quick death;
 * consecutive quick deaths delay the next start by 100 ms, doubling up to
 * 30 s, and the master logs why, so a child that cannot start does not
 * fork-bomb the machine.
 *
 * Reload (SIGHUP): the file is loaded and checked completely first; a bad
 * file is refused with its errors logged and nothing changes. A good one
 * becomes the next generation: listen sockets are reused for addresses that
 * stay and opened for new ones, the session entries follow the new list,
 * new workers and a new fetcher are started with it, and only then are the
 * old children told to retire (SIGUSR2: a worker stops accepting, finishes what
 * it has and exits). The new workers accept on the same sockets as the old,
 * so no connection is refused meanwhile. server.shm_name and server.user
 * cannot change without a restart: such changes are reported and ignored.
 *
 * Stop (SIGTERM/SIGINT): send SIGTERM to every child; workers stop
 * accepting, finish their requests and exit; after STOP_KILL_MS whatever is
 * left gets SIGKILL. Then the region is unlinked, the pid file removed, and
 * the master exits 0.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "fetcher/fetcher.h"
#include "listen.h"
#include "log.h"
#include "proc.h"
#include "region.h"
#include "timeutil.h"
#include "worker/worker.h"

#define SLOT_MASTER 0
#define QUICK_DEATH_MS 2000
#define RESPAWN_FIRST_DELAY_MS 100
#define RESPAWN_MAX_DELAY_MS 30000
#define STOP_KILL_MS 4500
/* Scaling: sample the workers' load every second; add a worker after
 * SCALE_UP_SAMPLES busy samples in a row, retire the most idle one after
 * SCALE_DOWN_SAMPLES quiet ones; no two decisions within SCALE_COOLDOWN_MS. */
#define SCALE_SAMPLE_MS 1000
#define SCALE_UP_BUSY 0.75
#define SCALE_UP_SAMPLES 3
#define SCALE_DOWN_BUSY 0.15
#define SCALE_DOWN_SAMPLES 10
#define SCALE_COOLDOWN_MS 5000

struct process {
    pid_t pid;           /* 0: not running */
    enum proc_role role; /* ROLE_NONE: slot unused */
    unsigned generation; /* of the configuration it runs */
    bool retiring;       /* of an old generation; not respawned */
    bool stop_sent;      /* told to stop (SIGUSR2 or SIGTERM) */
    int64_t started_ms;
    int quick_deaths;      /* in a row */
    int64_t respawn_at_ms; /* 0: no start scheduled */
    uint64_t last_busy_us; /* the slot's busy_us at the last sample */
};

static volatile sig_atomic_t got_stop, got_child, got_reopen, got_reload;

static struct {
    struct config *cfg; /* the current generation's, owned here */
    unsigned generation;
    struct region region;
    struct heritage heritage; /* of the current generation */
    struct process procs[REGION_MAX_PROCS];
    bool stopping;
    int64_t kill_at_ms;
    int64_t last_sample_ms;
    int busy_samples, quiet_samples;
    int64_t last_scale_ms;
    bool ready; /* told systemd (and the log) that workers serve */
} m;

/*========================================================================
 * Signals.
 */

static void on_signal(int sig)
{
    int saved = errno;

    switch (sig) {
    case SIGTERM:
    case SIGINT: got_stop = 1; break;
    case SIGCHLD: got_child = 1; break;
    case SIGUSR1: got_reopen = 1; break;
    case SIGHUP: got_reload = 1; break;
    default: break;
    }
    errno = saved;
}

static int install_signals(sigset_t *blocked)
{
    static const int handled[] = {SIGTERM, SIGINT, SIGCHLD, SIGUSR1, SIGHUP};
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(blocked);
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaddset(blocked, handled[i]);
    if (sigprocmask(SIG_BLOCK, blocked, NULL) != 0)
        return -1;
    sa.sa_handler = on_signal;
    sa.sa_mask = *blocked;
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        if (sigaction(handled[i], &sa, NULL) != 0)
            return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

/*========================================================================
 * Children.
 */

/* Fork the child of SLOT. Signals are blocked here, so the child starts
 * with them blocked until proc_child_start() resets them. */
static void spawn(int slot)
{
    struct process *p = &m.procs[slot];
    pid_t pid;

    m.heritage.slot = slot;
    pid = fork();
    if (pid < 0) {
        log_error(errno, "fork() of a %s failed; retrying in 1 s",
                  proc_role_names[p->role]);
        p->respawn_at_ms = time_mono_ms() + 1000;
        return;
    }
    if (pid == 0) {
        if (p->role == ROLE_FETCHER)
            fetcher_main(&m.heritage);
        worker_main(&m.heritage);
    }
    p->pid = pid;
    p->started_ms = time_mono_ms();
    p->respawn_at_ms = 0;
    p->last_busy_us = atomic_load(&region_proc(&m.region, slot)->busy_us);
    log_debug("started %s %d in slot %d (generation %u)", proc_role_names[p->role],
              (int)pid, slot, p->generation);
}

/* Reserve a free slot for a child of ROLE in the current generation, to be
 * started at once by the main loop. Returns the slot or -1. */
static int add_child(enum proc_role role)
{
    for (int i = SLOT_MASTER + 1; i < REGION_MAX_PROCS; i++) {
        struct process *p = &m.procs[i];
        if (p->role != ROLE_NONE || p->pid != 0)
            continue;
        memset(p, 0, sizeof(*p));
        p->role = role;
        p->generation = m.generation;
        p->respawn_at_ms = time_mono_ms();
        return i;
    }
    log_error(0, "no free process slot for a %s", proc_role_names[role]);
    return -1;
}

static void describe_status(int status, char *out, size_t size)
{
    if (WIFEXITED(status))
        snprintf(out, size, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, size, "was killed by signal %d%s", WTERMSIG(status),
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else
        snprintf(out, size, "ended with status %d", status);
}

static void schedule_respawn(struct process *p, pid_t pid, int status, int64_t now)
{
    int64_t lived = now - p->started_ms;
    char how[64];

    describe_status(status, how, sizeof(how));
    p->quick_deaths = lived < QUICK_DEATH_MS ? p->quick_deaths + 1 : 0;
    if (p->quick_deaths == 0) {
        log_warn(0, "%s %d %s after %.1f s; starting a new one", proc_role_names[p->role],
                 (int)pid, how, lived / 1000.0);
        p->respawn_at_ms = now;
        return;
    }
    int64_t delay = RESPAWN_FIRST_DELAY_MS;
    for (int i = 1; i < p->quick_deaths && delay < RESPAWN_MAX_DELAY_MS; i++)
        delay *= 2;
    if (delay > RESPAWN_MAX_DELAY_MS)
        delay = RESPAWN_MAX_DELAY_MS;
    log_warn(0,
             "%s %d %s after %.1f s (%d quick death%s in a row); starting a "
             "new one in %.1f s",
             proc_role_names[p->role], (int)pid, how, lived / 1000.0, p->quick_deaths,
             p->quick_deaths == 1 ? "" : "s", delay / 1000.0);
    p->respawn_at_ms = now + delay;
}

static void reap_children(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct process *p = NULL;
        int slot;

        for (slot = 0; slot < REGION_MAX_PROCS; slot++) {
            if (m.procs[slot].pid == pid) {
                p = &m.procs[slot];
                break;
            }
        }
        if (p == NULL)
            continue;
        p->pid = 0;
        atomic_store(&region_proc(&m.region, slot)->pid, 0);
        atomic_store(&region_proc(&m.region, slot)->in_flight, 0);
        if (p->retiring || m.stopping) {
            log_debug("%s %d of generation %u has stopped", proc_role_names[p->role],
                      (int)pid, p->generation);
            memset(p, 0, sizeof(*p)); /* the slot is free; its counters stay */
            continue;
        }
        schedule_respawn(p, pid, status, time_mono_ms());
    }
}

static int children_alive(void)
{
    int n = 0;

    for (int i = 0; i < REGION_MAX_PROCS; i++)
        n += m.procs[i].pid != 0;
    return n;
}

static void signal_children(int sig)
{
    for (int i = 0; i < REGION_MAX_PROCS; i++)
        if (m.procs[i].pid != 0)
            kill(m.procs[i].pid, sig);
}

static void begin_stop(void)
{
    if (m.stopping)
        return;
    sd_notify(0, "STOPPING=1");
    log_info("stopping: waiting for %d children to finish", children_alive());
    m.stopping = true;
    m.kill_at_ms = time_mono_ms() + STOP_KILL_MS;
    signal_children(SIGTERM);
}

/*========================================================================
 * Readiness: systemd's Type=notify (sd_notify; a no-op without systemd).
 */

/* Once every worker of the current generation accepts, say so, once. */
static void notify_when_ready(void)
{
    int serving = 0, wanted = 0;

    if (m.ready)
        return;
    for (int i = SLOT_MASTER + 1; i < REGION_MAX_PROCS; i++) {
        if (m.procs[i].role != ROLE_WORKER || m.procs[i].retiring)
            continue;
        wanted++;
        serving +=
            m.procs[i].pid != 0 && atomic_load(&region_proc(&m.region, i)->serving);
    }
    if (wanted == 0 || serving < wanted)
        return;
    m.ready = true;
    sd_notifyf(0, "READY=1\nSTATUS=serving with %d workers\nMAINPID=%d", serving,
               (int)getpid());
    log_info("ready: %d workers serving", serving);
}

/*========================================================================
 * Scaling the workers with load.
 */

/* Connections waiting in the API listen queues (TCP_INFO of a listening
 * socket gives its accept queue length in tcpi_unacked). */
static unsigned accept_backlog(void)
{
    unsigned total = 0;

    for (int i = 0; i < m.heritage.listeners.count; i++) {
        struct tcp_info info;
        socklen_t len = sizeof(info);
        if (!m.heritage.listeners.admin[i] &&
            getsockopt(m.heritage.listeners.fds[i], IPPROTO_TCP, TCP_INFO, &info, &len) ==
                0)
            total += info.tcpi_unacked;
    }
    return total;
}

static int running_workers(void)
{
    int n = 0;

    for (int i = SLOT_MASTER + 1; i < REGION_MAX_PROCS; i++)
        n += m.procs[i].role == ROLE_WORKER && !m.procs[i].retiring;
    return n;
}

/*
 * Once a second: how busy were the workers (the share of the last second
 * each spent on the CPU, which they publish in their stat slots) and is
 * anything waiting in the listen queue? Busy for a few
 * seconds adds a worker; quiet for longer retires the most idle one. The
 * two thresholds are far apart and decisions are spaced, so it does not
 * flap.
 */
static void sample_load(int64_t now)
{
    int64_t elapsed_us = (now - m.last_sample_ms) * 1000;
    double total = 0, idlest_busy = 2.0;
    int workers = 0, idlest = -1;
    unsigned backlog;

    if (m.stopping || elapsed_us < (int64_t)SCALE_SAMPLE_MS * 1000)
        return;
    m.last_sample_ms = now;
    for (int i = SLOT_MASTER + 1; i < REGION_MAX_PROCS; i++) {
        struct process *p = &m.procs[i];
        uint64_t busy;
        double share;

        if (p->role != ROLE_WORKER || p->retiring || p->pid == 0)
            continue;
        busy = atomic_load(&region_proc(&m.region, i)->busy_us);
        share = (double)(busy - p->last_busy_us) / (double)elapsed_us;
        p->last_busy_us = busy;
        total += share;
        workers++;
        if (share < idlest_busy) {
            idlest_busy = share;
            idlest = i;
        }
    }
    if (workers == 0)
        return;
    backlog = accept_backlog();
    m.busy_samples =
        total / workers >= SCALE_UP_BUSY || backlog > 0 ? m.busy_samples + 1 : 0;
    m.quiet_samples =
        total / workers <= SCALE_DOWN_BUSY && backlog == 0 ? m.quiet_samples + 1 : 0;
    if (now - m.last_scale_ms < SCALE_COOLDOWN_MS)
        return;
    if (m.busy_samples >= SCALE_UP_SAMPLES &&
        running_workers() < m.cfg->server.max_workers) {
        log_info("scaling up to %d workers: they were %.0f%% busy with %u connections "
                 "waiting",
                 running_workers() + 1, 100.0 * total / workers, backlog);
        add_child(ROLE_WORKER);
        region_count(region_proc(&m.region, SLOT_MASTER), COUNTER_SCALE_UP, 1);
    } else if (m.quiet_samples >= SCALE_DOWN_SAMPLES &&
               running_workers() > m.cfg->server.min_workers && idlest >= 0) {
        log_info("scaling down to %d workers: they were %.0f%% busy for %d s; worker %d "
                 "finishes its work and stops",
                 running_workers() - 1, 100.0 * total / workers, m.quiet_samples,
                 (int)m.procs[idlest].pid);
        m.procs[idlest].retiring = true;
        m.procs[idlest].stop_sent = true;
        kill(m.procs[idlest].pid, SIGUSR2);
        region_count(region_proc(&m.region, SLOT_MASTER), COUNTER_SCALE_DOWN, 1);
    } else {
        return;
    }
    m.last_scale_ms = now;
    m.busy_samples = m.quiet_samples = 0;
    atomic_store(&region_header(&m.region)->workers_running, (int32_t)running_workers());
}

/*========================================================================
 * Configuration: sessions, pid file, reload.
 */

static int write_pid_file(const char *path)
{
    char text[32];
    int fd, len;

    if (path[0] == '\0')
        return 0;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error(errno, "cannot write pid file \"%s\"", path);
        return -1;
    }
    len = snprintf(text, sizeof(text), "%d\n", (int)getpid());
    if (write(fd, text, (size_t)len) != len) {
        log_error(errno, "cannot write pid file \"%s\"", path);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Make the session entries match CFG's fixed list (none to do for *). */
static int track_sessions(const struct config *cfg)
{
    int missing;

    bool *scratch;

    if (cfg->upstream.all_sessions)
        return 0;
    scratch = calloc((size_t)region_entry_count(&m.region), sizeof(*scratch));
    if (scratch == NULL || region_lock(&m.region) != 0) {
        free(scratch);
        return -1;
    }
    missing = region_set_sessions(&m.region,
                                  (const char(*)[REGION_NAME_MAX])cfg->upstream.sessions,
                                  cfg->upstream.session_count, NULL, scratch);
    region_unlock(&m.region);
    free(scratch);
    return missing == 0 ? 0 : -1;
}

static void keep_restart_only_settings(struct config *fresh)
{
    if (strcmp(fresh->server.shm_name, m.cfg->server.shm_name) != 0) {
        log_warn(0,
                 "reload: server.shm_name changes only at restart; still "
                 "using \"%s\"",
                 m.cfg->server.shm_name);
        memcpy(fresh->server.shm_name, m.cfg->server.shm_name,
               sizeof(fresh->server.shm_name));
    }
    if (fresh->server.max_sessions != m.cfg->server.max_sessions) {
        log_warn(0,
                 "reload: server.max_sessions changes only at restart; still "
                 "%lld",
                 (long long)m.cfg->server.max_sessions);
        fresh->server.max_sessions = m.cfg->server.max_sessions;
    }
    if (strcmp(fresh->server.user, m.cfg->server.user) != 0) {
        log_warn(0,
                 "reload: server.user changes only at restart; still "
                 "running as \"%s\"",
                 m.cfg->server.user);
        memcpy(fresh->server.user, m.cfg->server.user, sizeof(fresh->server.user));
    }
}

static void reload(void)
{
    sd_notify(0, "RELOADING=1");
    m.ready = false; /* READY=1 again once the new workers serve */
    struct config *fresh = malloc(sizeof(*fresh));
    struct config_errors *errs = malloc(sizeof(*errs));
    struct listeners next;
    int retired = 0;

    if (fresh == NULL || errs == NULL) {
        log_error(0, "reload: out of memory; keeping the running configuration");
        goto done;
    }
    if (config_load(m.cfg->path, NULL, fresh, errs) != 0) {
        log_error(0, "reload: %s has %d error%s; keeping the running configuration",
                  m.cfg->path, errs->count, errs->count == 1 ? "" : "s");
        for (int i = 0; i < errs->count; i++)
            log_error(0, "reload: %s", errs->message[i]);
        goto done;
    }
    keep_restart_only_settings(fresh);
    if (config_figures_open(fresh))
        log_warn(0, "reload: %s", CONFIG_FIGURES_OPEN_WARNING);
    if (listeners_open(fresh, &m.heritage.listeners, &next) != 0) {
        log_error(0, "reload: cannot listen on the new addresses; keeping the "
                     "running configuration");
        goto done;
    }
    if (track_sessions(fresh) != 0)
        log_warn(0, "reload: not every session found room in the region");
    if (strcmp(fresh->server.pid_file, m.cfg->server.pid_file) != 0) {
        if (m.cfg->server.pid_file[0] != '\0')
            unlink(m.cfg->server.pid_file);
        write_pid_file(fresh->server.pid_file);
    }
    if (strcmp(fresh->log.file, m.cfg->log.file) != 0 && log_open(fresh->log.file) != 0)
        log_error(errno, "reload: cannot open log file \"%s\"", fresh->log.file);
    log_set_level((enum log_level)fresh->log.level);

    /* Swap: from here on, spawn() starts children of the new generation. */
    listeners_close(&m.heritage.listeners, &next);
    m.heritage.listeners = next;
    free(m.cfg);
    m.cfg = fresh;
    m.heritage.cfg = fresh;
    fresh = NULL;
    m.generation++;

    for (int i = SLOT_MASTER + 1; i < REGION_MAX_PROCS; i++) {
        struct process *p = &m.procs[i];
        if (p->role == ROLE_NONE || p->retiring)
            continue;
        if (p->pid == 0) {
            memset(p, 0, sizeof(*p)); /* was waiting for a respawn */
            continue;
        }
        p->retiring = true;
        retired++;
    }
    add_child(ROLE_FETCHER);
    for (int i = 0; i < m.cfg->server.workers; i++)
        add_child(ROLE_WORKER);
    atomic_store(&region_header(&m.region)->workers_running,
                 (int32_t)m.cfg->server.workers);
    log_info("reload: generation %u from %s: %lld workers; %d old children "
             "finish their work and stop",
             m.generation, m.cfg->path, (long long)m.cfg->server.workers, retired);
done:
    free(fresh);
    free(errs);
}

/* Start the new generation's children, then tell the old ones to stop. */
static void start_due_children(int64_t now)
{
    bool started_new = false;

    for (int i = SLOT_MASTER + 1; i < REGION_MAX_PROCS; i++) {
        struct process *p = &m.procs[i];
        if (p->role != ROLE_NONE && !p->retiring && p->pid == 0 &&
            p->respawn_at_ms != 0 && now >= p->respawn_at_ms) {
            spawn(i);
            started_new = true;
        }
    }
    if (!started_new)
        return;
    for (int i = SLOT_MASTER + 1; i < REGION_MAX_PROCS; i++) {
        struct process *p = &m.procs[i];
        if (p->retiring && p->pid != 0 && !p->stop_sent) {
            /* Workers retire (SIGUSR2: parked requests still get their
             * data); the old fetcher just stops. */
            kill(p->pid, p->role == ROLE_WORKER ? SIGUSR2 : SIGTERM);
            p->stop_sent = true;
        }
    }
}

/*========================================================================
 * Start and main loop.
 */

/*
 * Each worker may hold server.max_connections client connections, plus its
 * listen sockets and a few others: raise the open-file limit (inherited by
 * the children) to that, as far as the hard limit allows.
 */
static void raise_file_limit(void)
{
    rlim_t need = (rlim_t)m.cfg->server.max_connections + 64;
    struct rlimit lim;

    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= need)
        return;
    lim.rlim_cur = need < lim.rlim_max ? need : lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
        log_warn(errno, "setrlimit(RLIMIT_NOFILE, %llu) failed",
                 (unsigned long long)lim.rlim_cur);
    else if (lim.rlim_cur < need)
        log_warn(0,
                 "open files are limited to %llu (hard limit); server.max_connections "
                 "%lld needs %llu",
                 (unsigned long long)lim.rlim_cur,
                 (long long)m.cfg->server.max_connections, (unsigned long long)need);
}

static int start(void)
{
    struct region_proc *self;

    if (getuid() == 0 && m.cfg->server.user[0] == '\0')
        log_warn(0, "running as root without server.user; set it to drop "
                    "privileges after binding");
    if (config_figures_open(m.cfg))
        log_warn(0, "%s", CONFIG_FIGURES_OPEN_WARNING);
    raise_file_limit();
    if (region_create(&m.region, m.cfg->server.shm_name, (int)m.cfg->server.max_sessions) !=
        0)
        return -1;
    m.heritage.cfg = m.cfg;
    m.heritage.region = &m.region;
    m.heritage.master_pid = getpid();
    if (track_sessions(m.cfg) != 0 ||
        listeners_open(m.cfg, NULL, &m.heritage.listeners) != 0) {
        region_destroy(&m.region);
        return -1;
    }
    if (write_pid_file(m.cfg->server.pid_file) != 0) {
        listeners_close(&m.heritage.listeners, NULL);
        region_destroy(&m.region);
        return -1;
    }
    self = region_proc(&m.region, SLOT_MASTER);
    atomic_store(&self->role, ROLE_MASTER);
    atomic_store(&self->started_mono_ms, time_mono_ms());
    atomic_store(&self->pid, getpid());
    m.procs[SLOT_MASTER].role = ROLE_MASTER;
    m.last_sample_ms = time_mono_ms();
    add_child(ROLE_FETCHER);
    for (int i = 0; i < m.cfg->server.workers; i++)
        add_child(ROLE_WORKER);
    atomic_store(&region_header(&m.region)->workers_running,
                 (int32_t)m.cfg->server.workers);
    return 0;
}

static void finish(void)
{
    listeners_close(&m.heritage.listeners, NULL);
    if (m.cfg->server.pid_file[0] != '\0')
        unlink(m.cfg->server.pid_file);
    region_destroy(&m.region);
}

/* Sleep until a signal or the next deadline (respawn, kill), at most 1 s. */
static void wait_for_events(const sigset_t *unblocked)
{
    int64_t now = time_mono_ms();
    int64_t wake = now + 1000;
    struct timespec ts;

    for (int i = 0; i < REGION_MAX_PROCS; i++) {
        const struct process *p = &m.procs[i];
        if (p->pid == 0 && p->respawn_at_ms != 0 && p->respawn_at_ms < wake)
            wake = p->respawn_at_ms;
    }
    if (m.stopping && m.kill_at_ms < wake)
        wake = m.kill_at_ms;
    if (!m.ready && now + 50 < wake)
        wake = now + 50; /* look for the workers' readiness soon */
    if (wake < now)
        wake = now;
    ts.tv_sec = (wake - now) / 1000;
    ts.tv_nsec = ((wake - now) % 1000) * 1000000;
    ppoll(NULL, 0, &ts, unblocked);
}

int master_run(const struct config *cfg)
{
    sigset_t blocked, unblocked;

    m.cfg = malloc(sizeof(*m.cfg));
    if (m.cfg == NULL) {
        log_error(0, "out of memory");
        return 1;
    }
    memcpy(m.cfg, cfg, sizeof(*m.cfg));
    log_set_role("master");
    proc_title_set("wahagate: master");
    if (install_signals(&blocked) != 0) {
        log_error(errno, "cannot install signal handlers");
        return 1;
    }
    sigprocmask(SIG_BLOCK, NULL, &unblocked);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&blocked, sig))
            sigdelset(&unblocked, sig);
    if (start() != 0)
        return 1;
    log_info("wahagate %s serving on %s:%u with %lld workers, WAHA at %s",
             WAHAGATE_VERSION, m.cfg->server.listen[0].host, m.cfg->server.listen[0].port,
             (long long)m.cfg->server.workers, m.cfg->upstream.url);

    for (;;) {
        int64_t now;

        if (got_child) {
            got_child = 0;
            reap_children();
        }
        if (got_stop) {
            got_stop = 0;
            begin_stop();
        }
        if (got_reopen) {
            got_reopen = 0;
            if (log_open(m.cfg->log.file) != 0)
                log_error(errno, "cannot reopen log file \"%s\"", m.cfg->log.file);
            signal_children(SIGUSR1);
        }
        if (got_reload) {
            got_reload = 0;
            if (!m.stopping)
                reload();
        }
        now = time_mono_ms();
        if (m.stopping) {
            if (children_alive() == 0)
                break;
            if (now >= m.kill_at_ms) {
                log_warn(0, "%d children did not stop in time; killing them",
                         children_alive());
                signal_children(SIGKILL);
                m.kill_at_ms = now + 1000;
            }
        } else {
            start_due_children(now);
            sample_load(now);
            notify_when_ready();
        }
        wait_for_events(&unblocked);
    }
    finish();
    free(m.cfg);
    log_info("stopped");
    return 0;
}
