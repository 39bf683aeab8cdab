/*
 * The cluster's directory of online peers: in Redis, for each peer online
 * on some host, where it is.
 *
 *     <prefix>peer:<id>  =  "1 <seen> <host> <transport> <address>"
 *
 * (seen: the Unix time it was written; transport: udp, tcp or ws; the
 * address: the peer's IP and port as its host sees them), written with
 * SET ... EX <rustdesk_cluster_ttl>.
 *
 * Heartbeats do not write it: a peer is published when it registers with
 * a key (RegisterPk, any transport), when it comes back after being
 * offline, and then once per refresh period (a third of the TTL) while it
 * stays online, at a phase of the period that depends on its id.  With
 * the defaults (900 s, a heartbeat every 12 s) that is one write per 25
 * heartbeats.  The zone keeps one bit for it (this host wrote its
 * entry, for the removal below); whether a period began is told by the
 * registration before this one.  After an outage
 * of Redis (which may have come back empty), every peer is written again
 * at its first registration after the worker saw Redis back: the
 * directory is whole again within one registration interval, the writes
 * spread over it as the heartbeats are.  A peer that came online since
 * was written then, and is not again.
 *
 * A write is SET ... EX ... GET (Redis 6.2 and later): the answer is the
 * entry it replaced.  When that entry was another host's and recent, the
 * peer has moved here (it registered here while that host had it
 * online): that host is told on its channel (..._cluster_channel.c) and
 * takes the peer as offline, unless it registered there after the move,
 * so that its requesters reach the peer here through the directory
 * rather than at its old address; a stream of the peer there closes.
 * One PUBLISH per move, nothing more per write.
 *
 * The entry of a peer that goes offline here (no heartbeat for
 * rustdesk_online_timeout, or that long after its stream closed) is
 * removed by this host within a round of ..._cluster_offline.c: 40 s
 * after the last heartbeat with the defaults, one script per peer gone
 * offline.
 *
 * A host reads the directory for ids it does not have online itself
 * (online query, punch hole requests), with one command per request
 * (GET, MGET), asynchronously: the requester's answer waits for it, up to
 * rustdesk_cluster_timeout; without an answer it is made from this host
 * alone.  An entry counts as online while its seen time is within the
 * refresh period plus rustdesk_online_timeout: what bounds the entries
 * nobody removes (those of a host that died, of a peer evicted from its
 * host's zone).  A punch hole request for an id this host does not know
 * reads its binding in the same MGET (..._cluster_binding.c): an id some
 * host registered is OFFLINE, as on one host, not ID_NOT_EXIST.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_CLUSTER_VALUE_MAX                                       \
    (sizeof("1  ") + NGX_TIME_T_LEN + NGX_RUSTDESK_CLUSTER_HOST_MAX          \
     + sizeof(" tcp ") + NGX_SOCKADDR_STRLEN + 8)


/* A write of the directory, until its answer. */
typedef struct {
    uint64_t                    ms;         /* Unix time, in ms */
    size_t                      value_len;
    u_char                      value[NGX_RUSTDESK_CLUSTER_VALUE_MAX];
    size_t                      id_len;
    u_char                      id[1];
} ngx_stream_rustdesk_rendezvous_published_t;


static ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_set(
    ngx_rustdesk_redis_t *redis,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc,
    ngx_stream_rustdesk_rendezvous_published_t *pub);
static void ngx_stream_rustdesk_rendezvous_cluster_set_done(
    ngx_rustdesk_redis_t *redis, redisReply *reply, void *data);
static u_char *ngx_stream_rustdesk_rendezvous_cluster_key(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *id);
static void ngx_stream_rustdesk_rendezvous_cluster_found(
    ngx_rustdesk_redis_t *redis, redisReply *reply, void *data);
static ngx_uint_t ngx_stream_rustdesk_rendezvous_cluster_entry(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *p, size_t len,
    ngx_str_t *host, ngx_rustdesk_ip_t *addr);
static void ngx_stream_rustdesk_rendezvous_cluster_find_cleanup(void *data);


/* this worker's Redis refused SET ... GET: older than 6.2 */
static ngx_uint_t  ngx_stream_rustdesk_rendezvous_cluster_no_get;


