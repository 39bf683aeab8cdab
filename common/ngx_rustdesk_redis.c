/*
 * A Redis connection on nginx's event loop: hiredis's asynchronous API
 * (hiredis 0.14, Debian 12's) driven by nginx events and timers, as
 * hiredis's own adapters drive it from libevent or libuv.
 *
 * hiredis asks for read and write interest (addRead, delWrite, ...) and
 * reads or writes once per call of redisAsyncHandleRead/Write: its socket
 * is registered level-triggered, so that what one call leaves in the
 * socket wakes the next turn.  The socket is hiredis's: it closes it when
 * it frees its context, after calling the cleanup hook, where the nginx
 * connection is given back without closing anything.
 *
 * A context lives from one connect to its failure; a failure (connect
 * error, handshake error, lost connection, no answer for too long) frees
 * it, which calls every pending command's callback with no reply, and
 * schedules the next connect after a backoff that doubles up to 10 s.
 *
 * With Sentinels (redis-sentinel://), each connect is two: a Sentinel is
 * asked where the primary is (SENTINEL get-master-addr-by-name; the next
 * Sentinel at once if it cannot say, the backoff only when none could),
 * then the primary is connected to and asked its ROLE, so that an old
 * primary still answering as a replica is never taken.  A connection
 * lost, or a write refused with READONLY (the primary was demoted), asks
 * the Sentinels again: after a failover every worker of every host moves
 * to the new primary.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_rustdesk_redis.h"


#define NGX_RUSTDESK_REDIS_BACKOFF_MIN  100
#define NGX_RUSTDESK_REDIS_BACKOFF_MAX  10000
#define NGX_RUSTDESK_REDIS_STALL_MIN    5000     /* no reply at all: drop */

/* why the connection is down, to log a new reason once */
#define NGX_RUSTDESK_REDIS_E_CONNECT    1
#define NGX_RUSTDESK_REDIS_E_AUTH       2
#define NGX_RUSTDESK_REDIS_E_SELECT     3
#define NGX_RUSTDESK_REDIS_E_LOST       4
#define NGX_RUSTDESK_REDIS_E_TIMEOUT    5
#define NGX_RUSTDESK_REDIS_E_STALLED    6
#define NGX_RUSTDESK_REDIS_E_SENTINEL   7
#define NGX_RUSTDESK_REDIS_E_ROLE       8

/* the handshake's steps, as each command's privdata */
#define NGX_RUSTDESK_REDIS_AUTH         1
#define NGX_RUSTDESK_REDIS_SELECT       2
#define NGX_RUSTDESK_REDIS_SETNAME      3
#define NGX_RUSTDESK_REDIS_ROLE         4


#define ngx_rustdesk_redis_count(r, i)                                       \
    do {                                                                     \
        if ((r)->stats) {                                                    \
            (void) ngx_atomic_fetch_add(&(r)->stats[i], 1);                  \
        }                                                                    \
    } while (0)

#define ngx_rustdesk_redis_count_reply_type(r, rep)                          \
    ngx_rustdesk_redis_count(r, (rep) == NULL                                \
                                ? NGX_RUSTDESK_REDIS_STAT_FAILED             \
                                : (rep)->type == REDIS_REPLY_ERROR           \
                                ? NGX_RUSTDESK_REDIS_STAT_ERROR              \
                                : NGX_RUSTDESK_REDIS_STAT_OK)


const ngx_rustdesk_metric_t  ngx_rustdesk_redis_m_connections = {
    "rustdesk_cluster_redis_connections", NGX_RUSTDESK_GAUGE,
    "Connections to the cluster's Redis usable now: the rendezvous's, one "
    "per worker and worker 0's to listen to the host's channel; the "
    "relay's, one per worker."
};

const ngx_rustdesk_metric_t  ngx_rustdesk_redis_m_disconnects = {
    "rustdesk_cluster_redis_disconnects_total", NGX_RUSTDESK_COUNTER,
    "Connections to Redis lost after they were usable."
};

const ngx_rustdesk_metric_t  ngx_rustdesk_redis_m_commands = {
    "rustdesk_cluster_redis_commands_total", NGX_RUSTDESK_COUNTER,
    "Commands to Redis, by result: ok, error (Redis refused it), failed "
    "(no answer in time, or the connection was lost), not_sent (Redis "
    "down, or too many waiting)."
};


