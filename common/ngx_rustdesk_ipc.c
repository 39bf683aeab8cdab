/*
 * Cross-worker messages over abstract Unix datagram sockets.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <sys/un.h>

#include "ngx_rustdesk_ipc.h"
#include "ngx_rustdesk_metrics.h"


#define NGX_RUSTDESK_IPC_PENDING_MAX   4096
#define NGX_RUSTDESK_IPC_RETRY         1        /* ms */
#define NGX_RUSTDESK_IPC_GIVE_UP       5000     /* ms */
#define NGX_RUSTDESK_IPC_FULL          16       /* full workers per retry */


/* A message the receiver had no room for yet. */
typedef struct {
    ngx_queue_t                 queue;
    ngx_pid_t                   to;
    ngx_socket_t                fd;           /* our duplicate, or -1 */
    ngx_msec_t                  since;
    ngx_rustdesk_ipc_header_t   h;
    u_char                      data[1];
} ngx_rustdesk_ipc_pending_t;


static ngx_int_t ngx_rustdesk_ipc_sendmsg(ngx_rustdesk_ipc_t *ipc,
    ngx_pid_t to, ngx_rustdesk_ipc_header_t *h, u_char *data,
    ngx_socket_t fd);
static ngx_int_t ngx_rustdesk_ipc_queue(ngx_rustdesk_ipc_t *ipc, ngx_pid_t to,
    ngx_rustdesk_ipc_header_t *h, u_char *data, ngx_socket_t fd);
static ngx_uint_t ngx_rustdesk_ipc_waiting(ngx_rustdesk_ipc_t *ipc,
    ngx_pid_t to);
static void ngx_rustdesk_ipc_retry(ngx_event_t *ev);
static void ngx_rustdesk_ipc_drop(ngx_rustdesk_ipc_t *ipc,
    ngx_rustdesk_ipc_pending_t *m);
static void ngx_rustdesk_ipc_read_handler(ngx_event_t *rev);
static socklen_t ngx_rustdesk_ipc_addr(ngx_rustdesk_ipc_t *ipc,
    ngx_pid_t pid, struct sockaddr_un *sun);


ngx_int_t
ngx_rustdesk_ipc_open(ngx_rustdesk_ipc_t *ipc, ngx_cycle_t *cycle)
{
    int                  fd, on;
    socklen_t            len;
    ngx_event_t         *rev;
    ngx_connection_t    *c;
    struct sockaddr_un   sun;

    ipc->master = getppid();
    ipc->log = cycle->log;

    ngx_queue_init(&ipc->pending);
    ipc->npending = 0;

    ipc->retry.handler = ngx_rustdesk_ipc_retry;
    ipc->retry.data = ipc;
    ipc->retry.log = cycle->log;
    ipc->retry.cancelable = 1;

    ipc->buf = ngx_palloc(cycle->pool, NGX_RUSTDESK_IPC_MAX);
    if (ipc->buf == NULL) {
        return NGX_ERROR;
    }

    fd = socket(AF_UNIX, SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "rustdesk: socket(AF_UNIX) failed");
        return NGX_ERROR;
    }

    len = ngx_rustdesk_ipc_addr(ipc, ngx_pid, &sun);

    /* the sender's credentials come with every message (checked below) */

    on = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(int)) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "rustdesk: setsockopt(SO_PASSCRED) failed");
        close(fd);
        return NGX_ERROR;
    }

    if (bind(fd, (struct sockaddr *) &sun, len) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "rustdesk: bind() of the %s worker channel failed",
                      ipc->name);
        close(fd);
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        close(fd);
        return NGX_ERROR;
    }

    c->data = ipc;

    rev = c->read;
    rev->log = cycle->log;
    rev->handler = ngx_rustdesk_ipc_read_handler;

    /* not a client: graceful exit neither waits for it nor reports it */
    rev->channel = 1;

    if (ngx_add_event(rev, NGX_READ_EVENT, 0) == NGX_ERROR) {
        ngx_free_connection(c);
        close(fd);
        return NGX_ERROR;
    }

    ipc->connection = c;

    return NGX_OK;
}


