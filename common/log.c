/*
 * log.c - format a log line in a stack buffer and write it once.
 *
 * DESIGN
 * Each process has its own copy of the state below (destination fd, role,
 * threshold); the master sets it before forking and each child sets its
 * role. The destination is opened O_APPEND so that one write(2) per line
 * keeps lines from several processes whole. A line longer than the buffer
 * is cut and ends in "...". Writes that fail are ignored: there is nowhere
 * left to report them.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "timeutil.h"

#define LOG_LINE_MAX 2048

const char *const log_level_names[LOG_LEVEL_COUNT] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

enum log_level log_threshold = LOG_LEVEL_INFO;

static int log_fd = STDERR_FILENO;
static char log_role[16] = "main";

int log_open(const char *path)
{
    int fd;

    if (path == NULL || path[0] == '\0') {
        if (log_fd != STDERR_FILENO)
            close(log_fd);
        log_fd = STDERR_FILENO;
        return 0;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    return 0;
}

void log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
}

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < LOG_LEVEL_COUNT; i++)
        if (strcmp(name, log_level_names[i]) == 0)
            return i;
    return -1;
}

void log_write(enum log_level level, int err, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    char when[TIME_ISO_LEN];
    size_t len;
    int n;
    va_list ap;

    n = snprintf(line, sizeof(line),
                 "%s [%s] %d %s: ", time_format_iso(time_real_ms(), when),
                 log_level_names[level], (int)getpid(), log_role);
    len = (size_t)n;

    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    len = n < 0 ? len : len + (size_t)n;

    if (err != 0 && len < sizeof(line)) {
        n = snprintf(line + len, sizeof(line) - len, " (%d: %s)", err, strerror(err));
        len = n < 0 ? len : len + (size_t)n;
    }
    if (len >= sizeof(line) - 1) {
        len = sizeof(line) - 1;
        line[len - 3] = line[len - 2] = line[len - 1] = '.';
    }
    line[len++] = '\n';

    ssize_t written = write(log_fd, line, len);
    (void)written;
}
