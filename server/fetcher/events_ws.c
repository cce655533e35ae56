/*
 * events_ws.c - what the fetcher's WebSocket client says on the connection
 * events.c makes: upstream.url taken apart into the request target, the
 * HTTP/1.1 upgrade, and the frames, through libwslay.
 *
 * events.c runs the connection's life (host lookup, TCP and TLS, the timer,
 * pings, backoff, reporting, the interface of events.h) and its design
 * comment says what WAHA does and why the module behaves as it does. The
 * two files share events_internal.h: the module's one state, ev, and the
 * calls between them. This file gives events.c parse_url(),
 * percent_encode(), send_request(), read_head(), pump() and flush(), and
 * calls back confirm() and connection_ended().
 *
 * DESIGN
 * The URL. upstream.url (http[s]://host[:port][/prefix]) is taken apart
 * once, at events_start(): the host to connect to and to verify (no
 * brackets), the port, the Host header as written, ev.log_url
 * (ws[s]://authority/prefix/ws, no query: the only form that is logged) and
 * ev.target, /prefix/ws?session=*&events=session.status&x-api-key=KEY with
 * the key percent-encoded, which is only ever written to the socket. A URL
 * with user:password@, a query or a fragment is refused, and never echoed.
 *
 * The upgrade (RFC 6455 section 4). send_request() writes the GET with a
 * random Sec-WebSocket-Key and keeps the Sec-WebSocket-Accept it implies;
 * read_head() waits for the answer's whole head (at most EVENTS_HEAD_MAX)
 * and check_head() wants a 101 with Upgrade: websocket, Connection:
 * Upgrade, that Accept, and no extension or subprotocol. 404 (no /ws), 401
 * and 403 (the key) are refusals; another status or a bad 101 is a failure
 * to retry. No answer body is ever logged or kept.
 *
 * The frames. After the 101 libwslay does all the framing: its recv/send
 * callbacks read and write the bufferevent's evbuffers, it masks our frames,
 * reassembles and bounds messages (wslay_event_config_set_max_recv_msg_length),
 * checks UTF-8 and answers pings and close frames. We ping at once; the
 * first frame from WAHA that is not a close confirms the link. pump() runs
 * wslay on what arrived and tells how the link ended: WAHA's close frame
 * (1008 and 2024.10's 4001 are refusals), or a protocol error or message
 * too big (wslay queued its own close). flush() hands wslay's frames to the
 * socket while its output holds less than EVENTS_OUT_MAX bytes, and drops
 * the link when more than EVENTS_QUEUE_MAX frames wait. Each text message
 * is copied into ev.message, NUL-terminated, and handed to the caller; a
 * close reason is kept as printable ASCII only, and withheld if it holds
 * the key.
 */
#include "events.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "events_internal.h"
#include "timeutil.h"

#ifndef WAHAGATE_VERSION
#define WAHAGATE_VERSION "dev"
#endif

#define EVENTS_HEAD_MAX 8192 /* the upgrade answer's status line and headers */
#define EVENTS_OUT_MAX ((size_t)16 * 1024) /* stop handing wslay's frames to the socket */
#define EVENTS_QUEUE_MAX 16                /* frames wslay may hold for sending */
#define EVENTS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Close codes that mean "not you, not with these parameters". */
#define CLOSE_POLICY 1008    /* WAHA 2026 WebSocketAuth: Unauthorized / Forbidden */
#define CLOSE_WAHA_2024 4001 /* WAHA 2024.10: session or events not allowed */

/*========================================================================
 * Small helpers
 */

