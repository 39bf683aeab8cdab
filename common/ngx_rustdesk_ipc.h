/*
 * Cross-worker messages (DESIGN.md "Cross-worker delivery"): each worker
 * has a Unix datagram socket in Linux's abstract namespace, named after
 * its master and its own pid, so any worker can write to any other by pid
 * and a dead worker's name simply refuses.  A message is one datagram: a
 * fixed header, a payload, and optionally one descriptor (SCM_RIGHTS);
 * the kernel adds the sender's credentials, and only messages from our
 * own user are taken.
 */

#ifndef _NGX_RUSTDESK_IPC_H_INCLUDED_
#define _NGX_RUSTDESK_IPC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


#define NGX_RUSTDESK_IPC_MAX  (64 * 1024)

/*
 * Counters a module may point ipc->stats at (its metrics slot), in this
 * order: messages sent, messages received and handled, messages that
 * never left (the receiver gone, its socket full for too long, our queue
 * full).
 */
#define NGX_RUSTDESK_IPC_SENT       0
#define NGX_RUSTDESK_IPC_RECEIVED   1
#define NGX_RUSTDESK_IPC_DROPPED    2


typedef struct ngx_rustdesk_ipc_s  ngx_rustdesk_ipc_t;

/* fd is -1 unless a descriptor came with the message; it is the handler's. */
typedef void (*ngx_rustdesk_ipc_handler_pt)(ngx_rustdesk_ipc_t *ipc,
    ngx_uint_t type, ngx_pid_t from, u_char *data, size_t len,
    ngx_socket_t fd);


struct ngx_rustdesk_ipc_s {
    const char                   *name;       /* per module */
    ngx_rustdesk_ipc_handler_pt   handler;
    void                         *data;
    ngx_connection_t             *connection;
    ngx_pid_t                     master;
    u_char                       *buf;
    ngx_log_t                    *log;

    ngx_queue_t                   pending;    /* waiting for room */
    ngx_uint_t                    npending;
    ngx_uint_t                    nfds;       /* of them with a descriptor */
    ngx_event_t                   retry;

    ngx_atomic_t                 *stats;      /* NGX_RUSTDESK_IPC_*, or NULL */
};


typedef struct {
    uint32_t                      type;
    uint32_t                      len;
    ngx_pid_t                     from;
} ngx_rustdesk_ipc_header_t;


/* In init_process: opens this worker's socket and listens on it. */
ngx_int_t ngx_rustdesk_ipc_open(ngx_rustdesk_ipc_t *ipc, ngx_cycle_t *cycle);

/* In exit_process. */
void ngx_rustdesk_ipc_close(ngx_rustdesk_ipc_t *ipc);

/*
 * Sends to the worker with pid "to" (to ourselves: the handler is called
 * at once).  NGX_OK: sent, or queued here while the receiver's socket is
 * full (Linux queues only net.unix.max_dgram_qlen datagrams, 10 by
 * default) and sent within a few milliseconds; NGX_DECLINED: no such
 * worker any more; NGX_AGAIN: our own queue is full too; NGX_ERROR:
 * anything else.  A descriptor passed is duplicated into the receiver;
 * the sender still owns its copy.
 */
ngx_int_t ngx_rustdesk_ipc_send(ngx_rustdesk_ipc_t *ipc, ngx_pid_t to,
    ngx_uint_t type, u_char *data, size_t len, ngx_socket_t fd);


#endif /* _NGX_RUSTDESK_IPC_H_INCLUDED_ */
