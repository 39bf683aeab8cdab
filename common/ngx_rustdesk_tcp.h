/*
 * A framed TCP session (PROTOCOL.md section 2): reads frames, hands each
 * decoded RendezvousMessage to a handler, and writes framed answers.  One
 * per stream session; everything from its pool.
 *
 * Its timeout is first a deadline: the handshake (a WebSocket upgrade, a
 * secure TCP key exchange) and the first message for the handler must be
 * done within it of the connection's accept, however slowly their bytes
 * come (heartbeats do not count).  From the first message on it is the
 * idle time between reads.  A write that fails ends the session at once.
 */

#ifndef _NGX_RUSTDESK_TCP_H_INCLUDED_
#define _NGX_RUSTDESK_TCP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_frame.h"
#include "ngx_rustdesk_msg.h"
#include "ngx_rustdesk_ws.h"


#define NGX_RUSTDESK_TCP_FRAME_SIZE  512     /* first payload buffer */


typedef struct ngx_rustdesk_tcp_s  ngx_rustdesk_tcp_t;

/*
 * Returns NGX_OK to go on reading, NGX_DONE to close once the answers are
 * sent, NGX_ERROR to close at once, NGX_DECLINED when the handler has taken
 * the connection over (the session stops reading and never closes it; the
 * bytes read after the message are t->rest..t->rest_last).
 */
typedef ngx_int_t (*ngx_rustdesk_tcp_handler_pt)(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);

/*
 * An empty frame or message (a heartbeat, PROTOCOL.md section 8), and
 * nothing read for the timeout: NGX_OK to go on, NGX_ERROR to close.
 */
typedef ngx_int_t (*ngx_rustdesk_tcp_event_pt)(ngx_rustdesk_tcp_t *t);


/* A WebSocket session's state (PROTOCOL.md section 2). */
typedef struct {
    ngx_buf_t                     *request;    /* the upgrade request */
    ngx_array_t                   *real_ip_from;
    ngx_uint_t                     real_ip_header;
    ngx_rustdesk_ws_decoder_t      decoder;
    unsigned                       upgraded:1;
} ngx_rustdesk_tcp_ws_t;


/* Secure TCP (PROTOCOL.md section 8): secretbox framing once keyed. */
typedef struct {
    u_char                         box_sk[32];  /* our ephemeral box key */
    u_char                         key[32];     /* the client's secretbox key */
    uint64_t                       send_seq;
    uint64_t                       recv_seq;
    unsigned                       decided:1;   /* the first frame came */
    unsigned                       on:1;        /* frames are encrypted */
} ngx_rustdesk_tcp_secure_t;


struct ngx_rustdesk_tcp_s {
    ngx_stream_session_t          *session;
    ngx_rustdesk_tcp_handler_pt    handler;
    ngx_rustdesk_tcp_event_pt      heartbeat;  /* NULL: a message as any */
    ngx_rustdesk_tcp_event_pt      idle;       /* NULL: close on timeout */
    void                          *data;
    ngx_msec_t                     timeout;

    ngx_rustdesk_frame_decoder_t   decoder;
    ngx_buf_t                     *out;
    ngx_rustdesk_tcp_ws_t         *ws;         /* NULL: framed TCP */
    ngx_rustdesk_tcp_secure_t     *secure;     /* NULL: plain */

    u_char                        *rest;       /* read after the message */
    u_char                        *rest_last;

    unsigned                       received:1; /* a message reached the
                                                  handler: the deadline is
                                                  over */
    unsigned                       done:1;
    unsigned                       failed:1;
};


/*
 * max: the largest message accepted (a larger announcement closes the
 * connection); timeout: the time from accept to the first message, then
 * the idle time before the connection is closed.
 */
ngx_rustdesk_tcp_t *ngx_rustdesk_tcp_create(ngx_stream_session_t *s,
    size_t max, ngx_msec_t timeout, ngx_rustdesk_tcp_handler_pt handler,
    void *data);

/*
 * Makes it a WebSocket session (before start): an upgrade request first,
 * then binary messages.  real_ip_from: proxies whose real_ip_header
 * (NGX_RUSTDESK_REAL_IP_*) is believed (NULL: none).
 */
