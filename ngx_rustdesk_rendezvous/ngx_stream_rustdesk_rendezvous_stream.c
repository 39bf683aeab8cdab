/*
 * Peers registered over a TCP or WebSocket stream (PROTOCOL.md section 8):
 * clients that cannot or will not use UDP send RegisterPk on a stream
 * they keep open.  The zone records which worker holds the stream; that
 * worker keeps its streams in a tree by peer id, and PunchHole,
 * RequestRelay and FetchLocalAddr for such a peer are written to its
 * stream, by way of the worker channel when another worker has them.
 *
 * Heartbeats are empty frames.  The client answers each one it gets; the
 * server answers the client's own, and sends one itself after keep_alive
 * without hearing anything.  The next empty frame after it is its echo and
 * is not answered, so that the two sides never bounce heartbeats.  A
 * stream silent for keep_alive after a heartbeat is closed.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_REG_POOL_SIZE  1024
#define NGX_RUSTDESK_PINGS_MAX      3      /* unanswered heartbeats at most */


/* A RegisterPk in flight: its own pool outlives the stream if need be. */
typedef struct {
    ngx_queue_t                            queue;   /* in ctx->writes */
    ngx_pool_t                            *pool;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;     /* NULL: stream closed */
    ngx_uint_t                             transport; /* for the metrics */
} ngx_stream_rustdesk_rendezvous_reg_t;


static void ngx_stream_rustdesk_rendezvous_stream_bound(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record);
static ngx_int_t ngx_stream_rustdesk_rendezvous_stream_checked(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record);
static ngx_int_t ngx_stream_rustdesk_rendezvous_stream_bind(
    ngx_rustdesk_tcp_t *t, ngx_str_t *id);
static void ngx_stream_rustdesk_rendezvous_stream_unbind(
    ngx_stream_rustdesk_rendezvous_ctx_t *ctx, ngx_uint_t grace);
static void ngx_stream_rustdesk_rendezvous_stream_written(void *data,
    ngx_int_t rc);
static ngx_int_t ngx_stream_rustdesk_rendezvous_stream_reply(
    ngx_stream_rustdesk_rendezvous_ctx_t *ctx,
    Hbb__RegisterPkResponse__Result result);
static ngx_int_t ngx_stream_rustdesk_rendezvous_stream_owned(
    ngx_rustdesk_tcp_t *t, ngx_msec_t now);
static ngx_int_t ngx_stream_rustdesk_rendezvous_stream_idle(
    ngx_rustdesk_tcp_t *t);
static ngx_stream_rustdesk_rendezvous_ctx_t *
    ngx_stream_rustdesk_rendezvous_stream_find(ngx_str_t *id);
static void ngx_stream_rustdesk_rendezvous_stream_forget(
    ngx_stream_rustdesk_rendezvous_ctx_t *ctx);
static void ngx_stream_rustdesk_rendezvous_stream_cleanup(void *data);


/* this worker's registered streams, by peer id */
static ngx_rbtree_t       ngx_stream_rustdesk_rendezvous_streams;
static ngx_rbtree_node_t  ngx_stream_rustdesk_rendezvous_streams_sentinel;


ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_init(ngx_cycle_t *cycle)
{
    ngx_rbtree_init(&ngx_stream_rustdesk_rendezvous_streams,
                    &ngx_stream_rustdesk_rendezvous_streams_sentinel,
                    ngx_str_rbtree_insert_value);

    return NGX_OK;
}


/*
 * RegisterPk on a stream: the UDP rules; an OK makes this stream the
 * peer's way in, and the answer carries keep_alive.  The stream stays open
 * whatever the result, as the client may try again on it.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_register(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk)
{
    /* first the cluster's binding of the id, if any (the stream reads on) */

    if (ngx_stream_rustdesk_rendezvous_cluster_check_uuid(r, rk,
                                 ngx_stream_rustdesk_rendezvous_stream_bound)
        == NGX_AGAIN)
    {
        return NGX_AGAIN;
    }

    return ngx_stream_rustdesk_rendezvous_stream_checked(r, rk, NULL);
}


