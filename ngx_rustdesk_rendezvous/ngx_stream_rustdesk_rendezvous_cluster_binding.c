/*
 * The cluster's peer records, which must agree on every host: each id
 * bound to the uuid that registered it first (PROTOCOL.md section 6: a
 * RegisterPk with another uuid gets UUID_MISMATCH), the key (pk) it
 * registered last, that requesters get signed, and when it registered
 * first, the created_at of its database rows.  In Redis, with no TTL,
 *
 *     <prefix>uuid:<id>     =  the uuid's bytes
 *     <prefix>pk:<id>       =  the key's bytes
 *     <prefix>created:<id>  =  "YYYY-MM-DD HH:MM:SS", UTC
 *
 * all written when a host answers a RegisterPk OK, by one script (EVAL):
 * the uuid if the id is bound to none yet, and, if the id is bound to
 * this uuid, the key (so that a key is never another uuid's) and the time
 * if there is none yet (the first registration anywhere).  Keys of Redis
 * written before the key was shared are only uuid: ones; the key comes
 * with the next registration, or with rustdesk-cluster-import.
 *
 * The time is in the form of SQLite's current_timestamp, as created_at
 * has it in rustdesk-server's database: a new row on any host takes the
 * cluster's, else this registration's, recorded then; a row's created_at
 * never changes.  The other columns need not agree: user, status and
 * note are never written by rustdesk-server, and info's IP is each
 * host's last one, which the vouching below makes irrelevant.
 *
 * A RegisterPk, on any transport, first reads all three (MGET, the answer
 * waiting up to rustdesk_cluster_timeout): bound to another uuid, the
 * answer is UUID_MISMATCH at once; bound to this uuid with this key, the
 * cluster vouches for the key: it is the one this peer registered last,
 * on whatever host, so that neither an IP change since this host's record
 * makes it suspect (a UUID_MISMATCH, where one host would say OK) nor the
 * IP blocker counts it.  Else the host's own checks decide, as on one
 * host.  Without an answer from Redis, the host's checks alone decide.
 *
 * The key of a peer that comes back to this host over UDP (RegisterPeer
 * finds its record, with a key, offline: it was away, perhaps on another
 * host with a new key) is read once as it comes online (GET), not on
 * every heartbeat; if the cluster has another key, the answer is
 * request_pk, the protocol's own way to have the client send its key: its
 * RegisterPk, vouched for, updates this host's record and database as on
 * one host.  This host's record is not rewritten from Redis: the client
 * proves its key itself, and the write goes the usual way.  (The
 * heartbeat refreshed the record already: for the round trip until that
 * RegisterPk, a requester may still get the old key.)  Over a stream a
 * peer sends its key on every connection anyway.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


/*
 * KEYS[1] the binding, KEYS[2] the key, KEYS[3] the time; ARGV: the uuid,
 * the key, the time
 */
#define NGX_RUSTDESK_CLUSTER_BIND                                            \
    "local u = redis.call('GET', KEYS[1]) "                                  \
    "if u and u ~= ARGV[1] then return 0 end "                               \
    "if not u then redis.call('SET', KEYS[1], ARGV[1]) end "                 \
    "redis.call('SET', KEYS[2], ARGV[2]) "                                   \
    "redis.call('SET', KEYS[3], ARGV[3], 'NX') "                             \
    "return 1"


typedef struct {
    Hbb__RegisterPk                                 rk;     /* a copy */
    ngx_stream_rustdesk_rendezvous_bound_pt         bound;
} ngx_stream_rustdesk_rendezvous_binding_t;


static void ngx_stream_rustdesk_rendezvous_cluster_uuid(
    ngx_rustdesk_redis_t *redis, redisReply *reply, void *data);
static void ngx_stream_rustdesk_rendezvous_cluster_pk(
    ngx_rustdesk_redis_t *redis, redisReply *reply, void *data);
static ngx_uint_t ngx_stream_rustdesk_rendezvous_cluster_same(
    redisReply *reply, u_char *data, size_t len);
static ngx_uint_t ngx_stream_rustdesk_rendezvous_cluster_created_valid(
    redisReply *reply);


