/*
 * Forwarding a pair with a WebSocket side (PROTOCOL.md section 2): bytes
 * are not passed through but messages are.  Each side's input is decoded
 * (TCP frames or WebSocket frames) and every non-empty message is written
 * to the other side in its own framing: a TCP frame's payload becomes one
 * binary WebSocket message and the other way round.  Empty messages are
 * dropped, as hbbr drops them; a WebSocket ping is answered, a close ends
 * the pair.
 *
 * side->buf holds what was read from a side and not yet decoded,
 * side->out what is encoded for a side and not yet written.  A message
 * that does not fit into the other side's output waits in its decoder
 * (side->held) until that output drains.  A pong waits (side->pong) until
 * everything before it is written, and a ping that comes meanwhile
 * replaces it: only the latest is answered when pongs back up (RFC 6455
 * section 5.5.3).  So a side's output never holds more than the other
 * side's messages let in (one buffer, or one message), a pong and a
 * close, whatever a client sends without reading.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_relay_module.h"


#define NGX_RUSTDESK_RELAY_MSG_START  4096    /* a decoder's first buffer */


static ngx_int_t ngx_stream_rustdesk_relay_next(
    ngx_stream_rustdesk_relay_side_t *side, u_char **payload, size_t *len);
static ngx_int_t ngx_stream_rustdesk_relay_put(
    ngx_stream_rustdesk_relay_side_t *side, ngx_uint_t opcode,
    u_char *payload, size_t len);
static u_char *ngx_stream_rustdesk_relay_grow(u_char *old, size_t len,
    size_t need, ngx_log_t *log);


/* At pairing: a decoder for each side, with a small buffer. */

ngx_int_t
ngx_stream_rustdesk_relay_message_init(ngx_stream_rustdesk_relay_side_t *side,
    size_t max)
{
    u_char            *buf;
    ngx_connection_t  *c;

    c = side->connection;

    buf = ngx_alloc(NGX_RUSTDESK_RELAY_MSG_START, c->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    side->msg = buf;

    if (side->ws) {
        side->wsd = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_ws_decoder_t));
        side->pong = ngx_pnalloc(c->pool, NGX_RUSTDESK_WS_CONTROL_MAX);

        if (side->wsd == NULL || side->pong == NULL) {
            return NGX_ERROR;
        }

        ngx_rustdesk_ws_decoder_init(side->wsd, buf,
                                     NGX_RUSTDESK_RELAY_MSG_START, max);
        return NGX_OK;
    }

    side->frame = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_frame_decoder_t));
    if (side->frame == NULL) {
        return NGX_ERROR;
    }

    ngx_rustdesk_frame_decoder_init(side->frame, buf, max);
    ngx_rustdesk_frame_decoder_set_buf(side->frame, buf,
                                       NGX_RUSTDESK_RELAY_MSG_START);

    return NGX_OK;
}


void
ngx_stream_rustdesk_relay_message_free(ngx_stream_rustdesk_relay_side_t *side)
{
    if (side->msg) {
        ngx_free(side->msg);
        side->msg = NULL;
    }

    if (side->out) {
        ngx_stream_rustdesk_relay_buf_put(side->out);
        side->out = NULL;
    }
}


/*
 * Decodes src's input and encodes each message for dst, while dst's
 * output has room (an empty output always takes one message, however
 * large).
 */

