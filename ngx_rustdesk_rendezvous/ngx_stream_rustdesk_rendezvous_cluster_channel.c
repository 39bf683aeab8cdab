/*
 * The channel between the hosts of the cluster: Redis pub/sub, one
 * channel per host, "<prefix>host:<host>".  One worker of each host
 * (worker 0) listens to its host's channel on a connection of its own
 * (a subscribed connection takes no other command) and acts on each
 * message there; any worker publishes on its regular connection.
 *
 * Pub/sub rather than streams: what travels is a request of the moment
 * (a punch hole for a peer, soon its answer) that is worth nothing a few
 * seconds later, so a message for a host that is not listening may be
 * lost, as a datagram may; nothing has to be acknowledged, trimmed or
 * replayed after a restart.
 *
 * A message: one byte of kind, then the kind's fields.
 *
 *   'P' <id length: 1 byte> <id> <RendezvousMessage>
 *       for this host's peer id: PunchHole, FetchLocalAddr or
 *       RequestRelay, sent to the peer as this host reaches it (its
 *       stream, or UDP from this host's rendezvous port)
 *
 *   'A' <requester: family 1 byte, port 2 bytes big-endian, address 16
 *       bytes> <RendezvousMessage>
 *       the answer of a peer (PunchHoleResponse, RelayResponse) for a
 *       requester waiting on this host
 *
 *   'M' <id length: 1 byte> <id> <Unix time in ms> " " <host>
 *       this host's peer id registered with that other host at that
 *       time (..._cluster_directory.c saw the entry it replaced): it is
 *       offline here unless it registered here again since
 *
 * Where a requester waits is in Redis while it waits:
 * "<prefix>waiter:<ip> <port>" = its host, for 60 s, written by its host
 * before it asks another host for a peer; the host that gets the peer's
 * answer looks it up and publishes the answer there in one script (and
 * removes it: one answer per request, as on one host).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_CLUSTER_TO_PEER  'P'
#define NGX_RUSTDESK_CLUSTER_ANSWER   'A'
#define NGX_RUSTDESK_CLUSTER_MOVED    'M'

#define NGX_RUSTDESK_CLUSTER_IP_LEN   19       /* family, port, address */
#define NGX_RUSTDESK_CLUSTER_WAIT     60       /* seconds */


/* the answer goes to the requester's host, if it still waits */
static char  ngx_stream_rustdesk_rendezvous_channel_answer_lua[] =
    "local h = redis.call('GET', KEYS[1]) "
    "if h then "
        "redis.call('DEL', KEYS[1]) "
        "redis.call('PUBLISH', ARGV[1] .. h, ARGV[2]) "
        "return 1 "
    "end "
    "return 0";


static void ngx_stream_rustdesk_rendezvous_channel_message(
    ngx_rustdesk_redis_t *r, u_char *data, size_t len);
static void ngx_stream_rustdesk_rendezvous_channel_to_peer(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *data,
    size_t len, ngx_log_t *log);
static void ngx_stream_rustdesk_rendezvous_published(
    ngx_rustdesk_redis_t *redis, redisReply *reply, void *data);
static void ngx_stream_rustdesk_rendezvous_channel_answered(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *data,
    size_t len, ngx_log_t *log);
static void ngx_stream_rustdesk_rendezvous_channel_moved_here(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *data,
    size_t len, ngx_log_t *log);
static u_char *ngx_stream_rustdesk_rendezvous_channel_name(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *host);
static u_char *ngx_stream_rustdesk_rendezvous_channel_waiter(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_rustdesk_ip_t *a);


/* worker 0's listening connection */
static ngx_rustdesk_redis_t  ngx_stream_rustdesk_rendezvous_channel_conn;
static u_char                ngx_stream_rustdesk_rendezvous_channel_client[
                                 sizeof("ngx_rustdesk:::listen") - 1
                                 + NGX_RUSTDESK_CLUSTER_HOST_MAX
                                 + NGX_INT64_LEN + 1];


