/*
 * A Redis connection on nginx's event loop (cluster mode, DESIGN.md
 * "Growing past wave 1"): hiredis's asynchronous API with its socket
 * wrapped in an ngx_connection_t, its read and write interest mapped to
 * nginx events, and what hiredis 0.14 lacks done with nginx timers: a
 * deadline for connecting, one for each command, reconnection with a
 * capped backoff.
 *
 * Nothing here blocks: the address is resolved at configuration time,
 * the connect is non-blocking, AUTH, SELECT and CLIENT SETNAME are
 * pipelined behind it, and until their answers are in the connection
 * takes no command (the caller answers as if Redis had failed).  A
 * command gets its handler called exactly once, with the reply or with
 * NULL (timeout, connection lost, closing), unless it was cancelled;
 * the number of commands in flight is bounded.  An outage is logged
 * once, at error, and its end at notice.
 *
 * One per worker and purpose, in the worker's memory (malloc'd by
 * hiredis, the nginx connection from the cycle's); close it in
 * exit_process.
 */

#ifndef _NGX_RUSTDESK_REDIS_H_INCLUDED_
#define _NGX_RUSTDESK_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_rustdesk_stats.h"


#define NGX_RUSTDESK_REDIS_TIMEOUT      1000     /* a command, by default */
#define NGX_RUSTDESK_REDIS_MAX_PENDING  4096     /* commands in flight */


typedef struct {
    ngx_str_t                   host;       /* numeric, NUL-terminated */
    ngx_uint_t                  port;
} ngx_rustdesk_redis_addr_t;


/* Where Redis is and how to talk to it: from the configuration. */
typedef struct {
    ngx_str_t                   url;        /* as written, less a password */
    ngx_str_t                   host;       /* numeric, NUL-terminated */
    ngx_uint_t                  port;
    ngx_array_t                *sentinels;  /* of ngx_rustdesk_redis_addr_t;
                                               NULL: Redis at host:port */
    ngx_str_t                   master;     /* the primary's name for them */
    ngx_uint_t                  db;
    ngx_str_t                   user;       /* empty: AUTH password only */
    ngx_str_t                   password;   /* empty: no AUTH */
    ngx_msec_t                  timeout;    /* per command */
    ngx_msec_t                  connect_timeout;
    ngx_uint_t                  max_pending;
} ngx_rustdesk_redis_conf_t;


typedef struct ngx_rustdesk_redis_s      ngx_rustdesk_redis_t;
typedef struct ngx_rustdesk_redis_cmd_s  ngx_rustdesk_redis_cmd_t;

/*
 * A command's answer: reply is hiredis's (valid during the call only) or
 * NULL when none came in time or the connection was lost.
 */
typedef void (*ngx_rustdesk_redis_handler_pt)(ngx_rustdesk_redis_t *r,
    redisReply *reply, void *data);

/* The connection became usable (handshake done), or stopped being. */
typedef void (*ngx_rustdesk_redis_event_pt)(ngx_rustdesk_redis_t *r);

/* A message published on the channel a connection listens to. */
typedef void (*ngx_rustdesk_redis_message_pt)(ngx_rustdesk_redis_t *r,
    u_char *data, size_t len);


/*
 * What a connection counts when given where (stats: this process's values
 * in a module's metrics slots, these offsets from it; NULL: nothing).
 */
#define NGX_RUSTDESK_REDIS_STAT_UP      0   /* gauge: usable now */
#define NGX_RUSTDESK_REDIS_STAT_LOST    1   /* usable, then lost */
#define NGX_RUSTDESK_REDIS_STAT_OK      2   /* commands answered */
#define NGX_RUSTDESK_REDIS_STAT_ERROR   3   /* answered with an error */
#define NGX_RUSTDESK_REDIS_STAT_FAILED  4   /* no answer in time, or lost */
#define NGX_RUSTDESK_REDIS_STAT_REFUSED 5   /* not sent: down, or too many
                                               waiting */
#define NGX_RUSTDESK_REDIS_NSTATS       6

/* their families, and a module's entries for its table, in that order */
extern const ngx_rustdesk_metric_t  ngx_rustdesk_redis_m_connections;
extern const ngx_rustdesk_metric_t  ngx_rustdesk_redis_m_disconnects;
extern const ngx_rustdesk_metric_t  ngx_rustdesk_redis_m_commands;

#define ngx_rustdesk_redis_command_stat(module, result)                      \
    { &ngx_rustdesk_redis_m_commands,                                        \
      "module=\"" module "\",result=\"" result "\"" }

