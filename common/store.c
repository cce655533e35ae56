/*
 * store.c - write WAHA's answers, failures and pushed events into the
 * region.
 *
 * DESIGN
 * Called by the fetcher (answers, failures, held status changes, QR codes,
 * events from WAHA's WebSocket) and by workers (webhooks). Each function
 * takes the region lock, re-checks that the entry still belongs to the
 * session it meant (the fetcher may have reassigned it after WAHA's list
 * changed), and changes it between region_entry_begin_write() and
 * region_entry_end_write(), so a process killed half-way leaves an odd
 * sequence number and the next locker discards the entry instead of
 * serving it torn.
 *
 * A session's entry holds two parts of different age: its data (status,
 * me, and the object as WAHA's session list gives it), refreshed for all
 * sessions by one GET /api/sessions?all=true, and its details (the engine,
 * which only GET /api/sessions/{name} gives), fetched only when someone
 * reads the whole object.
 *
 * The generation moves only when something the status object shows changes
 * (status, me, WAHA's health, the error): ETags and SSE event ids then stay
 * the same across refreshes that bring the same answer. Published statuses
 * go through entry_observe_status(), which holds a change away from WORKING
 * for backend.flap_hold.
 *
 * Pushed events (webhooks, WAHA's WebSocket) are applied in the order WAHA
 * made them, not the order they arrive: WAHA retries each delivery on its
 * own, so a retry of an older event can come after a newer one, and a
 * captured envelope can be replayed. An event older than the last one
 * applied (envelope timestamps), or than polled data fetched well after
 * it, is ignored; an envelope id seen before (its digest, in the header's
 * ring) is a duplicate.
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

/* The entry of INDEX, when it is still the session NAME's. Lock held. */
static struct region_entry *session_entry(struct region *r, int index, const char *name)
{
    struct region_entry *e = region_entry(r, index);

    return e->d.kind == ENTRY_SESSION && strcmp(e->d.name, name) == 0 ? e : NULL;
}

/* Copy TEXT (LEN bytes) into entry INDEX's body (D its data). */
static void set_body(struct region *r, int index, struct entry_data *d, const char *text,
                     size_t len)
{
    struct entry_body *b = region_body(r, index);

    if (len >= sizeof(b->body))
        len = 0;
    memcpy(b->body, text, len);
    b->body[len] = '\0';
    d->body_len = (uint32_t)len;
}

/* ENGINE (LEN bytes) as entry INDEX's details, fetched at REAL_MS/MONO_MS. */
static void set_details(struct region *r, int index, struct entry_data *d,
                        const char *engine, size_t len, int64_t real_ms, int64_t mono_ms)
{
    struct entry_body *b = region_body(r, index);

    if (len >= sizeof(b->engine_json))
        len = 0;
    d->has_details = true;
    d->details_real_ms = real_ms;
    d->details_mono_ms = mono_ms;
    memcpy(b->engine_json, engine, len);
    b->engine_json[len] = '\0';
    d->engine_len = (uint32_t)len;
}

void store_session(struct region *r, const struct config *cfg, int index,
                   const struct session_record *rec, int64_t fetched_real_ms,
                   int64_t fetched_mono_ms)
{
    struct region_entry *e;
    struct entry_data *d;
    bool changed;

    if (region_lock(r) != 0)
        return;
    if ((e = session_entry(r, index, rec->name)) == NULL) {
        region_unlock(r); /* the entry was reassigned meanwhile */
        return;
    }
    d = &e->d;
    region_entry_begin_write(r, e);
    changed = !d->has_data || !d->healthy || d->last_error[0] != '\0' || !d->exists ||
              strcmp(d->me_json, rec->me_json) != 0;
    changed |= entry_observe_status(d, rec->status, fetched_mono_ms, fetched_real_ms,
                                    cfg->backend.flap_hold);
    d->has_data = true;
    d->healthy = true;
    fault_point("store_session"); /* test builds: die with the entry torn */
    d->exists = true;
    d->absent_reason[0] = '\0';
    d->source = SOURCE_POLL;
    d->fetched_real_ms = fetched_real_ms;
    d->fetched_mono_ms = fetched_mono_ms;
    d->last_success_real_ms = fetched_real_ms;
    snprintf(d->me_json, sizeof(d->me_json), "%s", rec->me_json);
    d->last_error[0] = '\0';
    set_body(r, index, d, rec->body, rec->body_len);
    if (rec->has_engine)
        set_details(r, index, d, rec->engine_json, rec->engine_len, time_real_ms(),
                    time_mono_ms());
    region_entry_end_write(r, e, changed);
    if (!is_scan(d->raw_status))
        region_qr_release(r, index);
    region_unlock(r);
}