static void
ngx_stream_rustdesk_rendezvous_stream_bound(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record)
{
    ngx_int_t  rc;

    r->result = NULL;

    if (record->binding == NGX_RUSTDESK_BINDING_OTHER) {
        rc = ngx_stream_rustdesk_rendezvous_stream_reply(
                          (ngx_stream_rustdesk_rendezvous_ctx_t *) r,
                          HBB__REGISTER_PK_RESPONSE__RESULT__UUID_MISMATCH);
    } else {
        rc = ngx_stream_rustdesk_rendezvous_stream_checked(r, rk, record);
    }

    /* as the protocol layer counts: once the answer is made */

    if (r->result) {
        ngx_stream_rustdesk_rendezvous_account(
                           ngx_stream_rustdesk_rendezvous_metrics_transport(r),
                           HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK,
                           r->result);
    }

    if (rc == NGX_ERROR) {
        ngx_rustdesk_tcp_fail(r->stream);
    }
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_checked(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record)
{
    ngx_int_t                                    rc;
    ngx_pool_t                                  *pool;
    ngx_connection_t                            *c;
    ngx_rustdesk_tcp_t                          *t;
    ngx_pool_cleanup_t                          *cln;
    ngx_stream_rustdesk_rendezvous_pk_t          pk;
    ngx_stream_rustdesk_rendezvous_reg_t        *reg;
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    t = r->stream;
    c = t->session->connection;
    ctx = t->data;

    if (!ctx->stream_cleanup) {
        cln = ngx_pool_cleanup_add(c->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_stream_rustdesk_rendezvous_stream_cleanup;
        cln->data = ctx;

        ngx_queue_init(&ctx->writes);
        ctx->stream_cleanup = 1;
    }

    /*
     * what this message needs (a database row, the write task) comes from
     * a pool of its own: a long-lived stream does not grow, and a write
     * still running when the stream closes keeps its memory
     */

    pool = ngx_create_pool(NGX_RUSTDESK_REG_POOL_SIZE, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pk.req.addr = ctx->req.addr;
    pk.req.stream = ngx_pid;

    ngx_stream_rustdesk_rendezvous_note(r, &r->id, rk->id);

    rc = ngx_stream_rustdesk_rendezvous_register_pk(t->session, rk, record,
                                                    &pk, pool);

    if (rc == NGX_DONE) {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: stream RegisterPk without uuid or pk "
                       "ignored");
        ngx_destroy_pool(pool);
        r->result = "IGNORED";
        return NGX_OK;
    }

    if (pk.result == HBB__REGISTER_PK_RESPONSE__RESULT__OK) {
        if (ngx_stream_rustdesk_rendezvous_stream_bind(t, &pk.req.id)
            != NGX_OK)
        {
            /* the zone points here already: not any more */
            rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);
            ngx_rustdesk_peer_stream_closed(rmcf->zone, &pk.req.id, ngx_pid,
                                            ngx_current_msec, 0);
            ngx_destroy_pool(pool);
            return NGX_ERROR;
        }

        if (pk.change.write) {
            reg = ngx_palloc(pool, sizeof(ngx_stream_rustdesk_rendezvous_reg_t));
            if (reg == NULL) {
                ngx_destroy_pool(pool);
                return NGX_ERROR;
            }

            reg->pool = pool;
            reg->ctx = ctx;
            reg->transport =
                          ngx_stream_rustdesk_rendezvous_metrics_transport(r);
            ngx_queue_insert_tail(&ctx->writes, &reg->queue);

            /* without a thread pool, written() runs before this returns */

            rc = ngx_stream_rustdesk_rendezvous_register_write(&pk, pool,
                                ngx_stream_rustdesk_rendezvous_stream_written,
                                reg, ngx_cycle->log);
            if (rc == NGX_AGAIN) {
                return NGX_OK;
            }

            ngx_queue_remove(&reg->queue);
            pk.result = HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;
        }
    }

    ngx_destroy_pool(pool);

    return ngx_stream_rustdesk_rendezvous_stream_reply(ctx, pk.result);
}


/* The database write is done: the answer, if the stream is still there. */

static void
ngx_stream_rustdesk_rendezvous_stream_written(void *data, ngx_int_t rc)
{
    ngx_stream_rustdesk_rendezvous_reg_t  *reg = data;

    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;
    Hbb__RegisterPkResponse__Result        result;

    ctx = reg->ctx;

    result = (rc == NGX_OK) ? HBB__REGISTER_PK_RESPONSE__RESULT__OK
                            : HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;

    /* counted even if the stream is gone: the peer is registered */

    ngx_stream_rustdesk_rendezvous_account(reg->transport,
                          HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK,
                          ngx_stream_rustdesk_rendezvous_register_result(result));

    if (ctx) {
        ngx_queue_remove(&reg->queue);

        if (ngx_stream_rustdesk_rendezvous_stream_reply(ctx, result)
            != NGX_OK)
        {
            ngx_rustdesk_tcp_fail(ctx->req.stream);
        }
    }

    ngx_destroy_pool(reg->pool);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_reply(
    ngx_stream_rustdesk_rendezvous_ctx_t *ctx,
    Hbb__RegisterPkResponse__Result result)
{
    ngx_rustdesk_msg_t                           out;
    Hbb__RegisterPkResponse                      rpr;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(ctx->req.session,
                                        ngx_stream_rustdesk_rendezvous_module);

    hbb__rendezvous_message__init(&out);
    hbb__register_pk_response__init(&rpr);

    rpr.result = result;
    ctx->req.result = ngx_stream_rustdesk_rendezvous_register_result(result);

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        && result == HBB__REGISTER_PK_RESPONSE__RESULT__OK && ctx->registered)
    {
        /* registered here on this stream: this host has it now */
        (void) ngx_stream_rustdesk_rendezvous_cluster_publish(&ctx->req,
                                                     &ctx->peer.str, 0);
        ctx->cluster_heard = ngx_current_msec;
    }

    /* whole seconds, rounded up: the client gives up after 1.5 times it */
    rpr.keep_alive = (int32_t) ((rmcf->keep_alive + 999) / 1000);

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PK_RESPONSE;
    out.register_pk_response = &rpr;

    return ngx_rustdesk_tcp_send(ctx->req.stream, &out);
}


/*
 * This stream is the peer's from now on (the zone says so already): in
 * this worker's tree, in place of an older stream of the same peer here,
 * which is closed; heartbeats every keep_alive from now on.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_bind(ngx_rustdesk_tcp_t *t,
    ngx_str_t *id)
{
    ngx_connection_t                            *c;
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx, *old;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    c = t->session->connection;
    ctx = t->data;

    rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ctx->registered) {
        if (ctx->peer.str.len == id->len
            && ngx_strncmp(ctx->peer.str.data, id->data, id->len) == 0)
        {
            return NGX_OK;
        }

        /* another id on the same stream: the first one loses it */
        ngx_stream_rustdesk_rendezvous_stream_unbind(ctx, 1);
    }

    old = ngx_stream_rustdesk_rendezvous_stream_find(id);

    if (old) {
        ngx_log_error(NGX_LOG_INFO, old->req.session->connection->log, 0,
                      "rustdesk: peer \"%V\" registered again on another "
                      "stream, closing this one", id);

        ngx_stream_rustdesk_rendezvous_stream_forget(old);
        ngx_rustdesk_tcp_fail(old->req.stream);
    }

    if (ctx->peer.str.data == NULL) {
        /* once per stream, whatever ids it registers in turn */
        ctx->peer.str.data = ngx_pnalloc(c->pool, NGX_RUSTDESK_ID_MAX);
        if (ctx->peer.str.data == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_memcpy(ctx->peer.str.data, id->data, id->len);
    ctx->peer.str.len = id->len;
    ctx->peer.node.key = ngx_crc32_short(id->data, id->len);

    ngx_rbtree_insert(&ngx_stream_rustdesk_rendezvous_streams,
                      &ctx->peer.node);
    ctx->registered = 1;
    ctx->heard = 1;

    ngx_stream_rustdesk_rendezvous_count(ctx->req.port == NGX_RUSTDESK_PORT_WS
                                         ? NGX_RUSTDESK_RDV_STREAMS_WS
                                         : NGX_RUSTDESK_RDV_STREAMS_TCP, 1);

    t->timeout = rmcf->keep_alive;
    t->idle = ngx_stream_rustdesk_rendezvous_stream_idle;

    /*
     * idle for nginx: a reload or quit closes it (the client registers
     * with the new workers), even if it once waited for an answer
     */
    c->idle = 1;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "rustdesk: peer \"%V\" registered on this stream", id);

    return NGX_OK;
}


