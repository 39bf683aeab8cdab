/*
 * Cross-worker messages over Unix datagram sockets in a directory private
 * to nginx's worker user (see ngx_rustdesk_ipc.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <sys/un.h>
#include <dirent.h>

#include "ngx_rustdesk_ipc.h"
#include "ngx_rustdesk_stats.h"


#define NGX_RUSTDESK_IPC_PENDING_MAX   4096
#define NGX_RUSTDESK_IPC_RETRY         1        /* ms */
#define NGX_RUSTDESK_IPC_GIVE_UP       5000     /* ms */
#define NGX_RUSTDESK_IPC_FULL          16       /* full workers per retry */

#define NGX_RUSTDESK_IPC_DIR_NAME      "ngx_rustdesk"


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
static ngx_int_t ngx_rustdesk_ipc_dir_default(ngx_rustdesk_ipc_dir_t *d,
    ngx_core_conf_t *ccf, ngx_log_t *log);
static ngx_int_t ngx_rustdesk_ipc_dir_parent(ngx_rustdesk_ipc_dir_t *d,
    ngx_uid_t user, ngx_log_t *log);
static ngx_int_t ngx_rustdesk_ipc_dir_own(ngx_rustdesk_ipc_dir_t *d, int fd,
    ngx_uid_t user, ngx_log_t *log);
static void ngx_rustdesk_ipc_dir_sweep(ngx_rustdesk_ipc_dir_t *d, int fd,
    ngx_log_t *log);
static u_char *ngx_rustdesk_ipc_mode(u_char *buf, mode_t mode);


ngx_int_t
ngx_rustdesk_ipc_dir_init(ngx_rustdesk_ipc_dir_t *d, ngx_log_t *log)
{
    int               fd;
    ngx_uid_t         user;
    ngx_err_t         err;
    ngx_core_conf_t  *ccf;

    if (d->ready) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(d->cycle->conf_ctx,
                                           ngx_core_module);

    if (d->path.data == NULL
        && ngx_rustdesk_ipc_dir_default(d, ccf, log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (d->path.len > NGX_RUSTDESK_IPC_DIR_MAX) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "rustdesk: channel directory \"%V\" is too long for "
                      "a socket name: at most %uz bytes, set "
                      "\"rustdesk_channel_dir\"", &d->path,
                      (size_t) NGX_RUSTDESK_IPC_DIR_MAX);
        return NGX_ERROR;
    }

    /* the workers' user; nginx has none to switch to unless it is root */

    user = (ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) ? ccf->user
                                                        : geteuid();

    if (ngx_rustdesk_ipc_dir_parent(d, user, log) != NGX_OK) {
        return NGX_ERROR;
    }

    /* made here, or found: either way it is checked through one descriptor */

    if (mkdir((char *) d->path.data, 0700) == -1) {
        err = ngx_errno;

        if (err != NGX_EEXIST) {
            ngx_log_error(NGX_LOG_EMERG, log, err,
                          "rustdesk: mkdir() \"%s\" for the worker channel "
                          "failed", d->path.data);
            return NGX_ERROR;
        }
    }

    fd = open((char *) d->path.data,
              O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);

    if (fd == -1) {
        err = ngx_errno;

        ngx_log_error(NGX_LOG_EMERG, log, err,
                      (err == ENOTDIR || err == ELOOP)
                      ? "rustdesk: channel directory \"%s\" is not a "
                        "directory (a symbolic link or a file is refused)"
                      : "rustdesk: open() \"%s\" failed",
                      d->path.data);
        return NGX_ERROR;
    }

    if (ngx_rustdesk_ipc_dir_own(d, fd, user, log) != NGX_OK) {
        close(fd);
        return NGX_ERROR;
    }

    /* closes fd */
    ngx_rustdesk_ipc_dir_sweep(d, fd, log);

    d->ready = 1;

    return NGX_OK;
}


/* "ngx_rustdesk" in the directory of the pid file: nginx's run directory */

static ngx_int_t
ngx_rustdesk_ipc_dir_default(ngx_rustdesk_ipc_dir_t *d, ngx_core_conf_t *ccf,
    ngx_log_t *log)
{
    u_char  *p, *last;
    size_t   len;

    last = ccf->pid.data + ccf->pid.len;

    for (p = last; p > ccf->pid.data && p[-1] != '/'; p--) { /* void */ }

    len = p - ccf->pid.data;

    d->path.data = ngx_pnalloc(d->cycle->pool,
                               len + sizeof(NGX_RUSTDESK_IPC_DIR_NAME));
    if (d->path.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(d->path.data, ccf->pid.data, len);
    p = ngx_cpymem(p, NGX_RUSTDESK_IPC_DIR_NAME,
                   sizeof(NGX_RUSTDESK_IPC_DIR_NAME));

    d->path.len = p - 1 - d->path.data;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, log, 0,
                   "rustdesk: channel directory \"%V\"", &d->path);

    return NGX_OK;
}


