/*
 * Punch hole and relay requests and their answers (PROTOCOL.md sections
 * 4, 5 and 6), whatever transport they came on: A's PunchHoleRequest and
 * RequestRelay are passed to B (..._reach.c), B's PunchHoleSent, LocalAddr
 * and RelayResponse go back to A with B's signed key, through whichever
 * worker A waits on (..._deliver.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"
#include "ngx_rustdesk_addr.h"
#include "ngx_rustdesk_tickets.h"


static ngx_int_t ngx_stream_rustdesk_rendezvous_requester(
    ngx_stream_session_t *s, ProtobufCBinaryData *mangled,
    ngx_rustdesk_ip_t *a);
static ProtobufCBinaryData ngx_stream_rustdesk_rendezvous_mangle(
    ngx_stream_session_t *s, ngx_rustdesk_ip_t *ip);
static ProtobufCBinaryData ngx_stream_rustdesk_rendezvous_signed_pk(
    ngx_stream_session_t *s, char *version, char *id);
static void ngx_stream_rustdesk_rendezvous_brokered(
    ngx_stream_rustdesk_rendezvous_req_t *r);
static void ngx_stream_rustdesk_rendezvous_relay_message(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RequestRelay *rr,
    Hbb__RequestRelay *fwd, ngx_rustdesk_msg_t *out);
static ngx_int_t ngx_stream_rustdesk_rendezvous_relay_elsewhere(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RequestRelay *rr,
    ngx_str_t *id);


/*
 * A asks for B: after the key and presence checks, B hears of it
 * (punch_peer()); a B not online here may be on another host of the
 * cluster (..._cluster_requests.c).
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_punch_hole_request(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__PunchHoleRequest *ph)
{
    ngx_int_t                                    rc;
    ngx_str_t                                    id;
    ngx_pid_t                                    stream;
    ngx_uint_t                                   online;
    Hbb__PunchHoleResponse__Failure              failure;
    ngx_connection_t                            *c;
    ngx_rustdesk_ip_t                            b;
    ngx_rustdesk_peer_row_t                      row;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    c = r->session->connection;
    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    id.data = (u_char *) ph->id;
    id.len = ngx_strlen(ph->id);

    ngx_stream_rustdesk_rendezvous_note(r, &r->peer_id, ph->id);

    if (rmcf->licence.len
        && (ngx_strlen(ph->licence_key) != rmcf->licence.len
            || ngx_strncmp(ph->licence_key, rmcf->licence.data,
                           rmcf->licence.len) != 0))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: punch hole to peer \"%V\" refused: "
                      "wrong key", &id);
        return ngx_stream_rustdesk_rendezvous_punch_failure(r,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__LICENSE_MISMATCH);
    }

    rc = ngx_rustdesk_peer_lookup(rmcf->zone, &id, ngx_current_msec, &online,
                                  &b, &stream);

    if (rc == NGX_DECLINED) {
        /* known to the database only: offline (a failed lookup: unknown) */

        failure = HBB__PUNCH_HOLE_RESPONSE__FAILURE__ID_NOT_EXIST;

        if (id.len && ngx_stream_rustdesk_rendezvous_db_load(r->session, &id,
                                                             &row)
                      == NGX_OK)
        {
            failure = HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE;
        }

        goto not_here;
    }

    if (online == 0 || b.family == 0
        || stream == NGX_RUSTDESK_STREAM_CLOSED)
    {
        /* a peer whose stream closed cannot be reached until it is back */
        failure = HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE;
        goto not_here;
    }

    return ngx_stream_rustdesk_rendezvous_punch_peer(r, ph, &id, &b, stream,
                                                     NULL, NULL);

not_here:

    /* not online here: perhaps on another host of the cluster */

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)) {
        return ngx_stream_rustdesk_rendezvous_cluster_punch(r, ph, &id,
                                                            failure);
    }

    return ngx_stream_rustdesk_rendezvous_punch_failure(r, failure);
}


