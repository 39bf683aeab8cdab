/*
 * What the rendezvous server remembers for the console, in the shared
 * zone: the punch requests lately made (punch-requests) and the peers
 * whose IP changed lately (ip-changes), as the reference keeps them.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_HISTORY_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_HISTORY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_ip.h"
#include "ngx_stream_rustdesk_rendezvous_zone.h"
#include "ngx_stream_rustdesk_rendezvous_peer.h"


#define NGX_RUSTDESK_PUNCH_LOG       1000     /* punch requests remembered */
#define NGX_RUSTDESK_PUNCH_DEDUP     60000    /* same from-IP and id: once */
#define NGX_RUSTDESK_IP_CHANGE_DUR   180000   /* IP changes counted together */
#define NGX_RUSTDESK_IP_CHANGE_KEEP  360000   /* and shown this long */
#define NGX_RUSTDESK_IP_CHANGE_IPS   8        /* addresses per peer kept */


/* A peer's recent IP changes, for the console's ip-changes command. */
struct ngx_rustdesk_ip_change_s {
    ngx_queue_t          queue;             /* by time of the last change */
    ngx_msec_t           time;              /* of the first in this round */
    ngx_msec_t           last;
    void                *peer;              /* ngx_rustdesk_peer_t */
    ngx_uint_t           n;
    struct {
        ngx_rustdesk_ip_t  ip;
        uint32_t           count;
    }                    ips[NGX_RUSTDESK_IP_CHANGE_IPS];
};


/* A punch request, for the console's punch-requests command. */
struct ngx_rustdesk_punch_req_s {
    time_t               time;
    ngx_msec_t           msec;
    ngx_rustdesk_ip_t    from;
    ngx_rustdesk_ip_t    to;
    u_char               id_len;
    u_char               id[NGX_RUSTDESK_ID_MAX];
};


/* Logs A's punch request to id at B's address (deduplicated). */
void ngx_rustdesk_punch_log(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *from, ngx_str_t *id, ngx_rustdesk_ip_t *to,
    ngx_msec_t now);

/* Under the zone's mutex: p registered from a new IP (RegisterPk). */
void ngx_rustdesk_ip_change_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p, ngx_rustdesk_ip_t *ip, ngx_msec_t now,
    ngx_log_t *log);

/* Under the zone's mutex: forgets p's IP changes. */
void ngx_rustdesk_ip_change_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_HISTORY_H_INCLUDED_ */