ngx_int_t
ngx_stream_rustdesk_relay_message_decode(ngx_stream_rustdesk_relay_pair_t *p,
    ngx_stream_rustdesk_relay_side_t *src,
    ngx_stream_rustdesk_relay_side_t *dst)
{
    u_char     *payload;
    size_t      len, room;
    ngx_int_t   rc;

    for ( ;; ) {

        if (!src->held) {
            rc = ngx_stream_rustdesk_relay_next(src, &payload, &len);

            if (rc != NGX_OK) {
                return rc;
            }

            if (len == 0) {
                continue;
            }

            src->held = 1;
            src->held_payload = payload;
            src->held_len = len;
        }

        payload = src->held_payload;
        len = src->held_len;

        room = dst->out ? (size_t) (dst->out->end - dst->out->last) : 0;

        if (dst->out && dst->out->pos < dst->out->last
            && room < len + NGX_RUSTDESK_WS_HEADER_MAX)
        {
            /* it waits until dst has taken what it has */
            return NGX_OK;
        }

        if (ngx_stream_rustdesk_relay_put(dst, NGX_RUSTDESK_WS_BINARY,
                                          payload, len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        src->held = 0;
    }
}


/*
 * The next message from side's input: NGX_OK with it, NGX_AGAIN when the
 * input holds no whole one, NGX_DONE on a WebSocket close, NGX_ERROR on
 * anything malformed.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_next(ngx_stream_rustdesk_relay_side_t *side,
    u_char **payload, size_t *len)
{
    u_char                        *buf;
    size_t                         size;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_connection_t              *c;
    ngx_rustdesk_ws_rc_e           event;
    ngx_rustdesk_ws_reply_t        reply;
    ngx_rustdesk_ws_decoder_t     *wd;
    ngx_rustdesk_frame_decoder_t  *fd;

    b = side->buf;
    c = side->connection;

    if (b == NULL) {
        return NGX_AGAIN;
    }

    if (!side->ws) {
        fd = side->frame;

        for ( ;; ) {
            switch (ngx_rustdesk_frame_decode(fd, &b->pos, b->last)) {

            case NGX_RUSTDESK_FRAME_AGAIN:
                return NGX_AGAIN;

            case NGX_RUSTDESK_FRAME_TOO_BIG:
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "rustdesk: relay client sent a frame of %uz "
                              "bytes, more than %uz", fd->len, fd->max);
                return NGX_ERROR;

            case NGX_RUSTDESK_FRAME_GROW:
                buf = ngx_stream_rustdesk_relay_grow(side->msg, 0, fd->len,
                                                     c->log);
                if (buf == NULL) {
                    return NGX_ERROR;
                }

                side->msg = buf;
                ngx_rustdesk_frame_decoder_set_buf(fd, buf, fd->len);
                continue;

            case NGX_RUSTDESK_FRAME_DONE:
                *payload = fd->buf;
                *len = fd->len;
                return NGX_OK;
            }
        }
    }

    wd = side->wsd;

    for ( ;; ) {
        event = ngx_rustdesk_ws_decode(wd, &b->pos, b->last);

        switch (event) {

        case NGX_RUSTDESK_WS_AGAIN:
            return NGX_AGAIN;

        case NGX_RUSTDESK_WS_GROW:
            /* doubling: many small fragments must not copy over and over */
            size = ngx_min(ngx_max(wd->need, 2 * wd->cap), wd->max);

            buf = ngx_stream_rustdesk_relay_grow(side->msg, wd->len, size,
                                                 c->log);
            if (buf == NULL) {
                return NGX_ERROR;
            }

            side->msg = buf;
            ngx_rustdesk_ws_decoder_set_buf(wd, buf, size);
            continue;

        case NGX_RUSTDESK_WS_PING:
            /* answered once the side's output is written (message_write) */

            if (side->pong_owed) {
                ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                               "rustdesk: websocket ping replaces one "
                               "not answered yet");
            }

            ngx_memcpy(side->pong, wd->ctl, wd->ctl_len);
            side->pong_len = wd->ctl_len;
            side->pong_owed = 1;
            continue;

        case NGX_RUSTDESK_WS_PONG:
        case NGX_RUSTDESK_WS_CLOSE:
        case NGX_RUSTDESK_WS_ERROR:
            if (event == NGX_RUSTDESK_WS_CLOSE) {
                ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                               "rustdesk: websocket close %ui", wd->code);

            } else if (event == NGX_RUSTDESK_WS_ERROR) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "rustdesk: websocket relay client sent %s",
                              wd->reason);
            }

            /* what to write back (before the end, if it is one) */

            ngx_rustdesk_ws_control(wd, event, &reply);

            rc = NGX_OK;

            if (reply.opcode) {
                rc = ngx_stream_rustdesk_relay_put(side, reply.opcode,
                                                   (u_char *) reply.payload,
                                                   reply.len);
            }

            if (reply.end) {
                return (reply.end == 1) ? NGX_DONE : NGX_ERROR;
            }

            if (rc != NGX_OK) {
                return NGX_ERROR;
            }
            continue;

        case NGX_RUSTDESK_WS_MESSAGE:
            *payload = wd->buf;
            *len = wd->len;
            return NGX_OK;
        }
    }
}


