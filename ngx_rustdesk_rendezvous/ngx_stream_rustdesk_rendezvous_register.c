/*
 * Registration (PROTOCOL.md section 6).  RegisterPk, the same over UDP
 * and over a TCP or WebSocket stream (section 8): the id and IP-blocker
 * checks, the peer table, the database on a memory miss, and the write of
 * what changed; the answer goes out at once or when the write is done
 * (from a datagram: here; on a stream: ..._stream.c, which also makes the
 * stream the peer's way in).  RegisterPeer, the UDP heartbeat: the
 * address refreshed, the key asked for when the table does not know it, a
 * ConfigUpdate when the client's serial is older.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


/* A RegisterPeer's answer, while the cluster's key of the peer is read. */
typedef struct {
    int32_t                      serial;
    ngx_uint_t                   proven;
} ngx_stream_rustdesk_rendezvous_heard_t;


static void ngx_stream_rustdesk_rendezvous_register_bound(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record);
static ngx_int_t ngx_stream_rustdesk_rendezvous_register_checked(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record);
static void ngx_stream_rustdesk_rendezvous_register_written(void *data,
    ngx_int_t rc);
static ngx_int_t ngx_stream_rustdesk_rendezvous_register_reply(
    ngx_stream_rustdesk_rendezvous_req_t *r,
    Hbb__RegisterPkResponse__Result result);
static ngx_int_t ngx_stream_rustdesk_rendezvous_register_back(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_str_t *id, int32_t serial,
    ngx_uint_t proven);
static void ngx_stream_rustdesk_rendezvous_register_keyed(
    ngx_stream_rustdesk_rendezvous_find_t *f);
static ngx_int_t ngx_stream_rustdesk_rendezvous_register_answer(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_uint_t request_pk,
    ngx_uint_t ip_change, ngx_uint_t proven, int32_t serial);