static void
ngx_stream_rustdesk_rendezvous_stream_unbind(
    ngx_stream_rustdesk_rendezvous_ctx_t *ctx, ngx_uint_t grace)
{
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(ctx->req.session,
                                        ngx_stream_rustdesk_rendezvous_module);

    ngx_stream_rustdesk_rendezvous_stream_forget(ctx);

    ngx_rustdesk_peer_stream_closed(rmcf->zone, &ctx->peer.str, ngx_pid,
                                    ngx_current_msec, grace);
}


/* Out of this worker's tree of registered streams. */

static void
ngx_stream_rustdesk_rendezvous_stream_forget(
    ngx_stream_rustdesk_rendezvous_ctx_t *ctx)
{
    ngx_rbtree_delete(&ngx_stream_rustdesk_rendezvous_streams,
                      &ctx->peer.node);
    ctx->registered = 0;

    ngx_stream_rustdesk_rendezvous_count(ctx->req.port == NGX_RUSTDESK_PORT_WS
                                         ? NGX_RUSTDESK_RDV_STREAMS_WS
                                         : NGX_RUSTDESK_RDV_STREAMS_TCP, -1);
}


/*
 * A frame came on the stream: a registered peer is alive.  NGX_ERROR when
 * it has registered again elsewhere (or was evicted from the zone): this
 * stream is stale and closes, and a client still on it registers anew.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_heard(ngx_rustdesk_tcp_t *t)
{
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    ctx = t->data;
    ctx->heard = 1;

    if (!ctx->registered) {
        return NGX_OK;
    }

    if (ngx_stream_rustdesk_rendezvous_stream_owned(t, ngx_current_msec)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)) {
        /* written to the cluster's directory once per refresh period */
        (void) ngx_stream_rustdesk_rendezvous_cluster_publish(&ctx->req,
                                        &ctx->peer.str, ctx->cluster_heard);
        ctx->cluster_heard = ngx_current_msec;
    }

    return NGX_OK;
}


