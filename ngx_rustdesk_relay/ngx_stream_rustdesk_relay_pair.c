/*
 * Pairing (PROTOCOL.md section 7, DESIGN.md "Cross-worker delivery"): the
 * first connection with a uuid waits in its worker, listed in the zone
 * under the uuid with its worker's pid and a serial number; the second
 * takes the entry.  When the two are in different workers, the second
 * one's descriptor, with whatever it sent after its request, goes to the
 * first one's worker over the worker channel, so that a pair is always
 * forwarded inside one process.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_ipc.h"
#include "ngx_stream_rustdesk_relay_module.h"


#define NGX_RUSTDESK_RELAY_IPC_PAIR   1
#define NGX_RUSTDESK_RELAY_TRIES      3    /* stale entries skipped */
#define NGX_RUSTDESK_RELAY_STALE      1000 /* after the pair timeout */


/* What goes with a descriptor to the waiter's worker. */
typedef struct {
    ngx_uint_t                  serial;      /* the waiter's */
    socklen_t                   socklen;
    ngx_sockaddr_t              sockaddr;    /* the client's */
    size_t                      uuid_len;
    u_char                      uuid[NGX_RUSTDESK_RELAY_UUID_MAX];
    ngx_uint_t                  ws;          /* a WebSocket client */
    ngx_uint_t                  pipe;        /* a socketpair standing for
                                                a TLS client (see below) */
    /* followed by the bytes read after the request */
} ngx_stream_rustdesk_relay_handoff_t;


static void ngx_stream_rustdesk_relay_wait(
    ngx_stream_rustdesk_relay_side_t *side);
static void ngx_stream_rustdesk_relay_waiting(ngx_event_t *rev);
static ngx_stream_rustdesk_relay_side_t *ngx_stream_rustdesk_relay_waiter(
    ngx_uint_t serial, ngx_str_t *uuid);
static ngx_int_t ngx_stream_rustdesk_relay_hand_over(
    ngx_stream_rustdesk_relay_side_t *side, ngx_pid_t pid, ngx_uint_t serial);
static ngx_int_t ngx_stream_rustdesk_relay_pipe(
    ngx_stream_rustdesk_relay_side_t *side, ngx_socket_t fd);
static void ngx_stream_rustdesk_relay_detach(ngx_connection_t *c);
static void ngx_stream_rustdesk_relay_ipc_handler(ngx_rustdesk_ipc_t *ipc,
    ngx_uint_t type, ngx_pid_t from, u_char *data, size_t len,
    ngx_socket_t fd);
static ngx_stream_rustdesk_relay_side_t *ngx_stream_rustdesk_relay_adopt(
    ngx_stream_rustdesk_relay_side_t *a,
    ngx_stream_rustdesk_relay_handoff_t *h, u_char *rest, size_t len,
    ngx_socket_t fd);
static ngx_int_t ngx_stream_rustdesk_relay_ticket(
    ngx_stream_rustdesk_relay_side_t *side);
static void ngx_stream_rustdesk_relay_note_pair(
    ngx_stream_rustdesk_relay_side_t *a, ngx_stream_rustdesk_relay_side_t *b);
static void ngx_stream_rustdesk_relay_make_pair(
    ngx_stream_rustdesk_relay_side_t *a, ngx_stream_rustdesk_relay_side_t *b);
static ngx_int_t ngx_stream_rustdesk_relay_keep(
    ngx_stream_rustdesk_relay_side_t *side, u_char *rest, size_t len);
static u_char *ngx_stream_rustdesk_relay_log_error(ngx_log_t *log,
    u_char *buf, size_t len);
static void ngx_stream_rustdesk_relay_empty_handler(ngx_event_t *ev);


/* this worker's */
static ngx_rustdesk_ipc_t  ngx_stream_rustdesk_relay_ipc;
static ngx_rbtree_t        ngx_stream_rustdesk_relay_waiters;
static ngx_rbtree_node_t   ngx_stream_rustdesk_relay_waiters_sentinel;
static ngx_uint_t          ngx_stream_rustdesk_relay_serial;