void
ngx_rustdesk_ipc_close(ngx_rustdesk_ipc_t *ipc)
{
    ngx_queue_t                 *q;
    ngx_rustdesk_ipc_pending_t  *m;

    if (ipc->retry.timer_set) {
        ngx_del_timer(&ipc->retry);
    }

    while (ipc->npending) {
        q = ngx_queue_head(&ipc->pending);
        m = ngx_queue_data(q, ngx_rustdesk_ipc_pending_t, queue);
        ngx_rustdesk_ipc_drop(ipc, m);
    }

    if (ipc->connection) {
        ngx_close_connection(ipc->connection);
        ipc->connection = NULL;
    }
}


ngx_int_t
ngx_rustdesk_ipc_send(ngx_rustdesk_ipc_t *ipc, ngx_pid_t to, ngx_uint_t type,
    u_char *data, size_t len, ngx_socket_t fd)
{
    ngx_int_t                   rc;
    ngx_rustdesk_ipc_header_t   h;

    if (ipc->connection == NULL) {
        return NGX_ERROR;
    }

    if (sizeof(h) + len > NGX_RUSTDESK_IPC_MAX) {
        ngx_log_error(NGX_LOG_ALERT, ipc->log, 0,
                      "rustdesk: worker message of %uz bytes is too large",
                      len);
        return NGX_ERROR;
    }

    if (to == ngx_pid && fd == -1) {
        ipc->handler(ipc, type, ngx_pid, data, len, -1);
        return NGX_OK;
    }

    h.type = (uint32_t) type;
    h.len = (uint32_t) len;
    h.from = ngx_pid;

    /* after the ones already waiting for that worker: order is per worker */

    if (ngx_rustdesk_ipc_waiting(ipc, to)) {
        return ngx_rustdesk_ipc_queue(ipc, to, &h, data, fd);
    }

    rc = ngx_rustdesk_ipc_sendmsg(ipc, to, &h, data, fd);

    if (rc == NGX_AGAIN) {
        return ngx_rustdesk_ipc_queue(ipc, to, &h, data, fd);
    }

    if (rc != NGX_OK) {
        ngx_rustdesk_stat_add(ipc->stats, NGX_RUSTDESK_IPC_DROPPED, 1);
    }

    return rc;
}


static ngx_int_t
ngx_rustdesk_ipc_sendmsg(ngx_rustdesk_ipc_t *ipc, ngx_pid_t to,
    ngx_rustdesk_ipc_header_t *h, u_char *data, ngx_socket_t fd)
{
    ssize_t              n;
    ngx_err_t            err;
    struct iovec         iov[2];
    struct msghdr        msg;
    struct sockaddr_un   sun;

    union {
        struct cmsghdr   cm;
        char             space[CMSG_SPACE(sizeof(int))];
    } cmsg;

    iov[0].iov_base = h;
    iov[0].iov_len = sizeof(ngx_rustdesk_ipc_header_t);
    iov[1].iov_base = data;
    iov[1].iov_len = h->len;

    ngx_memzero(&msg, sizeof(struct msghdr));

    msg.msg_name = &sun;
    msg.msg_namelen = ngx_rustdesk_ipc_addr(ipc, to, &sun);
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;

    if (fd != -1) {
        ngx_memzero(&cmsg, sizeof(cmsg));

        msg.msg_control = &cmsg;
        msg.msg_controllen = sizeof(cmsg);

        cmsg.cm.cmsg_len = CMSG_LEN(sizeof(int));
        cmsg.cm.cmsg_level = SOL_SOCKET;
        cmsg.cm.cmsg_type = SCM_RIGHTS;

        ngx_memcpy(CMSG_DATA(&cmsg.cm), &fd, sizeof(int));
    }

    n = sendmsg(ipc->connection->fd, &msg, 0);

    if (n != -1) {
        ngx_rustdesk_stat_add(ipc->stats, NGX_RUSTDESK_IPC_SENT, 1);
        return NGX_OK;
    }

    err = ngx_socket_errno;

    if (err == ECONNREFUSED || err == ENOENT) {
        return NGX_DECLINED;
    }

    if (err == NGX_EAGAIN || err == ENOBUFS) {
        return NGX_AGAIN;
    }

    ngx_log_error(NGX_LOG_ERR, ipc->log, err,
                  "rustdesk: sendmsg() to worker %P failed", to);

    return NGX_ERROR;
}


/* A copy of the message (and of the descriptor) until there is room. */