ngx_int_t
ngx_stream_rustdesk_rendezvous_channel_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    u_char                                         *p;
    ngx_rustdesk_redis_t                           *r;
    ngx_stream_rustdesk_rendezvous_cluster_conf_t  *cc;

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    cc = &rmcf->cluster;
    r = &ngx_stream_rustdesk_rendezvous_channel_conn;

    ngx_memzero(r, sizeof(ngx_rustdesk_redis_t));

    p = ngx_pnalloc(cycle->pool, cc->prefix.len + sizeof("host:") - 1
                                 + cc->host.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    r->channel.data = p;
    r->channel.len = ngx_stream_rustdesk_rendezvous_channel_name(p, cc,
                                                               &cc->host) - p;

    (void) ngx_sprintf(ngx_stream_rustdesk_rendezvous_channel_client,
                       "ngx_rustdesk:%V:%P:listen%Z", &cc->host, ngx_pid);

    r->conf = &cc->redis;
    r->name = (const char *) ngx_stream_rustdesk_rendezvous_channel_client;
    r->message = ngx_stream_rustdesk_rendezvous_channel_message;
    r->data = rmcf;
    r->stats = ngx_stream_rustdesk_rendezvous_redis_stats();

    return ngx_rustdesk_redis_open(r, cycle);
}


void
ngx_stream_rustdesk_rendezvous_channel_exit(ngx_cycle_t *cycle)
{
    ngx_rustdesk_redis_close(&ngx_stream_rustdesk_rendezvous_channel_conn);
}


/*
 * Asks host to send m to its peer id, for requester a waiting here (NULL:
 * none).  NGX_OK: handed to Redis (not that the host heard it);
 * NGX_DECLINED: Redis cannot take it now.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_channel_to_peer_msg(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *host,
    ngx_str_t *id, ngx_rustdesk_ip_t *a, ngx_rustdesk_msg_t *m,
    ngx_pool_t *pool, ngx_stream_rustdesk_rendezvous_find_t *f)
{
    u_char  *msg, *last;

    msg = ngx_pnalloc(pool, ngx_rustdesk_msg_size(m, 0));
    if (msg == NULL) {
        return NGX_DECLINED;
    }

    last = ngx_rustdesk_msg_pack(m, 0, msg);

    return ngx_stream_rustdesk_rendezvous_channel_to_peer_raw(rmcf, host, id,
                                                a, msg, last - msg, pool, f);
}


ngx_int_t
ngx_stream_rustdesk_rendezvous_channel_to_peer_raw(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *host,
    ngx_str_t *id, ngx_rustdesk_ip_t *a, u_char *msg, size_t len,
    ngx_pool_t *pool, ngx_stream_rustdesk_rendezvous_find_t *f)
{
    u_char                *p, *buf, *name, *key;
    size_t                 n[5];
    ngx_int_t              rc;
    const char            *argv[5];
    ngx_rustdesk_redis_t  *r;
    ngx_stream_rustdesk_rendezvous_cluster_conf_t  *cc;

    if (id->len == 0 || id->len > NGX_RUSTDESK_ID_MAX) {
        return NGX_DECLINED;
    }

    cc = &rmcf->cluster;
    r = ngx_stream_rustdesk_rendezvous_cluster_redis();

    if (!ngx_rustdesk_redis_can_send(r)) {
        return NGX_DECLINED;
    }

    name = ngx_pnalloc(pool, cc->prefix.len + sizeof("host:") - 1
                             + host->len);
    key = ngx_pnalloc(pool, cc->prefix.len + sizeof("waiter: 65535") - 1
                            + NGX_INET6_ADDRSTRLEN);
    buf = ngx_pnalloc(pool, 2 + id->len + len);

    if (name == NULL || key == NULL || buf == NULL) {
        return NGX_DECLINED;
    }

    if (a) {
        /* first where A waits: the answer may come back to any host */

        argv[0] = "SET";
        n[0] = 3;
        argv[1] = (const char *) key;
        n[1] = ngx_stream_rustdesk_rendezvous_channel_waiter(key, cc, a) - key;
        argv[2] = (const char *) cc->host.data;
        n[2] = cc->host.len;
        argv[3] = "EX";
        n[3] = 2;
        argv[4] = "60";
        n[4] = 2;

        if (ngx_rustdesk_redis_send(r, 5, argv, n) != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    p = buf;
    *p++ = NGX_RUSTDESK_CLUSTER_TO_PEER;
    *p++ = (u_char) id->len;
    p = ngx_cpymem(p, id->data, id->len);
    p = ngx_cpymem(p, msg, len);

    argv[0] = "PUBLISH";
    n[0] = 7;
    argv[1] = (const char *) name;
    n[1] = ngx_stream_rustdesk_rendezvous_channel_name(name, cc, host) - name;
    argv[2] = (const char *) buf;
    n[2] = p - buf;

    if (f) {
        /* PUBLISH says how many listened: none, the host is gone */
        rc = ngx_stream_rustdesk_rendezvous_cluster_ask(f, 3, argv, n,
                                   ngx_stream_rustdesk_rendezvous_published);

    } else {
        rc = ngx_rustdesk_redis_send(r, 3, argv, n);
    }

    if (rc == NGX_OK || rc == NGX_AGAIN) {
        ngx_stream_rustdesk_rendezvous_count(NGX_RUSTDESK_RDV_CLUSTER_SENT, 1);
    }

    return rc;
}