/*
 * Whether the zone still reaches the peer through this stream (refreshing
 * its registration when now is not 0); if not, the stream leaves the tree
 * and NGX_ERROR closes it.
 */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_owned(ngx_rustdesk_tcp_t *t,
    ngx_msec_t now)
{
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    ctx = t->data;

    rmcf = ngx_stream_get_module_main_conf(t->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_rustdesk_peer_stream_refresh(rmcf->zone, &ctx->peer.str, ngx_pid,
                                         now)
        == NGX_OK)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, t->session->connection->log, 0,
                  "rustdesk: peer \"%V\" is no longer reached through this "
                  "stream, closing it", &ctx->peer.str);

    ngx_stream_rustdesk_rendezvous_stream_forget(ctx);

    return NGX_ERROR;
}


/* An empty frame from the client: the echo of ours, or one to answer. */

ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_heartbeat(ngx_rustdesk_tcp_t *t)
{
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    ctx = t->data;

    if (ngx_exiting) {
        /* a worker that is quitting lets its streams go */
        return NGX_ERROR;
    }

    if (ngx_stream_rustdesk_rendezvous_stream_heard(t) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->pings) {
        ctx->pings--;
        return NGX_OK;
    }

    return ngx_rustdesk_tcp_send_heartbeat(t);
}


/* Nothing heard for keep_alive: a heartbeat, or the end after one. */

static ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_idle(ngx_rustdesk_tcp_t *t)
{
    ngx_connection_t                      *c;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    c = t->session->connection;
    ctx = t->data;

    if (!ctx->registered) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "rustdesk: client timed out");
        return NGX_ERROR;
    }

    if (ngx_exiting) {
        return NGX_ERROR;
    }

    if (ctx->pings && !ctx->heard) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "rustdesk: peer \"%V\" did not answer its heartbeat, "
                      "closing its stream", &ctx->peer.str);
        return NGX_ERROR;
    }

    /* registered again elsewhere meanwhile: no heartbeat, the end */

    if (ngx_stream_rustdesk_rendezvous_stream_owned(t, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->heard = 0;

    if (ctx->pings < NGX_RUSTDESK_PINGS_MAX) {
        if (ngx_rustdesk_tcp_send_heartbeat(t) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->pings++;
    }

    return NGX_OK;
}


/*
 * A message for peer id, whose stream worker pid holds (from session s,
 * for its log and pool): written here, or sent to that worker.
 * NGX_DECLINED: the stream is known to be gone.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_send(ngx_stream_session_t *s,
    ngx_str_t *id, ngx_pid_t pid, ngx_rustdesk_msg_t *m)
{
    u_char                                      *buf, *last;
    ngx_connection_t                            *c;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    c = s->connection;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    buf = ngx_pnalloc(c->pool, ngx_rustdesk_msg_size(m, 0));
    if (buf == NULL) {
        return NGX_ERROR;
    }

    last = ngx_rustdesk_msg_pack(m, 0, buf);

    return ngx_stream_rustdesk_rendezvous_stream_send_raw(rmcf->zone, id, pid,
                                                   buf, last - buf, c->log);
}


/* The same for a message encoded already (its memory the caller's). */

ngx_int_t
ngx_stream_rustdesk_rendezvous_stream_send_raw(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_pid_t pid, u_char *msg, size_t len, ngx_log_t *log)
{
    u_char                                *buf, *p;
    ngx_int_t                              rc;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    if (pid == ngx_pid) {
        ctx = ngx_stream_rustdesk_rendezvous_stream_find(id);

        if (ctx == NULL) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "rustdesk: the stream of peer \"%V\" is closed",
                          id);

            ngx_rustdesk_peer_stream_closed(z, id, ngx_pid, ngx_current_msec,
                                            0);
            return NGX_DECLINED;
        }

        if (ngx_rustdesk_tcp_send_raw(ctx->req.stream, msg, len) != NGX_OK) {
            ngx_rustdesk_tcp_fail(ctx->req.stream);
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    /* id length, id, message; the channel copies what it must keep */

    buf = ngx_alloc(1 + id->len + len, log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    buf[0] = (u_char) id->len;
    p = ngx_cpymem(buf + 1, id->data, id->len);
    p = ngx_cpymem(p, msg, len);

    rc = ngx_stream_rustdesk_rendezvous_ipc_send(pid, NGX_RUSTDESK_IPC_TO_PEER,
                                                 buf, p - buf);
    ngx_free(buf);

    if (rc == NGX_DECLINED) {
        /* the worker died with the stream: the peer must register again */

        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "rustdesk: the worker %P holding the stream of peer "
                      "\"%V\" is gone", pid, id);

        ngx_rustdesk_peer_stream_closed(z, id, pid, ngx_current_msec, 0);
        return NGX_DECLINED;
    }

    if (rc == NGX_AGAIN) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: the channel to worker %P is full, message "
                      "to peer \"%V\" dropped", pid, id);
    }

    return NGX_OK;
}