/*
 * NGX_AGAIN: bound() is called later with a copy of rk and what the
 * cluster says of the id (its binding, NGX_RUSTDESK_BINDING_*, and
 * created_at); NGX_DECLINED: decide now, on this host alone.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_check_uuid(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_bound_pt bound)
{
    size_t                                       len[4];
    ngx_str_t                                    id;
    ngx_pool_t                                  *pool;
    const char                                  *argv[4];
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

    argv[0] = "MGET";
    len[0] = 4;

    argv[1] = (const char *) ngx_stream_rustdesk_rendezvous_cluster_record_key(
                                  pool, &rmcf->cluster, "uuid:", &id, &len[1]);
    argv[2] = (const char *) ngx_stream_rustdesk_rendezvous_cluster_record_key(
                                  pool, &rmcf->cluster, "pk:", &id, &len[2]);
    argv[3] = (const char *) ngx_stream_rustdesk_rendezvous_cluster_record_key(
                                  pool, &rmcf->cluster, "created:", &id,
                                  &len[3]);

    if (argv[1] == NULL || argv[2] == NULL || argv[3] == NULL) {
        return NGX_DECLINED;
    }

    return ngx_stream_rustdesk_rendezvous_cluster_ask(f, 4, argv, len,
                                   ngx_stream_rustdesk_rendezvous_cluster_uuid);
}


static void
ngx_stream_rustdesk_rendezvous_cluster_uuid(ngx_rustdesk_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_stream_rustdesk_rendezvous_find_t *f = data;

    redisReply                                *uuid, *pk, *created;
    ngx_stream_rustdesk_rendezvous_record_t    record;
    ngx_stream_rustdesk_rendezvous_binding_t  *b;

    ngx_stream_rustdesk_rendezvous_cluster_answered(f);

    b = f->data;

    record.binding = NGX_RUSTDESK_BINDING_NONE;
    ngx_str_null(&record.created);

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 3)
    {
        uuid = reply->element[0];
        pk = reply->element[1];
        created = reply->element[2];

        if (uuid->type == REDIS_REPLY_STRING) {
            if (!ngx_stream_rustdesk_rendezvous_cluster_same(uuid,
                                           b->rk.uuid.data, b->rk.uuid.len))
            {
                record.binding = NGX_RUSTDESK_BINDING_OTHER;

            } else if (pk->type == REDIS_REPLY_STRING
                       && ngx_stream_rustdesk_rendezvous_cluster_same(pk,
                                               b->rk.pk.data, b->rk.pk.len))
            {
                record.binding = NGX_RUSTDESK_BINDING_SAME;
            }
        }

        if (created->type == REDIS_REPLY_STRING) {
            if (ngx_stream_rustdesk_rendezvous_cluster_created_valid(created))
            {
                record.created.data = (u_char *) created->str;
                record.created.len = created->len;

            } else {
                /* not a new row's created_at: this host's own time is */
                ngx_log_error(NGX_LOG_WARN, f->req->session->connection->log,
                              0, "rustdesk: peer \"%V\" has an unusable "
                              "created time in the cluster, ignored",
                              &f->ids[0]);
            }
        }
    }

    if (record.binding == NGX_RUSTDESK_BINDING_OTHER) {
        ngx_log_error(NGX_LOG_INFO, f->req->session->connection->log, 0,
                      "rustdesk: peer \"%V\" is registered with another "
                      "uuid in the cluster", &f->ids[0]);
    }

    b->bound(f->req, &b->rk, &record);
}


/*
 * A RegisterPk answered OK here: the id is this uuid's, if no one's yet,
 * and then its key is this one, and it was created at created unless the
 * cluster knows an earlier registration.
 */

void
ngx_stream_rustdesk_rendezvous_cluster_bind(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *id,
    ngx_str_t *uuid, ngx_str_t *pk, ngx_str_t *created, ngx_pool_t *pool)
{
    size_t       len[9];
    const char  *argv[9];

    argv[0] = "EVAL";
    len[0] = 4;
    argv[1] = NGX_RUSTDESK_CLUSTER_BIND;
    len[1] = sizeof(NGX_RUSTDESK_CLUSTER_BIND) - 1;
    argv[2] = "3";
    len[2] = 1;

    argv[3] = (const char *) ngx_stream_rustdesk_rendezvous_cluster_record_key(
                                       pool, &rmcf->cluster, "uuid:", id,
                                       &len[3]);
    argv[4] = (const char *) ngx_stream_rustdesk_rendezvous_cluster_record_key(
                                       pool, &rmcf->cluster, "pk:", id,
                                       &len[4]);
    argv[5] = (const char *) ngx_stream_rustdesk_rendezvous_cluster_record_key(
                                       pool, &rmcf->cluster, "created:", id,
                                       &len[5]);

    if (argv[3] == NULL || argv[4] == NULL || argv[5] == NULL) {
        return;
    }

    argv[6] = (const char *) uuid->data;
    len[6] = uuid->len;
    argv[7] = (const char *) pk->data;
    len[7] = pk->len;
    argv[8] = (const char *) created->data;
    len[8] = created->len;

    (void) ngx_rustdesk_redis_send(
                           ngx_stream_rustdesk_rendezvous_cluster_redis(), 9,
                           argv, len);
}


