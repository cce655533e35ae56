/*
 * fleet.c - one fetcher for several gateways, through Redis (see fleet.h).
 *
 * DESIGN
 * Runs inside the fetcher, on its event loop, with hiredis's asynchronous
 * API and its libevent adapter: one connection for commands, one for the
 * subscription. Keys and channels all start with redis.key_prefix:
 *   <prefix>lease     the leader's token, SET NX PX redis.lock_ttl
 *   <prefix>entries   a hash: entry name -> its JSON record (the last one)
 *   <prefix>changes   channel: every record, as it is stored
 *   <prefix>demand    channel: "want|read health|list|details|qr|server NAME"
 *
 * Election: every lock_ttl/5 a follower tries SET NX PX; the leader renews
 * with a script that extends the lease only while it still holds its token,
 * and gives it up at shutdown with a compare-and-delete script. A leader that
 * dies or loses Redis is replaced within lock_ttl and one try.
 *
 * Sharing: each fetcher tick compares the region's sequence numbers with
 * what was last shared. The leader shares every entry it changed (answers
 * and failures, so followers release their waiting readers too); a follower
 * shares the entries its workers changed by webhook, so a webhook reaching
 * any gateway reaches all. Records carry wall-clock fetch times; a gateway
 * takes a record only when it is newer than what it has (store_remote()),
 * so nothing stale replaces fresher data and a gateway's own records come
 * back harmlessly. A gateway that (re)connects first loads <prefix>entries.
 *
 * Degrading: when either connection drops, the state is DOWN: the fetcher
 * calls WAHA on its own (fleet_may_fetch()), it is logged once, shown in the
 * stats and the metrics, and the connections are retried every second. A
 * Redis that keeps the connection but stops answering is dropped the same
 * way once a lease command waits lock_ttl, or once a leader's lease may
 * have run out; so a leader never outlives its lease by more than one
 * lease tick, and what hiredis buffers for a silent Redis stays bounded by
 * lock_ttl of traffic.
 */
#include "fleet.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "json.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "waha.h"

#define RECONNECT_MS 1000
#define QR_BASE64_MAX (4 * ((REGION_QR_PNG_MAX + 2) / 3)) /* a full QR image */
#define FORWARD_EVERY_MS 300

