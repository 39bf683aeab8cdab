/*
 * The requests a host of the cluster cannot answer alone, for peers not
 * online here: the answer waits for the directory (..._cluster_directory.c)
 * and is sent when Redis answers, or from this host alone when it does
 * not within rustdesk_cluster_timeout (or is not connected, or is busy).
 *
 *   OnlineRequest     peers online on another host are shown online
 *   PunchHoleRequest  a peer online on another host: that host is asked
 *   RequestRelay      to send the PunchHole (FetchLocalAddr) or the
 *                     RequestRelay to its peer (..._cluster_channel.c);
 *                     the peer's answer comes back through Redis to the
 *                     requester waiting here
 *
 * A peer offline everywhere is answered as one host would: a punch hole
 * request for an id that no database here has, but that some host bound
 * (the directory's MGET reads the binding too), is OFFLINE, not
 * ID_NOT_EXIST.  The online query and RequestRelay need nothing more: one
 * host says "not online" and answers no RequestRelay whether the id
 * exists or not.
 *
 * The requester's session keeps reading meanwhile; if it ends first, the
 * answer is dropped.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


/* An online query's answer while it waits for Redis. */
typedef struct {
    ProtobufCBinaryData   states;    /* this host's, in the session's pool */
    ngx_uint_t           *index;     /* of each id asked for, in the query */
} ngx_stream_rustdesk_rendezvous_online_t;


static void ngx_stream_rustdesk_rendezvous_cluster_punch_found(
    ngx_stream_rustdesk_rendezvous_find_t *f);
static void ngx_stream_rustdesk_rendezvous_cluster_punch_sent(
    ngx_stream_rustdesk_rendezvous_find_t *f);
static void ngx_stream_rustdesk_rendezvous_cluster_relay_sent(
    ngx_stream_rustdesk_rendezvous_find_t *f);
static void ngx_stream_rustdesk_rendezvous_cluster_punch_done(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_int_t rc);
static void ngx_stream_rustdesk_rendezvous_cluster_unheard(
    ngx_stream_rustdesk_rendezvous_find_t *f);
static void ngx_stream_rustdesk_rendezvous_cluster_online_found(
    ngx_stream_rustdesk_rendezvous_find_t *f);
static void ngx_stream_rustdesk_rendezvous_cluster_relay_found(
    ngx_stream_rustdesk_rendezvous_find_t *f);


ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_punch(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__PunchHoleRequest *ph,
    ngx_str_t *id, ngx_uint_t failure)
{
    Hbb__PunchHoleRequest                  *cp;
    ngx_stream_rustdesk_rendezvous_find_t  *f;

    if (id->len == 0 || r->stream == NULL) {
        return ngx_stream_rustdesk_rendezvous_punch_failure(r, failure);
    }

    f = ngx_stream_rustdesk_rendezvous_cluster_find_create(r, 1);
    if (f == NULL) {
        return ngx_stream_rustdesk_rendezvous_punch_failure(r, failure);
    }

    /*
     * what the PunchHole takes of the request, kept: the message is
     * freed when the handler returns
     */

    cp = ngx_palloc(r->session->connection->pool,
                    sizeof(Hbb__PunchHoleRequest) + ph->socket_addr_v6.len);
    if (cp == NULL) {
        return ngx_stream_rustdesk_rendezvous_punch_failure(r, failure);
    }

    hbb__punch_hole_request__init(cp);

    cp->nat_type = ph->nat_type;
    cp->udp_port = ph->udp_port;
    cp->force_relay = ph->force_relay;
    cp->upnp_port = ph->upnp_port;
    cp->socket_addr_v6.len = ph->socket_addr_v6.len;
    cp->socket_addr_v6.data = (uint8_t *) (cp + 1);
    ngx_memcpy(cp->socket_addr_v6.data, ph->socket_addr_v6.data,
               ph->socket_addr_v6.len);

    f->data = cp;

    /* the id is the message's, freed when the handler returns */

    f->ids[0].len = id->len;
    f->ids[0].data = ngx_pstrdup(r->session->connection->pool, id);
    if (f->ids[0].data == NULL) {
        return ngx_stream_rustdesk_rendezvous_punch_failure(r, failure);
    }

    f->found = ngx_stream_rustdesk_rendezvous_cluster_punch_found;
    f->value = failure;

    /* an id no database here has: OFFLINE if some host registered it */
    f->binding = (failure == HBB__PUNCH_HOLE_RESPONSE__FAILURE__ID_NOT_EXIST);

    if (ngx_stream_rustdesk_rendezvous_cluster_find(f) != NGX_AGAIN) {
        return ngx_stream_rustdesk_rendezvous_punch_failure(r, failure);
    }

    return NGX_AGAIN;
}


