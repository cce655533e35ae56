/*
 * master.h - the master process: owns the configuration, the region, the
 * listen sockets and the children; does no request work.
 */
#ifndef WAHAGATE_MASTER_H
#define WAHAGATE_MASTER_H

#include "config.h"

/*
 * master_run - run wahagate in the foreground with CFG until SIGTERM or
 * SIGINT. Returns the process exit code: 0 after a clean stop, 1 when the
 * gateway could not start (logged).
 */
int master_run(struct config *cfg);

#endif
