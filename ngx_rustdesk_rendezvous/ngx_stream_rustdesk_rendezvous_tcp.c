/*
 * The rendezvous server's TCP and WebSocket transport (PROTOCOL.md
 * sections 1, 2 and 8): a connection on the main port, the WebSocket port
 * or the NAT-test port becomes a framed session (common/ngx_rustdesk_tcp.c)
 * whose decoded messages go to the file that decides each: punch hole and
 * relay requests and their answers to ..._punch.c, RegisterPk on a stream
 * to ..._stream.c, the NAT test and the online query to ..._nat.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


static ngx_int_t ngx_stream_rustdesk_rendezvous_main_msg(
    ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_ws_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_nat_msg(
    ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m);


void
ngx_stream_rustdesk_rendezvous_tcp(ngx_stream_session_t *s)
{
    ngx_connection_t                            *c;
    ngx_rustdesk_tcp_handler_pt                  handler;
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

    ngx_rustdesk_ip_from_sockaddr(&ctx->addr, c->sockaddr, c->socklen);

    if (rscf->role == NGX_RUSTDESK_ROLE_NAT_TEST) {
        c->log->action = "answering NAT test";
        handler = ngx_stream_rustdesk_rendezvous_nat_msg;

    } else if (rscf->websocket) {
        c->log->action = "upgrading to websocket";
        handler = ngx_stream_rustdesk_rendezvous_ws_msg;
        ctx->websocket = 1;

    } else {
        c->log->action = "handling rendezvous request";
        handler = ngx_stream_rustdesk_rendezvous_main_msg;
    }

    ctx->tcp = ngx_rustdesk_tcp_create(s, rscf->max_message, rscf->timeout,
                                       handler, ctx);
    if (ctx->tcp == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rscf->role == NGX_RUSTDESK_ROLE_RENDEZVOUS) {
        /* empty frames are heartbeats here (PROTOCOL.md section 8) */
        ctx->tcp->heartbeat = ngx_stream_rustdesk_rendezvous_stream_heartbeat;
    }

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ctx->websocket) {
        if (ngx_rustdesk_tcp_websocket(ctx->tcp, rmcf->shared->real_ip_from,
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

        if (ngx_rustdesk_tcp_secure(ctx->tcp, rmcf->shared->keys->sk)
            != NGX_OK)
        {
            ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_rustdesk_tcp_start(ctx->tcp);
}


/*
 * The WebSocket port (PROTOCOL.md sections 1 and 2): the main port's
 * messages, and the NAT port's, since clients in WebSocket mode send their
 * online query here.  The client's address is known once the upgrade is
 * done (a trusted proxy may have named it).
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_ws_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m)
{
    ngx_connection_t                      *c;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    ctx = t->data;

    if (!ctx->upgraded) {
        c = t->session->connection;
        ngx_rustdesk_ip_from_sockaddr(&ctx->addr, c->sockaddr, c->socklen);
        ctx->upgraded = 1;
    }

    if (m->union_case == HBB__RENDEZVOUS_MESSAGE__UNION_ONLINE_REQUEST) {
        return ngx_stream_rustdesk_rendezvous_online(t, m->online_request);
    }

    return ngx_stream_rustdesk_rendezvous_main_msg(t, m);
}


/*
 * The main port: PunchHoleRequest and RequestRelay keep the connection
 * open for the answer (and for retries on it), RegisterPk keeps it as the
 * peer's registration (PROTOCOL.md section 8); anything else is answered,
 * if at all, and the connection closes, as the reference does.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_main_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m)
{
    if (ngx_stream_rustdesk_rendezvous_stream_heard(t) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (m->union_case) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_REQUEST:
        return ngx_stream_rustdesk_rendezvous_punch_hole_request(t,
                                                     m->punch_hole_request);

    case HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY:
        return ngx_stream_rustdesk_rendezvous_request_relay(t,
                                                          m->request_relay);

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_SENT:
        return ngx_stream_rustdesk_rendezvous_hole_sent(t, m->punch_hole_sent);

    case HBB__RENDEZVOUS_MESSAGE__UNION_LOCAL_ADDR:
        return ngx_stream_rustdesk_rendezvous_local_addr(t, m->local_addr);

    case HBB__RENDEZVOUS_MESSAGE__UNION_RELAY_RESPONSE:
        return ngx_stream_rustdesk_rendezvous_relay_response(t,
                                                         m->relay_response);

    case HBB__RENDEZVOUS_MESSAGE__UNION_TEST_NAT_REQUEST:
        return ngx_stream_rustdesk_rendezvous_test_nat(t, m->test_nat_request,
                                                       1);

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK:
        return ngx_stream_rustdesk_rendezvous_stream_register(t,
                                                            m->register_pk);

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, t->session->connection->log, 0,
                       "rustdesk: tcp %s: closing", ngx_rustdesk_msg_name(m));
        return NGX_DONE;
    }
}


/* The NAT-test port: one message, then close. */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_nat_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m)
{
    switch (m->union_case) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_TEST_NAT_REQUEST:
        return ngx_stream_rustdesk_rendezvous_test_nat(t, m->test_nat_request,
                                                       0);

    case HBB__RENDEZVOUS_MESSAGE__UNION_ONLINE_REQUEST:
        return ngx_stream_rustdesk_rendezvous_online(t, m->online_request);

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, t->session->connection->log, 0,
                       "rustdesk: nat port %s: closing",
                       ngx_rustdesk_msg_name(m));
        return NGX_DONE;
    }
}
