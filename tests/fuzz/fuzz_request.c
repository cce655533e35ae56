/*
 * fuzz_request.c - libFuzzer target: HTTP requests through the real
 * transport (server/conn.c) and the helpers handlers read them with
 * (server/http.c, and common/ as routes.c calls it).
 *
 * Each input is what one client sends on one connection: one byte, then
 * the bytes. The first byte's low 3 bits say in how many pieces the bytes
 * are sent (1 to 8); its high 5 bits (K) make the input's tail (what
 * follows its last '\n') repeat K * K * 64 more times, so that small inputs
 * reach the limits (8 KiB heads, 64 KiB bodies, a client that sends on
 * while its request waits), up to STREAM_MAX bytes in all. The harness
 * runs a conn server (conn_server_start(), conn.h's public interface only)
 * on its own event loop, listening on an abstract UNIX socket, connects to
 * it, and writes the pieces, letting the loop run after each until nothing
 * moves. So the bytes take the path they take in a worker: read() into
 * conn.c's chunk, partial and pipelined requests into its input buffer,
 * http_parser, the limits, the 400/413/414/431 answers.
 *
 * The request callback plays routes.c. It checks what conn.h promises
 * about the view (a path that starts with '/', or "*" for OPTIONS *,
 * strings within the target limit, header values without CR or LF and
 * without blanks at their end, a body of at most
 * REQUEST_MAX_BODY bytes, NUL-terminated), reads it with the helpers the
 * handlers use (http_query_param() for ?session=, ?access_token= and
 * ?format=, config_valid_session_name(), config_key_allows(),
 * cache_etag_matches(), http_printable()), and answers: 204 to OPTIONS,
 * 304 when If-None-Match matches, an event stream for /api/waha/events,
 * nothing yet for paths under /park (answered once the input is written,
 * so a client that sends on while its request waits is fuzzed too), or
 * routes.c's 404, which echoes the printable path in JSON and the Origin
 * header in Access-Control-Allow-Origin, as CORS does.
 *
 * Then the client closes its side. The connection must be gone, and all
 * the server wrote must parse as HTTP/1.1 responses (http_parser, told
 * which answered a HEAD), one per request answered, plus at most one
 * refusal. The server (event_base, listener) lives for the whole run, as
 * in a worker; each input has its own connection and nothing else is kept.
 *
 * FUZZ_VERBOSE=1 in the environment prints what the server answered, to
 * look at one input: FUZZ_VERBOSE=1 build/fuzz/fuzz_request FILE.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <event2/event.h>
#include <http_parser.h>

#include "cache.h"
#include "config.h"
#include "conn.h"
#include "fuzz.h"
#include "http.h"
#include "log.h"
#include "region.h"
#include "request.h"

#define MAX_PIECES 8
#define STREAM_MAX (256u << 10)
#define MAX_ANSWERS ((int)(STREAM_MAX / 8)) /* no request is shorter */
#define OUTPUT_MAX (64u << 20)
#define SETTLE_PASSES 100000
#define ETAG "W/\"0000beef-2-7\""

/* What lives for the whole run. */
static struct {
    struct event_base *base;
    struct config cfg;
    struct region_proc *slot;
    struct sockaddr_un addr;
    socklen_t addr_len;
} server;

/* What the client sends: the input, its tail repeated. */
static char stream[STREAM_MAX];

/* One input's connection, seen from the client and from the handlers. */
static struct {
    int client;
    bool eof;                      /* the server closed the connection */
    struct conn *parked;           /* a request under /park, not answered yet */
    bool parked_head;              /* ... and it was a HEAD */
    int answers;                   /* answers sent through conn_send()/streams */
    bool answer_head[MAX_ANSWERS]; /* which of them were to a HEAD */
    unsigned long requests;        /* requests handed to the callback */
    char *output;                  /* what the server wrote */
    size_t output_len, output_size;
} in;

/*========================================================================
 * The handlers' side.
 */

static bool clean_header(const char *value)
{
    size_t len = value != NULL ? strlen(value) : 0;

    return value == NULL ||
           (strchr(value, '\r') == NULL && strchr(value, '\n') == NULL &&
            (len == 0 || (value[len - 1] != ' ' && value[len - 1] != '\t')));
}

