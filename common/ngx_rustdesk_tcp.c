/*
 * Framed TCP session: read frames, dispatch messages, write answers.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include <ngx_sha1.h>
#include <sodium.h>

#include "ngx_rustdesk_conf.h"
#include "ngx_rustdesk_tcp.h"


/*
 * Socket reads go to the reader's stack: everything read is consumed (or
 * copied by the decoders) before the read handler returns, so an idle
 * connection holds no input buffer.  The output buffer is taken when an
 * answer is queued and given back once it is written.
 */
#define NGX_RUSTDESK_TCP_IN_SIZE     4096    /* one socket read */
#define NGX_RUSTDESK_TCP_FRAME_SIZE  512     /* first payload buffer */
#define NGX_RUSTDESK_TCP_OUT_SIZE    1024


static void ngx_rustdesk_tcp_read_handler(ngx_event_t *rev);
static void ngx_rustdesk_tcp_write_handler(ngx_event_t *wev);
static void ngx_rustdesk_tcp_on_read(ngx_rustdesk_tcp_t *t);
static void ngx_rustdesk_tcp_on_write(ngx_rustdesk_tcp_t *t);
static ngx_int_t ngx_rustdesk_tcp_feed(ngx_rustdesk_tcp_t *t, u_char **pos,
    u_char *last);
static ngx_int_t ngx_rustdesk_tcp_dispatch(ngx_rustdesk_tcp_t *t,
    u_char *payload, size_t len, u_char *rest, u_char *last);
static ngx_int_t ngx_rustdesk_tcp_done(ngx_rustdesk_tcp_t *t);
static ngx_int_t ngx_rustdesk_tcp_key_exchange(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);
static void ngx_rustdesk_tcp_nonce(u_char *nonce, uint64_t seq);
static ngx_int_t ngx_rustdesk_tcp_send_frame(ngx_rustdesk_tcp_t *t,
    u_char *payload, size_t len);
static ngx_int_t ngx_rustdesk_tcp_feed_ws(ngx_rustdesk_tcp_t *t,
    u_char **pos, u_char *last);
static ngx_int_t ngx_rustdesk_tcp_upgrade(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_ws_request_t *r);
static void ngx_rustdesk_tcp_real_ip(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_ws_request_t *r);
static ngx_int_t ngx_rustdesk_tcp_ws_frame(ngx_rustdesk_tcp_t *t,
    ngx_uint_t opcode, u_char *payload, size_t len);
static ngx_int_t ngx_rustdesk_tcp_ws_close(ngx_rustdesk_tcp_t *t,
    ngx_uint_t code);
static ngx_int_t ngx_rustdesk_tcp_flush(ngx_rustdesk_tcp_t *t);
static ngx_buf_t *ngx_rustdesk_tcp_reserve(ngx_rustdesk_tcp_t *t,
    size_t size);
static void ngx_rustdesk_tcp_free_out(void *data);
static void ngx_rustdesk_tcp_close(ngx_rustdesk_tcp_t *t);


ngx_rustdesk_tcp_t *
ngx_rustdesk_tcp_create(ngx_stream_session_t *s, size_t max,
    ngx_msec_t timeout, ngx_rustdesk_tcp_handler_pt handler, void *data)
{
    u_char              *buf;
    size_t               cap;
    ngx_connection_t    *c;
    ngx_rustdesk_tcp_t  *t;

    c = s->connection;

    t = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_tcp_t));
    if (t == NULL) {
        return NULL;
    }

    t->session = s;
    t->handler = handler;
    t->data = data;
    t->timeout = timeout;

    cap = ngx_min(max, NGX_RUSTDESK_TCP_FRAME_SIZE);
    buf = ngx_pnalloc(c->pool, cap);

    if (buf == NULL) {
        return NULL;
    }

    ngx_rustdesk_frame_decoder_init(&t->decoder, buf, max);
    ngx_rustdesk_frame_decoder_set_buf(&t->decoder, buf, cap);

    return t;
}


