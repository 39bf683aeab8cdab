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
#include "ngx_rustdesk_addr.h"


static ngx_int_t ngx_stream_rustdesk_rendezvous_main_msg(
    ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_ws_msg(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);
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
static ngx_int_t ngx_stream_rustdesk_rendezvous_request_relay(
    ngx_rustdesk_tcp_t *t, Hbb__RequestRelay *rr);
static ngx_int_t ngx_stream_rustdesk_rendezvous_hole_sent(
    ngx_rustdesk_tcp_t *t, Hbb__PunchHoleSent *phs);
static ngx_int_t ngx_stream_rustdesk_rendezvous_local_addr(
    ngx_rustdesk_tcp_t *t, Hbb__LocalAddr *la);
static ngx_int_t ngx_stream_rustdesk_rendezvous_relay_response(
    ngx_rustdesk_tcp_t *t, Hbb__RelayResponse *rr);
static ngx_int_t ngx_stream_rustdesk_rendezvous_to_peer(
    ngx_stream_session_t *s, ngx_str_t *id, ngx_rustdesk_ip_t *to,
    ngx_pid_t stream, ngx_rustdesk_msg_t *m);
static void ngx_stream_rustdesk_rendezvous_udp_to_peer(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *to, ngx_rustdesk_msg_t *m);
static ngx_listening_t *ngx_stream_rustdesk_rendezvous_udp_listener(
    in_port_t port, ngx_uint_t family);
static ngx_uint_t ngx_stream_rustdesk_rendezvous_udp_server(
    ngx_listening_t *ls);
static ngx_int_t ngx_stream_rustdesk_rendezvous_requester(
    ngx_stream_session_t *s, ProtobufCBinaryData *mangled,
    ngx_rustdesk_ip_t *a);
static ProtobufCBinaryData ngx_stream_rustdesk_rendezvous_mangle(
    ngx_stream_session_t *s, ngx_rustdesk_ip_t *ip);
static ProtobufCBinaryData ngx_stream_rustdesk_rendezvous_signed_pk(
    ngx_stream_session_t *s, char *version, char *id);


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

        if (ngx_rustdesk_peer_online(rmcf->zone, &id, ngx_current_msec)) {
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


/*
 * A asks for B: after the key and presence checks, A waits on this
 * connection and B hears over UDP, at its registered address, either
 * FetchLocalAddr (same LAN or same public IP: punching would fail, B
 * answers with its local address) or PunchHole.  Forced relay (always-use-
 * relay, or exactly one side inside the LAN mask) is told to both sides as
 * nat_type SYMMETRIC; a LAN-side B is offered the local IP as relay.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_punch_hole_request(ngx_rustdesk_tcp_t *t,
    Hbb__PunchHoleRequest *ph)
{
    char                                        *relay;
    ngx_int_t                                    rc;
    ngx_str_t                                    id;
    ngx_pid_t                                    stream;
    ngx_uint_t                                   online, a_lan, b_lan, same;
    Hbb__NatType                                 nat_type;
    Hbb__PunchHole                               hole;
    ngx_connection_t                            *c;
    ngx_rustdesk_ip_t                            b;
    ngx_rustdesk_msg_t                           out;
    Hbb__FetchLocalAddr                          fla;
    ngx_rustdesk_peer_row_t                      row;
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    c = t->session->connection;
    ctx = t->data;

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

    rc = ngx_rustdesk_peer_lookup(rmcf->zone, &id, ngx_current_msec, &online,
                                  &b, &stream);

    if (rc == NGX_DECLINED) {
        /* known to the database only: offline (a failed lookup: unknown) */

        if (id.len && ngx_stream_rustdesk_rendezvous_db_load(t->session, &id,
                                                             &row)
                      == NGX_OK)
        {
            return ngx_stream_rustdesk_rendezvous_punch_failure(t,
                           HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE);
        }

        return ngx_stream_rustdesk_rendezvous_punch_failure(t,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__ID_NOT_EXIST);
    }

    if (online == 0 || b.family == 0
        || stream == NGX_RUSTDESK_STREAM_CLOSED)
    {
        /* a peer whose stream closed cannot be reached until it is back */
        return ngx_stream_rustdesk_rendezvous_punch_failure(t,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE);
    }

    if (ngx_stream_rustdesk_rendezvous_wait(t->session) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_rustdesk_punch_log(rmcf->zone, &ctx->addr, &id, &b, ngx_current_msec);

    a_lan = ngx_stream_rustdesk_rendezvous_is_lan(rmcf, &ctx->addr);
    b_lan = ngx_stream_rustdesk_rendezvous_is_lan(rmcf, &b);

    relay = ngx_stream_rustdesk_rendezvous_relay_server(t->session);
    nat_type = ph->nat_type;

    if (ngx_stream_rustdesk_rendezvous_always_relay(rmcf) || (a_lan ^ b_lan)) {
        if (b_lan && rmcf->local_ip.len) {
            relay = (char *) rmcf->local_ip.data;
        }

        nat_type = HBB__NAT_TYPE__SYMMETRIC;
    }

    /* a WebSocket client cannot take a local connection: never FetchLocalAddr */

    same = !ctx->websocket
           && ((a_lan && b_lan)
               || (ctx->addr.family == b.family
                   && ngx_memcmp(ctx->addr.addr, b.addr,
                                 b.family == AF_INET ? 4 : 16) == 0));

    hbb__rendezvous_message__init(&out);

    if (same) {
        hbb__fetch_local_addr__init(&fla);
        fla.socket_addr = ngx_stream_rustdesk_rendezvous_mangle(t->session,
                                                                &ctx->addr);
        fla.relay_server = relay;
        fla.socket_addr_v6 = ph->socket_addr_v6;

        out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_FETCH_LOCAL_ADDR;
        out.fetch_local_addr = &fla;

    } else {
        hbb__punch_hole__init(&hole);
        hole.socket_addr = ngx_stream_rustdesk_rendezvous_mangle(t->session,
                                                                 &ctx->addr);
        hole.relay_server = relay;
        hole.nat_type = nat_type;

        /* what newer clients offer for a direct connection, passed on */
        hole.udp_port = ph->udp_port;
        hole.force_relay = ph->force_relay;
        hole.upnp_port = ph->upnp_port;
        hole.socket_addr_v6 = ph->socket_addr_v6;

        out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE;
        out.punch_hole = &hole;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: %s to peer \"%V\"",
                   same ? "fetch local addr" : "punch hole", &id);

    if (ngx_stream_rustdesk_rendezvous_to_peer(t->session, &id, &b, stream,
                                               &out)
        == NGX_DECLINED)
    {
        /* its stream is gone (its worker died): not reachable now */
        return ngx_stream_rustdesk_rendezvous_punch_failure(t,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE);
    }

    return NGX_OK;
}


/* A asks B to meet at a relay: B hears it over UDP with A's address. */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_request_relay(ngx_rustdesk_tcp_t *t,
    Hbb__RequestRelay *rr)
{
    ngx_str_t                                    id;
    ngx_pid_t                                    stream;
    ngx_uint_t                                   online;
    ngx_rustdesk_ip_t                            b;
    Hbb__RequestRelay                            fwd;
    ngx_rustdesk_msg_t                           out;
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    ctx = t->data;

    rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_stream_rustdesk_rendezvous_wait(t->session) != NGX_OK) {
        return NGX_ERROR;
    }

    id.data = (u_char *) rr->id;
    id.len = ngx_strlen(rr->id);

    if (ngx_rustdesk_peer_lookup(rmcf->zone, &id, ngx_current_msec, &online,
                                 &b, &stream)
        == NGX_DECLINED
        || b.family == 0 || stream == NGX_RUSTDESK_STREAM_CLOSED)
    {
        return NGX_OK;
    }

    /* a copy, so that fields this server does not know travel on */

    fwd = *rr;
    fwd.socket_addr = ngx_stream_rustdesk_rendezvous_mangle(t->session,
                                                            &ctx->addr);

    hbb__rendezvous_message__init(&out);
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY;
    out.request_relay = &fwd;

    (void) ngx_stream_rustdesk_rendezvous_to_peer(t->session, &id, &b, stream,
                                                  &out);

    return NGX_OK;
}