static void
ngx_stream_rustdesk_rendezvous_cluster_punch_found(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    ngx_int_t                              rc;
    ngx_uint_t                             failure;
    ngx_stream_rustdesk_rendezvous_req_t  *r;

    r = f->req;
    failure = f->value;

    if (f->hosts[0].len) {
        ngx_log_error(NGX_LOG_INFO, r->session->connection->log, 0,
                      "rustdesk: peer \"%V\" is online on host \"%V\": "
                      "asking it", &f->ids[0], &f->hosts[0]);

        f->found = ngx_stream_rustdesk_rendezvous_cluster_punch_sent;

        rc = ngx_stream_rustdesk_rendezvous_punch_peer(r, f->data,
                                                       &f->ids[0],
                                                       &f->addrs[0], 0,
                                                       &f->hosts[0], f);
        if (rc == NGX_AGAIN) {
            /* counted when Redis says whether the host heard it */
            return;
        }

    } else {
        if (f->bound) {
            ngx_log_error(NGX_LOG_INFO, r->session->connection->log, 0,
                          "rustdesk: peer \"%V\" is registered in the "
                          "cluster, not online", &f->ids[0]);

            failure = HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE;
        }

        rc = ngx_stream_rustdesk_rendezvous_punch_failure(r, failure);
    }

    ngx_stream_rustdesk_rendezvous_cluster_punch_done(r, rc);
}


/* The answer written (rc: how it went), the request counted. */

static void
ngx_stream_rustdesk_rendezvous_cluster_punch_done(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_int_t rc)
{
    if (rc != NGX_OK) {
        ngx_rustdesk_tcp_fail(r->stream);
    }

    ngx_stream_rustdesk_rendezvous_account(
                           ngx_stream_rustdesk_rendezvous_metrics_transport(r),
                           HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_REQUEST,
                           r->result);
}


/*
 * The peer's host heard the request (it sends it to the peer, whose
 * answer comes back here), or nobody listened there: a host that is gone
 * leaves its peers unreachable until they register elsewhere, OFFLINE
 * now rather than no answer.
 */

static void
ngx_stream_rustdesk_rendezvous_cluster_punch_sent(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    ngx_int_t                              rc;
    ngx_stream_rustdesk_rendezvous_req_t  *r;

    r = f->req;
    rc = NGX_OK;

    if (f->count > 0) {
        r->result = "OK";

    } else {
        ngx_stream_rustdesk_rendezvous_cluster_unheard(f);

        rc = ngx_stream_rustdesk_rendezvous_punch_failure(r,
                       HBB__PUNCH_HOLE_RESPONSE__FAILURE__OFFLINE);
    }

    ngx_stream_rustdesk_rendezvous_cluster_punch_done(r, rc);
}