ngx_uint_t
ngx_stream_rustdesk_rendezvous_cluster_publish(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_str_t *id, ngx_msec_t prev)
{
    u_char                                         *p;
    ngx_msec_t                                      now, phase, gap, back;
    ngx_time_t                                     *tp;
    const char                                     *transport;
    ngx_rustdesk_redis_t                           *redis;
    ngx_stream_rustdesk_rendezvous_published_t     *pub;
    ngx_stream_rustdesk_rendezvous_cluster_conf_t  *cc;
    ngx_stream_rustdesk_rendezvous_main_conf_t     *rmcf;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (!ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        || id->len == 0 || id->len > NGX_RUSTDESK_ID_MAX)
    {
        return 0;
    }

    cc = &rmcf->cluster;
    now = ngx_current_msec;

    /* a stream's frames may be further apart than UDP heartbeats */
    gap = r->stream ? rmcf->zone->stream_ttl : rmcf->zone->online_ttl;

    redis = ngx_stream_rustdesk_rendezvous_cluster_redis();

    if (prev != 0 && now - prev < gap) {
        /* online since prev: written if a refresh period began since */

        phase = ngx_crc32_short(id->data, id->len) % cc->refresh;

        if ((prev + phase) / cc->refresh == (now + phase) / cc->refresh) {

            /* or if Redis came back since the registration before */

            back = redis->recovered;

            if (back == 0 || (ngx_msec_int_t) (prev - back) >= 0) {
                return 0;
            }
        }
    }

    if (!ngx_rustdesk_redis_can_send(redis)) {
        /* published again when Redis is back and the peer heartbeats */
        return 0;
    }

    switch (ngx_stream_rustdesk_rendezvous_metrics_transport(r)) {
    case NGX_RUSTDESK_TRANSPORT_UDP:
        transport = "udp";
        break;
    case NGX_RUSTDESK_TRANSPORT_WS:
        transport = "ws";
        break;
    default:
        transport = "tcp";
    }

    /* kept with the previous entry's answer (GET), freed then */

    pub = ngx_alloc(offsetof(ngx_stream_rustdesk_rendezvous_published_t, id)
                    + id->len, r->session->connection->log);
    if (pub == NULL) {
        return 0;
    }

    tp = ngx_timeofday();

    p = ngx_sprintf(pub->value, "1 %T %V %s ", tp->sec, &cc->host,
                    transport);
    p += ngx_rustdesk_ip_text(&r->addr, p, NGX_SOCKADDR_STRLEN);
    p = ngx_sprintf(p, " %ud", (ngx_uint_t) r->addr.port);

    pub->value_len = p - pub->value;
    pub->ms = (uint64_t) tp->sec * 1000 + tp->msec;
    pub->id_len = id->len;
    ngx_memcpy(pub->id, id->data, id->len);

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, r->session->connection->log, 0,
                   "rustdesk: peer \"%V\" published as %*s", id,
                   pub->value_len, pub->value);

    if (ngx_stream_rustdesk_rendezvous_cluster_set(redis, cc, pub) != NGX_OK) {
        ngx_free(pub);
        return 0;
    }

    /* ..._cluster_offline.c removes it when the peer goes offline here */
    ngx_rustdesk_peer_published(rmcf->zone, id);

    return 1;
}