#define NGX_RUSTDESK_REDIS_STATS(module)                                     \
    { &ngx_rustdesk_redis_m_connections, "module=\"" module "\"" },          \
    { &ngx_rustdesk_redis_m_disconnects, "module=\"" module "\"" },          \
    ngx_rustdesk_redis_command_stat(module, "ok"),                           \
    ngx_rustdesk_redis_command_stat(module, "error"),                        \
    ngx_rustdesk_redis_command_stat(module, "failed"),                       \
    ngx_rustdesk_redis_command_stat(module, "not_sent")


#define NGX_RUSTDESK_REDIS_DOWN         0
#define NGX_RUSTDESK_REDIS_CONNECTING   1
#define NGX_RUSTDESK_REDIS_READY        2


struct ngx_rustdesk_redis_s {
    ngx_rustdesk_redis_conf_t    *conf;
    const char                   *name;     /* CLIENT SETNAME, logs */
    ngx_log_t                    *log;

    ngx_atomic_t                 *stats;    /* NULL: nothing counted */

    ngx_rustdesk_redis_event_pt   on_ready; /* NULL: none */
    ngx_rustdesk_redis_event_pt   on_down;
    void                         *data;

    /*
     * a connection that listens (set before open): SUBSCRIBE channel once
     * ready, again after each reconnect, each message to message(); it
     * takes no command
     */
    ngx_str_t                     channel;
    ngx_rustdesk_redis_message_pt message;

    /* the state: set by the functions below */
    redisAsyncContext            *ac;
    ngx_connection_t             *connection;
    ngx_event_t                   retry;    /* reconnect, connect deadline */
    ngx_uint_t                    state;
    ngx_uint_t                    pending;  /* commands hiredis holds */
    ngx_msec_t                    backoff;
    ngx_msec_t                    last_reply;
    ngx_msec_t                    recovered;  /* usable again after an
                                                 outage since (0: none) */
    time_t                        down_since;
    ngx_int_t                     down_reason;

    /* with Sentinels: the one asked, and the primary it named */
    ngx_uint_t                    sentinel;
    ngx_uint_t                    sentinels_tried;
    u_char                        primary[NGX_SOCKADDR_STRLEN + 1];
    ngx_uint_t                    primary_port;

    unsigned                      opened:1;
    unsigned                      closing:1;
    unsigned                      down_logged:1;
    unsigned                      full_logged:1;
    unsigned                      slow_logged:1;
    unsigned                      refused_logged:1;
    unsigned                      asking:1;   /* the context: a Sentinel's */
    unsigned                      found:1;    /* primary[] is to be used */
};


/*
 * rustdesk_cluster's URL: redis://[[user]:password@]host[:port][/db], or
 * redis-sentinel://[[user]:password@]host[:port][,...]/name[/db]; hosts
 * are resolved now (the first address of each), never in a worker
 * (ngx_rustdesk_redis_url.c).
 */
char *ngx_rustdesk_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_rustdesk_redis_conf_t *rc);

/* Starts connecting (in the background): NGX_ERROR only without memory. */
ngx_int_t ngx_rustdesk_redis_open(ngx_rustdesk_redis_t *r,
    ngx_cycle_t *cycle);

/* Ends it: commands in flight get their handlers called with no reply. */
void ngx_rustdesk_redis_close(ngx_rustdesk_redis_t *r);

#define ngx_rustdesk_redis_ready(r)                                           \
    ((r)->state == NGX_RUSTDESK_REDIS_READY)

/*
 * Asked by a caller about to make a command, before it does the work:
 * not ready counts as a command not sent.
 */
ngx_uint_t ngx_rustdesk_redis_can_send(ngx_rustdesk_redis_t *r);

/*
 * Sends a command: the handler is called once, later (never from inside
 * this call).  NULL: not sent (not connected, too many in flight, no
 * memory): the caller answers as if Redis had failed, at once.
 */
ngx_rustdesk_redis_cmd_t *ngx_rustdesk_redis_command(ngx_rustdesk_redis_t *r,
    ngx_rustdesk_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/* The same without an answer: NGX_OK sent, NGX_DECLINED not. */
ngx_int_t ngx_rustdesk_redis_send(ngx_rustdesk_redis_t *r, int argc,
    const char **argv, const size_t *argvlen);

/*
 * A write's reply, for a handler of command(): an error (e.g. OOM with
 * maxmemory) is logged once, at warn, until a write is taken again, as
 * for send().
 */
void ngx_rustdesk_redis_written(ngx_rustdesk_redis_t *r, redisReply *reply);

/* The caller no longer wants the answer (its session ends). */
void ngx_rustdesk_redis_cancel(ngx_rustdesk_redis_cmd_t *cmd);


#endif /* _NGX_RUSTDESK_REDIS_H_INCLUDED_ */
