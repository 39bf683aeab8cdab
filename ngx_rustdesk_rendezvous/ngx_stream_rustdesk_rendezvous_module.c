/*
 * The RustDesk ID/rendezvous server ("hbbs") as an nginx stream module:
 * directives, configuration, the shared zone, and the content handler
 * that hands each session to the UDP or TCP side.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_DEFAULT_ZONE       "rustdesk"
#define NGX_RUSTDESK_DEFAULT_ZONE_SIZE  (64 * 1024 * 1024)


static void *ngx_stream_rustdesk_rendezvous_create_main_conf(ngx_conf_t *cf);
static char *ngx_stream_rustdesk_rendezvous_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_stream_rustdesk_rendezvous_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_rustdesk_rendezvous_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_stream_rustdesk_rendezvous_postconfiguration(
    ngx_conf_t *cf);
static void ngx_stream_rustdesk_rendezvous_handler(ngx_stream_session_t *s);
static char *ngx_stream_rustdesk_rendezvous_role(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_rendezvous_zone(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_rendezvous_servers(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_shm_zone_t *ngx_stream_rustdesk_rendezvous_add_zone(ngx_conf_t *cf,
    ngx_str_t *name, size_t size);
static char *ngx_stream_rustdesk_rendezvous_relay_servers(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_rendezvous_set_local_ip(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_stream_complex_value_t *ngx_stream_rustdesk_rendezvous_value(
    ngx_conf_t *cf, ngx_str_t *value);
static char *ngx_stream_rustdesk_rendezvous_lan_mask(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_rendezvous_database(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_rendezvous_ip_blocker(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_stream_rustdesk_rendezvous_init_process(
    ngx_cycle_t *cycle);
static void ngx_stream_rustdesk_rendezvous_exit_process(ngx_cycle_t *cycle);


/* "rustdesk_metrics", when this module is the first loaded to declare it */
static ngx_rustdesk_metrics_role_t  ngx_stream_rustdesk_rendezvous_metrics_role = {
    ngx_stream_rustdesk_rendezvous_metrics_handler
};