/* Mark entry INDEX absent: NAME is not a session WAHA has. REASON, when
 * not NULL, is what a call of its details answered ("" for a 404), and
 * then nothing more is asked. NULL is the list's silence: an entry absent
 * already keeps what its details said; one that was there loses its
 * details, so that a reader of its object asks WAHA why (WAHA Core's 422
 * is told only there). */
static void mark_absent(struct region *r, const struct config *cfg, int index, const char *name,
                        const char *reason)
{
    int64_t now_mono = time_mono_ms(), now_real = time_real_ms();
    struct region_entry *e;
    struct entry_data *d;
    bool changed, was_absent, answered = reason != NULL;

    if (region_lock(r) != 0)
        return;
    if ((e = session_entry(r, index, name)) == NULL) {
        region_unlock(r); /* the entry was reassigned meanwhile */
        return;
    }
    d = &e->d;
    was_absent = d->has_data && !d->exists;
    if (reason == NULL)
        reason = was_absent ? d->absent_reason : "";
    region_entry_begin_write(r, e);
    changed = !d->has_data || !d->healthy || d->exists || strcmp(d->me_json, "null") != 0 ||
              strcmp(d->absent_reason, reason) != 0;
    changed |=
        entry_observe_status(d, "UNKNOWN", now_mono, now_real, cfg->backend.flap_hold);
    d->has_data = true;
    d->healthy = true;
    d->exists = false;
    if (reason != d->absent_reason)
        snprintf(d->absent_reason, sizeof(d->absent_reason), "%s", reason);
    d->source = SOURCE_POLL;
    d->fetched_real_ms = now_real;
    d->fetched_mono_ms = now_mono;
    d->last_success_real_ms = now_real;
    snprintf(d->me_json, sizeof(d->me_json), "null");
    snprintf(d->last_error, sizeof(d->last_error), "WAHA has no session \"%s\"", name);
    set_body(r, index, d, "", 0);
    if (answered || !was_absent) {
        set_details(r, index, d, "", 0, now_real, now_mono);
        d->has_details = answered; /* answered: nothing more to ask */
    }
    region_entry_end_write(r, e, changed);
    region_qr_release(r, index);
    region_unlock(r);
}

void store_absent(struct region *r, const struct config *cfg, int index, const char *name,
                  const char *reason)
{
    mark_absent(r, cfg, index, name, reason);
}

void store_unlisted(struct region *r, const struct config *cfg, int index, const char *name)
{
    mark_absent(r, cfg, index, name, NULL);
}

/* D was just fetched, and WAHA answered well (inside a write). */
static void mark_answered(struct entry_data *d)
{
    d->has_data = true;
    d->healthy = true;
    d->exists = true;
    d->source = SOURCE_POLL;
    d->fetched_real_ms = time_real_ms();
    d->fetched_mono_ms = time_mono_ms();
    d->last_success_real_ms = d->fetched_real_ms;
    d->last_error[0] = '\0';
}