struct ngx_rustdesk_redis_cmd_s {
    ngx_rustdesk_redis_t           *redis;
    ngx_rustdesk_redis_handler_pt   handler;
    void                           *data;
    ngx_event_t                     timer;
    unsigned                        done:1;   /* answered or cancelled */
};


static void ngx_rustdesk_redis_connect(ngx_rustdesk_redis_t *r);
static ngx_int_t ngx_rustdesk_redis_handshake(ngx_rustdesk_redis_t *r);
static ngx_int_t ngx_rustdesk_redis_ask_sentinel(ngx_rustdesk_redis_t *r);
static void ngx_rustdesk_redis_sentinel_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_rustdesk_redis_demoted(ngx_rustdesk_redis_t *r,
    redisReply *rep);
static void ngx_rustdesk_redis_ready_now(ngx_rustdesk_redis_t *r);
static void ngx_rustdesk_redis_drop(ngx_rustdesk_redis_t *r, ngx_int_t why,
    const char *text);
static void ngx_rustdesk_redis_down(ngx_rustdesk_redis_t *r, ngx_int_t why,
    const char *text);
static void ngx_rustdesk_redis_retry_handler(ngx_event_t *ev);
static void ngx_rustdesk_redis_timeout_handler(ngx_event_t *ev);
static void ngx_rustdesk_redis_read_handler(ngx_event_t *rev);
static void ngx_rustdesk_redis_write_handler(ngx_event_t *wev);
static void ngx_rustdesk_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_rustdesk_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_rustdesk_redis_handshake_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_rustdesk_redis_command_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_rustdesk_redis_count_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_rustdesk_redis_subscribed(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_rustdesk_redis_add_read(void *privdata);
static void ngx_rustdesk_redis_del_read(void *privdata);
static void ngx_rustdesk_redis_add_write(void *privdata);
static void ngx_rustdesk_redis_del_write(void *privdata);
static void ngx_rustdesk_redis_cleanup(void *privdata);


ngx_int_t
ngx_rustdesk_redis_open(ngx_rustdesk_redis_t *r, ngx_cycle_t *cycle)
{
    r->log = cycle->log;
    r->state = NGX_RUSTDESK_REDIS_DOWN;
    r->backoff = 0;
    r->pending = 0;

    r->retry.handler = ngx_rustdesk_redis_retry_handler;
    r->retry.data = r;
    r->retry.log = r->log;
    r->retry.cancelable = 1;

    r->opened = 1;
    r->closing = 0;

    ngx_rustdesk_redis_connect(r);

    return NGX_OK;
}


void
ngx_rustdesk_redis_close(ngx_rustdesk_redis_t *r)
{
    redisAsyncContext  *ac;

    if (!r->opened) {
        return;
    }

    r->opened = 0;
    r->closing = 1;

    if (r->state == NGX_RUSTDESK_REDIS_READY && r->stats) {
        (void) ngx_atomic_fetch_add(&r->stats[NGX_RUSTDESK_REDIS_STAT_UP], -1);
    }

    if (r->retry.timer_set) {
        ngx_del_timer(&r->retry);
    }

    ac = r->ac;
    r->ac = NULL;
    r->state = NGX_RUSTDESK_REDIS_DOWN;

    if (ac) {
        /* the handlers of commands in flight are called with no reply */
        redisAsyncFree(ac);
    }
}


ngx_rustdesk_redis_cmd_t *
ngx_rustdesk_redis_command(ngx_rustdesk_redis_t *r,
    ngx_rustdesk_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_rustdesk_redis_cmd_t  *cmd;

    if (r->state != NGX_RUSTDESK_REDIS_READY || r->ac == NULL
        || r->channel.len)
    {
        ngx_rustdesk_redis_count(r, NGX_RUSTDESK_REDIS_STAT_REFUSED);
        return NULL;
    }

    if (r->pending >= r->conf->max_pending) {
        ngx_rustdesk_redis_count(r, NGX_RUSTDESK_REDIS_STAT_REFUSED);

        if (!r->full_logged) {
            ngx_log_error(NGX_LOG_WARN, r->log, 0,
                          "rustdesk: redis %V: %ui commands waiting for an "
                          "answer, more are refused", &r->conf->url,
                          r->pending);
            r->full_logged = 1;
        }

        return NULL;
    }

    cmd = ngx_alloc(sizeof(ngx_rustdesk_redis_cmd_t), r->log);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_memzero(cmd, sizeof(ngx_rustdesk_redis_cmd_t));

    cmd->redis = r;
    cmd->handler = handler;
    cmd->data = data;

    if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_command_reply, cmd,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(cmd);
        return NULL;
    }

    if (r->pending++ == 0) {
        /* the time the oldest command in flight has waited since */
        r->last_reply = ngx_current_msec;
    }

    cmd->timer.handler = ngx_rustdesk_redis_timeout_handler;
    cmd->timer.data = cmd;
    cmd->timer.log = r->log;
    cmd->timer.cancelable = 1;

    ngx_add_timer(&cmd->timer, r->conf->timeout);

    return cmd;
}


