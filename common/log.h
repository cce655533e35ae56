/*
 * log.h - the one logging call of wahagate.
 *
 * Every process logs through log_msg(). A line looks like
 *   2026-11-29T10:00:00.123Z [warn] 4242 fetcher: GET /health failed (111: Connection refused)
 * and is written with a single write(2) to an O_APPEND descriptor, so lines
 * from the master, the workers and the fetcher never interleave. The level is
 * tested before the arguments are evaluated. Nothing may log from a signal
 * handler: handlers only set flags.
 */
#ifndef WAHAGATE_LOG_H
#define WAHAGATE_LOG_H

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_COUNT
};

extern const char *const log_level_names[LOG_LEVEL_COUNT];

/* The current threshold; read by the log_* macros before formatting. */
extern enum log_level log_threshold;

/*
 * log_open - direct output to PATH (appended, created 0640), or to stderr
 * when PATH is NULL or empty. Returns 0, or -1 with errno set (the previous
 * destination is kept). Called by the master at start and on SIGUSR1, and by
 * each child after fork to reopen the file it inherited.
 */
int log_open(const char *path);

/* log_set_role - the role word printed after the pid ("master", "worker"...). */
void log_set_role(const char *role);

/* log_set_level - set the threshold. */
void log_set_level(enum log_level level);

/* log_level_parse - "error", "warn", "info" or "debug"; -1 if unknown. */
int log_level_parse(const char *name);

/*
 * log_write - format and write one line. ERR, when not 0, is an errno value
 * appended as " (N: text)". Use the macros below, which skip the call when
 * LEVEL is above the threshold.
 */
void log_write(enum log_level level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_msg(level, err, ...)                                                         \
    do {                                                                                 \
        if ((level) <= log_threshold)                                                    \
            log_write((level), (err), __VA_ARGS__);                                      \
    } while (0)

#define log_error(err, ...) log_msg(LOG_LEVEL_ERROR, (err), __VA_ARGS__)
#define log_warn(err, ...) log_msg(LOG_LEVEL_WARN, (err), __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)

#endif
