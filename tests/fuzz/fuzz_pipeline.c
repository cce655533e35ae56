/*
 * fuzz_pipeline.c - libFuzzer target: whole pipelined streams through the
 * real transport (server/worker/conn.c, accept.c, request.c, http.c), in
 * the style of fuzz_request.c: a conn server on its own event loop, fed
 * over an abstract UNIX socket by a client in the same process.
 *
 * Where fuzz_request feeds bytes and checks that whatever comes out is
 * HTTP, this target builds valid pipelines and checks that what comes out
 * is exactly one answer per complete request, in order (issue 15). Each
 * input is a program:
 *   byte 0      the ending: 0 the client reads all its answers, then
 *               half-closes; 1 it half-closes right after its last byte;
 *               2 its last request says Connection: close; 3 a request the
 *               server refuses (400) follows the last one; 4 part of a
 *               request follows the last one, then the half-close;
 *   byte 1      how the client writes: the low 3 bits pick a piece size
 *               (1 byte to all at once; at most PIECES_MAX pieces), bit 3
 *               a client that reads only when its writes block (so the
 *               server's output fills up);
 *   then pairs  (kind, parameter), one request each, up to MAX_REQUESTS:
 *               GET, HEAD, POST with a Content-Length body or chunked (its
 *               size from the parameter), a GET parked until the client
 *               has written on (the worker waiting for the fetcher),
 *               OPTIONS *, an absolute-form target, a GET whose answer is
 *               parameter * 512 bytes (to go over CONN_MAX_OUTPUT), an
 *               HTTP/1.0 keep-alive GET, an Expect: 100-continue POST, and
 *               a GET after an empty line with blanks after its values.
 * Every request but OPTIONS * names its number in its path (/s/N); the
 * handler checks that requests arrive in order, one each, and answers
 * with X-Seq: N. The client parses what it reads with http_parser and
 * checks it against the program: the answers in order, a 100 Continue
 * only before the answer of an Expect request, the 400 of a refused
 * request last, and the connection closed (or not) as the ending says.
 *
 * Bounds checked on the way: no turn of the loop answers more than two
 * batches (CONN_PIPELINE_BATCH; conn.c answers at most one batch per turn
 * from the later queue and one when the output of a connection is written
 * out), and the bytes the server buffers (conn_server_buffered()) never
 * exceed CONN_MAX_INPUT + CONN_MAX_OUTPUT and one answer.
 *
 * FUZZ_VERBOSE=1 in the environment prints the program and the output.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <http_parser.h>

#include "config.h"
#include "conn.h"
#include "fuzz.h"
#include "http.h"
#include "log.h"
#include "region.h"
#include "request.h"

#define MAX_REQUESTS 160
#define STREAM_MAX (1u << 20)
#define BIG_UNIT 512
#define BIG_MAX (255 * BIG_UNIT)
#define OUTPUT_MAX (48u << 20)
#define PASSES_MAX 200000
#define PIECES_MAX 400

enum kind {
    K_GET,
    K_HEAD,
    K_POST_LENGTH,
    K_POST_CHUNKED,
    K_PARK,
    K_OPTIONS_STAR,
    K_ABSOLUTE,
    K_BIG,
    K_HTTP10,
    K_EXPECT,
    K_BLANKS,
    K_COUNT
};

enum ending {
    END_READ_ALL,
    END_HALF_CLOSE,
    END_CLOSE,
    END_REFUSED,
    END_PARTIAL,
    END_COUNT
};

struct expected {
    enum kind kind;
    int seq; /* -1: OPTIONS * (no X-Seq) */
    int param;
};

static struct {
    struct event_base *base;
    struct config cfg;
    struct region_proc *slot;
    struct sockaddr_un addr;
    socklen_t addr_len;
    char big[BIG_MAX];
} server;

static char stream[STREAM_MAX];

/* One input's run. */
static struct {
    enum ending ending;
    size_t piece;
    bool lazy_reader;
    int count;
    struct expected req[MAX_REQUESTS];
    size_t len;          /* bytes of STREAM */
    int dispatched;      /* requests the handler got */
    struct conn *parked; /* the parked request's connection */
    int parked_seq;      /* ... and its number */
    int client;
    bool eof;
    char *output;
    size_t output_len, output_size;
    int served_this_pass; /* requests dispatched in the current loop turn */
} run;

/*========================================================================
 * The program: requests into STREAM.
 */

static void put(const char *text, size_t n)
{
    FUZZ_CHECK(run.len + n <= STREAM_MAX);
    memcpy(stream + run.len, text, n);
    run.len += n;
}

static void putf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void putf(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(text));
    put(text, (size_t)n);
}

static void put_body(size_t n, char fill)
{
    FUZZ_CHECK(run.len + n <= STREAM_MAX);
    memset(stream + run.len, fill, n);
    run.len += n;
}