ngx_int_t
ngx_rustdesk_tcp_websocket(ngx_rustdesk_tcp_t *t, ngx_array_t *real_ip_from,
    ngx_uint_t real_ip_header)
{
    u_char            *buf;
    size_t             cap;
    ngx_connection_t  *c;

    c = t->session->connection;

    t->ws = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_tcp_ws_t));
    if (t->ws == NULL) {
        return NGX_ERROR;
    }

    t->ws->request = ngx_create_temp_buf(c->pool, NGX_RUSTDESK_WS_REQUEST_MAX);
    if (t->ws->request == NULL) {
        return NGX_ERROR;
    }

    t->ws->real_ip_from = real_ip_from;
    t->ws->real_ip_header = real_ip_header;

    cap = ngx_min(t->decoder.max, NGX_RUSTDESK_TCP_FRAME_SIZE);
    buf = ngx_pnalloc(c->pool, cap);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_rustdesk_ws_decoder_init(&t->ws->decoder, buf, cap, t->decoder.max);

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_tcp_secure(ngx_rustdesk_tcp_t *t, u_char *sign_sk)
{
    u_char                      pk[crypto_box_PUBLICKEYBYTES];
    u_char                      signed_pk[crypto_sign_BYTES
                                          + crypto_box_PUBLICKEYBYTES];
    ngx_connection_t           *c;
    ProtobufCBinaryData         keys[1];
    Hbb__KeyExchange            kx;
    Hbb__RendezvousMessage      out;
    unsigned long long          len;

    c = t->session->connection;

    t->secure = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_tcp_secure_t));
    if (t->secure == NULL) {
        return NGX_ERROR;
    }

    /* an ephemeral curve25519 key, its public half signed by the server */

    crypto_box_keypair(pk, t->secure->box_sk);

    if (crypto_sign(signed_pk, &len, pk, sizeof(pk), sign_sk) != 0) {
        return NGX_ERROR;
    }

    keys[0].data = signed_pk;
    keys[0].len = (size_t) len;

    hbb__key_exchange__init(&kx);
    kx.n_keys = 1;
    kx.keys = keys;

    hbb__rendezvous_message__init(&out);
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_KEY_EXCHANGE;
    out.key_exchange = &kx;

    return ngx_rustdesk_tcp_send(t, &out);
}


void
ngx_rustdesk_tcp_start(ngx_rustdesk_tcp_t *t)
{
    ngx_int_t          rc;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = t->session->connection;

    /* the session has the connection from here: its data is t */

    c->data = t;
    c->read->handler = ngx_rustdesk_tcp_read_handler;
    c->write->handler = ngx_rustdesk_tcp_write_handler;

    /*
     * between requests a connection is idle: on quit or reload nginx
     * closes it (through c->close) instead of waiting for the timeout
     */
    c->idle = 1;

    /* what a preread phase has read already */

    b = c->buffer;

    if (b && b->pos < b->last) {
        rc = ngx_rustdesk_tcp_feed(t, &b->pos, b->last);

        if (rc != NGX_OK) {
            return;
        }
    }

    ngx_rustdesk_tcp_on_read(t);
}


static void
ngx_rustdesk_tcp_read_handler(ngx_event_t *rev)
{
    ngx_connection_t  *c;

    c = rev->data;
    ngx_rustdesk_tcp_on_read(c->data);
}


static void
ngx_rustdesk_tcp_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c;

    c = wev->data;
    ngx_rustdesk_tcp_on_write(c->data);
}


