/*
 * The RustDesk relay server ("hbbr") as an nginx stream module: its
 * directives, the shared zone, and each connection up to its first
 * message (PROTOCOL.md section 7).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include <math.h>

#include "ngx_rustdesk_console.h"
#include "ngx_stream_rustdesk_relay_module.h"


#define NGX_RUSTDESK_RELAY_REQUEST_MAX  (64 * 1024)
#define NGX_RUSTDESK_RELAY_ZONE_NAME    "rustdesk_relay"
#define NGX_RUSTDESK_RELAY_ZONE_SIZE    (8 * 1024 * 1024)


static void *ngx_stream_rustdesk_relay_create_main_conf(ngx_conf_t *cf);
static char *ngx_stream_rustdesk_relay_init_main_conf(ngx_conf_t *cf,
    void *conf);
static ngx_int_t ngx_stream_rustdesk_relay_postconfiguration(
    ngx_conf_t *cf);
static char *ngx_stream_rustdesk_relay(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_rustdesk_relay_console_role(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_relay_zone(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_stream_rustdesk_relay_add_zone(ngx_conf_t *cf,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf, ngx_str_t *name,
    size_t size);
static char *ngx_stream_rustdesk_relay_list_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_relay_mbps(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_stream_rustdesk_relay_threshold(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_stream_rustdesk_relay_tickets_zone(ngx_conf_t *cf,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf);
static ngx_int_t ngx_stream_rustdesk_relay_init_process(ngx_cycle_t *cycle);
static void ngx_stream_rustdesk_relay_exit_process(ngx_cycle_t *cycle);

static void ngx_stream_rustdesk_relay_handler(ngx_stream_session_t *s);
static void ngx_stream_rustdesk_relay_ws_handler(ngx_stream_session_t *s);
static void ngx_stream_rustdesk_relay_accept(ngx_stream_session_t *s,
    ngx_uint_t ws);
static void ngx_stream_rustdesk_relay_loopback_handler(
    ngx_stream_session_t *s);
static ngx_int_t ngx_stream_rustdesk_relay_first_message(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);


/* "rustdesk_metrics", when this module is the first loaded to declare it */
static ngx_rustdesk_metrics_role_t  ngx_stream_rustdesk_relay_metrics_role = {
    ngx_stream_rustdesk_relay_metrics_handler
};


