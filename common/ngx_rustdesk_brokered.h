/*
 * Relay sessions the rendezvous brokered (DESIGN.md "Relay policy is
 * nginx's"): uuid -> the id of the peer asked to relay, for a while.  The
 * rendezvous module owns the zone and writes it when it passes on a
 * RequestRelay or a RelayResponse; the relay module of the same nginx
 * finds the zone by name and reads it when a pair forms, for the access
 * log's $rustdesk_peer_id, and, with rustdesk_relay_tickets, takes a
 * ticket for each of a session's two connections.  Bounded: the oldest
 * entries go first.
 */

#ifndef _NGX_RUSTDESK_BROKERED_H_INCLUDED_
#define _NGX_RUSTDESK_BROKERED_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_RUSTDESK_BROKERED_ZONE     "rustdesk_brokered"
#define NGX_RUSTDESK_BROKERED_UUID_MAX 128
#define NGX_RUSTDESK_BROKERED_ID_MAX   100
#define NGX_RUSTDESK_BROKERED_TICKETS  2      /* the two sides of a pair */


typedef struct {
    ngx_rbtree_t                rbtree;      /* by crc32 of the uuid */
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;       /* oldest first */
    ngx_uint_t                  count;
    ngx_uint_t                  evicted;     /* before they expired */
    ngx_uint_t                  taken;       /* tickets */
    ngx_uint_t                  refused;     /* no ticket */
} ngx_rustdesk_brokered_sh_t;


typedef struct {
    ngx_rustdesk_brokered_sh_t *sh;
    ngx_slab_pool_t            *shpool;
    ngx_msec_t                  ttl;
} ngx_rustdesk_brokered_t;


/* shm_zone->data is an ngx_rustdesk_brokered_t with ttl set */
ngx_int_t ngx_rustdesk_brokered_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

/*
 * Records (or refreshes) uuid as brokered for peer_id; an empty peer_id
 * keeps the one recorded.  NGX_ERROR: no room even after eviction.
 */
ngx_int_t ngx_rustdesk_brokered_add(ngx_rustdesk_brokered_t *b,
    ngx_str_t *uuid, ngx_str_t *peer_id, ngx_msec_t now);

/*
 * NGX_OK with the peer's id copied to id (NGX_RUSTDESK_BROKERED_ID_MAX
 * bytes), NGX_DECLINED when uuid was not brokered or has expired.
 */
ngx_int_t ngx_rustdesk_brokered_find(ngx_rustdesk_brokered_t *b,
    ngx_str_t *uuid, ngx_msec_t now, ngx_str_t *id);

/*
 * A ticket for one connection of a relay session: NGX_OK (id copied as by
 * find()), NGX_DECLINED when uuid was not brokered or has expired,
 * NGX_BUSY when both of its connections came already.
 */
ngx_int_t ngx_rustdesk_brokered_take(ngx_rustdesk_brokered_t *b,
    ngx_str_t *uuid, ngx_msec_t now, ngx_str_t *id);

/* The rendezvous module's zone in cycle; NULL when there is none. */
ngx_rustdesk_brokered_t *ngx_rustdesk_brokered_lookup(ngx_cycle_t *cycle);


#endif /* _NGX_RUSTDESK_BROKERED_H_INCLUDED_ */
