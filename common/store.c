/*
 * store.c - write WAHA's answers, failures and webhooks into the region.
 *
 * DESIGN
 * Called by the fetcher (answers, failures, held status changes, QR codes)
 * and by workers (webhooks). Each function takes the region lock, re-checks
 * that the entry still belongs to the session it meant (the fetcher may
 * have reassigned it after WAHA's list changed), and changes it between
 * region_entry_begin_write() and region_entry_end_write(), so a process
 * killed half-way leaves an odd sequence number and the next locker
 * discards the entry instead of serving it torn.
 *
 * The generation moves only when something the status object shows changes
 * (status, me, WAHA's health, the error): ETags and SSE event ids then stay
 * the same across refreshes that bring the same answer. Published statuses
 * go through entry_observe_status(), which holds a change away from WORKING
 * for backend.flap_hold.
 */
#include "store.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "fault.h"
#include "timeutil.h"

static bool is_scan(const char *status)
{
    return strcmp(status, "SCAN_QR_CODE") == 0;
}

/* Forget entry INDEX's QR, if it has one. Lock held. */
static void drop_qr(struct region *r, int index)
{
    struct region_qr *q = region_qr(r, index);

    if (!q->d.has_qr && q->d.png_len == 0 && q->d.value[0] == '\0')
        return;
    region_qr_begin_write(r, q);
    region_qr_clear(q);
    region_qr_end_write(r, q, true);
}

/* Ask the fetcher for entry INDEX now (no lock needed). */
static void want(_Atomic int64_t *wanted, _Atomic int64_t *done)
{
    int64_t now = time_mono_ms();
    int64_t last = atomic_load(done);

    atomic_store(wanted, now > last ? now : last + 1);
}

void store_session(struct region *r, const struct config *cfg, int index,
                   const char *name, const struct session_record *rec)
{
    struct region_entry *e = region_entry(r, index);
    struct entry_data *d = &e->d;
    const char *me = rec ? rec->me_json : "null";
    int64_t now_mono = time_mono_ms(), now_real = time_real_ms();
    char error[REGION_ERROR_MAX] = "";
    bool changed;

    assert(name != NULL);
    if (rec == NULL)
        snprintf(error, sizeof(error), "WAHA has no session \"%s\"", name);

    if (region_lock(r) != 0)
        return;
    if (d->kind != ENTRY_SESSION || strcmp(d->name, name) != 0) {
        region_unlock(r); /* the entry was reassigned meanwhile */
        return;
    }
    region_entry_begin_write(r, e);
    changed = !d->has_data || !d->healthy || strcmp(d->last_error, error) != 0 ||
              d->exists != (rec != NULL) || strcmp(d->me_json, me) != 0;
    changed |= entry_observe_status(d, rec ? rec->status : "UNKNOWN", now_mono, now_real,
                                    cfg->backend.flap_hold);
    d->has_data = true;
    d->healthy = true;
    fault_point("store_session"); /* test builds: die with the entry torn */
    d->exists = rec != NULL;
    d->source = SOURCE_POLL;
    d->fetched_real_ms = now_real;
    d->fetched_mono_ms = now_mono;
    d->last_success_real_ms = now_real;
    snprintf(d->me_json, sizeof(d->me_json), "%s", me);
    memcpy(d->last_error, error, sizeof(d->last_error));
    if (rec != NULL) {
        memcpy(d->body, rec->body, rec->body_len + 1);
        d->body_len = (uint32_t)rec->body_len;
    } else {
        d->body[0] = '\0';
        d->body_len = 0;
    }
    region_entry_end_write(r, e, changed);
    if (!is_scan(d->raw_status))
        drop_qr(r, index);
    region_unlock(r);
}