ngx_int_t
ngx_stream_rustdesk_relay_pair_init(ngx_cycle_t *cycle,
    ngx_rustdesk_ipc_dir_t *dir)
{
    ngx_rbtree_init(&ngx_stream_rustdesk_relay_waiters,
                    &ngx_stream_rustdesk_relay_waiters_sentinel,
                    ngx_rbtree_insert_value);

    ngx_stream_rustdesk_relay_ipc.name = "relay";
    ngx_stream_rustdesk_relay_ipc.dir = dir;
    ngx_stream_rustdesk_relay_ipc.handler =
                                     ngx_stream_rustdesk_relay_ipc_handler;

    if (ngx_stream_rustdesk_relay_stats) {
        ngx_stream_rustdesk_relay_ipc.stats = ngx_stream_rustdesk_relay_stats
                                              + NGX_RUSTDESK_RELAY_S_IPC_SENT;
    }

    return ngx_rustdesk_ipc_open(&ngx_stream_rustdesk_relay_ipc, cycle);
}


void
ngx_stream_rustdesk_relay_pair_exit(ngx_cycle_t *cycle)
{
    ngx_rustdesk_ipc_close(&ngx_stream_rustdesk_relay_ipc);
}


/*
 * A valid RequestRelay arrived on side; rest..rest+len is what the client
 * sent after it, for the partner.
 */

void
ngx_stream_rustdesk_relay_request(ngx_stream_rustdesk_relay_side_t *side,
    u_char *rest, size_t len)
{
    ngx_int_t                               rc;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    side->connection->log->action = "pairing a relay connection";

    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

    if (ngx_stream_rustdesk_relay_keep(side, rest, len) != NGX_OK) {
        side->result = "error";
        ngx_stream_rustdesk_relay_close_side(side);
        return;
    }

    if (lmcf->tickets) {
        rc = ngx_stream_rustdesk_relay_ticket(side);

        if (rc == NGX_AGAIN) {
            /* Redis's answer goes on (..._cluster.c) */
            return;
        }

        if (rc != NGX_OK) {
            side->result = "no_ticket";
            ngx_stream_rustdesk_relay_close_side(side);
            return;
        }
    }

    ngx_stream_rustdesk_relay_pair(side);
}


void
ngx_stream_rustdesk_relay_pair(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_int_t                               rc;
    ngx_pid_t                               pid;
    ngx_uint_t                              i, serial;
    ngx_connection_t                       *c;
    ngx_stream_rustdesk_relay_side_t       *a;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    c = side->connection;
    c->log->action = "pairing a relay connection";

    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

    side->node.key = ++ngx_stream_rustdesk_relay_serial;

    for (i = 0; i < NGX_RUSTDESK_RELAY_TRIES; i++) {

        rc = ngx_rustdesk_relay_waiter_pair(lmcf->zone, &side->uuid,
                              side->node.key,
                              lmcf->pair_timeout + NGX_RUSTDESK_RELAY_STALE,
                              &pid, &serial);

        if (rc == NGX_DECLINED) {
            ngx_stream_rustdesk_relay_wait(side);
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(ngx_rustdesk_relay_zone_full(lmcf->zone), c->log, 0,
                          "rustdesk: relay zone is full, relay request \"%V\" "
                          "refused", &side->uuid);
            side->result = "zone_full";
            ngx_stream_rustdesk_relay_close_side(side);
            return;
        }

        if (pid == ngx_pid) {
            a = ngx_stream_rustdesk_relay_waiter(serial, &side->uuid);

            if (a == NULL) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "rustdesk: partner of relay \"%V\" is gone",
                              &side->uuid);
                side->result = "no_partner";
                ngx_stream_rustdesk_relay_close_side(side);
                return;
            }

            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: relay \"%V\" paired", &side->uuid);

            ngx_stream_rustdesk_relay_make_pair(a, side);
            return;
        }

        rc = ngx_stream_rustdesk_relay_hand_over(side, pid, serial);

        if (rc == NGX_DONE) {
            /* this worker carries its TLS bytes to the partner's */
            return;
        }

        if (rc != NGX_DECLINED) {
            /* handed over, or failed and logged: this session ends */

            if (rc == NGX_OK) {
                /* the partner's worker logs the pair */
                side->quiet = 1;

            } else {
                side->result = "error";
            }

            ngx_stream_rustdesk_relay_close_side(side);
            return;
        }

        /* the waiter's worker died with it: an entry left behind */
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "rustdesk: relay request \"%V\" found only stale entries",
                  &side->uuid);
    side->result = "no_partner";
    ngx_stream_rustdesk_relay_close_side(side);
}


