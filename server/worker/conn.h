/*
 * conn.h - wahagate's HTTP/1.1 transport: client connections on libevent
 * events, requests parsed with http_parser (Debian libhttp-parser).
 *
 * A worker runs one conn server. It accepts on the listen sockets it
 * inherited, parses each request into a struct http_request_view and hands
 * it to the worker's callback, which answers through conn_send() (now or
 * later, for a parked request) or turns the connection into an event stream
 * (conn_stream_start()). Requests of one connection are answered in order;
 * pipelined requests wait in the input buffer. Everything the transport
 * refuses (a malformed request, oversized headers, target or body, too many
 * connections, a client that is too slow) gets a JSON error when an answer
 * is still possible.
 */
#ifndef WAHAGATE_CONN_H
#define WAHAGATE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "config.h"
#include "http.h"
#include "listen.h"
#include "request.h"

/* An event stream's socket send buffer (the kernel doubles it). */
#define CONN_STREAM_SNDBUF (32 * 1024)
/* A connection buffers at most one largest request of input. */
#define CONN_MAX_INPUT REQUEST_MAX_BYTES
/* At most this many pipelined requests of one connection are answered in
 * one turn of the event loop; the next ones wait for the next turn. */
#define CONN_PIPELINE_BATCH 16
/* No request of a connection is parsed while more than this much of its
 * output waits for the client to read it. */
#define CONN_MAX_OUTPUT ((size_t)64 * 1024)

struct conn;

/*
 * Called for each complete request REQ, whose view (body included) is
 * VIEW. Both are valid during the call only: a callee that keeps the
 * request copies REQ (a plain struct). The callee must eventually call
 * conn_send() or conn_stream_start() for C, or the connection stays busy.
 */
typedef void (*conn_request_cb)(struct conn *c, const struct http_request *req,
                                const struct http_request_view *view);

/* Called when connection C closes while the worker holds on to it (a
 * parked request or an event stream), so the worker can forget it: a
 * reset, a failed write, a client that does not read; for a stream, also
 * the client's EOF. (A parked request whose client half-closed is still
 * answered: C stays until then.) */
typedef void (*conn_gone_cb)(struct conn *c);

/*
 * conn_server_start - accept on every socket of LISTENERS and serve with
 * CFG's limits (server.max_connections, server.client_timeout), calling
 * ON_REQUEST and ON_GONE. Returns 0 or -1 (logged).
 */
int conn_server_start(struct event_base *base, const struct config *cfg,
                      const struct listeners *listeners, struct region_proc *slot,
                      conn_request_cb on_request, conn_gone_cb on_gone);

/*
 * conn_send - answer C's current request with RESP (HEAD: without the
 * body), then go on with C's next pipelined request, or close C when the
 * request or the server asked for that.
 */
void conn_send(struct conn *c, const struct http_response *resp);

/*
 * conn_stream_start - answer C's current request with the head of an event
 * stream (200, text/event-stream, RESP's headers, no length: the stream ends
 * with the connection). From then on C only takes conn_stream_write(). The
 * socket's send buffer is set to CONN_STREAM_SNDBUF (the kernel doubles it),
 * so a stream's unsent bytes are bounded in the kernel as in the worker.
 */
void conn_stream_start(struct conn *c, const struct http_response *resp);

/*
 * conn_stream_write - append LEN bytes of TEXT to stream C. Returns 0, or -1
 * when C has more than MAX_UNSENT bytes waiting for a slow client: then C
 * is closed (ON_GONE is not called for it) and must be forgotten.
 */
int conn_stream_write(struct conn *c, const char *text, size_t len, size_t max_unsent);

/* conn_stream_writev - conn_stream_write() of the IOVCNT pieces of IOV, in
 * one write. */
int conn_stream_writev(struct conn *c, const struct iovec *iov, int iovcnt,
                       size_t max_unsent);

/* conn_close - close C once what is queued for it is written (or at once,
 * when the client is not reading). ON_GONE is not called for it. */
void conn_close(struct conn *c);

/*
 * conn_server_drain - stop accepting; from now on every answer closes its
 * connection. Returns the number of connections still open.
 */
int conn_server_drain(void);

/*
 * conn_server_close_idle - close the connections that have had no request
 * for GRACE_MS. While draining, a client that had just connected (or just
 * got an answer) still gets its next request answered, so a retiring worker
 * drops no request.
 */
void conn_server_close_idle(int64_t grace_ms);

/* conn_server_open - connections still open (streams included). */
int conn_server_open(void);

/* conn_server_buffered - bytes the connections hold in their input and
 * output buffers, all together (what the bounds above bound; the fuzzer
 * checks it). */
size_t conn_server_buffered(void);

/* conn_server_stop - close everything and free the server. */
void conn_server_stop(void);

#endif