static void
ngx_rustdesk_tcp_on_read(ngx_rustdesk_tcp_t *t)
{
    u_char            *pos, buf[NGX_RUSTDESK_TCP_IN_SIZE];
    ssize_t            n;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    c = t->session->connection;
    rev = c->read;

    if (rev->timedout) {
        rev->timedout = 0;

        if (t->idle == NULL || t->failed || c->close || t->done
            || t->idle(t) != NGX_OK)
        {
            if (t->idle == NULL) {
                ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                              "rustdesk: client timed out");
            }

            ngx_rustdesk_tcp_close(t);
            return;
        }
    }

    if (t->failed || c->close) {
        ngx_rustdesk_tcp_close(t);
        return;
    }

    if (t->done) {
        /* answered: only waiting for the write side to drain */
        return;
    }

    while (rev->ready) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                           "rustdesk: client closed connection");

            if (t->decoder.hlen) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "rustdesk: client closed connection "
                              "in the middle of a frame");
            }

            ngx_rustdesk_tcp_close(t);
            return;
        }

        pos = buf;

        if (ngx_rustdesk_tcp_feed(t, &pos, buf + n) != NGX_OK) {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_rustdesk_tcp_close(t);
        return;
    }

    ngx_add_timer(rev, t->timeout);
}


static void
ngx_rustdesk_tcp_on_write(ngx_rustdesk_tcp_t *t)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = t->session->connection;

    if (c->write->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "rustdesk: client timed out while sending");
        ngx_rustdesk_tcp_close(t);
        return;
    }

    rc = ngx_rustdesk_tcp_flush(t);

    if (rc == NGX_ERROR || (rc == NGX_OK && t->done)) {
        ngx_rustdesk_tcp_close(t);
    }
}


void
ngx_rustdesk_tcp_fail(ngx_rustdesk_tcp_t *t)
{
    t->failed = 1;
    ngx_post_event(t->session->connection->read, &ngx_posted_events);
}