static void
ngx_stream_rustdesk_relay_wait(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_connection_t                       *c;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    c = side->connection;
    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "rustdesk: new relay request \"%V\"", &side->uuid);

    c->log->action = "waiting for the relay partner";

    side->waiting = 1;
    ngx_rbtree_insert(&ngx_stream_rustdesk_relay_waiters, &side->node);
    ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_WAITING, 1);

    ngx_add_timer(c->read, lmcf->pair_timeout);

    ngx_stream_rustdesk_relay_hold(side);
}


void
ngx_stream_rustdesk_relay_hold(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_connection_t  *c;

    c = side->connection;

    /* a pairing in progress outlives a reload: not idle */
    c->idle = 0;
    c->data = side;

    c->read->handler = ngx_stream_rustdesk_relay_waiting;
    c->write->handler = ngx_stream_rustdesk_relay_empty_handler;

    ngx_stream_rustdesk_relay_waiting(c->read);
}


/*
 * While it waits for its partner or for Redis's answer, a client is not
 * read: what it sends stays in the socket for the partner.  A peek tells
 * whether it has gone.
 */

static void
ngx_stream_rustdesk_relay_waiting(ngx_event_t *rev)
{
    u_char                                  byte;
    ssize_t                                 n;
    ngx_err_t                               err;
    ngx_connection_t                       *c;
    ngx_stream_rustdesk_relay_side_t       *side;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    c = rev->data;
    side = c->data;

    if (c->close) {
        side->result = "shutdown";
        ngx_stream_rustdesk_relay_close_side(side);
        return;
    }

    if (rev->timedout) {
        lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: no partner for relay \"%V\" within %M ms",
                      &side->uuid, lmcf->pair_timeout);
        side->result = "no_partner";
        ngx_stream_rustdesk_relay_close_side(side);
        return;
    }

    n = recv(c->fd, &byte, 1, MSG_PEEK);

    /* bytes waiting and a FIN behind them: a client that has closed too */

    if (n == 1 && !rev->pending_eof) {
        return;
    }

    err = ngx_socket_errno;

    if (n == -1 && (err == NGX_EAGAIN || err == NGX_EINTR)) {
        rev->ready = 0;

        if (ngx_handle_read_event(rev, 0) != NGX_OK) {
            ngx_stream_rustdesk_relay_close_side(side);
        }

        return;
    }

    /* closing it cancels the question to Redis (..._cluster.c) */

    ngx_log_error(NGX_LOG_INFO, c->log, n == -1 ? err : 0,
                  "rustdesk: relay client of \"%V\" left %s", &side->uuid,
                  side->ticket ? "while its ticket was asked of redis"
                               : "before its partner came");

    side->result = "closed";
    ngx_stream_rustdesk_relay_close_side(side);
}


/* A waiter leaves: from this worker's tree and from the zone. */

void
ngx_stream_rustdesk_relay_unwait(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    if (!side->waiting) {
        return;
    }

    side->waiting = 0;
    ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_WAITING, -1);

    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

    /* before the tree forgets the serial: ngx_rbtree_delete() zeroes it */
    ngx_rustdesk_relay_waiter_remove(lmcf->zone, &side->uuid, side->node.key);

    ngx_rbtree_delete(&ngx_stream_rustdesk_relay_waiters, &side->node);
}