/* B punched: A learns B's address as seen here and B's signed key. */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_hole_sent(ngx_rustdesk_tcp_t *t,
    Hbb__PunchHoleSent *phs)
{
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    ctx = t->data;

    ngx_stream_rustdesk_rendezvous_punch_sent(t->session, phs, &ctx->addr, 0);

    return NGX_DONE;
}


/*
 * B's PunchHoleSent, over TCP or (is_udp) over UDP from the socket it
 * punches with: A gets PunchHoleResponse with B's address as the server
 * sees it, B's signed key and B's direct-connection fields.  Nothing goes
 * back to B.
 */

void
ngx_stream_rustdesk_rendezvous_punch_sent(ngx_stream_session_t *s,
    Hbb__PunchHoleSent *phs, ngx_rustdesk_ip_t *b, ngx_uint_t is_udp)
{
    ngx_rustdesk_ip_t        a;
    ngx_rustdesk_msg_t       out;
    Hbb__PunchHoleResponse   phr;

    if (ngx_stream_rustdesk_rendezvous_requester(s, &phs->socket_addr, &a)
        != NGX_OK)
    {
        return;
    }

    hbb__rendezvous_message__init(&out);
    hbb__punch_hole_response__init(&phr);

    phr.socket_addr = ngx_stream_rustdesk_rendezvous_mangle(s, b);
    phr.pk = ngx_stream_rustdesk_rendezvous_signed_pk(s, phs->version,
                                                      phs->id);
    phr.relay_server = phs->relay_server;
    phr.union_case = HBB__PUNCH_HOLE_RESPONSE__UNION_NAT_TYPE;
    phr.nat_type = phs->nat_type;
    phr.upnp_port = phs->upnp_port;
    phr.socket_addr_v6 = phs->socket_addr_v6;
    phr.is_udp = is_udp;

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_RESPONSE;
    out.punch_hole_response = &phr;

    ngx_stream_rustdesk_rendezvous_answer(s, &a, &out);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_local_addr(ngx_rustdesk_tcp_t *t,
    Hbb__LocalAddr *la)
{
    ngx_rustdesk_ip_t         a;
    ngx_rustdesk_msg_t        out;
    Hbb__PunchHoleResponse    phr;

    if (ngx_stream_rustdesk_rendezvous_requester(t->session, &la->socket_addr,
                                                 &a)
        != NGX_OK)
    {
        return NGX_DONE;
    }

    hbb__rendezvous_message__init(&out);
    hbb__punch_hole_response__init(&phr);

    phr.socket_addr = la->local_addr;
    phr.pk = ngx_stream_rustdesk_rendezvous_signed_pk(t->session,
                                                      la->version, la->id);
    phr.relay_server = la->relay_server;
    phr.union_case = HBB__PUNCH_HOLE_RESPONSE__UNION_IS_LOCAL;
    phr.is_local = 1;
    phr.socket_addr_v6 = la->socket_addr_v6;

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_RESPONSE;
    out.punch_hole_response = &phr;

    ngx_stream_rustdesk_rendezvous_answer(t->session, &a, &out);

    return NGX_DONE;
}


/*
 * B accepted a relay: A gets the message without B's view of A's address,
 * with B's signed key in place of its id, and the relay rewritten for a
 * LAN-side A as the reference does.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_relay_response(ngx_rustdesk_tcp_t *t,
    Hbb__RelayResponse *rr)
{
    ngx_rustdesk_ip_t                            a;
    Hbb__RelayResponse                           fwd;
    ngx_rustdesk_msg_t                           out;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_stream_rustdesk_rendezvous_requester(t->session, &rr->socket_addr,
                                                 &a)
        != NGX_OK)
    {
        return NGX_DONE;
    }

    fwd = *rr;
    fwd.socket_addr.len = 0;
    fwd.socket_addr.data = NULL;

    if (rr->union_case == HBB__RELAY_RESPONSE__UNION_ID && rr->id[0]) {
        fwd.union_case = HBB__RELAY_RESPONSE__UNION_PK;
        fwd.pk = ngx_stream_rustdesk_rendezvous_signed_pk(t->session,
                                                          rr->version, rr->id);
    }

    if (rr->relay_server[0]) {
        if (ngx_stream_rustdesk_rendezvous_is_lan(rmcf, &a)
            && rmcf->local_ip.len)
        {
            fwd.relay_server = (char *) rmcf->local_ip.data;

        } else if (rmcf->local_ip.len
                   && ngx_strcmp(rr->relay_server, rmcf->local_ip.data) == 0)
        {
            fwd.relay_server = ngx_stream_rustdesk_rendezvous_relay_server(
                                                                  t->session);
        }
    }

    hbb__rendezvous_message__init(&out);
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_RELAY_RESPONSE;
    out.relay_response = &fwd;

    ngx_stream_rustdesk_rendezvous_answer(t->session, &a, &out);

    return NGX_DONE;
}


/*
 * A message to peer B: over its registered stream, or over UDP.
 * NGX_DECLINED: its stream is known to be gone.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_to_peer(ngx_stream_session_t *s,
    ngx_str_t *id, ngx_rustdesk_ip_t *to, ngx_pid_t stream,
    ngx_rustdesk_msg_t *m)
{
    if (stream > 0) {
        return ngx_stream_rustdesk_rendezvous_stream_send(s, id, stream, m);
    }

    ngx_stream_rustdesk_rendezvous_udp_to_peer(s, to, m);

    return NGX_OK;
}


/*
 * A datagram to peer B from this server's UDP socket on the same port as
 * the TCP connection (with reuseport, this worker's copy of it), so that
 * it comes from the address B registered with.
 */

static void
ngx_stream_rustdesk_rendezvous_udp_to_peer(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *to, ngx_rustdesk_msg_t *m)
{
    u_char                   *buf, *last;
    ssize_t                   n;
    socklen_t                 len;
    in_port_t                 port;
    ngx_listening_t          *ls;
    ngx_connection_t         *c;
    struct sockaddr_storage   ss;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6       sin6;
#endif

    c = s->connection;
    port = ngx_inet_get_port(c->local_sockaddr);

    /*
     * The UDP listener of this port (the main port), else, for the
     * WebSocket port, one of a rendezvous server: B listens to the port it
     * registered with, not to ours.
     */

    ls = ngx_stream_rustdesk_rendezvous_udp_listener(port, to->family);

    if (ls == NULL) {
        ls = ngx_stream_rustdesk_rendezvous_udp_listener(0, to->family);
    }

    if (ls == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "rustdesk: no UDP listener of a rustdesk_rendezvous "
                      "server to reach the peer: add \"listen ... udp\" to "
                      "the main port's server");
        return;
    }

    buf = ngx_pnalloc(c->pool, ngx_rustdesk_msg_size(m, 0));
    if (buf == NULL) {
        return;
    }

    last = ngx_rustdesk_msg_pack(m, 0, buf);
    len = ngx_rustdesk_ip_to_sockaddr(to, &ss);

#if (NGX_HAVE_INET6)
    if (ls->sockaddr->sa_family == AF_INET6 && ss.ss_family == AF_INET) {
        /* an IPv4 peer from a dual-stack socket: its v4-mapped address */

        ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = ((struct sockaddr_in *) &ss)->sin_port;
        sin6.sin6_addr.s6_addr[10] = 0xff;
        sin6.sin6_addr.s6_addr[11] = 0xff;
        ngx_memcpy(&sin6.sin6_addr.s6_addr[12],
                   &((struct sockaddr_in *) &ss)->sin_addr, 4);

        ngx_memcpy(&ss, &sin6, sizeof(struct sockaddr_in6));
        len = sizeof(struct sockaddr_in6);
    }
#endif

    n = sendto(ls->fd, buf, last - buf, 0, (struct sockaddr *) &ss, len);

    if (n == -1) {
        ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
                      "rustdesk: sendto() to the peer failed");
    }
}