ngx_int_t
ngx_stream_rustdesk_rendezvous_register_pk(ngx_stream_session_t *s,
    Hbb__RegisterPk *rk, ngx_stream_rustdesk_rendezvous_record_t *record,
    ngx_stream_rustdesk_rendezvous_pk_t *pk, ngx_pool_t *pool)
{
    ngx_int_t                                    rc;
    ngx_uint_t                                   failed;
    ngx_connection_t                            *c;
    ngx_rustdesk_db_t                           *db;
    ngx_rustdesk_peer_row_t                      row;
    ngx_rustdesk_register_pk_t                  *req;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    /* the reference ignores a RegisterPk without uuid or pk */

    if (rk->uuid.len == 0 || rk->pk.len == 0) {
        return NGX_DONE;
    }

    c = s->connection;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    req = &pk->req;

    req->id.data = (u_char *) rk->id;
    req->id.len = ngx_strlen(rk->id);
    req->uuid.data = rk->uuid.data;
    req->uuid.len = rk->uuid.len;
    req->pk.data = rk->pk.data;
    req->pk.len = rk->pk.len;
    req->now = ngx_current_msec;

    /* the cluster has this uuid and key for the id */
    req->vouched = (record && record->binding == NGX_RUSTDESK_BINDING_SAME);

    ngx_memzero(&pk->change, sizeof(ngx_rustdesk_peer_change_t));

    /*
     * in a cluster, a new row's created_at is the id's first registration
     * anywhere, or this one, which bind() records: the same on every host
     */

    ngx_str_null(&pk->created);

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)) {
        pk->created.data = pk->created_at;

        if (record && record->created.len == NGX_RUSTDESK_CREATED_LEN) {
            ngx_memcpy(pk->created_at, record->created.data,
                       NGX_RUSTDESK_CREATED_LEN);
            pk->created.len = NGX_RUSTDESK_CREATED_LEN;

        } else {
            pk->created.len = ngx_stream_rustdesk_rendezvous_cluster_created(
                                                              pk->created_at);
        }
    }

    db = ngx_stream_rustdesk_rendezvous_db(&failed);

    if (req->id.len < NGX_RUSTDESK_ID_MIN) {
        pk->result = HBB__REGISTER_PK_RESPONSE__RESULT__UUID_MISMATCH;
        return NGX_OK;
    }

    if (req->id.len > NGX_RUSTDESK_ID_MAX) {
        pk->result = HBB__REGISTER_PK_RESPONSE__RESULT__INVALID_ID_FORMAT;
        return NGX_OK;
    }

    if (req->uuid.len > NGX_RUSTDESK_BLOB_MAX
        || req->pk.len > NGX_RUSTDESK_BLOB_MAX)
    {
        pk->result = HBB__REGISTER_PK_RESPONSE__RESULT__UUID_MISMATCH;
        return NGX_OK;
    }

    /*
     * a client registered over a stream sends RegisterPk on every new
     * connection (after each reload, say): the same key again from the
     * same IP is not counted, or many clients behind one NAT would be
     * refused for a while; nor is a key the cluster vouches for, sent
     * when this host asked for it because another host had it
     */

    if (!req->vouched
        && !(req->stream && ngx_rustdesk_peer_unchanged(rmcf->zone, req))
        && !ngx_rustdesk_ip_blocker_allow(rmcf->zone, &req->addr, &req->id,
                                          req->now, c->log))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: too many key registrations from this "
                      "address, refused peer \"%V\"", &req->id);
        ngx_stream_rustdesk_rendezvous_count(NGX_RUSTDESK_RDV_IP_BLOCKED, 1);
        pk->result = HBB__REGISTER_PK_RESPONSE__RESULT__TOO_FREQUENT;
        return NGX_OK;
    }

    if (failed) {
        pk->result = HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;
        return NGX_OK;
    }

    rc = ngx_rustdesk_peer_register_pk(rmcf->zone, req, NULL, &pk->change,
                                       &pk->result, c->log);

    if (rc == NGX_DECLINED) {
        /* not in memory: the database knows it, or it is new */

        rc = db ? ngx_rustdesk_db_get(db, &req->id, &row, pool, c->log)
                : NGX_DECLINED;

        if (rc == NGX_ERROR) {
            pk->result = HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;
            return NGX_OK;
        }

        if (rc == NGX_DECLINED) {
            ngx_memzero(&row, sizeof(ngx_rustdesk_peer_row_t));
        }

        (void) ngx_rustdesk_peer_register_pk(rmcf->zone, req, &row,
                                             &pk->change, &pk->result,
                                             c->log);
    }

    if (pk->result == HBB__REGISTER_PK_RESPONSE__RESULT__OK
        && pk->change.write)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: peer \"%V\" registered its key%s",
                      &req->id, req->stream ? " over a stream" : "");

        if (db == NULL) {
            /* no database: memory is all there is to change */
            pk->change.write = 0;
        }
    }

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        && pk->result == HBB__REGISTER_PK_RESPONSE__RESULT__OK)
    {
        /* the id is this uuid's on every host, unless bound already */
        ngx_stream_rustdesk_rendezvous_cluster_bind(rmcf, &req->id,
                                                    &req->uuid, &req->pk,
                                                    &pk->created, pool);
    }

    return NGX_OK;
}