static const char renew_script[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
static const char release_script[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";

static struct {
    const struct config *cfg;
    struct region *region;
    struct event_base *base;
    redisAsyncContext *cmd, *sub;
    bool cmd_ready, sub_ready;
    struct event *lease_timer, *reconnect_timer;
    enum fleet_state state;
    bool warned_down, warned_auth, stopping;
    int64_t lease_sent_ms;          /* a lease command awaits its answer since */
    bool lease_renewing;            /* ... and it renews (else it tries to take) */
    int64_t lease_held_since;       /* when the last lease we got was asked for */
    const struct redis_address *at; /* cfg->redis.address */
    char where[300];                /* host:port or the socket: no password */
    char token[96];
    char key_lease[128], key_entries[128], chan_changes[128], chan_demand[128];
    int entries;              /* region_entry_count() */
    uint64_t *shared_seq;     /* per entry: the seq last shared */
    uint64_t *shared_qr_seq;  /* per entry: its QR slot's seq last shared */
    int64_t (*forwarded_ms)[TARGET_KIND_COUNT]; /* per entry and target */
    char (*names)[REGION_NAME_MAX];             /* a list record's names */
    bool *scratch;                              /* region_set_sessions() */
    struct entry_data copy;   /* an entry being shared */
    struct entry_body copy_body;
    struct entry_data remote; /* an entry being taken */
    struct entry_body remote_body;
    struct qr_data qr;
} fl;

static void set_state(enum fleet_state state)
{
    if (fl.state == state || fl.stopping)
        return;
    if (state == FLEET_LEADER)
        log_info("leader of the fleet: this gateway calls WAHA for all");
    else if (state == FLEET_FOLLOWER)
        log_info("following: another gateway calls WAHA; its answers come through Redis");
    else if (state == FLEET_DOWN && !fl.warned_down) {
        log_warn(0,
                 "Redis at %s is unreachable: calling WAHA on our own until it is back",
                 fl.where);
        fl.warned_down = true;
    }
    if (state != FLEET_DOWN)
        fl.warned_down = false;
    fl.state = state;
    atomic_store(&region_header(fl.region)->fleet, (uint32_t)state);
}

bool fleet_may_fetch(void)
{
    return fl.state != FLEET_FOLLOWER;
}

/*========================================================================
 * Records: an entry as JSON.
 */

/* The hash field of entry D: its session name, @health, @list, or
 * @server/api/server/... */
static const char *record_name(const struct entry_data *d, char *out, size_t size)
{
    if (d->kind == ENTRY_SESSION)
        snprintf(out, size, "%s", d->name);
    else
        snprintf(out, size, "@%s%s", entry_kind_names[d->kind],
                 d->kind == ENTRY_SERVER ? d->name : "");
    return out;
}

static void add_string(struct json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, json_object_new_string(value));
}

static void add_int(struct json_object *o, const char *key, int64_t value)
{
    json_object_object_add(o, key, json_object_new_int64(value));
}

static void add_hex(struct json_object *o, const char *key, const uint8_t *bytes,
                    size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char text[2 * REGION_DIGEST_LEN + 1];

    for (size_t i = 0; i < len && 2 * i + 1 < sizeof(text); i++) {
        text[2 * i] = hex[bytes[i] >> 4];
        text[2 * i + 1] = hex[bytes[i] & 15];
    }
    text[2 * len < sizeof(text) ? 2 * len : sizeof(text) - 1] = '\0';
    add_string(o, key, text);
}

/* Since when (wall clock) this gateway's WebSocket to WAHA's events is up,
 * 0 when it is not: a follower's data is then kept current by the events
 * the leader shares. */
static int64_t events_since_real(void)
{
    int64_t since = atomic_load(&region_header(fl.region)->events_since_ms);

    return since == 0 ? 0 : time_real_ms() - (time_mono_ms() - since);
}

/* The names of this gateway's session entries, as a JSON array. */
static struct json_object *session_names(void)
{
    struct json_object *names = json_object_new_array();
    int count = 0;

    if (region_lock(fl.region) != 0)
        return names;
    for (int i = REGION_ENTRY_FIRST_SESSION; i < fl.entries; i++)
        if (region_entry(fl.region, i)->d.kind == ENTRY_SESSION)
            memcpy(fl.names[count++], region_entry(fl.region, i)->d.name, REGION_NAME_MAX);
    region_unlock(fl.region);
    for (int k = 0; k < count; k++)
        json_object_array_add(names, json_object_new_string(fl.names[k]));
    return names;
}

/* The JSON record of session/health/list entry INDEX, or NULL. */
static struct json_object *entry_record(int index)
{
    struct region_entry *e = region_entry(fl.region, index);
    struct json_object *o;

    if (region_lock(fl.region) != 0)
        return NULL;
    entry_data_copy(&fl.copy, &e->d);
    entry_body_copy(&fl.copy_body, region_body(fl.region, index), &fl.copy);
    region_unlock(fl.region);
    if (fl.copy.kind == ENTRY_FREE || !fl.copy.has_data)
        return NULL;
    o = json_object_new_object();
    add_string(o, "origin", fl.token);
    add_string(o, "kind", entry_kind_names[fl.copy.kind]);
    add_string(o, "name", fl.copy.name);
    add_string(o, "status", fl.copy.status);
    add_string(o, "rawStatus", fl.copy.raw_status);
    add_int(o, "changedAt", fl.copy.changed_at_real_ms);
    add_string(o, "me", fl.copy.me_json);
    json_object_object_add(o, "exists", json_object_new_boolean(fl.copy.exists));
    json_object_object_add(o, "healthy", json_object_new_boolean(fl.copy.healthy));
    add_int(o, "source", fl.copy.source);
    add_int(o, "fetchedAt", fl.copy.fetched_real_ms);
    add_int(o, "lastSuccessAt", fl.copy.last_success_real_ms);
    add_string(o, "lastError", fl.copy.last_error);
    add_string(o, "absentReason", fl.copy.absent_reason);
    add_int(o, "eventsSince", events_since_real());
    add_int(o, "eventTs", fl.copy.event_ts_ms);
    add_hex(o, "eventDigest", fl.copy.event_digest, sizeof(fl.copy.event_digest));
    if (fl.copy.has_details) {
        add_int(o, "detailsAt", fl.copy.details_real_ms);
        json_object_object_add(o, "engine",
                               json_object_new_string_len(fl.copy_body.engine_json,
                                                          (int)fl.copy.engine_len));
    }
    json_object_object_add(
        o, "body", json_object_new_string_len(fl.copy_body.body, (int)fl.copy.body_len));
    if (fl.copy.kind == ENTRY_SESSION_LIST)
        json_object_object_add(o, "names", session_names());
    return o;
}

static struct json_object *qr_record(int index)
{
    char name[REGION_NAME_MAX];
    static unsigned char b64[QR_BASE64_MAX + 1];
    struct region_qr *q;
    struct json_object *o;

    if (region_lock(fl.region) != 0)
        return NULL;
    q = region_qr_of(fl.region, index);
    if (q != NULL)
        qr_data_copy(&fl.qr, &q->d);
    snprintf(name, sizeof(name), "%s", region_entry(fl.region, index)->d.name);
    region_unlock(fl.region);
    if (q == NULL || !fl.qr.has_qr || !fl.qr.png_current)
        return NULL;
    EVP_EncodeBlock(b64, fl.qr.png, (int)fl.qr.png_len);
    o = json_object_new_object();
    add_string(o, "origin", fl.token);
    add_string(o, "kind", "qr");
    add_string(o, "name", name);
    add_string(o, "value", fl.qr.value);
    add_string(o, "png", (const char *)b64);
    add_int(o, "fetchedAt", fl.qr.fetched_real_ms);
    return o;
}

static void publish(struct json_object *record, const char *field)
{
    const char *text = json_object_to_json_string_ext(record, JSON_C_TO_STRING_PLAIN);

    redisAsyncCommand(fl.cmd, NULL, NULL, "HSET %s %s %s", fl.key_entries, field, text);
    redisAsyncCommand(fl.cmd, NULL, NULL, "PUBLISH %s %s", fl.chan_changes, text);
    json_object_put(record);
}

static const char *get_string(struct json_object *o, const char *key)
{
    const char *v = json_get_string(o, key);

    return v ? v : "";
}

static int64_t get_int(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

/* A QR record of session NAME: taken when this gateway tracks NAME. */
static const char *take_qr(struct json_object *record, const char *name)
{
    static unsigned char png[REGION_QR_PNG_MAX + 3];
    const char *b64 = get_string(record, "png");
    size_t b64_len = strlen(b64);
    int index, len;

    if (b64_len > (size_t)QR_BASE64_MAX)
        return "QR image too large";
    if (region_lock(fl.region) != 0)
        return NULL;
    index = region_find_session(fl.region, name);
    region_unlock(fl.region);
    if (index < 0)
        return NULL; /* not a session this gateway tracks */
    len = EVP_DecodeBlock(png, (const unsigned char *)b64, (int)b64_len);
    if (len < 0)
        return "QR image not base64";
    len -= (int)(b64_len >= 2 && b64[b64_len - 1] == '=') +
           (int)(b64_len >= 2 && b64[b64_len - 2] == '=');
    store_remote_qr(fl.region, index, get_string(record, "value"), png, (size_t)len,
                    get_int(record, "fetchedAt"));
    return NULL;
}

/* A follower takes the leader's events state (what keeps data current). */
static void take_events_since(struct json_object *record)
{
    int64_t since = get_int(record, "eventsSince"), local;

    if (fl.state != FLEET_FOLLOWER)
        return;
    local = time_mono_ms() - (time_real_ms() - since);
    atomic_store(&region_header(fl.region)->events_since_ms,
                 since == 0 ? 0 : local > 0 ? local : 1);
}

/* TEXT's hex digits into the LEN bytes of OUT (zero when TEXT is not that). */
static void read_hex(const char *text, uint8_t *out, size_t len)
{
    memset(out, 0, len);
    if (strlen(text) != 2 * len)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned int byte;
        if (sscanf(text + 2 * i, "%2x", &byte) != 1) {
            memset(out, 0, len);
            return;
        }
        out[i] = (uint8_t)byte;
    }
}

/* The data fields of RECORD (an entry of KIND) into D; NULL or why not. */
static const char *entry_of_record(struct json_object *record, enum entry_kind kind,
                                   const char *name, struct entry_data *d,
                                   struct entry_body *b)
{
    struct json_object *v;

    memset(d, 0, sizeof(*d));
    d->kind = kind;
    /* A session's name, or the health check's endpoint. */
    snprintf(d->name, sizeof(d->name), "%s", kind == ENTRY_SESSION_LIST ? "" : name);
    d->has_data = true;
    d->healthy =
        json_object_object_get_ex(record, "healthy", &v) && json_object_get_boolean(v);
    d->exists =
        json_object_object_get_ex(record, "exists", &v) && json_object_get_boolean(v);
    d->source = (uint32_t)get_int(record, "source");
    snprintf(d->status, sizeof(d->status), "%s", get_string(record, "status"));
    snprintf(d->raw_status, sizeof(d->raw_status), "%s", get_string(record, "rawStatus"));
    snprintf(d->me_json, sizeof(d->me_json), "%s", get_string(record, "me"));
    snprintf(d->last_error, sizeof(d->last_error), "%s", get_string(record, "lastError"));
    snprintf(d->absent_reason, sizeof(d->absent_reason), "%s",
             get_string(record, "absentReason"));
    d->event_ts_ms = get_int(record, "eventTs");
    read_hex(get_string(record, "eventDigest"), d->event_digest, sizeof(d->event_digest));
    if (json_object_object_get_ex(record, "engine", &v) &&
        json_object_get_string_len(v) < (int)sizeof(b->engine_json)) {
        d->has_details = true;
        d->details_real_ms = get_int(record, "detailsAt");
        d->engine_len = (uint32_t)snprintf(b->engine_json, sizeof(b->engine_json), "%s",
                                           json_object_get_string(v));
    }
    d->changed_at_real_ms = get_int(record, "changedAt");
    d->fetched_real_ms = get_int(record, "fetchedAt");
    d->last_success_real_ms = get_int(record, "lastSuccessAt");
    d->body_len =
        (uint32_t)snprintf(b->body, sizeof(b->body), "%s", get_string(record, "body"));
    return d->body_len >= sizeof(b->body) ? "body too large" : NULL;
}

/*
 * A session list record: this gateway's session entries become its names
 * (when this gateway lists WAHA's sessions). The list entry's index, -1
 * when nothing is to be stored, or -2 when the record has no names.
 */
static int take_list_names(struct json_object *record)
{
    int capacity = fl.entries - REGION_ENTRY_FIRST_SESSION, count = 0;
    struct json_object *list;

    if (!json_object_object_get_ex(record, "names", &list) ||
        !json_object_is_type(list, json_type_array))
        return -2;
    if (!fl.cfg->upstream.all_sessions)
        return -1; /* this gateway does not list WAHA's sessions */
    for (size_t i = 0; i < json_object_array_length(list) && count < capacity; i++) {
        const char *n = json_object_get_string(json_object_array_get_idx(list, i));
        if (n != NULL && waha_name_ok(n))
            snprintf(fl.names[count++], REGION_NAME_MAX, "%s", n);
    }
    if (region_lock(fl.region) != 0)
        return -1;
    region_set_sessions(fl.region, (const char(*)[REGION_NAME_MAX])fl.names, count, NULL,
                        fl.scratch);
    region_unlock(fl.region);
    return REGION_ENTRY_LIST;
}

/* The kind named WORD in a record, or ENTRY_FREE for no known kind. */
static enum entry_kind kind_of_word(const char *word)
{
    for (int k = ENTRY_HEALTH; k < ENTRY_KIND_COUNT; k++)
        if (strcmp(word, entry_kind_names[k]) == 0)
            return (enum entry_kind)k;
    return ENTRY_FREE;
}

/*
 * Take RECORD (from another gateway, or loaded at start) if it is newer.
 * NULL, or why it is not a record at all.
 */
static const char *take(struct json_object *record)
{
    const char *word = get_string(record, "kind"), *name = get_string(record, "name");
    bool qr = strcmp(word, "qr") == 0;
    enum entry_kind kind = qr ? ENTRY_SESSION : kind_of_word(word);
    const char *wrong;
    int index;

    if (!json_object_is_type(record, json_type_object))
        return "not an object";
    if (strcmp(get_string(record, "origin"), fl.token) == 0)
        return NULL; /* our own, back from Redis */
    if (kind == ENTRY_FREE)
        return "no known kind";
    if (kind == ENTRY_SESSION && !waha_name_ok(name))
        return "not a valid session name";
    if (qr)
        return take_qr(record, name);
    if ((wrong = entry_of_record(record, kind, name, &fl.remote, &fl.remote_body)) != NULL)
        return wrong;
    take_events_since(record);
    if (kind == ENTRY_HEALTH) {
        index = REGION_ENTRY_HEALTH;
    } else if (kind == ENTRY_SESSION_LIST) {
        index = take_list_names(record);
        if (index == -2)
            return "a session list without names";
    } else if (kind == ENTRY_SERVER) {
        index = region_server_entry(name);
    } else {
        if (region_lock(fl.region) != 0)
            return NULL;
        index = region_find_session(fl.region, name);
        region_unlock(fl.region);
    }
    if (index >= 0 && store_remote(fl.region, index, &fl.remote, &fl.remote_body)) {
        /* Ours now: do not share it back. */
        fl.shared_seq[index] = atomic_load(&region_entry(fl.region, index)->seq);
    }
    return NULL;
}

static void take_text(const char *text, size_t len)
{
    char why[REGION_ERROR_MAX];
    struct json_object *record = json_parse_bounded(text, len, why, sizeof(why));
    const char *wrong;

    if (record == NULL) {
        log_warn(0, "ignored a record from Redis: %s", why);
        return;
    }
    wrong = take(record);
    if (wrong != NULL)
        log_warn(0, "ignored a record from Redis: %s", wrong);
    json_object_put(record);
}

/*========================================================================
 * Sharing and demand.
 */

/* The seq of entry I's QR slot, or 0 when it has none. */
static uint64_t qr_seq_of(int i)
{
    int32_t slot = atomic_load(&region_entry(fl.region, i)->seq) & 1
                       ? 0
                       : region_entry(fl.region, i)->d.qr_slot;

    return slot > 0 && slot <= region_qr_count(fl.region)
               ? atomic_load(&region_qr_slot(fl.region, slot - 1)->seq)
               : 0;
}

/* Share entry I (and, from the leader, its QR code) if it changed. */
static void share(int i)
{
    struct region_entry *e = region_entry(fl.region, i);
    uint64_t seq = atomic_load(&e->seq);
    char field[REGION_NAME_MAX + 8];
    struct json_object *record;

    if (seq != fl.shared_seq[i] && (seq & 1) == 0) {
        fl.shared_seq[i] = seq;
        record = entry_record(i);
        /* A follower shares only what its own workers took in: webhooks
         * (what came from Redis was marked shared when it was taken). */
        if (record != NULL && (fl.state == FLEET_LEADER || fl.copy.source == SOURCE_WEBHOOK))
            publish(record, record_name(&fl.copy, field, sizeof(field)));
        else if (record != NULL)
            json_object_put(record);
    }
    if (i < REGION_ENTRY_FIRST_SESSION || fl.state != FLEET_LEADER)
        return;
    seq = qr_seq_of(i);
    if (seq != 0 && seq != fl.shared_qr_seq[i] && (seq & 1) == 0) {
        fl.shared_qr_seq[i] = seq;
        record = qr_record(i);
        if (record != NULL) {
            snprintf(field, sizeof(field), "@qr:%s", get_string(record, "name"));
            publish(record, field);
        }
    }
}

void fleet_tick(int64_t now)
{
    (void)now;
    if (!fl.cmd_ready || (fl.state != FLEET_LEADER && fl.state != FLEET_FOLLOWER))
        return;
    for (int i = 0; i < fl.entries; i++)
        share(i);
}

void fleet_forward(enum target_kind target, int index, bool wanted, int64_t now)
{
    char message[REGION_NAME_MAX + 32];
    const char *name = "-";

    if (!fl.cmd_ready || fl.state != FLEET_FOLLOWER ||
        now - fl.forwarded_ms[index][target] < FORWARD_EVERY_MS)
        return;
    fl.forwarded_ms[index][target] = now;
    if (target == TARGET_DETAILS || target == TARGET_QR || target == TARGET_SERVER) {
        if (region_lock(fl.region) != 0)
            return;
        snprintf(fl.copy.name, sizeof(fl.copy.name), "%s",
                 region_entry(fl.region, index)->d.name);
        region_unlock(fl.region);
        name = fl.copy.name;
    }
    /* One argument (hiredis splits a format on its spaces); the name last,
     * as it may have spaces. */
    snprintf(message, sizeof(message), "%s %s %s", wanted ? "want" : "read",
             target_kind_names[target], name);
    redisAsyncCommand(fl.cmd, NULL, NULL, "PUBLISH %s %b", fl.chan_demand, message,
                      strlen(message));
}

/* The leader takes a follower's demand as if its own workers had read. */
static void take_demand(const char *text)
{
    static const struct {
        const char *word;
        enum demand_kind kind;
    } kinds[] = {{"health", DEMAND_DATA}, {"list", DEMAND_DATA},
                 {"details", DEMAND_DETAILS}, {"qr", DEMAND_QR},
                 {"server", DEMAND_DATA}};
    char verb[8], word[16];
    int64_t now = time_mono_ms();
    int index = -1, at = 0;
    size_t k;

    if (fl.state != FLEET_LEADER || sscanf(text, "%7s %15s %n", verb, word, &at) != 2 ||
        at == 0)
        return;
    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        if (strcmp(word, kinds[k].word) == 0)
            break;
    if (k == sizeof(kinds) / sizeof(kinds[0]))
        return;
    if (k == 0 || k == 1) {
        index = k == 0 ? REGION_ENTRY_HEALTH : REGION_ENTRY_LIST;
    } else if (k == 4) {
        index = region_server_entry(text + at);
    } else if (region_lock(fl.region) == 0) {
        index = region_find_session(fl.region, text + at);
        region_unlock(fl.region);
    }
    if (index < 0)
        return;
    atomic_store(&region_demand(fl.region, index, kinds[k].kind)->last_read_ms, now);
    if (strcmp(verb, "want") == 0)
        region_want(fl.region, index, kinds[k].kind, now);
}

/*========================================================================
 * Connections and the lease.
 */

static void connect_all(void);

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    connect_all();
}