/* Unreserved characters (RFC 3986) as they are, everything else %XX. */
void percent_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 <= size; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* A reason WAHA sent, made safe to show: printable ASCII, never the key. */
static void copy_reason(char *out, size_t size, const uint8_t *in, size_t len)
{
    size_t n = len < size - 1 ? len : size - 1;

    for (size_t i = 0; i < n; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? (char)in[i] : '?';
    out[n] = '\0';
    if (ev.api_key[0] != '\0' &&
        (strstr(out, ev.api_key) != NULL || strstr(out, ev.api_key_pct) != NULL))
        snprintf(out, size, "(reason withheld: it holds the key)");
}

/*========================================================================
 * The URL: http[s]://host[:port][/prefix] -> ws[s]://host[:port][/prefix]/ws
 */

/* The port after "host:" (LEN characters), or the scheme's default when TEXT is NULL. */
static int parse_port(const char *text, size_t len, char *why)
{
    long value = 0;

    if (text == NULL) {
        snprintf(ev.port, sizeof(ev.port), "%s", ev.secure ? "443" : "80");
        return 0;
    }
    for (size_t i = 0; i < len && i < 6; i++) {
        if (!isdigit((unsigned char)text[i])) {
            value = -1;
            break;
        }
        value = value * 10 + (text[i] - '0');
    }
    if (len == 0 || len > 5 || value < 1 || value > 65535) {
        why_printf(why, "upstream.url has a bad port");
        return -1;
    }
    snprintf(ev.port, sizeof(ev.port), "%ld", value);
    return 0;
}

/* host[:port] or [v6address][:port], LEN characters: ev.host and ev.port. */
static int split_authority(const char *auth, size_t len, char *why)
{
    const char *end = auth + len, *host = auth, *port;
    size_t host_len;
    struct in6_addr any;

    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', len);

        if (close == NULL || (close + 1 < end && close[1] != ':')) {
            why_printf(why, "upstream.url has a bad IPv6 address");
            return -1;
        }
        host = auth + 1;
        host_len = (size_t)(close - host);
        port = close + 1 < end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(auth, ':', len);

        host_len = colon != NULL ? (size_t)(colon - auth) : len;
        port = colon != NULL ? colon + 1 : NULL;
    }
    if (host_len == 0 || host_len >= sizeof(ev.host)) {
        why_printf(why, "upstream.url has no host, or one too long");
        return -1;
    }
    memcpy(ev.host, host, host_len);
    ev.host[host_len] = '\0';
    ev.host_is_ip =
        inet_pton(AF_INET, ev.host, &any) == 1 || inet_pton(AF_INET6, ev.host, &any) == 1;
    return parse_port(port, port != NULL ? (size_t)(end - port) : 0, why);
}

/* ev.log_url (no query) and ev.target (with the query, and the key). */
static int build_target(const char *prefix, size_t len, char *why)
{
    int n = snprintf(ev.log_url, sizeof(ev.log_url), "%s://%s%.*s/ws",
                     ev.secure ? "wss" : "ws", ev.authority, (int)len, prefix);

    if (n < 0 || (size_t)n >= sizeof(ev.log_url)) {
        why_printf(why, "upstream.url is too long");
        return -1;
    }
    n = snprintf(ev.target, sizeof(ev.target),
                 "%.*s/ws?session=*&events=session.status%s%s", (int)len, prefix,
                 ev.api_key[0] ? "&x-api-key=" : "", ev.api_key_pct);
    if (n < 0 || (size_t)n >= sizeof(ev.target)) {
        why_printf(why, "upstream.url is too long");
        return -1;
    }
    return 0;
}

int parse_url(const char *url, char *why)
{
    const char *auth, *slash, *prefix;
    size_t auth_len, prefix_len;

    if (strncmp(url, "http://", 7) == 0) {
        auth = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        auth = url + 8;
        ev.secure = true;
    } else {
        why_printf(why, "upstream.url must start with http:// or https://");
        return -1;
    }
    /* Never echo the URL: it might hold a password. */
    if (strpbrk(url, "?#@ \t\r\n") != NULL) {
        why_printf(why, "upstream.url with user:password@, a query or a fragment "
                        "is not supported for the WebSocket");
        return -1;
    }
    slash = strchr(auth, '/');
    auth_len = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
    if (auth_len == 0 || auth_len >= sizeof(ev.authority)) {
        why_printf(why, "upstream.url has no host, or one too long");
        return -1;
    }
    memcpy(ev.authority, auth, auth_len);
    ev.authority[auth_len] = '\0';
    if (split_authority(auth, auth_len, why) != 0)
        return -1;
    prefix = slash != NULL ? slash : "";
    prefix_len = strlen(prefix);
    while (prefix_len > 0 && prefix[prefix_len - 1] == '/')
        prefix_len--;
    return build_target(prefix, prefix_len, why);
}

/*========================================================================
 * The upgrade (RFC 6455 section 4)
 */

int send_request(void)
{
    unsigned char nonce[16], digest[EVP_MAX_MD_SIZE];
    char key[32], input[sizeof(key) + sizeof(EVENTS_GUID)];
    unsigned int digest_len = 0;

    if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        return -1;
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce)); /* 24 characters */
    snprintf(input, sizeof(input), "%s%s", key, EVENTS_GUID);
    if (EVP_Digest(input, strlen(input), digest, &digest_len, EVP_sha1(), NULL) != 1 ||
        digest_len != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)ev.accept, digest, (int)digest_len); /* 28 */
    if (evbuffer_add_printf(bufferevent_get_output(ev.bev),
                            "GET %s HTTP/1.1\r\n"
                            "Host: %s\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "User-Agent: wahagate/%s\r\n"
                            "\r\n",
                            ev.target, ev.authority, key, WAHAGATE_VERSION) < 0)
        return -1;
    ev.phase = PHASE_HANDSHAKE;
    return 0;
}