ngx_int_t
ngx_rustdesk_redis_send(ngx_rustdesk_redis_t *r, int argc,
    const char **argv, const size_t *argvlen)
{
    if (r->state != NGX_RUSTDESK_REDIS_READY || r->ac == NULL
        || r->channel.len || r->pending >= r->conf->max_pending)
    {
        ngx_rustdesk_redis_count(r, NGX_RUSTDESK_REDIS_STAT_REFUSED);
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_count_reply, r,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_DECLINED;
    }

    if (r->pending++ == 0) {
        r->last_reply = ngx_current_msec;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_rustdesk_redis_can_send(ngx_rustdesk_redis_t *r)
{
    if (ngx_rustdesk_redis_ready(r)) {
        return 1;
    }

    ngx_rustdesk_redis_count(r, NGX_RUSTDESK_REDIS_STAT_REFUSED);

    return 0;
}


void
ngx_rustdesk_redis_cancel(ngx_rustdesk_redis_cmd_t *cmd)
{
    /* freed when hiredis calls back: with the reply, or when it is freed */

    cmd->done = 1;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }
}


static void
ngx_rustdesk_redis_connect(ngx_rustdesk_redis_t *r)
{
    u_char                     *host;
    ngx_int_t                   rc;
    ngx_uint_t                  port;
    ngx_connection_t           *c;
    redisAsyncContext          *ac;
    ngx_rustdesk_redis_addr_t  *sentinel;

    if (r->conf->sentinels == NULL) {
        host = r->conf->host.data;
        port = r->conf->port;
        r->asking = 0;

    } else if (r->found) {
        host = r->primary;
        port = r->primary_port;
        r->asking = 0;

    } else {
        sentinel = r->conf->sentinels->elts;
        host = sentinel[r->sentinel].host.data;
        port = sentinel[r->sentinel].port;
        r->asking = 1;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, r->log, 0,
                   "rustdesk: redis connect to %s%s:%ui",
                   r->asking ? "the Sentinel " : "", host, port);

    /* a numeric address (resolved at configuration): connect(2) only */

    ac = redisAsyncConnect((char *) host, (int) port);

    if (ac == NULL) {
        ngx_rustdesk_redis_down(r, NGX_RUSTDESK_REDIS_E_CONNECT,
                                "out of memory");
        return;
    }

    if (ac->err) {
        ngx_rustdesk_redis_down(r, NGX_RUSTDESK_REDIS_E_CONNECT, ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    c = ngx_get_connection(ac->c.fd, r->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_rustdesk_redis_down(r, NGX_RUSTDESK_REDIS_E_CONNECT,
                                "no free connection");
        return;
    }

    c->data = r;
    c->read->handler = ngx_rustdesk_redis_read_handler;
    c->write->handler = ngx_rustdesk_redis_write_handler;
    c->read->log = r->log;
    c->write->log = r->log;

    (void) redisEnableKeepAlive(&ac->c);

    ac->data = r;
    ac->ev.data = c;
    ac->ev.addRead = ngx_rustdesk_redis_add_read;
    ac->ev.delRead = ngx_rustdesk_redis_del_read;
    ac->ev.addWrite = ngx_rustdesk_redis_add_write;
    ac->ev.delWrite = ngx_rustdesk_redis_del_write;
    ac->ev.cleanup = ngx_rustdesk_redis_cleanup;

    (void) redisAsyncSetConnectCallback(ac, ngx_rustdesk_redis_on_connect);
    (void) redisAsyncSetDisconnectCallback(ac,
                                           ngx_rustdesk_redis_on_disconnect);

    r->ac = ac;
    r->connection = c;
    r->state = NGX_RUSTDESK_REDIS_CONNECTING;

    /* the connect completes on the first write event */
    ngx_rustdesk_redis_add_read(c);
    ngx_rustdesk_redis_add_write(c);

    rc = r->asking ? ngx_rustdesk_redis_ask_sentinel(r)
                   : ngx_rustdesk_redis_handshake(r);

    if (rc != NGX_OK) {
        ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_CONNECT,
                                "the handshake could not be queued");
        return;
    }

    /* connected and answered within the deadline, or dropped */
    ngx_add_timer(&r->retry, r->conf->connect_timeout);
}


/*
 * AUTH, SELECT and CLIENT SETNAME, queued behind the connect: their
 * answers come in order, and the last one makes the connection usable.
 */

static ngx_int_t
ngx_rustdesk_redis_handshake(ngx_rustdesk_redis_t *r)
{
    int                         n;
    size_t                      len[3];
    const char                 *argv[3];
    ngx_rustdesk_redis_conf_t  *rc;
    u_char                      db[NGX_INT_T_LEN];

    rc = r->conf;

    if (rc->password.len) {
        n = 0;
        argv[n] = "AUTH";
        len[n++] = 4;

        if (rc->user.len) {
            argv[n] = (const char *) rc->user.data;
            len[n++] = rc->user.len;
        }

        argv[n] = (const char *) rc->password.data;
        len[n++] = rc->password.len;

        if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_handshake_reply,
                                  (void *) (uintptr_t) NGX_RUSTDESK_REDIS_AUTH,
                                  n, argv, len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        r->pending++;
    }

    if (rc->db) {
        argv[0] = "SELECT";
        len[0] = 6;
        argv[1] = (const char *) db;
        len[1] = ngx_sprintf(db, "%ui", rc->db) - db;

        if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_handshake_reply,
                               (void *) (uintptr_t) NGX_RUSTDESK_REDIS_SELECT,
                               2, argv, len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        r->pending++;
    }

    /* the name shows in CLIENT LIST: which nginx worker this is */

    argv[0] = "CLIENT";
    len[0] = 6;
    argv[1] = "SETNAME";
    len[1] = 7;
    argv[2] = r->name;
    len[2] = ngx_strlen(r->name);

    if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_handshake_reply,
                              (void *) (uintptr_t) NGX_RUSTDESK_REDIS_SETNAME,
                              3, argv, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    r->pending++;

    if (rc->sentinels) {
        /* the last step: a primary, not one the Sentinels demoted */

        argv[0] = "ROLE";
        len[0] = 4;

        if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_handshake_reply,
                                  (void *) (uintptr_t) NGX_RUSTDESK_REDIS_ROLE,
                                  1, argv, len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        r->pending++;
    }

    r->last_reply = ngx_current_msec;

    return NGX_OK;
}


/* Where is the primary?  Answered with [ip, port], or nil if unknown. */

static ngx_int_t
ngx_rustdesk_redis_ask_sentinel(ngx_rustdesk_redis_t *r)
{
    size_t       len[3];
    const char  *argv[3];

    argv[0] = "SENTINEL";
    len[0] = 8;
    argv[1] = "get-master-addr-by-name";
    len[1] = 23;
    argv[2] = (const char *) r->conf->master.data;
    len[2] = r->conf->master.len;

    if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_sentinel_reply, r,
                              3, argv, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    r->pending++;
    r->last_reply = ngx_current_msec;

    return NGX_OK;
}


static void
ngx_rustdesk_redis_sentinel_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_rustdesk_redis_t *r = privdata;

    ngx_int_t    port;
    redisReply  *rep = reply, *ip, *pt;
    u_char       text[128];

    r->pending--;

    if (ac != r->ac || r->state != NGX_RUSTDESK_REDIS_CONNECTING
        || rep == NULL)
    {
        return;
    }

    r->last_reply = ngx_current_msec;

    if (rep->type == REDIS_REPLY_ERROR) {
        ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_SENTINEL, rep->str);
        return;
    }

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        ngx_sprintf(text, "it does not know the primary \"%*s\"%Z",
                    ngx_min(r->conf->master.len, 64), r->conf->master.data);
        ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_SENTINEL,
                                (char *) text);
        return;
    }

    ip = rep->element[0];
    pt = rep->element[1];
    port = NGX_ERROR;

    if (pt->type == REDIS_REPLY_STRING) {
        port = ngx_atoi((u_char *) pt->str, pt->len);
    }

    if (ip->type != REDIS_REPLY_STRING || ip->len == 0
        || ip->len > NGX_SOCKADDR_STRLEN || port < 1 || port > 65535)
    {
        ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_SENTINEL,
                                "its answer is not an address");
        return;
    }

    ngx_memcpy(r->primary, ip->str, ip->len);
    r->primary[ip->len] = '\0';
    r->primary_port = port;
    r->found = 1;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, r->log, 0,
                   "rustdesk: redis Sentinel names %V's primary %s:%ui",
                   &r->conf->url, r->primary, r->primary_port);

    /* done with this Sentinel: the primary, at once */

    r->ac = NULL;
    r->state = NGX_RUSTDESK_REDIS_DOWN;

    if (r->retry.timer_set) {
        ngx_del_timer(&r->retry);
    }

    ngx_add_timer(&r->retry, 1);

    /* inside its callback: hiredis frees the context after this one */
    redisAsyncFree(ac);
}


