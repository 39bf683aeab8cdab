/*
 * WebSocket framing of a framed TCP session (PROTOCOL.md section 2): the
 * upgrade request first, then one binary message per RendezvousMessage;
 * control frames are answered as ngx_rustdesk_ws_control says.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include <ngx_sha1.h>

#include "ngx_rustdesk_tcp.h"
#include "ngx_rustdesk_real_ip.h"


static ngx_int_t ngx_rustdesk_tcp_upgrade(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_ws_request_t *r);
static ngx_int_t ngx_rustdesk_tcp_ws_control(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_ws_rc_e event);


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


/*
 * WebSocket (PROTOCOL.md section 2): the upgrade request first, then one
 * binary message per RendezvousMessage; pings are answered, a close is
 * echoed, a protocol error closes with its code.
 */

ngx_int_t
ngx_rustdesk_tcp_ws_feed(ngx_rustdesk_tcp_t *t, u_char **pos, u_char *last)
{
    u_char                     *buf;
    size_t                      n, extra;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_connection_t           *c;
    ngx_rustdesk_tcp_ws_t      *ws;
    ngx_rustdesk_ws_request_t   r;
    ngx_rustdesk_ws_decoder_t  *d;
    ngx_rustdesk_ws_rc_e        event;

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

        rc = ngx_rustdesk_tcp_upgrade(t, &r);

        if (rc == NGX_DECLINED) {
            /* refused: the answer is written, then the end */
            return ngx_rustdesk_tcp_done(t);
        }

        if (rc != NGX_OK) {
            ngx_rustdesk_tcp_close(t);
            return NGX_ERROR;
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

        event = ngx_rustdesk_ws_decode(d, pos, last);

        switch (event) {

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
        case NGX_RUSTDESK_WS_PONG:
        case NGX_RUSTDESK_WS_CLOSE:
        case NGX_RUSTDESK_WS_ERROR:
            rc = ngx_rustdesk_tcp_ws_control(t, event);

            if (rc != NGX_OK) {
                return rc;
            }
            continue;

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


/*
 * A ping, pong, close or protocol error (ngx_rustdesk_ws_control says
 * what it calls for): NGX_OK to read on, else the session ends.
 */

static ngx_int_t
ngx_rustdesk_tcp_ws_control(ngx_rustdesk_tcp_t *t, ngx_rustdesk_ws_rc_e event)
{
    ngx_int_t                   rc;
    ngx_connection_t           *c;
    ngx_rustdesk_ws_reply_t     r;
    ngx_rustdesk_ws_decoder_t  *d;

    c = t->session->connection;
    d = &t->ws->decoder;

    if (event == NGX_RUSTDESK_WS_CLOSE) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: websocket close %ui", d->code);

    } else if (event == NGX_RUSTDESK_WS_ERROR) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: websocket client sent %s, closing with "
                      "%ui", d->reason, d->code);
    }

    ngx_rustdesk_ws_control(d, event, &r);

    rc = NGX_OK;

    if (r.opcode) {
        rc = ngx_rustdesk_tcp_ws_frame(t, r.opcode, (u_char *) r.payload,
                                       r.len);
    }

    if (rc != NGX_OK) {
        ngx_rustdesk_tcp_close(t);
        return NGX_ERROR;
    }

    if (r.end) {
        /* the close handshake: written, then the end */
        return ngx_rustdesk_tcp_done(t);
    }

    return NGX_OK;
}


/*
 * The answer to the upgrade request: NGX_OK for 101, NGX_DECLINED for an
 * HTTP error (the end once it is written), NGX_ERROR when it cannot be
 * written.
 */

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

        if (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) {
            return NGX_ERROR;
        }

        return NGX_DECLINED;
    }

    ngx_rustdesk_real_ip(c, r, t->ws->real_ip_from, t->ws->real_ip_header);

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


/* A message as one binary message, without the TCP frame header. */

ngx_int_t
ngx_rustdesk_tcp_ws_send(ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m)
{
    size_t      len;
    ngx_buf_t  *b;

    len = ngx_rustdesk_msg_size(m, 0);

    b = ngx_rustdesk_tcp_reserve(t, NGX_RUSTDESK_WS_HEADER_MAX + len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last += ngx_rustdesk_ws_header(b->last, NGX_RUSTDESK_WS_BINARY, len);
    b->last = ngx_rustdesk_msg_pack(m, 0, b->last);

    return (ngx_rustdesk_tcp_flush(t) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* A server frame: header and payload into the output. */

ngx_int_t
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
