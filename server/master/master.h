/*
 * master.h - the master process: owns the configuration, the region, the
 * listen sockets and the children; does no request work.
 */
#ifndef WAHAGATE_MASTER_H
#define WAHAGATE_MASTER_H

#include "config.h"

/*
 * master_run - run wahagate in the foreground with a copy of CFG until SIGTERM or
 * SIGINT. Returns the process exit code: 0 after a clean stop, 1 when the
 * gateway could not start (logged).
 */
int master_run(const struct config *cfg);

#endif