/*
 * A's request goes to B, registered at b and reached through stream (or,
 * with host, through that host of the cluster): after it, A waits on this
 * connection for B's answer.  B hears either FetchLocalAddr (same LAN or
 * same public IP: punching would fail, B answers with its local address)
 * or PunchHole.  Forced relay (always-use-relay, or exactly one side
 * inside the LAN mask) is told to both sides as nat_type SYMMETRIC; a
 * LAN-side B is offered the local IP as relay.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_punch_peer(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__PunchHoleRequest *ph,
    ngx_str_t *id, ngx_rustdesk_ip_t *b, ngx_pid_t stream, ngx_str_t *host,
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    char                                        *relay, *local;
    ngx_int_t                                    rc;
    ngx_uint_t                                   a_lan, b_lan, same;
    Hbb__NatType                                 nat_type;
    Hbb__PunchHole                               hole;
    ngx_connection_t                            *c;
    ngx_rustdesk_msg_t                           out;
    Hbb__FetchLocalAddr                          fla;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    c = r->session->connection;
    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_stream_rustdesk_rendezvous_wait(r->session) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_rustdesk_punch_log(rmcf->zone, &r->addr, id, b, ngx_current_msec);

    a_lan = ngx_stream_rustdesk_rendezvous_is_lan(rmcf, &r->addr);
    b_lan = ngx_stream_rustdesk_rendezvous_is_lan(rmcf, b);

    /* the relays offered are evaluated for A's session */

    relay = ngx_stream_rustdesk_rendezvous_relay_server(r->session);
    nat_type = ph->nat_type;

    if (ngx_stream_rustdesk_rendezvous_always_relay(rmcf) || (a_lan ^ b_lan)) {
        local = b_lan ? ngx_stream_rustdesk_rendezvous_local_ip(r->session)
                      : "";

        if (local[0]) {
            relay = local;
        }

        nat_type = HBB__NAT_TYPE__SYMMETRIC;
    }

    /* a WebSocket client cannot take a local connection: never FetchLocalAddr */

    same = r->port != NGX_RUSTDESK_PORT_WS
           && ((a_lan && b_lan)
               || (r->addr.family == b->family
                   && ngx_memcmp(r->addr.addr, b->addr,
                                 b->family == AF_INET ? 4 : 16) == 0));

    hbb__rendezvous_message__init(&out);

    if (same) {
        hbb__fetch_local_addr__init(&fla);
        fla.socket_addr = ngx_stream_rustdesk_rendezvous_mangle(r->session,
                                                                &r->addr);
        fla.relay_server = relay;
        fla.socket_addr_v6 = ph->socket_addr_v6;

        out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_FETCH_LOCAL_ADDR;
        out.fetch_local_addr = &fla;

    } else {
        hbb__punch_hole__init(&hole);
        hole.socket_addr = ngx_stream_rustdesk_rendezvous_mangle(r->session,
                                                                 &r->addr);
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
                   same ? "fetch local addr" : "punch hole", id);

    if (host) {
        /* B is another host's: that host sends it, A's host gets B's answer */
        rc = ngx_stream_rustdesk_rendezvous_channel_to_peer_msg(rmcf, host,
                                                          id, &r->addr, &out,
                                                          c->pool, f);
        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }
    } else {
        rc = ngx_stream_rustdesk_rendezvous_to_peer(r->session, id, b, stream,
                                                    &out);
    }

    if (rc == NGX_DECLINED) {
        /* its stream is gone (its worker died), or Redis is: not now */
        return ngx_stream_rustdesk_rendezvous_punch_failure(r,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE);
    }

    r->result = "OK";

    return NGX_OK;
}


/* A asks B to meet at a relay: B hears it over UDP with A's address. */

