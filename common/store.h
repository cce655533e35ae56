/*
 * store.h - the code that writes what clients see into the region.
 *
 * The fetcher stores WAHA's answers and its failures here, workers store
 * the session.status webhooks they receive. Each function takes the region
 * lock, changes one entry (or QR slot) between begin_write and end_write,
 * and bumps the entry's generation only when something a client sees
 * changed. Only bytes are copied while the lock is held.
 */
#ifndef WAHAGATE_STORE_H
#define WAHAGATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "region.h"
#include "waha.h"

/*
 * store_session - a good answer REC for the session of entry INDEX, or
 * (REC NULL) WAHA's 404: it has no such session. Statuses go through
 * entry_observe_status() (flap smoothing). NAME must still be the entry's
 * name (the entry may have been reassigned meanwhile). Clears the QR when
 * WAHA no longer waits for a scan.
 */
void store_session(struct region *r, const struct config *cfg, int index,
                   const char *name, const struct session_record *rec);

/* store_health - WAHA's /health or /ping answered with STATUS. */
void store_health(struct region *r, bool ping, const char *status, const char *body,
                  size_t len);

/*
 * store_session_list - GET /api/sessions?all=true answered RECS: the
 * session entries become exactly these (region_set_sessions) and new ones
 * start with the list's data. Returns how many found no room.
 */
int store_session_list(struct region *r, const struct config *cfg,
                       const struct session_record *recs, int count);

/* store_failure - a refresh of entry INDEX failed: keep the data, say why. */
void store_failure(struct region *r, int index, const char *why);

/* store_release_held - publish entry INDEX's held status change if its
 * flap_hold is over. */
void store_release_held(struct region *r, const struct config *cfg, int index);

/*
 * QR slots of entry INDEX: the image, the raw value (true when that is a new
 * code whose image is still to be fetched), or no QR any more.
 */
void store_qr_png(struct region *r, int index, const unsigned char *png, size_t len);
bool store_qr_value(struct region *r, int index, const char *value);
void store_qr_gone(struct region *r, int index);

enum store_event_result {
    STORE_EVENT_APPLIED,
    STORE_EVENT_DUPLICATE, /* this envelope id was applied already */
    STORE_EVENT_UNTRACKED  /* not a session this gateway tracks */
};

/*
 * store_event - apply a session.status event EV at once: status (with flap
 * smoothing), me, and SOURCE (a webhook, or WAHA's WebSocket); ask the
 * fetcher for the session's details, and for a new QR when the status is
 * SCAN_QR_CODE.
 */
enum store_event_result store_event(struct region *r, const struct config *cfg,
                                    const struct waha_event *ev,
                                    enum entry_source source);

/*
 * store_remote - what another gateway of the fleet stored for entry INDEX
 * (REMOTE: kind, name and the data fields; its monotonic times are not
 * used). Applied only when it is newer than ours (wall-clock fetch times).
 * Returns true when it was applied.
 */
bool store_remote(struct region *r, int index, const struct entry_data *remote);

/* store_remote_qr - the same for a session's QR code. */
bool store_remote_qr(struct region *r, int index, const char *value,
                     const unsigned char *png, size_t png_len, int64_t fetched_real_ms);

#endif