/*
 * A UDP listener to send to a peer from: on this port (0: any port of a
 * rustdesk_rendezvous server), of the peer's family if there is one.
 */

static ngx_listening_t *
ngx_stream_rustdesk_rendezvous_udp_listener(in_port_t port, ngx_uint_t family)
{
    ngx_uint_t        i;
    ngx_listening_t  *ls, *found;

    found = NULL;
    ls = ngx_cycle->listening.elts;

    for (i = 0; i < ngx_cycle->listening.nelts; i++) {
        if (ls[i].type != SOCK_DGRAM || ls[i].fd == (ngx_socket_t) -1) {
            continue;
        }

        if (port ? ngx_inet_get_port(ls[i].sockaddr) != port
                 : !ngx_stream_rustdesk_rendezvous_udp_server(&ls[i]))
        {
            continue;
        }

        found = &ls[i];

        if (ls[i].sockaddr->sa_family == (family == AF_INET6
                                          ? AF_INET6 : AF_INET))
        {
            break;
        }
    }

    return found;
}


/* Whether a listener belongs to a rustdesk_rendezvous server (not a
 * WebSocket one). */

static ngx_uint_t
ngx_stream_rustdesk_rendezvous_udp_server(ngx_listening_t *ls)
{
    ngx_uint_t                                  i;
    ngx_stream_port_t                          *port;
    ngx_stream_addr_conf_t                     *addr_conf;
    ngx_stream_conf_ctx_t                      *ctx;
    ngx_stream_rustdesk_rendezvous_srv_conf_t  *rscf;

    port = ls->servers;

    for (i = 0; i < port->naddrs; i++) {
#if (NGX_HAVE_INET6)
        if (ls->sockaddr->sa_family == AF_INET6) {
            addr_conf = &((ngx_stream_in6_addr_t *) port->addrs)[i].conf;

        } else
#endif
        {
            addr_conf = &((ngx_stream_in_addr_t *) port->addrs)[i].conf;
        }

        /*
         * The one place that depends on the nginx version: with stream
         * virtual servers (1.25.5) an address names its default server
         * instead of a configuration context.
         */
#if (nginx_version >= 1025005)
        ctx = addr_conf->default_server->ctx;
#else
        ctx = addr_conf->ctx;
#endif

        rscf = ctx->srv_conf[ngx_stream_rustdesk_rendezvous_module.ctx_index];

        if (rscf->role == NGX_RUSTDESK_ROLE_RENDEZVOUS && !rscf->websocket) {
            return 1;
        }
    }

    return 0;
}