ngx_int_t
ngx_stream_rustdesk_rendezvous_request_relay(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RequestRelay *rr)
{
    ngx_str_t                                    id;
    ngx_pid_t                                    stream;
    ngx_uint_t                                   online;
    ngx_rustdesk_ip_t                            b;
    Hbb__RequestRelay                            fwd;
    ngx_rustdesk_msg_t                           out;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_stream_rustdesk_rendezvous_wait(r->session) != NGX_OK) {
        return NGX_ERROR;
    }

    id.data = (u_char *) rr->id;
    id.len = ngx_strlen(rr->id);

    ngx_stream_rustdesk_rendezvous_note(r, &r->peer_id, rr->id);
    ngx_stream_rustdesk_rendezvous_note(r, &r->uuid, rr->uuid);

    if (ngx_rustdesk_peer_lookup(rmcf->zone, &id, ngx_current_msec, &online,
                                 &b, &stream)
        == NGX_DECLINED
        || b.family == 0 || stream == NGX_RUSTDESK_STREAM_CLOSED)
    {
        if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)) {
            return ngx_stream_rustdesk_rendezvous_relay_elsewhere(r, rr, &id);
        }

        r->result = "OFFLINE";
        return NGX_OK;
    }

    ngx_stream_rustdesk_rendezvous_relay_message(r, rr, &fwd, &out);

    /* before B hears of it: B goes to the relay at once */
    ngx_stream_rustdesk_rendezvous_brokered(r);

    if (ngx_stream_rustdesk_rendezvous_to_peer(r->session, &id, &b, stream,
                                               &out)
        == NGX_DECLINED)
    {
        r->result = "OFFLINE";
        return NGX_OK;
    }

    r->result = "OK";

    return NGX_OK;
}


/*
 * The RequestRelay B gets: a copy of A's, so that fields this server does
 * not know travel on, with A's address.
 */

static void
ngx_stream_rustdesk_rendezvous_relay_message(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RequestRelay *rr,
    Hbb__RequestRelay *fwd, ngx_rustdesk_msg_t *out)
{
    *fwd = *rr;
    fwd->socket_addr = ngx_stream_rustdesk_rendezvous_mangle(r->session,
                                                             &r->addr);

    hbb__rendezvous_message__init(out);
    out->union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY;
    out->request_relay = fwd;
}


