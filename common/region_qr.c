/*
 * region_qr.c - the pool of QR slots in the shared-memory region, lent to
 * the sessions that wait for a scan.
 *
 * region.c lays the slots out (region_qr_slot()), holds their write
 * protocol (region_qr_begin_write(), region_qr_end_write()) and repairs a
 * slot a dead writer left torn; region_sessions.c gives a session's slot
 * back when it frees its entry. This file uses region.h only.
 *
 * DESIGN
 * There are min(server.max_sessions, REGION_QR_SLOTS_MAX) slots, fewer
 * than the sessions may be: only a session that waits for a scan holds one
 * (store.c claims it when it stores the code). A slot and its session
 * name each other (the slot's entry is the session's index, the entry's
 * qr_slot is the slot + 1, 0 for none) and region_qr_of() believes the
 * pair only when both agree.
 * region_qr_claim() gives a session its own slot, else a free one, else
 * the one whose session's code was read longest ago (that session loses
 * it); region_qr_release() gives a slot back, emptied. Both run under the
 * lock, and every change of a slot or of an entry's qr_slot goes through
 * the write protocol, so a writer that dies half-way leaves an odd
 * sequence that the repair finds. qr_data_copy() copies only the used
 * part of the PNG.
 */
#include "region.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

void qr_data_copy(struct qr_data *dst, const struct qr_data *src)
{
    size_t png_len = src->png_len < REGION_QR_PNG_MAX ? src->png_len : REGION_QR_PNG_MAX;

    memcpy(dst, src, offsetof(struct qr_data, png) + png_len);
    dst->png_len = (uint32_t)png_len;
}

struct region_qr *region_qr_of(struct region *r, int index)
{
    int32_t slot = region_entry(r, index)->d.qr_slot - 1;
    struct region_qr *q;

    region_assert_held(r);
    if (slot < 0 || slot >= region_qr_count(r))
        return NULL;
    q = region_qr_slot(r, slot);
    return q->entry == index ? q : NULL;
}

/* Set entry INDEX's qr_slot to SLOT + 1 (0: none), inside a write. */
static void point_to_slot(struct region *r, int index, int32_t slot_plus_one)
{
    struct region_entry *e = region_entry(r, index);

    if (e->d.qr_slot == slot_plus_one)
        return;
    region_entry_begin_write(r, e);
    e->d.qr_slot = slot_plus_one;
    region_entry_end_write(r, e, false);
}

void region_qr_release(struct region *r, int index)
{
    struct region_qr *q = region_qr_of(r, index);

    if (q != NULL) {
        region_qr_begin_write(r, q);
        memset(&q->d, 0, offsetof(struct qr_data, png));
        q->entry = 0;
        region_qr_end_write(r, q, true);
    }
    point_to_slot(r, index, 0);
}

struct region_qr *region_qr_claim(struct region *r, int index)
{
    struct region_qr *q = region_qr_of(r, index);
    int64_t oldest = INT64_MAX;
    int pick = -1;

    if (q != NULL)
        return q;
    for (int s = 0; s < region_qr_count(r) && oldest >= 0; s++) {
        int owner = region_qr_slot(r, s)->entry;
        /* A free slot (-1: before any read, even a session's never read,
         * 0), or the one whose code was read longest ago. */
        int64_t read =
            owner > 0 && owner < region_entry_count(r)
                ? atomic_load(&region_demand(r, owner, DEMAND_QR)->last_read_ms)
                : -1;
        if (read < oldest) {
            oldest = read;
            pick = s;
        }
    }
    if (pick < 0)
        return NULL;
    q = region_qr_slot(r, pick);
    if (q->entry > 0 && q->entry < region_entry_count(r))
        region_qr_release(r, q->entry);
    region_qr_begin_write(r, q);
    memset(&q->d, 0, offsetof(struct qr_data, png));
    q->entry = index;
    region_qr_end_write(r, q, true);
    point_to_slot(r, index, pick + 1);
    return q;
}
