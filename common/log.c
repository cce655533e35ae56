/*
 * log.c - format a log line in a stack buffer and write it once.
 *
 * DESIGN
 * Each process has its own copy of the state below (destination fd, role,
 * threshold); the master sets it before forking and each child sets its
 * role. The destination is opened O_APPEND so that one write(2) per line
 * keeps lines from several processes whole. A line longer than the buffer
 * is cut and ends in "...". Writes that fail are ignored: there is nowhere
 * left to report them. A warning or error that repeats the one before is
 * held back and counted ("last message repeated N times"), like syslogd
 * does, so a failure that recurs every few milliseconds does not flood the
 * log.
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
#define LOG_REPEAT_WINDOW_MS 60000

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

/*
 * Write "PREFIX MESSAGE\n" as one line with a single write(2). A control
 * byte in MESSAGE (a client's path, a session name from WAHA) is written as
 * \xNN and a backslash as \\, so no message can end its line early and
 * forge another, or send an escape sequence to a terminal.
 */
static void write_line(enum log_level level, const char *message, size_t message_len)
{
    static const char hex[] = "0123456789abcdef";
    char line[LOG_LINE_MAX];
    char when[TIME_ISO_LEN];
    int n = snprintf(line, sizeof(line),
                     "%s [%s] %d %s: ", time_format_iso(time_real_ms(), when),
                     log_level_names[level], (int)getpid(), log_role);
    size_t len = (size_t)n;

    for (size_t i = 0; i < message_len && len + 5 < sizeof(line); i++) {
        unsigned char c = (unsigned char)message[i];
        if (c < 0x20 || c == 0x7f) {
            line[len++] = '\\';
            line[len++] = 'x';
            line[len++] = hex[c >> 4];
            line[len++] = hex[c & 15];
        } else if (c == '\\') {
            line[len++] = '\\';
            line[len++] = '\\';
        } else {
            line[len++] = (char)c;
        }
    }
    line[len++] = '\n';

    ssize_t written = write(log_fd, line, len);
    (void)written;
}

/*
 * A warning or error identical to the one before (same level and text) is
 * counted, not written, for up to LOG_REPEAT_WINDOW_MS; the next different message
 * (or the same one after the window) first says how many were held back.
 */
static struct {
    enum log_level level;
    size_t len;
    char text[LOG_LINE_MAX];
    unsigned long repeats;
    int64_t first_ms;
} last;

static void flush_repeats(void)
{
    char note[96];
    int n;

    if (last.repeats == 0)
        return;
    n = snprintf(note, sizeof(note), "last message repeated %lu time%s", last.repeats,
                 last.repeats == 1 ? "" : "s");
    write_line(last.level, note, (size_t)n);
    last.repeats = 0;
}

void log_write(enum log_level level, int err, const char *fmt, ...)
{
    char message[LOG_LINE_MAX];
    size_t len;
    int n;
    int64_t now = time_mono_ms();
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    len = n < 0 ? 0 : (size_t)n;
    if (err != 0 && len < sizeof(message)) {
        n = snprintf(message + len, sizeof(message) - len, " (%d: %s)", err,
                     strerror(err));
        len = n < 0 ? len : len + (size_t)n;
    }
    if (len >= sizeof(message) - 1) {
        len = sizeof(message) - 1;
        message[len - 3] = message[len - 2] = message[len - 1] = '.';
    }

    if (level <= LOG_LEVEL_WARN && level == last.level && len == last.len &&
        memcmp(message, last.text, len) == 0 &&
        now - last.first_ms < LOG_REPEAT_WINDOW_MS) {
        last.repeats++;
        return;
    }
    flush_repeats();
    write_line(level, message, len);
    last.level = level;
    last.len = len;
    memcpy(last.text, message, len);
    last.first_ms = now;
}