/*
 * Whoever may write to the parent directory may rename ours away and put
 * one of theirs in its place: only root, nginx's users, or anyone in a
 * sticky directory (such as /tmp), where only its owner can rename ours.
 */

static ngx_int_t
ngx_rustdesk_ipc_dir_parent(ngx_rustdesk_ipc_dir_t *d, ngx_uid_t user,
    ngx_log_t *log)
{
    u_char           *p, *parent;
    ngx_file_info_t   fi;
    u_char            mode[sizeof("07777")];

    parent = ngx_pnalloc(d->cycle->pool, d->path.len + 2);
    if (parent == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(parent, d->path.data, d->path.len);

    while (p > parent && p[-1] != '/') {
        p--;
    }

    if (p == parent) {
        /* relative: not after ngx_conf_full_name() */
        *p++ = '.';

    } else if (p - 1 == parent) {
        /* "/" */

    } else {
        p--;
    }

    *p = '\0';

    if (ngx_file_info(parent, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "rustdesk: stat() \"%s\" failed (the parent of the "
                      "channel directory)", parent);
        return NGX_ERROR;
    }

    if (fi.st_uid != 0 && fi.st_uid != geteuid() && fi.st_uid != user) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "rustdesk: the parent \"%s\" of the channel "
                      "directory \"%V\" belongs to uid %d, neither root nor "
                      "nginx's user: set \"rustdesk_channel_dir\" to a place "
                      "only nginx controls", parent, &d->path,
                      (int) fi.st_uid);
        return NGX_ERROR;
    }

    if ((fi.st_mode & (S_IWGRP|S_IWOTH)) && !(fi.st_mode & S_ISVTX)) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "rustdesk: the parent \"%s\" of the channel "
                      "directory \"%V\" is writable by group or others "
                      "(mode %s) and not sticky: set "
                      "\"rustdesk_channel_dir\" to a place only nginx "
                      "controls", parent, &d->path,
                      ngx_rustdesk_ipc_mode(mode, fi.st_mode));
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The directory must belong to the workers' user and be closed to
 * everyone else.  One that root made, or that the workers' user of the
 * running configuration has (a reload that changes "user"), is given to
 * the new user; one that anybody else owns, or that is open to group or
 * others, may hold names another user bound: refused, not repaired.
 */

static ngx_int_t
ngx_rustdesk_ipc_dir_own(ngx_rustdesk_ipc_dir_t *d, int fd, ngx_uid_t user,
    ngx_log_t *log)
{
    ngx_uid_t         old;
    ngx_file_info_t   fi;
    ngx_core_conf_t  *occf;
    u_char            mode[sizeof("07777")];

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "rustdesk: fstat() \"%s\" failed", d->path.data);
        return NGX_ERROR;
    }

    /* the running configuration's user, during a reload */

    old = (ngx_uid_t) NGX_CONF_UNSET_UINT;

    if (ngx_cycle && ngx_cycle->conf_ctx) {
        occf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                                ngx_core_module);
        old = occf->user;
    }

    if (fi.st_uid != user
        && (geteuid() != 0 || (fi.st_uid != 0 && fi.st_uid != old)))
    {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "rustdesk: channel directory \"%s\" belongs to uid "
                      "%d, not to nginx's worker user (uid %d): another "
                      "user may have made it; remove it, nginx makes it",
                      d->path.data, (int) fi.st_uid, (int) user);
        return NGX_ERROR;
    }

    if (fi.st_mode & 0077) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "rustdesk: channel directory \"%s\" is open to group "
                      "or others (mode %s): it must be private to nginx's "
                      "worker user (mode 0700); remove it, nginx makes it",
                      d->path.data, ngx_rustdesk_ipc_mode(mode, fi.st_mode));
        return NGX_ERROR;
    }

    if (fi.st_uid != user && fchown(fd, user, (gid_t) -1) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "rustdesk: fchown() \"%s\" to uid %d failed",
                      d->path.data, (int) user);
        return NGX_ERROR;
    }

    if ((fi.st_mode & 0700) != 0700 && fchmod(fd, 0700) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "rustdesk: fchmod() \"%s\" failed", d->path.data);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* "0755": nginx's log formats have no octal */

static u_char *
ngx_rustdesk_ipc_mode(u_char *buf, mode_t mode)
{
    (void) ngx_sprintf(buf, "%ud%ud%ud%ud%Z", (mode >> 9) & 7, (mode >> 6) & 7,
                       (mode >> 3) & 7, mode & 7);
    return buf;
}


/*
 * Names "<module>.<master>.<pid>" of processes that are gone (a worker
 * killed, or nginx stopped without its workers' exit handlers) are
 * removed.  Before workers are forked, so none of ours is binding now.
 */