static ngx_int_t
ngx_rustdesk_ipc_queue(ngx_rustdesk_ipc_t *ipc, ngx_pid_t to,
    ngx_rustdesk_ipc_header_t *h, u_char *data, ngx_socket_t fd)
{
    ngx_rustdesk_ipc_pending_t  *m;

    if (ipc->npending >= NGX_RUSTDESK_IPC_PENDING_MAX) {
        ngx_rustdesk_stat_add(ipc->stats, NGX_RUSTDESK_IPC_DROPPED, 1);
        return NGX_AGAIN;
    }

    m = ngx_alloc(offsetof(ngx_rustdesk_ipc_pending_t, data) + h->len,
                  ipc->log);
    if (m == NULL) {
        ngx_rustdesk_stat_add(ipc->stats, NGX_RUSTDESK_IPC_DROPPED, 1);
        return NGX_ERROR;
    }

    m->fd = -1;

    if (fd != -1) {
        m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

        if (m->fd == -1) {
            ngx_log_error(NGX_LOG_ALERT, ipc->log, ngx_errno,
                          "rustdesk: fcntl(F_DUPFD_CLOEXEC) failed");
            ngx_free(m);
            return NGX_ERROR;
        }
    }

    m->to = to;
    m->since = ngx_current_msec;
    m->h = *h;
    ngx_memcpy(m->data, data, h->len);

    ngx_queue_insert_tail(&ipc->pending, &m->queue);
    ipc->npending++;

    /* a client's descriptor in the queue: a graceful exit waits for it */

    if (m->fd != -1) {
        ipc->nfds++;
        ipc->retry.cancelable = 0;
    }

    if (!ipc->retry.timer_set) {
        ngx_add_timer(&ipc->retry, NGX_RUSTDESK_IPC_RETRY);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_rustdesk_ipc_waiting(ngx_rustdesk_ipc_t *ipc, ngx_pid_t to)
{
    ngx_queue_t                 *q;
    ngx_rustdesk_ipc_pending_t  *m;

    for (q = ngx_queue_head(&ipc->pending);
         q != ngx_queue_sentinel(&ipc->pending);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_rustdesk_ipc_pending_t, queue);

        if (m->to == to) {
            return 1;
        }
    }

    return 0;
}


/*
 * Tries every queued message in order; a worker whose socket is still
 * full is skipped for the rest of this pass (its later messages wait
 * behind its first), so that one slow worker holds up no other.
 */

static void
ngx_rustdesk_ipc_retry(ngx_event_t *ev)
{
    ngx_int_t                    rc;
    ngx_uint_t                   i, nfull;
    ngx_queue_t                 *q, *next;
    ngx_rustdesk_ipc_t          *ipc;
    ngx_rustdesk_ipc_pending_t  *m;
    ngx_pid_t                    full[NGX_RUSTDESK_IPC_FULL];

    ipc = ev->data;
    nfull = 0;

    for (q = ngx_queue_head(&ipc->pending);
         q != ngx_queue_sentinel(&ipc->pending);
         q = next)
    {
        next = ngx_queue_next(q);
        m = ngx_queue_data(q, ngx_rustdesk_ipc_pending_t, queue);

        for (i = 0; i < nfull; i++) {
            if (full[i] == m->to) {
                break;
            }
        }

        if (i < nfull) {
            continue;
        }

        rc = ngx_rustdesk_ipc_sendmsg(ipc, m->to, &m->h, m->data, m->fd);

        if (rc == NGX_AGAIN) {
            if (ngx_current_msec - m->since < NGX_RUSTDESK_IPC_GIVE_UP) {
                if (nfull == NGX_RUSTDESK_IPC_FULL) {
                    break;
                }

                full[nfull++] = m->to;
                continue;
            }

            ngx_log_error(NGX_LOG_WARN, ipc->log, 0,
                          "rustdesk: worker %P has not read its %s channel "
                          "for %M ms, message dropped", m->to, ipc->name,
                          ngx_current_msec - m->since);

        } else if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_INFO, ipc->log, 0,
                          "rustdesk: worker %P is gone, %s message dropped",
                          m->to, ipc->name);
        }

        ngx_rustdesk_ipc_drop(ipc, m);
    }

    if (ipc->npending) {
        ngx_add_timer(ev, NGX_RUSTDESK_IPC_RETRY);
    }
}