ngx_int_t
ngx_rustdesk_tcp_send(ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m)
{
    u_char     *payload, nonce[crypto_secretbox_NONCEBYTES];
    size_t      len, n, hlen;
    ngx_buf_t  *b;

    if (t->ws) {
        /* one binary message, without the TCP frame header */

        len = ngx_rustdesk_msg_size(m, 0);

        b = ngx_rustdesk_tcp_reserve(t, NGX_RUSTDESK_WS_HEADER_MAX + len);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->last += ngx_rustdesk_ws_header(b->last, NGX_RUSTDESK_WS_BINARY,
                                          len);
        b->last = ngx_rustdesk_msg_pack(m, 0, b->last);

        return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
    }

    if (t->secure && t->secure->on) {
        /* packed where its ciphertext goes and sealed in place */

        len = ngx_rustdesk_msg_size(m, 0);
        n = len + crypto_secretbox_MACBYTES;
        hlen = ngx_rustdesk_frame_header_size(n);

        b = hlen ? ngx_rustdesk_tcp_reserve(t, hlen + n) : NULL;
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->last += ngx_rustdesk_frame_write_header(b->last, n);
        payload = b->last + crypto_secretbox_MACBYTES;
        (void) ngx_rustdesk_msg_pack(m, 0, payload);

        ngx_rustdesk_tcp_nonce(nonce, ++t->secure->send_seq);
        crypto_secretbox_easy(b->last, payload, len, nonce, t->secure->key);
        b->last += n;

        return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
    }

    b = ngx_rustdesk_tcp_reserve(t, ngx_rustdesk_msg_size(m, 1));
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_rustdesk_msg_pack(m, 1, b->last);

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


ngx_int_t
ngx_rustdesk_tcp_send_raw(ngx_rustdesk_tcp_t *t, u_char *payload, size_t len)
{
    if (t->ws) {
        return ngx_rustdesk_tcp_ws_frame(t, NGX_RUSTDESK_WS_BINARY, payload,
                                         len);
    }

    return ngx_rustdesk_tcp_send_frame(t, payload, len);
}


ngx_int_t
ngx_rustdesk_tcp_send_heartbeat(ngx_rustdesk_tcp_t *t)
{
    ngx_buf_t  *b;

    if (t->ws) {
        return ngx_rustdesk_tcp_ws_frame(t, NGX_RUSTDESK_WS_BINARY, NULL, 0);
    }

    b = ngx_rustdesk_tcp_reserve(t, 1);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += ngx_rustdesk_frame_write_header(b->last, 0);

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* A TCP frame, a secretbox of the payload once secure TCP is on. */

static ngx_int_t
ngx_rustdesk_tcp_send_frame(ngx_rustdesk_tcp_t *t, u_char *payload,
    size_t len)
{
    u_char      nonce[crypto_secretbox_NONCEBYTES];
    size_t      hlen, n;
    ngx_buf_t  *b;

    n = len;

    if (t->secure && t->secure->on) {
        n += crypto_secretbox_MACBYTES;
    }

    hlen = ngx_rustdesk_frame_header_size(n);
    if (hlen == 0) {
        return NGX_ERROR;
    }

    b = ngx_rustdesk_tcp_reserve(t, hlen + n);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += ngx_rustdesk_frame_write_header(b->last, n);

    if (n != len) {
        ngx_rustdesk_tcp_nonce(nonce, ++t->secure->send_seq);
        crypto_secretbox_easy(b->last, payload, len, nonce, t->secure->key);

    } else {
        ngx_memcpy(b->last, payload, len);
    }

    b->last += n;

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* Room for size more bytes of output, or NULL: close the connection. */

static ngx_buf_t *
ngx_rustdesk_tcp_reserve(ngx_rustdesk_tcp_t *t, size_t size)
{
    u_char              *p;
    ngx_buf_t           *b;
    ngx_connection_t    *c;
    ngx_pool_cleanup_t  *cln;

    c = t->session->connection;
    b = t->out;

    if (b == NULL) {
        cln = ngx_pool_cleanup_add(c->pool, 0);
        b = ngx_calloc_buf(c->pool);

        if (cln == NULL || b == NULL) {
            return NULL;
        }

        cln->handler = ngx_rustdesk_tcp_free_out;
        cln->data = t;

        b->temporary = 1;
        t->out = b;
    }

    if (b->start) {
        if ((size_t) (b->end - b->last) < size && b->pos > b->start) {
            b->last = ngx_movemem(b->start, b->pos, b->last - b->pos);
            b->pos = b->start;
        }

        if ((size_t) (b->end - b->last) >= size) {
            return b;
        }

        if (b->pos < b->last) {
            /* a client that does not read what it is sent is let go */
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: client does not read its answers");
            return NULL;
        }

        ngx_free(b->start);
    }

    size = ngx_max(size, NGX_RUSTDESK_TCP_OUT_SIZE);

    p = ngx_alloc(size, c->log);
    if (p == NULL) {
        b->start = NULL;
        b->pos = NULL;
        b->last = NULL;
        b->end = NULL;
        return NULL;
    }

    b->start = p;
    b->pos = p;
    b->last = p;
    b->end = p + size;

    return b;
}


static void
ngx_rustdesk_tcp_free_out(void *data)
{
    ngx_rustdesk_tcp_t  *t = data;

    if (t->out->start) {
        ngx_free(t->out->start);
        t->out->start = NULL;
    }
}


/*
 * Decodes and dispatches every whole frame in pos..last.  Returns NGX_OK
 * to read on; otherwise the session is closed or closing and the caller
 * must not touch it.
 */

static ngx_int_t
ngx_rustdesk_tcp_feed(ngx_rustdesk_tcp_t *t, u_char **pos, u_char *last)
{
    u_char                        *buf;
    ngx_int_t                      rc;
    ngx_connection_t              *c;
    ngx_rustdesk_frame_decoder_t  *d;

    if (t->ws) {
        return ngx_rustdesk_tcp_feed_ws(t, pos, last);
    }

    c = t->session->connection;
    d = &t->decoder;

    while (*pos < last) {

        switch (ngx_rustdesk_frame_decode(d, pos, last)) {

        case NGX_RUSTDESK_FRAME_AGAIN:
            return NGX_OK;

        case NGX_RUSTDESK_FRAME_TOO_BIG:
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: client sent a frame of %uz bytes, "
                          "more than %uz", d->len, d->max);
            ngx_rustdesk_tcp_close(t);
            return NGX_ERROR;

        case NGX_RUSTDESK_FRAME_GROW:
            buf = ngx_pnalloc(c->pool, d->len);
            if (buf == NULL) {
                ngx_rustdesk_tcp_close(t);
                return NGX_ERROR;
            }

            if (d->cap > NGX_RUSTDESK_TCP_FRAME_SIZE) {
                ngx_pfree(c->pool, d->buf);
            }

            ngx_rustdesk_frame_decoder_set_buf(d, buf, d->len);
            continue;

        case NGX_RUSTDESK_FRAME_DONE:
            break;
        }

        rc = ngx_rustdesk_tcp_dispatch(t, d->buf, d->len, *pos, last);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


/*
 * One message: decoded and handed to the handler.  Returns NGX_OK to go
 * on, or what the handler decided (the session is then closed, closing or
 * taken over).
 */

static ngx_int_t
ngx_rustdesk_tcp_dispatch(ngx_rustdesk_tcp_t *t, u_char *payload, size_t len,
    u_char *rest, u_char *last)
{
    u_char               nonce[crypto_secretbox_NONCEBYTES];
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_rustdesk_msg_t  *m;

    c = t->session->connection;

    if (len == 0 && (t->heartbeat || t->secure)) {
        /* a heartbeat (PROTOCOL.md section 8), never encrypted */

        if (t->heartbeat && t->heartbeat(t) != NGX_OK) {
            ngx_rustdesk_tcp_close(t);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (t->secure && t->secure->on && len > 1) {
        /* secretbox of the message; heartbeats (0 or 1 byte) are plain */

        if (len < crypto_secretbox_MACBYTES) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: client sent an encrypted frame of %uz "
                          "bytes", len);
            ngx_rustdesk_tcp_close(t);
            return NGX_ERROR;
        }

        ngx_rustdesk_tcp_nonce(nonce, ++t->secure->recv_seq);

        if (crypto_secretbox_open_easy(payload, payload, len, nonce,
                                       t->secure->key)
            != 0)
        {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: client sent a frame that does not "
                          "decrypt");
            ngx_rustdesk_tcp_close(t);
            return NGX_ERROR;
        }

        len -= crypto_secretbox_MACBYTES;
    }

    m = ngx_rustdesk_msg_unpack(payload, len);

    if (m == NULL) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: client sent a malformed message "
                      "of %uz bytes", len);
        ngx_rustdesk_tcp_close(t);
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: message %s", ngx_rustdesk_msg_name(m));

    if (t->secure && !t->secure->decided) {
        t->secure->decided = 1;

        if (m->union_case == HBB__RENDEZVOUS_MESSAGE__UNION_KEY_EXCHANGE) {
            rc = ngx_rustdesk_tcp_key_exchange(t, m);
            ngx_rustdesk_msg_free(m);

            if (rc != NGX_OK) {
                ngx_rustdesk_tcp_close(t);
                return NGX_ERROR;
            }

            return NGX_OK;
        }

        /* an older client, or one that skips it: plain from here on */
    }

    /* what follows the message, for a handler that takes the connection */
    t->rest = rest;
    t->rest_last = last;

    rc = t->handler(t, m);

    ngx_rustdesk_msg_free(m);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc == NGX_ERROR) {
        ngx_rustdesk_tcp_close(t);
        return NGX_ERROR;
    }

    if (rc == NGX_DONE) {
        return ngx_rustdesk_tcp_done(t);
    }

    return NGX_OK;
}


/*
 * The client's KeyExchange{[its box public key, crypto_box(32-byte key,
 * zero nonce, our box public key, its box secret key)]}: from here on
 * every frame longer than one byte is a secretbox (PROTOCOL.md section 8).
 */

static ngx_int_t
ngx_rustdesk_tcp_key_exchange(ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m)
{
    u_char             nonce[crypto_box_NONCEBYTES];
    ngx_connection_t  *c;
    Hbb__KeyExchange  *kx;

    c = t->session->connection;
    kx = m->key_exchange;

    if (kx == NULL || kx->n_keys != 2
        || kx->keys[0].len != crypto_box_PUBLICKEYBYTES
        || kx->keys[1].len != 32 + crypto_box_MACBYTES)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: client sent a malformed key exchange");
        return NGX_ERROR;
    }

    ngx_memzero(nonce, sizeof(nonce));

    if (crypto_box_open_easy(t->secure->key, kx->keys[1].data,
                             kx->keys[1].len, nonce, kx->keys[0].data,
                             t->secure->box_sk)
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: client sent a key exchange that does not "
                      "open");
        return NGX_ERROR;
    }

    sodium_memzero(t->secure->box_sk, sizeof(t->secure->box_sk));

    t->secure->on = 1;

    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: secure tcp established");

    return NGX_OK;
}


