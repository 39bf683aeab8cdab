/*
 * The RustDesk relay server ("hbbr") as an nginx stream module.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_conf.h"


typedef struct {
    ngx_rustdesk_stream_conf_t  *shared;     /* must stay first */
    ngx_str_t                    licence;    /* key clients present */
} ngx_stream_rustdesk_relay_main_conf_t;


static void *ngx_stream_rustdesk_relay_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_stream_rustdesk_relay_postconfiguration(
    ngx_conf_t *cf);


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

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_rustdesk_relay_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_stream_rustdesk_relay_postconfiguration, /* postconfiguration */

    ngx_stream_rustdesk_relay_create_main_conf,  /* create main conf */
    NULL,                                  /* init main configuration */

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
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
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

    return lmcf;
}


static ngx_int_t
ngx_stream_rustdesk_relay_postconfiguration(ngx_conf_t *cf)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_stream_conf_get_module_main_conf(cf,
                                        ngx_stream_rustdesk_relay_module);

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