void store_health(struct region *r, bool ping, const char *status, const char *body,
                  size_t len)
{
    struct region_entry *e = region_entry(r, REGION_ENTRY_HEALTH);
    struct entry_data *d = &e->d;
    const char *endpoint = ping ? "/ping" : "/health";
    bool changed;

    if (region_lock(r) != 0)
        return;
    region_entry_begin_write(r, e);
    changed = !d->has_data || !d->healthy || strcmp(d->status, status) != 0 ||
              strcmp(d->name, endpoint) != 0;
    mark_answered(d);
    fault_point("store_health"); /* test builds: die with the entry torn */
    snprintf(d->name, sizeof(d->name), "%s", endpoint);
    snprintf(d->status, sizeof(d->status), "%s", status);
    snprintf(d->raw_status, sizeof(d->raw_status), "%s", status);
    /* The verdict is what matters; a huge body is not kept. */
    set_body(r, REGION_ENTRY_HEALTH, d, body, len);
    region_entry_end_write(r, e, changed);
    region_unlock(r);
}

void store_health_refused(struct region *r, const char *body, size_t len)
{
    struct region_entry *e = region_entry(r, REGION_ENTRY_HEALTH);
    struct entry_body *b = region_body(r, REGION_ENTRY_HEALTH);
    bool changed;

    if (region_lock(r) != 0)
        return;
    region_entry_begin_write(r, e);
    changed = e->d.engine_len != len || memcmp(b->engine_json, body, len) != 0;
    /* The details part: fleet.c shares it with the entry. */
    set_details(r, REGION_ENTRY_HEALTH, &e->d, body, len, time_real_ms(), time_mono_ms());
    region_entry_end_write(r, e, changed);
    region_unlock(r);
}

void store_server(struct region *r, int index, const char *body, size_t len)
{
    struct region_entry *e = region_entry(r, index);
    struct entry_data *d = &e->d;
    bool changed;

    if (region_lock(r) != 0)
        return;
    region_entry_begin_write(r, e);
    changed = !d->has_data || !d->healthy || d->body_len != len ||
              memcmp(region_body(r, index)->body, body, len) != 0;
    d->kind = ENTRY_SERVER;
    mark_answered(d);
    snprintf(d->status, sizeof(d->status), "ok");
    set_body(r, index, d, body, len);
    region_entry_end_write(r, e, changed);
    region_unlock(r);
}

void store_list(struct region *r, int count)
{
    struct region_entry *list = region_entry(r, REGION_ENTRY_LIST);

    if (region_lock(r) != 0)
        return;
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
}

void store_failure(struct region *r, int index, const char *why)
{
    struct region_entry *e = region_entry(r, index);
    struct entry_data *d = &e->d;
    bool changed;

    if (region_lock(r) != 0)
        return;
    if (d->healthy || strcmp(d->last_error, why) != 0) {
        region_entry_begin_write(r, e);
        changed = d->healthy || strcmp(d->last_error, why) != 0;
        d->healthy = false;
        snprintf(d->last_error, sizeof(d->last_error), "%s", why);
        region_entry_end_write(r, e, changed);
    }
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
        region_qr_release(r, index);
    region_unlock(r);
}

/*========================================================================
 * QR codes.
 */

void store_qr_png(struct region *r, int index, const unsigned char *png, size_t len)
{
    struct region_qr *q;
    bool changed;

    if (len > REGION_QR_PNG_MAX || region_lock(r) != 0)
        return;
    if ((q = region_qr_of(r, index)) != NULL) { /* no slot: the session moved on */
        region_qr_begin_write(r, q);
        changed = q->d.png_len != len || memcmp(q->d.png, png, len) != 0;
        memcpy(q->d.png, png, len);
        q->d.png_len = (uint32_t)len;
        q->d.png_current = true;
        q->d.has_qr = q->d.value[0] != '\0';
        region_qr_end_write(r, q, changed);
    }
    region_unlock(r);
}

bool store_qr_value(struct region *r, int index, const char *value)
{
    struct region_qr *q;
    bool changed, image_needed = false;

    if (strlen(value) >= sizeof(q->d.value) || region_lock(r) != 0)
        return false;
    if (is_scan(region_entry(r, index)->d.raw_status) &&
        (q = region_qr_claim(r, index)) != NULL) {
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
    }
    region_unlock(r);
    return image_needed;
}