/* The nonce of message seq: its little-endian u64, then zeros. */

static void
ngx_rustdesk_tcp_nonce(u_char *nonce, uint64_t seq)
{
    ngx_uint_t  i;

    ngx_memzero(nonce, crypto_secretbox_NONCEBYTES);

    for (i = 0; i < 8; i++) {
        nonce[i] = (u_char) (seq >> (8 * i));
    }
}


/* Close once what is queued has been written. */

static ngx_int_t
ngx_rustdesk_tcp_done(ngx_rustdesk_tcp_t *t)
{
    t->done = 1;

    if (t->out == NULL || t->out->pos == t->out->last) {
        ngx_rustdesk_tcp_close(t);
    }

    return NGX_DONE;
}


/*
 * WebSocket (PROTOCOL.md section 2): the upgrade request first, then one
 * binary message per RendezvousMessage; pings are answered, a close is
 * echoed, a protocol error closes with its code.
 */

static ngx_int_t
ngx_rustdesk_tcp_feed_ws(ngx_rustdesk_tcp_t *t, u_char **pos, u_char *last)
{
    u_char                     *buf;
    size_t                      n, extra;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_connection_t           *c;
    ngx_rustdesk_tcp_ws_t      *ws;
    ngx_rustdesk_ws_request_t   r;
    ngx_rustdesk_ws_decoder_t  *d;

    c = t->session->connection;
    ws = t->ws;
    d = &ws->decoder;

    if (!ws->upgraded) {
        b = ws->request;

        n = ngx_min((size_t) (last - *pos), (size_t) (b->end - b->last));
        b->last = ngx_cpymem(b->last, *pos, n);
        *pos += n;

        if (!ngx_rustdesk_ws_parse_request(b->pos, b->last - b->pos, &r)) {
            if (b->last < b->end) {
                return NGX_OK;
            }

            r.status = 400;
            r.reason = "a request larger than 8k";
        }

        if (ngx_rustdesk_tcp_upgrade(t, &r) != NGX_OK) {
            return ngx_rustdesk_tcp_done(t);
        }

        /*
         * the request ended in the bytes just copied (earlier ones had no
         * empty line): what follows it is read from the input itself, so
         * that a handler taking the connection gets all of it as rest
         */

        extra = (b->last - b->pos) - r.size;
        *pos -= extra;

        /* the request is done with: its 8k go back */

        ngx_pfree(c->pool, b->start);
        b->start = NULL;
        b->pos = NULL;
        b->last = NULL;
        b->end = NULL;
    }

    while (*pos < last) {

        switch (ngx_rustdesk_ws_decode(d, pos, last)) {

        case NGX_RUSTDESK_WS_AGAIN:
            return NGX_OK;

        case NGX_RUSTDESK_WS_GROW:
            /* doubling: many small fragments must not copy over and over */
            n = ngx_min(ngx_max(d->need, 2 * d->cap), d->max);

            buf = ngx_pnalloc(c->pool, n);
            if (buf == NULL) {
                ngx_rustdesk_tcp_close(t);
                return NGX_ERROR;
            }

            ngx_memcpy(buf, d->buf, d->len);

            if (d->cap > NGX_RUSTDESK_TCP_FRAME_SIZE) {
                ngx_pfree(c->pool, d->buf);
            }

            ngx_rustdesk_ws_decoder_set_buf(d, buf, n);
            continue;

        case NGX_RUSTDESK_WS_PING:
            if (ngx_rustdesk_tcp_ws_frame(t, NGX_RUSTDESK_WS_PONG_FRAME,
                                          d->ctl, d->ctl_len)
                != NGX_OK)
            {
                ngx_rustdesk_tcp_close(t);
                return NGX_ERROR;
            }
            continue;

        case NGX_RUSTDESK_WS_PONG:
            continue;

        case NGX_RUSTDESK_WS_CLOSE:
            ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                           "rustdesk: websocket close %ui", d->code);

            /* the close handshake: the same code back, then the end */

            (void) ngx_rustdesk_tcp_ws_frame(t, NGX_RUSTDESK_WS_CLOSE_FRAME,
                                      d->ctl,
                                      d->code == NGX_RUSTDESK_WS_NO_STATUS
                                      ? 0 : 2);
            return ngx_rustdesk_tcp_done(t);

        case NGX_RUSTDESK_WS_ERROR:
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: websocket client sent %s, closing with "
                          "%ui", d->reason, d->code);

            (void) ngx_rustdesk_tcp_ws_close(t, d->code);
            return ngx_rustdesk_tcp_done(t);

        case NGX_RUSTDESK_WS_MESSAGE:
            rc = ngx_rustdesk_tcp_dispatch(t, d->buf, d->len, *pos, last);

            if (rc != NGX_OK) {
                return rc;
            }
            break;
        }
    }

    return NGX_OK;
}