static void
ngx_stream_rustdesk_rendezvous_published(ngx_rustdesk_redis_t *redis,
    redisReply *reply, void *data)
{
    ngx_stream_rustdesk_rendezvous_find_t *f = data;

    ngx_stream_rustdesk_rendezvous_cluster_answered(f);

    f->count = (reply && reply->type == REDIS_REPLY_INTEGER)
               ? (ngx_int_t) reply->integer : -1;

    f->found(f);
}


/* B's answer m for requester a, who does not wait on this host. */

ngx_int_t
ngx_stream_rustdesk_rendezvous_channel_answer(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_rustdesk_ip_t *a,
    ngx_rustdesk_msg_t *m, ngx_pool_t *pool)
{
    u_char                *p, *buf, *key, *prefix;
    size_t                 n[6];
    const char            *argv[6];
    ngx_stream_rustdesk_rendezvous_cluster_conf_t  *cc;

    cc = &rmcf->cluster;

    key = ngx_pnalloc(pool, cc->prefix.len + sizeof("waiter: 65535") - 1
                            + NGX_INET6_ADDRSTRLEN);
    prefix = ngx_pnalloc(pool, cc->prefix.len + sizeof("host:") - 1);
    buf = ngx_pnalloc(pool, 1 + NGX_RUSTDESK_CLUSTER_IP_LEN
                            + ngx_rustdesk_msg_size(m, 0));

    if (key == NULL || prefix == NULL || buf == NULL) {
        return NGX_DECLINED;
    }

    p = buf;
    *p++ = NGX_RUSTDESK_CLUSTER_ANSWER;
    *p++ = a->family == AF_INET6 ? 6 : 4;
    *p++ = (u_char) (a->port >> 8);
    *p++ = (u_char) a->port;
    p = ngx_cpymem(p, a->addr, 16);
    p = ngx_rustdesk_msg_pack(m, 0, p);

    argv[0] = "EVAL";
    n[0] = 4;
    argv[1] = ngx_stream_rustdesk_rendezvous_channel_answer_lua;
    n[1] = sizeof(ngx_stream_rustdesk_rendezvous_channel_answer_lua) - 1;
    argv[2] = "1";
    n[2] = 1;
    argv[3] = (const char *) key;
    n[3] = ngx_stream_rustdesk_rendezvous_channel_waiter(key, cc, a) - key;
    argv[4] = (const char *) prefix;
    n[4] = ngx_cpymem(ngx_cpymem(prefix, cc->prefix.data, cc->prefix.len),
                      "host:", sizeof("host:") - 1)
           - prefix;
    argv[5] = (const char *) buf;
    n[5] = p - buf;

    if (ngx_rustdesk_redis_send(ngx_stream_rustdesk_rendezvous_cluster_redis(),
                                6, argv, n)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_stream_rustdesk_rendezvous_count(NGX_RUSTDESK_RDV_CLUSTER_SENT, 1);

    return NGX_OK;
}


ngx_int_t
ngx_stream_rustdesk_rendezvous_channel_moved(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *host,
    ngx_str_t *id, uint64_t ms)
{
    u_char       *p;
    size_t        n[3];
    const char   *argv[3];
    u_char        buf[2 + NGX_RUSTDESK_ID_MAX + NGX_INT64_LEN + 1
                      + NGX_RUSTDESK_CLUSTER_HOST_MAX];
    u_char        name[64 + sizeof("host:") - 1
                       + NGX_RUSTDESK_CLUSTER_HOST_MAX];

    if (id->len == 0 || id->len > NGX_RUSTDESK_ID_MAX
        || host->len > NGX_RUSTDESK_CLUSTER_HOST_MAX
        || rmcf->cluster.host.len > NGX_RUSTDESK_CLUSTER_HOST_MAX)
    {
        return NGX_DECLINED;
    }

    p = buf;
    *p++ = NGX_RUSTDESK_CLUSTER_MOVED;
    *p++ = (u_char) id->len;
    p = ngx_cpymem(p, id->data, id->len);
    p = ngx_sprintf(p, "%uL %V", ms, &rmcf->cluster.host);

    argv[0] = "PUBLISH";
    n[0] = 7;
    argv[1] = (const char *) name;
    n[1] = ngx_stream_rustdesk_rendezvous_channel_name(name, &rmcf->cluster,
                                                       host) - name;
    argv[2] = (const char *) buf;
    n[2] = p - buf;

    if (ngx_rustdesk_redis_send(ngx_stream_rustdesk_rendezvous_cluster_redis(),
                                3, argv, n)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_stream_rustdesk_rendezvous_count(NGX_RUSTDESK_RDV_CLUSTER_SENT, 1);

    return NGX_OK;
}


static void
ngx_stream_rustdesk_rendezvous_channel_message(ngx_rustdesk_redis_t *r,
    u_char *data, size_t len)
{
    if (len == 0) {
        return;
    }

    ngx_stream_rustdesk_rendezvous_count(NGX_RUSTDESK_RDV_CLUSTER_RECEIVED, 1);

    switch (data[0]) {

    case NGX_RUSTDESK_CLUSTER_TO_PEER:
        ngx_stream_rustdesk_rendezvous_channel_to_peer(r->data, data + 1,
                                                       len - 1, r->log);
        return;

    case NGX_RUSTDESK_CLUSTER_ANSWER:
        ngx_stream_rustdesk_rendezvous_channel_answered(r->data, data + 1,
                                                        len - 1, r->log);
        return;

    case NGX_RUSTDESK_CLUSTER_MOVED:
        ngx_stream_rustdesk_rendezvous_channel_moved_here(r->data, data + 1,
                                                          len - 1, r->log);
        return;

    default:
        ngx_log_error(NGX_LOG_WARN, r->log, 0,
                      "rustdesk: cluster message of unknown kind %ui on %V "
                      "ignored", (ngx_uint_t) data[0], &r->channel);
    }
}


/*
 * Another host's requester asks for a peer of this host: the message goes
 * to the peer as if the request had come here.  Only what a requester
 * may make this host send to a peer is taken.
 */

static void
ngx_stream_rustdesk_rendezvous_channel_to_peer(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *data,
    size_t len, ngx_log_t *log)
{
    ngx_str_t            id;
    ngx_pid_t            stream;
    ngx_uint_t           online;
    ngx_rustdesk_ip_t    b;
    ngx_rustdesk_msg_t  *m;

    if (len < 1 || (size_t) data[0] + 1 > len || data[0] == 0) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: malformed cluster message ignored");
        return;
    }

    id.len = data[0];
    id.data = data + 1;

    data += 1 + id.len;
    len -= 1 + id.len;

    m = ngx_rustdesk_msg_unpack(data, len);

    if (m == NULL
        || (m->union_case != HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE
            && m->union_case != HBB__RENDEZVOUS_MESSAGE__UNION_FETCH_LOCAL_ADDR
            && m->union_case != HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY))
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: cluster message for peer \"%V\" that is "
                      "not for a peer ignored", &id);

        if (m) {
            ngx_rustdesk_msg_free(m);
        }

        return;
    }

    if (ngx_rustdesk_peer_lookup(rmcf->zone, &id, ngx_current_msec, &online,
                                 &b, &stream)
        != NGX_OK
        || !online || b.family == 0 || stream == NGX_RUSTDESK_STREAM_CLOSED)
    {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "rustdesk: %s from another host for peer \"%V\", "
                      "not online here", ngx_rustdesk_msg_type(m), &id);
        ngx_rustdesk_msg_free(m);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "rustdesk: %s from another host to peer \"%V\"",
                  ngx_rustdesk_msg_type(m), &id);

    (void) ngx_stream_rustdesk_rendezvous_to_peer_raw(rmcf->zone, &id, &b,
                                                      stream, data, len, log);

    ngx_rustdesk_msg_free(m);
}


