/*
 * The relay module's figures for the metrics listener
 * (common/ngx_rustdesk_metrics.c): what its workers count in their slots
 * of the zone (pairs, bytes, limits, refusals, the worker channel), the
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

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_refused = {
    "rustdesk_relay_refused_total", NGX_RUSTDESK_COUNTER,
    "Relay connections refused before pairing, by reason."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_unpaired = {
    "rustdesk_relay_unpaired_total", NGX_RUSTDESK_COUNTER,
    "Relay connections that waited and were never paired: no partner "
    "within rustdesk_relay_pair_timeout, or the client left."
};

static const ngx_rustdesk_metric_t  ngx_stream_rustdesk_relay_m_closed = {
    "rustdesk_relay_pairs_closed_total", NGX_RUSTDESK_COUNTER,
    "Relay pairs ended, by reason: a side closed, idle, an address "
    "blocklisted, an error, nginx shutting down."
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
    { &ngx_stream_rustdesk_relay_m_refused, "reason=\"blocklist\"" },
    { &ngx_stream_rustdesk_relay_m_refused, "reason=\"key_mismatch\"" },
    { &ngx_stream_rustdesk_relay_m_refused, "reason=\"zone_full\"" },
    { &ngx_stream_rustdesk_relay_m_unpaired, "reason=\"no_partner\"" },
    { &ngx_stream_rustdesk_relay_m_unpaired, "reason=\"left\"" },
    { &ngx_stream_rustdesk_relay_m_closed, "reason=\"closed\"" },
    { &ngx_stream_rustdesk_relay_m_closed, "reason=\"idle\"" },
    { &ngx_stream_rustdesk_relay_m_closed, "reason=\"blocked\"" },
    { &ngx_stream_rustdesk_relay_m_closed, "reason=\"error\"" },
    { &ngx_stream_rustdesk_relay_m_closed, "reason=\"shutdown\"" },
    { &ngx_stream_rustdesk_relay_m_ipc_msgs,
      "module=\"relay\",direction=\"sent\"" },
    { &ngx_stream_rustdesk_relay_m_ipc_msgs,
      "module=\"relay\",direction=\"received\"" },
    { &ngx_stream_rustdesk_relay_m_ipc_drops, "module=\"relay\"" },
};


/*
 * In postconfiguration, with the zone added: when a metrics listener is
 * configured, the zone gets slots and the module a source.
 */

ngx_int_t
ngx_stream_rustdesk_relay_metrics_conf(ngx_conf_t *cf,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf)
{
    ngx_rustdesk_metrics_source_t  *src;

    if (!ngx_rustdesk_metrics_enabled(lmcf->shared)) {
        return NGX_OK;
    }

    lmcf->zone->stats_values = NGX_RUSTDESK_RELAY_NSTATS;
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


/* The content handler of "rustdesk_metrics", when this module has it. */

void
ngx_stream_rustdesk_relay_metrics_handler(ngx_stream_session_t *s)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_stream_get_module_main_conf(s, ngx_stream_rustdesk_relay_module);

    ngx_rustdesk_metrics_handler(s, lmcf->shared);
}


static ngx_int_t
ngx_stream_rustdesk_relay_metrics(ngx_rustdesk_metrics_t *m, void *data)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = data;

    ngx_rustdesk_stats_t  *st;

    st = lmcf->zone->sh->stats;

    if (st && st->nvalues == NGX_RUSTDESK_RELAY_NSTATS
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
