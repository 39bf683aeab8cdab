/*
 * The directory's entries of peers that went offline here are removed,
 * so that other hosts do not show them online for the rest of the entry's
 * life (up to the refresh period plus rustdesk_online_timeout).
 *
 * Each peer record of the zone says whether this host wrote its entry
 * (set by a publish, ..._cluster_directory.c).  Worker 0 goes round the
 * zone's index with a timer: a round every third of
 * rustdesk_online_timeout (1 s at least, 10 s at most), in 50 ticks, each
 * looking at a fiftieth of the index's slots, 1024 slots per hold of the
 * zone's mutex.  A peer it finds offline (its last heartbeat older than
 * rustdesk_online_timeout, or its stream closed that long ago: the grace
 * of PROTOCOL.md section 8) whose entry this host wrote has its entry
 * removed, once: one script per peer that went offline, nothing for a
 * peer that stays online, nothing per heartbeat.  So the entry of a peer
 * gone offline here is gone from Redis at most a round after the peer is
 * offline here: 40 s after its last heartbeat, or after its stream
 * closed, with the defaults.
 *
 * The removal compares before it deletes (a script on the one key, which
 * a Redis Cluster takes too): only an entry that still names this host,
 * written no later than the peer's last registration here (a second of
 * slack for rounding), goes.  An entry another host wrote meanwhile (the
 * peer moved) stays, and so does one this host wrote again after the peer
 * came back (another worker's SET may overtake this worker's script).
 *
 * What this misses: an entry whose peer left the zone first (evicted to
 * make room, offline) and the entries of a host that died; readers take
 * those as offline once they are older than the refresh period plus
 * rustdesk_online_timeout (..._cluster_directory.c).  While Redis is not
 * connected the rounds stop, and go on where they stopped.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_OFFLINE_TICKS  50      /* per round of the index */
#define NGX_RUSTDESK_OFFLINE_CHUNK  1024    /* slots per hold of the mutex */
#define NGX_RUSTDESK_OFFLINE_MAX    32      /* entries removed per hold */


/* KEYS[1]: the entry; ARGV: this host, the last registration's second */
static char  ngx_stream_rustdesk_rendezvous_offline_lua[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then "
        "local s, h = string.match(v, '^1 (%d+) (%S+) ') "
        "if h == ARGV[1] and tonumber(s) <= tonumber(ARGV[2]) then "
            "return redis.call('DEL', KEYS[1]) "
        "end "
    "end "
    "return 0";


static void ngx_stream_rustdesk_rendezvous_offline_tick(ngx_event_t *ev);
static void ngx_stream_rustdesk_rendezvous_offline_remove(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf,
    ngx_rustdesk_redis_t *redis, ngx_rustdesk_peer_gone_t *g);


static ngx_event_t  ngx_stream_rustdesk_rendezvous_offline_timer;
static ngx_uint_t   ngx_stream_rustdesk_rendezvous_offline_slot;
static ngx_msec_t   ngx_stream_rustdesk_rendezvous_offline_every;


void
ngx_stream_rustdesk_rendezvous_offline_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    ngx_msec_t    round;
    ngx_event_t  *ev;

    if (ngx_worker != 0) {
        return;
    }

    round = ngx_min(ngx_max(rmcf->online_timeout / 3, 1000), 10000);

    ngx_stream_rustdesk_rendezvous_offline_every =
                                             round / NGX_RUSTDESK_OFFLINE_TICKS;
    ngx_stream_rustdesk_rendezvous_offline_slot = 0;

    ev = &ngx_stream_rustdesk_rendezvous_offline_timer;

    ngx_memzero(ev, sizeof(ngx_event_t));

    ev->handler = ngx_stream_rustdesk_rendezvous_offline_tick;
    ev->data = rmcf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, ngx_stream_rustdesk_rendezvous_offline_every);
}


void
ngx_stream_rustdesk_rendezvous_offline_exit(ngx_cycle_t *cycle)
{
    if (ngx_stream_rustdesk_rendezvous_offline_timer.timer_set) {
        ngx_del_timer(&ngx_stream_rustdesk_rendezvous_offline_timer);
    }
}


static void
ngx_stream_rustdesk_rendezvous_offline_tick(ngx_event_t *ev)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf = ev->data;

    ngx_uint_t                 i, n, left, found;
    ngx_rustdesk_redis_t      *redis;
    ngx_rustdesk_peer_gone_t   gone[NGX_RUSTDESK_OFFLINE_MAX];

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, ngx_stream_rustdesk_rendezvous_offline_every);

    redis = ngx_stream_rustdesk_rendezvous_cluster_redis();

    left = rmcf->zone->sh->table.nslots / NGX_RUSTDESK_OFFLINE_TICKS + 1;

    while (left) {

        /* room in Redis's queue for what this hold may find */

        if (!ngx_rustdesk_redis_ready(redis)
            || redis->pending + NGX_RUSTDESK_OFFLINE_MAX
               >= redis->conf->max_pending)
        {
            return;
        }

        n = ngx_min(left, NGX_RUSTDESK_OFFLINE_CHUNK);

        found = ngx_rustdesk_peer_gone(rmcf->zone,
                                &ngx_stream_rustdesk_rendezvous_offline_slot,
                                &n, ngx_current_msec, gone,
                                NGX_RUSTDESK_OFFLINE_MAX);

        for (i = 0; i < found; i++) {
            ngx_stream_rustdesk_rendezvous_offline_remove(rmcf, redis,
                                                          &gone[i]);
        }

        left -= ngx_min(left, ngx_max(n, 1));
    }
}


static void
ngx_stream_rustdesk_rendezvous_offline_remove(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf,
    ngx_rustdesk_redis_t *redis, ngx_rustdesk_peer_gone_t *g)
{
    u_char                                         *p;
    size_t                                          n[6];
    time_t                                          last;
    ngx_time_t                                     *tp;
    const char                                     *argv[6];
    ngx_stream_rustdesk_rendezvous_cluster_conf_t  *cc;
    u_char                                          key[64 + sizeof("peer:")
                                                        + NGX_RUSTDESK_ID_MAX];
    u_char                                          seen[NGX_TIME_T_LEN];

    cc = &rmcf->cluster;

    /* the second of the peer's last registration here, on the wall clock */

    tp = ngx_timeofday();
    last = tp->sec - (time_t) ((ngx_current_msec - g->last_reg) / 1000) + 1;

    p = ngx_cpymem(key, cc->prefix.data, cc->prefix.len);
    p = ngx_cpymem(p, "peer:", sizeof("peer:") - 1);
    p = ngx_cpymem(p, g->id, g->len);

    argv[0] = "EVAL";
    n[0] = 4;
    argv[1] = ngx_stream_rustdesk_rendezvous_offline_lua;
    n[1] = sizeof(ngx_stream_rustdesk_rendezvous_offline_lua) - 1;
    argv[2] = "1";
    n[2] = 1;
    argv[3] = (const char *) key;
    n[3] = p - key;
    argv[4] = (const char *) cc->host.data;
    n[4] = cc->host.len;
    argv[5] = (const char *) seen;
    n[5] = ngx_sprintf(seen, "%T", last) - seen;

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, redis->log, 0,
                   "rustdesk: peer \"%*s\" offline here: its entry removed "
                   "if written by %T at the latest", g->len, g->id, last);

    (void) ngx_rustdesk_redis_send(redis, 6, argv, n);
}