static ngx_command_t  ngx_stream_rustdesk_rendezvous_commands[] = {

    { ngx_string("rustdesk_key_dir"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_conf_set_key_dir,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_channel_dir"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_conf_set_channel_dir,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_real_ip_from"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_conf_set_real_ip_from,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_real_ip_header"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_conf_set_real_ip_header,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_key"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_conf_set_key,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_rendezvous_zone,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_serial"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, serial),
      NULL },

    { ngx_string("rustdesk_rendezvous_servers"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_1MORE,
      ngx_stream_rustdesk_rendezvous_servers,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_software_url"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, software_url),
      NULL },

    { ngx_string("rustdesk_relay_servers"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_1MORE,
      ngx_stream_rustdesk_rendezvous_relay_servers,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_always_use_relay"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, always_use_relay),
      NULL },

    { ngx_string("rustdesk_lan_mask"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_rendezvous_lan_mask,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_local_ip"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_rendezvous_set_local_ip,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_ip_blocker"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_stream_rustdesk_rendezvous_ip_blocker,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_brokered_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, brokered_size),
      NULL },

    { ngx_string("rustdesk_brokered_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, brokered_timeout),
      NULL },

    { ngx_string("rustdesk_online_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, online_timeout),
      NULL },

    { ngx_string("rustdesk_keep_alive"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, keep_alive),
      NULL },

    { ngx_string("rustdesk_database"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_rendezvous_database,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_cluster"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_cluster_set,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_cluster_password"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_cluster_set_password,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_cluster_host"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_rendezvous_cluster_host,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_cluster_prefix"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_cluster_set_prefix,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_cluster_ttl"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_main_conf_t, cluster.ttl),
      NULL },

    { ngx_string("rustdesk_cluster_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_cluster_set_timeout,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_rendezvous"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_rendezvous_role,
      NGX_STREAM_SRV_CONF_OFFSET,
      NGX_RUSTDESK_ROLE_RENDEZVOUS,
      NULL },

    { ngx_string("rustdesk_nat_test"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_rendezvous_role,
      NGX_STREAM_SRV_CONF_OFFSET,
      NGX_RUSTDESK_ROLE_NAT_TEST,
      NULL },

    { ngx_string("rustdesk_console"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS,
      ngx_stream_rustdesk_rendezvous_role,
      NGX_STREAM_SRV_CONF_OFFSET,
      NGX_RUSTDESK_ROLE_CONSOLE,
      NULL },

    { ngx_string("rustdesk_metrics"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_rustdesk_metrics_directive,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      &ngx_stream_rustdesk_rendezvous_metrics_role },

    { ngx_string("rustdesk_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_srv_conf_t, timeout),
      NULL },

    { ngx_string("rustdesk_max_message"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_rendezvous_srv_conf_t, max_message),
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_rustdesk_rendezvous_module_ctx = {
    ngx_stream_rustdesk_rendezvous_add_variables,     /* preconfiguration */
    ngx_stream_rustdesk_rendezvous_postconfiguration, /* postconfiguration */

    ngx_stream_rustdesk_rendezvous_create_main_conf,  /* create main conf */
    ngx_stream_rustdesk_rendezvous_init_main_conf,    /* init main conf */

    ngx_stream_rustdesk_rendezvous_create_srv_conf,   /* create server conf */
    ngx_stream_rustdesk_rendezvous_merge_srv_conf     /* merge server conf */
};


ngx_module_t  ngx_stream_rustdesk_rendezvous_module = {
    NGX_MODULE_V1,
    &ngx_stream_rustdesk_rendezvous_module_ctx, /* module context */
    ngx_stream_rustdesk_rendezvous_commands,    /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_stream_rustdesk_rendezvous_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_stream_rustdesk_rendezvous_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void
ngx_stream_rustdesk_rendezvous_handler(ngx_stream_session_t *s)
{
    ngx_rustdesk_ip_t                           ip;
    ngx_stream_rustdesk_rendezvous_srv_conf_t  *rscf;

    if (s->connection->type == SOCK_DGRAM) {
        ngx_stream_rustdesk_rendezvous_udp(s);
        return;
    }

    rscf = ngx_stream_get_module_srv_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (rscf->role == NGX_RUSTDESK_ROLE_CONSOLE) {
        ngx_stream_rustdesk_rendezvous_console(s);
        return;
    }

    /* rustdesk_nat_test console: loopback clients get it, as in hbbs */

    if (rscf->console) {
        ngx_rustdesk_ip_from_sockaddr(&ip, s->connection->sockaddr,
                                      s->connection->socklen);

        if (ngx_rustdesk_ip_is_loopback(&ip)) {
            ngx_stream_rustdesk_rendezvous_console(s);
            return;
        }
    }

    ngx_stream_rustdesk_rendezvous_tcp(s);
}


static void *
ngx_stream_rustdesk_rendezvous_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_stream_rustdesk_rendezvous_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    rmcf->shared = ngx_rustdesk_stream_conf(cf);
    if (rmcf->shared == NULL) {
        return NULL;
    }

    rmcf->serial = NGX_CONF_UNSET;
    rmcf->always_use_relay = NGX_CONF_UNSET;
    rmcf->ip_block_max = NGX_CONF_UNSET_UINT;
    rmcf->ip_ids_max = NGX_CONF_UNSET_UINT;
    rmcf->keep_alive = NGX_CONF_UNSET_MSEC;
    rmcf->online_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->brokered_size = NGX_CONF_UNSET_SIZE;
    rmcf->brokered_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->cluster.ttl = NGX_CONF_UNSET_MSEC;

    return rmcf;
}


static void *
ngx_stream_rustdesk_rendezvous_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_rustdesk_rendezvous_srv_conf_t  *rscf;

    rscf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_stream_rustdesk_rendezvous_srv_conf_t));
    if (rscf == NULL) {
        return NULL;
    }

    rscf->timeout = NGX_CONF_UNSET_MSEC;
    rscf->max_message = NGX_CONF_UNSET_SIZE;

    return rscf;
}


static char *
ngx_stream_rustdesk_rendezvous_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_stream_rustdesk_rendezvous_srv_conf_t *prev = parent;
    ngx_stream_rustdesk_rendezvous_srv_conf_t *conf = child;

    /* the reference reads each message with a 30 s timeout */
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 30000);

    ngx_conf_merge_size_value(conf->max_message, prev->max_message,
                              64 * 1024);

    if (conf->max_message < 1024 || conf->max_message > 16 * 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rustdesk_max_message\" must be "
                           "between 1k and 16m");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_rustdesk_rendezvous_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    ngx_conf_init_value(rmcf->serial, 0);
    ngx_conf_init_value(rmcf->always_use_relay, 0);
    ngx_conf_init_msec_value(rmcf->keep_alive, NGX_RUSTDESK_KEEP_ALIVE);

    /* hbbs: a peer is online for 30 s after its last registration */
    ngx_conf_init_msec_value(rmcf->online_timeout, NGX_RUSTDESK_REG_TIMEOUT);

    /* hbbs: more than 30 RegisterPk a minute or 300 new ids a day */
    ngx_conf_init_uint_value(rmcf->ip_block_max, NGX_RUSTDESK_IP_BLOCK_MAX);
    ngx_conf_init_uint_value(rmcf->ip_ids_max, NGX_RUSTDESK_IP_IDS_MAX);

    if (rmcf->keep_alive < 1000 || rmcf->keep_alive > 3600000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rustdesk_keep_alive\" must be between 1s "
                           "and 1h");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_size_value(rmcf->brokered_size, 1024 * 1024);
    ngx_conf_init_msec_value(rmcf->brokered_timeout, 60000);

    if (rmcf->brokered_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rustdesk_brokered_zone\" must be at least %uzk",
                           8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    if (rmcf->brokered_timeout < 1000 || rmcf->brokered_timeout > 3600000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rustdesk_brokered_timeout\" must be between "
                           "1s and 1h");
        return NGX_CONF_ERROR;
    }

    if (rmcf->online_timeout < 1000 || rmcf->online_timeout > 3600000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rustdesk_online_timeout\" must be between 1s "
                           "and 1h");
        return NGX_CONF_ERROR;
    }

    ngx_stream_rustdesk_rendezvous_version_from_url(&rmcf->software_url,
                                                    &rmcf->software_version);

    return ngx_stream_rustdesk_rendezvous_cluster_init_conf(cf,
                                                   &rmcf->shared->cluster,
                                                   &rmcf->cluster);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                                    name;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_conf_get_module_main_conf(cf,
                                        ngx_stream_rustdesk_rendezvous_module);

    /*
     * hbbs always has a key pair; it is loaded when a server serves the
     * protocol or the configuration names the key or its directory
     */

    if (!rmcf->used && rmcf->shared->key.data == NULL
        && !rmcf->shared->key_dir_set)
    {
        return NGX_OK;
    }

    if (ngx_rustdesk_conf_resolve_key(cf, rmcf->shared, NGX_RUSTDESK_KEY_HBBS,
                                      &rmcf->licence)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!rmcf->used) {
        return NGX_OK;
    }

    if (rmcf->shm_zone == NULL) {
        ngx_str_set(&name, NGX_RUSTDESK_DEFAULT_ZONE);

        rmcf->shm_zone = ngx_stream_rustdesk_rendezvous_add_zone(cf, &name,
                                               NGX_RUSTDESK_DEFAULT_ZONE_SIZE);
        if (rmcf->shm_zone == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_str_set(&name, NGX_RUSTDESK_BROKERED_ZONE);

    rmcf->brokered_zone = ngx_rustdesk_conf_add_zone(cf, &name,
                                      rmcf->brokered_size,
                                      &ngx_stream_rustdesk_rendezvous_module,
                                      ngx_rustdesk_brokered_init_zone,
                                      sizeof(ngx_rustdesk_brokered_t));
    if (rmcf->brokered_zone == NULL) {
        return NGX_ERROR;
    }

    rmcf->brokered = rmcf->brokered_zone->data;
    rmcf->brokered->ttl = rmcf->brokered_timeout;

    if (ngx_stream_rustdesk_rendezvous_database_init(cf, rmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_stream_rustdesk_relays_resolve(cf, rmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    rmcf->zone = rmcf->shm_zone->data;
    rmcf->zone->channel = &rmcf->shared->channel;
    rmcf->zone->cycle = cf->cycle;
    rmcf->zone->database = rmcf->database_off ? NULL : &rmcf->database;
    rmcf->zone->serial = (int32_t) rmcf->serial;
    rmcf->zone->servers = rmcf->rendezvous_servers;
    rmcf->zone->always_use_relay = rmcf->always_use_relay;

    rmcf->zone->ip_block_max = rmcf->ip_block_max;
    rmcf->zone->ip_ids_max = rmcf->ip_ids_max;

    /*
     * a live registered stream hears from its client at least once per
     * keep-alive period (the echo of our heartbeat); a silent one is
     * closed after two, and then stays online for the usual 30 s
     */
    rmcf->zone->online_ttl = rmcf->online_timeout;
    rmcf->zone->stream_ttl = 2 * rmcf->keep_alive + rmcf->online_timeout;

    return ngx_stream_rustdesk_rendezvous_metrics_conf(cf, rmcf);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_init_process(ngx_cycle_t *cycle)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (rmcf == NULL || !rmcf->used) {
        return NGX_OK;
    }

    /* first: the database and the worker channel count in its slot */
    ngx_stream_rustdesk_rendezvous_metrics_init(cycle, rmcf);

    ngx_stream_rustdesk_rendezvous_db_open(cycle, rmcf);

    if (ngx_stream_rustdesk_relays_init(cycle, rmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        && ngx_stream_rustdesk_rendezvous_cluster_init(cycle, &rmcf->cluster)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_stream_rustdesk_rendezvous_deliver_init(cycle, rmcf->zone);
}


static void
ngx_stream_rustdesk_rendezvous_exit_process(ngx_cycle_t *cycle)
{
    ngx_stream_rustdesk_rendezvous_cluster_exit(cycle);
    ngx_stream_rustdesk_rendezvous_deliver_exit(cycle);
    ngx_stream_rustdesk_relays_exit(cycle);

    ngx_stream_rustdesk_rendezvous_db_close();

    ngx_stream_rustdesk_rendezvous_metrics_exit(cycle);
}


/* rustdesk_ip_blocker <RegisterPk per minute> <new ids per day> */

static char *
ngx_stream_rustdesk_rendezvous_ip_blocker(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    ngx_int_t   rate, ids;
    ngx_str_t  *value;

    if (rmcf->ip_block_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rate = ngx_atoi(value[1].data, value[1].len);
    ids = ngx_atoi(value[2].data, value[2].len);

    if (rate <= 0 || ids <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rustdesk_ip_blocker \"%V %V\", expected "
                           "two positive numbers", &value[1], &value[2]);
        return NGX_CONF_ERROR;
    }

    rmcf->ip_block_max = rate;
    rmcf->ip_ids_max = ids;

    return NGX_CONF_OK;
}


/* rustdesk_database path | off */

static char *
ngx_stream_rustdesk_rendezvous_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    ngx_str_t  *value;

    if (rmcf->database.data || rmcf->database_off) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        rmcf->database_off = 1;
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        return "is empty";
    }

    rmcf->database = value[1];

    /* ngx_conf_full_name() keeps the result NUL-terminated */
    if (ngx_conf_full_name(cf->cycle, &rmcf->database, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* Inside the LAN mask (IPv4 only, as the reference's --mask). */

ngx_uint_t
ngx_stream_rustdesk_rendezvous_is_lan(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_rustdesk_ip_t *ip)
{
    in_addr_t  a;

    if (rmcf->lan_mask == 0 || ip->family != AF_INET) {
        return 0;
    }

    ngx_memcpy(&a, ip->addr, 4);

    return (a & rmcf->lan_mask) == rmcf->lan_addr;
}


ngx_uint_t
ngx_stream_rustdesk_rendezvous_always_relay(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    return rmcf->zone->sh->always_use_relay;
}


/*
 * rustdesk_relay_servers host[:port] ...; or "a,b" as hbbs -r takes it.
 * With variables, the arguments are one value (comma-joined) evaluated
 * for each requester (..._relays.c).
 */

static char *
ngx_stream_rustdesk_rendezvous_relay_servers(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    u_char      *p, *start, *last;
    size_t       len;
    ngx_str_t   *value, *rs, joined;
    ngx_uint_t   i, vars;

    if (rmcf->relay_servers || rmcf->relay_value) {
        return "is duplicate";
    }

    value = cf->args->elts;

    vars = 0;
    len = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        vars += ngx_stream_script_variables_count(&value[i]);
        len += value[i].len + 1;
    }

    if (vars) {
        joined.data = ngx_pnalloc(cf->pool, len);
        if (joined.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = joined.data;

        for (i = 1; i < cf->args->nelts; i++) {
            if (i > 1) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, value[i].data, value[i].len);
        }

        joined.len = p - joined.data;

        rmcf->relay_value = ngx_stream_rustdesk_rendezvous_value(cf, &joined);
        if (rmcf->relay_value == NULL) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    rmcf->relay_servers = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (rmcf->relay_servers == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        last = value[i].data + value[i].len;

        for (start = p = value[i].data; p <= last; p++) {
            if (p < last && *p != ',') {
                continue;
            }

            if (p > start) {
                rs = ngx_array_push(rmcf->relay_servers);
                if (rs == NULL) {
                    return NGX_CONF_ERROR;
                }

                rs->len = p - start;
                rs->data = ngx_pnalloc(cf->pool, rs->len + 1);
                if (rs->data == NULL) {
                    return NGX_CONF_ERROR;
                }

                ngx_cpystrn(rs->data, start, rs->len + 1);
            }

            start = p + 1;
        }
    }

    if (rmcf->relay_servers->nelts == 0) {
        return "has no servers";
    }

    return NGX_CONF_OK;
}


/* rustdesk_local_ip address; a value with variables is evaluated */

static char *
ngx_stream_rustdesk_rendezvous_set_local_ip(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    ngx_str_t  *value;

    if (rmcf->local_ip.data || rmcf->local_ip_value) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_stream_script_variables_count(&value[1]) == 0) {
        /* NUL-terminated, as every argument */
        rmcf->local_ip = value[1];
        return NGX_CONF_OK;
    }

    rmcf->local_ip_value = ngx_stream_rustdesk_rendezvous_value(cf, &value[1]);
    if (rmcf->local_ip_value == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_stream_complex_value_t *
ngx_stream_rustdesk_rendezvous_value(ngx_conf_t *cf, ngx_str_t *value)
{
    ngx_stream_complex_value_t          *cv;
    ngx_stream_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_stream_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    ngx_memzero(&ccv, sizeof(ngx_stream_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (ngx_stream_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return cv;
}


static char *
ngx_stream_rustdesk_rendezvous_lan_mask(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_cidr_t   cidr;

    if (rmcf->lan_mask) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rc = ngx_ptocidr(&value[1], &cidr);

    if (rc == NGX_ERROR || cidr.family != AF_INET || cidr.u.in.mask == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid LAN mask \"%V\", expected an IPv4 "
                           "network such as 192.168.0.0/16", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rc == NGX_DONE) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "low address bits of %V are meaningless",
                           &value[1]);
    }

    rmcf->lan_addr = cidr.u.in.addr;
    rmcf->lan_mask = cidr.u.in.mask;

    return NGX_CONF_OK;
}


static char *
ngx_stream_rustdesk_rendezvous_role(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_rendezvous_srv_conf_t  *rscf = conf;

    ngx_str_t                                   *value;
    ngx_stream_core_srv_conf_t                  *cscf;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    if (rscf->role != NGX_RUSTDESK_ROLE_NONE) {
        return "is duplicate";
    }

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);

    if (cscf->handler) {
        return "conflicts with another content handler in this server";
    }

    if (cf->args->nelts > 1) {
        value = cf->args->elts;

        if (cmd->offset == NGX_RUSTDESK_ROLE_RENDEZVOUS) {
            if (ngx_strcmp(value[1].data, "websocket") != 0) {
                return "takes only \"websocket\"";
            }

            rscf->websocket = 1;

        } else if (ngx_strcmp(value[1].data, "console") != 0) {
            return "takes only \"console\"";

        } else {
            rscf->console = 1;
        }
    }

    rscf->role = cmd->offset;
    cscf->handler = ngx_stream_rustdesk_rendezvous_handler;

    rmcf = ngx_stream_conf_get_module_main_conf(cf,
                                        ngx_stream_rustdesk_rendezvous_module);
    rmcf->used = 1;

    return NGX_CONF_OK;
}


/* rustdesk_zone name:size, as limit_conn_zone */

static char *
ngx_stream_rustdesk_rendezvous_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    ssize_t     size;
    ngx_str_t  *value, name;

    if (rmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_rustdesk_conf_zone_size(cf, &value[1], &name, &size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    rmcf->shm_zone = ngx_stream_rustdesk_rendezvous_add_zone(cf, &name, size);
    if (rmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* rustdesk_rendezvous_servers a b ...; or "a,b" as hbbs -r takes it */

static char *
ngx_stream_rustdesk_rendezvous_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf = conf;

    u_char      *p;
    size_t       len;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (rmcf->rendezvous_servers.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    len = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0 || value[i].data[0] == ','
            || value[i].data[value[i].len - 1] == ','
            || ngx_strlchr(value[i].data, value[i].data + value[i].len, ' '))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid rendezvous server \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        len += value[i].len + 1;
    }

    if (len - 1 > NGX_RUSTDESK_SERVERS_MAX) {
        return "is too long";
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    rmcf->rendezvous_servers.data = p;

    for (i = 1; i < cf->args->nelts; i++) {
        if (i > 1) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, value[i].data, value[i].len);
    }

    rmcf->rendezvous_servers.len = p - rmcf->rendezvous_servers.data;

    return NGX_CONF_OK;
}


static ngx_shm_zone_t *
ngx_stream_rustdesk_rendezvous_add_zone(ngx_conf_t *cf, ngx_str_t *name,
    size_t size)
{
    return ngx_rustdesk_conf_add_zone(cf, name, size,
                                      &ngx_stream_rustdesk_rendezvous_module,
                                      ngx_rustdesk_peer_init_zone,
                                      sizeof(ngx_rustdesk_peer_zone_t));
}

