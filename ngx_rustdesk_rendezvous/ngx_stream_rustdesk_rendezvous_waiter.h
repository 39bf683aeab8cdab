/*
 * The requesters waiting for an answer (PROTOCOL.md section 6): in the
 * shared zone, each requester's address mapped to the worker that holds
 * its TCP connection, so that B's answer, on whichever worker it arrives,
 * reaches it.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_WAITER_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_WAITER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_ip.h"
#include "ngx_stream_rustdesk_rendezvous_zone.h"


#define NGX_RUSTDESK_WAITER_TTL      120000   /* a requester's entry at most */


/*
 * A requester (A) waiting on a TCP connection for the answer from B: its
 * address (as it reaches B, mangled, and comes back) and the worker
 * holding the connection (PROTOCOL.md section 6).
 */
typedef struct {
    ngx_rbtree_node_t    node;              /* ngx_rustdesk_ip_node_t */
    ngx_queue_t          queue;
    ngx_rustdesk_ip_t    ip;
    ngx_pid_t            pid;
    ngx_msec_t           time;
} ngx_rustdesk_waiter_t;


/* Requester A waits on worker pid (replaces an older entry for A). */
void ngx_rustdesk_waiter_add(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a, ngx_pid_t pid, ngx_msec_t now, ngx_log_t *log);

/* Takes A's entry: the worker to answer through, NGX_INVALID_PID: none. */
ngx_pid_t ngx_rustdesk_waiter_take(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a);

/* A's connection closed on worker pid: drop its entry if still ours. */
void ngx_rustdesk_waiter_forget(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a, ngx_pid_t pid);

/* An answer delivered to a requester (cross: through another worker). */
void ngx_rustdesk_peer_count_answer(ngx_rustdesk_peer_zone_t *z,
    ngx_uint_t cross);

/*
 * Under the zone's mutex: frees up to max entries older than
 * NGX_RUSTDESK_WAITER_TTL, of requesters that never got an answer, oldest
 * first; returns how many.
 */
ngx_uint_t ngx_rustdesk_waiter_expire_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_msec_t now, ngx_uint_t max);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_WAITER_H_INCLUDED_ */