ngx_int_t
ngx_stream_rustdesk_rendezvous_register_write(
    ngx_stream_rustdesk_rendezvous_pk_t *pk, ngx_pool_t *pool,
    ngx_rustdesk_db_done_pt done, void *data, ngx_log_t *log)
{
    ngx_uint_t          failed;
    ngx_rustdesk_ip_t   ip;
    ngx_rustdesk_db_t  *db;

    db = ngx_stream_rustdesk_rendezvous_db(&failed);

    if (db == NULL) {
        return NGX_ERROR;
    }

    ip = pk->req.addr;
    ip.port = 0;

    if (ngx_rustdesk_db_write(db, pool, pk->change.guid, &pk->req.id,
                              &pk->req.uuid, &pk->req.pk, &ip, &pk->created,
                              done, data, log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/*
 * RegisterPk from a datagram: NGX_AGAIN while the answer waits for the
 * cluster's binding of the id, or the database write.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_register_datagram(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk)
{
    ngx_stream_rustdesk_rendezvous_note(r, &r->id, rk->id);

    if (ngx_stream_rustdesk_rendezvous_cluster_check_uuid(r, rk,
                               ngx_stream_rustdesk_rendezvous_register_bound)
        == NGX_AGAIN)
    {
        return NGX_AGAIN;
    }

    return ngx_stream_rustdesk_rendezvous_register_checked(r, rk, NULL);
}


/* The cluster's record is known: bound to another uuid, or decide here. */

static void
ngx_stream_rustdesk_rendezvous_register_bound(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record)
{
    r->result = NULL;

    if (record->binding == NGX_RUSTDESK_BINDING_OTHER) {
        (void) ngx_stream_rustdesk_rendezvous_register_reply(r,
                           HBB__REGISTER_PK_RESPONSE__RESULT__UUID_MISMATCH);

    } else if (ngx_stream_rustdesk_rendezvous_register_checked(r, rk, record)
               == NGX_AGAIN)
    {
        /* the database write answers and finishes */
        return;
    }

    if (r->result) {
        ngx_stream_rustdesk_rendezvous_account(NGX_RUSTDESK_TRANSPORT_UDP,
                              HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK,
                              r->result);
    }

    r->finish(r);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_register_checked(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record)
{
    ngx_int_t                             rc;
    ngx_connection_t                     *c;
    ngx_stream_rustdesk_rendezvous_pk_t   pk;

    c = r->session->connection;

    pk.req.addr = r->addr;
    pk.req.stream = NGX_RUSTDESK_STREAM_NONE;

    ngx_stream_rustdesk_rendezvous_note(r, &r->id, rk->id);

    rc = ngx_stream_rustdesk_rendezvous_register_pk(r->session, rk, record,
                                                    &pk, c->pool);
    if (rc == NGX_DONE) {
        r->result = "IGNORED";
        return NGX_OK;
    }

    if (pk.result == HBB__REGISTER_PK_RESPONSE__RESULT__OK
        && pk.change.write)
    {
        rc = ngx_stream_rustdesk_rendezvous_register_write(&pk, c->pool,
                                ngx_stream_rustdesk_rendezvous_register_written,
                                r, c->log);
        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        pk.result = HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;
    }

    return ngx_stream_rustdesk_rendezvous_register_reply(r, pk.result);
}


static void
ngx_stream_rustdesk_rendezvous_register_written(void *data, ngx_int_t rc)
{
    ngx_stream_rustdesk_rendezvous_req_t  *r = data;

    Hbb__RegisterPkResponse__Result  result;

    result = (rc == NGX_OK) ? HBB__REGISTER_PK_RESPONSE__RESULT__OK
                            : HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;

    (void) ngx_stream_rustdesk_rendezvous_register_reply(r, result);

    ngx_stream_rustdesk_rendezvous_account(NGX_RUSTDESK_TRANSPORT_UDP,
                          HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK,
                          ngx_stream_rustdesk_rendezvous_register_result(result));

    r->finish(r);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_register_reply(
    ngx_stream_rustdesk_rendezvous_req_t *r,
    Hbb__RegisterPkResponse__Result result)
{
    ngx_rustdesk_msg_t                           out;
    Hbb__RegisterPkResponse                      rpr;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        && result == HBB__REGISTER_PK_RESPONSE__RESULT__OK)
    {
        /* registered here with its key: this host has it now */
        (void) ngx_stream_rustdesk_rendezvous_cluster_publish(r, &r->id, 0);
    }

    hbb__rendezvous_message__init(&out);
    hbb__register_pk_response__init(&rpr);

    rpr.result = result;
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK_RESPONSE;
    out.register_pk_response = &rpr;

    r->result = ngx_stream_rustdesk_rendezvous_register_result(result);

    return r->send(r, &out) == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/* RegisterPeer: RegisterPeerResponse{request_pk}, then any ConfigUpdate. */

ngx_int_t
ngx_stream_rustdesk_rendezvous_register_peer(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPeer *rp)
{
    u_char                                      *p;
    ngx_str_t                                    id;
    ngx_uint_t                                   request_pk, ip_change,
                                                 proven;
    ngx_msec_t                                   prev;
    ngx_connection_t                            *c;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;
    u_char                                       text[NGX_SOCKADDR_STRLEN];

    id.data = (u_char *) rp->id;
    id.len = ngx_strlen(rp->id);

    if (id.len == 0) {
        r->result = "IGNORED";
        return NGX_OK;
    }

    ngx_stream_rustdesk_rendezvous_note(r, &r->id, rp->id);

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    ngx_rustdesk_peer_register(rmcf->zone, &id, &r->addr, ngx_current_msec,
                               &request_pk, &ip_change, &proven, &prev);

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf) && !request_pk) {
        /* written to the cluster's directory once per refresh period */
        (void) ngx_stream_rustdesk_rendezvous_cluster_publish(r, &id, prev);
    }

    if (ip_change) {
        c = r->session->connection;
        p = text + ngx_sock_ntop(c->sockaddr, c->socklen, text,
                                 NGX_SOCKADDR_STRLEN, 1);
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: IP change of peer \"%V\" to %*s",
                      &id, p - text, text);
    }

    /* back after being offline: perhaps with a key registered elsewhere */

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf) && !request_pk
        && (prev == 0
            || (ngx_msec_int_t) (ngx_current_msec - prev)
               >= (ngx_msec_int_t) rmcf->zone->online_ttl)
        && ngx_stream_rustdesk_rendezvous_register_back(r, &id, rp->serial,
                                                        proven)
           == NGX_AGAIN)
    {
        return NGX_AGAIN;
    }

    return ngx_stream_rustdesk_rendezvous_register_answer(r, request_pk,
                                                          ip_change, proven,
                                                          rp->serial);
}


