/*
 * Framed TCP session: read frames, dispatch messages, write answers.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_tcp.h"


#define NGX_RUSTDESK_TCP_IN_SIZE     1024    /* socket reads */
#define NGX_RUSTDESK_TCP_FRAME_SIZE  512     /* first payload buffer */
#define NGX_RUSTDESK_TCP_OUT_SIZE    1024


static ngx_int_t ngx_rustdesk_tcp_feed(ngx_rustdesk_tcp_t *t, u_char **pos,
    u_char *last);
static ngx_int_t ngx_rustdesk_tcp_flush(ngx_rustdesk_tcp_t *t);
static ngx_buf_t *ngx_rustdesk_tcp_reserve(ngx_rustdesk_tcp_t *t,
    size_t size);
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

    /* the output buffer comes with the first answer: a relay never sends */
    t->in = ngx_create_temp_buf(c->pool, NGX_RUSTDESK_TCP_IN_SIZE);

    cap = ngx_min(max, NGX_RUSTDESK_TCP_FRAME_SIZE);
    buf = ngx_pnalloc(c->pool, cap);

    if (t->in == NULL || buf == NULL) {
        return NULL;
    }

    ngx_rustdesk_frame_decoder_init(&t->decoder, buf, max);
    ngx_rustdesk_frame_decoder_set_buf(&t->decoder, buf, cap);

    return t;
}


void
ngx_rustdesk_tcp_start(ngx_rustdesk_tcp_t *t, ngx_event_handler_pt read,
    ngx_event_handler_pt write)
{
    ngx_int_t          rc;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = t->session->connection;

    c->read->handler = read;
    c->write->handler = write;

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


void
ngx_rustdesk_tcp_on_read(ngx_rustdesk_tcp_t *t)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    c = t->session->connection;
    rev = c->read;

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "rustdesk: client timed out");
        ngx_rustdesk_tcp_close(t);
        return;
    }

    if (t->failed || c->close) {
        ngx_rustdesk_tcp_close(t);
        return;
    }

    if (t->done) {
        /* answered: only waiting for the write side to drain */
        return;
    }

    b = t->in;

    while (rev->ready) {
        n = c->recv(c, b->start, b->end - b->start);

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

        b->pos = b->start;
        b->last = b->start + n;

        if (ngx_rustdesk_tcp_feed(t, &b->pos, b->last) != NGX_OK) {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_rustdesk_tcp_close(t);
        return;
    }

    ngx_add_timer(rev, t->timeout);
}


void
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
    ngx_buf_t  *b;

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
    size_t      hlen;
    ngx_buf_t  *b;

    hlen = ngx_rustdesk_frame_header_size(len);
    if (hlen == 0) {
        return NGX_ERROR;
    }

    b = ngx_rustdesk_tcp_reserve(t, hlen + len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += ngx_rustdesk_frame_write_header(b->last, len);
    b->last = ngx_cpymem(b->last, payload, len);

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* Room for size more bytes of output, or NULL: close the connection. */

static ngx_buf_t *
ngx_rustdesk_tcp_reserve(ngx_rustdesk_tcp_t *t, size_t size)
{
    ngx_buf_t  *b;

    b = t->out;

    if (b == NULL) {
        b = ngx_create_temp_buf(t->session->connection->pool,
                                ngx_max(size, NGX_RUSTDESK_TCP_OUT_SIZE));
        t->out = b;
        return b;
    }

    if ((size_t) (b->end - b->last) < size && b->pos > b->start) {
        b->last = ngx_movemem(b->start, b->pos, b->last - b->pos);
        b->pos = b->start;
    }

    if ((size_t) (b->end - b->last) >= size) {
        return b;
    }

    if (b->pos < b->last) {
        /* a client that does not read what it is sent is let go */
        ngx_log_error(NGX_LOG_INFO, t->session->connection->log, 0,
                      "rustdesk: client does not read its answers");
        return NULL;
    }

    b = ngx_create_temp_buf(t->session->connection->pool, size);
    if (b == NULL) {
        return NULL;
    }

    t->out = b;

    return b;
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
    ngx_rustdesk_msg_t            *m;
    ngx_rustdesk_frame_decoder_t  *d;

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

        m = ngx_rustdesk_msg_unpack(d->buf, d->len);

        if (m == NULL) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: client sent a malformed message "
                          "of %uz bytes", d->len);
            ngx_rustdesk_tcp_close(t);
            return NGX_ERROR;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: message %s", ngx_rustdesk_msg_name(m));

        /* what follows the frame, for a handler that takes the connection */
        t->rest = *pos;
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
            t->done = 1;

            if (t->out == NULL || t->out->pos == t->out->last) {
                ngx_rustdesk_tcp_close(t);
            }

            return NGX_DONE;
        }
    }

    return NGX_OK;
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

    b->pos = b->start;
    b->last = b->start;

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