/*
 * SET ... EX <ttl> GET (Redis 6.2 and later; Redis Cluster too: one key):
 * the entry, and the one it replaces in the answer.  Without GET (an
 * older Redis refused it once) a plain SET without an answer, and pub
 * freed.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_set(ngx_rustdesk_redis_t *redis,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc,
    ngx_stream_rustdesk_rendezvous_published_t *pub)
{
    size_t                     len[6];
    ngx_str_t                  id;
    const char                *argv[6];
    ngx_rustdesk_redis_cmd_t  *cmd;
    u_char                     key[NGX_RUSTDESK_ID_MAX + 128];
    u_char                     ttl[NGX_INT_T_LEN];

    id.data = pub->id;
    id.len = pub->id_len;

    argv[0] = "SET";
    len[0] = 3;
    argv[1] = (const char *) key;
    len[1] = ngx_stream_rustdesk_rendezvous_cluster_key(key, cc, &id) - key;
    argv[2] = (const char *) pub->value;
    len[2] = pub->value_len;
    argv[3] = "EX";
    len[3] = 2;
    argv[4] = (const char *) ttl;
    len[4] = ngx_sprintf(ttl, "%M", (cc->ttl + 999) / 1000) - ttl;
    argv[5] = "GET";
    len[5] = 3;

    if (ngx_stream_rustdesk_rendezvous_cluster_no_get) {
        if (ngx_rustdesk_redis_send(redis, 5, argv, len) != NGX_OK) {
            return NGX_DECLINED;
        }

        ngx_free(pub);
        return NGX_OK;
    }

    cmd = ngx_rustdesk_redis_command(redis,
                               ngx_stream_rustdesk_rendezvous_cluster_set_done,
                               pub, 6, argv, len);

    return cmd ? NGX_OK : NGX_DECLINED;
}


/*
 * The entry a publish replaced: when it was another host's, and recent,
 * the peer has moved here from there; that host is told, and stops
 * answering for it from its own record (..._cluster_channel.c).
 */

