/*
 * The rendezvous protocol layer (PROTOCOL.md sections 1, 6 and 8): every
 * transport (UDP, TCP, secure TCP, WebSocket) hands its decoded messages
 * here, and this is the one place that says which messages each port
 * takes and which file decides each:
 *
 *   RegisterPeer                 ..._register.c      UDP
 *   RegisterPk                   ..._register.c      UDP
 *                                ..._stream.c        TCP, WebSocket
 *   ConfigUpdate, SoftwareUpdate ..._config_update.c UDP
 *   PunchHoleRequest,
 *   RequestRelay                 ..._punch.c         TCP, WebSocket
 *   PunchHoleSent                ..._punch.c         UDP, TCP, WebSocket
 *   LocalAddr, RelayResponse     ..._punch.c         TCP, WebSocket
 *   TestNatRequest               ..._nat.c           TCP, WebSocket, NAT port
 *   OnlineRequest                ..._nat.c           WebSocket, NAT port
 *
 * Anything else is ignored on UDP (a datagram is never answered for
 * nothing: spoofed sources would make this a reflector) and closes a
 * stream, as the reference does.  PunchHoleRequest and LocalAddr over UDP
 * are ignored for the same reason.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


static ngx_int_t ngx_stream_rustdesk_rendezvous_dispatch(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_datagram_msg(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_stream_msg(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);
static ngx_int_t ngx_stream_rustdesk_rendezvous_nat_port_msg(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);


ngx_int_t
ngx_stream_rustdesk_rendezvous_handle(ngx_stream_rustdesk_rendezvous_req_t *r,
    ngx_rustdesk_msg_t *m)
{
    ngx_int_t  rc;

    /* for the access log: each handler says what came of it */

    r->message = ngx_rustdesk_msg_type(m);
    r->result = NULL;
    r->proven = 0;
    r->id.len = 0;
    r->peer_id.len = 0;
    r->uuid.len = 0;

    rc = ngx_stream_rustdesk_rendezvous_dispatch(r, m);

    /*
     * and for the metrics, the result counted here once it is known; a
     * RegisterPk whose answer waits for the database is counted when the
     * answer is made (..._register.c, ..._stream.c)
     */

    if (rc != NGX_AGAIN && r->result) {
        ngx_stream_rustdesk_rendezvous_account(
                           ngx_stream_rustdesk_rendezvous_metrics_transport(r),
                           m->union_case, r->result);
    }

    return rc;
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_dispatch(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m)
{
    if (r->stream == NULL) {
        return ngx_stream_rustdesk_rendezvous_datagram_msg(r, m);
    }

    if (r->port == NGX_RUSTDESK_PORT_NAT) {
        return ngx_stream_rustdesk_rendezvous_nat_port_msg(r, m);
    }

    if (r->port == NGX_RUSTDESK_PORT_WS
        && m->union_case == HBB__RENDEZVOUS_MESSAGE__UNION_ONLINE_REQUEST)
    {
        /* WebSocket clients ask here, having no NAT port */
        return ngx_stream_rustdesk_rendezvous_online(r, m->online_request);
    }

    /* any frame on a registered stream says its peer is alive */

    if (ngx_stream_rustdesk_rendezvous_stream_heard(r->stream) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_stream_rustdesk_rendezvous_stream_msg(r, m);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_datagram_msg(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m)
{
    switch (m->union_case) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER:
        return ngx_stream_rustdesk_rendezvous_register_peer(r,
                                                           m->register_peer);

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK:
        return ngx_stream_rustdesk_rendezvous_register_datagram(r,
                                                             m->register_pk);

    case HBB__RENDEZVOUS_MESSAGE__UNION_CONFIGURE_UPDATE:
        return ngx_stream_rustdesk_rendezvous_configure(r,
                                                        m->configure_update);

    case HBB__RENDEZVOUS_MESSAGE__UNION_SOFTWARE_UPDATE:
        return ngx_stream_rustdesk_rendezvous_software(r, m->software_update);

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_SENT:
        return ngx_stream_rustdesk_rendezvous_hole_sent(r, m->punch_hole_sent);

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, r->session->connection->log, 0,
                       "rustdesk: udp %s ignored", ngx_rustdesk_msg_name(m));
        r->result = "IGNORED";
        return NGX_OK;
    }
}


/*
 * The main and WebSocket ports: PunchHoleRequest and RequestRelay keep the
 * connection open for the answer (and for retries on it), RegisterPk keeps
 * it as the peer's registration (PROTOCOL.md section 8); anything else is
 * answered, if at all, and the connection closes.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_msg(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m)
{
    switch (m->union_case) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_REQUEST:
        return ngx_stream_rustdesk_rendezvous_punch_hole_request(r,
                                                     m->punch_hole_request);

    case HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY:
        return ngx_stream_rustdesk_rendezvous_request_relay(r,
                                                          m->request_relay);

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_SENT:
        return ngx_stream_rustdesk_rendezvous_hole_sent(r, m->punch_hole_sent);

    case HBB__RENDEZVOUS_MESSAGE__UNION_LOCAL_ADDR:
        return ngx_stream_rustdesk_rendezvous_local_addr(r, m->local_addr);

    case HBB__RENDEZVOUS_MESSAGE__UNION_RELAY_RESPONSE:
        return ngx_stream_rustdesk_rendezvous_relay_response(r,
                                                         m->relay_response);

    case HBB__RENDEZVOUS_MESSAGE__UNION_TEST_NAT_REQUEST:
        return ngx_stream_rustdesk_rendezvous_test_nat(r, m->test_nat_request);

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK:
        return ngx_stream_rustdesk_rendezvous_stream_register(r,
                                                            m->register_pk);

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, r->session->connection->log, 0,
                       "rustdesk: tcp %s: closing", ngx_rustdesk_msg_name(m));
        r->result = "IGNORED";
        return NGX_DONE;
    }
}


/* The NAT-test port: one message, then close. */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_nat_port_msg(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m)
{
    switch (m->union_case) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_TEST_NAT_REQUEST:
        return ngx_stream_rustdesk_rendezvous_test_nat(r, m->test_nat_request);

    case HBB__RENDEZVOUS_MESSAGE__UNION_ONLINE_REQUEST:
        return ngx_stream_rustdesk_rendezvous_online(r, m->online_request);

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, r->session->connection->log, 0,
                       "rustdesk: nat port %s: closing",
                       ngx_rustdesk_msg_name(m));
        r->result = "IGNORED";
        return NGX_DONE;
    }
}


void
ngx_stream_rustdesk_rendezvous_note(ngx_stream_rustdesk_rendezvous_req_t *r,
    ngx_str_t *field, const char *value)
{
    size_t  len;

    len = ngx_strlen(value);

    if (len > NGX_RUSTDESK_ID_MAX) {
        len = NGX_RUSTDESK_ID_MAX;
    }

    if (field->data == NULL) {
        field->data = ngx_pnalloc(r->session->connection->pool,
                                  NGX_RUSTDESK_ID_MAX);
        if (field->data == NULL) {
            field->len = 0;
            return;
        }
    }

    field->len = ngx_cpymem(field->data, value, len) - field->data;
}