static void check_view(const struct http_request_view *v)
{
    FUZZ_CHECK(v->method >= METHOD_GET && v->method <= METHOD_OTHER);
    FUZZ_CHECK(v->path != NULL && (v->path[0] == '/' || (strcmp(v->path, "*") == 0 &&
                                                         v->method == METHOD_OPTIONS)));
    FUZZ_CHECK(strlen(v->path) <= REQUEST_MAX_TARGET);
    FUZZ_CHECK(v->query == NULL || strlen(v->query) <= REQUEST_MAX_TARGET);
    FUZZ_CHECK(v->query == NULL || strpbrk(v->query, "\r\n") == NULL);
    for (int f = 0; f < HEADER_FIELD_COUNT; f++)
        FUZZ_CHECK(
            clean_header(v->header[f]) &&
            (v->header[f] == NULL || strlen(v->header[f]) <= request_fields[f].max));
    FUZZ_CHECK(v->body_len <= REQUEST_MAX_BODY);
    FUZZ_CHECK(v->body == NULL || v->body[v->body_len] == '\0');
    FUZZ_CHECK(v->method != METHOD_POST || v->body != NULL);
}

/* What routes.c reads from a request, with the same helpers. */
static void read_like_routes(const struct http_request_view *v)
{
    char session[REGION_NAME_MAX], token[256], format[16];
    int rc;

    rc = http_query_param(v->query, "session", session, sizeof(session));
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    if (rc == 0) {
        FUZZ_CHECK(fuzz_terminated(session, sizeof(session)));
        if (config_valid_session_name(session))
            (void)config_key_allows(&server.cfg.auth.keys[0], session);
    }
    rc = http_query_param(v->query, "access_token", token, sizeof(token));
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    FUZZ_CHECK(rc != 0 || fuzz_terminated(token, sizeof(token)));
    rc = http_query_param(v->query, "format", format, sizeof(format));
    FUZZ_CHECK(rc != 0 || fuzz_terminated(format, sizeof(format)));
}

static void send_answer(struct conn *c, const struct http_response *resp, bool head)
{
    FUZZ_CHECK(in.answers < MAX_ANSWERS);
    in.answer_head[in.answers++] = head;
    conn_send(c, resp);
}

static void answer(struct conn *c, const struct http_request_view *v)
{
    static struct http_response resp;
    char shown[121], message[160];

    memset(&resp, 0, sizeof(resp));
    resp.endpoint = ENDPOINT_OTHER;
    if (v->method == METHOD_OPTIONS) {
        resp.status = 204;
        resp.content_type = NULL;
        resp.body = NULL;
        resp.body_len = 0;
    } else if (cache_etag_matches(v->header[HEADER_IF_NONE_MATCH], ETAG)) {
        resp.status = 304;
        resp.content_type = "application/json";
        resp.body = NULL;
        resp.body_len = 0;
    } else {
        http_printable(shown, sizeof(shown), v->path);
        FUZZ_CHECK(fuzz_utf8(shown, strlen(shown)));
        snprintf(message, sizeof(message), "no resource at %s", shown);
        http_response_error(&resp, 404, "not_found", message);
        FUZZ_CHECK(fuzz_json_is(resp.body, resp.body_len, json_type_object, false));
    }
    http_response_header(&resp, "ETag", "%s", ETAG);
    if (v->header[HEADER_ORIGIN] != NULL) {
        http_response_header(&resp, "Access-Control-Allow-Origin", "%s",
                             v->header[HEADER_ORIGIN]);
        http_response_header(&resp, "Vary", "Origin");
    }
    send_answer(c, &resp, v->method == METHOD_HEAD);
}

static void start_stream(struct conn *c)
{
    static const char hello[] = "retry: 1000\n\n";
    static struct http_response resp;

    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    resp.endpoint = ENDPOINT_EVENTS;
    resp.header_count = 0;
    http_response_header(&resp, "Cache-Control", "no-store");
    FUZZ_CHECK(in.answers < MAX_ANSWERS);
    in.answer_head[in.answers++] = false;
    conn_stream_start(c, &resp);
    FUZZ_CHECK(conn_stream_write(c, hello, sizeof(hello) - 1, 65536) == 0);
}

static void on_request(struct conn *c, const struct http_request *req,
                       const struct http_request_view *v)
{
    (void)req;
    in.requests++;
    check_view(v);
    read_like_routes(v);
    if (strncmp(v->path, "/park", 5) == 0 && in.parked == NULL) {
        in.parked = c;
        in.parked_head = v->method == METHOD_HEAD;
    } else if (strcmp(v->path, "/api/waha/events") == 0 && v->method == METHOD_GET) {
        start_stream(c);
    } else {
        answer(c, v);
    }
}