static void
ngx_rustdesk_ipc_dir_sweep(ngx_rustdesk_ipc_dir_t *d, int fd, ngx_log_t *log)
{
    DIR            *dir;
    u_char         *name, *p, *last;
    ngx_int_t       pid;
    struct dirent  *de;

    dir = fdopendir(fd);
    if (dir == NULL) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "rustdesk: fdopendir() \"%s\" failed", d->path.data);
        close(fd);
        return;
    }

    for ( ;; ) {
        de = readdir(dir);
        if (de == NULL) {
            break;
        }

        if (de->d_type != DT_SOCK && de->d_type != DT_UNKNOWN) {
            continue;
        }

        /* "<name>.<master>.<pid>", nothing else */

        name = (u_char *) de->d_name;
        last = name + ngx_strlen(name);

        for (p = last; p > name && p[-1] >= '0' && p[-1] <= '9'; p--) {
            /* void */
        }

        pid = ngx_atoi(p, last - p);

        if (pid <= 0 || p - name < 4 || *--p != '.') {
            continue;
        }

        for (last = p; p > name && p[-1] >= '0' && p[-1] <= '9'; p--) {
            /* void */
        }

        if (p == last || p - name < 2 || p[-1] != '.') {
            continue;
        }

        if (kill((ngx_pid_t) pid, 0) == 0 || ngx_errno != ESRCH) {
            continue;
        }

        if (unlinkat(dirfd(dir), de->d_name, 0) == -1) {
            ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                          "rustdesk: unlink() \"%s/%s\" failed",
                          d->path.data, de->d_name);
            continue;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_CORE, log, 0,
                       "rustdesk: removed \"%s/%s\", the channel name of a "
                       "worker that is gone", d->path.data, de->d_name);
    }

    closedir(dir);
}


ngx_int_t
ngx_rustdesk_ipc_open(ngx_rustdesk_ipc_t *ipc, ngx_cycle_t *cycle)
{
    int                  fd, on;
    socklen_t            len;
    ngx_event_t         *rev;
    ngx_err_t            err;
    ngx_connection_t    *c;
    struct sockaddr_un   sun;

    if (ipc->dir == NULL || !ipc->dir->ready) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "rustdesk: no directory for the %s worker channel",
                      ipc->name);
        return NGX_ERROR;
    }

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

    /*
     * a name with our pid is a dead process's: only nginx's user can make
     * names here (ngx_rustdesk_ipc_dir_init()), and pids are unique among
     * the living
     */

    if (unlink(sun.sun_path) == -1) {
        err = ngx_errno;

        if (err != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, err,
                          "rustdesk: unlink() \"%s\" failed", sun.sun_path);
            close(fd);
            return NGX_ERROR;
        }
    }

    if (bind(fd, (struct sockaddr *) &sun, len) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "rustdesk: bind() of the %s worker channel to \"%s\" "
                      "failed", ipc->name, sun.sun_path);
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
    struct sockaddr_un           sun;
    ngx_rustdesk_ipc_pending_t  *m;

    if (ipc->retry.timer_set) {
        ngx_del_timer(&ipc->retry);
    }

    while (ipc->npending) {
        q = ngx_queue_head(&ipc->pending);
        m = ngx_queue_data(q, ngx_rustdesk_ipc_pending_t, queue);
        ngx_rustdesk_ipc_drop(ipc, m);
    }

    if (ipc->connection == NULL) {
        return;
    }

    ngx_close_connection(ipc->connection);
    ipc->connection = NULL;

    (void) ngx_rustdesk_ipc_addr(ipc, ngx_pid, &sun);

    if (unlink(sun.sun_path) == -1 && ngx_errno != NGX_ENOENT) {
        ngx_log_error(NGX_LOG_WARN, ipc->log, ngx_errno,
                      "rustdesk: unlink() \"%s\" failed", sun.sun_path);
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
    ngx_pid_t                   from;
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
        from = NGX_INVALID_PID;
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
                from = cred.pid;
            }
        }

        /*
         * only nginx's user can enter the directory (and root): the user is
         * checked all the same, and the kernel's word on the pid is taken
         */

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

        if (h.from != from) {
            ngx_log_error(NGX_LOG_ALERT, ipc->log, 0,
                          "rustdesk: message on the %s worker channel from "
                          "pid %P claiming to be from %P dropped", ipc->name,
                          from, h.from);
            if (fd != -1) {
                close(fd);
            }
            continue;
        }

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


/* "<dir>/<name>.<master pid>.<worker pid>" */

static socklen_t
ngx_rustdesk_ipc_addr(ngx_rustdesk_ipc_t *ipc, ngx_pid_t pid,
    struct sockaddr_un *sun)
{
    u_char  *p;

    ngx_memzero(sun, sizeof(struct sockaddr_un));
    sun->sun_family = AF_UNIX;

    /* fits: ngx_rustdesk_ipc_dir_init() checked the directory's length */

    p = ngx_snprintf((u_char *) sun->sun_path, sizeof(sun->sun_path) - 1,
                     "%V/%s.%P.%P", &ipc->dir->path, ipc->name, ipc->master,
                     pid);

    return offsetof(struct sockaddr_un, sun_path)
           + (p - (u_char *) sun->sun_path) + 1;
}
