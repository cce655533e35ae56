/*
 * fault.c - the fault points of test builds (see fault.h). Empty otherwise.
 */
#include "fault.h"

#ifdef WAHAGATE_FAULTS

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fault_point(const char *name)
{
    const char *path = getenv("WG_FAULT_FILE");
    char wanted[64] = "";
    FILE *fp;

    if (path == NULL || (fp = fopen(path, "r")) == NULL)
        return;
    if (fgets(wanted, sizeof(wanted), fp) == NULL)
        wanted[0] = '\0';
    fclose(fp);
    wanted[strcspn(wanted, "\n")] = '\0';
    if (strcmp(wanted, name) != 0 || unlink(path) != 0)
        return; /* another point, or another process got there first */
    raise(SIGKILL);
}

#else

/* ISO C wants a translation unit to declare something. */
typedef int fault_points_are_compiled_out;

#endif