/* From another worker's stream_send(): id length, id, message. */

void
ngx_stream_rustdesk_rendezvous_stream_deliver(ngx_rustdesk_peer_zone_t *z,
    u_char *data, size_t len, ngx_pid_t from, ngx_log_t *log)
{
    ngx_str_t                              id;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    /* an empty message would be a heartbeat the client echoes */

    if (len < 1 || len <= (size_t) 1 + data[0]) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "rustdesk: malformed peer message from worker %P",
                      from);
        return;
    }

    id.len = data[0];
    id.data = data + 1;

    ctx = ngx_stream_rustdesk_rendezvous_stream_find(&id);

    if (ctx == NULL) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "rustdesk: message from worker %P for peer \"%V\", "
                      "whose stream is closed", from, &id);

        if (z) {
            ngx_rustdesk_peer_stream_closed(z, &id, ngx_pid, ngx_current_msec,
                                            0);
        }

        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, ctx->req.session->connection->log,
                   0, "rustdesk: message for peer \"%V\" from worker %P",
                   &id, from);

    if (ngx_rustdesk_tcp_send_raw(ctx->req.stream, data + 1 + id.len,
                                  len - 1 - id.len)
        != NGX_OK)
    {
        ngx_rustdesk_tcp_fail(ctx->req.stream);
    }
}


static ngx_stream_rustdesk_rendezvous_ctx_t *
ngx_stream_rustdesk_rendezvous_stream_find(ngx_str_t *id)
{
    ngx_str_node_t  *n;

    n = ngx_str_rbtree_lookup(&ngx_stream_rustdesk_rendezvous_streams, id,
                              ngx_crc32_short(id->data, id->len));
    if (n == NULL) {
        return NULL;
    }

    return (ngx_stream_rustdesk_rendezvous_ctx_t *)
               ((u_char *) n - offsetof(ngx_stream_rustdesk_rendezvous_ctx_t,
                                        peer));
}


/*
 * The stream is gone: the peer stays online for the usual 30 s unless it
 * registers again; writes in flight finish without it.
 */

static void
ngx_stream_rustdesk_rendezvous_stream_cleanup(void *data)
{
    ngx_stream_rustdesk_rendezvous_ctx_t *ctx = data;

    ngx_queue_t                           *q;
    ngx_stream_rustdesk_rendezvous_reg_t  *reg;

    if (ctx->registered) {
        ngx_log_error(NGX_LOG_INFO, ctx->req.session->connection->log, 0,
                      "rustdesk: stream of peer \"%V\" closed",
                      &ctx->peer.str);

        ngx_stream_rustdesk_rendezvous_stream_unbind(ctx, 1);
    }

    while (!ngx_queue_empty(&ctx->writes)) {
        q = ngx_queue_head(&ctx->writes);
        ngx_queue_remove(q);

        reg = ngx_queue_data(q, ngx_stream_rustdesk_rendezvous_reg_t, queue);
        reg->ctx = NULL;
    }
}
