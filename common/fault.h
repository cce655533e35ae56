/*
 * fault.h - fault points, compiled only into test builds.
 *
 * A test build (make ... WAHAGATE_FAULTS=1, see the Makefile's faults
 * target) turns fault_point("name") into a check: when the file named by
 * the environment variable WG_FAULT_FILE exists and holds NAME, the file is
 * removed and the process kills itself with SIGKILL, right there. Tests use
 * it to kill a process inside the region's critical section, which no
 * signal sent from outside could hit reliably. Ordinary builds contain no
 * trace of it.
 */
#ifndef WAHAGATE_FAULT_H
#define WAHAGATE_FAULT_H

#ifdef WAHAGATE_FAULTS
void fault_point(const char *name);
#else
static inline void fault_point(const char *name)
{
    (void)name;
}
#endif

#endif
