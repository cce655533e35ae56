/*
 * region_internal.h - what the files of the shared-memory region share
 * beyond region.h; nothing else includes it.
 *
 * region.c creates, lays out, locks and repairs the region;
 * region_sessions.c holds the session table and its name index; region_qr.c
 * the pool of QR slots. The one call below is the only one that crosses
 * between them outside region.h: region.c's repair of torn entries rebuilds
 * the name index.
 */
#ifndef WAHAGATE_REGION_INTERNAL_H
#define WAHAGATE_REGION_INTERNAL_H

#include "region.h"

/* The name index again, from the session entries. Lock held. */
void rebuild_name_index(struct region *r);

#endif
