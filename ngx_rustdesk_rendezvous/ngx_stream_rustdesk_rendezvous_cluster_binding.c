/*
 * The cluster's binding of each id to the uuid that registered it first
 * (PROTOCOL.md section 6: a RegisterPk with another uuid gets
 * UUID_MISMATCH), so that it holds across hosts: in Redis,
 *
 *     <prefix>uuid:<id>  =  the uuid's bytes
 *
 * with no TTL, written (SET NX) when a host answers a RegisterPk OK.  A
 * RegisterPk, on any transport, first reads it (GET, the answer waiting
 * up to rustdesk_cluster_timeout): bound to another uuid, the answer is
 * UUID_MISMATCH at once; else the host's own checks decide, as on one
 * host.  Without an answer from Redis, the host's checks alone decide.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


typedef struct {
    Hbb__RegisterPk                                 rk;     /* a copy */
    ngx_stream_rustdesk_rendezvous_bound_pt         bound;
} ngx_stream_rustdesk_rendezvous_binding_t;


static void ngx_stream_rustdesk_rendezvous_cluster_uuid(
    ngx_rustdesk_redis_t *redis, redisReply *reply, void *data);
static u_char *ngx_stream_rustdesk_rendezvous_binding_key(ngx_pool_t *pool,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *id,
    size_t *len);


/*
 * NGX_AGAIN: bound() is called later with a copy of rk and whether the id
 * is bound to another uuid; NGX_DECLINED: decide now, on this host alone.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_check_uuid(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_bound_pt bound)
{
    u_char                                      *key;
    size_t                                       len[2];
    ngx_str_t                                    id;
    ngx_pool_t                                  *pool;
    const char                                  *argv[2];
    ngx_stream_rustdesk_rendezvous_find_t       *f;
    ngx_stream_rustdesk_rendezvous_binding_t    *b;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    id.data = (u_char *) rk->id;
    id.len = ngx_strlen(rk->id);

    /* what the host's own checks refuse anyway is not asked about */

    if (!ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        || rk->uuid.len == 0 || rk->pk.len == 0
        || id.len < NGX_RUSTDESK_ID_MIN || id.len > NGX_RUSTDESK_ID_MAX
        || rk->uuid.len > NGX_RUSTDESK_BLOB_MAX
        || rk->pk.len > NGX_RUSTDESK_BLOB_MAX
        || !ngx_rustdesk_redis_can_send(
                                ngx_stream_rustdesk_rendezvous_cluster_redis()))
    {
        return NGX_DECLINED;
    }

    pool = r->session->connection->pool;

    f = ngx_stream_rustdesk_rendezvous_cluster_find_create(r, 1);
    b = ngx_palloc(pool, sizeof(ngx_stream_rustdesk_rendezvous_binding_t)
                         + id.len + 1 + rk->uuid.len + rk->pk.len);

    if (f == NULL || b == NULL) {
        return NGX_DECLINED;
    }

    /* the message is freed when the handler returns: what it needs, kept */

    hbb__register_pk__init(&b->rk);

    b->rk.id = (char *) (b + 1);
    ngx_memcpy(b->rk.id, id.data, id.len + 1);

    b->rk.uuid.len = rk->uuid.len;
    b->rk.uuid.data = (uint8_t *) b->rk.id + id.len + 1;
    ngx_memcpy(b->rk.uuid.data, rk->uuid.data, rk->uuid.len);

    b->rk.pk.len = rk->pk.len;
    b->rk.pk.data = b->rk.uuid.data + rk->uuid.len;
    ngx_memcpy(b->rk.pk.data, rk->pk.data, rk->pk.len);

    b->rk.no_register_device = rk->no_register_device;
    b->bound = bound;

    f->ids[0].data = (u_char *) b->rk.id;
    f->ids[0].len = id.len;
    f->data = b;

    key = ngx_stream_rustdesk_rendezvous_binding_key(pool, &rmcf->cluster,
                                                     &id, &len[1]);
    if (key == NULL) {
        return NGX_DECLINED;
    }

    argv[0] = "GET";
    len[0] = 3;
    argv[1] = (const char *) key;

    return ngx_stream_rustdesk_rendezvous_cluster_ask(f, 2, argv, len,
                                   ngx_stream_rustdesk_rendezvous_cluster_uuid);
}


static void
ngx_stream_rustdesk_rendezvous_cluster_uuid(ngx_rustdesk_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_stream_rustdesk_rendezvous_find_t *f = data;

    ngx_uint_t                                 other;
    ngx_stream_rustdesk_rendezvous_binding_t  *b;

    ngx_stream_rustdesk_rendezvous_cluster_answered(f);

    b = f->data;

    other = reply != NULL && reply->type == REDIS_REPLY_STRING
            && (reply->len != b->rk.uuid.len
                || ngx_memcmp(reply->str, b->rk.uuid.data, reply->len) != 0);

    if (other) {
        ngx_log_error(NGX_LOG_INFO, f->req->session->connection->log, 0,
                      "rustdesk: peer \"%V\" is registered with another "
                      "uuid in the cluster", &f->ids[0]);
    }

    b->bound(f->req, &b->rk, other);
}


/* A RegisterPk answered OK here: the id is this uuid's, if no one's yet. */

void
ngx_stream_rustdesk_rendezvous_cluster_bind(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *id,
    ngx_str_t *uuid, ngx_pool_t *pool)
{
    u_char      *key;
    size_t       len[4];
    const char  *argv[4];

    key = ngx_stream_rustdesk_rendezvous_binding_key(pool, &rmcf->cluster,
                                                     id, &len[1]);
    if (key == NULL) {
        return;
    }

    argv[0] = "SET";
    len[0] = 3;
    argv[1] = (const char *) key;
    argv[2] = (const char *) uuid->data;
    len[2] = uuid->len;
    argv[3] = "NX";
    len[3] = 2;

    (void) ngx_rustdesk_redis_send(
                           ngx_stream_rustdesk_rendezvous_cluster_redis(), 4,
                           argv, len);
}


static u_char *
ngx_stream_rustdesk_rendezvous_binding_key(ngx_pool_t *pool,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *id,
    size_t *len)
{
    u_char  *key, *p;

    key = ngx_pnalloc(pool, cc->prefix.len + sizeof("uuid:") - 1 + id->len);
    if (key == NULL) {
        return NULL;
    }

    p = ngx_cpymem(key, cc->prefix.data, cc->prefix.len);
    p = ngx_cpymem(p, "uuid:", sizeof("uuid:") - 1);
    p = ngx_cpymem(p, id->data, id->len);

    *len = p - key;

    return key;
}