static void
ngx_rustdesk_redis_handshake_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_rustdesk_redis_t  *r = ac->data;

    ngx_uint_t   step;
    redisReply  *rep = reply;

    r->pending--;

    if (ac != r->ac || r->state != NGX_RUSTDESK_REDIS_CONNECTING
        || rep == NULL)
    {
        /* an old context's, or the context is going: nothing to do */
        return;
    }

    r->last_reply = ngx_current_msec;
    step = (ngx_uint_t) (uintptr_t) privdata;

    if (rep->type == REDIS_REPLY_ERROR) {

        if (step == NGX_RUSTDESK_REDIS_AUTH) {
            ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_AUTH, rep->str);
            return;
        }

        if (step == NGX_RUSTDESK_REDIS_SELECT) {
            ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_SELECT, rep->str);
            return;
        }

        /* CLIENT SETNAME refused: without a password, a NOAUTH error */

        if (ngx_strncmp(rep->str, "NOAUTH", 6) == 0) {
            ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_AUTH, rep->str);
            return;
        }

        /* else (an ACL without CLIENT): the name is only a convenience */
    }

    if (step == NGX_RUSTDESK_REDIS_ROLE
        && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0
        && (rep->element[0]->type != REDIS_REPLY_STRING
            || rep->element[0]->len != 6
            || ngx_strncmp(rep->element[0]->str, "master", 6) != 0))
    {
        /* (ROLE refused, by an ACL: taken on the Sentinels' word) */
        ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_ROLE,
                                "the address the Sentinels named is not "
                                "a primary (a failover under way?)");
        return;
    }

    if (step == (r->conf->sentinels ? NGX_RUSTDESK_REDIS_ROLE
                                    : NGX_RUSTDESK_REDIS_SETNAME))
    {
        ngx_rustdesk_redis_ready_now(r);
    }
}