/* The answer to the upgrade request: 101, or an HTTP error and the end. */

static ngx_int_t
ngx_rustdesk_tcp_upgrade(ngx_rustdesk_tcp_t *t, ngx_rustdesk_ws_request_t *r)
{
    u_char             *p, hash[20], accept[28];
    ngx_buf_t          *b;
    ngx_str_t           src, dst;
    ngx_sha1_t          sha1;
    ngx_connection_t   *c;

    c = t->session->connection;

    b = ngx_rustdesk_tcp_reserve(t, 256);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (r->status) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: websocket upgrade refused (%d): %s",
                      r->status, r->reason);

        p = b->last;

        switch (r->status) {
        case 405:
            p = ngx_cpymem(p, "HTTP/1.1 405 Method Not Allowed\r\n"
                              "Allow: GET\r\n",
                           sizeof("HTTP/1.1 405 Method Not Allowed\r\n"
                                  "Allow: GET\r\n") - 1);
            break;
        case 426:
            p = ngx_cpymem(p, "HTTP/1.1 426 Upgrade Required\r\n"
                              "Sec-WebSocket-Version: 13\r\n",
                           sizeof("HTTP/1.1 426 Upgrade Required\r\n"
                                  "Sec-WebSocket-Version: 13\r\n") - 1);
            break;
        default:
            p = ngx_cpymem(p, "HTTP/1.1 400 Bad Request\r\n",
                           sizeof("HTTP/1.1 400 Bad Request\r\n") - 1);
        }

        p = ngx_cpymem(p, "Connection: close\r\nContent-Length: 0\r\n\r\n",
                       sizeof("Connection: close\r\nContent-Length: 0"
                              "\r\n\r\n") - 1);
        b->last = p;

        (void) ngx_rustdesk_tcp_flush(t);

        return NGX_DECLINED;
    }

    ngx_rustdesk_tcp_real_ip(t, r);

    /* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)) */

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, r->key, r->key_len);
    ngx_sha1_update(&sha1, NGX_RUSTDESK_WS_GUID,
                    sizeof(NGX_RUSTDESK_WS_GUID) - 1);
    ngx_sha1_final(hash, &sha1);

    src.data = hash;
    src.len = sizeof(hash);
    dst.data = accept;
    ngx_encode_base64(&dst, &src);

    b->last = ngx_sprintf(b->last, "HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %V\r\n\r\n", &dst);

    t->ws->upgraded = 1;

    c->log->action = "handling websocket messages";

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/*
 * The header rustdesk_real_ip_header names (X-Real-IP, or the last
 * X-Forwarded-For address) is believed only from a trusted proxy
 * (rustdesk_real_ip_from); the port stays the connection's, so that
 * clients behind one proxy stay apart.
 */

