/*
 * Cluster mode's directives that both modules take, in the stream conf
 * they share.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_conf.h"


#define ngx_rustdesk_cluster_conf(conf)                                      \
    (&((ngx_rustdesk_main_conf_head_t *) (conf))->shared->cluster)


void
ngx_rustdesk_cluster_create_conf(ngx_rustdesk_cluster_conf_t *cc)
{
    ngx_memzero(cc, sizeof(ngx_rustdesk_cluster_conf_t));

    cc->redis.timeout = NGX_CONF_UNSET_MSEC;
}


/* rustdesk_cluster redis://[[user]:password@]host[:port][/db] */

char *
ngx_rustdesk_cluster_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rustdesk_cluster_conf_t  *cc = ngx_rustdesk_cluster_conf(conf);

    char       *rv;
    ngx_str_t  *value, password;

    if (cc->redis.url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* rustdesk_cluster_password, if it came first, is not overwritten */
    password = cc->redis.password;
    ngx_str_null(&cc->redis.password);

    rv = ngx_rustdesk_redis_parse_url(cf, &value[1], &cc->redis);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (password.len) {
        if (cc->redis.password.len) {
            return "has a password, and so has rustdesk_cluster_password";
        }

        cc->redis.password = password;
    }

    return NGX_CONF_OK;
}


/* rustdesk_cluster_password password: rather than in the URL */

char *
ngx_rustdesk_cluster_set_password(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_rustdesk_cluster_conf_t  *cc = ngx_rustdesk_cluster_conf(conf);

    ngx_str_t  *value;

    value = cf->args->elts;

    if (cc->redis.password.len) {
        return "is duplicate, or the URL has a password";
    }

    if (value[1].len == 0) {
        return "is empty";
    }

    /* NUL-terminated, as every argument */
    cc->redis.password = value[1];

    return NGX_CONF_OK;
}


char *
ngx_rustdesk_cluster_set_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_rustdesk_cluster_conf_t  *cc = ngx_rustdesk_cluster_conf(conf);

    ngx_str_t  *value;

    if (cc->prefix.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len > NGX_RUSTDESK_CLUSTER_PREFIX_MAX) {
        return "is longer than 64 bytes";
    }

    cc->prefix = value[1];

    return NGX_CONF_OK;
}


char *
ngx_rustdesk_cluster_set_timeout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_rustdesk_cluster_conf_t  *cc = ngx_rustdesk_cluster_conf(conf);

    ngx_str_t  *value;

    if (cc->redis.timeout != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    cc->redis.timeout = ngx_parse_time(&value[1], 0);

    if (cc->redis.timeout == (ngx_msec_t) NGX_ERROR
        || cc->redis.timeout < 10 || cc->redis.timeout > 60000)
    {
        return "must be between 10ms and 60s";
    }

    return NGX_CONF_OK;
}


char *
ngx_rustdesk_cluster_init_conf(ngx_conf_t *cf, ngx_rustdesk_cluster_conf_t *cc)
{
    if (cc->done) {
        return NGX_CONF_OK;
    }

    cc->done = 1;

    if (!ngx_rustdesk_cluster_on(cc)) {
        if (cc->prefix.data || cc->redis.password.len
            || cc->redis.timeout != NGX_CONF_UNSET_MSEC)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"rustdesk_cluster_*\" directives need "
                               "\"rustdesk_cluster\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (cc->prefix.data == NULL) {
        ngx_str_set(&cc->prefix, NGX_RUSTDESK_CLUSTER_PREFIX);
    }

    ngx_conf_init_msec_value(cc->redis.timeout, NGX_RUSTDESK_REDIS_TIMEOUT);

    cc->redis.connect_timeout = ngx_max(5 * cc->redis.timeout, 5000);
    cc->redis.max_pending = NGX_RUSTDESK_REDIS_MAX_PENDING;

    return NGX_CONF_OK;
}