static void
ngx_rustdesk_redis_ready_now(ngx_rustdesk_redis_t *r)
{
    size_t       len[2];
    const char  *argv[2];

    if (r->channel.len) {
        /* hiredis calls back for the confirmation and each message */

        argv[0] = "SUBSCRIBE";
        len[0] = 9;
        argv[1] = (const char *) r->channel.data;
        len[1] = r->channel.len;

        if (redisAsyncCommandArgv(r->ac, ngx_rustdesk_redis_subscribed, r,
                                  2, argv, len)
            != REDIS_OK)
        {
            ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_LOST,
                                    "SUBSCRIBE could not be queued");
            return;
        }
    }

    r->state = NGX_RUSTDESK_REDIS_READY;
    r->backoff = 0;

    ngx_rustdesk_redis_count(r, NGX_RUSTDESK_REDIS_STAT_UP);
    r->full_logged = 0;
    r->slow_logged = 0;

    if (r->retry.timer_set) {
        ngx_del_timer(&r->retry);
    }

    if (r->down_logged) {
        ngx_log_error(NGX_LOG_NOTICE, r->log, 0,
                      "rustdesk: redis %V is available again after %T s",
                      &r->conf->url, ngx_time() - r->down_since);
        r->down_logged = 0;

        /* what was written meanwhile may be lost: callers write it again */
        r->recovered = ngx_current_msec ? ngx_current_msec : 1;

    } else {
        ngx_log_error(NGX_LOG_INFO, r->log, 0,
                      "rustdesk: connected to redis %V", &r->conf->url);
    }

    if (r->conf->sentinels) {
        ngx_log_error(NGX_LOG_INFO, r->log, 0,
                      "rustdesk: redis %V: the primary is %s:%ui",
                      &r->conf->url, r->primary, r->primary_port);
    }

    r->down_reason = 0;

    if (r->on_ready) {
        r->on_ready(r);
    }
}