static void
ngx_rustdesk_tcp_real_ip(ngx_rustdesk_tcp_t *t, ngx_rustdesk_ws_request_t *r)
{
    u_char            *text;
    size_t             len;
    in_port_t          port;
    ngx_addr_t         addr;
    ngx_connection_t  *c;

    c = t->session->connection;

    if (t->ws->real_ip_header == NGX_RUSTDESK_REAL_IP_FORWARDED) {
        text = (u_char *) r->forwarded;
        len = r->forwarded_len;

    } else {
        text = (u_char *) r->real_ip;
        len = r->real_ip_len;
    }

    if (len == 0) {
        return;
    }

    if (t->ws->real_ip_from == NULL
        || ngx_cidr_match(c->sockaddr, t->ws->real_ip_from) != NGX_OK)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: client address header from an untrusted "
                       "address ignored");
        return;
    }

    if (ngx_parse_addr(c->pool, &addr, text, len) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: invalid client address \"%*s\" from a "
                      "trusted proxy ignored", ngx_min(len, 64), text);
        return;
    }

    port = ngx_inet_get_port(c->sockaddr);
    ngx_inet_set_port(addr.sockaddr, port);

    text = ngx_pnalloc(c->pool, NGX_SOCKADDR_STRLEN);
    if (text == NULL) {
        return;
    }

    len = ngx_sock_ntop(addr.sockaddr, addr.socklen, text,
                        NGX_SOCKADDR_STRLEN, 0);

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: client address %*s from trusted proxy %V",
                   len, text, &c->addr_text);

    c->sockaddr = addr.sockaddr;
    c->socklen = addr.socklen;
    c->addr_text.data = text;
    c->addr_text.len = len;
}


