/*
 * The rendezvous server's TCP and WebSocket transport (PROTOCOL.md
 * sections 1, 2 and 8): a connection on the main port, the WebSocket port
 * or the NAT-test port becomes a framed session (common/ngx_rustdesk_tcp.c)
 * whose decoded messages go to the protocol layer (..._protocol.c), which
 * answers on the session.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


static ngx_int_t ngx_stream_rustdesk_rendezvous_tcp_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_tcp_send(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);


void
ngx_stream_rustdesk_rendezvous_tcp(ngx_stream_session_t *s)
{
    ngx_connection_t                            *c;
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_srv_conf_t   *rscf;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    c = s->connection;

    rscf = ngx_stream_get_module_srv_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_rustdesk_rendezvous_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_stream_set_ctx(s, ctx, ngx_stream_rustdesk_rendezvous_module);

    ctx->req.session = s;
    ctx->req.send = ngx_stream_rustdesk_rendezvous_tcp_send;
    ngx_rustdesk_ip_from_sockaddr(&ctx->req.addr, c->sockaddr, c->socklen);

    if (rscf->role == NGX_RUSTDESK_ROLE_NAT_TEST) {
        c->log->action = "answering NAT test";
        ctx->req.port = NGX_RUSTDESK_PORT_NAT;

    } else if (rscf->websocket) {
        c->log->action = "upgrading to websocket";
        ctx->req.port = NGX_RUSTDESK_PORT_WS;

    } else {
        c->log->action = "handling rendezvous request";
        ctx->req.port = NGX_RUSTDESK_PORT_MAIN;
    }

    ctx->req.stream = ngx_rustdesk_tcp_create(s, rscf->max_message,
                                  rscf->timeout,
                                  ngx_stream_rustdesk_rendezvous_tcp_msg, ctx);
    if (ctx->req.stream == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rscf->role == NGX_RUSTDESK_ROLE_RENDEZVOUS) {
        /* empty frames are heartbeats here (PROTOCOL.md section 8) */
        ctx->req.stream->heartbeat =
                               ngx_stream_rustdesk_rendezvous_stream_heartbeat;
    }

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ctx->req.port == NGX_RUSTDESK_PORT_WS) {
        if (ngx_rustdesk_tcp_websocket(ctx->req.stream,
                                       rmcf->shared->real_ip_from,
                                       rmcf->shared->real_ip_header)
            != NGX_OK)
        {
            ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

    } else if (rscf->role == NGX_RUSTDESK_ROLE_RENDEZVOUS
               && rmcf->shared->keys)
    {
        /*
         * secure TCP on the main port (PROTOCOL.md section 8): offered at
         * once; clients that insist on it (logged-in ones) wait for it,
         * the others send their request and stay plain
         */

        if (ngx_rustdesk_tcp_secure(ctx->req.stream, rmcf->shared->keys->sk)
            != NGX_OK)
        {
            ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_rustdesk_tcp_start(ctx->req.stream);
}


/*
 * A decoded message.  On the WebSocket port, the client's address is known
 * once the upgrade is done (a trusted proxy may have named it).
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_tcp_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m)
{
    ngx_connection_t                      *c;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    ctx = t->data;

    if (ctx->req.port == NGX_RUSTDESK_PORT_WS && !ctx->upgraded) {
        c = t->session->connection;
        ngx_rustdesk_ip_from_sockaddr(&ctx->req.addr, c->sockaddr,
                                      c->socklen);
        ctx->upgraded = 1;
    }

    return ngx_stream_rustdesk_rendezvous_handle(&ctx->req, m);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_tcp_send(ngx_stream_rustdesk_rendezvous_req_t *r,
    ngx_rustdesk_msg_t *m)
{
    return ngx_rustdesk_tcp_send(r->stream, m);
}