static void on_gone(struct conn *c)
{
    if (c == in.parked)
        in.parked = NULL;
}

/* Answer the parked request, if there is one: true when there was. */
static bool answer_parked(void)
{
    static struct http_response resp;

    if (in.parked == NULL)
        return false;
    memset(&resp, 0, sizeof(resp));
    resp.endpoint = ENDPOINT_STATUS;
    resp.status = 200;
    resp.content_type = "application/json";
    resp.body = "{\"parked\":true}";
    resp.body_len = strlen(resp.body);
    send_answer(in.parked, &resp, in.parked_head);
    in.parked = NULL;
    return true;
}

/*========================================================================
 * The client's side.
 */

/* Bytes the client wrote that the server has not read yet. */
static int unread(void)
{
    int n = 0;

    return ioctl(in.client, SIOCOUTQ, &n) == 0 ? n : -1;
}

static void read_output(void)
{
    for (;;) {
        ssize_t n;

        if (in.output_size - in.output_len < 65536) {
            FUZZ_CHECK(in.output_size < OUTPUT_MAX);
            in.output_size = in.output_size ? 2 * in.output_size : 131072;
            in.output = realloc(in.output, in.output_size);
            FUZZ_CHECK(in.output != NULL);
        }
        n = read(in.client, in.output + in.output_len, in.output_size - in.output_len);
        if (n > 0) {
            in.output_len += (size_t)n;
        } else {
            if (n == 0 || errno == ECONNRESET)
                in.eof = true;
            return;
        }
    }
}

/* Run the server's loop until nothing moves for a few passes. */
static void settle(void)
{
    int quiet = 0;

    for (int pass = 0; pass < SETTLE_PASSES && quiet < 3; pass++) {
        unsigned long requests = in.requests;
        size_t output = in.output_len;
        int pending = unread(), open = conn_server_open();

        event_base_loop(server.base, EVLOOP_NONBLOCK);
        if (!in.eof)
            read_output();
        if (requests == in.requests && output == in.output_len && pending == unread() &&
            open == conn_server_open())
            quiet++;
        else
            quiet = 0;
    }
}

/* Write DATA in PIECES pieces, the server's loop running in between. */
static void send_input(const char *data, size_t size, size_t pieces)
{
    size_t piece = (size + pieces - 1) / pieces, pos = 0;

    while (pos < size) {
        size_t end = size - pos < piece ? size : pos + piece;

        while (pos < end) {
            ssize_t n =
                send(in.client, data + pos, end - pos, MSG_NOSIGNAL | MSG_DONTWAIT);
            int pending;

            if (n > 0) {
                pos += (size_t)n;
                continue;
            }
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                return; /* the server closed the connection */
            pending = unread();
            settle();
            /* A server that reads no more waits for its parked answer,
             * or has stopped reading for good. */
            if (unread() == pending && !answer_parked())
                return;
        }
        settle();
    }
}

/*========================================================================
 * What the server wrote: HTTP/1.1 responses.
 */

static struct {
    int heads;     /* final responses whose head was parsed */
    int completed; /* final responses complete */
} seen;

static int on_response_head(http_parser *p)
{
    bool head;

    if (p->status_code / 100 == 1)
        return 0; /* 100 Continue: an interim answer */
    head = seen.heads < in.answers && in.answer_head[seen.heads];
    seen.heads++;
    return head ? 1 : 0; /* 1: no body follows (a HEAD's answer) */
}

static int on_response_complete(http_parser *p)
{
    if (p->status_code / 100 != 1)
        seen.completed++;
    return 0;
}

static void check_output(void)
{
    static const http_parser_settings settings = {
        .on_headers_complete = on_response_head,
        .on_message_complete = on_response_complete,
    };
    http_parser parser;
    size_t parsed;

    memset(&seen, 0, sizeof(seen));
    http_parser_init(&parser, HTTP_RESPONSE);
    parsed = http_parser_execute(&parser, &settings, in.output, in.output_len);
    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK || parsed != in.output_len) {
        fprintf(stderr, "server output not HTTP (%s) at %zu of %zu bytes:\n%.*s\n",
                http_errno_name(HTTP_PARSER_ERRNO(&parser)), parsed, in.output_len,
                (int)(in.output_len < 2000 ? in.output_len : 2000), in.output);
        FUZZ_CHECK(!"the server's output is a sequence of HTTP responses");
    }
    http_parser_execute(&parser, &settings, NULL, 0); /* the end of the stream */
    FUZZ_CHECK(HTTP_PARSER_ERRNO(&parser) == HPE_OK);
    FUZZ_CHECK(seen.completed == seen.heads);
    FUZZ_CHECK(seen.completed >= in.answers && seen.completed <= in.answers + 1);
}