/* A peer's answer for a requester waiting here, from another host. */

static void
ngx_stream_rustdesk_rendezvous_channel_answered(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *data,
    size_t len, ngx_log_t *log)
{
    ngx_rustdesk_ip_t    a;
    ngx_rustdesk_msg_t  *m;

    if (len < NGX_RUSTDESK_CLUSTER_IP_LEN || (data[0] != 4 && data[0] != 6)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: malformed cluster answer ignored");
        return;
    }

    ngx_memzero(&a, sizeof(ngx_rustdesk_ip_t));
    a.family = data[0] == 6 ? AF_INET6 : AF_INET;
    a.port = (uint16_t) ((data[1] << 8) | data[2]);
    ngx_memcpy(a.addr, data + 3, 16);

    data += NGX_RUSTDESK_CLUSTER_IP_LEN;
    len -= NGX_RUSTDESK_CLUSTER_IP_LEN;

    m = ngx_rustdesk_msg_unpack(data, len);

    if (m == NULL
        || (m->union_case != HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_RESPONSE
            && m->union_case != HBB__RENDEZVOUS_MESSAGE__UNION_RELAY_RESPONSE))
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: cluster answer that is not an answer "
                      "ignored");

        if (m) {
            ngx_rustdesk_msg_free(m);
        }

        return;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "rustdesk: %s from another host for a requester here",
                  ngx_rustdesk_msg_type(m));

    ngx_rustdesk_msg_free(m);

    (void) ngx_stream_rustdesk_rendezvous_answer_raw(rmcf->zone, &a, data,
                                                     len, log);
}