/* Now, as SQLite's current_timestamp has it: NGX_RUSTDESK_CREATED_LEN */

size_t
ngx_stream_rustdesk_rendezvous_cluster_created(u_char *buf)
{
    ngx_tm_t  tm;

    ngx_gmtime(ngx_time(), &tm);

    return ngx_sprintf(buf, "%4d-%02d-%02d %02d:%02d:%02d",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec)
           - buf;
}


/*
 * A peer whose key this host has comes online here: one GET of the
 * cluster's key for f->ids[0] (NGX_AGAIN: f->found() is called with
 * f->count 1 when it differs from this host's); NGX_DECLINED: not asked.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_check_pk(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    size_t                                       len[2];
    const char                                  *argv[2];
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(f->req->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (!ngx_rustdesk_redis_can_send(
                               ngx_stream_rustdesk_rendezvous_cluster_redis()))
    {
        return NGX_DECLINED;
    }

    argv[0] = "GET";
    len[0] = 3;
    argv[1] = (const char *) ngx_stream_rustdesk_rendezvous_cluster_record_key(
                                       f->req->session->connection->pool,
                                       &rmcf->cluster, "pk:", &f->ids[0],
                                       &len[1]);
    if (argv[1] == NULL) {
        return NGX_DECLINED;
    }

    return ngx_stream_rustdesk_rendezvous_cluster_ask(f, 2, argv, len,
                                     ngx_stream_rustdesk_rendezvous_cluster_pk);
}


static void
ngx_stream_rustdesk_rendezvous_cluster_pk(ngx_rustdesk_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_stream_rustdesk_rendezvous_find_t *f = data;

    size_t                                       len;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;
    u_char                                       pk[NGX_RUSTDESK_BLOB_MAX];

    ngx_stream_rustdesk_rendezvous_cluster_answered(f);

    rmcf = ngx_stream_get_module_main_conf(f->req->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    /* no answer, or no key there: this host's record stands */

    f->count = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
        len = ngx_rustdesk_peer_pk(rmcf->zone, &f->ids[0], pk);

        f->count = (len != 0
                    && !ngx_stream_rustdesk_rendezvous_cluster_same(reply, pk,
                                                                    len));
    }

    if (f->count) {
        ngx_log_error(NGX_LOG_INFO, f->req->session->connection->log, 0,
                      "rustdesk: peer \"%V\" has another key in the "
                      "cluster: its key is asked for", &f->ids[0]);
    }

    f->found(f);
}


static ngx_uint_t
ngx_stream_rustdesk_rendezvous_cluster_same(redisReply *reply, u_char *data,
    size_t len)
{
    return reply->len == len && ngx_memcmp(reply->str, data, len) == 0;
}


/* "YYYY-MM-DD HH:MM:SS", digits where the digits are */

static ngx_uint_t
ngx_stream_rustdesk_rendezvous_cluster_created_valid(redisReply *reply)
{
    size_t       i;
    const char  *form = "dddd-dd-dd dd:dd:dd";

    if (reply->len != NGX_RUSTDESK_CREATED_LEN) {
        return 0;
    }

    for (i = 0; i < NGX_RUSTDESK_CREATED_LEN; i++) {
        if (form[i] == 'd' ? reply->str[i] < '0' || reply->str[i] > '9'
                           : reply->str[i] != form[i])
        {
            return 0;
        }
    }

    return 1;
}


u_char *
ngx_stream_rustdesk_rendezvous_cluster_record_key(ngx_pool_t *pool,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, const char *kind,
    ngx_str_t *id, size_t *len)
{
    u_char  *key, *p;
    size_t   n;

    n = ngx_strlen(kind);

    key = ngx_pnalloc(pool, cc->prefix.len + n + id->len);
    if (key == NULL) {
        return NULL;
    }

    p = ngx_cpymem(key, cc->prefix.data, cc->prefix.len);
    p = ngx_cpymem(p, kind, n);
    p = ngx_cpymem(p, id->data, id->len);

    *len = p - key;

    return key;
}