static ngx_stream_rustdesk_relay_side_t *
ngx_stream_rustdesk_relay_waiter(ngx_uint_t serial, ngx_str_t *uuid)
{
    ngx_rbtree_node_t                 *node, *sentinel;
    ngx_stream_rustdesk_relay_side_t  *side;

    node = ngx_stream_rustdesk_relay_waiters.root;
    sentinel = ngx_stream_rustdesk_relay_waiters.sentinel;

    while (node != sentinel) {
        if (serial != node->key) {
            node = (serial < node->key) ? node->left : node->right;
            continue;
        }

        side = (ngx_stream_rustdesk_relay_side_t *)
                   ((u_char *) node
                    - offsetof(ngx_stream_rustdesk_relay_side_t, node));

        if (side->uuid.len != uuid->len
            || ngx_memcmp(side->uuid.data, uuid->data, uuid->len) != 0)
        {
            return NULL;
        }

        return side;
    }

    return NULL;
}


/*
 * Sends the connection to the waiter's worker.  NGX_OK: sent, this worker
 * lets go of it; NGX_DONE: a TLS connection, whose state cannot move: a
 * socketpair went instead and this worker relays between the two;
 * NGX_DECLINED: that worker is gone; NGX_ERROR: failed.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_hand_over(ngx_stream_rustdesk_relay_side_t *side,
    ngx_pid_t pid, ngx_uint_t serial)
{
    int                                   fds[2];
    u_char                               *buf;
    size_t                                rest, len;
    ngx_int_t                             rc;
    ngx_socket_t                          fd;
    ngx_connection_t                     *c;
    ngx_stream_rustdesk_relay_handoff_t  *h;

    c = side->connection;
    rest = side->buf ? (size_t) (side->buf->last - side->buf->pos) : 0;
    len = sizeof(ngx_stream_rustdesk_relay_handoff_t) + rest;

    buf = ngx_pcalloc(c->pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    h = (ngx_stream_rustdesk_relay_handoff_t *) buf;
    h->serial = serial;
    h->socklen = c->socklen;
    ngx_memcpy(&h->sockaddr, c->sockaddr, c->socklen);
    h->uuid_len = side->uuid.len;
    ngx_memcpy(h->uuid, side->uuid.data, side->uuid.len);
    h->ws = side->ws;

    if (rest) {
        ngx_memcpy(buf + sizeof(ngx_stream_rustdesk_relay_handoff_t),
                   side->buf->pos, rest);
    }

    fd = c->fd;
    fds[0] = -1;

    if (c->ssl) {
        if (socketpair(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0,
                       fds)
            == -1)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, ngx_socket_errno,
                          "rustdesk: socketpair() failed");
            return NGX_ERROR;
        }

        h->pipe = 1;
        fd = fds[1];
    }

    rc = ngx_rustdesk_ipc_send(&ngx_stream_rustdesk_relay_ipc, pid,
                               NGX_RUSTDESK_RELAY_IPC_PAIR, buf, len, fd);

    if (fds[0] != -1) {
        close(fds[1]);

        if (rc == NGX_OK) {
            if (ngx_stream_rustdesk_relay_pipe(side, fds[0]) != NGX_OK) {
                close(fds[0]);
                return NGX_ERROR;
            }

            return NGX_DONE;
        }

        close(fds[0]);
    }

    switch (rc) {

    case NGX_OK:
        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: relay \"%V\" handed to worker %P",
                       &side->uuid, pid);
        ngx_stream_rustdesk_relay_detach(c);
        return NGX_OK;

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: partner of relay \"%V\" was in worker %P, "
                      "which is gone", &side->uuid, pid);
        return NGX_DECLINED;

    case NGX_AGAIN:
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "rustdesk: the channel to worker %P is full, "
                      "relay \"%V\" refused", pid, &side->uuid);
        return NGX_ERROR;

    default:
        return NGX_ERROR;
    }
}


/*
 * A TLS client paired with a partner in another worker: its end of the
 * socketpair went there in its place, and a raw pair here carries the
 * decrypted bytes between the TLS connection and our end.  Limits, usage
 * and the lists are the business of the real pair in the other worker.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_pipe(ngx_stream_rustdesk_relay_side_t *side,
    ngx_socket_t fd)
{
    ngx_pool_t                           *pool;
    ngx_stream_rustdesk_relay_side_t     *b;
    ngx_stream_rustdesk_relay_pair_t     *p;
    ngx_stream_rustdesk_relay_handoff_t   h;

    /* what came after the request went along with the socketpair */

    if (side->buf) {
        ngx_stream_rustdesk_relay_buf_put(side->buf);
        side->buf = NULL;
    }

    ngx_memzero(&h, sizeof(ngx_stream_rustdesk_relay_handoff_t));
    h.socklen = side->connection->socklen;
    ngx_memcpy(&h.sockaddr, side->connection->sockaddr, h.socklen);
    h.pipe = 1;

    b = ngx_stream_rustdesk_relay_adopt(side, &h, NULL, 0, fd);
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pcalloc(side->connection->pool,
                    sizeof(ngx_stream_rustdesk_relay_pair_t));
    if (p == NULL) {
        pool = b->connection->pool;
        ngx_free_connection(b->connection);
        b->connection->fd = (ngx_socket_t) -1;
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, side->connection->log, 0,
                   "rustdesk: relay \"%V\" carried to the partner's worker",
                   &side->uuid);

    /* the partner's worker logs the pair */
    side->quiet = 1;

    p->a = side;
    p->b = b;
    p->pipe = 1;
    p->conf = ngx_stream_get_module_main_conf(side->session,
                                         ngx_stream_rustdesk_relay_module);

    ngx_stream_rustdesk_relay_start(p);

    return NGX_OK;
}


