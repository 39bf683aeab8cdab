/*
 * Relay tickets in the cluster's Redis (README "Relay tickets"): the
 * rendezvous of any host records the sessions it brokers, a relay of any
 * host takes their tickets.  One key per session, <prefix>ticket:<uuid>,
 * a hash: "id", the peer asked to relay, and "taken", how many of its two
 * tickets went.  It expires with the session (rustdesk_brokered_timeout).
 *
 * Each side is one Lua script on that one key (Redis runs a script
 * whole, so two relays taking the same uuid at once count one after the
 * other, and a Redis Cluster finds the key on one node):
 *
 *   record:  the id set (an empty one keeps the id recorded), the expiry
 *            set again; "taken" kept, so that a session brokered again
 *            (RequestRelay, then RelayResponse, maybe on two hosts) still
 *            pairs once;
 *   take:    nil when there is no such session, 0 when both its tickets
 *            went, else the id (and one more ticket gone).
 */

#ifndef _NGX_RUSTDESK_TICKETS_H_INCLUDED_
#define _NGX_RUSTDESK_TICKETS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_cluster.h"
#include "ngx_rustdesk_brokered.h"


/* A brokered session, written without waiting: NGX_OK sent, NGX_DECLINED. */
ngx_int_t ngx_rustdesk_tickets_record(ngx_rustdesk_redis_t *r,
    ngx_str_t *prefix, ngx_str_t *uuid, ngx_str_t *id, ngx_msec_t ttl);

/*
 * One of uuid's tickets, its answer to handler (as with
 * ngx_rustdesk_redis_command()); with handler NULL, taken without an
 * answer (a ticket this relay took from its own rendezvous's zone, spent
 * in Redis too): then NULL is returned either way.
 */
ngx_rustdesk_redis_cmd_t *ngx_rustdesk_tickets_take(ngx_rustdesk_redis_t *r,
    ngx_str_t *prefix, ngx_str_t *uuid, ngx_rustdesk_redis_handler_pt handler,
    void *data);

/*
 * take()'s answer: NGX_OK with the id copied to id
 * (NGX_RUSTDESK_BROKERED_ID_MAX bytes), NGX_DECLINED when no session has
 * uuid, NGX_BUSY when its two connections came already, NGX_ERROR when
 * Redis did not answer (reply NULL) or answered something else.
 */
ngx_int_t ngx_rustdesk_tickets_taken(redisReply *reply, ngx_str_t *id);


#endif /* _NGX_RUSTDESK_TICKETS_H_INCLUDED_ */
