/*
 * Cluster mode (rustdesk_cluster): several rendezvous hosts as one
 * service, sharing state through Redis (DESIGN.md "Growing past wave 1").
 * Each host stays authoritative for the peers registered with it; Redis
 * holds where each online peer is (the directory).
 *
 *   ..._cluster.c            directives, this worker's Redis connection
 *   ..._cluster_directory.c  the online peer directory: publishing a
 *                            peer's host, finding peers of other hosts
 *   ..._cluster_requests.c   the requests this host cannot answer alone:
 *                            online query, punch hole for a peer not here
 *   ..._cluster_channel.c    messages between hosts (pub/sub)
 *   ..._cluster_binding.c    the peer records: each id bound to its first
 *                            uuid, and its key, everywhere
 *   ..._cluster_offline.c    the entries of peers gone offline here
 *                            removed
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_CLUSTER_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_redis.h"
#include "ngx_rustdesk_cluster.h"
#include "rendezvous.pb-c.h"
#include "ngx_stream_rustdesk_rendezvous_ip.h"


#define NGX_RUSTDESK_CLUSTER_TTL      900000   /* a directory entry */
#define NGX_RUSTDESK_CLUSTER_HOST_MAX 64


typedef struct {
    ngx_rustdesk_redis_conf_t    redis;     /* url.len 0: cluster mode off;
                                               with prefix: copied from
                                               ngx_rustdesk_cluster_conf_t */
    ngx_str_t                    host;      /* this host's name */
    ngx_str_t                    prefix;    /* of every key */
    ngx_msec_t                   ttl;       /* of a directory entry */
    ngx_msec_t                   refresh;   /* ttl / 3: republished after */
} ngx_stream_rustdesk_rendezvous_cluster_conf_t;


#define ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)                       \
    ((rmcf)->cluster.redis.url.len != 0)


typedef struct ngx_stream_rustdesk_rendezvous_find_s
    ngx_stream_rustdesk_rendezvous_find_t;

/* The answer to a find: f->hosts and f->failed are set. */
typedef void (*ngx_stream_rustdesk_rendezvous_found_pt)(
    ngx_stream_rustdesk_rendezvous_find_t *f);

/*
 * Which of some ids are online on another host, asked of Redis for a
 * requester on a stream (TCP or WebSocket), from the session's pool.
 */
struct ngx_stream_rustdesk_rendezvous_find_s {
    struct ngx_stream_rustdesk_rendezvous_req_s   *req;
    ngx_uint_t                                     n;
    ngx_str_t                                     *ids;
    ngx_str_t                                     *hosts;  /* len 0: not
                                                              elsewhere */
    ngx_rustdesk_ip_t                             *addrs;  /* its address
                                                              there */
    ngx_stream_rustdesk_rendezvous_found_pt        found;
    void                                          *data;   /* the caller's */
    ngx_uint_t                                     value;  /* the caller's */
    ngx_uint_t                                     failed; /* no answer */
    ngx_uint_t                                     binding; /* the caller's:
                                                              ask too if
                                                              ids[0] (n 1)
                                                              is bound */
    ngx_uint_t                                     bound;  /* it is */
    ngx_int_t                                      count;  /* an integer
                                                              answer */

    ngx_rustdesk_redis_cmd_t                      *cmd;
    ngx_pool_cleanup_t                            *cln;
};


/*
 * The rendezvous's own directives (..._cluster.c), their defaults and
 * checks; the rest (sc) are both modules' (common/ngx_rustdesk_cluster.c).
 */
char *ngx_stream_rustdesk_rendezvous_cluster_host(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_stream_rustdesk_rendezvous_cluster_init_conf(ngx_conf_t *cf,
    ngx_rustdesk_cluster_conf_t *sc,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc);

/* This worker's connection: opened in init_process, closed at exit. */
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc);
void ngx_stream_rustdesk_rendezvous_cluster_exit(ngx_cycle_t *cycle);
ngx_rustdesk_redis_t *ngx_stream_rustdesk_rendezvous_cluster_redis(void);

/*
 * The directory (..._cluster_directory.c).  publish(): peer id registered
 * here just now (r's address and transport); prev is its registration
 * before this one (0: none, or publish now): the entry is written when
 * the peer was offline, or when a refresh period began since prev (at a
 * phase of the period that depends on the id, so that a host's peers do
 * not all write at once).  Returns 1 when it was written.
 */
ngx_uint_t ngx_stream_rustdesk_rendezvous_cluster_publish(
    struct ngx_stream_rustdesk_rendezvous_req_s *r, ngx_str_t *id,
    ngx_msec_t prev);

/*
 * A find for n ids (to be filled in by the caller), and its start:
 * NGX_AGAIN, and found() is called later (never from inside); NGX_DECLINED
 * when Redis cannot be asked now (not connected, too busy): the caller
 * answers from this host alone, at once.
 */
ngx_stream_rustdesk_rendezvous_find_t *
    ngx_stream_rustdesk_rendezvous_cluster_find_create(
    struct ngx_stream_rustdesk_rendezvous_req_s *r, ngx_uint_t n);
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_find(
    ngx_stream_rustdesk_rendezvous_find_t *f);

/*
 * Another command for the same requester (as find() sends its GET): its
 * answer to handler, which first calls answered().
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_ask(
    ngx_stream_rustdesk_rendezvous_find_t *f, int argc, const char **argv,
    const size_t *len, ngx_rustdesk_redis_handler_pt handler);
void ngx_stream_rustdesk_rendezvous_cluster_answered(
    ngx_stream_rustdesk_rendezvous_find_t *f);

/*
 * The key of a peer record (..._cluster_binding.c), from pool: kind is
 * "uuid:" or "pk:"; NULL without memory.
 */
u_char *ngx_stream_rustdesk_rendezvous_cluster_record_key(ngx_pool_t *pool,
    ngx_stream_rustdesk_rendezvous_cluster_conf_t *cc, const char *kind,
    ngx_str_t *id, size_t *len);

/*
 * The requests (..._cluster_requests.c).  punch(): a PunchHoleRequest for
 * a peer not online here, whose answer from this host alone would be
 * failure; relay(): a RequestRelay for a peer not here (msg: encoded for
 * the peer); online(): an OnlineRequest whose states this host has set.
 * Each returns NGX_AGAIN when the answer waits for Redis (it is sent,
 * and counted, when Redis answers or fails to in time); online() returns
 * NGX_DECLINED when the caller answers at once.
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_punch(
    struct ngx_stream_rustdesk_rendezvous_req_s *r,
    Hbb__PunchHoleRequest *ph, ngx_str_t *id, ngx_uint_t failure);
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_relay(
    struct ngx_stream_rustdesk_rendezvous_req_s *r, ngx_str_t *id,
    u_char *msg, size_t len);
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_online(
    struct ngx_stream_rustdesk_rendezvous_req_s *r, char **peers,
    size_t n, u_char *states);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_CLUSTER_H_INCLUDED_ */