void store_health(struct region *r, bool ping, const char *status, const char *body,
                  size_t len)
{
    struct region_entry *e = region_entry(r, REGION_ENTRY_HEALTH);
    struct entry_data *d = &e->d;
    const char *endpoint = ping ? "/ping" : "/health";
    bool changed;

    if (len >= sizeof(d->body))
        len = 0; /* the verdict is what matters; a huge body is not kept */
    if (region_lock(r) != 0)
        return;
    region_entry_begin_write(r, e);
    changed = !d->has_data || !d->healthy || strcmp(d->status, status) != 0 ||
              strcmp(d->name, endpoint) != 0;
    d->has_data = true;
    d->healthy = true;
    d->exists = true;
    d->source = SOURCE_POLL;
    d->fetched_real_ms = time_real_ms();
    d->fetched_mono_ms = time_mono_ms();
    d->last_success_real_ms = d->fetched_real_ms;
    fault_point("store_health"); /* test builds: die with the entry torn */
    snprintf(d->name, sizeof(d->name), "%s", endpoint);
    snprintf(d->status, sizeof(d->status), "%s", status);
    snprintf(d->raw_status, sizeof(d->raw_status), "%s", status);
    d->last_error[0] = '\0';
    memcpy(d->body, body, len);
    d->body[len] = '\0';
    d->body_len = (uint32_t)len;
    region_entry_end_write(r, e, changed);
    region_unlock(r);
}

int store_session_list(struct region *r, const struct config *cfg,
                       const struct session_record *recs, int count)
{
    static char names[REGION_SESSION_MAX][REGION_NAME_MAX];
    struct region_entry *list = region_entry(r, REGION_ENTRY_LIST);
    int missing;

    if (count > REGION_SESSION_MAX)
        count = REGION_SESSION_MAX;
    for (int i = 0; i < count; i++)
        snprintf(names[i], REGION_NAME_MAX, "%s", recs[i].name);
    if (region_lock(r) != 0)
        return 0;
    missing = region_set_sessions(r, (const char(*)[REGION_NAME_MAX])names, count);
    region_entry_begin_write(r, list);
    list->d.kind = ENTRY_SESSION_LIST;
    list->d.has_data = true;
    list->d.healthy = true;
    list->d.exists = true;
    list->d.source = SOURCE_POLL;
    list->d.fetched_real_ms = time_real_ms();
    list->d.fetched_mono_ms = time_mono_ms();
    fault_point("store_session_list"); /* test builds: die with the entry torn */
    list->d.last_success_real_ms = list->d.fetched_real_ms;
    list->d.last_error[0] = '\0';
    snprintf(list->d.status, sizeof(list->d.status), "%d", count);
    region_entry_end_write(r, list, false);
    region_unlock(r);

    /* A new entry starts with what the list said about its session. */
    for (int i = 0; i < count; i++) {
        int index;
        bool empty;

        if (region_lock(r) != 0)
            break;
        index = region_find_session(r, recs[i].name);
        empty = index >= 0 && !region_entry(r, index)->d.has_data;
        region_unlock(r);
        if (empty)
            store_session(r, cfg, index, recs[i].name, &recs[i]);
    }
    return missing;
}

void store_failure(struct region *r, int index, const char *why)
{
    struct region_entry *e = region_entry(r, index);
    struct entry_data *d = &e->d;
    bool changed;

    if (region_lock(r) != 0)
        return;
    region_entry_begin_write(r, e);
    changed = d->healthy || strcmp(d->last_error, why) != 0;
    d->healthy = false;
    snprintf(d->last_error, sizeof(d->last_error), "%s", why);
    region_entry_end_write(r, e, changed);
    region_unlock(r);
}

void store_release_held(struct region *r, const struct config *cfg, int index)
{
    struct region_entry *e = region_entry(r, index);
    bool changed;

    if (region_lock(r) != 0)
        return;
    region_entry_begin_write(r, e);
    changed = entry_release_held_status(&e->d, time_mono_ms(), time_real_ms(),
                                        cfg->backend.flap_hold);
    region_entry_end_write(r, e, changed);
    if (changed && !is_scan(e->d.raw_status))
        drop_qr(r, index);
    region_unlock(r);
}