/* The bytes of request I; CLOSE: it asks for Connection: close. */
static void put_request(int i, bool close)
{
    const struct expected *e = &run.req[i];
    const char *conn = close ? "Connection: close\r\n" : "";
    size_t size = (size_t)e->param * 37;

    switch (e->kind) {
    case K_HEAD: putf("HEAD /s/%d HTTP/1.1\r\nHost: h\r\n%s\r\n", e->seq, conn); break;
    case K_POST_LENGTH:
        putf("POST /s/%d HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n%s\r\n", e->seq,
             size, conn);
        put_body(size, 'b');
        break;
    case K_POST_CHUNKED:
        putf("POST /s/%d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n%s\r\n",
             e->seq, conn);
        for (int c = 0; c < e->param % 5 + 1; c++) {
            putf("%zx\r\n", size / 5 + 1);
            put_body(size / 5 + 1, 'c');
            put("\r\n", 2);
        }
        put("0\r\n\r\n", 5);
        break;
    case K_PARK: putf("GET /park/%d HTTP/1.1\r\nHost: h\r\n%s\r\n", e->seq, conn); break;
    case K_OPTIONS_STAR: putf("OPTIONS * HTTP/1.1\r\nHost: h\r\n%s\r\n", conn); break;
    case K_ABSOLUTE:
        putf("GET http://h.example/s/%d?q=1 HTTP/1.1\r\nHost: h\r\n%s\r\n", e->seq, conn);
        break;
    case K_BIG: putf("GET /big/%d HTTP/1.1\r\nHost: h\r\n%s\r\n", e->seq, conn); break;
    case K_HTTP10:
        putf("GET /s/%d HTTP/1.0\r\n%s\r\n", e->seq,
             close ? "" : "Connection: keep-alive\r\n");
        break;
    case K_EXPECT:
        putf("POST /s/%d HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
             "Content-Length: %zu\r\n%s\r\n",
             e->seq, size, conn);
        put_body(size, 'e');
        break;
    case K_BLANKS:
        putf("\r\nGET /s/%d HTTP/1.1\r\nHost:  h \t\r\nAccept: */* \r\n%s\r\n", e->seq,
             conn);
        break;
    case K_GET:
    default: putf("GET /s/%d HTTP/1.1\r\nHost: h\r\n%s\r\n", e->seq, conn); break;
    }
}

/* Read the program in DATA into run and STREAM; false when it has none. */
static bool build(const uint8_t *data, size_t size)
{
    static const size_t pieces[] = {1, 7, 64, 500, 4096, 65536, 300000, STREAM_MAX};
    size_t expected_output = 0, expected_input = 0;

    if (size < 4)
        return false;
    memset(&run, 0, sizeof(run));
    run.ending = (enum ending)(data[0] % END_COUNT);
    run.piece = pieces[data[1] & 7];
    run.lazy_reader = (data[1] & 8) != 0;
    for (size_t at = 2; at + 1 < size && run.count < MAX_REQUESTS; at += 2) {
        struct expected *e = &run.req[run.count];

        e->kind = (enum kind)(data[at] % K_COUNT);
        e->param = data[at + 1];
        e->seq = e->kind == K_OPTIONS_STAR ? -1 : run.count;
        expected_output += 300 + (e->kind == K_BIG ? (size_t)e->param * BIG_UNIT : 0);
        /* A request's head is under 200 bytes, its body and framing
         * under 256 + 37 * param. */
        expected_input += 456 + (size_t)e->param * 37;
        if (expected_output > OUTPUT_MAX / 2 || expected_input > STREAM_MAX - 1024)
            break;
        run.count++;
    }
    if (run.count == 0)
        return false;
    for (int i = 0; i < run.count; i++)
        put_request(i, run.ending == END_CLOSE && i == run.count - 1);
    /* At most PIECES_MAX pieces: small pieces are for small streams. */
    if (run.piece < run.len / PIECES_MAX)
        run.piece = run.len / PIECES_MAX;
    if (run.ending == END_REFUSED)
        putf("GET /s/x HTTP/1.1\r\nHost : h\r\n\r\n");
    else if (run.ending == END_PARTIAL)
        putf("GET /s/partial HTTP/1.1\r\nHo");
    return true;
}

/*========================================================================
 * The handlers' side.
 */

static int seq_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return strcmp(path, "*") == 0 ? -1 : atoi(slash + 1);
}

