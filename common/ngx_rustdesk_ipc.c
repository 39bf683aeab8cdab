/*
 * Cross-worker messages over abstract Unix datagram sockets.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <sys/un.h>

#include "ngx_rustdesk_ipc.h"


static void ngx_rustdesk_ipc_read_handler(ngx_event_t *rev);
static socklen_t ngx_rustdesk_ipc_addr(ngx_rustdesk_ipc_t *ipc,
    ngx_pid_t pid, struct sockaddr_un *sun);


ngx_int_t
ngx_rustdesk_ipc_open(ngx_rustdesk_ipc_t *ipc, ngx_cycle_t *cycle)
{
    int                  fd;
    socklen_t            len;
    ngx_event_t         *rev;
    ngx_connection_t    *c;
    struct sockaddr_un   sun;

    ipc->master = getppid();
    ipc->log = cycle->log;

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
    if (ipc->connection) {
        ngx_close_connection(ipc->connection);
        ipc->connection = NULL;
    }
}


ngx_int_t
ngx_rustdesk_ipc_send(ngx_rustdesk_ipc_t *ipc, ngx_pid_t to, ngx_uint_t type,
    u_char *data, size_t len, ngx_socket_t fd)
{
    ssize_t                     n;
    ngx_err_t                   err;
    struct iovec                iov[2];
    struct msghdr               msg;
    struct sockaddr_un          sun;
    ngx_rustdesk_ipc_header_t   h;

    union {
        struct cmsghdr          cm;
        char                    space[CMSG_SPACE(sizeof(int))];
    } cmsg;

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

    iov[0].iov_base = &h;
    iov[0].iov_len = sizeof(h);
    iov[1].iov_base = data;
    iov[1].iov_len = len;

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


static void
ngx_rustdesk_ipc_read_handler(ngx_event_t *rev)
{
    int                         fd;
    ssize_t                     n;
    ngx_err_t                   err;
    struct iovec                iov;
    struct msghdr               msg;
    struct cmsghdr             *cm;
    ngx_connection_t           *c;
    ngx_rustdesk_ipc_t         *ipc;
    ngx_rustdesk_ipc_header_t   h;

    union {
        struct cmsghdr          cm;
        char                    space[CMSG_SPACE(sizeof(int))];
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

        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS
                && cm->cmsg_len == CMSG_LEN(sizeof(int)))
            {
                ngx_memcpy(&fd, CMSG_DATA(cm), sizeof(int));
            }
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