static void lost_redis(void)
{
    struct timeval again = time_timeval(RECONNECT_MS);

    set_state(FLEET_DOWN);
    if (!evtimer_pending(fl.reconnect_timer, NULL))
        evtimer_add(fl.reconnect_timer, &again);
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    (void)status;
    if (c == fl.cmd) {
        fl.cmd = NULL;
        fl.cmd_ready = false;
    } else if (c == fl.sub) {
        fl.sub = NULL;
        fl.sub_ready = false;
    }
    fl.lease_sent_ms = 0;
    lost_redis();
}

static void on_loaded(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;

    (void)c;
    (void)privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 1; i < reply->elements; i += 2)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            take_text(reply->element[i]->str, reply->element[i]->len);
}

static void on_lease(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;
    bool held;

    (void)c;
    (void)privdata;
    if (reply == NULL)
        return; /* the connection is going: on_disconnect handles it */
    if (reply->type == REDIS_REPLY_ERROR)
        log_debug("Redis refused the lease command: %s", reply->str);
    if (fl.lease_renewing)
        held = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    else
        held = reply->type == REDIS_REPLY_STATUS;
    if (held)
        fl.lease_held_since = fl.lease_sent_ms;
    fl.lease_sent_ms = 0;
    set_state(held ? FLEET_LEADER : FLEET_FOLLOWER);
}

