/*
 * The console's text views of the rendezvous zone, as the reference's
 * commands print them: the punch request log, the peers' IP changes and
 * the IP blocker (ngx_stream_rustdesk_rendezvous_console.c).
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_REPORT_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_REPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_ip.h"
#include "ngx_stream_rustdesk_rendezvous_zone.h"


/* The console's views: text appended at *p, never past last. */
u_char *ngx_rustdesk_punch_log_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_uint_t start, ngx_uint_t n, ngx_uint_t clear);
u_char *ngx_rustdesk_ip_changes_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_str_t *id, ngx_uint_t start, ngx_uint_t remove,
    ngx_msec_t now);
u_char *ngx_rustdesk_ip_blocker_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_rustdesk_ip_t *ip, ngx_uint_t start, ngx_uint_t remove,
    ngx_msec_t now);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_REPORT_H_INCLUDED_ */
