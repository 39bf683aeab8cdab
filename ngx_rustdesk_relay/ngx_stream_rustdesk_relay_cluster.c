/*
 * Relay tickets from the cluster's Redis (README "Relay tickets"): with
 * rustdesk_relay_tickets and rustdesk_cluster, a relay request whose uuid
 * this nginx's rendezvous did not broker asks Redis for one of the
 * session's two tickets, which the rendezvous of any host recorded
 * (common/ngx_rustdesk_tickets.h).  The connection waits for the answer
 * unread, as a waiter does (what its client sends stays in the socket
 * for the partner), up to rustdesk_cluster_timeout.  No answer, or Redis
 * not connected: the request is refused (tickets fail closed), said at
 * warn once until Redis answers again, whichever worker sees it.
 *
 * Each worker has a connection of its own, opened in init_process.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_tickets.h"
#include "ngx_stream_rustdesk_relay_module.h"


#define NGX_RUSTDESK_RELAY_HOST_MAX  64     /* of the name, in CLIENT LIST */


static void ngx_stream_rustdesk_relay_cluster_answer(ngx_rustdesk_redis_t *r,
    redisReply *reply, void *data);
static void ngx_stream_rustdesk_relay_cluster_cancel(void *data);
static void ngx_stream_rustdesk_relay_cluster_unchecked(
    ngx_stream_rustdesk_relay_side_t *side, const char *why);


/* this worker's */
static ngx_rustdesk_redis_t  ngx_stream_rustdesk_relay_cluster_conn;
static u_char                ngx_stream_rustdesk_relay_cluster_name[
                                 sizeof("ngx_rustdesk:relay::") - 1
                                 + NGX_RUSTDESK_RELAY_HOST_MAX
                                 + NGX_INT64_LEN + 1];
static ngx_rustdesk_cluster_conf_t  *ngx_stream_rustdesk_relay_cluster_conf;


ngx_int_t
ngx_stream_rustdesk_relay_cluster_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf)
{
    ngx_str_t              host;
    ngx_rustdesk_redis_t  *r;

    if (!lmcf->tickets || !ngx_rustdesk_cluster_on(&lmcf->shared->cluster)) {
        return NGX_OK;
    }

    r = &ngx_stream_rustdesk_relay_cluster_conn;
    ngx_memzero(r, sizeof(ngx_rustdesk_redis_t));

    /* CLIENT LIST tells the relay's connections from the rendezvous's */

    host.data = cycle->hostname.data;
    host.len = ngx_min(cycle->hostname.len, NGX_RUSTDESK_RELAY_HOST_MAX);

    (void) ngx_sprintf(ngx_stream_rustdesk_relay_cluster_name,
                       "ngx_rustdesk:relay:%V:%P%Z", &host, ngx_pid);

    ngx_stream_rustdesk_relay_cluster_conf = &lmcf->shared->cluster;

    r->conf = &lmcf->shared->cluster.redis;
    r->name = (const char *) ngx_stream_rustdesk_relay_cluster_name;
    r->stats = ngx_stream_rustdesk_relay_redis_stats();

    return ngx_rustdesk_redis_open(r, cycle);
}


void
ngx_stream_rustdesk_relay_cluster_exit(ngx_cycle_t *cycle)
{
    if (ngx_stream_rustdesk_relay_cluster_conf) {
        ngx_rustdesk_redis_close(&ngx_stream_rustdesk_relay_cluster_conn);
    }
}