/* Drop both connections (on_disconnect then retries them). */
static void drop_redis(void)
{
    if (fl.cmd != NULL)
        redisAsyncFree(fl.cmd);
    if (fl.sub != NULL)
        redisAsyncFree(fl.sub);
}

static void on_lease_timer(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = time_mono_ms();

    (void)fd;
    (void)what;
    (void)arg;
    if (!fl.cmd_ready || !fl.sub_ready)
        return;
    /* A Redis that holds the connection but does not answer: what we send
     * would pile up, and a leader could not know its lease is gone. */
    if ((fl.lease_sent_ms != 0 && now - fl.lease_sent_ms >= fl.cfg->redis.lock_ttl) ||
        (fl.state == FLEET_LEADER &&
         now - fl.lease_held_since >= fl.cfg->redis.lock_ttl)) {
        log_warn(0, "Redis at %s did not answer within redis.lock_ttl: reconnecting",
                 fl.where);
        drop_redis();
        return;
    }
    if (fl.lease_sent_ms != 0)
        return; /* one lease command at a time */
    fl.lease_sent_ms = now;
    fl.lease_renewing = fl.state == FLEET_LEADER;
    if (fl.lease_renewing)
        redisAsyncCommand(fl.cmd, on_lease, NULL, "EVAL %s 1 %s %s %lld", renew_script,
                          fl.key_lease, fl.token, (long long)fl.cfg->redis.lock_ttl);
    else
        redisAsyncCommand(fl.cmd, on_lease, NULL, "SET %s %s NX PX %lld", fl.key_lease,
                          fl.token, (long long)fl.cfg->redis.lock_ttl);
}