static void respond(struct conn *c, int seq, enum kind kind)
{
    static struct http_response resp;

    memset(&resp, 0, sizeof(resp));
    resp.endpoint = ENDPOINT_OTHER;
    resp.status = kind == K_OPTIONS_STAR ? 204 : 200;
    resp.content_type = "text/plain";
    if (seq >= 0)
        http_response_header(&resp, "X-Seq", "%d", seq);
    if (kind == K_BIG) {
        resp.body = server.big;
        resp.body_len = (size_t)run.req[seq].param * BIG_UNIT;
    } else if (kind != K_OPTIONS_STAR) {
        resp.body = resp.small;
        resp.body_len = (size_t)snprintf(resp.small, sizeof(resp.small), "seq %d\n", seq);
    }
    conn_send(c, &resp);
}

static void on_request(struct conn *c, const struct http_request *req,
                       const struct http_request_view *v)
{
    int k = run.dispatched++;
    const struct expected *e;

    (void)req;
    run.served_this_pass++;
    /* Exactly the requests sent, in order, each once. */
    FUZZ_CHECK(k < run.count);
    e = &run.req[k];
    FUZZ_CHECK(seq_of(v->path) == e->seq);
    FUZZ_CHECK(e->kind != K_OPTIONS_STAR || v->method == METHOD_OPTIONS);
    FUZZ_CHECK(e->kind != K_HEAD || v->method == METHOD_HEAD);
    if (e->kind == K_POST_LENGTH || e->kind == K_EXPECT)
        FUZZ_CHECK(v->body_len == (size_t)e->param * 37);
    if (e->kind == K_ABSOLUTE)
        FUZZ_CHECK(strcmp(v->header[HEADER_HOST], "h.example") == 0 &&
                   strcmp(v->query, "q=1") == 0);
    if (e->kind == K_BLANKS)
        FUZZ_CHECK(strcmp(v->header[HEADER_HOST], "h") == 0 &&
                   strcmp(v->header[HEADER_ACCEPT], "*/*") == 0);
    if (e->kind == K_PARK) {
        FUZZ_CHECK(run.parked == NULL);
        run.parked = c;
        run.parked_seq = e->seq;
        return;
    }
    respond(c, e->seq, e->kind);
}

static void on_gone(struct conn *c)
{
    /* Only a reset drops a connection whose request waits: never here. */
    FUZZ_CHECK(c != run.parked);
}

static bool answer_parked(void)
{
    struct conn *c = run.parked;

    if (c == NULL)
        return false;
    run.parked = NULL;
    respond(c, run.parked_seq, K_PARK);
    return true;
}

/*========================================================================
 * The client's side.
 */

static void read_output(void)
{
    while (!run.eof) {
        ssize_t n;

        if (run.output_size - run.output_len < 65536) {
            FUZZ_CHECK(run.output_size < OUTPUT_MAX);
            run.output_size = run.output_size ? 2 * run.output_size : 262144;
            run.output = realloc(run.output, run.output_size);
            FUZZ_CHECK(run.output != NULL);
        }
        n = read(run.client, run.output + run.output_len,
                 run.output_size - run.output_len);
        if (n > 0)
            run.output_len += (size_t)n;
        else if (n == 0 || errno == ECONNRESET)
            run.eof = true;
        else
            return;
    }
}

