/*
 * Delivery of B's answers to the requester A (PROTOCOL.md section 6,
 * DESIGN.md "Cross-worker delivery").
 *
 * A's PunchHoleRequest or RequestRelay arrives on a TCP connection held by
 * one worker; B's answer (PunchHoleSent, LocalAddr, RelayResponse) comes on
 * a new connection that any worker may have accepted.  The zone maps A's
 * address to the pid of the worker holding A; each worker keeps its own
 * tree of waiting sessions by address.  An answer for a session of this
 * worker is written at once; one for another worker travels through that
 * worker's channel, encoded, and is written there.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"
#include "ngx_rustdesk_ipc.h"



static void ngx_stream_rustdesk_rendezvous_ipc_handler(ngx_rustdesk_ipc_t *ipc,
    ngx_uint_t type, ngx_pid_t from, u_char *data, size_t len,
    ngx_socket_t fd);
static void ngx_stream_rustdesk_rendezvous_write_answer(
    ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *a, u_char *data,
    size_t len, ngx_pid_t from, ngx_log_t *log);
static void ngx_stream_rustdesk_rendezvous_wait_cleanup(void *data);


/* this worker's state */
static ngx_rbtree_t        ngx_stream_rustdesk_rendezvous_waiting;
static ngx_rbtree_node_t   ngx_stream_rustdesk_rendezvous_waiting_sentinel;
static ngx_rustdesk_ipc_t  ngx_stream_rustdesk_rendezvous_ipc;


ngx_int_t
ngx_stream_rustdesk_rendezvous_deliver_init(ngx_cycle_t *cycle,
    ngx_rustdesk_peer_zone_t *z)
{
    ngx_rustdesk_ipc_t  *ipc;

    ngx_rbtree_init(&ngx_stream_rustdesk_rendezvous_waiting,
                    &ngx_stream_rustdesk_rendezvous_waiting_sentinel,
                    ngx_rustdesk_ip_rbtree_insert);

    if (ngx_stream_rustdesk_rendezvous_stream_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    ipc = &ngx_stream_rustdesk_rendezvous_ipc;

    ipc->name = "rendezvous";
    ipc->dir = z->channel;
    ipc->handler = ngx_stream_rustdesk_rendezvous_ipc_handler;
    ipc->data = z;

    if (ngx_stream_rustdesk_rendezvous_stats) {
        ipc->stats = ngx_stream_rustdesk_rendezvous_stats
                     + NGX_RUSTDESK_RDV_IPC_SENT;
    }

    return ngx_rustdesk_ipc_open(ipc, cycle);
}


void
ngx_stream_rustdesk_rendezvous_deliver_exit(ngx_cycle_t *cycle)
{
    ngx_rustdesk_ipc_close(&ngx_stream_rustdesk_rendezvous_ipc);
}


/* A's session waits for an answer: in the zone and in this worker's tree. */

ngx_int_t
ngx_stream_rustdesk_rendezvous_wait(ngx_stream_session_t *s)
{
    ngx_pool_cleanup_t                          *cln;
    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);
    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    /* a requester waiting for its answer is not idle (see tcp_start) */
    s->connection->idle = 0;

    if (!ctx->waiting) {
        cln = ngx_pool_cleanup_add(s->connection->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_stream_rustdesk_rendezvous_wait_cleanup;
        cln->data = s;

        ctx->wait.ip = ctx->req.addr;
        ctx->wait.node.key = ngx_crc32_short((u_char *) &ctx->req.addr,
                                             sizeof(ngx_rustdesk_ip_t));

        ngx_rbtree_insert(&ngx_stream_rustdesk_rendezvous_waiting,
                          &ctx->wait.node);
        ctx->waiting = 1;
    }

    /* a retry on the same connection refreshes the entry */

    ngx_rustdesk_waiter_add(rmcf->zone, &ctx->req.addr, ngx_pid,
                            ngx_current_msec, s->connection->log);

    return NGX_OK;
}


ngx_int_t
ngx_stream_rustdesk_rendezvous_ipc_send(ngx_pid_t pid, ngx_uint_t type,
    u_char *data, size_t len)
{
    return ngx_rustdesk_ipc_send(&ngx_stream_rustdesk_rendezvous_ipc, pid,
                                 type, data, len, -1);
}


/* B's answer m for A, from B's session s. */

void
ngx_stream_rustdesk_rendezvous_answer(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *a, ngx_rustdesk_msg_t *m)
{
    u_char                                      *buf, *last;
    size_t                                       len;
    ngx_int_t                                    rc;
    ngx_pid_t                                    pid;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    pid = ngx_rustdesk_waiter_take(rmcf->zone, a);

    if (pid == NGX_INVALID_PID) {

        /* A may wait on another host of the cluster */

        if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
            && ngx_stream_rustdesk_rendezvous_channel_answer(rmcf, a, m,
                                                     s->connection->pool)
               == NGX_OK)
        {
            ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                          "rustdesk: %s for a requester not waiting here, "
                          "passed to the cluster", ngx_rustdesk_msg_name(m));
            return;
        }

        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "rustdesk: %s for a requester that is not waiting",
                      ngx_rustdesk_msg_name(m));
        return;
    }

    len = sizeof(ngx_rustdesk_ip_t) + ngx_rustdesk_msg_size(m, 0);

    buf = ngx_pnalloc(s->connection->pool, len);
    if (buf == NULL) {
        return;
    }

    ngx_memcpy(buf, a, sizeof(ngx_rustdesk_ip_t));
    last = ngx_rustdesk_msg_pack(m, 0, buf + sizeof(ngx_rustdesk_ip_t));

    rc = ngx_rustdesk_ipc_send(&ngx_stream_rustdesk_rendezvous_ipc, pid,
                               NGX_RUSTDESK_IPC_ANSWER, buf, last - buf, -1);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "rustdesk: the worker %P holding the requester "
                      "is gone", pid);

    } else if (rc == NGX_AGAIN) {
        ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                      "rustdesk: the channel to worker %P is full, "
                      "answer dropped", pid);
    }
}


