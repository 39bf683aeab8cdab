/*
 * The rendezvous server's TCP side (PROTOCOL.md section 6): the main port
 * (punch hole and relay requests and their answers, NAT test) and the
 * NAT-test port (TestNatRequest and OnlineRequest, one message, then
 * close).  Framing and I/O are in common/ngx_rustdesk_tcp.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


static void ngx_stream_rustdesk_rendezvous_read(ngx_event_t *ev);
static void ngx_stream_rustdesk_rendezvous_write(ngx_event_t *ev);
static ngx_int_t ngx_stream_rustdesk_rendezvous_main_msg(
    ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_nat_msg(
    ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_test_nat(
    ngx_rustdesk_tcp_t *t, Hbb__TestNatRequest *tnr, ngx_uint_t with_config);
static ngx_int_t ngx_stream_rustdesk_rendezvous_online(ngx_rustdesk_tcp_t *t,
    Hbb__OnlineRequest *req);
static ngx_int_t ngx_stream_rustdesk_rendezvous_punch_hole_request(
    ngx_rustdesk_tcp_t *t, Hbb__PunchHoleRequest *ph);
static ngx_int_t ngx_stream_rustdesk_rendezvous_punch_failure(
    ngx_rustdesk_tcp_t *t, Hbb__PunchHoleResponse__Failure failure);
static ngx_int_t ngx_stream_rustdesk_rendezvous_register_pk_tcp(
    ngx_rustdesk_tcp_t *t);


void
ngx_stream_rustdesk_rendezvous_tcp(ngx_stream_session_t *s)
{
    ngx_connection_t                           *c;
    ngx_rustdesk_tcp_handler_pt                 handler;
    ngx_stream_rustdesk_rendezvous_ctx_t       *ctx;
    ngx_stream_rustdesk_rendezvous_srv_conf_t  *rscf;

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

    ngx_rustdesk_tcp_start(ctx->tcp, ngx_stream_rustdesk_rendezvous_read,
                           ngx_stream_rustdesk_rendezvous_write);
}


static void
ngx_stream_rustdesk_rendezvous_read(ngx_event_t *ev)
{
    ngx_connection_t                      *c;
    ngx_stream_session_t                  *s;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    c = ev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

    ngx_rustdesk_tcp_on_read(ctx->tcp);
}


static void
ngx_stream_rustdesk_rendezvous_write(ngx_event_t *ev)
{
    ngx_connection_t                      *c;
    ngx_stream_session_t                  *s;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    c = ev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

    ngx_rustdesk_tcp_on_write(ctx->tcp);
}


/*
 * The main port: PunchHoleRequest and RequestRelay keep the connection
 * open for the answer (and for retries on it); anything else is answered,
 * if at all, and the connection closes, as the reference does.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_main_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m)
{
    switch (m->union_case) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_REQUEST:
        return ngx_stream_rustdesk_rendezvous_punch_hole_request(t,
                                                     m->punch_hole_request);

    case HBB__RENDEZVOUS_MESSAGE__UNION_TEST_NAT_REQUEST:
        return ngx_stream_rustdesk_rendezvous_test_nat(t, m->test_nat_request,
                                                       1);

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK:
        return ngx_stream_rustdesk_rendezvous_register_pk_tcp(t);

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


/*
 * TestNatResponse{port}: the client's source port as seen here; the main
 * port adds a ConfigUpdate when the serial is higher than the client's.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_test_nat(ngx_rustdesk_tcp_t *t,
    Hbb__TestNatRequest *tnr, ngx_uint_t with_config)
{
    ngx_rustdesk_msg_t                     out;
    Hbb__TestNatResponse                   tnr_out;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    ctx = t->data;

    hbb__rendezvous_message__init(&out);
    hbb__test_nat_response__init(&tnr_out);

    tnr_out.port = ctx->addr.port;

    if (with_config) {
        tnr_out.cu = ngx_stream_rustdesk_rendezvous_config_update(t->session,
                                                                tnr->serial);
    }

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_TEST_NAT_RESPONSE;
    out.test_nat_response = &tnr_out;

    if (ngx_rustdesk_tcp_send(t, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


/*
 * OnlineResponse: bit (7 - i % 8) of byte i / 8 is set when peer i is
 * online (registered in the last 30 s).  Memory only, as the reference.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_online(ngx_rustdesk_tcp_t *t,
    Hbb__OnlineRequest *req)
{
    size_t                                       i;
    ngx_str_t                                    id;
    ngx_rustdesk_msg_t                           out;
    Hbb__OnlineResponse                          res;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    hbb__rendezvous_message__init(&out);
    hbb__online_response__init(&res);

    res.states.len = (req->n_peers + 7) / 8;

    if (res.states.len) {
        res.states.data = ngx_pcalloc(t->session->connection->pool,
                                      res.states.len);
        if (res.states.data == NULL) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < req->n_peers; i++) {
        id.data = (u_char *) req->peers[i];
        id.len = ngx_strlen(req->peers[i]);

        if (ngx_rustdesk_peer_online(rmcf->zone, &id, ngx_current_msec) == 1) {
            res.states.data[i / 8] |= 1 << (7 - i % 8);
        }
    }

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_ONLINE_RESPONSE;
    out.online_response = &res;

    if (ngx_rustdesk_tcp_send(t, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_punch_hole_request(ngx_rustdesk_tcp_t *t,
    Hbb__PunchHoleRequest *ph)
{
    ngx_int_t                                    online;
    ngx_str_t                                    id;
    ngx_connection_t                            *c;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    c = t->session->connection;

    rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    id.data = (u_char *) ph->id;
    id.len = ngx_strlen(ph->id);

    if (rmcf->licence.len
        && (ngx_strlen(ph->licence_key) != rmcf->licence.len
            || ngx_strncmp(ph->licence_key, rmcf->licence.data,
                           rmcf->licence.len) != 0))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: punch hole to peer \"%V\" refused: "
                      "wrong key", &id);
        return ngx_stream_rustdesk_rendezvous_punch_failure(t,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__LICENSE_MISMATCH);
    }

    online = ngx_rustdesk_peer_online(rmcf->zone, &id, ngx_current_msec);

    if (online == NGX_DECLINED) {
        return ngx_stream_rustdesk_rendezvous_punch_failure(t,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__ID_NOT_EXIST);
    }

    if (online == 0) {
        return ngx_stream_rustdesk_rendezvous_punch_failure(t,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE);
    }

    /* TODO(issue 3): deliver PunchHole to B and the answer back to A */
    ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                  "rustdesk: punch hole to online peer \"%V\" is not "
                  "served yet", &id);

    return NGX_DONE;
}


/* The answer to a failed PunchHoleRequest; A may retry on the connection. */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_punch_failure(ngx_rustdesk_tcp_t *t,
    Hbb__PunchHoleResponse__Failure failure)
{
    ngx_rustdesk_msg_t        out;
    Hbb__PunchHoleResponse    phr;

    hbb__rendezvous_message__init(&out);
    hbb__punch_hole_response__init(&phr);

    phr.failure = failure;
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_RESPONSE;
    out.punch_hole_response = &phr;

    if (ngx_rustdesk_tcp_send(t, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* RegisterPk over TCP: NOT_SUPPORT, as the reference (PROTOCOL.md 6). */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_register_pk_tcp(ngx_rustdesk_tcp_t *t)
{
    ngx_rustdesk_msg_t        out;
    Hbb__RegisterPkResponse   rpr;

    hbb__rendezvous_message__init(&out);
    hbb__register_pk_response__init(&rpr);

    rpr.result = HBB__REGISTER_PK_RESPONSE__RESULT__NOT_SUPPORT;
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK_RESPONSE;
    out.register_pk_response = &rpr;

    if (ngx_rustdesk_tcp_send(t, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DONE;
}
