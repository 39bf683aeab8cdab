/*
 * Cross-worker messages (DESIGN.md "Cross-worker delivery"): each worker
 * has a Unix datagram socket named "<module>.<master pid>.<worker pid>" in
 * a directory that only nginx's worker user can enter (rustdesk_channel_dir,
 * made or checked by the master when it loads the configuration).  Any
 * worker can write to any other by pid, and a dead worker's name refuses;
 * no other user can bind a worker's name before it starts, take a dead
 * worker's name, or write to a worker, so a sender knows that its receiver
 * is one of nginx's workers.  A message is one datagram: a fixed header, a
 * payload, and optionally one descriptor (SCM_RIGHTS); the kernel adds the
 * sender's credentials, and only messages from our own user and from the
 * pid the header names are taken.
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


/*
 * The longest directory path that leaves room in a socket address
 * (sun_path, 108 bytes with its NUL) for "/rendezvous.<pid>.<pid>".
 */
#define NGX_RUSTDESK_IPC_DIR_MAX                                             \
    (108 - sizeof("/rendezvous..") - 2 * (NGX_INT32_LEN - 1))


typedef struct ngx_rustdesk_ipc_s  ngx_rustdesk_ipc_t;


/* The directory of the channel names: one per configuration. */
typedef struct {
    ngx_str_t                     path;       /* NUL-terminated; data NULL:
                                                 not configured */
    ngx_cycle_t                  *cycle;      /* the configuration's */
    ngx_uint_t                    ready;      /* made or checked */
} ngx_rustdesk_ipc_dir_t;

/* fd is -1 unless a descriptor came with the message; it is the handler's. */
typedef void (*ngx_rustdesk_ipc_handler_pt)(ngx_rustdesk_ipc_t *ipc,
    ngx_uint_t type, ngx_pid_t from, u_char *data, size_t len,
    ngx_socket_t fd);


struct ngx_rustdesk_ipc_s {
    const char                   *name;       /* per module, at most
                                                 "rendezvous" long */
    ngx_rustdesk_ipc_dir_t       *dir;
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


/*
 * At configuration time, in the master, before workers start: makes the
 * directory (the default: "ngx_rustdesk" beside nginx's pid file), owned
 * by nginx's worker user with mode 0700, or checks that the one there is
 * that private, and removes the names of workers that are gone.  Refuses
 * (NGX_ERROR, logged at emerg) a directory another user owns or can enter,
 * or one in a parent directory that others could replace it in.  Call it
 * when nginx's user and pid file are known and a failure still leaves a
 * reload harmless: from the init of a shared zone.  Done once per
 * configuration; later calls return at once.
 */
ngx_int_t ngx_rustdesk_ipc_dir_init(ngx_rustdesk_ipc_dir_t *dir,
    ngx_log_t *log);

/*
 * In init_process: binds this worker's name (replacing a stale one a dead
 * process with our pid left) and listens on it.
 */
ngx_int_t ngx_rustdesk_ipc_open(ngx_rustdesk_ipc_t *ipc, ngx_cycle_t *cycle);

/* In exit_process: closes the socket and removes our name. */
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