/*
 * An answer from another host for a requester A that waits here: to the
 * worker holding A, as answer() does.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_answer_raw(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a, u_char *msg, size_t len, ngx_log_t *log)
{
    u_char     *buf;
    ngx_int_t   rc;
    ngx_pid_t   pid;

    pid = ngx_rustdesk_waiter_take(z, a);

    if (pid == NGX_INVALID_PID) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "rustdesk: answer from another host for a requester "
                      "that is not waiting");
        return NGX_DECLINED;
    }

    buf = ngx_alloc(sizeof(ngx_rustdesk_ip_t) + len, log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(buf, a, sizeof(ngx_rustdesk_ip_t));
    ngx_memcpy(buf + sizeof(ngx_rustdesk_ip_t), msg, len);

    rc = ngx_rustdesk_ipc_send(&ngx_stream_rustdesk_rendezvous_ipc, pid,
                               NGX_RUSTDESK_IPC_ANSWER, buf,
                               sizeof(ngx_rustdesk_ip_t) + len, -1);
    ngx_free(buf);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "rustdesk: the worker %P holding the requester "
                      "is gone", pid);

    } else if (rc == NGX_AGAIN) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: the channel to worker %P is full, "
                      "answer dropped", pid);
    }

    return NGX_OK;
}


static void
ngx_stream_rustdesk_rendezvous_ipc_handler(ngx_rustdesk_ipc_t *ipc,
    ngx_uint_t type, ngx_pid_t from, u_char *data, size_t len,
    ngx_socket_t fd)
{
    ngx_rustdesk_ip_t  a;

    if (fd != -1) {
        close(fd);
    }

    if (type == NGX_RUSTDESK_IPC_TO_PEER) {
        ngx_stream_rustdesk_rendezvous_stream_deliver(ipc->data, data, len,
                                                      from, ipc->log);
        return;
    }

    if (type != NGX_RUSTDESK_IPC_ANSWER || len < sizeof(ngx_rustdesk_ip_t)) {
        ngx_log_error(NGX_LOG_ALERT, ipc->log, 0,
                      "rustdesk: unexpected worker message %ui from %P",
                      type, from);
        return;
    }

    ngx_memcpy(&a, data, sizeof(ngx_rustdesk_ip_t));

    ngx_stream_rustdesk_rendezvous_write_answer(ipc->data, &a,
                                                data + sizeof(a),
                                                len - sizeof(a), from,
                                                ipc->log);
}


static void
ngx_stream_rustdesk_rendezvous_write_answer(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a, u_char *data, size_t len, ngx_pid_t from,
    ngx_log_t *log)
{
    ngx_rustdesk_ip_node_t                *n;
    ngx_stream_rustdesk_rendezvous_ctx_t  *ctx;

    n = ngx_rustdesk_ip_lookup(&ngx_stream_rustdesk_rendezvous_waiting, a,
                               ngx_crc32_short((u_char *) a,
                                               sizeof(ngx_rustdesk_ip_t)));
    if (n == NULL) {
        /* A closed its connection meanwhile */
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, log, 0,
                       "rustdesk: answer for a requester that left");
        return;
    }

    ctx = (ngx_stream_rustdesk_rendezvous_ctx_t *)
              ((u_char *) n - offsetof(ngx_stream_rustdesk_rendezvous_ctx_t,
                                       wait));

    ngx_rustdesk_peer_count_answer(z, from != ngx_pid);

    if (from != ngx_pid) {
        ngx_log_error(NGX_LOG_INFO, ctx->req.session->connection->log, 0,
                      "rustdesk: answer relayed from worker %P", from);
    }

    if (ngx_rustdesk_tcp_send_raw(ctx->req.stream, data, len) != NGX_OK) {
        ngx_rustdesk_tcp_fail(ctx->req.stream);
    }
}


static void
ngx_stream_rustdesk_rendezvous_wait_cleanup(void *data)
{
    ngx_stream_session_t *s = data;

    ngx_stream_rustdesk_rendezvous_ctx_t        *ctx;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);
    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    ngx_rbtree_delete(&ngx_stream_rustdesk_rendezvous_waiting,
                      &ctx->wait.node);

    ngx_rustdesk_waiter_forget(rmcf->zone, &ctx->req.addr, ngx_pid);
}
