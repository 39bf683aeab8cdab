/*
 * Cluster mode's configuration that both modules take (README "Cluster
 * mode"): where Redis is (rustdesk_cluster, rustdesk_cluster_password),
 * how long its answers may take (rustdesk_cluster_timeout) and the start
 * of every key (rustdesk_cluster_prefix).  It lives in the stream conf
 * the two modules share (ngx_rustdesk_conf.h), so that a relay of its own
 * and a rendezvous read the same directives; what only the rendezvous
 * needs (rustdesk_cluster_host, rustdesk_cluster_ttl) is the rendezvous
 * module's.
 */

#ifndef _NGX_RUSTDESK_CLUSTER_H_INCLUDED_
#define _NGX_RUSTDESK_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_rustdesk_redis.h"


#define NGX_RUSTDESK_CLUSTER_PREFIX      "rustdesk:"
#define NGX_RUSTDESK_CLUSTER_PREFIX_MAX  64


typedef struct {
    ngx_rustdesk_redis_conf_t    redis;     /* url.len 0: cluster mode off */
    ngx_str_t                    prefix;    /* of every key */
    ngx_uint_t                   done;      /* init_conf() ran */
} ngx_rustdesk_cluster_conf_t;


#define ngx_rustdesk_cluster_on(cc)  ((cc)->redis.url.len != 0)


/* The directives, declared by both modules (conf: a module's main conf). */
char *ngx_rustdesk_cluster_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rustdesk_cluster_set_password(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rustdesk_cluster_set_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_rustdesk_cluster_set_timeout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* For the shared conf's creation: nothing set. */
void ngx_rustdesk_cluster_create_conf(ngx_rustdesk_cluster_conf_t *cc);

/*
 * From either module's init_main_conf (the first call does the work): the
 * defaults, and the directives' agreement.
 */
char *ngx_rustdesk_cluster_init_conf(ngx_conf_t *cf,
    ngx_rustdesk_cluster_conf_t *cc);


#endif /* _NGX_RUSTDESK_CLUSTER_H_INCLUDED_ */
