/*
 * The relay's shared zone (DESIGN.md "Processes and state"): the pairing
 * table (uuid -> the worker and connection waiting for its partner), the
 * blacklist and blocklist, the bandwidth settings and the total bandwidth
 * bucket that every worker draws from, and per-pair usage for the console.
 * Everything here is under the slab pool's mutex, which nginx's master
 * releases if a worker dies holding it.
 */

#ifndef _NGX_STREAM_RUSTDESK_RELAY_ZONE_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RELAY_ZONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_ipc.h"
#include "ngx_rustdesk_stats.h"


#define NGX_RUSTDESK_RELAY_UUID_MAX  128
#define NGX_RUSTDESK_RELAY_IP_LEN    NGX_INET6_ADDRSTRLEN
#define NGX_RUSTDESK_RELAY_ADDR_LEN  (NGX_INET6_ADDRSTRLEN + sizeof(":65535"))

#define NGX_RUSTDESK_MBPS            (1024 * 1024)   /* bit/s in a Mb/s */


typedef enum {
    NGX_RUSTDESK_BLACKLIST = 0,      /* speed-limited IPs */
    NGX_RUSTDESK_BLOCKLIST           /* refused IPs */
} ngx_rustdesk_relay_list_e;


/* PROTOCOL.md section 7; rates in bit/s, 0: unlimited */
typedef struct {
    uint64_t                   single;
    uint64_t                   total;
    uint64_t                   limit;
    ngx_uint_t                 threshold;     /* percent of single */
    ngx_msec_t                 start_check;
} ngx_rustdesk_relay_limits_t;


typedef struct {
    ngx_rbtree_t               tree;
    ngx_rbtree_node_t          sentinel;
    ngx_queue_t                queue;         /* in order of addition */
    ngx_uint_t                 n;
} ngx_rustdesk_relay_list_t;


/* A pair's figures for the console's "usage", kept by its worker. */
typedef struct {
    ngx_queue_t                queue;
    ngx_pid_t                  pid;
    ngx_msec_t                 updated;
    uint64_t                   elapsed;       /* ms */
    uint64_t                   total;         /* bits */
    uint64_t                   highest;       /* kb/s (bit/ms) */
    uint64_t                   speed;         /* kb/s over the last second */
    u_short                    len;
    u_char                     addr[NGX_RUSTDESK_RELAY_ADDR_LEN];
} ngx_rustdesk_relay_usage_t;


typedef struct {
    ngx_rbtree_t               waiters;
    ngx_rbtree_node_t          waiters_sentinel;
    ngx_queue_t                waiters_queue; /* oldest first */

    ngx_rustdesk_relay_list_t  lists[2];
    ngx_atomic_uint_t          lists_version; /* bumped on every change */

    ngx_rustdesk_relay_limits_t  limits;      /* under the mutex */
    ngx_atomic_uint_t          limits_version; /* bumped on every change */

    int64_t                    total_tokens;  /* 1/1000 byte; negative:
                                                 owed */
    ngx_msec_t                 total_last;

    ngx_queue_t                usage;
    ngx_uint_t                 full_logged;
    ngx_uint_t                 full;          /* the last pairing found
                                                 no room */
    ngx_rustdesk_stats_t      *stats;         /* NULL: no metrics yet */
    ngx_atomic_t               tickets_unchecked; /* Redis could not be
                                                 asked for tickets: said
                                                 once, until it answers */
} ngx_rustdesk_relay_sh_t;


typedef struct {
    ngx_rustdesk_relay_sh_t   *sh;
    ngx_slab_pool_t           *shpool;

    /* from the configuration, applied when the zone is (re)initialized */
    ngx_rustdesk_relay_limits_t  conf;
    ngx_str_t                  files[2];      /* blacklist, blocklist */
    ngx_uint_t                 stats_values;  /* 0: no metrics */
    ngx_cycle_t               *cycle;         /* the configuration's */
    ngx_rustdesk_ipc_dir_t    *channel;       /* set up with the zone */
} ngx_rustdesk_relay_zone_t;


ngx_int_t ngx_rustdesk_relay_zone_init(ngx_shm_zone_t *shm_zone, void *data);


/*
 * Pairing (PROTOCOL.md section 7): the partner waiting with this uuid is
 * taken out of the table (NGX_OK, its worker and serial returned), or we
 * become the one waiting (NGX_DECLINED).  NGX_ERROR: the zone is full.
 * Entries older than "expire" (left by a worker that died) are dropped.
 */
ngx_int_t ngx_rustdesk_relay_waiter_pair(ngx_rustdesk_relay_zone_t *z,
    ngx_str_t *uuid, ngx_uint_t serial, ngx_msec_t expire, ngx_pid_t *pid,
    ngx_uint_t *partner);

/* The log level for "the zone is full": warn once, then info. */
ngx_uint_t ngx_rustdesk_relay_zone_full(ngx_rustdesk_relay_zone_t *z);

/* Our waiter gives up: removed if it is still there. */
void ngx_rustdesk_relay_waiter_remove(ngx_rustdesk_relay_zone_t *z,
    ngx_str_t *uuid, ngx_uint_t serial);


/* ip: as ngx_rustdesk_relay_ip_text() writes it. */
ngx_uint_t ngx_rustdesk_relay_list_has(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_str_t *ip);
ngx_int_t ngx_rustdesk_relay_list_add(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_str_t *ip);
void ngx_rustdesk_relay_list_remove(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_str_t *ip);
void ngx_rustdesk_relay_list_clear(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list);
u_char *ngx_rustdesk_relay_list_text(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, u_char *p, u_char *last);

/*
 * An IP as the lists hold it: IPv4-mapped IPv6 as IPv4, anything else
 * that parses in its canonical form, anything that does not as given.
 */
size_t ngx_rustdesk_relay_ip_text(u_char *in, size_t len, u_char *out);
size_t ngx_rustdesk_relay_sockaddr_ip(struct sockaddr *sa, u_char *out);


/*
 * The bandwidth settings: this worker's copy, read again under the mutex
 * only when they changed (one atomic read otherwise); update() stores a
 * changed copy for all workers.
 */
ngx_rustdesk_relay_limits_t *ngx_rustdesk_relay_limits(
    ngx_rustdesk_relay_zone_t *z);
void ngx_rustdesk_relay_limits_update(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_limits_t *limits);

/*
 * The total bandwidth bucket: how many bytes may be read now (SIZE_MAX:
 * unlimited), or 0 and in *delay when to try again.  Each worker takes a
 * share of the shared bucket under the mutex and spends it alone.
 */
size_t ngx_rustdesk_relay_total_allow(ngx_rustdesk_relay_zone_t *z,
    ngx_msec_t now, ngx_msec_t *delay);
void ngx_rustdesk_relay_total_consume(ngx_rustdesk_relay_zone_t *z,
    size_t n);


ngx_rustdesk_relay_usage_t *ngx_rustdesk_relay_usage_add(
    ngx_rustdesk_relay_zone_t *z, u_char *addr, size_t len);
void ngx_rustdesk_relay_usage_update(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_usage_t *u, ngx_msec_t now, uint64_t elapsed,
    uint64_t total, uint64_t highest, uint64_t speed);
void ngx_rustdesk_relay_usage_free(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_usage_t *u);
u_char *ngx_rustdesk_relay_usage_text(ngx_rustdesk_relay_zone_t *z,
    ngx_pool_t *pool, ngx_msec_t now, u_char *p, u_char *last);


#endif /* _NGX_STREAM_RUSTDESK_RELAY_ZONE_H_INCLUDED_ */