void store_qr_png(struct region *r, int index, const unsigned char *png, size_t len)
{
    struct region_qr *q = region_qr(r, index);
    bool changed;

    if (len > REGION_QR_PNG_MAX || region_lock(r) != 0)
        return;
    region_qr_begin_write(r, q);
    changed = q->d.png_len != len || memcmp(q->d.png, png, len) != 0;
    memcpy(q->d.png, png, len);
    q->d.png_len = (uint32_t)len;
    q->d.png_current = true;
    q->d.has_qr = q->d.value[0] != '\0';
    region_qr_end_write(r, q, changed);
    region_unlock(r);
}

bool store_qr_value(struct region *r, int index, const char *value)
{
    struct region_qr *q = region_qr(r, index);
    bool changed, image_needed;

    if (strlen(value) >= sizeof(q->d.value) || region_lock(r) != 0)
        return false;
    region_qr_begin_write(r, q);
    changed = strcmp(q->d.value, value) != 0;
    snprintf(q->d.value, sizeof(q->d.value), "%s", value);
    if (changed)
        q->d.png_current = false; /* a new code: its image is fetched next, the
                                   * last one is served meanwhile */
    q->d.has_qr = q->d.png_len > 0;
    q->d.fetched_real_ms = time_real_ms();
    q->d.fetched_mono_ms = time_mono_ms();
    image_needed = !q->d.png_current;
    region_qr_end_write(r, q, changed);
    region_unlock(r);
    return image_needed;
}

void store_qr_gone(struct region *r, int index)
{
    if (region_lock(r) != 0)
        return;
    drop_qr(r, index);
    region_unlock(r);
}

enum store_event_result store_event(struct region *r, const struct config *cfg,
                                    const struct waha_event *ev, enum entry_source source)
{
    int64_t now_mono = time_mono_ms(), now_real = time_real_ms();
    struct region_entry *e;
    struct entry_data *d;
    bool changed;
    int index;

    if (region_lock(r) != 0)
        return STORE_EVENT_UNTRACKED;
    index = region_find_session(r, ev->session);
    if (index < 0) {
        region_unlock(r);
        return STORE_EVENT_UNTRACKED;
    }
    if (region_webhook_seen(r, ev->id)) {
        region_unlock(r);
        return STORE_EVENT_DUPLICATE;
    }
    e = region_entry(r, index);
    d = &e->d;
    region_entry_begin_write(r, e);
    changed = !d->has_data || !d->exists;
    changed |=
        entry_observe_status(d, ev->status, now_mono, now_real, cfg->backend.flap_hold);
    if (ev->has_me && strcmp(d->me_json, ev->me_json) != 0) {
        snprintf(d->me_json, sizeof(d->me_json), "%s", ev->me_json);
        changed = true;
    }
    d->has_data = true;
    fault_point("store_webhook"); /* test builds: a worker dies mid-write */
    d->exists = true;
    d->source = source;
    d->fetched_real_ms = now_real;
    d->fetched_mono_ms = now_mono;
    d->webhook_mono_ms = now_mono;
    snprintf(d->webhook_id, sizeof(d->webhook_id), "%s", ev->id);
    region_entry_end_write(r, e, changed);
    if (!is_scan(d->raw_status))
        drop_qr(r, index);
    region_unlock(r);

    /* The details (the session object) come from WAHA: fetch them now; and
     * each SCAN_QR_CODE event announces a new QR code. */
    want(&e->wanted_ms, &e->attempt_done_ms);
    if (is_scan(ev->status))
        want(&region_qr(r, index)->wanted_ms, &region_qr(r, index)->attempt_done_ms);
    return STORE_EVENT_APPLIED;
}

/*========================================================================
 * Entries from another gateway of the fleet (fleet.c).
 */

/* Monotonic time here of wall-clock time REAL_MS (another host's). */
static int64_t local_mono(int64_t real_ms, int64_t now_mono, int64_t now_real)
{
    int64_t mono = now_mono - (now_real - real_ms);

    return mono > now_mono ? now_mono : mono;
}