/*
 * The socket lives on in another worker: it must leave this worker's
 * epoll set explicitly, since closing our descriptor does not remove it
 * while the other worker's copy keeps the socket open.
 */

static void
ngx_stream_rustdesk_relay_detach(ngx_connection_t *c)
{
    if (!c->read->active && !c->write->active) {
        return;
    }

    if (ngx_del_conn) {
        ngx_del_conn(c, 0);
        return;
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_stream_rustdesk_relay_ipc_handler(ngx_rustdesk_ipc_t *ipc,
    ngx_uint_t type, ngx_pid_t from, u_char *data, size_t len,
    ngx_socket_t fd)
{
    ngx_str_t                             uuid;
    ngx_stream_rustdesk_relay_side_t     *a, *b;
    ngx_stream_rustdesk_relay_handoff_t   h;

    if (type != NGX_RUSTDESK_RELAY_IPC_PAIR || fd == -1
        || len < sizeof(ngx_stream_rustdesk_relay_handoff_t))
    {
        ngx_log_error(NGX_LOG_ALERT, ipc->log, 0,
                      "rustdesk: unexpected relay worker message %ui "
                      "from %P", type, from);
        if (fd != -1) {
            close(fd);
        }
        return;
    }

    ngx_memcpy(&h, data, sizeof(ngx_stream_rustdesk_relay_handoff_t));

    uuid.data = h.uuid;
    uuid.len = ngx_min(h.uuid_len, NGX_RUSTDESK_RELAY_UUID_MAX);

    a = ngx_stream_rustdesk_relay_waiter(h.serial, &uuid);

    if (a == NULL) {
        /* it gave up (timeout, gone) after the partner took its entry */
        ngx_log_error(NGX_LOG_INFO, ipc->log, 0,
                      "rustdesk: relay \"%V\": the partner from worker %P "
                      "came too late", &uuid, from);
        close(fd);
        return;
    }

    b = ngx_stream_rustdesk_relay_adopt(a, &h,
                          data + sizeof(ngx_stream_rustdesk_relay_handoff_t),
                          len - sizeof(ngx_stream_rustdesk_relay_handoff_t),
                          fd);
    if (b == NULL) {
        close(fd);
        ngx_stream_rustdesk_relay_close_side(a);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, a->connection->log, 0,
                  "rustdesk: relay \"%V\" paired with a connection from "
                  "worker %P", &a->uuid, from);

    ngx_stream_rustdesk_relay_make_pair(a, b);
}


/* A descriptor from another worker becomes a connection of this one. */

static ngx_stream_rustdesk_relay_side_t *
ngx_stream_rustdesk_relay_adopt(ngx_stream_rustdesk_relay_side_t *a,
    ngx_stream_rustdesk_relay_handoff_t *h, u_char *rest, size_t len,
    ngx_socket_t fd)
{
    ngx_log_t                         *log;
    ngx_pool_t                        *pool;
    ngx_connection_t                  *c, *ac;
    ngx_stream_rustdesk_relay_side_t  *b;

    ac = a->connection;

    if (h->socklen == 0 || h->socklen > sizeof(ngx_sockaddr_t)) {
        return NULL;
    }

    pool = ngx_create_pool(1024, ac->log);
    if (pool == NULL) {
        return NULL;
    }

    b = ngx_pcalloc(pool, sizeof(ngx_stream_rustdesk_relay_side_t));
    log = ngx_palloc(pool, sizeof(ngx_log_t));

    if (b == NULL || log == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    *log = *ac->log;
    log->handler = ngx_stream_rustdesk_relay_log_error;
    log->data = b;
    log->action = "relaying";
    pool->log = log;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    c->pool = pool;
    c->log = log;
    c->type = SOCK_STREAM;
    c->listening = ac->listening;
    c->local_sockaddr = ac->local_sockaddr;
    c->local_socklen = ac->local_socklen;
    c->start_time = ngx_current_msec;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    log->connection = c->number;

    c->log_error = NGX_ERROR_INFO;

    if (h->pipe) {
        /* a socketpair: no TCP options */
        c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    }

    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;

    c->sockaddr = ngx_palloc(pool, h->socklen);
    c->addr_text.data = ngx_pnalloc(pool, NGX_SOCKADDR_STRLEN);

    if (c->sockaddr == NULL || c->addr_text.data == NULL) {
        goto failed;
    }

    ngx_memcpy(c->sockaddr, &h->sockaddr, h->socklen);
    c->socklen = h->socklen;
    c->addr_text.len = ngx_sock_ntop(c->sockaddr, c->socklen,
                                     c->addr_text.data, NGX_SOCKADDR_STRLEN, 0);

    c->read->log = log;
    c->write->log = log;
    c->read->ready = 1;       /* bytes may wait in the socket already */
    c->write->ready = 1;

    b->connection = c;
    b->uuid = a->uuid;
    b->ws = h->ws;
    b->ip.data = b->ip_text;
    b->ip.len = ngx_rustdesk_relay_sockaddr_ip(c->sockaddr, b->ip_text);

    c->data = b;

    if (ngx_stream_rustdesk_relay_keep(b, rest, len) != NGX_OK) {
        goto failed;
    }

    return b;

failed:

    /* the caller closes fd; the slot must not look like an open one */
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
    ngx_destroy_pool(pool);

    return NULL;
}


static void
ngx_stream_rustdesk_relay_make_pair(ngx_stream_rustdesk_relay_side_t *a,
    ngx_stream_rustdesk_relay_side_t *b)
{
    ngx_connection_t                  *c;
    ngx_stream_rustdesk_relay_pair_t  *p;

    c = a->connection;

    ngx_stream_rustdesk_relay_unwait(a);

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    p = ngx_pcalloc(c->pool, sizeof(ngx_stream_rustdesk_relay_pair_t));
    if (p == NULL) {
        a->result = "error";
        ngx_stream_rustdesk_relay_close_side(b);
        ngx_stream_rustdesk_relay_close_side(a);
        return;
    }

    ngx_stream_rustdesk_relay_note_pair(a, b);

    p->a = a;
    p->b = b;
    p->conf = ngx_stream_get_module_main_conf(a->session,
                                         ngx_stream_rustdesk_relay_module);

    ngx_stream_rustdesk_relay_start(p);
}


/*
 * rustdesk_relay_tickets: each of a session's two connections takes a
 * ticket that this nginx's rendezvous left when it passed the session's
 * RequestRelay or RelayResponse on (common/ngx_rustdesk_brokered.c), or,
 * in cluster mode, that the rendezvous of any host left in Redis
 * (..._cluster.c); without one, the connection never meets a brokered
 * half.  NGX_AGAIN: Redis was asked.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_ticket(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_int_t                               rc;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_stream_get_module_main_conf(side->session,
                                           ngx_stream_rustdesk_relay_module);

    side->peer_id.data = ngx_pnalloc(side->connection->pool,
                                     NGX_RUSTDESK_BROKERED_ID_MAX);
    if (side->peer_id.data == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    if (lmcf->brokered) {
        rc = ngx_rustdesk_brokered_take(lmcf->brokered, &side->uuid,
                                        ngx_current_msec, &side->peer_id);
    }

    if (rc == NGX_OK) {
        ngx_stream_rustdesk_relay_cluster_spend(side);
        return NGX_OK;
    }

    side->peer_id.len = 0;

    if (rc == NGX_DECLINED
        && ngx_rustdesk_cluster_on(&lmcf->shared->cluster))
    {
        return ngx_stream_rustdesk_relay_cluster_ticket(side);
    }

    ngx_log_error(NGX_LOG_INFO, side->connection->log, 0,
                  "rustdesk: relay request \"%V\" refused: %s", &side->uuid,
                  rc == NGX_BUSY ? "its two connections came already"
                                 : "no session brokered here (or expired)");

    return NGX_DECLINED;
}


/*
 * a's log line tells of the pair (b's session, if b has one here, ends
 * quietly): b's address, and the id of the peer asked to relay when this
 * nginx's rendezvous brokered the session.
 */

static void
ngx_stream_rustdesk_relay_note_pair(ngx_stream_rustdesk_relay_side_t *a,
    ngx_stream_rustdesk_relay_side_t *b)
{
    ngx_connection_t                       *c;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    c = b->connection;
    b->quiet = 1;

    a->partner.data = ngx_pnalloc(a->connection->pool, NGX_SOCKADDR_STRLEN);
    if (a->partner.data) {
        a->partner.len = ngx_sock_ntop(c->sockaddr, c->socklen,
                                       a->partner.data, NGX_SOCKADDR_STRLEN,
                                       1);
    }

    lmcf = ngx_stream_get_module_main_conf(a->session,
                                           ngx_stream_rustdesk_relay_module);

    if (lmcf->brokered == NULL || a->peer_id.data) {
        /* with tickets, a has the id already */
        return;
    }

    a->peer_id.data = ngx_pnalloc(a->connection->pool,
                                  NGX_RUSTDESK_BROKERED_ID_MAX);
    if (a->peer_id.data == NULL) {
        return;
    }

    if (ngx_rustdesk_brokered_find(lmcf->brokered, &a->uuid, ngx_current_msec,
                                   &a->peer_id)
        != NGX_OK)
    {
        a->peer_id.len = 0;
    }
}


/* Bytes the client sent after its request: they go to the partner. */

static ngx_int_t
ngx_stream_rustdesk_relay_keep(ngx_stream_rustdesk_relay_side_t *side,
    u_char *rest, size_t len)
{
    ngx_buf_t  *b;

    if (len == 0) {
        return NGX_OK;
    }

    b = ngx_stream_rustdesk_relay_buf_get(len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->pos, rest, len);
    side->buf = b;

    return NGX_OK;
}


static u_char *
ngx_stream_rustdesk_relay_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                            *p;
    ngx_stream_rustdesk_relay_side_t  *side;

    p = buf;

    if (log->action) {
        p = ngx_snprintf(buf, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    side = log->data;

    return ngx_snprintf(buf, len, ", client: %V, passed by another worker",
                        &side->connection->addr_text);
}


static void
ngx_stream_rustdesk_relay_empty_handler(ngx_event_t *ev)
{
    return;
}