ngx_int_t ngx_rustdesk_tcp_websocket(ngx_rustdesk_tcp_t *t,
    ngx_array_t *real_ip_from, ngx_uint_t real_ip_header);

/*
 * Offers secure TCP (before start): a KeyExchange signed with the server's
 * Ed25519 secret key is the first thing sent; the client's first frame
 * decides: its KeyExchange switches the session to secretbox framing,
 * anything else keeps it plain.
 */
ngx_int_t ngx_rustdesk_tcp_secure(ngx_rustdesk_tcp_t *t, u_char *sign_sk);

/*
 * Takes over the connection (its data becomes t, its events the
 * session's) and sets the deadline of the first message; bytes already
 * read are used first.
 */
void ngx_rustdesk_tcp_start(ngx_rustdesk_tcp_t *t);

/* Queues a framed message and writes what the socket takes. */
ngx_int_t ngx_rustdesk_tcp_send(ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m);

/*
 * Closes the session from outside its own handlers (e.g. when another
 * session's answer cannot be written to it): through a posted event, so
 * that no caller up the stack is left with a freed session.
 */
void ngx_rustdesk_tcp_fail(ngx_rustdesk_tcp_t *t);

/* The same for a message already encoded (without its frame header). */
ngx_int_t ngx_rustdesk_tcp_send_raw(ngx_rustdesk_tcp_t *t, u_char *payload,
    size_t len);

/* An empty frame (an empty binary message over WebSocket), never sealed. */
ngx_int_t ngx_rustdesk_tcp_send_heartbeat(ngx_rustdesk_tcp_t *t);


/*
 * Between the session's own files: the framed session
 * (ngx_rustdesk_tcp.c), its secure TCP layer (ngx_rustdesk_tcp_secure.c)
 * and its WebSocket framing (ngx_rustdesk_tcp_ws.c).
 */

/* Room for size more bytes of output, or NULL: close the connection. */
ngx_buf_t *ngx_rustdesk_tcp_reserve(ngx_rustdesk_tcp_t *t, size_t size);

/* NGX_OK: all sent; NGX_AGAIN: the rest goes when the socket allows. */
ngx_int_t ngx_rustdesk_tcp_flush(ngx_rustdesk_tcp_t *t);

/*
 * One message's bytes (payload..len, then rest..last unread): decoded and
 * handed to the handler.  NGX_OK to read on; otherwise the session is
 * closed, closing or taken over and the caller must not touch it.
 */
ngx_int_t ngx_rustdesk_tcp_dispatch(ngx_rustdesk_tcp_t *t, u_char *payload,
    size_t len, u_char *rest, u_char *last);

/* Close once what is queued has been written: NGX_DONE. */
ngx_int_t ngx_rustdesk_tcp_done(ngx_rustdesk_tcp_t *t);

void ngx_rustdesk_tcp_close(ngx_rustdesk_tcp_t *t);

ngx_int_t ngx_rustdesk_tcp_secure_decide(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);
ngx_int_t ngx_rustdesk_tcp_secure_open(ngx_rustdesk_tcp_t *t,
    u_char *payload, size_t *len);
size_t ngx_rustdesk_tcp_secure_overhead(ngx_rustdesk_tcp_t *t);
void ngx_rustdesk_tcp_secure_seal(ngx_rustdesk_tcp_t *t, u_char *dst,
    u_char *payload, size_t len);

/* Decodes WebSocket input as ngx_rustdesk_tcp_dispatch returns. */
ngx_int_t ngx_rustdesk_tcp_ws_feed(ngx_rustdesk_tcp_t *t, u_char **pos,
    u_char *last);
ngx_int_t ngx_rustdesk_tcp_ws_send(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);
/* A server frame: header and payload into the output. */
ngx_int_t ngx_rustdesk_tcp_ws_frame(ngx_rustdesk_tcp_t *t, ngx_uint_t opcode,
    u_char *payload, size_t len);


#endif /* _NGX_RUSTDESK_TCP_H_INCLUDED_ */