/* A's address from what B sent back: NGX_OK with *a, else logged. */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_requester(ngx_stream_session_t *s,
    ProtobufCBinaryData *mangled, ngx_rustdesk_ip_t *a)
{
    socklen_t                len;
    struct sockaddr_storage  ss;

    len = ngx_rustdesk_addr_decode(mangled->data, mangled->len, &ss);

    if (len == 0) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "rustdesk: answer with a malformed requester address "
                      "of %uz bytes", mangled->len);
        return NGX_DECLINED;
    }

    ngx_rustdesk_ip_from_sockaddr(a, (struct sockaddr *) &ss, len);

    return NGX_OK;
}


static ProtobufCBinaryData
ngx_stream_rustdesk_rendezvous_mangle(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *ip)
{
    ProtobufCBinaryData      out;
    struct sockaddr_storage  ss;

    out.len = 0;
    out.data = ngx_pnalloc(s->connection->pool, NGX_RUSTDESK_ADDR_MAX_LEN);

    if (out.data) {
        (void) ngx_rustdesk_ip_to_sockaddr(ip, &ss);
        out.len = ngx_rustdesk_addr_encode((struct sockaddr *) &ss, out.data);
    }

    return out;
}


/*
 * get_pk (PROTOCOL.md section 5): the peer's key signed as IdPk, empty
 * when the client sent no version, no secret key is loaded, or the peer
 * has no key here.
 */