bool store_remote(struct region *r, int index, const struct entry_data *remote)
{
    struct region_entry *e = region_entry(r, index);
    struct entry_data *d = &e->d;
    int64_t now_mono = time_mono_ms(), now_real = time_real_ms();
    bool changed, newer;

    if (region_lock(r) != 0)
        return false;
    /* Only what is newer than ours (fetch times decide), or a report that
     * the refresh of the same data failed. */
    newer = !d->has_data || remote->fetched_real_ms > d->fetched_real_ms ||
            (remote->fetched_real_ms == d->fetched_real_ms &&
             (d->healthy != remote->healthy ||
              strcmp(d->last_error, remote->last_error) != 0));
    if (d->kind != remote->kind || !newer ||
        (d->kind == ENTRY_SESSION && strcmp(d->name, remote->name) != 0)) {
        region_unlock(r);
        return false;
    }
    region_entry_begin_write(r, e);
    changed = !d->has_data || d->healthy != remote->healthy ||
              d->exists != remote->exists || strcmp(d->status, remote->status) != 0 ||
              strcmp(d->me_json, remote->me_json) != 0 ||
              strcmp(d->last_error, remote->last_error) != 0;
    d->has_data = remote->has_data;
    d->healthy = remote->healthy;
    d->exists = remote->exists;
    d->source = remote->source < SOURCE_COUNT ? remote->source : SOURCE_POLL;
    if (d->kind == ENTRY_HEALTH)
        memcpy(d->name, remote->name, sizeof(d->name)); /* the endpoint asked */
    memcpy(d->status, remote->status, sizeof(d->status));
    memcpy(d->raw_status, remote->raw_status, sizeof(d->raw_status));
    d->changed_at_real_ms = remote->changed_at_real_ms;
    d->pending_since_mono_ms = 0; /* the other host smoothed it already */
    memcpy(d->me_json, remote->me_json, sizeof(d->me_json));
    d->fetched_real_ms = remote->fetched_real_ms;
    d->fetched_mono_ms = local_mono(remote->fetched_real_ms, now_mono, now_real);
    d->last_success_real_ms = remote->last_success_real_ms;
    memcpy(d->last_error, remote->last_error, sizeof(d->last_error));
    if (d->source == SOURCE_WEBHOOK) {
        d->webhook_mono_ms = d->fetched_mono_ms;
        memcpy(d->webhook_id, remote->webhook_id, sizeof(d->webhook_id));
    }
    if (remote->body_len < sizeof(d->body)) {
        memcpy(d->body, remote->body, remote->body_len);
        d->body[remote->body_len] = '\0';
        d->body_len = remote->body_len;
    }
    region_entry_end_write(r, e, changed);
    /* A retried delivery of that webhook to this host is then a duplicate. */
    if (d->source == SOURCE_WEBHOOK)
        region_webhook_seen(r, d->webhook_id);
    if (index >= REGION_ENTRY_FIRST_SESSION && !is_scan(d->raw_status))
        drop_qr(r, index);
    region_unlock(r);
    atomic_store(&e->attempt_done_ms, now_mono); /* waiting readers look now */
    return true;
}

bool store_remote_qr(struct region *r, int index, const char *value,
                     const unsigned char *png, size_t png_len, int64_t fetched_real_ms)
{
    struct region_qr *q = region_qr(r, index);
    bool changed;

    if (png_len > REGION_QR_PNG_MAX || strlen(value) >= sizeof(q->d.value) ||
        region_lock(r) != 0)
        return false;
    if (q->d.has_qr && q->d.fetched_real_ms >= fetched_real_ms) {
        region_unlock(r);
        return false;
    }
    region_qr_begin_write(r, q);
    changed = strcmp(q->d.value, value) != 0 || q->d.png_len != png_len ||
              memcmp(q->d.png, png, png_len) != 0;
    snprintf(q->d.value, sizeof(q->d.value), "%s", value);
    memcpy(q->d.png, png, png_len);
    q->d.png_len = (uint32_t)png_len;
    q->d.png_current = true;
    q->d.has_qr = value[0] != '\0' && png_len > 0;
    q->d.fetched_real_ms = fetched_real_ms;
    q->d.fetched_mono_ms = local_mono(fetched_real_ms, time_mono_ms(), time_real_ms());
    region_qr_end_write(r, q, changed);
    region_unlock(r);
    atomic_store(&q->attempt_done_ms, time_mono_ms());
    return true;
}
