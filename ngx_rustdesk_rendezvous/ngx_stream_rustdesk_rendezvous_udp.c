/*
 * The rendezvous server's UDP transport (PROTOCOL.md section 6): one
 * datagram, one RendezvousMessage handed to the file that decides it
 * (RegisterPeer: ..._register.c; ConfigUpdate, SoftwareUpdate:
 * ..._config_update.c; PunchHoleSent: ..._punch.c), at most one answer to
 * its sender, then the session ends.  PunchHoleRequest and LocalAddr over UDP are ignored:
 * answering them would let spoofed datagrams reflect traffic at third
 * parties.  A PunchHoleSent over UDP only goes to the requester waiting
 * on its TCP connection (PROTOCOL.md section 8), never back to the sender.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


/*
 * A UDP session ends after its datagram, unless a RegisterPk waits for its
 * database write: then the session lives on until every write it started
 * is done, and nginx hands it any further datagram from the same address,
 * which is read and handled here like the first.
 */

typedef struct {
    ngx_uint_t    pending;     /* database writes under way */
    u_char       *buf;
} ngx_stream_rustdesk_rendezvous_udp_ctx_t;


#define NGX_RUSTDESK_UDP_MAX  65535


static void ngx_stream_rustdesk_rendezvous_udp_read(ngx_event_t *rev);
static void ngx_stream_rustdesk_rendezvous_datagram(ngx_stream_session_t *s,
    u_char *data, size_t len);
static ngx_int_t ngx_stream_rustdesk_rendezvous_udp_register_pk(
    ngx_stream_session_t *s, Hbb__RegisterPk *rk, ngx_rustdesk_ip_t *addr);
static void ngx_stream_rustdesk_rendezvous_register_pk_written(void *data,
    ngx_int_t rc);
static void ngx_stream_rustdesk_rendezvous_register_pk_reply(
    ngx_stream_session_t *s, Hbb__RegisterPkResponse__Result result);


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

    ngx_stream_rustdesk_rendezvous_datagram(s, b->pos, b->last - b->pos);

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

        ngx_stream_rustdesk_rendezvous_datagram(s, ctx->buf, n);
    }
}


static void
ngx_stream_rustdesk_rendezvous_datagram(ngx_stream_session_t *s, u_char *data,
    size_t len)
{
    ngx_connection_t                          *c;
    ngx_rustdesk_ip_t                          addr;
    ngx_rustdesk_msg_t                        *m;
    ngx_stream_rustdesk_rendezvous_udp_ctx_t  *ctx;

    c = s->connection;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

    m = ngx_rustdesk_msg_unpack(data, len);

    if (m == NULL) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: malformed datagram of %uz bytes", len);
        return;
    }

    ngx_rustdesk_ip_from_sockaddr(&addr, c->sockaddr, c->socklen);

    switch (m->union_case) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER:
        ngx_stream_rustdesk_rendezvous_register_peer(s, m->register_peer,
                                                     &addr);
        break;

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK:
        if (ngx_stream_rustdesk_rendezvous_udp_register_pk(s, m->register_pk,
                                                           &addr)
            == NGX_AGAIN)
        {
            /* answered when the database write is done */
            ctx->pending++;
        }

        break;

    case HBB__RENDEZVOUS_MESSAGE__UNION_CONFIGURE_UPDATE:
        ngx_stream_rustdesk_rendezvous_configure(s, m->configure_update,
                                                 &addr);
        break;

    case HBB__RENDEZVOUS_MESSAGE__UNION_SOFTWARE_UPDATE:
        ngx_stream_rustdesk_rendezvous_software(s, m->software_update);
        break;

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_SENT:
        ngx_stream_rustdesk_rendezvous_udp_hole_sent(s, m->punch_hole_sent,
                                                     &addr);
        break;

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: udp %s ignored", ngx_rustdesk_msg_name(m));
        break;
    }

    ngx_rustdesk_msg_free(m);
}


/*
 * RegisterPk (PROTOCOL.md section 6).  Returns NGX_AGAIN when the answer
 * waits for the database write, NGX_OK when it was sent (or none is due).
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_udp_register_pk(ngx_stream_session_t *s,
    Hbb__RegisterPk *rk, ngx_rustdesk_ip_t *addr)
{
    ngx_int_t                             rc;
    ngx_connection_t                     *c;
    ngx_stream_rustdesk_rendezvous_pk_t   pk;

    c = s->connection;

    pk.req.addr = *addr;
    pk.req.stream = NGX_RUSTDESK_STREAM_NONE;

    rc = ngx_stream_rustdesk_rendezvous_register_pk(s, rk, &pk, c->pool);

    if (rc == NGX_DONE) {
        return NGX_OK;
    }

    if (pk.result == HBB__REGISTER_PK_RESPONSE__RESULT__OK
        && pk.change.write)
    {
        rc = ngx_stream_rustdesk_rendezvous_register_write(&pk, c->pool,
                             ngx_stream_rustdesk_rendezvous_register_pk_written,
                             s, c->log);
        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        pk.result = HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;
    }

    ngx_stream_rustdesk_rendezvous_register_pk_reply(s, pk.result);

    return NGX_OK;
}


static void
ngx_stream_rustdesk_rendezvous_register_pk_written(void *data, ngx_int_t rc)
{
    ngx_stream_session_t  *s = data;

    ngx_stream_rustdesk_rendezvous_udp_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

    ngx_stream_rustdesk_rendezvous_register_pk_reply(s,
                   rc == NGX_OK ? HBB__REGISTER_PK_RESPONSE__RESULT__OK
                                : HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR);

    if (--ctx->pending == 0) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
    }
}


static void
ngx_stream_rustdesk_rendezvous_register_pk_reply(ngx_stream_session_t *s,
    Hbb__RegisterPkResponse__Result result)
{
    ngx_rustdesk_msg_t        out;
    Hbb__RegisterPkResponse   rpr;

    hbb__rendezvous_message__init(&out);
    hbb__register_pk_response__init(&rpr);

    rpr.result = result;
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK_RESPONSE;
    out.register_pk_response = &rpr;

    ngx_stream_rustdesk_rendezvous_udp_send(s, &out);
}


void
ngx_stream_rustdesk_rendezvous_udp_send(ngx_stream_session_t *s,
    ngx_rustdesk_msg_t *m)
{
    u_char            *buf, *last;
    ssize_t            n;
    ngx_connection_t  *c;

    c = s->connection;

    buf = ngx_pnalloc(c->pool, ngx_rustdesk_msg_size(m, 0));
    if (buf == NULL) {
        return;
    }

    last = ngx_rustdesk_msg_pack(m, 0, buf);

    n = c->send(c, buf, last - buf);

    if (n != last - buf) {
        /* UDP: a lost answer is a lost datagram, the client retries */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: answer of %z bytes not sent", last - buf);
    }
}
