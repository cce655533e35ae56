/*
 * store.h - the code that writes what clients see into the region.
 *
 * The fetcher stores WAHA's answers and its failures here, workers store
 * the session.status webhooks they receive (and the fetcher the same events
 * from WAHA's WebSocket). Each function takes the region lock, changes one
 * entry (or QR slot) between begin_write and end_write, and bumps the
 * entry's generation only when something a client sees changed. Only bytes
 * are copied while the lock is held.
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
 * store_session - what WAHA said about the session of entry INDEX: an item
 * of its session list (fetched at FETCHED_REAL_MS/FETCHED_MONO_MS), or the
 * answer of GET /api/sessions/{name}, which has the engine too (then the
 * details are stored). Statuses go through entry_observe_status() (flap
 * smoothing). NAME must still be the entry's name (the entry may have been
 * reassigned meanwhile). Gives back the QR slot when WAHA no longer waits
 * for a scan.
 */
void store_session(struct region *r, const struct config *cfg, int index,
                   const struct session_record *rec, int64_t fetched_real_ms,
                   int64_t fetched_mono_ms);

/*
 * store_absent - WAHA has no session NAME (entry INDEX), which is what the
 * call of its details answered: 404, or WAHA Core's 422 for a session other
 * than "default", REASON being WAHA's words ("" for a plain absence).
 *
 * store_unlisted - WAHA's list does not have NAME: absent too, keeping the
 * words its details gave; the details of a session that was there are
 * dropped, so that a reader of its object asks WAHA why.
 */
void store_absent(struct region *r, const struct config *cfg, int index, const char *name,
                  const char *reason);
void store_unlisted(struct region *r, const struct config *cfg, int index, const char *name);

/* store_health - WAHA's /health or /ping answered with STATUS. */
void store_health(struct region *r, bool ping, const char *status, const char *body,
                  size_t len);

/*
 * store_health_refused - WAHA refused /health with BODY (LEN bytes; WAHA
 * Core's 422, or a 401/403/404): kept with the health entry's details, so
 * that GET /health on the gateway answers what WAHA answers, while the
 * fetcher checks /ping instead.
 */
void store_health_refused(struct region *r, const char *body, size_t len);

/*
 * store_server - WAHA's answer BODY (LEN bytes, a JSON object) to the
 * server entry INDEX's path (REGION_ENTRY_VERSION, REGION_ENTRY_SERVER).
 */
void store_server(struct region *r, int index, const char *body, size_t len);

/* store_list - the session list was fetched: COUNT sessions. */
void store_list(struct region *r, int count);

/* store_failure - a refresh of entry INDEX failed: keep the data, say why. */
void store_failure(struct region *r, int index, const char *why);

/* store_release_held - publish entry INDEX's held status change if its
 * flap_hold is over. */
void store_release_held(struct region *r, const struct config *cfg, int index);

/*
 * QR codes of session entry INDEX: the image, the raw value (true when
 * that is a new code whose image is still to be fetched), or no QR any
 * more. A QR code takes a QR slot (region_qr_claim()); store_qr_gone()
 * gives it back.
 */
void store_qr_png(struct region *r, int index, const unsigned char *png, size_t len);
bool store_qr_value(struct region *r, int index, const char *value);
void store_qr_gone(struct region *r, int index);

enum store_event_result {
    STORE_EVENT_APPLIED,
    STORE_EVENT_DUPLICATE, /* this envelope id was applied already */
    STORE_EVENT_OUTDATED,  /* older than what the entry holds: a late retry, or a
                              replay */
    STORE_EVENT_UNTRACKED  /* not a session this gateway tracks */
};

/* A pushed status is older than polled data fetched more than this after
 * it (on the two hosts' wall clocks): WAHA's retries of one delivery take
 * 15 x 2 s (docs/waha-api.md, 6.2). */
#define STORE_EVENT_CLOCK_SLACK_MS 30000

/*
 * store_event - apply a session.status event EV at once: status (with flap
 * smoothing), me, and SOURCE (a webhook, or WAHA's WebSocket), unless it is
 * a duplicate or older than what the entry holds (an older envelope
 * timestamp than the last event applied, or polled data fetched more than
 * STORE_EVENT_CLOCK_SLACK_MS after it). Asks the fetcher for the session's
 * list item when it now says another status, and for a new QR when the
 * status is SCAN_QR_CODE.
 */
enum store_event_result store_event(struct region *r, const struct config *cfg,
                                    const struct waha_event *ev, enum entry_source source);

/*
 * store_remote - what another gateway of the fleet stored for entry INDEX
 * (REMOTE: kind, name and the data fields, its monotonic times not used;
 * REMOTE_BODY: its body and engine). Applied only when it is newer than
 * ours (wall-clock fetch times). Returns true when it was applied.
 */
bool store_remote(struct region *r, int index, const struct entry_data *remote,
                  const struct entry_body *remote_body);

/* store_remote_qr - the same for a session's QR code. */
bool store_remote_qr(struct region *r, int index, const char *value,
                     const unsigned char *png, size_t png_len, int64_t fetched_real_ms);

#endif
