/*
 * The IP blocker of the rendezvous server (PROTOCOL.md section 6): for
 * each source IP, in the shared zone, how many RegisterPk it sent lately
 * and which ids; an IP that sends too many, or too many new ids, is
 * refused.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_IP_BLOCKER_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_IP_BLOCKER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_ip.h"
#include "ngx_stream_rustdesk_rendezvous_zone.h"


#define NGX_RUSTDESK_IP_BLOCK_WINDOW 60000    /* up to 30 RegisterPk per 60 s */
#define NGX_RUSTDESK_IP_BLOCK_MAX    30
#define NGX_RUSTDESK_IP_IDS_WINDOW   86400000 /* at most 300 new ids per day */
#define NGX_RUSTDESK_IP_IDS_MAX      300


typedef struct {
    ngx_rbtree_node_t    node;              /* ngx_rustdesk_ip_node_t */
    ngx_queue_t          queue;
    ngx_rustdesk_ip_t    ip;
    ngx_msec_t           reg_time;
    ngx_msec_t           ids_time;
    uint32_t             reg_count;
    uint32_t             nids;
    uint32_t             ids_size;
    uint32_t            *ids;               /* crc32 of each id seen */
} ngx_rustdesk_ip_block_t;


/* The IP blocker: 0 refuses this RegisterPk (PROTOCOL.md section 6). */
ngx_uint_t ngx_rustdesk_ip_blocker_allow(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *ip, ngx_str_t *id, ngx_msec_t now, ngx_log_t *log);

/* Under the zone's mutex: drops the entry of an IP. */
void ngx_rustdesk_ip_blocker_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_block_t *b);

/*
 * Under the zone's mutex, for eviction: frees up to max entries that
 * are stale, least recently used first; returns how many.
 */
ngx_uint_t ngx_rustdesk_ip_blocker_expire_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_msec_t now, ngx_uint_t max);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_IP_BLOCKER_H_INCLUDED_ */