void store_qr_gone(struct region *r, int index)
{
    if (region_lock(r) != 0)
        return;
    region_qr_release(r, index);
    region_unlock(r);
}

/*========================================================================
 * Pushed events: webhooks and WAHA's WebSocket.
 */

/* Is EV older than what D holds? (See DESIGN.) */
static bool outdated(const struct entry_data *d, const struct waha_event *ev)
{
    if (ev->timestamp_ms <= 0)
        return false; /* WAHA before 2024-11: no timestamps, no order */
    if (d->event_ts_ms > 0 && ev->timestamp_ms <= d->event_ts_ms)
        return true;
    return d->has_data && d->source == SOURCE_POLL &&
           ev->timestamp_ms < d->fetched_real_ms - STORE_EVENT_CLOCK_SLACK_MS;
}

/* Apply EV to the entry E (lock held): true when its body now says
 * another status than the event (a refresh of the list item is due). */
static bool apply_event(struct region *r, const struct config *cfg, int index,
                        const struct waha_event *ev, enum entry_source source)
{
    struct region_entry *e = region_entry(r, index);
    int64_t now_mono = time_mono_ms(), now_real = time_real_ms();
    struct entry_data *d = &e->d;
    char quoted[REGION_STATUS_MAX + 16];
    bool changed;

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
    d->absent_reason[0] = '\0';
    d->source = source;
    d->fetched_real_ms = now_real;
    d->fetched_mono_ms = now_mono;
    d->pushed_mono_ms = now_mono;
    if (ev->timestamp_ms > d->event_ts_ms)
        d->event_ts_ms = ev->timestamp_ms;
    memcpy(d->event_digest, ev->id_digest, sizeof(d->event_digest));
    region_entry_end_write(r, e, changed);
    snprintf(quoted, sizeof(quoted), "\"status\":\"%s\"", ev->status);
    return strstr(region_body(r, index)->body, quoted) == NULL;
}

