/*
 * Cluster mode (rustdesk_cluster): several rendezvous hosts as one
 * service, sharing state through Redis (DESIGN.md "Growing past wave 1").
 * Each host stays authoritative for the peers registered with it; Redis
 * holds where each online peer is (the directory).
 *
 *   ..._cluster.c            directives, this worker's Redis connection
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_CLUSTER_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_redis.h"


#define NGX_RUSTDESK_CLUSTER_TTL      900000   /* a directory entry */
#define NGX_RUSTDESK_CLUSTER_HOST_MAX 64


typedef struct {
    ngx_rustdesk_redis_conf_t    redis;     /* url.len 0: cluster mode off */
    ngx_str_t                    host;      /* this host's name */
    ngx_str_t                    prefix;    /* of every key */
    ngx_msec_t                   ttl;       /* of a directory entry */
    ngx_msec_t                   refresh;   /* ttl / 3: republished after */
} ngx_stream_rustdesk_rendezvous_cluster_conf_t;


#define ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)                       \
    ((rmcf)->cluster.redis.url.len != 0)


/* The directives (..._cluster.c), their defaults and checks. */
char *ngx_stream_rustdesk_rendezvous_cluster(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_stream_rustdesk_rendezvous_cluster_password(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_stream_rustdesk_rendezvous_cluster_host(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_stream_rustdesk_rendezvous_cluster_init_conf(ngx_conf_t *cf,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc);

/* This worker's connection: opened in init_process, closed at exit. */
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc);
void ngx_stream_rustdesk_rendezvous_cluster_exit(ngx_cycle_t *cycle);
ngx_rustdesk_redis_t *ngx_stream_rustdesk_rendezvous_cluster_redis(void);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_CLUSTER_H_INCLUDED_ */
