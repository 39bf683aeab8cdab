/*
 * Framed TCP session: read frames, dispatch messages, write answers.  Its
 * secure TCP layer is in ngx_rustdesk_tcp_secure.c, its WebSocket framing
 * in ngx_rustdesk_tcp_ws.c.
 *
 * The read timer is the session's clock.  Set once at the start, it is the
 * deadline of the handshake and the first message (counted from accept,
 * never restarted by bytes that trickle in); once a message has reached
 * the handler it is restarted after every read (the idle timeout, or a
 * registered stream's keep-alive through t->idle).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_tcp.h"


/*
 * Socket reads go to the reader's stack: everything read is consumed (or
 * copied by the decoders) before the read handler returns, so an idle
 * connection holds no input buffer.  The output buffer is taken when an
 * answer is queued and given back once it is written.
 */
#define NGX_RUSTDESK_TCP_IN_SIZE     4096    /* one socket read */
#define NGX_RUSTDESK_TCP_OUT_SIZE    1024

/* socket reads in one event: then the others' turn */
#define NGX_RUSTDESK_TCP_READS       16


static void ngx_rustdesk_tcp_read_handler(ngx_event_t *rev);
static void ngx_rustdesk_tcp_write_handler(ngx_event_t *wev);
static void ngx_rustdesk_tcp_on_read(ngx_rustdesk_tcp_t *t);
static void ngx_rustdesk_tcp_on_write(ngx_rustdesk_tcp_t *t);
static ngx_int_t ngx_rustdesk_tcp_feed(ngx_rustdesk_tcp_t *t, u_char **pos,
    u_char *last);
static ngx_int_t ngx_rustdesk_tcp_send_frame(ngx_rustdesk_tcp_t *t,
    u_char *payload, size_t len);
static void ngx_rustdesk_tcp_free_out(void *data);


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


void
ngx_rustdesk_tcp_start(ngx_rustdesk_tcp_t *t)
{
    ngx_int_t          rc;
    ngx_buf_t         *b;
    ngx_msec_t         elapsed;
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

    /*
     * the deadline of the handshake and the first message, from accept
     * (a preread phase or a TLS handshake took part of it)
     */

    elapsed = ngx_current_msec - c->start_time;
    ngx_add_timer(c->read, elapsed < t->timeout ? t->timeout - elapsed : 1);

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
    ngx_uint_t         reads;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    c = t->session->connection;
    rev = c->read;

    if (rev->timedout) {
        rev->timedout = 0;

        if (!t->received && !t->done && !t->failed && !c->close) {
            ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                          "rustdesk: client timed out: no %s within %M ms",
                          (t->ws && !t->ws->upgraded) ? "websocket upgrade"
                                                      : "message",
                          t->timeout);

            ngx_rustdesk_tcp_close(t);
            return;
        }

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
        /*
         * answered, waiting for the output to drain: a read event may be
         * the client's reset, which the write tells (and it ends here)
         */

        if (ngx_rustdesk_tcp_flush(t) != NGX_AGAIN) {
            ngx_rustdesk_tcp_close(t);
        }

        return;
    }

    for (reads = 0; rev->ready; reads++) {

        if (reads == NGX_RUSTDESK_TCP_READS) {
            /* the rest in the next cycle, after the other connections */
            ngx_post_event(rev, &ngx_posted_next_events);
            break;
        }

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

    if (t->received) {
        /* idle from here; before the first message the deadline stands */
        ngx_add_timer(rev, t->timeout);
    }
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
    u_char     *payload;
    size_t      len, n, hlen;
    ngx_buf_t  *b;

    if (t->ws) {
        return ngx_rustdesk_tcp_ws_send(t, m);
    }

    /*
     * the message is packed where its frame's content goes (after the
     * MAC's room once secure TCP is on) and sealed there
     */

    len = ngx_rustdesk_msg_size(m, 0);
    n = len + ngx_rustdesk_tcp_secure_overhead(t);
    hlen = ngx_rustdesk_frame_header_size(n);

    b = hlen ? ngx_rustdesk_tcp_reserve(t, hlen + n) : NULL;
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += ngx_rustdesk_frame_write_header(b->last, n);
    payload = b->last + (n - len);
    (void) ngx_rustdesk_msg_pack(m, 0, payload);

    ngx_rustdesk_tcp_secure_seal(t, b->last, payload, len);
    b->last += n;

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
    size_t      hlen, n;
    ngx_buf_t  *b;

    n = len + ngx_rustdesk_tcp_secure_overhead(t);

    hlen = ngx_rustdesk_frame_header_size(n);
    if (hlen == 0) {
        return NGX_ERROR;
    }

    b = ngx_rustdesk_tcp_reserve(t, hlen + n);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += ngx_rustdesk_frame_write_header(b->last, n);

    ngx_rustdesk_tcp_secure_seal(t, b->last, payload, len);
    b->last += n;

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* Room for size more bytes of output, or NULL: close the connection. */

ngx_buf_t *
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
        return ngx_rustdesk_tcp_ws_feed(t, pos, last);
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

ngx_int_t
ngx_rustdesk_tcp_dispatch(ngx_rustdesk_tcp_t *t, u_char *payload, size_t len,
    u_char *rest, u_char *last)
{
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

    if (t->secure && ngx_rustdesk_tcp_secure_open(t, payload, &len) != NGX_OK)
    {
        ngx_rustdesk_tcp_close(t);
        return NGX_ERROR;
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
        /* the first message: the client's KeyExchange, or plain from here */

        rc = ngx_rustdesk_tcp_secure_decide(t, m);

        if (rc != NGX_DECLINED) {
            ngx_rustdesk_msg_free(m);

            if (rc != NGX_OK) {
                ngx_rustdesk_tcp_close(t);
                return NGX_ERROR;
            }

            return NGX_OK;
        }
    }

    /* what follows the message, for a handler that takes the connection */
    t->rest = rest;
    t->rest_last = last;

    /* the first message is in: the deadline gives way to the idle timer */
    t->received = 1;

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


/* Close once what is queued has been written. */

ngx_int_t
ngx_rustdesk_tcp_done(ngx_rustdesk_tcp_t *t)
{
    t->done = 1;

    if (t->failed || t->out == NULL || t->out->pos == t->out->last) {
        ngx_rustdesk_tcp_close(t);
    }

    return NGX_DONE;
}


/*
 * NGX_OK: all sent; NGX_AGAIN: the rest goes when the socket allows;
 * NGX_ERROR: the session is failed and ends (at once if the caller
 * closes it, else from a posted event), so that a client that reset its
 * connection never keeps it open until a timeout with output queued.
 */

ngx_int_t
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

    if (t->failed) {
        return NGX_ERROR;
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            ngx_rustdesk_tcp_fail(t);
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_rustdesk_tcp_fail(t);
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


void
ngx_rustdesk_tcp_close(ngx_rustdesk_tcp_t *t)
{
    ngx_stream_finalize_session(t->session, NGX_STREAM_OK);
}