/*
 * Writes what is encoded for side, then the pong it is owed, which goes
 * only into an empty output: NGX_OK when all is written, NGX_AGAIN when
 * the side must be waited for, NGX_ERROR.
 */

ngx_int_t
ngx_stream_rustdesk_relay_message_write(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_int_t  rc;

    for ( ;; ) {
        rc = ngx_stream_rustdesk_relay_send(side->connection, side->out);

        if (rc != NGX_OK) {
            return rc;
        }

        /* all written: the buffer goes back until the next message */

        if (side->out) {
            ngx_stream_rustdesk_relay_buf_put(side->out);
            side->out = NULL;
        }

        if (!side->pong_owed) {
            return NGX_OK;
        }

        side->pong_owed = 0;

        if (ngx_stream_rustdesk_relay_put(side, NGX_RUSTDESK_WS_PONG_FRAME,
                                          side->pong, side->pong_len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }
}


/*
 * Before a pair with a WebSocket side closes: one try at writing what a
 * side is still owed (a close frame, most often).
 */

void
ngx_stream_rustdesk_relay_message_flush(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    b = side->out;
    c = side->connection;

    if (b && b->pos < b->last && !c->write->error) {
        (void) c->send(c, b->pos, b->last - b->pos);
    }
}


/* Appends one message to side's output, in side's framing. */

static ngx_int_t
ngx_stream_rustdesk_relay_put(ngx_stream_rustdesk_relay_side_t *side,
    ngx_uint_t opcode, u_char *payload, size_t len)
{
    size_t      need;
    ngx_buf_t  *b, *nb;

    need = NGX_RUSTDESK_WS_HEADER_MAX + len;
    b = side->out;

    if (b && (size_t) (b->end - b->last) < need && b->pos > b->start) {
        b->last = ngx_movemem(b->start, b->pos, b->last - b->pos);
        b->pos = b->start;
    }

    if (b == NULL || (size_t) (b->end - b->last) < need) {
        need += b ? (size_t) (b->last - b->pos) : 0;

        /* a standard buffer, or one as large as a large message needs */

        nb = ngx_stream_rustdesk_relay_buf_get(0);

        if (nb && (size_t) (nb->end - nb->start) < need) {
            ngx_stream_rustdesk_relay_buf_put(nb);
            nb = ngx_stream_rustdesk_relay_buf_get(need);
        }

        if (nb == NULL) {
            return NGX_ERROR;
        }

        if (b) {
            nb->last = ngx_cpymem(nb->last, b->pos, b->last - b->pos);
            ngx_stream_rustdesk_relay_buf_put(b);
        }

        side->out = nb;
        b = nb;
    }

    if (side->ws) {
        b->last += ngx_rustdesk_ws_header(b->last, opcode, len);

    } else {
        b->last += ngx_rustdesk_frame_write_header(b->last, len);
    }

    b->last = ngx_cpymem(b->last, payload, len);

    return NGX_OK;
}


/* A bigger message buffer, with the first len bytes of the old one. */

static u_char *
ngx_stream_rustdesk_relay_grow(u_char *old, size_t len, size_t need,
    ngx_log_t *log)
{
    u_char  *buf;

    buf = ngx_alloc(need, log);
    if (buf == NULL) {
        return NULL;
    }

    ngx_memcpy(buf, old, len);
    ngx_free(old);

    return buf;
}