static void print_output(size_t sent)
{
    fprintf(stderr,
            "sent %zu bytes, %lu requests handled, %d answers; the server wrote:\n", sent,
            in.requests, in.answers);
    fwrite(in.output, 1, in.output_len, stderr);
    fprintf(stderr, "\n[end: %zu bytes]\n", in.output_len);
}

/*========================================================================
 * libFuzzer.
 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct config_errors errs;
    struct listeners ls = {.count = 1};
    int fd;

    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as in every wahagate process (proc.c) */
    log_set_level(LOG_LEVEL_ERROR);
    config_defaults(&server.cfg);
    memset(&errs, 0, sizeof(errs));
    /* The peer of a UNIX socket counts as "::": trusting it makes
     * conn.c read X-Forwarded-For. */
    FUZZ_CHECK(config_set(&server.cfg, "server", "trusted_proxies", "::/128, 10.0.0.0/8",
                          "fuzz", 0, &errs) == 0);
    FUZZ_CHECK(config_set(&server.cfg, "auth", "key", "fuzz : s3cret : default, team-a",
                          "fuzz", 0, &errs) == 0);
    server.slot = calloc(1, sizeof(*server.slot));
    server.base = event_base_new();
    FUZZ_CHECK(server.slot != NULL && server.base != NULL);

    server.addr.sun_family = AF_UNIX;
    snprintf(server.addr.sun_path + 1, sizeof(server.addr.sun_path) - 1,
             "wahagate-fuzz-request-%d", (int)getpid());
    server.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                  strlen(server.addr.sun_path + 1));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(bind(fd, (struct sockaddr *)&server.addr, server.addr_len) == 0);
    FUZZ_CHECK(listen(fd, 16) == 0);
    ls.fds[0] = fd;
    snprintf(ls.addrs[0].host, sizeof(ls.addrs[0].host), "fuzz");
    FUZZ_CHECK(conn_server_start(server.base, &server.cfg, &ls, server.slot, on_request,
                                 on_gone) == 0);
    return 0;
}

/* The bytes after the selector, with their tail repeated: their length. */
static size_t build_stream(const uint8_t *data, size_t size)
{
    size_t len = size - 1 < STREAM_MAX ? size - 1 : STREAM_MAX;
    size_t copies = (size_t)(data[0] >> 3) * (data[0] >> 3) * 64, tail_len;
    const char *tail;

    memcpy(stream, data + 1, len);
    tail = memrchr(stream, '\n', len);
    tail = tail != NULL ? tail + 1 : stream;
    tail_len = (size_t)(stream + len - tail);
    for (size_t i = 0; i < copies && tail_len > 0 && len + tail_len <= STREAM_MAX; i++) {
        memcpy(stream + len, tail, tail_len);
        len += tail_len;
    }
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;

    if (size < 1)
        return 0;
    len = build_stream(data, size);
    memset(&in, 0, sizeof(in));
    in.client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(in.client >= 0);
    FUZZ_CHECK(connect(in.client, (struct sockaddr *)&server.addr, server.addr_len) == 0);
    settle(); /* accepted */
    FUZZ_CHECK(conn_server_open() == 1);

    send_input(stream, len, 1 + data[0] % MAX_PIECES);
    settle();
    while (answer_parked()) /* and any parked after it, pipelined */
        settle();
    /* The server may have half-closed already (a lingering close after an
     * error): it lets go once it reads this EOF. */
    shutdown(in.client, SHUT_WR);
    for (int i = 0; i < 100 && (!in.eof || conn_server_open() > 0); i++)
        settle();
    FUZZ_CHECK(in.eof);
    FUZZ_CHECK(conn_server_open() == 0); /* the connection is gone */
    if (getenv("FUZZ_VERBOSE") != NULL)
        print_output(len);
    check_output();

    close(in.client);
    free(in.output);
    return 0;
}