/* Ends the current context (its commands fail) and retries later. */

static void
ngx_rustdesk_redis_drop(ngx_rustdesk_redis_t *r, ngx_int_t why,
    const char *text)
{
    redisAsyncContext  *ac;

    ac = r->ac;
    r->ac = NULL;

    /* logged first: text may be the context's or a reply's */
    ngx_rustdesk_redis_down(r, why, text);

    if (ac) {
        /* inside one of its callbacks, hiredis frees it after that one */
        redisAsyncFree(ac);
    }
}


static void
ngx_rustdesk_redis_down(ngx_rustdesk_redis_t *r, ngx_int_t why,
    const char *text)
{
    ngx_uint_t  was_ready;
    ngx_msec_t  delay;

    u_char                     *p;
    ngx_uint_t                  n;
    ngx_rustdesk_redis_addr_t  *sentinel;
    u_char                      buf[NGX_SOCKADDR_STRLEN + 192];

    was_ready = (r->state == NGX_RUSTDESK_REDIS_READY);
    r->state = NGX_RUSTDESK_REDIS_DOWN;

    if (r->closing) {
        return;
    }

    if (was_ready && r->stats) {
        (void) ngx_atomic_fetch_add(&r->stats[NGX_RUSTDESK_REDIS_STAT_UP], -1);
        ngx_rustdesk_redis_count(r, NGX_RUSTDESK_REDIS_STAT_LOST);
    }

    if (r->conf->sentinels) {
        /* the next connect asks the Sentinels where the primary is now */
        r->found = 0;

        if (r->asking) {
            n = r->conf->sentinels->nelts;
            sentinel = r->conf->sentinels->elts;

            p = ngx_snprintf(buf, sizeof(buf) - 1,
                             "the Sentinel %V:%ui: %s",
                             &sentinel[r->sentinel].host,
                             sentinel[r->sentinel].port, text);
            *p = '\0';
            text = (const char *) buf;

            r->sentinel = (r->sentinel + 1) % n;

            if (++r->sentinels_tried < n) {
                /* the next Sentinel at once */

                ngx_log_debug1(NGX_LOG_DEBUG_EVENT, r->log, 0,
                               "rustdesk: redis %s", text);

                if (r->retry.timer_set) {
                    ngx_del_timer(&r->retry);
                }

                ngx_add_timer(&r->retry, 1);
                return;
            }

            r->sentinels_tried = 0;
        }
    }

    if (!r->down_logged) {
        ngx_log_error(NGX_LOG_ERR, r->log, 0,
                      "rustdesk: redis %V is not available: %s; "
                      "retrying in the background", &r->conf->url, text);
        r->down_logged = 1;
        r->down_since = ngx_time();

    } else if (why != r->down_reason
               && (why == NGX_RUSTDESK_REDIS_E_AUTH
                   || why == NGX_RUSTDESK_REDIS_E_SELECT
                   || why == NGX_RUSTDESK_REDIS_E_SENTINEL))
    {
        /* back, but refusing us: what the operator must fix */
        ngx_log_error(NGX_LOG_ERR, r->log, 0,
                      "rustdesk: redis %V is still not available: %s",
                      &r->conf->url, text);

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, r->log, 0,
                       "rustdesk: redis still down: %s", text);
    }

    r->down_reason = why;

    if (r->backoff == 0) {
        r->backoff = NGX_RUSTDESK_REDIS_BACKOFF_MIN;

    } else {
        r->backoff = ngx_min(2 * r->backoff, NGX_RUSTDESK_REDIS_BACKOFF_MAX);
    }

    /* a little jitter, so that many workers and hosts do not come at once */
    delay = r->backoff + (ngx_msec_t) ngx_random() % (r->backoff / 4 + 1);

    if (r->retry.timer_set) {
        ngx_del_timer(&r->retry);
    }

    ngx_add_timer(&r->retry, delay);

    if (was_ready && r->on_down) {
        r->on_down(r);
    }
}


