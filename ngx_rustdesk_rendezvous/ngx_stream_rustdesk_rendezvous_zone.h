/*
 * The rendezvous server's shared memory zone, so that every worker sees
 * the same peers (PROTOCOL.md section 6, DESIGN.md "Processes and state"):
 * the peer table, the IP blocker, the waiting requesters and the console's
 * histories in one slab pool, the allocator they share, and the serial and
 * rendezvous servers that a ConfigUpdate may raise.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_ZONE_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_ZONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_ipc.h"
#include "ngx_rustdesk_stats.h"

#include "ngx_stream_rustdesk_rendezvous_table.h"
#include "ngx_stream_rustdesk_rendezvous_online.h"


#define NGX_RUSTDESK_SERVERS_MAX     1024     /* rendezvous_servers, joined */

/*
 * Peer records up to this size (a 10-digit id, a 36-byte uuid and a
 * 32-byte key make 159 bytes) live in the smallest cells of the peer
 * table, 25 to a 4 KiB page; longer ones in cells of 320 or 704 bytes.
 */
#define NGX_RUSTDESK_PEER_CELL       160


typedef struct ngx_rustdesk_punch_req_s  ngx_rustdesk_punch_req_t;


typedef struct {
    ngx_rustdesk_table_t table;             /* the peers */
    ngx_rbtree_t         ips;
    ngx_rbtree_node_t    ips_sentinel;
    ngx_queue_t          ips_lru;
    ngx_rbtree_t         waiters;
    ngx_rbtree_node_t    waiters_sentinel;
    ngx_queue_t          waiters_lru;

    ngx_uint_t           npeers;
    ngx_uint_t           nips;
    ngx_uint_t           nwaiters;
    ngx_uint_t           answers;           /* delivered to requesters */
    ngx_uint_t           answers_cross;     /* of which via another worker */
    ngx_uint_t           full_logged;
    ngx_uint_t           full;              /* the last allocation failed */

    ngx_uint_t           always_use_relay;  /* the console may change it */
    size_t               relays_len;        /* set by the console: a,b */
    u_char               relays[NGX_RUSTDESK_SERVERS_MAX];
    ngx_rustdesk_punch_req_t  *punch_reqs;  /* ring, NULL if no room */
    ngx_queue_t          ip_changes;
    ngx_uint_t           nip_changes;       /* of more than one address */
    ngx_uint_t           npunch_reqs;       /* ever logged */
    int32_t              serial;            /* adopted from ConfigUpdate */
    size_t               servers_len;
    u_char               servers[NGX_RUSTDESK_SERVERS_MAX];

    ngx_rustdesk_stats_t  *stats;           /* NULL: no metrics yet */
    ngx_rustdesk_online_t  online;          /* peers online, by second */
} ngx_rustdesk_peer_shctx_t;


typedef struct {
    ngx_rustdesk_peer_shctx_t  *sh;
    ngx_slab_pool_t            *shpool;
    int32_t                     serial;     /* configured rustdesk_serial */
    ngx_uint_t                  always_use_relay;   /* configured */
    ngx_uint_t                  ip_block_max;       /* RegisterPk per 60 s */
    ngx_uint_t                  ip_ids_max;         /* new ids per day */
    ngx_msec_t                  online_ttl;         /* after registering */
    ngx_msec_t                  stream_ttl;         /* online by a stream */
    ngx_str_t                   servers;    /* configured, comma-joined */
    ngx_uint_t                  stats_values;   /* 0: no metrics */
    ngx_rustdesk_ipc_dir_t     *channel;    /* set up with the zone */
    ngx_cycle_t                *cycle;      /* the zone's */
    ngx_str_t                  *database;   /* checked with the zone */
} ngx_rustdesk_peer_zone_t;


ngx_int_t ngx_rustdesk_peer_init_zone(ngx_shm_zone_t *shm_zone, void *data);

/*
 * Under the zone's mutex, for an entry of any of its tables: room is made
 * when the slab has none by freeing stale entries and evicting offline
 * peers, a bounded number each time.  NULL: no room (said once).
 */
void *ngx_rustdesk_peer_alloc_locked(ngx_rustdesk_peer_zone_t *z,
    size_t size, ngx_msec_t now, ngx_log_t *log);

/*
 * Under the zone's mutex, for a peer record: a cell of the peer table
 * (ngx_stream_rustdesk_rendezvous_table.h), room made the same way.
 */
void *ngx_rustdesk_peer_new_locked(ngx_rustdesk_peer_zone_t *z, size_t size,
    ngx_msec_t now, ngx_log_t *log);
void ngx_rustdesk_peer_release_locked(ngx_rustdesk_peer_zone_t *z, void *p);

/* Serial and rendezvous servers now in force (ConfigUpdate may raise them). */
int32_t ngx_rustdesk_peer_serial_now(ngx_rustdesk_peer_zone_t *z);
int32_t ngx_rustdesk_peer_serial(ngx_rustdesk_peer_zone_t *z, u_char *servers,
    size_t *servers_len);
ngx_uint_t ngx_rustdesk_peer_config_update(ngx_rustdesk_peer_zone_t *z,
    int32_t serial, u_char *servers, size_t servers_len);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_ZONE_H_INCLUDED_ */