/* True when the comma-separated LIST holds TOKEN (case-insensitive). */
static bool has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);

    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, token, tlen) == 0) {
            const char *q = p + tlen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == ',' || *q == '\0')
                return true;
        }
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/*
 * Check the answer's head (NUL-terminated, lines ending in CRLF). Returns
 * its status code (101 only when the upgrade is valid), or -1; WHY says
 * what is wrong with a 101.
 */
static int check_head(char *head, char *why)
{
    bool upgrade = false, connection = false, accept = false, extra = false;
    char *line = head, *end;
    int status;

    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
        line[8] != ' ' || !isdigit((unsigned char)line[9]) ||
        !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
        (line[12] != ' ' && line[12] != '\r')) {
        why_printf(why, "not an HTTP answer");
        return -1;
    }
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status != 101)
        return status;
    for (int i = 0; i < 200 && (end = strstr(line, "\r\n")) != NULL && end != line; i++) {
        char *colon, *value, *tail;

        *end = '\0';
        if (i > 0 && (colon = strchr(line, ':')) != NULL) {
            *colon = '\0';
            value = colon + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            tail = value + strlen(value);
            while (tail > value && (tail[-1] == ' ' || tail[-1] == '\t'))
                *--tail = '\0';
            if (strcasecmp(line, "Upgrade") == 0)
                upgrade = strcasecmp(value, "websocket") == 0;
            else if (strcasecmp(line, "Connection") == 0)
                connection = has_token(value, "upgrade");
            else if (strcasecmp(line, "Sec-WebSocket-Accept") == 0)
                accept = strcmp(value, ev.accept) == 0;
            else if (strcasecmp(line, "Sec-WebSocket-Extensions") == 0 ||
                     strcasecmp(line, "Sec-WebSocket-Protocol") == 0)
                extra = extra || value[0] != '\0';
        }
        line = end + 2;
    }
    if (!upgrade || !connection)
        why_printf(why, "101 without Upgrade: websocket and Connection: Upgrade");
    else if (!accept)
        why_printf(why, "101 with a wrong or no Sec-WebSocket-Accept");
    else if (extra)
        why_printf(why, "101 with an extension or subprotocol that was not asked for");
    else
        return 101;
    return -1;
}

static void start_websocket(void);

/* The answer to the upgrade, once its head is complete. */
void read_head(void)
{
    struct evbuffer *in = bufferevent_get_input(ev.bev);
    struct evbuffer_ptr found = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    char head[EVENTS_HEAD_MAX + 1], why[EVENTS_WHY_MAX];
    size_t len;
    int status;

    if (found.pos < 0) {
        if (evbuffer_get_length(in) > EVENTS_HEAD_MAX)
            connection_ended(false, "the upgrade answer's head is over 8 KiB");
        return;
    }
    len = (size_t)found.pos + 4;
    if (len > EVENTS_HEAD_MAX) {
        connection_ended(false, "the upgrade answer's head is over 8 KiB");
        return;
    }
    evbuffer_remove(in, head, len);
    head[len] = '\0';
    if (memchr(head, '\0', len) != NULL) {
        connection_ended(false, "not an HTTP answer");
        return;
    }
    why[0] = '\0';
    status = check_head(head, why);
    if (status == 101) {
        start_websocket();
    } else if (status == 404) {
        connection_ended(true, "HTTP 404: this WAHA has no /ws");
    } else if (status == 401 || status == 403) {
        why_printf(why, "HTTP %d: the API key is not accepted", status);
        connection_ended(true, why);
    } else if (status > 0) {
        why_printf(why, "HTTP %d instead of 101 Switching Protocols", status);
        connection_ended(false, why);
    } else {
        connection_ended(false, why);
    }
}