/* The backoff is over, or the connect deadline passed. */

static void
ngx_rustdesk_redis_retry_handler(ngx_event_t *ev)
{
    ngx_rustdesk_redis_t  *r = ev->data;

    u_char  text[64];

    if (r->closing) {
        return;
    }

    if (r->state == NGX_RUSTDESK_REDIS_CONNECTING) {
        ngx_sprintf(text, "no connection within %M ms%Z",
                    r->conf->connect_timeout);
        ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_TIMEOUT,
                                (char *) text);
        return;
    }

    if (r->state == NGX_RUSTDESK_REDIS_DOWN) {
        ngx_rustdesk_redis_connect(r);
    }
}


/*
 * A command had no answer in time: its caller gets none.  Redis answers
 * in order, so a connection that has answered nothing for several
 * timeouts while commands wait is dropped (a dead peer, a lost route);
 * one merely slow (DEBUG SLEEP, a big SAVE) is kept.
 */

static void
ngx_rustdesk_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_rustdesk_redis_cmd_t *cmd = ev->data;

    u_char                 text[64];
    ngx_msec_t             stall, silent;
    ngx_rustdesk_redis_t  *r;

    r = cmd->redis;
    cmd->done = 1;

    ngx_rustdesk_redis_count(r, NGX_RUSTDESK_REDIS_STAT_FAILED);

    if (!r->slow_logged) {
        ngx_log_error(NGX_LOG_WARN, r->log, 0,
                      "rustdesk: redis %V did not answer within %M ms",
                      &r->conf->url, r->conf->timeout);
        r->slow_logged = 1;
    }

    cmd->handler(r, NULL, cmd->data);

    stall = ngx_max(5 * r->conf->timeout, NGX_RUSTDESK_REDIS_STALL_MIN);
    silent = ngx_current_msec - r->last_reply;

    if (r->state == NGX_RUSTDESK_REDIS_READY && r->pending && silent >= stall) {
        ngx_sprintf(text, "no answer for %M ms%Z", silent);
        ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_STALLED,
                                (char *) text);
    }
}


static void
ngx_rustdesk_redis_command_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_rustdesk_redis_cmd_t *cmd = privdata;

    ngx_rustdesk_redis_t  *r;

    r = cmd->redis;
    r->pending--;

    if (reply) {
        r->last_reply = ngx_current_msec;

        if (r->pending == 0) {
            r->slow_logged = 0;
        }

    }

    /*
     * no reply: hiredis is freeing the context, and takes no command on
     * it meanwhile (DISCONNECTING or FREEING); its disconnect callback
     * follows
     */

    if (!cmd->done) {
        cmd->done = 1;

        if (cmd->timer.timer_set) {
            ngx_del_timer(&cmd->timer);
        }

        ngx_rustdesk_redis_count_reply_type(r, (redisReply *) reply);

        /* closing too: a caller may hold cmd until its handler runs */
        cmd->handler(r, reply, cmd->data);
    }

    ngx_free(cmd);

    if (reply && ac == r->ac) {
        ngx_rustdesk_redis_demoted(r, reply);
    }
}


static void
ngx_rustdesk_redis_count_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_rustdesk_redis_t *r = privdata;

    redisReply  *rep = reply;

    r->pending--;

    ngx_rustdesk_redis_count_reply_type(r, rep);

    if (rep == NULL) {
        return;
    }

    r->last_reply = ngx_current_msec;

    if (rep->type == REDIS_REPLY_ERROR && ac == r->ac) {
        ngx_rustdesk_redis_demoted(r, rep);

        if (r->ac == NULL) {
            return;
        }
    }

    ngx_rustdesk_redis_written(r, rep);
}