enum store_event_result store_event(struct region *r, const struct config *cfg,
                                    const struct waha_event *ev, enum entry_source source)
{
    enum store_event_result result = STORE_EVENT_APPLIED;
    bool body_behind = false;
    int index;

    if (region_lock(r) != 0)
        return STORE_EVENT_UNTRACKED;
    index = region_find_session(r, ev->session);
    if (index < 0)
        result = STORE_EVENT_UNTRACKED;
    else if (region_event_seen(r, ev->id_digest))
        result = STORE_EVENT_DUPLICATE;
    else if (outdated(&region_entry(r, index)->d, ev))
        result = STORE_EVENT_OUTDATED;
    else
        body_behind = apply_event(r, cfg, index, ev, source);
    if (result == STORE_EVENT_APPLIED && !is_scan(ev->status))
        region_qr_release(r, index);
    region_unlock(r);
    if (result != STORE_EVENT_APPLIED)
        return result;
    /* The rest of the object (config, presence, timestamps) comes from
     * WAHA's list; each SCAN_QR_CODE event announces a new QR code. */
    if (body_behind)
        region_want(r, index, DEMAND_DATA, time_mono_ms());
    if (is_scan(ev->status))
        region_want(r, index, DEMAND_QR, time_mono_ms());
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

/* Copy REMOTE's data fields (and REMOTE_BODY) into entry INDEX, whose data
 * is D (lock held, inside a write). */
static void copy_remote(struct region *r, int index, struct entry_data *d,
                        const struct entry_data *remote, const struct entry_body *remote_body)
{
    int64_t now_mono = time_mono_ms(), now_real = time_real_ms();

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
    memcpy(d->absent_reason, remote->absent_reason, sizeof(d->absent_reason));
    if (d->source == SOURCE_WEBHOOK || d->source == SOURCE_EVENTS) {
        d->pushed_mono_ms = d->fetched_mono_ms;
        d->event_ts_ms = remote->event_ts_ms;
        memcpy(d->event_digest, remote->event_digest, sizeof(d->event_digest));
    }
    if (remote->has_details)
        set_details(r, index, d, remote_body->engine_json, remote->engine_len,
                    remote->details_real_ms,
                    local_mono(remote->details_real_ms, now_mono, now_real));
    set_body(r, index, d, remote_body->body, remote->body_len);
}

bool store_remote(struct region *r, int index, const struct entry_data *remote,
                  const struct entry_body *remote_body)
{
    struct region_entry *e = region_entry(r, index);
    struct entry_data *d = &e->d;
    bool changed, newer, first_list;

    if (region_lock(r) != 0)
        return false;
    /* Only what is newer than ours (fetch times decide), or a report that
     * the refresh of the same data failed. */
    newer = !d->has_data || remote->fetched_real_ms > d->fetched_real_ms ||
            (remote->fetched_real_ms == d->fetched_real_ms &&
             (d->healthy != remote->healthy ||
              strcmp(d->last_error, remote->last_error) != 0));
    /* The list entry is free until a list is stored (here or store_list()). */
    first_list = index == REGION_ENTRY_LIST && d->kind == ENTRY_FREE &&
                 remote->kind == ENTRY_SESSION_LIST;
    if ((d->kind != remote->kind && !first_list) || !newer ||
        (d->kind == ENTRY_SESSION && strcmp(d->name, remote->name) != 0)) {
        region_unlock(r);
        return false;
    }
    region_entry_begin_write(r, e);
    d->kind = remote->kind;
    changed = !d->has_data || d->healthy != remote->healthy ||
              d->exists != remote->exists || strcmp(d->status, remote->status) != 0 ||
              strcmp(d->me_json, remote->me_json) != 0 ||
              strcmp(d->last_error, remote->last_error) != 0;
    copy_remote(r, index, d, remote, remote_body);
    region_entry_end_write(r, e, changed);
    /* A retried delivery of that event to this host is then a duplicate. */
    if (d->source == SOURCE_WEBHOOK || d->source == SOURCE_EVENTS)
        region_event_seen(r, d->event_digest);
    if (index >= REGION_ENTRY_FIRST_SESSION && !is_scan(d->raw_status))
        region_qr_release(r, index);
    region_unlock(r);
    /* Waiting readers look now. */
    atomic_store(&region_demand(r, index, DEMAND_DATA)->attempt_done_ms, time_mono_ms());
    if (d->has_details)
        atomic_store(&region_demand(r, index, DEMAND_DETAILS)->attempt_done_ms,
                     time_mono_ms());
    return true;
}

bool store_remote_qr(struct region *r, int index, const char *value,
                     const unsigned char *png, size_t png_len, int64_t fetched_real_ms)
{
    struct region_qr *q;
    bool changed, taken = false;

    if (png_len > REGION_QR_PNG_MAX || strlen(value) >= REGION_QR_VALUE_MAX ||
        region_lock(r) != 0)
        return false;
    q = region_qr_of(r, index);
    if ((q == NULL || !q->d.has_qr || q->d.fetched_real_ms < fetched_real_ms) &&
        is_scan(region_entry(r, index)->d.raw_status) &&
        (q = region_qr_claim(r, index)) != NULL) {
        region_qr_begin_write(r, q);
        changed = strcmp(q->d.value, value) != 0 || q->d.png_len != png_len ||
                  memcmp(q->d.png, png, png_len) != 0;
        snprintf(q->d.value, sizeof(q->d.value), "%s", value);
        memcpy(q->d.png, png, png_len);
        q->d.png_len = (uint32_t)png_len;
        q->d.png_current = true;
        q->d.has_qr = value[0] != '\0' && png_len > 0;
        q->d.fetched_real_ms = fetched_real_ms;
        q->d.fetched_mono_ms =
            local_mono(fetched_real_ms, time_mono_ms(), time_real_ms());
        region_qr_end_write(r, q, changed);
        taken = true;
    }
    region_unlock(r);
    if (taken)
        atomic_store(&region_demand(r, index, DEMAND_QR)->attempt_done_ms, time_mono_ms());
    return taken;
}
