/*
 * How many peers are online, without a walk over the peers: the zone
 * counts the peers whose last registration fell in each second, for the
 * last few thousand seconds, in two rings: one for peers reached over UDP
 * (or whose stream closed: online for rustdesk_online_timeout) and one for
 * peers with a live stream (online longer, see ngx_rustdesk_peer_is_online).
 * Every change of a peer's registration time or way of reach goes through
 * ngx_rustdesk_online_move(), under the zone's mutex; the metrics add up
 * the seconds within each ring's time online.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_ONLINE_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_ONLINE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_RUSTDESK_ONLINE_SLOTS_MIN  64
#define NGX_RUSTDESK_ONLINE_SLOTS_MAX  4096       /* seconds: over an hour */


typedef struct {
    uint32_t             second;            /* of ngx_current_msec */
    uint32_t             n;                 /* peers registered in it */
} ngx_rustdesk_online_slot_t;


typedef struct {
    ngx_rustdesk_online_slot_t  *ring[2];   /* 0: UDP, 1: live stream */
    ngx_uint_t                   mask;      /* slots - 1 */
} ngx_rustdesk_online_t;


/* The rings, from the slab, sized by the zone (1/64 of it at most). */
ngx_int_t ngx_rustdesk_online_init(ngx_rustdesk_online_t *o,
    ngx_slab_pool_t *pool, size_t zone_size);

/*
 * A peer's registration moves from the time was (0: none) to last_reg
 * (0: none any more), and from a live stream or not (was_live) to live:
 * the counts follow.
 */
void ngx_rustdesk_online_move(ngx_rustdesk_online_t *o, ngx_msec_t was,
    ngx_uint_t was_live, ngx_msec_t last_reg, ngx_uint_t live);

/*
 * The peers registered within udp_ttl (stream_ttl for a live stream),
 * to the second; a window longer than the ring counts the ring's span.
 */
ngx_uint_t ngx_rustdesk_online_count(ngx_rustdesk_online_t *o,
    ngx_msec_t now, ngx_msec_t udp_ttl, ngx_msec_t stream_ttl);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_ONLINE_H_INCLUDED_ */
