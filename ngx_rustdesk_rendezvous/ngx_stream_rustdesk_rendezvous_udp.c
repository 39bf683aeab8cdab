/*
 * The rendezvous server's UDP transport (PROTOCOL.md section 6): one
 * datagram, one RendezvousMessage handed to the protocol layer
 * (..._protocol.c), its answers sent back to the datagram's sender, then
 * the session ends.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"
#include "ngx_rustdesk_heartbeat.h"


/*
 * A UDP session ends after its datagram, unless an answer waits (a
 * RegisterPk's database write): then the session lives on until every
 * waiting answer went out, and nginx hands it any further datagram from
 * the same address, which is read and handled here like the first.
 */

typedef struct {
    ngx_stream_rustdesk_rendezvous_req_t  req;     /* must stay first */
    ngx_uint_t                            pending; /* answers that wait */
    size_t                                sent;    /* for this datagram */
    u_char                               *buf;
} ngx_stream_rustdesk_rendezvous_udp_ctx_t;


#define NGX_RUSTDESK_UDP_MAX  65535
#define NGX_RUSTDESK_UDP_ID   256       /* a heartbeat's id read in place */


static void ngx_stream_rustdesk_rendezvous_udp_read(ngx_event_t *rev);
static void ngx_stream_rustdesk_rendezvous_datagram(
    ngx_stream_rustdesk_rendezvous_udp_ctx_t *ctx, u_char *data, size_t len);
static ngx_int_t ngx_stream_rustdesk_rendezvous_udp_send(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);
static void ngx_stream_rustdesk_rendezvous_udp_finish(
    ngx_stream_rustdesk_rendezvous_req_t *r);


void
ngx_stream_rustdesk_rendezvous_udp(ngx_stream_session_t *s)
{
    ngx_buf_t                                 *b;
    ngx_connection_t                          *c;
    ngx_stream_rustdesk_rendezvous_udp_ctx_t  *ctx;

    c = s->connection;
    b = c->buffer;

    c->log->action = "handling rendezvous datagram";

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_rustdesk_rendezvous_udp_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_stream_set_ctx(s, ctx, ngx_stream_rustdesk_rendezvous_module);

    ctx->req.session = s;
    ctx->req.port = NGX_RUSTDESK_PORT_MAIN;
    ctx->req.send = ngx_stream_rustdesk_rendezvous_udp_send;
    ctx->req.finish = ngx_stream_rustdesk_rendezvous_udp_finish;
    ngx_rustdesk_ip_from_sockaddr(&ctx->req.addr, c->sockaddr, c->socklen);

    ngx_stream_rustdesk_rendezvous_datagram(ctx, b->pos, b->last - b->pos);

    if (ctx->pending == 0) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    c->read->handler = ngx_stream_rustdesk_rendezvous_udp_read;
}


static void
ngx_stream_rustdesk_rendezvous_udp_read(ngx_event_t *rev)
{
    ssize_t                                    n;
    ngx_connection_t                          *c;
    ngx_stream_session_t                      *s;
    ngx_stream_rustdesk_rendezvous_udp_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

    if (ctx->buf == NULL) {
        ctx->buf = ngx_pnalloc(c->pool, NGX_RUSTDESK_UDP_MAX);
        if (ctx->buf == NULL) {
            return;
        }
    }

    while (rev->ready) {
        n = c->recv(c, ctx->buf, NGX_RUSTDESK_UDP_MAX);

        if (n == NGX_AGAIN || n == NGX_ERROR) {
            break;
        }

        ngx_stream_rustdesk_rendezvous_datagram(ctx, ctx->buf, n);
    }
}


static void
ngx_stream_rustdesk_rendezvous_datagram(
    ngx_stream_rustdesk_rendezvous_udp_ctx_t *ctx, u_char *data, size_t len)
{
    size_t               id_len;
    int32_t              serial;
    const uint8_t       *id;
    ngx_rustdesk_msg_t  *m, hb;
    Hbb__RegisterPeer    rp;
    u_char               hb_id[NGX_RUSTDESK_UDP_ID];

    ctx->req.size = len;
    ctx->sent = 0;

    /* the usual heartbeat: the same message, without protobuf-c's mallocs */

    if (ngx_rustdesk_heartbeat_read(data, len, &id, &id_len, &serial)
        && id_len < NGX_RUSTDESK_UDP_ID)
    {
        *ngx_cpymem(hb_id, id, id_len) = '\0';

        hbb__register_peer__init(&rp);
        rp.id = (char *) hb_id;
        rp.serial = serial;

        hbb__rendezvous_message__init(&hb);
        hb.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER;
        hb.register_peer = &rp;

        if (ngx_stream_rustdesk_rendezvous_handle(&ctx->req, &hb)
            == NGX_AGAIN)
        {
            ctx->pending++;
        }

        return;
    }

    m = ngx_rustdesk_msg_unpack(data, len);

    if (m == NULL) {
        ngx_log_error(NGX_LOG_INFO, ctx->req.session->connection->log, 0,
                      "rustdesk: malformed datagram of %uz bytes", len);
        ctx->req.message = NULL;
        ctx->req.result = "MALFORMED";
        return;
    }

    if (ngx_stream_rustdesk_rendezvous_handle(&ctx->req, m) == NGX_AGAIN) {
        ctx->pending++;
    }

    ngx_rustdesk_msg_free(m);
}


/* An answer that waited went out: the session ends after the last one. */

static void
ngx_stream_rustdesk_rendezvous_udp_finish(
    ngx_stream_rustdesk_rendezvous_req_t *r)
{
    ngx_stream_rustdesk_rendezvous_udp_ctx_t  *ctx;

    ctx = (ngx_stream_rustdesk_rendezvous_udp_ctx_t *) r;

    if (--ctx->pending == 0) {
        ngx_stream_finalize_session(r->session, NGX_STREAM_OK);
    }
}


/*
 * No more bytes back than came, unless the source has proven its address
 * (PROTOCOL.md section 6): a spoofed source would make the server an
 * amplifier aimed at a third party.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_udp_send(ngx_stream_rustdesk_rendezvous_req_t *r,
    ngx_rustdesk_msg_t *m)
{
    u_char                                    *buf, *last;
    size_t                                     size;
    ssize_t                                    n;
    ngx_connection_t                          *c;
    ngx_stream_rustdesk_rendezvous_udp_ctx_t  *ctx;

    c = r->session->connection;
    ctx = (ngx_stream_rustdesk_rendezvous_udp_ctx_t *) r;

    size = ngx_rustdesk_msg_size(m, 0);

    if (!r->proven && ctx->sent + size > r->size) {
        ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: %s of %uz bytes withheld: the datagram "
                       "had %uz", ngx_rustdesk_msg_type(m), size, r->size);
        return NGX_DECLINED;
    }

    ctx->sent += size;

    buf = ngx_pnalloc(c->pool, size);
    if (buf == NULL) {
        return NGX_OK;
    }

    last = ngx_rustdesk_msg_pack(m, 0, buf);

    n = c->send(c, buf, last - buf);

    if (n != last - buf) {
        /* UDP: a lost answer is a lost datagram, the client retries */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: answer of %z bytes not sent", last - buf);
    }

    return NGX_OK;
}