static void on_message(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;

    (void)c;
    (void)privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "message") != 0)
        return;
    if (strcmp(reply->element[1]->str, fl.chan_demand) == 0)
        take_demand(reply->element[2]->str);
    else
        take_text(reply->element[2]->str, reply->element[2]->len);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    if (status != REDIS_OK) {
        if (c == fl.cmd)
            fl.cmd = NULL;
        else
            fl.sub = NULL;
        lost_redis();
        return;
    }
    if (c == fl.cmd) {
        fl.cmd_ready = true;
        /* Catch up first: the entries as the fleet has them. */
        redisAsyncCommand(fl.cmd, on_loaded, NULL, "HGETALL %s", fl.key_entries);
        memset(fl.shared_seq, 0, sizeof(*fl.shared_seq) * (size_t)fl.entries);
        memset(fl.shared_qr_seq, 0, sizeof(*fl.shared_qr_seq) * (size_t)fl.entries);
    } else {
        fl.sub_ready = true;
    }
    /* Still DOWN (fetching on our own) until the lease's answer says
     * whether we lead or follow. */
    if (fl.cmd_ready && fl.sub_ready)
        on_lease_timer(-1, 0, NULL);
}

static void on_auth(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;

    (void)c;
    (void)privdata;
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        fl.warned_auth = false;
        return;
    }
    if (!fl.warned_auth)
        log_warn(0, "Redis at %s refused the password of redis.url: %s", fl.where,
                 reply->str);
    fl.warned_auth = true;
    drop_redis();
}