/*
 * A peer with a key here comes online again (from offline, not on every
 * heartbeat): the answer waits for the cluster's key of it, which may be
 * newer, registered on another host meanwhile (..._cluster_binding.c).
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_register_back(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_str_t *id, int32_t serial,
    ngx_uint_t proven)
{
    ngx_stream_rustdesk_rendezvous_heard_t  *h;
    ngx_stream_rustdesk_rendezvous_find_t   *f;

    f = ngx_stream_rustdesk_rendezvous_cluster_find_create(r, 1);
    h = ngx_palloc(r->session->connection->pool,
                   sizeof(ngx_stream_rustdesk_rendezvous_heard_t));

    if (f == NULL || h == NULL) {
        return NGX_DECLINED;
    }

    /* the id may be the datagram's, gone when the handler returns */

    f->ids[0].len = id->len;
    f->ids[0].data = ngx_pstrdup(r->session->connection->pool, id);
    if (f->ids[0].data == NULL) {
        return NGX_DECLINED;
    }

    h->serial = serial;
    h->proven = proven;

    f->data = h;
    f->found = ngx_stream_rustdesk_rendezvous_register_keyed;

    return ngx_stream_rustdesk_rendezvous_cluster_check_pk(f);
}


/* Another key in the cluster: asked for (request_pk), else as usual. */

static void
ngx_stream_rustdesk_rendezvous_register_keyed(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    ngx_stream_rustdesk_rendezvous_req_t    *r;
    ngx_stream_rustdesk_rendezvous_heard_t  *h;

    r = f->req;
    h = f->data;

    (void) ngx_stream_rustdesk_rendezvous_register_answer(r, f->count != 0, 0,
                                                          h->proven,
                                                          h->serial);

    ngx_stream_rustdesk_rendezvous_account(NGX_RUSTDESK_TRANSPORT_UDP,
                              HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER,
                              r->result);

    r->finish(r);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_register_answer(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_uint_t request_pk,
    ngx_uint_t ip_change, ngx_uint_t proven, int32_t serial)
{
    Hbb__ConfigUpdate          *cu;
    ngx_rustdesk_msg_t          out;
    Hbb__RegisterPeerResponse   rpr;

    hbb__rendezvous_message__init(&out);
    hbb__register_peer_response__init(&rpr);

    /* a heartbeat that changed nothing is "OK" (keep it out of the log) */
    r->result = request_pk ? "REQUEST_PK" : ip_change ? "IP_CHANGE" : "OK";

    rpr.request_pk = request_pk;
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER_RESPONSE;
    out.register_peer_response = &rpr;

    if (r->send(r, &out) == NGX_ERROR) {
        return NGX_ERROR;
    }

    /*
     * the ConfigUpdate, larger than a RegisterPeer, only to a peer with a
     * key heard from its registered IP: anyone else gets nothing more
     * than it sent (PROTOCOL.md section 6)
     */

    if (request_pk || !proven) {
        return NGX_OK;
    }

    r->proven = 1;

    cu = ngx_stream_rustdesk_rendezvous_config_update(r->session, serial);

    if (cu) {
        hbb__rendezvous_message__init(&out);
        out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_CONFIGURE_UPDATE;
        out.configure_update = cu;

        if (r->send(r, &out) == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


const char *
ngx_stream_rustdesk_rendezvous_register_result(
    Hbb__RegisterPkResponse__Result result)
{
    const char  *name;

    name = ngx_rustdesk_msg_enum_name(
                          &hbb__register_pk_response__result__descriptor,
                          result);

    return name ? name : "UNKNOWN";
}