/*
 * A RequestRelay for a peer not here: perhaps on another host, which
 * sends B the message as it would be sent from here.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_relay_elsewhere(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RequestRelay *rr,
    ngx_str_t *id)
{
    u_char              *msg, *last;
    Hbb__RequestRelay    fwd;
    ngx_rustdesk_msg_t   out;

    ngx_stream_rustdesk_rendezvous_relay_message(r, rr, &fwd, &out);

    msg = ngx_pnalloc(r->session->connection->pool,
                      ngx_rustdesk_msg_size(&out, 0));
    if (msg == NULL) {
        return NGX_ERROR;
    }

    last = ngx_rustdesk_msg_pack(&out, 0, msg);

    ngx_stream_rustdesk_rendezvous_brokered(r);

    return ngx_stream_rustdesk_rendezvous_cluster_relay(r, id, msg,
                                                        last - msg);
}


/*
 * B punched: A gets PunchHoleResponse with B's address as the server sees
 * it, B's signed key and B's direct-connection fields.  Nothing goes back
 * to B.  Over UDP, B sends it from a new socket, the one it punches with,
 * so that A learns the address the server sees for that socket
 * (PROTOCOL.md section 8); it is taken only from the IP B registered
 * from, so that a datagram from elsewhere cannot point A's punching at a
 * third party.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_hole_sent(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__PunchHoleSent *phs)
{
    ngx_str_t                                    id;
    ngx_pid_t                                    stream;
    ngx_uint_t                                   online;
    ngx_rustdesk_ip_t                            a, b;
    ngx_rustdesk_msg_t                           out;
    Hbb__PunchHoleResponse                       phr;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    ngx_stream_rustdesk_rendezvous_note(r, &r->id, phs->id);

    if (r->stream == NULL) {
        rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

        id.data = (u_char *) phs->id;
        id.len = ngx_strlen(phs->id);

        if (ngx_rustdesk_peer_lookup(rmcf->zone, &id, ngx_current_msec,
                                     &online, &b, &stream)
            != NGX_OK
            || !online
            || ngx_rustdesk_ip_cmp(&b, &r->addr, 0) != 0)
        {
            ngx_log_debug1(NGX_LOG_DEBUG_STREAM, r->session->connection->log,
                           0, "rustdesk: udp punch hole sent for \"%V\" not "
                           "from its registered IP, ignored", &id);
            r->result = "NOT_REGISTERED_IP";
            return NGX_OK;
        }
    }

    if (ngx_stream_rustdesk_rendezvous_requester(r->session, &phs->socket_addr,
                                                 &a)
        != NGX_OK)
    {
        r->result = "BAD_ADDRESS";
        return NGX_DONE;
    }

    hbb__rendezvous_message__init(&out);
    hbb__punch_hole_response__init(&phr);

    phr.socket_addr = ngx_stream_rustdesk_rendezvous_mangle(r->session,
                                                            &r->addr);
    phr.pk = ngx_stream_rustdesk_rendezvous_signed_pk(r->session,
                                                      phs->version, phs->id);
    phr.relay_server = phs->relay_server;
    phr.union_case = HBB__PUNCH_HOLE_RESPONSE__UNION_NAT_TYPE;
    phr.nat_type = phs->nat_type;
    phr.upnp_port = phs->upnp_port;
    phr.socket_addr_v6 = phs->socket_addr_v6;
    phr.is_udp = (r->stream == NULL);

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_RESPONSE;
    out.punch_hole_response = &phr;

    ngx_stream_rustdesk_rendezvous_answer(r->session, &a, &out);
    r->result = "OK";

    return NGX_DONE;
}


ngx_int_t
ngx_stream_rustdesk_rendezvous_local_addr(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__LocalAddr *la)
{
    ngx_rustdesk_ip_t         a;
    ngx_rustdesk_msg_t        out;
    Hbb__PunchHoleResponse    phr;

    ngx_stream_rustdesk_rendezvous_note(r, &r->id, la->id);

    if (ngx_stream_rustdesk_rendezvous_requester(r->session, &la->socket_addr,
                                                 &a)
        != NGX_OK)
    {
        r->result = "BAD_ADDRESS";
        return NGX_DONE;
    }

    hbb__rendezvous_message__init(&out);
    hbb__punch_hole_response__init(&phr);

    phr.socket_addr = la->local_addr;
    phr.pk = ngx_stream_rustdesk_rendezvous_signed_pk(r->session,
                                                      la->version, la->id);
    phr.relay_server = la->relay_server;
    phr.union_case = HBB__PUNCH_HOLE_RESPONSE__UNION_IS_LOCAL;
    phr.is_local = 1;
    phr.socket_addr_v6 = la->socket_addr_v6;

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_RESPONSE;
    out.punch_hole_response = &phr;

    ngx_stream_rustdesk_rendezvous_answer(r->session, &a, &out);
    r->result = "OK";

    return NGX_DONE;
}


/*
 * B accepted a relay: A gets the message without B's view of A's address,
 * with B's signed key in place of its id, and the relay rewritten for a
 * LAN-side A as the reference does (the relays evaluated for A).
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_relay_response(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RelayResponse *rr)
{
    char                                        *local;
    ngx_rustdesk_ip_t                            a;
    Hbb__RelayResponse                           fwd;
    ngx_rustdesk_msg_t                           out;
    ngx_stream_session_t                        *as;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (rr->union_case == HBB__RELAY_RESPONSE__UNION_ID) {
        ngx_stream_rustdesk_rendezvous_note(r, &r->id, rr->id);
    }

    ngx_stream_rustdesk_rendezvous_note(r, &r->uuid, rr->uuid);

    if (ngx_stream_rustdesk_rendezvous_requester(r->session, &rr->socket_addr,
                                                 &a)
        != NGX_OK)
    {
        r->result = "BAD_ADDRESS";
        return NGX_DONE;
    }

    ngx_stream_rustdesk_rendezvous_brokered(r);

    fwd = *rr;
    fwd.socket_addr.len = 0;
    fwd.socket_addr.data = NULL;

    if (rr->union_case == HBB__RELAY_RESPONSE__UNION_ID && rr->id[0]) {
        fwd.union_case = HBB__RELAY_RESPONSE__UNION_PK;
        fwd.pk = ngx_stream_rustdesk_rendezvous_signed_pk(r->session,
                                                          rr->version, rr->id);
    }

    /* the relays offered are evaluated for A's address, not for B's */

    if (rr->relay_server[0] && (rmcf->local_ip.len || rmcf->local_ip_value)) {
        as = ngx_stream_rustdesk_rendezvous_relay_session(r->session, &a);
        local = ngx_stream_rustdesk_rendezvous_local_ip(as);

        if (ngx_stream_rustdesk_rendezvous_is_lan(rmcf, &a) && local[0]) {
            fwd.relay_server = local;

        } else if (local[0] && ngx_strcmp(rr->relay_server, local) == 0) {
            fwd.relay_server = ngx_stream_rustdesk_rendezvous_relay_server(as);
        }
    }

    hbb__rendezvous_message__init(&out);
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_RELAY_RESPONSE;
    out.relay_response = &fwd;

    ngx_stream_rustdesk_rendezvous_answer(r->session, &a, &out);
    r->result = "OK";

    return NGX_DONE;
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