static redisAsyncContext *open_one(void)
{
    redisAsyncContext *c = fl.at->unix_path[0]
                               ? redisAsyncConnectUnix(fl.at->unix_path)
                               : redisAsyncConnect(fl.at->host, fl.at->port);

    if (c == NULL || c->err) {
        if (c != NULL) {
            log_debug("cannot connect to Redis: %s", c->errstr);
            redisAsyncFree(c);
        }
        return NULL;
    }
    redisLibeventAttach(c, fl.base);
    redisAsyncSetConnectCallback(c, on_connect);
    redisAsyncSetDisconnectCallback(c, on_disconnect);
    if (fl.at->password[0])
        redisAsyncCommand(c, on_auth, NULL, "AUTH %s", fl.at->password);
    return c;
}

static void connect_all(void)
{
    if (fl.cmd == NULL && (fl.cmd = open_one()) != NULL && fl.at->db != 0)
        redisAsyncCommand(fl.cmd, NULL, NULL, "SELECT %d", fl.at->db);
    if (fl.sub == NULL && (fl.sub = open_one()) != NULL)
        redisAsyncCommand(fl.sub, on_message, NULL, "SUBSCRIBE %s %s", fl.chan_changes,
                          fl.chan_demand);
    if (fl.cmd == NULL || fl.sub == NULL)
        lost_redis();
}