/*
 * A peer of this host registered with another: its requesters here are
 * served through that host from now on (the directory has it there), not
 * from this host's record of it, unless it registered here after the
 * move (clocks: the hosts' own, as for the directory's entries).
 */

static void
ngx_stream_rustdesk_rendezvous_channel_moved_here(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *data,
    size_t len, ngx_log_t *log)
{
    u_char      *p, *last;
    uint64_t     ms, now;
    ngx_str_t    id, host;
    ngx_pid_t    stream;
    ngx_int_t    n;
    ngx_msec_t   since;
    ngx_uint_t   online;
    ngx_time_t  *tp;

    last = data + len;

    if (len < 1 || data[0] == 0 || data[0] > NGX_RUSTDESK_ID_MAX
        || (size_t) data[0] + 1 >= len)
    {
        goto malformed;
    }

    id.len = data[0];
    id.data = data + 1;

    p = id.data + id.len;
    host.data = ngx_strlchr(p, last, ' ');

    if (host.data == NULL || host.data == p) {
        goto malformed;
    }

    n = ngx_atoi(p, host.data - p);

    if (n == NGX_ERROR) {
        goto malformed;
    }

    ms = (uint64_t) n;
    host.data++;
    host.len = last - host.data;

    /* the time of the move on this host's clock */

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    since = ngx_current_msec;

    if (ms < now) {
        since -= (ngx_msec_t) ngx_min(now - ms, 86400000);
    }

    online = ngx_rustdesk_peer_moved(rmcf->zone, &id, since,
                                     ngx_current_msec, &stream);

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "rustdesk: peer \"%V\" moved to host \"%V\"%s%s", &id,
                  &host, online ? ": offline here" : "",
                  stream ? ", its stream here dropped" : "");

    return;

malformed:

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "rustdesk: malformed cluster message ignored");
}


static u_char *
ngx_stream_rustdesk_rendezvous_channel_waiter(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_rustdesk_ip_t *a)
{
    p = ngx_cpymem(p, cc->prefix.data, cc->prefix.len);
    p = ngx_cpymem(p, "waiter:", sizeof("waiter:") - 1);
    p += ngx_rustdesk_ip_text(a, p, NGX_INET6_ADDRSTRLEN);
    return ngx_sprintf(p, " %ud", (ngx_uint_t) a->port);
}


static u_char *
ngx_stream_rustdesk_rendezvous_channel_name(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *host)
{
    p = ngx_cpymem(p, cc->prefix.data, cc->prefix.len);
    p = ngx_cpymem(p, "host:", sizeof("host:") - 1);
    return ngx_cpymem(p, host->data, host->len);
}