ngx_int_t
ngx_stream_rustdesk_rendezvous_punch_failure(
    ngx_stream_rustdesk_rendezvous_req_t *r,
    Hbb__PunchHoleResponse__Failure failure)
{
    ngx_rustdesk_msg_t        out;
    Hbb__PunchHoleResponse    phr;

    hbb__rendezvous_message__init(&out);
    hbb__punch_hole_response__init(&phr);

    phr.failure = failure;
    r->result = ngx_rustdesk_msg_enum_name(
                       &hbb__punch_hole_response__failure__descriptor, failure);
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_RESPONSE;
    out.punch_hole_response = &phr;

    if (r->send(r, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A relay session passes through here: its uuid and the id of the peer
 * asked to relay (r->peer_id from A's RequestRelay, r->id from B's
 * RelayResponse) are remembered for the relay's access log and tickets:
 * in this nginx's zone, and in the cluster's Redis for the relays of
 * every host (common/ngx_rustdesk_tickets.h), without waiting.
 */

static void
ngx_stream_rustdesk_rendezvous_brokered(ngx_stream_rustdesk_rendezvous_req_t *r)
{
    ngx_str_t                                   *id;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    if (r->uuid.len == 0) {
        return;
    }

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    id = r->peer_id.len ? &r->peer_id : &r->id;

    if (ngx_rustdesk_brokered_add(rmcf->brokered, &r->uuid, id,
                                  ngx_current_msec)
        == NGX_ERROR)
    {
        ngx_log_error(NGX_LOG_WARN, r->session->connection->log, 0,
                      "rustdesk: relay session \"%V\" not recorded: "
                      "rustdesk_brokered_zone is too small", &r->uuid);
    }

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        && ngx_rustdesk_tickets_record(
                           ngx_stream_rustdesk_rendezvous_cluster_redis(),
                           &rmcf->cluster.prefix, &r->uuid, id,
                           rmcf->brokered_timeout)
           != NGX_OK)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, r->session->connection->log, 0,
                       "rustdesk: relay session \"%V\" not recorded in "
                       "redis", &r->uuid);
    }
}