/* One turn of the server's loop, with the bounds checked. */
static void turn(void)
{
    run.served_this_pass = 0;
    /* One iteration: EVLOOP_NONBLOCK alone goes on while callbacks run. */
    event_base_loop(server.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    FUZZ_CHECK(run.served_this_pass <= 2 * CONN_PIPELINE_BATCH);
    FUZZ_CHECK(conn_server_buffered() <=
               CONN_MAX_INPUT + CONN_MAX_OUTPUT + BIG_MAX + 1024);
}

/* Turns until nothing moves for a few; the client reads unless LAZY. */
static void settle(bool lazy)
{
    int quiet = 0;

    for (int pass = 0; pass < PASSES_MAX && quiet < 3; pass++) {
        int dispatched = run.dispatched;
        size_t output = run.output_len;

        turn();
        if (!lazy)
            read_output();
        quiet = dispatched == run.dispatched && output == run.output_len ? quiet + 1 : 0;
    }
}

/* Write STREAM in pieces; the parked request is answered when the server
 * waits for it; a lazy client reads when its writes block. */
static void send_stream(void)
{
    size_t pos = 0;
    int stuck = 0;

    while (pos < run.len && stuck < 1000) {
        size_t n = run.len - pos < run.piece ? run.len - pos : run.piece;
        ssize_t sent = send(run.client, stream + pos, n, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (sent > 0) {
            pos += (size_t)sent;
            stuck = 0;
        } else {
            FUZZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
            stuck++;
            read_output(); /* the server may wait for us to read */
            answer_parked();
        }
        settle(run.lazy_reader);
    }
    FUZZ_CHECK(pos == run.len); /* the server never stops reading for good */
}

/*========================================================================
 * The output: answers in order.
 */

static struct {
    int answers;   /* final answers complete */
    int continues; /* 100 Continue */
    int seq;       /* X-Seq of the answer being parsed, or -1 */
    bool in_seq;   /* the header being parsed is X-Seq */
    int status[MAX_REQUESTS + 1];
    int seqs[MAX_REQUESTS + 1];
} out;

static int on_field(http_parser *p, const char *at, size_t len)
{
    (void)p;
    out.in_seq = len == 5 && strncasecmp(at, "X-Seq", 5) == 0;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    (void)p;
    if (out.in_seq)
        out.seq = atoi(at); /* digits, then the line end */
    (void)len;
    return 0;
}

static int on_head_done(http_parser *p)
{
    int k = out.answers;

    if (p->status_code == 100)
        return 0;
    /* The answer to a HEAD has no body. */
    return k < run.count && run.req[k].kind == K_HEAD && p->status_code != 400 ? 1 : 0;
}

static int on_answer(http_parser *p)
{
    if (p->status_code == 100) {
        out.continues++;
    } else {
        FUZZ_CHECK(out.answers <= MAX_REQUESTS);
        out.status[out.answers] = p->status_code;
        out.seqs[out.answers] = out.seq;
        out.answers++;
    }
    out.seq = -1;
    return 0;
}

static void check_output(void)
{
    static const http_parser_settings settings = {
        .on_header_field = on_field,
        .on_header_value = on_value,
        .on_headers_complete = on_head_done,
        .on_message_complete = on_answer,
    };
    http_parser parser;
    size_t parsed;
    int refused = run.ending == END_REFUSED ? 1 : 0, expects = 0;

    memset(&out, 0, sizeof(out));
    out.seq = -1;
    http_parser_init(&parser, HTTP_RESPONSE);
    parsed = http_parser_execute(&parser, &settings, run.output, run.output_len);
    FUZZ_CHECK(HTTP_PARSER_ERRNO(&parser) == HPE_OK && parsed == run.output_len);
    FUZZ_CHECK(out.answers == run.count + refused);
    for (int k = 0; k < run.count; k++) {
        FUZZ_CHECK(out.seqs[k] == run.req[k].seq);
        FUZZ_CHECK(out.status[k] == (run.req[k].kind == K_OPTIONS_STAR ? 204 : 200));
        expects += run.req[k].kind == K_EXPECT && run.req[k].param > 0;
    }
    if (refused)
        FUZZ_CHECK(out.status[run.count] == 400);
    FUZZ_CHECK(out.continues <= expects);
}

/*========================================================================
 * libFuzzer.
 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct listeners ls = {.count = 1};
    int fd;

    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR);
    config_defaults(&server.cfg);
    memset(server.big, 'B', sizeof(server.big));
    server.slot = calloc(1, sizeof(*server.slot));
    server.base = event_base_new();
    FUZZ_CHECK(server.slot != NULL && server.base != NULL);
    server.addr.sun_family = AF_UNIX;
    snprintf(server.addr.sun_path + 1, sizeof(server.addr.sun_path) - 1,
             "wahagate-fuzz-pipeline-%d", (int)getpid());
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

/* After the stream: the ending. Every answer comes, then the server
 * closes; for END_READ_ALL only once the client has half-closed. */
static void finish(void)
{
    if (run.ending == END_HALF_CLOSE || run.ending == END_PARTIAL)
        shutdown(run.client, SHUT_WR);
    for (int i = 0; i < 1000; i++) {
        settle(false);
        if (!answer_parked() && (run.eof || run.ending == END_READ_ALL))
            break;
    }
    if (run.ending == END_READ_ALL) {
        FUZZ_CHECK(!run.eof);          /* kept open, */
        shutdown(run.client, SHUT_WR); /* until the client half-closes */
        for (int i = 0; i < 100 && !run.eof; i++)
            settle(false);
    }
    FUZZ_CHECK(run.eof);
    shutdown(run.client, SHUT_WR); /* a lingering close waits for it */
    for (int i = 0; i < 100 && conn_server_open() > 0; i++)
        turn();
    FUZZ_CHECK(conn_server_open() == 0);
    FUZZ_CHECK(run.dispatched == run.count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!build(data, size))
        return 0;
    run.client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(run.client >= 0);
    FUZZ_CHECK(connect(run.client, (struct sockaddr *)&server.addr, server.addr_len) ==
               0);
    settle(false);
    FUZZ_CHECK(conn_server_open() == 1);
    send_stream();
    finish();
    if (getenv("FUZZ_VERBOSE") != NULL) {
        fprintf(stderr, "%d requests, ending %d, pieces of %zu%s; the server wrote:\n",
                run.count, run.ending, run.piece, run.lazy_reader ? ", lazy" : "");
        fwrite(run.output, 1, run.output_len < 4000 ? run.output_len : 4000, stderr);
        fputc('\n', stderr);
    }
    check_output();
    close(run.client);
    free(run.output);
    return 0;
}