static ProtobufCBinaryData
ngx_stream_rustdesk_rendezvous_signed_pk(ngx_stream_session_t *s,
    char *version, char *id)
{
    size_t                                       size;
    ngx_str_t                                    name;
    ProtobufCBinaryData                          out;
    ngx_rustdesk_peer_row_t                      row;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;
    u_char                                       pk[NGX_RUSTDESK_BLOB_MAX];

    out.len = 0;
    out.data = NULL;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (version[0] == '\0' || rmcf->shared->keys == NULL) {
        return out;
    }

    name.data = (u_char *) id;
    name.len = ngx_strlen(id);

    size = ngx_rustdesk_peer_pk(rmcf->zone, &name, pk);

    if (size == 0) {
        /* evicted from memory, or never there: the database's key */

        if (name.len == 0
            || ngx_stream_rustdesk_rendezvous_db_load(s, &name, &row) != NGX_OK
            || row.pk.len == 0)
        {
            return out;
        }

        size = row.pk.len;
        ngx_memcpy(pk, row.pk.data, size);
    }

    /* signature || IdPk{id, pk}: 64 + tags, lengths, id and pk */
    out.data = ngx_pnalloc(s->connection->pool, 64 + 8 + name.len + size);
    if (out.data == NULL) {
        return out;
    }

    out.len = ngx_rustdesk_keys_sign_idpk(rmcf->shared->keys, name.data,
                                          name.len, pk, size, out.data,
                                          64 + 8 + name.len + size);
    return out;
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