/*========================================================================
 * WebSocket frames: wslay's callbacks on the bufferevent's buffers
 */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    int n = evbuffer_remove(bufferevent_get_input(ev.bev), buf, len);

    (void)flags;
    (void)user;
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                       int flags, void *user)
{
    (void)flags;
    (void)user;
    if (evbuffer_get_length(bufferevent_get_output(ev.bev)) >= EVENTS_OUT_MAX) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (bufferevent_write(ev.bev, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)user;
    if (getrandom(buf, len, 0) != (ssize_t)len) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/* Any frame is a sign of life; the first that is not a close confirms the link. */
static void ws_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user)
{
    (void)ctx;
    (void)user;
    ev.last_rx_ms = time_mono_ms();
    if (!ev.confirmed && arg->opcode != WSLAY_CONNECTION_CLOSE)
        confirm();
}

static void ws_message(wslay_event_context_ptr ctx,
                       const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    (void)user;
    if (arg->opcode == WSLAY_TEXT_FRAME && arg->msg_length <= ev.opt.max_message) {
        if (arg->msg_length > 0)
            memcpy(ev.message, arg->msg, arg->msg_length);
        ev.message[arg->msg_length] = '\0';
        ev.stats.messages++;
        if (ev.on_message != NULL)
            ev.on_message(ev.message, arg->msg_length, ev.arg);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ev.close_code = arg->status_code;
        if (arg->msg_length > 2)
            copy_reason(ev.close_reason, sizeof(ev.close_reason), arg->msg + 2,
                        arg->msg_length - 2);
    }
}

static void start_websocket(void)
{
    const struct wslay_event_callbacks callbacks = {
        .recv_callback = ws_recv,
        .send_callback = ws_send,
        .genmask_callback = ws_genmask,
        .on_frame_recv_start_callback = ws_frame_start,
        .on_msg_recv_callback = ws_message,
    };
    const struct wslay_event_msg ping = {.opcode = WSLAY_PING};

    if (wslay_event_context_client_init(&ev.ws, &callbacks, NULL) != 0) {
        ev.ws = NULL;
        connection_ended(false, "out of memory");
        return;
    }
    wslay_event_config_set_max_recv_msg_length(ev.ws, ev.opt.max_message);
    ev.phase = PHASE_OPEN;
    ev.close_code = 0;
    ev.close_reason[0] = '\0';
    ev.last_rx_ms = time_mono_ms();
    wslay_event_queue_msg(ev.ws, &ping); /* its pong confirms the link */
    pump();
}

/* Hand what wslay queued to the socket. 0, or -1 when the link was dropped. */
int flush(void)
{
    if (wslay_event_send(ev.ws) != 0) {
        connection_ended(false, "WebSocket: cannot send");
        return -1;
    }
    if (wslay_event_get_queued_msg_count(ev.ws) > EVENTS_QUEUE_MAX) {
        connection_ended(false, "WAHA does not read what is sent to it");
        return -1;
    }
    return 0;
}

/* WAHA sent a close frame. */
static void peer_closed(void)
{
    char why[EVENTS_WHY_MAX];
    unsigned code = ev.close_code;

    if (code == 0)
        why_printf(why, "WAHA closed the WebSocket without a code");
    else
        why_printf(why, "WAHA closed the WebSocket with %u%s%s", code,
                   ev.close_reason[0] ? " " : "", ev.close_reason);
    connection_ended(code == CLOSE_POLICY || code == CLOSE_WAHA_2024, why);
}

/* Why wslay stopped reading, from the close code it sent. */
static void protocol_error(char *why)
{
    unsigned code = wslay_event_get_status_code_sent(ev.ws);

    if (code == WSLAY_CODE_MESSAGE_TOO_BIG)
        why_printf(why, "WAHA sent a message over %zu bytes (closed with %u)",
                   ev.opt.max_message, code);
    else if (code == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA)
        why_printf(why, "WAHA sent text that is not UTF-8 (closed with %u)", code);
    else
        why_printf(why, "WAHA broke the WebSocket protocol (closed with %u)", code);
}

/* Read every complete frame that arrived, answer what must be answered. */
void pump(void)
{
    char why[EVENTS_WHY_MAX];
    int r = wslay_event_recv(ev.ws);

    if (r != 0) {
        why_printf(why, "WebSocket: %s",
                   r == WSLAY_ERR_NOMEM ? "out of memory" : "cannot receive");
        connection_ended(false, why);
        return;
    }
    if (wslay_event_get_close_received(ev.ws)) {
        wslay_event_send(ev.ws); /* our close frame, if the socket takes it */
        peer_closed();
        return;
    }
    if (!wslay_event_get_read_enabled(ev.ws)) {
        /* wslay found a protocol error or a message too big, and queued a close */
        wslay_event_send(ev.ws);
        protocol_error(why);
        connection_ended(false, why);
        return;
    }
    flush();
}