static void
ngx_stream_rustdesk_rendezvous_cluster_set_done(ngx_rustdesk_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_stream_rustdesk_rendezvous_published_t *pub = data;

    ngx_str_t                                    id, host;
    ngx_rustdesk_ip_t                            addr;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    if (reply == NULL) {
        goto done;
    }

    rmcf = ngx_stream_cycle_get_module_main_conf(ngx_cycle,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (reply->type == REDIS_REPLY_ERROR
        && ngx_strncmp(reply->str, "ERR syntax", 10) == 0)
    {
        /* a Redis older than 6.2: the entry once more, without GET */

        ngx_log_error(NGX_LOG_WARN, redis->log, 0,
                      "rustdesk: redis %V takes no \"SET ... GET\" "
                      "(Redis 6.2 and later): a host is not told when its "
                      "peers move to another", &redis->conf->url);

        ngx_stream_rustdesk_rendezvous_cluster_no_get = 1;

        if (ngx_stream_rustdesk_rendezvous_cluster_set(redis, &rmcf->cluster,
                                                       pub)
            == NGX_OK)
        {
            return;
        }

        goto done;
    }

    ngx_rustdesk_redis_written(redis, reply);

    if (reply->type == REDIS_REPLY_STRING
        && ngx_stream_rustdesk_rendezvous_cluster_entry(rmcf,
                                   (u_char *) reply->str, reply->len,
                                   &host, &addr))
    {
        id.data = pub->id;
        id.len = pub->id_len;

        ngx_log_error(NGX_LOG_INFO, redis->log, 0,
                      "rustdesk: peer \"%V\" moved here from host \"%V\": "
                      "telling it", &id, &host);

        (void) ngx_stream_rustdesk_rendezvous_channel_moved(rmcf, &host, &id,
                                                            pub->ms);
    }

done:

    ngx_free(pub);
}


ngx_stream_rustdesk_rendezvous_find_t *
ngx_stream_rustdesk_rendezvous_cluster_find_create(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_uint_t n)
{
    ngx_stream_rustdesk_rendezvous_find_t  *f;

    f = ngx_pcalloc(r->session->connection->pool,
                    sizeof(ngx_stream_rustdesk_rendezvous_find_t)
                    + 2 * n * sizeof(ngx_str_t)
                    + n * sizeof(ngx_rustdesk_ip_t));
    if (f == NULL) {
        return NULL;
    }

    f->req = r;
    f->n = n;
    f->ids = (ngx_str_t *) (f + 1);
    f->hosts = f->ids + n;
    f->addrs = (ngx_rustdesk_ip_t *) (f->hosts + n);

    return f;
}


/*
 * One GET (MGET for several ids, or for one and its binding) for a
 * requester on a stream.  At most one find per session at a time: a
 * client repeating its request does not fill Redis's queue, it gets this
 * host's answer.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_find(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    u_char                                       *p;
    size_t                                       *len;
    ngx_uint_t                                    i;
    ngx_pool_t                                   *pool;
    const char                                  **argv;
    ngx_rustdesk_redis_t                         *redis;
    ngx_stream_rustdesk_rendezvous_req_t         *r;
    ngx_stream_rustdesk_rendezvous_main_conf_t   *rmcf;

    r = f->req;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (!ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        || r->stream == NULL || r->cluster != NULL || f->n == 0)
    {
        return NGX_DECLINED;
    }

    redis = ngx_stream_rustdesk_rendezvous_cluster_redis();

    if (!ngx_rustdesk_redis_can_send(redis)) {
        return NGX_DECLINED;
    }

    pool = r->session->connection->pool;

    f->binding = (f->binding && f->n == 1);

    argv = ngx_palloc(pool, (f->n + 2) * (sizeof(char *) + sizeof(size_t)));
    if (argv == NULL) {
        return NGX_DECLINED;
    }

    len = (size_t *) (argv + f->n + 2);

    argv[0] = (f->n == 1 && !f->binding) ? "GET" : "MGET";
    len[0] = ngx_strlen(argv[0]);

    for (i = 0; i < f->n; i++) {
        p = ngx_pnalloc(pool, rmcf->cluster.prefix.len + sizeof("peer:") - 1
                              + f->ids[i].len);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        argv[i + 1] = (const char *) p;
        len[i + 1] = ngx_stream_rustdesk_rendezvous_cluster_key(p,
                                               &rmcf->cluster, &f->ids[i]) - p;
    }

    if (f->binding) {
        p = ngx_stream_rustdesk_rendezvous_cluster_record_key(pool,
                                 &rmcf->cluster, "uuid:", &f->ids[0], &len[2]);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        argv[2] = (const char *) p;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, r->session->connection->log, 0,
                   "rustdesk: %s of %ui ids in the cluster%s", argv[0], f->n,
                   f->binding ? ", and the binding" : "");

    return ngx_stream_rustdesk_rendezvous_cluster_ask(f,
                            (int) (f->n + 1 + f->binding), argv, len,
                            ngx_stream_rustdesk_rendezvous_cluster_found);
}


/*
 * A command for the find's requester, its answer to handler (with f as
 * data) unless the session ends first; again for the same find when the
 * last answer came (a find is in flight once at a time).
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_ask(
    ngx_stream_rustdesk_rendezvous_find_t *f, int argc, const char **argv,
    const size_t *len, ngx_rustdesk_redis_handler_pt handler)
{
    ngx_stream_rustdesk_rendezvous_req_t  *r;

    r = f->req;

    if (r->cluster != NULL && r->cluster != f) {
        return NGX_DECLINED;
    }

    if (f->cln == NULL) {
        f->cln = ngx_pool_cleanup_add(r->session->connection->pool, 0);
        if (f->cln == NULL) {
            return NGX_DECLINED;
        }
    }

    f->cmd = ngx_rustdesk_redis_command(
                        ngx_stream_rustdesk_rendezvous_cluster_redis(),
                        handler, f, argc, argv, len);
    if (f->cmd == NULL) {
        return NGX_DECLINED;
    }

    f->cln->handler = ngx_stream_rustdesk_rendezvous_cluster_find_cleanup;
    f->cln->data = f;

    r->cluster = f;

    return NGX_AGAIN;
}


/* For ask()'s handlers: the answer came, the session may end. */

void
ngx_stream_rustdesk_rendezvous_cluster_answered(
    ngx_stream_rustdesk_rendezvous_find_t *f)
{
    f->cln->handler = NULL;
    f->req->cluster = NULL;
}


static void
ngx_stream_rustdesk_rendezvous_cluster_found(ngx_rustdesk_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_stream_rustdesk_rendezvous_find_t *f = data;

    ngx_uint_t                                   i;
    redisReply                                  *e;
    ngx_connection_t                            *c;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    ngx_stream_rustdesk_rendezvous_cluster_answered(f);

    c = f->req->session->connection;
    rmcf = ngx_stream_get_module_main_conf(f->req->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (reply == NULL) {
        /* the connection logs why, once */
        f->failed = 1;

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "rustdesk: redis %V: %s", &redis->conf->url, reply->str);
        f->failed = 1;

    } else if (f->n == 1 && !f->binding) {
        if (reply->type == REDIS_REPLY_STRING) {
            (void) ngx_stream_rustdesk_rendezvous_cluster_entry(rmcf,
                                  (u_char *) reply->str, reply->len,
                                  &f->hosts[0], &f->addrs[0]);
        }

    } else if (reply->type != REDIS_REPLY_ARRAY
               || reply->elements != f->n + f->binding)
    {
        f->failed = 1;

    } else {
        for (i = 0; i < f->n; i++) {
            e = reply->element[i];

            if (e->type == REDIS_REPLY_STRING) {
                (void) ngx_stream_rustdesk_rendezvous_cluster_entry(rmcf,
                                      (u_char *) e->str, e->len,
                                      &f->hosts[i], &f->addrs[i]);
            }
        }

        /* then the binding of the id, if asked for */

        f->bound = f->binding
                   && reply->element[f->n]->type == REDIS_REPLY_STRING;
    }

    /* host names live in the reply: copied for the caller */

    for (i = 0; i < f->n; i++) {
        if (f->hosts[i].len) {
            f->hosts[i].data = ngx_pstrdup(c->pool, &f->hosts[i]);
            if (f->hosts[i].data == NULL) {
                f->hosts[i].len = 0;
            }
        }
    }

    f->found(f);
}


/*
 * An entry of the directory: 1 with the host when the peer is online on
 * another host, as far as the entry's age tells; this host's own entries
 * do not count (the zone has the truth here).
 */

static ngx_uint_t
ngx_stream_rustdesk_rendezvous_cluster_entry(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *p, size_t len,
    ngx_str_t *host, ngx_rustdesk_ip_t *addr)
{
    u_char     *last, *h, *a, *t;
    time_t      seen, age;
    in_addr_t   in;
    ngx_int_t   port;
    ngx_str_t  *self;

    last = p + len;
    host->len = 0;

    if (len < 2 || p[0] != '1' || p[1] != ' ') {
        return 0;
    }

    p += 2;
    h = ngx_strlchr(p, last, ' ');

    if (h == NULL) {
        return 0;
    }

    seen = ngx_atotm(p, h - p);

    if (seen == NGX_ERROR) {
        return 0;
    }

    p = h + 1;
    h = ngx_strlchr(p, last, ' ');

    if (h == NULL || h == p || h - p > NGX_RUSTDESK_CLUSTER_HOST_MAX) {
        /* not a host name this module writes */
        return 0;
    }

    self = &rmcf->cluster.host;

    if ((size_t) (h - p) == self->len && ngx_strncmp(p, self->data, self->len)
                                         == 0)
    {
        return 0;
    }

    /* a second of slack for clocks and rounding */

    age = ngx_time() - seen;

    if (age > (time_t) ((rmcf->cluster.refresh + rmcf->online_timeout) / 1000
                        + 1))
    {
        return 0;
    }

    /* then the transport, the address and the port */

    t = ngx_strlchr(h + 1, last, ' ');
    a = t ? ngx_strlchr(t + 1, last, ' ') : NULL;

    if (a == NULL) {
        return 0;
    }

    port = ngx_atoi(a + 1, last - a - 1);

    if (port < 0 || port > 65535) {
        return 0;
    }

    ngx_memzero(addr, sizeof(ngx_rustdesk_ip_t));

    in = ngx_inet_addr(t + 1, a - t - 1);

    if (in != INADDR_NONE) {
        addr->family = AF_INET;
        ngx_memcpy(addr->addr, &in, 4);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(t + 1, a - t - 1, addr->addr) == NGX_OK) {
        addr->family = AF_INET6;
#endif

    } else {
        return 0;
    }

    addr->port = (uint16_t) port;

    host->data = p;
    host->len = h - p;

    return 1;
}


static void
ngx_stream_rustdesk_rendezvous_cluster_find_cleanup(void *data)
{
    ngx_stream_rustdesk_rendezvous_find_t *f = data;

    /* the session ends before the answer: it will be dropped */

    f->req->cluster = NULL;
    ngx_rustdesk_redis_cancel(f->cmd);
}


static u_char *
ngx_stream_rustdesk_rendezvous_cluster_key(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *id)
{
    p = ngx_cpymem(p, cc->prefix.data, cc->prefix.len);
    p = ngx_cpymem(p, "peer:", sizeof("peer:") - 1);
    return ngx_cpymem(p, id->data, id->len);
}