static ngx_command_t  ngx_stream_rustdesk_relay_commands[] = {

    { ngx_string("rustdesk_key_dir"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_conf_set_key_dir,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_key"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_conf_set_key,
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

    { ngx_string("rustdesk_relay"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_relay_console"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS,
      ngx_stream_rustdesk_relay_console_role,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_metrics"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_rustdesk_metrics_directive,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      &ngx_stream_rustdesk_relay_metrics_role },

    { ngx_string("rustdesk_relay_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay_zone,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_relay_blacklist"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay_list_file,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t,
               files[NGX_RUSTDESK_BLACKLIST]),
      NULL },

    { ngx_string("rustdesk_relay_blocklist"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay_list_file,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t,
               files[NGX_RUSTDESK_BLOCKLIST]),
      NULL },

    { ngx_string("rustdesk_relay_single_bandwidth"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay_mbps,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, limits.single),
      NULL },

    { ngx_string("rustdesk_relay_total_bandwidth"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay_mbps,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, limits.total),
      NULL },

    { ngx_string("rustdesk_relay_limit_speed"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay_mbps,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, limits.limit),
      NULL },

    { ngx_string("rustdesk_relay_downgrade_threshold"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_rustdesk_relay_threshold,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_relay_downgrade_start_check"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, limits.start_check),
      NULL },

    { ngx_string("rustdesk_relay_request_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, request_timeout),
      NULL },

    { ngx_string("rustdesk_relay_pair_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, pair_timeout),
      NULL },

    { ngx_string("rustdesk_relay_tickets"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, tickets),
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

    { ngx_string("rustdesk_cluster_prefix"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_cluster_set_prefix,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_cluster_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_rustdesk_cluster_set_timeout,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("rustdesk_relay_idle_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, idle_timeout),
      NULL },

    { ngx_string("rustdesk_relay_buffer_size"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_rustdesk_relay_main_conf_t, buffer_size),
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_rustdesk_relay_module_ctx = {
    ngx_stream_rustdesk_relay_add_variables, /* preconfiguration */
    ngx_stream_rustdesk_relay_postconfiguration, /* postconfiguration */

    ngx_stream_rustdesk_relay_create_main_conf,  /* create main conf */
    ngx_stream_rustdesk_relay_init_main_conf,    /* init main conf */

    NULL,                                  /* create server configuration */
    NULL                                   /* merge server configuration */
};


ngx_module_t  ngx_stream_rustdesk_relay_module = {
    NGX_MODULE_V1,
    &ngx_stream_rustdesk_relay_module_ctx, /* module context */
    ngx_stream_rustdesk_relay_commands,    /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_stream_rustdesk_relay_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_stream_rustdesk_relay_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_stream_rustdesk_relay_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_stream_rustdesk_relay_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    lmcf->shared = ngx_rustdesk_stream_conf(cf);
    if (lmcf->shared == NULL) {
        return NULL;
    }

    lmcf->request_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->pair_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->idle_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->tickets = NGX_CONF_UNSET;
    lmcf->buffer_size = NGX_CONF_UNSET_SIZE;

    lmcf->limits.single = (uint64_t) -1;
    lmcf->limits.total = (uint64_t) -1;
    lmcf->limits.limit = (uint64_t) -1;
    lmcf->limits.threshold = NGX_CONF_UNSET_UINT;
    lmcf->limits.start_check = NGX_CONF_UNSET_MSEC;

    return lmcf;
}


/* hbbr's defaults (PROTOCOL.md section 7) */

static char *
ngx_stream_rustdesk_relay_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = conf;

    ngx_conf_init_msec_value(lmcf->request_timeout, 30000);
    ngx_conf_init_msec_value(lmcf->pair_timeout, 30000);
    ngx_conf_init_msec_value(lmcf->idle_timeout, 30000);
    ngx_conf_init_value(lmcf->tickets, 0);
    ngx_conf_init_size_value(lmcf->buffer_size, 64 * 1024);

    if (lmcf->limits.single == (uint64_t) -1) {
        lmcf->limits.single = 128 * NGX_RUSTDESK_MBPS;
    }

    if (lmcf->limits.total == (uint64_t) -1) {
        lmcf->limits.total = 1024 * NGX_RUSTDESK_MBPS;
    }

    if (lmcf->limits.limit == (uint64_t) -1) {
        lmcf->limits.limit = 32 * NGX_RUSTDESK_MBPS;
    }

    ngx_conf_init_uint_value(lmcf->limits.threshold, 66);
    ngx_conf_init_msec_value(lmcf->limits.start_check, 1800 * 1000);

    if (lmcf->buffer_size < 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rustdesk_relay_buffer_size must be at least 1k");
        return NGX_CONF_ERROR;
    }

    return ngx_rustdesk_cluster_init_conf(cf, &lmcf->shared->cluster);
}


static ngx_int_t
ngx_stream_rustdesk_relay_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                               name;
    ngx_stream_module_t                    *log_ctx;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_stream_conf_get_module_main_conf(cf,
                                        ngx_stream_rustdesk_relay_module);

    if (lmcf->used) {
        if (lmcf->zone == NULL) {
            ngx_str_set(&name, NGX_RUSTDESK_RELAY_ZONE_NAME);

            if (ngx_stream_rustdesk_relay_add_zone(cf, lmcf, &name,
                                                NGX_RUSTDESK_RELAY_ZONE_SIZE)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        lmcf->zone->conf = lmcf->limits;
        lmcf->zone->channel = &lmcf->shared->channel;
        lmcf->zone->files[NGX_RUSTDESK_BLACKLIST] =
                                          lmcf->files[NGX_RUSTDESK_BLACKLIST];
        lmcf->zone->files[NGX_RUSTDESK_BLOCKLIST] =
                                          lmcf->files[NGX_RUSTDESK_BLOCKLIST];

        if (lmcf->tickets
            && ngx_stream_rustdesk_relay_tickets_zone(cf, lmcf) != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* for sessions whose partner's access log line tells of them */

        log_ctx = ngx_stream_log_module.ctx;

        lmcf->unlogged = log_ctx->create_srv_conf(cf);
        if (lmcf->unlogged == NULL) {
            return NGX_ERROR;
        }

        if (ngx_stream_rustdesk_relay_metrics_conf(cf, lmcf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /*
     * hbbr accepts any key unless one is configured; "-" or "_" reads the
     * pair that the rendezvous module (or hbbs) keeps in the key directory
     */

    if (lmcf->shared->key.data == NULL) {
        return NGX_OK;
    }

    return ngx_rustdesk_conf_resolve_key(cf, lmcf->shared,
                                         NGX_RUSTDESK_KEY_HBBR,
                                         &lmcf->licence);
}


/*
 * rustdesk_relay_tickets on: only sessions a rendezvous brokered may pair.
 * In cluster mode the cluster's Redis has them all, and this nginx's
 * rendezvous, if it serves here, is asked first (its zone is found in
 * init_process).  Otherwise only this nginx's rendezvous knows them, so
 * its module must be here, and its zone of brokered sessions is
 * referenced now (a rendezvous module loaded but serving nothing leaves
 * it without a size: nginx says so).
 */

static ngx_int_t
ngx_stream_rustdesk_relay_tickets_zone(ngx_conf_t *cf,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf)
{
    ngx_str_t    name;
    ngx_uint_t   i;

    if (ngx_rustdesk_cluster_on(&lmcf->shared->cluster)) {
        return NGX_OK;
    }

    for (i = 0; cf->cycle->modules[i]; i++) {
        if (ngx_strcmp(cf->cycle->modules[i]->name,
                       "ngx_stream_rustdesk_rendezvous_module")
            == 0)
        {
            break;
        }
    }

    if (cf->cycle->modules[i] == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"rustdesk_relay_tickets\" needs the rendezvous "
                           "module in this nginx, or \"rustdesk_cluster\": "
                           "a relay alone can only check the sessions its "
                           "own rendezvous brokered");
        return NGX_ERROR;
    }

    ngx_str_set(&name, NGX_RUSTDESK_BROKERED_ZONE);

    lmcf->brokered_zone = ngx_shared_memory_add(cf, &name, 0,
                                                cf->cycle->modules[i]);
    if (lmcf->brokered_zone == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* rustdesk_relay [websocket | loopback_console]; */

static char *
ngx_stream_rustdesk_relay(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = conf;

    ngx_str_t                   *value;
    ngx_stream_core_srv_conf_t  *cscf;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);

    if (cscf->handler) {
        return "is duplicate: this server already has a role";
    }

    value = cf->args->elts;
    cscf->handler = ngx_stream_rustdesk_relay_handler;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "websocket") == 0) {
            cscf->handler = ngx_stream_rustdesk_relay_ws_handler;

        } else if (ngx_strcmp(value[1].data, "loopback_console") == 0) {
            /* hbbr's way: every loopback client of the port gets the
             * console */
            cscf->handler = ngx_stream_rustdesk_relay_loopback_handler;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    lmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_stream_rustdesk_relay_console_role(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = conf;

    ngx_stream_core_srv_conf_t  *cscf;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);

    if (cscf->handler) {
        return "is duplicate: this server already has a role";
    }

    cscf->handler = ngx_stream_rustdesk_relay_console;
    lmcf->used = 1;

    return NGX_CONF_OK;
}


/* rustdesk_relay_zone name:size */

static char *
ngx_stream_rustdesk_relay_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = conf;

    ssize_t     size;
    ngx_str_t  *value, name;

    if (lmcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_rustdesk_conf_zone_size(cf, &value[1], &name, &size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_stream_rustdesk_relay_add_zone(cf, lmcf, &name, size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_rustdesk_relay_add_zone(ngx_conf_t *cf,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf, ngx_str_t *name, size_t size)
{
    lmcf->shm_zone = ngx_rustdesk_conf_add_zone(cf, name, size,
                                         &ngx_stream_rustdesk_relay_module,
                                         ngx_rustdesk_relay_zone_init,
                                         sizeof(ngx_rustdesk_relay_zone_t));
    if (lmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    lmcf->zone = lmcf->shm_zone->data;

    return NGX_OK;
}


static char *
ngx_stream_rustdesk_relay_list_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t  *field, *value;

    field = (ngx_str_t *) ((u_char *) conf + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    *field = value[1];

    if (ngx_conf_full_name(cf->cycle, field, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* Mb/s as hbbr's environment takes them (1024 x 1024 bit/s); 0: no limit */

static char *
ngx_stream_rustdesk_relay_mbps(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *end;
    double      v;
    uint64_t   *field;
    ngx_str_t  *value;

    field = (uint64_t *) ((u_char *) conf + cmd->offset);

    if (*field != (uint64_t) -1) {
        return "is duplicate";
    }

    value = cf->args->elts;

    v = strtod((char *) value[1].data, &end);

    if (end == (char *) value[1].data || *end != '\0' || !isfinite(v)
        || v < 0 || v > 1e9)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid bandwidth \"%V\", expected Mb/s",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    *field = (uint64_t) (v * NGX_RUSTDESK_MBPS);

    return NGX_CONF_OK;
}


static char *
ngx_stream_rustdesk_relay_threshold(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf = conf;

    char       *end;
    double      v;
    ngx_str_t  *value;

    if (lmcf->limits.threshold != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    v = strtod((char *) value[1].data, &end);

    if (end == (char *) value[1].data || *end != '\0' || !isfinite(v)
        || v <= 0 || v > 1e6)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid threshold \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lmcf->limits.threshold = (ngx_uint_t) (v * 100);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_rustdesk_relay_init_process(ngx_cycle_t *cycle)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    lmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                        ngx_stream_rustdesk_relay_module);

    if (lmcf == NULL || !lmcf->used) {
        return NGX_OK;
    }

    ngx_stream_rustdesk_relay_buf_init(lmcf->buffer_size);

    /* first: the worker channel counts in its slot */
    ngx_stream_rustdesk_relay_metrics_init(cycle, lmcf);

    /* relay sessions brokered by this nginx's rendezvous, if it runs */
    lmcf->brokered = lmcf->brokered_zone ? lmcf->brokered_zone->data
                                         : ngx_rustdesk_brokered_lookup(cycle);

    if (ngx_stream_rustdesk_relay_cluster_init(cycle, lmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_stream_rustdesk_relay_pair_init(cycle, &lmcf->shared->channel);
}


static void
ngx_stream_rustdesk_relay_exit_process(ngx_cycle_t *cycle)
{
    ngx_stream_rustdesk_relay_cluster_exit(cycle);
    ngx_stream_rustdesk_relay_pair_exit(cycle);
    ngx_stream_rustdesk_relay_metrics_exit(cycle);
}


static void
ngx_stream_rustdesk_relay_loopback_handler(ngx_stream_session_t *s)
{
    if (ngx_rustdesk_sockaddr_is_loopback(s->connection->sockaddr)) {
        ngx_stream_rustdesk_relay_console(s);
        return;
    }

    ngx_stream_rustdesk_relay_handler(s);
}


static void
ngx_stream_rustdesk_relay_handler(ngx_stream_session_t *s)
{
    ngx_stream_rustdesk_relay_accept(s, 0);
}


static void
ngx_stream_rustdesk_relay_ws_handler(ngx_stream_session_t *s)
{
    ngx_stream_rustdesk_relay_accept(s, 1);
}


static void
ngx_stream_rustdesk_relay_accept(ngx_stream_session_t *s, ngx_uint_t ws)
{
    ngx_connection_t                       *c;
    ngx_stream_rustdesk_relay_side_t       *side;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    c = s->connection;
    lmcf = ngx_stream_get_module_main_conf(s, ngx_stream_rustdesk_relay_module);

    side = ngx_pcalloc(c->pool, sizeof(ngx_stream_rustdesk_relay_side_t));
    if (side == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    side->connection = c;
    side->session = s;
    side->ws = ws;
    side->result = "no_request";     /* until a RequestRelay comes */
    side->ip.data = side->ip_text;
    side->ip.len = ngx_rustdesk_relay_sockaddr_ip(c->sockaddr, side->ip_text);

    if (ngx_rustdesk_relay_list_has(lmcf->zone, NGX_RUSTDESK_BLOCKLIST,
                                    &side->ip))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0, "rustdesk: %V blocked",
                      &side->ip);
        side->result = "blocked";
        ngx_stream_set_ctx(s, side, ngx_stream_rustdesk_relay_module);
        ngx_stream_finalize_session(s, NGX_STREAM_FORBIDDEN);
        return;
    }

    c->log->action = "reading the relay request";

    side->tcp = ngx_rustdesk_tcp_create(s, NGX_RUSTDESK_RELAY_REQUEST_MAX,
                                        lmcf->request_timeout,
                                        ngx_stream_rustdesk_relay_first_message,
                                        side);
    if (side->tcp == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ws && ngx_rustdesk_tcp_websocket(side->tcp,
                                         lmcf->shared->real_ip_from,
                                         lmcf->shared->real_ip_header)
              != NGX_OK)
    {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_stream_set_ctx(s, side, ngx_stream_rustdesk_relay_module);

    ngx_rustdesk_tcp_start(side->tcp);
}


/*
 * The first message must be RequestRelay with a uuid, and the right key
 * when one is configured (PROTOCOL.md section 7); anything else closes.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_first_message(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m)
{
    size_t                                  len;
    ngx_connection_t                       *c;
    Hbb__RequestRelay                      *rr;
    ngx_stream_rustdesk_relay_side_t       *side;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    side = t->data;
    c = side->connection;
    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

    if (m->union_case != HBB__RENDEZVOUS_MESSAGE__UNION_REQUEST_RELAY) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: relay client sent %s instead of RequestRelay",
                      ngx_rustdesk_msg_name(m));
        side->result = "bad_request";
        return NGX_ERROR;
    }

    rr = m->request_relay;

    if (side->ws) {
        /* the upgrade may have named the client (a trusted proxy) */

        side->ip.len = ngx_rustdesk_relay_sockaddr_ip(c->sockaddr,
                                                      side->ip_text);

        if (ngx_rustdesk_relay_list_has(lmcf->zone, NGX_RUSTDESK_BLOCKLIST,
                                        &side->ip))
        {
            ngx_log_error(NGX_LOG_INFO, c->log, 0, "rustdesk: %V blocked",
                          &side->ip);
            side->result = "blocked";
            return NGX_ERROR;
        }
    }

    if (lmcf->licence.len) {
        len = rr->licence_key ? ngx_strlen(rr->licence_key) : 0;

        if (len != lmcf->licence.len
            || ngx_strncmp(rr->licence_key, lmcf->licence.data, len) != 0)
        {
            ngx_log_error(NGX_LOG_WARN, c->log, 0,
                          "rustdesk: relay refused to %V: wrong key",
                          &side->ip);
            side->result = "key_mismatch";
            return NGX_ERROR;
        }
    }

    len = rr->uuid ? ngx_strlen(rr->uuid) : 0;

    if (len == 0 || len > NGX_RUSTDESK_RELAY_UUID_MAX) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: relay request with %s uuid",
                      len ? "too long a" : "no");
        side->result = "bad_request";
        return NGX_ERROR;
    }

    side->uuid.data = ngx_pnalloc(c->pool, len);
    if (side->uuid.data == NULL) {
        return NGX_ERROR;
    }

    side->uuid.len = len;
    ngx_memcpy(side->uuid.data, rr->uuid, len);
    side->result = "no_partner";

    /* from here the relay has the connection; the framed session is done */

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_stream_rustdesk_relay_request(side, t->rest, t->rest_last - t->rest);

    return NGX_DECLINED;
}
