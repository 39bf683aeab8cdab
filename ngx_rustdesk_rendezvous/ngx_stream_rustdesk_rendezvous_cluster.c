/*
 * Cluster mode's directives and each worker's connection to Redis
 * (common/ngx_rustdesk_redis.c): opened in init_process, in the
 * background, and closed in exit_process.  Without rustdesk_cluster
 * nothing here runs.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


/* this worker's connection */
static ngx_rustdesk_redis_t  ngx_stream_rustdesk_rendezvous_cluster_conn;
static u_char                ngx_stream_rustdesk_rendezvous_cluster_name[
                                 sizeof("ngx_rustdesk::") - 1
                                 + NGX_RUSTDESK_CLUSTER_HOST_MAX
                                 + NGX_INT64_LEN + 1];


ngx_int_t
ngx_stream_rustdesk_rendezvous_cluster_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc)
{
    ngx_rustdesk_redis_t                        *r;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    r = &ngx_stream_rustdesk_rendezvous_cluster_conn;

    ngx_memzero(r, sizeof(ngx_rustdesk_redis_t));

    /* CLIENT LIST shows which host and worker each connection is */

    (void) ngx_sprintf(ngx_stream_rustdesk_rendezvous_cluster_name,
                       "ngx_rustdesk:%V:%P%Z", &cc->host, ngx_pid);

    r->conf = &cc->redis;
    r->name = (const char *) ngx_stream_rustdesk_rendezvous_cluster_name;
    r->stats = ngx_stream_rustdesk_rendezvous_redis_stats();

    if (ngx_rustdesk_redis_open(r, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    rmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                        ngx_stream_rustdesk_rendezvous_module);

    /* worker 0 also listens to the host's channel, and removes entries */

    ngx_stream_rustdesk_rendezvous_offline_init(cycle, rmcf);

    return ngx_stream_rustdesk_rendezvous_channel_init(cycle, rmcf);
}


void
ngx_stream_rustdesk_rendezvous_cluster_exit(ngx_cycle_t *cycle)
{
    ngx_stream_rustdesk_rendezvous_offline_exit(cycle);
    ngx_stream_rustdesk_rendezvous_channel_exit(cycle);
    ngx_rustdesk_redis_close(&ngx_stream_rustdesk_rendezvous_cluster_conn);
}


ngx_rustdesk_redis_t *
ngx_stream_rustdesk_rendezvous_cluster_redis(void)
{
    return &ngx_stream_rustdesk_rendezvous_cluster_conn;
}


/* rustdesk_cluster_host name: this host, in the cluster's keys */

char *
ngx_stream_rustdesk_rendezvous_cluster_host(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    u_char      ch;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (rmcf->cluster.host.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > NGX_RUSTDESK_CLUSTER_HOST_MAX) {
        return "must have 1 to 64 characters";
    }

    for (i = 0; i < value[1].len; i++) {
        ch = value[1].data[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'
              || ch == '_'))
        {
            return "may hold letters, digits, \".\", \"-\" and \"_\" only";
        }
    }

    rmcf->cluster.host = value[1];

    return NGX_CONF_OK;
}


/* From init_main_conf: the defaults, and the directives' agreement. */

char *
ngx_stream_rustdesk_rendezvous_cluster_init_conf(ngx_conf_t *cf,
    ngx_rustdesk_cluster_conf_t *sc,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc)
{
    u_char  *p;
    size_t   len;

    if (ngx_rustdesk_cluster_init_conf(cf, sc) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!ngx_rustdesk_cluster_on(sc)) {
        if (cc->host.data || cc->ttl != NGX_CONF_UNSET_MSEC) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"rustdesk_cluster_*\" directives need "
                               "\"rustdesk_cluster\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    /* this module's copy: set once, read everywhere */
    cc->redis = sc->redis;
    cc->prefix = sc->prefix;

    if (cc->host.data == NULL) {
        /* the machine's name, as nginx knows it ($hostname) */

        len = ngx_min(cf->cycle->hostname.len, NGX_RUSTDESK_CLUSTER_HOST_MAX);

        for (p = cf->cycle->hostname.data;
             p < cf->cycle->hostname.data + len; p++)
        {
            if (*p == ' ' || *p == ':') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "this host's name \"%V\" cannot name it "
                                   "in the cluster: set "
                                   "\"rustdesk_cluster_host\"",
                                   &cf->cycle->hostname);
                return NGX_CONF_ERROR;
            }
        }

        cc->host.data = cf->cycle->hostname.data;
        cc->host.len = len;
    }

    ngx_conf_init_msec_value(cc->ttl, NGX_RUSTDESK_CLUSTER_TTL);

    if (cc->ttl < 3000 || cc->ttl > 86400000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rustdesk_cluster_ttl\" must be between 3s "
                           "and 24h");
        return NGX_CONF_ERROR;
    }

    cc->refresh = cc->ttl / 3;

    return NGX_CONF_OK;
}
