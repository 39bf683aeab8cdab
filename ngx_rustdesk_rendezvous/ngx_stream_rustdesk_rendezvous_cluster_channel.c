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
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_CLUSTER_TO_PEER  'P'


static void ngx_stream_rustdesk_rendezvous_channel_message(
    ngx_rustdesk_redis_t *r, u_char *data, size_t len);
static void ngx_stream_rustdesk_rendezvous_channel_to_peer(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, u_char *data,
    size_t len, ngx_log_t *log);
static u_char *ngx_stream_rustdesk_rendezvous_channel_name(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *host);


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

    return ngx_rustdesk_redis_open(r, cycle);
}


void
ngx_stream_rustdesk_rendezvous_channel_exit(ngx_cycle_t *cycle)
{
    ngx_rustdesk_redis_close(&ngx_stream_rustdesk_rendezvous_channel_conn);
}


/*
 * Asks host to send m to its peer id.  NGX_OK: published (not that the
 * host heard it); NGX_DECLINED: Redis cannot take it now.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_channel_send_to_peer(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *host,
    ngx_str_t *id, ngx_rustdesk_msg_t *m, ngx_pool_t *pool)
{
    u_char       *p, *msg, *name;
    size_t        len[3];
    const char   *argv[3];

    if (id->len == 0 || id->len > NGX_RUSTDESK_ID_MAX) {
        return NGX_DECLINED;
    }

    name = ngx_pnalloc(pool, rmcf->cluster.prefix.len + sizeof("host:") - 1
                             + host->len);
    msg = ngx_pnalloc(pool, 2 + id->len + ngx_rustdesk_msg_size(m, 0));

    if (name == NULL || msg == NULL) {
        return NGX_DECLINED;
    }

    p = msg;
    *p++ = NGX_RUSTDESK_CLUSTER_TO_PEER;
    *p++ = (u_char) id->len;
    p = ngx_cpymem(p, id->data, id->len);
    p = ngx_rustdesk_msg_pack(m, 0, p);

    argv[0] = "PUBLISH";
    len[0] = 7;
    argv[1] = (const char *) name;
    len[1] = ngx_stream_rustdesk_rendezvous_channel_name(name, &rmcf->cluster,
                                                         host) - name;
    argv[2] = (const char *) msg;
    len[2] = p - msg;

    return ngx_rustdesk_redis_send(ngx_stream_rustdesk_rendezvous_cluster_redis(),
                                   3, argv, len);
}


static void
ngx_stream_rustdesk_rendezvous_channel_message(ngx_rustdesk_redis_t *r,
    u_char *data, size_t len)
{
    if (len == 0) {
        return;
    }

    switch (data[0]) {

    case NGX_RUSTDESK_CLUSTER_TO_PEER:
        ngx_stream_rustdesk_rendezvous_channel_to_peer(r->data, data + 1,
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


static u_char *
ngx_stream_rustdesk_rendezvous_channel_name(u_char *p,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, ngx_str_t *host)
{
    p = ngx_cpymem(p, cc->prefix.data, cc->prefix.len);
    p = ngx_cpymem(p, "host:", sizeof("host:") - 1);
    return ngx_cpymem(p, host->data, host->len);
}