/*
 * A RequestRelay for a peer not here, encoded already for the peer (msg,
 * len, in the session's pool): NGX_AGAIN while Redis is asked, else the
 * result is OFFLINE (nothing is answered to a RequestRelay that goes
 * nowhere, as on one host).
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_relay(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_str_t *id, u_char *msg,
    size_t len)
{
    ngx_stream_rustdesk_rendezvous_find_t  *f;

    r->result = "OFFLINE";

    if (id->len == 0 || r->stream == NULL) {
        return NGX_OK;
    }

    f = ngx_stream_rustdesk_rendezvous_cluster_find_create(r, 1);
    if (f == NULL) {
        return NGX_OK;
    }

    f->ids[0].len = id->len;
    f->ids[0].data = ngx_pstrdup(r->session->connection->pool, id);
    if (f->ids[0].data == NULL) {
        return NGX_OK;
    }

    f->found = ngx_stream_rustdesk_rendezvous_cluster_relay_found;
    f->data = msg;
    f->value = len;

    if (ngx_stream_rustdesk_rendezvous_cluster_find(f) != NGX_AGAIN) {
        return NGX_OK;
    }

    r->result = NULL;

    return NGX_AGAIN;
}


static void
ngx_stream_rustdesk_rendezvous_cluster_relay_found(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    ngx_stream_rustdesk_rendezvous_req_t        *r;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    r = f->req;
    r->result = "OFFLINE";

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (f->hosts[0].len) {
        ngx_log_error(NGX_LOG_INFO, r->session->connection->log, 0,
                      "rustdesk: peer \"%V\" is online on host \"%V\": "
                      "asking it to relay", &f->ids[0], &f->hosts[0]);

        f->found = ngx_stream_rustdesk_rendezvous_cluster_relay_sent;

        if (ngx_stream_rustdesk_rendezvous_channel_to_peer_raw(rmcf,
                                     &f->hosts[0], &f->ids[0], &r->addr,
                                     f->data, f->value,
                                     r->session->connection->pool, f)
            == NGX_AGAIN)
        {
            return;
        }
    }

    ngx_stream_rustdesk_rendezvous_account(
                           ngx_stream_rustdesk_rendezvous_metrics_transport(r),
                           HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY,
                           r->result);
}


static void
ngx_stream_rustdesk_rendezvous_cluster_relay_sent(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    ngx_stream_rustdesk_rendezvous_req_t  *r;

    r = f->req;
    r->result = f->count > 0 ? "OK" : "OFFLINE";

    if (f->count <= 0) {
        ngx_stream_rustdesk_rendezvous_cluster_unheard(f);
    }

    ngx_stream_rustdesk_rendezvous_account(
                           ngx_stream_rustdesk_rendezvous_metrics_transport(r),
                           HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY,
                           r->result);
}


static void
ngx_stream_rustdesk_rendezvous_cluster_unheard(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    ngx_log_error(NGX_LOG_INFO, f->req->session->connection->log, 0,
                  "rustdesk: host \"%V\" of peer \"%V\" %s", &f->hosts[0],
                  &f->ids[0],
                  f->count == 0 ? "does not listen: gone?"
                                : "could not be asked");
}


/*
 * states: this host's answer (bit 7 - i % 8 of byte i / 8 for peer i),
 * from the session's pool; the peers not set there are asked for.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_online(
    ngx_stream_rustdesk_rendezvous_req_t *r, char **peers, size_t n,
    u_char *states)
{
    size_t                                    i, k;
    ngx_str_t                                 id;
    ngx_pool_t                               *pool;
    ngx_stream_rustdesk_rendezvous_find_t    *f;
    ngx_stream_rustdesk_rendezvous_online_t  *on;

    if (r->stream == NULL) {
        return NGX_DECLINED;
    }

    k = 0;

    for (i = 0; i < n; i++) {
        if (!(states[i / 8] & (1 << (7 - i % 8))) && peers[i][0]) {
            k++;
        }
    }

    if (k == 0) {
        return NGX_DECLINED;
    }

    f = ngx_stream_rustdesk_rendezvous_cluster_find_create(r, k);
    if (f == NULL) {
        return NGX_DECLINED;
    }

    pool = r->session->connection->pool;

    on = ngx_palloc(pool, sizeof(ngx_stream_rustdesk_rendezvous_online_t)
                          + k * sizeof(ngx_uint_t));
    if (on == NULL) {
        return NGX_DECLINED;
    }

    on->states.data = states;
    on->states.len = (n + 7) / 8;
    on->index = (ngx_uint_t *) (on + 1);

    k = 0;

    for (i = 0; i < n; i++) {
        if ((states[i / 8] & (1 << (7 - i % 8))) || peers[i][0] == '\0') {
            continue;
        }

        id.data = (u_char *) peers[i];
        id.len = ngx_min(ngx_strlen(peers[i]), NGX_RUSTDESK_ID_MAX);

        /* the ids are the message's, freed when the handler returns */

        f->ids[k].len = id.len;
        f->ids[k].data = ngx_pstrdup(pool, &id);
        if (f->ids[k].data == NULL) {
            return NGX_DECLINED;
        }

        on->index[k++] = i;
    }

    f->found = ngx_stream_rustdesk_rendezvous_cluster_online_found;
    f->data = on;

    if (ngx_stream_rustdesk_rendezvous_cluster_find(f) != NGX_AGAIN) {
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


/* The answer, with the peers online elsewhere; then the session ends. */

static void
ngx_stream_rustdesk_rendezvous_cluster_online_found(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    ngx_uint_t                                i, j;
    ngx_rustdesk_msg_t                        out;
    Hbb__OnlineResponse                       res;
    ngx_stream_rustdesk_rendezvous_req_t     *r;
    ngx_stream_rustdesk_rendezvous_online_t  *on;

    r = f->req;
    on = f->data;

    for (i = 0; i < f->n; i++) {
        if (f->hosts[i].len) {
            j = on->index[i];
            on->states.data[j / 8] |= 1 << (7 - j % 8);
        }
    }

    hbb__rendezvous_message__init(&out);
    hbb__online_response__init(&res);

    res.states.data = on->states.data;
    res.states.len = on->states.len;

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_ONLINE_RESPONSE;
    out.online_response = &res;

    r->result = "OK";

    if (r->send(r, &out) != NGX_OK) {
        ngx_rustdesk_tcp_fail(r->stream);
        return;
    }

    /* as the handler's NGX_DONE: closed once the answer is written */
    (void) ngx_rustdesk_tcp_done(r->stream);
}