static void
ngx_rustdesk_ipc_drop(ngx_rustdesk_ipc_t *ipc, ngx_rustdesk_ipc_pending_t *m)
{
    ngx_queue_remove(&m->queue);
    ipc->npending--;

    ngx_rustdesk_stat_add(ipc->stats, NGX_RUSTDESK_IPC_DROPPED, 1);

    if (m->fd != -1) {
        close(m->fd);

        if (--ipc->nfds == 0) {
            ipc->retry.cancelable = 1;
        }
    }

    ngx_free(m);
}


static void
ngx_rustdesk_ipc_read_handler(ngx_event_t *rev)
{
    int                         fd;
    ssize_t                     n;
    ngx_err_t                   err;
    struct iovec                iov;
    struct msghdr               msg;
    ngx_uint_t                  trusted;
    struct ucred                cred;
    struct cmsghdr             *cm;
    ngx_connection_t           *c;
    ngx_rustdesk_ipc_t         *ipc;
    ngx_rustdesk_ipc_header_t   h;

    union {
        struct cmsghdr          cm;
        char                    space[CMSG_SPACE(sizeof(int))
                                      + CMSG_SPACE(sizeof(struct ucred))];
    } cmsg;

    c = rev->data;
    ipc = c->data;

    for ( ;; ) {
        iov.iov_base = ipc->buf;
        iov.iov_len = NGX_RUSTDESK_IPC_MAX;

        ngx_memzero(&msg, sizeof(struct msghdr));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = &cmsg;
        msg.msg_controllen = sizeof(cmsg);

        n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EAGAIN || err == NGX_EINTR) {
                return;
            }

            ngx_log_error(NGX_LOG_ALERT, ipc->log, err,
                          "rustdesk: recvmsg() on the worker channel failed");
            return;
        }

        fd = -1;
        trusted = 0;

        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS
                && cm->cmsg_len == CMSG_LEN(sizeof(int)))
            {
                ngx_memcpy(&fd, CMSG_DATA(cm), sizeof(int));
            }

            if (cm->cmsg_level == SOL_SOCKET
                && cm->cmsg_type == SCM_CREDENTIALS
                && cm->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
            {
                ngx_memcpy(&cred, CMSG_DATA(cm), sizeof(struct ucred));
                trusted = (cred.uid == geteuid());
            }
        }

        /* the abstract namespace has no permissions: other users' out */

        if (!trusted) {
            ngx_log_error(NGX_LOG_INFO, ipc->log, 0,
                          "rustdesk: message on the %s worker channel from "
                          "another user dropped", ipc->name);
            if (fd != -1) {
                close(fd);
            }
            continue;
        }

        if ((msg.msg_flags & (MSG_TRUNC|MSG_CTRUNC))
            || (size_t) n < sizeof(h))
        {
            ngx_log_error(NGX_LOG_ALERT, ipc->log, 0,
                          "rustdesk: truncated worker message dropped");
            if (fd != -1) {
                close(fd);
            }
            continue;
        }

        ngx_memcpy(&h, ipc->buf, sizeof(h));

        if (h.len != n - sizeof(h)) {
            ngx_log_error(NGX_LOG_ALERT, ipc->log, 0,
                          "rustdesk: malformed worker message dropped");
            if (fd != -1) {
                close(fd);
            }
            continue;
        }

        ngx_rustdesk_stat_add(ipc->stats, NGX_RUSTDESK_IPC_RECEIVED, 1);

        ipc->handler(ipc, h.type, h.from, ipc->buf + sizeof(h), h.len, fd);
    }
}


/* "\0ngx_rustdesk/<name>/<master pid>/<worker pid>" */

static socklen_t
ngx_rustdesk_ipc_addr(ngx_rustdesk_ipc_t *ipc, ngx_pid_t pid,
    struct sockaddr_un *sun)
{
    u_char  *p;

    ngx_memzero(sun, sizeof(struct sockaddr_un));
    sun->sun_family = AF_UNIX;

    p = ngx_snprintf((u_char *) sun->sun_path + 1, sizeof(sun->sun_path) - 1,
                     "ngx_rustdesk/%s/%P/%P", ipc->name, ipc->master, pid);

    return offsetof(struct sockaddr_un, sun_path) + (p - (u_char *) sun->sun_path);
}
