/*
 * region_sessions.c - the session table of the shared-memory region: which
 * entry holds which session, and how a session is found by its name.
 *
 * region.c creates, lays out and locks the region, and repairs it;
 * region_qr.c lends QR slots to sessions. This file uses region.h only, and
 * gives region.c one call more, rebuild_name_index() (region_internal.h),
 * for after a repair that discarded torn entries.
 *
 * DESIGN
 * Entries from REGION_ENTRY_FIRST_SESSION on are the sessions' (kind
 * ENTRY_SESSION) or free (ENTRY_FREE). region_set_sessions(), called with
 * WAHA's list under the lock, makes them exactly the listed names: the
 * entry of a name no longer listed is freed (its QR slot goes back), a new
 * name takes the lowest free entry, with no data and no demand (a name must
 * not inherit a freed entry's data or readers), and a name still listed
 * keeps its entry and its data. Names beyond the entries are counted, not
 * stored. table_generation goes up when anything changed: workers copy
 * their name tables again when it moves (replica.c).
 *
 * The name index is an open-addressing hash table in the region: one
 * int32_t per slot, entry index + 1 or 0 for empty, so a zeroed region has
 * an empty index. Its size is a power of two at least twice the number of
 * entries (layout_for() in region.c): it is at most half full and linear
 * probing stays short. The hash is FNV-1a (region_name_hash(), also used
 * by the workers' tables). Names are only ever added to it; when some go,
 * it is rebuilt from the session entries (rebuild_name_index()), as it is
 * after region.c's repair of torn entries.
 */
#include "region.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "region_internal.h"

/* The name index: entry index + 1 per slot, 0 empty (so zeroed is empty). */
static int32_t *name_index(const struct region *r)
{
    return (int32_t *)((char *)r->base + region_header(r)->index_offset);
}

/* Forget what entry E's readers asked for (a new owner starts afresh). */
static void reset_demand(struct region_entry *e)
{
    for (int k = 0; k < DEMAND_COUNT; k++) {
        atomic_store(&e->demand[k].last_read_ms, 0);
        atomic_store(&e->demand[k].wanted_ms, 0);
        atomic_store(&e->demand[k].attempt_done_ms, 0);
    }
}

uint32_t region_name_hash(const char *name)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static uint32_t index_size(const struct region *r)
{
    return region_header(r)->index_size;
}

/* Add session entry INDEX to the name index (at most half full). */
static void index_insert(struct region *r, int index)
{
    int32_t *ix = name_index(r);
    uint32_t mask = index_size(r) - 1;
    uint32_t at = region_name_hash(region_entry(r, index)->d.name) & mask;

    while (ix[at] != 0)
        at = (at + 1) & mask;
    ix[at] = index + 1;
}

/* The name index again, from the session entries. Lock held. */
void rebuild_name_index(struct region *r)
{
    memset(name_index(r), 0, sizeof(int32_t) * index_size(r));
    for (int i = REGION_ENTRY_FIRST_SESSION; i < region_entry_count(r); i++)
        if (region_entry(r, i)->d.kind == ENTRY_SESSION)
            index_insert(r, i);
}

int region_find_session(const struct region *r, const char *name)
{
    const int32_t *ix = name_index(r);
    uint32_t mask = index_size(r) - 1;

    for (uint32_t at = region_name_hash(name) & mask; ix[at] != 0; at = (at + 1) & mask) {
        const struct region_entry *e = region_entry(r, ix[at] - 1);
        if (e->d.kind == ENTRY_SESSION && strcmp(e->d.name, name) == 0)
            return ix[at] - 1;
    }
    return -1;
}

/* Free session entry INDEX (its session is no longer tracked). */
static void free_session(struct region *r, int index)
{
    struct region_entry *e = region_entry(r, index);

    region_qr_release(r, index);
    region_entry_begin_write(r, e);
    region_entry_reset(e, ENTRY_FREE, "");
    region_entry_end_write(r, e, true);
}

/* Give free entry INDEX to session NAME, with no data yet. */
static void take_entry(struct region *r, int index, const char *name)
{
    struct region_entry *e = region_entry(r, index);

    region_entry_begin_write(r, e);
    region_entry_reset(e, ENTRY_SESSION, name);
    reset_demand(e);
    region_entry_end_write(r, e, true);
}

int region_set_sessions(struct region *r, const char (*names)[REGION_NAME_MAX], int count,
                        int *index_out, bool *listed)
{
    int missing = 0, next_free = REGION_ENTRY_FIRST_SESSION;
    bool changed = false;

    region_assert_held(r);
    memset(listed, 0, sizeof(bool) * (size_t)region_entry_count(r));
    for (int n = 0; n < count; n++) {
        int index = region_find_session(r, names[n]);
        if (index >= 0)
            listed[index] = true;
        if (index_out != NULL)
            index_out[n] = index;
    }
    for (int i = REGION_ENTRY_FIRST_SESSION; i < region_entry_count(r); i++) {
        if (region_entry(r, i)->d.kind == ENTRY_SESSION && !listed[i]) {
            free_session(r, i);
            changed = true;
        }
    }
    if (changed)
        rebuild_name_index(r); /* without the names that went */
    for (int n = 0; n < count; n++) {
        int kept = region_find_session(r, names[n]);
        if (kept >= 0) {
            if (index_out != NULL)
                index_out[n] = kept; /* kept, or listed twice */
            continue;
        }
        while (next_free < region_entry_count(r) &&
               region_entry(r, next_free)->d.kind != ENTRY_FREE)
            next_free++;
        if (next_free == region_entry_count(r)) {
            missing++;
            continue;
        }
        take_entry(r, next_free, names[n]);
        index_insert(r, next_free);
        if (index_out != NULL)
            index_out[n] = next_free;
        changed = true;
    }
    if (changed)
        atomic_fetch_add(&region_header(r)->table_generation, 1);
    return missing;
}