ngx_int_t
ngx_stream_rustdesk_relay_cluster_ticket(
    ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_connection_t    *c;
    ngx_pool_cleanup_t  *cln;

    c = side->connection;

    if (ngx_stream_rustdesk_relay_cluster_conf == NULL) {
        return NGX_DECLINED;
    }

    /* first: once the command is out, nothing may fail before it is held */

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        return NGX_DECLINED;
    }

    side->ticket = ngx_rustdesk_tickets_take(
                               &ngx_stream_rustdesk_relay_cluster_conn,
                               &ngx_stream_rustdesk_relay_cluster_conf->prefix,
                               &side->uuid,
                               ngx_stream_rustdesk_relay_cluster_answer, side);

    if (side->ticket == NULL) {
        ngx_stream_rustdesk_relay_cluster_unchecked(side,
                                                    "redis is not connected, or too busy");
        return NGX_DECLINED;
    }

    cln->handler = ngx_stream_rustdesk_relay_cluster_cancel;
    cln->data = side;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: relay \"%V\": ticket asked of redis",
                   &side->uuid);

    c->log->action = "asking redis for the relay ticket";

    /* no timer: Redis answers, or the command's timeout does */
    ngx_stream_rustdesk_relay_hold(side);

    return NGX_AGAIN;
}


void
ngx_stream_rustdesk_relay_cluster_spend(ngx_stream_rustdesk_relay_side_t *side)
{
    if (ngx_stream_rustdesk_relay_cluster_conf == NULL) {
        return;
    }

    /* no answer wanted: a relay of another host then finds it taken */

    (void) ngx_rustdesk_tickets_take(&ngx_stream_rustdesk_relay_cluster_conn,
                               &ngx_stream_rustdesk_relay_cluster_conf->prefix,
                               &side->uuid, NULL, NULL);
}


static void
ngx_stream_rustdesk_relay_cluster_answer(ngx_rustdesk_redis_t *r,
    redisReply *reply, void *data)
{
    ngx_stream_rustdesk_relay_side_t  *side = data;

    ngx_int_t                               rc;
    ngx_connection_t                       *c;
    ngx_rustdesk_relay_sh_t                *sh;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    c = side->connection;
    side->ticket = NULL;

    rc = ngx_rustdesk_tickets_taken(reply, &side->peer_id);

    if (rc == NGX_ERROR) {
        ngx_stream_rustdesk_relay_cluster_unchecked(side,
                                reply ? "redis refused the script"
                                      : "redis did not answer in time");
        side->result = "no_ticket";
        ngx_stream_rustdesk_relay_close_side(side);
        return;
    }

    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);
    sh = lmcf->zone->sh;

    if (sh->tickets_unchecked
        && ngx_atomic_cmp_set(&sh->tickets_unchecked, 1, 0))
    {
        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "rustdesk: relay tickets are checked in redis again");
    }

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: relay \"%V\": ticket from the cluster",
                      &side->uuid);

        ngx_stream_rustdesk_relay_pair(side);
        return;
    }

    side->peer_id.len = 0;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "rustdesk: relay request \"%V\" refused: %s", &side->uuid,
                  rc == NGX_BUSY ? "its two connections came already"
                                 : "no session brokered in the cluster "
                                   "(or expired)");

    side->result = "no_ticket";
    ngx_stream_rustdesk_relay_close_side(side);
}


static void
ngx_stream_rustdesk_relay_cluster_cancel(void *data)
{
    ngx_stream_rustdesk_relay_side_t  *side = data;

    if (side->ticket) {
        ngx_rustdesk_redis_cancel(side->ticket);
        side->ticket = NULL;
    }
}


/*
 * Redis could not be asked: the request is refused; said at warn once
 * for all workers until Redis answers again, at info for each request.
 */

static void
ngx_stream_rustdesk_relay_cluster_unchecked(
    ngx_stream_rustdesk_relay_side_t *side, const char *why)
{
    ngx_uint_t                              level;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

    level = ngx_atomic_cmp_set(&lmcf->zone->sh->tickets_unchecked, 0, 1)
            ? NGX_LOG_WARN : NGX_LOG_INFO;

    ngx_log_error(level, side->connection->log, 0,
                  "rustdesk: relay request \"%V\" refused: its ticket "
                  "cannot be checked (%s)%s", &side->uuid, why,
                  level == NGX_LOG_WARN
                  ? "; relay requests unknown here are refused until "
                    "redis answers again"
                  : "");
}