int fleet_start(struct event_base *base, const struct config *cfg, struct region *region)
{
    struct timeval every;
    char hostname[64] = "host";
    unsigned char nonce[8];
    FILE *urandom;

    memset(&fl, 0, sizeof(fl));
    fl.cfg = cfg;
    fl.region = region;
    fl.base = base;
    if (cfg->redis.url[0] == '\0') {
        set_state(FLEET_OFF);
        return 0;
    }
    fl.entries = region_entry_count(region);
    fl.shared_seq = calloc((size_t)fl.entries, sizeof(*fl.shared_seq));
    fl.shared_qr_seq = calloc((size_t)fl.entries, sizeof(*fl.shared_qr_seq));
    fl.forwarded_ms = calloc((size_t)fl.entries, sizeof(*fl.forwarded_ms));
    fl.names = calloc((size_t)fl.entries, sizeof(*fl.names));
    fl.scratch = calloc((size_t)fl.entries, sizeof(*fl.scratch));
    if (fl.shared_seq == NULL || fl.shared_qr_seq == NULL || fl.forwarded_ms == NULL ||
        fl.names == NULL || fl.scratch == NULL) {
        log_error(0, "out of memory for the fleet's tables");
        return -1;
    }
    fl.at = &cfg->redis.address;
    if (fl.at->unix_path[0])
        snprintf(fl.where, sizeof(fl.where), "%s", fl.at->unix_path);
    else
        snprintf(fl.where, sizeof(fl.where), "%s:%d", fl.at->host, fl.at->port);
    gethostname(hostname, sizeof(hostname) - 1);
    urandom = fopen("/dev/urandom", "rb");
    if (urandom == NULL || fread(nonce, 1, sizeof(nonce), urandom) != sizeof(nonce))
        memset(nonce, 0, sizeof(nonce));
    if (urandom)
        fclose(urandom);
    snprintf(fl.token, sizeof(fl.token), "%s:%d:%02x%02x%02x%02x%02x%02x%02x%02x",
             hostname, (int)getpid(), nonce[0], nonce[1], nonce[2], nonce[3], nonce[4],
             nonce[5], nonce[6], nonce[7]);
    snprintf(fl.key_lease, sizeof(fl.key_lease), "%slease", cfg->redis.key_prefix);
    snprintf(fl.key_entries, sizeof(fl.key_entries), "%sentries", cfg->redis.key_prefix);
    snprintf(fl.chan_changes, sizeof(fl.chan_changes), "%schanges",
             cfg->redis.key_prefix);
    snprintf(fl.chan_demand, sizeof(fl.chan_demand), "%sdemand", cfg->redis.key_prefix);
    fl.lease_timer = event_new(base, -1, EV_PERSIST, on_lease_timer, NULL);
    fl.reconnect_timer = evtimer_new(base, on_reconnect, NULL);
    every = time_timeval(cfg->redis.lock_ttl / 5);
    if (fl.lease_timer == NULL || fl.reconnect_timer == NULL ||
        event_add(fl.lease_timer, &every) != 0)
        return -1;
    fl.state = FLEET_OFF;
    fl.warned_down = true; /* not a failure yet: we are connecting */
    set_state(FLEET_DOWN); /* until connected: fetch on our own */
    connect_all();
    return 0;
}

