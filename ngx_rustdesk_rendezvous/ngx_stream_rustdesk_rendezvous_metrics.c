/*
 * The rendezvous module's figures for the metrics listener
 * (common/ngx_rustdesk_metrics.c): what its workers count in their slots
 * of the zone, what the zone itself knows (peers, online peers, waiting
 * requesters, answers delivered, its pages), and its health: the zone has
 * room for new peers, and the database can be written.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_ipc.h"
#include "ngx_stream_rustdesk_rendezvous_module.h"


/* A database check for /health, from the health request's pool. */
typedef struct {
    ngx_rustdesk_health_t                       *health;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;
} ngx_stream_rustdesk_rendezvous_probe_t;


static ngx_int_t ngx_stream_rustdesk_rendezvous_metrics(
    ngx_rustdesk_metrics_t *m, void *data);
static void ngx_stream_rustdesk_rendezvous_health(ngx_rustdesk_health_t *h,
    void *data);
static void ngx_stream_rustdesk_rendezvous_probed(void *data, ngx_int_t rc,
    u_char *err);


/* this process's values in the zone's slots; NULL: nothing is counted */
ngx_atomic_t  *ngx_stream_rustdesk_rendezvous_stats;


static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_peers = {
    "rustdesk_rendezvous_peers", NGX_RUSTDESK_GAUGE,
    "Peers in the rendezvous zone's table, online or not."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_online = {
    "rustdesk_rendezvous_peers_online", NGX_RUSTDESK_GAUGE,
    "Peers online: registered within rustdesk_online_timeout, or on a "
    "live stream."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_streams = {
    "rustdesk_rendezvous_streams", NGX_RUSTDESK_GAUGE,
    "Peers registered on a TCP or WebSocket stream they keep open."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_waiting = {
    "rustdesk_rendezvous_requesters_waiting", NGX_RUSTDESK_GAUGE,
    "Requesters waiting for the answer to a punch hole or relay request."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_answers = {
    "rustdesk_rendezvous_answers_total", NGX_RUSTDESK_COUNTER,
    "Answers delivered to waiting requesters, by the worker that held the "
    "requester: the one the answer came to, or another."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_blocked = {
    "rustdesk_rendezvous_ip_blocker_refusals_total", NGX_RUSTDESK_COUNTER,
    "Key registrations refused by the IP blocker (TOO_FREQUENT)."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_writes = {
    "rustdesk_rendezvous_database_writes_total", NGX_RUSTDESK_COUNTER,
    "Peer rows written to the database, by result."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_reads = {
    "rustdesk_rendezvous_database_reads_total", NGX_RUSTDESK_COUNTER,
    "Peer lookups in the database on a memory miss, by result."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_ipc_msgs = {
    "rustdesk_worker_channel_messages_total", NGX_RUSTDESK_COUNTER,
    "Messages between workers, sent and received."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_ipc_drops = {
    "rustdesk_worker_channel_dropped_total", NGX_RUSTDESK_COUNTER,
    "Messages between workers that were not delivered."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_hb = {
    "rustdesk_rendezvous_heartbeats_total", NGX_RUSTDESK_COUNTER,
    "RegisterPeer datagrams, by result: OK, IP_CHANGE, REQUEST_PK (the "
    "key is asked for), IGNORED."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_reg = {
    "rustdesk_rendezvous_registrations_total", NGX_RUSTDESK_COUNTER,
    "Key registrations (RegisterPk), by transport and result."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_punch = {
    "rustdesk_rendezvous_punch_requests_total", NGX_RUSTDESK_COUNTER,
    "Punch hole requests, by result: OK (passed on to the peer) or the "
    "failure answered."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_relay = {
    "rustdesk_rendezvous_relay_requests_total", NGX_RUSTDESK_COUNTER,
    "Relay requests, by result: OK (passed on to the peer) or OFFLINE."
};

static const ngx_rustdesk_metric_t  ngx_rustdesk_rdv_m_cluster_msgs = {
    "rustdesk_cluster_messages_total", NGX_RUSTDESK_COUNTER,
    "Messages between the cluster's hosts (requests for a peer, answers "
    "for a requester), sent and received."
};


/* the results counted, as $rustdesk_result has them, in the slots' order */

static const char  *ngx_stream_rustdesk_rendezvous_hb_results[] = {
    "OK", "IP_CHANGE", "REQUEST_PK", "IGNORED"
};

static const char  *ngx_stream_rustdesk_rendezvous_reg_results[] = {
    "OK", "UUID_MISMATCH", "TOO_FREQUENT", "INVALID_ID_FORMAT",
    "SERVER_ERROR", "IGNORED"
};

static const char  *ngx_stream_rustdesk_rendezvous_punch_results[] = {
    "OK", "ID_NOT_EXIST", "OFFLINE", "LICENSE_MISMATCH"
};

static const char  *ngx_stream_rustdesk_rendezvous_relay_results[] = {
    "OK", "OFFLINE"
};


static const ngx_rustdesk_stat_t
    ngx_stream_rustdesk_rendezvous_stat_info[NGX_RUSTDESK_RDV_NSTATS] =
{
    { &ngx_rustdesk_rdv_m_streams, "transport=\"tcp\"" },
    { &ngx_rustdesk_rdv_m_streams, "transport=\"ws\"" },
    { &ngx_rustdesk_rdv_m_blocked, "" },
    { &ngx_rustdesk_rdv_m_writes, "result=\"ok\"" },
    { &ngx_rustdesk_rdv_m_writes, "result=\"error\"" },
    { &ngx_rustdesk_rdv_m_reads, "result=\"found\"" },
    { &ngx_rustdesk_rdv_m_reads, "result=\"absent\"" },
    { &ngx_rustdesk_rdv_m_reads, "result=\"error\"" },
    { &ngx_rustdesk_rdv_m_ipc_msgs,
      "module=\"rendezvous\",direction=\"sent\"" },
    { &ngx_rustdesk_rdv_m_ipc_msgs,
      "module=\"rendezvous\",direction=\"received\"" },
    { &ngx_rustdesk_rdv_m_ipc_drops, "module=\"rendezvous\"" },

#define ngx_rdv_hb(r)  { &ngx_rustdesk_rdv_m_hb,                             \
                         "result=\"" r "\"" }
    ngx_rdv_hb("OK"), ngx_rdv_hb("IP_CHANGE"), ngx_rdv_hb("REQUEST_PK"),
    ngx_rdv_hb("IGNORED"),

#define ngx_rdv_reg(t, r)  { &ngx_rustdesk_rdv_m_reg,                        \
                             "transport=\"" t "\",result=\"" r "\"" }
#define ngx_rdv_regs(t)                                                      \
    ngx_rdv_reg(t, "OK"), ngx_rdv_reg(t, "UUID_MISMATCH"),                   \
    ngx_rdv_reg(t, "TOO_FREQUENT"), ngx_rdv_reg(t, "INVALID_ID_FORMAT"),     \
    ngx_rdv_reg(t, "SERVER_ERROR"), ngx_rdv_reg(t, "IGNORED")
    ngx_rdv_regs("udp"), ngx_rdv_regs("tcp"), ngx_rdv_regs("ws"),

#define ngx_rdv_punch(r)  { &ngx_rustdesk_rdv_m_punch,                       \
                            "result=\"" r "\"" }
    ngx_rdv_punch("OK"), ngx_rdv_punch("ID_NOT_EXIST"),
    ngx_rdv_punch("OFFLINE"), ngx_rdv_punch("LICENSE_MISMATCH"),

#define ngx_rdv_relay(r)  { &ngx_rustdesk_rdv_m_relay,                       \
                            "result=\"" r "\"" }
    ngx_rdv_relay("OK"), ngx_rdv_relay("OFFLINE"),

    NGX_RUSTDESK_REDIS_STATS("rendezvous"),

    { &ngx_rustdesk_rdv_m_cluster_msgs, "direction=\"sent\"" },
    { &ngx_rustdesk_rdv_m_cluster_msgs, "direction=\"received\"" }
};


/*
 * In postconfiguration, with the zone added: when a metrics listener is
 * configured, the zone gets slots and the module a source.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_metrics_conf(ngx_conf_t *cf,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    ngx_rustdesk_metrics_source_t  *src;

    if (!ngx_rustdesk_metrics_enabled(rmcf->shared)) {
        return NGX_OK;
    }

    /* the cluster's figures only with a cluster */
    rmcf->zone->stats_values = rmcf->cluster.redis.url.len
                               ? NGX_RUSTDESK_RDV_NSTATS
                               : NGX_RUSTDESK_RDV_LOCAL_NSTATS;

    src = ngx_rustdesk_metrics_add_source(cf, rmcf->shared);
    if (src == NULL) {
        return NGX_ERROR;
    }

    src->metrics = ngx_stream_rustdesk_rendezvous_metrics;
    src->health = ngx_stream_rustdesk_rendezvous_health;
    src->data = rmcf;

    return NGX_OK;
}


void
ngx_stream_rustdesk_rendezvous_metrics_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    ngx_rustdesk_stats_t  *st;

    st = rmcf->zone->sh->stats;

    if (rmcf->zone->stats_values == 0 || st == NULL) {
        return;
    }

    ngx_stream_rustdesk_rendezvous_stats = ngx_rustdesk_stats_claim(st,
                                   ngx_stream_rustdesk_rendezvous_stat_info);
}


void
ngx_stream_rustdesk_rendezvous_metrics_exit(ngx_cycle_t *cycle)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    if (ngx_stream_rustdesk_rendezvous_stats == NULL) {
        return;
    }

    rmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                        ngx_stream_rustdesk_rendezvous_module);

    ngx_rustdesk_stats_release(rmcf->zone->sh->stats,
                               ngx_stream_rustdesk_rendezvous_stats,
                               ngx_stream_rustdesk_rendezvous_stat_info);

    ngx_stream_rustdesk_rendezvous_stats = NULL;
}


/*
 * The protocol layer's result of a message, counted (at most a few short
 * string comparisons: it runs for every heartbeat).
 */

void
ngx_stream_rustdesk_rendezvous_account(ngx_uint_t transport,
    ngx_uint_t message, const char *result)
{
    ngx_uint_t    i, n, base;
    const char  **names;

    if (ngx_stream_rustdesk_rendezvous_stats == NULL || result == NULL) {
        return;
    }

    switch (message) {

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER:
        base = NGX_RUSTDESK_RDV_HEARTBEATS;
        names = ngx_stream_rustdesk_rendezvous_hb_results;
        n = NGX_RUSTDESK_RDV_HEARTBEAT_RESULTS;
        break;

    case HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK:
        base = NGX_RUSTDESK_RDV_REGISTRATIONS
               + transport * NGX_RUSTDESK_RDV_REGISTER_RESULTS;
        names = ngx_stream_rustdesk_rendezvous_reg_results;
        n = NGX_RUSTDESK_RDV_REGISTER_RESULTS;
        break;

    case HBB__RENDEZVOUS_MESSAGE__UNION_PUNCH_HOLE_REQUEST:
        base = NGX_RUSTDESK_RDV_PUNCH;
        names = ngx_stream_rustdesk_rendezvous_punch_results;
        n = NGX_RUSTDESK_RDV_PUNCH_RESULTS;
        break;

    case HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY:
        base = NGX_RUSTDESK_RDV_RELAY;
        names = ngx_stream_rustdesk_rendezvous_relay_results;
        n = NGX_RUSTDESK_RDV_RELAY_RESULTS;
        break;

    default:
        return;
    }

    for (i = 0; i < n; i++) {
        if (ngx_strcmp(result, names[i]) == 0) {
            ngx_stream_rustdesk_rendezvous_count(base + i, 1);
            return;
        }
    }
}


/* The content handler of "rustdesk_metrics", when this module has it. */

void
ngx_stream_rustdesk_rendezvous_metrics_handler(ngx_stream_session_t *s)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    ngx_rustdesk_metrics_handler(s, rmcf->shared);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_metrics(ngx_rustdesk_metrics_t *m, void *data)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = data;

    ngx_rustdesk_stats_t         *st;
    ngx_rustdesk_peer_figures_t   f;

    ngx_rustdesk_peer_figures(rmcf->zone, ngx_current_msec, &f);

    if (ngx_rustdesk_metrics_add(m, &ngx_rustdesk_rdv_m_peers,
                                 "", 0, f.peers)
        != NGX_OK
        || ngx_rustdesk_metrics_add(m, &ngx_rustdesk_rdv_m_online,
                                    "", 0, f.online)
           != NGX_OK
        || ngx_rustdesk_metrics_add(m, &ngx_rustdesk_rdv_m_waiting,
                                    "", 0, f.waiters)
           != NGX_OK
        || ngx_rustdesk_metrics_add(m, &ngx_rustdesk_rdv_m_answers,
                                    "worker=\"same\"",
                                    sizeof("worker=\"same\"") - 1,
                                    f.answers - f.answers_cross)
           != NGX_OK
        || ngx_rustdesk_metrics_add(m, &ngx_rustdesk_rdv_m_answers,
                                    "worker=\"other\"",
                                    sizeof("worker=\"other\"") - 1,
                                    f.answers_cross)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    st = rmcf->zone->sh->stats;

    if (st && st->nvalues == rmcf->zone->stats_values
        && ngx_rustdesk_metrics_add_stats(m, st,
                                     ngx_stream_rustdesk_rendezvous_stat_info)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the brokered relay sessions' zone is the rendezvous module's */

    if (rmcf->brokered_zone
        && ngx_rustdesk_metrics_add_zone(m, rmcf->brokered_zone, "rendezvous")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_rustdesk_metrics_add_zone(m, rmcf->shm_zone, "rendezvous");
}


static void
ngx_stream_rustdesk_rendezvous_health(ngx_rustdesk_health_t *h, void *data)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = data;

    ngx_uint_t                               failed;
    ngx_rustdesk_db_t                       *db;
    ngx_rustdesk_peer_figures_t              f;
    ngx_stream_rustdesk_rendezvous_probe_t  *pr;

    ngx_rustdesk_peer_figures(rmcf->zone, ngx_current_msec, &f);

    if (f.full) {
        ngx_rustdesk_health_fail(h, "rendezvous zone \"%V\" is full: new "
                                 "peers are refused",
                                 &rmcf->shm_zone->shm.name);
    }

    if (rmcf->database_off) {
        return;
    }

    db = ngx_stream_rustdesk_rendezvous_db(&failed);

    if (db == NULL) {
        ngx_rustdesk_health_fail(h, "database \"%V\" could not be opened by "
                                 "worker %P", &rmcf->database, ngx_pid);
        return;
    }

    pr = ngx_palloc(h->pool, sizeof(ngx_stream_rustdesk_rendezvous_probe_t));
    if (pr == NULL) {
        ngx_rustdesk_health_fail(h, "database \"%V\" was not checked: no "
                                 "memory", &rmcf->database);
        return;
    }

    pr->health = h;
    pr->rmcf = rmcf;

    ngx_rustdesk_health_wait(h);

    if (ngx_rustdesk_db_probe(db, h->pool,
                              ngx_stream_rustdesk_rendezvous_probed, pr)
        != NGX_OK)
    {
        ngx_rustdesk_health_fail(h, "database \"%V\" was not checked: its "
                                 "check could not start", &rmcf->database);
        ngx_rustdesk_health_done(h);
    }
}


static void
ngx_stream_rustdesk_rendezvous_probed(void *data, ngx_int_t rc, u_char *err)
{
    ngx_stream_rustdesk_rendezvous_probe_t  *pr = data;

    if (rc != NGX_OK) {
        ngx_rustdesk_health_fail(pr->health, "database \"%V\" cannot be "
                                 "written: %s", &pr->rmcf->database, err);
    }

    ngx_rustdesk_health_done(pr->health);
}