void
ngx_rustdesk_redis_written(ngx_rustdesk_redis_t *r, redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ERROR) {
        r->refused_logged = 0;
        return;
    }

    /* e.g. OOM with maxmemory: said once until a write is taken again */

    if (!r->refused_logged) {
        ngx_log_error(NGX_LOG_WARN, r->log, 0,
                      "rustdesk: redis %V refused a write: %s",
                      &r->conf->url, rep->str);
        r->refused_logged = 1;
    }
}


/*
 * A write refused with READONLY: the primary was made a replica (a
 * failover); with Sentinels, they are asked again.
 */

static void
ngx_rustdesk_redis_demoted(ngx_rustdesk_redis_t *r, redisReply *rep)
{
    if (r->conf->sentinels == NULL || rep->type != REDIS_REPLY_ERROR
        || rep->len < 8 || ngx_strncmp(rep->str, "READONLY", 8) != 0)
    {
        return;
    }

    ngx_rustdesk_redis_drop(r, NGX_RUSTDESK_REDIS_E_ROLE,
                            "the primary became a replica");
}


/*
 * On a listening connection: the SUBSCRIBE's confirmation, then each
 * message as ["message", channel, payload]; no reply when the context
 * goes.
 */

static void
ngx_rustdesk_redis_subscribed(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_rustdesk_redis_t *r = privdata;

    redisReply  *rep = reply, *kind, *payload;

    if (rep == NULL || ac != r->ac) {
        return;
    }

    r->last_reply = ngx_current_msec;

    if (rep->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->log, 0,
                      "rustdesk: redis %V refused SUBSCRIBE %V: %s",
                      &r->conf->url, &r->channel, rep->str);
        return;
    }

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        return;
    }

    kind = rep->element[0];
    payload = rep->element[2];

    if (kind->type != REDIS_REPLY_STRING || kind->len != 7
        || ngx_strncmp(kind->str, "message", 7) != 0
        || payload->type != REDIS_REPLY_STRING)
    {
        /* the confirmation */
        return;
    }

    r->message(r, (u_char *) payload->str, payload->len);
}


static void
ngx_rustdesk_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_rustdesk_redis_t  *r = ac->data;

    if (status == REDIS_OK || ac != r->ac) {
        /* connected: the handshake's answers make it ready */
        return;
    }

    /* hiredis frees the context when this returns */

    r->ac = NULL;

    ngx_rustdesk_redis_down(r, NGX_RUSTDESK_REDIS_E_CONNECT,
                            ac->c.err ? ac->c.errstr : "connect failed");
}


static void
ngx_rustdesk_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_rustdesk_redis_t  *r = ac->data;

    if (ac != r->ac) {
        /* dropped by us: already handled */
        return;
    }

    r->ac = NULL;

    ngx_rustdesk_redis_down(r, NGX_RUSTDESK_REDIS_E_LOST,
                            ac->err ? ac->errstr : "connection closed");
}


static void
ngx_rustdesk_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t      *c = rev->data;
    ngx_rustdesk_redis_t  *r = c->data;

    if (r->ac == NULL || r->connection != c) {
        return;
    }

    /* may free the context, and with it c */
    redisAsyncHandleRead(r->ac);
}


static void
ngx_rustdesk_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t      *c = wev->data;
    ngx_rustdesk_redis_t  *r = c->data;

    if (r->ac == NULL || r->connection != c) {
        return;
    }

    redisAsyncHandleWrite(r->ac);
}


/*
 * hiredis's hooks.  Level-triggered: hiredis reads or writes once per
 * call, and what it leaves must wake the next turn of the event loop.
 */

static void
ngx_rustdesk_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            == NGX_ERROR)
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "rustdesk: redis read event not added");
        }
    }
}


static void
ngx_rustdesk_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_rustdesk_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            == NGX_ERROR)
        {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "rustdesk: redis write event not added");
        }
    }
}


static void
ngx_rustdesk_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis is freeing its context and will close the socket itself. */

static void
ngx_rustdesk_redis_cleanup(void *privdata)
{
    ngx_connection_t      *c = privdata;
    ngx_rustdesk_redis_t  *r = c->data;

    ngx_rustdesk_redis_del_read(c);
    ngx_rustdesk_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (r->connection == c) {
        r->connection = NULL;
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}