/* A server frame: header and payload into the output. */

static ngx_int_t
ngx_rustdesk_tcp_ws_frame(ngx_rustdesk_tcp_t *t, ngx_uint_t opcode,
    u_char *payload, size_t len)
{
    ngx_buf_t  *b;

    b = ngx_rustdesk_tcp_reserve(t, NGX_RUSTDESK_WS_HEADER_MAX + len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += ngx_rustdesk_ws_header(b->last, opcode, len);

    if (len) {
        b->last = ngx_cpymem(b->last, payload, len);
    }

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_rustdesk_tcp_ws_close(ngx_rustdesk_tcp_t *t, ngx_uint_t code)
{
    u_char  payload[2];

    payload[0] = (u_char) (code >> 8);
    payload[1] = (u_char) code;

    return ngx_rustdesk_tcp_ws_frame(t, NGX_RUSTDESK_WS_CLOSE_FRAME, payload,
                                     2);
}


/* NGX_OK: all sent; NGX_AGAIN: the rest goes when the socket allows. */

static ngx_int_t
ngx_rustdesk_tcp_flush(ngx_rustdesk_tcp_t *t)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_event_t       *wev;
    ngx_connection_t  *c;

    c = t->session->connection;
    wev = c->write;
    b = t->out;

    if (b == NULL) {
        return NGX_OK;
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            ngx_add_timer(wev, t->timeout);
            return NGX_AGAIN;
        }

        b->pos += n;
    }

    /* all written: the buffer goes back until the next answer */

    if (b->start) {
        ngx_free(b->start);
        b->start = NULL;
        b->pos = NULL;
        b->last = NULL;
        b->end = NULL;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    return NGX_OK;
}


static void
ngx_rustdesk_tcp_close(ngx_rustdesk_tcp_t *t)
{
    ngx_stream_finalize_session(t->session, NGX_STREAM_OK);
}
