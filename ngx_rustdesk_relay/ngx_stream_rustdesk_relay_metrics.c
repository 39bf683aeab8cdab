/*
 * The relay module's figures for the metrics listener
 * (common/ngx_rustdesk_metrics.c): what its workers count in their slots
 * of the zone (pairs, bytes, limits, the worker channel, and each session
 * by the result its access log line has, counted in the log phase), the
 * zone's pages, and its health: the zone has room for waiting
 * connections.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_ipc.h"
#include "ngx_stream_rustdesk_relay_module.h"


static ngx_int_t ngx_stream_rustdesk_relay_metrics(ngx_rustdesk_metrics_t *m,
    void *data);
static void ngx_stream_rustdesk_relay_health(ngx_rustdesk_health_t *h,
    void *data);
static ngx_int_t ngx_stream_rustdesk_relay_metrics_log(
    ngx_stream_session_t *s);


/* this process's values in the zone's slots; NULL: nothing is counted */
ngx_atomic_t  *ngx_stream_rustdesk_relay_stats;


static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_active = {
    "rustdesk_relay_pairs_active", NGX_RUSTDESK_GAUGE,
    "Relay pairs forwarding now."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_waiting = {
    "rustdesk_relay_waiting", NGX_RUSTDESK_GAUGE,
    "Relay connections waiting for their partner."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_pairs = {
    "rustdesk_relay_pairs_total", NGX_RUSTDESK_COUNTER,
    "Relay pairs made: two connections with the same uuid met."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_bytes = {
    "rustdesk_relay_bytes_total", NGX_RUSTDESK_COUNTER,
    "Bytes relayed, both ways, counted as they are read."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_limited = {
    "rustdesk_relay_pairs_limited_total", NGX_RUSTDESK_COUNTER,
    "Relay pairs put on rustdesk_relay_limit_speed: an address on the "
    "blacklist, or downgraded for their average rate."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_sessions = {
    "rustdesk_relay_sessions_total", NGX_RUSTDESK_COUNTER,
    "Relay sessions ended, by result ($rustdesk_result): one for each "
    "relayed pair (paired, idle_timeout, blocked, error, shutdown) and "
    "one for each connection that was never paired."
};


static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_ipc_msgs = {
    "rustdesk_worker_channel_messages_total", NGX_RUSTDESK_COUNTER,
    "Messages between workers, sent and received."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_ipc_drops = {
    "rustdesk_worker_channel_dropped_total", NGX_RUSTDESK_COUNTER,
    "Messages between workers that were not delivered."
};


static const ngx_rustdesk_stat_t
    ngx_stream_rustdesk_relay_stat_info[NGX_RUSTDESK_RELAY_NSTATS] =
{
    { &ngx_stream_rustdesk_relay_m_active, "" },
    { &ngx_stream_rustdesk_relay_m_waiting, "" },
    { &ngx_stream_rustdesk_relay_m_pairs, "" },
    { &ngx_stream_rustdesk_relay_m_bytes, "" },
    { &ngx_stream_rustdesk_relay_m_limited, "reason=\"blacklist\"" },
    { &ngx_stream_rustdesk_relay_m_limited, "reason=\"downgrade\"" },
    { &ngx_stream_rustdesk_relay_m_ipc_msgs,
      "module=\"relay\",direction=\"sent\"" },
    { &ngx_stream_rustdesk_relay_m_ipc_msgs,
      "module=\"relay\",direction=\"received\"" },
    { &ngx_stream_rustdesk_relay_m_ipc_drops, "module=\"relay\"" },

#define ngx_relay_result(r)  { &ngx_stream_rustdesk_relay_m_sessions,         \
                               "result=\"" r "\"" }
    ngx_relay_result("paired"), ngx_relay_result("idle_timeout"),
    ngx_relay_result("blocked"), ngx_relay_result("error"),
    ngx_relay_result("shutdown"), ngx_relay_result("no_partner"),
    ngx_relay_result("closed"), ngx_relay_result("no_request"),
    ngx_relay_result("bad_request"), ngx_relay_result("key_mismatch"),
    ngx_relay_result("zone_full"), ngx_relay_result("no_ticket"),

    NGX_RUSTDESK_REDIS_STATS("relay")
};


/* $rustdesk_result's values, in the slots' order */

static const char  *ngx_stream_rustdesk_relay_results[] = {
    "paired", "idle_timeout", "blocked", "error", "shutdown", "no_partner",
    "closed", "no_request", "bad_request", "key_mismatch", "zone_full",
    "no_ticket"
};


/*
 * In postconfiguration, with the zone added: when a metrics listener is
 * configured, the zone gets slots and the module a source.
 */

ngx_int_t
ngx_stream_rustdesk_relay_metrics_conf(ngx_conf_t *cf,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf)
{
    ngx_stream_handler_pt          *h;
    ngx_stream_core_main_conf_t    *cmcf;
    ngx_rustdesk_metrics_source_t  *src;

    if (!ngx_rustdesk_metrics_enabled(lmcf->shared)) {
        return NGX_OK;
    }

    /* each session's result, as it ends */

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_rustdesk_relay_metrics_log;

    /* the Redis connection's figures only when there is one */
    lmcf->zone->stats_values =
        (lmcf->tickets && ngx_rustdesk_cluster_on(&lmcf->shared->cluster))
        ? NGX_RUSTDESK_RELAY_NSTATS : NGX_RUSTDESK_RELAY_LOCAL_NSTATS;
    lmcf->zone->cycle = cf->cycle;

    src = ngx_rustdesk_metrics_add_source(cf, lmcf->shared);
    if (src == NULL) {
        return NGX_ERROR;
    }

    src->metrics = ngx_stream_rustdesk_relay_metrics;
    src->health = ngx_stream_rustdesk_relay_health;
    src->data = lmcf;

    return NGX_OK;
}


void
ngx_stream_rustdesk_relay_metrics_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf)
{
    ngx_rustdesk_stats_t  *st;

    st = lmcf->zone->sh->stats;

    if (lmcf->zone->stats_values == 0 || st == NULL) {
        return;
    }

    ngx_stream_rustdesk_relay_stats = ngx_rustdesk_stats_claim(st,
                                        ngx_stream_rustdesk_relay_stat_info);
}


void
ngx_stream_rustdesk_relay_metrics_exit(ngx_cycle_t *cycle)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    if (ngx_stream_rustdesk_relay_stats == NULL) {
        return;
    }

    lmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                        ngx_stream_rustdesk_relay_module);

    ngx_rustdesk_stats_release(lmcf->zone->sh->stats,
                               ngx_stream_rustdesk_relay_stats,
                               ngx_stream_rustdesk_relay_stat_info);

    ngx_stream_rustdesk_relay_stats = NULL;
}


/*
 * A session ends (nginx's log phase, whatever server it was in): a relay
 * session with a line of its own in the access log is counted by that
 * line's result.  The quiet ones (a pair's second side, a connection
 * handed to another worker) are told of by their partner's line.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_metrics_log(ngx_stream_session_t *s)
{
    ngx_uint_t                         i;
    ngx_stream_rustdesk_relay_side_t  *side;

    side = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_relay_module);

    if (side == NULL || side->quiet || side->result == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < NGX_RUSTDESK_RELAY_RESULTS; i++) {
        if (ngx_strcmp(side->result, ngx_stream_rustdesk_relay_results[i])
            == 0)
        {
            ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_SESSIONS + i,
                                            1);
            break;
        }
    }

    return NGX_OK;
}


/* The content handler of "rustdesk_metrics", when this module has it. */

void
ngx_stream_rustdesk_relay_metrics_handler(ngx_stream_session_t *s)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_stream_get_module_main_conf(s,
                                           ngx_stream_rustdesk_relay_module);

    ngx_rustdesk_metrics_handler(s, lmcf->shared);
}


static ngx_int_t
ngx_stream_rustdesk_relay_metrics(ngx_rustdesk_metrics_t *m, void *data)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = data;

    ngx_rustdesk_stats_t  *st;

    st = lmcf->zone->sh->stats;

    if (st && st->nvalues == lmcf->zone->stats_values
        && ngx_rustdesk_metrics_add_stats(m, st,
                                          ngx_stream_rustdesk_relay_stat_info)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_rustdesk_metrics_add_zone(m, lmcf->shm_zone, "relay");
}


static void
ngx_stream_rustdesk_relay_health(ngx_rustdesk_health_t *h, void *data)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = data;

    if (lmcf->zone->sh->full) {
        ngx_rustdesk_health_fail(h, "relay zone \"%V\" is full: relay "
                                 "requests are refused",
                                 &lmcf->shm_zone->shm.name);
    }
}