void fleet_stop(void)
{
    if (fl.at != NULL && fl.state == FLEET_LEADER) {
        /* Give the lease back now, synchronously, so another gateway does
         * not wait for it to expire. */
        struct timeval timeout = {0, 500000};
        redisContext *c =
            fl.at->unix_path[0]
                ? redisConnectUnixWithTimeout(fl.at->unix_path, timeout)
                : redisConnectWithTimeout(fl.at->host, fl.at->port, timeout);
        if (c != NULL && !c->err) {
            redisReply *reply;
            if (fl.at->password[0] &&
                (reply = redisCommand(c, "AUTH %s", fl.at->password)) != NULL)
                freeReplyObject(reply);
            if (fl.at->db && (reply = redisCommand(c, "SELECT %d", fl.at->db)) != NULL)
                freeReplyObject(reply);
            reply = redisCommand(c, "EVAL %s 1 %s %s", release_script, fl.key_lease,
                                 fl.token);
            if (reply != NULL)
                freeReplyObject(reply);
        }
        if (c != NULL)
            redisFree(c);
    }
    fl.stopping = true;
    drop_redis();
    fl.cmd = fl.sub = NULL;
    if (fl.lease_timer)
        event_free(fl.lease_timer);
    if (fl.reconnect_timer)
        event_free(fl.reconnect_timer);
    fl.lease_timer = fl.reconnect_timer = NULL;
    free(fl.shared_seq);
    free(fl.shared_qr_seq);
    free(fl.forwarded_ms);
    free(fl.names);
    free(fl.scratch);
    fl.shared_seq = fl.shared_qr_seq = NULL;
    fl.forwarded_ms = NULL;
    fl.names = NULL;
    fl.scratch = NULL;
}
